"""Bad input is refused before anything changes (issue 11, DESIGN principle 4).

A table walks the whole public surface — the Host's calls, Eventfd, VfioPciDevice, Vm and its vCPUs and IOAPIC,
irqlab.msi, the routing entries, Timing, the storm generators, storm.run, StormResult and irqlab.procfs — with
bad values for each parameter: wrong types, bools for ints, floats for ints, negatives, huge ints, NaN and
infinities, unknown names, closed eventfds, objects where a number or a name is expected, a time in the past.
Each call must raise TypeError, ValueError or irqlab.KernelError — never AttributeError, IndexError,
StopIteration, OverflowError, MemoryError... — and leave the host exactly as it was (its snapshot: every counter
and state a storm or a call can move, and its clock). Cases that still fail on main are marked with the defect
and the branch that fixes it (xfail, strict: the mark must go when the fix lands).
"""
from __future__ import annotations

import errno
import math
from types import SimpleNamespace

import numpy as np
import pytest

import irqlab
from irqlab import (
    Eventfd, IRQ_HANDLED, IRQ_NONE, IRQF_SHARED, KVM_IRQCHIP_IOAPIC, KVM_IRQFD_FLAG_RESAMPLE, KernelError, Timing,
    VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_ACTION_UNMASK, VFIO_IRQ_SET_DATA_EVENTFD, VFIO_IRQ_SET_DATA_NONE,
    VFIO_PCI_INTX_IRQ_INDEX, VFIO_PCI_MSIX_IRQ_INDEX, irqchip_route, msi, msi_route, procfs, scenarios, storm,
)
from irqlab.storm import Source
from irqlab.storm.result import snapshot

MSIX, INTX, NIC, DISK = "0000:01:00.0", "0000:04:00.0", "0000:00:19.0", "0000:02:00.0"
REFUSALS = (TypeError, ValueError, KernelError)


def handled(irq, dev_id):
    return IRQ_HANDLED


def world(with_result: bool = True):
    """A small host with one of every object the surface takes: IO-APIC lines (one with a host driver), a vfio
    MSI-X device with eventfds, routes and irqfds, a vfio INTx device resampled through a level pin, a VM with
    two vCPUs, a closed eventfd, and a storm result."""
    h = irqlab.Host(ncpus=2, trace=True)
    h.add_pci_device(NIC, name="eth0", intx_pin=1, gsi=16)
    h.bind_host_driver(NIC, "eth0", use_msi=False)
    h.add_pci_device(MSIX, name="card", intx_pin=1, gsi=19, msix=2)
    h.add_pci_device(INTX, name="legacy", intx_pin=1, gsi=17)
    vm = h.create_vm(nvcpus=2)
    vd = h.vfio_pci_bind(MSIX)
    efds = [Eventfd(name=f"e{i}") for i in range(4)]
    vd.set_irqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_MSIX_IRQ_INDEX, 0, 2, efds[:2])
    routes = [msi_route(24 + i, m.address_lo, m.data) for i, m in
              enumerate(msi.encode(dest_id=i, vector=0x41 + i) for i in range(2))]
    vm.kvm_set_gsi_routing(vm.routing.all() + routes)
    vm.kvm_irqfd(efds[0], 24)
    vi = h.vfio_pci_bind(INTX)
    vi.set_irqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [efds[2]])
    vi.set_irqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [efds[3]])
    vm.ioapic.write_redirtbl(20, vector=0x62, dest_id=1, trigger_level=True)
    vm.kvm_irqfd(efds[2], 20, KVM_IRQFD_FLAG_RESAMPLE, resamplefd=efds[3])
    h.alloc_irq(30, level=True)
    h.add_pci_device(DISK, name="nvme", intx_pin=0, msix=4)   # no driver yet
    closed = Eventfd(name="closed")
    closed.close()
    spare, full = Eventfd(name="spare"), Eventfd(5, name="full")
    s = storm.poisson(h, rate_hz=100_000, duration_ns=1_000_000, seed=1)
    res = storm.run(h, s, progress=False) if with_result else None
    h.run(until=max(h.now, 2_000_000))
    return SimpleNamespace(h=h, vm=vm, vd=vd, vi=vi, efds=efds, closed=closed, spare=spare, full=full, storm=s, res=res,
                           vcpu=vm.vcpus[0], ioapic=vm.ioapic)


