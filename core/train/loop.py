"""The training machinery every trainer shares: arguments, set-up, the Adam loop with checkpoints and resume,
export and metrics.json with the exact command (docs/ARCHITECTURE.md, Training modules)."""

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
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from lutfuse.core.errors import LUTFuseError

LossFn = Callable[[Any], tuple[torch.Tensor, dict[str, float]]]   # batch -> (loss, named float terms)
Schedule = Callable[[int, int, float], float]                      # (step, steps, lr) -> lr of this step


def add_common_arguments(parser: argparse.ArgumentParser, *, out: str, steps: int, batch: int, crop: int,
                         lr: float) -> None:
    """Arguments every trainer takes, with the trainer's defaults."""
    parser.add_argument("--data", type=Path, default=os.environ.get("LUTFUSE_DATA"),
                        help="the shared data folder (brackets/, hdr/); default $LUTFUSE_DATA")
    parser.add_argument("--out", type=Path, default=Path(out), help="checkpoints, train.log, metrics.json")
    parser.add_argument("--steps", type=int, default=steps, help="optimiser steps in all")
    parser.add_argument("--batch", type=int, default=batch, help="crops per step")
    parser.add_argument("--crop", type=int, default=crop, help="square crop side in pixels")
    parser.add_argument("--lr", type=float, default=lr, help="Adam learning rate (the trainer sets the schedule)")
    parser.add_argument("--max-side", type=int, default=512, help="working resolution of the scenes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--checkpoint-every", type=int, default=100, help="steps between checkpoints")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt if present")
    parser.add_argument("--export", type=Path, default=None, help="write the final state_dict here")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")


def setup(args: argparse.Namespace, log: logging.Logger) -> torch.device:
    """Check --data, seed, threads, output folder and <out>/train.log; returns the device to train on."""
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


def train_dataset(args: argparse.Namespace, log: logging.Logger) -> torch.utils.data.Dataset:
    """Random crops of the train split (core.train.data), scenes cached beside the run folder."""
    from lutfuse.core.train import data

    scenes = data.load_scenes(args.data, "train", max_side=args.max_side, cache_dir=Path(args.out).parent / "cache")
    log.info("data: %d train scenes", len(scenes))
    return data.FusionDataset(scenes, crop=args.crop, seed=args.seed)


def batches(dataset: torch.utils.data.Dataset, batch: int, seed: int,
            collate: Callable[[list[dict]], Any]) -> Iterator[Any]:
    """Endless shuffled batches of a map-style dataset, put together by `collate`."""
    gen = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=True, num_workers=0,
                                         generator=gen, collate_fn=collate)
    while True:
        yield from loader


def train(args: argparse.Namespace, model: nn.Module, loss_fn: LossFn, stream: Callable[[int], Iterator[Any]], *,
          log: logging.Logger, schedule: Schedule, betas: tuple[float, float] = (0.9, 0.999),
          log_every: int = 25) -> dict:
    """Adam loop with a learning-rate schedule, checkpoints and resume. stream(start_step) gives the batches (seeded
    by the step, so a resumed run does not repeat the first ones). Returns a summary for metrics.json."""
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=args.lr, betas=betas)
    ckpt_path = args.out / "checkpoint.pt"
    start, history = 0, []
    if args.resume and ckpt_path.is_file():
        from lutfuse.core.weights import load_checkpoint

        ckpt = load_checkpoint(ckpt_path)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        start = int(ckpt["step"])
        history = [dict(zip(ckpt["history_keys"], row)) for row in ckpt["history"].tolist()]
        torch.set_rng_state(ckpt["torch_rng"])
        log.info("resumed at step %d", start)
    batches_ = stream(start)
    model.train()
    t0 = time.time()
    bar = tqdm(range(start, args.steps), initial=start, total=args.steps, desc=args.out.name, mininterval=10)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = schedule(step, args.steps, args.lr)
        loss, terms = loss_fn(next(batches_))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append({"step": step, "loss": float(loss.detach()), **terms})
        if (step + 1) % log_every == 0:
            recent = history[-log_every:]
            mean = {k: float(np.mean([h[k] for h in recent])) for k in recent[0] if k != "step"}
            log.info("step %d lr %.2e %s (%.2f s/step)", step + 1, schedule(step, args.steps, args.lr),
                     " ".join(f"{k} {v:.5f}" for k, v in mean.items()), (time.time() - t0) / (step + 1 - start))
            bar.set_postfix(loss=f"{mean['loss']:.4f}")
        if (step + 1) % args.checkpoint_every == 0 or step + 1 == args.steps:
            save_checkpoint(ckpt_path, model, opt, step + 1, history)
    model.eval()
    last = history[-100:]
    return {
        "steps": args.steps,
        "seconds_this_session": round(time.time() - t0, 1),
        "train_loss_terms_mean_last_100_steps": {k: float(np.mean([h[k] for h in last]))
                                                 for k in (last[0] if last else {}) if k != "step"},
    }


def save_checkpoint(path: Path, model: nn.Module, opt: torch.optim.Optimizer, step: int, history: list[dict]) -> None:
    """Model, optimiser, step, rng and loss history, written atomically."""
    keys = list(history[0]) if history else ["step", "loss"]
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step, "history_keys": keys,
                "history": torch.tensor([[h[k] for k in keys] for h in history], dtype=torch.float64),
                "torch_rng": torch.get_rng_state()}, tmp)
    os.replace(tmp, path)


def export(model: nn.Module, path: Path | None, log: logging.Logger) -> None:
    """Write the model's plain state_dict (CPU tensors) to `path` and its architecture to NAME.json beside it
    (core.weights.save_weights), atomically."""
    if path is None:
        return
    from lutfuse.core.weights import config_path, save_weights

    save_weights(model, path)
    log.info("exported %s and %s", path, config_path(path).name)


def write_metrics(args: argparse.Namespace, summary: dict, log: logging.Logger) -> None:
    """<out>/metrics.json with the exact command, the arguments and the results."""
    record = {"command": command_line(), "args": {k: str(v) for k, v in vars(args).items() if k != "func"}, **summary}
    (args.out / "metrics.json").write_text(json.dumps(record, indent=1))
    log.info("metrics: %s", json.dumps({k: v for k, v in summary.items() if k != "validation"}))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
