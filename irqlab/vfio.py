"""vfio-pci interrupts: GET_IRQ_INFO, SET_IRQS, the INTx and MSI handlers, and virqfd unmasking.

Models drivers/vfio/vfio_main.c (``vfio_set_irqs_validate_and_prepare``), drivers/vfio/pci/vfio_pci_core.c
(``vfio_pci_ioctl_get_irq_info``, ``vfio_pci_eventfd_replace_locked``), drivers/vfio/pci/vfio_pci_intrs.c
(``vfio_pci_set_irqs_ioctl``, ``vfio_intx_handler``, ``vfio_send_intx_eventfd``,
``vfio_pci_intx_unmask_handler``, ``vfio_msihandler``, ``vfio_msi_set_vector_signal``,
``vfio_pci_set_ctx_trigger_single``...) and drivers/vfio/virqfd.c (``vfio_virqfd_enable``, ``virqfd_wakeup``,
``virqfd_inject``, ``virqfd_shutdown``).

The Status bit and the ledger: the interrupt a device's Status.Interrupt bit holds is carried by the first
trigger signal that sends it (``IrqEvent.passed_on``); a later re-send of the same, still-asserted level (an
unmask that finds the bit set, a loopback) carries no interrupt. A re-assertion is a new hardware interrupt
(raised while INTx Disable held the line down) or none.
Simplification: where the ioctl takes file descriptors, the model takes ``Eventfd`` objects (-1, any negative
int, or None for "no eventfd"; a non-negative int is a descriptor the model does not know: -EBADF), ``argsz``
is implied by the length of ``data``, and a virqfd shuts down at once instead of on vfio's cleanup workqueue.
"""
from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

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
VIRQFD_C = "drivers/vfio/virqfd.c"
PCI_IRQ_C = "drivers/pci/irq.c"
INDEX_NAMES = {0: "INTX", 1: "MSI", 2: "MSIX", 3: "ERR", 4: "REQ"}
IRQ_NONE_TYPE = -1
U32_MAX = 0xFFFFFFFF


@dataclass(frozen=True)
class VfioIrqInfo:
    """``struct vfio_irq_info``."""

    argsz: int
    flags: int
    index: int
    count: int


def _fd_item(value: Any, what: str) -> "Eventfd | int":
    """One int32 of SET_IRQS's DATA_EVENTFD array, type-checked before anything changes: an Eventfd, an int
    fd, or None (-1)."""
    if value is None:
        return -1
    if isinstance(value, Eventfd):
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what}: expected an irqlab.Eventfd, an int fd (-1: none) or None, "
                        f"not {type(value).__name__}")
    if not -(1 << 31) <= value < (1 << 31):
        raise ValueError(f"{what}: {value} is not an int32 file descriptor")
    return value


def _no_fd(fd: "Eventfd | int") -> bool:
    """fd < 0: "no eventfd" on the INTx and MSI/MSI-X paths (``if (fd >= 0)`` / ``if (fd < 0)``)."""
    return not isinstance(fd, Eventfd) and fd < 0


def eventfd_ctx_fdget(fd: "Eventfd | int", what: str) -> Eventfd:
    """fs/eventfd.c ``eventfd_ctx_fdget`` of a non-negative fd: -EBADF if it is not an open eventfd."""
    if isinstance(fd, Eventfd):
        if fd.closed:
            raise KernelError(errno.EBADF, f"{what}: the eventfd is closed")
        return fd
    raise KernelError(errno.EBADF, f"{what}: fd {fd} is not open in the model: pass the Eventfd object")


