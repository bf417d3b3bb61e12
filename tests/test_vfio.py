"""vfio-pci interrupt rules (drivers/vfio/vfio_main.c, pci/vfio_pci_core.c, pci/vfio_pci_intrs.c, virqfd.c), the
PCI function behind them (drivers/pci/irq.c, pci.c) and the INTx way back through KVM to the unmask."""
import errno

import numpy as np
import pytest

import irqlab
from irqlab.trace import Change, Target
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


@pytest.mark.parametrize("index", [VFIO_PCI_MSIX_IRQ_INDEX, VFIO_PCI_MSI_IRQ_INDEX])
def test_disabling_msi_drops_what_a_masked_vector_holds(host, vdev, index):
    """drivers/pci/msi/api.c pci_free_irq_vectors → pci_msix_shutdown / pci_msi_shutdown: the Enable bit is
    cleared, so a message waiting in a masked vector's pending bit is never sent; it is settled (dropped), not
    left pending with nothing holding it (found by the twin fuzzer)."""
    vdev.set_irqs(EFD_TRIG, index, 0, 1, [Eventfd()])
    vdev.dev.vectors[0].masked = True   # the guest masked the vector (the model's test hook: no mask ioctl)
    j = host.raise_msi(BDF, 0)
    assert j.outcome == "pending" and vdev.dev.vectors[0].pending_event is not None
    assert host.raise_msi(BDF, 0).outcome == "disabled"   # the pending bit is already set: merged
    assert host.ledger.as_dict() == {"pending": 1, "disabled": 1}
    vdev.set_irqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, index, 0, 0)
    assert vdev.irq_type == -1 and not vdev.dev.vectors
    assert host.ledger.as_dict() == {"disabled": 2} and j.outcome == "disabled"
    fn = "pci_msix_shutdown" if index == VFIO_PCI_MSIX_IRQ_INDEX else "pci_msi_shutdown"
    assert j.functions()[-1] == fn and j.hops[-1].file == "drivers/pci/msi/msi.c" and j.hops[-1].actor == "vfio"


def test_unbinding_a_host_driver_drops_what_a_masked_vector_holds(host):
    host.add_pci_device("0000:06:00.0", name="nvme", intx_pin=1, gsi=18, msix=2)
    drv = host.bind_host_driver("0000:06:00.0")
    host.devices["0000:06:00.0"].vectors[1].masked = True
    j = host.raise_msi("0000:06:00.0", 1)
    assert j.outcome == "pending"
    drv.unbind()
    assert host.ledger.as_dict() == {"disabled": 1} and j.hops[-1].actor == "driver"


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
    j = host.raise_intx(BDF, at=host.now + 2000)  # after eth0's hard IRQ (host_irq_ns) on the line's CPU
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
    assert v.irq_type == -1 and v.intx_trigger is None
    assert host.irq_to_desc(19).action_names() == ["exclusive-owner"]


# ---------------------------------------------------------------------------- SET_IRQS, as 6.18 has it
UNMASK_EFD = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK


def test_second_unmask_eventfd_is_ebusy_and_the_first_stays(intx):
    """drivers/vfio/virqfd.c vfio_virqfd_enable: with ctx->unmask set, a second eventfd is -EBUSY and the first
    one stays hooked; -1 (vfio_virqfd_disable) first, then the new one is accepted. The fd is looked up
    before (eventfd_ctx_fileget): a closed one is -EBADF even then."""
    v, _ = intx
    first, second, closed = Eventfd(), Eventfd(), Eventfd()
    closed.close()
    v.set_irqs(UNMASK_EFD, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [first])
    assert err(v.set_irqs, UNMASK_EFD, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [second]) == errno.EBUSY
    assert err(v.set_irqs, UNMASK_EFD, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [first]) == errno.EBUSY
    assert err(v.set_irqs, UNMASK_EFD, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [closed]) == errno.EBADF
    assert v.intx_unmask.eventfd is first and len(first.waiters) == 1 and not second.waiters
    v.set_irqs(UNMASK_EFD, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [-1])
    assert v.intx_unmask is None and not first.waiters
    v.set_irqs(UNMASK_EFD, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [second])
    assert v.intx_unmask.eventfd is second


@pytest.mark.parametrize("count", [0, 1])
@pytest.mark.parametrize("index", [VFIO_PCI_ERR_IRQ_INDEX, VFIO_PCI_REQ_IRQ_INDEX])
def test_err_req_data_none_needs_an_eventfd(vdev, index, count):
    """drivers/vfio/pci/vfio_pci_intrs.c vfio_pci_set_ctx_trigger_single: DATA_NONE with no eventfd set is
    -EINVAL, for count 0 (clear) and count 1 (loopback) alike; with one set, count 1 signals it and count 0
    clears it (and a second clear is -EINVAL again)."""
    none = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER
    assert err(vdev.set_irqs, none, index, 0, count) == errno.EINVAL
    e = Eventfd()
    vdev.set_irqs(EFD_TRIG, index, 0, 1, [e])
    vdev.set_irqs(none, index, 0, count)
    attr = "err_trigger" if index == VFIO_PCI_ERR_IRQ_INDEX else "req_trigger"
    if count:
        assert e.count == 1 and getattr(vdev, attr) is e
    else:
        assert getattr(vdev, attr) is None
        assert err(vdev.set_irqs, none, index, 0, 0) == errno.EINVAL


