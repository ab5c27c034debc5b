"""The fast open path (issue 16) computes what the plain path computes: frames decoded into the bracket's buffer
(`read_frame(into=)`), the small copies made on the decode threads (EV lumas, digests, registration lumas), the
CPU luma of the detail layer and the latent/base made beside the fused band-pass, all on real frames."""

from __future__ import annotations

import shutil
import threading
from concurrent.futures import Future
from pathlib import Path

import cv2
import numpy as np
import piexif
import pytest
import tifffile
import torch

from lutfuse.core import bracket as bracketmod
from lutfuse.core import detail, fusion
from lutfuse.core.bench import write_bracket
from lutfuse.core.readers import header_shape, read_frame
from lutfuse.core.registration import Reference, frame_lumas, register

SEQ = ("deepfuse", "Seq_41")  # camera JPEGs (EXIF exposure times), hand-held: registration moves frames
STATIC = ("hdrps",)           # tripod PNG stacks: registration leaves every frame as it is


def _seq(shared_data: Path) -> list[Path]:
    return sorted((shared_data / "brackets" / SEQ[0] / SEQ[1]).glob("*.jpg"))


def _rotated(src: list[Path], folder: Path) -> Path:
    """The frames stored turned 90° counter-clockwise, tagged EXIF Orientation 6 (upright = the source)."""
    folder.mkdir()
    for i, p in enumerate(src):
        out = folder / f"{i:02d}.jpg"
        cv2.imwrite(str(out), np.ascontiguousarray(np.rot90(cv2.imread(str(p)), 1)), [cv2.IMWRITE_JPEG_QUALITY, 92])
        piexif.insert(piexif.dump({"0th": {piexif.ImageIFD.Orientation: 6}}), str(out))
    return folder


def _alpha(src: list[Path], folder: Path) -> Path:
    """RGBA PNGs of the frames with a transparent (alpha 0) rectangle, a different one per frame."""
    folder.mkdir()
    for i, p in enumerate(src):
        bgr = cv2.imread(str(p))
        a = np.full(bgr.shape[:2], 255, np.uint8)
        a[40 + 30 * i:120 + 30 * i, 100:300] = 0
        cv2.imwrite(str(folder / f"{i:02d}.png"), np.dstack([bgr, a]))
    return folder


def _tiff16(src: list[Path], folder: Path) -> Path:
    """16-bit TIFFs of the frames (low bits set, so they are not 8-bit values scaled)."""
    folder.mkdir()
    for i, p in enumerate(src):
        rgb = cv2.imread(str(p))[..., ::-1].astype(np.uint16) * 257 + np.uint16(3 * i + 1)
        tifffile.imwrite(folder / f"{i:02d}.tif", rgb, photometric="rgb")
    return folder


@pytest.fixture(scope="module")
def kinds(shared_data, tmp_path_factory) -> dict[str, Path]:
    """One folder per kind of frame file, all made from the same real bracket."""
    src = _seq(shared_data)
    root = tmp_path_factory.mktemp("kinds")
    static = sorted((shared_data / "brackets" / "hdrps").iterdir())[0]
    png16 = root / "png16"
    png16.mkdir()
    for i, p in enumerate(sorted(static.glob("*.png"))[3:6]):
        cv2.imwrite(str(png16 / f"{i:02d}.png"), cv2.imread(str(p)).astype(np.uint16) * 257 + np.uint16(i))
    return {"jpeg": src[0].parent, "png": static, "png16": png16, "rotated": _rotated(src, root / "rot"),
            "alpha": _alpha(src, root / "alpha"), "tiff16": _tiff16(src, root / "tif16")}


@pytest.mark.parametrize("kind", ["jpeg", "png", "png16", "rotated", "alpha", "tiff16"])
def test_decoding_into_a_buffer_equals_a_fresh_decode(kinds, kind):
    path = sorted(p for p in kinds[kind].iterdir() if p.is_file())[1]
    fresh = read_frame(path)
    h, w = fresh.pixels.shape[:2]
    buffer = np.full(h * w * 3, np.nan, np.float32)
    into = read_frame(path, into=buffer)
    assert np.array_equal(into.pixels, fresh.pixels)
    assert into.pixels.ctypes.data == buffer.ctypes.data  # a view of the buffer, not a copy beside it
    assert np.array_equal(buffer.reshape(h, w, 3), fresh.pixels)
    assert (into.valid is None) == (fresh.valid is None)
    if fresh.valid is not None:
        assert np.array_equal(into.valid, fresh.valid) and not fresh.valid.all()
    assert (into.orientation, into.bit_depth, into.notes, into.settings) == (
        fresh.orientation, fresh.bit_depth, fresh.notes, fresh.settings)
    if kind in ("jpeg", "png", "png16", "rotated", "alpha"):
        assert header_shape(path) == (h, w)  # stored size (the rotated frame is stored w×h turned)
    else:
        assert header_shape(path) is None
    if kind == "rotated":
        assert fresh.orientation == 6 and h > w


