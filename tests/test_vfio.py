"""vfio-pci interrupt rules from vfio_main.c, vfio_pci_core.c, vfio_pci_intrs.c, virqfd.c (kernel-facts §5)."""
import errno

import pytest

import irqlab
from helpers import err
from irqlab import (
    Eventfd, IRQF_SHARED, KernelError, VFIO_IRQ_SET_ACTION_MASK, VFIO_IRQ_SET_ACTION_TRIGGER,
    VFIO_IRQ_SET_ACTION_UNMASK, VFIO_IRQ_SET_DATA_BOOL, VFIO_IRQ_SET_DATA_EVENTFD, VFIO_IRQ_SET_DATA_NONE,
    VFIO_PCI_ERR_IRQ_INDEX, VFIO_PCI_INTX_IRQ_INDEX, VFIO_PCI_MSI_IRQ_INDEX, VFIO_PCI_MSIX_IRQ_INDEX,
    VFIO_PCI_REQ_IRQ_INDEX,
)

EFD_TRIG = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER
BDF = "0000:05:00.0"


@pytest.fixture
def host():
    return irqlab.Host(ncpus=2)


@pytest.fixture
def vdev(host):
    host.add_pci_device(BDF, intx_pin=1, gsi=17, msi=4, msix=8)
    return host.vfio_pci_bind(BDF)


def test_get_irq_info(host, vdev):
    i = vdev.get_irq_info(VFIO_PCI_INTX_IRQ_INDEX)
    assert (i.flags, i.count) == (7, 1)
    assert (vdev.get_irq_info(VFIO_PCI_MSI_IRQ_INDEX).flags, vdev.get_irq_info(VFIO_PCI_MSI_IRQ_INDEX).count) == (9, 4)
    assert vdev.get_irq_info(VFIO_PCI_MSIX_IRQ_INDEX).count == 8
    assert vdev.get_irq_info(VFIO_PCI_MSIX_IRQ_INDEX).flags == 1  # dynamic MSI-X: no NORESIZE
    assert vdev.get_irq_info(VFIO_PCI_ERR_IRQ_INDEX).count == 1
    assert vdev.get_irq_info(VFIO_PCI_REQ_IRQ_INDEX).count == 1
    assert err(vdev.get_irq_info, 5) == errno.EINVAL
    host.add_pci_device("0000:06:00.0", intx_pin=0, pcie=False)
    v2 = host.vfio_pci_bind("0000:06:00.0")
    assert v2.get_irq_info(VFIO_PCI_INTX_IRQ_INDEX).count == 0
    assert err(v2.get_irq_info, VFIO_PCI_ERR_IRQ_INDEX) == errno.EINVAL


def test_set_irqs_validation(vdev):
    e = Eventfd()
    assert err(vdev.set_irqs, EFD_TRIG | 0x100, 0, 0, 1, [e]) == errno.EINVAL            # unknown flag
    assert err(vdev.set_irqs, EFD_TRIG, 5, 0, 1, [e]) == errno.EINVAL                    # index
    assert err(vdev.set_irqs, EFD_TRIG | VFIO_IRQ_SET_DATA_BOOL, 0, 0, 1, [e]) == errno.EINVAL  # two data types
    assert err(vdev.set_irqs, VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0, 1, [e]) == errno.EINVAL  # no data type
    assert err(vdev.set_irqs, EFD_TRIG, VFIO_PCI_MSIX_IRQ_INDEX, 8, 1, [e]) == errno.EINVAL  # start >= n
    assert err(vdev.set_irqs, EFD_TRIG, VFIO_PCI_MSIX_IRQ_INDEX, 6, 3, [e] * 3) == errno.EINVAL  # start+count > n
    assert err(vdev.set_irqs, EFD_TRIG, VFIO_PCI_MSIX_IRQ_INDEX, 0, 2, [e]) == errno.EINVAL  # short data
    assert err(vdev.set_irqs, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_ACTION_MASK,
               0, 0, 1) == errno.ENOTTY  # several actions
    assert err(vdev.set_irqs, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1) \
        == errno.ENOTTY  # no MSI masking
    with pytest.raises(TypeError):
        vdev.set_irqs("1", 0, 0, 1)
    with pytest.raises(TypeError):
        vdev.set_irqs(EFD_TRIG, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, ["fd"])
    assert err(vdev.set_irqs, EFD_TRIG, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, [7]) == errno.EBADF
    assert vdev.irq_type == -1 and not vdev.dev.vectors  # nothing half-changed


