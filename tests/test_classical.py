"""The classical fusion: OpenCV's Mertens and the same algorithm one frame at a time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lutfuse.core.classical import mertens, mertens_low_memory


def test_low_memory_mertens_is_opencvs(rendered_bracket: list[np.ndarray]) -> None:
    frames = np.stack(rendered_bracket)
    for stack in (frames, frames[[0, 2]], frames[:, :77, :101]):   # odd sizes exercise the pyramid's borders
        ours, opencv = mertens_low_memory(stack), mertens(stack)
        assert ours.shape == opencv.shape and ours.dtype == np.float32
        np.testing.assert_allclose(ours, opencv, atol=1e-5)
    # a flat grey bracket (no contrast, no saturation) is the plain mean, as in OpenCV
    flat = np.stack([np.full((40, 40, 3), v, np.float32) for v in (0.2, 0.6)])
    np.testing.assert_allclose(mertens_low_memory(flat), 0.4, atol=1e-5)


@pytest.mark.shared_data
def test_low_memory_mertens_on_real_brackets(shared_data: Path) -> None:
    from lutfuse.core.train import data

    for key in ("deepfuse/Seq_24", "hdrps/Bigfoot_Pass"):
        frames = data.load_scene(shared_data, key, max_side=384).frames
        np.testing.assert_allclose(mertens_low_memory(frames), mertens(frames), atol=1e-5)
