"""Bracket control in the real editor (pytest-qt, offscreen): frames can be left out and the reference chosen
(reloaded in the background, cancellable, kept in the sidecar), and what registration did is shown per frame."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")
import test_gui as gui
from PySide6.QtCore import QPoint

from lutfuse.app.main_window import REFERENCE_SUPPORTED, MainWindow
from lutfuse.core.paths import demo_frames
from lutfuse.core.sidecar import SIDECAR_NAME, read_settings

settings, engine_factory, window = gui.settings, gui.engine_factory, gui.window
WAIT_MS = gui.WAIT_MS


def _copy_demo(folder: Path) -> list[Path]:
    folder.mkdir()
    for src in demo_frames():
        shutil.copy(src, folder / src.name)
    return sorted(folder.iterdir())


def test_leaving_out_a_frame_and_choosing_the_reference(qtbot, window: MainWindow, tmp_path: Path) -> None:
    frames = _copy_demo(tmp_path / "bracket")
    window.open_bracket([tmp_path / "bracket"], align=True)
    qtbot.waitUntil(lambda: window.loaded.paths == [tmp_path / "bracket"], timeout=WAIT_MS)
    cards = window.strip.cards
    assert [c.path.name for c in cards] == ["00.jpg", "01.jpg", "02.jpg"]
    # aligned: each card says what registration did, its tooltip the full record
    assert cards[1].transform.text() == "reference"
    assert cards[0].transform.text() == "not moved" or cards[0].transform.text().startswith("moved (")
    assert cards[0].transform.toolTip() == window.loaded.bracket.registration[0].describe()
    # leave the darkest frame out: the bracket reloads in the background with two frames, the strip keeps three
    old = window.loaded
    cards[0].use.setChecked(False)
    assert window.load_task.isVisible()
    qtbot.waitUntil(lambda: window.loaded is not old, timeout=WAIT_MS)
    assert [f.path.name for f in window.loaded.bracket.frames] == ["01.jpg", "02.jpg"]
    assert len(window.strip.cards) == 3 and window.strip.cards[0].transform.text() == "left out"
    assert not window.strip.cards[0].use.isChecked()
    assert [window.strip.reference.itemText(i) for i in range(window.strip.reference.count())] == ["01.jpg",
                                                                                                   "02.jpg"]
    qtbot.waitUntil(lambda: (tmp_path / "bracket" / SIDECAR_NAME).exists() and "excluded_frames" in
                    read_settings(tmp_path / "bracket" / SIDECAR_NAME), timeout=5000)
    stored = read_settings(tmp_path / "bracket" / SIDECAR_NAME)
    assert stored["excluded_frames"] == ["00.jpg"] and sorted(stored["frames"]) == ["00.jpg", "01.jpg", "02.jpg"]
    # at least two frames must stay: a message, and the box is ticked again
    with qtbot.waitSignal(window.errorShown, timeout=5000) as blocker:
        window.strip.cards[1].use.setChecked(False)
    assert "at least two" in blocker.args[0] and window.strip.cards[1].use.isChecked()
    # Cancel: the reload stops, the bracket shown stays, the strip shows the frames really used
    shown = window.loaded
    window.strip.cards[0].use.setChecked(True)
    window.load_task.cancel_button.click()
    qtbot.waitUntil(lambda: window.load_job is None, timeout=WAIT_MS)
    if window.loaded is shown:   # (a load that had already reached the engine is kept instead)
        assert not window.strip.cards[0].use.isChecked()
    # the reference frame (right-click a thumbnail → Use as reference, or the Reference box)
    window.strip.cards[2]._menu(QPoint(5, 5))
    action = window.strip.cards[2].menu.actions()[0]
    assert action.text() == "Use as reference" and action.isEnabled() == REFERENCE_SUPPORTED
    if REFERENCE_SUPPORTED:
        old = window.loaded
        action.trigger()
        qtbot.waitUntil(lambda: window.loaded is not old, timeout=WAIT_MS)
        assert window.loaded.bracket.frames[window.loaded.bracket.reference_index].path.name == "02.jpg"
        assert window.strip.reference.currentText() == "02.jpg"
        qtbot.waitUntil(lambda: read_settings(tmp_path / "bracket" / SIDECAR_NAME).get("reference_frame") ==
                        "02.jpg", timeout=5000)
    # another bracket, then back: the frames left out come back from the sidecar
    window.open_bracket(demo_frames(), align=False)
    qtbot.waitUntil(lambda: window.loaded.paths == demo_frames(), timeout=WAIT_MS)
    assert all(c.use.isChecked() for c in window.strip.cards)
    window.open_bracket([tmp_path / "bracket"], align=True)
    qtbot.waitUntil(lambda: window.loaded.paths == [tmp_path / "bracket"] and window.loaded.choice is not None,
                    timeout=WAIT_MS)
    assert frames[0] not in [f.path for f in window.loaded.bracket.frames]
    gui.wait_render(qtbot, window, full=True, grid=33)
