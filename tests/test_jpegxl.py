"""JPEG XL frames (core.jpegxl, readers._read_jxl): pixels, size from the header, EXIF/XMP boxes, bad files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import imagecodecs
import numpy as np
import pytest
from PIL import Image

from lutfuse.core import jpegxl
from lutfuse.core.bracket import load_bracket
from lutfuse.core.errors import BracketError
from lutfuse.core.readers import read_frame

REPO = Path(__file__).resolve().parents[1]
SEQ = ("brackets", "deepfuse", "Seq_11")


def _rgb(shared_data: Path, index: int = 1, size: tuple[int, int] = (120, 184)) -> np.ndarray:
    """H×W×3 uint8 RGB of a real deepfuse/Seq_11 frame scaled to `size` (H, W)."""
    bgr = cv2.imread(str(shared_data.joinpath(*SEQ, f"{index:02d}.jpg")))
    return np.ascontiguousarray(cv2.resize(bgr, size[::-1], interpolation=cv2.INTER_AREA)[..., ::-1])


def _box(kind: bytes, payload: bytes) -> bytes:
    return (8 + len(payload)).to_bytes(4, "big") + kind + payload


def _container(codestream: bytes, *extra: bytes) -> bytes:
    """An ISO/IEC 18181-2 container: signature box, ftyp, the extra boxes, then the codestream in a jxlc box."""
    return (jpegxl.CONTAINER_SIGNATURE + _box(b"ftyp", b"jxl \0\0\0\0jxl ") + b"".join(extra)
            + _box(b"jxlc", codestream))


def _exif_tiff(exposure: float) -> bytes:
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x829A] = exposure  # ExposureTime, seconds
    block = exif.tobytes()
    return block[6:] if block.startswith(b"Exif\0\0") else block


@pytest.mark.parametrize("height, width", [(16, 16), (40, 48), (120, 184), (17, 1000), (1080, 1920), (333, 777),
                                           (300, 400), (256, 256)])
def test_header_size_matches_libjxl(height: int, width: int) -> None:
    """The SizeHeader parse (small/large sizes, the aspect-ratio shortcuts 1:1, 4:3, 16:9) gives libjxl's size."""
    stream = imagecodecs.jpegxl_encode(np.zeros((height, width, 3), np.uint8), distance=1.0, effort=1)
    head = jpegxl.header(stream)
    assert head is not None and (head.width, head.height) == (width, height) and not head.animated
    contained = jpegxl.header(_container(stream))
    assert contained is not None and (contained.width, contained.height) == (width, height)


def test_16_bit_and_grey_frames_read_exactly(shared_data: Path, tmp_path: Path) -> None:
    rgb16 = _rgb(shared_data).astype(np.uint16) * 257 + 99
    path = tmp_path / "a.jxl"
    path.write_bytes(imagecodecs.jpegxl_encode(rgb16, lossless=True))
    decoded = read_frame(path)
    assert decoded.bit_depth == 16 and not decoded.notes and decoded.valid is None
    assert np.abs(decoded.pixels - rgb16 / 65535).max() <= 1e-6
    grey = cv2.cvtColor(_rgb(shared_data), cv2.COLOR_RGB2GRAY)
    path.write_bytes(imagecodecs.jpegxl_encode(grey, lossless=True))
    decoded = read_frame(path)
    assert decoded.pixels.shape == grey.shape + (3,) and np.abs(decoded.pixels - grey[..., None] / 255).max() <= 1e-6


def test_alpha_zero_is_no_data(shared_data: Path, tmp_path: Path) -> None:
    rgba = np.dstack([_rgb(shared_data), np.full(_rgb(shared_data).shape[:2], 255, np.uint8)])
    rgba[:30, :50, 3] = 0
    path = tmp_path / "a.jxl"
    path.write_bytes(imagecodecs.jpegxl_encode(rgba, lossless=True))
    decoded = read_frame(path)
    assert decoded.valid is not None and not decoded.valid[:30, :50].any() and decoded.valid[30:, 50:].all()


