"""The validation table behind `lutfuse eval`: every method on the validation cases of core.train.data, scored
against the dense-stack reference, with means per method, per k and over the sparse cases, and a grid-size sweep.

Cases are exactly those of `core.train.data.validation_cases` (each scene of the split with k = 2, the extremes,
and k = 3, extremes + middle, when the stack has a frame between them), but loaded one scene at a time so that
`limit` loads only what it scores. Scores per case and method:

* MEF-SSIM of the fused image against the K inputs; PSNR and SSIM against the reference (Mertens of ALL the
  stack's frames); seconds of wall-clock time for the method on that case.
* "lut" is the pure LUT (detail 0), "lut+detail" the engine's default render; both include `Engine.prepare`
  (latent code and detail layer) in their time, as a user pays it once per bracket.
* "hq" is the shipped HQ export (core.hq: the lut+detail render refined per bracket, no network); "hq-steps16"
  the same with twice the steps; the "hq-thesis" rows start the refinement from the two-phase networks (with the
  real middle frame for k ≥ 3), "-steps0" without refinement, "-no-phase1" (k = 2) with the live render as phase
  2's intermediate, "-generated-middle" (k ≥ 3) with phase 1's middle instead of the real one (the registry's
  HQ methods, core.methods). Their times include the engine's prepare, as a user pays it once per bracket.
* "phase1" scores the generated middle frame against the real middle exposure (PSNR, SSIM; no MEF-SSIM), once per
  scene (on its k = 2 case: the k = 3 case has the same extremes and the same middle).

Alignment (`align`, as `lutfuse fuse --align`; default "auto", fuse's default): each case's inputs are registered
to their middle frame first (`core.bracket.register_stack`, which leaves a frame that does not measurably improve
untouched), and every method fuses the registered frames with their valid masks. MEF-SSIM, halo and chroma are then
scored against the frames the method actually fused, on the largest rectangle every registered frame covers
(`core.registration.common_rectangle`): scoring a registered result against the unregistered inputs would count
the misregistration registration removed as the fusion's error. A case no frame of which moves is scored exactly
as with align "off" (the frames are bit-identical). Rows record `registered` (frames moved) and `crop`.

On a 3-frame stack the k = 3 inputs are the whole stack, so the reference IS Mertens of the inputs: Mertens is
exact there (PSNR capped at PSNR_CAP). Those cases are flagged (`inputs_are_stack`) and the "sparse" means leave
them out. No Qt here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lutfuse.core.errors import LUTFuseError, WeightsError
from lutfuse.core.grid import check_grid
from lutfuse.core.methods import METHODS as REGISTRY
from lutfuse.core.methods import Models
from lutfuse.core.paths import SHIPPED  # not core.weights: that imports torch (`lutfuse --help`)

# Scored rows -> (fusion method of the one registry, core.methods, and the settings it changes): "lut" is the pure
# LUT (detail 0), "lut+detail" the engine's render at --detail; the HQ rows are the registry's HQ method and its
# ablations. "phase1" scores phase 1's generated middle frame (not a fusion) against the real one.
ROWS: dict[str, tuple[str, dict[str, Any]]] = {
    "mertens": ("mertens", {}),
    "lut": ("lut", {"detail": 0.0}),
    "lut+detail": ("lut", {}),
    **{name: (name, {}) for name, m in REGISTRY.items() if m.kind == "hq"},
}
METHODS = (*ROWS, "phase1")
LABELS = {"phase1": "phase1 (middle)"}
# HQFusion settings of each HQ row (the ablations of core.hq's design), as the registry holds them
HQ_VARIANTS = {name: dict(REGISTRY[name].options) for name, (method, _) in ROWS.items()
               if REGISTRY[method].kind == "hq"}
STUDENT_FILE = SHIPPED["LUT student"]
PHASE1_FILE = SHIPPED["HQ phase 1"]
PHASE2_FILE = SHIPPED["HQ phase 2"]
WEIGHT_FILES = {
    **{row: tuple(SHIPPED[w] for w in REGISTRY[method].weights) for row, (method, _) in ROWS.items()},
    "phase1": (PHASE1_FILE,),
}
METRICS = ("mef_ssim", "psnr", "ssim", "seconds", "delta_e", "halo", "chroma", "chroma_ratio", "de00")
PSNR_CAP = 100.0          # dB for identical images (finite means and valid JSON)
SPLITS = ("val", "train")
DEFAULT_KS = (2, 3)

Progress = Callable[[int, int, str], None]   # (cases done, cases in all, label of the case just scored)


def label(method: str) -> str:
    """The table label of a method name."""
    return LABELS.get(method, method)


def resolve_data_root(data_root: str | Path) -> Path:
    """The shared data folder (holding brackets/ and hdr/); its brackets/ folder is accepted too."""
    root = Path(data_root)
    if not root.is_dir():
        raise LUTFuseError(f"{root}: no such folder (give the data folder that holds brackets/ and hdr/)")
    if not (root / "brackets").is_dir() and root.name == "brackets" and (root / "manifest.json").is_file():
        root = root.parent
    if not (root / "brackets").is_dir():
        raise LUTFuseError(f"{root}: not a LUTFuse data folder (no brackets/ inside; expected brackets/ and hdr/)")
    return root


def parse_methods(names: Sequence[str] | None) -> list[str] | None:
    """Method names (commas allowed inside each, 'all' for every one) -> ordered list; None stays None."""
    if names is None:
        return None
    wanted: list[str] = []
    for item in names:
        for name in (n.strip() for n in str(item).split(",")):
            if not name:
                continue
            if name == "all":
                wanted.extend(METHODS)
            elif name in METHODS:
                wanted.append(name)
            else:
                raise LUTFuseError(f"unknown method {name!r} (choose from {', '.join(METHODS)})")
    if not wanted:
        raise LUTFuseError("no method given")
    return [m for m in METHODS if m in wanted]


def parse_grids(text: str | Sequence[int] | None) -> list[int] | None:
    """'8,16,32,64' (or a list) -> grid sizes, each checked by core.grid.check_grid ([2, 129])."""
    if text is None:
        return None
    items = text.split(",") if isinstance(text, str) else list(text)
    grids = []
    for item in items:
        try:
            g = int(str(item).strip())
        except ValueError:
            raise LUTFuseError(f"grid sweep {text!r}: {item!r} is not a whole number (e.g. 8,16,32,64)") from None
        try:
            grids.append(check_grid(g))
        except LUTFuseError as exc:
            raise LUTFuseError(f"grid sweep {text!r}: {exc}") from None
    if not grids:
        raise LUTFuseError("grid sweep: no grid size given (e.g. 8,16,32,64)")
    return grids


# ---------------------------------------------------------------- cases

def plan_scenes(root: Path, split: str, ks: Sequence[int] = DEFAULT_KS) -> list[tuple[str, int, int]]:
    """(key, variant, number of cases) of every scene of the split, in validation_cases order, without loading
    pixels (rendered HDR stacks have 5-9 frames: counted as 5); LUTFuseError naming the first scene missing."""
    from lutfuse.core.train import data

    if split not in SPLITS:
        raise LUTFuseError(f"unknown split {split!r} (use val or train)")
    plan = []
    for key in data.load_split()[split]:
        if key.startswith("hdr/"):
            path = root / f"{key}.exr"
            if not path.is_file():
                raise LUTFuseError(f"{path}: scene {key} of the {split} split is missing from the data folder")
            variants = data.HDR_VARIANTS if split == "train" else 1
            plan += [(key, v, sum(k <= 5 for k in ks)) for v in range(variants)]
        else:
            folder = root / "brackets" / key
            n = sum(1 for p in folder.iterdir() if p.suffix.lower() in data.IMAGE_SUFFIXES) if folder.is_dir() else 0
            if n < 2:
                raise LUTFuseError(f"{folder}: scene {key} of the {split} split is missing or has fewer than "
                                   "2 frames")
            plan.append((key, 0, sum(k <= n for k in ks)))
    return plan


def parse_ks(text: str | Sequence[int] | None) -> tuple[int, ...]:
    """'2-9' or '2,3,5' (or a list) -> sorted bracket sizes k, each in [2, 9]; None -> DEFAULT_KS."""
    if text is None:
        return DEFAULT_KS
    items: list[int] = []
    try:
        for part in (text.split(",") if isinstance(text, str) else list(text)):
            part = str(part).strip()
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                items += list(range(lo, hi + 1))
            elif part:
                items.append(int(part))
    except ValueError:
        raise LUTFuseError(f"bracket sizes {text!r}: give whole numbers like 2,3 or 2-9") from None
    if not items or any(not 2 <= k <= 9 for k in items):
        raise LUTFuseError(f"bracket sizes {text!r}: each k must be between 2 and 9")
    return tuple(sorted(set(items)))


def scene_cases(scene: Any, ks: Sequence[int] = DEFAULT_KS) -> list[dict]:
    """The validation cases of one scene for each k in ks that its stack allows: k = 2, 3 exactly as
    core.train.data.scene_cases (extremes, + the middle), k ≥ 4 the k frames evenly spaced from darkest to
    brightest. Case: key, inputs K×H×W×3, reference, middle, k, stack_frames (as core.train.data)."""
    from lutfuse.core.train import data

    cases = [c for c in data.scene_cases(scene) if c["k"] in ks]
    n = len(scene.frames)
    for k in (k for k in ks if 4 <= k <= n):
        idx = sorted({int(round(v)) for v in np.linspace(0, n - 1, k)})
        cases.append({"key": scene.key, "inputs": scene.frames[idx], "reference": scene.reference,
                      "middle": scene.frames[data.middle_index(idx)], "k": k, "stack_frames": n})
    return cases


# ---------------------------------------------------------------- models

class Phase1Only:
    """Phase 1 alone, for when refine_phase1.pt exists but refine_phase2.pt does not (yet): the whole image at
    once (the network pads to a multiple of 16 itself), as HQFusion's single tile does for sides ≤ 512."""

    def __init__(self, path: Path, device: str | None = None) -> None:
        from lutfuse.core.device import pick_device
        from lutfuse.core.hq import load_phase1

        self.device = pick_device(device)
        self.phase1 = load_phase1(path).to(self.device)

    def generate_middle(self, under: np.ndarray, over: np.ndarray) -> np.ndarray:
        """under, over H×W×3 float32 in [0,1] -> generated middle exposure H×W×3 float32 in [0,1]."""
        import torch

        from lutfuse.core.layout import to_image, to_tensor

        with torch.no_grad():
            out = self.phase1(to_tensor(under, self.device), to_tensor(over, self.device))
        return to_image(out)


