"""HQ export: two-phase progressive fusion at full resolution. Phase 1 generates the intermediate exposure from the
darkest and brightest frames; the exposure fusion (Mertens) of under, intermediate and over is computed once on the
whole image as the base; phase 2 (AMNet) refines that base from the three frames. Both networks run by overlapping
tiles blended with raised-cosine weights, with progress and prompt cancellation."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lutfuse.core import paths
from lutfuse.core.classical import mertens_low_memory
from lutfuse.core.device import pick_device
from lutfuse.core.errors import BracketError, Cancelled, WeightsError
from lutfuse.core.models.refine import MULTIPLE, AMNet, Phase1UNet
from lutfuse.core.weights import load_into, load_state_dict

PHASE1_FILE = "refine_phase1.pt"
PHASE2_FILE = "refine_phase2.pt"
# Which frame phase 2 gets as its intermediate when the bracket has a real one (N >= 3): the real middle frame beat
# phase 1's output on the 3-frame validation cases (PSNR 22.78 vs 22.03 dB, MEF-SSIM 0.956 vs 0.934; see
# resources/weights/refine_phase2.md), so a real middle is used when there is one; 2-frame brackets get phase 1's.
DEFAULT_MIDDLE = "real"

Progress = Callable[[float], None]
Cancel = Callable[[], bool]


def _load_state(path: Path, what: str = "HQ") -> dict[str, torch.Tensor]:
    """A plain state_dict from `path` (core.weights.load_state_dict), or WeightsError naming the file."""
    return load_state_dict(path, what, " (train them with `lutfuse train refine-phase1/2`)")


def _count_layers(state: dict[str, torch.Tensor], prefix: str) -> int:
    """Number of `prefix.N.weight` entries (the depth of a dense block)."""
    return sum(1 for k in state if k.startswith(prefix) and k.endswith(".weight"))


def build_phase1(state: dict[str, torch.Tensor], path: Path) -> Phase1UNet:
    """Phase1UNet with the width and depth the state_dict was trained with, weights loaded."""
    try:
        model = Phase1UNet(width=state["enc_under.head.0.weight"].shape[0],
                           layers=_count_layers(state, "dense.0.layers."))
    except (KeyError, IndexError):
        raise WeightsError(f"{path}: weights do not fit the phase-1 network (no enc_under.head.0.weight)") from None
    return load_into(model, state, path, "phase-1 network").eval()


def build_phase2(state: dict[str, torch.Tensor], path: Path) -> AMNet:
    """AMNet with the width, growth and depth the state_dict was trained with, weights loaded."""
    try:
        model = AMNet(width=state["shared.0.weight"].shape[0], growth=state["dense.0.layers.0.weight"].shape[0],
                      layers=_count_layers(state, "dense.0.layers."))
    except (KeyError, IndexError):
        raise WeightsError(f"{path}: weights do not fit the phase-2 network (no shared.0.weight or "
                           f"dense.0.layers.0.weight)") from None
    return load_into(model, state, path, "phase-2 network").eval()


def raised_cosine(length: int, lead: bool, trail: bool, overlap: int) -> np.ndarray:
    """1-D tile weight of `length` in [0,1]: 0 over the first overlap/4 (the least context), a raised-cosine ramp
    over the next overlap/2, then 1; only on the sides that meet another tile (lead = start, trail = end)."""
    w = np.ones(length, np.float32)
    dead, ramp = overlap // 4, overlap // 2
    if ramp > 0:
        up = (0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp)).astype(np.float32)
        edge = np.concatenate([np.zeros(dead, np.float32), up])[:length]
        if lead:
            w[: edge.size] = np.minimum(w[: edge.size], edge)
        if trail:
            w[length - edge.size:] = np.minimum(w[length - edge.size:], edge[::-1])
    return w


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets (multiples of 16) of tiles of `tile` px covering a padded side of `size` (a multiple of 16)."""
    if size <= tile:
        return [0]
    step = max(MULTIPLE, (tile - overlap) // MULTIPLE * MULTIPLE)
    starts = list(range(0, size - tile, step))
    starts.append(size - tile)
    return starts


def _read_tile(image: np.ndarray, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    """Window [y0:y1, x0:x1] of H×W×3, reflected past the bottom/right edge exactly as the whole image would be."""
    h, w = image.shape[:2]
    crop = image[y0:min(y1, h), x0:min(x1, w)]
    ph, pw = y1 - min(y1, h), x1 - min(x1, w)
    if ph or pw:
        mode = "reflect" if ph < crop.shape[0] and pw < crop.shape[1] else "edge"
        crop = np.pad(crop, ((0, ph), (0, pw), (0, 0)), mode=mode)
    return crop


def run_cancellable(work: Callable[[], np.ndarray], cancel: Cancel | None, poll: float = 0.05) -> np.ndarray:
    """work() in a worker thread, polling `cancel` every `poll` s: Cancelled within about `poll` of a request.

    For OpenCV's exposure fusion, which takes ~10 s at 24 MP and cannot be interrupted (it releases the GIL): on
    cancel the thread is left to finish in the background and its result is dropped."""
    if cancel is None:
        return work()
    result: dict[str, object] = {}

    def target() -> None:
        try:
            result["value"] = work()
        except BaseException as exc:  # handed to the caller below
            result["error"] = exc

    worker = threading.Thread(target=target, name="lutfuse-hq-base", daemon=True)
    worker.start()
    while worker.is_alive():
        if cancel():
            raise Cancelled("HQ fusion cancelled")
        worker.join(poll)
    if "error" in result:
        raise result["error"]
    return result["value"]


class HQFusion:
    """Two-phase HQ fusion with shipped (or given) weights; device as core.device.pick_device (auto: CUDA, MPS, CPU).

    The tiling has no CPU-only branch (tiles go to the device, results come back to numpy accumulators), so the
    kernel switch does not apply here; the base fusion is OpenCV's on the CPU on every device."""

    def __init__(self, weights_dir: Path | None = None, device: str | None = None, *,
                 overlap: int = 64, middle: str = DEFAULT_MIDDLE,
                 models: tuple[Phase1UNet, AMNet] | None = None) -> None:
        """Load refine_phase1.pt and refine_phase2.pt from weights_dir (the shipped ones by default), or use the
        given (phase1, phase2) networks as they are (a trainer's validation)."""
        self.device = pick_device(device)
        if models is None:
            weights_dir = Path(weights_dir) if weights_dir is not None else paths.WEIGHTS
            p1, p2 = weights_dir / PHASE1_FILE, weights_dir / PHASE2_FILE
            models = (build_phase1(_load_state(p1, "HQ phase 1"), p1),
                      build_phase2(_load_state(p2, "HQ phase 2"), p2))
        self.phase1 = models[0].to(self.device)
        self.phase2 = models[1].to(self.device)
        if middle not in ("generated", "real"):
            raise ValueError(f"middle must be 'generated' or 'real', not {middle!r}")
        self.overlap = overlap
        self.middle = middle

    def uses_real_middle(self, n_frames: int) -> bool:
        """Whether a bracket of n_frames feeds its own middle frame (and Mertens of all frames) to phase 2."""
        return self.middle == "real" and n_frames >= 3

    def generate_middle(self, under: np.ndarray, over: np.ndarray, progress: Progress | None = None,
                        cancel: Cancel | None = None, tile: int = 512) -> np.ndarray:
        """Phase 1 alone: under, over H×W×3 float32 in [0,1] -> intermediate exposure H×W×3 float32 in [0,1]."""
        def net(x: list[torch.Tensor]) -> torch.Tensor:
            return self.phase1(x[0], x[1])

        return self._tiled(net, [under, over], progress, cancel, tile)

    def fuse(self, images: np.ndarray | Sequence[np.ndarray], progress: Progress | None = None,
             cancel: Cancel | None = None, tile: int = 512, valid: np.ndarray | None = None) -> np.ndarray:
        """N×H×W×3 float32 in [0,1], darkest first, N ≥ 2 -> fused H×W×3 float32 in [0,1].

        Phase 2's inputs are the darkest frame, an intermediate and the brightest frame, plus a base image. With
        middle="real" (the default) a bracket of 3 or more frames gives its frame nearest the middle as the
        intermediate and the exposure fusion of ALL its frames as the base; otherwise phase 1 generates the
        intermediate from the extremes and the base is the exposure fusion of (under, intermediate, over).

        valid: optional N×H×W bool (Bracket.valid). The networks see every frame whole: a Bracket's invalid pixels
        already hold the reference re-rendered at that frame's exposure; valid zeroes their weight in the base
        exposure fusion."""
        if len(images) < 2:
            raise BracketError(f"HQ fusion needs at least 2 frames, got {len(images)}")
        under, over = images[0], images[len(images) - 1]
        report = progress or (lambda _f: None)
        base_valid = valid
        if self.uses_real_middle(len(images)):
            middle, base_frames, start = images[len(images) // 2], list(images), 0.0
        else:
            if valid is not None:  # the generated middle is made from under and over: valid where both are
                base_valid = np.stack([valid[0], valid[0] & valid[-1], valid[-1]])
            # phase 1 is about as slow per pixel as phase 2: it gets the first 45 % of the bar
            middle = self.generate_middle(under, over, lambda f: report(0.45 * f), cancel, tile)
            base_frames, start = [under, middle, over], 0.45
        report(start)
        base = run_cancellable(lambda: mertens_low_memory(base_frames, base_valid), cancel)
        report(start + 0.05)

        def net(x: list[torch.Tensor]) -> torch.Tensor:
            return self.phase2(x[0], x[1], x[2], x[3])

        rest = 1.0 - start - 0.05
        return self._tiled(net, [under, middle, over, base], lambda f: report(start + 0.05 + rest * f), cancel,
                           tile)

    def _tiled(self, net: Callable[[list[torch.Tensor]], torch.Tensor], frames: Sequence[np.ndarray],
               progress: Progress | None, cancel: Cancel | None, tile: int) -> np.ndarray:
        """Run `net` (list of 1×3×h×w -> 1×3×h×w) over overlapping tiles of H×W×3 frames; blended H×W×3 float32."""
        h, w = frames[0].shape[:2]
        if any(f.shape[:2] != (h, w) for f in frames):
            raise BracketError("HQ fusion: all frames must have the same size")
        tile = max(MULTIPLE, tile // MULTIPLE * MULTIPLE)
        hp, wp = math.ceil(h / MULTIPLE) * MULTIPLE, math.ceil(w / MULTIPLE) * MULTIPLE
        th, tw = min(tile, hp), min(tile, wp)
        ys, xs = tile_starts(hp, th, self.overlap), tile_starts(wp, tw, self.overlap)
        # preallocated accumulators: the only full-size buffers besides the caller's frames
        out = np.zeros((h, w, 3), np.float32)
        weight = np.zeros((h, w, 1), np.float32)
        total, done = len(ys) * len(xs), 0
        if progress is not None:
            progress(0.0)
        hooks = self._install_cancel_hooks(cancel)
        try:
            with torch.no_grad():
                for y0 in ys:
                    wy = raised_cosine(th, y0 > 0, y0 + th < hp, self.overlap)
                    for x0 in xs:
                        if cancel is not None and cancel():
                            raise Cancelled("HQ fusion cancelled")
                        wx = raised_cosine(tw, x0 > 0, x0 + tw < wp, self.overlap)
                        tensors = [
                            torch.from_numpy(np.ascontiguousarray(
                                _read_tile(f, y0, y0 + th, x0, x0 + tw).transpose(2, 0, 1), dtype=np.float32)
                            )[None].to(self.device)
                            for f in frames
                        ]
                        result = net(tensors)[0].permute(1, 2, 0).float().cpu().numpy()
                        vy, vx = min(th, h - y0), min(tw, w - x0)
                        wt = (wy[:vy, None] * wx[None, :vx])[..., None]
                        out[y0:y0 + vy, x0:x0 + vx] += result[:vy, :vx] * wt
                        weight[y0:y0 + vy, x0:x0 + vx] += wt
                        done += 1
                        if progress is not None:
                            progress(done / total)
        finally:
            for hook in hooks:
                hook.remove()
        out /= weight
        return np.clip(out, 0.0, 1.0, out=out)

    def _install_cancel_hooks(self, cancel: Cancel | None) -> list[torch.utils.hooks.RemovableHandle]:
        """Poll `cancel` before every convolution so a request stops a slow tile within a fraction of a second."""
        if cancel is None:
            return []

        def check(_module: nn.Module, _inputs: tuple) -> None:
            if cancel():
                raise Cancelled("HQ fusion cancelled")

        return [m.register_forward_pre_hook(check)
                for net in (self.phase1, self.phase2) for m in net.modules()
                if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
