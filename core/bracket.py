"""Bracket loading: read 2-9 exposures (JPEG, PNG, TIFF, HEIC, camera RAW), reconcile their orientation tags,
order them by exposure, bring them into one colour space, validate, register (`core.registration`) and deghost
(`core.deghost`). Decoding one file is `core.readers`."""

from __future__ import annotations

import hashlib
import math
import os
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from itertools import islice, pairwise
from pathlib import Path

import cv2
import numpy as np

from lutfuse.core import exif as exifmod
from lutfuse.core import profiles
from lutfuse.core.colour import luma
from lutfuse.core.errors import BracketError, shown_path
from lutfuse.core.readers import (  # noqa: F401  (re-exported: the loader's public names live here)
    CV_SUFFIXES,
    DEFAULT_MAX_PIXELS,
    FORMAT_NAMES,
    HEIF_SUFFIXES,
    IMAGE_SUFFIXES,
    MIN_SIDE,
    RAW_SUFFIXES,
    TIFF_SUFFIXES,
    Decoded,
    check_regular_file,
    header_shape,
    images_in_file,
    read_frame,
)

MIN_FRAMES, MAX_FRAMES = 2, 9


def check_reference(reference: int | None, count: int) -> int:
    """The 0-based reference index (darkest first) for a bracket of `count` frames: `reference`, or the middle
    frame (count // 2) when None. BracketError when it is not an index of the bracket."""
    if reference is None:
        return count // 2
    if isinstance(reference, bool) or not isinstance(reference, (int, np.integer)) or not 0 <= reference < count:
        raise BracketError(f"reference frame {reference!r}: the bracket has {count} frames (0-based index "
                           f"0-{count - 1}, darkest first)")
    return int(reference)
_GAMMA = 2.2  # assumed display gamma when linearising 8/16-bit frames to estimate their relative exposure


