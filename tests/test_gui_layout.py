"""The editor fits the screen it opens on: a 1366×768 laptop and a 2560×1440 monitor (offscreen screens of that
size in a child process), panels that hide, collapse and come back, and full screen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")
from PySide6.QtCore import QRect, QSize

from lutfuse.app.main_window import MainWindow, default_window_size
from lutfuse.app.settings import AppSettings

REPO = Path(__file__).resolve().parent.parent

PROBE = """
import json
from pathlib import Path
import sys
from PySide6.QtWidgets import QApplication
app = QApplication([])
from lutfuse.app.theme import apply_theme
from lutfuse.app.main_window import MainWindow
from lutfuse.app.settings import AppSettings
apply_theme(app)
win = MainWindow(AppSettings(Path(sys.argv[1])))
win.show()
app.processEvents()
avail = win.screen().availableGeometry()
docks = {n: (d.isVisible(), d.toggleViewAction().isEnabled()) for n, d in win.docks.items()}
print(json.dumps({"screen": [avail.width(), avail.height()], "size": [win.width(), win.height()],
                  "min": [win.minimumSizeHint().width(), win.minimumSizeHint().height()],
                  "tabbed": win.tabifiedDockWidgets(win.docks["adjust"]) == [win.docks["lut"]], "docks": docks}))
"""


def probe(tmp_path: Path, width: int, height: int) -> dict:
    """Open the editor (no bracket) on an offscreen screen of width×height and report its geometry."""
    config = tmp_path / f"screen{width}.json"
    config.write_text(json.dumps({"screens": [{"name": "s", "x": 0, "y": 0, "width": width, "height": height,
                                               "logicalDpi": 96, "logicalBaseDpi": 96, "dpr": 1}]}))
    env = dict(os.environ, QT_QPA_PLATFORM=f"offscreen:configfile={config}")
    done = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / f"s{width}.ini")], check=False, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_default_size_follows_the_screen() -> None:
    assert default_window_size(QRect(0, 0, 1366, 740)) == QSize(1366, 740)       # a laptop: fill it
    assert default_window_size(QRect(0, 0, 2560, 1400)) == QSize(2176, 1190)     # a monitor: 85 %
    assert default_window_size(QRect(0, 0, 1920, 1050)) == QSize(1632, 892)


def test_fits_a_1366x768_laptop(tmp_path: Path) -> None:
    got = probe(tmp_path, 1366, 768)
    assert got["size"] == [1366, 768]
    assert got["min"][1] <= 700 and got["min"][0] <= 1366   # the whole window fits with room to spare
    assert got["tabbed"]                                      # Adjust and LUT share the height as tabs
    assert all(enabled for _visible, enabled in got["docks"].values())


def test_a_large_monitor_gets_a_large_window(tmp_path: Path) -> None:
    got = probe(tmp_path, 2560, 1440)
    assert got["size"] == [2176, 1224] and not got["tabbed"]
    assert all(visible and enabled for visible, enabled in got["docks"].values())


def test_view_menu_hides_and_shows_panels_and_full_screen(qtbot, tmp_path: Path) -> None:
    win = MainWindow(AppSettings(tmp_path / "s.ini"))
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    for name, dock in win.docks.items():
        toggle = dock.toggleViewAction()
        assert toggle.isEnabled() and dock.isVisible()
        toggle.trigger()
        assert not dock.isVisible(), name
        toggle.trigger()
        assert dock.isVisible(), name
    win.panels_action.trigger()                     # Ctrl+Shift+H: all panels away, the image alone
    assert not any(d.isVisible() for d in win.docks.values())
    win.panels_action.trigger()
    assert all(d.isVisible() for d in win.docks.values())
    win.fullscreen_action.trigger()                 # F11
    qtbot.waitUntil(win.isFullScreen, timeout=5000)
    win.fullscreen_action.trigger()
    qtbot.waitUntil(lambda: not win.isFullScreen(), timeout=5000)


def test_sections_collapse_and_give_their_height_back(qtbot, tmp_path: Path) -> None:
    win = MainWindow(AppSettings(tmp_path / "s.ini"))
    qtbot.addWidget(win)
    win.show()
    section = win.sections["histogram"]
    tall = section.sizeHint().height()
    section.header.click()
    assert not section.expanded and not win.histogram.isVisible()
    assert section.sizeHint().height() < tall - 50
    section.header.click()
    assert section.expanded and win.histogram.isVisible()
