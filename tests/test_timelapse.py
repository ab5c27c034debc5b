"""`lutfuse batch --timelapse`: a synthetic day-to-night sequence rendered from a real HDR map (exposure ramp,
auto-exposure shifting the brackets in 1/3-stop steps, small per-bracket exposure noise, and lights switching on)
flickers far less once the tone is smoothed, and follows the real change at once."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_batch import T0, write_frame

from lutfuse.core.cli import main
from lutfuse.core.timelapse import change_points, deflicker, flicker, smooth
from lutfuse.core.train.data import load_radiance, render_bracket

BRACKETS = 24
STEP_AT = 15           # the lights switch on in this bracket (0-based)


def day_to_night(hdr: Path, folder: Path, *, seed: int = 0) -> None:
    """Write BRACKETS 3-frame brackets (JPEG + EXIF, 0.3 s apart, 10 s between brackets) of a radiance map that
    darkens by 7 stops, with a camera that follows 5 of them in 1/3-stop steps plus ±0.15-stop noise, and a
    light that switches on (+4 stops on the lower half) at STEP_AT."""
    rng = np.random.default_rng(seed)
    radiance = load_radiance(hdr)
    radiance = cv2.resize(radiance, (96, 48), interpolation=cv2.INTER_AREA)
    radiance /= float(np.percentile(radiance.mean(axis=2), 97))
    lit = np.ones_like(radiance)
    lit[:] = 16.0
    when = T0
    for t in range(BRACKETS):
        scene = radiance * 2.0 ** (-7.0 * t / (BRACKETS - 1)) * (lit if t >= STEP_AT else 1.0)
        camera = np.round(5.0 * t / (BRACKETS - 1) * 3) / 3 + rng.normal(0.0, 0.15)
        evs = [camera - 2.0, camera, camera + 2.0]
        frames = render_bracket(scene, evs, rng)
        for k, (frame, ev) in enumerate(zip(frames, evs)):
            write_frame(folder / f"TL_{t:03d}_{k}.jpg", frame, when=when, exposure_s=2.0 ** ev / 125)
            when += timedelta(seconds=0.3)
        when += timedelta(seconds=10)


def test_smoother_follows_ramps_and_keeps_steps() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(40, dtype=np.float64)
    clean = -0.2 * t + np.where(t >= 25, 2.0, 0.0)
    noisy = clean + rng.normal(0, 0.1, len(t))
    cuts = change_points(noisy, 0.35)
    assert cuts == [25]
    fit = smooth(noisy, cuts)
    assert np.abs(fit - clean).mean() < 0.7 * np.abs(noisy - clean).mean()
    assert abs(fit[25] - clean[25]) < 0.2 and abs(fit[24] - clean[24]) < 0.2  # no smear across the step
    assert flicker(fit) < 0.5 * flicker(noisy)
    _latents, target, cuts2 = deflicker(np.stack([noisy, -noisy], 1), noisy)
    assert cuts2 == [25] and np.allclose(target, fit)


def test_timelapse_flicker_drops_without_lag(shared_data: Path, tmp_path: Path) -> None:
    hdr = shared_data / "hdr" / "blender" / "city.exr"
    if not hdr.exists():
        pytest.skip(f"{hdr} not found")
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    day_to_night(hdr, shoot)
    out = tmp_path / "out"
    summary = tmp_path / "tl.json"
    assert main(["batch", str(shoot), "-o", str(out), "--timelapse", "--grid", "17", "--no-align",
                 "--name", "{index:03d}.png", "--summary", str(summary)]) == 0
    rows = json.loads(summary.read_text())["brackets"]
    assert len(rows) == BRACKETS and all(r["status"] == "ok" for r in rows)
    raw = np.array([r["tone_raw"] for r in rows])
    final = np.array([r["tone"] for r in rows])
    # the written files are what the summary measured
    from lutfuse.core.pipeline import mean_log_luminance

    written = cv2.cvtColor(cv2.imread(str(out / "007.png")), cv2.COLOR_BGR2RGB) / 255.0
    assert mean_log_luminance(written) == pytest.approx(final[6], abs=0.02)

    assert flicker(final) < 0.4 * flicker(raw)
    # the lights: the smoothed sequence jumps where the raw one does, within a frame, by about as much
    jump_raw = raw[STEP_AT:STEP_AT + 3].mean() - raw[STEP_AT - 3:STEP_AT].mean()
    assert jump_raw > 0.5
    assert final[STEP_AT] - final[STEP_AT - 1] > 0.7 * jump_raw
    assert np.abs(final[STEP_AT - 2:STEP_AT + 3] - raw[STEP_AT - 2:STEP_AT + 3]).max() < 0.35 * jump_raw


def test_preview_video(tmp_path: Path) -> None:
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    from lutfuse.core.errors import OutputError
    from lutfuse.core.video import write_preview

    frames = []
    for k in range(5):
        path = tmp_path / f"{k}.png"
        cv2.imwrite(str(path), np.full((37, 51, 3), 40 * k, np.uint8))  # odd size: the video rounds to even
        frames.append(path)
    video = write_preview(tmp_path / "seq.mp4", frames, fps=10)
    assert imageio_ffmpeg.count_frames_and_secs(str(video))[0] == 5
    with pytest.raises(OutputError, match="already exists"):
        write_preview(video, frames)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp file left
