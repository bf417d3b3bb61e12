"""KVM's half after the routing table (that is tests/test_irqchip.py): irqfd, MSI delivery, LAPIC entry
windows, posting (kernel-facts §6-§10)."""
import errno

import pytest

import irqlab
from helpers import err, route
from irqlab import Eventfd, KVM_IRQFD_FLAG_DEASSIGN, KVM_IRQFD_FLAG_RESAMPLE, msi, msi_route


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
