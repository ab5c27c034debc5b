"""The base image the LUT applies to: the frames' mean, with the colour a plain mean washes out brought back.

Su & Zheng apply the LUT to the per-pixel mean of the frames. Where one frame is well exposed and another is
clipped, the mean mixes the good colour with white (or black) and a global colour map cannot undo it: the LUT sees
the same washed-out colour whether it came from a pale object or from a saturated one beside a blown frame
(`docs/studies/chroma.md` measures this as the main chroma loss). So each frame gets a per-pixel weight

    w_i = exp(−(Y_i − 0.5)² / (2 σ²)) · (S_i + ε)

(Mertens et al. 2007's well-exposedness, on luma, times their saturation, the standard deviation of R, G, B;
ε keeps grey scenes from dividing by zero), computed on an area-downsampled copy whose longest side is
WEIGHT_SIDE pixels, blurred there, normalised over the frames, and bilinearly upsampled. The weights are so smooth
that the LUT's job stays a global colour map and no edges are blended across; the base is then

    base = Σ_i w_i · frame_i / Σ_i w_i.

That weighted base alone makes a poor LUT input: its luma is no longer a monotone function of scene brightness
across the picture (the same grey level comes from different frames in different places), and a least-squares
LUT fitted on it loses much MEF-SSIM. The engine's base, `chroma_base`, therefore takes only its colour and keeps
the plain mean's luma; and since the shipped student learned its own colour gain on the plain mean, the engine
blends between the two, mean + a·(chroma base − mean), with a per-bracket strength a measured so that the LUT's
output has the chroma of Mertens' fusion at 128 px (`calibrate_amount`; "calibrated"). The engine keeps that
image, `lutfuse cube --base` writes it, and applying the .cube to it reproduces the detail-0 render exactly.
`mean_base` (Su & Zheng's base) stays for comparison and for weights trained on it (`Engine(base="mean")`,
`lutfuse eval --base mean`). Numbers: docs/studies/chroma.md.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from lutfuse.core.colour import luma

WEIGHT_SIDE = 32        # longest side of the weight maps (chosen on the validation split: docs/studies/chroma.md)
SIGMA = 0.2             # Mertens' well-exposedness width
SATURATION_EPS = 0.05   # floor added to the saturation term (grey scenes fall back to well-exposedness)
BASES = ("calibrated", "chroma", "weighted", "mean")
DEFAULT_BASE = "calibrated"   # the engine's: blend(images, calibrate_amount(images, the bracket's LUT))


def mean_base(images: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Per-pixel mean of N×H×W×3 frames in [0,1] -> H×W×3 float32 (over the valid frames where `valid` N×H×W)."""
    if valid is None:
        return images.mean(axis=0, dtype=np.float32)
    w = valid.astype(np.float32)[..., None]
    den = w.sum(axis=0)
    out = (images * w).sum(axis=0) / np.maximum(den, 1.0)
    return np.where(den > 0, out, images.mean(axis=0)).astype(np.float32)


def _small_shape(height: int, width: int, side: int) -> tuple[int, int]:
    """(h, w) with the longest side `side` (at least 2 px each way, never larger than the image)."""
    f = min(1.0, side / max(height, width))
    return max(2, min(height, round(height * f))), max(2, min(width, round(width * f)))


def frame_weights(images: np.ndarray, side: int = WEIGHT_SIDE, sigma: float = SIGMA,
                  saturation_eps: float = SATURATION_EPS, valid: np.ndarray | None = None) -> np.ndarray:
    """Normalised smooth weights of N×H×W×3 frames in [0,1] -> N×h×w float32 at low resolution, summing to 1.

    h×w has the longest side `side`; `valid` (N×H×W bool) zeroes a frame where it has no data (a pixel no frame
    covers falls back to equal weights)."""
    n, height, width = images.shape[:3]
    h, w = _small_shape(height, width, side)
    small = np.stack([cv2.resize(np.ascontiguousarray(im, np.float32), (w, h), interpolation=cv2.INTER_AREA)
                      for im in images])
    y = luma(small)
    exposed = np.exp(-((y - 0.5) ** 2) / (2 * sigma ** 2))
    sat = small.std(axis=-1)
    wts = exposed * (sat + saturation_eps) + 1e-8
    if valid is not None:
        cover = np.stack([cv2.resize(v.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) for v in valid])
        wts = wts * cover
    # a 3-tap blur at low resolution: the weights must not follow small bright objects
    wts = np.stack([cv2.GaussianBlur(x, (3, 3), 0, borderType=cv2.BORDER_REFLECT_101) for x in wts])
    total = wts.sum(axis=0, keepdims=True)
    wts = np.where(total > 1e-7, wts / np.maximum(total, 1e-30), 1.0 / n)
    return wts.astype(np.float32)


