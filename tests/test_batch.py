"""`lutfuse batch`: a shoot of mixed real brackets (EXIF, shuffled names, a corrupt frame) grouped and fused as
`lutfuse fuse` would; resume, presets, dry-run, the process pool and Ray give the same files."""

from __future__ import annotations

import csv
import json
import random
from datetime import datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import piexif
import pytest
from conftest import expose, render_scene

from lutfuse.core.cli import main

T0 = datetime(2026, 5, 1, 17, 0, 0)
SIZE = (120, 80)  # w, h of the test frames: small, so a dozen brackets fuse in seconds on 2 cores


def run_cli(*args: object) -> int:
    return main([str(a) for a in args])


def write_frame(path: Path, rgb: np.ndarray, *, when: datetime | None, exposure_s: float | None) -> None:
    """H×W×3 float RGB in [0,1] -> JPEG with DateTimeOriginal/SubSecTimeOriginal, ExposureTime, FNumber, ISO."""
    bgr = cv2.cvtColor(np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
    assert cv2.imwrite(str(path), bgr, [cv2.IMWRITE_JPEG_QUALITY, 92])
    exif: dict = {"0th": {piexif.ImageIFD.Make: b"TestCam"}, "Exif": {}}
    if exposure_s is not None:
        exif["Exif"].update({piexif.ExifIFD.ExposureTime: (1, round(1 / exposure_s)) if exposure_s < 1
                             else (round(exposure_s), 1),
                             piexif.ExifIFD.FNumber: (8, 1), piexif.ExifIFD.ISOSpeedRatings: 100})
    if when is not None:
        exif["Exif"][piexif.ExifIFD.DateTimeOriginal] = when.strftime("%Y:%m:%d %H:%M:%S").encode()
        exif["Exif"][piexif.ExifIFD.SubSecTimeOriginal] = f"{when.microsecond // 10000:02d}".encode()
    if exif["Exif"]:
        piexif.insert(piexif.dump(exif), str(path))


def corrupt(path: Path) -> None:
    """Keep the JPEG's header segments (so its EXIF still reads) and replace the image data with garbage."""
    data = path.read_bytes()
    sos = data.index(b"\xff\xda")
    path.write_bytes(data[:sos] + b"\xff\xda\x00\x0c" + bytes(random.Random(1).randbytes(200)))


def hdrps_frames(shared_data: Path, scene: str, picks: list[int]) -> list[np.ndarray]:
    """Frames `picks` (0 = darkest, 1-stop steps) of a real hdrps stack, resized to SIZE."""
    folder = shared_data / "brackets" / "hdrps" / scene
    out = []
    for k in picks:
        bgr = cv2.imread(str(folder / f"{k:02d}.png"), cv2.IMREAD_COLOR)
        out.append(cv2.cvtColor(cv2.resize(bgr, SIZE, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB) / 255.0)
    return out


def build_shoot(folder: Path, brackets: list[list[np.ndarray]], evs: list[list[float]], *, seed: int | None = 3,
                exif: bool = True) -> list[list[Path]]:
    """Write brackets as a camera would shoot them (frames 0.3 s apart, brackets 20 s apart), under shuffled
    file names (in shooting order when seed is None) -> the paths of each bracket in shooting order."""
    count = sum(map(len, brackets))
    numbers = list(range(1000, 1000 + count)) if seed is None else random.Random(seed).sample(range(1000, 9999), count)
    names = [f"DSC_{n:04d}.jpg" for n in numbers]
    paths, k, when = [], 0, T0
    for frames, stops in zip(brackets, evs):
        group = []
        for rgb, ev in zip(frames, stops):
            path = folder / names[k]
            write_frame(path, rgb, when=when if exif else None, exposure_s=(2.0 ** ev) / 125 if exif else None)
            group.append(path)
            k += 1
            when += timedelta(seconds=0.3)
        paths.append(group)
        when += timedelta(seconds=20)
    return paths


@pytest.fixture
def shoot(shared_data: Path, tmp_path: Path) -> tuple[Path, list[list[Path]]]:
    """A folder of 4 real brackets of sizes 3, 2, 5, 3 (the 4th with a corrupt frame) and one stray frame."""
    plan = [("Cades_Cove", [2, 4, 6]), ("El_Capitan", [3, 5]), ("Frontier", [0, 2, 4, 6, 8]),
            ("Delicate_Arch", [2, 4, 6])]
    brackets = [hdrps_frames(shared_data, scene, picks) for scene, picks in plan]
    evs = [[p - picks[len(picks) // 2] for p in picks] for _, picks in plan]
    brackets[1] = brackets[1][::-1]  # this camera shoots brightest first
    evs[1] = evs[1][::-1]
    folder = tmp_path / "card"
    folder.mkdir()
    groups = build_shoot(folder, brackets, evs)
    corrupt(groups[3][1])
    stray = folder / "DSC_0001.jpg"  # one lone frame, long after the last bracket
    write_frame(stray, brackets[0][1], when=T0 + timedelta(minutes=10), exposure_s=1 / 125)
    return folder, groups


def test_auto_groups_mixed_brackets_and_reports_leftovers(shoot, capsys) -> None:
    folder, groups = shoot
    from lutfuse.core.grouping import plan_groups

    plan = plan_groups([folder], "auto")
    assert [sorted(g.paths) for g in plan.groups] == [sorted(g) for g in groups]
    assert [p.name for p, _ in plan.leftovers] == ["DSC_0001.jpg"]
    assert plan.groups[2].relative_evs() == pytest.approx([-4.0, -2.0, 0.0, 2.0, 4.0], abs=0.05)

    assert run_cli("batch", folder, "-o", folder.parent / "out", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "bracket 3: 5 frames, EV -4.0, -2.0, +0.0, +2.0, +4.0 (exif)" in out
    assert "bracket 2: 2 frames, EV -2.0, +0.0 (exif)" in out
    assert "not in any bracket:" in out and "DSC_0001.jpg (no other frame of its bracket" in out
    assert "4 bracket(s), 13 frames grouped, 1 frame(s) in no bracket" in out
    assert not (folder.parent / "out").exists()  # a dry run writes nothing


def test_batch_equals_fuse_goes_on_after_a_bad_bracket_and_resumes(shoot, tmp_path: Path) -> None:
    folder, groups = shoot
    out = tmp_path / "out"
    summary = tmp_path / "summary.csv"
    assert run_cli("batch", folder, "-o", out, "--grid", 17, "--summary", summary) == 1  # one bracket failed
    rows = list(csv.DictReader(summary.open()))
    brackets = [r for r in rows if r["bracket"]]
    assert [r["status"] for r in brackets] == ["ok", "ok", "ok", "failed"]
    assert groups[3][1].name in brackets[3]["error"]
    assert rows[-1]["status"] == "not in any bracket" and rows[-1]["frames"].endswith("DSC_0001.jpg")
    assert json.loads(brackets[0]["settings"])["grid"] == 17
    assert [float(e) for e in brackets[2]["evs"].split(";")] == pytest.approx([-4, -2, 0, 2, 4], abs=0.05)

    # the very bytes `lutfuse fuse` writes for the same frames and settings
    for group, row in zip(groups[:3], brackets):
        first = group[0]  # shooting order: the name pattern's {first}
        single = tmp_path / f"single_{first.stem}.jpg"
        assert run_cli("fuse", *group, "-o", single, "--grid", 17) == 0
        assert Path(row["output"]).name == f"{first.stem}_lut.jpg"
        assert Path(row["output"]).read_bytes() == single.read_bytes()
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{g[0].stem}_lut.jpg" for g in groups[:3])

    # a second run refuses to overwrite, --resume skips the finished ones and retries only the failed one
    assert run_cli("batch", folder, "-o", out, "--grid", 17) == 1
    stamps = {p: p.stat().st_mtime_ns for p in out.iterdir()}
    assert run_cli("batch", folder, "-o", out, "--grid", 17, "--resume", "--summary", tmp_path / "s.json") == 1
    status = [b["status"] for b in json.loads((tmp_path / "s.json").read_text())["brackets"]]
    assert status == ["skipped", "skipped", "skipped", "failed"]
    assert {p: p.stat().st_mtime_ns for p in out.iterdir()} == stamps


def test_preset_round_trip_and_unknown_key(rendered_tmp_shoot, tmp_path: Path, capsys) -> None:
    folder = rendered_tmp_shoot
    preset = tmp_path / "look.toml"
    a, b = tmp_path / "a", tmp_path / "b"
    assert run_cli("batch", folder, "-o", a, "--method", "lut", "--grid", 9, "--detail", 0.5, "--no-align",
                   "--name", "{index:03d}_{first}.png", "--save-preset", preset) == 0
    text = preset.read_text()
    assert "grid = 9" in text and "detail = 0.5" in text and 'align = "off"' in text
    assert 'name = "{index:03d}_{first}.png"' in text
    assert run_cli("batch", folder, "-o", b, "--preset", preset) == 0
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir()) and len(names) == 3 and names[0].startswith("001_")
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes()
    # a command-line option wins over the preset
    c = tmp_path / "c"
    assert run_cli("batch", folder, "-o", c, "--preset", preset, "--grid", 33) == 0
    assert (c / names[0]).read_bytes() != (a / names[0]).read_bytes()

    # the editor's settings files (core.sidecar) read in batch, and batch's presets in the editor
    from lutfuse.core.sidecar import read_settings, write_settings

    assert read_settings(preset)["align"] is False and read_settings(preset)["grid"] == 9
    editor = tmp_path / "editor.toml"
    # a sidecar as the editor writes it, with its bracket control: those keys name that bracket's files, so a
    # preset read of it leaves them out instead of refusing the file
    write_settings(editor, {"grid": 9, "detail": 0.5, "align": False, "reference_frame": "01.png",
                            "excluded_frames": ["02.png"]})
    e = tmp_path / "e"
    assert run_cli("batch", folder, "-o", e, "--preset", editor, "--name", "{index:03d}_{first}.png") == 0
    for name in names:
        assert (a / name).read_bytes() == (e / name).read_bytes()

    bad = tmp_path / "bad.toml"
    bad.write_text('method = "lut"\ngird = 9\n')
    capsys.readouterr()
    assert run_cli("batch", folder, "-o", tmp_path / "d", "--preset", bad) == 1
    err = capsys.readouterr().err
    assert "bad.toml" in err and "unknown preset key 'gird'" in err
    bad.write_text('method = "magic"\n')
    assert run_cli("batch", folder, "-o", tmp_path / "d", "--preset", bad) == 1
    assert "'magic' is not one of" in capsys.readouterr().err


@pytest.fixture
def rendered_tmp_shoot(tmp_path: Path) -> Path:
    """Three rendered brackets (3 frames each, EV -2/0/+2) with EXIF, no real data needed."""
    brackets, evs = [], []
    for seed in range(3):
        scene = render_scene(64, 96, seed=seed)
        brackets.append([expose(scene, ev) for ev in (-3.0, -1.0, 1.0)])
        evs.append([-2.0, 0.0, 2.0])
    folder = tmp_path / "rendered"
    folder.mkdir()
    build_shoot(folder, brackets, evs, seed=7)
    return folder


def test_group_modes_without_exif(tmp_path: Path, capsys) -> None:
    """No EXIF: auto falls back to brightness steps; N and folder group as told."""
    scene = render_scene(48, 64, seed=4)
    flat = tmp_path / "flat"
    flat.mkdir()
    brackets = [[expose(scene, ev) for ev in (-3.0, -1.0, 1.0)], [expose(scene, ev) for ev in (-2.0, 0.5)],
                [expose(scene, ev) for ev in (-3.0, -1.0, 1.0)]]
    # without EXIF only the name order tells the shooting order
    ordered = [p for g in build_shoot(flat, brackets, [[0, 0, 0], [0, 0], [0, 0, 0]], exif=False, seed=None)
               for p in g]
    from lutfuse.core.grouping import plan_groups

    plan = plan_groups([flat], "auto")
    assert [len(g.frames) for g in plan.groups] == [3, 2, 3] and not plan.leftovers
    assert all(s.ev_source == "brightness" for g in plan.groups for s in g.frames)
    plan = plan_groups([flat], "3")
    assert [len(g.frames) for g in plan.groups] == [3, 3] and [p.name for p, _ in plan.leftovers] == \
        [p.name for p in ordered[6:]]

    root = tmp_path / "byfolder"
    for k, frames in enumerate(brackets):
        (root / f"scene{k}").mkdir(parents=True)
        for j, rgb in enumerate(frames):
            write_frame(root / f"scene{k}" / f"{j}.jpg", rgb, when=None, exposure_s=None)
    write_frame(root / "loose.jpg", brackets[0][0], when=None, exposure_s=None)
    assert run_cli("batch", root, "-o", tmp_path / "out", "--group", "folder", "--method", "mertens") == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"scene{k}_mertens.jpg" for k in range(3)]
    assert "loose.jpg (not inside a bracket subfolder" in capsys.readouterr().out


def test_pool_writes_the_same_files(rendered_tmp_shoot, tmp_path: Path) -> None:
    folder = rendered_tmp_shoot
    assert run_cli("batch", folder, "-o", tmp_path / "one", "--grid", 17) == 0
    assert run_cli("batch", folder, "-o", tmp_path / "pool", "--grid", 17, "--workers", 2) == 0
    names = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert len(names) == 3
    for name in names:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "pool" / name).read_bytes()


def test_batch_takes_every_fuse_option(capsys) -> None:
    """Batch copies fuse's options (an option added to fuse appears here and as a preset key)."""
    from lutfuse.core.commands.fuse import setting_actions

    with pytest.raises(SystemExit) as exit_info:
        run_cli("batch", "--help")
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    flags = [f for a in setting_actions() for f in a.option_strings]
    assert {"--method", "--grid", "--detail", "--no-align", "--quality", "--bit-depth"} <= set(flags)
    assert all(flag in out for flag in flags)


@pytest.mark.parametrize("workers", [1, 2])
def test_trimmed_exif_is_one_warning_line_in_batch(shared_cases: Path, tmp_path: Path, capfd, workers: int) -> None:
    """The exif-oversize case: JPEG and PNG results drop the 69 KB UserComment and say so in one stderr line,
    also from a pool worker; a TIFF result keeps it without a word."""
    frames = shared_cases / "exif-oversize"
    cases = ((".jpg", True), (".png", True), (".tif", False)) if workers == 1 else ((".jpg", True),)
    for suffix, trimmed in cases:
        out = tmp_path / f"out{suffix}"
        capfd.readouterr()
        assert run_cli("batch", frames, "-o", out, "--group", 2, "--no-align", "--method", "mertens",
                       "--name", "{first}" + suffix, "--workers", workers) == 0
        err = capfd.readouterr().err
        lines = [line for line in err.replace("\r", "\n").splitlines() if "EXIF trimmed" in line]
        if trimmed:
            assert len(lines) == 1 and lines[0].startswith("lutfuse batch: warning: ")
            assert "UserComment" in lines[0] and f"0{suffix}" in lines[0]
        else:
            assert lines == [] and "Traceback" not in err


def test_summary_inside_a_fresh_output_folder(rendered_tmp_shoot, tmp_path: Path, capsys) -> None:
    """The README's `lutfuse batch CARD -o fused --summary fused/summary.csv` works on a fresh run; a summary in a
    folder that will not exist is still refused before any work, and nothing is left behind."""
    out = tmp_path / "fusedcard"
    assert run_cli("batch", rendered_tmp_shoot, "-o", tmp_path / "elsewhere", "--method", "mertens",
                   "--summary", tmp_path / "nowhere" / "summary.csv") == 1
    assert "nowhere does not exist" in capsys.readouterr().err and not (tmp_path / "elsewhere").exists()
    assert run_cli("batch", rendered_tmp_shoot, "-o", out, "--method", "mertens",
                   "--summary", out / "summary.csv") == 0
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert [r["status"] for r in rows] == ["ok"] * 3 and all(Path(r["output"]).is_file() for r in rows)


@pytest.mark.parametrize("line", ["grid = 300", "grid = 1", "detail = -0.5", "quality = 0", "exposure = 9.0",
                                  'method = "magic"', 'deghost = "max"', "bit_depth = 12"])
def test_a_bad_preset_value_names_the_key_and_the_file(tmp_path: Path, capsys, line: str) -> None:
    preset = tmp_path / "shoot.toml"
    preset.write_text(f"{line}\n")
    key = line.split(" = ")[0]
    assert run_cli("batch", tmp_path, "-o", tmp_path / "out", "--preset", preset) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(preset) in err[0] and f"key '{key}'" in err[0], err
    assert not (tmp_path / "out").exists()


def test_dry_run_prints_the_evs_fuse_prints(shared_data: Path, capsys) -> None:
    """No EXIF (deepfuse Seq_14): the dry run's EVs are the loader's estimate, the numbers `lutfuse fuse` prints
    (they were -1.0/0/+0.5 from the grouping's per-frame mean against fuse's -2.1/0/+1.9)."""
    import re

    from lutfuse.core.bracket import load_bracket, relative_evs

    folder = shared_data / "brackets" / "deepfuse" / "Seq_14"
    assert run_cli("batch", folder, "-o", folder.parent / "never-written", "--dry-run") == 0
    out = capsys.readouterr().out
    shown = [float(x) for x in re.search(r"EV ([-+0-9., ]+) \(brightness\)", out).group(1).split(", ")]
    bracket = load_bracket([folder], align="off")
    assert {f.ev_source for f in bracket.frames} == {"brightness"}
    assert shown == [round(e, 1) for e in relative_evs([f.ev for f in bracket.frames])]
    assert shown[-1] - shown[0] > 3.5  # about 2 stops each side, as the frames were shot


def test_the_readme_preset_example_loads(tmp_path: Path) -> None:
    """The README's preset example is a working preset; `no_align` (fuse's --no-align) is a key like the rest."""
    from lutfuse.core.commands.batch import preset_values
    from lutfuse.core.sidecar import PresetError

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    example = readme.split("```toml", 1)[1].split("```", 1)[0]
    preset = tmp_path / "readme.toml"
    preset.write_text(example)
    assert preset_values(preset)["grid"] == 33 and preset_values(preset)["align"] == "auto"
    preset.write_text("no_align = true\n")
    assert preset_values(preset)["align"] == "off"
    preset.write_text("no_align = false\n")
    assert "align" not in preset_values(preset)
    preset.write_text('no_align = true\nalign = "homography"\n')
    with pytest.raises(PresetError, match="disagree"):
        preset_values(preset)
