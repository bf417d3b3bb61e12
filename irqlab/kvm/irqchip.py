"""KVM GSI routing, ``kvm_set_irq`` and the in-kernel IOAPIC and PIC pins.

Models virt/kvm/irqchip.c (``kvm_set_irq_routing``, ``setup_routing_entry``, ``kvm_set_irq``),
arch/x86/kvm/irq.c (``kvm_set_routing_entry``, ``kvm_set_msi``, ``kvm_msi_route_invalid``) and
arch/x86/kvm/ioapic.c (``ioapic_set_irq``, ``ioapic_service``, ``kvm_ioapic_update_eoi_one``).
Simplification: the guest runs in APIC mode, so the PIC records its pins but never interrupts a vCPU.
"""
from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

from ..errors import KernelError
from ..ledger import Outcome
from .msi import _u32
from ..uapi import (
    KVM_IOAPIC_NUM_PINS, KVM_IRQ_ROUTING_HV_SINT, KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQ_ROUTING_MSI, KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER,
    KVM_IRQCHIP_PIC_SLAVE, KVM_MAX_IRQ_ROUTES, KVM_MSI_VALID_DEVID,
)

if TYPE_CHECKING:
    from .vm import Vm

__all__ = ["RoutingEntry", "msi_route", "irqchip_route", "RoutingTable", "KvmIoapic", "RedirEntry", "KvmPic"]

IRQCHIP_C = "virt/kvm/irqchip.c"
IOAPIC_C = "arch/x86/kvm/ioapic.c"


@dataclass(frozen=True)
class RoutingEntry:
    """``struct kvm_irq_routing_entry``: type IRQCHIP {irqchip, pin} or MSI {address_lo/hi, data, devid}."""

    gsi: int
    type: int
    flags: int = 0
    irqchip: int = 0
    pin: int = 0
    address_lo: int = 0
    address_hi: int = 0
    data: int = 0
    devid: int = 0

    def __post_init__(self) -> None:
        for f in ("gsi", "type", "flags", "irqchip", "pin", "address_lo", "address_hi", "data", "devid"):
            _u32(getattr(self, f), f"routing entry {f}")

    def __str__(self) -> str:
        if self.type == KVM_IRQ_ROUTING_MSI:
            return f"gsi {self.gsi}: MSI addr 0x{self.address_hi:x}:{self.address_lo:08x} data 0x{self.data:x}"
        chip = {0: "PIC master", 1: "PIC slave", 2: "IOAPIC"}.get(self.irqchip, f"irqchip {self.irqchip}")
        return f"gsi {self.gsi}: {chip} pin {self.pin}"


def msi_route(gsi: int, address_lo: int, data: int, address_hi: int = 0, *, flags: int = 0,
              devid: int = 0) -> RoutingEntry:
    """A KVM_IRQ_ROUTING_MSI entry."""
    return RoutingEntry(gsi, KVM_IRQ_ROUTING_MSI, flags, address_lo=address_lo, address_hi=address_hi, data=data,
                        devid=devid)


def irqchip_route(gsi: int, irqchip: int, pin: int, *, flags: int = 0) -> RoutingEntry:
    """A KVM_IRQ_ROUTING_IRQCHIP entry (KVM_IRQCHIP_PIC_MASTER/PIC_SLAVE/IOAPIC)."""
    return RoutingEntry(gsi, KVM_IRQ_ROUTING_IRQCHIP, flags, irqchip=irqchip, pin=pin)


class RoutingTable:
    """``struct kvm_irq_routing_table``: the entries of each GSI, replaced whole by KVM_SET_GSI_ROUTING."""

    def __init__(self, entries: Iterable[RoutingEntry] = ()):
        self.map: dict[int, list[RoutingEntry]] = {}
        for e in entries:
            self.map.setdefault(e.gsi, []).append(e)

    def entries(self, gsi: int) -> list[RoutingEntry]:
        return self.map.get(gsi, [])

    def all(self) -> list[RoutingEntry]:
        return [e for g in sorted(self.map) for e in self.map[g]]

    def __len__(self) -> int:
        return sum(len(v) for v in self.map.values())


