"""x86 MSI address/data, KVM's decode of it, and destination matching.

Models arch/x86/include/asm/msi.h (the address and data layout, SDM "Message Signalled Interrupts"),
arch/x86/kvm/irq.c ``kvm_msi_to_lapic_irq`` and arch/x86/kvm/lapic.c: the APIC map's fast path
(``kvm_apic_map_get_dest_lapic``, ``fast_destinations``) and the loop over every vCPU behind it
(``kvm_irq_delivery_to_apic`` with ``kvm_apic_match_dest``, ``match_destinations``).
KVM reads only the address and data fields it needs: it never checks that the address is in the 0xFEExxxxx
window (an MSI route to any address is accepted and delivered by its fields).
Simplification: every APIC is software-enabled and the map is rebuilt from ``ApicIdentity`` on each call;
an x2APIC's logical cluster is read from its LDR rather than from its x2APIC ID.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["MsiMessage", "decode", "encode", "ApicIdentity", "kvm_apic_match_dest", "match_destinations", "fast_destinations",
           "delivery_destinations", "fast_path_ok", "DELIVERY_MODES", "KVM_MODE"]

#: the SDM's names for the MSI data register's delivery mode (3 and 6 are reserved for MSIs)
DELIVERY_MODES = {0: "Fixed", 1: "Lowest Priority", 2: "SMI", 3: "reserved", 4: "NMI", 5: "INIT",
                  6: "reserved", 7: "ExtINT"}
#: what KVM's __apic_accept_irq does with each: it reads the field as APIC_DM_*, so 3 is APIC_DM_REMRD and
#: 6 is APIC_DM_STARTUP (arch/x86/include/asm/apicdef.h)
KVM_MODE = {0: "fixed", 1: "lowest", 2: "smi", 3: "remrd", 4: "nmi", 5: "init", 6: "startup", 7: "extint"}
_BY_NAME = {"fixed": 0, "lowest": 1, "lowest priority": 1, "smi": 2, "nmi": 4, "init": 5, "extint": 7}


def _int(v, what: str, lo: int, hi: int) -> int:
    """An int argument (numpy ints too, not bool) in lo..hi, or TypeError/ValueError saying what to fix."""
    if type(v) is int and lo <= v <= hi:  # the common case, first
        return v
    if isinstance(v, bool) or not hasattr(v, "__index__"):
        raise TypeError(f"{what} must be an int, not {type(v).__name__}")
    v = int(v.__index__())
    if not lo <= v <= hi:
        raise ValueError(f"{what} must be {lo}..{hi}" + (" (a u32)" if hi == 0xFFFFFFFF and lo == 0 else "")
                         + f", got {v}")
    return v


def _u32(v, what: str) -> int:
    """A u32 argument: any int-like (numpy ints too), 0..2**32-1."""
    return _int(v, what, 0, 0xFFFFFFFF)


def _flag(v, what: str) -> bool:
    """A one-bit argument: a bool (or the ints 0 and 1)."""
    if v is True or v is False:
        return v
    if hasattr(v, "__index__") and int(v.__index__()) in (0, 1):
        return bool(int(v.__index__()))
    raise TypeError(f"{what} must be a bool, not {v!r}")


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
    def base_address(self) -> int:
        """Address bits 31:20: 0xFEE for an interrupt message (X86_MSI_BASE_ADDRESS_LOW); KVM never looks."""
        return self.address_lo >> 20

    @property
    def delivery_mode_name(self) -> str:
        return DELIVERY_MODES[self.delivery_mode]

    @property
    def kvm_mode(self) -> str:
        """The APIC_DM_* case __apic_accept_irq takes: fixed, lowest, smi, remrd, nmi, init, startup, extint."""
        return KVM_MODE[self.delivery_mode]

    @property
    def apic_dm(self) -> int:
        return self.delivery_mode << 8

    @property
    def lowest_priority(self) -> bool:
        return self.delivery_mode == 1 or self.redirection_hint

    def is_broadcast(self, x2apic: bool = False) -> bool:
        """kvm_apic_broadcast on the MDA: 0xFF (and 0xFFFFFFFF to an x2APIC), physical or logical alike.
        An MSI's 0xFF reaches x2APICs as X2APIC_BROADCAST too (kvm_apic_mda, with KVM's broadcast quirk)."""
        return self.dest_id == 0xFF or (x2apic and self.dest_id == 0xFFFFFFFF)

    def fields(self) -> list[tuple[str, str, int, str]]:
        return [
            ("address[31:20]", "31:20", self.base_address,
             "0xFEE: the MSI address window" if self.base_address == 0xFEE else
             "not 0xFEE (kvm_msi_to_lapic_irq never checks it)"),
            ("destination ID", "19:12", (self.address_lo >> 12) & 0xFF, "APIC ID (physical) or MDA (logical)"),
            ("virt_destid_8_14", "11:5", self.virt_destid_8_14, "Linux extended destination ID"),
            ("RH", "3", int(self.redirection_hint), "redirection hint: 1 = lowest priority"),
            ("DM", "2", int(self.dest_mode_logical), "0 physical / 1 logical (KVM honours it even if RH=0)"),
            ("vector", "7:0", self.vector, f"0x{self.vector:02x}"),
            ("delivery mode", "10:8", self.delivery_mode, self.delivery_mode_name),
            ("level", "14", int(self.level_assert), "assert (KVM ignores it: level = 1)"),
            ("trigger", "15", int(self.trigger_level), "level" if self.trigger_level else "edge"),
        ]


def decode(address_lo: int, data: int, address_hi: int = 0, *, x2apic_32bit_ids: bool = False) -> MsiMessage:
    """The fields of an x86 MSI message as arch/x86/kvm/irq.c ``kvm_msi_to_lapic_irq`` reads them: the
    destination from address bits 19:12 (with the KVM_X2APIC_API_USE_32BIT_IDS format, bits 31:8 of
    address_hi above them: ``x86_msi_msg_get_destid``), DM bit 2, RH bit 3, the vector, the delivery mode and
    the trigger bit. Like KVM, it does not check the 0xFEE base (``base_address`` shows it)."""
    address_lo, data = _u32(address_lo, "address_lo"), _u32(data, "data")
    address_hi = _u32(address_hi, "address_hi")
    dest = (address_lo >> 12) & 0xFF
    if _flag(x2apic_32bit_ids, "x2apic_32bit_ids"):
        dest |= address_hi & 0xFFFFFF00
    return MsiMessage(address_lo, address_hi, data, dest, (address_lo >> 5) & 0x7F, bool(address_lo & 4),
                      bool(address_lo & 8), data & 0xFF, (data >> 8) & 7, bool(data & (1 << 14)),
                      bool(data & (1 << 15)))


def encode(*, dest_id: int, vector: int, delivery_mode: int | str = 0, dest_mode_logical: bool = False,
           redirection_hint: bool = False, trigger_level: bool = False, level_assert: bool = True,
           x2apic_32bit_ids: bool = False) -> MsiMessage:
    """The address/data pair a device writes (arch/x86/include/asm/msi.h layout, base 0xFEE). ``dest_id`` is an
    8-bit APIC ID (0xFF: broadcast), or a 32-bit one with ``x2apic_32bit_ids``; ``delivery_mode`` the 3-bit
    field (0..7) or its name. Bad values raise TypeError/ValueError (a negative ID is not a broadcast)."""
    if isinstance(delivery_mode, str):
        try:
            delivery_mode = _BY_NAME[delivery_mode.lower()]
        except KeyError:
            raise ValueError(f"unknown delivery mode {delivery_mode!r}; use {sorted(_BY_NAME)}") from None
    delivery_mode = _int(delivery_mode, "delivery_mode (a 3-bit field)", 0, 7)
    vector = _int(vector, "vector", 0, 255)
    x2apic_32bit_ids = _flag(x2apic_32bit_ids, "x2apic_32bit_ids")
    dest_id = _int(dest_id, "dest_id" + ("" if x2apic_32bit_ids else " (x2apic_32bit_ids=True for IDs above 255)"),
                   0, 0xFFFFFFFF if x2apic_32bit_ids else 0xFF)
    dest_mode_logical, redirection_hint = _flag(dest_mode_logical, "dest_mode_logical"), \
        _flag(redirection_hint, "redirection_hint")
    trigger_level, level_assert = _flag(trigger_level, "trigger_level"), _flag(level_assert, "level_assert")
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

    def __post_init__(self) -> None:
        _u32(self.apic_id, "apic_id")
        if self.ldr is not None:
            _u32(self.ldr, "ldr")
        _flag(self.x2apic, "x2apic"), _flag(self.dfr_flat, "dfr_flat")
        if self.x2apic and self.ldr is not None:
            raise ValueError("an x2APIC's LDR is read-only, derived from its ID (kvm_apic_calc_x2apic_ldr): "
                             "leave ldr=None")


def _ldr(a: ApicIdentity) -> int:
    """The LDR: an x2APIC's is read-only, derived from its ID (kvm_apic_calc_x2apic_ldr); an xAPIC's is what
    the guest wrote, by default what Linux writes in flat mode (bit ``apic_id`` for IDs below 8)."""
    if a.x2apic:
        return ((a.apic_id >> 4) << 16) | (1 << (a.apic_id & 0xF))
    return a.ldr if a.ldr is not None else (1 << a.apic_id if a.apic_id < 8 else 0)


def _check(msg: Any, apics: Any = ()) -> None:
    if not isinstance(msg, MsiMessage):
        raise TypeError(f"msg must be an MsiMessage (irqlab.msi.decode/encode), not {type(msg).__name__}")
    if any(not isinstance(a, ApicIdentity) for a in apics):
        raise TypeError("apics must be a list of irqlab.kvm.msi.ApicIdentity")


def kvm_apic_match_dest(msg: MsiMessage, a: ApicIdentity) -> bool:
    """kvm_apic_match_dest for an MSI (no shorthand, no source APIC)."""
    _check(msg, (a,))
    return _match_dest(msg, a)


def _match_dest(msg: MsiMessage, a: ApicIdentity) -> bool:
    if msg.is_broadcast(a.x2apic):
        return True
    if not msg.dest_mode_logical:
        return a.apic_id == msg.dest_id
    mda, ldr = msg.dest_id, _ldr(a)
    if a.x2apic:
        return (ldr >> 16) == (mda >> 16) and bool(ldr & mda & 0xFFFF)
    if a.dfr_flat:
        return bool(ldr & mda & 0xFF)
    return (ldr >> 4 & 0xF) == (mda >> 4 & 0xF) and bool(ldr & mda & 0xF)


def _vector_to_index(vector: int, bits: list[int]) -> int:
    """kvm_vector_to_index: the (vector % n)-th set bit."""
    return bits[vector % len(bits)]


def match_destinations(msg: MsiMessage, apics: list[ApicIdentity], *, vector_hashing: bool = True) -> list[int]:
    """kvm_irq_delivery_to_apic's loop over every vCPU (the slow path): the indexes of the vCPUs that accept.
    A physical broadcast with lowest priority is downgraded to Fixed; other lowest-priority interrupts go
    to one matching vCPU, picked by vector hashing over the matching vCPUs. Without hashing (the kvm module's
    vector_hashing=0) KVM picks the lowest apic_arb_prio, which each lowest-priority accept raises; this
    function keeps no history and returns the first, as on a freshly reset VM."""
    _check(msg, apics)
    dests = [i for i, a in enumerate(apics) if _match_dest(msg, a)]
    if not dests or not msg.lowest_priority:
        return dests
    if not msg.dest_mode_logical and msg.dest_id == 0xFF:  # "apic: phys broadcast and lowest prio"
        return dests
    return [_vector_to_index(msg.vector, dests)] if vector_hashing else [dests[0]]


def _logical_map(apics: list[ApicIdentity]) -> tuple[str | None, dict[tuple[int, int], int]] | None:
    """kvm_recalculate_logical_map: the map's mode and its (cluster, bit) -> vCPU index slots, or None if
    KVM had to disable the logical map (APICs in different logical modes, an LDR with several bits, two
    APICs in one slot)."""
    mode: str | None = None
    slots: dict[tuple[int, int], int] = {}
    for i, a in enumerate(apics):
        ldr = _ldr(a)
        if not ldr:
            continue
        m = "x2apic" if a.x2apic else ("flat" if a.dfr_flat else "cluster")
        if mode is None:
            mode = m
        elif mode != m:
            return None
        cluster, mask = _logical_dest(m, ldr)
        if not mask:
            continue
        bit = (mask & -mask).bit_length() - 1
        if mask & (mask - 1) or (cluster, bit) in slots:
            return None
        slots[(cluster, bit)] = i
    return mode, slots


def _logical_dest(mode: str | None, dest: int) -> tuple[int, int]:
    """kvm_apic_map_get_logical_dest: (cluster, mask) of a logical destination in the map's mode."""
    if mode == "x2apic":
        return dest >> 16, dest & 0xFFFF
    if mode == "flat":
        return 0, dest & 0xFF
    if mode == "cluster":
        return (dest >> 4) & 0xF, dest & 0xF
    return 0, 0  # no APIC has a logical ID yet (KVM_APIC_MODE_SW_DISABLED): nobody


