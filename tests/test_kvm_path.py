"""KVM's half after the routing table (that is tests/test_irqchip.py): irqfd, MSI delivery, LAPIC entry
windows, posting (virt/kvm/eventfd.c, arch/x86/kvm/irq.c, lapic.c, ioapic.c, x86.c, vmx/vmx.c,
vmx/posted_intr.c, vmx/common.h, virt/lib/irqbypass.c), and the storms they touch through both engines."""
import errno
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import irqlab
from helpers import err, route
from irqlab import Eventfd, KVM_IRQFD_FLAG_DEASSIGN, KVM_IRQFD_FLAG_RESAMPLE, msi, msi_route, storm
from irqlab.kvm.lapic import ESR_RECV_ILLEGAL_VECTOR


# ---------------------------------------------------------------------------------------------- irqfd
def test_irqfd_flags_and_irqchip_rules(host, vm):
    efd = Eventfd()
    assert err(vm.kvm_irqfd, efd, 24, 4) == errno.EINVAL
    split = host.create_vm(irqchip="split")
    assert err(split.kvm_irqfd, efd, 24, KVM_IRQFD_FLAG_RESAMPLE, resamplefd=Eventfd()) == errno.EINVAL
    assert split.kvm_irqfd(efd, 24) == 0
    none = host.create_vm(irqchip=None)
    assert err(none.kvm_irqfd, Eventfd(), 24) == errno.EINVAL
    assert err(vm.kvm_irqfd, 5, 24) == errno.EBADF
    assert err(vm.kvm_irqfd, "fd", 24) == errno.EINVAL


def test_irqfd_busy_across_vms(host, vm):
    efd = Eventfd()
    vm.kvm_irqfd(efd, 24)
    other = host.create_vm(nvcpus=1)
    assert err(other.kvm_irqfd, efd, 24) == errno.EBUSY  # 6.18: a priority waiter in any VM
    assert err(vm.kvm_irqfd, efd, 25) == errno.EBUSY


def test_deassign_matches_eventfd_and_gsi_and_returns_zero(vm):
    efd = Eventfd()
    vm.kvm_irqfd(efd, 24)
    assert vm.kvm_irqfd(efd, 25, KVM_IRQFD_FLAG_DEASSIGN) == 0 and len(vm.irqfds) == 1
    assert vm.kvm_irqfd(efd, 24, KVM_IRQFD_FLAG_DEASSIGN) == 0 and not vm.irqfds and not efd.waiters


def test_wakeup_consumes_the_count_and_fast_path_injects(host, vm):
    vm.kvm_set_gsi_routing([route(24, dest=1, vector=0x51)])
    efd = Eventfd()
    vm.kvm_irqfd(efd, 24)
    efd.write(3)  # QEMU-style write: the irqfd eats it whole
    assert efd.count == 0 and 0x51 in vm.vcpus[1].lapic.irr
    assert vm.irqfds[0].fast_path == 1


def test_work_path_coalesces_while_pending(host, vm):
    vm.ioapic.write_redirtbl(10, vector=0x33, trigger_level=False)
    efd = Eventfd()
    vm.kvm_irqfd(efd, 10)  # default routing: PIC + IOAPIC on GSI 10 → 2 entries → work path
    efd.signal()
    efd.signal()
    irqfd = vm.irqfds[0]
    assert irqfd.work_path == 1 and irqfd.coalesced == 1 and irqfd.inject.pending
    host.run()
    assert vm.vcpus[0].delivered[0x33] == 1


def test_preexisting_count_schedules_inject(host, vm):
    vm.kvm_set_gsi_routing([route(24)])
    efd = Eventfd(1)
    vm.kvm_irqfd(efd, 24)
    assert vm.irqfds[0].inject.pending
    host.run()
    assert vm.vcpus[0].delivered[0x41] == 1


def test_routing_update_reaches_existing_irqfds(host, vm):
    vm.kvm_set_gsi_routing([route(24, dest=0, vector=0x41)])
    efd = Eventfd()
    vm.kvm_irqfd(efd, 24)
    vm.kvm_set_gsi_routing([route(24, dest=1, vector=0x61)])
    efd.signal()
    host.run()
    assert vm.vcpus[1].delivered[0x61] == 1 and not vm.vcpus[0].delivered


def test_broadcast_msi_takes_the_work_path_and_hits_every_vcpu(host, vm):
    vm.kvm_set_gsi_routing([route(24, dest=0xFF, vector=0x45)])
    efd = Eventfd()
    vm.kvm_irqfd(efd, 24)
    efd.signal()
    assert vm.irqfds[0].work_path == 1
    host.run()
    assert all(v.delivered[0x45] == 1 for v in vm.vcpus)


def test_eventfd_close_shuts_the_irqfd_down(vm):
    efd = Eventfd()
    vm.kvm_irqfd(efd, 24)
    efd.close()
    assert not vm.irqfds


def test_resampler_on_eoi_of_level_pin():
    host = irqlab.Host(ncpus=4, timing=irqlab.Timing(guest_handler_ns=10_000))  # EOI after the second inject
    vm = host.create_vm(nvcpus=2, irqchip="full")
    vm.ioapic.write_redirtbl(16, vector=0x32, trigger_level=True)
    trig, res = Eventfd(), Eventfd()
    vm.kvm_irqfd(trig, 16, KVM_IRQFD_FLAG_RESAMPLE, resamplefd=res)
    trig.signal()
    host.run(until=host.now + host.timing.irqfd_work_ns)
    assert vm.ioapic.redirtbl[16].remote_irr
    trig.signal()  # still level, remote IRR set: coalesced at the IOAPIC
    host.run()
    assert vm.ioapic.coalesced >= 1 and res.count == 1 and not vm.ioapic.redirtbl[16].remote_irr
    assert vm.resamplers[16].acks == 1


