"""The LUT grid-size range and its check: one home for every caller (engine, CLI, eval, settings files, editor).

G = 2 is the coarsest lattice a trilinear LUT has; 129 is the largest `.cube` grid OpenColorIO reads (and what
Resolve and Photoshop accept), so every grid LUTFuse samples can be exported. No torch here: the settings files
and the editor's controls import it cheaply. `core.fusion` re-exports these names.
"""

from __future__ import annotations

import math
import numbers

from lutfuse.core.errors import LUTFuseError

MIN_GRID, MAX_GRID = 2, 129


def check_grid(grid_size: object) -> int:
    """The grid size as an int; LUTFuseError unless it is an integer in [MIN_GRID, MAX_GRID] = [2, 129]."""
    number = isinstance(grid_size, numbers.Real) and not isinstance(grid_size, bool)
    try:
        value = float(grid_size) if number else math.nan  # type: ignore[arg-type]  # a Real, checked
    except OverflowError:   # an int too large for a float
        value = math.inf
    if not (value.is_integer() and MIN_GRID <= value <= MAX_GRID):
        raise LUTFuseError(f"LUT grid size {grid_size!r}: must be an integer between {MIN_GRID} and {MAX_GRID}")
    return int(value)
