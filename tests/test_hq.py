"""Two-phase HQ refinement: network shapes, tiled inference, progress/cancel, weights errors, shipped quality."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lutfuse.core import paths
from lutfuse.core.errors import BracketError, Cancelled, WeightsError
from lutfuse.core.hq import PHASE1_FILE, PHASE2_FILE, HQFusion, raised_cosine, tile_starts
from lutfuse.core.metrics import mef_ssim as mef_ssim_metric
from lutfuse.core.models.refine import AMNet, Phase1UNet
from lutfuse.core.train.refine_losses import mef_ssim, ms_ssim, refine_loss
from lutfuse.core.weights import config_path, save_weights

SHIPPED = (paths.WEIGHTS / PHASE1_FILE).is_file() and (paths.WEIGHTS / PHASE2_FILE).is_file()


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> None:
    """The test machine is shared: one torch thread."""
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights folder with small randomly initialised networks (seeded)."""
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    save_weights(Phase1UNet(width=8), folder / PHASE1_FILE)   # the architecture is saved beside the weights
    amnet = AMNet(width=8)
    torch.nn.init.normal_(amnet.out[-1].weight, std=0.05)  # a trained net's residual is not zero
    save_weights(amnet, folder / PHASE2_FILE)
    return folder


@pytest.fixture(scope="module")
def hq(random_weights: Path) -> HQFusion:
    """The thesis variant (two-phase networks) on the shipped weights when they exist, else on random ones."""
    return HQFusion(None if SHIPPED else random_weights, device="cpu", networks=True)


def test_model_shapes_and_range() -> None:
    torch.manual_seed(0)
    under, over = torch.rand(2, 3, 40, 56), torch.rand(2, 3, 40, 56)  # sides not multiples of 16
    middle = Phase1UNet(width=8)(under, over)
    assert middle.shape == (2, 3, 40, 56)
    base = (under + middle + over) / 3
    net = AMNet(width=8)
    # an untrained AMNet returns its base exactly: the residual head starts at zero
    torch.testing.assert_close(net(under, middle, over, base), base)
    torch.nn.init.normal_(net.out[-1].weight, std=0.5)
    fused = net(under, middle, over, base)
    assert fused.shape == (2, 3, 40, 56) and not torch.equal(fused, base)
    for out in (middle.detach(), fused.detach()):
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def tile_weight_sum(size: int, tile: int, overlap: int) -> np.ndarray:
    """Sum over the tiles of one axis of their blending weights, per pixel."""
    total = np.zeros(size, np.float32)
    starts = tile_starts(size, tile, overlap)
    assert all(s % 16 == 0 for s in starts) and starts[0] == 0 and starts[-1] + tile == size
    for s in starts:
        total[s:s + tile] += raised_cosine(tile, s > 0, s + tile < size, overlap)
    return total


def test_tile_weights_partition_unity_and_cover_everything() -> None:
    # evenly spaced tiles: complementary ramps sum to exactly one
    np.testing.assert_allclose(tile_weight_sum(384, 128, 64), 1.0, atol=1e-6)
    # a last tile shifted to fit overlaps more; every pixel still has a full-context tile (normalised later)
    assert tile_weight_sum(400, 128, 64).min() >= 0.5


def test_tiled_matches_untiled(hq: HQFusion, rendered_bracket: list[np.ndarray]) -> None:
    import cv2

    # 272×360: several 160-px tiles, and small enough to run in one piece
    frames = np.stack([cv2.resize(f, (360, 272), interpolation=cv2.INTER_LINEAR) for f in rendered_bracket])
    mid_whole = hq.generate_middle(frames[0], frames[-1], tile=512)
    mid_tiled = hq.generate_middle(frames[0], frames[-1], tile=160)
    assert np.abs(mid_whole - mid_tiled).max() < 1 / 255


def test_one_frame_is_refused(hq: HQFusion, rendered_bracket: list[np.ndarray]) -> None:
    with pytest.raises(BracketError):
        hq.fuse(np.stack(rendered_bracket[:1]))


