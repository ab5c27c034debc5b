"""What an output file says about itself: EXIF of the reference frame, the bracket's exposures, the Software tag,
XMP and the ICC profile, written by exiv2 (`pyexiv2`) into JPEG (APP1/APP2), PNG (eXIf/iTXt/iCCP) and TIFF
(IFD0 + Exif IFD, tag 700 XMP, tag 34675 ICC).

One `OutputMetadata` is built from a bracket (`from_bracket`) or a single source image (`from_image`) and passed to
`core.imageio.write_image(..., metadata=...)` by every writer (CLI fuse, cube base image, cube-apply, GUI export, HQ).
"""

from __future__ import annotations

import re
import struct
import warnings
import zlib
from dataclasses import dataclass, field

import pyexiv2

from lutfuse.core import exif as exifmod
from lutfuse.core.errors import shown_path

JPEG_EXIF_LIMIT = 65533  # bytes of payload in one JPEG APP1 segment (65535 minus the length field)
# exiv2's carrier TIFF adds a few layout tags to a block; the margin keeps the estimate on the safe side.
_JPEG_EXIF_BUDGET = JPEG_EXIF_LIMIT - 1024
# Tags kept whatever it costs: camera, lens, exposure and date (what photographers filter and sort by).
ESSENTIAL = {
    "Exif.Image.Make", "Exif.Image.Model", "Exif.Image.Software", "Exif.Image.DateTime",
    "Exif.Image.ImageDescription", "Exif.Image.Orientation", "Exif.Image.Artist", "Exif.Image.Copyright",
    "Exif.Photo.ExposureTime", "Exif.Photo.FNumber", "Exif.Photo.ISOSpeedRatings",
    "Exif.Photo.PhotographicSensitivity", "Exif.Photo.ExposureBiasValue", "Exif.Photo.ExposureProgram",
    "Exif.Photo.ExposureMode", "Exif.Photo.FocalLength", "Exif.Photo.FocalLengthIn35mmFilm",
    "Exif.Photo.DateTimeOriginal", "Exif.Photo.DateTimeDigitized", "Exif.Photo.OffsetTimeOriginal",
    "Exif.Photo.LensMake", "Exif.Photo.LensModel", "Exif.Photo.LensSpecification", "Exif.Photo.LensSerialNumber",
    "Exif.Photo.BodySerialNumber", "Exif.Photo.PixelXDimension", "Exif.Photo.PixelYDimension",
    "Exif.Photo.WhiteBalance", "Exif.Photo.MeteringMode", "Exif.Photo.Flash",
}
# Dropped first when a JPEG segment overflows: free text and vendor blobs, largest first after these.
_DROP_FIRST = ("Exif.Photo.MakerNote", "Exif.Photo.UserComment", "Exif.Image.XPComment",
               "Exif.Image.PrintImageMatching",
               "Exif.Image.DNGPrivateData", "Exif.Image.ImageResources", "Exif.Image.IPTCNAA")


class MetadataWarning(UserWarning):
    """Metadata could not be written in full (trimmed or dropped); the message says what and why."""


def srgb_profile() -> bytes:
    """ICC profile bytes of sRGB (LittleCMS's, core.profiles.srgb_profile): the profile of untagged pixels."""
    from lutfuse.core.profiles import srgb_profile as built_in

    return built_in()


def software() -> str:
    """The Software tag: "LUTFuse <version>"."""
    from lutfuse import __version__

    return f"LUTFuse {__version__}"