def test_resample_irqfd_on_msi_route_never_signals(host, vm):
    vm.kvm_set_gsi_routing([route(24)])
    trig, res = Eventfd(), Eventfd()
    vm.kvm_irqfd(trig, 24, KVM_IRQFD_FLAG_RESAMPLE, resamplefd=res)
    trig.signal()
    host.run()
    assert vm.vcpus[0].delivered[0x41] == 1 and res.count == 0
    # 6.18's irqfd_wakeup tries kvm_arch_set_irq_inatomic for every irqfd, resampling or not
    assert vm.irqfds[0].fast_path == 1 and vm.irqfds[0].work_path == 0


# ---------------------------------------------------------------------------------------------- delivery
def test_kvm_signal_msi(vm):
    m = msi.encode(dest_id=1, vector=0x70)
    assert vm.kvm_signal_msi(m.address_lo, m.address_hi, m.data) == 1
    # a physical ID no vCPU has: the APIC map's fast path takes it and reports 0 accepts (lapic.c
    # kvm_irq_delivery_to_apic_fast sets *r = 0 once kvm_apic_map_get_dest_lapic returns true)
    m = msi.encode(dest_id=9, vector=0x70)
    assert vm.kvm_signal_msi(m.address_lo, m.address_hi, m.data) == 0
    # a broadcast goes the slow way, over every vCPU: both accept
    m = msi.encode(dest_id=0xFF, vector=0x71)
    assert vm.kvm_signal_msi(m.address_lo, m.address_hi, m.data) == 2
    assert all(0x71 in v.lapic.irr for v in vm.vcpus)


def test_kvm_signal_msi_einval(host):
    """kvm_send_userspace_msi: no in-kernel irqchip or unknown flags; kvm_set_msi: kvm_msi_route_invalid."""
    m = msi.encode(dest_id=1, vector=0x70)
    none = host.create_vm(irqchip=None)
    assert err(none.kvm_signal_msi, m.address_lo, m.address_hi, m.data) == errno.EINVAL
    x2 = host.create_vm(nvcpus=2, irqchip="split", x2apic_32bit_ids=True)
    assert err(x2.kvm_signal_msi, m.address_lo, 0x1, m.data) == errno.EINVAL
    assert err(x2.kvm_signal_msi, m.address_lo, 0, m.data, flags=2) == errno.EINVAL
    assert x2.kvm_signal_msi(m.address_lo, 0, m.data) == 1 and x2.signal_msi_calls == 2


def test_kvm_signal_msi_eperm_when_the_slow_path_finds_nobody(host):
    """-1 (EPERM) only from the loop over every vCPU: here the logical map is disabled (two vCPUs share a
    logical ID), so a logical message that matches nobody goes the slow way and finds no destination."""
    vm = host.create_vm(nvcpus=2, irqchip="full")
    vm.apic_identities = lambda: [msi.ApicIdentity(0, ldr=0b1), msi.ApicIdentity(1, ldr=0b1)]
    m = msi.encode(dest_id=0b100, vector=0x70, dest_mode_logical=True)
    assert err(vm.kvm_signal_msi, m.address_lo, m.address_hi, m.data) == errno.EPERM


def test_delivery_modes_as_kvm_reads_them(vm):
    """__apic_accept_irq: NMI/SMI/INIT and the MSI-reserved 3 (APIC_DM_REMRD) and 6 (APIC_DM_STARTUP) are
    accepted without the IRR; ExtINT is ignored (0)."""
    lap = vm.vcpus[1].lapic
    for mode, count in ((4, "nmi_count"), (2, "smi_count"), (5, "init_count"), (3, "remrd_count"),
                        (6, "startup_count")):
        m = msi.encode(dest_id=1, vector=0x30, delivery_mode=mode)
        assert vm.kvm_signal_msi(m.address_lo, m.address_hi, m.data) == 1
        assert getattr(lap, count) == 1, mode
    m = msi.encode(dest_id=1, vector=0x30, delivery_mode="extint")
    assert vm.kvm_signal_msi(m.address_lo, m.address_hi, m.data) == 0
    assert not lap.irr


def test_lowest_priority_vector_hashing(vm):
    m = msi.encode(dest_id=0b11, vector=0x43, delivery_mode="lowest", dest_mode_logical=True)
    vm.kvm_signal_msi(m.address_lo, m.address_hi, m.data)
    assert 0x43 in vm.vcpus[0x43 % 2].lapic.irr


def test_entry_window_delivers_everything_accepted_in_it(host, vm):
    """The model's simplification (docs/model-time.md): one entry takes every deliverable vector. KVM without
    APICv (x86.c kvm_check_and_inject_events) would inject 0x52 at this entry and 0x41 after the guest's EOI
    exit and an INTERRUPT_WINDOW exit (vmx.c handle_interrupt_window), which the model does not count."""
    vm.kvm_set_gsi_routing([route(24, vector=0x41), route(25, vector=0x52)])
    a, b = Eventfd(), Eventfd()
    vm.kvm_irqfd(a, 24)
    vm.kvm_irqfd(b, 25)
    v0 = vm.vcpus[0]
    a.signal()
    host.run(until=host.now + 100)
    b.signal()
    a.signal()  # 0x41 still in IRR: coalesced
    host.run()
    assert v0.entries == 1 and v0.delivered == {0x41: 1, 0x52: 1} and v0.coalesced[0x41] == 1
    assert v0.exits == {"EXTERNAL_INTERRUPT": 1, "EOI": 2}  # one kick, one EOI exit per edge interrupt


def test_level_vector_blocks_lower_class_until_eoi(host, vm):
    v0 = vm.vcpus[0]
    vm.ioapic.write_redirtbl(16, vector=0x62, trigger_level=True)
    vm.kvm_set_gsi_routing(vm.routing.all() + [route(24, vector=0x55)])
    lvl, edge = Eventfd(), Eventfd()
    vm.kvm_irqfd(lvl, 16, KVM_IRQFD_FLAG_RESAMPLE, resamplefd=Eventfd())
    vm.kvm_irqfd(edge, 24)
    lvl.signal()
    host.run(until=host.now + host.timing.irqfd_work_ns + v0.delivery_ns)
    assert 0x62 in v0.lapic.isr and 0x62 in v0.lapic.tmr
    edge.signal()  # class 5 < class 6 in service: stays in IRR
    host.run(until=host.now + v0.delivery_ns)
    assert 0x55 in v0.lapic.irr and v0.delivered[0x55] == 0
    host.run()
    assert v0.delivered[0x55] == 1 and not v0.lapic.isr


