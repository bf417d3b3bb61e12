"""`pip install irqlab` without extras: every public function works, or fails naming the extra to install.

The core dependencies are numpy, graphviz and tqdm; ipywidgets, matplotlib and JupyterLab come with
`irqlab[course]`. Checked three ways: every import in the package is of the standard library, irqlab, a core
dependency, or goes through ``irqlab._optional.require`` (or is guarded); a subprocess in which every other
module is refused (a ``sys.meta_path`` finder, as if only the core were installed) calls every public
function of irqlab; and a real non-editable ``pip install`` of this checkout, which ``python -m irqlab doctor``
must report as installed.
"""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import textwrap
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from irqlab._optional import EXTRAS, MissingExtra, require

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "irqlab"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].lower().replace("_", "-")


def _closure(reqs: list[str]) -> set[str]:
    """The distributions these requirements bring, with their own requirements (markers evaluated, no extras)."""
    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo = [Requirement(r) for r in reqs]
    while todo:
        r = todo.pop()
        n = r.name.lower().replace("_", "-")
        if n in seen or (r.marker is not None and not r.marker.evaluate({"extra": ""})):
            continue
        seen.add(n)
        todo += [Requirement(x) for x in (metadata.requires(r.name) or [])]
    return seen


def _top_levels(dists: set[str]) -> set[str]:
    return {top for top, ds in metadata.packages_distributions().items()
            if any(d.lower().replace("_", "-") in dists for d in ds)}


CORE_DISTS = _closure(PYPROJECT["dependencies"])
CORE_MODULES = _top_levels(CORE_DISTS)
COURSE_MODULES = _top_levels({_name(r) for r in PYPROJECT["optional-dependencies"]["course"]})


def test_extras_in_pyproject_are_the_ones_the_errors_name():
    extras = PYPROJECT["optional-dependencies"]
    assert set(EXTRAS) == set(extras)
    assert {_name(r) for r in PYPROJECT["dependencies"]} == {"numpy", "graphviz", "tqdm"}
    assert {"ipywidgets", "matplotlib", "jupyterlab", "ipykernel"} <= {_name(r) for r in extras["course"]}
    assert {"numpy", "graphviz", "tqdm"} <= CORE_DISTS and "ipywidgets" not in CORE_DISTS


def test_require_names_the_extra_and_passes_other_errors_through(tmp_path, monkeypatch):
    assert require("json", extra="course", what="x") is sys.modules["json"]
    with pytest.raises(MissingExtra) as e:
        require("no_such_pkg_irqlab.sub", extra="course", what="irqlab.widgets.thing")
    assert isinstance(e.value, ModuleNotFoundError) and e.value.name == "no_such_pkg_irqlab"
    assert str(e.value) == ("irqlab.widgets.thing needs no_such_pkg_irqlab, which is not installed: "
                            "pip install 'irqlab[course]' (from a checkout: pip install -e '.[course]')")
    # a package that is there but broken (its own dependency missing): not the extra's fault, unchanged
    (tmp_path / "brokenpkg_irqlab.py").write_text("import another_missing_module_irqlab\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as e:
        require("brokenpkg_irqlab", extra="course", what="x")
    assert type(e.value) is ModuleNotFoundError and e.value.name == "another_missing_module_irqlab"
    with pytest.raises(ValueError, match="unknown extra 'widgets'"):
        require("json", extra="widgets", what="x")


def _guarded(node: ast.AST, parents: dict) -> bool:
    """Inside a ``try`` whose handlers catch ImportError (or a broader class)."""
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.Try):
            for h in node.handlers:
                names = [h.type] if not isinstance(h.type, ast.Tuple) else list(h.type.elts)
                if h.type is None or any(isinstance(n, ast.Name) and n.id in
                                         ("ImportError", "ModuleNotFoundError", "Exception") for n in names):
                    return True
    return False


