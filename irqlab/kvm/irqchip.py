"""KVM GSI routing, ``kvm_set_irq`` and the in-kernel IOAPIC and PIC pins.

Models virt/kvm/irqchip.c (``kvm_set_irq_routing``, ``setup_routing_entry``, ``kvm_set_irq``),
arch/x86/kvm/irq.c (``kvm_set_routing_entry``, ``kvm_set_msi``, ``kvm_msi_route_invalid``) and
arch/x86/kvm/ioapic.c (``ioapic_set_irq``, ``ioapic_service``, ``kvm_ioapic_update_eoi_one``,
``ioapic_write_indirect``) and arch/x86/kvm/i8259.c (``pic_set_irq1``).
Simplification: the guest runs in APIC mode with both 8259s masked, so the PIC records its pins but never
interrupts a vCPU; the RTC's EOI tracking, irr_delivered and directed EOI are left out.
"""
from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

from ..errors import KernelError
from ..ledger import Outcome
from ..sched import HZ, NSEC_PER_JIFFY, WorkStruct
from .msi import _flag, _int, _u32
from ..uapi import (
    KVM_IOAPIC_NUM_PINS, KVM_IRQ_ROUTING_HV_SINT, KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQ_ROUTING_MSI,
    KVM_IRQ_ROUTING_XEN_EVTCHN, KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE,
    KVM_MAX_IRQ_ROUTES, KVM_MSI_VALID_DEVID,
)

if TYPE_CHECKING:
    from .vm import Vm

__all__ = ["RoutingEntry", "msi_route", "irqchip_route", "RoutingTable", "KvmIoapic", "RedirEntry", "KvmPic",
           "kvm_msi_route_invalid"]

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
        self.chip: dict[tuple[int, int], int] = {}  # rt->chip[irqchip][pin]: the GSI set up last on the pin
        for e in entries:
            self.add(e)

    def add(self, e: RoutingEntry) -> None:
        self.map.setdefault(e.gsi, []).append(e)
        if e.type == KVM_IRQ_ROUTING_IRQCHIP:
            self.chip[(e.irqchip, e.pin)] = e.gsi

    def chip_pin(self, irqchip: int, pin: int) -> int:
        """kvm_irq_map_chip_pin: the GSI of an irqchip pin, or -1."""
        return self.chip.get((irqchip, pin), -1)

    def entries(self, gsi: int) -> list[RoutingEntry]:
        return self.map.get(gsi, [])

    def all(self) -> list[RoutingEntry]:
        return [e for g in sorted(self.map) for e in self.map[g]]

    def __len__(self) -> int:
        return sum(len(v) for v in self.map.values())


def kvm_msi_route_invalid(vm: "Vm", e: RoutingEntry) -> bool:
    """With the x2APIC API's 32-bit IDs, address_hi bits 7:0 must be 0 (checked at routing and at kvm_set_msi)."""
    return vm.x2apic_32bit_ids and bool(e.address_hi & 0xFF)


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
            if kvm_msi_route_invalid(vm, e):
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
        elif e.type in (KVM_IRQ_ROUTING_HV_SINT, KVM_IRQ_ROUTING_XEN_EVTCHN):
            # valid with CONFIG_KVM_HYPERV / CONFIG_KVM_XEN: refusing them would be a false EINVAL
            kind = "HV_SINT (Hyper-V SynIC)" if e.type == KVM_IRQ_ROUTING_HV_SINT else "XEN_EVTCHN (Xen event channel)"
            raise NotImplementedError(f"gsi {e.gsi}: KVM_IRQ_ROUTING_{kind} routes are not modelled")
        else:
            raise KernelError(errno.EINVAL, f"gsi {e.gsi}: routing type {e.type} is not valid on x86")
        for ei in table.entries(e.gsi):  # setup_routing_entry
            if ei.type != KVM_IRQ_ROUTING_IRQCHIP or e.type != KVM_IRQ_ROUTING_IRQCHIP or ei.irqchip == e.irqchip:
                raise KernelError(errno.EINVAL, f"{e}: GSI {e.gsi} already has {ei} (an MSI entry must be alone; "
                                  "one entry per irqchip)")
        table.add(e)
    return table


def _pin_source_level(pin: int, source: int, level: int, npins: int) -> None:
    """A pin of the chip, an irq source id (a bit of irq_states, BITS_PER_LONG) and a level 0/1, or an error."""
    if type(pin) is int and type(source) is int and level in (0, 1) and 0 <= pin < npins and 0 <= source < 64:
        return
    _int(pin, "pin", 0, npins - 1), _int(source, "irq source id", 0, 63)
    if not isinstance(level, bool):
        _int(level, "level", 0, 1)


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

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name in ("vector", "trigger_level"):  # what KvmIoapic.pins_with_vector's cache is made of
            _REDIR_GEN[0] += 1


