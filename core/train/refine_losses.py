"""Losses of the two-phase refinement: L1 + (1 - SSIM on grey) + a stand-in for the VGG16 perceptual term.

No pretrained VGG weights can be had offline, so the perceptual term (0.01 x VGG16 relu1_2..relu4_3 in the thesis)
is replaced by (1 - MS-SSIM) plus an L1 on image gradients: both reward structure and local contrast, which is
what the perceptual term is there for."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

# Rec. 601 luma, as OpenCV's grey conversion
GREY = (0.299, 0.587, 0.114)
# the first three MS-SSIM scale weights of Wang et al. 2003, renormalised: 96-px crops allow three scales
MS_WEIGHTS = (0.0448, 0.2856, 0.3001)


def grey(x: torch.Tensor) -> torch.Tensor:
    """N×3×H×W RGB in [0,1] -> N×1×H×W luma in [0,1]."""
    w = torch.tensor(GREY, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def _gaussian(size: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    """Normalised 1-D Gaussian of `size` taps as a 1×1×1×size kernel."""
    t = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    g = torch.exp(-(t**2) / (2 * sigma**2))
    return (g / g.sum()).view(1, 1, 1, size)


def _blur(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable valid Gaussian filter of N×1×H×W."""
    return F.conv2d(F.conv2d(x, g), g.transpose(-1, -2))


def ssim_parts(a: torch.Tensor, b: torch.Tensor, size: int = 11, sigma: float = 1.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean luminance·contrast·structure and contrast·structure terms per image; a, b N×1×H×W in [0,1] -> (N,), (N,)."""
    c1, c2 = 0.01**2, 0.03**2
    size = min(size, a.shape[-1], a.shape[-2])
    g = _gaussian(size, sigma, a)
    mu_a, mu_b = _blur(a, g), _blur(b, g)
    var_a = _blur(a * a, g) - mu_a**2
    var_b = _blur(b * b, g) - mu_b**2
    cov = _blur(a * b, g) - mu_a * mu_b
    cs = (2 * cov + c2) / (var_a + var_b + c2)
    lum = (2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)
    return (lum * cs).flatten(1).mean(1), cs.flatten(1).mean(1)


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
