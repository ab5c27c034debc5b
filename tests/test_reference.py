"""The reference frame choice (`load_bracket(reference=...)`, `Bracket.reference_index`, `lutfuse fuse
--reference N`): registration, deghosting and the fill of uncovered pixels all follow the chosen frame, on real
frames moved by known homographies."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import corner_error, move

from lutfuse.core.bracket import Bracket, load_bracket, load_image, register_stack
from lutfuse.core.errors import BracketError

pytestmark = pytest.mark.shared_data


def _similarity(w: int, h: int, angle: float, dx: float, dy: float) -> np.ndarray:
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1.0)
    m[:, 2] += (dx, dy)
    return np.vstack([m, [0, 0, 1]])


@pytest.fixture(scope="module")
def moved_bracket(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], list[np.ndarray]]:
    """Cemetery_Tree_1 frames 2, 4, 6 (2 stops apart) as PNG files: the darkest as shot, the other two moved by
    known frame->darkest homographies, so that only the darkest frame as reference gives identities."""
    folder = tmp_path_factory.mktemp("reference")
    src = [load_image(shared_data / "brackets" / "hdrps" / "Cemetery_Tree_1" / f"{i:02d}.png")[0] for i in (2, 4, 6)]
    h, w = src[0].shape[:2]
    truths = [np.eye(3), _similarity(w, h, 0.8, 6.0, -4.0), _similarity(w, h, -0.6, -5.0, 3.0)]
    paths = []
    for i, (frame, truth) in enumerate(zip(src, truths)):
        path = folder / f"{i}.png"
        cv2.imwrite(str(path), np.clip(move(frame, truth)[..., ::-1] * 255 + 0.5, 0, 255).astype(np.uint8))
        paths.append(str(path))
    return paths, truths


def test_the_darkest_frame_as_reference_stays_put_and_the_others_register_to_it(moved_bracket) -> None:
    paths, truths = moved_bracket
    default = load_bracket(paths, align="auto")
    assert default.reference_index == 1 and default.reference() is default.frames[1]
    first = load_bracket(paths, align="auto", reference=0)
    assert first.reference_index == 0
    h, w = first.frames[0].image.shape[:2]
    recs = first.registration
    assert recs[0].model == "reference" and not recs[0].applied
    for rec, truth in zip(recs[1:], truths[1:]):
        assert rec.applied and corner_error(rec.matrix, truth, w, h) < 0.5, rec.describe()
    # the reference frame's pixels are the file's own, bit for bit; with the middle reference they are not
    np.testing.assert_array_equal(first.images[0], load_image(paths[0])[0])
    assert default.registration[0].applied
    assert not np.array_equal(default.images[0], load_image(paths[0])[0])
    # each reference leaves its own frame valid everywhere; the warped frames lose a border
    assert first.frames[0].valid is None and first.frames[2].valid is not None
    assert default.frames[1].valid is None and default.frames[0].valid is not None
    # the cropped bracket keeps its reference
    assert first.cropped(10, 10, w - 10, h - 10).reference_index == 0


def test_uncovered_pixels_are_filled_from_the_chosen_reference(moved_bracket) -> None:
    paths, _ = moved_bracket
    stack = np.stack([load_image(p)[0] for p in paths])
    results = {}
    for reference in (0, 2):
        work = stack.copy()
        # the frame 1 has no data in a strip: after registration it is filled from the reference first
        own = np.ones(stack.shape[:3], bool)
        own[1, :, :40] = False
        work[1, :, :40] = 0.0
        records, valid, _ = register_stack(work, own, "auto", "off", reference)
        assert records[reference].model == "reference"
        assert valid is not None and valid[reference].all()  # the reference keeps its data
        results[reference] = work[1]
    # different references, different fill and geometry: the choice reaches the fill
    assert np.abs(results[0] - results[2]).mean() > 0.01


def test_deghosting_takes_moved_content_from_the_chosen_reference(shared_data: Path) -> None:
    src = np.stack([load_image(shared_data / "brackets" / "hdrps" / "Cades_Cove" / f"{i:02d}.png")[0]
                    for i in (1, 4, 7)])
    box = (60, 200, 160, 280)
    moving = src.copy()
    moving[1, box[1]:box[3], box[0]:box[2]] = src[1, 100:180, 300:400]  # trees pasted in the middle frame only
    region = (slice(box[1] + 8, box[3] - 8), slice(box[0] + 8, box[2] - 8))
    for reference, expect_changed in ((0, True), (1, False)):
        work = moving.copy()
        _, _, ghost = register_stack(work, None, "off", "high", reference)
        assert ghost is not None and (ghost[region] >= 0.5).mean() > 0.9
        core = ghost >= 0.99
        # with the darkest frame as reference the pasted trees are replaced in the middle frame (and the others
        # keep the static meadow); with the middle frame as reference they are kept and spread to the others
        middle_kept = np.abs(work[1][core] - moving[1][core]).mean() < 0.01
        assert middle_kept != expect_changed
        others_static = np.abs(work[2][core] - src[2][core]).mean() < 0.02
        assert others_static == expect_changed


def test_from_images_takes_a_reference_and_checks_it(shared_data: Path) -> None:
    src = [load_image(shared_data / "brackets" / "hdrps" / "Cades_Cove" / f"{i:02d}.png")[0] for i in (1, 4, 7)]
    assert Bracket.from_images(src).reference_index == 1
    assert Bracket.from_images(src, reference=2).reference_index == 2
    with pytest.raises(BracketError, match="3 frames"):
        Bracket.from_images(src, reference=3)


def test_fuse_reference_option(moved_bracket, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from lutfuse.core.cli import main
    from lutfuse.core.commands.fuse import setting_actions

    assert "reference" in [a.dest for a in setting_actions()]  # a fuse setting: batch and presets get it
    paths, truths = moved_bracket
    out, doc = tmp_path / "out.png", tmp_path / "t.json"
    assert main(["fuse", *paths, "-o", str(out), "--method", "mertens", "--reference", "1",
                 "--transforms", str(doc)]) == 0
    frames = json.loads(doc.read_text())["frames"]
    assert frames[0]["model"] == "reference" and frames[0]["homography"] == np.eye(3).tolist()
    h, w = cv2.imread(paths[0]).shape[:2]
    for frame, truth in zip(frames[1:], truths[1:]):
        assert frame["applied"] and corner_error(np.array(frame["homography"]), truth, w, h) < 0.5
    for bad in ("0", "4", "-1"):
        capsys.readouterr()
        assert main(["fuse", *paths, "-o", str(tmp_path / "bad.png"), "--reference", bad]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"--reference {bad}" in err[0] and "1-3" in err[0]
    assert not (tmp_path / "bad.png").exists()
