"""`lutfuse train teacher`: prior grid per exposure + weighted fusion, trained on L1 + (1−SSIM) of LUT(mean).

Also holds the loop machinery the student trainer reuses (arguments, data batches grouped by K, checkpoints
with resume, validation on data.validation_cases, metrics.json with the exact command, export)."""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from core.models.lut_teacher import LUTTeacher
from core.train import losses

log = logging.getLogger("lutfuse.lut")

Group = dict[str, torch.Tensor]   # frames N×K×3×h×w, base N×3×h×w (mean of frames), reference N×3×h×w


# ---------------------------------------------------------------- machinery shared with the student trainer

def add_common_arguments(parser: argparse.ArgumentParser, *, out: str, steps: int, lr: float) -> None:
    """Arguments every LUT trainer takes (docs/ARCHITECTURE.md, Training modules)."""
    parser.add_argument("--data", type=Path, default=os.environ.get("LUTFUSE_DATA"),
                        help="the shared data folder (brackets/, hdr/); default $LUTFUSE_DATA")
    parser.add_argument("--out", type=Path, default=Path(out), help="checkpoints, train.log, metrics.json")
    parser.add_argument("--steps", type=int, default=steps, help="optimiser steps in all")
    parser.add_argument("--batch", type=int, default=8, help="crops per step (k=2 and k=3 mixed)")
    parser.add_argument("--crop", type=int, default=256, help="square crop side in pixels")
    parser.add_argument("--loss-side", type=int, default=128,
                        help="crops are area-downsampled to this side for the image losses (a LUT is per pixel)")
    parser.add_argument("--lr", type=float, default=lr, help="Adam learning rate; cosine decay to 5%% of it")
    parser.add_argument("--max-side", type=int, default=512, help="working resolution of the scenes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--checkpoint-every", type=int, default=100, help="steps between checkpoints")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt if present")
    parser.add_argument("--export", type=Path, default=None, help="write the final state_dict here")
    parser.add_argument("--no-validate", action="store_true", help="skip the validation pass at the end")


def setup(args: argparse.Namespace) -> None:
    """Seeds, threads, output folder and <out>/train.log."""
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


def command_line() -> str:
    """The exact command that started this process, shell-quoted."""
    argv = sys.argv[:]
    if argv and argv[0].endswith("lutfuse"):
        argv[0] = "lutfuse"
    return " ".join(shlex.quote(a) for a in argv)


def lr_at(step: int, steps: int, lr: float) -> float:
    """Cosine decay from lr to 5 % of lr over the run."""
    return lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / max(1, steps))))


def group_batch(items: list[dict], loss_side: int | None = None) -> list[Group]:
    """FusionDataset items (inputs K×3×h×w, reference 3×h×w) -> one Group per K, base = per-pixel mean."""
    groups = []
    for k in sorted({int(it["k"]) for it in items}):
        frames = torch.stack([torch.as_tensor(it["inputs"]).float() for it in items if int(it["k"]) == k])
        ref = torch.stack([torch.as_tensor(it["reference"]).float() for it in items if int(it["k"]) == k])
        base = frames.mean(dim=1)
        if loss_side and base.shape[-1] > loss_side:
            f = base.shape[-1] // loss_side
            base, ref = F.avg_pool2d(base, f), F.avg_pool2d(ref, f)
        groups.append({"frames": frames, "base": base, "reference": ref})
    return groups


def batches(dataset: torch.utils.data.Dataset, batch: int, seed: int, loss_side: int | None) -> Iterator[list[Group]]:
    """Endless shuffled batches of a map-style dataset, grouped by K."""
    gen = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=True, num_workers=0,
                                         generator=gen, collate_fn=lambda items: group_batch(items, loss_side))
    while True:
        yield from loader


STANDIN_VAL_EVERY = 5   # stand-in split: every 5th scene (sorted keys) is validation


