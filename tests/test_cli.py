"""The `lutfuse` command line, run as a user would: real brackets in, files out, clear errors."""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path

import cv2
import numpy as np
import piexif
import pytest
import torch

from lutfuse.core.cli import main


def run_cli(*args: object) -> int:
    """Run `lutfuse ARGS...` in-process; returns the exit status."""
    return main([str(a) for a in args])


@pytest.fixture
def cades(shared_data: Path, tmp_path: Path) -> list[Path]:
    """Three frames (2 stops apart) of a real 9-frame stack, copied so tests may write beside them."""
    scene = shared_data / "brackets" / "hdrps" / "Cades_Cove"
    out = []
    for name in ("02.png", "04.png", "06.png"):
        shutil.copy(scene / name, tmp_path / name)
        out.append(tmp_path / name)
    return out


def read_rgb(path: Path) -> np.ndarray:
    """An 8- or 16-bit image file -> H×W×3 float32 RGB in [0,1]."""
    im = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    scale = 65535.0 if im.dtype == np.uint16 else 255.0
    return cv2.cvtColor(im, cv2.COLOR_BGR2RGB).astype(np.float32) / scale


def write_jpeg_with_exif(path: Path, image: np.ndarray, exposure_s: float) -> None:
    """Save H×W×3 float RGB as a JPEG carrying ExposureTime, FNumber and ISO."""
    bgr = cv2.cvtColor((image * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(path), bgr)
    exif = {"0th": {piexif.ImageIFD.Make: b"TestCam"},
            "Exif": {piexif.ExifIFD.ExposureTime: (1, round(1 / exposure_s)),
                     piexif.ExifIFD.FNumber: (8, 1),
                     piexif.ExifIFD.ISOSpeedRatings: 100}}
    piexif.insert(piexif.dump(exif), str(path))


@pytest.mark.parametrize("command", [[], ["fuse"], ["cube"], ["cube-apply"], ["metrics"], ["eval"], ["bench"],
                                     ["train"], ["gui"]])
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(*command, "--help")
    assert exit_info.value.code == 0
    assert "usage: lutfuse" in capsys.readouterr().out


def test_fuse_mertens_on_real_bracket(cades: list[Path], tmp_path: Path) -> None:
    from lutfuse.core.bracket import load_bracket
    from lutfuse.core.classical import mertens
    from lutfuse.core.metrics import mef_ssim

    out = tmp_path / "fused.png"
    assert run_cli("fuse", *cades, "-o", out, "--method", "mertens", "--no-align") == 0
    fused = read_rgb(out)
    expected = mertens(load_bracket(cades, align=False).images)
    assert fused.shape == expected.shape
    assert np.abs(fused - expected).max() <= 1 / 255 + 1e-6
    # A fusion must score far above any single source frame.
    frames = [read_rgb(p) for p in cades]
    assert mef_ssim(frames, fused) > mef_ssim(frames, frames[0]) + 0.05


def test_tiff_from_8_bit_frames_is_16_bit_by_default_as_in_the_editor(cades: list[Path], tmp_path: Path) -> None:
    """A fusion holds more than 8 bits of tone even from 8-bit JPEGs; TIFF is the hand-off to an editor."""
    import tifffile

    from lutfuse.app.export import DEFAULT_BITS

    assert run_cli("fuse", *cades, "-o", tmp_path / "a.tif", "--method", "mertens", "--no-align") == 0
    assert run_cli("fuse", *cades, "-o", tmp_path / "a.png", "--method", "mertens", "--no-align") == 0
    assert run_cli("fuse", *cades, "-o", tmp_path / "b.tif", "--method", "mertens", "--no-align",
                   "--bit-depth", "8") == 0
    assert tifffile.imread(tmp_path / "a.tif").dtype == np.uint16 and DEFAULT_BITS[".tif"] == 16
    assert tifffile.imread(tmp_path / "b.tif").dtype == np.uint8
    assert cv2.imread(str(tmp_path / "a.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint8  # 8-bit frames, 8-bit PNG
    wide, narrow = read_rgb(tmp_path / "a.tif"), read_rgb(tmp_path / "b.tif")
    assert np.abs(wide - narrow).max() <= 1 / 255 + 1e-6 and len(np.unique(wide)) > len(np.unique(narrow))


def test_fuse_refuses_to_overwrite(cades: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "fused.jpg"
    out.write_bytes(b"keep me")
    assert run_cli("fuse", *cades, "-o", out, "--method", "mertens") == 1
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == b"keep me"
    before = cades[1].read_bytes()
    assert run_cli("fuse", *cades, "-o", cades[1], "--method", "mertens", "--force") == 1
    assert "input" in capsys.readouterr().err
    assert cades[1].read_bytes() == before
    assert run_cli("fuse", *cades, "-o", out, "--method", "mertens", "--force") == 0
    assert read_rgb(out).shape[:2] == (356, 536)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]


def test_fuse_bad_inputs_exit_nonzero_with_the_file_named(cades: list[Path], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "nope.png"
    assert run_cli("fuse", cades[0], missing, "-o", tmp_path / "a.png", "--method", "mertens") == 1
    err = capsys.readouterr().err
    assert "nope.png" in err and err.count("\n") == 1
    assert run_cli("fuse", cades[0], "-o", tmp_path / "b.png", "--method", "mertens") == 1
    assert "frame" in capsys.readouterr().err.lower()
    assert run_cli("fuse", *cades, "-o", tmp_path / "c.jpg", "--bit-depth", "16") == 1
    assert "16-bit" in capsys.readouterr().err


def test_fuse_writes_16_bit_tiff_and_keeps_middle_exif(rendered_bracket: list[np.ndarray], tmp_path: Path) -> None:
    import tifffile

    paths = []
    for i, (frame, t) in enumerate(zip(rendered_bracket, (1 / 500, 1 / 125, 1 / 30))):
        paths.append(tmp_path / f"f{i}.jpg")
        write_jpeg_with_exif(paths[-1], frame, t)
    tif = tmp_path / "fused.tif"
    assert run_cli("fuse", *paths[::-1], "-o", tif, "--method", "mertens", "--bit-depth", "16", "--no-align") == 0
    data = tifffile.imread(tif)
    assert data.dtype == np.uint16 and data.shape == (96, 128, 3)
    jpg = tmp_path / "fused.jpg"
    assert run_cli("fuse", *paths, "-o", jpg, "--method", "mertens", "--no-align") == 0
    exif = piexif.load(str(jpg))["Exif"]
    assert exif[piexif.ExifIFD.ExposureTime] == (1, 125)


def test_cube_apply_matches_the_lut(cades: list[Path], tmp_path: Path) -> None:
    from lutfuse.core.cube import write_cube
    from lutfuse.core.lut import apply_lut, identity_lut

    lut = identity_lut(17) ** 0.5  # a brightening curve per channel
    cube = write_cube(tmp_path / "sqrt.cube", lut, title="sqrt")
    out = tmp_path / "graded.tif"
    assert run_cli("cube-apply", cube, cades[0], "-o", out, "--bit-depth", "16") == 0
    expected = apply_lut(read_rgb(cades[0]), lut)
    assert np.abs(read_rgb(out) - expected).max() < 1e-4


class CurveStudent:
    """Stand-in LUT student (as in test_fusion): a tone curve and a channel mix set by the bracket's mean."""

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """1×K×3×h×w in [0,1] -> 1×1 latent (mean brightness)."""
        return x.mean(dim=(1, 2, 3, 4)).view(1, 1)

    def sample(self, latent: torch.Tensor, grid: int) -> torch.Tensor:
        """1×G×G×G×3 LUT in [0,1]: identity ** gamma, then a mix (not separable, so a mis-ordered table shows)."""
        from lutfuse.core.lut import identity_lut

        gamma = 0.5 + 0.5 * latent.view(())
        mix = torch.tensor([[0.8, 0.15, 0.05], [0.1, 0.75, 0.15], [0.05, 0.2, 0.75]], device=latent.device)
        return (torch.from_numpy(identity_lut(grid)).to(latent.device).pow(gamma) @ mix.T)[None]


def shipped_student_available() -> bool:
    """True when the LUT student module and its shipped weights are in this checkout (as test_fusion checks)."""
    try:
        importlib.import_module("lutfuse.core.models.lut_student")
    except ModuleNotFoundError:
        return False
    from lutfuse.core.fusion import DEFAULT_WEIGHTS

    return DEFAULT_WEIGHTS.is_file()


@pytest.mark.parametrize("student", ["curve", pytest.param("shipped", marks=pytest.mark.skipif(
    not shipped_student_available(), reason="no shipped LUT student weights (resources/weights/lut_student.pt) yet"))])
def test_cube_on_its_base_in_opencolorio_reproduces_pure_lut_fusion(student: str, cades: list[Path], tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """`lutfuse cube --base` applied by another program (OpenColorIO) gives `lutfuse fuse --detail 0`."""
    ocio = pytest.importorskip("PyOpenColorIO")
    from lutfuse.core.cube import read_cube

    if student == "curve":
        monkeypatch.setattr("lutfuse.core.models.lut_student.load_student", lambda *args, **kwargs: CurveStudent())
    cube, base, fused = tmp_path / "look.cube", tmp_path / "base.tif", tmp_path / "fused.tif"
    assert run_cli("cube", *cades, "-o", cube, "--base", base, "--grid", 33, "--no-align", "--device", "cpu") == 0
    assert run_cli("fuse", *cades, "-o", fused, "--method", "lut", "--detail", 0, "--grid", 33, "--no-align",
                   "--bit-depth", 16, "--device", "cpu") == 0
    assert read_cube(cube).table.shape == (33, 33, 33, 3)
    assert read_cube(cube).title == "LUTFuse 02 G33"
    image = read_rgb(base)
    assert cv2.imread(str(base), cv2.IMREAD_UNCHANGED).dtype == np.uint16 and image.shape == (356, 536, 3)
    transform = ocio.FileTransform(src=str(cube), interpolation=ocio.INTERP_LINEAR,
                                   direction=ocio.TRANSFORM_DIR_FORWARD)
    graded = image.copy()  # applyRGB works in place
    ocio.Config.CreateRaw().getProcessor(transform).getDefaultCPUProcessor().applyRGB(graded)
    expected = read_rgb(fused)
    assert np.abs(graded - expected).max() < 1e-3
    assert np.abs(np.round(graded * 255) - np.round(expected * 255)).max() <= 1
    if student == "curve":  # the comparison is not vacuous: this LUT really changes the base
        assert np.abs(expected - image).mean() > 0.01


def test_metrics_prints_mef_ssim(cades: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from lutfuse.core.metrics import mef_ssim

    assert run_cli("metrics", *cades, "--fused", cades[1], "--reference", cades[1]) == 0
    out = capsys.readouterr().out
    value = float(out.split("MEF-SSIM")[1].split()[0])
    frames = [read_rgb(p) for p in cades]
    assert value == pytest.approx(mef_ssim(frames, frames[1]), abs=1e-5)
    assert "PSNR" in out and "inf" in out.split("PSNR")[1].split("\n")[0]


@pytest.mark.parametrize("argv, heavy", [(["--version"], ("torch", "cv2", "numpy")),
                                         (["--help"], ("torch",)), (["fuse", "--help"], ("torch",)),
                                         (["batch", "--help"], ("torch",)), (["eval", "--help"], ("torch",))])
def test_version_and_help_do_not_load_the_engine(argv: list[str], heavy: tuple[str, ...]) -> None:
    """`lutfuse --version` and `--help` answer without importing torch (seconds) or, for --version, anything."""
    import subprocess
    import sys

    code = (f"import sys\nfrom lutfuse.core.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            f"print('LOADED', sorted(m for m in {heavy!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "usage: lutfuse" in done.stdout or done.stdout.startswith("lutfuse ")
    assert done.stdout.strip().splitlines()[-1] == "LOADED []"


def test_train_still_parses_its_trainers(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_cli("train", "teacher", "--help")
    assert exit_info.value.code == 0
    assert "usage: lutfuse train teacher" in capsys.readouterr().out


@pytest.mark.parametrize("command", [["fuse"], ["cube"], ["cube-apply"], ["batch"], ["eval"], ["bench"], ["metrics"],
                                     ["gui"], ["train", "teacher"]])
def test_help_is_written_for_users(command: list[str], capsys: pytest.CaptureFixture) -> None:
    """No "(default: None)"/"(default: False)", at most one default per option, no source-file names."""
    import re

    with pytest.raises(SystemExit):
        run_cli(*command, "--help")
    text = " ".join(capsys.readouterr().out.split())
    assert "usage: lutfuse" in text
    assert "default: None" not in text and "default: False" not in text
    assert not re.search(r"\bcore[/.]|\w\.py\b", text)
    for option in re.split(r" (?=--?[a-z])", text.split("options:", 1)[1]):
        assert option.lower().count("default") <= 1, option


def test_piped_output_is_clean_lines(shared_cases: Path, tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    """Not on a terminal (a pipe, a log): no progress bar, so every message is a line of its own."""
    out = tmp_path / "x.jpg"
    assert run_cli("fuse", shared_cases / "exif-oversize", "-o", out, "--method", "mertens", "--no-align") == 0
    stdout, stderr = capfd.readouterr()
    assert "\r" not in stdout + stderr and "%|" not in stderr and "/s]" not in stderr
    assert stdout.splitlines()[-1].startswith("wrote ")
    assert [line.split(":")[0] for line in stderr.splitlines()] == ["lutfuse fuse"]  # the EXIF-trimmed warning


def test_progress_bar_counts_steps_without_a_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal the fuse bar reads "fusing (lut):  40%|...| 00:01<00:02", not "16.80%/s", on stderr."""
    import io
    import sys

    from lutfuse.core.commands.common import progress_bar

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    bar = progress_bar(100, "fusing (lut)")
    bar.n = 40
    bar.refresh()
    bar.close()
    shown = [part for part in terminal.getvalue().split("\r") if "40%" in part]
    assert shown and shown[0].startswith("fusing (lut):  40%|") and "/s" not in shown[0] and "it" not in shown[0]


def test_tripod_frames_get_a_short_line_and_same_named_frames_their_folder(shared_data: Path, tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture) -> None:
    scene = shared_data / "brackets" / "hdrps" / "Cades_Cove"  # a tripod stack: registration leaves it as it is
    frames = []
    for folder, name in (("dark", "02.png"), ("bright", "06.png")):
        (tmp_path / folder).mkdir()
        frames.append(shutil.copy(scene / name, tmp_path / folder / "frame.png"))
    assert run_cli("fuse", *frames, "-o", tmp_path / "out.jpg", "--method", "mertens") == 0
    out = capsys.readouterr().out.splitlines()
    per_frame = [line for line in out if line.startswith("  ")]
    assert sorted(line.split(":")[0].strip() for line in per_frame) == ["bright/frame.png", "dark/frame.png"]
    moved = [line for line in per_frame if "reference" not in line]
    assert len(moved) == 1 and "not moved (" in moved[0] and len(moved[0]) < 110 and "shift" not in moved[0]
    assert "dark/frame.png (-" in out[len(per_frame)] and "bright/frame.png (+0.0 EV)" in out[len(per_frame)]


def test_cube_without_base_says_what_it_applies_to(shared_cases: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    """A .cube alone reproduces nothing: one line says it applies to the bracket's base image and how to write
    it; nothing else is written unasked."""
    cube = tmp_path / "look.cube"
    assert run_cli("cube", shared_cases / "exif-oversize", "-o", cube, "--grid", 5, "--no-align") == 0
    hints = [line for line in capsys.readouterr().err.splitlines() if "--base" in line]
    assert len(hints) == 1 and "base image" in hints[0] and str(tmp_path / "look_base.tif") in hints[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["look.cube"]
    base = tmp_path / "look_base.tif"
    assert run_cli("cube", shared_cases / "exif-oversize", "-o", cube, "--grid", 5, "--no-align", "--force",
                   "--base", base) == 0
    assert "--base" not in capsys.readouterr().err and base.is_file()
