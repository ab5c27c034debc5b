"""Photographers' files in: every TIFF, alpha as a validity mask, ICC profiles, HEIC, float TIFF, orientation tags
that disagree, exposure order that never depends on names, corrupt JPEG data, and the shared problem cases."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import imagecodecs
import numpy as np
import piexif
import pytest
import tifffile
from conftest import expose, render_scene
from PIL import Image

from lutfuse.core import profiles
from lutfuse.core.bracket import load_bracket, load_image
from lutfuse.core.commands.fuse import fuse_bracket
from lutfuse.core.errors import BracketError
from lutfuse.core.readers import read_frame

# ---------------------------------------------------------------------------------------------- helpers


def smooth_frame(ev: float = 0.0, size: tuple[int, int] = (48, 64), seed: int = 5) -> np.ndarray:
    """An 8-bit quantised frame of a rendered scene, H×W×3 float32 in [0,1] (smooth enough for JPEG)."""
    scene = cv2.GaussianBlur(render_scene(*size, seed=seed), (0, 0), 1.5)
    return expose(scene, ev).astype(np.float32)


def levels(image: np.ndarray, bits: int) -> np.ndarray:
    return np.round(image * (2**bits - 1)).astype(np.uint8 if bits == 8 else np.uint16)


def save_png(path: Path, image: np.ndarray, bits: int = 8) -> Path:
    assert cv2.imwrite(str(path), cv2.cvtColor(levels(image, bits), cv2.COLOR_RGB2BGR))
    return path


def save_jpeg(path: Path, image: np.ndarray, *, exposure_s: float | None = None, orientation: int | None = None,
              icc: bytes | None = None) -> Path:
    """A JPEG (Pillow, quality 95) with optional EXIF exposure time / orientation and an ICC profile."""
    zeroth: dict = {piexif.ImageIFD.Make: b"TestCam"}
    if orientation:
        zeroth[piexif.ImageIFD.Orientation] = orientation
    exif: dict = {}
    if exposure_s:
        exif = {piexif.ExifIFD.ExposureTime: (1, round(1 / exposure_s)), piexif.ExifIFD.FNumber: (80, 10),
                piexif.ExifIFD.ISOSpeedRatings: 100}
    extra = {"icc_profile": icc} if icc else {}
    Image.fromarray(levels(image, 8)).save(path, "JPEG", quality=95, exif=piexif.dump({"0th": zeroth, "Exif": exif}),
                                           **extra)
    return path


def cli(args: list[str], capfd: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run `lutfuse ARGS` in this process; (exit status, stdout, stderr) captured at the file-descriptor level."""
    from lutfuse.core.cli import main

    status = main([str(a) for a in args])
    out, err = capfd.readouterr()
    return status, out, err


def srgb_to_space(image: np.ndarray, space: str) -> np.ndarray:
    """Independent reference: sRGB-encoded pixels re-encoded in a colour-science RGB colourspace (Bradford)."""
    colour = pytest.importorskip("colour")
    return colour.RGB_to_RGB(image.astype(np.float64), colour.RGB_COLOURSPACES["sRGB"],
                             colour.RGB_COLOURSPACES[space], chromatic_adaptation_transform="Bradford",
                             apply_cctf_decoding=True, apply_cctf_encoding=True)


def icc_like(space: str) -> bytes:
    """An ICC profile (LittleCMS-made) with the primaries, white and transfer curve of a colour-science space."""
    colour = pytest.importorskip("colour")
    cs = colour.RGB_COLOURSPACES[space]
    white = [*cs.whitepoint, 1.0]
    primaries = [v for xy in cs.primaries for v in (*xy, 1.0)]
    if space == "Display P3":  # the sRGB curve: sample it as a tabulated transfer function
        x = np.linspace(0, 1, 4096)
        curve = np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)
        return imagecodecs.cms_profile("rgb", whitepoint=white, primaries=primaries, transferfunction=curve)
    gamma = {"Adobe RGB (1998)": 563 / 256, "ProPhoto RGB": 1.8}[space]
    return imagecodecs.cms_profile("rgb", whitepoint=white, primaries=primaries, gamma=gamma)


# ---------------------------------------------------------------------------------------------- TIFF


