"""Exceptions the engine raises for problems a user can fix; the CLI prints them as one line."""


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


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived (the CLI turns them into this): a BaseException, so that no `except Exception`
    swallows it, while every `finally` (temp-file removal) still runs on the way out."""

    def __init__(self, signum: int) -> None:
        import signal

        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum
