"""KVM GSI routing and the in-kernel IOAPIC, from virt/kvm/kvm_main.c (KVM_SET_GSI_ROUTING),
virt/kvm/irqchip.c (kvm_set_irq_routing, setup_routing_entry, kvm_set_irq), arch/x86/kvm/irq.c
(kvm_set_routing_entry, kvm_msi_route_invalid, kvm_setup_default_irq_routing) and arch/x86/kvm/ioapic.c
(ioapic_set_irq, ioapic_service, kvm_ioapic_update_eoi_one, ioapic_write_indirect)."""
import errno

import pytest

import irqlab
from helpers import err, route
from irqlab import (
    Eventfd, KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQ_ROUTING_MSI, KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER,
    KVM_IRQCHIP_PIC_SLAVE, KVM_MAX_IRQ_ROUTES, irqchip_route, msi, msi_route,
)
from irqlab.kvm.irqchip import RoutingEntry
from irqlab.uapi import (
    KVM_IRQ_ROUTING_HV_SINT, KVM_IRQ_ROUTING_S390_ADAPTER, KVM_IRQ_ROUTING_XEN_EVTCHN, KVM_MSI_VALID_DEVID,
    KVM_USERSPACE_IRQ_SOURCE_ID,
)

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
    """kvm_set_irq: "if (r < 0) continue;": the masked 8259 (-1) adds nothing to the IOAPIC's result, and
    when every entry refuses the result stays -1."""
    vm.ioapic.write_redirtbl(3, vector=0x33, dest_id=1, trigger_level=False)
    assert vm.kvm_set_irq(SRC, 3, 1, None) == 1           # IOAPIC: one CPU; PIC: masked (-1, skipped)
    vm.kvm_set_irq(SRC, 3, 0, None)
    vm.ioapic.write_redirtbl(3, vector=0x33, trigger_level=False, masked=True)
    assert vm.kvm_set_irq(SRC, 3, 1, None) == -1          # both refuse


def test_pic_set_irq1_edges_and_imr():
    """pic_set_irq1: 1, or 0 for an edge already pending in IRR; level inputs (ELCR) track the line;
    a masked input (IMR) returns -1 whatever happened inside."""
    pic = irqlab.kvm.irqchip.KvmPic()
    assert pic.set_irq(5, SRC, 1) == -1 and pic.irr & (1 << 5)   # a guest in APIC mode masks the 8259s
    pic.imr = 0
    assert pic.set_irq(5, SRC, 1) == 1                            # still high: no new edge
    assert pic.set_irq(5, SRC, 0) == 1 and pic.irr & (1 << 5)     # lowering keeps the IRR bit (edge mode)
    assert pic.set_irq(5, SRC, 1) == 0                            # a new edge while IRR holds one: coalesced
    pic.elcr = 1 << 9
    assert pic.set_irq(9, SRC, 1) == 1 and pic.set_irq(9, 1, 1) == 0  # level: already in IRR
    assert pic.set_irq(9, SRC, 0) == 0 and pic.set_irq(9, 1, 0) == 1 and not pic.irr & (1 << 9)


def test_kvm_set_irq_edge_ioapic_pin_delivers(host, vm):
    vm.ioapic.write_redirtbl(18, vector=0x38, dest_id=1, trigger_level=False)
    assert vm.kvm_set_irq(SRC, 18, 1, None) == 1
    assert vm.kvm_set_irq(SRC, 18, 0, None) == 1
    assert 0x38 in vm.vcpus[1].lapic.irr and 0x38 not in vm.vcpus[1].lapic.tmr


def test_kvm_set_irq_edge_held_by_another_source_is_coalesced(vm):
    """ioapic_set_irq: an edge pin whose IRR bit is already set (the line is held) returns 0: delivering an
    edge does not clear the bit; only lowering the line does."""
    vm.ioapic.write_redirtbl(18, vector=0x38, trigger_level=False)
    assert vm.kvm_set_irq(1, 18, 1, None) == 1            # source 1 raises and holds the line: delivered
    assert vm.ioapic.irr & (1 << 18)
    assert vm.kvm_set_irq(SRC, 18, 1, None) == 0          # old_irr == irr: coalesced
    assert vm.vcpus[0].lapic.irr == {0x38} and vm.ioapic.coalesced == 1
    vm.kvm_set_irq(1, 18, 0, None)
    vm.kvm_set_irq(SRC, 18, 0, None)
    assert vm.kvm_set_irq(SRC, 18, 1, None) == 1          # lowered, raised again: a new edge


