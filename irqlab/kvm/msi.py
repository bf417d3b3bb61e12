"""x86 MSI address/data, KVM's decode of it, and destination matching.

Models arch/x86/include/asm/msi.h (the address and data layout, SDM "Message Signalled Interrupts"),
arch/x86/kvm/irq.c ``kvm_msi_to_lapic_irq`` and arch/x86/kvm/lapic.c ``kvm_apic_match_dest``.
Simplification: the fast path declines only for broadcasts (KVM also declines when its APIC map is invalid).
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MsiMessage", "decode", "encode", "ApicIdentity", "match_destinations", "fast_path_ok",
           "DELIVERY_MODES"]

DELIVERY_MODES = {0: "Fixed", 1: "Lowest Priority", 2: "SMI", 3: "reserved", 4: "NMI", 5: "INIT",
                  6: "reserved", 7: "ExtINT"}
_BY_NAME = {"fixed": 0, "lowest": 1, "lowest priority": 1, "smi": 2, "nmi": 4, "init": 5, "extint": 7}


def _u32(v, what: str) -> int:
    """A u32 argument: any int-like (numpy ints too), 0..2**32-1."""
    if isinstance(v, bool) or not hasattr(v, "__index__"):
        raise TypeError(f"{what} must be an int, not {type(v).__name__}")
    v = int(v)
    if not 0 <= v <= 0xFFFFFFFF:
        raise ValueError(f"{what} is a u32: 0..2**32-1, got {v}")
    return v


@dataclass(frozen=True)
class MsiMessage:
    address_lo: int
    address_hi: int
    data: int
    dest_id: int
    virt_destid_8_14: int
    dest_mode_logical: bool
    redirection_hint: bool
    vector: int
    delivery_mode: int
    level_assert: bool
    trigger_level: bool

    @property
    def delivery_mode_name(self) -> str:
        return DELIVERY_MODES[self.delivery_mode]

    @property
    def apic_dm(self) -> int:
        return self.delivery_mode << 8

    @property
    def lowest_priority(self) -> bool:
        return self.delivery_mode == 1 or self.redirection_hint

    def is_broadcast(self, x2apic: bool = False) -> bool:
        return self.dest_id == (0xFFFFFFFF if x2apic else 0xFF) and not self.dest_mode_logical

    def fields(self) -> list[tuple[str, str, int, str]]:
        return [
            ("address[31:20]", "31:20", self.address_lo >> 20, "0xFEE: the MSI address window"),
            ("destination ID", "19:12", (self.address_lo >> 12) & 0xFF, "APIC ID (physical) or MDA (logical)"),
            ("virt_destid_8_14", "11:5", self.virt_destid_8_14, "Linux extended destination ID"),
            ("RH", "3", int(self.redirection_hint), "redirection hint: 1 = lowest priority"),
            ("DM", "2", int(self.dest_mode_logical), "0 physical / 1 logical (ignored if RH=0)"),
            ("vector", "7:0", self.vector, f"0x{self.vector:02x}"),
            ("delivery mode", "10:8", self.delivery_mode, self.delivery_mode_name),
            ("level", "14", int(self.level_assert), "assert (KVM ignores it: level = 1)"),
            ("trigger", "15", int(self.trigger_level), "level" if self.trigger_level else "edge"),
        ]


def decode(address_lo: int, data: int, address_hi: int = 0, *, x2apic_32bit_ids: bool = False) -> MsiMessage:
    _u32(address_lo, "address_lo"), _u32(data, "data"), _u32(address_hi, "address_hi")
    if address_lo >> 20 != 0xFEE:
        raise ValueError(f"not an MSI address: bits 31:20 must be 0xFEE, got 0x{address_lo >> 20:x}")
    dest = (address_lo >> 12) & 0xFF
    if x2apic_32bit_ids:
        dest |= address_hi & 0xFFFFFF00
    return MsiMessage(address_lo, address_hi, data, dest, (address_lo >> 5) & 0x7F, bool(address_lo & 4),
                      bool(address_lo & 8), data & 0xFF, (data >> 8) & 7, bool(data & (1 << 14)),
                      bool(data & (1 << 15)))


def encode(*, dest_id: int, vector: int, delivery_mode: int | str = 0, dest_mode_logical: bool = False,
           redirection_hint: bool = False, trigger_level: bool = False, level_assert: bool = True,
           x2apic_32bit_ids: bool = False) -> MsiMessage:
    if isinstance(delivery_mode, str):
        try:
            delivery_mode = _BY_NAME[delivery_mode.lower()]
        except KeyError:
            raise ValueError(f"unknown delivery mode {delivery_mode!r}; use {sorted(_BY_NAME)}") from None
    if not 0 <= delivery_mode <= 7:
        raise ValueError("delivery_mode is a 3-bit field (0..7)")
    if not 0 <= vector <= 255:
        raise ValueError("vector must be 0..255")
    if dest_id > 0xFF and not x2apic_32bit_ids:
        raise ValueError("dest_id > 255 needs x2apic_32bit_ids=True")
    hi = (dest_id & 0xFFFFFF00) if x2apic_32bit_ids else 0
    lo = 0xFEE00000 | ((dest_id & 0xFF) << 12) | (8 if redirection_hint else 0) | (4 if dest_mode_logical else 0)
    data = vector | (delivery_mode << 8) | ((1 << 14) if level_assert else 0) | ((1 << 15) if trigger_level else 0)
    return decode(lo, data, hi, x2apic_32bit_ids=x2apic_32bit_ids)


@dataclass(frozen=True)
class ApicIdentity:
    apic_id: int
    ldr: int | None = None
    x2apic: bool = False
    dfr_flat: bool = True


def _match(msg: MsiMessage, a: ApicIdentity) -> bool:
    if not msg.dest_mode_logical:
        return msg.is_broadcast(a.x2apic) or a.apic_id == msg.dest_id
    mda = msg.dest_id
    ldr = a.ldr if a.ldr is not None else (1 << a.apic_id if a.apic_id < 8 else 0)
    if a.x2apic:
        return (ldr >> 16) == (mda >> 16) and bool(ldr & mda & 0xFFFF)
    if a.dfr_flat:
        return bool(ldr & mda & 0xFF)
    return (ldr >> 4 & 0xF) == (mda >> 4 & 0xF) and bool(ldr & mda & 0xF)


def match_destinations(msg: MsiMessage, apics: list[ApicIdentity], *, vector_hashing: bool = True) -> list[int]:
    dests = [i for i, a in enumerate(apics) if _match(msg, a)]
    broadcast = not msg.dest_mode_logical and any(msg.is_broadcast(a.x2apic) for a in apics[:1])
    if msg.lowest_priority and dests and not broadcast:
        return [dests[msg.vector % len(dests)]] if vector_hashing else [dests[0]]
    return dests


def fast_path_ok(msg: MsiMessage, apics: list[ApicIdentity]) -> bool:
    return not msg.is_broadcast(any(a.x2apic for a in apics))
