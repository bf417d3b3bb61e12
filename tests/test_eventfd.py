"""eventfd rules from fs/eventfd.c: the counter, its limits, the wait queue and its lifetime."""
import errno

import pytest
from hypothesis import given, strategies as st

from irqlab import EFD_NONBLOCK, EFD_SEMAPHORE, Eventfd, KernelError
from irqlab.eventfd import EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, ULLONG_MAX, WaitQueueEntry


def test_initval_and_flags():
    assert Eventfd(5).count == 5
    with pytest.raises(KernelError) as e:
        Eventfd(0, 0x4)
    assert e.value.errno == errno.EINVAL
    with pytest.raises(ValueError):
        Eventfd(-1)
    with pytest.raises(TypeError):
        Eventfd("1")


def test_write_adds_and_read_takes_all():
    efd = Eventfd()
    assert efd.write(3) == 8
    efd.write(4)
    assert efd.read() == 7
    assert efd.count == 0


def test_semaphore_reads_one_at_a_time():
    efd = Eventfd(3, EFD_SEMAPHORE)
    assert [efd.read(), efd.read(), efd.read()] == [1, 1, 1]
    with pytest.raises(KernelError) as e:
        efd.read()
    assert e.value.errno == errno.EAGAIN


def test_read_empty_nonblocking_is_eagain():
    with pytest.raises(KernelError) as e:
        Eventfd(0, EFD_NONBLOCK).read()
    assert e.value.errno == errno.EAGAIN and "EFD_NONBLOCK" in str(e.value)


def test_buffer_sizes():
    efd = Eventfd(1)
    with pytest.raises(KernelError) as e:
        efd.read(4)
    assert e.value.errno == errno.EINVAL
    with pytest.raises(KernelError) as e:
        efd.write(b"\x01\x00")
    assert e.value.errno == errno.EINVAL
    efd.write((2).to_bytes(8, "little"))
    assert efd.count == 3


def test_write_ullong_max_is_einval():
    with pytest.raises(KernelError) as e:
        Eventfd().write(ULLONG_MAX)
    assert e.value.errno == errno.EINVAL


def test_overflow_limit_is_ullong_max_minus_one():
    efd = Eventfd(0, EFD_NONBLOCK)
    efd.write(ULLONG_MAX - 1)          # count may reach 0xfffffffffffffffe
    assert efd.count == 0xFFFFFFFFFFFFFFFE
    with pytest.raises(KernelError) as e:
        efd.write(1)
    assert e.value.errno == errno.EAGAIN
    assert efd.count == 0xFFFFFFFFFFFFFFFE  # nothing half-changed


def test_poll_bits():
    efd = Eventfd()
    assert efd.poll() == EPOLLOUT
    efd.write(1)
    assert efd.poll() == EPOLLIN | EPOLLOUT
    efd.count = ULLONG_MAX - 1
    assert efd.poll() == EPOLLIN
    efd.count = ULLONG_MAX
    assert efd.poll() == EPOLLIN | EPOLLERR


def test_kernel_signal_saturates_at_ullong_max():
    efd = Eventfd()
    efd.count = ULLONG_MAX - 1
    efd.signal()
    assert efd.count == ULLONG_MAX and efd.poll() & EPOLLERR
    efd.signal()
    assert efd.count == ULLONG_MAX


def test_write_zero_still_wakes():
    seen = []
    efd = Eventfd()
    efd.add_wait_queue(WaitQueueEntry(lambda e, m, t: seen.append(m) or 0))
    efd.write(0)
    assert seen == [EPOLLIN]


def test_priority_exclusive_waiter_is_unique_and_stops_the_wakeup():
    efd = Eventfd()
    calls = []
    efd.add_wait_queue(WaitQueueEntry(lambda e, m, t: calls.append("poller") or 0))
    efd.add_wait_queue_priority_exclusive(WaitQueueEntry(lambda e, m, t: calls.append("irqfd") or 1))
    with pytest.raises(KernelError) as e:
        efd.add_wait_queue_priority_exclusive(WaitQueueEntry(lambda e, m, t: 1))
    assert e.value.errno == errno.EBUSY
    efd.signal()
    assert calls == ["irqfd"]  # the exclusive waiter at the head ended the wake-up


def test_close_sends_hup():
    efd = Eventfd()
    seen = []
    efd.add_wait_queue(WaitQueueEntry(lambda e, m, t: seen.append(m) or 0))
    efd.close()
    assert seen == [EPOLLHUP]
    with pytest.raises(KernelError) as e:
        efd.write(1)
    assert e.value.errno == errno.EBADF


def test_remove_wait_queue_reads_and_resets():
    efd = Eventfd(4)
    w = WaitQueueEntry(lambda e, m, t: 0)
    efd.add_wait_queue(w)
    assert efd.eventfd_ctx_remove_wait_queue(w) == 4 and efd.count == 0 and not efd.waiters


