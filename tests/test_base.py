"""core.base (the image the LUT applies to) and the colour measures of core.metrics, on rendered data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import expose, render_scene

from lutfuse.core import base as basemod
from lutfuse.core.adjust import Look, apply_look
from lutfuse.core.detail import add_detail
from lutfuse.core.metrics import chroma, chroma_ratio, median_ciede2000, well_exposed


def colourful_scene(height: int = 64, width: int = 96) -> np.ndarray:
    """A radiance map of saturated patches over a bright sky: what a blown frame washes out."""
    y, x = np.mgrid[0:height, 0:width]
    rad = np.full((height, width, 3), 6.0, np.float32) * np.array([0.7, 0.85, 1.0], np.float32)
    patches = [(np.array([0.9, 0.1, 0.05]), 0), (np.array([0.1, 0.7, 0.1]), 1), (np.array([0.1, 0.2, 0.9]), 2)]
    for colour, i in patches:
        box = (y > height // 2) & (x >= i * width // 3) & (x < (i + 1) * width // 3)
        rad[box] = colour * 0.6
    return rad


def test_chroma_ratio_on_rendered_data() -> None:
    image = np.stack([expose(render_scene(), ev) for ev in (-1.0,)])[0].astype(np.float32)
    assert chroma_ratio(image, image) == pytest.approx(1.0)
    half = apply_look(image, Look(saturation=-50))
    assert 0.4 < chroma_ratio(half, image) < 0.6
    assert chroma_ratio(apply_look(image, Look(saturation=-100)), image) < 0.02
    assert chroma_ratio(apply_look(image, Look(saturation=40)), image) > 1.2
    assert median_ciede2000(image, image) == 0.0
    assert median_ciede2000(half, image) > 1.0


def test_well_exposed_leaves_out_black_and_white() -> None:
    img = np.zeros((2, 2, 3))
    img[0, 1] = 0.5
    img[1, 0] = 1.0
    assert well_exposed(img).tolist() == [[False, True], [False, False]]


def test_weights_are_smooth_normalised_and_favour_the_well_exposed_frame() -> None:
    frames = np.stack([expose(colourful_scene(), ev) for ev in (-3.0, 0.0)]).astype(np.float32)
    w = basemod.frame_weights(frames)
    assert w.shape == (2, 21, 32)
    np.testing.assert_allclose(w.sum(axis=0), 1.0, atol=1e-5)
    # in the sky (top) the dark frame is the well-exposed one; in the patches (bottom) the bright one
    assert w[0, 2, 16] > 0.6 and w[1, -3, 16] > 0.6


@pytest.mark.parametrize("kind", basemod.BASES)
def test_bases_range_shape_and_determinism(kind: str) -> None:
    frames = np.stack([expose(render_scene(), ev) for ev in (-3.0, -1.0, 1.0)]).astype(np.float32)
    def curve(x: np.ndarray) -> np.ndarray:
        return np.sqrt(x)

    b = basemod.make_base(frames, kind, lut_apply=curve)
    assert b.shape == frames.shape[1:] and b.dtype == np.float32 and 0 <= b.min() and b.max() <= 1
    np.testing.assert_array_equal(b, basemod.make_base(frames, kind, lut_apply=curve))
    with pytest.raises(ValueError, match="unknown base"):
        basemod.make_base(frames, "median")


def test_chroma_base_keeps_the_colour_the_mean_washes_out_and_the_mean_luma() -> None:
    frames = np.stack([expose(colourful_scene(), ev) for ev in (-3.0, 0.0)]).astype(np.float32)
    mean, kept = basemod.mean_base(frames), basemod.chroma_base(frames)
    patches = np.zeros(mean.shape[:2], bool)
    patches[40:, :] = True
    assert chroma(kept)[patches].mean() > 1.2 * chroma(mean)[patches].mean()
    luma = np.array([0.2126, 0.7152, 0.0722])
    unclipped = (kept.max(axis=-1) < 1) & (kept.min(axis=-1) > 0)
    np.testing.assert_allclose((kept @ luma)[unclipped], (mean @ luma)[unclipped], atol=1e-5)


def test_valid_masks_drop_a_frame_where_it_has_no_data() -> None:
    frames = np.stack([expose(render_scene(), ev) for ev in (-3.0, 1.0)]).astype(np.float32)
    valid = np.ones(frames.shape[:3], bool)
    valid[1, :, :40] = False
    b = basemod.weighted_base(frames, valid=valid)
    np.testing.assert_allclose(b[:, :20], frames[0][:, :20], atol=1e-4)


def test_ratio_detail_changes_luma_like_the_offset_and_keeps_colour_ratios() -> None:
    tone = torch.tensor([[[0.6]], [[0.3]], [[0.15]]]).repeat(1, 4, 4)   # 3×4×4, an orange
    layer = torch.full((4, 4), 0.05)
    off = add_detail(tone.clone(), layer, 1.0, mode="offset")
    rat = add_detail(tone.clone(), layer, 1.0, mode="ratio")
    luma = torch.tensor([0.2126, 0.7152, 0.0722]).view(3, 1, 1)
    assert torch.allclose((off * luma).sum(0), (rat * luma).sum(0), atol=1e-6)
    c = (tone[:, 0, 0] + 0.02) / (tone[:, 0, 0] + 0.02)[2]
    assert torch.allclose((rat[:, 0, 0] + 0.02) / (rat[:, 0, 0] + 0.02)[2], c, atol=1e-5)
    with pytest.raises(ValueError, match="detail mode"):
        add_detail(tone.clone(), layer, 1.0, mode="other")


def test_calibrated_strength_brings_the_lut_output_to_mertens_chroma() -> None:
    """A LUT that drains colour needs more of it back from the frames than one that keeps it; the strength found
    gives the output Mertens' chroma (at the calibration size)."""
    from lutfuse.core.adjust import Look, apply_look
    from lutfuse.core.classical import mertens

    frames = np.stack([expose(colourful_scene(), ev) for ev in (-3.0, 0.0)]).astype(np.float32)
    def keep(x: np.ndarray) -> np.ndarray:
        return x

    def drain(x: np.ndarray) -> np.ndarray:
        return apply_look(x, Look(saturation=-40)).astype(np.float32)

    a_keep, a_drain = basemod.calibrate_amount(frames, keep), basemod.calibrate_amount(frames, drain)
    assert 0.0 <= a_keep < a_drain <= basemod.AMOUNTS[-1]
    merged = mertens(frames)
    out = basemod.blend(frames, a_keep)
    assert chroma_ratio(out, merged) == pytest.approx(1.0, abs=0.1)
    assert np.array_equal(basemod.blend(frames, 0.0), basemod.mean_base(frames))
    with pytest.raises(ValueError, match="needs the bracket's LUT"):
        basemod.make_base(frames, "calibrated")