def test_every_import_is_core_or_goes_through_require():
    stdlib = set(sys.stdlib_module_names)
    bad, required = [], []
    for path in sorted(PKG.rglob("*.py")):
        tree = ast.parse(path.read_text())
        parents = {c: p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}
        for node in ast.walk(tree):
            mods = []
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                mods = [node.module]
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "require"
                  and node.args and isinstance(node.args[0], ast.Constant)):
                required.append((path.name, node.args[0].value, next(k.value.value for k in node.keywords
                                                                     if k.arg == "extra")))
            for m in mods:
                top = m.split(".")[0]
                if top in stdlib or top == "irqlab" or top == "__future__" or top in CORE_MODULES:
                    continue
                if not _guarded(node, parents):
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: import {m}")
    assert not bad, "optional packages imported without irqlab._optional.require:\n" + "\n".join(bad)
    assert {(f, m.split(".")[0]) for f, m, _ in required} >= {("widgets.py", "ipywidgets"),
                                                              ("widgets.py", "matplotlib")}
    for f, m, extra in required:
        assert m.split(".")[0] in COURSE_MODULES and extra == "course", (f, m, extra)


# --- a process in which only the core is installed -------------------------------------------------------

WALK = r'''
import importlib, importlib.abc, inspect, io, json, pkgutil, sys, contextlib, errno

ALLOWED = set(json.loads(sys.argv[1]))
BLOCK = sys.argv[2] == "block"


class OnlyTheCore(importlib.abc.MetaPathFinder):
    """Refuse every module that `pip install irqlab` (no extras) would not have."""
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in ALLOWED or top in sys.stdlib_module_names or top == "irqlab":
            return None
        raise ModuleNotFoundError(f"No module named {name!r} (refused: not in a plain pip install irqlab)",
                                  name=name)


if BLOCK:
    sys.meta_path.insert(0, OnlyTheCore())

import irqlab
from irqlab import check, scenarios, storm, widgets
from irqlab._optional import MissingExtra

GPU = "0000:03:00.0"
results = {}


def record(name, fn):
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            fn()
        results[name] = ["ok", ""]
    except MissingExtra as e:
        results[name] = ["extra", str(e)]
    except ImportError as e:
        results[name] = ["import", f"{type(e).__name__}: {e}"]
    except Exception as e:
        results[name] = ["error", f"{type(e).__name__}: {e}"]


def fixtures(qualname):
    """Arguments by parameter name: a switchboard host that has run one GPU interrupt, and things from it."""
    import numpy as np
    from irqlab.storm.result import snapshot

    host = scenarios.switchboard()
    host.add_pci_device("0000:05:00.0", name="spare", msix=2)
    journey = host.raise_msi(GPU, 0)
    host.run()
    vm = host.vms[0]
    m = irqlab.msi.encode(dest_id=0, vector=0x41)
    st = storm.poisson(host, rate_hz=50_000, duration_ns=200_000, seed=1, start_ns=host.now)
    desc = host.irq_to_desc(host.pci_dev(GPU).vectors[0].irq)
    key = check.exercises()[0]
    fx = {
        "host": host, "journey": journey, "source": widgets.interrupt_sources(host)[0][1], "action": "request_irq",
        "key": key, "answer": check.expected(key), "err": errno.EINVAL, "message": "bad", "gsi": 24,
        "address_lo": m.address_lo, "data": m.data, "irqchip": irqlab.KVM_IRQCHIP_IOAPIC, "pin": 5, "vm": vm,
        "e": vm.routing.all()[0], "dest_id": 0, "vector": 0x41, "msg": irqlab.msi.decode(m.address_lo, m.data),
        "a": vm.apic_identities()[0], "apics": vm.apic_identities(), "ncpus": 4, "text": host.proc_interrupts(),
        "nr_irqs": 64, "bdf": "0000:05:00.0", "nvec": 2, "t": 0, "storm": st, "storms": [st], "rate_hz": 50_000,
        "duration_ns": 200_000, "on_ns": 10_000, "off_ns": 10_000, "phases": [(100_000, 10_000)],
        "times": [0, 10], "source_ids": [0, 0], "sources": storm.sources(host)[:1], "s": storm.sources(host)[0],
        "cycles": 3000, "file": "kernel/irq/spurious.c", "desc": desc, "action_ret": irqlab.IRQ_HANDLED,
        "ev": host.new_event("walk"), "rows": [host._irq_row(desc)], "online_cpus": [0, 1, 2, 3],
        "arch_rows": irqlab.procfs.default_arch_rows(4), "row": host._irq_row(desc),
        "possible_cpus_counts": list(desc.kstat), "type_": "edge", "wakeup": False, "name": None,
        "before": snapshot(host), "after": snapshot(host), "keys": np.array([0, 1, 5, 9]), "ends": 3, "delta": 2,
        "nr_cpu_ids": 4, "gsi_top": 24, "extra": "course", "kernel": host, "v": {0x41, 0x51},
        "g": irqlab.viz._build(host, irqlab.trace.observe(host), True), "d": irqlab.viz.host_diagram(host),
        "scenario": next(iter(widgets.EXPLORER_SCENARIOS)),
    }
    h2 = scenarios.msix_nic(2, trace=False)  # a storm run on a host of its own: the fixture's stays unrun
    fx["r"] = storm.run(h2, storm.poisson(h2, rate_hz=50_000, duration_ns=200_000, seed=1), "vector", progress=False)
    fx["pct"] = fx["r"].latency_percentiles((50, 90, 99, 99.9, 100))
    if qualname == "irqlab.storm.windows.greedy_window_starts":
        fx["t"] = np.array([0, 1, 5, 9])
    return fx


mods = ["irqlab"] + [m.name for m in pkgutil.walk_packages(irqlab.__path__, "irqlab.")
                     if not any(p.startswith("_") for p in m.name.split("."))]
for mn in mods:
    try:
        mod = importlib.import_module(mn)
    except Exception as e:
        results["import " + mn] = ["import" if isinstance(e, ImportError) else "error", f"{type(e).__name__}: {e}"]
        continue
    results["import " + mn] = ["ok", ""]
    for n in getattr(mod, "__all__", [n for n in dir(mod) if not n.startswith("_")]):
        fn = getattr(mod, n, None)
        if not inspect.isfunction(fn) or fn.__module__ != mn:
            continue
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.kind == p.VAR_POSITIONAL or p.name == "host" or p.default is p.empty and p.kind in (
                      p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY, p.POSITIONAL_ONLY)]
        if "argv" in inspect.signature(fn).parameters:  # doctor.main: no command-line arguments
            record(f"{mn}.{n}", lambda fn=fn: fn([]))
            continue
        def call(fn=fn, params=params, qualname=f"{mn}.{n}"):
            fx = fixtures(qualname)
            missing = [p.name for p in params if p.name not in fx]
            if missing:
                raise LookupError(f"no fixture for {missing}")
            args = [fx[p.name] for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            args += [x for p in params if p.kind == p.VAR_POSITIONAL for x in fx[p.name]]
            kw = {p.name: fx[p.name] for p in params if p.kind == p.KEYWORD_ONLY}
            fn(*args, **kw)
        record(f"{mn}.{n}", call)

# what the README and the course do, beyond single calls
def tour():
    host = scenarios.switchboard()
    j = host.raise_msi(GPU, 0)
    host.run()
    assert j.text().rstrip().splitlines()[-1].startswith("outcome: injected"), j.text()
    d = irqlab.viz.host_diagram(host, journey=j)
    assert d.text() and "text/plain" in d._repr_mimebundle_()
    h = scenarios.msix_nic(2, trace=False)
    s = storm.poisson(h, rate_hz=100_000, duration_ns=1_000_000, seed=3)
    r = storm.run(h, s, "vector")
    assert sum(r.ledger.values()) == len(s)
    rep = widgets.storm_report(plot=False, duration_ns=1_000_000)
    assert rep.figure is None and rep.ledger_text
def exercises():
    wrong = [k for k in check.exercises() if not check.ex(k, check.expected(k))]
    assert not wrong, wrong
record("tour", tour)
record("every exercise checks against the model", exercises)
record("widgets.storm_report(plot=True)", lambda: widgets.storm_report(duration_ns=1_000_000))
print("RESULTS " + json.dumps(results))
'''


