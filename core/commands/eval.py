"""`lutfuse eval`: the validation table (every method against the dense-stack reference) on the shared data."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tqdm import tqdm

from lutfuse.core.commands.common import HelpFormatter, add_device_arguments, progress_bar
from lutfuse.core.errors import LUTFuseError, OutputError


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `eval` subcommand."""
    from lutfuse.core.evaluate import METHODS  # light: numpy only until evaluate() runs

    p = sub.add_parser(
        "eval",
        help="the validation table: MEF-SSIM, PSNR, SSIM and time per method",
        description="Score every method on the validation cases of DATA_DIR (each scene with its 2 extreme "
                    "exposures, and with the middle one too when the stack has it): MEF-SSIM against the inputs, "
                    "PSNR and SSIM against the reference (Mertens of ALL the stack's frames), seconds per case; "
                    "means per method, per number of inputs k, and an optional grid-size sweep. Methods whose "
                    "weights are missing are skipped with a note, unless named with --methods.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("data", type=Path, metavar="DATA_DIR",
                   help="the shared data folder (holding brackets/ and hdr/), or its brackets/ folder")
    p.add_argument("--split", choices=("val", "train"), default="val",
                   help="which scenes: the validation or the training split of the shipped models")
    p.add_argument("--methods", nargs="+", default=None, metavar="METHOD",
                   help=f"methods to score, space- or comma-separated, from: {', '.join(METHODS)} "
                        "; when not given, all whose weights exist")
    p.add_argument("--grid", type=int, default=33, help="LUT grid size for the lut rows, 2-129")
    p.add_argument("--detail", type=float, default=1.0, help="detail strength of the lut+detail row")
    p.add_argument("--contrast-power", type=float, default=None,
                   help="how strongly the detail bands favour the frame with more local structure "
                        "(0 = Mertens' weights; default: the engine's)")
    p.add_argument("--base", choices=("calibrated", "chroma", "weighted", "mean"), default=None,
                   help="the base image the LUT applies to (default: the engine's, calibrated)")
    p.add_argument("--grid-sweep", default=None, metavar="G,G,...",
                   help="also score the pure LUT at these grid sizes, e.g. 8,16,32,64")
    p.add_argument("--ks", default=None, metavar="K,K-K",
                   help="bracket sizes to score, e.g. 2-9 (k ≥ 4: k frames evenly spaced over stacks that have "
                        "them); default 2,3")
    p.add_argument("--scenes", default=None, metavar="PREFIX,...",
                   help="score only the split's scenes whose key starts with one of these, e.g. hdrps or "
                        "hdrps/Flamingo,forth (the 9-frame hdrps stacks have every k from 2 to 9)")
    from lutfuse.core.registration import MODES

    p.add_argument("--align", choices=MODES, default="auto",
                   help="register each case's inputs before fusing, as `lutfuse fuse --align` (default: fuse's); "
                        "methods are then scored against the registered frames, on the area all of them cover")
    p.add_argument("--no-align", dest="align", action="store_const", const="off", help="same as --align off")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="score only the first N cases")
    p.add_argument("--max-side", type=int, default=512, help="longest side the scenes are scored at, in pixels")
    p.add_argument("--weights-dir", type=Path, default=None,
                   help="folder with lut_student.pt, refine_phase1.pt, refine_phase2.pt; when not given, "
                        "the shipped resources/weights")
    add_device_arguments(p, kernels=False)
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="cache the loaded scenes here (.npz), so later runs skip decoding and rendering")
    p.add_argument("--json", type=Path, default=None, metavar="OUT.json",
                   help="also write every case, mean and setting here")
    p.add_argument("--force", action="store_true", help="replace the --json file if it exists")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate, print the tables, write the JSON; returns the exit status."""
    from lutfuse.core.evaluate import evaluate, format_report
    from lutfuse.core.imageio import check_writable, commit

    if args.json is not None:
        if args.json.suffix.lower() != ".json":
            raise OutputError(f"{args.json}: the results file is JSON; name it .json")
        check_writable(args.json, overwrite=args.force, replace_hint="use --force to replace it")
    if args.limit is not None and args.limit < 1:
        raise LUTFuseError(f"--limit {args.limit}: must be at least 1")

    bars: list[tqdm] = []  # made at the first report, once the arguments and the data folder have been checked

    def progress(done: int, total: int, case: str) -> None:
        if not bars:
            bars.append(progress_bar(total, "eval", unit="case"))
        bar = bars[0]
        bar.n = done
        if case:
            bar.set_postfix_str(case, refresh=False)
        bar.refresh()

    try:
        result = evaluate(args.data, methods=args.methods, split=args.split, max_side=args.max_side,
                          grid=args.grid, detail=args.detail, limit=args.limit, grid_sweep=args.grid_sweep, ks=args.ks,
                          progress=progress, weights_dir=args.weights_dir, device=args.device,
                          cache_dir=args.cache_dir, contrast_power=args.contrast_power,
                          base=args.base, scenes=args.scenes, align=args.align)
    finally:
        for bar in bars:
            bar.close()
    print(format_report(result), flush=True)
    print(f"{len(result['cases'])} cases in {result['seconds_total']:.1f} s")
    if args.json is not None:
        text = json.dumps(result, indent=1, allow_nan=False) + "\n"
        try:
            commit(args.json, text.encode(), overwrite=args.force)
        except OutputError as exc:
            raise OutputError(str(exc).replace("(pass overwrite to", "(use --force to")) from None
        print(f"wrote {args.json}")
    return 0
