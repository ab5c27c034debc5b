"""Probes of core.deghost and core.registration with moving content (issue 11). Run from the repo's parent:

    python -m lutfuse.docs.studies.movers registration DATA
    python -m lutfuse.docs.studies.movers large DATA
    python -m lutfuse.docs.studies.movers timing DATA

registration: do movers bias registration? The 9-frame hdrps scenes as brackets of frames 2/4/6; one non-reference
frame (alternately the darker and the brighter) moved by a random hand-held homography (docs/studies/registration's
`hand_held`, seeded), with and without 4 objects pasted into it (docs/studies/deghost's `paste_objects`); the corner
error of the estimate against the known motion (tripod scenes: no motion of their own to speak of). Also the
registration check's score of the estimate and of the known motion: where they are equal, the check cannot tell them
apart.
large: large movers (a person close to the camera). In each 3-frame validation case one non-reference frame gets an
ellipse (axes 0.6 r × r, r = 15 % and 30 % of the short side) of its own content mirrored left-right; the share of
it marked at low, and Mertens' residual over it and a 5 px ring (as the deghost study's) with deghosting off and low.
timing: CPU time of ghost_mask at low per frame pair of the 3-frame validation cases (512 px), on one thread.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np


def run_registration(data: str) -> None:
    from pathlib import Path

    from lutfuse.core.bracket import load_image
    from lutfuse.core.registration import (
        Reference,
        _lumas_at,
        _make_view,
        _rescale,
        _scaling,
        _sparse,
        register,
        score,
        tone_curve,
    )
    from lutfuse.docs.studies.deghost import paste_objects
    from lutfuse.docs.studies.registration import corner_error, hand_held

    root = Path(data) / "brackets" / "hdrps"
    rng = np.random.default_rng(11)
    errors: dict[str, list[float]] = {"without": [], "with": []}
    scenes = sorted(p.name for p in root.iterdir() if len(list(p.glob("*.png"))) >= 9)
    for n, scene in enumerate(scenes):
        inputs = np.stack([load_image(root / scene / f"{i:02d}.png")[0] for i in (2, 4, 6)])
        h, w = inputs.shape[1:3]
        target = 0 if n % 2 == 0 else 2
        truth = hand_held(w, h, rng)
        moved, _, _ = paste_objects(inputs[target], rng)
        line = [f"{scene:24}"]
        for name, content in (("without", inputs[target]), ("with", moved)):
            stack = inputs.copy()
            # the frame as the camera saw it: its pixel x shows the reference's content at truth @ x
            stack[target] = cv2.warpPerspective(content, truth, (w, h), flags=cv2.INTER_LANCZOS4 | cv2.WARP_INVERSE_MAP,
                                                borderMode=cv2.BORDER_REFLECT)
            rec = register(stack, "auto")[target]
            errors[name].append(corner_error(rec.matrix, truth, w, h) if rec.applied else float("nan"))
            line.append(f"{name} movers {errors[name][-1]:.3f} px")
            if name == "without":
                ref = Reference(inputs[1])
                grey = _lumas_at(stack[target], [ref.size], None)[0]
                view = _make_view(grey, tone_curve(grey, ref.grey))
                known = score(ref.view, view, _rescale(truth, _scaling(ref.size[0] / w, ref.size[1] / h)),
                              wide=_sparse(ref.view, view))
                line.append(f"(score: estimate {rec.score:.4f}, known motion {known:.4f})")
        print("  ".join(line), flush=True)
    for name, values in errors.items():
        v = np.array(values)
        print(f"{name} movers: corner error median {np.nanmedian(v):.3f} mean {np.nanmean(v):.3f} "
              f"max {np.nanmax(v):.3f} px, unregistered {int(np.isnan(v).sum())} of {v.size}")


def run_large(data: str) -> None:
    from lutfuse.core.bracket import register_stack
    from lutfuse.core.classical import mertens
    from lutfuse.core.colour import luma
    from lutfuse.core.deghost import ghost_mask
    from lutfuse.core.train.data import validation_cases

    cases = [c for c in validation_cases(data) if c["k"] == 3]
    rng = np.random.default_rng(1)
    for n, case in enumerate(cases):
        x = np.ascontiguousarray(case["inputs"], np.float32)
        h, w = x.shape[1:3]
        target = 0 if n % 2 == 0 else 2
        for frac in (0.15, 0.3):
            r = int(frac * min(h, w))
            cx, cy = int(rng.uniform(r, w - r)), int(rng.uniform(r, h - r))
            mask = np.zeros((h, w), np.uint8)
            cv2.ellipse(mask, (cx, cy), (int(r * 0.6), r), 0, 0, 360, 1, -1)
            m = mask.astype(bool)
            stack = x.copy()
            stack[target][m] = x[target][:, ::-1][m]
            ry, fy = luma(x[1]), luma(x[target])
            usable = float((((ry > 0.04) & (ry < 0.96) & (fy > 0.04) & (fy < 0.96))[m]).mean())
            hit = float((ghost_mask(stack[target], x[1], "low")[m] >= 0.5).mean())
            ring = cv2.dilate(mask, np.ones((11, 11), np.uint8)) > 0
            residual = {}
            for strength in ("off", "low"):
                fused = []
                for frames in (stack, x):
                    work = frames.copy()
                    _, valid, _ = register_stack(work, None, "auto", strength)
                    fused.append(luma(mertens(work, valid)))
                residual[strength] = float(np.abs(fused[0] - fused[1])[ring].mean())
            print(f"{case['key']:30} r {frac:.0%}  usable {usable:.2f}  marked {hit:.2f}  residual off "
                  f"{residual['off']:.3f} low {residual['low']:.3f}", flush=True)


def run_timing(data: str) -> None:
    from lutfuse.core.deghost import ghost_mask
    from lutfuse.core.train.data import validation_cases

    cv2.setNumThreads(1)
    cases = [c for c in validation_cases(data) if c["k"] == 3]
    pairs = [(np.ascontiguousarray(c["inputs"][t], np.float32), np.ascontiguousarray(c["inputs"][1], np.float32))
             for c in cases for t in (0, 2)]
    for frame, reference in pairs[:4]:  # warm-up
        ghost_mask(frame, reference, "low")
    for _ in range(3):
        start = time.process_time()
        for frame, reference in pairs:
            ghost_mask(frame, reference, "low")
        print(f"ghost_mask at low: {(time.process_time() - start) / len(pairs) * 1000:.1f} ms CPU per pair "
              f"({len(pairs)} pairs)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", choices=("registration", "large", "timing"))
    parser.add_argument("data")
    args = parser.parse_args()
    {"registration": run_registration, "large": run_large, "timing": run_timing}[args.study](args.data)


if __name__ == "__main__":
    main()
