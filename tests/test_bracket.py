"""core.bracket: every format, EXIF orientation and EV ordering, alignment, RAW via a DNG we write, clear errors."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import piexif
import pytest
import tifffile
from conftest import expose, render_scene

from lutfuse.core.bracket import Bracket, Frame, brightness_evs, load_bracket, load_image, register_stack
from lutfuse.core.errors import BracketError, LUTFuseError
from lutfuse.core.registration import register

# ---------------------------------------------------------------------------------------------- helpers


def to_bgr(image: np.ndarray, bits: int = 8) -> np.ndarray:
    """H×W×3 float RGB in [0,1] -> uint8/uint16 BGR for cv2.imwrite."""
    top = 255 if bits == 8 else 65535
    return cv2.cvtColor(np.round(image * top).astype(np.uint8 if bits == 8 else np.uint16), cv2.COLOR_RGB2BGR)


def save(path: Path, image: np.ndarray, bits: int = 8) -> Path:
    """Write a PNG/JPEG with OpenCV (independently of core.imageio)."""
    assert cv2.imwrite(str(path), to_bgr(image, bits))
    return path


def save_jpeg(path: Path, image: np.ndarray, *, exposure_s: float | None = None, f_number: float = 8.0,
              iso: int | None = 100, orientation: int | None = None) -> Path:
    """A JPEG carrying the given EXIF exposure settings and orientation tag."""
    save(path, image)
    zeroth = {piexif.ImageIFD.Make: b"TestCam"}
    if orientation:
        zeroth[piexif.ImageIFD.Orientation] = orientation
    exif: dict = {}
    if exposure_s:
        exif = {piexif.ExifIFD.ExposureTime: (1, round(1 / exposure_s)),
                piexif.ExifIFD.FNumber: (round(f_number * 10), 10)}
        if iso:
            exif[piexif.ExifIFD.ISOSpeedRatings] = iso
    piexif.insert(piexif.dump({"0th": zeroth, "Exif": exif}), str(path))
    return path


def scene_frames(evs: tuple[float, ...] = (-3.0, -1.0, 1.0), size: tuple[int, int] = (48, 64)) -> list[np.ndarray]:
    """Rendered frames (8-bit quantised, gamma 2.2) of one scene at the given EVs, each H×W×3 float32."""
    scene = render_scene(*size, seed=5)
    return [expose(scene, ev).astype(np.float32) for ev in evs]


def textured_scene(height: int, width: int, seed: int = 0) -> np.ndarray:
    """render_scene radiance times a multi-scale texture, so that motion is visible at every pyramid level."""
    rng = np.random.default_rng(seed)
    texture = np.zeros((height, width), np.float32)
    for sigma in (1, 3, 9, 27):
        texture += cv2.GaussianBlur(rng.standard_normal((height, width)).astype(np.float32), (0, 0), sigma) * sigma**0.5
    return render_scene(height, width, seed) * np.exp(0.5 * texture / texture.std())[..., None]


XYZ_TO_LINEAR_SRGB = (3.2404542, -1.5371385, -0.4985314, -0.9692660, 1.8760108, 0.0415560,
                      0.0556434, -0.2040259, 1.0572252)


def write_dng(path: Path, linear_rgb: np.ndarray, *, exposure_s: float | None = None, orientation: int = 1,
              black: int = 256, white: int = 4095) -> Path:
    """A minimal DNG (12-bit RGGB Bayer mosaic of a linear-sRGB image) written with tifffile.

    ColorMatrix1 is XYZ -> linear sRGB and AsShotNeutral is (1,1,1), so the "camera" sees sRGB primaries and a
    correct RAW pipeline must return the sRGB encoding of `linear_rgb`.
    """
    h, w, _ = linear_rgb.shape
    mosaic = np.empty((h, w))
    mosaic[0::2, 0::2] = linear_rgb[0::2, 0::2, 0]
    mosaic[0::2, 1::2] = linear_rgb[0::2, 1::2, 1]
    mosaic[1::2, 0::2] = linear_rgb[1::2, 0::2, 1]
    mosaic[1::2, 1::2] = linear_rgb[1::2, 1::2, 2]
    data = np.round(black + np.clip(mosaic, 0, 1) * (white - black)).astype(np.uint16)

    def rationals(values: tuple[float, ...], den: int = 10000) -> list[int]:
        return [v for x in values for v in (round(x * den), den)]

    tags = [
        (50706, "B", 4, (1, 4, 0, 0), True),            # DNGVersion
        (50707, "B", 4, (1, 1, 0, 0), True),            # DNGBackwardVersion
        (50708, "s", 0, "LUTFuse test camera", True),   # UniqueCameraModel
        (271, "s", 0, "LUTFuse", True),                 # Make
        (272, "s", 0, "Test", True),                    # Model
        (274, "H", 1, (orientation,), True),            # Orientation
        (33421, "H", 2, (2, 2), True),                  # CFARepeatPatternDim
        (33422, "B", 4, (0, 1, 1, 2), True),            # CFAPattern RGGB
        (50714, "H", 1, (black,), True),                # BlackLevel
        (50717, "H", 1, (white,), True),                # WhiteLevel
        (50721, "2i", 9, rationals(XYZ_TO_LINEAR_SRGB), True),  # ColorMatrix1
        (50728, "2I", 3, rationals((1.0, 1.0, 1.0)), True),     # AsShotNeutral
        (50778, "H", 1, (21,), True),                   # CalibrationIlluminant1 = D65
    ]
    if exposure_s:
        tags += [(33434, "2I", 1, (1, round(1 / exposure_s)), True), (33437, "2I", 1, (8, 1), True)]
    tifffile.imwrite(path, data, photometric=32803, subfiletype=0, extratags=tags, metadata=None)
    return path


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """The sRGB transfer curve (IEC 61966-2-1)."""
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * np.clip(linear, 0, None) ** (1 / 2.4) - 0.055)


def srgb_decode(encoded: np.ndarray) -> np.ndarray:
    """Inverse of srgb_encode."""
    return np.where(encoded <= 0.04045, encoded / 12.92, ((encoded + 0.055) / 1.055) ** 2.4)


# ---------------------------------------------------------------------------------------------- formats


def test_8_bit_png_and_jpeg(tmp_path: Path) -> None:
    image = scene_frames()[1]
    png, bits, exif = load_image(save(tmp_path / "a.png", image))
    assert png.dtype == np.float32 and png.shape == (48, 64, 3) and bits == 8 and exif is None
    np.testing.assert_array_equal(png, image)  # exact: the frame is 8-bit quantised
    jpg, bits, _ = load_image(save(tmp_path / "a.JPG", image))
    assert bits == 8 and np.abs(jpg - image).mean() < 3 / 255


def test_16_bit_png_and_tiff_keep_full_precision(tmp_path: Path) -> None:
    levels = np.random.default_rng(0).integers(0, 65536, (40, 50, 3)).astype(np.uint16)
    expected = levels.astype(np.float32) / 65535
    cv2.imwrite(str(tmp_path / "a.png"), cv2.cvtColor(levels, cv2.COLOR_RGB2BGR))
    tifffile.imwrite(tmp_path / "a.tif", levels, photometric="rgb")
    for name in ("a.png", "a.tif"):
        image, bits, _ = load_image(tmp_path / name)
        assert bits == 16 and image.dtype == np.float32
        np.testing.assert_array_equal(image, expected)
    # 16 bits really are kept: neighbouring 16-bit levels stay distinct.
    assert len(np.unique(image)) > 256 * 4


def test_8_bit_tiff_grey_and_alpha_images(tmp_path: Path) -> None:
    image = scene_frames()[1]
    rgb8 = np.round(image * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "a.tiff", rgb8, photometric="rgb")
    loaded, bits, _ = load_image(tmp_path / "a.tiff")
    assert bits == 8
    np.testing.assert_array_equal(loaded, image)
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(rgb8, 2, 0), photometric="rgb", planarconfig="separate")
    np.testing.assert_array_equal(load_image(tmp_path / "planar.tif")[0], image)
    grey = rgb8[..., 1]
    cv2.imwrite(str(tmp_path / "g.png"), grey)
    loaded, _, _ = load_image(tmp_path / "g.png")
    assert loaded.shape == (48, 64, 3)
    np.testing.assert_array_equal(loaded[..., 2], grey / np.float32(255))
    rgba = np.dstack([cv2.cvtColor(rgb8, cv2.COLOR_RGB2BGR), np.full((48, 64), 7, np.uint8)])
    cv2.imwrite(str(tmp_path / "a.png"), rgba)
    np.testing.assert_array_equal(load_image(tmp_path / "a.png")[0], image)  # alpha dropped, colours kept


# ---------------------------------------------------------------------------------------------- orientation


def asymmetric(height: int = 24, width: int = 40) -> np.ndarray:
    """A frame whose every rotation and mirror image differs (JPEG-friendly blocks)."""
    image = np.full((height, width, 3), 0.2, np.float32)
    image[:8, :16] = (1.0, 0.1, 0.1)
    image[-8:, -8:] = (0.1, 0.1, 1.0)
    image[:8, -8:] = (0.1, 1.0, 0.1)
    return np.round(image * 255) / np.float32(255)  # 8-bit levels, so PNG/TIFF round trips are exact


@pytest.mark.parametrize("code", range(1, 9))
def test_jpeg_orientation_is_applied_once(code: int, tmp_path: Path) -> None:
    path = save_jpeg(tmp_path / "o.jpg", asymmetric(), orientation=code)
    image, _, exif = load_image(path)
    # OpenCV's IMREAD_COLOR applies EXIF orientation itself: an independent reference.
    expected = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) / np.float32(255)
    assert image.shape == expected.shape == ((24, 40, 3) if code <= 4 else (40, 24, 3))
    np.testing.assert_array_equal(image, expected)
    assert piexif.load(exif)["0th"][piexif.ImageIFD.Orientation] == 1  # the block now matches the pixels


def test_tiff_orientation_tag(tmp_path: Path) -> None:
    rgb16 = np.round(asymmetric() * 65535).astype(np.uint16)
    tifffile.imwrite(tmp_path / "r.tif", rgb16, photometric="rgb", extratags=[(274, "H", 1, (6,), True)])
    image, bits, _ = load_image(tmp_path / "r.tif")
    assert bits == 16
    np.testing.assert_array_equal(image, np.rot90(asymmetric(), -1))  # 6 = turn clockwise to view


@pytest.mark.skipif(not hasattr(cv2, "imencodeWithMetadata"), reason="PNG EXIF needs OpenCV >= 5")
def test_png_exif_orientation(tmp_path: Path) -> None:
    block = piexif.dump({"0th": {piexif.ImageIFD.Orientation: 8}})
    ok, buf = cv2.imencodeWithMetadata(".png", to_bgr(asymmetric()), [cv2.IMAGE_METADATA_EXIF],
                                       [np.frombuffer(block[6:], np.uint8)])
    (tmp_path / "r.png").write_bytes(buf.tobytes())
    image, _, _ = load_image(tmp_path / "r.png")
    np.testing.assert_array_equal(image, np.rot90(asymmetric(), 1))


# ---------------------------------------------------------------------------------------------- EV and order


def test_exif_orders_frames_and_reports_ev(tmp_path: Path) -> None:
    frames = scene_frames()
    # Same light reaches the sensor differently: t, N and ISO all take part in EV.
    settings = [(1 / 500, 8.0, 100), (1 / 125, 5.6, 100), (1 / 60, 8.0, 800)]
    paths = [save_jpeg(tmp_path / f"{name}.jpg", frame, exposure_s=t, f_number=n, iso=iso)
             for name, frame, (t, n, iso) in zip("cab", frames, settings)]
    bracket = load_bracket([paths[2], paths[0], paths[1]], align=False)
    assert [f.path.name for f in bracket.frames] == ["c.jpg", "a.jpg", "b.jpg"]
    expected = [math.log2((1 / round(1 / t)) * iso / 100 / n**2) for t, n, iso in settings]
    assert [f.ev for f in bracket.frames] == pytest.approx(expected, abs=1e-9)
    assert {f.ev_source for f in bracket.frames} == {"exif"}
    assert piexif.load(bracket.middle().exif)["Exif"][piexif.ExifIFD.ExposureTime] == (1, 125)


def test_missing_exif_on_one_frame_uses_brightness_for_all(tmp_path: Path) -> None:
    frames = scene_frames()
    # EXIF that would order the frames wrongly, and one frame without EXIF: brightness must decide.
    paths = [save_jpeg(tmp_path / "0.jpg", frames[0], exposure_s=1 / 30),
             save_jpeg(tmp_path / "1.jpg", frames[1], exposure_s=1 / 1000),
             save_jpeg(tmp_path / "2.jpg", frames[2])]
    bracket = load_bracket(paths[::-1], align=False)
    assert [f.path.name for f in bracket.frames] == ["0.jpg", "1.jpg", "2.jpg"]
    assert {f.ev_source for f in bracket.frames} == {"brightness"}
    # ISO on some frames only: their EVs are not comparable either.
    paths[2] = save_jpeg(tmp_path / "2.jpg", frames[2], exposure_s=1 / 500, iso=None)
    bracket = load_bracket(paths[::-1], align=False)
    assert [f.path.name for f in bracket.frames] == ["0.jpg", "1.jpg", "2.jpg"]
    assert {f.ev_source for f in bracket.frames} == {"brightness"}
    # ISO on no frame: taken as constant, the EXIF exposure times decide.
    paths = [save_jpeg(tmp_path / f"{i}.jpg", frame, exposure_s=t, iso=None)
             for i, (frame, t) in enumerate(zip(frames, (1 / 250, 1 / 60, 1 / 15)))]
    bracket = load_bracket(paths[::-1], align=False)
    assert [f.path.name for f in bracket.frames] == ["0.jpg", "1.jpg", "2.jpg"]
    assert [f.ev for f in bracket.frames] == pytest.approx([math.log2(1 / 250 / 64), math.log2(1 / 60 / 64),
                                                             math.log2(1 / 15 / 64)])


def test_brightness_orders_and_estimates_ev_steps(tmp_path: Path) -> None:
    frames = scene_frames((-3.0, -1.0, 1.0, 2.0), size=(96, 128))
    paths = [save(tmp_path / f"{name}.png", frame) for name, frame in zip("dbca", frames)]
    bracket = load_bracket(paths[::-1], align=False)
    assert [f.path.name for f in bracket.frames] == ["d.png", "b.png", "c.png", "a.png"]
    evs = [f.ev for f in bracket.frames]
    assert evs[0] == 0.0 and {f.ev_source for f in bracket.frames} == {"brightness"}
    # Rendered 2, 2 and 1 stops apart (gamma 2.2, the loader's assumption): the estimate is close.
    assert np.diff(evs) == pytest.approx([2.0, 2.0, 1.0], abs=0.25)
    assert brightness_evs(frames) == pytest.approx(evs)


# ---------------------------------------------------------------------------------------------- alignment


def shifted_bracket(offsets: list[tuple[int, int]], evs: tuple[float, ...] = (-2.0, 0.0, 2.0),
                    size: tuple[int, int] = (160, 200), margin: int = 12) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(moved frames, frames seen from the middle frame's viewpoint): crops of one scene at offsets (dx, dy)."""
    h, w = size
    scene = textured_scene(h + 2 * margin, w + 2 * margin, seed=2)
    moved, still = [], []
    for ev, (dx, dy) in zip(evs, offsets):
        full = expose(scene, ev).astype(np.float32)
        moved.append(full[margin + dy:margin + dy + h, margin + dx:margin + dx + w])
        still.append(full[margin:margin + h, margin:margin + w])
    return moved, still


