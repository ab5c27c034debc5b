"""`lutfuse train refine-phase1`: the intermediate-exposure generator, trained alone against REAL middle frames.

Also holds what phase 2 shares with it: the width argument, the schedule, batches of (under, middle, over,
reference) crops, tensor conversions."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lutfuse.core.layout import to_image, to_tensor
from lutfuse.core.models.refine import Phase1UNet
from lutfuse.core.train import loop
from lutfuse.core.train.refine_losses import refine_loss

log = logging.getLogger("lutfuse.refine")


# ---------------------------------------------------------------- shared by both phases

def add_refine_arguments(parser: argparse.ArgumentParser, *, out: str, width: int, steps: int, batch: int,
                         crop: int, lr: float) -> None:
    """The common trainer arguments plus the network width."""
    loop.add_common_arguments(parser, out=out, steps=steps, batch=batch, crop=crop, lr=lr)
    parser.add_argument("--width", type=int, default=width, help="base channel width of the network")


def lr_at(step: int, steps: int, lr: float) -> float:
    """Constant for the first half, then linear decay to 0 (the thesis' 200 + 200 epochs, in steps)."""
    half = steps // 2
    return lr if step < half else lr * max(0.0, (steps - step) / max(1, steps - half))


def collate(items: list[dict]) -> dict:
    """Stack the (under, middle, over, reference, and any extra planes) of items that may have 2 or 3 inputs ->
    dict of N×3×h×w, plus k (N,)."""
    planes = [name for name in items[0] if name not in ("inputs", "k")]
    return {
        "under": torch.stack([torch.as_tensor(it["inputs"][0]) for it in items]),
        "over": torch.stack([torch.as_tensor(it["inputs"][-1]) for it in items]),
        **{name: torch.stack([torch.as_tensor(it[name]) for it in items]) for name in planes},
        "k": torch.tensor([int(it["k"]) for it in items]),
    }


def train_refine(args: argparse.Namespace, model: nn.Module, loss_fn: Callable[[nn.Module, dict], tuple],
                 device: torch.device, dataset: torch.utils.data.Dataset | None = None) -> dict:
    """The shared loop with Adam(β1 0.5) and the thesis' schedule on (under, middle, over, reference) crops (of
    the train split unless a dataset is given)."""
    if dataset is None:
        dataset = loop.train_dataset(args, log)

    def stream(start: int) -> Iterator[dict]:
        for batch in loop.batches(dataset, args.batch, args.seed + start, collate):
            yield {k: (v if k == "k" else v.to(device)) for k, v in batch.items()}

    return loop.train(args, model, lambda batch: loss_fn(model, batch), stream, log=log, schedule=lr_at,
                      betas=(0.5, 0.999), log_every=20)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two H×W×3 float images in [0,1]."""
    from lutfuse.core.metrics import psnr as metric

    return float(metric(a, b))


# ---------------------------------------------------------------- phase 1

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `lutfuse train refine-phase1`."""
    add_refine_arguments(parser, out="runs/refine_phase1", width=16, steps=2000, batch=8, crop=128, lr=5e-4)


def phase1_loss(model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of the generated middle against the real middle exposure of the stack."""
    pred = model(batch["under"], batch["over"])
    loss, terms = refine_loss(pred, batch["middle"])
    return loss, terms


def validate_phase1(model: Phase1UNet, data_root: Path, device: torch.device, max_side: int = 512) -> dict:
    """PSNR of the generated middle vs the real one on every validation case, and of the plain mean of (under,
    over) as a trivial baseline."""
    from lutfuse.core.train import data

    rows = []
    seen = set()
    with torch.no_grad():
        for case in data.validation_cases(data_root, max_side=max_side):
            if case["key"] in seen:   # k=2 and k=3 cases of a scene share (under, over, middle)
                continue
            seen.add(case["key"])
            under, over, middle = case["inputs"][0], case["inputs"][-1], case["middle"]
            gen = to_image(model(to_tensor(under, device), to_tensor(over, device)))
            rows.append({"key": case["key"], "psnr_generated": psnr(gen, middle),
                         "psnr_mean_of_inputs": psnr((under + over) / 2, middle)})
    return {
        "cases": rows,
        "mean_psnr_generated_vs_real_middle": float(np.mean([r["psnr_generated"] for r in rows])),
        "mean_psnr_mean_of_inputs_vs_real_middle": float(np.mean([r["psnr_mean_of_inputs"] for r in rows])),
    }


def run(args: argparse.Namespace) -> int:
    """Train phase 1, validate, export; returns the exit status."""
    device = loop.setup(args, log)
    model = Phase1UNet(width=args.width).to(device)
    log.info("phase 1 width %d, %d parameters", args.width, loop.count_parameters(model))
    summary = train_refine(args, model, phase1_loss, device)
    summary["parameters"] = loop.count_parameters(model)
    summary["validation"] = validate_phase1(model, args.data, device, args.max_side)
    loop.export(model, args.export, log)
    loop.write_metrics(args, summary, log)
    print(json.dumps({k: v for k, v in summary["validation"].items() if k != "cases"}, indent=1))
    return 0
