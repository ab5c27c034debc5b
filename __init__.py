"""LUTFuse: exposure-bracket fusion with a learned, editable 3D LUT.

The repository's top-level folders install as one package: ``lutfuse.core`` (the engine, no Qt),
``lutfuse.app`` (the Qt editor) and the shipped ``resources`` (weights, demo bracket) as package data.
"""

import os

__version__ = "0.2.0"

# Apple's GPU backend (torch "mps") lacks some ops in many torch versions; with this set before torch loads, torch
# runs such an op on the CPU instead of raising (see lutfuse.core.device). The user's own setting wins.
os.environ.setdefault("PYTORCH_ENABLE_MPS_FALLBACK", "1")
