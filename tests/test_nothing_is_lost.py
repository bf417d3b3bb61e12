"""DESIGN principle 3: every interrupt raised ends in exactly one outcome, and the counts add up —
under random sequences of registrations, bindings, SET_IRQS, routing changes, irqfds, vCPU modes,
time and interrupts."""
from hypothesis import HealthCheck, given, settings, strategies as st

import irqlab
from irqlab import (
    Eventfd, IRQF_SHARED, KVM_IRQFD_FLAG_DEASSIGN, KVM_IRQFD_FLAG_RESAMPLE, KernelError, Outcome,
    VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_ACTION_UNMASK, VFIO_IRQ_SET_DATA_EVENTFD, VFIO_IRQ_SET_DATA_NONE,
    VFIO_PCI_INTX_IRQ_INDEX, VFIO_PCI_MSIX_IRQ_INDEX, msi, msi_route,
)
from irqlab.uapi import IRQ_HANDLED, IRQ_NONE, VFIO_PCI_INTX_IRQ_INDEX as _I  # noqa: F401

BDFS = ["0000:01:00.0", "0000:02:00.0", "0000:03:00.0"]

op = st.one_of(
    st.tuples(st.just("msi"), st.integers(0, 2), st.integers(0, 3)),
    st.tuples(st.just("intx"), st.integers(0, 2)),
    st.tuples(st.just("glitch"), st.sampled_from([16, 17])),
    st.tuples(st.just("advance"), st.integers(0, 20_000)),
    st.tuples(st.just("bind_vfio"), st.integers(0, 2)),
    st.tuples(st.just("bind_host"), st.integers(0, 2)),
    st.tuples(st.just("msix_on"), st.integers(0, 2), st.integers(1, 4)),
    st.tuples(st.just("intx_on"), st.integers(0, 2)),
    st.tuples(st.just("disable_index"), st.integers(0, 2)),
    st.tuples(st.just("irqfd"), st.integers(0, 5), st.integers(24, 29)),
    st.tuples(st.just("unirqfd"), st.integers(0, 5), st.integers(24, 29)),
    st.tuples(st.just("route"), st.integers(24, 29), st.integers(0, 1), st.integers(0x30, 0xEF),
              st.booleans()),
    st.tuples(st.just("request"), st.sampled_from([16, 17]), st.booleans(), st.booleans()),
    st.tuples(st.just("free"), st.sampled_from([16, 17])),
    st.tuples(st.just("disable"), st.sampled_from([16, 17])),
    st.tuples(st.just("enable"), st.sampled_from([16, 17])),
    st.tuples(st.just("mode"), st.integers(0, 1), st.sampled_from(["running", "halted"])),
    st.tuples(st.just("unmask"), st.integers(0, 2)),
)


def held_legitimately(host):
    """Interrupts still in flight after host.run(): held in a masked device's status bit."""
    return sum(1 for ev in host.events_in_flight()
               if ev.device is not None and ev.device.intx_status_event is ev and ev.device.disintx)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, max_size=45), st.booleans(), st.booleans())
