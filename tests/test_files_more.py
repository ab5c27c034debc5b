"""More kinds of files from photographers' bug reports, each built on the fly from real frames in the faulty form:
XMP-only orientation and exposure (Lightroom/darktable/exiftool exports), ISO above 65535, PNG cICP chunks (HDR PQ
and HLG, Display P3), MPO files, file names with control characters, and missing or looping paths without an
image extension."""

from __future__ import annotations

import os
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import piexif
import pytest
from PIL import Image

from lutfuse.core import cicp
from lutfuse.core.bracket import load_bracket
from lutfuse.core.errors import BracketError
from lutfuse.core.readers import read_frame

REPO = Path(__file__).resolve().parents[1]


def _frame(shared_data: Path, index: int = 1, size: tuple[int, int] = (96, 160)) -> np.ndarray:
    """H×W×3 uint8 RGB, the whole real deepfuse/Seq_11 frame `index` scaled to `size` (H, W)."""
    bgr = cv2.imread(str(shared_data / "brackets" / "deepfuse" / "Seq_11" / f"{index:02d}.jpg"))
    return np.ascontiguousarray(cv2.resize(bgr, size[::-1], interpolation=cv2.INTER_AREA)[..., ::-1])


def _cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO.parent), QT_QPA_PLATFORM="offscreen")
    return subprocess.run([sys.executable, "-m", "lutfuse", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def _xmp(**attributes: str) -> bytes:
    """An XMP packet as Lightroom writes it: tiff:/exif: properties as attributes of one rdf:Description."""
    text = " ".join(f'{key.replace("_", ":")}="{value}"' for key, value in attributes.items())
    return ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
            '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
            'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" xmlns:exif="http://ns.adobe.com/exif/1.0/" '
            f'{text}/></rdf:RDF></x:xmpmeta><?xpacket end="w"?>').encode()


# ---------------------------------------------------------------------------------------------- XMP metadata

def test_orientation_only_in_xmp_turns_the_frame(shared_data: Path, tmp_path: Path) -> None:
    """A frame stored turned whose only orientation is XMP tiff:Orientation comes out upright; where EXIF says
    otherwise, EXIF wins with a note."""
    rgb = _frame(shared_data)
    stored = np.ascontiguousarray(np.rot90(rgb, 1))  # what Orientation 6 (turn 90° clockwise to view) stores
    path = tmp_path / "turned.png"
    Image.fromarray(stored).save(path, pnginfo=None)
    data = path.read_bytes()
    packet = _xmp(tiff_Orientation="6")
    chunk = b"iTXt" + b"XML:com.adobe.xmp\0\0\0\0\0" + packet
    data = data[:33] + len(chunk[4:]).to_bytes(4, "big") + chunk + zlib.crc32(chunk).to_bytes(4, "big") + data[33:]
    path.write_bytes(data)
    decoded = read_frame(path)
    assert decoded.orientation == 6
    upright, _ = decoded.upright()
    assert np.array_equal(np.round(upright * 255).astype(np.uint8), rgb)

    both = tmp_path / "both.jpg"
    exif = piexif.dump({"0th": {piexif.ImageIFD.Orientation: 1}})
    Image.fromarray(rgb).save(both, quality=95, exif=exif, xmp=packet)
    decoded = read_frame(both)
    assert decoded.orientation == 1
    assert decoded.notes == [f"{both}: its XMP tiff:Orientation 6 disagrees with its EXIF Orientation 1; the EXIF "
                             "tag is used"]


def test_exposure_only_in_xmp_orders_the_bracket(shared_data: Path, tmp_path: Path) -> None:
    """Exports that keep only XMP (exif:ExposureTime, exif:FNumber, exif:ISOSpeedRatings) still give EXIF-grade
    exposures: the bracket's EVs come from them, not from brightness."""
    times = {0: "1/400", 1: "1/100", 2: "1/25"}  # two stops apart
    paths = []
    for index, time in times.items():
        path = tmp_path / f"{'cab'[index]}.jpg"  # names in another order than the exposures
        packet = _xmp(exif_ExposureTime=time, exif_FNumber="8/1")
        Image.fromarray(_frame(shared_data, index)).save(path, quality=95, xmp=packet)
        paths.append(path)
    decoded = read_frame(paths[0])
    assert decoded.settings == (pytest.approx(1 / 400), pytest.approx(8.0), None)
    assert decoded.notes == [f"{paths[0]}: exposure time, f-number taken from its XMP metadata (none in EXIF)"]
    bracket = load_bracket(paths, align=False)
    assert [f.path for f in bracket.frames] == paths
    assert [f.ev_source for f in bracket.frames] == ["exif"] * 3
    evs = [f.ev for f in bracket.frames]
    assert [ev - evs[1] for ev in evs] == pytest.approx([-2.0, 0.0, 2.0])


def test_iso_above_65535_is_read_from_the_sensitivity_tags(shared_data: Path, tmp_path: Path) -> None:
    """EXIF's ISOSpeedRatings is 16-bit: above ISO 65535 cameras write 65535 there and the value in
    RecommendedExposureIndex (SensitivityType 2)."""
    path = tmp_path / "high.jpg"
    exif = {"Exif": {piexif.ExifIFD.ExposureTime: (1, 8000), piexif.ExifIFD.ISOSpeedRatings: 65535,
                     piexif.ExifIFD.SensitivityType: 2, piexif.ExifIFD.RecommendedExposureIndex: 204800}}
    Image.fromarray(_frame(shared_data)).save(path, quality=95, exif=piexif.dump(exif))
    assert read_frame(path).settings == (pytest.approx(1 / 8000), None, 204800.0)


# ---------------------------------------------------------------------------------------------- PNG cICP

def _srgb_to_linear(code: np.ndarray) -> np.ndarray:
    return np.where(code <= 0.04045, code / 12.92, ((code + 0.055) / 1.055) ** 2.4)


def _with_cicp(png: bytes, primaries: int, transfer: int) -> bytes:
    payload = b"cICP" + bytes([primaries, transfer, 0, 1])
    chunk = (4).to_bytes(4, "big") + payload + zlib.crc32(payload).to_bytes(4, "big")
    return png[:33] + chunk + png[33:]  # right after IHDR, before any image data


def _pq_encode(nits: np.ndarray) -> np.ndarray:
    m1, m2, c1, c2, c3 = 2610 / 16384, 2523 / 4096 * 128, 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
    y = (np.clip(nits, 0, 10000) / 10000) ** m1
    return ((c1 + c2 * y) / (1 + c3 * y)) ** m2


@pytest.mark.parametrize("gain", [1.0, 4.0])
def test_hdr_pq_png_is_mapped_to_sdr_not_read_as_srgb(gain: float, shared_data: Path, tmp_path: Path) -> None:
    """A 16-bit PNG whose cICP chunk says BT.2020 + PQ (HDR, as browsers and Adobe tools write) holds light in
    cd/m²: read as sRGB code values it came out dark and colourless. Its reference white (203 cd/m²) is now SDR
    white; brighter light (gain 4: a frame two stops over) is clipped with a note saying how much."""
    rgb = _frame(shared_data) / 255.0
    linear = _srgb_to_linear(rgb) * gain
    bt2020 = linear @ np.linalg.inv(cicp.to_srgb_matrix(9)).T
    code = _pq_encode(bt2020 * cicp.REFERENCE_WHITE)
    path = tmp_path / "hdr.png"
    ok, png = cv2.imencode(".png", np.round(code * 65535).astype(np.uint16)[..., ::-1])
    path.write_bytes(_with_cicp(png.tobytes(), 9, 16))
    decoded = read_frame(path)
    expected = np.clip(linear, 0, 1)
    expected = np.where(expected <= 0.0031308, expected * 12.92, 1.055 * expected ** (1 / 2.4) - 0.055)
    assert decoded.bit_depth == 16 and decoded.icc is None
    assert np.abs(decoded.pixels - expected).max() < 1.5 / 255
    (note,) = decoded.notes
    head = (f"{path}: HDR image (BT.2020 primaries, PQ transfer, from its cICP chunk): mapped to SDR sRGB with its "
            "reference white (203 cd/m², ITU-R BT.2408) at white; ")
    tail = "% of its pixels are brighter than that or outside sRGB and are clipped (tone-map HDR to SDR before fusing "
    assert note.startswith(head) and tail in note
    clipped = float((linear > 1).any(axis=-1).mean()) * 100  # the 16-bit code values put some 1.0s just above
    assert float(note[len(head):note.index(tail)]) == pytest.approx(clipped, abs=0.5)


def test_hlg_png_reference_white_is_sdr_white(shared_data: Path, tmp_path: Path) -> None:
    """HLG: 75 % signal is the reference white (ITU-R BT.2408); a grey ramp of real frame luminance round-trips."""
    grey = _frame(shared_data).mean(axis=2, keepdims=True).repeat(3, axis=2) / 255.0
    scene_white = (np.exp((0.75 - 0.55991073) / 0.17883277) + 0.28466892) / 12  # HLG inverse OETF of 75 %
    # on a 1000 cd/m² display, grey light L (relative to 203 cd/m²) is shown from scene light E with L ∝ E^1.2
    scene = scene_white * _srgb_to_linear(grey) ** (1 / 1.2)
    a, b, c = 0.17883277, 0.28466892, 0.55991073
    code = np.where(scene <= 1 / 12, np.sqrt(3 * scene), a * np.log(np.maximum(12 * scene - b, 1e-12)) + c)
    path = tmp_path / "hlg.png"
    ok, png = cv2.imencode(".png", np.round(code * 65535).astype(np.uint16))
    path.write_bytes(_with_cicp(png.tobytes(), 9, 18))
    decoded = read_frame(path)
    assert np.abs(decoded.pixels - grey).max() < 1.5 / 255


def test_display_p3_png_from_cicp_is_converted_to_srgb(shared_data: Path, tmp_path: Path) -> None:
    """cICP 12/13 (Display P3, sRGB curve; a phone screenshot or a browser export) is converted, not read as
    sRGB (which desaturated every colour); the iCCP it overrides is dropped."""
    rgb = _frame(shared_data) / 255.0
    p3 = _srgb_to_linear(rgb) @ np.linalg.inv(cicp.to_srgb_matrix(12)).T
    code = np.where(p3 <= 0.0031308, p3 * 12.92, 1.055 * np.clip(p3, 0, 1) ** (1 / 2.4) - 0.055)
    path = tmp_path / "p3.png"
    ok, png = cv2.imencode(".png", np.round(code * 65535).astype(np.uint16)[..., ::-1])
    path.write_bytes(_with_cicp(png.tobytes(), 12, 13))
    decoded = read_frame(path)
    assert np.abs(decoded.pixels - rgb).max() < 1.5 / 255
    assert decoded.notes == [f"{path}: colour encoding taken from its cICP chunk (Display P3 primaries, sRGB "
                             "transfer) and converted to sRGB"]
    # plain sRGB code points change nothing
    path.write_bytes(_with_cicp(png.tobytes(), 1, 13))
    assert np.array_equal(read_frame(path).pixels, np.round(code * 65535).astype(np.float32) / 65535)


# ---------------------------------------------------------------------------------------------- files and names

def test_mpo_frames_are_read_and_found_in_a_folder(shared_data: Path, tmp_path: Path) -> None:
    """MPO (multi-picture JPEG: cameras' 3D and multi-frame modes, and many JPEGs with a large preview) is a JPEG
    whose first image is the picture: `.mpo` files are frames, in a folder too (they were skipped as unknown)."""
    for index in range(3):
        first, preview = Image.fromarray(_frame(shared_data, index)), Image.fromarray(_frame(shared_data, index,
                                                                                           (48, 80)))
        first.save(tmp_path / f"{index:02d}.MPO", format="MPO", save_all=True, append_images=[preview], quality=95)
    decoded = read_frame(tmp_path / "01.MPO")
    assert decoded.pixels.shape == (96, 160, 3) and not decoded.notes
    with Image.open(tmp_path / "01.MPO") as im:  # the first picture as Pillow decodes it (another IDCT: ±1)
        assert np.abs(decoded.pixels * 255 - np.asarray(im)).max() <= 2
    assert [f.path.name for f in load_bracket(tmp_path, align=False).frames] == ["00.MPO", "01.MPO", "02.MPO"]


def test_control_characters_in_a_file_name_keep_the_error_on_one_line(shared_data: Path, tmp_path: Path) -> None:
    """A name with a newline (or an escape sequence) is shown escaped: the error stays one line."""
    for index in (0, 1):
        Image.fromarray(_frame(shared_data, index)).save(tmp_path / f"{index}.jpg", quality=95)
    bad = tmp_path / "bad\nname\x1b[2J.jpg"
    bad.write_bytes(b"not an image")
    result = _cli("fuse", "0.jpg", "1.jpg", bad.name, "-o", "out.jpg", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == ("lutfuse fuse: error: bad\\nname\\x1b[2J.jpg: not a readable JPEG file (no valid JPEG "
                             "header)\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.jpg", "1.jpg", bad.name]


def test_missing_or_looping_path_without_an_image_extension_says_so(tmp_path: Path) -> None:
    """A path without an image suffix that cannot be looked at is not an "unsupported format": it is missing,
    a dangling link, or a link loop."""
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    (tmp_path / "gone").symlink_to("nothing")
    cases = {"nosuch": "file not found", "a": "symbolic link loop (the link points back to itself)",
             "gone": "broken symbolic link (its target does not exist)"}
    for name, reason in cases.items():
        with pytest.raises(BracketError) as caught:
            read_frame(tmp_path / name)
        assert str(caught.value) == f"{tmp_path / name}: {reason}"


def test_tiff_transparency_mask_page_is_no_data(shared_data: Path, tmp_path: Path) -> None:
    """A TIFF whose transparency is a 1-bit mask page (NewSubfileType 4, PhotometricInterpretation 4; TIFF 6.0)
    rather than an alpha channel: masked pixels are no data, as alpha 0 is (they were fused as image)."""
    import tifffile

    rgb = _frame(shared_data)
    mask = np.ones(rgb.shape[:2], bool)
    mask[:, :40] = False  # a left border without data, as a stitcher leaves
    path = tmp_path / "masked.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(rgb, photometric="rgb")
        tif.write(mask, subfiletype=4, photometric=4)
    decoded = read_frame(path)
    assert decoded.valid is not None and np.array_equal(decoded.valid, mask)
    assert np.array_equal(np.round(decoded.pixels * 255).astype(np.uint8), rgb) and not decoded.notes


def test_batch_groups_xmp_only_frames_by_their_xmp_capture_time(shared_data: Path, tmp_path: Path) -> None:
    """`lutfuse batch` reads capture time and exposure from XMP where EXIF has none (exif:DateTimeOriginal is ISO
    8601 there): two brackets shot five minutes apart, their files' names interleaved, are told apart by time."""
    from lutfuse.core.grouping import group_auto, read_shot

    times = ["1/400", "1/100", "1/25"]
    files = []
    for shot in range(6):
        bracket, step = shot % 2, shot // 2
        stamp = f"2024-05-01T10:0{5 * bracket}:0{step}.5"
        path = tmp_path / f"{shot + 1}.jpg"
        packet = _xmp(exif_ExposureTime=times[step], exif_FNumber="8/1", exif_DateTimeOriginal=stamp)
        Image.fromarray(_frame(shared_data, step, (48, 80))).save(path, quality=90, xmp=packet)
        files.append(path)
    shot = read_shot(files[2])
    assert shot.exposure == pytest.approx(1 / 100) and shot.time is not None
    assert shot.time - read_shot(files[0]).time == pytest.approx(1.0)
    plan = group_auto(files)
    assert [[p.name for p in g.paths] for g in plan.groups] == [["1.jpg", "3.jpg", "5.jpg"],
                                                                ["2.jpg", "4.jpg", "6.jpg"]]
    assert not plan.leftovers


def test_output_that_is_a_folder_or_has_no_extension_or_a_newline(shared_data: Path, tmp_path: Path) -> None:
    """`-o` naming a folder says so (it said "unsupported output type ''"); a name without extension says that;
    an output name with a newline stays on one line. Nothing is written, exit status 1."""
    for index in range(3):
        Image.fromarray(_frame(shared_data, index)).save(tmp_path / f"{index}.jpg", quality=95)
    frames = ["0.jpg", "1.jpg", "2.jpg"]
    (tmp_path / "out").mkdir()
    cases = {"out": "out: is a folder; give the output file's name (e.g. out/fused.jpg)",
             "fused": "fused: unsupported output type '(no extension)' (use .jpeg, .jpg, .png, .tif, .tiff)",
             "no\ndir/x.jpg": "no\\ndir/x.jpg: folder no\\ndir does not exist"}
    for output, message in cases.items():
        result = _cli("fuse", *frames, "-o", output, cwd=tmp_path)
        assert (result.returncode, result.stderr) == (1, f"lutfuse fuse: error: {message}\n")
    result = _cli("cube", *frames, "-o", "out", cwd=tmp_path)
    assert result.stderr == "lutfuse cube: error: out: is a folder; give the output file's name (e.g. out/fused.cube)\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [*frames, "out"] and not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".tif"])
def test_greyscale_frame_with_a_grey_icc_profile_is_converted(suffix: str, shared_data: Path, tmp_path: Path) -> None:
    """A greyscale frame tagged with a grey ICC profile (Photoshop's default "Dot Gain 20%", "Gray Gamma 1.8", here
    a linear-light grey) was read as sRGB with a note that the profile did not fit: midtones came out far too dark.
    It is converted through its profile; a grey profile on colour pixels stays ignored, with a note."""
    import imagecodecs
    import tifffile

    grey = cv2.cvtColor(_frame(shared_data), cv2.COLOR_RGB2GRAY) / 255.0
    linear = np.round(_srgb_to_linear(grey) * 65535).astype(np.uint16)
    profile = imagecodecs.cms_profile("gray", gamma=1.0)
    path = tmp_path / f"grey{suffix}"
    if suffix == ".tif":
        tifffile.imwrite(path, linear, photometric="minisblack", iccprofile=profile)
    elif suffix == ".png":
        Image.fromarray(linear).save(path, icc_profile=profile)
    else:
        Image.fromarray(np.round(linear / 257).astype(np.uint8)).save(path, quality=98, icc_profile=profile)
    decoded = read_frame(path)
    assert decoded.icc is None
    assert decoded.notes == [f'{path}: greyscale with the ICC profile "gray built-in": converted to sRGB']
    error = np.abs(decoded.pixels - grey[..., None])
    # (8-bit linear light, as the JPEG holds it, is coarse in the shadows; read as sRGB the midtones were ~70 off)
    assert error.mean() < (2 if suffix == ".jpg" else 0.1) / 255
    assert error[grey > 0.2].max() < (10 if suffix == ".jpg" else 1) / 255  # JPEG: lossy too

    colour = tmp_path / "colour.jpg"
    Image.fromarray(_frame(shared_data)).save(colour, quality=95, icc_profile=profile)
    assert read_frame(colour).notes == [f"{colour}: embedded ICC profile ignored (a greyscale profile on colour "
                                        "pixels); the pixels are taken as sRGB"]


def _patch_nclx(data: bytes, primaries: int, transfer: int) -> bytes:
    at = data.index(b"colrnclx")
    return data[:at + 8] + primaries.to_bytes(2, "big") + transfer.to_bytes(2, "big") + data[at + 12:]


@pytest.mark.parametrize("kind", ["HEIF", "AVIF"])
def test_heif_and_avif_nclx_display_p3_and_pq_are_converted(kind: str, shared_data: Path, tmp_path: Path) -> None:
    """A phone's HEIC/AVIF without an ICC profile names its encoding in a `colr nclx` box: Display P3 (12/13) or
    HDR BT.2020 PQ (9/16). Those pixels were read as sRGB (dull colours; HDR dark and flat); now converted."""
    import pillow_heif

    rgb = _frame(shared_data) / 255.0
    linear = _srgb_to_linear(rgb)
    p3 = linear @ np.linalg.inv(cicp.to_srgb_matrix(12)).T
    p3_code = np.where(p3 <= 0.0031308, p3 * 12.92, 1.055 * np.clip(p3, 0, 1) ** (1 / 2.4) - 0.055)
    pq_code = _pq_encode((linear @ np.linalg.inv(cicp.to_srgb_matrix(9)).T) * cicp.REFERENCE_WHITE)
    for name, code, points, words in (("p3", p3_code, (12, 13), "colour encoding taken from its nclx colour box "
                                                                   "(Display P3 primaries, sRGB transfer)"),
                                      ("pq", pq_code, (9, 16), "HDR image (BT.2020 primaries, PQ transfer, from its "
                                                               "nclx colour box)")):
        pixels = np.round(np.clip(code, 0, 1) * 255).astype(np.uint8)
        path = tmp_path / f"{name}.{'heic' if kind == 'HEIF' else 'avif'}"
        if kind == "HEIF":
            heif = pillow_heif.from_bytes(mode="RGB", size=pixels.shape[1::-1], data=pixels.tobytes())
            heif.save(path, quality=-1, chroma=444)  # lossless HEVC, 4:4:4
        else:
            Image.fromarray(pixels).save(path, format="AVIF", quality=100, subsampling="4:4:4")
        path.write_bytes(_patch_nclx(path.read_bytes(), *points))
        decoded = read_frame(path)
        assert decoded.notes[0].startswith(f"{path}: {words}")
        # 8-bit PQ steps about 1.5 % of light per code in the midtones, lossy coding adds its error
        error = np.abs(decoded.pixels - rgb)
        # read as sRGB: P3 mean 3.3 (99th percentile 11) levels off, PQ 38 (107)
        limits = (1.0, 4.0) if name == "p3" else (3.0, 12.0)
        assert error.mean() < limits[0] / 255 and np.percentile(error, 99) < limits[1] / 255


def test_batch_input_that_is_a_link_loop_fifo_or_odd_name_says_what_it_is(shared_data: Path, tmp_path: Path) -> None:
    """`lutfuse batch` said "file or folder not found" for a link loop and a FIFO, and printed a name with a newline
    over two lines; it now says what the path is, on one line, exit status 1."""
    (tmp_path / "in").mkdir()
    for index in range(3):
        Image.fromarray(_frame(shared_data, index)).save(tmp_path / "in" / f"{index}.jpg", quality=90)
    (tmp_path / "loop").symlink_to("loop")
    os.mkfifo(tmp_path / "pipe.jpg")
    cases = {"loop": "loop: symbolic link loop (the link points back to itself)",
             "pipe.jpg": "pipe.jpg: is a FIFO (named pipe), not an image file; only regular files are read",
             "gone\nname.jpg": "gone\\nname.jpg: file not found"}
    for name, message in cases.items():
        result = _cli("batch", "in", name, "-o", "out", "--dry-run", cwd=tmp_path)
        assert (result.returncode, result.stderr) == (1, f"lutfuse batch: error: {message}\n")
    assert not (tmp_path / "out").exists()


def test_animated_png_gives_its_still_image_with_a_note(shared_data: Path, tmp_path: Path) -> None:
    """An APNG (a bracket saved as an animation by a web tool) gives its default image, like an animated WebP,
    with a note that says so instead of dropping the other frames silently."""
    path = tmp_path / "anim.png"
    first, second = Image.fromarray(_frame(shared_data, 0)), Image.fromarray(_frame(shared_data, 2))
    first.save(path, format="PNG", save_all=True, append_images=[second])
    decoded = read_frame(path)
    assert np.array_equal(np.round(decoded.pixels * 255).astype(np.uint8), _frame(shared_data, 0))
    assert decoded.notes == [f"{path}: animated PNG with 2 frames; its still image (the first frame) is used"]


def test_tiff_ep_exposure_tags_in_ifd0_order_the_bracket_and_reach_the_output(shared_data: Path,
                                                                               tmp_path: Path) -> None:
    """TIFF/EP (ISO 12234-2) keeps ExposureTime, FNumber and ISO in IFD0, not in an Exif IFD (some raws, DNG and
    TIFF writers do): they were ignored, the frames ordered by brightness and the output's EXIF had no exposure."""
    import tifffile

    from lutfuse.core import exif as exifmod

    paths = []
    for index, denominator in enumerate((1000, 250, 60)):
        path = tmp_path / f"{'zyx'[index]}.tif"
        tags = [(33434, 5, 1, (1, denominator), True), (33437, 5, 1, (8, 1), True), (34855, 3, 1, 100, True)]
        tifffile.imwrite(path, _frame(shared_data, index), photometric="rgb", extratags=tags)
        paths.append(path)
    assert read_frame(paths[1]).settings == (pytest.approx(1 / 250), 8.0, 100.0)
    bracket = load_bracket(paths, align=False)
    assert [f.ev_source for f in bracket.frames] == ["exif"] * 3
    middle = exifmod.parse(bracket.frames[1].exif)
    assert (middle["Exif.Photo.ExposureTime"], middle["Exif.Photo.FNumber"]) == ("1/250", "8/1")


@pytest.mark.parametrize("subsampling", [(1, 1), (2, 2), (2, 1)])
def test_ycbcr_tiff_without_jpeg_is_converted_to_rgb(subsampling: tuple[int, int], shared_data: Path,
                                                     tmp_path: Path) -> None:
    """TIFF stored as YCbCr without JPEG compression (old cameras' TIFF mode, scanners; TIFF 6.0 section 21) was
    refused as an unsupported colour model; chroma-subsampled data units are unpacked and upsampled."""
    import struct

    import tifffile

    rgb = _frame(shared_data)
    ycc = np.asarray(Image.fromarray(rgb).convert("YCbCr"))  # BT.601 full range, TIFF's default coding
    path = tmp_path / "ycc.tif"
    tifffile.imwrite(path, ycc, photometric="ycbcr", subsampling=(1, 1))
    if subsampling != (1, 1):  # tifffile writes no subsampled data: pack the data units into the file by hand
        h, w = ycc.shape[:2]
        sub_h, sub_v = subsampling
        data = bytearray(path.read_bytes())
        with tifffile.TiffFile(path) as tif:
            tags = tif.pages.first.tags
            offset, counts = tags[273].value[0], tags[279]
            where = tags[530].valueoffset
        luma = ycc[..., 0].reshape(h // sub_v, sub_v, w // sub_h, sub_h).transpose(0, 2, 1, 3)
        chroma = [ycc[..., k].reshape(h // sub_v, sub_v, w // sub_h, sub_h).mean(axis=(1, 3)).round() for k in (1, 2)]
        units = np.concatenate([luma.reshape(h // sub_v, w // sub_h, -1)] + [c[..., None] for c in chroma], axis=2)
        packed = units.astype(np.uint8).tobytes()
        data[offset:offset + len(packed)] = packed
        struct.pack_into("<HH", data, where, sub_h, sub_v)
        struct.pack_into("<I" if counts.dtype == 4 else "<H", data, counts.valueoffset, len(packed))
        path.write_bytes(bytes(data))
    decoded = read_frame(path)
    assert decoded.bit_depth == 8 and not decoded.notes
    error = np.abs(decoded.pixels * 255 - rgb)
    assert error.mean() < (1.0 if subsampling == (1, 1) else 3.0), error.mean()  # subsampled chroma: colour edges


def test_subsampled_compressed_ycbcr_tiff_is_refused_in_one_line(shared_data: Path, tmp_path: Path) -> None:
    import tifffile

    path = tmp_path / "ycc.tif"
    tifffile.imwrite(path, _frame(shared_data), photometric="ycbcr", subsampling=(1, 1), compression="zlib")
    data = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tif:
        where = tif.pages.first.tags[530].valueoffset
    data[where:where + 4] = b"\x02\x00\x02\x00"
    path.write_bytes(bytes(data))
    with pytest.raises(BracketError, match=r"^.*ycc\.tif: chroma-subsampled \(2×2\) YCbCr TIFF with compression 8 is "
                                           r"not supported \(save it as RGB\)$"):
        read_frame(path)


def test_long_file_names_are_written_and_too_long_ones_refused_in_one_line(shared_data: Path,
                                                                           tmp_path: Path) -> None:
    """An output named with 251 bytes + ".jpg" (a valid 255-byte name) was refused as "folder is not writable (File
    name too long)": the probe and temp files beside it took its whole name plus a suffix. Temp names are now cut
    to fit. A name over 255 bytes (input, output or batch folder) ended in an OSError traceback; now one line."""
    for index in range(3):
        Image.fromarray(_frame(shared_data, index)).save(tmp_path / f"{index}.jpg", quality=95)
    frames = ["0.jpg", "1.jpg", "2.jpg"]
    longest = "é" * 125 + "o.jpg"  # 255 bytes in UTF-8, two per character
    result = _cli("fuse", *frames, "--method", "mertens", "--no-align", "-o", longest, "--ghost-mask",
                  longest[:-4] + ".png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*frames, longest, longest[:-4] + ".png"])
    assert read_frame(tmp_path / longest).pixels.shape == (96, 160, 3)

    too_long = "x" * 256 + ".jpg"
    for args, command in ((["fuse", *frames, "-o", too_long], "fuse"), (["fuse", "0.jpg", too_long, "-o", "a.jpg"],
                                                                        "fuse"),
                          (["batch", too_long[:-4], "-o", "out"], "batch")):
        result = _cli(*args, cwd=tmp_path)
        name = too_long if command == "fuse" else too_long[:-4]
        assert (result.returncode, result.stderr) == (1, f"lutfuse {command}: error: {name}: File name too long "
                                                         "(at most 255 bytes per name)\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*frames, longest, longest[:-4] + ".png"])


def test_batch_by_folder_makes_a_linked_folder_once(shared_data: Path, tmp_path: Path) -> None:
    """`--group folder` with a bracket folder reached twice (a link to it beside it, as sorting tools and
    "latest" links make): the bracket was fused twice under two names; now once, the repeat listed as leftovers."""
    from lutfuse.core.grouping import plan_groups

    shoot = tmp_path / "shoot"
    (shoot / "a").mkdir(parents=True)
    for index in range(3):
        Image.fromarray(_frame(shared_data, index, (48, 80))).save(shoot / "a" / f"{index}.jpg", quality=90)
    (shoot / "b").symlink_to("a")
    plan = plan_groups([shoot], "folder")
    assert [[p.name for p in g.paths] for g in plan.groups] == [["0.jpg", "1.jpg", "2.jpg"]]
    assert [(p.parent.name, reason) for p, reason in plan.leftovers] == [
        ("b", f"folder {shoot / 'b'} is the same folder as {shoot / 'a'} (a link, or given twice): its bracket is "
              "made once")] * 3
