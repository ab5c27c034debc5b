"""Kinds of files photographers have that LUTFuse read or handled wrongly, each built on the fly from a real frame:
misnamed files, TIFFs whose first page is a thumbnail, TIFF extra channels that are not alpha, a frame that fails
while the next one decodes, outputs that share a file, side outputs of a run that does not finish, file names that
are not UTF-8 in the EXIF description, and EXIF exposures that contradict the pixels of a bright scene."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pyexiv2
import pytest
import tifffile
from PIL import Image

from lutfuse.core import pipeline
from lutfuse.core.bracket import load_bracket
from lutfuse.core.cli import build_parser
from lutfuse.core.commands.fuse import settings_from
from lutfuse.core.errors import BracketError, OutputError
from lutfuse.core.readers import read_frame

REPO = Path(__file__).resolve().parents[1]


def _frame(shared_data: Path, index: int = 1, size: tuple[int, int] = (96, 160), whole: bool = False) -> np.ndarray:
    """H×W×3 uint8 RGB crop of a real deepfuse/Seq_11 frame (the top-left: a bright window), or with `whole` the
    whole frame scaled to `size`."""
    bgr = cv2.imread(str(shared_data / "brackets" / "deepfuse" / "Seq_11" / f"{index:02d}.jpg"))
    if whole:
        return np.ascontiguousarray(cv2.resize(bgr, size[::-1], interpolation=cv2.INTER_AREA)[..., ::-1])
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)[:size[0], :size[1]])


def _cli(*args: str | Path, cwd: Path | None = None, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO.parent), QT_QPA_PLATFORM="offscreen")
    return subprocess.run([*prefix, sys.executable, "-m", "lutfuse", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


def _without_file_permission_override() -> tuple[str, ...]:
    """A command prefix under which file permissions apply: nothing for a normal user; for root (CI) util-linux
    `setpriv` dropping CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH; skips the test where neither is possible."""
    if os.geteuid() != 0:
        return ()
    import shutil

    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without util-linux setpriv: file permissions cannot be made to apply")
    return (setpriv, "--bounding-set", "-dac_override,-dac_read_search")


# ---------------------------------------------------------------------------------------------- reading

@pytest.mark.parametrize("content, name", [("PNG", "a.jpg"), ("TIFF", "a.jpg"), ("JPEG", "a.tif"),
                                            ("PNG", "a.tiff"), ("JPEG", "a.png")])
def test_misnamed_file_is_read_by_its_content_with_a_note(content: str, name: str, shared_data: Path,
                                                          tmp_path: Path) -> None:
    rgb = _frame(shared_data)
    path = tmp_path / name
    if content == "TIFF":
        tifffile.imwrite(path, rgb.astype(np.uint16) * 257, photometric="rgb", compression="zlib")
    else:
        Image.fromarray(rgb).save(path, format=content, **({"quality": 100, "subsampling": 0}
                                                            if content == "JPEG" else {}))
    decoded = read_frame(path)
    if content == "JPEG":  # lossy: the reference is the same bytes decoded as a .jpg
        rgb = cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_UNCHANGED)[..., ::-1]
    assert decoded.pixels.shape == rgb.shape
    assert np.abs(decoded.pixels - rgb / 255).max() <= 1e-6
    assert decoded.bit_depth == (16 if content == "TIFF" else 8)
    assert decoded.notes[0] == (f"{path}: the file holds a {content} image although its name ends in "
                                f"'{path.suffix}'; it is read as {content}")


def _exif(exposure: float, orientation: int = 1) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif.get_ifd(0x8769)[0x829A] = exposure  # Exif IFD ExposureTime, seconds
    return exif.tobytes()


@pytest.mark.parametrize("kind", ["WebP", "AVIF"])
def test_webp_and_avif_frames_read_with_their_exif_and_orientation(kind: str, shared_data: Path,
                                                                   tmp_path: Path) -> None:
    """Web and phone formats: the pixels as stored, the EXIF exposure, and the orientation to apply (an AVIF keeps
    it in its irot/imir boxes, which Pillow reports as the EXIF tag)."""
    rgb = _frame(shared_data)
    path = tmp_path / f"a.{kind.lower()}"
    options = {"lossless": True} if kind == "WebP" else {"quality": 95, "subsampling": "4:4:4"}
    Image.fromarray(rgb).save(path, format=kind.upper(), exif=_exif(0.01, 6), **options)
    decoded = read_frame(path)
    assert decoded.pixels.shape == rgb.shape and decoded.bit_depth == 8 and not decoded.notes
    assert decoded.orientation == 6 and decoded.settings[0] == pytest.approx(0.01)
    error = np.abs(decoded.pixels - rgb / 255)
    assert error.max() <= 1e-6 if kind == "WebP" else error.mean() < 2 / 255


def test_misnamed_webp_and_avif_with_a_generic_brand_are_read_by_content(shared_data: Path, tmp_path: Path) -> None:
    rgb = _frame(shared_data)
    webp = tmp_path / "a.jpg"
    Image.fromarray(rgb).save(webp, format="WEBP", lossless=True)
    decoded = read_frame(webp)
    assert np.abs(decoded.pixels - rgb / 255).max() <= 1e-6
    assert decoded.notes[0].endswith("it is read as WebP")
    # An AVIF whose major brand is the generic mif1 says "avif" only among its compatible brands.
    avif = tmp_path / "b.heic"
    Image.fromarray(rgb).save(avif, format="AVIF", quality=95)
    data = bytearray(avif.read_bytes())
    assert data[4:12] == b"ftypavif"
    data[8:12] = b"mif1"
    avif.write_bytes(bytes(data))
    decoded = read_frame(avif)
    assert decoded.notes[0].endswith("it is read as AVIF") and np.abs(decoded.pixels - rgb / 255).mean() < 3 / 255


def test_animated_webp_gives_its_first_frame_with_a_note(shared_data: Path, tmp_path: Path) -> None:
    first, second = _frame(shared_data, 0), _frame(shared_data, 2)
    path = tmp_path / "anim.webp"
    Image.fromarray(first).save(path, format="WEBP", lossless=True, save_all=True,
                                append_images=[Image.fromarray(second)])
    decoded = read_frame(path)
    assert np.abs(decoded.pixels - first / 255).max() <= 1e-6
    assert decoded.notes == [f"{path}: animated WebP with 2 frames; its first frame is used"]


def test_damaged_webp_is_one_line_naming_the_file(shared_data: Path, tmp_path: Path) -> None:
    path = tmp_path / "cut.webp"
    Image.fromarray(_frame(shared_data)).save(path, format="WEBP", quality=90)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(BracketError) as caught:
        read_frame(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: cannot read WebP") and "\n" not in message


def test_bracket_of_webp_and_avif_frames_fuses_from_the_cli(shared_data: Path, tmp_path: Path) -> None:
    for index, kind in zip((0, 1, 2), ("WEBP", "AVIF", "WEBP")):
        bgr = cv2.imread(str(shared_data / "brackets" / "deepfuse" / "Seq_11" / f"{index:02d}.jpg"))
        rgb = cv2.resize(bgr, (240, 160), interpolation=cv2.INTER_AREA)[..., ::-1]
        Image.fromarray(np.ascontiguousarray(rgb)).save(tmp_path / f"{index}.{kind.lower()}", format=kind,
                                                        quality=95)
    out = tmp_path / "out.png"
    result = _cli("fuse", tmp_path / "0.webp", tmp_path / "1.avif", tmp_path / "2.webp", "-o", out)
    assert result.returncode == 0, result.stderr
    fused = cv2.imread(str(out))
    assert fused.shape == (160, 240, 3) and 40 < fused.mean() < 215


def _png_with_chunks(path: Path, rgb: np.ndarray, chunks: list[tuple[bytes, bytes]]) -> None:
    """Write 8/16-bit RGB as a PNG with extra chunks right after IHDR, where the specification puts colour chunks."""
    ok, encoded = cv2.imencode(".png", rgb[..., ::-1])
    assert ok
    data = encoded.tobytes()
    extra = b"".join(struct.pack(">I", len(p)) + n + p + struct.pack(">I", zlib.crc32(n + p)) for n, p in chunks)
    path.write_bytes(data[:33] + extra + data[33:])  # after the 8-byte signature and the 25-byte IHDR chunk


def test_linear_png_tagged_by_its_gama_chunk_is_converted_to_srgb(shared_data: Path, tmp_path: Path) -> None:
    """gAMA 1.0 without iCCP or sRGB chunk (linear light, as some HDR tools write): PNG spec 11.3.3.5."""
    rgb = _frame(shared_data)
    code = rgb / 255.0
    linear = np.where(code <= 0.04045, code / 12.92, ((code + 0.055) / 1.055) ** 2.4)
    path = tmp_path / "linear.png"
    _png_with_chunks(path, np.round(linear * 65535).astype(np.uint16), [(b"gAMA", struct.pack(">I", 100000))])
    decoded = read_frame(path)
    assert decoded.notes == [f"{path}: colour encoding taken from its PNG gAMA 1.00000 chunk and converted to sRGB"]
    assert decoded.icc is None and np.abs(decoded.pixels - code).max() < 1.5 / 255


@pytest.mark.parametrize("chunks", [
    [(b"gAMA", struct.pack(">I", 45455))],  # what libpng writers put for sRGB
    [(b"gAMA", struct.pack(">I", 45455)),
     (b"cHRM", struct.pack(">8I", 31270, 32900, 64000, 33000, 30000, 60000, 15000, 6000))],
    [(b"sRGB", b"\x00"), (b"gAMA", struct.pack(">I", 100000))],  # the sRGB chunk takes precedence over gAMA
])
def test_png_whose_chunks_say_srgb_is_read_as_stored(chunks: list[tuple[bytes, bytes]], shared_data: Path,
                                                     tmp_path: Path) -> None:
    rgb = _frame(shared_data)
    path = tmp_path / "tagged.png"
    _png_with_chunks(path, rgb, chunks)
    decoded = read_frame(path)
    assert not decoded.notes and np.abs(decoded.pixels - rgb / 255).max() <= 1e-6


def test_raw_suffix_is_never_redirected_to_the_tiff_reader(shared_data: Path, tmp_path: Path) -> None:
    """Camera RAW files are TIFF inside (NEF, CR2, DNG): their suffix, not their signature, picks LibRaw."""
    path = tmp_path / "a.nef"
    tifffile.imwrite(path, _frame(shared_data), photometric="rgb")
    with pytest.raises(BracketError) as caught:
        read_frame(path)
    # LibRaw's own words, not the repr of its bytes (b'Unsupported file format or not RAW file')
    assert str(caught.value) == (f"{path}: cannot read camera RAW (Unsupported file format or not RAW file: a camera "
                                 "newer than this LibRaw?)")


@pytest.mark.parametrize("layout", ["thumbnail page first", "full image in a SubIFD"])
def test_tiff_whose_first_page_is_a_thumbnail_reads_the_full_image(layout: str, shared_data: Path,
                                                                    tmp_path: Path) -> None:
    rgb16 = _frame(shared_data).astype(np.uint16) * 257
    path = tmp_path / "thumb.tif"
    with tifffile.TiffWriter(path) as tif:
        if layout == "thumbnail page first":  # NewSubfileType 1 = reduced-resolution copy
            tif.write(rgb16[::4, ::4], photometric="rgb", subfiletype=1)
            tif.write(rgb16, photometric="rgb")
        else:  # TIFF/EP: IFD0 a reduced preview, the image in its SubIFD
            tif.write(rgb16[::4, ::4], photometric="rgb", subfiletype=1, subifds=1)
            tif.write(rgb16, photometric="rgb", subfiletype=0)
    decoded = read_frame(path)
    assert decoded.pixels.shape == rgb16.shape
    np.testing.assert_array_equal(np.round(decoded.pixels * 65535).astype(np.uint16), rgb16)
    assert "reduced-resolution copy" in decoded.notes[0] and str(path) in decoded.notes[0]


def test_tiff_with_a_normal_first_page_and_a_thumbnail_after_it_is_unchanged(shared_data: Path,
                                                                             tmp_path: Path) -> None:
    rgb16 = _frame(shared_data).astype(np.uint16) * 257
    path = tmp_path / "pages.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(rgb16, photometric="rgb")
        tif.write(rgb16[::4, ::4], photometric="rgb", subfiletype=1)
    decoded = read_frame(path)
    np.testing.assert_array_equal(np.round(decoded.pixels * 65535).astype(np.uint16), rgb16)
    assert decoded.notes == []


@pytest.mark.parametrize("extra", [0, 1234, 65535])
def test_unspecified_extra_samples_are_not_alpha(extra: int, shared_data: Path, tmp_path: Path) -> None:
    """ExtraSamples 0 ("unspecified data", e.g. a saved selection) must not blank the frame where it is 0."""
    rgb16 = _frame(shared_data).astype(np.uint16) * 257
    samples = np.dstack([rgb16, np.full(rgb16.shape[:2], extra, np.uint16)])
    samples[:40, :50, 3] = 0  # a selection-like shape: would be a hole if read as alpha
    path = tmp_path / "extra.tif"
    tifffile.imwrite(path, samples, photometric="rgb", extrasamples=["unspecified"])
    decoded = read_frame(path)
    assert decoded.valid is None
    np.testing.assert_array_equal(np.round(decoded.pixels * 65535).astype(np.uint16), rgb16)
    assert decoded.notes == [f"{path}: 1 extra channel(s) of unspecified meaning (ExtraSamples 0, not alpha) ignored"]


def test_unassociated_alpha_is_still_a_validity_mask(shared_data: Path, tmp_path: Path) -> None:
    rgb16 = _frame(shared_data).astype(np.uint16) * 257
    alpha = np.full(rgb16.shape[:2], 65535, np.uint16)
    alpha[:40, :50] = 0
    path = tmp_path / "alpha.tif"
    tifffile.imwrite(path, np.dstack([rgb16, alpha]), photometric="rgb", extrasamples=["unassalpha"])
    decoded = read_frame(path)
    assert decoded.valid is not None and not decoded.valid[:40, :50].any() and decoded.valid[40:].all()


def test_twelve_bit_jpeg_reads_with_its_exif(shared_data: Path, tmp_path: Path) -> None:
    """12-bit JPEG (ITU-T T.81 extended): OpenCV's libjpeg is 8-bit only and it used to be refused as corrupt."""
    import imagecodecs

    rgb12 = _frame(shared_data).astype(np.uint16) * 16
    path = tmp_path / "twelve.jpg"
    path.write_bytes(imagecodecs.jpeg8_encode(rgb12, bitspersample=12, level=95))
    with pyexiv2.Image(str(path)) as image:
        image.modify_exif({"Exif.Photo.ExposureTime": "1/100", "Exif.Image.Orientation": "6"})
    decoded = read_frame(path)
    assert decoded.bit_depth == 16 and decoded.orientation == 6 and decoded.settings[0] == pytest.approx(0.01)
    np.testing.assert_allclose(decoded.pixels, imagecodecs.jpeg8_decode(path.read_bytes()) / 4095, atol=1e-6)
    assert np.abs(decoded.pixels - rgb12 / 4095).max() < 8 / 255  # and it is the picture (lossy at level 95)


