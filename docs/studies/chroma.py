"""Study: where does the live fusion (LUT + detail) lose colour against Mertens?

    python docs/studies/chroma.py ../shared/data --cache-dir runs/cache [--side 256] [--weights W.pt] [--json out.json]

On every validation case (core.train.data.validation_cases: k = 2 and k = 3 of each held-out scene) each stage of
the pipeline is scored, as in `lutfuse eval`, by
* chroma: mean CIELAB C*ab over the well-exposed pixels of Mertens of the same inputs, as a ratio to Mertens'
  (core.metrics.chroma_ratio; 1 = as colourful as Mertens);
* dE00: median CIEDE2000 against the reference (Mertens of ALL the stack's frames);
* MEF-SSIM against the inputs.

Stages (rows): the base images themselves (plain mean; the smooth exposure-weighted base of core.base; the
chroma base = the weighted base's colour with the mean's luma; the calibrated base of the engine), the LUTs
on each base (teacher grid, student G33, and the least-squares best 17³ LUT fitted to the reference on that very
base: what a LUT *could* do), the final clip, and the detail layer (additive luminance offset, as shipped, versus
the chroma-preserving luminance-ratio form of core.detail). Prints a Markdown table per k (geometric-mean and
minimum chroma ratio, median dE00, MEF-SSIM) and the per-scene chroma ratios.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from lutfuse.core import base as basemod
from lutfuse.core import detail as detailmod
from lutfuse.core.classical import mertens
from lutfuse.core.lut import apply_lut, identity_lut
from lutfuse.core.metrics import chroma_ratio, median_ciede2000, mef_ssim, well_exposed
from lutfuse.core.models.lut_student import load_student
from lutfuse.core.models.lut_teacher import load_teacher
from lutfuse.core.paths import WEIGHTS
from lutfuse.core.train import data

LSQ_GRID = 17


def trilinear_matrix(rgb: np.ndarray, g: int) -> sp.csr_matrix:
    """P×3 colours in [0,1] -> sparse P×G³ matrix of trilinear weights on the lattice (core layout, red fastest)."""
    x = np.clip(rgb, 0, 1) * (g - 1)
    i0 = np.minimum(np.floor(x).astype(int), g - 2)
    f = x - i0
    rows, cols, vals = [], [], []
    p = np.arange(len(rgb))
    for dr in (0, 1):
        for dg in (0, 1):
            for db in (0, 1):
                w = ((f[:, 0] if dr else 1 - f[:, 0]) * (f[:, 1] if dg else 1 - f[:, 1])
                     * (f[:, 2] if db else 1 - f[:, 2]))
                idx = ((i0[:, 2] + db) * g + (i0[:, 1] + dg)) * g + (i0[:, 0] + dr)
                rows.append(p), cols.append(idx), vals.append(w)
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(len(rgb), g ** 3))


def best_lut(base: np.ndarray, target: np.ndarray, g: int = LSQ_GRID, damp: float = 0.05) -> np.ndarray:
    """Least-squares LUT (G³×3) mapping base -> target, damped towards identity where the base has no colours."""
    step = max(1, int(np.ceil(np.sqrt(base.shape[0] * base.shape[1] / 60000))))
    b = base[::step, ::step].reshape(-1, 3).astype(np.float64)
    t = target[::step, ::step].reshape(-1, 3).astype(np.float64)
    a = trilinear_matrix(b, g)
    ident = identity_lut(g).reshape(-1, 3).astype(np.float64)
    out = np.empty_like(ident)
    for c in range(3):
        res = spla.lsqr(a, t[:, c] - a @ ident[:, c], damp=damp, atol=1e-6, btol=1e-6, iter_lim=400)[0]
        out[:, c] = ident[:, c] + res
    return np.clip(out, 0, 1).reshape(g, g, g, 3).astype(np.float32)


_FUSED: dict[int, torch.Tensor] = {}


def detail_layer(inputs: np.ndarray, tone: np.ndarray) -> torch.Tensor:
    """The shipped engine's detail layer D (H×W) for inputs N×H×W×3 and tone-mapped base H×W×3 (the fused
    band-pass of the inputs is computed once per inputs array)."""
    levels = detailmod.split_levels(*inputs.shape[1:3])
    fused = _FUSED.get(id(inputs))
    if fused is None:
        _FUSED.clear()
        frames = torch.from_numpy(np.ascontiguousarray(inputs.transpose(0, 3, 1, 2)))
        fused = _FUSED[id(inputs)] = detailmod.fused_bandpass(frames, levels)
    return detailmod.tone_detail(fused, torch.from_numpy(np.ascontiguousarray(tone.transpose(2, 0, 1))), levels)


def add_offset(tone: np.ndarray, d: torch.Tensor, clip: bool = True) -> np.ndarray:
    """Shipped detail: the same luminance offset on R, G and B."""
    out = tone + d.numpy()[..., None]
    return np.clip(out, 0, 1) if clip else out


def add_ratio(tone: np.ndarray, d: torch.Tensor) -> np.ndarray:
    """Chroma-preserving detail (core.detail.add_detail mode 'ratio')."""
    out = torch.from_numpy(np.ascontiguousarray(tone.transpose(2, 0, 1)).copy())
    detailmod.add_detail(out, d, 1.0, mode="ratio")
    return out.permute(1, 2, 0).numpy()


def stages(inputs: np.ndarray, reference: np.ndarray, student, teacher) -> dict[str, np.ndarray]:
    """Every stage's image for one case (see the module docstring)."""
    frames = torch.from_numpy(np.ascontiguousarray(inputs.transpose(0, 3, 1, 2)))[None]
    mean = basemod.mean_base(inputs)
    wbase = basemod.weighted_base(inputs)
    cbase = basemod.chroma_base(inputs)
    with torch.no_grad():
        latent = student.encode(frames)
        s33 = student.sample(latent, 33)[0].numpy()
        s17 = student.sample(latent, 17)[0].numpy()
        t33 = teacher.fuse(frames)[0].clamp(0, 1).numpy()
    out: dict[str, np.ndarray] = {"mean base": mean, "weighted base": wbase, "chroma base": cbase}
    out["teacher(mean)"] = apply_lut(mean, t33)
    out["student(mean)"] = s_mean = apply_lut(mean, s33)
    out["best LUT(mean)"] = apply_lut(mean, best_lut(mean, reference))
    out["student(weighted)"] = s_w = apply_lut(wbase, s33)
    out["best LUT(weighted)"] = best_w = apply_lut(wbase, best_lut(wbase, reference))
    out["student(chroma)"] = s_c = apply_lut(cbase, s33)
    out["best LUT(chroma)"] = apply_lut(cbase, best_lut(cbase, reference))
    d = detail_layer(inputs, s_mean)
    out["student(mean)+D, no clip"] = add_offset(s_mean, d, clip=False)
    out["student(mean)+D (shipped)"] = add_offset(s_mean, d)
    out["student(mean)+D ratio"] = add_ratio(s_mean, d)
    d_c = detail_layer(inputs, s_c)
    out["student(chroma)+D"] = add_offset(s_c, d_c)
    out["student(chroma)+D ratio"] = add_ratio(s_c, d_c)
    calibrated = basemod.blend(inputs, basemod.calibrate_amount(inputs, lambda b: apply_lut(b, s17)))
    s_k = apply_lut(calibrated, s33)
    out["student(calibrated)+D (new engine)"] = add_offset(s_k, detail_layer(inputs, s_k))
    del s_w, best_w
    return out