# JPEG-in-TIFF as raw developers write it: contiguous RGB or grey, no extra samples.
TIFF_VARIANTS = [(c, layout, planar) for c in (None, "lzw", "zlib", "packbits", "zstd", "jpeg")
                 for layout in ("rgb", "rgba", "grey", "greya") for planar in ("contig", "separate")
                 if c != "jpeg" or (planar == "contig" and not layout.endswith("a"))]


@pytest.mark.parametrize(("compression", "layout", "planar"), TIFF_VARIANTS)
def test_every_tiff_variant_reads(compression: str | None, layout: str, planar: str, tmp_path: Path) -> None:
    image = smooth_frame()
    for bits in (8, 16) if compression != "jpeg" else (8,):
        samples = levels(image, bits)
        alpha = np.full(image.shape[:2], 2**bits - 1, samples.dtype)
        alpha[:, :10] = 0
        data = {"rgb": samples, "rgba": np.dstack([samples, alpha]), "grey": samples[..., 1],
                "greya": np.dstack([samples[..., 1], alpha])}[layout]
        if planar == "separate" and data.ndim == 3:
            data = np.moveaxis(data, 2, 0)
        path = tmp_path / f"{layout}{bits}.tif"
        tifffile.imwrite(path, data, photometric="minisblack" if layout.startswith("grey") else "rgb",
                         planarconfig=planar if data.ndim == 3 else None, compression=compression,
                         extrasamples=["unassalpha"] if layout.endswith("a") else None)
        decoded = read_frame(path)
        assert decoded.bit_depth == bits and decoded.pixels.shape == (48, 64, 3)
        expected = image if layout.startswith("rgb") else np.repeat(image[..., 1:2], 3, axis=2)
        error = np.abs(decoded.pixels - expected)[:, 10:]
        if compression == "jpeg":  # lossy, chroma subsampled: close on average
            assert error.mean() < 2 / 255 and error.max() < 16 / 255
        else:
            assert error.max() <= 0.5 / (2**bits - 1), (compression, layout, bits)
        if layout.endswith("a"):
            assert decoded.valid is not None and not decoded.valid[:, :10].any() and decoded.valid[:, 10:].all()
        else:
            assert decoded.valid is None


def test_tiff_twelve_bit_miniswhite_and_palette(tmp_path: Path) -> None:
    ramp = np.tile(np.arange(64, dtype=np.uint16) * 64, (32, 1))  # 12-bit levels 0..4032
    tifffile.imwrite(tmp_path / "w.tif", (255 - (ramp >> 4)).astype(np.uint8), photometric="miniswhite")
    np.testing.assert_allclose(read_frame(tmp_path / "w.tif").pixels[..., 0], (ramp >> 4) / 255, atol=1e-6)
    palette = np.zeros((3, 256), np.uint16)
    palette[0] = np.arange(256) * 257
    index = (ramp >> 4).astype(np.uint8)
    tifffile.imwrite(tmp_path / "p.tif", index, photometric="palette", colormap=palette)
    decoded = read_frame(tmp_path / "p.tif")
    np.testing.assert_allclose(decoded.pixels[..., 0], index / 255, atol=1e-6)
    assert decoded.pixels[..., 1:].max() == 0


@pytest.mark.shared_data
def test_lzw_and_deflate_cases_read_and_fuse_identically(shared_cases: Path) -> None:
    lzw = load_bracket([shared_cases / "tiff-lzw" / "lzw"])
    deflate = load_bracket([shared_cases / "tiff-lzw" / "zip"])
    assert lzw.bit_depth == 16 and lzw.images.shape == (2, 341, 512, 3)
    np.testing.assert_array_equal(lzw.images, deflate.images)
    for method in ("lut", "mertens"):
        np.testing.assert_array_equal(fuse_bracket(lzw, method, device="cpu"),
                                      fuse_bracket(deflate, method, device="cpu"))


# ---------------------------------------------------------------------------------------------- alpha


