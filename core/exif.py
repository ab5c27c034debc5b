"""EXIF helpers: parse a block, read exposure settings, apply orientation to pixels, rebuild a block for the writer.

An EXIF block here is what `piexif.dump` makes: b"Exif\\0\\0" followed by a TIFF structure.
"""

from __future__ import annotations

import math

import numpy as np
import piexif

_ORIENTATION = piexif.ImageIFD.Orientation
# Descriptive 0th-IFD tags worth carrying into an output; layout tags (strips, tiles, CFA, DNG
# calibration) of a TIFF or RAW source describe *its* pixels and would be wrong in ours.
_KEEP_0TH = {
    piexif.ImageIFD.Make, piexif.ImageIFD.Model, piexif.ImageIFD.Software, piexif.ImageIFD.DateTime,
    piexif.ImageIFD.Artist, piexif.ImageIFD.Copyright, piexif.ImageIFD.XResolution,
    piexif.ImageIFD.YResolution, piexif.ImageIFD.ResolutionUnit, _ORIENTATION,
}


def parse(block: bytes | None) -> dict | None:
    """piexif dict of an EXIF block (b"Exif\\0\\0"-prefixed or bare TIFF, or a JPEG/TIFF file's bytes); None if unusable."""
    if not block:
        return None
    if block[:4] in (b"II*\x00", b"MM\x00*"):
        block = b"Exif\x00\x00" + block
    try:
        data = piexif.load(block)
    except Exception:  # piexif raises bare ValueError/struct.error/KeyError on malformed blocks
        return None
    if not any(data.get(ifd) for ifd in ("0th", "Exif", "GPS")):
        return None
    return data


def orientation(data: dict | None) -> int:
    """EXIF orientation code 1..8 of a parsed block (1 when absent or invalid)."""
    value = (data or {}).get("0th", {}).get(_ORIENTATION, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def apply_orientation(image: np.ndarray, code: int) -> np.ndarray:
    """Rotate/flip H×W×C pixels so that an EXIF orientation `code` (1..8) displays upright; values unchanged."""
    ops = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],                # mirrored horizontally
        3: lambda a: a[::-1, ::-1],             # rotated 180
        4: lambda a: a[::-1],                   # mirrored vertically
        5: lambda a: a.swapaxes(0, 1),          # transposed
        6: lambda a: np.rot90(a, -1),           # stored rotated 90 CCW: turn clockwise
        7: lambda a: np.rot90(a, -1)[::-1],     # transverse (mirrored about the anti-diagonal)
        8: lambda a: np.rot90(a, 1),            # stored rotated 90 CW: turn counter-clockwise
    }
    return np.ascontiguousarray(ops.get(code, ops[1])(image))


def _rational(value: object) -> float | None:
    """A piexif RATIONAL (num, den) as a positive float, else None."""
    if isinstance(value, tuple) and len(value) == 2 and value[1]:
        result = value[0] / value[1]
        return result if result > 0 and math.isfinite(result) else None
    return None


def exposure(data: dict | None) -> tuple[float | None, float | None, float | None]:
    """(exposure time s, f-number, ISO) from a parsed block, each None when missing or invalid."""
    if not data:
        return None, None, None
    exif = data.get("Exif", {})
    iso = exif.get(piexif.ExifIFD.ISOSpeedRatings)
    if isinstance(iso, tuple):  # ISOSpeedRatings may hold several values; the first is the one in use
        iso = iso[0] if iso else None
    iso = float(iso) if isinstance(iso, int) and iso > 0 else None
    return _rational(exif.get(piexif.ExifIFD.ExposureTime)), _rational(exif.get(piexif.ExifIFD.FNumber)), iso


def _dump_robust(data: dict) -> bytes | None:
    """piexif.dump, dropping the single tags piexif cannot serialise (a known piexif weakness) instead of failing."""
    try:
        return piexif.dump(data)
    except Exception:
        pass
    clean: dict = {}
    for ifd in ("0th", "Exif", "GPS"):
        clean[ifd] = {}
        for tag, value in data.get(ifd, {}).items():
            try:
                piexif.dump({ifd: {tag: value}})
            except Exception:
                continue
            clean[ifd][tag] = value
    try:
        return piexif.dump(clean)
    except Exception:
        return None


def for_output(block: bytes | dict | None, width: int | None = None, height: int | None = None) -> bytes | None:
    """EXIF block for pixels that are already upright: Orientation=1, no thumbnail, size tags = width×height."""
    data = parse(block) if not isinstance(block, dict) else block
    if not data:
        return None
    zeroth = {k: v for k, v in data.get("0th", {}).items() if k in _KEEP_0TH}
    zeroth[_ORIENTATION] = 1
    exif = {k: v for k, v in data.get("Exif", {}).items()
            # MakerNote offsets point into the source file's layout; the Interop pointer is rebuilt by piexif.
            if k not in (piexif.ExifIFD.MakerNote, piexif.ExifIFD.InteroperabilityTag)}
    if width is not None and height is not None:
        exif[piexif.ExifIFD.PixelXDimension] = int(width)
        exif[piexif.ExifIFD.PixelYDimension] = int(height)
    # The thumbnail ("1st"/"thumbnail") is dropped: it shows the source's pixels in the source's orientation.
    return _dump_robust({"0th": zeroth, "Exif": exif, "GPS": dict(data.get("GPS", {}))})
