"""Graphviz diagrams drawn from a host's state, with one interrupt's journey lit hop by hop.

Not a kernel file: it draws what the model holds — the irq domains with their descriptors and actions
(genirq, one table per domain, rows like /proc/interrupts), the vfio-bound devices and their eventfds, each
VM's irqfds and GSI routes, and the vCPUs — in five clusters, so that "KVM is a subscriber" is visible: KVM's
nodes hang off an eventfd, never off the interrupt. Every number and flag comes from one snapshot of the
observable state (``irqlab.trace.observe``): the host's now, or a hop's ``state`` to draw the journey as it
was at that hop. Simplification: one node per device, domain, eventfd, irqfd, route and vCPU; counts on the
edges; every text is 11 pt (14.7 px unscaled) so it stays >= 11 px at 100% zoom down to a 75% scale.
"""
from __future__ import annotations

import html
import re
import shutil
from dataclasses import dataclass, field
from typing import Any

from .trace import Target, eventfds, format_value, observe

__all__ = ["Diagram", "has_dot", "host_diagram", "journey_diagram", "cpu_diagram", "INSTALL_HINT", "hop_nodes",
           "cpu_hop_nodes", "exit_cpus"]

INSTALL_HINT = ("Graphviz's `dot` is not installed, so here is the diagram as text. Install it with "
                "`sudo apt-get install graphviz` (Debian/Ubuntu), `conda install -c conda-forge graphviz "
                "python-graphviz` or `brew install graphviz`; `python -m irqlab doctor` checks the setup.")
LIT, DIM, HOT = "#d62728", "#9a9a9a", "#fff1e6"
NODE_PT = EDGE_PT = 11   # every text in points: 14.7 px unscaled, still 11 px when a widget shrinks it to 75 %
#: widest drawing, in inches: JupyterLab shows an SVG image at its natural width and never shrinks it, and its
#: output area is 964 px wide at 1400x1000 (720 pt = 960 px). Wider graphs are scaled down by dot; the layouts
#: keep them narrow enough that the scale stays >= 0.75 (tests/test_viz.py and the browser test measure it).
MAX_IN = 10
CLUSTERS = [("hw", "hardware: PCI functions", "#f4f4f4"), ("genirq", "host kernel: genirq (the operator)", "#eaf2ff"),
            ("vfio", "vfio-pci (the visitors' extension)", "#eaf8ee"), ("kvm", "KVM (the subscriber)", "#fff6e0"),
            ("guest", "guest: vCPUs and their local APICs", "#f3ecff")]
BDF_RE = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]$")


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
        self._svg: str | None = None

    def text(self) -> str:
        return self._text

    def svg(self) -> str:
        if self._svg is None:
            import graphviz

            self._svg = graphviz.Source(self.dot).pipe(format="svg").decode()
        return self._svg

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


# ------------------------------------------------------------------------------------------ the graph
@dataclass
class _Node:
    cluster: str
    lines: list[str]                    # the label, one line each (a table's header)
    shape: str = "box"
    rows: list[list[tuple[str, str]]] = field(default_factory=list)  # a table: rows of (port, text) cells
    name: str = ""                      # its name in the text form (default: the label's first line)
    fill: str = ""                      # a fill colour of its own (not lit, not dimmed)
    foot: list[str] = field(default_factory=list)  # a table's last lines, across all its columns

    @property
    def title(self) -> str:
        return self.name or self.lines[0]


class _Graph:
    def __init__(self) -> None:
        self.nodes: dict[str, _Node] = {}
        self.edges: list[tuple[str, str, str, str]] = []  # (a, b, label, style); a/b may be "node:port"

    def node(self, nid: str, cluster: str, lines: list[str], shape: str = "box") -> str:
        self.nodes.setdefault(nid, _Node(cluster, lines, shape))
        return nid

    def edge(self, a: str, b: str, label: str = "", style: str = "solid") -> None:
        self.edges.append((a, b, label, style))


def _n(v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) else format_value(v)


GENIRQ = "genirq"  # the descriptor table's node