def test_err_req_eventfd_values(vdev):
    """vfio_pci_set_ctx_trigger_single: DATA_EVENTFD and DATA_BOOL need count 1 (-EINVAL for 0); fd -1
    clears, fd >= 0 sets (-EBADF if it is not an open eventfd), any fd below -1 is -EINVAL."""
    e = Eventfd()
    assert err(vdev.set_irqs, EFD_TRIG, VFIO_PCI_REQ_IRQ_INDEX, 0, 0, []) == errno.EINVAL
    assert err(vdev.set_irqs, VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_REQ_IRQ_INDEX, 0, 0,
               []) == errno.EINVAL
    assert err(vdev.set_irqs, EFD_TRIG, VFIO_PCI_REQ_IRQ_INDEX, 0, 1, [-2]) == errno.EINVAL
    assert err(vdev.set_irqs, EFD_TRIG, VFIO_PCI_REQ_IRQ_INDEX, 0, 1, [3]) == errno.EBADF
    vdev.set_irqs(EFD_TRIG, VFIO_PCI_REQ_IRQ_INDEX, 0, 1, [e])
    assert vdev.req_trigger is e
    vdev.set_irqs(EFD_TRIG, VFIO_PCI_REQ_IRQ_INDEX, 0, 1, [None])
    assert vdev.req_trigger is None


def test_fd_below_minus_one_means_no_eventfd_on_intx_and_msi(host, vdev):
    """vfio_pci_intrs.c: vfio_pci_set_intx_trigger takes a trigger only ``if (fd >= 0)``,
    vfio_pci_set_intx_unmask disables the virqfd for any fd < 0, vfio_msi_set_vector_signal returns after
    freeing ``if (fd < 0)``: a negative fd is "no eventfd" there (only ERR/REQ reject it)."""
    vdev.set_irqs(EFD_TRIG, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [-5])  # enabled, no trigger
    assert vdev.irq_type == VFIO_PCI_INTX_IRQ_INDEX and vdev.intx_trigger is None
    u = Eventfd()
    vdev.set_irqs(UNMASK_EFD, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [u])
    vdev.set_irqs(UNMASK_EFD, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [-7])  # a virqfd disable
    assert vdev.intx_unmask is None and not u.waiters
    j = host.raise_intx(BDF)
    assert j.outcome == "no_trigger"
    vdev.set_irqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_INTX_IRQ_INDEX, 0, 0)
    e0 = Eventfd()
    vdev.set_irqs(EFD_TRIG, VFIO_PCI_MSIX_IRQ_INDEX, 0, 2, [e0, -2])
    assert vdev.msi_triggers == {0: e0} and f"vfio-msix[1]({BDF})" not in host.proc_interrupts()
    vdev.set_irqs(EFD_TRIG, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, [-(2**31)])
    assert vdev.msi_triggers == {}


def test_msi_block_error_unwinds_up_to_the_failing_vector(host, vdev):
    """vfio_msi_set_block: vectors are set one at a time and an error (here -EBADF from eventfd_ctx_fdget) unwinds
    the block from ``start`` through the vector that failed; the vectors after it keep their eventfds."""
    a, b, c, d = Eventfd(), Eventfd(), Eventfd(), Eventfd()
    vdev.set_irqs(EFD_TRIG, VFIO_PCI_MSIX_IRQ_INDEX, 0, 4, [a, b, c, d])
    bad = Eventfd()
    bad.close()
    assert err(vdev.set_irqs, EFD_TRIG, VFIO_PCI_MSIX_IRQ_INDEX, 0, 3, [Eventfd(), bad, Eventfd()]) == errno.EBADF
    assert vdev.msi_triggers == {2: c, 3: d}


def test_virqfd_enable_does_not_consume_a_pending_count(host, intx):
    """drivers/vfio/virqfd.c vfio_virqfd_enable: an event already pending (vfs_poll reports EPOLLIN) runs the
    handler "as if we didn't miss it", but the count is left on the eventfd (no eventfd_ctx_do_read there)."""
    v, _ = intx
    host.raise_intx(BDF)
    v.dev.take_intx()  # the device was serviced: the unmask handler can unmask it
    u = Eventfd(2)
    v.set_irqs(UNMASK_EFD, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [u])
    assert u.count == 2 and not v.intx_masked and not v.dev.disintx
    u.signal()  # a real wake-up reads it all (virqfd_wakeup: eventfd_ctx_do_read)
    assert u.count == 0


