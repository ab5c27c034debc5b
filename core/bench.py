"""Speed benchmark: every stage of the engine on a synthetic bracket, against OpenCV Mertens timed in the same run.

Timings on a shared machine are noisy, so the targets are checked as ratios to Mertens where they can be, and
every stage reports the median of its repeats. On CUDA the device is synchronised around every timed call.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

PREVIEW_SIDE = 1280          # a 16:9 bracket previews at 1280×720
SAMPLING_GRIDS = (17, 33, 65, 129)
MERTENS_RATIO_TARGET = 0.2   # full-res render ≤ 1/5 of Mertens
PREVIEW_TARGET_MS = 33.0
SAMPLING_TARGET_MS = 50.0    # G = 33
CUDA_FPS_TARGET = 300.0


@dataclass
class Stage:
    """One timed stage: name, median milliseconds, and a note (what exactly was timed)."""

    name: str
    ms: float
    note: str = ""


def radiance_map(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Procedural scene, H×W×3 float32 linear radiance in about [0.005, 20]: sky, sun, shaded room, texture, edges."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    sky = (3.0 + 5.0 * (1.0 - y))[..., None] * np.array([0.75, 0.88, 1.0], np.float32)
    sun = 12.0 * np.exp(-((x - 0.75) ** 2 + (y - 0.2) ** 2) / 0.004)[..., None]
    room = (0.02 + 0.4 * x * (1.0 - 0.5 * y))[..., None] * np.array([1.0, 0.75, 0.55], np.float32)
    window = ((x > 0.5) & (x < 0.95) & (y < 0.6))[..., None]
    scene = np.where(window, sky + sun, room)
    # texture at a few scales (what the detail transfer has to carry), added cheaply through small noise upsampled
    texture = np.zeros((height, width), np.float32)
    for cells in (8, 32, 128):
        noise = rng.standard_normal((max(2, height * cells // max(height, width)), cells)).astype(np.float32)
        texture += cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC) / cells ** 0.3
    fine = rng.standard_normal((height, width)).astype(np.float32)
    scene = scene * np.exp(0.25 * texture + 0.05 * fine)[..., None]
    return np.clip(scene, 0.005, None).astype(np.float32)


def write_bracket(folder: Path, height: int, width: int, n_frames: int) -> list[Path]:
    """Expose the procedural scene at n EVs (2 stops apart), gamma 2.2, and write 8-bit PNGs; paths darkest first."""
    radiance = radiance_map(height, width)
    evs = np.linspace(-2.0 * (n_frames - 1) / 2, 2.0 * (n_frames - 1) / 2, n_frames) - 1.0
    paths = []
    for i, ev in enumerate(evs):
        frame = np.clip(radiance * 2.0 ** ev, 0.0, 1.0) ** (1 / 2.2)
        pixels = np.round(frame[..., ::-1] * 255).astype(np.uint8)
        path = folder / f"frame{i}.png"
        cv2.imwrite(str(path), pixels, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        paths.append(path)
    return paths


def _timer(device: torch.device, repeat: int) -> Callable[[Callable[[], object]], tuple[float, object]]:
    """A function timing fn() `repeat` times (synchronising CUDA) -> (median ms, last result)."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def timed(fn: Callable[[], object]) -> tuple[float, object]:
        times, result = [], None
        for _ in range(repeat):
            sync()
            t0 = time.perf_counter()
            result = fn()
            sync()
            times.append((time.perf_counter() - t0) * 1000.0)
        return statistics.median(times), result

    return timed


def load_timing_student(device: torch.device) -> tuple[object, str]:
    """The shipped student, else an untrained one (the same compute); and which it is."""
    from lutfuse.core.fusion import DEFAULT_WEIGHTS
    from lutfuse.core.models.lut_student import LUTStudent, load_student

    if DEFAULT_WEIGHTS.is_file():
        return load_student(DEFAULT_WEIGHTS, device), f"shipped student {DEFAULT_WEIGHTS.name}"
    return LUTStudent().to(device).eval(), "untrained LUTStudent (no shipped weights; same compute)"


