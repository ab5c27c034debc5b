"""The one export path, CLI and editor alike: a fused image, a `.cube` with its base image, and the HQ export.

`lutfuse fuse` (core.pipeline.fuse_files), `lutfuse cube` (core.commands.cube) and the editor (app.export, which
only wraps these in background jobs) all write through here, so for the same bracket and settings they write the
same bytes: the same pixels, the same `.cube` TITLE and colour-encoding comments (core.cube.cube_title,
core.profiles.cube_comments), the same metadata (core.metadata.OutputMetadata.from_bracket: the middle frame's
EXIF, XMP and ICC, every frame's exposure) and the same safety rules (the target is checked before any work, the
inputs are never written, an existing file only with `overwrite`, temp file + rename: core.imageio).

Every export takes a `core.prepared.PreparedBracket` and the engine that prepared it, so an export writes the
pixels and the metadata of the bracket it was started on, whatever the editor loads meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lutfuse.core.errors import Cancelled, OutputError, shown_path
from lutfuse.core.imageio import FORMATS, check_target

if TYPE_CHECKING:
    from lutfuse.core.bracket import Bracket
    from lutfuse.core.fusion import Engine
    from lutfuse.core.methods import Models
    from lutfuse.core.prepared import PreparedBracket

Progress = Callable[[float], None]
Cancel = Callable[[], bool]


@dataclass(frozen=True)
class ImageOptions:
    """How an image is written (core.imageio.write_image): bit depth 8 or 16 (None: 16 for PNG/TIFF when the
    sources are 16-bit, else 8), JPEG quality 1-100 and chroma subsampling, TIFF compression."""

    bit_depth: int | None = None
    quality: int = 95
    subsampling: str = "444"
    compression: str = "deflate"

    @classmethod
    def from_settings(cls, settings: Any) -> ImageOptions:
        """The image options of `lutfuse fuse`'s settings (FuseSettings or an argparse namespace)."""
        default = cls()
        return cls(bit_depth=getattr(settings, "bit_depth", None),
                   quality=getattr(settings, "quality", default.quality),
                   subsampling=getattr(settings, "subsampling", default.subsampling),
                   compression=getattr(settings, "compression", default.compression))


@dataclass(frozen=True)
class CubeExport:
    """What export_cube wrote: the .cube file and, when asked for, the 16-bit base image."""

    cube: Path
    base: Path | None = None


@dataclass(frozen=True)
class HQExport:
    """What export_hq wrote, and the HQ image itself (H×W×3 float32 in [0,1]), e.g. for a before/after view."""

    path: Path
    image: np.ndarray


def bit_depth_for(path: Path, requested: int | None, source_bits: int) -> int:
    """8 or 16: what was asked for, else 16 for TIFF (the hand-off to an editor: a fusion of several exposures
    holds more than 8 bits of tone even from 8-bit frames; the editor's export default too), 16 for PNG when the
    sources are 16-bit, else 8; OutputError for 16-bit JPEG."""
    kind = FORMATS.get(path.suffix.lower())
    if requested == 16 and kind == "JPEG":
        raise OutputError(f"{path}: JPEG holds only 8 bits per channel; write a .tif or .png for 16-bit")
    if requested is not None:
        return requested
    return 16 if kind == "TIFF" or (source_bits > 8 and kind == "PNG") else 8


def base_path_for(cube: Path) -> Path:
    """Where the editor puts the 16-bit base image beside a .cube: look.cube -> look_base.tif."""
    return cube.with_name(cube.stem + "_base.tif")


def _check(cancel: Cancel | None) -> None:
    """Cancelled when the caller asked to stop (between steps)."""
    if cancel is not None and cancel():
        raise Cancelled("export cancelled")


def write_fused(path: str | Path, image: np.ndarray, bracket: Bracket, options: ImageOptions = ImageOptions(), *,
                overwrite: bool = False, origin: str | None = None) -> tuple[Path, int]:
    """Write a fused image H×W×3 float32 in [0,1] of `bracket` -> (path, bit depth written).

    The metadata is the bracket's (OutputMetadata.from_bracket), its frames are the input guard; `origin` names
    what made the pixels (for the message when they hold NaN). Raises OutputError naming the file."""
    from lutfuse.core.imageio import write_image
    from lutfuse.core.metadata import OutputMetadata

    path = Path(path)
    bits = bit_depth_for(path, options.bit_depth, bracket.bit_depth)
    out = write_image(path, image, bit_depth=bits, metadata=OutputMetadata.from_bracket(bracket),
                      quality=options.quality, subsampling=options.subsampling, compression=options.compression,
                      overwrite=overwrite, inputs=[f.path for f in bracket.frames], origin=origin)
    return out, bits