def validate_routing(vm: "Vm", entries: list[RoutingEntry], flags: int) -> RoutingTable:
    """kvm_vm_ioctl(KVM_SET_GSI_ROUTING) → kvm_set_irq_routing: every rule, or -EINVAL."""
    if not vm.irqchip_in_kernel:
        raise KernelError(errno.EINVAL, "KVM_SET_GSI_ROUTING: no in-kernel irqchip (KVM_CREATE_IRQCHIP first)")
    if len(entries) > KVM_MAX_IRQ_ROUTES:
        raise KernelError(errno.EINVAL, f"KVM_SET_GSI_ROUTING: nr {len(entries)} > KVM_MAX_IRQ_ROUTES (4096)")
    if flags:
        raise KernelError(errno.EINVAL, "KVM_SET_GSI_ROUTING: flags must be 0")
    table = RoutingTable()
    for e in entries:
        if not isinstance(e, RoutingEntry):
            raise TypeError(f"routing entries come from irqlab.msi_route()/irqchip_route(), not {type(e).__name__}")
        if e.gsi >= KVM_MAX_IRQ_ROUTES:
            raise KernelError(errno.EINVAL, f"{e}: gsi >= KVM_MAX_IRQ_ROUTES")
        if e.type == KVM_IRQ_ROUTING_MSI:
            if e.flags & ~KVM_MSI_VALID_DEVID:
                raise KernelError(errno.EINVAL, f"{e}: MSI entry flags other than KVM_MSI_VALID_DEVID")
            if vm.x2apic_32bit_ids and e.address_hi & 0xFF:
                raise KernelError(errno.EINVAL, f"{e}: address_hi bits 7:0 must be 0 with 32-bit x2APIC IDs")
        elif e.type == KVM_IRQ_ROUTING_IRQCHIP:
            if e.flags:
                raise KernelError(errno.EINVAL, f"{e}: flags must be 0 for a non-MSI entry")
            if vm.irqchip_split:
                raise KernelError(errno.EINVAL, f"{e}: IRQCHIP routes are invalid with a split irqchip")
            if e.irqchip in (KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE):
                if e.pin >= 8:
                    raise KernelError(errno.EINVAL, f"{e}: PIC pin must be < 8")
            elif e.irqchip == KVM_IRQCHIP_IOAPIC:
                if e.pin >= KVM_IOAPIC_NUM_PINS:
                    raise KernelError(errno.EINVAL, f"{e}: IOAPIC pin must be < 24")
            else:
                raise KernelError(errno.EINVAL, f"{e}: irqchip must be 0, 1 or 2")
        elif e.type == KVM_IRQ_ROUTING_HV_SINT:  # valid with CONFIG_KVM_HYPERV: refusing it would be a false EINVAL
            raise NotImplementedError(f"gsi {e.gsi}: KVM_IRQ_ROUTING_HV_SINT (Hyper-V SynIC) routes are not modelled")
        else:
            raise KernelError(errno.EINVAL, f"gsi {e.gsi}: routing type {e.type} is not valid on x86")
        for ei in table.entries(e.gsi):  # setup_routing_entry
            if ei.type != KVM_IRQ_ROUTING_IRQCHIP or e.type != KVM_IRQ_ROUTING_IRQCHIP or ei.irqchip == e.irqchip:
                raise KernelError(errno.EINVAL, f"{e}: GSI {e.gsi} already has {ei} (an MSI entry must be alone; "
                                  "one entry per irqchip)")
        table.map.setdefault(e.gsi, []).append(e)
    return table


@dataclass
class RedirEntry:
    """One IOAPIC redirection-table entry, as the guest programs it."""

    vector: int = 0
    dest_id: int = 0
    dest_mode_logical: bool = False
    delivery_mode: int = 0
    trigger_level: bool = False
    masked: bool = True
    remote_irr: bool = False


