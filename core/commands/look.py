"""The look's CLI flags (`lutfuse fuse`, `lutfuse cube`): one per core.adjust.Look field, dest = the field name, so
a batch preset may carry the same keys; plus --auto (core.adjust.auto_look)."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from lutfuse.core.adjust import FIELDS, Look, auto_look

HELP = {
    "exposure": "exposure in EV, -5..5 (a gain in linear light)",
    "contrast": "contrast, -100..100 (S-curve about mid-grey)",
    "highlights": "highlights, -100..100 (bright tones; negative recovers them)",
    "shadows": "shadows, -100..100 (dark tones; positive lifts them)",
    "whites": "whites, -100..100 (moves the white point)",
    "blacks": "blacks, -100..100 (moves the black point)",
    "saturation": "saturation, -100..100 (-100 = black and white)",
    "vibrance": "vibrance, -100..100 (saturation weighted towards muted colours)",
    "temperature": "white balance temperature, -100..100 (positive warms; Bradford adaptation)",
    "tint": "white balance tint, -100..100 (positive towards magenta)",
}


def add_look_arguments(parser: argparse.ArgumentParser) -> None:
    """--exposure, --contrast, ..., --tint (core.adjust.Look; all 0 by default) and --auto."""
    group = parser.add_argument_group("look (core/adjust.py; composed into the LUT, so a .cube carries it)")
    for name in FIELDS:
        group.add_argument(f"--{name}", dest=name, type=float, default=0.0, help=HELP[name])
    group.add_argument("--auto", dest="auto", action="store_true",
                       help="start from a conservative look set from the bracket's statistics; the sliders "
                            "given add to it")


def look_from_args(args: Any, images: np.ndarray | None = None) -> Look | None:
    """The Look the flags ask for (None when neutral); with --auto, auto_look(images) plus the given sliders,
    clipped to each slider's range. LUTFuseError for a value out of range."""
    values = {name: float(getattr(args, name, 0.0) or 0.0) for name in FIELDS}
    if getattr(args, "auto", False) and images is not None:
        base = auto_look(images).as_dict()
        for name in FIELDS:
            limit = 5.0 if name == "exposure" else 100.0
            if values[name] != 0 and abs(values[name]) > limit:
                continue  # out of range on its own: let Look name it
            values[name] = float(np.clip(base[name] + values[name], -limit, limit))
    look = Look(**values)
    return None if look.is_neutral() else look