def weighted_base(images: np.ndarray, side: int = WEIGHT_SIDE, valid: np.ndarray | None = None,
                  **kwargs: float) -> np.ndarray:
    """The base image (module docstring): N×H×W×3 frames in [0,1] -> H×W×3 float32 in [0,1].

    side: longest side of the weight maps; valid: optional N×H×W bool coverage; kwargs go to frame_weights."""
    images = np.asarray(images, np.float32)
    n, height, width = images.shape[:3]
    small = frame_weights(images, side, valid=valid, **kwargs)
    out = np.zeros((height, width, 3), np.float32)
    for i in range(n):
        # bilinear upsampling of the normalised weights keeps them normalised (a convex combination per pixel)
        wi = cv2.resize(small[i], (width, height), interpolation=cv2.INTER_LINEAR)
        out += wi[..., None] * images[i]
    return np.clip(out, 0.0, 1.0, out=out)


def chroma_base(images: np.ndarray, side: int = WEIGHT_SIDE, valid: np.ndarray | None = None) -> np.ndarray:
    """The shipped base: the weighted base's colour with the mean's luma -> H×W×3 float32 in [0,1].

    base = W + (Y(mean) − Y(W)) · (1, 1, 1), W = weighted_base, Y = Rec. 709 luma: the colour differences
    (R − Y, B − Y) come from the exposure-weighted blend, which keeps the well-exposed frame's chroma, and the
    luma from the plain mean, which stays a monotone function of scene brightness across the picture (the
    weighted luma is not: the same grey level can come from different frames in different places, so a global
    LUT on it would invert tones; docs/studies/chroma.md). The LUT therefore keeps its job, a tone map on
    brightness, and receives the frames' colour instead of its mix with white or black."""
    images = np.asarray(images, np.float32)
    w = weighted_base(images, side, valid)
    m = mean_base(images, valid)
    shift = luma(m - w)
    return np.clip(w + shift[..., None], 0.0, 1.0)


def make_base(images: np.ndarray, kind: str = DEFAULT_BASE, valid: np.ndarray | None = None,
              lut_apply=None) -> np.ndarray:
    """The base image of the named kind (BASES) of N×H×W×3 frames -> H×W×3 float32 in [0,1].

    "calibrated" needs lut_apply (H×W×3 -> H×W×3, the bracket's LUT): see calibrate_amount."""
    if kind == "calibrated":
        if lut_apply is None:
            raise ValueError("the calibrated base needs the bracket's LUT (lut_apply)")
        return blend(images, calibrate_amount(images, lut_apply, valid), valid)
    if kind == "chroma":
        return chroma_base(images, valid=valid)
    if kind == "weighted":
        return weighted_base(images, valid=valid)
    if kind == "mean":
        return mean_base(np.asarray(images, np.float32), valid)
    raise ValueError(f"unknown base {kind!r} (choose from {', '.join(BASES)})")


def base_tensor(frames: torch.Tensor, kind: str = "chroma") -> torch.Tensor:
    """Torch convenience for trainers: K×3×H×W frames -> 3×H×W base (computed in numpy, exactly make_base)."""
    arr = frames.detach().cpu().permute(0, 2, 3, 1).numpy()
    return torch.from_numpy(make_base(arr, kind)).permute(2, 0, 1).to(frames.device, frames.dtype)


__all__ = ["BASES", "DEFAULT_BASE", "WEIGHT_SIDE", "base_tensor", "blend", "calibrate_amount", "chroma_base",
           "frame_weights", "make_base", "mean_base", "weighted_base"]


# ---------------------------------------------------------------- per-bracket colour strength
CALIBRATION_SIDE = 128                        # the bracket is judged at this longest side
AMOUNTS = np.linspace(0.0, 1.5, 16)           # colour strengths tried (0 = the mean, 1 = the chroma base)


