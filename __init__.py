"""LUTFuse: exposure-bracket fusion with a learned, editable 3D LUT.

The repository's top-level folders install as one package: ``lutfuse.core`` (the engine, no Qt),
``lutfuse.app`` (the Qt editor) and the shipped ``resources`` (weights, demo bracket) as package data.
"""

__version__ = "0.2.0"
