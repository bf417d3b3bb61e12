"""The reference engine: replay a storm one interrupt at a time through the object model.

Models nothing new: for each event, ``host.run(until=t)`` (timers and work due first), then
``host.raise_msi / raise_intx / raise_spurious(..., at=t)``; after the last one, ``host.run()`` settles the
host: timers and work run until only the periodic spurious poller is left (which fires meanwhile).
Simplification: tracing is off for speed; each interrupt's outcome and latency are read from its IrqEvent.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..ledger import Outcome

__all__ = ["replay"]


def replay(host: Any, storm: Any, progress: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Raise every event through the model; returns (outcome int8, latency_ns int64) per event."""
    trace, host.trace = host.trace, False
    raisers = []
    for s in storm.sources:
        if s.kind == "msi":
            raisers.append(lambda t, s=s: host.raise_msi(s.bdf, s.index, at=t))
        elif s.kind == "intx":
            raisers.append(lambda t, s=s: host.raise_intx(s.bdf, at=t))
        else:
            raisers.append(lambda t, s=s: host.raise_spurious(s.irq, at=t))
    events = []
    step = 4096
    try:
        times, ids = storm.times.tolist(), storm.source_ids.tolist()
        for lo in range(0, len(times), step):
            for t, sid in zip(times[lo:lo + step], ids[lo:lo + step]):
                raisers[sid](t)
                events.append(host.last_event)
            if progress is not None:
                progress.update(len(times[lo:lo + step]))
        host.run()
    finally:
        host.trace = trace
    n = len(events)
    outcome = np.empty(n, dtype=np.int8)
    latency = np.full(n, -1, dtype=np.int64)
    for i, ev in enumerate(events):
        o = ev.outcome if ev.outcome is not None else Outcome.IN_FLIGHT
        outcome[i] = int(o)
        if o in (Outcome.INJECTED, Outcome.POSTED) and ev.t_ack is not None:
            latency[i] = ev.latency_ns
    return outcome, latency
