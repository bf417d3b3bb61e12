"""vfio-pci interrupts: GET_IRQ_INFO, SET_IRQS, the INTx and MSI handlers, and virqfd unmasking.

Models drivers/vfio/vfio_main.c (``vfio_set_irqs_validate_and_prepare``), drivers/vfio/pci/vfio_pci_core.c
(``vfio_pci_ioctl_get_irq_info``), drivers/vfio/pci/vfio_pci_intrs.c (``vfio_pci_set_irqs_ioctl``,
``vfio_intx_handler``, ``vfio_msihandler``, ``vfio_msi_set_vector_signal``...) and drivers/vfio/virqfd.c.
Simplification: where the ioctl takes file descriptors, the model takes ``Eventfd`` objects (-1 or None
for -1), and ``argsz`` is implied by the length of ``data``.
"""
from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from .errors import KernelError
from .eventfd import EPOLLHUP, EPOLLIN, Eventfd, WaitQueueEntry
from .ledger import Outcome
from .sched import WorkStruct
from .uapi import (
    IRQ_HANDLED, IRQ_NONE, IRQF_SHARED, VFIO_IRQ_INFO_AUTOMASKED, VFIO_IRQ_INFO_EVENTFD,
    VFIO_IRQ_INFO_MASKABLE, VFIO_IRQ_INFO_NORESIZE, VFIO_IRQ_SET_ACTION_MASK, VFIO_IRQ_SET_ACTION_TRIGGER,
    VFIO_IRQ_SET_ACTION_TYPE_MASK, VFIO_IRQ_SET_ACTION_UNMASK, VFIO_IRQ_SET_DATA_BOOL, VFIO_IRQ_SET_DATA_EVENTFD,
    VFIO_IRQ_SET_DATA_NONE, VFIO_IRQ_SET_DATA_TYPE_MASK, VFIO_PCI_ERR_IRQ_INDEX, VFIO_PCI_INTX_IRQ_INDEX,
    VFIO_PCI_MSI_IRQ_INDEX, VFIO_PCI_MSIX_IRQ_INDEX, VFIO_PCI_NUM_IRQS, VFIO_PCI_REQ_IRQ_INDEX,
)

if TYPE_CHECKING:
    from .pci import PciDevice

__all__ = ["VfioPciDevice", "VfioIrqInfo", "Virqfd"]

INTRS = "drivers/vfio/pci/vfio_pci_intrs.c"
INDEX_NAMES = {0: "INTX", 1: "MSI", 2: "MSIX", 3: "ERR", 4: "REQ"}
IRQ_NONE_TYPE = -1


@dataclass(frozen=True)
class VfioIrqInfo:
    """``struct vfio_irq_info``."""

    argsz: int
    flags: int
    index: int
    count: int


