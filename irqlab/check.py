"""Self-checks for the course's exercises: each answer is compared with what the model itself computes.

Not a kernel file. ``check.ex("02-shared-no-dev-id", answer)`` prints one line and returns True/False:

- before any attempt (``answer = ...``) it says only what kind of answer is wanted;
- a wrong answer gets a hint, and each new wrong answer the next, more precise one (the same wrong answer
  again gets the same hint again); after the last hint it points to the worked solution;
- a right answer gets a ✓ and, where there is one, the reason behind it;
- every answer is echoed as it was typed in the cell (``0x70`` stays ``0x70``).

A "predict" exercise is followed by a cell that shows the answer. That cell starts with ``%%reveal KEY``: it
runs only once an answer to KEY was given (right or wrong), and otherwise says so, without an error. The
magic is registered when this module is imported in IPython (or with ``%load_ext irqlab.check``).

Checks never raise, so a notebook always runs to its end. The expected answers are computed from the model
(scenarios, the storm engine, the kernel-rule modules) the first time they are needed, so they follow the
model if it changes; the multiple-choice questions' answers are the kernel's reasons, and
tests/test_check.py shows the model behaving as the right choice says.

    >>> from irqlab import check
    >>> check.ex("04-semaphore-reads", 3)          # doctest: +SKIP
    ✓ 04-semaphore-reads: right — 3.
"""
from __future__ import annotations

import ast
import errno as _errno
import io
import re
import textwrap
import tokenize
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ex", "q", "hint", "expected", "exercises", "answered", "reset", "Exercise", "EXERCISES"]
# (load_ipython_extension is IPython's hook for %load_ext irqlab.check, not an API of its own)

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

def _msix_hwirq() -> int:
    from . import scenarios
    from .procfs import parse_proc_interrupts

    h = scenarios.switchboard()
    rows = parse_proc_interrupts(h.proc_interrupts()).device_rows()
    return int(next(r.hwirq for r in rows if "enp2s0-TxRx-3" in r.actions))


def _deaf_line_unhandled(spacing_ns: int) -> int:
    from . import Host
    from .uapi import IRQF_SHARED

    h = Host()
    h.alloc_irq(17, level=True)
    h.request_irq(17, _none, IRQF_SHARED, "deaf", 1)
    for i in range(3):
        h.raise_spurious(17, at=(i + 1) * spacing_ns)
    h.run()
    return h.irq_to_desc(17).irqs_unhandled


def _thread_verdict() -> int:
    """Two glitches 1 ms apart on a line whose only action wakes a thread that returns IRQ_NONE."""
    from . import Host
    from .uapi import IRQ_NONE, IRQ_WAKE_THREAD, IRQF_ONESHOT, IRQF_SHARED

    h = Host()
    h.alloc_irq(19, level=True)
    h.request_threaded_irq(19, lambda i, d: IRQ_WAKE_THREAD, lambda i, d: IRQ_NONE, IRQF_ONESHOT | IRQF_SHARED,
                           "sensor", 1)
    for t in (1_000_000, 2_000_000):
        h.raise_spurious(19, at=t)
        h.run(until=t + 500_000)
    return h.irq_to_desc(19).irqs_unhandled


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


# --------------------------------------------------------------------------- 06: CPUs under a guest

KVM_FILES = ("virt/kvm", "arch/x86/kvm")


def _kvm_hops(j: Any) -> int:
    return sum(1 for x in j.hops if x.file.startswith(KVM_FILES))


def _disk_kvm_functions() -> int:
    """The disk's MSI with its vector moved under vcpu0 (CPU1): the exit's functions, nothing else of KVM's."""
    from . import scenarios

    h = scenarios.switchboard()
    h.write_proc_irq(h.pci_dev(DISK).vectors[0].irq, "smp_affinity_list", "1")
    j = h.raise_msi(DISK, 0)
    h.run()
    return _kvm_hops(j)


def _res_cpu() -> str:
    from . import scenarios

    h = scenarios.switchboard()
    h.raise_msi(GPU, 0)
    h.run()
    moved = [cpu for cpu, n in enumerate(h.arch_counts["RES"]) if n]
    return ",".join(f"CPU{c}" for c in moved) if len(moved) != 1 else f"CPU{moved[0]}"


def _cpus_storm() -> Any:
    """Notebook 6's storm: the switchboard's six MSI sources at 50,000/s each for 40 ms (seed 6)."""
    from . import storm
    from .storm import Source

    srcs = [Source("msi", DISK, 0)] + [Source("msi", NIC, q) for q in range(4)] + [Source("msi", GPU, 0)]
    return storm.poisson(sources=srcs, rate_hz=50_000, duration_ns=40_000_000, seed=6)