def test_alignment_undoes_a_camera_shift() -> None:
    offsets = [(5, -3), (0, 0), (-4, 6)]
    moved, still = shifted_bracket(offsets)
    records = register(moved, "auto")
    for rec, (dx, dy) in zip(records, offsets):
        # a crop moved by (dx, dy) shows scene point x + dx at x: it maps onto the reference at x + dx
        assert rec.applied == (rec.index != 1)
        np.testing.assert_allclose(rec.matrix[:2, 2], [dx, dy], atol=0.1)
        np.testing.assert_allclose(rec.matrix[:2, :2], np.eye(2), atol=2e-3)
    stack = np.stack(moved)
    _, valid, _ = register_stack(stack, None, "auto")
    inner = (slice(8, -8), slice(8, -8))
    for a, s in zip(stack, still):
        err = np.abs(a[inner] - s[inner])
        assert err.mean() < 0.005 and np.percentile(err, 99) < 0.05  # bilinear resampling of a sub-pixel estimate
    assert np.abs(moved[0][inner] - still[0][inner]).mean() > 0.02  # the test would see a missing alignment
    # The uncovered edges are invalid (frame 0 moved 5 px right, 3 px up: its left and bottom strips) and hold
    # the reference's content there, re-rendered at frame 0's exposure.
    assert valid is not None and valid[1].all()
    assert not valid[0][:, :5].any() and not valid[0][-3:].any() and valid[0][inner].all()
    np.testing.assert_allclose(stack[0][:, :4], still[0][:, :4], atol=0.08)


