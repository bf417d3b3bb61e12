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
from irqlab.uapi import IRQ_HANDLED, IRQ_NONE

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