def _build(host: Any, st: dict, counts: bool) -> _Graph:
    """The host's objects (from the live host) with their values from the snapshot ``st``."""
    g = _Graph()
    gi = host.genirq
    get = st.get
    for bdf, dev in host.devices.items():
        drv = getattr(dev.driver, "name", None) or "no driver"
        lines = [f"{bdf} {dev.name}", f"driver: {drv}"]
        intx_in_use = dev.gsi is not None and (dev.gsi in getattr(dev.driver, "irqs", ())
                                               or getattr(dev.driver, "irq_type", -1) == 0)
        if intx_in_use:  # the INTx bits a driver reads and vfio-pci masks with (PCI 2.3)
            status = get(Target("pci", bdf, "Status.Interrupt"))
            dis = get(Target("pci", bdf, "Command.INTx_Disable"))
            if status is not None:
                lines.append(f"Status.Interrupt {int(status)} · DisINTx {int(dis)}")
        g.node(f"dev:{bdf}", "hw", lines, "component")
    # genirq: the descriptor table, one section per irq domain (chip), one row per action (like /proc/interrupts)
    table = None
    last_dom = None
    for irq, d in sorted(gi.descs.items(), key=lambda kv: (kv[1].chip_name or "", kv[0])):
        if not d.actions:
            continue
        if table is None:
            table = g.nodes[g.node(GENIRQ, "genirq", ["irq descriptors (/proc/interrupts)"], "plain")]
            table.rows.append([("", "irq"), ("", "hwirq-flow"), ("", "CPU, vector"), ("", "kstat"), ("", "action"),
                               ("", "handled/none")])
        if d.chip_name != last_dom:
            table.rows.append([("§", d.chip_name or "no chip")])
            last_dom = d.chip_name
        kst = sum(get(Target("irq", irq, f"kstat CPU{c}"), 0) for c in range(len(d.kstat)))
        flags = []
        if get(Target("irq", irq, "IRQD_IRQ_DISABLED")):
            flags.append("disabled" + (" (nobody cared)" if "SPURIOUS" in str(get(Target("irq", irq, "istate")))
                                       else ""))
        elif get(Target("irq", irq, "IRQD_IRQ_MASKED")):
            flags.append("masked")
        if "IRQS_PENDING" in str(get(Target("irq", irq, "istate"), "")):
            flags.append("IRQS_PENDING")
        for k, a in enumerate(d.actions):
            h = get(Target("irq", irq, f"action {a.name} IRQ_HANDLED"), 0)
            nn = get(Target("irq", irq, f"action {a.name} IRQ_NONE"), 0)
            first = k == 0
            table.rows.append([
                (f"i{irq}" if first else "", f"{irq}" if first else ""),
                ("", f"{d.hwirq}-{d.name}" if first else ""),
                ("", f"CPU{d.cpu} 0x{d.vector:02x}" if first else ""),
                ("", ((_n(kst) if counts else "") + (" " + ", ".join(flags) if flags else "")) if first else ""),
                (f"a{irq}_{k}", a.name),
                ("", f"{_n(h)} / {_n(nn)}" if counts else ""),
            ])
    for bdf, dev in host.devices.items():  # one edge per device and kind: what it sent, to which irqs
        for kind, irqs, sent in _device_lines(dev, get):
            if table is not None and any(f"i{i}" == p for r in table.rows for p, _ in r[:1] for i in irqs):
                what = f"irq {irqs[0]}" if len(irqs) == 1 else f"irqs {irqs[0]}–{irqs[-1]}"
                g.edge(f"dev:{bdf}", GENIRQ, f"{kind} {_n(sent)} → {what}" if counts else f"{kind} → {what}")
    names = {id(e): name for name, e in eventfds(host).items()}

    def efd_node(e: Any, role: str = "") -> str:
        name = names.get(id(e), e.name)
        lines = [f"eventfd{' (' + role + ')' if role else ''}", name]
        c = get(Target("eventfd", name, "count"))
        if c is not None:
            lines.append(f"count {_n(c)}")
        nid = g.node(f"efd:{name}", "vfio", lines, "cylinder")
        g.nodes[nid].name = f"eventfd {name}"
        return nid

    for dev in host.devices.values():
        v = dev.driver
        if type(v).__name__ != "VfioPciDevice":
            continue
        bdf = dev.bdf
        kind = ["INTx", "MSI", "MSI-X", "ERR", "REQ"][v.irq_type] if v.irq_type >= 0 else "no IRQs set"
        lines = [f"vfio-pci {bdf}", kind]
        m = get(Target("vfio", bdf, "INTx masked"))
        if m is not None:
            lines[-1] += f" · masked {int(m)}"
        g.node(f"vfio:{bdf}", "vfio", lines)
        trig = [v.msi_triggers[k] for k in sorted(v.msi_triggers)] + ([v.intx_trigger] if v.intx_trigger else [])
        for efd in trig:
            eid = efd_node(efd)
            sig = get(Target("eventfd", names.get(id(efd), efd.name), "signals"), 0)
            g.edge(f"vfio:{bdf}", eid, f"signal ×{_n(sig)}" if counts else "eventfd_signal")
        if v.intx_unmask is not None:
            eid = efd_node(v.intx_unmask.eventfd, "unmask")
            g.edge(eid, f"vfio:{bdf}", "virqfd: unmask", "dashed|flip")  # ranked below vfio, like its trigger
        handlers = [(irq, k) for irq, d in sorted(gi.descs.items()) for k, a in enumerate(d.actions)
                    if a.dev_id is v or any(a.dev_id is e for e in v.msi_triggers.values())]
        for n, (irq, k) in enumerate(handlers):  # name it once: four "handler" labels only crowd the picture
            g.edge(f"{GENIRQ}:a{irq}_{k}", f"vfio:{bdf}", "vfio handler" if n == 0 else "")
    for vm in host.vms:
        for vc in vm.vcpus:
            key = (vm.id, vc.id)
            T = lambda f: get(Target("vcpu", key, f))  # noqa: E731
            lines = [f"vm{vm.id} vcpu{vc.id} ({T('mode') or vc.mode})",
                     f"IRR {format_value(T('IRR') or frozenset())} ISR {format_value(T('ISR') or frozenset())}"]
            if vm.apicv:
                lines.append(f"PIR {format_value(T('PIR') or frozenset())} ON {int(bool(T('PI ON')))}")
            if counts:
                lines.append(f"delivered {_n(T('delivered') or 0)} · exits {_n(T('VM exits') or 0)}")
            g.node(f"vcpu:{vm.id}:{vc.id}", "guest", lines, "box3d")
        for f in vm.irqfds:
            key = (vm.id, f.gsi)
            lines = [f"vm{vm.id} irqfd gsi {f.gsi}" + (" (resample)" if f.resamplefd is not None else "")]
            if get(Target("irqfd", key, "inject work")) == "pending":
                lines.append("inject work pending")
            fid = g.node(f"irqfd:{vm.id}:{f.gsi}", "kvm", lines, "rounded")
            eid = efd_node(f.eventfd)
            w = get(Target("irqfd", key, "wakeups"), 0)
            g.edge(eid, fid, f"wakeups {_n(w)}" if counts else "irqfd_wakeup", "bold")
            if f.resamplefd is not None:
                g.edge(fid, efd_node(f.resamplefd, "unmask"), "resampler: signal", "dashed|free")  # the way back
            for e in vm.routing.entries(f.gsi):
                rid = g.node(f"route:{vm.id}:{f.gsi}", "kvm", _route_label(vm, e, st), "tab")
                fast, work = get(Target("irqfd", key, "fast path"), 0), get(Target("irqfd", key, "work path"), 0)
                g.edge(fid, rid, f"fast {_n(fast)} · work {_n(work)}" if counts else "")
                for i in _route_targets(vm, e):
                    g.edge(rid, f"vcpu:{vm.id}:{i}", "")
    posted: dict[tuple[str, str], list] = {}  # one edge per device and vCPU: its posted IRTEs' vectors
    for irq, irte in sorted(host.irqbypass.irtes.items()):
        vc = irte.vcpu
        dev = next((d for d in host.devices.values() if any(v.irq == irq for v in d.vectors)), None)
        if dev is not None:
            posted.setdefault((f"dev:{dev.bdf}", f"vcpu:{vc.vm.id}:{vc.id}"), []).append(irte)
    for (a, b), irtes in posted.items():
        n = sum(get(Target("irte", i.irq, "posted"), 0) for i in irtes)
        vecs = ", ".join(f"0x{i.vector:02x}" for i in irtes)
        g.edge(a, b, f"VT-d posted {vecs} ×{_n(n)}" if counts else f"VT-d posted {vecs}", "dashed|free")
    return g


