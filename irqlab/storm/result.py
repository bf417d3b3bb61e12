"""StormResult: per-event outcomes and latencies, the ledger, and every counter the storm moved.

Not a kernel structure: the course's view of a run. Counters are read from the host before and after the
run (kstat per CPU, irqactions, eventfds, irqfds, the IOAPIC, vCPUs and their LAPICs, the arch rows), so
both engines are compared on the same terms. Simplification: latency is -1 for every interrupt that did
not reach the guest on its own (coalesced, dropped, handled by the host...).
"""
from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..ledger import OUTCOME_TEXT, Outcome
from ..uapi import IRQS_SPURIOUS_DISABLED

__all__ = ["StormResult", "snapshot", "diff_snapshots"]

# fields that are states (reported as they end), not counters (reported as what the storm added)
_STATES = {"depth", "disabled", "masked", "istate", "irq_count", "irqs_unhandled", "last_unhandled", "disabled_at",
           "pending", "status", "disintx", "intx_masked", "count", "irr", "isr", "tmr", "pir", "on", "remote_irr",
           "irq_states", "last_level", "last_accept_coalesced", "last_eoi_level", "poll_timer", "next_id", "esr",
           "sipi_vector", "tpr",
           "spurious_disabled", "work_pending", "threads_handled_last", "threads_oneshot"}


def _ev(ev: Any) -> Any:
    return None if ev is None else (ev.id, int(ev.outcome) if ev.outcome is not None else None)


