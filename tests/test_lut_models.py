"""LUT student (INR) and teacher: shapes, any K, identity at init, lattice layout, losses, training, shipped weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import WeightsError
from core.lut import apply_lut, identity_lut
from core.models.lut_student import LUTStudent, load_student
from core.paths import WEIGHTS


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