def test_a_buffer_that_does_not_fit_is_left_alone(kinds):
    path = sorted(kinds["png"].glob("*.png"))[0]
    fresh = read_frame(path)
    small = np.full(fresh.pixels.size - 3, -1.0, np.float32)
    wrong_type = np.zeros(fresh.pixels.size, np.float64)
    for buffer in (small, wrong_type):
        out = read_frame(path, into=buffer)
        assert np.array_equal(out.pixels, fresh.pixels)
        assert not np.shares_memory(out.pixels, buffer)
    assert (small == -1.0).all() and not wrong_type.any()


def test_header_shape_never_raises_on_bad_paths(tmp_path):
    (tmp_path / "short.png").write_bytes(b"\x89PNG\r\n")
    (tmp_path / "tiny.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0\0\0\rIHDR" + (8).to_bytes(4, "big") * 2)
    (tmp_path / "folder.jpg").mkdir()
    for name in ("short.png", "tiny.png", "folder.jpg", "missing.jpg"):
        assert header_shape(tmp_path / name) is None


def _plain_decode(monkeypatch) -> None:
    """The loader as before the fast path: no buffer from the header, every small copy made from the stack."""

    def decode(path, max_pixels, into, align):
        d = read_frame(path, max_pixels=max_pixels)
        return bracketmod._Decoded(d, bracketmod.StoredFrame.of(d))

    monkeypatch.setattr(bracketmod, "header_shape", lambda *a, **k: None)
    monkeypatch.setattr(bracketmod, "_decode_frame", decode)


def _same_bracket(a, b) -> None:
    assert np.array_equal(a.images, b.images)
    assert [f.ev for f in a.frames] == [f.ev for f in b.frames]
    assert [f.path for f in a.frames] == [f.path for f in b.frames]
    assert a.notes == b.notes and a.frames[0].ev_source == b.frames[0].ev_source
    assert (a.valid is None) == (b.valid is None)
    if a.valid is not None:
        assert np.array_equal(a.valid, b.valid)
    for ra, rb in zip(a.registration or [], b.registration or []):
        assert (ra.model, ra.applied, ra.reason) == (rb.model, rb.applied, rb.reason)
        assert np.array_equal(ra.matrix, rb.matrix)


@pytest.mark.parametrize("kind", ["png", "rotated", "alpha", "tiff16"])
def test_fast_loader_equals_the_plain_one(kinds, kind, monkeypatch):
    # registration off: its result on hand-held frames depends on the heap (see test_lumas_reuse...)
    fast = bracketmod.load_bracket(kinds[kind], align=False)
    with monkeypatch.context() as m:
        _plain_decode(m)
        plain = bracketmod.load_bracket(kinds[kind], align=False)
    _same_bracket(fast, plain)
    if kind == "alpha":
        assert fast.valid is not None
    if kind == "png":  # a tripod stack: registration runs and leaves every frame as it is
        fast = bracketmod.load_bracket(kinds[kind], align=True)
        with monkeypatch.context() as m:
            _plain_decode(m)
            plain = bracketmod.load_bracket(kinds[kind], align=True)
        _same_bracket(fast, plain)


def test_fast_loader_equals_the_plain_one_on_the_bench_bracket(tmp_path, monkeypatch):
    paths = write_bracket(tmp_path, 540, 960, 3)
    fast = bracketmod.load_bracket(paths, align=True)
    _plain_decode(monkeypatch)
    _same_bracket(fast, bracketmod.load_bracket(paths, align=True))


def test_lumas_reuse_gives_the_same_registration(shared_data):
    stack = bracketmod.load_bracket(_seq(shared_data), align=False).images
    lumas = [frame_lumas(f) for f in stack]
    ref = Reference(stack[1])
    assert np.array_equal(lumas[1][0], ref.grey)
    given = register(stack, "auto", lumas=lumas)
    made = register(stack, "auto")
    assert any(r.applied for r in made)  # a hand-held bracket: the check is about frames that move
    for a, b in zip(given, made):
        assert (a.model, a.applied, a.reason) == (b.model, b.applied, b.reason)
        # not bit for bit: the gradient's cv2.magnitude rounds differently with the heap address of its inputs
        # (SIMD body against scalar tail), so two runs of one registration in one process differ by that much
        np.testing.assert_allclose(a.matrix, b.matrix, rtol=0, atol=1e-6)
    with pytest.raises(Exception, match="luma sets"):
        register(stack, "auto", lumas=lumas[:2])
    # lumas of another size are not used
    wrong = [[np.zeros((4, 4), np.float32)]] * 3
    assert [r.reason for r in register(stack, "auto", lumas=wrong)] == [r.reason for r in made]


