"""Shared fixtures: the real data beside the checkout (skipped when absent) and small rendered brackets."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

# GUI tests run without a display; set before any Qt import.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config, items) -> None:
    """Tests marked `cuda` need a CUDA device: skipped where torch sees none (CI), run by bench/gpu.sh."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


def shared_data_root() -> Path | None:
    """../shared/data beside the checkout, or $LUTFUSE_DATA; None when neither exists."""
    root = Path(os.environ.get("LUTFUSE_DATA", REPO.parent / "shared" / "data"))
    return root if (root / "brackets").is_dir() else None


def shared_cases_root() -> Path | None:
    """../shared/cases beside the checkout (or beside $LUTFUSE_DATA, or $LUTFUSE_CASES); None when absent."""
    default = (Path(os.environ["LUTFUSE_DATA"]).parent if "LUTFUSE_DATA" in os.environ else REPO.parent / "shared")
    root = Path(os.environ.get("LUTFUSE_CASES", default / "cases"))
    return root if (root / "README.md").is_file() else None


@pytest.fixture(scope="session")
def shared_cases() -> Path:
    """Path of the small real-world problem inputs (../shared/cases); skips the test where they are absent."""
    root = shared_cases_root()
    if root is None:
        pytest.skip("../shared/cases is not beside the checkout")
    return root


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of the real data set; skips the test where it is not available."""
    root = shared_data_root()
    if root is None:
        pytest.skip("../shared/data is not beside the checkout")
    return root


def render_scene(height: int = 96, width: int = 128, seed: int = 0) -> np.ndarray:
    """A smooth-plus-edges linear radiance map, H×W×3 float32 in about [0.01, 8] (a stand-in HDR scene)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    sky = 4.0 + 4.0 * (1 - y / height)[..., None] * np.array([0.8, 0.9, 1.0], np.float32)
    room = 0.05 + 0.3 * (x / width)[..., None] * np.array([1.0, 0.7, 0.5], np.float32)
    window = ((x > width * 0.55) & (y < height * 0.6))[..., None]
    radiance = np.where(window, sky, room)
    radiance *= 1 + 0.15 * rng.standard_normal((height, width, 1)).astype(np.float32)
    return np.clip(radiance, 0.01, None).astype(np.float32)


def expose(radiance: np.ndarray, ev: float) -> np.ndarray:
    """Frame of a radiance map at exposure 2**ev with a gamma-2.2 response, 8-bit quantised; H×W×3 float32 in [0,1]."""
    linear = np.clip(radiance * 2.0**ev, 0.0, 1.0)
    return np.round(linear ** (1 / 2.2) * 255) / 255


def move(frame: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """The frame as a camera moved by `truth` (frame->reference homography) would have seen it (reflected borders)."""
    h, w = frame.shape[:2]
    return cv2.warpPerspective(frame, np.linalg.inv(truth), (w, h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT)


def ellipse(shape: tuple[int, int], centre: tuple[int, int], axes: tuple[int, int], angle: float = 20.0) -> np.ndarray:
    """H×W bool mask of a filled ellipse (centre x, y and half-axes in px, `angle` in degrees)."""
    mask = np.zeros(shape, np.uint8)
    cv2.ellipse(mask, centre, axes, angle, 0, 360, 1, -1)
    return mask.astype(bool)


def rectangle(shape: tuple[int, int], corners: tuple[int, int, int, int]) -> np.ndarray:
    """H×W bool mask of the rectangle x0, y0, x1, y1 (exclusive ends)."""
    x0, y0, x1, y1 = corners
    mask = np.zeros(shape, bool)
    mask[y0:y1, x0:x1] = True
    return mask


def pasted(frame: np.ndarray, region: np.ndarray, shift: tuple[int, int]) -> np.ndarray:
    """A copy of `frame` (H×W×C) whose `region` (H×W bool) holds the frame's own content from `shift` = (dx, dy) px
    away (pixel x, y gets the content at x + dx, y + dy, which must lie inside the frame): an object that moved,
    carrying the frame's exposure, noise and texture."""
    dx, dy = shift
    ys, xs = np.nonzero(region)
    out = frame.copy()
    out[ys, xs] = frame[ys + dy, xs + dx]
    return out


def corner_error(m: np.ndarray, truth: np.ndarray, width: int, height: int) -> float:
    """Largest distance in px between where homographies `m` and `truth` send the image's four corners."""
    c = np.array([[[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]]], np.float64)
    return float(np.abs(cv2.perspectiveTransform(c, m) - cv2.perspectiveTransform(c, truth)).max())


@pytest.fixture
def rendered_bracket() -> list[np.ndarray]:
    """Three frames (EV -2, 0, +2) of a rendered scene, darkest first, each 96×128×3 float32 in [0,1]."""
    scene = render_scene()
    return [expose(scene, ev).astype(np.float32) for ev in (-3.0, -1.0, 1.0)]
