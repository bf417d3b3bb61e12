"""StormResult: per-event outcomes and latencies, the ledger, and every counter the storm moved.

Not a kernel structure: the course's view of a run. Counters are read from the host before and after
the run (kstat, actions, eventfds, irqfds, vCPUs, PIW), so both engines are compared on the same terms.
Simplification: latency is -1 for every interrupt that did not reach the guest on its own.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..ledger import OUTCOME_TEXT, Outcome

__all__ = ["StormResult", "snapshot", "diff_snapshots"]


def snapshot(host: Any) -> dict:
    """Every counter a storm can move, keyed so two hosts built the same way compare equal."""
    s: dict = {}
    for irq, d in host.genirq.descs.items():
        s[("kstat", irq)] = tuple(d.kstat)
        s[("line", irq)] = (d.depth, d.disabled, d.irq_count, d.irqs_unhandled, d.last_unhandled, d.istate,
                            d.disabled_at)
        for a in d.actions:
            s[("action", irq, a.name)] = (a.handled, a.none)
    efds = {}
    for vm in host.vms:
        for f in vm.irqfds:
            efds[f.eventfd.name] = f.eventfd
            s[("irqfd", vm.id, f.gsi)] = (f.wakeups, f.fast_path, f.work_path, f.coalesced)
        for v in vm.vcpus:
            s[("vcpu", vm.id, v.id)] = (tuple(sorted(v.delivered.items())), tuple(sorted(v.coalesced.items())),
                                       tuple(sorted(v.exits.items())), v.entries, v.wakeups)
    for dev in host.devices.values():
        drv = dev.driver
        for efd in list(getattr(drv, "msi_triggers", {}).values()) + [getattr(drv, "intx_trigger", None)]:
            if efd is not None:
                efds[efd.name] = efd
    for name, efd in efds.items():
        s[("eventfd", name)] = (efd.signals, efd.count)
    s[("arch", "PIW")] = tuple(host.arch_counts["PIW"])
    s[("ledger",)] = tuple(host.ledger.counts)
    return s


def diff_snapshots(before: dict, after: dict) -> dict:
    """Per key: the change for counters, the final value for states."""
    out = {}
    for k, v in after.items():
        b = before.get(k)
        if k[0] in ("kstat", "arch", "ledger"):
            b = b or (0,) * len(v)
            out[k] = tuple(x - y for x, y in zip(v, b))
        elif k[0] == "action":
            b = b or (0, 0)
            out[k] = (v[0] - b[0], v[1] - b[1])
        elif k[0] == "irqfd":
            b = b or (0, 0, 0, 0)
            out[k] = tuple(x - y for x, y in zip(v, b))
        elif k[0] == "eventfd":
            b = b or (0, 0)
            out[k] = (v[0] - b[0], v[1])
        else:
            out[k] = v
    return out


@dataclass
class StormResult:
    """What a storm did. ``outcome`` (int8 Outcome codes) and ``latency_ns`` (-1 if not delivered) per event."""

    engine: str
    times: np.ndarray
    source_ids: np.ndarray
    sources: tuple
    outcome: np.ndarray
    latency_ns: np.ndarray
    counters: dict
    proc_text: str
    t_end: int
    elapsed_s: float = 0.0
    log: list = field(default_factory=list)
    streamed_ledger: tuple | None = None  # set for a streamed run: counts kept, per-event arrays not

    # the ledger --------------------------------------------------------------------------------------
    def _counts(self) -> np.ndarray:
        if self.streamed_ledger is not None:
            return np.asarray(self.counters[("ledger",)], dtype=np.int64)
        return np.bincount(self.outcome, minlength=len(Outcome))

    @property
    def ledger(self) -> dict[str, int]:
        c = self._counts()
        return {o.label: int(n) for o, n in zip(Outcome, c) if n}

    def ledger_table(self) -> str:
        c = self._counts()
        w = max(len(o.label) for o in Outcome)
        lines = [f"{o.label:<{w}}  {int(n):>13,}  {OUTCOME_TEXT[o]}" for o, n in zip(Outcome, c) if n]
        lines.append(f"{'total':<{w}}  {int(c.sum()):>13,}  = events in the storm ({len(self):,})")
        return "\n".join(lines)

    def __len__(self) -> int:
        return int(self._counts().sum()) if self.streamed_ledger is not None else int(self.outcome.shape[0])

    # views -------------------------------------------------------------------------------------------
    def proc_interrupts(self) -> str:
        """/proc/interrupts of the host after the storm."""
        return self.proc_text

    def delivered(self) -> np.ndarray:
        return self.latency_ns >= 0

    def latency_percentiles(self, qs=(50, 90, 99, 99.9)) -> dict[float, int]:
        lat = self.latency_ns[self.latency_ns >= 0]
        if not lat.size:
            return {q: -1 for q in qs}
        return {q: int(v) for q, v in zip(qs, np.percentile(lat, qs, method="lower"))}

    def rate(self, bin_ns: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Histogram of events per outcome in bins of ``bin_ns``: (bin start times, {outcome: counts})."""
        if bin_ns <= 0:
            raise ValueError("bin_ns must be > 0")
        t0 = int(self.times[0]) if len(self) else 0
        nb = int((self.t_end - t0) // bin_ns) + 1
        b = ((self.times - t0) // bin_ns).astype(np.int64)
        out = {}
        for o in np.unique(self.outcome):
            out[Outcome(int(o)).label] = np.bincount(b[self.outcome == o], minlength=nb)
        return t0 + np.arange(nb, dtype=np.int64) * bin_ns, out

    def per_source(self) -> dict[str, dict[str, int]]:
        out = {}
        for i, s in enumerate(self.sources):
            m = self.source_ids == i
            c = np.bincount(self.outcome[m], minlength=len(Outcome))
            out[s.label] = {o.label: int(n) for o, n in zip(Outcome, c) if n}
        return out

    def vmexits(self) -> int:
        return sum(sum(n for _, n in v[2]) for k, v in self.counters.items() if k[0] == "vcpu")

    def summary(self) -> str:
        p = self.latency_percentiles()
        lines = [f"{len(self):,} interrupts, engine {self.engine}, {self.elapsed_s:.3f} s"
                 + (f" ({len(self) / self.elapsed_s / 1e6:.1f} M events/s)" if self.elapsed_s > 0 else ""),
                 self.ledger_table(),
                 "latency to guest: " + ", ".join(f"p{q:g} {v:,} ns" for q, v in p.items()),
                 f"VM exits: {self.vmexits():,}"]
        return "\n".join(lines)

    __str__ = summary

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(self.summary())}</pre>"

    # comparing ---------------------------------------------------------------------------------------
    def diff(self, other: "StormResult") -> str:
        """The first difference with another result ('' if identical)."""
        if len(self) != len(other):
            return f"lengths differ: {len(self)} vs {len(other)}"
        bad = np.flatnonzero(self.outcome != other.outcome)
        if bad.size:
            i = int(bad[0])
            return (f"event {i} ({self.sources[self.source_ids[i]].label} at {self.times[i]:,} ns): outcome "
                    f"{Outcome(int(self.outcome[i])).label} ({self.engine}) vs {Outcome(int(other.outcome[i])).label}"
                    f" ({other.engine}); {bad.size} events differ")
        bad = np.flatnonzero(self.latency_ns != other.latency_ns)
        if bad.size:
            i = int(bad[0])
            return f"event {i}: latency {self.latency_ns[i]} vs {other.latency_ns[i]}; {bad.size} differ"
        for k in sorted(set(self.counters) | set(other.counters), key=repr):
            if self.counters.get(k) != other.counters.get(k):
                return f"{k}: {self.counters.get(k)} ({self.engine}) vs {other.counters.get(k)} ({other.engine})"
        if self.proc_text != other.proc_text:
            return "/proc/interrupts differs"
        if self.t_end != other.t_end:
            return f"end time {self.t_end} vs {other.t_end}"
        if self.log != other.log:
            return f"kernel log differs: {self.log[-3:]} vs {other.log[-3:]}"
        return ""

    def equals(self, other: "StormResult") -> bool:
        return self.diff(other) == ""
