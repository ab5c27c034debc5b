"""`lutfuse train refine-phase2`: AMNet fusing (under, intermediate, over) against the dense-stack reference, with
phase 1 frozen (decoupled training) supplying the intermediate."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from core.hq import build_phase1
from core.models.refine import AMNet, Phase1UNet
from core.train import loop
from core.train.refine_losses import refine_loss
from core.train.refine_phase1 import add_refine_arguments, log, to_image, to_tensor, train_refine


class TwoPhase(nn.Module):
    """Frozen phase 1 feeding a trainable AMNet; only AMNet's parameters are optimised or saved."""

    def __init__(self, phase1: Phase1UNet, phase2: AMNet) -> None:
        super().__init__()
        self.phase1 = phase1.eval().requires_grad_(False)
        self.phase2 = phase2

    def train(self, mode: bool = True) -> TwoPhase:
        """Switch AMNet's mode; phase 1 stays in eval mode."""
        self.phase2.train(mode)
        return self

    def forward(self, under: torch.Tensor, over: torch.Tensor, middle: torch.Tensor | None = None) -> torch.Tensor:
        """under, over N×3×H×W in [0,1] (middle: a real middle frame instead of phase 1's) -> N×3×H×W in [0,1]."""
        if middle is None:
            with torch.no_grad():
                middle = self.phase1(under, over)
        return self.phase2(under, middle, over)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `lutfuse train refine-phase2`."""
    add_refine_arguments(parser, out="runs/refine_phase2", width=24, steps=1000, batch=4, crop=96, lr=5e-4)
    parser.add_argument("--phase1", type=Path, default=Path("resources/weights/refine_phase1.pt"),
                        help="trained phase-1 weights (frozen here)")
    parser.add_argument("--real-middle-prob", type=float, default=0.5,
                        help="chance that a crop from a 3-frame bracket gets its real middle frame as the "
                             "intermediate instead of phase 1's output")


def make_phase2_loss(real_middle_prob: float, seed: int):
    """Loss of the fused crop against the dense-stack reference. Crops from 3-frame brackets get their real middle
    frame as the intermediate with probability `real_middle_prob` (else phase 1's), so that AMNet learns both kinds
    of intermediate and the validation can measure which one serves a 3-frame bracket better."""
    gen = torch.Generator().manual_seed(seed + 1)

    def loss(model: TwoPhase, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        with torch.no_grad():
            middle = model.phase1(batch["under"], batch["over"])
        use_real = (batch["k"] >= 3) & (torch.rand(batch["k"].shape, generator=gen) < real_middle_prob)
        if bool(use_real.any()):
            middle = torch.where(use_real.view(-1, 1, 1, 1).to(middle.device), batch["middle"], middle)
        pred = model(batch["under"], batch["over"], middle)
        return refine_loss(pred, batch["reference"])

    return loss


def validate_phase2(model: TwoPhase, data_root: Path, device: torch.device, max_side: int = 512) -> dict:
    """Per validation case: HQ with phase 1's middle, HQ with the real middle frame (deployable only when the
    bracket has 3 frames; for 2-frame cases it is an oracle), and Mertens on the same inputs; means per k."""
    from core.classical import mertens
    from core.metrics import fusion_scores
    from core.train import data

    rows = []
    with torch.no_grad():
        for case in data.validation_cases(data_root, max_side=max_side):
            inputs, ref = case["inputs"], case["reference"]
            under, over = to_tensor(inputs[0], device), to_tensor(inputs[-1], device)
            row = {"key": case["key"], "k": int(len(inputs))}
            row["hq_generated_middle"] = fusion_scores(to_image(model(under, over)), inputs, ref)
            real = fusion_scores(to_image(model(under, over, to_tensor(case["middle"], device))), inputs, ref)
            row["hq_real_middle" if len(inputs) >= 3 else "hq_oracle_middle"] = real
            row["mertens"] = fusion_scores(mertens(inputs), inputs, ref)
            rows.append(row)
            log.info("val %s", json.dumps(row))
    means: dict[str, dict] = {}
    for group, members in (("all", rows), ("k2", [r for r in rows if r["k"] == 2]),
                           ("k3", [r for r in rows if r["k"] >= 3])):
        for method in ("hq_generated_middle", "hq_real_middle", "hq_oracle_middle", "mertens"):
            have = [r[method] for r in members if method in r]
            if have:
                means.setdefault(group, {})[method] = {
                    m: None if have[0][m] is None else float(np.mean([h[m] for h in have]))
                    for m in ("psnr", "ssim", "mef_ssim")} | {"n": len(have)}
    return {"cases": rows, "mean": means, "n_cases": len(rows)}


def run(args: argparse.Namespace) -> int:
    """Train phase 2 on top of frozen phase 1, validate, export; returns the exit status."""
    device = loop.setup(args, log)
    phase1 = build_phase1(torch.load(args.phase1, map_location="cpu", weights_only=True), args.phase1)
    model = TwoPhase(phase1, AMNet(width=args.width)).to(device)
    log.info("phase 2 width %d, %d parameters (phase 1 frozen: %d)", args.width, loop.count_parameters(model.phase2),
             sum(p.numel() for p in phase1.parameters()))
    summary = train_refine(args, model, make_phase2_loss(args.real_middle_prob, args.seed), device)
    summary["parameters"] = loop.count_parameters(model.phase2)
    summary["validation"] = validate_phase2(model, args.data, device, args.max_side)
    loop.export(model.phase2.state_dict(), args.export, log)
    loop.write_metrics(args, summary, log)
    print(json.dumps(summary["validation"]["mean"], indent=1))
    return 0