def _available(methods: list[str], weights_dir: Path, explicit: bool, notes: list[str]) -> tuple[list[str], dict]:
    """Drop the methods whose weight files are missing (LUTFuseError when they were asked for by name)."""
    keep, skipped = [], {}
    for m in methods:
        missing = [f for f in WEIGHT_FILES[m] if not (weights_dir / f).is_file()]
        if not missing:
            keep.append(m)
            continue
        reason = f"{', '.join(str(weights_dir / f) for f in missing)} not found"
        if explicit:
            raise WeightsError(f"method {m}: {reason} (train them with `lutfuse train`, or give --weights-dir)")
        skipped[m] = reason
        notes.append(f"skipped {label(m)}: {reason}")
    return keep, skipped


# ---------------------------------------------------------------- scoring

def _finite(x: float | None) -> float | None:
    """A float for JSON: None stays None, PSNR's inf becomes PSNR_CAP, NaN becomes None."""
    if x is None or math.isnan(x):
        return None
    return min(float(x), PSNR_CAP)


def _scores(fused: np.ndarray, inputs: np.ndarray | None, reference: np.ndarray, seconds: float,
            live: np.ndarray | None = None, merged: np.ndarray | None = None,
            window: tuple[int, int, int, int] | None = None) -> dict:
    """MEF-SSIM against the inputs (None when not given), PSNR and SSIM against the reference, seconds; with the
    inputs also the halo measure (core.consistency.edge_overshoot excess) and the mean chroma C*ab; with `live`
    (the live render at the same settings) the median CIEDE2000 from it; with `merged` (Mertens of the inputs)
    the chroma ratio to it (core.metrics.chroma_ratio, well-exposed pixels) and de00, the median CIEDE2000
    against the reference. `window` (x0, y0, x1, y1), end-exclusive: the scores against the inputs (MEF-SSIM, halo,
    chroma) use only that rectangle of the fused image and the inputs (the area every registered frame covers)."""
    from lutfuse.core.consistency import chroma, edge_overshoot, median_delta_e
    from lutfuse.core.metrics import chroma_ratio, median_ciede2000, mef_ssim, psnr, ssim

    whole = fused
    if window is not None and inputs is not None:
        x0, y0, x1, y1 = window
        fused, inputs = fused[y0:y1, x0:x1], inputs[:, y0:y1, x0:x1]

    return {"mef_ssim": None if inputs is None else _finite(mef_ssim(list(inputs), fused)),
            "psnr": _finite(psnr(whole, reference)), "ssim": _finite(ssim(whole, reference)),
            "seconds": float(seconds),
            "delta_e": None if live is None else median_delta_e(live, whole),
            "halo": None if inputs is None else edge_overshoot(fused, inputs)["excess"],
            "chroma": None if inputs is None else chroma(fused),
            "chroma_ratio": None if merged is None else _finite(chroma_ratio(whole, merged)),
            "de00": None if merged is None else _finite(median_ciede2000(whole, reference))}


