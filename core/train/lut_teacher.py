"""`lutfuse train teacher`: prior grid per exposure + weighted fusion, trained on L1 + (1−SSIM) of LUT(mean).

Also holds what the student trainer shares with it: arguments, batches grouped by K, the cosine schedule and the
validation of LUT(mean) on data.validation_cases."""

from __future__ import annotations

import argparse
import json
import logging
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lutfuse.core.base import BASES, make_base
from lutfuse.core.models.lut_teacher import LUTTeacher
from lutfuse.core.train import loop, losses

log = logging.getLogger("lutfuse.lut")

Group = dict[str, torch.Tensor]   # frames N×K×3×h×w, base N×3×h×w (core.base of the frames), reference N×3×h×w


# ---------------------------------------------------------------- shared with the student trainer

def add_lut_arguments(parser: argparse.ArgumentParser, *, out: str, steps: int, lr: float) -> None:
    """Arguments every LUT trainer takes: the common ones plus the loss resolution and --no-validate."""
    loop.add_common_arguments(parser, out=out, steps=steps, batch=8, crop=256, lr=lr)
    parser.add_argument("--loss-side", type=int, default=128,
                        help="crops are area-downsampled to this side for the image losses (a LUT is per pixel)")
    parser.add_argument("--no-validate", action="store_true", help="skip the validation pass at the end")
    parser.add_argument("--colour", type=float, default=0.0,
                        help="weight of the CIELAB a*b* colour term (losses.colour) against the reference")
    parser.add_argument("--base", choices=BASES, default="mean",
                        help="the base image the LUT applies to (core.base; the shipped engine uses chroma)")
    parser.add_argument("--init", type=Path, default=None,
                        help="start from these weights (a fine-tune: fresh optimiser and schedule)")


def lr_at(step: int, steps: int, lr: float) -> float:
    """Cosine decay from lr to 5 % of lr over the run."""
    return lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / max(1, steps))))


def group_batch(items: list[dict], loss_side: int | None = None) -> list[Group]:
    """FusionDataset items (inputs K×3×h×w, reference 3×h×w, optional base 3×h×w) -> one Group per K; the base
    is the item's own (computed on the whole scene, then cropped) or else the per-pixel mean."""
    groups = []
    for k in sorted({int(it["k"]) for it in items}):
        frames = torch.stack([torch.as_tensor(it["inputs"]).float() for it in items if int(it["k"]) == k])
        ref = torch.stack([torch.as_tensor(it["reference"]).float() for it in items if int(it["k"]) == k])
        if all("base" in it for it in items):
            base = torch.stack([torch.as_tensor(it["base"]).float() for it in items if int(it["k"]) == k])
        else:
            base = frames.mean(dim=1)
        if loss_side and base.shape[-1] > loss_side:
            f = base.shape[-1] // loss_side
            base, ref = F.avg_pool2d(base, f), F.avg_pool2d(ref, f)
        groups.append({"frames": frames, "base": base, "reference": ref})
    return groups


def train_lut(args: argparse.Namespace, model: nn.Module, loss_fn: loop.LossFn) -> dict:
    """The shared loop on batches of train crops grouped by K, cosine schedule; returns the summary."""
    dataset = loop.train_dataset(args, log)
    kind = getattr(args, "base", "mean")
    if kind != "mean":
        # the base of the whole scene, cropped like the frames: its low-resolution weights see the whole picture,
        # exactly as the engine's do
        dataset.extras = lambda s, idx: {"base": make_base(dataset.scenes[s].frames[idx], kind)}  # type: ignore[attr-defined]

    def stream(start: int) -> Iterator[list[Group]]:
        return loop.batches(dataset, args.batch, args.seed + start, lambda items: group_batch(items, args.loss_side))

    return loop.train(args, model, loss_fn, stream, log=log, schedule=lr_at)


VAL_METRICS = ("psnr", "ssim", "mef_ssim", "chroma", "de00")


def _case_scores(out: np.ndarray, inputs: np.ndarray, reference: np.ndarray, merged: np.ndarray,
                 mask: np.ndarray) -> dict[str, float]:
    """fusion_scores plus colour: chroma ratio to Mertens of the inputs (well-exposed pixels) and median CIEDE2000
    against the reference (core.metrics)."""
    from lutfuse.core.metrics import chroma_ratio, fusion_scores, median_ciede2000

    out = np.clip(out, 0.0, 1.0)
    return fusion_scores(out, inputs, reference) | {"chroma": chroma_ratio(out, merged, mask),  # type: ignore[arg-type]
                                                     "de00": median_ciede2000(out, reference)}