def test_missing_or_wrong_weights(tmp_path: Path, random_weights: Path) -> None:
    # the shipped HQ path runs no network: it reads no weights, and asking it for phase 1 says so
    plain = HQFusion(tmp_path, device="cpu")
    assert plain.phase1 is None and plain.phase2 is None
    with pytest.raises(WeightsError, match="without networks"):
        plain.generate_middle(np.zeros((16, 16, 3), np.float32), np.ones((16, 16, 3), np.float32))
    with pytest.raises(WeightsError, match=PHASE1_FILE):
        HQFusion(tmp_path, networks=True)
    for name in (PHASE1_FILE, config_path(PHASE1_FILE).name):   # the weights and their architecture
        (tmp_path / name).write_bytes((random_weights / name).read_bytes())
    with pytest.raises(WeightsError, match=PHASE2_FILE):
        HQFusion(tmp_path, networks=True)
    (tmp_path / PHASE2_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="not a valid HQ phase 2 weights file"):
        HQFusion(tmp_path, networks=True)
    # phase-1 weights where phase 2 belongs: refused by their architecture file, or without it by their shapes
    (tmp_path / PHASE2_FILE).write_bytes((random_weights / PHASE1_FILE).read_bytes())
    with pytest.raises(WeightsError, match="weights do not fit the HQ phase 2"):
        HQFusion(tmp_path, networks=True)
    config_path(tmp_path / PHASE2_FILE).write_bytes(config_path(random_weights / PHASE1_FILE).read_bytes())
    with pytest.raises(WeightsError, match="describes a 'Phase1UNet' network, not the HQ phase 2"):
        HQFusion(tmp_path, networks=True)


def test_ms_ssim_and_loss_tell_equal_from_different() -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 3, 64, 64)
    y = (x + 0.2 * torch.randn_like(x)).clamp(0, 1)
    assert float(ms_ssim(x, x)) == pytest.approx(1.0, abs=1e-5)
    assert float(ms_ssim(x, y)) < 0.9
    assert float(refine_loss(x, x)[0]) == pytest.approx(0.0, abs=1e-5)
    assert float(refine_loss(x, y)[0]) > 0.05


def test_mef_ssim_loss_is_the_metric(rendered_bracket: list[np.ndarray]) -> None:
    from lutfuse.core.classical import mertens

    frames = np.stack(rendered_bracket)
    t = torch.from_numpy(frames.transpose(0, 3, 1, 2).copy())
    for fused in (mertens(frames), frames.mean(axis=0), frames[1]):
        value = mef_ssim(t[None], torch.from_numpy(fused.transpose(2, 0, 1).copy())[None])
        # the metric quantises grey to 8 bits, the loss does not
        assert float(value[0]) == pytest.approx(mef_ssim_metric(list(frames), fused), abs=2e-3)
    # differentiable in the fused image, and a blurred fusion scores lower than a sharp one
    fused = torch.from_numpy(mertens(frames).transpose(2, 0, 1).copy())[None].requires_grad_(True)
    value = mef_ssim(t[None], fused)
    value.sum().backward()
    assert float(fused.grad.abs().sum()) > 0
    blurred = torch.nn.functional.avg_pool2d(fused.detach(), 5, stride=1, padding=2)
    assert float(mef_ssim(t[None], blurred)[0]) < float(value.detach()[0]) - 0.01


# ---------------------------------------------------------------- the live-based HQ path

SMALL_SIDE = 256   # real brackets are scored at this longest side: seconds per fuse on one thread


@pytest.fixture(scope="module")
def real_bracket(shared_data: Path) -> np.ndarray:
    """A held-out 3-frame real bracket (hdrps validation scene: frames 1, 4, 7 of 9) at SMALL_SIDE px."""
    import cv2

    from lutfuse.core.train.data import load_split

    scene = next(k for k in load_split()["val"] if k.startswith("hdrps/"))
    files = sorted((shared_data / "brackets" / scene).glob("*.png"))
    frames = []
    for f in (files[1], files[4], files[7]):
        im = cv2.imread(str(f))[..., ::-1].astype(np.float32) / 255
        scale = SMALL_SIDE / max(im.shape[:2])
        frames.append(cv2.resize(im, (round(im.shape[1] * scale), round(im.shape[0] * scale)),
                                 interpolation=cv2.INTER_AREA))
    return np.stack(frames)