def registered_case(inputs: np.ndarray, align: str) -> tuple[Any, tuple[int, int, int, int] | None, int]:
    """A case's inputs (K×H×W×3 float32 [0,1], darkest first) registered as `lutfuse fuse --align` would ->
    (core.bracket.Bracket of the registered frames with their valid masks, the largest rectangle every frame covers
    as (x0, y0, x1, y1) or None when it is the whole image, number of frames moved). align "off", or no frame
    measurably improved: the inputs as they are."""
    from lutfuse.core.bracket import Bracket, register_stack
    from lutfuse.core.registration import common_rectangle, coverage

    if align == "off":
        return Bracket.from_images(inputs), None, 0
    work = np.array(inputs, np.float32, copy=True)
    records, valid, _ = register_stack(work, None, align)
    moved = sum(r.applied for r in records)
    if not moved:  # register_stack left every frame untouched, bit for bit
        return Bracket.from_images(inputs), None, 0
    h, w = work.shape[1:3]
    rect = common_rectangle(coverage(records, h, w))
    return Bracket.from_images(work, valid=valid), (None if rect == (0, 0, w, h) else rect), moved


def _warm_up(inputs: np.ndarray, engine: Any, nets: Sequence[Any], grid: int) -> None:
    """Run every model once on a small crop of the first case, untimed."""
    from lutfuse.core.bracket import Bracket

    crop = np.ascontiguousarray(inputs[:, :64, :64])
    if engine is not None:
        engine.render(engine.prepare(Bracket.from_images(crop)), grid, 1.0)
    for net in nets:
        if net is not None:
            net.generate_middle(crop[0], crop[-1])


