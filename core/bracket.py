"""Bracket loading: read 2-9 exposures (JPEG, PNG, TIFF, camera RAW), order them by exposure, validate, register
(`core.registration`) and deghost (`core.deghost`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
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
    """Frames of one scene, darkest first; `aligned` tells whether registration to the middle one was asked for.

    Where a frame's `valid` is False (outside its registered area, or moved content found by deghosting), its image
    holds a prediction: the reference frame's content re-rendered at that frame's exposure (`fill_invalid`), so
    every frame is a plausible image everywhere and fusion weights can still exclude those pixels."""

    frames: list[Frame]
    aligned: bool
    # per frame what registration decided (core.registration.FrameRegistration), None when not registered
    registration: list | None = None
    # H×W float32 in [0,1]: where deghosting found moved content (union over frames), None when it did not run
    ghost: np.ndarray | None = None
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

    @property
    def valid(self) -> np.ndarray | None:
        """N×H×W bool: where each frame has its own data (see Frame.valid); None when every frame is valid everywhere."""
        if all(f.valid is None for f in self.frames):
            return None
        shape = self.frames[0].image.shape[:2]
        return np.stack([np.ones(shape, bool) if f.valid is None else f.valid for f in self.frames])

    def mean(self) -> np.ndarray:
        """H×W×3 float32 per-pixel mean of the frames in [0,1]: the base image the LUT applies to.

        Where a frame is invalid its image holds the reference re-rendered at its exposure (see the class
        docstring), so this is the mean over the valid frames with each missing frame predicted from the others;
        a plain mean over the valid frames only would change the base's exposure where coverage changes and the
        global LUT would show that as a seam along the registered border."""
        return self.images.mean(axis=0, dtype=np.float32)

    def cropped(self, x0: int, y0: int, x1: int, y1: int) -> Bracket:
        """A bracket of the frames' [y0:y1, x0:x1] window (end-exclusive), valid masks and ghost mask cut alike."""
        h, w = self.frames[0].image.shape[:2]
        if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
            raise BracketError(f"crop ({x0}, {y0})-({x1}, {y1}) lies outside the {w}×{h} frames")
        stack = np.ascontiguousarray(self.images[:, y0:y1, x0:x1])
        frames = [replace(f, image=stack[i], valid=None if f.valid is None or f.valid[y0:y1, x0:x1].all()
                          else f.valid[y0:y1, x0:x1].copy()) for i, f in enumerate(self.frames)]
        ghost = None if self.ghost is None else self.ghost[y0:y1, x0:x1].copy()
        return Bracket(frames=frames, aligned=self.aligned, registration=self.registration, ghost=ghost,
                       _stack=stack)

    @classmethod
    def from_images(cls, images: Sequence[np.ndarray] | np.ndarray, *, evs: Sequence[float] | None = None,
                    bit_depth: int = 8, aligned: bool = False, valid: np.ndarray | None = None) -> Bracket:
        """A bracket of in-memory frames (each H×W×3 float in [0,1], already darkest first), e.g. a validation
        stack, for `Engine.set_bracket`: no files behind it (paths are placeholders `frame0`, `frame1`, ...),
        no EXIF, EVs 0, 1, 2, ... unless given (source "brightness"), not reordered, not aligned.
        valid: optional N×H×W bool; the invalid pixels' content is replaced by a prediction from the valid frames
        (`core.registration.fill_invalid`) in the bracket's own copy."""
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
        masks: list[np.ndarray | None] = [None] * len(stack)
        if valid is not None:
            valid = np.asarray(valid, bool)
            if valid.shape != stack.shape[:3]:
                raise BracketError(f"valid masks of shape {valid.shape} do not fit frames of shape {stack.shape}")
            if stack is images:
                stack = stack.copy()
            from lutfuse.core.registration import fill_invalid

            fill_invalid(stack, valid, len(stack) // 2)
            masks = [None if v.all() else v.copy() for v in valid]
        frames = [Frame(path=Path(f"frame{i}"), image=stack[i], bit_depth=bit_depth, ev=evs[i],
                        ev_source="brightness", exif=None, valid=masks[i]) for i in range(len(stack))]
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


# ---------------------------------------------------------------------------------------------- registration

def register_stack(stack: np.ndarray, valid: np.ndarray | None, align: str | bool = "auto",
                   deghost: str = "off") -> tuple[list, np.ndarray | None, np.ndarray | None]:
    """In place: register N×H×W×3 float32 frames to the middle one, fill what they do not cover, deghost.

    valid: N×H×W bool of the frames' own valid pixels (None = all). Returns (registration records, N×H×W bool valid
    masks or None when every pixel of every frame is valid, H×W ghost mask or None). A frame whose estimate fails
    the check is not touched at all, so a tripod bracket with deghost off comes out bit-identical to align="off"."""
    from lutfuse.core import deghost as deghostmod
    from lutfuse.core import registration

    records = registration.register(stack, align)
    for rec in records:
        if rec.applied:
            stack[rec.index], covered = registration.warp_frame(stack[rec.index], rec.matrix)
            if valid is None:
                valid = np.ones(stack.shape[:3], bool)
            valid[rec.index] &= covered
    if valid is not None:
        registration.fill_invalid(stack, valid, len(stack) // 2)
    ghost = None
    if deghostmod.check_strength(deghost) != "off":
        if valid is None:
            valid = np.ones(stack.shape[:3], bool)
        ghost = deghostmod.deghost(stack, valid, deghost)
    if valid is not None and valid.all():
        valid = None
    return records, valid, ghost


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


def load_bracket(inputs: Sequence[str | Path], *, align: bool | str = True, deghost: str = "off",
                 max_pixels: int = 200_000_000) -> Bracket:
    """2-9 files (or one folder of them) -> Bracket ordered darkest first, each frame H×W×3 float32 in [0,1].

    align: "auto" (= True), "off" (= False), "translation", "similarity" or "homography" (core.registration);
    deghost: "off", "low", "medium" or "high" (core.deghost). The records of what registration did are in
    `Bracket.registration`, the ghost mask in `Bracket.ghost`."""
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
    from lutfuse.core.registration import check_mode

    mode = check_mode(align)
    own = [getattr(loaded[i], "valid", None) for i in order]  # alpha / non-finite masks, where a reader gives them
    valid = None if all(v is None for v in own) else np.stack(
        [np.ones(stack.shape[1:3], bool) if v is None else v for v in own])
    records, valid, ghost = register_stack(stack, valid, mode, deghost)
    frames = [Frame(path=paths[i], image=stack[k], bit_depth=loaded[i].bit_depth, ev=float(evs[i]),
                    ev_source=source, exif=loaded[i].exif, valid=None if valid is None else valid[k])
              for k, i in enumerate(order)]
    return Bracket(frames=frames, aligned=mode != "off", registration=records, ghost=ghost, _stack=stack)
