"""Image quality scores: MEF-SSIM (Ma, Zeng and Wang, IEEE TIP 2015, 3 scales), PSNR and SSIM.

`mef_ssim` reproduces the reference MATLAB code (mef_ssim.m, Kede Ma) as the MEF literature and MEFB use it:
grey images on the 8-bit scale; per 11×11 window the sources' patches are split into signal strength (norm of
the mean-removed patch, uniform window) and unit structure; the desired patch has the largest strength and a
structure that is the sum of the sources' structures weighted by strength**p, p = tan(π R / 2) from the
structural consistency R; it is compared with the fused patch by SSIM without the luminance term (Gaussian
window σ = 1.5, C = (0.03·255)²) over the 'valid' windows; three scales (2×2 mean, symmetric border, every
second sample) combined as a weighted geometric mean with weights (0.0448, 0.2856, 0.3001) normalised to sum 1.

The per-window loops of the MATLAB are replaced by local sums: every window statistic of the desired patch is a
quadratic form in the sources' local moments, so a few separable filters give the exact same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from lutfuse.core.colour import LUMA
from lutfuse.core.errors import LUTFuseError

WINDOW = 11
SIGMA = 1.5
SCALE_WEIGHTS = np.array([0.0448, 0.2856, 0.3001]) / (0.0448 + 0.2856 + 0.3001)
_EPS = np.finfo(np.float64).eps  # MATLAB's eps, used where the reference adds it
# MATLAB rgb2gray: the first row of the inverse NTSC matrix (0.2989, 0.5870, 0.1140 to four digits); the
# rounded digits change some 8-bit grey levels and the reference values by up to 2e-4
_NTSC = np.array([[1.0, 0.956, 0.621], [1.0, -0.272, -0.647], [1.0, -1.106, 1.703]])
MATLAB_GREY = tuple(float(v) for v in np.linalg.inv(_NTSC)[0])
K = 0.03


def to_grey8(image: np.ndarray) -> np.ndarray:
    """H×W×3 RGB (uint8, or float in [0,1]) -> H×W float64 grey on the 8-bit scale, rounded like rgb2gray."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise LUTFuseError(f"MEF-SSIM: expected an H×W×3 RGB image, got shape {image.shape}")
    if image.dtype != np.uint8:
        # float images are quantised to 8 bits first, as the metric is defined on 8-bit images
        image = np.floor(np.clip(image.astype(np.float64), 0.0, 1.0) * 255.0 + 0.5)
    rgb = image.astype(np.float64)
    grey = MATLAB_GREY[0] * rgb[..., 0] + MATLAB_GREY[1] * rgb[..., 1] + MATLAB_GREY[2] * rgb[..., 2]
    return np.floor(grey + 0.5)  # MATLAB rounds half away from zero, values are ≥ 0


def _gaussian_1d(size: int = WINDOW, sigma: float = SIGMA) -> np.ndarray:
    """Normalised 1-D Gaussian taps (size,) whose outer product is fspecial('gaussian', size, sigma)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x * x) / (2 * sigma * sigma))
    return g / g.sum()


def _valid_filter(stack: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Separable correlation over the 'valid' windows: H×W×C float64 -> (H-s+1)×(W-s+1)×C."""
    b = len(taps) // 2
    out = np.empty(stack.shape[:2] + (stack.shape[2],), np.float64)
    # cv2 filters at most 512 channels at once; slices keep memory bounded too
    for c0 in range(0, stack.shape[2], 64):
        part = np.ascontiguousarray(stack[..., c0:c0 + 64])
        res = cv2.sepFilter2D(part, cv2.CV_64F, taps, taps, borderType=cv2.BORDER_REFLECT)
        out[..., c0:c0 + 64] = res.reshape(part.shape)
    return out[b:-b, b:-b]


def _downsample(image: np.ndarray) -> np.ndarray:
    """imfilter(x, ones(2)/4, 'symmetric', 'same') then x(1:2:end, 1:2:end): H×W -> ceil(H/2)×ceil(W/2)."""
    padded = np.pad(image, ((0, image.shape[0] % 2), (0, image.shape[1] % 2)), mode="symmetric")
    return 0.25 * (padded[0::2, 0::2] + padded[1::2, 0::2] + padded[0::2, 1::2] + padded[1::2, 1::2])