def test_in_place_reordering_matches_fancy_indexing() -> None:
    from itertools import permutations

    from lutfuse.core.bracket import _permute

    for order in permutations(range(4)):
        stack = np.arange(4 * 6, dtype=np.float32).reshape(4, 2, 3)
        expected = stack[list(order)].copy()
        _permute(stack, list(order))
        np.testing.assert_array_equal(stack, expected)


def test_load_bracket_aligns_by_default_and_not_when_asked(tmp_path: Path) -> None:
    moved, still = shifted_bracket([(3, 2), (0, 0), (-2, -5)])
    paths = [save(tmp_path / f"{i}.png", frame) for i, frame in enumerate(moved)]
    aligned = load_bracket(paths)
    assert aligned.aligned and aligned.images.shape == (3, 160, 200, 3)
    assert [r.applied for r in aligned.registration] == [True, False, True]
    inner = (slice(8, -8), slice(8, -8))
    for image, s in zip(aligned.images, still):
        assert np.abs(image[inner] - s[inner]).mean() < 0.004
    raw = load_bracket(paths, align=False)
    assert not raw.aligned
    for image, m in zip(raw.images, moved):
        np.testing.assert_array_equal(image, m)


def test_bracket_properties(tmp_path: Path) -> None:
    frames = scene_frames()
    paths = [save(tmp_path / "0.png", frames[0]), save(tmp_path / "1.png", frames[1], bits=16),
             save(tmp_path / "2.png", frames[2])]
    bracket = load_bracket(paths, align=False)
    assert [f.bit_depth for f in bracket.frames] == [8, 16, 8] and bracket.bit_depth == 16
    assert bracket.middle().path.name == "1.png"
    assert bracket.images.dtype == np.float32 and bracket.images.shape == (3, 48, 64, 3)
    np.testing.assert_allclose(bracket.mean(), np.mean(frames, axis=0), atol=1e-5)
    # A Bracket built by hand (e.g. by another module) stacks its frames itself.
    handmade = Bracket(frames=[Frame(Path(f"{i}"), im, 8, float(i), "brightness", None)
                               for i, im in enumerate(frames)], aligned=False)
    np.testing.assert_array_equal(handmade.images, np.stack(frames))


