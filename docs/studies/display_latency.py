"""How long a finished 24 MP render takes to reach the screen in the editor, before and after showing it from a
screen-sized copy (issue 10: 0.7-2.3 s to appear although the render took 23-495 ms).

    QT_QPA_PLATFORM=offscreen python docs/studies/display_latency.py [--size 6000x4000] [--repeat 3]

"before": the old path (convert the whole float render to uint8, histogram it, hand all of it to the view);
"after": app.state.display_copy at the screen's side (2560 px), then the same. Each is timed until the view
has painted (a grab of the viewer), median of --repeat runs. Prints one line per path.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
from PySide6.QtWidgets import QApplication

from lutfuse.app.state import display_copy, histograms, to_display
from lutfuse.app.viewer import ImageViewer


def main() -> int:
    """Time both display paths on a synthetic render of --size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="6000x4000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--side", type=int, default=2560, help="screen's longest side in pixels")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    app = QApplication(sys.argv[:1])
    rng = np.random.default_rng(0)
    # a smooth gradient with noise: the cost does not depend on content, only on the size
    render = (np.linspace(0, 1, w, dtype=np.float32)[None, :, None] * np.ones((h, 1, 3), np.float32)
              + 0.02 * rng.standard_normal((h, 1, 3)).astype(np.float32)).clip(0, 1)
    viewer = ImageViewer()
    viewer.resize(1600, 1000)
    viewer.show()
    viewer.set_images(None, to_display(render[:8, :8]), (w, h))
    app.processEvents()
    for name, convert in (("before", to_display), ("after", lambda im: display_copy(im, args.side))):
        worker, gui = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            pixels = convert(render)      # on the render thread
            histograms(pixels)
            t1 = time.perf_counter()
            viewer.set_after(pixels, render)
            viewer.grab()                 # on the GUI thread: hand over and paint the view
            worker.append(t1 - t0)
            gui.append(time.perf_counter() - t1)
        total = statistics.median(a + b for a, b in zip(worker, gui))
        print(f"{name}: {total * 1000:.0f} ms to screen for a {w}×{h} render (render thread "
              f"{statistics.median(worker) * 1000:.0f} ms, GUI thread blocked {statistics.median(gui) * 1000:.0f} ms;"
              f" shown at {pixels.shape[1]}×{pixels.shape[0]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