CMYK_PROFILES = [Path("/usr/share/color/icc/ghostscript/default_cmyk.icc"),  # Debian libgs-common
                 Path("/usr/share/ghostscript/iccprofiles/default_cmyk.icc")]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_cmyk_tiff_without_a_profile_is_converted_naively_with_a_note(dtype: type, shared_data: Path,
                                                                      tmp_path: Path) -> None:
    rgb = _frame(shared_data)
    cmyk = np.array(Image.fromarray(rgb).convert("CMYK"))
    expected = np.array(Image.fromarray(cmyk, "CMYK").convert("RGB")) / 255  # Pillow: R = (1-C)(1-K)...
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[:20, :30] = 0
    samples = np.dstack([cmyk, alpha]).astype(dtype) * (257 if dtype == np.uint16 else 1)
    path = tmp_path / "cmyk.tif"
    tifffile.imwrite(path, samples, photometric="separated", extrasamples=["unassalpha"], compression="lzw")
    decoded = read_frame(path)
    assert decoded.bit_depth == (8 if dtype == np.uint8 else 16) and decoded.icc is None
    assert np.abs(decoded.pixels - expected).max() <= 0.5 / 255
    assert decoded.valid is not None and not decoded.valid[:20, :30].any() and decoded.valid[20:].all()
    assert "CMYK without an ICC profile" in decoded.notes[0] and str(path) in decoded.notes[0]


