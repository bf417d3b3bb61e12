"""The Host facade: assembles a booted x86 KVM host from the model's subsystems and offers the course's calls.

Assembles what arch/x86 boots with: genirq (kernel/irq/), the PCI devices and their drivers (drivers/pci,
drivers/vfio/pci), irqbypass (virt/lib/irqbypass.c) and KVM's VMs (virt/kvm), on the kernel services of
irqlab/kernel.py; the subsystems never import this module. Simplification: one IOMMU, one IO-APIC with 24
pins, devices' INTx wired straight to a GSI, and host-side processing of one interrupt is instantaneous in
model state (its cost is charged to latency through ``Timing.host_irq_ns``).
"""
from __future__ import annotations

from typing import Any, Callable

from .event import NO_EVENT, IrqEvent
from . import affinity as _affinity
from . import cpumap as _cpus
from . import procfs as _procfs
from .genirq import GenIrq, IrqDesc
from .kernel import ARCH_ROWS, Kernel
from .kvm.posted import IrqBypass
from .kvm.vm import Vm
from .pci import HostDriver, PciDevice
from .timing import Timing
from .trace import HARDWARE, Journey
from .vfio import VfioPciDevice
from .x86_vector import boot_nr_irqs

__all__ = ["Host", "IrqEvent", "NO_EVENT", "ARCH_ROWS"]


