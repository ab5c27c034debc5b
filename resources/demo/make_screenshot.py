"""Make resources/screenshot.png for the README: the editor on the demo bracket, G=33, before/after split.

    QT_QPA_PLATFORM=offscreen python3 resources/demo/make_screenshot.py

Needs the shipped LUT student (resources/weights/lut_student.pt). Colours are posterised to 6 bits per channel
so the PNG stays under 500 KB.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication

from lutfuse.app.main_window import MainWindow
from lutfuse.app.settings import AppSettings
from lutfuse.app.theme import apply_theme
from lutfuse.core.paths import RESOURCES, demo_frames


def main() -> int:
    """Render the window once the full render is on screen, posterise and write the PNG."""
    out = RESOURCES / "screenshot.png"
    app = QApplication(sys.argv[:1])
    apply_theme(app)
    with tempfile.TemporaryDirectory() as tmp:
        window = MainWindow(AppSettings(Path(tmp) / "settings.ini"))   # never the user's settings
        window.resize(1440, 900)   # the README's size, whatever screen this runs on
        # the LUT panel below Adjust, as on a screen of that size (a small offscreen screen tabs them)
        window.removeDockWidget(window.docks["lut"])
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, window.docks["lut"])
        window.docks["lut"].show()
        window.resizeDocks([window.docks["adjust"], window.docks["lut"]], [420, 420], Qt.Orientation.Vertical)
        window.show()
        grabbed: dict[str, np.ndarray] = {}

        def shoot(full: bool) -> None:
            if full and "image" not in grabbed:
                window.viewer.set_split(True)
                window.viewer.divider.setValue(430)
                QTimer.singleShot(400, grab)

        def grab() -> None:
            path = Path(tmp) / "raw.png"
            window.grab().save(str(path))
            grabbed["image"] = cv2.imread(str(path))
            app.exit(0)

        window.renderShown.connect(shoot)
        window.errorShown.connect(lambda msg: (print(msg, file=sys.stderr), app.exit(1)))
        window.open_bracket(demo_frames(), align=True)
        if app.exec() != 0 or "image" not in grabbed:
            return 1
        window.close()
    image = grabbed["image"] // 4 * 4 + 2   # 6 bits per channel: a third smaller PNG, no visible banding here
    cv2.imwrite(str(out), image.astype(np.uint8), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
