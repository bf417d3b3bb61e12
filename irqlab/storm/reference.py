"""The reference engine: replay a storm one interrupt at a time through the object model.

Models nothing new: it drives ``host.raise_msi / raise_intx / raise_spurious`` at each event's time
(timers and work due before it run first), then ``host.run()`` to drain. Simplification: tracing is
switched off for speed; the outcome of each interrupt is read from its IrqEvent.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..ledger import Outcome

__all__ = ["replay"]


def replay(host: Any, storm: Any, progress: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Raise every event through the model; returns (outcome int8, latency_ns int64) per event."""
    trace, host.trace = host.trace, False
    events = []
    raisers = []
    for s in storm.sources:
        if s.kind == "msi":
            raisers.append(lambda t, s=s: host.raise_msi(s.bdf, s.index, at=t))
        elif s.kind == "intx":
            raisers.append(lambda t, s=s: host.raise_intx(s.bdf, at=t))
        else:
            raisers.append(lambda t, s=s: host.raise_spurious(s.irq, at=t))
    try:
        for t, sid in zip(storm.times.tolist(), storm.source_ids.tolist()):
            raisers[sid](t)
            events.append(host.last_event)
            if progress is not None:
                progress.update(1)
        host.run()
    finally:
        host.trace = trace
    n = len(events)
    outcome = np.empty(n, dtype=np.int8)
    latency = np.full(n, -1, dtype=np.int64)
    for i, ev in enumerate(events):
        o = ev.outcome if ev.outcome is not None else Outcome.IN_FLIGHT
        outcome[i] = int(o)
        if o in (Outcome.INJECTED, Outcome.POSTED):
            latency[i] = ev.latency_ns
    return outcome, latency
