"""Two-phase HQ refinement: network shapes, tiled inference, progress/cancel, weights errors, shipped quality."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lutfuse.core import paths
from lutfuse.core.errors import BracketError, Cancelled, WeightsError
from lutfuse.core.classical import mertens_low_memory
from lutfuse.core.hq import PHASE1_FILE, PHASE2_FILE, HQFusion, raised_cosine, run_cancellable, tile_starts
from lutfuse.core.metrics import mef_ssim as mef_ssim_metric
from lutfuse.core.models.refine import AMNet, Phase1UNet
from lutfuse.core.train.refine_losses import mef_ssim, ms_ssim, refine_loss

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
    torch.save(Phase1UNet(width=8).state_dict(), folder / PHASE1_FILE)
    amnet = AMNet(width=8)
    torch.nn.init.normal_(amnet.out[-1].weight, std=0.05)  # a trained net's residual is not zero
    torch.save(amnet.state_dict(), folder / PHASE2_FILE)
    return folder


@pytest.fixture(scope="module")
def hq(random_weights: Path) -> HQFusion:
    """HQFusion on the shipped weights when they exist (the case that matters), else on random ones."""
    return HQFusion(None if SHIPPED else random_weights, device="cpu")


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
    whole = hq.fuse(frames, tile=512)
    tiled = hq.fuse(frames, tile=160)
    assert whole.shape == tiled.shape == (272, 360, 3)
    assert np.abs(whole - tiled).max() < 1 / 255
    mid_whole = hq.generate_middle(frames[0], frames[-1], tile=512)
    mid_tiled = hq.generate_middle(frames[0], frames[-1], tile=160)
    assert np.abs(mid_whole - mid_tiled).max() < 1 / 255


def test_progress_is_monotone_and_reaches_one(hq: HQFusion, rendered_bracket: list[np.ndarray]) -> None:
    seen: list[float] = []
    hq.fuse(np.stack(rendered_bracket), progress=seen.append, tile=64)
    assert len(seen) > 2 and seen[0] == 0.0 and seen[-1] == 1.0
    assert all(b >= a for a, b in zip(seen, seen[1:]))


def test_cancel_stops_inside_the_first_tile(hq: HQFusion, rendered_bracket: list[np.ndarray]) -> None:
    seen: list[float] = []
    polls = {"n": 0}

    def cancel() -> bool:
        # once the base fusion is done (progress 0.05 for a 3-frame bracket), a few convolutions into the first tile
        if seen and seen[-1] >= 0.05:
            polls["n"] += 1
        return polls["n"] > 3

    with pytest.raises(Cancelled):
        hq.fuse(np.stack(rendered_bracket), progress=seen.append, cancel=cancel, tile=64)
    # stopped before the first tile finished, and polling stopped with it
    assert seen[-1] == pytest.approx(0.05)
    assert polls["n"] == 4
    # the cancel hooks are gone: the next run is not affected
    assert hq.fuse(np.stack(rendered_bracket), tile=64).shape == rendered_bracket[0].shape


def test_cancel_does_not_wait_for_the_base_fusion() -> None:
    import threading
    import time

    release = threading.Event()

    def slow() -> np.ndarray:  # stands for OpenCV's uninterruptible fusion of a 24 MP bracket
        release.wait(10.0)
        return np.zeros((2, 2, 3), np.float32)

    asked = time.perf_counter() + 0.2
    t0 = time.perf_counter()
    with pytest.raises(Cancelled):
        run_cancellable(slow, lambda: time.perf_counter() > asked)
    assert time.perf_counter() - t0 < 1.0
    release.set()
    assert run_cancellable(lambda: np.ones(3), lambda: False).tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ZeroDivisionError):  # the worker's error reaches the caller
        run_cancellable(lambda: 1 / 0, lambda: False)


def test_a_real_middle_frame_replaces_the_generated_one(hq: HQFusion, rendered_bracket: list[np.ndarray]) -> None:
    # default: a 3-frame bracket gives phase 2 its real middle and the fusion of all its frames as the base;
    # 2 frames (or middle="generated") get phase 1's middle and the fusion of (under, generated, over)
    under, middle, over = rendered_bracket
    three = hq.fuse(np.stack(rendered_bracket))
    two = hq.fuse(np.stack([under, over]))
    assert not np.array_equal(three, two)
    generated = hq.generate_middle(under, over)

    def direct(mid: np.ndarray) -> np.ndarray:
        base = mertens_low_memory([under, mid, over])
        with torch.no_grad():
            t = [torch.from_numpy(f.transpose(2, 0, 1).copy())[None] for f in (under, mid, over, base)]
            return hq.phase2(*t)[0].permute(1, 2, 0).numpy()

    np.testing.assert_allclose(three, direct(middle), atol=1e-5)
    np.testing.assert_allclose(two, direct(generated), atol=1e-5)
    hq.middle = "generated"
    try:
        np.testing.assert_array_equal(hq.fuse(np.stack(rendered_bracket)), two)
    finally:
        hq.middle = "real"


def test_one_frame_is_refused(hq: HQFusion, rendered_bracket: list[np.ndarray]) -> None:
    with pytest.raises(BracketError):
        hq.fuse(np.stack(rendered_bracket[:1]))


def test_missing_or_wrong_weights(tmp_path: Path, random_weights: Path) -> None:
    with pytest.raises(WeightsError, match=PHASE1_FILE):
        HQFusion(tmp_path)
    (tmp_path / PHASE1_FILE).write_bytes((random_weights / PHASE1_FILE).read_bytes())
    with pytest.raises(WeightsError, match=PHASE2_FILE):
        HQFusion(tmp_path)
    (tmp_path / PHASE2_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="not a valid HQ phase 2 weights file"):
        HQFusion(tmp_path)
    # phase-1 weights where phase 2 belongs
    (tmp_path / PHASE2_FILE).write_bytes((random_weights / PHASE1_FILE).read_bytes())
    with pytest.raises(WeightsError, match="phase-2"):
        HQFusion(tmp_path)


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


@pytest.mark.shared_data
@pytest.mark.skipif(not SHIPPED, reason="no shipped HQ weights yet")
def test_shipped_weights_beat_mertens_on_a_validation_bracket(shared_data: Path, hq: HQFusion) -> None:
    import cv2

    from lutfuse.core.classical import mertens
    from lutfuse.core.train.data import load_split

    scene = next(k for k in load_split()["val"] if k.startswith("hdrps/"))
    files = sorted((shared_data / "brackets" / scene).glob("*.png"))
    frames = np.stack([cv2.imread(str(f))[..., ::-1].astype(np.float32) / 255 for f in files])
    reference = mertens(frames)  # the dense-stack reference: exposure fusion of all 9 frames
    under, middle, over = frames[1], frames[4], frames[7]

    def psnr(a: np.ndarray, b: np.ndarray) -> float:
        return float(10 * np.log10(1 / np.mean((a.astype(np.float64) - b) ** 2)))

    fused = hq.fuse(np.stack([under, over]))
    assert psnr(fused, reference) > psnr(mertens(np.stack([under, over])), reference) + 1.0
    generated = hq.generate_middle(under, over)
    assert psnr(generated, middle) > psnr((under + over) / 2, middle)
