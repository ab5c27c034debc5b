"""The engine: bracket -> latent code -> LUT(G) -> preview / full-res render, on the CPU or a CUDA device.

Per bracket (`set_bracket`) everything that does not depend on the grid size G or the detail strength is computed
once: the base image (mean of the aligned frames), the student's latent code, and the luminance detail layer
(`core.detail`). Per grid size the sampled LUT is cached; per preview size a downsampled base and detail layer.
A render is then one trilinear LUT apply plus one multiply-add: out = clip(LUT_G(base) + detail · D, 0, 1).

Thread safety: every public method takes the engine's re-entrant lock, so one engine may be shared between the
GUI's render thread and an export thread; calls are serialised, not parallel.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from core import detail as detailmod
from core.errors import LUTFuseError
from core.lut import apply_lut
from core.paths import WEIGHTS

MIN_GRID, MAX_GRID = 2, 129
DEFAULT_WEIGHTS = WEIGHTS / "lut_student.pt"
REFERENCE_GRID = 33     # the LUT sampling the detail layer subtracts the tone map's own band-pass through
ENCODE_SIDE = 256       # longest side of the stack the student encodes, when the student does not say
PREVIEW_CACHE = 4       # preview sizes kept per bracket (the editor asks for one or two; resizing adds more)


def pick_device(device: str | torch.device | None) -> torch.device:
    """CUDA when present and nothing was asked for; else the named device, checked to exist."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise LUTFuseError(f"unknown device '{device}' (use cpu or cuda)") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LUTFuseError(f"device '{device}': no CUDA device is available here (use cpu)")
    if dev.type not in {"cpu", "cuda"}:
        raise LUTFuseError(f"device '{device}': only cpu and cuda are supported")
    return dev


def check_grid(grid_size: int) -> int:
    """The grid size as an int; LUTFuseError unless it is an integer in [2, 129]."""
    if isinstance(grid_size, bool) or not float(grid_size).is_integer() or not MIN_GRID <= grid_size <= MAX_GRID:
        raise LUTFuseError(f"LUT grid size {grid_size!r}: must be an integer between {MIN_GRID} and {MAX_GRID}")
    return int(grid_size)


def preview_shape(height: int, width: int, max_side: int | None) -> tuple[int, int]:
    """(h, w) of a render whose longest side is at most max_side (full size when it already fits or None)."""
    if max_side is None or max(height, width) <= max_side:
        return height, width
    scale = max_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


