"""The editor window: frame strip, image view, adjust + histogram, LUT panel, exports, menus and shortcuts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QRect, QSize, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QKeySequence,
    QUndoCommand,
    QUndoStack,
)
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDialog,
    QDockWidget,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QScrollArea,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from lutfuse.app.compare import CompareSources
from lutfuse.app.controls import AdjustPanel
from lutfuse.app.export_ui import ExportMixin
from lutfuse.app.frame_strip import FrameStrip
from lutfuse.app.histogram import HistogramWidget
from lutfuse.app.look_panel import ADJUST_AVAILABLE, LookPanel, auto_values, make_look
from lutfuse.app.loupe import Loupe
from lutfuse.app.lut_panel import LutPanel
from lutfuse.app.navigator import Navigator
from lutfuse.app.section import Section
from lutfuse.app.settings import AppSettings
from lutfuse.app.state import (
    DISPLAY_SIDE_MIN,
    GRID_DEFAULT,
    PREVIEW_MAX_SIDE,
    FrameChoice,
    LoadedBracket,
    RenderResult,
    choose_frames,
    push_recent,
    recent_label,
)
from lutfuse.app.task_indicator import TaskIndicator
from lutfuse.app.viewer import ImageViewer
from lutfuse.app.workers import EngineHost, Job, default_engine_factory

# Below this usable screen size the window fills the screen (a laptop); above it takes a share of it.
SMALL_SCREEN = QSize(1600, 1000)
LARGE_SCREEN_SHARE = 0.85
# Below this usable height the Adjust and LUT panels share one column as tabs instead of being stacked.
TABBED_BELOW_HEIGHT = 950


def _reference_supported() -> bool:
    """Whether core.bracket.load_bracket takes `reference=` (the reference-frame choice of the `reg` work)."""
    import inspect

    from lutfuse.core.bracket import load_bracket

    return "reference" in inspect.signature(load_bracket).parameters


REFERENCE_SUPPORTED = _reference_supported()


def default_window_size(available: QRect) -> QSize:
    """Size of a new window on a screen whose usable area is `available`: the whole area on a small screen
    (a 1366×768 laptop), else 85 % of it (never a fixed size that may not fit)."""
    w, h = available.width(), available.height()
    if w <= SMALL_SCREEN.width() or h <= SMALL_SCREEN.height():
        return QSize(w, h)
    return QSize(round(w * LARGE_SCREEN_SHARE), round(h * LARGE_SCREEN_SHARE))


def scrolled(widget: QWidget) -> QScrollArea:
    """`widget` in a frameless vertical scroll area, so a dock never forces the window taller than the screen."""
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setWidget(widget)
    return area


OPEN_FILTER = ("Images (*.jpg *.jpeg *.jfif *.mpo *.png *.tif *.tiff *.heic *.heif *.hif *.webp *.avif *.jxl *.dng "
               "*.cr2 *.cr3 *.nef *.arw *.raf *.orf *.rw2);;All files (*)")


class Banner(QFrame):
    """An inline message above the image, with a close button; hidden when empty. Its `level` ("error" red,
    "warning" amber, "note" blue) tells a failure from something to check and from what the loader did."""

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

    def show_message(self, text: str, level: str = "error") -> None:
        """Show `text` until closed or replaced."""
        self.label.setText(text)
        self.setProperty("level", level)
        self.style().unpolish(self)   # a dynamic property takes effect in the style sheet only when re-polished
        self.style().polish(self)
        self.show()


class EditCommand(QUndoCommand):
    """One edit of the fusion settings (a slider settled, Auto, a preset): undo restores the settings before."""

    def __init__(self, window: MainWindow, old: dict, new: dict, text: str) -> None:
        super().__init__(text)
        self.window, self.old, self.new = window, dict(old), dict(new)
        self.first = True

    def redo(self) -> None:
        """The first time the controls already show the edit; afterwards set them back to it."""
        if self.first:
            self.first = False
            self.window.committed = dict(self.new)
            self.window.settings_changed()
        else:
            self.window.apply_settings(self.new)

    def undo(self) -> None:
        """Back to the settings before this edit."""
        self.window.apply_settings(self.old)


class MainWindow(ExportMixin, QMainWindow):
    """LUTFuse editor over one EngineHost; every engine call runs on a worker thread."""

    renderShown = Signal(bool)     # a render reached the view; True when it was the full-resolution one
    errorShown = Signal(str)
    warningShown = Signal(str)
    exportEnded = Signal(str, str)  # status ("done", "failed", "cancelled"), path or message

    def __init__(self, settings: AppSettings | None = None,
                 engine_factory: Callable[[], object] | None = None) -> None:
        super().__init__()
        self.settings = settings or AppSettings()
        # the render device's engine: a test's own factory, else the real engine on the preferred device
        self._engine_for: Callable[[str], Callable[[], object]] = (
            (lambda _device: engine_factory) if engine_factory is not None
            else (lambda device: lambda: default_engine_factory(device)))
        self.host = EngineHost(self._engine_for(self.settings.device), self)
        self.loaded: LoadedBracket | None = None
        self.full_shown = False
        self.export_job: Job | None = None
        self.load_job: Job | None = None
        self.setWindowTitle("LUTFuse")
        self.setAcceptDrops(True)
        self.undo_stack = QUndoStack(self)
        self.undo_stack.setUndoLimit(1000)
        self.committed = self.default_settings()   # the settings the last undo step ended on
        self.compare_sources = CompareSources(self)
        self.compare_key: str | None = None      # what the split / side by side shows (or waits for)
        self.strip_frames: list[tuple[Path, object, float, str]] = []   # every frame opened: path, thumb, EV, source
        self.choice: FrameChoice | None = None   # bracket control: frames left out, the reference
        self._build_widgets()
        self._build_menus()
        self._connect()
        self.sidecar_used = False
        self._sidecar_timer = QTimer(self)
        self._sidecar_timer.setSingleShot(True)
        self._sidecar_timer.setInterval(800)
        self._sidecar_timer.timeout.connect(self.write_sidecar)
        screen = self.screen() or QApplication.primaryScreen()
        available = screen.availableGeometry()
        pixels = screen.size() * screen.devicePixelRatio()
        self.host.display_side = max(DISPLAY_SIDE_MIN, pixels.width(), pixels.height())
        self.resize(default_window_size(available))
        if available.height() < TABBED_BELOW_HEIGHT:
            self.tabifyDockWidget(self.docks["adjust"], self.docks["lut"])
            self.docks["adjust"].raise_()
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
        self.strip.set_deghost(self.settings.deghost)
        self.adjust = AdjustPanel(self.settings.grid, self.settings.detail)
        self.histogram = HistogramWidget()
        adjust_box = QWidget()
        adjust_layout = QVBoxLayout(adjust_box)
        adjust_layout.setContentsMargins(0, 0, 0, 0)
        adjust_layout.setSpacing(2)
        self.look_panel = LookPanel()
        self.loupe = Loupe()
        self.navigator = Navigator()
        self.nav_readout = QLabel("")
        self.nav_readout.setObjectName("valueLabel")
        nav_box = QWidget()
        nav_layout = QVBoxLayout(nav_box)
        nav_layout.setContentsMargins(8, 4, 8, 4)
        nav_layout.addWidget(self.navigator)
        nav_layout.addWidget(self.nav_readout)
        self.sections = {
            "navigator": Section("Navigator", nav_box),
            "histogram": Section("Histogram", self.histogram),
            "fusion": Section("Fusion", self.adjust),
            "look": Section("Adjustments", self.look_panel),
            "loupe": Section("Loupe", self.loupe, expanded=False),
        }
        # the colour adjustments need core.adjust; a checkout without it hides them
        self.sections["look"].setVisible(ADJUST_AVAILABLE)
        for section in self.sections.values():
            adjust_layout.addWidget(section)
        adjust_layout.addStretch(1)
        self.lut_panel = LutPanel()
        self.docks = {}
        for name, title, widget, area in (
            ("frames", "Frames", self.strip, Qt.DockWidgetArea.LeftDockWidgetArea),
            ("adjust", "Adjust", scrolled(adjust_box), Qt.DockWidgetArea.RightDockWidgetArea),
            ("lut", "LUT", self.lut_panel, Qt.DockWidgetArea.RightDockWidgetArea),
        ):
            dock = QDockWidget(title, self)
            dock.setObjectName(f"dock_{name}")  # saveState() needs names
            dock.setWidget(widget)
            # closable: View → Frames/Adjust/LUT hide and show them (Qt greys the toggle out otherwise)
            dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                             | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                             | QDockWidget.DockWidgetFeature.DockWidgetClosable)
            self.addDockWidget(area, dock)
            self.docks[name] = dock
        self.resizeDocks([self.docks["frames"]], [200], Qt.Orientation.Horizontal)
        self.resizeDocks([self.docks["adjust"], self.docks["lut"]], [380, 380], Qt.Orientation.Horizontal)
        self.resizeDocks([self.docks["adjust"], self.docks["lut"]], [560, 440], Qt.Orientation.Vertical)

        bar = self.statusBar()
        self.pixel_label = QLabel("")
        self.pixel_label.setObjectName("valueLabel")
        bar.addPermanentWidget(self.pixel_label)
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
        self._action(file_menu, "&Load Preset…", self.load_preset_dialog, ["Ctrl+Shift+O"],
                     "Apply grid, detail and adjustments from a TOML preset (the keys of lutfuse fuse)")
        self._action(file_menu, "&Save Preset…", self.save_preset_dialog, ["Ctrl+Shift+S"],
                     "Save grid, detail and adjustments as a TOML preset")
        file_menu.addSeparator()
        self._action(file_menu, "&Batch…", self.show_batch, ["Ctrl+B"],
                     "Fuse every bracket of a folder with the current settings, in the background")
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, [QKeySequence.StandardKey.Quit])
        edit = self.menuBar().addMenu("&Edit")
        self.undo_action = self.undo_stack.createUndoAction(self, "&Undo")
        self.undo_action.setShortcuts([QKeySequence("Ctrl+Z")])
        self.redo_action = self.undo_stack.createRedoAction(self, "&Redo")
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        for action in (self.undo_action, self.redo_action):
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            edit.addAction(action)
        edit.addSeparator()
        self._action(edit, "Reset &All Settings", self.reset_settings, ["Ctrl+Shift+R"],
                     "Grid 33, detail 1, no adjustments (undoable)")
        view = self.menuBar().addMenu("&View")
        fit = self._action(view, "&Fit", self.viewer.fit, ["Ctrl+0"], "Whole image in the view (Ctrl+0)")
        actual = self._action(view, "&100 %", self.viewer.actual_size, ["Ctrl+1"],
                              "One image pixel per screen pixel (Ctrl+1)")
        self._action(view, "Zoom &In", self.viewer.zoom_in, ["+", "=", "Ctrl++"])
        self._action(view, "Zoom &Out", self.viewer.zoom_out, ["-", "Ctrl+-"])
        view.addSeparator()
        self.split_action = self._action(view, "&Before / After", self.show_split, ["B", "\\"],
                                         "Split the view against the chosen frame, Mertens or HQ (B); drag the "
                                         "divider")
        self.split_action.setCheckable(True)
        self.viewer.splitChanged.connect(self.split_action.setChecked)
        self.side_action = self._action(view, "&Side by Side", self.show_side_by_side, ["Y"],
                                        "The compared image left of the result, zoom and pan linked (Y)")
        self.side_action.setCheckable(True)
        self.viewer.sideChanged.connect(self.side_action.setChecked)
        self.clipping_action = self._action(view, "&Clipping", self.viewer.set_clipping, ["J"],
                                            "Show clipped highlights in red and clipped shadows in blue (J)")
        self.clipping_action.setCheckable(True)
        self.compare = QComboBox()
        self.compare.setToolTip("What Before / After compares the result with")
        self.compare.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.compare.activated.connect(lambda _i: self.set_compare(self.compare.currentData()))
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
        tools.addAction(self.side_action)
        compare_label = QLabel(" against ")
        compare_label.setBuddy(self.compare)
        compare_label.setToolTip(self.compare.toolTip())
        tools.addWidget(compare_label)
        tools.addWidget(self.compare)
        tools.addAction(self.clipping_action)
        view.addSeparator()
        for name, dock in self.docks.items():
            toggle = dock.toggleViewAction()
            toggle.setShortcut(QKeySequence({"frames": "Ctrl+Shift+1", "adjust": "Ctrl+Shift+2",
                                             "lut": "Ctrl+Shift+3"}[name]))
            toggle.setStatusTip(f"Show or hide the {dock.windowTitle()} panel")
            view.addAction(toggle)
        # not Tab: that moves the keyboard focus between controls
        self.panels_action = self._action(view, "Hide All &Panels", self.toggle_panels, ["Ctrl+Shift+H"],
                                          "Hide every panel for a bigger image; again to bring them back")
        self.fullscreen_action = self._action(view, "&Full Screen", self.set_full_screen, ["F11"],
                                              "Full screen (F11; Esc leaves)")
        self.fullscreen_action.setCheckable(True)
        view.addSeparator()
        self._build_device_menu(view)
        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "&Keyboard Shortcuts", self.show_shortcuts, ["F1"], "Every shortcut of the editor")
        self._rebuild_recent()
        self._set_exports_enabled(False)

    def _build_device_menu(self, view) -> None:
        """View → Render Device: auto, CPU, CUDA, Apple GPU; the ones this machine lacks are disabled and their
        tooltip says why (core.device.unavailable)."""
        from lutfuse.core.device import unavailable

        menu = view.addMenu("Render &Device")
        menu.setToolTipsVisible(True)
        menu.setStatusTip("Where the live view and exports render; the open bracket stays open")
        group = QActionGroup(self)
        group.setExclusive(True)
        self.device_actions: dict[str, QAction] = {}
        names = {"auto": "&Auto (CUDA, then Apple GPU, then CPU)", "cpu": "&CPU", "cuda": "C&UDA GPU",
                 "mps": "Apple &GPU (MPS)"}
        for device, text in names.items():
            action = QAction(text, self)
            action.setCheckable(True)
            why = unavailable(device)
            action.setEnabled(why is None)
            action.setToolTip(why or ("CUDA if there is one, else Apple's GPU, else the CPU" if device == "auto"
                                      else f"Render on the {text.replace('&', '')}"))
            action.setChecked(device == self.settings.device)
            action.triggered.connect(lambda _checked=False, d=device: self.set_device(d))
            group.addAction(action)
            menu.addAction(action)
            self.device_actions[device] = action

    def set_device(self, device: str) -> None:
        """Render on `device` (core.device.DEVICES): a new engine is made in the background and the open bracket
        is prepared on it, keeping its edits; the choice is remembered. If the engine cannot start, the old one
        stays and the menu goes back."""
        previous = self.settings.device
        if device == previous and self.host.engine is not None:
            return
        self.settings.device = device
        self.statusBar().showMessage(f"Switching the render device to {device}…")

        def failed(message: str) -> None:
            self.settings.device = previous
            self.device_actions[previous].setChecked(True)
            self.show_error(f"Cannot render on {device}: {message}")

        self.host.switch_engine(self._engine_for(device), lambda job: job.signals.failed.connect(failed))

    def _on_engine_changed(self, engine: object) -> None:
        """A device switch finished: name the device, and render the open bracket with the new engine."""
        self._show_device(engine)
        self.statusBar().showMessage(f"Rendering on {self.device_label.text()}", 5000)
        if self.loaded is not None and self.host.current is not None:
            self.loaded = self.host.current
            self.full_shown = False
            self.request_render(True)

    def _show_device(self, engine: object) -> None:
        """The status bar's device label (core.device.describe of the engine's device)."""
        device = getattr(engine, "device", None)
        if device is not None:
            from lutfuse.core.device import describe

            self.device_label.setText(describe(device))
            self.device_label.setToolTip("Render device (View → Render Device)")

    def _connect(self) -> None:
        """Wire the host's results and the panels' requests."""
        self.host.loaded.connect(self._on_loaded)
        self.host.load_failed.connect(self._on_load_failed)
        self.host.rendered.connect(self._on_rendered)
        self.host.engine_changed.connect(self._on_engine_changed)
        self.host.render_failed.connect(lambda msg: self.show_error(f"Render failed: {msg}"))
        self.host.busy_changed.connect(lambda busy: self.render_label.setText("Rendering…" if busy else
                                                                            self.render_label.text()))
        self.adjust.gridChanged.connect(lambda _v, settled: self._edited("Grid size", settled))
        self.adjust.detailChanged.connect(lambda _v, settled: self._edited("Detail", settled))
        self.look_panel.changed.connect(lambda key, _v, settled: self._edited(key.capitalize(), settled))
        self.look_panel.autoRequested.connect(self.auto_adjust)
        self.look_panel.resetRequested.connect(
            lambda: self.edit_to({**self.current_settings(), **dict.fromkeys(self.look_panel.values(), 0.0)},
                                 "Reset adjustments"))
        self.viewer.hovered.connect(self._hovered)
        self.strip.alignToggled.connect(self._on_align_toggled)
        self.strip.deghostChanged.connect(self._on_deghost_changed)
        self.strip.show_ghosts.toggled.connect(self.viewer.ghost_overlay.setVisible)
        self.strip.referenceChosen.connect(self.set_reference)
        self.strip.excludedChanged.connect(self.set_excluded)
        self.viewer.visibleChanged.connect(self.navigator.set_visible_rect)
        self.navigator.panTo.connect(self.viewer.center_on)
        self.compare_sources.ready.connect(self._compare_ready)
        self.compare_sources.changed.connect(self._fill_compare)
        self.compare_sources.failed.connect(self.show_error)
        self.viewer.zoomChanged.connect(lambda z: self.zoom_label.setText(f"{z * 100:.0f} %"))
        self.export_task.cancelRequested.connect(self.cancel_export)
        self.load_task.cancelRequested.connect(self.cancel_load)

    # -- layout ----------------------------------------------------------------------------------------------------
    def set_full_screen(self, on: bool) -> None:
        """Full screen on or off (F11)."""
        self.fullscreen_action.setChecked(on)
        if on:
            self.showFullScreen()
        else:
            self.showNormal()

    def toggle_panels(self) -> None:
        """Hide every panel (remembering which were shown), or bring the remembered ones back."""
        shown = [name for name, dock in self.docks.items() if dock.isVisible()]
        if shown:
            self._hidden_panels = shown
            for name in shown:
                self.docks[name].hide()
        else:
            for name in getattr(self, "_hidden_panels", list(self.docks)):
                self.docks[name].show()

    def keyPressEvent(self, event) -> None:
        """Esc leaves full screen."""
        if event.key() == Qt.Key.Key_Escape and self.isFullScreen():
            self.set_full_screen(False)
            return
        super().keyPressEvent(event)

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
    def open_bracket(self, paths: Sequence[str | Path], align: bool | None = None,
                     choice: FrameChoice | None = None) -> None:
        """Load a bracket in the background; the current one stays until the new one is ready. `choice`: only
        some of its frames and/or another reference (bracket control); None for a bracket newly opened."""
        paths = [Path(p) for p in paths]
        if not paths:
            return
        align = self.strip.align.isChecked() if align is None else align
        if self.load_job is not None:   # a newer request wins: the older load is dropped when it ends
            self.load_job.cancel()
        self.load_job = self.host.load(paths, align, wire=lambda job: job.signals.ended.connect(self._load_ended),
                                       deghost=self.strip.deghost.currentText(), choice=choice)
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
                self.strip.set_deghost(self.loaded.deghost)
                self._show_choice()   # a cancelled or failed reload: the strip shows the frames really used

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
            self.open_bracket(self.loaded.paths, align=on, choice=self.loaded.choice)

    def _on_deghost_changed(self, strength: str) -> None:
        """Reload the current bracket with the new deghost strength."""
        self.settings.deghost = strength
        if self.loaded is not None:
            self.open_bracket(self.loaded.paths, align=self.loaded.align, choice=self.loaded.choice)

    # -- bracket control ---------------------------------------------------------------------------------------
    def _choose(self, excluded: Sequence[Path], reference: Path | None) -> None:
        """Reload the bracket on screen with `excluded` frames left out and `reference` as the reference."""
        if self.loaded is None:
            return
        try:
            choice = choose_frames([f[0] for f in self.strip_frames], excluded, reference)
        except ValueError as exc:
            self.show_error(str(exc))
            self._show_choice()
            return
        self.open_bracket(self.loaded.paths, align=self.loaded.align, choice=choice)

    def set_reference(self, path: Path) -> None:
        """Use frame `path` as the reference (registration, deghosting); reloads in the background."""
        current = self.loaded.choice if self.loaded is not None else None
        self._choose(current.excluded if current else (), Path(path))

    def set_excluded(self, excluded: Sequence[Path]) -> None:
        """Leave the frames `excluded` out of the fusion; reloads in the background."""
        current = self.loaded.choice if self.loaded is not None else None
        self._choose(tuple(excluded), current.reference_path if current else None)

    def _show_choice(self) -> None:
        """The strip shows the frames of the loaded bracket, its reference and registration."""
        if self.loaded is None:
            return
        bracket = self.loaded.bracket
        used = [f.path for f in bracket.frames]
        self.strip.show_choice(used, bracket.registration if self.loaded.align else None,
                               bracket.reference().path)

    def _on_loaded(self, loaded: LoadedBracket) -> None:
        """Show the new bracket and render it: a quick preview first, then full resolution."""
        # the same frames again (Align toggled, reopened): the edits stay, with their undo history
        same = self.loaded is not None and self.loaded.paths == loaded.paths
        self.loaded = loaded
        self.full_shown = False
        frames = loaded.bracket.frames
        if not same or not self.strip_frames:   # every frame of the opened bracket, excluded ones included
            self.strip_frames = [(f.path, t, ev, f.ev_source) for f, t, ev in
                                 zip(frames, loaded.thumbnails, loaded.relative_evs)]
            self.strip.set_frames(*zip(*[(t, p, ev, src) for p, t, ev, src in self.strip_frames]))
        self.strip.set_reference_supported(REFERENCE_SUPPORTED)
        self._show_choice()
        self.strip.set_align(loaded.align)
        self.strip.set_deghost(loaded.deghost)
        h, w = loaded.bracket.frames[0].image.shape[:2]
        self.viewer.set_images(None, loaded.before, (w, h))
        ghost = getattr(loaded.bracket, "ghost", None)
        self.strip.show_ghosts.setEnabled(ghost is not None)
        self.viewer.set_ghost_overlay(ghost, self.strip.show_ghosts.isChecked())
        if not same:
            self.compare_key = None    # another bracket: compare with its reference frame first
        self.compare_sources.set_bracket(loaded, self.host.display_side)
        self.navigator.set_image(loaded.before, (w, h))
        if not same:
            self._settings_for(loaded)
        else:   # reloaded with other alignment, deghosting or frames: those are stored beside the frames too
            self.settings_changed()
        self.banner.hide()
        self._show_device(self.host.engine)
        self.settings.recent = push_recent(self.settings.recent, [str(p) for p in loaded.paths])
        self._rebuild_recent()
        self._set_exports_enabled(self.export_job is None)
        name = loaded.paths[0].name if len(loaded.paths) == 1 else f"{frames[0].path.name} …"
        self.setWindowTitle(f"LUTFuse — {name} ({len(frames)} frames, {w}×{h})")
        self.statusBar().showMessage(f"Opened {len(frames)} frames, {w}×{h}"
                                     f"{', aligned' if loaded.align else ''}", 5000)
        if loaded.warnings:
            notes = f" (also: {'; '.join(loaded.notes)})" if loaded.notes else ""
            self.show_warning("Check this bracket: " + "; ".join(loaded.warnings) + notes)
        elif loaded.notes:
            self.show_note("About these files: " + "; ".join(loaded.notes))
        self.host.request_render(self.grid, self.detail, PREVIEW_MAX_SIDE, self.look())
        self.host.request_render(self.grid, self.detail, None, self.look())

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
        self.host.request_render(self.grid, self.detail, None if settled else PREVIEW_MAX_SIDE, self.look())

    # -- settings, undo, sidecar, presets ----------------------------------------------------------------------
    @staticmethod
    def default_settings() -> dict:
        """Grid 33, detail 1, every adjustment neutral."""
        from lutfuse.core.sidecar import LOOK_KEYS

        return {"grid": GRID_DEFAULT, "detail": 1.0, **{k: 0.0 for k in LOOK_KEYS}}

    def current_settings(self) -> dict:
        """What the controls show, with the keys of lutfuse fuse and core.adjust.Look."""
        return {"grid": self.grid, "detail": self.detail, **self.look_panel.values()}

    def look(self):
        """The core.adjust.Look of the sliders, or None (neutral, or no core.adjust)."""
        return make_look(self.look_panel.values())

    def apply_settings(self, values: dict) -> None:
        """Set every control from `values` (missing keys: defaults) and render; not itself an undo step."""
        merged = {**self.default_settings(), **values}
        self.adjust.set_values(int(merged["grid"]), float(merged["detail"]))
        self.look_panel.set_values(merged)
        self.committed = self.current_settings()
        self.settings_changed()
        if self.loaded is not None:
            self.request_render(True)

    def _edited(self, what: str, settled: bool) -> None:
        """A control moved: render, and once it settles make it an undo step."""
        self.request_render(settled)
        if settled:
            new = self.current_settings()
            if new != self.committed:
                self.undo_stack.push(EditCommand(self, self.committed, new, what))

    def edit_to(self, values: dict, text: str) -> None:
        """Apply `values` as one undoable edit (Auto, presets, reset)."""
        old = dict(self.committed)
        self.apply_settings(values)
        if self.committed != old:
            command = EditCommand(self, old, self.committed, text)
            self.undo_stack.push(command)

    def reset_settings(self) -> None:
        """Edit → Reset All Settings."""
        self.edit_to(self.default_settings(), "Reset")

    def auto_adjust(self) -> None:
        """Auto: core.adjust's suggestion for this bracket, as one undoable edit."""
        if self.loaded is None or not ADJUST_AVAILABLE:
            return
        import cv2
        import numpy as np

        frames = self.loaded.bracket.images
        h, w = frames.shape[1:3]
        scale = min(1.0, 512 / max(h, w))
        small = np.stack([cv2.resize(f, (max(1, round(w * scale)), max(1, round(h * scale))),
                                     interpolation=cv2.INTER_AREA) for f in frames])
        self.edit_to({**self.current_settings(), **auto_values(small)}, "Auto")

    def settings_changed(self) -> None:
        """The settings moved (an edit, undo or redo): store them beside the frames soon."""
        self._sidecar_timer.start()

    def _sidecar_writable(self) -> bool:
        """Sidecars are written for the user's brackets, never into the built-in demo."""
        from lutfuse.core.paths import DEMO

        return self.loaded is not None and self.loaded.bracket.frames[0].path.parent.resolve() != Path(DEMO).resolve()

    def write_sidecar(self) -> None:
        """Store the current settings in .lutfuse.toml beside the frames (a read-only folder: a status message)."""
        from lutfuse.core.errors import LUTFuseError
        from lutfuse.core.sidecar import write_sidecar

        if not self._sidecar_writable():
            return
        values = {**self.committed, "align": self.loaded.align}
        choice = self.loaded.choice
        if choice is not None and choice.excluded:
            values["excluded_frames"] = [p.name for p in choice.excluded]
        if choice is not None and choice.reference_path is not None:
            values["reference_frame"] = choice.reference_path.name
        try:
            write_sidecar([p for p, *_ in self.strip_frames] or [f.path for f in self.loaded.bracket.frames],
                          values)
        except LUTFuseError as exc:
            self.statusBar().showMessage(f"Settings not saved beside the frames: {exc}", 10000)

    def _settings_for(self, loaded: LoadedBracket) -> None:
        """A newly opened bracket starts from its sidecar, else from the defaults (never the last bracket's)."""
        from lutfuse.core.errors import LUTFuseError
        from lutfuse.core.sidecar import read_sidecar

        self._sidecar_timer.stop()
        self.undo_stack.clear()
        try:
            stored = read_sidecar([f.path for f in loaded.bracket.frames])
        except LUTFuseError as exc:
            stored = None
            self.show_warning(f"Settings beside the frames ignored: {exc}")
        self.sidecar_used = stored is not None
        values = {**self.default_settings(), **(stored or {})}
        values.pop("align", None)
        excluded = [p for p, *_ in self.strip_frames if p.name in values.pop("excluded_frames", [])]
        reference = next((p for p, *_ in self.strip_frames if p.name == values.pop("reference_frame", None)), None)
        self.adjust.set_values(int(values["grid"]), float(values["detail"]))
        self.look_panel.set_values(values)
        self.committed = self.current_settings()
        if excluded or (reference is not None and REFERENCE_SUPPORTED):
            # the frames left out / the reference chosen last time: load the bracket that way
            self._choose(excluded, reference if REFERENCE_SUPPORTED else None)

    def save_preset(self, path: Path) -> Path:
        """Write the current settings as a TOML preset (replacing `path` if it exists: the dialog asked)."""
        from lutfuse.core.sidecar import write_settings

        return write_settings(path, self.committed, overwrite=True)

    def load_preset(self, path: Path) -> None:
        """Apply a TOML preset as one undoable edit; a bad file is a message."""
        from lutfuse.core.errors import LUTFuseError
        from lutfuse.core.sidecar import read_settings

        try:
            values = read_settings(path)
        except LUTFuseError as exc:
            self.show_error(f"Could not load the preset: {exc}")
            return
        for key in ("frames", "align", "reference_frame", "excluded_frames"):   # a sidecar read as a preset
            values.pop(key, None)
        self.edit_to({**self.current_settings(), **values}, f"Preset {Path(path).stem}")

    def save_preset_dialog(self) -> None:
        """File → Save Preset."""
        from lutfuse.core.errors import LUTFuseError

        path, _ = QFileDialog.getSaveFileName(self, "Save preset", str(Path(self.settings.last_folder) /
                                                                       "preset.toml"), "LUTFuse preset (*.toml)")
        if path:
            path = Path(path) if Path(path).suffix else Path(path + ".toml")
            try:
                self.save_preset(path)
                self.statusBar().showMessage(f"Wrote {path}", 8000)
            except LUTFuseError as exc:  # an unwritable folder: say it, carry on
                self.show_error(f"Could not save the preset: {exc}")

    def load_preset_dialog(self) -> None:
        """File → Load Preset."""
        path, _ = QFileDialog.getOpenFileName(self, "Load preset", self.settings.last_folder,
                                              "LUTFuse preset (*.toml);;All files (*)")
        if path:
            self.load_preset(Path(path))

    # -- inspection: loupe, compare, shortcuts ------------------------------------------------------------------
    def _hovered(self, x: float, y: float) -> None:
        """Pixel readout in the status bar and the loupe for the image pixel under the mouse."""
        import math

        if math.isnan(x) or self.viewer.size is None:
            self.pixel_label.setText("")
            self.nav_readout.setText("")
            self.loupe.clear()
            return
        image, sx, sy = self._readout_image(x, y)
        if image is None:
            return
        self.loupe.show_at(image, sx, sy)
        self.pixel_label.setText(self.loupe.text)
        self.nav_readout.setText(self.loupe.text)

    def _readout_image(self, x: float, y: float):
        """(H×W×3 float image, column, row) to read the fused pixel at image coordinates (x, y) from: the full
        render when there is one, else the preview shown."""
        import numpy as np

        if self.viewer.source is not None:
            return self.viewer.source, int(x), int(y)
        shown = self.viewer.after_pixels()
        if shown is None:
            return None, 0, 0
        w, h = self.viewer.size
        return (shown.astype(np.float32) / 255, int(x * shown.shape[1] / w), int(y * shown.shape[0] / h))

    def _fill_compare(self) -> None:
        """Compare-with choices for the bracket on screen (app.compare): each frame, Mertens, the HQ export once
        made. The frame compared by default is the reference (the middle one unless chosen)."""
        if self.loaded is None:
            return
        entries = self.compare_sources.entries()
        keys = [key for key, _ in entries]
        if self.compare_key not in keys:
            self.compare_key = f"frame:{self.loaded.bracket.reference_index}"
        self.compare.blockSignals(True)
        self.compare.clear()
        for key, label in entries:
            self.compare.addItem(label, key)
        self.compare.setCurrentIndex(keys.index(self.compare_key))
        self.compare.blockSignals(False)
        self._show_compare()

    def _show_compare(self) -> None:
        """Put the chosen source in the split / side-by-side view (a Mertens not yet made: it is started and
        shown when ready; meanwhile the label says so)."""
        pixels = self.compare_sources.request(self.compare_key)
        name = self.compare_sources.name(self.compare_key)
        if pixels is None:
            self.viewer.label_before.setText(f"{name} (computing…)")
            self.viewer.side_label.setText(f"{name} (computing…)")
            return
        self.viewer.set_before(pixels, name)

    def _compare_ready(self, key: str) -> None:
        """A background source arrived: show it if it is the one chosen."""
        if key == self.compare_key:
            self._show_compare()

    def compare_with(self) -> list[tuple[str, object]]:
        """The compare sources available now: (name, h×w×3 uint8 display array), in menu order."""
        return self.compare_sources.sources()

    def set_compare(self, key: str | None, mode: str | None = None) -> None:
        """Compare the result with frame i ('frame:i'), Mertens ('mertens') or the HQ export ('hq'); `mode`
        "split" or "side" (None: keep the one shown, split when none is)."""
        if self.loaded is None or key is None:
            return
        if self.compare.findData(key) < 0:
            return
        self.compare_key = key
        self.compare.setCurrentIndex(self.compare.findData(key))
        self._show_compare()
        if mode is None:
            mode = "side" if self.viewer.side_by_side else "split"
        if mode == "side":
            self.viewer.set_side_by_side(True)
        else:
            self.viewer.set_split(True)

    def show_split(self, on: bool) -> None:
        """View → Before / After (B)."""
        self.viewer.set_split(on)

    def show_side_by_side(self, on: bool) -> None:
        """View → Side by Side (Y)."""
        self.viewer.set_side_by_side(on)

    def _show_hq_result(self) -> None:
        """After an HQ export of the bracket on screen: offer it for comparison and show it."""
        result = self.host.hq_result   # app.hq_preview.HQPreview
        if result is None or self.loaded is None or result.bracket is not self.loaded.bracket:
            return
        self.host.hq_result = None
        self.compare_sources.add_hq(self.loaded, result.hq, result.label)
        self.set_compare("hq")
        self.statusBar().showMessage(result.summary(), 30000)

    def show_batch(self):
        """File → Batch…: the batch panel (app.batch_panel), one per window."""
        from lutfuse.app.batch_panel import BatchDialog

        if getattr(self, "batch_dialog", None) is None:
            self.batch_dialog = BatchDialog(self, self.batch_settings, self.settings.last_folder)
        self.batch_dialog.show()
        self.batch_dialog.raise_()
        return self.batch_dialog

    def batch_settings(self) -> dict:
        """The editor's settings as the batch applies them: grid, detail, look, alignment, deghosting and the
        render device (View → Render Device)."""
        align = self.loaded.align if self.loaded is not None else self.strip.align.isChecked()
        return {**self.committed, "align": "auto" if align else "off", "deghost": self.strip.deghost.currentText(),
                "device": self.settings.device}

    def shortcut_rows(self) -> list[tuple[str, str]]:
        """(what, keys) for every action with a shortcut, in menu order."""
        rows = []
        for menu_action in self.menuBar().actions():
            for action in menu_action.menu().actions():
                keys = ", ".join(k.toString(QKeySequence.SequenceFormat.NativeText) for k in action.shortcuts())
                if keys:
                    rows.append((action.text().replace("&", "").rstrip("…"), keys))
        rows.append(("Reset a slider", "double-click it"))
        rows.append(("Leave full screen", "Esc"))
        rows.append(("Pan", "click or drag in the Navigator"))
        rows.append(("Leave a frame out / use it as reference", "its Use box / right-click its thumbnail"))
        rows.append(("Zoom", "mouse wheel; drag to pan"))
        return rows

    def show_shortcuts(self) -> QDialog:
        """Help → Keyboard Shortcuts: a table generated from the actions, so it never goes stale."""
        dialog = QDialog(self)
        dialog.setWindowTitle("Keyboard shortcuts")
        text = QTextBrowser()
        rows = "".join(f"<tr><td>{what}</td><td><b>{keys}</b></td></tr>" for what, keys in self.shortcut_rows())
        text.setHtml(f"<table cellpadding='4'>{rows}</table>")
        layout = QVBoxLayout(dialog)
        layout.addWidget(text)
        dialog.resize(420, 560)
        dialog.show()
        dialog.text = text
        self.shortcuts_dialog = dialog
        return dialog

    def _on_rendered(self, result: RenderResult) -> None:
        """Put a finished render on screen with its histogram and LUT."""
        if self.loaded is None:
            return
        self.viewer.set_after(result.image, result.source)
        self.navigator.set_image(result.image, self.viewer.size)
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

    def show_warning(self, message: str) -> None:
        """Something the user should check that does not stop the work: amber banner and status bar."""
        self.banner.show_message(message, "warning")
        self.statusBar().showMessage(message, 15000)
        self.warningShown.emit(message)

    def show_note(self, message: str) -> None:
        """What the loader noticed and did with the files (a conversion, a file read by its content, a frame twice):
        a blue banner and the status bar."""
        self.banner.show_message(message, "note")
        self.statusBar().showMessage(message, 15000)

    # -- closing -----------------------------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:
        """Remember settings and window layout, stop background work."""
        self.settings.grid = self.grid
        self.settings.detail = self.detail
        if self._sidecar_timer.isActive():
            self._sidecar_timer.stop()
            self.write_sidecar()
        self.settings.save_window_state(self.saveGeometry(), self.saveState())
        self.settings.sync()
        self.host.shutdown()
        self.compare_sources.shutdown()
        if getattr(self, "batch_dialog", None) is not None:
            self.batch_dialog.shutdown()
        super().closeEvent(event)
