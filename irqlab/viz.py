"""Graphviz diagrams drawn from a host's live state, with one interrupt's journey lit hop by hop.

Not a kernel file: it draws what the model holds — the descriptor table and its actions (genirq), the
vfio-bound devices and their eventfds, each VM's irqfds and GSI routes, and the vCPUs — in four clusters,
so that "KVM is a subscriber" is visible: KVM's nodes hang off an eventfd, never off the interrupt.
Simplification: one node per descriptor, action, eventfd, irqfd, route and vCPU; counts on the edges.
"""
from __future__ import annotations

import html
import re
import shutil
from typing import Any

__all__ = ["Diagram", "has_dot", "host_diagram", "journey_diagram", "INSTALL_HINT"]

INSTALL_HINT = ("Graphviz's `dot` is not installed, so here is the diagram as text. Install it with "
                "`sudo apt-get install graphviz` (Debian/Ubuntu), `conda install -c conda-forge graphviz "
                "python-graphviz` or `brew install graphviz`; `python -m irqlab doctor` checks the setup.")
LIT, DIM, HOT = "#d62728", "#b0b0b0", "#fff1e6"
CLUSTERS = [("hw", "hardware: PCI functions", "#f7f7f7"), ("genirq", "host kernel: genirq (the operator)", "#eef5ff"),
            ("vfio", "vfio-pci (the visitors' extension)", "#eefaf0"), ("kvm", "KVM (the subscriber)", "#fff8e6"),
            ("guest", "guest: vCPUs and their local APICs", "#f6efff")]


def has_dot() -> bool:
    """True when Graphviz's ``dot`` program can be run."""
    return shutil.which("dot") is not None


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Diagram:
    """A diagram: ``.dot`` (DOT source), ``.svg()``, ``.text()``; displays itself in Jupyter."""

    def __init__(self, dot: str, text: str, title: str = ""):
        self.dot = dot
        self._text = text
        self.title = title

    def text(self) -> str:
        return self._text

    def svg(self) -> str:
        import graphviz

        return graphviz.Source(self.dot).pipe(format="svg").decode()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict:
        if has_dot():
            try:
                return {"image/svg+xml": self.svg(), "text/plain": self._text}
            except Exception:  # graphviz.ExecutableNotFound, a broken dot: fall back, never a traceback
                pass
        return {"text/plain": INSTALL_HINT + "\n\n" + self._text,
                "text/html": f"<p><i>{html.escape(INSTALL_HINT)}</i></p><pre>{html.escape(self._text)}</pre>"}

    def __repr__(self) -> str:
        return f"<Diagram {self.title}: {self.dot.count('->')} edges>"


class _Graph:
    def __init__(self) -> None:
        self.nodes: dict[str, tuple[str, str, str]] = {}  # id -> (cluster, label, shape)
        self.edges: list[tuple[str, str, str, str]] = []  # (a, b, label, style)

    def node(self, nid: str, cluster: str, label: str, shape: str = "box") -> str:
        self.nodes[nid] = (cluster, label, shape)
        return nid

    def edge(self, a: str, b: str, label: str = "", style: str = "solid") -> None:
        self.edges.append((a, b, label, style))


