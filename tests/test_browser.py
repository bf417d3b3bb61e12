"""Every course notebook in a real JupyterLab (headless Chromium), as a student runs it: Run All, then nothing may
have gone wrong anywhere — no uncaught page error, no console error, nothing in the Log Console, no traceback or
stderr in any cell's output, every image loaded. One server and one browser serve all notebooks.

Screenshots land in test-artifacts/browser/: <notebook>.png (the whole notebook) and <notebook>-NN.png (the
notebook cut into 1400×1000 screens, as a student sees it at 100%). A self-test runs the harness on a throw-away
notebook first, so a failure of the harness is told apart from a failure of the course."""
import os
from pathlib import Path

import nbformat
import pytest

from browser_helper import CHROMIUM, LabBrowser

ROOT = Path(__file__).resolve().parents[1]
ART = ROOT / "test-artifacts" / "browser"
NOTEBOOKS = sorted((ROOT / "course").glob("[0-9][0-9]-*.ipynb"))
pytestmark = [pytest.mark.browser]

if not Path(CHROMIUM).exists() and not os.environ.get("CI"):  # in CI a missing chromium is a failure
    pytestmark.append(pytest.mark.skip(reason=f"{CHROMIUM} missing: `make test` installs it (apt-get install chromium libatomic1)"))

TIMES: dict[str, float] = {}


@pytest.fixture(scope="module")
def lab():
    with LabBrowser(ROOT) as b:
        yield b


def test_browser_smoke_selftest(lab, tmp_path_factory):
    """The harness on a throw-away notebook inside the server's root: a slider, a graphviz diagram, a print."""
    folder = ROOT / "test-artifacts" / "selftest"
    folder.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("import ipywidgets as w\nw.IntSlider(value=3, description='irq')"),
                nbformat.v4.new_code_cell("import graphviz\ng = graphviz.Digraph()\ng.edge('genirq', 'vfio-pci')\n"
                                          "g.edge('vfio-pci', 'eventfd')\ng.edge('eventfd', 'KVM irqfd')\ng"),
                nbformat.v4.new_code_cell("print('sum', sum(range(5)))")]
    path = folder / "selftest.ipynb"
    nbformat.write(nb, path)

    def slider_reads_3(page, found):
        assert page.locator(".jp-OutputArea-output .widget-slider .widget-readout").first.inner_text().strip() == "3"
        assert "sum 10" in page.locator(".jp-OutputArea-output").last.inner_text()

    found = lab.run_notebook(path, ART / "selftest.png", slider_reads_3)
    assert found["svg_images"] >= 1 and found["widgets"] >= 1 and found["cells"] == 3, found
    assert found["errors"] == [], found["errors"]


def test_the_harness_sees_an_error_in_a_cell(lab):
    """A notebook whose cell raises must be reported (else a clean run proves nothing)."""
    folder = ROOT / "test-artifacts" / "selftest"
    folder.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("import sys\nprint('oops', file=sys.stderr)")]
    path = folder / "stderr.ipynb"
    nbformat.write(nb, path)
    found = lab.run_notebook(path, ART / "selftest-stderr.png")
    assert any("oops" in e for e in found["errors"]), found


def test_the_harness_reads_the_log_console(lab):
    """Output that belongs to no cell (a widget callback's print) lands in the Log Console: it must be reported."""
    folder = ROOT / "test-artifacts" / "selftest"
    folder.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("import ipywidgets as w\nb = w.Button(description='press')\n"
                                          "b.on_click(lambda _: print('pressed, no cell to print in'))\nb")]
    path = folder / "logconsole.ipynb"
    nbformat.write(nb, path)

    def press(page, found):
        page.locator(".jp-OutputArea-output button", has_text="press").click()
        page.wait_for_timeout(1000)

    found = lab.run_notebook(path, ART / "selftest-logconsole.png", press)
    assert any("pressed, no cell" in e for e in found["errors"]), found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_course_notebook_runs_clean_in_jupyterlab(lab, path):
    found = lab.run_notebook(path, ART / f"{path.stem}.png", pieces=True)
    TIMES[path.name] = found["seconds"]["cells_done"] - found["seconds"]["kernel_idle"]
    print(f"{path.name}: {found['cells']} code cells, {found['svg_images']} diagrams, {found['widgets']} widgets, "
          f"Run All {TIMES[path.name]:.1f} s, {len(found['pieces'])} screenshots")
    assert found["errors"] == [], "\n".join(found["errors"])
    assert found["cells"] > 0


def test_the_course_maps_links_open_a_notebook_and_the_glossary(lab):
    """issue 13: the map's "solutions" link opened "File Load Error ... is a directory". Clicking it must open the
    solutions' copy of the map, and the glossary link the glossary, with no dialog."""
    opened = {}

    def click_links(page, found):
        for text, want in (("solutions copy of this map", "00-index.ipynb"), ("glossary", "glossary.md")):
            before = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab").count()
            page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-MarkdownOutput a", has_text=text).first.click()
            page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab").nth(before).wait_for(timeout=30_000)
            page.wait_for_timeout(1000)
            current = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current").inner_text().strip()
            opened[text] = (current, page.locator(".jp-Dialog").count())
            assert current == want and opened[text][1] == 0, opened

    found = lab.run_notebook(ROOT / "course" / "00-index.ipynb", ART / "00-index-links.png", click_links)
    assert set(opened) == {"solutions copy of this map", "glossary"}
    assert found["errors"] == [], "\n".join(found["errors"])


def test_whole_course_in_the_browser(capsys):
    if len(TIMES) < len(NOTEBOOKS):
        pytest.skip("measured only when every notebook ran in this session")
    with capsys.disabled():
        print("\n[browser Run All] " + ", ".join(f"{k} {v:.1f}s" for k, v in TIMES.items())
              + f"; total {sum(TIMES.values()):.1f} s")
