"""Tampered or corrupt weights are refused in one line naming the file, never with torch's advice to load them
unsafely; every loader in core goes through core.weights."""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from lutfuse.core.errors import WeightsError
from lutfuse.core.models.lut_student import LUTStudent, load_student
from lutfuse.core.models.lut_teacher import load_teacher
from lutfuse.core.weights import SHIPPED, load_checkpoint, load_state_dict, shipped

REPO = Path(__file__).resolve().parent.parent


class Payload:
    """What a tampered file would carry: an object whose unpickling runs code."""

    def __reduce__(self):  # noqa: ANN204
        return (os.system, ("touch /tmp/lutfuse-tampered-weights-ran",))


def corrupt_files(tmp_path: Path) -> dict[str, Path]:
    """One file of each kind of bad weights: tampered pickle, truncated, junk, empty, wrong content, NaN."""
    good = tmp_path / "good.pt"
    torch.save(LUTStudent().state_dict(), good)
    files = {}
    files["tampered"] = tmp_path / "tampered.pt"
    torch.save({"w": torch.zeros(1), "evil": Payload()}, files["tampered"], pickle_module=pickle)
    files["truncated"] = tmp_path / "truncated.pt"
    files["truncated"].write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    files["junk"] = tmp_path / "junk.pt"
    files["junk"].write_bytes(b"\x80\x04not really a pickle" * 10)
    files["empty"] = tmp_path / "empty.pt"
    files["empty"].write_bytes(b"")
    files["list"] = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], files["list"])
    files["nan"] = tmp_path / "nan.pt"
    state = LUTStudent().state_dict()
    first = next(iter(state))
    state[first] = torch.full_like(state[first], float("nan"))
    torch.save(state, files["nan"])
    return files


@pytest.mark.parametrize("kind", ["tampered", "truncated", "junk", "empty", "list", "nan"])
def test_bad_weights_are_refused_in_one_line_naming_the_file(tmp_path: Path, kind: str) -> None:
    path = corrupt_files(tmp_path)[kind]
    with warnings.catch_warnings(record=True) as caught, pytest.raises(WeightsError) as info:
        warnings.simplefilter("always")
        load_student(path)
    assert [str(w.message) for w in caught] == []  # no torch chatter around the one line
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert "weights_only" not in message and "pickle" not in message.lower()  # no advice to load it unsafely
    assert not Path("/tmp/lutfuse-tampered-weights-ran").exists()
    assert info.value.__cause__ is None  # torch's own exception (and its advice) is not chained into tracebacks


def test_wrong_keys_and_shapes_are_named(tmp_path: Path) -> None:
    state = LUTStudent().state_dict()
    name = next(k for k, v in state.items() if v.ndim >= 2)
    state[name] = torch.zeros(3, 3)
    bad_shape = tmp_path / "shape.pt"
    torch.save(state, bad_shape)
    with pytest.raises(WeightsError, match=rf"shape\.pt: weights do not fit the LUT student \({re.escape(name)} "
                                           r"has shape \(3, 3\)"):
        load_student(bad_shape)
    teacher_file = tmp_path / "student_as_teacher.pt"
    torch.save(LUTStudent().state_dict(), teacher_file)
    with pytest.raises(WeightsError, match=r"student_as_teacher\.pt: weights do not fit the LUT teacher \("):
        load_teacher(teacher_file)


def test_fifo_and_folder_are_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "w.pt"
    os.mkfifo(fifo)
    with pytest.raises(WeightsError, match=r"w\.pt: LUT student weights must be a regular file"):
        load_student(fifo)
    with pytest.raises(WeightsError, match="must be a regular file"):
        load_state_dict(tmp_path)


def test_shipped_weights_load_through_the_checked_loader() -> None:
    for model in SHIPPED:
        state = load_state_dict(shipped(model), model)
        assert state and all(isinstance(v, torch.Tensor) for v in state.values())