class Host(Kernel):
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
        if isinstance(irqfixup, bool) or not isinstance(irqfixup, int) or irqfixup not in (0, 1, 2):
            raise ValueError("irqfixup is 0 (off), 1 (irqfixup) or 2 (irqpoll)")
        for name, v in (("trace", trace), ("apicv", apicv), ("posted_interrupts", posted_interrupts),
                        ("noirqdebug", noirqdebug)):
            if not isinstance(v, (bool, int)):   # "no" would be true
                raise TypeError(f"{name} is True or False, not {type(v).__name__}")
        if posted_interrupts and not apicv:
            raise ValueError("posted_interrupts (VT-d posting) needs apicv=True: "
                             "enable_device_posted_irqs = enable_apicv && IRQ_POSTING_CAP")
        super().__init__(ncpus, timing or Timing(), trace)
        if nr_irqs is not None and (isinstance(nr_irqs, bool) or not isinstance(nr_irqs, int)):
            raise TypeError(f"nr_irqs must be an int, not {type(nr_irqs).__name__}")
        if nr_irqs is not None and not 16 <= nr_irqs <= 2**31 - 1:  # early_irq_init: >= the 16 legacy irqs
            raise ValueError(f"nr_irqs must be 16 (x86 preallocates the legacy irqs) .. 2**31 - 1, got {nr_irqs}")
        self.nr_irqs = nr_irqs if nr_irqs is not None else boot_nr_irqs(ncpus)  # vector.c arch_probe_nr_irqs
        self.enable_apicv = apicv
        self.enable_device_posted_irqs = posted_interrupts
        self.genirq = GenIrq(self)
        self.genirq.irqfixup = irqfixup
        self.genirq.noirqdebug = noirqdebug
        self.irqbypass = IrqBypass(self)

    def __repr__(self) -> str:
        return (f"<Host {self.ncpus} CPUs, {len(self.genirq.descs)} irqs, {len(self.devices)} devices, "
                f"{len(self.vms)} VMs, t={self.now:,} ns>")

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

    def irq_set_affinity(self, irq: int, cpus: Any) -> int:
        """irq_set_affinity(irq, cpumask): ``cpus`` is a CPU number or an iterable of them (irqlab/affinity.py)."""
        return self.genirq.irq_set_affinity(irq, cpus)

    def proc_irq(self, irq: int) -> dict[str, str]:
        """The files of /proc/irq/<irq>/ (smp_affinity, smp_affinity_list, effective_affinity... as 6.18 prints them)."""
        return _affinity.proc_irq_files(self, irq)

    def write_proc_irq(self, irq: int, name: str, text: str) -> int:
        """``echo text > /proc/irq/<irq>/<name>`` (smp_affinity: a hex mask; smp_affinity_list: a CPU list):
        the bytes written, or KernelError with the kernel's errno (nothing changes then)."""
        return _affinity.write_irq_affinity(self, irq, name, text)

    def alloc_irq(self, irq: int | None = None, *, chip_name: str = "IR-IO-APIC", hwirq: int | None = None,
                  level: bool = False, cpu: int | None = None, **kw: Any) -> IrqDesc:
        """Allocate a descriptor (an IO-APIC pin by default: irq = GSI, hwirq = pin)."""
        return self.genirq.alloc_irq(irq, chip_name=chip_name, hwirq=hwirq, level=level, cpu=cpu, **kw)

    # raising interrupts ------------------------------------------------------------------------------
    def generic_handle_irq(self, irq: int, cpu: int = 0, *, at: int | None = None) -> Journey:
        """Run irq's flow handler on ``cpu`` as if the line fired with no device asserting it."""
        desc = self.irq_to_desc(irq)
        if isinstance(cpu, bool) or not isinstance(cpu, int):
            raise TypeError(f"cpu must be an int, not {type(cpu).__name__}")
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
        ev = self.new_event(self.raised_name("spurious", irq=irq))
        ev.hop("IO-APIC pin fires", HARDWARE, "device", f"glitch on irq {irq}: no device asserted it")
        if desc.masked:
            ev.irq = irq
            self.genirq._hold_pending(desc, ev, "masked at the chip")
        else:
            self.deliver_vector(desc.cpu, desc.vector, ev)
        return self._journey(ev)

    @staticmethod
    def raised_name(kind: str, dev: Any = None, index: int = 0, irq: int = 0) -> str:
        """The name an interrupt raised by raise_msi / raise_intx / raise_spurious carries (the storm engine names
        the interrupts it leaves held alike)."""
        if kind == "spurious":
            return f"spurious irq {irq}"
        if kind == "msi":
            return f"{dev.bdf} msi{'x' if dev.msix_enabled else ''}[{index}]"
        return f"{dev.bdf} intx"

    def raise_msi(self, bdf: str, index: int = 0, *, at: int | None = None) -> Journey:
        """The device at ``bdf`` sends the message of its MSI/MSI-X vector ``index``."""
        dev = self.pci_dev(bdf)
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"index must be an int, not {type(index).__name__}")
        if dev.vector(index) is None:  # checked before the interrupt exists (send_msi checks it again)
            raise ValueError(f"{bdf} has no enabled MSI/MSI-X vector {index} "
                             f"(enabled: {[x.index for x in dev.vectors]})")
        self._advance(at)
        ev = self.new_event(self.raised_name("msi", dev, index))
        ev.device = dev
        dev.send_msi(index, ev)
        return self._journey(ev)

    def raise_intx(self, bdf: str, *, at: int | None = None) -> Journey:
        """The device at ``bdf`` asserts INTx (sets Status bit 3; the line goes up unless DisINTx)."""
        dev = self.pci_dev(bdf)
        self._advance(at)
        ev = self.new_event(self.raised_name("intx", dev))
        ev.device = dev
        dev.assert_intx(ev)
        return self._journey(ev)

    def _journey(self, ev: IrqEvent) -> Journey:
        self.recorder.end()  # the raise returns: its last hop's changes end here
        if ev.journey is None:
            j = Journey(ev.id, ev.source, ev.t)
            j.outcome = ev.outcome.label if ev.outcome else None
            return j
        return ev.journey

    # devices and VMs --------------------------------------------------------------------------------
    def add_pci_device(self, bdf: str, **kw: Any) -> PciDevice:
        return PciDevice.add(self, bdf, **kw)

    def pci_dev(self, bdf: str) -> PciDevice:
        if not isinstance(bdf, str):
            raise TypeError(f"bdf must be a str like '0000:01:00.0', not {type(bdf).__name__}")
        try:
            return self.devices[bdf]
        except KeyError:
            raise ValueError(f"no PCI device {bdf!r} on this host; add it with host.add_pci_device()") from None

    def bind_host_driver(self, bdf: str, name: str | None = None, **kw: Any) -> HostDriver:
        return HostDriver.bind(self.pci_dev(bdf), name, **kw)

    def vfio_pci_bind(self, bdf: str) -> VfioPciDevice:
        return VfioPciDevice.bind(self.pci_dev(bdf))

    def create_vm(self, nvcpus: int = 1, irqchip: str | None = "full", **kw: Any) -> Vm:
        vm = Vm(self, nvcpus=nvcpus, irqchip=irqchip, **kw)
        self.vms.append(vm)
        return vm

    # CPUs ------------------------------------------------------------------------------------------
    def cpu_map(self) -> list[dict]:
        """Per CPU, what it runs and what lands on it (irqlab/cpus.py: the data of a CPU diagram)."""
        return _cpus.cpu_map(self)

    def cpu_table(self) -> str:
        """The CPU map as text: state, vCPU, host irqs that land there, RES/PIN/PIW and the time split."""
        return _cpus.cpu_table(self)

    def cpu_times(self) -> dict[int, dict[str, int]]:
        """Per CPU, ns since boot in hard IRQ, VM exits, guest mode and idle (+ work: kworker time, beside them)."""
        return {c.id: c.time_split() for c in self.cpus}

    # /proc and /sys --------------------------------------------------------------------------------
    def _irq_row(self, desc: IrqDesc) -> Any:
        return _procfs.IrqRow(irq=desc.irq, counts=list(desc.kstat), chip_name=desc.chip_name,
                              hwirq=desc.hwirq, flow_name=desc.name, actions=desc.action_names())

    def proc_interrupts(self) -> str:
        """/proc/interrupts exactly as Linux 6.18 prints it for this host."""
        rows = [self._irq_row(d) for _, d in sorted(self.genirq.descs.items()) if d.actions]
        arch = _procfs.default_arch_rows(self.ncpus, {k: v for k, v in self.arch_counts.items()})
        return _procfs.render_proc_interrupts(rows, online_cpus=list(range(self.ncpus)), nr_irqs=self.nr_irqs,
                                              arch_rows=arch)

    def sys_kernel_irq(self, irq: int) -> dict[str, str]:
        """The files of /sys/kernel/irq/<irq>/ (each value ends with a newline, as sysfs prints it)."""
        desc = self.irq_to_desc(irq)
        return _procfs.render_sys_kernel_irq(self._irq_row(desc), possible_cpus_counts=list(desc.kstat),
                                             type_="level" if desc.level else "edge", wakeup=desc.wakeup,
                                             name=desc.name)
