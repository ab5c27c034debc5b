"""The device code path, proven on the CPU: torch kernels vs the CPU fast paths, device choice (auto/cpu/cuda/mps),
the MPS fallback for a missing 3-D grid_sample, reduced render precision; and the same checks on CUDA (`-m cuda`)."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest
import torch

from lutfuse.core import device as devmod
from lutfuse.core import lut as lutmod
from lutfuse.core.bracket import Bracket, load_bracket, load_image
from lutfuse.core.cli import main
from lutfuse.core.errors import LUTFuseError
from lutfuse.core.fusion import DEFAULT_WEIGHTS, MAX_GRID, MIN_GRID, Engine, pick_device
from lutfuse.core.lut import apply_lut, identity_lut
from lutfuse.core.prepared import PreparedBracket

ONE_LEVEL = 1 / 255
# The real bracket is checked at every grid size 2..129 (the shipped student sampled once per size for both engines:
# 69 M lattice points, about 15 s on 2 cores) and, at these sizes (both sides of every power of two the mosaic and
# pyramid code care about), also at detail 0 and as a preview; the stand-in curve student below covers every size
# on the rendered bracket too.
GRIDS = (2, 3, 5, 8, 9, 16, 17, 32, 33, 64, 65, 128, 129)
needs_student = pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="no shipped LUT student weights")


class CurveStudent:
    """Stand-in student: a per-channel tone curve with a colour twist, cheap to sample at any G."""

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """1×K×3×h×w -> 1×1 latent (mean brightness)."""
        return x.mean(dim=(1, 2, 3, 4)).view(1, 1)

    def sample(self, latent: torch.Tensor, grid: int) -> torch.Tensor:
        """1×G×G×G×3: a brightening curve x + k·x·(1-x), k from the latent, then a mild channel mix."""
        ident = torch.from_numpy(identity_lut(grid)).to(latent.device)
        curved = ident + (0.3 + 0.5 * latent.view(())) * ident * (1 - ident)
        mix = torch.tensor([[0.8, 0.1, 0.1], [0.15, 0.8, 0.05], [0.05, 0.15, 0.8]], device=latent.device)
        return (curved @ mix)[None]


class SharedSamples:
    """A student whose LUTs are sampled once per (latent, G) however many engines ask: the engines under
    comparison then differ only in the code that applies the LUT and adds the detail, and the test stays fast."""

    def __init__(self, student) -> None:
        self.student = student
        self.input_size = getattr(student, "input_size", None)
        self.cache: dict[tuple[int, bytes], torch.Tensor] = {}

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The student's latent code."""
        return self.student.encode(x)

    def sample(self, latent: torch.Tensor, grid: int) -> torch.Tensor:
        """The student's sample(latent, grid), computed once."""
        key = (grid, latent.detach().cpu().numpy().tobytes())
        if key not in self.cache:
            with torch.no_grad():
                self.cache[key] = self.student.sample(latent, grid)
        return self.cache[key]


def shipped() -> SharedSamples:
    """The shipped student behind a shared sampler."""
    from lutfuse.core.models.lut_student import load_student

    return SharedSamples(load_student(DEFAULT_WEIGHTS, "cpu"))


def real_bracket(shared_data) -> Bracket:
    """Three frames (-2, 0, +2 EV of nine) of a real hdrps scene at full size (536×356)."""
    files = sorted((shared_data / "brackets" / "hdrps" / "Cades_Cove").iterdir())
    return load_bracket([files[1], files[4], files[7]], align=False)


def engines(bracket: Bracket, student=None, **torch_kw) -> tuple[Engine, Engine, PreparedBracket, PreparedBracket]:
    """(CPU fast-path engine, torch-kernel engine on the CPU, the bracket prepared by each), one student."""
    fast = Engine(device="cpu", kernels="auto", student=student if student is not None else shipped())
    dev = Engine(device="cpu", kernels="torch", student=fast.student, **torch_kw)
    return fast, dev, fast.prepare(bracket), dev.prepare(bracket)


def assert_close(a: np.ndarray, b: np.ndarray, tol: float = ONE_LEVEL) -> None:
    """Same shape, every value within tol."""
    assert a.shape == b.shape
    assert float(np.abs(a - b).max()) <= tol