def run_bench(width: int, height: int, n_frames: int, repeat: int, device: str,
              log: Callable[[str], None] = print) -> list[Stage]:
    """Time every stage on one device; returns the stages, Mertens last."""
    from lutfuse.core.bracket import load_bracket, register_stack
    from lutfuse.core.classical import mertens
    from lutfuse.core.detail import detail_layer, split_levels
    from lutfuse.core.fusion import Engine, REFERENCE_GRID
    from lutfuse.core.lut import apply_lut

    student, which = load_timing_student(torch.device(device))
    engine = Engine(device=device, student=student)
    dev = engine.device
    timed = _timer(dev, repeat)
    stages: list[Stage] = []
    log(f"device {dev} ({torch.cuda.get_device_name(dev) if dev.type == 'cuda' else f'{torch.get_num_threads()} threads'}), "
        f"{width}×{height}, {n_frames} frames, median of {repeat}; {which}")
    with tempfile.TemporaryDirectory(prefix="lutfuse-bench-") as tmp:
        paths = write_bracket(Path(tmp), height, width, n_frames)
        ms, bracket = timed(lambda: load_bracket(paths, align=False))
        stages.append(Stage("load", ms, f"decode {n_frames} 8-bit PNGs"))
    images = bracket.images
    ms, _ = timed(lambda: register_stack(images.copy(), None, "auto"))
    stages.append(Stage("align", ms, "registration (auto), reference = middle"))
    ms, _ = timed(lambda: engine.set_bracket(bracket))
    stages.append(Stage("set_bracket", ms, "base + latent + LUT(33) + detail layer, once per bracket"))
    ms, latent = timed(lambda: engine.encode(images))
    stages.append(Stage("latent", ms, "downsample + student.encode"))
    for g in SAMPLING_GRIDS:
        with torch.no_grad():
            ms, _ = timed(lambda g=g: student.sample(latent, g))
        stages.append(Stage(f"sample G={g}", ms, f"{g ** 3} lattice points"))
    lut = engine.lut(REFERENCE_GRID)
    base = engine.base() if dev.type == "cpu" else engine._to_device(engine.base())
    table = lut if dev.type == "cpu" else torch.from_numpy(lut).to(dev)
    ms, tone = timed(lambda: apply_lut(base, table))
    stages.append(Stage("apply", ms, f"trilinear LUT G={REFERENCE_GRID}, full res"))
    frames = torch.from_numpy(images).to(dev).permute(0, 3, 1, 2)
    tone3 = torch.from_numpy(tone).permute(2, 0, 1) if dev.type == "cpu" else tone[0]
    levels = split_levels(height, width, engine.levels)
    ms, _ = timed(lambda: detail_layer(frames, tone3, levels))
    stages.append(Stage("detail", ms, f"detail layer, {levels} pyramid levels (per bracket)"))
    engine.render(33, 1.0)  # warm: LUT cached as after any first render
    ms, _ = timed(lambda: engine.render(33, 1.0))
    stages.append(Stage("render", ms, "full res, G=33, detail 1, to an H×W×3 array"))
    if dev.type == "cuda":
        ms, _ = timed(lambda: engine._render(33, 1.0, None))
        stages.append(Stage("render on device", ms, "full res, result left on the GPU"))
    engine.render(33, 1.0, PREVIEW_SIDE)  # builds the preview cache once, as the editor's first preview does
    ms, preview = timed(lambda: engine.render(33, 1.0, PREVIEW_SIDE))
    ph, pw = preview.shape[:2]
    stages.append(Stage("preview", ms, f"{pw}×{ph}, G=33, detail 1"))
    ms, _ = timed(lambda: mertens(images))
    stages.append(Stage("mertens", ms, f"OpenCV MergeMertens, {n_frames} frames"))
    return stages


