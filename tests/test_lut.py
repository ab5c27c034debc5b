"""core/lut.py: the identity, the layout, trilinear apply against a plain numpy reference, and re-gridding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lutfuse.core.lut import MOSAIC_MAX_SIZE, apply_lut, identity_lut, resample_lut


def reference_trilinear(image: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Textbook trilinear lookup in float64: H×W×3 in [0,1] (clamped, NaN -> 0) and lut[b, g, r, c] -> H×W×3."""
    g = lut.shape[0]
    table = lut.astype(np.float64)
    x = np.clip(np.nan_to_num(image.astype(np.float64), nan=0.0), 0.0, 1.0) * (g - 1)
    low = np.minimum(np.floor(x).astype(np.int64), g - 2)   # the cell; the top face uses the last cell
    frac = x - low
    out = np.zeros(image.shape, np.float64)
    for db in (0, 1):
        for dg in (0, 1):
            for dr in (0, 1):
                weight = ((frac[..., 0] if dr else 1 - frac[..., 0])
                          * (frac[..., 1] if dg else 1 - frac[..., 1])
                          * (frac[..., 2] if db else 1 - frac[..., 2]))
                out += weight[..., None] * table[low[..., 2] + db, low[..., 1] + dg, low[..., 0] + dr]
    return out


def random_pixels(size: int, seed: int) -> np.ndarray:
    """1×n×3 float32 test pixels: random, the 8 corners, 0/1 on each axis, exact nodes of a size-G grid."""
    rng = np.random.default_rng(seed)
    parts = [rng.random((2000, 3)),
             [[r, g, b] for b in (0, 1) for g in (0, 1) for r in (0, 1)],
             np.where(rng.random((200, 3)) < 0.5, 0.0, 1.0),                     # on the cube's faces
             np.column_stack([rng.random(100), np.zeros(100), np.ones(100)]),
             rng.integers(0, size, (200, 3)) / (size - 1)]                       # exactly on grid nodes
    return np.concatenate(parts).astype(np.float32)[None]


def smooth_lut(size: int) -> np.ndarray:
    """A smooth non-separable look sampled at size G: G×G×G×3 float32 in [0,1]."""
    x = identity_lut(size).astype(np.float64)
    luma = x @ np.array([0.3, 0.5, 0.2])
    out = 0.5 - 0.5 * np.cos(np.pi * (0.6 * x + 0.4 * luma[..., None]))
    return out.astype(np.float32)


# -- identity and layout -------------------------------------------------------------------------------------------

def test_identity_lut_values_shape_and_layout() -> None:
    lut = identity_lut(5)
    assert lut.shape == (5, 5, 5, 3) and lut.dtype == np.float32
    b, g, r = 1, 2, 4
    np.testing.assert_array_equal(lut[b, g, r], np.array([r, g, b], np.float32) / 4)
    # flattened in C order red varies fastest: entries 0, 1, 2 step red, entry 5 steps green, entry 25 blue
    flat = lut.reshape(-1, 3)
    np.testing.assert_array_equal(flat[1], [0.25, 0, 0])
    np.testing.assert_array_equal(flat[5], [0, 0.25, 0])
    np.testing.assert_array_equal(flat[25], [0, 0, 0.25])
    with pytest.raises(ValueError):
        identity_lut(1)


@pytest.mark.parametrize("size", [2, 17, 33, MOSAIC_MAX_SIZE, 129])
def test_identity_is_identity_under_apply(size: int) -> None:
    pixels = random_pixels(size, seed=size)
    out = apply_lut(pixels, identity_lut(size))
    assert out.shape == pixels.shape and out.dtype == np.float32
    assert np.abs(out - pixels).max() <= 2e-6


def test_layout_red_is_the_last_spatial_axis() -> None:
    size = 4
    lut = np.zeros((size, size, size, 3), np.float32)
    lut[0, 0, -1] = (0.9, 0.1, 0.2)   # input pure red   (r, g, b) = (1, 0, 0)
    lut[0, -1, 0] = (0.3, 0.8, 0.4)   # input pure green (0, 1, 0)
    lut[-1, 0, 0] = (0.5, 0.6, 0.7)   # input pure blue  (0, 0, 1)
    inputs = np.array([[[1, 0, 0], [0, 1, 0], [0, 0, 1], [1 / 3, 0, 0]]], np.float32)
    out = apply_lut(inputs, lut)
    np.testing.assert_allclose(out[0, :3], [[0.9, 0.1, 0.2], [0.3, 0.8, 0.4], [0.5, 0.6, 0.7]], atol=1e-6)
    np.testing.assert_allclose(out[0, 3], 0.0, atol=1e-6)   # red 1/3 is node r=1, still zero
    # a LUT whose output is the red input alone: a red ramp comes out as itself, green and blue do nothing
    red_only = np.repeat(identity_lut(size)[..., :1], 3, axis=-1)
    ramp = np.linspace(0, 1, 11, dtype=np.float32)
    image = np.stack([ramp, 1 - ramp, ramp[::-1]], axis=-1)[None]
    np.testing.assert_allclose(apply_lut(image, red_only)[0], np.repeat(ramp[:, None], 3, axis=1), atol=1e-6)