def test_unmasking_loses_an_edge_but_services_a_level_pin(vm):
    """ioapic_write_indirect re-services only level pins; an edge that came while masked is not delivered."""
    vm.ioapic.write_redirtbl(18, vector=0x52, trigger_level=False, masked=True)
    vm.kvm_set_irq(1, 18, 1, None)
    vm.ioapic.write_redirtbl(18, vector=0x52, trigger_level=False)
    assert 0x52 not in vm.vcpus[0].lapic.irr
    vm.ioapic.write_redirtbl(19, vector=0x53, trigger_level=True, masked=True)
    vm.kvm_set_irq(1, 19, 1, None)
    vm.ioapic.write_redirtbl(19, vector=0x53, trigger_level=True)
    assert 0x53 in vm.vcpus[0].lapic.irr and vm.ioapic.redirtbl[19].remote_irr


def test_writing_an_edge_entry_clears_remote_irr(vm):
    """"Some OSes (Linux, Xen) assume that Remote IRR bit will be cleared ... when the entry is configured
    as edge-triggered" (ioapic_write_indirect)."""
    vm.ioapic.write_redirtbl(17, vector=0x44, trigger_level=True)
    vm.kvm_set_irq(SRC, 17, 1, None)
    assert vm.ioapic.redirtbl[17].remote_irr
    vm.ioapic.write_redirtbl(17, vector=0x44, trigger_level=False)
    assert not vm.ioapic.redirtbl[17].remote_irr


def test_remote_irr_follows_ioapic_services_ret(vm, monkeypatch):
    """ioapic_service: "if (ret && irqe.trig_mode == IOAPIC_LEVEL_TRIG)": -1 (the loop found nobody) sets
    remote IRR too, 0 (the fast path dropped it) does not."""
    vm.ioapic.write_redirtbl(17, vector=0x44, trigger_level=True)
    for ret, remote in ((0, False), (-1, True)):
        vm.ioapic.redirtbl[17].remote_irr = False
        monkeypatch.setattr(vm, "kvm_irq_delivery_to_apic", lambda msg, token, r=ret: r)
        assert vm.ioapic.ioapic_service(17, None) == ret and vm.ioapic.redirtbl[17].remote_irr is remote


def test_masked_level_pin_is_acked_and_released_at_the_eoi(host, vm):
    """kvm_ioapic_update_eoi_one runs for every pin with the vector, masked or not: the resampler hears the
    ack and remote IRR clears, so the pin works again once the guest unmasks it (Linux's fasteoi flow masks
    a disabled line, then EOIs)."""
    vm.kvm_set_gsi_routing([irqchip_route(17, KVM_IRQCHIP_IOAPIC, 17)])
    trig, res = Eventfd(), Eventfd()
    vm.kvm_irqfd(trig, 17, irqlab.KVM_IRQFD_FLAG_RESAMPLE, resamplefd=res)
    vm.ioapic.write_redirtbl(17, vector=0x44, trigger_level=True)
    trig.signal()
    host.run(until=host.now + host.timing.irqfd_work_ns)
    assert vm.ioapic.redirtbl[17].remote_irr
    vm.ioapic.write_redirtbl(17, vector=0x44, trigger_level=True, masked=True)
    vm.ioapic.kvm_ioapic_update_eoi(0x44)
    assert res.count == 1 and not vm.ioapic.redirtbl[17].remote_irr and not vm.ioapic.irr


def test_unmasking_an_asserted_level_pin_asks_the_resampler_first(host, vm):
    """ioapic_write_indirect: "Pending status in irr may be outdated": with a resampler the IRR bit is
    dropped and the resamplefd signalled (the device is asked again); without one the pin is serviced."""
    vm.kvm_set_gsi_routing([irqchip_route(17, KVM_IRQCHIP_IOAPIC, 17), irqchip_route(18, KVM_IRQCHIP_IOAPIC, 18)])
    trig, res = Eventfd(), Eventfd()
    vm.kvm_irqfd(trig, 17, irqlab.KVM_IRQFD_FLAG_RESAMPLE, resamplefd=res)
    for pin in (17, 18):
        vm.ioapic.write_redirtbl(pin, vector=0x40 + pin, trigger_level=True, masked=True)
        vm.kvm_set_irq(2, pin, 1, None)
        vm.ioapic.write_redirtbl(pin, vector=0x40 + pin, trigger_level=True)
    assert res.count == 1 and not vm.ioapic.irr & (1 << 17) and 0x51 not in vm.vcpus[0].lapic.irr
    assert 0x52 in vm.vcpus[0].lapic.irr and vm.ioapic.redirtbl[18].remote_irr


