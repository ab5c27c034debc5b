"""`lutfuse cube` (a bracket's learned LUT as a .cube, with its base image) and `lutfuse cube-apply`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from lutfuse.core.commands.common import (
    HelpFormatter,
    add_bracket_arguments,
    add_device_arguments,
    add_output_arguments,
    check_bracket_outputs,
    check_device_arguments,
    check_output,
    image_options,
    load_for_output,
    output_bit_depth,
    print_notes,
    progress_bar,
)
from lutfuse.core.commands.look import add_look_arguments, look_from_args
from lutfuse.core.errors import LUTFuseError, shown_path


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `cube` and `cube-apply` subcommands."""
    p = sub.add_parser(
        "cube",
        help="export a bracket's learned 3D LUT as a .cube file (and the base image it applies to)",
        description="Write the bracket's LUT as an Adobe .cube file. The LUT applies to the base image, the "
                    "colour-keeping base of the registered (and deghosted) frames; --base writes it "
                    "as a 16-bit TIFF so that any tool applying the .cube to it reproduces `lutfuse fuse --detail 0` "
                    "(with the same look flags: the look is part of the LUT).",
        formatter_class=HelpFormatter,
    )
    add_bracket_arguments(p)
    add_output_arguments(p, what=".cube file")
    p.add_argument("--grid", type=int, default=33, help="LUT grid size, 2-129 (OpenColorIO reads up to 129)")
    p.add_argument("--base", type=Path, default=None, help="also write the base image here (16-bit .tif)")
    p.add_argument("--title", default=None, help="TITLE line of the .cube (default: the first frame's name)")
    add_device_arguments(p)
    add_look_arguments(p)
    p.set_defaults(func=run_cube)

    a = sub.add_parser(
        "cube-apply",
        help="apply any .cube 3D LUT to an image",
        description="Apply an Adobe .cube 3D LUT (trilinear) to an image.",
        formatter_class=HelpFormatter,
    )
    a.add_argument("cube", type=Path, metavar="LUT.cube")
    a.add_argument("image", type=Path, metavar="IMAGE")
    add_output_arguments(a)
    a.set_defaults(func=run_cube_apply)


def run_cube(args: argparse.Namespace) -> int:
    """Load the bracket, sample the student LUT at --grid, write the .cube (and the base image): core.export."""
    from lutfuse.core.bracket import frame_paths
    from lutfuse.core.export import export_cube
    from lutfuse.core.fusion import Engine
    from lutfuse.core.grid import check_grid
    from lutfuse.core.pipeline import write_side_outputs

    args.frames = frame_paths(args.frames)  # bad frames (link loop, FIFO, missing...) fail before anything else
    check_output(args.output, args.frames, args.force, suffixes={".cube"})
    check_device_arguments(args)
    if args.base is not None:
        check_output(args.base, args.frames, args.force, suffixes={".tif", ".tiff", ".png"})
    check_bracket_outputs(args)
    try:
        check_grid(args.grid)
    except LUTFuseError as exc:
        raise LUTFuseError(f"--grid {args.grid}: {exc}") from None

    look_from_args(args)  # fail fast on an out-of-range slider
    with progress_bar(3, "cube") as bar:
        side: list = []  # --transforms / --ghost-mask, written after the .cube so that a failed run leaves none
        bracket = load_for_output(args, log=tqdm.write, pending=side)
        print_notes("cube", bracket.notes)
        bar.update()
        engine = Engine(device=args.device, kernels=args.kernels)
        prepared = engine.prepare(bracket)
        bar.update()
        done = export_cube(engine, prepared, args.output, grid=args.grid,
                           look=look_from_args(args, bracket.images), title=args.title, base=args.base,
                           overwrite=args.force)
        write_side_outputs(side, args.force, tqdm.write)
        bar.update()
    tqdm.write(f"wrote {done.cube} ({args.grid}³ entries)" + (f" and base image {args.base}" if args.base else ""))
    if args.base is None:
        # only the .cube was asked for (a colourist may have the base already); without the base it reproduces
        # nothing, so say what it applies to and how to get it
        suggestion = args.output.with_name(f"{args.output.stem}_base.tif")
        tqdm.write(f"lutfuse cube: note: {shown_path(done.cube)} applies to this bracket's base image (the "
                   f"registered, fused base, not any one frame); write it with --base {shown_path(suggestion)}",
                   file=sys.stderr)
    return 0


def run_cube_apply(args: argparse.Namespace) -> int:
    """Apply a .cube file to one image and write the result."""
    from lutfuse.core.cube import apply_cube, read_cube
    from lutfuse.core.imageio import write_image
    from lutfuse.core.metadata import OutputMetadata
    from lutfuse.core.readers import check_regular_file, read_frame

    check_output(args.output, [args.cube, args.image], args.force)
    check_regular_file(args.image)  # a FIFO or link loop fails before the .cube is parsed
    if args.bit_depth == 16:
        output_bit_depth(args.output, 16, 8)  # fail fast on JPEG before reading anything
    cube = read_cube(args.cube)
    # the pixels stay in the image's own encoding (the .cube applies to it), so its profile goes with the output
    decoded = read_frame(args.image)
    print_notes("cube-apply", decoded.notes)
    image, valid = decoded.upright()
    if valid is not None:
        image[~valid] = 0.0
    out = apply_cube(image, cube)
    depth = output_bit_depth(args.output, args.bit_depth, decoded.bit_depth)
    meta = OutputMetadata.from_image(decoded.exif_for_output(), icc=decoded.icc, xmp=decoded.xmp)
    path = write_image(args.output, out, bit_depth=depth, metadata=meta, overwrite=args.force,
                       inputs=[args.cube, args.image], origin=str(args.cube), **image_options(args))
    tqdm.write(f"wrote {shown_path(path)} ({depth}-bit)")
    return 0