def _device_lines(dev: Any, get: Any) -> list[tuple[str, list[int], int]]:
    """(kind, irqs, sent) for what a device raises: INTx on its GSI, its MSI/MSI-X vectors' irqs."""
    out = []
    sent = get(Target("pci", dev.bdf, "INTx asserted"), 0)
    in_use = dev.gsi is not None and (dev.gsi in getattr(dev.driver, "irqs", ())
                                      or getattr(dev.driver, "irq_type", -1) == 0)
    if dev.gsi is not None and (in_use or sent):  # a device on MSI-X does not use its pin
        out.append(("INTx", [dev.gsi], sent))
    if dev.vectors:
        kind = "MSI-X" if dev.msix_enabled else "MSI"
        out.append((kind, sorted(v.irq for v in dev.vectors),
                    sum(get(Target("pci", dev.bdf, f"{kind}[{v.index}] sent"), 0) for v in dev.vectors)))
    return out


def _route_label(vm: Any, e: Any, st: dict) -> list[str]:
    from .kvm import msi as _msi
    from .uapi import KVM_IRQ_ROUTING_MSI

    if e.type == KVM_IRQ_ROUTING_MSI:
        try:
            m = _msi.decode(e.address_lo, e.data, e.address_hi, x2apic_32bit_ids=vm.x2apic_32bit_ids)
            return [f"route gsi {e.gsi}: MSI", f"dest {m.dest_id} vector 0x{m.vector:02x}"]
        except ValueError:
            return [f"route gsi {e.gsi}: MSI", "(bad address)"]
    chip = {0: "PIC master", 1: "PIC slave", 2: "IOAPIC"}.get(e.irqchip, "?")
    lines = [f"route gsi {e.gsi}: {chip} pin {e.pin}"]
    if e.irqchip == 2 and vm.ioapic is not None:
        r = vm.ioapic.redirtbl[e.pin]
        if r.masked:
            lines.append("masked")
        else:
            lines.append(f"vector 0x{r.vector:02x} {'level' if r.trigger_level else 'edge'}")
            irr = st.get(Target("ioapic", (vm.id, e.pin), "IRR"))
            rirr = st.get(Target("ioapic", (vm.id, e.pin), "remote IRR"))
            if irr is not None:
                lines.append(f"IRR {int(irr)} · remote IRR {int(rirr)}")
    return lines


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


# ------------------------------------------------------------------------------- where each hop happens
_ROUTE_FUNCS = ("kvm_set_irq", "kvm_set_msi", "kvm_arch_set_irq_inatomic", "kvm_irq_delivery_to_apic",
                "kvm_irq_delivery_to_apic_fast", "kvm_ioapic_set_irq", "ioapic_set_irq", "ioapic_service",
                "kvm_ioapic_update_eoi", "kvm_ioapic_update_eoi_one", "kvm_notify_acked_irq", "kvm_set_routing_entry")


def _vm_of(host: Any, bdf: str | None) -> Any:
    """The VM whose irqfd listens on one of ``bdf``'s vfio eventfds (None if it is not passed through)."""
    dev = host.devices.get(bdf) if bdf else None
    v = getattr(dev, "driver", None)
    if type(v).__name__ != "VfioPciDevice":
        return None
    trig = {id(e) for e in v.msi_triggers.values()} | ({id(v.intx_trigger)} if v.intx_trigger else set())
    return next((vm for vm in host.vms if any(id(f.eventfd) in trig for f in vm.irqfds)), None)


#: the hops of a VM exit for an external interrupt (arch/x86/kvm/vmx/vmx.c, x86.h) and the system-vector handlers
#: the host's IDT entry runs inside it (arch/x86/kernel/smp.c, irq.c): they happen to the vCPU that exited
EXIT_HOPS = frozenset({"VM exit", "vmx_handle_exit_irqoff", "handle_external_interrupt_irqoff", "kvm_before_interrupt",
                       "kvm_after_interrupt", "handle_external_interrupt"})
SYSVEC_HOPS = frozenset({"sysvec_reschedule_ipi", "sysvec_kvm_posted_intr_ipi", "sysvec_kvm_posted_intr_wakeup_ipi"})


def exit_cpus(journey: Any) -> dict[int, int | None]:
    """Hop index -> the host CPU of the VM exit the hop belongs to, for every hop of an exit (``EXIT_HOPS``) and
    of a system vector's handler inside one (``SYSVEC_HOPS``); the CPU is read from what the exit's hops
    changed (the kstat column of the interrupt it took, or its RES/PIN/PIW row), never from the hops' text."""
    hops, out, k = journey.hops, {}, 0
    while k < len(hops):
        if hops[k].function != "VM exit":
            k += 1
            continue
        end = next((i for i in range(k, len(hops)) if hops[i].function == "handle_external_interrupt"), len(hops) - 1)
        cpu = None
        for h in hops[k:end + 1]:
            for c in h.changes:
                t = c.target
                if t.kind == "cpu":
                    cpu = t.ident
                elif t.kind == "irq" and t.field.startswith("kstat CPU"):
                    cpu = int(t.field[len("kstat CPU"):])
                if cpu is not None:
                    break
            if cpu is not None:
                break
        for i in range(k, end + 1):
            if hops[i].function in EXIT_HOPS or hops[i].function in SYSVEC_HOPS:
                out[i] = cpu
        k = end + 1
    return out


def _vcpu_on(host: Any, cpu: int | None) -> Any:
    if cpu is None or not 0 <= cpu < len(getattr(host, "cpus", ())):
        return None
    return host.cpus[cpu].curr


