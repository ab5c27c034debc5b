"""Histogram of the fused result: R, G, B and luma, drawn with pyqtgraph."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QWidget

COLOURS = {"R": (235, 80, 80), "G": (90, 200, 100), "B": (90, 140, 245), "L": (225, 225, 225)}


class HistogramWidget(pg.PlotWidget):
    """Four filled curves over 0–255; set_histograms() takes app.state.histograms() output."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent=parent, background="#232326")
        self.setMenuEnabled(False)
        self.setMouseEnabled(False, False)
        self.hideButtons()
        self.hideAxis("left")
        self.getAxis("bottom").setTicks([[(0, "0"), (64, "64"), (128, "128"), (192, "192"), (255, "255")]])
        self.getAxis("bottom").setStyle(tickLength=-4)
        self.setXRange(0, 255, padding=0)
        self.setYRange(0, 1.05, padding=0)
        self.setMinimumHeight(90)
        self.setMaximumHeight(170)   # a taller histogram shows nothing more; the sliders below need the room
        self.curves: dict[str, pg.PlotDataItem] = {}
        for name, (r, g, b) in COLOURS.items():
            fill = QColor(r, g, b, 40 if name == "L" else 70)
            self.curves[name] = self.plot([], [], pen=pg.mkPen((r, g, b), width=1.2), fillLevel=0, brush=fill,
                                          name=name)
        self.data: dict[str, np.ndarray] = {}

    def set_histograms(self, hist: dict[str, np.ndarray]) -> None:
        """Redraw from normalised histograms (each peak 1)."""
        self.data = hist
        for name, counts in hist.items():
            bins = counts.size
            x = (np.arange(bins) + 0.5) * 256 / bins
            # square root: a few clipped pixels must not flatten everything else
            self.curves[name].setData(x, np.sqrt(counts))