def _busiest_guest_cpu() -> str:
    """Of the CPUs that run a vCPU, the one whose guest lost the most time (hard IRQ + exits) in notebook 6's storm
    on the untuned switchboard."""
    from . import scenarios, storm

    h = scenarios.switchboard(trace=False, tuned=False)
    r = storm.run(h, _cpus_storm(), progress=False)
    lost = {c: x["hardirq_ns"] + x["exit_ns"] for c, x in r.cpus().items() if h.cpus[c].vcpus}
    return f"CPU{max(lost, key=lambda c: (lost[c], -c))}"


def _kick_exits() -> tuple[int, int]:
    """vcpu0's EXTERNAL_INTERRUPT exits for 10 GPU interrupts 10 µs apart on the tuned switchboard: without APICv
    (each kick a reschedule IPI) and with it (the posted-interrupt notification, taken in guest mode)."""
    from . import scenarios

    out = []
    for apicv in (False, True):
        h = scenarios.switchboard(apicv=apicv)
        for i in range(10):
            h.raise_msi(GPU, 0, at=(i + 1) * 10_000)
        h.run()
        out.append(h.scenario.vm.vcpus[0].exits["EXTERNAL_INTERRUPT"])
    return (out[0], out[1])


def _posted_kvm_functions() -> int:
    from . import scenarios

    h = scenarios.switchboard(posted=True)
    j = h.raise_msi(GPU, 0)
    h.run()
    return _kvm_hops(j)


# --------------------------------------------------------------------------- 07: level-triggered INTx

def _masked_outcome() -> str:
    from . import scenarios

    h = scenarios.shared_intx()
    h.raise_intx(LEGACY)
    return h.raise_intx(LEGACY, at=h.now + 500).outcome


def _masked_time_ns() -> int:
    from . import Timing, scenarios

    h = scenarios.shared_intx(timing=Timing(guest_handler_ns=10_000))
    dev = h.pci_dev(LEGACY)
    h.raise_intx(LEGACY)
    t0 = h.now
    if not dev.disintx:
        raise RuntimeError("vfio did not mask the card")
    return _step_until(h, lambda: not dev.disintx) - t0


def _non_pci23_errno() -> int:
    from . import scenarios

    return _errno_of(lambda: scenarios.shared_intx(pci_2_3=False))


# --------------------------------------------------------------------------- 08: storms

def _stuck_intx_kstat() -> int:
    """A device on line 16 that no driver claims asserts INTx for good: what /proc/interrupts counts on 16."""
    from . import scenarios

    h = scenarios.shared_intx(trace=False)
    h.add_pci_device("0000:05:00.0", name="orphan", intx_pin=1, gsi=16)
    h.raise_intx("0000:05:00.0")
    h.run(until=1_000_000_000)
    return sum(h.irq_to_desc(16).kstat)


def _glitch_storm_host() -> Any:
    """Notebook 8's glitches-only storm, run: 300 ms of glitches at 1 MHz on line 16 (seed 7)."""
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


# --------------------------------------------------------------------------- 09: posted interrupts

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


# --------------------------------------------------------------------------- 10: your machine

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
    """One exercise: how to compute its answer from the model, the kind of answer, and its hints.

    ``hints`` go from a nudge to the kernel rule; none gives the answer away. ``fmt`` says how a computed
    number is echoed ("hex" for vectors and registers; a tuple gives one format per element of a pair).
    ``choices`` are the options of a multiple-choice question (kind "choice"); ``explain`` is shown once
    the answer is right.
    """

    key: str
    compute: Callable[[], Any]
    kind: str  # "errno", "int", "str", "bool", "pair", "cpu", "choice"
    hints: tuple[str, ...]
    fmt: str | tuple[str, ...] = "dec"
    choices: dict[str, str] = field(default_factory=dict)
    explain: str = ""

    @property
    def notebook(self) -> str:
        """The notebook the exercise lives in, from its key's number."""
        return _NOTEBOOKS.get(self.key[:2], f"{self.key[:2]}-*.ipynb")


_NOTEBOOKS = {"01": "01-switchboard.ipynb", "02": "02-registration.ipynb", "03": "03-dispatch.ipynb",
              "04": "04-eventfd-irqfd.ipynb", "05": "05-injection.ipynb", "06": "06-cpus.ipynb",
              "07": "07-level-intx.ipynb", "08": "08-storms.ipynb", "09": "09-posted-interrupts.ipynb",
              "10": "10-your-machine.ipynb"}

_KIND_TEXT = {
    "errno": "an errno: a name such as 'EINVAL' (or errno.EINVAL), or 0 for success",
    "int": "a number (an int; 0x.. literals or '0x..' strings are fine)",
    "str": "a string",
    "bool": "True or False",
    "pair": "a pair of numbers, (first, second)",
    "cpu": "a CPU: its number, or its column name like 'CPU0'",
    "choice": "the letter of one choice, as a string: 'a', 'b', 'c' or 'd'",
}

