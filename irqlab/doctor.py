"""``python -m irqlab doctor``: check what the course needs and print the exact fix for each problem.

Not a kernel model: it checks Python, numpy, Graphviz's ``dot`` binary (the ``graphviz`` Python package
does not ship it), the ``graphviz`` Python package, tqdm, then the ``course`` extra: ipywidgets 8 and its
JupyterLab extension (no build step since JupyterLab 4), matplotlib and JupyterLab; and that ``irqlab``
itself is installed (editable from a checkout, or a copy in site-packages) and is the one imported.
Exit status 0 when everything is fine, 1 otherwise.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

__all__ = ["Check", "run_checks", "main", "extra_fix"]

WIDGETS_EXTENSION = "@jupyter-widgets/jupyterlab-manager"


@dataclass
class Check:
    """One line of the report: what was checked, whether it is fine, what was found, how to fix it."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def _in_conda() -> bool:
    return bool(os.environ.get("CONDA_PREFIX")) or (Path(sys.prefix) / "conda-meta").is_dir()


def dot_fix() -> str:
    """The commands that install Graphviz's ``dot``; the one for this system first."""
    fixes = {
        "debian": "Debian/Ubuntu: sudo apt-get install graphviz",
        "conda": "conda: conda install -c conda-forge graphviz python-graphviz",
        "macos": "macOS: brew install graphviz",
    }
    first = "conda" if _in_conda() else "macos" if sys.platform == "darwin" else "debian"
    order = [first] + [k for k in fixes if k != first]
    return "install Graphviz's dot (the graphviz pip package does not include it):\n" + "\n".join(
        f"    {fixes[k]}" for k in order)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _at_least(version: str | None, minimum: tuple[int, ...]) -> bool:
    if not version:
        return False
    parts = []
    for piece in version.split(".")[: len(minimum)]:
        m = re.match(r"\d+", piece)
        parts.append(int(m.group()) if m else 0)
    return tuple(parts) >= minimum


def _pip() -> str:
    return f"{sys.executable} -m pip" if sys.prefix != sys.base_prefix else "pip"


def _package(dist: str, minimum: tuple[int, ...], fix: str, name: str | None = None,
             missing_fix: str | None = None) -> Check:
    """A Python package at ``minimum`` or newer; ``missing_fix`` (default ``fix``) when it is not installed."""
    v = _version(dist)
    need = ".".join(map(str, minimum))
    if v is None:
        return Check(name or dist, False, f"not installed (need >= {need})", missing_fix or fix)
    ok = _at_least(v, minimum)
    return Check(name or dist, ok, v if ok else f"{v} is too old (need >= {need})", fix)


def labextension_paths() -> list[Path]:
    """Where JupyterLab looks for prebuilt extensions: this environment's share/jupyter first."""
    paths = [Path(sys.prefix) / "share" / "jupyter" / "labextensions"]
    try:
        from jupyter_core.paths import jupyter_path

        paths += [Path(p) for p in jupyter_path("labextensions")]
    except Exception:  # jupyter_core missing: JupyterLab is not installed either, reported separately
        pass
    seen, out = set(), []
    for p in paths:
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


