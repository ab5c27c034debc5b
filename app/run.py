"""Start the editor: QApplication, theme, window, first bracket; optionally save a screenshot and quit."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from lutfuse.app.main_window import MainWindow
from lutfuse.app.settings import AppSettings
from lutfuse.app.theme import apply_theme
from lutfuse.core.paths import demo_frames

SCREENSHOT_TIMEOUT_S = 300


def initial_bracket(frames: Sequence[str | Path], settings: AppSettings) -> list[Path]:
    """What to open: the given frames, else the last bracket if it still exists, else the demo."""
    if frames:
        return [Path(f) for f in frames]
    last = [Path(p) for p in settings.last_bracket]
    if last and all(p.exists() for p in last):
        return last
    return demo_frames()


def save_screenshot(window: MainWindow, path: Path) -> None:
    """Grab the window into a PNG (written to a temp file and renamed, like every output)."""
    tmp = path.with_name(f".{path.name}.tmp.png")
    if not window.grab().save(str(tmp), "PNG"):
        raise OSError(f"{path}: could not write the screenshot")
    tmp.replace(path)


def run(frames: Sequence[str | Path] = (), screenshot: Path | None = None,
        settings: AppSettings | None = None, engine_factory: Callable[[], object] | None = None) -> int:
    """Run the editor until it closes (or, with `screenshot`, until the first full render is saved)."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("LUTFuse")
    app.setOrganizationName("LUTFuse")
    apply_theme(app)
    window = MainWindow(settings or AppSettings(), engine_factory)
    window.show()
    status = {"code": 0}
    quit_on_close = app.quitOnLastWindowClosed()
    timer = QTimer()
    if screenshot is not None:
        # Closing the window must not post a Quit event that arrives after exec() has returned: a quit with no
        # event loop running leaves the application "quitting", and every later event loop in this process
        # (another window, a test) returns at once without delivering the workers' results.
        app.setQuitOnLastWindowClosed(False)

        def shoot(full: bool) -> None:
            if not full:
                return
            window.renderShown.disconnect(shoot)
            # let the view repaint the new pixels before grabbing
            QTimer.singleShot(300, lambda: finish(0))

        def finish(code: int) -> None:
            timer.stop()   # a timeout firing after the run would quit an event loop that is not this one
            if code == 0:
                try:
                    save_screenshot(window, Path(screenshot))
                    print(f"wrote {screenshot}")
                except OSError as exc:
                    print(f"lutfuse gui: error: {exc}", file=sys.stderr)
                    code = 1
            status["code"] = code
            window.close()
            app.exit(code)

        def failed(message: str) -> None:
            if window.loaded is None:  # nothing will ever render
                print(f"lutfuse gui: error: {message}", file=sys.stderr)
                finish(1)

        def timeout() -> None:
            print(f"lutfuse gui: error: no render after {SCREENSHOT_TIMEOUT_S} s", file=sys.stderr)
            finish(1)

        window.renderShown.connect(shoot)
        window.errorShown.connect(failed)
        timer.setSingleShot(True)
        timer.timeout.connect(timeout)
        timer.start(SCREENSHOT_TIMEOUT_S * 1000)
    window.open_bracket(initial_bracket(frames, window.settings))
    code = app.exec()
    timer.stop()
    app.setQuitOnLastWindowClosed(quit_on_close)
    return status["code"] if screenshot is not None else int(code)