class KvmIoapic:
    """The in-kernel IOAPIC (full irqchip): 24 pins, per-source line state, remote IRR for level pins."""

    def __init__(self, vm: "Vm"):
        self.vm = vm
        self.redirtbl = [RedirEntry() for _ in range(KVM_IOAPIC_NUM_PINS)]
        self.irr = 0
        self.irq_states: list[int] = [0] * KVM_IOAPIC_NUM_PINS  # bit per irq_source_id
        self.coalesced = 0

    def write_redirtbl(self, pin: int, *, vector: int, dest_id: int = 0, trigger_level: bool = True,
                       masked: bool = False, dest_mode_logical: bool = False, delivery_mode: int = 0) -> None:
        """The guest programs a pin (what Linux's IO-APIC driver writes through IOREGSEL/IOWIN)."""
        if not 0 <= pin < KVM_IOAPIC_NUM_PINS:
            raise ValueError("pin must be 0..23")
        if not 16 <= vector <= 255:
            raise ValueError("vector must be 16..255")
        e = self.redirtbl[pin]
        e.vector, e.dest_id, e.trigger_level, e.masked = vector, dest_id, trigger_level, masked
        e.dest_mode_logical, e.delivery_mode = dest_mode_logical, delivery_mode
        if not masked and self.irr & (1 << pin):
            self.ioapic_service(pin, None)

    def set_irq(self, pin: int, source: int, level: int, token: Any) -> int:
        """kvm_ioapic_set_irq → ioapic_set_irq: 0 when coalesced, -1 if not delivered, else #CPUs."""
        mask = 1 << pin
        if level:
            self.irq_states[pin] |= 1 << source
        else:
            self.irq_states[pin] &= ~(1 << source)
        irq_level = bool(self.irq_states[pin])
        entry = self.redirtbl[pin]
        edge = not entry.trigger_level
        if token is not None:
            token.hop("kvm_ioapic_set_irq", IOAPIC_C, "kvm", f"IOAPIC pin {pin} level {int(irq_level)}")
        if not irq_level:
            self.irr &= ~mask
            return 1
        old_irr = self.irr
        self.irr |= mask
        if edge and old_irr == self.irr:  # "a previous edge has not been delivered due to masking"
            self.coalesced += 1
            return 0
        if not edge and entry.remote_irr and not entry.masked:
            # waiting for the guest's EOI: ioapic_service refuses (-1, since "Remove redundant check for
            # Remote IRR in ioapic_set_irq"); the assertion stays in irr and is serviced again at the EOI
            self.coalesced += 1
            if token is not None:
                token.hop("ioapic_service", IOAPIC_C, "kvm", f"pin {pin}: remote IRR set, waiting for the EOI")
                token.settle(Outcome.COALESCED_IOAPIC)
            return -1
        return self.ioapic_service(pin, token)

    def ioapic_service(self, pin: int, token: Any) -> int:
        entry = self.redirtbl[pin]
        if entry.masked or (entry.trigger_level and entry.remote_irr):
            return -1
        if token is not None:
            token.hop("ioapic_service", IOAPIC_C, "kvm", f"pin {pin} → vector 0x{entry.vector:02x} "
                      f"{'level' if entry.trigger_level else 'edge'} dest {entry.dest_id}")
        from . import msi as _msi
        msg = _msi.encode(dest_id=entry.dest_id, vector=entry.vector, delivery_mode=entry.delivery_mode,
                          dest_mode_logical=entry.dest_mode_logical, trigger_level=entry.trigger_level)
        ret = self.vm.kvm_irq_delivery_to_apic(msg, token)
        if not entry.trigger_level:
            self.irr &= ~(1 << pin)
        if ret > 0 and entry.trigger_level:
            entry.remote_irr = True
        return ret

    def pins_for_vector(self, vector: int) -> list[int]:
        return [p for p, e in enumerate(self.redirtbl) if e.vector == vector and not e.masked]

    def kvm_ioapic_update_eoi(self, vector: int) -> None:
        """Guest EOI of a vector routed by the IOAPIC: ack notifiers first, then clear remote IRR."""
        for pin in self.pins_for_vector(vector):
            entry = self.redirtbl[pin]
            self.vm.kvm_notify_acked_irq(KVM_IRQCHIP_IOAPIC, pin)
            if not entry.trigger_level:
                continue
            entry.remote_irr = False
            if not entry.masked and self.irr & (1 << pin):
                self.ioapic_service(pin, None)


class KvmPic:
    """The two 8259s: pin state per source and edge detection; no delivery (the guest is in APIC mode)."""

    def __init__(self) -> None:
        self.irq_states = [0] * 16
        self.last_level = [0] * 16

    def set_irq(self, pin: int, source: int, level: int) -> int:
        if level:
            self.irq_states[pin] |= 1 << source
        else:
            self.irq_states[pin] &= ~(1 << source)
        new = int(bool(self.irq_states[pin]))
        edge = new and not self.last_level[pin]
        self.last_level[pin] = new
        return 1 if edge else 0