@pytest.fixture(scope="module")
def engine(real_bracket: np.ndarray):
    """The engine (shipped student), as the editor's."""
    from lutfuse.core.fusion import Engine

    return Engine(device="cpu")


@pytest.fixture(scope="module")
def prepared(engine, real_bracket: np.ndarray):
    """The real bracket prepared by `engine`, as the editor's is."""
    from lutfuse.core.bracket import Bracket

    return engine.prepare(Bracket.from_images(real_bracket))


@pytest.fixture(scope="module")
def live_hq(random_weights: Path) -> HQFusion:
    """The HQ path with the shipped weights (random ones when none are shipped) and few steps."""
    return HQFusion(None if SHIPPED else random_weights, device="cpu", steps=6)


@pytest.mark.shared_data
def test_hq_follows_the_editor_settings(live_hq: HQFusion, engine, prepared, real_bracket: np.ndarray) -> None:
    from lutfuse.core.consistency import median_delta_e

    settings = [(33, 1.0), (33, 0.0), (3, 1.0)]
    lives = {s: engine.render(prepared, *s) for s in settings}
    hqs = {s: live_hq.fuse(real_bracket, engine=engine, prepared=prepared, grid=s[0], detail=s[1]) for s in settings}
    for s in settings:
        assert median_delta_e(lives[s], hqs[s]) <= 2.0
    # changing a setting changes HQ the way it changes the live view: the two differences point the same way
    for o in settings[1:]:
        d_hq, d_live = (hqs[o] - hqs[settings[0]]).ravel(), (lives[o] - lives[settings[0]]).ravel()
        cosine = float(d_hq @ d_live / (np.linalg.norm(d_hq) * np.linalg.norm(d_live)))
        assert cosine > 0.3, (o, cosine)
    # detail 0 removes the detail layer in HQ as in the live view: less fine local contrast in both
    def local_contrast(im: np.ndarray) -> float:
        import cv2
        y = im.mean(axis=2)
        return float(np.abs(y - cv2.GaussianBlur(y, (0, 0), 2.0)).mean())

    assert local_contrast(lives[(33, 0.0)]) < local_contrast(lives[(33, 1.0)])
    assert local_contrast(hqs[(33, 0.0)]) < local_contrast(hqs[(33, 1.0)])


@pytest.mark.shared_data
def test_hq_is_the_live_picture_done_better(live_hq: HQFusion, engine, prepared, real_bracket: np.ndarray) -> None:
    from lutfuse.core.consistency import chroma, median_delta_e

    live = engine.render(prepared, 33, 1.0)
    out = live_hq.fuse(real_bracket, engine=engine, prepared=prepared)
    assert out.shape == live.shape and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert median_delta_e(live, out) <= 2.0            # the same picture (issue 15: median CIEDE2000 ≤ 2)
    assert chroma(out) >= 0.97 * chroma(live)           # no washed-out colour
    assert not np.array_equal(out, live)
    assert mef_ssim_metric(list(real_bracket), out) > mef_ssim_metric(list(real_bracket), live)
    # renders made beforehand (the GUI makes them under its engine lock) give the same picture
    from lutfuse.core.hq import live_renders

    np.testing.assert_array_equal(live_hq.fuse(real_bracket, renders=live_renders(engine, prepared, 33, 1.0)), out)


@pytest.mark.shared_data
def test_refinement_raises_mef_ssim_against_the_frames(engine, prepared, real_bracket: np.ndarray,
                                                       random_weights: Path) -> None:
    weights = None if SHIPPED else random_weights
    scores = {}
    for steps in (0, 8):
        out = HQFusion(weights, device="cpu", steps=steps, networks=False).fuse(real_bracket, engine=engine,
                                                                              prepared=prepared)
        scores[steps] = mef_ssim_metric(list(real_bracket), out)
    # without a network and without steps the correction is zero: HQ is the live view exactly
    plain = HQFusion(weights, device="cpu", steps=0, networks=False)
    np.testing.assert_allclose(plain.fuse(real_bracket, engine=engine, prepared=prepared),
                               engine.render(prepared, 33, 1.0), atol=1e-6)
    assert scores[8] > scores[0] + 0.0005, scores