def test_checkpoints_use_the_same_safe_loader(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": LUTStudent().state_dict(), "step": 5}, path)
    assert load_checkpoint(path)["step"] == 5
    with pytest.raises(WeightsError, match=r"truncated\.pt: not a valid training checkpoint weights file"):
        load_checkpoint(corrupt_files(tmp_path)["truncated"])


def test_no_other_torch_load_in_the_package() -> None:
    callers = subprocess.run(["grep", "-rln", "torch.load(", str(REPO / "core"), str(REPO / "app")],
                             capture_output=True, text=True).stdout.split()
    assert [Path(p).relative_to(REPO).as_posix() for p in callers] == ["core/weights.py"]


def test_cli_with_tampered_student_exits_1_with_one_line(tmp_path: Path, rendered_bracket) -> None:
    import numpy as np
    from PIL import Image

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(rendered_bracket):
        Image.fromarray((frame * 255).round().astype(np.uint8)).save(folder / f"{i}.png")
    weights = tmp_path / "weights"
    weights.mkdir()
    bad = corrupt_files(tmp_path)["tampered"]
    (weights / "lut_student.pt").write_bytes(bad.read_bytes())
    out = tmp_path / "out.png"
    env = dict(os.environ, LUTFUSE_RESOURCES=str(tmp_path))
    result = subprocess.run([sys.executable, "-m", "lutfuse", "fuse", str(folder), "-o", str(out)],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 1
    lines = [line for line in result.stderr.replace("\r", "\n").splitlines() if line.strip()]
    assert lines[-1].startswith("lutfuse fuse: error: ") and "lut_student.pt" in lines[-1]
    assert "Traceback" not in result.stderr and "weights_only" not in result.stderr
    assert not out.exists()


# ---------------------------------------------------------------- architectures saved beside the weights

def _count(state: dict, prefix: str) -> int:
    return sum(1 for k in state if k.startswith(prefix) and k.endswith(".weight"))


def _guessed(name: str, state: dict) -> torch.nn.Module:
    """How the networks were built before their architectures were saved: the LUT networks with the class
    defaults, the HQ networks with sizes read from tensor shapes. Kept here only to prove the saved configs
    build the very same networks."""
    from lutfuse.core.models.lut_teacher import LUTTeacher
    from lutfuse.core.models.refine import AMNet, Phase1UNet

    if name == "LUT student":
        return LUTStudent()
    if name == "LUT teacher":
        return LUTTeacher()
    if name == "HQ phase 1":
        return Phase1UNet(width=state["enc_under.head.0.weight"].shape[0], layers=_count(state, "dense.0.layers."))
    return AMNet(width=state["shared.0.weight"].shape[0], growth=state["dense.0.layers.0.weight"].shape[0],
                 layers=_count(state, "dense.0.layers."))


def _outputs(name: str, model: torch.nn.Module) -> list[torch.Tensor]:
    """The network's outputs on a fixed input (seeded), as its caller uses it."""
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        if name == "LUT student":
            latent = model.encode(torch.rand(1, 3, 3, 64, 64, generator=gen))
            return [latent, model.sample(latent, 9)]
        if name == "LUT teacher":
            return [model.fuse(torch.rand(1, 2, 3, 64, 64, generator=gen))]
        frames = [torch.rand(1, 3, 48, 64, generator=gen) for _ in range(4)]
        return [model(*frames[:2])] if name == "HQ phase 1" else [model(*frames)]


@pytest.mark.parametrize("name", list(SHIPPED))
def test_shipped_architectures_are_saved_beside_the_weights(name: str) -> None:
    from lutfuse.core.weights import config_path, load_model, read_config

    path = shipped(name)
    state = load_state_dict(path, name)
    old = _guessed(name, state)
    old.load_state_dict(state)
    old.eval()
    doc = json.loads(config_path(path).read_text())
    assert doc["architecture"] == type(old).__name__
    new = load_model(type(old), path, name)
    assert read_config(path, type(old).__name__) == doc["config"] == json.loads(json.dumps(old.config))
    for a, b in zip(_outputs(name, old), _outputs(name, new)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_save_weights_round_trip_and_bad_configs(tmp_path: Path) -> None:
    from lutfuse.core.models.refine import AMNet, Phase1UNet
    from lutfuse.core.weights import config_path, load_model, save_weights

    torch.manual_seed(3)
    net = AMNet(width=8, growth=6, layers=2, dilation=3)
    path = save_weights(net, tmp_path / "net.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.json", "net.pt"]  # no temporary left behind
    back = load_model(AMNet, path, "phase 2")
    assert back.config == net.config and not back.training
    frames = [torch.rand(1, 3, 32, 32) for _ in range(4)]
    with torch.no_grad():
        torch.testing.assert_close(back(*frames), net.eval()(*frames), rtol=0, atol=0)
    # the architecture is read, never guessed: without it the class defaults do not fit, in one line
    config_path(path).unlink()
    with pytest.raises(WeightsError, match=r"net\.pt: weights do not fit the phase 2"):
        load_model(AMNet, path, "phase 2")
    save_weights(net, path)
    with pytest.raises(WeightsError, match=r"net\.json: describes a 'AMNet' network"):
        load_model(Phase1UNet, path, "phase 1")
    config_path(path).write_text('{"architecture": "AMNet", "config": {"width": 8, "depth": 3}}')
    with pytest.raises(WeightsError, match=r"net\.json: not a valid phase 2 architecture"):
        load_model(AMNet, path, "phase 2")
    config_path(path).write_text("{not json")
    with pytest.raises(WeightsError, match=r"net\.json: not a readable phase 2 architecture file"):
        load_model(AMNet, path, "phase 2")
