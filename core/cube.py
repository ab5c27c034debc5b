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
import os
import re
import stat
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

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


def cube_title(bracket_name: str, grid: int) -> str:
    """The TITLE every LUTFuse export gives a bracket's .cube (CLI and editor alike): `LUTFuse NAME G33`."""
    return f"LUTFuse {bracket_name} G{grid}"


def write_cube(path: str | Path, lut: np.ndarray, *, title: str | None = None, comments: Iterable[str] = (),
               domain_min: Sequence[float] = (0.0, 0.0, 0.0), domain_max: Sequence[float] = (1.0, 1.0, 1.0),
               overwrite: bool = False, inputs: Sequence[str | Path] = (), origin: str | None = None) -> Path:
    """Write a G×G×G×3 LUT (core layout, 2 ≤ G ≤ 256, usually values in [0,1]) as a .cube file -> path.

    `origin` names what made the LUT (the weights file), for the message when it holds NaN or infinity.
    Raises CubeError for a LUT that cannot be written (non-finite values included), OutputError if `path` is one
    of `inputs`, or exists and `overwrite` is False, or cannot be written.
    """
    path = Path(path)
    table = np.asarray(lut)
    shape = tuple(table.shape)
    if len(shape) != 4 or shape[3] != 3 or not shape[0] == shape[1] == shape[2]:
        raise CubeError(f"{path}: a 3D LUT must be G×G×G×3, got shape {shape}")
    if not MIN_SIZE <= shape[0] <= MAX_SIZE:
        raise CubeError(f"{path}: LUT size {shape[0]} is outside {MIN_SIZE}..{MAX_SIZE} (the .cube limits)")
    if not np.isfinite(table).all():
        bad = int(table.size - np.count_nonzero(np.isfinite(table)))
        by = f" (made from {origin})" if origin else ""
        raise CubeError(f"{path}: not written: the LUT has {bad} NaN or infinite value{'s' if bad > 1 else ''}{by}")
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

