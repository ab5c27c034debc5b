"""Safe image writing: PNG/JPEG/TIFF at 8 or 16 bits, EXIF kept, temp file + rename, never clobbering inputs."""

from __future__ import annotations

import io
import os
import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np

from lutfuse.core import exif as exifmod
from lutfuse.core.errors import OutputError

FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}


def _same_file(a: Path, b: Path) -> bool:
    """True when two paths name the same file (after resolving links, or by inode for hard links)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_target(path: Path, *, overwrite: bool, inputs: Sequence[str | Path] = ()) -> str:
    """Format name ("PNG"/"JPEG"/"TIFF") of a writable output path, else OutputError naming it and the reason."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise OutputError(f"{path}: unsupported output type '{path.suffix or '(no extension)'}' "
                          f"(use {', '.join(sorted(FORMATS))})")
    check_writable(path, overwrite=overwrite, inputs=inputs)
    return kind


def check_writable(path: Path, *, overwrite: bool, inputs: Sequence[str | Path] = (),
                   replace_hint: str = "pass overwrite to replace it") -> None:
    """OutputError naming `path` and the reason unless any file (image, .cube...) may be written there."""
    if any(_same_file(path, Path(p)) for p in inputs):
        raise OutputError(f"{path}: refusing to overwrite an input file")
    if not path.parent.is_dir():
        raise OutputError(f"{path}: folder {path.parent} does not exist")
    if path.is_dir():
        raise OutputError(f"{path}: is a folder")
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: already exists ({replace_hint})")


def _quantise(image: np.ndarray, bit_depth: int) -> np.ndarray:
    """H×W×3 (or H×W) float in [0,1] -> uint8/uint16 of the same shape, rounded to nearest; outside values clipped."""
    image = np.asarray(image)
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3)):
        raise ValueError(f"expected an H×W×3 image, got shape {image.shape}")
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        raise ValueError("image contains NaN or infinite values")
    top = 255 if bit_depth == 8 else 65535
    scaled = np.clip(image.astype(np.float64) * top + 0.5, 0, top) if image.dtype.kind == "f" else image
    return scaled.astype(np.uint8 if bit_depth == 8 else np.uint16)


def _encode(kind: str, pixels: np.ndarray, exif: bytes | None, quality: int) -> bytes:
    """Encoded file bytes of uint8/uint16 RGB pixels; the EXIF block goes into JPEG (and PNG where OpenCV can)."""
    height, width = pixels.shape[:2]
    block = exifmod.for_output(exif, width, height) if exif else None
    if kind == "TIFF":
        import tifffile

        out = io.BytesIO()
        tifffile.imwrite(out, pixels, photometric="rgb" if pixels.ndim == 3 and pixels.shape[2] == 3 else
                         "minisblack", compression="zlib", metadata=None)
        return out.getvalue()
    bgr = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR) if pixels.ndim == 3 and pixels.shape[2] == 3 else pixels
    if kind == "JPEG":
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if not ok:
            raise RuntimeError("OpenCV could not encode the JPEG")
        data = buf.tobytes()
        if block:
            import piexif

            out = io.BytesIO()
            piexif.insert(block, data, out)
            data = out.getvalue()
        return data
    if block and hasattr(cv2, "imencodeWithMetadata"):  # OpenCV >= 5 writes a PNG eXIf chunk
        ok, buf = cv2.imencodeWithMetadata(".png", bgr, [cv2.IMAGE_METADATA_EXIF],
                                           [np.frombuffer(block[6:], np.uint8)])
    else:
        ok, buf = cv2.imencode(".png", bgr)
    if not ok:
        raise RuntimeError("OpenCV could not encode the PNG")
    return buf.tobytes()


def commit(path: Path, payload: bytes | Iterable[bytes], overwrite: bool) -> None:
    """Write bytes (or byte chunks) to a temp file beside `path`, then move it into place; the temp file never survives.

    Chunks let a large text file (a 256³ .cube is ~450 MB) be written without holding it whole in memory.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as handle:
            for chunk in (payload,) if isinstance(payload, bytes | bytearray) else payload:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(tmp, path)
            return
        try:
            # A hard link fails if the name appeared since the check: no file is ever replaced silently.
            os.link(tmp, path)
        except FileExistsError:
            raise OutputError(f"{path}: already exists (appeared while writing; nothing was replaced)") from None
        except OSError:
            if path.exists():  # filesystems without hard links: check again, then rename
                raise OutputError(f"{path}: already exists (appeared while writing; nothing was replaced)") from None
            os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None
    finally:
        tmp.unlink(missing_ok=True)


def write_image(path: str | Path, image: np.ndarray, *, bit_depth: int = 8, exif: bytes | None = None,
                quality: int = 95, overwrite: bool = False, inputs: Sequence[str | Path] = ()) -> Path:
    """Write H×W×3 float RGB in [0,1] as PNG (8/16), JPEG (8, EXIF kept, orientation 1) or TIFF (8/16) -> path."""
    path = Path(path)
    kind = check_target(path, overwrite=overwrite, inputs=inputs)
    if bit_depth not in (8, 16):
        raise OutputError(f"{path}: bit depth must be 8 or 16, got {bit_depth}")
    if kind == "JPEG" and bit_depth == 16:
        raise OutputError(f"{path}: JPEG holds only 8 bits per channel; write a .tif or .png for 16-bit")
    if not 1 <= quality <= 100:
        raise OutputError(f"{path}: JPEG quality must be 1-100, got {quality}")
    payload = _encode(kind, _quantise(image, bit_depth), exif, quality)
    commit(path, payload, overwrite)
    return path
