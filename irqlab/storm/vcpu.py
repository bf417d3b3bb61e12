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
        self.carry_late = False      # the carried window's entry came later than it was due (storm/cpus.py)
        self.carry_pir: set[int] = set()  # vectors already in the PIR of the carried window (storm/cpus.py)
        self.late_windows = 0
        self.timer_windows = 0
        self.piw_keys: list = []     # (keys, subs) of the windows a VT-d wake-up opened (storm/cpus.py)
        self.piw_waited = 0          # of those, the ones that found their CPU in hard-IRQ context
        self.piw_merged = 0          # of those, the ones that merged there into one waiting already
        self.coal_pir_n = 0          # accepts merged in the PIR behind another (mixed PIR/IRR vCPUs)

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

    @staticmethod
    def _subs(order: Any, c: int, sidx: np.ndarray, m: int) -> np.ndarray:
        """The subs (order at one key) of the window openers ``sidx`` after the carried ``c``; -1 without one."""
        if order is None:
            return np.full(sidx.size, -1, np.int64)
        return np.asarray(np.broadcast_to(order, (m,))[c:][sidx], np.int64)

    def process(self, T: np.ndarray, inj: Any, g: np.ndarray, tev: np.ndarray, vl: Any, cost: Any,
                iommu: Any, order: np.ndarray | None = None, *, keys: np.ndarray | None = None,
                ends: np.ndarray | None = None, entry_at: np.ndarray | None = None, due: np.ndarray | None = None,
                pir: np.ndarray | None = None, starts_pre: np.ndarray | None = None, due_each: bool = False) -> None:
        """Accepts in execution order: time T, from irqfd work (``inj`` True) or raised, carrying interrupt g
        (-1: none) raised at tev, vector (local index) vl, latency cost, VT-d posted (iommu).

        With host CPUs (storm/cpus.py) the caller gives each accept's ``keys`` (8T + class), the end key and entry
        instant of the window it would open (``ends``, ``entry_at``), when that entry was due (``due``: a later
        entry waited for the CPU, and the host path's cost is not added to the latency then), and whether it went
        to the PIR (``pir``: merged there it is coalesced_pir, else coalesced_irr). ``due_each``: each accept's own
        ``due`` decides whether its entry was late (a kicked vCPU: vm.py's window_due as each accept found it, the
        last kick's), not the window opener's."""
        m = T.shape[0]
        if not m:
            return
        d = self.delta
        if keys is not None:
            K = keys
        elif self.mixed:
            K = 2 * T + np.where(inj, -1 if self.inject_after_w else 1, 1)
            ends = 2 * T + 2 * d
        else:
            K, ends = T, d
        c = 0
        if self.carry_key is not None:
            c = int(np.searchsorted(K, self.carry_key, side="left"))
        Kc = K[c:]
        if starts_pre is not None:   # chain_preview's answer for these accepts (a greedy chain's prefix is its own)
            starts = starts_pre[c:]
        else:
            starts = chain_starts(Kc, ends if np.ndim(ends) == 0 else ends[c:])
        sidx = np.flatnonzero(starts)
        nw = sidx.size
        if entry_at is not None:
            wend = entry_at[c:][sidx]                   # entry instants of the new windows
            wlate = wend > due[c:][sidx] if due is not None else np.zeros(nw, dtype=bool)
        else:
            wend = T[c:][sidx] + d
            wlate = np.zeros(nw, dtype=bool)
        wid = np.empty(m, dtype=np.int64)
        wid[:c] = -1
        if m > c:
            np.cumsum(starts, out=wid[c:])
            wid[c:] -= 1
        # first accept of each vector in each window
        scal = np.ndim(vl) == 0
        nv = len(self.vectors)
        first = self._firsts(wid, vl, scal, nv, c, m)
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
        # the label of a merged accept: the PIR's own merges (an accept that went to the PIR behind the first one
        # there, per window and vector) are coalesced_pir; any other is coalesced_irr
        coal_pir = pir_first = None
        if pir is not None and pir.any():
            pir_first = self._firsts(wid, vl, scal, nv, c, m, only=pir)
            coal_pir = pir & ~pir_first & ~deliv
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
            wk = np.maximum(wi, 0)
            end_of = np.where(wi >= 0, wend[wk] if nw else 0, self.carry_end)
            late_of = np.where(wi >= 0, wlate[wk] if nw else False, self.carry_late)
            if due_each and due is not None:
                late_of = end_of > (due if allt else due[tok])
            if np.ndim(iommu) == 0:
                o_del = O.POSTED if iommu else O.INJECTED
            else:
                io = iommu if allt else iommu[tok]
                o_del = np.where(io, O.POSTED, O.INJECTED).astype(np.int8)
            out = np.where(fi, o_del, self.coal).astype(np.int8)
            if coal_pir is not None:
                cp = coal_pir if allt else coal_pir[tok]
                out[~fi] = np.where(cp[~fi], O.COALESCED_PIR, O.COALESCED_IRR)
            if irrc is not None:
                out[irrc if allt else irrc[tok]] = O.COALESCED_IRR
            lat = end_of - ti
            cst = cost if np.ndim(cost) == 0 else (cost if allt else cost[tok])
            lat += np.where(late_of, 0, cst)
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
        if coal_pir is not None:
            self.coal_pir_n += int(coal_pir.sum())
        if np.ndim(iommu) == 0:
            if not iommu:
                self.kvm_seen[np.bincount(vl, minlength=nv) > 0 if not scal else int(vl)] = True
        elif not iommu.all():
            self.kvm_seen[np.bincount(vl[~iommu], minlength=nv) > 0 if not scal else int(vl)] = True
        if newly is not None:
            self.irr_new += int(newly.sum())
            if self.vp.pir:
                self.irr_coal_pir += int(irrc.sum())
        self.windows += nw
        self.late_windows += int(wlate.sum())
        if keys is not None and nw:   # windows whose entry is their own timer (not a re-entry after an exit)
            self.timer_windows += int(np.count_nonzero(ends[c:][sidx] % 8 == 3))
        if self.vp.pir and nw and np.ndim(iommu) == 0:
            self.piw += nw if iommu else 0
            if iommu and keys is not None:
                self.piw_keys.append((K[c:][sidx], self._subs(order, c, sidx, m)))
        elif self.vp.pir and nw:
            self.piw += int(np.count_nonzero(iommu[c:][sidx]))
            if keys is not None:
                w = iommu[c:][sidx]
                self.piw_keys.append((K[c:][sidx][w], self._subs(order, c, sidx, m)[w]))
        # the last LAPIC accept (__apic_accept_irq: VT-d posting is not one) and whether it found its vector
        # pending: in the PIR (PIR mode) or the IRR
        if np.ndim(iommu) == 0:
            li = -1 if iommu else m - 1
        else:
            kv = np.flatnonzero(~iommu)
            li = int(kv[-1]) if kv.size else -1
        if li >= 0:
            if keys is not None:
                last = (int(K[li]), 0, int((g if order is None else order)[li]))
            else:
                last = (int(T[li]), 0 if (np.ndim(inj) and inj[li]) else 1, int((g if order is None else order)[li]))
            if pir_first is not None and pir[li]:   # posted while its CPU is in hard-IRQ context: the PIR bit
                self.accepted_at(last, not bool(pir_first[li]))   # (the entry clears it), whatever the IRR holds
            elif newly is not None and not self.vp.pir and (bool(bl) if scal else bl[li]):
                self.accepted_at(last, not bool(newly[li]))
            else:
                self.accepted_at(last, not bool(first[li]))
        # the last entry that delivered something, and its lowest vector (the last EOI)
        if deliv.any():
            dk = np.flatnonzero(deliv)
            wl = int(wid[dk].max())
            E = int(wend[wl]) if wl >= 0 else self.carry_end
            if scal:
                vj = [int(vl)]
            else:   # the accepts of the last window are a tail (wid does not decrease)
                lw0 = int(np.searchsorted(wid, wl, side="left"))
                vj = np.unique(vl[dk[int(np.searchsorted(dk, lw0)):]]).tolist()
            vmin = min(self.vectors[j] for j in vj)
            if self.last_del_end == E:
                vmin = min(vmin, self.last_del_min)
            self.last_del_end, self.last_del_min = E, vmin
        # the last window stays open for what comes next
        if nw:
            lw = c + int(sidx[-1])
            if keys is not None:
                self.carry_key = int(ends[lw])
            else:
                self.carry_key = int(K[lw] + (ends[lw] - K[lw] if np.ndim(ends) else d))
            self.carry_end = int(wend[-1])
            self.carry_late = bool(wlate[-1])
            tail = slice(lw, m)
            vt = [vl] if scal else np.unique(vl[tail]).tolist()
            self.carry_vecs = {self.vectors[j] for j in vt}
            self.carry_pir = set()
            if pir is not None and pir[tail].any():
                self.carry_pir = {self.vectors[j] for j in ([vl] if scal else np.unique(vl[tail][pir[tail]]).tolist())}
        else:
            vt = [vl] if scal else np.unique(vl).tolist()
            self.carry_vecs |= {self.vectors[j] for j in vt}
            if pir is not None and pir.any():
                self.carry_pir |= {self.vectors[j] for j in ([vl] if scal else np.unique(vl[pir]).tolist())}

    def chain_preview(self, K: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Which of these accepts (keys K, each window's end key ``ends``) would open a window after the carried
        one: what ``process`` will find, computed ahead (storm/cpus.py cuts before an undecided one)."""
        c = int(np.searchsorted(K, self.carry_key, side="left")) if self.carry_key is not None else 0
        st = np.zeros(K.shape[0], dtype=bool)
        if K.shape[0] > c:
            st[c:] = chain_starts(K[c:], ends[c:])
        return st

    def _firsts(self, wid: np.ndarray, vl: Any, scal: bool, nv: int, c: int, m: int,
                only: np.ndarray | None = None) -> np.ndarray:
        """For each accept, whether it is the first of its vector in its window (-1: the window carried from the
        last call, whose vectors are carry_vecs; with ``only``, among the accepts ``only`` marks)."""
        first = np.zeros(m, dtype=bool)
        sel_all = np.arange(m) if only is None else np.flatnonzero(only)
        if scal:
            groups = [(sel_all, int(vl))]
        else:
            if nv > 8:
                groups = None
            elif only is None:   # (indices, not a boolean gather: a vector's accepts are scattered)
                groups = [(np.flatnonzero(vl == j), j) for j in range(nv)]
            else:
                groups = [(sel_all[np.flatnonzero(vl[sel_all] == j)], j) for j in range(nv)]
        if groups is not None:
            for sel, j in groups:
                w = wid[sel]
                f = np.empty(w.shape[0], dtype=bool)
                if f.size:
                    held = self.carry_vecs if only is None else self.carry_pir
                    f[0] = not (w[0] < 0 and self.vectors[j] in held)
                    np.not_equal(w[1:], w[:-1], out=f[1:])
                first[sel] = f
            return first
        vs_all = vl[sel_all]
        ws_all = wid[sel_all]
        srt = np.lexsort((np.arange(sel_all.size), vs_all, ws_all))
        ws, vs = ws_all[srt], vs_all[srt]
        f = np.ones(sel_all.size, dtype=bool)
        f[1:] = (ws[1:] != ws[:-1]) | (vs[1:] != vs[:-1])
        if c:
            held = self.carry_vecs if only is None else self.carry_pir
            cv = np.array([self.vloc[x] for x in held], dtype=np.int64)
            f &= ~((ws < 0) & np.isin(vs, cv))
        first[sel_all[srt]] = f
        return first


class WorkChain:
    """irqfd->inject: schedule_work on a pending work item is a no-op, so signals within irqfd_work_ns of
    the one that queued it coalesce; each run injects through the GSI's routes."""

    def __init__(self, eng: Any, fp: Any):
        self.eng, self.fp = eng, fp
        self.W = eng.timing.irqfd_work_ns
        self.open_end = -1
        self.open_key = -1
        self.runs = 0
        self.runs_on: dict[int, int] = {}   # per CPU, the runs a hard interrupt there queued (storm/cpus.py)
        self.coalesced = 0
        self.last = 0

    def signals(self, t: np.ndarray, g: np.ndarray, tev: np.ndarray | None = None,
                src: np.ndarray | None = None, keys: np.ndarray | None = None,
                order: np.ndarray | None = None) -> np.ndarray:
        """Signals at t (the instants their hard interrupts ran: ``tev`` the interrupts' raise instants, if
        different; ``src`` their sources, to count each run on the CPU whose interrupt queued it; ``order`` the
        order they were queued in at one instant, CpuStage.queue_order: the interrupt ``g`` without CPUs)."""
        if not t.size:
            return
        starts = np.zeros(t.size, dtype=bool)
        if keys is not None:   # with host CPUs: a signal taken from an IRR at the work's instant is before it
            c = int(np.searchsorted(keys, self.open_key, side="left"))
            starts[c:] = chain_starts(keys[c:], 8 * (t[c:] + self.W) + 2)
        else:
            c = int(np.searchsorted(t, self.open_end, side="left")) if self.open_end > 0 else 0
            starts[c:] = chain_starts(t[c:], self.W)
        self.eng.sink.settle(g[~starts], O.COALESCED_IRQFD)
        self.coalesced += int(t.size - np.count_nonzero(starts))
        s = np.flatnonzero(starts)
        if not s.size:
            return s
        self.runs += s.size
        if src is not None:
            cpus = self.eng.cpus.src_cpu[src[s]]
            for cpu, n in zip(*np.unique(cpus, return_counts=True)):
                self.runs_on[int(cpu)] = self.runs_on.get(int(cpu), 0) + int(n)
        inject = t[s] + self.W
        self.open_end = int(inject[-1])
        self.open_key = 8 * self.open_end + 2
        self.last = max(self.last, self.open_end)
        self.last_ord = g[s] if order is None else order[s]
        self.eng.inject(self.fp.delivery, inject, g[s], t[s] if tev is None else tev[s], self.last_ord)
        return inject

    def signal1(self, t: int, key: int, g: int, tev: int, cpu: int, order: int) -> int | None:
        """One signal, inside a CPU's scan (storm/cpus.py): the inject instant if it queued the work, else None
        (``order``: CpuStage.queue_order's)."""
        if key < self.open_key:
            self.eng.sink.settle(np.array([g], np.int64), O.COALESCED_IRQFD)
            self.coalesced += 1
            return None
        self.runs += 1
        self.runs_on[cpu] = self.runs_on.get(cpu, 0) + 1
        inj = t + self.W
        self.open_end, self.open_key = inj, 8 * inj + 2
        self.last = max(self.last, inj)
        self.eng.inject(self.fp.delivery, np.array([inj], np.int64), np.array([g], np.int64),
                        np.array([tev], np.int64), np.array([order], np.int64))
        return inj
