"""Detail transfer: pyramid primitives (OpenCV and torch paths agree), band-pass fusion, detail layer, add/clip."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from lutfuse.core import detail
from lutfuse.core.classical import mertens
from lutfuse.core.metrics import mef_ssim


def planar(images: list[np.ndarray]) -> torch.Tensor:
    """List of H×W×3 frames -> N×3×H×W tensor."""
    return torch.from_numpy(np.stack(images).astype(np.float32)).permute(0, 3, 1, 2)


@pytest.mark.parametrize("shape", [(36, 52), (37, 53), (5, 9)])
def test_torch_pyramid_matches_opencv(shape):
    # the non-CPU path (torch convolutions) must give what the CPU path (OpenCV) gives, borders included
    x = torch.from_numpy(np.random.default_rng(1).random(shape, dtype=np.float32))
    down = detail.reduce(x)
    assert tuple(down.shape) == ((shape[0] + 1) // 2, (shape[1] + 1) // 2)
    torch.testing.assert_close(detail._reduce_torch(x), down, atol=1e-6, rtol=0)
    torch.testing.assert_close(detail._expand_torch(down, shape), detail.expand(down, shape), atol=1e-6, rtol=0)
    torch.testing.assert_close(detail._laplacian_torch(x), detail._laplacian(x), atol=1e-6, rtol=0)
    torch.testing.assert_close(detail._separable(x, detail._kernel(x), 1), detail._blur(x), atol=1e-6, rtol=0)


def test_lowpass_keeps_constants_and_smooth_ramps_removes_fine_texture():
    y, x = np.mgrid[0:64, 0:160].astype(np.float32)
    ramp = torch.from_numpy(0.2 + 0.5 * x / 159)
    checker = torch.from_numpy(((x + y) % 2).astype(np.float32) * 0.2)
    torch.testing.assert_close(detail.lowpass(torch.full((64, 160), 0.3), 4), torch.full((64, 160), 0.3))
    # a linear ramp is all low-pass away from the borders (which reflect-101 bends, further at deeper levels)
    assert (detail.lowpass(ramp, 4) - ramp)[:, 48:-48].abs().max() < 1e-5
    assert (detail.lowpass(checker, 1) - 0.1).abs().max() < 1e-3   # pixel-scale texture is all band-pass


def test_single_frame_fusion_band_pass_is_its_own_high_pass(rendered_bracket):
    # with one frame the normalised weights are 1 everywhere: the fused band-pass is y - lowpass(y)
    frame = planar(rendered_bracket[1:2])
    y = detail.luminance(frame[0])
    for levels in (1, 3, 5):
        torch.testing.assert_close(detail.fused_bandpass(frame, levels), y - detail.lowpass(y, levels),
                                   atol=2e-6, rtol=0)
    # and the detail layer of a frame against itself as the tone is zero
    assert detail.detail_layer(frame, frame[0], 4).abs().max() < 2e-6


def test_contrast_power_zero_is_mertens_laplacian_fusion(rendered_bracket):
    # power 0: the classic per-level fusion with Gaussian-pyramid Mertens weights, written out plainly here
    frames = planar(rendered_bracket)
    levels = 3
    ys = [detail.luminance(f) for f in frames]
    ws = [detail.mertens_weight(f.contiguous()) for f in frames]
    total = sum(ws)
    fused = []
    for y, w in zip(ys, ws):
        w = w / total
        bands = []
        for _ in range(levels):
            down = detail.reduce(y)
            bands.append(w * (y - detail.expand(down, tuple(y.shape))))
            y, w = down, detail.reduce(w)
        fused = bands if not fused else [a + b for a, b in zip(fused, bands)]
    expected = fused[-1]
    for band in reversed(fused[:-1]):
        expected = detail.expand(expected, tuple(band.shape)) + band
    torch.testing.assert_close(detail.fused_bandpass(frames, levels, contrast_power=0), expected, atol=2e-6, rtol=0)


def test_contrast_power_picks_the_frame_with_the_stronger_structure():
    # two frames, each with texture in one half and flat grey in the other: the fused band keeps both textures
    # (power > 0) where Mertens' weights, equal here, halve them
    rng = np.random.default_rng(3)
    tex = (rng.random((64, 128)) - 0.5).astype(np.float32) * 0.3
    a = np.full((64, 128), 0.5, np.float32)
    b = a.copy()
    a[:, :64] += tex[:, :64]
    b[:, 64:] += tex[:, 64:]
    frames = torch.from_numpy(np.stack([np.repeat(f[None], 3, 0) for f in (a, b)]))
    y_tex = torch.from_numpy(0.5 + tex)
    truth = (y_tex - detail.lowpass(y_tex, 2))[8:-8, 8:-8]
    plain = detail.fused_bandpass(frames, 2, contrast_power=0)[8:-8, 8:-8]
    strong = detail.fused_bandpass(frames, 2)[8:-8, 8:-8]
    assert float((strong - truth).abs().mean()) < 0.5 * float((plain - truth).abs().mean())
    assert torch.isfinite(strong).all()


def test_weights_favour_the_well_exposed_frame(rendered_bracket):
    frames = planar(rendered_bracket)
    w = torch.stack([detail.mertens_weight(f.contiguous()) for f in frames])
    # the sky (top right) is clipped white in the brightest frame, near black in none: darker frames win there
    assert w[0, :20, 100:].mean() > w[2, :20, 100:].mean()
    # the dark room (left) is best in the brightest frame
    assert w[2, 50:, :30].mean() > w[0, 50:, :30].mean()


def test_compress_is_a_bounded_odd_soft_knee():
    d = torch.linspace(-3, 3, 601)
    c = detail.compress(d, 0.25)
    assert c.abs().max() <= 0.25 and torch.allclose(c, -detail.compress(-d, 0.25))
    small = d.abs() < 0.02
    torch.testing.assert_close(c[small], d[small], atol=1e-5, rtol=0)
    assert torch.equal(detail.compress(d, float("inf")), d)


def test_add_detail_is_luminance_only_clipped_and_exact_at_zero():
    rng = np.random.default_rng(0)
    image = torch.from_numpy(rng.random((20, 30, 3), dtype=np.float32))
    layer = torch.from_numpy(rng.normal(0, 0.3, (20, 30)).astype(np.float32))
    assert torch.equal(detail.add_detail(image.clone(), layer, 0.0), image)
    out = detail.add_detail(image.clone(), layer, 1.0)
    assert out.min() >= 0 and out.max() <= 1
    delta = out - image
    inside = ((image + layer[..., None] > 0) & (image + layer[..., None] < 1)).all(dim=-1)
    # the same amount on R, G and B wherever nothing clipped: no colour fringes
    torch.testing.assert_close(delta[inside], layer[inside][:, None].expand(-1, 3), atol=1e-6, rtol=0)
    planar_out = detail.add_detail(image.permute(2, 0, 1).clone(), layer, 1.0)
    torch.testing.assert_close(planar_out, out.permute(2, 0, 1))


def test_detail_layer_bounded_near_clipped_highlight_edge():
    # a hard edge between a textured sun (clipped in two of three frames) and a dark wall: a strong band-pass
    # that the knee must bound, and an output that stays in [0, 1]
    rng = np.random.default_rng(0)
    radiance = np.empty((64, 64, 3), np.float32)
    radiance[:, :32] = (0.03, 0.02, 0.01)
    radiance[:, 32:] = (60.0, 50.0, 30.0)
    radiance *= np.exp(0.3 * rng.standard_normal((64, 64, 1))).astype(np.float32)
    frames = [np.clip(radiance * 2.0 ** ev, 0, 1) ** (1 / 2.2) for ev in (-6.0, -2.0, 2.0)]
    stack = planar(frames)
    tone = stack.mean(dim=0)
    knee = 0.1
    raw = detail.detail_layer(stack, tone, 4, knee=float("inf"))
    layer = detail.detail_layer(stack, tone, 4, knee=knee)
    assert raw.abs().max() > 1.5 * knee  # the edge really is strong
    assert layer.abs().max() <= knee
    for strength in (1.0, 3.0):
        out = detail.add_detail(tone.clone(), layer, strength)
        assert out.min() >= 0 and out.max() <= 1


def test_detail_transfer_brings_the_mean_close_to_exposure_fusion(rendered_bracket):
    stack = planar(rendered_bracket)
    base = stack.mean(dim=0)
    fused = detail.add_detail(base.clone(), detail.detail_layer(stack, base), 1.0)
    to_image = lambda t: t.permute(1, 2, 0).numpy()  # noqa: E731
    score_base = mef_ssim(rendered_bracket, to_image(base))
    score_fused = mef_ssim(rendered_bracket, to_image(fused))
    assert score_fused > score_base + 0.01
    # and its fine bands look like Mertens' own: closer to Mertens than the base is, in local contrast
    ref = cv2.Laplacian(cv2.cvtColor(mertens(rendered_bracket), cv2.COLOR_RGB2GRAY), cv2.CV_32F)
    lap = lambda t: cv2.Laplacian(cv2.cvtColor(to_image(t), cv2.COLOR_RGB2GRAY), cv2.CV_32F)  # noqa: E731
    assert np.abs(lap(fused) - ref).mean() < np.abs(lap(base) - ref).mean()


def test_detail_layer_rejects_zero_levels(rendered_bracket):
    stack = planar(rendered_bracket)
    with pytest.raises(ValueError, match="levels"):
        detail.detail_layer(stack, stack[0], 0)


def test_split_level_follows_image_size():
    base = detail.split_levels(384, detail.LEVELS_SIDE)
    assert base == detail.DEFAULT_LEVELS
    assert detail.split_levels(768, 2 * detail.LEVELS_SIDE) == base + 1
    assert detail.split_levels(2160, 3840) == base + 3
    assert detail.split_levels(8, 8, 20) == 3 and detail.split_levels(8, 8) == 1  # within the image, at least 1