def test_cpu_luminance_of_an_interleaved_image_equals_torchs(shared_data):
    rgb = bracketmod.load_bracket(_seq(shared_data), align=False).images[2]
    tone = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)  # a LUT output: a view of H×W×3
    assert torch.equal(detail._luminance_cpu(tone), detail.luminance(tone))
    assert torch.equal(detail._luminance_cpu(tone.contiguous()), detail.luminance(tone))
    fused = torch.from_numpy(np.random.default_rng(0).normal(0, 0.05, rgb.shape[:2]).astype(np.float32))
    y = detail.luminance(tone)
    expected = detail.compress(fused - (y - detail.lowpass(y, 5)))
    assert torch.equal(detail.tone_detail(fused, tone, 5), expected)


class _Inline:
    """A stand-in for the prepare worker that runs the job on the calling thread, before the band-pass."""

    def submit(self, fn):
        done: Future = Future()
        done.set_result(fn())
        return done

    def shutdown(self, wait: bool = True) -> None:
        pass


def _prepare_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("lutfuse-prepare")]


def test_prepare_beside_the_band_pass_equals_prepare_in_order(kinds, monkeypatch):
    bracket = bracketmod.load_bracket(kinds["png"], align=False)
    engine = fusion.Engine(device="cpu")
    overlapped = engine.prepare(bracket)
    monkeypatch.setattr(fusion, "_prepare_worker", lambda: _Inline())
    serial = engine.prepare(bracket)
    assert np.array_equal(overlapped.base, serial.base)
    assert torch.equal(overlapped.latent, serial.latent) and torch.equal(overlapped.fused, serial.fused)
    assert torch.equal(overlapped._cache.layers[33], serial._cache.layers[33])
    assert np.array_equal(engine.render(overlapped, 33, 1.0), engine.render(serial, 33, 1.0))


def test_prepare_waits_for_its_worker_when_the_band_pass_fails(kinds, monkeypatch):
    bracket = bracketmod.load_bracket(kinds["png"], align=False)
    engine = fusion.Engine(device="cpu", base="mean")

    def fail(*args, **kwargs):
        raise RuntimeError("band-pass failed")

    monkeypatch.setattr(fusion.detailmod, "fused_bandpass", fail)
    with pytest.raises(RuntimeError, match="band-pass failed"):
        engine.prepare(bracket)
    assert _prepare_threads() == []
    # the worker is free again: the next prepare is not queued behind a leftover job
    monkeypatch.undo()
    assert engine.prepare(bracket).base.shape == bracket.images.shape[1:]


def test_prepare_leaves_no_worker_thread_alive(kinds):
    # a live thread that ran torch keeps an OpenMP team, and libgomp then stops spinning in every team: small torch
    # ops on the caller (the grid slider's INR sampling) ran twice as slow for as long as a pooled worker lived
    bracket = bracketmod.load_bracket(kinds["png"], align=False)
    engine = fusion.Engine(device="cpu")
    engine.prepare(bracket)
    assert _prepare_threads() == []


def test_decode_threads_free_their_frames_on_failure(kinds, tmp_path):
    folder = tmp_path / "broken"
    shutil.copytree(kinds["png"], folder)
    victim = sorted(folder.glob("*.png"))[1]
    victim.write_bytes(victim.read_bytes()[:2000])
    with pytest.raises(bracketmod.BracketError, match=victim.name):
        bracketmod.load_bracket(folder)


def test_calibrated_amount_is_repeatable(shared_data):
    # OpenCV's MergeMertens gave 3 different amounts in 8 runs on this bracket (its result depends on the heap)
    from lutfuse.core import base as basemod
    from lutfuse.core.lut import apply_lut
    from lutfuse.core.prepared import RenderCache

    images = bracketmod.load_bracket(shared_data / "brackets" / "deepfuse" / "Seq_11", align=False).images
    engine = fusion.Engine(device="cpu")
    table = engine._host(RenderCache(latent=engine.encode(images)), fusion.CALIBRATION_GRID)
    amounts, heap = set(), []
    for i in range(8):
        heap.append(np.empty(4099 * i + 13, np.uint8))  # move the allocations of the next run
        amounts.add(basemod.calibrate_amount(images, lambda b: apply_lut(b, table)))
    assert len(amounts) == 1 and 0.1 < amounts.pop() < 0.2


def test_banded_mertens_weight_equals_the_one_shot(tmp_path, monkeypatch):
    # UHD bench frames: many bands of ~34 rows, each Laplacian from its rows and a one-row halo
    paths = write_bracket(tmp_path, 2160, 3840, 3)
    frame = torch.from_numpy(read_frame(paths[1]).pixels).permute(2, 0, 1)
    y, banded = detail._luma_and_weight_cpu(frame)
    monkeypatch.setattr(detail, "_BAND_PIXELS", 1 << 40)  # one band: the whole frame's filters at once
    y1, whole = detail._luma_and_weight_cpu(frame)
    assert torch.equal(y, y1) and torch.equal(banded, whole)
    assert (banded > 1e-6).float().mean() > 0.5  # a textured frame: the weights are not the floor
