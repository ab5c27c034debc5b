"""Adjust panel: the grid-size slider (2–129, with 17/33/65 marked) and the detail slider (0–2; 1 = the default)."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QRect, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import (
    QGridLayout,
    QLabel,
    QSlider,
    QStyle,
    QStyleOptionSlider,
    QWidget,
)

from lutfuse.app.state import GRID_DEFAULT, GRID_MARKS, GRID_MAX, GRID_MIN

DETAIL_STEPS = 100    # slider steps per unit of detail strength
MAX_DETAIL = 2        # past 1 the exposures' local contrast is exaggerated (the CLI's --detail takes any value ≥ 0)


class ResetSlider(QSlider):
    """A horizontal slider that returns to its default on double-click (as in Lightroom)."""

    def __init__(self, default: int = 0) -> None:
        super().__init__(Qt.Orientation.Horizontal)
        self.default = default

    def mouseDoubleClickEvent(self, event) -> None:
        """Back to the default; a settled change."""
        self.setValue(self.default)
        self.sliderReleased.emit()
        event.accept()


class MarkRow(QWidget):
    """Tick marks and labels under a slider at chosen values, placed where the handle stands at that value."""

    def __init__(self, slider: QSlider, marks: Sequence[int]) -> None:
        super().__init__()
        self.slider = slider
        self.marks = list(marks)
        self.setFixedHeight(22)

    def x_of(self, value: int) -> int:
        """Pixel x (in this widget) of the handle centre at `value`."""
        opt = QStyleOptionSlider()
        self.slider.initStyleOption(opt)
        style = self.slider.style()
        handle = style.subControlRect(QStyle.ComplexControl.CC_Slider, opt, QStyle.SubControl.SC_SliderHandle,
                                      self.slider)
        groove = style.subControlRect(QStyle.ComplexControl.CC_Slider, opt, QStyle.SubControl.SC_SliderGroove,
                                      self.slider)
        span = groove.width() - handle.width()
        offset = style.sliderPositionFromValue(self.slider.minimum(), self.slider.maximum(), value, span)
        return groove.x() + offset + handle.width() // 2 + self.slider.x() - self.x()

    def paintEvent(self, _event) -> None:
        """Draw a tick and its number at each mark."""
        painter = QPainter(self)
        painter.setPen(QPen(QColor("#9a9a9a"), 1))
        for value in self.marks:
            x = self.x_of(value)
            painter.drawLine(x, 0, x, 5)
            left = min(max(0, x - 20), self.width() - 40)   # keep the end labels inside the widget
            align = Qt.AlignmentFlag.AlignHCenter
            if left != x - 20:
                align = Qt.AlignmentFlag.AlignLeft if left == 0 else Qt.AlignmentFlag.AlignRight
            painter.drawText(QRect(left, 6, 40, 16), align, str(value))
        painter.end()


class AdjustPanel(QWidget):
    """Grid size and detail sliders; reports changes while dragging (preview) and when settled (full)."""

    gridChanged = Signal(int, bool)       # value, settled (False while the handle is dragged)
    detailChanged = Signal(float, bool)

    def __init__(self, grid: int, detail: float, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.grid = ResetSlider(GRID_DEFAULT)
        self.grid.setRange(GRID_MIN, GRID_MAX)
        self.grid.setValue(grid)
        self.grid.setPageStep(8)
        self.grid.setToolTip("LUT grid size: the learned LUT is re-sampled on a G×G×G lattice")
        self.grid_value = QLabel()
        self.grid_value.setObjectName("valueLabel")
        self.marks = MarkRow(self.grid, GRID_MARKS)
        self.detail = ResetSlider(DETAIL_STEPS)
        self.detail.setRange(0, MAX_DETAIL * DETAIL_STEPS)
        self.detail.setValue(round(detail * DETAIL_STEPS))
        self.detail.setToolTip("Local contrast from the exposures; 0 = the pure LUT (what the .cube gives), "
                               "1 = default, 2 = twice as strong")
        self.detail_value = QLabel()
        self.detail_value.setObjectName("valueLabel")
        grid_title, detail_title = QLabel("Grid size"), QLabel("Detail")
        layout = QGridLayout(self)
        layout.setContentsMargins(8, 8, 8, 4)
        layout.setHorizontalSpacing(10)
        layout.setVerticalSpacing(2)
        layout.addWidget(grid_title, 0, 0)
        layout.addWidget(self.grid_value, 0, 1, Qt.AlignmentFlag.AlignRight)
        layout.addWidget(self.grid, 1, 0, 1, 2)
        layout.addWidget(self.marks, 2, 0, 1, 2)
        layout.addWidget(detail_title, 3, 0)
        layout.addWidget(self.detail_value, 3, 1, Qt.AlignmentFlag.AlignRight)
        layout.addWidget(self.detail, 4, 0, 1, 2)
        self._show_values()
        self.grid.valueChanged.connect(lambda v: self._changed(self.gridChanged, v, self.grid))
        self.grid.sliderReleased.connect(lambda: self.gridChanged.emit(self.grid.value(), True))
        self.detail.valueChanged.connect(lambda v: self._changed(self.detailChanged, v / DETAIL_STEPS, self.detail))
        self.detail.sliderReleased.connect(
            lambda: self.detailChanged.emit(self.detail.value() / DETAIL_STEPS, True))

    def _changed(self, signal: Signal, value, slider: QSlider) -> None:
        """Forward a value change; while the handle is held it is a preview, otherwise settled."""
        self._show_values()
        signal.emit(value, not slider.isSliderDown())

    def set_values(self, grid: int, detail: float) -> None:
        """Move both sliders without reporting (undo, presets, sidecars)."""
        for slider, value in ((self.grid, grid), (self.detail, round(detail * DETAIL_STEPS))):
            slider.blockSignals(True)
            slider.setValue(value)
            slider.blockSignals(False)
        self._show_values()

    def _show_values(self) -> None:
        """Numbers beside the slider titles."""
        g = self.grid.value()
        self.grid_value.setText(f"{g} × {g} × {g}")
        self.detail_value.setText(f"{self.detail.value() / DETAIL_STEPS:.2f}")

    def resizeEvent(self, event) -> None:
        """Marks follow the slider's geometry."""
        super().resizeEvent(event)
        self.marks.update()