@dataclass(frozen=True)
class OutputMetadata:
    """Metadata for one output file.

    exif: EXIF block (b"Exif\\0\\0" + TIFF) of the reference (middle) frame, or None.
    xmp: the source's XMP packet (UTF-8 bytes), or None.
    icc: ICC profile the written pixels are encoded in; None = sRGB (an sRGB profile is embedded then).
    software: the Software tag.
    exposures: one line per frame of the bracket, darkest first ("00.jpg -2.0 EV 1/400 s f/8 ISO 100"); empty for
        a single source image. Written into ImageDescription.
    """

    exif: bytes | None = None
    xmp: bytes | None = None
    icc: bytes | None = None
    software: str = field(default_factory=software)
    exposures: tuple[str, ...] = ()
    made: str = "fusion"  # what the image is, for the description ("fusion", "base image for look.cube")

    @classmethod
    def from_bracket(cls, bracket, made: str = "fusion") -> OutputMetadata:
        """Metadata of an image made from `bracket` (core.bracket.Bracket): the middle frame's EXIF, XMP and ICC
        profile, and every frame's relative EV and settings; `made` says what the image is."""
        from lutfuse.core.bracket import relative_evs

        frames = bracket.frames
        evs = relative_evs([f.ev for f in frames])
        lines = []
        for frame, ev in zip(frames, evs):
            settings = exifmod.describe(exifmod.parse(frame.exif)) if frame.exif else ""
            # shown_path: a name that is not valid UTF-8 would make the whole EXIF block unencodable
            lines.append(f"{shown_path(frame.path.name)} {ev:+.1f} EV" + (f" {settings}" if settings else ""))
        middle = bracket.middle()
        return cls(exif=middle.exif, xmp=middle.xmp, icc=middle.icc, exposures=tuple(lines), made=made)

    @classmethod
    def from_image(cls, exif: bytes | None = None, icc: bytes | None = None,
                   xmp: bytes | None = None) -> OutputMetadata:
        """Metadata of an output made from one source image (cube-apply): its EXIF, ICC profile and XMP."""
        return cls(exif=exif, icc=icc, xmp=xmp)

    def description(self) -> str | None:
        """The ImageDescription text: what was fused, or None for a single-image output."""
        if not self.exposures:
            return None
        return (f"{self.software} {self.made} of {len(self.exposures)} exposures (EV relative to the middle frame): "
                + "; ".join(self.exposures))


def _tags(meta: OutputMetadata, width: int, height: int) -> dict[str, str]:
    """exiv2 tags to write: the reference frame's descriptive EXIF + Software, description and pixel size."""
    tags = exifmod.for_writing(exifmod.parse(meta.exif))
    tags["Exif.Image.Software"] = meta.software
    tags["Exif.Image.Orientation"] = "1"
    text = meta.description()
    if text:
        tags["Exif.Image.ImageDescription"] = text
    if any(k.startswith("Exif.Photo.") for k in tags):
        tags["Exif.Photo.PixelXDimension"] = str(int(width))
        tags["Exif.Photo.PixelYDimension"] = str(int(height))
    return tags


def _size(tags: dict[str, str]) -> int:
    """Bytes the tags take as an EXIF block (exiv2's encoding), or a large number if they cannot be encoded."""
    block = exifmod.encode(tags)
    return len(block) if block else 1 << 30