def _build(host: Any, counts: bool) -> _Graph:
    g = _Graph()
    gi = host.genirq
    for bdf, dev in host.devices.items():
        drv = getattr(dev.driver, "name", "no driver")
        g.node(f"dev:{bdf}", "hw", f"{bdf}\n{dev.name} ({drv})", "component")
    for irq, d in sorted(gi.descs.items()):
        if not d.actions:
            continue
        total = sum(d.kstat)
        lab = f"irq {irq}: {d.hwirq}-{d.name}\n{d.chip_name}\nCPU{d.cpu} vector 0x{d.vector:02x}"
        if counts:
            lab += f"\nkstat {total:,}"
        if d.disabled:
            lab += "\nDISABLED" + (" (nobody cared)" if d.istate & 0x2 else "")
        g.node(f"irq:{irq}", "genirq", lab)
        for i, a in enumerate(d.actions):
            aid = g.node(f"act:{irq}:{i}", "genirq", f"action {a.name}", "note")
            g.edge(f"irq:{irq}", aid, f"{a.handled} handled / {a.none} none" if counts else "")
        for bdf, dev in host.devices.items():
            if dev.gsi == irq or any(v.irq == irq for v in dev.vectors):
                # what this device sent: a shared INTx line's kstat also counts the other devices
                kind, sent = (("INTx", dev.intx_raised) if dev.gsi == irq
                              else ("MSI", sum(v.sent for v in dev.vectors if v.irq == irq)))
                g.edge(f"dev:{bdf}", f"irq:{irq}", f"{kind}: {sent:,}" if counts else kind)
    vdevs = [dev.driver for dev in host.devices.values() if type(dev.driver).__name__ == "VfioPciDevice"]
    efd_ids: dict[int, str] = {}
    for v in vdevs:
        bdf = v.dev.bdf
        g.node(f"vfio:{bdf}", "vfio", f"vfio-pci {bdf}\n{['INTx', 'MSI', 'MSI-X', 'ERR', 'REQ'][v.irq_type] if v.irq_type >= 0 else 'no IRQs set'}"
               + ("\nINTx masked" if v.intx_masked else ""))
        trig = list(v.msi_triggers.items()) + ([(0, v.intx_trigger)] if v.intx_trigger is not None else [])
        for vec, efd in trig:
            eid = efd_ids.setdefault(id(efd), g.node(f"efd:{efd.name}", "vfio", f"eventfd {efd.name}\ncount {efd.count}",
                                                     "cylinder"))
            g.edge(f"vfio:{bdf}", eid, f"signal x{efd.signals:,}" if counts else "eventfd_signal")
        if v.intx_unmask is not None:
            efd = v.intx_unmask.eventfd
            eid = efd_ids.setdefault(id(efd), g.node(f"efd:{efd.name}", "vfio", f"eventfd {efd.name}\n(unmask)", "cylinder"))
            g.edge(eid, f"vfio:{bdf}", "virqfd: unmask", "dashed")
        for irq, d in gi.descs.items():
            for i, a in enumerate(d.actions):
                if a.dev_id is v or any(a.dev_id is e for e in v.msi_triggers.values()):
                    g.edge(f"act:{irq}:{i}", f"vfio:{bdf}", "vfio handler")
    for vm in host.vms:
        for vc in vm.vcpus:
            lap = vc.lapic
            lab = f"vm{vm.id} vcpu{vc.id} ({vc.mode})\nIRR {[hex(x) for x in sorted(lap.irr)]}\nISR {[hex(x) for x in sorted(lap.isr)]}"
            if counts:
                lab += f"\ndelivered {sum(vc.delivered.values()):,}, exits {vc.vmexits:,}"
            g.node(f"vcpu:{vm.id}:{vc.id}", "guest", lab, "box3d")
        for f in vm.irqfds:
            fid = g.node(f"irqfd:{vm.id}:{f.gsi}", "kvm", f"vm{vm.id} irqfd gsi {f.gsi}"
                         + (" (resample)" if f.resamplefd is not None else ""), "ellipse")
            eid = efd_ids.setdefault(id(f.eventfd), g.node(f"efd:{f.eventfd.name}", "vfio",
                                                           f"eventfd {f.eventfd.name}\ncount {f.eventfd.count}", "cylinder"))
            g.edge(eid, fid, (f"wakeups {f.wakeups:,}" if counts else "irqfd_wakeup"), "bold")
            for e in vm.routing.entries(f.gsi):
                rid = g.node(f"route:{vm.id}:{f.gsi}:{e.type}:{e.irqchip}", "kvm", _route_label(vm, e), "hexagon")
                g.edge(fid, rid, f"fast {f.fast_path:,} / work {f.work_path:,}" if counts else "")
                for i in _route_targets(vm, e):
                    g.edge(rid, f"vcpu:{vm.id}:{i}", "")
    for irq, irte in host.irqbypass.irtes.items():
        vc = irte.vcpu
        dev = next((d for d in host.devices.values() if any(v.irq == irq for v in d.vectors)), None)
        if dev is not None:
            g.edge(f"dev:{dev.bdf}", f"vcpu:{vc.vm.id}:{vc.id}", f"VT-d posted (vector 0x{irte.vector:02x}) x{irte.posted:,}",
                   "dashed")
    return g


