"""JupyterLab in a real headless Chromium: the first course notebook runs through the UI and shows its
diagram and widget, with no error; screenshots land in test-artifacts/browser/."""
from pathlib import Path

import nbformat
import pytest

from browser_helper import CHROMIUM, open_and_run

ROOT = Path(__file__).resolve().parents[1]
ART = ROOT / "test-artifacts" / "browser"
pytestmark = [pytest.mark.browser]

if not Path(CHROMIUM).exists():  # make test installs it; say so rather than pass silently
    pytestmark.append(pytest.mark.skip(reason=f"{CHROMIUM} missing: run `make test` (it installs chromium)"))


def test_harness_selftest(tmp_path):
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("import ipywidgets as w\nw.IntSlider(value=3)"),
                nbformat.v4.new_code_cell("import graphviz\ng = graphviz.Digraph()\ng.edge('genirq', 'vfio')\ng"),
                nbformat.v4.new_code_cell("print('sum', sum(range(5)))")]
    path = tmp_path / "selftest.ipynb"
    nbformat.write(nb, path)
    found = open_and_run(path, ART / "selftest.png")
    assert found["svg_images"] >= 1 and found["widgets"] >= 1 and found["stderr_outputs"] == 0


def test_first_course_notebook_in_jupyterlab():
    nb = ROOT / "course" / "01-switchboard.ipynb"
    assert nb.exists(), "course/01-switchboard.ipynb is missing"
    found = open_and_run(nb, ART / "01-switchboard.png", root=ROOT)
    assert found["svg_images"] >= 1, found
    assert found["widgets"] >= 1, found
    assert found["stderr_outputs"] == 0, found