def hop_nodes(host: Any, g: _Graph, journey: Any) -> list[str | None]:
    """The node (``id`` or ``id:port`` of a table row) each hop of ``journey`` happens at, or None.

    From structured facts only: the hop's actor and kernel function, the journey's device and irq, and the
    targets of the state the hop changed (which eventfd, irqfd or vCPU); never from the hop's text.
    """
    bdf, irq = journey.device, journey.irq
    names = {id(e): name for name, e in eventfds(host).items()}
    dev = host.devices.get(bdf) if bdf else None
    vdev = getattr(dev, "driver", None)
    vfio = type(vdev).__name__ == "VfioPciDevice"
    trigger = None
    if vfio:
        trigger = vdev.intx_trigger if vdev.irq_type == 0 else next(iter(
            [vdev.msi_triggers[k] for k in sorted(vdev.msi_triggers)
             if dev.vector(k) is not None and dev.vector(k).irq == irq]), None)
    vm = _vm_of(host, bdf)
    irqfd = next((f for f in vm.irqfds if f.eventfd is trigger), None) if vm is not None and trigger else None
    dom = GENIRQ if irq is not None and irq in host.genirq.descs else None
    out: list[str | None] = []
    action_k = 0
    last_vcpu = None
    exits = exit_cpus(journey)
    for k, h in enumerate(journey.hops):
        changed = [c.target for c in h.changes if not c.target.statistic]
        kinds = {t.kind: t for t in changed}
        nid = None
        fn, actor = h.function, h.actor
        if k in exits:  # a VM exit and what the host's IDT ran inside it: the vCPU that exited
            v = _vcpu_on(host, exits[k])
            nid = f"vcpu:{v.vm.id}:{v.id}" if v is not None else None
        elif actor == "device" or actor == "iommu" or ("pci" in kinds and actor == "guest"):
            nid = f"dev:{bdf}" if bdf else None  # the device itself, or the guest's driver at its registers
        elif actor in ("cpu", "genirq"):
            if fn == "handle_irq_event":
                action_k = 0
            nid = f"{dom}:i{irq}" if dom else None
        elif actor == "driver":
            nid = f"{dom}:a{irq}_{action_k}" if dom else None
            action_k += 1
        elif actor == "vfio":
            nid = f"vfio:{bdf}" if vfio else None
        elif actor == "eventfd" or fn.startswith("eventfd_"):
            t = kinds.get("eventfd")
            if t is None:  # eventfd_signal changes nothing: the eventfd its next hop counts on
                nxt = journey.hops[k + 1] if k + 1 < len(journey.hops) else None
                t = next((c.target for c in (nxt.changes if nxt else ()) if c.target.kind == "eventfd"), None)
            if t is not None:
                nid = f"efd:{t.ident}"
            elif trigger is not None:
                nid = f"efd:{names.get(id(trigger), trigger.name)}"
        elif "vcpu" in kinds and actor in ("kvm", "lapic", "guest"):
            t = kinds["vcpu"]
            nid = last_vcpu = f"vcpu:{t.ident[0]}:{t.ident[1]}"
        elif actor in ("lapic", "guest") or fn.startswith(("vmx_", "kvm_vcpu", "__vmx", "pi_", "kvm_apic",
                                                             "kvm_lapic", "__apic", "handle_apic",
                                                             "native_smp_send_reschedule", "handle_external_interrupt",
                                                             "kvm_before_interrupt", "kvm_after_interrupt")):
            nid = last_vcpu
            if nid is None and vm is not None and irqfd is not None:
                for e in vm.routing.entries(irqfd.gsi):
                    tg = _route_targets(vm, e)
                    if tg:
                        nid = last_vcpu = f"vcpu:{vm.id}:{tg[0]}"
                        break
        elif actor == "kvm" and irqfd is not None:
            nid = f"route:{vm.id}:{irqfd.gsi}" if fn in _ROUTE_FUNCS or "ioapic" in fn else f"irqfd:{vm.id}:{irqfd.gsi}"
        out.append(nid if nid is not None and _base(nid) in g.nodes else None)
    return out


def _base(nid: str) -> str:
    """A node id without its table port: "genirq:i16" -> "genirq", "cpu1:r24" -> "cpu1"."""
    if nid.startswith(GENIRQ + ":"):
        return GENIRQ
    if nid.startswith("cpu") and ":r" in nid:
        return nid.split(":r")[0]
    return nid


# ------------------------------------------------------------------------------------------ rendering
def _steps(steps: list[int]) -> str:
    """Hop numbers with runs shortened: [7, 8, 10, 13, 14, 15] -> "7,8,10,13–15"."""
    out, i = [], 0
    while i < len(steps):
        j = i
        while j + 1 < len(steps) and steps[j + 1] == steps[j] + 1:
            j += 1
        out.append(f"{steps[i]}–{steps[j]}" if j - i >= 2 else ",".join(map(str, steps[i:j + 1])))
        i = j + 1
    return ",".join(out)


def _label_html(node: _Node, lit: dict[str, list[int]], nid: str, dim: bool) -> str:
    """A table node as a Graphviz HTML-like label; lit cells in red with their hop numbers."""
    e = html.escape
    fc = DIM if dim else "black"
    ncol = max(len(r) for r in node.rows)
    out = [f'<<TABLE BORDER="1" CELLBORDER="0" CELLSPACING="0" CELLPADDING="2" COLOR="{fc}" BGCOLOR="white">',
           f'<TR><TD COLSPAN="{ncol}" ALIGN="LEFT"><FONT COLOR="{fc}"><B>{e(node.lines[0])}</B></FONT></TD></TR>']
    for r, row in enumerate(node.rows):
        if row[0][0] == "§":  # a section: the irq domain
            out.append(f'<TR><TD COLSPAN="{ncol}" ALIGN="LEFT" BGCOLOR="#f2f2f2"><FONT COLOR="{fc}">'
                       f'<I>{e(row[0][1])}</I></FONT></TD></TR>')
            continue
        cells = []
        for port, text in row:
            key = f"{nid}:{port}" if port else None
            steps = lit.get(key, []) if key else []
            attrs = f' PORT="{port}"' if port else ""
            color = LIT if steps else (DIM if (dim or r == 0) else "black")
            if steps:
                attrs += f' BGCOLOR="{HOT}"'
            size = f' POINT-SIZE="{EDGE_PT}"' if r == 0 else ""
            mark = (f'<FONT COLOR="{LIT}" POINT-SIZE="{EDGE_PT}"><B>{_steps(steps)}</B></FONT> '
                    if steps else "")
            cells.append(f'<TD{attrs} ALIGN="LEFT">{mark}<FONT COLOR="{color}"{size}>{e(text) or " "}</FONT></TD>')
        out.append("<TR>" + "".join(cells) + "</TR>")
    for line in node.foot:
        out.append(f'<TR><TD COLSPAN="{ncol}" ALIGN="LEFT"><FONT COLOR="{DIM if dim else "black"}">{e(line)}'
                   '</FONT></TD></TR>')
    out.append("</TABLE>>")
    return "".join(out)


