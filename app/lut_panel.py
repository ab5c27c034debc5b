"""LUT panel: slices of the 3D LUT at the lattice resolution, and its response along the neutral (grey) axis."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QButtonGroup,
    QHBoxLayout,
    QLabel,
    QRadioButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from lutfuse.app.state import AXES, lut_slice, neutral_response, slice_axes

CURVE_COLOURS = {"R": (235, 80, 80), "G": (90, 200, 100), "B": (90, 140, 245)}


class LutPanel(QWidget):
    """Shows one slice of the current LUT (axis R/G/B, index bounded by G) and the grey-axis response curves."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.lut: np.ndarray | None = None
        # the input level the user chose, in [0,1]: kept as a level, not an index, so visiting a coarse grid
        # (G = 2 has only levels 0 and 1) does not lose it
        self.level = 0.5
        self.title = QLabel("LUT: none")
        self.title.setObjectName("panelTitle")
        # axis choice
        self.axis_group = QButtonGroup(self)
        axis_row = QHBoxLayout()
        axis_row.addWidget(QLabel("Slice at input"))
        for i, name in enumerate(AXES):
            button = QRadioButton(name)
            button.setToolTip(f"Hold input {name} fixed and show the other two input channels")
            self.axis_group.addButton(button, i)
            axis_row.addWidget(button)
        self.axis_group.button(2).setChecked(True)
        axis_row.addStretch(1)
        # slice index: slider and spin box bounded by the current grid size
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.spin = QSpinBox()
        self.spin.setFixedWidth(64)
        self.slider.setRange(0, 0)
        self.spin.setRange(0, 0)
        self.slider.valueChanged.connect(self.spin.setValue)
        self.spin.valueChanged.connect(self.slider.setValue)
        self.spin.valueChanged.connect(self._index_chosen)
        self.axis_group.idToggled.connect(lambda _i, on: on and self._redraw_slice())
        index_row = QHBoxLayout()
        index_row.addWidget(QLabel("Index"))
        index_row.addWidget(self.slider, 1)
        index_row.addWidget(self.spin)
        # the slice image, one visible cell per lattice entry
        self.slice_plot = pg.PlotWidget(background="#232326")
        self.slice_plot.setMenuEnabled(False)
        self.slice_plot.setAspectLocked(True)
        self.slice_plot.hideButtons()
        self.slice_plot.setMinimumHeight(120)
        self.slice_image = pg.ImageItem(axisOrder="row-major")
        self.slice_plot.addItem(self.slice_image)
        self.slice_plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0.02)
        # neutral axis response
        self.curve_plot = pg.PlotWidget(background="#232326")
        self.curve_plot.setMenuEnabled(False)
        self.curve_plot.hideButtons()
        self.curve_plot.setMinimumHeight(90)
        self.curve_plot.setXRange(0, 1, padding=0.02)
        self.curve_plot.setYRange(0, 1, padding=0.02)
        self.curve_plot.setLabel("bottom", "input grey")
        self.curve_plot.setLabel("left", "output")
        self.curve_plot.showGrid(x=True, y=True, alpha=0.15)
        self.curve_plot.plot([0, 1], [0, 1], pen=pg.mkPen((140, 140, 140), width=1, style=Qt.PenStyle.DashLine))
        self.curves = {name: self.curve_plot.plot([], [], pen=pg.mkPen(c, width=2), symbol=None)
                       for name, c in CURVE_COLOURS.items()}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.setSpacing(6)
        layout.addWidget(self.title)
        layout.addLayout(axis_row)
        layout.addLayout(index_row)
        layout.addWidget(self.slice_plot, 3)
        grey_title = QLabel("Neutral axis response")
        grey_title.setObjectName("panelTitle")
        layout.addWidget(grey_title)
        layout.addWidget(self.curve_plot, 2)

    @property
    def size(self) -> int:
        """Grid size of the LUT shown (0 when none)."""
        return 0 if self.lut is None else int(self.lut.shape[0])

    @property
    def axis(self) -> str:
        """The input axis held fixed by the slice."""
        return AXES[max(0, self.axis_group.checkedId())]

    def set_lut(self, lut: np.ndarray) -> None:
        """Show a new LUT (G×G×G×3, core layout); the slice keeps its input level across grid sizes."""
        self.lut = np.asarray(lut, np.float32)
        g = self.size
        self.title.setText(f"3D LUT  {g}×{g}×{g}")
        index = round(self.level * (g - 1))
        for w in (self.spin, self.slider):
            w.blockSignals(True)
            w.setRange(0, g - 1)
            w.setValue(index)
            w.blockSignals(False)
        self._redraw_slice()
        x, rgb = neutral_response(self.lut)
        for i, name in enumerate(AXES):
            self.curves[name].setData(x, rgb[:, i], symbol="o" if g <= 17 else None, symbolSize=4,
                                      symbolBrush=CURVE_COLOURS[name], symbolPen=None)

    def _index_chosen(self, index: int) -> None:
        """The user moved the slice: remember its level, then draw it."""
        if self.size > 1:
            self.level = index / (self.size - 1)
        self._redraw_slice()

    def slice_pixels(self) -> np.ndarray | None:
        """The slice as drawn: G×G×3 uint8, row 0 at the bottom (input 0)."""
        return None if self.slice_image.image is None else self.slice_image.image

    def _redraw_slice(self) -> None:
        """Draw the chosen slice with nearest-neighbour cells, one per lattice entry, over [0,1]²."""
        if self.lut is None:
            return
        g = self.size
        cells = np.clip(lut_slice(self.lut, self.axis, self.spin.value()) * 255 + 0.5, 0, 255).astype(np.uint8)
        self.slice_image.setImage(np.ascontiguousarray(cells), autoLevels=False, levels=(0, 255))
        self.slice_image.setRect(0, 0, 1, 1)   # cells of 1/G: the lattice is visible as blocks
        cols, rows = slice_axes(self.axis)
        level = self.spin.value() / (g - 1)
        self.slice_plot.setLabel("bottom", f"input {cols}")
        self.slice_plot.setLabel("left", f"input {rows}")
        self.slice_plot.setTitle(f"{self.axis} = {self.spin.value()}/{g - 1} ({level:.2f})", color="#cfcfcf",
                                 size="9pt")
        self.slice_plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0.02)
