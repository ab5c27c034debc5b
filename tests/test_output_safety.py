"""Outputs that cannot be written: link loops, unwritable folders (checked before the work, HQ included), a full
disk, SIGTERM/SIGHUP mid-write; each ends in one line naming the file, exit 1 (or 128+N on a signal), nothing
written and no temp file left. cube-apply and metrics get the same treatment."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import expose, render_scene
from PIL import Image

from lutfuse.core.cli import main
from lutfuse.core.errors import OutputError
from lutfuse.core.imageio import write_image


@pytest.fixture
def frames(tmp_path: Path) -> Path:
    """A folder with a small 3-frame PNG bracket."""
    scene = render_scene(48, 64)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, ev in enumerate((-2.0, 0.0, 2.0)):
        Image.fromarray((expose(scene, ev) * 255).round().astype(np.uint8)).save(folder / f"{i}.png")
    return folder


def error_lines(err: str) -> list[str]:
    """The non-progress lines of stderr (tqdm redraws with carriage returns)."""
    return [line for line in err.replace("\r", "\n").splitlines() if line.startswith("lutfuse")]


def temp_files(folder: Path) -> list[str]:
    """Names of temp files a writer may have left behind."""
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_symlink_loop_as_output(frames: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "loop.png"
    out.symlink_to(out)
    for force in ([], ["--force"]):
        assert main(["fuse", str(frames), "-o", str(out), "--method", "mertens", *force]) == 1
        assert error_lines(capsys.readouterr().err) == [f"lutfuse fuse: error: {out}: symbolic link loop"]
        assert out.is_symlink() and temp_files(tmp_path) == []


def test_dangling_link_as_output_is_not_followed(frames: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "dangling.png"
    out.symlink_to(tmp_path / "elsewhere" / "x.png")
    assert main(["fuse", str(frames), "-o", str(out), "--method", "mertens"]) == 1
    assert "symbolic link to a missing file" in error_lines(capsys.readouterr().err)[0]


def test_a_link_or_a_pipe_as_output_is_not_replaced_even_with_force(frames: Path, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    """Outputs are written to a temp file and renamed over the name: over a symbolic link that replaced the link
    (with a file), over a FIFO or a device the special file itself (--transforms /dev/stdout turned the system's
    /dev/stdout link into a regular file)."""
    target = tmp_path / "target.png"
    target.write_bytes(b"not replaced")
    link = tmp_path / "link.png"
    link.symlink_to(target)
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    to_null = tmp_path / "null.json"
    to_null.symlink_to(os.devnull)
    cases = [
        (["-o", str(link)], f"{link}: is a symbolic link (to {target}); name the file itself to replace it"),
        (["-o", str(tmp_path / "out.png"), "--transforms", str(fifo)],
         f"{fifo}: is a FIFO (named pipe); only regular files are replaced"),
        (["-o", str(tmp_path / "out.png"), "--transforms", str(to_null)],
         f"{to_null}: is a symbolic link (to {os.devnull}); name the file itself to replace it"),
    ]
    for args, message in cases:
        for force in ([], ["--force"]):  # not "already exists (use --force ...)": --force would not help
            assert main(["fuse", str(frames), "--method", "mertens", *force, *args]) == 1
            assert error_lines(capsys.readouterr().err) == [f"lutfuse fuse: error: {message}"]
    assert link.is_symlink() and target.read_bytes() == b"not replaced" and to_null.is_symlink()
    assert fifo.is_fifo() and not (tmp_path / "out.png").exists() and temp_files(tmp_path) == []


def test_side_outputs_never_replace_a_frame_of_a_folder(frames: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    """Given a folder as FRAME, --ghost-mask and --transforms were checked against the folder, not its files:
    with --force they replaced a frame."""
    before = {p.name: p.read_bytes() for p in frames.iterdir()}
    out = str(tmp_path / "out.png")
    cases = [
        (["--deghost", "low", "--ghost-mask", str(frames / "1.png")],
         f"{frames / '1.png'}: refusing to overwrite an input file"),
        (["--transforms", str(frames / "0.png")], f"{frames / '0.png'}: the transforms are JSON; name the file .json"),
    ]
    for args, message in cases:
        assert main(["fuse", str(frames), "-o", out, "--method", "mertens", "--force", *args]) == 1
        assert error_lines(capsys.readouterr().err) == [f"lutfuse fuse: error: {message}"]
    assert {p.name: p.read_bytes() for p in frames.iterdir()} == before and not Path(out).exists()


def test_align_and_no_align_together_are_refused_in_one_line(frames: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture) -> None:
    """Given both, the later one used to win silently; a usage error is one line (no usage block), status 2."""
    for command in ("fuse", "cube", "batch"):
        out = str(tmp_path / ("x.cube" if command == "cube" else "out"))
        with pytest.raises(SystemExit) as exit_info:
            main([command, str(frames), "-o", out, "--no-align", "--align", "homography"])
        assert exit_info.value.code == 2
        assert capsys.readouterr().err.strip().splitlines() == [
            f"lutfuse {command}: error: argument --align: not allowed with argument --no-align"]


def test_file_as_folder(frames: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    out = blocker / "out.png"
    assert main(["fuse", str(frames), "-o", str(out), "--method", "mertens"]) == 1
    assert error_lines(capsys.readouterr().err) == [f"lutfuse fuse: error: {out}: {blocker} is not a folder"]


def test_unwritable_folder_is_found_before_the_work(frames: Path, capsys: pytest.CaptureFixture,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # /sys refuses new files even to root (tests run as root, so chmod 0555 would not stop them)
    out = Path("/sys/lutfuse-test-out.png")

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("fusion ran although the output could not be written")

    monkeypatch.setattr("lutfuse.core.methods.Method.fuse", never)
    monkeypatch.setattr("lutfuse.core.bracket.load_bracket", never)
    assert main(["fuse", str(frames), "-o", str(out)]) == 1
    lines = error_lines(capsys.readouterr().err)
    assert lines == [f"lutfuse fuse: error: {out}: folder /sys is not writable (Permission denied)"]


def test_read_only_filesystem_before_a_long_hq_run(frames: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = os.open

    def read_only(path, flags, *args, **kwargs):  # noqa: ANN001, ANN202
        if flags & os.O_CREAT:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    class NoHQ:
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise AssertionError("the HQ run started although the output could not be written")

    monkeypatch.setattr(os, "open", read_only)
    monkeypatch.setattr("lutfuse.core.hq.HQFusion", NoHQ)
    out = tmp_path / "hq.tif"
    assert main(["fuse", str(frames), "-o", str(out), "--method", "hq"]) == 1
    assert error_lines(capsys.readouterr().err) == [
        f"lutfuse fuse: error: {out}: folder {tmp_path} is not writable (Read-only file system)"]
    assert not out.exists()


def test_full_disk_is_one_line_and_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, handle) -> None:  # noqa: ANN001
            self.handle = handle

        def __enter__(self):  # noqa: ANN204
            return self

        def __exit__(self, *exc: object) -> None:
            self.handle.close()

        def write(self, data: bytes) -> int:
            self.handle.write(data[: len(data) // 2])  # part of it lands, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name: str):  # noqa: ANN204
            return getattr(self.handle, name)

    monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: Full(real_fdopen(fd, *a, **k)))
    image = expose(render_scene(48, 64), 0.0).astype(np.float32)
    out = tmp_path / "full.tif"
    with pytest.raises(OutputError) as info:
        write_image(out, image, bit_depth=16)
    assert str(info.value) == f"{out}: cannot write (No space left on device)"
    assert list(tmp_path.iterdir()) == []


SLOW_WRITER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path

    ready = Path(sys.argv[1])
    real_fsync = os.fsync

    def slow_fsync(fd):
        # the temp file is written and open: tell the test, then take long enough to be signalled
        ready.write_text("writing")
        time.sleep(60)
        real_fsync(fd)

    os.fsync = slow_fsync
    from lutfuse.core.cli import main
    sys.exit(main(sys.argv[2:]))
""")


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_signal_during_a_write_leaves_no_temp_file(frames: Path, tmp_path: Path, signame: str) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "fused.png"
    ready = tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, str(ready), "fuse", str(frames), "-o", str(out),
                             "--method", "mertens"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), proc.stderr.read() if proc.poll() is not None else "writer never got to the write"
        assert temp_files(out_dir)  # caught mid-write: the temp file is there
        proc.send_signal(getattr(signal, signame))
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    number = getattr(signal, signame)
    assert proc.returncode == 128 + number
    assert error_lines(err)[-1] == f"lutfuse fuse: stopped by {signame}; nothing was left half-written"
    assert list(out_dir.iterdir()) == []


