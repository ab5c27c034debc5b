"""Safe image writing: PNG/JPEG/TIFF at 8 or 16 bits with metadata (core.metadata), temp file + rename, never
clobbering inputs, output folders checked before the work."""

from __future__ import annotations

import errno
import io
import os
import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np

from lutfuse.core.errors import OutputError, file_kind, shown_path
from lutfuse.core.metadata import OutputMetadata, embed

FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}
TIFF_COMPRESSIONS = ("deflate", "lzw", "none")
JPEG_SUBSAMPLINGS = ("444", "422", "420")
_CV_SUBSAMPLING = {"444": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444, "422": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422,
                   "420": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420}


def _same_file(a: Path, b: Path) -> bool:
    """True when two paths name the same file (after resolving links, or by inode for hard links)."""
    try:
        if a.resolve() == b.resolve():
            return True
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except (OSError, RuntimeError):  # a link loop (RuntimeError before Python 3.13) names no file
        return False


def check_target(path: Path, *, overwrite: bool, inputs: Sequence[str | Path] = ()) -> str:
    """Format name ("PNG"/"JPEG"/"TIFF") of a writable output path, else OutputError naming it and the reason."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise OutputError(f"{shown_path(path)}: unsupported output type '{path.suffix or '(no extension)'}' "
                          f"(use {', '.join(sorted(FORMATS))})")
    check_writable(path, overwrite=overwrite, inputs=inputs)
    return kind


NAME_MAX = 255  # bytes in one file name on Linux, macOS and Windows filesystems (ext4, APFS, NTFS: 255 units)


def scratch_name(path: Path, tag: str) -> Path:
    """A hidden, unique name beside `path` for a temp or probe file: ".<name>.<random>.<tag>", with <name> cut so
    that the whole name stays within NAME_MAX bytes (a valid 250-byte output name would otherwise get a temp
    name too long to create, and the write would fail or the folder be called "not writable")."""
    ending = f".{secrets.token_hex(4)}.{tag}".encode()
    base = os.fsencode(path.name)[:NAME_MAX - 1 - len(ending)]
    return path.with_name(os.fsdecode(b"." + base + ending))


def _probe(probe: Path) -> str | None:
    """Create and remove the file `probe`; None when that worked, else why not (the OS's words)."""
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        return str(exc.strerror or exc)
    try:
        os.close(fd)
    finally:
        probe.unlink(missing_ok=True)
    return None


def probe_folder(path: Path) -> None:
    """OutputError naming `path` unless a file can be created (and removed) in its folder: a read-only
    filesystem, missing permission or a full inode table shows up here, before any long work."""
    why = _probe(scratch_name(path, "probe.tmp"))
    if why is not None:
        raise OutputError(f"{shown_path(path)}: folder {shown_path(path.parent)} is not writable ({why})")


def check_output_folder(folder: Path) -> None:
    """OutputError naming `folder` unless files can be created in it (for commands that write many files)."""
    why = _probe(Path(folder) / f".lutfuse.{secrets.token_hex(4)}.probe.tmp")
    if why is not None:
        raise OutputError(f"{shown_path(folder)}: the output folder is not writable ({why})")


def check_writable(path: Path, *, overwrite: bool, inputs: Sequence[str | Path] = (),
                   replace_hint: str = "pass overwrite to replace it") -> None:
    """OutputError naming `path` and the reason unless any file (image, .cube...) may be written there.

    Refused: an input file, a link loop or dangling link, a missing folder or one that is not a folder, a folder
    that cannot take a new file (checked by creating and removing a probe file), an existing file unless
    `overwrite`, and even then a symbolic link (replacing it would turn the link into a file) or anything but a
    regular file (a FIFO, a device such as /dev/null or a socket).
    """
    path = Path(path)
    if any(_same_file(path, Path(p)) for p in inputs):
        raise OutputError(f"{shown_path(path)}: refusing to overwrite an input file")
    try:
        path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise OutputError(f"{shown_path(path)}: is a symbolic link to a missing file (refusing to write "
                              "through it)") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OutputError(f"{shown_path(path)}: symbolic link loop") from None
        if exc.errno != errno.ENOTDIR:
            raise OutputError(f"{shown_path(path)}: cannot be used as output ({exc.strerror or exc})") from None
    parent = path.parent
    if not parent.exists():
        raise OutputError(f"{shown_path(path)}: folder {shown_path(parent)} does not exist")
    if not parent.is_dir():
        raise OutputError(f"{shown_path(path)}: {shown_path(parent)} is not a folder")
    if path.is_dir():
        raise OutputError(f"{shown_path(path)}: is a folder")
    # before "already exists": --force would not help
    if path.is_symlink():
        # the rename that replaces an output would replace the link itself with a regular file
        raise OutputError(f"{shown_path(path)}: is a symbolic link (to {shown_path(Path(os.readlink(path)))}); "
                          "name the file itself to replace it")
    if path.exists() and not path.is_file():
        raise OutputError(f"{shown_path(path)}: is {file_kind(path.stat().st_mode)}; only regular files are "
                          "replaced")
    if path.exists() and not overwrite:
        raise OutputError(f"{shown_path(path)}: already exists ({replace_hint})")
    probe_folder(path)


def check_distinct_outputs(outputs: Sequence[tuple[str, Path | None]]) -> None:
    """OutputError when two of one command's outputs (role, path; None = not asked for) name the same file.

    Each output is written on its own through `commit`, so two roles on one path would have the later one replace
    the earlier (or, without --force, refuse after the first was written and leave it behind)."""
    given = [(role, Path(path)) for role, path in outputs if path is not None]
    for i, (role, path) in enumerate(given):
        for other, earlier in given[:i]:
            if _same_file(path, earlier):
                raise OutputError(f"{shown_path(path)}: given as both {other} and {role}; "
                                  "each output needs a file of its own")


def check_finite(path: Path, values: np.ndarray, what: str, origin: str | None = None) -> None:
    """OutputError naming `path` (and `origin`, what produced the values) when `values` hold NaN or infinity."""
    values = np.asarray(values)
    if values.dtype.kind in "fc" and not np.isfinite(values).all():
        bad = int(values.size - np.count_nonzero(np.isfinite(values)))
        by = f" (made from {origin})" if origin else ""
        plural = "s" if bad > 1 else ""
        raise OutputError(f"{shown_path(path)}: not written: the {what} has {bad} NaN or infinite value{plural}{by}")


def _quantise(image: np.ndarray, bit_depth: int) -> np.ndarray:
    """H×W×3 (or H×W) float in [0,1] -> uint8/uint16 of the same shape, rounded to nearest; outside values clipped."""
    image = np.asarray(image)
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3)):
        raise ValueError(f"expected an H×W×3 image, got shape {image.shape}")
    top = 255 if bit_depth == 8 else 65535
    scaled = np.clip(image.astype(np.float64) * top + 0.5, 0, top) if image.dtype.kind == "f" else image
    return scaled.astype(np.uint8 if bit_depth == 8 else np.uint16)


