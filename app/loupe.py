"""Loupe: the pixels around the mouse, magnified, with a readout of the one under the cross (RGB 0-255 and EV
relative to middle grey)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from lutfuse.app.state import format_readout, to_display

RADIUS = 7        # image pixels either side of the centre
MAGNIFY = 12      # screen pixels per image pixel


class Loupe(QWidget):
    """A (2·RADIUS+1)² patch at MAGNIFY× with a cross on the centre pixel, and its readout below."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        side = (2 * RADIUS + 1) * MAGNIFY
        self.patch = QLabel()
        self.patch.setFixedSize(side, side)
        self.patch.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.patch.setStyleSheet("background: #1b1b1d; border: 1px solid #444;")
        self.readout = QLabel("Move the mouse over the image")
        self.readout.setObjectName("valueLabel")
        self.readout.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        layout.addWidget(self.patch, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.readout)
        self.pixels: np.ndarray | None = None   # the patch as shown, (2R+1)×(2R+1)×3 uint8
        self.text = ""

    def show_at(self, image: np.ndarray, x: int, y: int) -> None:
        """Show the patch of `image` (H×W×3 float in [0,1]) centred on pixel (x, y); edges padded black."""
        h, w = image.shape[:2]
        patch = np.zeros((2 * RADIUS + 1, 2 * RADIUS + 1, 3), np.uint8)
        y0, y1, x0, x1 = max(0, y - RADIUS), min(h, y + RADIUS + 1), max(0, x - RADIUS), min(w, x + RADIUS + 1)
        patch[y0 - (y - RADIUS):y1 - (y - RADIUS), x0 - (x - RADIUS):x1 - (x - RADIUS)] = \
            to_display(image[y0:y1, x0:x1])
        self.pixels = patch
        big = np.ascontiguousarray(patch.repeat(MAGNIFY, 0).repeat(MAGNIFY, 1))
        side = big.shape[0]
        pixmap = QPixmap.fromImage(QImage(big.data, side, side, 3 * side, QImage.Format.Format_RGB888).copy())
        painter = QPainter(pixmap)
        painter.setPen(QPen(QColor(255, 204, 68), 1))
        painter.drawRect(RADIUS * MAGNIFY, RADIUS * MAGNIFY, MAGNIFY - 1, MAGNIFY - 1)
        painter.end()
        self.patch.setPixmap(pixmap)
        self.text = format_readout(x, y, image[y, x])
        self.readout.setText(self.text)

    def clear(self) -> None:
        """The mouse left the image."""
        self.readout.setText("Move the mouse over the image")