def _dot() -> Check:
    dot = shutil.which("dot")
    if not dot:
        return Check("dot", False, "Graphviz's `dot` is not on PATH (diagrams fall back to text)", dot_fix())
    try:
        r = subprocess.run([dot, "-V"], capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as e:
        return Check("dot", False, f"{dot} does not run: {e}", dot_fix())
    out = (r.stderr or r.stdout).strip().splitlines()  # `dot -V` prints on stderr
    if r.returncode != 0:
        return Check("dot", False, f"`{dot} -V` exited {r.returncode}: {' '.join(out)[:200]}", dot_fix())
    return Check("dot", True, f"{out[0] if out else 'dot'} ({dot})")


def _widgets_extension() -> Check:
    paths = labextension_paths()
    for p in paths:
        if (p / WIDGETS_EXTENSION / "package.json").exists():
            return Check("widgets lab extension", True, f"{WIDGETS_EXTENSION} in {p}")
    return Check("widgets lab extension", False,
                 f"{WIDGETS_EXTENSION} not found in: " + ", ".join(map(str, paths)),
                 f"{_pip()} install -U ipywidgets jupyterlab_widgets   "
                 "(ipywidgets 8 ships it prebuilt: no `jupyter labextension install` step is needed)")


def _installations() -> list[metadata.Distribution]:
    """The installed distributions of irqlab: pip's (and conda's) records, not build residue.

    ``pip install`` writes a ``.dist-info`` with ``RECORD`` and ``INSTALLER`` (and ``direct_url.json`` for a
    local or editable install); setuptools leaves an ``irqlab.egg-info`` in the checkout when it builds, which
    is found when the checkout is on ``sys.path`` but installs nothing.
    """
    out = []
    for d in metadata.distributions(name="irqlab"):
        if any(d.read_text(f) is not None for f in ("RECORD", "INSTALLER", "direct_url.json")):
            out.append(d)
    return out


def _checkout(here: Path) -> Path | None:
    """The irqlab checkout this package was imported from, or None (an installed copy)."""
    return here.parent if (here.parent / "pyproject.toml").is_file() and (here.parent / "course").is_dir() else None


def extra_fix(extra: str) -> str:
    """The command that installs an extra of irqlab (``course``, ``test``) the way irqlab was installed here."""
    import irqlab

    checkout = _checkout(Path(irqlab.__file__).resolve().parent)
    if checkout is not None:
        return f"cd {checkout} && {_pip()} install -e '.[{extra}]'"
    return f"{_pip()} install 'irqlab[{extra}]'"


def _irqlab() -> Check:
    try:
        import irqlab
    except Exception as e:  # pragma: no cover - irqlab imports itself to run this
        return Check("irqlab", False, f"cannot import irqlab: {e}",
                     f"{_pip()} install -e .   (from the irqlab checkout)")
    here = Path(irqlab.__file__).resolve().parent
    fix = f"cd {here.parent} && {_pip()} install -e '.[course]'" if _checkout(here) else \
        f"{_pip()} install 'irqlab[course]'"
    dists = _installations()
    dist = next((d for d in dists if d.read_text("direct_url.json")), dists[0] if dists else None)
    if dist is None:
        return Check("irqlab", False, f"{irqlab.__version__} imported from {here}, but not installed "
                     "(notebooks in course/ will not find it)", fix)
    try:
        direct = json.loads(dist.read_text("direct_url.json") or "{}")
    except ValueError:
        direct = {}
    editable = bool(direct.get("dir_info", {}).get("editable"))
    url = direct.get("url", "")
    source = Path(url[len("file://"):]).resolve() if url.startswith("file://") else None
    if dist.version != irqlab.__version__:
        return Check("irqlab", False, f"imported {irqlab.__version__} from {here}, but installed "
                     f"{dist.version}: out of step", fix)
    if editable:
        if source is not None and source != here.parent:
            return Check("irqlab", False, f"{here} is imported, but the editable install points at {source}", fix)
        return Check("irqlab", True, f"{irqlab.__version__} at {here} (editable install)")
    installed = Path(str(dist.locate_file("irqlab"))).resolve()
    if installed != here:  # e.g. run from a checkout while a copy is installed in site-packages
        return Check("irqlab", True, f"{irqlab.__version__} imported from {here}; the installed copy is at "
                     f"{installed} (not editable: edits to a checkout won't show until you reinstall)")
    return Check("irqlab", True, f"{irqlab.__version__} at {here} (installed copy, not editable)")


def run_checks() -> list[Check]:
    """Run every check; never raises for a missing or broken dependency.

    numpy, graphviz and tqdm come with ``pip install irqlab``; ipywidgets, matplotlib and JupyterLab with
    its ``course`` extra, so a missing one's fix installs the extra.
    """
    py = sys.version_info
    course = extra_fix("course")
    checks = [Check("python", py >= (3, 10), f"{sys.version.split()[0]} ({sys.executable})",
                    "use Python 3.10 or newer (Debian 12: sudo apt-get install python3 python3-venv)")]
    checks.append(_package("numpy", (1, 26), f'{_pip()} install -U "numpy>=1.26"'))
    checks.append(_dot())
    checks.append(_package("graphviz", (0, 20),
                           f'{_pip()} install -U "graphviz>=0.20"   (conda: conda install -c conda-forge python-graphviz)'))
    checks.append(_package("tqdm", (4, 66), f'{_pip()} install -U "tqdm>=4.66"'))
    checks.append(_package("ipywidgets", (8,), f"{_pip()} install -U ipywidgets", missing_fix=course))
    checks.append(_widgets_extension())
    checks.append(_package("matplotlib", (3, 8), f'{_pip()} install -U "matplotlib>=3.8"', missing_fix=course))
    checks.append(_package("jupyterlab", (4,), f'{_pip()} install -U "jupyterlab>=4.2"', missing_fix=course))
    checks.append(_irqlab())
    return checks


def _marks() -> tuple[str, str]:
    try:
        "✓✗".encode(sys.stdout.encoding or "ascii")
        return "✓", "✗"
    except (UnicodeEncodeError, LookupError):
        return "ok", "XX"


def main(argv: list[str] | None = None) -> int:
    """Print one line per check and the fix for each problem; return 0 if all is well, else 1."""
    good, bad_mark = _marks()
    checks = run_checks()
    for c in checks:
        print(f"{good if c.ok else bad_mark} {c.name:<22} {c.detail}")
        if not c.ok and c.fix:
            print(f"  fix: {c.fix}")
    bad = [c for c in checks if not c.ok]
    print("all good" if not bad else f"{len(bad)} problem(s): run the fix lines above, then `python -m irqlab doctor` again")
    return 1 if bad else 0