def test_cmyk_tiff_with_its_profile_is_converted_by_littlecms(shared_data: Path, tmp_path: Path) -> None:
    import io

    from PIL import ImageCms

    from lutfuse.core.profiles import srgb_profile

    profile = next((p for p in CMYK_PROFILES if p.is_file()), None)
    if profile is None:
        pytest.skip("no CMYK ICC profile on this machine (Debian: libgs-common)")
    icc = profile.read_bytes()
    cms = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    srgb = ImageCms.ImageCmsProfile(io.BytesIO(srgb_profile()))
    rgb = _frame(shared_data)
    cmyk = np.array(ImageCms.applyTransform(Image.fromarray(rgb), ImageCms.buildTransform(srgb, cms, "RGB", "CMYK")))
    back = ImageCms.buildTransform(cms, srgb, "CMYK", "RGB", renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
                                   flags=0x2000)  # black point compensation
    expected = np.array(ImageCms.applyTransform(Image.fromarray(cmyk, "CMYK"), back)) / 255
    path = tmp_path / "print.tif"
    tifffile.imwrite(path, cmyk.astype(np.uint16) * 257, photometric="separated", iccprofile=icc)
    decoded = read_frame(path)
    # Pillow's transform is 8-bit with LittleCMS's optimised tables; ours is float: within 3/255
    assert np.abs(decoded.pixels - expected).max() <= 3 / 255
    assert decoded.icc is None and decoded.bit_depth == 16
    assert decoded.notes[0].startswith(f"{path}: converted from CMYK (")


def test_tiff_with_spot_colour_inks_is_refused_naming_the_ink_set(tmp_path: Path) -> None:
    path = tmp_path / "spot.tif"
    tifffile.imwrite(path, np.zeros((32, 32, 4), np.uint8), photometric="separated", extratags=[(332, "H", 1, 2)])
    with pytest.raises(BracketError) as caught:
        read_frame(path)
    assert str(caught.value) == (f"{path}: unsupported TIFF colour model SEPARATED with a non-CMYK ink set "
                                 "(InkSet 2) (use RGB, CMYK or greyscale)")


@pytest.mark.parametrize("data", [b"II*\x00", b"II*\x00\x00\x00\x00\x00", b"MM\x00*\x00\x00\x00\x08",
                                  b"II*\x00\xff\xff\xff\x00"])
