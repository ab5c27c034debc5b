"""The one way model weights are read: the shipped files' names and `load_state_dict` / `load_into` with checks.

Weights are read with ``torch.load(weights_only=True)`` only (no arbitrary unpickling: a tampered file cannot run
code). A file that fails is refused in one line naming it and the reason in our words; torch's own message is
not shown, because it advises re-loading with ``weights_only=False``, which is exactly what a tampered file wants.
"""

from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from lutfuse.core import paths
from lutfuse.core.errors import WeightsError

# Shipped weights in resources/weights (paths.WEIGHTS): model name -> file name.
SHIPPED = {
    "LUT teacher": "lut_teacher.pt",
    "LUT student": "lut_student.pt",
    "HQ phase 1": "refine_phase1.pt",
    "HQ phase 2": "refine_phase2.pt",
}


def shipped(model: str) -> Path:
    """Path of a shipped weights file by model name (a key of SHIPPED)."""
    return paths.WEIGHTS / SHIPPED[model]


def _read(path: Path, what: str, hint: str) -> object:
    """torch.load(weights_only=True) of a regular file, else WeightsError naming it (torch's text left out)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise WeightsError(f"{path}: {what} weights not found{hint}") from None
    except OSError as exc:
        raise WeightsError(f"{path}: cannot read {what} weights ({exc.strerror or exc})") from None
    if not stat.S_ISREG(info.st_mode):
        raise WeightsError(f"{path}: {what} weights must be a regular file")
    if info.st_size == 0:
        raise WeightsError(f"{path}: {what} weights file is empty")
    try:
        with warnings.catch_warnings():
            # torch warns about pickle protocols of odd files, naming its unpickler: chatter around our one line
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except MemoryError:
        raise WeightsError(f"{path}: not enough memory to read the {what} weights") from None
    except Exception:  # noqa: BLE001 (UnpicklingError, RuntimeError, EOFError...: a file not to trust)
        raise WeightsError(f"{path}: not a valid {what} weights file (corrupt, truncated, or not a plain "
                           f"PyTorch state_dict); it was not loaded") from None


def load_state_dict(path: str | Path, what: str = "model", hint: str = "") -> dict[str, torch.Tensor]:
    """A plain state_dict (name -> finite tensor) from `path`, else WeightsError in one line naming the file.

    what: the model's name for messages ("LUT student"); hint: appended to "not found" (how to get the file).
    """
    path = Path(path)
    state = _read(path, what, hint)
    if not isinstance(state, Mapping) or not state:
        raise WeightsError(f"{path}: not a {what} state_dict (the file holds {type(state).__name__})")
    for name, value in state.items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor):
            raise WeightsError(f"{path}: not a {what} state_dict (entry {str(name)[:60]!r} is not a tensor)")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise WeightsError(f"{path}: {what} weights hold NaN or infinite values in {name[:60]}")
    return dict(state)


def load_checkpoint(path: str | Path, what: str = "training checkpoint") -> dict:
    """A training checkpoint (a dict of tensors, numbers and nested state dicts) from `path`, through the same
    safe loader; WeightsError in one line naming the file."""
    path = Path(path)
    state = _read(path, what, "")
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: not a {what} (the file holds {type(state).__name__})")
    return state


def load_into(model: nn.Module, state: Mapping[str, torch.Tensor], path: str | Path, what: str = "model") -> nn.Module:
    """`model` with `state` loaded (strict), else WeightsError naming the file and the first mismatch in our words
    (a missing or unexpected entry, or a shape)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or shapes:
        if shapes:
            k = shapes[0]
            reason = f"{k} has shape {tuple(state[k].shape)}, the network expects {tuple(own[k].shape)}"
        elif missing:
            reason = f"{len(missing)} entries missing (first: {missing[0]})"
        else:
            reason = f"{len(unexpected)} unexpected entries (first: {unexpected[0][:60]})"
        raise WeightsError(f"{path}: weights do not fit the {what} ({reason})")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError:
        raise WeightsError(f"{path}: weights do not fit the {what}") from None
    return model
