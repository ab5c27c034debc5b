"""Argument helpers shared by the subcommands that read brackets and write images."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

from lutfuse.core.errors import OutputError, shown_path
from lutfuse.core.imageio import (
    FORMATS,
    JPEG_SUBSAMPLINGS,
    TIFF_COMPRESSIONS,
    check_distinct_outputs,
    check_writable,
)

IMAGE_SUFFIXES = FORMATS


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every command's --help: "(default: X)" only where an option has a default worth stating (not None, not
    an off flag) that its text does not already give."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text.lower():
            return action.help
        return super()._get_help_string(action)


def add_bracket_arguments(parser: argparse.ArgumentParser) -> None:
    """FRAME... (files or one folder), registration (--align, --no-align, --transforms, --crop) and deghosting
    (--deghost, --ghost-mask)."""
    from lutfuse.core.deghost import DEFAULT, STRENGTHS
    from lutfuse.core.registration import MODES

    parser.add_argument("frames", nargs="+", metavar="FRAME", type=Path,
                        help="2-9 exposures of one scene (JPEG, PNG, TIFF, HEIC, camera RAW), or one folder of them")
    parser.add_argument("--reference", type=int, default=None, metavar="N",
                        help="the reference frame, 1-based in darkest-first order (default: the middle frame): "
                             "the others are registered and deghosted to it, and it fills what they lack")
    # one or the other: given both, argparse would let the later silently win
    align = parser.add_mutually_exclusive_group()
    align.add_argument("--align", choices=MODES, default="auto",
                        help="registration to the reference frame: auto = the most general model (similarity or "
                             "homography) that measurably improves on leaving the frame as it is; a frame that "
                             "does not improve is left untouched, so tripod brackets come out unchanged")
    align.add_argument("--no-align", dest="align", action="store_const", const="off",
                        help="same as --align off")
    parser.add_argument("--transforms", type=Path, default=None, metavar="FILE",
                        help="write each input file's 3×3 homography onto the output (JSON)")
    parser.add_argument("--crop", action="store_true",
                        help="trim the output to the largest rectangle every registered frame covers "
                             "(default: the reference frame's size, borders filled from the frames that cover them)")
    parser.add_argument("--deghost", choices=tuple(STRENGTHS), default=DEFAULT,
                        help="take moving content from the reference frame: off, or detection strength low/medium/high")
    parser.add_argument("--ghost-mask", type=Path, default=None, metavar="PATH",
                        help="write where deghosting found moving content (8-bit grey PNG, 255 = moved)")


def check_bracket_outputs(args: argparse.Namespace) -> None:
    """Fail before any work when --transforms or --ghost-mask cannot be written (an input file among them: the
    frames of a folder given as FRAME too), or when two outputs share a file."""
    from lutfuse.core.bracket import frame_paths

    inputs = frame_paths(args.frames)
    check_distinct_outputs([("the output (-o)", getattr(args, "output", None)), ("--base", getattr(args, "base", None)),
                            ("--transforms", args.transforms), ("--ghost-mask", args.ghost_mask)])
    if args.transforms is not None:
        if args.transforms.suffix.lower() != ".json":
            raise OutputError(f"{shown_path(args.transforms)}: the transforms are JSON; name the file .json")
        check_writable(args.transforms, overwrite=args.force, inputs=inputs, replace_hint="use --force to replace it")
    if args.ghost_mask is not None:
        if args.ghost_mask.suffix.lower() != ".png":
            raise OutputError(f"{shown_path(args.ghost_mask)}: the ghost mask is a PNG; name it .png")
        if args.deghost == "off":
            raise OutputError(f"{shown_path(args.ghost_mask)}: --ghost-mask needs --deghost low, medium or high")
        check_writable(args.ghost_mask, overwrite=args.force, inputs=inputs, replace_hint="use --force to replace it")


def load_for_output(args: argparse.Namespace, log=print, pending: list | None = None):
    """Load the bracket as --align/--deghost/--crop say, print each frame's transform, write --transforms and
    --ghost-mask (`core.pipeline.load`) -> the Bracket every fusion path then uses."""
    from lutfuse.core.pipeline import load

    return load(args.frames, args, log=log, transforms=args.transforms, ghost_mask=args.ghost_mask,
                overwrite=args.force, pending=pending)


def print_notes(command: str, notes: Iterable[str]) -> None:
    """What the loader noticed (not errors), one line each on stderr: "lutfuse COMMAND: note: ..." (through
    tqdm.write, so that a progress bar on the terminal is redrawn below it instead of sharing its line)."""
    from tqdm import tqdm

    for note in notes:
        tqdm.write(f"lutfuse {command}: note: {note}", file=sys.stderr)


STEP_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}"  # a share of one job: no rate


def progress_bar(total: float, desc: str, *, unit: str | None = None, **kwargs):
    """A tqdm bar for long CLI work, on stderr, shown only when stderr is a terminal (so piped or logged output is
    clean lines) and cleared when done. unit: what is counted (e.g. "bracket", "case"), shown with its rate;
    None: steps of one job, shown as a percentage and the time left, without a meaningless rate."""
    from tqdm import tqdm

    options: dict = {"unit": unit} if unit else {"bar_format": STEP_FORMAT}
    return tqdm(total=total, desc=desc, file=sys.stderr, disable=not sys.stderr.isatty(), leave=False,
                dynamic_ncols=True, **options, **kwargs)


def add_output_arguments(parser: argparse.ArgumentParser, *, what: str = "image") -> None:
    """-o/--output, --force, and for images --bit-depth and --quality."""
    parser.add_argument("-o", "--output", required=True, type=Path, help=f"the {what} to write")
    parser.add_argument("--force", action="store_true", help="replace OUTPUT if it exists")
    if what == "image":
        parser.add_argument("--bit-depth", type=int, choices=(8, 16), default=None,
                            help="8 or 16 bits per channel (16 needs PNG or TIFF); default: 16 for TIFF, 16 "
                                 "for PNG when the sources are 16-bit, else 8")
        parser.add_argument("--quality", type=int, default=95, help="JPEG quality, 1-100")
        parser.add_argument("--subsampling", choices=JPEG_SUBSAMPLINGS, default="444",
                            help="JPEG chroma subsampling (444 keeps full colour resolution)")
        parser.add_argument("--compression", choices=TIFF_COMPRESSIONS, default="deflate",
                            help="TIFF compression (deflate and lzw use the horizontal predictor)")


DEVICE_HELP = "auto (CUDA, then Apple's GPU via MPS, then the CPU), cpu, cuda[:N] or mps"


def add_device_arguments(parser: argparse.ArgumentParser, *, kernels: bool = True) -> None:
    """--device (core.device.pick_device) and, for the engine's commands, --kernels (core.device.check_kernels)."""
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    if kernels:
        parser.add_argument("--kernels", choices=("auto", "torch"), default=None,
                            help="auto: OpenCV/numpy fast paths on the CPU, torch on a GPU; torch: the GPU's code "
                                 "path on any device (default: $LUTFUSE_KERNELS, else auto)")