@pytest.mark.parametrize("apicv,mode,exits", [
    (False, "running", {"EXTERNAL_INTERRUPT": 1, "EOI": 1}),
    (True, "running", {}),
    (False, "halted", {"EOI": 1, "HLT": 1}),
    (True, "halted", {"HLT": 1}),
])
def test_exit_accounting(apicv, mode, exits):
    host = irqlab.Host(ncpus=2, apicv=apicv)
    vm = host.create_vm(nvcpus=1, vcpu_mode=mode)
    vm.kvm_set_gsi_routing([route(24)])
    efd = Eventfd()
    vm.kvm_irqfd(efd, 24)
    efd.signal()
    host.run()
    assert dict(vm.vcpus[0].exits) == exits and vm.vcpus[0].delivered[0x41] == 1


# ---------------------------------------------------------------------------------------------- posting
def test_posted_interrupts_bypass_the_host():
    host = irqlab.scenarios.posted_nic(2)
    vm = host.scenario.vm
    j = host.raise_msi("0000:01:00.0", 0)
    host.run()
    assert j.outcome == "posted" and "vfio_msihandler" not in j.functions()
    assert sum(host.irq_to_desc(host.devices["0000:01:00.0"].vectors[0].irq).kstat) == 0
    assert host.scenario.eventfds[0].signals == 0 and vm.vmexits == 0


def test_posting_only_for_postable_routes():
    host = irqlab.scenarios.posted_nic(1)
    vm = host.scenario.vm
    vm.kvm_set_gsi_routing([route(24, dest=0xFF)])  # broadcast: not postable, IRTE stays remapped
    irq = host.devices["0000:01:00.0"].vectors[0].irq
    assert host.irqbypass.posted_irte(irq) is None
    j = host.raise_msi("0000:01:00.0", 0)
    assert "vfio_msihandler" in j.functions()
    vm.kvm_set_gsi_routing([route(24, dest=1)])
    assert host.irqbypass.posted_irte(irq).vcpu is vm.vcpus[1]
    vm.kvm_irqfd(host.scenario.eventfds[0], 24, KVM_IRQFD_FLAG_DEASSIGN)
    assert host.irqbypass.posted_irte(irq) is None


def test_lowest_priority_to_several_vcpus_is_postable():
    """kvm_intr_is_single_vcpu_fast: the APIC map's lowest-priority pick is one vCPU, so the IRTE is posted to
    the vCPU that vector hashing chose (vector % the number of bits in the logical destination mask)."""
    host = irqlab.scenarios.posted_nic(1)
    vm = host.scenario.vm
    assert len(vm.vcpus) >= 2
    m = msi.encode(dest_id=0b11, vector=0x43, dest_mode_logical=True, delivery_mode="lowest")
    vm.kvm_set_gsi_routing([e for e in vm.routing.all() if e.gsi != 24] + [irqlab.msi_route(24, m.address_lo, m.data)])
    irte = host.irqbypass.posted_irte(host.devices["0000:01:00.0"].vectors[0].irq)
    assert irte is not None and irte.vcpu is vm.vcpus[0x43 % 2]
    j = host.raise_msi("0000:01:00.0", 0)
    host.run()
    assert j.outcome == "posted"


def test_halted_vcpu_pir_coalescing_and_piw():
    host = irqlab.scenarios.posted_nic(1, vcpu_mode="halted")
    vcpu = host.scenario.vm.vcpus[0]
    a = host.raise_msi("0000:01:00.0", 0)
    b = host.raise_msi("0000:01:00.0", 0, at=host.now + 10)
    assert b.outcome == "coalesced_pir" and host.arch_counts["PIW"][vcpu.pcpu] == 1
    host.run()
    assert a.outcome == "posted" and vcpu.exits == {"HLT": 1}


# ---------------------------------------------------------------------------------------------- 6.18 rules
def test_msi_route_outside_0xfee_is_accepted_and_delivered(host, vm):
    """arch/x86/kvm/irq.c: kvm_set_routing_entry checks only kvm_msi_route_invalid and kvm_msi_to_lapic_irq
    reads the fields, so a route whose address is not 0xFEExxxxx is accepted and delivered by its destination
    and vector (it used to crash the next interrupt mid-dispatch, leaving it in flight)."""
    vm.kvm_set_gsi_routing([msi_route(24, 0xFED01000, 0x4051)])
    efd = Eventfd()
    vm.kvm_irqfd(efd, 24)
    efd.signal()
    host.run()
    assert vm.vcpus[1].delivered[0x51] == 1 and vm.irqfds[0].fast_path == 1
    assert vm.kvm_signal_msi(0x00001000, 0, 0x52) == 1 and 0x52 in vm.vcpus[1].lapic.irr


def test_set_gsi_routing_with_posting_and_an_odd_address_changes_nothing_half():
    """With posting, KVM_SET_GSI_ROUTING re-programs the IRTEs after the swap (kvm_irq_routing_update →
    kvm_arch_update_irqfd_routing → kvm_pi_update_irte): an address outside 0xFEE used to raise there, after the
    table had been replaced. Now the route is posted by its fields, and a bad entry is refused before the swap."""
    host = irqlab.scenarios.posted_nic(2)
    vm = host.scenario.vm
    keep = [e for e in vm.routing.all() if e.gsi != 24]
    assert vm.kvm_set_gsi_routing(keep + [msi_route(24, 0xFED01000, 0x4061)]) == 0
    irte = host.irqbypass.posted_irte(host.devices["0000:01:00.0"].vectors[0].irq)
    assert irte.vcpu is vm.vcpus[1] and irte.vector == 0x61
    j = host.raise_msi("0000:01:00.0", 0)
    host.run()
    assert j.outcome == "posted" and not host.events_in_flight()
    table = vm.routing
    with pytest.raises(ValueError):
        vm.kvm_set_gsi_routing(keep + [msi_route(24, 0xFEE01000, 0x41), msi_route(25, 0xFEE00000, 1 << 32)])
    assert vm.routing is table


