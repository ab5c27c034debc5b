"""Coding-independent code points (ITU-T H.273, "CICP"): the colour primaries and transfer characteristics that a
PNG cICP chunk (PNG third edition, 11.3.2.6) names instead of an ICC profile, as HDR (PQ, HLG) and wide-gamut
(Display P3, BT.2020) images from browsers, phones and Adobe tools carry them.

`to_srgb` turns such code values into sRGB: decode the transfer to linear light, move the primaries to sRGB's
(3×3 matrix in linear light, Bradford adaptation for a non-D65 white), clip, encode with the sRGB curve. HDR
transfers (PQ, SMPTE ST 2084; HLG, ARIB STD-B67) are display light in cd/m²; LUTFuse fuses display-referred SDR
frames, so HDR is placed with its reference white (203 cd/m², ITU-R BT.2408) at SDR white and what is brighter is
clipped, with a note, as for float TIFF values above 1.
"""

from __future__ import annotations

import numpy as np

REFERENCE_WHITE = 203.0  # cd/m², HDR diffuse white (ITU-R BT.2408-7, 2.2), mapped to SDR white
_HLG_PEAK = 1000.0  # cd/m², the nominal HLG display the BT.2100 OOTF assumes (BT.2408: 75 % HLG = 203 cd/m²)

_D65 = (0.3127, 0.3290)
# H.273 ColourPrimaries: (white, red, green, blue) as CIE xy
PRIMARIES: dict[int, tuple[str, tuple[tuple[float, float], ...]]] = {
    1: ("BT.709/sRGB", (_D65, (0.640, 0.330), (0.300, 0.600), (0.150, 0.060))),
    5: ("BT.601 625-line", (_D65, (0.640, 0.330), (0.290, 0.600), (0.150, 0.060))),
    6: ("BT.601 525-line", (_D65, (0.630, 0.340), (0.310, 0.595), (0.155, 0.070))),
    7: ("SMPTE 240M", (_D65, (0.630, 0.340), (0.310, 0.595), (0.155, 0.070))),
    9: ("BT.2020", (_D65, (0.708, 0.292), (0.170, 0.797), (0.131, 0.046))),
    11: ("DCI-P3", ((0.314, 0.351), (0.680, 0.320), (0.265, 0.690), (0.150, 0.060))),
    12: ("Display P3", (_D65, (0.680, 0.320), (0.265, 0.690), (0.150, 0.060))),
}
# H.273 TransferCharacteristics that LUTFuse decodes
TRANSFERS = {1: "BT.709", 4: "gamma 2.2", 5: "gamma 2.8", 6: "BT.601", 8: "linear", 13: "sRGB", 14: "BT.2020",
             15: "BT.2020", 16: "PQ", 18: "HLG"}
_HDR = (16, 18)

_BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])


def _xyz(xy: tuple[float, float]) -> np.ndarray:
    x, y = xy
    return np.array([x / y, 1.0, (1.0 - x - y) / y])


def _to_xyz(white: tuple[float, float], red: tuple[float, float], green: tuple[float, float],
            blue: tuple[float, float]) -> np.ndarray:
    """3×3 matrix: linear RGB of these primaries -> CIE XYZ (white Y = 1)."""
    columns = np.stack([_xyz(red), _xyz(green), _xyz(blue)], axis=1)
    return columns * np.linalg.solve(columns, _xyz(white))


def to_srgb_matrix(primaries: int) -> np.ndarray:
    """3×3 matrix: linear RGB of H.273 colour primaries `primaries` -> linear sRGB (Bradford-adapted to D65)."""
    white, red, green, blue = PRIMARIES[primaries][1]
    source = _to_xyz(white, red, green, blue)
    if white != _D65:
        cone = _BRADFORD @ _xyz(_D65) / (_BRADFORD @ _xyz(white))
        source = np.linalg.inv(_BRADFORD) @ np.diag(cone) @ _BRADFORD @ source
    return np.linalg.inv(_to_xyz(*PRIMARIES[1][1])) @ source