def test_msix_per_vector_eventfds_and_proc_names(host, vdev):
    efds = [Eventfd(), Eventfd()]
    assert vdev.set_irqs(EFD_TRIG, VFIO_PCI_MSIX_IRQ_INDEX, 0, 2, efds) == 0
    text = host.proc_interrupts()
    assert f"vfio-msix[0]({BDF})" in text and f"vfio-msix[1]({BDF})" in text
    assert f"IR-PCI-MSIX-{BDF}" in text
    j = host.raise_msi(BDF, 1)
    assert "vfio_msihandler" in j.functions() and "eventfd_signal" in j.functions()
    assert efds[1].count == 1 and j.outcome == "userspace"  # no irqfd yet: left for QEMU
    # fd -1 frees one vector's irq
    vdev.set_irqs(EFD_TRIG, VFIO_PCI_MSIX_IRQ_INDEX, 1, 1, [-1])
    assert f"vfio-msix[1]({BDF})" not in host.proc_interrupts()
    # loopback with DATA_NONE signals
    vdev.set_irqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1)
    assert efds[0].count == 1
    # count 0 + DATA_NONE disables the index
    vdev.set_irqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_MSIX_IRQ_INDEX, 0, 0)
    assert vdev.irq_type == -1 and "vfio-msix" not in host.proc_interrupts()


def test_msi_msix_exclusive_and_intx_exclusive(vdev):
    vdev.set_irqs(EFD_TRIG, VFIO_PCI_MSI_IRQ_INDEX, 0, 1, [Eventfd()])
    assert err(vdev.set_irqs, EFD_TRIG, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, [Eventfd()]) == errno.EINVAL
    assert err(vdev.set_irqs, EFD_TRIG, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [Eventfd()]) == errno.EINVAL


def test_block_error_unwinds(host, vdev):
    good = Eventfd()
    bad = Eventfd()
    bad.close()
    with pytest.raises(KernelError):
        vdev.set_irqs(EFD_TRIG, VFIO_PCI_MSIX_IRQ_INDEX, 0, 2, [good, bad])
    assert "vfio-msix" not in host.proc_interrupts()


def test_msi_enable_returns_available_count(host):
    host.add_pci_device("0000:07:00.0", intx_pin=1, msi=2)
    v = host.vfio_pci_bind("0000:07:00.0")
    # only 2 vectors exist: asking for 4 fails validation (start + count > n)
    assert err(v.set_irqs, EFD_TRIG, VFIO_PCI_MSI_IRQ_INDEX, 0, 4, [Eventfd()] * 4) == errno.EINVAL


def test_bind_unbinds_host_driver(host):
    host.add_pci_device("0000:08:00.0", intx_pin=1, msix=2)
    host.bind_host_driver("0000:08:00.0", "eth9")
    assert "eth9-q0" in host.proc_interrupts()
    host.vfio_pci_bind("0000:08:00.0")
    assert "eth9" not in host.proc_interrupts()
    assert err(host.vfio_pci_bind, "0000:08:00.0") == errno.EBUSY


@pytest.fixture
def intx(host):
    host.add_pci_device("0000:00:19.0", name="eth0", intx_pin=1, gsi=16)
    host.bind_host_driver("0000:00:19.0", "eth0", use_msi=False)
    host.add_pci_device(BDF, intx_pin=1, gsi=16)
    v = host.vfio_pci_bind(BDF)
    trig = Eventfd()
    v.set_irqs(EFD_TRIG, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [trig])
    return v, trig


def test_intx_shared_with_host_driver(host, intx):
    v, trig = intx
    desc = host.irq_to_desc(16)
    assert desc.action_names() == ["eth0", f"vfio-intx({BDF})"]
    assert desc.actions[1].flags & IRQF_SHARED
    # the host NIC's interrupt: eth0 claims it, vfio's status check says IRQ_NONE
    j = host.raise_intx("0000:00:19.0")
    assert j.outcome == "handled_host" and trig.count == 0
    assert v.handled["intx_none"] == 1
    # the passed-through card: automasked (INTx Disable), trigger signalled
    j = host.raise_intx(BDF)
    assert v.intx_masked and v.dev.disintx and trig.count == 1 and j.outcome == "userspace"
    # a second assertion while masked merges into the status bit
    j2 = host.raise_intx(BDF)
    assert j2.outcome == "masked" and trig.count == 1
    host.ledger.check()


