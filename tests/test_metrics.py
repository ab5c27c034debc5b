"""MEF-SSIM against the published reference values and a per-window loop transcription of mef_ssim.m; PSNR and
SSIM against scipy-filtered references and known properties."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy import ndimage

from lutfuse.core import metrics
from lutfuse.core.errors import LUTFuseError
from lutfuse.core.metrics import mef_ssim, psnr, ssim

_EPS = np.finfo(np.float64).eps


def _reference_cases(root: Path) -> list[dict]:
    """The cases of mefssim_reference.json."""
    return json.loads((root / "mefssim_reference.json").read_text())["cases"]


def _read_rgb8(path: Path) -> np.ndarray:
    """8-bit RGB as the reference was computed: OpenCV reads BGR."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, path
    return np.ascontiguousarray(image[..., ::-1])


@pytest.mark.parametrize("index", range(6))
def test_mef_ssim_reproduces_the_published_values(shared_data: Path, index: int) -> None:
    case = _reference_cases(shared_data)[index]
    frames = [_read_rgb8(shared_data / case["scene"] / name) for name in case["frames"]]
    if case["fused"] == "frame0":
        fused = frames[0]
    else:
        assert case["fused"] == "mean_floor"
        fused = (sum(f.astype(np.int32) for f in frames) // len(frames)).astype(np.uint8)
    assert mef_ssim(frames, fused) == pytest.approx(case["mef_ssim"], abs=1e-4)


def _loop_single_scale(sources: np.ndarray, fused: np.ndarray) -> float:
    """mef_ssim.m's per-window loops transcribed literally (slow): sources K×H×W, fused H×W on the 8-bit scale."""
    k, h, w = sources.shape
    bd, n = metrics.WINDOW // 2, metrics.WINDOW**2
    g = metrics._gaussian_1d()
    window = np.outer(g, g).ravel()
    c = (metrics.K * 255) ** 2
    q = np.zeros((h - 2 * bd, w - 2 * bd))
    for i in range(bd, h - bd):
        for j in range(bd, w - bd):
            vecs = sources[:, i - bd:i + bd + 1, j - bd:j + bd + 1].reshape(k, n)
            mu = vecs.mean(axis=1)
            strength = np.linalg.norm(vecs - mu[:, None], axis=1)
            ed = strength + 0.001
            total = vecs.sum(axis=0)
            r = (np.linalg.norm(total - total.mean()) + _EPS) / (strength.sum() + _EPS)
            r = 1 - _EPS if r > 1 else r
            p = min(np.tan(np.pi / 2 * r), 10.0)
            wk = (ed / metrics.WINDOW) ** p + _EPS
            wk /= wk.sum()
            block = sum(wk[m] * (vecs[m] - mu[m]) / ed[m] for m in range(k))
            if np.linalg.norm(block) > 0:
                block = block / np.linalg.norm(block) * ed.max()
            f = fused[i - bd:i + bd + 1, j - bd:j + bd + 1].ravel()
            mu1, mu2 = (window * block).sum(), (window * f).sum()
            s1 = (window * (block - mu1) ** 2).sum()
            s2 = (window * (f - mu2) ** 2).sum()
            s12 = (window * (block - mu1) * (f - mu2)).sum()
            q[i - bd, j - bd] = (2 * s12 + c) / (s1 + s2 + c)
    return float(q.mean())


def test_vectorised_scale_equals_the_window_loops(rendered_bracket: list[np.ndarray]) -> None:
    sources = np.stack([metrics.to_grey8(f) for f in rendered_bracket])[:, :48, :64]
    mean_fused = np.floor(sources.mean(axis=0))
    for fused in (sources[0], sources[2], mean_fused):
        assert metrics._single_scale(sources, fused) == pytest.approx(_loop_single_scale(sources, fused), abs=1e-10)


def test_downsample_is_a_2x2_mean_with_symmetric_border() -> None:
    x = np.arange(15, dtype=np.float64).reshape(3, 5)
    # rows (0,1) and (2,2), columns pairs (0,1), (2,3), (4,4): the symmetric pad repeats the last row/column
    expected = np.array([[(0 + 1 + 5 + 6) / 4, (2 + 3 + 7 + 8) / 4, (4 + 4 + 9 + 9) / 4],
                         [(10 + 11) / 2, (12 + 13) / 2, 14.0]])
    np.testing.assert_allclose(metrics._downsample(x), expected)


def test_grey_matches_rgb2gray_rounding() -> None:
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 200, 30]]], np.uint8)
    # rgb2gray on uint8: round(0.298936 R + 0.587043 G + 0.114021 B)
    np.testing.assert_array_equal(metrics.to_grey8(rgb), [[76, 150, 29, 124]])