def _single_scale(sources: np.ndarray, fused: np.ndarray) -> float:
    """Mean MEF-SSIM quality map at one scale: sources K×H×W, fused H×W (8-bit scale, float64) -> value ≤ 1."""
    k = sources.shape[0]
    n = WINDOW * WINDOW
    pairs = [(i, j) for i in range(k) for j in range(i, k)]
    # products needed for the window moments: x_i x_j, x_i f, f², then the first moments x_i, f
    planes = [sources[i] * sources[j] for i, j in pairs] + [s * fused for s in sources] + [fused * fused]
    planes += list(sources) + [fused]
    stack = np.stack(planes, axis=-1)
    # channel-first so that every statistic below is a contiguous plane
    box = np.moveaxis(_valid_filter(stack, np.full(WINDOW, 1.0 / WINDOW)), -1, 0).copy()
    gau = np.moveaxis(_valid_filter(stack, _gaussian_1d()), -1, 0).copy()
    npair = len(pairs)
    mu = box[npair + k + 1:npair + 2 * k + 1]               # uniform means of the sources
    g_x = gau[npair + k + 1:npair + 2 * k + 1]              # Gaussian means of the sources
    g_xf = gau[npair:npair + k]
    g_ff, mu_f = gau[npair + k], gau[-1]
    cov = {}                                              # uniform-window covariances of the sources
    g_cc = {}                                             # G[(x_i − μ_i)(x_j − μ_j)]
    for p, (i, j) in enumerate(pairs):
        cov[i, j] = box[p] - mu[i] * mu[j]
        g_cc[i, j] = gau[p] - mu[i] * g_x[j] - g_x[i] * mu[j] + mu[i] * mu[j]

    # signal strength: norm of each mean-removed patch (+0.001 as in the reference, for flat patches)
    strength = np.sqrt(np.maximum(n * np.stack([cov[i, i] for i in range(k)]), 0.0))
    ed = strength + 0.001
    # structural consistency R = ||Σ x̃_k|| / Σ ||x̃_k||, and the exponent p = tan(π R / 2)
    total = sum(c if i == j else 2 * c for (i, j), c in cov.items())
    num = np.sqrt(np.maximum(n * total, 0.0))
    r = (num + _EPS) / (strength.sum(axis=0) + _EPS)
    r[r > 1] = 1 - _EPS
    p = np.minimum(np.tan(np.pi / 2 * r), 10.0)  # 10 already acts as a maximum over the sources
    w = np.exp(p * np.log(ed / WINDOW)) + _EPS
    a = w / w.sum(axis=0) / ed                          # coefficient of each mean-removed source patch

    # desired patch r = s · Σ a_k (x_k − μ_k), scaled to the largest strength when its norm is non-zero
    def form(m: dict) -> np.ndarray:
        """Σ_ij a_i a_j m_ij over the symmetric pair planes m."""
        return sum(a[i] * a[j] * (c if i == j else 2 * c) for (i, j), c in m.items())

    norm2 = n * form(cov)
    scale = np.where(norm2 > 0, ed.max(axis=0) / np.sqrt(np.maximum(norm2, 1e-300)), 0.0)
    # Gaussian moments of the desired patch, expanded from the sources' moments
    mu1 = scale * (a * (g_x - mu)).sum(axis=0)
    sigma1 = scale * scale * form(g_cc) - mu1 * mu1
    sigma2 = g_ff - mu_f * mu_f
    sigma12 = scale * (a * (g_xf - mu * mu_f)).sum(axis=0) - mu1 * mu_f
    # (K·L)² without the /2: the published reference values are reproduced only with this constant
    c2 = (K * 255) ** 2
    q = (2 * sigma12 + c2) / (sigma1 + sigma2 + c2)
    return float(q.mean())


def mef_ssim(frames: Sequence[np.ndarray], fused: np.ndarray) -> float:
    """MEF-SSIM of a fused image against its source frames (each H×W×3 RGB, uint8 or float in [0,1]) -> (0, 1]."""
    if len(frames) < 1:
        raise LUTFuseError("MEF-SSIM: no source frames given")
    grey = [to_grey8(f) for f in frames]
    fgrey = to_grey8(fused)
    if any(g.shape != fgrey.shape for g in grey):
        raise LUTFuseError(f"MEF-SSIM: frame sizes {[g.shape for g in grey]} differ from the fused {fgrey.shape}")
    if min(fgrey.shape) / 2 ** (len(SCALE_WEIGHTS) - 1) < WINDOW:
        raise LUTFuseError(f"MEF-SSIM: image {fgrey.shape[1]}×{fgrey.shape[0]} is too small for "
                           f"{len(SCALE_WEIGHTS)} scales (needs at least {WINDOW * 4} pixels per side)")
    sources = np.stack(grey)
    scores = []
    for level in range(len(SCALE_WEIGHTS)):
        if level:
            sources = np.stack([_downsample(s) for s in sources])
            fgrey = _downsample(fgrey)
        scores.append(_single_scale(sources, fgrey))
    q = np.array(scores)
    # a negative scale mean (possible in principle) has no real power; the reference would give a complex number
    return float(np.prod(np.sign(q) * np.abs(q) ** SCALE_WEIGHTS))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two same-shape float images in [0,1] (peak 1); inf when identical."""
    if a.shape != b.shape:
        raise LUTFuseError(f"PSNR: shapes {a.shape} and {b.shape} differ")
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse))


def _grey(image: np.ndarray) -> np.ndarray:
    """H×W×3 RGB or H×W float in [0,1] -> H×W float64 grey (same weights as rgb2gray, no quantisation)."""
    image = image.astype(np.float64)
    if image.ndim == 2:
        return image
    return MATLAB_GREY[0] * image[..., 0] + MATLAB_GREY[1] * image[..., 1] + MATLAB_GREY[2] * image[..., 2]


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM (Wang et al. 2004) on grey of two float images in [0,1]: Gaussian σ=1.5 11×11, K=(0.01, 0.03), -> ≤ 1."""
    if a.shape != b.shape:
        raise LUTFuseError(f"SSIM: shapes {a.shape} and {b.shape} differ")
    x, y = _grey(a), _grey(b)
    if min(x.shape) < WINDOW:
        raise LUTFuseError(f"SSIM: image {x.shape[1]}×{x.shape[0]} is smaller than the {WINDOW}×{WINDOW} window")
    m = _valid_filter(np.stack([x, y, x * x, y * y, x * y], axis=-1), _gaussian_1d())
    mx, my = m[..., 0], m[..., 1]
    vx, vy, cxy = m[..., 2] - mx * mx, m[..., 3] - my * my, m[..., 4] - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean())