def _render(g: _Graph, lit_path: list[tuple[int, str]], title: str) -> tuple[str, str]:
    dot, lit = _dot(g, lit_path, title, CLUSTERS)
    return dot, _text(g, lit, title)


def _dot(g: _Graph, lit_path: list[tuple[int, str]], title: str,
         clusters: list[tuple[str, str, str]]) -> tuple[str, dict[str, list[int]]]:
    lit: dict[str, list[int]] = {}
    for step, nid in lit_path:
        lit.setdefault(nid, []).append(step)
    lit_bases = {_base(n) for n in lit}

    base_steps: dict[str, list[int]] = {}
    for k, v in lit.items():
        base_steps.setdefault(_base(k), []).extend(v)

    def on_path(a: str, b: str) -> bool:  # the journey went from a to b (b seen after a was)
        sa, sb = lit.get(a) or base_steps.get(a), lit.get(b) or base_steps.get(b)
        return bool(sa and sb and max(sb) > min(sa))

    highlight = bool(lit_path)
    ids = {nid: f"n{i}" for i, nid in enumerate(g.nodes)}

    def ref(end: str) -> str:
        base = _base(end)
        return ids[base] + (f":{end[len(base) + 1:]}" if end != base else "")

    lines = ["digraph irqlab {",
             f'  graph [rankdir=TB, fontname="Helvetica", fontsize={NODE_PT + 1}, nodesep=0.25, ranksep=0.3, '
             f'label={_q(title)}, labelloc=t, labeljust=l, ordering=out, forcelabels=true, size="{MAX_IN},100"];',
             f'  node [fontname="Helvetica", fontsize={NODE_PT}, style=filled, fillcolor=white, margin="0.1,0.04"];',
             f'  edge [fontname="Helvetica", fontsize={EDGE_PT}, arrowsize=0.7];']
    for cid, clabel, color in clusters:
        members = [n for n, node in g.nodes.items() if node.cluster == cid]
        if not members:
            continue
        lines.append(f"  subgraph cluster_{cid} {{ label={_q(clabel)}; style=filled; color={_q(color)}; "
                     f"fontsize={NODE_PT};")
        for n in members:
            node = g.nodes[n]
            dim = highlight and n not in lit_bases
            if node.rows:
                lines.append(f"    {ids[n]} [shape=plain, label={_label_html(node, lit, n, dim)}];")
                continue
            attrs = [f"label={_q(chr(10).join(node.lines))}",
                     'shape=box, style="rounded,filled"' if node.shape == "rounded" else f"shape={node.shape}"]
            if n.startswith("vfio:"):
                attrs.append("ordering=out")  # its eventfds in vector order
            if n in lit:
                attrs += [f"color={_q(LIT)}", "penwidth=2.5", f"fillcolor={_q(HOT)}",
                          f"xlabel={_q(_steps(lit[n]))}", f"fontcolor={_q(LIT)}"]
            elif dim:
                attrs += [f"color={_q(DIM)}", f"fontcolor={_q(DIM)}"]
            elif node.fill:
                attrs.append(f"fillcolor={_q(node.fill)}")
            lines.append(f"    {ids[n]} [{', '.join(attrs)}];")
        for group in _pairs(g, cid):
            lines.append("    { rank=same; " + "; ".join(ids[n] for n in group) + "; }")
        lines.append("  }")
    flipped = {(grp[-1], r) for cid, _, _ in CLUSTERS if cid == "kvm" for grp in _pairs(g, cid) for r in grp[:-1]}
    for a, b, label, style in g.edges:
        if _base(a) not in ids or _base(b) not in ids:
            continue
        style, *flags = style.split("|")
        attrs = [f"{'xlabel' if style == 'dashed' and a.startswith('dev:') else 'label'}={_q(' ' + label + ' ')}"] \
            if label else []
        attrs.append(f"style={style}")
        lit_edge = on_path(a, b)
        if (a, b) in flipped or "flip" in flags:  # laid out the other way: same arrow, reversed for the ranks
            a, b = b, a
            attrs.append("dir=back")
        if "free" in flags:  # a way back up the picture: it must not pull the ranks around
            attrs.append("constraint=false")
        if "invis" in flags:
            attrs = ["style=invis"]
        elif lit_edge:
            attrs += [f"color={_q(LIT)}", "penwidth=2.5", f"fontcolor={_q(LIT)}"]
        elif highlight:
            attrs += [f"color={_q(DIM)}", f"fontcolor={_q(DIM)}"]
        else:
            color = next((f[6:] for f in flags if f.startswith("color=")), None)
            if color:
                attrs += [f"color={_q(color)}", f"fontcolor={_q(color)}"]
        lines.append(f"  {ref(a)} -> {ref(b)} [{', '.join(attrs)}];")
    lines.append("}")
    return "\n".join(lines) + "\n", lit


def _pairs(g: _Graph, cid: str) -> list[list[str]]:
    """Side by side to keep a one-device picture short: the only vfio device with its only eventfd, and
    the only irqfd with its route (with more, side by side would only get wider)."""
    out = []
    if cid == "vfio":
        vfio = [n for n in g.nodes if n.startswith("vfio:")]
        if len(vfio) == 1:
            n = vfio[0]
            efds = [b for a, b, _, _ in g.edges if a == n and b.startswith("efd:")]
            efds += [a for a, b, _, _ in g.edges if b == n and a.startswith("efd:")]  # its unmask eventfd
            if len(set(efds)) == 1:
                out.append([n, *dict.fromkeys(efds)])
    elif cid == "kvm":
        irqfds = [n for n in g.nodes if n.startswith("irqfd:")]
        if len(irqfds) == 1:
            for n in irqfds:
                routes = [b for a, b, _, _ in g.edges if a == n and b.startswith("route:")]
                if routes:  # the route on the irqfd's left: the chain zigzags instead of drifting right
                    out.append([*dict.fromkeys(routes), n])
    return out