def test_float_frames_are_quantised_to_8_bit_first(rendered_bracket: list[np.ndarray]) -> None:
    as8 = [np.round(f * 255).astype(np.uint8) for f in rendered_bracket]
    fused = np.mean(rendered_bracket, axis=0)
    assert mef_ssim(rendered_bracket, fused) == mef_ssim(as8, np.round(fused * 255).astype(np.uint8))


def test_mef_ssim_ranks_fusions_and_is_near_one_for_a_single_source(rendered_bracket: list[np.ndarray]) -> None:
    middle = rendered_bracket[1]
    assert mef_ssim([middle], middle) == pytest.approx(1.0, abs=1e-3)
    score_mean = mef_ssim(rendered_bracket, np.mean(rendered_bracket, axis=0))
    score_dark = mef_ssim(rendered_bracket, rendered_bracket[0])
    assert score_dark < score_mean <= 1.0


def test_mef_ssim_rejects_bad_input(rendered_bracket: list[np.ndarray]) -> None:
    with pytest.raises(LUTFuseError, match="differ"):
        mef_ssim(rendered_bracket, rendered_bracket[0][:90])
    with pytest.raises(LUTFuseError, match="too small"):
        mef_ssim([f[:40, :40] for f in rendered_bracket], rendered_bracket[0][:40, :40])
    with pytest.raises(LUTFuseError, match="RGB"):
        mef_ssim(rendered_bracket, rendered_bracket[0][..., 0])
    with pytest.raises(LUTFuseError, match="no source"):
        mef_ssim([], rendered_bracket[0])


def test_psnr_properties() -> None:
    rng = np.random.default_rng(1)
    clean = rng.uniform(0.2, 0.8, (256, 256, 3)).astype(np.float32)
    assert psnr(clean, clean) == float("inf")
    sigma = 0.01
    noisy = clean + rng.normal(0, sigma, clean.shape).astype(np.float32)
    assert psnr(clean, noisy) == pytest.approx(20 * np.log10(1 / sigma), abs=0.05)
    assert psnr(np.zeros((4, 4, 3)), np.full((4, 4, 3), 0.1)) == pytest.approx(20.0)
    with pytest.raises(LUTFuseError, match="differ"):
        psnr(clean, clean[:10])


def _scipy_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """skimage's structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    data_range=1) written with scipy's Gaussian filter: the same 11-tap window, border windows cropped."""
    coef = metrics.MATLAB_GREY
    x = sum(c * a[..., i].astype(np.float64) for i, c in enumerate(coef))
    y = sum(c * b[..., i].astype(np.float64) for i, c in enumerate(coef))

    def blur(v: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(v, sigma=1.5, truncate=3.5)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s[5:-5, 5:-5].mean())


def test_ssim_equals_the_scipy_reference_and_properties(rendered_bracket: list[np.ndarray]) -> None:
    a, b = rendered_bracket[1], rendered_bracket[2]
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    assert ssim(a, b) == pytest.approx(_scipy_ssim(a, b), abs=1e-9)
    assert ssim(a, b) == pytest.approx(ssim(b, a), abs=1e-12)
    rng = np.random.default_rng(2)
    scores = [ssim(a, a + rng.normal(0, s, a.shape)) for s in (0.01, 0.05, 0.2)]
    assert 1.0 > scores[0] > scores[1] > scores[2]
    with pytest.raises(LUTFuseError, match="differ"):
        ssim(a, b[:50])


def test_fusion_scores_are_the_three_metrics_of_the_clipped_fusion(rendered_bracket: list[np.ndarray]) -> None:
    from lutfuse.core.metrics import fusion_scores, mef_ssim, psnr, ssim

    fused = np.mean(rendered_bracket, axis=0).astype(np.float32) * 1.3   # some values above 1
    clipped = np.clip(fused, 0, 1)
    reference = rendered_bracket[1]
    assert fusion_scores(fused, rendered_bracket, reference) == {
        "psnr": psnr(clipped, reference), "ssim": ssim(clipped, reference),
        "mef_ssim": mef_ssim(rendered_bracket, clipped)}