def test_cube_apply_input_and_output_checks(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from lutfuse.core.cube import write_cube
    from lutfuse.core.lut import identity_lut

    cube = write_cube(tmp_path / "id.cube", identity_lut(5))
    image = tmp_path / "in.png"
    Image.fromarray(np.full((16, 16, 3), 100, np.uint8)).save(image)
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    loop = tmp_path / "loop.png"
    loop.symlink_to(loop)
    cases = [
        ([str(cube), str(fifo), "-o", str(tmp_path / "a.png")], f"{fifo}: is a FIFO (named pipe), not an image "
                                                                f"file; only regular files are read"),
        ([str(cube), str(image), "-o", str(loop)], f"{loop}: symbolic link loop"),
        ([str(cube), str(image), "-o", "/sys/x.png"], "/sys/x.png: folder /sys is not writable (Permission denied)"),
    ]
    for args, message in cases:
        assert main(["cube-apply", *args]) == 1
        assert error_lines(capsys.readouterr().err) == [f"lutfuse cube-apply: error: {message}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo.png", "id.cube", "in.png", "loop.png"]


def test_metrics_inputs_are_checked_before_loading(frames: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    fifo = tmp_path / "fused.png"
    os.mkfifo(fifo)
    assert main(["metrics", str(frames), "--fused", str(fifo)]) == 1
    assert error_lines(capsys.readouterr().err) == [
        f"lutfuse metrics: error: {fifo}: is a FIFO (named pipe), not an image file; only regular files are read"]
    loop = tmp_path / "ref.png"
    loop.symlink_to(loop)
    real = frames / "1.png"
    assert main(["metrics", str(frames), "--fused", str(real), "--reference", str(loop)]) == 1
    assert error_lines(capsys.readouterr().err) == [
        f"lutfuse metrics: error: {loop}: symbolic link loop (the link points back to itself)"]


def test_non_finite_network_output_names_the_weights_and_writes_nothing(frames: Path, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from lutfuse.core.fusion import Engine
    from lutfuse.core.weights import shipped

    def broken(*args: object, **kwargs: object) -> np.ndarray:
        image = np.full((48, 64, 3), 0.5, np.float32)
        image[10:12, 20:25] = np.nan  # what a tampered or diverged network gives
        return image

    monkeypatch.setattr("lutfuse.core.methods.Method.fuse", broken)  # fuse and batch fuse through here
    out = tmp_path / "nan.png"
    assert main(["fuse", str(frames), "-o", str(out)]) == 1
    assert error_lines(capsys.readouterr().err) == [
        f"lutfuse fuse: error: {out}: not written: the image has 30 NaN or infinite values "
        f"(made from {shipped('LUT student')})"]
    monkeypatch.setattr(Engine, "lut", lambda self, *a, **k: np.full((5, 5, 5, 3), np.inf, np.float32))
    cube = tmp_path / "nan.cube"
    assert main(["cube", str(frames), "-o", str(cube), "--grid", "5"]) == 1
    assert error_lines(capsys.readouterr().err) == [
        f"lutfuse cube: error: {cube}: not written: the LUT has 375 NaN or infinite values "
        f"(made from {shipped('LUT student')})"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames"]