def test_kvm_signal_msi_to_a_physical_id_nobody_has_returns_0(vm):
    """lapic.c kvm_irq_delivery_to_apic_fast: kvm_apic_map_get_dest_lapic returns true for a physical destination
    above max_apic_id (bitmap 0) or a hole in phys_map, so *r = 0 and KVM_SIGNAL_MSI returns 0 (dropped), not
    -1: only the slow loop of kvm_irq_delivery_to_apic reports -1 (EPERM)."""
    for dest in (2, 9, 0xFE):
        m = msi.encode(dest_id=dest, vector=0x70)
        assert vm.kvm_signal_msi(m.address_lo, m.address_hi, m.data) == 0
    assert not any(v.lapic.irr for v in vm.vcpus)


def test_injection_hops_name_kvm_cpu_get_interrupt():
    """x86.c kvm_check_and_inject_events → irq.c kvm_cpu_get_interrupt (6.18 has no kvm_get_apic_interrupt: it
    reads kvm_cpu_get_extint, then kvm_apic_has_interrupt and kvm_apic_ack_interrupt), then vmx.c vmx_inject_irq
    writes the vector into VM_ENTRY_INTR_INFO (named in the ack's hop, where the interrupt is injected)."""
    h = irqlab.scenarios.msix_nic(2)
    j = h.raise_msi("0000:01:00.0", 0)
    h.run()
    fns = j.functions()
    i = fns.index("kvm_check_and_inject_events")
    assert fns[i:] == ["kvm_check_and_inject_events", "kvm_cpu_get_interrupt", "kvm_apic_ack_interrupt"]
    assert "vmx_inject_irq" in j.hops[-1].detail
    assert "kvm_get_apic_interrupt" not in fns and j.outcome == "injected"


def _signal(vm, dest, vector, **kw):
    m = msi.encode(dest_id=dest, vector=vector, **kw)
    return vm.kvm_signal_msi(m.address_lo, m.address_hi, m.data)


@pytest.mark.parametrize("apicv", [False, True])
def test_eoi_exits_only_for_the_eoi_exit_bitmap_with_apicv(apicv):
    """With APICv, EOI virtualization exits only for a vector in the EOI-exit bitmap (vmx.c
    vmx_load_eoi_exitmap loads ioapic_handled_vectors, which ioapic.c kvm_ioapic_scan_entry fills from the
    level-triggered pins, the pins with an ack notifier and the RTC's pin 8, for the vCPUs they target):
    an edge MSI, and a level MSI that no IOAPIC pin carries, EOI without an exit. Without APICv every EOI write
    traps (handle_apic_access / the x2APIC MSR write → kvm_lapic_set_eoi)."""
    host = irqlab.Host(ncpus=2, apicv=apicv)
    vm = host.create_vm(nvcpus=2)
    v0 = vm.vcpus[0]
    vm.ioapic.write_redirtbl(17, vector=0x62, dest_id=0, trigger_level=True)   # level pin → in the bitmap
    vm.ioapic.write_redirtbl(8, vector=0x63, dest_id=0, trigger_level=False)   # the RTC's pin, edge → in it too
    vm.ioapic.write_redirtbl(9, vector=0x64, dest_id=1, trigger_level=True)    # level, but for vcpu1
    assert v0.ioapic_handled_vectors() == {0x62, 0x63}
    _signal(vm, 0, 0x41)                          # edge MSI
    _signal(vm, 0, 0x51, trigger_level=True)      # level MSI: TMR set, but not in the bitmap
    _signal(vm, 0, 0x63)                          # pin 8's vector, sent as an MSI: in the bitmap
    vm.kvm_set_irq(0, 17, 1, None)                # the level pin
    vm.kvm_set_irq(0, 17, 0, None)
    host.run()
    assert v0.delivered == {0x41: 1, 0x51: 1, 0x63: 1, 0x62: 1}
    eois = v0.exits["EOI"]
    assert eois == (2 if apicv else 4)
    assert 0x51 in v0.lapic.tmr and not v0.lapic.isr


def test_a_level_msi_is_eoid_as_the_guest_takes_it(host, vm):
    """The model's guest is Linux: a vector programmed on a level IOAPIC pin runs handle_fasteoi_irq (EOI after
    the handler, Timing.guest_handler_ns), any other handle_edge_irq (EOI as it takes it), whatever the TMR says;
    the TMR bit only becomes kvm_ioapic_send_eoi's trigger mode (lapic.c)."""
    v0 = vm.vcpus[0]
    assert _signal(vm, 0, 0x51, trigger_level=True) == 1 and 0x51 in v0.lapic.tmr
    host.run(until=host.now + v0.delivery_ns)
    assert v0.delivered[0x51] == 1 and not v0.lapic.isr and v0.lapic.last_eoi_level
    vm.ioapic.write_redirtbl(17, vector=0x52, trigger_level=True)
    assert vm.guest_level_vector(0x52) and not vm.guest_level_vector(0x51)
    _signal(vm, 0, 0x52, trigger_level=True)
    host.run(until=host.now + v0.delivery_ns)
    assert v0.lapic.isr == {0x52}                 # held until the handler is done
    host.run()
    assert not v0.lapic.isr


