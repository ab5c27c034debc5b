"""`lutfuse train MODEL ...`: training loops live in core/train/; each module adds its own arguments."""

from __future__ import annotations

import argparse
import importlib

# subcommand -> module in core/train exposing add_arguments(parser) and run(args) -> int
TRAINERS = {
    "teacher": ("lut_teacher", "the LUT teacher (prior grid per exposure + weighted fusion)"),
    "student": ("lut_student", "the INR student distilled from the teacher"),
    "refine-phase1": ("refine_phase1", "HQ phase 1: intermediate-exposure generator"),
    "refine-phase2": ("refine_phase2", "HQ phase 2: attention fusion network (phase 1 frozen)"),
}


HELP = "train a model on brackets (see `lutfuse train MODEL --help`)"


def register(sub: argparse._SubParsersAction, *, light: bool = False) -> None:
    """Add `train` with one sub-subcommand per trainer that exists. light: only the `train` entry (for
    `lutfuse --help` and the other commands), without importing the trainers and torch (seconds)."""
    from lutfuse.core.commands.common import HelpFormatter

    parser = sub.add_parser("train", help=HELP)
    if light:
        return
    models = parser.add_subparsers(dest="model", metavar="MODEL", required=True)
    for name, (module_name, help_text) in TRAINERS.items():
        try:
            module = importlib.import_module(f"lutfuse.core.train.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"lutfuse.core.train.{module_name}":
                continue
            raise
        p = models.add_parser(name, help=help_text, formatter_class=HelpFormatter)
        module.add_arguments(p)
        p.set_defaults(func=module.run)