def test_set_irqs_bad_python_input_changes_nothing(host, vdev):
    """Values no ioctl could carry (not a u32, not an int32 fd, not a uint8) are TypeError/ValueError, checked
    before anything changes."""
    e = Eventfd()
    with pytest.raises(ValueError):
        vdev.set_irqs(EFD_TRIG, VFIO_PCI_MSIX_IRQ_INDEX, 2**32, 1, [e])
    with pytest.raises(TypeError):
        vdev.set_irqs(EFD_TRIG, VFIO_PCI_MSIX_IRQ_INDEX, 0, 2, [e, 1.0])
    with pytest.raises(TypeError):
        vdev.set_irqs(EFD_TRIG, VFIO_PCI_MSIX_IRQ_INDEX, 0, 2, [e, True])
    with pytest.raises(ValueError):
        vdev.set_irqs(EFD_TRIG, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, [2**31])
    with pytest.raises(TypeError):
        vdev.set_irqs(EFD_TRIG, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, e)
    vdev.set_irqs(EFD_TRIG, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, [e])
    with pytest.raises(ValueError):
        vdev.set_irqs(VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, [256])
    with pytest.raises(TypeError):
        vdev.set_irqs(VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, ["1"])
    assert e.count == 0 and vdev.msi_triggers == {0: e}
    assert err(vdev.set_irqs, EFD_TRIG, VFIO_PCI_MSIX_IRQ_INDEX, 2**32 - 1, 1, [e]) == errno.EINVAL  # overflows


# ---------------------------------------------------------------------------- eventfd lifetime
def test_closed_msi_trigger_never_fails_the_interrupt_path(host, vdev):
    """fs/eventfd.c eventfd_release + virt/kvm/eventfd.c irqfd_wakeup(EPOLLHUP) → irqfd_deactivate: closing the
    trigger detaches KVM's irqfd; vfio still holds the context, so vfio_msihandler's eventfd_signal counts and
    reaches nobody: the interrupt ends ``closed_eventfd``, nothing raises (regression: raise_msi raised
    EBADF mid-path)."""
    vm = host.create_vm(nvcpus=1)
    e = Eventfd()
    vdev.set_irqs(EFD_TRIG, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, [e])
    vm.kvm_set_gsi_routing(vm.routing.all() + [irqlab.msi_route(24, 0xFEE00000, 0x41)])
    vm.kvm_irqfd(e, 24)
    e.close()
    assert not vm.irqfds and not e.waiters
    j = host.raise_msi(BDF, 0)
    host.run()
    assert j.outcome == "closed_eventfd" and e.count == 1 and e.signals_after_close == 1
    assert "no waiter left" in j.text()
    host.ledger.check()
    assert err(vdev.set_irqs, EFD_TRIG, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, [e]) == errno.EBADF  # userspace's fd


def test_closed_intx_trigger_and_loopback(host, intx):
    """The INTx trigger closed: the next INTx is masked and signalled as ever (vfio_send_intx_eventfd) and ends
    ``closed_eventfd``; the DATA_NONE loopback signals the closed context without an error."""
    v, trig = intx
    trig.close()
    j = host.raise_intx(BDF)
    assert j.outcome == "closed_eventfd" and v.intx_masked and trig.count == 1
    v.set_irqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_INTX_IRQ_INDEX, 0, 1)
    assert trig.count == 2
    host.ledger.check()


def test_closing_the_resamplefd_mid_round_trip():
    """drivers/vfio/virqfd.c virqfd_wakeup(EPOLLHUP): closing vfio's unmask eventfd clears ctx->unmask and
    detaches the virqfd; KVM's resampler still holds the context and signals it at the guest's EOI — no error
    in the timer (regression) — and nobody unmasks: the device stays masked, as on a real host."""
    from irqlab import scenarios

    h = scenarios.shared_intx()
    v, rfd = h.scenario.vdev, h.scenario.resamplefd
    j = h.raise_intx(h.scenario.guest_bdf)
    rfd.close()
    assert v.intx_unmask is None and not rfd.waiters
    h.run()
    assert j.outcome == "injected" and rfd.count == 1 and rfd.signals_after_close == 1
    assert v.intx_masked and v.dev.disintx
    # the guest cleared Status, INTx Disable stays: the next assertion waits in the Status bit, the rest merge
    assert [h.raise_intx(h.scenario.guest_bdf).outcome for _ in range(2)] == ["pending", "masked"]
    v.set_irqs(UNMASK_EFD, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [Eventfd()])  # the slot is free again
    h.ledger.check()


