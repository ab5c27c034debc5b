"""Navigator: a small overview of the whole fused image with the rectangle the main view shows; click or drag in
it to pan the main view there (Lightroom's and darktable's navigator)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QPen, QPixmap
from PySide6.QtWidgets import QSizePolicy, QWidget

NAV_SIDE = 240   # longest side of the overview, screen pixels


def overview_geometry(image_size: tuple[int, int], widget: QSize) -> QRectF:
    """Where an image of `image_size` (width, height) sits in a widget of size `widget`: centred, scaled to fit,
    aspect kept. Returned in widget pixels."""
    w, h = image_size
    scale = min(widget.width() / w, widget.height() / h)
    dw, dh = w * scale, h * scale
    return QRectF((widget.width() - dw) / 2, (widget.height() - dh) / 2, dw, dh)


class Navigator(QWidget):
    """The overview with the visible rectangle (yellow). `panTo(x, y)` asks for the main view to centre on image
    point (x, y) (full-resolution pixel coordinates) while the mouse is pressed in it."""

    panTo = Signal(float, float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.pixmap: QPixmap | None = None
        self.image_size: tuple[int, int] | None = None   # (width, height) of the full-resolution image
        self.visible: QRectF | None = None                # the main view's range, image coordinates
        self.setMinimumSize(160, 110)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setCursor(Qt.CursorShape.OpenHandCursor)
        self.setToolTip("The whole image; the yellow frame is what the view shows. Click or drag to move there")

    def sizeHint(self) -> QSize:
        return QSize(NAV_SIDE, NAV_SIDE * 2 // 3)

    def set_image(self, pixels: np.ndarray, image_size: tuple[int, int]) -> None:
        """Show `pixels` (h×w×3 uint8, any size: it is scaled down) standing for an image of `image_size`
        (width, height)."""
        import cv2

        h, w = pixels.shape[:2]
        scale = min(1.0, NAV_SIDE * 2 / max(h, w))   # twice the widget side: sharp on a high-DPI screen
        if scale < 1.0:
            pixels = cv2.resize(pixels, (max(1, round(w * scale)), max(1, round(h * scale))),
                                interpolation=cv2.INTER_AREA)
        data = np.ascontiguousarray(pixels)
        ph, pw = data.shape[:2]
        self.pixmap = QPixmap.fromImage(QImage(data.data, pw, ph, 3 * pw, QImage.Format.Format_RGB888).copy())
        self.image_size = image_size
        self.update()

    def set_visible_rect(self, rect: QRectF) -> None:
        """The main view now shows `rect` (image coordinates)."""
        self.visible = QRectF(rect)
        self.update()

    def frame_rect(self) -> QRectF | None:
        """The visible rectangle in widget pixels, clipped to the overview (None before an image)."""
        if self.image_size is None or self.visible is None:
            return None
        place = overview_geometry(self.image_size, self.size())
        s = place.width() / self.image_size[0]
        r = QRectF(place.x() + self.visible.x() * s, place.y() + self.visible.y() * s,
                   self.visible.width() * s, self.visible.height() * s)
        return r.intersected(place)

    def image_point(self, pos: QPointF) -> tuple[float, float] | None:
        """Image coordinates under widget position `pos`, clamped into the image."""
        if self.image_size is None:
            return None
        place = overview_geometry(self.image_size, self.size())
        s = place.width() / self.image_size[0]
        x = float(np.clip((pos.x() - place.x()) / s, 0, self.image_size[0]))
        y = float(np.clip((pos.y() - place.y()) / s, 0, self.image_size[1]))
        return x, y

    # -- painting and mouse ----------------------------------------------------------------------------------------
    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#1b1b1d"))
        if self.pixmap is not None and self.image_size is not None:
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            painter.drawPixmap(overview_geometry(self.image_size, self.size()), self.pixmap,
                               QRectF(self.pixmap.rect()))
            frame = self.frame_rect()
            if frame is not None:
                painter.setPen(QPen(QColor(255, 204, 68), 2))
                painter.drawRect(frame.adjusted(1, 1, -1, -1))
        painter.end()

    def _pan(self, event: QMouseEvent) -> None:
        point = self.image_point(event.position())
        if point is not None:
            self.panTo.emit(*point)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
            self._pan(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if event.buttons() & Qt.MouseButton.LeftButton:
            self._pan(event)

    def mouseReleaseEvent(self, _event: QMouseEvent) -> None:
        self.setCursor(Qt.CursorShape.OpenHandCursor)
