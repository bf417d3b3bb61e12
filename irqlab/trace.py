"""One record per hop of an interrupt: when, which kernel function in which file, who, and what changed.

Models what ``trace-cmd record -p function_graph`` would show for one interrupt (the kernel functions are
real and greppable in Linux 6.18), plus the observable state after each hop (``observe``: kstat, descriptor
flags, the device's Status/Command bits, eventfd counts, irqfd work, IOAPIC and vCPU LAPIC registers).
Simplification: one record per modelled function, not per real call, and host-side hops of one interrupt
share the instant it arrived (their cost is in ``Timing.host_irq_ns``).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Iterator, NamedTuple

from . import uapi as _uapi

__all__ = ["Hop", "Journey", "ELIXIR", "HARDWARE", "elixir_url", "Target", "Change", "observe", "diff_states",
           "format_value", "eventfds"]

ELIXIR = "https://elixir.bootlin.com/linux/v6.18"
HARDWARE = "(hardware)"  # the ``file`` of a hop no kernel function performs

#: Actors, in the order of the path: who runs the hop.
ACTORS = ("device", "iommu", "cpu", "genirq", "driver", "vfio", "eventfd", "kvm", "lapic", "guest")


def elixir_url(file: str, function: str | None = None) -> str:
    """Link to the v6.18 source: the identifier search when a function is given, else the file."""
    if function:
        return f"{ELIXIR}/C/ident/{function}"
    return f"{ELIXIR}/source/{file}"


class Target(NamedTuple):
    """A piece of observable state: ``kind`` of object, its identity ``ident`` and the ``field``.

    kinds: "irq" (ident: the Linux irq), "pci" (BDF), "vfio" (BDF), "eventfd" (its name), "irqfd" ((vm, gsi)),
    "ioapic" ((vm, pin)), "vcpu" ((vm, vcpu)), "irte" (host irq), "cpu" (host CPU).
    """

    kind: str
    ident: Any
    field: str

    @property
    def obj(self) -> str:
        """The object, as the course names it: "irq 29", "eventfd q0", "vm1 vcpu0", "vm1 IOAPIC pin 16"."""
        k, i = self.kind, self.ident
        if k in ("irqfd", "ioapic", "vcpu"):
            what = {"irqfd": "irqfd gsi ", "ioapic": "IOAPIC pin ", "vcpu": "vcpu"}[k]
            return f"vm{i[0]} {what}{i[1]}"
        if k in ("pci", "vfio"):
            return f"{i}" if k == "pci" else f"vfio-pci {i}"
        if k == "cpu":
            return f"CPU{i}"
        if k == "irte":
            return f"posted IRTE of irq {i}"
        return f"{k} {i}"

    @property
    def statistic(self) -> bool:
        """A count the model keeps for the diagrams (messages sent, signals, wake-ups, paths taken, what an
        action returned, deliveries), not a piece of kernel state a hop reads or writes."""
        return self.field.endswith(_STATISTICS)

    def __str__(self) -> str:
        return f"{self.obj} {self.field}"


_STATISTICS = ("IRQ_HANDLED", "IRQ_NONE", "INTx asserted", " sent", "signals", "wakeups", "fast path", "work path",
               "delivered", "posted")


class Change(NamedTuple):
    """What one hop changed: the ``target`` and its value ``before`` and ``after`` (None: not there)."""

    target: Target
    before: Any
    after: Any

    def __str__(self) -> str:
        return f"{self.target}: {format_value(self.before)} → {format_value(self.after)}"


def format_value(v: Any) -> str:
    """A state value as the course prints it: vector sets in hex, flags as words."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "set" if v else "clear"
    if isinstance(v, frozenset):
        return "{" + ", ".join(f"0x{x:02x}" for x in sorted(v)) + "}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


#: IRQS_* bits of desc->istate (kernel/irq/internals.h) as the state panel names them
_ISTATE = tuple((getattr(_uapi, n), n) for n in (
    "IRQS_AUTODETECT", "IRQS_SPURIOUS_DISABLED", "IRQS_POLL_INPROGRESS", "IRQS_ONESHOT", "IRQS_REPLAY",
    "IRQS_WAITING", "IRQS_PENDING", "IRQS_SUSPENDED", "IRQS_TIMINGS", "IRQS_NMI"))