def _walk(block: bool) -> dict[str, list[str]]:
    r = subprocess.run([sys.executable, "-c", WALK, json.dumps(sorted(CORE_MODULES)),
                        "block" if block else "open"], capture_output=True, text=True, timeout=600,
                       cwd=ROOT, stdin=subprocess.DEVNULL)
    line = next((ln for ln in r.stdout.splitlines() if ln.startswith("RESULTS ")), None)
    assert r.returncode == 0 and line, r.stdout[-3000:] + r.stderr[-3000:]
    return json.loads(line[len("RESULTS "):])


@pytest.fixture(scope="module")
def walks():
    return _walk(block=True), _walk(block=False)


# The user-facing layer: with the fixtures above each of these must work (or, without extras, name the extra).
# Elsewhere a function may have no fixture for a parameter (or a fixture that does not suit it): it is then
# only held to behave without extras exactly as with them.
USER_FACING = ("irqlab.widgets.", "irqlab.viz.", "irqlab.scenarios.", "irqlab.check.", "irqlab.doctor.",
               "irqlab.storm.generate.", "irqlab.storm.engine.", "irqlab.procfs.parse", "irqlab.procfs.read",
               "irqlab.kvm.msi.", "import ", "tour", "every exercise", "widgets.storm_report")


def _kind(outcome: list[str]) -> tuple[str, str]:
    return outcome[0], outcome[1].split(":")[0]  # the exception's type; its text may hold addresses


