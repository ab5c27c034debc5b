"""Photographic adjustments ("the look"): global functions of the colour, so they live in the LUT.

A global adjustment maps an input colour to an output colour, whatever the pixel's place, so it composes with the
student's LUT on the lattice: the engine applies `apply_look` to the G³ sampled LUT values (cost independent of
the image, live at any grid size) and the exported .cube carries the photographer's whole look. The detail layer
is added after (core.fusion).

All functions take RGB ...×3 in [0, 1], sRGB-encoded (what the LUT outputs), and return the same shape in [0, 1].
Sliders are Lightroom-like: exposure in EV (−5..+5), every other one −100..+100 with 0 = no change. The fixed
order of `apply_look` (each step skipped when its sliders are 0, so a neutral Look is a bit-identical no-op):

1. white balance (temperature, tint) — Bradford chromatic adaptation in linear sRGB;
2. exposure — a gain of 2^EV in linear light (sRGB EOTF, IEC 61966-2-1);
3. tone, per channel on the encoded values, in this order: contrast, highlights, shadows, whites, blacks;
4. saturation, then vibrance — scaling the distance from the Rec. 709 luma;
5. a final clip to [0, 1].

White balance first and exposure second work on scene-linear light as a camera would; the tone curves work on
encoded values, where equal steps are roughly equal perceived steps (as Lightroom's tone sliders); saturation
comes last so that it acts on the final colours.

Tone curves (x = encoded value of one channel, s = slider / 100; every curve is monotone for |s| ≤ 1 and the
tests check it):
* contrast:   x + s·(S(x) − x), S(x) = 3x² − 2x³ (smoothstep): an S-curve pivoting at 0.5, ends fixed;
* highlights: x + s·A·B(x),    B(x) = x³(1−x)² / max (peak 1 at x = 0.6), A = 0.25: moves the bright tones
  most and leaves 0 and 1 fixed;
* shadows:    x + s·A·B(1−x)   (the mirror: peak at x = 0.4);
* whites:     x + s·W·x⁴,      W = 0.25: moves the white point (values above 1 clip, as Lightroom's whites clip);
* blacks:     x + s·W·(1−x)⁴:  moves the black point (negative crushes the blacks).

White balance mapping: the slider says how much bluer (temperature > 0, the image is warmed) or greener
(tint > 0, the image turns magenta) the light was than D65. The assumed scene white is the CIE daylight locus
point at 10⁶ / (10⁶/6504 − 0.8·temperature) K (so ±100 spans about 4300 K .. 13600 K, ±80 mired), shifted so that
temperature 0 is exactly D65, then moved by Δv = 0.0002·tint in the CIE 1960 (u, v) plane (±0.02, the
green-magenta axis). The Bradford transform (Lam 1985; the chromatic adaptation of ICC.1:2010 Annex E), via
colour-science, adapts that white to D65, as matrices M = RGB←XYZ · CAT · XYZ←RGB on linear sRGB.

Sources: sRGB EOTF, IEC 61966-2-1; saturation is the ASC CDL 1.2 saturation operator (Rec. 709 luma + s·(rgb −
luma)); the slider names, ranges and tone regions follow Adobe Lightroom's Basic panel, whose formulas are not
published: the curves above are ours (documented, monotone); vibrance (saturation weighted by 1 − (max − min))
is ours too.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from lutfuse.core import colour
from lutfuse.core.errors import LUTFuseError

LUMA = np.array(colour.LUMA)     # Rec. 709, float64 here
TONE_AMPLITUDE = 0.25       # A: highlights / shadows peak shift at ±100
POINT_AMPLITUDE = 0.25      # W: whites / blacks end-point shift at ±100
MIRED_PER_UNIT = 0.8        # temperature slider -> mired shift of the assumed white
TINT_PER_UNIT = 0.0002      # tint slider -> Δv (CIE 1960 UCS) of the assumed white
D65_CCT = 6504.0
EXPOSURE_RANGE = 5.0
SLIDER_RANGE = 100.0
_BUMP_PEAK = 0.6 ** 3 * 0.4 ** 2


@dataclass(frozen=True)
class Look:
    """A set of slider values; all 0 = neutral (no change)."""

    exposure: float = 0.0     # EV, -5..+5
    contrast: float = 0.0     # -100..+100, and likewise:
    highlights: float = 0.0
    shadows: float = 0.0
    whites: float = 0.0
    blacks: float = 0.0
    saturation: float = 0.0
    vibrance: float = 0.0
    temperature: float = 0.0
    tint: float = 0.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            limit = EXPOSURE_RANGE if f.name == "exposure" else SLIDER_RANGE
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or abs(v) > limit:
                raise LUTFuseError(f"look {f.name} {v!r}: must be a number between {-limit:g} and {limit:g}")

    def is_neutral(self) -> bool:
        """True when every slider is 0 (apply_look then returns its input untouched)."""
        return all(getattr(self, f.name) == 0 for f in dataclasses.fields(self))

    def as_dict(self) -> dict[str, float]:
        """{field: value} of the sliders."""
        return {f.name: float(getattr(self, f.name)) for f in dataclasses.fields(self)}


FIELDS = tuple(f.name for f in dataclasses.fields(Look))


def look_from(mapping: Any) -> Look | None:
    """A Look from any object or dict carrying some of the field names (e.g. argparse's namespace, a preset);
    None when every value is 0 or absent."""
    get = mapping.get if isinstance(mapping, dict) else (lambda k, d=None: getattr(mapping, k, d))
    values = {k: float(get(k) or 0.0) for k in FIELDS}
    look = Look(**values)
    return None if look.is_neutral() else look


# ---------------------------------------------------------------- transfer functions

def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """sRGB EOTF (IEC 61966-2-1): encoded [0,1] -> linear [0,1]."""
    return np.where(x <= 0.04045, x / 12.92, ((np.maximum(x, 0.04045) + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """Inverse sRGB EOTF: linear ≥ 0 -> encoded (values above 1 stay above 1; clip after)."""
    x = np.maximum(x, 0.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.maximum(x, 0.0031308) ** (1 / 2.4) - 0.055)


def luma(rgb: np.ndarray) -> np.ndarray:
    """Rec. 709 luma of ...×3 -> ... ."""
    return rgb @ LUMA


# ---------------------------------------------------------------- the adjustments (numpy, float64)

def exposure(rgb: np.ndarray, ev: float) -> np.ndarray:
    """Multiply linear light by 2^ev (sRGB EOTF, gain, inverse EOTF), clipped to [0,1]."""
    return np.clip(linear_to_srgb(srgb_to_linear(rgb) * 2.0 ** ev), 0.0, 1.0)


def contrast(rgb: np.ndarray, amount: float) -> np.ndarray:
    """S-curve about 0.5: x + s·(3x² − 2x³ − x), s = amount/100 (module docstring)."""
    s = amount / SLIDER_RANGE
    return rgb + s * (rgb * rgb * (3.0 - 2.0 * rgb) - rgb)


def _bump(x: np.ndarray) -> np.ndarray:
    """x³(1−x)², peak 1 at x = 0.6, 0 at both ends."""
    x = np.clip(x, 0.0, 1.0)
    return x ** 3 * (1.0 - x) ** 2 / _BUMP_PEAK


def highlights(rgb: np.ndarray, amount: float) -> np.ndarray:
    """Brighten (> 0) or recover (< 0) the bright tones: x + s·A·B(x)."""
    return rgb + (amount / SLIDER_RANGE) * TONE_AMPLITUDE * _bump(rgb)


def shadows(rgb: np.ndarray, amount: float) -> np.ndarray:
    """Lift (> 0) or deepen (< 0) the dark tones: x + s·A·B(1−x)."""
    return rgb + (amount / SLIDER_RANGE) * TONE_AMPLITUDE * _bump(1.0 - rgb)


def whites(rgb: np.ndarray, amount: float) -> np.ndarray:
    """Move the white point: x + s·W·x⁴, clipped to [0,1]."""
    return np.clip(rgb + (amount / SLIDER_RANGE) * POINT_AMPLITUDE * np.clip(rgb, 0, 1) ** 4, 0.0, 1.0)


def blacks(rgb: np.ndarray, amount: float) -> np.ndarray:
    """Move the black point: x + s·W·(1−x)⁴, clipped to [0,1]."""
    return np.clip(rgb + (amount / SLIDER_RANGE) * POINT_AMPLITUDE * (1.0 - np.clip(rgb, 0, 1)) ** 4, 0.0, 1.0)


def saturation(rgb: np.ndarray, amount: float) -> np.ndarray:
    """Scale the distance from the luma: Y + (rgb − Y)·(1 + s); −100 gives grey (R = G = B = Y)."""
    y = luma(rgb)[..., None]
    return np.clip(y + (rgb - y) * (1.0 + amount / SLIDER_RANGE), 0.0, 1.0)


def vibrance(rgb: np.ndarray, amount: float) -> np.ndarray:
    """Saturation weighted towards muted colours: Y + (rgb − Y)·(1 + s·(1 − m)), m = max − min of R, G, B
    (0 for grey, 1 for a pure primary), so already-vivid colours move little and none clips first."""
    y = luma(rgb)[..., None]
    m = (rgb.max(axis=-1) - rgb.min(axis=-1))[..., None]
    return np.clip(y + (rgb - y) * (1.0 + (amount / SLIDER_RANGE) * (1.0 - np.clip(m, 0, 1))), 0.0, 1.0)


@lru_cache(maxsize=64)
def white_balance_matrix(temperature: float, tint: float) -> np.ndarray:
    """3×3 matrix on linear sRGB (row vectors: rgb @ M.T) adapting the assumed white to D65 (module docstring)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import colour
    d65 = colour.CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"]["D65"]
    mired = 1e6 / D65_CCT - MIRED_PER_UNIT * temperature
    locus = colour.temperature.CCT_to_xy_CIE_D(np.array([1e6 / mired, D65_CCT]))
    xy = d65 + (locus[0] - locus[1])                 # exactly D65 at temperature 0
    uv = colour.xy_to_UCS_uv(xy) + np.array([0.0, TINT_PER_UNIT * tint])
    src = colour.xy_to_XYZ(colour.UCS_uv_to_xy(uv))
    dst = colour.xy_to_XYZ(d65)
    cat = colour.adaptation.matrix_chromatic_adaptation_VonKries(src, dst, transform="Bradford")
    space = colour.RGB_COLOURSPACES["sRGB"]
    return space.matrix_XYZ_to_RGB @ cat @ space.matrix_RGB_to_XYZ


def white_balance(rgb: np.ndarray, temperature: float, tint: float) -> np.ndarray:
    """Bradford white balance on linear sRGB (module docstring), clipped to [0,1]."""
    m = white_balance_matrix(float(temperature), float(tint))
    lin = srgb_to_linear(rgb) @ m.T
    return np.clip(linear_to_srgb(lin), 0.0, 1.0)


def _apply(rgb: np.ndarray, look: Look) -> np.ndarray:
    """The fixed order of the module docstring on float64 numpy."""
    x = np.clip(rgb, 0.0, 1.0)
    if look.temperature or look.tint:
        x = white_balance(x, look.temperature, look.tint)
    if look.exposure:
        x = exposure(x, look.exposure)
    for name, fn in (("contrast", contrast), ("highlights", highlights), ("shadows", shadows),
                     ("whites", whites), ("blacks", blacks)):
        amount = getattr(look, name)
        if amount:
            x = np.clip(fn(x, amount), 0.0, 1.0)
    if look.saturation:
        x = saturation(x, look.saturation)
    if look.vibrance:
        x = vibrance(x, look.vibrance)
    return np.clip(x, 0.0, 1.0)


def apply_look(rgb: Any, look: Look | None) -> Any:
    """Apply a Look to colours ...×3 in [0,1] (numpy array or torch tensor) -> same shape, type, dtype and device,
    in [0,1]. None or a neutral Look returns `rgb` itself, untouched (bit-identical)."""
    if look is None or look.is_neutral():
        return rgb
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        torch = None  # type: ignore[assignment]
    if torch is not None and isinstance(rgb, torch.Tensor):
        out = _apply(rgb.detach().cpu().double().numpy(), look)
        return torch.from_numpy(out).to(device=rgb.device, dtype=rgb.dtype)
    arr = np.asarray(rgb)
    if arr.shape[-1:] != (3,):
        raise LUTFuseError(f"apply_look: expected colours ...×3, got shape {arr.shape}")
    return _apply(arr.astype(np.float64), look).astype(arr.dtype if arr.dtype.kind == "f" else np.float32)


# ---------------------------------------------------------------- auto

AUTO_SIDE = 256           # the bracket is judged on a copy with this longest side
AUTO_DAMPING = 0.5        # only half of each measured tone correction is applied: Auto stays conservative
AUTO_WB_DAMPING = 0.3     # grey-world is wrong for sunsets and forests: only 30 % of its white balance
AUTO_MAX_EV = 0.7
AUTO_MAX_SLIDER = 25.0
AUTO_MAX_WB = 10.0
AUTO_GREY_SPREAD = 0.15   # "near grey": (max − min) / max of the encoded R, G, B below this


def auto_look(images: np.ndarray) -> Look:
    """A conservative Look from a bracket's statistics (N×H×W×3 frames in [0,1], darkest first).

    The frames are judged through a small Mertens fusion (core.classical, at AUTO_SIDE px), a stand-in for the
    fused result: exposure puts its median luminance at mid-grey (18 % linear), whites / blacks bring its 99.5th /
    0.5th luma percentiles towards 0.98 / 0.01, and the white balance is grey-world over its well-exposed,
    near-grey pixels (luma 0.1..0.9, (max − min)/max < 0.15, so foliage and sky do not count; none when fewer than
    2 % qualify): the temperature and tint whose assumed white is nearest (CIE 1960 uv) to their mean colour.
    Tone corrections are halved (AUTO_DAMPING), the white balance taken at 30 % (AUTO_WB_DAMPING: grey-world
    would neutralise a sunset), all bounded (±0.7 EV, ±25, white balance ±10); a balanced bracket gives about 0."""
    import cv2

    from lutfuse.core.classical import mertens

    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[-1] != 3 or len(images) < 1:
        raise LUTFuseError(f"auto look: expected N×H×W×3 frames, got shape {images.shape}")
    h, w = images.shape[1:3]
    f = min(1.0, AUTO_SIDE / max(h, w))
    small = np.stack([cv2.resize(im, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
                      for im in images]) if f < 1 else images
    proxy = (mertens(small) if len(small) > 1 else small[0]).astype(np.float64)
    lin = srgb_to_linear(proxy)
    y_lin = luma(lin)
    ev = float(np.clip(AUTO_DAMPING * np.log2(0.18 / max(float(np.median(y_lin)), 1e-4)), -AUTO_MAX_EV, AUTO_MAX_EV))
    y = luma(proxy)
    hi, lo = float(np.percentile(y, 99.5)), float(np.percentile(y, 0.5))
    cap = AUTO_MAX_SLIDER
    wh = float(np.clip(AUTO_DAMPING * max(0.0, 0.98 - hi) / POINT_AMPLITUDE * SLIDER_RANGE, 0, cap))
    bl = float(np.clip(-AUTO_DAMPING * max(0.0, lo - 0.01) / POINT_AMPLITUDE * SLIDER_RANGE, -cap, 0))
    spread = (proxy.max(axis=-1) - proxy.min(axis=-1)) / np.maximum(proxy.max(axis=-1), 1e-6)
    near_grey = (y > 0.1) & (y < 0.9) & (spread < AUTO_GREY_SPREAD)
    # too few near-grey pixels (a forest, a sunset): no evidence of a cast, leave the white balance alone
    temp, tint = _grey_world(lin[near_grey]) if near_grey.mean() > 0.02 else (0.0, 0.0)
    def r(v: float) -> float:
        return round(float(v), 1)  # slider precision

    return Look(exposure=round(ev, 2), whites=r(wh), blacks=r(bl),
                temperature=r(np.clip(AUTO_WB_DAMPING * temp, -AUTO_MAX_WB, AUTO_MAX_WB)),
                tint=r(np.clip(AUTO_WB_DAMPING * tint, -AUTO_MAX_WB, AUTO_MAX_WB)))


def _grey_world(lin: np.ndarray) -> tuple[float, float]:
    """(temperature, tint) whose assumed white is nearest in CIE 1960 uv to the mean of linear sRGB pixels P×3."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import colour
    if len(lin) < 16:
        return 0.0, 0.0
    mean = lin.mean(axis=0)
    if mean.min() <= 1e-6:
        return 0.0, 0.0
    space = colour.RGB_COLOURSPACES["sRGB"]
    xyz = colour.RGB_to_XYZ(mean, space, illuminant=space.whitepoint)
    uv = colour.xy_to_UCS_uv(colour.XYZ_to_xy(xyz))
    d65 = colour.CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"]["D65"]
    temps = np.linspace(-100, 100, 201)
    mireds = 1e6 / D65_CCT - MIRED_PER_UNIT * temps
    locus = colour.temperature.CCT_to_xy_CIE_D(1e6 / mireds) - colour.temperature.CCT_to_xy_CIE_D(D65_CCT) + d65
    luv = colour.xy_to_UCS_uv(locus)
    i = int(np.argmin(np.abs(luv[:, 0] - uv[0])))
    tint = (uv[1] - luv[i, 1]) / TINT_PER_UNIT
    return float(temps[i]), float(np.clip(tint, -100, 100))
