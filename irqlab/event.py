"""One interrupt raised by hardware, followed hop by hop to its single outcome: the ledger's unit.

Not a kernel structure: the kernel keeps no object per interrupt; this is what ``trace-cmd`` would show for one
interrupt (its hops) plus the course's bookkeeping of where it ended (irqlab/ledger.py). It uses only the kernel
services below every subsystem (irqlab/kernel.py: the clock, the ledger, the interrupts in flight).
Simplification: an interrupt that merges into another one (coalesced) ends there; the one it merged into
carries on.
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .ledger import Outcome
from .trace import Hop, Journey, diff_states, observe

if TYPE_CHECKING:
    from .kernel import Kernel

__all__ = ["IrqEvent", "NO_EVENT", "Echo", "StateRecorder"]


class StateRecorder:
    """While journeys are traced, what each hop changed and the state after it (``Hop.changes``/``.state``).

    Every hop recorded takes a snapshot of the observable state (``irqlab.trace.observe``); the difference
    from the snapshot taken when the previous hop was recorded is what that previous hop changed. A hop's
    changes end when the next hop is recorded (any interrupt's), or when the model hands control on: an
    interrupt is raised (``begin``), a timer or work item starts (the scheduler's ``before_callback``), or
    a raise or ``run()`` returns (``end``), or the model says the next hop's function starts here (``mark``:
    where a hop is recorded after the work it describes). Changes made before a first hop (of a raise, a
    callback, or after a mark) belong to that hop. Nothing is observed while ``kernel.trace`` is off
    (storms, the reference replay).
    """

    __slots__ = ("kernel", "open", "base")

    def __init__(self, kernel: "Kernel"):
        self.kernel = kernel
        self.open: tuple[Journey, int, dict] | None = None   # the hop collecting changes, and its snapshot
        self.base: dict | None = None   # the state when the model took control (for a first hop's changes)

    def _close(self, now: dict | None = None) -> dict:
        now = observe(self.kernel) if now is None else now
        if self.open is not None:
            j, i, before = self.open
            h = j.hops[i]
            j.hops[i] = replace(h, changes=h.changes + diff_states(before, now), state=now)
            self.open = None
        return now

    def begin(self) -> None:
        """The model takes control (a raise, a timer, a work item): close the open hop, remember the state."""
        k = self.kernel
        if not k.trace:
            if k.sched.before_callback == self.begin:
                k.sched.before_callback = None
            self.open = self.base = None
            return
        k.sched.before_callback = self.begin
        self.base = self._close()

    def end(self) -> None:
        """Control goes back to the caller: the open hop's changes end here."""
        if self.open is not None:
            self._close()
        self.base = None

    def mark(self) -> None:
        """The function of the next hop starts here: the open hop's changes end now, and what changes from
        here until that hop is recorded is that hop's."""
        if self.open is not None and self.kernel.trace:
            self.base = self._close()

    def record(self, journey: Journey, hop: Hop) -> None:
        """Append ``hop``: close the open hop at the state now, or give this one what changed since ``base``."""
        now = observe(self.kernel)
        pre: tuple = ()
        if self.open is not None:
            self._close(now)
        elif self.base is not None:
            pre = diff_states(self.base, now)
        journey.hops.append(replace(hop, changes=pre) if pre else hop)
        self.open = (journey, len(journey.hops) - 1, now)
        self.base = None


class IrqEvent:
    """One interrupt raised by hardware, followed to its single outcome (the ledger's unit)."""

    real = True

    def __init__(self, host: "Kernel", eid: int, source: str, t: int, trace: bool):
        self.host = host
        self.id = eid
        self.source = source
        self.t = t
        self.outcome: Outcome | None = None
        self.carried = False      # a downstream stage (eventfd waiter, irqfd work, IRR, PIR) holds it
        self.via_host = False     # went through the host's hard-IRQ path (charged host_irq_ns)
        self.via_iommu = False    # posted by the IOMMU (charged iommu_post_ns)
        self.irq: int | None = None
        self.device: Any = None   # the PCI device that raised it (INTx status holder), if any
        self.passed_on = False    # vfio signalled it downstream: the device's Status bit no longer holds it
        self.t_ack: int | None = None
        self.entry_due: int | None = None  # when its vCPU was due to take it (the window's end), if known
        self.journey = Journey(eid, source, t) if trace else None
        if trace:
            host.recorder.begin()

    def __repr__(self) -> str:
        return f"<IrqEvent #{self.id} {self.source} {self.outcome.label if self.outcome else 'in flight'}>"

    # tracing ---------------------------------------------------------------------------------------
    def hop(self, function: str, file: str, actor: str, detail: str = "") -> None:
        """Record a hop at the current model time; what it changes is observed (StateRecorder), never passed
        in. Hops may follow the outcome (the way back of a passed-through INTx: EOI, resample, unmask):
        ``journey.t_done`` is then the time of the last hop."""
        j = self.journey
        if j is not None:
            if j.device is None and self.device is not None:
                j.device = self.device.bdf
            if j.irq is None and self.irq is not None:
                j.irq = self.irq
            self.host.recorder.record(j, Hop(self.host.now, function, file, actor, detail))
            if j.outcome is not None:
                j.t_done = self.host.now

    def mark(self) -> None:
        """Where a hop is recorded after the work it describes: call this where that work starts, so its
        changes go to that hop and not to the hop before it."""
        if self.journey is not None:
            self.host.recorder.mark()

    def change(self, what: str, before: Any, after: Any) -> None:
        """Kept for callers written before state was observed: ``Hop.changes`` now comes from snapshots of
        the whole observable state (StateRecorder), which see this change too, so nothing is added here."""

    # outcome ---------------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.outcome is not None and self.outcome != Outcome.IN_FLIGHT

    def settle(self, outcome: Outcome, t_ack: int | None = None) -> None:
        if self.outcome == Outcome.PENDING:
            self.host.ledger.unsettle(Outcome.PENDING)
        elif self.outcome is not None:
            raise AssertionError(f"interrupt #{self.id} settled twice: {self.outcome.label} then {outcome.label}")
        self.outcome = outcome
        self.host.ledger.settle(outcome)
        if t_ack is not None:
            self.t_ack = t_ack
        if self.journey is not None:
            self.journey.outcome = outcome.label
            self.journey.t_done = self.host.now
            if t_ack is not None:
                self.journey.latency_ns = self.latency_ns
        self.host._inflight.pop(self.id, None)

    resettle = settle

    def unsettle(self) -> None:
        """A PENDING interrupt is replayed or polled: it is in flight again."""
        if self.outcome != Outcome.PENDING:
            raise AssertionError(f"interrupt #{self.id} is {self.outcome}, not pending")
        self.host.ledger.unsettle(Outcome.PENDING)
        self.outcome = None
        self.carried = False
        if self.journey is not None:
            self.journey.outcome = None
        self.host._inflight[self.id] = self

    @property
    def live(self) -> bool:
        """Still to be accounted for: in flight or held pending (a settled interrupt is never re-used)."""
        return self.outcome is None or self.outcome == Outcome.PENDING

    def claim(self) -> "IrqEvent | None":
        """Someone services this interrupt: it is in flight again if it was pending; None if already over,
        or already passed on downstream by vfio (the device's Status bit then stands for no new interrupt)."""
        if self.passed_on:
            return None
        if self.outcome == Outcome.PENDING:
            self.unsettle()
        return self if self.outcome is None else None

    def echo(self) -> "Echo":
        """The way back of this interrupt after its outcome: hops go on its journey, nothing settles."""
        return Echo(self)

    def outcome_is_pending(self) -> bool:
        return self.outcome == Outcome.PENDING

    def asserting(self) -> bool:
        """An INTx interrupt whose device still holds its status bit with INTx not disabled."""
        d = self.device
        return d is not None and d.intx_status_event is self and not d.disintx

    @property
    def latency_ns(self) -> int | None:
        """From the raise to the guest's ack, plus the cost of the host path (or the IOMMU's) the model runs in
        zero time before the accept — unless the vCPU entered later than its window's end (``entry_due``): it
        waited for its CPU to leave hard-IRQ context, and that time is on the clock already."""
        if self.t_ack is None:
            return None
        if self.entry_due is not None and self.t_ack > self.entry_due:
            return self.t_ack - self.t
        t = self.host.timing
        return (self.t_ack - self.t + (t.host_irq_ns if self.via_host else 0)
                + (t.iommu_post_ns if self.via_iommu else 0))


class _NoEvent(IrqEvent):
    """Dispatch with no hardware interrupt behind it (the spurious poller, a loopback signal)."""

    real = False

    def __init__(self) -> None:
        self.id, self.source, self.outcome, self.carried, self.journey = -1, "none", None, False, None
        self.device = None
        self.passed_on = False
        self.via_host = self.via_iommu = False

    def hop(self, *a: Any, **k: Any) -> None:
        pass

    def mark(self) -> None:
        pass

    def change(self, *a: Any) -> None:
        pass

    @property
    def done(self) -> bool:
        return True

    def settle(self, outcome: Outcome, t_ack: int | None = None) -> None:
        pass

    def unsettle(self) -> None:
        pass

    def asserting(self) -> bool:
        return False

    @property
    def live(self) -> bool:
        return False

    def claim(self) -> None:
        return None


class Echo(_NoEvent):
    """The way back of an interrupt that already has its outcome — a passed-through INTx after the guest took
    it: its EOI, the resampler, the resamplefd, vfio's unmask. Hops go on to that interrupt's journey, but it
    can never be settled, claimed or carried again (not a new interrupt: the ledger does not see it)."""

    def __init__(self, of: IrqEvent) -> None:
        super().__init__()
        self.of = of
        self.id, self.source = of.id, of.source

    def hop(self, *a: Any, **k: Any) -> None:
        self.of.hop(*a, **k)

    def mark(self) -> None:
        self.of.mark()

    def change(self, *a: Any, **k: Any) -> None:
        self.of.change(*a, **k)


NO_EVENT = _NoEvent()
