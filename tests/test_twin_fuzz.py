"""The twin fuzzer (issue 11): nothing is lost, and the two engines are one truth, under random sequences.

Two hosts are built alike, then every step of a random sequence of host, vfio, KVM, eventfd and userspace
actions is applied to both: request/free/disable/enable irqs (threaded too), irq_set_affinity, many lines on one
CPU, raising INTx/MSI/glitches, running time, eventfd writes/reads/closes, VFIO_DEVICE_SET_IRQS (INTx and MSI
triggers, unmask eventfds, ACTION_MASK/UNMASK, loopback triggers, disable), KVM_SET_GSI_ROUTING (any
destination, vector, delivery mode, edge or level, addresses outside 0xFEExxxxx), KVM_IRQFD (assign, resample,
deassign), KVM_SIGNAL_MSI, IOAPIC pins, TPR, halted and running vCPUs, on hosts with and without APICv and VT-d
posting. A storm goes through the vector engine on one twin and through the one-by-one replay on the other
(chunks of 1 interrupt and up, lazy storms, storm after storm on the same hosts); a storm the vector engine
refuses (``Unsupported``) must leave its twin untouched and is then replayed on both.

After every step:

- both twins are identical: ``irqlab.storm.result.snapshot``, the kernel log, the clock, and the interrupts
  still to be accounted for; both answered the step alike (the same result or the same refusal);
- the ledger adds up, and every interrupt not settled is held by something that will settle it (a device's
  Status bit, a line's or an MSI-X vector's pending bit, a vCPU's IRR or PIR, an irqfd's inject work, a woken
  irq thread); what is carried downstream (IRR, PIR, irqfd work) is in flight and in one place only;
- once the host is run dry (``host.run()``, and after every storm), the only interrupts still in flight are
  the ones the model legitimately holds for ever: an INTx in the Status bit of a device whose INTx Disable
  vfio has set (nobody unmasks it), and a vector >= 16 in a vCPU's IRR that the guest's PPR blocks (nobody
  lowers its TPR); the only ``pending`` ones sit on a disabled or masked line, in a masked MSI-X vector's
  pending bit, or in the Status bit of a device whose line is masked. A host that never runs dry (a level
  interrupt nobody lowers storms the guest, as in the kernel) ends its sequence, both twins alike;
- /proc/interrupts re-parses (``irqlab.procfs.parse_proc_interrupts``) to the model's descriptors and counts;
- a call refused with TypeError/ValueError/KernelError changed nothing (the snapshot before = after), except
  where the kernel itself changes state before it fails (SET_IRQS on MSI vectors frees the old trigger first).

``make test`` runs it derandomized (the same sequences every run) in well under a minute; ``make fuzz`` sets
``IRQLAB_FUZZ_SECONDS=N``: fresh random sequences for three quarters of N seconds (the engine-equivalence
properties of test_storm_equivalence.py take the rest), summed up at the end of the run. Defects still open on
main (KNOWN below, each fixed on another branch or reported) are not generated while open, or end a sequence
when their exact signature shows: ``IRQLAB_FUZZ_OPEN=`` (empty) generates everything, ``IRQLAB_FUZZ_OPEN=a,b``
only keeps a and b out.
"""
from __future__ import annotations

import contextlib
import functools
import os
import time
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, run_state_machine_as_test

import irqlab
from irqlab import (
    Eventfd, KernelError, Outcome, Timing, msi, msi_route, irqchip_route, procfs, storm,
)
from irqlab.cpu import SYSTEM_VECTORS
from irqlab.storm import Source
from irqlab.storm.result import snapshot

from helpers import FUZZ_REPORT
from irqlab.uapi import (
    IRQ_HANDLED, IRQ_NONE, IRQ_WAKE_THREAD, IRQF_ONESHOT, IRQF_SHARED, IRQS_SPURIOUS_DISABLED,
    KVM_IRQCHIP_IOAPIC, KVM_IRQFD_FLAG_DEASSIGN, KVM_IRQFD_FLAG_RESAMPLE, VFIO_IRQ_SET_ACTION_MASK,
    VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_ACTION_UNMASK, VFIO_IRQ_SET_DATA_BOOL, VFIO_IRQ_SET_DATA_EVENTFD,
    VFIO_IRQ_SET_DATA_NONE, VFIO_PCI_INTX_IRQ_INDEX, VFIO_PCI_MSI_IRQ_INDEX, VFIO_PCI_MSIX_IRQ_INDEX,
)

# ------------------------------------------------------------------------------------------ known defects
#: issue 11's defects that are being fixed on other branches: while one is open the fuzzer does not generate
#: what reaches it (the regression test of each is an xfail(strict=True) in test_bad_input.py); when its fix
#: lands on main, it leaves this list and the fuzzer reaches it again.
KNOWN: dict[str, str] = {}   # none open: every defect the fuzzer found is fixed on main
_env = os.environ.get("IRQLAB_FUZZ_OPEN")
OPEN = set(KNOWN) if _env is None else {x.strip() for x in _env.split(",") if x.strip()}
assert OPEN <= set(KNOWN), sorted(OPEN - set(KNOWN))


def is_open(defect: str) -> bool:
    assert defect in KNOWN, defect
    return defect in OPEN


#: while the fuzzer runs, a model still busy after this many timers and work items in one run() is endless
#: (RuntimeError): it says so after a fraction of a second instead of 5 million callbacks
ENDLESS_AFTER = 250_000   # above the 100,000 re-deliveries of a stuck line before "nobody cared"



def endless_refusal(e: RuntimeError) -> bool:
    """The model's two refusals of an endless run: run() still busy after ENDLESS_AFTER callbacks, or a level line
    that fires again at every EOI with nothing lowering or disabling it (genirq's guard, first when host_irq_ns is
    0: the re-deliveries then come at one instant, in one callback)."""
    return "still busy" in str(e) or "it would fire for ever" in str(e)


