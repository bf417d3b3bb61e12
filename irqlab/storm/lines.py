"""Host lines in the storm engine: note_interrupt's window, the spurious poller, and INTx round trips.

Models kernel/irq/spurious.c (``note_interrupt``: the 100,000-interrupt window, > 99,900 unhandled, HZ/10
ageing; ``poll_spurious_irqs`` every HZ/10 and ``try_one_irq``), kernel/irq/chip.c (a disabled line masks at
the next interrupt and holds one pending), drivers/pci/pci.c (the INTx Status bit), drivers/vfio/pci/
vfio_pci_intrs.c and virqfd.c (automask; unmask in the guest's EOI exit), and the resampling irqfd's round trip
through the IOAPIC's remote IRR to a dedicated vCPU (virt/kvm/eventfd.c, arch/x86/kvm/ioapic.c, lapic.c).
Simplification: one Python step per poll and per round trip of a line that is down, never per interrupt
(the round trips on an up line are one window chain); what falls between two such instants is classified
with array operations.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..ledger import Outcome
from ..sched import NSEC_PER_JIFFY
from ..spurious import AGEING_JIFFIES, POLL_SPURIOUS_IRQ_INTERVAL, SPURIOUS_THRESHOLD, SPURIOUS_WINDOW
from ..uapi import IRQS_PENDING
from .compile import POLL_NS
from .windows import chain_starts

__all__ = ["spurious_scan", "PollSchedule", "MsiLine", "IntxLine"]

INF = np.iinfo(np.int64).max
O = Outcome


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
    def feed(self, t: np.ndarray, g: np.ndarray, kind: np.ndarray) -> None:
        """This chunk's events (``kind``: -1 a glitch, else the device's index on the line). Processes them
        while the line is up; a spurious disable stops there and is reported to the engine."""
        self.t, self.g, self.kind, self.lo = t, g, kind, 0
        if not self.up or not t.size:
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
        cut = t.size
        dis = False
        if not self.eng.plan.noirqdebug and dpos.size:
            k = spurious_scan(self.spur, handled[dpos], t[dpos] // NSEC_PER_JIFFY)
            if k >= 0:
                cut = int(dpos[k]) + 1
                dpos = dpos[:k + 1]
                dis = True
        if dpos.size:
            self.pending_bit = False   # handle_irq_event clears IRQS_PENDING
            self.flow_ran = True
        # what happened up to the cut
        kc = kind[:cut]
        hcount = [0] * self.nact
        self.kstat += dpos.size
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
            if j in first_orphan:
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
        self._counts(int(dpos.size), hcount)
        self.lo = cut
        if dis:
            i = cut - 1
            self.up = False
            self.spurious_disabled = True
            self.eng.disable(self.desc, int(t[i]), int(g[i]), bool(handled[i]))

    # ------------------------------------------------------------------ phase 2: the line is down
    def feed_down(self, polls: np.ndarray, t_next: int) -> None:
        """The rest of the chunk on the disabled line, with the polls that run before ``t_next``."""
        t = self.t
        lo = self.lo
        pts = polls.tolist() if (self.spurious_disabled and self.lp.polled) else []
        for P in pts + [None]:
            hi = t.size if P is None else max(lo, int(np.searchsorted(t, P, side="left")))
            if hi > lo and not self.up:
                self._down_events(lo, hi)
                lo = hi
            if P is None:
                break
            self._poll(P)
        self.lo = lo
        if self.vfio is not None:
            self.vfio.timers(t_next, False)

    def _down_events(self, lo: int, hi: int) -> None:
        """Events [lo, hi) on the disabled line, with no poll in between: each waits in its device's
        Status bit, or (a glitch) as the line's one pending interrupt; the rest are dropped or merged."""
        t, g = self.t, self.g
        k = self.kind[lo:hi]
        sink = self.eng.sink
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
    def drain_polls(self, polls: np.ndarray) -> None:
        """After the last event: the polls ``polls`` run (the device's timers before each)."""
        if self.spurious_disabled and self.lp.polled:
            for P in polls.tolist():
                self._poll(P)

    def finish(self) -> None:
        if self.vfio is not None:
            self.vfio.timers(INF - 1, True)

    def busy_until(self) -> int:
        """When the last timer of this line's devices will have run, if nothing else happens."""
        v = self.vfio
        if v is None:
            return 0
        snap = v.snapshot()
        v.dry = True
        v.timers(INF - 1, True)
        last = v.last
        v.dry = False
        v.restore(snap)
        return last


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

    def hold(self, t: np.ndarray, g: np.ndarray) -> None:
        """Interrupts at the line while it is down: the first waits (IRQS_PENDING), the rest are dropped."""
        if not g.size:
            return
        sink = self.eng.sink
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