def test_extint_and_the_reserved_delivery_modes():
    """lapic.c __apic_accept_irq, reached through kvm_msi_to_lapic_irq's delivery_mode = data[10:8] << 8: 3 is
    APIC_DM_REMRD (returns 1: pv_unhalted, a kick), 6 is APIC_DM_STARTUP (returns 1, keeps sipi_vector), 7 is
    APIC_DM_EXTINT ("Should only be called by kvm_apic_local_deliver() with LVT0": 0, nothing set), so
    KVM_SIGNAL_MSI returns 0 for ExtINT and 1 for the others. RH=1 makes a Fixed message lowest-priority
    (kvm_lowest_prio_delivery) without APIC_DM_LOWEST's apic_arb_prio++."""
    host = irqlab.Host(ncpus=2)
    vm = host.create_vm(nvcpus=2)
    lap = vm.vcpus[1].lapic
    assert _signal(vm, 1, 0x41) == 1 and _signal(vm, 1, 0x41) == 1 and lap.last_accept_coalesced
    assert _signal(vm, 1, 0x30, delivery_mode=7) == 0 and not lap.last_accept_coalesced and lap.irr == {0x41}
    assert _signal(vm, 1, 0x9A, delivery_mode=6) == 1 and lap.startup_count == 1 and lap.sipi_vector == 0x9A
    assert _signal(vm, 1, 0x30, delivery_mode=3) == 1 and lap.remrd_count == 1 and lap.irr == {0x41}
    rh = msi.encode(dest_id=0b11, vector=0x43, dest_mode_logical=True, redirection_hint=True)
    assert rh.lowest_priority and rh.kvm_mode == "fixed"
    assert vm.kvm_signal_msi(rh.address_lo, rh.address_hi, rh.data) == 1
    pick = vm.vcpus[0x43 % 2]
    assert 0x43 in pick.lapic.irr and pick.lapic.apic_arb_prio == 0
    assert _signal(vm, 0b11, 0x44, dest_mode_logical=True, delivery_mode=1) == 1
    assert vm.vcpus[0x44 % 2].lapic.apic_arb_prio == 1


@pytest.mark.parametrize("mode", ["running", "halted"])
def test_a_posted_vector_below_16_ends_at_the_lapic(mode):
    """A VT-d posted IRTE with vector 7 (nothing in vmx_pi_update_irte or intel_ir_set_vcpu_affinity checks it):
    the model applies the SDM's illegal-vector rule where the vector reaches the LAPIC, as it does for KVM's own
    accepts: dropped (no_route), ESR "Receive Illegal Vector" set, no PIR bit, no wake-up. It used to stay in
    flight for ever."""
    host = irqlab.scenarios.posted_nic(1, vcpu_mode=mode)
    vm = host.scenario.vm
    keep = [e for e in vm.routing.all() if e.gsi != 24]
    vm.kvm_set_gsi_routing(keep + [route(24, dest=0, vector=7)])
    irte = host.irqbypass.posted_irte(host.devices["0000:01:00.0"].vectors[0].irq)
    assert irte is not None and irte.vector == 7
    j = host.raise_msi("0000:01:00.0", 0)
    host.run()
    v0 = vm.vcpus[0]
    assert j.outcome == "no_route" and not host.events_in_flight() and host.ledger.as_dict() == {"no_route": 1}
    assert v0.lapic.esr & ESR_RECV_ILLEGAL_VECTOR and not v0.pi.pir and not v0.lapic.irr and v0.entries == 0


def test_a_vcpu_mode_is_running_or_halted(host):
    """create_vm(vcpu_mode='sleeping') used to build vCPUs in a mode no path knows."""
    with pytest.raises(ValueError, match="running"):
        host.create_vm(vcpu_mode="sleeping")
    assert host.vms == []
    vm = host.create_vm(vcpu_mode="halted")
    assert vm.vcpus[0].pi.nv == 0xF1                # blocked vCPUs get the wakeup vector (vmx_vcpu_pi_put)
    with pytest.raises(ValueError):
        vm.vcpus[0].mode = "asleep"
    assert vm.vcpus[0].mode == "halted"


@pytest.mark.parametrize("call,exc", [
    (lambda h, vm: h.create_vm(vcpu_mode="sleeping"), ValueError),
    (lambda h, vm: h.create_vm(nvcpus=2, pcpus=[0, 9]), ValueError),
    (lambda h, vm: h.create_vm(nvcpus=1, pcpus=[0.0]), TypeError),
    (lambda h, vm: h.create_vm(apicv="yes"), TypeError),
    (lambda h, vm: h.create_vm(irqchip=["full"]), ValueError),
    (lambda h, vm: vm.kvm_irqfd(Eventfd(), 2**33), ValueError),
    (lambda h, vm: vm.kvm_irqfd(Eventfd(), -1), ValueError),
    (lambda h, vm: vm.kvm_irqfd(Eventfd(), 24.0), TypeError),
    (lambda h, vm: vm.kvm_irqfd(Eventfd(), 24, flags=None), TypeError),
    (lambda h, vm: vm.kvm_signal_msi(-1, 0, 0x41), ValueError),
    (lambda h, vm: vm.kvm_signal_msi(0xFEE00000, 0, 1 << 32), ValueError),
    (lambda h, vm: vm.kvm_signal_msi(0xFEE00000, 0, "0x41"), TypeError),
    (lambda h, vm: vm.kvm_set_gsi_routing(route(24)), TypeError),
    (lambda h, vm: vm.kvm_set_gsi_routing([route(24)], flags=1.0), TypeError),
    (lambda h, vm: vm.kvm_set_gsi_routing([(24, 2, 0)]), TypeError),
    (lambda h, vm: vm.vcpus[0].set_tpr(1.5), TypeError),
    (lambda h, vm: vm.vcpus[0].set_tpr(0x100), ValueError),
    (lambda h, vm: vm.ioapic.write_redirtbl(3, vector=0x41, dest_id=256), ValueError),
    (lambda h, vm: vm.ioapic.write_redirtbl(3, vector=0x41, delivery_mode=9), ValueError),
    (lambda h, vm: vm.kvm_irqfd(Eventfd(), 2**33, KVM_IRQFD_FLAG_DEASSIGN), ValueError),
    (lambda h, vm: vm.kvm_irqfd_deassign(Eventfd(), "24"), TypeError),
    (lambda h, vm: vm.kvm_set_irq(0, 24, 2, None), ValueError),
    (lambda h, vm: vm.kvm_set_irq(64, 24, 1, None), ValueError),
    (lambda h, vm: vm.kvm_set_irq(0, 24.0, 1, None), TypeError),
    (lambda h, vm: vm.ioapic.kvm_ioapic_update_eoi(0x141), ValueError),
    (lambda h, vm: msi.ApicIdentity(-1), ValueError),
    (lambda h, vm: msi.ApicIdentity(0, ldr=1.0), TypeError),
    (lambda h, vm: vm.vcpus[0].apic_accept_irq(0x141, False, None), ValueError),
    (lambda h, vm: vm.vcpus[0].apic_accept_irq(0x41, False, None, mode="nmi"), ValueError),
    (lambda h, vm: vm.ioapic.set_irq(24, 0, 1, None), ValueError),
    (lambda h, vm: vm.pic.set_irq(3, 0, 2), ValueError),
    (lambda h, vm: msi.match_destinations((0xFEE00000, 0x41), vm.apic_identities()), TypeError),
    (lambda h, vm: msi.fast_destinations(msi.decode(0xFEE00000, 0x41), [0, 1]), TypeError),
])
def test_kvm_entry_points_refuse_bad_input_before_changing_anything(call, exc):
    """Python input that is not what the kernel's structures hold (u32 fields, 8-bit registers, bit fields) is
    refused with TypeError/ValueError, and the VM is exactly as before."""
    from irqlab.storm.result import snapshot
    h = irqlab.Host(ncpus=2)
    vm = h.create_vm(nvcpus=2)
    vm.kvm_set_gsi_routing(vm.routing.all() + [route(24)])
    before, nvms, table = snapshot(h), len(h.vms), vm.routing
    redir = [vars(e).copy() for e in vm.ioapic.redirtbl]
    with pytest.raises(exc):
        call(h, vm)
    assert snapshot(h) == before and len(h.vms) == nvms and vm.routing is table and vm.signal_msi_calls == 0
    assert [vars(e) for e in vm.ioapic.redirtbl] == redir and vm.vcpus[0].lapic.tpr == 0 and not vm.irqfds


