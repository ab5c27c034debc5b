"""Classical exposure fusion (Mertens et al. 2007) through OpenCV: the baseline every learned method is scored
against."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


def mertens(images: Sequence[np.ndarray] | np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Exposure fusion of N aligned frames (each H×W×3 float32 RGB in [0,1]) -> H×W×3 float32 RGB in [0,1].

    valid: optional N×H×W bool (Bracket.valid): a frame's weight is zero where it is invalid. OpenCV's MergeMertens
    takes no weights, so then the fusion runs through `mertens_low_memory` (the same algorithm)."""
    if valid is not None:
        return mertens_low_memory(images, valid)
    # OpenCV's contrast weight uses a BGR->grey conversion, so frames go in as BGR; and it scales every input by
    # 1/255 whatever its type, so float frames must come in on the 8-bit scale.
    frames = [np.ascontiguousarray(im[..., ::-1], dtype=np.float32) * 255.0 for im in images]
    fused = np.ascontiguousarray(cv2.createMergeMertens().process(frames)[..., ::-1])
    return np.clip(fused, 0.0, 1.0, out=fused)


def mertens_low_memory(images: Sequence[np.ndarray] | np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """OpenCV's Mertens (as `mertens`) one frame at a time: N×H×W×3 float32 RGB in [0,1] -> H×W×3 float32 in [0,1].

    OpenCV builds the pyramids of two frames at once and keeps them, about 3.2 GB above the inputs for three 24 MP
    frames; here one frame's pyramids exist at a time. The steps are OpenCV's (photo/src/merge.cpp with its
    default exponents: contrast 1, saturation 1, well-exposedness 0), on the same BGR values `mertens` gives it;
    it agrees with `mertens` to float rounding (tests/test_classical.py). valid: optional N×H×W bool; a frame's
    weight is zero where it is invalid (a 1e-12 floor keeps pixels no frame covers defined)."""
    def bgr(im: np.ndarray) -> np.ndarray:
        # what `mertens` hands OpenCV, after OpenCV's own convertTo(CV_32F, 1/255)
        scaled = np.ascontiguousarray(np.asarray(im, np.float32)[..., ::-1]) * np.float32(255.0)
        return (scaled * (1.0 / 255.0)).astype(np.float32)  # convertTo scales in double, then rounds

    h, w = images[0].shape[:2]
    weights = []
    for i, im in enumerate(images):
        img = bgr(im)
        contrast = np.abs(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.CV_32F))
        mean = ((img[..., 0] + img[..., 1] + img[..., 2]) * (1.0 / 3.0)).astype(np.float32)  # Mat /= 3 scales in double
        saturation = np.sqrt(sum((img[..., c] - mean) ** 2 for c in range(3)))
        weight = contrast * saturation
        if valid is not None:
            weight *= valid[i]
        weights.append(weight + np.float32(1e-12))
        del img, contrast, mean, saturation
    total = sum(weights)
    levels = int(np.log(np.float32(min(h, w))) / np.log(np.float32(2.0)))
    result: list[np.ndarray] = []
    for i, im in enumerate(images):
        img_pyr = [bgr(im)]
        w_pyr = [weights[i] / total]
        weights[i] = None  # type: ignore[call-overload]  # free it: only the normalised copy is needed now
        for _ in range(levels):
            img_pyr.append(cv2.pyrDown(img_pyr[-1]))
            w_pyr.append(cv2.pyrDown(w_pyr[-1]))
        for lvl in range(levels + 1):
            band = img_pyr[lvl]
            if lvl < levels:
                band -= cv2.pyrUp(img_pyr[lvl + 1], dstsize=(band.shape[1], band.shape[0]))
            band *= w_pyr[lvl][..., None]
            if len(result) <= lvl:
                result.append(band)
            else:
                result[lvl] += band
            img_pyr[lvl] = w_pyr[lvl] = None  # type: ignore[call-overload]
        del img_pyr, w_pyr
    del total
    for lvl in range(levels, 0, -1):
        below = result[lvl - 1]
        below += cv2.pyrUp(result.pop(), dstsize=(below.shape[1], below.shape[0]))
    fused = np.ascontiguousarray(result[0][..., ::-1])
    return np.clip(fused, 0.0, 1.0, out=fused)
