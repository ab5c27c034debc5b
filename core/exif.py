"""EXIF through exiv2 (the `pyexiv2` bindings): parse a block or a file, read exposure settings and orientation,
apply orientation to pixels, and rebuild a block for the writer.

An EXIF block here is b"Exif\\0\\0" followed by a TIFF structure (what a JPEG APP1 segment or a PNG eXIf chunk
holds). Parsed EXIF is exiv2's view of it: a dict of exiv2 keys ("Exif.Photo.ExposureTime") to exiv2's text
values ("1/250"), which exiv2 writes back without loss (https://exiv2.org/tags.html lists the keys).
"""

from __future__ import annotations

import io
import math
from fractions import Fraction

import numpy as np
import pyexiv2

# exiv2 prints its own warnings ("Directory Photo has an unexpected next pointer") to stderr; a malformed block is
# handled here (dropped or trimmed), so its chatter would only break the one-line error rule.
pyexiv2.set_log_level(4)

ORIENTATION = "Exif.Image.Orientation"
# Descriptive IFD0 tags worth carrying into an output; layout tags (strips, tiles, CFA, DNG calibration) of a TIFF
# or RAW source describe *its* pixels and would be wrong in ours.
KEEP_IMAGE = {
    "Exif.Image.Make", "Exif.Image.Model", "Exif.Image.Software", "Exif.Image.DateTime", "Exif.Image.Artist",
    "Exif.Image.Copyright", "Exif.Image.ImageDescription", "Exif.Image.LensInfo", ORIENTATION,
}  # (no resolution tags: the carrier TIFF of `encode` has its own, and a fused photo has no print size)
# Groups copied whole: the Exif sub-IFD (exposure, lens, dates) and GPS. Maker notes (Exif.Canon.*, ...) are not:
# their offsets point into the source file's layout. Thumbnails (Exif.Thumbnail.*) show the source's pixels.
KEEP_GROUPS = ("Exif.Photo.", "Exif.GPSInfo.")
# Pointers and maker-note containers that exiv2 rebuilds or that must not be copied verbatim.
DROP = {"Exif.Photo.MakerNote", "Exif.Photo.InteroperabilityTag", "Exif.Image.ExifTag", "Exif.Image.GPSTag",
        "Exif.MakerNote.Offset", "Exif.MakerNote.ByteOrder"}


def _strip_header(block: bytes) -> bytes:
    """The TIFF structure of an EXIF block (b"Exif\\0\\0" dropped); other bytes (a whole file) unchanged."""
    return block[6:] if block[:6] == b"Exif\x00\x00" else block


def parse(block: bytes | None) -> dict[str, str] | None:
    """exiv2 keys -> text values of an EXIF block (b"Exif\\0\\0"-prefixed or bare TIFF) or of a whole JPEG, PNG,
    TIFF or TIFF-based RAW file's bytes; None when there is no usable EXIF (exiv2 refuses malformed data)."""
    if not block:
        return None
    try:
        with pyexiv2.ImageData(_strip_header(bytes(block))) as image:
            data = image.read_exif()
    except Exception:  # noqa: BLE001 (exiv2 raises RuntimeError, pybind11 casts others, on bad data)
        return None
    return data or None


def from_xmp(packet: bytes | None) -> dict[str, str] | None:
    """The EXIF tags an XMP packet states (tiff:Orientation, exif:ExposureTime, exif:FNumber, exif:ISOSpeedRatings,
    ...) as exiv2 EXIF keys and text values (exiv2's own XMP -> EXIF mapping); None when there are none or the
    packet is malformed. Lightroom, darktable and exiftool copy these into XMP, and some exports keep only that."""
    if not packet:
        return None
    import tifffile

    carrier = io.BytesIO()
    tifffile.imwrite(carrier, np.zeros((1, 1), np.uint8), metadata=None, software=False)
    try:
        with pyexiv2.ImageData(carrier.getvalue()) as image:
            image.modify_raw_xmp(bytes(packet).decode("utf-8", errors="replace"))
            tags = image.read_xmp()
        converted = pyexiv2.convert_xmp_to_exif({k: v for k, v in tags.items()
                                                 if k.startswith(("Xmp.tiff.", "Xmp.exif.", "Xmp.exifEX."))})
    except Exception:  # noqa: BLE001 (exiv2 raises RuntimeError, pybind11 casts others, on a malformed packet)
        return None
    result = {k: v if isinstance(v, str) else " ".join(map(str, v)) for k, v in converted.items()}
    stamp = tags.get("Xmp.exif.DateTimeOriginal") or tags.get("Xmp.photoshop.DateCreated")
    if isinstance(stamp, str) and "Exif.Photo.DateTimeOriginal" not in result:
        # exiv2 does not convert XMP's ISO 8601 dates ("2024-05-01T10:00:00.25+02:00"); EXIF keeps local time
        from datetime import datetime

        try:
            when = datetime.fromisoformat(stamp.strip())
        except ValueError:
            when = None
        if when is not None:
            result["Exif.Photo.DateTimeOriginal"] = when.strftime("%Y:%m:%d %H:%M:%S")
            if when.microsecond:
                result["Exif.Photo.SubSecTimeOriginal"] = f"{when.microsecond:06d}".rstrip("0")
    return result or None


