"""Where the shipped resources (weights, demo bracket) live, in a checkout and in an installed wheel alike.

The repository's ``resources/`` folder is package data of the ``lutfuse`` package, so
``importlib.resources`` finds it both in an editable install and in a built wheel.
``$LUTFUSE_RESOURCES`` points elsewhere (e.g. a folder of freshly trained weights).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path


def _resources_root() -> Path:
    override = os.environ.get("LUTFUSE_RESOURCES")
    if override:
        return Path(override)
    # lutfuse is a regular package on disk (never zipped: the wheel is not zip-safe), so this is a real folder.
    return Path(str(resources.files("lutfuse") / "resources"))


RESOURCES = _resources_root()
WEIGHTS = RESOURCES / "weights"
# The shipped weights files by model name (core.weights re-exports it); here so that reading the names (e.g. for
# `lutfuse eval --help`) does not import torch.
SHIPPED = {
    "LUT teacher": "lut_teacher.pt",
    "LUT student": "lut_student.pt",
    "HQ phase 1": "refine_phase1.pt",
    "HQ phase 2": "refine_phase2.pt",
}
DEMO = RESOURCES / "demo"


def demo_frames() -> list[Path]:
    """The built-in demo bracket's frames, darkest first."""
    return sorted(p for p in DEMO.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".tif", ".tiff"})
