"""`lutfuse train refine-phase1`: the intermediate-exposure generator, trained alone against REAL middle frames.

Also holds the loop machinery phase 2 reuses (arguments, checkpoints, schedule, metrics.json)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from core.models.refine import Phase1UNet, count_parameters
from core.train.refine_losses import refine_loss

log = logging.getLogger("lutfuse.refine")


# ---------------------------------------------------------------- shared by both phases

def add_common_arguments(parser: argparse.ArgumentParser, *, out: str, width: int, steps: int, batch: int,
                         crop: int, lr: float) -> None:
    """The arguments every refinement trainer takes (see docs/ARCHITECTURE.md, Training modules)."""
    parser.add_argument("--data", type=Path, default=os.environ.get("LUTFUSE_DATA"),
                        help="the shared data folder (brackets/, hdr/); default $LUTFUSE_DATA")
    parser.add_argument("--out", type=Path, default=Path(out), help="checkpoints, train.log, metrics.json")
    parser.add_argument("--steps", type=int, default=steps, help="optimiser steps in all")
    parser.add_argument("--batch", type=int, default=batch, help="crops per step")
    parser.add_argument("--crop", type=int, default=crop, help="square crop side in pixels")
    parser.add_argument("--lr", type=float, default=lr,
                        help="Adam learning rate (β1 0.5); constant for the first half, then linear decay to 0")
    parser.add_argument("--width", type=int, default=width, help="base channel width of the network")
    parser.add_argument("--max-side", type=int, default=512, help="working resolution of the training scenes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--checkpoint-every", type=int, default=100, help="steps between checkpoints")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt if present")
    parser.add_argument("--export", type=Path, default=None, help="write the final state_dict here")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")


def setup(args: argparse.Namespace) -> torch.device:
    """Seeds, threads, output folder and a log file; returns the device."""
    from core.errors import LUTFuseError

    if args.data is None or not (Path(args.data) / "brackets").is_dir():
        raise LUTFuseError(f"--data {args.data}: not the shared data folder (no brackets/ inside)")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(args.out / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.info("command: %s", command_line())
    return torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))


def command_line() -> str:
    """The exact command that started this process, shell-quoted."""
    argv = sys.argv[:]
    if argv and argv[0].endswith("lutfuse"):
        argv[0] = "lutfuse"
    return " ".join(shlex.quote(a) for a in argv)


def lr_at(step: int, steps: int, lr: float) -> float:
    """Constant for the first half, then linear decay to 0 (the thesis' 200 + 200 epochs, in steps)."""
    half = steps // 2
    return lr if step < half else lr * max(0.0, (steps - step) / max(1, steps - half))


def batches(dataset: torch.utils.data.Dataset, batch: int, seed: int) -> Iterator[dict]:
    """Endless shuffled batches (dicts of stacked tensors) from a map-style dataset."""
    gen = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=True,
                                         num_workers=0, generator=gen, collate_fn=collate)
    while True:
        yield from loader


def collate(items: list[dict]) -> dict:
    """Stack the (under, middle, over, reference) of items that may have 2 or 3 inputs -> dict of N×3×h×w."""
    return {
        "under": torch.stack([torch.as_tensor(it["inputs"][0]) for it in items]),
        "over": torch.stack([torch.as_tensor(it["inputs"][-1]) for it in items]),
        "middle": torch.stack([torch.as_tensor(it["middle"]) for it in items]),
        "reference": torch.stack([torch.as_tensor(it["reference"]) for it in items]),
        "k": torch.tensor([int(it["k"]) for it in items]),
    }


def make_dataset(args: argparse.Namespace) -> torch.utils.data.Dataset:
    """Training crops from the train split (core.train.data)."""
    from core.train import data

    scenes = data.load_scenes(args.data, "train", max_side=args.max_side,
                              cache_dir=Path(args.out).parent / "cache")
    log.info("train scenes: %d", len(scenes))
    return data.FusionDataset(scenes, crop=args.crop, seed=args.seed)


