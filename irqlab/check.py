"""Self-checks for the course's exercises: each answer is compared with what the model itself computes.

Not a kernel file. ``check.ex("02-shared-no-dev-id", answer)`` prints a ✓ line, or a ✗ line that says what
is wrong (the kind of answer expected, and a hint pointing at the kernel rule) without giving the answer
away, and returns True/False. Checks never raise, so a notebook always runs to its end. The expected
answers are computed from the model (scenarios, the storm engine, the kernel-rule modules) the first time
they are needed, so they follow the model if it changes.

    >>> from irqlab import check
    >>> check.ex("04-semaphore-reads", 3)          # doctest: +SKIP
    ✓ 04-semaphore-reads: right.
"""
from __future__ import annotations

import errno as _errno
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["ex", "q", "hint", "expected", "exercises", "Exercise", "EXERCISES"]

# --------------------------------------------------------------------------------------- tiny helpers

DISK, NIC, GPU = "0000:00:17.0", "0000:02:00.0", "0000:03:00.0"
LEGACY, ETH0 = "0000:04:00.0", "0000:00:19.0"


def _errno_of(call: Callable[[], Any]) -> int:
    """0 if the call succeeds, else the KernelError's errno (what the ioctl/syscall would report)."""
    from .errors import KernelError

    try:
        call()
    except KernelError as e:
        return e.errno
    return 0


def _ok(irq: int, dev_id: Any) -> int:
    return 1  # IRQ_HANDLED


def _none(irq: int, dev_id: Any) -> int:
    return 0  # IRQ_NONE


def _step_until(host: Any, done: Callable[[], bool]) -> int:
    """Run the host's clock event by event until ``done()``; returns the time it became true."""
    while not done():
        t = host.sched.next_due()
        if t is None:
            raise RuntimeError("the model ran out of events before the condition held")
        host.run(until=t)
    return host.now


# --------------------------------------------------------------------------- 01: the switchboard

def _first_kvm_function() -> str:
    from . import scenarios

    h = scenarios.switchboard()
    j = h.raise_msi(GPU, 0)
    h.run()
    return next(x.function for x in j.hops if x.file.startswith(("virt/kvm", "arch/x86/kvm")))


def _nic_irq() -> int:
    from . import scenarios

    return scenarios.switchboard().pci_dev(NIC).vectors[2].irq


def _nic_reaches_kvm() -> bool:
    from . import scenarios

    h = scenarios.switchboard()
    j = h.raise_msi(NIC, 2)
    h.run()
    return any(x.file.startswith(("virt/kvm", "arch/x86/kvm")) for x in j.hops)


# --------------------------------------------------------------------------- 02: registration

def _shared_no_dev_id() -> int:
    from . import Host
    from .uapi import IRQF_SHARED

    h = Host()
    h.alloc_irq(16, level=True)
    return _errno_of(lambda: h.request_irq(16, _ok, IRQF_SHARED, "a", None))


def _oneshot_other_order() -> int:
    from . import Host
    from .uapi import IRQF_ONESHOT, IRQF_SHARED

    h = Host()
    h.alloc_irq(17, level=True)
    h.request_threaded_irq(17, None, _ok, IRQF_SHARED | IRQF_ONESHOT, "threaded", "t")
    return _errno_of(lambda: h.request_irq(17, _ok, IRQF_SHARED, "plain", "p"))


def _irqfd_second_vm() -> int:
    from . import scenarios

    h = scenarios.switchboard()
    vm2 = h.create_vm(nvcpus=1)
    return _errno_of(lambda: vm2.kvm_irqfd(h.scenario.eventfds[0], 24))


def _msix_rows_after_vector3() -> int:
    from . import Eventfd, Host
    from .procfs import parse_proc_interrupts
    from .uapi import (
        VFIO_IRQ_SET_ACTION_TRIGGER,
        VFIO_IRQ_SET_DATA_EVENTFD,
        VFIO_PCI_MSIX_IRQ_INDEX,
    )

    h = Host(ncpus=2)
    h.add_pci_device("0000:01:00.0", name="nic", msix=4)
    v = h.vfio_pci_bind("0000:01:00.0")
    flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER
    v.set_irqs(flags, VFIO_PCI_MSIX_IRQ_INDEX, 0, 2, [Eventfd(), Eventfd()])
    v.set_irqs(flags, VFIO_PCI_MSIX_IRQ_INDEX, 3, 1, [Eventfd()])
    rows = parse_proc_interrupts(h.proc_interrupts()).vfio_rows()
    return sum(1 for r in rows if any(a.startswith("vfio-msix") for a in r.actions))


