"""`lutfuse fuse`: fuse one bracket into an image with the learned LUT, Mertens, or the HQ refinement.

The options live in `add_arguments` and the work in `core.pipeline.fuse_files`, which `lutfuse batch` reuses:
an option added here becomes a batch option and a preset key with no change in batch.
"""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from lutfuse.core.adjust import FIELDS
from lutfuse.core.commands.common import (
    HelpFormatter,
    add_bracket_arguments,
    add_device_arguments,
    add_output_arguments,
    check_bracket_outputs,
    print_notes,
    progress_bar,
)
from lutfuse.core.commands.look import add_look_arguments
from lutfuse.core.errors import shown_path
from lutfuse.core.methods import METHODS as REGISTRY
from lutfuse.core.pipeline import METHODS, FuseSettings, fuse_bracket  # noqa: F401  (fuse_bracket: public here too)

# Dests of fuse's arguments that name this run's files rather than how to fuse (batch has its own).
NOT_SETTINGS = frozenset({"frames", "output", "force", "help", "transforms", "ghost_mask"})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every `lutfuse fuse` argument: FRAME..., -o/--force and the fusion settings."""
    add_bracket_arguments(parser)
    add_output_arguments(parser)
    parser.add_argument("--method", choices=METHODS, default="lut",
                        help="; ".join(f"{name}: {REGISTRY[name].help}" for name in METHODS))
    parser.add_argument("--grid", type=int, default=33, help="LUT grid size, 2-129 (methods lut and hq)")
    parser.add_argument("--detail", type=float, default=1.0,
                        help="local-contrast strength, 0 = pure LUT (methods lut and hq)")
    add_device_arguments(parser)  # --device and --kernels (core.device): settings, batch options, preset keys
    add_look_arguments(parser)  # --exposure ... --tint, --auto: settings (and batch preset keys) like the rest


def setting_actions() -> list[argparse.Action]:
    """The argparse actions of fuse's fusion settings (every optional argument but -o/--force/--help)."""
    return [a for group in setting_groups() for a in group]


def setting_groups() -> list[list[argparse.Action]]:
    """`setting_actions` in groups: the options of one mutually exclusive group together (--align and --no-align),
    every other option on its own."""
    parser = argparse.ArgumentParser(add_help=False)
    add_arguments(parser)
    exclusive = {id(a): g for g in parser._mutually_exclusive_groups for a in g._group_actions}
    groups: dict[int, list[argparse.Action]] = {}  # keyed by the exclusive group, else the action itself
    for action in (a for a in parser._actions if a.option_strings and a.dest not in NOT_SETTINGS):
        groups.setdefault(id(exclusive.get(id(action), action)), []).append(action)
    return list(groups.values())


def settings_from(args: argparse.Namespace) -> FuseSettings:
    """The fusion settings of parsed `fuse` (or `batch`) arguments."""
    return FuseSettings.from_namespace(args, [a.dest for a in setting_actions()])


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `fuse` subcommand."""
    p = sub.add_parser(
        "fuse",
        help="fuse a bracket into one image",
        description="Fuse 2-9 exposures into one image. The output keeps the middle frame's EXIF, XMP and ICC profile "
                    "(sRGB when untagged) and lists the bracket's exposures in its ImageDescription.",
        formatter_class=HelpFormatter,
    )
    add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load, fuse and write one bracket; returns the exit status."""
    from lutfuse.core.bracket import relative_evs
    from lutfuse.core.pipeline import frame_labels, fuse_files

    bars: list[tqdm] = []  # opened once the bracket has loaded, so that a bad input prints only its error line

    def loaded(bracket) -> None:
        print_notes("fuse", bracket.notes)
        from lutfuse.core.scene_check import scene_warnings

        for warning in scene_warnings(bracket):   # fused anyway (the user may mean it), but never without a word
            print(f"lutfuse fuse: warning: {warning}", file=sys.stderr)
        evs = relative_evs([f.ev for f in bracket.frames])
        labels = frame_labels([f.path for f in bracket.frames])
        frames = ", ".join(f"{label} ({ev:+.1f} EV)" for label, ev in zip(labels, evs))
        source = "EXIF" if all(f.ev_source == "exif" for f in bracket.frames) else "brightness"
        tqdm.write(f"{len(bracket.frames)} frames, darkest first, EV from {source} relative to the middle: {frames}")
        bars.append(progress_bar(100, f"fusing ({args.method})"))

    def report(fraction: float) -> None:
        if bars:
            bars[0].n = round(100 * fraction)
            bars[0].refresh()

    try:
        check_bracket_outputs(args)
        result = fuse_files(args.frames, args.output, settings_from(args), overwrite=args.force,
                            transforms=args.transforms, ghost_mask=args.ghost_mask, log=tqdm.write,
                            on_loaded=loaded, progress=report)
        report(1.0)
    finally:
        for bar in bars:
            bar.close()
    look = ", ".join(f"{k} {v:+g}" for k in FIELDS if (v := float(getattr(args, k, 0.0) or 0.0)))
    tqdm.write(f"wrote {shown_path(result.output)} ({result.width}×{result.height}, {result.bit_depth}-bit, "
               f"method {args.method})" + (f", look {look}" if look else "") + (", auto look" if args.auto else ""))
    return 0
