"""Deghosting: find what moved between each frame and the reference frame (the middle one unless the user picks
another, `Bracket.reference_index`), and make every fusion path take that content from the reference.

After registration, each frame is mapped to the reference's exposure (per-channel histogram specification over
pixels valid in both, `core.registration.tone_curve`, plus a smooth local correction of what that one curve leaves
per tile and band of reference brightness, `_LocalCorrection`: a scene under mixed lighting, such as a night
facade lit by several sources, is not one curve); the difference is normalised by what a static scene shows
(the difference's own robust spread per band of brightness, plus an allowance at edges) and averaged locally
(a χ²-like statistic, so faint but extended movers are found); where it exceeds the strength's threshold, motion is
marked. A difference that keeps the reference's fine structure (locally correlated band-pass detail) is a veil over
content that stayed put, glare from a lamp or light on a surface, and is not counted. Pixels clipped or crushed in
the frame cannot be compared, but where the reference, mapped to the frame's exposure, predicts a well-exposed value
there, that they are censored at all is counted as motion (a white shirt clipped in the bright frame in front of a
mid-grey wall), and so, the other way round, are reference pixels clipped or crushed where the frame predicts a
well-exposed value (dark leaves in the dark frame across a sky the reference clips). The marks are consolidated
morphologically (opening, small components dropped, hysteresis into neighbours with 0.7 of the evidence, closing,
dilation) and feathered. In a frame's ghost pixels its content is replaced by
the reference re-rendered at the frame's exposure (the curves and local correction the other way, `_remap`, so
it matches its surroundings; feathered), so the mean of the frames (the LUT's base image),
the detail layer, Mertens and the HQ networks' inputs all hold the reference's content there and no double image,
while each exposure keeps its share of the fusion. This is the reference-based
approach of Lightroom's HDR merge and of Granados et al., "Automatic noise modeling for ghost-free HDR
reconstruction" (2013), in its simplest form.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from lutfuse.core.colour import luma
from lutfuse.core.errors import LUTFuseError
from lutfuse.core.registration import apply_curve, exposure_curves, tone_curve

# Per strength: (threshold on the local mean of the squared noise-normalised difference, smallest local mean
# absolute difference that counts). docs/studies/deghost.py measures both on pasted objects and static brackets.
STRENGTHS = {"off": (math.inf, math.inf), "low": (14.0, 0.035), "medium": (8.0, 0.025), "high": (5.0, 0.015)}
# The CLI's, batch's and editor's default. Low costs 0.0005 (Mertens) / 0.0006 (LUT + detail) mean MEF-SSIM on the
# 36 validation brackets (`python -m lutfuse.docs.studies.registration static DATA`: 0.00046 / 0.00055; medium
# 0.0010 / 0.0011, high 0.0016 / 0.0019), all of it on the 28 real ones and none on the 8 rendered from one radiance
# map, which no strength marks. Most of it is real movers: MarketMires2's people and laces, Zurich's and Seq_76's
# water and clouds, FORTH1's lens flare; the rest deepfuse/Seq_71's translucent cup and hdrps/Flamingo k = 3 (0.1 %).
# Earlier steps, low's cost before -> after: the clipped/crushed evidence +0.0001, all on MarketMires2; the local
# tone correction 0.00039 / 0.00047 -> 0.00043 / 0.00051; the veil test -> 0.00041 / 0.00049; the same evidence
# with the reference clipped or crushed -> 0.00042 / 0.00050; hysteresis -> 0.00046 / 0.00055 (MarketMires2 k = 3,
# Zurich, Seq_76). The brackets it marks nowhere come out bit-identical to off, while it catches 95 % of moving
# objects pasted into them (`python -m lutfuse.docs.studies.deghost DATA`; medium 97 %; with --rounds 3, 124
# objects: low 95 %, medium 98 %, high 98 %, leaving a double image at 4 / 5 / 5 % of them, from 7 / 6 / 6 % before
# the reverse clipped/crushed evidence and hysteresis (in LUT + detail, --fusion lut, 4.8 % at low), and marking
# 0.68 / 1.26 / 2.40 % away from them, from 0.51 / 1.03 / 1.99 %; with one global curve per channel 87 % and
# 91 / 97 / 98 %, 9 / 7 / 6 %).
# The library's load_bracket and register_stack keep "off" as their default, so a caller gets exactly its frames
# unless it asks.
DEFAULT = "low"
DETECT_PIXELS = 1_000_000   # detection runs on a copy of at most this many pixels
_LOW, _HIGH = 0.04, 0.96    # "well exposed" for detection
_BINS = 8                   # the static residual's spread is measured per band of reference brightness
_EDGE_PX = 0.5              # residual misregistration allowed at edges (px): differences there scale with gradient
_CENSOR_MARGIN = 0.1        # how far inside (_LOW, _HIGH) the reference must predict a clipped/crushed frame pixel,
_CENSOR_Z = 3.0             # and at least this many robust spreads of the reference -> frame mapping's residual
_CENSOR_LEVELS = 32         # reference levels over which the frame's clipped (crushed) share is counted
MIN_AREA = 2e-4             # ghost components smaller than this fraction of the image are dropped
_TILES = 4                  # local tone correction: tile centres along the short side (each fitted over a window
_TILE_BANDS = 6             # twice the spacing), bands of reference brightness per tile,
_TILE_MIN = 50              # and the fewest usable pixels (sampled: 1 in 4) that fit a tile's band (else the global
                            # curve stands)
_RESIDUAL_BINS, _RESIDUAL_RANGE = 256, 0.25   # the tile medians come from histograms of the residual over ±range
_VEIL_NCC = 0.7             # a difference that keeps the reference's fine structure (local correlation of the
_VEIL_SIGMA = 2.0           # band-pass, detail finer than this σ (px), over a Gaussian window of σ _VEIL_WINDOW px,
_VEIL_WINDOW = 3.0          # above _VEIL_NCC) where there is structure (band-pass variance over _VEIL_STRUCTURE
_VEIL_STRUCTURE = 2.0       # × the difference's spread squared) is a veil (glare, translucency), not motion
_GROW = 0.7                 # hysteresis: a kept mark grows into neighbours over this fraction of both thresholds,
_GROW_PX = 3                # by at most this many px (of the detection copy)


def _grid_weights(n: int, length: int, start: int, stop: int) -> np.ndarray:
    """Bilinear weights, (stop - start)×n float32, of the pixels start..stop-1 along an axis `length` px long between
    n tile centres at (i + 0.5)·length/n px (constant beyond the outer ones; as cv2.resize's INTER_LINEAR)."""
    pos = np.clip((np.arange(start, stop, dtype=np.float32) + 0.5) * n / length - 0.5, 0.0, n - 1)
    i = np.minimum(pos.astype(np.int32), max(n - 2, 0))
    f = pos - i
    weights = np.zeros((stop - start, n), np.float32)
    rows = np.arange(stop - start)
    weights[rows, i] += 1.0 - f
    weights[rows, np.minimum(i + 1, n - 1)] += f
    return weights


class _LocalCorrection:
    """What one tone curve per channel leaves: a smooth correction over position and reference brightness.

    One curve per channel cannot map a scene lit by several sources (a night facade under sodium and LED light:
    surfaces of one reference value sit at different values in a frame 4 stops away), and its misfit inflated the
    static spread that normalises the difference, so movers there stayed under the threshold, and the reference
    re-rendered by it did not match its surroundings. Per tile (_TILES centres along the short side, each fitted over
    a window twice the spacing, CLAHE-style) and band of reference brightness (_TILE_BANDS of equal pixel count over
    the image), the correction is the median of the global curve's residual; between tile centres it is blended
    bilinearly, between band centres linearly. Medians, and windows much larger than a mover (a pasted object of
    the deghost study covers at most about a sixth of one), keep a mover from fitting itself away: it biases a tile's
    band only where it holds most of that band's pixels, and the band is of the reference's value (the background it
    covers), not its own. A tile's band with under _TILE_MIN pixels keeps the global curve (correction 0).

    residual: H×W float32 (target - globally mapped source); level: H×W float32 [0,1] (the reference channel's
    value, which indexes the bands); mask: H×W bool, the pixels that fit the correction."""

    def __init__(self, residual: np.ndarray, level: np.ndarray, mask: np.ndarray) -> None:
        h, w = level.shape
        self.shape = (h, w)
        step = min(h, w) / _TILES
        ny, nx = self.ny, self.nx = max(1, round(h / step)), max(1, round(w / step))
        lv = level[mask]
        q = np.quantile(lv[:: max(1, lv.size // 65536)], np.linspace(0.0, 1.0, 2 * _TILE_BANDS + 1))
        edges = q[::2]
        centres = np.maximum.accumulate(q[1::2].astype(np.float32) + np.arange(_TILE_BANDS) * 1e-6)
        # a level's band position through a 1024-level table (apply_curve's index arithmetic: np.interp is 8× slower)
        x = np.linspace(0.0, 1.0, 1024, dtype=np.float32)
        self.band_table = (x, np.interp(x, centres, np.arange(_TILE_BANDS)).astype(np.float32))
        # the medians from one histogram of (cell, band, residual bin) over cells half a tile spacing wide, summed
        # over each tile's window of 4×4 cells (an integral image over the cells), not a median per tile and band;
        # of every other pixel of every other row: neighbours are alike (the inputs are blurred), and a median needs
        # far fewer samples than a tile has
        sub = mask[::2, ::2]
        ys, xs = np.nonzero(sub)
        cy, cx = np.minimum(2 * ys * (2 * ny) // h, 2 * ny - 1), np.minimum(2 * xs * (2 * nx) // w, 2 * nx - 1)
        band = np.clip(np.searchsorted(edges, level[::2, ::2][sub], side="right") - 1, 0, _TILE_BANDS - 1)
        nb = _RESIDUAL_BINS
        rb = np.clip(((residual[::2, ::2][sub] / (2 * _RESIDUAL_RANGE) + 0.5) * nb).astype(np.int32), 0, nb - 1)
        key = ((cy * (2 * nx) + cx) * _TILE_BANDS + band) * nb + rb
        hist = np.bincount(key, minlength=4 * ny * nx * _TILE_BANDS * nb).reshape(2 * ny, 2 * nx, _TILE_BANDS, nb)
        integral = np.zeros((2 * ny + 1, 2 * nx + 1, _TILE_BANDS, nb), np.int64)
        integral[1:, 1:] = hist.cumsum(0).cumsum(1)
        i0, i1 = np.clip(2 * np.arange(ny) - 1, 0, 2 * ny), np.clip(2 * np.arange(ny) + 3, 0, 2 * ny)
        j0, j1 = np.clip(2 * np.arange(nx) - 1, 0, 2 * nx), np.clip(2 * np.arange(nx) + 3, 0, 2 * nx)
        window = (integral[i1][:, j1] - integral[i0][:, j1] - integral[i1][:, j0] + integral[i0][:, j0]
                  ).astype(np.float64)                          # ny × nx × bands × residual bins
        cum = window.cumsum(-1)
        total = cum[..., -1]
        k = np.minimum((cum < (total / 2)[..., None]).sum(-1), nb - 1)[..., None]
        inside = np.take_along_axis(window, k, -1)[..., 0]
        below = np.take_along_axis(cum, k, -1)[..., 0] - inside
        median = ((k[..., 0] + np.clip((total / 2 - below) / np.maximum(inside, 1.0), 0.0, 1.0)) / nb - 0.5
                  ) * (2 * _RESIDUAL_RANGE)
        self.offsets = np.where(total >= _TILE_MIN, median, 0.0).astype(np.float32)   # ny × nx × bands

    def __call__(self, level: np.ndarray, box: tuple[int, int, int, int] | None = None,
                 full: tuple[int, int] | None = None) -> np.ndarray:
        """The correction at `level` (float32 [0,1]): of the whole image it was fitted on, or of the pixels
        box = (y0, y1, x0, x1) of an image `full` = (h, w) px (the same scene at another size) -> float32 like
        `level`."""
        h, w = full or self.shape
        y0, y1, x0, x1 = box or (0, h, 0, w)
        if (y0, y1, x0, x1) == (0, h, 0, w):
            maps = np.asarray(cv2.resize(self.offsets, (w, h), interpolation=cv2.INTER_LINEAR)).reshape(h, w, -1)
        else:
            wy, wx = _grid_weights(self.ny, h, y0, y1), _grid_weights(self.nx, w, x0, x1)
            maps = np.einsum("yi,ijb,xj->yxb", wy, self.offsets, wx, optimize=True)
        pos = apply_curve(level, self.band_table)
        k = np.minimum(pos.astype(np.int32), _TILE_BANDS - 2)[..., None]
        lo = np.take_along_axis(maps, k, -1)[..., 0]
        hi = np.take_along_axis(maps, k + 1, -1)[..., 0]
        return lo + (pos - k[..., 0]) * (hi - lo)


def _remap(source: np.ndarray, target: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int],
           max_side: int = 512) -> np.ndarray:
    """`source` (H×W×3 float32 [0,1], the reference) re-rendered at `target`'s exposure in box = (y0, y1, x0, x1):
    `core.registration.exposure_curves` plus their `_LocalCorrection` (indexed by the source's value), both estimated
    over `mask` (H×W bool; the curves alone, unmasked, where it keeps under 256 px) on copies at most max_side px wide
    -> float32 (y1-y0)×(x1-x0)×3 in [0,1]."""
    h, w = source.shape[:2]
    curves, s, t, m = exposure_curves(source, target, mask, max_side, min_pixels=256)
    y0, y1, x0, x1 = box
    out = np.empty((y1 - y0, x1 - x0, 3), np.float32)
    for c in range(3):
        out[..., c] = apply_curve(source[y0:y1, x0:x1, c], curves[c])
        if m is not None:
            local = _LocalCorrection(t[..., c] - apply_curve(s[..., c], curves[c]), s[..., c], m)
            # in strips: the correction holds one map per band (at 24 MP, 6 × 4 bytes × the box's pixels)
            for r0 in range(y0, y1, 256):
                r1 = min(y1, r0 + 256)
                out[r0 - y0:r1 - y0, :, c] += local(source[r0:r1, x0:x1, c], (r0, r1, x0, x1), (h, w))
    return np.clip(out, 0.0, 1.0)


def check_strength(strength: str) -> str:
    """The strength as one of STRENGTHS; LUTFuseError otherwise."""
    if strength not in STRENGTHS:
        raise LUTFuseError(f"deghost strength {strength!r}: use one of {', '.join(STRENGTHS)}")
    return strength


def _small(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return image if image.shape[1::-1] == size else cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _spread(diff: np.ndarray, level: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Robust standard deviation (1.4826 × MAD) of `diff` over `mask`, per band of `level` (_BINS bands of equal
    pixel count) -> H×W float32 of each pixel's band's spread (the global one where a band has few pixels)."""
    d, v = diff[mask], level[mask]
    glob = 1.4826 * float(np.median(np.abs(d - np.median(d)))) + 1e-4
    edges = np.quantile(v, np.linspace(0.0, 1.0, _BINS + 1))
    edges[0], edges[-1] = -np.inf, np.inf
    sig = np.full(_BINS, glob, np.float32)
    band = np.clip(np.searchsorted(edges, v, side="right") - 1, 0, _BINS - 1)
    for b in range(_BINS):
        db = d[band == b]
        if db.size >= 200:
            sig[b] = 1.4826 * float(np.median(np.abs(db - np.median(db)))) + 1e-4
    every = np.clip(np.searchsorted(edges, level, side="right") - 1, 0, _BINS - 1)
    return sig[every]


def _censored_wrongly(frame_c: np.ndarray, ref_c: np.ndarray, usable: np.ndarray, valid: np.ndarray,
                      curve: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Pixels where one channel of the frame is clipped (≥ _HIGH) or crushed (≤ _LOW) although the reference's
    value there, mapped onto the frame's exposure, predicts a well-exposed value -> H×W bool. These pixels are left
    out of the difference (their true value is unknown), but their being censored at all is motion evidence: a
    mover clipped or crushed in the frame in front of well-exposed background.

    frame_c, ref_c: H×W float32 [0,1], one channel of the (blurred, downscaled) frame and reference; usable: H×W
    bool, the pixels well exposed in both (where the reference -> frame curve is fitted); valid: H×W bool, the
    frame's valid pixels. `ghost_mask` also calls it with frame and reference swapped (the reference censored where
    the frame predicts a well-exposed value). curve: the reference -> frame curve, `tone_curve(ref_c, frame_c,
    usable, usable)`, where the caller has it (computed here otherwise). The prediction must lie inside (_LOW,
    _HIGH) by _CENSOR_MARGIN and by _CENSOR_Z robust spreads of the mapping's own residual (frame - prediction over
    `usable`, per band of reference brightness, as `_spread`): where one curve per channel fits the scene loosely
    (differently lit surfaces of one hue: a static Flamingo bracket's orange facade, clipped in red only, was
    predicted 0.85), a clipped value is no surprise. The prediction is monotone and flattens beyond the usable
    range, so a reference value brighter (darker) than all usable ones predicts about _HIGH (_LOW): background that
    is clipped (crushed) in the frame anyway is never evidence, nor is a pixel at a reference level
    (1/_CENSOR_LEVELS wide) where most well-exposed reference pixels are clipped (crushed) in the frame."""
    well = valid & (ref_c > _LOW) & (ref_c < _HIGH)
    clipped, crushed = well & (frame_c >= _HIGH), well & (frame_c <= _LOW)
    if not clipped.any() and not crushed.any():
        return clipped
    # where most of the pixels at a reference level are clipped (crushed) in the frame, the few usable ones that
    # fix the curve there are a biased sample (movers among them pull it down: a pasted object in a bright frame
    # whose walls are clipped made all of them evidence), and clipping there is what the scene does anyway
    level = np.minimum((ref_c * _CENSOR_LEVELS).astype(np.int32), _CENSOR_LEVELS - 1)
    seen = np.bincount(level[well], minlength=_CENSOR_LEVELS) + 1
    clipped &= (np.bincount(level[clipped], minlength=_CENSOR_LEVELS) / seen < 0.5)[level]
    crushed &= (np.bincount(level[crushed], minlength=_CENSOR_LEVELS) / seen < 0.5)[level]
    if not clipped.any() and not crushed.any():
        return clipped
    # the cheap tests first: the curve and the residual's spread cost about as much as the rest of ghost_mask
    predicted = apply_curve(ref_c, tone_curve(ref_c, frame_c, usable, usable) if curve is None else curve)
    clipped &= predicted < _HIGH - _CENSOR_MARGIN
    crushed &= predicted > _LOW + _CENSOR_MARGIN
    if not clipped.any() and not crushed.any():
        return clipped
    margin = _CENSOR_Z * _spread(frame_c - predicted, ref_c, usable)
    return (clipped & (predicted < _HIGH - margin)) | (crushed & (predicted > _LOW + margin))


def ghost_mask(frame: np.ndarray, reference: np.ndarray, strength: str = "medium",
               frame_valid: np.ndarray | None = None) -> np.ndarray:
    """Where `frame` shows content that differs from `reference` (both H×W×3 float32 [0,1], registered) once
    exposure is equalised -> H×W float32 in [0,1] (1 = moved; feathered edges). `frame_valid` (H×W bool) limits
    the comparison to the frame's valid pixels.

    Per colour channel the frame is mapped onto the reference's exposure (histogram specification over pixels well
    exposed in both, plus `_LocalCorrection` of its residual per tile and band of reference brightness) and the
    difference is divided by what a static scene shows there: the spread of the
    difference itself over the image (robust, per band of reference brightness: noise, quantisation and tone-curve
    error as they are in this bracket, at this exposure gap) and, at edges, the gradient times _EDGE_PX (residual
    misregistration and resampling). The local mean (Gaussian, σ 2 px) of the squared normalised differences over
    the channels, a χ²-like statistic that finds faint but extended differences, marks motion where it exceeds
    the strength's threshold and the local mean absolute difference is large enough to matter; where the frame's
    band-pass detail (finer than _VEIL_SIGMA) correlates with the reference's above _VEIL_NCC and the reference has
    such detail, the difference is a veil (glare) over static content and counts nothing. A pixel clipped or
    crushed in the frame where the reference predicts a well-exposed value, or in the reference where the frame
    predicts one (`_censored_wrongly` both ways), counts as twice the threshold and at least _CENSOR_MARGIN of
    difference in those local means. The marks are consolidated morphologically (opening, small parts dropped,
    growth into neighbours over _GROW of both thresholds by up to _GROW_PX px, closing to join an object's parts,
    dilation to cover soft edges and shadows) and feathered."""
    z_threshold, min_diff = STRENGTHS[check_strength(strength)]
    h, w = reference.shape[:2]
    if not math.isfinite(z_threshold):
        return np.zeros((h, w), np.float32)
    f = min(1.0, math.sqrt(DETECT_PIXELS / (h * w)))
    size = (max(1, round(w * f)), max(1, round(h * f)))
    small_f = cv2.GaussianBlur(_small(frame, size), (0, 0), 1.0)
    small_r = cv2.GaussianBlur(_small(reference, size), (0, 0), 1.0)
    y_f, y_r = luma(small_f), luma(small_r)
    valid = np.ones(y_f.shape, bool) if frame_valid is None else (
        cv2.resize(frame_valid.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0)
    both = (y_f > _LOW) & (y_f < _HIGH) & (y_r > _LOW) & (y_r < _HIGH) & valid
    if both.sum() < 256:
        return np.zeros((h, w), np.float32)
    chi = np.zeros(y_f.shape, np.float32)
    absdiff = np.zeros(y_f.shape, np.float32)
    censored = np.zeros(y_f.shape, bool)
    cov, var_f, var_r, noise = (np.zeros(y_f.shape, np.float32) for _ in range(4))
    for c in range(3):
        ref_c, frame_c = small_r[..., c], small_f[..., c]
        # a channel clipped or crushed in either frame (a saturated red is, long before luma is) says nothing
        usable = both & (ref_c > _LOW) & (ref_c < _HIGH) & (frame_c > _LOW) & (frame_c < _HIGH)
        if usable.sum() < 256:
            continue
        censored |= _censored_wrongly(frame_c, ref_c, usable, valid)
        curve = tone_curve(frame_c, ref_c, usable, usable)
        # and the other way round: a mover in the frame in front of background that the reference clips or crushes
        # (dark foliage in the dark frame across a sky the reference clips), where no difference can be measured
        # either; in the deghost study it was what 6 of the 9 double images left at low had unmarked (5.6 % of
        # objects left one, from 7.3 %)
        censored |= _censored_wrongly(ref_c, frame_c, usable, valid, curve)
        mapped = apply_curve(frame_c, curve)
        # the curve's local misfit would count as noise in _spread (and as motion where it is largest)
        mapped += _LocalCorrection(ref_c - mapped, ref_c, usable)(ref_c)
        diff = mapped - ref_c
        diff[~usable] = 0.0
        gx = cv2.Sobel(ref_c, cv2.CV_32F, 1, 0, ksize=3) / 8
        gy = cv2.Sobel(ref_c, cv2.CV_32F, 0, 1, ksize=3) / 8
        edge = _EDGE_PX * cv2.dilate(np.sqrt(gx * gx + gy * gy), np.ones((3, 3), np.uint8))
        spread = _spread(diff, ref_c, usable)
        sigma = np.sqrt(spread ** 2 + edge ** 2)
        chi += (diff / sigma) ** 2 / 3.0
        # the fine structure of frame and reference, to tell a veil over the same content from other content
        fine_f = mapped - cv2.GaussianBlur(mapped, (0, 0), _VEIL_SIGMA)
        fine_r = ref_c - cv2.GaussianBlur(ref_c, (0, 0), _VEIL_SIGMA)
        cov += cv2.GaussianBlur(fine_f * fine_r, (0, 0), _VEIL_WINDOW)
        var_f += cv2.GaussianBlur(fine_f * fine_f, (0, 0), _VEIL_WINDOW)
        var_r += cv2.GaussianBlur(fine_r * fine_r, (0, 0), _VEIL_WINDOW)
        noise += spread ** 2
        absdiff += np.abs(diff) / 3.0
    # glare from a bright lamp over a calendar, light on a box: light added or filtered in an exposure-dependent way
    # that no tone curve follows, over content that stayed where it was (the frame's fine structure is the
    # reference's, merely brighter or dimmer); a mover hides the background's structure. Where the reference has
    # no structure to keep (a flat wall, sky) this says nothing. On deepfuse/Seq_71, a static desk under a lamp,
    # low marked 1.8 % / 0.8 % of the dark / bright frame, now 1.1 % / 0.5 % (what is left: a translucent cup whose
    # saturation changes with exposure)
    veil = (cov > _VEIL_NCC * np.sqrt(var_f * var_r)) & (var_r > _VEIL_STRUCTURE * noise)
    chi[veil] = 0.0
    # a frame pixel clipped or crushed where the reference says it cannot be is as strong evidence as a difference
    # well over the threshold (its size is unknown: only a bound); the local mean and the morphology below still
    # decide, so an isolated one (noise, a misregistered edge) is not marked
    chi[censored] = np.maximum(chi[censored], 2.0 * z_threshold)
    absdiff[censored] = np.maximum(absdiff[censored], _CENSOR_MARGIN)
    local_chi = np.asarray(cv2.GaussianBlur(chi, (0, 0), 2.0))
    local_diff = np.asarray(cv2.GaussianBlur(absdiff, (0, 0), 2.0))
    comparable = both | censored
    marked = ((local_chi > z_threshold) & (local_diff > min_diff) & comparable).astype(np.uint8)
    side = min(size)
    opened = cv2.morphologyEx(marked, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(opened, connectivity=8)
    keep = np.zeros(count, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= max(4, MIN_AREA * size[0] * size[1])
    moved = keep[labels].astype(np.uint8)
    if not moved.any():
        return np.zeros((h, w), np.float32)
    # hysteresis (as Canny's): a mover's rim, where it differs less from what it covers, joins a mark that stands on
    # its own; weak evidence alone marks nothing, so growing after the small parts are dropped adds no new blobs.
    # In the deghost study (--rounds 3, low) this took double images from 5.6 % to 4.0 % of 124 objects; the static
    # study's cost rose by 0.00005, all on brackets with real movers (MarketMires2's people, Zurich's and Seq_76's
    # water and clouds)
    weak = ((local_chi > _GROW * z_threshold) & (local_diff > _GROW * min_diff) & comparable).astype(np.uint8)
    step = np.ones((3, 3), np.uint8)
    for _ in range(_GROW_PX):
        moved = np.asarray(cv2.dilate(moved, step), np.uint8) & weak | moved
    # join the parts of one object (moving things rarely differ from the background everywhere), cover its soft
    # edges and shadows, then feather
    rc = max(1, round(0.03 * side))
    closed = cv2.morphologyEx(moved, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * rc + 1,) * 2))
    r = max(1, round(0.01 * side))
    grown = np.asarray(cv2.dilate(closed, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))),
                       np.float32)
    soft = np.maximum(np.asarray(cv2.GaussianBlur(grown, (0, 0), max(1.0, r / 2))), grown)
    if soft.shape != (h, w):
        soft = cv2.resize(soft, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(soft, 0.0, 1.0)


def deghost(images: np.ndarray, valid: np.ndarray, strength: str = "medium",
            reference: int | None = None) -> np.ndarray | None:
    """In place: replace moved content in every non-reference frame by the reference re-rendered at that frame's
    exposure (`_remap`: per-channel curves and their local correction, fitted where nothing moved; feathered), so it
    matches its surroundings under mixed lighting too (on registered validation stacks with the deghost study's
    objects, the same detection left a double image at 6.5 % of them, at 7.3 % with the global curves alone).

    The replaced pixels stay valid: they now carry the reference's content at the frame's own exposure, so the mean,
    Mertens' and the detail layer's weights keep every exposure's share there. Excluding them instead (weight 0)
    made Mertens' result in a ghost region follow the remaining frames' brightness (mean difference from the
    static result 0.027 vs 0.004 for LUT + detail on tests/test_registration.py's pasted object).

    images: N×H×W×3 float32 [0,1] (registered; invalid pixels already filled); valid: N×H×W bool (read only).
    reference: the reference index (N//2 by default). Returns the union ghost mask H×W float32 in [0,1] (what the
    GUI overlays and --ghost-mask writes), or None when strength is "off"."""
    check_strength(strength)
    if strength == "off":
        return None
    n = len(images)
    ref = n // 2 if reference is None else reference
    union = np.zeros(images.shape[1:3], np.float32)
    for i in range(n):
        if i == ref:
            continue
        mask = ghost_mask(images[i], images[ref], strength, valid[i])
        if not mask.any():
            continue
        hard = mask >= 0.5
        keep = valid[i] & valid[ref] & ~hard
        # the replacement only where the mask reaches: at 24 MP the frame is 300 MB
        rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
        box = (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)
        region = (slice(box[0], box[1]), slice(box[2], box[3]))
        m = mask[region][..., None]
        images[i][region] = images[i][region] * (1.0 - m) + _remap(images[ref], images[i], keep, box) * m
        np.maximum(union, mask, out=union)
    return union
