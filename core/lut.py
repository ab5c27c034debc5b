"""3D LUT layout, identity, trilinear apply (CPU and any torch device) and re-gridding.

Layout, used everywhere in LUTFuse:

* ``lut[b, g, r, c]``, shape ``G×G×G×3``, float32: the output colour ``c`` (R, G, B) for the input
  ``(r, g, b) = (i_r, i_g, i_b) / (G - 1)``.
* Flattened in C order (``lut.reshape(-1, 3)``) the entries list red varying fastest, then green, then blue:
  exactly the order of the entries of a ``.cube`` file.
* As a torch ``grid_sample`` volume it is ``lut.permute(3, 0, 1, 2)`` = ``C×D×H×W`` with the grid's
  ``(x, y, z) = (r, g, b)`` mapped to ``[-1, 1]`` and ``align_corners=True``.

``apply_lut`` interpolates trilinearly after clamping the input to [0, 1]: a LUT covers the unit cube (a
``.cube`` file's DOMAIN_MIN/MAX are honoured by ``core.cube.apply_cube``, which maps the image into [0, 1] first).

On the CPU the exact trilinear is computed as one bilinear 2-D ``grid_sample`` over a mosaic of the LUT's blue
slices, carrying slices b and b+1 as six channels, followed by one lerp along blue: torch's 2-D sampler is
vectorised where the 5-D one is not, and working in chunks keeps every intermediate in cache. At 3840×2160 on
2 cores this is about twice as fast as a 5-D ``grid_sample`` (see the report in the commit history). Other
devices, and the CPU with the torch kernels (``core.device``), use the 5-D ``grid_sample`` directly, in the image's
float dtype (float16 on a GPU renders). Where a device lacks the 5-D sampler (Apple's MPS in many torch versions)
an exact trilinear made of gathers and lerps runs on the device instead, with a one-time note.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from lutfuse.core.device import note_fallback, torch_kernels

_CHUNK = 1 << 17  # pixels per CPU chunk: the intermediates (about 60 bytes per pixel) stay in cache
# Above this size the mosaic is so wide that float32 grid coordinates lose more than 1e-5 of accuracy,
# so larger LUTs take the (slower, exact) 5-D sampler.
MOSAIC_MAX_SIZE = 65
_GATHER_CHUNK = 1 << 20  # pixels per chunk of the gather fallback: eight G-indexed gathers of 3 values each
_NO_GRID_SAMPLE_3D: set[str] = set()  # device types whose 5-D grid_sample raised (probed on first use)
_COLUMNS = 1024          # pixels per remap row (any image is cut into rows of this length)
_THREADS = 2             # worker threads of the CPU apply (the machines it targets have 2 cores or more)
_REMAP_EXACT: bool | None = None
_POOL: ThreadPoolExecutor | None = None


def identity_lut(size: int) -> np.ndarray:
    """Identity LUT, size×size×size×3 float32 in [0,1]: lut[b, g, r] = (r, g, b) / (size-1)."""
    if size < 2:
        raise ValueError(f"LUT size must be at least 2, got {size}")
    ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)
    b, g, r = np.meshgrid(ramp, ramp, ramp, indexing="ij")
    return np.stack([r, g, b], axis=-1)


def _check_lut(lut: np.ndarray | torch.Tensor) -> int:
    """Grid size G of a G×G×G×3 LUT; ValueError for any other shape."""
    shape = tuple(lut.shape)
    if len(shape) != 4 or shape[3] != 3 or not shape[0] == shape[1] == shape[2] or shape[0] < 2:
        raise ValueError(f"a LUT must be G×G×G×3 with G ≥ 2, got shape {shape}")
    return shape[0]


def _mosaic(lut: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """LUT G×G×G×3 float32 -> (texture 6×T·S×T·S, offsets (G-1)×2, scale) for the 2-D sampler.

    Blue slice b sits in tile (b // T, b % T) of a T×T mosaic, tiles S = G+2 pixels wide with the slice at
    offset 1: a guard row and column on each side repeat the edge entries, so a coordinate that rounds a hair
    outside its tile reads the same value instead of the neighbouring tile's. Channels 0-2 hold slice b,
    channels 3-5 slice b+1. offsets[b] is the normalised grid position of tile b's entry (0, 0) and scale maps
    a LUT index to normalised grid units: grid = offsets[b] + scale · (r, g)·(G-1).
    """
    g = lut.shape[0]
    tiles = math.ceil(math.sqrt(g - 1))  # only slices 0..G-2 are ever a lower slice
    s = g + 2
    pair = torch.cat([lut[:-1], lut[1:]], dim=-1)                     # (G-1)×G×G×6
    pair = torch.cat([pair[:, :, :1], pair, pair[:, :, -1:]], dim=2)  # guard columns (r)
    pair = torch.cat([pair[:, :1], pair, pair[:, -1:]], dim=1)        # guard rows (g)
    pad = tiles * tiles - (g - 1)
    if pad:
        pair = torch.cat([pair, pair.new_zeros((pad, s, s, 6))], dim=0)
    tex = pair.view(tiles, tiles, s, s, 6).permute(4, 0, 2, 1, 3).reshape(6, tiles * s, tiles * s).contiguous()
    scale = 2.0 / (tiles * s - 1)
    idx = torch.arange(g - 1)
    offsets = torch.stack([((idx % tiles) * s + 1) * scale - 1, ((idx // tiles) * s + 1) * scale - 1], dim=-1)
    offsets = offsets.float()
    return tex, offsets, scale


class _Sampler:
    """Exact trilinear lookups of pixel chunks on the CPU, for one LUT (built once per apply)."""

    def __init__(self, lut: torch.Tensor) -> None:
        """lut: G×G×G×3 float32 CPU tensor."""
        self.g = lut.shape[0]
        if self.g <= MOSAIC_MAX_SIZE:
            self.tex, self.offsets, self.scale = _mosaic(lut)
        else:
            self.volume = lut.permute(3, 0, 1, 2).unsqueeze(0)

    def __call__(self, rgb: torch.Tensor, out: torch.Tensor) -> None:
        """Trilinear LUT values of n pixels: rgb n×3 float32 (any strides) -> out 3×n float32 (any strides)."""
        n, g = rgb.shape[0], self.g
        s = torch.nan_to_num(rgb, nan=0.0).clamp_(0.0, 1.0)
        # two batch items so that the sampler, which parallelises over the batch only, uses two cores
        nb = 2 if n % 2 == 0 else 1
        dest = out.view(3, nb, n // nb).transpose(0, 1)
        if self.g > MOSAIC_MAX_SIZE:
            grid = s.mul_(2.0).sub_(1.0).reshape(nb, 1, n // nb, 1, 3)
            v = F.grid_sample(self.volume.expand(nb, -1, -1, -1, -1), grid, mode="bilinear",
                              padding_mode="border", align_corners=True)
            dest.copy_(v.view(nb, 3, n // nb))
            return
        s.mul_(g - 1)
        lower = s[:, 2].floor().clamp_(max=g - 2)
        frac_b = s[:, 2] - lower
        grid = torch.add(self.offsets.index_select(0, lower.long()), s[:, :2], alpha=self.scale)
        tex = self.tex.unsqueeze(0).expand(nb, -1, -1, -1)
        v = F.grid_sample(tex, grid.view(nb, n // nb, 1, 2), mode="bilinear", padding_mode="border",
                          align_corners=True).view(nb, 6, n // nb)
        torch.lerp(v[:, :3], v[:, 3:], frac_b.view(nb, 1, n // nb), out=dest)


def _remap_is_exact() -> bool:
    """Whether cv2.remap interpolates a four-channel float32 image with float maps exactly (OpenCV 5), not with its
    1/32-pixel fixed-point weights (OpenCV 4): probed once on a 2×2 ramp sampled a third of the way across."""
    global _REMAP_EXACT
    if _REMAP_EXACT is None:
        ramp = np.array([[[0.0] * 4, [1.0] * 4], [[0.0] * 4, [1.0] * 4]], np.float32)
        x = np.full((1, 1), 1 / 3, np.float32)
        got = cv2.remap(ramp, x, np.zeros_like(x), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        _REMAP_EXACT = bool(np.abs(got[0, 0] - np.float32(1 / 3)).max() < 1e-6)
    return _REMAP_EXACT


def _pool() -> ThreadPoolExecutor:
    """The two worker threads of the CPU apply (OpenCV and numpy release the GIL over whole bands)."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=_THREADS, thread_name_prefix="lutfuse-lut")
    return _POOL


def _in_pool(work: Callable[[Any], None], jobs: Sequence[Any]) -> None:
    """work(job) for every job, on the two worker threads (inline for a single job)."""
    if len(jobs) == 1:
        work(jobs[0])
        return
    for done in _pool().map(work, jobs):
        del done


class _Scratch(threading.local):
    """Per-thread work arrays of the CPU apply, kept between bands and applies: on the VMs this runs on a first
    touch of fresh memory costs about 10 µs per 4 KiB page, more than the arithmetic on it."""

    def __init__(self) -> None:
        self.arrays: dict[tuple[str, tuple[int, ...]], np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """The thread's float32 array `name` of this shape (contents undefined)."""
        key = (name, shape)
        array = self.arrays.get(key)
        if array is None:
            if len(self.arrays) > 32:  # bands come in two shapes per image size; forget other sizes' arrays
                self.arrays.clear()
            array = self.arrays[key] = np.empty(shape, np.float32)
        return array


_SCRATCH = _Scratch()


def _band_coords(src: np.ndarray, size: int, out: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mosaic coordinates of a band src h×w×3 float32 (any values; NaN -> 0, then clamped to [0, 1]) for a LUT of
    grid size G: (x, y, blue fraction), each h×w float32, written into out (3×h×w) or the thread's scratch. They
    depend on the image and G only, not on the LUT's values, so one set serves every LUT of that size
    (`lut_coords`).

    Blue slice b's tile origin is computed, not looked up: tile (b // T, b % T) at texel ((b % T)·S + 1,
    (b // T)·S + 1) as `_mosaic` lays it out; (b + 1/2) / T keeps the division's rounding away from the integer
    boundaries, so the floor is exact."""
    tiles = math.ceil(math.sqrt(size - 1))
    side = size + 2
    h, w = src.shape[:2]
    if out is None:
        out = _SCRATCH.get("coords", (3, h, w))
    x, y, blue = out[0], out[1], out[2]
    clamped = _SCRATCH.get("clamped", (h, w, 3))
    lower = _SCRATCH.get("lower", (h, w))
    row = _SCRATCH.get("row", (h, w))
    # fmax maps NaN to 0 (as nan_to_num would) in the same pass as the lower clamp
    np.fmax(src, np.float32(0.0), out=clamped)
    np.minimum(clamped, np.float32(1.0), out=clamped)
    clamped *= np.float32(size - 1)
    cv2.split(clamped, [x, y, blue])
    np.floor(blue, out=lower)
    np.minimum(lower, np.float32(size - 2), out=lower)
    np.subtract(blue, lower, out=blue)
    np.add(lower, np.float32(0.5), out=row)
    row *= np.float32(1.0 / tiles)
    np.floor(row, out=row)
    # x += ((lower - T·row)·S + 1), y += (row·S + 1), with `lower` reused for the column term
    lower -= np.multiply(row, np.float32(tiles), out=_SCRATCH.get("col", (h, w)))
    lower *= np.float32(side)
    lower += np.float32(1.0)
    x += lower
    row *= np.float32(side)
    row += np.float32(1.0)
    y += row
    return x, y, blue


class LUTCoords:
    """Where every pixel of one image falls in the 2-D mosaic of any LUT of grid size G: made once per (image, G)
    and reused by every CPU apply of a G-sized LUT to that image, so a look or detail change re-renders with no
    coordinate arithmetic. About 12 bytes per pixel (x, y, blue fraction; float32), in one allocation.

    `LUTCoords(image, size)` only allocates: the first apply given it fills it band by band while it samples (no
    extra pass over memory), later ones read it. `lut_coords` makes a filled one."""

    def __init__(self, image: np.ndarray, size: int) -> None:
        """image: the H×W×3 image the coordinates are for (only its shape is kept); size: grid size G ≥ 2."""
        self.shape = tuple(image.shape)
        self.size = int(size)
        self.filled = False
        pixels = int(np.prod(self.shape[:2]))
        store = np.empty(3 * pixels, np.float32)  # numpy puts allocations this large on huge pages
        self.blocks: list[np.ndarray] = []
        start = 0
        for rows, cols in _band_shapes(pixels):
            self.blocks.append(store[start:start + 3 * rows * cols].reshape(3, rows, cols))
            start += 3 * rows * cols

    def fits(self, image: np.ndarray, size: int) -> bool:
        """Whether these coordinates are for an image of this shape and this grid size."""
        return self.shape == tuple(image.shape) and self.size == size


def lut_coords(image: np.ndarray, size: int) -> LUTCoords | None:
    """The filled mosaic coordinates (LUTCoords) of image H×W×3 (float, any values) for LUTs of grid size `size`
    (2..129); None where the CPU fast path does not use them (an OpenCV whose remap is not exact). The image must
    not change while the coordinates are in use (they are not checked against its values)."""
    if not _remap_is_exact():
        return None
    if size < 2:
        raise ValueError(f"LUT size must be at least 2, got {size}")
    coords = LUTCoords(image, size)
    bands = _bands(np.ascontiguousarray(image, dtype=np.float32).reshape(-1, 3))

    def work(i: int) -> None:
        _band_coords(bands[i], size, coords.blocks[i])

    _in_pool(work, list(range(len(bands))))
    coords.filled = True
    return coords


class _RemapSampler:
    """Exact trilinear lookups of H×W×3 bands on the CPU with cv2.remap, for one LUT (built once per apply).

    The LUT's blue slices b and b+1 form two mosaics (`_mosaic`), so two bilinear cv2.remap calls per band read
    both slices' red-green bilinear values and one lerp along blue finishes the trilinear. The mosaics carry a
    fourth (zero) channel: OpenCV 5's exact float-map remap runs about 1.7 times faster on four channels than on
    three (one full SIMD vector per texel), more than paying for dropping the channel at the end. Every pass
    works on whole contiguous arrays (numpy's broadcasts of an h×w array over 3 channels run 5-10 times slower
    than cv2.merge plus a contiguous pass), one band at a time so intermediates stay in cache."""

    def __init__(self, lut: torch.Tensor) -> None:
        """lut: G×G×G×3 float32 CPU tensor."""
        self.g = lut.shape[0]
        tex, _, _ = _mosaic(lut)
        planes = tex.permute(1, 2, 0)                                     # T·S × T·S × 6
        pad = planes.new_zeros(planes.shape[:2] + (1,))
        self.low = torch.cat([planes[..., :3], pad], dim=-1).numpy()
        self.high = torch.cat([planes[..., 3:], pad], dim=-1).numpy()

    def band(self, src: np.ndarray, dst: np.ndarray, coords: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
             offset: np.ndarray | None = None, strength: float = 0.0) -> None:
        """Trilinear values of src h×w×3 float32 (any values; NaN -> 0, then clamped to [0,1]) into dst h×w×3
        (C-contiguous); coords: this band's `_band_coords` (computed here when None); with offset (h×w), dst also
        gets strength·offset on every channel and is clipped to [0, 1]."""
        x, y, frac = coords if coords is not None else _band_coords(src, self.g)
        h, w = src.shape[:2]
        low = cv2.remap(self.low, x, y, cv2.INTER_LINEAR, dst=_SCRATCH.get("low", (h, w, 4)),
                        borderMode=cv2.BORDER_REPLICATE)
        high = cv2.remap(self.high, x, y, cv2.INTER_LINEAR, dst=_SCRATCH.get("high", (h, w, 4)),
                         borderMode=cv2.BORDER_REPLICATE)
        np.subtract(high, low, out=high)
        np.multiply(high, cv2.merge([frac, frac, frac, frac], _SCRATCH.get("frac4", (h, w, 4))), out=high)
        np.add(high, low, out=high)
        cv2.cvtColor(high, cv2.COLOR_RGBA2RGB, dst)
        if offset is not None:
            add = np.multiply(offset, np.float32(strength), out=_SCRATCH.get("offset", (h, w)))
            np.add(dst, cv2.merge([add, add, add], _SCRATCH.get("offset3", (h, w, 3))), out=dst)
            np.clip(dst, 0.0, 1.0, out=dst)


def _band_shapes(pixels: int) -> list[tuple[int, int]]:
    """(rows, columns) of each of `_bands`' views of P pixels."""
    full = pixels // _COLUMNS
    rows = max(1, _CHUNK // _COLUMNS)
    out = [(min(rows, full - r), _COLUMNS) for r in range(0, full, rows)]
    if full * _COLUMNS < pixels:
        out.append((1, pixels - full * _COLUMNS))
    return out


def _bands(pixels: np.ndarray) -> list[np.ndarray]:
    """A C-contiguous array of P pixels (P×... ) as 2-D views for cv2.remap: rows of _COLUMNS pixels grouped into
    bands of about _CHUNK pixels, then the remainder as one row (remap wants 2-D maps under 32767 per side)."""
    p = pixels.shape[0]
    full = p // _COLUMNS * _COLUMNS
    main = pixels[:full].reshape(-1, _COLUMNS, *pixels.shape[1:])
    rows = max(1, _CHUNK // _COLUMNS)
    out = [main[r:r + rows] for r in range(0, main.shape[0], rows)]
    if full < p:
        out.append(pixels[full:][None])
    return out


def _apply_numpy(image: np.ndarray, lut: torch.Tensor, offset: np.ndarray | None = None,
                 strength: float = 0.0, coords: LUTCoords | None = None) -> np.ndarray:
    """Trilinear apply on the CPU: image H×W×3 float32 -> H×W×3 float32 in the LUT's range; with offset (H×W)
    strength·offset is added to every channel and the result clipped to [0, 1] in the same pass; coords: the
    image's `lut_coords` for this grid size (used when they fit, else computed band by band)."""
    if not _remap_is_exact():
        out = _apply_numpy_torch(image, lut)
        if offset is not None:
            out += (np.asarray(offset, np.float32) * np.float32(strength))[..., None]
            np.clip(out, 0.0, 1.0, out=out)
        return out
    sample = _RemapSampler(lut)
    src = np.ascontiguousarray(image, dtype=np.float32)
    out = np.empty(src.shape, np.float32)
    src_bands, out_bands = _bands(src.reshape(-1, 3)), _bands(out.reshape(-1, 3))
    usable = coords is not None and coords.fits(src, lut.shape[0])
    off_bands = [None] * len(src_bands) if offset is None \
        else _bands(np.ascontiguousarray(offset, np.float32).reshape(-1))

    def work(i: int) -> None:
        if not usable:
            band_coords = None
        else:
            assert coords is not None
            block = coords.blocks[i]
            band_coords = (block[0], block[1], block[2]) if coords.filled \
                else _band_coords(src_bands[i], coords.size, block)
        sample.band(src_bands[i], out_bands[i], band_coords, off_bands[i], strength)

    _in_pool(work, list(range(len(src_bands))))
    if usable:
        assert coords is not None
        coords.filled = True
    return out


def _apply_numpy_torch(image: np.ndarray, lut: torch.Tensor) -> np.ndarray:
    """Trilinear apply on the CPU with torch's 2-D sampler (where cv2.remap is not exact): H×W×3 -> H×W×3."""
    sample = _Sampler(lut)
    flat = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).view(-1, 3)
    out = np.empty(image.shape, np.float32)
    dst = out.reshape(-1, 1, 3)
    planes = torch.empty((3, _CHUNK), dtype=torch.float32)
    for p0 in range(0, flat.shape[0], _CHUNK):
        rgb = flat[p0:p0 + _CHUNK]
        n = rgb.shape[0]
        sample(rgb, planes[:, :n])
        p = planes.numpy()
        # cv2.merge interleaves the planes far faster than a strided torch copy
        cv2.merge([p[0, :n, None], p[1, :n, None], p[2, :n, None]], dst[p0:p0 + n])
    return out


def _apply_torch_cpu(image: torch.Tensor, lut: torch.Tensor) -> torch.Tensor:
    """Trilinear apply on the CPU: image N×3×H×W -> N×3×H×W float32."""
    if _remap_is_exact():
        # interleaving for cv2.remap and back costs two copies, far less than the torch sampler's extra time
        out = [torch.from_numpy(_apply_numpy(im.float().permute(1, 2, 0).contiguous().numpy(), lut)).permute(2, 0, 1)
               for im in image]
        return torch.stack(out)
    sample = _Sampler(lut)
    n, _, h, w = image.shape
    planar = image.float().reshape(n, 3, h * w)
    out = torch.empty((n, 3, h * w), dtype=torch.float32)  # type: ignore[assignment]
    for i in range(n):
        for p0 in range(0, h * w, _CHUNK):
            rgb = planar[i, :, p0:p0 + _CHUNK].t()
            sample(rgb, out[i, :, p0:p0 + rgb.shape[0]])  # type: ignore[call-overload]
    return out.view(n, 3, h, w)  # type: ignore[attr-defined]


def _apply_grid_sample(image: torch.Tensor, lut: torch.Tensor) -> torch.Tensor:
    """Trilinear apply with a 5-D grid_sample on the image's device: N×3×H×W -> N×3×H×W in the image's dtype."""
    n = image.shape[0]
    volume = lut.to(image.dtype).permute(3, 0, 1, 2).unsqueeze(0).expand(n, -1, -1, -1, -1)
    x = torch.nan_to_num(image, nan=0.0).clamp(0.0, 1.0)
    grid = (x.permute(0, 2, 3, 1) * 2 - 1).unsqueeze(1)              # N×1×H×W×(r,g,b) = (x,y,z)
    return F.grid_sample(volume, grid, mode="bilinear", padding_mode="border", align_corners=True)[:, :, 0]


def _apply_gather(image: torch.Tensor, lut: torch.Tensor) -> torch.Tensor:
    """Exact trilinear apply from gathers and lerps (any device, no grid_sample): N×3×H×W -> N×3×H×W.

    Computed in float32 whatever the image's dtype (index arithmetic needs it), returned in the image's dtype.
    """
    g = lut.shape[0]
    n, _, h, w = image.shape
    flat = lut.to(torch.float32).reshape(-1, 3)
    planar = image.reshape(n, 3, h * w)
    out = torch.empty((n, 3, h * w), dtype=image.dtype, device=image.device)
    strides = (1, g, g * g)  # r, g, b steps in the flattened lut[b, g, r]
    for i in range(n):
        for p0 in range(0, h * w, _GATHER_CHUNK):
            x = torch.nan_to_num(planar[i, :, p0:p0 + _GATHER_CHUNK].float(), nan=0.0).clamp_(0.0, 1.0).mul_(g - 1)
            low = x.floor().clamp_(max=g - 2)
            frac = x - low
            low = low.long()
            base = low[0] * strides[0] + low[1] * strides[1] + low[2] * strides[2]
            corner = {}
            for db in (0, 1):
                for dg in (0, 1):
                    for dr in (0, 1):
                        corner[db, dg, dr] = flat.index_select(0, base + (dr + dg * g + db * g * g))  # P×3
            fr, fg, fb = (frac[c].unsqueeze(1) for c in range(3))
            along_r = {(db, dg): torch.lerp(corner[db, dg, 0], corner[db, dg, 1], fr) for db in (0, 1) for dg in (0, 1)}
            along_g = [torch.lerp(along_r[db, 0], along_r[db, 1], fg) for db in (0, 1)]
            out[i, :, p0:p0 + x.shape[1]] = torch.lerp(along_g[0], along_g[1], fb).t().to(image.dtype)
    return out.view(n, 3, h, w)


def _grid_sample_3d_native(device: torch.device) -> bool:
    """Whether the device has its own 5-D grid_sample: MPS only from torch 2.9 (pytorch PR 160541); before that,
    PYTORCH_ENABLE_MPS_FALLBACK would run it on the CPU behind a copy, slower than the gather path."""
    if device.type in _NO_GRID_SAMPLE_3D:
        return False
    if device.type == "mps":
        major, minor = (int(p) for p in torch.__version__.split(".")[:2])
        return (major, minor) >= (2, 9)
    return True


def _apply_device(image: torch.Tensor, lut: torch.Tensor) -> torch.Tensor:
    """The device path: 5-D grid_sample, or the gather fallback where the device lacks it (noted once)."""
    if _grid_sample_3d_native(image.device):
        try:
            return _apply_grid_sample(image, lut)
        except (NotImplementedError, RuntimeError) as exc:
            if "out of memory" in str(exc).lower():
                raise  # a real failure, not a missing kernel
            _NO_GRID_SAMPLE_3D.add(image.device.type)
    note_fallback("3-D grid_sample", image.device, "an exact gather-based trilinear on the device")
    return _apply_gather(image, lut)


def apply_lut(image: np.ndarray | torch.Tensor, lut: np.ndarray | torch.Tensor, *,
              coords: LUTCoords | None = None) -> np.ndarray | torch.Tensor:
    """Trilinear LUT apply; numpy H×W×3 -> H×W×3 float32, torch N×3×H×W (any device) -> N×3×H×W in the image's
    dtype (computed in it on the device path: float16 in, float16 math); inputs clamped to [0,1]. Which code runs
    follows `core.device.torch_kernels`; ValueError/TypeError for bad shapes or dtypes.

    coords: the numpy image's LUTCoords for this LUT's grid size (the CPU fast path reads them, or fills them
    when new); ignored where they do not fit or another path runs."""
    _check_lut(lut)
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"apply_lut expects an H×W×3 image, got shape {image.shape}")
        if not np.issubdtype(image.dtype, np.floating):
            raise TypeError(f"apply_lut expects a float image in [0, 1], got {image.dtype}")
        table = torch.as_tensor(np.asarray(lut), dtype=torch.float32) if isinstance(lut, np.ndarray) \
            else lut.detach().to("cpu", torch.float32)
        if torch_kernels("cpu"):
            x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1).unsqueeze(0)
            return _apply_device(x, table).squeeze(0).permute(1, 2, 0).contiguous().numpy()
        return _apply_numpy(image, table.contiguous(), coords=coords)
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"apply_lut expects an N×3×H×W tensor, got shape {tuple(image.shape)}")
    if not image.is_floating_point():
        raise TypeError(f"apply_lut expects a float tensor in [0, 1], got {image.dtype}")
    table = torch.as_tensor(lut, device=image.device)
    if torch_kernels(image.device):
        return _apply_device(image, table)
    out = _apply_torch_cpu(image, table.to(torch.float32).contiguous())
    return out.to(image.dtype)


def apply_lut_offset(image: np.ndarray, lut: np.ndarray | torch.Tensor, offset: np.ndarray,
                     strength: float = 1.0, *, coords: LUTCoords | None = None) -> np.ndarray:
    """clip(LUT(image) + strength · offset, 0, 1): image H×W×3 float32, offset H×W float32 (the same on every
    channel, e.g. the engine's detail layer, core.detail.add_detail's "offset" mode) -> H×W×3 float32 in [0, 1].

    On the CPU fast path the offset is added in the same pass over memory as the lookup; with the torch kernels
    (core.device) it is apply_lut followed by the add. coords: as apply_lut's. ValueError for mismatched shapes."""
    _check_lut(lut)
    if image.ndim != 3 or image.shape[2] != 3 or tuple(offset.shape) != tuple(image.shape[:2]):
        raise ValueError(f"apply_lut_offset expects H×W×3 and H×W, got {image.shape} and {offset.shape}")
    table = torch.as_tensor(np.asarray(lut), dtype=torch.float32) if isinstance(lut, np.ndarray) \
        else lut.detach().to("cpu", torch.float32)
    if torch_kernels("cpu"):
        out = apply_lut(image, table)
        out += (np.asarray(offset, np.float32) * np.float32(strength))[..., None]
        return np.clip(out, 0.0, 1.0, out=out)
    return _apply_numpy(image, table.contiguous(), offset, strength, coords)


def resample_lut(lut: np.ndarray, size: int) -> np.ndarray:
    """Trilinear re-grid of a G×G×G×3 LUT to size×size×size×3 float32; the same size returns a copy."""
    g = _check_lut(lut)
    if size == g:
        return np.array(lut, dtype=np.float32)
    nodes = identity_lut(size).reshape(-1, 1, 3)
    return apply_lut(nodes, np.asarray(lut, np.float32)).reshape(size, size, size, 3)  # type: ignore[return-value]
