"""One export path (core.export): the CLI and the editor write the same bytes for the same bracket and settings,
and an editor export writes the bracket it was started on even when another bracket is opened while it runs."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("pytestqt")

from conftest import expose, render_scene  # noqa: E402

from lutfuse.app import export as appexport  # noqa: E402
from lutfuse.app.workers import EngineHost, Job  # noqa: E402
from lutfuse.core.adjust import Look  # noqa: E402
from lutfuse.core.cli import main  # noqa: E402
from lutfuse.core.fusion import DEFAULT_WEIGHTS, Engine  # noqa: E402
from lutfuse.core.paths import demo_frames  # noqa: E402

pytestmark = pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="no shipped LUT student weights")
WAIT_MS = 120_000   # two CPU cores shared with other runs


def cpu_engine() -> Engine:
    """The editor's engine, on the CPU as the CLI's `--device cpu`."""
    return Engine(device="cpu")


def load(qtbot, host: EngineHost, paths: list[Path]):
    """Open a bracket in the host (no registration, as `--no-align`) and wait until it is current."""
    with qtbot.waitSignal(host.loaded, timeout=WAIT_MS) as blocker:
        host.load(paths, align=False)
    return blocker.args[0]


def run_export(qtbot, host: EngineHost, work) -> Job:
    """Start an export job and wait for its end; fails the test with the job's message when it failed."""
    outcome: dict[str, object] = {}

    def wire(job: Job) -> None:
        job.signals.finished.connect(lambda result: outcome.setdefault("done", result))
        job.signals.failed.connect(lambda message: outcome.setdefault("failed", message))
        job.signals.cancelled.connect(lambda: outcome.setdefault("cancelled", True))

    job = host.export(work, wire)
    qtbot.waitUntil(lambda: bool(outcome), timeout=WAIT_MS)
    assert "done" in outcome, outcome
    return job


@pytest.fixture
def host(qtbot):
    h = EngineHost(cpu_engine)
    yield h
    h.shutdown()


def test_cli_and_editor_exports_are_byte_identical(qtbot, host: EngineHost, tmp_path: Path) -> None:
    frames = [str(p) for p in demo_frames()]
    cli, gui = tmp_path / "cli", tmp_path / "gui"
    cli.mkdir()
    gui.mkdir()
    common = ["--no-align", "--device", "cpu", "--exposure", "0.4", "--saturation", "10"]
    assert main(["fuse", *frames, "-o", str(cli / "fused.tif"), "--bit-depth", "16", "--grid", "25",
                 "--detail", "0.8", *common]) == 0
    assert main(["cube", *frames, "-o", str(cli / "look.cube"), "--base", str(cli / "look_base.tif"),
                 "--grid", "17", *common]) == 0

    load(qtbot, host, [Path(f) for f in frames])
    look = Look(exposure=0.4, saturation=10)
    run_export(qtbot, host, appexport.image_work(host, gui / "fused.tif", 25, 0.8,
                                                 appexport.ImageOptions(bit_depth=16), False, look))
    run_export(qtbot, host, appexport.cube_work(host, gui / "look.cube", 17, False, look))

    assert sorted(p.name for p in gui.iterdir()) == sorted(p.name for p in cli.iterdir()) == [
        "fused.tif", "look.cube", "look_base.tif"]
    for name in ("fused.tif", "look.cube", "look_base.tif"):
        assert (gui / name).read_bytes() == (cli / name).read_bytes(), name
    # and the shared bytes are what they should be: the demo's EXIF, the CLI's title, a 16-bit fusion
    text = (gui / "look.cube").read_text()
    assert 'TITLE "LUTFuse 00 G17"' in text and "LUT_3D_SIZE 17" in text
    fused = cv2.imread(str(gui / "fused.tif"), cv2.IMREAD_UNCHANGED)
    assert fused.dtype == np.uint16 and fused.shape == (800, 1200, 3)
    assert "00.jpg" in description(gui / "fused.tif") and "02.jpg" in description(gui / "look_base.tif")


def description(path: Path) -> str:
    """The ImageDescription an output carries (the bracket's frames and exposures)."""
    import pyexiv2

    with pyexiv2.Image(str(path)) as image:
        return image.read_exif().get("Exif.Image.ImageDescription", "")


