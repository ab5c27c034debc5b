"""`lutfuse bench`: time every engine stage on a synthetic bracket against OpenCV Mertens in the same run."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from lutfuse.core.commands.common import HelpFormatter
from lutfuse.core.errors import LUTFuseError


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `bench` subcommand."""
    p = sub.add_parser(
        "bench",
        help="time the engine's stages against OpenCV Mertens",
        description="Render a synthetic bracket to PNGs, then time load, align, latent, LUT sampling, apply, "
                    "detail, full-res and preview renders, and OpenCV Mertens on the same frames (median of "
                    "repeats); prints milliseconds, ratios to Mertens, fps and PASS/FAIL lines for the targets.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--size", default="3840x2160", help="bracket size WIDTHxHEIGHT")
    p.add_argument("--frames", type=int, default=3, help="number of exposures, 2-9")
    p.add_argument("--repeat", type=int, default=3, help="timed repeats per stage (the median is reported)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps", "all"), default="all",
                   help="where to run; auto = CUDA, then MPS, then CPU; all = cpu and, when present, cuda and mps")
    p.add_argument("--kernels", choices=("auto", "torch"), default=None,
                   help="auto: OpenCV/numpy fast paths on the CPU; torch: the GPU's code path on any device "
                        "(default: $LUTFUSE_KERNELS, else auto)")
    p.add_argument("--precision", choices=("auto", "float32", "float16", "bfloat16"), default="auto",
                   help="render dtype: auto = float16 on a GPU, float32 on the CPU (float16/bfloat16 on the CPU "
                        "need --kernels torch)")
    p.add_argument("--json", type=Path, default=None, metavar="OUT.json",
                   help="also write the stages, targets and environment as JSON here")
    p.add_argument("--force", action="store_true", help="replace the --json file if it exists")
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
    if args.json is not None:
        from lutfuse.core.imageio import check_writable

        if args.json.suffix.lower() != ".json":
            raise LUTFuseError(f"{args.json}: the report is JSON; name it .json")
        check_writable(args.json, overwrite=args.force, replace_hint="use --force to replace it")
    import torch  # here, not at import: `lutfuse --help` registers this command without loading torch

    from lutfuse.core.device import check_kernels, mps_available, pick_device

    if args.device == "all":
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) + (["mps"] if mps_available() else [])
    else:
        devices = [pick_device(args.device).type]  # LUTFuseError when asked for one this machine lacks
    runs: list[dict] = []
    for device in devices:
        if args.hq:
            stages, peak_gb = run_hq_bench(width, height, args.frames, args.repeat, device,
                                           log=lambda s: print(s, flush=True))
            print(report_hq(stages, peak_gb), flush=True)
            runs.append({"device": device, "hq": True, "peak_gb": round(peak_gb, 3), "width": width,
                         "height": height, "frames": args.frames, "repeat": args.repeat, "stages": stages})
            continue
        stages = run_bench(width, height, args.frames, args.repeat, device, log=lambda s: print(s, flush=True),
                           kernels=args.kernels, precision=args.precision)
        text, _ = report(stages, device)
        print(text, flush=True)
        runs.append({"device": device, "kernels": check_kernels(args.kernels), "precision": args.precision,
                     "width": width, "height": height, "frames": args.frames, "repeat": args.repeat,
                     "stages": stages})
    if args.json is not None:
        from lutfuse.core.bench import json_report
        from lutfuse.core.imageio import commit

        text = json.dumps(json_report(runs), indent=1) + "\n"
        commit(args.json, text.encode(), overwrite=args.force)
        print(f"wrote {args.json}")
    return 0