# --------------------------------------------------------------------------------------------- bad values
NAN, INF = float("nan"), float("inf")
OBJ = object()
# bad values of each kind of parameter (what a learner might pass by mistake)
NOT_INT = [True, False, 1.0, 16.0, 1.5, NAN, INF, -INF, "1", b"1", [1], OBJ]       # where an int is due
NEG = [-1, -(2**70)]
HUGE = [2**64, 2**200]
INTS = NOT_INT + NEG + HUGE
MAYBE_INT = [x for x in INTS if x is not None]
BDFS = [None, 1, b"0000:01:00.0", "0000:1:00.0", "", "0000:99:00.0", "0000:01:00.0 ", OBJ]
STRS = [None, 5, b"x", ["x"], OBJ]
BOOLS = ["no", OBJ]   # where True/False is due: a str or an object would be true ("no" too)
TIMES = [True, 1.5, NAN, INF, "5", -1, OBJ]


def _bad_ids(v):
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    if v is OBJ:
        return "object()"
    r = repr(v)
    return r if len(r) < 24 else r[:20] + "..."


# (name, call(world, bad), bad values): each call puts the bad value in one parameter of one entry point
SURFACE = [
    # Host and its clock
    ("Host(ncpus)", lambda w, x: irqlab.Host(ncpus=x), INTS + [0, 65]),
    ("Host(timing)", lambda w, x: irqlab.Host(timing=x), [5, "fast", OBJ, {"host_irq_ns": 1}]),
    ("Host(nr_irqs)", lambda w, x: irqlab.Host(nr_irqs=x), INTS + [0]),
    ("Host(irqfixup)", lambda w, x: irqlab.Host(irqfixup=x), [3, -1, 1.0, "1", None]),
    ("Host(apicv)", lambda w, x: irqlab.Host(apicv=x), BOOLS),
    ("Host(posted_interrupts)", lambda w, x: irqlab.Host(apicv=True, posted_interrupts=x), BOOLS),
    ("Host(noirqdebug)", lambda w, x: irqlab.Host(noirqdebug=x), BOOLS),
    ("Host(trace)", lambda w, x: irqlab.Host(trace=x), BOOLS),
    ("host.run(until)", lambda w, x: w.h.run(until=x), TIMES + [0]),
    # genirq
    ("irq_to_desc(irq)", lambda w, x: w.h.irq_to_desc(x), INTS + [99999]),
    ("request_irq(irq)", lambda w, x: w.h.request_irq(x, handled, IRQF_SHARED, "toy", OBJ), INTS + [99999]),
    ("request_irq(handler)", lambda w, x: w.h.request_irq(16, x, IRQF_SHARED, "toy", OBJ), [5, "h", OBJ]),
    ("request_irq(flags)", lambda w, x: w.h.request_irq(16, handled, x, "toy", OBJ), INTS),
    ("request_irq(name)", lambda w, x: w.h.request_irq(16, handled, IRQF_SHARED, x, OBJ), STRS),
    ("request_threaded_irq(thread_fn)", lambda w, x: w.h.request_threaded_irq(30, None, x, 0, "t", OBJ), [5, "f"]),
    ("free_irq(irq)", lambda w, x: w.h.free_irq(x, w.h.devices[NIC].driver), INTS + [99999]),
    ("disable_irq(irq)", lambda w, x: w.h.disable_irq(x), INTS + [99999]),
    ("enable_irq(irq)", lambda w, x: w.h.enable_irq(x), INTS + [99999]),
    ("irq_set_affinity(irq)", lambda w, x: w.h.irq_set_affinity(x, 1), INTS + [99999]),
    # a CPU number or a cpumask (an iterable of CPU numbers): [1] is a good mask
    ("irq_set_affinity(cpu)", lambda w, x: w.h.irq_set_affinity(16, x),
     [x for x in INTS if x != [1]] + [2, 99, None, [], [99], ["1"], [1.0], [True]]),
    ("alloc_irq(irq)", lambda w, x: w.h.alloc_irq(x), [x for x in INTS if x is not None] + [16]),
    ("alloc_irq(cpu)", lambda w, x: w.h.alloc_irq(None, cpu=x), INTS + [2, 99]),
    ("alloc_irq(level)", lambda w, x: w.h.alloc_irq(None, level=x), BOOLS),
    ("alloc_irq(chip_name)", lambda w, x: w.h.alloc_irq(None, chip_name=x), [5, b"x", OBJ]),
    ("alloc_irq(hwirq)", lambda w, x: w.h.alloc_irq(None, hwirq=x), INTS),
    ("generic_handle_irq(irq)", lambda w, x: w.h.generic_handle_irq(x), INTS + [99999]),
    ("generic_handle_irq(cpu)", lambda w, x: w.h.generic_handle_irq(16, x), INTS + [2, None]),
    ("generic_handle_irq(at)", lambda w, x: w.h.generic_handle_irq(16, at=x), TIMES),
    ("raise_spurious(irq)", lambda w, x: w.h.raise_spurious(x), INTS + [99999]),
    ("raise_spurious(at)", lambda w, x: w.h.raise_spurious(16, at=x), TIMES),
    ("raise_msi(bdf)", lambda w, x: w.h.raise_msi(x, 0), BDFS),
    ("raise_msi(index)", lambda w, x: w.h.raise_msi(MSIX, x), INTS + [7]),
    ("raise_msi(at)", lambda w, x: w.h.raise_msi(MSIX, 0, at=x), TIMES),
    ("raise_intx(bdf)", lambda w, x: w.h.raise_intx(x), BDFS),
    ("raise_intx(at)", lambda w, x: w.h.raise_intx(INTX, at=x), TIMES),
    ("sys_kernel_irq(irq)", lambda w, x: w.h.sys_kernel_irq(x), INTS + [99999]),
    # devices and drivers
    ("add_pci_device(bdf)", lambda w, x: w.h.add_pci_device(x), BDFS[:5] + [MSIX]),
    ("add_pci_device(intx_pin)", lambda w, x: w.h.add_pci_device("0000:09:00.0", intx_pin=x), INTS + [5]),
    ("add_pci_device(gsi)", lambda w, x: w.h.add_pci_device("0000:09:00.0", gsi=x), INTS + [24]),
    ("add_pci_device(msi)", lambda w, x: w.h.add_pci_device("0000:09:00.0", msi=x), INTS + [3, 64]),
    ("add_pci_device(msix)", lambda w, x: w.h.add_pci_device("0000:09:00.0", msix=x), INTS + [2049]),
    ("add_pci_device(name)", lambda w, x: w.h.add_pci_device("0000:09:00.0", name=x), [5, b"x", OBJ]),
    ("add_pci_device(pci_2_3)", lambda w, x: w.h.add_pci_device("0000:09:00.0", pci_2_3=x), BOOLS),
    ("pci_dev(bdf)", lambda w, x: w.h.pci_dev(x), BDFS),
    ("bind_host_driver(bdf)", lambda w, x: w.h.bind_host_driver(x), BDFS),
    ("bind_host_driver(vectors)", lambda w, x: w.h.bind_host_driver(DISK, vectors=x), NOT_INT + NEG + [0]),
    ("vfio_pci_bind(bdf)", lambda w, x: w.h.vfio_pci_bind(x), BDFS),
    ("create_vm(nvcpus)", lambda w, x: w.h.create_vm(nvcpus=x), INTS + [0, 65]),
    ("create_vm(irqchip)", lambda w, x: w.h.create_vm(irqchip=x), ["fast", 1, True, OBJ]),
    ("create_vm(vcpu_mode)", lambda w, x: w.h.create_vm(vcpu_mode=x), ["sleeping", 1, None, OBJ]),
    ("create_vm(pcpus)", lambda w, x: w.h.create_vm(nvcpus=1, pcpus=x), [[5], [-1], [1.0], [True], 5, "0", [None]]),
    ("create_vm(apicv)", lambda w, x: w.h.create_vm(apicv=x), ["yes", 2, OBJ]),
    # eventfd
    ("Eventfd(initval)", lambda w, x: Eventfd(x), INTS + [2**32]),
    ("Eventfd(flags)", lambda w, x: Eventfd(0, x), INTS + [0x40]),
    ("Eventfd(name)", lambda w, x: Eventfd(0, 0, name=x), [5, b"x", OBJ]),
    ("eventfd.write(n)", lambda w, x: w.spare.write(x), INTS + [2**64 - 1, b"1234567"]),
    ("eventfd.read(size)", lambda w, x: w.full.read(x), NOT_INT + NEG + [7]),
    ("closed eventfd.write", lambda w, x: w.closed.write(x), [1]),
    ("closed eventfd.read", lambda w, x: w.closed.read(), [8]),
    # vfio
    ("get_irq_info(index)", lambda w, x: w.vd.get_irq_info(x), INTS + [5]),
    ("set_irqs(flags)", lambda w, x: w.vd.set_irqs(x, VFIO_PCI_MSIX_IRQ_INDEX, 0, 0), INTS + [0x1000]),
    ("set_irqs(index)", lambda w, x: w.vd.set_irqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, x, 0, 1),
     INTS + [7]),
    ("set_irqs(start)", lambda w, x: w.vd.set_irqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
                                                    VFIO_PCI_MSIX_IRQ_INDEX, x, 1, [w.spare]), INTS + [2]),
    ("set_irqs(count)", lambda w, x: w.vd.set_irqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
                                                    VFIO_PCI_MSIX_IRQ_INDEX, 0, x, [w.spare]), INTS + [3]),
    ("set_irqs(data)", lambda w, x: w.vd.set_irqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
                                                   VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, x),
     [None, 5, "e", [], ["e"], [5], [True], [1.0], [OBJ]]),
    ("set_irqs(closed eventfd)", lambda w, x: w.vd.set_irqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
                                                             VFIO_PCI_MSIX_IRQ_INDEX, 1, 1, [w.closed]), [0]),
    ("set_irqs(INTx unmask eventfd)", lambda w, x: w.vi.set_irqs(
        VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [x]),
     [None and 0 or "e", 3, True, OBJ]),
    # KVM
    ("kvm_set_gsi_routing(entries)", lambda w, x: w.vm.kvm_set_gsi_routing(x), [5, [5], ["gsi"], [None], [OBJ]]),
    ("kvm_set_gsi_routing(flags)", lambda w, x: w.vm.kvm_set_gsi_routing(w.vm.routing.all(), x), INTS),
    ("kvm_irqfd(fd)", lambda w, x: w.vm.kvm_irqfd(x, 25), [None, 3, -1, "e", OBJ, True]),
    ("kvm_irqfd(closed fd)", lambda w, x: w.vm.kvm_irqfd(w.closed, x), [25]),
    ("kvm_irqfd(gsi)", lambda w, x: w.vm.kvm_irqfd(w.spare, x), INTS + [2**32, 2**33]),
    ("kvm_irqfd(flags)", lambda w, x: w.vm.kvm_irqfd(w.spare, 25, x), INTS + [8]),
    ("kvm_irqfd(resamplefd)", lambda w, x: w.vm.kvm_irqfd(w.spare, 21, KVM_IRQFD_FLAG_RESAMPLE, resamplefd=x),
     [None, 3, "e", OBJ, True]),
    ("kvm_signal_msi(address_lo)", lambda w, x: w.vm.kvm_signal_msi(x, 0, 0x41), INTS + [2**32]),
    ("kvm_signal_msi(address_hi)", lambda w, x: w.vm.kvm_signal_msi(0xFEE00000, x, 0x41), INTS + [2**32]),
    ("kvm_signal_msi(data)", lambda w, x: w.vm.kvm_signal_msi(0xFEE00000, 0, x), INTS + [2**32]),
    ("kvm_signal_msi(flags)", lambda w, x: w.vm.kvm_signal_msi(0xFEE00000, 0, 0x41, x), INTS + [2]),
    ("vcpu.mode", lambda w, x: setattr(w.vcpu, "mode", x), ["sleeping", 1, None, True]),
    ("vcpu.set_tpr(tpr)", lambda w, x: w.vcpu.set_tpr(x), INTS + [256]),
    ("ioapic.write_redirtbl(pin)", lambda w, x: w.ioapic.write_redirtbl(x, vector=0x41), INTS + [24]),
    ("ioapic.write_redirtbl(vector)", lambda w, x: w.ioapic.write_redirtbl(5, vector=x), INTS + [15, 256]),
    ("ioapic.write_redirtbl(dest_id)", lambda w, x: w.ioapic.write_redirtbl(5, vector=0x41, dest_id=x),
     INTS + [256]),
    ("ioapic.write_redirtbl(delivery_mode)", lambda w, x: w.ioapic.write_redirtbl(5, vector=0x41, delivery_mode=x),
     INTS + [8, 9]),
    ("ioapic.write_redirtbl(trigger_level)", lambda w, x: w.ioapic.write_redirtbl(5, vector=0x41, trigger_level=x),
     BOOLS),
    ("ioapic.write_redirtbl(masked)", lambda w, x: w.ioapic.write_redirtbl(5, vector=0x41, masked=x), BOOLS),
    # msi and routing entries
    ("msi.encode(dest_id)", lambda w, x: msi.encode(dest_id=x, vector=0x41), INTS + [256]),
    ("msi.encode(vector)", lambda w, x: msi.encode(dest_id=0, vector=x), INTS + [256]),
    ("msi.encode(delivery_mode)", lambda w, x: msi.encode(dest_id=0, vector=0x41, delivery_mode=x),
     [x for x in INTS if not isinstance(x, str)] + [8, "smi2", "fixedd"]),
    ("msi.encode(dest_mode_logical)", lambda w, x: msi.encode(dest_id=0, vector=0x41, dest_mode_logical=x), BOOLS),
    ("msi.encode(trigger_level)", lambda w, x: msi.encode(dest_id=0, vector=0x41, trigger_level=x), BOOLS),
    ("msi.decode(address_lo)", lambda w, x: msi.decode(x, 0x41), INTS + [2**32]),
    ("msi.decode(data)", lambda w, x: msi.decode(0xFEE00000, x), INTS + [2**32]),
    ("msi_route(gsi)", lambda w, x: msi_route(x, 0xFEE00000, 0x41), INTS + [2**32]),
    ("msi_route(address_lo)", lambda w, x: msi_route(24, x, 0x41), INTS + [2**32]),
    ("irqchip_route(irqchip)", lambda w, x: irqchip_route(24, x, 3), INTS),
    ("irqchip_route(pin)", lambda w, x: irqchip_route(24, KVM_IRQCHIP_IOAPIC, x), INTS),
    ("Timing(host_irq_ns)", lambda w, x: Timing(host_irq_ns=x), TIMES),
    ("Timing(irqfd_work_ns)", lambda w, x: Timing(irqfd_work_ns=x), TIMES),
    # storms
    ("storm.sources(host)", lambda w, x: storm.sources(x), [None, 5, "host", OBJ]),
    ("Source(kind)", lambda w, x: Source(x), ["glitch", None, 5]),
    ("Source(index)", lambda w, x: Source("msi", MSIX, x), [x for x in INTS if x is not None] + [None]),
    ("Source(irq)", lambda w, x: Source("spurious", irq=x), [x for x in INTS if x is not None] + [None]),
    ("poisson(host)", lambda w, x: storm.poisson(x, rate_hz=1000, duration_ns=1000), [5, "host", OBJ]),
    ("poisson(rate_hz)", lambda w, x: storm.poisson(w.h, rate_hz=x, duration_ns=1000),
     [True, "1000", NAN, INF, -1, None, OBJ, [1, 2, 3]]),
    ("poisson(duration_ns)", lambda w, x: storm.poisson(w.h, rate_hz=1000, duration_ns=x), TIMES + [2**63]),
    ("poisson(start_ns)", lambda w, x: storm.poisson(w.h, rate_hz=1000, duration_ns=10, start_ns=x), TIMES),
    ("poisson(seed)", lambda w, x: storm.poisson(w.h, rate_hz=1000, duration_ns=10, seed=x), [-1, 1.5, "1", None]),
    ("poisson(slice_ns)", lambda w, x: storm.poisson(w.h, rate_hz=1000, duration_ns=10, lazy=True, slice_ns=x),
     TIMES + [0]),
    ("poisson(sources)", lambda w, x: storm.poisson(sources=x, rate_hz=1000, duration_ns=10),
     ["intx", [], [("glitch", 16)], [("msi", MSIX)], [5], Source("spurious", irq=16)]),
    ("bursts(on_ns)", lambda w, x: storm.bursts(w.h, rate_hz=1e6, on_ns=x, off_ns=1000, duration_ns=10**6),
     TIMES + [0]),
    ("bursts(off_ns)", lambda w, x: storm.bursts(w.h, rate_hz=1e6, on_ns=10, off_ns=x, duration_ns=10**6), TIMES),
    ("bursts(duration_ns)", lambda w, x: storm.bursts(w.h, rate_hz=1e6, on_ns=10, off_ns=10, duration_ns=x),
     TIMES + [10**12]),
    ("bursts(idle_rate_hz)", lambda w, x: storm.bursts(w.h, rate_hz=1e6, on_ns=10, off_ns=10, duration_ns=100,
                                                       idle_rate_hz=x), [True, "0", NAN, -1, None]),
    ("on_off(phases)", lambda w, x: storm.on_off(w.h, phases=x),
     [5, "p", [5], [(1,)], [(NAN, 1000)], [(-1, 1000)], [(10, "1")]]),
    ("mix(storms)", lambda w, x: storm.mix(x), [5, [], [5], [w for w in ()] or [None]]),
    ("from_arrays(times)", lambda w, x: storm.from_arrays(x, [0], [("spurious", 16)]),
     [[1.5], [-1], ["1"], [2**64], np.array([2**63], dtype=np.uint64), [[1]], 5]),
    ("from_arrays(source_ids)", lambda w, x: storm.from_arrays([1], x, [("spurious", 16)]),
     [[1], [-1], [0.0], ["0"], [0, 0], 5]),
    ("from_arrays(sources)", lambda w, x: storm.from_arrays([1], [0], x), [[], 5, "s", [5], None]),
    ("storm.run(host)", lambda w, x: storm.run(x, w.storm), [None, 5, "host", OBJ]),
    ("storm.run(storm)", lambda w, x: storm.run(w.h, x), [None, 5, [1, 2], OBJ]),
    ("storm.run(engine)", lambda w, x: storm.run(w.h, w.storm, x), ["fast", None, 1]),
    ("storm.run(chunk_events)", lambda w, x: storm.run(w.h, storm.poisson(w.h, rate_hz=1e5, duration_ns=1e6,
                                                                         start_ns=w.h.now), chunk_events=x),
     NOT_INT + NEG + [0]),
    ("storm.run(progress)", lambda w, x: storm.run(w.h, w.storm, progress=x), ["yes", 2, OBJ]),
    ("storm.run(a storm from the past)", lambda w, x: storm.run(w.h, storm.from_arrays([x], [0], [("spurious", 16)])),
     [0]),
    ("storm.run(a device the host lacks)", lambda w, x: storm.run(
        w.h, storm.from_arrays([w.h.now], [0], [x])), [("msi", "0000:09:00.0", 0), ("msi", MSIX, 7),
                                                        ("intx", "0000:09:00.0"), ("spurious", 99)]),
    ("result.rate(bin_ns)", lambda w, x: w.res.rate(x), [True, 1.5, NAN, 0, -1, "1", None]),
    ("result.latency_percentiles(qs)", lambda w, x: w.res.latency_percentiles(x), [5, "50", [101], [-1], [NAN], [None]]),
    ("result.diff(other)", lambda w, x: w.res.diff(x), [None, 5, OBJ]),
    ("result.equals(other)", lambda w, x: w.res.equals(x), [None, 5, OBJ]),
    # procfs
    ("parse_proc_interrupts(text)", lambda w, x: procfs.parse_proc_interrupts(x),
     [None, 5, b"CPU0\n", "", "garbage", "    CPU0\n  0: x\n", ["CPU0"]]),
    ("read_proc_interrupts(path)", lambda w, x: procfs.read_proc_interrupts(x), [5, OBJ]),
    # scenarios
    ("scenarios.msix_nic(queues)", lambda w, x: scenarios.msix_nic(x), INTS + [0]),
    ("scenarios.msix_nic(vcpu_mode)", lambda w, x: scenarios.msix_nic(1, vcpu_mode=x), ["sleeping", None, 1]),
    ("scenarios.shared_intx(timing)", lambda w, x: scenarios.shared_intx(timing=x), [5, "fast", OBJ]),
]

