"""Self-checks for the course's exercises: each answer is compared with what the model itself computes.

Not a kernel file. Every check prints a ✓ line, or a ✗ line with a hint that says where to look without
giving the answer away, and returns True/False; none raises, so a notebook always runs to the end.
"""
from __future__ import annotations

import errno
from typing import Any, Callable

__all__ = ["ex", "EXERCISES", "expected"]


def _gpu_journey():
    from . import scenarios

    h = scenarios.switchboard()
    j = h.raise_msi("0000:03:00.0", 0)
    h.run()
    return h, j


def _first_kvm_function() -> str:
    _, j = _gpu_journey()
    return next(h.function for h in j.hops if h.file.startswith(("virt/kvm", "arch/x86/kvm")))


def _disk_outcome() -> str:
    from . import scenarios

    h = scenarios.switchboard()
    return h.raise_msi("0000:00:17.0", 0).outcome


def _errno_of(call: Callable[[], Any]) -> int:
    from .errors import KernelError

    try:
        call()
    except KernelError as e:
        return e.errno
    return 0


def _busy() -> int:
    from . import Host
    from .uapi import IRQF_SHARED

    h = Host()
    h.alloc_irq(16, level=True)
    h.request_irq(16, lambda i, d: 1, IRQF_SHARED, "a", 1)
    return _errno_of(lambda: h.request_irq(16, lambda i, d: 1, 0, "b", 2))


def _shared_no_dev_id() -> int:
    from . import Host
    from .uapi import IRQF_SHARED

    h = Host()
    h.alloc_irq(16, level=True)
    return _errno_of(lambda: h.request_irq(16, lambda i, d: 1, IRQF_SHARED, "a", None))


def _unhandled_after_three() -> int:
    from . import Host
    from .uapi import IRQF_SHARED

    h = Host()
    h.alloc_irq(17, level=True)
    h.request_irq(17, lambda i, d: 0, IRQF_SHARED, "deaf", 1)
    for t in (1000, 2000, 3000):
        h.raise_spurious(17, at=t)
    return h.irq_to_desc(17).irqs_unhandled


def _disabled_edge_outcome() -> str:
    from . import Host

    h = Host()
    d = h.alloc_irq(None, chip_name="IR-PCI-MSIX-0000:01:00.0", hwirq=0, oneshot_safe=True)
    h.request_irq(d.irq, lambda i, x: 1, 0, "q0", None)
    h.disable_irq(d.irq)
    return h.generic_handle_irq(d.irq).outcome


def _semaphore_reads() -> int:
    from .errors import KernelError
    from .eventfd import Eventfd
    from .uapi import EFD_NONBLOCK, EFD_SEMAPHORE

    e, n = Eventfd(3, EFD_SEMAPHORE | EFD_NONBLOCK), 0
    while True:
        try:
            e.read()
            n += 1
        except KernelError:
            return n


def _count_after_irqfd() -> int:
    h, _ = _gpu_journey()
    return h.scenario.eventfds[0].count


def _decode_vector() -> int:
    from .kvm import msi

    return msi.decode(0xFEE02000, 0x4061).vector


def _decode_dest() -> int:
    from .kvm import msi

    return msi.decode(0xFEE02000, 0x4061).dest_id


def _ppr() -> int:
    from .kvm.lapic import KvmLapic

    a = KvmLapic()
    a.set_tpr(0x30)
    a.apic_accept_irq(0x51)
    a.kvm_get_apic_interrupt()
    return a.ppr


def _masked_outcome() -> str:
    from . import scenarios

    h = scenarios.shared_intx()
    h.raise_intx("0000:04:00.0")
    return h.raise_intx("0000:04:00.0", at=h.now + 100).outcome


def _disable_index() -> int:
    import numpy as np

    from . import scenarios, storm
    from .storm import Source

    h = scenarios.shared_intx(trace=False)
    s = storm.from_arrays(np.arange(100_500, dtype=np.int64) * 1000, np.zeros(100_500, np.uint16),
                          [Source("spurious", irq=16)])
    storm.run(h, s)
    t = h.spurious_disabled[0][0]
    return int(np.searchsorted(s.times, t))


def _posted_exits() -> int:
    from . import scenarios, storm

    h = scenarios.posted_nic(4, trace=False)
    r = storm.run(h, storm.poisson(h, rate_hz=100_000, duration_ns=10_000_000, seed=0))
    return r.vmexits()


