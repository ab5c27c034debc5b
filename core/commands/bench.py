"""`lutfuse bench`: time every engine stage on a synthetic bracket against OpenCV Mertens in the same run."""

from __future__ import annotations

import argparse
import re

import torch

from lutfuse.core.errors import LUTFuseError


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `bench` subcommand."""
    p = sub.add_parser(
        "bench",
        help="time the engine's stages against OpenCV Mertens",
        description="Render a synthetic bracket to PNGs, then time load, align, latent, LUT sampling, apply, "
                    "detail, full-res and preview renders, and OpenCV Mertens on the same frames (median of "
                    "repeats); prints milliseconds, ratios to Mertens, fps and PASS/FAIL lines for the targets.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--size", default="3840x2160", help="bracket size WIDTHxHEIGHT")
    p.add_argument("--frames", type=int, default=3, help="number of exposures, 2-9")
    p.add_argument("--repeat", type=int, default=3, help="timed repeats per stage (the median is reported)")
    p.add_argument("--device", choices=("cpu", "cuda", "all"), default="all",
                   help="where to run; all = cpu and, when present, cuda")
    p.add_argument("--hq", action="store_true",
                   help="time the two-phase HQ export (once) and report peak memory, instead of the engine stages; "
                        "e.g. --hq --size 6000x4000 for a 24-megapixel bracket")
    p.set_defaults(func=run)


def parse_size(text: str) -> tuple[int, int]:
    """'3840x2160' -> (3840, 2160); LUTFuseError for anything else."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text)
    if not m or min(int(m[1]), int(m[2])) < 16:
        raise LUTFuseError(f"--size {text!r}: expected WIDTHxHEIGHT, each at least 16 (e.g. 3840x2160)")
    return int(m[1]), int(m[2])


def run(args: argparse.Namespace) -> int:
    """Run the benchmark on the chosen devices; exit 0 (also when a target is missed: it is a report)."""
    from lutfuse.core.bench import report, report_hq, run_bench, run_hq_bench

    width, height = parse_size(args.size)
    if not 2 <= args.frames <= 9:
        raise LUTFuseError(f"--frames {args.frames}: a bracket has 2 to 9 frames")
    if args.repeat < 1:
        raise LUTFuseError(f"--repeat {args.repeat}: must be at least 1")
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        if args.device == "cuda":
            raise LUTFuseError("--device cuda: no CUDA device is available here")
        print("cuda: no CUDA device here, skipped")
        devices.remove("cuda")
    for device in devices:
        if args.hq:
            stages, peak_gb = run_hq_bench(width, height, args.frames, args.repeat, device,
                                           log=lambda s: print(s, flush=True))
            print(report_hq(stages, peak_gb), flush=True)
            continue
        stages = run_bench(width, height, args.frames, args.repeat, device, log=lambda s: print(s, flush=True))
        text, _ = report(stages, device)
        print(text, flush=True)
    return 0
