"""The LUT teacher (Su & Zheng, arXiv 2412.13749): one prior grid per input exposure, fused by a learned F.

Prior grids, Zeng-style: a shared CNN looks at one frame's 128×128 thumbnail together with the bracket context
(the per-pixel mean, the darkest and the brightest frame, and the frame's rank in the bracket as a constant
plane) and predicts M coefficients over M learned basis LUTs of 33³ (basis 0 starts as the identity, the others
as small noise). Weighted fusion F: per lattice cell, softmax over the K frames of logits a_k + Σ_j d_kj·V_j,
with a_k, d_k predicted by the same CNN and V_j learned weight grids, so the fused grid is a convex
combination of the priors at every cell. Any K ≥ 2: frames share the CNN and the softmax takes any K.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from lutfuse.core.models.lut_student import INPUT_SIZE

GRID = 33


def _identity(size: int) -> torch.Tensor:
    """Identity LUT G×G×G×3 in the core layout lut[b, g, r] = (r, g, b)/(G−1)."""
    ramp = torch.linspace(0.0, 1.0, size)
    b, g, r = torch.meshgrid(ramp, ramp, ramp, indexing="ij")
    return torch.stack([r, g, b], dim=-1)


def frame_inputs(frames: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """N×K×3×H×W in [0,1] darkest first -> N×K×13×size×size: frame, mean, darkest, brightest, rank plane."""
    if frames.dim() != 5 or frames.shape[2] != 3:
        raise ValueError(f"expected frames N×K×3×H×W, got shape {tuple(frames.shape)}")
    n, k, _, h, w = frames.shape
    if k < 2:
        raise ValueError(f"a bracket has at least 2 frames, got {k}")
    x = frames.reshape(n * k, 3, h, w).float()
    if (h, w) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    x = x.clamp(0.0, 1.0).view(n, k, 3, size, size)
    ctx = torch.cat([x.mean(dim=1), x[:, 0], x[:, -1]], dim=1).unsqueeze(1).expand(-1, k, -1, -1, -1)
    rank = torch.linspace(0.0, 1.0, k, device=x.device).view(1, k, 1, 1, 1).expand(n, k, 1, size, size)
    return torch.cat([x, ctx, rank], dim=2)


class TeacherCNN(nn.Module):
    """Zeng et al.'s backbone (strided convs 16/32/64/128/128, LeakyReLU 0.2, InstanceNorm, dropout) + global stats."""

    def __init__(self, in_ch: int, out: int, widths: tuple[int, ...] = (16, 32, 64, 128, 128)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_ch
        for i, w in enumerate(widths):
            layers += [nn.Conv2d(c, w, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
            if 0 < i < len(widths) - 1:
                layers.append(nn.InstanceNorm2d(w, affine=True))
            c = w
        self.conv = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Dropout(0.5))
        self.head = nn.Linear(c * 4 + 2 * in_ch, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """B×C×S×S in [0,1] -> B×out."""
        glob = torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)
        return self.head(torch.cat([self.conv(x), glob], dim=1))


class LUTTeacher(nn.Module):
    """Frames -> K prior grids (33³) -> per-cell softmax fusion -> one fused grid."""

    def __init__(self, bases: int = 3, weight_grids: int = 4, grid: int = GRID) -> None:
        super().__init__()
        self.config = {"bases": bases, "weight_grids": weight_grids, "grid": grid}
        self.m, self.j, self.grid = bases, weight_grids, grid
        self.cnn = TeacherCNN(13, bases + 1 + weight_grids)
        basis = torch.stack([_identity(grid)] + [1e-3 * torch.randn(grid, grid, grid, 3) for _ in range(bases - 1)])
        self.bases = nn.Parameter(basis)                                       # M×G×G×G×3
        self.weight_grids = nn.Parameter(torch.zeros(weight_grids, grid, grid, grid, 1))
        with torch.no_grad():
            # start every prior at the identity (coefficients (1, 0, ...)) and F at equal weights
            self.cnn.head.weight.mul_(0.01)
            self.cnn.head.bias.zero_()
            self.cnn.head.bias[0] = 1.0

    def forward(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """N×K×3×H×W in [0,1] -> priors N×K×G×G×G×3, weights N×K×G×G×G×1 (sum 1 over K), lut N×G×G×G×3."""
        n, k = frames.shape[:2]
        x = frame_inputs(frames.to(self.bases.device))
        out = self.cnn(x.flatten(0, 1)).view(n, k, -1)
        coef, bias, mix = out[..., : self.m], out[..., self.m], out[..., self.m + 1:]
        priors = torch.einsum("nkm,mbgrc->nkbgrc", coef, self.bases)
        logits = bias.view(n, k, 1, 1, 1, 1) + torch.einsum("nkj,jbgrc->nkbgrc", mix, self.weight_grids)
        weights = torch.softmax(logits, dim=1)
        lut = (weights * priors).sum(dim=1)
        return {"priors": priors, "weights": weights, "lut": lut}

    def fuse(self, frames: torch.Tensor) -> torch.Tensor:
        """N×K×3×H×W in [0,1] -> fused N×G×G×G×3 LUT (unclamped; trained towards [0,1])."""
        return self.forward(frames)["lut"]


def load_teacher(path: Path | None = None, device: torch.device | str | None = None) -> LUTTeacher:
    """LUTTeacher with weights from `path` (default resources/weights/lut_teacher.pt), eval mode, on `device`."""
    from lutfuse.core.weights import load_model, shipped

    path = Path(path) if path is not None else shipped("LUT teacher")
    model = load_model(LUTTeacher, path, "LUT teacher", " (train them with `lutfuse train teacher`)")
    return model.to(device if device is not None else "cpu").eval()