def test_associated_alpha_is_unpremultiplied_and_unassociated_kept(tmp_path: Path) -> None:
    image = smooth_frame()
    alpha = np.full(image.shape[:2], 0.5, np.float32)
    alpha[:4] = 0.0
    premultiplied = np.dstack([image * alpha[..., None], alpha])
    tifffile.imwrite(tmp_path / "assoc.tif", levels(premultiplied, 16), photometric="rgb", extrasamples=["assocalpha"])
    tifffile.imwrite(tmp_path / "unassoc.tif", levels(np.dstack([image, alpha]), 16), photometric="rgb",
                     extrasamples=["unassalpha"])
    for name in ("assoc.tif", "unassoc.tif"):
        decoded = read_frame(tmp_path / name)
        assert not decoded.valid[:4].any() and decoded.valid[4:].all()
        np.testing.assert_allclose(decoded.pixels[4:], image[4:], atol=2e-4)  # un-premultiplied: the true colour


def test_png_alpha_zero_is_no_data(tmp_path: Path) -> None:
    image = smooth_frame()
    bgra = np.dstack([cv2.cvtColor(levels(image, 8), cv2.COLOR_RGB2BGR), np.full((48, 64), 255, np.uint8)])
    bgra[20:30, :, 3] = 0
    bgra[20:30, :, :3] = 255  # hidden colour under alpha 0
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    decoded = read_frame(tmp_path / "a.png")
    assert decoded.valid.sum() == 48 * 64 - 10 * 64 and not decoded.valid[20:30].any()
    np.testing.assert_array_equal(decoded.pixels[decoded.valid], image[decoded.valid])
    # load_image (one file, no other frame to take from) shows no data as 0, not the hidden white.
    assert load_image(tmp_path / "a.png")[0][20:30].max() == 0


def test_hidden_colour_under_alpha_never_reaches_the_bracket(tmp_path: Path) -> None:
    frames = [smooth_frame(ev) for ev in (-2.0, 0.0, 2.0)]
    results = []
    for hidden in (0, 65535):
        folder = tmp_path / str(hidden)
        folder.mkdir()
        for i, frame in enumerate(frames):
            rgba = np.dstack([levels(frame, 16), np.full((48, 64), 65535, np.uint16)])
            if i == 1:
                rgba[:, 40:, 3] = 0
                rgba[:, 40:, :3] = hidden
            tifffile.imwrite(folder / f"{i}.tif", rgba, photometric="rgb", extrasamples=["unassalpha"])
        bracket = load_bracket([folder], align=False)
        assert bracket.frames[1].valid is not None and not bracket.frames[1].valid[:, 40:].any()
        assert bracket.frames[0].valid is None and bracket.frames[2].valid is None
        assert any("1.tif" in note and "no data" in note for note in bracket.notes)
        results.append(bracket)
    np.testing.assert_array_equal(results[0].images, results[1].images)
    # The strip holds the neighbouring exposures' content brought to frame 1's exposure, not 0 or 1 everywhere.
    strip = results[0].images[1][:, 40:]
    assert 0.05 < strip.mean() < 0.95


@pytest.mark.shared_data
@pytest.mark.parametrize("method", ["lut", "mertens"])
def test_alpha_mask_case_hidden_colour_takes_no_part(method: str, shared_cases: Path) -> None:
    """../shared/cases/tiff-alpha-mask: the two folders differ only under alpha 0; the fusions must be equal."""
    x0, x1 = (int(v) for v in (shared_cases / "tiff-alpha-mask" / "strip.txt").read_text().split()[:2])
    fused = {}
    for colour in ("black", "white"):
        bracket = load_bracket([shared_cases / "tiff-alpha-mask" / colour])
        assert not bracket.frames[1].valid[:, x0:x1].any()
        fused[colour] = fuse_bracket(bracket, method, device="cpu")
    np.testing.assert_array_equal(fused["black"], fused["white"])
    # Outside the strip both frames have data; inside it the result still looks like its surroundings.
    inside, beside = fused["black"][:, x0:x1].mean(), fused["black"][:, x1:x1 + (x1 - x0)].mean()
    assert abs(inside - beside) < 0.15


# ---------------------------------------------------------------------------------------------- colour


