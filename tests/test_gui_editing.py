"""Editor correctness (pytest-qt, offscreen): exports follow the typed extension and default beside the
originals, the LUT slice keeps its level across grid sizes, a doubtful bracket warns, full renders are shown
from a screen-sized copy with 1:1 detail cut from the full render, the loader's notes are a note."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("pytestqt")
import test_gui as gui
from PySide6.QtCore import Qt

from lutfuse.app import export as ex
from lutfuse.app.main_window import MainWindow
from lutfuse.app.state import to_display
from lutfuse.app.workers import THREADS_ENV, engine_threads
from lutfuse.core.paths import demo_frames

# the editor fixtures and helpers of test_gui (a window on the demo bracket, temporary settings)
settings, engine_factory, window = gui.settings, gui.engine_factory, gui.window
WAIT_MS, wait_export, wait_render = gui.WAIT_MS, gui.wait_export, gui.wait_render


def test_typed_extension_decides_the_format() -> None:
    jpeg, tiff8, png16 = "JPEG (*.jpg *.jpeg)", "TIFF 8-bit (*.tif *.tiff)", "PNG 16-bit (*.png)"
    assert ex.image_format(Path("/x/name.tif"), jpeg) == (Path("/x/name.tif"), 16)   # TIFF: 16-bit default
    assert ex.image_format(Path("/x/name.TIFF"), tiff8) == (Path("/x/name.TIFF"), 8)  # its own filter's depth
    assert ex.image_format(Path("/x/name.png"), tiff8) == (Path("/x/name.png"), 8)
    assert ex.image_format(Path("/x/name.png"), png16) == (Path("/x/name.png"), 16)
    assert ex.image_format(Path("/x/name.jpg"), png16) == (Path("/x/name.jpg"), 8)
    assert ex.image_format(Path("/x/name"), jpeg) == (Path("/x/name.jpg"), 8)
    assert ex.image_format(Path("/x/v1.2"), ex.DEFAULT_IMAGE_FILTER) == (Path("/x/v1.2.tif"), 16)
    assert ex.default_export_path(Path("/shots/IMG_1.CR2"), ".tif") == Path("/shots/IMG_1_fused.tif")


def test_export_dialog_proposes_beside_the_originals_and_follows_the_typed_tif(qtbot, window: MainWindow,
                                                                                tmp_path: Path,
                                                                                monkeypatch) -> None:
    from PySide6.QtWidgets import QFileDialog

    asked = {}
    target = tmp_path / "typed.tif"

    def dialog(_parent, _title, proposed, _filters, selected, **_kw):
        asked.update(proposed=proposed, selected=selected)
        return str(target), "JPEG (*.jpg *.jpeg)"     # the user typed .tif but left the JPEG filter

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(dialog))
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    assert wait_export(qtbot, window) == ("done", str(target))
    first = demo_frames()[0]
    assert asked == {"proposed": str(first.with_name(f"{first.stem}_fused.tif")), "selected": ex.DEFAULT_IMAGE_FILTER}
    with open(target, "rb") as f:
        assert f.read(2) in (b"II", b"MM")             # a TIFF, not a JPEG named .tif
    assert cv2.imread(str(target), cv2.IMREAD_UNCHANGED).dtype == np.uint16


def test_lut_slice_keeps_its_level_after_grid_2(qtbot, window: MainWindow) -> None:
    window.lut_panel.spin.setValue(20)
    window.adjust.grid.setValue(2)
    wait_render(qtbot, window, full=True, grid=2)
    assert window.lut_panel.spin.maximum() == 1
    window.adjust.grid.setValue(33)
    wait_render(qtbot, window, full=True, grid=33)
    assert window.lut_panel.spin.value() == 20
    window.adjust.grid.setValue(17)
    wait_render(qtbot, window, full=True, grid=17)
    assert window.lut_panel.spin.value() == 10       # the same input level (20/32 = 10/16)


def test_a_folder_with_a_duplicated_frame_says_so(qtbot, window: MainWindow, tmp_path: Path) -> None:
    frames = demo_frames()
    for i, src in enumerate((frames[0], frames[1], frames[1])):
        shutil.copy(src, tmp_path / f"{i:02d}{src.suffix}")
    window.open_bracket([tmp_path])
    qtbot.waitUntil(lambda: window.loaded is not None and window.loaded.paths == [tmp_path], timeout=WAIT_MS)
    text = window.banner.label.text()
    assert window.banner.isVisible() and "same pixels" in text and "02.jpg" in text
    assert "02.jpg" in window.statusBar().currentMessage()


def test_frames_of_two_scenes_warn(qtbot, window: MainWindow, tmp_path: Path) -> None:
    frames = demo_frames()
    for i, src in enumerate(frames):
        shutil.copy(src, tmp_path / f"{i:02d}{src.suffix}")
    other = cv2.imread(str(frames[1]))
    cv2.imwrite(str(tmp_path / f"01{frames[1].suffix}"), np.ascontiguousarray(other[::-1, ::-1]))  # another view
    with qtbot.waitSignal(window.warningShown, timeout=WAIT_MS) as blocker:
        window.open_bracket([tmp_path])
    assert "01" in blocker.args[0]
    assert window.banner.isVisible() and window.banner.property("level") == "warning"


def test_the_loaders_notes_are_a_note_not_a_warning(qtbot, window: MainWindow, tmp_path: Path) -> None:
    """A PNG saved as .jpg is read by its content: the editor says so in a blue note, not as something wrong."""
    frames = demo_frames()
    for i, src in enumerate(frames):
        shutil.copy(src, tmp_path / f"{i:02d}{src.suffix}")
    misnamed = tmp_path / f"01{frames[1].suffix}"
    cv2.imwrite(str(tmp_path / "01.png"), cv2.imread(str(misnamed)))
    (tmp_path / "01.png").replace(misnamed)
    warned: list[str] = []
    window.warningShown.connect(warned.append)
    window.open_bracket([tmp_path])
    qtbot.waitUntil(lambda: window.loaded is not None and window.loaded.paths == [tmp_path], timeout=WAIT_MS)
    assert window.banner.isVisible() and window.banner.property("level") == "note"
    assert "holds a PNG image" in window.banner.label.text() and misnamed.name in window.banner.label.text()
    assert not warned


def test_full_render_is_shown_from_a_screen_sized_copy_with_1to1_detail(qtbot, window: MainWindow) -> None:
    window.host.display_side = 600                   # as if the 1200-px demo were larger than the screen
    window.adjust.grid.setValue(21)
    wait_render(qtbot, window, full=True, grid=21)
    shown = window.viewer.after_pixels()
    assert shown.shape == (400, 600, 3)
    source = window.viewer.source
    assert source.shape == (800, 1200, 3) and source.dtype == np.float32
    assert not window.viewer.detail.isVisible()       # at fit zoom the copy is enough
    window.viewer.actual_size()                       # 100 %: the copy would be blurry
    window.viewer.update_detail()
    detail = window.viewer.detail
    assert detail.isVisible()
    rect = detail.mapRectToParent(detail.boundingRect())
    x, y = int(rect.x()), int(rect.y())
    h, w = detail.image.shape[:2]
    assert 0 < w < 1200 and np.array_equal(detail.image, to_display(source[y:y + h, x:x + w]))


def test_thread_count_leaves_a_core_and_obeys_the_environment(monkeypatch) -> None:
    monkeypatch.setenv(THREADS_ENV, "3")
    assert engine_threads() == 3
    monkeypatch.delenv(THREADS_ENV)
    import os

    assert engine_threads() == max(1, min(8, len(os.sched_getaffinity(0)) - 1))


def test_progress_says_how_long_is_left() -> None:
    from lutfuse.app.task_indicator import eta_text

    assert eta_text(0.5, 0.5) == "starting…" and eta_text(10.0, 0.0) == "starting…"
    assert eta_text(10.0, 0.25) == "about 30 s left"
    assert eta_text(60.0, 0.4) == "about 1 min 30 s left"