def fast_destinations(msg: MsiMessage, apics: list[ApicIdentity], *, vector_hashing: bool = True) -> list[int] | None:
    """kvm_irq_delivery_to_apic_fast via kvm_apic_map_get_dest_lapic: the vCPU indexes that accept, or None
    when the fast path declines (a broadcast, or a logical map KVM disabled) and the slow path must loop.
    An empty list means the interrupt is dropped and the fast path reports 0: a physical ID nobody has,
    or a lowest-priority pick, hashed over the bits of the destination mask, that lands on an empty slot."""
    _check(msg, apics)
    if not apics or msg.dest_id == 0xFF:  # kvm_apic_is_broadcast_dest (an MSI has no source APIC)
        return None
    if not msg.dest_mode_logical:
        return [i for i, a in enumerate(apics) if a.apic_id == msg.dest_id][:1]
    lmap = _logical_map(apics)
    if lmap is None:
        return None
    mode, slots = lmap
    cluster, mask = _logical_dest(mode, msg.dest_id)
    bits = [b for b in range(16) if mask >> b & 1]
    if msg.lowest_priority and bits:
        if vector_hashing:
            bits = [_vector_to_index(msg.vector, bits)]
        else:
            present = [b for b in bits if (cluster, b) in slots]
            bits = present[:1]
    return [slots[(cluster, b)] for b in bits if (cluster, b) in slots]


def fast_path_ok(msg: MsiMessage, apics: list[ApicIdentity]) -> bool:
    """Whether kvm_irq_delivery_to_apic_fast handles it (the irqfd fast path; else -EWOULDBLOCK)."""
    return fast_destinations(msg, apics) is not None


def delivery_destinations(msg: MsiMessage, apics: list[ApicIdentity]) -> tuple[list[int], bool]:
    """kvm_irq_delivery_to_apic: (the vCPU indexes that accept, whether the fast path took it)."""
    fast = fast_destinations(msg, apics)
    return (fast, True) if fast is not None else (match_destinations(msg, apics), False)
