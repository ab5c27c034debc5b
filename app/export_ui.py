"""Export flow of the editor window: save dialogs, the overwrite question, and one background export at a time
with progress and Cancel (a mixin of MainWindow)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox

from lutfuse.app import export as ex
from lutfuse.app.workers import Job


class ExportMixin:
    """Needs from the window: settings, host, loaded, export_job, export_task, export_actions, show_error(),
    exportEnded, statusBar()."""
    def confirm_overwrite(self, paths: Sequence[Path]) -> bool:
        """Ask before replacing existing files (tests replace this method)."""
        names = "\n".join(str(p) for p in paths)
        answer = QMessageBox.question(self, "Replace existing file?", f"Replace\n{names}?",
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def _save_dialog(self, title: str, filters: Sequence[str], default: Path,
                     selected: str = "") -> tuple[Path | None, str]:
        """A save dialog proposing `default`; the overwrite question is left to confirm_overwrite()."""
        path, chosen = QFileDialog.getSaveFileName(self, title, str(default), ";;".join(filters), selected,
                                                   options=QFileDialog.Option.DontConfirmOverwrite)
        if not path:
            return None, chosen
        self.settings.last_folder = str(Path(path).parent)
        return Path(path), chosen

    def _default_path(self, suffix: str, tag: str = "fused") -> Path:
        """`{first frame}_{tag}{suffix}` beside the originals."""
        return ex.default_export_path(self.loaded.bracket.frames[0].path, suffix, tag)

    def _image_choice(self, title: str, tag: str = "fused") -> tuple[Path | None, ex.ImageOptions]:
        """Ask for an image path, format and (for JPEG) quality; a typed extension decides the format."""
        path, chosen = self._save_dialog(title, list(ex.IMAGE_FILTERS), self._default_path(".tif", tag),
                                         ex.DEFAULT_IMAGE_FILTER)
        if path is None:
            return None, ex.ImageOptions()
        path, bits = ex.image_format(path, chosen)
        quality = self.settings.jpeg_quality
        if path.suffix.lower() in (".jpg", ".jpeg"):
            bits = 8
            quality, ok = QInputDialog.getInt(self, "JPEG quality", "Quality (1–100):", quality, 1, 100)
            if not ok:
                return None, ex.ImageOptions()
            self.settings.jpeg_quality = quality
        return path, ex.ImageOptions(bit_depth=bits, quality=quality)

    def export_image_dialog(self) -> None:
        """File → Export Image."""
        if self.loaded is not None:
            path, options = self._image_choice("Export fused image")
            if path is not None:
                self.export_image(path, options)

    def export_cube_dialog(self) -> None:
        """File → Export LUT."""
        if self.loaded is not None:
            path, _ = self._save_dialog("Export LUT as .cube (the 16-bit base image is written beside it)",
                                        [ex.CUBE_FILTER], self._default_path(".cube"))
            if path is not None:
                self.export_cube(ex.with_suffix(path, ".cube"))

    def export_hq_dialog(self) -> None:
        """File → HQ Export."""
        if self.loaded is not None:
            path, options = self._image_choice("HQ export (two-phase refinement)", tag="fused_hq")
            if path is not None:
                self.export_hq(path, options)

    def _may_write(self, paths: Sequence[Path]) -> bool | None:
        """None if the user declined to replace; else the overwrite flag to pass to the writer."""
        existing = [p for p in paths if p.exists()]
        if not existing:
            return False
        return True if self.confirm_overwrite(existing) else None

    def export_image(self, path: Path, options: ex.ImageOptions = ex.ImageOptions()) -> Job | None:
        """Write the full-resolution fused image in the background."""
        overwrite = self._may_write([path])
        if overwrite is None or self.loaded is None:
            return None
        work = ex.image_work(self.host, path, self.grid, self.detail, options, overwrite, self.look())
        return self._start_export(work, f"Exporting {path.name}")

    def export_cube(self, path: Path) -> Job | None:
        """Write the LUT at the current grid size as .cube and its 16-bit base image beside it."""
        overwrite = self._may_write([path, ex.base_path_for(path)])
        if overwrite is None or self.loaded is None:
            return None
        return self._start_export(ex.cube_work(self.host, path, self.grid, overwrite, self.look()),
                                  f"Exporting {path.name}")

    def export_hq(self, path: Path, options: ex.ImageOptions = ex.ImageOptions()) -> Job | None:
        """Run the HQ export at the editor's grid and detail in the background with progress and Cancel."""
        overwrite = self._may_write([path])
        if overwrite is None or self.loaded is None:
            return None
        self.host.hq_result = None
        work = ex.hq_work(self.host, path, options, overwrite, self.grid, self.detail, self.look())
        return self._start_export(work, f"HQ export {path.name}")

    def _start_export(self, work, label: str) -> Job | None:
        """Show progress + Cancel and run one export at a time."""
        if self.export_job is not None:
            self.show_error("An export is already running; wait for it or cancel it first")
            return None
        def wire(job: Job) -> None:
            job.signals.progress.connect(self.export_task.set_fraction)
            job.signals.finished.connect(lambda path: self._export_ended("done", str(path)))
            job.signals.failed.connect(lambda msg: self._export_ended("failed", msg))
            job.signals.cancelled.connect(lambda: self._export_ended("cancelled", "Export cancelled"))

        self.export_task.start(label)
        self._set_exports_enabled(False)
        job = self.host.export(work, wire)
        self.export_job = job
        return job

    def cancel_export(self) -> None:
        """Ask the running export to stop."""
        if self.export_job is not None:
            self.export_job.cancel()

    def _export_ended(self, status: str, detail: str) -> None:
        """Hide the progress bar and say how the export went."""
        self.export_job = None
        self.export_task.finish()
        self._set_exports_enabled(self.loaded is not None)
        if status == "done":
            self.statusBar().showMessage(f"Wrote {detail}", 10000)
            self._show_hq_result()
        elif status == "failed":
            self.show_error(f"Export failed: {detail}")
        else:
            self.statusBar().showMessage(detail, 10000)
        self.exportEnded.emit(status, detail)

    def _set_exports_enabled(self, on: bool) -> None:
        """Exports need a bracket and no export running."""
        for action in self.export_actions:
            action.setEnabled(on)
