"""genirq: descriptors, irqactions, request/free, disable/enable, x86 vector dispatch and flow handlers.

Models kernel/irq/manage.c (``request_threaded_irq``, ``__setup_irq``, ``free_irq``, ``__disable_irq``,
``__enable_irq``), kernel/irq/chip.c (``handle_edge_irq``, ``handle_fasteoi_irq``,
``irq_can_handle_actions``), kernel/irq/handle.c (``handle_irq_event``, ``__handle_irq_event_percpu``),
kernel/irq/resend.c (``check_irq_resend``) and arch/x86/kernel/irq.c (``common_interrupt``,
``vector_irq``). Simplification: a hard interrupt runs to completion at the instant it arrives, on one
CPU, so IRQD_IRQ_INPROGRESS is never seen by another CPU; threaded handlers run inline.
"""
from __future__ import annotations

import errno
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable

from . import spurious
from .event import NO_EVENT, IrqEvent
from .errors import KernelError
from .ledger import Outcome
from .uapi import (
    FIRST_EXTERNAL_VECTOR, IRQ_HANDLED, IRQ_NONE, IRQ_NOTCONNECTED, IRQ_WAKE_THREAD, IRQF_COND_ONESHOT,
    IRQF_COND_SUSPEND, IRQF_NO_AUTOEN, IRQF_NO_SUSPEND, IRQF_ONESHOT, IRQF_PERCPU, IRQF_PROBE_SHARED,
    IRQF_SHARED, IRQF_TRIGGER_MASK, IRQS_ONESHOT, IRQS_PENDING, IRQS_REPLAY, IRQS_SPURIOUS_DISABLED,
    IRQS_WAITING, POSTED_MSI_NOTIFICATION_VECTOR,
)

if TYPE_CHECKING:
    from .kernel import Kernel

__all__ = ["IrqAction", "IrqDesc", "GenIrq", "Handler"]

Handler = Callable[[int, Any], int]
CHIP = "kernel/irq/chip.c"
MANAGE = "kernel/irq/manage.c"
HANDLE = "kernel/irq/handle.c"
X86_IRQ = "arch/x86/kernel/irq.c"
FIRST_DEVICE_VECTOR = FIRST_EXTERNAL_VECTOR + 1  # model: lowest free vector from 0x21 up
LAST_DEVICE_VECTOR = POSTED_MSI_NOTIFICATION_VECTOR - 1


def _irq_default_primary_handler(irq: int, dev_id: Any) -> int:
    return IRQ_WAKE_THREAD


@dataclass(eq=False)
class IrqAction:
    """``struct irqaction``: one handler on a line; ``handled``/``none`` count what it returned."""

    handler: Handler
    dev_id: Any
    flags: int
    name: str
    thread_fn: Handler | None = None
    handled: int = 0
    none: int = 0

    def __repr__(self) -> str:
        return f"<irqaction {self.name!r} flags=0x{self.flags:08x}>"


@dataclass(eq=False)
class IrqDesc:
    """``struct irq_desc`` with its ``irq_data`` folded in (chip name, hwirq, trigger, mask state)."""

    irq: int
    hwirq: int | None
    chip_name: str | None
    level: bool
    cpu: int
    vector: int
    ncpus: int
    unlazy: bool = False          # IRQ_DISABLE_UNLAZY (vfio INTx without DisINTx support)
    oneshot_safe: bool = False    # IRQCHIP_ONESHOT_SAFE (MSI chips)
    actions: list[IrqAction] = field(default_factory=list)
    depth: int = 1                # shut down until the first request_irq starts it
    istate: int = 0
    irq_count: int = 0
    irqs_unhandled: int = 0
    last_unhandled: int = 0       # jiffies
    trigger_type: int = 0         # IRQD_TRIGGER_MASK bits
    default_trigger_set: bool = False
    disabled: bool = True         # IRQD_IRQ_DISABLED
    masked: bool = True           # IRQD_IRQ_MASKED (the chip's mask)
    started: bool = False
    wakeup: bool = False
    pending_event: IrqEvent | None = None
    kstat: list[int] = field(default_factory=list)
    disabled_at: int | None = None  # model time the line was last disabled (spurious or disable_irq)
    affinity: frozenset | None = None  # irq_common_data.affinity (None: irq_default_affinity, every CPU)

    def __post_init__(self) -> None:
        if not self.kstat:
            self.kstat = [0] * self.ncpus

    @property
    def name(self) -> str:
        """The flow handler's name (``desc->name``): "fasteoi" for level IO-APIC pins, else "edge"."""
        return "fasteoi" if self.level else "edge"

    @property
    def handle_irq(self) -> str:
        return "handle_fasteoi_irq" if self.level else "handle_edge_irq"

    @property
    def total(self) -> int:
        return sum(self.kstat)

    def action_names(self) -> list[str]:
        return [a.name for a in self.actions]

    def __repr__(self) -> str:
        return (f"<irq_desc {self.irq} {self.chip_name} {self.hwirq}-{self.name} depth={self.depth} "
                f"actions={self.action_names()}>")


