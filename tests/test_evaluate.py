"""`lutfuse eval` and core.evaluate on the real validation data: a couple of cases at a small size, with random
weights in a temporary folder (the shipped ones may not exist yet, and are never touched)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from lutfuse.core import evaluate as ev
from lutfuse.core.bracket import Bracket
from lutfuse.core.cli import main
from lutfuse.core.errors import BracketError, LUTFuseError

SIDE = 192  # small enough that every case scores in about a second on 2 cores


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> None:
    """Keep torch on one thread: the machine is shared with training runs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random (untrained) weights of every network, small ones with their architecture saved beside them."""
    from lutfuse.core.models.lut_student import LUTStudent
    from lutfuse.core.models.refine import AMNet, Phase1UNet
    from lutfuse.core.weights import save_weights

    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    save_weights(LUTStudent(), folder / ev.STUDENT_FILE)
    save_weights(Phase1UNet(width=8, layers=2), folder / ev.PHASE1_FILE)   # architectures saved beside
    save_weights(AMNet(width=8, layers=2), folder / ev.PHASE2_FILE)
    return folder


@pytest.fixture(scope="module")
def result(shared_data: Path, weights: Path) -> dict:
    """Every method on the first 2 validation cases (one 3-frame scene at k = 2 and k = 3), with a grid sweep."""
    return ev.evaluate(shared_data, split="val", max_side=SIDE, limit=2, grid_sweep="8,33", weights_dir=weights,
                       device="cpu")


def run_cli(*args: object) -> int:
    return main([str(a) for a in args])


def test_every_method_has_finite_plausible_scores(result: dict) -> None:
    assert result["methods"] == list(ev.METHODS) and not result["skipped"]
    assert list(result["means"]) == list(ev.METHODS)
    assert [c["k"] for c in result["cases"]] == [2, 3]
    for method, s in result["means"].items():
        assert s["n"] == (1 if method in ("hq-thesis-generated-middle", "hq-thesis-no-phase1", "phase1") else 2), method
        assert 0.0 < s["psnr"] <= ev.PSNR_CAP and -1.0 <= s["ssim"] <= 1.0 and s["seconds"] >= 0.0, method
        if method == "phase1":
            assert s["mef_ssim"] is None  # scored against the real middle frame, not the inputs
        else:
            assert 0.0 < s["mef_ssim"] <= 1.0, method
    # Mertens and the LUT are real fusions even with a random student: MEF-SSIM high, PSNR well above noise
    for method in ("mertens", "lut", "lut+detail"):
        assert result["means"][method]["mef_ssim"] > 0.8 and result["means"][method]["psnr"] > 15
    assert set(result["by_k"]) == {"2", "3"} and "hq-thesis-generated-middle" not in result["by_k"]["2"]
    assert "hq-thesis-no-phase1" not in result["by_k"]["3"]
    # the HQ rows carry the consistency and halo measures; HQ stays the live view's picture
    for method in ev.HQ_VARIANTS:
        s = result["means"][method]
        assert s["delta_e"] is not None and s["delta_e"] >= 0 and s["halo"] is not None and s["chroma"] > 0
    assert result["means"]["lut+detail"]["delta_e"] == pytest.approx(0.0)
    sweep = result["grid_sweep"]
    assert [s["grid"] for s in sweep] == [8, 33] and all(s["n"] == 2 and math.isfinite(s["psnr"]) for s in sweep)
    # the sweep's G = 33 entry is the lut row (same grid, detail 0)
    assert sweep[1]["psnr"] == pytest.approx(result["means"]["lut"]["psnr"])
    assert result["cases"][0]["phase1_baseline_psnr"] > 10


def test_bracket_sizes_beyond_three_take_evenly_spaced_frames() -> None:
    from lutfuse.core.train.data import Scene

    frames = np.stack([np.full((4, 4, 3), i / 10, np.float32) for i in range(9)])
    scene = Scene("s", frames, frames[4])
    cases = ev.scene_cases(scene, ev.parse_ks("2-9"))
    assert [c["k"] for c in cases] == list(range(2, 10))
    for c in cases:
        levels = [round(float(f[0, 0, 0]) * 10) for f in c["inputs"]]
        assert len(levels) == c["k"] and levels[0] == 0 and levels[-1] == 8 and levels == sorted(set(levels))
    assert [c["k"] for c in ev.scene_cases(Scene("t", frames[:4], frames[2]), ev.parse_ks("2,3,5"))] == [2, 3]
    with pytest.raises(LUTFuseError):
        ev.parse_ks("1-4")


def test_scenes_pick_a_subset_with_every_bracket_size(shared_data: Path) -> None:
    key = next(k for k in _val_keys() if k.startswith("hdrps/"))   # a 9-frame stack
    result = ev.evaluate(shared_data, methods=["mertens"], scenes=key.split("/")[0] + "/" + key.split("/")[1][:4],
                         ks="2-9", max_side=SIDE)
    assert {c["key"] for c in result["cases"]} == {key}
    assert sorted(result["by_k"], key=int) == [str(k) for k in range(2, 10)]
    assert all(means["mertens"]["n"] == 1 for means in result["by_k"].values())
    assert result["config"]["scenes"].startswith("hdrps/")
    with pytest.raises(LUTFuseError, match="no scene"):
        ev.evaluate(shared_data, methods=["mertens"], scenes="nonesuch/", max_side=SIDE)


def _val_keys() -> list[str]:
    from lutfuse.core.train import data

    return list(data.load_split()["val"])


def test_mertens_of_the_whole_stack_is_the_reference(result: dict) -> None:
    """The first val scene has 3 frames: at k = 3 its inputs are the whole stack, and the reference is Mertens of
    all of them, so Mertens reproduces it exactly; at k = 2 (the extremes only) it does not."""
    whole, sparse = result["cases"][1], result["cases"][0]
    assert whole["inputs_are_stack"] and whole["stack_frames"] == 3 and not sparse["inputs_are_stack"]
    assert whole["scores"]["mertens"]["psnr"] == ev.PSNR_CAP
    assert whole["scores"]["mertens"]["ssim"] == pytest.approx(1.0)
    assert 20 < sparse["scores"]["mertens"]["psnr"] < 60
    assert list(result["sparse"]) and result["sparse"]["mertens"]["n"] == 1
    assert any("Mertens is exact" in n for n in result["notes"])


def test_cases_are_the_validation_cases(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """evaluate loads scenes one at a time; its cases must be exactly core.train.data.validation_cases'."""
    from lutfuse.core.train import data

    key = data.load_split()["val"][0]
    monkeypatch.setattr(data, "load_split", lambda: {"val": [key], "train": []})
    expected = data.validation_cases(shared_data, max_side=SIDE)
    ours = data.scene_cases(data.load_scene(shared_data, key, max_side=SIDE))
    assert len(ours) == len(expected) == ev.plan_scenes(shared_data, "val")[0][2]
    for a, b in zip(ours, expected):
        assert a["key"] == b["key"]
        np.testing.assert_array_equal(a["inputs"], b["inputs"])
        np.testing.assert_array_equal(a["middle"], b["middle"])
        # OpenCV's Mertens is not bit-reproducible from run to run (float rounding, about 3e-7)
        np.testing.assert_allclose(a["reference"], b["reference"], atol=1e-5)