@functools.lru_cache(maxsize=256)
def _istate(v: int) -> str:
    return "|".join(n for b, n in _ISTATE if v & b) or "0"


def eventfds(kernel: Any) -> dict[str, Any]:
    """Every eventfd the kernel's subscribers know, by the name the snapshots use (its own name, with
    ``#id`` added when two share one): vfio triggers and unmask eventfds, irqfds and their resamplefds."""
    seen: dict[int, Any] = {}
    for dev in kernel.devices.values():
        drv = dev.driver
        if drv is None or not hasattr(drv, "msi_triggers"):
            continue
        for e in (*(drv.msi_triggers[k] for k in sorted(drv.msi_triggers)), drv.intx_trigger,
                  drv.intx_unmask.eventfd if drv.intx_unmask is not None else None, drv.err_trigger, drv.req_trigger):
            if e is not None:
                seen.setdefault(id(e), e)
    for vm in kernel.vms:
        for f in vm.irqfds:
            seen.setdefault(id(f.eventfd), f.eventfd)
            if f.resamplefd is not None:
                seen.setdefault(id(f.resamplefd), f.resamplefd)
    out: dict[str, Any] = {}
    for e in seen.values():
        out[e.name if e.name not in out else f"{e.name}#{e.id}"] = e
    return out