@pytest.mark.parametrize("compressed", [False, True])
def test_exif_and_xmp_boxes_give_the_exposure(compressed: bool, shared_data: Path, tmp_path: Path) -> None:
    """The container's Exif box (4-byte TIFF header offset, then the block) and xml box; Brotli-compressed (brob)
    boxes, as libjxl's encoder writes by default, too."""
    stream = imagecodecs.jpegxl_encode(_rgb(shared_data), lossless=True)
    exif = b"\0\0\0\0" + _exif_tiff(1 / 250)
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"></x:xmpmeta>'
    if compressed:
        boxes = (_box(b"brob", b"Exif" + imagecodecs.brotli_encode(exif)),
                 _box(b"brob", b"xml " + imagecodecs.brotli_encode(xmp)))
    else:
        boxes = (_box(b"Exif", exif), _box(b"xml ", xmp))
    path = tmp_path / "a.jxl"
    path.write_bytes(_container(stream, *boxes))
    decoded = read_frame(path)
    assert decoded.settings[0] == pytest.approx(1 / 250) and decoded.xmp == xmp
    assert np.abs(decoded.pixels - _rgb(shared_data) / 255).max() <= 1e-6


def test_misnamed_jpeg_xl_is_read_by_its_content(shared_data: Path, tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    path.write_bytes(imagecodecs.jpegxl_encode(_rgb(shared_data), lossless=True))
    decoded = read_frame(path)
    assert decoded.notes[0].endswith("it is read as JPEG XL")
    assert np.abs(decoded.pixels - _rgb(shared_data) / 255).max() <= 1e-6


def test_bad_jpeg_xl_files_are_refused_in_one_line(shared_data: Path, tmp_path: Path) -> None:
    data = imagecodecs.jpegxl_encode(_rgb(shared_data, size=(480, 736)), distance=1.0)
    cut = tmp_path / "cut.jxl"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(BracketError, match=r"cut\.jxl: cannot read JPEG XL: the file is cut short$"):
        read_frame(cut)
    head = tmp_path / "head.jxl"
    head.write_bytes(data[:3])
    with pytest.raises(BracketError, match=r"head\.jxl: cannot read JPEG XL: the header is damaged or cut short"):
        read_frame(head)
    # The size limit is checked from the header, before libjxl allocates anything.
    with pytest.raises(BracketError, match=r"big\.jxl: 736×480 is 0 MP, over the limit"):
        big = tmp_path / "big.jxl"
        big.write_bytes(data)
        read_frame(big, max_pixels=100_000)


def test_animation_gives_its_first_frame_with_a_note(shared_data: Path, tmp_path: Path) -> None:
    frames = np.stack([_rgb(shared_data, 0), _rgb(shared_data, 2)])
    path = tmp_path / "anim.jxl"
    path.write_bytes(imagecodecs.jpegxl_encode(frames, lossless=True))
    decoded = read_frame(path)
    assert decoded.notes == [f"{path}: animated JPEG XL; its first frame is used"]
    assert np.abs(decoded.pixels - frames[0] / 255).max() <= 1e-6


def test_a_jpeg_xl_bracket_fuses_as_its_png_twin(shared_data: Path, tmp_path: Path) -> None:
    """Lossless JPEG XL frames load to exactly the pixels of the same frames as PNG, and `lutfuse fuse` takes them."""
    jxl, png = [], []
    for i in range(3):
        rgb = _rgb(shared_data, i, (240, 368))
        jxl.append(tmp_path / f"f{i}.jxl")
        jxl[-1].write_bytes(imagecodecs.jpegxl_encode(rgb, lossless=True))
        png.append(tmp_path / f"f{i}.png")
        Image.fromarray(rgb).save(png[-1])
    a, b = load_bracket(jxl, align="off"), load_bracket(png, align="off")
    assert np.array_equal(a.images, b.images)
    out = tmp_path / "fused.png"
    env = dict(os.environ, PYTHONPATH=str(REPO.parent), QT_QPA_PLATFORM="offscreen")
    run = subprocess.run([sys.executable, "-m", "lutfuse", "fuse", *map(str, jxl), "-o", str(out)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    assert cv2.imread(str(out)).shape == (240, 368, 3)
