"""The virtual local APIC (arch/x86/kvm/lapic.c and the SDM local APIC chapter; kernel-facts §9)."""
import pytest
from hypothesis import given, strategies as st

from irqlab.kvm.lapic import ESR_RECV_ILLEGAL_VECTOR, KvmLapic


def test_ppr_rule():
    a = KvmLapic()
    a.set_tpr(0x35)
    assert a.ppr == 0x35                      # nothing in service: PPR = TPR
    a.apic_accept_irq(0x61)
    a.kvm_cpu_get_interrupt()
    assert a.ppr == 0x60                      # ISRV class above TPR's: PPR = ISRV & 0xF0
    a.set_tpr(0x70)
    assert a.ppr == 0x70


def test_deliverable_is_strictly_above_ppr():
    a = KvmLapic()
    a.set_tpr(0x40)
    a.apic_accept_irq(0x4F)
    assert a.kvm_apic_has_interrupt() == -1   # class 4 is not above PPR 0x40
    a.apic_accept_irq(0x50)
    assert a.kvm_apic_has_interrupt() == 0x50


def test_ack_moves_highest_irr_and_eoi_clears_highest_isr():
    a = KvmLapic()
    for v in (0x31, 0x91, 0x51):
        a.apic_accept_irq(v)
    assert a.kvm_cpu_get_interrupt() == 0x91 and a.isr == {0x91}
    a.isr.add(0x31)  # a lower vector also in service (nested)
    assert a.apic_set_eoi() == 0x91 and a.isr == {0x31}
    assert a.apic_set_eoi() == 0x31 and a.apic_set_eoi() == -1


def test_coalescing_one_pending_one_in_service():
    a = KvmLapic()
    a.apic_accept_irq(0x41)
    assert a.apic_accept_irq(0x41) == 1 and a.last_accept_coalesced  # KVM still returns 1
    a.kvm_cpu_get_interrupt()
    a.apic_accept_irq(0x41)
    assert a.irr == {0x41} and a.isr == {0x41} and not a.last_accept_coalesced
    assert a.coalesced == 1


def test_tmr_level_and_edge():
    a = KvmLapic()
    a.apic_accept_irq(0x41, trigger_level=True)
    assert 0x41 in a.tmr
    a.kvm_cpu_get_interrupt()
    a.apic_accept_irq(0x41)
    assert 0x41 not in a.tmr


def test_illegal_vectors_follow_the_sdm():
    a = KvmLapic()
    assert a.apic_accept_irq(7) == 0 and not a.irr and a.esr & ESR_RECV_ILLEGAL_VECTOR


def test_nmi_bypasses_irr():
    a = KvmLapic()
    assert a.apic_accept_irq(2, delivery_mode="nmi") == 1 and a.nmi_count == 1 and not a.irr


def test_ack_of_a_vector_not_pending_is_a_clear_error():
    with pytest.raises(ValueError, match="0x41"):
        KvmLapic().kvm_apic_ack_interrupt(0x41)
    with pytest.raises(ValueError):
        KvmLapic().set_tpr(300)


@given(st.lists(st.tuples(st.sampled_from(["accept", "ack", "eoi", "tpr"]), st.integers(0, 255)), max_size=60))
def test_invariants_under_any_sequence(ops):
    a = KvmLapic()
    for op, v in ops:
        if op == "accept":
            a.apic_accept_irq(v)
        elif op == "ack":
            a.kvm_cpu_get_interrupt()
        elif op == "eoi":
            a.apic_set_eoi()
        else:
            a.set_tpr(v)
        assert all(16 <= x <= 255 for x in a.irr | a.isr)
        assert 0 <= a.ppr <= 255 and (a.ppr & 0xF0) >= (a.tpr & 0xF0)


def test_register_layout():
    a = KvmLapic()
    a.apic_accept_irq(0x31)
    regs = dict(a.regs())
    assert regs[0x210] == 1 << 17 and regs[0x200] == 0 and len(regs) == 24
    a.kvm_cpu_get_interrupt()
    assert dict(a.regs())[0x110] == 1 << 17 and dict(a.regs())[0x210] == 0
