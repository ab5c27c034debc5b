"""Study behind core.registration and core.deghost (issue 11): run from the repo's parent with the shared data.

    python -m lutfuse.docs.studies.registration static   DATA [--k 3] [--sources hdrps,forth] [--limit N]
                                                           [--deghost low,medium]
    python -m lutfuse.docs.studies.registration handheld DATA [--k 3] [--sources hdrps,forth] [--limit N]
    python -m lutfuse.docs.studies.registration accuracy DATA [--sizes 1224x816,6000x4000] [--scenes N]
                                                           [--names A,B] [--frames 1,6] [--against known|own]

static: the validation cases (core.train.data.validation_cases: real, unaligned, static brackets; those of --sources
with --k frames), fused by Mertens
and by LUT + detail with alignment off / auto and deghosting off / low / medium / high; MEF-SSIM against the frames
that were fused (the registered ones where alignment moved a frame: scored against the unregistered inputs, a
correctly registered hand-held bracket such as forth/MarketMires2 k = 3 would lose 0.11 for being aligned), how many
frames registration moved, and the ghost mask's area.
handheld: each case's non-reference frames warped by a random hand-held homography (rotation ≤ 1.5°, shift ≤ 2.5 %
of the width, scale ±1 %, a little perspective; seeded); fused with alignment off and auto; MEF-SSIM against the
unmoved inputs (the output is in the reference's coordinates, which the unmoved inputs share).
accuracy: corner error (px) and runtime of registering one frame 2-4 stops from the reference (--frames, against
frame 04), on hdrps frames upscaled to each size, moved by a known homography. --against own measures the error
against the known motion composed with the pair's own registration (estimated, unchecked, before moving), because
real frames of one scene are slightly offset to begin with (about 0.07 px at 536 px, so about 0.8 px at 24 MP).
That offset is itself an estimate (of an unmoved pair, from other windows than a moved frame leaves usable), and
the frames are upscaled 11× from 536 px, so at 24 MP a sub-pixel offset is not defined by the data to 0.5 px.
--against consistent moves each frame by two different known motions and measures the corner distance between
the two offsets they imply (estimate @ motion⁻¹): what the estimator adds to the known motion beyond one fixed
offset, with no estimate of the unmoved pair in it.
"""

from __future__ import annotations

import argparse
import math
import time

import cv2
import numpy as np