SECONDS = float(os.environ.get("IRQLAB_FUZZ_SECONDS", "0") or 0) * 0.75   # a quarter for the engine properties
STATS: Counter = Counter()

# ------------------------------------------------------------------------------------------ the hosts
PT_MSIX, PT_INTX, PT_MSI = "0000:01:00.0", "0000:04:00.0", "0000:03:00.0"
NIC, DISK, ORPHAN = "0000:00:19.0", "0000:02:00.0", "0000:05:00.0"
BDFS = [PT_MSIX, PT_INTX, PT_MSI, NIC, DISK, ORPHAN]
NEFD = 8
MSI_GSIS = [24, 25, 26, 27]
PINS = [5, 16, 17, 19, 20]


class Toy:
    """A toy driver's dev_id: its handler's answer ("handled", "none", "alternate", "wake", or a bad value)."""

    def __init__(self, answer):
        self.answer = answer
        self.calls = 0


def toy_handler(irq, toy):
    toy.calls += 1
    a = toy.answer
    if a == "handled":
        return IRQ_HANDLED
    if a == "none":
        return IRQ_NONE
    if a == "alternate":
        return IRQ_HANDLED if toy.calls % 2 else IRQ_NONE
    if a == "wake":
        return IRQ_WAKE_THREAD
    return a  # a bad return value (None, 'x', True, 7)


def toy_thread(irq, toy):
    return IRQ_HANDLED if toy.answer != "none" else IRQ_NONE


timings = st.builds(Timing, host_irq_ns=st.integers(0, 3000), irqfd_work_ns=st.integers(1, 6000),
                    vmexit_ns=st.integers(1, 2000), ipi_ns=st.integers(0, 1000), vcpu_wakeup_ns=st.integers(1, 9000),
                    posted_delivery_ns=st.integers(1, 600), guest_handler_ns=st.integers(1, 4000),
                    resample_ns=st.integers(1, 4000), iommu_post_ns=st.integers(0, 500))

configs = st.fixed_dictionaries({
    "ncpus": st.integers(1, 4), "apicv": st.booleans(), "posted": st.booleans(),
    "timing": st.sampled_from(["default"] * 4 + ["drawn"] * 5 + ["zero"]).flatmap(
        lambda k: st.just(Timing()) if k == "default" else timings if k == "drawn" else
        st.just(Timing(irqfd_work_ns=0, guest_handler_ns=0))),
    "trace": st.sampled_from([False] * 7 + [True]), "noirqdebug": st.sampled_from([False, False, False, True]),
    "nvcpus": st.integers(1, 3), "modes": st.lists(st.sampled_from(["running", "halted"]), min_size=3, max_size=3),
    "irqchip": st.sampled_from(["full", "full", "full", "split"]),
    "pt_msix": st.integers(0, 4), "pt_intx": st.sampled_from([None, 16, 17, 19]), "pt_msi": st.booleans(),
    "nic": st.sampled_from([None, 16, 17]), "disk": st.booleans(), "orphan": st.sampled_from([None, 16, 17]),
    "pba": st.booleans(), "nr_irqs": st.sampled_from([None, None, None, 16, 40]),
})


class World:
    """One twin: a host built from the config the way QEMU sets one up, and the handles the rules use."""

    def __init__(self, cfg: dict):
        self.cfg = cfg
        apicv = cfg["apicv"] or cfg["posted"]
        nr = cfg["nr_irqs"]
        h = self.host = irqlab.Host(ncpus=cfg["ncpus"], timing=cfg["timing"], trace=cfg["trace"], apicv=apicv,
                                    posted_interrupts=cfg["posted"], noirqdebug=cfg["noirqdebug"], nr_irqs=nr)
        self.vm = h.create_vm(nvcpus=cfg["nvcpus"], irqchip=cfg["irqchip"])
        for v, m in zip(self.vm.vcpus, cfg["modes"]):
            v.mode = m
        self.efds = [Eventfd(name=f"efd{i}") for i in range(NEFD)]
        self.gen = [0] * NEFD
        self.vdevs: dict = {}
        self.toys: list = []   # (irq, Toy)
        full = cfg["irqchip"] == "full"
        if cfg["disk"]:
            h.add_pci_device(DISK, name="nvme", intx_pin=1, gsi=18, msix=2)
            h.bind_host_driver(DISK, "nvme0")
        if cfg["nic"] is not None:
            h.add_pci_device(NIC, name="eth0", intx_pin=1, gsi=cfg["nic"])
            h.bind_host_driver(NIC, "eth0", use_msi=False)
        if cfg["pt_msix"]:
            n = cfg["pt_msix"]
            h.add_pci_device(PT_MSIX, name="card", intx_pin=1, gsi=19, msix=4)
            vd = self.vdevs[PT_MSIX] = h.vfio_pci_bind(PT_MSIX)
            vd.set_irqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_MSIX_IRQ_INDEX, 0, n,
                        self.efds[:n])
            routes = []
            for i in range(n):
                m = msi.encode(dest_id=self.vm.vcpus[i % len(self.vm.vcpus)].apic_id, vector=0x41 + i)
                routes.append(msi_route(MSI_GSIS[i], m.address_lo, m.data, m.address_hi))
            self.vm.kvm_set_gsi_routing(self.vm.routing.all() + routes)
            for i in range(n):
                self.vm.kvm_irqfd(self.efds[i], MSI_GSIS[i])
            if cfg["pba"]:
                h.devices[PT_MSIX].vectors[-1].masked = True
        if cfg["pt_intx"] is not None:
            gsi = cfg["pt_intx"]
            h.add_pci_device(PT_INTX, name="legacy", intx_pin=1, gsi=gsi)
            vd = self.vdevs[PT_INTX] = h.vfio_pci_bind(PT_INTX)
            vd.set_irqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_INTX_IRQ_INDEX, 0, 1,
                        [self.efds[4]])
            vd.set_irqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK, VFIO_PCI_INTX_IRQ_INDEX, 0, 1,
                        [self.efds[5]])
            if full:
                self.vm.ioapic.write_redirtbl(20, vector=0x62, dest_id=self.vm.vcpus[-1].apic_id, trigger_level=True)
                self.vm.kvm_irqfd(self.efds[4], 20, KVM_IRQFD_FLAG_RESAMPLE, resamplefd=self.efds[5])
        if cfg["pt_msi"]:
            h.add_pci_device(PT_MSI, name="gpu", intx_pin=0, msi=1)
            vd = self.vdevs[PT_MSI] = h.vfio_pci_bind(PT_MSI)
            vd.set_irqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_MSI_IRQ_INDEX, 0, 1,
                        [self.efds[6]])
        if cfg["orphan"] is not None:
            h.add_pci_device(ORPHAN, name="odd", intx_pin=1, gsi=cfg["orphan"])

    def efd(self, i: int):
        return self.efds[i]


