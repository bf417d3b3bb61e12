"""A PCI function: its BDF, INTx pin with the Status/Command bits, and MSI / MSI-X vectors; host drivers.

Models drivers/pci/irq.c (``pci_check_and_mask_intx``, ``pci_check_and_unmask_intx``: one dword read of
Command+Status, Status bit 3 "Interrupt Status", Command bit 10 "Interrupt Disable"), drivers/pci/msi/
(``pci_alloc_irq_vectors``, per-device MSI domains named ``IR-PCI-MSI[X]-<BDF>``). Simplification: a device's
INTx is wired straight to one IO-APIC GSI (no bridge swizzling), and a host driver is a handler that
claims its device's interrupt (``HostDriver``) rather than a real driver.
"""
from __future__ import annotations

import errno
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import KernelError
from .ledger import Outcome
from .uapi import IRQ_HANDLED, IRQ_NONE, IRQF_ONESHOT, IRQF_SHARED

if TYPE_CHECKING:
    from .genirq import IrqDesc
    from .event import IrqEvent
    from .kernel import Kernel

__all__ = ["PciDevice", "MsiVector", "HostDriver", "BDF_RE"]


def _int(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{what} must be an int, not {type(v).__name__}")
    return v

BDF_RE = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]$")
PCI_STATUS_INTERRUPT = 0x08
PCI_COMMAND_INTX_DISABLE = 0x400
from .trace import HARDWARE as DEV  # hops done by the device itself


@dataclass(eq=False)
class MsiVector:
    """One allocated MSI/MSI-X vector: its Linux irq and the message the device writes."""

    index: int
    desc: "IrqDesc"
    address_lo: int = 0
    address_hi: int = 0
    data: int = 0
    masked: bool = False
    pending_event: "IrqEvent | None" = None  # MSI-X Pending Bit Array while masked
    sent: int = 0

    @property
    def irq(self) -> int:
        return self.desc.irq


