"""Engine: caches, exact detail-0 render, previews, errors, threads, a real bracket; and `lutfuse bench`."""

from __future__ import annotations

import json
import re
import threading

import cv2
import numpy as np
import pytest
import torch

from lutfuse.core.base import blend
from lutfuse.core.bracket import Bracket, load_bracket
from lutfuse.core.cli import main
from lutfuse.core.errors import LUTFuseError
from lutfuse.core.fusion import DEFAULT_WEIGHTS, Engine
from lutfuse.core.lut import apply_lut, identity_lut
from lutfuse.core.metrics import mef_ssim
from lutfuse.core.prepared import PreparedBracket


class CurveStudent:
    """Stand-in LUT student: a brightening tone curve whose strength follows the bracket's mean (the latent)."""

    def __init__(self) -> None:
        self.sampled: list[int] = []

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """1×K×3×h×w in [0,1] -> 1×1 latent (mean brightness)."""
        assert x.dim() == 5 and x.shape[2] == 3
        return x.mean(dim=(1, 2, 3, 4)).view(1, 1)

    def sample(self, latent: torch.Tensor, grid: int) -> torch.Tensor:
        """1×G×G×G×3 LUT: identity ** gamma, gamma in (0.5, 1) from the latent; counts its calls."""
        self.sampled.append(grid)
        gamma = 0.5 + 0.5 * latent.view(())
        return torch.from_numpy(identity_lut(grid)).to(latent.device).pow(gamma)[None]


STUDENTS = ["curve", pytest.param("shipped", marks=pytest.mark.skipif(
    not DEFAULT_WEIGHTS.is_file(), reason="no shipped LUT student weights"))]


def make_engine(kind: str) -> Engine:
    """An engine on the CPU with the stand-in or the shipped student."""
    return Engine(device="cpu", student=CurveStudent() if kind == "curve" else None)


@pytest.fixture
def engine() -> Engine:
    """CPU engine with the stand-in student."""
    return make_engine("curve")


@pytest.fixture
def prepared(engine, rendered_bracket) -> PreparedBracket:
    """The rendered 96×128 bracket prepared by `engine`."""
    return engine.prepare(Bracket.from_images(rendered_bracket))


@pytest.mark.parametrize("kind", STUDENTS)
def test_render_shapes_ranges_and_exact_pure_lut(kind, rendered_bracket):
    e = make_engine(kind)
    bracket = Bracket.from_images(rendered_bracket)
    p = e.prepare(bracket)
    assert p.bracket is bracket and e.device == torch.device("cpu") and not hasattr(e, "bracket")
    # the base is core.base's: the mean with colour restored as far as this bracket's LUT needs
    assert 0.0 <= p.base_amount <= 1.5
    np.testing.assert_array_equal(p.base, blend(np.stack(rendered_bracket), p.base_amount))
    for g in (2, 17, 33, 129):
        lut = e.lut(p, g)
        assert lut.shape == (g, g, g, 3) and lut.dtype == np.float32
        assert lut.min() >= 0 and lut.max() <= 1
        pure = e.render(p, g, 0.0)
        # detail 0 is the exported .cube on the exported base, bit for bit
        np.testing.assert_array_equal(pure, apply_lut(p.base, e.lut(p, g)))
        full = e.render(p, g, 1.0)
        assert full.shape == (96, 128, 3) and full.dtype == np.float32
        assert full.min() >= 0 and full.max() <= 1
        assert np.abs(full - pure).mean() > 1e-3  # the detail really is added


def test_lut_is_sampled_once_per_grid_size(engine, prepared):
    student = engine.student
    first = engine.lut(prepared, 17)
    engine.render(prepared, 17, 1.0)
    engine.render(prepared, 17, 0.5, max_side=40)
    again = engine.lut(prepared, 17)
    np.testing.assert_array_equal(first, again)
    assert student.sampled.count(17) == 1
    first[...] = 0  # lut() hands out a copy: the engine's cache is not touched
    assert engine.lut(prepared, 17).max() > 0.9
    engine.lut(prepared, 65)
    assert student.sampled.count(65) == 1


def test_detail_layer_per_grid_coarse_grids_get_their_own(engine, prepared, rendered_bracket):
    from lutfuse.core import detail

    stack = torch.from_numpy(np.stack(rendered_bracket)).permute(0, 3, 1, 2)
    levels = detail.split_levels(96, 128)

    def expected(g: int, layer_grid: int) -> np.ndarray:
        tone = apply_lut(prepared.base, engine.lut(prepared, g))
        ref = apply_lut(prepared.base, engine.lut(prepared, layer_grid))
        layer = detail.detail_layer(stack, torch.from_numpy(ref).permute(2, 0, 1), levels)
        return detail.add_detail(torch.from_numpy(tone), layer, 0.7).numpy()

    # G ≥ 9 shares the layer made through the G = 33 LUT; a coarse grid uses its own, preview first or not
    for g, layer_grid in ((17, 33), (129, 33), (4, 4), (2, 2), (3, 3), (4, 4)):
        engine.render(prepared, g, 1.0, max_side=50)
        np.testing.assert_allclose(engine.render(prepared, g, 0.7), expected(g, layer_grid), atol=2e-6, rtol=0)
    assert sorted(prepared._cache.layers) == [3, 4, 33]  # two coarse layers kept beside the reference


