"""Time-lapse deflicker: smooth each bracket's global tone over its neighbours, keep every frame's own detail.

Per bracket (in capture order) a first pass records the student's latent code z_t (the LUT's global tone and
colour) and the mean log2 luminance m_t of the fused result. Both sequences are smoothed by a two-sided
(causal + anticausal, so no lag) robust local-linear fit, segment by segment between detected changes, so that a
sudden real change (lights switching on) is kept as a step instead of being smeared over the window. The second
pass fuses each bracket with its smoothed latent and brings its mean log luminance to the smoothed m_t by an
exposure gain in linear light (`pipeline.fuse_files(latent=..., target_luminance=...)`).

Local linear regression (not a moving average) follows a day-to-night exposure ramp without bias; Tukey's
biweight re-weighting keeps a single odd bracket from pulling its neighbours (Cleveland 1979, LOWESS).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence

import numpy as np

from lutfuse.core.batch import Job, Outcome, describe, process_models
from lutfuse.core.pipeline import FuseSettings, load, mean_log_luminance

RADIUS = 4             # brackets each side that the smoother looks at
CHANGE_SIGMAS = 6.0    # a step larger than this many robust noise deviations is a real change
MIN_CHANGE = 0.35      # stops: smaller steps of brightness are never treated as real changes
PREVIEW_SIDE = 256     # longest side of the pass-1 render that is measured


def measure_job(job: Job, settings: FuseSettings, overwrite: bool) -> Outcome:
    """Pass 1 of a time-lapse (method lut): the bracket's latent code and the mean log luminance of its own
    fused preview -> Outcome with extra {"latent": 1×L float32, "log_luminance": float}; never raises."""
    import torch

    start = time.perf_counter()
    try:
        bracket = load(job.frames, settings)
        engine = process_models().engine(settings.device)
        latent = engine.encode(bracket.images)
        prepared = engine.prepare(bracket, latent=latent)
        preview = engine.render(prepared, settings.grid, settings.detail, max_side=PREVIEW_SIDE)
        extra = {"latent": latent.detach().to("cpu", torch.float32).numpy(),
                 "log_luminance": mean_log_luminance(preview)}
    except Exception as exc:  # noqa: BLE001 - reported per bracket, like fuse_job
        return Outcome(job, "failed", time.perf_counter() - start, describe(exc))
    return Outcome(job, "ok", time.perf_counter() - start, extra=extra)


def _steps(values: np.ndarray) -> np.ndarray:
    """T-1 innovations of a T×D sequence: each step's distance from the typical step around it (a ramp's
    constant slope is not a change), as the Euclidean norm over D."""
    d = np.diff(values, axis=0)
    out = np.empty(len(d))
    for t in range(len(d)):
        around = np.concatenate([d[max(0, t - RADIUS):t], d[t + 1:t + 1 + RADIUS]])
        slope = np.median(around, axis=0) if len(around) else 0.0
        out[t] = float(np.linalg.norm(d[t] - slope))
    return out


def change_points(values: np.ndarray, floor: float = 0.0) -> list[int]:
    """Indices t where a real change starts (values[t] differs from values[t-1] by a step of its own): the
    innovation exceeds CHANGE_SIGMAS robust deviations (1.4826 × median) and `floor`. values: T or T×D."""
    values = np.asarray(values, np.float64).reshape(len(values), -1)
    if len(values) < 4:
        return []
    steps = _steps(values)
    sigma = 1.4826 * float(np.median(steps)) + 1e-12
    return [t + 1 for t, s in enumerate(steps) if s > CHANGE_SIGMAS * sigma and s > floor]


def _local_linear(values: np.ndarray, radius: int) -> np.ndarray:
    """Two-sided robust local-linear smoothing of a T×D segment (tricube window, 2 biweight passes)."""
    n = len(values)
    if n < 3:
        return values.copy()
    robust = np.ones(n)
    fit = values.copy()
    for _ in range(3):
        for t in range(n):
            lo, hi = max(0, t - radius), min(n, t + radius + 1)
            x = np.arange(lo, hi) - t
            w = (1 - (np.abs(x) / (radius + 1)) ** 3) ** 3 * robust[lo:hi]
            if w.sum() <= 0:
                fit[t] = values[t]
                continue
            a = np.stack([np.ones_like(x, dtype=np.float64), x], 1)
            aw = a * w[:, None]
            coef, *_ = np.linalg.lstsq(aw.T @ a + 1e-9 * np.eye(2), aw.T @ values[lo:hi], rcond=None)
            fit[t] = coef[0]
        residual = np.linalg.norm(values - fit, axis=1)
        scale = 6.0 * float(np.median(residual)) + 1e-12
        robust = np.clip(1 - (residual / scale) ** 2, 0, None) ** 2
    return fit


def smooth(values: np.ndarray, cuts: Sequence[int], radius: int = RADIUS) -> np.ndarray:
    """values (T or T×D) smoothed per segment between the cut indices (each cut starts a new segment)."""
    arr = np.asarray(values, np.float64)
    flat = arr.reshape(len(arr), -1)
    out = np.empty_like(flat)
    bounds = [0, *sorted({c for c in cuts if 0 < c < len(arr)}), len(arr)]
    for lo, hi in itertools.pairwise(bounds):
        out[lo:hi] = _local_linear(flat[lo:hi], radius)
    return out.reshape(arr.shape)


def deflicker(latents: np.ndarray, luminance: np.ndarray, radius: int = RADIUS) -> tuple[np.ndarray, np.ndarray,
                                                                                          list[int]]:
    """Smoothed (latents T×L, target log luminance T) and the change points used, from pass-1 measurements.

    A change is where the brightness or the latent code jumps (either detector); both sequences are cut there.
    """
    luminance = np.asarray(luminance, np.float64)
    latents = np.asarray(latents, np.float64).reshape(len(luminance), -1)
    cuts = sorted(set(change_points(luminance, MIN_CHANGE)) | set(change_points(latents)))
    return smooth(latents, cuts, radius).astype(np.float32), smooth(luminance, cuts, radius), cuts


def flicker(luminance: Sequence[float]) -> float:
    """Flicker of a sequence of mean log2 luminances, in stops: the median absolute frame-to-frame change after
    the slow trend is removed (each change minus the median change over the 7 around it, so a ramp counts 0).
    A real change (a step) is one outlier and barely moves the median. 0 = no flicker."""
    m = np.asarray(luminance, np.float64)
    if len(m) < 3:
        return 0.0
    d = np.diff(m)
    trend = np.array([np.median(d[max(0, t - 3):t + 4]) for t in range(len(d))])
    return float(np.median(np.abs(d - trend)))
