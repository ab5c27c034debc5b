"""`lutfuse train refine-phase2`: AMNet refining the base fusion of (under, intermediate, over) against the
dense-stack reference and for MEF-SSIM against its inputs, with phase 1 frozen (decoupled training) supplying the
intermediate."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from lutfuse.core.hq import HQFusion, load_phase1
from lutfuse.core.layout import to_image, to_tensor
from lutfuse.core.models.refine import AMNet, Phase1UNet
from lutfuse.core.train import loop
from lutfuse.core.train.refine_losses import mef_ssim, refine_loss
from lutfuse.core.train.refine_phase1 import add_refine_arguments, log, train_refine
from lutfuse.core.weights import shipped


class SceneBases:
    """Whole-scene planes phase 2 trains on, per (scene, under, over), made once and kept (float16): phase 1's
    middle and the two base fusions core.hq computes at inference, on the whole working-resolution scene as there
    (a crop's own Mertens would lack the scene's low frequencies)."""

    def __init__(self, scenes: list, phase1: Phase1UNet, device: torch.device) -> None:
        self.scenes, self.phase1, self.device = scenes, phase1, device
        self.memo: dict[tuple[int, int, int], dict[str, np.ndarray]] = {}

    def __call__(self, s: int, idx: list[int]) -> dict[str, np.ndarray]:
        """Planes H×W×3 for scene s with inputs idx: generated (phase 1's middle), base_generated (Mertens of
        under, generated, over), base_real (Mertens of under, real middle, over)."""
        from lutfuse.core.classical import mertens_low_memory as mertens  # what core.hq computes the base with
        from lutfuse.core.train.data import middle_index

        lo, hi = idx[0], idx[-1]
        planes = self.memo.get((s, lo, hi))
        if planes is None:
            frames = self.scenes[s].frames
            with torch.no_grad():
                gen = to_image(self.phase1(to_tensor(frames[lo], self.device), to_tensor(frames[hi], self.device)))
            planes = {"generated": gen, "base_generated": mertens([frames[lo], gen, frames[hi]]),
                      "base_real": mertens([frames[lo], frames[middle_index(idx)], frames[hi]])}
            planes = {k: v.astype(np.float16) for k, v in planes.items()}
            self.memo[(s, lo, hi)] = planes
        return planes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `lutfuse train refine-phase2`."""
    add_refine_arguments(parser, out="runs/refine_phase2", width=24, steps=1000, batch=4, crop=96, lr=5e-4)
    parser.add_argument("--phase1", type=Path, default=shipped("HQ phase 1"),
                        help="trained phase-1 weights (frozen here)")
    parser.add_argument("--real-middle-prob", type=float, default=0.5,
                        help="chance that a crop from a 3-frame bracket gets its real middle frame as the "
                             "intermediate instead of phase 1's output")
    parser.add_argument("--mef-weight", type=float, default=1.0,
                        help="weight of (1 - MEF-SSIM against the inputs) in the loss")


def make_phase2_loss(real_middle_prob: float, mef_weight: float, seed: int):
    """Loss of the fused crop against the dense-stack reference plus mef_weight·(1 - MEF-SSIM against its inputs).
    Crops from 3-frame brackets get their real middle frame (and the base made with it) with probability
    `real_middle_prob`, else phase 1's, so that AMNet learns both kinds of intermediate."""
    gen = torch.Generator().manual_seed(seed + 1)

    def loss(model: AMNet, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        real = (batch["k"] >= 3) & (torch.rand(batch["k"].shape, generator=gen) < real_middle_prob)
        pick = real.view(-1, 1, 1, 1).to(batch["under"].device)
        middle = torch.where(pick, batch["middle"], batch["generated"])
        base = torch.where(pick, batch["base_real"], batch["base_generated"])
        pred = model(batch["under"], middle, batch["over"], base)
        total, terms = refine_loss(pred, batch["reference"])
        if mef_weight > 0:
            # scored against what the method was given: (under, over), or (under, middle, over) with a real middle
            scores = []
            for group, sources in ((real, (batch["under"], batch["middle"], batch["over"])),
                                   (~real, (batch["under"], batch["over"]))):
                if bool(group.any()):
                    sel = group.to(pred.device)
                    scores.append(mef_ssim(torch.stack([s[sel] for s in sources], 1), pred[sel]))
            mef = 1 - torch.cat(scores).mean()
            total = total + mef_weight * mef.float()
            terms["mef_ssim"] = float(mef.detach())
        return total, terms

    return loss


def validate_phase2(phase1: Phase1UNet, phase2: AMNet, data_root: Path, device: torch.device,
                    max_side: int = 512) -> dict:
    """Per validation case, through core.hq exactly as at inference: HQ with phase 1's middle, HQ with the real
    middle frame (deployable only when the bracket has 3 frames; for 2-frame cases it is an oracle), and Mertens
    on the same inputs; means per k."""
    from lutfuse.core.classical import mertens
    from lutfuse.core.metrics import fusion_scores
    from lutfuse.core.train import data

    generated = HQFusion(device=str(device), middle="generated", models=(phase1, phase2))
    real_middle = HQFusion(device=str(device), middle="real", models=(phase1, phase2))
    rows = []
    for case in data.validation_cases(data_root, max_side=max_side):
        inputs, ref = case["inputs"], case["reference"]
        row = {"key": case["key"], "k": int(len(inputs))}
        row["hq_generated_middle"] = fusion_scores(generated.fuse(inputs), inputs, ref)
        with_real = real_middle.fuse(np.stack([inputs[0], case["middle"], inputs[-1]]))
        row["hq_real_middle" if len(inputs) >= 3 else "hq_oracle_middle"] = fusion_scores(with_real, inputs, ref)
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

    phase1 = load_phase1(args.phase1).to(device)
    phase1.requires_grad_(False)
    model = AMNet(width=args.width).to(device)
    log.info("phase 2 width %d, %d parameters (phase 1 frozen: %d)", args.width, loop.count_parameters(model),
             sum(p.numel() for p in phase1.parameters()))
    dataset = loop.train_dataset(args, log)
    dataset.extras = SceneBases(dataset.scenes, phase1, device)  # type: ignore[attr-defined]
    summary = train_refine(args, model, make_phase2_loss(args.real_middle_prob, args.mef_weight, args.seed), device,
                           dataset)
    summary["parameters"] = loop.count_parameters(model)
    summary["validation"] = validate_phase2(phase1, model, args.data, device, args.max_side)
    loop.export(model, args.export, log)
    loop.write_metrics(args, summary, log)
    print(json.dumps(summary["validation"]["mean"], indent=1))
    return 0
