"""JupyterLab in a real headless Chromium: a course notebook runs through the UI and shows its diagram and
widget, with no error output. Screenshots land in test-artifacts/browser/<notebook>.png.

The self-test runs the harness on a throw-away notebook (slider + graphviz + print), so a failure of the
harness itself is told apart from a failure of the course."""
import os
from pathlib import Path

import nbformat
import pytest

from browser_helper import CHROMIUM, open_and_run

ROOT = Path(__file__).resolve().parents[1]
ART = ROOT / "test-artifacts" / "browser"
pytestmark = [pytest.mark.browser]

if not Path(CHROMIUM).exists() and not os.environ.get("CI"):  # in CI a missing chromium is a failure
    pytestmark.append(pytest.mark.skip(reason=f"{CHROMIUM} missing: `make test` installs it (apt-get install chromium libatomic1)"))


def assert_rendered(found: dict) -> None:
    assert found["svg_images"] >= 1, f"no graphviz SVG image loaded: {found}"
    assert found["widgets"] >= 1, f"no widget view visible: {found}"
    assert found["stderr_outputs"] == 0, f"stderr/traceback outputs: {found}"


def test_browser_smoke_selftest(tmp_path):
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("import ipywidgets as w\nw.IntSlider(value=3, description='irq')"),
                nbformat.v4.new_code_cell("import graphviz\ng = graphviz.Digraph()\ng.edge('genirq', 'vfio-pci')\n"
                                          "g.edge('vfio-pci', 'eventfd')\ng.edge('eventfd', 'KVM irqfd')\ng"),
                nbformat.v4.new_code_cell("print('sum', sum(range(5)))")]
    path = tmp_path / "selftest.ipynb"
    nbformat.write(nb, path)

    def slider_reads_3(page, found):
        assert page.locator(".jp-OutputArea-output .widget-slider .widget-readout").first.inner_text().strip() == "3"
        assert "sum 10" in page.locator(".jp-OutputArea-output").last.inner_text()

    found = open_and_run(path, ART / "selftest.png", slider_reads_3)
    print(f"browser selftest: {found['seconds']}")
    assert_rendered(found)
    assert found["cells"] == 3


def test_first_course_notebook_in_jupyterlab():
    nb = ROOT / "course" / "01-switchboard.ipynb"
    if not nb.exists():
        pytest.skip("course/01-switchboard.ipynb does not exist yet")
    found = open_and_run(nb, ART / "01-switchboard.png", root=ROOT)
    print(f"01-switchboard in JupyterLab: {found['seconds']}")
    assert_rendered(found)
