"""Inspection in the real editor (pytest-qt, offscreen): the navigator pans the view and shows what is visible,
Help lists every shortcut, and the ghost mask of a real bracket with motion is drawn over the image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")
import test_gui as gui
from PySide6.QtCore import QPoint, Qt

from lutfuse.app.main_window import MainWindow
from lutfuse.app.navigator import overview_geometry

settings, engine_factory, window = gui.settings, gui.engine_factory, gui.window
WAIT_MS = gui.WAIT_MS


def test_navigator_shows_the_visible_part_and_pans(qtbot, window: MainWindow) -> None:
    nav = window.navigator
    assert nav.isVisible() and nav.pixmap is not None and nav.image_size == window.viewer.size
    window.viewer.set_zoom(window.viewer.zoom() * 4)
    qtbot.waitUntil(lambda: nav.visible is not None and nav.visible.width() < 700, timeout=5000)
    seen = window.viewer.visible_rect()
    assert abs(nav.visible.center().x() - seen.center().x()) < 1 and abs(nav.visible.width() - seen.width()) < 1
    frame, place = nav.frame_rect(), overview_geometry(nav.image_size, nav.size())
    assert frame.width() < place.width() / 2          # the yellow frame is the zoomed-in part, not the whole
    # a click in the overview centres the view on that image point (here: image pixel (900, 600))
    s = place.width() / nav.image_size[0]
    qtbot.mouseClick(nav, Qt.MouseButton.LeftButton, pos=QPoint(round(place.x() + 900 * s),
                                                                round(place.y() + 600 * s)))
    centre = window.viewer.visible_rect().center()
    assert abs(centre.x() - 900) < 2 / s and abs(centre.y() - 600) < 2 / s
    assert abs(window.viewer.visible_rect().width() - seen.width()) < 1      # the zoom is kept
    # dragging pans continuously
    qtbot.mousePress(nav, Qt.MouseButton.LeftButton, pos=QPoint(round(place.x() + 300 * s), round(place.y() + 200 * s)))
    qtbot.mouseMove(nav, QPoint(round(place.x() + 400 * s), round(place.y() + 250 * s)))
    qtbot.mouseRelease(nav, Qt.MouseButton.LeftButton, pos=QPoint(round(place.x() + 400 * s),
                                                                  round(place.y() + 250 * s)))
    centre = window.viewer.visible_rect().center()
    assert abs(centre.x() - 400) < 2 / s and abs(centre.y() - 250) < 2 / s
    # pixel readout under the navigator follows the mouse over the image (RGB 0-255 and EV)
    window._hovered(400.5, 250.5)
    assert window.nav_readout.text().startswith("x 400  y 250   R ") and "EV" in window.nav_readout.text()
    # Help lists every shortcut, the new ones too
    rows = dict(window.shortcut_rows())
    for what, keys in (("Side by Side", "Y"), ("Batch", "Ctrl+B"), ("Before / After", "B"), ("Fit", "Ctrl+0"),
                       ("Keyboard Shortcuts", "F1"), ("Hide All Panels", "Ctrl+Shift+H"), ("Clipping", "J")):
        assert keys in rows[what], (what, rows.get(what))
    assert "Navigator" in rows["Pan"]


def test_ghost_mask_of_a_bracket_with_motion(qtbot, window: MainWindow, shared_data: Path) -> None:
    scene = shared_data / "brackets" / "forth" / "AgiaGalini"   # branches moving in the wind, waves on the water
    window.strip.set_deghost("medium")
    window.open_bracket([scene], align=False)
    qtbot.waitUntil(lambda: window.loaded.paths == [scene], timeout=WAIT_MS)
    ghost = window.loaded.bracket.ghost
    assert ghost is not None and (ghost >= 0.5).mean() > 0.01     # motion was found
    assert window.strip.show_ghosts.isEnabled()
    window.strip.show_ghosts.setChecked(True)
    overlay = window.viewer.ghost_overlay
    assert overlay.isVisible() and overlay.image.shape[:2] == ghost.shape
    alpha = overlay.image[..., 3].astype(int)                      # red, alpha 150 × mask
    assert np.abs(alpha - ghost * 150).max() <= 1 and (overlay.image[..., 0] == 255).all()
    window.strip.show_ghosts.setChecked(False)
    assert not overlay.isVisible()
