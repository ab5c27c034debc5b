"""The editor window: frame strip, image view, adjust + histogram, LUT panel, exports, menus and shortcuts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from lutfuse.app.controls import AdjustPanel
from lutfuse.app.export_ui import ExportMixin
from lutfuse.app.frame_strip import FrameStrip
from lutfuse.app.histogram import HistogramWidget
from lutfuse.app.lut_panel import LutPanel
from lutfuse.app.settings import AppSettings
from lutfuse.app.task_indicator import TaskIndicator
from lutfuse.app.state import PREVIEW_MAX_SIDE, LoadedBracket, RenderResult, push_recent, recent_label
from lutfuse.app.viewer import ImageViewer
from lutfuse.app.workers import EngineHost, Job, default_engine_factory

OPEN_FILTER = ("Images (*.jpg *.jpeg *.png *.tif *.tiff *.heic *.heif *.hif *.dng *.cr2 *.cr3 *.nef *.arw *.raf *.orf "
               "*.rw2);;All files (*)")


class Banner(QFrame):
    """An inline error message above the image, with a close button; hidden when empty."""

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("banner")
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        layout.addWidget(self.label, 1)
        layout.addWidget(close)
        self.hide()

    def show_message(self, text: str) -> None:
        """Show `text` until closed or replaced."""
        self.label.setText(text)
        self.show()


class MainWindow(ExportMixin, QMainWindow):
    """LUTFuse editor over one EngineHost; every engine call runs on a worker thread."""

    renderShown = Signal(bool)     # a render reached the view; True when it was the full-resolution one
    errorShown = Signal(str)
    exportEnded = Signal(str, str)  # status ("done", "failed", "cancelled"), path or message

    def __init__(self, settings: AppSettings | None = None,
                 engine_factory: Callable[[], object] | None = None) -> None:
        super().__init__()
        self.settings = settings or AppSettings()
        self.host = EngineHost(engine_factory or (lambda: default_engine_factory(self.settings.device)), self)
        self.loaded: LoadedBracket | None = None
        self.full_shown = False
        self.export_job: Job | None = None
        self.load_job: Job | None = None
        self.setWindowTitle("LUTFuse")
        self.setAcceptDrops(True)
        self._build_widgets()
        self._build_menus()
        self._connect()
        self.resize(QSize(1440, 900))
        geometry, state = self.settings.window_state()
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)

    # -- construction ------------------------------------------------------------------------------------------
    def _build_widgets(self) -> None:
        """Central view with its banner, three docks, and the status bar."""
        self.viewer = ImageViewer()
        self.banner = Banner()
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(6, 6, 6, 0)
        layout.setSpacing(6)
        layout.addWidget(self.banner)
        layout.addWidget(self.viewer, 1)
        self.setCentralWidget(central)

        self.strip = FrameStrip()
        self.strip.set_align(self.settings.align)
        self.adjust = AdjustPanel(self.settings.grid, self.settings.detail)
        self.histogram = HistogramWidget()
        adjust_box = QWidget()
        adjust_layout = QVBoxLayout(adjust_box)
        adjust_layout.setContentsMargins(0, 0, 0, 0)
        adjust_layout.addWidget(self.adjust)
        hist_title = QLabel("Histogram")
        hist_title.setObjectName("panelTitle")
        hist_title.setContentsMargins(8, 4, 8, 0)
        adjust_layout.addWidget(hist_title)
        adjust_layout.addWidget(self.histogram, 1)
        self.lut_panel = LutPanel()
        self.docks = {}
        for name, title, widget, area in (
            ("frames", "Frames", self.strip, Qt.DockWidgetArea.LeftDockWidgetArea),
            ("adjust", "Adjust", adjust_box, Qt.DockWidgetArea.RightDockWidgetArea),
            ("lut", "LUT", self.lut_panel, Qt.DockWidgetArea.RightDockWidgetArea),
        ):
            dock = QDockWidget(title, self)
            dock.setObjectName(f"dock_{name}")  # saveState() needs names
            dock.setWidget(widget)
            dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                             | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
            self.addDockWidget(area, dock)
            self.docks[name] = dock
        self.resizeDocks([self.docks["frames"]], [200], Qt.Orientation.Horizontal)
        self.resizeDocks([self.docks["adjust"], self.docks["lut"]], [380, 380], Qt.Orientation.Horizontal)
        self.resizeDocks([self.docks["adjust"], self.docks["lut"]], [300, 520], Qt.Orientation.Vertical)

        bar = self.statusBar()
        self.zoom_label = QLabel("")
        self.render_label = QLabel("")
        self.device_label = QLabel("")  # where the engine renders (core.device.describe), once it exists
        self.load_task = TaskIndicator()
        self.export_task = TaskIndicator()
        bar.addPermanentWidget(self.load_task)
        bar.addPermanentWidget(self.export_task)
        bar.addPermanentWidget(self.render_label)
        bar.addPermanentWidget(self.zoom_label)
        bar.addPermanentWidget(self.device_label)

    def _action(self, menu, text: str, slot, shortcuts: Sequence[str | QKeySequence] = (),
                tip: str = "") -> QAction:
        """A menu action with shortcuts that work anywhere in the window."""
        action = QAction(text, self)
        action.setShortcuts([QKeySequence(s) for s in shortcuts])
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.setStatusTip(tip)
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _build_menus(self) -> None:
        """File and View menus; every shortcut lives on an action."""
        file_menu = self.menuBar().addMenu("&File")
        self._action(file_menu, "&Open Bracket…", self.open_dialog, [QKeySequence.StandardKey.Open],
                     "Open 2–9 exposures of one scene")
        self.recent_menu = file_menu.addMenu("Open &Recent")
        file_menu.addSeparator()
        self.export_actions = [
            self._action(file_menu, "&Export Image…", self.export_image_dialog, ["Ctrl+E"],
                         "Write the fused image (PNG, JPEG, 8/16-bit TIFF)"),
            self._action(file_menu, "Export &LUT (.cube)…", self.export_cube_dialog, ["Ctrl+Alt+E"],
                         "Write the LUT as a .cube and the 16-bit base image it applies to"),
            self._action(file_menu, "&HQ Export…", self.export_hq_dialog, ["Ctrl+Shift+E"],
                         "Two-phase neural refinement at full resolution (slow)"),
        ]
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, [QKeySequence.StandardKey.Quit])
        view = self.menuBar().addMenu("&View")
        fit = self._action(view, "&Fit", self.viewer.fit, ["Ctrl+0"], "Whole image in the view (Ctrl+0)")
        actual = self._action(view, "&100 %", self.viewer.actual_size, ["Ctrl+1"],
                              "One image pixel per screen pixel (Ctrl+1)")
        self._action(view, "Zoom &In", self.viewer.zoom_in, ["+", "=", "Ctrl++"])
        self._action(view, "Zoom &Out", self.viewer.zoom_out, ["-", "Ctrl+-"])
        view.addSeparator()
        self.split_action = self._action(view, "&Before / After", self.viewer.set_split, ["B", "\\"],
                                         "Split the view against the middle frame (B); drag the divider")
        self.split_action.setCheckable(True)
        self.viewer.splitChanged.connect(self.split_action.setChecked)
        # a toolbar for what is used most; the same actions, so menu, toolbar and keys stay in step
        tools = self.addToolBar("Tools")
        tools.setObjectName("toolbar_main")
        tools.setMovable(False)
        tools.addAction(file_menu.actions()[0])
        tools.addAction(self.export_actions[0])
        tools.addAction(self.export_actions[2])
        tools.addSeparator()
        tools.addAction(fit)
        tools.addAction(actual)
        tools.addAction(self.split_action)
        view.addSeparator()
        for dock in self.docks.values():
            view.addAction(dock.toggleViewAction())
        self._rebuild_recent()
        self._set_exports_enabled(False)

    def _connect(self) -> None:
        """Wire the host's results and the panels' requests."""
        self.host.loaded.connect(self._on_loaded)
        self.host.load_failed.connect(self._on_load_failed)
        self.host.rendered.connect(self._on_rendered)
        self.host.render_failed.connect(lambda msg: self.show_error(f"Render failed: {msg}"))
        self.host.busy_changed.connect(lambda busy: self.render_label.setText("Rendering…" if busy else
                                                                            self.render_label.text()))
        self.adjust.gridChanged.connect(lambda _v, settled: self.request_render(settled))
        self.adjust.detailChanged.connect(lambda _v, settled: self.request_render(settled))
        self.strip.alignToggled.connect(self._on_align_toggled)
        self.viewer.zoomChanged.connect(lambda z: self.zoom_label.setText(f"{z * 100:.0f} %"))
        self.export_task.cancelRequested.connect(self.cancel_export)
        self.load_task.cancelRequested.connect(self.cancel_load)

    # -- state shortcuts ---------------------------------------------------------------------------------------
    @property
    def grid(self) -> int:
        """Grid size on the slider."""
        return self.adjust.grid.value()

    @property
    def detail(self) -> float:
        """Detail strength on the slider."""
        return self.adjust.detail.value() / 100

    # -- opening -----------------------------------------------------------------------------------------------
    def open_bracket(self, paths: Sequence[str | Path], align: bool | None = None) -> None:
        """Load a bracket in the background; the current one stays until the new one is ready."""
        paths = [Path(p) for p in paths]
        if not paths:
            return
        align = self.strip.align.isChecked() if align is None else align
        if self.load_job is not None:   # a newer request wins: the older load is dropped when it ends
            self.load_job.cancel()
        self.load_job = self.host.load(paths, align, wire=lambda job: job.signals.ended.connect(self._load_ended))
        self.load_task.start(f"Opening {paths[0].name}{' …' if len(paths) > 1 else ''}", busy=True)

    def cancel_load(self) -> None:
        """Stop waiting for the bracket being opened; the current one stays."""
        if self.load_job is not None:
            self.load_job.cancel()

    def _load_ended(self, job: Job) -> None:
        """Hide the indicator when the latest load has ended, whatever the outcome."""
        if job is self.load_job:
            self.load_job = None
            self.load_task.finish()
            if self.loaded is not None:
                self.strip.set_align(self.loaded.align)

    def open_dialog(self) -> None:
        """File → Open: pick several frames (multi-select)."""
        files, _ = QFileDialog.getOpenFileNames(self, "Open bracket (2–9 exposures)", self.settings.last_folder,
                                                OPEN_FILTER)
        if files:
            self.settings.last_folder = str(Path(files[0]).parent)
            self.open_bracket(files)

    def _on_align_toggled(self, on: bool) -> None:
        """Reload the current bracket with or without alignment."""
        self.settings.align = on
        if self.loaded is not None:
            self.open_bracket(self.loaded.paths, align=on)

    def _on_loaded(self, loaded: LoadedBracket) -> None:
        """Show the new bracket and render it: a quick preview first, then full resolution."""
        self.loaded = loaded
        self.full_shown = False
        frames = loaded.bracket.frames
        self.strip.set_frames(loaded.thumbnails, [f.path for f in frames], loaded.relative_evs,
                              [f.ev_source for f in frames])
        self.strip.set_align(loaded.align)
        h, w = loaded.before.shape[:2]
        self.viewer.set_images(None, loaded.before, (w, h))
        self.banner.hide()
        device = getattr(self.host.engine, "device", None)
        if device is not None:
            from lutfuse.core.device import describe

            self.device_label.setText(describe(device))
        self.settings.recent = push_recent(self.settings.recent, [str(p) for p in loaded.paths])
        self._rebuild_recent()
        self._set_exports_enabled(self.export_job is None)
        name = loaded.paths[0].name if len(loaded.paths) == 1 else f"{frames[0].path.name} …"
        self.setWindowTitle(f"LUTFuse — {name} ({len(frames)} frames, {w}×{h})")
        self.statusBar().showMessage(f"Opened {len(frames)} frames, {w}×{h}"
                                     f"{', aligned' if loaded.align else ''}", 5000)
        self.host.request_render(self.grid, self.detail, PREVIEW_MAX_SIDE)
        self.host.request_render(self.grid, self.detail, None)

    def _on_load_failed(self, message: str) -> None:
        """Say why; the current bracket stays (and the Align box shows its real state)."""
        if self.loaded is not None:
            self.strip.set_align(self.loaded.align)
        self.show_error(f"Could not open the bracket: {message}")

    def _rebuild_recent(self) -> None:
        """File → Open Recent from the settings."""
        self.recent_menu.clear()
        recent = self.settings.recent
        for entry in recent:
            action = self.recent_menu.addAction(recent_label(entry))
            action.setToolTip("\n".join(entry))
            action.triggered.connect(lambda _c=False, e=entry: self.open_bracket(e))
        self.recent_menu.setEnabled(bool(recent))

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        """Accept local files and folders."""
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        """Open the dropped frames (or the dropped folder)."""
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_bracket(paths)

    # -- rendering ---------------------------------------------------------------------------------------------
    def request_render(self, settled: bool = True) -> None:
        """Render at the sliders' values: a small preview while a handle is held, full resolution once settled."""
        self.host.request_render(self.grid, self.detail, None if settled else PREVIEW_MAX_SIDE)

    def _on_rendered(self, result: RenderResult) -> None:
        """Put a finished render on screen with its histogram and LUT."""
        if self.loaded is None:
            return
        self.viewer.set_after(result.image)
        self.histogram.set_histograms(result.histogram)
        if self.lut_panel.size != result.lut.shape[0] or self.lut_panel.lut is not result.lut:
            self.lut_panel.set_lut(result.lut)
        kind = "full" if result.request.full else f"preview {max(result.image.shape[:2])} px"
        self.render_label.setText(f"G {result.request.grid} · {kind} · {result.seconds * 1000:.0f} ms")
        if result.request.full:
            self.full_shown = True
        self.renderShown.emit(result.request.full)

    # -- errors ------------------------------------------------------------------------------------------------
    def show_error(self, message: str) -> None:
        """A readable message in the banner and the status bar; the editor carries on."""
        self.banner.show_message(message)
        self.statusBar().showMessage(message, 15000)
        self.errorShown.emit(message)

    # -- closing -----------------------------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:
        """Remember settings and window layout, stop background work."""
        self.settings.grid = self.grid
        self.settings.detail = self.detail
        self.settings.save_window_state(self.saveGeometry(), self.saveState())
        self.settings.sync()
        self.host.shutdown()
        super().closeEvent(event)