def _fd(value: Any, what: str) -> Eventfd | None:
    """An eventfd argument: an Eventfd, or -1/None for "no eventfd"."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value == -1):
        return None
    if isinstance(value, Eventfd):
        if value.closed:
            raise KernelError(errno.EBADF, f"{what}: the eventfd is closed")
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if value < -1:
            raise KernelError(errno.EINVAL, f"{what}: fd {value} is invalid (use -1 to de-assign)")
        raise KernelError(errno.EBADF, f"{what}: fd {value} is not open in the model: pass the Eventfd object")
    raise TypeError(f"{what}: expected an irqlab.Eventfd, -1 or None, not {type(value).__name__}")


class Virqfd:
    """drivers/vfio/virqfd.c: an eventfd whose EPOLLIN runs ``handler`` and, if it returns > 0, ``thread``."""

    def __init__(self, vdev: "VfioPciDevice", eventfd: Eventfd, handler: Any, thread: Any):
        self.vdev, self.eventfd, self.handler, self.thread = vdev, eventfd, handler, thread
        self.inject = WorkStruct(lambda w: self.thread(), name="virqfd_inject")
        self.wait = WaitQueueEntry(self.virqfd_wakeup, name=f"virqfd({vdev.dev.bdf})")
        eventfd.add_wait_queue(self.wait)
        if eventfd.poll() & EPOLLIN:  # already signalled before we hooked up
            self.virqfd_wakeup(eventfd, EPOLLIN, None)

    def virqfd_wakeup(self, efd: Eventfd, mask: int, token: Any) -> int:
        if mask & EPOLLIN:
            efd.eventfd_ctx_do_read()
            if self.handler() and self.thread is not None:
                self.vdev.dev.host.sched.schedule_work(self.inject, self.vdev.dev.host.timing.irqfd_work_ns)
        if mask & EPOLLHUP:
            self.disable()
        return 0

    def disable(self) -> None:
        self.eventfd.remove_wait_queue(self.wait)
        self.vdev.dev.host.sched.cancel_work(self.inject)


class VfioPciDevice:
    """A PCI function bound to vfio-pci: what QEMU drives with VFIO_DEVICE_* ioctls."""

    name = "vfio-pci"

    def __init__(self, dev: "PciDevice"):
        self.dev = dev
        self.irq_type = IRQ_NONE_TYPE
        self.intx_trigger: Eventfd | None = None
        self.intx_masked = False          # ctx->masked
        self.intx_unmask: Virqfd | None = None
        self.msi_triggers: dict[int, Eventfd] = {}
        self.err_trigger: Eventfd | None = None
        self.req_trigger: Eventfd | None = None
        self.intx_name = f"vfio-intx({dev.bdf})"
        self.handled = {"intx": 0, "intx_none": 0, "msi": 0}

    def __repr__(self) -> str:
        return f"<VfioPciDevice {self.dev.bdf} irq_type={INDEX_NAMES.get(self.irq_type, 'NONE')}>"

    @classmethod
    def bind(cls, dev: "PciDevice") -> "VfioPciDevice":
        """Unbind the host driver (its actions are freed) and bind vfio-pci; INTx starts disabled."""
        if isinstance(dev.driver, VfioPciDevice):
            raise KernelError(errno.EBUSY, f"{dev.bdf} is already bound to vfio-pci")
        if dev.driver is not None:
            dev.driver.unbind()
        vdev = cls(dev)
        dev.driver = vdev
        dev.host.irqbypass.devices.append(vdev)
        return vdev

    @property
    def host(self) -> Any:
        return self.dev.host

    # GET_IRQ_INFO ----------------------------------------------------------------------------------
    def irq_count(self, index: int) -> int:
        """vfio_pci_get_irq_count()."""
        d = self.dev
        if index == VFIO_PCI_INTX_IRQ_INDEX:
            return 1 if d.intx_pin else 0
        if index == VFIO_PCI_MSI_IRQ_INDEX:
            return d.msi_cap
        if index == VFIO_PCI_MSIX_IRQ_INDEX:
            return d.msix_cap
        if index == VFIO_PCI_ERR_IRQ_INDEX:
            return 1 if d.pcie else 0
        if index == VFIO_PCI_REQ_IRQ_INDEX:
            return 1
        return 0

    def get_irq_info(self, index: int) -> VfioIrqInfo:
        """VFIO_DEVICE_GET_IRQ_INFO."""
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"index must be an int (VFIO_PCI_*_IRQ_INDEX), not {type(index).__name__}")
        if not 0 <= index < VFIO_PCI_NUM_IRQS:
            raise KernelError(errno.EINVAL, f"VFIO_DEVICE_GET_IRQ_INFO: index {index} >= VFIO_PCI_NUM_IRQS")
        if index == VFIO_PCI_ERR_IRQ_INDEX and not self.dev.pcie:
            raise KernelError(errno.EINVAL, "VFIO_DEVICE_GET_IRQ_INFO: ERR index on a non-PCIe device")
        flags = VFIO_IRQ_INFO_EVENTFD
        if index == VFIO_PCI_INTX_IRQ_INDEX:
            flags |= VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED
        elif not (index == VFIO_PCI_MSIX_IRQ_INDEX and self.dev.dynamic_msix):
            flags |= VFIO_IRQ_INFO_NORESIZE
        return VfioIrqInfo(16, flags, index, self.irq_count(index))

    # SET_IRQS --------------------------------------------------------------------------------------
    def set_irqs(self, flags: int, index: int, start: int, count: int, data: Any = None) -> int:
        """VFIO_DEVICE_SET_IRQS: validate, then dispatch on (index, action). Returns 0 (or a count)."""
        for name, v in (("flags", flags), ("index", index), ("start", start), ("count", count)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"set_irqs: {name} must be an int, not {type(v).__name__}")
            if v < 0:
                raise ValueError(f"set_irqs: {name} is a u32, got {v}")
        if flags & ~(VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK):
            raise KernelError(errno.EINVAL, f"VFIO_DEVICE_SET_IRQS: unknown flag bits 0x{flags:x}")
        if index >= VFIO_PCI_NUM_IRQS:
            raise KernelError(errno.EINVAL, f"VFIO_DEVICE_SET_IRQS: index {index} >= VFIO_PCI_NUM_IRQS")
        dtype = flags & VFIO_IRQ_SET_DATA_TYPE_MASK
        if dtype not in (VFIO_IRQ_SET_DATA_NONE, VFIO_IRQ_SET_DATA_BOOL, VFIO_IRQ_SET_DATA_EVENTFD):
            raise KernelError(errno.EINVAL, "VFIO_DEVICE_SET_IRQS: exactly one VFIO_IRQ_SET_DATA_* type is needed")
        n = self.irq_count(index)
        if start >= n or start + count > n:
            if not (count == 0 and start == 0 and n > 0):
                raise KernelError(errno.EINVAL, f"VFIO_DEVICE_SET_IRQS: start {start} + count {count} is beyond "
                                  f"the {n} {INDEX_NAMES[index]} interrupt(s) of {self.dev.bdf}")
        items: list[Any] = []
        if dtype != VFIO_IRQ_SET_DATA_NONE:
            if data is None or isinstance(data, (str, bytes)) or not isinstance(data, Sequence):
                if count:
                    raise KernelError(errno.EINVAL, f"VFIO_DEVICE_SET_IRQS: data must hold {count} entries")
            else:
                items = list(data)
            if len(items) < count:
                raise KernelError(errno.EINVAL, f"VFIO_DEVICE_SET_IRQS: data has {len(items)} entries, count is {count}")
            items = items[:count]
        action = flags & VFIO_IRQ_SET_ACTION_TYPE_MASK
        func = None
        if index == VFIO_PCI_INTX_IRQ_INDEX:
            func = {VFIO_IRQ_SET_ACTION_MASK: self._set_intx_mask, VFIO_IRQ_SET_ACTION_UNMASK: self._set_intx_unmask,
                    VFIO_IRQ_SET_ACTION_TRIGGER: self._set_intx_trigger}.get(action)
        elif index in (VFIO_PCI_MSI_IRQ_INDEX, VFIO_PCI_MSIX_IRQ_INDEX):
            func = self._set_msi_trigger if action == VFIO_IRQ_SET_ACTION_TRIGGER else None
        elif index == VFIO_PCI_ERR_IRQ_INDEX:
            func = self._set_err_trigger if action == VFIO_IRQ_SET_ACTION_TRIGGER and self.dev.pcie else None
        elif index == VFIO_PCI_REQ_IRQ_INDEX:
            func = self._set_req_trigger if action == VFIO_IRQ_SET_ACTION_TRIGGER else None
        if func is None:
            raise KernelError(errno.ENOTTY, f"VFIO_DEVICE_SET_IRQS: no handler for action 0x{action:x} on "
                              f"{INDEX_NAMES[index]}")
        return func(index, start, count, dtype, items)

    # INTx ------------------------------------------------------------------------------------------
    def _is_intx(self) -> bool:
        return self.irq_type == VFIO_PCI_INTX_IRQ_INDEX

    def _set_intx_trigger(self, index: int, start: int, count: int, dtype: int, items: list) -> int:
        if self._is_intx() and not count and dtype == VFIO_IRQ_SET_DATA_NONE:
            self.vfio_intx_disable()
            return 0
        if not (self._is_intx() or self.irq_type == IRQ_NONE_TYPE) or start != 0 or count != 1:
            raise KernelError(errno.EINVAL, "INTx trigger: needs start 0, count 1, and MSI/MSI-X not enabled")
        if dtype == VFIO_IRQ_SET_DATA_EVENTFD:
            trigger = _fd(items[0], "INTx trigger")
            if self._is_intx():
                self.intx_trigger = trigger  # vfio_intx_set_signal
                if trigger is not None:
                    trigger.vfio_source = (self, VFIO_PCI_INTX_IRQ_INDEX, 0)
            else:
                self.vfio_intx_enable(trigger)
            return 0
        if not self._is_intx():
            raise KernelError(errno.EINVAL, "INTx loopback: INTx is not enabled")
        if dtype == VFIO_IRQ_SET_DATA_NONE or items[0]:
            self.vfio_send_intx_eventfd(None)
        return 0

    def vfio_intx_enable(self, trigger: Eventfd | None) -> None:
        d = self.dev
        if d.gsi is None:
            raise KernelError(errno.ENODEV, f"{d.bdf}: no INTx irq")
        desc = d.host.genirq.descs[d.gsi]
        if d.pci_2_3:
            flags = IRQF_SHARED
        else:
            flags = 0  # IRQF_NO_AUTOEN only when virq_disabled, which the model never sets
            unlazy_before, desc.unlazy = desc.unlazy, True  # irq_set_status_flags(IRQ_DISABLE_UNLAZY)
        try:
            d.host.genirq.request_irq(d.gsi, self.vfio_intx_handler, flags, self.intx_name, self)
        except KernelError:
            if not d.pci_2_3:
                desc.unlazy = unlazy_before
            raise
        if d.pci_2_3:
            d.pci_intx(True)
        self.intx_masked = False
        self.intx_trigger = trigger
        if trigger is not None:
            trigger.vfio_source = (self, VFIO_PCI_INTX_IRQ_INDEX, 0)
        self.irq_type = VFIO_PCI_INTX_IRQ_INDEX

    def vfio_intx_disable(self) -> None:
        d = self.dev
        if self.intx_unmask is not None:
            self.intx_unmask.disable()
            self.intx_unmask = None
        d.host.genirq.free_irq(d.gsi, self)
        self.intx_trigger = None
        self.intx_masked = False
        self.irq_type = IRQ_NONE_TYPE

    def vfio_intx_handler(self, irq: int, dev_id: Any) -> int:
        d = self.dev
        host = d.host
        status = d.intx_status_event
        ev = status.claim() if status is not None else (host.current if host.current and host.current.live else None)
        if not d.pci_2_3:
            host.genirq.disable_irq_nosync(irq)
            self.intx_masked = True
            ret = IRQ_HANDLED
        elif not self.intx_masked and d.pci_check_and_mask_intx():
            self.intx_masked = True
            ret = IRQ_HANDLED
        else:
            self.handled["intx_none"] += 1
            return IRQ_NONE
        self.handled["intx"] += 1
        if ev is not None:
            ev.hop("vfio_intx_handler", INTRS, "vfio", f"{self.intx_name}: pci_check_and_mask_intx → masked "
                   f"(Command.INTx Disable set), IRQ_HANDLED")
        self.vfio_send_intx_eventfd(ev)
        return ret

    def vfio_send_intx_eventfd(self, ev: Any) -> None:
        """Signal the trigger with the interrupt being carried (only if it is still to be accounted for)."""
        if not self._is_intx():
            return
        tok = ev.claim() if ev is not None and ev.real else None
        if self.intx_trigger is None:
            if tok is not None:
                tok.settle(Outcome.NO_TRIGGER)
            return
        if not self.intx_trigger.signal(tok) and tok is not None and not tok.done:
            tok.settle(Outcome.USERSPACE)

    def vfio_pci_intx_mask(self) -> None:
        if not self.intx_masked:
            if self.dev.pci_2_3:
                self.dev.pci_intx(False)
            else:
                self.dev.host.genirq.disable_irq(self.dev.gsi)
            self.intx_masked = True

    def vfio_pci_intx_unmask_handler(self) -> int:
        """Returns 1 if the device still asserts (stays masked; the caller re-sends the interrupt)."""
        ret = 0
        if self._is_intx() and self.intx_masked:
            if self.dev.pci_2_3:
                if not self.dev.pci_check_and_unmask_intx():
                    ret = 1
            else:
                self.dev.host.genirq.enable_irq(self.dev.gsi)
            self.intx_masked = ret > 0
        return ret

    def vfio_pci_intx_unmask(self) -> None:
        if self.vfio_pci_intx_unmask_handler() > 0:
            self.vfio_send_intx_eventfd(self.dev.intx_status_event)

    def _set_intx_mask(self, index: int, start: int, count: int, dtype: int, items: list) -> int:
        if not self._is_intx() or start != 0 or count != 1:
            raise KernelError(errno.EINVAL, "INTx mask: INTx not enabled, or start/count not 0/1")
        if dtype == VFIO_IRQ_SET_DATA_EVENTFD:
            raise KernelError(errno.ENOTTY, "INTx mask with DATA_EVENTFD is not implemented by vfio-pci")
        if dtype == VFIO_IRQ_SET_DATA_NONE or items[0]:
            self.vfio_pci_intx_mask()
        return 0

    def _set_intx_unmask(self, index: int, start: int, count: int, dtype: int, items: list) -> int:
        if not self._is_intx() or start != 0 or count != 1:
            raise KernelError(errno.EINVAL, "INTx unmask: INTx not enabled, or start/count not 0/1")
        if dtype == VFIO_IRQ_SET_DATA_EVENTFD:
            efd = _fd(items[0], "INTx unmask eventfd")
            if self.intx_unmask is not None:
                self.intx_unmask.disable()
                self.intx_unmask = None
            if efd is not None:
                self.intx_unmask = Virqfd(self, efd, self.vfio_pci_intx_unmask_handler,
                                          lambda: self.vfio_send_intx_eventfd(self.dev.intx_status_event))
            return 0
        if dtype == VFIO_IRQ_SET_DATA_NONE or items[0]:
            self.vfio_pci_intx_unmask()
        return 0

    # MSI / MSI-X -----------------------------------------------------------------------------------
    def _set_msi_trigger(self, index: int, start: int, count: int, dtype: int, items: list) -> int:
        msix = index == VFIO_PCI_MSIX_IRQ_INDEX
        if self.irq_type == index and not count and dtype == VFIO_IRQ_SET_DATA_NONE:
            self.vfio_msi_disable()
            return 0
        if not (self.irq_type == index or self.irq_type == IRQ_NONE_TYPE):
            raise KernelError(errno.EINVAL, f"{INDEX_NAMES[index]} trigger: "
                              f"{INDEX_NAMES.get(self.irq_type)} is enabled; disable it first")
        if dtype == VFIO_IRQ_SET_DATA_EVENTFD:
            fds = [_fd(x, f"{INDEX_NAMES[index]} vector {start + i}") for i, x in enumerate(items)]
            if self.irq_type == index:
                return self.vfio_msi_set_block(start, fds, msix)
            got = self.vfio_msi_enable(start + count, msix)
            if got:
                return got
            try:
                return self.vfio_msi_set_block(start, fds, msix)
            except KernelError:
                self.vfio_msi_disable()
                raise
        if self.irq_type != index:
            raise KernelError(errno.EINVAL, f"{INDEX_NAMES[index]} loopback: not enabled")
        for i in range(start, start + count):
            efd = self.msi_triggers.get(i)
            if efd is not None and (dtype == VFIO_IRQ_SET_DATA_NONE or items[i - start]):
                efd.signal()
        return 0

    def vfio_msi_enable(self, nvec: int, msix: bool) -> int:
        """Allocate nvec vectors; if fewer are available, return that number (the ioctl returns it)."""
        d = self.dev
        cap = d.msix_cap if msix else d.msi_cap
        if cap < nvec:
            return cap
        d.pci_alloc_irq_vectors(1, nvec, msix)
        self.irq_type = VFIO_PCI_MSIX_IRQ_INDEX if msix else VFIO_PCI_MSI_IRQ_INDEX
        return 0

    def vfio_msi_set_block(self, start: int, fds: list[Eventfd | None], msix: bool) -> int:
        done = []
        try:
            for j, efd in enumerate(fds):
                self.vfio_msi_set_vector_signal(start + j, efd, msix)
                done.append(start + j)
        except KernelError:
            for i in done:  # "an error part-way through a block unwinds the block"
                self.vfio_msi_set_vector_signal(i, None, msix)
            raise
        return 0

    def msi_name(self, vector: int) -> str:
        return f"vfio-msi{'x' if self.irq_type == VFIO_PCI_MSIX_IRQ_INDEX else ''}[{vector}]({self.dev.bdf})"

    def vfio_msi_set_vector_signal(self, vector: int, efd: Eventfd | None, msix: bool) -> None:
        d, host = self.dev, self.dev.host
        v = d.vector(vector)
        old = self.msi_triggers.pop(vector, None)
        if old is not None and v is not None:
            host.irqbypass.irq_bypass_unregister_producer(old)
            host.genirq.free_irq(v.irq, old)
            old.vfio_source = None
        if efd is None:
            return
        if v is None:
            if not msix:
                raise KernelError(errno.EINVAL, f"MSI vector {vector} was not allocated")
            v = d.pci_msix_alloc_irq_at(vector)
        host.genirq.request_irq(v.irq, self.vfio_msihandler, 0, self.msi_name(vector), efd)
        efd.vfio_source = (self, self.irq_type, vector)
        self.msi_triggers[vector] = efd
        host.irqbypass.irq_bypass_register_producer(efd, v.irq, self, vector)

    def vfio_msihandler(self, irq: int, trigger: Any) -> int:
        host = self.dev.host
        ev = host.current
        self.handled["msi"] += 1
        if ev is not None:
            ev.hop("vfio_msihandler", INTRS, "vfio", f"{self.dev.bdf}: irq {irq} → eventfd_signal(trigger)")
        if not trigger.signal(ev if (ev is not None and ev.real) else None):
            if ev is not None and ev.real and not ev.done:
                ev.settle(Outcome.USERSPACE)
        return IRQ_HANDLED

    def vfio_msi_disable(self) -> None:
        msix = self.irq_type == VFIO_PCI_MSIX_IRQ_INDEX
        for vector in sorted(self.msi_triggers):
            self.vfio_msi_set_vector_signal(vector, None, msix)
        self.dev.pci_free_irq_vectors()
        self.irq_type = IRQ_NONE_TYPE

    # ERR / REQ -------------------------------------------------------------------------------------
    def _single(self, attr: str, count: int, dtype: int, items: list) -> int:
        """vfio_pci_set_ctx_trigger_single()."""
        cur = getattr(self, attr)
        if dtype == VFIO_IRQ_SET_DATA_NONE:
            if cur is not None:
                if count:
                    cur.signal()
                else:
                    setattr(self, attr, None)
            return 0
        if not count:
            raise KernelError(errno.EINVAL, "count must be 1 with DATA_BOOL/DATA_EVENTFD")
        if dtype == VFIO_IRQ_SET_DATA_BOOL:
            if items[0] and cur is not None:
                cur.signal()
            return 0
        setattr(self, attr, _fd(items[0], attr))
        return 0

    def _set_err_trigger(self, index: int, start: int, count: int, dtype: int, items: list) -> int:
        return self._single("err_trigger", count, dtype, items)

    def _set_req_trigger(self, index: int, start: int, count: int, dtype: int, items: list) -> int:
        return self._single("req_trigger", count, dtype, items)