def test_closing_the_trigger_mid_round_trip_flushes_the_inject():
    """virt/kvm/eventfd.c irqfd_shutdown: flush_work(&irqfd->inject) — an injection already queued still runs;
    the resampler goes with its last irqfd, so the guest's EOI unmasks nobody."""
    from irqlab import scenarios

    h = scenarios.shared_intx()
    trig = h.scenario.eventfds[0]
    j = h.raise_intx(h.scenario.guest_bdf)
    trig.close()
    assert not h.scenario.vm.irqfds and not h.scenario.vm.resamplers
    h.run()
    assert j.outcome == "injected" and h.scenario.vdev.intx_masked
    h.ledger.check()


# ---------------------------------------------------------------------------- the Status bit and the ledger
def _trip(**timing):
    from irqlab import scenarios

    h = scenarios.shared_intx(timing=irqlab.Timing(**timing))
    return h, h.scenario.vdev, h.scenario.guest_bdf


def _one_settle_each(h):
    h.run()
    h.ledger.check()
    assert not h.events_in_flight()


def test_resamplefd_write_while_the_interrupt_is_downstream_resends_no_interrupt():
    """drivers/vfio/virqfd.c virqfd_wakeup → vfio_pci_intx_unmask_handler: userspace writes the resamplefd while
    the INTx is in the irqfd's inject work; Status is still set, so vfio stays masked and its thread re-sends the
    trigger — the same asserted level, no new interrupt. Regression: the re-send carried the same interrupt,
    which settled twice ("coalesced_ioapic then injected")."""
    h, v, bdf = _trip()
    j = h.raise_intx(bdf)
    h.scenario.resamplefd.write(1)
    assert v.intx_masked and h.scenario.vdev.intx_unmask.inject.pending
    _one_settle_each(h)
    assert j.outcome == "injected" and h.ledger.as_dict() == {"injected": 1}
    assert v.intx_unmask.inject.runs == 1 and h.scenario.eventfds[0].signals == 2


def test_unmask_ioctl_while_the_interrupt_is_downstream_resends_no_interrupt():
    """vfio_pci_intrs.c __vfio_pci_intx_unmask: the UNMASK ioctl finds Status set, stays masked and calls
    vfio_send_intx_eventfd at once: a re-send of the level, not a second interrupt (regression: settled twice)."""
    h, v, bdf = _trip()
    j = h.raise_intx(bdf)
    h.run(until=1_000)  # in the irqfd's inject work
    v.set_irqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, VFIO_PCI_INTX_IRQ_INDEX, 0, 1)
    _one_settle_each(h)
    assert j.outcome == "injected" and h.ledger.as_dict() == {"injected": 1}


def test_another_pins_eoi_of_the_same_vector_resends_no_interrupt():
    """arch/x86/kvm/ioapic.c kvm_ioapic_update_eoi: an EOI of the vector runs the ack notifiers of every pin that
    has it, so another pin's EOI makes the card's resampler signal and vfio unmask while the card's interrupt is
    still on its way: Status set, the re-send carries no interrupt (regression: it ended coalesced_irqfd while
    the guest received it, or settled twice). A quick virqfd re-send lands while the inject work is pending."""
    h, v, bdf = _trip(resample_ns=1_000)
    j = h.raise_intx(bdf)
    h.run(until=1_000)
    h.scenario.vm.ioapic.kvm_ioapic_update_eoi(h.scenario.vectors[0])  # another pin's EOI, same vector
    assert v.intx_masked and v.intx_unmask.inject.pending
    _one_settle_each(h)
    assert j.outcome == "injected" and h.ledger.as_dict() == {"injected": 1}


def test_held_intx_serviced_by_the_guest_through_a_loopback_ends_masked():
    """An INTx that waits in the Status bit behind INTx Disable (userspace masked vfio: VFIO_IRQ_SET_ACTION_MASK)
    is never sent; a loopback trigger makes the guest's driver service the device and clear the bit: that
    interrupt ends ``masked`` (it was held behind INTx Disable and serviced with the loopback's). Regression:
    it was dropped with no outcome, {'in_flight': 1} for ever."""
    h, v, bdf = _trip()
    v.set_irqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK, VFIO_PCI_INTX_IRQ_INDEX, 0, 1)
    j = h.raise_intx(bdf)
    assert j.outcome == "pending" and v.dev.intx_status_event is not None
    v.set_irqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_INTX_IRQ_INDEX, 0, 1)  # loopback
    _one_settle_each(h)
    assert j.outcome == "masked" and h.ledger.as_dict() == {"masked": 1}
    assert v.dev.intx_status_event is None and not v.dev.disintx  # the guest's EOI unmasked it