def test_tiff_without_an_image_directory_says_so(data: bytes, tmp_path: Path) -> None:
    """A TIFF cut after its header, or pointing outside itself, used to say "cannot read TIFF: 0"."""
    path = tmp_path / "cut.tif"
    path.write_bytes(data)
    with pytest.raises(BracketError) as caught:
        read_frame(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert message.startswith(f"{path}: cannot read TIFF: ")
    assert "no image directory in the file" in message or "damaged or truncated TIFF structure" in message
    assert not message.endswith(": 0")


@pytest.mark.parametrize("kind", ["tif-tiled-zlib", "tif-lzw", "bigtiff", "png", "jpeg-progressive"])
def test_every_truncation_is_one_line_naming_the_file(kind: str, shared_data: Path, tmp_path: Path) -> None:
    import io

    rgb = _frame(shared_data, size=(64, 96))
    buffer = io.BytesIO()
    if kind.startswith("tif") or kind == "bigtiff":
        tifffile.imwrite(buffer, rgb.astype(np.uint16) * 257, photometric="rgb", bigtiff=kind == "bigtiff",
                         compression="lzw" if kind == "tif-lzw" else "zlib" if kind == "tif-tiled-zlib" else None,
                         tile=(32, 32) if kind == "tif-tiled-zlib" else None)
        suffix = ".tif"
    else:
        Image.fromarray(rgb).save(buffer, "PNG" if kind == "png" else "JPEG", progressive=True)
        suffix = ".png" if kind == "png" else ".jpg"
    data = buffer.getvalue()
    path = tmp_path / f"frame{suffix}"
    for cut in np.linspace(0, len(data) - 1, 25).astype(int):
        path.write_bytes(data[:cut])
        with pytest.raises(BracketError) as caught:
            read_frame(path)
        assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value), (cut, caught.value)
    path.write_bytes(data)
    assert read_frame(path).pixels.shape == rgb.shape


# ---------------------------------------------------------------------------------------------- the error line

def test_error_line_is_printed_while_the_next_frame_is_still_decoding(shared_data: Path, tmp_path: Path) -> None:
    """A frame that fails at once (empty) beside one that takes a while to decode: the decode in the pool has
    stderr redirected into its capture file, and the error line used to vanish there (exit 1, no word)."""
    (tmp_path / "a.jpg").write_bytes(b"")
    big = cv2.resize(_frame(shared_data), (3000, 2000), interpolation=cv2.INTER_LINEAR).astype(np.uint16) * 257
    cv2.imwrite(str(tmp_path / "b.png"), big[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1])
    for _ in range(2):
        done = _cli("fuse", "a.jpg", "b.png", "-o", "out.jpg", "--no-align", cwd=tmp_path)
        assert done.returncode == 1
        assert done.stderr.strip().splitlines() == ["lutfuse fuse: error: a.jpg: empty file"]
    assert not (tmp_path / "out.jpg").exists()


# ---------------------------------------------------------------------------------------------- outputs

def _bracket(shared_data: Path, folder: Path, size: tuple[int, int] = (96, 160), whole: bool = False) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(3):
        paths.append(folder / f"{i}.png")
        Image.fromarray(_frame(shared_data, i, size, whole)).save(paths[-1])
    return paths


