"""Ready-made machines for the course: the switchboard, a shared INTx line, an MSI-X NIC, posted interrupts.

Each builds a Host with the ioctls QEMU would issue (VFIO_DEVICE_SET_IRQS, KVM_SET_GSI_ROUTING, KVM_IRQFD),
and returns it with ``host.scenario``: the VM, the vfio devices, eventfds, GSIs and a one-line description.
Simplification: the guest's programming of MSI address/data and IOAPIC pins is done here directly.
"""
from __future__ import annotations

from types import SimpleNamespace

from .eventfd import Eventfd
from .host import Host
from .kvm import msi
from .kvm.irqchip import msi_route
from .timing import Timing
from .uapi import (
    KVM_IRQFD_FLAG_RESAMPLE, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_ACTION_UNMASK, VFIO_IRQ_SET_DATA_EVENTFD,
    VFIO_PCI_INTX_IRQ_INDEX, VFIO_PCI_MSI_IRQ_INDEX, VFIO_PCI_MSIX_IRQ_INDEX,
)

__all__ = ["switchboard", "shared_intx", "msix_nic", "posted_nic", "passthrough_msix", "tune_irq_affinity", "SCENARIOS"]

DISK, NIC, GPU = "0000:00:17.0", "0000:02:00.0", "0000:03:00.0"
GUEST_MSI_GSI = 24  # QEMU allocates MSI routes from GSI 24 up (after the 24 IOAPIC pins)


def passthrough_msix(host: Host, vm, bdf: str, nvec: int, *, first_gsi: int = GUEST_MSI_GSI,
                     first_vector: int = 0x41, msix: bool = True) -> SimpleNamespace:
    """What QEMU does for a passed-through MSI/MSI-X device: eventfds, SET_IRQS, routes, irqfds."""
    vdev = host.vfio_pci_bind(bdf)
    efds = [Eventfd(name=f"{bdf}-{'msix' if msix else 'msi'}{i}") for i in range(nvec)]
    index = VFIO_PCI_MSIX_IRQ_INDEX if msix else VFIO_PCI_MSI_IRQ_INDEX
    vdev.set_irqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, index, 0, nvec, efds)
    gsis = [first_gsi + i for i in range(nvec)]
    routes = []
    for i in range(nvec):
        m = msi.encode(dest_id=vm.vcpus[i % len(vm.vcpus)].apic_id, vector=first_vector + i)
        routes.append(msi_route(gsis[i], m.address_lo, m.data, m.address_hi))
    existing = [e for e in vm.routing.all() if e.gsi not in gsis]
    vm.kvm_set_gsi_routing(existing + routes)
    for efd, gsi in zip(efds, gsis):
        vm.kvm_irqfd(efd, gsi)
    return SimpleNamespace(vdev=vdev, eventfds=efds, gsis=gsis, routes=routes,
                           vectors=[first_vector + i for i in range(nvec)])


def tune_irq_affinity(host: Host) -> None:
    """What a tuned host does (``irqaffinity=`` on the command line, irqbalance's banned CPUs, or ``echo`` to
    /proc/irq/N/smp_affinity_list): every device interrupt goes to the CPUs that run no vCPU (irq_set_affinity)."""
    free = [c.id for c in host.cpus if not c.vcpus]
    for irq in sorted(host.genirq.descs):
        host.irq_set_affinity(irq, free)


