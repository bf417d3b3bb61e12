"""The virtual local APIC (arch/x86/kvm/lapic.c and the SDM local APIC chapter)."""
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


@pytest.mark.parametrize("bad,exc", [(1.5, TypeError), ("0x40", TypeError), (True, TypeError), (256, ValueError),
                                     (-1, ValueError), (None, TypeError)])
def test_set_tpr_refuses_bad_input_before_changing_it(bad, exc):
    """lapic.c apic_set_tpr takes the register's 8 bits: anything else is refused at the call, with the TPR
    unchanged (set_tpr(1.5) used to be stored and crash the next interrupt's PPR comparison)."""
    a = KvmLapic()
    a.set_tpr(0x20)
    with pytest.raises(exc):
        a.set_tpr(bad)
    assert a.tpr == 0x20 and a.ppr == 0x20


@pytest.mark.parametrize("kw,exc", [(dict(vector=256), ValueError), (dict(vector=1.0), TypeError),
                                    (dict(vector=0x41, delivery_mode="sipi"), ValueError),
                                    (dict(vector=0x41, delivery_mode=0), ValueError),
                                    (dict(vector=0x41, trigger_level="level"), TypeError)])
def test_accept_refuses_bad_input_before_changing_anything(kw, exc):
    a = KvmLapic()
    with pytest.raises(exc):
        a.apic_accept_irq(**kw)
    assert not a.irr and not a.tmr and a.accepted == 0


def test_delivery_modes_of_apic_accept_irq():
    """lapic.c __apic_accept_irq: APIC_DM_LOWEST raises apic_arb_prio and falls through to Fixed; SMI, RemRd
    (the MSI-reserved 3), NMI, INIT return 1 without the IRR; STARTUP (the MSI-reserved 6) keeps its vector in
    sipi_vector; ExtINT breaks out with 0 ("Should only be called by kvm_apic_local_deliver() with LVT0").
    Every case but Fixed/Lowest leaves last_accept_coalesced clear."""
    a = KvmLapic()
    assert a.apic_accept_irq(0x41, delivery_mode="lowest") == 1 and a.apic_arb_prio == 1 and 0x41 in a.irr
    assert a.apic_accept_irq(0x41) == 1 and a.last_accept_coalesced and a.apic_arb_prio == 1
    assert a.apic_accept_irq(0x9A, delivery_mode="startup") == 1 and a.sipi_vector == 0x9A and a.startup_count == 1
    assert not a.last_accept_coalesced and a.irr == {0x41}
    assert a.apic_accept_irq(0x41) == 1 and a.last_accept_coalesced
    assert a.apic_accept_irq(0x30, delivery_mode="extint") == 0 and not a.last_accept_coalesced
    assert a.apic_accept_irq(0x30, delivery_mode="remrd") == 1 and a.remrd_count == 1
    assert a.irr == {0x41} and 0x30 not in a.tmr


def test_pir_sync_leaves_the_tmr_alone():
    """lapic.c __kvm_apic_update_irr (vmx_sync_pir_to_irr) ORs the PIR into the IRR: the TMR is only written by
    __apic_accept_irq, so a bit an earlier level interrupt set stays set under a posted edge one."""
    a = KvmLapic()
    a.apic_accept_irq(0x41, trigger_level=True)
    a.kvm_cpu_get_interrupt()
    a.apic_set_eoi()
    assert a.last_eoi_level and 0x41 in a.tmr
    assert a.kvm_apic_update_irr(0x41) and not a.kvm_apic_update_irr(0x41)
    assert 0x41 in a.tmr and a.coalesced == 1 and not a.last_accept_coalesced
