"""Bad frames through the CLI: one line naming the file, exit status 1, nothing written, never a hang or a crash."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from conftest import expose, render_scene
from PIL import Image

from lutfuse.core.readers import quiet_decoder


def frame(ev: float, size: tuple[int, int] = (48, 64)) -> np.ndarray:
    return (np.round(expose(render_scene(*size, seed=2), ev) * 255)).astype(np.uint8)


@pytest.fixture
def good(tmp_path: Path) -> Path:
    """One valid 48×64 PNG frame (the bad one is the second frame of each bracket)."""
    path = tmp_path / "good.png"
    cv2.imwrite(str(path), frame(-1.0))
    return path


def fuse(frames: list[Path], out: Path, capfd: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from lutfuse.core.cli import main

    status = main(["fuse", *map(str, frames), "-o", str(out), "--method", "mertens"])
    return status, capfd.readouterr().err


def assert_refused(status: int, err: str, name: str, reason: str, folder: Path, before: set[str]) -> None:
    assert status == 1, err
    assert err.count("\n") == 1 and err.startswith("lutfuse fuse: error: "), err
    assert name in err and reason in err, err
    assert {p.name for p in folder.iterdir()} == before  # nothing written, nothing left behind


def test_symlink_loop_as_a_frame(good: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    loop = tmp_path / "loop.jpg"
    os.symlink(loop.name, loop)
    before = {p.name for p in tmp_path.iterdir()}
    status, err = fuse([good, loop], tmp_path / "out.png", capfd)
    assert_refused(status, err, "loop.jpg", "symbolic link loop", tmp_path, before)


def test_fifo_as_a_frame_is_refused_without_blocking(good: Path, tmp_path: Path,
                                                     capfd: pytest.CaptureFixture[str]) -> None:
    pipe = tmp_path / "pipe.png"
    os.mkfifo(pipe)  # nobody writes to it: reading it would block for ever
    before = {p.name for p in tmp_path.iterdir()}
    status, err = fuse([good, pipe], tmp_path / "out.png", capfd)
    assert_refused(status, err, "pipe.png", "is a FIFO (named pipe), not an image file", tmp_path, before)


def test_device_file_as_a_frame(good: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    zero = tmp_path / "zero.jpg"
    os.symlink("/dev/zero", zero)  # an image name that leads to an endless device
    before = {p.name for p in tmp_path.iterdir()}
    status, err = fuse([good, zero], tmp_path / "out.png", capfd)
    assert_refused(status, err, "zero.jpg", "is a character device", tmp_path, before)
    status, err = fuse([good, Path("/dev/zero")], tmp_path / "out.png", capfd)
    assert_refused(status, err, "/dev/zero", "unsupported format", tmp_path, before)


@pytest.mark.parametrize(("height", "width", "suffix"), [(1, 1, ".png"), (64, 1, ".png"), (1, 64, ".jpg"),
                                                          (3000, 1, ".png"), (1, 3000, ".tif"), (15, 400, ".jpg")])
def test_tiny_frames_are_refused_up_front(height: int, width: int, suffix: str, good: Path, tmp_path: Path,
                                          capfd: pytest.CaptureFixture[str]) -> None:
    tiny = tmp_path / f"tiny{suffix}"
    pixels = np.full((height, width, 3), 128, np.uint8)
    if suffix == ".tif":
        tifffile.imwrite(tiny, pixels, photometric="rgb")
    else:
        assert cv2.imwrite(str(tiny), pixels)
    before = {p.name for p in tmp_path.iterdir()}
    status, err = fuse([good, tiny], tmp_path / "out.png", capfd)
    assert_refused(status, err, tiny.name, f"{width}×{height} px is too small (a frame needs at least 16 px",
                   tmp_path, before)


def test_decoder_chatter_does_not_break_the_one_line_rule(good: Path, tmp_path: Path,
                                                          capfd: pytest.CaptureFixture[str]) -> None:
    # libpng prints "iCCP: too short" for this profile; the loader notes it instead, in its own words.
    chatty = tmp_path / "chatty.png"
    Image.fromarray(frame(1.0)[..., ::-1]).save(chatty, icc_profile=b"x" * 200)
    status, err = fuse([good, chatty], tmp_path / "out.png", capfd)
    assert status == 0 and "libpng" not in err
    assert [line for line in err.splitlines() if "note:" in line] == [
        f"lutfuse fuse: note: {chatty}: embedded ICC profile ignored (unreadable); the pixels are taken as sRGB"]
    # tifffile logs through `logging` and Python warnings print to stderr: both are captured while decoding.
    with quiet_decoder() as said:
        logging.getLogger("tifffile").warning("tifffile chatter")
        import warnings

        warnings.warn("decoder chatter", UserWarning, stacklevel=1)
        os.write(2, b"C-level chatter\n")
    assert "tifffile chatter" not in capfd.readouterr().err
    assert "decoder chatter" in said and any("C-level chatter" in s for s in said)


def run_strict_utf8(args: list[bytes], cwd: Path) -> subprocess.CompletedProcess:
    """`python -m lutfuse ARGS` on a strict UTF-8 terminal (the status lines crashed there)."""
    import lutfuse

    # The folder that holds the lutfuse under test (the checkout's parent, or site-packages for a wheel).
    home = str(Path(lutfuse.__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONIOENCODING="utf-8:strict", LC_ALL="C.UTF-8",
               PYTHONPATH=os.pathsep.join([home, os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable.encode(), b"-m", b"lutfuse", *args], cwd=cwd, env=env,
                          capture_output=True, timeout=300, check=False)


@pytest.mark.slow
def test_file_names_that_are_not_utf8_on_a_strict_terminal(good: Path, tmp_path: Path) -> None:
    odd = os.fsencode(tmp_path) + b"/caf\xe9-\xff.png"  # Latin-1 bytes: not valid UTF-8
    with open(odd, "wb") as handle:
        handle.write(cv2.imencode(".png", frame(1.0))[1].tobytes())
    done = run_strict_utf8([b"fuse", os.fsencode(good), odd, b"-o", b"out.png", b"--method", b"mertens"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert b"caf\\xe9-\\xff.png (" in done.stdout  # the status line names it, escaped
    assert (tmp_path / "out.png").is_file()
    # The same name in an error message: one line, exit 1.
    with open(odd, "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    done = run_strict_utf8([b"fuse", os.fsencode(good), odd, b"-o", b"out2.png"], tmp_path)
    assert done.returncode == 1 and done.stderr.count(b"\n") == 1, done.stderr
    assert b"caf\\xe9-\\xff.png: not a readable PNG" in done.stderr and b"Traceback" not in done.stderr
    assert not (tmp_path / "out2.png").exists()