WHY_DRAIN = {
    "a": "eventfd_signal() fails while the count is above 0, so vfio could not signal the next interrupt.",
    "b": "Once KVM has taken the interrupt, the eventfd must no longer read as signalled: anyone who polls it "
         "later (QEMU's main loop, a new KVM_IRQFD on the same eventfd) would otherwise see the same interrupt "
         "again and inject it twice.",
    "c": "KVM reads the count to know how many interrupts to inject.",
    "d": "Reading the count tells vfio-pci that it may unmask the device.",
}
WHY_ATOMIC = {
    "a": "Because the fast path runs in the guest, where the host cannot sleep.",
    "b": "Because irqfd_wakeup() is a wait-queue callback: eventfd_signal() calls it with the eventfd's "
         "wait-queue lock held and interrupts off, and here eventfd_signal() itself runs inside vfio's "
         "hard-IRQ handler.",
    "c": "Because a kworker is slower than a direct call, and KVM wants the lowest latency.",
    "d": "Because the vCPU thread is blocked until irqfd_wakeup() returns.",
}
WHY_MASK = {
    "a": "So that the guest does not receive the same interrupt twice.",
    "b": "A level line stays asserted until the device is serviced, and only the guest's driver services it: "
         "unmasked, the line would fire again right after the host's EOI, again and again, on a line eth0 "
         "shares, until the guest ran.",
    "c": "Because an eventfd cannot be signalled from a hard-IRQ handler.",
    "d": "Because KVM's irqfd refuses level-triggered interrupts that are not masked.",
}

WHY_EXIT = {
    "a": "KVM must check whether the interrupt belongs to a passed-through device before the host may see it.",
    "b": "The host owns the physical CPU, its interrupt table and its devices: KVM runs guests with "
         "external-interrupt exiting on (a required VMX control), so a physical interrupt goes back to the host's "
         "handler; the exit is the way back to the host's IDT, not a lookup.",
    "c": "The guest's IDT has no entry for the host's vectors, so the processor raises a fault in the guest first.",
    "d": "The disk's MSI was addressed to the guest's APIC ID, and KVM has to redirect it.",
}
WHY_NO_IPI = {
    "a": "A passed-through device's interrupt never needs a kick: vfio delivers it to the guest directly.",
    "b": "The exit for the GPU's own vector took vcpu0 out of guest mode, and the kick runs on vcpu0's own CPU: "
         "__kvm_vcpu_kick only sends an IPI to a vCPU that is in guest mode on another CPU, and vcpu_enter_guest "
         "sees KVM_REQ_EVENT before the next entry.",
    "c": "The reschedule IPI would be merged into the GPU's vector in CPU1's local APIC.",
    "d": "irqfd_wakeup hands the injection to a kworker on CPU1 instead.",
}