class StandInScene:
    """One dense real stack at working resolution, with its Mertens-of-all-frames reference."""

    def __init__(self, key: str, frames: np.ndarray) -> None:
        from core.classical import mertens

        self.key, self.frames = key, frames                                    # N×H×W×3 float32, darkest first
        self.reference = np.clip(mertens(frames), 0.0, 1.0).astype(np.float32)  # H×W×3


def standin_scenes(data_root: Path, split: str, max_side: int = 512) -> list[StandInScene]:
    """Stand-in for data.load_scenes (used only while core.train.data is absent): the brackets with ≥ 5 frames
    (hdrps, forth), split by scene, every STANDIN_VAL_EVERY-th sorted key to validation."""
    import cv2

    manifest = json.loads((Path(data_root) / "brackets" / "manifest.json").read_text())
    keys = sorted(f"{m['source']}/{m['scene']}" for m in manifest if m["frames"] >= 5)
    keys = [k for i, k in enumerate(keys) if (i % STANDIN_VAL_EVERY == 0) == (split == "val")]
    scenes = []
    for key in keys:
        paths = sorted(p for p in (Path(data_root) / "brackets" / key).iterdir() if p.suffix.lower() in {".png", ".jpg"})
        frames = []
        for p in paths:
            im = cv2.cvtColor(cv2.imread(str(p), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB).astype(np.float32) / 255
            f = min(1.0, max_side / max(im.shape[:2]))
            if f < 1.0:
                im = cv2.resize(im, (round(im.shape[1] * f), round(im.shape[0] * f)), interpolation=cv2.INTER_AREA)
            frames.append(im)
        scenes.append(StandInScene(key, np.stack(frames)))
    return scenes


def standin_inputs(n: int, k: int, rng: np.random.Generator | None) -> list[int]:
    """Indices of k ∈ {2, 3} inputs of an n-frame stack: an under and an over frame (±up to 1 step from the
    extremes when rng is given) and for k=3 the frame halfway between them."""
    lo = int(rng.integers(0, 2)) if rng is not None else 0
    hi = n - 1 - (int(rng.integers(0, 2)) if rng is not None else 0)
    return [lo, hi] if k == 2 else [lo, (lo + hi) // 2, hi]


class StandInDataset(torch.utils.data.Dataset):
    """Stand-in for data.FusionDataset: random square crops, flips, k ∈ {2, 3}; items as in the contract."""

    def __init__(self, scenes: list[StandInScene], crop: int = 256, seed: int = 0, per_scene: int = 50) -> None:
        self.scenes, self.crop, self.per_scene = scenes, crop, per_scene
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.scenes) * self.per_scene

    def __getitem__(self, i: int) -> dict:
        sc, rng = self.scenes[i % len(self.scenes)], self.rng
        k = int(rng.integers(2, 4))
        idx = standin_inputs(len(sc.frames), k, rng)
        h, w = sc.frames.shape[1:3]
        c = min(self.crop, h, w)
        y, x = int(rng.integers(0, h - c + 1)), int(rng.integers(0, w - c + 1))
        frames = sc.frames[idx, y:y + c, x:x + c]
        ref = sc.reference[y:y + c, x:x + c]
        mid = sc.frames[len(sc.frames) // 2, y:y + c, x:x + c]
        if rng.random() < 0.5:
            frames, ref, mid = frames[:, :, ::-1], ref[:, ::-1], mid[:, ::-1]
        chw = lambda a: torch.from_numpy(np.ascontiguousarray(np.moveaxis(a, -1, -3)))  # noqa: E731
        return {"inputs": chw(frames), "reference": chw(ref), "middle": chw(mid), "k": k}


def standin_validation_cases(data_root: Path, max_side: int = 512) -> list[dict]:
    """Stand-in for data.validation_cases: each validation scene with k=2 (extremes) and k=3 (+ middle)."""
    cases = []
    for sc in standin_scenes(data_root, "val", max_side):
        for k in (2, 3):
            idx = standin_inputs(len(sc.frames), k, None)
            cases.append({"key": sc.key, "inputs": sc.frames[idx], "reference": sc.reference,
                          "middle": sc.frames[len(sc.frames) // 2]})
    return cases


def data_source() -> str:
    """Which data code the trainers use: 'core.train.data' when it exists, else 'stand-in'."""
    import importlib

    try:
        importlib.import_module("core.train.data")
    except ModuleNotFoundError as exc:
        if exc.name != "core.train.data":
            raise
        return "stand-in"
    return "core.train.data"


def make_dataset(args: argparse.Namespace) -> torch.utils.data.Dataset:
    """Training crops from the train split, k ∈ {2, 3} (core.train.data, or the stand-in while it is absent)."""
    if data_source() == "stand-in":
        scenes = standin_scenes(args.data, "train", args.max_side)
        log.info("data: stand-in loader, %d train scenes", len(scenes))
        return StandInDataset(scenes, crop=args.crop, seed=args.seed)
    from core.train import data

    scenes = data.load_scenes(args.data, "train", max_side=args.max_side, cache_dir=Path(args.out).parent / "cache")
    log.info("data: core.train.data, %d train scenes", len(scenes))
    return data.FusionDataset(scenes, crop=args.crop, seed=args.seed)


def validation_cases(args: argparse.Namespace) -> list[dict]:
    """data.validation_cases, or the stand-in's while core.train.data is absent."""
    if data_source() == "stand-in":
        return standin_validation_cases(args.data, args.max_side)
    from core.train import data

    return data.validation_cases(args.data, max_side=args.max_side)


LossFn = Callable[[list[Group]], tuple[torch.Tensor, dict[str, float]]]


def train(args: argparse.Namespace, model: nn.Module, loss_fn: LossFn,
          dataset: torch.utils.data.Dataset | None = None) -> dict:
    """Adam loop with cosine decay, checkpoints and resume; loss_fn(groups) -> (loss, terms). Returns a summary."""
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=args.lr)
    ckpt_path = args.out / "checkpoint.pt"
    start, history = 0, []
    if args.resume and ckpt_path.is_file():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        start = int(ckpt["step"])
        history = [dict(zip(ckpt["history_keys"], row)) for row in ckpt["history"].tolist()]
        torch.set_rng_state(ckpt["torch_rng"])
        log.info("resumed at step %d", start)
    dataset = dataset if dataset is not None else make_dataset(args)
    # a resumed run sees a data order seeded by the step, so it does not repeat the first batches
    stream = batches(dataset, args.batch, args.seed + start, args.loss_side)
    model.train()
    t0 = time.time()
    bar = tqdm(range(start, args.steps), initial=start, total=args.steps, desc=args.out.name, mininterval=10)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.steps, args.lr)
        loss, terms = loss_fn(next(stream))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append({"step": step, "loss": float(loss.detach()), **terms})
        if (step + 1) % 25 == 0:
            recent = history[-25:]
            mean = {k: float(np.mean([h[k] for h in recent])) for k in recent[0] if k != "step"}
            log.info("step %d lr %.2e %s (%.2f s/step)", step + 1, lr_at(step, args.steps, args.lr),
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


def export(model: nn.Module, path: Path | None) -> None:
    """Write the plain state_dict (CPU tensors) to `path`, atomically."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, tmp)
    os.replace(tmp, path)
    log.info("exported %s", path)


def write_metrics(args: argparse.Namespace, summary: dict) -> None:
    """<out>/metrics.json with the exact command, the arguments and the results."""
    record = {"command": command_line(), "args": {k: str(v) for k, v in vars(args).items() if k != "func"}, **summary}
    (args.out / "metrics.json").write_text(json.dumps(record, indent=1))
    log.info("metrics: %s", json.dumps({k: v for k, v in summary.items() if k != "validation"}))
    if "validation" in summary:
        log.info("validation means: %s", json.dumps(summary["validation"]["mean"]))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def image_scores(case: dict, fused: np.ndarray) -> dict[str, float]:
    """PSNR/SSIM of fused (H×W×3 in [0,1]) vs the case's reference and MEF-SSIM vs its inputs (core.metrics)."""
    from core import metrics

    fused = np.clip(fused, 0.0, 1.0).astype(np.float32)
    return {"psnr": float(metrics.psnr(fused, case["reference"])), "ssim": float(metrics.ssim(fused, case["reference"])),
            "mef_ssim": float(metrics.mef_ssim(list(case["inputs"]), fused))}


def validate(args: argparse.Namespace, lut_fns: dict[str, Callable[[torch.Tensor], np.ndarray]]) -> dict:
    """Mean scores over data.validation_cases of LUT(mean) for each named lut_fn (1×K×3×H×W -> G×G×G×3),
    plus the identity (the plain mean) as the floor; per-case rows under "cases"."""
    from core.lut import apply_lut

    rows: list[dict] = []
    with torch.no_grad():
        for case in validation_cases(args):
            inputs = np.asarray(case["inputs"], np.float32)
            base = inputs.mean(axis=0)
            frames = torch.from_numpy(inputs).permute(0, 3, 1, 2)[None]
            row = {"key": case["key"], "k": int(inputs.shape[0]), "identity": image_scores(case, base)}
            for name, fn in lut_fns.items():
                row[name] = image_scores(case, apply_lut(base, fn(frames)))
            rows.append(row)
    names = ["identity", *lut_fns]
    means = {name: {m: float(np.mean([r[name][m] for r in rows])) for m in ("psnr", "ssim", "mef_ssim")}
             for name in names}
    by_k = {f"k={k}": {name: {m: float(np.mean([r[name][m] for r in rows if r["k"] == k]))
                              for m in ("psnr", "ssim", "mef_ssim")} for name in names}
            for k in sorted({r["k"] for r in rows})}
    return {"data": data_source(), "n_cases": len(rows), "mean": means, "mean_by_k": by_k, "cases": rows}


# ---------------------------------------------------------------- the teacher

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `lutfuse train teacher`."""
    add_common_arguments(parser, out="runs/lut_teacher", steps=3000, lr=1e-3)
    parser.add_argument("--tv", type=float, default=1e-4, help="weight of the TV smoothness of the fused grid")
    parser.add_argument("--mono", type=float, default=10.0, help="weight of the monotonicity of the fused grid")


def teacher_loss(model: LUTTeacher, groups: list[Group], tv: float, mono: float) -> tuple[torch.Tensor, dict[str, float]]:
    """L1 + (1−SSIM) of the fused LUT on the mean against the reference, + tv·TV + mono·monotonicity of the grid."""
    total, terms, n_all = 0.0, {"l1": 0.0, "ssim_loss": 0.0, "tv": 0.0, "mono": 0.0}, sum(len(g["base"]) for g in groups)
    for g in groups:
        lut = model.fuse(g["frames"])
        out = losses.apply_luts(lut, g["base"])
        parts = {"l1": losses.l1(out, g["reference"]), "ssim_loss": losses.ssim_loss(out, g["reference"]),
                 "tv": losses.smoothness(lut), "mono": losses.monotonicity(lut)}
        w = len(g["base"]) / n_all
        total = total + w * (parts["l1"] + parts["ssim_loss"] + tv * parts["tv"] + mono * parts["mono"])
        for k, v in parts.items():
            terms[k] += w * float(v.detach())
    return total, terms


def run(args: argparse.Namespace) -> int:
    """Train the teacher, validate, export, write metrics.json; returns the exit status."""
    setup(args)
    model = LUTTeacher()
    log.info("LUT teacher: %d parameters", count_parameters(model))
    summary = train(args, model, lambda groups: teacher_loss(model, groups, args.tv, args.mono))
    summary["parameters"] = count_parameters(model)
    export(model, args.export)
    if not args.no_validate:
        summary["validation"] = validate(args, {"teacher": lambda f: model.fuse(f)[0].clamp(0, 1).numpy()})
        print(json.dumps(summary["validation"]["mean"], indent=1))
    write_metrics(args, summary)
    return 0
