"""The batch panel (pytest-qt, offscreen) on real frames: a folder of brackets grouped and listed, fused in the
background with the editor's settings (the same file `core.pipeline.fuse_files` writes), results beside the
originals, a broken bracket reported in one line while the others go on, Cancel, and no silent overwrite."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("pytestqt")
from test_batch import SIZE, corrupt, hdrps_frames, write_frame

from lutfuse.app.batch_panel import BatchDialog, batch_settings
from lutfuse.core.pipeline import fuse_files

WAIT_MS = 120_000
EDITOR = {"grid": 17, "detail": 0.5, "exposure": 0.5, "align": "off", "deghost": "off"}


def shoot(root: Path, shared_data: Path) -> list[Path]:
    """Three bracket folders: two real hdrps scenes (3 frames, 2 stops apart) and one with a corrupt frame."""
    folders = []
    for name, scene in (("a_lounge", "Ahwahnee_Great_Lounge"), ("b_bigfoot", "Bigfoot_Pass"),
                        ("c_broken", "Ben_Jerry_s")):
        folder = root / name
        folder.mkdir(parents=True)
        for k, rgb in enumerate(hdrps_frames(shared_data, scene, [2, 4, 6])):
            write_frame(folder / f"{name}_{k}.jpg", rgb, when=None, exposure_s=None)
        folders.append(folder)
    corrupt(root / "c_broken" / "c_broken_1.jpg")
    return folders


def statuses(dialog: BatchDialog) -> list[str]:
    return [dialog.tree.topLevelItem(i).text(4) for i in range(dialog.tree.topLevelItemCount())]


def test_batch_panel_groups_fuses_and_reports(qtbot, tmp_path: Path, shared_data: Path) -> None:
    folders = shoot(tmp_path / "shoot", shared_data)
    dialog = BatchDialog(None, lambda: dict(EDITOR), str(tmp_path / "shoot"))
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.group.setCurrentText("folder")
    with qtbot.waitSignal(dialog.runEnded, timeout=WAIT_MS):
        dialog.scan()
    assert dialog.tree.topLevelItemCount() == 3
    row = dialog.tree.topLevelItem(0)
    assert row.text(0) == "1. a_lounge: a_lounge_0.jpg … a_lounge_2.jpg"
    assert row.text(1) == "3" and row.text(2).count("EV") == 3
    assert row.text(3) == "a_lounge_lut.jpg" and not row.icon(0).isNull()          # thumbnail
    outputs = [item.output for item in dialog.items]
    assert outputs == [f / f"{f.name}_lut.jpg" for f in folders]                     # beside the originals
    assert "grid 17" in dialog.summary.text()

    # Cancel at once: nothing is written
    with qtbot.waitSignal(dialog.runEnded, timeout=WAIT_MS):
        dialog.process()
        dialog.cancel()
    assert set(statuses(dialog)) == {"cancelled"} and not any(p.exists() for p in outputs)

    # the run: two fused, the broken bracket says why in one line, the others go on
    with qtbot.waitSignal(dialog.runEnded, timeout=WAIT_MS):
        dialog.process()
    done = statuses(dialog)
    assert done[:2] == ["done", "done"], done
    assert done[2].startswith("failed: c_broken_1.jpg: ") and "\n" not in done[2]
    assert str(folders[2] / "c_broken_1.jpg") in dialog.tree.topLevelItem(2).toolTip(4)
    assert outputs[0].exists() and outputs[1].exists() and not outputs[2].exists()
    assert dialog.progress.value() == 1000 and dialog.summary.text() == "2 done, 1 failed"
    # with the editor's settings: the same file lutfuse fuse / batch write with them
    reference = fuse_files(dialog.items[0].frames, tmp_path / "ref.jpg", batch_settings(EDITOR))
    written, expected = (cv2.imread(str(p)).astype(int) for p in (outputs[0], reference.output))
    assert written.shape == (SIZE[1], SIZE[0], 3) and np.abs(written - expected).max() <= 1

    # again: a new scan does not take the results for frames, and existing results are not replaced unless asked
    with qtbot.waitSignal(dialog.runEnded, timeout=WAIT_MS):
        dialog.scan()
    assert [len(item.frames) for item in dialog.items] == [3, 3, 3]
    assert "2 frame(s) in no bracket" in dialog.summary.text()
    stamp = outputs[0].stat().st_mtime_ns
    with qtbot.waitSignal(dialog.runEnded, timeout=WAIT_MS):
        dialog.process()
    assert statuses(dialog)[:2] == ["skipped: a_lounge_lut.jpg exists", "skipped: b_bigfoot_lut.jpg exists"]
    assert outputs[0].stat().st_mtime_ns == stamp