# --------------------------------------------------------------------------- 03: dispatch

def _deaf_line_unhandled(spacing_ns: int) -> int:
    from . import Host
    from .uapi import IRQF_SHARED

    h = Host()
    h.alloc_irq(17, level=True)
    h.request_irq(17, _none, IRQF_SHARED, "deaf", 1)
    for i in range(3):
        h.raise_spurious(17, at=(i + 1) * spacing_ns)
    return h.irq_to_desc(17).irqs_unhandled


def _edge_replays() -> int:
    from . import Host

    h = Host()
    calls = []
    d = h.alloc_irq(None, chip_name="IR-PCI-MSIX-0000:09:00.0", hwirq=0, oneshot_safe=True)
    h.request_irq(d.irq, lambda irq, dev: calls.append(irq) or 1, 0, "q0", None)
    h.disable_irq(d.irq)
    h.generic_handle_irq(d.irq, cpu=1)
    h.generic_handle_irq(d.irq, cpu=1, at=1_000)
    h.enable_irq(d.irq)
    h.run()
    return len(calls)


def _level_replay_function() -> str:
    from . import scenarios

    h = scenarios.shared_intx()
    h.disable_irq(16)
    j = h.raise_intx(ETH0)
    h.enable_irq(16)
    h.run()
    fns = j.functions()
    return fns[fns.index("irq_can_handle_actions") + 1]


# --------------------------------------------------------------------------- 04: eventfd and irqfd

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


def _write_past_max_errno() -> int:
    from .eventfd import ULLONG_MAX, Eventfd
    from .uapi import EFD_NONBLOCK

    e = Eventfd(0, EFD_NONBLOCK)
    e.write(ULLONG_MAX - 1)
    return _errno_of(lambda: e.write(1))


def _saturated_poll() -> int:
    from .eventfd import ULLONG_MAX, Eventfd

    e = Eventfd()
    e.write(ULLONG_MAX - 1)
    e.signal()
    return e.poll()


def _count_after_irqfd() -> int:
    from . import scenarios

    h = scenarios.switchboard()
    h.raise_msi(GPU, 0)
    return h.scenario.eventfds[0].count


def _work_path_deliveries() -> int:
    from . import Eventfd, scenarios

    h = scenarios.switchboard()
    vm = h.scenario.vm
    vm.ioapic.write_redirtbl(10, vector=0x33, trigger_level=False)
    e = Eventfd(name="legacy")
    vm.kvm_irqfd(e, 10)
    for _ in range(5):
        e.signal()
    h.run()
    return vm.vcpus[0].delivered[0x33]


# --------------------------------------------------------------------------- 05: injection

def _decode_dest_vector() -> tuple[int, int]:
    from .kvm import msi

    m = msi.decode(0xFEE03000, 0x40B1)
    return (m.dest_id, m.vector)


def _dest_mode() -> str:
    from .kvm import msi

    return "logical" if msi.decode(0xFEE0300C, 0x40B1).dest_mode_logical else "physical"


def _queue3_vcpu() -> int:
    from . import scenarios

    h = scenarios.msix_nic(4)
    h.raise_msi("0000:01:00.0", 3)
    h.run()
    return next(v.id for v in h.scenario.vm.vcpus if sum(v.delivered.values()))


def _ppr_after_ack() -> int:
    from .kvm.lapic import KvmLapic

    a = KvmLapic()
    a.set_tpr(0x60)
    for v in (0x51, 0x75):
        a.apic_accept_irq(v)
    a.kvm_cpu_get_interrupt()
    return a.ppr


def _exits_per_interrupt() -> int:
    from . import scenarios

    h = scenarios.msix_nic(2)
    for i in range(200):
        h.raise_msi("0000:01:00.0", i % 2, at=h.now + 3_000)
    h.run()
    v = h.scenario.vm.vcpus[0]
    return sum(v.exits.values()) // sum(v.delivered.values())


# --------------------------------------------------------------------------- 06: level-triggered INTx

def _masked_outcome() -> str:
    from . import scenarios

    h = scenarios.shared_intx()
    h.raise_intx(LEGACY)
    return h.raise_intx(LEGACY, at=h.now + 500).outcome


