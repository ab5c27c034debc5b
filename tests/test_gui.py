"""Editor tests (pytest-qt, offscreen, temporary QSettings): renders, live grid changes, exports, errors,
HQ cancel, shortcuts, settings and the screenshot command."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

pytest.importorskip("pytestqt")
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDropEvent  # noqa: E402

from lutfuse.app import state  # noqa: E402
from lutfuse.app.export import ImageOptions, base_path_for  # noqa: E402
from lutfuse.app.main_window import MainWindow  # noqa: E402
from lutfuse.app.settings import SETTINGS_ENV, AppSettings  # noqa: E402
from lutfuse.core.bracket import relative_evs  # noqa: E402
from lutfuse.core.paths import demo_frames  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
WAIT_MS = 60_000  # generous: two CPU cores are shared with other test runs


@pytest.fixture
def settings(tmp_path: Path) -> AppSettings:
    """Settings in a temporary .ini file, never the user's."""
    return AppSettings(tmp_path / "settings.ini")


class CurveStudent:
    """Stand-in LUT student while no shipped weights exist: a warm brightening curve set by the bracket's mean."""

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """1×K×3×h×w in [0,1] -> 1×1 latent (mean brightness)."""
        return x.mean(dim=(1, 2, 3, 4)).view(1, 1)

    def sample(self, latent: torch.Tensor, grid: int) -> torch.Tensor:
        """1×G×G×G×3: identity ** gamma per channel (gamma from the latent, a little warmer in red)."""
        from lutfuse.core.lut import identity_lut

        gamma = (0.5 + 0.5 * latent.view(())) * torch.tensor([0.9, 1.0, 1.1])
        return torch.from_numpy(identity_lut(grid)).pow(gamma)[None]


def shipped_student() -> bool:
    """True when the LUT student module and its shipped weights are in this checkout."""
    from lutfuse.core.fusion import DEFAULT_WEIGHTS

    try:
        importlib.import_module("lutfuse.core.models.lut_student")
    except ModuleNotFoundError:
        return False
    return DEFAULT_WEIGHTS.is_file()


@pytest.fixture(scope="session")
def engine_factory():
    """The real engine on the CPU: with the shipped student when present, else with the stand-in student."""
    from lutfuse.core.fusion import Engine

    if shipped_student():
        return lambda: Engine(device="cpu")
    return lambda: Engine(device="cpu", student=CurveStudent())


@pytest.fixture
def window(qtbot, settings: AppSettings, engine_factory) -> MainWindow:
    """The editor on the demo bracket (no alignment: the demo is a tripod bracket), first full render shown."""
    from PySide6.QtWidgets import QApplication

    from lutfuse.app.theme import apply_theme

    apply_theme(QApplication.instance())
    win = MainWindow(settings, engine_factory)
    qtbot.addWidget(win)
    win.show()
    win.open_bracket(demo_frames(), align=False)
    qtbot.waitUntil(lambda: win.full_shown or win.banner.isVisible(), timeout=WAIT_MS)
    assert not win.banner.isVisible(), win.banner.label.text()
    return win


def wait_render(qtbot, win: MainWindow, *, full: bool, grid: int) -> None:
    """Wait until a render of kind `full` at grid size `grid` is on screen."""
    seen = {}

    def on(shown_full: bool) -> None:
        if shown_full == full and win.lut_panel.size == grid:
            seen["ok"] = True

    win.renderShown.connect(on)
    try:
        qtbot.waitUntil(lambda: seen.get("ok", False), timeout=WAIT_MS)
    finally:
        win.renderShown.disconnect(on)


def wait_export(qtbot, win: MainWindow) -> tuple[str, str]:
    """Wait for the running export to end; returns (status, path or message)."""
    with qtbot.waitSignal(win.exportEnded, timeout=WAIT_MS) as blocker:
        pass
    return tuple(blocker.args)


# -- plain-Python model ----------------------------------------------------------------------------------------
def test_coalescer_keeps_only_the_latest_waiting_request() -> None:
    c = state.Coalescer()
    a, b, d = (state.RenderRequest(g, 1.0, 640) for g in (5, 9, 17))
    assert c.submit(a) is a            # idle: starts at once
    assert c.submit(b) is None         # busy: waits
    assert c.submit(d) is None         # replaces b
    assert c.done() is d               # b was never rendered
    assert c.done() is None and c.running is None


