"""The package: one import name (lutfuse), resources found as package data, entry points, architecture doc true.

CI runs the suite twice: against the editable checkout and against the built wheel installed in the venv
(LUTFUSE_EXPECT_INSTALLED=1), where these tests prove the wheel carries what the program needs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import lutfuse
from lutfuse.core import paths

REPO = Path(__file__).resolve().parent.parent


def test_one_import_name_and_version():
    import lutfuse.app
    import lutfuse.core

    assert Path(lutfuse.core.__file__).parent.parent == Path(lutfuse.__file__).parent
    assert Path(lutfuse.app.__file__).parent.parent == Path(lutfuse.__file__).parent
    assert re.fullmatch(r"\d+\.\d+\.\d+", lutfuse.__version__)
    assert lutfuse.core.__version__ == lutfuse.__version__


def test_resources_are_package_data():
    assert paths.RESOURCES == Path(lutfuse.__file__).parent / "resources" or "LUTFUSE_RESOURCES" in os.environ
    for name in ("lut_student", "lut_teacher", "refine_phase1", "refine_phase2"):
        assert (paths.WEIGHTS / f"{name}.pt").is_file(), name
        assert (paths.WEIGHTS / f"{name}.md").is_file(), f"{name}: the model card ships beside the weights"
    assert len(paths.demo_frames()) >= 2


def test_installed_wheel_is_not_the_checkout():
    if os.environ.get("LUTFUSE_EXPECT_INSTALLED") != "1":
        return  # the editable run: the checkout is the package
    package = Path(lutfuse.__file__).resolve().parent
    assert package != REPO and "site-packages" in package.parts, package


def test_python_m_lutfuse_version(tmp_path):
    done = subprocess.run([sys.executable, "-m", "lutfuse", "--version"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"lutfuse {lutfuse.__version__}"


def test_architecture_doc_names_existing_modules():
    """Every `core/...py` or `app/...py` path that docs/ARCHITECTURE.md names exists in the package."""
    doc = REPO / "docs" / "ARCHITECTURE.md"
    names = set(re.findall(r"`((?:core|app)/[\w/]+\.py)`", doc.read_text(encoding="utf-8")))
    assert len(names) > 10
    root = Path(lutfuse.__file__).parent
    missing = sorted(n for n in names if not (root / n).is_file())
    assert not missing, f"docs/ARCHITECTURE.md names modules that do not exist: {missing}"


def test_the_readme_set_up_leaves_the_checkout_clean():
    """What the README's set-up line writes into the checkout (the demo fusion) is ignored by git."""
    import pytest

    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    readme = (REPO / "README.md").read_text()
    setup = readme.split("## Set up and try it", 1)[1].split("```", 2)[1]
    written = re.findall(r"-o (\S+)", setup)
    assert "demo-fused.jpg" in written
    for name in written:
        done = subprocess.run(["git", "check-ignore", "-q", "--no-index", name], cwd=REPO)
        assert done.returncode == 0, f"{name} is not ignored"
