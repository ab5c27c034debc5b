"""What the result can be compared with: each frame of the bracket, OpenCV's Mertens fusion (made in a background
Job, cached per bracket) and the last HQ export of the bracket. The view shows one of them split against the
result or side by side (app.viewer)."""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
from PySide6.QtCore import QObject, QThreadPool, Signal

from lutfuse.app.state import LoadedBracket, display_copy, format_ev
from lutfuse.app.workers import Job

MERTENS = "mertens"
HQ = "hq"
CACHE_BRACKETS = 4   # brackets whose Mertens / HQ images are kept (a reload of the same bracket reuses them)


def frame_key(i: int) -> str:
    """Key of frame i (darkest first) among the sources."""
    return f"frame:{i}"


def mertens_display(loaded: LoadedBracket, side: int) -> np.ndarray:
    """OpenCV's Mertens fusion (core.classical.mertens; Mertens, Kautz & Van Reeth 2007) of display-sized copies
    of the frames -> h×w×3 uint8 with its longest side at most `side`. Registered frames' uncovered borders take
    no part, as in the exports."""
    import cv2

    from lutfuse.core.classical import mertens

    frames = loaded.bracket.images
    h, w = frames.shape[1:3]
    side = min(max(h, w), side)
    small = np.stack([display_copy(f, side).astype(np.float32) / 255 for f in frames])
    valid = loaded.bracket.valid
    if valid is not None:
        valid = np.stack([cv2.resize(v.astype(np.uint8), small.shape[2:0:-1],
                                     interpolation=cv2.INTER_NEAREST) > 0 for v in valid])
    return display_copy(mertens(small, valid), side)


class CompareSources(QObject):
    """The compare choices of the bracket on screen, in order: frames (darkest first), Mertens, HQ (once made).

    `sources()` is the simple view: a list of (name, h×w×3 uint8 display array) of those ready now. Frames are
    cut on demand (one resize); Mertens starts in a Job on `request(MERTENS)` and `ready(key)` is emitted when
    it arrives; `add_hq` files an HQ export under its bracket."""

    ready = Signal(str)        # a source's pixels became available (Mertens computed, HQ added)
    failed = Signal(str)       # a readable message
    changed = Signal()         # the list of choices changed

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self.loaded: LoadedBracket | None = None
        self.side = 2048
        self._frames: dict[str, np.ndarray] = {}
        self._cache: dict[Hashable, dict[str, np.ndarray]] = {}   # bracket key -> Mertens/HQ pixels
        self._jobs: dict[Hashable, Job] = {}

    # -- the bracket -------------------------------------------------------------------------------------------
    def set_bracket(self, loaded: LoadedBracket, side: int) -> None:
        """The bracket on screen changed; `side` is the longest side of the display copies."""
        self.loaded, self.side = loaded, side
        self._frames = {}
        self.changed.emit()

    def _stored(self) -> dict[str, np.ndarray]:
        if self.loaded is None:
            return {}
        return self._cache.get(self.loaded.key(), {})

    def entries(self) -> list[tuple[str, str]]:
        """(key, name) of every choice, in order; Mertens is listed before it is computed."""
        if self.loaded is None:
            return []
        frames = self.loaded.bracket.frames
        evs = self.loaded.relative_evs
        out = [(frame_key(i), f"{f.path.name} ({format_ev(evs[i])})") for i, f in enumerate(frames)]
        out.append((MERTENS, "Mertens (OpenCV)"))
        if HQ in self._stored():
            out.append((HQ, "HQ export"))
        return out

    def name(self, key: str) -> str:
        """Short label for the view: the frame's file name, 'Mertens' or 'HQ export'."""
        if key.startswith("frame:") and self.loaded is not None:
            return self.loaded.bracket.frames[int(key[6:])].path.name
        return {MERTENS: "Mertens", HQ: "HQ export"}.get(key, key)

    def pixels(self, key: str) -> np.ndarray | None:
        """The display pixels of `key`, or None when not (yet) available."""
        if self.loaded is None:
            return None
        if key.startswith("frame:"):
            if key not in self._frames:
                i = int(key[6:])
                self._frames[key] = display_copy(self.loaded.bracket.frames[i].image, self.side)
            return self._frames[key]
        return self._stored().get(key)

    def sources(self) -> list[tuple[str, np.ndarray]]:
        """(name, h×w×3 uint8) of every choice available now, in order."""
        out = []
        for key, _label in self.entries():
            pixels = self.pixels(key)
            if pixels is not None:
                out.append((self.name(key), pixels))
        return out

    def pending(self, key: str) -> bool:
        """True while `key` is being computed for the bracket on screen."""
        return (key == MERTENS and self.loaded is not None and self.loaded.key() in self._jobs
                and MERTENS not in self._stored())

    # -- background work --------------------------------------------------------------------------------------
    def request(self, key: str) -> np.ndarray | None:
        """The pixels of `key` if ready; else start computing them (Mertens) and return None (`ready` follows)."""
        pixels = self.pixels(key)
        if pixels is not None or key != MERTENS or self.loaded is None:
            return pixels
        bracket_key = self.loaded.key()
        if bracket_key in self._jobs:
            return None
        loaded, side = self.loaded, self.side
        job = Job(lambda _job: (bracket_key, mertens_display(loaded, side)))
        # bound methods of this GUI-thread object: the slots run queued on the GUI thread
        job.signals.finished.connect(self._mertens_done)
        job.signals.failed.connect(self._mertens_failed)
        job.signals.ended.connect(self._ended)
        self._jobs[bracket_key] = job
        self.pool.start(job)
        return None

    def _mertens_done(self, result: tuple[Hashable, np.ndarray]) -> None:
        self._store(result[0], MERTENS, result[1])

    def _mertens_failed(self, message: str) -> None:
        self.failed.emit(f"Mertens failed: {message}")

    def _ended(self, job: Job) -> None:
        for k, j in list(self._jobs.items()):
            if j is job:
                del self._jobs[k]

    def _store(self, bracket_key: Hashable, key: str, pixels: np.ndarray) -> None:
        self._cache.setdefault(bracket_key, {})[key] = pixels
        while len(self._cache) > CACHE_BRACKETS:   # oldest first (dicts keep insertion order)
            self._cache.pop(next(iter(self._cache)))
        if self.loaded is not None and self.loaded.key() == bracket_key:
            if key == HQ:
                self.changed.emit()
            self.ready.emit(key)

    def add_hq(self, loaded: LoadedBracket, pixels: np.ndarray) -> None:
        """File the HQ export of `loaded` (display pixels); it becomes a choice while that bracket is shown."""
        self._store(loaded.key(), HQ, pixels)

    def shutdown(self, timeout_ms: int = 10000) -> None:
        """Wait for a running Mertens (window close)."""
        self.pool.clear()
        self.pool.waitForDone(timeout_ms)
