"""Export jobs (image, .cube + base, HQ) as functions for a background Job, and the save-dialog choices.

The work is core.export's, the same code `lutfuse fuse` and `lutfuse cube` run; each job is bound when it is made
to the prepared bracket the editor shows (core.prepared), so it writes that bracket's pixels and metadata even
when another bracket is opened while it runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lutfuse.app.state import display_copy
from lutfuse.app.workers import EngineHost, Job
from lutfuse.core.errors import LUTFuseError
from lutfuse.core.export import ImageOptions, base_path_for, export_cube, export_hq, export_image

__all__ = ["CUBE_FILTER", "DEFAULT_IMAGE_FILTER", "IMAGE_FILTERS", "ImageOptions", "base_path_for", "cube_work",
           "default_export_path", "hq_work", "image_format", "image_work", "with_suffix"]

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


def with_suffix(path: Path, suffix: str) -> Path:
    """`path` with `suffix` added when it has none of the kind the filter asked for."""
    known = {".jpg": (".jpg", ".jpeg"), ".tif": (".tif", ".tiff"), ".png": (".png",), ".cube": (".cube",)}
    return path if path.suffix.lower() in known[suffix] else path.with_name(path.name + suffix)


def _prepared(host: EngineHost) -> tuple[object, object]:
    """(engine, prepared bracket) the editor shows now: an export started now writes this bracket, whatever is
    loaded while it runs."""
    if host.current is None or host.engine is None:
        raise LUTFuseError("no bracket loaded: open a bracket before exporting")
    prepared = host.current.prepared
    return getattr(prepared, "_engine", None) or host.engine, prepared


def image_work(host: EngineHost, path: Path, grid: int, detail: float, options: ImageOptions,
               overwrite: bool, look: object = None) -> Callable[[Job], Path]:
    """Full-resolution LUT render written to `path` (core.export.export_image, as `lutfuse fuse` writes it)."""
    engine, prepared = _prepared(host)

    def work(job: Job) -> Path:
        return export_image(engine, prepared, path, grid=grid, detail=detail, look=look, options=options,
                            overwrite=overwrite, progress=job.report, cancel=job.is_cancelled)

    return work


def cube_work(host: EngineHost, path: Path, grid: int, overwrite: bool, look: object = None) -> Callable[[Job], Path]:
    """The bracket's LUT as a .cube and, beside it, the 16-bit base image it applies to (core.export.export_cube,
    as `lutfuse cube --base` writes them)."""
    engine, prepared = _prepared(host)

    def work(job: Job) -> Path:
        done = export_cube(engine, prepared, path, grid=grid, look=look, base=base_path_for(path),
                           overwrite=overwrite, progress=job.report, cancel=job.is_cancelled)
        return done.cube

    return work


def hq_work(host: EngineHost, path: Path, options: ImageOptions, overwrite: bool, grid: int = 33,
            detail: float = 1.0, look: object = None) -> Callable[[Job], Path]:
    """HQ export (core.export.export_hq, as `lutfuse fuse --method hq` writes it) of the editor's render at
    `grid`/`detail`/`look`, at full resolution; the result is kept for the editor's before/after view."""
    engine, prepared = _prepared(host)

    def work(job: Job) -> Path:
        done = export_hq(engine, prepared, path, grid=grid, detail=detail, look=look, options=options,
                         overwrite=overwrite, progress=job.report, cancel=job.is_cancelled)
        from lutfuse.app.hq_preview import make_preview

        # the before/after against the live view (the editor's render at the same settings, display size), shown
        # by the editor once the file is written
        shown = display_copy(done.image, host.display_side)
        live = display_copy(engine.render(prepared, grid, detail, max_side=max(shown.shape[:2]), look=look),
                            host.display_side)
        host.hq_result = make_preview(prepared.bracket, live, shown, done.path)
        return done.path

    return work
