"""Adobe Cube LUT 1.0 (.cube) 3D LUTs: read, write (atomically) and apply.

A ``.cube`` table lists its entries with red varying fastest, then green, then blue: exactly the C order of the
LUTFuse layout ``lut[b, g, r, c]`` (``core/lut.py``), so the table is read and written without any transpose.

Written files: an optional ``TITLE "..."`` line, ``# `` comment lines, ``LUT_3D_SIZE``, ``DOMAIN_MIN`` and
``DOMAIN_MAX``, then G³ rows of three numbers with six decimals, LF line endings.

Read files may also have CRLF (or CR) line endings, a UTF-8 byte-order mark, blank lines, ``#`` comments anywhere
(also after a row), keywords in any order before the table, and DaVinci Resolve's ``LUT_3D_INPUT_RANGE lo hi``
(the same as a DOMAIN of (lo, lo, lo)-(hi, hi, hi)). 1D LUTs (``LUT_1D_SIZE``) are refused: LUTFuse only makes 3D
LUTs, and a combined 1D+3D file would need a shaper stage that nothing here applies.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lutfuse.core.errors import CubeError
from lutfuse.core.imageio import check_writable, commit
from lutfuse.core.lut import apply_lut

MIN_SIZE, MAX_SIZE = 2, 256  # LUT_3D_SIZE range of the Cube LUT 1.0 specification

_KEYWORD = re.compile(r"[A-Z][A-Z0-9_]*\Z")  # what a keyword looks like, so that typos are named as keywords


@dataclass
class CubeFile:
    """A 3D .cube LUT: table G×G×G×3 float32 in the core layout [b, g, r, c], with its title, domain and comments."""

    table: np.ndarray
    title: str | None = None
    domain_min: tuple[float, float, float] = (0.0, 0.0, 0.0)
    domain_max: tuple[float, float, float] = (1.0, 1.0, 1.0)
    comments: list[str] = field(default_factory=list)  # the text of the # lines before the table, without "#"

    @property
    def size(self) -> int:
        """Grid size G."""
        return int(self.table.shape[0])


# -- writing ----------------------------------------------------------------------------------------------------

def _domain(path: Path, name: str, value: Sequence[float]) -> tuple[float, float, float]:
    """A DOMAIN_MIN/MAX argument as three finite floats, else CubeError naming the file."""
    try:
        triple = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        triple = ()
    if len(triple) != 3 or not all(np.isfinite(triple)):
        raise CubeError(f"{path}: {name} must be three finite numbers, got {value!r}")
    return triple  # type: ignore[return-value]


def _title_line(title: str) -> str:
    """TITLE line of a title; a double quote or a line break cannot be written inside it, so they are replaced.

    Titles are made from file names (the CLI's and the editor's defaults); an odd name must not fail an export.
    """
    clean = "".join(" " if ch in "\r\n\t\v\f" else ch for ch in title).replace('"', "'")
    return f'TITLE "{clean}"\n'


def _rows(table: np.ndarray) -> Iterator[bytes]:
    """The table's rows as text, one blue slice per chunk (a 256³ file is ~450 MB: it is never held whole)."""
    for plane in table:
        flat = plane.reshape(-1).astype(np.float64)
        # Rounds-to-zero values would print as "-0.000000": valid, but noise in diffs and in other tools' output.
        flat[np.abs(flat) < 5e-7] = 0.0
        yield (("%.6f %.6f %.6f\n" * (flat.size // 3)) % tuple(flat.tolist())).encode("ascii")


def write_cube(path: str | Path, lut: np.ndarray, *, title: str | None = None, comments: Iterable[str] = (),
               domain_min: Sequence[float] = (0.0, 0.0, 0.0), domain_max: Sequence[float] = (1.0, 1.0, 1.0),
               overwrite: bool = False, inputs: Sequence[str | Path] = ()) -> Path:
    """Write a G×G×G×3 LUT (core layout, 2 ≤ G ≤ 256, usually values in [0,1]) as a .cube file -> path.

    Raises CubeError for a LUT that cannot be written, OutputError if `path` is one of `inputs`, or exists and
    `overwrite` is False, or cannot be written.
    """
    path = Path(path)
    table = np.asarray(lut)
    shape = tuple(table.shape)
    if len(shape) != 4 or shape[3] != 3 or not shape[0] == shape[1] == shape[2]:
        raise CubeError(f"{path}: a 3D LUT must be G×G×G×3, got shape {shape}")
    if not MIN_SIZE <= shape[0] <= MAX_SIZE:
        raise CubeError(f"{path}: LUT size {shape[0]} is outside {MIN_SIZE}..{MAX_SIZE} (the .cube limits)")
    if not np.isfinite(table).all():
        raise CubeError(f"{path}: the LUT contains NaN or infinite values")
    lo, hi = _domain(path, "DOMAIN_MIN", domain_min), _domain(path, "DOMAIN_MAX", domain_max)
    if any(a >= b for a, b in zip(lo, hi)):
        raise CubeError(f"{path}: DOMAIN_MIN {lo} must be below DOMAIN_MAX {hi} in every channel")
    check_writable(path, overwrite=overwrite, inputs=inputs)  # fail before formatting millions of rows

    header = io.StringIO()
    if title is not None:
        header.write(_title_line(title))
    for comment in comments:
        for line in str(comment).splitlines() or [""]:
            header.write(f"# {line}".rstrip() + "\n")
    header.write(f"LUT_3D_SIZE {shape[0]}\n")
    # repr: a domain is a few numbers, written without the table's rounding so that it reads back exactly
    header.write("DOMAIN_MIN {!r} {!r} {!r}\n".format(*lo))
    header.write("DOMAIN_MAX {!r} {!r} {!r}\n".format(*hi))

    def chunks() -> Iterator[bytes]:
        yield header.getvalue().encode("utf-8")
        yield from _rows(table)

    commit(path, chunks(), overwrite)
    return path


# -- reading ----------------------------------------------------------------------------------------------------

def _numbers(tokens: list[str], count: int, what: str) -> list[float]:
    """`count` finite floats from the tokens, else ValueError with the reason."""
    if len(tokens) != count:
        raise ValueError(f"{what} expects {count} number{'s' if count > 1 else ''}, got {len(tokens)}")
    try:
        values = [float(t) for t in tokens]
    except ValueError:
        raise ValueError(f"{what} expects {count} numbers, got '{' '.join(tokens)}'") from None
    if not all(np.isfinite(values)):
        raise ValueError(f"{what} has a value that is not a finite number: '{' '.join(tokens)}'")
    return values


def _last_line(text: str) -> int:
    """Number of the last line of LF-separated text (1 for an empty text, so that an error can name a line)."""
    return max(text.count("\n") + (0 if text.endswith("\n") else 1), 1)


def _parse_table_slowly(path: Path, text: str, first_line: int, size: int) -> np.ndarray:
    """The G³×3 table in `text` (LF lines numbered from `first_line`) parsed line by line, else CubeError naming
    the line and the reason of its first problem.

    Used only when the fast parse fails, to say where and why (and to accept the rare row that numpy's parser
    refuses but Python's float() reads).
    """
    expected = size ** 3
    rows: list[list[float]] = []
    for number, raw in enumerate(text.split("\n"), first_line):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        tokens = line.split()
        if _KEYWORD.match(tokens[0]):
            raise CubeError(f"{path} line {number}: keyword {tokens[0]} after the table data "
                            f"(keywords must come before the table)")
        if len(tokens) != 3:
            raise CubeError(f"{path} line {number}: expected 3 numbers, got {len(tokens)} ('{line}')")
        try:
            values = [float(t) for t in tokens]
        except ValueError:
            raise CubeError(f"{path} line {number}: expected 3 numbers, got '{line}'") from None
        if not all(np.isfinite(values)):
            raise CubeError(f"{path} line {number}: a value is not a finite number ('{line}')")
        if len(rows) == expected:
            raise CubeError(f"{path} line {number}: more table entries than LUT_3D_SIZE {size} allows "
                            f"({size}³ = {expected})")
        rows.append(values)
    if len(rows) < expected:
        raise CubeError(f"{path} line {first_line - 1 + _last_line(text)}: the table ends after {len(rows)} "
                        f"entries, LUT_3D_SIZE {size} needs {size}³ = {expected}")
    return np.asarray(rows, np.float64)


def _title(rest: str) -> str:
    """The text of a TITLE line after the keyword; ValueError for an unclosed quote."""
    if not rest.startswith('"'):
        return rest  # unquoted titles break the spec but are harmless to accept
    end = rest.find('"', 1)
    if end < 0:
        raise ValueError("TITLE has no closing quote")
    return rest[1:end]


def read_cube(path: str | Path) -> CubeFile:
    """Read a 3D .cube file -> CubeFile (table G×G×G×3 float32, core layout); CubeError names file, line, reason."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CubeError(f"{path}: cannot read ({exc.strerror or exc})") from None
    # utf-8-sig drops a byte-order mark; undecodable bytes (a Latin-1 title) must not make the file unreadable
    text = raw.decode("utf-8-sig", errors="replace")
    if "\r" in text:  # CRLF and old CR endings become LF, which numpy's parser and the line numbers below expect
        text = text.replace("\r\n", "\n").replace("\r", "\n")

    title: str | None = None
    comments: list[str] = []
    size: int | None = None
    domain: dict[str, tuple[float, ...]] = {}
    seen: dict[str, int] = {}  # keyword -> line number, to refuse repeats and to place domain errors
    # The header is scanned line by line; the table (up to 256³ rows) is never split into Python strings.
    offset, number, table_line = 0, 0, 0
    while offset < len(text):
        end = text.find("\n", offset)
        end = len(text) if end < 0 else end
        line, number = text[offset:end].strip(), number + 1
        if line.startswith("#"):
            comments.append(line[1:].strip())
        elif line:
            keyword, *more = line.split(None, 1)
            rest = more[0] if more else ""
            if not _KEYWORD.match(keyword):
                table_line = number  # the table begins here (a bad first row is reported by the table parse)
                break
            if keyword in seen:
                raise CubeError(f"{path} line {number}: {keyword} given twice (first on line {seen[keyword]})")
            seen[keyword] = number
            tokens = rest.split("#", 1)[0].split()
            try:
                if keyword == "TITLE":
                    title = _title(rest)
                elif keyword == "LUT_3D_SIZE":
                    if len(tokens) != 1 or not tokens[0].isdigit():
                        raise ValueError(f"LUT_3D_SIZE expects one whole number, got '{rest}'")
                    size = int(tokens[0])
                    if not MIN_SIZE <= size <= MAX_SIZE:
                        raise ValueError(f"LUT_3D_SIZE {size} is outside {MIN_SIZE}..{MAX_SIZE}")
                elif keyword == "LUT_1D_SIZE":
                    raise ValueError("1D LUTs are not supported (LUT_1D_SIZE); LUTFuse reads 3D .cube files only")
                elif keyword in ("DOMAIN_MIN", "DOMAIN_MAX"):
                    domain[keyword] = tuple(_numbers(tokens, 3, keyword))
                elif keyword == "LUT_3D_INPUT_RANGE":
                    lo, hi = _numbers(tokens, 2, keyword)
                    domain["DOMAIN_MIN"], domain["DOMAIN_MAX"] = (lo, lo, lo), (hi, hi, hi)
                else:
                    raise ValueError(f"unknown keyword {keyword}")
            except ValueError as exc:
                raise CubeError(f"{path} line {number}: {exc}") from None
        offset = end + 1

    if "LUT_3D_INPUT_RANGE" in seen and ("DOMAIN_MIN" in seen or "DOMAIN_MAX" in seen):
        raise CubeError(f"{path} line {seen['LUT_3D_INPUT_RANGE']}: LUT_3D_INPUT_RANGE and DOMAIN_MIN/MAX "
                        f"both given")
    lo = domain.get("DOMAIN_MIN", (0.0, 0.0, 0.0))
    hi = domain.get("DOMAIN_MAX", (1.0, 1.0, 1.0))
    if any(a >= b for a, b in zip(lo, hi)):
        where = max(seen.get(k, 0) for k in ("DOMAIN_MIN", "DOMAIN_MAX", "LUT_3D_INPUT_RANGE"))
        raise CubeError(f"{path} line {where}: DOMAIN_MIN {lo} must be below DOMAIN_MAX {hi} in every channel")
    if size is None:
        where = table_line or _last_line(text)
        raise CubeError(f"{path} line {where}: LUT_3D_SIZE is missing (it must come before the table)")
    table_text = text[offset:] if table_line else ""
    first_line = table_line or _last_line(text)

    # Fast path: numpy's C parser reads the rows (about 1 s for 129³); any problem is located line by line after.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy warns about an empty table; it is reported below instead
            data = np.loadtxt(io.StringIO(table_text), dtype=np.float64, comments="#", ndmin=2)
    except ValueError:
        data = None
    if data is None or data.shape != (size ** 3, 3) or not np.isfinite(data).all():
        data = _parse_table_slowly(path, table_text, first_line, size)
    return CubeFile(table=data.astype(np.float32).reshape(size, size, size, 3), title=title,
                    domain_min=tuple(lo), domain_max=tuple(hi), comments=comments)  # type: ignore[arg-type]


# -- applying ---------------------------------------------------------------------------------------------------

def apply_cube(image: np.ndarray, cube: CubeFile) -> np.ndarray:
    """Apply a .cube LUT to an H×W×3 float image (values in the cube's domain) -> H×W×3 float32, trilinear."""
    lo = np.asarray(cube.domain_min, np.float32)
    hi = np.asarray(cube.domain_max, np.float32)
    if np.array_equal(lo, [0, 0, 0]) and np.array_equal(hi, [1, 1, 1]):
        return apply_lut(image, cube.table)  # the common case: no copy of the image
    # The table's nodes span the domain: map it onto the unit cube apply_lut samples (outside values clamp there).
    scaled = (np.asarray(image, np.float32) - lo) / (hi - lo)
    return apply_lut(scaled, cube.table)