@pytest.mark.parametrize("command, flags", [
    ("fuse", ["-o", "same.png", "--deghost", "low", "--ghost-mask", "same.png"]),
    ("fuse", ["-o", "out.png", "--transforms", "side.json", "--deghost", "low", "--ghost-mask", "./side.json"]),
    ("cube", ["-o", "x.cube", "--base", "b.tif", "--transforms", "b.tif"]),
])
def test_two_outputs_on_one_file_are_refused_before_any_work(command: str, flags: list[str], shared_data: Path,
                                                             tmp_path: Path) -> None:
    frames = _bracket(shared_data, tmp_path / "f")
    before = sorted(os.listdir(tmp_path))
    done = _cli(command, *frames, "--no-align", *flags, cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "given as both" in lines[0] and "each output needs a file of its own" in lines[0]
    assert sorted(os.listdir(tmp_path)) == before  # nothing written, not even the side output


def test_side_outputs_are_not_left_behind_when_the_image_is_not_written(shared_data: Path, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """--transforms / --ghost-mask describe the output image: a run that fails (or is stopped) before the image
    is written leaves neither; a run that succeeds writes both."""
    frames = _bracket(shared_data, tmp_path / "f")
    settings = settings_from(build_parser("fuse").parse_args(
        ["fuse", "x", "-o", "y", "--method", "mertens", "--no-align", "--deghost", "low"]))
    side = {"transforms": tmp_path / "t.json", "ghost_mask": tmp_path / "g.png"}

    def fail(*args, **kwargs):
        raise OutputError(f"{args[0]}: disk full (simulated)")

    with monkeypatch.context() as patch:
        patch.setattr("lutfuse.core.export.write_fused", fail)
        with pytest.raises(OutputError, match="disk full"):
            pipeline.fuse_files(frames, tmp_path / "out.png", settings, **side)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]
    pipeline.fuse_files(frames, tmp_path / "out.png", settings, **side)
    assert (tmp_path / "out.png").is_file() and side["transforms"].is_file()
    mask = cv2.imread(str(side["ghost_mask"]), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (96, 160) and mask.dtype == np.uint8


def test_file_name_that_is_not_utf8_stays_in_the_exif_description(shared_data: Path, tmp_path: Path) -> None:
    if sys.platform == "darwin" or os.fsencode("é") != "é".encode():
        pytest.skip("needs a filesystem that takes arbitrary bytes in names")
    frames = _bracket(shared_data, tmp_path / "f")
    odd = Path(os.fsdecode(bytes(tmp_path / "f") + b"/caf\xe9.png"))
    frames[0].rename(odd)
    done = _cli("fuse", odd, *frames[1:], "--no-align", "--method", "mertens", "-o", "out.jpg", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "trimmed" not in done.stderr
    with pyexiv2.ImageData((tmp_path / "out.jpg").read_bytes()) as image:
        description = image.read_exif()["Exif.Image.ImageDescription"]
    assert "caf\\xe9.png" in description and "1.png" in description and "2.png" in description


# ---------------------------------------------------------------------------------------------- exposure order

def _tagged(shared_data: Path, folder: Path, tags: list[dict[str, str]], names: list[str] | None = None,
            size: tuple[int, int] = (160, 240), whole: bool = True) -> list[Path]:
    """JPEG frames 0, 1, 2 (darkest first) of Seq_11 (the whole scene, or `_frame`'s crop) with the given EXIF tags
    written by exiv2, named `names` (default 0.jpg, 1.jpg, ...)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, tag in enumerate(tags):
        paths.append(folder / (names[i] if names else f"{i}.jpg"))
        Image.fromarray(_frame(shared_data, i, size, whole=whole)).save(paths[-1], quality=95)
        with pyexiv2.Image(str(paths[-1])) as image:
            image.modify_exif(tag)
    return paths


def _exposure(time: str) -> dict[str, str]:
    """EXIF exposure tags: the given time at f/8, ISO 100."""
    return {"Exif.Photo.ExposureTime": time, "Exif.Photo.FNumber": "8/1", "Exif.Photo.ISOSpeedRatings": "100"}


def test_exif_order_reversed_against_the_pixels_of_a_bright_scene_yields_to_brightness(shared_data: Path,
                                                                                     tmp_path: Path) -> None:
    """A mostly bright crop: the frames' mean light differs by only ~10 % per 2 EV, and EXIF exposure times in the
    reverse order used to pass as consistent, putting the brightest frame first."""
    # frame 0 is the darkest, EXIF calls it the brightest
    paths = _tagged(shared_data, tmp_path, [_exposure(t) for t in ["1/25", "1/100", "1/400"]], size=(96, 160),
                    whole=False)
    bracket = load_bracket(paths, align="off")
    assert [f.path.name for f in bracket.frames] == ["0.jpg", "1.jpg", "2.jpg"]
    assert all(f.ev_source == "brightness" for f in bracket.frames)
    assert any("EXIF says it is" in note and "pixels are darker" in note for note in bracket.notes)


def test_exif_order_that_agrees_with_the_pixels_is_kept(shared_data: Path, tmp_path: Path) -> None:
    # names in the reverse order: the result never depends on them
    paths = _tagged(shared_data, tmp_path, [_exposure(t) for t in ["1/400", "1/100", "1/25"]],
                    names=["2.jpg", "1.jpg", "0.jpg"], size=(96, 160), whole=False)
    bracket = load_bracket(paths, align="off")
    assert [f.path.name for f in bracket.frames] == ["2.jpg", "1.jpg", "0.jpg"]
    assert [f.ev_source for f in bracket.frames] == ["exif"] * 3
    assert np.allclose(np.diff([f.ev for f in bracket.frames]), 2.0)


# ---------------------------------------------------------------------------------------------- batch inputs

@pytest.mark.parametrize("mode", ["auto", "3", "folder"])
def test_batch_never_takes_an_earlier_result_for_a_frame(mode: str, shared_data: Path, tmp_path: Path) -> None:
    """`lutfuse batch shoot -o shoot` run twice: the first run's result (which carries its middle frame's EXIF)
    sits among the frames and used to be grouped and fused as one more exposure."""
    from lutfuse.core.grouping import plan_groups

    shoot = tmp_path / "shoot"
    folder = shoot / "b1" if mode == "folder" else shoot
    frames = _bracket(shared_data, folder, (160, 240), whole=True)
    settings = settings_from(build_parser("fuse").parse_args(["fuse", "x", "-o", "y", "--method", "mertens",
                                                              "--no-align"]))
    result = folder / "0_lut.png"
    pipeline.fuse_files(frames, result, settings)
    plan = plan_groups([shoot], mode)
    assert [group.paths for group in plan.groups] == [frames]
    assert plan.leftovers == [(result, f"a result written by LUTFuse {__import__('lutfuse').__version__}, "
                                       "not a camera frame")]


def test_implausible_exif_step_yields_to_brightness_with_a_note(shared_data: Path, tmp_path: Path) -> None:
    """One frame's ExposureTime is absurd (10 s beside 1/400 and 1/100: +10 EV in one step) but in the right
    order: EXIF used to be taken, giving EVs no camera bracket has."""
    paths = _tagged(shared_data, tmp_path, [{"Exif.Photo.ExposureTime": t, "Exif.Photo.FNumber": "8/1"}
                                            for t in ("1/400", "1/100", "10/1")])
    bracket = load_bracket(paths, align="off")
    assert [f.path.name for f in bracket.frames] == ["0.jpg", "1.jpg", "2.jpg"]
    assert [f.ev_source for f in bracket.frames] == ["brightness"] * 3
    assert bracket.frames[2].ev - bracket.frames[0].ev < 8
    assert any(note.startswith(f"{paths[2]}: EXIF puts it 10.0 EV above {paths[1]}") for note in bracket.notes)


def test_apex_shutter_and_aperture_values_give_the_exposure(shared_data: Path, tmp_path: Path) -> None:
    """Files with only the APEX ShutterSpeedValue / ApertureValue (no ExposureTime / FNumber): Tv 8.64, 6.64,
    4.64 are 1/400, 1/100, 1/25 s; Av 6 is f/8."""
    paths = _tagged(shared_data, tmp_path, [{"Exif.Photo.ShutterSpeedValue": tv, "Exif.Photo.ApertureValue": "6/1"}
                                            for tv in ("864/100", "664/100", "464/100")])
    decoded = read_frame(paths[0])
    assert decoded.settings[0] == pytest.approx(2 ** -8.64) and decoded.settings[1] == pytest.approx(8.0)
    bracket = load_bracket(paths[::-1], align="off")
    assert [f.path.name for f in bracket.frames] == ["0.jpg", "1.jpg", "2.jpg"]
    assert [f.ev_source for f in bracket.frames] == ["exif"] * 3
    assert np.allclose(np.diff([f.ev for f in bracket.frames]), 2.0)


def test_greyscale_frame_among_colour_frames_is_noted(shared_data: Path, tmp_path: Path) -> None:
    paths = _bracket(shared_data, tmp_path / "f", (160, 240), whole=True)
    grey = cv2.cvtColor(cv2.imread(str(paths[2])), cv2.COLOR_BGR2GRAY)
    cv2.imwrite(str(paths[2]), grey)  # an 8-bit one-channel PNG
    bracket = load_bracket(paths, align="off")
    assert [note for note in bracket.notes if "greyscale" in note] == [
        f"{paths[2]}: greyscale, while the other frames are in colour: it adds no colour to the fusion "
        "(a black-and-white export by mistake?)"]
    frame = next(f for f in bracket.frames if f.path == paths[2])
    np.testing.assert_array_equal(frame.image[..., 0], frame.image[..., 2])
    np.testing.assert_allclose(frame.image[..., 1], grey / 255, atol=1e-6)
    all_grey = [tmp_path / f"g{i}.png" for i in range(3)]
    for i, path in enumerate(all_grey):
        cv2.imwrite(str(path), cv2.cvtColor(cv2.imread(str(paths[i])), cv2.COLOR_BGR2GRAY))
    assert not any("greyscale" in note for note in load_bracket(all_grey, align="off").notes)
    black = tmp_path / "black.png"  # a frame exposed so short that it is all black is neutral, not greyscale
    cv2.imwrite(str(black), np.zeros((160, 240, 3), np.uint8))
    assert not any("greyscale" in note for note in load_bracket([black, *paths[:2]], align="off").notes)


def test_unreadable_frame_and_unwritable_output_folder_are_one_line_each(shared_data: Path, tmp_path: Path) -> None:
    prefix = _without_file_permission_override()
    frames = _bracket(shared_data, tmp_path / "in" / "A")
    frames[1].chmod(0)
    done = _cli("fuse", *frames, "-o", tmp_path / "out.png", "--no-align", cwd=tmp_path, prefix=prefix)
    assert (done.returncode, done.stderr.strip().splitlines()) == (1, [f"lutfuse fuse: error: {frames[1]}: "
                                                                        "permission denied"])
    frames[1].chmod(0o644)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    done = _cli("batch", tmp_path / "in", "-o", locked, "--group", "folder", "--no-align", cwd=tmp_path,
                prefix=prefix)
    assert (done.returncode, done.stderr.strip().splitlines()) == (1, [f"lutfuse batch: error: {locked}: the output "
                                                                        "folder is not writable (Permission denied)"])
    assert list(locked.iterdir()) == [] and not (tmp_path / "out.png").exists()


# ---------------------------------------------------------------------------------------------- more kinds

def _grey_png(path: Path, samples: np.ndarray, depth: int, chunks: list[tuple[bytes, bytes]]) -> None:
    """A greyscale (colour type 0) PNG of 1/2/4-bit `samples` (values below 2**depth) with `chunks` before IDAT."""
    packed = np.packbits(np.unpackbits(samples[..., None], axis=2)[..., 8 - depth:].reshape(len(samples), -1),
                         axis=1)
    raw = b"".join(b"\0" + row.tobytes() for row in packed)
    h, w = samples.shape

    def chunk(name: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + name + payload + struct.pack(">I", zlib.crc32(name + payload))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, 0, 0, 0, 0))
                     + b"".join(chunk(n, p) for n, p in chunks) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))


@pytest.mark.parametrize("depth", [1, 4, 8, 16])
def test_grey_png_colour_key_is_no_data(depth: int, shared_data: Path, tmp_path: Path) -> None:
    """tRNS on a greyscale PNG names one grey level as transparent (PNG spec 11.3.2.1); libpng through OpenCV
    honoured it for palette and RGB PNGs but dropped it for grey ones, so 'no data' pixels were fused as grey."""
    grey = np.asarray(Image.fromarray(_frame(shared_data, whole=True)).convert("L"))
    path = tmp_path / "key.png"
    if depth < 8:
        low = grey >> (8 - depth)
        level = int(np.median(low))
        _grey_png(path, low, depth, [(b"tRNS", struct.pack(">H", level))])
        expected, key = low / (2**depth - 1), low == level
    elif depth == 8:
        Image.fromarray(grey).save(path, transparency=int(grey[0, 0]))
        expected, key = grey / 255, grey == grey[0, 0]
    else:
        wide = grey.astype(np.uint16) * 257
        ok, encoded = cv2.imencode(".png", wide)
        assert ok
        data = encoded.tobytes()
        chunk = b"tRNS" + struct.pack(">H", int(wide[0, 0]))
        path.write_bytes(data[:33] + struct.pack(">I", 2) + chunk + struct.pack(">I", zlib.crc32(chunk)) + data[33:])
        expected, key = wide / 65535, wide == wide[0, 0]
    assert 0 < key.sum() < key.size
    decoded = read_frame(path)
    assert decoded.valid is not None and np.array_equal(~decoded.valid, key)
    assert np.abs(decoded.pixels[..., 1] - expected).max() <= 1e-6


def test_multi_page_tiff_stack_reads_its_first_page_with_a_note_and_alone_is_refused(shared_data: Path,
                                                                                     tmp_path: Path) -> None:
    """A whole bracket saved as one multi-page TIFF (stacking tools, scanners): the first page used to be read
    without a word, and given alone the file got 'a bracket needs at least 2 frames, got 1'."""
    stack = np.stack([_frame(shared_data, i, (160, 240), whole=True) for i in range(3)])
    path = tmp_path / "bracket.tif"
    with tifffile.TiffWriter(path) as tif:
        for page in stack:
            tif.write(page, photometric="rgb")
    decoded = read_frame(path)
    assert np.abs(decoded.pixels - stack[0] / 255).max() <= 1e-6
    assert decoded.notes == [f"{path}: holds 3 full-size images (pages); only the first is read (LUTFuse takes one "
                             "exposure per file: save each exposure of a bracket as its own file)"]
    done = _cli("fuse", path, "-o", tmp_path / "out.png")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"lutfuse fuse: error: {path}: one TIFF holding 3 images (a whole bracket in one file?); LUTFuse takes one "
        "exposure per file: save each exposure as its own file and give those"]
    assert not (tmp_path / "out.png").exists()


def _cropped_and_turned(shared_data: Path, folder: Path) -> tuple[list[Path], list[np.ndarray], list, list]:
    """Three frames of slightly different sizes, each cut from the middle of a larger one, the second stored turned
    (EXIF Orientation 6) -> (paths, the larger frames, upright sizes (H, W), each cut's top-left corner)."""
    whole = [_frame(shared_data, i, (164, 244), whole=True) for i in range(3)]
    sizes = [(160, 240), (162, 242), (161, 241)]  # upright H, W, each cut from the middle of `whole`
    corners = [((164 - h) // 2, (244 - w) // 2) for h, w in sizes]
    paths = []
    for i, (h, w) in enumerate(sizes):
        top, left = corners[i]
        pixels = whole[i][top:top + h, left:left + w]
        paths.append(folder / f"{i}.png")
        if i == 1:
            Image.fromarray(np.ascontiguousarray(np.rot90(pixels, 1))).save(paths[-1], exif=_exif(0.01, 6))
        else:
            Image.fromarray(pixels).save(paths[-1])
    return paths, whole, sizes, corners


def test_frames_a_few_pixels_apart_are_centre_cropped_to_their_common_size(shared_data: Path,
                                                                          tmp_path: Path) -> None:
    """Some cameras' HDR modes and raw converters' lens corrections crop each frame slightly differently; such a
    bracket used to be refused ('all frames of a bracket must have the same size'). One frame here is also stored
    turned (EXIF Orientation 6), so the crop happens after the turn."""
    paths, whole, sizes, corners = _cropped_and_turned(shared_data, tmp_path)
    bracket = load_bracket(paths, align="off")
    assert [f.path.name for f in bracket.frames] == ["0.png", "1.png", "2.png"]
    for i, frame in enumerate(bracket.frames):
        top = corners[i][0] + (sizes[i][0] - 160) // 2
        left = corners[i][1] + (sizes[i][1] - 240) // 2
        assert np.abs(frame.image - whole[i][top:top + 160, left:left + 240] / 255).max() <= 1e-6
    assert [note for note in bracket.notes if "centre-cropped" in note] == [
        f"{paths[1]}: 242×162 px, a little larger than the bracket's common 240×160 (a camera or converter that crops "
        "each frame differently): centre-cropped to it, 2 px of its width and 2 px of its height cut",
        f"{paths[2]}: 241×161 px, a little larger than the bracket's common 240×160 (a camera or converter that crops "
        "each frame differently): centre-cropped to it, 1 px of its width and 1 px of its height cut"]
    # a real difference in size is still refused, naming both files
    far = tmp_path / "far.png"
    Image.fromarray(whole[2][:150, :240]).save(far)
    with pytest.raises(BracketError, match=r"far\.png: size 240×150 differs from .*0\.png: 240×160"):
        load_bracket([paths[0], paths[1], far], align="off")


def test_the_transforms_json_maps_each_files_pixels_as_stored(shared_data: Path, tmp_path: Path) -> None:
    """--transforms: each file's homography maps its pixels as stored in the file, so that warping the file with it
    gives exactly the frame that was fused, also for a file turned by its EXIF tag and for ones centre-cropped to the
    common size (the JSON used to give the frames' coordinates, and the common size as every file's)."""
    import json

    from lutfuse.core.cli import main

    paths, *_ = _cropped_and_turned(shared_data, tmp_path)
    doc = tmp_path / "t.json"
    assert main(["fuse", *map(str, paths), "-o", str(tmp_path / "out.png"), "--method", "mertens", "--no-align",
                 "--deghost", "off", "--transforms", str(doc)]) == 0
    data = json.loads(doc.read_text())
    assert data["frame_size"] == data["output_size"] == [240, 160]
    bracket = load_bracket(paths, align="off")
    for entry, frame in zip(data["frames"], bracket.frames):
        stored = np.asarray(Image.open(entry["file"]).convert("RGB"), np.float32) / 255  # Pillow does not turn it
        assert entry["input_size"] == [stored.shape[1], stored.shape[0]]
        warped = cv2.warpPerspective(stored, np.array(entry["homography"]), (240, 160), flags=cv2.INTER_NEAREST)
        assert np.abs(warped - frame.image).max() <= 1e-6, entry["file"]
    assert [e["input_size"] for e in data["frames"]] == [[240, 160], [162, 242], [241, 161]]


def test_file_name_starting_with_a_dash_gets_a_hint(shared_data: Path, tmp_path: Path) -> None:
    """argparse takes '-a.jpg' for an option and said only 'unrecognized arguments: -a.jpg'."""
    paths = _bracket(shared_data, tmp_path)
    dashed = tmp_path / "-0.png"
    paths[0].rename(dashed)
    done = _cli("fuse", "-0.png", "1.png", "2.png", "-o", "out.png", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "lutfuse: error: unrecognized arguments: -0.png ('-0.png' is a file whose name starts with '-', which reads "
        "as an option: write it as ./-0.png)")
    done = _cli("fuse", "./-0.png", "1.png", "2.png", "-o", "out.png", "--method", "mertens", "--no-align",
                cwd=tmp_path)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("where", ["raw profile text chunk", "eXIf after the image data"])
def test_png_exif_outside_an_early_exif_chunk_is_read(where: str, shared_data: Path, tmp_path: Path) -> None:
    """ImageMagick and exiv2 0.27 (darktable's PNG export) store EXIF as a zTXt "Raw profile type exif" hex dump;
    other writers put the eXIf chunk after IDAT. Pillow's header pass sees neither, so such PNG frames lost their
    exposure (ordered by brightness) and their orientation (a portrait frame fused sideways)."""
    rgb = _frame(shared_data)
    block = _exif(0.01, 6)
    block = block if block[:6] == b"Exif\0\0" else b"Exif\0\0" + block
    path = tmp_path / "tagged.png"
    if where == "raw profile text chunk":
        digits = block.hex()
        text = f"\nexif\n{len(block):8d}\n" + "\n".join(digits[i:i + 72] for i in range(0, len(digits), 72)) + "\n"
        _png_with_chunks(path, rgb, [(b"zTXt", b"Raw profile type exif\0\0" + zlib.compress(text.encode()))])
    else:
        _png_with_chunks(path, rgb, [])
        data = path.read_bytes()
        chunk = b"eXIf" + block[6:]
        end = data.rfind(b"IEND") - 4
        path.write_bytes(data[:end] + struct.pack(">I", len(chunk) - 4) + chunk + struct.pack(">I", zlib.crc32(chunk))
                         + data[end:])
    decoded = read_frame(path)
    assert decoded.orientation == 6 and decoded.settings[0] == pytest.approx(0.01)
    assert np.abs(decoded.pixels - rgb / 255).max() <= 1e-6


def test_the_same_file_given_twice_is_named_as_such(shared_data: Path, tmp_path: Path) -> None:
    """`lutfuse fuse a.png b.png a.png` (a glob plus a name, or a typo), here once through a link: the note used to
    say the file 'holds the same pixels as' itself and ask whether it was the same frame twice."""
    paths = _bracket(shared_data, tmp_path)
    for again in (paths[0], tmp_path / "link.png"):
        if again != paths[0]:
            again.symlink_to(paths[0])
        bracket = load_bracket([paths[0], paths[1], again], align="off")
        assert [n for n in bracket.notes if "twice" in n] == [
            f"{again}: the same file as {paths[0]}, given twice: that exposure counts twice in the fusion"]


@pytest.mark.parametrize("name, note", [
    ("photo.jpg_large", "the file holds a JPEG image although its name ends in '.jpg_large'; it is read as JPEG"),
    ("IMG_0001", "the file holds a JPEG image although its name has no extension; it is read as JPEG"),
    ("saved.jfif", None),  # Windows' name for a downloaded JPEG (JPEG File Interchange Format)
])
def test_image_under_a_name_that_hides_its_type_is_read_by_content(name: str, note: str | None,
                                                                   shared_data: Path, tmp_path: Path) -> None:
    """Browser downloads and copies keep odd endings; such a file used to be refused as 'unsupported format'
    although its content is a JPEG. Content that no reader knows is still refused that way."""
    source = tmp_path / "a.jpg"
    Image.fromarray(_frame(shared_data)).save(source, quality=95)
    path = tmp_path / name
    path.write_bytes(source.read_bytes())
    decoded = read_frame(path)
    assert np.array_equal(decoded.pixels, read_frame(source).pixels)
    assert decoded.notes == ([] if note is None else [f"{path}: {note}"])
    gif = tmp_path / "a.gif"
    gif.write_bytes(b"GIF89a" + bytes(64))
    with pytest.raises(BracketError, match=r"a\.gif: unsupported format '\.gif'"):
        read_frame(gif)


def test_cropped_tiff_layers_are_placed_on_their_canvas(shared_data: Path, tmp_path: Path) -> None:
    """Hugin's nona writes each remapped frame cropped to where it has data, placed by XPosition/YPosition (in
    resolution units) on a canvas of PIXAR_IMAGEFULLWIDTH/LENGTH, as enfuse reads them. Such a bracket used to be
    refused for its differing sizes (or, a few pixels apart, would have been centre-cropped out of place)."""
    crops = [(4, 6, 150, 230), (0, 0, 160, 240), (2, 1, 159, 238)]  # top, left, bottom, right on a 240×160 canvas
    scene = [_frame(shared_data, i, (160, 240), whole=True) for i in range(3)]
    paths = []
    for i, (top, left, bottom, right) in enumerate(crops):
        paths.append(tmp_path / f"layer{i}.tif")
        tags = [(286, 5, 1, (left, 150), True), (287, 5, 1, (top, 150), True), (33300, 4, 1, 240, True),
                (33301, 4, 1, 160, True)]
        tifffile.imwrite(paths[-1], scene[i][top:bottom, left:right], photometric="rgb", resolution=(150, 150),
                         extratags=tags)
    decoded = read_frame(paths[0])
    assert decoded.pixels.shape == (160, 240, 3) and decoded.valid is not None
    assert decoded.valid.sum() == 146 * 224 and decoded.valid[4:150, 6:230].all()
    assert decoded.notes == [f"{paths[0]}: a cropped layer (224×146 at 6, 4; TIFF XPosition/YPosition, as Hugin's "
                             "nona writes) placed on its full 240×160 canvas; the rest is no data"]
    bracket = load_bracket(paths, align="off")
    assert [f.path.name for f in bracket.frames] == ["layer0.tif", "layer1.tif", "layer2.tif"]
    for i, (top, left, bottom, right) in enumerate(crops):
        inside = bracket.frames[i].image[top:bottom, left:right]
        assert np.abs(inside - scene[i][top:bottom, left:right] / 255).max() <= 1e-6


@pytest.mark.parametrize("profiled", [True, False])
def test_cmyk_jpeg_is_converted_like_a_cmyk_tiff(profiled: bool, shared_data: Path, tmp_path: Path) -> None:
    """A print-workflow JPEG (CMYK, Adobe APP14): OpenCV's libjpeg turned it into RGB by the naive formula without a
    word and the CMYK profile was dropped with 'embedded ICC profile ignored'. It now takes the CMYK TIFF's path:
    LittleCMS through its profile, or the naive formula with the same note."""
    import io

    from PIL import ImageCms

    from lutfuse.core.profiles import srgb_profile

    rgb = _frame(shared_data)
    path = tmp_path / "print.jpg"
    if profiled:
        profile = next((p for p in CMYK_PROFILES if p.is_file()), None)
        if profile is None:
            pytest.skip("no CMYK ICC profile on this machine (Debian: libgs-common)")
        icc = profile.read_bytes()
        cms = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        srgb = ImageCms.ImageCmsProfile(io.BytesIO(srgb_profile()))
        cmyk = ImageCms.applyTransform(Image.fromarray(rgb), ImageCms.buildTransform(srgb, cms, "RGB", "CMYK"))
        cmyk.save(path, quality=100, icc_profile=icc)
    else:
        Image.fromarray(rgb).convert("CMYK").save(path, quality=100)
    with Image.open(path) as im:  # the ink samples as stored (lossy): the reference starts from them
        stored = im.copy()
    if profiled:
        back = ImageCms.buildTransform(cms, srgb, "CMYK", "RGB", renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
                                       flags=0x2000)  # black point compensation
        expected = np.array(ImageCms.applyTransform(stored, back)) / 255
    else:
        ink = np.asarray(stored) / 255
        expected = (1 - ink[..., :3]) * (1 - ink[..., 3:])
    decoded = read_frame(path)
    assert np.abs(decoded.pixels - expected).max() <= 3 / 255
    assert decoded.icc is None and decoded.bit_depth == 8
    assert len(decoded.notes) == 1 and decoded.notes[0].startswith(
        f"{path}: converted from CMYK (" if profiled else f"{path}: CMYK without an ICC profile")


def test_exif_missing_on_one_frame_is_named(shared_data: Path, tmp_path: Path) -> None:
    """One frame re-saved by a tool that drops EXIF: the bracket fell back to brightness without saying why."""
    paths = _tagged(shared_data, tmp_path, [_exposure("1/400"), {}, _exposure("1/25")])
    bracket = load_bracket(paths, align="off")
    assert [f.path.name for f in bracket.frames] == ["0.jpg", "1.jpg", "2.jpg"]
    assert [f.ev_source for f in bracket.frames] == ["brightness"] * 3
    assert bracket.notes == [f"{paths[1]}: no EXIF exposure time, while the other frames have one (EXIF dropped by "
                             "an editor or converter?); frames are ordered by their brightness"]


@pytest.mark.parametrize("mode", ["auto", "3"])
def test_batch_takes_a_file_given_twice_once(mode: str, shared_data: Path, tmp_path: Path) -> None:
    """`lutfuse batch shoot shoot/0.png` (a folder and a file in it), or a link to a frame: the file used to join
    two brackets, or one bracket twice."""
    from lutfuse.core.grouping import plan_groups

    shoot = tmp_path / "shoot"
    frames = _bracket(shared_data, shoot, (160, 240), whole=True)
    link = tmp_path / "link.png"
    link.symlink_to(frames[2])
    plan = plan_groups([shoot, frames[0], link], mode)
    assert [group.paths for group in plan.groups] == [frames]
    assert plan.leftovers == [(frames[0], "given more than once"),
                              (link, f"the same file as {frames[2]}, given twice")]


def test_frame_without_any_pixel_of_data_is_refused(shared_data: Path, tmp_path: Path) -> None:
    """A frame exported fully transparent (alpha 0 everywhere, e.g. a hidden layer): it used to pass with '100.0% of
    the pixels have no data' and, as the middle frame, be made up whole from the others."""
    paths = _bracket(shared_data, tmp_path)
    rgb = _frame(shared_data, 1)
    Image.fromarray(np.dstack([rgb, np.zeros(rgb.shape[:2], np.uint8)])).save(paths[1])
    with pytest.raises(BracketError) as caught:
        load_bracket(paths, align="off")
    assert str(caught.value) == (f"{paths[1]}: no pixel has data (alpha 0 everywhere, or every sample NaN): the "
                                 "frame holds no image to fuse")