def run_hq_bench(width: int, height: int, n_frames: int, repeat: int, device: str,
                 log: Callable[[str], None] = print) -> tuple[list[Stage], float]:
    """Time the HQ export as the CLI runs it (engine set_bracket, then HQFusion.fuse at grid 33, detail 1; once)
    and OpenCV Mertens on one synthetic bracket; returns the stages and the process's peak resident memory in GB,
    read before Mertens runs."""
    import resource

    from lutfuse.core.bracket import load_bracket
    from lutfuse.core.classical import mertens
    from lutfuse.core.fusion import Engine
    from lutfuse.core.hq import STEPS, WORK_SIDE, HQFusion

    hq = HQFusion(device=device)
    engine = Engine(device=device)
    log(f"device {hq.device} ({torch.get_num_threads()} threads), {width}×{height}, {n_frames} frames; HQ export once, "
        f"Mertens median of {repeat}")
    stages: list[Stage] = []
    with tempfile.TemporaryDirectory(prefix="lutfuse-bench-") as tmp:
        paths = write_bracket(Path(tmp), height, width, n_frames)
        bracket = load_bracket(paths, align=False)
    images = bracket.images
    timed = _timer(hq.device, 1)
    ms_set, _ = timed(lambda: engine.set_bracket(bracket))
    stages.append(Stage("set_bracket", ms_set, "engine: base, latent, detail layer (the live view pays it too)"))
    ms, _ = timed(lambda: hq.fuse(images, engine=engine, grid=33, detail=1.0))
    middle = "real middle frame" if hq.uses_real_middle(n_frames) else "phase 1 generates the middle"
    stages.append(Stage("hq fuse", ms, f"2 full renders + networks and {STEPS} steps at {WORK_SIDE} px "
                                       f"({middle}) + full-res guided correction"))
    stages.append(Stage("hq", ms_set + ms, "HQ export in all (set_bracket + fuse)"))
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6   # kilobytes on Linux
    ms, _ = _timer(hq.device, repeat)(lambda: mertens(images))
    stages.append(Stage("mertens", ms, f"OpenCV MergeMertens, {n_frames} frames"))
    return stages, peak_gb


def report_hq(stages: list[Stage], peak_gb: float) -> str:
    """Table of the HQ timing against Mertens and the peak memory."""
    by = {s.name: s for s in stages}
    lines = [f"{'stage':<12}{'s':>10}{'/Mertens':>10}  note"]
    lines += [f"{s.name:<12}{s.ms / 1000:>10.1f}{s.ms / by['mertens'].ms:>10.1f}  {s.note}" for s in stages]
    lines.append(f"peak resident memory of the process (load + HQ): {peak_gb:.2f} GB")
    return "\n".join(lines)


def report(stages: list[Stage], device: str) -> tuple[str, bool]:
    """Table of ms, ratio to Mertens and fps, then PASS/FAIL lines; returns (text, all passed)."""
    by = {s.name: s for s in stages}
    mertens_ms = by["mertens"].ms
    lines = [f"{'stage':<18}{'ms':>11}{'/Mertens':>10}{'fps':>10}  note"]
    for s in stages:
        fps = 1000.0 / s.ms if s.ms > 0 else float("inf")
        lines.append(f"{s.name:<18}{s.ms:>11.1f}{s.ms / mertens_ms:>10.3f}{fps:>10.1f}  {s.note}")
    checks = [
        (f"full-res render ≤ 1/5 Mertens: render/Mertens = {by['render'].ms / mertens_ms:.3f}",
         by["render"].ms <= MERTENS_RATIO_TARGET * mertens_ms),
        (f"preview < {PREVIEW_TARGET_MS:.0f} ms: {by['preview'].ms:.1f} ms ({by['preview'].note.split(',')[0]})",
         by["preview"].ms < PREVIEW_TARGET_MS),
        (f"G=33 sampling < {SAMPLING_TARGET_MS:.0f} ms: {by['sample G=33'].ms:.1f} ms",
         by["sample G=33"].ms < SAMPLING_TARGET_MS),
    ]
    if device == "cuda":
        fps = 1000.0 / by["render on device"].ms
        checks.append((f"CUDA render > {CUDA_FPS_TARGET:.0f} fps: {fps:.0f} fps", fps > CUDA_FPS_TARGET))
    lines += [f"{'PASS' if ok else 'FAIL'}  {text}" for text, ok in checks]
    return "\n".join(lines), all(ok for _, ok in checks)
