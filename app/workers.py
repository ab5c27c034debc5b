"""Background work for the editor: a QRunnable job with progress/cancel signals, and the engine host that loads
brackets, renders (coalesced, latest wins) and exports off the GUI thread."""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from lutfuse.app.state import (
    DISPLAY_SIDE_MIN,
    Coalescer,
    FrameChoice,
    LoadedBracket,
    RenderRequest,
    RenderResult,
    display_copy,
    histograms,
    thumbnail,
)
from lutfuse.core.bracket import relative_evs
from lutfuse.core.errors import LUTFuseError


class JobSignals(QObject):
    """Signals of one Job, delivered on the GUI thread (queued connections)."""

    finished = Signal(object)      # the job's return value
    failed = Signal(str)           # a readable message
    cancelled = Signal()
    progress = Signal(float)       # fraction done in [0, 1]
    ended = Signal(object)         # the Job itself, after any of the above


class Job(QRunnable):
    """Runs fn(job) on a pool thread; fn may call job.report(fraction) and poll job.is_cancelled()."""

    def __init__(self, fn: Callable[[Job], object]) -> None:
        super().__init__()
        self.fn = fn
        self.signals = JobSignals()
        self._cancel = threading.Event()
        self.committed = False   # set by work that can no longer be undone; a cancel after that is ignored
        self.setAutoDelete(False)  # the window keeps a reference while it may still cancel it

    def cancel(self) -> None:
        """Ask the job to stop at its next check."""
        self._cancel.set()

    def is_cancelled(self) -> bool:
        """True once cancel() was called (polled by long work)."""
        return self._cancel.is_set()

    def report(self, fraction: float) -> None:
        """Forward progress to the GUI."""
        self.signals.progress.emit(float(fraction))

    def run(self) -> None:
        """QRunnable entry point: every outcome becomes a signal; nothing escapes to crash the app."""
        from lutfuse.core.errors import Cancelled

        try:
            result = self.fn(self)
        except Cancelled:
            self.signals.cancelled.emit()
        except LUTFuseError as exc:
            self.signals.failed.emit(str(exc))
        except MemoryError:
            self.signals.failed.emit("Out of memory: the bracket is too large for this machine")
        except Exception as exc:  # a bug must show as a message, not kill the editor
            traceback.print_exc()
            self.signals.failed.emit(f"Unexpected error: {type(exc).__name__}: {exc}")
        else:
            if self.is_cancelled() and not self.committed:
                self.signals.cancelled.emit()
            else:
                self.signals.finished.emit(result)
        finally:
            self.signals.ended.emit(self)


THREADS_ENV = "LUTFUSE_THREADS"


def engine_threads() -> int:
    """Threads for torch and OpenCV in the editor: $LUTFUSE_THREADS, else the CPUs this process may use minus
    one for the GUI thread, at most 8. Each library otherwise starts one thread per core, per calling thread
    (render and export run at once): on a busy machine that oversubscription made a G = 129 LUT take 15.6 s
    instead of 0.36 s."""
    try:
        return max(1, int(os.environ[THREADS_ENV]))
    except (KeyError, ValueError):
        pass
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8, cpus - 1))


def configure_threads(count: int | None = None) -> int:
    """Set torch's intra-op threads and OpenCV's thread pool to `count` (engine_threads() by default)."""
    import cv2
    import torch

    count = engine_threads() if count is None else count
    torch.set_num_threads(count)
    cv2.setNumThreads(count)
    return count


def default_engine_factory(device: str = "auto"):
    """The real engine (core.fusion.Engine with the shipped weights) on `device` (core.device.pick_device)."""
    from lutfuse.core.fusion import Engine

    return Engine(device=device)