def _sample_vfio_rows() -> int:
    from .procfs import SAMPLE_6_18, parse_proc_interrupts

    return len(parse_proc_interrupts(SAMPLE_6_18).vfio_rows())


#: exercise id -> (expected-answer function, hint)
EXERCISES: dict[str, tuple[Callable[[], Any], str]] = {
    "01-first-kvm-function": (_first_kvm_function, "Walk the GPU journey's hops; which is the first whose file is under "
                              "virt/kvm/ or arch/x86/kvm/? It is the eventfd's subscriber."),
    "01-disk-outcome": (_disk_outcome, "Raise the disk's MSI and read journey.outcome: who answered that call?"),
    "02-busy-errno": (_busy, "A second requester that does not set IRQF_SHARED on a shared line: see __setup_irq's "
                      "mismatch path (it is an errno from errno.h, as an int)."),
    "02-shared-no-dev-id": (_shared_no_dev_id, "IRQF_SHARED with dev_id None: how would free_irq know which action "
                            "to remove? request_threaded_irq refuses it early."),
    "03-unhandled-after-three": (_unhandled_after_three, "note_interrupt increments irqs_unhandled for each IRQ_NONE "
                                 "that comes within HZ/10 of the previous one."),
    "03-disabled-edge-outcome": (_disabled_edge_outcome, "An edge line after disable_irq(): the flow handler refuses, "
                                 "masks and sets IRQS_PENDING. Which outcome label is that?"),
    "04-semaphore-reads": (_semaphore_reads, "EFD_SEMAPHORE: each read returns 1 and subtracts 1."),
    "04-count-after-irqfd": (_count_after_irqfd, "irqfd_wakeup calls eventfd_ctx_do_read before it injects."),
    "05-vector": (_decode_vector, "MSI data bits 7:0 are the vector."),
    "05-dest": (_decode_dest, "MSI address bits 19:12 are the destination APIC ID."),
    "05-ppr": (_ppr, "PPR is TPR if TPR's class >= the in-service class, else the in-service class (vector & 0xF0)."),
    "06-masked-outcome": (_masked_outcome, "While vfio keeps INTx Disable set, the device's Status bit is already "
                          "set: the second assertion merges. Look at Outcome's labels."),
    "07-disable-index": (_disable_index, "Counting starts at the first unhandled interrupt; the window closes at the "
                         "100,000th counted one. Indexes start at 0."),
    "08-posted-exits": (_posted_exits, "With APICv and VT-d posting, running vCPUs take interrupts in guest mode."),
    "09-vfio-rows": (_sample_vfio_rows, "A row belongs to vfio when one of its actions starts with 'vfio-'; "
                     "ProcInterrupts.vfio_rows() finds them."),
}

_cache: dict[str, Any] = {}


def expected(key: str) -> Any:
    """What the model says the answer to exercise ``key`` is (the checks use it; the solutions show it)."""
    if key not in EXERCISES:
        raise KeyError(f"no exercise {key!r}; known: {', '.join(EXERCISES)}")
    if key not in _cache:
        _cache[key] = EXERCISES[key][0]()
    return _cache[key]


def _same(a: Any, b: Any) -> bool:
    if isinstance(b, str) and isinstance(a, str):
        return a.strip().lower().replace("()", "") == b.lower()
    if isinstance(b, int) and not isinstance(b, bool):
        if isinstance(a, str) and a.strip().upper().lstrip("-") in errno.__dict__:
            a = errno.__dict__[a.strip().upper().lstrip("-")]
        try:
            return int(a) == b
        except (TypeError, ValueError):
            return False
    return a == b


def ex(key: str, answer: Any) -> bool:
    """Check the answer to exercise ``key``; prints ✓ or ✗ with a hint, returns True/False."""
    if key not in EXERCISES:
        print(f"✗ there is no exercise {key!r} (known: {', '.join(EXERCISES)})")
        return False
    if answer is ... or answer is None:
        print(f"… {key}: replace the ... with your answer. Hint: {EXERCISES[key][1]}")
        return False
    if _same(answer, expected(key)):
        print(f"✓ {key}: right.")
        return True
    print(f"✗ {key}: not quite ({answer!r}). Hint: {EXERCISES[key][1]}")
    return False
