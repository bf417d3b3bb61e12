"""The three widgets rendered in a real JupyterLab (headless Chromium): screenshots of each, and checks
that they drew (the stepper's diagram and hop, the board's /proc table, the explorer's plot)."""
from pathlib import Path

import nbformat
import pytest

from browser_helper import CHROMIUM, open_and_run

ROOT = Path(__file__).resolve().parents[1]
ART = ROOT / "test-artifacts" / "widgets"
pytestmark = [pytest.mark.browser]
if not Path(CHROMIUM).exists():
    pytestmark.append(pytest.mark.skip(reason=f"{CHROMIUM} missing: run `make test` (it installs chromium)"))

CELLS = [
    "import irqlab\nfrom irqlab import widgets, scenarios\nhost = scenarios.switchboard()",
    "stepper = widgets.journey_stepper(host)\nstepper.source.value = ('msi', '0000:03:00.0', 0)\n"
    "stepper.step.value = 9\nstepper.add_class('irqlab-stepper')\nstepper",
    "board = widgets.registration_board(scenarios.switchboard())\nboard.action.value = 'request_irq'\n"
    "board.fields['irq'].value = 29\nboard.apply_button.click()\nboard.add_class('irqlab-board')\nboard",
    "explorer = widgets.storm_explorer()\nexplorer.add_class('irqlab-explorer')\nexplorer",
]


def test_three_widgets_render_in_jupyterlab(tmp_path):
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell(c) for c in CELLS]
    path = tmp_path / "widgets.ipynb"
    nbformat.write(nb, path)
    seen = {}

    def shots(page, found):
        for cls in ("irqlab-stepper", "irqlab-board", "irqlab-explorer"):
            el = page.locator(f".{cls}").first
            el.scroll_into_view_if_needed()
            page.wait_for_timeout(500)
            el.screenshot(path=str(ART / f"{cls}.png"))
            seen[cls] = el.inner_text()
        seen["stepper_svg"] = page.locator(".irqlab-stepper svg").count()
        seen["explorer_img"] = page.locator(".irqlab-explorer img, .irqlab-explorer .jp-RenderedImage").count()

    ART.mkdir(parents=True, exist_ok=True)
    found = open_and_run(path, ART / "widgets-notebook.png", extra_asserts=shots)
    assert found["stderr_outputs"] == 0
    assert "hop 10 of" in seen["irqlab-stepper"] and seen["stepper_svg"] >= 1
    assert "EBUSY" in seen["irqlab-board"] and "/proc/interrupts" in seen["irqlab-board"]
    assert "interrupts, engine vector" in seen["irqlab-explorer"] and seen["explorer_img"] >= 1