def observe(kernel: Any) -> dict[Target, Any]:
    """The observable state of ``kernel`` (an irqlab Host) as a flat mapping Target -> value.

    What a hop can change and the diagrams show: per descriptor its kstat per CPU, depth, IRQD_IRQ_DISABLED /
    IRQD_IRQ_MASKED, istate, the interrupt held pending, irq_count / irqs_unhandled and what each action
    returned; per PCI function Status.Interrupt, Command.INTx Disable and each MSI vector's mask, pending bit
    and messages sent; vfio's INTx mask; each eventfd's count and signals; each irqfd's inject work; the
    IOAPIC's IRR and remote IRR of the pins the guest programmed; each vCPU's IRR, ISR, TMR, PPR, PIR, ON,
    mode, exits and deliveries; the posted IRTEs; the RES, PIN and PIW rows and the other non-zero arch
    counters. Values are ints, bools, strs and frozensets, so two snapshots compare with ``==``. Reads
    attributes only: never changes the kernel.
    """
    # keys are plain tuples (equal to, and hashing like, the Target with the same fields: cheaper to build);
    # diff_states hands out Targets
    s: dict[Any, Any] = {}
    kst = _KSTAT
    for irq, d in sorted(kernel.genirq.descs.items()):
        if not d.actions and not any(d.kstat):
            continue
        for cpu, n in enumerate(d.kstat):
            s["irq", irq, kst[cpu]] = n
        s["irq", irq, "depth"] = d.depth
        s["irq", irq, "IRQD_IRQ_DISABLED"] = d.disabled
        s["irq", irq, "IRQD_IRQ_MASKED"] = d.masked
        s["irq", irq, "istate"] = _istate(d.istate)
        s["irq", irq, "interrupt held pending"] = d.pending_event is not None
        s["irq", irq, "irq_count"] = d.irq_count
        s["irq", irq, "irqs_unhandled"] = d.irqs_unhandled
        for a in d.actions:
            s["irq", irq, f"action {a.name} IRQ_HANDLED"] = a.handled
            s["irq", irq, f"action {a.name} IRQ_NONE"] = a.none
    for bdf, dev in kernel.devices.items():
        if dev.intx_pin:
            s["pci", bdf, "Status.Interrupt"] = dev.intx_status_event is not None
            s["pci", bdf, "Command.INTx_Disable"] = dev.disintx
            s["pci", bdf, "INTx asserted"] = dev.intx_raised
        kind = "MSI-X" if dev.msix_enabled else "MSI"
        for v in dev.vectors:
            s["pci", bdf, f"{kind}[{v.index}] sent"] = v.sent
            s["pci", bdf, f"{kind}[{v.index}] masked"] = v.masked
            s["pci", bdf, f"{kind}[{v.index}] pending bit"] = v.pending_event is not None
        drv = dev.driver
        if drv is not None and hasattr(drv, "intx_masked") and drv.irq_type == 0:
            s["vfio", bdf, "INTx masked"] = drv.intx_masked
    for name, e in eventfds(kernel).items():
        s["eventfd", name, "count"] = e.count
        s["eventfd", name, "signals"] = e.signals
    for vm in kernel.vms:
        for f in vm.irqfds:
            key = (vm.id, f.gsi)
            s["irqfd", key, "inject work"] = "pending" if f.inject.pending else "idle"
            s["irqfd", key, "wakeups"] = f.wakeups
            s["irqfd", key, "fast path"] = f.fast_path
            s["irqfd", key, "work path"] = f.work_path
        io = vm.ioapic
        if io is not None:
            irr = io.irr
            for pin, r in enumerate(io.redirtbl):
                if r.masked and not (irr >> pin) & 1 and not r.remote_irr:
                    continue
                s["ioapic", (vm.id, pin), "IRR"] = bool((irr >> pin) & 1)
                s["ioapic", (vm.id, pin), "remote IRR"] = r.remote_irr
        for vc in vm.vcpus:
            lap, key = vc.lapic, (vm.id, vc.id)
            s["vcpu", key, "mode"] = vc.mode
            s["vcpu", key, "IRR"] = frozenset(lap.irr)
            s["vcpu", key, "ISR"] = frozenset(lap.isr)
            s["vcpu", key, "TMR"] = frozenset(lap.tmr)
            s["vcpu", key, "PPR"] = _HEX[lap.ppr]
            s["vcpu", key, "PIR"] = frozenset(vc.pi.pir)
            s["vcpu", key, "PI ON"] = vc.pi.on
            s["vcpu", key, "entry pending"] = vc.entry_timer is not None and vc.entry_timer.pending
            s["vcpu", key, "VM exits"] = vc.vmexits
            s["vcpu", key, "delivered"] = sum(vc.delivered.values())
    for irq, irte in sorted(kernel.irqbypass.irtes.items()):
        s["irte", irq, "posted"] = irte.posted
    for row, counts in kernel.arch_counts.items():
        ipi = row in _IPI_ROWS   # the rows the CPU model counts: always there, so a first count reads 0→1
        for cpu, n in enumerate(counts):
            if n or ipi:
                s["cpu", cpu, row] = n
    return s


_IPI_ROWS = frozenset({"RES", "PIN", "PIW"})


_KSTAT = tuple(f"kstat CPU{cpu}" for cpu in range(64))
_HEX = tuple(f"0x{v:02x}" for v in range(256))


def diff_states(before: dict[Target, Any], after: dict[Target, Any]) -> tuple[Change, ...]:
    """The Changes from one snapshot to the next, in the snapshot's order (a target that appears or goes
    away has None on the other side)."""
    if len(before) == len(after):  # the usual case: the same objects in the same order, values compared
        bi = iter(before.items())
        out = []
        for (k, v), (kb, vb) in zip(after.items(), bi):
            if k != kb:
                break
            if v != vb:
                out.append(Change(Target(*k), vb, v))
        else:
            return tuple(out)
    out = [Change(Target(*k), before.get(k), v) for k, v in after.items() if before.get(k) != v]
    out += [Change(Target(*k), v, None) for k, v in before.items() if k not in after]
    return tuple(out)


