"""`lutfuse batch --engine ray`: the same files as the local run, from Ray tasks on a local 2-CPU Ray instance.

Skipped where Ray is not installed (it is the optional extra `lutfuse[cluster]`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import expose, render_scene
from test_batch import build_shoot

from lutfuse.core.cli import main


def test_ray_writes_the_same_files_as_the_local_run(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    folder = tmp_path / "card"
    folder.mkdir()
    brackets = [[expose(render_scene(64, 96, seed=s), ev) for ev in (-3.0, -1.0, 1.0)] for s in range(3)]
    groups = build_shoot(folder, brackets, [[-2.0, 0.0, 2.0]] * 3, seed=None)  # name order = shooting order
    (groups[2][0]).write_bytes(b"not a jpeg")  # a bad bracket is reported from the worker, the rest goes on
    local, ray = tmp_path / "local", tmp_path / "ray"
    assert main(["batch", str(folder), "-o", str(local), "--grid", "17", "--group", "3",
                 "--summary", str(tmp_path / "a.csv")]) == 1
    assert main(["batch", str(folder), "-o", str(ray), "--grid", "17", "--group", "3", "--engine", "ray",
                 "--summary", str(tmp_path / "b.csv")]) == 1
    names = sorted(p.name for p in local.iterdir())
    assert len(names) == 2 and names == sorted(p.name for p in ray.iterdir())
    for name in names:
        assert (local / name).read_bytes() == (ray / name).read_bytes()
    a = (tmp_path / "a.csv").read_text().splitlines()
    b = (tmp_path / "b.csv").read_text().splitlines()
    assert [line.split(",")[1] for line in a] == [line.split(",")[1] for line in b]
    assert "failed" in b[3] and "not a jpeg" not in b[3] and groups[2][0].name in b[3]
