"""Fuzzing the image loader (hypothesis): mutated bytes of small real PNG/JPEG/TIFF files give a valid image or a
one-line BracketError naming the file, never another exception, a crash or a hang. Bounded: a fixed number of
examples per format (about 10 s in all on 2 cores)."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import cv2
import numpy as np
import tifffile
from conftest import expose, render_scene
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from lutfuse.core.errors import BracketError
from lutfuse.core.readers import read_frame


def _seed_files() -> dict[str, bytes]:
    """Small valid files of each format (32×40 px) with the features the readers branch on."""
    rgb = (expose(render_scene(32, 40, seed=1), 0.0) * 255).round().astype(np.uint8)
    files = {}
    files[".png"] = cv2.imencode(".png", np.dstack([rgb, np.full((32, 40), 200, np.uint8)]))[1].tobytes()
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "JPEG", quality=80, exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x00")
    files[".jpg"] = out.getvalue()
    out = io.BytesIO()
    tifffile.imwrite(out, (rgb.astype(np.uint16) * 257), photometric="rgb", compression="lzw",
                     extratags=[(274, "H", 1, (6,), True)])
    files[".tif"] = out.getvalue()
    return files


SEEDS = _seed_files()
FOLDER = Path(tempfile.mkdtemp(prefix="lutfuse-fuzz-"))


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    """A seed file with a few bytes overwritten, a slice cut out or inserted, or cut short."""
    suffix = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[suffix])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "truncate", "header"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] = draw(st.integers(0, 255))
        elif kind == "header":  # the header fields (sizes, offsets, tags) live in the first bytes
            data[min(at, 200)] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[at:at + draw(st.integers(1, 64))]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
        elif len(data) > 1:
            del data[at:]
    return suffix, bytes(data)


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_files_give_an_image_or_a_bracket_error(case: tuple[str, bytes]) -> None:
    suffix, data = case
    path = FOLDER / f"fuzz{suffix}"
    path.write_bytes(data)
    try:
        decoded = read_frame(path)
    except BracketError as exc:
        message = str(exc)
        assert message.startswith(f"{path}: ") and "\n" not in message
        return
    image = decoded.pixels
    assert image.dtype == np.float32 and image.ndim == 3 and image.shape[2] == 3
    assert image.shape[0] >= 16 and image.shape[1] >= 16
    assert np.isfinite(image).all() and image.min() >= 0.0 and image.max() <= 1.0
    assert decoded.valid is None or decoded.valid.shape == image.shape[:2]


def test_seed_files_are_valid() -> None:
    """The fuzzer starts from files the loader reads (else it would only ever test the error path)."""
    for suffix, data in SEEDS.items():
        path = FOLDER / f"seed{suffix}"
        path.write_bytes(data)
        assert read_frame(path).pixels.shape[:2] in ((32, 40), (40, 32))
