"""LUTFuse engine: exposure-bracket fusion with a learned 3D LUT. No Qt in here."""

__version__ = "0.1.0"
