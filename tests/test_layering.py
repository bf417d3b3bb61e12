"""The arrows point one way (DESIGN: architecture): kernel services at the bottom, host.py only assembles.

Reads every module's imports, TYPE_CHECKING and function-local ones included, so a circle cannot come back
through a hint or a lazy import.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "irqlab"

#: the layer below every subsystem
SERVICES = {"errors", "uapi", "ledger", "trace", "timing", "sched", "event", "kernel", "cpu"}
#: the kernel's subsystems, as the model has them
MODEL = {"genirq", "spurious", "eventfd", "pci", "vfio", "kvm.vm", "kvm.irqchip", "kvm.irqfd", "kvm.lapic",
         "kvm.msi", "kvm.posted", "procfs", "affinity", "cpumap"}
#: what sits on top: never imported by the model or the services
TOP = {"host", "scenarios", "storm", "viz", "widgets", "check", "doctor"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(parts)


def _imports(path: Path, mod: str | None = None) -> set[str]:
    """The irqlab modules a file imports, as dotted names relative to the package."""
    mod = mod or _module_name(path)
    pkg = mod.split(".")[:-1] if path.name != "__init__.py" else mod.split(".")
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - (node.level - 1)] if node.level > 1 else pkg
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
                names = [target] if node.module else [".".join([*base, a.name]) for a in node.names]
                out.update(n for n in names if n)
            elif node.module and node.module.startswith("irqlab"):
                out.add(node.module.removeprefix("irqlab").lstrip("."))
        elif isinstance(node, ast.Import):
            out.update(a.name.removeprefix("irqlab").lstrip(".") for a in node.names if a.name.startswith("irqlab"))
    return out


def _top_of(name: str) -> str:
    return name.split(".")[0] if name.split(".")[0] in {"storm"} else name


FILES = {_module_name(p): p for p in PKG.rglob("*.py")}


@pytest.mark.parametrize("mod", sorted(SERVICES))
def test_services_import_only_services(mod):
    bad = {m for m in _imports(FILES[mod]) if m not in SERVICES}
    assert not bad, f"irqlab.{mod} is a kernel service but imports {sorted(bad)}"


@pytest.mark.parametrize("mod", sorted(MODEL))
def test_model_never_imports_the_facade_or_what_sits_on_top(mod):
    bad = {m for m in _imports(FILES[mod]) if _top_of(m) in TOP or m.startswith("storm")}
    assert not bad, f"irqlab.{mod} imports {sorted(bad)}: the model must not import host.py or the layers above it"


def test_every_module_is_placed_in_a_layer():
    known = SERVICES | MODEL | TOP | {"", "kvm", "__main__", "_optional", "x86_vector"}
    stray = {m for m in FILES if m not in known and not m.startswith("storm")}
    assert not stray, f"new modules {sorted(stray)}: place them in a layer of tests/test_layering.py"


def test_the_checker_sees_hint_only_and_local_imports(tmp_path):
    """`if TYPE_CHECKING: from .host import Host` and a function's `from ..host import X` both count."""
    fake = tmp_path / "vm.py"
    fake.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..host import Host\n"
                    "def f():\n    from ..storm import run\n    from .. import viz\n")
    assert _imports(fake, "kvm.vm") == {"host", "storm", "viz"}
