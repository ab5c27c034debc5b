"""LUT student (INR) and teacher: shapes, any K, identity at init, lattice layout, losses, training, shipped weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lutfuse.core.errors import WeightsError
from lutfuse.core.lut import apply_lut, identity_lut
from lutfuse.core.models import lut_student
from lutfuse.core.models.lut_student import LUTStudent, load_student
from lutfuse.core.paths import WEIGHTS


def _perturbed_student(seed: int = 0, scale: float = 0.05) -> LUTStudent:
    """A student whose residual is not zero (random nudges on every parameter), so tests can see the layout."""
    torch.manual_seed(seed)
    model = LUTStudent().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn_like(p))
    return model


@pytest.mark.parametrize("k", [2, 3, 5, 9])
def test_student_any_k_and_shapes(k: int) -> None:
    model = LUTStudent().eval()
    frames = torch.rand(2, k, 3, 70, 90)
    with torch.no_grad():
        latent = model.encode(frames)
        lut = model.sample(latent, 5)
        out = model.query(latent, torch.rand(2, 11, 3))
    assert latent.shape == (2, model.latent_dim)
    assert lut.shape == (2, 5, 5, 5, 3)
    assert out.shape == (2, 11, 3)
    assert torch.isfinite(latent).all()


def test_student_rejects_bad_brackets() -> None:
    model = LUTStudent()
    with pytest.raises(ValueError):
        model.encode(torch.rand(1, 1, 3, 32, 32))
    with pytest.raises(ValueError):
        model.encode(torch.rand(1, 10, 3, 32, 32))
    with pytest.raises(ValueError):
        model.encode(torch.rand(3, 3, 32, 32))


def test_fresh_student_is_identity(rendered_bracket) -> None:
    model = LUTStudent().eval()
    frames = torch.from_numpy(np.stack(rendered_bracket)).permute(0, 3, 1, 2)[None]
    with torch.no_grad():
        lut = model.sample(model.encode(frames), 17)[0].numpy()
    np.testing.assert_allclose(lut, identity_lut(17), atol=1e-6)


def test_sample_layout_matches_query_red_fastest() -> None:
    model = _perturbed_student()
    frames = torch.rand(2, 3, 3, 64, 64)
    with torch.no_grad():
        latent = model.encode(frames)
        for chunk in (None, 50):   # the chunked lattice path must not change values
            lut = model.sample(latent, 7, chunk=chunk, clamp=False)
            nodes = torch.from_numpy(identity_lut(7)).reshape(1, -1, 3).expand(2, -1, -1)
            direct = model.query(latent, nodes, clamp=False).view(2, 7, 7, 7, 3)
            torch.testing.assert_close(lut, direct, atol=1e-5, rtol=1e-5)
        # red varies fastest: entry [b, g, r] answers the colour (r, g, b)
        point = torch.tensor([[[2 / 6, 5 / 6, 1 / 6]]]).expand(2, -1, -1)
        torch.testing.assert_close(model.query(latent, point, clamp=False)[:, 0], lut[:, 1, 5, 2], atol=1e-5, rtol=1e-5)
    assert (lut - torch.from_numpy(identity_lut(7))).abs().max() > 1e-3  # the perturbation shows


def test_sample_clamped_to_unit_range() -> None:
    model = _perturbed_student(scale=0.5)
    with torch.no_grad():
        lut = model.sample(model.encode(torch.rand(1, 2, 3, 40, 40)), 9)
    assert lut.min() >= 0.0 and lut.max() <= 1.0


def test_load_student_errors(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="not found"):
        load_student(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    torch.save({"nope": torch.zeros(1)}, bad)
    with pytest.raises(WeightsError, match="do not fit"):
        load_student(bad)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(WeightsError):
        load_student(junk)


def test_load_student_round_trip(tmp_path: Path) -> None:
    model = _perturbed_student(seed=3)
    path = tmp_path / "s.pt"
    torch.save(model.state_dict(), path)
    loaded = load_student(path)
    frames = torch.rand(1, 3, 3, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(loaded.sample(loaded.encode(frames), 5), model.sample(model.encode(frames), 5))


def test_the_sampler_workers_leave_later_threads_their_torch_thread_count(monkeypatch) -> None:
    import threading

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        # a fresh pool, as the first G > WORKER_GRID sampling of a process makes it
        monkeypatch.setattr(lut_student, "_POOL", None)
        monkeypatch.setattr(lut_student, "_POOL_SIZE", 0)
        pool = lut_student._workers(torch.device("cpu"))
        assert pool is not None
        counts = set(pool.map(lambda _: torch.get_num_threads(), range(8)))
        later: list[int] = []

        def probe() -> None:
            torch.ones(1 << 20).sum()
            later.append(torch.get_num_threads())

        thread = threading.Thread(target=probe)
        thread.start()
        thread.join()
        # the workers run torch on one thread each; a thread started afterwards (a prepare's, an HQ export's)
        # still gets the process's count, not the workers' 1
        assert counts == {1} and later == [2] and torch.get_num_threads() == 2
        pool.shutdown(wait=True)
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------- teacher

from lutfuse.core.models.lut_teacher import LUTTeacher, load_teacher  # noqa: E402
from lutfuse.core.train import losses  # noqa: E402


@pytest.mark.parametrize("k", [2, 3, 7])
def test_teacher_shapes_any_k(k: int) -> None:
    model = LUTTeacher().eval()
    with torch.no_grad():
        out = model(torch.rand(2, k, 3, 50, 60))
    g = model.grid
    assert out["priors"].shape == (2, k, g, g, g, 3)
    assert out["weights"].shape == (2, k, g, g, g, 1)
    assert out["lut"].shape == (2, g, g, g, 3)


def test_teacher_fused_grid_is_convex_combination_of_priors() -> None:
    torch.manual_seed(1)
    model = LUTTeacher().eval()
    with torch.no_grad():
        model.weight_grids.normal_(0, 1.0)       # per-cell weights that really vary
        model.cnn.head.weight.normal_(0, 0.2)
        out = model(torch.rand(1, 3, 3, 64, 64))
    w, priors, lut = out["weights"], out["priors"], out["lut"]
    assert (w >= 0).all()
    torch.testing.assert_close(w.sum(dim=1), torch.ones_like(w.sum(dim=1)))
    assert w.std(dim=(2, 3, 4)).max() > 1e-3   # not one global weight per frame
    torch.testing.assert_close(lut, (w * priors).sum(dim=1))
    lo, hi = priors.min(dim=1).values, priors.max(dim=1).values
    assert (lut >= lo - 1e-6).all() and (lut <= hi + 1e-6).all()


def test_fresh_teacher_is_near_identity() -> None:
    model = LUTTeacher().eval()
    with torch.no_grad():
        lut = model.fuse(torch.rand(1, 2, 3, 64, 64))[0].numpy()
    assert np.abs(lut - identity_lut(model.grid)).max() < 0.05


def test_load_teacher_errors(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="not found"):
        load_teacher(tmp_path / "none.pt")
    bad = tmp_path / "bad.pt"
    torch.save(LUTStudent().state_dict(), bad)
    with pytest.raises(WeightsError, match="do not fit"):
        load_teacher(bad)


# ---------------------------------------------------------------- losses

def test_apply_luts_matches_core_apply_lut() -> None:
    torch.manual_seed(2)
    lut = torch.from_numpy(identity_lut(9)) ** 1.7 + 0.02 * torch.rand(9, 9, 9, 3)
    image = torch.rand(1, 3, 20, 30)
    mine = losses.apply_luts(lut[None], image)
    ref = apply_lut(image.permute(0, 2, 3, 1)[0].numpy().copy(), lut.numpy())
    np.testing.assert_allclose(mine[0].permute(1, 2, 0).numpy(), ref, atol=1e-5)
    pts = torch.rand(1, 40, 3)
    np.testing.assert_allclose(losses.lookup(lut[None], pts)[0].numpy(),
                               apply_lut(pts.numpy().reshape(40, 1, 3), lut.numpy()).reshape(40, 3), atol=1e-5)


def test_ssim_and_l1() -> None:
    torch.manual_seed(3)
    a = torch.rand(2, 3, 32, 32)
    assert losses.ssim_loss(a, a).abs() < 1e-5
    assert losses.l1(a, a) == 0
    noisy = (a + 0.2 * torch.randn_like(a)).clamp(0, 1)
    assert losses.ssim_loss(a, noisy) > 0.1
    assert losses.ssim_loss(a, (a + 0.05 * torch.randn_like(a)).clamp(0, 1)) < losses.ssim_loss(a, noisy)
    with pytest.raises(ValueError):
        losses.ssim(a, a[:, :1])


def test_regulariser_terms() -> None:
    ident = torch.from_numpy(identity_lut(9))[None]
    assert losses.monotonicity(ident) == 0
    assert losses.monotonicity(ident.flip(3)) > 0.01       # red decreasing along r
    assert losses.smoothness(ident) < losses.smoothness(ident + 0.1 * torch.rand_like(ident))


# ---------------------------------------------------------------- training

def _rendered_groups(rendered_bracket) -> list[dict]:
    """Two K groups from the rendered bracket: frames, base (mean) and a 'reference' (the middle frame)."""
    frames3 = torch.from_numpy(np.stack(rendered_bracket)).permute(0, 3, 1, 2).float()
    reference = frames3[1:2]
    groups = []
    for idx in ([0, 2], [0, 1, 2]):
        f = frames3[idx][None]
        groups.append({"frames": f, "base": f.mean(dim=1), "reference": reference})
    return groups


def _value(loss_fn, *args) -> float:
    """A loss function's scalar value without building a graph (the RNG still advances as in a step)."""
    with torch.no_grad():
        return float(loss_fn(*args)[0])