def _route_label(vm: Any, e: Any) -> str:
    from .kvm import msi as _msi
    from .uapi import KVM_IRQ_ROUTING_MSI

    if e.type == KVM_IRQ_ROUTING_MSI:
        try:
            m = _msi.decode(e.address_lo, e.data, e.address_hi, x2apic_32bit_ids=vm.x2apic_32bit_ids)
            return f"route gsi {e.gsi}: MSI\ndest {m.dest_id} vector 0x{m.vector:02x}"
        except ValueError:
            return f"route gsi {e.gsi}: MSI (bad address)"
    chip = {0: "PIC master", 1: "PIC slave", 2: "IOAPIC"}.get(e.irqchip, "?")
    extra = ""
    if e.irqchip == 2 and vm.ioapic is not None:
        r = vm.ioapic.redirtbl[e.pin]
        extra = "\nmasked" if r.masked else f"\nvector 0x{r.vector:02x} {'level' if r.trigger_level else 'edge'}"
    return f"route gsi {e.gsi}: {chip} pin {e.pin}{extra}"


def _route_targets(vm: Any, e: Any) -> list[int]:
    from .kvm import msi as _msi
    from .uapi import KVM_IRQ_ROUTING_MSI

    try:
        if e.type == KVM_IRQ_ROUTING_MSI:
            m = _msi.decode(e.address_lo, e.data, e.address_hi, x2apic_32bit_ids=vm.x2apic_32bit_ids)
        elif vm.ioapic is not None and e.irqchip == 2:
            r = vm.ioapic.redirtbl[e.pin]
            if r.masked:
                return []
            m = _msi.encode(dest_id=r.dest_id, vector=r.vector or 16)
        else:
            return []
        return _msi.delivery_destinations(m, vm.apic_identities())[0]
    except ValueError:
        return []


def _journey_nodes(host: Any, g: _Graph, journey: Any, upto: int | None) -> list[tuple[int, str]]:
    """The node each hop happens at (in order), as far as hop ``upto``."""
    hops = journey.hops if upto is None else journey.hops[:upto + 1]
    out = []
    bdf = journey.source.split()[0] if journey.source[:4].count(":") == 0 and ":" in journey.source else None
    irq = None
    last_efd = None
    for i, h in enumerate(hops):
        d = h.detail
        nid = None
        if h.actor == "device" and bdf:
            nid = f"dev:{bdf}"
        m = re.search(r"irq (\d+)", d)
        if m and f"irq:{m.group(1)}" in g.nodes:
            irq = m.group(1)
        if h.function in ("common_interrupt", "handle_edge_irq", "handle_fasteoi_irq", "handle_irq_event",
                          "generic_handle_irq", "note_interrupt", "try_one_irq", "check_irq_resend", "unmask_irq"):
            nid = f"irq:{irq}" if irq else None
        elif h.function == "__handle_irq_event_percpu" and irq:
            m = re.search(r"action '([^']+)'", d)
            desc = host.genirq.descs.get(int(irq))
            if m and desc:
                names = [a.name for a in desc.actions]
                if m.group(1) in names:
                    nid = f"act:{irq}:{names.index(m.group(1))}"
        elif h.function.startswith("vfio_"):
            nid = f"vfio:{bdf}" if f"vfio:{bdf}" in g.nodes else None
        elif h.function.startswith("eventfd_signal"):
            name = d.split(": count")[0]
            last_efd = f"efd:{name}"
            nid = last_efd if last_efd in g.nodes else None
        elif h.function in ("irqfd_wakeup", "eventfd_ctx_do_read", "schedule_work", "irqfd_inject"):
            m = re.search(r"vm(\d+) gsi (\d+)", d)
            if m:
                nid = f"irqfd:{m.group(1)}:{m.group(2)}"
            elif out and out[-1][1].startswith("irqfd:"):
                nid = out[-1][1]
        elif h.actor == "iommu" or h.actor in ("lapic", "guest") or h.function in ("kvm_vcpu_kick", "kvm_vcpu_wake_up",
                                                                               "pi_wakeup_handler", "vmx_sync_pir_to_irr"):
            m = re.search(r"vcpu(\d+)", d)
            vm_ = host.vms[0] if host.vms else None
            for vm in host.vms:
                if any(n.startswith(f"irqfd:{vm.id}:") for _, n in out) or len(host.vms) == 1:
                    vm_ = vm
            if m and vm_ is not None:
                nid = f"vcpu:{vm_.id}:{m.group(1)}"
        elif h.actor == "kvm":
            m = re.search(r"gsi (\d+)", d)
            prev = [n for _, n in out if n.startswith("irqfd:")]
            if prev:
                vmid, gsi = prev[-1].split(":")[1:3]
                rid = next((n for n in g.nodes if n.startswith(f"route:{vmid}:{gsi}:")), None)
                nid = rid
        if nid is not None and nid in g.nodes:
            out.append((i + 1, nid))
    return out


