"""Open a notebook in a real JupyterLab with Debian's headless Chromium (Playwright), run all cells
through the UI, check what rendered, and save a screenshot (see notebook-tooling.md §4)."""
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
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterLab:
    """A JupyterLab server on loopback with a hermetic config, stopped with SIGTERM to its own pid."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.tmp = Path(tempfile.mkdtemp(prefix="irqlab-lab-"))
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "JupyterLab":
        cfg = self.tmp / "config"
        (cfg / "labconfig").mkdir(parents=True)
        (cfg / "labconfig" / "page_config.json").write_text(json.dumps(
            {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
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
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"{self.url}/api/status", timeout=2)
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("jupyter lab exited: " + (self.tmp / "server.log").read_text()[-2000:])
                time.sleep(0.3)
        raise RuntimeError("jupyter lab did not come up in 60 s")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def open_and_run(notebook: Path, screenshot: Path, *, root: Path | None = None, extra_asserts=None,
                 timeout_ms: int = 120_000) -> dict:
    """Open ``notebook`` in JupyterLab, Run All through the menu, wait for every prompt, screenshot.

    Returns what rendered: {"svg_images", "widgets", "stderr_outputs", "cells"}.
    """
    from playwright.sync_api import sync_playwright

    notebook = Path(notebook).resolve()
    root = Path(root or notebook.parent).resolve()
    screenshot = Path(screenshot)
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    rel = notebook.relative_to(root).as_posix()
    with JupyterLab(root) as lab, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{lab.url}/lab/tree/{rel}", timeout=timeout_ms)
            page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first.wait_for(timeout=timeout_ms)
            dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
            if dialog.count():
                dialog.locator("button.jp-mod-accept").click()
            page.locator("#jp-main-statusbar .jp-StatusBar-TextItem[title^='Change kernel']",
                         has_text="| Idle").wait_for(timeout=timeout_ms)
            page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
            page.locator(".lm-Menu-item:not(.lm-mod-disabled) .lm-Menu-itemLabel",
                         has_text=re.compile(r"^Run All Cells$")).first.click()
            page.wait_for_function(
                """() => { const ps = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')];
                           return ps.length > 0 && ps.every(p => /\\[\\d+\\]/.test(p.textContent)); }""",
                timeout=timeout_ms)
            page.wait_for_timeout(1500)  # let widgets and images finish rendering
            svg_ok = page.evaluate(
                """() => [...document.querySelectorAll(".jp-OutputArea-output.jp-RenderedSVG img[src^='data:image/svg+xml']")]
                         .filter(i => i.complete && i.naturalWidth > 0).length""")
            found = {
                "svg_images": svg_ok,
                "widgets": page.locator(".jp-OutputArea-output .jupyter-widgets:visible").count(),
                "stderr_outputs": page.locator(
                    ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").count(),
                "cells": page.locator(".jp-Notebook .jp-CodeCell").count(),
            }
            if extra_asserts:
                extra_asserts(page, found)
            page.screenshot(path=str(screenshot), full_page=True)
            return found
        except Exception:
            try:
                page.screenshot(path=str(screenshot.with_suffix(".failure.png")), full_page=True)
            except Exception:
                pass
            raise
        finally:
            browser.close()
