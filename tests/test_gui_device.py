"""View → Render Device: the editor switches its engine in the background without losing the open bracket, keeps
the choice, names the device in the status bar, and disables the devices this machine lacks (with the reason)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("pytestqt")
from lutfuse.app.main_window import MainWindow  # noqa: E402
from lutfuse.app.settings import AppSettings  # noqa: E402
from lutfuse.core.device import describe, unavailable  # noqa: E402
from lutfuse.core.paths import demo_frames  # noqa: E402

WAIT_MS = 120_000  # two CPU cores shared with other test runs


def test_describe_counts_threads_in_words() -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert describe(torch.device("cpu")) == "CPU (1 thread)"
        torch.set_num_threads(2)
        assert describe(torch.device("cpu")) == "CPU (2 threads)"
    finally:
        torch.set_num_threads(before)


def test_unavailable_names_the_reason() -> None:
    assert unavailable("auto") is None and unavailable("cpu") is None
    assert (unavailable("cuda") is None) == torch.cuda.is_available()
    if not torch.cuda.is_available():
        assert "CUDA" in unavailable("cuda")  # type: ignore[operator]
    assert "tpu" in unavailable("tpu")  # type: ignore[operator]


def test_switching_the_render_device_keeps_the_bracket(qtbot, tmp_path: Path) -> None:
    from lutfuse.core.fusion import DEFAULT_WEIGHTS

    if not DEFAULT_WEIGHTS.is_file():
        pytest.skip("the real engine needs the shipped LUT student weights")
    settings = AppSettings(tmp_path / "settings.ini")
    win = MainWindow(settings)             # the real engine factory: the device comes from the preference
    qtbot.addWidget(win)
    win.show()
    menu_texts = [a.text() for a in win.device_actions.values()]
    assert menu_texts[0].startswith("&Auto") and win.device_actions["auto"].isChecked()
    for device in ("cuda", "mps"):
        action = win.device_actions[device]
        assert action.isEnabled() == (unavailable(device) is None)
        if not action.isEnabled():
            assert action.toolTip() == unavailable(device)
    win.open_bracket(demo_frames(), align=False)
    qtbot.waitUntil(lambda: win.full_shown, timeout=WAIT_MS)
    win.adjust.set_values(9, 0.5)       # an edit that must survive the switch
    win.request_render(True)
    qtbot.waitUntil(lambda: win.host.coalescer.running is None, timeout=WAIT_MS)
    old_engine, old_prepared, old_loaded = win.host.engine, win.host.current.prepared, win.loaded
    win.full_shown = False

    with qtbot.waitSignal(win.host.engine_changed, timeout=WAIT_MS):
        win.device_actions["cpu"].trigger()
    assert win.host.engine is not old_engine and win.host.engine.device.type == "cpu"
    assert win.host.current.prepared is not old_prepared
    assert win.host.current.prepared._engine is win.host.engine
    assert win.loaded.paths == old_loaded.paths and win.loaded.bracket is old_loaded.bracket
    assert (win.grid, win.detail) == (9, 0.5)
    assert win.device_actions["cpu"].isChecked() and settings.device == "cpu"
    assert AppSettings(tmp_path / "settings.ini").device == "cpu"    # remembered for the next launch
    assert win.device_label.text() == describe(torch.device("cpu"))
    from lutfuse.app.batch_panel import batch_settings

    assert batch_settings(win.batch_settings()).device == "cpu"      # the editor's batch renders there too
    qtbot.waitUntil(lambda: win.full_shown, timeout=WAIT_MS)          # the new engine renders the bracket
    # the new engine's render is the old one's (same device, same weights): nothing of the bracket was lost
    again = win.host.engine.render(win.host.current.prepared, 9, 0.5)
    before = old_engine.render(old_prepared, 9, 0.5)
    np.testing.assert_allclose(again, before, atol=1 / 255)


def test_a_device_that_cannot_start_leaves_the_old_engine(qtbot, tmp_path: Path) -> None:
    settings = AppSettings(tmp_path / "settings.ini")
    win = MainWindow(settings)
    qtbot.addWidget(win)
    errors: list[str] = []
    win.errorShown.connect(errors.append)
    if unavailable("cuda") is None:
        pytest.skip("this machine has CUDA: no device to fail on")
    win.set_device("cuda")              # what a stale preference or a vanished GPU does
    qtbot.waitUntil(lambda: bool(errors), timeout=WAIT_MS)
    assert "cuda" in errors[0].lower() and settings.device == "auto"
    assert win.device_actions["auto"].isChecked()


def test_a_switch_asked_for_during_a_load_ends_on_the_new_engine(qtbot, tmp_path: Path) -> None:
    from lutfuse.core.fusion import DEFAULT_WEIGHTS

    if not DEFAULT_WEIGHTS.is_file():
        pytest.skip("the real engine needs the shipped LUT student weights")
    win = MainWindow(AppSettings(tmp_path / "settings.ini"))
    qtbot.addWidget(win)
    win.show()
    win.open_bracket(demo_frames(), align=False)   # the load runs (on the engine made for "auto") ...
    win.set_device("cpu")                          # ... when the user picks another device
    qtbot.waitUntil(lambda: win.loaded is not None and win.host.current is not None
                    and win.host.current.prepared._engine is win.host.engine and win.full_shown, timeout=WAIT_MS)
    assert win.host.engine.device.type == "cpu" and win.loaded.prepared is win.host.current.prepared
