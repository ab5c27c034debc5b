"""Exceptions the engine raises for problems a user can fix; the CLI prints them as one line."""

import os


class LUTFuseError(Exception):
    """Base class: the message names the file (if any) and the reason, and is shown to the user as is."""


class BracketError(LUTFuseError):
    """A frame or a set of frames cannot be used as a bracket."""


class CubeError(LUTFuseError):
    """A .cube file is malformed or unsupported."""


class OutputError(LUTFuseError):
    """An output cannot be written (it exists, it is an input, the folder is missing...)."""


class WeightsError(LUTFuseError):
    """Shipped or given model weights are missing or do not fit the model."""


class Cancelled(LUTFuseError):
    """Long work was stopped by the user's cancel request."""


def shown_path(path: object) -> str:
    """A file name as it may appear in a message: printable on any terminal, even a strict UTF-8 one.

    POSIX file names are bytes; Python keeps undecodable bytes as lone surrogates, which a strict UTF-8 stream
    refuses to print. They come out as backslash escapes (b'\\xff' -> "\\xff") and the rest stays readable;
    control characters too (a newline -> "\\n"), so that a message stays one line.
    """
    try:
        if isinstance(path, (str, bytes, os.PathLike)):
            raw = os.fsencode(path)
        else:
            raw = str(path).encode("utf-8", "surrogateescape")
    except (TypeError, UnicodeError):
        raw = str(path).encode("utf-8", "backslashreplace")
    # A newline, tab or terminal escape in a name would split the one-line message or drive the terminal.
    return raw.decode("utf-8", "backslashreplace").translate(_CONTROL_ESCAPES)


def file_kind(mode: int) -> str:
    """What a file is, for a message, from its `os.stat` mode: "a folder", "a FIFO (named pipe)", "a character
    device", "a block device", "a socket", "a regular file" (or "not a regular file" for anything else)."""
    import stat

    for test, kind in ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a folder"),
                       (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


# C0 controls, DEL, C1 controls and the Unicode line/paragraph separators -> "\\n", "\\t", "\\x1b", "\\u2028"
_CONTROL_ESCAPES = {c: ascii(chr(c))[1:-1] for c in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)}


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived (the CLI turns them into this): a BaseException, so that no `except Exception`
    swallows it, while every `finally` (temp-file removal) still runs on the way out."""

    def __init__(self, signum: int) -> None:
        import signal

        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum
