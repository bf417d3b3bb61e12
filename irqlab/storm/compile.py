"""Compile a host's live state into the tables the vector engine runs on, once per storm.

Reads what the object model would consult for each interrupt: the descriptor table (irq_desc: depth,
masked, actions, spurious counters), vector_irq, the devices (INTx status, MSI-X mask), vfio-pci's handlers
and triggers, eventfd waiters, irqfds and their cached routes (virt/kvm/eventfd.c), KVM's routing table and
IOAPIC pins, MSI decoding (arch/x86/kvm/irq.c, lapic.c), posted IRTEs (irqbypass), vCPUs and Timing.
Simplification: what the vector engine does not cover raises ``Unsupported`` (a NotImplementedError) naming
the feature, so a configuration is either computed exactly or refused — never approximated.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..kvm import msi as _msi
from ..ledger import Outcome
from ..genirq import irq_default_primary_handler
from ..pci import HostDriver
from ..spurious import POLL_SPURIOUS_IRQ_INTERVAL
from ..sched import NSEC_PER_JIFFY
from ..uapi import (
    IRQF_PERCPU, IRQF_SHARED, IRQS_ONESHOT, IRQS_SPURIOUS_DISABLED, KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQ_ROUTING_MSI, KVM_IRQCHIP_IOAPIC,
    KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE,
)
from ..uapi import __IRQF_TIMER as _IRQF_TIMER_BIT
from ..vfio import VfioPciDevice

__all__ = ["Unsupported", "compile_host", "source_target", "Plan", "POLL_NS", "INSTANT_OUTCOME",
           "R_LINE", "R_POSTED", "R_PBA", "R_NOHANDLER", "R_INTX", "L_NONE", "L_MSI_HOST", "L_MSI_VFIO", "L_INTX",
           "L_MSI_THREAD", "L_INTX_THREAD"]

POLL_NS = POLL_SPURIOUS_IRQ_INTERVAL * NSEC_PER_JIFFY
#: every delay must be shorter than this, so the spurious poller (armed at least 96 ms before it fires)
#: always runs first among timers due at the same instant
MAX_DELAY_NS = POLL_NS - NSEC_PER_JIFFY

# how a source's interrupt enters the host
R_LINE, R_POSTED, R_PBA, R_NOHANDLER, R_INTX = range(5)
# what the handlers of a line are
L_NONE, L_MSI_HOST, L_MSI_VFIO, L_INTX, L_MSI_THREAD, L_INTX_THREAD = range(6)


class Unsupported(NotImplementedError):
    """The vector engine does not cover this configuration (engine="reference" does)."""


def _handler_kind(action: Any) -> str:
    if action.thread_fn is not None:
        tf = getattr(action.thread_fn, "__func__", None)
        if action.handler is irq_default_primary_handler and tf is HostDriver.msi_thread:
            return "host_msi_thread"
        if action.handler is irq_default_primary_handler and tf is HostDriver.intx_thread:
            return "host_intx_thread"
        raise Unsupported(f"irq action {action.name!r} is threaded with a custom handler or thread function: the "
                          "vector engine knows host drivers' threads (bind_host_driver(threaded=True)) only")
    f = getattr(action.handler, "__func__", None)
    if f is HostDriver.msi_handler:
        return "host_msi"
    if f is HostDriver.intx_handler:
        return "host_intx"
    if f is VfioPciDevice.vfio_msihandler:
        return "vfio_msi"
    if f is VfioPciDevice.vfio_intx_handler:
        return "vfio_intx"
    raise Unsupported(f"irq action {action.name!r} has a custom handler: the vector engine knows host drivers and "
                      "vfio-pci's handlers only")


def _ioapic_message(vm: Any, red: Any) -> tuple[Any, list[int]]:
    """ioapic_service: an IOAPIC redirection entry as the message it sends (its trigger mode included), and
    the vCPUs that message reaches."""
    msg = _msi.encode(dest_id=red.dest_id, vector=red.vector, delivery_mode=red.delivery_mode,
                      dest_mode_logical=red.dest_mode_logical, trigger_level=red.trigger_level)
    dests, _ = _msi.delivery_destinations(msg, vm.apic_identities())
    return msg, dests


@dataclass(eq=False)
class VcpuPlan:
    """A vCPU that takes interrupts in the storm: its entry window and how it counts."""

    vcpu: Any
    index: int
    delta: int           # delivery delay: the entry window
    pir: bool            # interrupts wait in the PIR (halted with APICv, or VT-d posted to a halted vCPU)
    halted: bool
    apicv: bool
    pcpu: int
    dedicated: bool = False  # takes one level-triggered INTx vector and nothing else
    has_iommu: bool = False
    has_cpu: bool = False    # takes interrupts that are not VT-d posted
    has_work: bool = False   # takes interrupts injected by irqfd work
    vectors_iommu: set = field(default_factory=set)  # vectors the IOMMU posts to it (VT-d: the TMR is left alone)
    vectors_kvm: set = field(default_factory=set)    # vectors __apic_accept_irq accepts (edge: the TMR bit cleared)
    handled: set = field(default_factory=set)        # of those, the ones in ioapic_handled_vectors (EOI exits)
    stale_tmr: set = field(default_factory=set)      # posted vectors whose TMR bit an earlier level interrupt set


@dataclass(eq=False)
class Accept:
    """One LAPIC accept a delivery makes: (vCPU plan, vector), or an instant one that bypasses the IRR."""

    vcpu: VcpuPlan
    vector: int
    #: "fixed" (Fixed/Lowest: IRR/PIR); smi/remrd/nmi/init/startup (counted at once, no IRR); "extint"
    #: (__apic_accept_irq returns 0); "illegal" (a Fixed/Lowest vector 0-15: refused, ESR set)
    mode: str = "fixed"
    lowest: bool = False  # APIC_DM_LOWEST: apic_arb_prio + 1 per accept


#: what an instant accept makes of the interrupt it carries
INSTANT_OUTCOME = {"smi": Outcome.INJECTED, "remrd": Outcome.INJECTED, "nmi": Outcome.INJECTED,
                   "init": Outcome.INJECTED, "startup": Outcome.INJECTED, "extint": Outcome.NO_ROUTE,
                   "illegal": Outcome.NO_ROUTE}


@dataclass(eq=False)
class Delivery:
    """What delivering an interrupt does downstream: LAPIC accepts (the first carries the interrupt)."""

    accepts: list[Accept]
    pic: list[tuple[Any, int]] = field(default_factory=list)  # (KvmPic, pin) a kvm_set_irq pulse touches


@dataclass(eq=False)
class IrqfdPlan:
    irqfd: Any
    fast: bool
    delivery: Delivery
    index: int = 0


@dataclass(eq=False)
class EfdPlan:
    efd: Any
    irqfd: IrqfdPlan | None


@dataclass(eq=False)
class DevPlan:
    """A device that asserts INTx on a line: its host driver's action, vfio-pci, or nobody."""

    dev: Any
    kind: str                 # "host", "vfio" or "orphan"
    order: int                # position in host.devices (the poller's asserting_devices order)
    action: Any = None
    vfio: Any = None          # IntxVfioPlan for kind "vfio"