def test_teacher_steps_reduce_loss(rendered_bracket) -> None:
    from lutfuse.core.train.lut_teacher import teacher_loss

    torch.manual_seed(0)
    groups = _rendered_groups(rendered_bracket)
    model = LUTTeacher().eval()   # eval: no dropout, so the loss is a fixed function of the weights
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = _value(teacher_loss, model, groups, 1e-4, 10.0)
    for _ in range(25):
        loss, _ = teacher_loss(model, groups, 1e-4, 10.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert _value(teacher_loss, model, groups, 1e-4, 10.0) < 0.7 * first


@pytest.mark.parametrize("with_teacher", [False, True])
def test_student_steps_reduce_loss(rendered_bracket, with_teacher: bool) -> None:
    import argparse

    from lutfuse.core.train.lut_student import student_loss

    torch.manual_seed(0)
    groups = _rendered_groups(rendered_bracket)
    teacher = LUTTeacher().eval() if with_teacher else None
    args = argparse.Namespace(grid_min=9, grid_max=9, points=256, distill=1.0, tv=1e-3, mono=10.0, no_reg=False,
                              colour=1.0)
    model = LUTStudent()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    first = _value(student_loss, model, teacher, groups, args)
    for _ in range(40):
        loss, _ = student_loss(model, teacher, groups, args)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert _value(student_loss, model, teacher, groups, args) < 0.7 * first


# ---------------------------------------------------------------- shipped weights

@pytest.mark.skipif(not (WEIGHTS / "lut_student.pt").is_file(), reason="no shipped student weights yet")
def test_shipped_student_loads_and_is_monotone_ish(rendered_bracket) -> None:
    model = load_student()
    frames = torch.from_numpy(np.stack(rendered_bracket)).permute(0, 3, 1, 2)[None]
    with torch.no_grad():
        lut = model.sample(model.encode(frames), 33)
    assert lut.shape == (1, 33, 33, 33, 3)
    assert float(losses.monotonicity(lut)) < 1e-3
    # brighter input -> brighter output along the grey diagonal
    diag = lut[0, torch.arange(33), torch.arange(33), torch.arange(33)].mean(dim=-1)
    assert (torch.diff(diag) >= -1e-3).all() and diag[-1] - diag[0] > 0.5
    assert (WEIGHTS / "lut_student.pt").stat().st_size < 5e6


@pytest.mark.skipif(not (WEIGHTS / "lut_teacher.pt").is_file(), reason="no shipped teacher weights yet")
def test_shipped_teacher_loads_and_is_monotone_ish(rendered_bracket) -> None:
    model = load_teacher()
    frames = torch.from_numpy(np.stack(rendered_bracket)).permute(0, 3, 1, 2)[None]
    with torch.no_grad():
        lut = model.fuse(frames)
    assert float(losses.monotonicity(lut)) < 1e-3
    assert (WEIGHTS / "lut_teacher.pt").stat().st_size < 5e6


@pytest.mark.skipif(not (WEIGHTS / "lut_student.pt").is_file(), reason="no shipped student weights yet")
def test_inference_lattice_equals_the_differentiable_one_and_query_on_a_real_bracket(shared_data) -> None:
    # sample() without autograd builds the lattice its own way (identity folded into the output layer's bias, written
    # in place); with autograd it is the plain composition training uses, and query() evaluates single points with
    # no lattice code at all. On a real bracket's latent all three agree to float32 rounding, with several blue
    # slices per chunk, with one, and with parts of one (runs of green rows: chunk=500 at G = 33, chunk=1000 at G = 65;
    # G = 129 is sampled in sparse blocks on the CPU, see test_block_sampler_equals_the_dense_network_on_a_real_bracket)
    from lutfuse.core.bracket import load_bracket

    files = sorted((shared_data / "brackets" / "hdrps" / "Cades_Cove").iterdir())
    images = load_bracket([files[1], files[4], files[7]], align=False).images
    model = load_student()
    frames = torch.from_numpy(images).permute(0, 3, 1, 2)[None]
    with torch.no_grad():
        latent = model.encode(frames)
    with torch.inference_mode():  # sample()'s per-thread scratch made in inference mode serves no_grad calls too
        first = model.sample(latent, 33)
    for g, chunk in ((2, None), (9, None), (33, None), (33, 1089), (33, 500), (65, 1000)):
        with torch.no_grad():
            fast = model.sample(latent, g, chunk=chunk)
        if g == 33:
            assert torch.equal(fast, first)
        slow = model.sample(latent, g, chunk=chunk).detach()  # parameters require grad: the differentiable path
        assert fast.shape == slow.shape == (1, g, g, g, 3)
        assert float((fast - slow).abs().max()) < 1e-6
    # the chunks run on worker threads (each torch-single-threaded) when the caller's torch has several threads, and
    # inline when it has one: the same lattice, and the caller's thread setting is left as it was
    threads = torch.get_num_threads()
    with torch.inference_mode():
        threaded = model.sample(latent, 129)
        torch.set_num_threads(1)
        try:
            inline = model.sample(latent, 129)
        finally:
            torch.set_num_threads(threads)
    assert torch.get_num_threads() == threads
    assert float((threaded - inline).abs().max()) < 1e-6
    with torch.no_grad():
        lut = model.sample(latent, 129)[0]
        nodes = torch.from_numpy(np.random.default_rng(5).integers(0, 129, (3000, 3)))   # (b, g, r) indices
        rgb = nodes.flip(-1).float() / 128
        expected = model.query(latent, rgb[None])[0]
    assert float((lut[nodes[:, 0], nodes[:, 1], nodes[:, 2]] - expected).abs().max()) < 1e-6


def _dense_lattice(model: LUTStudent, latent: torch.Tensor, g: int) -> torch.Tensor:
    """1×G×G×G×3 unclamped lattice from query(): every node through the dense per-point network, no lattice code."""
    ramp = torch.linspace(0.0, 1.0, g)
    blue, green, red = torch.meshgrid(ramp, ramp, ramp, indexing="ij")
    rgb = torch.stack([red, green, blue], dim=-1).view(g, g * g, 3)
    with torch.no_grad():
        parts = [model.query(latent, rgb[b0:b0 + 8].reshape(1, -1, 3), clamp=False)[0] for b0 in range(0, g, 8)]
    return torch.cat(parts).view(1, g, g, g, 3)


@pytest.mark.skipif(not (WEIGHTS / "lut_student.pt").is_file(), reason="no shipped student weights yet")
def test_block_sampler_equals_the_dense_network_on_a_real_bracket(shared_data, monkeypatch) -> None:
    # Above WORKER_GRID the CPU leaves out, block by block, the neurons that are dead over the whole block (and
    # splits the ones alive over all of it): the lattice must still be the dense network's, node for node (measured:
    # 3e-7 at most), at G = 129 and on small grids sent down the same path with blocks from 2³ to 17³ points.
    from lutfuse.core.bracket import load_bracket

    files = sorted((shared_data / "brackets" / "hdrps" / "Cades_Cove").iterdir())
    images = load_bracket([files[1], files[4], files[7]], align=False).images
    model = load_student()
    with torch.no_grad():
        latent = model.encode(torch.from_numpy(images).permute(0, 3, 1, 2)[None])
    with torch.inference_mode():
        lut = model.sample(latent, 129, clamp=False)
    assert float((lut - _dense_lattice(model, latent, 129)).abs().max()) < 1e-5
    monkeypatch.setattr(lut_student, "WORKER_GRID", 2)
    for g, chunk in ((17, None), (17, 8), (33, 125), (9, 27), (5, 1)):
        with torch.inference_mode():
            lut = model.sample(latent, g, chunk=chunk, clamp=False)
        assert float((lut - _dense_lattice(model, latent, g)).abs().max()) < 1e-5, (g, chunk)


@pytest.mark.parametrize("shift", [(0.0, 0.0, 0.0), (30.0, 0.0, 0.0), (-30.0, 0.0, 0.0), (0.0, -30.0, 0.0),
                                   (0.0, 0.0, -30.0), (30.0, 0.0, -30.0)])
def test_block_sampler_where_whole_layers_are_dead_or_alive(shift: tuple[float, float, float], monkeypatch) -> None:
    # Biases that put every first-layer neuron alive (+30: only the separable share of layer 2 is left) or dead
    # (-30: layer 2 sees its bias only), or every layer-2 or layer-3 neuron dead: the empty and the full selections
    # give the dense network's lattice as well, to float rounding (outputs here reach 28: measured 1.2e-6 of that).
    model = _perturbed_student(seed=3)
    with torch.no_grad():
        for layer, delta in zip((model.l1[0], model.l2, model.l3), shift):
            layer.bias.add_(delta)  # type: ignore[operator, union-attr]
        latent = model.encode(torch.rand(1, 3, 3, 40, 40, generator=torch.Generator().manual_seed(1)))
    monkeypatch.setattr(lut_student, "WORKER_GRID", 2)
    for g, chunk in ((17, 64), (12, 27)):
        with torch.inference_mode():
            lut = model.sample(latent, g, chunk=chunk, clamp=False)
        dense = _dense_lattice(model, latent, g)
        assert float((lut - dense).abs().max()) < 1e-5 * max(1.0, float(dense.abs().max())), (g, chunk)
        assert float((dense - _dense_lattice(LUTStudent(), latent, g)).abs().max()) > 0.01  # not the identity