def test_folder_input_sorted_by_name_hidden_and_other_files_ignored(tmp_path: Path) -> None:
    frames = scene_frames()
    for name, frame in zip(("b.png", "c.png", "a.png"), frames):
        save(tmp_path / name, frame)
    save(tmp_path / ".hidden.png", frames[0] * 0 + 1)  # would be the brightest frame if read
    (tmp_path / "notes.txt").write_text("not an image")
    bracket = load_bracket([tmp_path], align=False)
    assert sorted(f.path.name for f in bracket.frames) == ["a.png", "b.png", "c.png"]
    assert [f.path.name for f in bracket.frames] == ["b.png", "c.png", "a.png"]  # darkest first
    assert len(load_bracket(str(tmp_path), align=False).frames) == 3


# ---------------------------------------------------------------------------------------------- RAW


def test_dng_decodes_to_srgb_with_orientation(tmp_path: Path) -> None:
    h, w = 64, 96
    y, x = np.mgrid[0:h, 0:w] + 0.5
    linear = np.stack([x / w, y / h, np.full_like(x, 0.25)], axis=-1) * 0.9
    image, bits, exif = load_image(write_dng(tmp_path / "a.dng", linear))
    assert bits == 16 and image.shape == (h, w, 3)
    inner = (slice(4, -4), slice(4, -4))  # demosaicing at the border is not exact
    # sRGB curve, camera white balance, no auto-brightening: the encoded scene comes back.
    assert np.abs(image[inner] - srgb_encode(linear)[inner]).max() < 0.002
    rotated, _, _ = load_image(write_dng(tmp_path / "r.dng", linear, orientation=6))
    assert rotated.shape == (w, h, 3)
    np.testing.assert_allclose(rotated, np.rot90(image, -1), atol=1e-4)
    assert exif is None or piexif.load(exif)["0th"].get(piexif.ImageIFD.Orientation, 1) == 1


