"""`lutfuse train student`: the INR student, distilled from the frozen teacher under a long-range regulariser.

Per step and bracket: the student's lattice at a random size G (8..33) is (a) compared with the teacher's fused
grid at the same nodes and at random off-lattice colours (restricted / distillation loss, L1), (b) applied
trilinearly to the mean of the frames and scored with L1 + (1−SSIM) against the reference (its own
reconstruction loss), and (c) regularised: TV smoothness + monotonicity. Ablations: --no-teacher drops (a),
--no-reg drops (c)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from lutfuse.core.models.lut_student import LUTStudent
from lutfuse.core.models.lut_teacher import load_teacher
from lutfuse.core.train import loop, losses
from lutfuse.core.train.lut_teacher import (
    Group,
    add_lut_arguments,
    init_weights,
    log,
    train_lut,
    validate,
)
from lutfuse.core.weights import shipped

VAL_GRIDS = (8, 16, 32, 33, 64)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `lutfuse train student`."""
    add_lut_arguments(parser, out="runs/lut_student", steps=2500, lr=1e-3)
    parser.add_argument("--teacher", type=Path, default=shipped("LUT teacher"), help="frozen teacher weights")
    parser.add_argument("--no-teacher", action="store_true", help="ablation: no distillation (restricted) loss")
    parser.add_argument("--no-reg", action="store_true", help="ablation: no long-range regulariser")
    parser.add_argument("--distill", type=float, default=1.0, help="weight of the restricted (distillation) loss")
    parser.add_argument("--tv", type=float, default=1e-3, help="weight of TV smoothness on the sampled lattice")
    parser.add_argument("--mono", type=float, default=10.0, help="weight of monotonicity on the sampled lattice")
    parser.add_argument("--points", type=int, default=2048,
                        help="random off-lattice colours per bracket for distillation")
    parser.add_argument("--grid-min", type=int, default=8, help="smallest lattice sampled during training")
    parser.add_argument("--grid-max", type=int, default=33, help="largest lattice sampled during training")
    parser.add_argument("--val-grids", default=",".join(map(str, VAL_GRIDS)),
                        help="lattice sizes scored in the final validation (comma-separated)")


def student_loss(student: LUTStudent, teacher: torch.nn.Module | None, groups: list[Group], args: argparse.Namespace
                 ) -> tuple[torch.Tensor, dict[str, float]]:
    """Reconstruction + distill·restricted + regulariser over the groups of one batch -> (loss, terms)."""
    # one lattice size per step: the editable mode has to hold at every G, not only at the teacher's 33
    g = int(torch.randint(args.grid_min, args.grid_max + 1, (1,)))
    n_all = sum(len(gr["base"]) for gr in groups)
    total = 0.0
    terms = {"recon": 0.0, "colour": 0.0, "distill": 0.0, "tv": 0.0, "mono": 0.0}
    for gr in groups:
        n = len(gr["base"])
        latent = student.encode(gr["frames"])
        lattice = student.sample(latent, g, clamp=False)                        # n×G×G×G×3
        recon, out = losses.reconstruction(lattice, gr["base"], gr["reference"])
        parts = {"recon": recon, "colour": losses.colour(out, gr["reference"])}
        loss = recon + getattr(args, "colour", 0.0) * parts["colour"]
        if teacher is not None:
            with torch.no_grad():
                target = teacher.fuse(gr["frames"]).clamp(0.0, 1.0)               # type: ignore[operator]  # n×33×33×33×3
                pts = torch.rand(n, args.points, 3)
                ramp = torch.linspace(0.0, 1.0, g)
                nodes = torch.stack(torch.meshgrid(ramp, ramp, ramp, indexing="ij")[::-1], -1)  # b×g×r×(r,g,b)
                t_nodes = losses.lookup(target, nodes.reshape(1, -1, 3).expand(n, -1, -1)).view_as(lattice)
                t_pts = losses.lookup(target, pts)
            restricted = losses.l1(lattice, t_nodes) + losses.l1(student.query(latent, pts, clamp=False), t_pts)
            loss = loss + args.distill * restricted
            parts["distill"] = restricted
        parts["tv"], parts["mono"] = losses.smoothness(lattice), losses.monotonicity(lattice)
        if not args.no_reg:
            loss = loss + args.tv * parts["tv"] + args.mono * parts["mono"]
        total = total + (n / n_all) * loss  # type: ignore[assignment]
        for k, v in parts.items():
            terms[k] += (n / n_all) * float(v.detach())
    terms["grid"] = float(g)
    return total, terms  # type: ignore[return-value]


def run(args: argparse.Namespace) -> int:
    """Train the student (optionally without teacher / regulariser), validate at several G, export; exit status."""
    loop.setup(args, log)
    teacher = None
    if not args.no_teacher:
        teacher = load_teacher(args.teacher)
        for p in teacher.parameters():
            p.requires_grad_(False)
        log.info("teacher: %s", args.teacher)
    student = LUTStudent()
    init_weights(student, args)
    log.info("LUT student: %d parameters; teacher %s; regulariser %s", loop.count_parameters(student),
             "off" if teacher is None else "on", "off" if args.no_reg else "on")
    summary = train_lut(args, student, lambda groups: student_loss(student, teacher, groups, args))
    summary["parameters"] = loop.count_parameters(student)
    loop.export(student, args.export, log)
    if not args.no_validate:
        fns = {f"student_G{g}": (lambda f, g=g: student.sample(student.encode(f), g)[0].numpy()) for g in
               (int(v) for v in str(args.val_grids).split(","))}
        if teacher is not None:
            fns["teacher"] = lambda f: teacher.fuse(f)[0].clamp(0, 1).numpy()  # type: ignore[assignment, misc]
        summary["validation"] = validate(args, fns)  # type: ignore[arg-type]
        print(json.dumps(summary["validation"]["mean"], indent=1))
    loop.write_metrics(args, summary, log)
    return 0