def test_ledger_adds_up_under_random_sequences(ops, apicv, posted):
    host = irqlab.Host(ncpus=2, apicv=apicv or posted, posted_interrupts=posted, trace=False)
    for i, bdf in enumerate(BDFS):
        host.add_pci_device(bdf, intx_pin=1, gsi=16 + (i % 2), msix=4)
    vm = host.create_vm(nvcpus=2)
    efds = [Eventfd() for _ in range(6)]
    vdevs, own = {}, []
    for o in ops:
        kind = o[0]
        try:
            if kind == "msi":
                if host.devices[BDFS[o[1]]].vector(o[2]) is not None:
                    host.raise_msi(BDFS[o[1]], o[2])
            elif kind == "intx":
                host.raise_intx(BDFS[o[1]])
            elif kind == "glitch":
                host.raise_spurious(o[1])
            elif kind == "advance":
                host.run(until=host.now + o[1])
            elif kind == "bind_vfio":
                vdevs[o[1]] = host.vfio_pci_bind(BDFS[o[1]])
            elif kind == "bind_host":
                dev = host.devices[BDFS[o[1]]]
                if dev.driver is None:
                    host.bind_host_driver(BDFS[o[1]], f"drv{o[1]}", use_msi=o[1] == 0)
            elif kind == "msix_on" and o[1] in vdevs:
                vdevs[o[1]].set_irqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
                                     VFIO_PCI_MSIX_IRQ_INDEX, 0, o[2], [efds[(o[1] * 2 + k) % 6] for k in range(o[2])])
            elif kind == "intx_on" and o[1] in vdevs:
                vdevs[o[1]].set_irqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
                                     VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [efds[o[1]]])
                vdevs[o[1]].set_irqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK,
                                     VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [efds[5 - o[1]]])
            elif kind == "disable_index" and o[1] in vdevs:
                idx = vdevs[o[1]].irq_type
                if idx >= 0:
                    vdevs[o[1]].set_irqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, idx, 0, 0)
            elif kind == "irqfd":
                vm.kvm_irqfd(efds[o[1]], o[2], KVM_IRQFD_FLAG_RESAMPLE if o[2] == 29 else 0,
                             resamplefd=Eventfd() if o[2] == 29 else None)
            elif kind == "unirqfd":
                vm.kvm_irqfd(efds[o[1]], o[2], KVM_IRQFD_FLAG_DEASSIGN)
            elif kind == "route":
                m = msi.encode(dest_id=o[2], vector=o[3])
                keep = [e for e in vm.routing.all() if e.gsi != o[1]]
                vm.kvm_set_gsi_routing(keep + ([msi_route(o[1], m.address_lo, m.data)] if o[4] else []))
            elif kind == "request":
                h = (lambda i, d: IRQ_HANDLED) if o[2] else (lambda i, d: IRQ_NONE)
                tag = object()
                host.request_irq(o[1], h, IRQF_SHARED if o[3] else 0, f"toy{len(own)}", tag)
                own.append((o[1], tag))
            elif kind == "free":
                for k, (irq, tag) in enumerate(own):
                    if irq == o[1]:
                        host.free_irq(irq, tag)
                        del own[k]
                        break
            elif kind == "disable":
                host.disable_irq(o[1])
            elif kind == "enable":
                host.enable_irq(o[1])
            elif kind == "mode":
                vm.vcpus[o[1]].mode = o[2]
            elif kind == "unmask" and o[1] in vdevs and vdevs[o[1]].irq_type == VFIO_PCI_INTX_IRQ_INDEX:
                vdevs[o[1]].dev.take_intx()
                vdevs[o[1]].set_irqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK,
                                     VFIO_PCI_INTX_IRQ_INDEX, 0, 1)
        except KernelError:
            pass
        host.ledger.check()
    host.run()
    host.ledger.check()
    assert sum(host.ledger.counts) == host.ledger.raised
    assert host.ledger.counts[Outcome.IN_FLIGHT] == held_legitimately(host)


# ------------------------------------------------------------------------------------------ issue 11's cases
import pytest  # noqa: E402

from irqlab import scenarios  # noqa: E402
from irqlab.uapi import VFIO_IRQ_SET_ACTION_MASK  # noqa: E402
from test_twin_fuzz import audit, endless_after  # noqa: E402  (the twin fuzzer's checks)


def watch(h, ns=60_000, step=250):
    """Run ``ns`` of model time in small steps, checking after each that every interrupt is held or settled
    once; then run dry: what is still in flight is held for ever, legitimately."""
    end = h.now + ns
    while h.now < end:
        h.run(until=h.now + step)
        audit(h, False, f"at {h.now:,} ns")
    with endless_after():   # an endless model says so after 100,000 callbacks, not 5 million
        h.run()
    audit(h, True, "run dry")


@pytest.mark.parametrize("which", ["msix trigger", "resamplefd"])
def test_a_closed_eventfd_still_held_by_vfio_or_kvm(which):
    """fs/eventfd.c: userspace's close drops its reference only; vfio and the irqfd hold their own, so the
    interrupt path never fails (eventfd_release wakes the waiters with EPOLLHUP)."""
    if which == "msix trigger":
        h = scenarios.msix_nic(1, trace=False)
        h.scenario.eventfds[0].close()
        h.raise_msi("0000:01:00.0", 0)
    else:
        h = scenarios.shared_intx(trace=False)
        h.scenario.resamplefd.close()
        h.raise_intx("0000:04:00.0")
    watch(h)


@pytest.mark.parametrize("mode", ["running", "halted"])
def test_a_posted_route_with_a_vector_below_16(mode):
    h = scenarios.posted_nic(1, trace=False, vcpu_mode=mode)
    vm = h.scenario.vm
    m = msi.encode(dest_id=0, vector=15)
    vm.kvm_set_gsi_routing([e for e in vm.routing.all() if e.gsi != 24] + [msi_route(24, m.address_lo, m.data)])
    h.raise_msi("0000:01:00.0", 0)
    watch(h)