def _mean_chroma(rgb: np.ndarray, mask: np.ndarray) -> float:
    """Mean CIELAB C*ab (OpenCV's sRGB -> Lab, D65) of H×W×3 float32 in [0,1] over the mask."""
    lab = cv2.cvtColor(np.ascontiguousarray(np.clip(rgb, 0, 1), np.float32), cv2.COLOR_RGB2Lab)
    return float(np.hypot(lab[..., 1], lab[..., 2])[mask].mean())


def calibrate_amount(images: np.ndarray, lut_apply, valid: np.ndarray | None = None) -> float:
    """The colour strength a ≥ 0 of `blend` for one bracket: the one at which the LUT's output has the chroma of
    Mertens' fusion of the same frames, both judged at CALIBRATION_SIDE px over Mertens' well-exposed pixels
    (luma 0.1..0.9).

    lut_apply: H×W×3 base -> H×W×3 LUT output (the bracket's own LUT). The student learned its colour gain on
    the plain mean; how much of the frames' colour it then needs back differs per bracket (docs/studies/
    chroma.md), so it is measured, not fixed: the first a in AMOUNTS where the output's chroma reaches Mertens'
    (linear interpolation between the two tried values around it; the last one when none does)."""
    # OpenCV's MergeMertens is not repeatable (its result on one input varies with the heap: 7 different outputs
    # in 100 runs on one 128-px stack, and calibrated amounts differing in the 6th digit on 3 of 18 real
    # brackets); the frame-at-a-time steps here give one of its results every time
    from lutfuse.core.classical import mertens_low_memory

    images = np.asarray(images, np.float32)
    h, w = _small_shape(*images.shape[1:3], CALIBRATION_SIDE)  # type: ignore[call-arg]
    small = np.stack([cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA) for im in images])
    sv = None if valid is None else np.stack([cv2.resize(v.astype(np.float32), (w, h),
                                                         interpolation=cv2.INTER_AREA) > 0.5 for v in valid])
    merged = mertens_low_memory(small)
    y = luma(merged)
    mask = (y >= 0.1) & (y <= 0.9)
    if mask.mean() < 0.01:
        return 1.0
    target = _mean_chroma(merged, mask)
    m, c = mean_base(small, sv), chroma_base(small, valid=sv)
    prev = None
    for a in AMOUNTS:
        got = _mean_chroma(lut_apply(np.clip(m + a * (c - m), 0.0, 1.0)), mask)
        if got >= target:
            if prev is None:
                return float(a)
            a0, g0 = prev
            return float(a0 + (a - a0) * (target - g0) / max(got - g0, 1e-9))
        prev = (a, got)
    return float(AMOUNTS[-1])


def blend(images: np.ndarray, amount: float, valid: np.ndarray | None = None) -> np.ndarray:
    """mean + amount · (chroma base − mean), clipped: H×W×3 float32 in [0,1] (amount 0 = mean, 1 = chroma base).

    Computed in one pass over the frames (the same values as from mean_base and chroma_base): d = W − mean =
    Σ_i (w_i − m_i) · frame_i, with m_i the mean's per-frame weights, and chroma base − mean = clip(mean + d −
    Y(d)) − mean."""
    images = np.asarray(images, np.float32)
    m = mean_base(images, valid)
    if amount == 0:
        return m
    n, height, width = images.shape[:3]
    small = frame_weights(images, WEIGHT_SIDE, valid=valid)
    if valid is None:
        mean_w = np.full(n, np.float32(1.0 / n))
    d = np.zeros((height, width, 3), np.float32)
    for i in range(n):
        wi = cv2.resize(small[i], (width, height), interpolation=cv2.INTER_LINEAR)
        if valid is None:
            wi -= mean_w[i]
        else:
            cover = valid.astype(np.float32)
            den = cover.sum(axis=0)
            wi -= np.where(den > 0, cover[i] / np.maximum(den, 1.0), np.float32(1.0 / n))
        d += wi[..., None] * images[i]
    y = luma(d)
    d -= y[..., None]
    c = np.clip(d + m, 0.0, 1.0, out=d)          # the chroma base
    c -= m
    c *= np.float32(amount)
    c += m
    return np.clip(c, 0.0, 1.0, out=c)
