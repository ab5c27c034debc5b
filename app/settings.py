"""Persistent editor settings (QSettings): last folder, grid, detail, recent brackets, window geometry."""

from __future__ import annotations

import json
import os
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

from lutfuse.app.state import GRID_DEFAULT, GRID_MAX, GRID_MIN

# Tests and portable installs point this at an .ini file so the user's real settings are never touched.
SETTINGS_ENV = "LUTFUSE_SETTINGS"


class AppSettings:
    """Typed access to the editor's QSettings; an .ini file when `path` (or $LUTFUSE_SETTINGS) is given."""

    def __init__(self, path: str | Path | None = None) -> None:
        path = path or os.environ.get(SETTINGS_ENV)
        if path:
            self.qs = QSettings(str(path), QSettings.Format.IniFormat)
        else:
            self.qs = QSettings("LUTFuse", "LUTFuse")

    def _get(self, key: str, default, kind):
        """Value of `key` converted with `kind`, or `default` when missing or unreadable."""
        value = self.qs.value(key, None)
        if value is None:
            return default
        try:
            return kind(value)
        except (TypeError, ValueError):
            return default

    @property
    def grid(self) -> int:
        """Last LUT grid size (2–129)."""
        return min(GRID_MAX, max(GRID_MIN, self._get("render/grid", GRID_DEFAULT, int)))

    @grid.setter
    def grid(self, value: int) -> None:
        self.qs.setValue("render/grid", int(value))

    @property
    def detail(self) -> float:
        """Last detail strength (0–1)."""
        return min(1.0, max(0.0, self._get("render/detail", 1.0, float)))

    @detail.setter
    def detail(self, value: float) -> None:
        self.qs.setValue("render/detail", float(value))

    @property
    def align(self) -> bool:
        """Whether brackets are aligned when loaded."""
        return self._get("render/align", True, lambda v: str(v).lower() in ("true", "1"))

    @align.setter
    def align(self, value: bool) -> None:
        self.qs.setValue("render/align", bool(value))

    @property
    def device(self) -> str:
        """Where the engine renders: auto (CUDA, then Apple's GPU, then CPU), cpu, cuda or mps."""
        value = self._get("render/device", "auto", str).strip().lower()
        return value if value in ("auto", "cpu", "cuda", "mps") else "auto"

    @device.setter
    def device(self, value: str) -> None:
        self.qs.setValue("render/device", str(value))

    @property
    def deghost(self) -> str:
        """Deghost strength brackets are loaded with (core.deghost.STRENGTHS)."""
        from lutfuse.core.deghost import DEFAULT, STRENGTHS

        return self._get("render/deghost", DEFAULT, lambda v: str(v) if str(v) in STRENGTHS else DEFAULT)

    @deghost.setter
    def deghost(self, value: str) -> None:
        self.qs.setValue("render/deghost", str(value))

    @property
    def jpeg_quality(self) -> int:
        """Last JPEG export quality."""
        return min(100, max(1, self._get("export/jpeg_quality", 95, int)))

    @jpeg_quality.setter
    def jpeg_quality(self, value: int) -> None:
        self.qs.setValue("export/jpeg_quality", int(value))

    @property
    def last_folder(self) -> str:
        """Folder of the last open or export dialog."""
        return self._get("paths/last_folder", str(Path.home()), str)

    @last_folder.setter
    def last_folder(self, value: str | Path) -> None:
        self.qs.setValue("paths/last_folder", str(value))

    @property
    def recent(self) -> list[list[str]]:
        """Recent brackets, newest first; each a list of paths (files, or one folder)."""
        raw = self._get("paths/recent", "[]", str)
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            return []
        return [[str(p) for p in entry] for entry in data if isinstance(entry, list) and entry]

    @recent.setter
    def recent(self, value: list[list[str]]) -> None:
        # JSON in one string: list-of-lists does not survive QSettings' native formats on every platform
        self.qs.setValue("paths/recent", json.dumps(value))

    @property
    def last_bracket(self) -> list[str]:
        """The bracket open when the editor last closed (the newest recent entry)."""
        recent = self.recent
        return recent[0] if recent else []

    def window_state(self) -> tuple[QByteArray | None, QByteArray | None]:
        """Saved (geometry, dock state) of the main window."""
        return self.qs.value("window/geometry", None), self.qs.value("window/state", None)

    def save_window_state(self, geometry: QByteArray, state: QByteArray) -> None:
        """Remember the main window's geometry and dock layout."""
        self.qs.setValue("window/geometry", geometry)
        self.qs.setValue("window/state", state)

    def sync(self) -> None:
        """Write pending changes to disk."""
        self.qs.sync()