BLOCK_BYTES = 1 << 22  # the file is read and parsed in blocks of whole lines of about this size
MAX_LINE = 1 << 20  # longer lines are refused before being held whole (a .cube line is ~30 characters)
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def excerpt(text: str, limit: int = 60) -> str:
    """A bounded, printable quote of `text` for an error message: at most ~`limit` characters, control and other
    unprintable characters escaped (\\x07, \\u2028), and the full length said when cut."""
    out: list[str] = []
    used = 0
    for ch in text:
        piece = ch if ch.isprintable() else (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        if used + len(piece) > limit:
            return "".join(out) + f"... ({len(text)} characters)"
        out.append(piece)
        used += len(piece)
    return "".join(out)


def _open_regular(path: Path) -> BinaryIO:
    """`path` opened for binary reading if it is a regular file, else CubeError: a FIFO would block and a device
    (/dev/zero) would never end, so neither is opened for reading at all."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise CubeError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(info.st_mode):
        raise CubeError(f"{path}: cannot read (it is a folder)")
    if not stat.S_ISREG(info.st_mode):
        kind = ("a FIFO" if stat.S_ISFIFO(info.st_mode) else "a device" if stat.S_ISCHR(info.st_mode)
                or stat.S_ISBLK(info.st_mode) else "a socket" if stat.S_ISSOCK(info.st_mode) else "not a file")
        raise CubeError(f"{path}: cannot read ({kind}; only regular files are read)")
    try:
        # O_NONBLOCK: should the name have become a FIFO since the check, open() must not wait for a writer.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise CubeError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise CubeError(f"{path}: cannot read (only regular files are read)")
    return os.fdopen(fd, "rb")


def _blocks(handle: BinaryIO, path: Path) -> Iterator[bytes]:
    """The file's bytes as blocks of whole lines with LF endings (CRLF and CR converted), each ending in LF;
    CubeError for a line longer than MAX_LINE (named by its number), before it is read whole."""
    pending, lines = b"", 0
    while True:
        data = handle.read(BLOCK_BYTES)
        if not data:
            break
        data = pending + data
        hold = b"\r" if data.endswith(b"\r") else b""  # a CR whose LF may start the next read
        if hold:
            data = data[:-1]
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        cut = data.rfind(b"\n") + 1
        pending = data[cut:] + hold
        if len(pending) > MAX_LINE:
            start = pending[:80].decode("utf-8", errors="replace")
            raise CubeError(f"{path} line {lines + 1}: longer than {MAX_LINE} characters "
                            f"('{excerpt(start)}...')")
        if cut:
            lines += data.count(b"\n", 0, cut)
            yield data[:cut]
    if pending:
        yield pending.replace(b"\r", b"\n") + b"\n"


def _numbers(tokens: list[str], count: int, what: str) -> list[float]:
    """`count` finite floats from the tokens, else ValueError with the reason."""
    if len(tokens) != count:
        raise ValueError(f"{what} expects {count} number{'s' if count > 1 else ''}, got {len(tokens)}")
    try:
        values = [float(t) for t in tokens]
    except ValueError:
        raise ValueError(f"{what} expects {count} numbers, got '{excerpt(' '.join(tokens))}'") from None
    if not all(np.isfinite(values)) or any(abs(v) > _FLOAT32_MAX for v in values):
        raise ValueError(f"{what} has a value that is not a finite 32-bit number: '{excerpt(' '.join(tokens))}'")
    return values


def _parse_rows_slowly(path: Path, text: str, first_line: int, table: np.ndarray, filled: int, size: int) -> int:
    """Parse LF lines of table text (numbered from `first_line`) one by one into `table` from row `filled`;
    CubeError naming the line and the reason of the first problem. Returns the new number of filled rows.

    Used only where the fast block parse fails, to say where and why (and to accept the rare row that numpy's
    parser refuses but Python's float() reads).
    """
    expected = size ** 3
    for number, raw in enumerate(io.StringIO(text), first_line):  # one line at a time: no list of the block
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        tokens = line.split()
        if _KEYWORD.match(tokens[0]):
            raise CubeError(f"{path} line {number}: keyword {excerpt(tokens[0])} after the table data "
                            f"(keywords must come before the table)")
        if len(tokens) != 3:
            raise CubeError(f"{path} line {number}: expected 3 numbers, got {len(tokens)} ('{excerpt(line)}')")
        try:
            values = [float(t) for t in tokens]
        except ValueError:
            raise CubeError(f"{path} line {number}: expected 3 numbers, got '{excerpt(line)}'") from None
        if not all(np.isfinite(values)):
            raise CubeError(f"{path} line {number}: a value is not a finite number ('{excerpt(line)}')")
        if any(abs(v) > _FLOAT32_MAX for v in values):
            raise CubeError(f"{path} line {number}: a value is beyond the 32-bit float range "
                            f"(±{_FLOAT32_MAX:.4g}) ('{excerpt(line)}')")
        if filled == expected:
            raise CubeError(f"{path} line {number}: more table entries than LUT_3D_SIZE {size} allows "
                            f"({size}³ = {expected})")
        table[filled] = values
        filled += 1
    return filled


def _parse_rows(path: Path, text: str, first_line: int, table: np.ndarray, filled: int, size: int) -> int:
    """Parse one block of table lines into `table` (float32, size³×3) from row `filled`; returns the new count.

    numpy's C parser reads the block (about a second per million rows); any problem is located line by line.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy warns about a block of comments only; that is no error
            data = np.loadtxt(io.StringIO(text), dtype=np.float64, comments="#", ndmin=2)
    except ValueError:
        data = None
    if data is not None and data.size == 0:
        return filled
    if (data is None or data.shape[1] != 3 or filled + len(data) > len(table) or not np.isfinite(data).all()
            or np.abs(data).max() > _FLOAT32_MAX):
        return _parse_rows_slowly(path, text, first_line, table, filled, size)
    table[filled:filled + len(data)] = data
    return filled + len(data)


def _title(rest: str) -> str:
    """The text of a TITLE line after the keyword; ValueError for an unclosed quote."""
    if not rest.startswith('"'):
        return rest  # unquoted titles break the spec but are harmless to accept
    end = rest.find('"', 1)
    if end < 0:
        raise ValueError("TITLE has no closing quote")
    return rest[1:end]


def read_cube(path: str | Path) -> CubeFile:
    """Read a 3D .cube file -> CubeFile (table G×G×G×3 float32, core layout); CubeError names file, line, reason.

    Only regular files are read. The file is parsed as a stream of blocks into one preallocated float32 table, so
    memory stays near the table's size (200 MB for 256³) whatever the file holds; values must be finite and
    within the 32-bit float range; quoted text in messages is bounded and escaped.
    """
    path = Path(path)
    with _open_regular(path) as handle:
        return _read(path, handle)


def _read(path: Path, handle: BinaryIO) -> CubeFile:
    """The parse of read_cube on an open file."""
    title: str | None = None
    comments: list[str] = []
    size: int | None = None
    domain: dict[str, tuple[float, ...]] = {}
    seen: dict[str, int] = {}  # keyword -> line number, to refuse repeats and to place domain errors
    number = 0  # lines seen so far
    table: np.ndarray | None = None
    filled = 0
    blocks = _blocks(handle, path)
    for block in blocks:
        text = block.decode("utf-8", errors="replace")  # a Latin-1 title must not make the file unreadable
        if number == 0 and text.startswith("\ufeff"):
            text = text[1:]
        lines = text.split("\n")[:-1]  # blocks end with LF
        for index, raw in enumerate(lines):
            line = raw.strip()
            if not line:
                continue
            if line.startswith("#"):
                comments.append(line[1:].strip())
                continue
            keyword, *more = line.split(None, 1)
            if not _KEYWORD.match(keyword):
                table_line = number + index + 1  # the table begins here (a bad first row is reported by its parse)
                if size is None:
                    raise CubeError(f"{path} line {table_line}: LUT_3D_SIZE is missing (it must come before the "
                                    f"table)")
                lo, hi = _check_domain(path, domain, seen)
                table = np.empty((size ** 3, 3), np.float32)
                filled = _parse_rows(path, "\n".join(lines[index:]), table_line, table, filled, size)
                number += len(lines)
                for rest_block in blocks:
                    rest = rest_block.decode("latin-1")  # numbers are ASCII; other bytes are reported as they are
                    filled = _parse_rows(path, rest[:-1], number + 1, table, filled, size)
                    number += rest.count("\n")
                break
            rest = more[0] if more else ""
            _keyword(path, number + index + 1, keyword, rest, seen, domain)
            if keyword == "TITLE":
                title = _title(rest)
            elif keyword == "LUT_3D_SIZE":
                size = int(rest.split("#", 1)[0])
        else:
            number += len(lines)
            continue
        break

    if table is None:  # no table at all
        where = max(number, 1)
        if size is None:
            raise CubeError(f"{path} line {where}: LUT_3D_SIZE is missing (it must come before the table)")
        _check_domain(path, domain, seen)
        raise CubeError(f"{path} line {where}: the table ends after 0 entries, LUT_3D_SIZE {size} needs "
                        f"{size}³ = {size ** 3}")
    assert size is not None
    if filled < size ** 3:
        raise CubeError(f"{path} line {max(number, 1)}: the table ends after {filled} entries, LUT_3D_SIZE {size} "
                        f"needs {size}³ = {size ** 3}")
    lo, hi = _check_domain(path, domain, seen)
    return CubeFile(table=table.reshape(size, size, size, 3), title=title, domain_min=lo, domain_max=hi,
                    comments=comments)


def _keyword(path: Path, number: int, keyword: str, rest: str, seen: dict[str, int],
             domain: dict[str, tuple[float, ...]]) -> None:
    """Check one header keyword line (numbered `number`) and record a domain; CubeError names line and reason."""
    if keyword in seen:
        raise CubeError(f"{path} line {number}: {excerpt(keyword)} given twice (first on line {seen[keyword]})")
    seen[keyword] = number
    tokens = rest.split("#", 1)[0].split()
    try:
        if keyword == "TITLE":
            _title(rest)
        elif keyword == "LUT_3D_SIZE":
            if len(tokens) != 1 or not tokens[0].isdigit() or not tokens[0].isascii():
                raise ValueError(f"LUT_3D_SIZE expects one whole number, got '{excerpt(rest)}'")
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
            raise ValueError(f"unknown keyword {excerpt(keyword)}")
    except ValueError as exc:
        raise CubeError(f"{path} line {number}: {exc}") from None


def _check_domain(path: Path, domain: dict[str, tuple[float, ...]],
                  seen: dict[str, int]) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """(DOMAIN_MIN, DOMAIN_MAX) of the header, else CubeError naming the line of the problem."""
    if "LUT_3D_INPUT_RANGE" in seen and ("DOMAIN_MIN" in seen or "DOMAIN_MAX" in seen):
        raise CubeError(f"{path} line {seen['LUT_3D_INPUT_RANGE']}: LUT_3D_INPUT_RANGE and DOMAIN_MIN/MAX "
                        f"both given")
    lo = domain.get("DOMAIN_MIN", (0.0, 0.0, 0.0))
    hi = domain.get("DOMAIN_MAX", (1.0, 1.0, 1.0))
    if any(a >= b for a, b in zip(lo, hi)):
        where = max(seen.get(k, 0) for k in ("DOMAIN_MIN", "DOMAIN_MAX", "LUT_3D_INPUT_RANGE"))
        raise CubeError(f"{path} line {where}: DOMAIN_MIN {lo} must be below DOMAIN_MAX {hi} in every channel")
    return lo, hi  # type: ignore[return-value]


# -- applying ---------------------------------------------------------------------------------------------------

def apply_cube(image: np.ndarray, cube: CubeFile) -> np.ndarray:
    """Apply a .cube LUT to an H×W×3 float image (values in the cube's domain) -> H×W×3 float32, trilinear."""
    lo = np.asarray(cube.domain_min, np.float32)
    hi = np.asarray(cube.domain_max, np.float32)
    if np.array_equal(lo, [0, 0, 0]) and np.array_equal(hi, [1, 1, 1]):
        return apply_lut(image, cube.table)  # type: ignore[return-value]  # the common case: no copy of the image
    # The table's nodes span the domain: map it onto the unit cube apply_lut samples (outside values clamp there).
    scaled = (np.asarray(image, np.float32) - lo) / (hi - lo)
    return apply_lut(scaled, cube.table)  # type: ignore[return-value]
