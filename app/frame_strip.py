"""Frame strip: a thumbnail, file name and EV for each frame of the bracket, the Align toggle and the Deghost choice."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QCheckBox, QComboBox, QFrame, QHBoxLayout, QLabel, QScrollArea, QVBoxLayout, QWidget

from lutfuse.app.state import format_ev


def to_pixmap(pixels: np.ndarray) -> QPixmap:
    """H×W×3 uint8 RGB -> QPixmap (copied, so the array may go)."""
    h, w = pixels.shape[:2]
    data = np.ascontiguousarray(pixels)
    return QPixmap.fromImage(QImage(data.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy())


class FrameCard(QFrame):
    """One frame: thumbnail, name, EV."""

    def __init__(self, pixels: np.ndarray, path: Path, ev: float, source: str, middle: bool) -> None:
        super().__init__()
        self.setObjectName("frameCard")
        self.setProperty("middle", middle)
        thumb = QLabel()
        thumb.setPixmap(to_pixmap(pixels))
        thumb.setAlignment(Qt.AlignmentFlag.AlignCenter)
        name = QLabel(path.name)
        name.setToolTip(str(path))
        name.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.ev_label = QLabel(format_ev(ev) + ("" if source == "exif" else " (est.)"))
        self.ev_label.setObjectName("evLabel")
        self.ev_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.ev_label.setToolTip("Exposure relative to the middle frame, from EXIF" if source == "exif" else
                                 "No exposure EXIF: estimated from brightness")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(2)
        layout.addWidget(thumb)
        layout.addWidget(name)
        layout.addWidget(self.ev_label)


class FrameStrip(QWidget):
    """Vertical list of FrameCards, darkest first, with an Align checkbox that asks for a reload."""

    alignToggled = Signal(bool)
    deghostChanged = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from lutfuse.core.deghost import STRENGTHS

        self.align = QCheckBox("Align frames")
        self.align.setToolTip("Register hand-held frames to the middle one (rotation, scale, perspective); a frame "
                              "is moved only when that measurably improves it, so tripod brackets stay untouched")
        self.align.toggled.connect(self.alignToggled)
        self.deghost = QComboBox()
        self.deghost.addItems(list(STRENGTHS))
        self.deghost.setToolTip("Take moving content (people, leaves, water) from the middle frame: "
                                "off, or how readily a difference counts as motion")
        self.deghost.currentTextChanged.connect(self.deghostChanged)
        self.show_ghosts = QCheckBox("Show ghost mask")
        self.show_ghosts.setToolTip("Tint red where deghosting took the content from the reference frame")
        self.show_ghosts.setEnabled(False)
        deghost_row = QHBoxLayout()
        deghost_row.addWidget(QLabel("Deghost"))
        deghost_row.addWidget(self.deghost, 1)
        self.cards: list[FrameCard] = []
        self.inner = QWidget()
        self.list = QVBoxLayout(self.inner)
        self.list.setContentsMargins(0, 0, 0, 0)
        self.list.setSpacing(8)
        self.list.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(self.inner)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.setSpacing(8)
        layout.addWidget(self.align)
        layout.addLayout(deghost_row)
        layout.addWidget(self.show_ghosts)
        layout.addWidget(scroll, 1)
        self.setMinimumWidth(190)

    def set_align(self, on: bool) -> None:
        """Show the alignment state of the loaded bracket without asking for a reload."""
        self.align.blockSignals(True)
        self.align.setChecked(on)
        self.align.blockSignals(False)

    def set_deghost(self, strength: str) -> None:
        """Show the deghost strength of the loaded bracket without asking for a reload."""
        self.deghost.blockSignals(True)
        self.deghost.setCurrentText(strength)
        self.deghost.blockSignals(False)

    def set_frames(self, thumbnails: Sequence[np.ndarray], paths: Sequence[Path], evs: Sequence[float],
                   sources: Sequence[str]) -> None:
        """Replace the cards (darkest first)."""
        for card in self.cards:
            self.list.removeWidget(card)
            card.deleteLater()
        self.cards = []
        mid = len(paths) // 2
        for i, (pixels, path, ev, source) in enumerate(zip(thumbnails, paths, evs, sources)):
            card = FrameCard(pixels, Path(path), ev, source, i == mid)
            self.list.insertWidget(i, card)
            self.cards.append(card)
