"""The .cube reader against hostile input: non-regular files, values beyond float32, overlong lines, huge files
with a bad last row (streamed, bounded memory), block boundaries; plus a bounded hypothesis fuzz test."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lutfuse.core import cube as cubemod
from lutfuse.core.cube import CubeFile, read_cube, write_cube
from lutfuse.core.errors import CubeError
from lutfuse.core.lut import identity_lut


def rows(n: int, row: str = "0.5 0.5 0.5") -> str:
    """n table lines."""
    return (row + "\n") * n


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "look.cube"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer forever
    with pytest.raises(CubeError, match=r"look\.cube: cannot read \(a FIFO; only regular files are read\)"):
        read_cube(fifo)


def test_device_is_refused_without_reading_it() -> None:
    with pytest.raises(CubeError, match=r"/dev/zero: cannot read \(a device; only regular files are read\)"):
        read_cube("/dev/zero")


def test_symlink_loop_is_one_line(tmp_path: Path) -> None:
    loop = tmp_path / "loop.cube"
    loop.symlink_to(loop)
    with pytest.raises(CubeError, match=r"loop\.cube: cannot read \(Too many levels of symbolic links\)"):
        read_cube(loop)


@pytest.mark.parametrize(("row", "reason"), [
    ("0.5 1e39 0.5", "beyond the 32-bit float range"),
    ("-3.5e38 0 0", "beyond the 32-bit float range"),
    ("0.5 inf 0.5", "not a finite number"),
    ("nan 0 0", "not a finite number"),
    ("0 0 1e400", "not a finite number"),
])
def test_values_beyond_float32_or_non_finite_name_file_and_line(tmp_path: Path, row: str, reason: str) -> None:
    path = tmp_path / "big.cube"
    path.write_text("LUT_3D_SIZE 2\n" + rows(5) + row + "\n" + rows(2))
    with pytest.raises(CubeError, match=rf"big\.cube line 7: .*{reason}"):
        read_cube(path)


def test_domain_beyond_float32_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "d.cube"
    path.write_text("LUT_3D_SIZE 2\nDOMAIN_MAX 1 1 1e39\n" + rows(8))
    with pytest.raises(CubeError, match=r"d\.cube line 2: DOMAIN_MAX has a value that is not a finite 32-bit"):
        read_cube(path)


@pytest.mark.parametrize("where", ["table", "header"])
def test_a_200000_character_bad_line_is_quoted_bounded_and_escaped(tmp_path: Path, where: str) -> None:
    bad = "0.1 \x1b[31m" + "x\x07" * 100_000
    path = tmp_path / "long.cube"
    if where == "table":
        path.write_text("LUT_3D_SIZE 2\n" + rows(3) + bad + "\n" + rows(4))
        line = 5
    else:
        path.write_text("LUT_3D_SIZE " + bad + "\n" + rows(8))
        line = 1
    with pytest.raises(CubeError) as info:
        read_cube(path)
    message = str(info.value)
    assert message.startswith(f"{path} line {line}: ")
    quoted = message[len(str(path)):]
    assert len(quoted) < 200 and "\n" not in message
    assert all(ch.isprintable() for ch in message)  # ESC and BEL are escaped, not sent to the terminal
    assert "\\x1b[31m" in message and "characters)" in message


def test_a_line_longer_than_the_limit_is_refused_before_it_is_held_whole(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cubemod, "MAX_LINE", 1000)
    monkeypatch.setattr(cubemod, "BLOCK_BYTES", 256)
    path = tmp_path / "endless.cube"
    path.write_text("LUT_3D_SIZE 2\n" + rows(2) + "1" * 5000)
    with pytest.raises(CubeError, match=r"endless\.cube line 4: longer than 1000 characters \('1111"):
        read_cube(path)


@pytest.mark.parametrize("block", [1, 7, 64])
@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"])
def test_tiny_blocks_split_lines_anywhere_and_give_the_same_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  block: int, ending: str) -> None:
    lut = identity_lut(3) ** 1.3
    written = write_cube(tmp_path / "w.cube", lut, title="t", comments=["c"])
    text = written.read_text().replace("\n", ending)
    path = tmp_path / "e.cube"
    path.write_bytes(("\ufeff" + text).encode())
    monkeypatch.setattr(cubemod, "BLOCK_BYTES", block)
    cube = read_cube(path)
    assert cube.title == "t" and cube.comments == ["c"]
    np.testing.assert_allclose(cube.table, lut, atol=1e-6)
    bad = text.replace("1.000000 1.000000 1.000000", "1.000000 oops 1.000000")
    path.write_bytes(bad.encode())
    line = text.split(ending).index("1.000000 1.000000 1.000000") + 1
    with pytest.raises(CubeError, match=rf"e\.cube line {line}: expected 3 numbers, got '1\.000000 oops"):
        read_cube(path)


def test_large_cube_with_bad_last_row_fails_in_bounded_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cubemod, "BLOCK_BYTES", 1 << 20)  # several blocks, as a 256³ file has with the default
    size = 64
    path = write_cube(tmp_path / "big.cube", identity_lut(size))
    data = path.read_bytes()
    cut = data.rstrip(b"\n").rfind(b"\n") + 1
    path.write_bytes(data[:cut] + b"1.000000 1.000000 x.00000\n")
    lines = data.count(b"\n")
    tracemalloc.start()
    try:
        with pytest.raises(CubeError, match=rf"big\.cube line {lines}: expected 3 numbers, got '1\.000000 1\.000000 x"):
            read_cube(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    table = size ** 3 * 3 * 4
    # the preallocated float32 table plus one block of text and its parse (numpy's StringIO holds 4 bytes a
    # character), not the whole file several times over as before
    assert peak < table + 16 * cubemod.BLOCK_BYTES < 3 * len(data), (peak, len(data))


def test_cube_apply_with_a_fifo_cube_exits_1_with_one_line(tmp_path: Path) -> None:
    fifo = tmp_path / "look.cube"
    os.mkfifo(fifo)
    image = tmp_path / "in.png"
    import cv2

    cv2.imwrite(str(image), np.full((16, 16, 3), 128, np.uint8))
    out = tmp_path / "out.png"
    result = subprocess.run([sys.executable, "-m", "lutfuse", "cube-apply", str(fifo), str(image), "-o", str(out)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"lutfuse cube-apply: error: {fifo}: cannot read (a FIFO; only regular files are read)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "look.cube"]


# -- fuzz ----------------------------------------------------------------------------------------------------------

def _valid_text(size: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    body = "".join(f"{a:.6f} {b:.6f} {c:.6f}\n" for a, b, c in rng.random((size ** 3, 3)))
    return f'TITLE "fuzz"\n# comment\nLUT_3D_SIZE {size}\nDOMAIN_MIN 0 0 0\nDOMAIN_MAX 1 1 1\n' + body


def _check(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        cube = read_cube(path)
    except CubeError as exc:
        message = str(exc)
        assert message.startswith(str(path)) and "\n" not in message and len(message) < len(str(path)) + 400
        return
    assert isinstance(cube, CubeFile)
    assert cube.table.dtype == np.float32 and cube.table.shape == (cube.size,) * 3 + (3,)
    assert np.isfinite(cube.table).all()
    assert all(a < b for a, b in zip(cube.domain_min, cube.domain_max))


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(data=st.binary(max_size=400))
def test_fuzz_random_bytes(tmp_path: Path, data: bytes) -> None:
    _check(tmp_path / "fuzz.cube", data)


@FUZZ
@given(size=st.integers(2, 3), seed=st.integers(0, 3),
       edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 8),
                                st.sampled_from(["", " ", "\n", "\r", "#", "nan", "1e39", "-", "LUT_3D_SIZE 2",
                                                 "\x00", "\ufeff", "DOMAIN_MAX 1 1", "9" * 50, "\t", "e", "."])),
                      max_size=4))
def test_fuzz_mutated_valid_files(tmp_path: Path, size: int, seed: int, edits: list[tuple[int, int, str]]) -> None:
    text = _valid_text(size, seed)
    for position, length, insert in edits:
        position %= len(text) + 1
        text = text[:position] + insert + text[position + length:]
    _check(tmp_path / "mutated.cube", text.encode("utf-8", errors="surrogatepass"))
