"""The widgets and diagrams in a real JupyterLab (headless Chromium, 1400x1000, one server for all checks).

Checks what a student sees: every diagram's text is >= 11 px on screen (SVG font-size x displayed scale,
static <img> diagrams and the widgets' inline ones), each widget's diagram fits with its controls in one
screen, and every control survives bad values and rapid clicks with no error anywhere — page errors, the
Log Console, cell outputs. Screenshots of each widget and diagram land in test-artifacts/widgets/.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from browser_helper import ARGS, CHROMIUM, KERNEL_IDLE, STDERR, JupyterLab
from irqlab.widgets import EXPLORER_SCENARIOS

ROOT = Path(__file__).resolve().parents[1]
ART = ROOT / "test-artifacts" / "widgets"
pytestmark = [pytest.mark.browser]
if not Path(CHROMIUM).exists():
    pytestmark.append(pytest.mark.skip(reason=f"{CHROMIUM} missing: run `make test` (it installs chromium)"))

MIN_PX = 11

CELLS = [
    "import irqlab\nfrom irqlab import scenarios, viz, widgets\nfrom IPython.display import display",
    # the static diagrams of the course (00, 01, 04, 05, 08, 09 draw these machines)
    "sb = scenarios.switchboard()\ngpu = sb.raise_msi('0000:03:00.0', 0)\nsb.run()\n"
    "display(viz.host_diagram(scenarios.switchboard()))\ndisplay(viz.journey_diagram(sb, gpu))",
    "si = scenarios.shared_intx()\nj6 = si.raise_intx('0000:04:00.0')\nsi.run()\ndisplay(viz.journey_diagram(si, j6))\n"
    "nic = scenarios.msix_nic()\nj5 = nic.raise_msi('0000:01:00.0', 1)\nnic.run()\ndisplay(viz.journey_diagram(nic, j5))",
    "pn = scenarios.posted_nic(2)\nj8 = pn.raise_msi('0000:01:00.0', 0)\npn.run()\ndisplay(viz.journey_diagram(pn, j8))\n"
    "nine = scenarios.shared_intx()\nnine.add_pci_device('0000:01:00.0', name='nic', msix=2)\n"
    "scenarios.passthrough_msix(nine, nine.scenario.vm, '0000:01:00.0', 2, first_gsi=30)\nviz.host_diagram(nine)",
    "st1 = widgets.journey_stepper(sb)\nst1.add_class('w-stepper-01')\nst1",
    "st6 = widgets.journey_stepper(scenario='shared_intx')\nst6.add_class('w-stepper-06')\nst6",
    "st8 = widgets.journey_stepper(scenario='posted_nic')\nst8.add_class('w-stepper-08')\nst8",
    "board = widgets.registration_board(scenarios.switchboard())\nboard.add_class('w-board')\nboard",
    "explorer = widgets.storm_explorer()\nexplorer.add_class('w-explorer')\nexplorer",
    "print('host still usable:', len(board.host.proc_interrupts()) > 0, len(explorer.report.result))",
]

# font px of every diagram: SVG font-size x (the graph's own scale) x (rendered width / viewBox width)
MEASURE = r"""
() => {
  const out = [];
  const gscale = (svg) => { const g = svg.querySelector("g.graph, g#graph0"); const t = g && g.getAttribute("transform") || "";
                            const m = /scale\(([\d.]+)/.exec(t); return m ? parseFloat(m[1]) : 1; };
  const vbw = (svg) => { const vb = (svg.getAttribute("viewBox") || "").split(/[ ,]+/).map(Number);
                         return vb.length == 4 ? vb[2] : parseFloat(svg.getAttribute("width")); };
  const minFont = (svg) => Math.min(...[...svg.querySelectorAll("text")].map(
      t => parseFloat(t.getAttribute("font-size") || "14")));
  const where = (el) => { const c = el.closest(".jp-Cell");
                          return [...document.querySelectorAll(".jp-Notebook .jp-Cell")].indexOf(c); };
  for (const img of document.querySelectorAll(".jp-OutputArea-output img[src^='data:image/svg+xml']")) {
    const src = img.getAttribute("src");
    const txt = src.includes(";base64,") ? atob(src.split(";base64,")[1]) : decodeURIComponent(src.split(",").slice(1).join(","));
    const svg = new DOMParser().parseFromString(txt, "image/svg+xml").documentElement;
    const r = img.getBoundingClientRect();
    out.push({kind: "img", cell: where(img), w: r.width, h: r.height, px: minFont(svg) * gscale(svg) * r.width / vbw(svg)});
  }
  for (const svg of document.querySelectorAll(".jp-OutputArea-output .jupyter-widgets svg")) {
    if (!svg.querySelector("text")) continue;
    const r = svg.getBoundingClientRect();
    if (!r.width) continue;
    out.push({kind: "widget", cell: where(svg), w: r.width, h: r.height, px: minFont(svg) * gscale(svg) * r.width / vbw(svg)});
  }
  return out;
}
"""


def _settings(lab: JupyterLab) -> None:
    """Every cell rendered (no windowing: off-screen cells exist to be measured) and no autosave."""
    us = lab.tmp / "config" / "lab" / "user-settings" / "@jupyterlab"
    for ext, plugin, value in (("notebook-extension", "tracker", {"windowingMode": "none"}),
                               ("docmanager-extension", "plugin", {"autosave": False})):
        (us / ext).mkdir(parents=True, exist_ok=True)
        (us / ext / f"{plugin}.jupyterlab-settings").write_text(json.dumps(value))


def _log_console(page) -> str:
    """The Log Console's text: where widget-callback tracebacks, tqdm bars and 'widget model not found' land."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^View$")).click()
    page.locator(".lm-Menu-itemLabel", has_text="Show Log Console").first.click()
    panel = page.locator(".jp-LogConsolePanel").first
    panel.wait_for(timeout=10_000)
    level = page.locator(".jp-LogConsole-toolbarLogLevelDropdown select").first
    if level.count():
        level.select_option("debug")  # show everything, not only warnings and up
    page.wait_for_timeout(500)
    return panel.inner_text()


def _top_of_screen(page, sel: str) -> dict:
    """Scroll the notebook so ``sel`` starts at the top; where its parts end relative to the visible area."""
    return page.evaluate("""(sel) => {
        const el = document.querySelector(sel);
        const scroller = document.querySelector('.jp-NotebookPanel .jp-WindowedPanel-outer')
                         || document.querySelector('.jp-NotebookPanel .jp-Notebook');
        scroller.scrollTop += el.getBoundingClientRect().top - scroller.getBoundingClientRect().top - 4;
        const view = scroller.getBoundingClientRect();
        const svg = el.querySelector('svg');
        const s = svg ? svg.getBoundingClientRect() : null;
        const buttons = [...el.querySelectorAll('button')].map(b => b.getBoundingClientRect().bottom);
        return {view_bottom: view.bottom, view_top: view.top, svg_bottom: s ? s.bottom : null,
                svg_top: s ? s.top : null, buttons_bottom: Math.max(...buttons)};
    }""", sel)


def _click(page, scope: str, text: str, times: int = 1) -> None:
    b = page.locator(f"{scope} button", has_text=text).first
    for _ in range(times):
        b.click(delay=0)


def _idle(page) -> None:
    page.locator(KERNEL_IDLE, has_text="| Idle").wait_for(timeout=60_000)
    page.wait_for_timeout(400)


def test_widgets_and_diagrams_in_jupyterlab(tmp_path):
    from playwright.sync_api import sync_playwright

    ART.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell(c) for c in CELLS]
    nbformat.write(nb, tmp_path / "widgets.ipynb")
    errors: list[str] = []
    with JupyterLab(tmp_path) as lab, sync_playwright() as p:
        _settings(lab)
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
        page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        try:
            page.goto(f"{lab.url}/lab/tree/widgets.ipynb?reset", timeout=120_000)
            page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first.wait_for(timeout=120_000)
            page.locator(KERNEL_IDLE, has_text="| Idle").wait_for(timeout=120_000)
            page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
            page.locator(".lm-Menu-item:not(.lm-mod-disabled) .lm-Menu-itemLabel",
                         has_text=re.compile(r"^Run All Cells$")).first.click()
            page.wait_for_function(
                """() => { const ps = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')];
                           return ps.length > 0 && ps.every(p => /\\[\\d+\\]/.test(p.textContent)); }""",
                timeout=180_000)
            _idle(page)
            for cls in ("w-stepper-01", "w-stepper-06", "w-stepper-08", "w-board", "w-explorer"):
                page.locator(f".{cls} svg, .{cls} img").first.wait_for(timeout=60_000)

            # 1. every diagram readable at 100% zoom
            fonts = page.evaluate(MEASURE)
            assert len([f for f in fonts if f["kind"] == "img"]) >= 6 and len(fonts) >= 10, fonts
            small = [f for f in fonts if f["px"] < MIN_PX]
            (ART / "fonts.json").write_text(json.dumps(fonts, indent=1))
            assert not small, f"text below {MIN_PX} px: {small}"
            imgs = page.locator(".jp-OutputArea-output.jp-RenderedSVG")
            for i in range(imgs.count()):
                imgs.nth(i).scroll_into_view_if_needed()
                imgs.nth(i).screenshot(path=str(ART / f"diagram-{i}.png"))

            # 2. each widget's diagram fits with its controls in one screen
            for cls in ("w-stepper-01", "w-stepper-06", "w-stepper-08", "w-board"):
                g = _top_of_screen(page, f".{cls}")
                assert g["svg_bottom"] <= g["view_bottom"] + 1 and g["buttons_bottom"] <= g["view_bottom"], (cls, g)
                page.wait_for_timeout(300)
                page.screenshot(path=str(ART / f"{cls}-screen.png"))

            # 3. every control, with rapid clicks and bad values
            _top_of_screen(page, ".w-stepper-01")
            _click(page, ".w-stepper-01", "next", 40)
            _click(page, ".w-stepper-01", "back", 3)
            _idle(page)
            assert "hop" in page.locator(".w-stepper-01").inner_text()
            page.locator(".w-stepper-06 .widget-play button").first.click()   # ▶ play
            page.wait_for_timeout(2500)
            page.locator(".w-stepper-06 .widget-play button").nth(1).click()  # pause
            page.locator(".w-stepper-06 select").first.select_option(index=1)
            _idle(page)
            page.locator(".w-stepper-08 .widget-slider .ui-slider-handle, .w-stepper-08 .widget-slider .noUi-handle").first.focus()
            for _ in range(6):
                page.keyboard.press("ArrowRight")
            _idle(page)
            page.locator(".w-stepper-06").screenshot(path=str(ART / "w-stepper-06.png"))

            board = ".w-board"
            _top_of_screen(page, board)
            fields = page.locator(f"{board} input[type=text]")
            bad = ["-1", "512", "99999", "", "zz", "0x51", "1e3"]
            actions = page.locator(f"{board} select").first
            for k, action in enumerate(["request_irq", "free_irq", "set_irqs", "kvm_irqfd", "set_route", "raise_msi",
                                        "raise_intx", "vfio_pci_bind"]):
                actions.select_option(action)
                for i in range(fields.count()):
                    fields.nth(i).fill(bad[(i + k) % len(bad)])
                _click(page, board, "apply", 3)
            actions.select_option("request_irq")
            fields.nth(0).fill("99999")
            _click(page, board, "apply")
            _idle(page)
            msg = page.locator(board).inner_text()
            assert "-EINVAL" in msg and "Traceback" not in msg
            page.locator(f"{board} .lm-TabBar-tab, {board} .p-TabBar-tab", has_text="/proc/interrupts").first.click()
            page.wait_for_timeout(300)
            assert "CPU0" in page.locator(board).inner_text()
            page.locator(f"{board} .lm-TabBar-tab, {board} .p-TabBar-tab", has_text="diagram").first.click()
            page.locator(board).screenshot(path=str(ART / "w-board.png"))

            ex = ".w-explorer"
            _top_of_screen(page, ex)
            page.locator(ex).screenshot(path=str(ART / "w-explorer-default.png"))
            assert "p90" in page.locator(ex).inner_text()
            pick = page.locator(f"{ex} select").first
            label = {k: v[0] for k, v in EXPLORER_SCENARIOS.items()}
            pick.select_option(label=label["shared_intx"])
            page.locator(f"{ex} input[type=checkbox]").first.check()
            _click(page, ex, "Run", 4)
            pick.select_option(label=label["posted_nic"])
            _click(page, ex, "Run", 2)
            pick.select_option(label=label["msix_nic"])
            _click(page, ex, "Run")
            _idle(page)
            page.wait_for_timeout(1000)
            text = page.locator(ex).inner_text()
            assert "p99.9" in text and "done in" in text and "…" not in text.split("latency")[0]
            labels = page.evaluate("""(sel) => [...document.querySelectorAll(sel + ' .widget-label')]
                .filter(l => l.offsetParent && l.scrollWidth > l.clientWidth + 1).map(l => l.textContent)""", ex)
            assert not labels, f"labels cut off: {labels}"
            # a <select> shows the chosen option in its own box: any option may be chosen, so measure each one's
            # text against the box (the arrow included)
            cut = page.evaluate("""() => { const c = document.createElement('canvas').getContext('2d');
                return [...document.querySelectorAll('.jupyter-widgets select')].filter(s => s.offsetParent)
                  .flatMap(s => { const st = getComputedStyle(s); c.font = st.fontSize + ' ' + st.fontFamily;
                    return [...s.options].map(o => [o.text, c.measureText(o.text).width + 28 - s.clientWidth]); })
                  .filter(x => x[1] > 0); }""")
            assert not cut, f"dropdown text cut off: {cut}"
            page.locator(ex).screenshot(path=str(ART / "w-explorer.png"))

            # 4. no error anywhere
            last = page.locator(".jp-Notebook .jp-CodeCell", has_text="host still usable")
            last.locator(".jp-InputArea-editor").click()
            page.keyboard.press("Control+Enter")  # Shift+Enter on the last cell would append an empty one
            _idle(page)
            assert "host still usable: True" in last.locator(".jp-OutputArea").inner_text()
            assert page.locator(STDERR).count() == 0, page.locator(STDERR).all_inner_texts()
            log = _log_console(page)
            page.screenshot(path=str(ART / "log-console.png"))
            for bad_text in ("Traceback", "Error", "model not found", "it/s", "irq/s"):
                assert bad_text not in log, f"Log Console: {log[-2000:]}"
            assert not errors, errors
        except Exception:
            page.screenshot(path=str(ART / "failure.png"), full_page=True)
            raise
        finally:
            browser.close()
