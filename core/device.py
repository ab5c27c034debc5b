"""Where the engine runs, with which kernels and at which precision: the one place that decides.

* Device: ``auto`` picks CUDA, then Apple's GPU (torch ``mps``), then the CPU (`pick_device`).
* Kernels: ``auto`` uses the CPU fast paths (OpenCV pyramids, the chunked 2-D mosaic LUT sampler) on the CPU and
  torch everywhere else; ``torch`` runs the device code path (torch pyramids, 5-D ``grid_sample``) on the CPU too,
  so that CI, which has no GPU, proves the code a GPU runs. The default comes from ``$LUTFUSE_KERNELS`` (CI sets
  it for a second test run). Code asks `torch_kernels(device)`; an engine scopes its choice with `use_kernels`.
* Precision: ``auto`` renders (LUT apply, detail add) in float16 on a GPU, where it is within 1/255 of float32
  (measured: see README, "GPU"), and in float32 on the CPU; ``float32`` everywhere forces full precision.
  Explicit ``float16``/``bfloat16`` exist to measure that error with the torch kernels on the CPU.

On MPS some ops are missing in many torch versions (3-D ``grid_sample`` above all). `PYTORCH_ENABLE_MPS_FALLBACK=1`
(set in ``lutfuse/__init__.py`` before torch loads, unless the user set it) lets torch run such an op on the CPU;
the LUT apply additionally probes its 5-D sampler once per device type and, where it is missing, uses an exact
gather-based trilinear on the device (`core.lut`), with a one-time note (`note_fallback`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch

from lutfuse.core.errors import LUTFuseError

DEVICES = ("auto", "cpu", "cuda", "mps")
KERNELS = ("auto", "torch")
PRECISIONS = ("auto", "float32", "float16", "bfloat16")
KERNELS_ENV = "LUTFUSE_KERNELS"

_kernels: ContextVar[str | None] = ContextVar("lutfuse_kernels", default=None)
_noted: set[str] = set()


def mps_available() -> bool:
    """Whether torch can use Apple's GPU here (False on builds without MPS)."""
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The torch device for a user's choice: None or 'auto' = CUDA, then MPS, then CPU; else the named one.

    Accepts 'cpu', 'cuda', 'cuda:N', 'mps' (or a torch.device). Raises LUTFuseError for an unknown name or a
    device this machine does not have, with the choices in the message.
    """
    if device is None or (isinstance(device, str) and device.strip().lower() == "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_available() else torch.device("cpu")
    try:
        dev = torch.device(device.strip().lower() if isinstance(device, str) else device)
    except (RuntimeError, TypeError) as exc:
        raise LUTFuseError(f"unknown device '{device}' (use {', '.join(DEVICES)})") from exc
    if dev.type not in {"cpu", "cuda", "mps"}:
        raise LUTFuseError(f"device '{device}': only {', '.join(DEVICES)} are supported")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LUTFuseError(f"device '{device}': no CUDA device is available here (use auto or cpu)")
    if dev.type == "mps" and not mps_available():
        raise LUTFuseError(f"device '{device}': no Apple GPU (MPS) is available here (use auto or cpu)")
    return dev


def describe(device: torch.device) -> str:
    """A short human name of a device for the status bar and reports, e.g. 'CUDA (NVIDIA H200)', 'CPU (2 threads)'."""
    if device.type == "cuda":
        try:
            return f"CUDA ({torch.cuda.get_device_name(device)})"
        except (RuntimeError, AssertionError):
            return "CUDA"
    if device.type == "mps":
        return "Apple GPU (MPS)"
    threads = torch.get_num_threads()
    return f"CPU ({threads} thread{'' if threads == 1 else 's'})"


def unavailable(device: str) -> str | None:
    """Why a device choice (DEVICES) cannot run here, as a sentence for a tooltip, or None when it can.

    'auto' and 'cpu' always can; 'cuda' needs a CUDA build of torch and a visible GPU; 'mps' needs torch's MPS
    backend, which Apple-silicon Macs (macOS 12.3+) have."""
    if device == "cuda" and not torch.cuda.is_available():
        if torch.version.cuda is None:
            return f"This torch ({torch.__version__}) is built without CUDA."
        return "No CUDA GPU is visible to torch on this machine."
    if device == "mps" and not mps_available():
        return "No Apple GPU (MPS) here: it needs a Mac with Apple silicon and a torch with MPS."
    if device not in DEVICES:
        return f"Unknown device '{device}' (use {', '.join(DEVICES)})."
    return None


def check_kernels(kernels: str | None) -> str:
    """'auto' or 'torch'; None means $LUTFUSE_KERNELS, else 'auto'. LUTFuseError for anything else."""
    value = (os.environ.get(KERNELS_ENV) or "auto") if kernels is None else kernels
    value = str(value).strip().lower()
    if value not in KERNELS:
        source = f"${KERNELS_ENV}" if kernels is None else "kernels"
        raise LUTFuseError(f"{source} {value!r}: use auto (fast CPU paths) or torch (the device path everywhere)")
    return value


@contextmanager
def use_kernels(kernels: str | None) -> Iterator[str]:
    """Within the block (this thread/context only) `torch_kernels` follows `kernels`; yields the checked value."""
    token = _kernels.set(check_kernels(kernels))
    try:
        yield _kernels.get()  # type: ignore[misc]
    finally:
        _kernels.reset(token)


def torch_kernels(device: torch.device | str) -> bool:
    """Whether code on `device` takes the torch path: always off the CPU; on the CPU when kernels are 'torch'."""
    if torch.device(device).type != "cpu":
        return True
    current = _kernels.get()
    return (current if current is not None else check_kernels(None)) == "torch"


def render_dtype(precision: str, device: torch.device, kernels: str) -> torch.dtype:
    """The dtype of the real-time render path (base, LUT, detail layer) for a precision choice.

    auto: float16 on CUDA and MPS (within 1/255 of float32), float32 on the CPU. float16/bfloat16 need the torch
    kernels (the CPU fast paths are float32 only). LUTFuseError for an unknown choice or that combination.
    """
    if precision not in PRECISIONS:
        raise LUTFuseError(f"precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return torch.float16 if device.type in ("cuda", "mps") else torch.float32
    dtype = getattr(torch, precision)
    if dtype != torch.float32 and device.type == "cpu" and kernels != "torch":
        raise LUTFuseError(f"precision {precision} on the CPU needs the torch kernels (kernels='torch')")
    return dtype


def note_fallback(op: str, device: torch.device, instead: str) -> None:
    """Say once per (op, device type) that an op is missing on the device and what runs instead (a warning)."""
    key = f"{op}@{device.type}"
    if key not in _noted:
        _noted.add(key)
        warnings.warn(f"{op} is not available on {device.type} with torch {torch.__version__}; using {instead}",
                      RuntimeWarning, stacklevel=3)
