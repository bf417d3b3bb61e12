"""Notebooks are committed clean: valid nbformat v4, no outputs, no execution counts, no widget state,
and the "python3" kernelspec (so JupyterLab never asks "Select Kernel"; docs/course.md)."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

COURSE = Path(__file__).resolve().parents[1] / "course"
ALL = sorted(p for p in COURSE.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def test_the_course_folder_exists():
    assert COURSE.is_dir(), f"{COURSE} is missing"


@pytest.mark.parametrize("path", ALL, ids=lambda p: str(p.relative_to(COURSE)))
def test_committed_clean(path):
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert raw.get("nbformat") == 4, f"{path.name}: nbformat {raw.get('nbformat')}, expected 4"
    nb = nbformat.reads(json.dumps(raw), as_version=nbformat.NO_CONVERT)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", f"{path.name}: kernelspec is not python3"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs, f"{path.name} cell {i} has outputs: run `make strip`"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count: run `make strip`"
    assert "widgets" not in nb.metadata, f"{path.name} carries widget state: run `make strip`"


def test_nbstripout_verify():
    exe = Path(sys.executable).with_name("nbstripout")
    exe = str(exe) if exe.exists() else shutil.which("nbstripout")
    if not exe:
        pytest.skip("nbstripout is not installed (`make test` installs it with the [test] extra)")
    if not ALL:
        pytest.skip("no notebooks in course/ yet")
    r = subprocess.run([exe, "--verify", *map(str, ALL)], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, (r.stdout + r.stderr)[-2000:] + "\nrun `make strip`"


def _build_module():
    """course/_build.py, imported by path (course/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("course_build", COURSE / "_build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_a_rebuild_from_the_sources_equals_the_commit():
    """course/*.ipynb, course/solutions/*.ipynb and glossary.md are what course/_build.py makes of course/src/."""
    pytest.importorskip("jupytext", reason="jupytext reads the notebook sources (the [test] extra installs it)")
    bad = _build_module().stale()
    assert not bad, "out of date with course/src/ (run python course/_build.py): " + ", ".join(bad)


def test_every_notebook_has_one_source_and_the_sources_are_canonical():
    """One MyST source per notebook, in the form jupytext writes it (so saving it from JupyterLab changes nothing)."""
    jupytext = pytest.importorskip("jupytext")
    srcs = sorted((COURSE / "src").glob("*.md"))
    assert [p.stem for p in srcs] == [p.stem for p in sorted(COURSE.glob("[0-9][0-9]-*.ipynb"))]
    version_line = re.compile(r"^\s*(format_version|jupytext_version):.*\n", re.M)
    for p in srcs:
        text = p.read_text(encoding="utf-8")
        again = jupytext.writes(jupytext.read(p, fmt="md:myst"), "md:myst")
        assert version_line.sub("", again) == version_line.sub("", text), f"{p.name} is not in jupytext's MyST form"


LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("path", ALL, ids=lambda p: str(p.relative_to(COURSE)))
def test_every_relative_link_opens_a_file(path):
    """A link JupyterLab opens must name a file: a folder gives "File Load Error ... is a directory"."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        text = re.sub(r"`[^`]*`", "", "".join(cell["source"]))  # `vfio-msi[0](0000:03:00.0)` is no link
        for target in LINK.findall(text):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            file = (path.parent / target.split("#")[0]).resolve()
            assert file.is_file(), f"{path.name} cell {i}: link {target!r} opens {'a folder' if file.is_dir() else 'nothing'}"


@pytest.mark.parametrize("path", [p for p in ALL if p.parent == COURSE], ids=lambda p: p.name)
def test_no_code_line_runs_past_the_cell(path):
    """JupyterLab does not wrap code: at 1400 px with the file browser open a cell shows ~115 columns."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            for line in "".join(cell["source"]).splitlines():
                assert len(line) <= 115, f"{path.name} cell {i}: {len(line)} columns: {line[:60]}…"
