"""Export jobs (image, .cube + base, HQ) as functions for a background Job, and the save-dialog choices."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lutfuse.app.workers import EngineHost, Job
from lutfuse.core.errors import Cancelled
from lutfuse.core.metadata import OutputMetadata

# Save-dialog filters -> (suffix, bit depth); the filter, not only the suffix, decides 8 or 16-bit TIFF.
IMAGE_FILTERS = {
    "JPEG (*.jpg *.jpeg)": (".jpg", 8),
    "PNG 8-bit (*.png)": (".png", 8),
    "PNG 16-bit (*.png)": (".png", 16),
    "TIFF 8-bit (*.tif *.tiff)": (".tif", 8),
    "TIFF 16-bit (*.tif *.tiff)": (".tif", 16),
}
CUBE_FILTER = "Adobe/Resolve 3D LUT (*.cube)"


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
               overwrite: bool) -> Callable[[Job], Path]:
    """Full-resolution LUT render written to `path` (EXIF of the middle frame kept)."""
    bracket = host.current.bracket

    def work(job: Job) -> Path:
        from lutfuse.core.imageio import write_image

        job.report(0.05)
        with host.lock:
            _check(job)
            image = host.engine.render(grid, detail, None)
        _check(job)
        job.report(0.7)
        out = write_image(path, image, bit_depth=options.bit_depth, metadata=OutputMetadata.from_bracket(bracket),
                          quality=options.quality, overwrite=overwrite, inputs=[f.path for f in bracket.frames],
                          origin="the LUT student weights")
        job.report(1.0)
        return out

    return work


def cube_work(host: EngineHost, path: Path, grid: int, overwrite: bool) -> Callable[[Job], Path]:
    """The bracket's LUT as a .cube and, beside it, the 16-bit base image it applies to."""
    bracket = host.current.bracket

    def work(job: Job) -> Path:
        from lutfuse.core.cube import write_cube
        from lutfuse.core.imageio import write_image

        job.report(0.05)
        with host.lock:
            lut = host.engine.lut(grid)
            base = host.engine.base()
        _check(job)
        job.report(0.3)
        title = f"LUTFuse {grid}^3 for {bracket.middle().path.name}"
        out = write_cube(path, lut, title=title, overwrite=overwrite, inputs=[f.path for f in bracket.frames],
                         origin="the LUT student weights")
        job.report(0.5)
        meta = OutputMetadata.from_bracket(bracket, made=f"base image (per-pixel mean) for {path.name}")
        write_image(base_path_for(path), base, bit_depth=16, metadata=meta,
                    overwrite=overwrite, inputs=[f.path for f in bracket.frames])
        job.report(1.0)
        return out

    return work


def hq_work(host: EngineHost, path: Path, options: ImageOptions, overwrite: bool) -> Callable[[Job], Path]:
    """Two-phase HQ fusion (core.hq.HQFusion) at full resolution, written to `path`."""
    bracket = host.current.bracket

    def work(job: Job) -> Path:
        from lutfuse.core.hq import HQFusion
        from lutfuse.core.imageio import check_target, write_image

        inputs = [f.path for f in bracket.frames]
        check_target(path, overwrite=overwrite, inputs=inputs)  # a read-only folder fails now, not after minutes
        job.report(0.0)
        fused = HQFusion().fuse(bracket.images, progress=lambda f: job.report(0.97 * f), cancel=job.is_cancelled)
        _check(job)
        out = write_image(path, fused, bit_depth=options.bit_depth, metadata=OutputMetadata.from_bracket(bracket),
                          quality=options.quality, overwrite=overwrite, inputs=inputs, origin="the HQ weights")
        job.report(1.0)
        return out

    return work
