"""One interrupt raised by hardware, followed hop by hop to its single outcome: the ledger's unit.

Not a kernel structure: the kernel keeps no object per interrupt; this is what ``trace-cmd`` would show for one
interrupt (its hops) plus the course's bookkeeping of where it ended (irqlab/ledger.py). It uses only the kernel
services below every subsystem (irqlab/kernel.py: the clock, the ledger, the interrupts in flight).
Simplification: an interrupt that merges into another one (coalesced) ends there; the one it merged into
carries on.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .ledger import Outcome
from .trace import Hop, Journey

if TYPE_CHECKING:
    from .kernel import Kernel

__all__ = ["IrqEvent", "NO_EVENT", "Echo"]


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
        self.journey = Journey(eid, source, t) if trace else None

    def __repr__(self) -> str:
        return f"<IrqEvent #{self.id} {self.source} {self.outcome.label if self.outcome else 'in flight'}>"

    # tracing ---------------------------------------------------------------------------------------
    def hop(self, function: str, file: str, actor: str, detail: str = "") -> None:
        """Append a hop at the current model time. Hops may follow the outcome (the way back of a
        passed-through INTx: EOI, resample, unmask): ``journey.t_done`` is then the time of the last hop."""
        if self.journey is not None:
            self.journey.hops.append(Hop(self.host.now, function, file, actor, detail))
            if self.journey.outcome is not None:
                self.journey.t_done = self.host.now

    def change(self, what: str, before: Any, after: Any) -> None:
        """Record a state change on the hop that made it (the last one recorded)."""
        j = self.journey
        if j is not None and j.hops:
            h = j.hops[-1]
            j.hops[-1] = Hop(h.t_ns, h.function, h.file, h.actor, h.detail, h.changes + ((what, before, after),))

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
        if self.t_ack is None:
            return None
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

    def change(self, *a: Any, **k: Any) -> None:
        self.of.change(*a, **k)


NO_EVENT = _NoEvent()
