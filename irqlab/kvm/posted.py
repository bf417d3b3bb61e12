"""Posted interrupts: the PI descriptor, APICv delivery, and VT-d posting through irqbypass.

Models arch/x86/include/asm/posted_intr.h (``struct pi_desc``: PIR, ON, SN, NV, NDST), arch/x86/kvm/vmx/
posted_intr.c (``pi_wakeup_handler``, ``vmx_vcpu_pi_load``/``put``), vmx/common.h
(``__vmx_deliver_posted_interrupt``), virt/lib/irqbypass.c (producers and consumers keyed by the eventfd)
and arch/x86/kvm/irq.c (``kvm_pi_update_irte``). Simplification: one IOMMU whose posted IRTEs name a vCPU
directly, and no preempted vCPUs (SN is only set while a vCPU is explicitly preempted).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..trace import HARDWARE
from ..uapi import KVM_IRQ_ROUTING_MSI, POSTED_INTR_VECTOR

if TYPE_CHECKING:
    from ..event import IrqEvent
    from ..kernel import Kernel
    from .vm import Vcpu

__all__ = ["PiDesc", "PostedIrte", "IrqBypass"]


@dataclass
class PiDesc:
    """``struct pi_desc``: 256-bit PIR plus the control word (ON bit 0, SN bit 1, NV 23:16, NDST 63:32)."""

    pir: set[int] = field(default_factory=set)
    on: bool = False
    sn: bool = False
    nv: int = POSTED_INTR_VECTOR
    ndst: int = 0

    @property
    def control(self) -> int:
        return int(self.on) | (int(self.sn) << 1) | (self.nv << 16) | (self.ndst << 32)

    def pi_test_and_set_pir(self, vector: int) -> bool:
        was = vector in self.pir
        self.pir.add(vector)
        return was

    def pi_test_and_set_on(self) -> bool:
        was, self.on = self.on, True
        return was


@dataclass
class PostedIrte:
    """A VT-d IRTE in posted format (p_pst=1): the guest vector and the vCPU whose PI descriptor it uses."""

    irq: int
    vcpu: "Vcpu"
    vector: int
    posted: int = 0


class IrqBypass:
    """virt/lib/irqbypass.c: vfio producers and KVM irqfd consumers, matched by their eventfd."""

    def __init__(self, host: "Kernel"):
        self.host = host
        self.producers: dict[int, tuple[Any, int, Any, int]] = {}  # id(eventfd) -> (eventfd, irq, vdev, vector)
        self.consumers: dict[int, Any] = {}                          # id(eventfd) -> irqfd
        self.irtes: dict[int, PostedIrte] = {}                       # host irq -> posted IRTE
        self.devices: list[Any] = []

    def irq_bypass_register_producer(self, eventfd: Any, irq: int, vdev: Any, vector: int) -> int:
        if id(eventfd) in self.producers:
            return -16  # -EBUSY: vfio only logs "irq bypass producer ... registration fails"
        self.producers[id(eventfd)] = (eventfd, irq, vdev, vector)
        self._connect(eventfd)
        return 0

    def irq_bypass_unregister_producer(self, eventfd: Any) -> None:
        p = self.producers.pop(id(eventfd), None)
        if p is not None:
            self.irtes.pop(p[1], None)

    def irq_bypass_register_consumer(self, irqfd: Any) -> None:
        self.consumers[id(irqfd.eventfd)] = irqfd
        self._connect(irqfd.eventfd)

    def irq_bypass_unregister_consumer(self, irqfd: Any) -> None:
        if self.consumers.get(id(irqfd.eventfd)) is irqfd:
            del self.consumers[id(irqfd.eventfd)]
            p = self.producers.get(id(irqfd.eventfd))
            if p is not None:
                self.irtes.pop(p[1], None)

    def _connect(self, eventfd: Any) -> None:
        p, c = self.producers.get(id(eventfd)), self.consumers.get(id(eventfd))
        if p is not None and c is not None:
            self.kvm_pi_update_irte(c)

    def kvm_pi_update_irte(self, irqfd: Any) -> None:
        """Post only a single-destination MSI route with Fixed/Lowest delivery, with posting enabled."""
        p = self.producers.get(id(irqfd.eventfd))
        if p is None:
            return
        irq = p[1]
        self.irtes.pop(irq, None)
        if not self.host.enable_device_posted_irqs:
            return
        e = irqfd.irq_entry
        if e is None or e.type != KVM_IRQ_ROUTING_MSI:
            return
        vcpu = irqfd.vm.postable_vcpu(e)
        if vcpu is not None:
            from . import msi as _msi
            self.irtes[irq] = PostedIrte(irq, vcpu, _msi.decode(e.address_lo, e.data, e.address_hi).vector)

    def posted_irte(self, irq: int) -> PostedIrte | None:
        return self.irtes.get(irq)

    def iommu_post(self, irte: PostedIrte, ev: "IrqEvent") -> None:
        """The IOMMU sets the PIR bit and ON, and notifies NDST with NV unless SN: no host handler runs."""
        irte.posted += 1
        ev.via_iommu = True
        ev.hop("IOMMU: posted IRTE", HARDWARE, "iommu", f"IRTE for irq {irte.irq} (set up by "
               f"intel_ir_set_vcpu_affinity): guest vector 0x{irte.vector:02x} → PIR of vcpu{irte.vcpu.id}")
        irte.vcpu.post_interrupt(irte.vector, ev, iommu=True)