def test_intx_unmask_resignals_when_device_still_asserts(host, intx):
    v, trig = intx
    host.raise_intx(BDF)
    assert trig.count == 1
    # the guest did not service the device: Status still set → stays masked, trigger re-sent
    v.set_irqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, VFIO_PCI_INTX_IRQ_INDEX, 0, 1)
    assert v.intx_masked and trig.count == 2
    v.dev.take_intx()  # serviced
    v.set_irqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, VFIO_PCI_INTX_IRQ_INDEX, 0, 1)
    assert not v.intx_masked and not v.dev.disintx


def test_intx_unmask_by_resample_eventfd(host, intx):
    v, trig = intx
    unmask = Eventfd()
    v.set_irqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [unmask])
    host.raise_intx(BDF)
    v.dev.take_intx()
    unmask.signal()  # what KVM's resampler does on the guest's EOI
    assert not v.intx_masked and unmask.count == 0  # virqfd consumed it


def test_intx_mask_ioctl_and_eventfd_mask_enotty(intx):
    v, _ = intx
    v.set_irqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK, VFIO_PCI_INTX_IRQ_INDEX, 0, 1)
    assert v.intx_masked and v.dev.disintx
    assert err(v.set_irqs, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_MASK, VFIO_PCI_INTX_IRQ_INDEX, 0, 1,
               [Eventfd()]) == errno.ENOTTY


def test_intx_disable_with_count_zero(host, intx):
    v, _ = intx
    v.set_irqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_INTX_IRQ_INDEX, 0, 0)
    assert host.irq_to_desc(16).action_names() == ["eth0"] and v.irq_type == -1


def test_intx_without_trigger(host):
    host.add_pci_device(BDF, intx_pin=1, gsi=18)
    v = host.vfio_pci_bind(BDF)
    v.set_irqs(EFD_TRIG, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [-1])  # enabled, no trigger
    j = host.raise_intx(BDF)
    assert j.outcome == "no_trigger" and v.intx_masked


def test_non_pci23_device_disables_the_line(host):
    host.add_pci_device(BDF, intx_pin=1, gsi=18, pci_2_3=False)
    v = host.vfio_pci_bind(BDF)
    trig = Eventfd()
    v.set_irqs(EFD_TRIG, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [trig])
    d = host.irq_to_desc(18)
    assert not d.actions[0].flags & IRQF_SHARED and d.unlazy
    host.raise_intx(BDF)
    assert d.disabled and d.masked and trig.count == 1  # disable_irq_nosync on an unlazy line masks it
    v.dev.take_intx()
    v.set_irqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, VFIO_PCI_INTX_IRQ_INDEX, 0, 1)
    assert not d.disabled


def test_err_and_req_triggers(vdev):
    e = Eventfd()
    vdev.set_irqs(EFD_TRIG, VFIO_PCI_ERR_IRQ_INDEX, 0, 1, [e])
    vdev.set_irqs(VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_ERR_IRQ_INDEX, 0, 1, [1])
    assert e.count == 1
    assert err(vdev.set_irqs, EFD_TRIG, VFIO_PCI_REQ_IRQ_INDEX, 0, 1, [-5]) == errno.EINVAL
    assert err(vdev.set_irqs, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, VFIO_PCI_REQ_IRQ_INDEX, 0, 1) \
        == errno.ENOTTY


def test_intx_enable_failure_leaves_nothing_behind(host):
    host.add_pci_device("0000:00:1f.0", intx_pin=1, gsi=19)
    host.request_irq(19, lambda i, d: 0, 0, "exclusive-owner", None)  # not shared
    host.add_pci_device(BDF, intx_pin=1, gsi=19)
    v = host.vfio_pci_bind(BDF)
    trig = Eventfd()
    assert err(v.set_irqs, EFD_TRIG, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [trig]) == errno.EBUSY
    assert v.irq_type == -1 and v.intx_trigger is None and getattr(trig, "vfio_source", None) is None
    assert host.irq_to_desc(19).action_names() == ["exclusive-owner"]
