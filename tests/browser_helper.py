"""Open a notebook in a real JupyterLab with Debian's headless Chromium (Playwright), run all cells
through the UI, check what rendered, and save a screenshot (notebook-tooling.md §4).

    found = open_and_run("course/01-switchboard.ipynb", "test-artifacts/browser/01-switchboard.png")
    # found == {"svg_images": 2, "widgets": 1, "stderr_outputs": 0, "cells": 9, "seconds": {...}}

Playwright drives /usr/bin/chromium (`apt-get install chromium libatomic1`); `playwright install` is
never needed. The server gets a throw-away JUPYTER_CONFIG_DIR/RUNTIME_DIR/IPYTHONDIR, no token, a free
loopback port, and is always stopped with SIGTERM to its own pid.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ANNOUNCEMENTS = "@jupyterlab/apputils-extension:announcements"

SVG_IMG = ".jp-OutputArea-output.jp-RenderedSVG img[src^='data:image/svg+xml']"
WIDGET = ".jp-OutputArea-output .jupyter-widgets"
STDERR = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
KERNEL_IDLE = "#jp-main-statusbar .jp-StatusBar-TextItem[title^='Change kernel']"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterLab:
    """A JupyterLab server on loopback with a hermetic config; a context manager that always stops it."""

    def __init__(self, root: Path, startup_timeout: float = 60):
        self.root = Path(root).resolve()
        self.startup_timeout = startup_timeout
        self.tmp = Path(tempfile.mkdtemp(prefix="irqlab-lab-"))
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None
        self.log = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, n: int = 3000) -> str:
        try:
            return (self.tmp / "server.log").read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def start(self) -> None:
        cfg = self.tmp / "config"
        (cfg / "labconfig").mkdir(parents=True)
        (cfg / "labconfig" / "page_config.json").write_text(json.dumps({"disabledExtensions": {ANNOUNCEMENTS: True}}))
        env = dict(os.environ, JUPYTER_CONFIG_DIR=str(cfg), JUPYTER_RUNTIME_DIR=str(self.tmp / "runtime"),
                   IPYTHONDIR=str(self.tmp / "ipython"))
        jupyter = Path(sys.executable).with_name("jupyter")
        cmd = [str(jupyter) if jupyter.exists() else "jupyter", "lab", "--no-browser", "--ip", "127.0.0.1",
               f"--port={self.port}", "--port-retries=0", "--IdentityProvider.token=", "--ServerApp.password=",
               f"--ServerApp.root_dir={self.root}", f"--LabApp.workspaces_dir={self.tmp / 'ws'}",
               "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        self.log = open(self.tmp / "server.log", "w")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                urllib.request.urlopen(f"{self.url}/api/status", timeout=2).close()
                return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"jupyter lab did not answer in {self.startup_timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)  # its own pid only; it shuts its kernels down
                try:
                    self.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
        finally:
            if self.log is not None:
                self.log.close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> "JupyterLab":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _screenshot_whole_notebook(page, path: Path, max_height: int = 12_000) -> None:
    """JupyterLab scrolls the notebook inside a fixed-size panel, so a "full page" screenshot is only the
    viewport: grow the viewport to the notebook's height first, then scroll to the top."""
    try:
        # the scroller: .jp-WindowedPanel-outer in JupyterLab 4, the notebook itself before
        scroller = """(() => document.querySelector('.jp-NotebookPanel .jp-WindowedPanel-outer')
                            || document.querySelector('.jp-NotebookPanel .jp-Notebook'))()"""
        h, visible = page.evaluate(f"() => {{ const s = {scroller}; return [s.scrollHeight, s.clientHeight]; }}")
        vp = page.viewport_size or {"width": 1400, "height": 1000}
        if h > visible:
            page.set_viewport_size({"width": vp["width"], "height": min(vp["height"] + int(h - visible), max_height)})
            page.evaluate(f"() => {scroller}.scrollTo(0, 0)")
            page.wait_for_timeout(800)
    except Exception:  # a screenshot of the viewport is still worth having
        pass
    page.screenshot(path=str(path), full_page=True)


def open_and_run(notebook_path, screenshot_path, extra_asserts=None, *, root=None,
                 timeout_ms: int = 120_000) -> dict:
    """Open ``notebook_path`` in JupyterLab, wait for the kernel, Run All Cells from the Run menu, wait
    until every code cell has an execution number, then save a full-page screenshot.

    ``root`` is the server's root folder (default: the notebook's folder). ``extra_asserts(page, found)``
    runs before the screenshot, with the Playwright page, to check or capture more. On failure a
    ``<name>.failure.png`` screenshot and the server log's tail are kept for diagnosis.
    Returns {"svg_images": loaded graphviz/SVG images, "widgets": visible widget views,
    "stderr_outputs": stderr/traceback outputs, "cells": code cells, "seconds": timings}.
    """
    from playwright.sync_api import sync_playwright

    notebook = Path(notebook_path).resolve()
    root = Path(root or notebook.parent).resolve()
    screenshot = Path(screenshot_path)
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    rel = notebook.relative_to(root).as_posix()
    t0 = time.monotonic()
    seconds: dict[str, float] = {}

    def mark(what: str) -> None:
        seconds[what] = round(time.monotonic() - t0, 2)

    with JupyterLab(root) as lab:
        mark("server_up")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = None
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"{lab.url}/lab/tree/{rel}", timeout=timeout_ms)
                page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first.wait_for(timeout=timeout_ms)
                mark("notebook_shown")
                dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
                if dialog.count():  # only when the notebook has no kernelspec
                    dialog.locator("button.jp-mod-accept").click()
                # The toolbar says "idle" before the kernel is even connected; Run All clicked then is
                # silently dropped. The status bar's "| Idle" is the reliable signal.
                page.locator(KERNEL_IDLE, has_text="| Idle").wait_for(timeout=timeout_ms)
                mark("kernel_idle")
                page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
                page.locator(".lm-Menu-item:not(.lm-mod-disabled) .lm-Menu-itemLabel",
                             has_text=re.compile(r"^Run All Cells$")).first.click()
                page.wait_for_function(
                    """() => { const ps = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')];
                               return ps.length > 0 && ps.every(p => /\\[\\d+\\]/.test(p.textContent)); }""",
                    timeout=timeout_ms)
                mark("cells_done")
                # images decode and widget views render a moment after the execute replies
                page.wait_for_function(
                    f"""() => [...document.querySelectorAll("{SVG_IMG}")].every(i => i.complete)""",
                    timeout=30_000)
                page.wait_for_timeout(1000)
                found = {
                    "svg_images": page.evaluate(
                        f"""() => [...document.querySelectorAll("{SVG_IMG}")]
                                 .filter(i => i.complete && i.naturalWidth > 0).length"""),
                    "widgets": page.locator(f"{WIDGET}:visible").count(),
                    "stderr_outputs": page.locator(STDERR).count(),
                    "cells": page.locator(".jp-Notebook .jp-CodeCell").count(),
                }
                if extra_asserts:
                    extra_asserts(page, found)
                _screenshot_whole_notebook(page, screenshot)
                mark("total")
                found["seconds"] = seconds
                return found
            except Exception as e:
                if page is not None:
                    try:
                        page.screenshot(path=str(screenshot.with_suffix(".failure.png")), full_page=True)
                    except Exception:
                        pass
                e.add_note(f"timings so far: {seconds}\njupyter lab log (tail):\n{lab.log_tail(2000)}")
                raise
            finally:
                browser.close()
