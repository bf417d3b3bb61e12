"""KVM GSI routing and the in-kernel IOAPIC, from virt/kvm/kvm_main.c (KVM_SET_GSI_ROUTING),
virt/kvm/irqchip.c (kvm_set_irq_routing, setup_routing_entry, kvm_set_irq), arch/x86/kvm/irq.c
(kvm_set_routing_entry, kvm_msi_route_invalid, kvm_setup_default_irq_routing) and arch/x86/kvm/ioapic.c
(ioapic_set_irq, ioapic_service, kvm_ioapic_update_eoi_one). kernel-facts §7 and §9."""
import errno

import pytest

import irqlab
from helpers import err, route
from irqlab import (
    Eventfd, KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQ_ROUTING_MSI, KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER,
    KVM_IRQCHIP_PIC_SLAVE, KVM_MAX_IRQ_ROUTES, irqchip_route, msi, msi_route,
)
from irqlab.kvm.irqchip import RoutingEntry
from irqlab.uapi import KVM_IRQ_ROUTING_HV_SINT, KVM_IRQ_ROUTING_S390_ADAPTER, KVM_MSI_VALID_DEVID, KVM_USERSPACE_IRQ_SOURCE_ID

SRC = KVM_USERSPACE_IRQ_SOURCE_ID




def chips(vm, gsi):
    return sorted((e.irqchip, e.pin) for e in vm.routing.entries(gsi))




# ------------------------------------------------------------------------------------------ default routing
def test_default_routing_is_pic_and_ioapic_for_0_15_and_ioapic_for_16_23(vm):
    """kvm_setup_default_irq_routing: ROUTING_ENTRY2 (IOAPIC + PIC) for GSIs 0-15, IOAPIC alone for 16-23."""
    for gsi in range(16):
        pic = KVM_IRQCHIP_PIC_MASTER if gsi < 8 else KVM_IRQCHIP_PIC_SLAVE
        assert chips(vm, gsi) == sorted([(pic, gsi % 8), (KVM_IRQCHIP_IOAPIC, gsi)])
    for gsi in range(16, 24):
        assert chips(vm, gsi) == [(KVM_IRQCHIP_IOAPIC, gsi)]
    assert vm.routing.entries(24) == [] and len(vm.routing) == 16 * 2 + 8
    assert all(e.type == KVM_IRQ_ROUTING_IRQCHIP and e.flags == 0 for e in vm.routing.all())


def test_split_irqchip_starts_with_an_empty_table(host):
    """KVM_CAP_SPLIT_IRQCHIP → kvm_setup_empty_irq_routing: no IOAPIC/PIC in the kernel, no routes."""
    assert host.create_vm(irqchip="split").routing.all() == []


# ------------------------------------------------------------------------------------------ replace
def test_set_gsi_routing_replaces_the_whole_table(vm):
    assert vm.kvm_set_gsi_routing([route(30), route(31, vector=0x42)]) == 0
    assert len(vm.routing) == 2 and vm.routing.entries(5) == [] and vm.routing.entries(20) == []
    vm.kvm_set_gsi_routing([irqchip_route(5, KVM_IRQCHIP_IOAPIC, 5)])
    assert vm.routing.entries(30) == [] and chips(vm, 5) == [(KVM_IRQCHIP_IOAPIC, 5)]


def test_nr_zero_is_valid_and_empties_the_table(vm):
    assert vm.kvm_set_gsi_routing([]) == 0
    assert len(vm.routing) == 0


def test_nr_4096_ok_4097_einval(vm):
    """nr > KVM_MAX_IRQ_ROUTES (4096) → -EINVAL; exactly 4096 is fine."""
    ok = [route(g) for g in range(KVM_MAX_IRQ_ROUTES)]
    assert vm.kvm_set_gsi_routing(ok) == 0 and len(vm.routing) == 4096
    before = vm.routing.all()
    assert err(vm.kvm_set_gsi_routing, ok + [irqchip_route(3, KVM_IRQCHIP_IOAPIC, 3)]) == errno.EINVAL
    assert vm.routing.all() == before


def test_gsi_limit(vm):
    assert vm.kvm_set_gsi_routing([route(KVM_MAX_IRQ_ROUTES - 1)]) == 0
    assert err(vm.kvm_set_gsi_routing, [route(KVM_MAX_IRQ_ROUTES)]) == errno.EINVAL


# ------------------------------------------------------------------------------------------ every -EINVAL
def _x2():
    return dict(x2apic_32bit_ids=True)


