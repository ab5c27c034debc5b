"""Split a shoot (a card's worth of frames) into brackets: by capture time and exposure pattern, N at a time, or
one subfolder per bracket. Frames that fit no bracket are returned as leftovers, never dropped.

`auto` follows what bracketing cameras record: the frames of one bracket are shot in quick succession
(EXIF DateTimeOriginal + SubSecTimeOriginal, minus each frame's exposure time) and their exposures step through
a pattern that then repeats. Without capture times the exposure pattern alone splits the sequence, with
EVs from EXIF (log2 t·ISO/100/N², as `core.bracket`) or, without EXIF, from the frames' brightness.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import NoReturn

import numpy as np

from lutfuse.core import exif as exifmod
from lutfuse.core.bracket import IMAGE_SUFFIXES, MAX_FRAMES, MIN_FRAMES
from lutfuse.core.colour import luma
from lutfuse.core.errors import BracketError, shown_path

SAME_EV = 0.3        # stops: two frames closer than this are the same exposure (a repeat starts a new bracket)
MIN_GAP_S = 1.0      # seconds of idle time that always separate two brackets ...
GAP_FACTOR = 4.0     # ... or this many times the typical idle time between frames, when that is longer


@dataclass(frozen=True)
class Shot:
    """One frame file as the grouping sees it: capture time (s since the epoch, None when unknown), exposure
    time (s), and EV (log2 of the light it collected, larger = brighter; from EXIF or brightness)."""

    path: Path
    time: float | None
    exposure: float | None
    ev: float | None
    ev_source: str          # "exif", "brightness" or "unreadable"
    software: str = ""      # EXIF Software tag: "LUTFuse ..." marks a result of an earlier run, not a frame


@dataclass
class Group:
    """One bracket to fuse: its frames in capture (or name) order, and a label used in output names."""

    frames: list[Shot]
    folder: str

    @property
    def paths(self) -> list[Path]:
        return [s.path for s in self.frames]

    def relative_evs(self) -> list[float] | None:
        """EVs relative to the middle of the sorted exposures (darkest first), or None if any is unknown."""
        evs = self.frame_evs()
        return None if evs is None else sorted(evs)

    def frame_evs(self) -> list[float] | None:
        """Each frame's EV (shooting order) relative to the middle of the sorted exposures, or None if any is
        unknown. These are the grouping's estimates: see `loaded_evs` for the numbers `lutfuse fuse` prints."""
        evs = [s.ev for s in self.frames]
        if any(e is None for e in evs):
            return None
        mid = sorted(evs)[len(evs) // 2]  # type: ignore[type-var]
        return [e - mid for e in evs]  # type: ignore[operator]

    def loaded_evs(self) -> tuple[list[float], str]:
        """(each frame's EV in shooting order relative to the middle exposure, "exif" or "brightness") as
        `core.bracket.load_bracket` estimates them (`core.bracket.exposure_evs`, full-resolution pixels), so that a
        dry run prints what `lutfuse fuse` prints for the same frames. Decodes the frames; BracketError when one
        cannot be decoded."""
        return loader_evs(self.paths)


@dataclass
class Plan:
    """The brackets found, and the frames that fit none with the reason for each."""

    groups: list[Group]
    leftovers: list[tuple[Path, str]]


def _refuse(item: Path) -> NoReturn:
    """BracketError for an input that is neither a folder nor a regular file, saying which: missing, a dangling
    link, a link loop, a FIFO or device (`core.readers.check_regular_file`), the name escaped."""
    from lutfuse.core.readers import check_regular_file

    check_regular_file(item)
    raise BracketError(f"{shown_path(item)}: file or folder not found")


def image_files(inputs: Iterable[str | Path]) -> list[Path]:
    """The image files named or inside the given folders (not recursive, hidden files skipped), in name order
    per folder; BracketError for a path that does not exist."""
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted((p for p in item.iterdir() if p.is_file() and not p.name.startswith(".")
                             and p.suffix.lower() in IMAGE_SUFFIXES), key=lambda p: p.name)
        elif item.is_file():
            files.append(item)
        else:
            _refuse(item)
    return files


def _capture_time(data: dict[str, str] | None) -> float | None:
    """DateTimeOriginal (+ SubSecTimeOriginal) of parsed EXIF (exiv2 keys, `core.exif.parse`) as seconds (naive
    local time), or None."""
    data = data or {}
    raw = (data.get("Exif.Photo.DateTimeOriginal") or data.get("Exif.Image.DateTimeOriginal")  # IFD0: TIFF/EP
           or data.get("Exif.Image.DateTime"))
    if not raw:
        return None
    try:
        stamp = datetime.strptime(raw.strip("\x00 "), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    seconds = stamp.timestamp()
    digits = (data.get("Exif.Photo.SubSecTimeOriginal") or "").strip("\x00 ")
    if digits.isdigit():
        seconds += int(digits) / 10 ** len(digits)
    return seconds


def _read_exif(path: Path) -> dict[str, str] | None:
    """Parsed EXIF of a frame file (JPEG, PNG, TIFF, RAW... as exiv2 reads them), what it lacks filled from the
    file's XMP (`core.exif.parse_file`), without decoding pixels."""
    try:
        return exifmod.parse_file(path.read_bytes())
    except OSError:
        return None


def read_shot(path: Path) -> Shot:
    """A frame's capture time and exposure from its EXIF (no pixel decoding); EV None when EXIF lacks it."""
    data = _read_exif(path)
    t, n, iso = exifmod.exposure(data)
    ev = math.log2(t * (iso or 100.0) / 100.0 / (n or 1.0) ** 2) if t else None
    software = str((data or {}).get("Exif.Image.Software") or "").strip("\x00 ")
    return Shot(path, _capture_time(data), t, ev, "exif" if ev is not None else "unknown", software)


RESULT_SOFTWARE = "LUTFuse"  # the Software tag every LUTFuse output carries (core.metadata.software)


def _frames_only(shots: list[Shot], plan: Plan) -> list[Shot]:
    """The shots that are camera frames; LUTFuse's own results (Software tag "LUTFuse ...") become leftovers.

    A result keeps its middle frame's capture time and exposure, so when the output folder is (inside) the input
    folder, a second run would otherwise group last run's results with the frames and fuse them as exposures."""
    frames = []
    for s in shots:
        if s.software.startswith(RESULT_SOFTWARE):
            plan.leftovers.append((s.path, f"a result written by {s.software}, not a camera frame"))
        else:
            frames.append(s)
    return frames


def loader_evs(paths: Sequence[Path]) -> tuple[list[float], str]:
    """(EV per file in the given order relative to the middle exposure, "exif" or "brightness"), by the loader's
    own estimate (`core.bracket.exposure_evs`: EXIF when complete, distinct and agreeing with the pixels, else the
    exposure ratio seen where neither frame is crushed or clipped). BracketError naming an undecodable file."""
    from lutfuse.core.bracket import exposure_evs
    from lutfuse.core.errors import shown_path
    from lutfuse.core.readers import read_frame

    images, valid, settings = [], [], []
    for path in paths:
        decoded = read_frame(path)
        image, mask = decoded.upright()
        images.append(image)
        valid.append(mask)
        settings.append(decoded.settings)
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise BracketError(f"{shown_path(paths[0])}: the frames of this bracket differ in size")
    evs, source = exposure_evs(settings, images, valid, [shown_path(p) for p in paths], [])
    mid = sorted(evs)[len(evs) // 2]
    return [e - mid for e in evs], source


def _with_brightness(shots: list[Shot]) -> list[Shot]:
    """Shots whose EV is unknown get one from their decoded pixels (log2 of mean linear luminance);
    a frame that cannot be decoded keeps EV None ("unreadable").

    This per-frame estimate only splits a sequence into brackets (where a run of stepping exposures starts
    again), before any bracket exists: it needs one number per frame, not the pairwise exposure ratio over
    commonly usable pixels that `core.bracket.exposure_evs` measures (and which reads the real steps better
    when frames clip). The EVs shown to the user come from the loader's estimate (`Group.loaded_evs`)."""
    from lutfuse.core.bracket import load_image

    out = []
    for s in shots:
        if s.ev is not None:
            out.append(s)
            continue
        try:
            image = load_image(s.path)[0]
        except BracketError:
            out.append(replace(s, ev=None, ev_source="unreadable"))
            continue
        step = max(1, max(image.shape[:2]) // 256)
        linear = luma(np.clip(image[::step, ::step], 0, 1) ** 2.2)
        out.append(replace(s, ev=float(np.log2(max(float(linear.mean()), 1e-6))), ev_source="brightness"))
    return out


def _bursts(shots: list[Shot]) -> list[list[Shot]]:
    """Split shots in capture order where the idle time between two frames (next start - this start - this
    exposure) is long: > MIN_GAP_S and > GAP_FACTOR × the median idle time."""
    if len(shots) < 2:
        return [shots] if shots else []
    idle = [max(0.0, b.time - a.time - (a.exposure or 0.0)) for a, b in itertools.pairwise(shots)]  # type: ignore[operator]
    limit = max(MIN_GAP_S, GAP_FACTOR * statistics.median(idle))
    bursts, current = [], [shots[0]]
    for gap, shot in zip(idle, shots[1:]):
        if gap > limit:
            bursts.append(current)
            current = []
        current.append(shot)
    bursts.append(current)
    return bursts


def _runs(shots: list[Shot]) -> list[list[Shot]]:
    """Split a sequence by its exposure pattern: a bracket is a run of distinct exposures stepping one way
    (up or down); a repeated exposure or a reversal of direction starts the next one. A run's first step may go
    against the rest for cameras that shoot centre first (0, -, +, --, ++ ...)."""
    runs: list[list[Shot]] = []
    current: list[Shot] = []
    for shot in shots:
        if shot.ev is None:
            if current:
                runs.append(current)
            runs.append([shot])
            current = []
            continue
        if current and _continues(current, shot):
            current.append(shot)
        else:
            if current:
                runs.append(current)
            current = [shot]
    if current:
        runs.append(current)
    return runs


def _continues(run: list[Shot], shot: Shot) -> bool:
    """Whether `shot` extends `run` under the stepping rule of `_runs`."""
    evs = [s.ev for s in run]
    if any(abs(shot.ev - e) < SAME_EV for e in evs) or len(run) >= MAX_FRAMES:  # type: ignore[operator]
        return False
    if len(evs) == 1:
        return True
    steps = [b - a for a, b in itertools.pairwise(evs)]  # type: ignore[operator]
    step = shot.ev - evs[-1]  # type: ignore[operator]
    if len(evs) == 2:
        # 0, -, + (centre first, the common camera default): the third frame is brighter than the first
        return step * steps[0] > 0 or (steps[0] < 0 and shot.ev > evs[0])  # type: ignore[operator]
    centre_first = steps[0] < 0 and steps[1] > 0
    if centre_first:  # 0, -1, +1, -2, +2 ...: alternating, each one further from the centre
        return abs(shot.ev - evs[0]) > max(abs(e - evs[0]) for e in evs[1:]) - SAME_EV and step * steps[-1] < 0  # type: ignore[operator]
    return step * steps[-1] > 0


def _accept(groups: list[list[Shot]], folder: str, plan: Plan) -> None:
    """Add runs of 2-9 readable frames as groups; the rest become leftovers with the reason."""
    for run in groups:
        unreadable = [s for s in run if s.ev_source == "unreadable"]
        if unreadable and len(run) == 1:
            plan.leftovers.append((run[0].path, "cannot be decoded and has no EXIF exposure"))
        elif len(run) < MIN_FRAMES:
            plan.leftovers.append((run[0].path, "no other frame of its bracket (a lone exposure)"))
        elif len(run) > MAX_FRAMES:
            plan.leftovers += [(s.path, f"in a run of {len(run)} frames, more than a bracket's {MAX_FRAMES}")
                               for s in run]
        else:
            plan.groups.append(Group(run, folder))


def group_auto(files: Sequence[Path]) -> Plan:
    """Brackets from capture times (when every frame has one) and the exposure pattern; see the module doc."""
    plan = Plan([], [])
    shots = _with_brightness(_frames_only([read_shot(p) for p in files], plan))
    by_folder: dict[Path, list[Shot]] = {}
    for s in shots:
        by_folder.setdefault(s.path.parent, []).append(s)
    for folder, items in by_folder.items():
        if items and all(s.time is not None for s in items):
            items = sorted(items, key=lambda s: (s.time, s.path.name))
            for burst in _bursts(items):
                # one burst is one bracket unless its exposures repeat (continuous bracketing without pauses)
                if len(burst) <= MAX_FRAMES and all(s.ev is not None for s in burst) and _distinct(burst):
                    _accept([burst], folder.name, plan)
                else:
                    _accept(_runs(burst), folder.name, plan)
        else:
            _accept(_runs(items), folder.name, plan)
    return plan


def _distinct(shots: list[Shot]) -> bool:
    """No two exposures within SAME_EV of each other."""
    evs = sorted(s.ev for s in shots)  # type: ignore[type-var]
    return all(b - a >= SAME_EV for a, b in itertools.pairwise(evs))  # type: ignore[operator]


def group_fixed(files: Sequence[Path], n: int) -> Plan:
    """Consecutive groups of n frames, in capture order when every frame has a capture time, else name order;
    an incomplete last group is a leftover."""
    if not MIN_FRAMES <= n <= MAX_FRAMES:
        raise BracketError(f"--group {n}: a bracket has {MIN_FRAMES} to {MAX_FRAMES} frames")
    plan = Plan([], [])
    shots = _with_brightness(_frames_only([read_shot(p) for p in files], plan))
    if shots and all(s.time is not None for s in shots):
        shots = sorted(shots, key=lambda s: (s.time, s.path.parent.as_posix(), s.path.name))
    for start in range(0, len(shots), n):
        chunk = shots[start:start + n]
        if len(chunk) == n:
            plan.groups.append(Group(chunk, chunk[0].path.parent.name))
        else:
            plan.leftovers += [(s.path, f"the last {len(chunk)} frame(s) do not fill a group of {n}") for s in chunk]
    return plan


def group_folders(inputs: Sequence[str | Path]) -> Plan:
    """One bracket per subfolder of each input folder (its image files in name order); image files directly in
    an input folder, or given as files, and subfolders with too few/many frames are leftovers."""
    plan = Plan([], [])
    folders_seen: dict[tuple[int, int], Path] = {}  # a folder reached twice (a link to it, given twice) counts once
    for item in map(Path, inputs):
        if not item.is_dir():
            if not item.exists():
                _refuse(item)
            plan.leftovers.append((item, "not inside a bracket subfolder (--group folder)"))
            continue
        loose = image_files([item])
        plan.leftovers += [(p, "not inside a bracket subfolder (--group folder)") for p in loose]
        for sub in sorted((d for d in item.iterdir() if d.is_dir() and not d.name.startswith(".")),
                          key=lambda d: d.name):
            info = sub.stat()
            first = folders_seen.setdefault((info.st_dev, info.st_ino), sub)
            if first is not sub:
                plan.leftovers += [(p, f"folder {shown_path(sub)} is the same folder as {shown_path(first)} (a "
                                       "link, or given twice): its bracket is made once") for p in image_files([sub])]
                continue
            shots = _frames_only([read_shot(p) for p in image_files([sub])], plan)
            if not shots:
                continue
            if MIN_FRAMES <= len(shots) <= MAX_FRAMES:
                plan.groups.append(Group(_with_brightness(shots), sub.name))
            else:
                plan.leftovers += [(s.path, (f"folder {sub.name} holds {len(shots)} images; a bracket has "
                                            f"{MIN_FRAMES}-{MAX_FRAMES}")) for s in shots]
    return plan


def _once_each(files: Sequence[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """(the files with every repeat of one file dropped, the repeats as leftovers with the reason). A file named
    twice (a folder and a glob of it, the same name twice, a link to another) used to join two brackets, or one
    bracket twice."""
    seen: dict[tuple[int, int], Path] = {}
    once: list[Path] = []
    repeats: list[tuple[Path, str]] = []
    for path in files:
        try:
            info = path.stat()
        except OSError:
            once.append(path)
            continue
        first = seen.setdefault((info.st_dev, info.st_ino), path)
        if first is path:
            once.append(path)
        else:
            repeats.append((path, "given more than once" if path == first else
                            f"the same file as {shown_path(first)}, given twice"))
    return once, repeats


def plan_groups(inputs: Sequence[str | Path], mode: str) -> Plan:
    """Group INPUT files/folders by `mode`: "auto", "folder", or a number N as a string; BracketError when a
    path is missing or the mode is unknown."""
    if mode == "folder":
        return group_folders(inputs)
    files, repeats = _once_each(image_files(inputs))
    if mode == "auto":
        plan = group_auto(files)
    else:
        try:
            n = int(mode)
        except ValueError:
            raise BracketError(f"--group {mode}: use auto, folder, or a number of frames per bracket") from None
        plan = group_fixed(files, n)
    plan.leftovers += repeats
    return plan