def test_dng_bracket_ordered_by_exposure_and_comparable(tmp_path: Path) -> None:
    h, w = 48, 64
    y, x = np.mgrid[0:h, 0:w] + 0.5
    linear = np.stack([x / w, y / h, 0.5 * np.ones_like(x)], axis=-1) * 0.8
    bright = write_dng(tmp_path / "bright.dng", linear, exposure_s=1 / 30)
    dark = write_dng(tmp_path / "dark.dng", linear / 4, exposure_s=1 / 125)
    bracket = load_bracket([bright, dark], align=False)
    assert [f.path.name for f in bracket.frames] == ["dark.dng", "bright.dng"]
    assert bracket.bit_depth == 16 and {f.ev_source for f in bracket.frames} == {"exif"}
    assert bracket.frames[1].ev - bracket.frames[0].ev == pytest.approx(math.log2(125 / 30), abs=0.01)
    # Exposures stay comparable (no auto-bright, no per-file white level): 2 stops apart in linear light.
    inner = (slice(6, -6), slice(6, -6))
    ratio = srgb_decode(bracket.images[1][inner]).mean() / srgb_decode(bracket.images[0][inner]).mean()
    assert ratio == pytest.approx(4.0, rel=0.02)


def test_broken_raw_files_raise_bracket_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.cr2"
    junk.write_bytes(b"definitely not a raw file" * 50)
    with pytest.raises(BracketError, match=r"junk\.cr2: cannot read camera RAW \("):
        load_image(junk)
    good = write_dng(tmp_path / "good.dng", np.full((32, 48, 3), 0.3))
    cut = tmp_path / "cut.dng"
    cut.write_bytes(good.read_bytes()[:600])
    with pytest.raises(BracketError, match=r"cut\.dng: cannot read camera RAW \("):
        load_image(cut)


