"""The storm engine: millions of interrupts through a host's live state, with numpy.

Computes with array operations what the object model does one interrupt at a time (docs/model-time.md):
arch/x86/kernel/irq.c and kernel/irq/chip.c (vector dispatch, the rate-limited "No irq handler" line, a disabled
line holding one interrupt, a level line sent again after each EOI while a device asserts it), kernel/irq/
spurious.c (note_interrupt's window, the poller), irq threads (kernel/irq/manage.c), vfio-pci's handlers,
fs/eventfd.c, virt/kvm/eventfd.c (the irqfd fast path, and the inject work that coalesces while pending),
arch/x86/kvm/lapic.c and vmx (IRR/PIR coalescing in each vCPU's entry window, exits, posting).
Simplification: the compile step refuses (NotImplementedError) what it does not cover; everything else is
exact, with Python loops over chunks, vCPUs, lines, batches of re-deliveries, round trips and polls — never
over interrupts (the kernel log keeps only the lines the ratelimit prints). The interrupts a stuck line raises by
itself are counted in the host's ledger, not in the storm's per-event arrays. Big chunks run the vCPUs' fast
paths on two threads (``_run_all``); the result does not depend on it.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

import numpy as np

from ..event import IrqEvent
from ..genirq import VECTOR_SHUTDOWN
from ..kernel import Kernel
from ..ledger import Outcome
from ..sched import NSEC_PER_JIFFY, Timer
from ..spurious import nobody_cared_lines
from ..uapi import (
    IRQ_NONE, IRQS_PENDING, IRQS_REPLAY, IRQS_SPURIOUS_DISABLED, IRQS_WAITING, KVM_USERSPACE_IRQ_SOURCE_ID,
)
from ..eventfd import ULLONG_MAX
from ..kvm.lapic import ESR_RECV_ILLEGAL_VECTOR
from .compile import (
    INSTANT_OUTCOME, L_INTX, L_INTX_THREAD, L_MSI_HOST, L_MSI_THREAD, R_INTX, R_LINE, R_NOHANDLER, R_PBA,
    R_POSTED, Unsupported,
    compile_host, source_target,
)
from .generate import LazyStorm, Storm
from .lines import (
    HELD, INF, IntxLine, IntxThreadLine, MsiLine, MsiThreadLine, PollSchedule, ratelimit_scan, spurious_scan,
)
from .reference import replay
from .result import StormResult, diff_snapshots, snapshot
from .cpus import (INF as CINF, K_EARLY, K_ENTRY, K_END, K_INJ_AFTER, K_INJ_BEFORE, K_RAISE, CpuStage, before_own,
                   check_wakeups)
from .vcpu import VcpuWindows, WorkChain

__all__ = ["run", "Unsupported", "DEFAULT_CHUNK"]

O = Outcome
DEFAULT_CHUNK = 1 << 21
MAX_VECTOR_NS = 1 << 62   # the last storm time the vector engine takes (int64 sums of times and delays stay exact)
#: handles of the interrupts a stuck level line raises by itself (its re-deliveries): REFIRE_BASE + n
REFIRE_BASE = 1 << 60
# what the engine does with a source's interrupts
K_CONST, K_ACCEPT, K_WORK, K_HELD, K_INTX, K_THREAD = range(6)


_POOL: Any = None
_POOL_LOCK = threading.Lock()
_PARALLEL_MIN = 1 << 17  # below this many accepts per vCPU, a thread costs more than it saves


def _pool() -> Any:
    """The two worker threads, created once (under a lock: two engines may start in two threads)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            from concurrent.futures import ThreadPoolExecutor
            _POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="irqlab-storm")
        return _POOL


def _run_all(calls: list) -> list:
    """Run (fn, args, size) calls and return their results in call order; with two or more big ones, on two
    threads (numpy's searches and gathers release the GIL, and these machines have two cores). Each call
    writes only its own vCPU's state and its own interrupts' slots in the sink, and returns what it adds to
    shared counters instead of adding it, so the result is the same in any order."""
    big = [c for c in calls if c[2] >= _PARALLEL_MIN]
    if len(big) < 2:
        return [fn(*args) for fn, args, _ in calls]

    # two threads, as before, but one of them is the calling thread (a worker's memory stays in its own malloc
    # arena: one arena fewer holding freed chunks); the calls split by size, biggest first to the lighter side
    sides: tuple[list, list] = ([], [])
    load = [0, 0]
    for i in sorted(range(len(calls)), key=lambda i: -calls[i][2]):
        k = 0 if load[0] <= load[1] else 1
        sides[k].append(i)
        load[k] += calls[i][2]

    def group(idx: list) -> list:
        return [calls[i][0](*calls[i][1]) for i in idx]
    fut = _pool().submit(group, sides[1])
    try:
        mine = group(sides[0])
    finally:
        theirs = fut.result()
    out: list = [None] * len(calls)
    for idx, res in zip(sides, (mine, theirs)):
        for i, r in zip(idx, res):
            out[i] = r
    return out


def _key_order(K: np.ndarray, SB: np.ndarray) -> np.ndarray:
    """The order of events by key, then sub: one stable sort of a combined key when it fits in 62 bits (runs
    already in order make it cheap), else a lexsort."""
    n = K.shape[0]
    if n < 2:
        return np.arange(n)
    lo, hi = int(SB.min()), int(SB.max())
    span = hi - lo + 1
    kmin, kmax = int(K.min()), int(K.max())
    if kmin >= 0 and (kmax + 1) * span < (1 << 62):
        return np.argsort(K * span + (SB - lo), kind="stable")
    return np.lexsort((SB, K))


def _last_pair_at_or_before(P: np.ndarray, K: np.ndarray, SB: np.ndarray) -> np.ndarray:
    """For events (K[i], SB[i]): the index of the last row (key, sub) of ``P`` (rows in order) at or before it,
    -1 if none."""
    j = np.searchsorted(P[:, 0], K, side="right") - 1
    while True:   # rows at the event's own key with a later sub: step back (a few kicks share a key at most)
        m = (j >= 0) & (P[np.maximum(j, 0), 0] == K) & (P[np.maximum(j, 0), 1] > SB)
        if not m.any():
            return j
        j = np.where(m, j - 1, j)


def _pairs_in(K: np.ndarray, SB: np.ndarray, pairs: list) -> np.ndarray:
    """Which events (K[i], SB[i]) are among ``pairs`` [(key, sub)] (or an array of such rows): by a combined key
    when it fits in 62 bits."""
    n = K.shape[0]
    if not len(pairs) or not n:
        return np.zeros(n, dtype=bool)
    P = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    lo = min(int(SB.min()), int(P[:, 1].min()))
    span = max(int(SB.max()), int(P[:, 1].max())) - lo + 1
    top = max(int(K.max()), int(P[:, 0].max()))
    if min(int(K.min()), int(P[:, 0].min())) >= 0 and (top + 1) * span < (1 << 62):
        return np.isin(K * span + (SB - lo), P[:, 0] * span + (P[:, 1] - lo))
    kicks = set(map(tuple, P.tolist()))
    return np.array([(a, b) in kicks for a, b in zip(K.tolist(), SB.tolist())], dtype=bool)


class _Const:
    """A column of ``n`` equal values, made an array only if it must be."""
    __slots__ = ("v", "n")

    def __init__(self, v: Any, n: int):
        self.v, self.n = v, n

    def array(self, dtype: Any) -> np.ndarray:
        return np.full(self.n, self.v, dtype)


class _Index:
    """The interrupts of a chunk, ``off + i`` for chunk index ``i``, without an array of all of them: indexed by
    chunk indices, a boolean mask, or one position, it gives what ``off + np.arange(size)`` would."""
    __slots__ = ("off", "size")

    def __init__(self, off: int, size: int):
        self.off, self.size = off, size

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, (int, np.integer)):
            if not -self.size <= i < self.size:
                raise IndexError(i)
            return self.off + (int(i) % self.size)
        i = np.asarray(i)
        if i.dtype == np.bool_:
            return np.flatnonzero(i) + self.off
        return (i if i.dtype == np.int64 else i.astype(np.int64)) + self.off


def _cat(parts: list) -> tuple:
    """Parts of equal-length tuples of arrays, as one tuple of arrays."""
    if len(parts) == 1:
        return parts[0]
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(len(parts[0])))


def _entry_exits(vp: Any, n: int) -> None:
    """n entries that delivered an interrupt: a halted vCPU was woken (its HLT exit ends), a running one
    without APICv took an external-interrupt exit (with APICv it takes the interrupt without exiting)."""
    vc = vp.vcpu
    if vp.halted:
        vc.wakeups += n
        vc.exits["HLT"] += n
    elif not vp.apicv:
        vc.exits["EXTERNAL_INTERRUPT"] += n


class Sink:
    """Per-interrupt outcome and latency (kept, or only counted for a streamed storm)."""

    def __init__(self, n: int, keep: bool):
        self.keep = keep
        self.outcome = np.zeros(n if keep else 0, dtype=np.int8)
        self.latency = np.full(n if keep else 0, -1, dtype=np.int64)
        self.counts = np.zeros(len(Outcome), dtype=np.int64)
        self.refire_counts = np.zeros(len(Outcome), dtype=np.int64)  # interrupts the IO-APIC sent again
        self.prov: dict[int, int] = {}   # interrupts whose outcome may still change: PENDING or IN_FLIGHT
        self.ext: list = []              # interrupts held from before the storm: handle -2 - i
        self.ext_done: dict[int, tuple] = {}
        self._tl = threading.local()     # a worker thread's own counts (``VectorEngine._run_local``)

    def _c(self) -> np.ndarray:
        c = getattr(self._tl, "counts", None)
        return self.counts if c is None else c

    def external(self, ev: Any) -> int:
        """A handle for an IrqEvent the model holds from before the storm (a poll may settle it)."""
        self.ext.append(ev)
        return -2 - (len(self.ext) - 1)

    def event(self, g: int) -> Any:
        return self.ext[-2 - g] if g <= -2 else None

    def chunk(self, off: int, m: int) -> None:
        """The interrupts off..off+m are the current chunk: ``out_view`` and ``lat_view`` are its slots, by
        local index (the vCPU fast path writes there)."""
        self.off = off
        if self.keep:
            self.out_view, self.lat_view = self.outcome[off:off + m], self.latency[off:off + m]

    def settle(self, g: np.ndarray, o: Any, lat: Any = None) -> None:
        if not np.size(g):
            return
        if self.keep:
            self.outcome[g] = o
            if lat is not None:
                self.latency[g] = lat
        if np.ndim(o):
            self._c()[:] += np.bincount(o, minlength=len(Outcome))
        else:
            self._c()[o] += np.size(g)

    def mark(self, g: np.ndarray, o: int, n: int) -> None:
        """``n`` of the interrupts ``g`` end as ``o``; all of them are marked so (one write, no masked gather): each
        of the others is settled again later and its own outcome replaces the mark."""
        if self.keep:
            self.outcome[g] = o
        self._c()[o] += n

    def mark_chunk(self, i: np.ndarray, o: int, n: int) -> None:
        """``mark`` for the current chunk's interrupts at chunk indices ``i``."""
        if self.keep:
            self.out_view[i] = o
        self._c()[o] += n

    def settle1(self, g: int, o: int, lat: int | None = None, t_ack: int | None = None) -> None:
        if g <= -2:  # not in this storm: the model's own IrqEvent changes, and the host's ledger with it
            self.ext_done[g] = (o, t_ack)
            return
        self.prov.pop(g, None)
        if g >= REFIRE_BASE:  # a re-delivery of a stuck line: not one of the storm's interrupts
            self.refire_counts[o] += 1
            return
        if self.keep:
            self.outcome[g] = o
            if lat is not None:
                self.latency[g] = lat
        self._c()[o] += 1

    def pending(self, g: int) -> None:
        if g > -2:
            self.prov[g] = O.PENDING

    def carry(self, g: int) -> None:
        self.prov[g] = O.IN_FLIGHT

    def close(self) -> None:
        for g, o in self.prov.items():
            if g >= REFIRE_BASE:
                self.refire_counts[o] += 1
                continue
            if self.keep:
                self.outcome[g] = o
            self.counts[o] += 1
        self.prov.clear()