@pytest.mark.parametrize("space", ["Adobe RGB (1998)", "Display P3", "ProPhoto RGB"])
def test_frames_in_another_profile_are_converted_into_the_middle_frames_space(space: str, tmp_path: Path) -> None:
    frames = [smooth_frame(ev, seed=9) for ev in (-2.0, 0.0, 2.0)]
    icc = icc_like(space)
    # The middle frame is tagged with `space` (its pixels encoded there); the others are untagged sRGB.
    middle = np.clip(srgb_to_space(frames[1], space), 0, 1)
    tifffile.imwrite(tmp_path / "1.tif", levels(middle, 16), photometric="rgb", iccprofile=icc)
    save_png(tmp_path / "0.png", frames[0], bits=16)
    save_png(tmp_path / "2.png", frames[2], bits=16)
    bracket = load_bracket([tmp_path], align=False)
    assert [f.path.name for f in bracket.frames] == ["0.png", "1.tif", "2.png"]
    assert all(f.icc == icc for f in bracket.frames)  # the working space is recorded for the writer
    tolerance = 3e-3 if space != "ProPhoto RGB" else 6e-3  # ProPhoto: pure 1.8 gamma vs ROMM's linear toe
    for k in (0, 2):
        expected = np.clip(srgb_to_space(frames[k], space), 0, 1)
        assert np.abs(bracket.images[k] - expected).max() < tolerance, space
        assert any(f"{k}.png: converted from sRGB to the middle frame's" in note for note in bracket.notes)
    np.testing.assert_allclose(bracket.images[1], levels(middle, 16) / 65535, atol=1e-7)  # middle untouched


def test_conversion_keeps_sixteen_bit_precision() -> None:
    ramp = (np.arange(65536, dtype=np.float32) / 65535).reshape(256, 256, 1).repeat(3, axis=2)
    converted, outside = profiles.convert(ramp, None, icc_like("Adobe RGB (1998)"))
    assert outside == 0.0  # greys are inside every gamut
    assert len(np.unique(np.round(converted[..., 1] * 65535))) > 60000  # an 8-bit path would leave 256


def test_embedded_profiles_from_jpeg_png_tiff_are_read_and_srgb_tags_are_srgb(tmp_path: Path) -> None:
    adobe = icc_like("Adobe RGB (1998)")
    image = smooth_frame()
    save_jpeg(tmp_path / "a.jpg", image, icc=adobe)
    Image.fromarray(levels(image, 8)).save(tmp_path / "a.png", icc_profile=adobe)
    tifffile.imwrite(tmp_path / "a.tif", levels(image, 8), photometric="rgb", iccprofile=adobe)
    for name in ("a.jpg", "a.png", "a.tif"):
        assert read_frame(tmp_path / name).icc == adobe, name
    # A frame tagged with an sRGB profile is sRGB: Frame.icc None, nothing converted.
    srgb = imagecodecs.cms_profile("srgb")
    save_jpeg(tmp_path / "0.jpg", smooth_frame(-2.0), icc=srgb)
    save_jpeg(tmp_path / "1.jpg", smooth_frame(0.0))
    bracket = load_bracket([tmp_path / "0.jpg", tmp_path / "1.jpg"], align=False)
    assert [f.icc for f in bracket.frames] == [None, None] and not bracket.notes