def _masked_time_ns() -> int:
    from . import Timing, scenarios

    h = scenarios.shared_intx(timing=Timing(resample_ns=10_000))
    dev = h.pci_dev(LEGACY)
    h.raise_intx(LEGACY)
    t0 = h.now
    assert dev.disintx
    return _step_until(h, lambda: not dev.disintx) - t0


def _non_pci23_errno() -> int:
    from . import scenarios

    return _errno_of(lambda: scenarios.shared_intx(pci_2_3=False))


# --------------------------------------------------------------------------- 07: storms

def _glitch_storm_host() -> Any:
    """Notebook 7's glitches-only storm, run: 300 ms of glitches at 1 MHz on line 16 (seed 7)."""
    import numpy as np  # noqa: F401  (the storm's arrays)

    from . import scenarios, storm
    from .storm import Source

    h = scenarios.shared_intx(trace=False)
    s = storm.poisson(sources=[Source("spurious", irq=16)], rate_hz=1_000_000, duration_ns=300_000_000, seed=7)
    storm.run(h, s, progress=False)
    return h, s


def _glitch_disable_index() -> int:
    import numpy as np

    h, s = _glitch_storm_host()
    return int(np.searchsorted(s.times, h.spurious_disabled[0][0]))


def _glitch_storm_kstat() -> int:
    h, _ = _glitch_storm_host()
    return sum(h.irq_to_desc(16).kstat)


def _slow_glitch_reports() -> int:
    from . import scenarios, storm
    from .storm import Source

    h = scenarios.shared_intx(trace=False)
    s = storm.poisson(sources=[Source("spurious", irq=16)], rate_hz=5, duration_ns=60_000_000_000, seed=3)
    storm.run(h, s, progress=False)
    return h.dmesg().count("nobody cared")


# --------------------------------------------------------------------------- 08: posted interrupts

def _posted_storm(**kw: Any) -> Any:
    from . import scenarios, storm

    h = scenarios.posted_nic(2, trace=False, **kw)
    r = storm.run(h, storm.poisson(h, rate_hz=100_000, duration_ns=10_000_000, seed=0), progress=False)
    return h, r


def _broadcast_outcome() -> str:
    from . import scenarios
    from .kvm import msi
    from .kvm.irqchip import msi_route

    h = scenarios.posted_nic(2)
    vm = h.scenario.vm
    m = msi.encode(dest_id=0xFF, vector=0x41)
    vm.kvm_set_gsi_routing([e for e in vm.routing.all() if e.gsi != 24] + [msi_route(24, m.address_lo, m.data)])
    j = h.raise_msi("0000:01:00.0", 0)
    h.run()
    return j.outcome


def _posted_vfio_row_total() -> int:
    from .procfs import parse_proc_interrupts

    h, _ = _posted_storm()
    rows = parse_proc_interrupts(h.proc_interrupts()).vfio_rows()
    return next(r.total for r in rows if "vfio-msix[0](0000:01:00.0)" in r.actions)


def _halted_wakeup_row() -> str:
    from .procfs import parse_proc_interrupts

    h, _ = _posted_storm(vcpu_mode="halted")
    counters = parse_proc_interrupts(h.proc_interrupts()).posted_interrupt_counters()
    busy = [name for name, counts in counters.items() if sum(counts)]
    return busy[0] if len(busy) == 1 else ",".join(busy)


# --------------------------------------------------------------------------- 09: your machine

def _sample() -> Any:
    from .procfs import SAMPLE_6_18, parse_proc_interrupts

    return parse_proc_interrupts(SAMPLE_6_18)


def _sample_vfio_rows() -> int:
    return len(_sample().vfio_rows())


def _sample_pin_total() -> int:
    return sum(_sample().posted_interrupt_counters()["PIN"])


def _sample_busiest() -> str:
    return _sample().busiest_cpu()[1]


# ------------------------------------------------------------------------------------- the registry

@dataclass(frozen=True)
class Exercise:
    """One exercise: how to compute its answer from the model, the kind of answer, and a hint."""

    key: str
    compute: Callable[[], Any]
    kind: str  # "errno", "int", "str", "bool", "pair", "cpu"
    hint: str


_KIND_TEXT = {
    "errno": "an errno: a number such as errno.EINVAL, or its name as a string ('EINVAL'); 0 for success",
    "int": "a number (an int; '0x..' strings are fine)",
    "str": "a string",
    "bool": "True or False",
    "pair": "a pair of numbers, (first, second)",
    "cpu": "a CPU: its number, or its column name like 'CPU0'",
}