CASES = [pytest.param(name, call, bad, id=f"{name}={_bad_ids(bad)}") for name, call, bads in SURFACE for bad in bads]

#: refusals after which the kernel itself has changed state: drivers/vfio/pci/vfio_pci_intrs.c
#: vfio_msi_set_vector_signal frees a vector's old trigger (free_irq) before eventfd_ctx_fdget(fd) fails
KERNEL_CHANGES_FIRST = {"set_irqs(data)=[5]", "set_irqs(closed eventfd)=0"}

# Cases failing on main today: (entry point, bad values) -> the defect and the branch that fixes it. Strict:
# when a fix lands the case passes, the xfail fails, and its line must go.
KNOWN_BAD: dict = {}   # none left on main


def _mark(param):
    name, bad = param.id.split("=", 1)
    why, bads = KNOWN_BAD.get(name, (None, ()))
    if bad not in bads:
        return param
    return pytest.param(*param.values, id=param.id, marks=pytest.mark.xfail(strict=True, reason=why))


@pytest.mark.parametrize("name,call,bad", [_mark(c) for c in CASES])
def test_bad_input_is_refused_before_anything_changes(name, call, bad):
    w = world(name.startswith(("result.", "storm.run")))
    before, now = snapshot(w.h), w.h.now
    with pytest.raises(REFUSALS) as e:
        call(w, bad)
    if f"{name}={_bad_ids(bad)}" in KERNEL_CHANGES_FIRST and isinstance(e.value, KernelError):
        return
    after = snapshot(w.h)
    if after != before:
        k = next(k for k in sorted(set(before) | set(after), key=repr) if before.get(k) != after.get(k))
        raise AssertionError(f"{name} refused {bad!r} but changed {k}: {before.get(k)} -> {after.get(k)}")
    assert w.h.now == now, f"{name} refused {bad!r} but moved the clock"