@pytest.mark.shared_data
def test_progress_and_cancel(live_hq: HQFusion, engine, prepared, real_bracket: np.ndarray) -> None:
    seen: list[float] = []
    live_hq.fuse(real_bracket, progress=seen.append, engine=engine, prepared=prepared)
    assert len(seen) > live_hq.steps and seen[0] == 0.0 and seen[-1] == 1.0
    assert all(b >= a for a, b in zip(seen, seen[1:]))
    # cancel once the refinement has started: stops within a step
    seen.clear()
    with pytest.raises(Cancelled):
        live_hq.fuse(real_bracket, progress=seen.append, cancel=lambda: len(seen) > 5, engine=engine,
                     prepared=prepared)
    assert seen[-1] < 1.0 and len(seen) <= 7


@pytest.mark.shared_data
def test_the_prepared_bracket_must_be_these_frames(live_hq: HQFusion, engine, prepared,
                                                    real_bracket: np.ndarray) -> None:
    with pytest.raises(BracketError, match="prepared bracket"):
        live_hq.fuse(real_bracket[:, :100, :100], engine=engine, prepared=prepared)


def test_full_resolution_application_by_strips_equals_whole() -> None:
    from lutfuse.core.hq import apply_correction

    rng = np.random.default_rng(0)
    live = rng.random((301, 207, 3), dtype=np.float32)
    tone = np.clip(live + rng.normal(0, 0.05, live.shape).astype(np.float32), 0, 1)
    coeffs = rng.normal(0, 0.2, (19, 13, 4)).astype(np.float32)
    whole = apply_correction(live.copy(), tone, coeffs, strip=None)
    for strip in (1, 37, 256):
        np.testing.assert_allclose(apply_correction(live.copy(), tone, coeffs, strip=strip), whole, atol=1e-6)
    # the strips upsample exactly as one cv2.resize of the coefficient maps
    import cv2

    from lutfuse.core.hq import _upsample_rows
    full = cv2.resize(coeffs, (207, 301), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(_upsample_rows(coeffs, 301, 207, 40, 90), full[40:90], atol=1e-5)
    # zero coefficients leave the live render as it is
    np.testing.assert_array_equal(apply_correction(live.copy(), tone, np.zeros_like(coeffs)), live)


def test_guided_filter_keeps_edges_and_constants() -> None:
    from lutfuse.core.guided import guided_filter

    guide = torch.zeros(1, 1, 40, 40)
    guide[..., 20:] = 1.0                       # a vertical step edge
    const = torch.full((1, 2, 40, 40), 0.3)
    torch.testing.assert_close(guided_filter(guide, const, 4, 1e-3), const)
    # a gain that differs on the two sides stays a step at the guide's edge (a box blur would ramp over 9 px)
    src = torch.where(guide > 0.5, 0.2, -0.2).expand(1, 1, 40, 40)
    out = guided_filter(guide, src, 4, 1e-3)
    assert float(out[..., 19].mean()) < -0.19 and float(out[..., 20].mean()) > 0.19


def test_consistency_measures() -> None:
    from lutfuse.core.consistency import ciede2000, edge_overshoot, median_delta_e

    # Sharma, Wu and Dalal 2005, test pairs 1, 2, 7 and 24
    a = np.array([[50, 2.6772, -79.7751], [50, -1.3802, -84.2814], [50, 0.0, 0.0], [60.2574, -34.0099, 36.2677]])
    b = np.array([[50, 0, -82.7485], [50, 0, -82.7485], [50, -1.0, 2.0], [60.4626, -34.1751, 39.4387]])
    np.testing.assert_allclose(ciede2000(a, b), [2.0425, 1.0000, 2.3669, 1.2644], atol=1e-4)
    img = np.random.default_rng(1).random((32, 32, 3)).astype(np.float32)
    assert median_delta_e(img, img) == 0.0
    # a step edge: sources at two exposures, a fusion without and with a halo (bright rim beside the edge)
    x = np.arange(64, dtype=np.float32)
    step = np.where(x < 32, 0.2, 0.6)[None, :].repeat(64, 0)
    frames = np.stack([np.repeat(step[..., None], 3, 2) * s for s in (0.8, 1.4)]).clip(0, 1)
    clean = np.repeat(step[..., None], 3, 2)
    rim = (np.where((x >= 32) & (x < 36), 0.15, 0.0)[None, :, None]
           - np.where((x >= 28) & (x < 32), 0.1, 0.0)[None, :, None])
    haloed = (clean + rim).clip(0, 1)
    assert abs(edge_overshoot(clean, frames)["excess"]) < 0.01
    assert edge_overshoot(haloed, frames)["excess"] > 0.2


@pytest.mark.shared_data
def test_live_renders_are_the_engines_renders_from_one_lookup(engine, prepared) -> None:
    from lutfuse.core.hq import live_renders

    for grid, detail in ((33, 1.0), (33, 0.6), (9, 1.5), (33, 0.0)):
        live, tone = live_renders(engine, prepared, grid, detail)
        np.testing.assert_array_equal(live, engine.render(prepared, grid, detail))
        np.testing.assert_array_equal(tone, engine.render(prepared, grid, 0.0))
        assert live.flags.writeable and not np.shares_memory(live, tone)   # HQ corrects `live` in place
    layer = engine.detail_layer(prepared, 33)
    assert layer.shape == prepared.shape and layer.dtype == np.float32 and not layer.flags.writeable


def test_adam_is_torchs_adam() -> None:
    from lutfuse.core.hq import Adam

    torch.manual_seed(0)
    target = torch.randn(1, 2, 5, 7)
    ours = torch.randn(1, 2, 5, 7, requires_grad=True)
    theirs = ours.detach().clone().requires_grad_(True)
    opt, adam = torch.optim.Adam([theirs], lr=0.01), Adam(ours, 0.01)
    for _ in range(12):
        for p in (ours, theirs):
            p.grad = None
            ((p - target) ** 4).sum().backward()
        opt.step()
        with torch.no_grad():
            adam.step()
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-7)
    assert not torch.equal(ours, target)