def test_ack_notifiers_reach_the_gsi_routed_last_to_the_pin(host, vm):
    """kvm_notify_acked_irq → kvm_irq_map_chip_pin: one GSI per pin, the last one set up for it."""
    vm.kvm_set_gsi_routing([irqchip_route(17, KVM_IRQCHIP_IOAPIC, 17), irqchip_route(30, KVM_IRQCHIP_IOAPIC, 17)])
    assert vm.routing.chip_pin(KVM_IRQCHIP_IOAPIC, 17) == 30 and vm.routing.chip_pin(KVM_IRQCHIP_IOAPIC, 3) == -1
    fds = {g: (Eventfd(), Eventfd()) for g in (17, 30)}
    for g, (trig, res) in fds.items():
        vm.kvm_irqfd(trig, g, irqlab.KVM_IRQFD_FLAG_RESAMPLE, resamplefd=res)
    vm.kvm_notify_acked_irq(KVM_IRQCHIP_IOAPIC, 17)
    assert fds[30][1].count == 1 and fds[17][1].count == 0


def test_eoi_storm_is_throttled_after_10000_reinjections(host, vm):
    """kvm_ioapic_update_eoi_one: a level pin nobody lowers is re-injected at every EOI; the 10,000th time
    in a row it waits HZ/100 (the delayed eoi_inject work): "lets a buggy guest make slow progress"."""
    from irqlab.kvm.irqchip import IOAPIC_SUCCESSIVE_IRQ_MAX_COUNT
    from irqlab.sched import HZ, NSEC_PER_JIFFY
    io, v0 = vm.ioapic, vm.vcpus[0]
    io.write_redirtbl(17, vector=0x44, trigger_level=True)
    vm.kvm_set_irq(SRC, 17, 1, None)                      # and never lowered: the guest storms
    while not io.eoi_inject.pending:
        assert host.now < 10**9, "no throttle"
        host.run(until=host.now + 50_000)
    assert v0.delivered[0x44] == IOAPIC_SUCCESSIVE_IRQ_MAX_COUNT and io.irq_eoi[17] == 0
    pause = HZ // 100 * NSEC_PER_JIFFY                    # 10 ms
    host.run(until=host.now + pause - 60_000)
    assert not io.redirtbl[17].remote_irr and v0.delivered[0x44] == IOAPIC_SUCCESSIVE_IRQ_MAX_COUNT
    host.run(until=host.now + 60_000)
    assert io.eoi_inject.runs == 1 and io.redirtbl[17].remote_irr  # kvm_ioapic_eoi_inject_work serviced it
    vm.kvm_set_irq(SRC, 17, 0, None)                      # the device finally lowers the line
    host.run()
    assert io.irq_eoi[17] == 0 and not io.redirtbl[17].remote_irr and not v0.lapic.isr


def test_hyperv_and_xen_routes_are_not_modelled_rather_than_refused(vm):
    """kvm_set_routing_entry accepts HV_SINT and XEN_EVTCHN with CONFIG_KVM_HYPERV / CONFIG_KVM_XEN."""
    before = vm.routing.all()
    for kind, name in ((KVM_IRQ_ROUTING_HV_SINT, "HV_SINT"), (KVM_IRQ_ROUTING_XEN_EVTCHN, "XEN_EVTCHN")):
        with pytest.raises(NotImplementedError, match=name):
            vm.kvm_set_gsi_routing([RoutingEntry(24, kind)])
    assert vm.routing.all() == before


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
    # level pin nobody de-asserts storms the guest, throttled only every 10,000 EOIs: step, do not run on)
    while v0.delivered[0x44] < 2:
        assert host.now < 10**8, "the EOI never re-serviced the still-asserted pin"
        host.run(until=host.now + 1_000)
    assert vm.kvm_set_irq(SRC, 17, 0, None) == 1
    host.run()
    assert not red.remote_irr and v0.delivered[0x44] == 2 and not v0.lapic.isr


def test_level_pin_coalesced_at_the_ioapic_in_the_ledger():
    """Through the whole path: a second INTx round while remote IRR is set ends coalesced_ioapic (the guest's
    handler outlasts the second inject work: remote IRR is cleared at its EOI)."""
    host = irqlab.scenarios.shared_intx(timing=irqlab.Timing(guest_handler_ns=10_000))
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


