"""Two-phase HQ refinement networks (METHODS.md B): phase 1 generates an intermediate exposure from (under, over),
phase 2 (AMNet) fuses (under, intermediate, over) with attention. Widths are arguments so that CPU-trainable
versions keep the published structure."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MULTIPLE = 16  # phase 1 downsamples four times


def pad_to_multiple(x: torch.Tensor, multiple: int = MULTIPLE) -> tuple[torch.Tensor, int, int]:
    """Reflect-pad N×C×H×W on the bottom/right to sides divisible by `multiple`; returns (padded, H, W)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        # reflect needs pad < side; replicate covers the tiny-image corner case
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, h, w


def conv(cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    """k×k convolution with 'same' padding (for stride 1)."""
    return nn.Conv2d(cin, cout, k, stride=stride, padding=dilation * (k // 2), dilation=dilation)


class ResidualBlock(nn.Module):
    """Two 3×3 convs with a GELU between and an identity shortcut; N×C×H×W -> N×C×H×W."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv(channels, channels), nn.GELU(), conv(channels, channels))
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N×C×H×W features -> N×C×H×W."""
        return self.act(x + self.body(x))


class DilatedDenseBlock(nn.Module):
    """Residual dense block of dilated 3×3 convs (AHDRNet's DRDB): `layers` convs each adding `growth` channels,
    a 1×1 fusion back to the input width, plus the input; N×C×H×W -> N×C×H×W."""

    def __init__(self, channels: int, growth: int, layers: int = 6, dilation: int = 2) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            conv(channels + i * growth, growth, dilation=dilation) for i in range(layers)
        )
        self.fuse = nn.Conv2d(channels + layers * growth, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N×C×H×W features -> N×C×H×W."""
        feats = x
        for layer in self.layers:
            feats = torch.cat([feats, F.gelu(layer(feats))], dim=1)
        return x + self.fuse(feats)


class Encoder(nn.Module):
    """Full-resolution head conv then four stride-2 stages (conv + residual block) of widths w, 2w, 4w, 8w."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.head = nn.Sequential(conv(3, width), nn.GELU())
        chans = [width, width, 2 * width, 4 * width, 8 * width]
        self.stages = nn.ModuleList(
            nn.Sequential(conv(chans[i], chans[i + 1], stride=2), nn.GELU(), ResidualBlock(chans[i + 1]))
            for i in range(4)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """N×3×H×W in [0,1] (H, W multiples of 16) -> features at scales 1, 1/2, 1/4, 1/8, 1/16."""
        feats = [self.head(x)]
        for stage in self.stages:
            feats.append(stage(feats[-1]))
        return feats


class Phase1UNet(nn.Module):
    """Intermediate-exposure generator: two encoders (under, over), dilated dense bottleneck (dilations 1, 2, 5),
    transposed-conv decoder with skips from both encoders, residual from the over features, sigmoid output."""

    def __init__(self, width: int = 32, layers: int = 6) -> None:
        super().__init__()
        self.config = {"width": width, "layers": layers}   # saved beside the weights (core.weights)
        self.width = width
        w = width
        self.enc_under = Encoder(w)
        self.enc_over = Encoder(w)
        deep = 8 * w
        self.merge = nn.Sequential(conv(2 * deep, deep), nn.GELU())
        self.dense = nn.ModuleList(DilatedDenseBlock(deep, w, layers, d) for d in (1, 2, 5))
        self.fuse = nn.Sequential(nn.Conv2d(3 * deep, deep, 1), conv(deep, deep))
        # decoder: 1/16 -> 1/8 -> 1/4 -> 1/2 -> 1; skip widths of both encoders at each target scale
        dec_in = [8 * w, 4 * w, 2 * w, w]
        dec_out = [4 * w, 2 * w, w, w]
        skip = [4 * w, 2 * w, w, w]
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(dec_in[i], dec_out[i], 4, stride=2, padding=1) for i in range(4)
        )
        self.dec = nn.ModuleList(
            nn.Sequential(conv(dec_out[i] + 2 * skip[i], dec_out[i]), nn.GELU()) for i in range(4)
        )
        self.out = conv(w, 3)

    def forward(self, under: torch.Tensor, over: torch.Tensor) -> torch.Tensor:
        """under, over: N×3×H×W in [0,1] (any H, W) -> generated middle exposure N×3×H×W in [0,1]."""
        under_p, h, w = pad_to_multiple(under)
        over_p, _, _ = pad_to_multiple(over)
        fu = self.enc_under(under_p)
        fo = self.enc_over(over_p)
        x = self.merge(torch.cat([fu[-1], fo[-1]], dim=1))
        outs = []
        for block in self.dense:
            x = block(x)
            outs.append(x)
        # residual from the over-exposure features: the over frame carries the shadow detail the middle needs
        x = self.fuse(torch.cat(outs, dim=1)) + fo[-1]
        for i in range(4):
            x = F.gelu(self.up[i](x))
            x = self.dec[i](torch.cat([x, fu[3 - i], fo[3 - i]], dim=1))
        return torch.sigmoid(self.out(x))[..., :h, :w]


class Attention(nn.Module):
    """Spatial attention of a side frame against the reference (intermediate): concat -> conv -> GELU -> conv ->
    sigmoid, multiplied onto the side features."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(conv(2 * channels, 2 * channels), nn.GELU(), conv(2 * channels, channels),
                                 nn.Sigmoid())

    def forward(self, side: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """side, ref: N×C×H×W features -> side weighted by an attention map in [0,1], N×C×H×W."""
        return side * self.net(torch.cat([side, ref], dim=1))


class AMNet(nn.Module):
    """Phase 2 attention fusion (AHDRNet with GELU) as a residual over a classical base fusion: shared conv on the
    three frames and the base, attention for under and over against the intermediate, three dilated dense blocks,
    1×1 fusion, global residual from the intermediate; the output head adds its result to the base image.

    The base (exposure fusion of under, intermediate and over, computed once on the whole image: core.hq) gives
    the network an image-space skip: predicting the picture from scratch left it below Mertens after the training
    a CPU allows, while the residual head starts at the base exactly (its last conv is zero-initialised)."""

    def __init__(self, width: int = 64, growth: int | None = None, layers: int = 6, dilation: int = 2) -> None:
        super().__init__()
        self.width = width
        c = width
        g = growth if growth is not None else max(c // 2, 4)
        self.config = {"width": width, "growth": g, "layers": layers, "dilation": dilation}  # core.weights
        self.shared = nn.Sequential(conv(3, c), nn.GELU())
        self.att_under = Attention(c)
        self.att_over = Attention(c)
        self.merge = conv(4 * c, c)
        self.dense = nn.ModuleList(DilatedDenseBlock(c, g, layers, dilation) for _ in range(3))
        self.fuse = nn.Conv2d(3 * c, c, 1)
        self.global_conv = conv(c, c)
        self.out = nn.Sequential(conv(c, c), nn.GELU(), conv(c, 3))
        nn.init.zeros_(self.out[-1].weight)  # type: ignore[arg-type]
        nn.init.zeros_(self.out[-1].bias)  # type: ignore[arg-type]

    def forward(self, under: torch.Tensor, middle: torch.Tensor, over: torch.Tensor,
                base: torch.Tensor) -> torch.Tensor:
        """under, middle (intermediate), over, base (their exposure fusion): N×3×H×W in [0,1] -> fused N×3×H×W
        in [0,1]."""
        fm = self.shared(middle)
        fu = self.att_under(self.shared(under), fm)
        fo = self.att_over(self.shared(over), fm)
        x = self.merge(torch.cat([fu, fm, fo, self.shared(base)], dim=1))
        outs = []
        for block in self.dense:
            x = block(x)
            outs.append(x)
        x = self.global_conv(self.fuse(torch.cat(outs, dim=1))) + fm
        return (base + self.out(x)).clamp(0.0, 1.0)
