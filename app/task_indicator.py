"""Status-bar indicator for one kind of long work: a label, a progress bar (busy when the amount is unknown)
and Cancel."""

from __future__ import annotations

import time

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget


def eta_text(elapsed: float, fraction: float) -> str:
    """'about 1 min 20 s left' from the time spent and the fraction done (linear extrapolation); 'starting…'
    until there is something to extrapolate from."""
    if fraction < 0.02 or elapsed < 1.0:
        return "starting…"
    left = elapsed * (1 - fraction) / fraction
    if left < 60:
        return f"about {max(1, round(left))} s left"
    return f"about {int(left // 60)} min {round(left % 60):02d} s left"


class TaskIndicator(QWidget):
    """Hidden while idle; start() shows it, set_fraction() moves it, finish() hides it."""

    cancelRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel()
        self.text = ""
        self.started = time.monotonic()
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self._cancel)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 6, 0)
        layout.setSpacing(6)
        layout.addWidget(self.label)
        layout.addWidget(self.progress)
        layout.addWidget(self.cancel_button)
        self.hide()

    def start(self, text: str, busy: bool = False) -> None:
        """Show `text` with an empty bar (or a busy bar when the amount of work is unknown)."""
        self.label.setText(text)
        self.text = text
        self.started = time.monotonic()
        self.progress.setRange(0, 0 if busy else 100)
        self.progress.setValue(0)
        self.cancel_button.setEnabled(True)
        self.show()

    def set_fraction(self, fraction: float) -> None:
        """Move the bar to `fraction` in [0, 1]."""
        fraction = min(1.0, max(0.0, fraction))
        self.progress.setValue(round(100 * fraction))
        self.label.setText(f"{self.text} · {eta_text(time.monotonic() - self.started, fraction)}")

    def finish(self) -> None:
        """Hide until the next start()."""
        self.hide()

    def _cancel(self) -> None:
        """Cancel was pressed: say so and pass it on."""
        self.cancel_button.setEnabled(False)
        self.label.setText("Cancelling…")
        self.cancelRequested.emit()