@pytest.mark.slow
def test_without_extras_every_public_function_works_or_names_the_extra(walks):
    core, full = walks
    assert core.keys() == full.keys() and len(core) > 80
    assert not {k: v for k, v in core.items() if v[0] == "import"}, "a raw ImportError without the extra's name"
    for name, outcome in core.items():
        if outcome[0] == "extra":
            assert "pip install 'irqlab[course]'" in outcome[1], (name, outcome)
            assert full[name][0] == "ok", (name, full[name])  # and with the extra installed, it works
        else:  # blocking the optional packages changed nothing else
            assert _kind(outcome) == _kind(full[name]), (name, outcome, full[name])
    assert {k for k, v in core.items() if v[0] == "extra"} == {
        "irqlab.widgets.journey_stepper", "irqlab.widgets.registration_board", "irqlab.widgets.storm_explorer",
        "irqlab.widgets.storm_report", "widgets.storm_report(plot=True)"}
    assert "irqlab.widgets.storm_report(plot=True) needs matplotlib" in core["irqlab.widgets.storm_report"][1]
    assert "irqlab.widgets.journey_stepper needs ipywidgets" in core["irqlab.widgets.journey_stepper"][1]
    facing = {k: v for k, v in core.items() if k.startswith(USER_FACING)}
    assert len(facing) > 40
    failed = {k: v for k, v in facing.items() if v[0] not in ("ok", "extra")}
    assert not failed, failed  # a new user-facing function needs a fixture in WALK's fixtures()
    called = sum(v[0] in ("ok", "extra") for v in core.values())
    assert called >= 0.85 * len(core), f"only {called} of {len(core)} public functions ran with the fixtures"


# --- a real, non-editable pip install, next to the core dependencies only ----------------------------------

