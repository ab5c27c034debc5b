"""`lutfuse metrics`: score a fused image against its source frames (MEF-SSIM), and a reference if given."""

from __future__ import annotations

import argparse
from pathlib import Path

from lutfuse.core.commands.common import HelpFormatter
from lutfuse.core.errors import BracketError


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `metrics` subcommand."""
    p = sub.add_parser(
        "metrics",
        help="print the MEF-SSIM of a fused image against its source frames",
        description="MEF-SSIM (Ma, Zeng and Wang 2015, 3 scales) of FUSED against the source FRAMEs; with "
                    "--reference also PSNR and SSIM against that image.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("frames", nargs="+", metavar="FRAME", type=Path, help="the source exposures, or one folder")
    p.add_argument("--fused", required=True, type=Path, help="the fused image to score")
    p.add_argument("--reference", type=Path, default=None, help="a reference image for PSNR and SSIM")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the frames and the fused image, print the scores."""
    from lutfuse.core.bracket import load_bracket, load_image
    from lutfuse.core.metrics import mef_ssim, psnr, ssim
    from lutfuse.core.readers import check_regular_file

    for path in (args.fused, args.reference):
        if path is not None:
            check_regular_file(path)  # before the frames: a FIFO must not block, a typo must not wait for a load
    # Scoring must see the frames exactly as given: no alignment, which would shift them against the fused image.
    bracket = load_bracket(args.frames, align=False)
    fused, _, _ = load_image(args.fused)
    size = bracket.images.shape[1:3]
    if fused.shape[:2] != size:
        raise BracketError(f"{args.fused}: size {fused.shape[1]}×{fused.shape[0]} differs from the frames' "
                           f"{size[1]}×{size[0]}")
    print(f"MEF-SSIM  {mef_ssim(list(bracket.images), fused):.5f}")
    if args.reference is not None:
        reference, _, _ = load_image(args.reference)
        if reference.shape != fused.shape:
            raise BracketError(f"{args.reference}: size {reference.shape[1]}×{reference.shape[0]} differs from "
                               f"the fused image's {fused.shape[1]}×{fused.shape[0]}")
        print(f"PSNR      {psnr(fused, reference):.3f} dB")
        print(f"SSIM      {ssim(fused, reference):.5f}")
    return 0
