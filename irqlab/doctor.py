"""``python -m irqlab doctor``: check what the course needs and print the exact fix for each problem.

Not a kernel model: it checks Graphviz's ``dot`` (the Python package does not ship it), ipywidgets 8 and
its JupyterLab extension (no build step needed since JupyterLab 4), JupyterLab, numpy and irqlab itself.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

__all__ = ["Check", "run_checks", "main"]

DOT_FIX = ("install Graphviz's dot: Debian/Ubuntu `sudo apt-get install graphviz`; "
           "conda `conda install -c conda-forge graphviz python-graphviz`; macOS `brew install graphviz`")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _major(v: str | None) -> int:
    try:
        return int((v or "0").split(".")[0])
    except ValueError:
        return 0


def _labextension_present(name: str) -> bool:
    try:
        from jupyter_core.paths import jupyter_path
        paths = [Path(p) for p in jupyter_path("labextensions")]
    except Exception:
        paths = [Path(sys.prefix) / "share" / "jupyter" / "labextensions"]
    return any((p / name).exists() for p in paths)


def run_checks() -> list[Check]:
    out = []
    py = sys.version_info
    out.append(Check("python", py >= (3, 10), sys.version.split()[0], "use Python 3.10 or newer"))
    for dist, need in (("numpy", 1), ("graphviz", 0), ("tqdm", 4)):
        v = _version(dist)
        out.append(Check(dist, v is not None and _major(v) >= need, v or "not installed", f"pip install -U {dist}"))
    dot = shutil.which("dot")
    if dot:
        try:
            r = subprocess.run([dot, "-V"], capture_output=True, text=True, timeout=10)
            detail, ok = (r.stderr or r.stdout).strip() or dot, r.returncode == 0
        except (OSError, subprocess.SubprocessError) as e:
            detail, ok = f"{dot} does not run: {e}", False
    else:
        detail, ok = "`dot` not found on PATH (diagrams fall back to text)", False
    out.append(Check("dot", ok, detail, DOT_FIX))
    w = _version("ipywidgets")
    out.append(Check("ipywidgets", _major(w) >= 8, w or "not installed", "pip install -U 'ipywidgets>=8'"))
    jl = _version("jupyterlab")
    out.append(Check("jupyterlab", _major(jl) >= 4, jl or "not installed", "pip install -U 'jupyterlab>=4'"))
    ext = _labextension_present("@jupyter-widgets/jupyterlab-manager")
    out.append(Check("widgets lab extension", ext, "@jupyter-widgets/jupyterlab-manager "
                     + ("found" if ext else "missing"),
                     "pip install -U 'ipywidgets>=8' jupyterlab_widgets  (no `jupyter labextension install` needed)"))
    try:
        import irqlab
        out.append(Check("irqlab", True, f"{irqlab.__version__} at {Path(irqlab.__file__).parent}"))
    except Exception as e:  # pragma: no cover - irqlab imports itself to run this
        out.append(Check("irqlab", False, str(e), "pip install -e .  (from the irqlab checkout)"))
    return out


def main(argv: list[str] | None = None) -> int:
    checks = run_checks()
    for c in checks:
        print(f"{'✓' if c.ok else '✗'} {c.name:<22} {c.detail}")
        if not c.ok and c.fix:
            print(f"  fix: {c.fix}")
    bad = [c for c in checks if not c.ok]
    print("all good" if not bad else f"{len(bad)} problem(s)")
    return 1 if bad else 0
