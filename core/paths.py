"""Where the shipped resources (weights, demo bracket) live; the project is installed editable from its checkout."""

from __future__ import annotations

import os
from pathlib import Path

RESOURCES = Path(os.environ.get("LUTFUSE_RESOURCES", Path(__file__).resolve().parent.parent / "resources"))
WEIGHTS = RESOURCES / "weights"
DEMO = RESOURCES / "demo"


def demo_frames() -> list[Path]:
    """The built-in demo bracket's frames, darkest first."""
    return sorted(p for p in DEMO.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".tif", ".tiff"})
