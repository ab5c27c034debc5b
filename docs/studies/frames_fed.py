"""Study: does the engine do better fed all frames of a 5-9-frame bracket, or 3 (or 5) of them?

    python docs/studies/frames_fed.py ../shared/data

For each validation stack with at least 5 frames: LUT (detail 0) and LUT + detail (detail 1) with the shipped
student, fed all frames, 5 spread frames, or (darkest, middle, brightest); MEF-SSIM is always scored against ALL
the frames (what the photographer shot), PSNR against the stack's reference. Mertens of all frames for scale.
Result behind the student model card's note and core.fusion feeding every frame.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from lutfuse.core.bracket import Bracket
from lutfuse.core.classical import mertens
from lutfuse.core.fusion import Engine
from lutfuse.core.metrics import mef_ssim, psnr
from lutfuse.core.train import data


def main() -> int:
    """Print mean MEF-SSIM and PSNR per way of feeding the frames."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the shared data folder")
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args()
    engine = Engine(device="cpu")
    scores: dict[str, list[tuple[float, float]]] = {}
    for scene in data.load_scenes(args.data, "val", cache_dir=args.cache_dir):
        n = len(scene.frames)
        if n < 5:
            continue
        feeds = {"all": list(range(n)), "5 spread": sorted(set(np.linspace(0, n - 1, 5).round().astype(int))),
                 "3 (dark, middle, bright)": [0, n // 2, n - 1]}
        for name, idx in feeds.items():
            prepared = engine.prepare(Bracket.from_images(scene.frames[idx]))
            for detail in (0.0, 1.0):
                out = engine.render(prepared, 33, detail)
                scores.setdefault(f"{name}, detail {detail:g}", []).append(
                    (mef_ssim(list(scene.frames), out), psnr(out, scene.reference)))
        scores.setdefault("Mertens of all frames", []).append((mef_ssim(list(scene.frames), mertens(scene.frames)),
                                                               float("nan")))
    print(f"{'fed':<34}{'n':>3}{'MEF-SSIM':>10}{'PSNR':>8}")
    for name, rows in scores.items():
        v = np.array(rows)
        print(f"{name:<34}{len(v):>3}{v[:, 0].mean():>10.4f}{v[:, 1].mean():>8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
