"""The one way model weights are read and written: the shipped files' names, `load_model` (architecture from the
config beside the weights, then `load_state_dict` / `load_into` with checks) and `save_weights`.

Architecture hyper-parameters are saved beside the weights, never guessed from tensor shapes: `NAME.pt` holds a
plain state_dict and `NAME.json` (`config_path`) says which network it is and how it is built,
``{"architecture": "Phase1UNet", "config": {"width": 32, "layers": 6}}``; `load_model(cls, path)` builds
``cls(**config)`` and loads the state into it. A `.pt` without its `.json` is read as the class's default
architecture (a file that does not fit then fails in one line naming the mismatch). Every network class keeps its
constructor arguments in `model.config`, which `save_weights` writes.

Weights are read with ``torch.load(weights_only=True)`` only (no arbitrary unpickling: a tampered file cannot run
code). A file that fails is refused in one line naming it and the reason in our words; torch's own message is
not shown, because it advises re-loading with ``weights_only=False``, which is exactly what a tampered file wants.
"""

from __future__ import annotations

import json
import os
import stat
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

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


M = TypeVar("M", bound=nn.Module)


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


def config_path(path: str | Path) -> Path:
    """Where the architecture of the weights at `path` is saved: NAME.pt -> NAME.json."""
    return Path(path).with_suffix(".json")


def model_config(model: nn.Module) -> dict[str, Any]:
    """The constructor arguments a network was built with (`model.config`, set by each network class)."""
    config = getattr(model, "config", None)
    if not isinstance(config, dict):
        raise TypeError(f"{type(model).__name__} does not record its architecture (no .config dict)")
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.items()}


def read_config(path: str | Path, architecture: str, what: str = "model") -> dict[str, Any] | None:
    """The architecture config saved beside the weights at `path` (None when there is no NAME.json); WeightsError
    naming the file when it is not valid JSON or names another architecture."""
    cfg = config_path(path)
    if not cfg.is_file():
        return None
    try:
        doc = json.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise WeightsError(f"{cfg}: not a readable {what} architecture file ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("config"), dict):
        raise WeightsError(f"{cfg}: not a {what} architecture file (expected an object with architecture and "
                           f"config)")
    if doc.get("architecture") != architecture:
        raise WeightsError(f"{cfg}: describes a {doc.get('architecture')!r} network, not the {what} ({architecture})")
    return dict(doc["config"])


def load_model(cls: type[M], path: str | Path, what: str = "model", hint: str = "") -> M:
    """The network `cls` built from the architecture saved beside `path` (class defaults without NAME.json) with
    the weights at `path` loaded (strict), in eval mode on the CPU; WeightsError in one line naming the file."""
    path = Path(path)
    state = load_state_dict(path, what, hint)
    config = read_config(path, cls.__name__, what) or {}
    try:
        model = cls(**config)
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"{config_path(path)}: not a valid {what} architecture ({exc})") from None
    load_into(model, state, path, what)
    model.eval()
    return model


def save_weights(model: nn.Module, path: str | Path) -> Path:
    """Write `model`'s state_dict (CPU tensors) to `path` and its architecture to NAME.json beside it, each through
    a temporary file and a rename (an existing pair is replaced: a trainer's export). Returns `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"architecture": type(model).__name__, "config": model_config(model)}
    cfg = config_path(path)
    tmp_cfg = cfg.with_suffix(".json.tmp")
    tmp_cfg.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    tmp = path.with_suffix(".tmp")
    torch.save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, tmp)
    os.replace(tmp_cfg, cfg)
    os.replace(tmp, path)
    return path