def parse_file(data: bytes) -> dict[str, str] | None:
    """`parse` of a whole file's bytes, with the tags its EXIF lacks filled from its XMP packet (`from_xmp`):
    capture time and exposure for files whose exporter kept only XMP. None when neither has any."""
    parsed = parse(data)
    try:
        with pyexiv2.ImageData(bytes(data)) as image:
            packet = image.read_raw_xmp()
    except Exception:  # noqa: BLE001 (exiv2 raises RuntimeError, pybind11 casts others, on bad data)
        packet = None
    extra = from_xmp(packet.encode("utf-8") if isinstance(packet, str) and packet else None)
    if not extra:
        return parsed
    return {**extra, **(parsed or {})}


def orientation(data: dict[str, str] | None) -> int:
    """EXIF orientation code 1..8 of parsed EXIF (1 when absent or invalid)."""
    value = (data or {}).get(ORIENTATION, "1").split()
    return int(value[0]) if value and value[0].isdigit() and 1 <= int(value[0]) <= 8 else 1


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


def orientation_matrix(code: int, shape: tuple[int, int]) -> np.ndarray:
    """The 3×3 map of `apply_orientation(·, code)` on pixel coordinates: a stored image of `shape` (H, W) has its
    pixel (x, y) (x right, y down, origin at the top-left pixel's centre) at M @ (x, y, 1) once turned upright.
    Codes other than 2..8 are the identity, as in `apply_orientation`."""
    h, w = shape
    rows = {
        2: ((-1, 0, w - 1), (0, 1, 0)),
        3: ((-1, 0, w - 1), (0, -1, h - 1)),
        4: ((1, 0, 0), (0, -1, h - 1)),
        5: ((0, 1, 0), (1, 0, 0)),
        6: ((0, -1, h - 1), (1, 0, 0)),
        7: ((0, -1, h - 1), (-1, 0, w - 1)),
        8: ((0, 1, 0), (-1, 0, w - 1)),
    }.get(code, ((1, 0, 0), (0, 1, 0)))
    return np.array([*rows, (0, 0, 1)], np.float64)


def _rational(value: str | None) -> float | None:
    """The first value of an exiv2 rational or integer text ("1/250", "-8/3", "400 400") as a float, else None."""
    if not value:
        return None
    try:
        return float(Fraction(value.split()[0]))
    except (ValueError, ZeroDivisionError):
        return None


def number(value: str | None) -> float | None:
    """An exiv2 rational or integer text ("1/250", "8/1", "400", "400 400": the first value) as a positive finite
    float, else None."""
    result = _rational(value)
    return result if result is not None and result > 0 and math.isfinite(result) else None


def _apex(value: str | None, low: float, high: float) -> float | None:
    """A signed APEX value (exiv2 rational text) within [low, high], else None."""
    result = _rational(value)
    return result if result is not None and low <= result <= high else None


# TIFF/EP (ISO 12234-2) puts the exposure tags in IFD0, where exiv2 names them Exif.Image.*: some raws, DNGs and
# TIFFs written by scientific and scanning tools carry them only there.
_TIFF_EP = ("ExposureTime", "FNumber", "ISOSpeedRatings", "ShutterSpeedValue", "ApertureValue", "DateTimeOriginal",
            "ExposureBiasValue", "FocalLength")


def _tiff_ep(data: dict[str, str]) -> dict[str, str]:
    """The IFD0 (TIFF/EP) exposure tags of parsed EXIF under their Exif IFD names (Exif.Image.X -> Exif.Photo.X)."""
    return {f"Exif.Photo.{name}": data[f"Exif.Image.{name}"] for name in _TIFF_EP if f"Exif.Image.{name}" in data}


