"""Metadata into every output format: EXIF of the middle frame, the exposure list, Software, XMP and ICC (checked
with Pillow and tifffile, not with our own reader); EXIF too large for a JPEG segment; TIFF/JPEG options."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pyexiv2
import pytest
import tifffile
from conftest import expose, render_scene
from PIL import Image, ImageCms, JpegImagePlugin

from lutfuse import __version__
from lutfuse.core.bracket import Bracket, load_bracket
from lutfuse.core.cli import main
from lutfuse.core.imageio import write_image
from lutfuse.core.metadata import MetadataWarning, OutputMetadata, srgb_profile

XMP = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
       'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"><dc:creator><rdf:Seq><rdf:li>Ada</rdf:li>'
       '</rdf:Seq></dc:creator></rdf:Description></rdf:RDF></x:xmpmeta>')
EXPOSURES = ("1/500", "1/125", "1/30")


def tag_file(path: Path, exposure: str, extra: dict[str, str] | None = None) -> None:
    """Give an image file camera, lens and exposure EXIF (as a camera writes them), through exiv2."""
    with pyexiv2.Image(str(path)) as image:
        image.modify_exif({"Exif.Image.Make": "TestCam", "Exif.Image.Model": "TC-1",
                           "Exif.Photo.LensModel": "TestLens 24-70mm", "Exif.Photo.ExposureTime": exposure,
                           "Exif.Photo.FNumber": "56/10", "Exif.Photo.ISOSpeedRatings": "200",
                           "Exif.Photo.DateTimeOriginal": "2024:05:06 07:08:09", **(extra or {})})


@pytest.fixture
def tagged_bracket(tmp_path: Path) -> Bracket:
    """A 3-frame JPEG bracket whose files carry camera, lens and exposure EXIF; the middle frame is 1/125 s."""
    scene = render_scene(48, 64)
    folder = tmp_path / "bracket"
    folder.mkdir()
    for i, (ev, exposure) in enumerate(zip((-2.0, 0.0, 2.0), EXPOSURES)):
        path = folder / f"{i:02d}.jpg"
        Image.fromarray((expose(scene, ev) * 255).round().astype(np.uint8)).save(path, quality=95)
        tag_file(path, exposure)
    return load_bracket(folder, align=False)


def pil_exif(path: Path) -> dict[str, object]:
    """Pillow's view of a written file's EXIF (IFD0 + Exif IFD), keyed by tag name."""
    from PIL.ExifTags import TAGS

    with Image.open(path) as im:
        exif = im.getexif()
        merged = dict(exif) | dict(exif.get_ifd(0x8769))
        icc = im.info.get("icc_profile")
    return {TAGS.get(k, k): v for k, v in merged.items()} | {"icc": icc}


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".tif"])
def test_every_format_carries_middle_exif_exposures_software_and_srgb(tagged_bracket: Bracket, tmp_path: Path,
                                                                      suffix: str) -> None:
    meta = OutputMetadata.from_bracket(tagged_bracket)
    out = write_image(tmp_path / f"fused{suffix}", tagged_bracket.mean(), metadata=meta)
    tags = pil_exif(out)
    assert (tags["Make"], tags["Model"], tags["LensModel"]) == ("TestCam", "TC-1", "TestLens 24-70mm")
    assert float(tags["ExposureTime"]) == pytest.approx(1 / 125)  # the middle frame's, not the first one's
    assert float(tags["FNumber"]) == pytest.approx(5.6) and tags["ISOSpeedRatings"] == 200
    assert tags["DateTimeOriginal"] == "2024:05:06 07:08:09"
    assert tags["Software"] == f"LUTFuse {__version__}"
    assert tags["Orientation"] == 1
    description = tags["ImageDescription"]
    assert "00.jpg -2.0 EV 1/500 s f/5.6 ISO 200" in description
    assert "02.jpg +2.1 EV 1/30 s" in description  # log2(125/30)
    assert tags["icc"] == srgb_profile()  # untagged frames are sRGB, and the output says so
    assert ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(tags["icc"]))).strip()


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".tif"])
def test_the_frames_icc_profile_and_xmp_are_carried(tagged_bracket: Bracket, tmp_path: Path, suffix: str) -> None:
    lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB", colorTemp=5000)).tobytes()  # any non-sRGB profile
    meta = OutputMetadata(exif=tagged_bracket.middle().exif, icc=lab, xmp=XMP.encode())
    out = write_image(tmp_path / f"tagged{suffix}", tagged_bracket.mean(), metadata=meta)
    assert pil_exif(out)["icc"] == lab
    if suffix == ".tif":  # TIFF tag 34675 (InterColorProfile) and 700 (XMP), read by tifffile
        with tifffile.TiffFile(out) as tif:
            assert tif.pages.first.tags[34675].value == lab
            assert b"Ada" in bytes(tif.pages.first.tags[700].value)
    with pyexiv2.Image(str(out)) as image:
        xmp = image.read_xmp()
    assert xmp["Xmp.dc.creator"] == ["Ada"]
    assert xmp["Xmp.tiff.Orientation"] == "1"  # the written pixels are upright


def test_a_bracket_in_adobe_rgb_gives_an_adobe_rgb_output(tmp_path: Path) -> None:
    import imagecodecs

    # Adobe RGB (1998): its primaries, D65 white and gamma 563/256, made by LittleCMS
    adobe = imagecodecs.cms_profile("rgb", whitepoint=[0.3127, 0.3290, 1.0],
                                    primaries=[0.64, 0.33, 1.0, 0.21, 0.71, 1.0, 0.15, 0.06, 1.0], gamma=563 / 256)
    scene = render_scene(48, 64)
    folder = tmp_path / "adobe"
    folder.mkdir()
    for i, ev in enumerate((-2.0, 0.0, 2.0)):
        Image.fromarray((expose(scene, ev) * 255).round().astype(np.uint8)).save(folder / f"{i}.jpg", quality=95,
                                                                                 icc_profile=adobe)
    for suffix in (".jpg", ".png", ".tif"):
        out = tmp_path / f"fused{suffix}"
        assert main(["fuse", str(folder), "-o", str(out), "--method", "mertens", "--no-align"]) == 0
        assert pil_exif(out)["icc"] == adobe  # the pixels are in the frames' space, and the file says so


def test_oversize_exif_is_trimmed_for_jpeg_and_png_and_kept_whole_in_tiff(shared_cases: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    frames = shared_cases / "exif-oversize"
    jpg = tmp_path / "x.jpg"
    assert main(["fuse", str(frames), "-o", str(jpg), "--no-align"]) == 0
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if "EXIF trimmed" in line]
    assert len(notes) == 1 and str(jpg) in notes[0] and "UserComment" in notes[0]
    tags = pil_exif(jpg)
    assert (tags["Make"], tags["Model"], tags["ISOSpeedRatings"]) == ("Example", "Camera", 100)
    assert float(tags["ExposureTime"]) == pytest.approx(1 / 25) and float(tags["FNumber"]) == 8
    assert "UserComment" not in tags
    png = tmp_path / "x.png"
    assert main(["fuse", str(frames), "-o", str(png), "--no-align"]) == 0
    assert len([line for line in capsys.readouterr().err.splitlines() if "EXIF trimmed" in line]) == 1
    assert pil_exif(png)["Make"] == "Example"
    tif = tmp_path / "x.tif"
    assert main(["fuse", str(frames), "-o", str(tif), "--no-align"]) == 0
    assert "EXIF trimmed" not in capsys.readouterr().err
    with pyexiv2.Image(str(tif)) as image:
        assert len(image.read_exif()["Exif.Photo.UserComment"]) > 65533


def test_trimming_drops_free_text_before_camera_lens_and_exposure(tagged_bracket: Bracket, tmp_path: Path) -> None:
    source = tmp_path / "big.tif"  # TIFF holds EXIF of any size
    tifffile.imwrite(source, np.zeros((16, 16, 3), np.uint8), photometric="rgb")
    tag_file(source, "1/60", {"Exif.Photo.UserComment": "charset=Ascii " + "x" * 70000,
                              "Exif.Image.Artist": "A. Photographer", "Exif.Photo.ImageUniqueID": "u" * 32})
    with pyexiv2.Image(str(source)) as image:
        assert len(image.read_exif()["Exif.Photo.UserComment"]) > 70000
    block = load_bracket([source, source], align=False).middle().exif
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = write_image(tmp_path / "t.jpg", tagged_bracket.mean(), metadata=OutputMetadata(exif=block))
    messages = [str(w.message) for w in caught if issubclass(w.category, MetadataWarning)]
    assert len(messages) == 1 and "UserComment" in messages[0]
    tags = pil_exif(out)
    assert tags["LensModel"] == "TestLens 24-70mm" and tags["Artist"] == "A. Photographer"
    assert tags["ImageUniqueID"] == "u" * 32 and "UserComment" not in tags  # only what had to go went
    assert float(tags["ExposureTime"]) == pytest.approx(1 / 60)


@pytest.mark.parametrize(("option", "code", "predictor"), [("deflate", 8, 2), ("lzw", 5, 2), ("none", 1, 1)])
def test_tiff_compression_options_round_trip_exactly(option: str, code: int, predictor: int, tmp_path: Path) -> None:
    levels = np.random.default_rng(2).integers(0, 65536, (40, 56, 3))
    image = (levels / 65535.0).astype(np.float32)
    out = write_image(tmp_path / f"{option}.tif", image, bit_depth=16, compression=option)
    with tifffile.TiffFile(out) as tif:
        page = tif.pages.first
        assert int(page.compression) == code and int(page.predictor) == predictor
        np.testing.assert_array_equal(page.asarray(), levels.astype(np.uint16))


def test_tiff_defaults_to_deflate_and_is_smaller_than_uncompressed(tmp_path: Path) -> None:
    image = expose(render_scene(96, 128), 0.0).astype(np.float32)
    default = write_image(tmp_path / "d.tif", image, bit_depth=16)
    plain = write_image(tmp_path / "n.tif", image, bit_depth=16, compression="none")
    with tifffile.TiffFile(default) as tif:
        assert int(tif.pages.first.compression) == 8 and tif.pages.first.dtype == np.uint16
    assert default.stat().st_size < plain.stat().st_size


@pytest.mark.parametrize(("option", "pil_code"), [("444", 0), ("422", 1), ("420", 2)])
def test_jpeg_subsampling_option(option: str, pil_code: int, tmp_path: Path) -> None:
    image = expose(render_scene(48, 64), 0.0).astype(np.float32)
    out = write_image(tmp_path / f"s{option}.jpg", image, subsampling=option, quality=90)
    with Image.open(out) as im:
        assert JpegImagePlugin.get_sampling(im) == pil_code


def test_cli_passes_tiff_and_jpeg_options(tagged_bracket: Bracket, tmp_path: Path) -> None:
    folder = tagged_bracket.frames[0].path.parent
    tif = tmp_path / "o.tif"
    assert main(["fuse", str(folder), "-o", str(tif), "--method", "mertens", "--compression", "lzw",
                 "--bit-depth", "16"]) == 0
    with tifffile.TiffFile(tif) as f:
        assert int(f.pages.first.compression) == 5 and f.pages.first.dtype == np.uint16
    jpg = tmp_path / "o.jpg"
    assert main(["fuse", str(folder), "-o", str(jpg), "--method", "mertens", "--subsampling", "420",
                 "--quality", "80"]) == 0
    with Image.open(jpg) as im:
        assert JpegImagePlugin.get_sampling(im) == 2
    assert pil_exif(jpg)["Make"] == "TestCam"


def test_cube_base_image_and_cube_apply_carry_metadata(tagged_bracket: Bracket, tmp_path: Path) -> None:
    folder = tagged_bracket.frames[0].path.parent
    cube, base = tmp_path / "look.cube", tmp_path / "look_base.tif"
    assert main(["cube", str(folder), "-o", str(cube), "--base", str(base), "--grid", "9", "--no-align"]) == 0
    tags = pil_exif(base)
    assert tags["Make"] == "TestCam" and float(tags["ExposureTime"]) == pytest.approx(1 / 125)
    assert tags["Software"].startswith("LUTFuse") and tags["icc"] == srgb_profile()
    assert "base image for look.cube of 3 exposures" in tags["ImageDescription"]
    applied = tmp_path / "applied.png"
    assert main(["cube-apply", str(cube), str(tagged_bracket.frames[0].path), "-o", str(applied)]) == 0
    tags = pil_exif(applied)
    assert float(tags["ExposureTime"]) == pytest.approx(1 / 500) and tags["icc"] == srgb_profile()


def _png_chunks(path: Path) -> dict[bytes, bytes]:
    """Chunk type -> data of a PNG file (the first of each type)."""
    import struct

    data, pos, chunks = path.read_bytes(), 8, {}
    while pos + 8 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        chunks.setdefault(ctype, data[pos + 8:pos + 8 + length])
        pos += 12 + length
    return chunks


@pytest.mark.parametrize("icc", ["srgb", "adobe"])
def test_png_icc_profile_has_a_name_and_reads_back_without_warnings(tagged_bracket: Bracket, tmp_path: Path,
                                                                    capfd: pytest.CaptureFixture, icc: str) -> None:
    import cv2
    import imagecodecs

    profile = (srgb_profile() if icc == "srgb"  # else Adobe RGB (1998), made by LittleCMS
               else imagecodecs.cms_profile("rgb", whitepoint=[0.3127, 0.3290, 1.0], gamma=563 / 256,
                                            primaries=[0.64, 0.33, 1.0, 0.21, 0.71, 1.0, 0.15, 0.06, 1.0]))
    out = write_image(tmp_path / "named.png", tagged_bracket.mean(),
                      metadata=OutputMetadata(exif=tagged_bracket.middle().exif, icc=profile))
    name = _png_chunks(out)[b"iCCP"].split(b"\0", 1)[0]
    assert 1 <= len(name) <= 79 and name == name.strip() and b"  " not in name  # PNG spec 11.3.3.3 keyword
    capfd.readouterr()
    assert cv2.imread(str(out)) is not None  # libpng: no "iCCP: bad keyword"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with Image.open(out) as im:
            im.load()
            assert im.info["icc_profile"] == profile
    assert "iCCP" not in capfd.readouterr().err


@pytest.mark.parametrize("code", range(1, 9))
def test_the_orientation_matrix_moves_coordinates_as_apply_orientation_moves_pixels(code: int) -> None:
    from lutfuse.core.exif import apply_orientation, orientation_matrix

    h, w = 3, 5
    stored = np.stack(np.meshgrid(np.arange(w), np.arange(h)), -1).astype(np.float64)  # each pixel holds its (x, y)
    turned = apply_orientation(stored, code)
    m = orientation_matrix(code, (h, w))
    ys, xs = np.mgrid[0:turned.shape[0], 0:turned.shape[1]]
    mapped = m @ np.stack([turned[..., 0].ravel(), turned[..., 1].ravel(), np.ones(turned[..., 0].size)])
    assert np.array_equal(mapped[:2], np.stack([xs.ravel(), ys.ravel()]))
