"""The Host facade: CPUs, the clock, genirq, PCI devices, their drivers (host or vfio-pci), and VMs.

Assembles the kernel modules the way a booted x86 KVM host has them (arch/x86/kernel/irq.c delivers a
vector to genirq; drivers/vfio/pci binds devices; virt/kvm runs VMs). Simplification: one IOMMU, one
IO-APIC with 24 pins, devices' INTx wired straight to a GSI, and host-side processing of one interrupt is
instantaneous in model state (its cost is charged to latency through ``Timing.host_irq_ns``).
"""
from __future__ import annotations

import itertools
from typing import Any, Callable

from .genirq import GenIrq, IrqDesc
from .ledger import Ledger, Outcome
from .sched import Scheduler, check_time
from .timing import Timing
from .trace import HARDWARE, Hop, Journey

__all__ = ["Host", "IrqEvent", "NO_EVENT", "ARCH_ROWS"]

#: x86 arch rows of /proc/interrupts the model keeps counts for.
ARCH_ROWS = ("NMI", "LOC", "SPU", "PMI", "IWI", "RTR", "RES", "CAL", "TLB", "TRM", "THR", "DFR", "MCE",
             "MCP", "ERR", "MIS", "PIN", "NPI", "PIW")


class IrqEvent:
    """One interrupt raised by hardware, followed to its single outcome (the ledger's unit)."""

    real = True

    def __init__(self, host: "Host", eid: int, source: str, t: int, trace: bool):
        self.host = host
        self.id = eid
        self.source = source
        self.t = t
        self.outcome: Outcome | None = None
        self.carried = False      # a downstream stage (eventfd waiter, irqfd work, IRR, PIR) holds it
        self.via_host = False     # went through the host's hard-IRQ path (charged host_irq_ns)
        self.via_iommu = False    # posted by the IOMMU (charged iommu_post_ns)
        self.irq: int | None = None
        self.device: Any = None   # the PCI device that raised it (INTx status holder), if any
        self.t_ack: int | None = None
        self.journey = Journey(eid, source, t) if trace else None

    def __repr__(self) -> str:
        return f"<IrqEvent #{self.id} {self.source} {self.outcome.label if self.outcome else 'in flight'}>"

    # tracing ---------------------------------------------------------------------------------------
    def hop(self, function: str, file: str, actor: str, detail: str = "") -> None:
        if self.journey is not None:
            self.journey.hops.append(Hop(self.host.now, function, file, actor, detail))

    def change(self, what: str, before: Any, after: Any) -> None:
        """Record a state change on the hop that made it (the last one recorded)."""
        j = self.journey
        if j is not None and j.hops:
            h = j.hops[-1]
            j.hops[-1] = Hop(h.t_ns, h.function, h.file, h.actor, h.detail, h.changes + ((what, before, after),))

    # outcome ---------------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.outcome is not None and self.outcome != Outcome.IN_FLIGHT

    def settle(self, outcome: Outcome, t_ack: int | None = None) -> None:
        if self.outcome == Outcome.PENDING:
            self.host.ledger.unsettle(Outcome.PENDING)
        elif self.outcome is not None:
            raise AssertionError(f"interrupt #{self.id} settled twice: {self.outcome.label} then {outcome.label}")
        self.outcome = outcome
        self.host.ledger.settle(outcome)
        if t_ack is not None:
            self.t_ack = t_ack
        if self.journey is not None:
            self.journey.outcome = outcome.label
            self.journey.t_done = self.host.now
            if t_ack is not None:
                self.journey.latency_ns = self.latency_ns
        self.host._inflight.pop(self.id, None)

    resettle = settle

    def unsettle(self) -> None:
        """A PENDING interrupt is replayed or polled: it is in flight again."""
        if self.outcome != Outcome.PENDING:
            raise AssertionError(f"interrupt #{self.id} is {self.outcome}, not pending")
        self.host.ledger.unsettle(Outcome.PENDING)
        self.outcome = None
        self.carried = False
        if self.journey is not None:
            self.journey.outcome = None
        self.host._inflight[self.id] = self

    @property
    def live(self) -> bool:
        """Still to be accounted for: in flight or held pending (a settled interrupt is never re-used)."""
        return self.outcome is None or self.outcome == Outcome.PENDING

    def claim(self) -> "IrqEvent | None":
        """Someone services this interrupt: it is in flight again if it was pending; None if already over."""
        if self.outcome == Outcome.PENDING:
            self.unsettle()
        return self if self.outcome is None else None

    def outcome_is_pending(self) -> bool:
        return self.outcome == Outcome.PENDING

    def asserting(self) -> bool:
        """An INTx interrupt whose device still holds its status bit with INTx not disabled."""
        d = self.device
        return d is not None and d.intx_status_event is self and not d.disintx

    @property
    def latency_ns(self) -> int | None:
        if self.t_ack is None:
            return None
        t = self.host.timing
        return (self.t_ack - self.t + (t.host_irq_ns if self.via_host else 0)
                + (t.iommu_post_ns if self.via_iommu else 0))