def export_image(engine: Engine, prepared: PreparedBracket, path: str | Path, *, grid: int = 33,
                 detail: float = 1.0, look: Any = None, options: ImageOptions = ImageOptions(),
                 overwrite: bool = False, progress: Progress | None = None, cancel: Cancel | None = None) -> Path:
    """The full-resolution LUT render (method lut) of a prepared bracket at (grid, detail, look), written to
    `path` with the bracket's metadata. The target is checked before rendering. Raises OutputError, LUTFuseError
    (bad grid/detail), Cancelled."""
    from lutfuse.core.methods import METHODS

    path = Path(path)
    report = progress or (lambda _f: None)
    check_target(path, overwrite=overwrite, inputs=prepared.paths)
    bit_depth_for(path, options.bit_depth, prepared.bracket.bit_depth)
    report(0.05)
    _check(cancel)
    image = engine.render(prepared, grid, detail, None, look=look)
    _check(cancel)
    report(0.7)
    out, _ = write_fused(path, image, prepared.bracket, options, overwrite=overwrite, origin=METHODS["lut"].origin())
    report(1.0)
    return out


def export_cube(engine: Engine, prepared: PreparedBracket, path: str | Path, *, grid: int = 33, look: Any = None,
                title: str | None = None, base: str | Path | None = None, overwrite: bool = False,
                progress: Progress | None = None, cancel: Cancel | None = None) -> CubeExport:
    """The prepared bracket's LUT at `grid` (with the look composed in) as a .cube at `path` and, when `base` is
    given, the 16-bit base image it applies to there (so any tool applying the .cube to it reproduces the
    detail-0 render). TITLE: `title`, else core.cube.cube_title(first frame, G); comments: the pixels' colour
    encoding. Both targets are checked before any work. Raises OutputError, CubeError, LUTFuseError, Cancelled."""
    from lutfuse.core.cube import cube_title, write_cube
    from lutfuse.core.imageio import check_writable, write_image
    from lutfuse.core.methods import METHODS
    from lutfuse.core.profiles import cube_comments

    path = Path(path)
    base = None if base is None else Path(base)
    report = progress or (lambda _f: None)
    bracket = prepared.bracket
    inputs = prepared.paths
    if path.suffix.lower() != ".cube":
        suffix = shown_path(path.suffix) or "(no extension)"
        raise OutputError(f"{shown_path(path)}: unsupported output type '{suffix}' (use .cube)")
    check_writable(path, overwrite=overwrite, inputs=inputs)
    if base is not None:
        if base.suffix.lower() not in (".tif", ".tiff", ".png"):
            raise OutputError(f"{base}: the base image is written as 16-bit .tif or .png")
        check_target(base, overwrite=overwrite, inputs=inputs)
    report(0.05)
    _check(cancel)
    lut = engine.lut(prepared, grid, look=look)
    _check(cancel)
    report(0.3)
    out = write_cube(path, lut, title=title or cube_title(bracket.frames[0].path.stem, grid),
                     comments=cube_comments(bracket.middle().icc), overwrite=overwrite, inputs=inputs,
                     origin=METHODS["lut"].origin())
    report(0.5)
    if base is not None:
        meta = prepared.metadata(made=f"base image for {path.name}")
        write_image(base, prepared.base, bit_depth=16, metadata=meta, overwrite=overwrite, inputs=inputs)
    report(1.0)
    return CubeExport(out, base)


def export_hq(engine: Engine, prepared: PreparedBracket, path: str | Path, *, grid: int = 33, detail: float = 1.0,
              look: Any = None, options: ImageOptions = ImageOptions(), overwrite: bool = False,
              progress: Progress | None = None, cancel: Cancel | None = None,
              models: Models | None = None) -> HQExport:
    """The HQ export (method hq, core.hq: the render at grid/detail/look refined per bracket, as `lutfuse
    fuse --method hq` does) of a prepared bracket, written to `path` with the bracket's metadata. The target is
    checked first (a read-only folder fails now, not after minutes). models: the HQ network cache (core.methods.
    Models; a fresh one loads the shipped weights). Raises OutputError, WeightsError, Cancelled."""
    from lutfuse.core.methods import METHODS, Models
    from lutfuse.core.pipeline import FuseSettings

    path = Path(path)
    report = progress or (lambda _f: None)
    check_target(path, overwrite=overwrite, inputs=prepared.paths)
    bit_depth_for(path, options.bit_depth, prepared.bracket.bit_depth)
    method = METHODS["hq"]
    settings = FuseSettings({"grid": grid, "detail": detail, "device": str(engine.device)})
    fused = method.fuse(prepared.bracket, settings, progress=lambda f: report(0.97 * f), cancel=cancel,
                        models=models or Models(), engine=engine, prepared=prepared, look=look)
    _check(cancel)
    out, _ = write_fused(path, fused, prepared.bracket, options, overwrite=overwrite, origin=method.origin())
    report(1.0)
    return HQExport(out, fused)
