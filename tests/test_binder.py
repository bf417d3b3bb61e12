"""Binder: repo2docker's generated build steps install Graphviz, the project and the pinned requirements.

`repo2docker --no-build --debug <repo>` prints the Dockerfile it would build, with no Docker engine, in
well under a second (notebook-tooling.md §5), so the Binder configuration is checked on every test run.
"""
import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"


@pytest.fixture(scope="module")
def dockerfile():
    if importlib.util.find_spec("repo2docker") is None:
        pytest.skip("jupyter-repo2docker is not importable here (`make test` installs it with the [test] extra)")
    out = subprocess.run([sys.executable, "-m", "repo2docker", "--no-build", "--debug", str(ROOT)],
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "FROM " in out.stdout, "repo2docker printed no Dockerfile"
    return out.stdout + out.stderr


def test_installs_graphviz_from_apt(dockerfile):
    assert (BINDER / "apt.txt").read_text().split() == ["graphviz"]
    assert re.search(r"apt-get install --yes --no-install-recommends[^\n&]*\bgraphviz\b", dockerfile)


def test_installs_the_project_and_pinned_requirements(dockerfile):
    assert 'pip install --no-cache-dir -r "binder/requirements.txt"' in dockerfile
    # "-e ." is resolved against the repository root, which repo2docker copies in before this step
    assert "COPY --chown=0:0 src/ ${REPO_DIR}/" in dockerfile
    assert dockerfile.index("COPY --chown=0:0 src/ ") < dockerfile.index('-r "binder/requirements.txt"')
    reqs = [r.strip() for r in (BINDER / "requirements.txt").read_text().splitlines()]
    assert "-e ." in reqs
    pins = [r for r in reqs if r and not r.startswith(("#", "-"))]
    assert pins and all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*", r) for r in pins), pins


def test_runs_postbuild(dockerfile):
    assert "RUN ./binder/postBuild" in dockerfile
    post = BINDER / "postBuild"
    assert post.stat().st_mode & 0o111, "binder/postBuild must be executable"
    lines = post.read_text().splitlines()
    assert lines[0] == "#!/bin/bash" and "set -ex" in lines
    assert any("labextension disable" in ln and "announcements" in ln for ln in lines)


def test_uses_python_311(dockerfile):
    assert (BINDER / "runtime.txt").read_text().strip() == "python-3.11"
    assert "conda environment for python=3.11" in dockerfile
    assert "environment-2epy-2d3-2e11-2dlinux-2d64-2elock" in dockerfile  # the py3.11 base-env lock file


def test_pins_cover_the_runtime_dependencies():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0].lower() for d in deps}
    pinned = {r.split("==")[0].strip().lower() for r in (BINDER / "requirements.txt").read_text().splitlines()
              if "==" in r and not r.lstrip().startswith("#")}
    # ipywidgets 8.1.7 (and JupyterLab 4.4.9) already come with repo2docker's base environment
    assert names - {"ipywidgets"} <= pinned