@dataclass(eq=False)
class IntxVfioPlan:
    """vfio-pci INTx with a resampling irqfd on an IOAPIC level pin, delivered to a dedicated vCPU."""

    vdev: Any
    trigger: Any
    irqfd: Any
    resampler: Any
    resamplefd: Any
    virqfd: Any
    vector: int
    vcpu: VcpuPlan


@dataclass(eq=False)
class LinePlan:
    desc: Any
    index: int
    kind: int
    up: bool                  # dispatches now (started, depth 0, unmasked, with actions)
    actions: list = field(default_factory=list)   # (action, kind str)
    efd: EfdPlan | None = None
    devices: list[DevPlan] = field(default_factory=list)
    polled: bool = False      # the spurious poller runs its handlers once it is spurious-disabled
    spurious_disabled: bool = False
    dynamic: bool = False     # may change state during the storm (IRQ_NONE is possible)
    stuckable: bool = False   # a level line a device no handler claims may assert: it fires again at every EOI


@dataclass(eq=False)
class SourcePlan:
    src: Any
    route: int
    line: LinePlan | None = None
    vector: Any = None        # MsiVector for MSI sources
    device: DevPlan | None = None
    posted: Accept | None = None
    irte: Any = None
    cpu: int = -1             # the host CPU its vector arrives at (irqlab/cpu.py), -1 if none (posted, PBA)
    hvec: int = -1            # that host vector


