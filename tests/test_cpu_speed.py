"""What the CPU speed changes must keep (issue 16; speed itself is measured with `lutfuse bench`, never here).

Decoding frames on several threads at once (core.readers.quiet_decoder no longer serialises decodes): the decoders'
chatter still never reaches the terminal, each block reads back what was written while it ran, and a good JPEG
decoded beside a corrupt one is never refused because of the other's libjpeg warning. Huge pages for torch's
large CPU tensors are asked for at import, and a user's own setting wins."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

from lutfuse.core.errors import BracketError
from lutfuse.core.readers import quiet_decoder, read_frame


def jpeg(path: Path, seed: int, size: tuple[int, int] = (384, 512)) -> Path:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (size[0] // 16, size[1] // 16, 3), dtype=np.uint8)
    image = cv2.resize(small, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def cut(path: Path, good: Path) -> Path:
    """The good JPEG with its scan data cut in half, still ending with an end-of-image marker (libjpeg warns)."""
    data = good.read_bytes()
    scan = data.rfind(b"\xff\xda")
    path.write_bytes(data[:scan + (len(data) - scan) // 2] + b"\xff\xd9")
    return path


def test_overlapping_blocks_capture_their_own_text_and_print_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    inside, release = threading.Event(), threading.Event()
    said: dict[str, list[str]] = {}

    def first() -> None:
        with quiet_decoder() as chat:
            os.write(2, b"first says A\n")
            inside.set()
            release.wait(10)
            os.write(2, b"first says C\n")
        said["first"] = chat
        said["first shared"] = [str(chat.shared)]

    worker = threading.Thread(target=first)
    worker.start()
    assert inside.wait(10)
    with quiet_decoder() as chat:  # enters while the other block runs: no lock held between them
        os.write(2, b"second says B\n")
    release.set()
    worker.join(10)
    text_first, text_second = " ".join(said["first"]), " ".join(chat)
    assert "B" in text_second and "A" not in text_second and "C" not in text_second
    assert "A" in text_first and "C" in text_first
    assert chat.shared and said["first shared"] == ["True"]
    err = capfd.readouterr().err
    assert "says" not in err
    # after the last block left, fd 2 is the terminal again
    os.write(2, b"after\n")
    assert "after" in capfd.readouterr().err


def test_exclusive_block_runs_alone() -> None:
    inside, release, order = threading.Event(), threading.Event(), []

    def holder() -> None:
        with quiet_decoder():
            inside.set()
            release.wait(10)
            order.append("holder left")

    worker = threading.Thread(target=holder)
    worker.start()
    assert inside.wait(10)
    timer = threading.Timer(0.3, release.set)
    timer.start()
    with quiet_decoder(exclusive=True) as chat:
        order.append("exclusive entered")
    worker.join(10)
    assert order == ["holder left", "exclusive entered"] and not chat.shared


def test_good_jpegs_decoded_beside_a_corrupt_one(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    goods = [jpeg(tmp_path / f"good{i}.jpg", i) for i in range(6)]
    bad = cut(tmp_path / "cut.jpg", goods[0])
    expected = {p: cv2.cvtColor(cv2.imread(str(p), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB) / np.float32(255)
                for p in goods}
    order = [bad if i % 3 == 0 else goods[i % len(goods)] for i in range(24)]

    def read(path: Path) -> object:
        try:
            return read_frame(path)
        except BracketError as exc:
            return exc

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(read, order))
    for path, result in zip(order, results):
        if path == bad:
            assert isinstance(result, BracketError) and "cut.jpg: corrupt JPEG data" in str(result)
        else:
            assert not isinstance(result, BracketError), result
            np.testing.assert_array_equal(result.pixels, expected[path])  # type: ignore[attr-defined]
    assert "Corrupt JPEG" not in capfd.readouterr().err and "Premature" not in capfd.readouterr().err


def test_large_torch_tensors_use_huge_pages_unless_the_user_says_otherwise() -> None:
    """`import lutfuse` asks torch's CPU allocator for transparent huge pages (THP_MEM_ALLOC_ENABLE) before torch
    loads; a user's own value is kept. Where the kernel offers THP, a fresh 64 MB tensor then faults per 2 MiB."""
    import subprocess
    import sys

    probe = ("import resource, lutfuse, os, torch\n"
             "f = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
             "torch.empty(1 << 24).fill_(1.0)\n"
             "print(os.environ['THP_MEM_ALLOC_ENABLE'], resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f)\n")
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    on = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    off = subprocess.run([sys.executable, "-c", probe], env={**env, "THP_MEM_ALLOC_ENABLE": "0"},
                         capture_output=True, text=True, check=True)
    (flag_on, faults_on), (flag_off, faults_off) = on.stdout.split(), off.stdout.split()
    assert (flag_on, flag_off) == ("1", "0")
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if thp.is_file() and "[never]" not in thp.read_text():
        assert int(faults_on) * 4 < int(faults_off)    # 64 MB: ~16 400 small-page faults against a few dozen
