"""Registration of bracket frames to the reference (middle) frame: a global sub-pixel model per frame that is
applied only when it measurably helps, so a tripod bracket comes out bit-identical to no alignment at all.

Per frame, on copies downscaled to at most `ESTIMATE_PIXELS`:

1. Exposure equalisation: each frame's luminance is mapped onto the reference's by histogram specification of
   the whole frames (a monotone tone curve, which is what a camera response between two exposures is; Mann &
   Picard's comparametric view: the ranks of a scene's radiances are the same in every exposure, so a pixel's rank
   in one frame is its rank in the other, clipped and crushed pixels included). Frames 4-8 stops apart become
   comparable, and where the reference is clipped the equalised frame is clipped too, so the edges of the clipped
   areas agree. Specifying over each frame's well-exposed pixels only (as before) pairs ranks of different scene
   areas: on the 18 two-frame validation pairs moved by a hand-held motion the truth then scored 0.51 instead of
   0.90 (deepfuse/Seq_15) and the features found nothing. Pixels crushed or clipped in either frame are masked
   out of the check.
2. Early exit for tripod frames (`patch_motion`): phase correlation of 3×3 patches of the gradient images; when
   at least 5 agree on a similarity that moves no corner by `STATIC_CORNER_PX`, the frame is left as it is (a UHD
   frame in 70 ms instead of about a second).
3. Estimate: SIFT features (Lowe 2004) on the equalised images, matched with the ratio test, then a
   RANSAC fit (OpenCV USAC-MAGSAC) of a homography or a similarity (phase correlation of the gradient images when
   there are too few matches), refined by OpenCV's ECC (Evangelidis & Psarakis 2008, `cv2.findTransformECC`) on
   the gradient-magnitude images with the well-exposed mask; ECC's result is kept only when it clearly scores
   better (`ECC_MARGIN`).
4. Frames larger than the feature copy: the estimate is refined on windows, coarse to fine (`refine_full_size`):
   a 4×4 grid of phase-correlation windows on the estimation copy, then windows chosen over the frame (well
   exposed in both, one per cell) at full size or, for frames over 2 × `MID_PIXELS`, on a copy of about
   `MID_PIXELS`, measured by phase correlation + translation ECC on exposure-mapped intensities (pixels below
   the tone curve's shoulder only, `_trusted`), with a robust fit of the correction (`_robust_fit`: weighted
   Gauss-Newton under a Cauchy loss).
5. The check ("never worse than doing nothing"): the normalised cross-correlation of gradient magnitudes over
   pixels well exposed in both frames, for the identity and for the estimate. The estimate is applied only when
   it raises that score by `MIN_GAIN` and moves some image corner by more than `MIN_CORNER_PX` at full size;
   otherwise the frame is left untouched, bit for bit. A pair whose shared well-exposed area is thin (`_sparse`:
   e.g. a reference 98 % clipped but for the dark grooves of a statue) is scored over the pixels within 3 px of
   that area (`score(wide=True)`), and there the estimate must also score `WIDE_MIN_SCORE` outright.

A feature homography is kept only when its inliers span `MIN_SPREAD` of the frame (fitted to one corner, it tilts
the rest by pixels while scoring well where it was fitted); when only a similarity is left, ECC may still fit a
homography from it over all the well-exposed pixels.

A transform that passes is applied once at full size (`cv2.warpPerspective`, Lanczos, float32: 16-bit precision
kept). Pixels it cannot fill are reported as invalid (`Frame.valid`) and hold the reference's content mapped to
the frame's exposure, so that every fusion path sees a plausible frame there and can also exclude it.

Homographies here map a frame's pixel coordinates (x right, y down, origin at the top-left pixel's centre, which is
OpenCV's convention) onto the reference's (= the output's).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from lutfuse.core.colour import LUMA, luma
from lutfuse.core.errors import LUTFuseError

MODES = ("auto", "off", "translation", "similarity", "homography")
ESTIMATE_PIXELS = 1_000_000   # registration is refined and checked on a copy of at most this many pixels
FEATURE_PIXELS = 300_000      # features are found on a copy of at most this many pixels
MIN_SIDE = 64                 # frames smaller than this on their short side are not registered
# The check (docs/studies/registration.py). On the hdrps tripod stacks a fit to noise gains under 0.008 and moves
# corners under 1.1 px; hand-held motion gains 0.3-0.8. Sub-pixel-to-1-px residuals in real "static" brackets
# (deepfuse, gains 0.016-0.027) are left alone. On the validation cases (`lutfuse eval`, 512 px) the frames these
# thresholds move are those of deepfuse/Seq_41 and forth/MarketMires2, which really are misregistered; scored
# against the frames each fusion used, alignment raises both (and no case drops); a corner threshold of 0.5 px
# moves exactly the same frames there.
MIN_GAIN = 0.03               # NCC of gradient magnitudes must rise by at least this much
MIN_CORNER_PX = 1.0           # and some corner must move by more than this many full-size pixels
# A frame whose patches (patch_motion) agree on a motion that moves no image corner by this much (full-size px) is
# static: it is left as it is without the costly estimate (which could not pass MIN_CORNER_PX anyway)
STATIC_CORNER_PX = 0.5
MIN_WELL_EXPOSED = 0.01       # fraction of each frame (estimation copy) that must be well exposed
SPARSE_AREA = 0.02            # below this well-exposed area (eroded) the check scores the wide mask (`score`)
MIN_SPREAD = 0.2              # a feature homography's inliers must span this fraction of the frame (hull area)
WIDE_MIN_SCORE = 0.5          # and there an estimate must score at least this (`estimate`)
MIN_TEXTURE = 2e-4            # mean squared gradient of the equalised reference below this: textureless
MIN_MATCHES = 12
RANSAC_SEED = 11              # OpenCV's RNG seed before every feature RANSAC fit: one registration per input
WINDOWS = 64                  # windows the finest level of the refinement of large frames measures (refine_full_size)
MID_PIXELS = 4_000_000        # frames over twice this size are refined on a copy of about this size, not full size
HOMOGRAPHY_WINDOWS = 16       # fewer usable refinement windows than this correct the estimate by a similarity
ECC_MARGIN = 0.01             # ECC's refinement replaces an estimate only when it raises the check's score this much
# the refinement's windows use only pixels below the frame->reference tone curve's shoulder (`_shoulder`), where
# its slope leaves [1/this, this] × its median slope for good
SHOULDER_SLOPE = 3.0
CURVE_SAMPLES = 1 << 18       # tone curves are estimated from at most this many samples
_DARK, _BRIGHT = 0.02, 0.98   # "well exposed": strictly inside these (gamma-encoded values)


@dataclass(frozen=True)
class FrameRegistration:
    """What registration decided for one frame.

    matrix: 3×3 float64 homography mapping the frame's full-size pixel coordinates onto the output's (identity when
    not applied). model: "reference", "identity" (nothing applied), "translation", "similarity" or "homography".
    shift_px (dx, dy), rotation_deg and scale describe the matrix at the image centre; corner_px is the largest
    displacement of an image corner (full-size px); score_identity / score are the check's NCC of gradient
    magnitudes without and with the estimate (nan when not computed); reason says why in words."""

    index: int
    model: str
    applied: bool
    matrix: np.ndarray
    shift_px: tuple[float, float]
    rotation_deg: float
    scale: float
    corner_px: float
    score_identity: float
    score: float
    reason: str

    @property
    def gain(self) -> float:
        """Score gain of the estimate over the identity (nan when not computed)."""
        return self.score - self.score_identity

    def describe(self) -> str:
        """One line for the CLI: model, shift, rotation, scale, corner displacement, score gain; for a frame left
        as it is, "not moved (why)"."""
        if self.model == "reference":
            return "reference"
        text = (f"{self.model}: shift ({self.shift_px[0]:+.2f}, {self.shift_px[1]:+.2f}) px, rotation "
                f"{self.rotation_deg:+.3f}°, scale {self.scale:.4f}, corners up to {self.corner_px:.2f} px")
        if not math.isnan(self.gain):
            text += f", score {self.score_identity:.3f} -> {self.score:.3f}"
        if self.applied:
            return text
        # a frame left as it is gets a short line; the estimate it declined is only worth its size
        if self.model == "identity":
            return f"not moved ({self.reason})"
        return f"not moved ({self.reason}: {self.model} corners up to {self.corner_px:.2f} px)"


def check_mode(mode: str | bool) -> str:
    """The alignment mode as one of MODES; True = "auto", False = "off"; LUTFuseError for anything else."""
    if mode is True:
        return "auto"
    if mode is False or mode is None:
        return "off"
    if mode not in MODES:
        raise LUTFuseError(f"alignment {mode!r}: use one of {', '.join(MODES)}")
    return str(mode)


# ---------------------------------------------------------------------------------------------- geometry

def describe_matrix(matrix: np.ndarray, height: int, width: int) -> tuple[tuple[float, float], float, float, float]:
    """(shift (dx, dy) of the image centre, rotation in degrees, scale, largest corner displacement), full-size px."""
    corners = np.array([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], np.float64)
    moved = cv2.perspectiveTransform(corners[None], matrix)[0]
    corner = float(np.abs(moved - corners).max()) if np.isfinite(moved).all() else math.inf
    centre = np.array([[[(width - 1) / 2, (height - 1) / 2]]], np.float64)
    c1 = cv2.perspectiveTransform(centre, matrix)[0, 0]
    shift = (float(c1[0] - centre[0, 0, 0]), float(c1[1] - centre[0, 0, 1]))
    # local linear part at the centre, by finite differences
    e = cv2.perspectiveTransform(centre + np.array([[[1.0, 0.0]]]), matrix)[0, 0] - c1
    rotation = math.degrees(math.atan2(e[1], e[0]))
    scale = float(math.hypot(e[0], e[1]))
    return shift, rotation, scale, corner


def _scaling(sx: float, sy: float) -> np.ndarray:
    """Pixel-centre-correct map from full-size coordinates to those of a copy resized by (sx, sy)."""
    return np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]], np.float64)


def _rescale(matrix: np.ndarray, scaling: np.ndarray) -> np.ndarray:
    """A homography in one coordinate frame expressed in a frame `scaling` maps to."""
    out = scaling @ matrix @ np.linalg.inv(scaling)
    return out / out[2, 2]


# ---------------------------------------------------------------------------------------------- photometry

def well_exposed(grey: np.ndarray) -> np.ndarray:
    """H×W bool: neither crushed nor clipped."""
    return (grey > _DARK) & (grey < _BRIGHT)


def tone_curve(source: np.ndarray, target: np.ndarray, source_mask: np.ndarray | None = None,
               target_mask: np.ndarray | None = None, bins: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Monotone curve mapping `source` values onto `target`'s distribution (histogram specification).

    source, target: arrays of values in [0,1] (any shapes), optionally with bool masks of the samples to use.
    Returns (x, y) for np.interp: x = `bins` source levels in [0,1], y = the target values they map to."""
    s = source[source_mask] if source_mask is not None else source.ravel()
    t = target[target_mask] if target_mask is not None else target.ravel()
    x = np.linspace(0.0, 1.0, bins, dtype=np.float32)
    if s.size < 16 or t.size < 16:
        return x, x.copy()
    # a regular subsample of at most CURVE_SAMPLES values: the curve's 1024 levels need no more, and the
    # quantiles of a megapixel cost 70 ms
    s, t = s[::max(1, s.size // CURVE_SAMPLES)], t[::max(1, t.size // CURVE_SAMPLES)]
    hist, _ = np.histogram(s, bins=bins, range=(0.0, 1.0))
    cdf = np.cumsum(hist).astype(np.float64)
    cdf /= cdf[-1]
    # the centre of each source bin's probability mass goes to the target quantile at that mass
    mid = cdf - hist / (2.0 * hist.sum())
    # np.quantile's linear rule, from one sort (np.quantile partitions once per level: 10× slower here)
    ts = np.sort(t.astype(np.float32, copy=False))
    y = np.interp(np.clip(mid, 0.0, 1.0) * (ts.size - 1), np.arange(ts.size), ts).astype(np.float32)
    return x, np.maximum.accumulate(y)


def apply_curve(image: np.ndarray, curve: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """`image` (values in [0,1], any shape) through a tone curve from `tone_curve` (linear interpolation between
    its levels, as np.interp) -> float32, same shape."""
    x, y = curve
    n = len(x)
    if n < 2 or x[0] != 0.0 or x[-1] != 1.0 or not np.allclose(np.diff(x), 1.0 / (n - 1), rtol=1e-3):
        return np.interp(image, x, y).astype(np.float32)
    # tone_curve's levels are evenly spaced: index arithmetic instead of np.interp's search (8× faster)
    pos = np.clip(np.asarray(image, np.float32), 0.0, 1.0) * np.float32(n - 1)
    i = np.minimum(pos.astype(np.int32), n - 2)
    pos -= i
    y = np.asarray(y, np.float32)
    return (y[i] + pos * np.diff(y)[i]).astype(np.float32, copy=False)


def exposure_curves(source: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None, max_side: int = 512,
                    min_pixels: int = 64) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray,
                                                   np.ndarray | None]:
    """Per channel the `tone_curve` (histogram specification) that maps `source` (H×W×3 [0,1]) onto `target`'s
    exposure, estimated on copies at most max_side px wide, over `mask` (H×W bool) where given and it keeps at least
    min_pixels there -> (the 3 curves, the small source, the small target, the small mask that was used or None)."""
    h, w = source.shape[:2]
    f = min(1.0, max_side / max(h, w))
    def small(a: np.ndarray) -> np.ndarray:
        return cv2.resize(a, None, fx=f, fy=f, interpolation=cv2.INTER_AREA) if f < 1 else a
    s, t = small(source), small(target)
    m = None
    if mask is not None:
        m = (small(mask.astype(np.float32)) > 0.99) if f < 1 else mask
        if m.sum() < min_pixels:
            m = None
    return [tone_curve(s[..., c], t[..., c], m, m) for c in range(3)], s, t, m


def map_exposure(source: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None,
                 max_side: int = 512) -> np.ndarray:
    """`source` (H×W×3 [0,1]) re-rendered at `target`'s exposure: per channel histogram specification, estimated on
    copies at most max_side px wide (over `mask`, H×W bool, where given; `exposure_curves`) and applied at full
    size -> H×W×3 float32."""
    curves, *_ = exposure_curves(source, target, mask, max_side)
    out = np.empty_like(source, dtype=np.float32)
    for c in range(3):
        out[..., c] = apply_curve(source[..., c], curves[c])
    return out


# ---------------------------------------------------------------------------------------------- estimation

def _gradient(grey: np.ndarray) -> np.ndarray:
    """Gradient magnitude of a lightly blurred H×W float32 image."""
    g = cv2.GaussianBlur(grey, (0, 0), 1.0)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    # not cv2.magnitude: its SIMD and scalar paths round differently, so its result depended on where the inputs
    # happened to sit in memory, and the same frames registered differently from run to run (up to 0.5 px at 24 MP)
    return np.sqrt(gx * gx + gy * gy)


def _ncc(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Normalised cross-correlation of a and b over mask (nan when under 1 % of the pixels)."""
    if mask.sum() < max(64, 0.01 * mask.size):
        return math.nan
    x, y = a[mask].astype(np.float64), b[mask].astype(np.float64)
    x -= x.mean()
    y -= y.mean()
    d = math.sqrt(float((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / d) if d > 0 else math.nan


@dataclass
class _View:
    """One frame at the estimation scale: equalised luma, its gradient magnitude, well-exposed mask."""

    grey: np.ndarray
    grad: np.ndarray
    mask: np.ndarray


def _warp_small(image: np.ndarray, matrix: np.ndarray, flags: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Warp a small image into the reference's frame by a frame->reference homography (0 outside)."""
    h, w = image.shape[:2]
    return cv2.warpPerspective(image, matrix, (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def score(ref: _View, view: _View, matrix: np.ndarray, *, wide: bool = False) -> float:
    """The check: NCC of gradient magnitudes of the reference and the frame warped by `matrix` (small-scale
    frame->reference homography), over pixels well exposed in both and covered, away from the masks' edges.

    wide: for a pair whose shared well-exposed area is thin (`_sparse`, e.g. the dark grooves of a reference that
    is 98 % clipped), the pixels within 3 px of those well exposed in both, where covered: the edges of the
    clipped areas then count too, which the full-histogram tone curve (`estimate`) makes alike in both frames."""
    h, w = ref.grad.shape
    if np.allclose(matrix, np.eye(3)):
        grad, mask = view.grad, view.mask
        covered = np.ones((h, w), bool)
    else:
        grad = _warp_small(view.grad, matrix)
        mask = _warp_small(view.mask.astype(np.uint8), matrix, cv2.INTER_NEAREST).astype(bool)
        covered = _warp_small(np.ones((h, w), np.uint8), matrix, cv2.INTER_NEAREST).astype(bool)
    kernel = np.ones((5, 5), np.uint8) if not wide else np.ones((7, 7), np.uint8)
    if wide:
        both = cv2.dilate((mask & ref.mask).astype(np.uint8), kernel).astype(bool)
        both &= cv2.erode(covered.astype(np.uint8), kernel).astype(bool)
    else:
        both = cv2.erode((mask & ref.mask).astype(np.uint8), kernel).astype(bool)
    return _ncc(ref.grad, grad, both)


def _sparse(ref: _View, view: _View) -> bool:
    """Whether the pair's shared well-exposed area is too thin for `score`'s default mask: under `SPARSE_AREA` of
    the frame is well exposed in both (unmoved) more than 2 px from a badly exposed pixel. Decided once per frame,
    so that the identity and every estimate are scored over masks of the same kind."""
    both = (ref.mask & view.mask).astype(np.uint8)
    return float(cv2.erode(both, np.ones((5, 5), np.uint8)).mean()) < SPARSE_AREA


def _keypoints(view: _View) -> tuple:
    """SIFT keypoints and descriptors of a view's equalised luma, inside its well-exposed mask."""
    sift = cv2.SIFT.create(nfeatures=2000, contrastThreshold=0.02)
    u8 = np.clip(view.grey * 255 + 0.5, 0, 255).astype(np.uint8)
    return sift.detectAndCompute(u8, view.mask.astype(np.uint8) * 255)


def _spread(points: np.ndarray, shape: tuple[int, int]) -> float:
    """Area of the convex hull of N×2 points (x, y) as a fraction of an image of shape (h, w)."""
    if len(points) < 3:
        return 0.0
    hull = cv2.convexHull(np.asarray(points, np.float32))
    return float(cv2.contourArea(hull)) / float(shape[0] * shape[1])


def _features(ref_kp: tuple, view_kp: tuple, models: Sequence[str], shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """Frame->reference matrices (3×3, at the keypoints' scale, in images of `shape` (h, w)) per model, from SIFT
    matches + RANSAC (USAC-MAGSAC for the homography); models with too few inliers are left out, and so is a
    homography whose inliers span under `MIN_SPREAD` of the reference."""
    (k2, d2), (k1, d1) = ref_kp, view_kp
    if d1 is None or d2 is None or len(k1) < MIN_MATCHES or len(k2) < MIN_MATCHES:
        return {}
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(d1, d2, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < 0.8 * p[1].distance]
    if len(good) < MIN_MATCHES:
        return {}
    src = np.array([k1[m.queryIdx].pt for m in good], np.float32)
    dst = np.array([k2[m.trainIdx].pt for m in good], np.float32)
    out = {}
    for model in models:
        cv2.setRNGSeed(RANSAC_SEED)  # one registration per input
        if model == "homography":
            matrix, inliers = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, 1.5, maxIters=5000, confidence=0.999)
        else:
            affine, inliers = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=1.5,
                                                          maxIters=5000, confidence=0.999)
            matrix = None if affine is None else np.vstack([affine, [0, 0, 1]])
            if matrix is not None and model == "translation":
                matrix = np.array([[1, 0, matrix[0, 2]], [0, 1, matrix[1, 2]], [0, 0, 1]], np.float64)
        if matrix is None or inliers is None or int(inliers.sum()) < MIN_MATCHES:
            continue
        if model == "homography" and _spread(dst[inliers.ravel() > 0], shape) < MIN_SPREAD:
            # a homography is only pinned down over the area its inliers span: fitted to one corner of the frame
            # (the rest clipped or crushed) it tilts the others by pixels while scoring well where it was fitted
            continue
        out[model] = matrix.astype(np.float64)
    return out


def patch_motion(ref: _View, view: _View, grid: int = 3, min_response: float = 0.3) -> np.ndarray | None:
    """A similarity frame->reference matrix (3×3, at the views' scale) fitted to the shifts of grid×grid patches
    (corners, edges and centre of the frame) found by phase correlation of the gradient images, or None when fewer
    than 5 patches are usable (mostly badly exposed, or a weak correlation peak: flat or mismatched) and agree
    with one similarity to within 0.25 px (something else is going on: let the full estimate decide).

    Cheap (grid² FFTs of at most 256² px): it tells a frame that has not moved from one that has."""
    h, w = ref.grad.shape
    # overlapping patches on small frames: a 64-px patch of a 536×356 frame correlates too loosely
    side = min(256, 1 << int(math.log2(max(1, min(h, w) // 2))))
    if side < 32:
        return None
    window = cv2.createHanningWindow((side, side), cv2.CV_32F)
    src, dst = [], []
    for gy in range(grid):
        for gx in range(grid):
            x0, y0 = round((w - side) * gx / (grid - 1)), round((h - side) * gy / (grid - 1))
            cut = (slice(y0, y0 + side), slice(x0, x0 + side))
            if (ref.mask[cut] & view.mask[cut]).mean() < 0.5:
                continue
            # the peak's height tells an informative patch (even faint texture: the correlation is whitened)
            # from flat or mismatched ones
            # copies: cv2.phaseCorrelate writes into its inputs (the windowed values), and these are views of
            # the reference's gradient, which every frame is compared with
            (dx, dy), response = cv2.phaseCorrelate(view.grad[cut].copy(), ref.grad[cut].copy(), window)
            if response < min_response:
                continue
            centre = (x0 + (side - 1) / 2, y0 + (side - 1) / 2)
            src.append(centre)
            dst.append((centre[0] + dx, centre[1] + dy))
    if len(src) < 5:
        return None
    # least median of squares first: an edge that moves with exposure (a clipped highlight's border bleeds) gives
    # a patch that disagrees; at least 5 must agree on one similarity to within 0.25 px
    src_a, dst_a = np.array(src, np.float64), np.array(dst, np.float64)
    rough, _ = cv2.estimateAffinePartial2D(src_a, dst_a, method=cv2.LMEDS)
    if rough is None:
        return None
    inliers = np.abs(src_a @ rough[:, :2].T + rough[:, 2] - dst_a).max(axis=1) < 0.25
    if inliers.sum() < 5:
        return None
    # least squares similarity on the inliers: x' = a x - b y + tx, y' = b x + a y + ty
    x, y = src_a[inliers, 0], src_a[inliers, 1]
    one, zero = np.ones_like(x), np.zeros_like(x)
    rows = np.vstack([np.column_stack([x, -y, one, zero]), np.column_stack([y, x, zero, one])])
    (a, b, tx, ty), *_ = np.linalg.lstsq(rows, np.concatenate([dst_a[inliers, 0], dst_a[inliers, 1]]), rcond=None)
    fit = np.array([[a, -b, tx], [b, a, ty], [0.0, 0.0, 1.0]])
    if np.abs(src_a[inliers] @ fit[:2, :2].T + fit[:2, 2] - dst_a[inliers]).max() > 0.25:
        return None
    return fit


def _phase_shift(ref: _View, view: _View) -> np.ndarray:
    """Translation-only frame->reference matrix from phase correlation of the gradient images."""
    window = cv2.createHanningWindow(ref.grad.shape[::-1], cv2.CV_32F)
    (dx, dy), _ = cv2.phaseCorrelate(view.grad.copy(), ref.grad.copy(), window)  # it writes into its inputs
    return np.array([[1, 0, dx], [0, 1, dy], [0, 0, 1]], np.float64)


_ECC_MOTION = {"translation": cv2.MOTION_TRANSLATION, "similarity": cv2.MOTION_AFFINE,
               "homography": cv2.MOTION_HOMOGRAPHY}


def _ecc(ref: _View, view: _View, init: np.ndarray, model: str, levels: int) -> np.ndarray | None:
    """ECC refinement of a frame->reference matrix, coarse to fine over `levels` pyramid levels; None on failure."""
    refs, views, masks = [ref.grad], [view.grad], [view.mask.astype(np.uint8)]
    for _ in range(levels - 1):
        refs.append(cv2.pyrDown(refs[-1]))
        views.append(cv2.pyrDown(views[-1]))
        masks.append(np.asarray(cv2.resize(masks[-1], (refs[-1].shape[1], refs[-1].shape[0]),
                                           interpolation=cv2.INTER_NEAREST), np.uint8))
    motion = _ECC_MOTION[model]
    half = _scaling(0.5, 0.5)
    matrix = init.copy()
    for _ in range(levels - 1):
        matrix = _rescale(matrix, half)
    for level in reversed(range(levels)):
        # ECC estimates the template->input warp, i.e. reference->frame: the inverse of ours
        warp = np.linalg.inv(matrix)
        warp = (warp / warp[2, 2]).astype(np.float32)
        if motion != cv2.MOTION_HOMOGRAPHY:
            warp = warp[:2]
        steps = 40 if level == 0 else 60
        try:
            _, warp = cv2.findTransformECC(refs[level], views[level], warp, motion,
                                           (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, steps, 1e-4),
                                           masks[level], 5)
        except cv2.error:
            return None
        if warp.shape[0] == 2:
            warp = np.vstack([warp, [0, 0, 1]])
        matrix = np.linalg.inv(warp.astype(np.float64))
        matrix /= matrix[2, 2]
        if level > 0:
            matrix = _rescale(matrix, np.linalg.inv(half))
    if model == "similarity":
        # ECC's affine fit may shear a little; project onto rotation + scale + shift
        a, b = (matrix[0, 0] + matrix[1, 1]) / 2, (matrix[1, 0] - matrix[0, 1]) / 2
        matrix = np.array([[a, -b, matrix[0, 2]], [b, a, matrix[1, 2]], [0, 0, 1]], np.float64)
    return matrix if np.isfinite(matrix).all() else None


def _make_view(grey: np.ndarray, curve: tuple[np.ndarray, np.ndarray] | None = None) -> _View:
    """Equalised luma (through `curve` when given), its gradient and the well-exposed mask of one small frame."""
    mask = well_exposed(grey)
    eq = apply_curve(grey, curve) if curve is not None else grey
    return _View(eq, _gradient(eq), mask)


def _resized(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area-filtered copy at size (w, h), or the image itself when it already is that size."""
    return image if image.shape[1::-1] == size else cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _small_luma(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Rec. 709 luma of an H×W×3 frame (or an H×W luma image), area-resized to size (w, h): luma first, so that
    one channel is resized rather than three (a UHD frame: 30 ms instead of 47)."""
    return _small_lumas(image, [size])[0]


def _small_lumas(image: np.ndarray, sizes: Sequence[tuple[int, int]]) -> list[np.ndarray]:
    """`_small_luma` at several sizes from one full-size luma (the only full-size copy, and a transient one)."""
    if image.ndim == 2:
        grey = image
    else:
        grey = cv2.transform(np.ascontiguousarray(image, np.float32), np.array([LUMA], np.float32))
    return [_resized(grey, size) for size in sizes]


def _fit(h: int, w: int, max_pixels: int) -> tuple[int, int]:
    """(w, h) of a copy of at most max_pixels."""
    f = min(1.0, math.sqrt(max_pixels / (h * w)))
    return max(1, round(w * f)), max(1, round(h * f))


def _luma_sizes(h: int, w: int, max_pixels: int = ESTIMATE_PIXELS) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    """(the estimation copy's size, the coarser levels of the full-size refinement) of an H×W frame, sizes as
    (w, h): the levels are the estimation copy and, where the frame is more than twice MID_PIXELS, a copy of about
    MID_PIXELS; none when the frame already is the estimation copy's size."""
    size = _fit(h, w, max_pixels)
    levels = [] if size == (w, h) else [size]
    if h * w > 2 * MID_PIXELS > 2 * max_pixels:
        levels.append(_fit(h, w, MID_PIXELS))
    return size, levels


def _lumas_at(image: np.ndarray, sizes: Sequence[tuple[int, int]],
              given: Sequence[np.ndarray] | None) -> list[np.ndarray]:
    """The small lumas of `image` at `sizes` ((w, h) each): `given` (a `frame_lumas` made elsewhere) where its
    shapes are exactly those, else made here."""
    if given is not None and [a.shape[::-1] for a in given] == list(sizes):
        return list(given)
    return _small_lumas(image, sizes)


def frame_lumas(image: np.ndarray) -> list[np.ndarray]:
    """The small lumas registration takes of one H×W×3 float32 [0,1] frame (`register`'s `lumas`): Rec. 709
    luma area-resized to the estimation copy (at most ESTIMATE_PIXELS), then, for frames over 2 × MID_PIXELS, to
    a copy of about MID_PIXELS; each H'×W' float32. The bracket loader makes them on its decode threads, beside
    the decode, instead of on the main thread from the finished stack."""
    size, levels = _luma_sizes(*image.shape[:2])
    return _small_lumas(image, [size, *levels[1:]])


class Reference:
    """The reference frame prepared once per bracket: its luma and views at the estimation and feature scales."""

    def __init__(self, image: np.ndarray, max_pixels: int = ESTIMATE_PIXELS,
                 feature_pixels: int = FEATURE_PIXELS, lumas: Sequence[np.ndarray] | None = None) -> None:
        """image: the reference frame, H×W×3 float32 in [0,1]; lumas: its `frame_lumas` when already made (used
        where their sizes are this reference's)."""
        self.shape = image.shape[:2]
        self.image = image  # full size, for the patch refinement of large frames (a view, not a copy)
        h, w = self.shape
        self.size, self.level_sizes = _luma_sizes(h, w, max_pixels)
        self.grey, *mid = _lumas_at(image, [self.size, *self.level_sizes[1:]], lumas)
        self.levels = [self.grey, *mid][:len(self.level_sizes)]
        self.view = _make_view(self.grey)
        self.fsize = _fit(self.size[1], self.size[0], feature_pixels)
        self.fgrey = _resized(self.grey, self.fsize)
        self._kp: tuple | None = None

    def keypoints(self) -> tuple:
        """SIFT keypoints of the reference at the feature scale (computed on first use)."""
        if self._kp is None:
            self._kp = _keypoints(_make_view(self.fgrey))
        return self._kp


def estimate(reference: np.ndarray | Reference, frame: np.ndarray, mode: str = "auto", *,
             index: int = 0, lumas: Sequence[np.ndarray] | None = None) -> FrameRegistration:
    """Register one frame to the reference: H×W×3 float32 in [0,1] at full size (the reference may be given as a
    prepared `Reference`) -> FrameRegistration with the frame->reference homography at full size.

    mode: "auto" (the homography unless the similarity scores clearly better), "translation",
    "similarity" or "homography". Never raises on image content: frames too small or textureless, and estimates
    that fail the check, give the identity. lumas: the frame's `frame_lumas` when already made (the reference's
    sizes must be the default ones)."""
    ref = reference if isinstance(reference, Reference) else Reference(reference)
    h, w = ref.shape
    eye = np.eye(3)

    def identity(reason: str, s_id: float = math.nan, s: float = math.nan) -> FrameRegistration:
        return FrameRegistration(index, "identity", False, eye.copy(), (0.0, 0.0), 0.0, 1.0, 0.0, s_id, s, reason)

    if min(h, w) < MIN_SIDE:
        return identity(f"frame under {MIN_SIDE} px")
    to_small = _scaling(ref.size[0] / w, ref.size[1] / h)
    grey, *mid = _lumas_at(frame, [ref.size, *ref.level_sizes[1:]], lumas)
    # the frame's tone curve onto the reference, over the pixels well exposed in each
    curve = tone_curve(grey, ref.grey)
    view = _make_view(grey, curve)
    texture = float((ref.view.grad[ref.view.mask] ** 2).mean()) if ref.view.mask.any() else 0.0
    if ref.view.mask.mean() < MIN_WELL_EXPOSED or view.mask.mean() < MIN_WELL_EXPOSED or texture < MIN_TEXTURE:
        return identity("textureless or badly exposed")
    wide = _sparse(ref.view, view)

    def check(matrix: np.ndarray) -> float:
        return score(ref.view, view, matrix, wide=wide)

    motion = patch_motion(ref.view, view)
    if motion is not None:
        # a cheap early decision for tripod frames: the patches agree that nothing moves by as much as
        # STATIC_CORNER_PX anywhere in the frame, so no estimate could pass the check
        corner = describe_matrix(_rescale(motion, np.linalg.inv(to_small)), h, w)[3]
        if corner < STATIC_CORNER_PX:
            return identity(f"static: patches move under {STATIC_CORNER_PX} px")
    s_id = check(eye)
    if math.isnan(s_id):
        return identity("too few pixels well exposed in both frames")
    models = ("similarity", "homography") if mode == "auto" else (mode,)
    # features on a smaller copy; their matrices are carried over to the estimation scale
    f_scale = _scaling(ref.fsize[0] / ref.size[0], ref.fsize[1] / ref.size[1])
    fview = _make_view(_resized(grey, ref.fsize), curve)
    found = _features(ref.keypoints(), _keypoints(fview), models, ref.fgrey.shape)
    candidates: list[tuple[str, np.ndarray]] = [(m, _rescale(x, np.linalg.inv(f_scale))) for m, x in found.items()]
    ecc_only = -1  # index of a candidate that stands only as ECC's starting point
    levels = 1
    if "homography" in models and "similarity" in found and "homography" not in found:
        # features too few or too bunched for a homography (`MIN_SPREAD`): ECC may still fit one from the
        # similarity over all the well-exposed pixels (kept only when it clearly scores better, `ECC_MARGIN`)
        ecc_only = len(candidates)
        candidates.append(("homography", candidates[0][1]))
    if not candidates:
        # no features to go by: ECC from the phase-correlation shift, coarse to fine
        candidates = [(models[-1], _phase_shift(ref.view, view))]
        levels = int(max(1, min(4, math.floor(math.log2(min(ref.size) / 48)))))
    best: tuple[float, str, np.ndarray] | None = None
    scored = []
    for model, matrix in candidates:
        s = check(matrix)
        scored.append((-math.inf if math.isnan(s) else s, model, matrix))
    top = max(s for s, _, _ in scored)
    for k, (s0, model, matrix) in enumerate(scored):
        # ECC (the costly step) refines the leading estimate and any within reach of it
        refined = _ecc(ref.view, view, matrix, model, levels) if s0 >= top - 0.02 else None
        options: list[tuple[np.ndarray | None, float | None]] = [(matrix, s0), (refined, None)]
        if k == ecc_only:
            options = options[1:]
        for m, known in options:
            if m is None:
                continue
            if known is None:
                s = check(m)
                # ECC's result must clearly beat its start: after an accurate SIFT + MAGSAC homography (corner
                # error 0.05-0.27 px on hdrps frames 2-4 stops apart) its optimum on gradient magnitudes of
                # different exposures lay 0.4-2.7 px away with a score within 0.01; where features fit poorly
                # (few, on a rendered scene) it gains far more
                if not s > s0 + ECC_MARGIN:
                    continue
            else:
                s = known
            bonus = 0.002 if model == "homography" else 0.0  # the most general model wins near-ties
            if math.isfinite(s) and (best is None or s + bonus > best[0]):
                best = (s + bonus, model, m)
    if best is None:
        best = (-math.inf, models[-1], candidates[0][1])
    if not math.isfinite(best[0]):
        return identity("no estimate", s_id)
    small_matrix = best[2]
    s = check(small_matrix)
    matrix = _rescale(small_matrix, np.linalg.inv(to_small))
    if (ref.fsize[0] < 0.7 * w or ref.size[0] < 0.7 * w) and best[1] != "translation":
        # features come from a copy of at most 0.3 MP: an error of 0.2 px there is 0.4 px at 1 MP and 1.8 px at
        # 24 MP; refine on full-size patches
        # the windows are chosen where both frames are well exposed, so their curve is fitted there (the estimate's
        # whole-frame curve serves frames far apart in exposure, whose shared well-exposed area is small)
        window_curve = tone_curve(grey, ref.grey, well_exposed(grey), ref.view.mask)
        refined = refine_full_size(ref, frame, [grey, *mid][:len(ref.level_sizes)], matrix, window_curve)
        if refined is not None:
            s_refined = check(_rescale(refined, to_small))
            if not math.isnan(s_refined) and s_refined >= s - 0.002:
                matrix, s = refined, s_refined
    shift, rotation, scale, corner = describe_matrix(matrix, h, w)
    # over the wide mask (a thin shared well-exposed area) a fit to noise or to clipping edges gains easily; the
    # estimate must also match the reference's structure outright
    weak = wide and not s >= WIDE_MIN_SCORE
    applied = s - s_id >= MIN_GAIN and corner > MIN_CORNER_PX and math.isfinite(corner) and not weak
    if applied:
        reason = "applied"
    elif corner <= MIN_CORNER_PX:
        reason = f"moves under {MIN_CORNER_PX} px"
    elif weak and s - s_id >= MIN_GAIN:
        reason = f"score {s:.4f} under {WIDE_MIN_SCORE} on a thin well-exposed area"
    else:
        reason = f"score gain {s - s_id:+.4f} under {MIN_GAIN}"
    return FrameRegistration(index, model, applied, matrix if applied else eye.copy(), shift, rotation, scale,
                             corner, s_id, s, reason)


def refine_full_size(ref: Reference, frame: np.ndarray, frame_levels: Sequence[np.ndarray], matrix: np.ndarray,
                     curve: tuple[np.ndarray, np.ndarray]) -> np.ndarray | None:
    """Sub-pixel refinement of a full-size frame->reference homography (3×3), coarse to fine, or None.

    ref: the prepared reference (its luma copies `ref.levels`, sizes `ref.level_sizes`, and the full-size
    `ref.image`); frame: H×W×3 float32 [0,1] at full size; frame_levels: the frame's luma area-resized to each of
    `ref.level_sizes` (float32 [0,1]); curve: the frame's luma tone curve onto the reference's. Levels: the
    estimation copy (`ESTIMATE_PIXELS`, a 4×4 grid of phase-correlation windows: what frames of about 1 MP get at
    full size), then, finest, a copy of about `MID_PIXELS` for frames over twice that or else the full size
    (windows chosen over the frame, phase correlation + translation ECC, robust fit). Each level starts from the
    previous one's result, and the finest that succeeds gives the answer. The finest level is at most 4 MP
    because on the study's 24 MP frames (docs/studies/registration.py accuracy) a further full-size level made
    the corner error worse, not better, at 2.5× the cost: a 4 MP copy already pins a homography to a few tenths
    of a full-size pixel. Only windows are resampled, and the luma copies given, so memory stays bounded at
    24 MP. None when no level has enough usable windows, or the result moves a corner by more than a few
    pixels (a refinement, not a new estimate)."""
    h, w = ref.shape
    sizes = [*ref.level_sizes, (w, h)][:2]
    images = [*ref.levels, ref.image][:2]
    frames = [*frame_levels, frame][:2]
    found = None
    current = matrix
    for k, ((lw, lh), reference, image) in enumerate(zip(sizes, images, frames)):
        scaling = _scaling(lw / w, lh / h)
        refined = _refine_level(reference, image, _rescale(current, scaling), curve, grid=k == 0,
                                small=(images[0], frames[0]) if k > 0 else None)
        if refined is not None:
            current = found = _rescale(refined, np.linalg.inv(scaling))
    if found is None:
        return None
    _, _, _, moved = describe_matrix(np.linalg.inv(matrix) @ found, h, w)
    return found if moved < 0.002 * max(h, w) + 2 else None


def _refine_level(reference: np.ndarray, frame: np.ndarray, matrix: np.ndarray,
                  curve: tuple[np.ndarray, np.ndarray], grid: bool, passes: int = 2,
                  small: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray | None:
    """`passes` rounds of window refinement at one level: reference and frame (H×W×3 or H×W luma, float32 [0,1])
    of one size, matrix the frame->reference homography in its pixels -> the refined matrix, or None.

    grid: a 4×4 lattice of phase-correlation windows (`_grid_windows`); otherwise windows chosen over the frame
    (`_choose_windows`, from the lumas `small` where given), measured by phase correlation + ECC
    (`_window_shift`) with a robust fit. The second round measures residuals near zero on windows warped by the
    corrected matrix (OpenCV's phase-correlation peak, a weighted centroid, is biased towards whole pixels: a
    second round removes most of that bias). None when the first round has fewer than 6 usable windows or the
    result moves a corner by more than a few pixels."""
    h, w = reference.shape[:2]
    patch = int(min(512, max(128, min(h, w) // 8)))
    if min(h, w) < 2 * patch:
        return None
    if grid:
        chosen = _grid_windows(h, w, patch)
    else:
        chosen = _choose_windows(reference, frame, matrix, patch, WINDOWS, small=small)
    if len(chosen) < 6:
        return None
    current = None
    for _ in range(passes):
        refined = _refine_once(reference, frame, matrix if current is None else current, curve, chosen, patch, grid)
        if refined is None:
            break  # a later round that fails leaves the earlier one's result
        current = refined
    if current is None:
        return None
    _, _, _, moved = describe_matrix(np.linalg.inv(matrix) @ current, h, w)
    return current if moved < 0.002 * max(h, w) + 2 else None


def _grid_windows(h: int, w: int, patch: int, grid: int = 4) -> list[tuple[int, int]]:
    """Top-left corners of a grid×grid lattice of patch-px windows spanning the frame, 3 % in from its edges
    (where a moved frame leaves no data)."""
    mx, my = round(0.03 * w), round(0.03 * h)
    return [(mx + round((w - patch - 2 * mx) * gx / (grid - 1)), my + round((h - patch - 2 * my) * gy / (grid - 1)))
            for gy in range(grid) for gx in range(grid)]


def _choose_windows(reference: np.ndarray, frame: np.ndarray, matrix: np.ndarray, patch: int, count: int,
                    lattice: int = 15, small: tuple[np.ndarray, np.ndarray] | None = None) -> list[tuple[int, int]]:
    """Top-left corners (x0, y0) of at most `count` patch-px windows for `_refine_level`, from a lattice×lattice
    grid of overlapping candidates: those at least half well exposed in the reference and in the frame warped by
    `matrix` (frame->reference) and textured; the frame is split into about `count` cells and each gives its
    best-exposed candidate, so the windows spread over the frame (bunched in one corner they fit a homography
    that is wrong at the others) and a mostly crushed or clipped frame still gets enough. Not the most textured:
    on hdrps Cemetery_Tree_1 those were the tree's branches, which move between exposures. Measured on copies at
    about 1/16 of the window's side, resized from the lumas `small` (reference, frame) where given, so choosing
    makes no pass over the full-size frames."""
    h, w = reference.shape[:2]
    f = min(1.0, 16.0 / patch)
    size = (max(1, round(w * f)), max(1, round(h * f)))
    ref_small, frame_small = (_small_luma(a, size) for a in (small or (reference, frame)))
    frame_small = cv2.warpPerspective(frame_small, _rescale(matrix, _scaling(size[0] / w, size[1] / h)), size,
                                      flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    usable = (well_exposed(ref_small) & well_exposed(frame_small)).astype(np.float32)
    energy = _gradient(ref_small) ** 2
    mx, my = round(0.03 * w), round(0.03 * h)
    cells = max(1, round(math.sqrt(count)))
    best: dict[tuple[int, int], tuple[float, int, int]] = {}
    for gy in range(lattice):
        for gx in range(lattice):
            x0 = mx + round((w - patch - 2 * mx) * gx / (lattice - 1))
            y0 = my + round((h - patch - 2 * my) * gy / (lattice - 1))
            cut = (slice(int(y0 * f), int((y0 + patch) * f) + 1), slice(int(x0 * f), int((x0 + patch) * f) + 1))
            if usable[cut].mean() < 0.5:
                continue
            if float((energy[cut] * usable[cut]).mean()) < MIN_TEXTURE:
                continue
            exposed = round(float(usable[cut].mean()), 1)
            cell = (gx * cells // lattice, gy * cells // lattice)
            if cell not in best or exposed > best[cell][0]:
                best[cell] = (exposed, x0, y0)
    return [(x0, y0) for _, x0, y0 in best.values()]


def _window_shift(ref_grey: np.ndarray, frame_grey: np.ndarray, usable: np.ndarray, window: np.ndarray,
                  grid: bool) -> tuple[float, float, float] | None:
    """Sub-pixel shift t of one window (frame_grey(x + t) ≈ ref_grey(x), px) and its confidence in (0, 1], or None
    where it is not measurable.

    frame_grey is already mapped to the reference's exposure; usable: H×W bool, well exposed in both (off the grid
    also below the tone curve's shoulder, `_trusted`). Phase correlation of the gradient magnitudes (grid: that
    alone; confidence = the peak's response); otherwise refined by translation ECC (Evangelidis & Psarakis 2008,
    `cv2.findTransformECC`) on the exposure-mapped intensities over `usable` eroded by 7×7 px (confidence = ECC's
    correlation): invariant to a gain and offset left between them, and free of the correlation peak's whole-pixel
    bias. (ECC on the gradient
    magnitudes instead disagreed with itself by 0.5-1.1 px at 24 MP on hdrps El_Capitan 01 and 08, the
    intensities by 0.07-0.3 px.) The erosion keeps ECC off the edges of clipped areas, which move with exposure
    rather than with the camera; None where it leaves under 10 % of the window."""
    a, b = _gradient(frame_grey), _gradient(ref_grey)
    if float((b[usable] ** 2).mean()) < MIN_TEXTURE:
        return None
    (dx, dy), response = cv2.phaseCorrelate(a, b, window)
    if grid:
        return None if response < 0.15 or math.hypot(dx, dy) > 4.0 else (-dx, -dy, float(response))
    if response < 0.1 or math.hypot(dx, dy) > max(4.0, ref_grey.shape[0] / 16):
        return None
    mask = cv2.erode(usable.astype(np.uint8), np.ones((7, 7), np.uint8))
    if mask.mean() < 0.1:
        return None
    start = np.array([[1, 0, -dx], [0, 1, -dy]], np.float32)
    try:
        rho, warp = cv2.findTransformECC(ref_grey, frame_grey, start, cv2.MOTION_TRANSLATION,
                                         (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 1e-3), mask, 5)
    except cv2.error:  # no convergence (flat or mismatched content)
        return None
    tx, ty = float(warp[0, 2]), float(warp[1, 2])
    if not (rho > 0.3 and math.hypot(tx + dx, ty + dy) < 1.5):
        return None  # ECC wandered away from the correlation peak, or the windows do not match
    return tx, ty, float(rho)


def _robust_fit(src: np.ndarray, dst: np.ndarray, weights: np.ndarray, general: bool,
                iterations: int = 30) -> np.ndarray | None:
    """Correction C (3×3) with C(src) ≈ dst, fitted by weighted Gauss-Newton under a Cauchy loss (IRLS), or None.

    src, dst: N×2 float64 point pairs (px) that nearly agree already (the correction is close to the identity);
    weights: N confidences in (0, 1]. general: a homography (8 parameters), else a similarity (rotation, scale,
    shift). Starts from the identity; each iteration re-weights every pair by weight / (1 + (r / c)²), r its
    residual (px) and c = 2.385 × 1.4826 × the median residual (Cauchy's 95 %-efficiency constant on a robust
    scale from the MAD, floored at 0.01 px), so pairs that disagree with the motion of the rest (a moving object,
    an edge that moves with exposure) fade out smoothly instead of being cut at a fixed tolerance, as RANSAC's
    inlier test does, and no random draw is involved. Points are centred and scaled to unit spread first, for
    the conditioning of the homography's normal equations."""
    n = len(src)
    if n < (8 if general else 4) or len(dst) != n:
        return None
    centre = src.mean(axis=0)
    spread = float(np.sqrt(((src - centre) ** 2).sum(axis=1).mean()))
    if not spread > 0:
        return None
    norm = np.array([[1 / spread, 0, -centre[0] / spread], [0, 1 / spread, -centre[1] / spread], [0, 0, 1.0]])
    s = (src - centre) / spread
    d = (dst - centre) / spread
    x, y = s[:, 0], s[:, 1]
    one, zero = np.ones(n), np.zeros(n)
    params = np.zeros(8 if general else 4)

    def model(p: np.ndarray) -> np.ndarray:
        if general:
            return np.array([[1 + p[0], p[1], p[2]], [p[3], 1 + p[4], p[5]], [p[6], p[7], 1.0]])
        return np.array([[1 + p[0], -p[1], p[2]], [p[1], 1 + p[0], p[3]], [0, 0, 1.0]])

    for _ in range(iterations):
        h = model(params)
        den = h[2, 0] * x + h[2, 1] * y + h[2, 2]
        u = (h[0, 0] * x + h[0, 1] * y + h[0, 2]) / den
        v = (h[1, 0] * x + h[1, 1] * y + h[1, 2]) / den
        r = np.concatenate([u - d[:, 0], v - d[:, 1]])
        if general:
            ju = np.column_stack([x, y, one, zero, zero, zero, -u * x, -u * y]) / den[:, None]
            jv = np.column_stack([zero, zero, zero, x, y, one, -v * x, -v * y]) / den[:, None]
        else:
            ju = np.column_stack([x, -y, one, zero])
            jv = np.column_stack([y, x, zero, one])
        jac = np.vstack([ju, jv])
        residual = np.hypot(r[:n], r[n:]) * spread  # px
        c = 2.385 * max(1.4826 * float(np.median(residual)), 0.01)
        wt = weights / (1.0 + (residual / c) ** 2)
        w2 = np.concatenate([wt, wt])
        normal = jac.T @ (jac * w2[:, None])
        try:
            step = np.linalg.solve(normal, -jac.T @ (w2 * r))
        except np.linalg.LinAlgError:
            return None
        params = params + step
        if float(np.abs(step).max()) * spread < 1e-4:
            break
    correction = np.linalg.inv(norm) @ model(params) @ norm
    if not np.isfinite(correction).all():
        return None
    return correction / correction[2, 2]


def _shoulder(curve: tuple[np.ndarray, np.ndarray]) -> float:
    """The frame level (in [0,1], gamma-encoded) where a frame->reference tone curve (`tone_curve`) reaches its
    shoulder: the lowest level above the middle of its rising part from which on its slope, over 1/32 of the
    range, stays outside [1/SHOULDER_SLOPE, SHOULDER_SLOPE] × the median slope. Above it the mapping is unreliable:
    the frame's highlight roll-off (a frame brighter than the reference: a step of the frame spans several of the
    reference's, so its noise and quantisation are amplified) or the reference's (a darker frame: the curve
    flattens and the frame's structure is mapped to nearly one value). 1.0 when the curve has no such level."""
    x, y = curve
    k = max(1, len(x) // 64)
    if len(x) <= 2 * k + 8:
        return 1.0
    level = x[k:-k]
    slope = (y[2 * k:] - y[:-2 * k]) / (x[2 * k:] - x[:-2 * k])
    live = slope > 1e-3  # flat runs are levels no sample reached, or where one side is clipped
    if live.sum() < 8:
        return 1.0
    typical = float(np.median(slope[live]))
    middle = level[live][int(live.sum()) // 2]
    # the shoulder is where the curve leaves its straight part for good: a bump of the quantile curve's slope in
    # the mid-tones (a histogram spike) is not one
    inside = (level <= middle) | ((slope <= SHOULDER_SLOPE * typical) & (slope >= typical / SHOULDER_SLOPE))
    last = int(np.flatnonzero(inside)[-1])
    return float(level[last + 1]) if last + 1 < len(level) else 1.0


def _trusted(ref_grey: np.ndarray, frame_grey: np.ndarray, curve: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """H×W bool: pixels of a window below the tone curve's shoulder (`_shoulder`) in the frame and in the reference
    (the curve's value there), where the frame's exposure mapping onto the reference is reliable.

    ref_grey, frame_grey: H×W luma in [0,1], the frame not yet mapped; curve: its tone curve onto the reference."""
    top = _shoulder(curve)
    if top >= 1.0:
        return np.ones(ref_grey.shape, bool)
    return (frame_grey < top) & (ref_grey < float(np.interp(top, *curve)))


def _grey(image: np.ndarray) -> np.ndarray:
    """Luma of an H×W×3 window, or the window itself when it already is luma (H×W)."""
    return image if image.ndim == 2 else luma(image)


def _refine_once(reference: np.ndarray, frame: np.ndarray, matrix: np.ndarray,
                 curve: tuple[np.ndarray, np.ndarray], chosen: Sequence[tuple[int, int]],
                 patch: int, grid: bool) -> np.ndarray | None:
    """One round of `_refine_level` over the windows `chosen` (top-left corners): the corrected homography, or
    None with fewer than 6 usable windows."""
    window = cv2.createHanningWindow((patch, patch), cv2.CV_32F)
    at, seen, confidence = [], [], []
    for x0, y0 in chosen:
        ref_grey = _grey(reference[y0:y0 + patch, x0:x0 + patch])
        shift = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], np.float64)
        frame_grey = _grey(cv2.warpPerspective(frame, shift @ matrix, (patch, patch), flags=cv2.INTER_LINEAR,
                                               borderMode=cv2.BORDER_CONSTANT, borderValue=0))
        usable = well_exposed(ref_grey) & well_exposed(frame_grey)
        if not grid:
            usable &= _trusted(ref_grey, frame_grey, curve)
        if usable.mean() < (0.5 if grid else 0.3):
            continue
        t = _window_shift(ref_grey, apply_curve(frame_grey, curve), usable, window, grid)
        if t is None:
            continue
        centre = np.array([x0 + (patch - 1) / 2, y0 + (patch - 1) / 2], np.float64)
        # the window's centre in the reference is seen at centre + t in the warped frame window: the current
        # matrix puts there the frame point that belongs at centre
        at.append(centre + t[:2])
        seen.append(centre)
        confidence.append(t[2])
    if len(at) < 6:
        return None
    if grid:
        # the frame point at a window's centre belongs at centre - t (to first order in t): a homography through
        # all of them (frames of about 1 MP are refined by this alone, measured in docs/studies/registration.py)
        centres = np.array(seen, np.float64)
        src = cv2.perspectiveTransform(centres[None], np.linalg.inv(matrix))[0]
        fitted, _ = cv2.findHomography(src, 2 * centres - np.array(at, np.float64), 0)
        return None if fitted is None or not np.isfinite(fitted).all() else fitted / fitted[2, 2]
    # the correction is fitted in the reference's coordinates, from where the current matrix puts each window's
    # centre to where it belongs: close to the identity, and composed with the current homography, so that its
    # perspective is kept; a homography through fewer than HOMOGRAPHY_WINDOWS window centres extrapolates wildly
    # to the image corners (6-9 px at 24 MP on hdrps El_Capitan 00, 10 usable windows), so fewer give a
    # similarity correction. Windows whose shift disagrees with one motion (an edge that moves with exposure, a
    # moving object) are down-weighted by the robust fit rather than cut at a tolerance
    correction = _robust_fit(np.array(at, np.float64), np.array(seen, np.float64), np.array(confidence, np.float64),
                             len(at) >= HOMOGRAPHY_WINDOWS)
    if correction is None:
        return None
    refined = correction @ matrix
    return refined / refined[2, 2]


def register(images: Sequence[np.ndarray] | np.ndarray, mode: str | bool = "auto",
             progress: Callable[[int, int], None] | None = None,
             reference: int | None = None,
             lumas: Sequence[Sequence[np.ndarray] | None] | None = None) -> list[FrameRegistration]:
    """Estimate every frame's registration to the reference frame (0-based `reference`; None = the middle one,
    index N//2); frames are N× H×W×3 float32 [0,1].

    mode: one of MODES (True = "auto", False = "off"). Returns one FrameRegistration per frame, in order; the
    reference's has model "reference". Nothing is applied here (see `apply`). progress: optional callable(done, n).
    lumas: per frame its `frame_lumas` of exactly these pixels, or None to make them here (the same registration
    either way, bit for bit)."""
    mode = check_mode(mode)
    n = len(images)
    centre = n // 2 if reference is None else int(reference)
    if not 0 <= centre < n:
        raise LUTFuseError(f"reference frame {reference}: there are {n} frames (0-based index 0-{n - 1})")
    eye = np.eye(3)
    given = list(lumas) if lumas is not None else [None] * n
    if len(given) != n:
        raise LUTFuseError(f"{len(given)} luma sets given for {n} frames")
    ref = Reference(images[centre], lumas=given[centre]) if mode != "off" else None
    out = []
    for i in range(n):
        if i == centre:
            rec = FrameRegistration(i, "reference", False, eye.copy(), (0.0, 0.0), 0.0, 1.0, 0.0, math.nan,
                                    math.nan, "reference frame")
        elif ref is None:
            rec = FrameRegistration(i, "identity", False, eye.copy(), (0.0, 0.0), 0.0, 1.0, 0.0, math.nan,
                                    math.nan, "alignment off")
        else:
            rec = estimate(ref, images[i], mode, index=i, lumas=given[i])
        out.append(rec)
        if progress is not None:
            progress(i + 1, n)
    return out


# ---------------------------------------------------------------------------------------------- applying

def warp_frame(image: np.ndarray, matrix: np.ndarray,
               flags: int = cv2.INTER_LANCZOS4) -> tuple[np.ndarray, np.ndarray]:
    """Apply a frame->output homography at full size: H×W×C float32 -> (warped H×W×C float32, H×W bool covered).

    Lanczos (8×8) resampling by default: bilinear softens a frame moved by a fraction of a pixel (Laplacian energy
    of the Mertens fusion of deepfuse/Seq_41 13 % below the unregistered one's; Lanczos: 2 %); the overshoot it
    adds at edges is clipped to the input's range [0, 1]. Uncovered pixels replicate the nearest edge (a neutral
    placeholder; callers fill them, see `fill_invalid`)."""
    h, w = image.shape[:2]
    warped = cv2.warpPerspective(image, matrix, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    if flags != cv2.INTER_NEAREST:
        np.clip(warped, 0.0, 1.0, out=warped)
    # covered = the inverse-mapped pixel centre lies inside the frame (to within the resampling footprint)
    ones = np.ones((h, w), np.uint8)
    inside = cv2.warpPerspective(ones, matrix, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                                 borderValue=0)
    # a few pixels in from the border: Lanczos samples there mix in the replicated edge
    covered = np.asarray(cv2.erode(inside, np.ones((7, 7), np.uint8), borderType=cv2.BORDER_REPLICATE)) > 0
    return warped, covered


def fill_invalid(images: np.ndarray, valid: np.ndarray, reference: int, holes: np.ndarray | None = None) -> None:
    """In place: every frame's invalid pixels (or only `holes`, N×H×W bool, where given) get a prediction from the
    frames that are valid there.

    images: N×H×W×3 float32 [0,1]; valid: N×H×W bool. A frame's hole is filled with the reference frame mapped to
    the frame's exposure (per-channel histogram specification over the pixels valid in both); where the reference is
    invalid too, with the nearest frame in exposure order that is valid there, likewise mapped; a pixel no frame
    covers takes the nearest covered pixel's content (in the same frame)."""
    n = len(images)
    order = sorted(range(n), key=lambda j: (j != reference, abs(j - reference)))
    for i in range(n):
        hole = ~valid[i] if holes is None else holes[i].copy()
        if not hole.any():
            continue
        for j in order:
            if j == i:
                continue
            take = hole & valid[j]
            if not take.any():
                continue
            both = valid[i] & valid[j]
            mapped = map_exposure(images[j], images[i], both)
            images[i][take] = mapped[take]
            hole &= ~take
            if not hole.any():
                break
        if hole.any():
            _nearest_fill(images[i], ~hole)


def _nearest_fill(image: np.ndarray, known: np.ndarray) -> None:
    """In place: pixels where `known` is False copy the nearest known pixel of the same image."""
    if not known.any():
        return
    _, labels = cv2.distanceTransformWithLabels((known == 0).astype(np.uint8), cv2.DIST_L2, 5,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    ys, xs = np.nonzero(known == 1)
    # labels number the zero pixels of the input (the known ones) in row-major scan order, from 1
    lut_y = np.concatenate([[0], ys])
    lut_x = np.concatenate([[0], xs])
    holes = ~known
    image[holes] = image[lut_y[labels[holes]], lut_x[labels[holes]]]


def common_rectangle(valid: np.ndarray, max_side: int = 512) -> tuple[int, int, int, int]:
    """Largest axis-aligned rectangle inside the H×W bool mask: (x0, y0, x1, y1), end-exclusive, full size.

    Found on a copy at most max_side px wide (histogram-of-runs maximal rectangle), shrunk to stay inside."""
    h, w = valid.shape
    f = min(1.0, max_side / max(h, w))
    sh, sw = max(1, int(h * f)), max(1, int(w * f))
    # a small cell is inside only if all its full-size pixels are
    small = cv2.resize(valid.astype(np.float32), (sw, sh), interpolation=cv2.INTER_AREA) > 0.999 if f < 1 else valid
    heights = np.zeros(sw, np.int64)
    best = (0, 0, 0, 0, 0)
    for y in range(sh):
        heights = np.where(small[y], heights + 1, 0)
        stack: list[int] = []
        for x in range(sw + 1):
            cur = heights[x] if x < sw else 0
            while stack and heights[stack[-1]] >= cur:
                top = stack.pop()
                left = stack[-1] + 1 if stack else 0
                area = int(heights[top]) * (x - left)
                if area > best[0]:
                    best = (area, left, y - int(heights[top]) + 1, x, y + 1)
            stack.append(x)
    if best[0] == 0:
        raise LUTFuseError("no pixel is covered by every frame: cannot crop")
    _, x0, y0, x1, y1 = best
    return (math.ceil(x0 * w / sw), math.ceil(y0 * h / sh), math.floor(x1 * w / sw), math.floor(y1 * h / sh))


def coverage(records: Sequence[FrameRegistration], height: int, width: int) -> np.ndarray:
    """H×W bool: the pixels every registered frame covers (all True when no transform was applied)."""
    covered = np.ones((height, width), bool)
    for rec in records:
        if rec.applied:
            ones = np.ones((height, width), np.uint8)
            covered &= cv2.warpPerspective(ones, rec.matrix, (width, height), flags=cv2.INTER_NEAREST,
                                           borderMode=cv2.BORDER_CONSTANT, borderValue=0) > 0
    # the same margin warp_frame takes off
    return cv2.erode(covered.astype(np.uint8), np.ones((7, 7), np.uint8), borderType=cv2.BORDER_REPLICATE) > 0


def transforms_document(records: Sequence[FrameRegistration], files: Sequence[str], height: int, width: int,
                        crop: tuple[int, int, int, int] | None = None,
                        sources: Sequence[tuple[np.ndarray | None, tuple[int, int] | None]] | None = None) -> dict:
    """The --transforms JSON: per input file the 3×3 homography mapping its pixel coordinates (x right, y down,
    origin at the top-left pixel's centre; the pixels as the file's decoder gives them, before the EXIF turn: stored
    order for JPEG, PNG, TIFF and RAW, already upright for HEIF and JPEG XL, whose decoders turn them) onto the
    output's (identity for the reference file when nothing turned or cropped it; a crop's offset included), with
    what registration decided.

    records: one per frame (height × width px, the bracket's frames: "frame_size"); sources: per frame, the map
    from its file's pixel coordinates to the frame's (an EXIF turn, a centre-crop to the common size; None =
    identity) and the file's size in those coordinates (width, height; None = the frame's), as
    `core.bracket.Frame.from_file` / `file_size`."""
    offset = np.eye(3)
    if crop is not None:
        offset[0, 2], offset[1, 2] = -crop[0], -crop[1]
    frames = []
    for k, (rec, name) in enumerate(zip(records, files)):
        from_file, size = sources[k] if sources is not None else (None, None)
        matrix = offset @ rec.matrix @ (np.eye(3) if from_file is None else from_file)
        frames.append({
            "file": name, "input_size": list(size or (width, height)), "model": rec.model, "applied": rec.applied,
            "homography": [[float(v) for v in row] for row in matrix / matrix[2, 2]],
            "shift_px": [round(rec.shift_px[0], 4), round(rec.shift_px[1], 4)],
            "rotation_deg": round(rec.rotation_deg, 5), "scale": round(rec.scale, 6),
            "corner_px": round(rec.corner_px, 4),
            "score_identity": None if math.isnan(rec.score_identity) else round(rec.score_identity, 5),
            "score": None if math.isnan(rec.score) else round(rec.score, 5),
            "reason": rec.reason,
        })
    out_w, out_h = (width, height) if crop is None else (crop[2] - crop[0], crop[3] - crop[1])
    return {"convention": "x right, y down, origin at the top-left pixel's centre; maps each file's pixels as "
                          "decoded, before its EXIF orientation is applied, onto the output's",
            "frame_size": [width, height], "output_size": [out_w, out_h],
            "crop": None if crop is None else list(crop), "frames": frames}
