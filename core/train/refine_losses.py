"""Losses of the two-phase refinement: L1 + (1 - SSIM on grey) + a stand-in for the VGG16 perceptual term.

No pretrained VGG weights can be had offline, so the perceptual term (0.01 x VGG16 relu1_2..relu4_3 in the thesis)
is replaced by (1 - MS-SSIM) plus an L1 on image gradients: both reward structure and local contrast, which is
what the perceptual term is there for."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lutfuse.core.metrics import MATLAB_GREY as MEF_GREY
from lutfuse.core.metrics import SCALE_WEIGHTS
from lutfuse.core.train.losses import blur, gaussian_kernel, ssim_parts

# Rec. 601 luma, as OpenCV's grey conversion
GREY = (0.299, 0.587, 0.114)
# the first three MS-SSIM scale weights of Wang et al. 2003, renormalised: 96-px crops allow three scales
MS_WEIGHTS = (0.0448, 0.2856, 0.3001)


def grey(x: torch.Tensor) -> torch.Tensor:
    """N×3×H×W RGB in [0,1] -> N×1×H×W luma in [0,1]."""
    w = torch.tensor(GREY, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SSIM on grey (Gaussian window σ=1.5); a, b N×3×H×W in [0,1] -> scalar in [-1,1]."""
    return ssim_parts(grey(a), grey(b))[0].mean()


def ms_ssim(a: torch.Tensor, b: torch.Tensor, weights: tuple[float, ...] = MS_WEIGHTS) -> torch.Tensor:
    """Multi-scale SSIM on grey; a, b N×3×H×W in [0,1] (sides ≥ 11·2^(scales-1) recommended) -> scalar in [0,1]."""
    x, y = grey(a), grey(b)
    w = torch.tensor(weights, dtype=a.dtype, device=a.device)
    w = w / w.sum()
    value = torch.ones(a.shape[0], dtype=a.dtype, device=a.device)
    for i in range(len(weights)):
        full, cs = ssim_parts(x, y)
        term = full if i == len(weights) - 1 else cs
        # clamp: a negative cs raised to a fractional power is undefined and kills the gradient
        value = value * term.clamp(min=1e-4) ** w[i]
        if i < len(weights) - 1:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    return value.mean()


def gradient_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of horizontal and vertical finite differences; N×C×H×W -> scalar ≥ 0."""
    dxa, dxb = a[..., :, 1:] - a[..., :, :-1], b[..., :, 1:] - b[..., :, :-1]
    dya, dyb = a[..., 1:, :] - a[..., :-1, :], b[..., 1:, :] - b[..., :-1, :]
    return (dxa - dxb).abs().mean() + (dya - dyb).abs().mean()


# MEF-SSIM (core.metrics) in torch, as a loss: the same windows, constants and three scales, on the 8-bit scale
MEF_WINDOW, MEF_SIGMA, MEF_C2 = 11, 1.5, (0.03 * 255) ** 2
MEF_EPS = float(torch.finfo(torch.float64).eps)


def _gau(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Valid Gaussian filter of every channel of N×C×H×W."""
    c = x.shape[1]
    out = blur(x.reshape(-1, 1, *x.shape[-2:]), g)
    return out.reshape(x.shape[0], c, *out.shape[-2:])


def _mef_target(src: torch.Tensor) -> dict[str, torch.Tensor]:
    """Everything of one MEF-SSIM scale that depends on the sources alone (src N×K×H×W, 8-bit scale): the
    desired patch is built from the sources (strength = max, structure weighted by strength**p)."""
    n, k = src.shape[:2]
    taps = MEF_WINDOW * MEF_WINDOW
    g = gaussian_kernel(MEF_WINDOW, MEF_SIGMA, src)

    def box(x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, MEF_WINDOW, stride=1)

    eps = float(torch.finfo(src.dtype).eps) if src.dtype != torch.float64 else MEF_EPS
    tiny = 1e-300 if src.dtype == torch.float64 else 1e-30
    with torch.no_grad():
        pair = src[:, :, None] * src[:, None, :]                       # N×K×K×H×W
        mu = box(src)
        cov = box(pair.flatten(1, 2)).unflatten(1, (k, k)) - mu[:, :, None] * mu[:, None, :]
        g_x = _gau(src, g)
        g_cc = (_gau(pair.flatten(1, 2), g).unflatten(1, (k, k)) - mu[:, :, None] * g_x[:, None, :]
                - g_x[:, :, None] * mu[:, None, :] + mu[:, :, None] * mu[:, None, :])
        strength = torch.sqrt((taps * torch.diagonal(cov, dim1=1, dim2=2).movedim(-1, 1)).clamp(min=0))
        ed = strength + 0.001
        num = torch.sqrt((taps * cov.sum(dim=(1, 2))).clamp(min=0))
        r = ((num + eps) / (strength.sum(1) + eps)).clamp(max=1 - eps)
        p = torch.tan(torch.pi / 2 * r).clamp(max=10.0)
        w = torch.exp(p[:, None] * torch.log(ed / MEF_WINDOW)) + eps
        a = w / w.sum(1, keepdim=True) / ed                             # N×K×h×w
        norm2 = taps * (a[:, :, None] * a[:, None, :] * cov).sum(dim=(1, 2))
        scale = torch.where(norm2 > 0, ed.amax(1) / torch.sqrt(norm2.clamp(min=tiny)), torch.zeros_like(norm2))
        mu1 = scale * (a * (g_x - mu)).sum(1)
        sigma1 = scale**2 * (a[:, :, None] * a[:, None, :] * g_cc).sum(dim=(1, 2)) - mu1**2
    return {"src": src, "g": g, "mu": mu, "a": a, "scale": scale, "mu1": mu1, "sigma1": sigma1}


