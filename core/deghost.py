"""Deghosting: find what moved between each frame and the reference frame (the middle one unless the user picks
another, `Bracket.reference_index`), and make every fusion path take that content from the reference.

After registration, each frame is mapped to the reference's exposure (per-channel histogram specification over
pixels valid in both, `core.registration.tone_curve`); where both are well exposed, a colour-channel difference larger
than the strength's threshold plus the noise the mapping amplifies marks motion. The marks are cleaned with a
morphological opening, small components dropped, then dilated and feathered. In a frame's ghost pixels its content
is replaced by the reference re-rendered at the frame's exposure (feathered), so the mean of the frames (the LUT's
base image), the detail layer, Mertens and the HQ networks' inputs all hold the reference's content there and no
double image, while each exposure keeps its share of the fusion. This is the reference-based
approach of Lightroom's HDR merge and of Granados et al., "Automatic noise modeling for ghost-free HDR
reconstruction" (2013), in its simplest form.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from lutfuse.core.colour import luma
from lutfuse.core.errors import LUTFuseError
from lutfuse.core.registration import apply_curve, map_exposure, tone_curve

# Largest per-channel difference (gamma-encoded, at the reference exposure, above the noise allowance) beyond which
# a pixel has moved, per strength.
STRENGTHS = {"off": math.inf, "low": 0.20, "medium": 0.12, "high": 0.07}
# Off by default: on the 10 static 3-frame validation brackets (hdrps, forth, deepfuse; docs/studies/registration.py
# static) deghosting costs LUT + detail MEF-SSIM 0.9895 -> 0.9873 (medium) / 0.9852 (high), because it also flags
# content that really changes between exposures (neon signs, flags, water) and a few high-contrast edges, and
# replaces it with one exposure's view. Turn it on for scenes with people, leaves or water that moved.
DEFAULT = "off"
DETECT_PIXELS = 1_000_000   # detection runs on a copy of at most this many pixels
_NOISE = 3.0 / 255.0        # per-frame noise + 8-bit quantisation, before the tone curve amplifies it
_LOW, _HIGH = 0.04, 0.96    # "well exposed" for detection
MIN_AREA = 2e-4             # ghost components smaller than this fraction of the image are dropped


def check_strength(strength: str) -> str:
    """The strength as one of STRENGTHS; LUTFuseError otherwise."""
    if strength not in STRENGTHS:
        raise LUTFuseError(f"deghost strength {strength!r}: use one of {', '.join(STRENGTHS)}")
    return strength


def _small(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return image if image.shape[1::-1] == size else cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def ghost_mask(frame: np.ndarray, reference: np.ndarray, strength: str = "medium",
               frame_valid: np.ndarray | None = None) -> np.ndarray:
    """Where `frame` shows content that differs from `reference` (both H×W×3 float32 [0,1], registered) once
    exposure is equalised -> H×W float32 in [0,1] (1 = moved; feathered edges). `frame_valid` (H×W bool) limits
    the comparison to the frame's valid pixels."""
    threshold = STRENGTHS[check_strength(strength)]
    h, w = reference.shape[:2]
    if not math.isfinite(threshold):
        return np.zeros((h, w), np.float32)
    f = min(1.0, math.sqrt(DETECT_PIXELS / (h * w)))
    size = (max(1, round(w * f)), max(1, round(h * f)))
    small_f = cv2.GaussianBlur(_small(frame, size), (0, 0), 1.5)
    small_r = cv2.GaussianBlur(_small(reference, size), (0, 0), 1.5)
    y_f, y_r = luma(small_f), luma(small_r)
    both = (y_f > _LOW) & (y_f < _HIGH) & (y_r > _LOW) & (y_r < _HIGH)
    if frame_valid is not None:
        both &= cv2.resize(frame_valid.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    if both.sum() < 64:
        return np.zeros((h, w), np.float32)
    # per channel, so that content of similar brightness but another colour counts as moved too
    excess = np.zeros(y_f.shape, np.float32)
    for c in range(3):
        curve = tone_curve(small_f[..., c], small_r[..., c], both, both)
        mapped = apply_curve(small_f[..., c], curve)
        # the tone curve's slope amplifies the frame's noise: a 4-stop brighter mapping needs a larger difference
        slope = np.gradient(curve[1], curve[0])
        noise = _NOISE * np.interp(small_f[..., c], curve[0], slope)
        np.maximum(excess, np.abs(mapped - small_r[..., c]) - 3.0 * noise, out=excess)
    moved = ((excess > threshold) & both).astype(np.uint8)
    side = min(size)
    moved = cv2.morphologyEx(moved, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))  # type: ignore[assignment]
    count, labels, stats, _ = cv2.connectedComponentsWithStats(moved, connectivity=8)
    keep = np.zeros(count, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= max(4, MIN_AREA * size[0] * size[1])
    moved = keep[labels].astype(np.uint8)
    if not moved.any():
        return np.zeros((h, w), np.float32)
    # join the parts of one object (moving things rarely differ from the background everywhere), cover its soft
    # edges and shadows, then feather
    rc = max(1, round(0.03 * side))
    moved = cv2.morphologyEx(moved, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * rc + 1,) * 2))  # type: ignore[assignment]
    r = max(1, round(0.01 * side))
    moved = cv2.dilate(moved, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))  # type: ignore[assignment]
    soft = cv2.GaussianBlur(moved.astype(np.float32), (0, 0), max(1.0, r / 2))
    soft = np.maximum(soft, moved.astype(np.float32))
    if soft.shape != (h, w):
        soft = cv2.resize(soft, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(soft, 0.0, 1.0)


def deghost(images: np.ndarray, valid: np.ndarray, strength: str = "medium",
            reference: int | None = None) -> np.ndarray | None:
    """In place: replace moved content in every non-reference frame by the reference re-rendered at that frame's
    exposure (feathered).

    The replaced pixels stay valid: they now carry the reference's content at the frame's own exposure, so the mean,
    Mertens' and the detail layer's weights keep every exposure's share there. Excluding them instead (weight 0)
    made Mertens' result in a ghost region follow the remaining frames' brightness (mean difference from the
    static result 0.027 vs 0.004 for LUT + detail on tests/test_registration.py's pasted object).

    images: N×H×W×3 float32 [0,1] (registered; invalid pixels already filled); valid: N×H×W bool (read only).
    reference: the reference index (N//2 by default). Returns the union ghost mask H×W float32 in [0,1] (what the
    GUI overlays and --ghost-mask writes), or None when strength is "off"."""
    check_strength(strength)
    if strength == "off":
        return None
    n = len(images)
    ref = n // 2 if reference is None else reference
    union = np.zeros(images.shape[1:3], np.float32)
    for i in range(n):
        if i == ref:
            continue
        mask = ghost_mask(images[i], images[ref], strength, valid[i])
        if not mask.any():
            continue
        hard = mask >= 0.5
        keep = valid[i] & valid[ref] & ~hard
        remapped = map_exposure(images[ref], images[i], keep)
        m = mask[..., None]
        images[i] = images[i] * (1.0 - m) + remapped * m
        np.maximum(union, mask, out=union)
    return union
