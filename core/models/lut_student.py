"""The INR student (Su & Zheng, arXiv 2412.13749): bracket -> latent code; (latent, r, g, b) -> output colour.

Any number of frames K in 2..9: the encoder never sees the frames one by one. It sees a fixed 12-channel
summary at 128×128 — (darkest, per-pixel mean, brightest) plus three exposure-statistics channels (per-pixel
spread of the frames' grey levels, fraction of frames clipped high, fraction clipped low) — so K only changes
the values of the statistics, never a shape.

Cost split (our design; the paper does not publish sizes): almost all parameters sit in the per-bracket path
(CNN encoder + a hypernetwork that turns the latent into FiLM scales/biases of the point MLP and into the
point MLP's output layer), which runs once per bracket. The per-point network is narrow: Fourier features of
(r, g, b) (4 octaves) -> 3 FiLM-modulated ReLU layers of width 64 -> 3, a residual over identity. On a lattice
the first layer is separable (the features of r, g and b enter linearly), so sample() computes it as a
broadcast sum of three G×64 tables and pays matrix products only for the two inner layers.

Large lattices on the CPU (G > WORKER_GRID) skip dead ReLUs exactly, block by block (cubes of about 16³ lattice
points on the caller's thread, 20³ on worker threads, BLOCK_POINTS): a block's first-layer pre-activations lie
between the sums of the tables' extremes over the block, so the neurons dead everywhere in it leave the products,
and those alive everywhere in it are linear there, so their share of layer 2 splits into a per-(g, r) and a per-b
term; a layer-2 or layer-3 neuron whose upper bound over the block (from the exact ranges of its inputs there) is <=
0 is not computed, and of the rest only those positive somewhere in the block enter the next product. On real
latents at G = 129 that leaves 21-30 % of the dense multiply-adds (measured on 5 brackets); the CPU time drops to
about 0.65 of the dense products' (the smaller products run less efficiently, and the bounds and row selections cost
their share).
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

INPUT_SIZE = 128        # side the encoder works at (the engine downsamples to this)
OCTAVES = 4             # Fourier octaves of each colour coordinate
DEFAULT_CHUNK = 1 << 12  # lattice points per chunk in sample() on the CPU: intermediates stay in cache
DEVICE_CHUNK = 1 << 13   # ... elsewhere (whole blue slices only: fewer, larger kernel launches)
CLIP_HIGH, CLIP_LOW = 0.95, 0.05
WORKER_GRID = 96         # above this grid size the CPU samples sparse blocks on worker threads (see sample())
BLOCK_TASK = 8           # blocks per worker task (one context switch and scratch look-up per task)
# Lattice points per block of the sparse sampler on worker threads (on the caller: DEFAULT_CHUNK). Two workers
# contend for the GIL over each block's ~30 small op calls, so fewer, larger blocks pay although fewer neurons are
# dead over each: G = 129, 2 idle Zen 4 cores, real latents, median wall (CPU) ms: 16³ 360 (594) and 369 (602),
# 20³ 288 (518) and 294 (539); on one thread 16³ was the better, 340 vs 349 and 385 vs 453.
BLOCK_POINTS = 8000


def fourier_features(x: torch.Tensor, octaves: int = OCTAVES) -> torch.Tensor:
    """...×1 coordinate in [0,1] -> ...×(1+2·octaves): [x, sin(2^k π x), cos(2^k π x)] for k < octaves."""
    freqs = (2.0 ** torch.arange(octaves, dtype=x.dtype, device=x.device)) * math.pi
    arg = x * freqs
    return torch.cat([x, torch.sin(arg), torch.cos(arg)], dim=-1)


def bracket_summary(frames: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """N×K×3×H×W in [0,1] (darkest first) -> N×12×size×size: darkest, mean, brightest, 3 statistics channels."""
    if frames.dim() != 5 or frames.shape[2] != 3:
        raise ValueError(f"expected frames N×K×3×H×W, got shape {tuple(frames.shape)}")
    n, k, _, h, w = frames.shape
    if not 2 <= k <= 9:
        raise ValueError(f"a bracket has 2 to 9 frames, got {k}")
    x = frames.reshape(n * k, 3, h, w).float()
    if (h, w) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    x = x.clamp(0.0, 1.0).view(n, k, 3, size, size)
    grey = x.mean(dim=2)                                    # N×K×s×s
    stats = torch.stack([grey.std(dim=1, unbiased=False),
                         (grey > CLIP_HIGH).float().mean(dim=1),
                         (grey < CLIP_LOW).float().mean(dim=1)], dim=1)
    return torch.cat([x[:, 0], x.mean(dim=1), x[:, -1], stats], dim=1)


class Encoder(nn.Module):
    """Strided CNN on the 12-channel summary, plus its global statistics (InstanceNorm drops absolute levels)."""

    def __init__(self, latent: int = 128, in_ch: int = 12, widths: tuple[int, ...] = (16, 32, 64, 128, 128)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_ch
        for i, w in enumerate(widths):
            layers += [nn.Conv2d(c, w, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
            if 0 < i < len(widths) - 1:
                layers.append(nn.InstanceNorm2d(w, affine=True))
            c = w
        self.conv = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.head = nn.Linear(c * 4 + 2 * in_ch, latent)

    def forward(self, summary: torch.Tensor) -> torch.Tensor:
        """N×12×S×S summary in [0,1] -> N×latent."""
        feats = self.pool(self.conv(summary)).flatten(1)
        glob = torch.cat([summary.mean(dim=(2, 3)), summary.std(dim=(2, 3))], dim=1)
        return self.head(torch.cat([feats, glob], dim=1))


class LUTStudent(nn.Module):
    """Latent-conditioned INR LUT: encode(frames) once per bracket, then sample(latent, G) or query(latent, rgb)."""

    input_size = INPUT_SIZE

    def __init__(self, latent: int = 128, width: int = 64, hyper_hidden: int = 256, octaves: int = OCTAVES) -> None:
        super().__init__()
        self.config = {"latent": latent, "width": width, "hyper_hidden": hyper_hidden, "octaves": octaves}
        self.latent_dim, self.width, self.octaves = latent, width, octaves
        self.encoder = Encoder(latent)
        feat = 1 + 2 * octaves
        # first layer split per colour axis so that a lattice costs three small tables (see module docstring)
        self.l1 = nn.ModuleList([nn.Linear(feat, width, bias=(i == 0)) for i in range(3)])
        self.l2 = nn.Linear(width, width)
        self.l3 = nn.Linear(width, width)
        self.out = nn.Linear(width, 3)
        # hypernetwork: latent -> FiLM (scale, shift) of the 3 hidden layers + a per-bracket output layer delta
        self.n_film = 6 * width
        self.n_out = 3 * width + 3
        self.hyper = nn.Sequential(nn.Linear(latent, hyper_hidden), nn.LeakyReLU(0.2),
                                   nn.Linear(hyper_hidden, self.n_film + self.n_out))
        # residual starts at exactly 0 (a fresh student is the identity LUT) while gradients still reach
        # every layer: the shared output layer and the hypernetwork's last layer start at zero
        for p in (self.out.weight, self.out.bias, self.hyper[-1].weight, self.hyper[-1].bias):
            nn.init.zeros_(p)  # type: ignore[arg-type]

    # -- per bracket ---------------------------------------------------------------------------------------
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """N×K×3×H×W in [0,1], darkest first, K in 2..9, any H×W -> N×L latent code."""
        p = next(self.parameters())
        return self.encoder(bracket_summary(frames.to(p.device, p.dtype), INPUT_SIZE))

    def _modulation(self, latent: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """N×L -> per bracket the point MLP with FiLM folded into its weights (scale s, shift t: s·(Wx+b)+t)."""
        h = self.hyper(latent)
        w = self.width
        nets = []
        for i in range(latent.shape[0]):
            film = h[i, : self.n_film].view(3, 2, w)
            s1, s2, s3 = (1.0 + film[j, 0] for j in range(3))
            d = h[i, self.n_film:]
            nets.append({
                "s1": s1, "t1": film[0, 1] + self.l1[0].bias * s1,
                "w2": self.l2.weight.t() * s2, "b2": self.l2.bias * s2 + film[1, 1],
                "w3": self.l3.weight.t() * s3, "b3": self.l3.bias * s3 + film[2, 1],
                "wo": self.out.weight.t() + d[: 3 * w].view(w, 3), "bo": self.out.bias + d[3 * w:],
            })
        return nets

    @staticmethod
    def _tail(pre1: torch.Tensor, net: dict[str, torch.Tensor]) -> torch.Tensor:
        """First-layer pre-activations P×W (FiLM applied) -> residual P×3 through the folded inner layers."""
        inplace = not torch.is_grad_enabled()
        h = pre1.relu_() if inplace else pre1.relu()
        h = torch.addmm(net["b2"], h, net["w2"])
        h = h.relu_() if inplace else h.relu()
        h = torch.addmm(net["b3"], h, net["w3"])
        h = h.relu_() if inplace else h.relu()
        return torch.addmm(net["bo"], h, net["wo"])

    def _tables(self, x: torch.Tensor) -> list[torch.Tensor]:
        """...×3 colours in [0,1] -> the first layer's three per-axis terms, each ...×W (no bias)."""
        return [F.linear(fourier_features(x[..., i:i + 1], self.octaves), layer.weight)  # type: ignore[arg-type]
                for i, layer in enumerate(self.l1)]

    # -- per point -----------------------------------------------------------------------------------------
    def query(self, latent: torch.Tensor, rgb: torch.Tensor, clamp: bool = True) -> torch.Tensor:
        """N×L latent, N×P×3 colours in [0,1] -> N×P×3 output colours (in [0,1] when clamp)."""
        x = rgb.to(latent.dtype)
        t_r, t_g, t_b = self._tables(x)
        pre = t_r + t_g + t_b
        outs = [x[i] + self._tail(pre[i] * net["s1"] + net["t1"], net)
                for i, net in enumerate(self._modulation(latent))]
        out = torch.stack(outs)
        return out.clamp(0.0, 1.0) if clamp else out

    def sample(self, latent: torch.Tensor, size: int, chunk: int | None = None, clamp: bool = True) -> torch.Tensor:
        """N×L latent -> N×G×G×G×3 LUT in the core layout lut[b, g, r, c] (red fastest), values in [0,1] when clamp.
        chunk: lattice points evaluated at a time (default DEFAULT_CHUNK on the CPU, DEVICE_CHUNK elsewhere); on
        the CPU a blue slice larger than that is split into runs of green rows, and above WORKER_GRID the lattice is
        cut into cubes of about that many points (see _sample_blocks). ValueError for a size below 2."""
        g = int(size)
        if g < 2:
            raise ValueError(f"LUT size must be at least 2, got {size}")
        w = self.width
        ramp = torch.linspace(0.0, 1.0, g, dtype=latent.dtype, device=latent.device)
        t_r, t_g, t_b = self._tables(ramp.view(g, 1).expand(g, 3))
        # chunks small enough to stay in cache (measured: ~4k points is the sweet spot): whole blue slices where a
        # slice fits, else runs of green rows of one slice
        on_cpu = latent.device.type == "cpu"
        points = chunk or (DEFAULT_CHUNK if on_cpu else DEVICE_CHUNK)
        slices = max(1, points // (g * g))
        if torch.is_grad_enabled():
            return self._sample_grad(latent, g, slices, ramp, (t_r, t_g, t_b), clamp)
        # Large lattices skip dead neurons block by block. Measured (process CPU, torch on 1 thread, 2 shared cores
        # busy with other work, real latents): G = 129 410-440 ms vs 590-700 dense, 97: 180-225 vs 260-305, 81: 140-150
        # vs 170-180, 65: 90 vs 94; below that a block spans too much of each colour axis for many neurons to be dead
        # over all of it. With the caller's 2 threads the blocks run on 2 workers, as dense chunks did at G = 129 (412
        # vs 468 ms inline, idle cores). Python and op dispatch, the part of a block that may hold the GIL, cost
        # 140-180 µs per block (measured on 1-point blocks): 70-90 ms of the 420 ms CPU of 512 blocks at G = 129.
        # Smaller lattices stay dense on the caller, where workers lost (G = 33: 25 vs 16, 65: 78 vs 50 ms).
        if on_cpu and g > WORKER_GRID:
            return self._sample_blocks(latent, g, chunk, ramp, (t_r, t_g, t_b), clamp)
        # Inference: the identity is added as the output layer's per-point bias (one G×G×3 plane per blue slice,
        # never a G³×3 lattice), the result written in place into the one output array and clamped there: at
        # G = 129 each extra G³×3 pass costs as much as a tenth of the matrix products.
        zeros = torch.zeros((g, g), dtype=latent.dtype, device=latent.device)
        green, red = torch.meshgrid(ramp, ramp, indexing="ij")
        ident_plane = torch.stack([red, green, zeros], dim=-1).view(1, g * g, 3)
        blue = torch.zeros((g, 1, 3), dtype=latent.dtype, device=latent.device)
        blue[:, 0, 2] = ramp
        nets = self._modulation(latent)
        lut = torch.empty((len(nets), g, g * g, 3), dtype=latent.dtype, device=latent.device)
        if slices > 1 or points >= g * g or not on_cpu:
            spans = [(b0, min(g, b0 + slices), 0, g * g) for b0 in range(0, g, slices)]
        else:
            rows = max(1, points // g) * g
            spans = [(b0, b0 + 1, q0, min(g * g, q0 + rows)) for b0 in range(g) for q0 in range(0, g * g, rows)]
        size = max((b1 - b0) * (q1 - q0) for b0, b1, q0, q1 in spans)
        for out, net in zip(lut, nets):
            plane = ((t_g.view(g, 1, w) + t_r.view(1, g, w)) * net["s1"] + net["t1"]).view(1, g * g, w)
            tb = (t_b * net["s1"]).view(g, 1, w)
            bias_plane = ident_plane + net["bo"]

            for b0, b1, q0, q1 in spans:
                n = (b1 - b0) * (q1 - q0)
                # every intermediate goes into this thread's scratch: a fresh chunk-sized tensor per product
                # costs page faults and cache misses (measured: a third of the time at G = 33)
                one, two, bias = _scratch(size, w, latent)
                pre, hid, add = one[:n], two[:n], bias[:n]
                torch.add(plane[:, q0:q1], tb[b0:b1], out=pre.view(b1 - b0, q1 - q0, w)).relu_()
                torch.addmm(net["b2"], pre, net["w2"], out=hid).relu_()
                torch.addmm(net["b3"], hid, net["w3"], out=pre).relu_()
                torch.add(bias_plane[:, q0:q1], blue[b0:b1], out=add.view(b1 - b0, q1 - q0, 3))
                torch.addmm(add, pre, net["wo"], out=out[b0:b1, q0:q1].view(-1, 3))
        lut = lut.view(len(nets), g, g, g, 3)
        return lut.clamp_(0.0, 1.0) if clamp else lut

    def _sample_blocks(self, latent: torch.Tensor, g: int, points: int | None, ramp: torch.Tensor,
                       tables: tuple[torch.Tensor, torch.Tensor, torch.Tensor], clamp: bool) -> torch.Tensor:
        """sample() without autograd on the CPU for large G: the lattice in cubes of about `points` points (None:
        BLOCK_POINTS on worker threads, DEFAULT_CHUNK on the caller), each computing only the neurons that are not
        dead over the whole cube (module docstring). Exact: a skipped neuron's activation is 0 at every point of its
        cube (up to float rounding of its bound, which moves an output by a rounding error at most); measured
        against the dense products on real latents at G = 129 the LUT differs by at most 5e-7. Every intermediate is
        feature-major (neurons × points), so selecting the active neurons copies whole rows."""
        w = self.width
        t_r, t_g, t_b = tables
        dtype = latent.dtype
        workers = _workers(latent.device)
        points = points or (BLOCK_POINTS if workers is not None else DEFAULT_CHUNK)
        tiles = max(1, round(g / max(1, round(points ** (1 / 3)))))
        edges = [round(i * g / tiles) for i in range(tiles + 1)]
        spans = list(zip(edges[:-1], edges[1:]))
        size = max(b - a for a, b in spans) ** 3
        blocks = [(b0, b1, g0, g1, r0, r1, j * tiles + k)
                  for b0, b1 in spans for j, (g0, g1) in enumerate(spans) for k, (r0, r1) in enumerate(spans)]
        # the identity plus the output bias per (g, r) and per b: the output layer's per-point bias, as in sample()
        ident = torch.stack([ramp.view(1, g).expand(g, g), ramp.view(g, 1).expand(g, g),
                             torch.zeros((g, g), dtype=dtype)])                                  # 3×g×r
        blue = torch.zeros((3, g), dtype=dtype)
        blue[2] = ramp
        nets = self._modulation(latent)
        lut = torch.empty((len(nets), g, g, g, 3), dtype=dtype)
        inference = torch.is_inference_mode_enabled()  # grad and inference modes are per thread: the workers copy them
        for out, net in zip(lut, nets):
            s1, t1 = net["s1"].view(w, 1, 1), net["t1"].view(w, 1, 1)
            plane = (t_g.t().reshape(w, g, 1) + t_r.t().reshape(w, 1, g)) * s1 + t1          # w×g×r, as in sample()
            tb = (t_b * net["s1"]).t().contiguous()                                          # w×b
            w2, w3, wo = net["w2"].t(), net["w3"].t(), net["wo"].t()                        # out×in, contiguous
            b2, b3 = net["b2"].view(w, 1), net["b3"]
            # A neuron is dead over a block when the sum of its two terms' maxima there is <= 0 and alive everywhere
            # when the sum of the minima is > 0. Rounding is monotone, so the extremes of the plane over a tile are
            # those of t_g + t_r put through the FiLM (ends swapped where s1 < 0): each is the float at a lattice
            # point, and so is the block's extreme pre-activation.
            def ends(table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                return (torch.stack([table[a:b].amax(0) for a, b in spans], 1),
                        torch.stack([table[a:b].amin(0) for a, b in spans], 1))                 # w×tiles each

            (g_max, g_min), (r_max, r_min), (b_max, b_min) = ends(t_g), ends(t_r), ends(t_b * net["s1"])
            hi = (g_max.view(w, tiles, 1) + r_max.view(w, 1, tiles)) * s1 + t1
            lo = (g_min.view(w, tiles, 1) + r_min.view(w, 1, tiles)) * s1 + t1
            top = torch.maximum(hi, lo).view(w, 1, tiles, tiles) + b_max.view(w, tiles, 1, 1)    # w×tb×tg×tr
            bottom = torch.minimum(hi, lo).view(w, 1, tiles, tiles) + b_min.view(w, tiles, 1, 1)
            top, bottom = top.view(w, -1).t(), bottom.view(w, -1).t()                           # blocks×w
            kind = (top <= 0).to(torch.uint8) + (bottom <= 0).to(torch.uint8)               # 0 alive, 1 mixed, 2 dead
            order = torch.argsort(kind, dim=1, stable=True)     # per block: alive neurons, then mixed, then dead
            n_alive, n_mixed = (kind == 0).sum(1).tolist(), (kind == 1).sum(1).tolist()
            # a mixed neuron's activation lies in [0, its block maximum]: its share of each layer-2 pre-activation
            # is bounded from above, for all blocks in one product
            mixed_up = torch.mm(top * (kind == 1), w2.clamp(min=0).t())                           # blocks×w
            pl_tiles = [plane[:, g0:g1, r0:r1].reshape(w, -1) for g0, g1 in spans for r0, r1 in spans]
            bias = ident + net["bo"].view(3, 1, 1)
            bias_tiles = [bias[:, g0:g1, r0:r1].reshape(3, 1, -1) for g0, g1 in spans for r0, r1 in spans]

            def run(task: range, out: torch.Tensor = out, tb: torch.Tensor = tb, w2: torch.Tensor = w2,
                    w3: torch.Tensor = w3, wo: torch.Tensor = wo, b2: torch.Tensor = b2, b3: torch.Tensor = b3,
                    order: torch.Tensor = order, n_alive: list[int] = n_alive, n_mixed: list[int] = n_mixed,
                    mixed_up: torch.Tensor = mixed_up, pl_tiles: list[torch.Tensor] = pl_tiles,
                    bias_tiles: list[torch.Tensor] = bias_tiles) -> None:
                with torch.inference_mode(inference), torch.no_grad():
                    one, two, add = _flat_scratch(size, w, latent)
                    for index in task:
                        b0, b1, g0, g1, r0, r1, tile = blocks[index]
                        nb, nq = b1 - b0, (g1 - g0) * (r1 - r0)
                        n, na, nm = nb * nq, n_alive[index], n_mixed[index]
                        perm = order[index, :na + nm]
                        w2p = w2.index_select(1, perm)
                        pl = pl_tiles[tile].index_select(0, perm)
                        tp = tb[:, b0:b1].index_select(0, perm)
                        # the alive neurons' share of layer 2: per (g, r) and per b
                        part_q = torch.addmm(b2, w2p[:, :na], pl[:na])                           # w×nq
                        part_b = torch.mm(w2p[:, :na], tp[:na])                                  # w×nb
                        # layer-2 neurons not bounded to <= 0 over the block
                        c2 = part_q.amax(1).add_(part_b.amax(1)).add_(mixed_up[index]).gt_(0).nonzero().view(-1)
                        m2 = c2.numel()
                        z2 = torch.add(part_q.index_select(0, c2).view(m2, 1, nq),
                                       part_b.index_select(0, c2).view(m2, nb, 1),
                                       out=one[:m2 * n].view(m2, nb, nq)).view(m2, n)
                        if nm:
                            pre = torch.add(pl[na:].view(nm, 1, nq), tp[na:].view(nm, nb, 1),
                                            out=two[:nm * n].view(nm, nb, nq)).relu_()
                            z2.addmm_(w2p.index_select(0, c2)[:, na:], pre.view(nm, n))
                        high = z2.amax(1)
                        a2 = (high > 0).nonzero().view(-1)
                        h2 = torch.index_select(z2, 0, a2, out=two[:a2.numel() * n].view(-1, n)).relu_()
                        low = h2.amin(1)
                        w3a = w3.index_select(1, c2.index_select(0, a2))                         # w×|a2|
                        # layer-3 neurons not bounded to <= 0 by their inputs' ranges over the block
                        up3 = torch.addmv(b3, w3a, low).addmv_(w3a.clamp(min=0), high.index_select(0, a2).sub_(low))
                        c3 = up3.gt_(0).nonzero().view(-1)
                        m3 = c3.numel()
                        z3 = torch.addmm(b3.index_select(0, c3).view(m3, 1), w3a.index_select(0, c3), h2,
                                         out=one[:m3 * n].view(m3, n)).relu_()
                        res = torch.add(bias_tiles[tile], blue[:, b0:b1].view(3, nb, 1),
                                        out=add[:3 * n].view(3, nb, nq)).view(3, n)
                        res.addmm_(wo.index_select(1, c3), z3)
                        out[b0:b1, g0:g1, r0:r1].copy_(res.view(3, nb, g1 - g0, r1 - r0).permute(1, 2, 3, 0))

            tasks = [range(i, min(len(blocks), i + BLOCK_TASK)) for i in range(0, len(blocks), BLOCK_TASK)]
            if workers is None or len(tasks) == 1:
                for task in tasks:
                    run(task)
            else:
                for done in workers.map(run, tasks):
                    del done
        return lut.clamp_(0.0, 1.0) if clamp else lut

    def _sample_grad(self, latent: torch.Tensor, g: int, slices: int, ramp: torch.Tensor,
                     tables: tuple[torch.Tensor, torch.Tensor, torch.Tensor], clamp: bool) -> torch.Tensor:
        """sample() with autograd (training): the same lattice, built from differentiable pieces."""
        w = self.width
        t_r, t_g, t_b = tables
        ident = torch.stack(torch.meshgrid(ramp, ramp, ramp, indexing="ij")[::-1], dim=-1)  # b×g×r×(r,g,b)
        luts = []
        for net in self._modulation(latent):
            plane = ((t_g.view(g, 1, w) + t_r.view(1, g, w)) * net["s1"] + net["t1"]).view(1, g * g, w)
            tb = t_b * net["s1"]
            parts = []
            for b0 in range(0, g, slices):
                b1 = min(g, b0 + slices)
                pre = (plane + tb[b0:b1].view(-1, 1, w)).view(-1, w)
                parts.append(self._tail(pre, net))
            luts.append(torch.cat(parts).view(g, g, g, 3) + ident)
        lut = torch.stack(luts)
        return lut.clamp(0.0, 1.0) if clamp else lut


_POOL: ThreadPoolExecutor | None = None
_POOL_SIZE = 0


def _workers(device: torch.device) -> ThreadPoolExecutor | None:
    """Threads that sample lattice chunks side by side on the CPU, each running torch single-threaded; None where
    the caller's torch runs one thread (or off the CPU). Chunks of a few thousand points are too small for torch's
    own intra-op threads, which meet at a barrier after every product and activation (at G = 129 that is about
    1000 barriers, where one chunk per thread needs none)."""
    global _POOL, _POOL_SIZE
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads < 2:
        return None
    if _POOL is None or _POOL_SIZE != threads:
        if _POOL is not None:
            _POOL.shutdown(wait=False)
        # torch.set_num_threads is per thread for OpenMP and MKL: the caller's setting stays as it was
        _POOL = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="lutfuse-inr", initializer=_one_thread)
        _POOL_SIZE = threads
        # torch.set_num_threads also sets the count every thread started later begins with (it is one process-wide
        # value), so the workers' 1 would make later threads (a prepare's, an HQ export's, the editor's engine
        # thread after Qt retires it) run torch on one thread: start every worker now, then give the count back
        started = threading.Barrier(threads + 1)
        for _ in range(threads):
            _POOL.submit(started.wait, 10.0)
        started.wait(10.0)
        torch.set_num_threads(threads)
    return _POOL


def _one_thread() -> None:
    """Make this thread run torch on one thread. torch sets a thread's count from its process-wide value on the
    thread's first parallel op (once): that first happens here, or it would undo the 1 later."""
    torch.get_num_threads()
    torch.set_num_threads(1)


_SCRATCH = threading.local()


def _scratch(points: int, width: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """This thread's sample() scratch: two points×width and one points×3 tensors of like's dtype and device (or
    larger ones), kept between calls so that steady sampling allocates nothing; contents undefined."""
    held = getattr(_SCRATCH, "tensors", None)
    if held is None or held[0].shape[0] < points or held[0].shape[1] != width or held[0].dtype != like.dtype \
            or held[0].device != like.device:
        with torch.inference_mode(False):  # a normal tensor: written in inference mode and out of it alike
            held = tuple(torch.empty((points, k), dtype=like.dtype, device=like.device) for k in (width, width, 3))
        _SCRATCH.tensors = held
    return held


def _flat_scratch(points: int, width: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """_scratch() as flat tensors: points·width, points·width and points·3 elements."""
    held = _scratch(points, width, like)
    flat = getattr(_SCRATCH, "flat", None)
    if flat is None or flat[0] is not held:
        flat = (held, *(t.view(-1) for t in held))
        _SCRATCH.flat = flat
    return flat[1], flat[2], flat[3]


def load_student(path: Path | None = None, device: torch.device | str | None = None) -> LUTStudent:
    """LUTStudent with weights from `path` (default resources/weights/lut_student.pt), in eval mode on `device`."""
    from lutfuse.core.weights import load_model, shipped

    path = Path(path) if path is not None else shipped("LUT student")
    model = load_model(LUTStudent, path, "LUT student", " (train them with `lutfuse train student`)")
    return model.to(device if device is not None else "cpu").eval()