# ------------------------------------------------------------------------------------------ checks
class Lost(AssertionError):
    """Interrupts still to be accounted for that nothing holds (``events``; [] for pending ones)."""

    def __init__(self, msg: str, events: list, pending: bool = False):
        super().__init__(msg)
        self.events, self.pending = events, pending


class Twice(AssertionError):
    """Interrupts carried on downstream after they were settled, or carried in two places at once."""

    def __init__(self, msg: str, events: list):
        super().__init__(msg)
        self.events = events


def known_defect(exc: BaseException) -> str | None:
    """The open defect this failure is the signature of; None for anything else (a new defect: the test fails)."""
    return None


def step(f):
    """A rule or check: nothing once the sequence hit a known open defect; a failure that is the signature of
    one ends the sequence there (counted), any other failure fails the test."""
    @functools.wraps(f)
    def g(self, *a, **k):
        if self.dead:
            return None
        try:
            return f(self, *a, **k)
        except Exception as e:
            name = known_defect(e)
            if name is None:
                raise
            self.dead = name
            STATS[f"sequences ended by the open defect {name}"] += 1
            return None
    return g


def norm(r):
    """A call's result, comparable across twins (objects by type)."""
    if r is None or isinstance(r, (bool, int, str, float)):
        return r
    if isinstance(r, irqlab.Journey):
        return ("journey", r.outcome)
    return type(r).__name__


def held(host) -> tuple[dict, set, dict, list]:
    """Every interrupt something holds: id -> where; the ids held where they may wait for ever; id -> event;
    and the (event, where) pairs of the holders downstream of the device (a host CPU's or a vCPU's IRR, a PIR,
    irqfd work)."""
    where, forever, evs, down = {}, set(), {}, []

    def add(ev, what, downstream=False):
        if ev is not None and getattr(ev, "real", False):
            where.setdefault(ev.id, what)
            evs[ev.id] = ev
            if downstream:
                down.append((ev, what))

    for bdf, dev in host.devices.items():
        ev = dev.intx_status_event
        add(ev, f"{bdf} Status bit")
        if ev is not None and dev.disintx:
            forever.add(ev.id)                 # vfio masked the device: waits for an unmask
        for v in dev.vectors:
            add(v.pending_event, f"{bdf} MSI-X pending bit {v.index}")
    for irq, d in host.genirq.descs.items():
        add(d.pending_event, f"irq {irq} IRQS_PENDING")
        for a in d.actions:   # an interrupt whose verdict a woken irq thread gives
            for ev in getattr(a, "waiting", ()):
                add(ev, f"irq {irq} thread of {a.name!r}")
    for c in host.cpus:   # a host vector waiting in a CPU's local APIC while the CPU is in hard-IRQ context
        for vec, job in c.irr.items():   # (a system vector's job, RES/PIN/PIW, carries another's journey)
            if vec not in SYSTEM_VECTORS:
                add(job.ev, f"CPU{c.id} IRR 0x{vec:02x}", True)
    for vm in host.vms:
        for vc in vm.vcpus:
            for vec, ev in vc.irr_tokens.items():
                add(ev, f"vm{vm.id} vcpu{vc.id} IRR 0x{vec:02x}", True)
                if ev is not None and 16 <= vec and (vec & 0xF0) <= vc.lapic.ppr:
                    forever.add(ev.id)         # the guest's PPR blocks it: waits for a TPR change
            for vec, ev in vc.pir_tokens.items():
                add(ev, f"vm{vm.id} vcpu{vc.id} PIR 0x{vec:02x}", True)
        for f in vm.irqfds:
            if f.inject.pending:
                add(f.inject_token, f"vm{vm.id} irqfd gsi {f.gsi} inject work", True)
    return where, forever, evs, down


