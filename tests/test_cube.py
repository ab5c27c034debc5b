""".cube read/write/apply: round trips, the exact file format, OpenColorIO and colour-science as independent
readers and writers, every malformed-file error with its line number, safe writing, and DOMAIN scaling."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from lutfuse.core.cube import CubeFile, apply_cube, read_cube, write_cube
from lutfuse.core.errors import CubeError, OutputError
from lutfuse.core.lut import apply_lut, identity_lut

# Channel mix whose rows sum to 1 (so greys stay grey and the output stays in [0,1]).
MIX = np.array([[0.80, 0.15, 0.05],
                [0.10, 0.75, 0.15],
                [0.05, 0.20, 0.75]], np.float32)


def graded_lut(size: int) -> np.ndarray:
    """A non-trivial, non-separable look, G×G×G×3 float32 in [0,1]: S-curve contrast, then a channel mix,
    then a saturation boost that depends on the luminance."""
    x = identity_lut(size).astype(np.float64)
    curve = x * x * (3 - 2 * x)                       # smoothstep: an S-shaped contrast curve
    mixed = curve @ MIX.T.astype(np.float64)
    luma = mixed @ np.array([0.2126, 0.7152, 0.0722])
    boost = 1.0 + 0.4 * luma[..., None] * (1 - luma[..., None])
    return np.clip(luma[..., None] + boost * (mixed - luma[..., None]), 0, 1).astype(np.float32)


def sample_image(height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """Random pixels in [0,1] with the cube's corners, 0 and 1 edges and exact LUT nodes among them."""
    rng = np.random.default_rng(seed)
    image = rng.random((height, width, 3), dtype=np.float32)
    corners = np.array([[r, g, b] for b in (0, 1) for g in (0, 1) for r in (0, 1)], np.float32)
    image[0, :8] = corners
    image[1, :width] = np.where(rng.random((width, 3)) < 0.5, 0.0, 1.0)       # on the cube's faces
    image[2, :width, 0] = 0.0
    image[3, :width, 2] = 1.0
    image[4, :width] = np.linspace(0, 1, width, dtype=np.float32)[:, None]  # the grey axis
    return image


def leftovers(folder: Path) -> list[str]:
    """Names of temporary files left in a folder by a write."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.suffix == ".tmp")


def ocio_apply(path: Path, image: np.ndarray) -> np.ndarray:
    """OpenColorIO's trilinear apply of a .cube file to an H×W×3 float32 image (an independent implementation)."""
    ocio = pytest.importorskip("PyOpenColorIO")
    config = ocio.Config.CreateRaw()
    transform = ocio.FileTransform(src=str(path), interpolation=ocio.INTERP_LINEAR,
                                   direction=ocio.TRANSFORM_DIR_FORWARD)
    out = np.array(image, np.float32, copy=True, order="C")
    config.getProcessor(transform).getDefaultCPUProcessor().applyRGB(out)
    return out