def _resend_after(how):
    h = scenarios.shared_intx(trace=False)
    sc = h.scenario
    if how == "a level MSI's EOI on the same vector":   # its EOI runs the pin's ack notifier: vfio unmasks
        m = msi.encode(dest_id=0, vector=sc.vectors[0], trigger_level=True)
        sc.vm.kvm_signal_msi(m.address_lo, m.address_hi, m.data)
        t = h.timing
        h.run(until=t.kick_ns + t.guest_handler_ns + t.resample_ns - 1)
    h.raise_intx(sc.guest_bdf)
    if how == "a resamplefd write":
        sc.resamplefd.write(1)
    elif how == "VFIO_IRQ_SET_ACTION_UNMASK":
        sc.vdev.set_irqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, VFIO_PCI_INTX_IRQ_INDEX, 0, 1)
    watch(h)
    return h


@pytest.mark.parametrize("how", ["a resamplefd write", "VFIO_IRQ_SET_ACTION_UNMASK",
                                 "a level MSI's EOI on the same vector"])
def test_an_unmask_does_not_resend_an_interrupt_already_downstream(how):
    """vfio unmasks while the INTx it signalled is on its way to the guest and the Status bit is still set: a
    re-assertion is a new hardware interrupt or none, never the same one carried twice."""
    h = _resend_after(how)
    assert h.ledger.counts[Outcome.INJECTED] == sum(h.scenario.vm.vcpus[0].delivered.values()) - \
        (how == "a level MSI's EOI on the same vector")


def test_an_intx_held_by_action_mask_survives_a_loopback():
    h = scenarios.shared_intx(trace=False)
    sc = h.scenario
    sc.vdev.set_irqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK, VFIO_PCI_INTX_IRQ_INDEX, 0, 1)
    h.raise_intx(sc.guest_bdf)
    sc.vdev.set_irqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_INTX_IRQ_INDEX, 0, 1)
    watch(h)


@pytest.mark.parametrize("how", ["free_irq of the last action", "vfio MSI-X disable frees the descriptor",
                                 "enable_irq of an edge line that held it masked at the chip"])
def test_a_pending_interrupt_is_not_forgotten(how):
    """kernel/irq/manage.c __free_irq → irq_shutdown keeps IRQS_PENDING (the next request_irq replays it);
    a descriptor freed with it drops it (an outcome, not a ledger line held by nobody); irq_startup's
    check_irq_resend retriggers what an edge line held."""
    h = irqlab.Host(ncpus=2, trace=False)
    if how == "free_irq of the last action":
        h.alloc_irq(16, level=False)
        tag = object()
        h.request_irq(16, lambda i, d: IRQ_HANDLED, 0, "toy", tag)
        h.disable_irq(16)
        h.raise_spurious(16)
        h.free_irq(16, tag)
    elif how == "vfio MSI-X disable frees the descriptor":
        h.add_pci_device(BDFS[0], msix=2)
        vd = h.vfio_pci_bind(BDFS[0])
        vd.set_irqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, [Eventfd()])
        h.disable_irq(h.devices[BDFS[0]].vectors[0].irq)
        h.raise_msi(BDFS[0], 0)
        vd.set_irqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_MSIX_IRQ_INDEX, 0, 0)
    else:
        h.alloc_irq(30)
        h.raise_spurious(30)
        h.enable_irq(30)
    watch(h)


def test_the_guest_services_the_device_behind_its_pin():
    """The vfio INTx trigger eventfd is also an MSI-X vector's trigger (SET_IRQS takes any eventfd). The guest's
    driver behind IOAPIC pin 16 still services the legacy card at its EOI; the model's guest_service looked
    the device up through the eventfd's last vfio owner, never cleared the card's Status bit, and the INTx
    stormed the guest for ever (run() refused an endless model)."""
    h = scenarios.shared_intx(trace=False)
    sc = h.scenario
    h.add_pci_device("0000:01:00.0", intx_pin=0, msix=1)
    h.vfio_pci_bind("0000:01:00.0").set_irqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
                                             VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, [sc.eventfds[0]])
    h.raise_intx(sc.guest_bdf)
    watch(h)
    assert h.ledger.as_dict() == {"injected": 1} and sc.vm.vcpus[0].delivered[sc.vectors[0]] == 1