def snapshot(host: Any) -> dict:
    """Every counter and state a storm can move, keyed so that two hosts built alike compare equal."""
    s: dict = {}
    for irq, d in host.genirq.descs.items():
        s[("irq", irq)] = {"kstat": tuple(d.kstat), "depth": d.depth, "disabled": d.disabled, "masked": d.masked,
                           "istate": d.istate, "irq_count": d.irq_count, "irqs_unhandled": d.irqs_unhandled,
                           "last_unhandled": d.last_unhandled,
                           "disabled_at": d.disabled_at if d.disabled_at is not None else -1,
                           "pending": _ev(d.pending_event), "redelivered": d.redelivered,
                           "threads_handled": d.threads_handled, "threads_handled_last": d.threads_handled_last,
                           "threads_oneshot": d.threads_oneshot}
        for i, a in enumerate(d.actions):
            s[("action", irq, i, a.name)] = {"handled": a.handled, "none": a.none, "woke": a.woke,
                                             "thread_handled": a.thread_handled, "thread_none": a.thread_none}
    efds: dict = {}   # id -> (role, eventfd): keyed by what it is for, not by its (global) name

    def efd_role(efd: Any, *role: Any) -> None:
        if efd is not None and id(efd) not in efds:
            efds[id(efd)] = (role, efd)

    for bdf, dev in host.devices.items():
        s[("device", bdf)] = {"raised": dev.raised, "intx_raised": dev.intx_raised, "disintx": dev.disintx,
                              "status": _ev(dev.intx_status_event)}
        for v in dev.vectors:
            s[("vector", bdf, v.index)] = {"sent": v.sent, "pending": _ev(v.pending_event)}
        drv = dev.driver
        if hasattr(drv, "handled"):
            s[("vfio", bdf)] = {**{f"handled_{k}": n for k, n in drv.handled.items()}, "intx_masked": drv.intx_masked}
            for i, efd in sorted(drv.msi_triggers.items()):
                efd_role(efd, bdf, "msi", i)
            efd_role(drv.intx_trigger, bdf, "intx")
            if drv.intx_unmask is not None:
                q = drv.intx_unmask
                efd_role(q.eventfd, bdf, "unmask")
                s[("virqfd", bdf)] = {"runs": q.inject.runs, "coalesced": q.inject.coalesced,
                                      "work_pending": q.inject.pending}
    for vm in host.vms:
        for i, f in enumerate(vm.irqfds):
            efd_role(f.eventfd, "irqfd", vm.id, i)
            efd_role(f.resamplefd, "resamplefd", vm.id, i)
            s[("irqfd", vm.id, f.gsi, i)] = {
                "wakeups": f.wakeups, "fast_path": f.fast_path, "work_path": f.work_path, "coalesced": f.coalesced,
                "runs": f.inject.runs, "work_coalesced": f.inject.coalesced, "work_pending": f.inject.pending}
        for gsi, r in vm.resamplers.items():
            s[("resampler", vm.id, gsi)] = {"acks": r.acks}
        if vm.ioapic is not None:
            io = vm.ioapic
            s[("ioapic", vm.id)] = {"irr": io.irr, "irq_states": tuple(io.irq_states), "coalesced": io.coalesced,
                                    "remote_irr": tuple(e.remote_irr for e in io.redirtbl),
                                    "irq_eoi": tuple(io.irq_eoi), "eoi_inject": io.eoi_inject.pending}
        if vm.pic is not None:
            s[("pic", vm.id)] = {"irq_states": tuple(vm.pic.irq_states), "irr": vm.pic.irr,
                                 "last_irr": vm.pic.last_irr}
        for v in vm.vcpus:
            lap = v.lapic
            s[("vcpu", vm.id, v.id)] = {
                "delivered": Counter(v.delivered), "coalesced": Counter(v.coalesced), "exits": Counter(v.exits),
                "entries": v.entries, "wakeups": v.wakeups,
                "irr": tuple(sorted(lap.irr)), "isr": tuple(sorted(lap.isr)), "tmr": tuple(sorted(lap.tmr)),
                "accepted": lap.accepted, "lapic_coalesced": lap.coalesced, "acked": lap.acked, "eois": lap.eois,
                **{k: getattr(lap, k) for k in ("nmi_count", "smi_count", "init_count", "remrd_count",
                                                 "startup_count", "apic_arb_prio", "esr", "sipi_vector", "tpr")
                   if hasattr(lap, k)},
                "last_accept_coalesced": lap.last_accept_coalesced, "last_eoi_level": lap.last_eoi_level,
                "pir": tuple(sorted(v.pi.pir)), "on": v.pi.on}
    for role, efd in efds.values():
        s[("eventfd", *role)] = {"signals": efd.signals, "count": efd.count, "after_close": efd.signals_after_close}
    for irq, irte in host.irqbypass.irtes.items():
        s[("irte", irq)] = {"posted": irte.posted}
    for c in host.cpus:
        t = c.time_split()
        s[("cpu", c.id)] = {"hardirq_ns": t["hardirq"], "exit_ns": t["exit"], "guest_ns": t["guest"],
                            "idle_ns": t["idle"], "work_ns": t["work"], "taken": c.taken, "waited": c.waited,
                            "merged": c.merged, "busy_periods": c.busy_periods, "exits": c.exits,
                            "work_runs": c.work_runs, "irr": tuple(sorted(c.irr))}
    s[("arch",)] = {k: tuple(v) for k, v in host.arch_counts.items()}
    s[("ledger",)] = {"raised": host.ledger.raised, "counts": tuple(host.ledger.counts)}
    gi = host.genirq
    pt = gi.poll_timer
    s[("host",)] = {"spurious_disabled": tuple(host.spurious_disabled),
                    "poll_timer": (pt.expires_ns if pt is not None and pt.pending else None),
                    "next_id": host.next_event_id, "bad_irq_reports": gi.bad_irq_reports}
    return s


def _delta(b: Any, a: Any) -> Any:
    if isinstance(a, Counter):
        c = Counter(a)
        c.subtract(b or Counter())
        return {k: n for k, n in sorted(c.items()) if n}
    if isinstance(a, bool) or a is None or isinstance(a, str):
        return a
    if isinstance(a, int):
        return a - (b or 0)
    if isinstance(a, tuple) and all(isinstance(x, int) and not isinstance(x, bool) for x in a):
        b = b or (0,) * len(a)
        return tuple(x - y for x, y in zip(a, b))
    return a


def diff_snapshots(before: dict, after: dict) -> dict:
    """Per key and field: what the storm added to a counter, or how a state ends."""
    out = {}
    for k, fields in after.items():
        b = before.get(k, {})
        out[k] = {f: (v if f in _STATES else _delta(b.get(f), v)) for f, v in fields.items()}
    return out