def test_a_reassertion_is_a_new_interrupt_with_its_own_journey():
    """vfio_pci_intx_unmask_handler + pci_check_and_unmask_intx: an interrupt that arrived while INTx Disable
    held the line down (here: userspace's ACTION_MASK) is sent by the unmask that finds it — a new hardware
    interrupt, whose journey goes on from its assertion through vfio_send_intx_eventfd to the guest."""
    h, v, bdf = _trip()
    v.set_irqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK, VFIO_PCI_INTX_IRQ_INDEX, 0, 1)
    j = h.raise_intx(bdf, at=100)
    v.set_irqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, VFIO_PCI_INTX_IRQ_INDEX, 0, 1)
    h.run()
    assert j.outcome == "injected" and h.ledger.as_dict() == {"injected": 1}
    fns = j.functions()
    assert fns[:3] == ["vfio_send_intx_eventfd", "eventfd_signal", "eventfd_signal_mask"]
    assert "vfio_intx_handler" not in fns  # no host interrupt: the line stayed down


def test_a_held_intx_found_by_the_resample_is_resent_resample_ns_later():
    """drivers/vfio/virqfd.c virqfd_wakeup: the handler (vfio_pci_intx_unmask_handler) runs in the wake-up; the
    thread (vfio_send_intx_eventfd) is deferred to a work item, virqfd_inject — Timing.resample_ns later."""
    h, v, bdf = _trip()
    v.set_irqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK, VFIO_PCI_INTX_IRQ_INDEX, 0, 1)
    j = h.raise_intx(bdf, at=100)
    trig = h.scenario.eventfds[0]
    h.scenario.resamplefd.write(1)  # userspace, at 100: the same wake-up the resampler's signal runs
    assert trig.signals == 0 and v.intx_masked
    h.run(until=100 + h.timing.resample_ns - 1)
    assert trig.signals == 0
    h.run(until=100 + h.timing.resample_ns)
    assert trig.signals == 1
    hop = next(x for x in j.hops if x.function == "virqfd_inject")
    assert hop.t_ns == 100 + h.timing.resample_ns and hop.file == "drivers/vfio/virqfd.c"
    h.run()
    assert j.outcome == "injected"


# ---------------------------------------------------------------------------- the way back, and its time
WAY_BACK = ["kvm_lapic_reg_write", "apic_set_eoi", "kvm_ioapic_send_eoi", "kvm_ioapic_update_eoi",
            "kvm_ioapic_update_eoi_one", "kvm_notify_acked_irq", "irqfd_resampler_ack", "kvm_set_irq",
            "irqfd_resampler_notify", "eventfd_signal", "eventfd_signal_mask", "virqfd_wakeup", "eventfd_ctx_do_read",
            "vfio_pci_intx_unmask_handler", "pci_check_and_unmask_intx", "kvm_ioapic_update_eoi_one"]


def test_the_intx_journey_goes_on_to_the_unmask():
    """The way back is part of the interrupt's journey, with the kernel's functions in call order, all at the
    EOI's instant (arch/x86/kvm/lapic.c apic_set_eoi → kvm_ioapic_send_eoi; ioapic.c kvm_ioapic_update_eoi_one;
    virt/kvm/eventfd.c kvm_notify_acked_irq, irqfd_resampler_ack; drivers/vfio/virqfd.c virqfd_wakeup;
    vfio_pci_intrs.c vfio_pci_intx_unmask_handler; drivers/pci/irq.c pci_check_and_unmask_intx). Its outcome and
    latency stay those of the ack; t_done is its last hop."""
    h, v, bdf = _trip()
    t = h.timing
    j = h.raise_intx(bdf)
    h.run()
    fns = j.functions()
    ack = fns.index("kvm_apic_ack_interrupt")
    assert fns[ack + 1:] == WAY_BACK
    t_ack = t.irqfd_work_ns + t.kick_ns
    t_eoi = t_ack + t.guest_handler_ns
    i_ack = next(i for i, x in enumerate(j.hops) if x.function == "kvm_apic_ack_interrupt")
    assert j.hops[i_ack].t_ns == t_ack and {x.t_ns for x in j.hops[i_ack + 1:]} == {t_eoi}
    assert j.outcome == "injected" and j.latency_ns == t_ack + t.host_irq_ns and j.done and j.t_done == t_eoi
    service = j.hops[i_ack + 1]
    assert service.hardware and service.actor == "guest" and \
        Change(Target("pci", bdf, "Status.Interrupt"), True, False) in service.changes
    changes = {c.target: (c.before, c.after) for x in j.hops[i_ack + 1:] for c in x.changes}
    assert changes[Target("pci", bdf, "Command.INTx_Disable")] == (True, False)
    assert changes[Target("ioapic", (1, 16), "remote IRR")] == (True, False)
    assert changes[Target("eventfd", f"{bdf}-resample", "count")] == (1, 0)  # virqfd_wakeup read what was signalled
    assert all(x.function and x.file and x.actor for x in j.hops)
    assert h.ledger.as_dict() == {"injected": 1}


