"""The LUT grid-size range and its check: one home for every caller (engine, CLI, eval, settings files, editor).

G = 2 is the coarsest lattice a trilinear LUT has; 129 is the largest `.cube` grid OpenColorIO reads (and what
Resolve and Photoshop accept), so every grid LUTFuse samples can be exported. No torch here: the settings files
and the editor's controls import it cheaply. `core.fusion` re-exports these names.
"""

from __future__ import annotations

import numbers

from lutfuse.core.errors import LUTFuseError

MIN_GRID, MAX_GRID = 2, 129


def check_grid(grid_size: object) -> int:
    """The grid size as an int; LUTFuseError unless it is an integer in [MIN_GRID, MAX_GRID] = [2, 129]."""
    try:
        ok = (not isinstance(grid_size, bool) and isinstance(grid_size, numbers.Real)
              and float(grid_size).is_integer() and MIN_GRID <= grid_size <= MAX_GRID)
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise LUTFuseError(f"LUT grid size {grid_size!r}: must be an integer between {MIN_GRID} and {MAX_GRID}")
    return int(grid_size)  # type: ignore[call-overload]  # checked above: an integral int or float