# --------------------------------------------------------------------------------------------- issue 11's cases
def refused_or_harmless(h, call, then):
    """``call`` is refused (nothing changed) or accepted; if accepted, ``then`` (the next interrupts) raises
    nothing — no error ever comes out of the hard-IRQ path — and every interrupt ends in one outcome."""
    before = snapshot(h)
    try:
        call()
    except REFUSALS:
        assert snapshot(h) == before, "refused after changing the host"
        return "refused"
    then()
    h.run()
    h.ledger_check()
    assert not h.events_in_flight(), f"left in flight: {h.events_in_flight()} ({h.ledger.as_dict()})"
    return "accepted"


def test_irq_set_affinity_with_no_free_vector_is_enospc():
    h = irqlab.Host(ncpus=2)
    h.alloc_irq(16, level=True)
    with pytest.raises(KernelError):
        while True:
            h.alloc_irq(None, cpu=1)
    before = snapshot(h)
    with pytest.raises(KernelError) as e:
        h.irq_set_affinity(16, 1)
    assert e.value.errno == errno.ENOSPC and snapshot(h) == before


def test_nr_irqs_is_checked_and_a_line_beyond_it_grows_it():
    """issue 11's Host(nr_irqs=10) then a GSI 16 line: x86 preallocates the 16 legacy irqs (irqdesc.c
    early_irq_init), so nr_irqs < 16 is refused; an irq at or above nr_irqs grows it (irq_expand_nr_irqs,
    CONFIG_SPARSE_IRQ), and /proc/interrupts' first column widens with it."""
    with pytest.raises(ValueError, match="16"):
        irqlab.Host(ncpus=2, nr_irqs=10)
    h = irqlab.Host(ncpus=2, nr_irqs=16)
    h.add_pci_device("0000:01:00.0", intx_pin=1, gsi=16)
    h.bind_host_driver("0000:01:00.0", "eth0", use_msi=False)
    assert h.nr_irqs == 17 and procfs.parse_proc_interrupts(h.proc_interrupts()).row(16).actions == ["eth0"]


