"""Host lines in the storm engine: note_interrupt's window, the poller, stuck lines, irq threads, INTx round trips.

Models kernel/irq/spurious.c (``note_interrupt``: the 100,000-interrupt window, > 99,900 unhandled, HZ/10
ageing, SPURIOUS_DEFERRED for interrupts that only woke threads; ``poll_spurious_irqs`` every HZ/10 and
``try_one_irq``), kernel/irq/chip.c (a disabled line masks at the next interrupt and holds one pending;
``handle_fasteoi_irq``'s EOI, after which the IO-APIC sends a still-asserted level line again), kernel/irq/
manage.c (``irq_thread_fn``, ``irq_finalize_oneshot``: an IRQF_ONESHOT line masked until its threads ran),
lib/ratelimit.c (``___ratelimit`` of the "No irq handler" line), drivers/pci/pci.c (the INTx Status bit),
drivers/vfio/pci/vfio_pci_intrs.c and virqfd.c (automask; unmask in the guest's EOI exit), and the resampling
irqfd's round trip through the IOAPIC's remote IRR to a dedicated vCPU (virt/kvm/eventfd.c,
arch/x86/kvm/ioapic.c, lapic.c). Simplification: one Python step per poll, per batch of a stuck line's
re-deliveries and per round trip of a line that is down, never per interrupt (the re-deliveries are arithmetic
progressions, the round trips on an up line and the threads' windows are window chains); what falls between
two such instants is classified with array operations.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..ledger import Outcome
from ..sched import NSEC_PER_JIFFY
from ..spurious import (
    AGEING_JIFFIES, POLL_SPURIOUS_IRQ_INTERVAL, SPURIOUS_DEFERRED, SPURIOUS_THRESHOLD, SPURIOUS_WINDOW,
)
from ..uapi import IRQS_PENDING
from .compile import POLL_NS, Unsupported
from .windows import chain_starts, greedy_window_starts

__all__ = ["spurious_scan", "ratelimit_scan", "PollSchedule", "MsiLine", "IntxLine"]

INF = np.iinfo(np.int64).max
O = Outcome
#: re-deliveries of a stuck line processed per step (more than two note_interrupt windows)
REFIRE_BATCH = 1 << 18
#: the CPU stage's classes (storm/cpus.py): raised and taken at once, or sent again by the pin at an EOI
C_RAISE, C_EOI = 5, 1
# what became of an assertion on a line whose CPU was busy (IntxLine._walk)
F_NONE, F_COAL, F_DIS, F_MASKED, F_DISP, F_PIN = range(6)


def spurious_scan(state: list, handled: np.ndarray, jiffies: np.ndarray) -> int:
    """note_interrupt over dispatched interrupts in order. ``state`` = [irq_count, irqs_unhandled,
    last_unhandled] is updated in place; returns the position of the interrupt that disables the line
    (the state is then the one right after it), or -1."""
    m = handled.shape[0]
    if not m:
        return -1
    cnt, unh, last = state
    u = np.flatnonzero(~handled)            # positions of IRQ_NONE interrupts
    ju = jiffies[u]
    prev = np.empty_like(ju)
    if ju.size:
        prev[0] = last
        prev[1:] = ju[:-1]
    reset = ju > prev + AGEING_JIFFIES       # irqs_unhandled goes back to 1 here
    lastreset = np.maximum.accumulate(np.where(reset, np.arange(u.size), -1)) if u.size else u
    pos = 0
    while pos < m:
        k0 = int(np.searchsorted(u, pos))    # first IRQ_NONE at or after pos
        if unh == 0:
            if k0 >= u.size:
                break                        # nothing is counted until an unhandled one comes
            a, cnt, base = int(u[k0]), 0, 0
        else:
            a, base = pos, unh
        c = a + (SPURIOUS_WINDOW - cnt) - 1  # the interrupt that closes the window
        end = min(c, m - 1)
        kk = int(np.searchsorted(u, end, side="right")) - 1  # last IRQ_NONE at or before end
        if kk >= k0:
            r = int(lastreset[kk])
            unh = kk - r + 1 if r >= k0 else base + kk - k0 + 1
            last = int(ju[kk])
        else:
            unh = base
        if c >= m:
            cnt += m - a
            break
        dis = unh > SPURIOUS_THRESHOLD
        cnt, unh = 0, 0
        pos = c + 1
        if dis:
            state[:] = [cnt, unh, last]
            return c
    state[:] = [cnt, unh, last]
    return -1


def ratelimit_scan(rs: Any, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """lib/ratelimit.c ``___ratelimit`` over calls at jiffies ``j`` (sorted), from the state ``rs``
    (genirq.RatelimitState, updated in place). Returns (printed: bool per call, report: the "callbacks
    suppressed" count printed just before each call, 0 for none). A new interval starts at the first call with
    jiffies > begin + interval (a greedy window chain); each prints its first ``burst`` calls."""
    n = j.shape[0]
    ok = np.zeros(n, dtype=bool)
    report = np.zeros(n, dtype=np.int64)
    if not n:
        return ok, report
    if not rs.initialized:
        rs.initialized, rs.begin, rs.n_left = True, int(j[0]), rs.burst
    k0 = int(np.searchsorted(j, rs.begin + rs.interval, side="right"))   # still in the current interval
    ok[:min(k0, max(rs.n_left, 0))] = True
    missed = rs.missed + max(0, k0 - max(rs.n_left, 0))
    if k0 == n:
        rs.n_left, rs.missed = rs.n_left - min(k0, max(rs.n_left, 0)), missed
        return ok, report
    starts = k0 + np.flatnonzero(chain_starts(j[k0:], rs.interval + 1))
    sizes = np.diff(np.r_[starts, n])
    first = np.repeat(starts, sizes)
    ok[k0:] = (np.arange(k0, n) - first) < rs.burst
    lost = np.maximum(sizes - rs.burst, 0)
    report[starts] = np.r_[missed, lost[:-1]]
    rs.begin = int(j[starts[-1]])
    rs.n_left = rs.burst - min(int(sizes[-1]), rs.burst)
    rs.missed = int(lost[-1])
    return ok, report


class PollSchedule:
    """poll_spurious_irqs' expiry times: armed (or re-armed) at each spurious disable, then every HZ/10."""

    def __init__(self, first: int | None):
        self.arms: list[tuple[int, int]] = []   # (time armed, first expiry)
        self.first = first

    def arm(self, t: int) -> None:
        self.arms.append((t, (t // NSEC_PER_JIFFY + POLL_SPURIOUS_IRQ_INTERVAL) * NSEC_PER_JIFFY))
        self.arms.sort()

    def polls(self, a: int, b: int) -> np.ndarray:
        """Poll instants P with a <= P < b. A poll due at a disable's instant runs before the disable."""
        segs = []
        cur = self.first
        for t_arm, p0 in self.arms + [(INF - 1, None)]:
            if cur is not None:
                hi = min(b, t_arm + 1)
                if hi > a and cur < hi:
                    k0 = max(0, -(-(a - cur) // POLL_NS))
                    k1 = -(-(hi - cur) // POLL_NS)
                    if k1 > k0:
                        segs.append(cur + POLL_NS * np.arange(k0, k1, dtype=np.int64))
            cur = p0
        return np.concatenate(segs) if segs else np.zeros(0, np.int64)

    def next_after(self, f: int) -> int | None:
        """The first poll strictly after ``f``: where the timer stands once the run is over."""
        cur = self.arms[-1][1] if self.arms else self.first
        if cur is None:
            return None
        if cur > f:
            return cur
        return cur + POLL_NS * ((f - cur) // POLL_NS + 1)


# a vfio device's INTx state: IDLE (Status clear, unmasked), HELD (Status set while the host line is down,
# waiting for a poll), BUSY (Status set and masked: its round trip is in flight until the guest's EOI)
IDLE, HELD, BUSY = range(3)


class VfioIntx:
    """vfio-pci INTx of one device, one round trip at a time: vfio_intx_handler masks (INTx Disable) and
    signals the trigger; the resampling irqfd's work raises the IOAPIC level pin after irqfd_work_ns; the
    dedicated vCPU takes the vector at its entry; guest_handler_ns later the guest's handler clears the
    device's Status and writes EOI, and KVM finishes in that EOI exit, at that instant: the resampler lowers
    the pin and signals the resamplefd, virqfd_wakeup calls vfio_pci_intx_unmask_handler, which finds Status
    clear and unmasks, and remote IRR is cleared. Status is always clear there (the guest has just cleared
    it), so vfio's deferred re-send (virqfd_inject) never runs in a storm; an assertion while BUSY merges
    into the Status bit (``masked``)."""

    def __init__(self, eng: Any, dp: Any, j: int):
        self.eng, self.j = eng, j
        self.p = p = dp.vfio
        t = eng.timing
        self.W, self.G = t.irqfd_work_ns, t.guest_handler_ns
        self.delta = p.vcpu.delta
        self.host_cost = t.host_irq_ns
        self.state = IDLE
        self.tok: list | None = None    # [gidx, t, via_host] of the interrupt the status bit holds (via_host
        #                                 is set later if the first interrupt at a disabled line is this one)
        self.c = INF                    # the guest's EOI (status cleared, resample, unmask) of the round trip
        self.cycles = 0                 # trigger signals: irqfd wake-ups and inject work items
        self.via_handler = 0            # round trips vfio_intx_handler started (host interrupt or poll)
        self.from_irq = 0               # of those, started in hard-IRQ context (the inject work is queued on the
        #                                 line's CPU; a poll runs in no CPU's hard IRQ)
        self.eois = 0                   # guest EOIs done (each one resampler ack and one unmask)
        self.last = 0                   # the last instant a timer of this device ran
        self.dry = False
        ev = dp.dev.intx_status_event   # held in the Status bit since before the storm (the line is down)
        if ev is not None:
            self.state, self.tok = HELD, [eng.sink.external(ev), ev.t, ev.via_host]

    def snapshot(self) -> tuple:
        return (self.state, self.tok, self.c, self.cycles, self.via_handler, self.eois, self.last)

    def restore(self, s: tuple) -> None:
        (self.state, self.tok, self.c, self.cycles, self.via_handler, self.eois, self.last) = s

    def start(self, s: int, tok: list, via_handler: bool) -> None:
        """The trigger is signalled at ``s`` carrying ``tok``: irqfd_wakeup queues the inject work."""
        self.cycles += 1
        self.via_handler += via_handler
        entry = s + self.W + self.delta
        if not self.dry:
            gidx, t, via_host = tok
            self.eng.sink.settle1(gidx, O.INJECTED, entry - t + (self.host_cost if via_host else 0), t_ack=entry)
        self.tok = tok
        self.state, self.c = BUSY, entry + self.G
        self.last = max(self.last, entry)

    def due(self) -> int:
        return self.c if self.state == BUSY else INF

    def timers(self, limit: int, inclusive: bool = True) -> None:
        """Run this device's timer (the guest's EOI) if due before ``limit`` (or at it, if ``inclusive``)."""
        if self.state == BUSY and (self.c < limit or (inclusive and self.c == limit)):
            self.last = max(self.last, self.c)
            self.state, self.tok = IDLE, None
            self.eois += 1

    def events(self, tv: np.ndarray, gv: np.ndarray, up: bool, out: list) -> list:
        """This device's assertions tv (all while the line is up, or all while it is down with no poll in
        between). Appends (lo, hi, outcome) ranges to ``out``; returns the positions dispatched (up) or the
        position that went HELD (down)."""
        if up and self.state != HELD and tv.shape[0] > 1:
            return self._events_up(tv, gv)
        hits = []
        i, hi = 0, tv.shape[0]
        sink = self.eng.sink
        while i < hi:
            ti = int(tv[i])
            self.timers(ti, True)
            st = self.state
            if st == IDLE:
                tok = [int(gv[i]), ti, up]
                hits.append(i)
                if up:  # the line is up: vfio_intx_handler masks and signals now
                    self.start(ti, tok, True)
                    if not self.dry:
                        self.from_irq += 1
                else:   # held in the Status bit until a poll runs the handler
                    self.state, self.tok = HELD, tok
                    if not self.dry:
                        sink.pending(tok[0])
                i += 1
            elif st == HELD:  # merged into the held one (INTx Disable is clear)
                out.append((i, hi, O.DISABLED))
                i = hi
            else:  # BUSY: status and INTx Disable both set until the EOI: merged, masked
                j = min(max(int(np.searchsorted(tv, self.c, side="left")), i + 1), hi)
                out.append((i, j, O.MASKED))
                i = j
        return hits

    def _events_up(self, tv: np.ndarray, gv: np.ndarray) -> np.ndarray:
        """``events`` while the line is up, vectorized: the round trips are a greedy chain of windows
        [start, start + irqfd_work + delivery + guest handler), each closed by its EOI (which runs before an
        assertion at that instant); every other assertion merges into the Status bit (masked). Settles them
        itself (nothing in ``out``) unless dry; returns the window starts."""
        n = tv.shape[0]
        k0 = 0
        ran_c = 0
        if self.state == BUSY:
            k0 = int(np.searchsorted(tv, self.c, side="left"))
            if k0 == n:
                if not self.dry:
                    self.eng.sink.settle(gv, O.MASKED)
                return np.zeros(0, np.int64)
            ran_c = self.c               # its EOI runs before the assertion at tv[k0]
            self.eois += 1
        T = self.W + self.delta + self.G
        st = k0 + np.flatnonzero(chain_starts(tv[k0:], T))
        ns = st.size
        if not self.dry:
            sink = self.eng.sink
            m = np.ones(n, dtype=bool)
            m[st] = False
            sink.settle(gv[m], O.MASKED)
            sink.settle(gv[st], O.INJECTED, self.W + self.delta + self.host_cost)
        self.cycles += ns
        self.via_handler += ns
        if not self.dry:
            self.from_irq += ns
        self.eois += ns - 1              # every window but the last has closed: its EOI ran
        ls = int(tv[st[-1]])
        self.last = max(self.last, ran_c, int(tv[st[-2]]) + T if ns > 1 else 0, ls + self.W + self.delta)
        self.tok = [int(gv[st[-1]]), ls, True]
        self.state, self.c = BUSY, ls + T
        return st

    def poll(self, P: int) -> bool:
        """try_one_irq runs vfio_intx_handler: a held assertion is masked and signalled (True)."""
        if self.state != HELD:
            return False
        tok = self.tok
        self.start(P, tok, True)
        return True


class IntxLine:
    """An IO-APIC line with INTx devices and glitches: genirq dispatch, note_interrupt, the poller."""

    def __init__(self, eng: Any, lp: Any):
        self.eng = eng
        self.lp = lp
        self.desc = d = lp.desc
        self.up = lp.up
        self.masked = d.masked
        self.pending_bit = bool(d.istate & IRQS_PENDING)  # IRQS_PENDING as the storm leaves it
        self.flow_ran = False            # a flow handler ran (it clears IRQS_REPLAY and IRQS_WAITING)
        self.spur = [d.irq_count, d.irqs_unhandled, d.last_unhandled]
        self.spurious_disabled = lp.spurious_disabled
        self.slot: list | None = None    # the held glitch [gidx, t]
        if d.pending_event is not None:  # held since before the storm
            self.slot = [eng.sink.external(d.pending_event), d.pending_event.t]
        self.kstat = 0
        self.nact = len(lp.actions)
        self.act_handled = [0] * self.nact
        self.act_none = [0] * self.nact
        self.vfio_intx_none = 0
        self.host_devs = []              # (device index, action index) of host-driver devices
        self.dstate: list[Any] = []      # per device: None, ["pending", gidx, t] or, for an orphan whose
        #                                  status stays set, ["settled", gidx, t, outcome]
        self.vfio: VfioIntx | None = None
        self.vfio_act = -1
        for j, dp in enumerate(lp.devices):
            if dp.kind == "vfio":
                self.vfio = VfioIntx(eng, dp, j)
                self.vfio_act = self._act(dp.action)
            elif dp.kind == "host":
                self.host_devs.append((j, self._act(dp.action)))
            ev = dp.dev.intx_status_event
            if ev is None or dp.kind == "vfio":
                self.dstate.append(None)
            elif ev.outcome == O.PENDING:
                self.dstate.append(["pending", eng.sink.external(ev), ev.t])
            else:
                self.dstate.append(["settled", eng.sink.external(ev), ev.t, ev.outcome])
        self.t = self.g = self.kind = None
        self.lo = 0
        # a level line a device keeps asserting (an orphan's INTx) fires again host_irq_ns after every EOI
        self.H = eng.timing.host_irq_ns
        self.chain_next: int | None = None   # the next re-delivery while the line is up
        self.chain_key = 0                   # the storm interrupt that started the chain
        # re-deliveries of two lines at one instant: each is sent at its CPU's EOI, and the CPUs' ends of hard IRQ
        # at an instant go in CPU order (irqlab/cpu.py: Cpu.timer, early=cpu)
        self.tie = lp.desc.cpu
        self.refire_at: int | None = None    # the re-delivery pending when the line was disabled
        self.refire_last = 0                 # the last instant a re-delivery timer was due
        self.refires = 0                     # re-deliveries raised (new interrupts)
        self.refires_up = 0                  # ... dispatched, not yet counted in the chain's runs
        self.cpu_arr: list = []          # (t, g, class) of the interrupts its CPU takes (the CPU stage checks them)
        self.refires_handled = 0         # re-deliveries a neighbour's held INTx made handled (of refires_up)
        # its CPU (irqlab/cpu.py) when that CPU takes nothing else: the line's own view of it
        self._own: bool | None = None
        self.F = -1                      # the CPU is in hard-IRQ context (this line's vector in service) until F
        self.held: list = []             # (device, gidx, t) whose INTx waits at the pin for the EOI at F
        self.claims: dict = {}           # while a stuck line's re-deliveries keep the CPU busy: EOI instant ->
        #                                  [(device, gidx, t)] waiting at the pin for it

    def _act(self, action: Any) -> int:
        return next(i for i, (a, _) in enumerate(self.lp.actions) if a is action)

    def _counts(self, n: int, handled: list[int]) -> None:
        """n runs of the action chain; handled[i]: how many of them action i handled."""
        for i in range(self.nact):
            self.act_handled[i] += handled[i]
            self.act_none[i] += n - handled[i]
        if self.vfio is not None:
            self.vfio_intx_none += n - handled[self.vfio_act]

    # ------------------------------------------------------------------ phase 1: the line is up
    def feed(self, t: np.ndarray, g: np.ndarray, kind: np.ndarray, bound: int) -> None:
        """This chunk's events (``kind``: -1 a glitch, else the device's index on the line). Processes them
        while the line is up, and the re-deliveries of a stuck line up to ``bound`` (inclusive: they are
        timers, before the next chunk's interrupts at that instant); a spurious disable stops there and is
        reported to the engine."""
        self.t, self.g, self.kind, self.lo = t, g, kind, 0
        if not self.up or (not t.size and self.chain_next is None and not self.held and not self.claims):
            return
        sink = self.eng.sink
        v = self.vfio
        vsel = np.flatnonzero(kind == v.j) if v is not None else None
        dispatched = kind < 0
        handled = np.zeros(t.size, dtype=bool)
        if v is not None and vsel.size:  # which of its assertions reach the line (a dry run)
            snap = v.snapshot()
            v.dry = True
            hit = vsel[np.asarray(v.events(t[vsel], g[vsel], True, []), dtype=np.int64)]
            v.dry = False
            v.restore(snap)
            dispatched[hit] = True
            handled[hit] = True
        first_orphan = {}
        for j, dp in enumerate(self.lp.devices):
            if dp.kind == "vfio":
                continue
            sel = np.flatnonzero(kind == j)
            if not sel.size:
                continue
            if dp.kind == "host":
                dispatched[sel] = True
                handled[sel] = True
            elif self.dstate[j] is None:  # an orphan: its first assertion reaches the line, then it merges
                dispatched[sel[0]] = True
                first_orphan[j] = int(sel[0])
        dpos = np.flatnonzero(dispatched)
        if self.own_cpu() and self._contended(t, dpos, first_orphan):
            self._feed_contended(t, g, kind, bound)
            return
        hd = handled[dpos]
        cut, dis_at = self._scan_up(t, dpos, hd, first_orphan, bound)
        kept = dpos[dpos < cut]
        if kept.size or self.refires_up:
            self.pending_bit = False   # handle_irq_event clears IRQS_PENDING
            self.flow_ran = True
            self.cpu_arr.append((t[kept], g[kept], C_RAISE))
            if kept.size:
                self.F = max(self.F, int(t[kept[-1]]) + self.H)
        # what happened up to the cut
        kc = kind[:cut]
        hcount = [0] * self.nact
        self.kstat += kept.size + self.refires_up
        for j, a in self.host_devs:
            sel = np.flatnonzero(kc == j)
            sink.settle(g[sel], O.HANDLED_HOST)
            hcount[a] += sel.size
        sink.settle(g[np.flatnonzero(kc < 0)], O.UNHANDLED)
        for j, dp in enumerate(self.lp.devices):
            if dp.kind != "orphan":
                continue
            sel = np.flatnonzero(kc == j)
            if not sel.size:
                continue
            if j in first_orphan and first_orphan[j] < cut:
                sink.settle(g[sel[:1]], O.UNHANDLED)
                sink.settle(g[sel[1:]], O.DISABLED)
                self.dstate[j] = ["settled", int(g[sel[0]]), int(t[sel[0]]), O.UNHANDLED]
            else:
                sink.settle(g[sel], O.DISABLED)
        if v is not None and vsel.size:
            vs = vsel[vsel < cut]
            ranges: list = []
            hit = v.events(t[vs], g[vs], True, ranges)
            for lo, hi, o in ranges:
                sink.settle(g[vs[lo:hi]], o)
            hcount[self.vfio_act] += len(hit)
        self._counts(int(kept.size) + self.refires_up, hcount)
        sink.refire_counts[O.UNHANDLED] += self.refires_up
        self.refires_up = 0
        self.lo = cut
        if dis_at is not None:
            self.up = False
            self.spurious_disabled = True
            self.eng.disable(self.desc, *dis_at)

    def _scan_up(self, t, dpos, hd, first_orphan, bound):
        """note_interrupt over the interrupts dispatched while the line is up: the storm's (positions ``dpos``,
        handled ``hd``) and, once an orphan's first assertion got through, the IO-APIC's re-deliveries every
        ``host_irq_ns`` (a re-delivery goes before a storm interrupt at the same instant), in batches. Returns
        (cut: the storm's events before it were dispatched while up, the disable's (time, key, handled) or
        None); the re-deliveries up to the disable (or up to ``bound``) are raised."""
        eng, H, spur = self.eng, self.H, self.spur
        scan = not eng.plan.noirqdebug
        g = self.g
        td = t[dpos]
        k = 0
        start = min((int(dpos.searchsorted(p)) for p in first_orphan.values()), default=None)
        batches = 0
        while True:
            batches += 1
            if bound >= INF - 1 and batches > 64:   # the drain: nothing but re-deliveries, all unhandled
                raise AssertionError(f"irq {self.desc.irq}: a stuck line note_interrupt never disables")
            r0 = self.chain_next
            if r0 is None or r0 > bound:
                # no re-delivery before the bound: the storm's dispatches up to the chain's start (if one starts)
                upto = dpos.size if (start is None or r0 is not None) else start + 1
                c = spurious_scan(spur, hd[k:upto], td[k:upto] // NSEC_PER_JIFFY) if scan and upto > k else -1
                if c >= 0:
                    i = int(dpos[k + c])
                    if r0 is not None:          # the pending re-delivery comes after the disable
                        self.chain_next, self.refire_at = None, r0
                    return i + 1, (int(t[i]), int(g[i]), bool(hd[k + c]))
                k = upto
                if r0 is not None or start is None:
                    return t.size, None
                i = int(dpos[start])
                self.chain_next = int(t[i]) + H
                self.chain_key = int(g[i])
                self.refire_last = max(self.refire_last, self.chain_next)
                start = None
                continue
            nr = min((bound - r0) // H + 1, REFIRE_BATCH)
            R = r0 + H * np.arange(nr, dtype=np.int64)
            r_end = int(R[-1])
            kk = dpos.size if r_end + H > bound else int(np.searchsorted(td, r_end, side="right"))
            tm = td[k:kk]
            pos_r = np.searchsorted(tm, R, side="left") + np.arange(nr)   # each re-delivery's merged place
            m = nr + tm.size
            is_r = np.zeros(m, dtype=bool)
            is_r[pos_r] = True
            times = np.empty(m, dtype=np.int64)
            times[pos_r] = R
            times[~is_r] = tm
            hm = np.zeros(m, dtype=bool)
            hm[~is_r] = hd[k:kk]
            c = spurious_scan(spur, hm, times // NSEC_PER_JIFFY) if scan else -1
            if c < 0:
                self._raise_refires(R)
                k = kk
                self.chain_next = r_end + H
                self.refire_last = max(self.refire_last, self.chain_next)
                continue
            nrc = int(np.count_nonzero(is_r[:c + 1]))        # re-deliveries up to the disable
            self._raise_refires(R[:nrc])
            tc = int(times[c])
            self.chain_next = None
            self.refire_at = r0 + H * ((tc - r0) // H + 1)    # the first re-delivery after the disable
            self.refire_last = max(self.refire_last, self.refire_at)
            if is_r[c]:
                return int(np.searchsorted(t, tc, side="left")), (tc, eng.key_before(tc), False, self.tie)
            j = k + (c - nrc)
            i = int(dpos[j])
            return i + 1, (tc, int(g[i]), bool(hd[j]))

    def _raise_refires(self, R: np.ndarray) -> None:
        """The IO-APIC sent the vector again at the instants R: new interrupts, dispatched (unhandled)."""
        if R.size:
            self.cpu_arr.append((R, np.full(R.size, -1, np.int64), C_EOI))   # its CPU takes each at the last one's end
            self.eng.refire_segment(int(R[0]), int(R.size), self.tie)
            self.refires += int(R.size)
            self.refires_up += int(R.size)
            self.F = max(self.F, int(R[-1]) + self.H)

    # ------------------------------------------------------------------ its CPU in hard-IRQ context with this line
    def own_cpu(self) -> bool:
        """The line's CPU takes nothing but this line's vector (no other source's vector, no reschedule IPI, no
        running vCPU of its own): the line then computes that CPU itself. A level pin sends nothing while its
        vector is outstanding (the IO-APIC's remote IRR, until the EOI at the end of the hard IRQ): what arrives
        meanwhile is a glitch that is gone, or a device's INTx that waits at the pin and is sent at the EOI."""
        if self._own is None:
            eng = self.eng
            cs = eng.cpus
            c = self.desc.cpu
            ok = cs is not None and c in cs.servers and self.H > 0
            if ok:
                mine = set(eng.line_srcs[self.desc.irq])
                ok = (cs.servers[c].x == 0 and c not in cs.kicked and not cs.inline[c]
                      and all(s in mine for s in np.flatnonzero(cs.src_cpu == c).tolist()))
            self._own = bool(ok)
        return self._own

    def _contended(self, t: np.ndarray, dpos: np.ndarray, first_orphan: dict) -> bool:
        """Does something of this chunk reach the pin while the CPU runs the line's last interrupt?"""
        if self.held or self.claims:
            return True
        if self.chain_next is not None:      # the re-deliveries keep the CPU busy: everything arrives then
            return t.size > 0
        if not dpos.size:
            return False
        td = t[dpos]
        if int(td[0]) < self.F or (td.size > 1 and int(np.diff(td).min()) < self.H):
            return True
        if first_orphan:
            return bool((dpos > min(first_orphan.values())).any())
        return False

    def _vstart(self, s: int, gg: int, tt: int) -> None:
        """vfio_intx_handler runs for the card's INTx (raised at tt) in the hard IRQ the CPU takes at s."""
        v = self.vfio
        v.start(s, [gg, tt, True], True)
        if not v.dry:
            v.from_irq += 1

    def _walk(self, t, g, kind, cut: int, t_lim: int, commit: bool) -> dict:
        """The CPU's view of assertions [0, cut) while the line is up and of the EOIs up to ``t_lim``: the
        interrupts it takes, in order (a glitch or a device's INTx when the CPU is free; the INTx that waited at
        the pin, at the EOI; a stuck line's re-deliveries, one per EOI), what became of every assertion. Pure
        unless ``commit`` (the vfio card's state machine runs dry then)."""
        H = self.H
        devs = self.lp.devices
        sink = self.eng.sink
        F = self.F
        chain = self.chain_next
        chain0 = chain
        chain_key = self.chain_key
        held = list(self.held)
        claims = {r: list(m) for r, m in self.claims.items()}
        pin = {m[0] for m in held} | {m[0] for ms in claims.values() for m in ms}
        j_o = next((j for j, dp in enumerate(devs) if dp.kind == "orphan" and self.dstate[j] is not None), None)
        orph_first: dict = {}
        fate = np.zeros(cut, np.int8)
        fT: list = []
        fC: list = []
        fH: list = []
        fG: list = []
        members: dict = {}          # free dispatch index -> its members (a dispatch at an EOI)
        done: dict = {}             # grid instant -> members (resolved claims)
        nfree = 0

        def add(T, C, Hd, G):
            nonlocal nfree
            fT.append(np.asarray(T, np.int64))
            fC.append(np.asarray(C, np.int64))
            fH.append(np.asarray(Hd, bool))
            fG.append(np.asarray(G, np.int64))
            nfree += len(fT[-1])

        def serve(ms: list, s: int) -> None:
            for j, gg, tt in ms:
                pin.discard(j)
                if devs[j].kind == "vfio":
                    self._vstart(s, gg, tt)
                elif commit:
                    sink.settle1(gg, O.HANDLED_HOST)

        def flush() -> None:
            nonlocal F, held
            ms = sorted(held)                      # asserting_devices order: the first one's INTx is claimed
            add([F], [C_EOI], [True], [ms[0][1]])
            members[nfree - 1] = ms
            serve(ms, F)
            held = []
            F += H

        def resolve(x: int) -> None:
            for r in sorted(claims):
                if r > x:
                    break
                ms = claims.pop(r)
                done[r] = ms
                serve(ms, r)

        dev_at = np.flatnonzero(kind[:cut] >= 0).tolist()
        i = 0
        for p in dev_at + [cut]:
            tl = int(t[p]) if p < cut else t_lim
            if chain is None and held and F <= tl:
                k = i + int(np.searchsorted(t[i:p], F, side="left"))
                fate[i:k] = F_COAL                 # gone: before the EOI the pin sends nothing
                i = k
                flush()
            if p > i:
                if chain is not None:
                    fate[i:p] = F_COAL
                else:
                    tg = t[i:p]
                    lo = int(np.searchsorted(tg, F, side="left"))
                    fate[i:i + lo] = F_COAL
                    if lo < tg.size:
                        rest = tg[lo:]
                        st = np.flatnonzero(greedy_window_starts(rest, H))
                        m = np.full(rest.size, F_COAL, np.int8)
                        m[st] = F_DISP
                        fate[i + lo:p] = m
                        add(rest[st], np.full(st.size, C_RAISE), np.zeros(st.size, bool), g[i + lo + st])
                        F = int(rest[st[-1]]) + H
            if p == cut:
                break
            i = p + 1
            j, tp, gp = int(kind[p]), int(t[p]), int(g[p])
            dp = devs[j]
            if claims:
                resolve(tp)                        # EOIs before an assertion at their instant
            if dp.kind == "vfio":
                v = self.vfio
                v.timers(tp, True)
                if v.state == BUSY:
                    fate[p] = F_MASKED
                    continue
                if v.state == HELD:
                    raise Unsupported(f"irq {self.desc.irq}: the vfio card's INTx is held for a poll while the "
                                      "line is up")
            if j in pin or (dp.kind == "orphan" and (self.dstate[j] is not None or j in orph_first)):
                fate[p] = F_DIS                    # Status.Interrupt already set: merged
                continue
            if chain is not None:
                if dp.kind == "orphan":
                    raise Unsupported(f"irq {self.desc.irq}: a second device nobody claims asserts the stuck line")
                r = chain if tp < chain else chain + H * ((tp - chain) // H + 1)
                claims.setdefault(r, []).append((j, gp, tp))
                pin.add(j)
                fate[p] = F_PIN
                if commit:
                    sink.pending(gp)
            elif tp >= F:
                add([tp], [C_RAISE], [dp.kind != "orphan"], [gp])
                fate[p] = F_DISP
                F = tp + H
                if dp.kind == "vfio":
                    self._vstart(tp, gp, tp)
                elif dp.kind == "orphan":
                    orph_first[j] = (gp, tp)
                    j_o = j
                    chain = chain0 = tp + H
                    chain_key = gp
            else:
                if dp.kind == "orphan":
                    raise Unsupported(f"irq {self.desc.irq}: a device nobody claims asserts INTx at {tp:,} ns while "
                                      "the CPU runs the line's last interrupt (it would wait at the pin)")
                held.append((j, gp, tp))
                pin.add(j)
                fate[p] = F_PIN
                if commit:
                    sink.pending(gp)
        if claims:
            resolve(t_lim)
        cat = (lambda L, dt: np.concatenate(L) if L else np.zeros(0, dt))
        return dict(fate=fate, fT=cat(fT, np.int64), fC=cat(fC, np.int64), fH=cat(fH, bool), fG=cat(fG, np.int64),
                    members=members, done=done, chain=chain, chain0=chain0, chain_key=chain_key, j_o=j_o, F=F,
                    held=held, claims=claims, orph_first=orph_first)

    def _feed_contended(self, t: np.ndarray, g: np.ndarray, kind: np.ndarray, bound: int) -> None:
        """``feed`` when something reaches the pin while the CPU still runs the line's last interrupt: a dry walk
        gives the interrupts the CPU takes; note_interrupt runs over them (the stuck line's re-deliveries in
        batches); the walk runs again up to the disable, if there is one, for real."""
        eng, sink, H = self.eng, self.eng.sink, self.H
        v = self.vfio
        n = t.size
        snap = v.snapshot() if v is not None else None
        if v is not None:
            v.dry = True
        try:
            w = self._walk(t, g, kind, n, bound, False)
        finally:
            if v is not None:
                v.dry = False
                v.restore(snap)
        # note_interrupt: the dispatches before the stuck line's re-deliveries, then one per EOI up to the bound
        scan = not eng.plan.noirqdebug
        J = NSEC_PER_JIFFY
        dis = None
        fT, fH = w["fT"], w["fH"]
        if scan and fT.size:
            c = spurious_scan(self.spur, fH, fT // J)
            if c >= 0:
                dis = ("free", c, int(fT[c]))
        if dis is None and w["chain0"] is not None and w["chain0"] <= bound:
            done = w["done"]
            dt = np.array(sorted(r for r, ms in done.items()), np.int64)
            r0 = w["chain0"]
            batches = 0
            while r0 <= bound:
                batches += 1
                if bound >= INF - 1 and batches > 64:
                    raise AssertionError(f"irq {self.desc.irq}: a stuck line note_interrupt never disables")
                nr = min((bound - r0) // H + 1, REFIRE_BATCH)
                R = r0 + H * np.arange(nr, dtype=np.int64)
                if scan:
                    c = spurious_scan(self.spur, np.isin(R, dt), R // J)
                    if c >= 0:
                        dis = ("grid", c, int(R[c]))
                        break
                r0 = int(R[-1]) + H
        if dis is None:
            cut, t_lim = n, bound
        else:
            d = dis[2]
            t_lim = d
            if dis[0] == "free" and int(w["fC"][dis[1]]) == C_RAISE:
                cut = int(np.searchsorted(g, int(w["fG"][dis[1]]))) + 1
            else:
                cut = int(np.searchsorted(t, d, side="left"))
        w = self._walk(t, g, kind, cut, t_lim, True)
        self._commit(t, g, kind, cut, t_lim, w, dis)

    def _commit(self, t, g, kind, cut: int, t_lim: int, w: dict, dis: Any) -> None:
        eng, sink, H = self.eng, self.eng.sink, self.H
        devs = self.lp.devices
        fate = w["fate"]
        kc = kind[:cut]
        gc = g[:cut]
        sink.settle(gc[fate == F_COAL], O.COALESCED_APIC)
        sink.settle(gc[fate == F_DIS], O.DISABLED)
        sink.settle(gc[fate == F_MASKED], O.MASKED)
        dsp = fate == F_DISP
        sink.settle(gc[dsp & (kc < 0)], O.UNHANDLED)
        for j, a in self.host_devs:
            sink.settle(gc[dsp & (kc == j)], O.HANDLED_HOST)
        for j, (gg, tt) in w["orph_first"].items():
            sink.settle1(gg, O.UNHANDLED)
            self.dstate[j] = ["settled", gg, tt, O.UNHANDLED]
        # the interrupts the CPU took: before the stuck line's re-deliveries, then one per EOI
        fT, fC, fG, fH = w["fT"], w["fC"], w["fG"], w["fH"]
        act_of = {j: a for j, a in self.host_devs}
        if self.vfio is not None:
            act_of[self.vfio.j] = self.vfio_act
        hcount = [0] * self.nact

        def acts(ms: list) -> None:
            for a in {act_of[j] for j, _, _ in ms if j in act_of}:
                hcount[a] += 1
        # a raise's own action, a flush's members'
        if fT.size:
            raised = fC == C_RAISE
            if raised.any():
                pos = np.searchsorted(g, fG[raised])
                kr = kind[pos]
                for j, a in act_of.items():
                    hcount[a] += int(np.count_nonzero(kr == j))
            for ms in w["members"].values():
                acts(ms)
            self.cpu_arr.append((fT, fG, fC))
        ngrid = 0
        chain0 = w["chain0"]
        if chain0 is not None and chain0 <= t_lim:
            last = chain0 + H * ((t_lim - chain0) // H)
            done = w["done"]
            j_o = w["j_o"]
            storm_pts = sorted(r for r, ms in done.items() if min(j for j, _, _ in ms) < j_o)
            handled_refires = sum(1 for r, ms in done.items() if min(j for j, _, _ in ms) > j_o)
            for ms in done.values():
                acts(ms)
            ngrid = (last - chain0) // H + 1
            # re-deliveries raised: the grid but the instants where a waiting INTx was sent instead
            a = chain0
            for r in storm_pts + [last + H]:
                if r > a:
                    self._raise_refires(a + H * np.arange((r - a) // H, dtype=np.int64))
                a = r + H
            if storm_pts:
                sp = np.array(storm_pts, np.int64)
                cg = np.array([min(done[r])[1] for r in storm_pts], np.int64)
                self.cpu_arr.append((sp, cg, C_EOI))
                self.F = max(self.F, int(sp[-1]) + H)
            self.refires_handled += handled_refires
        nd = int(fT.size) + ngrid
        self.kstat += nd
        if nd:
            self.pending_bit = False
            self.flow_ran = True
        self._counts(nd, hcount)
        sink.refire_counts[O.HANDLED_HOST] += self.refires_handled
        sink.refire_counts[O.UNHANDLED] += self.refires_up - self.refires_handled
        self.refires_up = self.refires_handled = 0
        # the state the walk leaves
        self.F = max(self.F, w["F"])
        self.held, self.claims = w["held"], w["claims"]
        self.chain_key = w["chain_key"]
        chain = w["chain"]
        if chain is not None:
            nxt = chain if chain > t_lim else chain + H * ((t_lim - chain) // H + 1)
            self.chain_next = nxt
            self.F = max(self.F, nxt)
            self.refire_last = max(self.refire_last, nxt)
        self.lo = cut
        if dis is not None:
            if self.held or self.claims:
                raise Unsupported(f"irq {self.desc.irq}: an INTx waits at the pin when note_interrupt disables the "
                                  "line")
            kind_, c, d = dis
            if kind_ == "free":
                ms = w["members"].get(c)
                if int(fC[c]) == C_RAISE:
                    pos = int(np.searchsorted(g, int(fG[c])))
                    at = (d, int(g[pos]), bool(fH[c]))
                else:
                    at = (d, eng.key_before(d), True, -1)
                    assert ms is not None
            else:
                ms = w["done"].get(d)
                at = (d, eng.key_before(d), ms is not None, self.tie)
            if self.chain_next is not None:
                self.chain_next = None
                self.refire_at = d + H
                self.refire_last = max(self.refire_last, d + H)
            self.up = False
            self.spurious_disabled = True
            eng.disable(self.desc, *at)

    # ------------------------------------------------------------------ phase 2: the line is down
    def feed_down(self, polls: np.ndarray, b: int) -> None:
        """The rest of the chunk on the disabled line, with the polls and the re-delivery pending at the
        disable that run before ``b`` (in time order; a timer before an interrupt at its instant, and the
        poller, armed long before, before the re-delivery)."""
        t = self.t
        lo = self.lo
        pts = polls.tolist() if (self.spurious_disabled and self.lp.polled) else []
        for P in pts + [None]:
            lim = b if P is None else P
            R = self.refire_at
            if R is not None and R < lim:
                e_r = max(lo, int(np.searchsorted(t, R, side="left")))
                if e_r > lo:
                    self._down_events(lo, e_r)
                    lo = e_r
                self._refire_down(R)
            hi = t.size if P is None else max(lo, int(np.searchsorted(t, P, side="left")))
            if hi > lo and not self.up:
                self._down_events(lo, hi)
                lo = hi
            if P is None:
                break
            self._poll(P)
        self.lo = lo
        if self.vfio is not None:
            self.vfio.timers(b, False)

    def refire_down_now(self) -> None:
        """The re-delivery pending at the disable, run ahead of the drain (no poll comes before it)."""
        self._refire_down(self.refire_at)

    def _refire_down(self, R: int) -> None:
        """The re-delivery pending when note_interrupt disabled the line (lazily: still unmasked). If nothing
        masked the line first, it is a new interrupt: handle_fasteoi_irq masks the line and holds it."""
        self.refire_at = None
        if self.masked:
            return
        eng = self.eng
        h = eng.new_refire(R, self.tie, self.desc.irq)
        self.cpu_arr.append((np.array([R], np.int64), np.array([-1], np.int64), C_EOI))
        self.F = max(self.F, R + self.H)
        self.refires += 1
        self.masked = True
        self.pending_bit = True
        self.flow_ran = True
        if self.slot is None:
            self.slot = [h, R]
            eng.sink.pending(h)
        else:
            eng.sink.settle1(h, O.DISABLED)

    def _down_events(self, lo: int, hi: int) -> None:
        """Events [lo, hi) on the disabled line, with no poll in between: each waits in its device's
        Status bit, or (a glitch) as the line's one pending interrupt; the rest are dropped or merged."""
        t, g = self.t, self.g
        k = self.kind[lo:hi]
        sink = self.eng.sink
        if not self.masked and self.own_cpu() and hi > lo and int(t[lo]) < self.F:
            # the CPU is still in hard-IRQ context with this line's vector (remote IRR set): a glitch is gone
            busy = t[lo:hi] < self.F
            if (k[busy] >= 0).any():
                i = lo + int(np.flatnonzero(busy & (k >= 0))[0])
                raise Unsupported(f"irq {self.desc.irq}: a device asserts INTx at {int(t[i]):,} ns, after the line "
                                  "was disabled, while its CPU still runs the line's last interrupt (it would wait "
                                  "at the pin for the EOI)")
            nb = int(busy.sum())
            sink.settle(g[lo:lo + nb], O.COALESCED_APIC)
            lo += nb
            k = self.kind[lo:hi]
        first = []                      # (t, gidx, what) of the first arrival of each kind on the line
        v = self.vfio
        vtok = None
        if v is not None:
            vsel = lo + np.flatnonzero(k == v.j)
            if vsel.size:
                ranges: list = []
                hits = v.events(t[vsel], g[vsel], False, ranges)
                for a, b, o in ranges:
                    sink.settle(g[vsel[a:b]], o)
                if hits:
                    vtok = v.tok
                    first.append((vtok[1], vtok[0], "vfio"))
        gl = lo + np.flatnonzero(k < 0)
        if gl.size:
            first.append((int(t[gl[0]]), int(g[gl[0]]), "glitch"))
            if self.slot is None:
                self.slot = [int(g[gl[0]]), int(t[gl[0]])]
                sink.pending(self.slot[0])
                gl = gl[1:]
            sink.settle(g[gl], O.DISABLED)
        for j, dp in enumerate(self.lp.devices):
            if dp.kind == "vfio":
                continue
            sel = lo + np.flatnonzero(k == j)
            if not sel.size:
                continue
            if self.dstate[j] is None:
                self.dstate[j] = ["pending", int(g[sel[0]]), int(t[sel[0]])]
                first.append((int(t[sel[0]]), int(g[sel[0]]), "dev"))
                sink.pending(int(g[sel[0]]))
                sel = sel[1:]
            sink.settle(g[sel], O.DISABLED)
        if first and not self.masked:
            # the first interrupt to reach the disabled line goes through the flow handler, which masks it
            # and sets IRQS_PENDING; it went through the host's vector entry (host_irq_ns in its latency)
            tf, gf, what = min(first)
            self.cpu_arr.append((np.array([tf], np.int64), np.array([gf], np.int64), C_RAISE))
            self.F = max(self.F, tf + self.H)
            self.masked = True
            self.pending_bit = True
            self.flow_ran = True
            if what == "vfio":
                v.tok[2] = True

    def _poll(self, P: int) -> None:
        """poll_spurious_irqs → try_one_irq(desc, force): the held interrupt (or the first asserting
        device's) through every action; no kstat and no note_interrupt (IRQS_POLL_INPROGRESS)."""
        sink = self.eng.sink
        v = self.vfio
        if v is not None:
            v.timers(P, False)
        ev = None
        if self.slot is not None:
            ev, self.slot = self.slot[0], None
        else:
            for j, dp in enumerate(self.lp.devices):
                if dp.kind == "vfio":
                    if v.state == HELD:
                        break    # its handler claims it
                    continue
                st = self.dstate[j]
                if st is None:
                    continue
                if st[0] == "pending" and dp.kind == "orphan":
                    ev = st[1]
                break            # a host driver's handler claims its own; a settled orphan: NO_EVENT
        handled = [0] * self.nact
        for j, a in self.host_devs:
            st = self.dstate[j]
            if st is not None:
                sink.settle1(st[1], O.HANDLED_HOST)
                self.dstate[j] = None
                handled[a] = 1
        if v is not None and v.poll(P):
            handled[self.vfio_act] = 1
        self._counts(1, handled)
        self.pending_bit = False
        if ev is not None:
            o = O.HANDLED_HOST if any(handled) else O.UNHANDLED
            sink.settle1(ev, o)
            for j, dp in enumerate(self.lp.devices):
                st = self.dstate[j]
                if dp.kind == "orphan" and st is not None and st[0] == "pending" and st[1] == ev:
                    self.dstate[j] = ["settled", st[1], st[2], o]

    # ------------------------------------------------------------------ the end
    def drain_chain(self) -> None:
        """After the last event: a stuck line goes on firing until note_interrupt disables it; an INTx that waits
        at the pin is sent at the EOI."""
        if self.up and (self.chain_next is not None or self.held or self.claims):
            e = np.zeros(0, np.int64)
            self.feed(e, e, e, INF - 1)

    def drain_polls(self, polls: np.ndarray) -> None:
        """After the last event: the polls ``polls`` run (the re-delivery pending at a disable and the device's
        timers before each)."""
        for P in polls.tolist():
            if self.refire_at is not None and self.refire_at < P:
                self._refire_down(self.refire_at)
            if self.spurious_disabled and self.lp.polled:
                self._poll(P)

    def finish(self) -> None:
        if self.refire_at is not None:
            self._refire_down(self.refire_at)
        if self.vfio is not None:
            self.vfio.timers(INF - 1, True)

    def busy_until(self) -> int:
        """When the last timer of this line (its re-delivery, its devices') will have run, if nothing else
        happens."""
        v = self.vfio
        if v is None:
            return self.refire_last
        snap = v.snapshot()
        v.dry = True
        v.timers(INF - 1, True)
        last = v.last
        v.dry = False
        v.restore(snap)
        return max(last, self.refire_last)


class MsiLine:
    """A line whose handler is one MSI handler (host driver or vfio-pci), or none: dispatched, or held."""

    def __init__(self, eng: Any, lp: Any):
        self.eng, self.lp, self.desc = eng, lp, lp.desc
        d = lp.desc
        self.up = lp.up
        self.masked = d.masked
        self.pending_bit = bool(d.istate & IRQS_PENDING)
        self.flow_ran = False
        self.spur = [d.irq_count, d.irqs_unhandled, d.last_unhandled]
        self.slot = None
        self.masked_here = False

    def hold(self, t: np.ndarray, g: np.ndarray, taken: bool = False) -> None:
        """Interrupts at the line while it is down: the first waits (IRQS_PENDING), the rest are dropped. The
        first one's flow handler runs on the line's CPU (told to the CPU stage, unless it ``taken`` it already)."""
        if not g.size:
            return
        sink = self.eng.sink
        cs = self.eng.cpus
        if not self.masked and not taken and cs is not None and self.desc.cpu in cs.servers:
            cs.note_complex(self.desc.cpu, t[:1], g[:1])
        if not self.masked:
            # the first one goes through the flow handler (or, for a glitch, straight to the chip's mask
            # only if it is masked already): it masks the line and sets IRQS_PENDING
            self.masked = True
            self.pending_bit = True
            self.flow_ran = True
            self.masked_here = True
        if self.slot is None and self.desc.pending_event is None:
            self.slot = (int(g[0]), int(t[0]))
            sink.pending(self.slot[0])
            g = g[1:]
        sink.settle(g, O.DISABLED)


# ------------------------------------------------------------------ lines whose handlers are irq threads
def deferred_verdicts(cum: np.ndarray, deferred: bool, last: int) -> tuple[np.ndarray, np.ndarray]:
    """note_interrupt on interrupts whose handlers only woke irq threads (action_ret == IRQ_WAKE_THREAD):
    ``cum[k]`` is threads_handled at interrupt k. The first, if SPURIOUS_DEFERRED is not set yet, only sets it;
    each later one is IRQ_HANDLED if threads_handled moved since the last one (threads_handled_last), else
    IRQ_NONE. Returns (judged: bool per interrupt, handled: bool per interrupt)."""
    m = cum.size
    judged = np.ones(m, dtype=bool)
    lastv = np.empty(m, dtype=np.int64)
    cd = (cum & 0xFFFFFFFF) | SPURIOUS_DEFERRED
    if deferred:
        lastv[0] = last
        lastv[1:] = cd[:-1]
    else:
        judged[0] = False
        lastv[0] = -1
        if m > 1:
            lastv[1] = last | SPURIOUS_DEFERRED
            lastv[2:] = cd[1:-1]
    return judged, cd != lastv


class MsiThreadLine(MsiLine):
    """An MSI line whose action is a host driver's irq thread (request_threaded_irq(irq, NULL, thread_fn, 0):
    PCI-MSI is IRQCHIP_ONESHOT_SAFE, nothing is masked). Every interrupt is dispatched; the first wakes the
    thread (IRQTF_RUNTHREAD), which runs irq_thread_ns later and handles every interrupt that found it woken:
    a greedy window chain. note_interrupt judges each interrupt at the next one (SPURIOUS_DEFERRED): handled
    if a thread run ended (at or before it) since the last one."""

    def __init__(self, eng: Any, lp: Any):
        super().__init__(eng, lp)
        d = lp.desc
        self.D = eng.timing.irq_thread_ns
        self.run_at: int | None = None     # the open window's thread run
        self.th = d.threads_handled        # thread runs done (each returns IRQ_HANDLED)
        self.last = d.threads_handled_last
        self.dispatched = 0
        self.windows = 0
        self.held_raw = False              # the engine held arrivals at the line since it went down

    def feed(self, t: np.ndarray, g: np.ndarray, cls: np.ndarray | None = None) -> None:
        """The line's interrupts in the order its CPU took them: at ``t`` with the CPU stage's class ``cls`` (a
        vector taken from the IRR at a job's end goes before the thread's run at that instant; a raise after)."""
        if not t.size:
            return
        if not self.up:
            self.hold(t, g)
            return
        eng, D = self.eng, self.D
        if cls is None:
            cls = np.full(t.size, 5, np.int64)
        k = 8 * t + cls                                # keys; a thread's run at r is a timer: 8r + 3
        c0 = int(np.searchsorted(k, 8 * self.run_at + 3, side="left")) if self.run_at is not None else 0
        S = c0 + np.flatnonzero(chain_starts(k[c0:], 8 * (t[c0:] + D) + 3)) if D > 0 else \
            c0 + np.flatnonzero(chain_starts(t[c0:], 1))
        runs = t[S] + D
        allr = runs if self.run_at is None else np.r_[np.int64(self.run_at), runs]
        cum = self.th + np.searchsorted(8 * allr + 3, k, side="right")   # runs done before each
        judged, handled = deferred_verdicts(cum, bool(self.last & SPURIOUS_DEFERRED), self.last)
        jpos = np.flatnonzero(judged)
        c = -1
        if not eng.plan.noirqdebug and jpos.size:
            c = spurious_scan(self.spur, handled[jpos], t[jpos] // NSEC_PER_JIFFY)
        n = t.size if c < 0 else int(jpos[c]) + 1
        S = S[S < n]
        eng.sink.settle(g[:n], O.HANDLED_HOST)
        self.dispatched += n
        self.pending_bit = False
        self.flow_ran = True
        total = (self.run_at is not None) + S.size      # windows the dispatched ones belong to
        self.windows += S.size
        self.th += total - 1
        self.run_at = int(t[S[-1]]) + D if S.size else self.run_at
        if not eng.plan.noirqdebug:   # noirqdebug: no note_interrupt, threads_handled_last stays
            self.last = int(cum[n - 1] & 0xFFFFFFFF) | SPURIOUS_DEFERRED if (judged[:n].any()) else \
                self.last | SPURIOUS_DEFERRED
        if c >= 0:
            self.up = False
            eng.disable(self.desc, int(t[n - 1]), int(g[n - 1]), bool(handled[n - 1]))
            if t.size - n > 1:
                raise Unsupported(f"irq {self.desc.irq}: a threaded MSI line disabled at {int(t[n - 1]):,} ns while "
                                  "more of its interrupts are on their way to its CPU (the first one masks it)")
            self.hold(t[n:], g[n:], taken=True)

    def busy_until(self) -> int:
        return self.run_at or 0

    def write_back(self, eng: Any) -> None:
        d = self.desc
        a = self.lp.actions[0][0]
        d.kstat[d.cpu] += self.dispatched
        a.woke += self.dispatched
        a.thread_handled += self.windows
        d.threads_handled = self.th + (self.run_at is not None)
        d.threads_handled_last = self.last
        eng._line_state(d, self.masked, self.pending_bit, self.flow_ran, self.spur, self.slot, False)


class IntxThreadLine:
    """A level IO-APIC line whose actions are host drivers' irq threads (request_threaded_irq(gsi, NULL,
    thread_fn, IRQF_SHARED | IRQF_ONESHOT)), with their devices' INTx and glitches. handle_fasteoi_irq masks the
    IRQS_ONESHOT line, the default primary handlers wake every thread, and irq_finalize_oneshot unmasks it when
    the threads ran, irq_thread_ns later: a greedy window chain. In a window a glitch waits at the masked pin and
    is gone at the unmask; a device's INTx waits in its Status bit and its thread services it; the interrupt that
    opened the window is handled if a thread handled something. note_interrupt judges each opener at the next
    one (SPURIOUS_DEFERRED). Once disabled the line stays masked: what arrives waits for poll_spurious_irqs,
    whose try_one_irq wakes the threads again (a poll window)."""

    SERVICED = -1   # dstate: the Status bit is set and its thread will service it (the INTx is settled already)

    def __init__(self, eng: Any, lp: Any):
        self.eng, self.lp, self.desc = eng, lp, lp.desc
        d = lp.desc
        self.up = lp.up
        self.masked = d.masked
        self.pending_bit = bool(d.istate & IRQS_PENDING)
        self.flow_ran = False
        self.spurious_disabled = lp.spurious_disabled
        self.spur = [d.irq_count, d.irqs_unhandled, d.last_unhandled]
        self.D = eng.timing.irq_thread_ns
        self.th = d.threads_handled
        self.last = d.threads_handled_last
        self.nact = len(lp.actions)
        self.dev_act = []                 # per device on the line: the index of its driver's action
        self.dstate: list[Any] = []       # per device: None (Status clear), SERVICED, or the held INTx's handle
        self.held_t: dict[int, int] = {}  # handle -> when it was raised
        for dp in lp.devices:
            self.dev_act.append(next(i for i, (a, _) in enumerate(lp.actions) if a is dp.action))
            ev = dp.dev.intx_status_event
            h = None if ev is None else eng.sink.external(ev)
            self.dstate.append(h)
            if h is not None:
                self.held_t[h] = ev.t
        self.slot = None                  # [handle, t] of the glitch held at the masked pin
        if d.pending_event is not None:
            self.slot = [eng.sink.external(d.pending_event), d.pending_event.t]
        self.win: dict | None = None      # the threads woken: end (their run), ev (waits for the verdict), up
        self.kstat = 0
        self.cpu_arr: list = []          # (t, g) of the interrupts its CPU takes (the CPU stage checks them)
        self.last_open: int | None = None  # the last interrupt its CPU took (it holds the CPU host_irq_ns)
        self.woke = 0
        self.th_handled = [0] * self.nact
        self.th_none = [0] * self.nact
        self.last_run = 0
        self.t = self.g = self.kind = None
        self.lo = 0

    # ------------------------------------------------------------------ a window of the threads
    def _open(self, t0: int, ev: Any, up: bool) -> None:
        self.win = dict(end=t0 + self.D, ev=ev, up=up)
        self.woke += 1
        self.last_run = max(self.last_run, t0 + self.D)
        if any(x is not None for x in self.dstate):
            self._verdict()

    def _verdict(self) -> None:
        """A device's Status bit is set in the window: the interrupt that opened it is handled."""
        w = self.win
        if w is not None and w["ev"] is not None:
            self.eng.sink.settle1(w["ev"], O.HANDLED_HOST)
            w["ev"] = None

    def _close(self) -> None:
        """The threads run at the window's end: each services its device if its Status bit is set; the last
        one unmasks the line unless it is disabled (a glitch held at the pin is gone then)."""
        w, self.win = self.win, None
        sink = self.eng.sink
        done = [False] * self.nact
        for j, h in enumerate(self.dstate):
            if h is not None:
                if h != self.SERVICED:
                    sink.settle1(h, O.HANDLED_HOST)
                self.dstate[j] = None
                done[self.dev_act[j]] = True
        for a in range(self.nact):
            if done[a]:
                self.th_handled[a] += 1
            else:
                self.th_none[a] += 1
        self.th += sum(done)
        if w["ev"] is not None:
            sink.settle1(w["ev"], O.UNHANDLED)
        if not self.spurious_disabled:
            self.masked = False
            if self.slot is not None:
                sink.settle1(self.slot[0], O.DISABLED)
                self.slot = None

    def _masked_events(self, lo: int, hi: int) -> None:
        """Events [lo, hi) at the masked line: a glitch waits at the pin (one; the rest are dropped); a device's
        INTx sets its Status bit (serviced by the open window's thread, or held for a poll) or merges."""
        if hi <= lo:
            return
        t, g, k = self.t[lo:hi], self.g[lo:hi], self.kind[lo:hi]
        sink = self.eng.sink
        gl = np.flatnonzero(k < 0)
        if gl.size:
            if self.slot is None:
                self.slot = [int(g[gl[0]]), int(t[gl[0]])]
                sink.pending(self.slot[0])
                gl = gl[1:]
            sink.settle(g[gl], O.DISABLED)
        for j in range(len(self.dstate)):
            sel = np.flatnonzero(k == j)
            if not sel.size:
                continue
            if self.dstate[j] is None:
                h = int(g[sel[0]])
                if self.win is not None:
                    sink.settle1(h, O.HANDLED_HOST)
                    self.dstate[j] = self.SERVICED
                    self._verdict()
                else:
                    self.dstate[j] = h
                    self.held_t[h] = int(t[sel[0]])
                    sink.pending(h)
                sel = sel[1:]
            sink.settle(g[sel], O.DISABLED)

    # ------------------------------------------------------------------ phase 1: the line is up
    def feed(self, t: np.ndarray, g: np.ndarray, kind: np.ndarray, bound: int) -> None:
        self.t, self.g, self.kind, self.lo = t, g, kind, 0
        if not self.up:
            return
        lo = 0
        if self.win is not None:                # the window open before this chunk
            lo = int(np.searchsorted(t, self.win["end"], side="left"))
            self._masked_events(0, lo)
            if self.win["end"] > bound:
                self.lo = lo
                return
            self._close()
        self.lo = lo
        if lo >= t.size:
            return
        eng, D, sink = self.eng, self.D, self.eng.sink
        tt, gg, kk = t[lo:], g[lo:], kind[lo:]
        S = np.flatnonzero(chain_starts(tt, D))
        wid = np.searchsorted(S, np.arange(tt.size), side="right") - 1
        isstart = np.zeros(tt.size, dtype=bool)
        isstart[S] = True
        ndev = len(self.dstate)
        has = np.zeros((S.size, max(ndev, 1)), dtype=bool)
        first_dev = np.zeros(tt.size, dtype=bool)
        for j in range(ndev):
            sel = np.flatnonzero(kk == j)
            if sel.size:
                w = wid[sel]
                f = np.r_[True, w[1:] != w[:-1]]
                first_dev[sel[f]] = True
                has[w[f], j] = True
        nh = has.sum(axis=1)
        cum = self.th + np.r_[0, np.cumsum(nh)[:-1]]   # threads_handled at each opener
        judged, hv = deferred_verdicts(cum, bool(self.last & SPURIOUS_DEFERRED), self.last)
        jpos = np.flatnonzero(judged)
        c = -1
        if not eng.plan.noirqdebug and jpos.size:
            c = spurious_scan(self.spur, hv[jpos], tt[S[jpos]] // NSEC_PER_JIFFY)
        nw = S.size if c < 0 else int(jpos[c]) + 1         # windows opened while the line is up
        if not eng.plan.noirqdebug:   # noirqdebug: no note_interrupt, threads_handled_last stays
            self.last = int(cum[nw - 1] & 0xFFFFFFFF) | SPURIOUS_DEFERRED if judged[:nw].any() else \
                self.last | SPURIOUS_DEFERRED
        end_last = int(tt[S[nw - 1]]) + D
        cut = tt.size if c < 0 else int(np.searchsorted(tt, end_last, side="left"))
        # every window but the last is closed: its device INTx serviced, glitches gone at the unmask
        lastw = wid[:cut] == nw - 1
        st, fd = isstart[:cut], first_dev[:cut]
        sink.settle(gg[:cut][fd & ~st & ~lastw], O.HANDLED_HOST)
        sink.settle(gg[:cut][~fd & ~st & ~lastw], O.DISABLED)
        anyh = has[:nw].any(axis=1)
        sink.settle(gg[S[:nw - 1]][anyh[:nw - 1]], O.HANDLED_HOST)
        sink.settle(gg[S[:nw - 1]][~anyh[:nw - 1]], O.UNHANDLED)
        for a in range(self.nact):
            devs = [j for j in range(ndev) if self.dev_act[j] == a]
            hh = int(has[:nw - 1][:, devs].any(axis=1).sum()) if devs else 0
            self.th_handled[a] += hh
            self.th_none[a] += nw - 1 - hh
        self.th += int(nh[:nw - 1].sum())
        self.woke += nw - 1
        self.kstat += nw
        ts = tt[S[:nw]]
        H = eng.timing.host_irq_ns
        if D < H:   # the threads unmask the line before its CPU is done with the opener: is anything there then?
            gaps = np.diff(ts) if self.last_open is None else np.diff(np.r_[np.int64(self.last_open), ts])
            if gaps.size and int(gaps.min()) < H:
                i = int(np.flatnonzero(gaps < H)[0])
                raise Unsupported(f"irq {self.desc.irq}: its irq threads (irq_thread_ns={D:,}) unmask the line before "
                                  f"its CPU is done with the interrupt (host_irq_ns={H:,}), and another one arrives "
                                  f"then ({int(ts[i + (self.last_open is None)]):,} ns): it would find the vector "
                                  "still in service (the IO-APIC's remote IRR)")
        self.last_open = int(ts[-1])
        self.cpu_arr.append((ts, gg[S[:nw]]))   # each window's opener is a hard IRQ (then it is masked)
        self.pending_bit = False
        self.flow_ran = True
        # the last window: its opener dispatched at s, the line masked until its threads run
        s = int(S[nw - 1])
        self.masked = True
        opener_dev = int(kk[s]) if kk[s] >= 0 else None
        self._open(int(tt[s]), int(gg[s]), True)
        if opener_dev is not None:
            self.dstate[opener_dev] = int(gg[s])
            self.win["ev"] = None                            # its own thread services it: handled
        self.t, self.g, self.kind = tt, gg, kk
        if c >= 0:
            self.up = False
            self.spurious_disabled = True
            eng.disable(self.desc, int(tt[s]), int(gg[s]), bool(hv[nw - 1]))
        self._masked_events(s + 1, cut)
        self.lo = cut
        if c < 0 and self.win["end"] <= bound:
            self._close()

    # ------------------------------------------------------------------ phase 2: the line is down
    def feed_down(self, polls: np.ndarray, b: int) -> None:
        """The rest of the chunk, in time order with the threads' runs (a timer before the interrupts at its
        instant; the poller, armed long before, before a thread run at the same instant) and the polls."""
        lo = self.lo
        pts = polls.tolist() if (self.spurious_disabled and self.lp.polled) else []
        for P in pts + [None]:
            lim = b if P is None else P
            if self.win is not None and self.win["end"] < lim:
                e = max(lo, int(np.searchsorted(self.t, self.win["end"], side="left")))
                self._masked_events(lo, e)
                lo = e
                self._close()
            hi = self.t.size if P is None else max(lo, int(np.searchsorted(self.t, P, side="left")))
            self._masked_events(lo, hi)
            lo = hi
            if P is None:
                break
            self._poll(P)
        self.lo = lo

    def _poll(self, P: int) -> None:
        """try_one_irq(desc, force): the held glitch, or the first asserting device's INTx, through the primary
        handlers, which wake the threads (no kstat, no note_interrupt); the threads run irq_thread_ns later."""
        if self.win is not None:
            raise Unsupported(f"irq {self.desc.irq}: a spurious poll at {P:,} ns while its irq threads are woken "
                              "(a poll inside a ONESHOT thread window)")
        ev = None
        if self.slot is not None:
            ev, self.slot = self.slot[0], None
        else:
            ev = next((h for h in self.dstate if h is not None), None)
        sink = self.eng.sink
        for j, h in enumerate(self.dstate):
            if h is not None:
                if h != ev:
                    sink.settle1(h, O.HANDLED_HOST)
                self.dstate[j] = self.SERVICED
        self.pending_bit = False
        self._open(P, ev, False)

    def drain_chain(self) -> None:
        if self.up and self.win is not None:
            self._close()

    def drain_polls(self, polls: np.ndarray) -> None:
        for P in polls.tolist():
            if self.win is not None and self.win["end"] < P:
                self._close()
            if self.spurious_disabled and self.lp.polled:
                self._poll(P)

    def finish(self) -> None:
        if self.win is not None:
            self._close()

    def busy_until(self) -> int:
        return self.last_run

    def write_back(self, eng: Any) -> None:
        d = self.desc
        d.kstat[d.cpu] += self.kstat
        for i, (a, _) in enumerate(self.lp.actions):
            a.woke += self.woke
            a.thread_handled += self.th_handled[i]
            a.thread_none += self.th_none[i]
        d.threads_handled = self.th
        d.threads_handled_last = self.last
        eng._line_state(d, self.masked, self.pending_bit, self.flow_ran, self.spur, self.slot, True)
        for j, dp in enumerate(self.lp.devices):
            h = self.dstate[j]
            dp.dev.intx_status_event = None if h is None else eng._held_event(h, self.held_t.get(h, 0))
