"""`lutfuse gui`: open the editor (the default when `lutfuse` has no arguments), or save a screenshot of it."""

from __future__ import annotations

import argparse
from pathlib import Path

from lutfuse.core.commands.common import HelpFormatter


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `gui` subcommand."""
    p = sub.add_parser(
        "gui",
        help="open the editor",
        description="Open the editor on FRAMEs, else on the last bracket, else on the built-in demo.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("frames", nargs="*", metavar="FRAME", type=Path,
                   help="exposures of one scene (files, or one folder)")
    p.add_argument("--screenshot", type=Path, metavar="PATH",
                   help="wait for the first full render, save a PNG of the window to PATH and exit")
    p.add_argument("--force", action="store_true", help="replace the screenshot PATH if it exists")
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default=None,
                   help="where the editor renders; remembered as the preference (default: the preference, "
                        "first auto = CUDA, then Apple's GPU, then the CPU)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Start the Qt editor; imported here so core and the other commands never load Qt."""
    from lutfuse.core.errors import OutputError

    if args.screenshot is not None:
        if args.screenshot.suffix.lower() != ".png":
            raise OutputError(f"{args.screenshot}: the screenshot is a PNG; name it .png")
        if not args.screenshot.resolve().parent.is_dir():
            raise OutputError(f"{args.screenshot}: folder {args.screenshot.parent} does not exist")
        if args.screenshot.exists() and not args.force:
            raise OutputError(f"{args.screenshot}: already exists (use --force to replace it)")
    from lutfuse.app.run import run as run_editor
    from lutfuse.app.settings import AppSettings

    settings = AppSettings()
    if args.device is not None:
        from lutfuse.core.device import pick_device

        pick_device(args.device)  # a device this machine lacks is a one-line error before the window opens
        settings.device = args.device
    return run_editor(args.frames, screenshot=args.screenshot, settings=settings)