def _decode(code: np.ndarray, transfer: int, to_srgb: np.ndarray) -> np.ndarray:
    """Code values in [0,1] -> linear light relative to SDR white (1.0), HDR above 1."""
    if transfer == 13:
        return np.where(code <= 0.04045, code / 12.92, ((code + 0.055) / 1.055) ** 2.4)
    if transfer in (1, 6, 14, 15):  # the inverse of the BT.709 OETF, as colour-managed viewers decode it
        return np.where(code < 0.081, code / 4.5, ((code + 0.099) / 1.099) ** (1 / 0.45))
    if transfer in (4, 5):
        return code ** (2.2 if transfer == 4 else 2.8)
    if transfer == 8:
        return code
    if transfer == 16:  # SMPTE ST 2084 EOTF: 0..1 -> 0..10 000 cd/m²
        m1, m2, c1, c2, c3 = 2610 / 16384, 2523 / 4096 * 128, 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
        power = code ** (1 / m2)
        return (np.maximum(power - c1, 0.0) / (c2 - c3 * power)) ** (1 / m1) * (10000.0 / REFERENCE_WHITE)
    # HLG (BT.2100): inverse OETF to scene light, then the OOTF of a 1000 cd/m² display (system gamma 1.2)
    a, b, c = 0.17883277, 0.28466892, 0.55991073
    scene = np.where(code <= 0.5, code ** 2 / 3.0, (np.exp((code - c) / a) + b) / 12.0)
    # the OOTF scales by the luminance of the source's own primaries (BT.2020: 0.2627 R + 0.6780 G + 0.0593 B)
    weights = to_srgb.T @ np.array([0.2126, 0.7152, 0.0722])
    luminance = np.maximum(scene @ weights, 0.0)[..., None]
    return _HLG_PEAK * luminance ** 0.2 * scene / REFERENCE_WHITE


def to_srgb(image: np.ndarray, primaries: int, transfer: int, matrix: int, full_range: int,
            bits: int = 8, source: str = "cICP chunk") -> tuple[np.ndarray, str | None]:
    """H×W×3 float32 code values in [0,1] with the cICP code points -> (H×W×3 float32 sRGB in [0,1], a note for
    the user or None when the pixels are sRGB already).

    `bits`: the file's sample depth, for narrow-range (video levels, full_range 0) code values; `source`: where
    the code points come from, for the note ("cICP chunk", "nclx colour box"). Code points
    LUTFuse cannot decode (a matrix other than 0 = RGB, unknown primaries or transfer) leave the pixels as they are,
    taken as sRGB, with a note.
    """
    if (primaries, transfer, matrix, full_range) == (1, 13, 0, 1):
        return image, None
    if matrix != 0 or primaries not in PRIMARIES or transfer not in TRANSFERS:
        return image, (f"its {source} ({primaries}, {transfer}, {matrix}, {full_range}) names a colour encoding "
                       "LUTFuse cannot decode (H.273 primaries 1, 5-7, 9, 11, 12; transfers "
                       f"{', '.join(map(str, sorted(TRANSFERS)))}; matrix 0); the pixels are taken as sRGB")
    code = image.astype(np.float64)
    if not full_range:  # narrow range: black at 16, white at 235 (times 2^(bits-8))
        scale = float(2 ** (bits - 8))
        top = 2.0 ** bits - 1.0
        code = np.clip((code * top - 16.0 * scale) / (219.0 * scale), 0.0, 1.0)
    matrix_to_srgb = to_srgb_matrix(primaries)
    linear = _decode(code, transfer, matrix_to_srgb) @ matrix_to_srgb.T
    outside = ((linear < -1e-4) | (linear > 1 + 1e-4)).any(axis=-1)
    linear = np.clip(linear, 0.0, 1.0)
    srgb = np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055).astype(np.float32)
    what = f"{PRIMARIES[primaries][0]} primaries, {TRANSFERS[transfer]} transfer" + (
        ", narrow range" if not full_range else "")
    share = float(outside.mean())
    if transfer in _HDR:
        note = (f"HDR image ({what}, from its {source}): mapped to SDR sRGB with its reference white "
                f"({REFERENCE_WHITE:g} cd/m², ITU-R BT.2408) at white; {share:.1%} of its pixels are brighter than "
                "that or outside sRGB and are clipped (tone-map HDR to SDR before fusing to keep them)")
    else:
        clipped = f"; {share:.1%} of its pixels lie outside sRGB and are clipped" if share > 1e-4 else ""
        note = f"colour encoding taken from its {source} ({what}) and converted to sRGB{clipped}"
    return np.ascontiguousarray(srgb), note


def bmff_nclx(data: bytes) -> tuple[int, int] | None:
    """(colour primaries, transfer characteristics) of a HEIF/AVIF file's `colr` box of type `nclx` (ISO/IEC
    23008-12 / 14496-12 ColourInformationBox: primaries u16, transfer u16, matrix u16, full-range bit), else None.
    "Unspecified" (2) reads as sRGB's code point, as decoders take it. The matrix and range are not returned: the
    decoder (libheif, libavif) applied them when it turned YUV into RGB."""
    start = 0
    while True:
        at = data.find(b"colrnclx", start)
        if at < 4 or at + 14 > len(data):
            return None
        if int.from_bytes(data[at - 4:at], "big") >= 19:  # box size: header 8 + type 4 + 7 bytes of code points
            primaries = int.from_bytes(data[at + 8:at + 10], "big")
            transfer = int.from_bytes(data[at + 10:at + 12], "big")
            return (1 if primaries == 2 else primaries), (13 if transfer == 2 else transfer)
        start = at + 8