def _encode(kind: str, pixels: np.ndarray, quality: int, subsampling: str, compression: str) -> bytes:
    """Encoded file bytes of uint8/uint16 RGB pixels, without metadata (core.metadata.embed adds it)."""
    if kind == "TIFF":
        import tifffile

        # Horizontal differencing (predictor 2) makes Deflate/LZW 16-bit photos markedly smaller (TIFF 6.0 §14).
        codec = {"deflate": "zlib", "lzw": "lzw", "none": None}[compression]
        out = io.BytesIO()
        tifffile.imwrite(out, pixels, photometric="rgb" if pixels.ndim == 3 and pixels.shape[2] == 3 else
                         "minisblack", compression=codec, predictor=2 if codec else None, metadata=None,
                         software=False)
        return out.getvalue()
    bgr = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR) if pixels.ndim == 3 and pixels.shape[2] == 3 else pixels
    if kind == "JPEG":
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality),
                                             cv2.IMWRITE_JPEG_SAMPLING_FACTOR, _CV_SUBSAMPLING[subsampling]])
    else:
        ok, buf = cv2.imencode(".png", bgr)
    if not ok:
        raise RuntimeError(f"OpenCV could not encode the {kind}")
    return buf.tobytes()


def commit(path: Path, payload: bytes | Iterable[bytes], overwrite: bool) -> None:
    """Write bytes (or byte chunks) to a temp file beside `path`, then move it into place; the temp file never survives.

    Chunks let a large text file (a 256³ .cube is ~450 MB) be written without holding it whole in memory.
    """
    tmp = scratch_name(path, "tmp")
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
            raise OutputError(f"{shown_path(path)}: already exists (appeared while writing; nothing was "
                              "replaced)") from None
        except OSError:
            if path.exists():  # filesystems without hard links: check again, then rename
                raise OutputError(f"{shown_path(path)}: already exists (appeared while writing; nothing was "
                                  "replaced)") from None
            os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"{shown_path(path)}: cannot write ({exc.strerror or exc})") from None
    finally:
        tmp.unlink(missing_ok=True)