EXERCISES: dict[str, Exercise] = {e.key: e for e in [
    Exercise("01-first-kvm-function", _first_kvm_function, "str", (
        "Each hop has a .file: KVM's functions live under virt/kvm/ or arch/x86/kvm/.",
        "KVM hears of the interrupt only through the eventfd: look for the function eventfd_signal() wakes, "
        "the wait-queue entry KVM hung on the eventfd.")),
    Exercise("01-nic-irq", _nic_irq, "int", (
        "Print the NIC interrupt's journey: its common_interrupt hop names the irq the vector maps to.",
        "Or read host.proc_interrupts(): the first column of the row whose action ends in -TxRx-2.")),
    Exercise("01-nic-reaches-kvm", _nic_reaches_kvm, "bool", (
        "List the files of the NIC interrupt's hops: [h.file for h in nic.hops].",
        "KVM subscribed to one eventfd, the GPU's. Did the NIC's handler signal any eventfd?")),

    Exercise("02-shared-no-dev-id", _shared_no_dev_id, "errno", (
        "Make the call inside try/except KernelError and read the exception's .errname.",
        "With IRQF_SHARED and no dev_id, how would free_irq() know which action of the line to remove? "
        "request_threaded_irq() checks its flags before it looks at the line.")),
    Exercise("02-oneshot-other-order", _oneshot_other_order, "errno", (
        "Make both requests on a fresh host and see whether the second one raises.",
        "6.18's request_irq() adds IRQF_COND_ONESHOT. Read __setup_irq(): what happens when the action already "
        "on the line has IRQF_ONESHOT and the new one has IRQF_COND_ONESHOT?")),
    Exercise("02-irqfd-second-vm", _irqfd_second_vm, "errno", (
        "Make the call inside try/except KernelError and read the exception's .errname.",
        "kvm_irqfd_register() joins the eventfd with add_wait_queue_priority_exclusive(): how many priority "
        "waiters can one eventfd have, across all VMs?")),
    Exercise("02-msix-rows", _msix_rows_after_vector3, "int", (
        "Count the lines of host.proc_interrupts() with a vfio-msix action.",
        "vfio-pci requests an irq only for the vectors that were given an eventfd; with dynamic MSI-X "
        "allocation it adds one later without touching the others.")),

    Exercise("03-msix-hwirq", _msix_hwirq, "int", (
        "Find the row of enp2s0-TxRx-3 in host.proc_interrupts(): the hwirq is the number before '-edge'.",
        "A device's MSI-X domain numbers its interrupts by their index in the device's MSI-X table.")),
    Exercise("03-thread-verdict", _thread_verdict, "int", (
        "Build it (request_threaded_irq with a primary that returns irqlab.IRQ_WAKE_THREAD), raise the two "
        "glitches with h.run() after each, and read irqs_unhandled.",
        "note_interrupt() cannot judge an interrupt whose thread has not run yet: it marks SPURIOUS_DEFERRED and "
        "judges it at the next interrupt, from whether threads_handled moved. Which interrupts have been judged "
        "after the second one?")),
    Exercise("03-unhandled-after-three", lambda: _deaf_line_unhandled(10_000), "int", (
        "Build the fresh line as the question says, run it (h.run()) and read h.irq_to_desc(17).irqs_unhandled.",
        "note_interrupt() increments irqs_unhandled for each IRQ_NONE that comes within HZ/10 (100 ms) of the "
        "previous unhandled one.")),
    Exercise("03-unhandled-aged", lambda: _deaf_line_unhandled(200_000_000), "int", (
        "Build the fresh line as the question says and read h.irq_to_desc(17).irqs_unhandled.",
        "note_interrupt(): when more than HZ/10 has passed since the last unhandled interrupt "
        "(jiffies > last_unhandled + HZ/10), irqs_unhandled is not incremented: the count starts again.")),
    Exercise("03-edge-replays", _edge_replays, "int", (
        "Give the line a handler that counts its calls (calls.append(irq)), then run the model.",
        "While the line is disabled, each arrival sets IRQS_PENDING: one bit, not a counter. "
        "check_irq_resend() replays what that bit says.")),
    Exercise("03-level-replay", _level_replay_function, "str", (
        "Print the journey lvl and read the hop right after the one where the flow handler refused.",
        "check_irq_resend() does nothing for a level line: the pin is still asserted, and the IO-APIC sends "
        "the vector again by itself as soon as genirq lets the line through the chip again.")),

    Exercise("04-semaphore-reads", _semaphore_reads, "int", (
        "Read in a loop until the read raises KernelError (with EFD_NONBLOCK an empty eventfd does not block).",
        "EFD_SEMAPHORE: each read() returns 1 and subtracts 1 from the count.")),
    Exercise("04-write-past-max", _write_past_max_errno, "errno", (
        "Make the write inside try/except KernelError and read the exception's .errname.",
        "eventfd_write() proceeds only if ULLONG_MAX - count > value; a non-blocking writer that would have to "
        "wait for a reader gets the errno that means 'try again later'.")),
    Exercise("04-saturated-poll", _saturated_poll, "int", (
        "Signal, then call f.poll().",
        "eventfd_poll(): EPOLLIN if count > 0, EPOLLERR if count == ULLONG_MAX, EPOLLOUT if count < ULLONG_MAX - 1. "
        "Add up the bits (irqlab.eventfd.EPOLLIN and friends)."), fmt="hex"),
    Exercise("04-count-after-irqfd", _count_after_irqfd, "int", (
        "What does irqfd_wakeup() do with the eventfd's count before it injects?",
        "eventfd_ctx_do_read() is the kernel's read: without EFD_SEMAPHORE it takes the whole count.")),
    Exercise("04-why-drain", lambda: "b", "choice", (
        "While the count is above 0, what does eventfd_poll() report, and who may poll this eventfd?",
        "kvm_irqfd_assign() polls the eventfd and, if it reports EPOLLIN, queues an injection at once; QEMU's "
        "main loop polls eventfds too. Before Linux 5.11 irqfd_wakeup() did not drain the count."),
        choices=WHY_DRAIN,
        explain="Linux 5.11 added the eventfd_ctx_do_read() to irqfd_wakeup() (commit b59e00dd8cda, "
                "\"kvm/eventfd: Drain events from eventfd in irqfd_wakeup()\"), with the priority wait queue "
                "that keeps userspace from being woken at all."),
    Exercise("04-why-atomic", lambda: "b", "choice", (
        "Who calls irqfd_wakeup(), and what does the caller hold while it does?",
        "Read eventfd_signal_mask() in fs/eventfd.c (spin_lock_irqsave of ctx->wqh.lock around "
        "wake_up_locked_poll) and the comment above irqfd_wakeup() in virt/kvm/eventfd.c."),
        choices=WHY_ATOMIC,
        explain="So the fast path may only do what is safe with interrupts off: kvm_arch_set_irq_inatomic() "
                "delivers an MSI route through the RCU-protected APIC map. kvm_set_irq() takes the IOAPIC's "
                "and PIC's spinlocks, which other paths hold with interrupts on: that goes to irqfd_inject() "
                "in a kworker."),
    Exercise("04-work-coalesced", _work_path_deliveries, "int", (
        "Four of the five signals arrive while irqfd_inject is still queued.",
        "queue_work_on() returns false for a work item that is already pending, and one irqfd_inject() run "
        "raises the GSI once.")),

    Exercise("05-dest-vector", _decode_dest_vector, "pair", (
        "irqlab.msi.decode(address, data) decodes every field.",
        "Address bits 19:12 are the destination ID; data bits 7:0 are the vector."), fmt=("dec", "hex")),
    Exercise("05-dest-mode", _dest_mode, "str", (
        "Address bit 2 is DM: 0 physical, 1 logical.",
        "0xC is 0b1100: which of bits 3 and 2 are set?")),
    Exercise("05-queue3-vcpu", _queue3_vcpu, "int", (
        "Raise queue 3, run the model, and see which vCPU's delivered counter moved.",
        "GSI 27's route is an MSI message: decode its address; which vCPU has that APIC ID?")),
    Exercise("05-ppr", _ppr_after_ack, "int", (
        "Build it: KvmLapic(), set_tpr(), apic_accept_irq() twice, kvm_cpu_get_interrupt(), then read .ppr.",
        "The vCPU acknowledges the highest IRR vector whose class (v & 0xF0) is above PPR. Then PPR = TPR if "
        "TPR's class >= the in-service vector's class, else the in-service class."), fmt="hex"),
    Exercise("05-exits-per-interrupt", _exits_per_interrupt, "int", (
        "One exit gets the interrupt in. What does the guest's EOI write cost when KVM emulates the APIC?",
        "Without APICv the kick's IPI exits as EXTERNAL_INTERRUPT, and the guest's write to the emulated EOI "
        "register traps too.")),

    Exercise("06-disk-kvm-functions", _disk_kvm_functions, "int", (
        "Which of KVM's functions run for any external interrupt that arrives in guest mode, whatever its vector?",
        "vmx_handle_exit_irqoff() → handle_external_interrupt_irqoff() (with kvm_before_interrupt() and "
        "kvm_after_interrupt() around the call of the host's IDT entry), then the exit handler for "
        "EXIT_REASON_EXTERNAL_INTERRUPT. Does the disk's eventfd-less path add any?")),
    Exercise("06-why-exit", lambda: "b", "choice", (
        "Read handle_external_interrupt_irqoff() in arch/x86/kvm/vmx/vmx.c: what does it take from the exit, "
        "and what does it call with it?",
        "KVM_REQUIRED_VMX_PIN_BASED_VM_EXEC_CONTROL in arch/x86/kvm/vmx/vmx.h lists PIN_BASED_EXT_INTR_MASK: "
        "whose interrupt is it, and whose handler must run?"),
        choices=WHY_EXIT,
        explain="handle_external_interrupt_irqoff() reads the vector from the exit's interruption information "
                "(VM_EXIT_ACK_INTR_ON_EXIT) and calls the host's IDT entry for it; from common_interrupt() on, "
                "genirq dispatches as on any CPU. Keep host interrupts off the vCPUs' CPUs and these exits go."),
    Exercise("06-res-cpu", _res_cpu, "cpu", (
        "The kick is an IPI: to which CPU does __kvm_vcpu_kick() send it — the one that took the GPU's "
        "interrupt, or another?",
        "smp_send_reschedule(vcpu->cpu): the reschedule IPI goes to the CPU the vCPU runs on, and "
        "sysvec_reschedule_ipi() counts it there (irq_resched_count, the RES row).")),
    Exercise("06-why-no-ipi", lambda: "b", "choice", (
        "In what mode is vcpu0 while its own CPU runs the GPU's hard-IRQ handler?",
        "Read __kvm_vcpu_kick() in virt/kvm/kvm_main.c: when is smp_send_reschedule() called, and what does "
        "kvm_arch_vcpu_should_kick() test?"),
        choices=WHY_NO_IPI,
        explain="The interrupt waits in vcpu0's IRR with KVM_REQ_EVENT set; vcpu_enter_guest() injects it at the "
                "re-entry that ends the exit: one IPI's latency less, but vcpu0's CPU now runs the GPU's hard "
                "IRQ itself."),
    Exercise("06-busiest-cpu", _busiest_guest_cpu, "cpu", (
        "Draw the untuned host with viz.cpu_diagram(): which device vectors land on a CPU that runs a vCPU?",
        "Each host interrupt on a vCPU's CPU costs that guest host_irq_ns + vmexit_ns; each GPU interrupt costs "
        "the vCPU it is routed to one kick exit. Add them up per CPU.")),
    Exercise("06-kick-exits", _kick_exits, "pair", (
        "How does the kick reach vcpu0's CPU without APICv, and what does that do to a CPU in guest mode?",
        "Without APICv: a reschedule IPI, an external interrupt, one exit each. With APICv "
        "kvm_vcpu_trigger_posted_interrupt() sends POSTED_INTR_VECTOR, which the processor handles in guest "
        "mode.")),
    Exercise("06-posted-kvm-functions", _posted_kvm_functions, "int", (
        "With a posted IRTE, who writes the vector into the vCPU's posted-interrupt descriptor?",
        "The IOMMU posts it and the processor delivers it in guest mode: does the host take an interrupt at all, "
        "and who would wake KVM's irqfd?")),

    Exercise("07-masked-outcome", _masked_outcome, "str", (
        "Is the card's Status.Interrupt bit still set when it asserts again?",
        "While INTx Disable holds the card's line down, a second assertion merges into the first at the device. "
        "Which label of irqlab.Outcome names that? ([o.label for o in irqlab.Outcome])")),
    Exercise("07-masked-ns", _masked_time_ns, "int", (
        "Step the model (host.sched.next_due(), host.run(until=...)) and watch the card's DisINTx bit "
        "(host.pci_dev(bdf).disintx).",
        "The card is masked from vfio's hard-IRQ handler until the resample unmasks it: add up what happens in "
        "between (the inject work, the kick, the guest's handler, the EOI).")),
    Exercise("07-why-mask", lambda: "b", "choice", (
        "What does a level-triggered line do after the host's EOI if the device still asserts it?",
        "Who can service (clear) the passed-through card's interrupt condition, and when does it run?"),
        choices=WHY_MASK,
        explain="vfio_intx_handler() sets INTx Disable (pci_check_and_mask_intx) so the card drops the line at "
                "once; the shared line keeps serving eth0. The guest's EOI comes back through the resampler "
                "and vfio's unmask eventfd."),
    Exercise("07-non-pci23", _non_pci23_errno, "errno", (
        "Build the machine inside try/except irqlab.KernelError and read the exception's .errname.",
        "Without INTx Disable vfio-pci cannot mask just its device: it requests the line without IRQF_SHARED. "
        "What does __setup_irq() say to that on a line eth0 already shares?")),

    Exercise("08-stuck-kstat", _stuck_intx_kstat, "int", (
        "Each time the flow handler EOIs the pin, the still-asserted line fires again: when does that stop?",
        "kstat counts every interrupt that passes the flow handler's gate. note_interrupt() disables the line at "
        "the 100,000th counted one (more than 99,900 unhandled), and the next interrupt finds it disabled.")),
    Exercise("08-disable-index", _glitch_disable_index, "int", (
        "Run the storm, then find the disable time (h.spurious_disabled) in the storm's times with "
        "np.searchsorted.",
        "Counting starts at the first unhandled interrupt; the window closes at the 100,000th counted one, and "
        "that is when the line is disabled. Only what CPU0 takes is counted: a glitch that arrives while it is "
        "still in the last one's hard IRQ (host_irq_ns) is gone. Event indexes start at 0.")),
    Exercise("08-slow-glitches", _slow_glitch_reports, "int", (
        "Run that storm and count 'nobody cared' in the host's dmesg().",
        "At 5 glitches a second, more than HZ/10 passes between two of them: what does note_interrupt() do to "
        "irqs_unhandled then?")),
    Exercise("08-storm-kstat", _glitch_storm_kstat, "int", (
        "sum(h7.irq_to_desc(16).kstat) after the storm of 08-disable-index.",
        "kstat is incremented only after the flow handler's gate (irq_can_handle_actions): interrupts held or "
        "dropped on the disabled line are not counted, and neither are the poller's runs of the handlers.")),

    Exercise("09-not-postable", _broadcast_outcome, "str", (
        "Read the journey: whose functions run now, and how does it end?",
        "kvm_pi_update_irte() posts only an MSI route to a single vCPU (Fixed or Lowest priority); for any other "
        "route the IRTE stays remapped and the interrupt takes the host's path. Answer with an irqlab.Outcome "
        "label.")),
    Exercise("09-posted-vfio-row", _posted_vfio_row_total, "int", (
        "Parse the /proc/interrupts of the posted storm and read the row's total.",
        "A posted interrupt never enters the host's common_interrupt: who would count it?")),
    Exercise("09-halted-row", _halted_wakeup_row, "str", (
        "posted_interrupt_counters() gives the per-CPU counts of the posted-interrupt rows: which one moved?",
        "A halted vCPU's descriptor has NV = the wakeup vector, and the host's handler of that vector counts "
        "its own row (three capital letters).")),

    Exercise("10-vfio-rows", _sample_vfio_rows, "int", (
        "A row belongs to vfio when one of its actions starts with 'vfio-'.",
        "ProcInterrupts.vfio_rows() finds them.")),
    Exercise("10-pin-total", _sample_pin_total, "int", (
        "posted_interrupt_counters() gives the per-CPU counts of the PIN row.",
        "Add up the PIN row's counts over all CPUs.")),
    Exercise("10-busiest-cpu", _sample_busiest, "cpu", (
        "Add up each CPU's column over the device rows only (not LOC and the other arch rows).",
        "busiest_cpu() does that for you.")),
]}

