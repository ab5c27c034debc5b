"""Laplacian-pyramid detail transfer: the local contrast a per-pixel 3D LUT cannot give.

The LUT sets tone and colour; the fine bands (pyramid levels 0 .. levels-1) come from a Mertens-style
Laplacian-pyramid exposure fusion of the frames' luminance. Everything that does not depend on the LUT's grid
size or on the detail strength is computed once per bracket into one luminance layer D (H×W), so a render is

    out = clip(LUT(base) + strength · D, 0, 1)

with D = compress(F_hi − hi(Y(T(base)))): F_hi is the fused band-pass, hi(Y(T(base))) the band-pass of the
luminance of the tone-mapped base (T = the bracket's LUT sampled once at a reference size; the LUT is one
continuous function whatever grid it is sampled on, so its band-pass hardly changes with G). Removing the tone
map's own band-pass means the output's fine bands are the fusion's, not the fusion's plus the base's. The same
luminance detail is added to R, G and B, so edges get no colour fringes; a soft knee on |D| and the final clip
keep strong edges beside clipped highlights from ringing or leaving [0, 1]. Strength 0 returns LUT(base)
untouched, which is exactly what the exported .cube does to the exported base image.

Tensors may live on any device. On the CPU the pyramid filters go through OpenCV (pyrDown/pyrUp are about 100×
faster there than torch's conv2d on one-channel images); elsewhere, and on the CPU with the torch kernels
(`core.device.torch_kernels`), they are torch convolutions.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from lutfuse.core.colour import LUMA  # Rec. 709; re-exported for torch code
from lutfuse.core.device import torch_kernels

# Chosen on validation brackets (hdrps scenes, MEF-SSIM; see the report in the commit history): the split level
# where the LUT's low frequencies meet the fusion's band-pass, for an image of LEVELS_SIDE pixels on its longest
# side, and the soft knee on the detail layer. Larger images split deeper (one level per doubling) so that the
# detail covers the same fraction of the picture at any resolution, and a preview matches the full render.
DEFAULT_LEVELS = 5
LEVELS_SIDE = 512
KNEE = 0.25
# Band weights favour the frame with more local structure (energy^(power/2)); chosen on the validation split
# (MEF-SSIM of LUT + detail: 0.9783 at power 0 = Mertens' weights, 0.9810 at 1, 0.9826 at 2, 0.9841 at 4;
# 16 underflows).
CONTRAST_POWER = 4.0
ENERGY_FLOOR = 1e-10
# Rec. 709 luma weights on the (gamma-encoded) frames
_SIGMA_EXPOSED = 0.2  # Mertens' well-exposedness Gaussian around 0.5
_BINOMIAL = (1 / 16, 4 / 16, 6 / 16, 4 / 16, 1 / 16)


def luminance(image: torch.Tensor) -> torch.Tensor:
    """Rec. 709 luma of N×3×H×W (or 3×H×W) RGB in [0,1] -> N×H×W (or H×W), same range."""
    r, g, b = image.unbind(-3)
    return r * LUMA[0] + g * LUMA[1] + b * LUMA[2]


def _kernel(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """The 5-tap binomial as a 1×1×5 torch kernel on x's device (times scale)."""
    return torch.tensor(_BINOMIAL, dtype=x.dtype, device=x.device).mul_(scale)


def _separable(x: torch.Tensor, k: torch.Tensor, stride: int) -> torch.Tensor:
    """Reflect-101 padded separable filter of an H×W map with taps k (5,), then subsampled by stride."""
    y = F.pad(x[None, None], (2, 2, 2, 2), mode="reflect")
    y = F.conv2d(y, k.view(1, 1, 1, 5), stride=(1, stride))
    return F.conv2d(y, k.view(1, 1, 5, 1), stride=(stride, 1))[0, 0]


def _reduce_torch(x: torch.Tensor) -> torch.Tensor:
    """reduce() with torch convolutions (any device): H×W -> ceil(H/2)×ceil(W/2)."""
    return _separable(x, _kernel(x), 2)


