"""Open notebooks in a real JupyterLab with Debian's headless Chromium (Playwright), run all cells through the
UI, collect every error a student would see, and save screenshots (the JupyterLab facts it relies on: docs/course.md).

One server and one browser serve many notebooks, to keep the suite fast:

    with LabBrowser(root) as lab:
        found = lab.run_notebook("course/01-switchboard.ipynb", "test-artifacts/browser/01-switchboard.png")
    # found["errors"] == [] when nothing went wrong on the page, in the Log Console or in a cell's output

``open_and_run(path, screenshot)`` does the same for one notebook with its own server and browser.

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
VIEWPORT = {"width": 1400, "height": 1000}

SVG_IMG = ".jp-OutputArea-output.jp-RenderedSVG img[src^='data:image/svg+xml']"
WIDGET = ".jp-OutputArea-output .jupyter-widgets"
STDERR = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
KERNEL_IDLE = "#jp-main-statusbar .jp-StatusBar-TextItem[title^='Change kernel']"
SCROLLER = """(() => document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer')
                  || document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook'))()"""


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

    def api(self, method: str, path: str) -> object:
        req = urllib.request.Request(f"{self.url}{path}", method=method)
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        """Close every session (and its kernel), so notebooks run one after the other do not pile up kernels."""
        for s in self.api("GET", "/api/sessions") or []:
            self.api("DELETE", f"/api/sessions/{s['id']}")
        for k in self.api("GET", "/api/kernels") or []:
            self.api("DELETE", f"/api/kernels/{k['id']}")

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
               "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--LabApp.expose_app_in_browser=True", "--ServerApp.disable_check_xsrf=True"]
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


def _grow_to_notebook(page, max_height: int) -> int:
    """JupyterLab scrolls the notebook inside a fixed-size panel: grow the viewport to the notebook's height so
    every cell is laid out and visible at once, again while outputs that render late (plots, widgets) make it
    taller; returns the notebook's height in px."""
    h = 0
    for _ in range(6):
        # the cells' height, not scrollHeight: JupyterLab pads the notebook's end by a part of its own height
        h, visible = page.evaluate(f"""() => {{ const s = {SCROLLER};
            if (!s) return [0, 0];  // no notebook in front (a test opened another document)
            const cells = [...s.querySelectorAll('.jp-Cell')];
            const top = s.getBoundingClientRect().top - s.scrollTop;
            const end = Math.max(0, ...cells.map(c => c.getBoundingClientRect().bottom - top));
            return [Math.ceil(end) + 40, s.clientHeight]; }}""")
        vp = page.viewport_size or VIEWPORT
        if h <= visible or vp["height"] >= max_height:
            break
        page.set_viewport_size({"width": VIEWPORT["width"], "height": min(vp["height"] + int(h - visible), max_height)})
        page.evaluate(f"() => {SCROLLER}.scrollTo(0, 0)")
        page.wait_for_timeout(800)
    return int(h)


def _screenshot_whole_notebook(page, path: Path, max_height: int = 30_000) -> None:
    try:
        _grow_to_notebook(page, max_height)
    except Exception:  # a screenshot of the viewport is still worth having
        pass
    page.screenshot(path=str(path), full_page=True)


def _screenshot_pages(page, path: Path, page_height: int = 1000) -> list[Path]:
    """The notebook cut into screen-sized pieces (<name>-01.png, ...), each as a student sees it at 100%."""
    from PIL import Image

    full = path.with_suffix(".full.png")
    page.screenshot(path=str(full), full_page=True)
    out = []
    with Image.open(full) as img:
        for i, top in enumerate(range(0, img.height, page_height), 1):
            piece = path.with_name(f"{path.stem}-{i:02d}.png")
            img.crop((0, top, img.width, min(top + page_height, img.height))).save(piece)
            out.append(piece)
    full.replace(path)
    return out


