"""Model cards: resources/weights/NAME.md written from a training run's metrics.json (never typed by hand).

`python -m lutfuse.core.train.card NAME RUN_DIR [--ablation LABEL=RUN_DIR ...]` renders what the trainer recorded:
the exact
command, arguments, data split, steps, time, loss terms and validation metrics, plus an ablation table when other
runs of the same trainer are given."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from lutfuse.core.paths import WEIGHTS

ABOUT = {
    "lut_teacher": (
        "LUT teacher (Su & Zheng, distilled 3D LUT grid): one prior 33³ grid per input exposure, each predicted "
        "from that frame and the bracket as weights over learned basis grids, fused by a learned per-cell "
        "softmax weighting F into one grid for the bracket. Applied trilinearly to the per-pixel mean of the "
        "frames. Used only to train the student; the app does not load it."),
    "lut_student": (
        "LUT student, the app's real-time model: a CNN encoder on a 12-channel summary of the bracket (darkest, "
        "mean, brightest frame and three exposure-statistics channels at 128×128, so any K from 2 to 9 frames "
        "gives the same shapes) -> latent code; a hypernetwork turns the latent into FiLM modulation of a narrow "
        "MLP on Fourier features of (r, g, b) that predicts a residual over identity. Sampling it on a G³ "
        "lattice gives the LUT for any G from 2 to 129 (the editable grid size)."),
    "refine_phase1": (
        "HQ phase 1: a UNet with strided, dilated (dense) and transposed convolutions that generates the "
        "intermediate exposure from the under- and over-exposed frames; trained alone against real middle frames."),
    "refine_phase2": (
        "HQ phase 2 (AMNet): attention maps of the under and over frames computed against the intermediate frame, "
        "then a merging network of dilated dense blocks whose output is a residual added to a base image: the "
        "exposure fusion (OpenCV's Mertens) of under, intermediate and over, computed on the whole image "
        "(core/hq.py). Trained with phase 1 frozen against the dense-stack reference, plus MEF-SSIM against the "
        "inputs. No pretrained VGG exists here, so the perceptual term is replaced by MS-SSIM plus a gradient "
        "loss (core/train/refine_losses.py)."),
}

DATA = (
    "Training data (core/train/data.py, split by scene in core/train/split.json, stratified by source, every 5th "
    "scene of each source held out): real brackets from `brackets/` (hdrps, forth, deepfuse) and stacks rendered "
    "from the HDR radiance maps in `hdr/` (1-stop stacks covering the map's range, random camera response, shot "
    "and read noise, 8-bit quantisation; two renderings per map in the train split). The reference of every "
    "scene is OpenCV's Mertens exposure fusion of ALL its frames; the model sees k = 2 or 3 of them (an under and "
    "an over frame near the extremes, plus the frame halfway between for k = 3). Working resolution: longest side "
    "512 px; random square crops with flips. Validation: every held-out scene with k = 2 (extremes) and k = 3.")


def _fmt(v: object) -> str:
    """A number with 4 significant decimals, anything else as text."""
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _table(rows: dict[str, dict]) -> list[str]:
    """{row: {column: value}} -> Markdown table lines."""
    cols: list[str] = []
    for r in rows.values():
        cols += [c for c in r if c not in cols and not isinstance(r[c], (dict, list))]
    lines = ["| | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |" for name, r in rows.items()]
    return lines


def validation_tables(validation: dict) -> list[str]:
    """The validation record of any trainer -> Markdown (mean tables; per-case rows are left in metrics.json)."""
    lines: list[str] = []
    mean = validation.get("mean")
    if isinstance(mean, dict) and all(isinstance(v, dict) for v in mean.values()):
        first: dict = next(iter(mean.values()), {})
        if first and all(isinstance(v, dict) for v in first.values()):   # grouped (phase 2: all/k2/k3)
            for group, rows in mean.items():
                lines += [f"**{group}**", "", *_table(rows), ""]
        else:
            lines += ["All validation cases:", "", *_table(mean), ""]
    for k, rows in (validation.get("mean_by_k") or {}).items():
        lines += [f"**{k}**", "", *_table(rows), ""]
    scalars = {k: v for k, v in validation.items() if isinstance(v, (int, float))}
    lines += [f"* {k}: {_fmt(v)}" for k, v in scalars.items()]
    return lines


def ablation_table(runs: dict[str, dict], method_prefix: str = "student_G33") -> list[str]:
    """{label: metrics.json record} -> one row per run of the validation means of `method_prefix`."""
    rows = {}
    for label, rec in runs.items():
        mean = rec.get("validation", {}).get("mean", {})
        row = dict(mean.get(method_prefix, {}))
        row["steps"] = rec.get("steps")
        rows[label] = row
    return _table(rows)


def render(name: str, record: dict, ablations: dict[str, dict] | None = None, weights: Path | None = None,
           notes: str = "") -> str:
    """The Markdown card of weights `name` from its trainer's metrics.json record."""
    weights = weights or WEIGHTS / f"{name}.pt"
    lines = [f"# Model card: `{weights.name}`", "", ABOUT.get(name, ""), ""]
    lines += ["## Data", "", DATA, ""]
    lines += ["## Training", "", "Made by the committed code with exactly:", "", "```", record["command"], "```", ""]
    lines += [f"* parameters: {record.get('parameters')}", f"* steps: {record.get('steps')}",
              "* wall time (last session; 2 CPU cores shared with the other trainings): "
              f"{record.get('seconds_this_session')} s"]
    args = record.get("args", {})
    lines += ["* arguments: " + ", ".join(f"`{k}={v}`" for k, v in args.items() if k not in ("func", "command")), ""]
    terms = record.get("train_loss_terms_mean_last_100_steps") or record.get("final_train_loss_terms_mean_last_100")
    if terms:
        lines += ["Loss terms, mean of the last 100 steps:", "", *_table({"train": terms}), ""]
    if "validation" in record:
        lines += ["## Validation", "", *validation_tables(record["validation"]), ""]
    if ablations:
        lines += ["## Ablation (same data, seed and steps; validation split)", "", *ablation_table(ablations), ""]
    if notes:
        lines += ["## Notes", "", notes, ""]
    lines += [f"Per-case numbers: `{weights.stem}.metrics.json` beside this card (the trainer's `metrics.json`).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Write resources/weights/NAME.md from RUN_DIR/metrics.json (and ablation runs), and a copy of the metrics."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("name", choices=sorted(ABOUT))
    parser.add_argument("run", type=Path, help="the run folder holding metrics.json")
    parser.add_argument("--ablation", action="append", default=[], metavar="LABEL=RUN_DIR")
    parser.add_argument("--notes", type=Path, default=None, help="a Markdown file of remarks to add")
    parser.add_argument("-o", "--output", type=Path, default=None)
    args = parser.parse_args(argv)
    record = json.loads((args.run / "metrics.json").read_text())
    ablations = {}
    for item in args.ablation:
        label, _, run = item.partition("=")
        ablations[label] = json.loads((Path(run) / "metrics.json").read_text())
    out = args.output or WEIGHTS / f"{args.name}.md"
    for path, text in ((out, render(args.name, record, ablations or None,
                                    notes=args.notes.read_text().strip() if args.notes else "")),
                       (out.with_name(f"{args.name}.metrics.json"), json.dumps(record, indent=1) + "\n")):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
