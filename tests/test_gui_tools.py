"""Tools photographers expect, in the real editor (pytest-qt, offscreen): undo/redo of every edit, clipping
overlay, loupe with pixel readout, compare with any frame / Mertens / the HQ export, shortcuts in Help, settings
per bracket in a sidecar, presets, the adjustment panel."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("pytestqt")
import test_gui as gui
from PySide6.QtCore import QPointF, Qt

from lutfuse.app.look_panel import ADJUST_AVAILABLE
from lutfuse.app.main_window import MainWindow
from lutfuse.app.state import clipping_overlay, pixel_readout, to_display
from lutfuse.core.paths import demo_frames
from lutfuse.core.sidecar import SIDECAR_NAME, read_settings

# the editor fixtures and helpers of test_gui (a window on the demo bracket, temporary settings)
settings, engine_factory, window = gui.settings, gui.engine_factory, gui.window
WAIT_MS, wait_export, wait_render = gui.WAIT_MS, gui.wait_export, gui.wait_render


def settle(slider, value: int) -> None:
    """What letting go of a slider at `value` does."""
    slider.setSliderDown(True)
    slider.setValue(value)
    slider.setSliderDown(False)


def test_undo_and_redo_every_edit(qtbot, window: MainWindow) -> None:
    settle(window.adjust.grid, 17)
    settle(window.adjust.detail, 40)
    wait_render(qtbot, window, full=True, grid=17)
    assert window.undo_stack.count() == 2
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert (window.grid, window.detail) == (17, 1.0)
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert (window.grid, window.detail) == (33, 1.0) and window.adjust.grid_value.text() == "33 × 33 × 33"
    wait_render(qtbot, window, full=True, grid=33)      # undo renders what it restores
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert (window.grid, window.detail) == (17, 1.0)
    wait_render(qtbot, window, full=True, grid=17)
    window.adjust.grid.mouseDoubleClickEvent(_double_click())   # double-click resets, and is undoable too
    assert window.grid == 33 and window.undo_stack.undoText() == "Grid size"


def _double_click():
    from PySide6.QtCore import QPointF as P
    from PySide6.QtGui import QMouseEvent

    return QMouseEvent(QMouseEvent.Type.MouseButtonDblClick, P(5, 5), P(5, 5), Qt.MouseButton.LeftButton,
                       Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)


def test_clipping_overlay_marks_clipped_highlights_and_shadows(qtbot, window: MainWindow) -> None:
    pixels = np.array([[[255, 10, 10], [0, 50, 60], [128, 128, 128]]], np.uint8)
    overlay = clipping_overlay(pixels)
    assert overlay[0, 0].tolist() == [255, 0, 0, 255] and overlay[0, 1, 2] == 255 and overlay[0, 2, 3] == 0
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_J)
    assert window.clipping_action.isChecked() and window.viewer.overlay.isVisible()
    shown = window.viewer.after_pixels()
    drawn = window.viewer.overlay.image
    assert np.array_equal(drawn, clipping_overlay(shown))
    assert (drawn[..., 0] == 255).sum() == (shown >= 255).any(-1).sum() > 0   # the demo's window is clipped
    qtbot.keyClick(window, Qt.Key.Key_J)
    assert not window.viewer.overlay.isVisible()


def test_loupe_reads_the_pixel_under_the_mouse(qtbot, window: MainWindow) -> None:
    (r, g, b), ev = pixel_readout(np.array([0.4614, 0.4614, 0.4614]))     # sRGB middle grey
    assert (r, g, b) == (118, 118, 118) and abs(ev) < 0.01
    assert abs(pixel_readout(np.ones(3))[1] - np.log2(1 / 0.18)) < 1e-6
    window.sections["loupe"].set_expanded(True)
    scene = window.viewer.box.mapViewToScene(QPointF(600.5, 400.5))
    window.viewer.view.scene().sigMouseMoved.emit(scene)
    expected = to_display(window.viewer.source[400:401, 600:601])[0, 0]
    assert f"R {expected[0]}  G {expected[1]}  B {expected[2]}" in window.pixel_label.text()
    assert "x 600  y 400" in window.loupe.text and "EV" in window.loupe.text
    assert np.array_equal(window.loupe.pixels[7, 7], expected)    # the centre of the magnified patch


def test_compare_with_a_frame_and_with_mertens(qtbot, window: MainWindow) -> None:
    from lutfuse.core.bracket import load_bracket
    from lutfuse.core.classical import mertens

    assert window.compare.count() == 4 and window.compare.currentData() == "frame:1"
    window.set_compare("frame:0")
    frames = window.loaded.bracket.frames
    assert window.viewer.split and window.viewer.label_before.toPlainText() == frames[0].path.name
    assert np.array_equal(window.viewer.before.image, to_display(frames[0].image))
    window.set_compare("mertens", mode="side")     # made in a background job, then shown side by side
    assert window.viewer.side_by_side and not window.viewer.split and window.side_action.isChecked()
    qtbot.waitUntil(lambda: window.viewer.label_before.toPlainText() == "Mertens", timeout=WAIT_MS)
    expected = to_display(mertens(load_bracket(demo_frames(), align=False).images))
    assert np.abs(window.viewer.before.image.astype(int) - expected.astype(int)).mean() < 1.0
    assert np.array_equal(window.viewer.side_image.image, window.viewer.before.image)
    assert window.viewer.side_label.toPlainText() == "Mertens"
    names = [name for name, _ in window.compare_with()]    # the simple API: (name, display array) per source
    assert names == [*(f.path.name for f in frames), "Mertens"]
    # side by side: the two views show the same part of the image (zoom and pan linked)
    window.viewer.set_zoom(2.0)
    window.viewer.center_on(300, 200)
    assert np.allclose(window.viewer.side_box.viewRange(), window.viewer.box.viewRange())
    window.set_compare("frame:0", mode="split")
    window.set_compare("mertens")                   # cached per bracket: shown at once, no second computation
    assert window.viewer.label_before.toPlainText() == "Mertens" and not window.compare_sources.pending("mertens")
    assert np.abs(window.viewer.before.image.astype(int) - expected.astype(int)).mean() < 1.0
    assert window.viewer.split and not window.viewer.side_by_side


def test_hq_export_is_shown_for_comparison(qtbot, window: MainWindow, tmp_path: Path, monkeypatch) -> None:
    from lutfuse.core import hq
    from lutfuse.core.classical import mertens

    class QuickHQ:   # the real HQ takes tens of seconds on a shared CPU; a real fusion stands in
        def __init__(self, **options):  # HQFusion's keywords (weights_dir, device, ablations)
            pass

        def fuse(self, images, progress=None, cancel=None, valid=None, **live_settings):  # HQFusion.fuse's
            return mertens(images, valid)

    monkeypatch.setattr(hq, "HQFusion", QuickHQ)
    out = tmp_path / "hq.png"
    window.export_hq(out)
    assert wait_export(qtbot, window) == ("done", str(out))
    assert window.compare.currentData() == "hq" and window.viewer.split
    written = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
    assert np.abs(window.viewer.before.image.astype(int) - written.astype(int)).max() <= 1


def test_help_lists_the_shortcuts(qtbot, window: MainWindow) -> None:
    rows = dict(window.shortcut_rows())
    for what, keys in (("Undo", "Ctrl+Z"), ("Redo", "Ctrl+Shift+Z"), ("Clipping", "J"), ("Full Screen", "F11"),
                       ("Before / After", "B"), ("Export Image", "Ctrl+E")):
        assert keys in rows[what], (what, rows[what])
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_F1)
    qtbot.waitUntil(lambda: getattr(window, "shortcuts_dialog", None) is not None, timeout=5000)
    assert "Ctrl+Shift+Z" in window.shortcuts_dialog.text.toPlainText()


def test_settings_are_kept_beside_each_bracket(qtbot, window: MainWindow, tmp_path: Path) -> None:
    for src in demo_frames():
        shutil.copy(src, tmp_path / src.name)
    window.open_bracket([tmp_path])
    qtbot.waitUntil(lambda: window.loaded.paths == [tmp_path], timeout=WAIT_MS)
    settle(window.adjust.grid, 17)
    sidecar = tmp_path / SIDECAR_NAME
    qtbot.waitUntil(sidecar.exists, timeout=5000)
    stored = read_settings(sidecar)
    assert stored["grid"] == 17 and stored["detail"] == 1.0 and sorted(stored["frames"]) == ["00.jpg", "01.jpg",
                                                                                              "02.jpg"]
    window.open_bracket(demo_frames())                # another bracket: defaults, not the grid just used
    qtbot.waitUntil(lambda: window.loaded.paths == demo_frames(), timeout=WAIT_MS)
    assert window.grid == 33 and not (demo_frames()[0].parent / SIDECAR_NAME).exists()
    window.open_bracket([tmp_path])                   # back: its own settings, a fresh undo history
    qtbot.waitUntil(lambda: window.loaded.paths == [tmp_path], timeout=WAIT_MS)
    assert window.grid == 17 and window.sidecar_used and window.undo_stack.count() == 0
    wait_render(qtbot, window, full=True, grid=17)


def test_reloading_the_same_frames_keeps_the_edits(qtbot, window: MainWindow) -> None:
    settle(window.adjust.grid, 17)
    old = window.loaded
    window.strip.align.setChecked(True)              # reloads the same frames, aligned
    qtbot.waitUntil(lambda: window.loaded is not old, timeout=WAIT_MS)
    assert window.grid == 17 and window.undo_stack.count() == 1
    wait_render(qtbot, window, full=True, grid=17)


def test_presets_save_and_load_as_one_undoable_edit(qtbot, window: MainWindow, tmp_path: Path) -> None:
    settle(window.adjust.detail, 60)
    preset = window.save_preset(tmp_path / "mine.toml")
    assert read_settings(preset)["detail"] == 0.6
    preset.write_text(preset.read_text().replace("grid = 33", "grid = 9").replace("detail = 0.6", "detail = 0.25"))
    window.load_preset(preset)
    assert (window.grid, window.detail) == (9, 0.25) and window.undo_stack.undoText() == "Preset mine"
    wait_render(qtbot, window, full=True, grid=9)
    window.undo_stack.undo()
    assert (window.grid, window.detail) == (33, 0.6)
    bad = tmp_path / "bad.toml"
    bad.write_text("grid = 500\n")
    with qtbot.waitSignal(window.errorShown, timeout=5000) as blocker:
        window.load_preset(bad)
    assert "bad.toml" in blocker.args[0] and "grid" in blocker.args[0] and window.grid == 33


def test_adjustment_panel_resets_and_is_hidden_without_core_adjust(qtbot, window: MainWindow) -> None:
    assert window.sections["look"].isVisibleTo(window) == ADJUST_AVAILABLE
    panel = window.look_panel
    settle(panel.sliders["exposure"], 150)
    assert panel.value("exposure") == 1.5 and panel.labels["exposure"].text() == "+1.50 EV"
    assert window.undo_stack.undoText() == "Exposure"
    panel.sliders["exposure"].mouseDoubleClickEvent(_double_click())
    assert panel.value("exposure") == 0.0
    window.undo_stack.undo()
    assert panel.value("exposure") == 1.5
    settle(panel.sliders["tint"], -20)
    panel.reset.click()
    assert set(panel.values().values()) == {0.0} and window.undo_stack.undoText() == "Reset adjustments"
    window.undo_stack.undo()
    assert (panel.value("exposure"), panel.value("tint")) == (1.5, -20.0)
    if not ADJUST_AVAILABLE:
        assert window.look() is None             # nothing reaches the engine without core.adjust


@pytest.mark.skipif(not ADJUST_AVAILABLE, reason="core.adjust (the colour adjustments) is not in this checkout")
def test_adjustments_reach_the_render_the_lut_and_auto(qtbot, window: MainWindow) -> None:
    from lutfuse.core.adjust import Look

    dark = window.viewer.after_pixels().astype(float).mean()
    settle(window.look_panel.sliders["exposure"], 100)          # +1 EV
    qtbot.waitUntil(lambda: window.full_shown and window.viewer.after_pixels().astype(float).mean() > dark + 5,
                    timeout=WAIT_MS)
    host = window.host
    qtbot.waitUntil(lambda: np.allclose(window.lut_panel.lut,
                                        host.engine.lut(host.current.prepared, 33, look=Look(exposure=1.0))),
                    timeout=WAIT_MS)
    window.look_panel.auto.click()
    assert window.undo_stack.undoText() == "Auto"
    window.undo_stack.undo()
    assert window.look_panel.value("exposure") == 1.0