def fusion_scores(fused: np.ndarray, inputs: Sequence[np.ndarray], reference: np.ndarray) -> dict[str, float]:
    """A fusion H×W×3 (clipped to [0,1]) scored: MEF-SSIM against its inputs, PSNR and SSIM against a reference."""
    fused = np.clip(fused, 0.0, 1.0).astype(np.float32)
    return {"psnr": float(psnr(fused, reference)), "ssim": float(ssim(fused, reference)),
            "mef_ssim": float(mef_ssim(list(inputs), fused))}


# ---------------------------------------------------------------- colour fidelity
# Chroma is C*ab of CIELAB (D65, sRGB-encoded inputs decoded by the sRGB EOTF; colour-science, IEC 61966-2-1 and
# CIE 15:2004). "Well-exposed" pixels are those whose Rec. 709 luma in the comparison image (Mertens of the inputs)
# lies in [WELL_EXPOSED_LOW, WELL_EXPOSED_HIGH]: near black and near white chroma is small and noisy.
WELL_EXPOSED_LOW, WELL_EXPOSED_HIGH = 0.1, 0.9


def to_lab(image: np.ndarray) -> np.ndarray:
    """H×W×3 (or ...×3) sRGB in [0,1] -> CIELAB (D65) float64, L* in [0, 100]."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # colour-science warns once about matplotlib, which is not needed here
        import colour
    rgb = np.clip(np.asarray(image, np.float64), 0.0, 1.0)
    return colour.XYZ_to_Lab(colour.sRGB_to_XYZ(rgb))


def chroma(image: np.ndarray) -> np.ndarray:
    """CIELAB chroma C*ab = sqrt(a*² + b*²) of H×W×3 sRGB in [0,1] -> H×W float64 ≥ 0 (0 = grey)."""
    lab = to_lab(image)
    return np.hypot(lab[..., 1], lab[..., 2])


def well_exposed(image: np.ndarray) -> np.ndarray:
    """H×W bool: Rec. 709 luma of the H×W×3 image in [WELL_EXPOSED_LOW, WELL_EXPOSED_HIGH]."""
    y = np.asarray(image, np.float64) @ np.array(LUMA)
    return (y >= WELL_EXPOSED_LOW) & (y <= WELL_EXPOSED_HIGH)


def chroma_ratio(image: np.ndarray, comparison: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean C*ab of `image` over the mask divided by that of `comparison` (both H×W×3 sRGB in [0,1]).

    mask: H×W bool, default well_exposed(comparison); 1.0 = as colourful as the comparison (e.g. Mertens of the
    same inputs), below 1 washed out. NaN when the comparison has no chroma there."""
    if image.shape != comparison.shape:
        raise LUTFuseError(f"chroma ratio: shapes {image.shape} and {comparison.shape} differ")
    m = well_exposed(comparison) if mask is None else mask
    if not m.any():
        m = np.ones(m.shape, bool)
    den = float(chroma(comparison)[m].mean())
    return float(chroma(image)[m].mean() / den) if den > 0 else float("nan")


def ciede2000(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel CIEDE2000 colour difference (Sharma et al. 2005, via colour-science) of two H×W×3 sRGB images
    in [0,1] -> H×W float64 ≥ 0 (about 1 = just noticeable)."""
    import colour

    if a.shape != b.shape:
        raise LUTFuseError(f"CIEDE2000: shapes {a.shape} and {b.shape} differ")
    return colour.delta_E(to_lab(a), to_lab(b), method="CIE 2000")


def median_ciede2000(a: np.ndarray, b: np.ndarray) -> float:
    """Median CIEDE2000 over all pixels of two H×W×3 sRGB images in [0,1]."""
    return float(np.median(ciede2000(a, b)))
