"""The engine: bracket -> latent code -> LUT(G) -> preview / full-res render, on the CPU, CUDA or Apple's GPU.

Per bracket (`prepare`, which returns an immutable core.prepared.PreparedBracket) everything that does not depend
on the grid size G or the detail strength is computed once: the student's latent code, the base image (core.base:
the mean of the registered frames — `Bracket.images`
already hold, where a frame is invalid, the reference re-rendered at its exposure, as `Bracket.mean` explains —
with colour restored from a smooth exposure-weighted blend as far as this bracket's LUT needs to match Mertens'
chroma), the fused band-pass of the frames
and the luminance detail layer D made through the LUT at G = 33 (`core.detail`). Per grid size the sampled LUT
is cached; per preview size a downsampled base and detail layer. A render is then one trilinear LUT apply plus
one multiply-add: out = clip(LUT_G(base) + detail · D, 0, 1). The LUT is one continuous function sampled at any
G, so D serves every G ≥ 9; coarser grids change the tone map's own fine bands enough that they get their own D,
made once from their first full-size render (a luminance low-pass, no pyramid fusion).

A photographic look (core.adjust.Look) is composed into the LUT: its functions are applied to the sampled
lattice's output values, cached per (G, look), so out = clip(look(LUT_G)(base) + detail · D, 0, 1) and the
exported .cube carries the look. The detail layer stays the look-free one, added after.

Where and how it runs is decided in `core.device`: the device (auto = CUDA, then MPS, then CPU), the kernels (the
CPU's OpenCV/numpy fast paths, or the torch device path, which `kernels="torch"` also runs on the CPU) and the
render precision (float16 on a GPU unless precision="float32"). On the device path everything a render needs (base,
sampled LUT, detail layers) stays on the device; a grid-size change samples the INR there and the only host copy is
the finished frame (`render`), or none (`render_tensor`).

The engine holds no bracket: every render, LUT or base takes the PreparedBracket to use, and the caches of a
bracket (sampled LUTs, looked LUTs, preview sizes, detail layers) live in that prepared bracket, so a render of
one bracket can never use another's data, whatever was prepared meanwhile.

Thread safety: every public method takes the engine's re-entrant lock, so one engine may be shared between the
GUI's render thread and an export thread; calls are serialised, not parallel.
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch

from lutfuse.core import base as basemod
from lutfuse.core import detail as detailmod
from lutfuse.core.adjust import Look, apply_look
from lutfuse.core.device import check_kernels, pick_device, render_dtype, use_kernels
from lutfuse.core.errors import LUTFuseError
from lutfuse.core.grid import MAX_GRID, MIN_GRID, check_grid
from lutfuse.core.lut import LUTCoords, apply_lut, apply_lut_offset
from lutfuse.core.prepared import PreparedBracket, RenderCache, read_only
from lutfuse.core.weights import shipped

if TYPE_CHECKING:
    from lutfuse.core.bracket import Bracket

DEFAULT_WEIGHTS = shipped("LUT student")
REFERENCE_GRID = 33     # the LUT sampling the detail layer subtracts the tone map's own band-pass through
ENCODE_SIDE = 256       # longest side of the stack the student encodes, when the student does not say
PREVIEW_CACHE = 4       # preview sizes kept per bracket (the editor asks for one or two; resizing adds more)
TONE_CACHE = 2          # preview tone maps kept (CPU path): the current (G, look) and the one before
# Grids coarser than this get a detail layer of their own: the reference layer serves G ≥ 9 to within 0.0003
# MEF-SSIM but costs 0.05 at G = 2 (hdrps validation scenes; see the commit history). A few are kept.
EXACT_BELOW = 9
SMALL_GRID_LAYERS = 2
LUT_CACHE = 8           # sampled grid sizes kept (a slider drag through every size would otherwise keep ~0.8 GB)
CALIBRATION_GRID = 17   # the LUT sampling the calibrated base judges its colour strength with (core.base)
LOOK_CACHE = 8          # (grid, look) LUTs kept: a slider drag makes many, only the latest few are reused
# Grid sizes whose full-res mosaic coordinates (core.lut.LUTCoords, 12 bytes per pixel) are kept: the latest one,
# which every detail or look change at that size reuses
COORDS_CACHE = 1

__all__ = ["MAX_GRID", "MIN_GRID", "Engine", "check_grid", "pick_device", "preview_shape"]  # pick_device: core.device


def _prepare_worker() -> ThreadPoolExecutor:
    """A worker thread for one `Engine.prepare` (the latent and base), shut down when that prepare ends.

    Not a pooled thread: a thread that has run torch on several threads keeps its own OpenMP team while it
    lives, and libgomp, once it manages more threads than there are cores, stops spinning between parallel
    regions in every team. Every small torch op on the caller's thread then waits on a futex: with one pooled
    prepare thread alive, INR sampling at G = 33 took 15 ms instead of 7 (2 cores, measured)."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="lutfuse-prepare")


