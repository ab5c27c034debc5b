"""The shipped demo bracket: three small EXIF-tagged frames that form a real bracket."""

from __future__ import annotations

import numpy as np
import piexif

from lutfuse.core.bracket import load_bracket
from lutfuse.core.paths import DEMO, demo_frames


def test_demo_is_three_small_jpegs_with_a_licence_and_its_script() -> None:
    frames = demo_frames()
    assert [p.name for p in frames] == ["00.jpg", "01.jpg", "02.jpg"]
    assert sum(p.stat().st_size for p in frames) <= 2_000_000
    assert (DEMO / "make_demo.py").is_file()
    note = (DEMO / "README.md").read_text()
    assert "CC0" in note and "make_demo.py" in note


def test_demo_exif_orders_the_frames_two_stops_apart() -> None:
    times = []
    for path in demo_frames():
        exif = piexif.load(str(path))["Exif"]
        assert exif[piexif.ExifIFD.FNumber] == (8, 1) and exif[piexif.ExifIFD.ISOSpeedRatings] == 100
        num, den = exif[piexif.ExifIFD.ExposureTime]
        times.append(num / den)
    assert times == sorted(times)
    # shuffled on input, ordered from EXIF on load
    bracket = load_bracket(demo_frames()[::-1], align=False)
    assert [f.path.name for f in bracket.frames] == ["00.jpg", "01.jpg", "02.jpg"]
    assert all(f.ev_source == "exif" for f in bracket.frames)
    steps = np.diff([f.ev for f in bracket.frames])
    assert np.allclose(steps, 2.0, atol=0.1)
    assert bracket.images.shape == (3, 800, 1200, 3)


def test_demo_dark_frame_keeps_highlights_and_bright_frame_opens_shadows() -> None:
    dark, mid, bright = load_bracket(demo_frames(), align=False).images
    luma = mid.mean(-1)
    highlights = luma >= np.percentile(luma, 97)     # the window
    shadows = luma <= np.percentile(luma, 20)        # curtains, corners
    clipped = lambda img, mask: float((img[mask].max(-1) >= 0.99).mean())  # noqa: E731
    assert clipped(bright, highlights) > 0.5         # the bright frame blows the window out...
    assert clipped(dark, highlights) < 0.1           # ...the dark frame keeps it
    assert dark[shadows].mean() < 0.06               # the dark frame buries the shadows...
    # ...the bright frame opens them: +2 EV is ×4 in linear light, about ×1.9 in gamma-encoded values
    assert bright[shadows].mean() > 1.8 * mid[shadows].mean()
