"""Losses of the LUT teacher and student (also general image losses: `l1`, `ssim`, `ssim_loss` on N×3×H×W).

LUT tensors here are batched in the core layout: N×G×G×G×3 = lut[n, b, g, r, c] (red fastest)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error of two same-shape tensors (e.g. N×3×H×W in [0,1]) -> scalar ≥ 0."""
    return (pred - target).abs().mean()


def gaussian_kernel(size: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    """Normalised 1-D Gaussian of `size` taps as a 1×1×1×size kernel on like's device/dtype."""
    t = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    g = torch.exp(-(t**2) / (2 * sigma**2))
    return (g / g.sum()).view(1, 1, 1, size)


def blur(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' filter of N×1×H×W by the 1-D kernel g (gaussian_kernel) -> N×1×(H-s+1)×(W-s+1)."""
    return F.conv2d(F.conv2d(x, g), g.transpose(-1, -2))


def ssim_parts(a: torch.Tensor, b: torch.Tensor, size: int = 11,
               sigma: float = 1.5) -> tuple[torch.Tensor, torch.Tensor]:
    """The training SSIM, one home (Wang et al. 2004: Gaussian window σ = 1.5, C1 = 0.01², C2 = 0.03², 'valid'
    windows): mean luminance·contrast·structure and contrast·structure terms per image; a, b N×1×H×W in [0,1]
    -> (N,), (N,). core.metrics.ssim is the numpy metric it follows; refine_losses builds MS-SSIM on it."""
    c1, c2 = 0.01**2, 0.03**2
    size = min(size, a.shape[-1], a.shape[-2])
    g = gaussian_kernel(size, sigma, a)
    mu_a, mu_b = blur(a, g), blur(b, g)
    var_a = blur(a * a, g) - mu_a**2
    var_b = blur(b * b, g) - mu_b**2
    cov = blur(a * b, g) - mu_a * mu_b
    cs = (2 * cov + c2) / (var_a + var_b + c2)
    lum = (2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)
    return (lum * cs).flatten(1).mean(1), cs.flatten(1).mean(1)


def ssim(pred: torch.Tensor, target: torch.Tensor, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM over channels and valid windows (ssim_parts per channel); N×C×H×W in [0,1] -> scalar in [-1,1]."""
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(f"ssim expects two N×C×H×W tensors of one shape, got {tuple(pred.shape)}, "
                         f"{tuple(target.shape)}")
    n, c, h, w = pred.shape
    return ssim_parts(pred.reshape(n * c, 1, h, w), target.reshape(n * c, 1, h, w), size, sigma)[0].mean()


def ssim_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 − SSIM; N×C×H×W in [0,1] -> scalar in [0,2], 0 for identical images."""
    return 1.0 - ssim(pred, target)


def apply_luts(luts: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Differentiable trilinear apply, one LUT per image: N×G×G×G×3, N×3×H×W in [0,1] -> N×3×H×W."""
    volume = luts.permute(0, 4, 1, 2, 3)                                   # N×C×D(b)×H(g)×W(r)
    grid = (images.clamp(0.0, 1.0).permute(0, 2, 3, 1) * 2 - 1).unsqueeze(1)  # N×1×H×W×(x=r, y=g, z=b)
    return F.grid_sample(volume, grid, mode="bilinear", padding_mode="border", align_corners=True)[:, :, 0]


def lookup(luts: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
    """Trilinear values of N LUTs (N×G×G×G×3) at N×P×3 colours in [0,1] -> N×P×3."""
    pts = rgb.permute(0, 2, 1).unsqueeze(-1)                                # N×3×P×1 as a P×1 "image"
    return apply_luts(luts, pts)[..., 0].permute(0, 2, 1)


def smoothness(luts: torch.Tensor) -> torch.Tensor:
    """Total variation: mean squared difference of neighbouring entries along b, g, r; N×G×G×G×3 -> scalar ≥ 0."""
    return sum(torch.diff(luts, dim=d).pow(2).mean() for d in (1, 2, 3))  # type: ignore[return-value]


def monotonicity(luts: torch.Tensor) -> torch.Tensor:
    """Mean ReLU(lut[i] − lut[i+1]) along each lattice axis, all channels (Zeng et al.); N×G×G×G×3 -> scalar ≥ 0."""
    return sum(torch.relu(-torch.diff(luts, dim=d)).mean() for d in (1, 2, 3))  # type: ignore[return-value]


def reconstruction(luts: torch.Tensor, base: torch.Tensor, reference: torch.Tensor,
                   ssim_weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """L1 + ssim_weight·(1−SSIM) of LUT(base) against the reference; returns (loss, the N×3×H×W output)."""
    out = apply_luts(luts, base)
    return l1(out, reference) + ssim_weight * ssim_loss(out, reference), out


# sRGB (IEC 61966-2-1) -> CIE XYZ (D65) and the D65 white, for the differentiable CIELAB below (CIE 15:2004)
_SRGB_TO_XYZ = ((0.4124564, 0.3575761, 0.1804375), (0.2126729, 0.7151522, 0.0721750), (0.0193339, 0.1191920, 0.9503041))
_D65 = (0.95047, 1.0, 1.08883)


def lab(rgb: torch.Tensor) -> torch.Tensor:
    """Differentiable CIELAB (D65) of sRGB-encoded N×3×H×W in [0,1] -> N×3×H×W (L* 0..100, a*, b*).

    The sRGB EOTF, the sRGB->XYZ matrix and the CIE f(t) (cube root above (6/29)³, linear below); the cube root
    is floored so that its gradient stays finite at black."""
    x = rgb.clamp(0.0, 1.0)
    lin = torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055).clamp_min(1e-6) ** 2.4)
    m = torch.tensor(_SRGB_TO_XYZ, dtype=x.dtype, device=x.device)
    xyz = torch.einsum("ij,njhw->nihw", m, lin) / torch.tensor(_D65, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    eps = (6 / 29) ** 3
    f = torch.where(xyz > eps, xyz.clamp_min(eps) ** (1 / 3), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return torch.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], dim=1)


def colour(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Colour term: mean |Δa*| + |Δb*| in CIELAB / 100 of N×3×H×W sRGB images in [0,1] -> scalar ≥ 0.

    Lightness is left to L1 and SSIM; the chroma and hue a luminance-dominated L1 hardly weighs are scored
    here, in a perceptual space (the a*b* plane of CIELAB; CIEDE2000's chroma and hue terms are refinements)."""
    d = lab(pred)[:, 1:] - lab(target)[:, 1:]
    return d.abs().mean() / 100.0
