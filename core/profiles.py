"""ICC colour profiles of frames: describe them, tell whether two describe one colour space, convert between them.

The colour management engine is LittleCMS 2 (through `imagecodecs.cms_transform`, which keeps float32 precision and
does not clip; Pillow's `ImageCms` only transforms 8-bit images and is used here to read profile names). A frame
without a profile is sRGB (IEC 61966-2-1), as browsers and raw developers assume.
"""

from __future__ import annotations

import io
import struct
from functools import lru_cache

import numpy as np

# Colours that tell two RGB spaces apart: a 6×6×6 lattice over the cube, corners and greys included.
_PROBE = np.stack(np.meshgrid(*[np.linspace(0.0, 1.0, 6, dtype=np.float32)] * 3, indexing="ij"), -1).reshape(1, -1, 3)
_SAME_TOLERANCE = 2e-3  # max difference (in [0,1] code values) for two profiles to count as one space


@lru_cache(maxsize=1)
def srgb_profile() -> bytes:
    """LittleCMS's built-in sRGB profile (the space of untagged frames), with a fixed creation date."""
    import imagecodecs

    profile = bytearray(imagecodecs.cms_profile("srgb"))
    # LittleCMS stamps the profile header (bytes 24-35, ICC.1:2010 7.2.8) with the current time: every process
    # would embed a different profile, and the same fusion written twice would differ. The profile ID (84-99)
    # is left zero by LittleCMS, so no checksum covers the date.
    profile[24:36] = struct.pack(">6H", 2026, 1, 1, 0, 0, 0)
    return bytes(profile)


def describe(icc: bytes | None) -> str:
    """The profile's description ("Adobe RGB (1998)", ...), "sRGB" for None, or "unnamed ICC profile"."""
    if icc is None:
        return "sRGB"
    try:
        from PIL import ImageCms

        name = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))).strip()
    except Exception:  # noqa: BLE001  Pillow raises OSError/PyCMSError/TypeError... on damaged profiles
        name = ""
    return name or "unnamed ICC profile"


def colour_space(icc: bytes) -> str | None:
    """The profile's data colour space ("RGB", "CMYK", "GRAY", ...; ICC.1:2010 header field), None when Pillow
    cannot parse it."""
    try:
        from PIL import ImageCms

        return str(ImageCms.ImageCmsProfile(io.BytesIO(icc)).profile.xcolor_space).strip()
    except Exception:  # noqa: BLE001  Pillow raises OSError/PyCMSError/TypeError... on damaged profiles
        return None


def check_rgb(icc: bytes) -> str | None:
    """None when `icc` is a usable RGB profile (LittleCMS can transform with it), else why not."""
    space = colour_space(icc)
    if space is None:
        return "unreadable"
    if space != "RGB":
        return f"a {space or 'non-RGB'} profile on RGB pixels"
    try:
        _transform(_PROBE, icc, srgb_profile())
    except Exception:  # noqa: BLE001  imagecodecs raises CmsError, ValueError... for unusable profiles
        return "LittleCMS cannot use it"
    return None


def _transform(pixels: np.ndarray, source: bytes, target: bytes) -> np.ndarray:
    import imagecodecs

    return imagecodecs.cms_transform(np.ascontiguousarray(pixels, np.float32), source, target,
                                     colorspace="rgb", outcolorspace="rgb", outdtype=np.float32)


def same_space(a: bytes | None, b: bytes | None) -> bool:
    """True when profiles `a` and `b` (None = sRGB) encode colours alike (within 2e-3 on a lattice of colours)."""
    if a == b:
        return True
    source, target = a or srgb_profile(), b or srgb_profile()
    try:
        moved = _transform(_PROBE, source, target)
    except Exception:  # noqa: BLE001  a profile LittleCMS cannot use is not the same space
        return False
    return float(np.abs(moved - _PROBE).max()) < _SAME_TOLERANCE


def is_srgb(icc: bytes | None) -> bool:
    """True for None and for any profile that encodes like sRGB (a tagged sRGB file is just sRGB)."""
    return icc is None or same_space(icc, None)