def _mean(rows: list[dict], method: str) -> dict | None:
    """n and the mean of each metric over the rows that scored `method` (None when none did)."""
    have = [r["scores"][method] for r in rows if method in r["scores"]]
    if not have:
        return None
    out: dict[str, Any] = {"n": len(have)}
    for m in METRICS:
        vals = [h[m] for h in have if h.get(m) is not None]
        if m == "chroma_ratio":  # a ratio: geometric mean, and the lowest case
            out[m] = float(np.exp(np.mean(np.log(np.maximum(vals, 1e-9))))) if vals else None
            out["chroma_ratio_min"] = float(min(vals)) if vals else None
        else:
            out[m] = float(np.mean(vals)) if vals else None
    return out


def _means(rows: list[dict], methods: list[str]) -> dict:
    """method -> mean scores over rows, for the methods with at least one score."""
    return {m: s for m in methods if (s := _mean(rows, m)) is not None}


def evaluate(data_root: str | Path, *, methods: Sequence[str] | None = None, split: str = "val",
             max_side: int = 512, grid: int = 33, detail: float = 1.0, limit: int | None = None,
             grid_sweep: Sequence[int] | str | None = None, progress: Progress | None = None,
             weights_dir: str | Path | None = None, device: str | None = None,
             cache_dir: str | Path | None = None, contrast_power: float | None = None,
             ks: Sequence[int] | str | None = None, base: str | None = None,
             scenes: Sequence[str] | str | None = None, align: str = "auto") -> dict:
    """Score `methods` (default: every one whose weights exist; named ones must have theirs) on the split's cases
    (only the scenes whose key starts with one of `scenes`, a list or comma-separated text, when given).

    align: registration of each case's inputs before fusing, as `lutfuse fuse --align` (core.registration.MODES;
    "auto" is fuse's default); scores against the inputs use the registered frames (see the module docstring).

    Returns a JSON-ready dict: `config`, `methods` (evaluated), `skipped` {method: reason}, `notes`, `cases`
    (key, k, stack_frames, inputs_are_stack, scores {method: {mef_ssim, psnr, ssim, seconds}}, and
    phase1_baseline_psnr: the mean of under and over vs the real middle), `means` {method: {n, mef_ssim, psnr,
    ssim, seconds}}, `by_k` {"2"|"3": means}, `sparse` (means without the inputs_are_stack cases),
    `grid_sweep` [{grid, n, psnr, mef_ssim}] of the pure LUT (detail 0) or None, `seconds_total`.
    """
    from lutfuse.core import paths
    from lutfuse.core.classical import mertens
    from lutfuse.core.detail import CONTRAST_POWER  # here: core.detail imports torch (`lutfuse --help`)
    from lutfuse.core.metrics import mef_ssim, psnr
    from lutfuse.core.registration import check_mode
    from lutfuse.core.train import data

    started = time.perf_counter()
    align = check_mode(align)
    root = resolve_data_root(data_root)
    explicit = methods is not None
    wanted = parse_methods(methods) or [] if explicit else list(METHODS)
    grids = parse_grids(grid_sweep)
    ks = parse_ks(ks)
    if isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 16:
        raise LUTFuseError(f"max side {max_side!r}: must be a whole number of pixels, at least 16")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise LUTFuseError(f"limit {limit!r}: must be a whole number ≥ 1")
    if not isinstance(detail, (int, float)) or not math.isfinite(detail) or detail < 0:
        raise LUTFuseError(f"detail strength {detail!r}: must be a number ≥ 0")
    wdir = Path(weights_dir) if weights_dir is not None else paths.WEIGHTS
    notes: list[str] = []
    active, skipped = _available(wanted, wdir, explicit, notes)
    student_ok = (wdir / STUDENT_FILE).is_file()
    if grids and not student_ok:
        raise WeightsError(f"grid sweep: {wdir / STUDENT_FILE} not found (the sweep renders the learned LUT)")
    plan = plan_scenes(root, split, ks)
    if scenes is not None:
        prefixes = [p.strip() for p in (scenes.split(",") if isinstance(scenes, str) else scenes) if p.strip()]
        plan = [entry for entry in plan if any(entry[0].startswith(p) for p in prefixes)]
        if not plan:
            raise LUTFuseError(f"scenes {scenes!r}: no scene of the {split} split starts with that")
    total = sum(n for _, _, n in plan)
    if limit is not None:
        total = min(total, limit)

    from lutfuse.core.base import DEFAULT_BASE
    from lutfuse.core.methods import get_method
    from lutfuse.core.pipeline import FuseSettings

    engine = gen = None
    hq_rows = [m for m in HQ_VARIANTS if m in active]
    models = Models(weights_dir=wdir, engine_options={
        "contrast_power": CONTRAST_POWER if contrast_power is None else contrast_power, "base": base or DEFAULT_BASE})
    settings = FuseSettings({"grid": grid, "detail": float(detail), "device": device})
    if student_ok and (grids or {"lut", "lut+detail"} & set(active) or hq_rows):
        check_grid(grid)
        engine = models.engine(device)
    for m in hq_rows:
        models.hq(device, **HQ_VARIANTS[m])   # loaded before the first case, as its time is not the case's
    if "phase1" in active:
        gen = Phase1Only(wdir / PHASE1_FILE, device)

    warm = False
    rows: list[dict] = []
    sweep: dict[int, list[tuple[float | None, float | None]]] = {g: [] for g in grids or ()}
    if progress is not None:
        progress(0, total, "")
    for key, variant, _ in plan:
        if limit is not None and len(rows) >= total:
            break
        try:
            scene = data.load_scene(root, key, variant=variant, max_side=max_side, cache_dir=cache_dir)
        except (OSError, ValueError) as exc:
            raise LUTFuseError(f"scene {key}: cannot be loaded ({exc})") from exc
        phase1_done = False
        for case in scene_cases(scene, ks):
            if limit is not None and len(rows) >= total:  # the plan counts rendered stacks as 5 frames: a bound
                break
            inputs, ref, k = case["inputs"], case["reference"], case["k"]
            bracket, window, moved = registered_case(inputs, align)
            inputs, valid = bracket.images, bracket.valid   # the frames every method fuses (and is scored against)
            if not warm:  # first calls pay for allocations and kernel selection: keep them out of the times
                _warm_up(inputs, engine, [gen], grid)
                warm = True
            row: dict[str, Any] = {"key": case["key"], "k": k, "stack_frames": case["stack_frames"],
                                   "inputs_are_stack": k == case["stack_frames"], "registered": moved,
                                   "crop": None if window is None else list(window), "scores": {}}
            scores = row["scores"]
            merged = mertens(inputs, valid)   # the yardstick of the chroma ratio
            live = prepared = None
            t_set = 0.0
            if engine is not None:
                t0 = time.perf_counter()
                prepared = engine.prepare(bracket)
                t_set = time.perf_counter() - t0
                live = engine.render(prepared, grid, float(detail))
                for g in sweep:
                    out = engine.render(prepared, g, 0.0)
                    sweep[g].append((_finite(psnr(out, ref)), _finite(mef_ssim(list(inputs), out))))
            for m, (name, changes) in ROWS.items():
                if m not in active:
                    continue
                if m == "hq-thesis-generated-middle" and k < 3 or m == "hq-thesis-no-phase1" and k >= 3:
                    continue  # the same computation as "hq" for these k
                method = get_method(name)
                t0 = time.perf_counter()
                out = method.fuse(bracket, settings.replace(**changes), models=models, engine=engine,
                                  prepared=prepared, look=None)
                # the engine's prepare counts for the learned rows: a user pays it once per bracket
                paid = t_set if method.kind != "mertens" else 0.0
                scores[m] = _scores(out, inputs, ref, paid + time.perf_counter() - t0, live, merged, window)
            middle = case["middle"]
            real_middle = not (np.array_equal(middle, inputs[0]) or np.array_equal(middle, inputs[-1]))
            if gen is not None and not phase1_done and real_middle and k == 2:
                t0 = time.perf_counter()
                out = gen.generate_middle(inputs[0], inputs[-1])
                scores["phase1"] = _scores(out, None, middle, time.perf_counter() - t0)
                row["phase1_baseline_psnr"] = _finite(psnr((inputs[0] + inputs[-1]) / 2, middle))
                phase1_done = True
            rows.append(row)
            if progress is not None:
                progress(len(rows), max(total, len(rows)), f"{case['key']} k={k}")

    by_k = {str(k): _means([r for r in rows if r["k"] == k], active) for k in sorted({r["k"] for r in rows})}
    dense = sum(r["inputs_are_stack"] for r in rows)
    if align != "off":
        moved_cases = [r for r in rows if r["registered"]]
        notes.append(f"alignment {align}: registration moved {sum(r['registered'] for r in moved_cases)} frames in "
                     f"{len(moved_cases)} of {len(rows)} cases"
                     + (f" ({', '.join(sorted({r['key'] for r in moved_cases}))}); those are scored against the "
                        "registered frames, on the area every frame covers" if moved_cases else ""))
    if dense and "mertens" in active:
        notes.append(f"{dense} of {len(rows)} cases use the whole stack as inputs (3-frame stacks at k = 3): their "
                     f"reference is Mertens of the inputs, so Mertens is exact there (PSNR capped at "
                     f"{PSNR_CAP:g} dB); the sparse table leaves them out")
    return {
        "config": {"data_root": str(root), "split": split, "scenes": scenes, "max_side": max_side, "grid": grid,
                   "detail": detail,
                   "contrast_power": CONTRAST_POWER if contrast_power is None else contrast_power,
                   "limit": limit, "ks": list(ks), "base": base, "align": align, "weights_dir": str(wdir),
                   "device": device,
                   "psnr_cap": PSNR_CAP},
        "methods": active,
        "skipped": skipped,
        "notes": notes,
        "cases": rows,
        "means": _means(rows, active),
        "by_k": by_k,
        "sparse": _means([r for r in rows if not r["inputs_are_stack"]], active),
        "grid_sweep": None if grids is None else [
            {"grid": g, "n": len(v), "psnr": float(np.mean([p for p, _ in v])) if v else None,
             "mef_ssim": float(np.mean([q for _, q in v])) if v else None} for g, v in sweep.items()],
        "seconds_total": time.perf_counter() - started,
    }


