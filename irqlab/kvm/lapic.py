"""The virtual local APIC: IRR/ISR/TMR, TPR/PPR, accept, acknowledge and EOI.

Models arch/x86/kvm/lapic.c (``__apic_accept_irq``, ``apic_update_ppr``, ``kvm_apic_has_interrupt``,
``kvm_apic_ack_interrupt``, ``apic_set_eoi``), arch/x86/kvm/irq.c ``kvm_cpu_get_interrupt`` (which took in
kvm_get_apic_interrupt in 6.13) and the SDM's local APIC chapter. Simplification: registers are Python
sets rather than the 4 KiB APIC page; no timer, no IPIs; SMI, NMI, INIT, SIPI and RemRd are only counted.
Vectors 0-15 follow the SDM ("Receive Illegal Vector": not delivered, ESR bit 6), since KVM's
__apic_accept_irq has no such check.
"""
from __future__ import annotations

__all__ = ["KvmLapic"]

ESR_RECV_ILLEGAL_VECTOR = 1 << 6


class KvmLapic:
    def __init__(self, apic_id: int = 0):
        self.apic_id = apic_id
        self.irr: set[int] = set()
        self.isr: set[int] = set()
        self.tmr: set[int] = set()
        self.tpr = 0
        self.esr = 0
        self.last_accept_coalesced = False
        self.last_eoi_level = False
        self.accepted = self.coalesced = self.acked = self.eois = 0
        self.nmi_count = self.smi_count = self.init_count = self.startup_count = self.remrd_count = 0

    @property
    def ppr(self) -> int:
        isrv = max(self.isr) if self.isr else 0
        return self.tpr if (self.tpr & 0xF0) >= (isrv & 0xF0) else isrv & 0xF0

    def set_tpr(self, tpr: int) -> None:
        if not 0 <= tpr <= 255:
            raise ValueError("TPR is 0..255")
        self.tpr = tpr

    def apic_accept_irq(self, vector: int, *, delivery_mode: str = "fixed", trigger_level: bool = False) -> int:
        """__apic_accept_irq: 1 if accepted (a vector already in the IRR too: KVM still returns 1), 0 if not.
        ``delivery_mode`` is the APIC_DM_* case: fixed, lowest, smi, remrd, nmi, init, startup or extint."""
        self.last_accept_coalesced = False
        mode = delivery_mode.lower()
        if mode in ("nmi", "smi", "init", "startup", "remrd"):
            setattr(self, f"{mode}_count", getattr(self, f"{mode}_count") + 1)
            return 1
        if mode == "extint":  # "Should only be called by kvm_apic_local_deliver() with LVT0": ignored
            return 0
        if mode not in ("fixed", "lowest"):
            raise ValueError(f"unknown delivery mode {delivery_mode!r}")
        if self.illegal(vector):
            return 0
        if vector in self.irr:
            self.last_accept_coalesced = True
            self.coalesced += 1
        else:
            self.irr.add(vector)
            self.accepted += 1
        if trigger_level:
            self.tmr.add(vector)
        else:
            self.tmr.discard(vector)
        return 1

    def illegal(self, vector: int) -> bool:
        """SDM: a vector 0-15 is not delivered and sets ESR "Receive Illegal Vector"."""
        if 16 <= vector <= 255:
            return False
        self.esr |= ESR_RECV_ILLEGAL_VECTOR
        return True

    def kvm_apic_has_interrupt(self) -> int:
        if not self.irr:
            return -1
        v = max(self.irr)
        return v if (v & 0xF0) > self.ppr else -1

    def kvm_apic_ack_interrupt(self, vector: int) -> None:
        if vector not in self.irr:
            raise ValueError(f"vector 0x{vector:02x} is not pending in the IRR")
        self.irr.discard(vector)
        self.isr.add(vector)
        self.acked += 1

    def kvm_cpu_get_interrupt(self) -> int:
        """The LAPIC half of kvm_cpu_get_interrupt: the highest deliverable vector, acknowledged; -1 if none."""
        v = self.kvm_apic_has_interrupt()
        if v >= 0:
            self.kvm_apic_ack_interrupt(v)
        return v

    def apic_set_eoi(self) -> int:
        if not self.isr:
            return -1
        v = max(self.isr)
        self.isr.discard(v)
        self.last_eoi_level = v in self.tmr
        self.eois += 1
        return v

    def regs(self) -> list[tuple[int, int]]:
        """IRR (0x200), ISR (0x100) and TMR (0x180) as the APIC page holds them: eight 32-bit registers at
        a 0x10 stride; vector v is register v // 32, bit v % 32. Returns (offset, value) pairs, ISR first."""
        out = []
        for base, bits in ((0x100, self.isr), (0x180, self.tmr), (0x200, self.irr)):
            for r in range(8):
                out.append((base + 0x10 * r, sum(1 << (v % 32) for v in bits if v // 32 == r)))
        return out

    def snapshot(self) -> dict:
        return {"irr": sorted(self.irr), "isr": sorted(self.isr), "tmr": sorted(self.tmr), "tpr": self.tpr,
                "ppr": self.ppr}