# -- trilinear apply -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [2, 5, 33, MOSAIC_MAX_SIZE, MOSAIC_MAX_SIZE + 1])
def test_apply_matches_numpy_trilinear_reference(size: int) -> None:
    rng = np.random.default_rng(size)
    pixels = random_pixels(size, seed=size + 1)
    # A white-noise LUT makes every node and cell matter. Its neighbouring nodes differ by up to 1, so a float32
    # grid coordinate off by 1e-5 of a cell moves the output by 1e-5: the CPU mosaic sampler's grid spans up to
    # ~540 texels and is off by up to ~5e-5 of a cell at G=65 (the 5-D sampler: ~1e-6), hence 1e-4 here.
    noise = rng.random((size, size, size, 3), dtype=np.float32)
    assert np.abs(apply_lut(pixels, noise) - reference_trilinear(pixels, noise)).max() < 1e-4
    # A smooth LUT, as the engine and .cube files have, leaves far less room (16-bit output is 1.5e-5 a step).
    smooth = smooth_lut(size)
    assert np.abs(apply_lut(pixels, smooth) - reference_trilinear(pixels, smooth)).max() < 5e-6


def test_apply_clamps_out_of_range_and_nan() -> None:
    lut = np.random.default_rng(7).random((9, 9, 9, 3), dtype=np.float32)
    pixels = np.array([[[-0.5, 1.5, 0.3], [2.0, -1.0, 7.0], [np.nan, 0.5, 0.5], [np.inf, -np.inf, 0.0]]],
                      np.float32)
    np.testing.assert_allclose(apply_lut(pixels, lut), reference_trilinear(pixels, lut), atol=1e-5)


def test_apply_on_a_larger_image_keeps_pixel_order() -> None:
    # more pixels than one CPU chunk, odd count, so that chunking and the two-core split are exercised
    rng = np.random.default_rng(11)
    lut = rng.random((17, 17, 17, 3), dtype=np.float32)
    image = rng.random((333, 401, 3), dtype=np.float32)
    assert np.abs(apply_lut(image, lut) - reference_trilinear(image, lut)).max() < 1e-4   # noise LUT: see above


def test_torch_apply_matches_numpy_apply() -> None:
    rng = np.random.default_rng(5)
    lut = rng.random((33, 33, 33, 3), dtype=np.float32)
    images = rng.random((2, 24, 31, 3), dtype=np.float32)
    batch = torch.from_numpy(images).permute(0, 3, 1, 2)
    out = apply_lut(batch, torch.from_numpy(lut))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 3, 24, 31)
    for i in range(2):
        np.testing.assert_allclose(out[i].permute(1, 2, 0).numpy(), apply_lut(images[i], lut), atol=1e-5)


def test_apply_rejects_bad_shapes_and_types() -> None:
    lut = identity_lut(3)
    with pytest.raises(ValueError):
        apply_lut(np.zeros((4, 4), np.float32), lut)
    with pytest.raises(TypeError):
        apply_lut(np.zeros((4, 4, 3), np.uint8), lut)
    with pytest.raises(ValueError):
        apply_lut(np.zeros((4, 4, 3), np.float32), np.zeros((3, 3, 4, 3), np.float32))


# -- resample ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("src, dst", [(17, 33), (33, 9), (2, 65), (65, 2)])
def test_resampled_identity_stays_identity(src: int, dst: int) -> None:
    out = resample_lut(identity_lut(src), dst)
    assert out.shape == (dst, dst, dst, 3) and out.dtype == np.float32
    assert np.abs(out - identity_lut(dst)).max() <= 2e-6


def test_resample_of_a_smooth_lut_there_and_back_is_close() -> None:
    lut = smooth_lut(33)
    down = resample_lut(lut, 17)
    # the nodes of 17 lie on the nodes of 33 (every second one): down-sampling is exact there
    np.testing.assert_allclose(down, lut[::2, ::2, ::2], atol=1e-6)
    back = resample_lut(down, 33)
    assert np.abs(back - lut).max() < 5e-3
    up = resample_lut(smooth_lut(9), 33)
    assert np.abs(up - lut).max() < 2e-2               # a coarse sampling of the same smooth function
    assert np.abs(resample_lut(up, 9) - smooth_lut(9)).max() < 1e-5


