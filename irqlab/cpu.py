"""The host's CPUs: what each one does at every instant (idle, a vCPU in guest mode, hard-IRQ context), its local
APIC's queue of host vectors, the time hard interrupts take on it, and the IPIs between CPUs.

Models arch/x86/kernel/irq.c (``common_interrupt``, ``sysvec_kvm_posted_intr_ipi``,
``sysvec_kvm_posted_intr_wakeup_ipi``, the PIN/PIW rows of ``arch_show_interrupts``), arch/x86/kernel/smp.c
(``sysvec_reschedule_ipi``, the RES row), arch/x86/kernel/apic/ipi.c (``native_smp_send_reschedule``), the local
APIC's IRR and ISR (with interrupts off in hard-IRQ context a vector that arrives waits in the IRR, one per vector;
the highest pending vector is taken first) and the VM exit of arch/x86/kvm/vmx/vmx.c for a host interrupt that
arrives while the CPU runs a guest (``vmx_handle_exit_irqoff`` → ``handle_external_interrupt_irqoff`` calls the
host's IDT entry for the vector between ``kvm_before_interrupt`` and ``kvm_after_interrupt``; then
``handle_external_interrupt`` counts ``irq_exits``). Simplification: a hard interrupt's state changes happen when
the CPU takes it, which then holds the CPU for ``Timing.host_irq_ns`` (plus ``Timing.vmexit_ns`` for the exit and
re-entry when it took the CPU out of a guest); system vectors (RES, PIN, PIW) take no time; one vCPU per CPU takes
part (``Cpu.curr``: the model does not schedule threads) and work items are counted, not scheduled.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from .ledger import Outcome
from .sched import Timer
from .trace import HARDWARE
from .uapi import POSTED_INTR_VECTOR, POSTED_INTR_WAKEUP_VECTOR

if TYPE_CHECKING:
    from .kernel import Kernel

__all__ = ["Cpu", "RESCHEDULE_VECTOR", "SYSTEM_VECTORS", "TIME_PARTS"]

#: arch/x86/include/asm/irq_vectors.h
RESCHEDULE_VECTOR = 0xFD
X86_IRQ = "arch/x86/kernel/irq.c"
VMX = "arch/x86/kvm/vmx/vmx.c"
X86_H = "arch/x86/kvm/x86.h"
#: the system vectors the model sends between CPUs: /proc/interrupts row, handler, file
SYSTEM_VECTORS = {
    RESCHEDULE_VECTOR: ("RES", "sysvec_reschedule_ipi", "arch/x86/kernel/smp.c"),
    POSTED_INTR_VECTOR: ("PIN", "sysvec_kvm_posted_intr_ipi", X86_IRQ),
    POSTED_INTR_WAKEUP_VECTOR: ("PIW", "sysvec_kvm_posted_intr_wakeup_ipi", X86_IRQ),
}
#: how a CPU's time splits (ns): hard-IRQ handlers, VM exits and entries for interrupts, a vCPU in guest mode, idle
TIME_PARTS = ("hardirq", "exit", "guest", "idle")


@dataclass(eq=False)
class Job:
    """A vector at the local APIC: the interrupt it carries (or the journey an IPI continues) and what the CPU runs
    when it takes it (the IDT entry: ``common_interrupt`` or a system vector's handler)."""

    vector: int
    ev: Any
    t: int
    run: Callable[[Any], None]
    on_end: list = field(default_factory=list)   # what its EOI does (genirq: a level line still asserted)


def _hop(ev: Any, *a: Any) -> None:
    if ev is not None and getattr(ev, "journey", None) is not None:
        ev.hop(*a)


class Cpu:
    """One host CPU. ``host.cpus[i]``: ``state`` ("idle", "guest", "hardirq"), ``curr`` (the vCPU it runs),
    ``irr`` (vectors waiting), ``time_split()``; counters ``taken``, ``waited``, ``merged``, ``busy_periods``,
    ``exits``, ``work_runs``."""

    def __init__(self, kernel: "Kernel", cpu: int):
        self.kernel = kernel
        self.id = cpu
        self.vcpus: list[Any] = []           # the vCPU threads pinned here, in placement order
        self.irr: dict[int, Job] = {}        # host vectors waiting (one per vector)
        self.job: Job | None = None          # the hard interrupt in service
        self.job_end = 0
        self.busy_start: int | None = None   # start of the current busy period (the CPU in hard-IRQ context)
        self.exited: Any = None              # the vCPU the current busy period took out of guest mode
        self.waiters: list[Callable[[], None]] = []  # guest-side steps due while the CPU was busy
        self.timer = Timer(self._timer_fn, name=f"CPU{cpu}: end of hard IRQ", early=cpu)
        self.taken = 0          # vectors the CPU took (device and system)
        self.waited = 0         # of those, the ones that waited in the IRR
        self.merged = 0         # arrivals merged into their vector's pending one
        self.busy_periods = 0
        self.exits = 0          # busy periods that took a vCPU out of guest mode
        self.work_runs = 0      # work items run by this CPU's kworkers
        self._hardirq = self._exit = 0       # prepaid at each job's start
        self._guest = self._idle = 0         # free time, accounted up to _mark
        self._mark = 0
        self._cur = (0, 0, 0)                # current job: start, exit part, handler part
        self._after: dict[int, list[Callable[[], None]]] = {}  # vector -> what to do once it has been taken
        self._in_take = 0
        self._ending = False
        self._cur_vec: int | None = None     # the vector in service (until its EOI at the job's end)

    def __repr__(self) -> str:
        v = self.curr
        return (f"<CPU{self.id} {self.state}" + (f" vm{v.vm.id}/vcpu{v.id} {v.mode}" if v is not None else "")
                + (f" IRR={[f'0x{x:02x}' for x in sorted(self.irr)]}" if self.irr else "") + ">")

    # what the CPU runs ----------------------------------------------------------------------------------
    @property
    def curr(self) -> Any:
        """The vCPU this CPU runs: the first running vCPU pinned here, else the first halted one (the model does
        not time-slice two vCPU threads: the others on this CPU keep the CPU-less delivery windows)."""
        for v in self.vcpus:
            if v.mode == "running":
                return v
        return self.vcpus[0] if self.vcpus else None

    @property
    def busy(self) -> bool:
        """In hard-IRQ context now (interrupts off: a vector that arrives waits in the IRR)."""
        self.catch_up()
        return self.job is not None or self._in_take > 0 or self._ending

    @property
    def state(self) -> str:
        """"hardirq", "guest" (its vCPU in VMX non-root mode) or "idle"."""
        if self.busy:
            return "hardirq"
        v = self.curr
        return "guest" if v is not None and v.mode == "running" else "idle"

    def in_guest(self) -> bool:
        v = self.curr
        return not self.busy and v is not None and v.mode == "running"

    # the local APIC ---------------------------------------------------------------------------------------
    def apic_accept(self, vector: int, ev: Any, run: Callable[[Any], None]) -> None:
        """A vector arrives now: taken at once if the CPU is not in hard-IRQ context, else it waits in the IRR
        (merged into the pending one if its bit is set already)."""
        self.catch_up()
        k = self.kernel
        job = Job(vector, ev, k.now, run)
        if self.job is None and not self._in_take and not self._ending:
            self._take(job, False)
            return
        if vector in self.irr:
            self.merged += 1
            sysv = SYSTEM_VECTORS.get(vector)
            _hop(ev, "local APIC: IRR", HARDWARE, "cpu", f"CPU{self.id} is in hard-IRQ context and vector "
                 f"0x{vector:02x} is pending in its IRR already: merged into it"
                 + (f" (one {sysv[0]} counted)" if sysv else ""))
            if sysv is None and ev is not None and ev.real and not ev.done:
                ev.settle(Outcome.COALESCED_APIC)
            return
        self.irr[vector] = job
        _hop(ev, "local APIC: IRR", HARDWARE, "cpu", f"CPU{self.id} is in hard-IRQ context"
             + (f" (vector 0x{self.job.vector:02x} until {self.job_end:,} ns)" if self.job is not None else "")
             + f": vector 0x{vector:02x} waits in its IRR")

    def _take(self, job: Job, waited: bool) -> None:
        """The CPU takes ``job`` now: out of the guest first if it was running one (a VM exit), then the IDT
        entry; the CPU then stays in hard-IRQ context for the job's cost."""
        k = self.kernel
        sysv = SYSTEM_VECTORS.get(job.vector)
        cost = 0 if sysv else k.timing.host_irq_ns
        new_period = self.busy_start is None
        v = self.curr if new_period else None
        exit_ = k.timing.vmexit_ns if v is not None and v.mode == "running" else 0
        if not exit_:
            v = None
        self.taken += 1
        self.waited += waited
        ev = job.ev
        self._cur_vec = job.vector if cost + exit_ else None
        if cost + exit_:
            if new_period:
                self._account_free(k.now)
                self.busy_start = k.now
                self.busy_periods += 1
            self.job, self.job_end = job, k.now + cost + exit_
            self._hardirq += cost
            self._exit += exit_
            self._cur = (k.now, exit_, cost)
            k.sched.mod_timer(self.timer, self.job_end)
        if waited:
            _hop(ev, "local APIC: IRR → ISR", HARDWARE, "cpu", f"CPU{self.id} takes vector 0x{job.vector:02x} from "
                 f"its IRR: it waited {k.now - job.t:,} ns behind the hard interrupts before it")
        if v is not None:
            self.exited = v
            self.exits += 1
            v.vm_exit_external_interrupt(job.vector, ev)
        prev, k.this_cpu = k.this_cpu, self.id
        self._in_take += 1   # in hard-IRQ context while the handler runs, even one that takes no time
        try:
            job.run(ev)
        finally:
            k.this_cpu = prev
            self._in_take -= 1
        if job.vector in self._after and job.vector not in self.irr:
            for fn in self._after.pop(job.vector):
                fn()
        if not cost + exit_ and self.job is None and self.irr and not self._ending and not self._in_take:
            self.job, self.job_end = job, k.now   # what arrived while a handler of no time ran: taken now
            self._end_job()
        if v is not None:
            _hop(ev, "kvm_after_interrupt", X86_H, "kvm", f"vcpu{v.id}: handling_intr_from_guest = 0")
            v.handle_external_interrupt(ev)

    def outstanding(self, vector: int) -> bool:
        """The vector waits in this CPU's IRR or is in service (its handler has not written EOI yet)."""
        self.catch_up()
        return vector in self.irr or self._cur_vec == vector

    def remote_irr(self, desc: Any, vector: int, ev: Any) -> None:
        """A level IO-APIC pin asserted while its last message is outstanding: remote IRR is set, the pin sends
        nothing until the EOI. A device's assertion waits there (its Status bit holds it; the EOI finds the line
        still asserted and the pin sends again); a glitch is gone."""
        if ev is None or not ev.real or ev.done:
            return
        if ev.device is not None and ev.device.intx_status_event is ev:
            _hop(ev, "IO-APIC: remote IRR", HARDWARE, "device", f"pin {desc.hwirq}: vector 0x{vector:02x} is still "
                 f"outstanding on CPU{self.id} (until its EOI): the pin holds the level; the EOI sends it again")
            ev.settle(Outcome.PENDING)
        else:
            _hop(ev, "IO-APIC: remote IRR", HARDWARE, "device", f"pin {desc.hwirq}: vector 0x{vector:02x} is still "
                 f"outstanding on CPU{self.id}: the pin sends nothing for this glitch")
            ev.settle(Outcome.COALESCED_APIC)

    def at_eoi(self, fn: Callable[[], None]) -> bool:
        """Run ``fn`` when the hard interrupt this CPU is running ends (its EOI); False if it runs none."""
        if self.job is None:
            return False
        self.job.on_end.append(fn)
        return True

    def _timer_fn(self) -> None:
        self.catch_up()

    def catch_up(self) -> None:
        """End the hard interrupts due by now (a CPU's events at an instant come before everything else then)."""
        if self._in_take or self._ending:
            return
        while self.job is not None and self.job_end <= self.kernel.now:
            self._end_job()

    def _end_job(self) -> None:
        t = self.job_end
        ended, self.job = self.job, None
        self._cur_vec = None
        self._ending = True   # still in hard-IRQ context while it takes what waits
        try:
            for fn in ended.on_end:   # its EOI (a level pin still asserted sends again: it waits like the rest)
                fn()
            while self.irr:   # the highest pending vector; system vectors take no time, so all of them go first
                job = self.irr.pop(max(self.irr))
                self._take(job, True)
                if self.job is not None:
                    return
        finally:
            self._ending = False
        self._end_busy(t)

    def _end_busy(self, t: int) -> None:
        self.busy_start = None
        self._mark = t
        if self.timer.pending:
            self.kernel.sched.del_timer(self.timer)
        v, self.exited = self.exited, None
        if v is not None and v.pcpu == self.id and v.mode == "running":
            v.cpu_reenter()
        waiters, self.waiters = self.waiters, []
        for w in waiters:
            w()

    def after_vector(self, vector: int, fn: Callable[[], None]) -> None:
        """Run ``fn`` once this CPU has taken what waits for ``vector`` (now, if nothing does): a moved irq's old
        vector is released then."""
        self.catch_up()
        if vector in self.irr or (self.job is not None and self.job.vector == vector):
            self._after.setdefault(vector, []).append(fn)
        else:
            fn()

    def when_free(self, fn: Callable[[], None]) -> bool:
        """Run ``fn`` at the end of the current busy period; False (and nothing queued) if the CPU is free now."""
        if not self.busy:
            return False
        self.waiters.append(fn)
        return True

    # system vectors -----------------------------------------------------------------------------------------
    def send_ipi(self, vector: int, ev: Any, then: Callable[[Any], None] | None = None) -> None:
        """An IPI (RES, PIN, PIW) arrives now; its handler counts its /proc/interrupts row when the CPU takes it."""
        row, fn, file = SYSTEM_VECTORS[vector]
        k = self.kernel

        def run(e: Any) -> None:
            k.arch_count(row, self.id)
            _hop(e, fn, file, "lapic", f"CPU{self.id}: {row} (vector 0x{vector:02x}) counted; apic_eoi")
            if then is not None:
                then(e)
        self.apic_accept(vector, ev, run)

    # placement and time ----------------------------------------------------------------------------------------
    def _account_free(self, until: int) -> None:
        d = until - self._mark
        if d > 0:
            v = self.curr
            if v is not None and v.mode == "running":
                self._guest += d
            else:
                self._idle += d
        self._mark = max(self._mark, until)

    def before_change(self) -> None:
        """A vCPU is placed, moved or changes mode: account the CPU's free time so far as it was."""
        self.catch_up()
        if self.job is None:
            self._account_free(self.kernel.now)

    def time_split(self) -> dict[str, int]:
        """Nanoseconds since boot in hard-IRQ handlers, VM exits and entries for interrupts, guest mode and idle
        (they add up to ``host.now``); ``work`` beside them: ``work_runs × Timing.work_ns`` of kworker time
        (counted, not scheduled: it overlaps the guest's or idle time)."""
        self.catch_up()
        now = self.kernel.now
        hard, ex = self._hardirq, self._exit
        guest, idle = self._guest, self._idle
        if self.job is not None:   # take back the part of the current job still to come
            start, e, c = self._cur
            done = now - start
            ex -= e - min(done, e)
            hard -= c - min(max(done - e, 0), c)
        else:
            d = now - self._mark
            v = self.curr
            if v is not None and v.mode == "running":
                guest += d
            else:
                idle += d
        return {"hardirq": hard, "exit": ex, "guest": guest, "idle": idle,
                "work": self.work_runs * self.kernel.timing.work_ns}
