"""A prepared bracket: everything the engine computes once per bracket, as one immutable value.

`core.fusion.Engine.prepare(bracket)` returns a `PreparedBracket`; every render, LUT and export then takes it
(`engine.render(prepared, grid, ...)`, `core.export`), so whatever holds a prepared bracket renders and writes
that bracket's pixels and metadata, whatever was loaded since. The engine holds no "current bracket".

Immutable: the dataclass is frozen and the arrays it hands out are read-only (`flags.writeable = False`); the
torch tensors (latent code, fused band-pass) are the engine's and must not be modified either. What a render
caches for this bracket (sampled LUTs per grid size, looked LUTs, preview-size bases and detail layers) lives in
a private `RenderCache` that belongs to the prepared bracket and dies with it; only the engine that prepared it
touches it (under that engine's lock), so no render of one bracket can read another bracket's data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

    from lutfuse.core.bracket import Bracket, Frame
    from lutfuse.core.metadata import OutputMetadata


def read_only(array: np.ndarray) -> np.ndarray:
    """A read-only view of `array` (the array itself stays writable for its owner)."""
    view = array.view()
    view.flags.writeable = False
    return view


@dataclass(eq=False)
class RenderCache:
    """Per-bracket working state of the engine (private to core.fusion; mutable, guarded by the engine's lock).

    base: H×W×3 float32, the engine's own writable copy (torch.from_numpy needs writable memory); the prepared
    bracket exposes it read-only. The dicts are bounded caches (see core.fusion's *_CACHE constants)."""

    latent: Any                                   # 1×L torch tensor on the engine's device
    base: np.ndarray | None = None
    base_dev: Any = None                          # 1×3×H×W in the render dtype (device path only)
    fused: Any = None                             # H×W fused band-pass (core.detail), on the device
    levels: int = 1
    layers: dict[int, Any] = field(default_factory=dict)            # layer key -> H×W detail layer
    sampled: dict[int, Any] = field(default_factory=dict)           # G -> G×G×G×3 float32 on the device
    luts: dict[int, np.ndarray] = field(default_factory=dict)       # G -> host copy
    luts_dev: dict[int, Any] = field(default_factory=dict)          # G -> sampled LUT in the render dtype
    looks: dict[tuple[int, Any], np.ndarray] = field(default_factory=dict)   # (G, look) -> looked LUT, host
    looks_dev: dict[tuple[int, Any], Any] = field(default_factory=dict)      # the same in the render dtype
    small_bases: dict[tuple[int, int], Any] = field(default_factory=dict)
    small_layers: dict[tuple[int, int, int], Any] = field(default_factory=dict)
    # (G, look, h, w) -> look(LUT_G)(small base), h×w×3 float32: the CPU preview's tone map, so that a change of the
    # detail strength alone is one multiply-add
    tones: dict[tuple[int, Any, int, int], np.ndarray] = field(default_factory=dict)
    # G -> core.lut.LUTCoords of the full-res base (CPU path): where each pixel falls in a G-sized LUT's mosaic,
    # the same for every LUT of that size, so a look or detail change skips the coordinate arithmetic
    coords: dict[int, Any] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class PreparedBracket:
    """One bracket prepared by one engine (`Engine.prepare`): frames, metadata, base, latent code, detail data.

    bracket: the registered frames and their metadata (paths, EXIF, XMP, ICC, EVs; core.bracket.Bracket).
    base: H×W×3 float32 in [0,1], read-only: the image the LUT applies to (core.base, of `base_kind`).
    latent: the student's latent code (1×L torch tensor on the engine's device).
    fused: H×W torch tensor, the frames' fused luminance band-pass (core.detail.fused_bandpass).
    levels: the detail split level used for this bracket's size (core.detail.split_levels).
    base_kind, base_amount: which base (core.base.BASES) and, for "calibrated", its colour strength.
    Compared by identity (two preparations of one bracket are two values)."""

    bracket: Bracket
    base: np.ndarray
    latent: torch.Tensor
    fused: torch.Tensor
    levels: int
    base_kind: str
    base_amount: float
    _cache: RenderCache = field(repr=False)
    _engine: Any = field(repr=False)   # the Engine that prepared it: only it renders from the cache

    def __post_init__(self) -> None:
        if self.base.flags.writeable:
            object.__setattr__(self, "base", read_only(self.base))

    @property
    def frames(self) -> list[Frame]:
        """The bracket's frames, darkest first."""
        return self.bracket.frames

    @property
    def paths(self) -> list[Path]:
        """The input files, darkest first: the outputs' input guard (never overwritten)."""
        return [f.path for f in self.bracket.frames]

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of a full-size render."""
        h, w = self.base.shape[:2]
        return int(h), int(w)

    def metadata(self, made: str = "fusion") -> OutputMetadata:
        """What an output made from this bracket says about itself (core.metadata.OutputMetadata.from_bracket:
        the middle frame's EXIF, XMP, ICC and every frame's exposure); `made` says what the image is."""
        from lutfuse.core.metadata import OutputMetadata

        return OutputMetadata.from_bracket(self.bracket, made=made)