@pytest.mark.parametrize("kw,exc", [
    (dict(vector=0x44, dest_id=256), ValueError),          # the entry's destination is 8 bits
    (dict(vector=0x44, dest_id=-1), ValueError),
    (dict(vector=0x44, delivery_mode=9), ValueError),      # 3 bits
    (dict(vector=0x44, delivery_mode="fixed"), TypeError),
    (dict(vector=68.0), TypeError),
    (dict(vector=300), ValueError),
    (dict(vector=0x44, trigger_level="level"), TypeError),
    (dict(vector=0x44, masked=None), TypeError),
])
def test_write_redirtbl_refuses_bad_fields_before_writing(host, vm, kw, exc):
    """ioapic_write_indirect writes bit fields (dest_id 63:56, delivery_mode 10:8...): a value that does not fit
    is refused at the call and the entry is unchanged (dest_id=256 and delivery_mode=9 used to be stored and
    crash the next interrupt mid-dispatch, in ioapic_service's encode, leaving it in flight)."""
    vm.ioapic.write_redirtbl(17, vector=0x44, trigger_level=False)
    before = vars(vm.ioapic.redirtbl[17]).copy()
    with pytest.raises(exc):
        vm.ioapic.write_redirtbl(17, **kw)
    assert vars(vm.ioapic.redirtbl[17]) == before
    with pytest.raises((TypeError, ValueError)):
        vm.ioapic.write_redirtbl(24, vector=0x44)
    vm.kvm_set_irq(SRC, 17, 1, None)  # the pin still works
    assert 0x44 in vm.vcpus[0].lapic.irr


def test_every_ioapic_delivery_mode_reaches_apic_accept_irq(host, vm):
    """ioapic_service hands the entry's delivery mode to __apic_accept_irq as APIC_DM_* (<< 8): NMI is counted,
    ExtINT returns 0 (so kvm_set_irq reports 0), INIT/SMI/the reserved 3 and 6 are counted too."""
    lap = vm.vcpus[0].lapic
    for pin, (mode, count) in enumerate(((4, "nmi_count"), (2, "smi_count"), (5, "init_count"), (3, "remrd_count"),
                                         (6, "startup_count")), start=17):
        vm.ioapic.write_redirtbl(pin, vector=0x44, trigger_level=False, delivery_mode=mode)
        assert vm.kvm_set_irq(SRC, pin, 1, None) == 1 and getattr(lap, count) == 1, mode
    vm.ioapic.write_redirtbl(22, vector=0x45, trigger_level=False, delivery_mode=7)
    assert vm.kvm_set_irq(SRC, 22, 1, None) == 0 and not lap.irr


def test_edge_eoi_still_runs_the_pins_ack_notifier(host, vm):
    """ioapic.c kvm_ioapic_update_eoi_one calls kvm_notify_acked_irq *before* it looks at the trigger mode, and
    kvm_ioapic_scan_entry puts a pin with an ack notifier in ioapic_handled_vectors even when it is edge: the
    guest's EOI of an edge vector on a pin with a resampler de-asserts the GSI and signals the resamplefd; only
    a level EOI (TMR bit set) goes on to clear remote IRR."""
    trig, res = Eventfd(), Eventfd()
    vm.kvm_set_gsi_routing([irqchip_route(17, KVM_IRQCHIP_IOAPIC, 17)])
    vm.kvm_irqfd(trig, 17, irqlab.KVM_IRQFD_FLAG_RESAMPLE, resamplefd=res)
    vm.ioapic.write_redirtbl(17, vector=0x44, trigger_level=False)
    v0 = vm.vcpus[0]
    assert v0.kvm_ioapic_handles_vector(0x44) and 0x44 in v0.ioapic_handled_vectors()
    trig.signal()
    host.run()
    assert v0.delivered[0x44] == 1 and 0x44 not in v0.lapic.tmr
    assert res.count == 1 and vm.resamplers[17].acks == 1 and vm.ioapic.irq_states[17] == 0
    # the same notifier through kvm_ioapic_update_eoi directly: an edge EOI leaves remote IRR alone
    vm.ioapic.redirtbl[17].remote_irr = True
    vm.ioapic.kvm_ioapic_update_eoi(0x44, trigger_level=False)
    assert res.count == 2 and vm.ioapic.redirtbl[17].remote_irr
    vm.ioapic.kvm_ioapic_update_eoi(0x44, trigger_level=True)
    assert res.count == 3 and not vm.ioapic.redirtbl[17].remote_irr