def audit(host, dry: bool, who: str) -> None:
    """The ledger adds up and every interrupt still to be accounted for is held by something; what is carried
    downstream (IRR, PIR, irqfd work) is in flight, and in one place only."""
    led = host.ledger
    led.check()
    assert host.current is None, f"{who}: host.current left set after a step"
    flying = host.events_in_flight()
    assert all(e.outcome is None for e in flying), f"{who}: settled interrupts listed in flight: {flying}"
    where, forever, evs, down = held(host)
    pending = [e for e in evs.values() if e.outcome == Outcome.PENDING]
    assert len(flying) == led.counts[Outcome.IN_FLIGHT], \
        f"{who}: ledger {led.as_dict()} but {len(flying)} interrupts are listed in flight"
    lost = [e for e in flying if e.id not in where]
    if lost:
        raise Lost(f"{who}: in flight but nothing holds them (lost): {lost}; ledger {led.as_dict()}", lost)
    if len(pending) != led.counts[Outcome.PENDING]:
        raise Lost(f"{who}: ledger {led.as_dict()} but only {pending} are held pending (a line, an MSI-X pending "
                   f"bit, a Status bit): {led.counts[Outcome.PENDING] - len(pending)} lost", [], True)
    twice = [(e, w) for e, w in down if e.outcome is not None or sum(x is e for x, _ in down) > 1]
    if twice:
        raise Twice(f"{who}: carried downstream but already settled, or carried in two places at once: {twice}",
                    [e for e, _ in twice])
    if dry:
        stuck = [(e, where[e.id]) for e in flying if e.id not in forever]
        assert not stuck, f"{who}: still in flight after host.run(): {stuck}; ledger {led.as_dict()}"


def check_proc(host, who: str) -> None:
    """/proc/interrupts parses back to the model's descriptors, counts and arch rows."""
    text = host.proc_interrupts()
    p = procfs.parse_proc_interrupts(text)
    assert p.cpus == [f"CPU{i}" for i in range(host.ncpus)], (who, p.cpus)
    want = {d.irq: d for d in host.genirq.descs.values() if d.actions}
    got = {int(r.irq): r for r in p.device_rows()}
    assert sorted(got) == sorted(want), f"{who}: /proc/interrupts rows {sorted(got)} != irqs with actions " \
                                        f"{sorted(want)}\n{text}"
    for irq, d in want.items():
        r = got[irq]
        assert (r.counts, r.chip, r.hwirq, r.flow, r.actions) == (
            list(d.kstat), d.chip_name, None if d.hwirq is None else str(d.hwirq), d.name, d.action_names()), \
            f"{who}: irq {irq} parses to {r} but the model has kstat {d.kstat}, {d.chip_name} {d.hwirq}-{d.name} " \
            f"{d.action_names()}\n{text}"
    for r in p.rows:
        if r.is_arch and r.irq in host.arch_counts:
            want_c = host.arch_counts[r.irq]
            assert r.counts == (list(want_c) if r.irq not in ("ERR", "MIS") else [sum(want_c)]), \
                f"{who}: arch row {r.irq} parses to {r.counts}, the model has {want_c}"


def same_twins(a, b) -> None:
    sa, sb = snapshot(a.host), snapshot(b.host)
    if sa != sb:
        k = next(k for k in sorted(set(sa) | set(sb), key=repr) if sa.get(k) != sb.get(k))
        raise AssertionError(f"the twins differ at {k}: {sa.get(k)} vs {sb.get(k)}")
    assert a.host.log == b.host.log, "the twins' kernel logs differ:\n" + "\n".join(
        f"{x} | {y}" for x, y in zip(a.host.log, b.host.log) if x != y)
    assert a.host.now == b.host.now
    ia = [(e.id, e.outcome) for e in a.host.events_in_flight()]
    ib = [(e.id, e.outcome) for e in b.host.events_in_flight()]
    assert ia == ib, f"interrupts still to account for differ: {ia} vs {ib}"
    same_held(a.host, b.host)


def same_held(a, b) -> None:
    """Two hosts hold the same interrupts in the same places, and each says the same of itself (its outcome, its
    source, irq and device): the model's later calls (a free, a disable, the guest's service) go by these."""
    def of(host):
        where, _, evs, _ = held(host)
        return sorted((where[i], i, e.outcome, e.source, e.irq, getattr(e.device, "bdf", None))
                      for i, e in evs.items())
    ha, hb = of(a), of(b)
    assert ha == hb, f"held interrupts differ: {ha} vs {hb}"


# ------------------------------------------------------------------------------------------ the machine
byte = st.integers(0, 255)


