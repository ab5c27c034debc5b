"""Main image view: the fused result with zoom (fit, 100 %, wheel) and pan, and a comparison against another image
(a frame, Mertens, the HQ export): a split with a draggable divider, or side by side with linked zoom and pan."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QPen
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsRectItem,
    QLabel,
    QStackedLayout,
    QVBoxLayout,
    QWidget,
)

ZOOM_STEP = 1.25


class ImageViewer(QWidget):
    """pyqtgraph view of the fused image (`after`) over the middle frame (`before`) clipped left of a divider."""

    zoomChanged = Signal(float)   # screen pixels per image pixel
    splitChanged = Signal(bool)
    hovered = Signal(float, float)   # image coordinates under the mouse (NaN, NaN when it leaves the image)
    sideChanged = Signal(bool)
    visibleChanged = Signal(QRectF)  # the part of the image in view, image coordinates

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = pg.GraphicsView(background="#1b1b1d")
        self.box = pg.ViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.box.setDefaultPadding(0.0)
        # side by side: a second view box left of the main one, zoom and pan linked, showing the compared image
        self.layout_item = pg.GraphicsLayout()
        self.layout_item.setContentsMargins(0, 0, 0, 0)
        self.layout_item.setSpacing(4)
        self.view.setCentralItem(self.layout_item)
        self.layout_item.addItem(self.box, 0, 0)
        self.side_box = pg.ViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.side_box.setDefaultPadding(0.0)
        self.side_image = pg.ImageItem(axisOrder="row-major")
        self.side_box.addItem(self.side_image)
        self.side_label = pg.TextItem("Before", color="#f0f0f0", fill=QColor(0, 0, 0, 140), anchor=(0, 0))
        self.side_label.setZValue(11)
        self.side_box.addItem(self.side_label, ignoreBounds=True)
        self.side_by_side = False
        self.result_label = pg.TextItem("Result", color="#f0f0f0", fill=QColor(0, 0, 0, 140), anchor=(0, 0))
        self.result_label.setZValue(11)
        self.result_label.setVisible(False)
        self.box.addItem(self.result_label, ignoreBounds=True)
        self.after = pg.ImageItem(axisOrder="row-major")
        self.box.addItem(self.after)
        # The full render is shown from a screen-sized copy; zoomed in beyond that copy's resolution, the
        # visible part is cut from the full-resolution render and laid over it (1:1 detail without ever
        # converting or uploading the whole 24 MP image).
        self.source: np.ndarray | None = None   # H×W×3 float32 in [0,1], the full render
        self.detail = pg.ImageItem(axisOrder="row-major")
        self.detail.setZValue(1)
        self.detail.hide()
        self.box.addItem(self.detail)
        self._detail_timer = QTimer(self)
        self._detail_timer.setSingleShot(True)
        self._detail_timer.setInterval(40)
        self._detail_timer.timeout.connect(self.update_detail)
        # clipped highlights (red) and shadows (blue) of the fused image, over it (J)
        self.clipping = False
        self.overlay = pg.ImageItem(axisOrder="row-major")
        self.overlay.setZValue(1.5)
        self.overlay.hide()
        self.box.addItem(self.overlay)
        self.view.scene().sigMouseMoved.connect(self._mouse_moved)
        # where deghosting found moving content (core.bracket.Bracket.ghost), tinted over the fused image
        self.ghost_overlay = pg.ImageItem(axisOrder="row-major")
        self.ghost_overlay.setZValue(5)
        self.ghost_overlay.setVisible(False)
        self.box.addItem(self.ghost_overlay)
        # The before image hangs under a clip rectangle that ends at the divider: moving the divider only
        # resizes the clip, so dragging it never re-uploads pixels.
        self.clip = QGraphicsRectItem()
        self.clip.setPen(QPen(Qt.PenStyle.NoPen))
        self.clip.setBrush(QBrush(Qt.BrushStyle.NoBrush))
        self.clip.setFlag(QGraphicsItem.GraphicsItemFlag.ItemClipsChildrenToShape, True)
        self.clip.setZValue(2)
        self.box.addItem(self.clip)
        self.before = pg.ImageItem(axisOrder="row-major")
        self.before.setParentItem(self.clip)
        self.divider = pg.InfiniteLine(angle=90, movable=True, pen=pg.mkPen("#f0f0f0", width=2),
                                       hoverPen=pg.mkPen("#ffcc44", width=3))
        self.divider.setZValue(10)
        self.box.addItem(self.divider)
        self.label_before = pg.TextItem("Before", color="#f0f0f0", fill=QColor(0, 0, 0, 140), anchor=(1.05, -0.2))
        self.label_after = pg.TextItem("After", color="#f0f0f0", fill=QColor(0, 0, 0, 140), anchor=(-0.05, -0.2))
        for item in (self.label_before, self.label_after):
            item.setZValue(11)
            self.box.addItem(item)
        self.divider.sigPositionChanged.connect(self._update_clip)
        self.box.sigRangeChanged.connect(self._range_changed)
        self.size: tuple[int, int] | None = None   # (width, height) of the full-resolution image
        self.split = False
        self._set_split_items()
        self.side_box.setXLink(self.box)
        self.side_box.setYLink(self.box)
        # until a bracket is shown, a hint stands where the image will be
        self.hint = QLabel("Open a bracket: File → Open (Ctrl+O), or drop frames or a folder here")
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint.setObjectName("viewerHint")
        self.stack = QStackedLayout()
        self.stack.addWidget(self.hint)
        self.stack.addWidget(self.view)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self.stack)

    # -- content -----------------------------------------------------------------------------------------------
    def set_images(self, after: np.ndarray | None, before: np.ndarray | None, full_size: tuple[int, int]) -> None:
        """Show new images; a smaller `after` (a preview) is stretched over the full-size rectangle."""
        first = self.size is None
        self.stack.setCurrentWidget(self.view)
        resized = self.size != full_size
        self.size = full_size
        if before is not None:
            self._put(self.before, before)
        if after is not None:
            self._put(self.after, after)
        if before is not None:
            self._put(self.side_image, before)
        if resized:
            self.divider.setBounds((0, full_size[0]))
            self.divider.setValue(full_size[0] / 2)
            self._update_clip()
        if first or resized:
            self.fit()

    def set_after(self, after: np.ndarray, source: np.ndarray | None = None) -> None:
        """Replace the fused image (a preview, or a display copy of the full render `source`, H×W×3 float in
        [0,1]) without moving the view."""
        if self.size is not None:
            self._put(self.after, after)
            self.source = source
            self.update_detail()
            self._update_overlay()

    # -- clipping ----------------------------------------------------------------------------------------------
    def set_clipping(self, on: bool) -> None:
        """Show or hide the clipping overlay."""
        self.clipping = on
        self._update_overlay()

    def _update_overlay(self) -> None:
        """Recompute the overlay from the fused image shown."""
        from lutfuse.app.state import clipping_overlay

        shown = self.after.image
        if not self.clipping or shown is None or self.size is None:
            self.overlay.hide()
            return
        self.overlay.setImage(clipping_overlay(shown), autoLevels=False, levels=(0, 255))
        w, h = self.size
        self.overlay.setRect(QRectF(0, 0, w, h))
        self.overlay.show()

    def set_before(self, pixels: np.ndarray, label: str) -> None:
        """What the split compares against (a frame, Mertens, the HQ export), stretched over the image."""
        if self.size is not None:
            self._put(self.before, pixels)
            self._put(self.side_image, pixels)
        self.label_before.setText(label)
        self.side_label.setText(label)

    def _mouse_moved(self, scene_pos) -> None:
        """Tell listeners which image pixel is under the mouse."""
        if self.size is None:
            return
        box = self.box
        if self.side_by_side and self.side_box.sceneBoundingRect().contains(scene_pos):
            box = self.side_box   # the same image point on the compared side
        point = box.mapSceneToView(scene_pos)
        w, h = self.size
        x, y = point.x(), point.y()
        if 0 <= x < w and 0 <= y < h:
            self.hovered.emit(x, y)
        else:
            self.hovered.emit(float("nan"), float("nan"))

    def update_detail(self) -> None:
        """Show the visible part of the full render at full resolution when the view is zoomed in beyond the
        display copy; hide it otherwise."""
        from lutfuse.app.state import to_display

        shown = self.after.image
        if self.source is None or shown is None or self.size is None:
            self.detail.hide()
            return
        w, h = self.size
        if self.zoom() <= shown.shape[1] / w * 1.01:   # the copy already has a pixel per screen pixel
            self.detail.hide()
            return
        (x0, x1), (y0, y1) = self.box.viewRange()
        left, top = max(0, int(np.floor(x0)) - 1), max(0, int(np.floor(y0)) - 1)
        right, bottom = min(w, int(np.ceil(x1)) + 1), min(h, int(np.ceil(y1)) + 1)
        if right <= left or bottom <= top:
            self.detail.hide()
            return
        self.detail.setImage(to_display(self.source[top:bottom, left:right]), autoLevels=False, levels=(0, 255))
        self.detail.setRect(QRectF(left, top, right - left, bottom - top))
        self.detail.show()

    def value_at(self, x: float, y: float) -> np.ndarray | None:
        """RGB (float in [0,1]) of the fused image at image coordinates (x, y): from the full render when there
        is one, else from what is shown; None outside the image."""
        if self.size is None:
            return None
        w, h = self.size
        if not (0 <= x < w and 0 <= y < h):
            return None
        if self.source is not None:
            return np.asarray(self.source[int(y), int(x)], np.float32)
        shown = self.after.image
        if shown is None:
            return None
        sy, sx = int(y * shown.shape[0] / h), int(x * shown.shape[1] / w)
        return shown[sy, sx].astype(np.float32) / 255

    def _put(self, item: pg.ImageItem, pixels: np.ndarray) -> None:
        """Set pixels and stretch them over the full image rectangle."""
        item.setImage(pixels, autoLevels=False, levels=(0, 255))
        w, h = self.size
        item.setRect(QRectF(0, 0, w, h))

    def set_ghost_overlay(self, mask: np.ndarray | None, visible: bool) -> None:
        """Tint H×W mask values in [0,1] (the ghost mask) red over the image; None removes it."""
        if mask is None or self.size is None:
            self.ghost_overlay.clear()
            self.ghost_overlay.setVisible(False)
            return
        rgba = np.zeros((*mask.shape, 4), np.uint8)
        rgba[..., 0] = 255
        rgba[..., 3] = np.clip(mask * 150 + 0.5, 0, 150).astype(np.uint8)
        self.ghost_overlay.setImage(rgba, autoLevels=False, levels=(0, 255))
        w, h = self.size
        self.ghost_overlay.setRect(QRectF(0, 0, w, h))
        self.ghost_overlay.setVisible(visible)

    def after_pixels(self) -> np.ndarray | None:
        """What the view currently shows as the fused image."""
        return self.after.image

    # -- before/after ------------------------------------------------------------------------------------------
    def set_split(self, on: bool) -> None:
        """Show or hide the before/after split (turns side by side off)."""
        if on and self.side_by_side:
            self.set_side_by_side(False)
        self.split = on
        self._set_split_items()
        self.splitChanged.emit(on)

    def set_side_by_side(self, on: bool) -> None:
        """Show the compared image in its own view left of the result (zoom and pan linked), or not; turns the
        split off (the two are alternatives)."""
        if on == self.side_by_side:
            self.sideChanged.emit(on)
            return
        if on and self.split:
            self.set_split(False)
        self.side_by_side = on
        if on:
            self.layout_item.removeItem(self.box)
            self.layout_item.addItem(self.side_box, 0, 0)
            self.layout_item.addItem(self.box, 0, 1)
        else:
            self.layout_item.removeItem(self.side_box)
            self.layout_item.removeItem(self.box)
            self.layout_item.addItem(self.box, 0, 0)
        self.side_box.setVisible(on)
        self.result_label.setVisible(on)
        self.sideChanged.emit(on)
        self._place_labels()

    def toggle_split(self) -> None:
        """Flip the before/after split."""
        self.set_split(not self.split)

    def _set_split_items(self) -> None:
        """Visibility of the before image, divider and labels follows `split`."""
        for item in (self.clip, self.divider, self.label_before, self.label_after):
            item.setVisible(self.split)
        self._update_clip()

    def _update_clip(self) -> None:
        """Clip the before image to the left of the divider and keep the labels beside it."""
        if self.size is None:
            return
        w, h = self.size
        x = float(np.clip(self.divider.value(), 0, w))
        self.clip.setRect(QRectF(0, 0, x, h))
        self._place_labels()

    def _place_labels(self) -> None:
        """Labels sit at the top of the visible area, either side of the divider."""
        if self.size is None:
            return
        (_x0, _x1), (y0, _y1) = self.box.viewRange()
        top = max(0.0, y0)
        x = self.divider.value()
        self.label_before.setPos(x, top)
        self.label_after.setPos(x, top)
        (x0, _x1), _ = self.side_box.viewRange()
        self.side_label.setPos(max(0.0, x0), top)
        self.result_label.setPos(max(0.0, x0), top)

    # -- zoom --------------------------------------------------------------------------------------------------
    def fit(self) -> None:
        """Whole image in the view."""
        if self.size is None:
            return
        w, h = self.size
        self.box.setRange(QRectF(0, 0, w, h), padding=0.02)

    def zoom(self) -> float:
        """Screen pixels per image pixel."""
        (x0, x1), _ = self.box.viewRange()
        width = self.box.width()
        return float(width / (x1 - x0)) if x1 > x0 and width > 0 else 1.0

    def set_zoom(self, scale: float) -> None:
        """Zoom to `scale` screen pixels per image pixel around the centre of the view."""
        (x0, x1), (y0, y1) = self.box.viewRange()
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        half_w = self.box.width() / scale / 2
        half_h = self.box.height() / scale / 2
        self.box.setRange(QRectF(cx - half_w, cy - half_h, 2 * half_w, 2 * half_h), padding=0)

    def visible_rect(self) -> QRectF:
        """The part of the image plane in view, image coordinates."""
        (x0, x1), (y0, y1) = self.box.viewRange()
        return QRectF(x0, y0, x1 - x0, y1 - y0)

    def center_on(self, x: float, y: float) -> None:
        """Pan (zoom kept) so that image point (x, y) is in the middle of the view (the navigator)."""
        r = self.visible_rect()
        self.box.setRange(QRectF(x - r.width() / 2, y - r.height() / 2, r.width(), r.height()), padding=0)

    def actual_size(self) -> None:
        """100 %: one image pixel per screen pixel."""
        self.set_zoom(1.0)

    def zoom_in(self) -> None:
        """One step closer."""
        self.set_zoom(self.zoom() * ZOOM_STEP)

    def zoom_out(self) -> None:
        """One step further."""
        self.set_zoom(self.zoom() / ZOOM_STEP)

    def _range_changed(self, *_args) -> None:
        """Keep labels in view and tell the status bar the zoom."""
        self._place_labels()
        if self.size is not None:
            self.zoomChanged.emit(self.zoom())
            self.visibleChanged.emit(self.visible_rect())
            self._detail_timer.start()