@dataclass(eq=False)
class Plan:
    sources: list[SourcePlan]
    lines: list[LinePlan]
    irqfds: list[IrqfdPlan]
    vcpus: list[VcpuPlan]
    noirqdebug: bool
    poll_next: int | None     # when the spurious poller fires next (None: not armed)
    cpu_curr: dict = field(default_factory=dict)  # host CPU -> VcpuPlan of the vCPU it runs (Cpu.curr), if any


def source_target(host: Any, s: Any) -> Any:
    """What a storm source raises on ``host``: the irq_desc of a glitch, the device of an INTx assertion, the
    MsiVector of a message; ValueError if the host has no such thing (both engines check this)."""
    if s.kind == "spurious":
        desc = host.genirq.descs.get(s.irq)
        if desc is None:
            raise ValueError(f"{s.label}: the host has no irq {s.irq}")
        return desc
    dev = host.devices.get(s.bdf)
    if dev is None:
        raise ValueError(f"{s.label}: no device {s.bdf} on this host")
    if s.kind == "intx":
        if not dev.intx_pin or dev.gsi is None:
            raise ValueError(f"{s.label}: the device has no INTx pin (Interrupt Pin register is 0)")
        return dev
    v = dev.vector(s.index)
    if v is None:
        raise ValueError(f"{s.label}: {s.bdf} has no enabled MSI/MSI-X vector {s.index}")
    return v


