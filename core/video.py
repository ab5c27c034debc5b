"""A preview video of a fused sequence (time-lapse), H.264 through imageio-ffmpeg's bundled ffmpeg."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from lutfuse.core.errors import LUTFuseError, OutputError

PREVIEW_WIDTH = 1280   # longest side of the video frames (even, as H.264 with yuv420p requires)


def _read(path: str | Path) -> np.ndarray:
    """An 8-bit BGR frame, or OutputError naming the file."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OutputError(f"{path}: cannot be read back for the preview video")
    return image


def write_preview(path: str | Path, frames: Sequence[str | Path], *, fps: int = 24, overwrite: bool = False) -> Path:
    """Encode image files (same aspect) as an .mp4 no wider than PREVIEW_WIDTH -> path; LUTFuseError when
    imageio-ffmpeg is missing, OutputError when path exists (and not overwrite) or nothing can be written."""
    try:
        import imageio_ffmpeg
    except ImportError:
        raise LUTFuseError("--preview-video needs imageio-ffmpeg: pip install imageio-ffmpeg") from None
    from lutfuse.core.imageio import check_writable

    path = Path(path)
    check_writable(path, overwrite=overwrite, replace_hint="use --force to replace it")
    if not frames:
        raise OutputError(f"{path}: no fused frames to put in the video")
    first = _read(frames[0])
    scale = min(1.0, PREVIEW_WIDTH / max(first.shape[:2]))
    w, h = (round(first.shape[1] * scale) // 2 * 2, round(first.shape[0] * scale) // 2 * 2)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    writer = imageio_ffmpeg.write_frames(str(tmp), (w, h), fps=fps, codec="libx264", pix_fmt_out="yuv420p",
                                         macro_block_size=2, ffmpeg_log_level="error")
    try:
        writer.send(None)
        for frame in frames:
            bgr = _read(frame)
            rgb = cv2.cvtColor(cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
            writer.send(np.ascontiguousarray(rgb))
        writer.close()
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
