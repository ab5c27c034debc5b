"""Checks that the frames of a bracket are one scene at several exposures: no duplicated frame, no frame of
another scene. A bracket that fails fuses into a flat or double image, so the editor and CLI warn.

Duplicates are frames with identical pixels. A different scene is detected by structure, not by brightness:
each frame's luma (on a small copy) is replaced by its rank, which equalises exposure without knowing the
camera's response (a monotone tone change keeps ranks; the idea behind Ward's median-threshold bitmaps), the
coarse layout is removed with a Gaussian high-pass (many unrelated photos share "bright sky over dark ground"),
and neighbouring frames in exposure order are compared by the correlation of that detail over pixels clipped in
neither frame."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import cv2
import numpy as np

from lutfuse.core.colour import luma

CHECK_SIDE = 128         # px, longest side of the copies compared (small: alignment errors of a pixel vanish)
CLIP_LOW, CLIP_HIGH = 0.03, 0.97   # luma outside this range carries no structure (clipped to black or white)
DETAIL_SIGMA = 8.0       # px at CHECK_SIDE: the layout coarser than this (sky above ground) is removed
MIN_PIXELS = 200         # fewer unclipped pixels in common than this: too little to judge, no warning
# Rank correlation of the detail below this: not the same scene. Measured on ../shared/data (67 brackets,
# neighbouring frames): same scene >= 0.67 (all but one >= 0.89); 400 random pairs of different scenes <= 0.47
# (99 % <= 0.27).
STRUCTURE_MIN = 0.57


def _small_luma(image: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """H×W×3 float in [0,1] -> h×w Rec. 709 luma of an area-averaged copy (longest side CHECK_SIDE, or `size`
    as (w, h))."""
    h, w = image.shape[:2]
    if size is None:
        scale = min(1.0, CHECK_SIDE / max(h, w))
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(np.asarray(image, np.float32), size, interpolation=cv2.INTER_AREA)
    return luma(small)


def _rank_detail(luma: np.ndarray) -> np.ndarray:
    """Luma replaced by its rank in [0,1) (exposure-equalised), minus its Gaussian blur (the detail)."""
    ranks = np.empty(luma.size, np.float32)
    ranks[np.argsort(luma.ravel(), kind="stable")] = np.arange(luma.size, dtype=np.float32) / luma.size
    ranks = ranks.reshape(luma.shape)  # type: ignore[assignment]
    return ranks - cv2.GaussianBlur(ranks, (0, 0), DETAIL_SIGMA)


def structure_correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    """Correlation in [-1, 1] of the exposure-equalised detail of frames `a` and `b` (H×W×3 float in [0,1];
    `b` is resized to `a` if needed) over pixels clipped in neither, or None when fewer than MIN_PIXELS are
    usable. Near 1 for one scene at two exposures, near 0 for unrelated scenes."""
    la = _small_luma(a)
    lb = _small_luma(b, (la.shape[1], la.shape[0]))
    keep = (la > CLIP_LOW) & (la < CLIP_HIGH) & (lb > CLIP_LOW) & (lb < CLIP_HIGH)
    # the edge of a clipped area is a step in one frame and none in the other: leave it out
    keep = cv2.erode(keep.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    if keep.sum() < MIN_PIXELS:
        return None
    da, db = _rank_detail(la)[keep], _rank_detail(lb)[keep]
    da -= da.mean()
    db -= db.mean()
    denom = float(np.sqrt((da * da).sum() * (db * db).sum()))
    return float((da * db).sum() / denom) if denom > 0 else None


def bracket_warnings(images: Sequence[np.ndarray] | np.ndarray, names: Sequence[str]) -> list[str]:
    """Readable warnings about a bracket whose frames (N×H×W×3 float in [0,1], darkest first, named `names`)
    are not one scene at several exposures: duplicated frames and frames that look like another scene.
    Empty when nothing is wrong. Never raises for a plausible bracket (the user may fuse anyway)."""
    images = list(images)
    out: list[str] = []
    duplicate_of: dict[int, int] = {}
    for j in range(len(images)):
        for i in range(j):
            if i not in duplicate_of and images[i].shape == images[j].shape and np.array_equal(images[i],
                                                                                               images[j]):
                duplicate_of[j] = i
                out.append(f"{names[j]} has the same pixels as {names[i]}: a duplicated frame adds no exposure")
                break
    distinct = [i for i in range(len(images)) if i not in duplicate_of]
    for i, j in pairwise(distinct):
        rho = structure_correlation(images[i], images[j])
        if rho is not None and rho < STRUCTURE_MIN:
            out.append(f"{names[j]} does not look like the same scene as {names[i]} (structure correlation "
                       f"{rho:.2f} after equalising exposure): the fusion will show both")
    return out


def unregistered_copies(bracket, side: int = 2 * CHECK_SIDE) -> np.ndarray | None:
    """Small copies (longest side `side`) of a registered bracket's frames put back where the camera saw them
    (each frame warped by the inverse of its `core.registration.FrameRegistration.matrix`), or None when no
    frame was moved. The scene check must see the frames as shot: registration can bend a frame of another scene
    far enough to look alike (a 566 px shift and 2.6° turn of a stranger frame raised its structure correlation
    from -0.09 to 0.73 on deepfuse Seq_11 + Seq_14)."""
    records = getattr(bracket, "registration", None) or []
    if not any(getattr(r, "applied", False) and r.model != "reference" for r in records):
        return None
    images = bracket.images
    h, w = images.shape[1:3]
    scale = min(1.0, side / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    to_small = np.diag([scale, scale, 1.0])
    out = []
    for image, record in zip(images, records):
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        if record.applied and record.model != "reference":
            matrix = to_small @ record.matrix @ np.linalg.inv(to_small)
            # registered(y) = frame(M⁻¹ y), so frame(x) = registered(M x): OpenCV's inverse-map warp
            small = cv2.warpPerspective(small, matrix, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                        borderMode=cv2.BORDER_REFLECT)
        out.append(small)
    return np.stack(out)


def scene_warnings(bracket) -> list[str]:
    """`bracket_warnings` for a loaded core.bracket.Bracket, minus what its loader already said, one line each.

    Duplicated frames: the loader notes them itself (`Bracket.notes`, "holds the same pixels as"; identical
    frames sort next to each other), so only those it missed are added. Another scene: judged on the frames as
    shot (`unregistered_copies`), not as registration bent them. Frames are named by file name. Never raises
    for a plausible bracket."""
    names = [f.path.name for f in bracket.frames]
    noted = " ".join(getattr(bracket, "notes", []))
    out = []
    for warning in bracket_warnings(bracket.images, names):
        if " has the same pixels as " in warning:
            first, second = warning.split(":")[0].split(" has the same pixels as ")
            if f"{first}: holds the same pixels as" in noted or f"{second}: holds the same pixels as" in noted:
                continue
            out.append(warning)
    shot = unregistered_copies(bracket)
    scenes = bracket_warnings(bracket.images if shot is None else shot, names)
    return out + [w for w in scenes if " has the same pixels as " not in w]