@pytest.mark.parametrize("ret", [None, "x", True, 7, -1])
def test_a_handler_returning_a_bogus_value_raises_nothing(ret):
    """kernel/irq/handle.c takes any irqreturn_t; spurious.c's bad_action_ret reports it ("bogus return value").
    Nothing may come out of the hard-IRQ path: the interrupt ends in one outcome."""
    h = irqlab.Host(ncpus=2)
    h.alloc_irq(16, level=True)
    h.request_irq(16, lambda irq, dev, r=ret: r, IRQF_SHARED, "bogus", OBJ)
    h.raise_spurious(16)
    h.generic_handle_irq(16, 1)
    h.run()
    h.ledger_check()
    assert not h.events_in_flight() and sum(h.ledger.counts) == 2


def _route(vm, gsi, address_lo, data):
    return vm.kvm_set_gsi_routing([e for e in vm.routing.all() if e.gsi != gsi] + [msi_route(gsi, address_lo, data)])


NOT_FEE = (msi.encode(dest_id=0, vector=0x41).address_lo & 0xFFFFF) | 0xFED00000


@pytest.mark.parametrize("make", [lambda: scenarios.msix_nic(1, trace=False),
                                  lambda: scenarios.posted_nic(1, trace=False)], ids=["msix", "posted"])
