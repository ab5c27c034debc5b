"""`lutfuse` entry point: no arguments opens the editor; subcommands run the engine headless."""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import NoReturn

from lutfuse.core.errors import LUTFuseError, Terminated, shown_path

# Each module in core/commands registers its subcommands; imported lazily so `--help` stays fast.
COMMAND_MODULES = ("fuse", "batch", "cube", "metrics", "train", "eval", "bench", "gui")


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line (the error, not the whole usage block before it; exit status 2, as
    argparse's), with a hint for a file whose name starts with '-' (argparse takes it for an option and says only
    "unrecognized arguments" or "expected one argument"). `argv`: the arguments being parsed, set by `main`."""

    argv: tuple[str, ...] = ()

    def error(self, message: str) -> NoReturn:
        dashed = [a for a in self.argv if a.startswith("-") and a != "-" and os.path.isfile(a)]
        if dashed:
            message += (f" ('{dashed[0]}' is a file whose name starts with '-', which reads as an option: "
                        f"write it as ./{dashed[0]})")
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered. command: the one about to run, when known; the
    others may then register only their entry (`train` without its trainers, which import torch)."""
    parser = _Parser(
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
        if name == "train" and command is not None and command != "train":
            module.register(sub, light=True)
        else:
            module.register(sub)
    return parser


@contextlib.contextmanager
def _signals_unwind(command: str) -> Iterator[None]:
    """While the command runs, SIGTERM and SIGHUP raise Terminated, so that a write in progress removes its temp
    file (core.imageio.commit's `finally`) instead of the process vanishing with it. Not for the editor: there an
    exception raised inside a Qt callback would not unwind the event loop (its writes run in worker threads)."""
    if command == "gui" or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Terminated(signum)

    wanted = [s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None]
    previous = {s: signal.signal(s, handler) for s in wanted}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


@contextlib.contextmanager
def _one_line_warnings(command: str) -> Iterator[None]:
    """Python warnings (ours, e.g. trimmed metadata, and libraries') are printed as one line each, not as
    file:line + source, so that the output keeps one line per message."""
    def show(message, category, filename, lineno, file=None, line=None) -> None:
        from tqdm import tqdm  # its write keeps a progress bar on the terminal off the warning's line

        text = " ".join(str(message).split())
        tqdm.write(f"lutfuse {command}: warning: {text}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = show
        yield


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit status (0 ok, 1 user error, 130 interrupted, 128+N on signal N)."""
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
    if argv == ["--version"]:  # answered before the subcommands (and numpy, OpenCV) are imported
        print(f"lutfuse {__import__('lutfuse').__version__}")
        return 0
    parser = build_parser(argv[0] if not argv[0].startswith("-") else "")
    _Parser.argv = tuple(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with _signals_unwind(args.command), _one_line_warnings(args.command):
            return int(args.func(args) or 0)
    except LUTFuseError as exc:
        _say(f"lutfuse {args.command}: error: {exc}")
        return 1
    except OSError as exc:
        # A path the checks did not foresee failing (a name longer than the filesystem takes, an I/O error on a
        # card): one line naming it, never a traceback
        where = f"{shown_path(exc.filename)}: " if exc.filename is not None else ""
        hint = " (at most 255 bytes per name)" if exc.errno == errno.ENAMETOOLONG else ""
        _say(f"lutfuse {args.command}: error: {where}{exc.strerror or exc}{hint}")
        return 1
    except KeyboardInterrupt:
        _say(f"lutfuse {args.command}: interrupted")
        return 130
    except Terminated as exc:
        _say(f"lutfuse {args.command}: {exc}; nothing was left half-written")
        return 128 + exc.signum


def _say(line: str) -> None:
    """Print the command's last line on stderr once no decoder thread has stderr redirected (a frame that fails
    while the next one still decodes would otherwise lose its message in that decode's capture file)."""
    readers = sys.modules.get("lutfuse.core.readers")  # not imported = no decode ever ran
    with readers.stderr_free() if readers is not None else contextlib.nullcontext():
        print(line, file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