# ------------------------------------------------------------------------------------- student state

_cache: dict[str, Any] = {}
_wrong: dict[str, list[Any]] = {}   # the distinct wrong answers given, normalized, in order
_level: dict[str, int] = {}         # how many hints have been shown
_answered: set[str] = set()         # an answer of the right kind was given (reveals may run)


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


def answered(key: str) -> bool:
    """True once an answer of the right kind was given to ``key`` (right or wrong)."""
    return key in _answered


def reset(key: str | None = None) -> None:
    """Forget the attempts (of one exercise, or of all): hints start again from the first."""
    for d in (_wrong, _level):
        if key is None:
            d.clear()
        else:
            d.pop(key, None)
    if key is None:
        _answered.clear()
    else:
        _answered.discard(key)


WIDTH = 100  # JupyterLab breaks longer output lines anywhere, even mid-word


def _say(text: str) -> None:
    """Print ``text``, each of its lines wrapped at WIDTH on spaces, continuation lines indented."""
    out = []
    for line in text.split("\n"):
        indent = line[:len(line) - len(line.lstrip(" "))]
        out.append(textwrap.fill(line, WIDTH, subsequent_indent=indent + "   ", break_long_words=False,
                                 break_on_hyphens=False) if line.strip() else line)
    print("\n".join(out))