@given(st.lists(st.tuples(st.sampled_from(["w", "r", "s"]), st.integers(0, 2**62)), max_size=40),
       st.booleans())
def test_counter_stays_in_range_and_reads_account(ops, sem):
    efd = Eventfd(0, EFD_NONBLOCK | (EFD_SEMAPHORE if sem else 0))
    total_in = total_out = 0
    for op, n in ops:
        before = efd.count
        try:
            if op == "w":
                efd.write(n)
                total_in += n
            elif op == "r":
                got = efd.read()
                assert got == (1 if sem else before)
                total_out += got
            else:
                efd.signal()
                total_in += 1 if before < ULLONG_MAX else 0
        except KernelError as e:
            assert e.errno in (errno.EAGAIN, errno.EINVAL)
            assert efd.count == before
        assert 0 <= efd.count <= ULLONG_MAX
    assert efd.count == total_in - total_out


# ------------------------------------------------------------------------------------------ lifetime
def test_close_is_release_hup_then_userspace_calls_are_ebadf():
    """fs/eventfd.c eventfd_release: the last close wakes every waiter with EPOLLHUP (wake_up_poll); after it,
    userspace's read, write, poll and a second close fail with EBADF."""
    efd = Eventfd(2)
    seen = []
    efd.add_wait_queue(WaitQueueEntry(lambda e, m, t: seen.append(m) or 0))
    efd.add_wait_queue_priority_exclusive(WaitQueueEntry(lambda e, m, t: seen.append(("prio", m)) or 0))
    efd.close()
    assert seen == [("prio", EPOLLHUP), EPOLLHUP]  # a HUP handler returning 0 does not end the wake-up
    for call in (lambda: efd.read(), lambda: efd.write(1), efd.poll, efd.close):
        with pytest.raises(KernelError) as e:
            call()
        assert e.value.errno == errno.EBADF
    assert efd.count == 2  # nothing half-changed


def test_kernel_signal_after_close_counts_and_reaches_nobody():
    """fs/eventfd.c eventfd_signal_mask: the kernel's users hold their own reference to the context
    (eventfd_ctx_fdget), so a signal after userspace's close still adds to the count, wakes whoever is left
    (nobody: the waiters detached on EPOLLHUP) and never fails — it runs in hard-IRQ context."""
    efd = Eventfd()
    w = WaitQueueEntry(lambda e, m, t: 1)
    efd.add_wait_queue(w)
    w.func = lambda e, m, t: (e.remove_wait_queue(w) if m & EPOLLHUP else None) or 0  # detaches on HUP
    efd.close()
    assert not efd.waiters
    assert efd.signal() is False and efd.signal() is False
    assert efd.count == 2 and efd.signals == 2 and efd.signals_after_close == 2


def test_bad_python_input_is_refused_before_anything_changes():
    """Bad values are TypeError/ValueError, not KernelError: they are not calls the kernel could see."""
    with pytest.raises(TypeError):
        Eventfd(name=5)
    with pytest.raises(TypeError):
        WaitQueueEntry("not callable")
    efd = Eventfd()
    with pytest.raises(TypeError):
        efd.add_wait_queue(lambda e, m, t: 0)
    with pytest.raises(TypeError):
        efd.add_wait_queue_priority_exclusive(object())
    with pytest.raises(TypeError):
        efd.write(1.5)
    with pytest.raises(ValueError):
        efd.write(-1)
    with pytest.raises(TypeError):
        efd.read("8")
    assert efd.count == 0 and not efd.waiters


def test_signal_token_must_be_an_interrupt():
    efd = Eventfd()
    with pytest.raises(TypeError):
        efd.signal("irq")
    assert efd.count == 0 and efd.signals == 0


def test_ioctls_given_a_closed_eventfd_are_ebadf(host, vm):
    """Userspace passes the fd again after closing it: eventfd_ctx_fdget fails with EBADF in KVM_IRQFD (assign,
    and virt/kvm/eventfd.c kvm_irqfd_deassign) and in VFIO_DEVICE_SET_IRQS (vfio_pci_intrs.c)."""
    from helpers import err
    from irqlab import KVM_IRQFD_FLAG_DEASSIGN, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_DATA_EVENTFD

    efd = Eventfd()
    vm.kvm_irqfd(efd, 24)
    efd.close()
    assert not vm.irqfds  # EPOLLHUP detached it already
    assert err(vm.kvm_irqfd, efd, 24) == errno.EBADF
    assert err(vm.kvm_irqfd, efd, 24, KVM_IRQFD_FLAG_DEASSIGN) == errno.EBADF
    host.add_pci_device("0000:05:00.0", msix=2)
    vdev = host.vfio_pci_bind("0000:05:00.0")
    assert err(vdev.set_irqs, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, 2, 0, 1, [efd]) == errno.EBADF
    assert vdev.irq_type == -1