# ---------------------------------------------------------------------------------------------- both engines
# The storms the KVM rules above touch, through the vector engine and the one-by-one replay: identical
# results and hosts (or Unsupported naming why), in small chunks too, and with a second storm after the first.
NIC = "0000:01:00.0"
CHUNKS = [1, 3, 64, 1 << 21]


def nic_host(routes, *, apicv=False, posted=False, modes=("running", "running"), tprs=(0, 0), timing=None,
             prep=None):
    """A passed-through MSI-X NIC whose vector i has the route ``routes[i]`` (msi.encode's keywords), on a VM
    with a vCPU per entry of ``modes`` and their TPRs; ``prep(host, vm)`` runs last (then host.run())."""
    host = irqlab.Host(ncpus=4, timing=timing, trace=False, apicv=apicv or posted, posted_interrupts=posted)
    host.add_pci_device(NIC, name="nic", intx_pin=1, msix=len(routes))
    vm = host.create_vm(nvcpus=len(modes))
    pt = irqlab.scenarios.passthrough_msix(host, vm, NIC, len(routes))
    keep = [e for e in vm.routing.all() if e.gsi not in pt.gsis]
    rs = []
    for gsi, r in zip(pt.gsis, routes):
        r = dict(r)
        base = r.pop("base", 0xFEE)  # address bits 31:20, which KVM never reads
        m = msi.encode(**r)
        rs.append(msi_route(gsi, (m.address_lo & 0xFFFFF) | base << 20, m.data, m.address_hi))
    vm.kvm_set_gsi_routing(keep + rs)
    for v, mode, tpr in zip(vm.vcpus, modes, tprs):
        v.mode = mode
        v.set_tpr(tpr)
    if prep is not None:
        prep(host, vm)
        host.run()
    return host


def agree(make, times, ids, chunk, again=True, between=None):
    """Both engines on two hosts built alike: equal results, hosts and interrupts in flight; twice if ``again``,
    with ``between(host)`` run on both hosts before the second storm (then host.run())."""
    from irqlab.storm.result import snapshot
    h1, h2 = make(), make()
    srcs = storm.sources(h1)
    for rnd in range(2 if again else 1):
        if rnd and between is not None:
            for h in (h1, h2):
                between(h)
                h.run()
            assert snapshot(h1) == snapshot(h2)
        t = times + h1.now + (1 if rnd else 0)
        s = storm.from_arrays(t, ids if rnd == 0 else ids[::-1].copy(), srcs)
        b = storm.run(h2, s, "reference", progress=False)
        a = storm.run(h1, s, "vector", chunk_events=chunk, progress=False)
        assert a.equals(b), a.diff(b)
        assert snapshot(h1) == snapshot(h2)
        assert [(e.id, e.outcome, e.via_iommu) for e in h1.events_in_flight()] == \
            [(e.id, e.outcome, e.via_iommu) for e in h2.events_in_flight()]
        h1.ledger_check()
        h2.ledger_check()
    return h1, h2, a


def dense(nsrc, n=1500, span=600_000, seed=5):
    rng = np.random.default_rng(seed)
    return np.sort(rng.integers(0, span, n)).astype(np.int64), rng.integers(0, nsrc, n).astype(np.uint16)


