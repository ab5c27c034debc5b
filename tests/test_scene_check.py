"""core.scene_check on real brackets: a good bracket passes, a duplicated frame and a frame of another scene are
named, exposure differences alone never warn."""

from __future__ import annotations

import numpy as np

from lutfuse.core.bracket import load_bracket
from lutfuse.core.paths import demo_frames
from lutfuse.core.scene_check import (
    STRUCTURE_MIN,
    bracket_warnings,
    structure_correlation,
)


def names(bracket) -> list[str]:
    return [f.path.name for f in bracket.frames]


def test_real_brackets_raise_no_warning(shared_data) -> None:
    for seq in ("deepfuse/Seq_11", "deepfuse/Seq_74", "forth/Cafe"):
        bracket = load_bracket([shared_data / "brackets" / seq], align=False)
        assert bracket_warnings(bracket.images, names(bracket)) == [], seq


def test_demo_passes_and_a_duplicated_frame_is_named() -> None:
    bracket = load_bracket(demo_frames(), align=False)
    images = bracket.images
    assert bracket_warnings(images, names(bracket)) == []
    doubled = np.stack([images[0], images[1], images[1].copy()])
    warnings = bracket_warnings(doubled, ["a.jpg", "b.jpg", "c.jpg"])
    assert len(warnings) == 1 and "c.jpg" in warnings[0] and "b.jpg" in warnings[0] and "same pixels" in warnings[0]


def test_a_frame_of_another_scene_is_named(shared_data) -> None:
    one = load_bracket([shared_data / "brackets" / "deepfuse" / "Seq_11"], align=False)
    other = load_bracket([shared_data / "brackets" / "deepfuse" / "Seq_14"], align=False)
    assert one.images.shape == other.images.shape
    mixed = np.stack([one.images[0], other.images[1], one.images[2]])
    warnings = bracket_warnings(mixed, ["under.jpg", "stranger.jpg", "over.jpg"])
    assert warnings and all("stranger.jpg" in w and "same scene" in w for w in warnings)
    # the same frames in their own bracket correlate well above the threshold, exposure notwithstanding
    assert structure_correlation(one.images[0], one.images[2]) > STRUCTURE_MIN + 0.1
    assert structure_correlation(one.images[0], other.images[1]) < STRUCTURE_MIN


def test_a_flat_or_clipped_pair_is_not_judged() -> None:
    black = np.zeros((64, 96, 3), np.float32)
    white = np.ones((64, 96, 3), np.float32)
    assert structure_correlation(black, white) is None
    assert bracket_warnings(np.stack([black, white]), ["a", "b"]) == []


def test_fuse_prints_the_warnings_even_when_registration_bends_the_stranger(shared_data, tmp_path, capsys) -> None:
    """`lutfuse fuse` on a folder with a duplicated frame and on one with a frame of another scene: one line each
    on stderr, and the file is written (the user may mean it). Registered (the default), the stranger frame is
    warped towards the others; the check judges the frames as shot."""
    import shutil

    from lutfuse.core.cli import main
    from lutfuse.core.scene_check import scene_warnings

    seq = shared_data / "brackets" / "deepfuse"
    dup, mixed = tmp_path / "dup", tmp_path / "mixed"
    for folder, sources in ((dup, ("Seq_11/00.jpg", "Seq_11/01.jpg", "Seq_11/01.jpg")),
                            (mixed, ("Seq_11/00.jpg", "Seq_14/01.jpg", "Seq_11/02.jpg"))):
        folder.mkdir()
        for name, source in zip(("a.jpg", "b.jpg", "c.jpg"), sources):
            shutil.copy(seq / source, folder / name)
    assert main(["fuse", str(dup), "-o", str(tmp_path / "dup.jpg"), "--align", "off"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert [line for line in err if "same pixels" in line] == [
        f"lutfuse fuse: note: {dup / 'c.jpg'}: holds the same pixels as {dup / 'b.jpg'} (the same frame twice?)"]
    assert main(["fuse", str(mixed), "-o", str(tmp_path / "mixed.jpg")]) == 0
    err = capsys.readouterr().err.splitlines()
    warned = [line for line in err if line.startswith("lutfuse fuse: warning: ")]
    assert len(warned) == 1 and "b.jpg does not look like the same scene" in warned[0]
    assert (tmp_path / "mixed.jpg").is_file()
    # real brackets, registered: no warning
    # (all 67 real brackets of ../shared/data, registered, gave none; one here)
    assert scene_warnings(load_bracket([shared_data / "brackets" / "deepfuse" / "Seq_74"], align="auto")) == []