def convert(pixels: np.ndarray, source: bytes | None, target: bytes | None) -> tuple[np.ndarray, float]:
    """H×W×3 float32 [0,1] pixels from profile `source` into `target` (None = sRGB), relative colorimetric.

    Returns (converted pixels clipped to [0,1], fraction of pixels that were outside the target's gamut and
    clipped). Precision: float32 all the way (LittleCMS float transform), so 16-bit sources keep their levels.
    """
    if same_space(source, target):
        return pixels, 0.0
    out = np.empty_like(pixels, dtype=np.float32)
    rows = max(1, (1 << 20) // max(1, pixels.shape[1]))  # ~1 M pixels at a time keeps the scratch memory small
    outside = 0
    for top in range(0, pixels.shape[0], rows):
        block = _transform(pixels[top:top + rows], source or srgb_profile(), target or srgb_profile())
        outside += int(((block < -1e-4) | (block > 1 + 1e-4)).any(axis=-1).sum())
        np.clip(block, 0.0, 1.0, out=out[top:top + rows])
    return out, outside / max(1, pixels.shape[0] * pixels.shape[1])


_SRGB_CHROMATICITY = (0.3127, 0.3290, 0.64, 0.33, 0.30, 0.60, 0.15, 0.06)  # white, red, green, blue (x, y)


def png_chunk_profile(gamma: float | None, chromaticity: tuple[float, ...] | None) -> bytes | None:
    """An RGB ICC profile for a PNG's gAMA (encoding exponent, e.g. 0.45455) and cHRM (white, red, green, blue
    x, y) chunks, for a PNG with neither iCCP nor sRGB chunk; None when they describe sRGB as PNG writers mean it
    (gAMA within 2 % of 1/2.2, cHRM absent or within 0.01 of the sRGB primaries) or are not usable.

    PNG specification (third edition) 11.3.3: gAMA gives sample = linear ** gamma; without gAMA the sRGB curve is
    assumed. The profile is made by LittleCMS (`imagecodecs.cms_profile`).
    """
    import imagecodecs

    if gamma is not None and not (0.05 <= gamma <= 5.0):  # a broken chunk, not an encoding anyone uses
        gamma = None
    if chromaticity is not None and (len(chromaticity) != 8 or not all(0.0 < c < 1.0 for c in chromaticity)):
        chromaticity = None
    srgb_curve = gamma is None or abs(gamma * 2.2 - 1.0) <= 0.02
    srgb_primaries = chromaticity is None or max(abs(a - b) for a, b in zip(chromaticity, _SRGB_CHROMATICITY)) <= 0.01
    if srgb_curve and srgb_primaries:
        return None
    white, red, green, blue = (tuple(chromaticity[i:i + 2]) for i in range(0, 8, 2)) if chromaticity else (
        tuple(_SRGB_CHROMATICITY[i:i + 2]) for i in range(0, 8, 2))
    curve = None
    if gamma is None:  # the sRGB decoding curve (IEC 61966-2-1) as a sampled table
        code = np.linspace(0.0, 1.0, 4096)
        linear = np.where(code <= 0.04045, code / 12.92, ((code + 0.055) / 1.055) ** 2.4)
        curve = np.round(linear * 65535).astype(np.uint16)
    try:
        return bytes(imagecodecs.cms_profile("rgb", whitepoint=(*white, 1.0),
                                             primaries=(*red, 1.0, *green, 1.0, *blue, 1.0),
                                             gamma=1.0 / gamma if gamma is not None else None,
                                             transferfunction=curve))
    except Exception:  # noqa: BLE001  LittleCMS refuses degenerate primaries: the pixels stay as they are
        return None


_RELATIVE = 1  # LittleCMS INTENT_RELATIVE_COLORIMETRIC
_BLACK_POINT_COMPENSATION = 0x2000  # LittleCMS cmsFLAGS_BLACKPOINTCOMPENSATION: CMYK's ink black becomes sRGB black


def cmyk_to_srgb(samples: np.ndarray, icc: bytes | None) -> tuple[np.ndarray, float, str | None]:
    """H×W×4 uint8/uint16 CMYK (0 = no ink) -> (H×W×3 float32 sRGB in [0,1], fraction of pixels outside sRGB and
    clipped, the profile's description or None when the naive conversion was used).

    With `icc` a usable CMYK profile, LittleCMS converts (relative colorimetric with black point compensation, the
    default of print-workflow software; float output; ICC.1:2010); else
    the device formula R = (1-C)(1-K), G = (1-M)(1-K), B = (1-Y)(1-K), what libjpeg-based readers do.
    """
    import imagecodecs

    if icc and colour_space(icc) == "CMYK":  # an unreadable or non-CMYK profile: the naive conversion
        try:
            out = np.empty(samples.shape[:2] + (3,), np.float32)
            rows = max(1, (1 << 20) // max(1, samples.shape[1]))
            outside = 0
            for top in range(0, samples.shape[0], rows):
                block = imagecodecs.cms_transform(np.ascontiguousarray(samples[top:top + rows]), icc, srgb_profile(),
                                                  colorspace="cmyk", outcolorspace="rgb", outdtype=np.float32,
                                                  intent=_RELATIVE, flags=_BLACK_POINT_COMPENSATION)
                # a print profile's table interpolation overshoots paper white by ~1e-3: not out of gamut
                outside += int(((block < -2e-3) | (block > 1 + 2e-3)).any(axis=-1).sum())
                np.clip(block, 0.0, 1.0, out=out[top:top + rows])
            return out, outside / max(1, samples.shape[0] * samples.shape[1]), describe(icc)
        except Exception:  # noqa: BLE001  LittleCMS refuses the profile: fall back to the naive formula
            pass
    ink = samples.astype(np.float32) / np.float32(np.iinfo(samples.dtype).max)
    rgb = (1.0 - ink[..., :3]) * (1.0 - ink[..., 3:4])
    return rgb.astype(np.float32), 0.0, None


def cube_comments(icc: bytes | None) -> list[str]:
    """`.cube` comment lines that say what colour encoding the LUT expects and produces (the bracket's space)."""
    space = ("sRGB (IEC 61966-2-1)" if is_srgb(icc)
             else f"the ICC profile '{describe(icc)}' embedded in the base image")
    return ["Input and output: display-referred RGB in [0, 1] (not scene-linear),",
            f"encoded in {space}. Apply it to the base image, or to images encoded the same way."]
