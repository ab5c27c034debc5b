"""Plain-Python editor model: render requests, their coalescing, recent brackets, and display helpers (no Qt)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lutfuse.core.colour import LUMA
from lutfuse.core.grid import MAX_GRID, MIN_GRID

GRID_MIN, GRID_MAX, GRID_DEFAULT = MIN_GRID, MAX_GRID, 33
GRID_MARKS = (2, 17, 33, 65, 129)
PREVIEW_MAX_SIDE = 640   # while a slider moves: small enough to render at interactive rates on a laptop CPU
THUMB_SIDE = 160
# Full renders are shown from a copy whose longest side is at most the screen's (never below this): converting
# and uploading 24 MP for a 2560-px screen took 0.7-2.3 s; zoomed in past it, the view cuts the visible part
# from the full-resolution render instead.
DISPLAY_SIDE_MIN = 2048
RECENT_MAX = 8
AXES = ("R", "G", "B")


@dataclass(frozen=True)
class RenderRequest:
    """One render the view wants: grid size, detail strength, and a preview size (None = full resolution)."""

    grid: int
    detail: float
    max_side: int | None
    generation: int = 0   # which loaded bracket it belongs to; results of an older one are dropped
    look: object = None   # core.adjust.Look, or None for none

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
    image: np.ndarray              # h×w×3 uint8 for display (at most the display side)
    lut: np.ndarray                # G×G×G×3 float32, core layout lut[b, g, r, c]
    histogram: dict[str, np.ndarray]
    seconds: float
    source: np.ndarray | None = None   # the render itself, H×W×3 float32 in [0,1] (for 1:1 crops and readout)


@dataclass
class LoadedBracket:
    """A bracket prepared for the view: the core Bracket plus display copies made off the GUI thread."""

    bracket: object                # core.bracket.Bracket
    prepared: object               # core.prepared.PreparedBracket: what renders and exports of this bracket use
    paths: list[Path]              # what the user opened (files, or one folder)
    align: bool
    before: np.ndarray             # reference frame (middle unless chosen), H×W×3 uint8
    thumbnails: list[np.ndarray] = field(default_factory=list)   # small H×W×3 uint8, darkest first
    relative_evs: list[float] = field(default_factory=list)      # EV relative to the middle frame
    deghost: str = "off"                                         # core.deghost strength it was loaded with
    warnings: list[str] = field(default_factory=list)  # core.scene_check's duplicates / other scenes: check these
    notes: list[str] = field(default_factory=list)     # the loader's notes: what it did with the files (information)
    choice: FrameChoice | None = None   # the frames used and the reference, when not all / not the middle

    def key(self) -> tuple:
        """What identifies this bracket's pixels: the files, how they were loaded and which frames were used
        (caches of images made from it, e.g. its Mertens fusion, are kept under this key)."""
        choice = self.choice or FrameChoice()
        return (tuple(self.paths), self.align, self.deghost, choice.reference_path, choice.excluded)


@dataclass(frozen=True)
class FrameChoice:
    """Bracket control: which frames of the opened bracket take part and which one is the reference.

    files: the frames to load, darkest first (all but the excluded); reference: the reference's 0-based index
    among `files` (None = the middle frame, core.bracket's default); reference_path / excluded: the same as
    file paths, for the view and the sidecar."""

    files: tuple[Path, ...] = ()
    reference: int | None = None
    reference_path: Path | None = None
    excluded: tuple[Path, ...] = ()


def choose_frames(ordered: Sequence[Path], excluded: Sequence[Path], reference: Path | None) -> FrameChoice:
    """The FrameChoice for a bracket whose frames are `ordered` (darkest first): all but `excluded`, with
    `reference` (None or an excluded frame: the middle of those left). Raises ValueError when fewer than two
    frames would be left."""
    out = set(excluded)
    files = tuple(p for p in ordered if p not in out)
    if len(files) < 2:
        raise ValueError("a bracket needs at least two frames: include another one first")
    index = files.index(reference) if reference in files else None
    return FrameChoice(files=files, reference=index, reference_path=files[index] if index is not None else None,
                       excluded=tuple(p for p in ordered if p in out))


def to_display(image: np.ndarray) -> np.ndarray:
    """Float RGB in [0,1] -> contiguous uint8 for display."""
    return np.ascontiguousarray(np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8))


def display_copy(image: np.ndarray, side: int) -> np.ndarray:
    """Float RGB in [0,1] -> uint8 for display, area-downsampled first when its longest side exceeds `side`
    (downsampling the float image before converting is what makes a 24 MP render quick to show)."""
    import cv2

    h, w = image.shape[:2]
    if max(h, w) > side:
        scale = side / max(h, w)
        image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                           interpolation=cv2.INTER_AREA)
    return to_display(image)


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
    luma = (flat @ np.array(LUMA)).astype(np.int64)
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


MIDDLE_GREY = 0.18   # linear reflectance photographers' EV readouts are relative to


def srgb_to_linear(values: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0,1] -> linear light (IEC 61966-2-1 EOTF)."""
    v = np.asarray(values, np.float64)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def pixel_readout(rgb: np.ndarray) -> tuple[tuple[int, int, int], float]:
    """A pixel as a photographer reads it: RGB 0-255 and EV relative to middle grey (log2 of the Rec. 709
    luminance of the linearised sRGB value over 0.18; 0 EV = middle grey, -inf for black)."""
    rgb = np.clip(np.asarray(rgb, np.float64), 0.0, 1.0)
    codes = tuple(int(v) for v in np.floor(rgb * 255 + 0.5))
    luminance = float(srgb_to_linear(rgb) @ np.array(LUMA))
    ev = float(np.log2(luminance / MIDDLE_GREY)) if luminance > 0 else float("-inf")
    return codes, ev


def format_readout(x: int, y: int, rgb: np.ndarray) -> str:
    """'x 120  y 45   R 255  G 128  B 0   +1.3 EV' for the status bar and the loupe."""
    (r, g, b), ev = pixel_readout(rgb)
    ev_text = "\u2212\u221e EV" if ev == float("-inf") else format_ev(ev)
    return f"x {x}  y {y}   R {r}  G {g}  B {b}   {ev_text}"


def clipping_overlay(pixels: np.ndarray) -> np.ndarray:
    """RGBA overlay (h×w×4 uint8) of clipped pixels in a uint8 RGB image: red where any channel is at 255
    (highlights clipped), blue where any channel is at 0 (shadows clipped), transparent elsewhere."""
    high = (pixels >= 255).any(axis=-1)
    low = (pixels <= 0).any(axis=-1) & ~high
    out = np.zeros((*pixels.shape[:2], 4), np.uint8)
    out[high] = (255, 0, 0, 255)
    out[low] = (40, 90, 255, 255)
    return out