def test_lut_slice_follows_the_core_layout() -> None:
    g = 5
    x = np.linspace(0, 1, g, dtype=np.float32)
    b, gg, r = np.meshgrid(x, x, x, indexing="ij")
    identity = np.stack([r, gg, b], -1)     # lut[b, g, r] = (r, g, b)
    s = state.lut_slice(identity, "B", 3)   # B fixed: rows G, cols R
    assert np.allclose(s[..., 2], 3 / 4) and np.allclose(s[1, 4], [1.0, 0.25, 0.75])
    s = state.lut_slice(identity, "R", 1)   # R fixed: rows B, cols G
    assert np.allclose(s[..., 0], 1 / 4) and np.allclose(s[2, 3], [0.25, 0.75, 0.5])
    grey, rgb = state.neutral_response(identity)
    assert np.allclose(rgb, grey[:, None].repeat(3, 1))


def test_recent_list_and_ev_labels() -> None:
    recent = state.push_recent([["a"], ["b"]], ["b"])
    assert recent == [["b"], ["a"]]
    assert len(state.push_recent([[str(i)] for i in range(20)], ["x"])) == state.RECENT_MAX
    assert [state.format_ev(e) for e in relative_evs([-14.0, -12.0, -10.0])] == ["\u22122.0 EV", "0 EV",
                                                                                       "+2.0 EV"]


def test_first_run_opens_the_demo_then_the_last_bracket(settings: AppSettings, tmp_path: Path) -> None:
    from lutfuse.app.run import initial_bracket

    assert initial_bracket([], settings) == demo_frames()
    frames = [tmp_path / "a.jpg", tmp_path / "b.jpg"]
    for f in frames:
        f.write_bytes(b"x")
    settings.recent = state.push_recent(settings.recent, [str(f) for f in frames])
    assert initial_bracket([], AppSettings(settings.qs.fileName())) == frames
    assert initial_bracket(["given.jpg"], settings) == [Path("given.jpg")]
    frames[0].unlink()                       # moved away since: back to the demo
    assert initial_bracket([], settings) == demo_frames()


# -- the window ------------------------------------------------------------------------------------------------
def test_window_opens_on_the_demo_and_shows_a_render(window: MainWindow) -> None:
    pixels = window.viewer.after_pixels()
    assert pixels is not None and pixels.shape == (800, 1200, 3)
    assert 20 < pixels.mean() < 235 and pixels.std() > 10     # a picture, not a blank
    assert [c.ev_label.text() for c in window.strip.cards] == ["\u22122.1 EV", "0 EV", "+2.0 EV"]
    assert window.lut_panel.size == window.grid == 33
    assert window.lut_panel.slice_pixels().shape == (33, 33, 3)
    assert set(window.histogram.data) == {"R", "G", "B", "L"}
    available = window.screen().availableGeometry()
    assert window.width() <= max(available.width(), window.minimumSizeHint().width())
    assert window.height() <= available.height()
    assert window.windowTitle().startswith("LUTFuse")
    assert window.device_label.text().startswith("CPU (")     # the status bar names the engine's device


