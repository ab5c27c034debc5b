"""One bracket, files in -> fused image file out, exactly as `lutfuse fuse` does it.

`lutfuse fuse`, `lutfuse batch` (local process pool or Ray) and the time-lapse path all call `fuse_files`, so a
batch output is the very file `fuse` writes for the same frames and settings. The settings are the values of
fuse's command-line options, keyed by their argparse dests (`FuseSettings`): an option another change adds to
`fuse` reaches this function, batch presets and Ray tasks with no code here knowing its name.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lutfuse.core.colour import luma
from lutfuse.core.errors import LUTFuseError, shown_path
from lutfuse.core.methods import PUBLIC as METHODS  # noqa: F401  (fuse's --method choices)
from lutfuse.core.methods import Models, get_method

Progress = Callable[[float], None]


@dataclass(frozen=True)
class FuseSettings:
    """The fusion settings of one run: option dest -> value (`method`, `grid`, `detail`, `bit_depth`, ...).

    Read a setting as an attribute (`settings.grid`), like an argparse namespace; a name that is not a setting
    raises AttributeError. Plain data, so it pickles into worker processes and Ray tasks.
    """

    values: Mapping[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "values":  # keeps pickling/copy from recursing before __init__
            raise AttributeError(name)
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(f"no fusion setting {name!r}") from None

    @classmethod
    def from_namespace(cls, namespace: Any, names: Iterable[str]) -> FuseSettings:
        """The settings `names` read from an argparse namespace (or any object with those attributes)."""
        return cls({name: getattr(namespace, name) for name in names})

    def replace(self, **changes: Any) -> FuseSettings:
        """A copy with some settings changed or added."""
        return FuseSettings({**self.values, **changes})


@dataclass
class FuseResult:
    """What `fuse_files` did: the written file and the bracket it came from (frames darkest first)."""

    output: Path
    frames: list[Path]
    evs: list[float]          # relative to the middle frame, darkest first
    ev_source: str            # "exif" or "brightness"
    width: int
    height: int
    bit_depth: int
    seconds: float
    log_luminance: float      # mean log2 luminance of the written image (linearised, gamma 2.2), for time-lapses
    notes: list[str] = field(default_factory=list)  # what the loader noticed (Bracket.notes), not errors


def fuse_bracket(bracket, method: str, *, grid: int = 33, detail: float = 1.0, device: str | None = None,
                 progress: Progress | None = None, models: Models | None = None,
                 latent: Any = None, look: Any = None) -> np.ndarray:
    """Fuse a loaded Bracket with the named method (core.methods) -> H×W×3 float32 RGB in [0,1].

    A keyword form of `core.methods.get_method(method).fuse(bracket, settings)`: `latent` (method lut) replaces
    the bracket's latent code, as the time-lapse smoother does; `look` is a core.adjust.Look or None.
    LUTFuseError for an unknown method."""
    settings = FuseSettings({"grid": grid, "detail": detail, "device": device})
    return get_method(method).fuse(bracket, settings, progress=progress, models=models, latent=latent, look=look)


def check_settings(settings: FuseSettings, output: Path) -> None:
    """Fail before loading anything when the settings cannot work for `output` (grid range, 16-bit JPEG)."""
    from lutfuse.core.commands.common import output_bit_depth
    from lutfuse.core.grid import check_grid

    method = get_method(settings.method, public=True)
    if "grid" in method.settings:
        try:
            check_grid(settings.grid)
        except LUTFuseError as exc:
            raise LUTFuseError(f"--grid {settings.grid}: {exc}") from None
    detail = getattr(settings, "detail", 1.0)
    if not (isinstance(detail, (int, float)) and np.isfinite(detail) and detail >= 0):
        raise LUTFuseError(f"--detail {detail}: the detail strength must be a number ≥ 0 (0 = pure LUT, 1 = default)")
    quality = getattr(settings, "quality", 95)
    if not (isinstance(quality, int) and 1 <= quality <= 100):
        raise LUTFuseError(f"--quality {quality}: the JPEG quality must be between 1 and 100")
    if settings.bit_depth == 16:
        output_bit_depth(output, 16, 8)
    if settings.values.get("kernels") is not None:
        from lutfuse.core.device import check_kernels

        check_kernels(settings.values["kernels"])  # a preset's bad value fails here, naming it
    from lutfuse.core.commands.look import look_from_args

    look_from_args(settings)  # an out-of-range look slider fails here, naming the slider


def mean_log_luminance(image: np.ndarray) -> float:
    """Mean log2 of the linear luminance (gamma-2.2 decoded Rec.709 luma, floor 1/1024) of H×W×3 in [0,1]."""
    import cv2

    # area-downsampled to ≤ 256 px, so that a preview render and the full render measure alike
    scale = min(1.0, 256 / max(image.shape[:2]))
    small = np.asarray(image, np.float32)
    if scale < 1.0:
        small = cv2.resize(small, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)  # type: ignore[assignment]
    linear = luma(np.clip(small, 0.0, 1.0) ** 2.2)
    return float(np.log2(np.maximum(linear, 1.0 / 1024)).mean())


def apply_gain(image: np.ndarray, stops: float) -> np.ndarray:
    """H×W×3 in [0,1] brightened by `stops` EV in linear light (gamma 2.2), clipped to [0,1]; same array if 0."""
    if stops == 0.0:
        return image
    return ((np.clip(image, 0.0, 1.0) ** 2.2 * np.float32(2.0 ** stops)).clip(0.0, 1.0) ** (1 / 2.2)).astype(
        np.float32)


def frame_labels(paths: Sequence[Path]) -> list[str]:
    """How messages name frames: the file name, with as many parent folders as it takes to tell apart inputs that
    share a name (`a/00.jpg`, `b/00.jpg`); control characters escaped (core.errors.shown_path)."""
    from lutfuse.core.errors import shown_path

    paths = [Path(p) for p in paths]
    depth = 1
    while True:
        labels = [Path(*p.parts[-depth:]).as_posix() for p in paths]
        if len(set(labels)) == len(labels) or depth >= max(len(p.parts) for p in paths):
            return [shown_path(label) for label in labels]
        depth += 1


def reference_index(reference: int | None, count: int) -> int | None:
    """The 0-based reference index for `--reference N` (1-based, darkest first; None = the middle frame, kept
    None) in a bracket of `count` frames. LUTFuseError naming the option when N is not a frame of the bracket."""
    if reference is None:
        return None
    if isinstance(reference, bool) or not isinstance(reference, int) or not 1 <= reference <= count:
        raise LUTFuseError(f"--reference {reference}: the bracket has {count} frames; give 1-{count} "
                           "(darkest first)")
    return reference - 1


SideOutput = tuple[Path, bytes, str]  # (path, file bytes, the line to log once written)


def write_side_outputs(pending: Sequence[SideOutput], overwrite: bool,
                       log: Callable[[str], None] | None = None) -> None:
    """Write the side files `load` kept back (`--transforms`, `--ghost-mask`) via temp file + rename (`commit`)."""
    from lutfuse.core.imageio import commit

    for path, data, line in pending:
        commit(path, data, overwrite)
        if log is not None:
            log(line)


def load(frames: Sequence[str | Path], settings: Any, *, log: Callable[[str], None] | None = None,
         transforms: Path | None = None, ghost_mask: Path | None = None, overwrite: bool = False,
         pending: list[SideOutput] | None = None):
    """The bracket of `frames` loaded as `fuse` loads it: darkest first, registered as `settings.align` says
    (`core.registration`) to the frame `settings.reference` names (1-based, darkest first; None = the middle
    one), deghosted as `settings.deghost` says (`core.deghost`) and cropped to the area every
    frame covers when `settings.crop`. `settings` is a FuseSettings or an argparse namespace; settings it lacks
    take fuse's defaults. `log(line)` gets one line per frame's transform and what was cropped or filled;
    `transforms` (JSON: each input file's 3×3 homography onto the output) and `ghost_mask` (8-bit PNG) are written
    when given, through a temporary file (`core.imageio.commit`); with a `pending` list they are only encoded and
    appended to it, for the caller to write (`write_side_outputs`) once its main output is written, so that a
    run that fails or is stopped later leaves neither behind. Raises BracketError / OutputError."""
    import json

    import cv2

    from lutfuse.core import registration
    from lutfuse.core.bracket import frame_paths, load_bracket
    from lutfuse.core.deghost import DEFAULT
    from lutfuse.core.errors import OutputError

    log = log or (lambda line: None)
    align = getattr(settings, "align", "auto")
    reference = reference_index(getattr(settings, "reference", None), len(frame_paths(list(frames))))
    bracket = load_bracket(list(frames), align=align, deghost=getattr(settings, "deghost", DEFAULT),
                           reference=reference)
    h, w = bracket.frames[0].image.shape[:2]
    records = bracket.registration or []
    if align != "off":
        for label, rec in zip(frame_labels([f.path for f in bracket.frames]), records):
            log(f"  {label}: {rec.describe()}")
    crop = None
    if getattr(settings, "crop", False):
        crop = registration.common_rectangle(registration.coverage(records, h, w))
        if crop != (0, 0, w, h):
            bracket = bracket.cropped(*crop)
            log(f"cropped to {crop[2] - crop[0]}×{crop[3] - crop[1]} at ({crop[0]}, {crop[1]}), the area every "
                f"frame covers")
        else:
            crop = None
    if bracket.valid is not None:
        uncovered = int((~bracket.valid.any(axis=0)).sum())
        if uncovered:
            log(f"{uncovered} pixels are covered by no frame: filled from the nearest covered content")
    outputs: list[SideOutput] = []
    if transforms is not None:
        doc = registration.transforms_document(records, [str(f.path) for f in bracket.frames], h, w, crop,
                                               [(f.from_file, f.file_size) for f in bracket.frames])
        outputs.append((transforms, json.dumps(doc, indent=1).encode(), f"wrote {shown_path(transforms)}"))
    if ghost_mask is not None:
        mask = bracket.ghost if bracket.ghost is not None else np.zeros(bracket.images.shape[1:3], np.float32)
        ok, buf = cv2.imencode(".png", np.clip(mask * 255 + 0.5, 0, 255).astype(np.uint8))
        if not ok:
            raise OutputError(f"{shown_path(ghost_mask)}: OpenCV could not encode the mask")
        outputs.append((ghost_mask, buf.tobytes(), f"wrote {shown_path(ghost_mask)} (moving content in "
                                                  f"{float((mask >= 0.5).mean()) * 100:.2f} % of the image)"))
    if pending is None:
        write_side_outputs(outputs, overwrite, log)
    else:
        pending.extend(outputs)
    return bracket


def fuse_files(frames: Sequence[str | Path], output: str | Path, settings: FuseSettings, *,
               overwrite: bool = False, models: Models | None = None, latent: Any = None,
               target_luminance: float | None = None, transforms: Path | None = None,
               ghost_mask: Path | None = None, log: Callable[[str], None] | None = None,
               on_loaded: Callable[[Any], None] | None = None, progress: Progress | None = None) -> FuseResult:
    """Load 2-9 frame files (or one folder), fuse them with `settings` and write `output` -> FuseResult.

    Checks the frame files, the output and the settings first (BracketError / OutputError / LUTFuseError before
    any decoding), then loads the bracket (BracketError naming a bad frame), fuses (`fuse_bracket`), and writes
    via temp file + rename with the middle frame's EXIF, XMP and ICC profile (`core.metadata.OutputMetadata`) and
    the image options (`--quality`, `--subsampling`, `--compression`: `commands.common.image_options`).
    `latent` replaces the student's latent code (method lut) and `target_luminance` (mean log2 luminance, as
    `mean_log_luminance`) brings the result there by an exposure gain in linear light: both are the time-lapse
    deflicker's hooks and neutral (None) by default.
    `transforms`, `ghost_mask` and `log` are `load`'s (per-run files; batch passes none).
    `on_loaded(bracket)` is called after loading (the CLI prints the EVs there).
    """
    from lutfuse.core.bracket import frame_paths, relative_evs
    from lutfuse.core.commands.common import check_output
    from lutfuse.core.export import ImageOptions, write_fused

    start = time.perf_counter()
    output = Path(output)
    paths = frame_paths(list(frames))  # bad frames (link loop, FIFO, missing...) fail before anything else
    check_output(output, paths, overwrite)
    check_settings(settings, output)
    side: list[SideOutput] = []  # written after the image: a run that fails or is stopped leaves none behind
    bracket = load(paths, settings, log=log, transforms=transforms, ghost_mask=ghost_mask, overwrite=overwrite,
                   pending=side)
    if on_loaded is not None:
        on_loaded(bracket)
    from lutfuse.core.commands.look import look_from_args

    look = look_from_args(settings, bracket.images)   # the look settings (core.adjust), --auto from this bracket
    method = get_method(settings.method, public=True)
    fused = method.fuse(bracket, settings, progress=progress, models=models, latent=latent, look=look)
    if target_luminance is not None:
        for _ in range(2):  # a second step makes up for what clipping took from the first
            fused = apply_gain(fused, target_luminance - mean_log_luminance(fused))
    _, bits = write_fused(output, fused, bracket, ImageOptions.from_settings(settings), overwrite=overwrite,
                          origin=method.origin())
    write_side_outputs(side, overwrite, log)
    return FuseResult(output=output, frames=[f.path for f in bracket.frames],
                      evs=relative_evs([f.ev for f in bracket.frames]),
                      ev_source="exif" if all(f.ev_source == "exif" for f in bracket.frames) else "brightness",
                      width=fused.shape[1], height=fused.shape[0], bit_depth=bits,
                      seconds=time.perf_counter() - start, log_luminance=mean_log_luminance(fused),
                      notes=list(getattr(bracket, "notes", [])))