@needs_student
def test_torch_path_matches_cpu_path_on_a_real_bracket(shared_data):
    fast, dev, pf, pd = engines(real_bracket(shared_data))
    assert not fast.on_device and dev.on_device and dev.dtype == torch.float32
    worst = 0.0
    for g in range(MIN_GRID, MAX_GRID + 1):  # every grid size, the shipped student sampled once per size
        np.testing.assert_array_equal(dev.lut(pd, g), fast.lut(pf, g))  # the same INR on the same device
        worst = max(worst, float(np.abs(dev.render(pd, g, 1.0) - fast.render(pf, g, 1.0)).max()))
        if g in GRIDS:
            assert_close(dev.render(pd, g, 0.0), fast.render(pf, g, 0.0))
            assert_close(dev.render(pd, g, 0.6, max_side=200), fast.render(pf, g, 0.6, max_side=200))
    assert worst <= ONE_LEVEL


def test_torch_path_matches_cpu_path_at_every_grid_size(rendered_bracket):
    fast, dev, pf, pd = engines(Bracket.from_images(rendered_bracket), student=SharedSamples(CurveStudent()))
    worst = 0.0
    for g in range(MIN_GRID, MAX_GRID + 1):
        a, b = fast.render(pf, g, 1.0), dev.render(pd, g, 1.0)
        worst = max(worst, float(np.abs(a - b).max()))
    assert worst <= ONE_LEVEL
    # and the two paths are not trivially the same code: the CPU path never made a device copy of the base
    assert pf._cache.base_dev is None and pd._cache.base_dev is not None


def test_render_tensor_stays_where_it_was_made(rendered_bracket):
    fast, dev, pf, pd = engines(Bracket.from_images(rendered_bracket), student=CurveStudent())
    t = dev.render_tensor(pd, 33, 1.0)
    assert isinstance(t, torch.Tensor) and tuple(t.shape) == (3, 96, 128) and t.dtype == dev.dtype
    np.testing.assert_array_equal(t.permute(1, 2, 0).numpy(), dev.render(pd, 33, 1.0))
    np.testing.assert_array_equal(fast.render_tensor(pf, 33, 1.0).permute(1, 2, 0).numpy(), fast.render(pf, 33, 1.0))
    with pytest.raises(LUTFuseError, match="detail strength"):
        dev.render_tensor(pd, 33, -1.0)


def test_lut_cache_is_bounded_and_resampled_luts_are_equal(rendered_bracket):
    _, dev, _, pd = engines(Bracket.from_images(rendered_bracket), student=CurveStudent())
    first = dev.lut(pd, 17)
    for g in range(20, 40):
        dev.lut(pd, g)
    assert len(pd._cache.sampled) <= 8 and len(pd._cache.luts_dev) <= 8 and 17 not in pd._cache.sampled
    np.testing.assert_array_equal(dev.lut(pd, 17), first)


def test_kernels_choice_env_default_and_errors(monkeypatch, rendered_bracket):
    monkeypatch.setenv(devmod.KERNELS_ENV, "torch")
    assert Engine(device="cpu", student=CurveStudent()).on_device
    assert not Engine(device="cpu", kernels="auto", student=CurveStudent()).on_device
    monkeypatch.setenv(devmod.KERNELS_ENV, "cuda-ish")
    with pytest.raises(LUTFuseError, match=r"\$LUTFUSE_KERNELS 'cuda-ish'"):
        Engine(device="cpu", student=CurveStudent())
    with pytest.raises(LUTFuseError, match="kernels 'fast'"):
        Engine(device="cpu", kernels="fast", student=CurveStudent())
    monkeypatch.delenv(devmod.KERNELS_ENV)
    # the switch is scoped: inside use_kernels the module functions take the torch path, outside the fast path
    image = np.random.default_rng(1).random((40, 50, 3), dtype=np.float32)
    table = identity_lut(9) ** 0.5
    with devmod.use_kernels("torch"):
        assert devmod.torch_kernels("cpu")
        torch_result = apply_lut(image, table)
    assert not devmod.torch_kernels("cpu")
    assert_close(torch_result, apply_lut(image, table), 1e-5)


