"""Soak test of the editor under the Qt binding: thousands of Grid/Detail slider steps through the real window
(renders included) and 300 000 cheap Qt calls that return nothing, in a child process that must exit 0.

Why: PySide6-Essentials 6.12.0 on Python 3.10/3.11 drops a reference to `None` on every Qt call returning
nothing; after a few hundred thousand such calls the interpreter aborts with `Fatal Python error: none_dealloc`
(exit 134), or on quit with `bool_dealloc`. A crash like that kills pytest itself, so the work runs in a child
process and the test reads its exit status and its last line.

Run by hand (the Qt-only part needs nothing but PySide6, so it also runs under another interpreter):

    python tests/test_gui_soak.py qt 300000     # cheap Qt calls only
    python tests/test_gui_soak.py window 4000   # slider steps through the editor window, then the Qt calls
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

QT_CALLS = 300_000
SLIDER_STEPS = 4_000
SWEEP = 500          # slider steps per press of the handle; a full render follows each release
REPO = Path(__file__).resolve().parent.parent

# PySide6 releases known to crash on a given Python, with the reason (keep in step with pyproject.toml's bound).
KNOWN_BAD = (
    # (first bad, first good again or None, Python below which it is bad, reason)
    ((6, 12, 0), None, (3, 12), ("PySide6 6.12 drops a reference to None on every Qt call that returns nothing "
                                 "on Python < 3.12 (None is not immortal there): Fatal Python error: none_dealloc")),
)


def known_bad(version: tuple[int, ...], python: tuple[int, ...]) -> str | None:
    """The reason PySide6 `version` is known to crash on Python `python`, or None when it is not known to."""
    for first, fixed, below, reason in KNOWN_BAD:
        if tuple(version[:3]) >= first and (fixed is None or tuple(version[:3]) < fixed) and python[:2] < below:
            return reason
    return None


# -- the child process ----------------------------------------------------------------------------------------
def qt_calls(count: int) -> int:
    """`count` Qt calls that return nothing (QLabel.setText / setToolTip): each one the 6.12.0 bug leaks on."""
    from PySide6.QtWidgets import QApplication, QLabel

    app = QApplication.instance() or QApplication(sys.argv[:1])
    label = QLabel()
    for i in range(count // 2):
        label.setText("a" if i & 1 else "b")
        label.setToolTip("")
    app.processEvents()
    return 2 * (count // 2)


def window_steps(steps: int) -> tuple[int, int]:
    """Drag the Grid and Detail sliders `steps` times in the real editor on the demo bracket (previews while the
    handle is held, a full render after each release); returns (slider steps, renders shown)."""
    import tempfile

    import torch
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from lutfuse.app.main_window import MainWindow
    from lutfuse.app.settings import AppSettings
    from lutfuse.app.theme import apply_theme
    from lutfuse.core.fusion import Engine
    from lutfuse.core.paths import demo_frames

    torch.set_num_threads(1)   # the machine running the test suite is shared
    app = QApplication.instance() or QApplication(sys.argv[:1])
    apply_theme(app)
    tmp = tempfile.mkdtemp()
    win = MainWindow(AppSettings(Path(tmp) / "s.ini"), lambda: Engine(device="cpu"))
    win.show()
    shown = {"renders": 0, "full": 0}

    def on_shown(full: bool) -> None:
        shown["renders"] += 1
        shown["full"] += int(full)

    win.renderShown.connect(on_shown)
    win.errorShown.connect(lambda msg: (print(f"error: {msg}", file=sys.stderr), os._exit(3)))

    def wait(condition, timeout_s: float = 60.0) -> None:
        loop_timer = QTimer()
        loop_timer.setSingleShot(True)
        loop_timer.start(int(timeout_s * 1000))
        while not condition():
            if not loop_timer.isActive():
                raise TimeoutError("the editor did not render in time")
            app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)

    win.open_bracket(demo_frames(), align=False)
    wait(lambda: win.full_shown)
    done = 0
    sliders = (win.adjust.grid, win.adjust.detail)
    # grid sizes up to 33 only: every new size samples the LUT once (0.1-3 s for large ones), which would make
    # this test slow without exercising anything the smaller sizes do not
    ranges = ((win.adjust.grid.minimum(), 33), (win.adjust.detail.minimum(), win.adjust.detail.maximum()))
    for sweep in range(steps // SWEEP):
        slider = sliders[sweep % 2]
        slider.setSliderDown(True)    # the user holds the handle: previews
        lo, hi = ranges[sweep % 2]
        for i in range(SWEEP):
            slider.setValue(lo + (sweep * 37 + i * 7) % (hi - lo + 1))
            if i % 8 == 0:            # a hand moves faster than the renders: results arrive between moves
                app.processEvents()
            done += 1
        full_before = shown["full"]
        slider.setSliderDown(False)   # released: a full render follows
        wait(lambda before=full_before: shown["full"] > before)
    win.close()
    return done, shown["renders"]


def main(argv: list[str]) -> int:
    """`qt N` or `window N`: do the work and print one line saying how much was done."""
    mode, count = argv[0], int(argv[1])
    if mode == "window":
        steps, renders = window_steps(count)
        calls = qt_calls(QT_CALLS)
        print(f"SOAK OK steps={steps} renders={renders} qt_calls={calls}", flush=True)
    else:
        print(f"SOAK OK qt_calls={qt_calls(count)}", flush=True)
    return 0


# -- the tests ------------------------------------------------------------------------------------------------
def test_installed_pyside6_is_not_known_to_crash_on_this_python() -> None:
    import PySide6

    reason = known_bad(tuple(PySide6.__version_info__[:3]), sys.version_info[:2])
    assert reason is None, f"PySide6 {PySide6.__version__} on Python {sys.version.split()[0]}: {reason}"
    # the check itself knows the bad release
    assert known_bad((6, 12, 0), (3, 11)) and not known_bad((6, 12, 0), (3, 12)) and not known_bad((6, 11, 3),
                                                                                                     (3, 11))


def test_thousands_of_slider_steps_and_qt_calls_do_not_crash() -> None:
    import pytest

    pytest.importorskip("PySide6.QtWidgets")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONFAULTHANDLER="1")
    done = subprocess.run([sys.executable, __file__, "window", str(SLIDER_STEPS)], check=False, env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    tail = (done.stdout + done.stderr)[-3000:]
    assert done.returncode == 0, f"the editor process died (exit {done.returncode}):\n{tail}"
    last = done.stdout.strip().splitlines()[-1]
    fields = dict(kv.split("=") for kv in last.split()[2:])
    assert last.startswith("SOAK OK"), tail
    assert int(fields["steps"]) == SLIDER_STEPS and int(fields["qt_calls"]) == QT_CALLS
    assert int(fields["renders"]) >= SLIDER_STEPS // SWEEP   # at least the full render after each release


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
