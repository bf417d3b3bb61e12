"""The storm engine: run millions of interrupts through a host's live state with numpy.

Compiles the model state (descriptor table, actions, vfio triggers, irqfds and their cached routes, posted
IRTEs, vCPUs, Timing) into per-source tables once, then computes per event, with array operations, what the
object model does one interrupt at a time (docs/model-time.md): host dispatch and kstat, note_interrupt's
100,000-interrupt window with its ageing and the line it disables, the poller, eventfd and irqfd counters,
vCPU entry windows with IRR/PIR coalescing, exits and latency. Simplification: configurations it does not
vectorize yet (vfio INTx round trips, the irqfd work path, custom handlers) raise NotImplementedError by name.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..host import IrqEvent
from ..ledger import Outcome
from ..pci import HostDriver
from ..sched import NSEC_PER_JIFFY, Timer
from ..spurious import AGEING_JIFFIES, POLL_SPURIOUS_IRQ_INTERVAL, SPURIOUS_THRESHOLD, SPURIOUS_WINDOW
from ..uapi import IRQF_SHARED, IRQS_PENDING, IRQS_SPURIOUS_DISABLED, KVM_IRQ_ROUTING_MSI
from ..vfio import VfioPciDevice
from .generate import LazyStorm, Storm
from .reference import replay
from .result import StormResult, diff_snapshots, snapshot
from .windows import greedy_window_starts

__all__ = ["run", "Unsupported"]

K_MSI_HOST, K_MSI_VFIO, K_POSTED, K_INTX_HOST, K_GLITCH = range(5)
POLL_NS = POLL_SPURIOUS_IRQ_INTERVAL * NSEC_PER_JIFFY


class Unsupported(NotImplementedError):
    """The vector engine does not cover this configuration yet (the reference engine does)."""


def _handler_kind(action: Any) -> str:
    f = getattr(action.handler, "__func__", None)
    if f is HostDriver.msi_handler:
        return "host_msi"
    if f is HostDriver.intx_handler:
        return "host_intx"
    if f is VfioPciDevice.vfio_msihandler:
        return "vfio_msi"
    if f is VfioPciDevice.vfio_intx_handler:
        return "vfio_intx"
    raise Unsupported(f"irq action {action.name!r} has a custom handler: the vector engine only knows host drivers "
                      "and vfio-pci's handlers (use engine='reference')")


@dataclass
class SourcePlan:
    kind: int
    line: int = -1
    vcpu: int = -1
    vector: int = 0
    cost: int = 0
    efd: Any = None
    irqfd: Any = None
    action: Any = None
    device: Any = None
    no_route: bool = False


@dataclass
class VcpuPlan:
    vcpu: Any
    delta: int
    coalesce: int  # Outcome for a repeated vector in a window
    # carried between chunks: the open window
    end: int = -1
    vectors: set = field(default_factory=set)


class VectorEngine:
    def __init__(self, host: Any, storm: Storm):
        self.host = host
        self.storm = storm
        self._check_quiescent()
        self.vcpus: list[VcpuPlan] = []
        self._vcpu_index: dict[int, int] = {}
        self.plans = [self._plan(s) for s in storm.sources]

    # ------------------------------------------------------------------ compile
    def _check_quiescent(self) -> None:
        h = self.host
        if h.genirq.irqfixup:
            raise Unsupported("irqfixup/irqpoll (misrouted_irq) is not vectorized")
        pending = [t for _, tok, t in h.sched._heap if t._token == tok and not t.periodic]
        if pending:
            raise Unsupported(f"the host has pending work ({pending[0].name}): run host.run() before a storm")
        for vm in h.vms:
            for v in vm.vcpus:
                if v.lapic.irr or v.lapic.isr or v.pi.pir or v.pi.on:
                    raise Unsupported(f"vm{vm.id} vcpu{v.id} has interrupts pending: run host.run() first")
        for dev in h.devices.values():
            if dev.intx_status_event is not None:
                raise Unsupported(f"{dev.bdf} is asserting INTx already (its status bit is set)")

    def _vcpu(self, vcpu: Any) -> int:
        k = id(vcpu)
        if k not in self._vcpu_index:
            if vcpu.lapic.tpr & 0xF0:
                raise Unsupported(f"vcpu{vcpu.id} has TPR 0x{vcpu.lapic.tpr:x}: only TPR 0 is vectorized")
            co = Outcome.COALESCED_PIR if (vcpu.mode == "halted" and vcpu.vm.apicv) else Outcome.COALESCED_IRR
            self._vcpu_index[k] = len(self.vcpus)
            self.vcpus.append(VcpuPlan(vcpu, vcpu.delivery_ns, int(co)))
        return self._vcpu_index[k]

    def _line_actions(self, desc: Any) -> list[str]:
        return [_handler_kind(a) for a in desc.actions]

    def _plan(self, src: Any) -> SourcePlan:
        h = self.host
        t = h.timing
        if src.kind == "spurious":
            desc = h.genirq.descs.get(src.irq)
            if desc is None:
                raise ValueError(f"{src.label}: the host has no irq {src.irq}")
            self._check_level_line(desc)
            return SourcePlan(K_GLITCH, line=desc.irq)
        dev = h.devices.get(src.bdf)
        if dev is None:
            raise ValueError(f"{src.label}: no device {src.bdf} on this host")
        if src.kind == "intx":
            if not dev.intx_pin:
                raise ValueError(f"{src.label}: the device has no INTx pin")
            if not isinstance(dev.driver, HostDriver):
                raise Unsupported(f"{src.label}: INTx of a device bound to "
                                  f"{getattr(dev.driver, 'name', 'no driver')} (the vfio INTx round trip) is not "
                                  "vectorized yet; use engine='reference'")
            desc = h.genirq.descs[dev.gsi]
            self._check_level_line(desc)
            return SourcePlan(K_INTX_HOST, line=desc.irq, device=dev)
        v = dev.vector(src.index)
        if v is None:
            raise ValueError(f"{src.label}: vector {src.index} is not enabled on {src.bdf}")
        irte = h.irqbypass.posted_irte(v.irq)
        if irte is not None:
            return SourcePlan(K_POSTED, vcpu=self._vcpu(irte.vcpu), vector=irte.vector, cost=t.iommu_post_ns)
        desc = v.desc
        kinds = self._line_actions(desc)
        if len(desc.actions) > 1:
            raise Unsupported(f"irq {desc.irq} has several actions on an MSI vector")
        if desc.irqs_unhandled or desc.irq_count:
            raise Unsupported(f"irq {desc.irq} is inside a spurious-detection window")
        if not kinds:
            return SourcePlan(K_MSI_HOST, line=desc.irq)  # no action: held pending
        a = desc.actions[0]
        if kinds[0] == "host_msi":
            return SourcePlan(K_MSI_HOST, line=desc.irq, action=a)
        if kinds[0] != "vfio_msi":
            raise Unsupported(f"irq {desc.irq}: handler {kinds[0]} on an MSI vector")
        efd = a.dev_id
        plan = SourcePlan(K_MSI_VFIO, line=desc.irq, action=a, efd=efd, cost=t.host_irq_ns)
        irqfds = [f for vm in h.vms for f in vm.irqfds if f.eventfd is efd]
        if len(efd.waiters) != len(irqfds):
            raise Unsupported(f"{efd.name} has waiters other than an irqfd")
        if not irqfds:
            return plan
        f = irqfds[0]
        plan.irqfd = f
        e = f.irq_entry
        if e is None or e.type != KVM_IRQ_ROUTING_MSI or f.resamplefd is not None:
            raise Unsupported(f"irqfd on gsi {f.gsi}: the inject work path (non-MSI, multi-entry or resample "
                              "route) is not vectorized yet")
        from ..kvm import msi as _msi
        vm = f.vm
        msg = _msi.decode(e.address_lo, e.data, e.address_hi, x2apic_32bit_ids=vm.x2apic_32bit_ids)
        apics = vm.apic_identities()
        if not _msi.fast_path_ok(msg, apics):
            raise Unsupported(f"gsi {f.gsi}: a broadcast MSI takes the irqfd work path (not vectorized yet)")
        if msg.delivery_mode not in (0, 1) or msg.trigger_level:
            raise Unsupported(f"gsi {f.gsi}: only Fixed/Lowest edge MSIs are vectorized")
        dests = _msi.match_destinations(msg, apics)
        if len(dests) > 1:
            raise Unsupported(f"gsi {f.gsi}: a multicast MSI (several vCPUs) is not vectorized yet")
        if not dests or msg.vector < 16:
            plan.no_route = True
            return plan
        vc = vm.vcpus[dests[0]]
        if (msg.vector & 0xF0) <= (vc.lapic.tpr & 0xF0):
            raise Unsupported("a vector at or below the vCPU's TPR class")
        plan.vcpu, plan.vector = self._vcpu(vc), msg.vector
        return plan

    def _check_level_line(self, desc: Any) -> None:
        if not desc.level:
            raise Unsupported(f"irq {desc.irq}: glitches are modelled on level (IO-APIC) lines only")
        for a, k in zip(desc.actions, self._line_actions(desc)):
            if k == "vfio_intx" and (not a.dev_id.dev.pci_2_3 or a.dev_id.dev.intx_status_event is not None):
                raise Unsupported(f"irq {desc.irq}: vfio INTx without DisINTx (non-2.3 device) is not vectorized")
            if k in ("host_msi", "vfio_msi"):
                raise Unsupported(f"irq {desc.irq}: MSI handler on a level line")
        if desc.pending_event is not None:
            raise Unsupported(f"irq {desc.irq} already holds a pending interrupt")

    # ------------------------------------------------------------------ run
    def run(self, chunk_events: int, progress: Any) -> tuple[np.ndarray, np.ndarray]:
        st, h = self.storm, self.host
        n = len(st)
        self.keep = not getattr(st, "lazy", False)
        if not self.keep and any(p.kind in (K_GLITCH, K_INTX_HOST) for p in self.plans):
            raise Unsupported("a streamed (lazy) storm with INTx or glitch sources: materialize() it first")
        self.ledger_counts = np.zeros(16, dtype=np.int64)
        self.outcome = np.zeros(n if self.keep else 0, dtype=np.int8)
        self.latency = np.full(n if self.keep else 0, -1, dtype=np.int64)
        P = len(self.plans)
        kind = np.array([p.kind for p in self.plans], dtype=np.int8)
        self.counts = np.zeros(P, dtype=np.int64)
        self.line_events: dict[int, list[np.ndarray]] = {}
        drain = int(h.now)
        for times, ids, off in st.chunks(chunk_events):
            if not self.keep:  # per-chunk arrays, folded into the ledger and dropped
                self.outcome = np.zeros(len(times), dtype=np.int8)
                self.latency = np.full(len(times), -1, dtype=np.int64)
                drain = max(drain, self._chunk(times, ids, 0, kind))
                self.ledger_counts += np.bincount(self.outcome, minlength=16)
                if progress is not None:
                    progress.update(len(times))
                continue
            drain = max(drain, self._chunk(times, ids, off, kind))
            if progress is not None:
                progress.update(len(times))
        self._lines(drain)
        self._write_back(drain)
        if not self.keep:
            return np.zeros(0, np.int8), np.zeros(0, np.int64)
        return self.outcome, self.latency

    def _chunk(self, t: np.ndarray, ids: np.ndarray, off: int, kind: np.ndarray) -> int:
        out = self.outcome
        P = len(self.plans)
        self.counts += np.bincount(ids, minlength=P)
        k = kind[ids]
        # lines with a glitch / host INTx: kept for the sequential-by-window pass after all chunks
        lvl = np.flatnonzero((k == K_GLITCH) | (k == K_INTX_HOST))
        if lvl.size:
            self.line_events.setdefault(0, []).append(lvl + off)
        # MSI through the host: a line that is not running holds the first interrupt pending
        for s, p in enumerate(self.plans):
            if p.kind in (K_MSI_HOST, K_MSI_VFIO):
                d = self.host.genirq.descs[p.line]
                if d.depth or d.masked or not d.actions:
                    m = np.flatnonzero(ids == s)
                    out[m + off] = Outcome.DISABLED
                    if m.size and not getattr(p, "_held", False):
                        out[m[0] + off] = Outcome.PENDING
                        p._held = (m[0] + off, int(t[m[0]]))
                    p.disabled_events = getattr(p, "disabled_events", 0) + m.size
        # per-source outcome for the host path that ends there
        host_ok = np.array([p.kind == K_MSI_HOST and self.host.genirq.descs[p.line].actions and
                            not self.host.genirq.descs[p.line].depth and not self.host.genirq.descs[p.line].masked
                            for p in self.plans])
        user = np.array([p.kind == K_MSI_VFIO and p.irqfd is None and self._line_up(p) for p in self.plans])
        noroute = np.array([p.kind == K_MSI_VFIO and p.no_route and self._line_up(p) for p in self.plans])
        accept = np.array([(p.kind == K_POSTED) or (p.kind == K_MSI_VFIO and p.irqfd is not None and not p.no_route
                                                      and self._line_up(p)) for p in self.plans])
        if host_ok.any():
            out[np.flatnonzero(host_ok[ids]) + off] = Outcome.HANDLED_HOST
        if user.any():
            out[np.flatnonzero(user[ids]) + off] = Outcome.USERSPACE
        if noroute.any():
            out[np.flatnonzero(noroute[ids]) + off] = Outcome.NO_ROUTE
        drain = int(t[-1]) if len(t) else 0
        if accept.all():  # every source takes the accept path: no selection needed
            drain = max(drain, self._vcpu_windows(t, ids, None, off))
        elif accept.any():
            ev = np.flatnonzero(accept[ids])
            drain = max(drain, self._vcpu_windows(t[ev], ids[ev], ev + off, 0))
        return drain

    def _line_up(self, p: SourcePlan) -> bool:
        d = self.host.genirq.descs[p.line]
        return bool(d.actions) and not d.depth and not d.masked

    # ------------------------------------------------------------------ vCPU entry windows
    def _vcpu_windows(self, t: np.ndarray, sid: np.ndarray, gidx: np.ndarray | None, off: int) -> int:
        """Entry windows per vCPU over the accepted interrupts (``gidx`` None: all of ``t``, from ``off``)."""
        plans = self.plans
        iommu = np.array([p.kind == K_POSTED for p in plans])
        accepting = [i for i, p in enumerate(plans) if p.kind == K_POSTED or (p.kind == K_MSI_VFIO and p.irqfd is not None
                                                                               and not p.no_route)]
        nv = len(self.vcpus)
        if nv == 1:
            groups = [None]
        elif nv <= 8:
            vmap = np.array([max(p.vcpu, 0) for p in plans], dtype=np.uint16)
            vc = vmap[sid]
            groups = [np.flatnonzero(vc == v) for v in range(nv)]
        else:
            vmap = np.array([max(p.vcpu, 0) for p in plans], dtype=np.uint16)
            vc = vmap[sid]
            order = np.argsort(vc, kind="stable")
            bounds = np.searchsorted(vc[order], np.arange(nv + 1))
            groups = [order[bounds[v]:bounds[v + 1]] for v in range(nv)]
        drain = 0
        for v, vp in enumerate(self.vcpus):
            sel = groups[v]
            if sel is None:
                ta, s = t, sid
                g = np.arange(off, off + t.shape[0]) if gidx is None else gidx
            else:
                if not sel.size:
                    continue
                ta, s = t[sel], sid[sel]
                g = (sel + off) if gidx is None else gidx[sel]
            m = ta.shape[0]
            if not m:
                continue
            srcs_here = [i for i in accepting if plans[i].vcpu == v]
            wid = np.empty(m, dtype=np.int64)
            # events inside the window carried from the previous chunk
            c = int(np.searchsorted(ta, vp.end, side="left")) if vp.end > 0 else 0
            starts = greedy_window_starts(ta[c:], vp.delta)
            wid[:c] = -1
            np.cumsum(starts, out=wid[c:])
            wid[c:] -= 1
            ends = ta[c:][starts] + vp.delta
            end_of = np.empty(m, dtype=np.int64)
            end_of[:c] = vp.end
            end_of[c:] = ends[wid[c:]] if ends.size else 0
            # first occurrence of each vector in each window is delivered; the rest coalesce
            by_vec: dict[int, list[int]] = {}
            for i in srcs_here:
                by_vec.setdefault(plans[i].vector, []).append(i)
            is_first = np.empty(m, dtype=bool)
            delivered, coalesced = {}, {}
            carried = vp.vectors if c else set()
            for x, srcs in by_vec.items():
                if len(by_vec) == 1:
                    sel_v = None
                    wv = wid
                else:
                    mask = (s == srcs[0]) if len(srcs) == 1 else np.isin(s, srcs)
                    sel_v = np.flatnonzero(mask)
                    wv = wid[sel_v]
                f = np.empty(wv.shape[0], dtype=bool)
                if f.size:
                    f[0] = x not in carried if wv[0] < 0 else True
                    np.not_equal(wv[1:], wv[:-1], out=f[1:])
                nd = int(np.count_nonzero(f))
                delivered[x], coalesced[x] = nd, f.size - nd
                if sel_v is None:
                    is_first[:] = f
                else:
                    is_first[sel_v] = f
            io_here = iommu[srcs_here]
            if io_here.all() or not io_here.any():
                o = np.full(m, vp.coalesce, dtype=np.int8)
                o[is_first] = Outcome.POSTED if io_here.all() else Outcome.INJECTED
            else:
                o = np.where(is_first, np.where(iommu[s], Outcome.POSTED, Outcome.INJECTED), vp.coalesce).astype(np.int8)
            self.outcome[g] = o
            costs = {plans[i].cost for i in srcs_here}
            cost = costs.pop() if len(costs) == 1 else np.array([p.cost for p in plans], dtype=np.int64)[s]
            lat = end_of - ta
            lat += cost
            lat[~is_first] = -1
            self.latency[g] = lat
            # counters
            vcpu = vp.vcpu
            nwin = int(np.count_nonzero(starts))
            for x in by_vec:
                if delivered[x]:
                    vcpu.delivered[x] += delivered[x]
                if coalesced[x]:
                    vcpu.coalesced[x] += coalesced[x]
            ndel, ncoal = sum(delivered.values()), sum(coalesced.values())
            vcpu.entries += nwin
            lap = vcpu.lapic
            lap.accepted += ndel
            lap.acked += ndel
            lap.eois += ndel
            if vp.coalesce == Outcome.COALESCED_IRR:
                lap.coalesced += ncoal
            apicv = vcpu.vm.apicv
            if vcpu.mode == "halted":
                vcpu.wakeups += nwin
                vcpu.exits["HLT"] += nwin
                if apicv:
                    firsts = np.flatnonzero(starts) + c
                    piw = int(iommu[s[firsts]].sum())
                    if piw:
                        self.host.arch_counts["PIW"][vcpu.pcpu] += piw
            elif not apicv:
                vcpu.exits["EXTERNAL_INTERRUPT"] += nwin
            if not apicv and ndel:
                vcpu.exits["EOI"] += ndel
            # the window still open at the end of this chunk carries over
            if ends.size:
                last_w = wid[-1]
                open_ = slice(int(np.searchsorted(wid, last_w)), m)
                vp.vectors = {plans[i].vector for i in np.unique(s[open_]).tolist()}
                vp.end = int(ends[-1])
            else:
                vp.vectors |= {plans[i].vector for i in np.unique(s).tolist()}
            drain = max(drain, vp.end)
        return drain

    # ------------------------------------------------------------------ level lines: dispatch, spurious, poller
    def _lines(self, drain: int) -> None:
        if 0 not in self.line_events:
            return
        h, st = self.host, self.storm
        idx = np.concatenate(self.line_events[0])
        lines = np.array([p.line for p in self.plans], dtype=np.int64)[st.source_ids[idx]]
        per_line = {int(l): idx[lines == l] for l in np.unique(lines)}
        disables: dict[int, tuple[int, int]] = {}
        for irq, ev in per_line.items():
            desc = h.genirq.descs[irq]
            if desc.istate & IRQS_SPURIOUS_DISABLED:
                disables[irq] = (-1, desc.disabled_at if desc.disabled_at is not None else -1)
                continue
            if desc.depth or not desc.actions:
                continue
            d = self._spurious_scan(desc, ev)
            if d is not None:
                disables[irq] = (d, int(st.times[d]))
        polls = self._poll_times(disables, drain)
        for irq, ev in per_line.items():
            self._line_outcomes(h.genirq.descs[irq], ev, disables.get(irq), polls, drain)

    def _handled(self, ev: np.ndarray) -> np.ndarray:
        kinds = np.array([p.kind for p in self.plans], dtype=np.int8)
        return kinds[self.storm.source_ids[ev]] == K_INTX_HOST

    def _spurious_scan(self, desc: Any, ev: np.ndarray) -> int | None:
        """note_interrupt over this line's events; returns the event that disables the line, if one does."""
        h = self.host
        if h.genirq.noirqdebug or not ev.size:
            return None
        handled = self._handled(ev)
        jif = self.storm.times[ev] // NSEC_PER_JIFFY
        u = np.flatnonzero(~handled)
        ju = jif[u]
        prev = np.empty_like(ju)
        if ju.size:
            prev[0] = desc.last_unhandled
            prev[1:] = ju[:-1]
        reset = ju > prev + AGEING_JIFFIES
        lastreset = np.maximum.accumulate(np.where(reset, np.arange(u.size), -1)) if u.size else u
        cnt, unh, last = desc.irq_count, desc.irqs_unhandled, desc.last_unhandled
        m = ev.size
        pos = 0
        counting_from_u = 0  # index into u from which unh counts afresh (-1: carries the state's unh)
        carried = unh > 0
        disabled_at = None
        while pos < m:
            if not carried:
                k = int(np.searchsorted(u, pos))
                if k >= u.size:
                    break  # handled interrupts before the first unhandled are not counted
                a = int(u[k])
                counting_from_u = k
                cnt = 0
            else:
                a = pos
                counting_from_u = -1
            c = a + (SPURIOUS_WINDOW - cnt) - 1
            end = min(c, m - 1)
            kk = int(np.searchsorted(u, end, side="right")) - 1  # last unhandled event <= end
            if counting_from_u >= 0:
                r = max(int(lastreset[kk]), counting_from_u)
                unh_end = kk - r + 1
            else:
                k0 = int(np.searchsorted(u, a))
                if kk >= k0 and lastreset[kk] >= k0:
                    unh_end = kk - int(lastreset[kk]) + 1
                else:
                    unh_end = unh + max(kk - k0 + 1, 0)
            if kk >= 0:
                last = int(ju[kk])
            if c >= m:  # the window goes on past the storm
                cnt += m - a
                unh = unh_end
                break
            if unh_end > SPURIOUS_THRESHOLD:
                disabled_at = int(ev[c])
                self._report(desc, int(self.storm.times[ev[c]]))
            cnt, unh, carried = 0, 0, False
            pos = c + 1
            if disabled_at is not None:
                break
        # after a disable the state is the one note_interrupt left at the disabling event (cnt = unh = 0):
        # the later interrupts never reach it
        desc.irq_count, desc.irqs_unhandled, desc.last_unhandled = cnt, unh, last
        return disabled_at

    def _report(self, desc: Any, t: int) -> None:
        from ..spurious import handler_line

        log = self.host.log
        log.append((t, "err", f'irq {desc.irq}: nobody cared (try booting with the "irqpoll" option)'))
        log.append((t, "err", "handlers:"))
        for a in desc.actions:
            log.append((t, "err", handler_line(a)))
        log.append((t, "emerg", f"Disabling IRQ #{desc.irq}"))

    def _poll_times(self, disables: dict, drain: int) -> np.ndarray:
        gi = self.host.genirq
        arms = sorted((t, irq) for irq, (e, t) in disables.items() if e >= 0)
        nxt = gi.poll_timer.expires_ns if (gi.poll_timer is not None and gi.poll_timer.pending) else None
        out: list[np.ndarray] = []
        for t_arm, _ in arms:
            if nxt is not None and nxt <= t_arm:
                out.append(np.arange(nxt, t_arm + 1, POLL_NS, dtype=np.int64))
            nxt = (t_arm // NSEC_PER_JIFFY + POLL_SPURIOUS_IRQ_INTERVAL) * NSEC_PER_JIFFY
        if nxt is not None:
            out.append(np.arange(nxt, drain + 1, POLL_NS, dtype=np.int64))
            last = out[-1][-1] + POLL_NS if out[-1].size else nxt
            self._next_poll = int(last)
        else:
            self._next_poll = None
        polls = np.concatenate(out) if out else np.zeros(0, np.int64)
        return polls[polls <= drain]

    def _line_outcomes(self, desc: Any, ev: np.ndarray, dis: tuple | None, polls: np.ndarray, drain: int) -> None:
        st, out, h = self.storm, self.outcome, self.host
        cpu = desc.cpu
        handled = self._handled(ev)
        if desc.depth and dis is None:  # disabled by disable_irq: held, never polled
            live_n = 0
        elif dis is None:
            live_n = ev.size
        else:
            live_n = int(np.searchsorted(ev, dis[0], side="right")) if dis[0] >= 0 else 0
        live, held = ev[:live_n], ev[live_n:]
        out[live] = np.where(handled[:live_n], Outcome.HANDLED_HOST, Outcome.UNHANDLED)
        desc.kstat[cpu] += int(live_n)
        devs = {id(self.plans[s].device): self.plans[s].device for s in np.unique(st.source_ids[ev]).tolist()
                if self.plans[s].kind == K_INTX_HOST}
        dev_of = np.array([id(p.device) if p.kind == K_INTX_HOST else 0 for p in self.plans], dtype=object)
        for a in desc.actions:
            k = _handler_kind(a)
            mine = (dev_of[st.source_ids[live]] == id(a.dev_id.dev)) if k == "host_intx" else np.zeros(live_n, bool)
            a.handled += int(mine.sum())
            a.none += int(live_n - mine.sum())
            if k == "vfio_intx":
                a.dev_id.handled["intx_none"] += int(live_n)
        if dis is not None and dis[0] >= 0:
            desc.istate |= IRQS_SPURIOUS_DISABLED
            desc.depth += 1
            desc.disabled = True
            desc.disabled_at = dis[1]
            h.spurious_disabled.append((dis[1], desc.irq))
        if not held.size and not (dis is not None):
            return
        t_dis = dis[1] if dis is not None else -1
        polled = dis is not None and bool(desc.actions) and bool(desc.actions[0].flags & IRQF_SHARED)
        P = polls[polls > t_dis] if polled else np.zeros(0, np.int64)
        th = st.times[held]
        interval = np.searchsorted(P, th, side="right")
        kinds = np.array([p.kind for p in self.plans], dtype=np.int8)[st.source_ids[held]]
        out[held] = Outcome.DISABLED
        pend_glitch, pend_dev = {}, {}
        gl = np.flatnonzero(kinds == K_GLITCH)
        if gl.size:
            first = np.ones(gl.size, bool)
            first[1:] = interval[gl][1:] != interval[gl][:-1]
            for i in gl[first].tolist():
                pend_glitch[int(interval[i])] = int(held[i])
        dv = np.flatnonzero(kinds == K_INTX_HOST)
        if dv.size:
            dkey = [(int(interval[i]), id(self.plans[st.source_ids[held[i]]].device)) for i in dv.tolist()]
            seen = set()
            for i, key in zip(dv.tolist(), dkey):
                if key not in seen:
                    seen.add(key)
                    pend_dev[key] = int(held[i])
        npolls = P.size
        dev_hits: dict[int, int] = {}
        for (k, d), gi_ in pend_dev.items():
            out[gi_] = Outcome.HANDLED_HOST if k < npolls else Outcome.PENDING
            if k < npolls:
                dev_hits[d] = dev_hits.get(d, 0) + 1
        dev_intervals = {k for k, _ in pend_dev}
        for k, gi_ in pend_glitch.items():
            if k < npolls:
                out[gi_] = Outcome.HANDLED_HOST if k in dev_intervals else Outcome.UNHANDLED
            else:
                out[gi_] = Outcome.PENDING
        for a in desc.actions:
            k = _handler_kind(a)
            hits = dev_hits.get(id(a.dev_id.dev), 0) if k == "host_intx" else 0
            a.handled += hits
            a.none += npolls - hits
            if k == "vfio_intx":
                a.dev_id.handled["intx_none"] += npolls
        # what is still held at the end
        if held.size:
            desc.masked = True
            if npolls in pend_glitch:
                desc.pending_event = self._placeholder(pend_glitch[npolls])
            # only the first interrupt after the disable reaches the flow handler (IRQS_PENDING); the poller
            # clears it, and later ones wait at the masked chip
            if npolls:
                desc.istate &= ~IRQS_PENDING
            else:
                desc.istate |= IRQS_PENDING
            for (k, d), gi_ in pend_dev.items():
                if k == npolls:
                    dev = devs[d]
                    dev.intx_status_event = self._placeholder(gi_, dev)

    def _placeholder(self, gi_: int, device: Any = None) -> IrqEvent:
        """An IrqEvent standing for an interrupt the vector run leaves pending (a later enable replays it)."""
        s = self.storm.sources[int(self.storm.source_ids[gi_])]
        ev = IrqEvent(self.host, next(self.host._ids), s.label, int(self.storm.times[gi_]), False)
        ev.outcome = Outcome.PENDING
        ev.device = device
        ev.irq = s.irq
        return ev

    # ------------------------------------------------------------------ write back
    def _write_back(self, drain: int) -> None:
        h = self.host
        cnt = self.counts
        for s, p in enumerate(self.plans):
            n = int(cnt[s])
            if not n:
                continue
            if p.kind in (K_MSI_HOST, K_MSI_VFIO):
                d = h.genirq.descs[p.line]
                held = getattr(p, "_held", None)
                if held is not None:
                    d.masked = True
                    d.istate |= IRQS_PENDING
                    if d.pending_event is None:
                        d.pending_event = self._placeholder(held[0])
                    continue
                d.kstat[d.cpu] += n
                if p.action is not None:
                    p.action.handled += n
                if p.kind == K_MSI_VFIO:
                    p.action.dev_id.vfio_source[0].handled["msi"] += n
                    p.efd.signals += n
                    if p.irqfd is None:
                        p.efd.count += n
                    else:
                        p.irqfd.wakeups += n
                        p.irqfd.fast_path += n
        led = h.ledger
        c = np.bincount(self.outcome, minlength=len(led.counts)) if self.keep else self.ledger_counts
        led.raised += int(c.sum())
        led.counts = [a + int(b) for a, b in zip(led.counts, c)]
        h.sched.now = max(h.sched.now, drain)
        if getattr(self, "_next_poll", None) is not None:
            from ..spurious import poll_spurious_irqs

            gi = h.genirq
            if gi.poll_timer is None:
                gi.poll_timer = Timer(lambda: poll_spurious_irqs(h), name="poll_spurious_irqs", periodic=True)
            h.sched.mod_timer(gi.poll_timer, self._next_poll)


def run(host: Any, storm: Storm, engine: str = "vector", *, chunk_events: int = 2_000_000,
        progress: bool | None = False) -> StormResult:
    """Push ``storm`` through ``host``; ``engine`` is "vector" (numpy) or "reference" (one by one)."""
    if engine not in ("vector", "reference"):
        raise ValueError(f"engine is 'vector' or 'reference', not {engine!r}")
    if not isinstance(storm, (Storm, LazyStorm)):
        raise TypeError(f"storm must be an irqlab.storm.Storm (from poisson(), bursts(), ...), not "
                        f"{type(storm).__name__}")
    if isinstance(chunk_events, bool) or not isinstance(chunk_events, int) or chunk_events < 1:
        raise ValueError("chunk_events must be a positive int")
    lazy = isinstance(storm, LazyStorm)
    if lazy and engine == "reference":
        storm = storm.materialize()
        lazy = False
    first = storm.start_ns if lazy else (int(storm.times[0]) if len(storm) else host.now)
    if len(storm) and first < host.now:
        raise ValueError(f"the storm starts at {first:,} ns, before the host's clock "
                         f"({host.now:,} ns): shift it with start_ns=host.now")
    bar = None
    if progress is not False:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(storm), unit="irq", unit_scale=True, disable=None if progress is None else False,
                   desc=f"storm ({engine})")
    before = snapshot(host)
    log0 = len(host.log)
    t0 = time.perf_counter()
    try:
        if engine == "reference":
            for s in storm.sources:  # the same validation as the vector engine's compile step
                _validate_source(host, s)
            outcome, latency = replay(host, storm, bar)
        else:
            outcome, latency = VectorEngine(host, storm).run(chunk_events, bar)
    finally:
        if bar is not None:
            bar.close()
    elapsed = time.perf_counter() - t0
    after = snapshot(host)
    if lazy:  # streamed: the ledger is kept, the per-event arrays are not
        empty = np.zeros(0, np.int64)
        return StormResult(engine, empty, empty.astype(np.uint16), storm.sources, outcome, latency,
                           diff_snapshots(before, after), host.proc_interrupts(), host.now, elapsed,
                           log=[(t, lvl, txt) for t, lvl, txt in host.log[log0:]], streamed_ledger=(True,))
    return StormResult(engine, storm.times, storm.source_ids, storm.sources, outcome, latency,
                       diff_snapshots(before, after), host.proc_interrupts(), host.now, elapsed,
                       log=[(t, lvl, txt) for t, lvl, txt in host.log[log0:]])


def _validate_source(host: Any, s: Any) -> None:
    if s.kind == "spurious":
        if s.irq not in host.genirq.descs:
            raise ValueError(f"{s.label}: the host has no irq {s.irq}")
        return
    dev = host.devices.get(s.bdf)
    if dev is None:
        raise ValueError(f"{s.label}: no device {s.bdf} on this host")
    if s.kind == "msi" and dev.vector(s.index) is None:
        raise ValueError(f"{s.label}: vector {s.index} is not enabled on {s.bdf}")
    if s.kind == "intx" and not dev.intx_pin:
        raise ValueError(f"{s.label}: the device has no INTx pin")