def test_resample_to_the_same_size_is_a_copy() -> None:
    lut = smooth_lut(5)
    same = resample_lut(lut, 5)
    np.testing.assert_array_equal(same, lut)
    same[...] = 0
    assert lut.max() > 0.5


# -- the CPU sampler's two implementations and the fused offset ------------------------------------------------------

@pytest.mark.parametrize("size", [2, 33, 129])
def test_torch_sampler_where_remap_is_not_exact_matches_the_reference(monkeypatch, size: int) -> None:
    # OpenCV 4 interpolates remap with 1/32-texel weights: there the CPU path uses torch's 2-D sampler instead
    import lutfuse.core.lut as lutmod

    monkeypatch.setattr(lutmod, "_REMAP_EXACT", False)
    pixels = random_pixels(size, seed=size + 2)
    smooth = smooth_lut(size)
    assert np.abs(apply_lut(pixels, smooth) - reference_trilinear(pixels, smooth)).max() < 5e-6


def test_remap_probe_and_offset_pass() -> None:
    import lutfuse.core.lut as lutmod
    from lutfuse.core.lut import apply_lut_offset

    assert isinstance(lutmod._remap_is_exact(), bool)
    rng = np.random.default_rng(9)
    image = rng.random((300, 517, 3), dtype=np.float32)   # several bands and a partial last row of the cut
    offset = (rng.random((300, 517), dtype=np.float32) - 0.5) * 0.4
    lut = smooth_lut(17)
    expected = np.clip(reference_trilinear(image, lut) + 0.7 * offset[..., None], 0.0, 1.0)
    got = apply_lut_offset(image, lut, offset, 0.7)
    assert got.shape == image.shape and got.dtype == np.float32
    assert np.abs(got - expected).max() < 5e-6
    with pytest.raises(ValueError):
        apply_lut_offset(image, lut, offset[:-1], 1.0)


# -- mosaic coordinates kept per (image, grid size) -----------------------------------------------------------------

def test_kept_coordinates_serve_every_lut_of_their_size_on_a_real_bracket(shared_data) -> None:
    # The engine keeps where each pixel of the base falls in a G-sized LUT's mosaic (core.lut.LUTCoords) and reuses it
    # for every LUT of that size (a look change): the result must be the lookup made from scratch, and both the
    # textbook trilinear, on a real photograph (an hdrps frame, full size) with NaN and out-of-range pixels added.
    from lutfuse.core.bracket import load_image
    from lutfuse.core.device import use_kernels
    from lutfuse.core.lut import LUTCoords, apply_lut_offset, lut_coords

    with use_kernels("auto"):  # the coordinates belong to the CPU fast path, also when CI runs the torch kernels
        _check_kept_coordinates(shared_data, load_image, LUTCoords, apply_lut_offset, lut_coords)


def _check_kept_coordinates(shared_data, load_image, LUTCoords, apply_lut_offset, lut_coords) -> None:  # noqa: N803

    frames = sorted((shared_data / "brackets" / "hdrps" / "Cades_Cove").iterdir())
    image = np.ascontiguousarray(load_image(frames[4])[0], dtype=np.float32)
    image[0, :5] = [np.nan, -0.5, 1.5]
    rng = np.random.default_rng(4)
    offset = (rng.random(image.shape[:2], dtype=np.float32) - 0.5) * 0.3
    for size in (2, 17, 33, 129):
        first, look = smooth_lut(size), np.clip(smooth_lut(size) ** 1.7 + 0.1, 0.0, 1.0).astype(np.float32)
        kept = LUTCoords(image, size)
        assert not kept.filled
        plain = apply_lut(image, first)
        np.testing.assert_array_equal(apply_lut(image, first, coords=kept), plain)   # fills them while sampling
        assert kept.filled
        filled = lut_coords(image, size)
        assert filled is not None and filled.filled
        for coords in (kept, filled):
            np.testing.assert_array_equal(apply_lut(image, look, coords=coords), apply_lut(image, look))
            np.testing.assert_array_equal(apply_lut_offset(image, look, offset, 0.8, coords=coords),
                                          apply_lut_offset(image, look, offset, 0.8))
        assert np.abs(apply_lut(image, look, coords=kept) - reference_trilinear(image, look)).max() < 2e-5
        # they are read, not recomputed: given another image of the same shape they still look up the first one
        np.testing.assert_array_equal(apply_lut(image[::-1].copy(), look, coords=kept), apply_lut(image, look))
    # coordinates of another grid size or image shape are ignored, not misread
    other = lut_coords(image, 9)
    np.testing.assert_array_equal(apply_lut(image, smooth_lut(17), coords=other), apply_lut(image, smooth_lut(17)))
    crop = np.ascontiguousarray(image[:100])
    np.testing.assert_array_equal(apply_lut(crop, smooth_lut(9), coords=other), apply_lut(crop, smooth_lut(9)))
