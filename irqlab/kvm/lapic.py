"""The virtual local APIC: IRR/ISR/TMR, TPR/PPR, accept, acknowledge and EOI.

Models arch/x86/kvm/lapic.c (``__apic_accept_irq``, ``kvm_apic_update_irr``, ``apic_update_ppr``,
``kvm_apic_has_interrupt``, ``kvm_apic_ack_interrupt``, ``apic_set_eoi``), arch/x86/kvm/irq.c
``kvm_cpu_get_interrupt`` (6.18's name: no ``kvm_get_apic_interrupt`` any more; it reads the PIC's ExtINT first,
then the LAPIC) and the SDM's local APIC chapter. Simplification: registers are Python sets rather than the
4 KiB APIC page; no timer, no IPIs; SMI, NMI, INIT, SIPI and RemRd are counted (and SIPI's vector kept), not
acted on. Vectors 0-15 follow the SDM ("Receive Illegal Vector": not delivered, ESR bit 6) wherever they
reach the LAPIC: KVM's __apic_accept_irq has no such check and would leave them in the IRR for ever (class 0
is never above the PPR).
"""
from __future__ import annotations

from .msi import _flag, _int

__all__ = ["KvmLapic", "APIC_DM"]

ESR_RECV_ILLEGAL_VECTOR = 1 << 6
#: the APIC_DM_* cases of __apic_accept_irq (arch/x86/include/asm/apicdef.h: the 3-bit field << 8)
APIC_DM = {"fixed": 0x000, "lowest": 0x100, "smi": 0x200, "remrd": 0x300, "nmi": 0x400, "init": 0x500,
           "startup": 0x600, "extint": 0x700}


class KvmLapic:
    def __init__(self, apic_id: int = 0):
        self.apic_id = _int(apic_id, "apic_id", 0, 0xFFFFFFFF)
        self.irr: set[int] = set()
        self.isr: set[int] = set()
        self.tmr: set[int] = set()
        self.tpr = 0
        self.esr = 0
        #: whether the last Fixed/Lowest __apic_accept_irq found its vector already pending (KVM returns 1
        #: all the same); any other delivery mode clears it. PIR syncs and VT-d posting do not touch it.
        self.last_accept_coalesced = False
        self.last_eoi_level = False
        self.accepted = self.coalesced = self.acked = self.eois = 0
        self.nmi_count = self.smi_count = self.init_count = self.startup_count = self.remrd_count = 0
        self.apic_arb_prio = 0   # vcpu->arch.apic_arb_prio: +1 per APIC_DM_LOWEST accept
        self.sipi_vector = 0     # apic->sipi_vector: the vector of the last APIC_DM_STARTUP

    @property
    def ppr(self) -> int:
        isrv = max(self.isr) if self.isr else 0
        return self.tpr if (self.tpr & 0xF0) >= (isrv & 0xF0) else isrv & 0xF0

    def set_tpr(self, tpr: int) -> None:
        """A TPR write (apic_set_tpr: the APIC's 0x80 register, 0..255)."""
        self.tpr = _int(tpr, "TPR", 0, 255)

    @staticmethod
    def check_accept(vector: int, delivery_mode: str, trigger_level: bool) -> tuple[int, str, bool]:
        """The arguments of an accept, checked (TypeError/ValueError) before anything changes."""
        vector = _int(vector, "vector", 0, 255)
        if not isinstance(delivery_mode, str) or delivery_mode.lower() not in APIC_DM:
            raise ValueError(f"unknown delivery mode {delivery_mode!r}; use one of {list(APIC_DM)}")
        return vector, delivery_mode.lower(), _flag(trigger_level, "trigger_level")

    def apic_accept_irq(self, vector: int, *, delivery_mode: str = "fixed", trigger_level: bool = False) -> int:
        """__apic_accept_irq: 1 if accepted (a vector already in the IRR too: KVM still returns 1), 0 if not.
        ``delivery_mode`` is the APIC_DM_* case: fixed, lowest, smi, remrd, nmi, init, startup or extint:
        Lowest raises apic_arb_prio, then takes Fixed's path (TMR to the trigger mode, then the IRR); SMI,
        RemRd, NMI, INIT and SIPI are counted (SIPI keeps its vector) and return 1; ExtINT returns 0 ("Should
        only be called by kvm_apic_local_deliver() with LVT0"). A vector 0-15 is refused first (the SDM's rule).
        """
        vector, mode, trigger_level = self.check_accept(vector, delivery_mode, trigger_level)
        self.last_accept_coalesced = False
        if mode in ("fixed", "lowest") and self.illegal(vector):
            return 0
        if mode == "lowest":
            self.apic_arb_prio += 1
        elif mode == "extint":
            return 0
        elif mode != "fixed":
            setattr(self, f"{mode}_count", getattr(self, f"{mode}_count") + 1)
            if mode == "startup":
                self.sipi_vector = vector
            return 1
        if trigger_level:  # apic_set_vector / apic_clear_vector on APIC_TMR
            self.tmr.add(vector)
        else:
            self.tmr.discard(vector)
        self.last_accept_coalesced = not self.kvm_apic_update_irr(vector)
        return 1

    def kvm_apic_update_irr(self, vector: int) -> bool:
        """Set a vector in the IRR (kvm_lapic_set_irr, or the PIR sync __kvm_apic_update_irr; posted-interrupt
        processing in hardware): True if it was not set yet. The TMR is left alone."""
        vector = _int(vector, "vector", 0, 255)
        if vector in self.irr:
            self.coalesced += 1
            return False
        self.irr.add(vector)
        self.accepted += 1
        return True

    def illegal(self, vector: int) -> bool:
        """SDM: a vector 0-15 is not delivered and sets ESR "Receive Illegal Vector"; True then."""
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
        vector = _int(vector, "vector", 0, 255)
        if vector not in self.irr:
            raise ValueError(f"vector 0x{vector:02x} is not pending in the IRR")
        self.irr.discard(vector)
        self.isr.add(vector)
        self.acked += 1

    def kvm_cpu_get_interrupt(self) -> int:
        """arch/x86/kvm/irq.c kvm_cpu_get_interrupt, its LAPIC half (the guest's 8259s are masked, so
        kvm_cpu_get_extint gives -1): kvm_apic_has_interrupt, then kvm_apic_ack_interrupt; -1 if none."""
        v = self.kvm_apic_has_interrupt()
        if v >= 0:
            self.kvm_apic_ack_interrupt(v)
        return v

    def apic_set_eoi(self) -> int:
        """apic_set_eoi: clear the highest ISR bit (PPR follows); -1 if none is in service. ``last_eoi_level``:
        its TMR bit, the trigger mode kvm_ioapic_send_eoi hands the IOAPIC."""
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