def preview_shape(height: int, width: int, max_side: int | None) -> tuple[int, int]:
    """(h, w) of a render whose longest side is at most max_side (full size when it already fits or None)."""
    if max_side is None or max(height, width) <= max_side:
        return height, width
    scale = max_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


class Engine:
    """Real-time fusion engine: `prepare(bracket)` once, then render / lut from the prepared bracket; see the module
    docstring for what is cached where.

    Thread safety: public methods hold `self._lock` (re-entrant), so the GUI's render thread and an export thread
    may share one engine; `device`, `kernels`, `dtype` are fixed at construction.
    """

    def __init__(self, weights: Path | None = None, device: str | None = None, *, student: Any = None,
                 levels: int = detailmod.DEFAULT_LEVELS,
                 contrast_power: float = detailmod.CONTRAST_POWER,
                 kernels: str | None = None, precision: str = "auto", base: str = basemod.DEFAULT_BASE) -> None:
        """Load the LUT student (shipped weights unless `weights`; a ready `student` object skips loading).

        base: the base image the LUT applies to (core.base.BASES): "calibrated" (default) blends the plain mean
        towards the colour-keeping chroma base as far as the bracket's LUT needs to reach Mertens' chroma;
        "mean" is Su & Zheng's base, what the student was trained on.

        device: auto/None (CUDA, then MPS, then CPU), cpu, cuda[:N] or mps (`core.device.pick_device`);
        kernels: auto (CPU fast paths on the CPU) or torch (the device path everywhere); None = $LUTFUSE_KERNELS;
        precision: auto (float16 renders on a GPU, float32 on the CPU) or float32 (also float16/bfloat16 with
        the torch kernels, to measure their error); LUTFuseError for an unknown or unavailable choice.
        levels: the detail split level at 512 px (core.detail.split_levels scales it with the image size);
        contrast_power: how strongly the detail bands favour the frame with more local structure (0 = Mertens).
        """
        self.device = pick_device(device)
        self.kernels = check_kernels(kernels)
        self.on_device = self.device.type != "cpu" or self.kernels == "torch"  # the torch path (see core.device)
        self.dtype = render_dtype(precision, self.device, self.kernels)
        self.precision = precision
        self.levels = levels
        self.contrast_power = contrast_power
        if base not in basemod.BASES:
            raise LUTFuseError(f"unknown base image {base!r} (choose from {', '.join(basemod.BASES)})")
        self.base_kind = base
        self._lock = threading.RLock()
        if student is None:
            from lutfuse.core.models.lut_student import load_student

            student = load_student(Path(weights) if weights is not None else DEFAULT_WEIGHTS, self.device)
        self.student = student

    # -- per bracket -------------------------------------------------------------------------------------------
    def prepare(self, bracket: Bracket, latent: torch.Tensor | None = None) -> PreparedBracket:
        """A Bracket (N×H×W×3 frames in [0,1]) prepared for rendering: latent code, base image, fused band-pass and
        the reference detail layer, computed once (core.prepared.PreparedBracket; the engine keeps nothing).

        latent: a student latent code (1×L, as `encode` returns) used instead of the bracket's own, e.g. one
        smoothed over a time-lapse's neighbouring brackets (`core.timelapse`)."""
        with self._lock, use_kernels(self.kernels):
            images = bracket.images
            threads = torch.get_num_threads()

            def base_part() -> tuple[RenderCache, float]:
                # on a worker thread: its own kernel choice (a context variable) and torch thread count
                # (OpenMP's is per thread), so the latent and base are those of a run on the calling thread
                if torch.get_num_threads() != threads:
                    torch.set_num_threads(threads)
                with use_kernels(self.kernels):
                    cache = RenderCache(latent=self.encode(images) if latent is None else latent.to(self.device))
                    # no mask: the images already fill invalid areas (Bracket.mean), and a mask would seam the base
                    cache.base, amount = self._make_base(cache, images, None)
                    return cache, amount

            # On the CPU the latent and base (single-threaded stretches: encode's resize, the student, the
            # calibration) run beside the fused band-pass, which does not depend on them.
            worker = _prepare_worker() if not self.on_device else None
            part = worker.submit(base_part) if worker is not None else None
            done = base_part() if part is None else None
            try:
                stack = torch.from_numpy(images).to(self.device).permute(0, 3, 1, 2)
                levels = detailmod.split_levels(images.shape[1], images.shape[2], self.levels)
                valid = bracket.valid
                fused = detailmod.fused_bandpass(
                    stack, levels, self.contrast_power,
                    None if valid is None else torch.from_numpy(valid).to(self.device))
                cache, amount = part.result() if part is not None else done  # type: ignore[misc]
            finally:
                if worker is not None:
                    worker.shutdown(wait=True)  # never leave the worker running (or alive) past prepare
            assert cache.base is not None
            if self.on_device:
                cache.base_dev = self._to_device(cache.base)
            cache.levels, cache.fused = levels, fused
            self._layer(cache, REFERENCE_GRID)
            return PreparedBracket(bracket=bracket, base=read_only(cache.base), latent=cache.latent,
                                   fused=cache.fused, levels=cache.levels, base_kind=self.base_kind,
                                   base_amount=amount, _cache=cache, _engine=self)

    def _cache(self, prepared: PreparedBracket) -> RenderCache:
        """The render cache of a bracket this engine prepared; LUTFuseError for anything else."""
        if not isinstance(prepared, PreparedBracket):
            raise LUTFuseError(f"expected a prepared bracket (Engine.prepare), got {type(prepared).__name__}")
        if prepared._engine is not self:
            raise LUTFuseError("this bracket was prepared by another engine: prepare it with this one")
        return prepared._cache

    @torch.no_grad()
    def _make_base(self, cache: RenderCache, images: np.ndarray,
                   valid: np.ndarray | None) -> tuple[np.ndarray, float]:
        """(the base image (core.base) of the engine's kind, its colour strength); "calibrated" judges the
        bracket's own LUT at G = 17."""
        if self.base_kind != "calibrated":
            return basemod.make_base(images, self.base_kind, valid), 1.0
        table = self._host(cache, CALIBRATION_GRID)  # cached like any other grid: the editor's G = 17 is then free
        amount = basemod.calibrate_amount(images, lambda b: apply_lut(b, table), valid)
        return basemod.blend(images, amount, valid), amount

    def _to_device(self, image: np.ndarray) -> torch.Tensor:
        """H×W×3 numpy -> 1×3×H×W in the render dtype on the engine's device."""
        x = torch.from_numpy(np.ascontiguousarray(image)).to(self.device)
        return x.to(self.dtype).permute(2, 0, 1).unsqueeze(0).contiguous()

    @torch.no_grad()
    def encode(self, images: np.ndarray) -> torch.Tensor:
        """Latent code of a stack N×H×W×3 in [0,1], encoded from a downsampled copy (1×N×3×h×w)."""
        size = getattr(self.student, "input_size", None)
        h, w = images.shape[1:3]
        if size is None:
            h, w = preview_shape(h, w, ENCODE_SIDE)
        else:
            h, w = (size, size) if isinstance(size, int) else tuple(size)
        small = np.stack([cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA) for im in images])
        x = torch.from_numpy(small).to(self.device).permute(0, 3, 1, 2).unsqueeze(0).contiguous()
        return self.student.encode(x)

    # -- queries -----------------------------------------------------------------------------------------------
    def base(self, prepared: PreparedBracket) -> np.ndarray:
        """H×W×3 float32 in [0,1]: the full-res base image the LUT applies to (a writable copy of
        `prepared.base`)."""
        self._cache(prepared)
        return np.array(prepared.base)

    @torch.no_grad()
    def _sample(self, c: RenderCache, grid_size: int) -> torch.Tensor:
        """Cached G×G×G×3 float32 LUT in [0,1] on the device (the INR sampled there; no host copy). Needs the
        latent code only, so prepare may call it before the base exists."""
        g = check_grid(grid_size)
        table = c.sampled.get(g)
        if table is None:
            sampled = self.student.sample(c.latent, g)
            table = (sampled[0] if sampled.dim() == 5 else sampled).clamp(0.0, 1.0).float().contiguous()
            if len(c.sampled) >= LUT_CACHE:
                old = next(iter(c.sampled))  # the least recently sampled size
                for cache in (c.sampled, c.luts, c.luts_dev):
                    cache.pop(old, None)
            c.sampled[g] = table
            if self.on_device:
                c.luts_dev[g] = table if self.dtype == torch.float32 else table.to(self.dtype)
        return table

    def _host(self, c: RenderCache, grid_size: int) -> np.ndarray:
        """Cached G×G×G×3 float32 LUT in [0,1] on the host (the engine's own array: do not modify)."""
        sampled = self._sample(c, grid_size)
        g = int(grid_size)
        table = c.luts.get(g)
        if table is None:
            table = np.ascontiguousarray(sampled.cpu().numpy())
            c.luts[g] = table
        return table

    def _looked(self, c: RenderCache, grid_size: int, look: Look) -> tuple[np.ndarray, torch.Tensor | None]:
        """(LUT with the look applied to its values, host; its copy in self.dtype on the device path, else None),
        cached per (G, look)."""
        if not isinstance(look, Look):
            raise LUTFuseError(f"look {look!r}: expected a core.adjust.Look")
        g = check_grid(grid_size)
        key = (g, look)
        looked = c.looks.get(key)
        if looked is None:
            looked = np.ascontiguousarray(apply_look(self._host(c, g), look), dtype=np.float32)
            if len(c.looks) >= LOOK_CACHE:
                oldest = next(iter(c.looks))
                c.looks.pop(oldest)
                c.looks_dev.pop(oldest, None)
            c.looks[key] = looked
            if self.on_device:
                c.looks_dev[key] = torch.from_numpy(looked).to(self.device, self.dtype)
        return looked, c.looks_dev.get(key)

    def _forget_lut(self, prepared: PreparedBracket, grid_size: int) -> None:
        """Drop one grid size's sampled LUT of a prepared bracket, so the next render samples it again (the bench
        times that)."""
        with self._lock:
            c = self._cache(prepared)
            for cache in (c.sampled, c.luts, c.luts_dev):
                cache.pop(grid_size, None)
            for tone_key in [k for k in c.tones if k[0] == grid_size]:
                c.tones.pop(tone_key)
            for key in [k for k in c.looks if k[0] == grid_size]:
                c.looks.pop(key)
                c.looks_dev.pop(key, None)

    def lut(self, prepared: PreparedBracket, grid_size: int = 33, look: Look | None = None) -> np.ndarray:
        """The bracket's LUT sampled on a G×G×G lattice, G in [2, 129], with the look (core.adjust) applied to its
        values: G×G×G×3 float32 in [0,1] (cached per (G, look); a copy). What `lutfuse cube` writes."""
        with self._lock, use_kernels(self.kernels):
            c = self._cache(prepared)
            if look is None or look.is_neutral():
                return self._host(c, grid_size).copy()
            return self._looked(c, grid_size, look)[0].copy()

    def detail_layer(self, prepared: PreparedBracket, grid_size: int = 33) -> np.ndarray:
        """The full-size detail layer D that render(prepared, grid_size, detail) adds: H×W float32 (luminance offset,
        about ±0.5), read-only (the engine's cached layer on the CPU path: do not keep it past the bracket). On the
        CPU path render(.., d) == clip(render(.., 0) + d·D, 0, 1), so a caller that needs both renders (HQ) makes
        one lookup instead of two; on the device path the render adds D in its render dtype."""
        with self._lock, use_kernels(self.kernels):
            c = self._cache(prepared)
            return read_only(self._layer(c, self._layer_key(check_grid(grid_size))).float().cpu().numpy())

    @staticmethod
    def _layer_key(grid_size: int) -> int:
        """Which detail layer a grid size uses: its own below EXACT_BELOW, else the reference grid's."""
        return grid_size if grid_size < EXACT_BELOW else REFERENCE_GRID

    def _tables(self, c: RenderCache, grid_size: int,
                look: Look | None) -> tuple[np.ndarray | None, torch.Tensor | None]:
        """(host LUT or None, device LUT in self.dtype or None) for a grid size and look: the host one on the CPU
        path, the device one on the device path (both for a look)."""
        if look is not None and not look.is_neutral():
            return self._looked(c, grid_size, look)
        if self.on_device:
            self._sample(c, grid_size)
            return None, c.luts_dev[grid_size]
        return self._host(c, grid_size), None

    def _coords(self, c: RenderCache, grid_size: int, base: Any) -> LUTCoords | None:
        """The full-res base's LUT coordinates for a grid size (CPU path; None for any other image), made empty
        here and filled by the first apply that uses them; the latest COORDS_CACHE sizes are kept."""
        if self.on_device or base is not c.base:
            return None
        coords = c.coords.get(grid_size)
        if coords is None:
            while len(c.coords) >= COORDS_CACHE:
                c.coords.pop(next(iter(c.coords)))  # free the old size's memory before allocating the new
            assert c.base is not None
            coords = c.coords[grid_size] = LUTCoords(c.base, grid_size)
        return coords

    def _apply(self, c: RenderCache, grid_size: int, base: Any, look: Look | None = None) -> torch.Tensor:
        """look(LUT_G)(base) as 3×h×w (CPU path: a view of an h×w×3 array; device path: a 3×h×w tensor in
        self.dtype)."""
        table, table_dev = self._tables(c, grid_size, look)
        if not self.on_device:
            assert table is not None
            return torch.from_numpy(apply_lut(base, table, coords=self._coords(c, grid_size, base))).permute(2, 0, 1)
        assert table_dev is not None
        return apply_lut(base, table_dev)[0]

    def _layer(self, c: RenderCache, key: int, tone: torch.Tensor | None = None) -> torch.Tensor:
        """Full-res detail layer H×W for a layer key, made once from LUT_key(base) (given as `tone` 3×H×W, or
        applied)."""
        layer = c.layers.get(key)
        if layer is None:
            if tone is None:
                tone = self._apply(c, key, c.base if c.base_dev is None else c.base_dev)
            # float32 whatever the render dtype: the layer is made once, and its pyramid needs the precision
            layer = detailmod.tone_detail(c.fused, tone.float(), c.levels).to(self.dtype)
            small = [k for k in c.layers if k != REFERENCE_GRID]
            if key != REFERENCE_GRID and len(small) >= SMALL_GRID_LAYERS:
                c.layers.pop(small[0])  # the oldest coarse-grid layer; the reference one always stays
            c.layers[key] = layer
        return layer

    def _small_base(self, c: RenderCache, shape: tuple[int, int]) -> Any:
        """The base downsampled (area filter) to shape (h, w), made once per size and kept (a few sizes)."""
        base = c.small_bases.get(shape)
        if base is None:
            assert c.base is not None  # set by prepare
            small = cv2.resize(c.base, shape[::-1], interpolation=cv2.INTER_AREA)
            base = small if c.base_dev is None else self._to_device(small)
            if len(c.small_bases) >= PREVIEW_CACHE:
                c.small_bases.pop(next(iter(c.small_bases)))  # the oldest size
            c.small_bases[shape] = base
        return base

    def _small_layer(self, c: RenderCache, shape: tuple[int, int], key: int) -> torch.Tensor:
        """The detail layer downsampled to shape with the same area filter as the base, so a preview matches the
        downsized full render; made once per (size, layer) and kept (a few)."""
        layer = c.small_layers.get((shape[0], shape[1], key))
        if layer is None:
            full = self._layer(c, key).float().cpu().numpy()  # once per preview size: OpenCV's area filter
            small = torch.from_numpy(cv2.resize(full, shape[::-1], interpolation=cv2.INTER_AREA))
            layer = small.to(self.device, self.dtype)
            if len(c.small_layers) >= 2 * PREVIEW_CACHE:
                c.small_layers.pop(next(iter(c.small_layers)))
            c.small_layers[(shape[0], shape[1], key)] = layer
        return layer

    def _preview_tone(self, c: RenderCache, g: int, look: Look | None, shape: tuple[int, int],
                      base: np.ndarray) -> np.ndarray:
        """look(LUT_G)(base) of a preview-sized base (CPU path), cached per (G, look, size); do not modify."""
        key = (g, look, *shape)
        cached = c.tones.get(key)
        if cached is not None:
            return cached
        table = self._tables(c, g, look)[0]
        assert table is not None  # the CPU path
        tone = np.asarray(apply_lut(base, table))
        if len(c.tones) >= TONE_CACHE:
            c.tones.pop(next(iter(c.tones)))
        c.tones[key] = tone
        return tone

    def render(self, prepared: PreparedBracket, grid_size: int = 33, detail: float = 1.0,
               max_side: int | None = None, look: Look | None = None) -> np.ndarray:
        """Fused image H×W×3 float32 in [0,1] of a prepared bracket: look(LUT_G)(base) + detail · D; max_side
        bounds the longest side (preview); look: photographic adjustments (core.adjust.Look) composed into the
        LUT, None = none. LUTFuseError for a bad argument or a bracket another engine prepared.

        detail = 0 is exactly core.lut.apply_lut(prepared.base, engine.lut(prepared, G, look)) on the CPU (at full
        size). On the device path this is the one host copy of a render (float16 renders widen to float32 on the
        device).
        """
        with self._lock, use_kernels(self.kernels):
            out = self._checked_render(prepared, grid_size, detail, max_side, look)
            if not self.on_device:
                return out.numpy()  # the H×W×3 array apply_lut made, detail added in place
            return out.float().permute(1, 2, 0).contiguous().cpu().numpy()

    def render_tensor(self, prepared: PreparedBracket, grid_size: int = 33, detail: float = 1.0,
                      max_side: int | None = None, look: Look | None = None) -> torch.Tensor:
        """As render(), but left where it was made, as 3×H×W in [0,1]: on the device path on the engine's device in
        its render dtype (no host copy: for a GPU texture or a timing), on the CPU path float32 (a planar view of
        the H×W×3 array render() would return). The caller owns it; the engine keeps no reference."""
        with self._lock, use_kernels(self.kernels):
            out = self._checked_render(prepared, grid_size, detail, max_side, look)
            return out if self.on_device else out.permute(2, 0, 1)

    def _checked_render(self, prepared: PreparedBracket, grid_size: int, detail: float, max_side: int | None,
                        look: Look | None = None) -> torch.Tensor:
        """Check the arguments (LUTFuseError naming the bad one), then _render()."""
        c = self._cache(prepared)
        if not isinstance(detail, (int, float)) or not math.isfinite(detail) or detail < 0:
            raise LUTFuseError(f"detail strength {detail!r}: must be a number ≥ 0 (0 = pure LUT, 1 = default)")
        if max_side is not None and (isinstance(max_side, bool) or int(max_side) != max_side or max_side < 1):
            raise LUTFuseError(f"preview size {max_side!r}: must be a positive number of pixels")
        return self._render(c, grid_size, float(detail), max_side, look)

    def _render(self, c: RenderCache, grid_size: int, detail: float, max_side: int | None,
                look: Look | None = None) -> torch.Tensor:
        """Render: H×W×3 float32 (CPU path) or 3×H×W in self.dtype (device path), in [0,1]."""
        g = check_grid(grid_size)
        assert c.base is not None  # set by prepare
        h, w = c.base.shape[:2]
        shape = preview_shape(h, w, max_side)
        full = shape == (h, w)
        if full:
            base = c.base if c.base_dev is None else c.base_dev
        else:
            base = self._small_base(c, shape)
        looked = look is not None and not look.is_neutral()
        if not self.on_device and detail != 0.0:
            # CPU path: the lookup and the detail add in one pass over memory, once the layer exists
            key = self._layer_key(g)
            known = c.layers.get(key) if full else self._small_layer(c, shape, key)
            if not full:
                assert known is not None
                tone = self._preview_tone(c, g, look if looked else None, shape, base)
                layer = known.numpy() if detail == 1.0 else known.numpy() * np.float32(detail)  # x·1 == x exactly
                # clip(tone + layer) with the layer widened to 3 channels by cv2.merge first: numpy's broadcast add
                # over a length-3 last axis runs a scalar loop, its add of two equal shapes a vector one (measured
                # at 1280×720: 4.0-4.7 vs 9.3-10.3 CPU ms for the whole step; the same float32 adds, the same bits)
                mixed = cv2.merge([layer, layer, layer])
                np.add(tone, mixed, out=mixed)
                return torch.from_numpy(np.clip(mixed, 0.0, 1.0, out=mixed))
            if known is not None:
                host_table = self._tables(c, g, look)[0]
                assert host_table is not None  # the CPU path
                return torch.from_numpy(apply_lut_offset(base, host_table, known.numpy(), detail,
                                                         coords=self._coords(c, g, base)))
        out = self._apply(c, g, base, look)
        if detail != 0.0:
            key = self._layer_key(g)
            if full:
                # a coarse grid's own layer is made from this very render's LUT result (before detail is added);
                # the layer is look-free, so a looked render makes it from the plain LUT
                layer = self._layer(c, key, out if key == g and not looked else None)
            else:
                layer = self._small_layer(c, shape, key)
            detailmod.add_detail(out, layer, detail)
        return out if self.on_device else out.permute(1, 2, 0)