def test_dragging_the_grid_slider_previews_and_changes_the_lut(qtbot, window: MainWindow) -> None:
    full33 = window.viewer.after_pixels().copy()
    slider = window.adjust.grid
    slider.setSliderDown(True)        # the user holds the handle
    for g in (29, 21, 13, 5):         # several moves while held: only the latest has to be drawn
        slider.setValue(g)
    wait_render(qtbot, window, full=False, grid=5)
    preview = window.viewer.after_pixels()
    assert max(preview.shape[:2]) == state.PREVIEW_MAX_SIDE
    assert window.lut_panel.size == 5 and window.lut_panel.spin.maximum() == 4
    assert window.lut_panel.slice_pixels().shape == (5, 5, 3)
    small33 = cv2.resize(full33, preview.shape[1::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(preview.astype(int) - small33.astype(int)).mean() > 0.5   # a 5³ LUT looks different
    slider.setSliderDown(False)       # released: the full-resolution render follows
    wait_render(qtbot, window, full=True, grid=5)
    assert window.viewer.after_pixels().shape == (800, 1200, 3)
    assert window.adjust.grid_value.text() == "5 × 5 × 5"


def test_detail_zero_renders_the_pure_lut(qtbot, window: MainWindow) -> None:
    before = window.viewer.after_pixels().copy()
    window.adjust.detail.setValue(0)
    wait_render(qtbot, window, full=True, grid=33)
    qtbot.waitUntil(lambda: not np.array_equal(window.viewer.after_pixels(), before), timeout=WAIT_MS)


def test_detail_above_one_adds_local_contrast(qtbot, window: MainWindow) -> None:
    """The Detail slider goes past the default (to 2): more of the exposures' local contrast, and the label says so."""
    from lutfuse.app.controls import DETAIL_STEPS, MAX_DETAIL

    assert window.adjust.detail.maximum() == MAX_DETAIL * DETAIL_STEPS > DETAIL_STEPS
    default = window.viewer.after_pixels().astype(np.float32)
    window.adjust.detail.setValue(2 * DETAIL_STEPS)
    wait_render(qtbot, window, full=True, grid=33)
    qtbot.waitUntil(lambda: window.adjust.detail_value.text() == "2.00", timeout=WAIT_MS)
    strong = window.viewer.after_pixels().astype(np.float32)
    # local contrast = deviation from a blurred copy; twice the detail layer gives visibly more of it
    def local(img):
        return np.abs(img - cv2.GaussianBlur(img, (0, 0), 3)).mean()
    assert local(strong) > 1.1 * local(default)


def test_export_image_writes_valid_files(qtbot, window: MainWindow, tmp_path: Path) -> None:
    out = tmp_path / "fused.tif"
    assert window.export_image(out, ImageOptions(bit_depth=16)) is not None
    assert window.export_task.isVisible() and window.export_task.cancel_button.isVisible()
    assert wait_export(qtbot, window) == ("done", str(out))
    back = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16 and back.shape == (800, 1200, 3) and back.std() > 1000
    assert not window.export_task.isVisible()

    jpg = tmp_path / "fused.jpg"
    window.export_image(jpg, ImageOptions(bit_depth=8, quality=80))
    assert wait_export(qtbot, window)[0] == "done"
    assert cv2.imread(str(jpg)).shape == (800, 1200, 3)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads through Linux's /proc")
def test_an_export_leaves_no_thread_behind(qtbot, window: MainWindow, tmp_path: Path) -> None:
    # an idle export thread would keep its torch (OpenMP) team alive, and with the engine thread's team that is
    # more threads than cores on a many-core machine: libgomp then stops spinning in every team, and each small
    # torch op of the next edits waits on a futex
    def threads() -> int:
        return len(os.listdir("/proc/self/task"))

    before = threads()
    assert window.export_image(tmp_path / "fused.jpg", ImageOptions(bit_depth=8, quality=80)) is not None
    assert wait_export(qtbot, window)[0] == "done"
    qtbot.waitUntil(lambda: threads() <= before, timeout=5_000)


def test_export_cube_writes_the_lut_and_its_base(qtbot, window: MainWindow, tmp_path: Path) -> None:
    from lutfuse.core.cube import read_cube

    window.adjust.grid.setValue(17)
    wait_render(qtbot, window, full=True, grid=17)
    cube = tmp_path / "look.cube"
    window.export_cube(cube)
    assert wait_export(qtbot, window) == ("done", str(cube))
    table = read_cube(cube).table
    assert table.shape == (17, 17, 17, 3)
    assert np.allclose(table, window.lut_panel.lut, atol=1e-5)   # the LUT the panel shows
    base = cv2.imread(str(base_path_for(cube)), cv2.IMREAD_UNCHANGED)
    assert base.dtype == np.uint16 and base.shape == (800, 1200, 3)


def test_ctrl_e_asks_for_a_file_and_format_then_exports(qtbot, window: MainWindow, tmp_path: Path,
                                                       monkeypatch) -> None:
    from PySide6.QtWidgets import QFileDialog

    target = tmp_path / "via-dialog"           # no suffix: the chosen filter adds it
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        staticmethod(lambda *a, **k: (str(target), "TIFF 16-bit (*.tif *.tiff)")))
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    assert wait_export(qtbot, window) == ("done", str(target) + ".tif")
    assert cv2.imread(str(target) + ".tif", cv2.IMREAD_UNCHANGED).dtype == np.uint16


def test_align_toggle_reloads_the_bracket(qtbot, window: MainWindow) -> None:
    old = window.loaded
    assert not old.align
    window.strip.align.setChecked(True)
    qtbot.waitUntil(lambda: window.loaded is not old, timeout=WAIT_MS)
    assert window.loaded.align and window.loaded.bracket.aligned
    wait_render(qtbot, window, full=True, grid=33)


def test_deghost_choice_reloads_the_bracket(qtbot, window: MainWindow) -> None:
    old = window.loaded
    from lutfuse.core.deghost import DEFAULT

    assert old.deghost == DEFAULT == window.strip.deghost.currentText()  # the first-run default
    window.strip.deghost.setCurrentText("medium")
    qtbot.waitUntil(lambda: window.loaded is not old, timeout=WAIT_MS)
    assert window.loaded.deghost == "medium" and window.loaded.bracket.ghost is not None
    assert window.strip.deghost.currentText() == "medium" and window.settings.deghost == "medium"
    wait_render(qtbot, window, full=True, grid=33)
    assert window.strip.show_ghosts.isEnabled() and not window.viewer.ghost_overlay.isVisible()
    window.strip.show_ghosts.setChecked(True)
    assert window.viewer.ghost_overlay.isVisible()
    assert window.viewer.ghost_overlay.image.shape[:2] == window.loaded.bracket.ghost.shape


def test_cancelled_open_keeps_the_bracket(qtbot, window: MainWindow) -> None:
    shown = window.loaded
    window.open_bracket(demo_frames(), align=True)
    assert window.load_task.isVisible() and window.load_task.progress.maximum() == 0   # busy bar
    window.load_task.cancel_button.click()
    qtbot.waitUntil(lambda: window.load_job is None, timeout=WAIT_MS)
    assert not window.load_task.isVisible()
    # either the load was stopped (the old bracket stays) or it had already committed (the new one is shown)
    assert window.loaded is shown or window.loaded.align
    assert window.loaded.align == window.strip.align.isChecked()


def test_export_asks_before_overwriting(qtbot, window: MainWindow, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "fused.png"
    out.write_bytes(b"keep me")
    asked = []
    monkeypatch.setattr(window, "confirm_overwrite", lambda paths: asked.append(paths) or False)
    assert window.export_image(out) is None                    # declined: nothing starts
    assert asked == [[out]] and out.read_bytes() == b"keep me"
    monkeypatch.setattr(window, "confirm_overwrite", lambda paths: True)
    window.export_image(out)
    assert wait_export(qtbot, window)[0] == "done"
    assert cv2.imread(str(out)).shape == (800, 1200, 3)


def test_bad_file_shows_an_error_and_keeps_the_bracket(qtbot, window: MainWindow, tmp_path: Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    shown = window.loaded
    with qtbot.waitSignal(window.errorShown, timeout=WAIT_MS) as blocker:
        window.open_bracket([bad, *demo_frames()[1:]])
    assert "broken.jpg" in blocker.args[0]
    assert window.banner.isVisible() and "broken.jpg" in window.banner.label.text()
    assert "broken.jpg" in window.statusBar().currentMessage()
    assert window.loaded is shown and len(window.strip.cards) == 3

    small = tmp_path / "small.png"   # a frame of another size
    cv2.imwrite(str(small), np.full((40, 60, 3), 128, np.uint8))
    with qtbot.waitSignal(window.errorShown, timeout=WAIT_MS):
        window.open_bracket([demo_frames()[0], small])
    assert window.loaded is shown
    # and it keeps working
    window.adjust.grid.setValue(9)
    wait_render(qtbot, window, full=True, grid=9)
    assert window.viewer.after_pixels().shape == (800, 1200, 3)


def test_missing_weights_are_a_message_not_a_crash(qtbot, settings: AppSettings) -> None:
    from lutfuse.core.errors import WeightsError

    def no_weights():
        raise WeightsError("resources/weights/lut_student.pt: not found")

    win = MainWindow(settings, no_weights)
    qtbot.addWidget(win)
    with qtbot.waitSignal(win.errorShown, timeout=WAIT_MS) as blocker:
        win.open_bracket(demo_frames())
    assert "engine cannot start" in blocker.args[0] and "lut_student.pt" in blocker.args[0]
    assert win.banner.isVisibleTo(win) and win.loaded is None
    assert not win.export_actions[0].isEnabled()


def test_open_by_drop_and_recent_and_settings_persist(qtbot, window: MainWindow, settings: AppSettings) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(demo_frames()[0].parent))])
    event = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                       Qt.KeyboardModifier.NoModifier)
    old = window.loaded
    window.dropEvent(event)
    qtbot.waitUntil(lambda: window.loaded is not old, timeout=WAIT_MS)
    assert [Path(p) for p in settings.recent[0]] == [demo_frames()[0].parent]
    assert window.recent_menu.actions()
    window.adjust.grid.setValue(17)
    window.adjust.detail.setValue(40)
    window.close()
    again = AppSettings(settings.qs.fileName())
    assert (again.grid, again.detail) == (17, 0.4)
    assert again.window_state()[0] is not None


