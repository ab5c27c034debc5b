"""LUTFuse engine: exposure-bracket fusion with a learned 3D LUT. No Qt in here."""

from lutfuse import __version__

__all__ = ["__version__"]