STRADDLE = [dict(dest_id=0, vector=0x3E), dict(dest_id=1, vector=0x3F), dict(dest_id=0, vector=0x40),
            dict(dest_id=1, vector=0x41)]


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("kind", ["posted", "apicv", "plain"])
@pytest.mark.parametrize("mode", ["running", "halted"])
def test_engines_agree_on_vectors_the_tpr_blocks(kind, mode, chunk):
    """lapic.c apic_has_interrupt_for_ppr: a vector whose class is not above the PPR (= TPR, nothing in service)
    is never delivered: its first interrupt waits in the IRR (in flight), every later one merges into it
    (coalesced_irr; coalesced_pir while its PIR bit is set), and the entry windows go on. The vector engine
    used to report a VT-d posted vector blocked by the TPR as posted. Lowering the TPR then delivers the held
    interrupts, alike on both hosts."""
    make = lambda: nic_host(STRADDLE, apicv=kind == "apicv", posted=kind == "posted", modes=(mode, mode),  # noqa
                            tprs=(0x30, 0x45))
    t, ids = dense(4)
    h1, h2, a = agree(make, t, ids, chunk)
    assert a.ledger.get("in_flight", 0) == 0 and len(h1.events_in_flight()) == 3  # 0x3E, 0x3F and 0x41 wait
    v0, v1 = h1.vms[0].vcpus
    assert v0.lapic.irr == {0x3E} and v1.lapic.irr == {0x3F, 0x41} and v0.delivered[0x40] > 0
    assert v1.coalesced[0x3F] > 0 and not v1.delivered
    for h in (h1, h2):
        for v in h.vms[0].vcpus:
            v.set_tpr(0)
        h.run()
        assert not h.events_in_flight() and not any(v.lapic.irr for v in h.vms[0].vcpus)
    from irqlab.storm.result import snapshot
    assert snapshot(h1) == snapshot(h2)
    assert h1.ledger.as_dict() == h2.ledger.as_dict()


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("mode", ["halted", "running"])
def test_engines_agree_on_a_posted_vector_with_a_stale_tmr_bit(mode, chunk):
    """A level MSI (KVM_SIGNAL_MSI, trigger bit set) leaves the vector's TMR bit set (__apic_accept_irq); VT-d
    posting never writes the TMR and the PIR sync (__kvm_apic_update_irr) neither, so later posted edge
    interrupts of that vector keep it: the guest still EOIs them as it takes them (no pin of that vector is
    level), with APICv no EOI exit (not in the EOI-exit bitmap), and the last EOI is a level one (its TMR bit).
    The vector engine used to clear the TMR and count differently."""
    def prep(host, vm):
        for v in (0x41, 0x42):
            m = msi.encode(dest_id=0, vector=v, trigger_level=True)
            vm.kvm_signal_msi(m.address_lo, m.address_hi, m.data)
    make = lambda: nic_host([dict(dest_id=0, vector=0x41), dict(dest_id=0, vector=0x43)], posted=True,  # noqa
                            modes=(mode, mode), prep=prep)
    t, ids = dense(2, n=800)
    h1, _, a = agree(make, t, ids, chunk)
    lap = h1.vms[0].vcpus[0].lapic
    assert 0x41 in lap.tmr and 0x42 in lap.tmr and "EOI" not in a.counters.get(("vcpu", 1, 0), {}).get("exits", {})


def test_a_stale_tmr_vector_that_also_comes_through_kvm_is_refused():
    """The vector engine does not follow one vector's TMR bit being set (earlier level MSI), kept (VT-d posting)
    and cleared (an edge __apic_accept_irq) within one storm: Unsupported, naming the TMR."""
    def prep(host, vm):
        m = msi.encode(dest_id=0, vector=0x41, trigger_level=True)
        vm.kvm_signal_msi(m.address_lo, m.address_hi, m.data)
    h = nic_host([dict(dest_id=0, vector=0x41)], posted=True, prep=prep)
    vm = h.vms[0]
    h.add_pci_device("0000:02:00.0", name="other", intx_pin=1, msix=1)
    irqlab.scenarios.passthrough_msix(h, vm, "0000:02:00.0", 1, first_gsi=41, first_vector=0x41)
    vm.kvm_set_gsi_routing([e for e in vm.routing.all() if e.gsi != 41] + [route(41, dest=0xFF, vector=0x41)])
    s = storm.from_arrays(np.array([h.now + 10, h.now + 20]), np.array([0, 1], np.uint16),
                          [storm.Source("msi", NIC, 0), storm.Source("msi", "0000:02:00.0", 0)])
    with pytest.raises(storm.Unsupported, match="TMR"):
        storm.run(h, s, "vector", progress=False)


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("mode", ["running", "halted"])
def test_engines_agree_without_apicv_with_several_vectors_pending(mode, chunk):
    """Without APICv, x86.c kvm_check_and_inject_events injects one vector per entry and asks for an interrupt
    window (vmx_enable_irq_window → EXIT_REASON_INTERRUPT_WINDOW → handle_interrupt_window) for the next. The
    model's simplification (docs/model-time.md): every vector pending at an entry is taken at that entry, highest
    first, with no INTERRUPT_WINDOW exit. Both engines follow it, with several vectors per vCPU pending at once."""
    routes = [dict(dest_id=i % 2, vector=v) for i, v in enumerate((0x41, 0x52, 0x63, 0x74, 0x45, 0x56))]
    make = lambda: nic_host(routes, modes=(mode, mode))  # noqa: E731
    t, ids = dense(len(routes), n=3000, span=400_000)
    h1, _, a = agree(make, t, ids, chunk)
    v0 = h1.vms[0].vcpus[0]
    assert sum(v0.delivered.values()) > v0.entries and "INTERRUPT_WINDOW" not in v0.exits
    assert v0.exits["EOI"] == sum(v0.delivered.values())


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("apicv", [False, True])
def test_engines_agree_on_extint_illegal_lowest_startup_and_the_rtc_pin(apicv, chunk):
    """__apic_accept_irq's other cases in a storm: ExtINT (0, clears last_accept_coalesced), a vector below 16
    (refused at the LAPIC, ESR), APIC_DM_LOWEST (apic_arb_prio), APIC_DM_STARTUP (sipi_vector), and a vector
    that the RTC's pin 8 also carries (in ioapic_handled_vectors: an EOI exit even with APICv)."""
    routes = [dict(dest_id=0, vector=0x41), dict(dest_id=0, vector=0x30, delivery_mode=7),
              dict(dest_id=1, vector=7), dict(dest_id=0b11, vector=0x45, dest_mode_logical=True, delivery_mode=1),
              dict(dest_id=1, vector=0x9A, delivery_mode=6), dict(dest_id=0xFF, vector=9),
              dict(dest_id=1, vector=0x42)]

    def prep(host, vm):
        vm.ioapic.write_redirtbl(8, vector=0x42, dest_id=1, trigger_level=False)
    make = lambda: nic_host(routes, apicv=apicv, prep=prep)  # noqa: E731
    t, ids = dense(len(routes), n=1200)
    h1, _, a = agree(make, t, ids, chunk)
    v0, v1 = h1.vms[0].vcpus
    assert v1.lapic.esr and v1.lapic.sipi_vector == 0x9A and v0.lapic.apic_arb_prio + v1.lapic.apic_arb_prio > 0
    assert v1.exits["EOI"] == v1.delivered[0x42] + (0 if apicv else v1.delivered[0x45])


