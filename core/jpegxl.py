"""JPEG XL file structure: the signature, the codestream header (size, orientation, animation), the metadata boxes.

libjxl (through imagecodecs) decodes the pixels; what it does not hand back is read here from the bytes: the size
before decoding (so that an oversized frame is refused without allocating it) and the EXIF and XMP boxes of the
ISO BMFF container (so that the exposure settings order the bracket as for any other format).

Source: ISO/IEC 18181-1:2024 (codestream: signature FF 0A, SizeHeader, U32 fields, bits read least significant
first) and ISO/IEC 18181-2:2024 (container: `JXL ` signature box, `jxlc`/`jxlp` codestream boxes, `Exif` box
with a 4-byte offset to the TIFF header, `xml ` box, `brob` Brotli-compressed boxes).
"""

from __future__ import annotations

from dataclasses import dataclass

CODESTREAM_SIGNATURE = b"\xff\x0a"
CONTAINER_SIGNATURE = b"\x00\x00\x00\x0cJXL \r\n\x87\n"
# width = height × ratio for SizeHeader.ratio 1..7 (18181-1 Table D.3)
_RATIOS = {1: (1, 1), 2: (12, 10), 3: (4, 3), 4: (3, 2), 5: (16, 9), 6: (5, 4), 7: (2, 1)}


def is_jpegxl(data: bytes) -> bool:
    """True when `data` starts like a JPEG XL file: a bare codestream or the ISO BMFF container."""
    return data[:2] == CODESTREAM_SIGNATURE or data[:12] == CONTAINER_SIGNATURE


def boxes(data: bytes) -> list[tuple[bytes, bytes]]:
    """The top-level (type, payload) boxes of a JPEG XL container, in file order; [] for a bare codestream.

    A box whose declared size runs past the end of the data ends the list (a truncated file keeps what came
    before it). `brob` boxes are returned as they are (type brob; the payload starts with the real type).
    """
    if data[:12] != CONTAINER_SIGNATURE:
        return []
    found = []
    pos = 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        head = 8
        if size == 1:  # 64-bit size follows the type
            if pos + 16 > len(data):
                break
            size, head = int.from_bytes(data[pos + 8:pos + 16], "big"), 16
        elif size == 0:  # the last box runs to the end of the file
            size = len(data) - pos
        if size < head or pos + size > len(data):
            break
        found.append((kind, data[pos + head:pos + size]))
        pos += size
    return found


def codestream_head(data: bytes) -> bytes:
    """The start of the codestream: the data itself when bare, else the first `jxlc` or `jxlp` box's payload
    (a `jxlp` payload begins with a 4-byte part index); b"" when the container holds none."""
    if data[:2] == CODESTREAM_SIGNATURE:
        return data
    for kind, payload in boxes(data):
        if kind == b"jxlc":
            return payload
        if kind == b"jxlp":
            return payload[4:]
    return b""


class _Bits:
    """Reads a byte string as a bit stream, least significant bit of each byte first (18181-1 §B.2)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def u(self, n: int) -> int:
        value = 0
        for i in range(n):
            byte = self.pos >> 3
            if byte >= len(self.data):
                raise ValueError("the header ends early")
            value |= ((self.data[byte] >> (self.pos & 7)) & 1) << i
            self.pos += 1
        return value

    def u32(self, *choices: tuple[int, int]) -> int:
        """U32(d0..d3): a 2-bit selector, then offset + u(bits) of the chosen distribution."""
        offset, bits = choices[self.u(2)]
        return offset + (self.u(bits) if bits else 0)


@dataclass(frozen=True)
class Header:
    """What a JPEG XL codestream's first fields say: size in px as stored, EXIF-style orientation code 1..8 (which
    the decoder applies), and whether the file is an animation."""

    width: int
    height: int
    orientation: int = 1
    animated: bool = False


_DIMS = ((1, 9), (1, 13), (1, 18), (1, 30))           # SizeHeader height/width U32 distributions
_PREVIEW_DIV8 = ((16, 0), (32, 0), (1, 5), (33, 9))   # PreviewHeader, in units of 8 px
_PREVIEW = ((1, 6), (65, 8), (321, 10), (1, 12))


def _size(bits: _Bits, div8: tuple[tuple[int, int], ...] | None = None,
          dims: tuple[tuple[int, int], ...] = _DIMS) -> tuple[int, int]:
    """SizeHeader (div8 None: 5-bit multiples of 8) or PreviewHeader (its U32 multiples of 8) -> (width, height)."""
    small = bits.u(1)
    if small:
        height = (bits.u(5) + 1) * 8 if div8 is None else bits.u32(*div8) * 8
    else:
        height = bits.u32(*dims)
    ratio = bits.u(3)
    if ratio:
        num, den = _RATIOS[ratio]
        return height * num // den, height
    if small:
        return ((bits.u(5) + 1) * 8 if div8 is None else bits.u32(*div8) * 8), height
    return bits.u32(*dims), height


def header(data: bytes) -> Header | None:
    """The SizeHeader and the start of ImageMetadata (orientation, animation flag) of a JPEG XL file, bare or in
    its container; None when `data` is not JPEG XL or its header is cut short (18181-1 §D.2, §D.3)."""
    stream = codestream_head(data)
    if stream[:2] != CODESTREAM_SIGNATURE:
        return None
    bits = _Bits(stream[2:])
    try:
        width, height = _size(bits)
        if bits.u(1):  # ImageMetadata.all_default
            return Header(width, height)
        orientation, animated = 1, False
        if bits.u(1):  # extra_fields
            orientation = bits.u(3) + 1
            if bits.u(1):  # have_intr_size
                _size(bits)
            if bits.u(1):  # have_preview
                _size(bits, _PREVIEW_DIV8, _PREVIEW)
            animated = bool(bits.u(1))
    except ValueError:
        return None
    return Header(width, height, orientation, animated)


def metadata(data: bytes) -> tuple[bytes | None, bytes | None]:
    """(EXIF as a bare TIFF block, XMP packet) from a JPEG XL container's `Exif` and `xml ` boxes (Brotli-compressed
    `brob` boxes included); Nones where absent, unreadable, or for a bare codestream (which has no metadata)."""
    exif = xmp = None
    for kind, payload in boxes(data):
        if kind == b"brob" and len(payload) > 4:
            kind = payload[:4]
            try:
                import imagecodecs

                payload = bytes(imagecodecs.brotli_decode(payload[4:]))
            except Exception:  # noqa: BLE001  a damaged compressed box loses its metadata, not the frame
                continue
        if kind == b"Exif" and len(payload) > 4 and exif is None:
            offset = int.from_bytes(payload[:4], "big")
            block = payload[4 + offset:]
            exif = block if block[:4] in (b"II*\0", b"MM\0*") else None
        elif kind == b"xml " and xmp is None:
            xmp = payload or None
    return exif, xmp