def _text(g: _Graph, lit: dict[str, list[int]], title: str) -> str:
    text = [title] if title else []
    mark = lambda key: f"  <{','.join(map(str, lit[key]))}>" if key in lit else ""  # noqa: E731
    for cid, clabel, _ in CLUSTERS:
        members = [n for n, node in g.nodes.items() if node.cluster == cid]
        if not members:
            continue
        text.append(f"[{clabel}]")
        for n in members:
            node = g.nodes[n]
            if node.rows:
                text.append(f"  {node.lines[0]}")
                for row in node.rows[1:]:
                    if row[0][0] == "§":
                        text.append(f"   {row[0][1]}")
                        continue
                    cells = [t for _, t in row]
                    ports = [p for p, _ in row if p]
                    marks = "".join(mark(f"{n}:{p}") for p in ports)
                    irq = f"irq {cells[0]}: " if cells[0] else "        "
                    rest = f"{cells[1]}, {cells[2]}, kstat {cells[3]}, " if cells[0] else ""
                    text.append(f"    {irq}{rest}action {cells[4]} ({cells[5]} handled/none){marks}")
            else:
                rest = node.lines[2:] if node.name else node.lines[1:]
                text.append("  " + " | ".join([node.title, *rest]) + mark(n))
    text.append("[edges]")
    for a, b, label, _ in g.edges:
        if _base(a) in g.nodes and _base(b) in g.nodes:
            text.append(f"  {_short(g, a)} -> {_short(g, b)}" + (f"  ({label})" if label else ""))
    return "\n".join(text)


def _short(g: _Graph, end: str) -> str:
    base = _base(end)
    if end != base:
        port = end[len(base) + 1:]
        if port.startswith("i"):
            return f"irq {port[1:]}"
        irq, k = port[1:].split("_")
        row = [r for r in g.nodes[base].rows if len(r) > 4 and r[4][0] == port]
        return f"irq {irq} action {row[0][4][1]}" if row else f"irq {irq} action {k}"
    return g.nodes[base].title


def _focus(g: _Graph, keep: set[str], keep_ports: set[str]) -> _Graph:
    """Only the nodes in ``keep`` (ids without ports), and the edges between them."""
    out = _Graph()
    out.nodes = {n: node for n, node in g.nodes.items() if n in keep}
    t = out.nodes.get(GENIRQ)
    if t is not None:  # only the lines the journey was on (every action of them), under their domain
        rows, section, cur = t.rows[:1], None, None
        for r in t.rows[1:]:
            if r[0][0] == "§":
                section = r
            elif r[0][0]:
                cur = f"{GENIRQ}:{r[0][0]}" in keep_ports
                if cur and section is not None:
                    rows.append(section)
                    section = None
            if r[0][0] != "§" and cur:
                rows.append(r)
        out.nodes[GENIRQ] = _Node(t.cluster, t.lines, t.shape, rows)
    out.edges = [e for e in g.edges if _base(e[0]) in keep and _base(e[1]) in keep]
    return out


def host_diagram(host: Any, *, journey: Any = None, upto: int | None = None, counts: bool = True,
                 title: str | None = None, state: dict | None = None, focus: bool = False) -> Diagram:
    """The host as it is now (or as ``state``, a snapshot from ``irqlab.trace.observe``, says); with
    ``journey``, its hops up to index ``upto`` lit in order, and the numbers as they were after that hop.
    ``focus`` keeps only what the journey touches and its neighbours (the stepper's compact view)."""
    if state is None and journey is not None and journey.hops:
        k = len(journey.hops) - 1 if upto is None else max(0, min(upto, len(journey.hops) - 1))
        state = journey.hops[k].state
    st = observe(host) if state is None else state
    g = _build(host, st, counts)
    lit: list[tuple[int, str]] = []
    if journey is not None:
        where = hop_nodes(host, g, journey)
        last = len(where) if upto is None else upto + 1
        lit = [(i + 1, n) for i, n in enumerate(where[:last]) if n is not None]
        if focus:
            keep = {_base(n) for n in where if n is not None}
            irqs = {int(n.split(":i")[1]) for n in where if n is not None and n.startswith(GENIRQ + ":i")}
            for bdf, dev in host.devices.items():  # every device on the journey's line (a shared INTx)
                if any(set(i) & irqs for _, i, _ in _device_lines(dev, lambda *_: 0)):
                    keep.add(f"dev:{bdf}")
            for a, b, _, _ in g.edges:  # the eventfds of its vfio device
                if _base(b) in keep and a.startswith("efd:"):
                    keep.add(_base(a))
                if _base(a) in keep and a.startswith(("vfio:", "irqfd:", "route:")) and b.startswith(
                        ("efd:", "vcpu:", "route:")):
                    keep.add(_base(b))
            vms = {n.split(":")[1] for n in keep if n.startswith(("vcpu:", "irqfd:"))}
            keep |= {n for n in g.nodes if n.startswith("vcpu:") and n.split(":")[1] in vms}
            g = _focus(g, keep, {n for n in where if n is not None})
    if title is None:
        if journey is not None:
            title = f"{journey.source}: hop {len(journey.hops) if upto is None else upto + 1} of {len(journey.hops)}"
        else:
            title = "who hears which interrupt"
    dot, text = _render(g, lit, title)
    return Diagram(dot, text, title)


def journey_diagram(host: Any, journey: Any, upto: int | None = None, *, focus: bool = False) -> Diagram:
    """``journey``'s path lit on the host, drawn from the state after hop ``upto`` (the last if None)."""
    return host_diagram(host, journey=journey, upto=upto, focus=focus)


# ------------------------------------------------------------------------------------------ the CPUs
HOST_EDGE, PT_EDGE = "#1f77b4", "#8c4fc2"   # a host driver's vector / a passed-through device's
CPU_FILL = {"guest": "#f3ecff", "hardirq": "#ffe9e0", "idle": "#f4f4f4"}
_STATE_TEXT = {"guest": "guest", "hardirq": "hard IRQ", "idle": "idle"}


def _short_action(name: str) -> str:
    """An action's name without the BDF it carries: "ahci[0000:00:17.0]" -> "ahci", "vfio-msi[0](0000:03:00.0)"
    -> "vfio-msi[0]" (the device box above says which device it is)."""
    return re.sub(r"\[[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]\]|\([0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]\)",
                  "", name)