class Virqfd:
    """drivers/vfio/virqfd.c ``struct virqfd``: a waiter on an eventfd. On EPOLLIN, ``virqfd_wakeup`` reads the
    count and calls ``handler`` right there, in the wake-up (under the eventfd's wait-queue lock: for the
    resamplefd, inside the guest's EOI exit); only if the handler returns non-zero does ``thread`` run, later,
    from a work item (``virqfd_inject``, ``Timing.resample_ns`` after). ``slot`` names the attribute of the
    vfio device that holds it (``ctx->unmask``: the kernel's ``*pvirqfd``)."""

    def __init__(self, vdev: "VfioPciDevice", eventfd: Eventfd, handler: Callable[[Any], int] | None,
                 thread: Callable[[], None] | None, slot: str):
        self.vdev, self.eventfd, self.handler, self.thread, self.slot = vdev, eventfd, handler, thread, slot
        self.inject = WorkStruct(self.virqfd_inject, name=f"virqfd_inject({vdev.dev.bdf})")
        self.wait = WaitQueueEntry(self.virqfd_wakeup, name=f"virqfd({vdev.dev.bdf})", echo=True)

    @classmethod
    def vfio_virqfd_enable(cls, vdev: "VfioPciDevice", handler: Callable[[Any], int] | None,
                           thread: Callable[[], None] | None, slot: str, eventfd: Eventfd) -> "Virqfd":
        """-EBUSY if the slot holds a virqfd already (it stays); else hook onto the eventfd. A count already
        there ("an event already pending") runs the handler as if signalled, but is not consumed."""
        if getattr(vdev, slot) is not None:
            raise KernelError(errno.EBUSY, f"{vdev.dev.bdf}: {slot} already has an eventfd "
                              f"({getattr(vdev, slot).eventfd.name}): de-assign it with -1 first")
        v = cls(vdev, eventfd, handler, thread, slot)
        setattr(vdev, slot, v)
        eventfd.add_wait_queue(v.wait)
        if eventfd.poll() & EPOLLIN:  # vfs_poll: no eventfd_ctx_do_read here
            if (handler is None or handler(None)) and thread is not None:
                v._schedule(None)
        return v

    @staticmethod
    def vfio_virqfd_disable(vdev: "VfioPciDevice", slot: str) -> None:
        v = getattr(vdev, slot)
        if v is not None:
            setattr(vdev, slot, None)
            v.virqfd_shutdown()

    def virqfd_wakeup(self, efd: Eventfd, mask: int, token: Any) -> int:
        if mask & EPOLLIN:
            if token is not None:
                token.hop("virqfd_wakeup", VIRQFD_C, "vfio", f"{efd.name}: EPOLLIN: read the count, call the handler")
                token.hop("eventfd_ctx_do_read", "fs/eventfd.c", "eventfd", f"count {efd.count} consumed")
            before = efd.count
            efd.eventfd_ctx_do_read()
            if token is not None:
                token.change(f"{efd.name} count", before, efd.count)
            if (self.handler is None or self.handler(token)) and self.thread is not None:
                self._schedule(token)
        if mask & EPOLLHUP:  # "The eventfd is closing": detach, unless a disable got here first
            if getattr(self.vdev, self.slot) is self:
                setattr(self.vdev, self.slot, None)
                self.virqfd_shutdown()
        return 0

    def _schedule(self, token: Any) -> None:
        host = self.vdev.dev.host
        if host.sched.schedule_work(self.inject, host.timing.resample_ns) and token is not None:
            token.hop("schedule_work", "kernel/workqueue.c", "vfio", f"virqfd->inject queued: the thread "
                      f"(vfio_send_intx_eventfd) runs in a kworker in {host.timing.resample_ns:,} ns")

    def virqfd_inject(self, work: WorkStruct) -> None:
        if self.thread is not None:
            self.thread()

    def virqfd_shutdown(self) -> None:
        """Unhook (eventfd_ctx_remove_wait_queue reads the count away), then flush_work(&inject): a thread
        already queued still runs."""
        self.eventfd.eventfd_ctx_remove_wait_queue(self.wait)
        self.vdev.dev.host.sched.flush_work(self.inject)


