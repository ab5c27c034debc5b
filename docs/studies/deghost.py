"""Study behind core.deghost's detection (issue 11): recall on moving objects pasted into real frames and false
positives on static brackets. Run from the repo's parent with the shared data:

    python -m lutfuse.docs.studies.deghost DATA [--limit N] [--strengths low,medium,high] [--rounds R]
                                                [--fusion mertens|lut] [--list]

Cases: the 3-frame validation cases (core.train.data.validation_cases, k = 3: real static brackets, 512 px).
Registered first (--align, default auto, as fuse). Static: each case as it is; the ghost area (fraction of
pixels marked ≥ 0.5) is a false-positive rate.
Moving: in each case, 4 elliptical objects (radius 4-9 % of the short side) are pasted into one non-reference
frame (alternately the darker and the brighter one), each a copy of the same frame's content from elsewhere, so it
carries the frame's own exposure, noise and texture. Objects where the reference or the frame is mostly crushed or
clipped are not counted (nothing there can be compared); an object is "low contrast" when the mean absolute
difference between the pasted and the original content, in gamma-encoded luma, is under 0.08. An object is caught
when ≥ 50 % of its pixels are marked; false positives are marked pixels farther than 10 px from every object.
--rounds R repeats the moving part R times with other objects (round r: seed 5 + 100 r, the pasted frame swapped on
odd rounds); round 0 alone is the default, so the default numbers stay comparable across versions.
Double images: both stacks (with and without the objects) are deghosted and fused by Mertens (--fusion lut: by
LUT + detail, the CLI's default method, at G = 33 and detail 1); an object's residual
is the mean absolute difference in luma between the two fusions over the object and a 5 px ring around it (what
is left of the pasted content, its edges included). A residual over 0.02 is counted as a visible double image.
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np


def paste_objects(frame: np.ndarray, rng: np.random.Generator, count: int = 4
                  ) -> tuple[np.ndarray, list[np.ndarray], list[float]]:
    """The frame with `count` elliptical objects copied from elsewhere in it -> (frame, object masks, contrasts)."""
    from lutfuse.core.colour import luma

    h, w = frame.shape[:2]
    out = frame.copy()
    masks, contrasts = [], []
    for _ in range(count):
        r = int(rng.uniform(0.04, 0.09) * min(h, w))
        cx, cy = int(rng.uniform(r, w - r)), int(rng.uniform(r, h - r))
        for _ in range(20):  # a source far enough from the target
            sx, sy = int(rng.uniform(r, w - r)), int(rng.uniform(r, h - r))
            if abs(sx - cx) > 2 * r or abs(sy - cy) > 2 * r:
                break
        mask = np.zeros((h, w), np.uint8)
        cv2.ellipse(mask, (cx, cy), (r, int(r * 0.7)), float(rng.uniform(0, 180)), 0, 360, 1, -1)
        m = mask.astype(bool)
        shifted = np.roll(np.roll(frame, cy - sy, axis=0), cx - sx, axis=1)
        out[m] = shifted[m]
        masks.append(m)
        contrasts.append(float(np.abs(luma(out[m]) - luma(frame[m])).mean()))
    return out, masks, contrasts


def main() -> None:
    cv2.setNumThreads(1)
    from lutfuse.core.bracket import register_stack
    from lutfuse.core.classical import mertens
    from lutfuse.core.colour import luma
    from lutfuse.core.train.data import validation_cases

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--strengths", default="low,medium,high")
    parser.add_argument("--align", default="auto", help="registration before deghosting, as fuse's --align")
    parser.add_argument("--rounds", type=int, default=1, help="sets of pasted objects per case")
    parser.add_argument("--fusion", choices=("mertens", "lut"), default="mertens",
                        help="the fusion whose double images are measured")
    parser.add_argument("--list", action="store_true", help="name each object that leaves a double image")
    args = parser.parse_args()
    if args.fusion == "lut":
        from lutfuse.core.bracket import Bracket
        from lutfuse.core.fusion import Engine

        engine = Engine(device="cpu")

        def fuse(images: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
            return engine.render(engine.prepare(Bracket.from_images(images, valid=valid)), 33, 1.0)
    else:
        fuse = mertens
    strengths = args.strengths.split(",")
    cases = [c for c in validation_cases(args.data) if c["k"] == 3][: args.limit]
    stats = {s: {"static": [], "caught": [], "caught_low": [], "fp": [], "pixel": [], "residual": []}
             for s in ["off", *strengths]}
    static_fused: dict[tuple[str, str], np.ndarray] = {}
    for rnd, n, case in ((r, n, c) for r in range(args.rounds) for n, c in enumerate(cases)):
        if n == 0:
            rng = np.random.default_rng(5 + 100 * rnd)
        inputs = np.ascontiguousarray(case["inputs"], np.float32)
        target = (0 if n % 2 == 0 else 2) if rnd % 2 == 0 else (2 if n % 2 == 0 else 0)
        moved, masks, contrasts = paste_objects(inputs[target], rng)
        stack = inputs.copy()
        stack[target] = moved
        ref_y, frame_y = luma(inputs[1]), luma(inputs[target])
        usable = [float((((ref_y > 0.04) & (ref_y < 0.96) & (frame_y > 0.04) & (frame_y < 0.96))[m]).mean()) > 0.5
                  for m in masks]
        near = cv2.dilate(np.logical_or.reduce(masks).astype(np.uint8), np.ones((21, 21), np.uint8)) > 0
        line = [f"{case['key']} round {rnd}"]
        for s in ["off", *strengths]:
            if (case["key"], s) not in static_fused:
                work = inputs.copy()
                _, valid, ghost = register_stack(work, None, args.align, s)
                static_fused[case["key"], s] = luma(fuse(work, valid))
                if s != "off":
                    stats[s]["static"].append(float((ghost >= 0.5).mean()))
            work = stack.copy()
            _, valid, ghost = register_stack(work, None, args.align, s)
            residual = np.abs(luma(fuse(work, valid)) - static_fused[case["key"], s])
            marked = np.zeros(residual.shape, bool) if ghost is None else ghost >= 0.5
            for k, (m, c, u) in enumerate(zip(masks, contrasts, usable)):
                if not u:
                    continue
                hit = float(marked[m].mean())
                stats[s]["pixel"].append(hit)
                stats[s]["caught"].append(hit >= 0.5)
                if c < 0.08:
                    stats[s]["caught_low"].append(hit >= 0.5)
                ring = cv2.dilate(m.astype(np.uint8), np.ones((11, 11), np.uint8)) > 0
                stats[s]["residual"].append(float(residual[ring].mean()))
                if args.list and s != "off" and stats[s]["residual"][-1] > 0.02:
                    print(f"  double image at {s}: {case['key']} round {rnd} object {k} (frame {target}): "
                          f"{hit:.0%} marked, residual {stats[s]['residual'][-1]:.3f}, contrast {c:.3f}", flush=True)
            stats[s]["fp"].append(float(marked[~near].mean()))
            if s != "off":
                line.append(f"{s}: static {stats[s]['static'][-1]:.4f} fp {stats[s]['fp'][-1]:.4f}")
        print("  ".join(line), flush=True)
    print(f"\n{len(cases)} cases × {args.rounds} rounds, {len(stats['off']['caught'])} usable objects "
          f"({len(stats['off']['caught_low'])} low contrast)")
    for s in ["off", *strengths]:
        a = stats[s]
        res = np.array(a["residual"])
        line = f"{s:7} double images (residual > 0.02) {np.mean(res > 0.02):.0%}  mean residual {res.mean():.4f}"
        if s != "off":
            line = (f"{s:7} caught {np.mean(a['caught']):.0%}  low-contrast caught {np.mean(a['caught_low']):.0%}  "
                    f"pixel recall {np.mean(a['pixel']):.0%}  false positives {np.mean(a['fp']):.4f}  "
                    f"static ghost area mean {np.mean(a['static']):.4f} max {np.max(a['static']):.4f}\n        "
                    + line[8:])
        print(line)


if __name__ == "__main__":
    main()