@dataclass(frozen=True)
class Hop:
    """One hop: ``t_ns`` model time, ``function`` and ``file`` of Linux 6.18, ``actor``, ``detail``.

    ``changes``: what the hop changed, as ``Change(target, before, after)`` records (the state observed when
    the hop was recorded compared with the state when the next hop was, or when the model handed control
    back). ``state``: the observed state after the hop (``observe``), or None while the hop is the last one
    recorded and the model has not moved on yet.
    """

    t_ns: int
    function: str
    file: str
    actor: str
    detail: str = ""
    changes: tuple[Change, ...] = ()
    state: dict | None = field(default=None, compare=False, repr=False)

    @property
    def hardware(self) -> bool:
        """A step done by hardware (device, IO-APIC, IOMMU, CPU), not by a kernel function."""
        return self.file == HARDWARE

    @property
    def url(self) -> str:
        return "" if self.hardware else elixir_url(self.file, self.function)

    def __str__(self) -> str:
        ch = "; ".join(map(str, self.changes))
        return (f"{self.t_ns:>12,} ns  {self.actor:<8} {self.function:<34} {self.file}"
                + (f"  — {self.detail}" if self.detail else "") + (f"  [{ch}]" if ch else ""))


@dataclass(eq=False)
class Journey:
    """The ordered hops of one interrupt, its outcome and its latency to the guest.

    A Journey may still grow after it is returned: work items and the vCPU run later in model time
    (``host.run()``); ``done`` tells whether its outcome is known. Hops may follow the outcome: a
    passed-through INTx is ``injected`` at its ack, then its way back (EOI, resample, unmask) is recorded;
    ``t_done`` is the time of the last hop so far, ``latency_ns`` stays the latency to the ack.
    """

    id: int
    source: str
    t_raise: int
    hops: list[Hop] = field(default_factory=list)
    outcome: str | None = None
    t_done: int | None = None
    latency_ns: int | None = None
    device: str | None = None   # the BDF of the PCI function that raised it (None for a glitch on a line)
    irq: int | None = None      # the Linux irq it was dispatched as, once known

    @property
    def done(self) -> bool:
        return self.outcome is not None

    def functions(self) -> list[str]:
        """The kernel functions of the path, in call order (hardware steps left out)."""
        return [h.function for h in self.hops if not h.hardware]

    def __iter__(self) -> Iterator[Hop]:
        return iter(self.hops)

    def __len__(self) -> int:
        return len(self.hops)

    def __getitem__(self, i: int) -> Hop:
        return self.hops[i]

    def text(self) -> str:
        head = f"interrupt #{self.id} from {self.source} at {self.t_raise:,} ns"
        tail = f"outcome: {self.outcome or 'in flight'}"
        if self.latency_ns is not None:
            tail += f", latency to guest {self.latency_ns:,} ns"
        return "\n".join([head, *(f"{i:>3}. {h}" for i, h in enumerate(self.hops, 1)), tail])

    __str__ = text

    def __repr__(self) -> str:
        return f"<Journey #{self.id} {self.source}: {len(self.hops)} hops, {self.outcome or 'in flight'}>"

    def _repr_html_(self) -> str:
        import html

        # JupyterLab right-aligns table cells (.jp-RenderedHTMLCommon td, more specific than a class rule): a trace
        # reads left to right, so every cell says how it aligns; only the two number columns align right
        R, L = "<td style='text-align: right'>", "<td style='text-align: left'>"
        rows = "".join(
            f"<tr>{R}{i}</td>{R}{h.t_ns:,}</td>{L}{html.escape(h.actor)}</td>"
            + (f"{L}<i>{html.escape(h.function)}</i></td>" if h.hardware else
               f"{L}<a href='{h.url}' target='_blank'><code>{html.escape(h.function)}</code></a></td>")
            + f"{L}<code>{html.escape(h.file)}</code></td>{L}{html.escape(h.detail)}</td></tr>"
            for i, h in enumerate(self.hops, 1))
        tail = html.escape(f"outcome: {self.outcome or 'in flight'}"
                           + (f", latency to guest {self.latency_ns:,} ns" if self.latency_ns is not None else ""))
        head = "".join(f"<th style='text-align: {'right' if k < 2 else 'left'}'>{t}</th>"
                       for k, t in enumerate(("#", "t (ns)", "actor", "function", "file", "detail")))
        return (f"<b>{html.escape(self.source)}</b> at {self.t_raise:,} ns<table class='irqlab-journey'><tr>"
                f"{head}</tr>{rows}</table><i>{tail}</i>")
