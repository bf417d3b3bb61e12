"""Binder: repo2docker's generated build steps install Graphviz, the project and the pinned requirements."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def repo2docker():
    exe = Path(sys.executable).with_name("repo2docker")
    if exe.exists():
        return [str(exe)]
    if shutil.which("repo2docker"):
        return ["repo2docker"]
    pytest.skip("jupyter-repo2docker is not installed (make test installs it)")


@pytest.fixture(scope="module")
def dockerfile():
    out = subprocess.run(repo2docker() + ["--no-build", "--debug", str(ROOT)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout + out.stderr


def test_installs_graphviz_from_apt(dockerfile):
    assert "apt-get install --yes --no-install-recommends graphviz" in dockerfile


def test_installs_the_project_and_pinned_requirements(dockerfile):
    assert 'pip install --no-cache-dir -r "binder/requirements.txt"' in dockerfile
    reqs = (ROOT / "binder" / "requirements.txt").read_text().splitlines()
    assert "-e ." in reqs
    pins = [r for r in reqs if r and not r.startswith(("#", "-"))]
    assert pins and all("==" in r for r in pins)


def test_runs_postbuild_and_uses_python_311(dockerfile):
    assert "./binder/postBuild" in dockerfile
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == "python-3.11"
    assert "3.11" in dockerfile
    assert (ROOT / "binder" / "postBuild").stat().st_mode & 0o111


def test_pins_match_what_the_project_needs():
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {d.split(">")[0].split("=")[0].strip().lower() for d in deps}
    pinned = {r.split("==")[0].lower() for r in (ROOT / "binder" / "requirements.txt").read_text().splitlines()
              if "==" in r}
    assert names - {"ipywidgets"} <= pinned  # ipywidgets 8 comes with repo2docker's base environment
