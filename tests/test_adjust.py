"""core.adjust: each photographic adjustment does what it says; the look is composed into the engine's LUT; an
adjusted look exported as .cube + base image reproduces the adjusted `--detail 0` render in OpenColorIO."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import expose, render_scene

from lutfuse.core import adjust
from lutfuse.core.adjust import FIELDS, Look, apply_look, auto_look, linear_to_srgb, srgb_to_linear
from lutfuse.core.bracket import Bracket
from lutfuse.core.cli import main
from lutfuse.core.errors import LUTFuseError
from lutfuse.core.fusion import DEFAULT_WEIGHTS, Engine
from lutfuse.core.lut import apply_lut
from lutfuse.core.metrics import chroma


def ramp(n: int = 257) -> np.ndarray:
    """A grey ramp n×3 from 0 to 1."""
    return np.repeat(np.linspace(0.0, 1.0, n)[:, None], 3, axis=1)


def colours(n: int = 500, seed: int = 0) -> np.ndarray:
    """Random colours n×3 in [0,1]."""
    return np.random.default_rng(seed).random((n, 3))


# ---------------------------------------------------------------- neutral

def test_neutral_look_is_a_bit_identical_no_op_for_numpy_and_torch() -> None:
    x = colours().astype(np.float32)
    t = torch.from_numpy(x)
    assert Look().is_neutral() and not Look(tint=1).is_neutral()
    assert apply_look(x, Look()) is x and apply_look(x, None) is x
    assert apply_look(t, Look()) is t


def test_out_of_range_sliders_are_refused_with_the_slider_named() -> None:
    with pytest.raises(LUTFuseError, match="exposure"):
        Look(exposure=6)
    with pytest.raises(LUTFuseError, match="saturation"):
        Look(saturation=-101)
    with pytest.raises(LUTFuseError, match="tint"):
        Look(tint=float("nan"))


def test_torch_in_torch_out_same_values_as_numpy() -> None:
    x = colours().astype(np.float32)
    look = Look(exposure=0.4, contrast=20, saturation=15, temperature=-10)
    t = apply_look(torch.from_numpy(x), look)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32 and t.shape == (500, 3)
    np.testing.assert_allclose(t.numpy(), apply_look(x, look), atol=1e-6)


# ---------------------------------------------------------------- each adjustment

def test_exposure_plus_one_doubles_linear_light_where_unclipped() -> None:
    x = colours()
    out = apply_look(x, Look(exposure=1.0))
    lin, lin_out = srgb_to_linear(x), srgb_to_linear(out)
    ok = lin < 0.45
    np.testing.assert_allclose(lin_out[ok], 2 * lin[ok], rtol=1e-6, atol=1e-9)
    assert np.all(out[lin > 0.55] == 1.0)  # the rest clips at white
    down = apply_look(x, Look(exposure=-2.0))
    np.testing.assert_allclose(srgb_to_linear(down), lin / 4, rtol=1e-6, atol=1e-9)


def test_saturation_minus_100_gives_grey_and_plus_raises_chroma() -> None:
    x = colours().reshape(20, 25, 3)
    grey = apply_look(x, Look(saturation=-100))
    np.testing.assert_allclose(grey[..., 0], grey[..., 1], atol=1e-12)
    np.testing.assert_allclose(grey[..., 1], grey[..., 2], atol=1e-12)
    assert chroma(grey).max() < 0.5
    assert chroma(apply_look(x, Look(saturation=30))).mean() > 1.1 * chroma(x).mean()


def test_vibrance_favours_muted_colours() -> None:
    muted, vivid = np.array([[0.5, 0.45, 0.4]]), np.array([[0.8, 0.3, 0.1]])
    look = Look(vibrance=50)
    gain_muted = chroma(apply_look(muted[None], look))[0, 0] / chroma(muted[None])[0, 0]
    gain_vivid = chroma(apply_look(vivid[None], look))[0, 0] / chroma(vivid[None])[0, 0]
    assert gain_muted > gain_vivid > 1.0


def test_white_balance_moves_a_grey_patch_the_right_way() -> None:
    grey = np.full((4, 4, 3), 0.5)
    warm = apply_look(grey, Look(temperature=50))[0, 0]
    cool = apply_look(grey, Look(temperature=-50))[0, 0]
    magenta = apply_look(grey, Look(tint=50))[0, 0]
    green = apply_look(grey, Look(tint=-50))[0, 0]
    assert warm[0] > 0.5 > warm[2] and cool[2] > 0.5 > cool[0]
    assert magenta[1] < min(magenta[0], magenta[2]) and green[1] > max(green[0], green[2])
    # a Bradford adaptation keeps the white's luminance about where it was
    assert abs(adjust.luma(warm) - 0.5) < 0.03


def test_white_balance_matrix_is_the_bradford_adaptation_between_the_whites() -> None:
    colour = pytest.importorskip("colour")
    m = adjust.white_balance_matrix(40.0, 0.0)
    space = colour.RGB_COLOURSPACES["sRGB"]
    # the assumed white (in linear sRGB) maps to D65's (1, 1, 1) up to scale
    white = np.linalg.solve(m, np.ones(3))
    xy = colour.XYZ_to_xy(space.matrix_RGB_to_XYZ @ white)
    mired = 1e6 / adjust.D65_CCT - adjust.MIRED_PER_UNIT * 40.0
    locus = colour.temperature.CCT_to_xy_CIE_D(np.array([1e6 / mired, adjust.D65_CCT]))
    expected = space.whitepoint + locus[0] - locus[1]
    np.testing.assert_allclose(xy, expected, atol=2e-3)


@pytest.mark.parametrize("name", ["contrast", "highlights", "shadows", "whites", "blacks"])
@pytest.mark.parametrize("amount", [-100, -40, 40, 100])
def test_tone_curves_are_monotone(name: str, amount: float) -> None:
    out = apply_look(ramp(1025), Look(**{name: amount}))[:, 0]
    assert np.all(np.diff(out) >= -1e-12)
    assert np.abs(out - ramp(1025)[:, 0]).max() > 0.02  # and really change something


def test_highlights_act_on_bright_tones_shadows_on_dark_ones() -> None:
    x = np.array([[0.15] * 3, [0.85] * 3])
    hi = apply_look(x, Look(highlights=-60)) - x
    sh = apply_look(x, Look(shadows=60)) - x
    assert hi[1, 0] < 0 and abs(hi[1, 0]) > 3 * abs(hi[0, 0])
    assert sh[0, 0] > 0 and abs(sh[0, 0]) > 3 * abs(sh[1, 0])


def test_contrast_pivots_at_mid_grey_and_keeps_the_ends() -> None:
    x = np.array([[0.0] * 3, [0.3] * 3, [0.5] * 3, [0.7] * 3, [1.0] * 3])
    out = apply_look(x, Look(contrast=50))[:, 0]
    assert out[0] == 0 and out[-1] == 1 and abs(out[2] - 0.5) < 1e-12
    assert out[1] < 0.3 and out[3] > 0.7


def test_whites_and_blacks_move_the_end_points() -> None:
    assert apply_look(np.array([[0.9] * 3]), Look(whites=60))[0, 0] > 0.95
    assert apply_look(np.array([[0.08] * 3]), Look(blacks=-60))[0, 0] < 0.02


def test_fields_and_look_from_a_preset_like_mapping() -> None:
    assert FIELDS == ("exposure", "contrast", "highlights", "shadows", "whites", "blacks", "saturation",
                      "vibrance", "temperature", "tint")
    assert adjust.look_from({"exposure": 0.3, "saturation": 10}) == Look(exposure=0.3, saturation=10)
    assert adjust.look_from({}) is None


# ---------------------------------------------------------------- auto

def test_auto_look_brightens_a_dark_bracket_and_warms_a_blue_one() -> None:
    scene = render_scene()
    dark = np.stack([expose(scene, ev) for ev in (-6.0, -4.0)]).astype(np.float32)
    assert auto_look(dark).exposure > 0.2
    bluish = np.stack([np.clip(expose(scene, ev) * np.array([0.8, 0.95, 1.15]), 0, 1)
                       for ev in (-3.0, -1.0, 1.0)]).astype(np.float32)
    assert auto_look(bluish).temperature > 3
    # conservative: bounded whatever the bracket
    for look in (auto_look(dark), auto_look(bluish)):
        assert abs(look.exposure) <= adjust.AUTO_MAX_EV
        assert all(abs(v) <= adjust.AUTO_MAX_SLIDER for k, v in look.as_dict().items() if k != "exposure")


# ---------------------------------------------------------------- the engine

def test_engine_composes_the_look_into_the_lut(rendered_bracket) -> None:
    if not DEFAULT_WEIGHTS.is_file():
        pytest.skip("no shipped LUT student weights")
    engine = Engine(device="cpu")
    prepared = engine.prepare(Bracket.from_images(rendered_bracket))
    look = Look(exposure=0.5, contrast=20, saturation=-30, temperature=15)
    for g in (5, 33):
        plain, looked = engine.lut(prepared, g), engine.lut(prepared, g, look)
        np.testing.assert_allclose(looked, apply_look(plain, look), atol=1e-6)
        np.testing.assert_array_equal(engine.lut(prepared, g, Look()), plain)  # neutral = the plain LUT, bit for bit
        pure = engine.render(prepared, g, 0.0, look=look)
        np.testing.assert_array_equal(pure, apply_lut(prepared.base, looked))
        assert np.abs(pure - engine.render(prepared, g, 0.0)).mean() > 0.01
    np.testing.assert_array_equal(engine.render(prepared, 33, 1.0, look=Look()), engine.render(prepared, 33, 1.0))
    # the detail layer is added after the look: the same layer with and without it (where nothing clips)
    with_look = engine.render(prepared, 33, 1.0, look=look) - engine.render(prepared, 33, 0.0, look=look)
    without = engine.render(prepared, 33, 1.0) - engine.render(prepared, 33, 0.0)
    a, b = engine.render(prepared, 33, 0.0, look=look), engine.render(prepared, 33, 0.0)
    free = (a > 0.3) & (a < 0.7) & (b > 0.3) & (b < 0.7)
    np.testing.assert_allclose(with_look[free], without[free], atol=1e-5)
    # previews take the look too
    assert engine.render(prepared, 33, 1.0, max_side=64, look=look).shape[:2] == (48, 64)


def write_png(path: Path, image: np.ndarray) -> Path:
    cv2.imwrite(str(path), cv2.cvtColor(np.round(image * 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
    return path


def read_rgb(path: Path) -> np.ndarray:
    im = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    scale = 65535.0 if im.dtype == np.uint16 else 255.0
    return cv2.cvtColor(im, cv2.COLOR_BGR2RGB).astype(np.float32) / scale


def test_adjusted_cube_on_its_base_in_opencolorio_reproduces_the_adjusted_pure_lut_render(
        rendered_bracket, tmp_path: Path) -> None:
    ocio = pytest.importorskip("PyOpenColorIO")
    if not DEFAULT_WEIGHTS.is_file():
        pytest.skip("no shipped LUT student weights")
    frames = [write_png(tmp_path / f"f{i}.png", im) for i, im in enumerate(rendered_bracket)]
    flags = ["--exposure", "0.5", "--contrast", "25", "--shadows", "30", "--saturation", "20", "--temperature",
             "-20", "--tint", "10"]
    common = ["--grid", "33", "--no-align", "--device", "cpu"]
    cube, base = tmp_path / "look.cube", tmp_path / "base.tif"
    fused, plain = tmp_path / "fused.tif", tmp_path / "plain.tif"
    assert main(["cube", *map(str, frames), "-o", str(cube), "--base", str(base), *common, *flags]) == 0
    assert main(["fuse", *map(str, frames), "-o", str(fused), "--detail", "0", "--bit-depth", "16",
                 *common, *flags]) == 0
    assert main(["fuse", *map(str, frames), "-o", str(plain), "--detail", "0", "--bit-depth", "16", *common]) == 0
    image = read_rgb(base)
    transform = ocio.FileTransform(src=str(cube), interpolation=ocio.INTERP_LINEAR,
                                   direction=ocio.TRANSFORM_DIR_FORWARD)
    graded = image.copy()
    ocio.Config.CreateRaw().getProcessor(transform).getDefaultCPUProcessor().applyRGB(graded)
    expected = read_rgb(fused)
    assert np.abs(graded - expected).max() < 1e-3
    assert np.abs(expected - read_rgb(plain)).mean() > 0.02  # the look really is in the cube


def test_cli_refuses_an_out_of_range_slider(rendered_bracket, tmp_path: Path, capsys) -> None:
    frames = [write_png(tmp_path / f"f{i}.png", im) for i, im in enumerate(rendered_bracket)]
    out = tmp_path / "out.png"
    assert main(["fuse", *map(str, frames), "-o", str(out), "--method", "mertens", "--saturation", "150"]) == 1
    assert "saturation" in capsys.readouterr().err and not out.exists()


def test_mertens_takes_the_look_too(rendered_bracket, tmp_path: Path) -> None:
    frames = [write_png(tmp_path / f"f{i}.png", im) for i, im in enumerate(rendered_bracket)]
    grey, colourful = tmp_path / "grey.png", tmp_path / "colour.png"
    assert main(["fuse", *map(str, frames), "-o", str(grey), "--method", "mertens", "--saturation", "-100"]) == 0
    assert main(["fuse", *map(str, frames), "-o", str(colourful), "--method", "mertens"]) == 0
    g = read_rgb(grey)
    assert np.abs(g[..., 0] - g[..., 2]).max() <= 2 / 255 and chroma(read_rgb(colourful)).mean() > 3


def test_linear_round_trip() -> None:
    x = np.linspace(0, 1, 1001)
    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-12)
