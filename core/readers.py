"""Decoding one image file: JPEG, PNG, TIFF (every compression tifffile + imagecodecs know), HEIC/HEIF, WebP, AVIF,
JPEG XL, camera RAW.

Every reader returns a `Decoded`: the pixels as stored (EXIF orientation *not yet* applied, so that a bracket can
compare its frames' tags first), the orientation tag, a validity mask from alpha and non-finite samples, the
embedded ICC profile and XMP packet, and notes for the user. Every failure is a `BracketError` whose message is one
line that starts with the file's name. Only regular files are opened (never a FIFO or a device), and the decoders'
own chatter on stderr (libjpeg, libpng, LibRaw, tifffile's log) is captured, not printed.
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import math
import os
import stat
import struct
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from lutfuse.core import cicp, jpegxl, profiles
from lutfuse.core import exif as exifmod
from lutfuse.core.errors import BracketError, file_kind, shown_path

CV_SUFFIXES = {".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".jfif": "JPEG", ".mpo": "JPEG", ".png": "PNG"}
TIFF_SUFFIXES = {".tif", ".tiff"}
HEIF_SUFFIXES = {".heic", ".heif", ".hif"}
PILLOW_SUFFIXES = {".webp": "WebP", ".avif": "AVIF"}
JXL_SUFFIXES = {".jxl"}
RAW_SUFFIXES = {
    ".3fr", ".arw", ".cr2", ".cr3", ".crw", ".dcr", ".dng", ".erf", ".iiq", ".kdc", ".mef", ".mos", ".mrw",
    ".nef", ".nrw", ".orf", ".pef", ".raf", ".raw", ".rw2", ".rwl", ".sr2", ".srf", ".srw", ".x3f",
}
IMAGE_SUFFIXES = set(CV_SUFFIXES) | TIFF_SUFFIXES | HEIF_SUFFIXES | set(PILLOW_SUFFIXES) | JXL_SUFFIXES | RAW_SUFFIXES
FORMAT_NAMES = "JPEG, PNG, TIFF, HEIC, WebP, AVIF, JPEG XL or camera RAW"
MIN_SIDE = 16  # px; smaller frames break the pyramids and alignment, and no camera makes them
DEFAULT_MAX_PIXELS = 200_000_000

# libjpeg warnings that mean the entropy-coded data is damaged: libjpeg fills the rest of the frame with grey
# and carries on, so OpenCV returns a half-grey image. (Harmless ones, e.g. "extraneous bytes before marker"
# found in some cameras' files, are not in the list.)
_JPEG_DAMAGE = ("premature end of data segment", "premature end of jpeg file", "instead of rst",
                "bad huffman code", "corrupt jpeg data: found marker", "huffman code size table overflow")


@dataclass
class Decoded:
    """One decoded file, before it joins a bracket.

    pixels: H×W×3 float32 RGB in [0,1] as stored in the file (orientation not applied).
    valid: H×W bool (False where alpha is 0 or a sample is NaN/Inf), or None when every pixel has data.
    orientation: EXIF orientation code 1..8 still to apply (1 where the decoder already turned the pixels).
    """

    path: Path
    pixels: np.ndarray
    bit_depth: int
    orientation: int = 1
    valid: np.ndarray | None = None
    exif: dict | None = None  # parsed (piexif) block of the source
    settings: tuple[float | None, float | None, float | None] = (None, None, None)  # exposure s, f-number, ISO
    icc: bytes | None = None  # embedded RGB profile; None = untagged (sRGB)
    xmp: bytes | None = None
    notes: list[str] = field(default_factory=list)

    def upright(self, code: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """(pixels, valid) turned by EXIF orientation `code` (default: the file's own tag)."""
        code = self.orientation if code is None else code
        valid = None if self.valid is None else exifmod.apply_orientation(self.valid, code)
        return exifmod.apply_orientation(self.pixels, code), valid

    def upright_shape(self) -> tuple[int, int]:
        """(H, W) once the file's own orientation tag is applied."""
        h, w = self.pixels.shape[:2]
        return (w, h) if self.orientation >= 5 else (h, w)

    def exif_for_output(self) -> bytes | None:
        """The source's EXIF block rebuilt for upright output pixels (Orientation 1, no thumbnail)."""
        return exifmod.for_output(self.exif)


# ---------------------------------------------------------------------------------------------- safe reading

def _open_error(path: Path, exc: OSError) -> BracketError:
    """The one-line error for a frame that cannot be opened or looked at."""
    name = shown_path(path)
    if isinstance(exc, FileNotFoundError):
        if os.path.islink(path):
            return BracketError(f"{name}: broken symbolic link (its target does not exist)")
        return BracketError(f"{name}: file not found")
    if isinstance(exc, PermissionError):
        return BracketError(f"{name}: permission denied")
    if isinstance(exc, IsADirectoryError):
        return BracketError(f"{name}: is a folder, not an image file")
    if exc.errno == errno.ELOOP:
        return BracketError(f"{name}: symbolic link loop (the link points back to itself)")
    return BracketError(f"{name}: cannot open ({exc.strerror or exc})")


def _mode_error(path: Path, mode: int) -> BracketError | None:
    """The one-line error for anything but a regular file (folder, FIFO, device, socket), else None."""
    if stat.S_ISREG(mode):
        return None
    name = shown_path(path)
    if stat.S_ISDIR(mode):
        return BracketError(f"{name}: is a folder, not an image file")
    return BracketError(f"{name}: is {file_kind(mode)}, not an image file; only regular files are read")


def check_regular_file(path: Path) -> None:
    """BracketError naming `path` unless it is (a link to) a regular file; looks at it without opening it."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise _open_error(path, exc) from None
    error = _mode_error(path, mode)
    if error is not None:
        raise error


def read_regular_file(path: Path) -> bytes:
    """The bytes of `path` if it is a regular file; BracketError naming it otherwise (folder, FIFO, device, link loop).

    The file is opened non-blocking and checked with fstat on the open descriptor, so a FIFO never blocks the
    program and a file swapped between a check and the read cannot slip through.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise _open_error(path, exc) from None
    with os.fdopen(fd, "rb") as handle:
        error = _mode_error(path, os.fstat(handle.fileno()).st_mode)
        if error is not None:
            raise error
        try:
            return handle.read()
        except OSError as exc:
            raise BracketError(f"{shown_path(path)}: cannot read ({exc.strerror or exc})") from None


class Chatter(list):
    """What decoders printed during one `quiet_decoder` block (a list of str, filled when the block ends).

    shared: another thread decoded at the same time, so the text may hold its chatter too (fd 2 is one per
    process); a caller that acts on the text (libjpeg's damage warnings) decodes again alone to be sure."""

    shared = False
    exclusive = False
    thread = 0
    start = 0
    caught_from = 0


class _Capture:
    """One capture of fd 2, Python warnings and the decoders' loggers, shared by every decode running at once.

    A per-block redirect would have to be serialised (fd 2 and the warnings filters are process-wide), which left
    the frame-decode pool one decode at a time; here the first block to enter redirects, the last to leave
    restores, and each block reads back the bytes written while it ran. Blocks that overlapped another thread's
    are marked `shared`; `exclusive` blocks wait until no other thread's block runs, and hold off new ones."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.active: list[Chatter] = []
        self.sink: Any = None
        self.saved: int | None = None
        self.warnings: Any = None
        self.caught: list[warnings.WarningMessage] = []
        self.levels: list[tuple[logging.Logger, int]] = []
        self.holds = 0  # printers waiting in `released`: new blocks wait until they are done

    def _blocked(self, me: int, exclusive: bool) -> bool:
        others = [c for c in self.active if c.thread != me]
        return self.holds > 0 or any(c.exclusive for c in others) or (exclusive and bool(others))

    @contextlib.contextmanager
    def released(self) -> Iterator[None]:
        """Wait until no other thread's block has fd 2 redirected, and hold off new blocks until the context ends."""
        me = threading.get_ident()
        with self.cond:
            self.holds += 1
            try:
                self.cond.wait_for(lambda: not any(c.thread != me for c in self.active))
            except BaseException:
                self.holds -= 1
                self.cond.notify_all()
                raise
        try:
            yield
        finally:
            with self.cond:
                self.holds -= 1
                self.cond.notify_all()

    def _open(self) -> None:
        self.sink = tempfile.TemporaryFile()
        self.warnings = warnings.catch_warnings(record=True)
        self.caught = self.warnings.__enter__()
        warnings.simplefilter("always")
        loggers = [logging.getLogger(name) for name in ("tifffile", "pillow_heif", "PIL")]
        self.levels = [(lg, lg.level) for lg in loggers]
        for lg in loggers:
            lg.setLevel(logging.CRITICAL + 1)
        try:
            sys.stderr.flush()
            self.saved = os.dup(2)
            os.dup2(self.sink.fileno(), 2)
        except (OSError, ValueError, AttributeError):  # no fd 2 (pythonw) or a stream without a descriptor
            self.saved = None

    def _close(self) -> None:
        if self.saved is not None:
            os.dup2(self.saved, 2)
            os.close(self.saved)
            self.saved = None
        for lg, level in self.levels:
            lg.setLevel(level)
        self.warnings.__exit__(None, None, None)
        self.sink.close()
        self.sink = None

    def enter(self, exclusive: bool) -> Chatter:
        me = threading.get_ident()
        chat = Chatter()
        with self.cond:
            self.cond.wait_for(lambda: not self._blocked(me, exclusive))
            if not self.active:
                self._open()
            for other in self.active:
                if other.thread != me:
                    other.shared = chat.shared = True
            chat.thread, chat.exclusive = me, exclusive
            chat.start = os.lseek(self.sink.fileno(), 0, os.SEEK_END)
            chat.caught_from = len(self.caught)
            self.active.append(chat)
        return chat

    def leave(self, chat: Chatter) -> None:
        with self.cond:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            fd = self.sink.fileno()
            end = os.lseek(fd, 0, os.SEEK_END)
            chat.append(os.pread(fd, min(end - chat.start, 1 << 16), chat.start).decode("utf-8", "replace"))
            chat.extend(str(w.message) for w in self.caught[chat.caught_from:])
            self.active.remove(chat)
            if not self.active:
                self._close()
            self.cond.notify_all()


_CAPTURE = _Capture()


@contextlib.contextmanager
def quiet_decoder(exclusive: bool = False) -> Iterator[Chatter]:
    """Capture what decoders print (C-level stderr, Python warnings, tifffile's log) while decoding.

    Yields a `Chatter` list that holds the captured text once the block ends, so a caller can look for a decoder's
    warning (libjpeg's "Premature end of JPEG file") instead of letting it break the one-line message rule.
    Decodes on several threads capture at once (nothing is printed meanwhile); a block whose text may hold another
    thread's chatter has `shared` set, and `exclusive=True` runs a block with no other thread's block at once.
    Re-entrant within a thread.
    """
    chat = _CAPTURE.enter(exclusive)
    try:
        yield chat
    finally:
        _CAPTURE.leave(chat)


def stderr_free() -> contextlib.AbstractContextManager[object]:
    """A context in which no decoder in another thread has fd 2 redirected (new `quiet_decoder` blocks wait for it).

    A frame that fails while the next one is still decoding in the pool raises in the main thread while that
    decode has stderr pointed at its capture file; a message printed then would vanish into it (the CLI exited 1
    with no word). Printers of user-facing lines on stderr take this first; it waits at most for one decode.
    """
    return _CAPTURE.released()


# ---------------------------------------------------------------------------------------------- headers

def _header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG or JPEG header without decoding; None where the header does not say."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    frame = _jpeg_frame(data)
    return None if frame is None else frame[:2]


_HEADER_BYTES = 1 << 18  # a JPEG's start-of-frame follows its APP segments (EXIF, ICC, XMP: each under 64 KiB)


def header_shape(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int] | None:
    """(H, W) as stored (before any EXIF orientation) from a PNG or JPEG file's header, read without decoding:
    what a buffer for `read_frame(into=)` is sized by before the decode runs.

    None for every other format, for a header that does not say (or is further in than the first 256 KiB), for a
    size `read_frame` would refuse, and for a path that is not a readable regular file (opened non-blocking, so a
    FIFO never blocks). Never raises: `read_frame` reports what is wrong with the file."""
    path = Path(path)
    if path.suffix.lower() not in CV_SUFFIXES:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except (OSError, ValueError):
        return None
    try:
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return None
            size = _header_size(handle.read(_HEADER_BYTES))
    except OSError:
        return None
    if size is None:
        return None
    width, height = size
    if width < MIN_SIDE or height < MIN_SIDE or width * height > max_pixels:
        return None
    return height, width


def _into(into: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    """`into` as an array of `shape` (a view of its memory) when it is a C-contiguous float32 buffer of exactly
    that many values, else None."""
    if (into is None or into.dtype != np.float32 or not into.flags.c_contiguous
            or into.size != math.prod(shape)):
        return None
    return into.reshape(shape)


def _jpeg_frame(data: bytes) -> tuple[int, int, int] | None:
    """(width, height, sample precision in bits) from a JPEG's start-of-frame segment, None where there is none."""
    if data[:2] != b"\xff\xd8":
        return None
    # Walk the JPEG marker segments up to the first start-of-frame, which holds the size.
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if 0xD0 <= marker <= 0xD9 or marker == 0x01:
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            if pos + 9 > len(data):
                return None
            return (int.from_bytes(data[pos + 7:pos + 9], "big"), int.from_bytes(data[pos + 5:pos + 7], "big"),
                    data[pos + 4])
        if marker == 0xDA:
            return None
        pos += 2 + length
    return None


def check_size(path: Path, width: int, height: int, max_pixels: int) -> None:
    """Refuse, from the header and before decoding, a frame under MIN_SIDE px on a side or over `max_pixels`."""
    if width < MIN_SIDE or height < MIN_SIDE:
        raise BracketError(f"{shown_path(path)}: {width}×{height} px is too small (a frame needs at least "
                           f"{MIN_SIDE} px on each side)")
    if width * height > max_pixels:
        raise BracketError(f"{shown_path(path)}: {width}×{height} is {width * height / 1e6:.0f} MP, over the limit "
                           f"of {max_pixels / 1e6:g} MP")


def _truncation(data: bytes, kind: str) -> str | None:
    """Why a PNG/JPEG byte string is cut short, or None when its end marker is present."""
    # In entropy-coded JPEG data 0xFF is always followed by 0x00 or a restart marker, so an
    # end-of-image marker after the last start-of-scan means the last scan is complete.
    if kind == "JPEG":
        scan = data.rfind(b"\xff\xda")
        if scan < 0:
            return "truncated JPEG (the file ends before the image data)"
        if data.rfind(b"\xff\xd9") < scan:
            return "truncated JPEG (no end-of-image marker after the last scan)"
    if kind == "PNG" and data.rfind(b"IEND") < 0:
        return "truncated PNG (no IEND chunk)"
    return None


# ---------------------------------------------------------------------------------------------- samples

def _normalise(path: Path, samples: np.ndarray, notes: list[str], *, significant_bits: int | None = None,
               into: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Samples of one type (uint8/16/32 or float) -> float32 in [0,1], per-pixel finite mask or None, bit depth.

    into: a float32 buffer of samples.size values that integer samples are converted into (the result is then a
    view of it), so that a frame lands where the caller keeps it without another full-size copy; ignored when it
    does not fit and for float samples.

    Floats (e.g. 32-bit TIFF from a raw developer, often scene-linear) are taken as display code values: NaN/Inf
    samples make the pixel invalid (no data), values outside [0,1] are clipped and a note says how many.
    """
    name = shown_path(path)
    if samples.dtype.kind == "u":
        bits = significant_bits or samples.dtype.itemsize * 8
        # one pass from the stored samples (also a BGR-reversed view) to float32, no intermediate copy
        values = np.divide(samples, np.float32(2**bits - 1), dtype=np.float32, out=_into(into, samples.shape))
        return values, None, (8 if bits <= 8 else 16)
    if samples.dtype.kind == "b":
        return samples.astype(np.float32), None, 8
    if samples.dtype.kind != "f":
        raise BracketError(f"{name}: unsupported sample type {samples.dtype} (use 8- or 16-bit or float images)")
    values = samples.astype(np.float32, copy=False)
    finite = np.isfinite(values)
    valid = None
    if not finite.all():
        per_pixel = finite.all(axis=-1) if values.ndim == 3 else finite
        valid = per_pixel
        notes.append(f"{name}: {int((~per_pixel).sum())} pixels are NaN or infinite; they are treated as no data")
        values = np.where(finite, values, 0.0).astype(np.float32)
    outside = (values < 0.0) | (values > 1.0)
    if outside.any():
        share = float(outside.any(axis=-1).mean() if values.ndim == 3 else outside.mean())
        notes.append(f"{name}: float samples span {float(values.min()):.3g}..{float(values.max()):.3g}; "
                     f"{share:.1%} of pixels lie outside [0, 1] and are clipped to it (LUTFuse fuses "
                     "display-referred frames: tone-map scene-linear HDR before fusing)")
        values = np.clip(values, 0.0, 1.0)
    return values, valid, 16  # type: ignore[return-value]


def _split_channels(path: Path, pixels: np.ndarray, *, bgr: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """H×W, H×W×1..4 samples -> (H×W×3 colour, H×W alpha or None)."""
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    alpha = None
    if pixels.ndim == 2:
        colour = np.repeat(pixels[..., None], 3, axis=2)
    elif pixels.ndim == 3 and pixels.shape[2] == 2:  # grey + alpha
        colour, alpha = np.repeat(pixels[..., :1], 3, axis=2), pixels[..., 1]
    elif pixels.ndim == 3 and pixels.shape[2] >= 3:
        colour = pixels[..., :3][..., ::-1] if bgr else pixels[..., :3]
        alpha = pixels[..., 3] if pixels.shape[2] >= 4 else None  # further extra samples are not colour
    else:
        raise BracketError(f"{shown_path(path)}: unsupported image layout {pixels.shape}")
    return colour, alpha


def _finish(path: Path, pixels: np.ndarray, notes: list[str], *, bgr: bool = False, associated: bool = False,
            significant_bits: int | None = None, into: np.ndarray | None = None
            ) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Decoded samples -> (H×W×3 float32 [0,1], valid mask or None, bit depth), alpha read as validity; into: as
    `_normalise`'s."""
    colour, alpha = _split_channels(path, pixels, bgr=bgr)
    image, valid, bits = _normalise(path, colour, notes, significant_bits=significant_bits, into=into)
    if alpha is not None:
        level, alpha_finite, _ = _normalise(path, alpha, [], significant_bits=significant_bits)
        level = level if level.ndim == 2 else level[..., 0]
        covered = level > 0
        if alpha_finite is not None:
            covered &= alpha_finite
        if associated:
            # Associated (premultiplied) alpha: colour = true colour × alpha; undo it where there is data.
            image = np.where(covered[..., None], image / np.maximum(level, 1e-12)[..., None], 0.0)
            image = np.clip(image, 0.0, 1.0).astype(np.float32)
        valid = covered if valid is None else (valid & covered)
    if valid is not None and valid.all():
        valid = None
    return np.ascontiguousarray(image, np.float32), valid, bits


# ---------------------------------------------------------------------------------------------- readers

def _pillow_metadata(data: bytes) -> tuple[bytes | None, bytes | None, bytes | None, dict, str]:
    """(EXIF block, ICC profile, XMP packet, Pillow's whole info dict, Pillow's mode) of a JPEG/PNG as Pillow reads
    them from the header; Nones, {} and "" if unreadable."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            info, mode = dict(im.info), im.mode
    except Exception:  # noqa: BLE001  the pixel decoder reports what is wrong with the file
        return None, None, None, {}, ""
    exif = info.get("exif")
    xmp = info.get("xmp") or info.get("XML:com.adobe.xmp")
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    return (exif if isinstance(exif, bytes) else None, info.get("icc_profile") or None,
            xmp if isinstance(xmp, bytes) else None, info, mode)


def _png_chunk_colour(path: Path, image: np.ndarray, info: dict, notes: list[str]) -> np.ndarray:
    """A PNG without iCCP or sRGB chunk whose gAMA/cHRM chunks describe another encoding than sRGB (e.g. gAMA 1.0,
    linear light, as some HDR tools write): its pixels converted to sRGB by LittleCMS, with a note. The network
    expects display-referred sRGB-like code values, so such frames are converted on reading, not fused as stored.
    """
    if "icc_profile" in info or "srgb" in info:
        return image
    gamma, chromaticity = info.get("gamma"), info.get("chromaticity")
    source = profiles.png_chunk_profile(float(gamma) if gamma else None,
                                        tuple(float(c) for c in chromaticity) if chromaticity else None)
    if source is None:
        return image
    converted, outside = profiles.convert(image, source, None)
    chunks = ([f"gAMA {float(gamma):.5f}"] if gamma else []) + (["cHRM"] if chromaticity else [])
    clipped = f"; {outside:.1%} of its pixels lie outside sRGB and are clipped" if outside > 1e-4 else ""
    notes.append(f"{shown_path(path)}: colour encoding taken from its PNG {' and '.join(chunks)} "
                 f"chunk{'s' if len(chunks) > 1 else ''} and converted to sRGB{clipped}")
    return converted


def _png_chunk(data: bytes, wanted: bytes) -> bytes | None:
    """The payload of a PNG's first `wanted` chunk before the image data (IDAT), else None."""
    pos = 8
    while pos + 8 <= len(data):
        length, kind = int.from_bytes(data[pos:pos + 4], "big"), data[pos + 4:pos + 8]
        if kind == b"IDAT":
            return None
        if kind == wanted:
            return data[pos + 8:pos + 8 + length]
        pos += 12 + length
    return None


def _png_colour(path: Path, data: bytes, image: np.ndarray, info: dict, icc: bytes | None, notes: list[str],
                ) -> tuple[np.ndarray, bytes | None]:
    """A PNG's pixels in sRGB or its ICC profile: (pixels, profile to keep). A cICP chunk (PNG third edition 11.3.2.6:
    it overrides iCCP, sRGB, gAMA and cHRM) is decoded by `cicp.to_srgb`, the ICC profile then dropped; else gAMA and
    cHRM by `_png_chunk_colour`."""
    chunk = _png_chunk(data, b"cICP")
    if chunk is None or len(chunk) != 4:
        return _png_chunk_colour(path, image, info, notes), icc
    converted, note = cicp.to_srgb(image, chunk[0], chunk[1], chunk[2], chunk[3], bits=data[24])
    if note:
        notes.append(f"{shown_path(path)}: {note}")
    return converted, None


def _png_grey_key(data: bytes) -> int | None:
    """The grey level a greyscale PNG's tRNS chunk names transparent (in the file's own bit depth), else None.

    Read from the chunk itself (PNG spec 11.3.2.1: two bytes, the level in the image's bit depth) because Pillow
    reports it scaled for 1-bit files and unscaled for 2/4-bit ones. Chunks are walked up to the first IDAT."""
    if len(data) < 33 or data[25] != 0:  # colour type 0: greyscale without alpha
        return None
    pos = 33
    while pos + 8 <= len(data):
        length, kind = int.from_bytes(data[pos:pos + 4], "big"), data[pos + 4:pos + 8]
        if kind == b"IDAT":
            return None
        if kind == b"tRNS" and length >= 2:
            return int.from_bytes(data[pos + 8:pos + 10], "big") & ((1 << data[24]) - 1)
        pos += 12 + length
    return None


def _grey_colour_key(pixels: np.ndarray, data: bytes) -> np.ndarray:
    """A greyscale PNG with a tRNS colour key (PNG spec 11.3.2.1: pixels of that grey level are fully transparent)
    -> H×W×2 grey + alpha, so that those pixels become "no data" like any other transparency; else `pixels`.

    libpng (through OpenCV) honours the key of palette and RGB PNGs but drops a grey image's; it scales 1/2/4-bit
    samples up to 8 bits, so the key is scaled alike."""
    key = _png_grey_key(data) if pixels.ndim == 2 else None
    if key is None:
        return pixels
    bits, top = data[24], int(np.iinfo(pixels.dtype).max)
    level = key * (top // ((1 << bits) - 1)) if bits < 8 else key
    alpha = np.where(pixels == level, 0, top).astype(pixels.dtype)
    return np.dstack([pixels, alpha])


def _imdecode(data: bytes, exclusive: bool = False) -> tuple[np.ndarray | None, str, bool]:
    """cv2.imdecode of a JPEG/PNG file's bytes -> (pixels as stored or None, the decoder's chatter in lower case,
    whether that chatter may hold another thread's: `Chatter.shared`)."""
    with quiet_decoder(exclusive) as chatter:
        try:
            # IMREAD_UNCHANGED keeps 16 bits and alpha, and makes OpenCV ignore EXIF orientation (applied later).
            pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        except cv2.error as exc:
            pixels = None
            chatter.append(str(exc))
    return pixels, " ".join(chatter).lower(), chatter.shared


def _read_cv(path: Path, data: bytes, kind: str, max_pixels: int, into: np.ndarray | None = None) -> Decoded:
    """JPEG or PNG: pixels through OpenCV (16-bit PNG kept), metadata through Pillow, libjpeg warnings checked."""
    name = shown_path(path)
    if not data:
        raise BracketError(f"{name}: empty file")
    size = _header_size(data)
    if size is None:
        raise BracketError(f"{name}: not a readable {kind} file (no valid {kind} header)")
    check_size(path, *size, max_pixels)
    actual = "PNG" if data[:4] == b"\x89PNG" else "JPEG"
    reason = _truncation(data, actual)
    if reason:
        raise BracketError(f"{name}: {reason}")
    pixels, said, shared = _imdecode(data)
    if shared and actual == "JPEG" and any(mark in said for mark in _JPEG_DAMAGE):
        pixels, said, _ = _imdecode(data, exclusive=True)  # the warning may have been another thread's: alone now
    if actual == "JPEG" and any(mark in said for mark in _JPEG_DAMAGE):
        raise BracketError(f"{name}: corrupt JPEG data (the decoder stopped early and would fill the rest "
                           "with grey)")
    precision = (_jpeg_frame(data) or (0, 0, 8))[2] if actual == "JPEG" else 8
    bgr, significant = True, None
    if (pixels is None or pixels.size == 0) and precision in (12, 16):
        # 12-bit (and lossless up to 16-bit) JPEG: OpenCV's libjpeg is built for 8 bits only; imagecodecs'
        # libjpeg-turbo 3 decodes every precision (ITU-T T.81 annex G / H)
        import imagecodecs

        with quiet_decoder():
            try:
                pixels, bgr, significant = imagecodecs.jpeg8_decode(data), False, precision
            except Exception:  # noqa: BLE001  imagecodecs.Jpeg8Error and friends: report as below
                pixels = None
    if pixels is None or pixels.size == 0:
        raise BracketError(f"{name}: cannot decode {actual} (corrupt or unsupported variant)")
    with quiet_decoder():
        block, icc, xmp, info, mode = _pillow_metadata(data)
        if block is None and (precision != 8 or actual == "PNG"):
            # exiv2 reads the whole file where Pillow's header pass finds no EXIF: a 12-bit JPEG (Pillow does not
            # open it), and a PNG whose EXIF is an eXIf chunk after the image data or a "Raw profile type exif"
            # text chunk (ImageMagick, exiv2 0.27 as in darktable's exports)
            block = data
    notes: list[str] = []
    if actual == "PNG":
        pixels = _grey_colour_key(pixels, data)
    if actual == "JPEG" and mode == "CMYK":
        # Print-workflow JPEG: libjpeg through OpenCV turns CMYK into RGB with the naive formula and drops the
        # CMYK profile; Pillow gives the ink samples (undoing Adobe's inverted storage, APP14) for LittleCMS, as
        # for a CMYK TIFF.
        from PIL import Image

        with quiet_decoder(), Image.open(io.BytesIO(data)) as im:
            pixels, bgr = _cmyk_to_rgb(path, np.asarray(im), icc, notes), False
        icc = None
    image, valid, bits = _finish(path, pixels, notes, bgr=bgr, significant_bits=significant, into=into)
    bits = 8 if actual == "JPEG" and mode == "CMYK" else bits
    if actual == "PNG":
        image, icc = _png_colour(path, data, image, info, icc, notes)
    parsed = exifmod.parse(block)
    return Decoded(path, image, bits, exifmod.orientation(parsed), valid, parsed, exifmod.exposure(parsed),
                   _usable_icc(path, icc, notes), xmp, notes)


def _usable_icc(path: Path, icc: bytes | None, notes: list[str]) -> bytes | None:
    """The embedded profile when it is a usable RGB profile, else None (sRGB) with a note saying why."""
    if not icc:
        return None
    why = profiles.check_rgb(icc)
    if why is None or profiles.colour_space(icc) == "GRAY":
        return icc  # a grey profile is applied to the pixels by read_frame (`_grey_profile`)
    notes.append(f"{shown_path(path)}: embedded ICC profile ignored ({why}); the pixels are taken as sRGB")
    return None


_NOT_MAIN_IMAGE = 0b101  # TIFF NewSubfileType bits: 1 = reduced-resolution copy, 4 = transparency mask
_PAGES_LOOKED_AT = 16  # a multi-page file's full image follows its previews closely; never walk thousands of pages


def _main_page(tif) -> tuple:  # type: ignore[no-untyped-def]
    """(page, where) of a TIFF's full-resolution image: the first page that is neither a reduced-resolution copy
    (thumbnail, pyramid level) nor a mask, looking at the first pages, then at the first page's SubIFDs (the
    TIFF/EP layout: IFD0 a preview, the image in a SubIFD). `where` is "" for the first page, else words naming
    the page; the largest page when every one is marked reduced. TIFF 6.0 section "NewSubfileType"."""
    first = tif.pages.first
    if not int(first.subfiletype) & _NOT_MAIN_IMAGE:
        return first, ""
    seen = [(first, "")]
    for index in range(1, min(len(tif.pages), _PAGES_LOOKED_AT)):
        page = tif.pages[index]
        if hasattr(page, "subfiletype"):
            seen.append((page, f"page {index + 1}"))
    sub = getattr(first, "pages", None) if first.subifds else None
    for index in range(min(len(sub or ()), _PAGES_LOOKED_AT)):
        seen.append((sub[index], f"SubIFD {index + 1}"))  # type: ignore[index]
    for page, where in seen:
        if not int(page.subfiletype) & _NOT_MAIN_IMAGE:
            return page, where
    return max(seen, key=lambda item: int(item[0].imagelength) * int(item[0].imagewidth))


def tiff_image_count(tif) -> int:  # type: ignore[no-untyped-def]
    """How many full-resolution images (pages that are neither reduced-resolution copies nor masks, of the first
    such page's size) an open tifffile.TiffFile holds among its first pages: > 1 for a multi-page stack, e.g. a
    whole bracket saved as one TIFF by a stacking tool or a scanner."""
    size = None
    count = 0
    for index in range(min(len(tif.pages), _PAGES_LOOKED_AT)):
        page = tif.pages[index]
        if not hasattr(page, "subfiletype") or int(page.subfiletype) & _NOT_MAIN_IMAGE:
            continue
        shape = (int(page.imagelength), int(page.imagewidth))
        size = size or shape
        count += shape == size
    return count


def images_in_file(path: Path) -> int:
    """How many full-size images a (regular) TIFF file holds (`tiff_image_count`); 1 for any other file, or one
    that cannot be read (read_frame reports why). Reads the page headers only."""
    import tifffile

    if path.suffix.lower() in RAW_SUFFIXES:
        return 1
    try:
        check_regular_file(path)
        with open(path, "rb") as handle:
            if sniff(handle.read(16)) != "TIFF":
                return 1
        with quiet_decoder(), tifffile.TiffFile(path) as tif:
            return max(1, tiff_image_count(tif))
    except Exception:  # noqa: BLE001  a damaged file gets its own message when it is decoded
        return 1


def _read_tiff(path: Path, data: bytes, max_pixels: int) -> Decoded:
    """TIFF through tifffile + imagecodecs: any compression (LZW, Deflate, JPEG, ...), contiguous or planar,
    1-16-bit integer or float, grey/RGB/palette, with or without alpha (associated alpha is un-premultiplied)."""
    import tifffile

    name = shown_path(path)
    notes: list[str] = []
    try:
        with quiet_decoder(), tifffile.TiffFile(io.BytesIO(data)) as tif:
            if len(tif.pages) == 0:
                raise BracketError(f"{name}: cannot read TIFF: no image directory in the file (it ends after the "
                                   "header, or points outside itself: truncated or damaged)")
            page, where = _main_page(tif)
            if where:
                notes.append(f"{name}: the first image in the file is a reduced-resolution copy (a thumbnail or "
                             f"pyramid level); the full-resolution image ({where}) is read")
            height, width = page.imagelength, page.imagewidth
            check_size(path, width, height, max_pixels)
            images = tiff_image_count(tif)
            if images > 1:
                notes.append(f"{name}: holds {images} full-size images (pages); only the first is read (LUTFuse "
                             "takes one exposure per file: save each exposure of a bracket as its own file)")
            end = max((o + n for o, n in zip(page.dataoffsets, page.databytecounts)), default=0)
            if end > len(data):
                raise BracketError(f"{name}: truncated TIFF (image data ends at byte {end}, file has {len(data)})")
            photometric = int(page.photometric)
            kinds = tifffile.PHOTOMETRIC
            jpeg_ycbcr = photometric == kinds.YCBCR and int(page.compression) in (6, 7)
            inks = int(page.samplesperpixel) - len(page.extrasamples or ())
            # InkSet (tag 332) 1 or absent = CMYK (TIFF 6.0 section 16); other ink sets (spot colours) are not
            cmyk = photometric == kinds.SEPARATED and inks == 4 and int(page.tags.valueof(332, 1)) == 1
            ycbcr = photometric == kinds.YCBCR and not jpeg_ycbcr  # stored YCbCr (old cameras, scanners)
            if (photometric not in (kinds.MINISBLACK, kinds.MINISWHITE, kinds.RGB, kinds.PALETTE) and not jpeg_ycbcr
                    and not cmyk and not ycbcr):
                label = getattr(kinds(photometric), "name", photometric)
                what = "" if photometric != kinds.SEPARATED else (
                    f" with {inks} inks" if inks != 4 else " with a non-CMYK ink set (InkSet 2)")
                raise BracketError(f"{name}: unsupported TIFF colour model {label}{what} (use RGB, CMYK or "
                                   "greyscale)")
            if page.sampleformat == tifffile.SAMPLEFORMAT.INT:
                raise BracketError(f"{name}: signed integer TIFF samples are not supported (use unsigned or float)")
            pixels = _tiff_ycbcr(path, page, data) if ycbcr else page.asarray()
            if page.planarconfig == tifffile.PLANARCONFIG.SEPARATE and pixels.ndim == 3:
                pixels = np.moveaxis(pixels, 0, 2)
            if pixels.shape[:2] != (height, width) or pixels.ndim > 3:
                raise BracketError(f"{name}: cannot read TIFF: decoded samples of shape {pixels.shape} do not "
                                   f"match its {width}×{height} header")
            if photometric == kinds.PALETTE:
                colormap = page.colormap
                if colormap is None:
                    raise BracketError(f"{name}: palette TIFF without a colour map")
                pixels = np.moveaxis(colormap, 0, 1)[pixels]  # uint16 RGB from the colour map
            elif photometric == kinds.MINISWHITE and pixels.dtype.kind == "u":
                pixels = np.iinfo(pixels.dtype).max - pixels if page.bitspersample in (8, 16, 32) else (
                    (2**page.bitspersample - 1) - pixels)
            colour_samples = 4 if cmyk else 3 if photometric in (kinds.RGB, kinds.YCBCR) else 1
            extras = tuple(int(e) for e in (page.extrasamples or ()))
            if pixels.ndim == 3 and pixels.shape[2] > colour_samples and extras and extras[0] == 0:
                # TIFF 6.0 ExtraSamples 0 is "unspecified data" (e.g. a selection saved as a channel by an image
                # editor), not transparency: only 1 (associated) and 2 (unassociated) are alpha.
                notes.append(f"{name}: {pixels.shape[2] - colour_samples} extra channel(s) of unspecified meaning "
                             "(ExtraSamples 0, not alpha) ignored")
                pixels = pixels[..., :colour_samples]
            tags = page.tags
            code = int(tags[274].value) if 274 in tags else 1
            icc = tags[34675].value if 34675 in tags else None
            xmp = tags[700].value if 700 in tags else None
            associated = bool(page.extrasamples) and int(page.extrasamples[0]) == 1
            bps = int(page.bitspersample)
            placement = _layer_placement(path, tags, width, height, max_pixels)
            mask = _tiff_mask(tif, page)
    except BracketError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001  tifffile raises TiffFileError, ValueError, struct.error... on bad files
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        if isinstance(exc, (LookupError, struct.error)):  # "0", "unpack requires a buffer" say nothing to a user
            reason = f"damaged or truncated TIFF structure ({reason})"
        raise BracketError(f"{name}: cannot read TIFF: {reason}") from None
    icc = bytes(icc) if isinstance(icc, (bytes, bytearray)) else None
    source_bits = 8 if pixels.dtype == np.uint8 else 16
    if cmyk:
        if pixels.dtype.kind != "u" or pixels.dtype.itemsize > 2:
            raise BracketError(f"{name}: CMYK TIFF with {pixels.dtype} samples is not supported (use 8 or 16-bit)")
        pixels, icc = _cmyk_to_rgb(path, pixels, icc, notes), None
    significant = bps if pixels.dtype.kind == "u" and photometric != kinds.PALETTE and bps < 16 and bps != 8 else None
    image, valid, bits = _finish(path, pixels, notes, associated=associated, significant_bits=significant)
    if mask is not None and not mask.all():
        valid = mask if valid is None else valid & mask
    if placement is not None:
        image, valid = _place_layer(path, image, valid, placement, notes)
    bits = source_bits if cmyk else bits
    parsed = exifmod.parse(data)
    xmp = bytes(xmp) if isinstance(xmp, (bytes, bytearray)) else (xmp.encode() if isinstance(xmp, str) else None)
    return Decoded(path, image, bits, code if 1 <= code <= 8 else 1, valid, parsed, exifmod.exposure(parsed),
                   _usable_icc(path, icc, notes), xmp, notes)


def _tiff_ycbcr(path: Path, page, data: bytes) -> np.ndarray:  # type: ignore[no-untyped-def]
    """H×W×3 RGB samples (uint8 for 8-bit, else uint16) of a TIFF stored as YCbCr without JPEG compression (TIFF 6.0
    section 21): tifffile returns such samples unconverted, and refuses chroma-subsampled ones, which old digital
    cameras (TIFF mode) and scanners write. Subsampled data is read when uncompressed: each data unit holds
    h×v luma samples, then Cb and Cr. Converted with the file's YCbCrCoefficients and ReferenceBlackWhite."""
    name = shown_path(path)
    bps = int(page.bitspersample)
    if bps not in (8, 16) or int(page.samplesperpixel) != 3:
        raise BracketError(f"{name}: YCbCr TIFF with {page.samplesperpixel} samples of {bps} bits is not supported")
    top = float(2**bps - 1)
    height, width = int(page.imagelength), int(page.imagewidth)
    sub_h, sub_v = (int(n) for n in (page.subsampling or (1, 1)))
    if (sub_h, sub_v) == (1, 1):
        samples = page.asarray().astype(np.float32)
        luma, cb, cr = samples[..., 0], samples[..., 1], samples[..., 2]
    else:
        if int(page.compression) != 1 or sub_h not in (1, 2, 4) or sub_v not in (1, 2, 4):
            raise BracketError(f"{name}: chroma-subsampled ({sub_h}×{sub_v}) YCbCr TIFF with compression "
                               f"{int(page.compression)} is not supported (save it as RGB)")
        blocks_v, blocks_h = -(-height // sub_v), -(-width // sub_h)
        unit = sub_h * sub_v + 2
        raw = b"".join(data[o:o + n] for o, n in zip(page.dataoffsets, page.databytecounts))
        dtype = np.dtype(page.parent.byteorder + ("u1" if bps == 8 else "u2"))
        count = blocks_v * blocks_h * unit
        units = np.frombuffer(raw, dtype, count=min(count, len(raw) // dtype.itemsize))
        if units.size < count:
            raise BracketError(f"{name}: truncated YCbCr TIFF (image data holds {units.size} of {count} samples)")
        units = units.reshape(blocks_v, blocks_h, unit).astype(np.float32)
        luma = units[..., :sub_h * sub_v].reshape(blocks_v, blocks_h, sub_v, sub_h).transpose(0, 2, 1, 3)
        luma = luma.reshape(blocks_v * sub_v, blocks_h * sub_h)[:height, :width]
        # chroma sited at the block's centre (TIFF's default YCbCrPositioning 1): a smooth upsampling
        cb, cr = (cv2.resize(np.ascontiguousarray(units[..., k]), (blocks_h * sub_h, blocks_v * sub_v),
                             interpolation=cv2.INTER_LINEAR)[:height, :width] for k in (-2, -1))
    red_w, green_w, blue_w = (float(c) for c in (page.tags.valueof(529) or (0.299, 0.587, 0.114)))
    reference = page.tags.valueof(532)
    reference = [float(v) for v in reference] if reference is not None and len(reference) == 6 else [
        0.0, top, (top + 1) / 2, top, (top + 1) / 2, top]
    # TIFF 6.0 section 21: Y = (Ydata - YB)·range/(YW - YB), Cb = (Cbdata - CbB)·crange/(CbW - CbB), in units of
    # full scale `top`; the chroma coding range is 127 for 8 bits
    chroma = (top - 1) / 2 / top
    y = (luma - reference[0]) / max(reference[1] - reference[0], 1e-6)
    cb = (cb - reference[2]) / max(reference[3] - reference[2], 1e-6) * chroma
    cr = (cr - reference[4]) / max(reference[5] - reference[4], 1e-6) * chroma
    red = y + cr * (2 - 2 * red_w)
    blue = y + cb * (2 - 2 * blue_w)
    green = (y - blue_w * blue - red_w * red) / max(green_w, 1e-6)
    rgb = np.clip(np.dstack([red, green, blue]), 0.0, 1.0) * top
    return np.round(rgb).astype(np.uint8 if bps == 8 else np.uint16)


def _tiff_mask(tif, page) -> np.ndarray | None:  # type: ignore[no-untyped-def]
    """H×W bool "has data" from a TIFF transparency mask, else None: a page among the first ones (or a SubIFD of
    the image) with NewSubfileType bit 4 and PhotometricInterpretation 4, the image's size (TIFF 6.0 section
    "NewSubfileType": 1 = the pixel is opaque, 0 = transparent). The image's own alpha is read by `_finish`."""
    candidates = [tif.pages[i] for i in range(min(len(tif.pages), _PAGES_LOOKED_AT))]
    candidates += list(getattr(page, "pages", None) or ())[:_PAGES_LOOKED_AT] if page.subifds else []
    for other in candidates:
        if (other is page or not hasattr(other, "subfiletype") or not int(other.subfiletype) & 4
                or int(other.photometric) != 4):
            continue
        if (int(other.imagelength), int(other.imagewidth)) == (int(page.imagelength), int(page.imagewidth)):
            samples = other.asarray()
            return samples.reshape(samples.shape[:2]) != 0 if samples.ndim >= 2 else None
    return None


def _tag_number(tags, code: int) -> float | None:  # type: ignore[no-untyped-def]
    """A TIFF tag's first value as a float (a RATIONAL comes from tifffile as (numerator, denominator)), else None."""
    if code not in tags:
        return None
    value = tags[code].value
    try:
        if isinstance(value, tuple) and len(value) == 2 and not isinstance(value[0], tuple):
            return float(value[0]) / float(value[1]) if value[1] else None
        return float(value[0] if isinstance(value, (tuple, list)) else value)
    except (TypeError, ValueError, IndexError):
        return None


def _layer_placement(path: Path, tags, width: int, height: int,  # type: ignore[no-untyped-def]
                     max_pixels: int) -> tuple[int, int, int, int] | None:
    """(x, y, canvas W, canvas H) of a cropped TIFF layer, else None.

    Hugin's nona (and so enfuse's usual inputs) writes each remapped frame cropped to where it has data, placed by
    XPosition/YPosition (tags 286/287, in ResolutionUnit units: times X/YResolution gives pixels) on a canvas whose
    size is in PIXAR_IMAGEFULLWIDTH/LENGTH (tags 33300/33301). Only a placement that fits its canvas is used."""
    full_w, full_h = _tag_number(tags, 33300), _tag_number(tags, 33301)
    if full_w is None or full_h is None or (286 not in tags and 287 not in tags):
        return None
    full_w, full_h = int(full_w), int(full_h)
    x = round((_tag_number(tags, 286) or 0.0) * (_tag_number(tags, 282) or 1.0))
    y = round((_tag_number(tags, 287) or 0.0) * (_tag_number(tags, 283) or 1.0))
    if (full_w, full_h) == (width, height) or x < 0 or y < 0 or x + width > full_w or y + height > full_h:
        return None
    check_size(path, full_w, full_h, max_pixels)
    return x, y, full_w, full_h


def _place_layer(path: Path, image: np.ndarray, valid: np.ndarray | None, placement: tuple[int, int, int, int],
                 notes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """A cropped layer's H×W×3 pixels and validity put at (x, y) on its full canvas; the rest of it is no data."""
    x, y, full_w, full_h = placement
    h, w = image.shape[:2]
    canvas = np.zeros((full_h, full_w, 3), np.float32)
    canvas[y:y + h, x:x + w] = image
    covered = np.zeros((full_h, full_w), bool)
    covered[y:y + h, x:x + w] = True if valid is None else valid
    notes.append(f"{shown_path(path)}: a cropped layer ({w}×{h} at {x}, {y}; TIFF XPosition/YPosition, as Hugin's "
                 f"nona writes) placed on its full {full_w}×{full_h} canvas; the rest is no data")
    return canvas, covered


def _cmyk_to_rgb(path: Path, samples: np.ndarray, icc: bytes | None, notes: list[str]) -> np.ndarray:
    """H×W×(4+extras) uint8/16 CMYK samples (0 = no ink, as TIFF stores them) -> H×W×(3+extras) float32 sRGB in
    [0,1], extras (alpha) scaled alike. With an embedded CMYK profile LittleCMS converts (`profiles.cmyk_to_srgb`);
    without one the naive device conversion R = (1-C)(1-K) is used, as JPEG decoders do, and a note says so."""
    name = shown_path(path)
    top = np.float32(np.iinfo(samples.dtype).max)
    rgb, outside, how = profiles.cmyk_to_srgb(samples[..., :4], icc)
    if how is None:
        notes.append(f"{name}: CMYK without an ICC profile: converted to sRGB with the naive formula "
                     "(colours are approximate; embed the printer profile for an exact conversion)")
    else:
        clipped = f"; {outside:.1%} of its pixels lie outside sRGB and are clipped" if outside > 1e-4 else ""
        notes.append(f"{name}: converted from CMYK ({how}) to sRGB{clipped}")
    extras = samples[..., 4:].astype(np.float32) / top
    return np.concatenate([rgb, extras], axis=2) if extras.shape[2] else rgb


def _read_heif(path: Path, data: bytes, max_pixels: int) -> Decoded:
    """HEIC/HEIF (phones) through pillow-heif/libheif: 8 or 10/12-bit, EXIF, ICC and XMP kept.

    libheif applies the file's own rotation/mirror boxes (irot/imir), which the HEIF standard makes authoritative;
    the EXIF Orientation tag is then only a note of what was done, so the pixels come back upright.
    """
    import pillow_heif

    name = shown_path(path)
    notes: list[str] = []
    try:
        with quiet_decoder():
            heif = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=False)
            width, height = heif.size
            check_size(path, width, height, max_pixels)
            pixels = np.asarray(heif)
            info = dict(heif.info)
    except BracketError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001  pillow-heif raises ValueError/RuntimeError/HeifError on bad files
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise BracketError(f"{name}: cannot read HEIF: {reason}") from None
    depth = int(info.get("bit_depth") or 8)
    if pixels.dtype == np.uint16 and 8 < depth < 16:
        pixels = pixels >> (16 - depth)  # libheif delivers 10/12-bit samples shifted to the top of 16 bits
    image, valid, bits = _finish(path, pixels, notes, significant_bits=depth if pixels.dtype == np.uint16 else None)
    parsed = exifmod.parse(info.get("exif"))
    xmp = info.get("xmp")
    return Decoded(path, image, bits, 1, valid, parsed, exifmod.exposure(parsed),
                   _usable_icc(path, info.get("icc_profile"), notes), xmp if isinstance(xmp, bytes) else None, notes)


def _read_pillow(path: Path, data: bytes, kind: str, max_pixels: int) -> Decoded:
    """WebP or AVIF through Pillow (libwebp, libavif): 8-bit samples, alpha, EXIF, ICC and XMP kept.

    Pixels come back as stored and the EXIF Orientation is applied with the bracket's other frames: Pillow reports
    an AVIF's irot/imir boxes (which the HEIF/AVIF spec makes authoritative) as that tag. Pillow decodes 10/12-bit
    AVIF to 8 bits, so such a frame's depth is noted. An animated file gives its first frame, with a note.
    """
    from PIL import Image

    name = shown_path(path)
    notes: list[str] = []
    try:
        with quiet_decoder(), Image.open(io.BytesIO(data), formats=[kind.upper()]) as im:
            check_size(path, im.width, im.height, max_pixels)
            frames = int(getattr(im, "n_frames", 1) or 1)
            info = dict(im.info)
            exif_block = im.getexif().tobytes() if "exif" in info else None
            if im.mode not in ("RGB", "RGBA", "L", "LA"):
                im = im.convert("RGBA" if "A" in im.mode or "transparency" in info else "RGB")
            pixels = np.asarray(im)
    except BracketError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001  Pillow raises OSError/ValueError/SyntaxError on bad files
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise BracketError(f"{name}: cannot read {kind}: {reason}") from None
    if frames > 1:
        notes.append(f"{name}: animated {kind} with {frames} frames; its first frame is used")
    image, valid, bits = _finish(path, pixels, notes)
    parsed = exifmod.parse(exif_block or info.get("exif"))
    xmp = info.get("xmp")
    xmp = xmp.encode("utf-8") if isinstance(xmp, str) else xmp
    return Decoded(path, image, bits, exifmod.orientation(parsed), valid, parsed, exifmod.exposure(parsed),
                   _usable_icc(path, info.get("icc_profile") or None, notes),
                   xmp if isinstance(xmp, bytes) else None, notes)


def _read_jxl(path: Path, data: bytes, max_pixels: int) -> Decoded:
    """JPEG XL through imagecodecs/libjxl: 8/16-bit or float samples, grey, alpha; the container's EXIF and XMP.

    libjxl applies the codestream's orientation (authoritative in JPEG XL), so the pixels come back upright. An
    animation gives its first frame, with a note. The pixels come back in the file's own colour encoding, which
    imagecodecs does not report: frames are taken as sRGB, as nearly every JPEG XL written from a photo is.
    """
    import imagecodecs

    name = shown_path(path)
    notes: list[str] = []
    head = jpegxl.header(data)
    if head is None:
        raise BracketError(f"{name}: cannot read JPEG XL: the header is damaged or cut short")
    check_size(path, head.width, head.height, max_pixels)
    try:
        with quiet_decoder():
            pixels = imagecodecs.jpegxl_decode(data, index=0)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001  imagecodecs raises JpegxlError (and ValueError) on bad files
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        if "NEED_MORE_INPUT" in reason:
            reason = "the file is cut short"
        raise BracketError(f"{name}: cannot read JPEG XL: {reason}") from None
    if head.animated:
        notes.append(f"{name}: animated JPEG XL; its first frame is used")
    image, valid, bits = _finish(path, pixels, notes)
    exif_block, xmp = jpegxl.metadata(data)
    parsed = exifmod.parse(exif_block)
    return Decoded(path, image, bits, 1, valid, parsed, exifmod.exposure(parsed), None, xmp, notes)


# LibRaw's `flip` (0 none, 3 180°, 5 90° counter-clockwise, 6 90° clockwise) as an EXIF orientation code.
_LIBRAW_FLIP_TO_EXIF = {0: 1, 3: 3, 5: 8, 6: 6}


def _read_raw(path: Path, data: bytes, max_pixels: int) -> Decoded:
    """Camera RAW through rawpy/LibRaw: 16-bit sRGB, camera white balance, no auto-brightening."""
    import rawpy

    name = shown_path(path)
    try:
        with quiet_decoder(), rawpy.imread(io.BytesIO(data)) as raw:
            check_size(path, raw.sizes.width, raw.sizes.height, max_pixels)
            flip = int(raw.sizes.flip)
            # No auto-bright, and no lowering of the white level to the brightest value found
            # (adjust_maximum_thr=0), keep the exposures comparable; gamma (2.4, 12.92) is the sRGB curve.
            # user_flip=0 leaves the pixels as stored: the bracket applies the orientation with the other frames.
            rgb = raw.postprocess(output_bps=16, use_camera_wb=True, no_auto_bright=True, adjust_maximum_thr=0.0,
                                  output_color=rawpy.ColorSpace.sRGB, gamma=(2.4, 12.92), user_flip=0)
            other = raw.other
    except BracketError:
        raise
    except (rawpy.LibRawError, OSError, ValueError, RuntimeError) as exc:
        # LibRaw's errors carry its C message as bytes: b'Unsupported file format or not RAW file'
        text = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        reason = " ".join(text.split())[:200] or type(exc).__name__
        if isinstance(exc, rawpy.LibRawFileUnsupportedError):
            reason += ": a camera newer than this LibRaw?"
        raise BracketError(f"{name}: cannot read camera RAW ({reason})") from None
    notes: list[str] = []
    image, valid, bits = _finish(path, rgb, notes)
    parsed = exifmod.parse(data) if data[:2] in (b"II", b"MM") else None  # TIFF-based RAWs (DNG, NEF, CR2...)
    t, n, iso = exifmod.exposure(parsed)
    settings = (t or (other.shutter_speed or None), n or (other.aperture or None), iso or (other.iso_speed or None))
    return Decoded(path, image, bits, _LIBRAW_FLIP_TO_EXIF.get(flip, 1), valid, parsed, settings, None, None, notes)


def read_frame(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS, into: np.ndarray | None = None) -> Decoded:
    """Decode one image file (dispatch on its extension) -> Decoded; every failure is a BracketError naming it.

    Size limits (MIN_SIDE px per side, `max_pixels` in all) are checked from the header before decoding.
    into: optional C-contiguous float32 buffer (e.g. a frame's slot of a bracket's stack, sized by
    `header_shape`); when it holds exactly H×W×3 values the pixels are decoded into it (8/16-bit PNG and JPEG:
    converted straight from the decoder's samples; other formats: copied there at the end) and
    `Decoded.pixels` is a view of it. The values are those of a decode without it; a buffer that does not fit is
    left alone. What it holds after a failure is undefined.
    """
    path = Path(path)
    name = shown_path(path)
    suffix = path.suffix.lower()
    data = None
    if suffix not in IMAGE_SUFFIXES:
        if os.path.isdir(path):
            raise BracketError(f"{name}: is a folder, not an image file")
        unsupported = BracketError(f"{name}: unsupported format '{shown_path(path.suffix) or '(no extension)'}' "
                                   f"(use {FORMAT_NAMES})")
        try:
            regular = stat.S_ISREG(os.stat(path).st_mode)
        except OSError as exc:  # missing, a link loop, a dangling link: say that, not "unsupported format"
            raise _open_error(path, exc) from None
        if not regular:
            raise unsupported
        # A name that hides the type (browser downloads "photo.jpg_large", "image.jpeg.download", no extension at
        # all): the content decides, as for a misnamed file; anything else keeps the plain refusal.
        data = read_regular_file(path)
        if sniff(data) is None:
            raise unsupported from None
    data = read_regular_file(path) if data is None else data
    note = None
    actual = None if suffix in RAW_SUFFIXES else sniff(data)  # raws are TIFF-like inside; only LibRaw reads them
    if actual is not None and actual != _kind_of_suffix(suffix):
        suffix = {"JPEG": ".jpg", "PNG": ".png", "TIFF": ".tif", "HEIF": ".heic", "WebP": ".webp",
                  "AVIF": ".avif", "JPEG XL": ".jxl"}[actual]
        ending = f"ends in '{shown_path(path.suffix)}'" if path.suffix else "has no extension"
        note = f"{name}: the file holds a {actual} image although its name {ending}; it is read as {actual}"
    try:
        if suffix in CV_SUFFIXES:
            decoded = _read_cv(path, data, CV_SUFFIXES[suffix], max_pixels, into)
        elif not data:
            raise BracketError(f"{name}: empty file")
        elif suffix in TIFF_SUFFIXES:
            decoded = _read_tiff(path, data, max_pixels)
        elif suffix in HEIF_SUFFIXES:
            decoded = _read_heif(path, data, max_pixels)
        elif suffix in PILLOW_SUFFIXES:
            decoded = _read_pillow(path, data, PILLOW_SUFFIXES[suffix], max_pixels)
        elif suffix in JXL_SUFFIXES:
            decoded = _read_jxl(path, data, max_pixels)
        else:
            decoded = _read_raw(path, data, max_pixels)
    except MemoryError:
        raise BracketError(f"{name}: not enough memory to decode this image") from None
    # The decoder's output, not only the header, must be a usable frame (a damaged header can disagree with it).
    check_size(path, decoded.pixels.shape[1], decoded.pixels.shape[0], max_pixels)
    if decoded.icc is not None and profiles.colour_space(decoded.icc) == "GRAY":
        _grey_profile(decoded)
    if decoded.icc is None and (suffix in HEIF_SUFFIXES or suffix == ".avif"):
        _nclx_colour(decoded, data)
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        animation = _png_chunk(data, b"acTL")  # APNG (PNG third edition): frames, plays; libpng reads IDAT only
        frames = int.from_bytes(animation[:4], "big") if animation and len(animation) >= 8 else 0
        if frames > 1:
            decoded.notes.append(f"{name}: animated PNG with {frames} frames; its still image (the first frame) "
                                 "is used")
    if decoded.xmp:
        _xmp_fallback(decoded, stored_as_is=suffix in CV_SUFFIXES or suffix in TIFF_SUFFIXES or suffix == ".webp")
    if note is not None:
        decoded.notes.insert(0, note)
    target = _into(into, decoded.pixels.shape)
    if target is not None and decoded.pixels.ctypes.data != target.ctypes.data:
        # a reader or a colour step that made its own array (TIFF, HEIF, RAW, a grey or gAMA PNG, alpha)
        target[...] = decoded.pixels
        decoded.pixels = target
    return decoded


def _grey_profile(decoded: Decoded) -> None:
    """A greyscale frame with a grey ICC profile (Photoshop's default "Dot Gain 20%", "Gray Gamma 2.2", a linear
    grey...): its pixels converted to sRGB by LittleCMS, in place, with a note; the profile then dropped. A grey
    profile on colour pixels is ignored (taken as sRGB) with a note."""
    import imagecodecs

    name, icc = shown_path(decoded.path), decoded.icc
    decoded.icc = None
    if icc is None:
        return
    pixels = decoded.pixels
    label = profiles.describe(icc)
    if not (np.array_equal(pixels[..., 0], pixels[..., 1]) and np.array_equal(pixels[..., 1], pixels[..., 2])):
        decoded.notes.append(f"{name}: embedded ICC profile ignored (a greyscale profile on colour pixels); the "
                             "pixels are taken as sRGB")
        return
    try:
        rgb = imagecodecs.cms_transform(np.ascontiguousarray(pixels[..., 0]), icc, profiles.srgb_profile(),
                                        colorspace="gray", outcolorspace="rgb", outdtype=np.float32)
    except Exception:  # noqa: BLE001  imagecodecs raises CmsError, ValueError... for unusable profiles
        decoded.notes.append(f"{name}: embedded greyscale ICC profile ignored (LittleCMS cannot use it); the "
                             "pixels are taken as sRGB")
        return
    decoded.pixels = np.clip(rgb.reshape(pixels.shape), 0.0, 1.0).astype(np.float32)
    decoded.notes.append(f"{name}: greyscale with the ICC profile \"{label}\": converted to sRGB")


def _nclx_colour(decoded: Decoded, data: bytes) -> None:
    """A HEIF/AVIF frame without an ICC profile whose `colr nclx` box names another encoding than sRGB (Display
    P3 from phones, BT.2020 PQ/HLG HDR from Lightroom or cameras): its pixels converted to sRGB in place by
    `cicp.to_srgb` (HDR mapped with its reference white at SDR white, brighter light clipped), with a note.
    libheif and libavif give RGB in the file's own primaries and transfer; untagged, they were read as sRGB."""
    code_points = cicp.bmff_nclx(data)
    if code_points is None:
        return
    converted, note = cicp.to_srgb(decoded.pixels, code_points[0], code_points[1], 0, 1, source="nclx colour box")
    if note:
        decoded.pixels = converted
        decoded.notes.append(f"{shown_path(decoded.path)}: {note}")


def _xmp_fallback(decoded: Decoded, *, stored_as_is: bool) -> None:
    """Fill what EXIF lacks from the file's XMP packet, in place: exposure time, f-number and ISO (exif:ExposureTime,
    ... as Lightroom, darktable and exiftool write them; some exports keep only XMP), and, for pixels stored as is
    (`stored_as_is`: JPEG, PNG, TIFF, WebP; other decoders turn the pixels themselves), tiff:Orientation where EXIF
    has no Orientation tag. Where both give an orientation and they disagree, EXIF wins (the Metadata Working
    Group's rule; cameras write EXIF, XMP is a copy) and a note says so."""
    tags = exifmod.from_xmp(decoded.xmp)
    if not tags:
        return
    name = shown_path(decoded.path)
    if stored_as_is and exifmod.ORIENTATION in tags:
        code = exifmod.orientation(tags)
        if exifmod.ORIENTATION not in (decoded.exif or {}):
            decoded.orientation = code
        elif code != decoded.orientation:
            decoded.notes.append(f"{name}: its XMP tiff:Orientation {code} disagrees with its EXIF Orientation "
                                 f"{decoded.orientation}; the EXIF tag is used")
    if None in decoded.settings:
        extra = exifmod.exposure(tags)
        filled = tuple(own if own is not None else other for own, other in zip(decoded.settings, extra))
        if filled != decoded.settings:
            words = [w for w, old, new in zip(("exposure time", "f-number", "ISO"), decoded.settings, filled)
                     if old is None and new is not None]
            decoded.notes.append(f"{name}: {', '.join(words)} taken from its XMP metadata (none in EXIF)")
            decoded.settings = filled  # type: ignore[assignment]


_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")
_AVIF_BRANDS = (b"avif", b"avis")


def sniff(data: bytes) -> str | None:
    """"JPEG", "PNG", "TIFF", "HEIF", "WebP", "AVIF" or "JPEG XL" from a file's first bytes (its signature), None
    when none.

    Files are often misnamed (a PNG saved as .jpg by a web download, a JPEG renamed .tif), and their content, not
    the name, tells how to decode them. Signatures: JPEG SOI FF D8 FF, the PNG 8-byte signature, TIFF II*\0 / MM\0*
    (BigTIFF II+\0 / MM\0+), ISO BMFF `ftyp` box with a HEIF or AVIF brand, RIFF container of type WEBP, JPEG XL
    codestream FF 0A or its container's `JXL ` box.
    """
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        return "TIFF"
    if data[4:8] == b"ftyp":
        # ISO/IEC 14496-12 ftyp: major brand, minor version, then compatible brands up to the box's size. An AVIF
        # often carries the generic major brand mif1 and says "avif" only among the compatible ones.
        size = int.from_bytes(data[:4], "big")
        brands = [data[8:12]] + [data[i:i + 4] for i in range(16, min(size, len(data), 256) - 3, 4)]
        if any(b in _AVIF_BRANDS for b in brands) and data[8:12] not in _HEIF_BRANDS[:6]:
            return "AVIF"
        if data[8:12] in _HEIF_BRANDS:
            return "HEIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if jpegxl.is_jpegxl(data):
        return "JPEG XL"
    return None


def _kind_of_suffix(suffix: str) -> str | None:
    if suffix in CV_SUFFIXES:
        return CV_SUFFIXES[suffix]
    if suffix in PILLOW_SUFFIXES:
        return PILLOW_SUFFIXES[suffix]
    if suffix in JXL_SUFFIXES:
        return "JPEG XL"
    return "TIFF" if suffix in TIFF_SUFFIXES else "HEIF" if suffix in HEIF_SUFFIXES else None
