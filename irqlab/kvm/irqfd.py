"""KVM irqfd: an eventfd subscriber that injects a GSI, with the resampler for level-triggered INTx.

Models virt/kvm/eventfd.c (``kvm_irqfd_assign``, ``kvm_irqfd_deassign``, ``irqfd_wakeup``, ``irqfd_inject``,
``irqfd_update``, ``irqfd_resampler_ack``, ``irqfd_resampler_notify``) and x86's
``kvm_arch_set_irq_inatomic`` (arch/x86/kvm/irq.c).
Simplification: the SRCU/seqcount protection of the cached route is implicit (the model is single-threaded)
and deassign runs the shutdown work at once.
"""
from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from ..eventfd import EPOLLHUP, EPOLLIN, Eventfd, WaitQueueEntry
from ..ledger import Outcome
from ..sched import WorkStruct
from ..uapi import KVM_IRQ_ROUTING_MSI, KVM_IRQFD_RESAMPLE_IRQ_SOURCE_ID, KVM_USERSPACE_IRQ_SOURCE_ID

if TYPE_CHECKING:
    from .irqchip import RoutingEntry
    from .vm import Vm

__all__ = ["Irqfd", "IrqfdResampler"]

EVENTFD_C = "virt/kvm/eventfd.c"


class IrqfdResampler:
    """One per (VM, GSI): an irq-ack notifier that de-asserts the GSI and signals every resamplefd.

    It runs in the vCPU thread, inside the guest's EOI exit (kvm_ioapic_update_eoi_one → kvm_notify_acked_irq),
    before the IOAPIC clears remote IRR: everything a resamplefd's waiter does in its wake-up (vfio's
    virqfd_wakeup → vfio_pci_intx_unmask_handler) happens then, synchronously."""

    def __init__(self, vm: "Vm", gsi: int):
        self.vm, self.gsi = vm, gsi
        self.irqfds: list[Irqfd] = []
        self.acks = 0

    def irqfd_resampler_ack(self, token: Any = None) -> None:
        """The guest EOId the GSI's pin: de-assert it for the resample source, then notify. ``token``: the way
        back of the interrupt whose EOI this is (traced on its journey), or None."""
        self.acks += 1
        if token is not None:
            token.hop("irqfd_resampler_ack", EVENTFD_C, "kvm", f"GSI {self.gsi}: de-assert, then signal "
                      f"{len(self.irqfds)} resamplefd(s)")
            token.hop("kvm_set_irq", "virt/kvm/irqchip.c", "kvm", f"gsi {self.gsi} level 0 "
                      "(KVM_IRQFD_RESAMPLE_IRQ_SOURCE_ID): the irqfd's assertion is lowered")
        self.vm.kvm_set_irq(KVM_IRQFD_RESAMPLE_IRQ_SOURCE_ID, self.gsi, 0, None)
        self.irqfd_resampler_notify(token)

    def irqfd_resampler_notify(self, token: Any = None) -> None:
        """Signal every resamplefd: the VMM (vfio) unmasks and re-checks its device."""
        if token is not None:
            token.hop("irqfd_resampler_notify", EVENTFD_C, "kvm",
                      ", ".join(f.resamplefd.name for f in self.irqfds) or "no resamplefd")
        for irqfd in list(self.irqfds):
            irqfd.resamplefd.signal(token)


class Irqfd:
    """``struct kvm_kernel_irqfd``: listens on an eventfd; EPOLLIN consumes the count and injects."""

    def __init__(self, vm: "Vm", eventfd: Eventfd, gsi: int, resamplefd: Eventfd | None):
        self.vm = vm
        self.eventfd = eventfd
        self.gsi = gsi
        self.resamplefd = resamplefd
        self.resampler: IrqfdResampler | None = None
        self.irq_entry: "RoutingEntry | None" = None  # the cached route (type 0 = none, use the work path)
        self.inject = WorkStruct(self.irqfd_inject, name=f"irqfd_inject(gsi {gsi})")
        self.inject_token: Any = None
        self.wait = WaitQueueEntry(self.irqfd_wakeup, name=f"irqfd(vm{vm.id}, gsi {gsi})")
        self.fast_path = 0
        self.work_path = 0
        self.coalesced = 0
        self.wakeups = 0

    def __repr__(self) -> str:
        return f"<irqfd vm{self.vm.id} gsi {self.gsi} {self.eventfd.name}{' resample' if self.resamplefd else ''}>"

    def irqfd_update(self) -> None:
        """Cache the route if the GSI has exactly one entry; otherwise none (always the work path)."""
        entries = self.vm.routing.entries(self.gsi)
        self.irq_entry = entries[0] if len(entries) == 1 else None

    def irqfd_wakeup(self, efd: Eventfd, mask: int, token: Any) -> int:
        if mask & EPOLLIN:
            self.wakeups += 1
            e = self.irq_entry
            if token is not None:
                token.hop("irqfd_wakeup", EVENTFD_C, "kvm", f"vm{self.vm.id} gsi {self.gsi}: EPOLLIN; "
                          f"route: {e if e else 'none cached'}")
                token.hop("eventfd_ctx_do_read", "fs/eventfd.c", "eventfd", f"count {efd.count} consumed")
            before = efd.count
            efd.eventfd_ctx_do_read()
            if token is not None:
                token.change(f"{efd.name} count", before, efd.count)
            r = -errno.EWOULDBLOCK
            if e is not None and e.type == KVM_IRQ_ROUTING_MSI:  # resampling or not, as 6.18 does
                r = self.vm.kvm_arch_set_irq_inatomic(e, token)
            if r == -errno.EWOULDBLOCK:
                if token is not None:
                    token.mark()  # schedule_work's hop comes after it queued the work
                if self.vm.host.sched.schedule_work(self.inject, self.vm.host.timing.irqfd_work_ns):
                    self.work_path += 1
                    self.inject_token = token
                    if token is not None:
                        token.hop("schedule_work", "kernel/workqueue.c", "kvm", "irqfd->inject queued")
                        token.carried = True
                else:
                    self.coalesced += 1
                    if token is not None:
                        token.hop("schedule_work", "kernel/workqueue.c", "kvm", "irqfd->inject already pending")
                        token.settle(Outcome.COALESCED_IRQFD)
            else:
                self.fast_path += 1
            return 1
        if mask & EPOLLHUP:
            self.vm._irqfd_shutdown(self)
        return 0

    def irqfd_inject(self, work: WorkStruct) -> None:
        token, self.inject_token = self.inject_token, None
        if token is not None:
            token.hop("irqfd_inject", EVENTFD_C, "kvm", f"kworker: kvm_set_irq(gsi {self.gsi})")
        vm = self.vm
        if self.resampler is None:
            vm.kvm_set_irq(KVM_USERSPACE_IRQ_SOURCE_ID, self.gsi, 1, token)
            vm.kvm_set_irq(KVM_USERSPACE_IRQ_SOURCE_ID, self.gsi, 0, None)
        else:
            vm.kvm_set_irq(KVM_IRQFD_RESAMPLE_IRQ_SOURCE_ID, self.gsi, 1, token)