_REDIR_GEN = [0]  # bumped on every vector or trigger-mode change of any redirection entry

IOAPIC_SUCCESSIVE_IRQ_MAX_COUNT = 10000  # ioapic.c: EOIs in a row that re-inject a still-asserted pin


class KvmIoapic:
    """The in-kernel IOAPIC (full irqchip): 24 pins, per-source line state, remote IRR for level pins."""

    def __init__(self, vm: "Vm"):
        self.vm = vm
        self.redirtbl = [RedirEntry() for _ in range(KVM_IOAPIC_NUM_PINS)]
        self._by_vector: dict[int, tuple[int, ...]] = {}
        self._by_vector_gen = -1
        self.irr = 0
        self.irq_states: list[int] = [0] * KVM_IOAPIC_NUM_PINS  # bit per irq_source_id
        self.irq_eoi: list[int] = [0] * KVM_IOAPIC_NUM_PINS     # successive EOIs that re-injected the pin
        self.coalesced = 0
        self.eoi_inject = WorkStruct(self.kvm_ioapic_eoi_inject_work, name="kvm_ioapic_eoi_inject_work")

    def write_redirtbl(self, pin: int, *, vector: int, dest_id: int = 0, trigger_level: bool = True,
                       masked: bool = False, dest_mode_logical: bool = False, delivery_mode: int = 0) -> None:
        """ioapic_write_indirect: the guest programs a pin (Linux's IO-APIC driver, through IOREGSEL/IOWIN).
        Writing an edge entry clears remote IRR; an unmasked, idle level pin still asserted is resampled
        through the irqfd resampler if the pin has one, else serviced (an edge that came while masked is lost).
        The fields are the entry's: an 8-bit destination, a 3-bit delivery mode (ioapic_service hands it to
        __apic_accept_irq as APIC_DM_*), one bit each for the flags; the vector 16..255 (a Linux guest never
        programs an illegal one). Bad values raise TypeError/ValueError before the entry changes."""
        pin = _int(pin, "pin", 0, KVM_IOAPIC_NUM_PINS - 1)
        vector = _int(vector, "vector", 16, 255)
        dest_id = _int(dest_id, "dest_id (the entry's 8-bit destination field)", 0, 0xFF)
        delivery_mode = _int(delivery_mode, "delivery_mode (a 3-bit field)", 0, 7)
        trigger_level, masked = _flag(trigger_level, "trigger_level"), _flag(masked, "masked")
        dest_mode_logical = _flag(dest_mode_logical, "dest_mode_logical")
        e = self.redirtbl[pin]
        e.vector, e.dest_id, e.trigger_level, e.masked = vector, dest_id, trigger_level, masked
        e.dest_mode_logical, e.delivery_mode = dest_mode_logical, delivery_mode
        if not trigger_level:  # "Some OSes (Linux, Xen) assume that Remote IRR bit will be cleared ..."
            e.remote_irr = False
        if trigger_level and self.irr & (1 << pin) and not masked and not e.remote_irr:
            # "Pending status in irr may be outdated": let the resampler ask the device, else inject
            if self.vm.kvm_notify_irqfd_resampler(KVM_IRQCHIP_IOAPIC, pin):
                self.irr &= ~(1 << pin)
            else:
                self.ioapic_service(pin, None)

    def set_irq(self, pin: int, source: int, level: int, token: Any) -> int:
        """kvm_ioapic_set_irq → ioapic_set_irq: 0 when coalesced, -1 if not delivered, else #CPUs."""
        _pin_source_level(pin, source, level, KVM_IOAPIC_NUM_PINS)
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
        if edge:
            if old_irr == self.irr:  # the line was already up (held by another source, or not lowered yet)
                self.coalesced += 1
                if token is not None:
                    token.hop("ioapic_set_irq", IOAPIC_C, "kvm", f"edge pin {pin} already asserted: coalesced")
                    token.settle(Outcome.COALESCED_IOAPIC)
                return 0
        elif entry.remote_irr and not entry.masked:
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
        if ret and entry.trigger_level:  # -1 (nobody matched) sets it too: "if (ret && ...)"
            if token is not None:
                token.mark()  # set when the delivery has returned: ioapic_service's tail, its own hop
            entry.remote_irr = True
            if token is not None:
                token.hop("ioapic_service", IOAPIC_C, "kvm", f"pin {pin}: delivered; remote IRR set until the "
                          "guest's EOI")
        return ret

    def pins_with_vector(self, vector: int) -> tuple[int, ...]:
        """Every pin (masked or not) programmed with ``vector`` (cached until an entry's vector or trigger
        changes: looked up at each delivery and EOI)."""
        if self._by_vector_gen != _REDIR_GEN[0]:
            by: dict[int, tuple[int, ...]] = {}
            for p, e in enumerate(self.redirtbl):
                by[e.vector] = by.get(e.vector, ()) + (p,)
            self._by_vector, self._by_vector_gen = by, _REDIR_GEN[0]
        return self._by_vector.get(vector, ())

    def pins_for_vector(self, vector: int) -> list[int]:
        """The unmasked pins that deliver ``vector`` (what a guest handler of that vector may be serving)."""
        return [p for p, e in enumerate(self.redirtbl) if e.vector == vector and not e.masked]

    def kvm_ioapic_update_eoi(self, vector: int, trigger_level: bool = True) -> None:
        """A guest EOI that reached the IOAPIC (kvm_ioapic_send_eoi: the vector is in the vCPU's
        ioapic_handled_vectors). ``trigger_level``: the vector's TMR bit at the EOI, the trigger_mode KVM passes.
        kvm_ioapic_update_eoi_one, for every pin with that vector, masked or not, edge or level: the pin's ack
        notifiers run first (kvm_notify_acked_irq: an irqfd resampler), then, only for a level EOI, remote IRR
        is cleared and a pin still asserted and unmasked is serviced again; the 10,000th re-injection in a row
        waits HZ/100 instead ("lets a buggy guest make slow progress")."""
        vector, trigger_level = _int(vector, "vector", 0, 255), _flag(trigger_level, "trigger_level")
        for pin, entry in enumerate(self.redirtbl):
            if entry.vector != vector:
                continue
            self.vm.kvm_notify_acked_irq(KVM_IRQCHIP_IOAPIC, pin)  # kvm_ioapic_update_eoi_one
            if not trigger_level:  # "if (trigger_mode != IOAPIC_LEVEL_TRIG || ...) return;"
                continue
            if self.vm.eoi_echo is not None:
                self.vm.eoi_echo.mark()  # remote IRR cleared: the hop after the notifiers (vm._guest_eoi)
            entry.remote_irr = False
            if not entry.masked and self.irr & (1 << pin):
                self.irq_eoi[pin] += 1
                if self.irq_eoi[pin] == IOAPIC_SUCCESSIVE_IRQ_MAX_COUNT:
                    self.vm.host.sched.schedule_work(self.eoi_inject, HZ // 100 * NSEC_PER_JIFFY)
                    self.irq_eoi[pin] = 0
                else:
                    self.ioapic_service(pin, None)
            else:
                self.irq_eoi[pin] = 0

    def kvm_ioapic_eoi_inject_work(self, work: WorkStruct) -> None:
        """The delayed re-injection: every level pin still asserted and not waiting for an EOI."""
        for pin, entry in enumerate(self.redirtbl):
            if entry.trigger_level and self.irr & (1 << pin) and not entry.remote_irr:
                self.ioapic_service(pin, None)


class KvmPic:
    """The two 8259s (arch/x86/kvm/i8259.c, pic_set_irq1): per-source line state, IRR and edge detection
    behind the IMR; no delivery. Simplification: the guest runs in APIC mode and has masked every input
    (IMR 0xFF on both chips), so every assertion returns -1 and adds nothing to kvm_set_irq's result."""

    def __init__(self) -> None:
        self.irq_states = [0] * 16
        self.irr = 0        # bit per input, master 0-7 and slave 8-15
        self.last_irr = 0   # the line level last seen (edge detection)
        self.elcr = 0       # edge-triggered inputs (ELCR 0)
        self.imr = 0xFFFF   # every input masked

    def set_irq(self, pin: int, source: int, level: int) -> int:
        """kvm_pic_set_irq → pic_set_irq1: 1, or 0 for an edge already pending in IRR; -1 if masked."""
        _pin_source_level(pin, source, level, 16)
        if level:
            self.irq_states[pin] |= 1 << source
        else:
            self.irq_states[pin] &= ~(1 << source)
        level = bool(self.irq_states[pin])
        mask, ret = 1 << pin, 1
        if self.elcr & mask:
            if level:
                ret = int(not self.irr & mask)
                self.irr |= mask
                self.last_irr |= mask
            else:
                self.irr &= ~mask
                self.last_irr &= ~mask
        elif level:
            if not self.last_irr & mask:
                ret = int(not self.irr & mask)
                self.irr |= mask
            self.last_irr |= mask
        else:
            self.last_irr &= ~mask
        return -1 if self.imr & mask else ret
