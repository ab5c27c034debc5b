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


def register(sub: argparse._SubParsersAction) -> None:
    """Add `train` with one sub-subcommand per trainer that exists."""
    parser = sub.add_parser("train", help="train a model on brackets (see `lutfuse train MODEL --help`)")
    models = parser.add_subparsers(dest="model", metavar="MODEL", required=True)
    for name, (module_name, help_text) in TRAINERS.items():
        try:
            module = importlib.import_module(f"lutfuse.core.train.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"lutfuse.core.train.{module_name}":
                continue
            raise
        p = models.add_parser(name, help=help_text, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(func=module.run)