def _unknown(key: str) -> str:
    return f"✗ there is no exercise {key!r} (known: {', '.join(EXERCISES)})"


def hint(key: str) -> str:
    """Show the next hint of ``key`` (the one after those already shown) and return it."""
    if key not in EXERCISES:
        _say(_unknown(key))
        return ""
    e = EXERCISES[key]
    level = min(_level.get(key, 0) + 1, len(e.hints))
    _level[key] = level
    text = e.hints[level - 1]
    _say(f"Hint {level}/{len(e.hints)} for {key}: {text}")
    return text


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
    raise _WrongKind("that is not a number")


def _as_errno(a: Any) -> int:
    if isinstance(a, str):
        name = a.strip().lstrip("-").upper()
        if name in ("0", "OK", "SUCCESS"):
            return 0
        if name.startswith("E") and isinstance(getattr(_errno, name, None), int):
            return getattr(_errno, name)
        raise _WrongKind("that is not an errno name (like 'EINVAL')")
    if isinstance(a, OSError) and a.errno is not None:
        return a.errno
    return abs(_as_int(a))  # the kernel returns -EBUSY; userspace sees errno EBUSY: accept both


def _as_str(a: Any) -> str:
    if not isinstance(a, str):
        raise _WrongKind(f"that is a {type(a).__name__}, not a string")
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
    raise _WrongKind("that is not True or False")