# ---------------------------------------------------------------- report

def _cell(value: float | None, fmt: str, width: int) -> str:
    """A right-aligned table cell; '–' for a missing value."""
    return f"{'–' if value is None else format(value, fmt):>{width}}"


def _table(means: dict, title: str) -> list[str]:
    """Fixed-width rows: method, n, MEF-SSIM, PSNR, SSIM, s/case, ΔE00 from the live view, halo excess, chroma."""
    lines = [title, f"{'method':<20}{'n':>4}{'MEF-SSIM':>10}{'PSNR':>9}{'SSIM':>9}{'s/case':>9}{'ΔE live':>9}"
                    f"{'halo':>8}{'C*':>7}{'C*/M':>7}{'min':>7}{'dE00':>7}"]
    for m, s in means.items():
        lines.append(f"{label(m):<20}{s['n']:>4}{_cell(s['mef_ssim'], '.4f', 10)}{_cell(s['psnr'], '.2f', 9)}"
                     f"{_cell(s['ssim'], '.4f', 9)}{_cell(s['seconds'], '.3f', 9)}{_cell(s.get('delta_e'), '.2f', 9)}"
                     f"{_cell(s.get('halo'), '.4f', 8)}{_cell(s.get('chroma'), '.1f', 7)}"
                     f"{_cell(s.get('chroma_ratio'), '.3f', 7)}{_cell(s.get('chroma_ratio_min'), '.3f', 7)}"
                     f"{_cell(s.get('de00'), '.2f', 7)}")
    return lines