def _passthrough_targets(host: Any, irq: int) -> list[Any]:
    """The vCPUs a passed-through irq reaches: vfio's trigger eventfd for it → each irqfd on that eventfd → its
    GSI's routes → the destination vCPUs (what KVM looks up when the eventfd is signalled)."""
    out = []
    for dev in host.devices.values():
        v = getattr(dev, "driver", None)
        if type(v).__name__ != "VfioPciDevice":
            continue
        efds = [e for k, e in sorted(v.msi_triggers.items()) if dev.vector(k) is not None and dev.vector(k).irq == irq]
        if v.intx_trigger is not None and dev.gsi == irq:
            efds.append(v.intx_trigger)
        for e in efds:
            for vm in host.vms:
                for f in vm.irqfds:
                    if f.eventfd is e:
                        for r in vm.routing.entries(f.gsi):
                            out += [vm.vcpus[i] for i in _route_targets(vm, r) if i < len(vm.vcpus)]
    return list(dict.fromkeys(out))


def _build_cpus(host: Any) -> tuple[_Graph, list[tuple[str, str, str]]]:
    g = _Graph()
    clusters = [("hw", "hardware: PCI functions", "#f4f4f4")]
    for bdf, dev in host.devices.items():
        drv = getattr(dev.driver, "name", None) or "no driver"
        g.node(f"dev:{bdf}", "hw", [f"{bdf} {dev.name}", f"driver: {_short_action(drv)}"], "component")
    posted = {irq for irq, irte in host.irqbypass.irtes.items()}
    by_cpu = {c.id: [] for c in host.cpus}
    for irq, d in sorted(host.genirq.descs.items()):
        if d.actions:
            by_cpu[d.cpu].append(d)
    for c in host.cpus:
        st, v = c.state, c.curr
        head = f"CPU{c.id} · {_STATE_TEXT[st]}"
        clusters.append((f"cpu{c.id}", head, CPU_FILL[st]))
        if v is not None:
            mode = "in guest mode" if v.in_guest_mode else ("halted" if v.mode == "halted" else "out of the guest")
            node = g.node(f"vcpu:{v.vm.id}:{v.id}", f"cpu{c.id}",
                          [f"vm{v.vm.id}/vcpu{v.id}", mode,
                           f"irq_exits {v.exits['EXTERNAL_INTERRUPT']:,}",
                           f"delivered {sum(v.delivered.values()):,}"],
                          "rounded")
            g.nodes[node].fill = CPU_FILL["guest"] if v.in_guest_mode else "white"
            others = [x for x in c.vcpus if x is not v]
            if others:
                g.nodes[node].lines.append("also pinned: " + ", ".join(f"vm{x.vm.id}/vcpu{x.id}" for x in others))
        else:
            node = g.node(f"host:{c.id}", f"cpu{c.id}", ["no vCPU", "host work only"], "rounded")
        tid = f"cpu{c.id}"
        rows = [[("", "vector"), ("", "irq"), ("", "action"), ("", "count")]]
        for d in by_cpu[c.id]:
            rows.append([(f"r{d.irq}", f"0x{d.vector:02x}"), ("", str(d.irq)),
                         ("", ", ".join(_short_action(a) for a in d.action_names())), ("", f"{d.kstat[c.id]:,}")])
        t = _Node(tid, [f"vector_irq[] of CPU{c.id}"], "plain", rows if len(rows) > 1 else
                  [[("", "no device vector here")]], name=f"CPU{c.id}")
        ipis = " · ".join(f"{row} {host.arch_counts[row][c.id]:,}" for row in ("RES", "PIN", "PIW"))
        t.foot.append(ipis)
        times = c.time_split()
        total = sum(times[p] for p in ("hardirq", "exit", "guest", "idle"))
        if total:
            t.foot += [f"{label} {100 * times[p] / total:.0f}%" for p, label in
                       (("hardirq", "hard IRQ"), ("exit", "exits"), ("guest", "guest"), ("idle", "idle"))
                       if times[p] or p == "guest" and v is not None]
        g.nodes[tid] = t
        if v is not None:   # an interrupt that arrives while the vCPU runs: out of the guest, into the host's IDT
            g.edge(node, tid, "VM exit → host IDT", "dashed|color=#777777")
        else:
            g.edge(node, tid, "", "solid|invis")
    for bdf, dev in host.devices.items():
        pt = type(getattr(dev, "driver", None)).__name__ == "VfioPciDevice"
        for vec in dev.vectors:
            if vec.irq is None or vec.irq not in host.genirq.descs:
                continue
            d = host.genirq.descs[vec.irq]
            kind = "MSI-X" if dev.msix_enabled else "MSI"
            if vec.irq in posted and host.irqbypass.irtes[vec.irq].vcpu is not None:
                x = host.irqbypass.irtes[vec.irq].vcpu
                g.edge(f"dev:{bdf}", f"vcpu:{x.vm.id}:{x.id}", f"{kind} {vec.index}: VT-d posted",
                       f"dashed|free|color={PT_EDGE}")
                continue
            g.edge(f"dev:{bdf}", f"cpu{d.cpu}:r{d.irq}", "", f"solid|color={PT_EDGE if pt else HOST_EDGE}")
        if dev.gsi is not None and dev.gsi in host.genirq.descs and (
                dev.gsi in getattr(dev.driver, "irqs", ()) or getattr(dev.driver, "irq_type", -1) == 0):
            d = host.genirq.descs[dev.gsi]
            g.edge(f"dev:{bdf}", f"cpu{d.cpu}:r{d.irq}", "", f"solid|color={PT_EDGE if pt else HOST_EDGE}")
    for c in host.cpus:
        for d in by_cpu[c.id]:
            if not any(a.startswith("vfio") for a in d.action_names()) or d.irq in posted:
                continue
            for x in _passthrough_targets(host, d.irq):
                how = "same CPU: no IPI" if x.pcpu == c.id else (
                    "notification IPI" if host.enable_apicv else "kick: RES IPI")
                g.edge(f"cpu{c.id}:r{d.irq}", f"vcpu:{x.vm.id}:{x.id}", f"irqfd → vcpu{x.id}\n({how})",
                       f"dashed|free|color={PT_EDGE}")
    return g, clusters


