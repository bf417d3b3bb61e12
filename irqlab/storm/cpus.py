"""Host CPUs in the storm engine: each CPU's hard-IRQ server, computed chunk by chunk without a Python step per
interrupt where the CPU is quiet or takes one vector, and the busy periods its vCPU's entries wait for.

Models irqlab/cpu.py, i.e. arch/x86/kernel/irq.c and the local APIC (a vector that arrives while its CPU is in
hard-IRQ context waits in the IRR — one per vector, the highest taken first — and a further one merges), the VM
exit of arch/x86/kvm/vmx/vmx.c for a vector that arrives while the CPU runs its vCPU (``Timing.vmexit_ns`` more on
the busy period it opens), and the reschedule IPI of virt/kvm/kvm_main.c ``__kvm_vcpu_kick`` (sent when the vCPU
is IN_GUEST_MODE; it opens a busy period of one exit when it lands in the guest). Simplification: none beyond the
object model's — the engine computes the same dispatch instants, merges and busy periods; what it does not cover
(contention on a CPU that carries an INTx or spurious-counting line, two reschedule IPIs in flight) raises
Unsupported.

Keys order what happens at one instant T exactly as the object model does (docs/model-time.md): ``8T + 0`` a CPU
leaving hard-IRQ context (its vCPU re-enters, deferred entries run), ``8T + 1`` a vector taken from the IRR at a
job's end, ``8T + 2`` a work item queued before a window's entry timer, ``8T + 3`` the entry timer, ``8T + 4`` a
work item queued after it, ``8T + 5`` an interrupt raised at T.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..ledger import Outcome
from .compile import Unsupported

__all__ = ["CpuServer", "K_END", "K_EARLY", "K_INJ_BEFORE", "K_ENTRY", "K_INJ_AFTER", "K_RAISE", "INF"]

O = Outcome
INF = np.iinfo(np.int64).max // 4
_NOWHERE = -INF   # a period end no key is before
K_END, K_EARLY, K_INJ_BEFORE, K_ENTRY, K_INJ_AFTER, K_RAISE = range(6)
K_BEFORE = -1   # a vector a lower-numbered CPU takes from its IRR at T, for a vCPU of a CPU whose work ends at T


def before_own(cls: np.ndarray, sub: np.ndarray, cpu: int) -> np.ndarray:
    """The classes of accepts into the vCPU that CPU ``cpu`` runs: one taken from another CPU's IRR (K_EARLY, sub
    that CPU) at T comes before ``cpu``'s own work ending at T when that CPU's number is lower — the model lets the
    CPUs whose work ends at T finish it in CPU order — so its key is 8T - 1 (K_BEFORE), before everything at T: it
    joins the window that re-entry closes. (The kick it sends looks at the vCPU after its CPU caught up, so the
    kicked CPU's scan keeps the class K_EARLY: the vCPU is back in guest mode, and the kick is a RES IPI.)"""
    m = (cls == K_EARLY) & (sub < cpu)
    return np.where(m, K_BEFORE, cls) if m.any() else cls
#: vector numbers are kept as local indices, highest vector first; the reschedule IPI is local index -1
RES = -1
_SCALAR_BLOCK = 1 << 15   # arrivals a CPU's scan holds as Python lists at once


class CpuServer:
    """One host CPU's hard-IRQ context across the storm: the job in service, the IRR, the busy period, its vCPU.

    ``feed`` takes the arrivals of one chunk (device vectors, and kick candidates for its running vCPU without
    APICv) in key order and decides each: taken now, taken later from the IRR (when), or merged. Results are final
    up to the chunk's frontier (the next chunk's first raise): what is still pending there is carried.
    """

    grid = False

    def __init__(self, eng: Any, cpu: int, vectors: list[int], curr: Any, kicks: bool):
        t = eng.timing
        self.eng, self.cpu = eng, cpu
        self.vectors = sorted(vectors, reverse=True)          # local index 0 = the highest vector
        self.vloc = {v: i for i, v in enumerate(self.vectors)}
        self.h = t.host_irq_ns
        self.curr = curr                                      # VcpuPlan of the vCPU it runs, or None
        self.running = curr is not None and not curr.halted
        self.x = t.vmexit_ns if self.running else 0
        self.kicks = kicks                                    # its vCPU is kicked by reschedule IPIs
        self.ipi = t.ipi_ns
        # state
        self.bend = -1            # end of the job in service (-1: free)
        self.bstart = -1
        self.pend: dict[int, tuple] = {}   # local vector -> (g, T arrival, source)  (RES: (-1, T, -1))
        self.res_t = INF          # a reschedule IPI in flight lands then
        self.kick_open = False    # a kick was sent and the vCPU has not re-entered since
        # results, per chunk (drained by the engine) and totals
        self.busy: list[tuple[int, int, int, int]] = []  # finished busy periods (start, start class, start sub, end)
        #                                                  not yet in the arrays below
        self.busy_arr: list[tuple] = []   # more of them as arrays (start key 8T + class, start sub, end)
        # all finished busy periods, in order, in arrays grown by doubling (appending is amortized O(new), a
        # question is a binary search: no per-chunk re-concatenation): start key, start sub, end key 8 * end
        self._cap = self._nb = 0
        self._bk = self._bs = self._be8 = np.zeros(0, np.int64)
        self.last_end = -1        # the end of the last finished busy period
        self.pin_starts: list = []   # (start key, key, sub, VT-d?) of each busy period's first post to its vCPU
        self.bcls = self.bsub = 0
        self.kick_at: list[tuple] = []            # kicks sent (key, sub) not yet in the array below
        self._kicks = np.zeros((0, 2), np.int64)  # all kicks sent, in order: (key, sub)
        self.taken = self.waited = self.merged = 0
        self.res_taken = self.res_waited = 0
        self.jobs = 0                              # device jobs (each host_irq_ns)
        self.nbusy = 0
        self.busy_ns = 0
        self.posts: list = []
        self.inline: dict = {}   # source -> WorkChain run inside the scan (its work kicks this CPU's vCPU)
        self.own: list[tuple] = []  # (inject instant, interrupt) of that work still to come
        self.inj_cls = K_INJ_AFTER
        self.piw_last: tuple | None = None   # (busy period start key, job end) the last waiting PIW is taken at

    # ------------------------------------------------------------------ the scan, one arrival at a time
    def _end_job(self, te: int, out_d: list) -> None:
        """The job in service ends at ``te``: the highest vector waiting is taken (the reschedule IPI takes no
        time), or the busy period ends."""
        if RES in self.pend:
            del self.pend[RES]
            self.taken += 1
            self.waited += 1
            self.res_taken += 1
            self.res_waited += 1
        if self.pend:
            v = min(self.pend)   # local index 0 is the highest vector
            g, ta, s = self.pend.pop(v)
            self.taken += 1
            self.waited += 1
            self.jobs += 1
            self.bend = te + self.h
            out_d.append((g, te, K_EARLY, s, ta))
            if s in self.inline:
                self._signal(s, g, te, K_EARLY, ta)
            return
        self.busy.append((self.bstart, self.bcls, self.bsub, te))
        self.nbusy += 1
        self.busy_ns += te - self.bstart
        self.last_end = te
        self.bend = -1
        self.kick_open = False

    def _res_lands(self, tr: int) -> None:
        self.res_t = INF
        if self.bend < 0:
            self.taken += 1
            self.res_taken += 1
            if self.running:   # it lands in the guest: an exit, one busy period of vmexit_ns
                self.bstart, self.bend = tr, tr + self.x
                self.bcls, self.bsub = K_INJ_AFTER, -1
            return
        if RES in self.pend:
            self.merged += 1
        else:
            self.pend[RES] = (-1, tr, -1)

    def _advance(self, T: int, cls: int, out_d: list, sub: int = -1) -> None:
        """Everything the CPU does before an event of class ``cls`` at ``T`` (and ``sub``): jobs that end (first at
        an instant), the reschedule IPI that lands, the irqfd work its own interrupts queued (timers; an item at
        the event's own key runs first if it was queued before it: its sub, the interrupt, is lower)."""
        key = 8 * T + cls
        while True:
            k, kind = INF * 8, -1
            if self.bend >= 0:
                k, kind = 8 * self.bend, 0
            if self.res_t != INF and 8 * self.res_t + K_INJ_AFTER < k:
                k, kind = 8 * self.res_t + K_INJ_AFTER, 1
            if self.own and 8 * self.own[0][0] + self.inj_cls < k:
                k, kind = 8 * self.own[0][0] + self.inj_cls, 2
            if kind < 0 or k > key or (k == key and not (kind == 2 and self.own[0][1] < sub)):
                return
            if kind == 0:
                self._end_job(self.bend, out_d)
            elif kind == 1:
                self._res_lands(self.res_t)
            else:
                ti, gi = self.own.pop(0)
                self._kick(ti, self.inj_cls, gi)

    def feed_scalar(self, T: np.ndarray, cls: np.ndarray, vl: np.ndarray, g: np.ndarray, s: np.ndarray,
                    sub: np.ndarray, frontier: int) -> tuple:
        """The arrivals of one chunk, in key order: ``vl`` the local vector (-2: a kick candidate), ``g`` the
        interrupt, ``s`` its source. Returns (taken-now mask, merged mask, taken-later list [(g, T, cls, s)])."""
        n = T.shape[0]
        now = np.zeros(n, dtype=bool)
        merged = np.zeros(n, dtype=bool)
        later: list = []
        inline = self.inline
        hx = self.h + self.x
        busy = self.busy
        pend = self.pend
        for b0 in range(0, n, _SCALAR_BLOCK):   # as Python lists a block at a time (not the whole chunk)
            b1 = min(n, b0 + _SCALAR_BLOCK)
            Tl, cl, vll = T[b0:b1].tolist(), cls[b0:b1].tolist(), vl[b0:b1].tolist()
            gl, sl, subl = g[b0:b1].tolist(), s[b0:b1].tolist(), sub[b0:b1].tolist()
            if len(busy) >= _SCALAR_BLOCK:   # the periods so far into arrays (not a Python tuple each)
                self._arrays()
                busy = self.busy
            if len(self.kick_at) >= _SCALAR_BLOCK:
                self.kick_pairs()
            for j in range(b1 - b0):
                i = b0 + j
                ti, ci, v = Tl[j], cl[j], vll[j]
                if v >= 0 and not self.own and self.res_t == INF:
                    # the common case at once: nothing but the job in service can come before it
                    bend = self.bend
                    if bend >= 0 and 8 * bend < 8 * ti + ci:
                        if pend:
                            self._advance(ti, ci, later)
                            bend = self.bend
                        else:   # nothing waits: the busy period ends with its job (_end_job)
                            busy.append((self.bstart, self.bcls, self.bsub, bend))
                            self.nbusy += 1
                            self.busy_ns += bend - self.bstart
                            self.last_end = bend
                            self.bend = bend = -1
                            self.kick_open = False
                    if bend < 0:
                        now[i] = True
                        self.taken += 1
                        self.jobs += 1
                        if hx:
                            self.bstart, self.bend = ti, ti + hx
                            self.bcls, self.bsub = ci, subl[j]
                        if sl[j] in inline:
                            self._signal(sl[j], gl[j], ti, ci, ti)
                    elif v in pend:
                        merged[i] = True
                        self.merged += 1
                    else:
                        pend[v] = (gl[j], ti, sl[j])
                    continue
                if v == -5:   # a level pin sends again at the EOI of the job ending now: taken at that end
                    self._advance(ti, K_END, later)
                    if self.bend == ti and not self.pend and self.res_t == INF:
                        now[i] = True
                        self.taken += 1
                        self.waited += 1
                        self.jobs += 1
                        self.bend = ti + self.h
                    continue
                self._advance(ti, ci, later, subl[j])
                if v == -2:   # a kick candidate: the vCPU IN_GUEST_MODE (CPU free, no kick since it re-entered)?
                    self._kick(ti, ci, subl[j])
                    continue
                if self.bend < 0:
                    now[i] = True
                    self.taken += 1
                    self.jobs += 1
                    if self.h + self.x:
                        self.bstart, self.bend = ti, ti + self.h + self.x
                        self.bcls, self.bsub = ci, subl[j]
                    if sl[j] in self.inline:
                        self._signal(sl[j], gl[j], ti, ci, ti)
                    continue
                if v in self.pend:
                    merged[i] = True
                    self.merged += 1
                else:
                    self.pend[v] = (gl[j], ti, sl[j])
        self._advance(frontier, K_RAISE, later)
        if len(self.busy) >= 256:   # (the last block's periods too: not held as tuples past the chunk)
            self._arrays()
        return now, merged, later

    def _kick(self, ti: int, ci: int, sub: int) -> None:
        if self.bend < 0 and not self.kick_open:
            self.kick_open = True
            self.kick_at.append((8 * ti + ci, sub))
            if self.res_t != INF:
                raise Unsupported(f"CPU{self.cpu}: two reschedule IPIs in flight at once")
            self.res_t = ti + self.ipi

    def _signal(self, s: int, g: int, t: int, cls: int, ta: int) -> None:
        """A source of irqfd work whose injects kick this CPU's own vCPU is taken: the work chain runs here."""
        st = self.eng.cpus
        n1 = st.ncpu_key + 1
        if cls == K_EARLY:   # (CpuStage.queue_order for one signal, without arrays)
            order = n1 * (st.chunk_off + int(np.searchsorted(st.chunk_t, t, side="left")) - 1) + self.cpu
        else:
            order = n1 * g + n1 - 1
        inj = self.inline[s].signal1(t, 8 * t + cls, g, ta, self.cpu, order)
        if inj is not None:
            self.own.append((inj, order))

    # ------------------------------------------------------------------ finishing
    def kick_pairs(self) -> np.ndarray:
        """Every kick this CPU's scan sent so far, (key, sub) rows in order."""
        if self.kick_at:
            self._kicks = np.concatenate((self._kicks, np.asarray(self.kick_at, np.int64).reshape(-1, 2)))
            self.kick_at = []
        return self._kicks

    def note_posts(self, K: np.ndarray, sub: np.ndarray, io: np.ndarray) -> None:
        """Posts to its running vCPU (APICv) while this CPU is in hard-IRQ context, in key order, ``io`` the VT-d
        posted ones: the first post of each busy period finds the PIR and ON clear (the vCPU's entry cleared
        them) and sets ON, the others find ON set. When that first one is VT-d's, its notification lands in the
        host: PIN (one per busy period). When it is KVM's (__vmx_deliver_posted_interrupt: the vCPU is not
        IN_GUEST_MODE, no IPI), no later post of that period notifies anyone."""
        K, sub = np.asarray(K, np.int64), np.asarray(sub, np.int64)
        start, _ = self.period_of(K, sub)
        m = start >= 0
        if not m.all():
            start, K, sub, io = start[m], K[m], sub[m], np.asarray(io)[m]
        if start.size:
            f = np.flatnonzero(np.r_[True, start[1:] != start[:-1]])   # the first of each period (key order)
            self.pin_starts.append((start[f], K[f], sub[f], np.asarray(io, bool)[f]))

    def pin_count(self) -> int:
        """The busy periods whose first post was VT-d's (a period's posts may come in more than one call)."""
        if not self.pin_starts:
            return 0
        start, K, sub, io = (np.concatenate(c) for c in zip(*self.pin_starts))
        o = np.lexsort((sub, K, start))
        start, io = start[o], io[o]
        first = np.r_[True, start[1:] != start[:-1]]
        return int(np.count_nonzero(io[first]))

    def _arrays(self) -> tuple:
        """The finished busy periods as arrays (start key, start sub, end key 8 * end), in order."""
        parts = self.busy_arr         # _close_many moved ``busy`` here first: these come before ``busy``
        self.busy_arr = []
        if self.busy:
            b = np.asarray(self.busy, dtype=np.int64)
            parts.append((8 * b[:, 0] + b[:, 1], b[:, 2], b[:, 3]))
            self.busy = []
        if parts:
            add = sum(p[0].shape[0] for p in parts)
            nb = self._nb
            if nb + add > self._cap:
                cap = max(2 * self._cap, nb + add, 1024)
                for name in ("_bk", "_bs", "_be8"):
                    old = getattr(self, name)
                    new = np.empty(cap, np.int64)
                    new[:nb] = old[:nb]
                    setattr(self, name, new)
                self._cap = cap
            for bk, bs, be in parts:
                m = bk.shape[0]
                self._bk[nb:nb + m] = bk
                self._bs[nb:nb + m] = bs
                np.multiply(be, 8, out=self._be8[nb:nb + m])
                nb += m
            self._nb = nb
        nb = self._nb
        return self._bk[:nb], self._bs[:nb], self._be8[:nb]

    def prune(self, key: int) -> None:
        """Forget the finished busy periods that end at or before ``key`` (a key, 8T + class): the caller knows
        no question will ask about an earlier key (a streamed storm's CPU does not keep every period it had)."""
        bk, bs, be8 = self._arrays()
        j = int(np.searchsorted(be8, key, side="right"))
        if j and j >= bk.shape[0] // 2:   # (when half of them can go: the moves stay amortized)
            nb = self._nb - j
            for name in ("_bk", "_bs", "_be8"):
                a = getattr(self, name)
                a[:nb] = a[j:j + nb].copy()
            self._nb = nb

    def period_of(self, K: np.ndarray, sub: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For events at keys (K, sub), sorted: the start key of the busy period (finished or open) each falls
        in (-1: none), and its end (INF: the open one, or none)."""
        end, inside, _, start, _ = self._busy_of(K, sub)
        return np.where(inside, start, -1), end

    def busy_of(self, K: np.ndarray, sub: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For events at keys (K, sub), sorted: the finished busy period they fall in (its end, or INF), whether
        they fall in the unfinished one (undetermined), and the first finished busy end after them (or INF)."""
        return self._busy_of(K, sub)[:3]

    def end_if_busy(self, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """busy_of(K, sub -1)'s first two answers (a timer's keys, sorted), without the rest: the end of the
        finished busy period each falls in (INF: none, or the open one), and whether it falls in one.

        Searched the other way round: where each finished period that starts within the keys' span falls among
        the keys (a few searches, not one per key), then each key's period end by one ``np.repeat`` — both
        sorted, so the period a key falls in is the last one placed at or before it."""
        bk, bs, be8 = self._arrays()
        nb, n = bk.shape[0], K.shape[0]
        if nb and n:
            # periods before lo start before every key (the last of them is each early key's candidate);
            # periods from hi on start after every key
            lo = int(np.searchsorted(bk, K[0], side="left"))
            hi = int(np.searchsorted(bk, K[-1], side="right"))
            # a period at the timer's own key starts after it unless its sub is -1 (then the timer is in it)
            pos = np.searchsorted(K, bk[lo:hi], side="right")
            neg = np.flatnonzero(bs[lo:hi] <= -1)
            if neg.size:
                pos[neg] = np.searchsorted(K, bk[lo:hi][neg], side="left")
            cnt = np.empty(hi - lo + 1, np.int64)
            if hi > lo:
                cnt[0] = pos[0]
                np.subtract(pos[1:], pos[:-1], out=cnt[1:-1])
                cnt[-1] = n - pos[-1]
            else:
                cnt[0] = n
            tab = np.empty(hi - lo + 1, np.int64)
            tab[0] = be8[lo - 1] if lo else _NOWHERE   # the key before every period: in none
            tab[1:] = be8[lo:hi]
            e8 = np.repeat(tab, cnt)
            inside = K < e8
            end = np.where(inside, e8 >> 3, INF)
        else:
            inside = np.zeros(n, dtype=bool)
            end = np.full(n, INF, np.int64)
        if self.bend >= 0 and n:   # the open one: a tail of the keys
            ok = 8 * self.bstart + self.bcls
            i0 = int(np.searchsorted(K, ok, side="left" if self.bsub <= -1 else "right"))
            inside[i0:] = True
            end[i0:] = INF
        return end, inside

    def _end_if_busy_by_key(self, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """end_if_busy one search per key (the definition the fast one is tested against)."""
        bk, bs, be8 = self._arrays()
        nb = bk.shape[0]
        k = np.searchsorted(bk, K, side="right")
        k -= 1
        if nb:
            kk = np.maximum(k, 0)
            k -= (bk[kk] == K) & (bs[kk] > -1) & (k >= 0)   # a period starting at that key after it (by sub)
            kk = np.maximum(k, 0)
            e8 = be8[kk]
            inside = K < e8
            inside &= k >= 0
            end = np.where(inside, e8 // 8, INF)
        else:
            inside = np.zeros(K.shape[0], dtype=bool)
            end = np.full(K.shape[0], INF, np.int64)
        if self.bend >= 0:
            ok = 8 * self.bstart + self.bcls
            openm = (K > ok) | ((K == ok) & (self.bsub <= -1))
            inside |= openm
            end[openm] = INF
        return end, inside

    def _busy_of(self, K: np.ndarray, sub: np.ndarray) -> tuple:
        n = K.shape[0]
        bk, bs, be8 = self._arrays()
        nb = bk.shape[0]
        # the period each falls in: the last one that starts at or before it (at one key, by sub); index nb is
        # the busy period still open at the frontier (it starts after every finished one ends)
        k = np.searchsorted(bk, K, side="right") - 1
        if nb:
            kk = np.maximum(k, 0)
            tie = (k >= 0) & (bk[kk] == K) & (bs[kk] > sub)
            k = k - tie
        if self.bend >= 0:
            ok = 8 * self.bstart + self.bcls
            at = (K > ok) | ((K == ok) & (sub >= self.bsub))
            k = np.where(at, nb, k)
        kk = np.clip(k, 0, max(nb - 1, 0))
        if nb:
            fin = (k >= 0) & (k < nb)
            inside_f = fin & (K < be8[kk])
            end = np.where(inside_f, be8[kk] // 8, INF)
            start = np.where(fin, bk[kk], -1)
            ssub = np.where(fin, bs[kk], 0)
        else:
            inside_f = np.zeros(n, dtype=bool)
            end = np.full(n, INF, np.int64)
            start = np.full(n, -1, np.int64)
            ssub = np.zeros(n, np.int64)
        if self.bend >= 0:
            openm = k == nb
            inside = inside_f | openm
            start = np.where(openm, 8 * self.bstart + self.bcls, start)
            ssub = np.where(openm, self.bsub, ssub)
        else:
            inside = inside_f
        if nb:
            fe = np.searchsorted(be8, K, side="right")   # first finished end whose key 8e > K
            nxt = np.where(fe < nb, be8[np.minimum(fe, nb - 1)] // 8, INF)
        else:
            nxt = np.full(n, INF, np.int64)
        return end, inside, nxt, start, ssub

    def piw_waits(self, K: np.ndarray, sub: np.ndarray) -> tuple[int, int]:
        """VT-d wake-up notifications (PIW) of one halted vCPU landing on this CPU at keys (K, sub), sorted: how
        many found it in hard-IRQ context (they wait in its IRR), and how many of those merged there. A waiting
        one is taken at the next job end of its busy period (the wake-up vector costs no time: the jobs go on
        back to back, the first one h + x, or x for a period a reschedule IPI opened, then h each); two waiting
        for the same job end merge (one pending per vector), also across a chunk boundary."""
        _, inside, _, start, ssub = self._busy_of(K, sub)
        if not inside.any():
            return 0, 0
        K, start, ssub = K[inside], start[inside], ssub[inside]
        S = (start + 2) // 8        # the period's start instant (its key is 8S + class, class -1..5)
        c0 = np.where(((start - 8 * S) == K_INJ_AFTER) & (ssub <= -1), self.x, self.h + self.x)
        gap = K - 8 * (S + c0)      # the first job end e with 8e >= K: the one it waits for
        k = np.maximum(0, -(-gap // (8 * self.h))) if self.h else np.zeros_like(gap)
        slot = np.stack((start, k), axis=1)
        same = np.zeros(K.shape[0], dtype=bool)
        same[1:] = (slot[1:] == slot[:-1]).all(axis=1)
        if self.piw_last is not None:
            same[0] = (int(start[0]), int(k[0])) == self.piw_last
        self.piw_last = (int(start[-1]), int(k[-1]))
        return int(K.shape[0]), int(same.sum())


class CpuStage:
    """The host CPUs of one storm: which sources' vectors arrive where, the CPUs' servers in the order kicks flow
    between them (an interrupt taken on one CPU that kicks a vCPU of another, directly or through irqfd work),
    and the stream of what the CPUs took, by the instant and class they took it."""

    def __init__(self, eng: Any):
        self.eng = eng
        plan = eng.plan
        t = eng.timing
        P = len(plan.sources)
        self.src_cpu = np.array([sp.cpu for sp in plan.sources], dtype=np.int64)
        self.src_hvec = np.array([sp.hvec for sp in plan.sources], dtype=np.int64)
        cpus = sorted({c for c in self.src_cpu.tolist() if c >= 0})
        self.ncpu_key = max(cpus, default=-1) + 1
        self.src_cpu16 = self.src_cpu.astype(np.int16 if self.ncpu_key < 32_000 else np.int64)
        self.curr = plan.cpu_curr
        if t.host_irq_ns == 0 and any(self.curr.get(c) is not None and not self.curr[c].halted for c in cpus):
            raise Unsupported("Timing.host_irq_ns=0 on a CPU that runs a vCPU: interrupts taken from the IRR at the "
                              "end of an exit take no time and end the busy period at their own instant")
        if t.vmexit_ns + t.host_irq_ns < t.ipi_ns:
            raise Unsupported("Timing: vmexit_ns + host_irq_ns < ipi_ns (two reschedule IPIs could be in flight at once)")
        # the vCPUs of busy CPUs: how they take interrupts (kicked, posted, halted)
        self.kicked: dict[int, Any] = {}
        for c in cpus:
            vp = self.curr.get(c)
            if vp is not None and not vp.halted and not vp.apicv:
                self.kicked[c] = vp
        for vp in plan.vcpus:
            c = vp.pcpu
            cur = self.curr.get(c)
            if vp.dedicated and c in cpus:
                raise Unsupported(f"vcpu{vp.vcpu.id} takes a vfio INTx round trip and its CPU{c} takes host vectors "
                                  "(its entries would wait for that CPU)")
        edges: dict[int, set] = {c: set() for c in cpus}
        # direct kicks: an accept on another CPU
        self.cand_src: dict[int, np.ndarray] = {}
        for c, vp in self.kicked.items():
            col = eng.acc_vec[vp.index]
            srcs = [s for s in range(P) if col[s] >= 0 and eng.kind[s] == 1 and self.src_cpu[s] >= 0   # K_ACCEPT
                    and self.src_cpu[s] != c]
            self.cand_src[c] = np.array(srcs, dtype=np.int64)
            for s in srcs:
                edges[c].add(int(self.src_cpu[s]))
        # irqfd work: run where all its signals' CPUs are done; inside the scan when they are the kicked CPU's own
        self.chains: list[tuple] = []        # (WorkChain, its sources, their CPUs, kicked CPUs it reaches)
        self.inline: dict[int, dict] = {c: {} for c in cpus}   # CPU -> {source: WorkChain}
        for wc in eng.work.values():
            srcs = [s for s in range(P) if eng.src_work[s] is wc]
            if not srcs:
                continue
            scpu = {int(self.src_cpu[s]) for s in srcs}
            kicks = sorted({a.vcpu.pcpu for a in wc.fp.delivery.accepts if a.mode == "fixed"
                            and self.kicked.get(a.vcpu.pcpu) is a.vcpu})
            if any(p in scpu for p in kicks):
                if scpu != {kicks[0]} or len(kicks) > 1:
                    raise Unsupported("irqfd work whose signals come from several CPUs kicks a vCPU on one of them")
                for s in srcs:
                    self.inline[kicks[0]][s] = wc
                continue
            self.chains.append((wc, np.array(srcs, np.int64), scpu, kicks))
            for p in kicks:
                edges[p] |= scpu
        self.order = _topo(cpus, edges)
        # sources whose one accept (irqfd fast path, a logical destination of several vCPUs) reaches several vCPUs:
        # the CPUs those vCPUs run on (see _check_multi)
        self.multi_cpus: dict[int, set] = {}
        for s_ in range(P):
            if eng.kind[s_] == 1 and self.src_cpu[s_] >= 0:
                vis = np.flatnonzero(eng.acc_vec[:, s_] >= 0).tolist()
                if len(vis) > 1:
                    self.multi_cpus[s_] = {plan.vcpus[vi].pcpu for vi in vis}
        self.early_tail: tuple = (-1, set(), [])   # the last instant of takes from the IRRs: CPUs, (cpu, source)
        self.servers: dict[int, CpuServer] = {}
        for c in cpus:
            here = [s for s in range(P) if self.src_cpu[s] == c]
            vecs = sorted({int(self.src_hvec[s]) for s in here})
            # K_CONST/ACCEPT/WORK, or a threaded MSI line's (the line follows what the CPU took)
            plain = all((eng.kind[s] in (0, 1, 2) and not _dynamic(eng, s)) or eng.kind[s] == 5 for s in here)
            cls = GridServer if (len(vecs) == 1 and plain and c not in self.kicked and not self.inline[c]) else CpuServer
            self.servers[c] = cls(eng, c, vecs, self.curr.get(c), c in self.kicked)
            self.servers[c].inline = self.inline[c]
            if c in self.kicked:
                self.servers[c].inj_cls = self.inj_cls(c)
        piw: dict[int, list] = {}   # the halted vCPUs VT-d wakes up, by their CPU
        for vp in plan.vcpus:
            if vp.vcpu.mode == "halted" and vp.has_iommu and vp.apicv:
                piw.setdefault(vp.pcpu, []).append(vp.vcpu.id)
        for c, ids in piw.items():
            if len(ids) > 1 and c in self.servers:
                raise Unsupported(f"CPU{c} takes host vectors and the VT-d wake-up notifications of halted vCPUs "
                                  f"{ids}: two of them waiting in its IRR at once merge (one pending per vector), "
                                  "which the engine does not count (engine='reference' runs it)")
        self.any_unrouted = bool((self.src_cpu < 0).any())   # a source that reaches no CPU (VT-d posted)
        self.cpu_src: dict[int, int] = {}   # a CPU that only one source's vector reaches -> that source
        for c in cpus:
            here = [s for s in range(P) if self.src_cpu[s] == c]
            if len(here) == 1:
                self.cpu_src[c] = here[0]
        self.src_vl = np.full(P, -3, dtype=np.int64)
        for s in range(P):
            c = int(self.src_cpu[s])
            if c >= 0:
                self.src_vl[s] = self.servers[c].vloc[int(self.src_hvec[s])]
        self.merged_cnt = np.zeros(P, dtype=np.int64)
        self.src_count: dict | None = None   # per source, its arrivals in this chunk as the scan found them
        self.complex: dict[int, list] = {c: [] for c in cpus}   # per CPU: arrivals that must not wait (t, g)
        self.cand_carry: dict[int, list] = {c: [] for c in cpus}  # kick candidates due after the chunk: (T, cls)
        self.chunk_t, self.chunk_off = np.zeros(0, np.int64), 0   # the chunk being scanned (queue_order)

    def queue_order(self, T: Any, cls: Any, sub: Any) -> Any:
        """The order in which irqfd work queued by hard IRQs taken at (T, class, sub) was queued, as one int per
        signal: what orders their injects, all due at T + irqfd_work_ns, among themselves (queue_work's timers
        run in the order they were queued). At one instant T the CPUs take from their IRRs first (class K_EARLY,
        sub the CPU: CPU order, docs/model-time.md), then the interrupts raised at T (sub the interrupt, in storm
        order). An interrupt taken from an IRR at T was raised before T, so below G0, the first interrupt raised
        at T: ``n1 * (G0 - 1) + cpu`` for a take, ``n1 * g + n1 - 1`` for a raise (n1 = CPUs + 1) keep both
        orders, and the interrupt number's order where that is the queue order. (Ordering by the interrupt
        alone put CPU1's take of an older interrupt before CPU0's take of a newer one at the same instant.)
        ``T`` is within the chunk being scanned or up to its frontier: G0 is the chunk's offset plus the
        chunk's interrupts raised before T."""
        n1 = self.ncpu_key + 1
        T, cls, sub = np.asarray(T, np.int64), np.asarray(cls, np.int64), np.asarray(sub, np.int64)
        take = cls == K_EARLY
        if not take.any():
            return n1 * sub + (n1 - 1)
        g0 = self.chunk_off + np.searchsorted(self.chunk_t, T, side="left").astype(np.int64)
        return np.where(take, n1 * (g0 - 1) + sub, n1 * sub + (n1 - 1))

    def prune(self, t0: int) -> None:
        """Before a chunk whose first interrupt is raised at ``t0``: when every CPU is a grid CPU and every source
        reaches its CPU as a plain vector, no accept to come is before t0 or before what waits already (deferred
        windows, irqfd injects, dispatches from an IRR): the busy periods that ended before all of them go."""
        eng = self.eng
        if not all(srv.grid for srv in self.servers.values()) or not eng.kinds_present <= {0, 1, 2} or \
                any(ml.up and ml.lp.dynamic and not eng.plan.noirqdebug for ml in eng.msi_lines.values()):
            return
        lo = t0
        for vw in eng.vcpus:
            for p in vw.defer:
                if p[2].size:
                    lo = min(lo, int(p[2].min()))
            for b in vw.buf:
                if b[0].size:
                    lo = min(lo, int(b[0].min()))
        for srv in self.servers.values():
            for b in srv.buf:
                if b[0].size:
                    lo = min(lo, int(b[0].min()), int(b[3].min()))
        for srv in self.servers.values():
            srv.prune(8 * (lo - 1))

    def note_complex(self, cpu: int, t: np.ndarray, g: np.ndarray, cls: Any = K_RAISE) -> None:
        """Arrivals computed by a line that decided when its CPU takes them (INTx, spurious counting, a line going
        down): ``cls`` K_RAISE, taken at once when raised, or K_EARLY, sent again by a level pin at the EOI of
        the job the CPU is running then (taken as that job ends, in the same busy period). Checked below:
        Unsupported if the CPU's own view disagrees (it would wait or merge)."""
        if t.size:
            t = np.asarray(t, np.int64)
            c = np.broadcast_to(np.asarray(cls, np.int64), t.shape).copy()
            self.complex[cpu].append((t, np.asarray(g, np.int64), c))

    def scan(self, t: np.ndarray, sid: np.ndarray, g: np.ndarray, simple: np.ndarray, t_next: int) -> tuple:
        """The CPUs take this chunk's vectors. ``simple``: which events arrive as plain vectors (the rest of the
        routed ones were handled by their lines and noted as complex; None: all). Returns what was taken,
        unordered, in parts (one per CPU): [(T, cls, g, s, traise, sub)], and the plain arrivals that reach no
        CPU (chunk indices)."""
        eng = self.eng
        frontier = t_next
        g_next = int(g[-1]) + 1 if g.size else 0
        if t.size:
            self.chunk_t, self.chunk_off = t, int(g[0])
        # each CPU's routed arrivals, in order (chunk indices): a pass per CPU when there are few of them (in the
        # worker that runs the CPU; a CPU that one source reaches compares the sources alone), else one stable
        # counting sort by CPU
        key = None
        if simple is not None or len(self.servers) > 8 or self.any_unrouted or \
                any(c not in self.cpu_src for c in self.servers):
            key = self.src_cpu16[sid] if simple is None else np.where(simple, self.src_cpu16[sid], -2)
        if len(self.servers) > 8:
            order = np.argsort(key, kind="stable")
            bounds = np.searchsorted(key[order], np.arange(-1, self.ncpu_key + 1))
            unrouted = order[bounds[0]:bounds[1]]

            def arrivals(c: int) -> np.ndarray:
                return order[bounds[c + 1]:bounds[c + 2]]
        else:
            unrouted = np.flatnonzero(key == -1) if self.any_unrouted else np.zeros(0, np.int64)

            def arrivals(c: int) -> np.ndarray:
                one = self.cpu_src.get(c)
                if key is None and one is not None:
                    e = np.flatnonzero(sid == one)
                    if self.src_count is not None:
                        self.src_count[one] = e.size   # (each worker its own source)
                    return e
                return np.flatnonzero(key == c)
        # (unrouted: plain arrivals that reach no CPU (VT-d posted), in order)
        out_all: list = []
        emitted: dict[int, list] = {}    # per CPU: what it took in this chunk, parts (T, cls, g, s, traise, sub)
        chains_done: set = set()
        # the grid CPUs that only plain arrivals reach first: they kick nobody and wait for nobody (a kicked CPU
        # is never one), so they are independent of each other — two at once
        off = int(g[0]) if g.size else 0
        grid = [c for c in self.order if self.servers[c].grid and not self.complex[c]]
        calls = [(self._grid, (c, arrivals, t, sid, off, frontier), t.size // max(len(self.servers), 1))
                 for c in grid]
        for c, (ems, merged) in zip(grid, eng._run_local(calls)):
            if isinstance(merged, tuple):
                self.merged_cnt[merged[0]] += merged[1]
            else:
                self.merged_cnt += merged
            emitted[c] = ems
            out_all.extend(ems)
        if grid:
            self._run_chains(emitted, chains_done)
        for c in self.order:
            if c in emitted:
                continue
            srv = self.servers[c]
            e = arrivals(c)
            cx = self.complex[c]
            ge, se = g[e], sid[e]
            parts = [(t[e], _same(K_RAISE, e.size), ge, se, self.src_vl[se], ge)]
            del e
            if cx:
                ct = np.concatenate([x[0] for x in cx])
                cg = np.concatenate([x[1] for x in cx])
                cc = np.concatenate([x[2] for x in cx])
                self.complex[c] = []
                parts.append((ct, cc, cg, np.full(ct.size, -1, np.int64),
                              np.where(cc == K_EARLY, -5, -4), cg))
            if c in self.kicked:
                cand = self.cand_carry[c]
                if self.cand_src[c].size:
                    for T2, cls2, g2, s2, _, sub2 in (p for ps in emitted.values() for p in ps):
                        m = np.isin(s2, self.cand_src[c])
                        if m.any():
                            cand.append((T2[m], cls2[m], sub2[m]))
                if cand:
                    kT = np.concatenate([x[0] for x in cand])
                    kc = np.concatenate([x[1] for x in cand])
                    ks = np.concatenate([x[2] for x in cand])
                    kk = 8 * kT + kc   # before the next chunk's first interrupt (t_next, raised, its index)?
                    if frontier >= INF:
                        now = np.ones(kT.size, dtype=bool)
                    else:
                        now = (kk < 8 * frontier + K_RAISE) | ((kk == 8 * frontier + K_RAISE) & (ks < g_next))
                    self.cand_carry[c] = [(kT[~now], kc[~now], ks[~now])] if (~now).any() else []
                    kT, kc, ks = kT[now], kc[now], ks[now]
                    parts.append((kT, kc, np.full(kT.size, -1, np.int64), np.full(kT.size, -1, np.int64),
                                  np.full(kT.size, -2, np.int64), ks))
            if len(parts) == 1:   # this chunk's raised vectors alone: in key order already (by time, then g)
                Tc, cls, gc, sc, vl, sub = parts[0]
                ordered = True
            else:
                Tc, cls, gc, sc, vl, sub = (np.concatenate([p[i] for p in parts]) for i in range(6))
                ordered = False
            del parts
            if srv.grid:   # already in order: this chunk's raised vectors, one vector
                now, merged, later = srv.feed_grid(Tc, gc, sc, frontier)
                if later is not None:
                    ld, lg, ls, lt = later
                    later = np.stack([lg, ld, np.full(ld.size, K_EARLY, np.int64), ls, lt], axis=1)
                else:
                    later = []
            else:
                if not ordered:
                    o = np.lexsort((sub, 8 * Tc + cls))
                    Tc, cls, gc, sc, vl, sub = Tc[o], cls[o], gc[o], sc[o], vl[o], sub[o]
                    del o
                vlx = np.where(vl == -4, 10_000, vl)   # a complex arrival (it must not wait, checked below)
                vlx = np.where(vl == -5, -5, vlx)      # ... one a level pin sends again at an EOI
                now, merged, later = srv.feed_scalar(Tc, cls, vlx, gc, sc, sub, frontier)
            cxm = (vl == -4) | (vl == -5)
            if cxm.any() and not now[cxm].all():
                i = int(np.flatnonzero(cxm & ~now)[0])
                raise Unsupported(f"CPU{c} is in hard-IRQ context at {int(Tc[i]):,} ns when an interrupt of an INTx "
                                  "line, a line under spurious counting or a line going down arrives: the vector "
                                  "engine computes those lines assuming their CPU takes them at once "
                                  "(engine='reference' runs it)")
            dev = vl >= 0
            mg = merged & dev
            if mg.any():
                eng.sink.settle(gc[mg], O.COALESCED_APIC)
                self.merged_cnt += np.bincount(sc[mg], minlength=self.merged_cnt.shape[0])
            nw = np.flatnonzero(now & dev)
            Tn, gn = Tc[nw], gc[nw]
            outs = [(Tn, _same(K_RAISE, nw.size), gn, sc[nw], Tn, gn)]   # (T is traise, g is sub)
            if len(later):
                L = np.asarray(later, dtype=np.int64)     # (g, d, cls, s, traise)
                outs.append((L[:, 1], L[:, 2], L[:, 0], L[:, 3], L[:, 4], _same(c, L.shape[0])))
            emitted[c] = outs
            out_all.extend(outs)
            self._run_chains(emitted, chains_done)
        if self.multi_cpus:
            self._check_multi(emitted)
        return out_all, unrouted

    def _grid(self, c: int, arrivals: Any, t: np.ndarray, sid: np.ndarray, off: int, frontier: int) -> tuple:
        """A grid CPU takes its arrivals (chunk indices ``arrivals(c)``): what it took, in parts (T, cls, g, s,
        traise, sub) — those taken at once (T is traise, g is sub), those taken from the IRR — whose columns of
        one value are zero-stride views, and what merged, to add to ``merged_cnt`` (source, count) or per
        source. It settles the merged ones itself."""
        srv = self.servers[c]
        e = arrivals(c)
        Tc = t[e]                             # (an arrival's interrupt is its chunk index e plus off)
        one = self.cpu_src.get(c)             # the CPU's only source, if it has one
        if one is not None:
            now, nm, later = srv.feed_grid(Tc, e, one, frontier, masks=False, goff=off)
            if nm:
                # every arrival here is marked merged, one write (no masked gather); the others are settled again
                # below, later or in a later chunk, and their own outcome replaces it
                self.eng.sink.mark_chunk(e, O.COALESCED_APIC, nm)
            madd: Any = (one, nm)
            sn = _same(one, now.size)
        else:
            sc = sid[e]
            nowm, merged, later = srv.feed_grid(Tc, e, sc, frontier, goff=off)
            me = e[merged]
            me += off
            self.eng.sink.settle(me, O.COALESCED_APIC)
            madd = np.bincount(sc[merged], minlength=self.merged_cnt.shape[0])
            now = np.flatnonzero(nowm)
            sn = sc[now]
        Tn = Tc[now]
        gn = e[now]
        gn += off
        del e, Tc, now   # (what a worker holds at once: two of them run together)
        ems = [(Tn, _same(K_RAISE, Tn.size), gn, sn, Tn, gn)]
        if later is not None:
            ld, lg, ls, lt = later
            ems.append((ld, _same(K_EARLY, ld.size), lg, ls, lt, _same(c, ld.size)))
        return ems, madd

    def _run_chains(self, emitted: dict, done: set) -> None:
        """irqfd work whose signals' CPUs have all taken this chunk's vectors: the work chain runs on them, and
        what it injects into a kicked vCPU becomes that CPU's kick candidates."""
        for wc, srcs, scpu, kicks in self.chains:
            if id(wc) in done or not scpu <= set(emitted):
                continue
            done.add(id(wc))
            parts = []
            for T2, cls2, g2, s2, tr2, sub2 in (p for c in scpu for p in emitted[c]):
                m = np.isin(s2, srcs)
                if m.any():
                    parts.append((T2[m], cls2[m], g2[m], s2[m], tr2[m], sub2[m]))
            if not parts:
                continue
            T, cl, G, S, TR, SUB = (np.concatenate([p[i] for p in parts]) for i in range(6))
            o = np.lexsort((SUB, 8 * T + cl))
            T, cl, G, S, TR = T[o], cl[o], G[o], S[o], TR[o]
            inj = wc.signals(T, G, TR, S, keys=8 * T + cl, order=self.queue_order(T, cl, SUB[o]))
            if inj is not None and inj.size:
                for p in kicks:   # at the keys the vCPU stage gives these injects
                    self.cand_carry[p].append((inj, np.full(inj.size, self.inj_cls(p), np.int64), wc.last_ord))

    def inj_cls(self, cpu: int) -> int:
        """The class of an irqfd inject's accept into the vCPU ``cpu`` runs (before or after its entry timer)."""
        return K_INJ_BEFORE if self.eng.vcpus[self.kicked[cpu].index].inject_after_w else K_INJ_AFTER

    def _check_multi(self, emitted: dict) -> None:
        """One accept that reaches several vCPUs (a logical destination through the irqfd fast path), taken from
        CPU a's IRR at an instant T when CPU b > a, the CPU of one of those vCPUs, takes from its IRR too: the
        replay's accept into the vCPU on b kicks it, and the kick asks whether b is busy, which catches b up
        (vm.py kvm_vcpu_kick): b's take, and all it accepts, comes between the accepts of a's one interrupt, not
        after them (CPU order). The engine keeps CPU order: Unsupported, not a guess."""
        early: dict[int, dict[int, set]] = {}    # T -> {cpu: multi-destination sources it took at T}
        for c, parts in emitted.items():
            for T, cls, _g, sc, _tr, _sub in parts:
                if not np.asarray(T).size:
                    continue
                e = np.asarray(cls) == K_EARLY
                if not e.any():
                    continue
                Te = np.asarray(T)[np.broadcast_to(e, np.shape(T))]
                se = np.broadcast_to(np.asarray(sc), np.shape(T))[np.broadcast_to(e, np.shape(T))]
                for tt, ss in zip(Te.tolist(), se.tolist()):
                    early.setdefault(tt, {}).setdefault(c, set())
                    if ss in self.multi_cpus:
                        early[tt][c].add(ss)
        t0, cpus0, multi0 = self.early_tail
        if t0 in early:   # the same instant, split across two scans
            for c in cpus0:
                early[t0].setdefault(c, set())
            for c, ss in multi0:
                early[t0][c].add(ss)
        for tt, per in early.items():
            for a, ss in per.items():
                for s_ in ss:
                    b = [c for c in self.multi_cpus[s_] if c > a and c in per]
                    if b:
                        raise Unsupported(f"CPU{a} takes from its IRR at {tt:,} ns an interrupt whose accept reaches "
                                          f"several vCPUs, one of them on CPU{b[0]}, which takes from its IRR then "
                                          "too: the replay's kick catches that CPU up between the accepts "
                                          "(engine='reference' runs it)")
        if early:
            tm = max(early)
            if tm >= t0:
                self.early_tail = (tm, set(early[tm]), [(c, s_) for c, ss in early[tm].items() for s_ in ss])

    def drain(self) -> None:
        """After the last chunk the servers have run to the end (its frontier is past everything)."""


def _same(v: int, n: int) -> np.ndarray:
    """A column of ``n`` equal int64 values as a read-only zero-stride view (no memory per element)."""
    return np.broadcast_to(np.int64(v), (n,))


def check_wakeups(plan: Any) -> None:
    """A VT-d wake-up notification (PIW) for a halted vCPU lands on its CPU; if that CPU runs another vCPU in guest
    mode, it is an external-interrupt exit of that vCPU, which the engine does not place (whether or not that CPU
    takes host vectors)."""
    for vp in plan.vcpus:
        c = vp.pcpu
        cur = plan.cpu_curr.get(c)
        if cur is not vp and vp.vcpu.mode == "halted" and vp.has_iommu and vp.apicv:
            if cur is not None and not cur.halted:
                raise Unsupported(f"vcpu{vp.vcpu.id}: a VT-d wake-up notification lands on CPU{c}, which runs "
                                  "another vCPU (an exit the engine does not place; engine='reference' runs it)")


def _dynamic(eng: Any, s: int) -> bool:
    """A source whose line counts unhandled interrupts (note_interrupt may disable it during the storm)."""
    ln = eng.src_line[s]
    return ln is not None and getattr(ln, "lp", None) is not None and ln.lp.dynamic and not eng.plan.noirqdebug


def _topo(cpus: list[int], edges: dict[int, set]) -> list[int]:
    """CPUs in an order where every CPU whose interrupts kick a vCPU comes before the vCPU's CPU."""
    done: list[int] = []
    left = set(cpus)
    while left:
        ready = sorted(c for c in left if not (edges[c] & left) - {c})
        if not ready:
            raise Unsupported(f"kicks go round between CPUs {sorted(left)}: each one's busy periods depend on the "
                              "others' (engine='reference' runs it)")
        for c in ready:
            done.append(c)
            left.discard(c)
    return done


_WALK_BLOCK = 32   # candidate gaps a run's walk judges at once
_WALK_SCALAR = 16   # runs left when the walk goes on one gap at a time


class GridServer(CpuServer):
    """A CPU that takes one host vector and kicks nobody: its busy periods are runs of back-to-back jobs on a grid
    (the first job of a period lasts h + x, the others h), and the period ends at the first job that finds no
    arrival during its service. Computed with array operations, walking only the gaps that can end a period (a
    gap of at least h), all runs at once — never a Python step per interrupt."""

    grid = True

    def __init__(self, *a: Any, **k: Any):
        super().__init__(*a, **k)
        self.c1 = self.h + self.x
        self.carry: tuple | None = None   # the open busy period: (E0, alone, k_last, last time, start tuple)
        self.buf: list = []                # dispatches from an IRR still to emit: (d, g, s, traise)

    def feed_grid(self, T: np.ndarray, g: np.ndarray, s: Any, frontier: int, masks: bool = True,
                  goff: int = 0) -> tuple:
        """One chunk's arrivals (all raised, in order; ``s`` their sources, or the one source): (taken-now mask,
        merged mask, taken later from the IRR up to the frontier: (instant, g, source, raised) arrays in order, or
        None); with ``masks=False`` the indices of those taken now and the number merged instead of the masks.
        The arrivals' interrupts are ``g + goff``.

        Every arrival is in a busy period that its opener starts (taken now: a job of h + x); the period's first
        job ends at e0, and arrival x > opener falls in slot k = max((x - e0) // h + 1, 0), served by the job
        that ends at e0 + (k + 1) h: the first arrival of a slot waits in the IRR and is taken at e0 + k h, the
        others merge into it. A period ends after the job serving its last arrival's slot."""
        n = T.shape[0]
        h, c1 = self.h, self.c1
        if not n:
            if self.carry is not None and self.bend <= frontier:
                self._close(self.carry[4], self.bend)
                self.carry = None
                self.bend = -1
            if not masks:
                return np.zeros(0, np.int64), 0, self._give(frontier)
            return np.zeros(0, dtype=bool), np.zeros(0, dtype=bool), self._give(frontier)
        if h == 0 and c1 == 0:   # jobs of no time: each taken at once, and the CPU is never busy (no period)
            self.taken += n
            self.jobs += n
            if not masks:
                return np.arange(n), 0, self._give(frontier)
            return np.ones(n, dtype=bool), np.zeros(n, dtype=bool), self._give(frontier)
        vx = 1 if self.carry is not None else 0
        if vx:
            x = np.empty(n + 1, dtype=np.int64)
            x[1:] = T
            E0c, alone_c, klast_c, tlast_c, start_c = self.carry
            x[0] = tlast_c
        else:
            x = T
        m = x.shape[0]
        op = np.zeros(m, dtype=bool)      # busy-period openers
        # (h >= 1 here: host_irq_ns 0 under a running vCPU is Unsupported)
        gap = np.diff(x)
        cand = np.flatnonzero(gap >= h)    # the gaps that can end a period
        hc = gap[cand] >= c1 + h           # ... those that certainly do: the CPU is free by then (heads)
        hidx = cand[hc] + 1
        if not vx:
            hidx = np.concatenate(([0], hidx))
        cand = cand[~hc]
        del gap
        op[hidx] = True
        # the walk over the other candidates, run by run (a run: from a head, or the carried period, to the
        # next head), all runs at once: the first candidate gap that ends its run's current period opens one
        rstart = np.concatenate(([0], hidx)) if vx else hidx
        nrun = rstart.size
        rE0 = x[rstart] + c1
        rop = rstart.copy()
        if vx:
            rE0[0] = E0c
            rop[0] = 0 if alone_c else -1
        if cand.size:
            rid = np.searchsorted(rstart, cand, side="right") - 1   # cand is sorted: so is rid
            first = np.searchsorted(rid, np.arange(nrun))
            cnt = np.searchsorted(rid, np.arange(nrun), side="right") - first
            act = np.flatnonzero(cnt > 0)
            rr = np.zeros(nrun, np.int64)     # each run's next candidate (ordinal in the run)
            ar = np.arange(_WALK_BLOCK)
            newop = []
            while act.size:
                # the run's next _WALK_BLOCK candidates, all judged against its current period; the first
                # that ends it opens the next period, and the walk goes on after it
                ca = cnt[act][:, None]
                pos = rr[act][:, None] + ar
                valid = pos < ca
                ci = cand[first[act][:, None] + np.minimum(pos, ca - 1)]
                xi, xn = x[ci], x[ci + 1]
                e0 = rE0[act][:, None]
                se = np.where(xi < e0, e0, e0 + ((xi - e0) // h + 1) * h)
                ends = (xn >= se + np.where(rop[act][:, None] == ci, 0, h)) & valid
                hit = ends.any(axis=1)
                if hit.any():
                    j = np.argmax(ends[hit], axis=1)
                    a2 = act[hit]
                    nx = ci[hit][np.arange(a2.size), j] + 1
                    rop[a2] = nx
                    rE0[a2] = x[nx] + c1
                    newop.append(nx)
                    rr[a2] += j + 1
                rr[act[~hit]] += _WALK_BLOCK
                act = act[rr[act] < cnt[act]]
                if 0 < act.size <= _WALK_SCALAR:   # the last few long runs: a plain walk costs less than rounds
                    newop.append(self._walk_tail(act, x, cand, first, cnt, rr, rE0, rop))
                    break
            if newop:
                op[np.concatenate(newop)] = True
        carried = bool(vx) and not op[0]          # the first arrivals continue the carried period
        starts = np.flatnonzero(op)
        if carried:
            starts = np.concatenate(([0], starts))
        E0p = x[starts] + c1
        if carried:
            E0p[0] = E0c
        nst = starts.size
        lens = np.empty(nst, dtype=np.int64)
        lens[:-1] = starts[1:] - starts[:-1]
        lens[-1] = m - starts[-1]
        hh = max(h, 1)
        base = np.repeat(E0p - hh, lens)           # per arrival: its period's e0 - h
        k = np.subtract(x, base)                   # the slot: (x - e0) // h + 1, 0 before e0 (x - e0 >= -c1)
        np.floor_divide(k, hh, out=k)
        np.maximum(k, 0, out=k)
        k[starts] = -1                                   # an opener is in service, not in a slot
        if carried:
            k[0] = -1 if alone_c else klast_c
        firstk = np.empty(m, dtype=bool)                 # the first arrival of its slot: it waits in the IRR
        firstk[0] = False                                # an opener, or the carried one (counted already)
        np.not_equal(k[1:], k[:-1], out=firstk[1:])
        firstk[starts] = False
        sl = slice(vx, m)
        now = op[sl]
        li = np.flatnonzero(firstk[sl])
        merged_m = ~(op | firstk)[sl] if masks else None
        del firstk
        nl = int(li.size)
        if nl:   # dispatches from the IRR: the first of slot k is taken at e0 + k h
            lv = li + vx
            d_irr = base[lv]
            d_irr += hh
            d_irr += k[lv] * h
        del base
        # busy periods: each ends after the job that serves its last arrival's slot
        last = np.empty(nst, dtype=np.int64)
        last[:-1] = starts[1:] - 1
        last[-1] = m - 1
        kl = k[last]
        alone_l = kl < 0
        end = np.where(alone_l, E0p, E0p + kl * h + h)
        # the counters
        nn = int(np.count_nonzero(now))
        self.taken += nn + nl
        self.jobs += nn + nl
        self.waited += nl
        self.merged += n - nn - nl
        # dispatches from the IRR, to emit in key order
        if nl:
            self.buf.append((d_irr, g[li] + goff, s[li] if np.ndim(s) else _same(s, nl), T[li]))
        # finished periods, and the one still open: their starts (time, class, sub)
        ps_t = x[starts]
        ps_c = np.full(nst, K_RAISE, np.int64)
        ps_s = g[np.maximum(starts - vx, 0)] + goff
        if carried:
            ps_t[0], ps_c[0], ps_s[0] = start_c
        nfin = nst if (end[-1] <= frontier or frontier >= INF) else nst - 1
        if nfin:
            self._close_many(ps_t[:nfin], ps_c[:nfin], ps_s[:nfin], end[:nfin])
        if nfin == nst:
            self.carry = None
            self.bend = -1
        else:
            st = (int(ps_t[-1]), int(ps_c[-1]), int(ps_s[-1]))
            self.carry = (int(E0p[-1]), bool(alone_l[-1]), int(kl[-1]), int(x[-1]), st)
            self.bstart, self.bcls, self.bsub = st
            self.bend = int(end[-1])
        if not masks:
            return np.flatnonzero(now), n - nn - nl, self._give(frontier)
        return now, merged_m, self._give(frontier)

    def _walk_tail(self, act: np.ndarray, x: np.ndarray, cand: np.ndarray, first: np.ndarray, cnt: np.ndarray,
                   rr: np.ndarray, rE0: np.ndarray, rop: np.ndarray) -> np.ndarray:
        """The rest of the walk for a few runs, one candidate gap at a time (the same judgement as the rounds):
        the arrivals after the gaps that end a period (openers)."""
        h, c1 = self.h, self.c1
        out = []
        for a in act.tolist():
            cs = cand[int(first[a]) + int(rr[a]):int(first[a]) + int(cnt[a])]
            e0, op = int(rE0[a]), int(rop[a])
            for ci, xi, xn in zip(cs.tolist(), x[cs].tolist(), x[cs + 1].tolist()):
                se = e0 if xi < e0 else e0 + ((xi - e0) // h + 1) * h
                if xn >= (se if op == ci else se + h):
                    op = ci + 1
                    e0 = xn + c1
                    out.append(op)
        return np.array(out, dtype=np.int64)

    def _give(self, frontier: int) -> tuple | None:
        """What the IRRs give up to the frontier (in order: a later buffer entry never precedes an earlier one)."""
        later = None
        if self.buf:
            if len(self.buf) == 1:
                d, gg, ss, tt = self.buf[0]
            else:
                d, gg, ss, tt = (np.concatenate([b[i] for b in self.buf]) for i in range(4))
            j = int(np.searchsorted(d, frontier, side="right")) if frontier < INF else d.size
            if j:
                later = (d[:j], gg[:j], ss[:j], tt[:j])
            # (copies: a view of the tail would keep every dispatch of the chunk alive until the next one)
            self.buf = [(d[j:].copy(), gg[j:].copy(), ss[j:].copy(), tt[j:].copy())] if j < d.size else []
        return later

    def _close(self, start: tuple, end: int) -> None:
        self.busy.append((start[0], start[1], start[2], end))
        self.nbusy += 1
        self.busy_ns += end - start[0]
        self.last_end = end

    def _close_many(self, t: np.ndarray, c: np.ndarray, sub: np.ndarray, end: np.ndarray) -> None:
        if self.busy:   # keep them in order
            self._arrays()
        self.busy_arr.append((8 * t + c, sub.astype(np.int64, copy=False), end.astype(np.int64, copy=True)))
        self.nbusy += int(t.size)
        self.busy_ns += int((end - t).sum())
        self.last_end = int(end[-1])