class GenIrq:
    """The host's generic IRQ layer: the descriptor table and the per-CPU ``vector_irq`` arrays."""

    def __init__(self, host: "Kernel"):
        self.host = host
        self.descs: dict[int, IrqDesc] = {}
        self.vector_irq: list[dict[int, IrqDesc]] = [dict() for _ in range(host.ncpus)]
        self._used_vectors: list[set[int]] = [set() for _ in range(host.ncpus)]
        self.irqfixup = 0          # boot parameter irqfixup=1 / irqpoll=2
        self.noirqdebug = False    # boot parameter noirqdebug
        self.poll_timer = None     # poll_spurious_irq_timer
        self.bad_irq_reports = 0   # "bogus return value" reports (limited to 100)

    # ------------------------------------------------------------------ descriptors and vectors
    def alloc_irq(self, irq: int | None = None, *, chip_name: str | None = "IR-IO-APIC", hwirq: int | None = None,
                  level: bool = False, cpu: int | None = None, **kw: Any) -> IrqDesc:
        """Allocate a descriptor (an IO-APIC pin by default: irq = GSI, hwirq = pin)."""
        if irq is None:
            irq = self._next_free_irq()
        if hwirq is None and chip_name and "IO-APIC" in chip_name:
            hwirq = irq
        return self.alloc_desc(irq, chip_name=chip_name, hwirq=hwirq, level=level, cpu=cpu, **kw)

    def _next_free_irq(self, start: int = 24) -> int:
        irq = start
        while irq in self.descs:
            irq += 1
        if irq >= self.host.nr_irqs:
            raise KernelError(errno.ENOSPC, f"no free irq below nr_irqs={self.host.nr_irqs}")
        return irq

    def alloc_desc(self, irq: int, *, chip_name: str | None, hwirq: int | None, level: bool,
                   cpu: int | None = None, unlazy: bool = False, oneshot_safe: bool = False) -> IrqDesc:
        """Allocate a descriptor and its vector on a CPU (irq_domain_alloc_irqs + the vector matrix)."""
        if irq in self.descs:
            raise KernelError(errno.EEXIST, f"irq {irq} already has a descriptor")
        if cpu is None:
            cpu = self._least_loaded_cpu()
        used = self._used_vectors[cpu]
        vector = next((v for v in range(FIRST_DEVICE_VECTOR, LAST_DEVICE_VECTOR + 1) if v not in used), None)
        if vector is None:
            raise KernelError(errno.ENOSPC, f"no free vector on CPU{cpu}")
        used.add(vector)
        desc = IrqDesc(irq, hwirq, chip_name, level, cpu, vector, self.host.ncpus, unlazy=unlazy,
                       oneshot_safe=oneshot_safe)
        self.descs[irq] = desc
        return desc

    def free_desc(self, irq: int) -> None:
        desc = self.descs.pop(irq)
        self._used_vectors[desc.cpu].discard(desc.vector)
        self.vector_irq[desc.cpu].pop(desc.vector, None)

    def _least_loaded_cpu(self) -> int:
        loads = [len(u) for u in self._used_vectors]
        return loads.index(min(loads))

    def irq_set_affinity(self, irq: int, cpus: Any) -> int:
        """kernel/irq/manage.c irq_set_affinity: ``cpus`` is a CPU number or an iterable of them (irqlab/affinity.py)."""
        from .affinity import irq_set_affinity
        return irq_set_affinity(self.host, irq, cpus)

    def move_vector(self, desc: IrqDesc, cpus: set[int]) -> None:
        """assign_vector_locked → irq_matrix_alloc: a vector on the CPU of ``cpus`` with the most free vectors (the
        lowest such CPU), -ENOSPC if none has one; the old vector is released once what waits for it on the old
        CPU has been taken."""
        free = {c: (LAST_DEVICE_VECTOR + 1 - FIRST_DEVICE_VECTOR) - len(self._used_vectors[c]) for c in sorted(cpus)}
        cpu = max(free, key=lambda c: (free[c], -c))
        used = self._used_vectors[cpu]
        vector = next((v for v in range(FIRST_DEVICE_VECTOR, LAST_DEVICE_VECTOR + 1) if v not in used), None)
        if vector is None:
            raise KernelError(errno.ENOSPC, f"irq_set_affinity({desc.irq}): no free vector on CPU{cpu}")
        old_cpu, old_vector = desc.cpu, desc.vector
        mapped = self.vector_irq[old_cpu].get(old_vector)
        desc.cpu, desc.vector = cpu, vector
        used.add(vector)
        if mapped is desc:
            self.vector_irq[cpu][vector] = desc

        def release() -> None:
            self._used_vectors[old_cpu].discard(old_vector)
            if self.vector_irq[old_cpu].get(old_vector) is desc:
                del self.vector_irq[old_cpu][old_vector]
        self.host.cpus[old_cpu].after_vector(old_vector, release)

    def irq_to_desc(self, irq: Any, caller: str = "irq_to_desc") -> IrqDesc:
        if isinstance(irq, bool) or not hasattr(irq, "__index__"):
            raise TypeError(f"{caller}: irq must be an int, not {type(irq).__name__}")
        desc = self.descs.get(int(irq))
        if desc is None:
            raise KernelError(errno.EINVAL, f"{caller}({irq}): no irq descriptor for irq {irq}")
        return desc

    # ------------------------------------------------------------------ registration
    def request_irq(self, irq: int, handler: Handler | None, flags: int, name: str, dev_id: Any) -> int:
        """request_irq(): 6.18 passes ``flags | IRQF_COND_ONESHOT`` to request_threaded_irq."""
        return self.request_threaded_irq(irq, handler, None, flags | IRQF_COND_ONESHOT, name, dev_id)

    def request_threaded_irq(self, irq: int, handler: Handler | None, thread_fn: Handler | None,
                             flags: int, name: str, dev_id: Any) -> int:
        if isinstance(flags, bool) or not isinstance(flags, int):
            raise TypeError(f"request_irq: flags must be an int of IRQF_* bits, not {type(flags).__name__}")
        if not isinstance(name, str):
            raise TypeError(f"request_irq: name must be a str, not {type(name).__name__}")
        for fn, what in ((handler, "handler"), (thread_fn, "thread_fn")):
            if fn is not None and not callable(fn):
                raise TypeError(f"request_irq: {what} must be callable(irq, dev_id) or None")
        if irq == IRQ_NOTCONNECTED:
            raise KernelError(errno.ENOTCONN, "request_irq: IRQ_NOTCONNECTED")
        if ((flags & IRQF_SHARED) and dev_id is None) \
                or ((flags & IRQF_SHARED) and (flags & IRQF_NO_AUTOEN)) \
                or ((flags & IRQF_COND_SUSPEND) and not (flags & IRQF_SHARED)) \
                or ((flags & IRQF_NO_SUSPEND) and (flags & IRQF_COND_SUSPEND)):
            raise KernelError(errno.EINVAL, f"request_irq({irq}, {name!r}): invalid flags 0x{flags:08x}"
                              + (" (IRQF_SHARED needs a dev_id)" if (flags & IRQF_SHARED) and dev_id is None else ""))
        desc = self.irq_to_desc(irq, "request_irq")
        if handler is None:
            if thread_fn is None:
                raise KernelError(errno.EINVAL, f"request_irq({irq}, {name!r}): no handler and no thread_fn")
            handler = _irq_default_primary_handler
        if desc.chip_name is None:
            raise KernelError(errno.ENOSYS, f"request_irq({irq}): the line has no_irq_chip")
        return self.__setup_irq(desc, IrqAction(handler, dev_id, flags, name, thread_fn))

    def __setup_irq(self, desc: IrqDesc, new: IrqAction) -> int:
        host = self.host
        if not (new.flags & IRQF_TRIGGER_MASK):
            new.flags |= desc.trigger_type
        shared = False
        if desc.actions:
            old = desc.actions[0]
            if desc.default_trigger_set:
                oldtype = desc.trigger_type
            else:  # "If nobody did set the configuration before, inherit the one provided by the requester."
                oldtype = new.flags & IRQF_TRIGGER_MASK
                desc.trigger_type, desc.default_trigger_set = oldtype, True
            mismatch = not ((old.flags & new.flags) & IRQF_SHARED) or oldtype != (new.flags & IRQF_TRIGGER_MASK)
            if not mismatch:
                if (old.flags & IRQF_ONESHOT) and (new.flags & IRQF_COND_ONESHOT):
                    new.flags |= IRQF_ONESHOT
                elif (old.flags ^ new.flags) & IRQF_ONESHOT:
                    mismatch = True
            if not mismatch and (old.flags & IRQF_PERCPU) != (new.flags & IRQF_PERCPU):
                mismatch = True
            if mismatch:
                msg = (f"Flags mismatch irq {desc.irq}. {new.flags:08x} ({new.name}) vs. "
                       f"{old.flags:08x} ({old.name})")
                if not (new.flags & IRQF_PROBE_SHARED):
                    host.printk("err", msg)
                raise KernelError(errno.EBUSY, f"request_irq({desc.irq}, {new.name!r}): {msg}")
            shared = True
        if not (new.flags & IRQF_ONESHOT) and new.handler is _irq_default_primary_handler \
                and not desc.oneshot_safe:
            msg = f"Threaded irq requested with handler=NULL and !ONESHOT for {new.name} (irq {desc.irq})"
            host.printk("err", msg)
            raise KernelError(errno.EINVAL, msg)
        if not shared:
            desc.istate &= ~(IRQS_SPURIOUS_DISABLED | IRQS_ONESHOT | IRQS_WAITING)
            if new.flags & IRQF_ONESHOT:
                desc.istate |= IRQS_ONESHOT
            # IO-APIC and MSI chips have no irq_set_type: __irq_set_trigger() records no trigger here.
            desc.actions.append(new)
            if not (new.flags & IRQF_NO_AUTOEN):
                self.irq_startup(desc)
            else:
                desc.depth = 1
                self._activate(desc)
        else:
            desc.actions.append(new)  # "add new interrupt at end of irq queue"
        desc.irq_count = 0            # "Reset broken irq detection when installing new handler"
        desc.irqs_unhandled = 0
        if shared and (desc.istate & IRQS_SPURIOUS_DISABLED):
            desc.istate &= ~IRQS_SPURIOUS_DISABLED
            self.__enable_irq(desc)
        return 0

    def _activate(self, desc: IrqDesc) -> None:
        """irq_activate: the vector now dispatches to this descriptor."""
        self.vector_irq[desc.cpu][desc.vector] = desc

    def irq_startup(self, desc: IrqDesc) -> None:
        self._activate(desc)
        desc.depth = 0
        desc.started = True
        desc.disabled = False
        desc.masked = False
        desc.disabled_at = None

    def irq_shutdown(self, desc: IrqDesc) -> None:
        desc.depth = 1
        desc.started = False
        desc.disabled = True
        desc.masked = True
        self.vector_irq[desc.cpu].pop(desc.vector, None)
        if desc.pending_event is not None:
            desc.pending_event = None
        desc.istate &= ~IRQS_PENDING

    def free_irq(self, irq: int, dev_id: Any) -> str | None:
        """Remove the action whose dev_id matches; returns its name (devname) or None with a WARN."""
        desc = self.irq_to_desc(irq, "free_irq")
        for i, a in enumerate(desc.actions):
            if a.dev_id is dev_id or (a.dev_id == dev_id and not hasattr(dev_id, "__dict__")):
                del desc.actions[i]
                if not desc.actions:
                    self.irq_shutdown(desc)
                return a.name
        self.host.printk("warn", f"WARNING: Trying to free already-free IRQ {irq}")
        return None

    # ------------------------------------------------------------------ disable / enable
    def disable_irq(self, irq: int) -> None:
        """disable_irq(): nested (depth++), lazy unless the line is IRQ_DISABLE_UNLAZY."""
        self.__disable_irq(self.irq_to_desc(irq, "disable_irq"))

    disable_irq_nosync = disable_irq

    def __disable_irq(self, desc: IrqDesc) -> None:
        if desc.depth == 0:
            self.irq_disable(desc)
        desc.depth += 1

    def irq_disable(self, desc: IrqDesc) -> None:
        desc.disabled = True
        desc.disabled_at = self.host.now
        if desc.unlazy:
            desc.masked = True

    def enable_irq(self, irq: int) -> None:
        self.__enable_irq(self.irq_to_desc(irq, "enable_irq"))

    def __enable_irq(self, desc: IrqDesc) -> None:
        if desc.depth == 0:
            self.host.printk("warn", f"WARNING: Unbalanced enable for IRQ {desc.irq}")
        elif desc.depth == 1:
            self.irq_startup(desc)
            self.check_irq_resend(desc)
        else:
            desc.depth -= 1

    def asserting_devices(self, desc: IrqDesc) -> list:
        """Devices whose INTx holds this level line up (Status.Interrupt set, INTx not disabled)."""
        return [d for d in self.host.devices.values()
                if d.gsi == desc.irq and d.intx_status_event is not None and not d.disintx]

    def check_irq_resend(self, desc: IrqDesc) -> int:
        """A level line is never resent (the hardware re-asserts); an edge line is retriggered."""
        ev = desc.pending_event
        desc.pending_event = None
        if desc.level:
            desc.istate &= ~IRQS_PENDING
            if ev is not None:
                ev.settle(Outcome.DISABLED)  # a glitch: nothing holds the line any more
            self._reassert(desc)
            return -errno.EINVAL
        if desc.istate & IRQS_REPLAY:
            return -errno.EBUSY
        if not (desc.istate & IRQS_PENDING):
            return 0
        desc.istate &= ~IRQS_PENDING
        desc.istate |= IRQS_REPLAY
        if ev is not None:
            ev.unsettle()
            ev.hop("check_irq_resend", "kernel/irq/resend.c", "genirq",
                   f"irq {desc.irq}: IRQS_PENDING → irq_chip_retrigger_hierarchy → apic_retrigger_irq")
            self.host.deliver_vector(desc.cpu, desc.vector, ev)
        return 0

    def _reassert(self, desc: IrqDesc) -> None:
        """The line is unmasked while a device still asserts it: the IO-APIC sends the vector again."""
        devs = self.asserting_devices(desc)
        if devs and not desc.masked:
            ev = devs[0].intx_status_event.claim() or NO_EVENT  # an unhandled one asserts on, unaccounted
            ev.hop("unmask_irq", CHIP, "genirq", f"irq {desc.irq} unmasked: the line is still asserted")
            self.host.deliver_vector(desc.cpu, desc.vector, ev)

    # ------------------------------------------------------------------ dispatch
    def common_interrupt(self, cpu: int, vector: int, ev: IrqEvent) -> None:
        """x86 entry: ``vector_irq[vector]`` → ``desc->handle_irq(desc)``."""
        desc = self.vector_irq[cpu].get(vector)
        ev.hop("common_interrupt", X86_IRQ, "cpu", f"CPU{cpu} vector 0x{vector:02x} → "
               + (f"irq {desc.irq}" if desc else "no descriptor"))
        if desc is None:
            self.host.printk("emerg", f"common_interrupt: {cpu}.{vector} No irq handler for vector")
            ev.settle(Outcome.NO_HANDLER)
            return
        ev.irq = desc.irq
        if desc.masked:  # the chip holds it (IO-APIC pin or MSI mask): it never reaches the flow handler
            self._hold_pending(desc, ev, "masked at the chip")
            return
        if desc.level:
            self.handle_fasteoi_irq(desc, cpu, ev)
        else:
            self.handle_edge_irq(desc, cpu, ev)

    def _hold_pending(self, desc: IrqDesc, ev: IrqEvent, why: str) -> None:
        """The flow handler refused (or the chip is masked): the interrupt waits as IRQS_PENDING.

        A device's INTx stays pending in its own Status bit; a glitch or an MSI is the line's one
        pending interrupt, and any further one is dropped.
        """
        if ev.device is not None and ev.device.intx_status_event is ev:
            ev.settle(Outcome.PENDING)
            ev.hop("irq_can_handle_actions", CHIP, "genirq", f"irq {desc.irq}: {why}; the device keeps asserting")
        elif desc.pending_event is None and ev.real:
            desc.pending_event = ev
            ev.settle(Outcome.PENDING)
            ev.hop("irq_can_handle_actions", CHIP, "genirq", f"irq {desc.irq}: {why}, IRQS_PENDING")
        else:
            ev.settle(Outcome.DISABLED)
            ev.hop("irq_can_handle_actions", CHIP, "genirq", f"irq {desc.irq}: {why}, already pending: dropped")

    def _can_handle(self, desc: IrqDesc) -> bool:
        """irq_can_handle_actions(): refuse (and set IRQS_PENDING) with no action or a disabled line."""
        desc.istate &= ~(IRQS_REPLAY | IRQS_WAITING)
        if not desc.actions or desc.disabled:
            desc.istate |= IRQS_PENDING
            return False
        return True

    def handle_edge_irq(self, desc: IrqDesc, cpu: int, ev: IrqEvent) -> None:
        ev.hop("handle_edge_irq", CHIP, "genirq", f"irq {desc.irq}")
        if not self._can_handle(desc):
            desc.masked = True  # mask_ack_irq()
            self._hold_pending(desc, ev, "disabled" if desc.actions else "no action")
            return
        self._kstat(desc, cpu, ev)
        self.handle_irq_event(desc, cpu, ev)

    def handle_fasteoi_irq(self, desc: IrqDesc, cpu: int, ev: IrqEvent) -> None:
        ev.hop("handle_fasteoi_irq", CHIP, "genirq", f"irq {desc.irq}")
        if not self._can_handle(desc):
            desc.masked = True  # mask_irq(), then EOI
            self._hold_pending(desc, ev, "disabled" if desc.actions else "no action")
            return
        self._kstat(desc, cpu, ev)
        self.handle_irq_event(desc, cpu, ev)

    def _kstat(self, desc: IrqDesc, cpu: int, ev: IrqEvent) -> None:
        before = desc.kstat[cpu]
        desc.kstat[cpu] = before + 1
        ev.change(f"kstat[{desc.irq}] CPU{cpu}", before, before + 1)

    def handle_irq_event(self, desc: IrqDesc, cpu: int, ev: IrqEvent) -> int:
        """Call every action of the chain (retval |= res), then note_interrupt()."""
        desc.istate &= ~IRQS_PENDING
        ev.hop("handle_irq_event", HANDLE, "genirq", f"irq {desc.irq}: {len(desc.actions)} action(s)")
        retval = IRQ_NONE
        for action in list(desc.actions):
            ev.hop("__handle_irq_event_percpu", HANDLE, "driver", f"action {action.name!r}")
            at = len(ev.journey.hops) - 1 if ev.journey is not None else -1
            self.host.current = ev
            try:
                res = action.handler(desc.irq, action.dev_id)
            finally:
                self.host.current = None
            if isinstance(res, bool) or not isinstance(res, int):
                raise TypeError(f"irq handler {action.name!r} returned {res!r}; return IRQ_NONE or IRQ_HANDLED")
            if res & IRQ_WAKE_THREAD and action.thread_fn is not None:
                action.thread_fn(desc.irq, action.dev_id)  # irq_wake_thread; the model runs it inline
            if res & IRQ_HANDLED:
                action.handled += 1
            else:
                action.none += 1
            if at >= 0:
                h = ev.journey.hops[at]
                ret = "IRQ_HANDLED" if res & IRQ_HANDLED else "IRQ_NONE" if res == IRQ_NONE else f"{res:#x}"
                ev.journey.hops[at] = replace(h, detail=f"action {action.name!r} returned {ret}")
            retval |= res
        if not self.noirqdebug:
            spurious.note_interrupt(self.host, desc, retval, ev)
        if not ev.done and not ev.carried:
            ev.settle(Outcome.HANDLED_HOST if retval & (IRQ_HANDLED | IRQ_WAKE_THREAD) else Outcome.UNHANDLED)
        return retval