EINVAL_CASES = {
    "table flags != 0": ([route(24)], 1, {}),
    "table flags high bit": ([route(24)], 0x80000000, {}),
    "gsi >= 4096": ([route(4096)], 0, {}),
    "gsi >= 4096 after a good entry": ([route(24), route(5000)], 0, {}),
    "non-MSI entry flags": ([irqchip_route(1, KVM_IRQCHIP_IOAPIC, 1, flags=KVM_MSI_VALID_DEVID)], 0, {}),
    "MSI flags other than VALID_DEVID": ([RoutingEntry(24, KVM_IRQ_ROUTING_MSI, flags=2, address_lo=0xFEE00000)],
                                         0, {}),
    "PIC master pin 8": ([irqchip_route(1, KVM_IRQCHIP_PIC_MASTER, 8)], 0, {}),
    "PIC slave pin 8": ([irqchip_route(9, KVM_IRQCHIP_PIC_SLAVE, 8)], 0, {}),
    "IOAPIC pin 24": ([irqchip_route(1, KVM_IRQCHIP_IOAPIC, 24)], 0, {}),
    "irqchip 3": ([irqchip_route(1, 3, 0)], 0, {}),
    "same chip twice on a GSI": ([irqchip_route(1, KVM_IRQCHIP_IOAPIC, 1), irqchip_route(1, KVM_IRQCHIP_IOAPIC, 2)],
                                 0, {}),
    "same PIC twice on a GSI": ([irqchip_route(2, KVM_IRQCHIP_PIC_MASTER, 1),
                                 irqchip_route(2, KVM_IRQCHIP_PIC_MASTER, 2)], 0, {}),
    "MSI then IRQCHIP": ([route(24), irqchip_route(24, KVM_IRQCHIP_IOAPIC, 2)], 0, {}),
    "IRQCHIP then MSI": ([irqchip_route(24, KVM_IRQCHIP_IOAPIC, 2), route(24)], 0, {}),
    "two MSIs on a GSI": ([route(24), route(24, vector=0x50)], 0, {}),
    "S390 adapter route on x86": ([RoutingEntry(24, KVM_IRQ_ROUTING_S390_ADAPTER)], 0, {}),
    "unknown route type": ([RoutingEntry(24, 99)], 0, {}),
    "x2APIC 32-bit IDs, address_hi[7:0] != 0": ([msi_route(24, 0xFEE00000, 0x41, address_hi=0x101)], 0, _x2()),
}


@pytest.mark.parametrize("name", sorted(EINVAL_CASES))
def test_set_gsi_routing_einval_and_nothing_half_changed(host, name):
    entries, flags, kw = EINVAL_CASES[name]
    vm = host.create_vm(nvcpus=2, irqchip="full", **kw)
    vm.kvm_set_gsi_routing([route(40, vector=0x61)])
    efd = Eventfd()
    vm.kvm_irqfd(efd, 40)
    before, cached = vm.routing.all(), vm.irqfds[0].irq_entry
    assert err(vm.kvm_set_gsi_routing, entries, flags) == errno.EINVAL
    # the old table stays, and the irqfds keep the route they had
    assert vm.routing.all() == before and vm.irqfds[0].irq_entry is cached
    efd.signal()
    host.run()
    assert vm.vcpus[0].delivered[0x61] == 1


def test_irqchip_routes_under_a_split_irqchip_einval(host):
    split = host.create_vm(irqchip="split")
    for chip, pin in ((KVM_IRQCHIP_IOAPIC, 1), (KVM_IRQCHIP_PIC_MASTER, 1), (KVM_IRQCHIP_PIC_SLAVE, 1)):
        assert err(split.kvm_set_gsi_routing, [irqchip_route(1, chip, pin)]) == errno.EINVAL
    assert split.kvm_set_gsi_routing([route(24)]) == 0  # MSI routes are what a split irqchip is for
    assert err(split.kvm_set_gsi_routing, [route(25), irqchip_route(1, KVM_IRQCHIP_IOAPIC, 1)]) == errno.EINVAL
    assert [e.gsi for e in split.routing.all()] == [24]


def test_no_irqchip_einval_even_for_nr_zero(host):
    """kvm_arch_can_set_irq_routing() is irqchip_in_kernel(): checked before anything else."""
    none = host.create_vm(irqchip=None)
    assert err(none.kvm_set_gsi_routing, []) == errno.EINVAL
    assert err(none.kvm_set_gsi_routing, [route(24)]) == errno.EINVAL


