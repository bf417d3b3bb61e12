"""Model time in integer nanoseconds: the clock, timers and a workqueue with the kernel's pending bit.

Models kernel/time/timer.c (``mod_timer``), kernel/workqueue.c (``queue_work_on``: "returns %false if
@work was already on a queue") and jiffies (include/linux/jiffies.h, CONFIG_HZ=250 as in Debian's
kernels). Simplification: one global event list instead of per-CPU timer wheels and worker pools, and
everything due at the same instant runs in the order it was scheduled, before an interrupt raised at
that instant.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["HZ", "NSEC_PER_JIFFY", "Scheduler", "Timer", "WorkStruct", "check_time"]

HZ = 250
NSEC_PER_JIFFY = 1_000_000_000 // HZ
#: how many callbacks run(until=None) takes before it calls the model endless instead of hanging
MAX_RUN_TO_QUIET = 5_000_000


def check_time(t: Any, what: str = "time") -> int:
    """Validate a model time: an int (numpy ints allowed) >= 0, in nanoseconds."""
    if isinstance(t, bool) or not hasattr(t, "__index__"):
        raise TypeError(f"{what} must be an integer number of nanoseconds, not {type(t).__name__}")
    t = int(t)
    if t < 0:
        raise ValueError(f"{what} must be >= 0 ns, got {t}")
    return t


@dataclass(eq=False)
class Timer:
    """A ``struct timer_list``: ``fn(*args)`` runs when the clock reaches ``expires_ns``."""

    fn: Callable[..., Any]
    args: tuple = ()
    name: str = "timer"
    expires_ns: int = 0
    periodic: bool = False  # re-arms itself for ever (poll_spurious_irqs): run() does not wait for it
    #: a CPU's hard-IRQ timer (irqlab/cpu.py): due at T, it runs before every other timer due at T, CPU by CPU
    #: in the order of ``early`` (the CPU's number)
    early: int | None = None
    _token: int = field(default=-1, repr=False)

    @property
    def pending(self) -> bool:  # timer_pending()
        return self._token != -1


@dataclass(eq=False)
class WorkStruct:
    """A ``struct work_struct``; ``pending`` is WORK_STRUCT_PENDING_BIT."""

    fn: Callable[["WorkStruct"], Any]
    name: str = "work"
    pending: bool = False
    runs: int = 0
    coalesced: int = 0
    cpu: int | None = None  # the CPU that queued it (a per-CPU workqueue runs it there)
    _timer: Timer | None = field(default=None, repr=False)


class _Seq:
    """A tie-breaking counter (``next(seq)``) that copies and pickles, unlike itertools.count in Python 3.14."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0

    def __next__(self) -> int:
        self.n += 1
        return self.n - 1


class Scheduler:
    """The clock plus an ordered list of due callbacks (timers and queued work)."""

    def __init__(self) -> None:
        self.now = 0
        self._heap: list[tuple[int, int, Timer]] = []
        self._seq = _Seq()
        self.to_quiet = False  # inside run(until=None): a callback may refuse an endless model
        self.quiet_runs = 0    # how many run(until=None) have started
        self.before_callback: Callable[[], Any] | None = None  # set while journeys are traced (StateRecorder)
        self.work_cpu: Callable[[], int | None] = lambda: None   # the CPU queue_work runs on (set by the Kernel)
        self.work_ran: Callable[[int | None], None] = lambda cpu: None

    @property
    def jiffies(self) -> int:
        return self.now // NSEC_PER_JIFFY

    # timers -----------------------------------------------------------------------------------
    def mod_timer(self, timer: Timer, expires_ns: int) -> bool:
        """(Re)arm ``timer``; returns True if it was pending, like mod_timer()."""
        was = timer.pending
        timer.expires_ns = check_time(expires_ns, "expires_ns")
        timer._token = next(self._seq)
        if timer.early is not None:  # sorts before every ordinary timer due at the same instant
            timer._token += -(1 << 62) + (timer.early << 44)
        heapq.heappush(self._heap, (timer.expires_ns, timer._token, timer))
        return was

    def del_timer(self, timer: Timer) -> bool:
        was = timer.pending
        timer._token = -1
        return was

    def call_at(self, when_ns: int, fn: Callable[..., Any], *args: Any, name: str = "timer") -> Timer:
        t = Timer(fn, args, name)
        self.mod_timer(t, max(when_ns, self.now))
        return t

    # workqueue --------------------------------------------------------------------------------
    def queue_work(self, work: WorkStruct, delay_ns: int = 0) -> bool:
        """queue_work_on(): False (a no-op) when the work is already pending, else run it in delay_ns."""
        if work.pending:
            work.coalesced += 1
            return False
        work.pending = True
        work.cpu = self.work_cpu()
        work._timer = self.call_at(self.now + delay_ns, self._run_work, work, name=work.name)
        return True

    schedule_work = queue_work

    def _run_work(self, work: WorkStruct) -> None:
        work.pending = False  # cleared before the function runs, as process_one_work() does
        work._timer = None
        work.runs += 1
        self.work_ran(work.cpu)
        work.fn(work)

    def flush_work(self, work: WorkStruct) -> bool:
        """Run pending work now (flush_work waits for it); True if it was pending."""
        if not work.pending:
            return False
        assert work._timer is not None
        self.del_timer(work._timer)
        self._run_work(work)
        return True

    def cancel_work(self, work: WorkStruct) -> bool:
        if not work.pending:
            return False
        assert work._timer is not None
        self.del_timer(work._timer)
        work.pending = False
        work._timer = None
        return True

    # running ----------------------------------------------------------------------------------
    def next_due(self) -> int | None:
        while self._heap and self._heap[0][2]._token != self._heap[0][1]:
            heapq.heappop(self._heap)  # stale entry of a re-armed or deleted timer
        return self._heap[0][0] if self._heap else None

    def _only_periodic_left(self) -> bool:
        return all(t.periodic for _, tok, t in self._heap if t._token == tok)

    def run(self, until: int | None = None) -> int:
        """Run everything due at or before ``until``; with None, until only periodic timers are left, or
        raise RuntimeError after ``MAX_RUN_TO_QUIET`` callbacks: something re-arms itself forever."""
        if until is not None:
            until = check_time(until, "until")
            if until < self.now:
                raise ValueError(f"cannot run backwards: until={until} ns < now={self.now} ns")
        ran = 0
        self.to_quiet, outer = until is None, self.to_quiet
        self.quiet_runs += until is None
        try:
            ran = self._run(until)
        finally:
            self.to_quiet = outer
        if until is not None:
            self.now = max(self.now, until)
        return ran

    def _run(self, until: int | None) -> int:
        ran = 0
        while True:
            due = self.next_due()
            if due is None or (until is not None and due > until) or (until is None and self._only_periodic_left()):
                break
            when, token, timer = heapq.heappop(self._heap)
            self.now = max(self.now, when)
            if self.before_callback is not None:  # before the timer stops being pending: that is the callback's
                self.before_callback()
            timer._token = -1
            timer.fn(*timer.args)
            ran += 1
            if until is None and ran >= MAX_RUN_TO_QUIET:
                raise RuntimeError(
                    f"run() ran {ran:,} timers and work items and the model is still busy at {self.now:,} ns: "
                    "something re-arms itself forever (a level interrupt nobody lowers storms the guest, as it "
                    "would in the kernel). Use run(until=...) to watch a bounded stretch.")
        return ran

    def advance(self, t: int) -> None:
        """Run everything due before or at ``t`` and set the clock to ``t``."""
        self.run(until=t)
