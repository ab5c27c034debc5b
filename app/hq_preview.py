"""The HQ export's before/after against the live view: what the editor shows once an HQ export is written.

The export job keeps a display-sized copy of the live render it started from and of the HQ result, with the file
it wrote; the main window then shows the split view (HQ on the "before" side, named after the file, the live render
on the other) and a status line with how far the two are apart (core.consistency: median CIEDE2000, chroma and the
halo measure are the same numbers `lutfuse eval` reports). No pixels are computed here beyond display copies.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class HQPreview:
    """One written HQ export, for the editor's compare view.

    bracket: the Bracket it was made from (shown only while that bracket is on screen); live, hq: uint8 H×W×3
    display copies (same size) of the live render at the export's settings and of the HQ result; path: the file
    written; delta_e: median CIEDE2000 between them (≤ 2: the same picture); chroma_live, chroma_hq: mean CIELAB
    chroma C*ab of each."""

    bracket: object
    live: np.ndarray
    hq: np.ndarray
    path: Path
    delta_e: float
    chroma_live: float
    chroma_hq: float

    @property
    def label(self) -> str:
        """The compare view's name for the HQ side: 'HQ <file name>'."""
        return f"HQ {self.path.name}"

    def summary(self) -> str:
        """One status-bar line: the file written and how the HQ result compares with the live view."""
        return (f"Wrote {self.path} — split view: {self.label} | live view; median ΔE00 {self.delta_e:.2f} "
                f"(≤ 2: same picture), chroma C* {self.chroma_hq:.1f} vs live {self.chroma_live:.1f}")


def make_preview(bracket: object, live: np.ndarray, hq: np.ndarray, path: Path) -> HQPreview:
    """HQPreview from the uint8 display copies (H×W×3) of the live render and the HQ result; the live copy is
    resized to the HQ one's size when a preview render rounded its size differently."""
    import cv2

    from lutfuse.core.consistency import chroma, median_delta_e

    if live.shape != hq.shape:
        live = cv2.resize(live, (hq.shape[1], hq.shape[0]), interpolation=cv2.INTER_AREA)
    lf, hf = live.astype(np.float32) / 255, hq.astype(np.float32) / 255
    return HQPreview(bracket=bracket, live=live, hq=hq, path=Path(path), delta_e=median_delta_e(lf, hf),
                     chroma_live=chroma(lf), chroma_hq=chroma(hf))
