"""Export jobs (image, .cube + base, HQ) as functions for a background Job, and the save-dialog choices."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lutfuse.app.state import display_copy
from lutfuse.app.workers import EngineHost, Job
from lutfuse.core.errors import Cancelled
from lutfuse.core.metadata import OutputMetadata

# Save-dialog filters -> (suffix, bit depth). A typed extension decides the format; the filter then decides
# the bit depth only when it is of that format (else TIFF is 16-bit, PNG and JPEG 8-bit).
IMAGE_FILTERS = {
    "TIFF 16-bit (*.tif *.tiff)": (".tif", 16),
    "TIFF 8-bit (*.tif *.tiff)": (".tif", 8),
    "JPEG (*.jpg *.jpeg)": (".jpg", 8),
    "PNG 8-bit (*.png)": (".png", 8),
    "PNG 16-bit (*.png)": (".png", 16),
}
DEFAULT_IMAGE_FILTER = "TIFF 16-bit (*.tif *.tiff)"
CUBE_FILTER = "Adobe/Resolve 3D LUT (*.cube)"
FORMAT_OF_SUFFIX = {".tif": ".tif", ".tiff": ".tif", ".jpg": ".jpg", ".jpeg": ".jpg", ".png": ".png"}
DEFAULT_BITS = {".tif": 16, ".jpg": 8, ".png": 8}


def image_format(path: Path, chosen_filter: str) -> tuple[Path, int]:
    """(path to write, bit depth) from what was typed and the filter selected in the save dialog.

    A typed image extension wins over the filter ('name.tif' with the JPEG filter writes a TIFF); its bit depth
    comes from the filter when the filter is of the same format, else the format's default (16-bit TIFF).
    Without a known extension the filter's suffix is added."""
    suffix, bits = IMAGE_FILTERS.get(chosen_filter, IMAGE_FILTERS[DEFAULT_IMAGE_FILTER])
    typed = FORMAT_OF_SUFFIX.get(path.suffix.lower())
    if typed is None:
        return path.with_name(path.name + suffix), bits
    return path, bits if typed == suffix else DEFAULT_BITS[typed]


def default_export_path(first_frame: Path, suffix: str, tag: str = "fused") -> Path:
    """Beside the originals, named after the first (darkest) frame: IMG_0001.jpg -> IMG_0001_fused.tif."""
    return first_frame.with_name(f"{first_frame.stem}_{tag}{suffix}")


@dataclass(frozen=True)
class ImageOptions:
    """How to write an exported image."""

    bit_depth: int = 8
    quality: int = 95


def with_suffix(path: Path, suffix: str) -> Path:
    """`path` with `suffix` added when it has none of the kind the filter asked for."""
    known = {".jpg": (".jpg", ".jpeg"), ".tif": (".tif", ".tiff"), ".png": (".png",), ".cube": (".cube",)}
    return path if path.suffix.lower() in known[suffix] else path.with_name(path.name + suffix)


def base_path_for(cube: Path) -> Path:
    """Where the 16-bit base image goes beside a .cube: look.cube -> look_base.tif."""
    return cube.with_name(cube.stem + "_base.tif")


def _check(job: Job) -> None:
    """Stop between steps when the user cancelled."""
    if job.is_cancelled():
        raise Cancelled("export cancelled")


def image_work(host: EngineHost, path: Path, grid: int, detail: float, options: ImageOptions,
               overwrite: bool, look: object = None) -> Callable[[Job], Path]:
    """Full-resolution LUT render written to `path` (EXIF of the middle frame kept)."""
    bracket = host.current.bracket

    def work(job: Job) -> Path:
        from lutfuse.core.imageio import write_image

        job.report(0.05)
        with host.lock:
            _check(job)
            extra = {} if look is None else {"look": look}
            image = host.engine.render(grid, detail, None, **extra)
        _check(job)
        job.report(0.7)
        out = write_image(path, image, bit_depth=options.bit_depth, metadata=OutputMetadata.from_bracket(bracket),
                          quality=options.quality, overwrite=overwrite, inputs=[f.path for f in bracket.frames],
                          origin="the LUT student weights")
        job.report(1.0)
        return out

    return work


def cube_work(host: EngineHost, path: Path, grid: int, overwrite: bool, look: object = None) -> Callable[[Job], Path]:
    """The bracket's LUT as a .cube and, beside it, the 16-bit base image it applies to."""
    bracket = host.current.bracket

    def work(job: Job) -> Path:
        from lutfuse.core.cube import cube_title, write_cube
        from lutfuse.core.imageio import write_image
        from lutfuse.core.profiles import cube_comments

        job.report(0.05)
        with host.lock:
            lut = host.engine.lut(grid, **({} if look is None else {"look": look}))
            base = host.engine.base()
        _check(job)
        job.report(0.3)
        # the same title and colour-encoding comments as `lutfuse cube`
        out = write_cube(path, lut, title=cube_title(bracket.frames[0].path.stem, grid),
                         comments=cube_comments(bracket.middle().icc), overwrite=overwrite,
                         inputs=[f.path for f in bracket.frames], origin="the LUT student weights")
        job.report(0.5)
        meta = OutputMetadata.from_bracket(bracket, made=f"base image (core/base.py) for {path.name}")
        write_image(base_path_for(path), base, bit_depth=16, metadata=meta,
                    overwrite=overwrite, inputs=[f.path for f in bracket.frames])
        job.report(1.0)
        return out

    return work


def hq_work(host: EngineHost, path: Path, options: ImageOptions, overwrite: bool, grid: int = 33,
            detail: float = 1.0, look: object = None) -> Callable[[Job], Path]:
    """HQ export (core.hq.HQFusion): the editor's render at `grid`/`detail`/`look`, refined, at full resolution."""
    bracket = host.current.bracket

    def work(job: Job) -> Path:
        from lutfuse.core.hq import HQFusion
        from lutfuse.core.imageio import check_target, write_image

        inputs = [f.path for f in bracket.frames]
        check_target(path, overwrite=overwrite, inputs=inputs)  # a read-only folder fails now, not after minutes
        job.report(0.0)
        from lutfuse.core.hq import live_renders

        hq = HQFusion()
        # the editor's render at its settings, under the host's lock (the engine holds this bracket meanwhile);
        # the rest of HQ works from these arrays, so previews go on while it runs
        with host.lock:
            _check(job)
            renders = live_renders(host.engine, grid, detail, look, cancel=job.is_cancelled)
        live_shown = display_copy(renders[0], host.display_side)   # before fuse: it corrects renders[0] in place
        fused = hq.fuse(bracket.images, progress=lambda f: job.report(0.97 * f), cancel=job.is_cancelled,
                        renders=renders, valid=bracket.valid)
        _check(job)
        out = write_image(path, fused, bit_depth=options.bit_depth, metadata=OutputMetadata.from_bracket(bracket),
                          quality=options.quality, overwrite=overwrite, inputs=inputs,
                          origin="the live render refined per bracket (core.hq)")
        from lutfuse.app.hq_preview import make_preview

        # the before/after against the live view, shown by the editor once the file is written
        host.hq_result = make_preview(bracket, live_shown, display_copy(fused, host.display_side), out)
        job.report(1.0)
        return out

    return work