# ---------------------------------------------------------------------------------------------- bad input


@pytest.fixture
def two_frames(tmp_path: Path) -> list[Path]:
    """Two valid 48×64 PNG frames."""
    frames = scene_frames((-1.0, 1.0))
    return [save(tmp_path / "f0.png", frames[0]), save(tmp_path / "f1.png", frames[1])]


def bracket_error(inputs: list, **kwargs: object) -> str:
    """The message of the BracketError that load_bracket raises (fails the test if none is raised)."""
    with pytest.raises(BracketError) as info:
        load_bracket(inputs, **kwargs)
    assert isinstance(info.value, LUTFuseError) and "\n" not in str(info.value)
    return str(info.value)


def reason(message: str, path: Path) -> str:
    """The reason part of "PATH: reason", checking that the message starts with the file's path."""
    assert message.startswith(f"{path}: "), message
    return message[len(f"{path}: "):]


def test_missing_file(two_frames: list[Path], tmp_path: Path) -> None:
    message = bracket_error([two_frames[0], tmp_path / "nope.jpg"])
    assert reason(message, tmp_path / "nope.jpg") == "file not found"


@pytest.mark.parametrize(("name", "content", "why"), [
    ("garbage.jpg", b"hello, I am not a JPEG at all" * 10, "not a readable JPEG"),
    ("garbage.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not a readable PNG"),
    ("empty.png", b"", "empty file"),
    ("garbage.tif", b"II*\x00" + b"\xff" * 40, "cannot read TIFF"),
])
def test_unreadable_files(name: str, content: bytes, why: str, two_frames: list[Path], tmp_path: Path) -> None:
    (tmp_path / name).write_bytes(content)
    message = bracket_error([two_frames[0], tmp_path / name])
    assert reason(message, tmp_path / name).startswith(why)


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".tif"])
def test_truncated_files(suffix: str, two_frames: list[Path], tmp_path: Path) -> None:
    image = scene_frames((0.0,), size=(96, 128))[0]
    whole = tmp_path / f"whole{suffix}"
    if suffix == ".tif":
        tifffile.imwrite(whole, np.round(image * 65535).astype(np.uint16), photometric="rgb")
    else:
        save(whole, image)
    data = whole.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) * 2 // 3])
    message = bracket_error([two_frames[0], cut])
    kind = {".jpg": "JPEG", ".png": "PNG", ".tif": "TIFF"}[suffix]
    assert reason(message, cut).startswith(f"truncated {kind}")