def test_keyboard_shortcuts_zoom_and_split(qtbot, window: MainWindow) -> None:
    window.activateWindow()
    qtbot.waitUntil(lambda: window.viewer.zoom() > 0, timeout=5000)
    qtbot.keyClick(window, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)
    assert window.viewer.zoom() == pytest.approx(1.0, rel=0.02)
    qtbot.keyClick(window, Qt.Key.Key_Plus)
    assert window.viewer.zoom() == pytest.approx(1.25, rel=0.02)
    qtbot.keyClick(window, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)
    assert window.viewer.zoom() < 1.0     # the 1200-px demo fits a smaller view
    assert not window.viewer.split
    qtbot.keyClick(window, Qt.Key.Key_B)
    assert window.viewer.split and window.viewer.divider.isVisible() and window.split_action.isChecked()
    window.viewer.divider.setValue(300)   # what dragging the divider does
    assert window.viewer.clip.rect().width() == 300
    qtbot.keyClick(window, Qt.Key.Key_Backslash)
    assert not window.viewer.split


def test_cancel_stops_an_hq_export(qtbot, window: MainWindow, tmp_path: Path, monkeypatch) -> None:
    import time

    hq = pytest.importorskip("lutfuse.core.hq", reason="core.hq is not in this checkout")

    # the real HQ path (no weights needed), with far more refinement steps than shipped so that it is surely
    # still running when Cancel is clicked
    real = hq.HQFusion
    monkeypatch.setattr(hq, "HQFusion", lambda *a, **k: real(device="cpu", steps=2000))
    out = tmp_path / "hq.png"
    job = window.export_hq(out)
    assert job is not None and window.export_task.isVisible() and window.export_task.cancel_button.isEnabled()
    # the editor stays responsive meanwhile: a render still comes through
    window.adjust.grid.setValue(21)
    wait_render(qtbot, window, full=True, grid=21)
    assert window.export_job is not None, "the HQ export ended before it could be cancelled"
    t0 = time.monotonic()
    window.export_task.cancel_button.click()
    assert wait_export(qtbot, window)[0] == "cancelled"
    assert time.monotonic() - t0 < 5
    assert not out.exists() and not window.export_task.isVisible()
    assert window.export_actions[2].isEnabled()