def train(args: argparse.Namespace, model: nn.Module, loss_fn: Callable[[nn.Module, dict], tuple], *,
          device: torch.device) -> dict:
    """Adam(β1 0.5) loop with checkpoints and resume; loss_fn(model, batch) -> (loss, terms). Returns a summary."""
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=args.lr, betas=(0.5, 0.999))
    ckpt_path = args.out / "checkpoint.pt"
    start, history = 0, []
    if args.resume and ckpt_path.is_file():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        start, history = int(ckpt["step"]), [dict(zip(ckpt["history_keys"], row)) for row in ckpt["history"].tolist()]
        torch.set_rng_state(ckpt["torch_rng"])
        log.info("resumed at step %d", start)
    dataset = make_dataset(args)
    # a resumed run sees a fresh data order seeded by the step, so it does not repeat the first batches
    stream = batches(dataset, args.batch, args.seed + start)
    model.train()
    t0 = time.time()
    bar = tqdm(range(start, args.steps), initial=start, total=args.steps, desc=args.out.name, mininterval=5)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.steps, args.lr)
        batch = {k: (v if k == "k" else v.to(device)) for k, v in next(stream).items()}
        loss, terms = loss_fn(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append({"step": step, "loss": float(loss.detach()), **terms})
        if (step + 1) % 20 == 0:
            recent = history[-20:]
            mean = {k: np.mean([h[k] for h in recent]) for k in recent[0] if k != "step"}
            log.info("step %d lr %.2e %s (%.2f s/step)", step + 1, lr_at(step, args.steps, args.lr),
                     " ".join(f"{k} {v:.4f}" for k, v in mean.items()), (time.time() - t0) / (step + 1 - start))
            bar.set_postfix(loss=f"{mean['loss']:.4f}")
        if (step + 1) % args.checkpoint_every == 0 or step + 1 == args.steps:
            save_checkpoint(ckpt_path, model, opt, step + 1, history)
    model.eval()
    last = history[-100:]
    return {
        "steps": args.steps,
        "seconds_this_session": round(time.time() - t0, 1),
        "final_train_loss_terms_mean_last_100": {k: float(np.mean([h[k] for h in last]))
                                                 for k in (last[0] if last else {}) if k != "step"},
    }


def save_checkpoint(path: Path, model: nn.Module, opt: torch.optim.Optimizer, step: int, history: list[dict]) -> None:
    """Model, optimiser, step, rng and loss history, written atomically."""
    keys = list(history[0]) if history else ["step", "loss"]
    tmp = path.with_suffix(".tmp")
    torch.save({
        "model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
        "history_keys": keys,
        "history": torch.tensor([[h[k] for k in keys] for h in history], dtype=torch.float64),
        "torch_rng": torch.get_rng_state(),
    }, tmp)
    os.replace(tmp, path)


def export(state: dict[str, torch.Tensor], path: Path | None) -> None:
    """Write a plain state_dict (CPU tensors) to `path`, atomically."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({k: v.detach().cpu().contiguous() for k, v in state.items()}, tmp)
    os.replace(tmp, path)
    log.info("exported %s", path)


def write_metrics(args: argparse.Namespace, summary: dict) -> None:
    """<out>/metrics.json with the exact command, arguments and results."""
    record = {"command": command_line(), "args": {k: str(v) for k, v in vars(args).items() if k != "func"},
              **summary}
    (args.out / "metrics.json").write_text(json.dumps(record, indent=1))
    log.info("metrics: %s", json.dumps(summary))


def to_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """H×W×3 float in [0,1] -> 1×3×H×W float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))[None].to(device)


def to_image(x: torch.Tensor) -> np.ndarray:
    """1×3×H×W tensor -> H×W×3 float32 numpy in [0,1]."""
    return x[0].detach().permute(1, 2, 0).clamp(0, 1).cpu().numpy().astype(np.float32)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two H×W×3 float images in [0,1]."""
    from core.metrics import psnr as metric

    return float(metric(a, b))


# ---------------------------------------------------------------- phase 1

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `lutfuse train refine-phase1`."""
    add_common_arguments(parser, out="runs/refine_phase1", width=16, steps=2000, batch=8, crop=128, lr=5e-4)


def phase1_loss(model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of the generated middle against the real middle exposure of the stack."""
    pred = model(batch["under"], batch["over"])
    loss, terms = refine_loss(pred, batch["middle"])
    return loss, terms


def validate_phase1(model: Phase1UNet, data_root: Path, device: torch.device, max_side: int = 512) -> dict:
    """PSNR of the generated middle vs the real one on every validation case, and of the plain mean of (under,
    over) as a trivial baseline."""
    from core.train import data

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
    device = setup(args)
    model = Phase1UNet(width=args.width).to(device)
    log.info("phase 1 width %d, %d parameters", args.width, count_parameters(model))
    summary = train(args, model, phase1_loss, device=device)
    summary["parameters"] = count_parameters(model)
    summary["validation"] = validate_phase1(model, args.data, device, args.max_side)
    export(model.state_dict(), args.export)
    write_metrics(args, summary)
    print(json.dumps({k: v for k, v in summary["validation"].items() if k != "cases"}, indent=1))
    return 0