EXERCISES: dict[str, Exercise] = {e.key: e for e in [
    Exercise("01-first-kvm-function", _first_kvm_function, "str",
             "Walk gpu.hops and find the first hop whose file is under virt/kvm/ or arch/x86/kvm/: the function "
             "KVM hangs on the eventfd's wait queue."),
    Exercise("01-nic-irq", _nic_irq, "int",
             "The NIC's queue 2 has its own Linux irq: read the common_interrupt hop of its journey, or find the "
             "row whose action ends in -TxRx-2 in host.proc_interrupts()."),
    Exercise("01-nic-reaches-kvm", _nic_reaches_kvm, "bool",
             "Look at the files of the NIC interrupt's hops: does any of them live under virt/kvm/ or "
             "arch/x86/kvm/? Whose extension did that call ring?"),

    Exercise("02-shared-no-dev-id", _shared_no_dev_id, "errno",
             "IRQF_SHARED with dev_id None: how would free_irq() know which action of the line to remove? "
             "request_threaded_irq() refuses such a call before it looks at the line."),
    Exercise("02-oneshot-other-order", _oneshot_other_order, "errno",
             "In 6.18 request_irq() adds IRQF_COND_ONESHOT. Read __setup_irq(): what happens when the action "
             "already on the line has IRQF_ONESHOT and the new one has IRQF_COND_ONESHOT?"),
    Exercise("02-irqfd-second-vm", _irqfd_second_vm, "errno",
             "kvm_irqfd() joins the eventfd with add_wait_queue_priority_exclusive(): how many priority waiters "
             "can one eventfd have (in 6.18, across all VMs)?"),
    Exercise("02-msix-rows", _msix_rows_after_vector3, "int",
             "vfio-pci requests an irq only for the vectors that were given an eventfd; with dynamic MSI-X "
             "allocation it can add one later without touching the others. Count the vfio-msix rows."),

    Exercise("03-unhandled-after-three", lambda: _deaf_line_unhandled(1_000), "int",
             "note_interrupt() increments irqs_unhandled for each IRQ_NONE that comes within HZ/10 (100 ms) of "
             "the previous unhandled one."),
    Exercise("03-unhandled-aged", lambda: _deaf_line_unhandled(200_000_000), "int",
             "note_interrupt(): when more than HZ/10 has passed since the last unhandled interrupt "
             "(jiffies > last_unhandled + HZ/10), irqs_unhandled is not incremented: it starts again."),
    Exercise("03-edge-replays", _edge_replays, "int",
             "While the line is disabled, each arrival sets IRQS_PENDING: one bit, not a counter. "
             "check_irq_resend() replays what that bit says."),
    Exercise("03-level-replay", _level_replay_function, "str",
             "A level line is never resent: check_irq_resend() clears IRQS_PENDING and returns. Look at the held "
             "interrupt's journey after enable_irq(): which hop lets the still-asserted line fire again?"),

    Exercise("04-semaphore-reads", _semaphore_reads, "int",
             "EFD_SEMAPHORE: each read() returns 1 and subtracts 1; a read of a zero count with EFD_NONBLOCK fails."),
    Exercise("04-write-past-max", _write_past_max_errno, "errno",
             "eventfd_write() proceeds only if ULLONG_MAX - count > value; otherwise a non-blocking writer "
             "gets an error telling it to try again later."),
    Exercise("04-saturated-poll", _saturated_poll, "int",
             "eventfd_signal() saturates at ULLONG_MAX. eventfd_poll(): EPOLLIN if count > 0, EPOLLERR if count "
             "== ULLONG_MAX, EPOLLOUT if count < ULLONG_MAX - 1. Add up the bits (irqlab.eventfd.EPOLL*)."),
    Exercise("04-count-after-irqfd", _count_after_irqfd, "int",
             "irqfd_wakeup() calls eventfd_ctx_do_read() before it injects: what does a normal (non-semaphore) "
             "read leave behind?"),
    Exercise("04-work-coalesced", _work_path_deliveries, "int",
             "queue_work_on() is a no-op while the work is pending, and one irqfd_inject() run injects once."),

    Exercise("05-dest-vector", _decode_dest_vector, "pair",
             "Address bits 19:12 are the destination ID; data bits 7:0 are the vector. Shift and mask, or use "
             "irqlab.msi.decode()."),
    Exercise("05-dest-mode", _dest_mode, "str",
             "Address bit 2 is DM (0 physical, 1 logical); answer 'physical' or 'logical'."),
    Exercise("05-queue3-vcpu", _queue3_vcpu, "int",
             "Follow GSI 27's route: its MSI address names an APIC ID. Which vCPU has it? (or raise queue 3 and see "
             "which vCPU's delivered counter moves)"),
    Exercise("05-ppr", _ppr_after_ack, "int",
             "The vCPU acknowledges the highest IRR vector whose class (v & 0xF0) is above PPR. Then PPR = TPR if "
             "TPR's class >= the in-service class, else the in-service class."),
    Exercise("05-exits-per-interrupt", _exits_per_interrupt, "int",
             "Without APICv: one exit for the kick (EXTERNAL_INTERRUPT), and what does the guest's EOI write "
             "cost when the APIC is emulated?"),

    Exercise("06-masked-outcome", _masked_outcome, "str",
             "While vfio keeps INTx Disable set, the device's Status.Interrupt bit is already set: the second "
             "assertion merges into the first. Which label of irqlab.Outcome names that? "
             "(list them: [o.label for o in irqlab.Outcome])"),
    Exercise("06-masked-ns", _masked_time_ns, "int",
             "Step the model with host.sched.next_due() / host.run(until=...) and watch the device's DisINTx "
             "bit (host.pci_dev(bdf).disintx); the round trip adds up work, kick, guest handler and resample."),
    Exercise("06-non-pci23", _non_pci23_errno, "errno",
             "Without INTx Disable vfio-pci cannot mask just its device: it requests the line without "
             "IRQF_SHARED. What does __setup_irq() say to that on a line eth0 already shares?"),

    Exercise("07-disable-index", _glitch_disable_index, "int",
             "Counting starts at the first unhandled interrupt; the window closes at the 100,000th counted one, "
             "and that is when the line is disabled. Only what CPU0 takes is counted: a glitch that arrives while "
             "it is still in the last one's hard IRQ (host_irq_ns) is gone. Event indexes start at 0."),
    Exercise("07-slow-glitches", _slow_glitch_reports, "int",
             "At 5 glitches a second, more than HZ/10 passes between two of them: what does note_interrupt() do "
             "to irqs_unhandled then?"),
    Exercise("07-storm-kstat", _glitch_storm_kstat, "int",
             "kstat is incremented only after the flow handler's gate (irq_can_handle_actions): interrupts held or "
             "dropped on the disabled line are not counted, and neither are the poller's runs of the handlers "
             "(poll_spurious_irqs calls them directly). Which glitches passed the gate?"),

    Exercise("08-not-postable", _broadcast_outcome, "str",
             "kvm_pi_update_irte() posts only an MSI route to a single vCPU (Fixed or Lowest priority); for any "
             "other route the IRTE goes back to remapped. Read the journey: whose functions run now, and how does "
             "it end? (an irqlab.Outcome label)"),
    Exercise("08-posted-vfio-row", _posted_vfio_row_total, "int",
             "A posted interrupt never enters the host's common_interrupt, so nothing increments kstat."),
    Exercise("08-halted-row", _halted_wakeup_row, "str",
             "A halted vCPU's descriptor has NV = the wakeup vector; which arch row does its handler count? "
             "Answer with the row's name (three capital letters)."),

    Exercise("09-vfio-rows", _sample_vfio_rows, "int",
             "A row belongs to vfio when one of its actions starts with 'vfio-'; ProcInterrupts.vfio_rows() finds them."),
    Exercise("09-pin-total", _sample_pin_total, "int",
             "posted_interrupt_counters() gives the per-CPU counts of the PIN row; add them up."),
    Exercise("09-busiest-cpu", _sample_busiest, "cpu",
             "Add up each CPU's column over the device rows only (not LOC and the other arch rows): "
             "busiest_cpu() does that."),
]}