def test_auto_device_prefers_cuda_then_mps_then_cpu(monkeypatch):
    for cuda, mps, expected in ((True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")):
        monkeypatch.setattr(torch.cuda, "is_available", lambda cuda=cuda: cuda)
        monkeypatch.setattr(devmod, "mps_available", lambda mps=mps: mps)
        assert pick_device("auto").type == expected
        assert pick_device(None).type == expected
        assert pick_device(" AUTO ").type == expected
    assert pick_device("cpu") == torch.device("cpu")
    with pytest.raises(LUTFuseError, match="no Apple GPU"):
        pick_device("mps")
    with pytest.raises(LUTFuseError, match="no CUDA device"):
        pick_device("cuda")
    with pytest.raises(LUTFuseError, match="tpu"):
        pick_device("tpu")
    with pytest.raises(LUTFuseError, match="unknown device 'gpu0'"):
        pick_device("gpu0")
    assert devmod.describe(torch.device("cpu")).startswith("CPU (")
    assert devmod.describe(torch.device("mps")) == "Apple GPU (MPS)"


def test_mps_grid_sample_3d_is_used_only_where_torch_has_it(monkeypatch):
    monkeypatch.setattr(lutmod, "_NO_GRID_SAMPLE_3D", set())
    mps = torch.device("mps")
    monkeypatch.setattr(torch, "__version__", "2.5.1")
    assert not lutmod._grid_sample_3d_native(mps)
    monkeypatch.setattr(torch, "__version__", "2.9.0+abc")
    assert lutmod._grid_sample_3d_native(mps)
    assert lutmod._grid_sample_3d_native(torch.device("cpu"))


def test_a_missing_3d_grid_sample_falls_back_with_one_note(monkeypatch, rendered_bracket):
    """What a Mac without MPS's grid_sampler_3d does, shown on the CPU: the op raises as MPS's does, the LUT apply
    notes it once and uses the gather trilinear, and the render still matches the CPU path."""
    def missing(*_args, **_kw):
        raise NotImplementedError("The operator 'aten::grid_sampler_3d' is not currently implemented for the "
                                  "MPS device.")

    monkeypatch.setattr(lutmod, "_apply_grid_sample", missing)
    monkeypatch.setattr(lutmod, "_NO_GRID_SAMPLE_3D", set())
    monkeypatch.setattr(devmod, "_noted", set())
    fast = dev = pf = pd = None
    with pytest.warns(RuntimeWarning, match="3-D grid_sample is not available on cpu.*gather"):
        fast, dev, pf, pd = engines(Bracket.from_images(rendered_bracket), student=CurveStudent())
    assert lutmod._NO_GRID_SAMPLE_3D == {"cpu"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # noted once, not per render
        for g in (2, 17, 33, 65, 129):
            assert_close(dev.render(pd, g, 1.0), fast.render(pf, g, 1.0))


@pytest.mark.parametrize("g", [2, 3, 33, 66, 129])
def test_gather_trilinear_equals_grid_sample(g):
    rng = np.random.default_rng(g)
    table = np.clip(identity_lut(g) ** 0.7 + 0.05 * rng.standard_normal((g, g, g, 3)), 0, 1).astype(np.float32)
    image = rng.random((1, 3, 30, 41), dtype=np.float32) * 1.2 - 0.1  # also outside [0, 1]
    image[0, :, 0, 0] = np.nan
    x, t = torch.from_numpy(image), torch.from_numpy(table)
    np.testing.assert_allclose(lutmod._apply_gather(x, t).numpy(), lutmod._apply_grid_sample(x, t).numpy(),
                               atol=2e-6, rtol=0)


@needs_student
def test_float16_render_is_within_one_level_and_bfloat16_is_not_used(shared_data):
    bracket = real_bracket(shared_data)
    fast, half, pf, ph = engines(bracket, precision="float16")
    brain = Engine(device="cpu", kernels="torch", precision="bfloat16", student=fast.student)
    pb = brain.prepare(bracket)
    assert half.dtype == torch.float16 and half.render_tensor(ph, 33, 1.0).dtype == torch.float16
    worst_half = worst_bf16 = 0.0
    for g in (2, 9, 33):
        ref = fast.render(pf, g, 1.0)
        worst_half = max(worst_half, float(np.abs(half.render(ph, g, 1.0) - ref).max()))
        worst_bf16 = max(worst_bf16, float(np.abs(brain.render(pb, g, 1.0) - ref).max()))
    # float16 (what precision=auto picks on a GPU) stays within one 8-bit level; bfloat16's 8-bit mantissa
    # does not, which is why auto never picks it
    assert worst_half <= ONE_LEVEL < worst_bf16


def test_precision_choices(monkeypatch):
    assert devmod.render_dtype("auto", torch.device("cuda"), "auto") == torch.float16
    assert devmod.render_dtype("auto", torch.device("mps"), "auto") == torch.float16
    assert devmod.render_dtype("auto", torch.device("cpu"), "torch") == torch.float32
    assert devmod.render_dtype("float32", torch.device("cuda"), "auto") == torch.float32
    with pytest.raises(LUTFuseError, match="needs the torch kernels"):
        Engine(device="cpu", kernels="auto", precision="float16", student=CurveStudent())
    with pytest.raises(LUTFuseError, match="precision 'double'"):
        Engine(device="cpu", precision="double", student=CurveStudent())


def test_cli_fuse_kernels_torch_matches_auto_and_bad_devices_are_one_line(tmp_path, rendered_bracket, capsys,
                                                                          monkeypatch):
    paths = []
    for i, frame in enumerate(rendered_bracket):
        paths.append(tmp_path / f"f{i}.png")
        cv2.imwrite(str(paths[-1]), np.round(frame[..., ::-1] * 255).astype(np.uint8))
    outs = {}
    device_calls = []
    real_apply_device = lutmod._apply_device
    monkeypatch.setattr(lutmod, "_apply_device", lambda *a: device_calls.append(1) or real_apply_device(*a))
    monkeypatch.delenv(devmod.KERNELS_ENV, raising=False)
    for kernels in ("auto", "torch"):
        outs[kernels] = tmp_path / f"{kernels}.png"
        calls_before = len(device_calls)
        assert main(["fuse", *map(str, paths), "-o", str(outs[kernels]), "--no-align", "--device", "cpu",
                     "--kernels", kernels]) == 0
        # --kernels torch runs the device code path (the 5-D sampler), auto the CPU fast path
        assert (len(device_calls) > calls_before) == (kernels == "torch")
    a, b = (load_image(outs[k])[0] for k in ("auto", "torch"))
    assert float(np.abs(a - b).max()) <= ONE_LEVEL + 1e-6
    # the option is a fusion setting, so batch and presets have it too
    from lutfuse.core.commands.fuse import setting_actions

    assert "kernels" in {a.dest for a in setting_actions()}
    capsys.readouterr()
    missing = "mps" if not devmod.mps_available() else "tpu"
    assert main(["fuse", *map(str, paths), "-o", str(tmp_path / "x.png"), "--device", missing]) == 1
    err = capsys.readouterr().err
    assert f"device '{missing}'" in err
    assert len([line for line in err.splitlines() if "error" in line]) == 1
    assert not (tmp_path / "x.png").exists()


# ---------------------------------------------------------------- CUDA (run by bench/gpu.sh; skipped without CUDA)

def demo_bracket() -> Bracket:
    """The shipped demo bracket (1200×800, three frames): a real-looking bracket that travels with the repository,
    so the CUDA checks need no ../shared/data on the GPU machine."""
    from lutfuse.core.paths import demo_frames

    return load_bracket(demo_frames(), align=False)


@pytest.mark.cuda
@needs_student
def test_cuda_matches_the_cpu_path_at_every_sampled_grid():
    bracket = demo_bracket()
    fast = Engine(device="cpu", kernels="auto")  # the student samples on the CPU here, on the GPU in `gpu`
    pf = fast.prepare(bracket)
    for precision in ("float32", "auto"):
        gpu = Engine(device="cuda", precision=precision)
        pg = gpu.prepare(bracket)
        assert gpu.on_device and gpu.dtype == (torch.float16 if precision == "auto" else torch.float32)
        for g in GRIDS:
            # cuDNN's convolutions use TF32 by default, so the GPU's latent code, and with it the LUT, differ from
            # the CPU's in the last bits; the renders still agree within one level
            np.testing.assert_allclose(gpu.lut(pg, g), fast.lut(pf, g), atol=ONE_LEVEL / 2, rtol=0)
            assert_close(gpu.render(pg, g, 1.0), fast.render(pf, g, 1.0))
            assert_close(gpu.render(pg, g, 1.0, max_side=400), fast.render(pf, g, 1.0, max_side=400))
        tensor = gpu.render_tensor(pg, 33, 1.0)
        assert tensor.is_cuda and tensor.dtype == gpu.dtype


@pytest.mark.cuda
def test_cuda_lut_apply_matches_cpu_for_every_grid_size():
    rng = np.random.default_rng(0)
    image = rng.random((96, 128, 3), dtype=np.float32)
    for g in range(MIN_GRID, MAX_GRID + 1, 7):
        table = np.clip(identity_lut(g) ** 0.6 + 0.03 * rng.standard_normal((g, g, g, 3)), 0, 1).astype(np.float32)
        cpu = apply_lut(image, table)
        x = torch.from_numpy(image).permute(2, 0, 1)[None].cuda()
        for dtype, tol in ((torch.float32, 1e-5), (torch.float16, ONE_LEVEL / 2)):
            out = apply_lut(x.to(dtype), torch.from_numpy(table).cuda())[0].permute(1, 2, 0).float().cpu().numpy()
            assert_close(out, cpu, tol)
        np.testing.assert_allclose(lutmod._apply_gather(x, torch.from_numpy(table).cuda())[0].permute(1, 2, 0)
                                   .cpu().numpy(), cpu, atol=1e-5, rtol=0)