def test_the_way_back_with_apicv_is_an_eoi_induced_exit():
    """arch/x86/kvm/vmx/vmx.c handle_apic_eoi_induced → lapic.c kvm_apic_set_eoi_accelerated: with APICv the
    level vector is in the EOI-exit bitmap; the rest of the way back is the same."""
    h = irqlab.Host(ncpus=2, apicv=True)
    h.add_pci_device(BDF, intx_pin=1, gsi=16)
    vm = h.create_vm(nvcpus=1, pcpus=[1])
    v = h.vfio_pci_bind(BDF)
    trig, unmask = Eventfd(), Eventfd()
    v.set_irqs(EFD_TRIG, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [trig])
    v.set_irqs(UNMASK_EFD, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [unmask])
    vm.ioapic.write_redirtbl(16, vector=0x32, trigger_level=True)
    vm.kvm_irqfd(trig, 16, irqlab.KVM_IRQFD_FLAG_RESAMPLE, resamplefd=unmask)
    j = h.raise_intx(BDF)
    h.run()
    fns = j.functions()
    assert fns[fns.index("handle_apic_eoi_induced") + 1:] == ["kvm_apic_set_eoi_accelerated"] + WAY_BACK[2:]
    assert not v.dev.disintx and vm.vcpus[0].exits["EOI"] == 1


def test_remote_irr_and_intx_disable_clear_at_the_eoi_itself():
    """arch/x86/kvm/ioapic.c kvm_ioapic_update_eoi_one clears remote IRR in the EOI exit, right after the ack
    notifiers, and the resampler's eventfd_signal runs virqfd_wakeup → vfio_pci_intx_unmask_handler in that same
    wake-up: nothing waits ``resample_ns`` (it only times virqfd's deferred re-send)."""
    for resample in (1, 3_000, 50_000):
        h = irqlab.scenarios.shared_intx(timing=irqlab.Timing(resample_ns=resample))
        t, dev, pin = h.timing, h.pci_dev(h.scenario.guest_bdf), h.scenario.vm.ioapic.redirtbl[16]
        h.raise_intx(h.scenario.guest_bdf)
        t_eoi = t.irqfd_work_ns + t.kick_ns + t.guest_handler_ns
        h.run(until=t_eoi - 1)
        assert pin.remote_irr and dev.disintx
        h.run(until=t_eoi)
        assert not pin.remote_irr and not dev.disintx
        assert h.sched.next_due() is None  # nothing left to run: the round trip ended at the EOI


@pytest.mark.parametrize("chunk", [1, 2, 1 << 21])
def test_storm_engine_round_trip_ends_at_the_eoi(chunk):
    """The storm engine's vfio INTx round trip follows the model: an assertion before the EOI merges into the
    Status bit (masked), one at the EOI's instant (timers first) goes through the host again — in both engines."""
    from irqlab import scenarios, storm
    from irqlab.storm import Source

    t = irqlab.Timing()
    eoi = t.irqfd_work_ns + t.kick_ns + t.guest_handler_ns
    times = np.array([0, eoi - 1, eoi, 2 * eoi - 1, 2 * eoi, 2 * eoi + 1], dtype=np.int64)
    s = storm.from_arrays(times, np.zeros(times.size, np.uint16), [Source("intx", "0000:04:00.0")])
    a = storm.run(scenarios.shared_intx(trace=False), s, "vector", chunk_events=chunk, progress=False)
    b = storm.run(scenarios.shared_intx(trace=False), s, "reference", progress=False)
    assert a.equals(b), a.diff(b)
    assert [irqlab.Outcome(o).label for o in a.outcome] == ["injected", "masked", "injected", "masked", "injected",
                                                            "masked"]
    assert a.t_end == 3 * eoi


# ---------------------------------------------------------------------------- the PCI function
@pytest.mark.parametrize("kw,exc", [
    (dict(intx_pin=True), TypeError), (dict(intx_pin=1.0), TypeError), (dict(intx_pin=5), ValueError),
    (dict(msi=1.0), TypeError), (dict(msi=3), ValueError), (dict(msix=None), TypeError), (dict(msix=2049), ValueError),
    (dict(gsi=16.0), TypeError), (dict(gsi=24), ValueError), (dict(gsi=True), TypeError),
    (dict(pci_2_3=1), TypeError), (dict(pcie="yes"), TypeError), (dict(dynamic_msix=None), TypeError),
    (dict(name=7), TypeError),
])
def test_add_pci_device_refuses_bad_values_before_anything_changes(host, kw, exc):
    """A value no PCI function has is a TypeError/ValueError, and neither the bus nor the descriptors change."""
    descs = set(host.genirq.descs)
    with pytest.raises(exc):
        host.add_pci_device("0000:09:00.0", **kw)
    assert "0000:09:00.0" not in host.devices and set(host.genirq.descs) == descs