class PciDevice:
    """A PCI function on the host. Create with ``host.add_pci_device(bdf, ...)``."""

    def __init__(self, host: "Kernel", bdf: str, *, name: str, intx_pin: int, gsi: int | None, msi: int,
                 msix: int, pci_2_3: bool, pcie: bool, dynamic_msix: bool):
        self.host = host
        self.bdf = bdf
        self.name = name
        self.intx_pin = intx_pin           # Interrupt Pin register: 0 none, 1..4 = INTA#..INTD#
        self.gsi = gsi                     # pdev->irq for INTx
        self.msi_cap = msi                 # MSI Multiple Message Capable, as a count (1..32) or 0
        self.msix_cap = msix               # MSI-X Table Size + 1, or 0
        self.pci_2_3 = pci_2_3             # supports Command.INTx Disable / Status.Interrupt (pci_intx_mask_supported)
        self.pcie = pcie
        self.dynamic_msix = dynamic_msix   # pci_msix_can_alloc_dyn()
        self.disintx = False               # Command bit 10
        self.intx_status_event: "IrqEvent | None" = None  # Status bit 3 and the interrupt that set it
        self.msi_enabled = False
        self.msix_enabled = False
        self.vectors: list[MsiVector] = []
        self.driver: Any = None
        self.raised = 0                    # every interrupt it sent, INTx and MSI
        self.intx_raised = 0               # INTx assertions alone (a shared line counts other devices' too)

    def __repr__(self) -> str:
        return f"<PciDevice {self.bdf} {self.name} driver={getattr(self.driver, 'name', None)}>"

    # creation --------------------------------------------------------------------------------------
    @classmethod
    def add(cls, host: "Kernel", bdf: str, *, name: str | None = None, intx_pin: int = 1, gsi: int | None = None,
            msi: int = 0, msix: int = 0, pci_2_3: bool = True, pcie: bool = True,
            dynamic_msix: bool = True) -> "PciDevice":
        """Put a function on the bus; every argument is checked before anything changes."""
        if not isinstance(bdf, str) or not BDF_RE.match(bdf):
            raise ValueError(f"bdf must look like '0000:01:00.0' (domain:bus:device.function, lowercase hex), got {bdf!r}")
        if bdf in host.devices:
            raise ValueError(f"{bdf} is already on this host")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, not {type(name).__name__}")
        for what, v in (("intx_pin", intx_pin), ("msi", msi), ("msix", msix)):
            _int(v, what)
        if gsi is not None:
            _int(gsi, "gsi")
        for what, v in (("pci_2_3", pci_2_3), ("pcie", pcie), ("dynamic_msix", dynamic_msix)):
            if not isinstance(v, bool):
                raise TypeError(f"{what} must be True or False, not {v!r}")
        if intx_pin not in (0, 1, 2, 3, 4):
            raise ValueError("intx_pin is the Interrupt Pin register: 0 (none) or 1..4 (INTA#..INTD#)")
        if msi not in (0, 1, 2, 4, 8, 16, 32):
            raise ValueError("msi is the number of MSI vectors the function is capable of: 0, 1, 2, 4, 8, 16 or 32")
        if not 0 <= msix <= 2048:
            raise ValueError("msix is the MSI-X table size: 0..2048")
        if intx_pin:
            if gsi is None:
                gsi = 16 + (int(bdf[8:10], 16) + intx_pin - 1) % 8  # a simple PIRQ swizzle onto GSIs 16-23
            if not 0 <= gsi < 24:
                raise ValueError("gsi must be an IO-APIC pin 0..23")
            if gsi not in host.genirq.descs:
                host.genirq.alloc_irq(gsi, chip_name="IR-IO-APIC", hwirq=gsi, level=gsi >= 16)
        else:
            gsi = None
        dev = cls(host, bdf, name=name or bdf, intx_pin=intx_pin, gsi=gsi, msi=msi, msix=msix,
                  pci_2_3=pci_2_3, pcie=pcie, dynamic_msix=dynamic_msix)
        host.devices[bdf] = dev
        return dev

    # INTx ------------------------------------------------------------------------------------------
    def assert_intx(self, ev: "IrqEvent") -> None:
        if not self.intx_pin or self.gsi is None:
            raise ValueError(f"{self.bdf} has no INTx pin (Interrupt Pin register is 0)")
        self.raised += 1
        self.intx_raised += 1
        if self.intx_status_event is not None:
            ev.hop("INTx assert", DEV, "device", f"{self.bdf}: Status.Interrupt already set: merged")
            ev.settle(Outcome.MASKED if self.disintx else Outcome.DISABLED)
            return
        self.intx_status_event = ev
        if self.disintx:  # it waits in the Status bit: vfio's unmask finds it and sends it (a claim)
            ev.hop("INTx assert", DEV, "device", f"{self.bdf}: Status.Interrupt set; INTx Disable holds the line "
                   "down: it waits there")
            ev.settle(Outcome.PENDING)
            return
        ev.hop("INTx assert", DEV, "device", f"{self.bdf}: INT{'ABCD'[self.intx_pin - 1]}# → IO-APIC pin {self.gsi}")
        self._intx_line_up(ev)

    def _intx_line_up(self, ev: "IrqEvent") -> None:
        """INTx# goes up: the IO-APIC pin sends its vector, or holds it if the chip has the pin masked."""
        desc = self.host.genirq.descs[self.gsi]
        if desc.masked:
            if ev.real:
                ev.irq = desc.irq
            self.host.genirq._hold_pending(desc, ev, "masked at the chip")
        else:
            self.host.deliver_vector(desc.cpu, desc.vector, ev)

    def take_intx(self) -> "IrqEvent | None":
        """A driver reads Status.Interrupt and services the device (clearing it); returns what set it."""
        ev, self.intx_status_event = self.intx_status_event, None
        return ev

    def pci_check_and_mask_intx(self) -> bool:
        """If Status.Interrupt is set, set Command.INTx Disable; True if the mask was updated."""
        if self.intx_status_event is None:
            return False
        self.disintx = True
        return True

    def pci_check_and_unmask_intx(self) -> bool:
        """Clear INTx Disable unless Status.Interrupt is set (the next IRQ is already pending)."""
        if self.intx_status_event is not None:
            return False
        self.disintx = False
        return True

    def pci_intx(self, enable: bool) -> None:
        """drivers/pci/pci.c pci_intx: write Command.INTx Disable. Clearing it while Status.Interrupt is set lets
        the device drive INTx# again: the line goes up with the interrupt the Status bit holds (none if vfio
        passed it on already)."""
        if not isinstance(enable, bool):
            raise TypeError(f"pci_intx: enable must be True or False, not {enable!r}")
        was = self.disintx
        self.disintx = not enable
        ev = self.intx_status_event
        if was and enable and ev is not None and self.gsi is not None:
            from .event import NO_EVENT

            tok = ev.claim() or NO_EVENT
            tok.hop("pci_intx", "drivers/pci/pci.c", "vfio", f"{self.bdf}: INTx Disable cleared with "
                    "Status.Interrupt set: INTx# goes up")
            self._intx_line_up(tok)

    # MSI / MSI-X -----------------------------------------------------------------------------------
    @property
    def msi_chip(self) -> str:
        return f"IR-PCI-{'MSIX' if self.msix_enabled else 'MSI'}-{self.bdf}"

    def pci_alloc_irq_vectors(self, min_vecs: int, max_vecs: int, msix: bool) -> int:
        """Allocate vectors (per-device MSI domain, hwirq = index); returns how many, or raises."""
        _int(min_vecs, "min_vecs")
        _int(max_vecs, "max_vecs")
        if self.msi_enabled or self.msix_enabled:
            raise KernelError(errno.EINVAL, f"{self.bdf}: MSI/MSI-X already enabled")
        cap = self.msix_cap if msix else self.msi_cap
        if cap == 0:
            raise KernelError(errno.EINVAL, f"{self.bdf} has no {'MSI-X' if msix else 'MSI'} capability")
        if min_vecs < 1 or max_vecs < min_vecs:
            raise KernelError(errno.ERANGE, f"pci_alloc_irq_vectors: min {min_vecs}, max {max_vecs}")
        n = min(max_vecs, cap)
        if n < min_vecs:
            raise KernelError(errno.ENOSPC, f"{self.bdf}: only {n} vectors, {min_vecs} needed")
        self.msix_enabled, self.msi_enabled = msix, not msix
        for i in range(n):
            self._alloc_vector(i)
        return n

    def _alloc_vector(self, index: int) -> MsiVector:
        desc = self.host.genirq.alloc_irq(None, chip_name=self.msi_chip, hwirq=index, level=False, oneshot_safe=True)
        v = MsiVector(index, desc)
        self.vectors.append(v)
        self.vectors.sort(key=lambda x: x.index)
        return v

    def pci_msix_alloc_irq_at(self, index: int) -> MsiVector:
        _int(index, "index")
        if not 0 <= index < self.msix_cap:
            raise KernelError(errno.EINVAL, f"{self.bdf}: MSI-X index {index} is beyond the table ({self.msix_cap})")
        if self.vector(index) is not None:
            raise KernelError(errno.EBUSY, f"{self.bdf}: MSI-X vector {index} is allocated already")
        if not (self.msix_enabled and self.dynamic_msix):
            raise KernelError(errno.EINVAL, f"{self.bdf}: vector {index} not allocated and no dynamic MSI-X")
        return self._alloc_vector(index)

    def vector(self, index: int) -> MsiVector | None:
        return next((v for v in self.vectors if v.index == index), None)

    def pci_free_irq_vectors(self) -> None:
        """drivers/pci/msi/api.c pci_free_irq_vectors → pci_disable_msix/pci_disable_msi: the shutdown clears the
        Enable bit, so an interrupt waiting in a masked vector's pending bit is never sent (dropped)."""
        kind, fn = ("MSI-X", "pci_msix_shutdown") if self.msix_enabled else ("MSI", "pci_msi_shutdown")
        actor = "vfio" if getattr(self.driver, "name", None) == "vfio-pci" else "driver"
        for v in self.vectors:
            ev, v.pending_event = v.pending_event, None
            if ev is not None and ev.live:
                ev.hop(fn, "drivers/pci/msi/msi.c", actor, f"{self.bdf}[{v.index}]: {kind} Enable cleared with the "
                       "pending bit set: the message is never sent (dropped)")
                ev.settle(Outcome.DISABLED)
            self.host.genirq.free_desc(v.irq)
        self.vectors = []
        self.msi_enabled = self.msix_enabled = False

    def send_msi(self, index: int, ev: "IrqEvent") -> None:
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"index must be an int, not {type(index).__name__}")
        v = self.vector(index)
        if v is None:
            raise ValueError(f"{self.bdf} has no enabled MSI/MSI-X vector {index} "
                             f"(enabled: {[x.index for x in self.vectors]})")
        self.raised += 1
        v.sent += 1
        ev.irq = v.irq
        kind = "MSI-X" if self.msix_enabled else "MSI"
        if v.masked:
            ev.hop(f"{kind} write", DEV, "device", f"{self.bdf}[{index}] masked: pending bit set")
            if v.pending_event is None:
                v.pending_event = ev
                ev.settle(Outcome.PENDING)
            else:
                ev.settle(Outcome.DISABLED)
            return
        irte = self.host.irqbypass.posted_irte(v.irq)
        if irte is not None:
            ev.hop(f"{kind} write", DEV, "device", f"{self.bdf}[{index}] → IRTE posted (guest vector 0x{irte.vector:02x})")
            self.host.irqbypass.iommu_post(irte, ev)
            return
        ev.hop(f"{kind} write", DEV, "device", f"{self.bdf}[{index}] → IRTE remapped to CPU{v.desc.cpu} vector "
               f"0x{v.desc.vector:02x}")
        self.host.deliver_vector(v.desc.cpu, v.desc.vector, ev)