def test_hyperv_sint_routes_are_not_modelled_rather_than_refused(vm):
    """kvm_set_routing_entry accepts KVM_IRQ_ROUTING_HV_SINT with CONFIG_KVM_HYPERV: EINVAL would be wrong."""
    before = vm.routing.all()
    with pytest.raises(NotImplementedError, match="HV_SINT"):
        vm.kvm_set_gsi_routing([RoutingEntry(24, KVM_IRQ_ROUTING_HV_SINT)])
    assert vm.routing.all() == before


def test_x2apic_32bit_ids_address_hi(host):
    """kvm_msi_route_invalid: only with the x2APIC API's 32-bit IDs does address_hi[7:0] matter; the
    upper 24 bits are destination ID bits 31:8 (x86_msi_msg_get_destid)."""
    x2 = host.create_vm(nvcpus=2, irqchip="split", x2apic_32bit_ids=True)
    assert x2.kvm_set_gsi_routing([msi_route(24, 0xFEE00000, 0x41, address_hi=0x100)]) == 0
    assert msi.decode(0xFEE01000, 0x41, 0x100, x2apic_32bit_ids=True).dest_id == 0x101
    plain = host.create_vm(nvcpus=2, irqchip="split")
    assert plain.kvm_set_gsi_routing([msi_route(24, 0xFEE00000, 0x41, address_hi=0xFF)]) == 0


def test_msi_valid_devid_flag_is_accepted(vm):
    e = RoutingEntry(24, KVM_IRQ_ROUTING_MSI, KVM_MSI_VALID_DEVID, address_lo=0xFEE00000, data=0x41, devid=0x100)
    assert vm.kvm_set_gsi_routing([e]) == 0


def test_several_irqchip_entries_per_gsi_on_different_chips(vm):
    """setup_routing_entry: one entry per irqchip on a GSI; PIC master, PIC slave and IOAPIC are three."""
    three = [irqchip_route(7, KVM_IRQCHIP_PIC_MASTER, 7), irqchip_route(7, KVM_IRQCHIP_PIC_SLAVE, 0),
             irqchip_route(7, KVM_IRQCHIP_IOAPIC, 7)]
    assert vm.kvm_set_gsi_routing(three) == 0
    assert len(vm.routing.entries(7)) == 3


def test_one_pin_may_serve_several_gsis(vm):
    vm.kvm_set_gsi_routing([irqchip_route(5, KVM_IRQCHIP_IOAPIC, 5), irqchip_route(40, KVM_IRQCHIP_IOAPIC, 5)])
    assert chips(vm, 5) == chips(vm, 40) == [(KVM_IRQCHIP_IOAPIC, 5)]


def test_routing_entry_fields_are_u32(vm):
    with pytest.raises(ValueError):
        RoutingEntry(-1, KVM_IRQ_ROUTING_MSI)
    with pytest.raises(TypeError):
        irqchip_route("1", KVM_IRQCHIP_IOAPIC, 1)
    with pytest.raises(TypeError):
        vm.kvm_set_gsi_routing([("gsi", 24)])


# ------------------------------------------------------------------------------------------ kvm_set_irq
def test_kvm_set_irq_no_route_is_ignored(vm):
    assert vm.kvm_set_irq(SRC, 100, 1, None) < 0


def test_kvm_set_irq_msi_counts_cpus(vm):
    vm.kvm_set_gsi_routing([route(24, dest=1), route(25, dest=0xFF, vector=0x51)])
    assert vm.kvm_set_irq(SRC, 24, 1, None) == 1
    assert vm.kvm_set_irq(SRC, 25, 1, None) == 2          # broadcast: both vCPUs
    assert vm.kvm_set_irq(SRC, 24, 0, None) < 0           # kvm_set_msi: "if (!level) return -1"


def test_kvm_set_irq_masked_ioapic_pin_is_ignored(vm):
    assert vm.ioapic.redirtbl[17].masked  # reset state: every pin masked
    assert vm.kvm_set_irq(SRC, 17, 1, None) < 0
    assert vm.kvm_set_irq(SRC, 17, 0, None) == 1          # de-assert: "ioapic->irr &= ~mask; ret = 1"


def test_kvm_set_irq_ignores_negative_entries_when_summing(vm):
    """kvm_set_irq: "if (r < 0) continue;": a masked IOAPIC entry adds nothing to the PIC's result."""
    vm.ioapic.write_redirtbl(3, vector=0x33, trigger_level=False, masked=True)
    assert vm.kvm_set_irq(SRC, 3, 1, None) == 1           # PIC: a rising edge (1); IOAPIC: masked (-1, skipped)


