"""Rec. 709 luma: the one set of luma weights every module uses (ITU-R BT.709-6, item 3.2).

The weights are applied to the values as they are (gamma-encoded frames give luma, linear light gives relative
luminance); torch code uses `core.detail.luminance`, which takes its weights from here.
"""

from __future__ import annotations

import numpy as np

LUMA = (0.2126, 0.7152, 0.0722)
_LUMA = np.array(LUMA, np.float32)


def luma(image: np.ndarray) -> np.ndarray:
    """Rec. 709 luma of ...×3 RGB (H×W×3, or a stack N×H×W×3) -> ... float32, C-contiguous; same value range."""
    return np.ascontiguousarray(np.asarray(image) @ _LUMA, dtype=np.float32)