class HostDriver:
    """A host driver bound to a device: it requests the device's IRQs and claims its interrupts.

    MSI-X/MSI devices get one exclusive action per vector named ``<name>-q<i>`` (``nvme0q0``-style);
    INTx devices get one IRQF_SHARED action that checks Status.Interrupt, like a well-behaved driver.
    ``threaded=True`` requests ``request_threaded_irq(irq, NULL, thread_fn, ...)`` instead, as drivers on slow
    buses do: the default primary handler wakes the thread, which does the work (IRQF_ONESHOT on INTx).
    """

    def __init__(self, dev: PciDevice, name: str):
        self.dev = dev
        self.name = name
        self.irqs: list[int] = []

    @classmethod
    def bind(cls, dev: PciDevice, name: str | None = None, *, vectors: int | None = None,
             use_msi: bool | None = None, queue_fmt: str = "{name}-q{i}", threaded: bool = False) -> "HostDriver":
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, not {type(name).__name__}")
        if vectors is not None and (_int(vectors, "vectors") < 1):
            raise ValueError(f"vectors must be >= 1 (or None for every vector the device has), got {vectors}")
        if use_msi is not None and not isinstance(use_msi, bool):
            raise TypeError(f"use_msi must be True, False or None, not {use_msi!r}")
        if not isinstance(threaded, bool):
            raise TypeError(f"threaded must be True or False, not {threaded!r}")
        if not isinstance(queue_fmt, str):
            raise TypeError(f"queue_fmt must be a str, not {type(queue_fmt).__name__}")
        try:
            queue_fmt.format(name="x", i=0)
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"queue_fmt {queue_fmt!r} may use only {{name}} and {{i}}: {e}") from None
        if dev.driver is not None:
            raise KernelError(errno.EBUSY, f"{dev.bdf} is already bound to {dev.driver.name}")
        drv = cls(dev, name or dev.name)
        host = dev.host
        if use_msi is None:
            use_msi = bool(dev.msix_cap or dev.msi_cap)
        try:
            if use_msi:
                msix = bool(dev.msix_cap)
                n = dev.pci_alloc_irq_vectors(1, vectors or (dev.msix_cap or dev.msi_cap), msix)
                for v in dev.vectors[:n]:
                    qname = drv.name if n == 1 else queue_fmt.format(name=drv.name, i=v.index)
                    if threaded:
                        host.genirq.request_threaded_irq(v.irq, None, drv.msi_thread, 0, qname, drv)
                    else:
                        host.genirq.request_irq(v.irq, drv.msi_handler, 0, qname, drv)
                    drv.irqs.append(v.irq)
            elif dev.intx_pin:
                if threaded:
                    host.genirq.request_threaded_irq(dev.gsi, None, drv.intx_thread, IRQF_SHARED | IRQF_ONESHOT,
                                                     drv.name, drv)
                else:
                    host.genirq.request_irq(dev.gsi, drv.intx_handler, IRQF_SHARED, drv.name, drv)
                drv.irqs.append(dev.gsi)
        except KernelError:
            drv.unbind()  # the probe failed: what it set up goes
            raise
        dev.driver = drv
        return drv

    def msi_handler(self, irq: int, dev_id: Any) -> int:
        return IRQ_HANDLED

    def intx_handler(self, irq: int, dev_id: Any) -> int:
        ev = self.dev.take_intx()
        if ev is None:
            return IRQ_NONE  # "not my device"
        if ev.claim() is not None:
            ev.settle(Outcome.HANDLED_HOST)
        return IRQ_HANDLED

    def msi_thread(self, irq: int, dev_id: Any) -> int:
        """The thread_fn of a threaded driver's MSI vector: the work, in its irq thread."""
        return self.msi_handler(irq, dev_id)

    def intx_thread(self, irq: int, dev_id: Any) -> int:
        """The thread_fn of a threaded INTx driver: services its device if Status.Interrupt is set."""
        return self.intx_handler(irq, dev_id)

    def unbind(self) -> None:
        for irq in self.irqs:
            self.dev.host.genirq.free_irq(irq, self)
        self.irqs = []
        if self.dev.msi_enabled or self.dev.msix_enabled:
            self.dev.pci_free_irq_vectors()
        self.dev.driver = None