def test_preview_respects_max_side_and_matches_the_downsized_render(engine, prepared):
    full = engine.render(prepared, 33, 1.0)
    preview = engine.render(prepared, 33, 1.0, max_side=64)
    assert preview.shape == (48, 64, 3)
    assert preview.min() >= 0 and preview.max() <= 1
    # the preview is close to the full render downsized: the same look, only smaller
    small = cv2.resize(full, (64, 48), interpolation=cv2.INTER_AREA)
    assert np.abs(preview - small).mean() < 0.01
    np.testing.assert_array_equal(engine.render(prepared, 33, 1.0, max_side=64), preview)  # reused cache, same result
    assert engine.render(prepared, 33, 1.0, max_side=500).shape == full.shape              # never upscaled
    np.testing.assert_array_equal(engine.render(prepared, 33, 0.0, max_side=64),
                                  apply_lut(cv2.resize(prepared.base, (64, 48), interpolation=cv2.INTER_AREA),
                                            engine.lut(prepared, 33)))


def test_cached_preview_is_exactly_the_clipped_tone_plus_scaled_layer_on_a_real_bracket(shared_data):
    # the CPU preview adds the cached tone map and the small detail layer widened by cv2.merge: the same float32 bits as
    # numpy's clip(tone + d·layer), for d = 1 (no multiply) and any other d
    files = sorted((shared_data / "brackets" / "hdrps" / "Cades_Cove").iterdir())
    engine = Engine(device="cpu", kernels="auto")  # the CPU fast path, also when CI runs the suite with torch kernels
    prepared = engine.prepare(load_bracket([files[1], files[4], files[7]], align=False))
    c = engine._cache(prepared)
    for detail in (1.0, 0.7, 2.5):
        preview = engine.render(prepared, 33, detail, max_side=300)
        h, w = preview.shape[:2]
        assert max(h, w) == 300 and preview.dtype == np.float32 and preview.flags.c_contiguous
        (tone,) = [v for k, v in c.tones.items() if k[0] == 33]
        (layer,) = [v.numpy() for k, v in c.small_layers.items() if k[:2] == (h, w)]
        expected = np.clip(tone + (layer * np.float32(detail))[..., None], 0.0, 1.0)
        assert np.array_equal(preview.view(np.uint32), expected.view(np.uint32))
        assert float(np.abs(preview - tone).max()) > 0.01  # the layer does change the preview


@pytest.mark.parametrize("grid", [1, 0, 130, 2.5, -3, float("nan"), "33", None])
def test_bad_grid_size_is_a_clear_error(engine, prepared, grid):
    with pytest.raises(LUTFuseError, match="between 2 and 129"):
        engine.lut(prepared, grid)
    with pytest.raises(LUTFuseError, match="between 2 and 129"):
        engine.render(prepared, grid)


def test_bad_detail_preview_device_and_no_bracket_errors(engine, prepared):
    for detail in (-0.5, float("nan"), float("inf")):
        with pytest.raises(LUTFuseError, match="detail strength"):
            engine.render(prepared, 33, detail)
    with pytest.raises(LUTFuseError, match="preview size"):
        engine.render(prepared, 33, 1.0, max_side=0)
    with pytest.raises(LUTFuseError, match="prepared bracket"):
        engine.render(prepared.bracket)   # a Bracket, not prepared
    with pytest.raises(LUTFuseError, match="another engine"):
        Engine(device="cpu", student=CurveStudent()).render(prepared)
    with pytest.raises(LUTFuseError, match="another engine"):
        Engine(device="cpu", student=CurveStudent()).base(prepared)
    with pytest.raises(LUTFuseError, match="tpu"):
        Engine(device="tpu", student=CurveStudent())
    if not torch.cuda.is_available():
        with pytest.raises(LUTFuseError, match="no CUDA device"):
            Engine(device="cuda", student=CurveStudent())


def test_prepared_brackets_are_independent_and_read_only(engine, prepared, rendered_bracket):
    before = engine.render(prepared, 33, 1.0)
    preview = engine.render(prepared, 33, 1.0, max_side=64)
    smaller = [cv2.resize(im, (64, 40), interpolation=cv2.INTER_AREA) for im in rendered_bracket[:2]]
    other = engine.prepare(Bracket.from_images(smaller))
    assert engine.render(other, 33, 1.0).shape == (40, 64, 3)
    assert engine.render(other, 33, 1.0, max_side=32).shape == (20, 32, 3)
    np.testing.assert_array_equal(engine.render(other, 33, 0.0), apply_lut(other.base, engine.lut(other, 33)))
    # preparing another bracket changes nothing of the first: same pixels, same caches
    np.testing.assert_array_equal(engine.render(prepared, 33, 1.0), before)
    np.testing.assert_array_equal(engine.render(prepared, 33, 1.0, max_side=64), preview)
    assert prepared.shape == (96, 128) and other.shape == (40, 64)
    with pytest.raises(ValueError, match="read-only"):
        prepared.base[0, 0, 0] = 1.0
    with pytest.raises(AttributeError):
        prepared.base = other.base
    copy = engine.base(prepared)
    copy[...] = 0  # base() hands out a writable copy
    assert prepared.base.max() > 0