def test_hq_export_to_an_unwritable_folder_fails_before_the_run(qtbot, window: MainWindow, monkeypatch) -> None:
    hq = pytest.importorskip("lutfuse.core.hq", reason="core.hq is not in this checkout")

    def never(*args, **kwargs):
        raise AssertionError("the HQ run started although the output cannot be written")

    monkeypatch.setattr(hq, "HQFusion", never)
    out = Path("/sys/lutfuse-hq.png")  # refuses new files even to root
    window.export_hq(out)
    assert wait_export(qtbot, window) == ("failed", f"{out}: folder /sys is not writable (Permission denied)")
    assert window.adjust.grid.isEnabled()  # the editor goes on


def test_screenshot_waits_for_the_full_render_and_writes_a_png(qtbot, tmp_path: Path, engine_factory) -> None:
    from lutfuse.app.run import run

    shot = tmp_path / "shot.png"
    assert run([], screenshot=shot, settings=AppSettings(tmp_path / "s.ini"), engine_factory=engine_factory) == 0
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[0] >= 500 and image.shape[1] >= 900
    view = image[150:450, 300:600]         # the image area, not only panels
    assert view.std() > 10
    # the process goes on working: a window opened afterwards still gets its renders (a Quit event left over
    # from the screenshot run used to stop every later event loop)
    from PySide6.QtWidgets import QApplication

    QApplication.processEvents()   # deliver whatever the run left posted
    win = MainWindow(AppSettings(tmp_path / "after.ini"), engine_factory)
    qtbot.addWidget(win)
    win.show()
    win.open_bracket(demo_frames(), align=False)
    qtbot.waitUntil(lambda: win.full_shown, timeout=WAIT_MS)


@pytest.mark.skipif("not shipped_student()", reason="the CLI needs the shipped LUT student weights")
def test_screenshot_command_writes_a_png(tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", **{SETTINGS_ENV: str(tmp_path / "s.ini")})
    done = subprocess.run([sys.executable, "-m", "lutfuse", "gui", "--screenshot", str(shot)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[1] >= 900 and image.std() > 10
    again = subprocess.run([sys.executable, "-m", "lutfuse", "gui", "--screenshot", str(shot)], cwd=REPO,
                           env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "already exists" in again.stderr



def test_device_preference_is_checked(settings: AppSettings) -> None:
    assert settings.device == "auto"                          # the default: CUDA, then Apple's GPU, then CPU
    settings.device = "mps"
    assert settings.device == "mps"
    settings.device = "tpu"                                   # an unknown value in the file reads as auto
    assert settings.device == "auto"