def hand_held(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A random frame->reference homography of a hand-held camera, about the image centre."""
    ang = math.radians(rng.uniform(-1.5, 1.5))
    s = 1 + rng.uniform(-0.01, 0.01)
    tx, ty = rng.uniform(-0.025, 0.025, 2) * width
    c = np.array([[1, 0, (width - 1) / 2], [0, 1, (height - 1) / 2], [0, 0, 1.0]])
    a = np.array([[s * math.cos(ang), -s * math.sin(ang), tx], [s * math.sin(ang), s * math.cos(ang), ty], [0, 0, 1]])
    p = np.array([[1, 0, 0], [0, 1, 0], [*(rng.uniform(-2e-5, 2e-5, 2) * 536 / width), 1]])
    return c @ a @ p @ np.linalg.inv(c)


def corner_error(m: np.ndarray, truth: np.ndarray, width: int, height: int) -> float:
    """Largest distance between where m and truth send the image corners (px)."""
    c = np.array([[[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]]], np.float64)
    return float(np.abs(cv2.perspectiveTransform(c, m) - cv2.perspectiveTransform(c, truth)).max())


def pick(cases: list[dict], args: argparse.Namespace) -> list[dict]:
    """The cases of the chosen sources and frame counts, at most --limit of them."""
    sources = tuple(args.sources.split(","))
    chosen = [c for c in cases if c["key"].startswith(sources) and c["k"] in args.k]
    return chosen[: args.limit]


def fuse_all(stack: np.ndarray, align: str, deghost: str, engine) -> tuple[dict, int, float]:
    """Register/deghost a copy of the stack, fuse by Mertens and LUT + detail -> (images, frames moved, ghost area);
    images["frames"] is the registered (not deghosted) stack that was fused."""
    from lutfuse.core.bracket import Bracket, register_stack
    from lutfuse.core.classical import mertens
    from lutfuse.core.deghost import deghost as deghost_stack

    work = stack.copy()
    records, valid, _ = register_stack(work, None, align, "off")
    registered = work.copy()
    # deghosted apart from the registration, so the frames it scores against are registered once
    ghost = None if deghost == "off" else deghost_stack(work, np.ones(work.shape[:3], bool) if valid is None
                                                        else valid, deghost)
    bracket = Bracket.from_images(work, valid=valid)
    prepared = engine.prepare(bracket)
    out = {"mertens": mertens(bracket.images, bracket.valid), "lut+detail": engine.render(prepared, 33, 1.0),
           "frames": registered}
    moved = sum(r.applied for r in records)
    return out, moved, 0.0 if ghost is None else float((ghost >= 0.5).mean())


def run_static(args: argparse.Namespace) -> None:
    from lutfuse.core.fusion import Engine
    from lutfuse.core.metrics import mef_ssim
    from lutfuse.core.train.data import validation_cases

    cases = pick(validation_cases(args.data), args)
    engine = Engine(device="cpu")
    strengths = dict.fromkeys(s for s in args.deghost.split(",") if s != "off")  # off is always scored
    configs = [("off", "off"), ("auto", "off"), *(("off", s) for s in strengths)]
    rows: dict[tuple[str, str], list] = {c: [] for c in configs}
    for case in cases:
        inputs = np.ascontiguousarray(case["inputs"], np.float32)
        for cfg in configs:
            if cfg == ("auto", "off"):
                from lutfuse.core.registration import register

                if not any(r.applied for r in register(inputs, "auto")):
                    rows[cfg].append(rows[("off", "off")][-1])  # bit-identical frames: the same result
                    continue
            out, moved, ghost = fuse_all(inputs, *cfg, engine)
            fused = list(out["frames"])
            rows[cfg].append((mef_ssim(fused, out["mertens"]), mef_ssim(fused, out["lut+detail"]),
                              moved, ghost))
        print(case["key"], case["k"], " ".join(f"{c[0]}/{c[1]}: {r[-1][0]:.4f} {r[-1][1]:.4f} m{r[-1][2]} "
                                               f"g{r[-1][3]:.3f}" for c, r in rows.items()), flush=True)
    # brackets rendered from one radiance map (hdr/) are static by construction; the real ones are static scenes
    # shot in sequence, where clouds, water, leaves and people still move between frames
    rendered = np.array([c["key"].startswith("hdr/") for c in cases])
    print(f"\n{len(cases)} static validation cases; mean MEF-SSIM (Mertens, LUT+detail), frames moved, ghost area; "
          f"the cost of each setting against align off / deghost off over all, the {int(rendered.sum())} rendered "
          f"and the {int((~rendered).sum())} real brackets")
    base = np.array(rows[("off", "off")])
    for cfg, r in rows.items():
        a = np.array(r)
        cost = base[:, :2] - a[:, :2]
        parts = "  ".join(f"{name} {cost[sel, 0].mean():.5f} / {cost[sel, 1].mean():.5f}"
                          for name, sel in (("all", slice(None)), ("rendered", rendered), ("real", ~rendered))
                          if a[sel].size)
        print(f"align {cfg[0]:5} deghost {cfg[1]:7} mertens {a[:, 0].mean():.4f}  lut+detail {a[:, 1].mean():.4f}  "
              f"min lut+detail {a[:, 1].min():.4f}  frames moved {int(a[:, 2].sum())}  ghost area {a[:, 3].mean():.4f}"
              f"\n      cost {parts}")


def run_handheld(args: argparse.Namespace) -> None:
    from lutfuse.core.fusion import Engine
    from lutfuse.core.metrics import mef_ssim
    from lutfuse.core.train.data import validation_cases

    cases = pick(validation_cases(args.data), args)
    engine = Engine(device="cpu")
    rng = np.random.default_rng(11)
    rows: dict[str, list] = {"off": [], "auto": []}
    for case in cases:
        inputs = np.ascontiguousarray(case["inputs"], np.float32)
        n, h, w = inputs.shape[:3]
        moved = inputs.copy()
        for i in range(n):
            if i != n // 2:
                t = hand_held(w, h, rng)
                moved[i] = cv2.warpPerspective(inputs[i], np.linalg.inv(t), (w, h), flags=cv2.INTER_LINEAR,
                                               borderMode=cv2.BORDER_REFLECT)
        for align in rows:
            out, count, _ = fuse_all(moved, align, "off", engine)
            rows[align].append((mef_ssim(list(inputs), out["mertens"]), mef_ssim(list(inputs), out["lut+detail"]),
                                count))
        print(case["key"], case["k"], " ".join(f"{a}: {r[-1][0]:.4f} {r[-1][1]:.4f} m{r[-1][2]}"
                                               for a, r in rows.items()), flush=True)
    print(f"\n{len(cases)} validation cases moved like a hand-held camera; mean MEF-SSIM against the unmoved frames")
    for align, r in rows.items():
        a = np.array(r)
        print(f"align {align:5} mertens {a[:, 0].mean():.4f}  lut+detail {a[:, 1].mean():.4f}  "
              f"min lut+detail {a[:, 1].min():.4f}  frames registered {int(a[:, 2].sum())}/{len(a) * 2}")


def own_registration(reference: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """The frame->reference homography registration finds for a pair as shot, with its apply checks switched off
    (every estimate kept, however small): the offset a known motion is added to."""
    from lutfuse.core import registration

    saved = registration.MIN_GAIN, registration.MIN_CORNER_PX, registration.STATIC_CORNER_PX
    registration.MIN_GAIN = registration.MIN_CORNER_PX = registration.STATIC_CORNER_PX = -1.0
    try:
        return registration.estimate(registration.Reference(reference), frame, "auto").matrix
    finally:
        registration.MIN_GAIN, registration.MIN_CORNER_PX, registration.STATIC_CORNER_PX = saved


def run_accuracy(args: argparse.Namespace) -> None:
    from pathlib import Path

    from lutfuse.core.bracket import load_image
    from lutfuse.core.registration import Reference, estimate, warp_frame

    root = Path(args.data) / "brackets" / "hdrps"
    # scenes whose own frames are registered to begin with (docs/studies/registration_tripod.py moves none of their
    # frames); e.g. Ahwahnee_Great_Lounge's frames differ in scale by 0.5 %, so a known motion added to them is not
    # the motion registration should find
    names = args.names.split(",") if args.names else None
    scenes = [p for p in sorted(root.iterdir()) if p.is_dir() and (names is None or p.name in names)][: args.scenes]
    rng = np.random.default_rng(3)
    for size in args.sizes.split(","):
        w, h = (int(v) for v in size.split("x"))
        errors, est_s, warp_s, cpu = [], [], [], []
        for scene in scenes:
            ref = cv2.resize(load_image(scene / "04.png")[0], (w, h), interpolation=cv2.INTER_CUBIC)
            for j in args.frames:  # default 1, 6: 3 stops darker, 2 brighter
                frame = cv2.resize(load_image(scene / f"{j:02d}.png")[0], (w, h), interpolation=cv2.INTER_CUBIC)
                own = own_registration(ref, frame) if args.against == "own" else np.eye(3)
                t = hand_held(w, h, rng)
                if args.against == "consistent":
                    other = hand_held(w, h, rng)
                    again = cv2.warpPerspective(frame, np.linalg.inv(other), (w, h), flags=cv2.INTER_LINEAR,
                                                borderMode=cv2.BORDER_REFLECT)
                    own = estimate(Reference(ref), again, "auto").matrix @ np.linalg.inv(other)
                    del again
                moved = cv2.warpPerspective(frame, np.linalg.inv(t), (w, h), flags=cv2.INTER_LINEAR,
                                            borderMode=cv2.BORDER_REFLECT)
                del frame
                t0, c0 = time.perf_counter(), time.process_time()
                rec = estimate(Reference(ref), moved, "auto")
                t1, c1 = time.perf_counter(), time.process_time()
                warp_frame(moved, rec.matrix)
                t2, c2 = time.perf_counter(), time.process_time()
                cpu.append((c1 - c0, c2 - c1))
                errors.append(corner_error(rec.matrix, own @ t, w, h))
                est_s.append(t1 - t0)
                warp_s.append(t2 - t1)
                print(f"{size} {scene.name} {j:02d}: {rec.model} applied={rec.applied} corner error "
                      f"{errors[-1]:.3f} px, estimate {est_s[-1]:.2f} s (CPU {cpu[-1][0]:.2f} s), warp "
                      f"{warp_s[-1]:.2f} s (CPU {cpu[-1][1]:.2f} s)", flush=True)
        e = np.array(errors)
        print(f"{size}: corner error median {np.median(e):.3f} px, 90th pct {np.percentile(e, 90):.3f}, max "
              f"{e.max():.3f}, under 0.5 px {int((e < 0.5).sum())}/{len(e)}; estimate median "
              f"{np.median(est_s):.2f} s (CPU {np.median([c[0] for c in cpu]):.2f} s), full-size warp median "
              f"{np.median(warp_s):.2f} s (CPU {np.median([c[1] for c in cpu]):.2f} s) per frame, one thread",
              flush=True)


def main() -> None:
    cv2.setNumThreads(1)  # a shared machine: one thread per study process
    import torch

    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", choices=("static", "handheld", "accuracy"))
    parser.add_argument("data")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--sources", default="hdrps,forth,deepfuse,hdr")
    parser.add_argument("--deghost", default="low,medium,high", help="static: the deghost strengths to score")
    parser.add_argument("--k", type=lambda t: [int(v) for v in t.split(",")], default=[2, 3])
    parser.add_argument("--sizes", default="1224x816,6000x4000")
    parser.add_argument("--scenes", type=int, default=6)
    parser.add_argument("--names", default="Cemetery_Tree_1,Devil_s_Golf_Course,El_Capitan,Ben_Jerry_s")
    parser.add_argument("--frames", type=lambda t: [int(v) for v in t.split(",")], default=[1, 6],
                        help="accuracy: the hdrps frames registered to frame 04")
    parser.add_argument("--against", choices=("known", "own", "consistent"), default="known",
                        help="accuracy: the error against the known motion alone, composed with the pair's own "
                             "registration, or composed with the offset a second known motion implies")
    args = parser.parse_args()
    {"static": run_static, "handheld": run_handheld, "accuracy": run_accuracy}[args.study](args)


if __name__ == "__main__":
    main()