def cpu_hop_nodes(host: Any, journey: Any) -> list[str | None]:
    """Where each hop of ``journey`` happens in the CPU diagram: the device, the row of the interrupt's vector in
    the table of the CPU that took it (genirq, the drivers, vfio, the eventfd and KVM's irqfd run there, in hard-IRQ
    context), the vCPU a VM exit took out of the guest (the exit's hops and the system vector it ran), the vCPU an
    interrupt is delivered to (its LAPIC, the kick, the injection). From structured facts only (the hop's function
    and actor, the state it changed), never from the hop's text."""
    exits = exit_cpus(journey)
    irq = journey.irq
    taken = None   # the CPU that took the interrupt: the kstat column its flow handler counted
    for h in journey.hops:
        taken = next((int(c.target.field[len("kstat CPU"):]) for c in h.changes if c.target.kind == "irq"
                      and c.target.ident == irq and c.target.field.startswith("kstat CPU")), None)
        if taken is not None:
            break
    if taken is None and irq in host.genirq.descs:
        taken = host.genirq.descs[irq].cpu
    targets = _passthrough_targets(host, irq) if irq is not None else []
    last_vcpu = f"vcpu:{targets[0].vm.id}:{targets[0].id}" if targets else None
    row = f"cpu{taken}:r{irq}" if taken is not None and irq is not None else None
    out: list[str | None] = []
    for k, h in enumerate(journey.hops):
        fn, actor = h.function, h.actor
        vc = next((c.target for c in h.changes if c.target.kind == "vcpu" and not c.target.statistic), None)
        if k in exits:
            v = _vcpu_on(host, exits[k])
            nid = f"vcpu:{v.vm.id}:{v.id}" if v is not None else None
        elif actor in ("device", "iommu") and not fn.startswith("IOMMU: "):
            nid = f"dev:{journey.device}" if journey.device else None
        elif vc is not None and actor in ("kvm", "lapic", "guest"):
            nid = last_vcpu = f"vcpu:{vc.ident[0]}:{vc.ident[1]}"
        elif actor in ("lapic", "guest", "iommu") or fn.startswith(("vmx_", "kvm_vcpu", "__vmx", "pi_", "kvm_apic",
                                                                      "kvm_lapic", "__apic", "native_smp_send",
                                                                      "kvm_check_and_inject", "kvm_cpu_get")):
            nid = last_vcpu
        else:   # hard-IRQ context on the CPU that took it: the flow handler, the actions, vfio, eventfd, irqfd
            nid = row
        out.append(nid)
    return out


def cpu_diagram(host: Any, journey: Any = None, *, title: str | None = None) -> Diagram:
    """The host's CPUs: each one's state, the vCPU it runs and the device vectors that land on it (rows like
    /proc/interrupts: the count is this CPU's column), its RES/PIN/PIW rows and where its time went. Blue arrows:
    a host driver's interrupts; purple: a passed-through device's, and the irqfd path from its vector to the vCPU
    KVM injects into (with the IPI that needs, if any). A dashed arrow from a vCPU into its CPU's table: an
    interrupt that arrives while the vCPU runs takes it out of the guest into the host's IDT. With ``journey``,
    its hops lit in order (numbers as they are now)."""
    g, clusters = _build_cpus(host)
    lit: list[tuple[int, str]] = []
    if journey is not None:
        lit = [(i + 1, n) for i, n in enumerate(cpu_hop_nodes(host, journey))
               if n is not None and _base(n) in g.nodes]
    if title is None:
        title = (f"{journey.source} on the CPUs: {len(journey.hops)} hops" if journey is not None else
                 "which CPU is which: vCPUs, and the vectors that land on each CPU")
    dot, lit_map = _dot(g, lit, title, clusters)
    # CPU0 to CPUn from left to right: their top nodes (the vCPU or "no vCPU") on one rank, in order, tables below
    ids = {nid: f"n{i}" for i, nid in enumerate(g.nodes)}
    tops = [ids[n] for n, node in g.nodes.items() if node.cluster.startswith("cpu") and not node.rows]
    tables = [ids[n] for n, node in g.nodes.items() if node.cluster.startswith("cpu") and node.rows]
    devs = [ids[n] for n in g.nodes if n.startswith("dev:")]
    order = ["  { rank=same; " + "; ".join(tops) + "; }", "  { rank=same; " + "; ".join(tables) + "; }"]
    if devs:
        order.append("  { rank=min; " + "; ".join(devs) + "; }")
    order += [f"  {a} -> {b} [style=invis];" for a, b in zip(tops, tops[1:])]
    order += [f"  {devs[len(devs) // 2]} -> {t} [style=invis];" for t in tops] if devs else []
    dot = dot.replace("rankdir=TB,", "rankdir=TB, newrank=true,", 1).replace("nodesep=0.25", "nodesep=0.12", 1)
    dot = dot.rstrip().removesuffix("}") + \
        "\n".join(order) + "\n}\n"
    return Diagram(dot, _cpu_text(g, clusters, lit_map, title), title)


def _cpu_text(g: _Graph, clusters: list[tuple[str, str, str]], lit: dict[str, list[int]], title: str) -> str:
    mark = lambda key: f"  <{','.join(map(str, lit[key]))}>" if key in lit else ""  # noqa: E731
    text = [title]
    for cid, clabel, _ in clusters:
        members = [n for n, node in g.nodes.items() if node.cluster == cid]
        if not members:
            continue
        text.append(f"[{clabel}]")
        for n in members:
            node = g.nodes[n]
            if node.rows:
                text.append(f"  {node.lines[0]}")
                for row in node.rows[1:] if len(node.rows[0]) > 1 else node.rows:
                    port = row[0][0]
                    text.append("    " + " ".join(t for _, t in row) + (mark(f"{n}:{port}") if port else ""))
                text += [f"    {line}" for line in node.foot]
            else:
                text.append("  " + " | ".join(node.lines) + mark(n))
    text.append("[edges]")
    for a, b, label, style in g.edges:
        if "invis" in style:
            continue
        name = lambda e: (f"CPU{e[3:].split(':r')[0]} irq {e.split(':r')[1]}" if e != _base(e)  # noqa: E731
                          else g.nodes[e].title)
        label = label.replace("\n", " ")
        text.append(f"  {name(a)} -> {name(b)}" + (f"  ({label})" if label else ""))
    return "\n".join(text)