def test_host_driver_bind_refuses_bad_values(host):
    host.add_pci_device("0000:09:00.0", msix=4)
    for kw, exc in ((dict(vectors=0), ValueError), (dict(vectors=1.5), TypeError), (dict(use_msi=1), TypeError),
                    (dict(queue_fmt="{name}-{cpu}"), ValueError), (dict(queue_fmt=3), TypeError)):
        with pytest.raises(exc):
            host.bind_host_driver("0000:09:00.0", "nic", **kw)
    dev = host.devices["0000:09:00.0"]
    assert dev.driver is None and not dev.vectors
    assert err(dev.pci_msix_alloc_irq_at, 4) == errno.EINVAL  # beyond the MSI-X table


def test_clearing_intx_disable_with_status_set_raises_the_line(host, intx):
    """drivers/pci/pci.c pci_intx: with Status.Interrupt set, clearing INTx Disable lets the device drive INTx#:
    re-enabling vfio INTx (vfio_intx_enable clears it) delivers the interrupt that waited behind it."""
    v, trig = intx
    v.set_irqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK, VFIO_PCI_INTX_IRQ_INDEX, 0, 1)
    j = host.raise_intx(BDF)
    assert j.outcome == "pending"
    v.set_irqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_INTX_IRQ_INDEX, 0, 0)  # INTx off
    assert v.dev.disintx and j.outcome == "pending"  # vfio_intx_disable leaves INTx Disable alone
    v.set_irqs(EFD_TRIG, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [trig])
    assert j.outcome == "userspace" and trig.count == 1 and v.intx_masked
    assert "pci_intx" in j.functions() and "vfio_intx_handler" in j.functions()
    host.ledger.check()


def test_non_pci23_unmask_refires_without_a_second_interrupt(host):
    """vfio_pci_intrs.c, a device without INTx masking: the handler disables the line, the unmask enables it
    (kernel/irq/manage.c enable_irq → irq_startup → unmask_irq); a device that still asserts makes the IO-APIC
    send the vector again — a new hardware interrupt (kstat counts it), which vfio signals again.
    vfio_intx_disable then clears IRQ_DISABLE_UNLAZY."""
    host.add_pci_device(BDF, intx_pin=1, gsi=18, pci_2_3=False)
    v = host.vfio_pci_bind(BDF)
    trig = Eventfd()
    v.set_irqs(EFD_TRIG, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [trig])
    j = host.raise_intx(BDF)
    host.run(until=host.now + 2000)  # the unmask comes after the hard IRQ (its CPU takes the re-fire at once)
    v.set_irqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, VFIO_PCI_INTX_IRQ_INDEX, 0, 1)
    assert trig.count == 2 and v.intx_masked and host.irq_to_desc(18).disabled
    assert j.outcome == "userspace" and host.ledger.as_dict() == {"userspace": 2}
    assert sum(host.irq_to_desc(18).kstat) == 2 and host.irq_to_desc(18).redelivered == 1
    v.set_irqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_INTX_IRQ_INDEX, 0, 0)
    assert not host.irq_to_desc(18).unlazy


def test_swapping_the_trigger_flushes_a_queued_resend_to_the_new_one():
    """vfio_pci_intrs.c vfio_intx_set_signal: the new trigger is written first, then vfio_virqfd_flush_thread
    runs a re-send the unmask virqfd had queued — so it signals the new trigger, at once."""
    h, v, bdf = _trip()
    v.set_irqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK, VFIO_PCI_INTX_IRQ_INDEX, 0, 1)
    j = h.raise_intx(bdf)
    h.scenario.resamplefd.write(1)  # the unmask finds Status set: a re-send is queued
    new = Eventfd()
    v.set_irqs(EFD_TRIG, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [new])
    assert new.count == 1 and h.scenario.eventfds[0].count == 0 and j.outcome == "userspace"
    assert not v.intx_unmask.inject.pending and v.intx_trigger is new


@pytest.mark.parametrize("chunk", [1, 1 << 21])
def test_storm_engines_agree_on_a_closed_trigger(chunk):
    """A storm on an MSI-X vector whose eventfd userspace closed: every interrupt is closed_eventfd (counted on the
    context vfio still holds), in the vector engine as in the replay; the other vector still injects."""
    from irqlab import scenarios, storm

    def make():
        h = scenarios.msix_nic(2, trace=False)
        h.scenario.eventfds[1].close()
        return h

    s = storm.poisson(make(), rate_hz=200_000, duration_ns=2_000_000, seed=3)
    h1, h2 = make(), make()
    a = storm.run(h1, s, "vector", chunk_events=chunk, progress=False)
    b = storm.run(h2, s, "reference", progress=False)
    assert a.equals(b), a.diff(b)
    from irqlab.ledger import Outcome  # each one vfio's handler ran for (the CPU merged the others in its IRR)
    ran = (s.source_ids == 1) & (a.outcome != Outcome.COALESCED_APIC)
    assert a.ledger["closed_eventfd"] == int(ran.sum()) and a.ledger["injected"] > 0
    e1, e2 = h1.scenario.eventfds[1], h2.scenario.eventfds[1]
    assert (e1.count, e1.signals_after_close) == (e2.count, e2.signals_after_close) == (a.ledger["closed_eventfd"],) * 2