def geo(x: list[float]) -> float:
    return float(np.exp(np.mean(np.log(np.maximum(x, 1e-6)))))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--weights", type=Path, default=WEIGHTS / "lut_student.pt")
    parser.add_argument("--teacher", type=Path, default=WEIGHTS / "lut_teacher.pt")
    parser.add_argument("--json", type=Path, default=None, help="also write every number here")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--tables-only", action="store_true", help="print the tables of an existing --json file")
    parser.add_argument("--stride", type=int, default=1, help="score every STRIDE-th scene (both of its cases)")
    parser.add_argument("--side", type=int, default=512,
                        help="score at this longest side (cases are loaded at 512 px and area-downsampled)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.tables_only:
        report(json.loads(args.json.read_text()))
        return 0
    student, teacher = load_student(args.weights), load_teacher(args.teacher)
    rows = []
    cases = data.validation_cases(args.data, cache_dir=args.cache_dir)
    keys = list(dict.fromkeys(c["key"] for c in cases))[:: args.stride]
    cases = [c for c in cases if c["key"] in keys][: args.limit]
    for n, case in enumerate(cases):
        inputs, ref = np.asarray(case["inputs"], np.float32), case["reference"]
        if args.side < max(ref.shape[:2]):
            f = args.side / max(ref.shape[:2])
            size = (round(ref.shape[1] * f), round(ref.shape[0] * f))
            inputs = np.stack([cv2.resize(im, size, interpolation=cv2.INTER_AREA) for im in inputs])
            ref = cv2.resize(ref, size, interpolation=cv2.INTER_AREA)
        merged = mertens(inputs)
        mask = well_exposed(merged)
        scored = {"Mertens(inputs)": merged, "reference (Mertens, all frames)": ref}
        scored.update(stages(inputs, ref, student, teacher))
        row = {"key": case["key"], "k": case["k"], "scores": {}}
        for name, image in scored.items():
            image = np.asarray(image, np.float32)
            row["scores"][name] = {"chroma": chroma_ratio(image, merged, mask),
                                   "de00": median_ciede2000(np.clip(image, 0, 1), ref),
                                   "mef_ssim": mef_ssim(list(inputs), np.clip(image, 0, 1))}
        rows.append(row)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
        print(f"[{n + 1}/{len(cases)}] {case['key']} k={case['k']}: "
              + ", ".join(f"{k} {v['chroma']:.3f}" for k, v in row["scores"].items()), flush=True)
    report(rows)
    return 0


def report(rows: list[dict]) -> None:
    """Markdown tables per k and the per-scene chroma ratios of scored rows."""
    names = list(rows[0]["scores"])
    for k in sorted({r["k"] for r in rows}):
        sub = [r for r in rows if r["k"] == k]
        print(f"\n**k = {k}** ({len(sub)} cases)\n")
        print("| stage | chroma ratio (geo. mean) | min | dE00 (median per case; mean) | MEF-SSIM |")
        print("|---|---|---|---|---|")
        for name in names:
            c = [r["scores"][name]["chroma"] for r in sub]
            print(f"| {name} | {geo(c):.3f} | {min(c):.3f} | "
                  f"{np.mean([r['scores'][name]['de00'] for r in sub]):.2f} | "
                  f"{np.mean([r['scores'][name]['mef_ssim'] for r in sub]):.4f} |")
    print("\nper scene chroma ratio (k=2 / k=3): shipped render -> chroma base -> calibrated base (new engine):\n")
    for key in dict.fromkeys(r["key"] for r in rows):
        parts = [f"{r['scores']['student(mean)+D (shipped)']['chroma']:.3f} -> "
                 f"{r['scores']['student(chroma)+D']['chroma']:.3f} -> "
                 f"{r['scores']['student(calibrated)+D (new engine)']['chroma']:.3f}" for r in rows if r["key"] == key]
        print(f"* {key}: " + " / ".join(parts))


if __name__ == "__main__":
    raise SystemExit(main())