def import_colour():
    """colour-science, imported without its 'matplotlib is missing' notice."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pytest.importorskip("colour")


# -- round trip and format ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [2, 17])
def test_write_then_read_round_trip(tmp_path: Path, size: int) -> None:
    lut = graded_lut(size)
    path = write_cube(tmp_path / "look.cube", lut, title="My look", comments=["made by a test", "line two"],
                      domain_min=(0.0, -0.25, 0.5), domain_max=(1.0, 2.0, 0.75))
    assert path == tmp_path / "look.cube"
    cube = read_cube(path)
    assert isinstance(cube, CubeFile)
    assert cube.size == size and cube.table.shape == (size, size, size, 3) and cube.table.dtype == np.float32
    assert cube.title == "My look"
    assert cube.comments == ["made by a test", "line two"]
    assert cube.domain_min == (0.0, -0.25, 0.5) and cube.domain_max == (1.0, 2.0, 0.75)
    np.testing.assert_allclose(cube.table, lut, atol=1e-6, rtol=0)


def test_defaults_no_title_unit_domain(tmp_path: Path) -> None:
    cube = read_cube(write_cube(tmp_path / "plain.cube", identity_lut(3)))
    assert cube.title is None and cube.comments == []
    assert cube.domain_min == (0.0, 0.0, 0.0) and cube.domain_max == (1.0, 1.0, 1.0)
    np.testing.assert_array_equal(cube.table, identity_lut(3))


def test_file_format_lf_red_fastest_six_decimals(tmp_path: Path) -> None:
    path = write_cube(tmp_path / "id.cube", identity_lut(3), title="identity", comments=["hello"])
    raw = path.read_bytes()
    assert b"\r" not in raw and raw.endswith(b"\n")
    lines = raw.decode("ascii").split("\n")[:-1]
    assert lines[:5] == ['TITLE "identity"', "# hello", "LUT_3D_SIZE 3",
                         "DOMAIN_MIN 0.0 0.0 0.0", "DOMAIN_MAX 1.0 1.0 1.0"]
    rows = lines[5:]
    assert len(rows) == 27
    number = re.compile(r"-?\d+\.\d{6}\Z")
    assert all(len(row.split(" ")) == 3 and all(number.match(v) for v in row.split(" ")) for row in rows)
    # The identity's output is its input: row i must be the input (r, g, b) with red varying fastest.
    expected = [(r / 2, g / 2, b / 2) for b in range(3) for g in range(3) for r in range(3)]
    assert [tuple(float(v) for v in row.split()) for row in rows] == expected
    assert rows[1] == "0.500000 0.000000 0.000000" and rows[3] == "0.000000 0.500000 0.000000"
    assert rows[9] == "0.000000 0.000000 0.500000"


def test_title_with_quote_or_line_break_is_made_writable(tmp_path: Path) -> None:
    path = write_cube(tmp_path / "t.cube", identity_lut(2), title='my "best"\nshot', comments=["a\nb"])
    assert path.read_text().splitlines()[:3] == ["TITLE \"my 'best' shot\"", "# a", "# b"]
    assert read_cube(path).title == "my 'best' shot"


def test_reads_crlf_bom_tabs_comments_and_keywords_in_any_order(tmp_path: Path) -> None:
    lut = graded_lut(3)
    rows = ["{:.6f}\t{:.6f}  {:.6f}".format(*v) for v in lut.reshape(-1, 3)]
    rows[4] += "   # a trailing comment"
    rows.insert(10, "# a comment inside the table")
    rows.insert(11, "")
    text = "\r\n".join(["# first", "", "DOMAIN_MAX 2 2 2", "LUT_3D_SIZE 3", "  TITLE   \"crlf file\"  ",
                        "DOMAIN_MIN 0 0 0", "#second"] + rows) + "\r\n"
    path = tmp_path / "crlf.cube"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    cube = read_cube(path)
    assert cube.title == "crlf file" and cube.comments == ["first", "second"]
    assert cube.domain_max == (2.0, 2.0, 2.0)
    np.testing.assert_allclose(cube.table, lut, atol=1e-6, rtol=0)
    # old Mac CR-only endings, no final newline
    path.write_bytes(text.replace("\r\n", "\r").rstrip("\r").encode())
    np.testing.assert_allclose(read_cube(path).table, lut, atol=1e-6, rtol=0)


def test_reads_resolve_input_range_as_domain(tmp_path: Path) -> None:
    path = tmp_path / "resolve.cube"
    path.write_text("LUT_3D_SIZE 2\nLUT_3D_INPUT_RANGE -0.5 1.5\n" + "0.5 0.5 0.5\n" * 8)
    cube = read_cube(path)
    assert cube.domain_min == (-0.5, -0.5, -0.5) and cube.domain_max == (1.5, 1.5, 1.5)


# -- independent readers and writers -------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [2, 17, 33, 65])
def test_opencolorio_applies_our_cube_like_apply_lut(tmp_path: Path, size: int) -> None:
    lut = graded_lut(size)
    path = write_cube(tmp_path / f"look{size}.cube", lut, title=f"graded {size}")
    image = sample_image()
    theirs = ocio_apply(path, image)
    assert np.abs(theirs - apply_cube(image, read_cube(path))).max() < 1e-4
    assert np.abs(theirs - apply_lut(image, lut)).max() < 1e-4
    assert np.abs(theirs - image).max() > 0.05  # the look really does something


def test_opencolorio_reads_our_largest_grid_it_supports(tmp_path: Path) -> None:
    lut = np.random.default_rng(3).random((129, 129, 129, 3), dtype=np.float32)  # every node matters
    path = write_cube(tmp_path / "big.cube", lut)
    image = sample_image(16, 32)
    assert np.abs(ocio_apply(path, image) - apply_lut(image, lut)).max() < 1e-4


def test_opencolorio_honours_our_domain_like_apply_cube(tmp_path: Path) -> None:
    lut = graded_lut(9)
    lo, hi = (-0.5, 0.0, 0.25), (1.5, 4.0, 1.25)
    path = write_cube(tmp_path / "domain.cube", lut, domain_min=lo, domain_max=hi)
    rng = np.random.default_rng(1)
    # inputs spread over (and a little beyond) the domain, so that the clamping at its faces is compared too
    image = (np.asarray(lo) - 0.2 + rng.random((32, 32, 3)) * (np.asarray(hi) - lo + 0.4)).astype(np.float32)
    assert np.abs(ocio_apply(path, image) - apply_cube(image, read_cube(path))).max() < 1e-4


def test_colour_science_reads_our_table(tmp_path: Path) -> None:
    colour = import_colour()
    lut = graded_lut(17)
    path = write_cube(tmp_path / "look.cube", lut, title="for colour", domain_max=(1.0, 1.0, 2.0))
    theirs = colour.read_LUT(str(path))
    assert isinstance(theirs, colour.LUT3D) and theirs.name == "for colour"
    np.testing.assert_allclose(theirs.domain, [[0, 0, 0], [1, 1, 2]])
    # colour's table is indexed [r, g, b]; ours [b, g, r]
    np.testing.assert_allclose(theirs.table.transpose(2, 1, 0, 3), lut, atol=1e-6, rtol=0)


@pytest.mark.parametrize("method", ["Iridas Cube", "Resolve Cube"])
def test_we_read_colour_sciences_cube(tmp_path: Path, method: str) -> None:
    colour = import_colour()
    lut = graded_lut(9)
    theirs = colour.LUT3D(table=lut.transpose(2, 1, 0, 3).astype(np.float64), name="from colour",
                          domain=np.array([[0.0, 0.0, 0.0], [2.0, 2.0, 2.0]]))
    path = tmp_path / "colour.cube"
    colour.write_LUT(theirs, str(path), method=method)
    cube = read_cube(path)
    assert cube.title == "from colour"
    assert cube.domain_min == (0.0, 0.0, 0.0) and cube.domain_max == (2.0, 2.0, 2.0)
    np.testing.assert_allclose(cube.table, lut, atol=1e-6, rtol=0)
    # colour's own apply of its LUT agrees with ours on the file it wrote
    image = sample_image(8, 16) * 2
    assert np.abs(apply_cube(image, cube) - theirs.apply(image.astype(np.float64))).max() < 1e-4


# -- malformed files -----------------------------------------------------------------------------------------------

def rows(n: int, row: str = "0.5 0.5 0.5") -> str:
    """n table lines."""
    return (row + "\n") * n


BAD_FILES = [
    ("too-few-rows", "LUT_3D_SIZE 2\n" + rows(7), 8, "ends after 7 entries"),
    ("too-many-rows", "LUT_3D_SIZE 2\n" + rows(9), 10, "more table entries"),
    ("no-rows", "TITLE \"x\"\nLUT_3D_SIZE 2\n", 2, "ends after 0 entries"),
    ("non-numeric", "LUT_3D_SIZE 2\n" + rows(3) + "0.1 abc 0.3\n" + rows(4), 5,
     "expected 3 numbers, got '0.1 abc 0.3'"),
    ("comma-separated", "LUT_3D_SIZE 2\n" + rows(8, "0.1,0.2,0.3"), 2, "expected 3 numbers"),
    ("two-values", "LUT_3D_SIZE 2\n" + rows(2) + "0.1 0.2\n" + rows(5), 4, "expected 3 numbers, got 2"),
    ("four-values", "LUT_3D_SIZE 2\n" + rows(7) + "0.1 0.2 0.3 0.4\n", 9, "expected 3 numbers, got 4"),
    ("nan-value", "LUT_3D_SIZE 2\n" + rows(5) + "nan 0 0\n" + rows(2), 7, "not a finite number"),
    ("size-missing", "# no size\n" + rows(8), 2, "LUT_3D_SIZE is missing"),
    ("size-missing-empty", "", 1, "LUT_3D_SIZE is missing"),
    ("size-too-small", "LUT_3D_SIZE 1\n" + rows(1), 1, "LUT_3D_SIZE 1 is outside 2..256"),
    ("size-too-large", "TITLE \"big\"\nLUT_3D_SIZE 257\n", 2, "LUT_3D_SIZE 257 is outside 2..256"),
    ("size-not-integer", "LUT_3D_SIZE 2.5\n" + rows(8), 1, "one whole number"),
    ("size-twice", "LUT_3D_SIZE 2\nLUT_3D_SIZE 2\n" + rows(8), 2, "given twice"),
    ("unknown-keyword", "LUT_3D_SIZE 2\nLUT_3D_SIZ 2\n" + rows(8), 2, "unknown keyword LUT_3D_SIZ"),
    ("keyword-after-table", "LUT_3D_SIZE 2\n" + rows(4) + "DOMAIN_MIN 0 0 0\n" + rows(4), 6, "after the table"),
    ("1d-lut", "TITLE \"curve\"\nLUT_1D_SIZE 4\n" + rows(4), 2, "1D LUTs are not supported"),
    ("domain-inverted", "LUT_3D_SIZE 2\nDOMAIN_MIN 0 0 1\nDOMAIN_MAX 1 1 1\n" + rows(8), 3,
     "DOMAIN_MIN (0.0, 0.0, 1.0) must be below DOMAIN_MAX"),
    ("domain-max-below-default-min", "DOMAIN_MAX 1 -1 1\nLUT_3D_SIZE 2\n" + rows(8), 1, "must be below"),
    ("domain-two-values", "LUT_3D_SIZE 2\nDOMAIN_MIN 0 0\n" + rows(8), 2, "DOMAIN_MIN expects 3 numbers, got 2"),
    ("domain-text", "LUT_3D_SIZE 2\nDOMAIN_MAX 1 one 1\n" + rows(8), 2, "DOMAIN_MAX expects 3 numbers"),
    ("title-unclosed", "TITLE \"oops\nLUT_3D_SIZE 2\n" + rows(8), 1, "no closing quote"),
]


@pytest.mark.parametrize("text, line, reason", [case[1:] for case in BAD_FILES], ids=[c[0] for c in BAD_FILES])
def test_malformed_file_names_file_line_and_reason(tmp_path: Path, text: str, line: int, reason: str) -> None:
    path = tmp_path / "bad.cube"
    path.write_text(text)
    with pytest.raises(CubeError) as info:
        read_cube(path)
    message = str(info.value)
    assert message.startswith(f"{path} line {line}: "), message
    assert reason in message
    assert "\n" not in message


def test_line_numbers_count_crlf_lines_once(tmp_path: Path) -> None:
    path = tmp_path / "crlf.cube"
    text = "# c\nLUT_3D_SIZE 2\n" + rows(3) + "x y z\n" + rows(4)
    path.write_bytes(text.replace("\n", "\r\n").encode())
    with pytest.raises(CubeError, match=r"crlf\.cube line 6: expected 3 numbers"):
        read_cube(path)


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(CubeError, match=r"nope\.cube: cannot read"):
        read_cube(tmp_path / "nope.cube")
    (tmp_path / "folder.cube").mkdir()
    with pytest.raises(CubeError, match=r"folder\.cube: cannot read"):
        read_cube(tmp_path / "folder.cube")


# -- safe writing --------------------------------------------------------------------------------------------------

def test_refuses_to_overwrite_unless_asked_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "look.cube"
    path.write_bytes(b"keep me")
    with pytest.raises(OutputError, match=r"look\.cube: already exists"):
        write_cube(path, identity_lut(5))
    assert path.read_bytes() == b"keep me"
    assert leftovers(tmp_path) == []
    write_cube(path, graded_lut(5), overwrite=True)
    np.testing.assert_allclose(read_cube(path).table, graded_lut(5), atol=1e-6, rtol=0)
    assert leftovers(tmp_path) == []


def test_never_overwrites_an_input(tmp_path: Path) -> None:
    source = write_cube(tmp_path / "in.cube", identity_lut(3))
    before = source.read_bytes()
    with pytest.raises(OutputError, match="input"):
        write_cube(source, graded_lut(3), overwrite=True, inputs=[source])
    link = tmp_path / "alias.cube"
    link.symlink_to(source)
    with pytest.raises(OutputError, match="input"):
        write_cube(link, graded_lut(3), overwrite=True, inputs=[source])
    assert source.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_missing_folder_is_an_output_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="does not exist"):
        write_cube(tmp_path / "no" / "look.cube", identity_lut(2))


@pytest.mark.parametrize("lut, reason", [
    (np.zeros((4, 4, 3), np.float32), "G×G×G×3"),
    (np.zeros((4, 4, 5, 3), np.float32), "G×G×G×3"),
    (np.zeros((4, 4, 4, 4), np.float32), "G×G×G×3"),
    (np.zeros((1, 1, 1, 3), np.float32), "outside 2..256"),
    (np.zeros((257, 257, 257, 3), np.float32), "outside 2..256"),   # never touched: calloc'd pages stay unmapped
    (np.full((2, 2, 2, 3), np.nan, np.float32), "NaN"),
], ids=["3d", "not-cubic", "4-channels", "size-1", "size-257", "nan"])
def test_unwritable_luts_are_cube_errors_and_write_nothing(tmp_path: Path, lut: np.ndarray, reason: str) -> None:
    path = tmp_path / "bad.cube"
    with pytest.raises(CubeError, match=reason) as info:
        write_cube(path, lut)
    assert str(info.value).startswith(f"{path}: ")
    assert list(tmp_path.iterdir()) == []


def test_bad_domains_are_refused_on_write(tmp_path: Path) -> None:
    with pytest.raises(CubeError, match="must be below"):
        write_cube(tmp_path / "a.cube", identity_lut(2), domain_min=(0, 1, 0), domain_max=(1, 1, 1))
    with pytest.raises(CubeError, match="three finite numbers"):
        write_cube(tmp_path / "a.cube", identity_lut(2), domain_max=(1, 1))
    assert list(tmp_path.iterdir()) == []


# -- DOMAIN scaling ------------------------------------------------------------------------------------------------

def test_apply_cube_maps_the_domain_onto_the_table(tmp_path: Path) -> None:
    lut = graded_lut(5)
    lo, hi = np.array([-0.5, 0.0, 0.25], np.float32), np.array([1.5, 4.0, 1.25], np.float32)
    cube = read_cube(write_cube(tmp_path / "d.cube", lut, domain_min=tuple(lo), domain_max=tuple(hi)))
    unit = sample_image()
    # an input at domain position t reads the table where the unit-domain LUT reads t
    np.testing.assert_allclose(apply_cube(lo + unit * (hi - lo), cube), apply_lut(unit, lut), atol=2e-6)
    # the table's nodes, placed in the domain, give the table's entries
    nodes = (lo + identity_lut(5) * (hi - lo)).reshape(-1, 1, 3)
    np.testing.assert_allclose(apply_cube(nodes, cube).reshape(lut.shape), lut, atol=2e-6)
    # outside the domain the input clamps to its faces
    np.testing.assert_allclose(apply_cube(np.full((1, 1, 3), 9.0, np.float32), cube), lut[-1:, -1:, -1], atol=2e-6)


def test_apply_cube_with_unit_domain_is_apply_lut(tmp_path: Path) -> None:
    lut = graded_lut(17)
    image = sample_image()
    out = apply_cube(image, CubeFile(table=lut, title=None))
    assert out.shape == image.shape and out.dtype == np.float32
    np.testing.assert_array_equal(out, apply_lut(image, lut))
