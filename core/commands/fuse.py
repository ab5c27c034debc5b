"""`lutfuse fuse`: fuse one bracket into an image with the learned LUT, Mertens, or the HQ refinement."""

from __future__ import annotations

import argparse

import numpy as np
from tqdm import tqdm

from lutfuse.core.commands.common import (
    add_bracket_arguments,
    add_device_arguments,
    add_output_arguments,
    check_device_arguments,
    check_output,
    image_options,
    output_bit_depth,
    print_notes,
)
from lutfuse.core.errors import shown_path

METHODS = ("lut", "mertens", "hq")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `fuse` subcommand."""
    p = sub.add_parser(
        "fuse",
        help="fuse a bracket into one image",
        description="Fuse 2-9 exposures into one image. The output keeps the middle frame's EXIF, XMP and ICC profile "
                    "(sRGB when untagged) and lists the bracket's exposures in its ImageDescription.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_bracket_arguments(p)
    add_output_arguments(p)
    p.add_argument("--method", choices=METHODS, default="lut",
                   help="lut: learned 3D LUT + detail (real time); mertens: classical exposure fusion; "
                        "hq: two-phase neural refinement (slow, best quality)")
    p.add_argument("--grid", type=int, default=33, help="LUT grid size, 2-129 (method lut)")
    p.add_argument("--detail", type=float, default=1.0, help="local-contrast strength, 0 = pure LUT (method lut)")
    add_device_arguments(p)
    p.set_defaults(func=run)


def fuse_bracket(bracket, method: str, *, grid: int = 33, detail: float = 1.0,
                 device: str | None = None, kernels: str | None = None,
                 progress: tqdm | None = None) -> np.ndarray:
    """Fuse a loaded Bracket with the named method -> H×W×3 float32 RGB in [0,1].

    device: core.device.pick_device's choices (None = auto); kernels: the engine's (method lut)."""
    if method == "mertens":
        from lutfuse.core.classical import mertens

        return mertens(bracket.images)
    if method == "lut":
        from lutfuse.core.fusion import Engine

        engine = Engine(device=device, kernels=kernels)
        engine.set_bracket(bracket)
        return engine.render(grid_size=grid, detail=detail)
    if method == "hq":
        from lutfuse.core.hq import HQFusion

        def report(fraction: float) -> None:
            if progress is not None:
                progress.n = round(100 * fraction)
                progress.refresh()

        return HQFusion(device=device).fuse(bracket.images, progress=report)
    raise ValueError(f"unknown method {method!r}")


def run(args: argparse.Namespace) -> int:
    """Load, fuse and write one bracket; returns the exit status."""
    from lutfuse.core.bracket import frame_paths, load_bracket, relative_evs
    from lutfuse.core.imageio import write_image
    from lutfuse.core.metadata import OutputMetadata

    args.frames = frame_paths(args.frames)  # bad frames (link loop, FIFO, missing...) fail before anything else
    check_output(args.output, args.frames, args.force)
    check_device_arguments(args)
    if args.method == "lut" and not 2 <= args.grid <= 129:
        from lutfuse.core.errors import LUTFuseError

        raise LUTFuseError(f"--grid {args.grid}: the grid size must be between 2 and 129")
    if args.bit_depth == 16:
        output_bit_depth(args.output, 16, 8)  # fail fast on JPEG before loading anything

    bracket = load_bracket(args.frames, align=not args.no_align)
    print_notes("fuse", bracket.notes)
    evs = relative_evs([f.ev for f in bracket.frames])
    frames = ", ".join(f"{shown_path(f.path.name)} ({ev:+.1f} EV)" for f, ev in zip(bracket.frames, evs))
    source = "EXIF" if all(f.ev_source == "exif" for f in bracket.frames) else "brightness"
    tqdm.write(f"{len(bracket.frames)} frames, darkest first, EV from {source} relative to the middle: {frames}")
    with tqdm(total=100, desc=f"fusing ({args.method})", unit="%", leave=False) as bar:
        fused = fuse_bracket(bracket, args.method, grid=args.grid, detail=args.detail,
                             device=args.device, kernels=args.kernels, progress=bar)
        bar.n = 100
        bar.refresh()
    bits = output_bit_depth(args.output, args.bit_depth, bracket.bit_depth)
    from lutfuse.core.weights import shipped

    origin = {"lut": str(shipped("LUT student")),
              "hq": f"{shipped('HQ phase 1')} and {shipped('HQ phase 2').name}"}.get(args.method, "the fusion")
    path = write_image(args.output, fused, bit_depth=bits, metadata=OutputMetadata.from_bracket(bracket),
                       overwrite=args.force, inputs=[f.path for f in bracket.frames], origin=origin,
                       **image_options(args))
    tqdm.write(f"wrote {shown_path(path)} ({fused.shape[1]}×{fused.shape[0]}, {bits}-bit, method {args.method})")
    return 0