_cache: dict[str, Any] = {}


def exercises() -> list[str]:
    """The exercise ids, in course order."""
    return list(EXERCISES)


def expected(key: str) -> Any:
    """What the model says the answer to exercise ``key`` is (the checks use it; the tests show it)."""
    if key not in EXERCISES:
        raise KeyError(f"no exercise {key!r}; known: {', '.join(EXERCISES)}")
    if key not in _cache:
        _cache[key] = EXERCISES[key].compute()
    return _cache[key]


def hint(key: str) -> str:
    """The hint of exercise ``key`` (printed, and returned)."""
    if key not in EXERCISES:
        print(f"✗ there is no exercise {key!r} (known: {', '.join(EXERCISES)})")
        return ""
    print(f"Hint for {key}: {EXERCISES[key].hint}")
    return EXERCISES[key].hint


# ------------------------------------------------------------------------------ comparing answers

class _WrongKind(ValueError):
    pass


def _as_int(a: Any) -> int:
    if isinstance(a, bool):
        raise _WrongKind("True/False is not a number")
    if isinstance(a, int):
        return a
    if hasattr(a, "__index__"):  # numpy integers
        return int(a)
    if isinstance(a, float) and a.is_integer():
        return int(a)
    if isinstance(a, str):
        try:
            return int(a.strip().replace("_", "").replace(",", ""), 0)
        except ValueError:
            pass
    raise _WrongKind(f"{a!r} is not a number")