class _Compiler:
    def __init__(self, host: Any, sources: list):
        self.host = host
        self.t = host.timing
        self.lines: dict[int, LinePlan] = {}
        self.efds: dict[int, EfdPlan] = {}
        self.irqfds: dict[int, IrqfdPlan] = {}
        self.vcpus: dict[int, VcpuPlan] = {}
        self.devs: dict[str, DevPlan] = {}
        self._check_host()
        self.sources = [self._source(s) for s in sources]
        self._polled_lines()
        self._check_vcpus()

    # ------------------------------------------------------------------ the host as a whole
    def _check_host(self) -> None:
        h, t = self.host, self.t
        if h.genirq.irqfixup:
            raise Unsupported("irqfixup/irqpoll (misrouted_irq polls every line on each unhandled interrupt)")
        gi = h.genirq
        pending = [tm for _, tok, tm in h.sched._heap if tm._token == tok and tm is not gi.poll_timer]
        if pending:
            raise Unsupported(f"the host has a timer or work pending ({pending[0].name}): host.run() before a storm")
        for name in ("irqfd_work_ns", "vmexit_ns", "guest_handler_ns", "vcpu_wakeup_ns", "posted_delivery_ns"):
            v = getattr(t, name)
            if not 1 <= v < MAX_DELAY_NS:
                raise Unsupported(f"Timing.{name}={v}: the vector engine needs every delay between 1 ns and "
                                  f"{MAX_DELAY_NS:,} ns (0 interleaves work between simultaneous interrupts)")
        if not 1 <= t.kick_ns < MAX_DELAY_NS:
            raise Unsupported(f"Timing.kick_ns={t.kick_ns} out of range")
        for dev in h.devices.values():
            ev = dev.intx_status_event
            if ev is not None and ev.outcome is None:
                raise Unsupported(f"{dev.bdf} is asserting INTx with an interrupt in flight")
        for desc in gi.descs.values():
            ev = desc.pending_event
            if ev is not None and ev.outcome != Outcome.PENDING:
                raise Unsupported(f"irq {desc.irq} holds an interrupt that is not pending")
        for vm in h.vms:
            for v in vm.vcpus:
                lap = v.lapic  # vectors the TPR blocks may wait in the IRR (they stay blocked all storm long)
                if lap.isr or v.pi.pir or v.pi.on or any((x & 0xF0) > lap.tpr for x in lap.irr):
                    raise Unsupported(f"vm{vm.id} vcpu{v.id} has interrupts pending: host.run() first")

    def _polled_lines(self) -> None:
        """poll_spurious_irqs runs try_one_irq on every spurious-disabled line, whether the storm raises
        anything there or not: those lines are part of the plan too."""
        gi = self.host.genirq
        if gi.poll_timer is None or not gi.poll_timer.pending:
            return
        for irq, desc in sorted(gi.descs.items()):
            if irq and desc.istate & IRQS_SPURIOUS_DISABLED and desc.actions and irq not in self.lines:
                a = desc.actions[0]
                if a.flags & IRQF_SHARED and not a.flags & (_IRQF_TIMER_BIT | IRQF_PERCPU):
                    lp = self._line(desc)
                    if lp.kind not in (L_INTX, L_INTX_THREAD):
                        raise Unsupported(f"irq {irq} is spurious-disabled and polled with {lp.actions[0][1]} "
                                          "handlers: the vector engine polls INTx lines only")

    # ------------------------------------------------------------------ sources
    def _source(self, s: Any) -> SourcePlan:
        sp = self._source_route(s)
        if sp.route in (R_LINE, R_INTX, R_NOHANDLER):   # a vector at a host CPU's local APIC
            desc = sp.line.desc if sp.line is not None else sp.vector.desc
            sp.cpu, sp.hvec = desc.cpu, desc.vector
        return sp

    def _source_route(self, s: Any) -> SourcePlan:
        h = self.host
        x = source_target(h, s)
        if s.kind == "spurious":
            return SourcePlan(s, R_LINE, line=self._line(x))
        if s.kind == "intx":
            line = self._line(h.genirq.descs[x.gsi])
            dp = self._dev(x, line)
            if dp.kind == "orphan" and line.desc.level:
                line.stuckable = True
            return SourcePlan(s, R_INTX, line=line, device=dp)
        v = x
        if v.masked:
            return SourcePlan(s, R_PBA, vector=v)
        irte = h.irqbypass.posted_irte(v.irq)
        if irte is not None:
            vp = self._vcpu(irte.vcpu)
            if irte.vector < 16:  # refused where it reaches the LAPIC (the SDM's illegal vector): no_route
                return SourcePlan(s, R_POSTED, vector=v, posted=Accept(vp, irte.vector, "illegal"), irte=irte)
            vp.has_iommu = True
            vp.vectors_iommu.add(irte.vector)
            return SourcePlan(s, R_POSTED, vector=v, posted=Accept(vp, irte.vector), irte=irte)
        desc = v.desc
        if h.genirq.vector_irq[desc.cpu].get(desc.vector) is not desc:
            return SourcePlan(s, R_NOHANDLER, vector=v)
        return SourcePlan(s, R_LINE, vector=v, line=self._line(desc))

    # ------------------------------------------------------------------ lines
    def _line(self, desc: Any) -> LinePlan:
        lp = self.lines.get(desc.irq)
        if lp is not None:
            return lp
        acts = [(a, _handler_kind(a)) for a in desc.actions]
        kinds = [k for _, k in acts]
        if not acts:
            kind = L_NONE
        elif kinds == ["host_msi"]:
            kind = L_MSI_HOST
        elif kinds == ["vfio_msi"]:
            kind = L_MSI_VFIO
        elif kinds == ["host_msi_thread"]:
            kind = L_MSI_THREAD
        elif kinds and all(k == "host_intx_thread" for k in kinds):
            kind = L_INTX_THREAD
        elif all(k in ("host_intx", "vfio_intx") for k in kinds) and kinds.count("vfio_intx") <= 1:
            kind = L_INTX
        else:
            raise Unsupported(f"irq {desc.irq} has the actions {kinds}: the vector engine takes one MSI handler, "
                              "or INTx handlers (host drivers and at most one vfio-pci device)")
        if desc.unlazy:
            raise Unsupported(f"irq {desc.irq} is IRQ_DISABLE_UNLAZY (vfio INTx of a device without INTx "
                              "masking: vfio disables and enables the line on each interrupt)")
        up = bool(acts) and desc.depth == 0 and not desc.disabled and not desc.masked
        lp = LinePlan(desc, len(self.lines), kind, up, acts)
        lp.spurious_disabled = bool(desc.istate & IRQS_SPURIOUS_DISABLED)
        # try_one_irq: not irq 0 (poll_spurious_irqs skips it), not per-CPU, first action shared and not a timer
        lp.polled = bool(acts) and desc.irq != 0 and bool(acts[0][0].flags & IRQF_SHARED) \
            and not acts[0][0].flags & (_IRQF_TIMER_BIT | IRQF_PERCPU)
        lp.dynamic = kind == L_INTX or (up and (desc.irqs_unhandled > 0 or desc.irq_count > 0)
                                        and not self.host.genirq.noirqdebug)
        self.lines[desc.irq] = lp
        if kind == L_MSI_VFIO:
            lp.efd = self._efd(acts[0][0].dev_id)
        if kind in (L_MSI_THREAD, L_INTX_THREAD):
            self._threaded_line(lp)
        if kind in (L_INTX, L_INTX_THREAD):
            for a, _ in acts:
                self._dev(a.dev_id.dev, lp)
            # a device no driver on the line serves, its Status bit set (held while the line is down): the
            # poller's try_one_irq claims its interrupt even when the storm raises nothing there
            for dev in self.host.devices.values():
                if dev.gsi == desc.irq and dev.intx_status_event is not None and not dev.disintx:
                    self._dev(dev, lp)
        return lp

    def _threaded_line(self, lp: LinePlan) -> None:
        """A line whose handlers are host drivers' irq threads: the thread runs irq_thread_ns after the wake."""
        d = lp.desc
        D = self.t.irq_thread_ns
        if not 1 <= D < MAX_DELAY_NS:
            raise Unsupported(f"Timing.irq_thread_ns={D} on irq {d.irq}: the vector engine needs 1..{MAX_DELAY_NS - 1:,} ns")
        if any(a.runthread for a, _ in lp.actions) or d.threads_oneshot or d.threads_active:
            raise Unsupported(f"irq {d.irq}: an irq thread is woken: host.run() before a storm")
        if lp.kind == L_INTX_THREAD:
            if not (d.level and d.istate & IRQS_ONESHOT):
                raise Unsupported(f"irq {d.irq}: threaded INTx on a line that is not a level IRQS_ONESHOT line")
            if d.pending_event is not None and lp.up:
                raise Unsupported(f"irq {d.irq} holds an interrupt while it is up")

    def _dev(self, dev: Any, line: LinePlan) -> DevPlan:
        dp = self.devs.get(dev.bdf)
        if dp is not None:
            return dp
        order = list(self.host.devices).index(dev.bdf)
        if dev.gsi != line.desc.irq:
            raise AssertionError("device on the wrong line")
        drv = dev.driver
        act = None
        for a, k in line.actions:
            if k in ("host_intx", "vfio_intx", "host_intx_thread") and a.dev_id is drv:
                act = a
        if act is None:
            dp = DevPlan(dev, "orphan", order)
        elif isinstance(drv, HostDriver):
            dp = DevPlan(dev, "host", order, act)
        else:
            dp = DevPlan(dev, "vfio", order, act, self._intx_vfio(drv, line))
        if dev.disintx and dp.kind != "vfio":
            raise Unsupported(f"{dev.bdf} has INTx Disable set without vfio-pci masking it")
        ev = dev.intx_status_event
        if ev is not None and dp.kind == "host" and (line.up or ev.outcome != Outcome.PENDING):
            raise Unsupported(f"{dev.bdf}'s driver left its INTx status set")
        if ev is not None and dp.kind == "vfio" and (line.up or ev.outcome != Outcome.PENDING or dev.disintx):
            raise Unsupported(f"{dev.bdf}: vfio INTx with the status bit set (a round trip in progress)")
        line.devices.append(dp)
        line.devices.sort(key=lambda d: d.order)
        self.devs[dev.bdf] = dp
        return dp

    def _intx_vfio(self, vdev: Any, line: LinePlan) -> IntxVfioPlan:
        d = vdev.dev
        what = f"vfio INTx of {d.bdf}"
        if not d.pci_2_3:
            raise Unsupported(f"{what}: a device without INTx masking (not PCI 2.3)")
        if vdev.intx_masked or d.disintx:
            raise Unsupported(f"{what} is masked already (its last round trip never ended)")
        trig = vdev.intx_trigger
        if trig is None:
            raise Unsupported(f"{what} has no trigger eventfd")
        if trig.semaphore:
            raise Unsupported(f"{what}: an EFD_SEMAPHORE trigger")
        irqfds = [f for vm in self.host.vms for f in vm.irqfds if f.eventfd is trig]
        if len(trig.waiters) != 1 or len(irqfds) != 1 or trig.waiters[0] is not irqfds[0].wait:
            raise Unsupported(f"{what}: the trigger must have exactly one subscriber, a resampling irqfd")
        f = irqfds[0]
        if f.resampler is None or f.resamplefd is None:
            raise Unsupported(f"{what}: the irqfd does not resample (the device would stay masked)")
        res = f.resampler
        if len(res.irqfds) != 1:
            raise Unsupported(f"{what}: several irqfds resample GSI {f.gsi}")
        rfd = f.resamplefd
        vq = vdev.intx_unmask
        if vq is None or vq.eventfd is not rfd or rfd.waiters != [vq.wait] or rfd.semaphore:
            raise Unsupported(f"{what}: the resamplefd must be vfio's unmask eventfd and nothing else's")
        vm = f.vm
        entries = vm.routing.entries(f.gsi)
        if len(entries) != 1 or entries[0].type != KVM_IRQ_ROUTING_IRQCHIP or entries[0].irqchip != KVM_IRQCHIP_IOAPIC:
            raise Unsupported(f"{what}: GSI {f.gsi} must route to exactly one IOAPIC pin (no PIC, no MSI)")
        pin = entries[0].pin
        ioapic = vm.ioapic
        red = ioapic.redirtbl[pin]
        if (red.masked or not red.trigger_level or red.remote_irr or ioapic.irr & (1 << pin) or ioapic.irq_states[pin]
                or ioapic.irq_eoi[pin] or ioapic.eoi_inject.pending):
            raise Unsupported(f"{what}: IOAPIC pin {pin} must be an unmasked, idle level-triggered pin")
        if vm.routing.chip_pin(KVM_IRQCHIP_IOAPIC, pin) != f.gsi:
            raise Unsupported(f"{what}: IOAPIC pin {pin}'s ack notifiers go to GSI "
                              f"{vm.routing.chip_pin(KVM_IRQCHIP_IOAPIC, pin)}, routed to it after GSI {f.gsi}")
        if red.delivery_mode not in (0, 1) or red.vector < 16:
            raise Unsupported(f"{what}: IOAPIC pin {pin} must deliver Fixed/Lowest to a vector >= 16")
        if ioapic.pins_for_vector(red.vector) != [pin]:
            raise Unsupported(f"{what}: vector 0x{red.vector:02x} is on several IOAPIC pins")
        _, dests = _ioapic_message(vm, red)
        if len(dests) != 1:
            raise Unsupported(f"{what}: IOAPIC pin {pin} must target exactly one vCPU")
        vp = self._vcpu(vm.vcpus[dests[0]])
        if vp.dedicated or vp.has_cpu or vp.has_iommu or vp.has_work:
            raise Unsupported(f"{what}: vcpu{vp.vcpu.id} must take this INTx vector and nothing else")
        vp.dedicated = True
        if vp.vcpu.lapic.tpr & 0xF0 >= red.vector & 0xF0:
            raise Unsupported(f"{what}: the vCPU's TPR blocks vector 0x{red.vector:02x}")
        # __apic_accept_irq sets the TMR before it posts, so the guest EOIs the level vector in every mode
        return IntxVfioPlan(vdev, trig, f, res, rfd, vq, red.vector, vp)

    # ------------------------------------------------------------------ eventfds and irqfds
    def _efd(self, efd: Any) -> EfdPlan:
        ep = self.efds.get(id(efd))
        if ep is not None:
            return ep
        irqfds = [f for vm in self.host.vms for f in vm.irqfds if f.eventfd is efd]
        if not efd.waiters:
            ep = EfdPlan(efd, None)
        elif len(irqfds) == 1 and efd.waiters == [irqfds[0].wait]:
            ep = EfdPlan(efd, self._irqfd(irqfds[0]))
        else:
            raise Unsupported(f"eventfd {efd.name} has subscribers other than one irqfd")
        if efd.semaphore and ep.irqfd is not None and efd.count:
            raise Unsupported(f"eventfd {efd.name}: EFD_SEMAPHORE with a count already pending")
        self.efds[id(efd)] = ep
        return ep

    def _irqfd(self, f: Any) -> IrqfdPlan:
        fp = self.irqfds.get(id(f))
        if fp is not None:
            return fp
        vm = f.vm
        e = f.irq_entry
        if e is not None and e.type == KVM_IRQ_ROUTING_MSI:  # irqfd_wakeup tries every irqfd, resampling or not
            msg = _msi.decode(e.address_lo, e.data, e.address_hi, x2apic_32bit_ids=vm.x2apic_32bit_ids)
            dests = _msi.fast_destinations(msg, vm.apic_identities())
            if dests is not None:
                fp = IrqfdPlan(f, True, self._msi_delivery(vm, msg, dests, f"irqfd on GSI {f.gsi}"))
        if fp is None:  # irqfd->inject: kvm_set_irq on every routing entry of the GSI
            if f.resamplefd is not None:
                raise Unsupported(f"a resampling irqfd on GSI {f.gsi} that is not vfio INTx's")
            acc: list[Accept] = []
            pic = []
            for ent in vm.routing.entries(f.gsi):
                if ent.type == KVM_IRQ_ROUTING_MSI:
                    msg = _msi.decode(ent.address_lo, ent.data, ent.address_hi, x2apic_32bit_ids=vm.x2apic_32bit_ids)
                    dests, _ = _msi.delivery_destinations(msg, vm.apic_identities())
                    acc += self._msi_delivery(vm, msg, dests, f"GSI {f.gsi}").accepts
                elif ent.irqchip == KVM_IRQCHIP_IOAPIC:
                    red = vm.ioapic.redirtbl[ent.pin]
                    if red.trigger_level:
                        raise Unsupported(f"irqfd on GSI {f.gsi}: a level-triggered IOAPIC pin without resampling "
                                          "(remote IRR round trips)")
                    if vm.ioapic.irr & (1 << ent.pin) or vm.ioapic.irq_states[ent.pin]:
                        raise Unsupported(f"IOAPIC pin {ent.pin} is asserted already")
                    if red.masked:
                        continue
                    msg, dests = _ioapic_message(vm, red)
                    acc += self._msi_delivery(vm, msg, dests, f"IOAPIC pin {ent.pin}").accepts
                elif ent.irqchip in (KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE):
                    pic.append((vm.pic, ent.pin + (8 if ent.irqchip == KVM_IRQCHIP_PIC_SLAVE else 0)))
            if len({id(a.vcpu) for a in acc if a.mode == "fixed"}) != len([a for a in acc if a.mode == "fixed"]):
                raise Unsupported(f"irqfd on GSI {f.gsi}: several routes to the same vCPU")
            fp = IrqfdPlan(f, False, Delivery(acc, pic))
            for a in acc:
                a.vcpu.has_work = True
        fp.index = len(self.irqfds)
        self.irqfds[id(f)] = fp
        return fp

    def _msi_delivery(self, vm: Any, msg: Any, dests: list[int], what: str) -> Delivery:
        """The accepts of a message on the vCPUs ``dests`` (from msi.fast_destinations or the slow path)."""
        if msg.trigger_level:
            raise Unsupported(f"{what}: a level-triggered MSI")
        acc = []
        mode = msg.kvm_mode
        for i in dests:
            vp = self._vcpu(vm.vcpus[i])
            if mode in ("fixed", "lowest"):
                if msg.vector < 16:  # the SDM's illegal vector: refused before __apic_accept_irq, ESR set
                    acc.append(Accept(vp, msg.vector, "illegal"))
                    continue
                acc.append(Accept(vp, msg.vector, lowest=mode == "lowest"))
                vp.has_cpu = True
                vp.vectors_kvm.add(msg.vector)
            else:  # smi, remrd, nmi, init, startup: counted, no IRR; extint: ignored (__apic_accept_irq gives 0)
                acc.append(Accept(vp, msg.vector, mode))
        return Delivery(acc)

    # ------------------------------------------------------------------ vCPUs
    def _vcpu(self, vcpu: Any) -> VcpuPlan:
        vp = self.vcpus.get(id(vcpu))
        if vp is None:
            halted = vcpu.mode == "halted"
            vp = VcpuPlan(vcpu, len(self.vcpus), vcpu.delivery_ns, halted and vcpu.vm.apicv, halted, vcpu.vm.apicv,
                          vcpu.pcpu)
            self.vcpus[id(vcpu)] = vp
        return vp

    def _check_vcpus(self) -> None:
        for vp in self.vcpus.values():
            if vp.dedicated and (vp.has_cpu or vp.has_iommu or vp.has_work):
                raise Unsupported(f"vcpu{vp.vcpu.id} takes a vfio INTx vector and other interrupts")
            if vp.halted and not vp.apicv and vp.has_iommu:
                if vp.has_cpu:
                    raise Unsupported(f"vcpu{vp.vcpu.id}: halted without APICv, taking VT-d posted and other "
                                      "interrupts (PIR and IRR at once)")
                vp.pir = True
            if vp.has_work and (vp.has_cpu or vp.has_iommu) and self.t.irqfd_work_ns == vp.delta:
                raise Unsupported(f"vcpu{vp.vcpu.id} takes irqfd-work and direct interrupts, and irqfd_work_ns equals "
                                  "its delivery delay (ties decided by the order of the interrupts behind them)")
            if not vp.dedicated:
                self._check_eoi(vp)

    def _check_eoi(self, vp: VcpuPlan) -> None:
        """How the guest EOIs the vCPU's vectors, and what each EOI does (lapic.c kvm_lapic_set_eoi →
        kvm_ioapic_send_eoi for a vector in ioapic_handled_vectors, an EOI exit with APICv too)."""
        vc = vp.vcpu
        vm, lap, io = vc.vm, vc.lapic, vc.vm.ioapic
        vp.stale_tmr = {x for x in vp.vectors_iommu if x in lap.tmr}
        both = vp.stale_tmr & vp.vectors_kvm
        if both:
            raise Unsupported(f"vcpu{vc.id}: vector 0x{min(both):02x} has its TMR bit set by an earlier level interrupt "
                              "and comes both posted by the IOMMU and through __apic_accept_irq (which clears it)")
        for x in sorted(vp.vectors_iommu | vp.vectors_kvm):
            if vm.guest_level_vector(x):
                raise Unsupported(f"vcpu{vc.id}: vector 0x{x:02x} is a level-triggered IOAPIC pin's too: the guest "
                                  "EOIs it after its handler")
            if not vc.kvm_ioapic_handles_vector(x):
                continue
            vp.handled.add(x)
            pins = [p for p, e in enumerate(io.redirtbl) if e.vector == x] if io is not None else []
            if any(vm.kvm_irq_has_notifier(KVM_IRQCHIP_IOAPIC, p) for p in pins):
                raise Unsupported(f"vcpu{vc.id}: vector 0x{x:02x} is an IOAPIC pin's with an ack notifier (a "
                                  "resampler): each EOI runs it")
            if x in vp.stale_tmr and any(io.irq_eoi[p] or (io.irr >> p & 1 and not io.redirtbl[p].masked)
                                         for p in pins):
                raise Unsupported(f"vcpu{vc.id}: vector 0x{x:02x}'s EOIs are level (its TMR bit) and re-service an "
                                  "asserted IOAPIC pin")

    def plan(self) -> Plan:
        gi = self.host.genirq
        poll = gi.poll_timer.expires_ns if gi.poll_timer is not None and gi.poll_timer.pending else None
        if poll is not None and poll % NSEC_PER_JIFFY:
            # poll_spurious_irqs re-arms at jiffies + HZ/10: from a time between two jiffies, the next poll is
            # not HZ/10 later, and the engine's PollSchedule counts in steps of HZ/10
            raise Unsupported(f"the spurious poller is armed at {poll:,} ns, not on a jiffy boundary "
                              f"({NSEC_PER_JIFFY:,} ns): its next expiries are not every HZ/10 from there")
        for lp in self.lines.values():
            if lp.spurious_disabled and lp.polled and poll is None:
                raise Unsupported(f"irq {lp.desc.irq} is spurious-disabled but the poller is not armed")
            if lp.kind == L_INTX_THREAD and any(dp.kind != "host" for dp in lp.devices):
                raise Unsupported(f"irq {lp.desc.irq} is a threaded (IRQF_ONESHOT) line with a device no handler "
                                  "claims: the vector engine takes threaded INTx lines with their drivers' devices and "
                                  "glitches only")
            if lp.stuckable and lp.up:
                if gi.noirqdebug:
                    raise Unsupported(f"noirqdebug with a device asserting INTx that no handler claims on irq "
                                      f"{lp.desc.irq}: the line would fire again after every EOI for ever")
                H = self.t.host_irq_ns
                if not 1 <= H < MAX_DELAY_NS:
                    raise Unsupported(f"Timing.host_irq_ns={H} on irq {lp.desc.irq}, which a device may keep "
                                      f"asserting: its re-deliveries (one per EOI) need 1..{MAX_DELAY_NS - 1:,} ns")
        cpu_curr = {}
        for c in self.host.cpus:   # every CPU's vCPU: it exits for host vectors, and kicks reach it as IPIs
            if c.irr or c.job is not None:
                raise Unsupported(f"CPU{c.id} is in hard-IRQ context: host.run() first")
            if c.curr is not None:
                cpu_curr[c.id] = self._vcpu(c.curr)
        return Plan(self.sources, sorted(self.lines.values(), key=lambda l: l.desc.irq),
                    list(self.irqfds.values()), list(self.vcpus.values()), gi.noirqdebug, poll, cpu_curr)


def compile_host(host: Any, sources: list) -> Plan:
    """The host's state as the engine's plan; Unsupported (NotImplementedError) names what is not covered."""
    return _Compiler(host, list(sources)).plan()