def trim_for_jpeg(tags: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """Tags that fit one JPEG APP1 segment, and the names of those dropped (maker notes, comments and other large
    free-form tags first, then the largest remaining non-essential ones; camera, lens and exposure stay)."""
    if _size(tags) <= _JPEG_EXIF_BUDGET:
        return tags, []
    tags, dropped = dict(tags), []
    order = [k for k in _DROP_FIRST if k in tags]
    order += sorted((k for k in tags if k not in ESSENTIAL and k not in order), key=lambda k: -len(tags[k]))
    order += sorted((k for k in tags if k in ESSENTIAL and k not in ("Exif.Image.Software",)),
                    key=lambda k: -len(tags[k]))
    for key in order:
        dropped.append(key)
        del tags[key]
        if _size(tags) <= _JPEG_EXIF_BUDGET:
            break
    return tags, dropped


def embed(kind: str, encoded: bytes, meta: OutputMetadata | None, width: int, height: int,
          source: str = "") -> bytes:
    """Encoded PNG/JPEG/TIFF bytes with `meta` written in by exiv2 -> new file bytes.

    kind: "PNG", "JPEG" or "TIFF". Always writes the Software tag and an ICC profile (sRGB when meta.icc is None).
    EXIF larger than a JPEG segment allows is trimmed for JPEG and PNG (see `trim_for_jpeg`), kept whole in TIFF;
    each trim or drop is reported as one MetadataWarning naming `source` (the output path); a tag exiv2 refuses is
    dropped the same way. Raises RuntimeError only when exiv2 cannot rewrite the pixels' own container (a bug).
    """
    meta = meta or OutputMetadata()
    tags = _tags(meta, width, height)
    notes: list[str] = []
    if kind in ("JPEG", "PNG"):
        # exiv2 writes EXIF into PNG with the JPEG encoder's 64 KB limit too (dropping large tags of its choice);
        # trimming here first decides what goes (free text before camera, lens and exposure) and says so.
        tags, dropped = trim_for_jpeg(tags)
        if dropped:
            where = "a JPEG segment" if kind == "JPEG" else "the PNG EXIF chunk exiv2 writes"
            notes.append(f"EXIF trimmed to fit {where} ({JPEG_EXIF_LIMIT} bytes): dropped "
                         f"{', '.join(k.rsplit('.', 1)[1] for k in dropped)}; camera, lens and exposure kept "
                         f"(a .tif output keeps it all)")
    with pyexiv2.ImageData(encoded) as image:
        try:
            image.modify_exif(tags)
        except Exception:  # noqa: BLE001 (a value exiv2 cannot encode: drop that tag, keep the others)
            refused = []
            for key, value in tags.items():
                try:
                    image.modify_exif({key: value})
                except Exception:  # noqa: BLE001
                    refused.append(key)
            notes.append(f"exiv2 refused {', '.join(k.rsplit('.', 1)[1] for k in refused)}; left out")
            tags = {k: v for k, v in tags.items() if k not in refused}
        image.modify_icc(meta.icc or srgb_profile())
        if meta.xmp:
            try:
                image.modify_raw_xmp(meta.xmp.decode("utf-8", errors="replace"))
                if "Xmp.tiff.Orientation" in image.read_xmp():
                    image.modify_xmp({"Xmp.tiff.Orientation": "1"})  # the pixels are upright now
            except Exception:  # noqa: BLE001 (exiv2 raises RuntimeError and pybind11 casts)
                image.clear_xmp()
                notes.append("the source's XMP packet could not be parsed; it was left out")
        try:
            data = image.get_bytes()
        except Exception:  # noqa: BLE001 (exiv2 raises RuntimeError and pybind11 casts)
            # exiv2 refuses an XMP packet larger than one JPEG segment; the image is worth more than the packet.
            image.clear_xmp()
            data = image.get_bytes()
            notes.append("the source's XMP packet is too large for a JPEG segment; it was left out")
    if kind == "PNG":
        data = name_png_icc(data, meta.icc or srgb_profile())
    written = set()
    with pyexiv2.ImageData(data) as check:
        written = set(check.read_exif())
    lost = [k for k in tags if k not in written]
    if lost:
        notes.append(f"exiv2 left out {', '.join(k.rsplit('.', 1)[1] for k in lost)}")
    for note in notes:
        warnings.warn(f"{source}: {note}" if source else note, MetadataWarning, stacklevel=3)
    return data


def icc_keyword(icc: bytes) -> bytes:
    """A PNG iCCP profile name for `icc`: its description (Latin-1, printable, single spaces, 1-79 bytes, as the
    PNG spec (ISO/IEC 15948, 11.3.3.3) requires of a keyword), else "ICC Profile"."""
    try:
        import io

        from PIL import ImageCms

        text = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc)))
    except Exception:  # noqa: BLE001 (a profile LittleCMS cannot parse still gets a valid name)
        text = ""
    text = re.sub(r"[^\x20-\x7e\xa1-\xff]", " ", text or "")
    keyword = " ".join(text.split()).encode("latin-1", errors="ignore")[:79].strip()
    return keyword or b"ICC Profile"


def name_png_icc(data: bytes, icc: bytes) -> bytes:
    """PNG bytes with the iCCP chunk's profile name set to `icc_keyword(icc)`.

    exiv2 writes iCCP with an empty name, which the PNG spec forbids (libpng then warns "iCCP: bad keyword" on
    every read); the chunk's compressed profile is kept as it is and its CRC recomputed. Other chunks unchanged.
    """
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return data
    pos = 8
    while pos + 8 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        end = pos + 12 + length
        if ctype == b"iCCP":
            body = data[pos + 8:pos + 8 + length]
            rest = body[body.index(b"\0"):]  # NUL, compression method, compressed profile
            new = b"iCCP" + icc_keyword(icc) + rest
            chunk = struct.pack(">I", len(new) - 4) + new + struct.pack(">I", zlib.crc32(new) & 0xFFFFFFFF)
            return data[:pos] + chunk + data[end:]
        if ctype == b"IDAT":
            break  # iCCP must come before the image data
        pos = end
    return data


def read_back(data: bytes) -> tuple[dict[str, str], bytes | None, str | None]:
    """(EXIF tags, ICC profile, XMP text) of written file bytes, through exiv2: for checks and tests."""
    with pyexiv2.ImageData(data) as image:
        return image.read_exif(), image.read_icc() or None, image.read_raw_xmp() or None