class Engine:
    """Real-time fusion engine over one bracket; see the module docstring for what is cached.

    Thread safety: public methods hold `self._lock` (re-entrant), so the GUI's render thread and an export thread
    may share one engine; `bracket` and `device` are plain attributes, read them while no set_bracket runs.
    """

    def __init__(self, weights: Path | None = None, device: str | None = None, *, student: Any = None,
                 levels: int = detailmod.DEFAULT_LEVELS) -> None:
        """Load the LUT student (shipped weights unless `weights`; a ready `student` object skips loading).

        levels: the detail split level at 512 px (core.detail.split_levels scales it with the image size).
        """
        self.device = pick_device(device)
        self.levels = levels
        self._lock = threading.RLock()
        if student is None:
            from core.models.lut_student import load_student

            student = load_student(Path(weights) if weights is not None else DEFAULT_WEIGHTS, self.device)
        self.student = student
        self.bracket = None
        self._reset()

    def _reset(self) -> None:
        """Forget every per-bracket cache."""
        self._base: np.ndarray | None = None          # H×W×3 float32, CPU API copy
        self._base_dev: torch.Tensor | None = None    # 1×3×H×W on the device (CUDA only)
        self._latent: torch.Tensor | None = None
        self._layer: torch.Tensor | None = None       # H×W detail layer on the device
        self._luts: dict[int, np.ndarray] = {}
        self._luts_dev: dict[int, torch.Tensor] = {}
        self._previews: dict[tuple[int, int], tuple[Any, torch.Tensor]] = {}

    # -- per bracket -------------------------------------------------------------------------------------------
    def set_bracket(self, bracket) -> None:
        """Take a Bracket (N×H×W×3 frames in [0,1]): base image, latent code and detail layer, once per bracket."""
        with self._lock:
            self._reset()
            self.bracket = bracket
            try:
                images = bracket.images
                self._base = bracket.mean()
                if self.device.type != "cpu":
                    self._base_dev = self._to_device(self._base)
                self._latent = self.encode(images)
                tone = self._apply(REFERENCE_GRID, None)
                stack = torch.from_numpy(images).to(self.device).permute(0, 3, 1, 2)
                levels = detailmod.split_levels(*images.shape[1:3], self.levels)
                # the reference tone map as 3×H×W, whichever layout the device's apply gave
                tone = tone.permute(2, 0, 1) if self.device.type == "cpu" else tone[0]
                self._layer = detailmod.detail_layer(stack, tone, levels)
            except BaseException:
                self.bracket = None
                self._reset()
                raise

    def _to_device(self, image: np.ndarray) -> torch.Tensor:
        """H×W×3 numpy -> 1×3×H×W float32 on the engine's device."""
        return torch.from_numpy(np.ascontiguousarray(image)).to(self.device).permute(2, 0, 1).unsqueeze(0).contiguous()

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

    def _require(self) -> None:
        """LUTFuseError when no bracket has been set."""
        if self._base is None:
            raise LUTFuseError("no bracket loaded: open a bracket before rendering or exporting")

    # -- queries -----------------------------------------------------------------------------------------------
    def base(self) -> np.ndarray:
        """H×W×3 float32 in [0,1]: the full-res base image the LUT applies to (a copy)."""
        with self._lock:
            self._require()
            return self._base.copy()

    @torch.no_grad()
    def _lut(self, grid_size: int) -> np.ndarray:
        """Cached G×G×G×3 float32 LUT in [0,1] (the engine's own array: do not modify)."""
        g = check_grid(grid_size)
        self._require()
        table = self._luts.get(g)
        if table is None:
            sampled = self.student.sample(self._latent, g)[0].clamp(0.0, 1.0).float()
            table = np.ascontiguousarray(sampled.cpu().numpy())
            self._luts[g] = table
            if self.device.type != "cpu":
                self._luts_dev[g] = sampled.contiguous()
        return table

    def lut(self, grid_size: int = 33) -> np.ndarray:
        """The bracket's LUT sampled on a G×G×G lattice, G in [2, 129]: G×G×G×3 float32 in [0,1] (cached; a copy)."""
        with self._lock:
            return self._lut(grid_size).copy()

    def _apply(self, grid_size: int, max_side: int | None) -> torch.Tensor:
        """LUT_G(base) at full or preview size: H×W×3 CPU tensor on the CPU, 1×3×H×W on CUDA."""
        table = self._lut(grid_size)
        base, _ = self._preview(max_side)
        if self.device.type == "cpu":
            return torch.from_numpy(apply_lut(base, table))
        return apply_lut(base, self._luts_dev[grid_size])

    def _preview(self, max_side: int | None) -> tuple[Any, torch.Tensor | None]:
        """(base, detail layer) at the render size; downsampled copies are made once per size and kept."""
        h, w = self._base.shape[:2]
        shape = preview_shape(h, w, max_side)
        if shape == (h, w):
            return (self._base if self._base_dev is None else self._base_dev), self._layer
        cached = self._previews.get(shape)
        if cached is None:
            small = cv2.resize(self._base, shape[::-1], interpolation=cv2.INTER_AREA)
            base = small if self._base_dev is None else self._to_device(small)
            layer = self._layer
            if layer is not None:
                # the same area filter on the detail layer keeps a preview close to the downsized full render
                small_layer = cv2.resize(layer.cpu().numpy(), shape[::-1], interpolation=cv2.INTER_AREA)
                layer = torch.from_numpy(small_layer).to(self.device)
                if len(self._previews) >= PREVIEW_CACHE:
                    self._previews.pop(next(iter(self._previews)))  # the oldest size
                self._previews[shape] = cached = (base, layer)
            else:
                return base, None  # during set_bracket: no layer yet, nothing to cache
        return cached

    def render(self, grid_size: int = 33, detail: float = 1.0, max_side: int | None = None) -> np.ndarray:
        """Fused image H×W×3 float32 in [0,1]: LUT_G(base) + detail · D; max_side bounds the longest side (preview).

        detail = 0 is exactly core.lut.apply_lut(engine.base(), engine.lut(G)) on the CPU (at full size).
        """
        with self._lock:
            self._require()
            if not isinstance(detail, (int, float)) or not math.isfinite(detail) or detail < 0:
                raise LUTFuseError(f"detail strength {detail!r}: must be a number ≥ 0 (0 = pure LUT, 1 = default)")
            if max_side is not None and (isinstance(max_side, bool) or int(max_side) != max_side or max_side < 1):
                raise LUTFuseError(f"preview size {max_side!r}: must be a positive number of pixels")
            out = self._render(grid_size, float(detail), max_side)
            if self.device.type == "cpu":
                return out.numpy()
            return out.permute(1, 2, 0).contiguous().cpu().numpy()

    def _render(self, grid_size: int, detail: float, max_side: int | None) -> torch.Tensor:
        """Render on the device: H×W×3 (CPU) or 3×H×W (CUDA) float32 in [0,1]."""
        check_grid(grid_size)
        out = self._apply(grid_size, max_side)
        if out.dim() == 4:
            out = out[0]
        if detail != 0.0:
            _, layer = self._preview(max_side)
            detailmod.add_detail(out, layer, detail)
        return out