def format_report(result: dict) -> str:
    """The tables `lutfuse eval` prints: means per method, per k (and sparse), the grid sweep, then the notes."""
    cfg = result["config"]
    n = len(result["cases"])
    lines = _table(result["means"], f"{cfg['split']} split: {n} cases, max side {cfg['max_side']} px, "
                                    f"align {cfg.get('align', 'off')}, grid {cfg['grid']}, detail {cfg['detail']:g}, "
                                    f"detail contrast power {cfg['contrast_power']:g}")
    for k, means in result["by_k"].items():
        lines += [""] + _table(means, f"k = {k} inputs")
    if result["sparse"] and any(r["inputs_are_stack"] for r in result["cases"]):
        lines += [""] + _table(result["sparse"], "sparse cases only (inputs fewer than the stack's frames)")
    if result["grid_sweep"] is not None:
        lines += ["", "grid sweep (pure LUT, detail 0)", f"{'G':>4}{'PSNR':>9}{'MEF-SSIM':>10}"]
        for s in result["grid_sweep"]:
            lines.append(f"{s['grid']:>4}{_cell(s['psnr'], '.2f', 9)}{_cell(s['mef_ssim'], '.4f', 10)}")
    footer = ["C*/M: mean CIELAB chroma of the well-exposed pixels / Mertens' of the same inputs (geometric mean over "
              "cases; min = lowest case); dE00: median CIEDE2000 against the reference (mean over cases)"]
    if "phase1" in result["means"]:
        base = [r["phase1_baseline_psnr"] for r in result["cases"] if "phase1_baseline_psnr" in r]
        footer.append(f"phase1 (middle): generated middle frame vs the real one, once per scene (no MEF-SSIM); "
                      f"the mean of under and over scores {np.mean(base):.2f} dB")
    footer += result["notes"]
    if footer:
        lines += [""] + [f"note: {t}" for t in footer]
    return "\n".join(lines)
