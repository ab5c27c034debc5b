"""Bracket loading: read 2-9 exposures (JPEG, PNG, TIFF, camera RAW), order them by exposure, validate, align."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from lutfuse.core import exif as exifmod
from lutfuse.core.errors import BracketError

MIN_FRAMES, MAX_FRAMES = 2, 9
CV_SUFFIXES = {".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".png": "PNG"}
TIFF_SUFFIXES = {".tif", ".tiff"}
RAW_SUFFIXES = {
    ".3fr", ".arw", ".cr2", ".cr3", ".crw", ".dcr", ".dng", ".erf", ".iiq", ".kdc", ".mef", ".mos", ".mrw",
    ".nef", ".nrw", ".orf", ".pef", ".raf", ".raw", ".rw2", ".rwl", ".sr2", ".srf", ".srw", ".x3f",
}
IMAGE_SUFFIXES = set(CV_SUFFIXES) | TIFF_SUFFIXES | RAW_SUFFIXES
_GAMMA = 2.2  # assumed display gamma when linearising 8/16-bit frames to estimate their relative exposure


def relative_evs(evs: Sequence[float]) -> list[float]:
    """EVs relative to the middle frame (what a photographer calls −2 / 0 / +2)."""
    mid = evs[len(evs) // 2]
    return [e - mid for e in evs]


@dataclass(frozen=True)
class Frame:
    """One exposure: pixels H×W×3 float32 RGB in [0,1] (orientation applied), bit depth, EV and EXIF."""

    path: Path
    image: np.ndarray
    bit_depth: int
    ev: float
    ev_source: str
    exif: bytes | None
    valid: np.ndarray | None = None  # H×W bool: True where the frame has data (alpha > 0, finite, covered); None = all
    icc: bytes | None = None  # ICC profile the pixels are encoded in (None = sRGB)
    xmp: bytes | None = None  # the file's XMP packet, for the writer


@dataclass
class Bracket:
    """Frames of one scene, darkest first; `aligned` tells whether their images were registered to the middle one."""

    frames: list[Frame]
    aligned: bool
    # The stack built while loading, so that `images` does not copy every frame again.
    _stack: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def images(self) -> np.ndarray:
        """N×H×W×3 float32 stack of the frames' images in [0,1], darkest first."""
        stack = self._stack
        # Reuse the loader's stack only while every frame still is the view at its own index.
        if stack is None or len(stack) != len(self.frames) or any(
                f.image.ctypes.data != stack[i].ctypes.data or f.image.shape != stack[i].shape
                for i, f in enumerate(self.frames)):
            self._stack = np.stack([f.image for f in self.frames]).astype(np.float32, copy=False)
        return self._stack

    @property
    def bit_depth(self) -> int:
        """Largest source bit depth over the frames (8 or 16)."""
        return max(f.bit_depth for f in self.frames)

    def middle(self) -> Frame:
        """The middle frame (index N//2), the alignment reference and the source of the output's EXIF."""
        return self.frames[len(self.frames) // 2]

    def mean(self) -> np.ndarray:
        """H×W×3 float32 per-pixel mean of the frames in [0,1]: the base image the LUT applies to."""
        return self.images.mean(axis=0, dtype=np.float32)

    @classmethod
    def from_images(cls, images: Sequence[np.ndarray] | np.ndarray, *, evs: Sequence[float] | None = None,
                    bit_depth: int = 8, aligned: bool = False) -> Bracket:
        """A bracket of in-memory frames (each H×W×3 float in [0,1], already darkest first), e.g. a validation
        stack, for `Engine.set_bracket`: no files behind it (paths are placeholders `frame0`, `frame1`, ...),
        no EXIF, EVs 0, 1, 2, ... unless given (source "brightness"), not reordered, not aligned."""
        if len(images) < MIN_FRAMES or len(images) > MAX_FRAMES:
            raise BracketError(f"a bracket has {MIN_FRAMES} to {MAX_FRAMES} frames, got {len(images)}")
        try:
            stack = np.ascontiguousarray(np.stack([np.asarray(im) for im in images]), dtype=np.float32)
        except ValueError as exc:
            raise BracketError(f"frames must be H×W×3 images of one size ({exc})") from None
        if stack.ndim != 4 or stack.shape[-1] != 3:
            raise BracketError(f"frames must be H×W×3 images of one size, got a stack of shape {stack.shape}")
        evs = [float(i) for i in range(len(stack))] if evs is None else [float(e) for e in evs]
        if len(evs) != len(stack):
            raise BracketError(f"{len(evs)} EVs given for {len(stack)} frames")
        frames = [Frame(path=Path(f"frame{i}"), image=stack[i], bit_depth=bit_depth, ev=evs[i],
                        ev_source="brightness", exif=None) for i in range(len(stack))]
        return cls(frames=frames, aligned=aligned, _stack=stack)


@dataclass
class _Loaded:
    """One decoded file before it joins a bracket."""

    image: np.ndarray
    bit_depth: int
    exif: bytes | None
    settings: tuple[float | None, float | None, float | None]  # exposure time, f-number, ISO


# ---------------------------------------------------------------------------------------------- headers

def _header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG or JPEG header without decoding; None where the header does not say."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
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
            return int.from_bytes(data[pos + 7:pos + 9], "big"), int.from_bytes(data[pos + 5:pos + 7], "big")
        if marker == 0xDA:
            return None
        pos += 2 + length
    return None


def _check_pixels(path: Path, width: int, height: int, max_pixels: int) -> None:
    """Refuse an image over the pixel limit before it is decoded."""
    if width * height > max_pixels:
        raise BracketError(f"{path}: {width}×{height} is {width * height / 1e6:.0f} MP, over the limit of "
                           f"{max_pixels / 1e6:g} MP")


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


# ---------------------------------------------------------------------------------------------- readers

def _to_rgb_float(path: Path, pixels: np.ndarray, bgr: bool) -> tuple[np.ndarray, int]:
    """Decoded pixels (H×W, H×W×1..4, uint8/uint16/float) -> H×W×3 float32 RGB in [0,1] and bit depth."""
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    elif pixels.ndim == 3 and pixels.shape[2] == 2:  # grey + alpha; alpha is ignored
        pixels = np.repeat(pixels[..., :1], 3, axis=2)
    elif pixels.ndim == 3 and pixels.shape[2] >= 3:
        pixels = pixels[..., :3]  # alpha (or extra samples) is ignored
        if bgr:
            pixels = pixels[..., ::-1]
    else:
        raise BracketError(f"{path}: unsupported image layout {pixels.shape}")
    if pixels.dtype == np.uint8:
        return (pixels.astype(np.float32) / 255.0), 8
    if pixels.dtype == np.uint16:
        return (pixels.astype(np.float32) / 65535.0), 16
    if pixels.dtype.kind == "f":
        return np.clip(np.nan_to_num(pixels.astype(np.float32)), 0.0, 1.0), 16
    raise BracketError(f"{path}: unsupported sample type {pixels.dtype} (use 8- or 16-bit images)")


def _read_cv(path: Path, kind: str, max_pixels: int) -> _Loaded:
    """JPEG or PNG through OpenCV, EXIF orientation applied exactly once (by us, from the EXIF block)."""
    data = path.read_bytes()
    if not data:
        raise BracketError(f"{path}: empty file")
    size = _header_size(data)
    if size is None:
        raise BracketError(f"{path}: not a readable {kind} file (no valid {kind} header)")
    _check_pixels(path, *size, max_pixels)
    actual = "PNG" if data[:4] == b"\x89PNG" else "JPEG"
    reason = _truncation(data, actual)
    if reason:
        raise BracketError(f"{path}: {reason}")
    buf = np.frombuffer(data, np.uint8)
    block = None
    try:
        # IMREAD_UNCHANGED keeps 16 bits and makes OpenCV ignore EXIF orientation, which we apply below.
        if hasattr(cv2, "imdecodeWithMetadata"):
            pixels, types, blocks = cv2.imdecodeWithMetadata(buf, cv2.IMREAD_UNCHANGED)
            for kind_id, chunk in zip(np.ravel(types), blocks):
                if kind_id == cv2.IMAGE_METADATA_EXIF:
                    block = np.asarray(chunk, np.uint8).tobytes()
        else:
            pixels = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
            block = data if actual == "JPEG" else None
    except cv2.error as exc:
        raise BracketError(f"{path}: cannot decode {actual}: {str(exc).strip().splitlines()[-1]}") from None
    if pixels is None or pixels.size == 0:
        raise BracketError(f"{path}: cannot decode {actual} (corrupt or unsupported variant)")
    parsed = exifmod.parse(block)
    image, bits = _to_rgb_float(path, pixels, bgr=True)
    image = exifmod.apply_orientation(image, exifmod.orientation(parsed))
    return _Loaded(image, bits, exifmod.for_output(parsed), exifmod.exposure(parsed))


def _read_tiff(path: Path, max_pixels: int) -> _Loaded:
    """8/16-bit (or float) RGB or grey TIFF through tifffile, orientation tag applied."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            height, width = page.imagelength, page.imagewidth
            _check_pixels(path, width, height, max_pixels)
            end = max((o + n for o, n in zip(page.dataoffsets, page.databytecounts)), default=0)
            if end > path.stat().st_size:
                raise BracketError(f"{path}: truncated TIFF (image data ends at byte {end}, file has "
                                   f"{path.stat().st_size})")
            photometric = int(page.photometric)
            if photometric not in (tifffile.PHOTOMETRIC.MINISBLACK, tifffile.PHOTOMETRIC.RGB):
                name = getattr(tifffile.PHOTOMETRIC(photometric), "name", photometric)
                raise BracketError(f"{path}: unsupported TIFF colour model {name} (use RGB or greyscale)")
            pixels = page.asarray()
            code = page.tags.get(274).value if 274 in page.tags else 1
    except BracketError:
        raise
    except Exception as exc:  # tifffile raises TiffFileError, ValueError, struct.error... on bad files
        raise BracketError(f"{path}: cannot read TIFF: {exc}") from None
    if pixels.ndim == 3 and pixels.shape[0] in (3, 4) and pixels.shape[2] not in (3, 4):
        pixels = np.moveaxis(pixels, 0, 2)  # planar (separate) configuration
    image, bits = _to_rgb_float(path, pixels, bgr=False)
    image = exifmod.apply_orientation(image, int(code))
    parsed = exifmod.parse(path.read_bytes())
    return _Loaded(image, bits, exifmod.for_output(parsed), exifmod.exposure(parsed))


def _read_raw(path: Path, max_pixels: int) -> _Loaded:
    """Camera RAW through rawpy/LibRaw: 16-bit sRGB, camera white balance, no auto-brightening."""
    import rawpy

    try:
        with rawpy.imread(str(path)) as raw:
            _check_pixels(path, raw.sizes.width, raw.sizes.height, max_pixels)
            # No auto-bright, and no lowering of the white level to the brightest value found
            # (adjust_maximum_thr=0), keep the exposures comparable; gamma (2.4, 12.92) is the sRGB curve.
            rgb = raw.postprocess(output_bps=16, use_camera_wb=True, no_auto_bright=True, adjust_maximum_thr=0.0,
                                  output_color=rawpy.ColorSpace.sRGB, gamma=(2.4, 12.92))
            other = raw.other
    except BracketError:
        raise
    except (rawpy.LibRawError, OSError, ValueError, RuntimeError) as exc:
        reason = str(exc).strip() or type(exc).__name__
        raise BracketError(f"{path}: cannot read camera RAW ({reason})") from None
    image, bits = _to_rgb_float(path, rgb, bgr=False)  # LibRaw has already applied the orientation
    data = path.read_bytes()
    parsed = exifmod.parse(data) if data[:2] in (b"II", b"MM") else None  # TIFF-based RAWs (DNG, NEF, CR2...)
    t, n, iso = exifmod.exposure(parsed)
    settings = (t or (other.shutter_speed or None), n or (other.aperture or None), iso or (other.iso_speed or None))
    return _Loaded(image, bits, exifmod.for_output(parsed), settings)


def _load(path: str | Path, max_pixels: int) -> _Loaded:
    """Dispatch on the file extension; every failure becomes a BracketError naming the file."""
    path = Path(path)
    if not path.exists():
        raise BracketError(f"{path}: file not found")
    if path.is_dir():
        raise BracketError(f"{path}: is a folder, not an image file")
    suffix = path.suffix.lower()
    try:
        if suffix in CV_SUFFIXES:
            return _read_cv(path, CV_SUFFIXES[suffix], max_pixels)
        if suffix in TIFF_SUFFIXES:
            return _read_tiff(path, max_pixels)
        if suffix in RAW_SUFFIXES:
            return _read_raw(path, max_pixels)
    except PermissionError:
        raise BracketError(f"{path}: permission denied") from None
    except MemoryError:
        raise BracketError(f"{path}: not enough memory to decode this image") from None
    raise BracketError(f"{path}: unsupported format '{path.suffix or '(no extension)'}' "
                       f"(use JPEG, PNG, TIFF or camera RAW)")


def load_image(path: str | Path, *, max_pixels: int = 200_000_000) -> tuple[np.ndarray, int, bytes | None]:
    """One file -> (H×W×3 float32 RGB in [0,1], EXIF orientation applied; bit depth 8/16; EXIF block or None)."""
    loaded = _load(path, max_pixels)
    return loaded.image, loaded.bit_depth, loaded.exif


# ---------------------------------------------------------------------------------------------- exposure

def _exif_evs(settings: list[tuple[float | None, float | None, float | None]]) -> list[float] | None:
    """EV = log2(t·ISO/100/N²) per frame, or None unless every frame has comparable EXIF settings."""
    if any(t is None for t, _, _ in settings):
        return None
    evs = []
    for index in (1, 2):  # f-number and ISO may be absent, but then absent on all frames (taken as constant)
        present = [s[index] is not None for s in settings]
        if any(present) and not all(present):
            return None
    for t, n, iso in settings:
        evs.append(math.log2(t * (iso or 100.0) / 100.0 / (n or 1.0) ** 2))
    return evs


def _linear_luma(image: np.ndarray) -> np.ndarray:
    """H×W×3 [0,1] frame -> at most 512-px-wide grey image, gamma-decoded (relative linear light)."""
    scale = min(1.0, 512.0 / max(image.shape[:2]))
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image
    return (small @ np.array([0.2126, 0.7152, 0.0722], np.float32)).clip(0, 1)


def brightness_evs(images: Sequence[np.ndarray]) -> list[float]:
    """Relative EV per frame (H×W×3 in [0,1]) from its brightness; 0 for the darkest, larger = brighter."""
    lumas = [_linear_luma(im) for im in images]
    means = [float((luma ** _GAMMA).mean()) for luma in lumas]
    order = sorted(range(len(images)), key=lambda i: means[i])
    evs = [0.0] * len(images)
    for a, b in zip(order, order[1:]):
        # The exposure ratio of two frames is best seen where neither is crushed nor clipped.
        valid = (lumas[a] > 0.02) & (lumas[a] < 0.95) & (lumas[b] > 0.02) & (lumas[b] < 0.95)
        if valid.mean() > 0.01:
            dark, bright = float((lumas[a][valid] ** _GAMMA).sum()), float((lumas[b][valid] ** _GAMMA).sum())
        else:
            dark, bright = means[a], means[b]
        step = math.log2(bright / dark) if dark > 0 and bright > 0 else 0.0
        evs[b] = evs[a] + max(step, 0.0)  # keep EV consistent with the brightness order
    return evs


# ---------------------------------------------------------------------------------------------- alignment

def _max_bits(height: int, width: int) -> int:
    """Pyramid depth for AlignMTB so that its coarsest level keeps at least ~16 px (max shift 2**bits - 1)."""
    return int(max(1, min(6, math.floor(math.log2(max(min(height, width), 32) / 16)))))


def mtb_shifts(images: Sequence[np.ndarray]) -> list[tuple[int, int]]:
    """(dx, dy) integer shift registering each H×W×3 [0,1] frame to the middle one (index N//2), by AlignMTB."""
    height, width = images[0].shape[:2]
    mtb = cv2.createAlignMTB(_max_bits(height, width), 4, True)
    greys = [cv2.cvtColor(np.clip(im * 255 + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY) for im in images]
    ref = len(images) // 2
    shifts = []
    for i, grey in enumerate(greys):
        dx, dy = (0, 0) if i == ref else mtb.calculateShift(greys[ref], grey)
        shifts.append((int(dx), int(dy)))
    return shifts


def shift_image(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Move H×W×C pixels by (dx, dy) whole pixels; the uncovered edge strip repeats the nearest row/column."""
    if dx == 0 and dy == 0:
        return image
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    # Integer shift with nearest sampling moves values exactly (16-bit precision kept); edge
    # replication (instead of AlignMTB's black fill) keeps dark bands out of the fused result.
    return cv2.warpAffine(image, matrix, (image.shape[1], image.shape[0]), flags=cv2.INTER_NEAREST,
                          borderMode=cv2.BORDER_REPLICATE)


def align_images(images: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Register N H×W×3 float [0,1] frames to the middle one (AlignMTB on 8-bit copies); edges are replicated."""
    return [shift_image(im, dx, dy) for im, (dx, dy) in zip(images, mtb_shifts(images))]


# ---------------------------------------------------------------------------------------------- bracket

def _expand(inputs: Sequence[str | Path]) -> list[Path]:
    """The frame files: the given files, or the image files of one folder (sorted by name, hidden ones skipped)."""
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    paths = [Path(p) for p in inputs]
    if len(paths) == 1 and paths[0].is_dir():
        folder = paths[0]
        files = sorted((p for p in folder.iterdir()
                        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES),
                       key=lambda p: p.name)
        if not files:
            raise BracketError(f"{folder}: no image files in this folder (JPEG, PNG, TIFF or camera RAW)")
        return files
    for p in paths:
        if p.is_dir():
            raise BracketError(f"{p}: is a folder; give either one folder or 2-{MAX_FRAMES} image files")
    return paths


def _permute(stack: np.ndarray, order: list[int]) -> None:
    """Reorder N×... `stack` in place so that new stack[k] = old stack[order[k]], with one frame of scratch memory."""
    done = [False] * len(order)
    for start in range(len(order)):
        if done[start] or order[start] == start:
            continue
        saved, k = stack[start].copy(), start
        while True:  # walk one cycle of the permutation
            done[k] = True
            source = order[k]
            if source == start:
                stack[k] = saved
                break
            stack[k] = stack[source]
            k = source


def load_bracket(inputs: Sequence[str | Path], *, align: bool = True,
                 max_pixels: int = 200_000_000) -> Bracket:
    """2-9 files (or one folder of them) -> Bracket ordered darkest first, each frame H×W×3 float32 in [0,1]."""
    paths = _expand(inputs)
    if not paths:
        raise BracketError("no frames given: a bracket needs 2-9 images")
    if len(paths) < MIN_FRAMES:
        raise BracketError(f"{paths[0]}: a bracket needs at least {MIN_FRAMES} frames, got 1")
    if len(paths) > MAX_FRAMES:
        raise BracketError(f"{paths[0].parent}: a bracket has at most {MAX_FRAMES} frames, got {len(paths)}")
    # Frames go straight into one preallocated stack, which is then permuted and aligned in place:
    # peak memory is N+1 frames rather than 2-3 N (9 frames of 45 MP are ~5 GB as float32).
    stack: np.ndarray | None = None
    loaded: list[_Loaded] = []
    for i, path in enumerate(paths):
        item = _load(path, max_pixels)
        if stack is None:
            stack = np.empty((len(paths), *item.image.shape), np.float32)
        elif item.image.shape != stack.shape[1:]:
            (h0, w0), (h, w) = stack.shape[1:3], item.image.shape[:2]
            raise BracketError(f"{path}: size {w}×{h} differs from {paths[0]}: {w0}×{h0}; "
                               "all frames of a bracket must have the same size")
        stack[i] = item.image
        item.image = stack[i]
        loaded.append(item)
    assert stack is not None

    evs = _exif_evs([item.settings for item in loaded])
    source = "exif"
    if evs is None:
        evs, source = brightness_evs(list(stack)), "brightness"
    order = sorted(range(len(loaded)), key=lambda i: evs[i])  # stable: equal EVs keep the given order
    _permute(stack, order)
    if align:
        for k, (dx, dy) in enumerate(mtb_shifts(stack)):
            if dx or dy:
                stack[k] = shift_image(stack[k], dx, dy)
    frames = [Frame(path=paths[i], image=stack[k], bit_depth=loaded[i].bit_depth, ev=float(evs[i]),
                    ev_source=source, exif=loaded[i].exif) for k, i in enumerate(order)]
    return Bracket(frames=frames, aligned=align, _stack=stack)