def test_cli_tables_and_json_round_trip(shared_data: Path, weights: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "eval.json"
    assert run_cli("eval", shared_data / "brackets", "--limit", 2, "--max-side", SIDE, "--methods", "mertens,lut",
                   "lut+detail", "--grid-sweep", "8,16", "--weights-dir", weights, "--device", "cpu",
                   "--json", out) == 0
    text = capsys.readouterr().out
    header = next(line for line in text.splitlines() if line.startswith("method"))
    assert header.split() == ["method", "n", "MEF-SSIM", "PSNR", "SSIM", "s/case", "ΔE", "live", "halo", "C*",
                              "C*/M", "min", "dE00"]
    saved = json.loads(out.read_text())
    assert saved["config"]["data_root"] == str(shared_data)  # brackets/ was accepted for its parent
    assert saved["methods"] == ["mertens", "lut", "lut+detail"] and len(saved["cases"]) == 2
    for method, s in saved["means"].items():
        row = f"{method:<20}{s['n']:>4}{s['mef_ssim']:>10.4f}{s['psnr']:>9.2f}{s['ssim']:>9.4f}"
        assert row in text
    for s in saved["grid_sweep"]:
        assert f"{s['grid']:>4}{s['psnr']:>9.2f}{s['mef_ssim']:>10.4f}" in text
    assert "k = 2 inputs" in text and "k = 3 inputs" in text
    # an existing file is kept unless --force; --force replaces it
    assert run_cli("eval", shared_data, "--limit", 1, "--methods", "mertens", "--json", out) == 1
    assert "already exists" in capsys.readouterr().err and json.loads(out.read_text()) == saved
    assert run_cli("eval", shared_data, "--limit", 1, "--max-side", SIDE, "--methods", "mertens", "--json", out,
                   "--force") == 0
    assert len(json.loads(out.read_text())["cases"]) == 1
    assert not [p for p in tmp_path.iterdir() if p.name != out.name]  # no temporary file left behind


def test_bad_arguments_exit_1_with_one_line(tmp_path: Path, shared_data: Path, capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "no-such-data"
    assert run_cli("eval", missing) == 1
    err = capsys.readouterr().err
    assert str(missing) in err and err.count("\n") == 1 and err.startswith("lutfuse eval: error:")
    assert run_cli("eval", tmp_path) == 1
    assert str(tmp_path) in capsys.readouterr().err
    for bad in (["--methods", "nonesuch"], ["--grid-sweep", "8,200"], ["--limit", "0"],
                ["--json", str(tmp_path / "out.txt")]):
        assert run_cli("eval", shared_data, *bad) == 1, bad
        assert "error:" in capsys.readouterr().err


def test_missing_weights_skip_with_a_note_unless_asked_for(shared_data: Path, weights: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture) -> None:
    """Default weights folder holding the student and phase 1 only: the HQ rows are skipped with a note, phase 1
    runs alone; asking for hq by name is an error naming the missing file."""
    from lutfuse.core import paths

    partial = tmp_path / "weights"
    partial.mkdir()
    from lutfuse.core.weights import config_path

    for name in (ev.STUDENT_FILE, ev.PHASE1_FILE):
        shutil.copy(weights / name, partial / name)
        shutil.copy(config_path(weights / name), config_path(partial / name))
    monkeypatch.setattr(paths, "WEIGHTS", partial)
    assert run_cli("eval", shared_data, "--limit", 1, "--max-side", SIDE, "--device", "cpu") == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    # the shipped HQ needs only the student; the thesis rows need both phases
    thesis = [m for m in ev.HQ_VARIANTS if m.startswith("hq-thesis")]
    plain = [m for m in ev.HQ_VARIANTS if m not in thesis]
    assert plain[:2] == ["hq", "hq-steps16"]
    assert [line.split()[0] for line in lines[2:lines.index("")]] == ["mertens", "lut", "lut+detail", *plain,
                                                                      "phase1"]
    assert all(f"note: skipped {m}:" in text for m in thesis)
    assert str(partial / ev.PHASE2_FILE) in text
    assert run_cli("eval", shared_data, "--limit", 1, "--methods", "hq-thesis") == 1
    err = capsys.readouterr().err
    assert "refine_phase2.pt" in err and "not found" in err
    with pytest.raises(LUTFuseError, match="lut_student.pt"):
        ev.evaluate(shared_data, limit=1, grid_sweep=[8], weights_dir=tmp_path / "empty")


def test_bracket_from_images(rendered_bracket: list[np.ndarray]) -> None:
    b = Bracket.from_images(rendered_bracket)
    assert b.images.shape == (3, 96, 128, 3) and b.images.dtype == np.float32
    np.testing.assert_array_equal(b.images[2], rendered_bracket[2])
    assert [f.ev for f in b.frames] == [0.0, 1.0, 2.0] and b.middle() is b.frames[1] and not b.aligned
    np.testing.assert_allclose(b.mean(), np.mean(rendered_bracket, axis=0), atol=1e-6)
    with pytest.raises(BracketError):
        Bracket.from_images(rendered_bracket[:1])
    with pytest.raises(BracketError):
        Bracket.from_images(rendered_bracket, evs=[0.0, 1.0])
    with pytest.raises(BracketError):
        Bracket.from_images([rendered_bracket[0], rendered_bracket[1][:50]])


def test_colour_columns(result: dict) -> None:
    """Chroma ratio to Mertens of the same inputs (geometric mean and lowest case) and median CIEDE2000."""
    means = result["means"]
    assert means["mertens"]["chroma_ratio"] == pytest.approx(1.0)
    assert means["mertens"]["chroma_ratio_min"] == pytest.approx(1.0)
    for method in ("lut", "lut+detail"):
        assert 0.2 < means[method]["chroma_ratio_min"] <= means[method]["chroma_ratio"] < 3.0, method
        assert means[method]["de00"] > 0.0, method
    ratios = [c["scores"]["lut"]["chroma_ratio"] for c in result["cases"]]
    assert means["lut"]["chroma_ratio"] == pytest.approx(float(np.exp(np.mean(np.log(ratios)))))
    assert means["lut"]["chroma_ratio_min"] == min(ratios)


def test_eval_aligns_and_scores_against_the_registered_frames(shared_data: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """MarketMires2's frames really are misregistered (registration moves them); Flamingo is a tripod stack (it
    moves none). With --align auto (fuse's default) the moved cases are scored against the frames the method
    fused, and score at least as well as without alignment; the tripod scene scores exactly as with align off."""
    from lutfuse.core.train import data

    monkeypatch.setattr(data, "load_split", lambda: {"val": ["forth/MarketMires2", "hdrps/Flamingo"], "train": []})
    runs = {align: ev.evaluate(shared_data, split="val", methods=["mertens"], max_side=512, align=align,
                               device="cpu") for align in ("off", "auto")}
    assert runs["auto"]["config"]["align"] == "auto"
    off, auto = runs["off"]["cases"], runs["auto"]["cases"]
    assert [(c["key"], c["k"]) for c in off] == [(c["key"], c["k"]) for c in auto]
    assert all(c["registered"] == 0 and c["crop"] is None for c in off)
    for a, o in zip(auto, off):
        before, after = o["scores"]["mertens"]["mef_ssim"], a["scores"]["mertens"]["mef_ssim"]
        if a["key"] == "hdrps/Flamingo":
            # OpenCV's Mertens is not bit-reproducible from run to run (float rounding, about 3e-7)
            assert a["registered"] == 0 and after == pytest.approx(before, abs=1e-5)
        else:
            assert a["registered"] >= 1 and a["crop"] is not None
            assert after >= before
    # the 3-frame case has two frames moved: against the unregistered frames its fusion scored 0.965, against the
    # frames it fused 0.98 (docs: scoring the registered fusion against the unregistered frames gives 0.875)
    three = next(a for a, o in zip(auto, off) if a["key"] == "forth/MarketMires2" and a["k"] == 3)
    assert three["registered"] == 2
    assert three["scores"]["mertens"]["mef_ssim"] > next(
        o for o in off if o["key"] == "forth/MarketMires2" and o["k"] == 3)["scores"]["mertens"]["mef_ssim"] + 0.01
    assert any("registration moved 3 frames in 2 of" in n for n in runs["auto"]["notes"])