def check_device_arguments(args: argparse.Namespace) -> None:
    """Fail before any work (one line) when --device names a device this machine lacks or the kernels are bad."""
    from lutfuse.core.device import check_kernels, pick_device

    pick_device(args.device)
    if getattr(args, "method", "lut") == "lut" and hasattr(args, "kernels"):
        check_kernels(args.kernels)


def check_output(output: Path, inputs: list[Path], force: bool, suffixes: set[str] | None = None) -> None:
    """Fail before any work when OUTPUT cannot be written: wrong type, an input, existing, no folder."""
    from lutfuse.core.errors import shown_path

    suffixes = set(IMAGE_SUFFIXES) if suffixes is None else suffixes
    if output.is_dir():
        raise OutputError(f"{shown_path(output)}: is a folder; give the output file's name (e.g. "
                          f"{shown_path(output / ('fused' + ('.jpg' if '.jpg' in suffixes else min(suffixes))))})")
    if output.suffix.lower() not in suffixes:
        suffix = shown_path(output.suffix) or "(no extension)"
        raise OutputError(f"{shown_path(output)}: unsupported output type '{suffix}' "
                          f"(use {', '.join(sorted(suffixes))})")
    check_writable(output, overwrite=force, inputs=inputs, replace_hint="use --force to replace it")


def image_options(args: argparse.Namespace) -> dict:
    """write_image keyword arguments of the image options that add_output_arguments added."""
    return {"quality": args.quality, "subsampling": args.subsampling, "compression": args.compression}


def output_bit_depth(output: Path, requested: int | None, source_bits: int) -> int:
    """8 or 16: what was asked for, else 16 for PNG/TIFF when the sources are 16-bit."""
    from lutfuse.core.export import bit_depth_for

    return bit_depth_for(output, requested, source_bits)