def test_an_msi_route_outside_0xfee(make):
    """arch/x86/kvm/irq.c kvm_msi_to_lapic_irq reads the address fields and never checks the 0xFEE base. With
    posting, KVM_SET_GSI_ROUTING must not fail after it replaced the table."""
    h = make()
    vm = h.scenario.vm
    assert refused_or_harmless(h, lambda: _route(vm, 24, NOT_FEE, 0x4041),
                               lambda: h.raise_msi("0000:01:00.0", 0)) in ("refused", "accepted")


@pytest.mark.parametrize("kw", [dict(dest_id=256), dict(delivery_mode=9)], ids=["dest_id=256", "delivery_mode=9"])
def test_an_ioapic_pin_programmed_with_out_of_range_fields(kw):
    h = scenarios.shared_intx(trace=False)
    io = h.scenario.vm.ioapic
    refused_or_harmless(h, lambda: io.write_redirtbl(16, vector=0x32, trigger_level=True, **{"dest_id": 0, **kw}),
                        lambda: h.raise_intx("0000:04:00.0"))


def test_a_tpr_that_is_not_an_int():
    h = scenarios.msix_nic(1, trace=False)
    v = h.scenario.vm.vcpus[0]
    assert refused_or_harmless(h, lambda: v.set_tpr(1.5), lambda: h.raise_msi("0000:01:00.0", 0)) == "refused"
