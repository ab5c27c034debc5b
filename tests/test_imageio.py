"""core.imageio.write_image: exact 8/16-bit round trips, EXIF into JPEG, refusals that leave nothing behind."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import piexif
import pytest
import tifffile
from conftest import expose, render_scene

from lutfuse.core.bracket import load_image
from lutfuse.core.errors import OutputError
from lutfuse.core.imageio import write_image


def rendered(height: int = 48, width: int = 64) -> np.ndarray:
    """A rendered frame with smooth gradients and edges, H×W×3 float32 in [0,1]."""
    return expose(render_scene(height, width, seed=3), -1.0).astype(np.float32)


def quantised_16(height: int = 48, width: int = 64) -> np.ndarray:
    """Random 16-bit values as float32 k/65535 (every level a 16-bit file can hold exactly)."""
    levels = np.random.default_rng(1).integers(0, 65536, (height, width, 3))
    return (levels / 65535.0).astype(np.float32)


def read_independently(path: Path) -> np.ndarray:
    """Read a written file with OpenCV / tifffile (not our loader) -> raw uint8/uint16 RGB array."""
    if path.suffix.lower() in (".tif", ".tiff"):
        return tifffile.imread(path)
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)


def leftovers(folder: Path) -> list[str]:
    """Names of temp files a writer may have left behind."""
    return [p.name for p in folder.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]


@pytest.mark.parametrize("suffix", [".png", ".tif", ".tiff"])
def test_16_bit_round_trip_is_exact(suffix: str, tmp_path: Path) -> None:
    image = quantised_16()
    out = write_image(tmp_path / f"out{suffix}", image, bit_depth=16)
    raw = read_independently(out)
    assert raw.dtype == np.uint16 and raw.shape == image.shape
    np.testing.assert_array_equal(raw, np.round(image * 65535).astype(np.uint16))
    loaded, bits, _ = load_image(out)
    assert bits == 16
    np.testing.assert_array_equal(loaded, image)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_8_bit_round_trip_rounds_to_nearest_level(suffix: str, tmp_path: Path) -> None:
    image = rendered() * 0.999 + 0.0003  # values between 8-bit levels
    out = write_image(tmp_path / f"out{suffix}", image, bit_depth=8)
    raw = read_independently(out)
    assert raw.dtype == np.uint8
    np.testing.assert_array_equal(raw, np.round(image * 255).astype(np.uint8))
    loaded, bits, _ = load_image(out)
    assert bits == 8 and np.abs(loaded - image).max() <= 0.5 / 255 + 1e-6


def test_out_of_range_values_are_clipped(tmp_path: Path) -> None:
    image = np.zeros((4, 5, 3), np.float32)
    image[0, 0], image[1, 1] = -0.5, 1.7
    raw = read_independently(write_image(tmp_path / "c.png", image, bit_depth=16))
    assert raw[0, 0].tolist() == [0, 0, 0] and raw[1, 1].tolist() == [65535] * 3


def test_jpeg_keeps_exif_and_resets_orientation(tmp_path: Path) -> None:
    image = rendered()
    exif = piexif.dump({"0th": {piexif.ImageIFD.Make: b"TestCam", piexif.ImageIFD.Orientation: 6},
                        "Exif": {piexif.ExifIFD.ExposureTime: (1, 250), piexif.ExifIFD.FNumber: (56, 10),
                                 piexif.ExifIFD.ISOSpeedRatings: 400}})
    out = write_image(tmp_path / "out.jpg", image, exif=exif, quality=95)
    data = piexif.load(str(out))
    assert data["0th"][piexif.ImageIFD.Make] == b"TestCam"
    assert data["0th"][piexif.ImageIFD.Orientation] == 1  # pixels are already upright
    assert data["Exif"][piexif.ExifIFD.ExposureTime] == (1, 250)
    assert data["Exif"][piexif.ExifIFD.ISOSpeedRatings] == 400
    assert (data["Exif"][piexif.ExifIFD.PixelXDimension], data["Exif"][piexif.ExifIFD.PixelYDimension]) == (64, 48)
    # Orientation 1 means no viewer (OpenCV included) rotates the written pixels again.
    assert cv2.imread(str(out), cv2.IMREAD_COLOR).shape == (48, 64, 3)
    loaded, bits, block = load_image(out)
    assert bits == 8 and loaded.shape == image.shape
    assert np.abs(loaded - image).mean() < 2 / 255  # quality 95
    assert piexif.load(block)["Exif"][piexif.ExifIFD.FNumber] == (56, 10)


def test_jpeg_quality_changes_the_file(tmp_path: Path) -> None:
    image = rendered()
    low = write_image(tmp_path / "low.jpg", image, quality=20)
    high = write_image(tmp_path / "high.jpg", image, quality=98)
    assert low.stat().st_size < high.stat().st_size
    err = [np.abs(load_image(p)[0] - image).mean() for p in (low, high)]
    assert err[1] < err[0]


def test_refuses_existing_file_unless_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    out.write_bytes(b"keep me")
    with pytest.raises(OutputError, match=r"out\.png: already exists"):
        write_image(out, rendered())
    assert out.read_bytes() == b"keep me"
    assert leftovers(tmp_path) == []
    write_image(out, rendered(), overwrite=True)
    assert read_independently(out).shape == (48, 64, 3)
    assert leftovers(tmp_path) == []


def test_commit_never_replaces_a_file_that_appeared_after_the_check(tmp_path: Path) -> None:
    from lutfuse.core.imageio import commit

    out = tmp_path / "late.png"
    out.write_bytes(b"written by someone else meanwhile")
    with pytest.raises(OutputError, match="already exists"):
        commit(out, b"new bytes", overwrite=False)
    assert out.read_bytes() == b"written by someone else meanwhile"
    assert leftovers(tmp_path) == []
    commit(out, b"new bytes", overwrite=True)
    assert out.read_bytes() == b"new bytes"


def test_refuses_to_write_over_an_input_even_with_overwrite(tmp_path: Path) -> None:
    frame = write_image(tmp_path / "frame.png", rendered())
    before = frame.read_bytes()
    (tmp_path / "sub").mkdir()
    link = tmp_path / "link.png"
    link.symlink_to(frame)
    aliases = [frame, tmp_path / "sub" / ".." / "frame.png", link]
    for alias in aliases:
        with pytest.raises(OutputError, match="input"):
            write_image(alias, np.zeros((48, 64, 3), np.float32), overwrite=True, inputs=[frame])
    hard = tmp_path / "hard.png"
    os.link(frame, hard)
    with pytest.raises(OutputError, match="input"):
        write_image(frame, np.zeros((48, 64, 3), np.float32), overwrite=True, inputs=[hard])
    assert frame.read_bytes() == before
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(("name", "kwargs", "reason"), [
    ("missing/out.png", {}, "does not exist"),
    ("out.gif", {}, "unsupported output type '.gif'"),
    ("out", {}, "unsupported output type"),
    ("out.jpg", {"bit_depth": 16}, "JPEG holds only 8 bits"),
    ("out.png", {"bit_depth": 12}, "8 or 16"),
    ("out.jpg", {"quality": 0}, "quality"),
])
def test_refusals_name_the_file_and_leave_nothing(name: str, kwargs: dict, reason: str, tmp_path: Path) -> None:
    with pytest.raises(OutputError, match=reason) as info:
        write_image(tmp_path / name, rendered(), **kwargs)
    assert Path(name).name in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_failed_rename_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "link", no_space)
    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(OutputError, match="out.tif: cannot write"):
        write_image(tmp_path / "out.tif", rendered(), bit_depth=16)
    assert list(tmp_path.iterdir()) == []


def test_non_finite_pixels_are_refused_naming_the_file_and_their_origin(tmp_path: Path) -> None:
    image = rendered()
    image[3, 4, 1] = np.nan
    image[5, 6, 0] = np.inf
    with pytest.raises(OutputError, match=r"n\.png: not written: the image has 2 NaN or infinite values "
                                          r"\(made from weights\.pt\)"):
        write_image(tmp_path / "n.png", image, origin="weights.pt")
    assert list(tmp_path.iterdir()) == []


def test_bad_shapes_are_a_programming_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="shape"):
        write_image(tmp_path / "s.png", np.zeros((4, 4, 5), np.float32))
    assert list(tmp_path.iterdir()) == []
