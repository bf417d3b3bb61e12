"""The kernel services every subsystem of the model uses: the clock, printk, the ledger and the arch counters.

Models what kernel/irq, drivers/ and virt/kvm share below them: the clock and jiffies (kernel/time/), the
kernel log (kernel/printk/), the x86 per-CPU interrupt statistics that /proc/interrupts prints as arch rows
(``irq_stat``, arch/x86/include/asm/hardirq.h) and the vector delivery of the local APIC
(arch/x86/kernel/irq.c ``common_interrupt``). The subsystems (genirq, the PCI devices, irqbypass, the VMs)
are registered here by ``irqlab.host.Host``, which assembles them; no model module imports host.py.
Simplification: one global clock and log instead of per-CPU ones, and the course's outcome ledger and
interrupts in flight kept beside them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .cpu import Cpu
from .event import IrqEvent, StateRecorder
from .ledger import Ledger
from .sched import Scheduler, check_time
from .timing import Timing

if TYPE_CHECKING:
    from .trace import Journey

__all__ = ["Kernel", "ARCH_ROWS"]

#: x86 arch rows of /proc/interrupts the model keeps counts for.
ARCH_ROWS = ("NMI", "LOC", "SPU", "PMI", "IWI", "RTR", "RES", "CAL", "TLB", "TRM", "THR", "DFR", "MCE",
             "MCP", "ERR", "MIS", "PIN", "NPI", "PIW")


class Kernel:
    """The services below every subsystem. ``irqlab.Host`` is a Kernel with its subsystems assembled."""

    #: the subsystems, registered by the Host that assembles them (irqlab.genirq.GenIrq,
    #: irqlab.kvm.posted.IrqBypass): services never import the subsystems above them
    genirq: Any
    irqbypass: Any

    def __init__(self, ncpus: int, timing: Timing, trace: bool):
        self.ncpus = ncpus
        self.timing = timing
        self.trace = trace
        self.sched = Scheduler()
        self.cpus = [Cpu(self, i) for i in range(ncpus)]
        self.this_cpu: int | None = None  # the CPU whose hard interrupt (or vCPU exit) is running, if any
        self.sched.work_cpu = lambda: self.this_cpu
        self.sched.work_ran = self._work_ran
        self.ledger = Ledger()
        self.log: list[tuple[int, str, str]] = []
        self.arch_counts: dict[str, list[int]] = {k: [0] * ncpus for k in ARCH_ROWS}
        self.spurious_disabled: list[tuple[int, int]] = []
        self.devices: dict[str, Any] = {}   # the PCI bus: BDF -> PciDevice
        self.vms: list[Any] = []
        self.current: IrqEvent | None = None  # the interrupt whose handlers are running (the model's "in hard IRQ")
        self._next_id = 1
        self._inflight: dict[int, IrqEvent] = {}
        self.last_journey: "Journey | None" = None
        self.last_event: IrqEvent | None = None
        self.recorder = StateRecorder(self)  # what each traced hop changed (Hop.changes, Hop.state)

    # time ----------------------------------------------------------------------------------------
    @property
    def now(self) -> int:
        return self.sched.now

    @property
    def jiffies(self) -> int:
        return self.sched.jiffies

    def run(self, until: int | None = None) -> int:
        """Run pending timers and work up to ``until`` ns (everything pending if None)."""
        try:
            return self.sched.run(until)
        finally:
            self.recorder.end()

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

    # interrupts raised -----------------------------------------------------------------------------
    def new_event(self, source: str) -> IrqEvent:
        ev = IrqEvent(self, self._next_id, source, self.now, self.trace)
        self._next_id += 1
        self.last_event = ev
        self.ledger.raise_one()
        self._inflight[ev.id] = ev
        if ev.journey is not None:
            self.last_journey = ev.journey
        return ev

    @property
    def next_event_id(self) -> int:
        """The id the next interrupt raised will get."""
        return self._next_id

    def reserve_event_ids(self, n: int) -> int:
        """Take ``n`` consecutive ids (the storm engine's interrupts); returns the first."""
        first = self._next_id
        self._next_id += n
        return first

    def events_in_flight(self) -> list[IrqEvent]:
        """The interrupts still in flight (no outcome yet), oldest first. One held ``pending`` has its outcome
        for now and is not listed: it sits in its device's Status bit, a line's IRQS_PENDING or an MSI-X PBA."""
        return [self._inflight[k] for k in sorted(self._inflight)]

    def event(self, journey_or_id: Any) -> IrqEvent | None:
        """The interrupt behind a Journey (or an id), while it is still to be accounted for."""
        eid = getattr(journey_or_id, "id", journey_or_id)
        return self._inflight.get(eid)

    def deliver_vector(self, cpu: int, vector: int, ev: IrqEvent) -> None:
        """``vector`` arrives at the local APIC of ``cpu``: when the CPU takes it (now, or when it leaves hard-IRQ
        context), its IDT entry runs x86 common_interrupt (irqlab/cpu.py)."""
        ev.via_host = True
        c = self.cpus[cpu]
        desc = self.genirq.vector_irq[cpu].get(vector)
        if getattr(desc, "masked", False) and not desc.level:
            # a masked MSI never leaves the chip (pci_msi_mask_irq): it waits as the line's pending one, and no CPU
            # sees it (as an IO-APIC pin masked at the chip, irqlab/pci.py _intx_line_up)
            ev.irq = desc.irq
            self.genirq._hold_pending(desc, ev, "masked at the chip")
            return
        if getattr(desc, "level", False) and c.outstanding(vector):
            c.remote_irr(desc, vector, ev)   # a level IO-APIC pin sends nothing while its last message is unEOId
            return
        c.apic_accept(vector, ev, lambda e: self.genirq.common_interrupt(cpu, vector, e))

    def _work_ran(self, cpu: int | None) -> None:
        if cpu is not None:
            self.cpus[cpu].work_runs += 1

    def ledger_check(self) -> None:
        self.ledger.check()