def test_broken_profile_is_ignored_with_a_note(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    Image.fromarray(levels(smooth_frame(), 8)).save(tmp_path / "junk.png", icc_profile=b"x" * 200)
    decoded = read_frame(tmp_path / "junk.png")
    assert decoded.icc is None and any("embedded ICC profile ignored" in n for n in decoded.notes)
    assert "libpng" not in capfd.readouterr().err  # libpng's "iCCP: too short" is captured, not printed


def test_cube_says_which_space_it_expects(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    adobe = imagecodecs.cms_profile("adobergb")  # described as "Adobe RGB (compatible)"
    for i, ev in enumerate((-2.0, 0.0, 2.0)):
        save_jpeg(tmp_path / f"{i}.jpg", smooth_frame(ev), icc=adobe, exposure_s=1 / 400 * 4**i)
    status, _, err = cli(["cube", tmp_path, "-o", tmp_path / "look.cube", "--grid", "5", "--device", "cpu"], capfd)
    assert status == 0, err
    text = (tmp_path / "look.cube").read_text()
    assert "display-referred RGB" in text and "'Adobe RGB (compatible)' embedded in the base image" in text
    assert "encoded in sRGB (IEC 61966-2-1)" in " ".join(profiles.cube_comments(None))


def test_xmp_packets_reach_the_frames(tmp_path: Path) -> None:
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></x:xmpmeta>'
    image = levels(smooth_frame(), 8)
    Image.fromarray(image).save(tmp_path / "0.jpg", "JPEG", xmp=xmp)
    tifffile.imwrite(tmp_path / "1.tif", image, photometric="rgb", extratags=[(700, "B", len(xmp), xmp, True)])
    assert read_frame(tmp_path / "0.jpg").xmp == xmp and read_frame(tmp_path / "1.tif").xmp == xmp
    bracket = load_bracket([tmp_path], align=False)
    assert [f.xmp for f in bracket.frames] == [xmp, xmp]


# ---------------------------------------------------------------------------------------------- HEIC, float


def test_heic_eight_and_ten_bit_with_exif_and_profile(tmp_path: Path) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    adobe = icc_like("Adobe RGB (1998)")
    frames = [smooth_frame(ev, size=(64, 96)) for ev in (-2.0, 0.0)]
    for name, frame, bits, t in (("dark.heic", frames[0], 8, 1 / 400), ("mid.heic", frames[1], 10, 1 / 100)):
        data = levels(frame, 8) if bits == 8 else (levels(frame, 16) >> 6 << 6)
        heif = pillow_heif.from_bytes(mode="RGB" if bits == 8 else "RGB;16", size=(96, 64), data=data.tobytes())
        heif.info["exif"] = piexif.dump({"0th": {piexif.ImageIFD.Make: b"Phone"},
                                         "Exif": {piexif.ExifIFD.ExposureTime: (1, round(1 / t))}})
        heif.info["icc_profile"] = adobe
        heif.save(tmp_path / name, quality=95, bit_depth=bits)
    dark, mid = read_frame(tmp_path / "dark.heic"), read_frame(tmp_path / "mid.heic")
    assert (dark.bit_depth, mid.bit_depth) == (8, 16) and dark.icc == mid.icc == adobe
    assert np.abs(mid.pixels - frames[1]).mean() < 0.01  # lossy HEVC, 10-bit levels scaled to [0,1]
    assert len(np.unique(mid.pixels)) > 256  # more than 8 bits of levels came through
    bracket = load_bracket([tmp_path / "mid.heic", tmp_path / "dark.heic"], align=False)
    assert [f.path.name for f in bracket.frames] == ["dark.heic", "mid.heic"]
    assert {f.ev_source for f in bracket.frames} == {"exif"} and bracket.frames[0].icc == adobe


def test_float_tiff_clips_with_a_note_and_nan_is_no_data(tmp_path: Path) -> None:
    linear = np.tile(np.linspace(0.0, 4.0, 64, dtype=np.float32), (32, 1))[..., None].repeat(3, axis=2)
    linear[0, 0] = np.nan
    linear[0, 1, 2] = np.inf
    tifffile.imwrite(tmp_path / "hdr.tif", linear, photometric="rgb")
    decoded = read_frame(tmp_path / "hdr.tif")
    assert decoded.bit_depth == 16 and decoded.pixels.max() == 1.0 and np.isfinite(decoded.pixels).all()
    assert decoded.valid.sum() == 32 * 64 - 2 and not decoded.valid[0, :2].any()
    inside = linear[1:] <= 1
    np.testing.assert_array_equal(decoded.pixels[1:][inside], linear[1:][inside])  # in-range values untouched
    said = " ".join(decoded.notes)
    assert "2 pixels are NaN or infinite" in said and "outside [0, 1] and are clipped" in said and "4" in said


# ---------------------------------------------------------------------------------------------- orientation


@pytest.mark.shared_data
@pytest.mark.parametrize("case", ["rot180", "rot90"])
def test_orientation_cases_fuse_like_the_consistent_bracket(case: str, shared_cases: Path) -> None:
    same = load_bracket([shared_cases / "orientation-mismatch" / "same"])
    odd = load_bracket([shared_cases / "orientation-mismatch" / case])
    assert not same.notes
    np.testing.assert_array_equal(odd.images, same.images)  # no double image, no "sizes differ"
    (note,) = odd.notes
    tag = {"rot180": 3, "rot90": 6}[case]
    assert note.startswith(f"{shared_cases / 'orientation-mismatch' / case / 'f2.jpg'}: EXIF Orientation {tag} ")
    assert "tag is ignored" in note


def test_frame_stored_turned_with_its_own_tag_is_turned_by_it(tmp_path: Path) -> None:
    frames = [smooth_frame(ev, size=(64, 96), seed=3) for ev in (-2.0, 0.0, 2.0)]
    save_jpeg(tmp_path / "0.jpg", frames[0], exposure_s=1 / 400)
    save_jpeg(tmp_path / "1.jpg", frames[1], exposure_s=1 / 100)
    # The last frame's pixels really are stored turned (90° counter-clockwise) and its tag says so.
    save_jpeg(tmp_path / "2.jpg", np.rot90(frames[2], 1), exposure_s=1 / 25, orientation=6)
    bracket = load_bracket([tmp_path], align=False)
    assert bracket.images.shape == (3, 64, 96, 3)
    assert np.abs(bracket.images[2] - frames[2]).mean() < 0.01
    assert any("2.jpg: EXIF Orientation 6" in n and "its own tag" in n for n in bracket.notes)


@pytest.mark.parametrize("code", [6, 8, 3])
def test_portrait_bracket_is_turned_in_place(code: int, tmp_path: Path) -> None:
    frames = [smooth_frame(ev, size=(48, 80), seed=6) for ev in (-2.0, 0.0, 2.0)]
    for i, frame in enumerate(frames):
        tifffile.imwrite(tmp_path / f"{i}.tif", levels(frame, 16), photometric="rgb",
                         extratags=[(274, "H", 1, (code,), True)])
    bracket = load_bracket([tmp_path], align=False)
    assert not bracket.notes
    for image, frame in zip(bracket.images, frames):
        np.testing.assert_allclose(image, {6: np.rot90(frame, -1), 8: np.rot90(frame, 1),
                                           3: frame[::-1, ::-1]}[code], atol=1e-7)


def test_orientation_that_fits_no_way_is_refused_naming_the_tag(tmp_path: Path) -> None:
    save_jpeg(tmp_path / "0.jpg", smooth_frame(-1.0, size=(48, 64)))
    save_jpeg(tmp_path / "1.jpg", smooth_frame(1.0, size=(40, 64)), orientation=6)
    with pytest.raises(BracketError, match=r"1\.jpg: size 40×64 \(after its EXIF Orientation 6 .*\) differs"):
        load_bracket([tmp_path], align=False)
    # Same pixel count, but a 90° tag on a frame stored 48×64 and a 180° tag on the others: no reading fits.
    save_jpeg(tmp_path / "1.jpg", smooth_frame(1.0, size=(64, 48)), orientation=3)
    save_jpeg(tmp_path / "2.jpg", smooth_frame(2.0, size=(64, 48)), orientation=3)
    save_jpeg(tmp_path / "0.jpg", smooth_frame(-1.0, size=(48, 64)), orientation=1)
    with pytest.raises(BracketError, match=r"0\.jpg: size 64×48 with EXIF Orientation 1 .* does not fit"):
        load_bracket([tmp_path], align=False)


# ---------------------------------------------------------------------------------------------- order


def pseudo_bracket(folder: Path, names: list[str]) -> list[Path]:
    """Three exports of one 'raw' at different brightness, all with the same EXIF exposure time."""
    folder.mkdir()
    frames = [smooth_frame(ev, size=(96, 128), seed=4) for ev in (-2.0, 0.0, 2.0)]
    return [save_jpeg(folder / name, frame, exposure_s=1 / 100) for name, frame in zip(names, frames)]


def test_pseudo_bracket_is_ordered_by_brightness_and_never_by_name(tmp_path: Path) -> None:
    a = pseudo_bracket(tmp_path / "a", ["x.jpg", "y.jpg", "z.jpg"])
    b = pseudo_bracket(tmp_path / "b", ["z.jpg", "x.jpg", "y.jpg"])  # same pixels, names shuffled
    first, second = load_bracket([tmp_path / "a"]), load_bracket([tmp_path / "b"])
    assert [f.path.name for f in first.frames] == ["x.jpg", "y.jpg", "z.jpg"]
    assert [f.path.name for f in second.frames] == ["z.jpg", "x.jpg", "y.jpg"]
    assert {f.ev_source for f in first.frames} == {"brightness"}
    assert any("same exposure" in n and "ordered by their brightness" in n for n in first.notes)
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(fuse_bracket(first, "lut", device="cpu"), fuse_bracket(second, "lut", device="cpu"))
    assert first.middle().exif == second.middle().exif  # the output's EXIF comes from the same frame
    assert len(a) == len(b) == 3


def test_exif_that_contradicts_the_pixels_yields_to_brightness(tmp_path: Path) -> None:
    frames = [smooth_frame(ev, size=(96, 128)) for ev in (-2.0, 0.0, 2.0)]
    # EXIF says the brightest frame is the darkest.
    paths = [save_jpeg(tmp_path / f"{i}.jpg", frame, exposure_s=t)
             for i, (frame, t) in enumerate(zip(frames, (1 / 100, 1 / 50, 1 / 400)))]
    bracket = load_bracket(paths, align=False)
    assert [f.path.name for f in bracket.frames] == ["0.jpg", "1.jpg", "2.jpg"]
    assert any("pixels are darker" in n for n in bracket.notes)


def test_duplicate_frames_are_noted(tmp_path: Path) -> None:
    frame = smooth_frame()
    save_png(tmp_path / "a.png", frame)
    save_png(tmp_path / "b.png", frame)
    save_png(tmp_path / "c.png", smooth_frame(2.0))
    bracket = load_bracket([tmp_path], align=False)
    assert any("holds the same pixels as" in n for n in bracket.notes)


# ---------------------------------------------------------------------------------------------- corrupt JPEG


def cut_jpeg(path: Path, image: np.ndarray) -> Path:
    """A JPEG whose scan data is cut in half but which still ends with an end-of-image marker."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(levels(image, 8), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    data = buf.tobytes()
    scan = data.rfind(b"\xff\xda")
    path.write_bytes(data[:scan + (len(data) - scan) // 2] + b"\xff\xd9")
    return path


def test_jpeg_with_cut_scan_data_is_an_error_naming_the_file(tmp_path: Path) -> None:
    bad = cut_jpeg(tmp_path / "cut.jpg", smooth_frame(size=(256, 320)))
    with pytest.raises(BracketError, match=rf"^{tmp_path / 'cut.jpg'}: corrupt JPEG data"):
        read_frame(bad)


def test_cut_jpeg_through_the_cli_one_line_exit_1_nothing_written(tmp_path: Path,
                                                                   capfd: pytest.CaptureFixture[str]) -> None:
    good = save_png(tmp_path / "good.png", smooth_frame(-2.0, size=(256, 320)))
    bad = cut_jpeg(tmp_path / "cut.jpg", smooth_frame(size=(256, 320)))
    status, _, err = cli(["fuse", good, bad, "-o", tmp_path / "out.png"], capfd)
    assert status == 1 and err.count("\n") == 1 and "cut.jpg: corrupt JPEG data" in err
    assert "Corrupt JPEG data" not in err  # libjpeg's own warning was captured
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.jpg", "good.png"]


def test_whole_jpeg_still_reads_exactly_like_opencv(tmp_path: Path) -> None:
    path = save_jpeg(tmp_path / "ok.jpg", smooth_frame(size=(256, 320)))
    expected = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB) / np.float32(255)
    np.testing.assert_array_equal(read_frame(path).pixels, expected)


@pytest.mark.shared_data
def test_real_deepfuse_jpegs_raise_no_false_alarm(shared_data: Path) -> None:
    scene = min(p for p in (shared_data / "brackets" / "deepfuse").iterdir() if p.is_dir())
    for path in sorted(scene.glob("*.jpg")):
        assert read_frame(path).pixels.ndim == 3
    assert math.isfinite(load_bracket([scene], align=False).frames[-1].ev)
