"""Dark neutral theme: photographers judge tones against a grey that neither glows nor tints."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

STYLE = """
QMainWindow, QDockWidget { background: #2a2a2d; }
QDockWidget::title { background: #313135; padding: 5px 8px; color: #d8d8d8; font-weight: 600; }
QLabel { color: #d8d8d8; }
QLabel#panelTitle { font-weight: 600; color: #e8e8e8; }
QLabel#valueLabel { color: #ffcc66; font-family: monospace; }
QLabel#viewerHint { color: #8f8f95; font-size: 15px; background: #1b1b1d; }
QLabel#evLabel { color: #ffcc66; font-weight: 600; }
QFrame#frameCard { background: #333337; border: 1px solid #3d3d42; border-radius: 6px; }
QFrame#frameCard[middle="true"] { border: 1px solid #8a7a4a; }
QFrame#frameCard[excluded="true"] { background: #2a2a2d; border: 1px dashed #55555a; }
QFrame#banner { background: #5a2324; border: 1px solid #8e3a3b; border-radius: 4px; }
QFrame#banner QLabel { color: #ffe7e7; }
QFrame#banner[level="warning"] { background: #4f4220; border: 1px solid #8a7434; }
QFrame#banner[level="warning"] QLabel { color: #fff2cf; }
QFrame#banner[level="note"] { background: #27384a; border: 1px solid #3e5a76; }
QFrame#banner[level="note"] QLabel { color: #e3eefa; }
QStatusBar { background: #232326; color: #cfcfcf; }
QStatusBar QLabel { color: #cfcfcf; padding: 0 6px; }
QSlider::groove:horizontal { height: 4px; background: #4a4a50; border-radius: 2px; }
QSlider::sub-page:horizontal { background: #b08a3e; border-radius: 2px; }
QSlider::handle:horizontal { background: #e6e6e6; width: 14px; margin: -6px 0; border-radius: 7px; }
QProgressBar { background: #3a3a3f; border: 1px solid #4a4a50; border-radius: 3px; color: #eee;
               text-align: center; max-height: 16px; min-width: 160px; }
QProgressBar::chunk { background: #b08a3e; }
QPushButton { background: #3d3d42; color: #e6e6e6; border: 1px solid #55555c; border-radius: 4px;
              padding: 3px 12px; }
QPushButton:hover { background: #48484e; }
QCheckBox::indicator, QRadioButton::indicator { width: 12px; height: 12px; border: 1px solid #8a8a90;
                                               background: #1f1f22; }
QRadioButton::indicator { border-radius: 7px; }
QCheckBox::indicator { border-radius: 3px; }
QCheckBox::indicator:checked, QRadioButton::indicator:checked { background: #d0a54c; border: 1px solid #e8c36e; }
QToolBar { background: #2a2a2d; border: none; spacing: 4px; padding: 2px 6px; }
QToolButton { color: #e0e0e0; padding: 3px 8px; border-radius: 4px; }
QToolButton:hover { background: #3d3d42; }
QToolButton:checked { background: #5a4a28; border: 1px solid #b08a3e; }
QToolButton#sectionHeader { background: #313135; color: #e8e8e8; font-weight: 600; text-align: left;
                            padding: 3px 6px; border-radius: 0; }
QToolButton#sectionHeader:checked { background: #313135; border: none; }
QToolTip { background: #1e1e20; color: #e6e6e6; border: 1px solid #555; }
"""


def apply_theme(app: QApplication) -> None:
    """Fusion style with a dark neutral palette, and matching pyqtgraph defaults."""
    app.setStyle("Fusion")
    pal = QPalette()
    roles = {
        QPalette.ColorRole.Window: "#2a2a2d", QPalette.ColorRole.WindowText: "#d8d8d8",
        QPalette.ColorRole.Base: "#1f1f22", QPalette.ColorRole.AlternateBase: "#2a2a2d",
        QPalette.ColorRole.Text: "#e0e0e0", QPalette.ColorRole.Button: "#3a3a3f",
        QPalette.ColorRole.ButtonText: "#e0e0e0", QPalette.ColorRole.Highlight: "#b08a3e",
        QPalette.ColorRole.HighlightedText: "#111111", QPalette.ColorRole.ToolTipBase: "#1e1e20",
        QPalette.ColorRole.ToolTipText: "#e6e6e6", QPalette.ColorRole.PlaceholderText: "#8a8a8a",
    }
    for role, colour in roles.items():
        pal.setColor(role, QColor(colour))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor("#777"))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor("#777"))
    app.setPalette(pal)
    app.setStyleSheet(STYLE)
    pg.setConfigOptions(background="#232326", foreground="#bdbdbd", antialias=True, imageAxisOrder="row-major")