class EngineHost(QObject):
    """Owns the one Engine; loads brackets and renders on a single worker thread, exports on another pool.

    The engine holds no bracket: a load prepares one (core.prepared.PreparedBracket, kept in `current`), and every
    render and export is bound to the prepared bracket current when it was asked for, so opening another bracket
    never changes what a running export writes. The engine serialises its own calls (its lock)."""

    loaded = Signal(object)        # LoadedBracket
    load_failed = Signal(str)
    rendered = Signal(object)      # RenderResult
    render_failed = Signal(str)
    engine_changed = Signal(object)   # the new engine, after switch_engine (the current bracket re-prepared)
    busy_changed = Signal(bool)

    def __init__(self, engine_factory: Callable[[], object] | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._factory = engine_factory or default_engine_factory
        self.engine = None
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)     # one engine thread: loads and renders run in order
        self.export_pool = QThreadPool(self)
        self.export_pool.setMaxThreadCount(1)
        # the export thread ends with its export (Qt keeps an idle one 30 s): while it lives it keeps a torch
        # (OpenMP) team, which with the engine thread's is more threads than cores on a many-core machine, and
        # libgomp then stops spinning in every team: each small op of the next edits would wait on a futex
        self.export_pool.setExpiryTimeout(0)
        self.coalescer = Coalescer()
        self.generation = 0
        self.current: LoadedBracket | None = None
        self._jobs: set[Job] = set()
        self.display_side = DISPLAY_SIDE_MIN   # the window raises it to its screen's longest side
        self.threads: int | None = None
        self.hq_result: object | None = None   # app.hq_preview.HQPreview of the last HQ export

    # -- helpers -----------------------------------------------------------------------------------------------
    def _start(self, job: Job, pool: QThreadPool, wire: Callable[[Job], None] | None = None) -> Job:
        """Keep the job alive until it reports, let the caller connect its signals, then start it (connecting
        after start would miss the signals of a job that ends at once)."""
        self._jobs.add(job)
        # a bound method of this GUI-thread object, so the slot runs queued on the GUI thread
        job.signals.ended.connect(self._forget)
        if wire is not None:
            wire(job)
        pool.start(job)
        return job

    def _forget(self, job: Job) -> None:
        """Drop a finished job."""
        self._jobs.discard(job)

    def _engine(self):
        """The engine, created on first use (on the engine thread, the only one that creates it: loading weights
        takes a moment)."""
        if self.engine is None:
            self.threads = configure_threads()
            try:
                self.engine = self._factory()
            except LUTFuseError as exc:
                raise LUTFuseError(f"the fusion engine cannot start: {exc}") from exc
            except ImportError as exc:  # a checkout without the model code: say what is missing
                raise LUTFuseError(f"the fusion engine cannot start: {exc}") from exc
        return self.engine

    # -- loading -----------------------------------------------------------------------------------------------
    def load(self, paths: Sequence[str | Path], align: bool, wire: Callable[[Job], None] | None = None,
             deghost: str | None = None, choice: FrameChoice | None = None) -> Job:
        """Load a bracket and prepare it (Engine.prepare); emits loaded or load_failed. The old bracket stays
        current until the new one is ready. `wire(job)` connects the caller's slots before the job starts.
        `choice`: only some of the frames, and/or another reference frame (bracket control). deghost: a
        core.deghost strength (None = its DEFAULT)."""
        from lutfuse.core.deghost import DEFAULT

        paths = [Path(p) for p in paths]
        deghost = DEFAULT if deghost is None else deghost

        def work(job: Job) -> LoadedBracket:
            from lutfuse.core.bracket import load_bracket
            from lutfuse.core.errors import Cancelled
            from lutfuse.core.scene_check import scene_warnings

            files = list(choice.files) if choice is not None and choice.files else paths
            chosen = {} if choice is None or choice.reference is None else {"reference": choice.reference}
            bracket = load_bracket(files, align=align, deghost=deghost, **chosen)
            if job.is_cancelled():
                raise Cancelled("opening cancelled")
            prepared = self._engine().prepare(bracket)
            if job.is_cancelled():
                raise Cancelled("opening cancelled")
            return LoadedBracket(
                bracket=bracket, prepared=prepared, paths=paths, align=align,
                before=display_copy(bracket.reference().image, self.display_side),
                thumbnails=[thumbnail(f.image) for f in bracket.frames],
                relative_evs=relative_evs([f.ev for f in bracket.frames]), deghost=deghost,
                warnings=scene_warnings(bracket), notes=list(bracket.notes),
                choice=choice,
            )

        job = Job(work)
        job.signals.finished.connect(self._on_loaded)
        job.signals.failed.connect(self.load_failed)
        return self._start(job, self.pool, wire)

    def _on_loaded(self, loaded: LoadedBracket) -> None:
        """A new bracket is current: renders of the old one are now stale."""
        self.current = loaded
        self.generation += 1
        self.coalescer.reset()
        self.loaded.emit(loaded)

    def switch_engine(self, factory: Callable[[], object], wire: Callable[[Job], None] | None = None) -> Job:
        """Replace the engine by factory() (another device) on the engine thread, and prepare the current bracket
        with it, so the open bracket, its edits and its frames stay; emits engine_changed(engine), or the job's
        failed(message) when the engine cannot start (the old one stays). Renders and exports already asked for
        finish on the engine that prepared their bracket. `wire(job)` connects the caller's slots first."""
        current = self.current

        def work(job: Job) -> tuple[object, object]:
            self.threads = configure_threads()
            try:
                engine = factory()
            except (LUTFuseError, ImportError) as exc:
                raise LUTFuseError(f"the fusion engine cannot start: {exc}") from exc
            prepared = engine.prepare(current.bracket) if current is not None else None  # type: ignore[attr-defined]
            self.engine = engine   # on the engine thread, before any load or render queued after this job
            return engine, prepared

        def done(result: tuple[object, object]) -> None:
            engine, prepared = result
            self._factory = factory
            if current is not None and self.current is current:
                self.current = replace(current, prepared=prepared)
                self.generation += 1
                self.coalescer.reset()
            self.engine_changed.emit(engine)
            if self.current is not None and getattr(self.current.prepared, "_engine", engine) is not engine:
                # a load that was running when the switch was asked for finished on the old engine: prepare it again
                self.switch_engine(lambda: engine)

        job = Job(work)
        job.signals.finished.connect(done)
        return self._start(job, self.pool, wire)

    # -- rendering ---------------------------------------------------------------------------------------------
    def request_render(self, grid: int, detail: float, max_side: int | None, look: object = None) -> None:
        """Ask for a render (with a core.adjust.Look, or None); if one is running, this replaces any waiting
        request (only the latest is drawn)."""
        if self.current is None:
            return
        request = RenderRequest(grid=grid, detail=detail, max_side=max_side, generation=self.generation,
                                look=look)
        start = self.coalescer.submit(request)
        if start is not None:
            self._run_render(start)

    def _run_render(self, request: RenderRequest) -> None:
        """Start one render job on the engine thread, of the bracket current now."""
        self.busy_changed.emit(True)
        prepared = self.current.prepared if self.current is not None else None

        def work(job: Job) -> RenderResult:
            t0 = time.perf_counter()
            if prepared is None:
                raise LUTFuseError("no bracket loaded")
            # the engine that prepared the bracket (another one after a device switch would refuse it)
            engine = getattr(prepared, "_engine", None) or self._engine()
            # the look is only passed when there is one: an engine without core.adjust still renders
            extra = {} if request.look is None else {"look": request.look}
            lut = engine.lut(prepared, request.grid, **extra)
            image = engine.render(prepared, request.grid, request.detail, request.max_side, **extra)
            pixels = display_copy(image, self.display_side)
            return RenderResult(request, pixels, lut, histograms(pixels), time.perf_counter() - t0,
                                source=image if request.full else None)

        job = Job(work)
        job.signals.finished.connect(self._on_rendered)
        job.signals.failed.connect(self._on_render_failed)
        self._start(job, self.pool)

    def _next(self) -> None:
        """Start the waiting request, if any."""
        nxt = self.coalescer.done()
        if nxt is not None:
            self._run_render(nxt)
        else:
            self.busy_changed.emit(False)

    def _on_rendered(self, result: RenderResult) -> None:
        """Deliver a finished render unless a newer bracket made it stale."""
        self._next()
        if result.request.generation == self.generation:
            self.rendered.emit(result)

    def _on_render_failed(self, message: str) -> None:
        """Report a failed render and go on with the next request."""
        self._next()
        self.render_failed.emit(message)

    # -- exports -----------------------------------------------------------------------------------------------
    def export(self, work: Callable[[Job], object], wire: Callable[[Job], None]) -> Job:
        """Run an export function on the export pool; `wire(job)` connects the caller's slots first."""
        return self._start(Job(work), self.export_pool, wire)

    def shutdown(self, timeout_ms: int = 10000) -> None:
        """Cancel exports and wait for the worker threads (on window close)."""
        for job in list(self._jobs):
            job.cancel()
        self.pool.clear()
        self.export_pool.clear()
        self.pool.waitForDone(timeout_ms)
        self.export_pool.waitForDone(timeout_ms)
