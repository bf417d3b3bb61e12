"""Binder: repo2docker's generated build steps install Graphviz, the project and the pinned requirements.

`repo2docker --no-build --debug <repo>` prints the Dockerfile it would build, with no Docker engine, in
well under a second, so the Binder configuration is checked on every test run. It is run the way
mybinder.org runs it, with the non-root user the image is built for (jovyan, uid 1000), so the Dockerfile
is the same whoever runs the tests (repo2docker takes the caller's uid otherwise).
"""
import importlib.util
import io
import os
import re
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
USER = ["--user-id", "1000", "--user-name", "jovyan"]  # mybinder.org's user


def _need_repo2docker():
    if importlib.util.find_spec("repo2docker") is None:
        pytest.skip("jupyter-repo2docker is not importable here (`make test` installs it with the [test] extra)")


@pytest.fixture(scope="module")
def dockerfile():
    _need_repo2docker()
    out = subprocess.run([sys.executable, "-m", "repo2docker", "--no-build", "--debug", *USER, str(ROOT)],
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
    assert "COPY --chown=1000:1000 src/ ${REPO_DIR}/" in dockerfile
    assert dockerfile.index("COPY --chown=1000:1000 src/ ") < dockerfile.index('-r "binder/requirements.txt"')
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


def test_builds_for_a_non_root_user(dockerfile):
    assert re.search(r"^USER \$\{NB_USER\}$", dockerfile, re.M)
    assert "--chown=0:0" not in dockerfile


def test_pins_cover_the_runtime_and_course_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + project["optional-dependencies"]["course"]
    names = {re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0].lower() for d in deps}
    pinned = {r.split("==")[0].strip().lower() for r in (BINDER / "requirements.txt").read_text().splitlines()
              if "==" in r and not r.lstrip().startswith("#")}
    # JupyterLab 4.4.9, ipywidgets 8.1.7 and ipykernel already come with repo2docker's base environment
    assert names - {"ipywidgets", "jupyterlab", "ipykernel"} <= pinned


def _rules(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def test_both_dockerignores_say_the_same():
    assert _rules(BINDER / ".dockerignore") == _rules(ROOT / ".dockerignore")
    assert {".venv", ".git", "**/__pycache__"} <= set(_rules(ROOT / ".dockerignore"))


class _Engine:
    """Stands in for the Docker client: keeps the build context repo2docker hands it."""

    def build(self, fileobj, **kw):
        self.context = tarfile.open(fileobj=io.BytesIO(fileobj.read()))
        return iter(())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # repo2docker.app imports pythonjsonlogger's old name
def test_a_local_build_does_not_send_the_venv(monkeypatch):
    """The build context a local `repo2docker .` sends: repo2docker's own code, with the Docker client faked."""
    _need_repo2docker()
    from repo2docker.app import Repo2Docker

    monkeypatch.chdir(ROOT)
    app = Repo2Docker()
    bp = next(B(base_image=app.base_image) for B in app.buildpacks if B(base_image=app.base_image).detect())
    bp.platform = "linux/amd64"  # as Repo2Docker.build sets it
    assert bp.binder_path(".dockerignore") == os.path.join("binder", ".dockerignore")  # the file it reads
    engine = _Engine()
    list(bp.build(engine, "irqlab-test", 0, {"NB_USER": "jovyan", "NB_UID": "1000"}, [], {}))
    members = engine.context.getmembers()
    names = {m.name for m in members}
    assert {"src/pyproject.toml", "src/irqlab/__init__.py", "src/course/00-index.ipynb", "src/binder/postBuild",
            "src/binder/requirements.txt"} <= names
    assert not [n for n in names if n.startswith(("src/.venv", "src/.git/")) or "__pycache__" in n]
    size = sum(m.size for m in members)
    assert size < 30e6, f"the build context is {size / 1e6:.0f} MB"