def write_image(path: str | Path, image: np.ndarray, *, bit_depth: int = 8,
                metadata: OutputMetadata | None = None, exif: bytes | None = None, quality: int = 95,
                subsampling: str = "444", compression: str = "deflate", overwrite: bool = False,
                inputs: Sequence[str | Path] = (), origin: str | None = None) -> Path:
    """Write H×W×3 float RGB in [0,1] -> path; the format follows the extension.

    PNG 8/16-bit; JPEG 8-bit with `quality` 1-100 and chroma `subsampling` "444"/"422"/"420"; TIFF 8/16-bit with
    `compression` "deflate" (zlib, predictor 2; the default), "lzw" or "none". `metadata` (core.metadata.
    OutputMetadata; `exif` alone is shorthand for OutputMetadata(exif=exif)) goes into every format: EXIF with
    Orientation 1 and the Software tag, XMP, and the ICC profile (sRGB when none is given); EXIF too large for a
    JPEG segment is trimmed with a core.metadata.MetadataWarning. `origin` names what made the pixels, for the
    message when they hold NaN/infinity. Raises OutputError (naming `path`) for anything that cannot be written;
    nothing is left behind then.
    """
    path = Path(path)
    kind = check_target(path, overwrite=overwrite, inputs=inputs)
    if bit_depth not in (8, 16):
        raise OutputError(f"{shown_path(path)}: bit depth must be 8 or 16, got {bit_depth}")
    if kind == "JPEG" and bit_depth == 16:
        raise OutputError(f"{shown_path(path)}: JPEG holds only 8 bits per channel; write a .tif or .png for 16-bit")
    if not 1 <= quality <= 100:
        raise OutputError(f"{shown_path(path)}: JPEG quality must be 1-100, got {quality}")
    if subsampling not in JPEG_SUBSAMPLINGS:
        raise OutputError(f"{shown_path(path)}: JPEG subsampling must be one of {', '.join(JPEG_SUBSAMPLINGS)}, "
                          f"got {subsampling}")
    if compression not in TIFF_COMPRESSIONS:
        raise OutputError(f"{shown_path(path)}: TIFF compression must be one of {', '.join(TIFF_COMPRESSIONS)}, "
                          f"got {compression}")
    check_finite(path, image, "image", origin)
    if metadata is None:
        metadata = OutputMetadata(exif=exif)
    pixels = _quantise(image, bit_depth)
    payload = embed(kind, _encode(kind, pixels, quality, subsampling, compression), metadata,
                    pixels.shape[1], pixels.shape[0], source=shown_path(path))
    commit(path, payload, overwrite)
    return path