def _render(g: _Graph, lit: list[tuple[int, str]], title: str) -> tuple[str, str]:
    lit_nodes: dict[str, list[int]] = {}
    for step, nid in lit:
        lit_nodes.setdefault(nid, []).append(step)
    path = [nid for _, nid in lit]
    lit_edges = {(a, b) for a, b in zip(path, path[1:]) if a != b}
    highlight = bool(lit)
    ids = {nid: f"n{i}" for i, nid in enumerate(g.nodes)}
    lines = ["digraph irqlab {", '  graph [rankdir=TB, fontname="Helvetica", fontsize=12, nodesep=0.2, ranksep=0.35, '
             f'label={_q(title)}, labelloc=t, newrank=true, size="9,40"];',
             '  node [fontname="Helvetica", fontsize=10, style=filled, fillcolor=white];',
             '  edge [fontname="Helvetica", fontsize=9];']
    for cid, clabel, color in CLUSTERS:
        members = [n for n, (c, _, _) in g.nodes.items() if c == cid]
        if not members:
            continue
        lines.append(f"  subgraph cluster_{cid} {{ label={_q(clabel)}; style=filled; color={_q(color)};")
        for n in members:
            _, label, shape = g.nodes[n]
            attrs = [f"label={_q(label)}", f"shape={shape}"]
            if n in lit_nodes:
                steps = ",".join(map(str, lit_nodes[n]))
                attrs += [f"color={_q(LIT)}", "penwidth=2.5", f"fillcolor={_q(HOT)}", f"xlabel={_q(steps)}",
                          f"fontcolor={_q(LIT)}"]
            elif highlight:
                attrs += [f"color={_q(DIM)}", f"fontcolor={_q(DIM)}"]
            lines.append(f"    {ids[n]} [{', '.join(attrs)}];")
        lines.append("  }")
    for a, b, label, style in g.edges:
        if a not in ids or b not in ids:
            continue
        attrs = [f"label={_q(label)}"] if label else []
        attrs.append(f"style={style}")
        if (a, b) in lit_edges:
            attrs += [f"color={_q(LIT)}", "penwidth=2.5"]
        elif highlight:
            attrs += [f"color={_q(DIM)}", f"fontcolor={_q(DIM)}"]
        lines.append(f"  {ids[a]} -> {ids[b]} [{', '.join(attrs)}];")
    lines.append("}")
    text = [title] if title else []
    for cid, clabel, _ in CLUSTERS:
        members = [n for n, (c, _, _) in g.nodes.items() if c == cid]
        if members:
            text.append(f"[{clabel}]")
            for n in members:
                mark = f"  <{','.join(map(str, lit_nodes[n]))}>" if n in lit_nodes else ""
                text.append("  " + g.nodes[n][1].replace("\n", " | ") + mark)
    text.append("[edges]")
    for a, b, label, _ in g.edges:
        if a in g.nodes and b in g.nodes:
            star = " *" if (a, b) in lit_edges else ""
            text.append(f"  {g.nodes[a][1].splitlines()[0]} -> {g.nodes[b][1].splitlines()[0]}"
                        + (f"  ({label})" if label else "") + star)
    return "\n".join(lines) + "\n", "\n".join(text)


def host_diagram(host: Any, *, journey: Any = None, upto: int | None = None, counts: bool = True,
                 title: str | None = None) -> Diagram:
    """The host as it is now; with ``journey``, its hops (up to index ``upto``) lit in order."""
    g = _build(host, counts)
    lit = _journey_nodes(host, g, journey, upto) if journey is not None else []
    if title is None:
        title = f"{journey.source}: hop {len(journey.hops) if upto is None else upto + 1} of {len(journey.hops)}" \
            if journey is not None else "who hears which interrupt"
    dot, text = _render(g, lit, title)
    return Diagram(dot, text, title)


def journey_diagram(host: Any, journey: Any, upto: int | None = None) -> Diagram:
    return host_diagram(host, journey=journey, upto=upto)