def validate(args: argparse.Namespace, lut_fns: dict[str, Callable[[torch.Tensor], np.ndarray]]) -> dict:
    """Mean scores over data.validation_cases of LUT(base) for each named lut_fn (1×K×3×H×W -> G×G×G×3),
    plus the identity (the base itself) as the floor; per-case rows under "cases". Metrics: PSNR, SSIM,
    MEF-SSIM, chroma (ratio to Mertens of the inputs; geometric mean over cases) and de00 (median CIEDE2000
    against the reference; mean over cases)."""
    from lutfuse.core.classical import mertens
    from lutfuse.core.lut import apply_lut
    from lutfuse.core.metrics import well_exposed
    from lutfuse.core.train import data

    rows: list[dict] = []
    with torch.no_grad():
        for case in data.validation_cases(args.data, max_side=args.max_side, cache_dir=Path(args.out).parent / "cache"):
            inputs = np.asarray(case["inputs"], np.float32)
            base = make_base(inputs, getattr(args, "base", "mean"))
            merged = mertens(inputs)
            mask = well_exposed(merged)
            frames = torch.from_numpy(inputs).permute(0, 3, 1, 2)[None]
            row = {"key": case["key"], "k": int(inputs.shape[0]),
                   "identity": _case_scores(base, inputs, case["reference"], merged, mask)}
            for name, fn in lut_fns.items():
                row[name] = _case_scores(apply_lut(base, fn(frames)), inputs, case["reference"], merged, mask)  # type: ignore[arg-type]
            rows.append(row)
    names = ["identity", *lut_fns]

    def agg(sub: list[dict], name: str, m: str) -> float:
        vals = [r[name][m] for r in sub]
        return float(np.exp(np.mean(np.log(np.maximum(vals, 1e-9))))) if m == "chroma" else float(np.mean(vals))

    means = {name: {m: agg(rows, name, m) for m in VAL_METRICS} for name in names}
    by_k = {f"k={k}": {name: {m: agg([r for r in rows if r["k"] == k], name, m) for m in VAL_METRICS}
                       for name in names}
            for k in sorted({r["k"] for r in rows})}
    log.info("validation means: %s", json.dumps(means))
    return {"n_cases": len(rows), "mean": means, "mean_by_k": by_k, "cases": rows}


# ---------------------------------------------------------------- the teacher

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `lutfuse train teacher`."""
    add_lut_arguments(parser, out="runs/lut_teacher", steps=3000, lr=1e-3)
    parser.add_argument("--tv", type=float, default=1e-4, help="weight of the TV smoothness of the fused grid")
    parser.add_argument("--mono", type=float, default=10.0, help="weight of the monotonicity of the fused grid")


def init_weights(model: nn.Module, args: argparse.Namespace) -> None:
    """Load --init weights into the model (strict), when given."""
    if getattr(args, "init", None) is not None:
        from lutfuse.core.weights import load_into, load_state_dict

        load_into(model, load_state_dict(args.init, "--init"), args.init, "--init")
        log.info("initialised from %s", args.init)


def teacher_loss(model: LUTTeacher, groups: list[Group], tv: float, mono: float, colour: float = 0.0
                 ) -> tuple[torch.Tensor, dict[str, float]]:
    """L1 + (1−SSIM) + colour·(CIELAB a*b* term) of the fused LUT on the mean against the reference, + tv·TV +
    mono·monotonicity of the grid."""
    total, n_all = 0.0, sum(len(g["base"]) for g in groups)
    terms = {"l1": 0.0, "ssim_loss": 0.0, "colour": 0.0, "tv": 0.0, "mono": 0.0}
    for g in groups:
        lut = model.fuse(g["frames"])
        out = losses.apply_luts(lut, g["base"])
        parts = {"l1": losses.l1(out, g["reference"]), "ssim_loss": losses.ssim_loss(out, g["reference"]),
                 "colour": losses.colour(out, g["reference"]),
                "tv": losses.smoothness(lut), "mono": losses.monotonicity(lut)}
        w = len(g["base"]) / n_all
        total = total + w * (parts["l1"] + parts["ssim_loss"] + colour * parts["colour"] + tv * parts["tv"]  # type: ignore[assignment]
                             + mono * parts["mono"])
        for k, v in parts.items():
            terms[k] += w * float(v.detach())
    return total, terms  # type: ignore[return-value]


def run(args: argparse.Namespace) -> int:
    """Train the teacher, validate, export, write metrics.json; returns the exit status."""
    loop.setup(args, log)
    model = LUTTeacher()
    log.info("LUT teacher: %d parameters", loop.count_parameters(model))
    init_weights(model, args)
    summary = train_lut(args, model, lambda groups: teacher_loss(model, groups, args.tv, args.mono, args.colour))
    summary["parameters"] = loop.count_parameters(model)
    loop.export(model, args.export, log)
    if not args.no_validate:
        summary["validation"] = validate(args, {"teacher": lambda f: model.fuse(f)[0].clamp(0, 1).numpy()})
        print(json.dumps(summary["validation"]["mean"], indent=1))
    loop.write_metrics(args, summary, log)
    return 0
