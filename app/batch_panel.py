"""The batch panel (File → Batch…): a folder of brackets grouped as `lutfuse batch` groups them
(core.grouping.plan_groups), listed with a thumbnail, name, frame count and EVs, then fused in the background with
the editor's current settings through core.pipeline.fuse_files, the function `lutfuse fuse` and `lutfuse batch`
use. Results go beside the originals, named as the batch command names them ({first}_{method}.jpg); an existing
result is skipped unless "Replace existing results" is ticked. A failed bracket gets a one-line reason and the
rest go on; Cancel stops after (or inside) the bracket being fused, leaving nothing half-written."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSize, QThreadPool, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from lutfuse.app.frame_strip import to_pixmap
from lutfuse.app.state import format_ev
from lutfuse.app.workers import Job

GROUP_MODES = ("auto", "folder", *(str(n) for n in range(2, 10)))
THUMB = 72
COLUMNS = ("Bracket", "Frames", "EVs", "Result", "Status")


@dataclass
class BatchItem:
    """One bracket of the plan: its frames, where its result goes, and how it went."""

    index: int                       # 1-based, as `lutfuse batch` numbers them
    name: str                        # the group's label (its subfolder, or the frames' folder)
    frames: list[Path]
    evs: list[float] | None          # relative to the middle, darkest first (None: unknown)
    output: Path
    thumbnail: np.ndarray | None = None   # h×w×3 uint8 of the middle frame
    status: str = "waiting"          # waiting, fusing, done, failed, skipped, cancelled
    message: str = ""


def plan_items(folder: Path, mode: str, method: str = "lut") -> tuple[list[BatchItem], list[tuple[Path, str]]]:
    """The brackets of `folder` as `lutfuse batch FOLDER --group MODE` finds them, each with its result path beside
    its first frame (the batch command's default name) -> (items, frames in no bracket with the reason).
    Raises LUTFuseError for an unreadable folder or a bad mode."""
    from lutfuse.core.commands.batch import DEFAULT_FOLDER_NAME, DEFAULT_NAME, output_name
    from lutfuse.core.grouping import image_files, plan_groups

    if mode == "folder":
        plan = plan_groups([folder], mode)
        files = [p for g in plan.groups for p in g.paths]
    else:
        files = image_files([folder])
    earlier = earlier_results(files)
    if earlier:   # a second run must not take the first run's results for frames
        if mode == "folder":
            for group in plan.groups:
                group.frames = [s for s in group.frames if s.path not in earlier]
            plan.groups = [g for g in plan.groups if len(g.frames) >= 2]
        else:
            plan = plan_groups([p for p in files if p not in earlier], mode)
        plan.leftovers += [(p, "an earlier result of a batch") for p in sorted(earlier)]
    elif mode != "folder":
        plan = plan_groups(files, mode)
    pattern = DEFAULT_FOLDER_NAME if mode == "folder" else DEFAULT_NAME
    items = []
    for i, group in enumerate(plan.groups, 1):
        name = output_name(pattern, group, i, method)
        items.append(BatchItem(i, group.folder, group.paths, group.relative_evs(), group.paths[0].parent / name))
    return items, plan.leftovers


def earlier_results(files: list[Path]) -> set[Path]:
    """The files among `files` named as the batch names its results ({first}_{method}.ext beside a frame
    called {first}, or {folder}_{method}.ext in folder {folder}): results of an earlier run, not frames."""
    from lutfuse.core.pipeline import METHODS

    stems = {(p.parent, p.stem) for p in files}
    out = set()
    for p in files:
        for method in METHODS:
            suffix = f"_{method}"
            if p.stem.endswith(suffix):
                base = p.stem[: -len(suffix)]
                if (p.parent, base) in stems or base == p.parent.name:
                    out.add(p)
    return out


def batch_settings(values: dict):
    """core.pipeline.FuseSettings of `lutfuse fuse`'s defaults with the editor's `values` (grid, detail, look,
    align, deghost) over them."""
    from lutfuse.core.commands import fuse as fusecmd

    parser = argparse.ArgumentParser(add_help=False)
    fusecmd.add_arguments(parser)
    args = parser.parse_args(["frame", "-o", "out.jpg"])
    known = vars(args)
    return fusecmd.settings_from(args).replace(**{k: v for k, v in values.items() if k in known})


def run_items(items: list[BatchItem], settings, *, overwrite: bool, job: Job,
              started: Callable[[int], None], ended: Callable[[int, str, str], None]) -> None:
    """Fuse every item in turn (core.pipeline.fuse_files with one cached Models); `started(i)` and
    `ended(i, status, message)` report each; a failure is a one-line message and the next item goes on; Cancel
    (job.is_cancelled) stops inside the bracket being fused (nothing is written for it) and skips the rest."""
    from lutfuse.core.batch import describe
    from lutfuse.core.errors import Cancelled
    from lutfuse.core.methods import Models
    from lutfuse.core.pipeline import fuse_files

    models = Models()
    for n, item in enumerate(items):
        if job.is_cancelled():
            ended(n, "cancelled", "")
            continue
        if item.output.exists() and not overwrite:
            ended(n, "skipped", f"{item.output.name} exists")
            continue
        started(n)

        def progress(fraction: float, n: int = n) -> None:
            if job.is_cancelled():   # raised inside fuse_files: it writes nothing for this bracket
                raise Cancelled("batch cancelled")
            job.report((n + fraction) / len(items))

        def loaded(_bracket: object, n: int = n) -> None:
            progress(0.3, n)

        try:
            # cancel points: after loading (on_loaded) and at every progress report (HQ reports as it goes)
            fuse_files(item.frames, item.output, settings, overwrite=overwrite, models=models, progress=progress,
                       on_loaded=loaded)
        except Cancelled:
            ended(n, "cancelled", "")
        except Exception as exc:  # noqa: BLE001 - one bad bracket must not stop the others; its row says why
            ended(n, "failed", describe(exc))
        else:
            ended(n, "done", item.output.name)
        job.report((n + 1) / len(items))


class BatchDialog(QDialog):
    """Folder → brackets list → Process (background) with per-bracket status, overall progress and Cancel."""

    itemEnded = Signal(int, str, str)     # row, status, message (emitted from the worker, queued to the GUI)
    itemStarted = Signal(int)
    runEnded = Signal()                   # a scan or run ended (done, cancelled or failed)
    planned = Signal()

    def __init__(self, parent: QWidget | None, settings: Callable[[], dict], folder: str = "") -> None:
        super().__init__(parent)
        self.setWindowTitle("Batch")
        self.settings = settings
        self.items: list[BatchItem] = []
        self.leftovers: list[tuple[Path, str]] = []
        self.job: Job | None = None
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self.pool.setExpiryTimeout(0)  # as EngineHost.export_pool: no idle torch thread beside the engine's
        self.folder = QLineEdit(folder)
        self.folder.setPlaceholderText("A folder of brackets (subfolders count too)")
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._browse)
        self.group = QComboBox()
        self.group.addItems(GROUP_MODES)
        self.group.setToolTip("auto: by capture time and exposure pattern; folder: one subfolder per bracket; "
                              "N: N frames at a time (as lutfuse batch --group)")
        self.scan_button = QPushButton("Scan")
        self.scan_button.clicked.connect(self.scan)
        top = QHBoxLayout()
        top.addWidget(QLabel("Folder"))
        top.addWidget(self.folder, 1)
        top.addWidget(browse)
        top.addWidget(QLabel("Group"))
        top.addWidget(self.group)
        top.addWidget(self.scan_button)
        self.tree = QTreeWidget()
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setIconSize(QSize(THUMB, THUMB))
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.summary = QLabel("Choose a folder and Scan")
        self.summary.setWordWrap(True)
        self.overwrite = QCheckBox("Replace existing results")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.process_button = QPushButton("Process")
        self.process_button.setEnabled(False)
        self.process_button.clicked.connect(self.process)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        bottom = QHBoxLayout()
        bottom.addWidget(self.overwrite)
        bottom.addWidget(self.progress, 1)
        bottom.addWidget(self.process_button)
        bottom.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.summary)
        layout.addLayout(bottom)
        self.itemStarted.connect(self._started)
        self.itemEnded.connect(self._ended)
        self.resize(900, 560)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of brackets", self.folder.text())
        if folder:
            self.folder.setText(folder)
            self.scan()

    # -- planning ----------------------------------------------------------------------------------------------
    def scan(self) -> Job | None:
        """Group the folder in the background (reading EXIF and small thumbnails), then list the brackets."""
        text = self.folder.text().strip()
        if not text or self.job is not None:
            return None
        folder, mode = Path(text), self.group.currentText()
        self.summary.setText(f"Scanning {folder} …")
        self.scan_button.setEnabled(False)
        self.process_button.setEnabled(False)

        def work(job: Job):
            from lutfuse.app.state import thumbnail
            from lutfuse.core.bracket import load_image

            items, leftovers = plan_items(folder, mode)
            for n, item in enumerate(items):
                if job.is_cancelled():
                    break
                try:
                    image, *_ = load_image(item.frames[len(item.frames) // 2], max_pixels=400_000_000)
                    item.thumbnail = thumbnail(image, THUMB)
                except Exception:  # noqa: BLE001 - a thumbnail is optional; processing reports the real error
                    item.thumbnail = None
                job.report((n + 1) / max(1, len(items)))
            return items, leftovers

        return self._run(Job(work), self._planned)

    def _planned(self, result) -> None:
        self.items, self.leftovers = result
        self.tree.clear()
        for item in self.items:
            evs = ", ".join(format_ev(e) for e in item.evs) if item.evs is not None else "?"
            row = QTreeWidgetItem([f"{item.index}. {item.name}: {item.frames[0].name} … {item.frames[-1].name}",
                                   str(len(item.frames)), evs, item.output.name, item.status])
            row.setToolTip(0, "\n".join(str(p) for p in item.frames))
            row.setToolTip(3, str(item.output))
            if item.thumbnail is not None:
                row.setIcon(0, QIcon(to_pixmap(item.thumbnail)))
            self.tree.addTopLevelItem(row)
        for col in range(1, len(COLUMNS)):
            self.tree.resizeColumnToContents(col)
        lost = f"; {len(self.leftovers)} frame(s) in no bracket" if self.leftovers else ""
        self.summary.setText(f"{len(self.items)} bracket(s){lost}. Settings: {self._settings_text()}")
        self.process_button.setEnabled(bool(self.items))
        self.planned.emit()

    def _settings_text(self) -> str:
        values = self.settings()
        look = ", ".join(f"{k} {v:+g}" for k, v in values.items()
                         if k not in ("grid", "detail", "align", "deghost") and isinstance(v, float) and v)
        return (f"grid {values.get('grid')}, detail {values.get('detail')}, align {values.get('align')}, "
                f"deghost {values.get('deghost')}" + (f", {look}" if look else ""))

    # -- processing --------------------------------------------------------------------------------------------
    def process(self) -> Job | None:
        """Fuse every listed bracket in the background with the editor's settings at this moment."""
        if not self.items or self.job is not None:
            return None
        settings = batch_settings(self.settings())
        overwrite = self.overwrite.isChecked()
        for n, item in enumerate(self.items):
            item.status, item.message = "waiting", ""
            self._row(n).setText(4, "waiting")
        items = list(self.items)
        self.summary.setText(f"Fusing {len(items)} bracket(s) with {self._settings_text()}")

        def work(job: Job) -> None:
            run_items(items, settings, overwrite=overwrite, job=job, started=self.itemStarted.emit,
                      ended=self.itemEnded.emit)

        return self._run(Job(work), lambda _r: None)

    def _row(self, n: int) -> QTreeWidgetItem:
        row = self.tree.topLevelItem(n)
        assert row is not None, n
        return row

    def _started(self, n: int) -> None:
        self.items[n].status = "fusing"
        self._row(n).setText(4, "fusing…")

    def _ended(self, n: int, status: str, message: str) -> None:
        item = self.items[n]
        item.status, item.message = status, message
        short = message.replace(f"{item.frames[0].parent}/", "")   # the row says which folder
        text = {"done": "done", "failed": f"failed: {short}", "skipped": f"skipped: {message}",
                "cancelled": "cancelled"}[status]
        row = self._row(n)
        row.setText(4, text)
        row.setToolTip(4, f"{status}: {message}" if message else status)

    def cancel(self) -> None:
        """Stop the scan or the run (the bracket being fused is dropped, nothing half-written stays)."""
        if self.job is not None:
            self.job.cancel()

    def _run(self, job: Job, done: Callable[[object], None]) -> Job:
        self.job = job
        self._done = done
        job.signals.finished.connect(self._job_finished)
        job.signals.failed.connect(self._job_failed)
        job.signals.progress.connect(self._progress)
        job.signals.ended.connect(self._job_ended)
        self.progress.setValue(0)
        self.cancel_button.setEnabled(True)
        self.pool.start(job)
        return job

    def _progress(self, fraction: float) -> None:
        self.progress.setValue(round(1000 * fraction))

    def _job_finished(self, result) -> None:
        self._done(result)

    def _job_failed(self, message: str) -> None:
        self.summary.setText(message)

    def _job_ended(self, _job: Job) -> None:
        self.job = None
        self.cancel_button.setEnabled(False)
        self.scan_button.setEnabled(True)
        self.process_button.setEnabled(bool(self.items))
        counts = {s: sum(i.status == s for i in self.items) for s in ("done", "failed", "skipped", "cancelled")}
        if any(counts.values()):
            self.summary.setText(", ".join(f"{v} {k}" for k, v in counts.items() if v))
        self.runEnded.emit()

    def shutdown(self, timeout_ms: int = 10000) -> None:
        """Cancel and wait (window close)."""
        self.cancel()
        self.pool.waitForDone(timeout_ms)