def relative_evs(evs: Sequence[float]) -> list[float]:
    """EVs relative to the middle frame (what a photographer calls −2 / 0 / +2)."""
    mid = evs[len(evs) // 2]
    return [e - mid for e in evs]


@dataclass(frozen=True)
class Frame:
    """One exposure: pixels H×W×3 float32 RGB in [0,1] (orientation applied), bit depth, EV and EXIF."""

    path: Path
    image: np.ndarray
    bit_depth: int
    ev: float
    ev_source: str
    exif: bytes | None
    valid: np.ndarray | None = None  # H×W bool: True where the frame has data (alpha > 0, finite, covered); None = all
    icc: bytes | None = None  # ICC profile the pixels are encoded in (None = sRGB)
    xmp: bytes | None = None  # the file's XMP packet, for the writer
    # the file's stored pixel coordinates -> this frame's: its EXIF turn and a centre-crop to the bracket's common
    # size (3×3; None = the same coordinates), and its stored size (width, height); for --transforms
    from_file: np.ndarray | None = None
    file_size: tuple[int, int] | None = None


@dataclass
class Bracket:
    """Frames of one scene, darkest first; `aligned` tells whether registration to the reference frame was asked
    for; `reference_index` (0-based, darkest first) is that frame: registration, deghosting and the no-data fill
    take their geometry and content from it (None when constructing = the middle frame, index N//2).

    Where a frame's `valid` is False (outside its registered area, or moved content found by deghosting), its image
    holds a prediction: the reference frame's content re-rendered at that frame's exposure (`fill_invalid`), so
    every frame is a plausible image everywhere and fusion weights can still exclude those pixels."""

    frames: list[Frame]
    aligned: bool
    # per frame what registration decided (core.registration.FrameRegistration), None when not registered
    registration: list | None = None
    # H×W float32 in [0,1]: where deghosting found moved content (union over frames), None when it did not run
    ghost: np.ndarray | None = None
    # What the loader noticed and did that the user should hear about (one line each, naming the file).
    notes: list[str] = field(default_factory=list)
    # The stack built while loading, so that `images` does not copy every frame again.
    _stack: np.ndarray | None = field(default=None, repr=False, compare=False)
    # 0-based index (darkest first) of the reference frame; None = the middle frame (set in __post_init__)
    reference_index: int = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.reference_index = check_reference(self.reference_index, len(self.frames))

    @property
    def images(self) -> np.ndarray:
        """N×H×W×3 float32 stack of the frames' images in [0,1], darkest first."""
        stack = self._stack
        # Reuse the loader's stack only while every frame still is the view at its own index.
        if stack is None or len(stack) != len(self.frames) or any(
                f.image.ctypes.data != stack[i].ctypes.data or f.image.shape != stack[i].shape
                for i, f in enumerate(self.frames)):
            self._stack = np.stack([f.image for f in self.frames]).astype(np.float32, copy=False)
        return self._stack  # type: ignore[return-value]

    @property
    def bit_depth(self) -> int:
        """Largest source bit depth over the frames (8 or 16)."""
        return max(f.bit_depth for f in self.frames)

    def middle(self) -> Frame:
        """The middle frame (index N//2), the source of the output's EXIF and the working colour space."""
        return self.frames[len(self.frames) // 2]

    def reference(self) -> Frame:
        """The reference frame (`reference_index`) that the other frames were registered and deghosted to."""
        return self.frames[self.reference_index]

    @property
    def valid(self) -> np.ndarray | None:
        """N×H×W bool: where each frame has its own data (see Frame.valid); None when all frames are valid
        everywhere."""
        if all(f.valid is None for f in self.frames):
            return None
        shape = self.frames[0].image.shape[:2]
        return np.stack([np.ones(shape, bool) if f.valid is None else f.valid for f in self.frames])

    def mean(self) -> np.ndarray:
        """H×W×3 float32 per-pixel mean of the frames in [0,1]: what the engine's base (core.base) starts from.

        Where a frame is invalid its image holds the reference re-rendered at its exposure (see the class
        docstring), so this is the mean over the valid frames with each missing frame predicted from the others;
        a plain mean over the valid frames only would change the base's exposure where coverage changes and the
        global LUT would show that as a seam along the registered border."""
        return self.images.mean(axis=0, dtype=np.float32)

    def cropped(self, x0: int, y0: int, x1: int, y1: int) -> Bracket:
        """A bracket of the frames' [y0:y1, x0:x1] window (end-exclusive), valid masks and ghost mask cut alike."""
        h, w = self.frames[0].image.shape[:2]
        if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
            raise BracketError(f"crop ({x0}, {y0})-({x1}, {y1}) lies outside the {w}×{h} frames")
        stack = np.ascontiguousarray(self.images[:, y0:y1, x0:x1])
        frames = [replace(f, image=stack[i], valid=None if f.valid is None or f.valid[y0:y1, x0:x1].all()
                          else f.valid[y0:y1, x0:x1].copy()) for i, f in enumerate(self.frames)]
        ghost = None if self.ghost is None else self.ghost[y0:y1, x0:x1].copy()
        return Bracket(frames=frames, aligned=self.aligned, registration=self.registration, ghost=ghost,
                       notes=list(self.notes), _stack=stack, reference_index=self.reference_index)

    @classmethod
    def from_images(cls, images: Sequence[np.ndarray] | np.ndarray, *, evs: Sequence[float] | None = None,
                    bit_depth: int = 8, aligned: bool = False, valid: np.ndarray | None = None,
                    reference: int | None = None) -> Bracket:
        """A bracket of in-memory frames (each H×W×3 float in [0,1], already darkest first), e.g. a validation
        stack, for `Engine.prepare`: no files behind it (paths are placeholders `frame0`, `frame1`, ...),
        no EXIF, EVs 0, 1, 2, ... unless given (source "brightness"), not reordered, not aligned.
        valid: optional N×H×W bool; the invalid pixels' content is replaced by a prediction from the valid frames
        (`core.registration.fill_invalid`, from the reference frame first) in the bracket's own copy.
        reference: 0-based index of the reference frame (None = the middle one)."""
        if len(images) < MIN_FRAMES or len(images) > MAX_FRAMES:
            raise BracketError(f"a bracket has {MIN_FRAMES} to {MAX_FRAMES} frames, got {len(images)}")
        try:
            stack = np.ascontiguousarray(np.stack([np.asarray(im) for im in images]), dtype=np.float32)
        except ValueError as exc:
            raise BracketError(f"frames must be H×W×3 images of one size ({exc})") from None
        if stack.ndim != 4 or stack.shape[-1] != 3:
            raise BracketError(f"frames must be H×W×3 images of one size, got a stack of shape {stack.shape}")
        reference = check_reference(reference, len(stack))
        evs = [float(i) for i in range(len(stack))] if evs is None else [float(e) for e in evs]
        if len(evs) != len(stack):
            raise BracketError(f"{len(evs)} EVs given for {len(stack)} frames")
        masks: list[np.ndarray | None] = [None] * len(stack)
        if valid is not None:
            valid = np.asarray(valid, bool)
            if valid.shape != stack.shape[:3]:
                raise BracketError(f"valid masks of shape {valid.shape} do not fit frames of shape {stack.shape}")
            if stack is images:
                stack = stack.copy()
            from lutfuse.core.registration import fill_invalid

            fill_invalid(stack, valid, reference)
            masks = [None if v.all() else v.copy() for v in valid]
        frames = [Frame(path=Path(f"frame{i}"), image=stack[i], bit_depth=bit_depth, ev=evs[i],
                        ev_source="brightness", exif=None, valid=masks[i]) for i in range(len(stack))]
        return cls(frames=frames, aligned=aligned, _stack=stack, reference_index=reference)


# ---------------------------------------------------------------------------------------------- exposure

def _exif_evs(settings: list[tuple[float | None, float | None, float | None]]) -> list[float] | None:
    """EV = log2(t·ISO/100/N²) per frame, or None unless every frame has comparable EXIF settings."""
    if any(t is None for t, _, _ in settings):
        return None
    evs = []
    for index in (1, 2):  # f-number and ISO may be absent, but then absent on all frames (taken as constant)
        present = [s[index] is not None for s in settings]
        if any(present) and not all(present):
            return None
    for t, n, iso in settings:
        evs.append(math.log2(t * (iso or 100.0) / 100.0 / (n or 1.0) ** 2))  # type: ignore[operator]
    return evs


def _linear_luma(image: np.ndarray) -> np.ndarray:
    """H×W×3 [0,1] frame -> at most 512-px-wide grey image, gamma-decoded (relative linear light)."""
    scale = min(1.0, 512.0 / max(image.shape[:2]))
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image
    return luma(small).clip(0, 1)


def _common_data(valid: Sequence[np.ndarray | None] | None, shape: tuple[int, int]) -> np.ndarray | None:
    """Where every frame has data, at the size of `_linear_luma`'s output (`shape`); None = everywhere."""
    masks = [v for v in (valid or ()) if v is not None]
    if not masks:
        return None
    common = np.logical_and.reduce(masks).astype(np.float32)
    small = cv2.resize(common, (shape[1], shape[0]), interpolation=cv2.INTER_AREA) if common.shape != shape else common
    return small > 0.999


def brightness_evs(images: Sequence[np.ndarray] | np.ndarray,
                   valid: Sequence[np.ndarray | None] | None = None,
                   lumas: Sequence[np.ndarray] | None = None) -> list[float]:
    """Relative EV per frame (H×W×3 in [0,1]) from its brightness; 0 for the darkest, larger = brighter.

    `valid` (one H×W bool mask or None per frame) restricts the estimate to pixels every frame has data for, so
    that colour hidden under alpha 0 does not sway it. lumas: the frames' `_linear_luma` when already made.
    """
    lumas = [_linear_luma(im) for im in images] if lumas is None else list(lumas)
    common = _common_data(valid, lumas[0].shape)
    if common is not None and common.any():
        lumas = [luma[common] for luma in lumas]
    means = [float((luma ** _GAMMA).mean()) for luma in lumas]
    order = sorted(range(len(images)), key=lambda i: means[i])
    evs = [0.0] * len(images)
    for a, b in pairwise(order):
        # The exposure ratio of two frames is best seen where neither is crushed nor clipped.
        usable = (lumas[a] > 0.02) & (lumas[a] < 0.95) & (lumas[b] > 0.02) & (lumas[b] < 0.95)
        if usable.mean() > 0.01:
            dark, bright = float((lumas[a][usable] ** _GAMMA).sum()), float((lumas[b][usable] ** _GAMMA).sum())
        else:
            dark, bright = means[a], means[b]
        step = math.log2(bright / dark) if dark > 0 and bright > 0 else 0.0
        evs[b] = evs[a] + max(step, 0.0)  # keep EV consistent with the brightness order
    return evs


def _linear_means(images: Sequence[np.ndarray] | np.ndarray, valid: Sequence[np.ndarray | None],
                  lumas: Sequence[np.ndarray] | None = None) -> list[float]:
    """Mean relative linear light of each frame over the pixels all frames have data for (lumas: the frames'
    `_linear_luma` when already made)."""
    lumas = [_linear_luma(im) for im in images] if lumas is None else list(lumas)
    common = _common_data(valid, lumas[0].shape)
    if common is not None and common.any():
        lumas = [luma[common] for luma in lumas]
    return [float((luma ** _GAMMA).mean()) for luma in lumas]


_TIE_EV = 1 / 6  # EXIF exposures closer than this are one exposure (cameras step in 1/3 EV at the finest)
# A frame EXIF calls brighter (by 1/6 EV or more, i.e. ≥ 12 % more light) whose mean light is below 97 % of the
# darker one's: the order is contradicted even in frames that are mostly clipped, where the means differ little
# (at 90 % a reversed bracket of a bright scene passed as EXIF-ordered).
_CONTRADICTION = 0.97
# Neighbouring exposures of a camera bracket are 1/3 to 3 EV apart (AEB steps top out at 3 EV; manual brackets
# reach 4-5); a step over 8 EV is a wrong tag (a time in the wrong unit, a rewritten ExposureTime), not a bracket.
_MAX_STEP = 8.0


def exposure_evs(settings: Sequence[tuple[float | None, float | None, float | None]],
                 images: Sequence[np.ndarray] | np.ndarray,
                 valid: Sequence[np.ndarray | None], names: Sequence[str], notes: list[str],
                 lumas: Sequence[np.ndarray] | None = None) -> tuple[list[float], str]:
    """(EV per frame, "exif" or "brightness"): EXIF exposures where they are complete, distinct, no more than
    _MAX_STEP EV apart from one to the next, and agree with the pixels; else brightness, with a note when EXIF was
    there but tied, implausible or contradicted (a "pseudo-bracket" made by exporting one raw file several times
    carries one exposure time on every frame). lumas: the frames' `_linear_luma` when already made."""
    evs = _exif_evs(list(settings))
    if evs is None:
        for index, what in ((0, "exposure time"), (1, "f-number"), (2, "ISO")):
            have = [s[index] is not None for s in settings]
            if any(have) and not all(have):  # one frame re-saved by a tool that drops EXIF, or a frame of elsewhere
                missing = ", ".join(name for name, ok in zip(names, have) if not ok)
                notes.append(f"{missing}: no EXIF {what}, while the other frames have one (EXIF dropped by an "
                             "editor or converter?); frames are ordered by their brightness")
                break
        return brightness_evs(images, valid, lumas), "brightness"
    by_exif = sorted(range(len(evs)), key=lambda i: evs[i])
    for a, b in pairwise(by_exif):
        if evs[b] - evs[a] < _TIE_EV:
            notes.append(f"{names[a]}, {names[b]}: EXIF gives both the same exposure ({evs[a]:+.2f} EV), as in a "
                         "pseudo-bracket exported from one raw file; frames are ordered by their brightness")
            return brightness_evs(images, valid, lumas), "brightness"
        if evs[b] - evs[a] > _MAX_STEP:
            notes.append(f"{names[b]}: EXIF puts it {evs[b] - evs[a]:.1f} EV above {names[a]}, more than any "
                         f"bracket steps (at most {_MAX_STEP:g} EV); frames are ordered by their brightness")
            return brightness_evs(images, valid, lumas), "brightness"
    means = _linear_means(images, valid, lumas)
    for a, b in pairwise(by_exif):
        if means[b] < means[a] * _CONTRADICTION:
            notes.append(f"{names[b]}: EXIF says it is {evs[b] - evs[a]:.1f} EV brighter than {names[a]}, but its "
                         "pixels are darker; frames are ordered by their brightness")
            return brightness_evs(images, valid, lumas), "brightness"
    return evs, "exif"


# ---------------------------------------------------------------------------------------------- registration

def register_stack(stack: np.ndarray, valid: np.ndarray | None, align: str | bool = "auto",
                   deghost: str = "off", reference: int | None = None,
                   lumas: Sequence[Sequence[np.ndarray] | None] | None = None
                   ) -> tuple[list, np.ndarray | None, np.ndarray | None]:
    """In place: register N×H×W×3 float32 frames to the reference one (0-based `reference`, None = the middle
    frame N//2), fill what they do not cover from it, deghost against it.

    valid: N×H×W bool of the frames' own valid pixels (None = all; their content already filled, see
    `fill_no_data`), updated in place where given. Returns (registration records, N×H×W bool valid
    masks or None when every pixel of every frame is valid, H×W ghost mask or None). A frame whose estimate fails
    the check is not touched at all, so a tripod bracket with deghost off comes out bit-identical to align="off".
    lumas: per frame its `core.registration.frame_lumas` of exactly these pixels, or None (made here)."""
    from lutfuse.core import deghost as deghostmod
    from lutfuse.core import registration

    reference = check_reference(reference, len(stack))
    records = registration.register(stack, align, reference=reference, lumas=lumas)
    holes = None
    for rec in records:
        if rec.applied:
            k = rec.index
            stack[k], covered = registration.warp_frame(stack[k], rec.matrix)
            if valid is None:
                valid = np.ones(stack.shape[:3], bool)
            else:  # the frame's own no-data pixels move with it
                valid[k] = registration.warp_frame(valid[k].astype(np.float32), rec.matrix,
                                                   cv2.INTER_NEAREST)[0] > 0.5
            if holes is None:
                holes = np.zeros(stack.shape[:3], bool)
            holes[k] = ~valid[k] | ~covered
            valid[k] &= covered
    if holes is not None:
        # the pixels a warp moved in from outside (or moved no-data into) get a prediction; frames not warped keep
        # their own fill (fill_no_data)
        registration.fill_invalid(stack, valid, reference, holes)  # type: ignore[arg-type]
    ghost = None
    if deghostmod.check_strength(deghost) != "off":
        if valid is None:
            valid = np.ones(stack.shape[:3], bool)
        ghost = deghostmod.deghost(stack, valid, deghost, reference)
    if valid is not None and valid.all():
        valid = None
    return records, valid, ghost


# ---------------------------------------------------------------------------------------------- bracket

def _expand(inputs: Sequence[str | Path]) -> list[Path]:
    """The frame files: the given files, or the image files of one folder (sorted by name, hidden ones skipped)."""
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    paths = [Path(p) for p in inputs]
    if len(paths) == 1 and paths[0].is_dir():
        folder = paths[0]
        # is_file follows links and is False for FIFOs, devices and link loops: those are not frames of a folder.
        files = sorted((p for p in folder.iterdir()
                        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES),
                       key=lambda p: p.name)
        if not files:
            raise BracketError(f"{shown_path(folder)}: no image files in this folder ({FORMAT_NAMES})")
        return files
    for p in paths:
        if p.is_dir():
            raise BracketError(f"{shown_path(p)}: is a folder; give either one folder or 2-{MAX_FRAMES} image files")
    return paths


# ---------------------------------------------------------------------------------------------- orientation

_ORIENTATION_WORDS = {1: "upright", 2: "mirrored", 3: "turn 180°", 4: "flipped vertically", 5: "transposed",
                      6: "turn 90° clockwise", 7: "transverse", 8: "turn 90° counter-clockwise"}


def _tag(code: int) -> str:
    return f"EXIF Orientation {code} ({_ORIENTATION_WORDS.get(code, '?')})"


def _upright_shape(shape: tuple[int, ...], code: int) -> tuple[int, int]:
    return (shape[1], shape[0]) if code >= 5 else (shape[0], shape[1])


# Frames of one bracket may differ in size by a few pixels (some cameras' HDR modes and raw converters' lens
# corrections crop each frame slightly differently): up to this share of a side, and at least SIZE_SLACK_PX,
# they are centre-cropped to their common size (registration then removes the offset left); more is refused.
SIZE_SLACK = 0.01
SIZE_SLACK_PX = 2


def _close_sizes(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Whether two (H, W) frame sizes differ by no more than the slack on each side (see SIZE_SLACK)."""
    return all(abs(x - y) <= max(SIZE_SLACK_PX, SIZE_SLACK * max(x, y)) for x, y in zip(a, b))


def _bitmap(image: np.ndarray) -> np.ndarray:
    """64×64 median-threshold bitmap of an H×W×3 frame: the same for any exposure of one scene (Ward 2003)."""
    grey = cv2.resize(image.mean(axis=2, dtype=np.float32), (64, 64), interpolation=cv2.INTER_AREA)
    return grey > np.median(grey)


@dataclass(frozen=True)
class StoredFrame:
    """What orientation needs to know of a decoded frame: its name, tag, stored size and a small copy of it."""

    path: Path
    orientation: int  # EXIF code 1..8 of the file
    shape: tuple[int, int]  # stored (not upright) H, W
    thumb: np.ndarray  # the stored pixels, every 8th row and column

    @classmethod
    def of(cls, decoded: Decoded) -> StoredFrame:
        """The orientation facts of a decoded frame (its pixels may be dropped afterwards)."""
        return cls(decoded.path, decoded.orientation, decoded.pixels.shape[:2], decoded.pixels[::8, ::8].copy())


def reconcile_orientations(frames: Sequence[StoredFrame], notes: list[str]) -> list[int]:
    """The EXIF orientation code to apply to each frame; frames whose tags disagree are settled by their pixels.

    A camera writes one orientation for a whole bracket, so a tag that differs is usually wrong (edited, or lost
    and rewritten by one export). The most common tag is the bracket's (ties: the lower code); for a frame with
    another tag, both readings are tried, "its tag is wrong" (turn it like the others) and "its pixels are stored
    turned" (turn it by its own tag), and the one whose median-threshold bitmap matches the others' is kept. A
    note names the file and the tag either way. BracketError when neither reading gives the others' size.
    """
    codes = [f.orientation for f in frames]
    counts = Counter(codes)
    if len(counts) == 1:
        return codes
    common = max(counts, key=lambda c: (counts[c], -c))
    ref = frames[codes.index(common)]
    ref_shape = _upright_shape(ref.shape, common)
    ref_bits = _bitmap(exifmod.apply_orientation(ref.thumb, common))
    chosen = []
    for f in frames:
        if f.orientation == common:
            chosen.append(common)
            continue
        scores = {}
        for candidate in (common, f.orientation):
            if _close_sizes(_upright_shape(f.shape, candidate), ref_shape):
                scores[candidate] = float((_bitmap(exifmod.apply_orientation(f.thumb, candidate)) == ref_bits).mean())
        name, other, tag = shown_path(f.path), shown_path(ref.path), _tag(f.orientation)
        if not scores:
            h, w = f.shape
            raise BracketError(f"{name}: size {w}×{h} with {tag} does not fit {other} "
                               f"({ref_shape[1]}×{ref_shape[0]} upright) either way up; all frames of a bracket "
                               "must have the same size")
        best = max(scores, key=lambda c: (scores[c], c == common))
        if best == common:
            notes.append(f"{name}: {tag} disagrees with the other frames' {_tag(common)}, but its pixels are "
                         "stored like theirs: the tag is ignored and the frame is turned like the others")
        else:
            notes.append(f"{name}: {tag} differs from the other frames' {_tag(common)}, and its pixels are "
                         "stored turned accordingly: each frame is turned by its own tag")
        chosen.append(best)
    return chosen


# ---------------------------------------------------------------------------------------------- no-data pixels

def fill_no_data(stack: np.ndarray, valid: Sequence[np.ndarray | None], evs: Sequence[float]) -> None:
    """Replace, in place, the pixels of N×H×W×3 `stack` that a frame has no data for (valid False) by the nearest
    exposure (by EV) that has data there, brought to this frame's exposure in relative linear light.

    The fusion honours `Frame.valid`; this keeps the colour hidden under alpha 0 (or a NaN) out of every other
    use of the pixels too (alignment, previews, brightness). Pixels no frame covers are set to 0.
    """
    for k, mask in enumerate(valid):
        if mask is None:
            continue
        todo = ~mask
        stack[k][todo] = 0.0
        for j in sorted((j for j in range(len(stack)) if j != k), key=lambda j: (abs(evs[j] - evs[k]), j)):
            if not todo.any():
                break
            take = todo if valid[j] is None else (todo & valid[j])
            if take.any():
                gain = np.float32(2.0 ** ((evs[k] - evs[j]) / _GAMMA))  # x ** (1/γ) scales like exposure ** (1/γ)
                stack[k][take] = np.clip(stack[j][take] * gain, 0.0, 1.0)
                todo &= ~take


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (the same path, or a link or another spelling of it)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _thumb_digest(image: np.ndarray) -> bytes:
    """A short digest of a frame's content, to order frames of equal EV and brightness without their names."""
    small = cv2.resize(image, (32, 32), interpolation=cv2.INTER_AREA)
    return hashlib.blake2b(np.round(small * 65535).astype(np.uint16).tobytes(), digest_size=8).digest()


def _permute(stack: np.ndarray, order: list[int]) -> None:
    """Reorder N×... `stack` in place so that new stack[k] = old stack[order[k]], with one frame of scratch memory."""
    done = [False] * len(order)
    for start in range(len(order)):
        if done[start] or order[start] == start:
            continue
        saved, k = stack[start].copy(), start
        while True:  # walk one cycle of the permutation
            done[k] = True
            source = order[k]
            if source == start:
                stack[k] = saved
                break
            stack[k] = stack[source]
            k = source


def frame_paths(inputs: Sequence[str | Path]) -> list[Path]:
    """The 2-9 frame files of `inputs` (files, or one folder), each checked to be a regular file with an image
    suffix, without reading any: a cheap check to run before other work. BracketError naming the file."""
    paths = _expand(inputs)
    if not paths:
        raise BracketError("no frames given: a bracket needs 2-9 images")
    if len(paths) < MIN_FRAMES:
        images = images_in_file(paths[0])
        if images > 1:
            raise BracketError(f"{shown_path(paths[0])}: one TIFF holding {images} images (a whole bracket in one "
                               "file?); LUTFuse takes one exposure per file: save each exposure as its own file "
                               "and give those")
        raise BracketError(f"{shown_path(paths[0])}: a bracket needs at least {MIN_FRAMES} frames, got 1")
    if len(paths) > MAX_FRAMES:
        given = [Path(p) for p in ([inputs] if isinstance(inputs, (str, Path)) else inputs)]
        # name the folder given, or the files given (their folder may be "." and say nothing)
        where = (shown_path(given[0]) if len(given) == 1 else
                 f"{shown_path(paths[0])} … {shown_path(paths[-1])}")
        raise BracketError(f"{where}: a bracket has at most {MAX_FRAMES} frames, got {len(paths)} (to split a "
                           "shoot into brackets, use lutfuse batch)")
    for path in paths:
        if path.suffix.lower() in IMAGE_SUFFIXES:  # others get read_frame's "unsupported format" message
            check_regular_file(path)
    return paths


DECODE_THREADS = 3  # frames decoded at once: the decoders (OpenCV, tifffile, LibRaw) release the GIL
# without a buffer to decode into (a format whose header_shape is unknown) each decode running ahead holds a whole
# frame of its own: fewer then, so the peak stays near N+2 frames
COPY_DECODE_THREADS = 2


@dataclass
class _Decoded:
    """One frame off a decode thread: the decoded file, its orientation facts and, where its tag is 1 (the common
    case, in which the stack holds exactly the decoded pixels), the small copies of those pixels the loader and
    registration take, made beside the decode instead of from the stack on the main thread."""

    decoded: Decoded
    stored: StoredFrame
    linear: np.ndarray | None = None  # _linear_luma
    digest: bytes | None = None  # _thumb_digest
    lumas: list[np.ndarray] | None = None  # core.registration.frame_lumas, when aligning


def _decode_frame(path: Path, max_pixels: int, into: np.ndarray | None, align: bool) -> _Decoded:
    """read_frame(path, into=into), then the frame's small copies (see _Decoded); runs on a decode thread."""
    from lutfuse.core.registration import frame_lumas

    d = read_frame(path, max_pixels=max_pixels, into=into)
    out = _Decoded(d, StoredFrame.of(d))
    if d.orientation == 1:
        out.linear, out.digest = _linear_luma(d.pixels), _thumb_digest(d.pixels)
        out.lumas = frame_lumas(d.pixels) if align else None
    return out


def _decode_ahead(paths: Sequence[Path], max_pixels: int, flat: np.ndarray | None = None,
                  align: bool = False) -> Iterator[_Decoded]:
    """_decode_frame of each path, in order, with up to DECODE_THREADS decodes (COPY_DECODE_THREADS without `flat`)
    running ahead of the consumer; the first failure is raised in order. flat: N × (H·W·3) float32 buffer whose
    row k frame k is decoded into where it fits (`read_frame`'s `into`)."""
    threads = DECODE_THREADS if flat is not None else COPY_DECODE_THREADS
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="lutfuse-decode")
    pending: deque[Future[_Decoded]] = deque()
    ahead = iter(enumerate(paths))

    def submit(k: int, path: Path) -> None:
        pending.append(pool.submit(_decode_frame, path, max_pixels, None if flat is None else flat[k], align))

    try:
        for k, path in islice(ahead, threads):
            submit(k, path)
        while pending:
            decoded = pending.popleft().result()
            for k, path in islice(ahead, 1):
                submit(k, path)
            yield decoded
    finally:
        # no join: after a failure or a signal a decode still running finishes on its own and is dropped
        pool.shutdown(wait=False, cancel_futures=True)


def load_bracket(inputs: Sequence[str | Path], *, align: bool | str = True, deghost: str = "off",
                 reference: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> Bracket:
    """2-9 files (or one folder of them) -> Bracket ordered darkest first, each frame H×W×3 float32 in [0,1].

    align: "auto" (= True), "off" (= False), "translation", "similarity" or "homography" (core.registration);
    deghost: "off", "low", "medium" or "high" (core.deghost). reference: 0-based index, in the darkest-first
    order, of the frame the others are registered and deghosted to and whose content fills what they lack
    (None = the middle frame, N//2); `Bracket.reference_index` says which it was. The records of what
    registration did are in `Bracket.registration`, the ghost mask in `Bracket.ghost`.

    Steps: decode (`core.readers.read_frame`), settle disagreeing orientation tags (`reconcile_orientations`),
    order by EXIF exposure or brightness (`exposure_evs`; ties by brightness, then content, never by name),
    convert every frame into the middle frame's colour space (ICC, LittleCMS; untagged = sRGB) and record that
    space in `Frame.icc`, keep alpha 0 / NaN pixels out (`Frame.valid`, `fill_no_data`), register and deghost
    (`register_stack`).
    What the loader noticed is in `Bracket.notes`. Raises BracketError naming the file for every bad input.
    """
    from lutfuse.core.registration import check_mode

    mode = check_mode(align)
    paths = frame_paths(inputs)
    reference = check_reference(reference, len(paths))  # before any decoding
    # Memory: each frame is decoded into its row of one flat N-frame buffer, sized from the first file's header
    # (PNG, JPEG; other formats are decoded on their own and copied there), so the peak stays near N frames
    # (9 frames of 45 MP are ~5 GB as float32). Orientation is applied afterwards in place, frame by frame (a 90°
    # turn keeps the pixel count, so the buffer is reshaped, not copied).
    flat: np.ndarray | None = None
    shape = header_shape(paths[0], max_pixels)
    if shape is not None:
        try:
            flat = np.empty((len(paths), shape[0] * shape[1] * 3), np.float32)
        except MemoryError:
            flat = None  # decoded one by one; the allocation below says so if memory really is short
    decoded: list[Decoded] = []
    stored: list[StoredFrame] = []
    jobs: list[_Decoded] = []
    odd: dict[int, np.ndarray] = {}  # frames a few pixels off the first one's size, kept whole until cropped
    for path, job in zip(paths, _decode_ahead(paths, max_pixels, flat, mode != "off")):
        d = job.decoded
        jobs.append(job)
        if flat is None or (not decoded and d.pixels.size != flat.shape[1]):
            # no header size, or a first frame whose decoded size is not its header's
            flat = np.empty((len(paths), d.pixels.size), np.float32)
        elif d.pixels.size != flat.shape[1]:
            (h0, w0), (h, w) = _upright_shape(stored[0].shape, stored[0].orientation), d.upright_shape()
            first, this = stored[0].shape, d.pixels.shape[:2]
            if not (_close_sizes(this, first) or _close_sizes(this[::-1], first)):
                turned = f" (after its {_tag(d.orientation)})" if d.orientation != 1 else ""
                raise BracketError(f"{shown_path(path)}: size {w}×{h}{turned} differs from "
                                   f"{shown_path(paths[0])}: {w0}×{h0}; all frames of a bracket must have the "
                                   "same size")
            odd[len(decoded)] = d.pixels
            stored.append(job.stored)
            d.pixels = np.empty((0, 0, 3), np.float32)
            decoded.append(d)
            continue
        if d.pixels.ctypes.data != flat[len(decoded)].ctypes.data:  # not decoded in place
            flat[len(decoded)] = d.pixels.reshape(-1)
        stored.append(job.stored)
        d.pixels = np.empty((0, 0, 3), np.float32)  # drop the decoded copy (or the view)
        decoded.append(d)
    assert flat is not None
    names = [shown_path(d.path) for d in decoded]
    notes = [note for d in decoded for note in d.notes]
    # R = G = B everywhere, with midtones (a frame that is all black or all clipped white is neutral, not grey)
    grey = [bool(np.array_equal(f.thumb[..., 0], f.thumb[..., 1]) and np.array_equal(f.thumb[..., 1], f.thumb[..., 2])
                 and ((f.thumb[..., 0] > 0.02) & (f.thumb[..., 0] < 0.98)).mean() > 0.05) for f in stored]
    if any(grey) and not all(grey):
        notes += [f"{names[i]}: greyscale, while the other frames are in colour: it adds no colour to the fusion "
                  "(a black-and-white export by mistake?)" for i in range(len(grey)) if grey[i]]
    codes = reconcile_orientations(stored, notes)
    sizes = [_upright_shape(f.shape, code) for f, code in zip(stored, codes)]
    for i, (h, w) in enumerate(sizes):
        if not _close_sizes((h, w), sizes[0]):
            raise BracketError(f"{names[i]}: size {w}×{h} differs from {names[0]}: {sizes[0][1]}×{sizes[0][0]}; "
                               "all frames of a bracket must have the same size")
    height, width = min(h for h, _ in sizes), min(w for _, w in sizes)
    # where each file's own pixels land in its frame: turned upright, then centre-cropped as below
    geometry = [np.array([[1, 0, -((w - width) // 2)], [0, 1, -((h - height) // 2)], [0, 0, 1]], np.float64)
                @ exifmod.orientation_matrix(code, f.shape) for f, code, (h, w) in zip(stored, codes, sizes)]
    file_sizes = [(f.shape[1], f.shape[0]) for f in stored]
    # the decode threads' small copies are of the stored pixels: they hold for a frame left as decoded
    as_decoded = [code == 1 for code in codes]
    if odd or any(size != (height, width) for size in sizes):
        as_decoded = [False] * len(codes)
        # Rare: one more buffer, at the common size, filled with each frame turned upright and centre-cropped.
        common = np.empty((len(paths), height * width * 3), np.float32)
        for i, (f, code) in enumerate(zip(stored, codes)):
            pixels = odd.pop(i) if i in odd else flat[i].reshape(*f.shape, 3)
            h, w = sizes[i]
            top, left = (h - height) // 2, (w - width) // 2
            common[i] = exifmod.apply_orientation(pixels, code)[top:top + height, left:left + width].reshape(-1)
            frame_mask = decoded[i].valid
            if frame_mask is not None:
                upright = exifmod.apply_orientation(frame_mask, code)
                decoded[i].valid = exifmod.apply_orientation(upright[top:top + height, left:left + width], 1)
            if (h, w) != (height, width):
                cut = " and ".join(f"{n} px of its {side}" for n, side in ((w - width, "width"),
                                                                           (h - height, "height")) if n)
                notes.append(f"{names[i]}: {w}×{h} px, a little larger than the bracket's common {width}×{height} "
                             f"(a camera or converter that crops each frame differently): centre-cropped to it, "
                             f"{cut} cut")
        flat, codes = common, [1] * len(codes)
        stored = [replace(f, orientation=1, shape=(height, width)) for f in stored]
    valid: list[np.ndarray | None] = []
    for i, (f, code) in enumerate(zip(stored, codes)):
        if code != 1:  # one frame of scratch: the turned copy, written back over the frame's own slot
            flat[i] = exifmod.apply_orientation(flat[i].reshape(*f.shape, 3), code).reshape(-1)
        mask = decoded[i].valid
        if mask is not None and not mask.any():
            # Nothing of it can be fused, and as the middle frame it would be made up whole from the others.
            raise BracketError(f"{names[i]}: no pixel has data (alpha 0 everywhere, or every sample NaN): the frame "
                               "holds no image to fuse")
        valid.append(None if mask is None else exifmod.apply_orientation(mask, code))
        if mask is not None:
            notes.append(f"{names[i]}: {1 - valid[i].mean():.1%} of the pixels have no data (alpha 0 or not a "  # type: ignore[union-attr]
                         "number); they take no part in the fusion")
    stack = flat.reshape(len(paths), height, width, 3)

    linear = [job.linear if same and job.linear is not None else _linear_luma(image)
              for job, same, image in zip(jobs, as_decoded, stack)]
    evs, source = exposure_evs([d.settings for d in decoded], stack, valid, names, notes, linear)
    means = _linear_means(stack, valid, linear)
    digests = [job.digest if same and job.digest is not None else _thumb_digest(image)
               for job, same, image in zip(jobs, as_decoded, stack)]
    order = sorted(range(len(decoded)), key=lambda i: (evs[i], means[i], digests[i]))
    for i, j in pairwise(order):
        if digests[i] == digests[j] and np.array_equal(stack[i], stack[j]):
            if _same_file(decoded[i].path, decoded[j].path):
                notes.append(f"{names[j]}: the same file as {names[i]}, given twice: that exposure counts twice "
                             "in the fusion")
            else:
                notes.append(f"{names[j]}: holds the same pixels as {names[i]} (the same frame twice?)")
    _permute(stack, order)
    decoded, valid, names = [decoded[i] for i in order], [valid[i] for i in order], [names[i] for i in order]
    geometry, file_sizes = [geometry[i] for i in order], [file_sizes[i] for i in order]
    evs = [float(evs[i]) for i in order]
    # registration's lumas, where the pixels stay as decoded (no colour conversion or no-data fill below)
    lumas = [jobs[i].lumas if as_decoded[i] else None for i in order]

    # One working space: the middle frame's. Frames in another space are converted, never mixed.
    working = decoded[len(decoded) // 2].icc
    working = None if profiles.is_srgb(working) else working
    for k, d in enumerate(decoded):
        if not profiles.same_space(d.icc, working):
            stack[k], outside = profiles.convert(stack[k], d.icc, working)
            lumas[k] = None
            clipped = f"; {outside:.1%} of its pixels were outside that space and are clipped" if outside > 1e-4 else ""
            notes.append(f"{names[k]}: converted from {profiles.describe(d.icc)} to the middle frame's "
                         f"{profiles.describe(working)}{clipped}")

    own = None
    if any(mask is not None for mask in valid):
        fill_no_data(stack, valid, evs)
        own = np.stack([np.ones((height, width), bool) if v is None else v for v in valid])
        lumas = [None if v is not None else small for v, small in zip(valid, lumas)]
    records, masks, ghost = register_stack(stack, own, mode, deghost, reference, lumas)
    frames = [Frame(path=d.path, image=stack[k], bit_depth=d.bit_depth, ev=evs[k], ev_source=source,
                    exif=d.exif_for_output(), valid=None if masks is None or masks[k].all() else masks[k],
                    icc=working, xmp=d.xmp,
                    from_file=None if np.array_equal(geometry[k], np.eye(3)) else geometry[k],
                    file_size=file_sizes[k])
              for k, d in enumerate(decoded)]
    return Bracket(frames=frames, aligned=mode != "off", registration=records, ghost=ghost, notes=notes,
                   _stack=stack, reference_index=reference)


def load_image(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, int, bytes | None]:
    """One file -> (H×W×3 float32 RGB in [0,1], EXIF orientation applied; bit depth 8/16; EXIF block or None).

    The pixels stay in the file's own colour space (see `core.readers.read_frame` for the profile, alpha and
    notes); pixels without data (alpha 0, NaN) are 0. BracketError naming the file for every bad input.
    """
    decoded = read_frame(path, max_pixels=max_pixels)
    image, valid = decoded.upright()
    if valid is not None:
        image[~valid] = 0.0
    return image, decoded.bit_depth, decoded.exif_for_output()