class LabBrowser:
    """One JupyterLab server and one Chromium, to run many notebooks through the UI one after the other."""

    def __init__(self, root, *, timeout_ms: int = 180_000):
        self.root = Path(root).resolve()
        self.timeout_ms = timeout_ms
        self.lab: JupyterLab | None = None
        self._pw = None
        self.browser = None
        self.seconds: dict[str, float] = {}

    def __enter__(self) -> "LabBrowser":
        from playwright.sync_api import sync_playwright

        t0 = time.monotonic()
        self.lab = JupyterLab(self.root).__enter__()
        try:
            self._pw = sync_playwright().start()
            self.browser = self._pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        except BaseException:
            self.__exit__()
            raise
        self.seconds["start"] = round(time.monotonic() - t0, 2)
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self.browser is not None:
                self.browser.close()
            if self._pw is not None:
                self._pw.stop()
        finally:
            if self.lab is not None:
                self.lab.__exit__()

    def run_notebook(self, notebook_path, screenshot_path, extra_asserts=None, *, pieces: bool = False) -> dict:
        """Open ``notebook_path`` (inside the server's root), wait for the kernel, Run All Cells from the Run
        menu, wait until every code cell has an execution number and every image has decoded, then collect
        what went wrong and save a screenshot of the whole notebook (and, with ``pieces``, screen-sized pieces).

        Returns {"errors": [...], "svg_images", "widgets", "stderr_outputs", "cells", "log_console", "seconds"}.
        ``errors`` lists uncaught page errors, console errors, Log Console entries and error/stderr outputs.
        ``extra_asserts(page, found)`` runs before the screenshot. On failure a ``<name>.failure.png`` and the
        server log's tail are kept for diagnosis.
        """
        lab = self.lab
        notebook = Path(notebook_path).resolve()
        rel = notebook.relative_to(self.root).as_posix()
        screenshot = Path(screenshot_path)
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        lab.shutdown_kernels()
        page = self.browser.new_page(viewport=dict(VIEWPORT))
        page_errors: list[str] = []
        console_errors: list[str] = []
        page.on("pageerror", lambda e: page_errors.append(f"page error: {e}"))
        page.on("console", lambda m: console_errors.append(f"console {m.type}: {m.text}")
                if m.type == "error" else None)
        t0 = time.monotonic()
        seconds: dict[str, float] = {}

        def mark(what: str) -> None:
            seconds[what] = round(time.monotonic() - t0, 2)

        timeout = self.timeout_ms
        try:
            page.goto(f"{lab.url}/lab/tree/{rel}?reset", timeout=timeout)
            page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first.wait_for(timeout=timeout)
            mark("notebook_shown")
            dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
            if dialog.count():  # only when the notebook has no kernelspec
                dialog.locator("button.jp-mod-accept").click()
            # The toolbar says "idle" before the kernel is even connected; Run All clicked then is
            # silently dropped. The status bar's "| Idle" is the reliable signal.
            page.locator(KERNEL_IDLE, has_text="| Idle").wait_for(timeout=timeout)
            mark("kernel_idle")
            page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
            page.locator(".lm-Menu-item:not(.lm-mod-disabled) .lm-Menu-itemLabel",
                         has_text=re.compile(r"^Run All Cells$")).first.click()
            page.wait_for_function(
                """() => { const ps = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')];
                           return ps.length > 0 && ps.every(p => /\\[\\d+\\]/.test(p.textContent)); }""",
                timeout=timeout)
            page.locator(KERNEL_IDLE, has_text="| Idle").wait_for(timeout=timeout)
            mark("cells_done")
            # lay every cell out (JupyterLab renders only what is near the viewport), then let images decode
            # and widget views render
            _grow_to_notebook(page, 30_000)
            page.wait_for_function(f"""() => [...document.querySelectorAll("{SVG_IMG}")].every(i => i.complete)""",
                                   timeout=30_000)
            page.wait_for_timeout(1500)
            found = {
                "svg_images": page.evaluate(
                    f"""() => [...document.querySelectorAll("{SVG_IMG}")]
                             .filter(i => i.complete && i.naturalWidth > 0).length"""),
                "md_images": page.evaluate(
                    """() => [...document.querySelectorAll('.jp-MarkdownOutput img')]
                             .map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0])"""),
                "widgets": page.locator(f"{WIDGET}:visible").count(),
                "cells": page.locator(".jp-Notebook .jp-CodeCell").count(),
            }
            if extra_asserts:  # before the errors are collected: what it clicks may go wrong too
                extra_asserts(page, found)
                page.wait_for_timeout(500)
            outputs = page.locator(STDERR)
            stderr_texts = [outputs.nth(i).inner_text()[:1500] for i in range(outputs.count())]
            log_entries = self._log_console(page)
            found["stderr_outputs"] = len(stderr_texts)
            found["log_console"] = log_entries
            found["errors"] = (page_errors + console_errors + [f"Log Console: {e}" for e in log_entries]
                               + [f"cell output on stderr: {t}" for t in stderr_texts]
                               + [f"image did not load: {src}" for src, ok in found["md_images"] if not ok])
            mark("checked")
            _grow_to_notebook(page, 30_000)  # the Log Console closed and late outputs may have changed the height
            if pieces:
                found["pieces"] = _screenshot_pages(page, screenshot)
            else:
                page.screenshot(path=str(screenshot), full_page=True)
            mark("total")
            found["seconds"] = seconds
            return found
        except Exception as e:
            try:
                page.screenshot(path=str(screenshot.with_suffix(".failure.png")), full_page=True)
            except Exception:
                pass
            e.add_note(f"timings so far: {seconds}\npage errors: {page_errors}\nconsole errors: {console_errors}\n"
                       f"jupyter lab log (tail):\n{lab.log_tail(2000)}")
            raise
        finally:
            page.close()
            lab.shutdown_kernels()

    @staticmethod
    def _log_console(page) -> list[str]:
        """The entries of the notebook's Log Console (kernel and widget messages JupyterLab keeps out of the
        cells), opened through JupyterLab's own command, with its level set to show everything."""
        opened = page.evaluate("""async () => {
            const app = window.jupyterapp;
            if (!app || !app.commands.hasCommand('logconsole:open')) return false;
            await app.commands.execute('logconsole:open', {insertMode: 'split-bottom'});
            return true; }""")
        if not opened:
            return ["the Log Console could not be opened (no logconsole:open command)"]
        panel = page.locator(".jp-LogConsolePanel").last
        panel.wait_for(timeout=10_000)
        page.wait_for_timeout(500)
        level = page.locator(".jp-LogConsole-toolbar select, .jp-LogConsolePanel select").first
        if level.count():
            try:
                level.select_option("debug")
                page.wait_for_timeout(300)
            except Exception:
                pass
        entries = panel.locator(".jp-OutputArea-child")
        texts = [entries.nth(i).inner_text().strip() for i in range(entries.count())]
        page.evaluate("() => window.jupyterapp.commands.execute('logconsole:open')")  # toggles it closed
        return [t for t in texts if t]


def open_and_run(notebook_path, screenshot_path, extra_asserts=None, *, root=None,
                 timeout_ms: int = 120_000) -> dict:
    """One notebook with its own server and browser (see LabBrowser.run_notebook). ``root`` is the server's root
    folder (default: the notebook's folder)."""
    notebook = Path(notebook_path).resolve()
    with LabBrowser(root or notebook.parent, timeout_ms=timeout_ms) as lab:
        return lab.run_notebook(notebook, screenshot_path, extra_asserts)
