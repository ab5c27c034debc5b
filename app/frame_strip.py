"""Frame strip: a thumbnail, file name and EV for each frame of the bracket, the Align toggle and the Deghost choice,
and bracket control: a checkbox per frame (take part or not), the reference frame (right-click a thumbnail or the
Reference box), and what registration did to each frame (shift px, rotation °)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMenu,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from lutfuse.app.state import format_ev


def to_pixmap(pixels: np.ndarray) -> QPixmap:
    """H×W×3 uint8 RGB -> QPixmap (copied, so the array may go)."""
    h, w = pixels.shape[:2]
    data = np.ascontiguousarray(pixels)
    return QPixmap.fromImage(QImage(data.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy())


def transform_text(record) -> str:
    """Short label of a core.registration.FrameRegistration: 'reference', 'not moved', or the shift and rotation
    applied."""
    if record is None:
        return ""
    if record.model == "reference":
        return "reference"
    if not record.applied:
        return "not moved"
    dx, dy = record.shift_px
    return f"moved ({dx:+.1f}, {dy:+.1f}) px, {record.rotation_deg:+.2f}°"


class FrameCard(QFrame):
    """One frame: thumbnail, name, EV, a 'use' checkbox and what registration did to it."""

    useToggled = Signal(object, bool)        # path, take part
    referenceRequested = Signal(object)      # path

    def __init__(self, pixels: np.ndarray, path: Path, ev: float, source: str, middle: bool) -> None:
        super().__init__()
        self.setObjectName("frameCard")
        self.setProperty("middle", middle)
        self.path = path
        self.use = QCheckBox("Use")
        self.use.setChecked(True)
        self.use.setToolTip("Take part in the fusion; untick to leave this frame out (the bracket reloads)")
        self.use.toggled.connect(lambda on: self.useToggled.emit(self.path, on))
        self.transform = QLabel("")
        self.transform.setObjectName("evLabel")
        self.transform.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.transform.setWordWrap(True)
        self.reference_allowed = True
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
        layout.addWidget(self.transform)
        layout.addWidget(self.use, 0, Qt.AlignmentFlag.AlignHCenter)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._menu)

    def _menu(self, pos) -> None:
        menu = QMenu(self)
        action = menu.addAction("Use as reference")
        action.setEnabled(self.reference_allowed and self.use.isChecked())
        action.triggered.connect(lambda: self.referenceRequested.emit(self.path))
        menu.popup(self.mapToGlobal(pos))
        self.menu = menu   # kept for tests and so it is not collected while shown

    def set_state(self, used: bool, record, reference: bool) -> None:
        """Show whether the frame takes part, what registration did (tooltip: the full record) and whether it is
        the reference."""
        self.use.blockSignals(True)
        self.use.setChecked(used)
        self.use.blockSignals(False)
        self.setProperty("middle", reference)
        self.setProperty("excluded", not used)
        self.style().unpolish(self)
        self.style().polish(self)
        if not used:
            self.transform.setText("left out")
            self.transform.setToolTip("")
        else:
            text = transform_text(record) if record is not None else ("reference" if reference else "")
            self.transform.setText(text)
            self.transform.setToolTip(record.describe() if record is not None else "")


class FrameStrip(QWidget):
    """Vertical list of FrameCards, darkest first, with an Align checkbox that asks for a reload."""

    alignToggled = Signal(bool)
    deghostChanged = Signal(str)
    referenceChosen = Signal(object)         # path of the new reference frame
    excludedChanged = Signal(object)         # tuple of the paths left out


    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from lutfuse.core.deghost import STRENGTHS

        self.align = QCheckBox("Align frames")
        self.align.setToolTip("Register hand-held frames to the middle one (rotation, scale, perspective); a frame "
                              "is moved only when that measurably improves it, so tripod brackets stay untouched")
        self.align.toggled.connect(self.alignToggled)
        self.deghost = QComboBox()
        self.deghost.addItems(list(STRENGTHS))
        self.deghost.setToolTip("Take moving content (people, leaves, water) from the reference frame: "
                                "off, or how readily a difference counts as motion")
        self.deghost.currentTextChanged.connect(self.deghostChanged)
        self.show_ghosts = QCheckBox("Show ghost mask")
        self.show_ghosts.setToolTip("Tint red where deghosting took the content from the reference frame")
        self.show_ghosts.setEnabled(False)
        deghost_row = QHBoxLayout()
        deghost_row.addWidget(QLabel("Deghost"))
        deghost_row.addWidget(self.deghost, 1)
        self.reference = QComboBox()
        self.reference.setToolTip("The frame the others are registered to and deghosting keeps moving content "
                                  "from (right-click a thumbnail: Use as reference)")
        self.reference.activated.connect(self._reference_picked)
        reference_row = QHBoxLayout()
        reference_row.addWidget(QLabel("Reference"))
        reference_row.addWidget(self.reference, 1)
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
        layout.addLayout(reference_row)
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

    def set_reference_supported(self, on: bool) -> None:
        """Whether the loader can take another reference frame (core.bracket.load_bracket(reference=…))."""
        self.reference.setEnabled(on)
        for card in self.cards:
            card.reference_allowed = on

    def show_choice(self, used: Sequence[Path], records: Sequence | None, reference: Path | None) -> None:
        """Show which frames take part (`used`, darkest first, with their registration records when aligned)
        and the reference (None: the middle of those used)."""
        used = list(used)
        if reference is None and used:
            reference = used[len(used) // 2]
        by_path = dict(zip(used, records)) if records else {}
        for card in self.cards:
            card.set_state(card.path in used, by_path.get(card.path), card.path == reference)
        self.reference.blockSignals(True)
        self.reference.clear()
        for path in used:
            self.reference.addItem(path.name, path)
        self.reference.setCurrentIndex(max(0, used.index(reference)) if reference in used else 0)
        self.reference.blockSignals(False)

    def _reference_picked(self, index: int) -> None:
        self.referenceChosen.emit(self.reference.itemData(index))

    def _use_toggled(self, _path: Path, _on: bool) -> None:
        self.excludedChanged.emit(tuple(c.path for c in self.cards if not c.use.isChecked()))

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
            card.useToggled.connect(self._use_toggled)
            card.referenceRequested.connect(self.referenceChosen)
            card.reference_allowed = self.reference.isEnabled()
            self.list.insertWidget(i, card)
            self.cards.append(card)