def _as_pair(a: Any) -> tuple[int, int]:
    if isinstance(a, (str, bytes)) or not hasattr(a, "__len__") or len(a) != 2:
        raise _WrongKind("that is not a pair (first, second)")
    return (_as_int(a[0]), _as_int(a[1]))


def _as_cpu(a: Any) -> str:
    if isinstance(a, str) and a.strip().upper().startswith("CPU"):
        return f"CPU{_as_int(a.strip()[3:])}"
    return f"CPU{_as_int(a)}"


def _as_choice(a: Any) -> str:
    if not isinstance(a, str):
        raise _WrongKind(f"that is a {type(a).__name__}, not a letter in quotes")
    s = a.strip().strip("()[].'\"").strip().lower()
    if len(s) != 1 or not s.isalpha():
        raise _WrongKind("that is not one letter")
    return s


_NORMALIZE: dict[str, Callable[[Any], Any]] = {
    "errno": _as_errno, "int": _as_int, "str": _as_str, "bool": _as_bool, "pair": _as_pair, "cpu": _as_cpu,
    "choice": _as_choice,
}


# ------------------------------------------------------------------------------ echoing as typed

_ANSWER_LINE = re.compile(r"^answer\s*=(?!=)\s*(.+)$")


def _cell_source() -> str | None:
    """The source of the notebook cell being run, if we are in IPython."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    ip = get_ipython()
    if ip is None:
        return None
    hist = ip.user_ns.get("_ih") or []
    return hist[-1] if hist else None


def _strip_comment(expr: str) -> str:
    """``expr`` without a trailing ``# comment`` (a '#' inside a string stays)."""
    try:
        toks = list(tokenize.generate_tokens(io.StringIO(expr).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return expr.strip()
    for t in toks:
        if t.type == tokenize.COMMENT:
            return expr[:t.start[1]].rstrip()
    return expr.strip()


def _is_literal(node: ast.AST) -> bool:
    """A value the student typed (1, 0x70, 'EBUSY', errno.EBUSY, -1, (3, 0xb1)), not a computation."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return _is_literal(node.operand)
    if isinstance(node, (ast.Tuple, ast.List)):
        return all(_is_literal(x) for x in node.elts)
    if isinstance(node, ast.Attribute):  # errno.EBUSY, irqlab.IRQ_NONE: a constant, not e.errname
        return isinstance(node.value, ast.Name) and node.attr.isupper()
    return isinstance(node, ast.Name) and node.id.isupper()


def _typed(source: str | None) -> str | None:
    """The right-hand side of the cell's last ``answer = <literal>`` line, as typed; None if computed."""
    if not source:
        return None
    rhs = None
    for line in source.splitlines():
        m = _ANSWER_LINE.match(line.strip())
        if m:
            rhs = _strip_comment(m.group(1))
    if not rhs:
        return None
    try:
        node = ast.parse(rhs, mode="eval").body
    except SyntaxError:
        return None
    return rhs if _is_literal(node) else None


def _fmt_value(value: Any, fmt: str | tuple[str, ...]) -> str:
    """A computed answer, shown in the exercise's base (hex for vectors and registers)."""
    if isinstance(fmt, tuple) and isinstance(value, (tuple, list)) and len(value) == len(fmt):
        return "(" + ", ".join(_fmt_value(v, f) for v, f in zip(value, fmt)) + ")"
    if fmt == "hex" and not isinstance(value, bool) and hasattr(value, "__index__"):
        return hex(int(value))
    return repr(value)


def _echo(answer: Any, e: Exercise) -> str:
    return _typed(_cell_source()) or _fmt_value(answer, e.fmt)


# ------------------------------------------------------------------------------ the check

def _kind_text(e: Exercise) -> str:
    if e.kind == "choice" and e.choices:
        letters = list(e.choices)
        return (f"the letter of one choice, as a string: "
                + ", ".join(f"'{c}'" for c in letters[:-1]) + f" or '{letters[-1]}'")
    return _KIND_TEXT[e.kind]


def _hint_line(key: str, e: Exercise, escalate: bool) -> str:
    """The hint for this attempt: the next one after a new wrong answer, the same one after a repeat."""
    if escalate:
        _level[key] = _level.get(key, 0) + 1
    level = max(_level.get(key, 0), 1)
    if level > len(e.hints):
        return (f"   No more hints: the worked answer is in solutions/{e.notebook}. "
                f"The last hint was: {e.hints[-1]}")
    return f"   Hint {level}/{len(e.hints)}: {e.hints[level - 1]}"


def ex(key: str, answer: Any) -> bool:
    """Check the answer to exercise ``key``: prints ✓ (and why), or ✗ with the next hint; returns True/False."""
    if key not in EXERCISES:
        _say(_unknown(key))
        return False
    e = EXERCISES[key]
    if answer is ...:
        _say(f"… {key}: replace the ... with your answer: {_kind_text(e)}.")
        return False
    typed = _echo(answer, e)
    try:
        want = expected(key)
    except Exception as err:  # a model bug must not stop the notebook; the tests catch it
        _say(f"✗ {key}: the model could not compute the expected answer ({type(err).__name__}: {err}); "
              "please report it")
        return False
    norm = _NORMALIZE[e.kind]
    try:
        given = norm(answer)
    except _WrongKind as why:
        _say(f"✗ {key}: {typed}: {why}. This exercise wants {_kind_text(e)}.")
        return False
    if e.kind == "choice" and e.choices and given not in e.choices:
        _say(f"✗ {key}: {typed}: there is no choice '{given}'. This exercise wants {_kind_text(e)}.")
        return False
    _answered.add(key)
    if given == norm(want):
        _say(f"✓ {key}: right — {typed}." + (f"\n   {e.explain}" if e.explain else ""))
        return True
    seen = _wrong.setdefault(key, [])
    if given in seen:
        _say(f"✗ {key}: {typed} again — still not it.\n{_hint_line(key, e, escalate=False)}")
        return False
    seen.append(given)
    _say(f"✗ {key}: {typed} is not it (attempt {len(seen)}).\n{_hint_line(key, e, escalate=True)}")
    return False


q = ex  # check.q("02-shared-no-dev-id", answer) reads as "question"


# ------------------------------------------------------------------------------ %%reveal

def _reveal(line: str, cell: str) -> None:
    """``%%reveal KEY``: run the cell only once an answer to KEY was given; otherwise say so."""
    key = line.strip()
    if key not in EXERCISES:
        _say(_unknown(key))
        return
    if key not in _answered:
        _say(f"… {key}: this cell shows the answer. Answer the exercise first (replace the ... in its cell "
             f"above and run it), then run this cell again.")
        return
    try:
        from IPython import get_ipython
    except ImportError:  # the magic is only registered in IPython; nothing to run the cell with otherwise
        return
    get_ipython().run_cell(cell, store_history=False)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext irqlab.check``: register the ``%%reveal`` cell magic."""
    ipython.register_magic_function(_reveal, magic_kind="cell", magic_name="reveal")


def _register() -> None:
    try:
        from IPython import get_ipython
    except ImportError:  # plain Python: checks work, there are no cells to reveal
        return
    ip = get_ipython()
    if ip is not None:
        load_ipython_extension(ip)


_register()