# ---------------------------------------------------------------------------- nothing lost on vfio's paths
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

VFIO_OPS = st.lists(st.one_of(
    st.tuples(st.sampled_from(["card", "eth0", "glitch", "resample_write", "unmask", "mask", "loopback",
                               "close_trigger", "close_resample", "new_unmask", "unmask_off", "intx_off", "intx_on",
                               "trigger_none", "trigger_new", "other_eoi", "halt", "run_guest", "disable_line",
                               "enable_line"])),
    st.tuples(st.just("advance"), st.integers(0, 12_000))), max_size=40)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(VFIO_OPS)
def test_nothing_is_lost_on_vfio_intx_paths(ops):
    """Principle 3 on the paths this module owns: INTx assertions interleaved with closed eventfds, ioctls
    mid-flight (mask, unmask, loopback, trigger swaps, INTx off and on), resamplefd writes, another pin's EOI,
    a disabled host line and a halted vCPU. Only the ioctls may fail (KernelError); interrupts, eventfd
    signals and time never raise; the ledger adds up after every step; once the host has run dry nothing is
    in flight, and an interrupt left pending is still held — by its device's Status bit or its line."""
    from irqlab import scenarios

    h = scenarios.shared_intx(trace=False)  # untraced: a card nobody claims storms line 16 (100,000 re-deliveries)
    v, bdf, vm = h.scenario.vdev, h.scenario.guest_bdf, h.scenario.vm
    st_ = {"trig": h.scenario.eventfds[0], "rfd": h.scenario.resamplefd}
    none_trig = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER

    def new_unmask():
        st_["rfd"] = Eventfd()
        v.set_irqs(UNMASK_EFD, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [st_["rfd"]])

    def new_trigger():
        st_["trig"] = Eventfd()
        v.set_irqs(EFD_TRIG, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [st_["trig"]])
        vm.kvm_irqfd(st_["trig"], 16, irqlab.KVM_IRQFD_FLAG_RESAMPLE, resamplefd=st_["rfd"])

    ioctls = {
        "unmask": lambda: v.set_irqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, VFIO_PCI_INTX_IRQ_INDEX, 0, 1),
        "mask": lambda: v.set_irqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK, VFIO_PCI_INTX_IRQ_INDEX, 0, 1),
        "loopback": lambda: v.set_irqs(none_trig, VFIO_PCI_INTX_IRQ_INDEX, 0, 1),
        "resample_write": lambda: st_["rfd"].write(1),
        "close_trigger": lambda: st_["trig"].close(),
        "close_resample": lambda: st_["rfd"].close(),
        "new_unmask": new_unmask,
        "unmask_off": lambda: v.set_irqs(UNMASK_EFD, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [-1]),
        "intx_off": lambda: v.set_irqs(none_trig, VFIO_PCI_INTX_IRQ_INDEX, 0, 0),
        "intx_on": lambda: v.set_irqs(EFD_TRIG, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [st_["trig"]]),
        "trigger_none": lambda: v.set_irqs(EFD_TRIG, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [-1]),
        "trigger_new": new_trigger,
    }
    for op in ops:
        kind = op[0]
        if kind in ioctls:
            try:
                ioctls[kind]()
            except irqlab.KernelError:
                pass
        elif kind == "card":
            h.raise_intx(bdf)
        elif kind == "eth0":
            h.raise_intx("0000:00:19.0")
        elif kind == "glitch":
            h.raise_spurious(16)
        elif kind == "advance":
            h.run(until=h.now + op[1])
        elif kind == "other_eoi":  # another pin's EOI of the same vector
            vm.ioapic.kvm_ioapic_update_eoi(h.scenario.vectors[0])
        elif kind == "halt":
            vm.vcpus[0].mode = "halted" if vm.vcpus[0].mode == "running" else "running"
        elif kind == "run_guest":
            h.run(until=h.now + 10_000)
        elif kind == "disable_line":
            h.disable_irq(16)
        elif kind == "enable_line":
            h.enable_irq(16)
        h.ledger.check()
    h.run()
    h.ledger.check()
    assert not h.events_in_flight()
    P = irqlab.Outcome.PENDING
    held = {id(e) for e in [d.intx_status_event for d in h.devices.values()]
            + [d.pending_event for d in h.genirq.descs.values()] if e is not None and e.outcome == P}
    assert h.ledger.counts[P] == len(held)  # every pending interrupt is still held somewhere
