"""`lutfuse` entry point: no arguments opens the editor; subcommands run the engine headless."""

from __future__ import annotations

import argparse
import importlib
import sys

from lutfuse.core.errors import LUTFuseError

# Each module in core/commands registers its subcommands; imported lazily so `--help` stays fast.
COMMAND_MODULES = ("fuse", "cube", "metrics", "train", "eval", "bench", "gui")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="lutfuse",
        description="Fuse exposure brackets with a learned 3D LUT. Run without arguments to open the editor.",
    )
    parser.add_argument("--version", action="version", version=f"lutfuse {__import__('lutfuse').__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"lutfuse.core.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"lutfuse.core.commands.{name}":
                continue  # command not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit status (0 ok, 1 user error, 130 interrupted)."""
    argv = sys.argv[1:] if argv is None else argv
    for stream in (sys.stdout, sys.stderr):
        # A file name that is not valid UTF-8 must never crash a status line, even on a strict UTF-8 terminal
        # (PYTHONIOENCODING=utf-8:strict); messages name files through errors.shown_path, this is the backstop.
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError):
                pass
    if not argv:
        argv = ["gui"]
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except LUTFuseError as exc:
        print(f"lutfuse {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"lutfuse {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
