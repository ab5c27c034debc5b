"""The one registry of fusion methods: name -> `Method`, used by `lutfuse fuse`/`batch` (core.pipeline), `lutfuse
eval` (core.evaluate), the bench and the editor's exports (core.export).

A method turns a loaded bracket (core.bracket.Bracket, frames darkest first) and the run's settings (anything with
the attributes of `lutfuse fuse`'s options, e.g. core.pipeline.FuseSettings: `grid`, `detail`, `device` and the
look sliders of core.adjust) into one H×W×3 float32 image in [0,1]:

* `lut`: the learned 3D LUT at `grid` plus the detail layer at `detail` (core.fusion.Engine; the look composed
  into the LUT);
* `mertens`: OpenCV's exposure fusion (Mertens et al. 2007; core.classical), the look applied after;
* `hq`: the `lut` render at `grid`/`detail`/look, refined per bracket on MEF-SSIM (core.hq; no network);
* `hq-steps16`, `hq-thesis`, `hq-thesis-steps0`, `hq-thesis-no-phase1`, `hq-thesis-generated-middle`: HQ
  variants and ablations (core.hq.HQFusion options; `hq-thesis*` start from the two-phase networks) that
  `lutfuse eval` scores; not offered by `fuse` (`Method.public` False).

Models are loaded once per process through a `Models` cache (one engine and one HQFusion per device and options).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from lutfuse.core.errors import Cancelled, LUTFuseError

if TYPE_CHECKING:
    from lutfuse.core.bracket import Bracket
    from lutfuse.core.fusion import Engine
    from lutfuse.core.hq import HQFusion
    from lutfuse.core.prepared import PreparedBracket

Progress = Callable[[float], None]
Cancel = Callable[[], bool]


class Models:
    """Keeps one model per (kind, device, options), so that a process fusing many brackets loads each model once.

    weights_dir: where the weights are (default: the shipped ones, core.paths.WEIGHTS); engine_options: extra
    core.fusion.Engine keywords (contrast_power, base, kernels, ...), as `lutfuse eval` sets them."""

    def __init__(self, weights_dir: Path | None = None, engine_options: Mapping[str, Any] | None = None) -> None:
        self.weights_dir = None if weights_dir is None else Path(weights_dir)
        self.engine_options = dict(engine_options or {})
        self._models: dict[tuple[Any, ...], Any] = {}

    def engine(self, device: str | None, kernels: str | None = None) -> Engine:
        """The cached `core.fusion.Engine` for a device (None/auto = core.device.pick_device's choice) and kernels
        (core.device: auto | torch; None = the engine options' or $LUTFUSE_KERNELS)."""
        key = ("lut", device, kernels)
        if key not in self._models:
            from lutfuse.core.fusion import Engine
            from lutfuse.core.weights import SHIPPED

            weights = None if self.weights_dir is None else self.weights_dir / SHIPPED["LUT student"]
            options = dict(self.engine_options)
            if kernels is not None:
                options["kernels"] = kernels
            self._models[key] = Engine(weights=weights, device=device, **options)
        return self._models[key]

    def hq(self, device: str | None, **options: Any) -> HQFusion:
        """The cached `core.hq.HQFusion` for a device and its options (core.hq.HQFusion keywords)."""
        key = ("hq", device, tuple(sorted(options.items())))
        if key not in self._models:
            from lutfuse.core.hq import HQFusion

            self._models[key] = HQFusion(weights_dir=self.weights_dir, device=device, **options)
        return self._models[key]


def settings_look(settings: Any, bracket: Bracket) -> Any:
    """The core.adjust.Look the settings' look sliders (and `auto`) ask for, None when neutral."""
    from lutfuse.core.commands.look import look_from_args

    return look_from_args(settings, bracket.images)


_UNSET: Any = object()


@dataclass(frozen=True)
class Method:
    """One fusion method: its name, what it is, which settings and shipped weights it uses, its fixed options.

    settings: names of the settings it reads (besides the look); weights: core.weights.SHIPPED keys it needs;
    options: fixed keywords of its model (core.hq.HQFusion for the HQ variants); public: offered by `lutfuse
    fuse`, batch presets and the editor (False: an ablation `lutfuse eval` scores); origin: what an output made
    with it names as its source (core.imageio.write_image's `origin`)."""

    name: str
    help: str
    kind: str                                     # "lut", "mertens" or "hq": which code fuses
    settings: tuple[str, ...] = ()
    weights: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    public: bool = True

    def origin(self) -> str:
        """The source an output names (the weights files, or "the fusion")."""
        from lutfuse.core.weights import shipped

        if self.kind == "lut":
            return str(shipped("LUT student"))
        if self.kind == "hq":
            if self.options.get("networks"):
                return f"{shipped('HQ phase 1')} and {shipped('HQ phase 2').name}"
            return f"{shipped('LUT student')}, refined per bracket (core.hq)"
        return "the fusion"

    def fuse(self, bracket: Bracket, settings: Any, *, progress: Progress | None = None,
             cancel: Cancel | None = None, models: Models | None = None, engine: Engine | None = None,
             prepared: PreparedBracket | None = None, latent: Any = None, look: Any = _UNSET) -> np.ndarray:
        """Fuse a loaded bracket with `settings` -> H×W×3 float32 RGB in [0,1].

        settings: reads `grid`, `detail`, `device`, `kernels` (as this method's `settings` list says) and the look
        sliders;
        models: the model cache to use (a fresh one by default); engine: the core.fusion.Engine to render with
        (default `models.engine(settings.device)`); prepared: the bracket already prepared by that engine (its
        latent, base and detail layer are reused, as the editor and `lutfuse eval` do); latent: a student latent
        code replacing the bracket's own (lut; the time-lapse smoother's); look: a core.adjust.Look (or None)
        instead of the one the settings ask for.
        progress(fraction in [0,1]) is called as it goes; cancel() is polled and raises Cancelled.
        Raises LUTFuseError (bad settings), WeightsError (missing weights), Cancelled."""
        models = models or Models()
        if look is _UNSET:
            look = settings_look(settings, bracket)
        report = progress or (lambda _f: None)
        device = getattr(settings, "device", None)
        if self.kind == "mertens":
            from lutfuse.core.adjust import apply_look
            from lutfuse.core.classical import mertens

            return apply_look(mertens(bracket.images, bracket.valid), look)
        engine = engine or models.engine(device, getattr(settings, "kernels", None))
        grid, detail = settings.grid, float(settings.detail)
        if self.kind == "lut":
            if prepared is None:
                import torch

                prepared = engine.prepare(bracket, latent=None if latent is None else torch.as_tensor(
                    np.asarray(latent)))
            if cancel is not None and cancel():
                raise Cancelled("fusion cancelled")
            return engine.render(prepared, grid, detail, look=look)
        if self.kind == "hq":
            # HQ refines the lut render at the same grid and detail: preparing the bracket is its first 30 %
            start = 0.0
            report(0.0)
            if prepared is None:
                from lutfuse.core.hq import run_cancellable

                prepared = run_cancellable(lambda: engine.prepare(bracket), cancel)
                start = 0.3
                report(start)
            hq = models.hq(device, **self.options)
            # the look goes into the live render HQ refines, as in the editor (its LUT carries the look)
            return hq.fuse(bracket.images, progress=lambda f: report(start + (1 - start) * f), cancel=cancel,
                           engine=engine, prepared=prepared, grid=grid, detail=detail, look=look,
                           valid=bracket.valid)
        raise LUTFuseError(f"method {self.name!r}: unknown kind {self.kind!r}")


_THESIS_WEIGHTS = ("LUT student", "HQ phase 1", "HQ phase 2")
_LIVE = ("grid", "detail", "device")


def _hq(name: str, help: str, **options: Any) -> Method:
    weights = _THESIS_WEIGHTS if options.get("networks") else ("LUT student",)
    return Method(name, help, "hq", _LIVE, weights, MappingProxyType(options), public=False)


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("lut", "learned 3D LUT + detail (real time)", "lut", _LIVE, ("LUT student",)),
    Method("mertens", "classical exposure fusion", "mertens", ()),
    Method("hq", "the lut render at --grid/--detail (and look), refined per bracket on MEF-SSIM against its frames "
                 "and applied edge-aware at full size (best quality)", "hq", _LIVE, ("LUT student",)),
    _hq("hq-steps16", "HQ with twice the refinement steps", steps=16),
    # the k = 2 study (resources/weights/refine_phase2.md): the gain beyond the ΔE00 bound, and what it costs
    _hq("hq-unbounded", "HQ without the ΔE00 bound from the live view", delta_e=math.inf),
    _hq("hq-es24", "HQ with up to 24 steps, stopped when the loss stops falling, no ΔE00 bound", steps=24,
        patience=2, delta_e=math.inf),
    _hq("hq-thesis", "HQ started by the two-phase networks (phase 1 middle, phase 2 attention)", networks=True),
    _hq("hq-thesis-steps0", "HQ: the two-phase networks' correction alone, no refinement", networks=True, steps=0),
    _hq("hq-thesis-no-phase1", "HQ thesis (2 frames): the live render as phase 2's intermediate", networks=True,
        phase1=False),
    _hq("hq-thesis-generated-middle", "HQ thesis (≥ 3 frames): phase 1's middle instead of the real one",
        networks=True, middle="generated"),
)}
PUBLIC = tuple(name for name, m in METHODS.items() if m.public)   # what `fuse`, batch and the editor offer


def get_method(name: str, *, public: bool = False) -> Method:
    """The registered method `name`; LUTFuseError listing the choices (only the public ones when `public`)."""
    choices = PUBLIC if public else tuple(METHODS)
    if name not in choices:
        raise LUTFuseError(f"unknown method {name!r} (choose from {', '.join(choices)})")
    return METHODS[name]
