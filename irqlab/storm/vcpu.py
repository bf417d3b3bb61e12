"""vCPU entry windows and the irqfd inject work, vectorized: the two coalescing windows of the KVM side.

Models arch/x86/kvm/lapic.c and vmx (``__apic_accept_irq`` setting the IRR, or the PIR through
``__vmx_deliver_posted_interrupt`` and VT-d posting; ``kvm_vcpu_kick`` / wake-up; at the entry, PIR → IRR and
``kvm_apic_ack_interrupt`` of every deliverable vector; exits by reason) and virt/kvm/eventfd.c
(``schedule_work(&irqfd->inject)``: a no-op while the work is pending). Simplification: a vCPU here takes
vectors the guest handles as edge (EOI at once; level INTx vectors go to a dedicated vCPU, lines.py), so every
window delivers each of its deliverable vectors once, at its end (as the object model does: without APICv
KVM would inject one per entry and take the others after interrupt-window exits, docs/model-time.md); a
vector the TPR blocks waits in the IRR (the first one of the storm, in flight) and every later one merges
into it.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..ledger import Outcome
from .windows import chain_starts

__all__ = ["VcpuWindows", "WorkChain"]

O = Outcome


class VcpuWindows:
    """One vCPU's entry windows: the first accepted interrupt opens [a, a + δ); every vector accepted in it
    is delivered at its end (once: a repeat is coalesced in the IRR, or the PIR)."""

    def __init__(self, eng: Any, vp: Any):
        self.eng, self.vp = eng, vp
        self.delta = vp.delta
        self.mixed = vp.has_work   # accepts from irqfd work: keys on a doubled scale (ties with the entry)
        self.coal = int(O.COALESCED_PIR if vp.pir else O.COALESCED_IRR)
        self.vectors: list[int] = []
        self.vloc = np.full(256, -1, dtype=np.int64)
        self.carry_key = None       # the last window: its end key, end time (the vCPU's last entry), and
        self.carry_end = 0          # the vectors in it
        self.carry_vecs: set[int] = set()
        self.buf: list[tuple] = []  # inject accepts due at or after the chunk's end
        # counters
        self.windows = 0
        self.piw = 0
        self.delivered = np.zeros(0, dtype=np.int64)
        self.coalesced = np.zeros(0, dtype=np.int64)
        self.last_coalesced = None
        self.last_key = None        # (time, timer first, order) of the last LAPIC accept, and if it coalesced
        self.inject_after_w = eng.timing.irqfd_work_ns > vp.delta
        # vectors the TPR blocks (class not above it: never deliverable during the storm, the PPR being the TPR)
        lap = vp.vcpu.lapic
        self.tpr = lap.tpr
        self.blocked = np.zeros(0, dtype=bool)
        self.any_blocked = False
        self.kvm_seen = np.zeros(0, dtype=bool)  # per vector: an __apic_accept_irq took it (its TMR bit cleared)
        self.held: set[int] = set(lap.irr)   # blocked vectors the IRR holds (from before, or since a first accept)
        self.held_new: dict[int, tuple] = {}  # vector -> (interrupt, raised at, VT-d posted) now waiting in the IRR
        self.irr_new = 0             # IRR bits newly set by blocked vectors
        self.irr_coal_pir = 0        # PIR mode: blocked vectors synced into an IRR that holds them already
        self.last_del_end = None     # the last entry that delivered, and the lowest vector it delivered (EOI'd last)
        self.last_del_min = None
        self.sipi: tuple | None = None  # (key, vector) of the last APIC_DM_STARTUP

    def vector(self, x: int) -> int:
        if self.vloc[x] < 0:
            self.vloc[x] = len(self.vectors)
            self.vectors.append(x)
            self.delivered = np.append(self.delivered, 0)
            self.coalesced = np.append(self.coalesced, 0)
            b = (x & 0xF0) <= self.tpr   # apic_has_interrupt_for_ppr: (irr & 0xF0) <= ppr, ppr = tpr (no ISR)
            self.blocked = np.append(self.blocked, b)
            self.any_blocked |= b
            self.kvm_seen = np.append(self.kvm_seen, False)
        return int(self.vloc[x])

    def process_fast(self, T: np.ndarray, sel: np.ndarray, vl: Any, cost: int, iommu: bool) -> tuple:
        """The common case: accepts at raise time (irqfd fast path or VT-d posting), each carrying its own
        interrupt, with one cost and one path. Writes outcome and latency at ``sel`` in the current chunk.
        ``vl``: each accept's vector (local index, int8), or one int when the vCPU has one vector.
        Only the first accept of each vector in each window is delivered, at the window's end.
        Returns the ledger's increments, ((outcome, count), ...): this may run in a worker thread
        (engine._run_all), and the caller adds them to the shared ``sink.counts``."""
        m = T.shape[0]
        if not m:
            return ()
        d = self.delta
        dc = d + cost
        c = int(np.searchsorted(T, self.carry_key, side="left")) if self.carry_key is not None else 0
        sidx = c + np.flatnonzero(chain_starts(T[c:] if c else T, d)) if m > c else np.zeros(0, np.int64)
        nw = sidx.size
        one = np.ndim(vl) == 0
        nv = 1 if one else len(self.vectors)
        # delivered: the window openers (latency δ + cost) and, in a window, the first accept of each other
        # vector (latency from the opener's time); the carried window's opener came in an earlier chunk
        if one:
            first_carried = c and self.vectors[int(vl)] not in self.carry_vecs  # its first accept is new there
            extra = np.zeros(1 if first_carried else 0, np.int64)
            xo = np.full(extra.size, -1, np.int64)
            counts = np.array([m])
        else:
            counts = np.bincount(vl, minlength=nv)
            if nw > m // 3:
                extra, xo = self._firsts_few(sidx, c, vl, m)
            else:
                extra, xo = self._firsts_many(sidx, c, vl, m, nv)
        xt = np.where(xo >= 0, T[np.maximum(xo, 0)], self.carry_end - d)
        xlat = xt + dc - T[extra]
        deliv = O.POSTED if iommu else O.INJECTED
        sink = self.eng.sink
        if sink.keep:
            sink.out_view[sel] = self.coal
            so = sel[sidx]
            sink.out_view[so] = deliv
            sink.lat_view[so] = dc
            sx = sel[extra]
            sink.out_view[sx] = deliv
            sink.lat_view[sx] = xlat
        nd = nw + extra.size
        # counters
        if one:
            dv = np.array([nd])
        else:
            dv = np.bincount(vl[sidx], minlength=nv) + np.bincount(vl[extra], minlength=nv)
        for j in range(nv):
            jj = int(vl) if one else j
            self.delivered[jj] += int(dv[j])
            self.coalesced[jj] += int(counts[j] - dv[j])
            if not iommu and counts[j]:
                self.kvm_seen[jj] = True
        self.windows += nw
        if self.vp.pir and iommu:
            self.piw += nw
        if not iommu:  # VT-d posting does not go through __apic_accept_irq
            last_first = (nw and sidx[-1] == m - 1) or (extra.size and extra.max() == m - 1)
            self.accepted_at((int(T[-1]), 1, int(sel[-1]) + self.eng.off), not last_first)
        if nw:
            lw = int(sidx[-1])
            self.carry_key = self.carry_end = int(T[lw]) + d
            self.carry_vecs = {self.vectors[int(vl)]} if one else {self.vectors[j] for j in np.unique(vl[lw:]).tolist()}
        else:
            self.carry_vecs |= {self.vectors[int(vl)]} if one else {self.vectors[j] for j in np.flatnonzero(counts)}
        return ((self.coal, m - nd), (deliv, nd))

    def _carried(self, nv: int) -> np.ndarray:
        return np.array([self.vectors[j] in self.carry_vecs for j in range(nv)], dtype=bool)

    def _firsts_few(self, sidx, c, vl, m):
        """Most windows hold one accept: an accept that does not open its window is the first of its vector
        unless an earlier one of its window has that vector (look back a step at a time)."""
        wsi = np.full(m, -1, dtype=np.int64)    # each accept's window opener (-1: the carried window)
        wsi[sidx] = sidx
        np.maximum.accumulate(wsi, out=wsi)
        ns = np.flatnonzero(wsi != np.arange(m))
        lo = wsi[ns]
        del wsi
        inc = lo < 0
        ok = np.ones(ns.size, dtype=bool)
        vn = vl[ns]
        if c:  # the carried window: a vector already in it is not first
            ok[inc] = ~self._carried(len(self.vectors))[vn[inc]]
        lo0 = np.maximum(lo, 0)
        act = np.flatnonzero(ok)
        j = ns - 1
        while act.size:
            a = act[j[act] >= lo0[act]]
            same = vl[j[a]] == vn[a]
            ok[a[same]] = False
            act = a[~same]
            j[act] -= 1
        return ns[ok], lo[ok]

    def _firsts_many(self, sidx, c, vl, m, nv):
        """Big windows: per vector, the first accept at or after each window's opener, if inside it."""
        wb = np.concatenate(([0], sidx)) if c else sidx
        we = np.empty_like(wb)
        we[:-1] = wb[1:]
        we[-1] = m
        opener = np.concatenate(([-1], sidx)) if c else sidx
        carried = self._carried(nv) if c else None
        idx = np.arange(m) if wb.size * 8 > m else None
        parts, po = [], []
        for j in range(nv):
            if idx is None:                      # few windows: search each vector's accepts
                pj = np.flatnonzero(vl == j)
                k = np.searchsorted(pj, wb)
                fj = np.where(k < pj.size, pj[np.minimum(k, pj.size - 1)], m) if pj.size else np.full(wb.size, m)
            else:
                nxt = np.where(vl == j, idx, m)  # the next accept of vector j at or after each position
                fj = np.minimum.accumulate(nxt[::-1])[::-1][wb]
            ok = (fj < we) & (fj != wb)          # the openers are counted already
            if c and carried[j]:
                ok[0] = False
            if c and not carried[j] and fj[0] == 0:
                ok[0] = True                      # the carried window has no opener here
            k = np.flatnonzero(ok)
            parts.append(fj[k])
            po.append(opener[k])
        return np.concatenate(parts), np.concatenate(po)

    def accepted_at(self, key: tuple, coalesced: bool) -> None:
        """apic_accept_irq leaves last_accept_coalesced as its last call set it (NMI & co. clear it)."""
        if self.last_key is None or key >= self.last_key:
            self.last_key, self.last_coalesced = key, coalesced

    def instant_at(self, key: tuple, a: Any) -> None:
        """An accept that bypasses the IRR at ``key``: SMI, RemRd, NMI, INIT, SIPI (counted) and ExtINT (0) clear
        last_accept_coalesced; SIPI keeps its vector; an illegal vector never reaches __apic_accept_irq."""
        if a.mode == "illegal":
            return
        self.accepted_at(key, False)
        if a.mode == "startup" and (self.sipi is None or key >= self.sipi[0]):
            self.sipi = (key, a.vector)

    def process(self, T: np.ndarray, inj: Any, g: np.ndarray, tev: np.ndarray, vl: Any, cost: Any,
                iommu: Any, order: np.ndarray | None = None) -> None:
        """Accepts in execution order: time T, from irqfd work (``inj`` True) or raised, carrying interrupt g
        (-1: none) raised at tev, vector (local index) vl, latency cost, VT-d posted (iommu)."""
        m = T.shape[0]
        if not m:
            return
        d = self.delta
        if self.mixed:
            K = 2 * T + np.where(inj, -1 if self.inject_after_w else 1, 1)
            ends = 2 * T + 2 * d
        else:
            K, ends = T, d
        c = 0
        if self.carry_key is not None:
            c = int(np.searchsorted(K, self.carry_key, side="left"))
        Kc = K[c:]
        starts = chain_starts(Kc, ends if np.ndim(ends) == 0 else ends[c:])
        sidx = np.flatnonzero(starts)
        nw = sidx.size
        wend = T[c:][sidx] + d                          # entry instants of the new windows
        wid = np.empty(m, dtype=np.int64)
        wid[:c] = -1
        if m > c:
            np.cumsum(starts, out=wid[c:])
            wid[c:] -= 1
        # first accept of each vector in each window
        scal = np.ndim(vl) == 0
        nv = len(self.vectors)
        first = np.empty(m, dtype=bool)
        if scal:
            groups = [(None, int(vl))]
        else:
            groups = [(np.flatnonzero(vl == j), j) for j in range(nv)] if nv <= 8 else None
        if groups is not None:
            for sel, j in groups:
                w = wid if sel is None else wid[sel]
                f = np.empty(w.shape[0], dtype=bool)
                if f.size:
                    f[0] = not (w[0] < 0 and self.vectors[j] in self.carry_vecs)
                    np.not_equal(w[1:], w[:-1], out=f[1:])
                if sel is None:
                    first[:] = f
                else:
                    first[sel] = f
        else:
            srt = np.lexsort((np.arange(m), vl, wid))
            ws, vs = wid[srt], vl[srt]
            f = np.ones(m, dtype=bool)
            f[1:] = (ws[1:] != ws[:-1]) | (vs[1:] != vs[:-1])
            if c:
                cv = np.array([self.vloc[x] for x in self.carry_vecs], dtype=np.int64)
                f &= ~((ws < 0) & np.isin(vs, cv))
            first[srt] = f
        # blocked vectors: the first accept of one the IRR does not hold yet waits there (in flight); a first in
        # its window later is synced into an IRR that holds it (coalesced_irr); any other merges (self.coal)
        deliv, newly, irrc = first, None, None
        if self.any_blocked:
            bl = self.blocked[vl]
            if np.any(bl):
                newly = np.zeros(m, dtype=bool)
                for j in (np.unique(vl[bl]).tolist() if not scal else [int(vl)]):
                    x = self.vectors[j]
                    if x in self.held:
                        continue
                    i0 = 0 if scal else int(np.argmax(vl == j))
                    newly[i0] = True
                    self.held.add(x)
                    self.held_new[x] = (int(g[i0]), int(tev[i0]), bool(iommu if np.ndim(iommu) == 0 else iommu[i0]))
                deliv = first & ~bl
                irrc = first & bl & ~newly
        # outcomes of the interrupts carried: delivered at their window's end, or coalesced
        tok = g >= 0
        if newly is not None:
            wait = newly & tok
            for gg in g[wait].tolist():
                self.eng.sink.carry(gg)
            tok = tok & ~newly
        allt = bool(tok.all())
        if allt:
            gi, fi, ti = g, deliv, tev
            wi = wid
        else:
            gi, fi, ti, wi = g[tok], deliv[tok], tev[tok], wid[tok]
        if gi.size:
            end_of = np.where(wi >= 0, wend[np.maximum(wi, 0)] if nw else 0, self.carry_end)
            if np.ndim(iommu) == 0:
                o_del = O.POSTED if iommu else O.INJECTED
            else:
                io = iommu if allt else iommu[tok]
                o_del = np.where(io, O.POSTED, O.INJECTED).astype(np.int8)
            out = np.where(fi, o_del, self.coal).astype(np.int8)
            if irrc is not None:
                out[irrc if allt else irrc[tok]] = O.COALESCED_IRR
            lat = end_of - ti
            lat += cost if np.ndim(cost) == 0 else (cost if allt else cost[tok])
            lat[~fi] = -1
            self.eng.sink.settle(gi, out, lat)
        # counters
        if scal:
            nf = int(np.count_nonzero(deliv))
            self.delivered[int(vl)] += nf
            self.coalesced[int(vl)] += m - nf - (int(newly.sum()) if newly is not None else 0)
        else:
            self.delivered += np.bincount(vl[deliv], minlength=nv)
            rest = ~deliv if newly is None else ~(deliv | newly)
            self.coalesced += np.bincount(vl[rest], minlength=nv)
        if np.ndim(iommu) == 0:
            if not iommu:
                self.kvm_seen[np.unique(vl) if not scal else int(vl)] = True
        elif not iommu.all():
            self.kvm_seen[np.unique(vl[~iommu]) if not scal else int(vl)] = True
        if newly is not None:
            self.irr_new += int(newly.sum())
            if self.vp.pir:
                self.irr_coal_pir += int(irrc.sum())
        self.windows += nw
        if self.vp.pir and nw and np.ndim(iommu) == 0:
            self.piw += nw if iommu else 0
        elif self.vp.pir and nw:
            self.piw += int(np.count_nonzero(iommu[c:][sidx]))
        # the last LAPIC accept (__apic_accept_irq: VT-d posting is not one) and whether it found its vector
        # pending: in the PIR (PIR mode) or the IRR
        if np.ndim(iommu) == 0:
            li = -1 if iommu else m - 1
        else:
            kv = np.flatnonzero(~iommu)
            li = int(kv[-1]) if kv.size else -1
        if li >= 0:
            last = (int(T[li]), 0 if (np.ndim(inj) and inj[li]) else 1, int((g if order is None else order)[li]))
            if newly is not None and not self.vp.pir and (bool(bl) if scal else bl[li]):
                self.accepted_at(last, not bool(newly[li]))
            else:
                self.accepted_at(last, not bool(first[li]))
        # the last entry that delivered something, and its lowest vector (the last EOI)
        if deliv.any():
            dk = np.flatnonzero(deliv)
            wl = int(wid[dk].max())
            E = int(wend[wl]) if wl >= 0 else self.carry_end
            vj = (np.unique(vl[dk[wid[dk] == wl]]).tolist() if not scal else [int(vl)])
            vmin = min(self.vectors[j] for j in vj)
            if self.last_del_end == E:
                vmin = min(vmin, self.last_del_min)
            self.last_del_end, self.last_del_min = E, vmin
        # the last window stays open for what comes next
        if nw:
            lw = c + int(sidx[-1])
            self.carry_key = int(K[lw] + (ends[lw] - K[lw] if np.ndim(ends) else d))
            self.carry_end = int(wend[-1])
            tail = slice(lw, m)
            vt = [vl] if scal else np.unique(vl[tail]).tolist()
            self.carry_vecs = {self.vectors[j] for j in vt}
        else:
            vt = [vl] if scal else np.unique(vl).tolist()
            self.carry_vecs |= {self.vectors[j] for j in vt}


class WorkChain:
    """irqfd->inject: schedule_work on a pending work item is a no-op, so signals within irqfd_work_ns of
    the one that queued it coalesce; each run injects through the GSI's routes."""

    def __init__(self, eng: Any, fp: Any):
        self.eng, self.fp = eng, fp
        self.W = eng.timing.irqfd_work_ns
        self.open_end = -1
        self.runs = 0
        self.coalesced = 0
        self.last = 0

    def signals(self, t: np.ndarray, g: np.ndarray) -> None:
        if not t.size:
            return
        c = int(np.searchsorted(t, self.open_end, side="left")) if self.open_end > 0 else 0
        starts = np.zeros(t.size, dtype=bool)
        starts[c:] = chain_starts(t[c:], self.W)
        self.eng.sink.settle(g[~starts], O.COALESCED_IRQFD)
        self.coalesced += int(t.size - np.count_nonzero(starts))
        s = np.flatnonzero(starts)
        if not s.size:
            return
        self.runs += s.size
        inject = t[s] + self.W
        self.open_end = int(inject[-1])
        self.last = max(self.last, self.open_end)
        self.eng.inject(self.fp.delivery, inject, g[s], t[s])