def _expand_torch(x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """expand() with torch convolutions (any device): h×w -> shape."""
    up = x.new_zeros((2 * x.shape[0], 2 * x.shape[1]))
    up[::2, ::2] = x
    # filter the whole even-sized grid, then crop: the border of an odd side then matches cv2.pyrUp
    return _separable(up, _kernel(x, 2.0), 1)[:shape[0], :shape[1]]


def reduce(x: torch.Tensor) -> torch.Tensor:
    """One Gaussian-pyramid step (blur + drop every second sample): H×W -> ceil(H/2)×ceil(W/2)."""
    if not torch_kernels(x.device):
        return torch.from_numpy(cv2.pyrDown(np.ascontiguousarray(x.numpy())))
    return _reduce_torch(x)


def expand(x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Inverse step (zero-insert + 4×binomial blur): h×w -> shape = (H, W) with ceil(H/2) = h."""
    if not torch_kernels(x.device):
        return torch.from_numpy(cv2.pyrUp(np.ascontiguousarray(x.numpy()), dstsize=(shape[1], shape[0])))
    return _expand_torch(x, shape)


def lowpass(x: torch.Tensor, levels: int) -> torch.Tensor:
    """Gaussian pyramid level `levels` expanded back to full size: H×W -> H×W (the part the LUT keeps)."""
    shapes = []
    for _ in range(levels):
        shapes.append(tuple(x.shape))
        x = reduce(x)
    for shape in reversed(shapes):
        x = expand(x, shape)  # type: ignore[arg-type]
    return x


def _laplacian_torch(y: torch.Tensor) -> torch.Tensor:
    """_laplacian() with a torch convolution (any device)."""
    k = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=y.dtype, device=y.device)
    return F.conv2d(F.pad(y[None, None], (1, 1, 1, 1), mode="reflect"), k.view(1, 1, 3, 3))[0, 0].abs_()


def _laplacian(y: torch.Tensor) -> torch.Tensor:
    """|4-neighbour Laplacian| of an H×W map (Mertens' contrast measure), same shape."""
    if not torch_kernels(y.device):
        return torch.from_numpy(np.abs(cv2.Laplacian(np.ascontiguousarray(y.numpy()), cv2.CV_32F, ksize=1)))
    return _laplacian_torch(y)


def mertens_weight(frame: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """Unnormalised Mertens weight (contrast · saturation · well-exposedness) of one 3×H×W frame -> H×W > 0.

    y: the frame's luminance when already computed. A planar (contiguous) frame is much faster on the CPU.
    """
    y = luminance(frame) if y is None else y
    contrast = _laplacian(y)
    # saturation = standard deviation over R, G, B (torch's std over a strided dim is slow on the CPU)
    saturation = frame.sub(frame.mean(dim=0)).square_().mean(dim=0).sqrt_()
    exposed = torch.exp(frame.sub(0.5).square_().sum(dim=0).mul_(-1 / (2 * _SIGMA_EXPOSED ** 2)))
    return contrast.mul_(saturation).mul_(exposed).add_(1e-12)


_THREADS = 2        # worker threads of the CPU weight computation (numpy and OpenCV release the GIL)
_BAND_PIXELS = 1 << 17  # pixels per band: a band's intermediates stay in cache
_POOL: ThreadPoolExecutor | None = None


def _luma_and_weight_cpu(frame: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(luminance H×W, mertens_weight H×W) of one 3×H×W CPU frame (a view of an interleaved H×W×3 array is read
    without a planar copy), as `luminance` and `mertens_weight` compute them, with numpy and OpenCV over row bands
    on two threads so that every intermediate stays in cache."""
    rgb = frame.permute(1, 2, 0)
    image = rgb.numpy() if rgb.is_contiguous() else np.ascontiguousarray(rgb.numpy())
    h, w = image.shape[:2]
    y = np.empty((h, w), np.float32)
    partial = np.empty((h, w), np.float32)
    to_luma = np.asarray(LUMA, np.float32)
    to_sum = np.ones((1, 3), np.float32)
    gain = np.float32(-1 / (2 * _SIGMA_EXPOSED ** 2))

    def work(rows: slice) -> None:
        band = image[rows]
        _luma_rows(band, y[rows], to_luma)
        # sums then a division, as torch's mean: a grey pixel then has a spread of exactly 0 (weight 1e-12, equal
        # for every frame), where multiplying by 1/3 would leave rounding noise to pick a frame
        mean = cv2.transform(band, to_sum)
        mean /= np.float32(3)  # type: ignore[misc]
        spread = band - mean[..., None]
        spread *= spread  # type: ignore[arg-type]
        variance = cv2.transform(spread, to_sum)
        variance /= np.float32(3)  # type: ignore[misc]
        saturation = np.sqrt(variance, out=variance)
        off = band - np.float32(0.5)
        off *= off
        exposed = cv2.transform(off, to_sum)
        exposed *= gain
        np.exp(exposed, out=exposed)
        np.multiply(saturation, exposed, out=partial[rows])

    def contrast(rows: slice) -> None:
        # the 3×3 Laplacian of these rows, from them and one row either side (the luma of the first pass is
        # complete); at the image's top and bottom the sub-image's border is the image's, reflected as
        # cv2.Laplacian reflects the whole, so every row equals the one-shot filter's (tested)
        top, bottom = max(0, rows.start - 1), min(h, rows.stop + 1)
        lap = cv2.Laplacian(y[top:bottom], cv2.CV_32F, ksize=1)[rows.start - top:rows.stop - top]
        weight = np.abs(lap, out=lap)
        weight *= partial[rows]
        weight += np.float32(1e-12)
        partial[rows] = weight

    _in_bands(h, w, work)
    _in_bands(h, w, contrast)  # a second pass: a band's Laplacian reads its neighbours' luma
    return torch.from_numpy(y), torch.from_numpy(partial)


def _luma_rows(band: np.ndarray, out: np.ndarray, to_luma: np.ndarray) -> None:
    """Rec. 709 luma of an h×w×3 float32 band into `out` (h×w), as `luminance` computes it (float32 products,
    summed left to right), so that both paths give the same luma bit for bit."""
    np.multiply(band[..., 0], to_luma[0], out=out)
    out += band[..., 1] * to_luma[1]
    out += band[..., 2] * to_luma[2]


def _luminance_cpu(image: torch.Tensor) -> torch.Tensor:
    """`luminance` of one 3×H×W float32 CPU image -> H×W, the same values, over row bands on the worker threads;
    a view of an interleaved H×W×3 array (a LUT's output) is read as it is, where torch's strided arithmetic on
    it takes 4× as long (UHD: 0.33 s)."""
    rgb = image.permute(1, 2, 0)
    pixels = rgb.numpy() if rgb.is_contiguous() else np.ascontiguousarray(rgb.numpy())
    h, w = pixels.shape[:2]
    y = np.empty((h, w), np.float32)
    to_luma = np.asarray(LUMA, np.float32)
    _in_bands(h, w, lambda rows: _luma_rows(pixels[rows], y[rows], to_luma))
    return torch.from_numpy(y)


def _in_bands(height: int, width: int, work) -> None:
    """work(rows) for row bands of about _BAND_PIXELS pixels covering height×width, on the two worker threads."""
    global _POOL
    step = max(1, _BAND_PIXELS // max(1, width))
    bands = [slice(r, min(height, r + step)) for r in range(0, height, step)]
    if len(bands) == 1:
        work(bands[0])
        return
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=_THREADS, thread_name_prefix="lutfuse-detail")
    for done in _POOL.map(work, bands):
        del done


def _accumulate_cpu(y: np.ndarray, up: np.ndarray, g_w: np.ndarray, contrast_power: float,
                    num: list[torch.Tensor], den: list[torch.Tensor], level: int) -> None:
    """One level of fused_bandpass's sums on the CPU: band = y − up (consumes `up`), wt = g_w ·
    max(blur(band²), ENERGY_FLOOR)^(contrast_power/2); num[level] += wt · band, den[level] += wt (appended for
    the first frame). All H×W float32."""
    band = np.subtract(y, up, out=up)
    energy = np.square(band)
    k = np.asarray(_BINOMIAL, np.float32)
    energy = cv2.sepFilter2D(energy, -1, k, k, borderType=cv2.BORDER_REFLECT_101)
    first = len(num) == level
    if first:
        num.append(torch.empty(band.shape, dtype=torch.float32))
        den.append(torch.empty(band.shape, dtype=torch.float32))
    n, d = num[level].numpy(), den[level].numpy()
    half = np.float32(contrast_power / 2)

    def work(rows: slice) -> None:
        wt = np.maximum(energy[rows], np.float32(ENERGY_FLOOR))
        if half == 2:
            np.square(wt, out=wt)
        else:
            np.power(wt, half, out=wt)
        wt *= g_w[rows]
        if first:
            np.multiply(wt, band[rows], out=n[rows])
            d[rows] = wt
        else:
            n[rows] += wt * band[rows]
            d[rows] += wt

    _in_bands(band.shape[0], band.shape[1], work)


def _blur(x: torch.Tensor) -> torch.Tensor:
    """5-tap binomial blur (σ ≈ 1 px) of an H×W map, reflect-101 borders, same shape."""
    if not torch_kernels(x.device):
        k = np.asarray(_BINOMIAL, np.float32)
        return torch.from_numpy(cv2.sepFilter2D(np.ascontiguousarray(x.numpy()), -1, k, k,
                                                borderType=cv2.BORDER_REFLECT_101))
    return _separable(x, _kernel(x), 1)


def fused_bandpass(frames: torch.Tensor, levels: int, contrast_power: float = CONTRAST_POWER,
                   valid: torch.Tensor | None = None) -> torch.Tensor:
    """Band-pass (pyramid levels 0..levels-1, collapsed) of a Laplacian-pyramid fusion of the frames' luminance.

    Each band's weights are Mertens' (blurred down the Gaussian pyramid) times the band's local energy to the power
    contrast_power/2, so where the frames disagree the one with the stronger local structure wins (0 gives
    Mertens' fusion exactly). frames: N×3×H×W in [0,1] -> H×W, values about in [-1, 1] (zero mean over large areas).
    valid: optional N×H×W bool (Bracket.valid); a frame's invalid pixels get (almost) no weight.
    """
    lumas, weights = [], []
    total = None
    for i, frame in enumerate(frames):
        if torch_kernels(frame.device):
            planar = frame.contiguous()
            lumas.append(luminance(planar))
            weights.append(mertens_weight(planar, lumas[-1]))
        else:
            y, w = _luma_and_weight_cpu(frame)
            lumas.append(y)
            weights.append(w)
        if valid is not None:
            # a tiny floor keeps pixels that no frame covers defined (equal weights there)
            weights[-1].mul_(valid[i].to(weights[-1].dtype)).add_(1e-12)
        total = weights[-1].clone() if total is None else total.add_(weights[-1])
    num: list[torch.Tensor] = []
    den: list[torch.Tensor] = []
    # frame by frame into per-level numerator and denominator, so a 9-frame UHD bracket needs no N-fold temporaries
    for i, (g_y, w) in enumerate(zip(lumas, weights)):
        g_w = w.div_(total)  # type: ignore[arg-type]
        for level in range(levels):
            down = reduce(g_y)
            if not torch_kernels(g_y.device) and contrast_power > 0:
                # the same arithmetic in numpy over row bands on two threads (intermediates stay in cache)
                _accumulate_cpu(g_y.numpy(), expand(down, tuple(g_y.shape)).numpy(), g_w.numpy(), contrast_power,  # type: ignore[arg-type]
                                num, den, level)
                g_y, g_w = down, reduce(g_w)
                continue
            band = g_y - expand(down, tuple(g_y.shape))  # type: ignore[arg-type]
            wt = g_w
            if contrast_power > 0:
                # energy floored so that the weights stay normal floats in flat areas (where every band is ~0)
                energy = _blur(band.square()).clamp_(min=ENERGY_FLOOR)
                wt = g_w * energy.pow_(contrast_power / 2)
            if i == 0:
                num.append(wt * band)
                den.append(wt.clone())
            else:
                num[level].add_(wt * band)
                den[level].add_(wt)
            g_y, g_w = down, reduce(g_w)
    out = None
    for level in reversed(range(levels)):
        band = num[level].div_(den[level].add_(1e-30))
        out = band if out is None else expand(out, tuple(band.shape)).add_(band)  # type: ignore[arg-type]
    assert out is not None
    return out


def split_levels(height: int, width: int, levels: int = DEFAULT_LEVELS) -> int:
    """Pyramid split level for an H×W image: `levels` at LEVELS_SIDE px, one more per doubling, ≥ 1,
    < log2(min side)."""
    scaled = levels + round(math.log2(max(height, width) / LEVELS_SIDE))
    return int(max(1, min(scaled, math.floor(math.log2(max(2, min(height, width)))))))


def compress(layer: torch.Tensor, knee: float = KNEE) -> torch.Tensor:
    """Soft knee knee·tanh(d/knee): small detail passes unchanged, large edge overshoots saturate; H×W -> H×W."""
    if knee <= 0 or math.isinf(knee):
        return layer
    return layer.div(knee).tanh_().mul_(knee)


def tone_detail(fused: torch.Tensor, tone: torch.Tensor, levels: int, knee: float = KNEE) -> torch.Tensor:
    """Detail layer from a cached fused band-pass (H×W) and a tone-mapped base (3×H×W in [0,1]) -> H×W in
    [-knee, knee]."""
    cpu = not torch_kernels(tone.device) and tone.dtype == torch.float32 and tone.dim() == 3
    y_tone = _luminance_cpu(tone) if cpu else luminance(tone)
    own = y_tone - lowpass(y_tone, levels)
    return compress(fused - own, knee)


def detail_layer(frames: torch.Tensor, tone: torch.Tensor, levels: int = DEFAULT_LEVELS,
                 knee: float = KNEE) -> torch.Tensor:
    """Per-bracket detail D: frames N×3×H×W and tone-mapped base 3×H×W in [0,1] -> H×W in [-knee, knee].

    Zero where the tone map already has the fusion's fine bands; the render adds strength · D to R, G and B.
    """
    if levels < 1:
        raise ValueError(f"detail levels must be at least 1, got {levels}")
    return tone_detail(fused_bandpass(frames, levels), tone, levels, knee)


# Chroma-preserving detail: the offset per channel is D·(T + c)/(Y(T) + c). Its luma is exactly D (the luma
# weights sum to 1), so the luminance detail is the additive form's; but each channel moves in proportion to its
# value, as a local exposure change does, so hue and the ratio R:G:B are kept where Y ≫ c instead of every edge
# being pushed towards grey (lighter) or towards black-and-colour (darker). c keeps near-black pixels (Y ≪ c)
# additive, where a ratio would amplify noise. docs/studies/chroma.md measures both forms; the engine keeps the
# offset form (add_detail's docstring says why).
RATIO_FLOOR = 0.02
DETAIL_MODES = ("ratio", "offset")


def add_detail(image: torch.Tensor, layer: torch.Tensor, strength: float, mode: str = "offset") -> torch.Tensor:
    """In place: add strength · layer (H×W) to image (H×W×3 or 3×H×W), clipped to [0,1]; returns image.

    mode "offset" (the engine's): the same offset on R, G and B (image += s·D); "ratio": s·D·(T + c)/(Y(T) + c)
    per channel (see RATIO_FLOOR), the same luma change in proportion to each channel. The study
    (docs/studies/chroma.md) found "ratio" no better for chroma (it lowers the mean C*ab a little: dark edges lose
    colour in proportion), so the engine keeps "offset"."""
    channels_last = tuple(image.shape[:2]) == tuple(layer.shape)
    d = layer.unsqueeze(-1) if channels_last else layer.unsqueeze(0)
    if mode == "offset":
        return image.add_(d, alpha=float(strength)).clamp_(0.0, 1.0)
    if mode != "ratio":
        raise ValueError(f"unknown detail mode {mode!r} (choose from {', '.join(DETAIL_MODES)})")
    r, g, b = image.unbind(-1 if channels_last else 0)
    y = (r * LUMA[0]).add_(g, alpha=LUMA[1]).add_(b, alpha=LUMA[2]).add_(RATIO_FLOOR)
    gain = (d * float(strength)).div_(y.unsqueeze(-1) if channels_last else y.unsqueeze(0))
    offset = (image + RATIO_FLOOR).mul_(gain)
    return image.add_(offset).clamp_(0.0, 1.0)