class TwinHosts(RuleBasedStateMachine):
    """Two hosts built alike, the same steps on both; storms: vector engine on ``a``, replay on ``b``."""

    def __init__(self):
        super().__init__()
        self.a = self.b = None
        self.dead = None   # the open known defect this sequence ran into

    # --------------------------------------------------------------------------- plumbing
    def both(self, what: str, fn, *, kernel_changes_first: bool = False):
        """Run fn(world) on both twins: the same result or the same refusal, and a refusal changed nothing —
        except a KernelError where the kernel itself changes state before it fails (``kernel_changes_first``)."""
        outs = []
        for w in (self.a, self.b):
            before = snapshot(w.host)
            try:
                outs.append(("ok", norm(fn(w))))
            except (KernelError, ValueError, TypeError) as e:
                after = snapshot(w.host)
                if after != before and not (kernel_changes_first and isinstance(e, KernelError)):
                    k = next(k for k in sorted(set(after) | set(before), key=repr) if after.get(k) != before.get(k))
                    raise AssertionError(f"{what} refused ({type(e).__name__}: {e}) but changed {k}: "
                                         f"{before.get(k)} -> {after.get(k)}") from e
                outs.append(("refused", type(e).__name__, getattr(e, "errno", None), str(e)))
        assert outs[0] == outs[1], f"{what}: the twins answered {outs[0]} and {outs[1]}"
        STATS["steps"] += 1
        STATS[what + (" refused" if outs[0][0] == "refused" else "")] += 1
        return outs[0]

    def irqs(self) -> list[int]:
        return sorted(self.a.host.genirq.descs)

    def pick(self, seq, i):
        return seq[i % len(seq)] if seq else None

    @initialize(cfg=configs)
    def build(self, cfg):
        self.a, self.b = World(cfg), World(cfg)
        self.primed = set()
        STATS["sequences"] += 1

    @invariant()
    @step
    def twins_agree_and_nothing_is_lost(self):
        if self.a is None:
            return
        for w, who in ((self.a, "twin a (vector engine)"), (self.b, "twin b (replay)")):
            audit(w.host, False, who)
            check_proc(w.host, who)
        same_twins(self.a, self.b)

    def teardown(self):
        if self.a is None:
            return
        if any(m.startswith("Disabling IRQ #") for _, _, m in self.a.host.log):
            STATS["sequences with a line disabled by note_interrupt"] += 1
        if not self.dead:
            step(lambda self: self.dry("at the end"))(self)

    def dry(self, when: str) -> None:
        """host.run() on both: a model that never settles (run() refuses it after ENDLESS_AFTER callbacks: a
        level interrupt nobody lowers storms the guest, as in the kernel) ends the sequence, both twins alike."""
        endless = []
        for w in (self.a, self.b):
            try:
                w.host.run()
            except RuntimeError as e:
                assert endless_refusal(e), e
                endless.append(w)
        same_twins(self.a, self.b)
        assert len(endless) in (0, 2), f"{when}: one twin settles, the other never does"
        if endless:
            self.endless(when)
            return
        for w, who in ((self.a, "twin a"), (self.b, "twin b")):
            audit(w.host, True, f"{who} {when}, run dry")

    def endless(self, when: str) -> None:
        """Both twins storm for ever (the guest never services what keeps its line up): nothing to run dry, and
        the sequence stops here."""
        STATS["sequences ending in an endless model"] += 1
        busy = sorted({t.name.split(" 0x")[0] for _, tok, t in self.a.host.sched._heap
                       if t._token == tok and not t.periodic})
        STATS["endless: " + ", ".join(busy)[:70]] += 1
        self.dead = "endless"

    # --------------------------------------------------------------------------- genirq
    @rule(i=st.integers(0, 99), answer=st.sampled_from(["handled", "none", "alternate", "wake", None, "x", True, 7]),
          flags=st.sampled_from([0, IRQF_SHARED, IRQF_SHARED, IRQF_SHARED | IRQF_ONESHOT, IRQF_ONESHOT]),
          threaded=st.booleans())
    @step
    def request_irq(self, i, answer, flags, threaded):
        irq = self.pick(self.irqs(), i)
        if irq is None:
            return

        def go(w):
            toy = Toy(answer)
            name = f"toy{len(w.toys)}"
            if threaded:
                r = w.host.request_threaded_irq(irq, toy_handler if answer == "wake" else None, toy_thread,
                                                flags | IRQF_ONESHOT, name, toy)
            else:
                r = w.host.request_irq(irq, toy_handler, flags, name, toy)
            w.toys.append((irq, toy))
            return r
        self.both("request_irq", go)

    @precondition(lambda self: self.a is not None and self.a.toys)
    @rule(i=st.integers(0, 99), wrong_irq=st.booleans())
    @step
    def free_irq(self, i, wrong_irq):
        k = i % len(self.a.toys)
        irq = self.a.toys[k][0]
        if wrong_irq:
            irq = self.pick(self.irqs(), i)

        def go(w):
            r = w.host.free_irq(irq, w.toys[k][1])
            if r is not None:
                del w.toys[k]
            return r
        self.both("free_irq", go)

    @rule(i=st.integers(0, 99), enable=st.booleans())
    @step
    def disable_enable(self, i, enable):
        irq = self.pick(self.irqs(), i)
        if irq is None or (not enable and self.a.host.irq_to_desc(irq).depth >= 3):
            return
        self.both("enable_irq" if enable else "disable_irq",
                  lambda w: w.host.enable_irq(irq) if enable else w.host.disable_irq(irq))

    @rule(i=st.integers(0, 99), cpu=st.integers(0, 4))
    @step
    def irq_set_affinity(self, i, cpu):
        """Move a line to another CPU (a line already there first if there is none, a CPU offline sometimes)."""
        descs = self.a.host.genirq.descs
        irq = self.pick([q for q in self.irqs() if descs[q].cpu != cpu] or self.irqs(), i)
        if irq is None:
            return
        self.both("irq_set_affinity", lambda w: w.host.irq_set_affinity(irq, cpu))

    @rule(cpu=st.integers(0, 3), n=st.sampled_from([1, 1, 3, 3, 250]), level=st.booleans())
    @step
    def alloc_irqs(self, cpu, n, level):
        """A host with many more lines: n descriptors on one CPU (250 fill its vector space: ENOSPC)."""
        if cpu >= self.a.host.ncpus:
            return

        def go(w):
            got = 0
            for _ in range(n):
                try:
                    w.host.alloc_irq(None, level=level, cpu=cpu)
                    got += 1
                except KernelError:
                    break
            return got
        self.both("alloc_irqs", go)

    @rule(i=st.integers(0, 99))
    @step
    def prime(self, i):
        """A line nearly at note_interrupt's verdict, as after ~100,000 interrupts nobody handled."""
        irq = self.pick(self.irqs(), i)
        if irq is None:
            return
        for w in (self.a, self.b):
            d = w.host.irq_to_desc(irq)
            d.irq_count, d.irqs_unhandled, d.last_unhandled = 99_990, 99_985, w.host.jiffies
        self.primed.add(irq)

    # --------------------------------------------------------------------------- interrupts and time
    @rule(b=st.sampled_from(BDFS), index=st.integers(0, 3))
    @step
    def raise_msi(self, b, index):
        dev = self.a.host.devices.get(b)
        if dev is None or dev.vector(index) is None:
            return
        self.both("raise_msi", lambda w: w.host.raise_msi(b, index))

    @rule(b=st.sampled_from(BDFS))
    @step
    def raise_intx(self, b):
        dev = self.a.host.devices.get(b)
        if dev is None or not dev.intx_pin:
            return
        self.both("raise_intx", lambda w: w.host.raise_intx(b))

    @rule(i=st.integers(0, 99), cpu=st.integers(0, 3), direct=st.booleans())
    @step
    def glitch(self, i, cpu, direct):
        irq = self.pick(self.irqs(), i)
        if irq is None:
            return
        if direct:
            self.both("generic_handle_irq", lambda w: w.host.generic_handle_irq(irq, cpu % w.host.ncpus))
        else:
            self.both("raise_spurious", lambda w: w.host.raise_spurious(irq))

    @rule(dt=st.sampled_from([0, 1, 200, 1_000, 3_000, 10_000, 4_000_000, 100_000_000]))
    @step
    def advance(self, dt):
        self.both("run(until)", lambda w: w.host.run(until=w.host.now + dt))

    @rule()
    @step
    def run_dry(self):
        self.dry("after host.run()")

    # --------------------------------------------------------------------------- devices and vfio
    @rule(b=st.sampled_from([PT_MSIX, PT_INTX, PT_MSI, ORPHAN, NIC]), vfio=st.booleans())
    @step
    def bind(self, b, vfio):
        dev = self.a.host.devices.get(b)
        if dev is None:
            return

        def go(w):
            if vfio:
                w.vdevs[b] = w.host.vfio_pci_bind(b)
            else:
                w.host.bind_host_driver(b, f"drv-{b[5:7]}")
        self.both("bind vfio" if vfio else "bind host driver", go)

    def _vdev(self, b):
        return b if b in self.a.vdevs else None

    def _fd(self, w, k):
        return -1 if k < 0 else w.efd(k)

    @rule(b=st.sampled_from([PT_INTX, ORPHAN, PT_MSIX]), k=st.integers(-1, NEFD - 1),
          action=st.sampled_from(["trigger", "unmask_fd", "mask", "mask_bool", "unmask", "unmask_bool",
                                  "loopback", "loopback_bool", "disable"]), flag=st.booleans())
    @step
    def vfio_intx(self, b, k, action, flag):
        """VFIO_DEVICE_SET_IRQS on the INTx index, every action QEMU uses."""
        if self._vdev(b) is None:
            return
        I, T, U, M = VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_ACTION_UNMASK, \
            VFIO_IRQ_SET_ACTION_MASK
        N, B, E = VFIO_IRQ_SET_DATA_NONE, VFIO_IRQ_SET_DATA_BOOL, VFIO_IRQ_SET_DATA_EVENTFD
        calls = {"trigger": (E | T, 1, lambda w: [self._fd(w, k)]),
                 "unmask_fd": (E | U, 1, lambda w: [self._fd(w, k)]),
                 "mask": (N | M, 1, None), "mask_bool": (B | M, 1, lambda w: [flag]),
                 "unmask": (N | U, 1, None), "unmask_bool": (B | U, 1, lambda w: [flag]),
                 "loopback": (N | T, 1, None), "loopback_bool": (B | T, 1, lambda w: [flag]),
                 "disable": (N | T, 0, None)}
        flags, count, data = calls[action]
        self.both(f"SET_IRQS INTx {action}",
                  lambda w: w.vdevs[b].set_irqs(flags, I, 0, count, data(w) if data else None))

    @rule(b=st.sampled_from([PT_MSIX, PT_MSI]), start=st.integers(0, 3), ks=st.lists(st.integers(-1, NEFD - 1),
          min_size=0, max_size=4), action=st.sampled_from(["trigger", "trigger", "loopback", "disable"]))
    @step
    def vfio_msi(self, b, start, ks, action):
        """VFIO_DEVICE_SET_IRQS on the MSI/MSI-X index: eventfds per vector, loopback, disable."""
        if self._vdev(b) is None:
            return
        index = VFIO_PCI_MSIX_IRQ_INDEX if b == PT_MSIX else VFIO_PCI_MSI_IRQ_INDEX
        if b == PT_MSI:
            start, ks = 0, ks[:1]
        T, N, E = VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_DATA_NONE, VFIO_IRQ_SET_DATA_EVENTFD
        if action == "trigger":
            fn = lambda w: w.vdevs[b].set_irqs(E | T, index, start, len(ks), [self._fd(w, k) for k in ks])  # noqa
            # vfio_msi_set_block: a vector's old trigger is freed before eventfd_ctx_fdget fails (EBADF), and an
            # error part-way unwinds the block to -1
            self.both(f"SET_IRQS MSI {action}", fn, kernel_changes_first=True)
            return
        elif action == "loopback":
            fn = lambda w: w.vdevs[b].set_irqs(N | T, index, start, max(len(ks), 1))  # noqa: E731
        else:
            fn = lambda w: w.vdevs[b].set_irqs(N | T, index, 0, 0)  # noqa: E731
        self.both(f"SET_IRQS MSI {action}", fn)

    # --------------------------------------------------------------------------- eventfds (userspace)
    @rule(k=st.integers(0, NEFD - 1), op=st.sampled_from(["write", "write", "read", "close", "fresh"]),
          n=st.sampled_from([1, 1, 2, 2**64 - 2]))
    @step
    def eventfd(self, k, op, n):
        efd = self.a.efd(k)
        if op == "close":
            if efd.closed:
                return
            self.both("eventfd close", lambda w: w.efd(k).close())
        elif op == "fresh":
            def go(w):
                w.gen[k] += 1
                w.efds[k] = Eventfd(name=f"efd{k}.{w.gen[k]}")
            self.both("eventfd new", go)
        elif op == "write":
            self.both("eventfd write", lambda w: w.efd(k).write(n))
        else:
            self.both("eventfd read", lambda w: w.efd(k).read())

    # --------------------------------------------------------------------------- KVM
    @rule(g=st.sampled_from(MSI_GSIS), kind=st.sampled_from(["msi", "msi", "msi", "irqchip", "none", "notfee"]),
          dest=st.sampled_from([0, 1, 2, 7, 0xFF]), vector=st.sampled_from([0x21, 0x31, 0x41, 0x42, 0x51, 0x62, 0xE1,
                                                                         2, 15]),
          mode=st.sampled_from([0, 0, 0, 1, 2, 3, 4, 5, 6, 7]), logical=st.booleans(), rh=st.booleans(),
          level=st.sampled_from([False, False, False, True]), pin=st.sampled_from(PINS))
    @step
    def route(self, g, kind, dest, vector, mode, logical, rh, level, pin):
        """KVM_SET_GSI_ROUTING: GSI g becomes an MSI route (any destination, vector, delivery mode, edge or
        level), an IOAPIC pin, or nothing; the rest of the table is kept."""

        def go(w):
            keep = [e for e in w.vm.routing.all() if e.gsi != g]
            if kind in ("msi", "notfee"):
                m = msi.encode(dest_id=dest, vector=vector, delivery_mode=mode, dest_mode_logical=logical,
                               redirection_hint=rh, trigger_level=level)
                lo = m.address_lo if kind == "msi" else (m.address_lo & 0xFFFFF) | 0xFED00000
                keep.append(msi_route(g, lo, m.data, m.address_hi))
            elif kind == "irqchip":
                if pin in w.vm.resamplers:   # its acks would go to g: the resampled pin would stay asserted
                    return "skipped"
                keep.append(irqchip_route(g, KVM_IRQCHIP_IOAPIC, pin))
            return w.vm.kvm_set_gsi_routing(keep)
        self.both("KVM_SET_GSI_ROUTING", go)

    @rule(k=st.integers(0, NEFD - 1), g=st.sampled_from(MSI_GSIS + PINS), resample=st.booleans(),
          r=st.integers(0, NEFD - 1), deassign=st.booleans())
    @step
    def irqfd(self, k, g, resample, r, deassign):
        """KVM_IRQFD: assign (resampling or not) or deassign. A resampler only on a GSI whose IOAPIC pin sends
        its acks back to it (else the pin, asserted for the resample source, would storm the guest for ever)."""
        if resample and g in PINS and self.a.vm.routing.chip_pin(KVM_IRQCHIP_IOAPIC, g) != g:
            return
        if deassign:
            self.both("KVM_IRQFD deassign", lambda w: w.vm.kvm_irqfd(w.efd(k), g, KVM_IRQFD_FLAG_DEASSIGN))
        else:
            self.both("KVM_IRQFD", lambda w: w.vm.kvm_irqfd(w.efd(k), g, KVM_IRQFD_FLAG_RESAMPLE if resample else 0,
                                                           resamplefd=w.efd(r) if resample else None))

    @rule(pin=st.sampled_from(PINS), vector=st.sampled_from([0x31, 0x41, 0x62, 0x63, 0xE1]),
          dest=st.sampled_from([0, 1, 2, 0xFF, 256]), level=st.booleans(), masked=st.sampled_from([False, False, True]),
          mode=st.sampled_from([0, 0, 0, 1, 7, 9]))
    @step
    def ioapic_pin(self, pin, vector, dest, level, masked, mode):
        """The guest programs an IOAPIC pin (its redirection-table entry)."""
        if self.a.vm.ioapic is None:
            return
        self.both("write_redirtbl", lambda w: w.vm.ioapic.write_redirtbl(
            pin, vector=vector, dest_id=dest, trigger_level=level, masked=masked, delivery_mode=mode))

    @rule(v=st.integers(0, 2), mode=st.sampled_from(["running", "halted"]))
    @step
    def vcpu_mode(self, v, mode):
        if v >= len(self.a.vm.vcpus):
            return

        def go(w):
            w.vm.vcpus[v].mode = mode
        self.both("vcpu mode", go)

    @rule(v=st.integers(0, 2), tpr=st.sampled_from([0, 0, 0x20, 0x40, 0x50, 0x60, 0xF0, 1.5]))
    @step
    def set_tpr(self, v, tpr):
        if v >= len(self.a.vm.vcpus):
            return
        self.both("set_tpr", lambda w: w.vm.vcpus[v].set_tpr(tpr))

    @rule(dest=st.sampled_from([0, 1, 7, 0xFF]), vector=st.sampled_from([0x31, 0x41, 0x62, 2]),
          mode=st.sampled_from([0, 1, 4, 7]), level=st.booleans())
    @step
    def signal_msi(self, dest, vector, mode, level):
        m = msi.encode(dest_id=dest, vector=vector, delivery_mode=mode, trigger_level=level)
        self.both("KVM_SIGNAL_MSI", lambda w: w.vm.kvm_signal_msi(m.address_lo, m.address_hi, m.data))

    # --------------------------------------------------------------------------- storms
    @rule(data=st.data())
    @step
    def a_storm(self, data):
        """A storm over the host's sources: vector engine on twin a, replay on twin b."""
        self.storm_step(data)

    @rule(data=st.data())
    @step
    def another_storm(self, data):
        """(Twice as many storms as any other step.)"""
        self.storm_step(data)

    def storm_step(self, data):
        if data.draw(st.sampled_from([True, True, True, False]), "run dry first"):
            self.dry("before a storm")
        ha = self.a.host
        gi = ha.genirq
        lines = [i for i in self.irqs() if gi.descs[i].actions or i < 24]
        lines += [i for i in self.irqs() if i not in lines][:2]
        srcs = list(dict.fromkeys(storm.sources(ha) + [Source("spurious", irq=i) for i in lines]))
        if not srcs:
            return
        pick = data.draw(st.lists(st.integers(0, len(srcs) - 1), min_size=1, max_size=5, unique=True), "sources")
        srcs = [srcs[i] for i in pick]
        lazy = data.draw(st.sampled_from([False, False, False, True]), "lazy")
        chunk = data.draw(st.sampled_from([1, 2, 3, 5, 64, 1 << 21]), "chunk")
        seed = data.draw(st.integers(0, 2**16), "seed")
        start = ha.now + data.draw(st.sampled_from([0, 1, 1000, 4_000_000]), "start")
        if lazy:
            s = storm.poisson(srcs, rate_hz=data.draw(st.sampled_from([1e5, 1e6, 1e7]), "rate"),
                              duration_ns=data.draw(st.sampled_from([10_000, 100_000, 1_000_000]), "duration"),
                              seed=seed, start_ns=start, lazy=True,
                              slice_ns=data.draw(st.sampled_from([1_000, 50_000, 1_000_000]), "slice"))
        else:
            n = data.draw(st.integers(1, 300), "n")
            span = data.draw(st.sampled_from([2_000, 50_000, 3_000_000, 300_000_000]), "span")
            grid = data.draw(st.sampled_from([1, 1, 500, 4_000_000]), "grid")
            rng = np.random.default_rng(seed)
            t = start + np.sort(rng.integers(0, max(span // grid, 1), n)).astype(np.int64) * grid
            s = storm.from_arrays(t, rng.integers(0, len(srcs), n).astype(np.uint16), srcs)
        self.run_storm(s, chunk)

    def run_storm(self, s, chunk):
        a, b = self.a.host, self.b.host
        lazy = getattr(s, "lazy", False)
        before, log0, now0 = snapshot(a), list(a.log), a.now
        try:
            ra = storm.run(a, s, "vector", chunk_events=chunk, progress=False)
        except storm.Unsupported as e:
            assert snapshot(a) == before and a.log == log0 and a.now == now0, \
                f"the vector engine refused ({e}) after changing the host"
            STATS["storms refused by the vector engine"] += 1
            STATS["unsupported: " + str(e)[:60]] += 1
            ra = None
        endless = []
        for w in ((a, b) if ra is None else (b,)):
            try:
                r = storm.run(w, s, "reference", progress=False)
            except RuntimeError as e:   # run() refused an endless model
                assert endless_refusal(e), e
                endless.append(w)
                continue
            if w is a:
                ra = r
            else:
                rb = r
        if endless:
            assert ra is None and len(endless) == 2, \
                "the replay calls the model endless after this storm, " + \
                ("the vector engine settled it" if ra is not None else "on one twin only")
            same_twins(self.a, self.b)
            self.endless("after a storm")
            return
        STATS["storms vector = replay" if ra.engine == "vector" else "storms replayed on both"] += 1
        if ra.engine == "vector":
            STATS["chunk %d" % chunk if chunk < 1 << 21 else "chunk whole"] += 1
            for o in (ra.ledger if not lazy else ()):
                STATS["vector outcome " + o] += 1
        if lazy:
            assert ra.ledger == rb.ledger, f"lazy storm: ledgers {ra.ledger} vs {rb.ledger}"
            for f in ("counters", "t_end", "log", "proc_text"):
                assert getattr(ra, f) == getattr(rb, f), f"lazy storm: {f} differ"
            STATS["lazy storms"] += 1
        else:
            assert ra.equals(rb), ra.diff(rb)
        assert sum(ra.ledger.values()) == len(s)
        STATS["storm interrupts"] += len(s)
        for w, who in ((self.a, "twin a after a storm"), (self.b, "twin b after a storm")):
            audit(w.host, True, who)


TwinHosts.TestCase.settings = settings(max_examples=50, stateful_step_count=40, deadline=None,
                                       suppress_health_check=list(HealthCheck))


@contextlib.contextmanager
def endless_after(n: int = ENDLESS_AFTER):
    old, irqlab.sched.MAX_RUN_TO_QUIET = irqlab.sched.MAX_RUN_TO_QUIET, n
    try:
        yield
    finally:
        irqlab.sched.MAX_RUN_TO_QUIET = old


def run_fuzzer(seconds: float, **kw) -> int:
    """Fresh random sequences for ``seconds`` (IRQLAB_FUZZ_SECONDS); returns how many batches ran."""
    end, batches = time.monotonic() + seconds, 0
    with endless_after():
        while time.monotonic() < end:
            run_state_machine_as_test(TwinHosts, settings=settings(
                max_examples=25, stateful_step_count=50, deadline=None, derandomize=False, database=None,
                suppress_health_check=list(HealthCheck), print_blob=True, **kw))
            batches += 1
    return batches


def test_twin_hosts():
    """The twin fuzzer: a fixed seed in make test; IRQLAB_FUZZ_SECONDS=N hunts with fresh sequences for N s."""
    t0 = time.monotonic()
    if SECONDS > 0:
        run_fuzzer(SECONDS)
    else:
        with endless_after():
            run_state_machine_as_test(TwinHosts, settings=settings(TwinHosts.TestCase.settings, derandomize=True,
                                                                   database=None))
    el = time.monotonic() - t0
    FUZZ_REPORT.append(
        f"twin fuzzer: {STATS['sequences']:,} sequences clean ({STATS['steps']:,} steps; "
        f"{STATS['sequences with a line disabled by note_interrupt']:,} with a line disabled by note_interrupt), "
        f"{STATS['storms vector = replay']:,} storms vector engine = replay, {STATS['storms replayed on both']:,} "
        f"replayed on both ({STATS['storm interrupts']:,} storm interrupts) in {el:.0f} s; open defects kept out: "
        f"{', '.join(sorted(OPEN)) or 'none'}")
    print("\n" + FUZZ_REPORT[-1])
    for k, v in sorted(STATS.items()):
        print(f"  {k}: {v:,}")