def _as_errno(a: Any) -> int:
    if isinstance(a, str):
        name = a.strip().lstrip("-").upper()
        if name in ("0", "OK", "SUCCESS"):
            return 0
        if name.startswith("E") and isinstance(getattr(_errno, name, None), int):
            return getattr(_errno, name)
        raise _WrongKind(f"{a!r} is not an errno name (like 'EINVAL')")
    if isinstance(a, OSError) and a.errno is not None:
        return a.errno
    return abs(_as_int(a))  # the kernel returns -EBUSY; userspace sees errno EBUSY: accept both


def _as_str(a: Any) -> str:
    if not isinstance(a, str):
        raise _WrongKind(f"{a!r} is a {type(a).__name__}, not a string")
    s = a.strip().strip("'\"`").strip()
    s = s.removesuffix("()")
    return s.lower()


def _as_bool(a: Any) -> bool:
    if isinstance(a, bool):
        return a
    if hasattr(a, "dtype") and getattr(a, "dtype", None) == bool:  # numpy bool
        return bool(a)
    if isinstance(a, str) and a.strip().lower() in ("true", "yes", "false", "no"):
        return a.strip().lower() in ("true", "yes")
    raise _WrongKind(f"{a!r} is not True or False")


def _as_pair(a: Any) -> tuple[int, int]:
    if isinstance(a, (str, bytes)) or not hasattr(a, "__len__") or len(a) != 2:
        raise _WrongKind(f"{a!r} is not a pair (first, second)")
    return (_as_int(a[0]), _as_int(a[1]))


def _as_cpu(a: Any) -> str:
    if isinstance(a, str) and a.strip().upper().startswith("CPU"):
        return f"CPU{_as_int(a.strip()[3:])}"
    return f"CPU{_as_int(a)}"


_NORMALIZE: dict[str, Callable[[Any], Any]] = {
    "errno": _as_errno, "int": _as_int, "str": _as_str, "bool": _as_bool, "pair": _as_pair, "cpu": _as_cpu,
}


def _same(kind: str, answer: Any, want: Any) -> bool:
    """True if ``answer`` means ``want``; raises _WrongKind if it is not the kind of answer asked for."""
    norm = _NORMALIZE[kind]
    return norm(answer) == norm(want)


def ex(key: str, answer: Any) -> bool:
    """Check the answer to exercise ``key``: prints ✓, or ✗ with what is wrong and a hint; returns True/False."""
    if key not in EXERCISES:
        print(f"✗ there is no exercise {key!r} (known: {', '.join(EXERCISES)})")
        return False
    e = EXERCISES[key]
    if answer is ...:
        print(f"… {key}: replace the ... with your answer ({_KIND_TEXT[e.kind]}).\n   Hint: {e.hint}")
        return False
    try:
        want = expected(key)
    except Exception as err:  # a model bug must not stop the notebook; the tests catch it
        print(f"✗ {key}: the model could not compute the expected answer ({type(err).__name__}: {err}); "
              "please report it")
        return False
    try:
        right = _same(e.kind, answer, want)
    except _WrongKind as why:
        print(f"✗ {key}: {why}; this exercise wants {_KIND_TEXT[e.kind]}.\n   Hint: {e.hint}")
        return False
    if right:
        print(f"✓ {key}: right.")
        return True
    print(f"✗ {key}: not yet ({answer!r} is not it).\n   Hint: {e.hint}")
    return False


q = ex  # check.q("02-shared-no-dev-id", answer) reads as "question"