def write_bracket(folder: Path, seed: int, gain: float) -> list[Path]:
    """Three 8-bit PNG frames (-2, 0, +2 EV) of a rendered scene: a bracket on disk with its own file names."""
    folder.mkdir()
    radiance = render_scene(seed=seed) * gain
    paths = []
    for i, ev in enumerate((-2.0, 0.0, 2.0)):
        paths.append(folder / f"{folder.name}{i}.png")
        cv2.imwrite(str(paths[-1]), np.round(expose(radiance, ev)[..., ::-1] * 255).astype(np.uint8))
    return paths


def test_an_export_writes_its_own_bracket_while_another_is_opened(qtbot, host: EngineHost, tmp_path: Path) -> None:
    a = write_bracket(tmp_path / "a", seed=1, gain=1.0)
    b = write_bracket(tmp_path / "b", seed=2, gain=0.4)
    out = tmp_path / "out"
    out.mkdir()
    assert not hasattr(host, "lock")  # the engine holds no bracket: nothing to guard or roll back
    load(qtbot, host, a)
    options = appexport.ImageOptions(bit_depth=16)
    run_export(qtbot, host, appexport.image_work(host, out / "plain.tif", 33, 1.0, options, False))
    run_export(qtbot, host, appexport.cube_work(host, out / "plain.cube", 9, False))

    # The export pool runs one job at a time: a gate job holds it, so the exports of A wait behind it while B
    # is opened; then the gate opens and they run with B current.
    gate, holding = threading.Event(), threading.Event()

    def hold(job: Job) -> None:
        holding.set()
        assert gate.wait(WAIT_MS / 1000)

    host.export(hold, lambda job: None)
    assert holding.wait(WAIT_MS / 1000)
    jobs = []
    for work in (appexport.image_work(host, out / "raced.tif", 33, 1.0, options, False),
                 appexport.cube_work(host, out / "raced.cube", 9, False)):
        done: dict[str, object] = {}

        def wire(job: Job, done: dict = done) -> None:
            job.signals.finished.connect(lambda result: done.setdefault("done", result))
            job.signals.failed.connect(lambda message: done.setdefault("failed", message))

        jobs.append((host.export(work, wire), done))
    loaded_b = load(qtbot, host, b)
    assert host.current is loaded_b and [f.path for f in loaded_b.bracket.frames] == b
    assert not (out / "raced.tif").exists()   # nothing of A was written before B became current
    gate.set()
    qtbot.waitUntil(lambda: all(done for _, done in jobs), timeout=WAIT_MS)
    assert all("done" in done for _, done in jobs), [done for _, done in jobs]

    # A's pixels and A's metadata, byte for byte what the export of A wrote before B was opened
    assert (out / "raced.tif").read_bytes() == (out / "plain.tif").read_bytes()
    assert "a0.png" in description(out / "raced.tif") and "b0.png" not in description(out / "raced.tif")
    assert (out / "raced.cube").read_text().replace("raced", "plain") == (out / "plain.cube").read_text()
    assert 'TITLE "LUTFuse a0 G9"' in (out / "raced.cube").read_text()
    base_a = cv2.imread(str(out / "raced_base.tif"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(base_a, cv2.imread(str(out / "plain_base.tif"), cv2.IMREAD_UNCHANGED))
    # B renders B: an export started now writes B's pixels, which differ from A's
    run_export(qtbot, host, appexport.image_work(host, out / "b.tif", 33, 1.0, options, False))
    assert "b0.png" in description(out / "b.tif")
    img_a = cv2.imread(str(out / "raced.tif"), cv2.IMREAD_UNCHANGED).astype(np.float32)
    img_b = cv2.imread(str(out / "b.tif"), cv2.IMREAD_UNCHANGED).astype(np.float32)
    assert np.abs(img_a - img_b).mean() > 1000   # the test could fail: A and B really differ
    # the input guard is A's too: an export of A aimed at one of A's frames, run while B is current, is refused
    load(qtbot, host, a)
    frame = a[0].read_bytes()
    work = appexport.image_work(host, a[0], 33, 1.0, appexport.ImageOptions(bit_depth=8), True)
    load(qtbot, host, b)
    outcome: dict[str, object] = {}

    def wire(job: Job) -> None:
        job.signals.finished.connect(lambda result: outcome.setdefault("done", result))
        job.signals.failed.connect(lambda message: outcome.setdefault("failed", message))

    host.export(work, wire)
    qtbot.waitUntil(lambda: bool(outcome), timeout=WAIT_MS)
    assert "failed" in outcome and str(a[0]) in str(outcome["failed"]) and "input" in str(outcome["failed"])
    assert a[0].read_bytes() == frame