@pytest.fixture(scope="module")
def plain_install(tmp_path_factory):
    """`pip install --no-deps .` of this checkout into a folder of its own, plus a folder that holds only the
    core dependencies (links to this venv's numpy, graphviz, tqdm): what `pip install irqlab` leaves."""
    target = tmp_path_factory.mktemp("site")
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "--no-index", "--target", str(target), str(ROOT)], capture_output=True, text=True,
                       timeout=300, stdin=subprocess.DEVNULL, cwd=target)
    if r.returncode != 0 and "setuptools" in r.stdout + r.stderr:
        pytest.skip("setuptools>=77 is not installed here (the [test] extra brings it): " + r.stderr[-300:])
    assert r.returncode == 0, r.stdout + r.stderr
    core = tmp_path_factory.mktemp("core")
    for dist in CORE_DISTS:
        d = metadata.distribution(dist)
        for top in {f.parts[0] for f in d.files or [] if f.parts[0] != ".."}:
            src = Path(str(d.locate_file(top)))
            if src.exists() and not (core / top).exists():
                (core / top).symlink_to(src)
    return target, core


def _run_plain(plain, code_or_args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    target, core = plain
    # -S: no site-packages (so nothing of this venv but the core links); PYTHONPATH: the install, the core
    env = {"PYTHONPATH": f"{target}:{core}", "PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONIOENCODING": "utf-8"}
    return subprocess.run([sys.executable, "-S", *code_or_args], capture_output=True, text=True, timeout=300,
                          cwd=cwd, env=env, stdin=subprocess.DEVNULL)


def test_doctor_reports_a_plain_pip_install_as_installed(plain_install, tmp_path):
    target, _ = plain_install
    r = _run_plain(plain_install, ["-m", "irqlab", "doctor"], tmp_path)
    lines = {ln.split()[1]: ln for ln in r.stdout.splitlines() if ln.startswith(("✓", "✗"))}
    assert lines["irqlab"].startswith("✓"), r.stdout + r.stderr
    assert f"0.1.0 at {target / 'irqlab'} (installed copy, not editable)" in lines["irqlab"]
    assert "not installed (notebooks" not in r.stdout
    for core in ("numpy", "graphviz", "tqdm"):
        assert lines[core].startswith("✓"), r.stdout
    # the course extra is not there: doctor says so, and its fix is the extra
    for course in ("ipywidgets", "matplotlib", "jupyterlab"):
        assert lines[course].startswith("✗") and "not installed" in lines[course], r.stdout
    assert r.stdout.count("fix: pip install 'irqlab[course]'") >= 3, r.stdout
    assert r.returncode == 1


def test_a_plain_pip_install_names_the_extra_for_the_widgets(plain_install, tmp_path):
    code = textwrap.dedent("""
        import irqlab
        from irqlab import widgets
        assert irqlab.__file__.startswith(__import__("sys").argv[1])
        host = irqlab.scenarios.switchboard()
        j = host.raise_msi("0000:03:00.0", 0)
        host.run()
        print(j.text().splitlines()[-1])
        print(widgets.storm_report(plot=False, duration_ns=1_000_000).ledger_text.splitlines()[0])
        try:
            widgets.storm_report(duration_ns=1_000_000)
        except ModuleNotFoundError as e:
            print("ERR", type(e).__name__, e)
    """)
    r = _run_plain(plain_install, ["-c", code, str(plain_install[0])], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout.splitlines()
    assert out[0].startswith("outcome: injected")
    assert out[-1] == ("ERR MissingExtra irqlab.widgets.storm_report(plot=True) needs matplotlib, which is not "
                       "installed: pip install 'irqlab[course]' (from a checkout: pip install -e '.[course]')")


def test_the_readme_example_shows_a_finished_journey():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## In a few lines\n\n```python\n(.*?)```", readme, re.S)
    assert block, "the README's short example is gone"
    code = block.group(1)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert r.stdout.rstrip().splitlines()[-1].startswith("outcome: injected, latency to guest"), r.stdout
    assert "outcome: in flight" not in r.stdout
