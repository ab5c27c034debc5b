"""Colour adjustments (core.adjust.Look): exposure, contrast, highlights, shadows, whites, blacks, saturation,
vibrance, temperature and tint sliders, an Auto button; double-click a slider to reset it."""

from __future__ import annotations

from collections.abc import Mapping

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QPushButton, QWidget

from lutfuse.app.controls import ResetSlider
from lutfuse.core.sidecar import LOOK_KEYS

try:  # the colour adjustments live in core.adjust; without it the panel stays hidden
    from lutfuse.core import adjust as _adjust
except ImportError:  # pragma: no cover - depends on the checkout
    _adjust = None

ADJUST_AVAILABLE = _adjust is not None and hasattr(_adjust, "Look")
# key -> (label, lowest, highest, slider steps per unit, unit); exposure in EV, the rest -100..+100
FIELDS: dict[str, tuple[str, float, float, int, str]] = {
    "exposure": ("Exposure", -5.0, 5.0, 100, " EV"),
    "contrast": ("Contrast", -100, 100, 1, ""),
    "highlights": ("Highlights", -100, 100, 1, ""),
    "shadows": ("Shadows", -100, 100, 1, ""),
    "whites": ("Whites", -100, 100, 1, ""),
    "blacks": ("Blacks", -100, 100, 1, ""),
    "saturation": ("Saturation", -100, 100, 1, ""),
    "vibrance": ("Vibrance", -100, 100, 1, ""),
    "temperature": ("Temperature", -100, 100, 1, ""),
    "tint": ("Tint", -100, 100, 1, ""),
}
assert tuple(FIELDS) == LOOK_KEYS


def make_look(values: Mapping[str, float]):
    """A core.adjust.Look from panel values, or None when neutral or core.adjust is missing."""
    if not ADJUST_AVAILABLE:
        return None
    look = _adjust.Look(**{k: float(values.get(k, 0.0)) for k in LOOK_KEYS})
    return None if look.is_neutral() else look


def auto_values(images) -> dict[str, float]:
    """Suggested adjustments for a bracket (N×H×W×3 in [0,1]) from core.adjust.auto_look."""
    look = _adjust.auto_look(images)
    return {k: float(getattr(look, k)) for k in LOOK_KEYS}


class LookPanel(QWidget):
    """Ten sliders; reports (key, value, settled) like AdjustPanel, and `autoRequested` for the Auto button."""

    changed = Signal(str, float, bool)   # key, value in its unit, settled (False while a handle is held)
    autoRequested = Signal()
    resetRequested = Signal()   # every adjustment back to neutral, as one edit

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.sliders: dict[str, ResetSlider] = {}
        self.labels: dict[str, QLabel] = {}
        layout = QGridLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        layout.setHorizontalSpacing(8)
        layout.setVerticalSpacing(1)
        top = QHBoxLayout()
        self.auto = QPushButton("Auto")
        self.auto.setToolTip("Suggest exposure, contrast and colour for this bracket")
        self.auto.clicked.connect(self.autoRequested)
        self.reset = QPushButton("Reset")
        self.reset.setToolTip("All adjustments back to neutral")
        self.reset.clicked.connect(self.resetRequested)
        top.addWidget(self.auto)
        top.addWidget(self.reset)
        top.addStretch(1)
        layout.addLayout(top, 0, 0, 1, 3)
        for row, (key, (title, low, high, steps, _unit)) in enumerate(FIELDS.items(), start=1):
            slider = ResetSlider(0)
            slider.setRange(round(low * steps), round(high * steps))
            slider.setToolTip(f"{title} (double-click to reset)")
            value = QLabel()
            value.setObjectName("valueLabel")
            value.setMinimumWidth(64)
            value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            layout.addWidget(QLabel(title), row, 0)
            layout.addWidget(slider, row, 1)
            layout.addWidget(value, row, 2)
            self.sliders[key], self.labels[key] = slider, value
            slider.valueChanged.connect(lambda _v, k=key: self._moved(k))
            slider.sliderReleased.connect(lambda k=key: self.changed.emit(k, self.value(k), True))
            self._show(key)

    def value(self, key: str) -> float:
        """The value of one adjustment in its unit."""
        return self.sliders[key].value() / FIELDS[key][3]

    def values(self) -> dict[str, float]:
        """All adjustments."""
        return {key: self.value(key) for key in FIELDS}

    def set_values(self, values: Mapping[str, float]) -> None:
        """Move the sliders without reporting (undo, presets, sidecars); missing keys go to 0."""
        for key, slider in self.sliders.items():
            slider.blockSignals(True)
            slider.setValue(round(float(values.get(key, 0.0)) * FIELDS[key][3]))
            slider.blockSignals(False)
            self._show(key)

    def _moved(self, key: str) -> None:
        self._show(key)
        self.changed.emit(key, self.value(key), not self.sliders[key].isSliderDown())

    def _show(self, key: str) -> None:
        value, unit = self.value(key), FIELDS[key][4]
        self.labels[key].setText(f"{value:+.2f}{unit}" if unit else f"{value:+.0f}")
