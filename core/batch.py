"""Run many brackets unattended: one job per bracket, on a local process pool (or Ray, `core.cluster`).

Every job goes through `core.pipeline.fuse_files`, the same function `lutfuse fuse` uses. A failing bracket
becomes an Outcome with its error and the batch goes on. Memory stays flat: a worker process holds one model
(`core.methods.Models`) and one bracket at a time, and at most two jobs per worker are in flight.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lutfuse.core.errors import LUTFuseError
from lutfuse.core.methods import Models
from lutfuse.core.pipeline import FuseResult, FuseSettings, fuse_files


@dataclass
class Job:
    """One bracket to fuse: frame files, the output path, and the time-lapse hooks (neutral by default)."""

    index: int                       # 1-based position in the batch
    frames: list[Path]
    output: Path
    latent: np.ndarray | None = None          # 1×L student latent replacing the bracket's own (method lut)
    target_luminance: float | None = None     # mean log2 luminance the output is brought to (time-lapse)
    raw_luminance: float | None = None        # the same measured with the bracket's own tone (time-lapse pass 1)


@dataclass
class Outcome:
    """What happened to a job: status "ok", "failed" or "skipped", and what it produced or why it failed."""

    job: Job
    status: str
    seconds: float = 0.0
    error: str | None = None
    result: FuseResult | None = None
    extra: dict[str, Any] = field(default_factory=dict)   # e.g. the time-lapse measurement's latent
    warnings: list[str] = field(default_factory=list)     # one line each (e.g. EXIF trimmed), for the main process


_MODELS: Models | None = None  # the model cache of this process (a pool worker, a Ray worker, or the main process)


def process_models() -> Models:
    """This process's Models, made on first use."""
    global _MODELS
    if _MODELS is None:
        _MODELS = Models()
    return _MODELS


def describe(exc: BaseException) -> str:
    """A one-line reason: the message of a LUTFuseError, else the exception type and message."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text if isinstance(exc, LUTFuseError) else f"{type(exc).__name__}: {text}".rstrip(": ")


def fuse_job(job: Job, settings: FuseSettings, overwrite: bool) -> Outcome:
    """Fuse one job with this process's models; never raises for a bad bracket (the Outcome says why).

    Warnings raised while fusing (e.g. core.metadata's trimmed EXIF) are returned in Outcome.warnings, one line
    each, so that the main process prints them whether the job ran there, in a pool worker or on Ray."""
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = fuse_files(job.frames, job.output, settings, overwrite=overwrite, models=process_models(),
                                latent=job.latent, target_luminance=job.target_luminance)
        except Exception as exc:  # noqa: BLE001 - one bad bracket must not stop an unattended batch; summary says it
            outcome = Outcome(job, "failed", time.perf_counter() - start, describe(exc))
        else:
            outcome = Outcome(job, "ok", time.perf_counter() - start, result=result)
    outcome.warnings = list(dict.fromkeys(" ".join(str(w.message).split()) for w in caught))
    return outcome


Task = Callable[[Job, FuseSettings, bool], Outcome]


def _init_worker(threads: int) -> None:
    """Pool worker start: limit torch/OpenCV threads so that workers × threads fits the machine."""
    import cv2
    import torch

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)


def threads_per_worker(workers: int) -> int:
    """CPU threads each of `workers` processes may use (at least 1)."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def run_local(jobs: Sequence[Job], settings: FuseSettings, *, workers: int = 1, overwrite: bool = False,
              task: Task = fuse_job, threads: int | None = None) -> Iterator[Outcome]:
    """Run `task` over the jobs -> Outcomes in completion order.

    workers ≤ 1 runs in this process; more start a spawn-context process pool (one model per worker), keeping
    at most 2 jobs per worker submitted so memory does not grow with the batch size. threads: torch/OpenCV
    threads per worker (None: CPU cores / workers in a pool, the process's setting in this process).
    """
    if workers <= 1:
        if threads is not None:
            _init_worker(threads)
        for job in jobs:
            yield task(job, settings, overwrite)
        return
    context = multiprocessing.get_context("spawn")
    pending: set[Future] = set()
    queue = iter(jobs)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                               initargs=(threads or threads_per_worker(workers),))
    try:
        for job in queue:
            pending.add(pool.submit(task, job, settings, overwrite))
            if len(pending) >= 2 * workers:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from (f.result() for f in done)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            yield from (f.result() for f in done)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # on Ctrl+C: drop queued jobs, let running ones finish


def peak_rss_mb() -> tuple[float, float]:
    """(this process, largest finished child process) peak resident memory in MB (Linux ru_maxrss is in kB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children