class VectorEngine:
    def __init__(self, host: Any, storm: Any):
        self.host = host
        self.storm = storm
        self.timing = host.timing
        self.plan = plan = compile_host(host, storm.sources)
        self.keep = not getattr(storm, "lazy", False)
        self.sink = Sink(len(storm), self.keep)
        P = len(plan.sources)
        self.P = P
        self.log: list[tuple] = []              # (t, key, sub, level, text): the lines of spurious disables; key
        #                                         orders them among the storm's interrupts (index g; g - 0.5:
        #                                         a timer just before interrupt g)
        self.nh_log: list[tuple] = []           # the NO_HANDLER lines printed: (t, gidx, level, text)
        self.polls = PollSchedule(plan.poll_next)
        self._poll_from = -1                    # the polls before this instant have run
        self.disabled: list[tuple] = []         # (t, key, irq): spurious disables, keyed like the log
        self.refire_segs: list[tuple] = []      # re-deliveries raised: (first instant, how many, chain key), each
        #                                         every host_irq_ns
        self.refire_held: dict[int, tuple] = {}  # handle -> (instant, chain key, storm interrupts before it)
        self.n_refires = 0
        self.off = 0
        self.chunk_t = np.zeros(0, np.int64)
        self.t_last = host.now
        # per line state
        self.msi_lines: dict[int, MsiLine] = {}
        self.intx_lines: dict[int, IntxLine] = {}
        intx_irqs = {sp.line.desc.irq for sp in plan.sources if sp.route == R_INTX}
        self.thread_lines: dict[int, MsiThreadLine] = {}
        for lp in plan.lines:
            if lp.kind == L_INTX_THREAD:
                self.intx_lines[lp.desc.irq] = IntxThreadLine(self, lp)
            elif lp.kind == L_MSI_THREAD:
                self.thread_lines[lp.desc.irq] = MsiThreadLine(self, lp)
            elif lp.kind == L_INTX or lp.desc.irq in intx_irqs:
                self.intx_lines[lp.desc.irq] = IntxLine(self, lp)
            else:
                self.msi_lines[lp.desc.irq] = MsiLine(self, lp)
        self.vcpus = [VcpuWindows(self, vp) for vp in plan.vcpus]
        self.work = {fp.index: WorkChain(self, fp) for fp in plan.irqfds if not fp.fast}
        self.pba: dict[int, Any] = {}
        self.instant_counts: dict[int, tuple] = {}
        self.first_id = None
        self._tables()
        # each source's kind while its line is up: a line that goes down mid-storm changes self.kind, but what its
        # CPU took before the disable still goes downstream as it was dispatched
        self.kind_up = self.kind.copy()
        # host CPUs (irqlab/cpu.py): a CPU stage as soon as a source's vector arrives at a CPU
        check_wakeups(plan)
        self.cpus = CpuStage(self) if any(sp.cpu >= 0 for sp in plan.sources) else None
        if self.cpus is not None:
            self._bound_info()

    # ------------------------------------------------------------------ per-source tables
    def _tables(self) -> None:
        plan, t = self.plan, self.timing
        P = self.P
        self.kind = np.full(P, K_CONST, dtype=np.int8)
        self.const_out = np.zeros(P, dtype=np.int8)
        self.const_lat = np.full(P, -1, dtype=np.int64)
        self.src_line: list[Any] = [None] * P
        self.src_work: list[Any] = [None] * P
        self.src_intx_kind = np.full(P, -2, dtype=np.int64)
        # vCPU accepts of K_ACCEPT sources: per vCPU, (vector, carries the interrupt) per source
        nvc = len(self.vcpus)
        self.acc_vec = np.full((nvc, P), -1, dtype=np.int16)
        self.acc_tok = np.zeros((nvc, P), dtype=bool)
        self.cost = np.zeros(P, dtype=np.int64)
        self.iommu = np.zeros(P, dtype=bool)
        self.instant: list[list] = [[] for _ in range(P)]
        self.src_lowest: list[list] = [[] for _ in range(P)]  # per source, the vCPUs its accepts raise arb_prio on
        for s, sp in enumerate(plan.sources):
            r = sp.route
            if r == R_NOHANDLER:
                self.const_out[s] = O.NO_HANDLER
            elif r == R_PBA:
                self.kind[s] = K_HELD
            elif r == R_POSTED and sp.posted.mode == "illegal":  # refused at the LAPIC: no_route, ESR
                self.const_out[s] = O.NO_ROUTE
                self.instant[s].append(sp.posted)
            elif r == R_POSTED:
                self.kind[s] = K_ACCEPT
                a = sp.posted
                vw = self.vcpus[a.vcpu.index]
                self.acc_vec[a.vcpu.index, s] = vw.vector(a.vector)
                self.acc_tok[a.vcpu.index, s] = True
                self.cost[s] = t.iommu_post_ns
                self.iommu[s] = True
            elif r != R_INTX and sp.line.desc.irq in self.thread_lines:
                self.kind[s] = K_THREAD
                self.src_line[s] = self.thread_lines[sp.line.desc.irq]
            elif r == R_INTX or sp.line.desc.irq in self.intx_lines:
                self.kind[s] = K_INTX
                il = self.intx_lines[sp.line.desc.irq]
                self.src_line[s] = il
                self.src_intx_kind[s] = -1 if r == R_LINE else il.lp.devices.index(sp.device)
            else:
                ml = self.msi_lines[sp.line.desc.irq]
                self.src_line[s] = ml
                self._msi_source(s, sp, ml)
        self.kinds_present = set(self.kind.tolist())
        # each line's sources, by irq
        self.line_srcs = {irq: [s for s in range(P) if self.src_line[s] is ln]
                          for irq, ln in (*self.msi_lines.items(), *self.intx_lines.items(),
                                          *self.thread_lines.items())}
        self.instant_srcs = [s for s in range(P) if self.instant[s]]
        # reevaluate_vector's "No irq handler for %d.%u" line, per NO_HANDLER source (-1: the others); a source
        # whose slot is VECTOR_SHUTDOWN is silent once (the slot becomes VECTOR_UNUSED)
        self.nh_msgs: list[str] = []
        self.nh_silent: set[int] = set()       # messages whose slot is VECTOR_SHUTDOWN until their first interrupt
        self.nh_unused: list[int] = []
        self.nh_rs = dataclasses.replace(self.host.genirq.no_handler_rs)
        self.nh_msg = np.full(P, -1, dtype=np.int16)
        vector_irq = self.host.genirq.vector_irq
        for s, sp in enumerate(plan.sources):
            if sp.route == R_NOHANDLER:
                d = sp.vector.desc
                self.nh_msg[s] = len(self.nh_msgs)
                self.nh_msgs.append(f"No irq handler for {d.cpu}.{d.vector}")
                if vector_irq[d.cpu].get(d.vector) is VECTOR_SHUTDOWN:
                    self.nh_silent.add(self.nh_msg[s].item())
        self._vcpu_info()

    def _msi_source(self, s: int, sp: Any, ml: MsiLine) -> None:
        lp, t = sp.line, self.timing
        if not ml.up:
            self.kind[s] = K_HELD
            return
        if lp.kind == L_MSI_HOST:
            self.const_out[s] = O.HANDLED_HOST
            return
        ep = lp.efd
        if ep.irqfd is None:  # nobody in the kernel takes it: userspace's, or nobody's once it closed the fd
            self.const_out[s] = O.CLOSED_EVENTFD if ep.efd.closed else O.USERSPACE
            return
        fp = ep.irqfd
        if not fp.fast:
            self.kind[s] = K_WORK
            self.src_work[s] = self.work[fp.index]
            return
        acc = fp.delivery.accepts
        if not acc:
            self.const_out[s] = O.NO_ROUTE
            return
        if acc[0].mode != "fixed":
            o = INSTANT_OUTCOME[acc[0].mode]
            self.const_out[s] = o
            if o == O.INJECTED:
                self.const_lat[s] = t.host_irq_ns
        else:
            self.kind[s] = K_ACCEPT
        self.cost[s] = t.host_irq_ns
        for n, a in enumerate(acc):
            if a.mode != "fixed":
                self.instant[s].append(a)
                continue
            if a.lowest:
                self.src_lowest[s].append(a.vcpu.index)
            vi = a.vcpu.index
            self.acc_vec[vi, s] = self.vcpus[vi].vector(a.vector)
            self.acc_tok[vi, s] = n == 0

    # ------------------------------------------------------------------ running
    def run(self, chunk_events: int, progress: Any) -> None:
        st = self.storm
        self.cnt = np.zeros(self.P, dtype=np.int64)
        self.held_cnt = np.zeros(self.P, dtype=np.int64)
        it = st.chunks(chunk_events)
        cur = next(it, None)
        while cur is not None:
            nxt = next(it, None)
            t, ids, off = cur
            t_next = int(nxt[0][0]) if nxt is not None and len(nxt[0]) else INF
            if self.cpus is not None:
                self._chunk_cpu(t, ids, off, t_next)
            else:
                self._chunk(t, ids, off, t_next)
            if progress is not None:
                progress.update(len(t))
            cur = nxt
        self._drain()
        self.sink.close()
        self._write_back()

    def _chunk(self, t: np.ndarray, sid: np.ndarray, off: int, t_next: int) -> None:
        if not t.size:
            return
        self.off = off
        self.chunk_t = t
        self.sink.chunk(off, t.size)
        self.t_last = max(self.t_last, int(t[-1]))
        cnt = np.bincount(sid, minlength=self.P)
        self.cnt += cnt
        dyn = [ml for ml in self.msi_lines.values() if ml.up and ml.lp.dynamic and not self.plan.noirqdebug]
        evk = self.kind[sid] if (len(self.kinds_present) > 1 or dyn) else None
        # dynamic MSI lines: a spurious disable turns the line's later interrupts into held ones
        for ml in dyn:
            self._msi_scan(ml, t, sid, off, cnt, evk)
        kinds = self.kinds_present if evk is None else set(np.unique(evk).tolist())

        def sel_kind(k: int) -> np.ndarray:
            return np.arange(t.size) if evk is None else np.flatnonzero(evk == k)

        if K_CONST in kinds:
            e = sel_kind(K_CONST)
            if e.size:
                s = sid[e]
                self.sink.settle(off + e, self.const_out[s], self.const_lat[s])
                if self.nh_msgs:
                    self._nohandler_log(t, s, off, e)
                for src in self.instant_srcs:
                    ee = e[s == src]
                    if ee.size:
                        for a in self.instant[src]:
                            self.vcpus[a.vcpu.index].instant_at((int(t[ee[-1]]), 1, off + int(ee[-1])), a)
        if K_HELD in kinds:
            e = sel_kind(K_HELD)
            if e.size:
                self._held(t[e], sid[e], off + e)
        if K_THREAD in kinds:
            e = sel_kind(K_THREAD)
            if e.size:
                ss = sid[e]
                for ln in self.thread_lines.values():
                    m = np.isin(ss, self.line_srcs[ln.desc.irq])
                    ln.feed(t[e[m]], off + e[m])
        if K_WORK in kinds:
            e = sel_kind(K_WORK)
            if e.size:
                self._work(t[e], sid[e], off + e)
        if K_ACCEPT in kinds:
            e = None if evk is None else np.flatnonzero(evk == K_ACCEPT)
            self._accepts(t, sid, off, e, t_next)
        if K_INTX in kinds:
            e = sel_kind(K_INTX)  # not empty: kinds holds what this chunk's events are
            self._intx(t[e], sid[e], off + e, t_next)
        elif self.intx_lines:
            self._intx(t[:0], sid[:0], np.zeros(0, np.int64), t_next)
        self._flush_injects(t_next)

    # ------------------------------------------------------------------ with host CPUs (storm/cpus.py)
    def _bound_info(self) -> None:
        """Per vCPU: taken at its window's end (timer), or — the vCPU its busy CPU runs — when that CPU lets it."""
        cs = self.cpus
        self.vbound: list[Any] = []
        for vw in self.vcpus:
            vp = vw.vp
            c = vp.pcpu
            bound = cs.curr.get(c) is vp and c in cs.servers
            self.vbound.append(cs.servers[c] if bound else None)
            # the vCPU its CPU runs, kicked by reschedule IPIs, on a CPU no source's vector reaches: its re-entry
            # ends that CPU's exit (a job's end, 8T + K_END, in CPU order), not a timer
            vw.res_only = (cs.curr.get(c) is vp and c not in cs.servers and not vp.halted and not vp.apicv)
            vw.cpu_keys = True
            vw.defer: list = []          # accepts whose entry is not decided yet (their CPU's future)

    def _chunk_cpu(self, t: np.ndarray, sid: np.ndarray, off: int, t_next: int) -> None:
        """A chunk with host CPUs: the lines the engine computes assuming their CPU takes them at once first
        (spurious counting, lines down, INTx), then every CPU takes its vectors (storm/cpus.py), then what the CPUs
        took runs on, in the order they took it."""
        if not t.size:
            return
        cs = self.cpus
        cs.prune(int(t[0]))
        self.off = off
        self.chunk_t = t
        self.sink.chunk(off, t.size)
        self.t_last = max(self.t_last, int(t[-1]))
        dyn = [ml for ml in self.msi_lines.values() if ml.up and ml.lp.dynamic and not self.plan.noirqdebug]
        cs.src_count = {} if self.P <= 8 else None   # sources the scan counts while it finds their arrivals
        if dyn:
            cnt = self._count(sid)
            self.cnt += cnt
        g = _Index(off, t.size)   # each arrival's interrupt (its index in the storm), made only where used
        if dyn or self.kinds_present & {K_HELD, K_THREAD, K_INTX}:
            evk = self.kind[sid].copy()
        else:   # every arrival reaches its CPU as a plain vector
            evk = np.zeros(0, np.int8)
        cplx = None   # arrivals a line computed as taken at once (None: none)
        for ml in dyn:
            if cplx is None:
                cplx = np.zeros(t.size, dtype=bool)
            srcs = self.line_srcs[ml.desc.irq]
            self._msi_scan(ml, t, sid, off, cnt, evk)
            m = np.isin(sid, srcs) & (evk != K_HELD)
            cs.note_complex(ml.desc.cpu, t[m], g[m])
            cplx |= m
        kp = self.kinds_present if not dyn else set(np.unique(evk).tolist())
        if not evk.size:
            kp = set()
        e = np.flatnonzero(evk == K_HELD) if K_HELD in kp else evk[:0]
        if e.size:
            self._held(t[e], sid[e], g[e])
        e = np.flatnonzero(evk == K_THREAD) if K_THREAD in kp else evk[:0]
        thr_down = None
        thr_up = [ln for ln in self.thread_lines.values() if ln.up]
        if e.size:   # a threaded MSI line that is up: its CPU first (below), then the line; one that is down holds
            thr_down = np.zeros(t.size, dtype=bool)
            ss = sid[e]
            for ln in self.thread_lines.values():
                if not ln.up:
                    m = np.isin(ss, self.line_srcs[ln.desc.irq])
                    if m.any():
                        ln.held_raw = True
                    ln.hold(t[e[m]], g[e[m]])
                    thr_down[e[m]] = True
        e = np.flatnonzero(evk == K_INTX) if K_INTX in kp else evk[:0]
        self._intx(t[e], sid[e], g[e], t_next)
        if t_next >= INF:   # the last chunk: what a stuck line raises after the storm, its CPU takes before it ends
            for il in self.intx_lines.values():
                if isinstance(il, IntxLine):
                    il.drain_chain()
                    R = il.refire_at
                    if R is not None and not self.polls.polls(self._poll_from, R + 1).size:
                        il.refire_down_now()
        for il in self.intx_lines.values():
            for x in il.cpu_arr:
                cs.note_complex(il.desc.cpu, *x)
            il.cpu_arr = []
        simple = None   # which arrivals reach their CPU as plain vectors (None: all)
        if K_HELD in kp or K_INTX in kp:
            simple = (evk != K_HELD) & (evk != K_INTX)
        for m in (thr_down, cplx):
            if m is not None:
                simple = ~m if simple is None else simple & ~m
        parts, unrouted = cs.scan(t, sid, g, simple, t_next)
        if not dyn:   # (the sources a grid CPU found were counted there)
            self.cnt += self._count(sid, cs.src_count)
        thr_was_down = [ln for ln in self.thread_lines.values() if not ln.up and ln not in thr_up]
        if (thr_up or thr_was_down) and parts:
            T, cl, G, S, TR, SUB = _cat(parts)
            for ln in thr_up:   # what its CPU took, in the order it took it: the thread windows, note_interrupt
                m = np.isin(S, self.line_srcs[ln.desc.irq])
                if m.any():
                    o = np.lexsort((SUB[m], 8 * T[m] + cl[m]))
                    ln.feed(T[m][o], G[m][o], cl[m][o])
            for ln in thr_was_down:
                # a vector that waited in its CPU's IRR when the line went down (in an earlier chunk), taken now:
                # its flow handler finds the line disabled (masks it, IRQS_PENDING), as the first arrival after
                # the verdict does; two such, or one after arrivals the line held already, would need their order
                # with those (a later arrival merges into the one in the IRR): not computed
                m = np.isin(S, self.line_srcs[ln.desc.irq])
                if m.any():
                    if int(m.sum()) > 1 or ln.held_raw:
                        raise Unsupported(f"irq {ln.desc.irq}: a threaded MSI line disabled while its CPU's IRR "
                                          "holds its vector, with more of its interrupts after it (engine='reference' "
                                          "runs it)")
                    ln.hold(T[m], G[m], taken=True)
        if cplx is None:
            rest = unrouted
        else:
            cplx[unrouted] = True
            rest = np.flatnonzero(cplx)
        if rest.size:   # posted, or taken at once by their line
            tr, gr = t[rest], g[rest]
            parts.append((tr, np.full(rest.size, K_RAISE, np.int64), gr, sid[rest], tr, gr))
        self._downstream(parts, t_next)

    def _count(self, sid: np.ndarray, known: dict | None = None) -> np.ndarray:
        """The chunk's interrupts per source (``known``: counts found already)."""
        if self.P <= 8:   # a comparison per source is cheaper than bincount's cast of the ids
            known = known or {}
            return np.array([known[x] if x in known else np.count_nonzero(sid == x) for x in range(self.P)],
                            dtype=np.int64)
        return np.bincount(sid, minlength=self.P)

    def _downstream(self, parts: list, t_next: int) -> None:
        """What the CPUs took (or what reached no CPU), in parts (T, cls, g, s, traise, sub), unordered: each
        consumer below puts its own share in the order it ran (key 8T + class, then sub) — one sort, or one
        concatenation, of everything would be a pass too many."""
        kind = self.kind_up   # every arrival here was dispatched: its line was up (the held ones never come here)
        self.acc_mine = (kind == K_ACCEPT)[None, :] & (self.acc_vec >= 0)
        is_const = kind == K_CONST
        if is_const.any():
            cparts = []
            for p in parts:
                e = np.flatnonzero(is_const[p[3]])
                if e.size:
                    cparts.append(tuple(x[e] for x in p))
            if cparts:
                self._const_cpu(*_cat(cparts))
        self._accepts_cpu(parts, t_next)   # (irqfd work ran in the CPU stage)

    def _const_cpu(self, T, cl, G, S, TR, SUB) -> None:
        """Interrupts whose outcome is fixed by their source (host handlers, a line with no vCPU), as taken."""
        if T.size:
            s = S
            lat = self.const_lat[s]
            lat = np.where(lat >= 0, lat + (T - TR), -1)
            self.sink.settle(G, self.const_out[s], lat)
            if self.nh_msgs:
                self._nohandler_log_cpu(T, s, G, cl, SUB)
            for src in self.instant_srcs:
                ee = np.flatnonzero(s == src)
                if ee.size:
                    i = int(ee[np.lexsort((SUB[ee], 8 * T[ee] + cl[ee]))[-1]])   # the last one it took
                    for a in self.instant[src]:
                        self.vcpus[a.vcpu.index].instant_at((8 * int(T[i]) + int(cl[i]), 0, int(SUB[i])), a)

    def _nh_loud(self, mk: np.ndarray) -> np.ndarray:
        """Which of these no-handler arrivals (messages ``mk``, in order) print: the first at a VECTOR_SHUTDOWN
        slot is silent (the slot becomes VECTOR_UNUSED, its later arrivals print)."""
        loud = np.ones(mk.size, dtype=bool)
        if self.nh_silent:
            msgs, first = np.unique(mk, return_index=True)
            for x, i in zip(msgs.tolist(), first.tolist()):
                if x in self.nh_silent:
                    self.nh_silent.discard(x)
                    self.nh_unused.append(x)
                    loud[i] = False
        return loud

    def _nohandler_log_cpu(self, T, s, G, cl, SUB) -> None:
        """_nohandler_log for what the CPUs took, in the order they took it (6-tuples: + class and order)."""
        m = self.nh_msg[s]
        k = np.flatnonzero(m >= 0)
        if not k.size:
            return
        o = k[np.lexsort((SUB[k], 8 * T[k] + cl[k]))]
        ek, mk = o, m[o]
        c = np.flatnonzero(self._nh_loud(mk))
        ok, rep = ratelimit_scan(self.nh_rs, T[ek[c]] // NSEC_PER_JIFFY)
        for i in np.flatnonzero(ok | (rep > 0)).tolist():
            j = int(ek[c[i]])
            tt, gg, cc, sb = int(T[j]), int(G[j]), int(cl[j]), int(SUB[j])
            if rep[i]:
                self.nh_log.append((tt, gg, "warn", f"reevaluate_vector: {int(rep[i])} callbacks suppressed", cc, sb))
            if ok[i]:
                self.nh_log.append((tt, gg, "emerg", self.nh_msgs[int(mk[c[i]])], cc, sb))

    def _run_local(self, calls: list) -> list:
        """``_run_all`` for calls that settle interrupts: each worker adds to its own counts (the sink's
        thread-local ones), added to the ledger here, in this thread. Each call touches only its own state and
        its own interrupts' slots, so the result is the same in any order."""
        if sum(1 for c in calls if c[2] >= _PARALLEL_MIN) < 2:
            return [fn(*args) for fn, args, _ in calls]
        sink = self.sink

        def local(fn: Any, args: tuple) -> tuple:
            sink._tl.counts = np.zeros_like(sink.counts)
            try:
                return fn(*args), sink._tl.counts
            finally:
                sink._tl.counts = None
        out = []
        for r, c in _run_all([(local, (fn, args), n) for fn, args, n in calls]):
            sink.counts += c
            out.append(r)
        return out

    def _accepts_cpu(self, parts: list, t_next: int) -> None:
        """Every vCPU's accepts (what the CPUs took, VT-d posts, irqfd work due before the next chunk), at their keys;
        each window ends at its timer or, for the vCPU a busy CPU runs, when that CPU lets it in. The vCPUs are
        independent here (their CPUs' busy periods are final up to the frontier and only read): two at once."""
        calls = []
        for v, vw in enumerate(self.vcpus):
            if vw.vp.dedicated:
                continue
            mine = self.acc_mine[v]   # per source: an accept into this vCPU
            sels = []                 # (part, its events that are, or None: all of them)
            n = 0
            for p in parts:
                S = p[3]
                if not S.size:
                    continue
                s0 = int(S[0])
                if mine[s0] and (S.shape[0] == 1 or self.one_src_part(S)):
                    sels.append((p, None))
                    n += S.shape[0]
                    continue
                sel = np.flatnonzero(mine[S])
                if sel.size:
                    sels.append((p, sel))
                    n += sel.size
            if sels or vw.buf or vw.defer:
                calls.append((self._vcpu_accepts, (v, vw, sels, t_next), n))
        if len(calls) > 1:
            for srv in self.cpus.servers.values():
                srv._arrays()   # no busy period waits to be filed: the workers only read
        self._run_local(calls)

    def one_src_part(self, S: np.ndarray) -> bool:
        """Whether a part of what the CPUs took comes from one source (a CPU that one source reaches)."""
        return bool(S[0] == S[-1]) and bool((S == S[0]).all())

    def _vcpu_accepts(self, v: int, vw: Any, sels: list, t_next: int) -> None:
        col = self.acc_vec[v]
        parts = []
        own = self.vbound[v].cpu if self.vbound[v] is not None else (vw.vp.pcpu if vw.res_only else None)
        apicv_own = None
        if vw.vp.apicv and not vw.vp.halted:   # a post asks first whether its CPU is busy (vm.py post_interrupt):
            apicv_own, own = own, None          # that CPU catches up (its vCPU re-enters) before the accept
        for (T, cl, G, S, TR, SUB), sel in sels:
            if sel is not None:
                T, cl, G, S, TR, SUB = T[sel], cl[sel], G[sel], S[sel], TR[sel], SUB[sel]
            if own is not None:
                cl = before_own(cl, SUB, own)
            if sel is not None:
                gg = np.where(self.acc_tok[v, S], G, -1)
                parts.append((8 * T + cl, SUB, T, gg, TR, col[S].astype(np.int64), self.cost[S], self.iommu[S]))
                continue
            s0 = int(S[0])   # a whole part from one source: its vector, cost and path are one value each
            gg = G if self.acc_tok[v, s0] else np.full(G.shape[0], -1, np.int64)
            parts.append((8 * T + cl, SUB, T, gg, TR, _Const(int(col[s0]), G.shape[0]),
                          _Const(int(self.cost[s0]), G.shape[0]), _Const(bool(self.iommu[s0]), G.shape[0])))
        if vw.buf:
            rest = []
            # injects due before the next chunk's first interrupt — and at it, when that chunk starts at this one's
            # last instant (work before interrupts at an instant: this chunk's interrupts at that instant too)
            bound = max(t_next, self.t_last + 1) if t_next < INF else t_next
            for (Ti, gi, tevi, vli, ci, oi) in vw.buf:
                now = Ti < bound
                if not now.all():
                    rest.append((Ti[~now], gi[~now], tevi[~now], vli, ci, oi[~now]))
                Ti, gi, tevi, oi = Ti[now], gi[now], tevi[now], oi[now]
                if Ti.size:
                    kc = K_INJ_BEFORE if vw.inject_after_w else K_INJ_AFTER
                    parts.append((8 * Ti + kc, oi, Ti, gi, tevi, np.full(Ti.size, vli, np.int64),
                                  np.full(Ti.size, ci, np.int64), np.zeros(Ti.size, bool)))
            vw.buf = rest
        if vw.defer:
            parts = vw.defer + parts
            vw.defer = []
        if not parts:
            return
        if len(parts) == 1:
            K, SB = parts[0][0], parts[0][1]
        else:
            K = np.concatenate([p[0] for p in parts])
            SB = np.concatenate([p[1] for p in parts])
        o = _key_order(K, SB)   # in the order they ran: key, then sub
        K, SB = K[o], SB[o]
        if apicv_own is not None:
            # ... and what that CPU takes from its IRR at that instant comes with the catch-up: before the post of
            # a lower-numbered CPU's take (CPU order otherwise): subs of the takes at K_EARLY, rescaled
            e = (K & 7) == K_EARLY
            low = e & (SB < apicv_own)
            if low.any():
                M = apicv_own + 2
                SB = np.where(low, apicv_own * M + 1 + SB, np.where(e, SB * M, SB))
                o2 = _key_order(K, SB)
                K, SB, o = K[o2], SB[o2], o[o2]
        if own is not None and not vw.vp.halted and not vw.vp.apicv:
            # a kicked vCPU: the first accept a lower-numbered CPU takes at its CPU's re-entry instant comes before
            # the re-entry, but its kick asks whether that CPU is busy (vm.py kvm_vcpu_kick), which catches it up:
            # a second one at that instant comes after the re-entry (K_EARLY, not K_BEFORE)
            b = (K & 7) == 7
            if b.any():
                dup = np.zeros(K.shape[0], dtype=bool)
                dup[1:] = b[1:] & b[:-1] & (K[1:] == K[:-1])
                if dup.any():
                    K = K.copy()
                    K[dup] += 2
                    o2 = _key_order(K, SB)
                    K, SB, o = K[o2], SB[o2], o[o2]
        cols = []
        for i in range(2, 8):
            c = [p[i] for p in parts]
            dt = np.bool_ if i == 7 else np.int64
            if all(isinstance(x, _Const) for x in c) and len({x.v for x in c}) == 1:   # no gather, no memory
                cols.append(np.broadcast_to(np.array(c[0].v, dt), K.shape))
                continue
            c = [x.array(dt) if isinstance(x, _Const) else x for x in c]
            cols.append((c[0] if len(c) == 1 else np.concatenate(c))[o])
        del parts, o, c
        Ta, Ga, Tev, VL, CO, IO = cols
        del cols
        self._vcpu_cpu(v, vw, K, SB, Ta, Ga, Tev, VL, CO, IO, t_next)

    def _vcpu_cpu(self, v: int, vw: Any, K, SB, T, G, TEV, VL, CO, IO, t_next: int) -> None:
        srv = self.vbound[v]
        vp = vw.vp
        d = vw.delta
        BIG = CINF * 2   # an end no accept reaches (still to be decided)
        starts_pre = None
        if srv is None:   # its window ends at the entry timer (or at the end of the exit its kick caused)
            ends = 8 * (T + d) + (K_END if vw.res_only else K_ENTRY)
            if vw.res_only:
                before = K[(K & 7) == 7]   # taken from a lower-numbered CPU's IRR at a re-entry's instant (K_BEFORE)
                if before.size and (np.isin(before + 1, ends).any() or (vw.carry_key is not None and
                                                                         (before + 1 == vw.carry_key).any())):
                    raise Unsupported(f"vcpu{vp.vcpu.id}: a vector a lower-numbered CPU takes from its IRR at the "
                                      "instant its quiet CPU re-enters (its kick, sent after, is a second RES exit)")
            entry, due, pir = T + d, T + d, None
        else:
            t = self.timing
            if vp.halted:   # its window ends at its timer or at the end of the busy period that timer falls in
                end_b = inside = nxt = undet = None
            else:
                end_b, inside, nxt = srv.busy_of(K, SB)
                undet = inside & (end_b >= CINF)
            if not vp.halted and not vp.apicv:       # kicked: it enters when its CPU leaves hard-IRQ context
                entry = nxt
                undet = nxt >= CINF
                ends = np.where(undet, BIG, 8 * np.minimum(nxt, CINF) + K_END)
                # (an accept keyed K_BEFORE was seen by the kicked CPU's scan at its own key, 8T + K_EARLY)
                kp = srv.kick_pairs()
                kicked = _pairs_in(np.where((K & 7) == 7, K + 2, K), SB, kp)
                due = np.where(kicked, T + t.ipi_ns + t.vmexit_ns, T)
                if kp.shape[0]:   # an accept while a kick another one sent is on its way (the vCPU EXITING, or
                    # out for it): due when that kick's exit ends (vm.py's window_due), if it re-enters then
                    j = _last_pair_at_or_before(kp, np.where((K & 7) == 7, K + 2, K), SB)
                    jj = np.maximum(j, 0)
                    _, _, nk = srv.busy_of(kp[jj, 0], kp[jj, 1])
                    under = (j >= 0) & ~kicked & (nk == nxt) & (nxt < CINF)
                    if under.any():
                        due = np.where(under, (kp[jj, 0] >> 3) + t.ipi_ns + t.vmexit_ns, due)
                pir = None
            else:
                # the window's timer — or, if its CPU is busy then, the end of that busy period
                x = T + d
                kx = 8 * x + K_ENTRY
                e2, in2 = srv.end_if_busy(kx)
                und2 = (in2 & (e2 >= CINF)) | (x >= t_next)
                fx = np.where(in2, np.minimum(e2, CINF), x)
                if not vp.halted:   # APICv: in hard-IRQ context it waits for the re-entry, which takes it anyway
                    busy = inside & ~undet
                    early = ~inside & (nxt <= x)   # a re-entry before the window's end delivers it
                    entry = np.where(busy, end_b, np.where(early, nxt, fx))
                    at_end = busy | early | in2
                    ends = np.where(at_end, 8 * np.minimum(entry, CINF) + K_END, kx)
                    due = np.where(busy, T, x)
                    undet = undet | (~inside & ~early & und2)
                    pir = inside
                else:   # (in place, and the temporaries dropped: two vCPUs run at once)
                    entry = fx
                    ends = np.multiply(fx, 8)
                    ends += K_END
                    np.copyto(ends, kx, where=~in2)
                    due = x
                    undet = und2
                    pir = None
                    del e2, in2, kx
                    ends[undet] = BIG
                if not vp.halted:
                    ends = np.where(undet, BIG, ends)
            if undet.any():
                starts = vw.chain_preview(K, ends)
                starts_pre = starts
                cut = int(np.flatnonzero(starts & undet)[0]) if (starts & undet).any() else K.shape[0]
                if cut < K.shape[0]:
                    vw.defer = [(K[cut:], SB[cut:], T[cut:], G[cut:], TEV[cut:], VL[cut:], CO[cut:], IO[cut:])]
                    K, SB, T, G, TEV, VL, CO, IO = K[:cut], SB[:cut], T[:cut], G[:cut], TEV[:cut], VL[:cut], \
                        CO[:cut], IO[:cut]
                    ends, entry, due = ends[:cut], entry[:cut], due[:cut]
                    pir = pir[:cut] if pir is not None else None
                    starts_pre = starts_pre[:cut]
                if not K.shape[0]:
                    return
        vl = int(VL[0]) if VL.min() == VL.max() else VL
        cost = int(CO[0]) if (CO == CO[0]).all() else CO
        io = bool(IO[0]) if (IO == IO[0]).all() else IO
        npiw = len(vw.piw_keys)
        vw.process(T, False, G, TEV, vl, cost, io, SB, keys=K, ends=ends, entry_at=entry, due=due, pir=pir,
                   starts_pre=starts_pre, due_each=srv is not None and not vp.halted and not vp.apicv)
        if len(vw.piw_keys) > npiw:   # VT-d wake-ups: those that found their CPU in hard-IRQ context waited
            kp = np.concatenate([k for k, _ in vw.piw_keys[npiw:]])
            sp = np.concatenate([s for _, s in vw.piw_keys[npiw:]])   # a PIW sent at an event's own key comes
            vw.piw_keys = []                                           # after what its CPU took before it there
            psrv = srv if srv is not None else self.cpus.servers.get(vp.pcpu)   # (its CPU may run another vCPU)
            if psrv is not None:
                waited, merged = psrv.piw_waits(kp, sp)
                vw.piw_waited += waited
                vw.piw_merged += merged
        if srv is not None and vp.apicv and not vp.halted:
            if pir is not None and pir.any():   # posts into the PIR: the first of a busy period sets ON
                srv.note_posts(K[pir], SB[pir], IO[pir])

    # ------------------------------------------------------------------ stages
    def _msi_scan(self, ml: MsiLine, t, sid, off, cnt, evk) -> None:
        """note_interrupt on an MSI line that carries unhandled interrupts from before the storm."""
        srcs = self.line_srcs[ml.desc.irq]
        if not cnt[srcs].any():
            return
        e = np.flatnonzero(np.isin(sid, srcs))
        k = spurious_scan(ml.spur, np.ones(e.size, dtype=bool), t[e] // NSEC_PER_JIFFY)
        if k < 0:
            return
        i = int(e[k])
        self.disable(ml.desc, int(t[i]), off + i, True)
        ml.up = False
        evk[e[k + 1:]] = K_HELD      # the rest of the line's interrupts meet a disabled line
        for s in srcs:
            self.kind[s] = K_HELD
        self.kinds_present = set(self.kind.tolist())

    def _held(self, t: np.ndarray, s: np.ndarray, g: np.ndarray) -> None:
        """Interrupts at a line (or a masked MSI-X vector) that is down, in time order."""
        srcs = np.unique(s).tolist()
        for src in srcs:
            self.held_cnt[src] += int(np.count_nonzero(s == src))
        pba = [src for src in srcs if self.plan.sources[src].route == R_PBA]
        for src in pba:
            m = s == src
            gg, tt = g[m], t[m]
            v = self.plan.sources[src].vector
            if v.pending_event is None and id(v) not in self.pba and gg.size:
                self.pba[id(v)] = (int(gg[0]), int(tt[0]), v)
                self.sink.pending(int(gg[0]))
                gg = gg[1:]
            self.sink.settle(gg, O.DISABLED)
        lines: dict[int, list] = {}
        for src in srcs:
            if src not in pba:
                lines.setdefault(id(self.src_line[src]), [self.src_line[src], []])[1].append(src)
        for ml, ls in lines.values():
            m = np.isin(s, ls) if len(ls) > 1 else s == ls[0]
            ml.hold(t[m], g[m])

    def _nohandler_log(self, t, s, off, e) -> None:
        """The chunk's NO_HANDLER interrupts (positions e, sources s) through reevaluate_vector: the first at a
        VECTOR_SHUTDOWN slot is silent (the slot becomes VECTOR_UNUSED); the others through the
        pr_emerg_ratelimited state, so only the lines printed are kept: (t, g, level, text)."""
        m = self.nh_msg[s]
        k = np.flatnonzero(m >= 0)
        if not k.size:
            return
        ek, mk = e[k], m[k]
        c = np.flatnonzero(self._nh_loud(mk))
        ok, rep = ratelimit_scan(self.nh_rs, t[ek[c]] // NSEC_PER_JIFFY)
        for i in np.flatnonzero(ok | (rep > 0)).tolist():
            tt, g = int(t[ek[c[i]]]), off + int(ek[c[i]])
            if rep[i]:
                self.nh_log.append((tt, g, "warn", f"reevaluate_vector: {int(rep[i])} callbacks suppressed"))
            if ok[i]:
                self.nh_log.append((tt, g, "emerg", self.nh_msgs[int(mk[c[i]])]))

    def _work(self, t: np.ndarray, s: np.ndarray, g: np.ndarray, tev: np.ndarray | None = None) -> None:
        chains: dict[int, list] = {}
        for src in np.unique(s).tolist():
            chains.setdefault(id(self.src_work[src]), [self.src_work[src], []])[1].append(src)
        for wc, srcs in chains.values():
            m = np.isin(s, srcs) if len(srcs) > 1 else s == srcs[0]
            wc.signals(t[m], g[m], None if tev is None else tev[m], s[m] if self.cpus is not None else None)

    def inject(self, delivery: Any, T: np.ndarray, g: np.ndarray, tev: np.ndarray,
               order: np.ndarray | None = None) -> None:
        """irqfd_inject at times T for the interrupts g: kvm_set_irq through the GSI's routes. ``order``: the order
        the works were queued in (injects at one instant run in it; g when None: storm order)."""
        if order is None:
            order = g
        acc = delivery.accepts
        cost = self.timing.host_irq_ns
        if not acc:
            self.sink.settle(g, O.NO_ROUTE)
            return
        if acc[0].mode != "fixed":
            o = INSTANT_OUTCOME[acc[0].mode]
            self.sink.settle(g, o, T - tev + cost if o == O.INJECTED else None)
        for n, a in enumerate(acc):
            if a.mode != "fixed":
                self.instant_counts[id(a)] = (a, self.instant_counts.get(id(a), (a, 0))[1] + T.size)
                vw = self.vcpus[a.vcpu.index]
                if self.cpus is not None:
                    kc = K_INJ_BEFORE if vw.inject_after_w else K_INJ_AFTER
                    vw.instant_at((8 * int(T[-1]) + kc, 0, int(order[-1])), a)
                else:
                    vw.instant_at((int(T[-1]), 0, int(order[-1])), a)
                continue
            vw = self.vcpus[a.vcpu.index]
            vw.buf.append((T, g if n == 0 else np.full(T.size, -1, np.int64), tev, vw.vector(a.vector), cost, order))

    def _vcpu_info(self) -> None:
        """Per vCPU, what its accepts at raise time have in common (the fast path needs one of each)."""
        for wc in self.work.values():  # the vectors irqfd work injects, known before the first chunk
            for a in wc.fp.delivery.accepts:
                if a.mode == "fixed":
                    self.vcpus[a.vcpu.index].vector(a.vector)
        self.vinfo = []
        for v, vw in enumerate(self.vcpus):
            col = self.acc_vec[v]
            srcs = np.flatnonzero(col >= 0)
            vecs = sorted(set(col[srcs].tolist()))
            costs, ios = set(self.cost[srcs].tolist()), set(self.iommu[srcs].tolist())
            tokall = bool(self.acc_tok[v, srcs].all()) if srcs.size else True
            fast = tokall and len(costs) <= 1 and len(ios) <= 1 and not vw.mixed and not vw.any_blocked
            vtab = np.where(col >= 0, col, 0).astype(np.int8)
            self.vinfo.append(dict(srcs=srcs, vecs=vecs, fast=fast, vtab=vtab, tokall=tokall,
                                   one_cost=len(costs) <= 1, one_io=len(ios) <= 1,
                                   cost=int(next(iter(costs))) if len(costs) == 1 else 0,
                                   iommu=bool(next(iter(ios))) if len(ios) == 1 else False))
        ok = (self.acc_vec >= 0).sum(axis=0)
        kacc = self.kind == K_ACCEPT
        self.src_code = None   # single-destination accepts: vCPU * 16 + the vector's index on it, per source
        if self.vcpus and (ok[kacc] == 1).all() and len(self.vcpus) <= 15 and \
                all(len(vw.vectors) <= 16 for vw in self.vcpus):
            v = np.argmax(self.acc_vec >= 0, axis=0)
            loc = self.acc_vec[v, np.arange(self.P)]
            self.src_code = (v * 16 + np.maximum(loc, 0)).astype(np.uint8)

    def _accepts(self, t, sid, off, e, t_next) -> None:
        """Accepts at raised time (irqfd fast path, VT-d posting), per vCPU, with the injects due now."""
        code = None
        if self.src_code is not None:
            code = self.src_code[sid] if e is None else self.src_code[sid[e]]
        fast: list = []  # process_fast calls: each touches only its own vCPU, so two can run at once
        for v, vw in enumerate(self.vcpus):
            info = self.vinfo[v]
            if vw.vp.dedicated or (not info["srcs"].size and not vw.buf):
                continue
            if code is not None:
                if len(self.vcpus) == 1:
                    sel = np.arange(code.size)
                else:
                    sel = np.flatnonzero((code >> 4) == v)
                if e is not None:
                    sel = e[sel] if len(self.vcpus) > 1 or e.size != t.size else e
            else:
                base = np.arange(t.size) if e is None else e
                sel = base[self.acc_vec[v][sid[base]] >= 0]
            if not sel.size and not vw.buf:
                continue
            T = t[sel]
            if info["fast"] and not vw.buf:
                if len(info["vecs"]) <= 1:
                    vl = info["vecs"][0] if info["vecs"] else 0
                elif code is not None and e is None:
                    vl = (code[sel] & 15).astype(np.int8)
                else:
                    vl = info["vtab"][sid[sel]]
                fast.append((vw.process_fast, (T, sel, vl, info["cost"], info["iommu"]), T.size))
                continue
            s = sid[sel]
            col = self.acc_vec[v]
            vl = col[s].astype(np.int64) if len(info["vecs"]) > 1 else (info["vecs"][0] if info["vecs"] else 0)
            cost = info["cost"] if info["one_cost"] else self.cost[s]
            io = info["iommu"] if info["one_io"] else self.iommu[s]
            g = sel + off
            if not info["tokall"]:
                g = np.where(self.acc_tok[v, s], g, -1)
            if vw.buf:
                self._merge_process(vw, T, g, sel + off, vl, cost, io, t_next)
            else:
                vw.process(T, False, g, T, vl, cost, io, sel + off)
        counts = self.sink.counts
        for inc in _run_all(fast):  # the ledger is shared: added here, in this thread
            for o, k in inc:
                counts[o] += k

    def _merge_process(self, vw: VcpuWindows, T, g, order, vl, cost, io, t_next) -> None:
        """Raised accepts merged with inject accepts (timers run before raised interrupts at an instant)."""
        n = T.size
        parts_T, parts_inj, parts_g, parts_tev, parts_vl, parts_cost, parts_ord = [], [], [], [], [], [], []
        rest = []
        for (Ti, gi, tevi, vli, ci, oi) in vw.buf:
            now = Ti < t_next
            if not now.all():
                rest.append((Ti[~now], gi[~now], tevi[~now], vli, ci, oi[~now]))
            Ti, gi, tevi, oi = Ti[now], gi[now], tevi[now], oi[now]
            parts_T.append(Ti)
            parts_inj.append(np.ones(Ti.size, bool))
            parts_g.append(gi)
            parts_tev.append(tevi)
            parts_vl.append(np.full(Ti.size, vli, np.int64))
            parts_cost.append(np.full(Ti.size, ci, np.int64))
            parts_ord.append(oi)  # work items due at one instant run in the order they were queued
        vw.buf = rest
        parts_T.append(T)
        parts_inj.append(np.zeros(n, bool))
        parts_g.append(g)
        parts_tev.append(T)
        parts_vl.append(np.broadcast_to(np.asarray(vl, np.int64), (n,)))
        parts_cost.append(np.broadcast_to(np.asarray(cost, np.int64), (n,)))
        parts_ord.append(order)
        io_arr = np.concatenate([np.zeros(sum(p.size for p in parts_T[:-1]), bool),
                                 np.broadcast_to(np.asarray(io, bool), (n,))])
        Tc = np.concatenate(parts_T)
        inj = np.concatenate(parts_inj)
        ordk = np.concatenate(parts_ord)
        order = np.lexsort((ordk, ~inj, Tc))
        vw.process(Tc[order], inj[order], np.concatenate(parts_g)[order], np.concatenate(parts_tev)[order],
                   np.concatenate(parts_vl)[order], np.concatenate(parts_cost)[order], io_arr[order], ordk[order])

    def _flush_injects(self, t_next: int) -> None:
        for vw in self.vcpus:
            if vw.buf:
                e = np.zeros(0, np.int64)
                self._merge_process(vw, e, e, e, 0, 0, False, t_next)

    def _intx(self, t, sid, g, t_next) -> None:
        lines = list(self.intx_lines.values())
        # timers before b run in this chunk: those before the next chunk's first interrupt and, when the next
        # chunk starts at this one's last instant, those at that instant too (timers before interrupts at an
        # instant); the last chunk: the drain does the rest
        b = max(t_next, self.t_last + 1) if t_next < INF else self.t_last + 1
        if t.size:
            kind = self.src_intx_kind[sid]
            for il in lines:
                m = np.isin(sid, self.line_srcs[il.desc.irq])
                il.feed(t[m], g[m], kind[m], b - 1)
        else:
            for il in lines:
                il.feed(t, np.zeros(0, np.int64), np.zeros(0, np.int64), b - 1)
        polls = self.polls.polls(self._poll_from, b)
        self._poll_from = b
        for il in lines:
            il.feed_down(polls, b)

    # ------------------------------------------------------------------ re-deliveries of a stuck line
    def key_before(self, T: int) -> float:
        """The log/order key of a timer at instant T of this chunk: just before the storm's first interrupt
        at or after T."""
        return self.off + int(np.searchsorted(self.chunk_t, T, side="left")) - 0.5

    def refire_segment(self, r0: int, n: int, key: int) -> None:
        """n re-deliveries raised, at r0, r0 + host_irq_ns, ...: new interrupts (ids in raise order)."""
        self.refire_segs.append((r0, n, key))
        self.n_refires += n

    def new_refire(self, R: int, key: int, irq: int) -> int:
        """One re-delivery of ``irq`` raised at R that the model keeps as an IrqEvent for a while: its handle."""
        h = REFIRE_BASE + len(self.refire_held)
        self.refire_held[h] = (R, key, int(self.key_before(R) + 0.5), irq)
        self.refire_segment(R, 1, key)
        return h

    def _refires_before(self, T: int, key: float | None = None) -> int:
        """How many re-deliveries were raised before an interrupt at T: all at instants < T, and at T those of
        chains started before ``key`` (or all of them, for a storm interrupt: timers come first)."""
        H = self.timing.host_irq_ns
        n = 0
        for r0, c, k in self.refire_segs:
            x = T if key is None or k < key else T - 1
            if x >= r0:
                n += min(c, (x - r0) // H + 1)
        return n

    # ------------------------------------------------------------------ the spurious disable
    def disable(self, desc: Any, t: int, key: float, handled: bool, sub: int = -1) -> None:
        """note_interrupt's verdict: "nobody cared", the line disabled, the poller armed. ``key`` orders it
        among the storm's interrupts (``sub``: among re-deliveries at one instant, the chain's key)."""
        for lvl, txt in nobody_cared_lines(desc, IRQ_NONE) + [("emerg", f"Disabling IRQ #{desc.irq}")]:
            self.log.append((t, key, sub, lvl, txt))
        self.disabled.append((t, key, sub, desc.irq))
        self.polls.arm(t)

    # ------------------------------------------------------------------ the end of the run
    def _drain(self) -> None:
        """host.run(): timers and work until none is left but the periodic poller (which runs meanwhile)."""
        if self.cpus is not None:
            self.acc_mine = (self.kind == K_ACCEPT)[None, :] & (self.acc_vec >= 0)
            self._accepts_cpu([], INF)
        else:
            self._flush_injects(INF)
        F = self.t_last
        if self.cpus is not None:
            for srv in self.cpus.servers.values():
                F = max(F, srv.last_end)
        for vw in self.vcpus:
            F = max(F, vw.carry_end)
        for wc in self.work.values():
            F = max(F, wc.last)
        for ln in self.thread_lines.values():
            F = max(F, ln.busy_until())
        lines = list(self.intx_lines.values())
        for il in lines:
            il.drain_chain()
        start = self._poll_from
        while True:
            for il in lines:
                F = max(F, il.busy_until())
            polls = self.polls.polls(start, F + 1)
            if not polls.size:
                break
            for P in polls.tolist():
                for il in lines:
                    il.drain_polls(np.array([P], np.int64))
            start = int(polls[-1]) + 1
        for il in lines:
            il.finish()
            if il.cpu_arr and self.cpus is not None and any(np.size(x[0]) for x in il.cpu_arr):
                raise Unsupported(f"irq {il.desc.irq}: an interrupt its CPU takes after the storm's CPUs were "
                                  "computed (a stuck line's re-delivery after a poll)")
        self.F = F

    def _write_back(self) -> None:
        """Leave the host as the one-by-one replay would: every counter and state the storm moved."""
        h, plan = self.host, self.plan
        cnt = self.cnt
        # events raised
        n = int(cnt.sum())
        self.first_id = h.reserve_event_ids(n + self.n_refires)
        h.ledger.raised += n + self.n_refires
        led = self.sink.counts + self.sink.refire_counts
        h.ledger.counts = [a + int(b) for a, b in zip(h.ledger.counts, led)]
        # sources: devices, MSI vectors, posted IRTEs
        for s, sp in enumerate(plan.sources):
            k = int(cnt[s])
            if not k:
                continue
            src = sp.src
            if src.kind in ("msi", "intx"):
                h.devices[src.bdf].raised += k
            if src.kind == "intx":
                h.devices[src.bdf].intx_raised += k
            if src.kind == "msi":
                sp.vector.sent += k
            if sp.route == R_POSTED:
                sp.irte.posted += k
        for gidx, tt, v in self.pba.values():
            v.pending_event = self._held_event(gidx, tt)
        # interrupts held since before the storm that a poll (or a round trip) settled
        for g, (o, t_ack) in self.sink.ext_done.items():
            ev = self.sink.event(g)
            h.ledger.counts[int(ev.outcome)] -= 1
            h.ledger.counts[int(o)] += 1
            ev.outcome = O(o)
            if t_ack is not None:
                ev.t_ack = t_ack
        # MSI lines
        disp = cnt - self.held_cnt - (self.cpus.merged_cnt if self.cpus is not None else 0)
        for ml in self.msi_lines.values():
            d = ml.desc
            srcs = self.line_srcs[d.irq]
            nd = int(disp[srcs].sum()) if srcs else 0
            if nd:  # dispatched: the flow handler, the action, note_interrupt
                d.kstat[d.cpu] += nd
                a, kind = ml.lp.actions[0]
                a.handled += nd
                if kind == "vfio_msi":   # vfio_msihandler of the device whose vector this is (the eventfd
                    a.handler.__self__.handled["msi"] += nd   # may be another vector's trigger too)
                    self._signal(ml.lp.efd, nd)
                if not ml.masked_here:
                    ml.pending_bit = False   # handle_irq_event clears IRQS_PENDING
                ml.flow_ran = True
            self._line_state(d, ml.masked, ml.pending_bit, ml.flow_ran, ml.spur, ml.slot, False)
        for ln in self.thread_lines.values():
            ln.write_back(self)
        # INTx lines
        for il in self.intx_lines.values():
            if isinstance(il, IntxThreadLine):
                il.write_back(self)
                continue
            d = il.desc
            d.kstat[d.cpu] += il.kstat
            d.redelivered += il.refires
            for i, (a, k) in enumerate(il.lp.actions):
                a.handled += il.act_handled[i]
                a.none += il.act_none[i]
            self._line_state(d, il.masked, il.pending_bit, il.flow_ran, il.spur, il.slot, True)
            for j, dp in enumerate(il.lp.devices):
                st = il.dstate[j]
                if dp.kind == "vfio":
                    self._vfio_back(il, il.vfio)
                elif st is not None:
                    dp.dev.intx_status_event = self._held_event(st[1], st[2],
                                                                O.PENDING if st[0] == "pending" else st[3])
                else:
                    dp.dev.intx_status_event = None
        for t_dis, _, _, irq in sorted(self.disabled):
            d = h.genirq.descs[irq]
            d.istate |= IRQS_SPURIOUS_DISABLED
            d.depth += 1
            d.disabled = True
            d.disabled_at = t_dis
            h.spurious_disabled.append((t_dis, irq))
        # vCPUs
        for vw in self.vcpus:
            self._vcpu_back(vw)
        # irqfd work
        for wc in self.work.values():
            f = wc.fp.irqfd
            f.work_path += wc.runs
            f.coalesced += wc.coalesced
            f.inject.runs += wc.runs
            f.inject.coalesced += wc.coalesced
            for pic, pin in wc.fp.delivery.pic:
                if wc.runs:  # one kvm_set_irq pulse leaves the 8259 as any number of them would
                    pic.set_irq(pin, KVM_USERSPACE_IRQ_SOURCE_ID, 1)
                    pic.set_irq(pin, KVM_USERSPACE_IRQ_SOURCE_ID, 0)
        for s, sp in enumerate(plan.sources):  # NMI/SMI/INIT/ExtINT/illegal vectors at raise time
            for a in self.instant[s]:
                k = int(disp[s])
                self.instant_counts[id(a)] = (a, self.instant_counts.get(id(a), (a, 0))[1] + k)
            for vi in self.src_lowest[s]:  # APIC_DM_LOWEST: apic_arb_prio + 1 per accept
                self.vcpus[vi].vp.vcpu.lapic.apic_arb_prio += int(disp[s])
        for wc in self.work.values():
            for a in wc.fp.delivery.accepts:
                if a.lowest:
                    a.vcpu.vcpu.lapic.apic_arb_prio += wc.runs
        for (a, k) in self.instant_counts.values():
            lap = a.vcpu.vcpu.lapic
            if not k:
                continue
            if a.mode == "illegal":
                lap.esr |= ESR_RECV_ILLEGAL_VECTOR
            elif a.mode != "extint":
                setattr(lap, f"{a.mode}_count", getattr(lap, f"{a.mode}_count") + k)
        self._write_log(h.log)
        self._cpus_back()
        # the clock and the poller
        h.sched.now = max(h.sched.now, self.F)
        nxt = self.polls.next_after(self.F)
        if nxt is not None:
            from ..spurious import poll_spurious_irqs

            gi = h.genirq
            if gi.poll_timer is None:
                gi.poll_timer = Timer(lambda: poll_spurious_irqs(h), name="poll_spurious_irqs", periodic=True)
            h.sched.mod_timer(gi.poll_timer, nxt)

    def _cpus_back(self) -> None:
        """Each host CPU as the replay leaves it: vectors taken, waited, merged, busy periods, exits, RES / PIN /
        PIW, work runs and its time split up to the end of the run."""
        h, t = self.host, self.timing
        F = self.F
        cs = self.cpus
        work = {}
        for wc in self.work.values():
            for c, n in wc.runs_on.items():
                work[c] = work.get(c, 0) + n
        for il in self.intx_lines.values():
            if getattr(il, "vfio", None) is not None and il.vfio.from_irq:
                work[il.desc.cpu] = work.get(il.desc.cpu, 0) + il.vfio.from_irq
        vw_of = {id(vw.vp): vw for vw in self.vcpus}
        for vw in self.vcpus:   # a VT-d wake-up notification goes to the halted vCPU's own CPU (pi_desc NDST),
            if vw.piw:          # whichever vCPU that CPU counts as its current one; merged ones are not taken
                h.cpus[vw.vp.pcpu].taken += vw.piw - vw.piw_merged
                h.cpus[vw.vp.pcpu].waited += vw.piw_waited - vw.piw_merged
                h.cpus[vw.vp.pcpu].merged += vw.piw_merged
        for c in h.cpus:
            srv = cs.servers.get(c.id) if cs is not None else None
            vp = self.plan.cpu_curr.get(c.id)
            vw = vw_of.get(id(vp)) if vp is not None else None
            running = vp is not None and not vp.halted
            nbusy = busy_ns = 0
            if srv is not None:
                c.taken += srv.taken
                c.waited += srv.waited
                c.merged += srv.merged
                nbusy, busy_ns = srv.nbusy, srv.busy_ns
                c._hardirq += srv.jobs * t.host_irq_ns
                if srv.res_taken:
                    h.arch_count("RES", c.id, srv.res_taken)
                pin = srv.pin_count()
                if pin:
                    h.arch_count("PIN", c.id, pin)
                    c.taken += pin
                    c.waited += pin
            elif vw is not None and running and not vp.apicv:   # a quiet CPU: each kick is a RES and one exit
                nw = vw.windows if not vp.dedicated else self._dedicated_cycles(vp)
                if nw:
                    h.arch_count("RES", c.id, nw)
                    c.taken += nw
                    nbusy, busy_ns = nw, nw * t.vmexit_ns
            c.busy_periods += nbusy
            if running:
                c.exits += nbusy
                c._exit += nbusy * t.vmexit_ns
            c.work_runs += work.get(c.id, 0)
            free = (F - c._mark) - busy_ns
            if running:
                c._guest += free
            else:
                c._idle += free
            c._mark = F

    def _dedicated_cycles(self, vp: Any) -> int:
        return sum(il.vfio.cycles for il in self.intx_lines.values() if il.vfio is not None and il.vfio.p.vcpu is vp)

    def _write_log(self, out: list) -> None:
        """The kernel log in the order it was written, by (time, interrupt): the NO_HANDLER lines that were
        printed (in storm order already), with the few lines of the spurious disables merged in: a disable's
        lines go before the NO_HANDLER lines of a later interrupt. Then the ratelimit's state and the
        VECTOR_SHUTDOWN slots that became VECTOR_UNUSED go back to the host."""
        few = sorted(self.log, key=lambda x: x[:3])
        nh = self.nh_log
        pos = np.searchsorted(np.array([x[1] for x in nh], dtype=np.float64),
                              np.array([x[1] for x in few], dtype=np.float64)).tolist()
        if self.cpus is not None and nh and len(nh[0]) > 4:   # with host CPUs: by the instant and class taken
            items = [((8 * x[0] + x[4], x[5], 0.0), (x[0], x[2], x[3])) for x in nh]
            items += [((8 * tt + (K_RAISE if float(k).is_integer() else K_ENTRY), k, sb), (tt, lv, txt))
                      for tt, k, sb, lv, txt in few]
            items.sort(key=lambda x: x[0])
            out.extend(x[1] for x in items)
            nh, few = [], []
        prev = 0
        for p, (tt, _, _, lv, txt) in zip(pos, few):
            out.extend((x[0], x[2], x[3]) for x in nh[prev:p])
            out.append((tt, lv, txt))
            prev = p
        out.extend((x[0], x[2], x[3]) for x in nh[prev:])
        gi = self.host.genirq
        gi.no_handler_rs = self.nh_rs
        for x in self.nh_unused:
            d = next(sp.vector.desc for s, sp in enumerate(self.plan.sources) if self.nh_msg[s] == x)
            if gi.vector_irq[d.cpu].get(d.vector) is VECTOR_SHUTDOWN:
                del gi.vector_irq[d.cpu][d.vector]

    def _signal(self, ep: Any, k: int) -> None:
        """k eventfd_signal()s of a vfio trigger, each consumed by the irqfd if there is one."""
        efd = ep.efd
        efd.signals += k
        if efd.closed:
            efd.signals_after_close += k
        if ep.irqfd is None:
            efd.count = min(efd.count + k, ULLONG_MAX)
            return
        f = ep.irqfd.irqfd
        f.wakeups += k
        if not efd.semaphore:
            efd.count = 0
        if ep.irqfd.fast:
            f.fast_path += k

    def _line_state(self, d, masked, pending_bit, flow_ran, spur, slot, managed: bool) -> None:
        d.masked = masked
        if flow_ran:
            d.istate &= ~(IRQS_REPLAY | IRQS_WAITING)
        d.istate = (d.istate | IRQS_PENDING) if pending_bit else (d.istate & ~IRQS_PENDING)
        d.irq_count, d.irqs_unhandled, d.last_unhandled = spur
        if slot is not None:
            d.pending_event = self._held_event(slot[0], slot[1])
        elif managed:
            d.pending_event = None

    def _vfio_back(self, il: IntxLine, v: Any) -> None:
        p = v.p
        vdev, dev = p.vdev, p.vdev.dev
        vdev.handled["intx"] += v.via_handler
        vdev.handled["intx_none"] += il.vfio_intx_none
        if v.state == HELD:
            dev.intx_status_event = self._held_event(v.tok[0], v.tok[1])
        else:
            dev.intx_status_event = None
        # the trigger, the irqfd, the resampler and the unmask eventfd
        trig, f = p.trigger, p.irqfd
        trig.signals += v.cycles
        if v.cycles:
            trig.count = 0
        f.wakeups += v.cycles
        f.work_path += v.cycles
        f.inject.runs += v.cycles
        p.resampler.acks += v.eois      # each EOI: one resampler ack, one resamplefd signal that virqfd reads
        p.resamplefd.signals += v.eois
        if v.eois:
            p.resamplefd.count = 0
        # the dedicated vCPU
        vp = p.vcpu
        vc, lap = vp.vcpu, vp.vcpu.lapic
        n = v.cycles
        if not n:
            return
        vc.entries += n
        vc.delivered[p.vector] += n
        lap.accepted += n
        lap.acked += n
        lap.last_accept_coalesced = False
        _entry_exits(vp, n)
        # the vCPU keeps the level (TMR) and the guest EOIs it: an EOI exit in every mode
        lap.tmr.add(p.vector)
        lap.eois += v.eois
        if v.eois:
            lap.last_eoi_level = True
            vc.exits["EOI"] += v.eois

    def _vcpu_back(self, vw: VcpuWindows) -> None:
        vp = vw.vp
        if vp.dedicated:
            return
        vc, lap = vp.vcpu, vp.vcpu.lapic
        srv = self.vbound[vp.index] if self.cpus is not None else None
        if srv is not None and not vp.halted:   # every busy period of its CPU took it out of the guest
            vc.exits["EXTERNAL_INTERRUPT"] += srv.nbusy
            vc.entries += srv.nbusy + (vw.timer_windows if vp.apicv else 0)
        if vw.last_key is not None:
            lap.last_accept_coalesced = bool(vw.last_coalesced)
        if vw.sipi is not None:
            lap.sipi_vector = vw.sipi[1]
        for x, seen in zip(vw.vectors, vw.kvm_seen.tolist()):
            if seen:  # an edge __apic_accept_irq clears the TMR bit; VT-d posting leaves it alone
                lap.tmr.discard(x)
        # blocked vectors now waiting in the IRR (each with the interrupt that set it)
        for x, (gidx, tt, io) in vw.held_new.items():
            lap.irr.add(x)
            ev = None
            if gidx >= 0 or gidx <= -2:
                ev = self._held_event(gidx, tt, None)
                ev.via_iommu, ev.via_host = io, not io
                self.host._inflight[ev.id] = ev
            vc.irr_tokens[x] = ev
        lap.accepted += vw.irr_new
        lap.coalesced += vw.irr_coal_pir
        if not vw.windows:
            return
        nw = vw.windows
        nd = int(vw.delivered.sum())
        nc = int(vw.coalesced.sum()) - vw.coal_pir_n
        if srv is None or vp.halted:
            vc.entries += nw
        for x, k in zip(vw.vectors, vw.delivered.tolist()):
            if k:
                vc.delivered[x] += k
        for x, k in zip(vw.vectors, vw.coalesced.tolist()):
            if k:
                vc.coalesced[x] += k
        lap.accepted += nd
        lap.acked += nd
        lap.eois += nd
        if nd:  # the last EOI: the lowest vector of the last entry that delivered; its TMR bit is the trigger
            last = vw.last_del_min if vw.any_blocked else min(vw.carry_vecs)
            lap.last_eoi_level = last in vp.stale_tmr
        if not vp.pir:
            lap.coalesced += nc
        if srv is None or vp.halted:
            _entry_exits(vp, nw)
        # EOI exits: every EOI write without APICv; with APICv only the EOI-exit bitmap's vectors
        ne = nd if not vp.apicv else sum(k for x, k in zip(vw.vectors, vw.delivered.tolist()) if x in vp.handled)
        if ne:
            vc.exits["EOI"] += int(ne)
        if vw.piw > vw.piw_merged:   # /proc/interrupts counts what the CPU took
            self.host.arch_count("PIW", vp.pcpu, vw.piw - vw.piw_merged)

    def _held_event(self, gidx: int, t: int, outcome: Any = O.PENDING) -> IrqEvent:
        """The IrqEvent the replay would leave held here (a device's Status bit, a line's IRQS_PENDING, the
        PBA, an IRR bit behind the TPR with ``outcome`` None: in flight): the model's own if it is from before
        the storm, else one with the id, the device and the irq the replay would have given it, so later calls
        on the model see the same (the engine holds no INTx its device asserted under DisINTx, which has no irq)."""
        h = self.host
        if gidx <= -2:
            ev = self.sink.event(gidx)
            if gidx in self.sink.ext_done:
                ev.outcome = O(self.sink.ext_done[gidx][0])
            return ev
        if gidx >= REFIRE_BASE:  # a re-delivery: its id counts the storm's interrupts and re-deliveries before it
            R, key, nb, irq = self.refire_held[gidx]
            ev = IrqEvent(h, self.first_id + nb + self._refires_before(R, key), f"irq {irq} still asserted", t, False)
            ev.outcome, ev.irq = outcome, irq
            return ev
        src = self.storm.source_at(gidx)
        ev = IrqEvent(h, self.first_id + gidx + self._refires_before(t), "", t, False)
        ev.outcome = outcome
        if src.kind == "spurious":
            ev.irq = src.irq
        else:   # the device; send_msi or the line's vector: the irq
            ev.device = dev = h.devices[src.bdf]
            ev.irq = dev.vector(src.index).irq if src.kind == "msi" else dev.gsi
        ev.source = h.raised_name(src.kind, ev.device, src.index, src.irq)   # as raise_msi & co. name it
        return ev


def run(host: Any, storm: Any, engine: str = "vector", *, chunk_events: int = DEFAULT_CHUNK,
        progress: bool | None = None) -> StormResult:
    """Push ``storm`` through ``host``: ``engine="vector"`` (numpy) or ``"reference"`` (the object model, one
    interrupt at a time). Both leave the host in the same state and return identical results. The run
    settles like ``host.run()``: after the last interrupt, timers and work go on until only the periodic
    spurious poller is left — the settle horizon, the same for both engines: at most one INTx round trip
    (irqfd_work + delivery + guest handler, to the EOI that unmasks) after the last interrupt or after the last
    poll that serviced one; the poller fires meanwhile and is left armed. ``chunk_events``: interrupts per chunk
    (state carries across chunks; a lazy storm is generated chunk by chunk). ``progress``: a tqdm.auto bar;
    None shows it (on a terminal or in a notebook) for storms of more than one chunk."""
    if not isinstance(host, Kernel):
        raise TypeError(f"host must be an irqlab.Host, not {type(host).__name__}")
    if not isinstance(engine, str) or engine not in ("vector", "reference"):
        raise ValueError(f"engine is 'vector' or 'reference', not {engine!r}")
    if not isinstance(storm, (Storm, LazyStorm)):
        raise TypeError(f"storm must be an irqlab.storm.Storm (from poisson(), bursts(), from_arrays()...), not "
                        f"{type(storm).__name__}")
    if isinstance(chunk_events, (bool, np.bool_)) or not isinstance(chunk_events, (int, np.integer)):
        raise TypeError(f"chunk_events must be an int, not {type(chunk_events).__name__}")
    if chunk_events < 1:
        raise ValueError(f"chunk_events must be a positive int, got {chunk_events}")
    chunk_events = int(min(chunk_events, 1 << 62))
    if progress is not None and not isinstance(progress, (bool, np.bool_)):
        raise TypeError(f"progress is True, False or None (a bar for storms of several chunks), not "
                        f"{type(progress).__name__}")
    lazy = isinstance(storm, LazyStorm)
    if engine == "vector" and storm.t_end > MAX_VECTOR_NS:
        # the engine's windows are int64 sums of times and delays, with int64's maximum as "never"
        raise Unsupported(f"storm times up to {storm.t_end:,} ns: the vector engine runs storms that end before "
                          f"2**62 ns (146 years of model time); engine='reference' runs this one")
    if lazy and engine == "reference":
        storm = storm.materialize()
        lazy = False
    first = storm.start_ns if lazy else (int(storm.times[0]) if len(storm) else host.now)
    if len(storm) and first < host.now:
        raise ValueError(f"the storm starts at {first:,} ns, before the host's clock ({host.now:,} ns): "
                         f"shift its times (e.g. start_ns=host.now)")
    bar = None
    if progress or (progress is None and len(storm) > chunk_events):
        try:
            from tqdm.auto import tqdm
        except ImportError:  # pragma: no cover - tqdm is a dependency
            tqdm = None
        if tqdm is not None:
            bar = tqdm(total=len(storm), unit="irq", unit_scale=True, disable=None if progress is None else False,
                       desc=f"storm ({engine})", leave=False)
    before = snapshot(host)
    log0 = len(host.log)
    t0 = time.perf_counter()
    try:
        counts = None
        if engine == "reference":
            for s in storm.sources:  # the same ValueErrors as the vector engine's compile
                source_target(host, s)
            outcome, latency = replay(host, storm, bar)
        else:
            eng = VectorEngine(host, storm)
            eng.run(chunk_events, bar)
            outcome, latency, counts = eng.sink.outcome, eng.sink.latency, eng.sink.counts.copy()
    finally:
        if bar is not None:
            bar.close()
    elapsed = time.perf_counter() - t0
    after = snapshot(host)
    log = list(host.log[log0:])
    counters = diff_snapshots(before, after)
    if lazy:
        empty = np.zeros(0, np.int64)
        return StormResult(engine, empty, empty.astype(np.uint16), storm.sources, outcome, latency, counters,
                           host.proc_interrupts(), host.now, elapsed, log=log, streamed=True, counts=counts)
    return StormResult(engine, storm.times, storm.source_ids, storm.sources, outcome, latency, counters,
                       host.proc_interrupts(), host.now, elapsed, log=log)

