"""Training data: the committed split by scene, input picks, HDR rendering, scenes, crops, validation cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lutfuse.core.classical import mertens
from lutfuse.core.train import data


def test_committed_split_is_by_scene_and_reproducible(shared_data: Path) -> None:
    split = data.load_split()
    assert data.make_split(data.scene_keys(shared_data)) == split
    assert not set(split["train"]) & set(split["val"])
    sources = {k.rsplit("/", 1)[0] for k in split["train"] + split["val"]}
    assert sources == {"hdrps", "forth", "deepfuse", "hdr/openexr", "hdr/blender"}
    for source in sources:   # every source is represented in validation
        assert any(k.rsplit("/", 1)[0] == source for k in split["val"])
    assert 0.15 < len(split["val"]) / (len(split["train"]) + len(split["val"])) < 0.3


def test_pick_inputs() -> None:
    assert data.pick_inputs(9, 2) == [0, 8]
    assert data.pick_inputs(9, 3) == [0, 4, 8]
    assert data.pick_inputs(3, 3) == [0, 1, 2]
    assert data.pick_inputs(3, 2) == [0, 2]
    assert data.pick_inputs(2, 3) == [0, 1]          # no frame between: k drops to 2
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        lo, mid, hi = data.pick_inputs(9, 3, rng)
        assert 0 <= lo <= 2 and 6 <= hi <= 8 and lo < mid < hi
        seen.add((lo, hi))
    assert len(seen) == 9
    with pytest.raises(ValueError):
        data.pick_inputs(1, 2)


def test_render_bracket_is_a_quantised_rising_exposure_series() -> None:
    rng = np.random.default_rng(1)
    radiance = np.exp(rng.normal(-2, 2, (32, 48, 3))).astype(np.float32)
    frames = data.render_bracket(radiance, [-4.0, -2.0, 0.0, 2.0], rng)
    assert frames.shape == (4, 32, 48, 3) and frames.dtype == np.float32
    assert frames.min() >= 0 and frames.max() <= 1
    np.testing.assert_allclose(frames * 255, np.round(frames * 255), atol=1e-4)
    assert (np.diff(frames.mean(axis=(1, 2, 3))) > 0).all()
    assert (frames[-1] == 1.0).mean() > (frames[0] == 1.0).mean()     # the bright frame clips more


def test_real_and_rendered_scenes(shared_data: Path, tmp_path: Path) -> None:
    real = data.load_scene(shared_data, "hdrps/Bigfoot_Pass", max_side=96, cache_dir=tmp_path)
    assert real.frames.shape[0] == 9 and max(real.frames.shape[1:3]) == 96
    assert (np.diff(real.frames.mean(axis=(1, 2, 3))) > 0).all()     # darkest first
    np.testing.assert_allclose(real.reference, mertens(real.frames), atol=1e-5)
    cached = data.load_scene(shared_data, "hdrps/Bigfoot_Pass", max_side=96, cache_dir=tmp_path)
    np.testing.assert_array_equal(cached.frames, real.frames)
    hdr = data.load_scene(shared_data, "hdr/blender/forest", max_side=96)
    again = data.load_scene(shared_data, "hdr/blender/forest", max_side=96)
    other = data.load_scene(shared_data, "hdr/blender/forest", variant=1, max_side=96)
    assert 5 <= len(hdr.frames) <= 9 and (np.diff(hdr.frames.mean(axis=(1, 2, 3))) > 0).all()
    np.testing.assert_array_equal(hdr.frames, again.frames)             # rendering is seeded by the key
    assert other.key.endswith("#1") and not np.array_equal(other.frames[0], hdr.frames[0])


def test_dataset_items_and_validation_cases(shared_data: Path) -> None:
    scenes = [data.load_scene(shared_data, k, max_side=96) for k in ("hdrps/Bigfoot_Pass", "deepfuse/Seq_15")]
    ds = data.FusionDataset(scenes, crop=48, seed=3)
    assert len(ds) == 100
    ks = set()
    for i in range(20):
        item = ds[i]
        k = item["k"]
        ks.add(k)
        assert item["inputs"].shape == (k, 3, 48, 48)
        assert item["reference"].shape == item["middle"].shape == (3, 48, 48)
        assert (item["inputs"].mean(dim=(1, 2, 3)).diff() > 0).all()
    assert ks == {2, 3}
    # extra whole-scene planes are cropped and flipped exactly as the frames are
    ds = data.FusionDataset(scenes, crop=48, seed=3,
                            extras=lambda s, idx: {"copy": scenes[s].frames[idx[-1]] * 0.5})
    for i in range(8):
        item = ds[i]
        np.testing.assert_allclose(item["copy"].numpy(), item["inputs"][-1].numpy() * 0.5, atol=1e-7)
    cases = data.validation_cases(shared_data, max_side=48)
    assert len(cases) == 2 * len(data.load_split()["val"])
    assert all(c["key"] in data.load_split()["val"] for c in cases)
    assert [len(c["inputs"]) for c in cases[:2]] == [2, 3]
