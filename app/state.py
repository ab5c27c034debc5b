"""Plain-Python editor model: render requests, their coalescing, recent brackets, and display helpers (no Qt)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

GRID_MIN, GRID_MAX, GRID_DEFAULT = 2, 129, 33
GRID_MARKS = (2, 17, 33, 65, 129)
PREVIEW_MAX_SIDE = 640   # while a slider moves: small enough to render at interactive rates on a laptop CPU
THUMB_SIDE = 160
RECENT_MAX = 8
AXES = ("R", "G", "B")


@dataclass(frozen=True)
class RenderRequest:
    """One render the view wants: grid size, detail strength, and a preview size (None = full resolution)."""

    grid: int
    detail: float
    max_side: int | None
    generation: int = 0   # which loaded bracket it belongs to; results of an older one are dropped

    @property
    def full(self) -> bool:
        """True for a full-resolution render (the one that settles the view)."""
        return self.max_side is None


class Coalescer:
    """Keeps at most one job running and one waiting; a newer request replaces the waiting one (latest wins)."""

    def __init__(self) -> None:
        self.running: RenderRequest | None = None
        self.pending: RenderRequest | None = None

    def submit(self, request: RenderRequest) -> RenderRequest | None:
        """Request a render; returns it if it should start now, else None (it waits, replacing any older one)."""
        if self.running is None:
            self.running = request
            return request
        self.pending = request
        return None

    def done(self) -> RenderRequest | None:
        """The running job ended; returns the waiting request to start next, if any."""
        self.running, self.pending = self.pending, None
        return self.running

    def reset(self) -> None:
        """Forget the waiting request (a new bracket supersedes it)."""
        self.pending = None


@dataclass
class RenderResult:
    """What a render job hands back to the view: display pixels, the LUT it used, and histograms."""

    request: RenderRequest
    image: np.ndarray              # H×W×3 uint8 for display
    lut: np.ndarray                # G×G×G×3 float32, core layout lut[b, g, r, c]
    histogram: dict[str, np.ndarray]
    seconds: float


@dataclass
class LoadedBracket:
    """A bracket prepared for the view: the core Bracket plus display copies made off the GUI thread."""

    bracket: object                # core.bracket.Bracket
    paths: list[Path]              # what the user opened (files, or one folder)
    align: bool
    before: np.ndarray             # middle frame, H×W×3 uint8
    thumbnails: list[np.ndarray] = field(default_factory=list)   # small H×W×3 uint8, darkest first
    relative_evs: list[float] = field(default_factory=list)      # EV relative to the middle frame
    deghost: str = "off"                                         # core.deghost strength it was loaded with


def to_display(image: np.ndarray) -> np.ndarray:
    """Float RGB in [0,1] -> contiguous uint8 for display."""
    return np.ascontiguousarray(np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8))


def thumbnail(image: np.ndarray, side: int = THUMB_SIDE) -> np.ndarray:
    """A uint8 copy whose longer side is at most `side` pixels (area-averaged)."""
    import cv2

    h, w = image.shape[:2]
    scale = min(1.0, side / max(h, w))
    small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return to_display(small)


def histograms(image: np.ndarray, bins: int = 128) -> dict[str, np.ndarray]:
    """Normalised histograms (peak 1) of R, G, B and Rec. 709 luma of a uint8 RGB image."""
    flat = image.reshape(-1, 3)
    if flat.shape[0] > 500_000:  # a strided sample is enough for the shape of a histogram
        flat = flat[:: flat.shape[0] // 500_000 + 1]
    luma = (flat @ np.array([0.2126, 0.7152, 0.0722])).astype(np.int64)
    out = {}
    for name, values in (("R", flat[:, 0]), ("G", flat[:, 1]), ("B", flat[:, 2]), ("L", luma)):
        counts = np.bincount(np.minimum(values.astype(np.int64) * bins // 256, bins - 1), minlength=bins)
        out[name] = counts.astype(np.float32) / max(1, counts.max())
    return out


def lut_slice(lut: np.ndarray, axis: str, index: int) -> np.ndarray:
    """The G×G×3 slice of a core-layout LUT (lut[b, g, r]) at input `axis` = index; rows/cols are the other two
    axes in R, G, B order of precedence: R fixed -> rows B, cols G; G fixed -> rows B, cols R; B fixed -> rows G,
    cols R."""
    index = int(np.clip(index, 0, lut.shape[0] - 1))
    if axis == "R":
        return lut[:, :, index, :]
    if axis == "G":
        return lut[:, index, :, :]
    if axis == "B":
        return lut[index, :, :, :]
    raise ValueError(f"axis must be R, G or B, not {axis!r}")


def slice_axes(axis: str) -> tuple[str, str]:
    """(column axis, row axis) of lut_slice(…, axis, …)."""
    return {"R": ("G", "B"), "G": ("R", "B"), "B": ("R", "G")}[axis]


def neutral_response(lut: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Input grey levels (G,) and the LUT's output colour along its diagonal (G×3)."""
    g = lut.shape[0]
    i = np.arange(g)
    return i / (g - 1), lut[i, i, i, :]


def rescale_index(index: int, old_size: int, new_size: int) -> int:
    """Keep a slice at the same input level when the grid size changes."""
    if old_size <= 1:
        return new_size // 2
    return int(round(index * (new_size - 1) / (old_size - 1)))


def push_recent(recent: Sequence[Sequence[str]], entry: Sequence[str], limit: int = RECENT_MAX) -> list[list[str]]:
    """Recent brackets, newest first, without duplicates, at most `limit`."""
    entry = [str(p) for p in entry]
    out = [entry] + [list(r) for r in recent if list(r) != entry]
    return out[:limit]


def recent_label(entry: Sequence[str]) -> str:
    """Menu text for a recent bracket: the folder, or the first file and how many more."""
    paths = [Path(p) for p in entry]
    if len(paths) == 1:
        return f"{paths[0].name or paths[0]}{'/' if paths[0].is_dir() else ''}  ({paths[0].parent})"
    return f"{paths[0].name} + {len(paths) - 1} more  ({paths[0].parent})"


def format_ev(ev: float) -> str:
    """'+2.0 EV', '0 EV', '−1.3 EV' (typographic minus)."""
    if abs(ev) < 0.05:
        return "0 EV"
    sign = "+" if ev > 0 else "\u2212"
    return f"{sign}{abs(ev):.1f} EV"