def test_unsupported_format_names_the_extension(two_frames: list[Path], tmp_path: Path) -> None:
    gif = tmp_path / "anim.gif"
    gif.write_bytes(b"GIF89a")
    message = bracket_error([two_frames[0], gif])
    assert reason(message, gif).startswith("unsupported format '.gif'")


def test_frame_count_limits(two_frames: list[Path], tmp_path: Path) -> None:
    assert "at least 2 frames" in bracket_error([two_frames[0]])
    many = [shutil.copy(two_frames[i % 2], tmp_path / f"m{i}.png") for i in range(10)]
    assert "at most 9 frames, got 10" in bracket_error(many)
    assert "2-9" in bracket_error([])


def test_frames_of_different_sizes_name_both(two_frames: list[Path], tmp_path: Path) -> None:
    other = save(tmp_path / "small.png", scene_frames((0.0,), size=(40, 60))[0])
    message = bracket_error([two_frames[0], other])
    assert reason(message, other) == (f"size 60×40 differs from {two_frames[0]}: 64×48; "
                                      "all frames of a bracket must have the same size")


def test_pixel_limit(two_frames: list[Path], tmp_path: Path) -> None:
    message = bracket_error(two_frames, max_pixels=3000)  # the frames have 3072 px
    assert reason(message, two_frames[0]) == "64×48 is 0 MP, over the limit of 0.003 MP"
    # A header that promises 40000×40000 px is refused from the header alone, before any decoding.
    huge = bytearray((tmp_path / "f0.png").read_bytes())
    huge[16:24] = (40000).to_bytes(4, "big") * 2
    (tmp_path / "huge.png").write_bytes(bytes(huge))
    message = bracket_error([two_frames[0], tmp_path / "huge.png"])
    assert reason(message, tmp_path / "huge.png") == "40000×40000 is 1600 MP, over the limit of 200 MP"


def test_folders_without_images(two_frames: list[Path], tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert reason(bracket_error([empty]), empty).startswith("no image files in this folder")
    (empty / "readme.txt").write_text("x")
    (empty / ".hidden.png").write_bytes(two_frames[0].read_bytes())
    assert reason(bracket_error([empty]), empty).startswith("no image files in this folder")
    assert reason(bracket_error([two_frames[0], empty]), empty).startswith("is a folder")


# ---------------------------------------------------------------------------------------------- real data


@pytest.mark.shared_data
def test_real_hdrps_bracket(shared_data: Path) -> None:
    scene = shared_data / "brackets" / "hdrps" / "Cades_Cove"
    paths = [scene / "08.png", scene / "00.png", scene / "04.png"]
    bracket = load_bracket(paths)  # aligned: a tripod stack must come out unchanged
    assert [f.path.name for f in bracket.frames] == ["00.png", "04.png", "08.png"]
    assert bracket.images.shape == (3, 356, 536, 3) and bracket.bit_depth == 8
    steps = np.diff([f.ev for f in bracket.frames])
    assert np.all((steps > 2) & (steps < 6))  # 4 stops apart; estimated from brightness
    for frame, path in zip(bracket.frames, sorted(paths)):
        np.testing.assert_array_equal(frame.image, load_image(path)[0])


@pytest.mark.shared_data
def test_real_deepfuse_sequences_come_out_darkest_first(shared_data: Path) -> None:
    scenes = sorted(p for p in (shared_data / "brackets" / "deepfuse").iterdir() if p.is_dir())
    assert len(scenes) >= 10
    for scene in scenes:
        names = sorted(p.name for p in scene.iterdir() if p.suffix == ".jpg")  # 00 darkest by the data's README
        bracket = load_bracket([scene / n for n in names[::-1]], align=False)
        assert [f.path.name for f in bracket.frames] == names, scene.name
        assert bracket.frames[0].ev == 0.0 and bracket.frames[-1].ev > 1.0