class VfioPciDevice:
    """A PCI function bound to vfio-pci: what QEMU drives with VFIO_DEVICE_* ioctls."""

    name = "vfio-pci"

    def __init__(self, dev: "PciDevice"):
        self.dev = dev
        self.irq_type = IRQ_NONE_TYPE
        self.intx_trigger: Eventfd | None = None
        self.intx_masked = False          # ctx->masked
        self.intx_unmask: Virqfd | None = None   # ctx->unmask
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
        """VFIO_DEVICE_SET_IRQS: validate, then dispatch on (index, action). Returns 0 (or a count).

        ``data``: a sequence of ``count`` entries (more are ignored) — bools/uint8 for DATA_BOOL, Eventfd objects
        or int fds (-1 or None for none) for DATA_EVENTFD. Python types are checked before anything changes."""
        for name, v in (("flags", flags), ("index", index), ("start", start), ("count", count)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"set_irqs: {name} must be an int, not {type(v).__name__}")
            if not 0 <= v <= U32_MAX:
                raise ValueError(f"set_irqs: {name} is a u32 (0..0xffffffff), got {v}")
        # vfio_set_irqs_validate_and_prepare
        if index >= VFIO_PCI_NUM_IRQS:
            raise KernelError(errno.EINVAL, f"VFIO_DEVICE_SET_IRQS: index {index} >= VFIO_PCI_NUM_IRQS")
        if count >= U32_MAX - start:
            raise KernelError(errno.EINVAL, f"VFIO_DEVICE_SET_IRQS: start {start} + count {count} overflows a u32")
        if flags & ~(VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK):
            raise KernelError(errno.EINVAL, f"VFIO_DEVICE_SET_IRQS: unknown flag bits 0x{flags:x}")
        n = self.irq_count(index)
        if start >= n or start + count > n:
            raise KernelError(errno.EINVAL, f"VFIO_DEVICE_SET_IRQS: start {start} + count {count} is beyond "
                              f"the {n} {INDEX_NAMES[index]} interrupt(s) of {self.dev.bdf}")
        dtype = flags & VFIO_IRQ_SET_DATA_TYPE_MASK
        if dtype not in (VFIO_IRQ_SET_DATA_NONE, VFIO_IRQ_SET_DATA_BOOL, VFIO_IRQ_SET_DATA_EVENTFD):
            raise KernelError(errno.EINVAL, "VFIO_DEVICE_SET_IRQS: exactly one VFIO_IRQ_SET_DATA_* type is needed")
        items: list[Any] = []
        if dtype != VFIO_IRQ_SET_DATA_NONE:
            if data is not None and (isinstance(data, (str, bytes)) or not isinstance(data, Sequence)):
                raise TypeError(f"set_irqs: data must be a list of {count} entries, not {type(data).__name__}")
            items = list(data) if data is not None else []
            if len(items) < count:  # argsz too small for count entries
                raise KernelError(errno.EINVAL, f"VFIO_DEVICE_SET_IRQS: data has {len(items)} entries, count is {count}")
            items = items[:count]
            if dtype == VFIO_IRQ_SET_DATA_BOOL:
                for i, b in enumerate(items):
                    if not isinstance(b, int):
                        raise TypeError(f"set_irqs: DATA_BOOL entry {i} must be a bool or a uint8, not {type(b).__name__}")
                    if not 0 <= b <= 0xFF:
                        raise ValueError(f"set_irqs: DATA_BOOL entry {i} is a uint8 (0..255), got {b}")
                items = [int(b) for b in items]
            else:
                items = [_fd_item(x, f"set_irqs: DATA_EVENTFD entry {i}") for i, x in enumerate(items)]
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
        """vfio_pci_set_intx_trigger: count 0 + DATA_NONE disables; an eventfd (fd < 0: none) enables or
        swaps the trigger; DATA_NONE/DATA_BOOL signal it (loopback: no hardware interrupt behind it)."""
        if self._is_intx() and not count and dtype == VFIO_IRQ_SET_DATA_NONE:
            self.vfio_intx_disable()
            return 0
        if not (self._is_intx() or self.irq_type == IRQ_NONE_TYPE) or start != 0 or count != 1:
            raise KernelError(errno.EINVAL, "INTx trigger: needs start 0, count 1, and MSI/MSI-X not enabled")
        if dtype == VFIO_IRQ_SET_DATA_EVENTFD:
            fd = items[0]
            trigger = None if _no_fd(fd) else eventfd_ctx_fdget(fd, "INTx trigger")
            if self._is_intx():
                self.vfio_intx_set_signal(trigger)
            else:
                self.vfio_intx_enable(trigger)
            return 0
        if not self._is_intx():
            raise KernelError(errno.EINVAL, "INTx loopback: INTx is not enabled")
        if dtype == VFIO_IRQ_SET_DATA_NONE or items[0]:
            self.vfio_send_intx_eventfd(None)
        return 0

    def vfio_intx_enable(self, trigger: Eventfd | None) -> None:
        """request_irq of the INTx line (shared if the device has INTx masking, else exclusive and
        IRQ_DISABLE_UNLAZY), INTx Disable cleared. Simplification: INTx Disable is cleared after the handler is
        registered (the kernel clears it first; the line then fires into the handler as soon as it starts)."""
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
        self.intx_masked = False
        self.intx_trigger = trigger
        self.irq_type = VFIO_PCI_INTX_IRQ_INDEX
        if d.pci_2_3:
            d.pci_intx(True)  # a Status bit already set drives the line now: vfio_intx_handler takes it

    def vfio_intx_set_signal(self, trigger: Eventfd | None) -> None:
        """Swap the trigger; a re-send the unmask virqfd has queued runs now (vfio_virqfd_flush_thread), to
        the new one."""
        old, self.intx_trigger = self.intx_trigger, trigger
        if old is not None and self.intx_unmask is not None:
            self.dev.host.sched.flush_work(self.intx_unmask.inject)

    def vfio_intx_disable(self) -> None:
        """vfio_virqfd_disable(&ctx->unmask) (a queued re-send still runs), free_irq, clear
        IRQ_DISABLE_UNLAZY, put the trigger. INTx Disable is left as it is."""
        d = self.dev
        Virqfd.vfio_virqfd_disable(self, "intx_unmask")
        d.host.genirq.free_irq(d.gsi, self)
        if not d.pci_2_3:
            d.host.genirq.descs[d.gsi].unlazy = False  # irq_clear_status_flags(IRQ_DISABLE_UNLAZY)
        self.intx_trigger = None
        self.intx_masked = False
        self.irq_type = IRQ_NONE_TYPE

    def vfio_intx_handler(self, irq: int, dev_id: Any) -> int:
        d = self.dev
        host = d.host
        cur = host.current
        if cur is not None:
            cur.mark()  # its hop comes after the mask: the mask is its change, not its caller's
        if not d.pci_2_3:
            host.genirq.disable_irq_nosync(irq)
            self.intx_masked = True
            ret = IRQ_HANDLED
            what = "no INTx masking: disable_irq_nosync"
        elif not self.intx_masked and d.pci_check_and_mask_intx():
            self.intx_masked = True
            ret = IRQ_HANDLED
            what = "pci_check_and_mask_intx → masked (Command.INTx Disable set)"
        else:
            self.handled["intx_none"] += 1
            return IRQ_NONE
        self.handled["intx"] += 1
        if cur is not None:
            cur.hop("vfio_intx_handler", INTRS, "vfio", f"{self.intx_name}: {what}, IRQ_HANDLED")
            if d.pci_2_3:
                cur.change(f"{d.bdf} DisINTx", 0, 1)
        # the Status bit's interrupt; none set, or already passed on (a device without INTx masking that the line
        # delivers again at enable_irq, a glitch on its exclusive line): whatever came in on the line
        ev = d.intx_status_event
        if (ev is None or ev.passed_on) and cur is not None and cur.live:
            ev = cur
        self.vfio_send_intx_eventfd(ev)
        return ret

    def vfio_send_intx_eventfd(self, ev: Any, via: str | None = None) -> None:
        """Signal the trigger. ``ev``: the interrupt behind it, carried only if nobody has passed it on yet
        (the Status bit's first send); None for a loopback. ``via``: the function that calls it (virqfd_inject)."""
        if not self._is_intx():
            return
        tok = ev.claim() if ev is not None and ev.real else None
        trig = self.intx_trigger
        if tok is not None:
            tok.passed_on = True
            if via is not None:
                tok.hop(via, VIRQFD_C, "vfio", "kworker: the thread vfio_pci_intx_unmask_handler asked for")
            tok.hop("vfio_send_intx_eventfd", INTRS, "vfio", f"{self.intx_name}: eventfd_signal(trigger)"
                    if trig is not None else f"{self.intx_name}: no trigger eventfd")
        if trig is None:
            if tok is not None:
                tok.settle(Outcome.NO_TRIGGER)
            return
        if not trig.signal(tok) and tok is not None and not tok.done:
            tok.settle(Outcome.CLOSED_EVENTFD if trig.closed else Outcome.USERSPACE)

    def _intx_resend(self) -> None:
        """The unmask virqfd's thread: virqfd_inject → vfio_send_intx_eventfd, in a kworker."""
        self.vfio_send_intx_eventfd(self.dev.intx_status_event, via="virqfd_inject")

    def vfio_pci_intx_mask(self) -> None:
        if not self.intx_masked:
            if self.dev.pci_2_3:
                self.dev.pci_intx(False)
            else:
                self.dev.host.genirq.disable_irq(self.dev.gsi)
            self.intx_masked = True

    def vfio_pci_intx_unmask_handler(self, token: Any = None) -> int:
        """Unmask if masked: pci_check_and_unmask_intx clears INTx Disable unless Status.Interrupt is set, in
        which case it stays masked and this returns 1 (the caller re-sends: the ioctl at once, the virqfd from
        its work item — it runs inside an eventfd wake-up and must not signal one). ``token``: the way back of
        the interrupt whose EOI got here, traced."""
        d = self.dev
        ret = 0
        if token is not None:
            token.hop("vfio_pci_intx_unmask_handler", INTRS, "vfio", f"{self.intx_name}: ctx->masked "
                      f"{int(self.intx_masked)}")
        if self._is_intx() and self.intx_masked:
            if d.pci_2_3:
                if token is not None:
                    token.mark()  # the unmask is pci_check_and_unmask_intx's (its hop comes after)
                ok = d.pci_check_and_unmask_intx()
                if not ok:
                    ret = 1
                if token is not None:
                    token.hop("pci_check_and_unmask_intx", PCI_IRQ_C, "vfio", f"{d.bdf}: " + (
                        "Status.Interrupt clear: INTx Disable cleared, the device may interrupt again" if ok else
                        "Status.Interrupt still set: INTx Disable stays set, the interrupt is sent again"))
                    if ok:
                        token.change(f"{d.bdf} DisINTx", 1, 0)
                self.intx_masked = ret > 0
            else:
                if token is not None:
                    token.hop("enable_irq", "kernel/irq/manage.c", "vfio", f"irq {d.gsi}: the line is enabled again")
                # ctx->masked is written under irqlock with interrupts off: a line that fires again on enable_irq
                # is handled after it (and masks again), so the model writes it first
                self.intx_masked = False
                d.host.genirq.enable_irq(d.gsi)
        return ret

    def vfio_pci_intx_unmask(self) -> None:
        """The UNMASK ioctl: unmask, and re-send at once if the device still asserts."""
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
        """vfio_pci_set_intx_unmask: an eventfd (fd >= 0) is vfio_virqfd_enable — -EBADF, then -EBUSY if one is
        set already; fd < 0 is vfio_virqfd_disable; DATA_NONE/DATA_BOOL unmask now."""
        if not self._is_intx() or start != 0 or count != 1:
            raise KernelError(errno.EINVAL, "INTx unmask: INTx not enabled, or start/count not 0/1")
        if dtype == VFIO_IRQ_SET_DATA_EVENTFD:
            fd = items[0]
            if _no_fd(fd):
                Virqfd.vfio_virqfd_disable(self, "intx_unmask")
                return 0
            efd = eventfd_ctx_fdget(fd, "INTx unmask eventfd")
            Virqfd.vfio_virqfd_enable(self, self.vfio_pci_intx_unmask_handler, self._intx_resend, "intx_unmask", efd)
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
            if self.irq_type == index:
                return self.vfio_msi_set_block(start, items, msix)
            got = self.vfio_msi_enable(start + count, msix)
            if got:
                return got
            try:
                return self.vfio_msi_set_block(start, items, msix)
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

    def vfio_msi_set_block(self, start: int, fds: list, msix: bool) -> int:
        """One vector at a time; an error part-way through unwinds the block from ``start`` up to the vector
        that failed (those lose their eventfds; the ones after it keep theirs), as vfio_msi_set_block does."""
        j = start
        try:
            for j, fd in enumerate(fds, start):
                self.vfio_msi_set_vector_signal(j, fd, msix)
        except KernelError:
            for i in range(start, j + 1):
                self.vfio_msi_set_vector_signal(i, -1, msix)
            raise
        return 0

    def msi_name(self, vector: int) -> str:
        return f"vfio-msi{'x' if self.irq_type == VFIO_PCI_MSIX_IRQ_INDEX else ''}[{vector}]({self.dev.bdf})"

    def vfio_msi_set_vector_signal(self, vector: int, fd: "Eventfd | int | None", msix: bool) -> None:
        """Free the vector's old handler, then (fd >= 0) look the eventfd up (-EBADF), request the irq with
        vfio_msihandler and register the irqbypass producer. fd < 0: the vector has no eventfd."""
        d, host = self.dev, self.dev.host
        v = d.vector(vector)
        old = self.msi_triggers.pop(vector, None)
        if old is not None and v is not None:
            host.irqbypass.irq_bypass_unregister_producer(old)
            host.genirq.free_irq(v.irq, old)
        if fd is None or _no_fd(fd):
            return
        if v is None:
            if not msix:
                raise KernelError(errno.EINVAL, f"MSI vector {vector} was not allocated")
            v = d.pci_msix_alloc_irq_at(vector)  # stays allocated until MSI-X is disabled
        efd = eventfd_ctx_fdget(fd, f"{INDEX_NAMES[self.irq_type]} vector {vector}")
        host.genirq.request_irq(v.irq, self.vfio_msihandler, 0, self.msi_name(vector), efd)
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
                ev.settle(Outcome.CLOSED_EVENTFD if trigger.closed else Outcome.USERSPACE)
        return IRQ_HANDLED

    def vfio_msi_disable(self) -> None:
        msix = self.irq_type == VFIO_PCI_MSIX_IRQ_INDEX
        for vector in sorted(self.msi_triggers):
            self.vfio_msi_set_vector_signal(vector, -1, msix)
        self.dev.pci_free_irq_vectors()
        self.irq_type = IRQ_NONE_TYPE

    # ERR / REQ -------------------------------------------------------------------------------------
    def _single(self, attr: str, count: int, dtype: int, items: list) -> int:
        """vfio_pci_set_ctx_trigger_single(): DATA_NONE needs an eventfd set (-EINVAL otherwise) and signals it
        (count 1) or clears it (count 0); DATA_BOOL and DATA_EVENTFD need count 1; fd -1 clears, fd >= 0 sets,
        any other fd is -EINVAL."""
        cur = getattr(self, attr)
        what = "ERR" if attr == "err_trigger" else "REQ"
        if dtype == VFIO_IRQ_SET_DATA_NONE:
            if cur is None:
                raise KernelError(errno.EINVAL, f"{what} trigger: DATA_NONE with no eventfd set")
            if count:
                cur.signal()
            else:
                setattr(self, attr, None)
            return 0
        if not count:
            raise KernelError(errno.EINVAL, f"{what} trigger: count must be 1 with DATA_BOOL/DATA_EVENTFD")
        if dtype == VFIO_IRQ_SET_DATA_BOOL:
            if items[0] and cur is not None:
                cur.signal()
            return 0
        fd = items[0]
        if not isinstance(fd, Eventfd) and fd < -1:
            raise KernelError(errno.EINVAL, f"{what} trigger: fd {fd} is invalid (-1 de-assigns)")
        setattr(self, attr, None if fd == -1 else eventfd_ctx_fdget(fd, f"{what} trigger"))
        return 0

    def _set_err_trigger(self, index: int, start: int, count: int, dtype: int, items: list) -> int:
        return self._single("err_trigger", count, dtype, items)

    def _set_req_trigger(self, index: int, start: int, count: int, dtype: int, items: list) -> int:
        return self._single("req_trigger", count, dtype, items)
