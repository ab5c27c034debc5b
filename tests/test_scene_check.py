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
