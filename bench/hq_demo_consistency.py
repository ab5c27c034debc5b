"""HQ against the live view on the shipped demo bracket: MEF-SSIM, median CIEDE2000 from the live render, mean
chroma C*ab and the halo measure (core.consistency), for the live render (grid 33, detail 1), the HQ export and
OpenCV's Mertens; plus the HQ time. Run: `python bench/hq_demo_consistency.py` (CPU, 2 threads)."""

from __future__ import annotations

import time

import torch

from lutfuse.core.bracket import load_bracket
from lutfuse.core.classical import mertens
from lutfuse.core.consistency import chroma, edge_overshoot, median_delta_e
from lutfuse.core.fusion import Engine
from lutfuse.core.hq import HQFusion
from lutfuse.core.metrics import mef_ssim
from lutfuse.core.paths import demo_frames


def main() -> None:
    torch.set_num_threads(2)
    bracket = load_bracket(demo_frames(), align=False)
    frames = bracket.images
    engine = Engine(device="cpu")
    prepared = engine.prepare(bracket)
    live = engine.render(prepared, 33, 1.0)
    t0 = time.perf_counter()
    hq = HQFusion(device="cpu").fuse(frames, engine=engine, prepared=prepared)
    seconds = time.perf_counter() - t0
    print(f"demo bracket {frames.shape[0]}×{frames.shape[2]}×{frames.shape[1]}")
    for name, out in (("live", live), ("hq", hq), ("mertens", mertens(frames))):
        print(f"{name:8s} MEF-SSIM {mef_ssim(list(frames), out):.4f}  ΔE00 from live {median_delta_e(live, out):.2f}"
              f"  C* {chroma(out):.2f}  halo {edge_overshoot(out, frames)['excess']:.4f}")
    print(f"HQ fuse (live renders + refinement + full-size apply): {seconds:.1f} s")


if __name__ == "__main__":
    main()
