"""Classical exposure fusion (Mertens et al. 2007) through OpenCV: the baseline every learned method is scored against."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


def mertens(images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """Exposure fusion of N aligned frames (each H×W×3 float32 RGB in [0,1]) -> H×W×3 float32 RGB in [0,1]."""
    # OpenCV's contrast weight uses a BGR->grey conversion, so frames go in as BGR; and it scales every input by
    # 1/255 whatever its type, so float frames must come in on the 8-bit scale.
    frames = [np.ascontiguousarray(im[..., ::-1], dtype=np.float32) * 255.0 for im in images]
    fused = np.ascontiguousarray(cv2.createMergeMertens().process(frames)[..., ::-1])
    return np.clip(fused, 0.0, 1.0, out=fused)