class _NoEvent(IrqEvent):
    """Dispatch with no hardware interrupt behind it (the spurious poller, a loopback signal)."""

    real = False

    def __init__(self) -> None:
        self.id, self.source, self.outcome, self.carried, self.journey = -1, "none", None, False, None
        self.device = None
        self.via_host = self.via_iommu = False

    def hop(self, *a: Any, **k: Any) -> None:
        pass

    def change(self, *a: Any) -> None:
        pass

    @property
    def done(self) -> bool:
        return True

    def settle(self, outcome: Outcome, t_ack: int | None = None) -> None:
        pass

    def unsettle(self) -> None:
        pass

    def asserting(self) -> bool:
        return False

    @property
    def live(self) -> bool:
        return False

    def claim(self) -> None:
        return None


NO_EVENT = _NoEvent()


class Host:
    """An x86 KVM host. ``Host(ncpus=4)``; see DESIGN.md's public-surface table."""

    def __init__(self, ncpus: int = 4, *, timing: Timing | None = None, nr_irqs: int | None = None,
                 trace: bool = True, apicv: bool = False, posted_interrupts: bool = False,
                 irqfixup: int = 0, noirqdebug: bool = False):
        if isinstance(ncpus, bool) or not isinstance(ncpus, int):
            raise TypeError(f"ncpus must be an int, not {type(ncpus).__name__}")
        if not 1 <= ncpus <= 64:
            raise ValueError(f"ncpus must be between 1 and 64, got {ncpus}")
        if timing is not None and not isinstance(timing, Timing):
            raise TypeError("timing must be an irqlab.Timing")
        if irqfixup not in (0, 1, 2):
            raise ValueError("irqfixup is 0 (off), 1 (irqfixup) or 2 (irqpoll)")
        if posted_interrupts and not apicv:
            raise ValueError("posted_interrupts (VT-d posting) needs apicv=True: "
                             "enable_device_posted_irqs = enable_apicv && IRQ_POSTING_CAP")
        self.ncpus = ncpus
        from .nr_irqs import boot_nr_irqs  # arch/x86/kernel/apic/vector.c arch_probe_nr_irqs
        self.nr_irqs = nr_irqs if nr_irqs is not None else boot_nr_irqs(ncpus)
        self.timing = timing or Timing()
        self.trace = trace
        self.enable_apicv = apicv
        self.enable_device_posted_irqs = posted_interrupts
        self.sched = Scheduler()
        self.ledger = Ledger()
        self.log: list[tuple[int, str, str]] = []
        self.arch_counts: dict[str, list[int]] = {k: [0] * ncpus for k in ARCH_ROWS}
        self.spurious_disabled: list[tuple[int, int]] = []
        self.genirq = GenIrq(self)
        self.genirq.irqfixup = irqfixup
        self.genirq.noirqdebug = noirqdebug
        self.current: IrqEvent | None = None
        self.devices: dict[str, Any] = {}
        self.vms: list[Any] = []
        self._ids = itertools.count(1)
        self._inflight: dict[int, IrqEvent] = {}
        self.last_journey: Journey | None = None
        self.last_event: IrqEvent | None = None
        from .kvm.posted import IrqBypass
        self.irqbypass = IrqBypass(self)

    def __repr__(self) -> str:
        return (f"<Host {self.ncpus} CPUs, {len(self.genirq.descs)} irqs, {len(self.devices)} devices, "
                f"{len(self.vms)} VMs, t={self.now:,} ns>")

    # time ----------------------------------------------------------------------------------------
    @property
    def now(self) -> int:
        return self.sched.now

    @property
    def jiffies(self) -> int:
        return self.sched.jiffies

    def run(self, until: int | None = None) -> int:
        """Run pending timers and work up to ``until`` ns (everything pending if None)."""
        return self.sched.run(until)

    def _advance(self, at: int | None) -> None:
        if at is not None:
            at = check_time(at, "at")
            if at < self.now:
                raise ValueError(f"at={at} ns is in the past (now={self.now} ns)")
            self.sched.run(at)

    # kernel log ------------------------------------------------------------------------------------
    def printk(self, level: str, text: str) -> None:
        self.log.append((self.now, level, text))

    def dmesg(self) -> str:
        return "\n".join(f"[{t / 1e9:12.6f}] {text}" for t, _, text in self.log)

    def arch_count(self, row: str, cpu: int, n: int = 1) -> None:
        self.arch_counts[row][cpu] += n

    # genirq facade ---------------------------------------------------------------------------------
    def irq_to_desc(self, irq: int) -> IrqDesc:
        return self.genirq.irq_to_desc(irq)

    def request_irq(self, irq: int, handler: Callable[[int, Any], int] | None, flags: int, name: str,
                    dev_id: Any = None) -> int:
        return self.genirq.request_irq(irq, handler, flags, name, dev_id)

    def request_threaded_irq(self, irq: int, handler: Any, thread_fn: Any, flags: int, name: str,
                             dev_id: Any = None) -> int:
        return self.genirq.request_threaded_irq(irq, handler, thread_fn, flags, name, dev_id)

    def free_irq(self, irq: int, dev_id: Any) -> str | None:
        return self.genirq.free_irq(irq, dev_id)

    def disable_irq(self, irq: int) -> None:
        self.genirq.disable_irq(irq)

    def enable_irq(self, irq: int) -> None:
        self.genirq.enable_irq(irq)

    def irq_set_affinity(self, irq: int, cpu: int) -> int:
        return self.genirq.irq_set_affinity(irq, cpu)

    def alloc_irq(self, irq: int | None = None, *, chip_name: str = "IR-IO-APIC", hwirq: int | None = None,
                  level: bool = False, cpu: int | None = None, **kw: Any) -> IrqDesc:
        """Allocate a descriptor (an IO-APIC pin by default: irq = GSI, hwirq = pin)."""
        if irq is None:
            irq = self._next_free_irq()
        if hwirq is None and chip_name and "IO-APIC" in chip_name:
            hwirq = irq
        return self.genirq.alloc_desc(irq, chip_name=chip_name, hwirq=hwirq, level=level, cpu=cpu, **kw)

    def _next_free_irq(self, start: int = 24) -> int:
        irq = start
        while irq in self.genirq.descs:
            irq += 1
        if irq >= self.nr_irqs:
            from .errors import KernelError
            import errno
            raise KernelError(errno.ENOSPC, f"no free irq below nr_irqs={self.nr_irqs}")
        return irq

    # raising interrupts ------------------------------------------------------------------------------
    def new_event(self, source: str) -> IrqEvent:
        ev = IrqEvent(self, next(self._ids), source, self.now, self.trace)
        self.last_event = ev
        self.ledger.raise_one()
        self._inflight[ev.id] = ev
        if ev.journey is not None:
            self.last_journey = ev.journey
        return ev

    def deliver_vector(self, cpu: int, vector: int, ev: IrqEvent) -> None:
        """The local APIC of ``cpu`` takes ``vector``: x86 common_interrupt."""
        ev.via_host = True
        self.genirq.common_interrupt(cpu, vector, ev)

    def generic_handle_irq(self, irq: int, cpu: int = 0, *, at: int | None = None) -> Journey:
        """Run irq's flow handler on ``cpu`` as if the line fired with no device asserting it."""
        desc = self.irq_to_desc(irq)
        if not 0 <= cpu < self.ncpus:
            raise ValueError(f"cpu must be 0..{self.ncpus - 1}, got {cpu}")
        self._advance(at)
        ev = self.new_event(f"irq {irq}")
        ev.via_host = True
        ev.irq = irq
        ev.hop("generic_handle_irq", "kernel/irq/irqdesc.c", "genirq", f"irq {irq} on CPU{cpu}")
        if desc.level:
            self.genirq.handle_fasteoi_irq(desc, cpu, ev)
        else:
            self.genirq.handle_edge_irq(desc, cpu, ev)
        return self._journey(ev)

    def raise_spurious(self, irq: int, *, at: int | None = None) -> Journey:
        """An interrupt on ``irq`` that no device asserted (a glitch): it arrives at the irq's CPU."""
        desc = self.irq_to_desc(irq)
        self._advance(at)
        ev = self.new_event(f"spurious irq {irq}")
        ev.hop("IO-APIC pin fires", HARDWARE, "device", f"glitch on irq {irq}: no device asserted it")
        if desc.masked:
            ev.irq = irq
            self.genirq._hold_pending(desc, ev, "masked at the chip")
        else:
            self.deliver_vector(desc.cpu, desc.vector, ev)
        return self._journey(ev)

    def raise_msi(self, bdf: str, index: int = 0, *, at: int | None = None) -> Journey:
        """The device at ``bdf`` sends the message of its MSI/MSI-X vector ``index``."""
        dev = self.pci_dev(bdf)
        self._advance(at)
        ev = self.new_event(f"{bdf} msi{'x' if dev.msix_enabled else ''}[{index}]")
        ev.device = dev
        dev.send_msi(index, ev)
        return self._journey(ev)

    def raise_intx(self, bdf: str, *, at: int | None = None) -> Journey:
        """The device at ``bdf`` asserts INTx (sets Status bit 3; the line goes up unless DisINTx)."""
        dev = self.pci_dev(bdf)
        self._advance(at)
        ev = self.new_event(f"{bdf} intx")
        ev.device = dev
        dev.assert_intx(ev)
        return self._journey(ev)

    def _journey(self, ev: IrqEvent) -> Journey:
        if ev.journey is None:
            j = Journey(ev.id, ev.source, ev.t)
            j.outcome = ev.outcome.label if ev.outcome else None
            return j
        return ev.journey

    def event(self, journey_or_id: Any) -> IrqEvent | None:
        eid = getattr(journey_or_id, "id", journey_or_id)
        return self._inflight.get(eid)

    # devices and VMs --------------------------------------------------------------------------------
    def add_pci_device(self, bdf: str, **kw: Any) -> Any:
        from .pci import PciDevice

        return PciDevice.add(self, bdf, **kw)

    def pci_dev(self, bdf: str) -> Any:
        if not isinstance(bdf, str):
            raise TypeError(f"bdf must be a str like '0000:01:00.0', not {type(bdf).__name__}")
        try:
            return self.devices[bdf]
        except KeyError:
            raise ValueError(f"no PCI device {bdf!r} on this host; add it with host.add_pci_device()") from None

    def bind_host_driver(self, bdf: str, name: str | None = None, **kw: Any) -> Any:
        from .pci import HostDriver

        return HostDriver.bind(self.pci_dev(bdf), name, **kw)

    def vfio_pci_bind(self, bdf: str) -> Any:
        from .vfio import VfioPciDevice

        return VfioPciDevice.bind(self.pci_dev(bdf))

    def create_vm(self, nvcpus: int = 1, irqchip: str | None = "full", **kw: Any) -> Any:
        from .kvm.vm import Vm

        vm = Vm(self, nvcpus=nvcpus, irqchip=irqchip, **kw)
        self.vms.append(vm)
        return vm

    # /proc and /sys --------------------------------------------------------------------------------
    def _irq_row(self, desc: IrqDesc) -> Any:
        from . import procfs as _procfs

        return _procfs.IrqRow(irq=desc.irq, counts=list(desc.kstat), chip_name=desc.chip_name,
                              hwirq=desc.hwirq, flow_name=desc.name, actions=desc.action_names())

    def proc_interrupts(self) -> str:
        """/proc/interrupts exactly as Linux 6.18 prints it for this host."""
        from . import procfs as _procfs

        rows = [self._irq_row(d) for _, d in sorted(self.genirq.descs.items()) if d.actions]
        arch = _procfs.default_arch_rows(self.ncpus, {k: v for k, v in self.arch_counts.items()})
        return _procfs.render_proc_interrupts(rows, online_cpus=list(range(self.ncpus)), nr_irqs=self.nr_irqs,
                                              arch_rows=arch)

    def sys_kernel_irq(self, irq: int) -> dict[str, str]:
        """The files of /sys/kernel/irq/<irq>/ (each value ends with a newline, as sysfs prints it)."""
        from . import procfs as _procfs

        desc = self.irq_to_desc(irq)
        return _procfs.render_sys_kernel_irq(self._irq_row(desc), possible_cpus_counts=list(desc.kstat),
                                             type_="level" if desc.level else "edge", wakeup=desc.wakeup,
                                             name=desc.name)

    def ledger_check(self) -> None:
        self.ledger.check()