def _mef_compare(t: dict[str, torch.Tensor], fused: torch.Tensor) -> torch.Tensor:
    """Mean MEF-SSIM map at one scale of fused N×1×H×W against a _mef_target -> (N,); only this carries gradient."""
    g, src = t["g"], t["src"]
    mu_f = _gau(fused, g)[:, 0]
    sigma2 = _gau(fused * fused, g)[:, 0] - mu_f**2
    sigma12 = t["scale"] * (t["a"] * (_gau(src * fused, g) - t["mu"] * mu_f[:, None])).sum(1) - t["mu1"] * mu_f
    q = (2 * sigma12 + MEF_C2) / (t["sigma1"] + sigma2 + MEF_C2)
    return q.flatten(1).mean(1)


def _mef_scale(src: torch.Tensor, fused: torch.Tensor) -> torch.Tensor:
    """Mean MEF-SSIM map at one scale per image: src N×K×H×W, fused N×1×H×W (8-bit scale) -> (N,)."""
    return _mef_compare(_mef_target(src), fused)


def _half(x: torch.Tensor) -> torch.Tensor:
    """2×2 mean with a symmetric border for odd sides, as the reference code."""
    pad = (0, x.shape[-1] % 2, 0, x.shape[-2] % 2)
    return F.avg_pool2d(F.pad(x, pad, mode="replicate"), 2)


class MEFSSIM:
    """MEF-SSIM against fixed sources, with everything that depends on the sources alone computed once: for many
    evaluations against the same bracket (a per-bracket refinement). sources N×K×3×H×W in [0,1]; dtype float64
    reproduces core.metrics (without its 8-bit quantisation), float32 is about twice as fast and agrees to ~1e-4."""

    def __init__(self, sources: torch.Tensor, dtype: torch.dtype = torch.float64) -> None:
        w = torch.tensor(MEF_GREY, dtype=dtype, device=sources.device).view(1, 1, 3, 1, 1)
        src = (sources.to(dtype) * w).sum(2) * 255.0
        self.dtype = dtype
        self.targets = []
        for level in range(len(SCALE_WEIGHTS)):
            if level:
                src = _half(src)
            self.targets.append(_mef_target(src))

    def __call__(self, fused: torch.Tensor) -> torch.Tensor:
        """fused N×3×H×W in [0,1] (the sources' size) -> MEF-SSIM (N,) in (0,1], differentiable in `fused`."""
        w = torch.tensor(MEF_GREY, dtype=self.dtype, device=fused.device).view(1, 3, 1, 1)
        fus = (fused.to(self.dtype) * w).sum(1, keepdim=True) * 255.0
        value = torch.ones(fused.shape[0], dtype=self.dtype, device=fused.device)
        for level, (target, weight) in enumerate(zip(self.targets, SCALE_WEIGHTS)):
            if level:
                fus = _half(fus)
            value = value * _mef_compare(target, fus).clamp(min=1e-4) ** float(weight)
        return value


def mef_ssim(sources: torch.Tensor, fused: torch.Tensor) -> torch.Tensor:
    """MEF-SSIM of fused images against their sources (core.metrics.mef_ssim without 8-bit quantisation);
    sources N×K×3×H×W, fused N×3×H×W in [0,1] (sides ≥ 44) -> (N,) in (0,1], differentiable in `fused`."""
    return MEFSSIM(sources)(fused)


@dataclass(frozen=True)
class LossWeights:
    """Weights of the terms; L1 and SSIM follow the thesis, the last two replace its 0.01·VGG16 term."""

    l1: float = 1.0
    ssim: float = 0.1
    ms_ssim: float = 0.1
    gradient: float = 0.2


def refine_loss(pred: torch.Tensor, target: torch.Tensor,
                weights: LossWeights = LossWeights()) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss and its terms; pred, target N×3×H×W in [0,1] -> (scalar tensor, {term: value})."""
    terms = {
        "l1": (pred - target).abs().mean(),
        "ssim": 1 - ssim(pred, target),
        "ms_ssim": 1 - ms_ssim(pred, target),
        "gradient": gradient_l1(pred, target),
    }
    total = sum(getattr(weights, k) * v for k, v in terms.items())
    return total, {k: float(v.detach()) for k, v in terms.items()}