@dataclass
class StormResult:
    """What a storm did. ``outcome`` (int8 Outcome codes) and ``latency_ns`` (-1 unless delivered) per event."""

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
    streamed: bool = False   # per-event arrays were not kept (a lazy storm): the ledger is ``counts``
    counts: Any = None       # a streamed storm's outcome counts (one per Outcome), counted as it ran

    # the ledger --------------------------------------------------------------------------------------
    def _counts(self) -> np.ndarray:
        # not the host ledger's delta (counters[("ledger",)]): that one also moves interrupts held from
        # before the storm which the storm settled (a poll handling an old pending glitch)
        if self.streamed:
            return np.asarray(self.counts, dtype=np.int64)
        return np.bincount(self.outcome, minlength=len(Outcome))

    @property
    def ledger(self) -> dict[str, int]:
        """Outcome label → count; the counts add up to the number of interrupts in the storm."""
        return {o.label: int(n) for o, n in zip(Outcome, self._counts()) if n}

    def ledger_table(self) -> str:
        c = self._counts()
        w = max(len(o.label) for o in Outcome)
        lines = [f"{o.label:<{w}}  {int(n):>13,}  {OUTCOME_TEXT[o]}" for o, n in zip(Outcome, c) if n]
        lines.append(f"{'total':<{w}}  {int(c.sum()):>13,}  = interrupts in the storm")
        return "\n".join(lines)

    def __len__(self) -> int:
        return int(self._counts().sum()) if self.streamed else int(self.outcome.shape[0])

    # counters ----------------------------------------------------------------------------------------
    def kstat(self) -> dict[int, tuple]:
        """Per irq, what the storm added to each CPU's count (what /proc/interrupts shows)."""
        return {k[1]: v["kstat"] for k, v in self.counters.items() if k[0] == "irq" and any(v["kstat"])}

    def actions(self) -> dict[tuple, tuple]:
        """(irq, action name) → (IRQ_HANDLED, IRQ_NONE) the storm added."""
        return {(k[1], k[3]): (v["handled"], v["none"]) for k, v in self.counters.items()
                if k[0] == "action" and (v["handled"] or v["none"])}

    def eventfds(self) -> dict[str, tuple]:
        """eventfd (what it is for: "<bdf> msi <i>", "irqfd <vm> <n>"...) → (signals the storm added, final count)."""
        return {" ".join(map(str, k[1:])): (v["signals"], v["count"]) for k, v in self.counters.items()
                if k[0] == "eventfd"}

    def irqfds(self) -> dict[tuple, tuple]:
        """(vm, gsi) → (fast path, inject work, coalesced while the work was pending)."""
        return {(k[1], k[2]): (v["fast_path"], v["work_path"], v["coalesced"]) for k, v in self.counters.items()
                if k[0] == "irqfd"}

    def vcpus(self) -> dict[tuple, dict]:
        """(vm, vcpu) → delivered and coalesced per vector, VM exits per reason, entries."""
        return {(k[1], k[2]): {"delivered": v["delivered"], "coalesced": v["coalesced"], "exits": v["exits"],
                               "entries": v["entries"]} for k, v in self.counters.items() if k[0] == "vcpu"}

    def cpus(self) -> dict[int, dict]:
        """Per CPU, what the storm added: ns in hard IRQ, VM exits, guest mode and idle (they add up to the storm's
        span), kworker time beside them, vectors taken / waited / merged, busy periods, exits, work runs, and the
        RES, PIN and PIW rows of /proc/interrupts."""
        arch = self.counters.get(("arch",), {})
        out = {}
        for k, v in self.counters.items():
            if k[0] == "cpu":
                out[k[1]] = {f: n for f, n in v.items() if f != "irr"}
                for row in ("RES", "PIN", "PIW"):
                    out[k[1]][row] = arch.get(row, (0,) * (k[1] + 1))[k[1]]
        return dict(sorted(out.items()))

    def cpu_table(self) -> str:
        """The storm's CPU time split, per CPU, as text (percentages of the storm's span)."""
        parts = ("hardirq_ns", "exit_ns", "guest_ns", "idle_ns")
        lines = [f"{'CPU':<6}" + "".join(f"{p[:-3]:>9}" for p in parts) + f"{'work':>9}{'taken':>11}{'merged':>11}"
                 f"{'exits':>9}{'RES':>9}{'PIN':>9}{'PIW':>9}"]
        for i, c in self.cpus().items():
            tot = sum(c[p] for p in parts)
            pct = [f"{100 * c[p] / tot:8.1f}%" if tot else f"{'-':>9}" for p in (*parts, "work_ns")]
            lines.append(f"CPU{i:<3}" + "".join(pct) + f"{c['taken']:>11,}{c['merged']:>11,}{c['exits']:>9,}"
                         f"{c['RES']:>9,}{c['PIN']:>9,}{c['PIW']:>9,}")
        return "\n".join(lines)

    def disabled_at(self) -> dict[int, int]:
        """Per irq, when the line was disabled (spurious detection or disable_irq), or -1."""
        return {k[1]: v["disabled_at"] for k, v in self.counters.items() if k[0] == "irq"}

    def vmexits(self) -> int:
        return sum(sum(v["exits"].values()) for k, v in self.counters.items() if k[0] == "vcpu")

    # views -------------------------------------------------------------------------------------------
    def proc_interrupts(self) -> str:
        """/proc/interrupts of the host after the storm."""
        return self.proc_text

    def delivered(self) -> np.ndarray:
        return self.latency_ns >= 0

    def _per_event(self, what: str) -> None:
        """Refuse a view that needs each interrupt's time, source, outcome or latency on a streamed result."""
        if self.streamed:
            raise ValueError(f"{what} needs each interrupt's time, source, outcome and latency, which a streamed "
                             "storm (lazy=True) does not keep: run the materialized storm (storm.materialize(), "
                             "or generate it with lazy=False). The ledger, counters and kernel log are complete "
                             "here.")

    def latency_percentiles(self, qs=(50, 90, 99, 99.9)) -> dict[float, int]:
        """Latency (ns) percentiles of the interrupts delivered to the guest (-1 if none was)."""
        if isinstance(qs, (str, bytes)) or not hasattr(qs, "__iter__"):
            raise TypeError(f"qs is a list of percentiles (numbers 0..100), not {type(qs).__name__}")
        qs = tuple(qs)
        for q in qs:
            if isinstance(q, (bool, np.bool_)) or not isinstance(q, (int, float, np.integer, np.floating)):
                raise TypeError(f"a percentile is a number 0..100, not {type(q).__name__}")
            if not 0 <= q <= 100:
                raise ValueError(f"a percentile is a number 0..100, got {q}")
        self._per_event("latency_percentiles()")
        lat = self.latency_ns[self.latency_ns >= 0]
        if not lat.size:
            return {q: -1 for q in qs}
        return {q: int(v) for q, v in zip(qs, np.percentile(lat, qs, method="lower"))}

    def rate(self, bin_ns: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Events per outcome in bins of ``bin_ns``: (bin start times, {outcome label: counts}). A bin longer
        than the storm holds all of it."""
        if isinstance(bin_ns, (bool, np.bool_)) or not isinstance(bin_ns, (int, np.integer)):
            raise TypeError(f"bin_ns must be an int number of nanoseconds, not {type(bin_ns).__name__}")
        if bin_ns <= 0:
            raise ValueError(f"bin_ns must be a positive int (ns), got {bin_ns}")
        self._per_event("rate()")
        if not self.times.size:
            return np.zeros(0, np.int64), {}
        t0 = int(self.times[0])
        span = int(self.times[-1]) - t0
        if bin_ns > span:   # one bin (and no int64 arithmetic on a bin_ns beyond it)
            nb, b = 1, np.zeros(self.times.size, np.int64)
        else:
            nb = span // int(bin_ns) + 1
            b = ((self.times - t0) // np.int64(bin_ns)).astype(np.int64)
        out = {}
        for o in np.unique(self.outcome):
            out[Outcome(int(o)).label] = np.bincount(b[self.outcome == o], minlength=nb)
        return t0 + np.arange(nb, dtype=np.int64) * np.int64(min(int(bin_ns), span + 1)), out

    def per_source(self) -> dict[str, dict[str, int]]:
        """Source label → its interrupts' outcome counts."""
        self._per_event("per_source()")
        out = {}
        for i, s in enumerate(self.sources):
            m = self.source_ids == i
            c = np.bincount(self.outcome[m], minlength=len(Outcome))
            out[s.label] = {o.label: int(n) for o, n in zip(Outcome, c) if n}
        return out

    def summary(self) -> str:
        lines = [f"{len(self):,} interrupts, engine {self.engine}, {self.elapsed_s:.3f} s"
                 + (f" ({len(self) / self.elapsed_s / 1e6:.1f} M events/s)" if self.elapsed_s > 0 else ""),
                 self.ledger_table()]
        if not self.streamed:
            p = self.latency_percentiles()
            lines.append("latency to the guest: " + ", ".join(f"p{q:g} {v:,} ns" for q, v in p.items()))
        ex = Counter()
        for v in self.vcpus().values():
            ex.update(v["exits"])
        lines.append(f"VM exits: {sum(ex.values()):,}" + (f" ({', '.join(f'{k} {n:,}' for k, n in sorted(ex.items()))})"
                                                          if ex else ""))
        dis = {irq: t for irq, t in self.disabled_at().items() if t >= 0 and
               self.counters[("irq", irq)]["istate"] & IRQS_SPURIOUS_DISABLED}
        for irq, t in sorted(dis.items()):
            lines.append(f"irq {irq} disabled by spurious detection at {t:,} ns")
        return "\n".join(lines)

    __str__ = summary

    def _repr_html_(self) -> str:
        c = self._counts()
        rows = "".join(f"<tr><td>{o.label}</td><td style='text-align:right'>{int(n):,}</td>"
                       f"<td>{html.escape(OUTCOME_TEXT[o])}</td></tr>" for o, n in zip(Outcome, c) if n)
        head = html.escape(self.summary().splitlines()[0])
        rest = "<br>".join(html.escape(x) for x in self.summary().splitlines()[len(self.ledger) + 2:])
        return (f"<div><b>{head}</b><table><tr><th>outcome</th><th>count</th><th></th></tr>{rows}"
                f"<tr><td><b>total</b></td><td style='text-align:right'><b>{int(c.sum()):,}</b></td><td></td></tr>"
                f"</table><p>{rest}</p></div>")

    # comparing ---------------------------------------------------------------------------------------
    def diff(self, other: "StormResult") -> str:
        """The first difference with another result ('' if identical)."""
        if not isinstance(other, StormResult):
            raise TypeError(f"compare with another StormResult, not {type(other).__name__}")
        if len(self) != len(other):
            return f"lengths differ: {len(self)} vs {len(other)}"
        if self.outcome.shape != other.outcome.shape:
            return f"per-event arrays: {self.outcome.shape} vs {other.outcome.shape}"
        bad = np.flatnonzero(self.outcome != other.outcome)
        if bad.size:
            i = int(bad[0])
            src = self.sources[int(self.source_ids[i])].label if self.source_ids.size else "?"
            return (f"event {i} ({src} at {int(self.times[i]):,} ns): outcome "
                    f"{Outcome(int(self.outcome[i])).label} ({self.engine}) vs "
                    f"{Outcome(int(other.outcome[i])).label} ({other.engine}); {bad.size} events differ")
        bad = np.flatnonzero(self.latency_ns != other.latency_ns)
        if bad.size:
            i = int(bad[0])
            return (f"event {i}: latency {int(self.latency_ns[i])} ({self.engine}) vs {int(other.latency_ns[i])} "
                    f"({other.engine}); {bad.size} events differ")
        for k in sorted(set(self.counters) | set(other.counters), key=repr):
            a, b = self.counters.get(k), other.counters.get(k)
            if a != b:
                if a is None or b is None:
                    return f"{k}: {a} ({self.engine}) vs {b} ({other.engine})"
                f = next(f for f in sorted(set(a) | set(b)) if a.get(f) != b.get(f))
                return f"{k} {f}: {a.get(f)} ({self.engine}) vs {b.get(f)} ({other.engine})"
        if self.t_end != other.t_end:
            return f"end time {self.t_end:,} ({self.engine}) vs {other.t_end:,} ({other.engine})"
        if self.log != other.log:
            i = next((i for i, (x, y) in enumerate(zip(self.log, other.log)) if x != y),
                     min(len(self.log), len(other.log)))
            return (f"kernel log line {i}: {self.log[i] if i < len(self.log) else None} vs "
                    f"{other.log[i] if i < len(other.log) else None}")
        if self.proc_text != other.proc_text:
            return "/proc/interrupts differs"
        return ""

    def equals(self, other: "StormResult") -> bool:
        return self.diff(other) == ""