def test_renders_from_two_threads_equal_serial_renders(engine, prepared):
    expected = {g: engine.render(prepared, g, 1.0, max_side=m) for g, m in ((9, None), (33, 64), (65, None))}
    results: dict[int, np.ndarray] = {}

    def work(g: int, m: int | None) -> None:
        for _ in range(3):
            results[g] = engine.render(prepared, g, 1.0, max_side=m)

    threads = [threading.Thread(target=work, args=(g, m)) for g, m in ((9, None), (33, 64), (65, None))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for g, image in expected.items():
        np.testing.assert_array_equal(results[g], image)


@pytest.mark.parametrize("kind", STUDENTS)
def test_detail_raises_mef_ssim_on_a_real_bracket(kind, shared_data):
    scene = shared_data / "brackets" / "hdrps" / "Cades_Cove"
    files = sorted(scene.iterdir())
    bracket = load_bracket([files[1], files[4], files[7]], align=False)
    e = make_engine(kind)
    p = e.prepare(bracket)
    pure, fused = e.render(p, 33, 0.0), e.render(p, 33, 1.0)
    assert pure.shape == fused.shape == bracket.images.shape[1:]
    frames = list(bracket.images)
    assert mef_ssim(frames, fused) > mef_ssim(frames, pure) + 0.005
    preview = e.render(p, 33, 1.0, max_side=200)
    assert max(preview.shape[:2]) == 200


def test_bench_lists_every_stage(capsys, tmp_path):
    report = tmp_path / "bench.json"
    assert main(["bench", "--size", "96x64", "--repeat", "1", "--frames", "2", "--device", "cpu", "--kernels", "auto",
                 "--json", str(report)]) == 0
    out = capsys.readouterr().out
    stages = ("load", "align", "prepare", "open", "latent", "sample G=17", "sample G=33", "sample G=65",
              "sample G=129", "apply", "detail", "render", "preview", "preview uncached", "grid change G=33",
              "grid change G=129", "mertens")
    for stage in stages:
        assert f"\n{stage} " in out, stage
    targets = ("full-res render ≤ 1/15 Mertens", "preview ≤ 10 ms", "G=33 sampling ≤ 10 ms",
               "G=129 sampling ≤ 300 ms", "open ≤ 1.5 s")
    for target in targets:
        assert target in out
    assert out.count("PASS") + out.count("FAIL") == len(targets)
    data = json.loads(report.read_text())
    (run,) = data["runs"]
    assert run["device"] == "cpu" and run["width"] == 96 and run["kernels"] == "auto"
    assert [s["name"] for s in run["stages"]] == list(stages)
    assert run["stages"][-1]["per_mertens"] == 1.0 and all(s["ms"] > 0 for s in run["stages"])
    assert len(run["targets"]) == len(targets) and data["torch"] == torch.__version__
    # the device path on the CPU adds the on-device render and the host copy; an existing report is kept
    assert main(["bench", "--size", "96x64", "--repeat", "1", "--frames", "2", "--device", "cpu",
                 "--kernels", "torch", "--json", str(report)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["bench", "--size", "96x64", "--repeat", "1", "--frames", "2", "--device", "cpu",
                 "--kernels", "torch", "--precision", "float16", "--json", str(report), "--force"]) == 0
    out = capsys.readouterr().out
    assert "render dtype float16" in out and "\nrender on device " in out and "\nhost copy " in out
    # the reduced precision's error against float32, measured in the same run, within one 8-bit level
    error = float(re.search(r"max \|float16 − float32\| = ([0-9.]+)", out).group(1))
    assert 0 < error <= 1 / 255
    run = json.loads(report.read_text())["runs"][0]
    assert run["kernels"] == "torch" and "preview uncached" not in [s["name"] for s in run["stages"]]


def test_bench_hq_times_the_export_and_reports_memory(capsys):
    # the shipped HQ runs no network (core.hq.DEFAULT_NETWORKS): it needs only the LUT student
    assert main(["bench", "--hq", "--size", "96x64", "--repeat", "1", "--frames", "2", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "\nhq live " in out and "\nhq refine " in out and "\nhq " in out and "\nmertens " in out
    assert "phase 1" not in out
    peak = float(out.split("peak resident memory of the process (load + HQ): ")[1].split(" GB")[0])
    assert 0.05 < peak < 24


def test_bench_rejects_bad_arguments(capsys):
    assert main(["bench", "--size", "big"]) == 1
    assert "WIDTHxHEIGHT" in capsys.readouterr().err
    assert main(["bench", "--size", "64x64", "--frames", "12"]) == 1
    assert "2 to 9" in capsys.readouterr().err
    if not torch.backends.mps.is_available():
        assert main(["bench", "--size", "64x64", "--device", "mps"]) == 1
        assert "no Apple GPU" in capsys.readouterr().err