_SENSITIVITY_KEYS = ("Exif.Photo.RecommendedExposureIndex", "Exif.Photo.ISOSpeed",
                     "Exif.Photo.StandardOutputSensitivity")


def exposure(data: dict[str, str] | None) -> tuple[float | None, float | None, float | None]:
    """(exposure time s, f-number, ISO) from parsed EXIF, each None when missing or invalid.

    ExposureTime and FNumber first; where one is missing, the APEX ShutterSpeedValue (t = 2^-Tv) or ApertureValue
    (N = 2^(Av/2)) that some cameras and converters write instead (EXIF 2.32, 4.6.5 "APEX"). ISO from
    ISOSpeedRatings, or where that is missing or saturated at 65535, from RecommendedExposureIndex, ISOSpeed or
    StandardOutputSensitivity (EXIF 2.3)."""
    if not data:
        return None, None, None
    data = {**_tiff_ep(data), **data}
    iso = number(data.get("Exif.Photo.ISOSpeedRatings") or data.get("Exif.Photo.PhotographicSensitivity"))
    if iso is None or iso == 65535:
        # EXIF 2.3: ISOSpeedRatings is a SHORT, so above ISO 65535 it says 65535 and the value is in the tag that
        # SensitivityType names; some cameras write only these tags
        for key in _SENSITIVITY_KEYS:
            value = number(data.get(key))
            if value is not None:
                iso = value
                break
    t = number(data.get("Exif.Photo.ExposureTime"))
    if t is None:
        tv = _apex(data.get("Exif.Photo.ShutterSpeedValue"), -20.0, 30.0)  # about 12 days to 1 ns
        t = None if tv is None else 2.0 ** -tv
    n = number(data.get("Exif.Photo.FNumber"))
    if n is None:
        av = _apex(data.get("Exif.Photo.ApertureValue"), -2.0, 20.0)  # f/0.5 to f/1024
        n = None if av is None else 2.0 ** (av / 2.0)
    return t, n, iso


def describe(data: dict[str, str] | None) -> str:
    """Short human text of a frame's exposure settings, e.g. "1/250 s f/8 ISO 100" ("" when none are known)."""
    t, n, iso = exposure(data)
    parts = []
    if t is not None:
        parts.append(f"1/{round(1 / t)} s" if t < 0.5 else f"{t:g} s")
    if n is not None:
        parts.append(f"f/{n:g}")
    if iso is not None:
        parts.append(f"ISO {iso:g}")
    return " ".join(parts)


def for_writing(data: dict[str, str] | None) -> dict[str, str]:
    """The tags of parsed EXIF that describe the scene and camera rather than the source file's layout, with
    Orientation 1 (the pixels given to the writer are already upright)."""
    data = {**_tiff_ep(data), **data} if data else data  # TIFF/EP IFD0 exposure tags go where EXIF readers look
    kept = {k: v for k, v in (data or {}).items()
            if k not in DROP and (k in KEEP_IMAGE or k.startswith(KEEP_GROUPS))}
    if kept:
        kept[ORIENTATION] = "1"
    return kept


def encode(tags: dict[str, str]) -> bytes | None:
    """An EXIF block (b"Exif\\0\\0" + TIFF structure) holding `tags`, made by exiv2; None when none survive.

    exiv2 has no public "serialise EXIF" call, so the tags are written into a 1×1 TIFF and that TIFF is the block
    (its few layout tags are dropped again by `for_writing` when the block is read).
    """
    if not tags:
        return None
    import tifffile

    carrier = io.BytesIO()
    tifffile.imwrite(carrier, np.zeros((1, 1), np.uint8), metadata=None, software=False)
    try:
        with pyexiv2.ImageData(carrier.getvalue()) as image:
            image.modify_exif(tags)
            return b"Exif\x00\x00" + image.get_bytes()
    except Exception:  # noqa: BLE001 (exiv2 raises RuntimeError and pybind11 casts)
        return None


def for_output(block: bytes | dict[str, str] | None, width: int | None = None,
               height: int | None = None) -> bytes | None:
    """EXIF block for pixels that are already upright: descriptive tags only, Orientation 1, no thumbnail, no maker
    note, and the size tags = width×height when given; None when nothing usable is left."""
    data = block if isinstance(block, dict) else parse(block)
    tags = for_writing(data)
    if tags and width is not None and height is not None:
        tags["Exif.Photo.PixelXDimension"] = str(int(width))
        tags["Exif.Photo.PixelYDimension"] = str(int(height))
    return encode(tags)