@pytest.fixture(scope="module")
def small_refinement(engine, prepared, real_bracket: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                         torch.Tensor]:
    """(frames, live, tone, zero correction) of the real bracket at 96×64: the refinement's inputs, small and fast."""
    import cv2

    from lutfuse.core.hq import grid_shape

    live, tone = (cv2.resize(engine.render(prepared, 33, d), (96, 64), interpolation=cv2.INTER_AREA)
                  for d in (1.0, 0.0))
    frames = np.stack([cv2.resize(f, (96, 64), interpolation=cv2.INTER_AREA) for f in real_bracket])
    init = torch.zeros(1, 2, *grid_shape(64, 96))
    return frames, live, tone, init


@pytest.mark.shared_data
def test_early_stop_ends_when_the_loss_stops_falling(small_refinement) -> None:
    from lutfuse.core.hq import refine_correction

    frames, live, tone, init = small_refinement
    ticks: dict[int, list[float]] = {}
    for patience in (0, 1):
        ticks[patience] = []
        refine_correction(frames, live, tone, init, steps=60, lr=0.003, radius=2, patience=patience,
                          progress=ticks[patience].append)
    assert len(ticks[0]) == 60
    assert 0 < len(ticks[1]) < 60   # a tiny step size: the loss stops falling by 1e-4 a step long before 60


@pytest.mark.shared_data
def test_delta_e_bound_keeps_the_live_look(small_refinement) -> None:
    from lutfuse.core.consistency import median_delta_e
    from lutfuse.core.hq import Limits, apply_correction, refine_correction

    frames, live, tone, init = small_refinement
    found = {}
    for bound in (float("inf"), 0.3):
        limits = Limits(delta_e=bound)
        coeffs = refine_correction(frames, live, tone, init, steps=60, lr=0.003, radius=2, limits=limits)
        found[bound] = median_delta_e(live, apply_correction(live.copy(), tone, coeffs, limits=limits))
    # unbounded, the refinement goes further from the live view than the bound; bounded, it stops short of it
    assert found[float("inf")] > 0.35 and 0.1 < found[0.3] <= 0.3 + 1e-3, found