def switchboard(*, timing: Timing | None = None, trace: bool = True, tuned: bool = True, apicv: bool = False,
                posted: bool = False) -> Host:
    """The operator answers every call: a disk and a NIC on host drivers, a GPU passed through to a 2-vCPU VM
    (vCPUs on CPUs 1 and 2; ``tuned``: every device interrupt on CPUs 0 and 3, else where the vector allocator
    put it)."""
    host = Host(ncpus=4, timing=timing, trace=trace, apicv=apicv or posted, posted_interrupts=posted)
    host.add_pci_device(DISK, name="ahci", intx_pin=1, msi=1)
    host.bind_host_driver(DISK, f"ahci[{DISK}]")
    host.add_pci_device(NIC, name="enp2s0", intx_pin=1, msix=4)
    host.bind_host_driver(NIC, "enp2s0", queue_fmt="{name}-TxRx-{i}")
    host.add_pci_device(GPU, name="gpu", intx_pin=1, msi=1)
    vm = host.create_vm(nvcpus=2, irqchip="full")
    pt = passthrough_msix(host, vm, GPU, 1, msix=False)
    if tuned:
        tune_irq_affinity(host)
    host.scenario = SimpleNamespace(name="switchboard", vm=vm, guest_bdf=GPU, host_bdfs=[DISK, NIC], **vars(pt),
                                    description="disk and NIC on host drivers; GPU (MSI) passed through to vm1")
    return host


def shared_intx(*, timing: Timing | None = None, trace: bool = True, pci_2_3: bool = True) -> Host:
    """A host NIC and a passed-through device share IO-APIC pin 16; vfio automasks, KVM resamples."""
    host = Host(ncpus=2, timing=timing, trace=trace)
    host.add_pci_device("0000:00:19.0", name="eth0", intx_pin=1, gsi=16)
    host.bind_host_driver("0000:00:19.0", "eth0", use_msi=False)
    bdf = "0000:04:00.0"
    host.add_pci_device(bdf, name="legacy-card", intx_pin=1, gsi=16, pci_2_3=pci_2_3)
    vm = host.create_vm(nvcpus=1, irqchip="full", pcpus=[1])
    vdev = host.vfio_pci_bind(bdf)
    trigger, unmask = Eventfd(name=f"{bdf}-intx"), Eventfd(name=f"{bdf}-resample")
    vdev.set_irqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [trigger])
    vdev.set_irqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [unmask])
    guest_gsi, vector = 16, 0x32
    vm.ioapic.write_redirtbl(guest_gsi, vector=vector, dest_id=0, trigger_level=True)
    vm.kvm_irqfd(trigger, guest_gsi, KVM_IRQFD_FLAG_RESAMPLE, resamplefd=unmask)
    host.scenario = SimpleNamespace(name="shared_intx", vm=vm, vdev=vdev, guest_bdf=bdf, host_bdfs=["0000:00:19.0"],
                                    eventfds=[trigger], resamplefd=unmask, gsis=[guest_gsi], vectors=[vector],
                                    host_irq=16, description="eth0 and a passed-through card share IRQ 16")
    return host


def msix_nic(queues: int = 4, *, timing: Timing | None = None, trace: bool = True, apicv: bool = False,
             posted: bool = False, nvcpus: int = 2, vcpu_mode: str = "running", tuned: bool = True) -> Host:
    """An MSI-X NIC with ``queues`` queues passed through; queue i targets vCPU i % nvcpus (``tuned``: the host
    irqs on the CPUs that run no vCPU)."""
    host = Host(ncpus=4, timing=timing, trace=trace, apicv=apicv or posted, posted_interrupts=posted)
    bdf = "0000:01:00.0"
    host.add_pci_device(bdf, name="nic", intx_pin=1, msix=max(queues, 1))
    vm = host.create_vm(nvcpus=nvcpus, irqchip="full", vcpu_mode=vcpu_mode)
    pt = passthrough_msix(host, vm, bdf, queues)
    if tuned:
        tune_irq_affinity(host)
    host.scenario = SimpleNamespace(name="posted_nic" if posted else "msix_nic", vm=vm, guest_bdf=bdf, host_bdfs=[],
                                    **vars(pt), description=f"{queues}-queue MSI-X NIC passed through"
                                    + (" with posted interrupts" if posted else ""))
    return host


def posted_nic(queues: int = 4, **kw) -> Host:
    """The MSI-X NIC with APICv and VT-d posted interrupts: the host's handler is bypassed."""
    return msix_nic(queues, posted=True, **kw)


SCENARIOS = {"switchboard": switchboard, "shared_intx": shared_intx, "msix_nic": msix_nic, "posted_nic": posted_nic}
