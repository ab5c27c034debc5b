"""How often registration moves frames of real tripod brackets (issue 11: "never worse than doing nothing").

    python -m lutfuse.docs.studies.registration_tripod DATA [--source hdrps]

Registers every scene of one source of the shared data (frames 1/4/7 and 0/4/8 of 9-frame stacks, else the first,
middle and last frame) with align="auto" and prints each frame that would be moved (corner px, score gain); a frame
that is not moved is left bit-identical. Frames whose estimate passes the score check but moves no corner by more
than MIN_CORNER_PX are listed too ("held"): they are the ones a lower threshold would start moving.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np


def main() -> None:
    from lutfuse.core.bracket import load_image
    from lutfuse.core.registration import MIN_CORNER_PX, MIN_GAIN, register

    cv2.setNumThreads(1)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data")
    parser.add_argument("--source", default="hdrps")
    args = parser.parse_args()
    scenes = sorted(p for p in (Path(args.data) / "brackets" / args.source).iterdir() if p.is_dir())
    total = moved = held = 0
    for scene in scenes:
        files = sorted(p for p in scene.iterdir() if p.suffix.lower() in (".png", ".jpg"))
        picks = [[1, 4, 7], [0, 4, 8]] if len(files) == 9 else [[0, len(files) // 2, len(files) - 1]]
        for pick in picks:
            stack = np.stack([load_image(files[i])[0] for i in pick])
            for rec in register(stack, "auto"):
                if rec.model == "reference":
                    continue
                total += 1
                moved += rec.applied
                name = f"{scene.name} {files[pick[rec.index]].name} (frames {pick})"
                if rec.applied:
                    print(f"{name}: {rec.describe()}", flush=True)
                elif rec.gain >= MIN_GAIN and rec.corner_px <= MIN_CORNER_PX:
                    held += 1
                    print(f"held {name}: {rec.describe()}", flush=True)
    print(f"{args.source}: {moved} of {total} frames moved; {held} more pass the score check but move under "
          f"{MIN_CORNER_PX} px")


if __name__ == "__main__":
    main()