@pytest.mark.parametrize("chunk", [1, 64])
def test_engines_agree_after_an_extint_last(chunk):
    """The last accept on a vCPU is an ExtINT after a coalesced Fixed one: last_accept_coalesced ends clear in
    both engines (the vector engine used to leave it set)."""
    make = lambda: nic_host([dict(dest_id=0, vector=0x41), dict(dest_id=0, vector=0x30, delivery_mode=7)])  # noqa
    t = np.array([1000, 1010, 6000], np.int64)  # the second Fixed one waits on its CPU (exit + handler) till 3,167 ns
    ids = np.array([0, 0, 1], np.uint16)
    h1, _, _ = agree(make, t, ids, chunk, again=False)
    assert not h1.vms[0].vcpus[0].lapic.last_accept_coalesced


@pytest.mark.parametrize("what,match", [
    ("level_pin_vector", "level-triggered IOAPIC pin"),
    ("notifier", "ack notifier"),
])
def test_what_the_vector_engine_refuses_it_names(what, match):
    def prep(host, vm):
        if what == "level_pin_vector":
            vm.ioapic.write_redirtbl(17, vector=0x41, dest_id=0, trigger_level=True)
        else:
            vm.kvm_set_gsi_routing(vm.routing.all() + [irqlab.irqchip_route(30, irqlab.KVM_IRQCHIP_IOAPIC, 5)])
            vm.kvm_irqfd(Eventfd(), 30, KVM_IRQFD_FLAG_RESAMPLE, resamplefd=Eventfd())
            vm.ioapic.write_redirtbl(5, vector=0x41, dest_id=0, trigger_level=False)
    h = nic_host([dict(dest_id=0, vector=0x41)], apicv=True, prep=prep)
    s = storm.from_arrays(np.array([h.now + 10]), np.array([0], np.uint16), storm.sources(h)[:1])
    with pytest.raises(storm.Unsupported, match=match):
        storm.run(h, s, "vector", progress=False)
    storm.run(h, s, "reference", progress=False)


ROUTE_KINDS = {
    "fixed": lambda d, v: dict(dest_id=d, vector=v),
    "nodest": lambda d, v: dict(dest_id=9, vector=v),
    "broadcast": lambda d, v: dict(dest_id=0xFF, vector=v),
    "lowest": lambda d, v: dict(dest_id=0b11, vector=v, dest_mode_logical=True, delivery_mode=1),
    "rh": lambda d, v: dict(dest_id=0b11, vector=v, dest_mode_logical=True, redirection_hint=True),
    "extint": lambda d, v: dict(dest_id=d, vector=v, delivery_mode=7),
    "startup": lambda d, v: dict(dest_id=d, vector=v, delivery_mode=6),
    "nmi": lambda d, v: dict(dest_id=d, vector=2, delivery_mode=4),
    "illegal": lambda d, v: dict(dest_id=d, vector=v & 0xF),
    "odd_base": lambda d, v: dict(dest_id=d, vector=v, base=0xFED),
}


#: IRQLAB_STORM_EXAMPLES=N hunts with N times as many fresh draws (as tests/test_storm_equivalence.py does)
SCALE = float(os.environ.get("IRQLAB_STORM_EXAMPLES", "1"))


@settings(max_examples=int(40 * SCALE), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(sorted(ROUTE_KINDS)), st.integers(0, 1),
                          st.sampled_from([0x31, 0x3E, 0x41, 0x42, 0x51, 0xE1])), min_size=1, max_size=5),
       st.sampled_from(["plain", "apicv", "posted"]), st.tuples(st.sampled_from(["running", "halted"]),
                                                                 st.sampled_from(["running", "halted"])),
       st.tuples(st.sampled_from([0, 0, 0x30, 0x41, 0x50]), st.sampled_from([0, 0x3F, 0x45])),
       st.lists(st.sampled_from([0x31, 0x41, 0x42, 0x51]), max_size=2), st.booleans(),
       st.integers(1, 600), st.sampled_from([5_000, 300_000, 50_000_000]), st.sampled_from([1, 2, 5, 64, 1 << 21]),
       st.integers(0, 2**31), st.sampled_from([None, 0, 0x3F]))
def test_engines_agree_on_random_kvm_hosts(routes, kind, modes, tprs, level_first, rtc, n, span, chunk, seed,
                                           tpr_after):
    """Random mixes of the rules above (delivery modes, destinations nobody has, broadcasts through irqfd work,
    addresses outside 0xFEExxxxx,
    TPRs that block some vectors, level MSIs that leave TMR bits before posted ones, the RTC pin's vector, with or
    without APICv and VT-d posting, running or halted vCPUs; the TPR lowered between two storms, delivering what
    waited): the vector engine equals the replay or refuses with Unsupported, in chunks down to one interrupt."""
    specs = [ROUTE_KINDS[k](d, v) for k, d, v in routes]

    def prep(host, vm):
        for v in level_first:
            m = msi.encode(dest_id=0, vector=v, trigger_level=True)
            vm.kvm_signal_msi(m.address_lo, m.address_hi, m.data)
        if rtc:
            vm.ioapic.write_redirtbl(8, vector=0x41, dest_id=0, trigger_level=False)
    make = lambda: nic_host(specs, apicv=kind == "apicv", posted=kind == "posted", modes=modes, tprs=tprs,  # noqa
                            prep=prep)
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, span, n)).astype(np.int64)
    ids = rng.integers(0, len(specs), n).astype(np.uint16)
    between = None if tpr_after is None else (lambda h: [v.set_tpr(tpr_after) for v in h.vms[0].vcpus])
    try:
        agree(make, t, ids, chunk, between=between)
    except storm.Unsupported as e:
        assert "TMR" in str(e) or "level-triggered" in str(e), e