def test_kvm_set_irq_edge_ioapic_pin_delivers(host, vm):
    vm.ioapic.write_redirtbl(18, vector=0x38, dest_id=1, trigger_level=False)
    assert vm.kvm_set_irq(SRC, 18, 1, None) == 1
    assert vm.kvm_set_irq(SRC, 18, 0, None) == 1
    assert 0x38 in vm.vcpus[1].lapic.irr and 0x38 not in vm.vcpus[1].lapic.tmr


def test_kvm_set_irq_edge_held_by_another_source_is_coalesced(vm):
    """ioapic_set_irq: an edge pin whose IRR bit is already set (the line is held) returns 0."""
    vm.ioapic.write_redirtbl(18, vector=0x38, trigger_level=False, masked=True)
    assert vm.kvm_set_irq(1, 18, 1, None) < 0             # masked: the IRR bit stays while source 1 holds it
    assert vm.kvm_set_irq(SRC, 18, 1, None) == 0          # old_irr == irr: coalesced


def test_level_pin_remote_irr(host, vm):
    """A level pin sets remote IRR when delivered; while it is set the pin is not serviced again.
    Since "KVM: x86: ioapic: Remove redundant check for Remote IRR in ioapic_set_irq", that refusal
    comes from ioapic_service and is -1 (ignored), not 0. The EOI clears remote IRR and re-services
    the pin if it is still asserted (kvm_ioapic_update_eoi_one)."""
    vm.ioapic.write_redirtbl(17, vector=0x44, trigger_level=True)
    v0 = vm.vcpus[0]
    assert vm.kvm_set_irq(SRC, 17, 1, None) == 1
    red = vm.ioapic.redirtbl[17]
    assert red.remote_irr and 0x44 in v0.lapic.irr and 0x44 in v0.lapic.tmr
    assert vm.kvm_set_irq(SRC, 17, 1, None) == -1         # remote IRR: ioapic_service returns -1
    assert vm.ioapic.coalesced == 1
    # entry, guest handler, EOI, kvm_ioapic_update_eoi: still asserted at the EOI, so serviced again (a
    # level pin nobody de-asserts storms the guest forever, as in the kernel: step, do not run to the end)
    while v0.delivered[0x44] < 2:
        assert host.now < 10**8, "the EOI never re-serviced the still-asserted pin"
        host.run(until=host.now + 1_000)
    assert vm.kvm_set_irq(SRC, 17, 0, None) == 1
    host.run()
    assert not red.remote_irr and v0.delivered[0x44] == 2 and not v0.lapic.isr


def test_level_pin_coalesced_at_the_ioapic_in_the_ledger():
    """Through the whole path: a second INTx round while remote IRR is set ends coalesced_ioapic."""
    host = irqlab.scenarios.shared_intx()
    vm, bdf = host.scenario.vm, host.scenario.guest_bdf
    a = host.raise_intx(bdf)
    host.run(until=host.now + host.timing.irqfd_work_ns)      # injected: remote IRR set, ISR until the EOI
    assert vm.ioapic.redirtbl[16].remote_irr
    ev = host.new_event("test: vfio re-sends the trigger")
    host.scenario.eventfds[0].signal(ev)
    j = ev.journey
    host.run(until=host.now + host.timing.irqfd_work_ns)
    assert j.outcome == "coalesced_ioapic"
    host.run()
    assert a.outcome == "injected"
    host.ledger.check()


def test_ioapic_pins_are_per_source_wired_or(vm):
    """__kvm_irq_line_state: the pin is the OR of its sources; one source de-asserting keeps it up."""
    vm.ioapic.write_redirtbl(19, vector=0x39, trigger_level=True, masked=True)
    vm.kvm_set_irq(0, 19, 1, None)
    vm.kvm_set_irq(1, 19, 1, None)
    vm.kvm_set_irq(0, 19, 0, None)
    assert vm.ioapic.irr & (1 << 19)
    vm.kvm_set_irq(1, 19, 0, None)
    assert not vm.ioapic.irr & (1 << 19)


def test_gsi_0_15_reach_both_pic_and_ioapic(vm):
    vm.ioapic.write_redirtbl(4, vector=0x34, trigger_level=False)
    assert vm.kvm_set_irq(SRC, 4, 1, None) >= 1
    assert vm.pic.irq_states[4] & 1 and 0x34 in vm.vcpus[0].lapic.irr
