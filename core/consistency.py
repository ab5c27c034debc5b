"""How far one rendering of a bracket is from another, and whether a fusion rings at strong edges.

* `ciede2000`: the CIE ΔE2000 colour difference per pixel (Sharma, Wu and Dalal, "The CIEDE2000 color-difference
  formula: implementation notes, supplementary test data, and mathematical observations", Color Res. Appl. 2005,
  eqs. 1-17), on CIELAB from sRGB (D65) by OpenCV. A median ≤ 2 is "the same picture" to most viewers.
* `chroma`: mean CIELAB chroma C*ab, for "at least as colourful".
* `edge_overshoot`: the halo measure. At strong edges of the sources (gradient of the frames' mean luminance in its
  top `top` fraction), the fused luminance is sampled along the gradient direction at −r..r px; the overshoot of
  a profile is how far it goes above the larger or below the smaller of its two ends (the plateaus on either side);
  summed over the profiles and divided by the summed edge steps. The sources are measured the same way (the least
  overshooting frame), and the measure is fused minus sources: 0 = no more ringing than the frames themselves; a
  halo of a pyramid or of a smooth gain bleeding across an edge shows as > 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from lutfuse.core.colour import luma
from lutfuse.core.errors import LUTFuseError


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB H×W×3 float in [0,1] -> CIELAB (D65) H×W×3 float32 (L* 0..100), OpenCV's conversion."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise LUTFuseError(f"expected an H×W×3 RGB image, got shape {rgb.shape}")
    return cv2.cvtColor(np.clip(rgb, 0.0, 1.0).astype(np.float32), cv2.COLOR_RGB2Lab)


def ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """ΔE2000 between two CIELAB images (…×3, same shape) -> … float64 ≥ 0 (Sharma et al. 2005; kL = kC = kH = 1)."""
    l1, a1, b1 = (np.asarray(lab1, np.float64)[..., i] for i in range(3))
    l2, a2, b2 = (np.asarray(lab2, np.float64)[..., i] for i in range(3))
    c1, c2 = np.hypot(a1, b1), np.hypot(a2, b2)
    c_mean7 = ((c1 + c2) / 2) ** 7
    g = 0.5 * (1 - np.sqrt(c_mean7 / (c_mean7 + 25.0 ** 7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    dl, dc = l2 - l1, c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(c1p * c2p == 0, 0.0, dh)
    dhh = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh / 2))
    lm, cm = (l1 + l2) / 2, (c1p + c2p) / 2
    hsum = h1p + h2p
    hm = np.where(np.abs(h1p - h2p) > 180, np.where(hsum < 360, (hsum + 360) / 2, (hsum - 360) / 2), hsum / 2)
    hm = np.where(c1p * c2p == 0, hsum, hm)
    t = (1 - 0.17 * np.cos(np.radians(hm - 30)) + 0.24 * np.cos(np.radians(2 * hm))
         + 0.32 * np.cos(np.radians(3 * hm + 6)) - 0.20 * np.cos(np.radians(4 * hm - 63)))
    d_theta = 30 * np.exp(-(((hm - 275) / 25) ** 2))
    cm7 = cm ** 7
    rc = 2 * np.sqrt(cm7 / (cm7 + 25.0 ** 7))
    sl = 1 + 0.015 * (lm - 50) ** 2 / np.sqrt(20 + (lm - 50) ** 2)
    sc = 1 + 0.045 * cm
    sh = 1 + 0.015 * cm * t
    rt = -np.sin(np.radians(2 * d_theta)) * rc
    return np.sqrt((dl / sl) ** 2 + (dc / sc) ** 2 + (dhh / sh) ** 2 + rt * (dc / sc) * (dhh / sh))


def median_delta_e(a: np.ndarray, b: np.ndarray) -> float:
    """Median CIEDE2000 between two sRGB images H×W×3 in [0,1] (same shape)."""
    if a.shape != b.shape:
        raise LUTFuseError(f"images differ in shape: {a.shape} vs {b.shape}")
    return float(np.median(ciede2000(to_lab(a), to_lab(b))))


def chroma(rgb: np.ndarray) -> float:
    """Mean CIELAB chroma C*ab of an sRGB image H×W×3 in [0,1]."""
    lab = to_lab(rgb)
    return float(np.mean(np.hypot(lab[..., 1], lab[..., 2])))


def _profile_overshoot(y: np.ndarray, px: np.ndarray, py: np.ndarray, nx: np.ndarray, ny: np.ndarray,
                       radius: int) -> float:
    """Overshoot of y's profiles through points (px, py) along unit normals (nx, ny), −radius..radius, summed
    over the profiles as a fraction of their summed steps (a ratio of sums: profiles with a tiny step do not
    dominate) -> float ≥ 0."""
    t = np.arange(-radius, radius + 1, dtype=np.float32)
    xs = (px[:, None] + t[None] * nx[:, None]).astype(np.float32)
    ys = (py[:, None] + t[None] * ny[:, None]).astype(np.float32)
    prof = cv2.remap(y, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    lo_end = np.minimum(prof[:, 0], prof[:, -1])
    hi_end = np.maximum(prof[:, 0], prof[:, -1])
    over = np.maximum(prof.max(axis=1) - hi_end, 0) + np.maximum(lo_end - prof.min(axis=1), 0)
    return float(over.sum() / max(float((hi_end - lo_end).sum()), 1e-6))


def edge_overshoot(fused: np.ndarray, sources: Sequence[np.ndarray] | np.ndarray, *, radius: int = 8,
                   top: float = 0.02, max_points: int = 20000) -> dict[str, float]:
    """Halo measure (module docstring): fused H×W×3, sources K×H×W×3 in [0,1] -> {"fused": mean overshoot of the
    fused profiles, "sources": mean of the least-overshooting source per profile, "excess": fused − sources,
    "points": profiles measured}; overshoots are fractions of the edge step (0.1 = 10 % beyond the plateaus)."""
    frames = np.asarray(sources, np.float32)
    mean_y = luma(frames.mean(axis=0))
    gx = cv2.Sobel(mean_y, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(mean_y, cv2.CV_32F, 0, 1, ksize=3)
    mag = np.hypot(gx, gy)
    h, w = mag.shape
    inner = np.zeros_like(mag, bool)
    inner[radius:h - radius, radius:w - radius] = True
    cut = np.quantile(mag[inner], 1 - top) if inner.any() else np.inf
    py, px = np.nonzero(inner & (mag >= cut) & (mag > 0))
    if len(px) == 0:
        return {"fused": 0.0, "sources": 0.0, "excess": 0.0, "points": 0}
    if len(px) > max_points:
        pick = np.random.default_rng(0).choice(len(px), max_points, replace=False)
        px, py = px[pick], py[pick]
    nx, ny = gx[py, px] / mag[py, px], gy[py, px] / mag[py, px]
    px, py = px.astype(np.float32), py.astype(np.float32)
    fused_over = _profile_overshoot(luma(fused), px, py, nx, ny, radius)
    src_over = min(_profile_overshoot(luma(f), px, py, nx, ny, radius) for f in frames)
    return {"fused": fused_over, "sources": src_over, "excess": fused_over - src_over, "points": int(len(px))}
