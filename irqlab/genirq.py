"""genirq: descriptors, irqactions, request/free, disable/enable, irq threads, x86 vector dispatch, flow handlers.

Models kernel/irq/manage.c (``request_threaded_irq``, ``__setup_irq``, ``__free_irq``, ``__disable_irq``,
``__enable_irq``, ``synchronize_irq``, ``irq_thread``, ``irq_thread_fn``, ``irq_finalize_oneshot``),
kernel/irq/chip.c (``irq_startup``, ``irq_shutdown``, ``handle_edge_irq``, ``handle_fasteoi_irq``,
``cond_unmask_eoi_irq``, ``irq_can_handle_actions``), kernel/irq/handle.c (``handle_irq_event``,
``__handle_irq_event_percpu``, ``warn_no_thread``, ``__irq_wake_thread``), kernel/irq/resend.c
(``check_irq_resend``), kernel/irq/irqdesc.c (``__irq_alloc_descs``), arch/x86/kernel/irq.c
(``common_interrupt``, ``reevaluate_vector``, ``vector_irq`` with VECTOR_UNUSED / VECTOR_SHUTDOWN), the IO-APIC's
level re-delivery after ``ioapic_ir_ack_level`` (arch/x86/kernel/apic/io_apic.c) and lib/ratelimit.c.
Simplification: a hard interrupt runs to completion at the instant it arrives, on one CPU (IRQD_IRQ_INPROGRESS
is never seen by another CPU); its EOI is issued ``Timing.host_irq_ns`` later, and a level line that is still
asserted then fires again (a new interrupt); an irq thread runs its ``thread_fn`` ``Timing.irq_thread_ns``
after it is woken, all at once.
"""
from __future__ import annotations

import errno
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable

from . import spurious
from .event import NO_EVENT, IrqEvent
from .errors import KernelError
from .ledger import Outcome
from .sched import Timer
from .trace import HARDWARE
from .uapi import (
    FIRST_EXTERNAL_VECTOR, IRQ_HANDLED, IRQ_NONE, IRQ_NOTCONNECTED, IRQ_WAKE_THREAD, IRQF_COND_ONESHOT,
    IRQF_COND_SUSPEND, IRQF_NO_AUTOEN, IRQF_NO_SUSPEND, IRQF_ONESHOT, IRQF_PERCPU, IRQF_PROBE_SHARED,
    IRQF_SHARED, IRQF_TRIGGER_MASK, IRQS_ONESHOT, IRQS_PENDING, IRQS_REPLAY, IRQS_SPURIOUS_DISABLED,
    IRQS_WAITING, POSTED_MSI_NOTIFICATION_VECTOR,
)

if TYPE_CHECKING:
    from .kernel import Kernel

__all__ = ["IrqAction", "IrqDesc", "GenIrq", "Handler", "RatelimitState", "irq_default_primary_handler",
           "irqreturn", "VECTOR_SHUTDOWN", "MAX_SPARSE_IRQS", "BITS_PER_LONG", "REDELIVER_ENDLESS",
           "DEFAULT_RATELIMIT_INTERVAL", "DEFAULT_RATELIMIT_BURST"]

Handler = Callable[[int, Any], int]
CHIP = "kernel/irq/chip.c"
MANAGE = "kernel/irq/manage.c"
HANDLE = "kernel/irq/handle.c"
X86_IRQ = "arch/x86/kernel/irq.c"
FIRST_DEVICE_VECTOR = FIRST_EXTERNAL_VECTOR + 1  # model: lowest free vector from 0x21 up
LAST_DEVICE_VECTOR = POSTED_MSI_NOTIFICATION_VECTOR - 1
MAX_SPARSE_IRQS = 2**31 - 1   # kernel/irq/internals.h, CONFIG_SPARSE_IRQ: INT_MAX
BITS_PER_LONG = 64            # the oneshot thread_mask of the actions of one line
PR_FMT = "genirq: "           # kernel/irq/manage.c: #define pr_fmt(fmt) "genirq: " fmt
#: lib/ratelimit.c through include/linux/ratelimit_types.h: 5 * HZ (in jiffies) and 10
DEFAULT_RATELIMIT_INTERVAL = 5 * 250
DEFAULT_RATELIMIT_BURST = 10
#: a line that fires again more often than this in a row, within one run() to quiet (or at one instant), without
#: going quiet (three full note_interrupt windows: the detector would have disabled it) storms for ever: refused
REDELIVER_ENDLESS = 3 * spurious.SPURIOUS_WINDOW


class _VectorShutdown:
    """arch/x86/include/asm/hw_irq.h ``VECTOR_SHUTDOWN``: the slot of a vector ``clear_irq_vector`` released."""

    def __repr__(self) -> str:
        return "VECTOR_SHUTDOWN"


VECTOR_SHUTDOWN = _VectorShutdown()


def irq_default_primary_handler(irq: int, dev_id: Any) -> int:
    """kernel/irq/manage.c: the primary handler of ``request_threaded_irq(irq, NULL, thread_fn, ...)``."""
    return IRQ_WAKE_THREAD


def irqreturn(res: Any) -> tuple[int, str | None]:
    """A handler's return as the kernel sees an ``irqreturn_t``: (the 32-bit value, None) or, for a value that
    is no irqreturn_t at all, (0, its repr).

    An int is taken modulo 2**32 (``bad_action_ret`` reads it as ``unsigned int``: -1 is 0xffffffff); a bool is
    0 or 1, as C converts ``false``/``true``. Anything else (None, a str, a float) is no irqreturn_t at all: the
    model counts it as a bogus return value that handled nothing (value 0, reported with its repr)."""
    if type(res) is int:
        return res & 0xFFFFFFFF, None
    if isinstance(res, bool):
        return int(res), None
    if hasattr(res, "__index__"):
        return int(res) & 0xFFFFFFFF, None
    return 0, repr(res)


@dataclass
class RatelimitState:
    """lib/ratelimit.c ``struct ratelimit_state`` and ``___ratelimit``: at most ``burst`` callbacks per
    ``interval`` jiffies; the first call after the interval reports how many were suppressed."""

    interval: int = DEFAULT_RATELIMIT_INTERVAL
    burst: int = DEFAULT_RATELIMIT_BURST
    initialized: bool = False
    begin: int = 0
    n_left: int = 0
    missed: int = 0

    def __call__(self, jiffies: int) -> tuple[bool, int]:
        """(print?, callbacks suppressed to report first, or 0)."""
        report = 0
        if not self.initialized:
            self.begin, self.initialized, self.n_left = jiffies, True, self.burst
        if jiffies > self.begin + self.interval:  # time_is_before_jiffies(rs->begin + interval)
            self.n_left, self.begin = self.burst, jiffies
            report, self.missed = self.missed, 0
        if self.n_left > 0:
            self.n_left -= 1
            return True, report
        self.missed += 1
        return False, report


@dataclass(eq=False)
class IrqAction:
    """``struct irqaction``: one handler on a line, its irq thread's flags, and what the handlers returned:
    ``handled`` (IRQ_HANDLED set), ``woke`` (exactly IRQ_WAKE_THREAD), ``none`` (anything else), and the
    thread function's ``thread_handled`` / ``thread_none``."""

    handler: Handler
    dev_id: Any
    flags: int
    name: str
    thread_fn: Handler | None = None
    thread_mask: int = 0          # its bit in desc->threads_oneshot (IRQF_ONESHOT actions)
    runthread: bool = False       # IRQTF_RUNTHREAD: woken, thread_fn not run yet
    warned: bool = False          # IRQTF_WARNED: warn_no_thread printed once
    handled: int = 0
    woke: int = 0
    none: int = 0
    thread_handled: int = 0
    thread_none: int = 0
    thread: Timer | None = field(default=None, repr=False)   # the irq/<n>-<name> kthread's next run
    waiting: list = field(default_factory=list, repr=False)  # interrupts whose verdict is this thread's

    def __repr__(self) -> str:
        return f"<irqaction {self.name!r} flags=0x{self.flags:08x}{' threaded' if self.thread_fn else ''}>"


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
    threads_oneshot: int = 0      # thread_mask bits of the ONESHOT threads woken and not finished
    threads_handled: int = 0      # irq_thread_fn: thread_fn returned IRQ_HANDLED
    threads_handled_last: int = 0  # note_interrupt's view of it, with SPURIOUS_DEFERRED in bit 31
    threads_active: int = 0
    trigger_type: int = 0         # IRQD_TRIGGER_MASK bits
    default_trigger_set: bool = False
    disabled: bool = True         # IRQD_IRQ_DISABLED
    masked: bool = True           # IRQD_IRQ_MASKED (the chip's mask)
    started: bool = False
    wakeup: bool = False
    pending_event: IrqEvent | None = None
    kstat: list[int] = field(default_factory=list)
    disabled_at: int | None = None  # model time the line was last disabled (spurious or disable_irq)
    redelivered: int = 0          # level line: interrupts the IO-APIC sent again because it stayed asserted
    refire: Timer | None = field(default=None, repr=False)  # the re-delivery at the EOI, while asserted
    redeliver_chain: int = 0      # re-deliveries in a row while it stays asserted (the endless-storm guard)
    redeliver_key: Any = None
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


def _int(v: Any, what: str) -> int:
    if isinstance(v, bool) or not hasattr(v, "__index__"):
        raise TypeError(f"{what} must be an int, not {type(v).__name__}")
    return int(v)


class GenIrq:
    """The host's generic IRQ layer: the descriptor table and the per-CPU ``vector_irq`` arrays."""

    def __init__(self, host: "Kernel"):
        self.host = host
        self.descs: dict[int, IrqDesc] = {}
        self.vector_irq: list[dict[int, Any]] = [dict() for _ in range(host.ncpus)]
        self._used_vectors: list[set[int]] = [set() for _ in range(host.ncpus)]
        self.irqfixup = 0          # boot parameter irqfixup=1 / irqpoll=2
        self.noirqdebug = False    # boot parameter noirqdebug
        self.poll_timer = None     # poll_spurious_irq_timer
        self.bad_irq_reports = 0   # "bogus return value" reports (report_bad_irq: limited to 100)
        self.no_handler_rs = RatelimitState()   # reevaluate_vector's pr_emerg_ratelimited
        self._thread_waits: dict[int, int] = {}  # interrupt id -> irq threads still to give its verdict

    # ------------------------------------------------------------------ descriptors and vectors
    def alloc_irq(self, irq: int | None = None, *, chip_name: str | None = "IR-IO-APIC", hwirq: int | None = None,
                  level: bool = False, cpu: int | None = None, **kw: Any) -> IrqDesc:
        """Allocate a descriptor (an IO-APIC pin by default: irq = GSI, hwirq = pin)."""
        if irq is not None:
            irq = _int(irq, "alloc_irq: irq")
        if irq is None:
            irq = self._next_free_irq()
        if hwirq is not None and not 0 <= _int(hwirq, "alloc_irq: hwirq") < 2**64:  # irq_hw_number_t
            raise ValueError(f"alloc_irq: hwirq is an unsigned long, 0..2**64-1, got {hwirq}")
        if hwirq is None and chip_name and "IO-APIC" in chip_name:
            hwirq = irq
        return self.alloc_desc(irq, chip_name=chip_name, hwirq=hwirq, level=level, cpu=cpu, **kw)

    def _next_free_irq(self, start: int = 24) -> int:
        """irq_find_free_area from arch_dynirq_lower_bound (the first irq after the IO-APIC's GSIs)."""
        irq = start
        while irq in self.descs:
            irq += 1
        return irq

    def alloc_desc(self, irq: int, *, chip_name: str | None, hwirq: int | None, level: bool,
                   cpu: int | None = None, unlazy: bool = False, oneshot_safe: bool = False) -> IrqDesc:
        """Allocate a descriptor and its vector on a CPU (__irq_alloc_descs + the vector matrix).

        An irq at or above ``nr_irqs`` grows it, as ``irq_expand_nr_irqs`` does under CONFIG_SPARSE_IRQ (up to
        MAX_SPARSE_IRQS, else -ENOMEM)."""
        irq = _int(irq, "alloc_irq: irq")
        if irq < 0:
            raise ValueError(f"alloc_irq: irq must be >= 0, got {irq}")
        if cpu is not None:
            cpu = _int(cpu, "alloc_irq: cpu")
            if not 0 <= cpu < self.host.ncpus:
                raise ValueError(f"alloc_irq: cpu must be one of the host's CPUs 0..{self.host.ncpus - 1}, got {cpu}")
        if not isinstance(level, bool):
            raise TypeError(f"alloc_irq: level must be a bool, not {type(level).__name__}")
        if irq in self.descs:
            raise KernelError(errno.EEXIST, f"irq {irq} already has a descriptor")
        if irq + 1 > MAX_SPARSE_IRQS:
            raise KernelError(errno.ENOMEM, f"irq {irq}: beyond MAX_SPARSE_IRQS")
        if cpu is None:
            cpu = self._least_loaded_cpu()
        vector = self._free_vector(cpu)
        if vector is None:
            raise KernelError(errno.ENOSPC, f"no free vector on CPU{cpu}")
        if irq + 1 > self.host.nr_irqs:   # irq_expand_nr_irqs(start + cnt)
            self.host.nr_irqs = irq + 1
        self._used_vectors[cpu].add(vector)
        desc = IrqDesc(irq, hwirq, chip_name, level, cpu, vector, self.host.ncpus, unlazy=unlazy,
                       oneshot_safe=oneshot_safe)
        self.descs[irq] = desc
        return desc

    def _free_vector(self, cpu: int) -> int | None:
        used = self._used_vectors[cpu]
        return next((v for v in range(FIRST_DEVICE_VECTOR, LAST_DEVICE_VECTOR + 1) if v not in used), None)

    def free_desc(self, irq: int) -> None:
        desc = self.descs.pop(irq)
        ev, desc.pending_event = desc.pending_event, None
        if ev is not None and ev.live:   # irq_free_descs: the line's IRQS_PENDING interrupt goes with it
            ev.hop("irq_free_descs", "kernel/irq/irqdesc.c", "genirq", f"irq {irq} freed with an interrupt pending: "
                   "dropped")
            ev.settle(Outcome.DISABLED)
        self._used_vectors[desc.cpu].discard(desc.vector)
        self.vector_irq[desc.cpu].pop(desc.vector, None)
        if desc.refire is not None:
            self.host.sched.del_timer(desc.refire)

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
        vector = self._free_vector(cpu)
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

    def pr_err(self, text: str) -> None:
        """pr_err() from kernel/irq/manage.c: its pr_fmt puts "genirq: " in front."""
        self.host.printk("err", PR_FMT + text)

    def warn(self, where: str, text: str | None = None) -> None:
        """WARN()/WARN_ON() on x86: the cut-here line, the message (vprintk: no pr_fmt), the WARNING line.
        The model prints ``WARNING: at <file>:<line> <function>`` without CPU, PID, symbol offset, modules,
        registers or call trace."""
        self.host.printk("warn", "------------[ cut here ]------------")
        if text:
            self.host.printk("warn", text)
        self.host.printk("warn", f"WARNING: at {where}")

    # ------------------------------------------------------------------ registration
    def request_irq(self, irq: int, handler: Handler | None, flags: int, name: str, dev_id: Any) -> int:
        """request_irq(): 6.18 passes ``flags | IRQF_COND_ONESHOT`` to request_threaded_irq."""
        if isinstance(flags, bool) or not isinstance(flags, int):
            raise TypeError(f"request_irq: flags must be an int of IRQF_* bits, not {type(flags).__name__}")
        return self.request_threaded_irq(irq, handler, None, flags | IRQF_COND_ONESHOT, name, dev_id)

    def request_threaded_irq(self, irq: int, handler: Handler | None, thread_fn: Handler | None,
                             flags: int, name: str, dev_id: Any) -> int:
        if isinstance(flags, bool) or not isinstance(flags, int):
            raise TypeError(f"request_irq: flags must be an int of IRQF_* bits, not {type(flags).__name__}")
        if not 0 <= flags < 2**64:
            raise ValueError(f"request_irq: flags must fit an unsigned long, got {flags:#x}")
        if not isinstance(name, str):
            raise TypeError(f"request_irq: name must be a str, not {type(name).__name__}")
        for fn, what in ((handler, "handler"), (thread_fn, "thread_fn")):
            if fn is not None and not callable(fn):
                raise TypeError(f"request_irq: {what} must be callable(irq, dev_id) or None")
        if isinstance(irq, bool) or not hasattr(irq, "__index__"):
            raise TypeError(f"request_irq: irq must be an int, not {type(irq).__name__}")
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
            handler = irq_default_primary_handler
        if desc.chip_name is None:
            raise KernelError(errno.ENOSYS, f"request_irq({irq}): the line has no_irq_chip")
        return self.__setup_irq(desc, IrqAction(handler, dev_id, flags, name, thread_fn))

    def __setup_irq(self, desc: IrqDesc, new: IrqAction) -> int:
        if not (new.flags & IRQF_TRIGGER_MASK):
            new.flags |= desc.trigger_type
        # "Some irq chips like MSI based interrupts are per se one shot safe" (IRQCHIP_ONESHOT_SAFE)
        if desc.oneshot_safe:
            new.flags &= ~IRQF_ONESHOT
        shared = False
        thread_mask = 0
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
                    self.pr_err(msg)
                raise KernelError(errno.EBUSY, f"request_irq({desc.irq}, {new.name!r}): {PR_FMT}{msg}")
            for a in desc.actions:
                thread_mask |= a.thread_mask
            shared = True
        if new.flags & IRQF_ONESHOT:
            if thread_mask == (1 << BITS_PER_LONG) - 1:
                raise KernelError(errno.EBUSY, f"request_irq({desc.irq}, {new.name!r}): {BITS_PER_LONG} oneshot "
                                  "actions share the line already")
            new.thread_mask = ~thread_mask & (thread_mask + 1)  # 1UL << ffz(thread_mask)
        elif new.handler is irq_default_primary_handler and not desc.oneshot_safe:
            msg = f"Threaded irq requested with handler=NULL and !ONESHOT for {new.name} (irq {desc.irq})"
            self.pr_err(msg)
            raise KernelError(errno.EINVAL, PR_FMT + msg)
        if new.thread_fn is not None:
            new.thread = Timer(self._irq_thread, (desc, new), name=f"irq/{desc.irq}-{new.name}")
        desc.actions.append(new)  # "add new interrupt at end of irq queue"
        if not shared:
            desc.istate &= ~(IRQS_SPURIOUS_DISABLED | IRQS_ONESHOT | IRQS_WAITING)
            if new.flags & IRQF_ONESHOT:
                desc.istate |= IRQS_ONESHOT
            # IO-APIC and MSI chips have no irq_set_type: __irq_set_trigger() records no trigger here.
            self._activate(desc)
        desc.irq_count = 0            # "Reset broken irq detection when installing new handler"
        desc.irqs_unhandled = 0
        if not shared:
            if not (new.flags & IRQF_NO_AUTOEN):
                self.irq_startup(desc, resend=True)
            else:
                desc.depth = 1
        elif desc.istate & IRQS_SPURIOUS_DISABLED:
            desc.istate &= ~IRQS_SPURIOUS_DISABLED
            self.__enable_irq(desc)
        return 0

    def _activate(self, desc: IrqDesc) -> None:
        """irq_activate: the vector now dispatches to this descriptor."""
        self.vector_irq[desc.cpu][desc.vector] = desc

    def irq_startup(self, desc: IrqDesc, resend: bool = False) -> None:
        """irq_startup(desc, resend, ...): depth 0, enabled and unmasked; with IRQ_RESEND, check_irq_resend()
        replays an edge interrupt left pending. A level line the hardware still asserts fires again."""
        self._activate(desc)
        desc.depth = 0
        desc.started = True
        desc.disabled = False
        was_masked, desc.masked = desc.masked, False
        desc.disabled_at = None
        if resend:
            self.check_irq_resend(desc)
        if was_masked:
            self._unmasked(desc, "irq_startup")

    def irq_shutdown(self, desc: IrqDesc) -> None:
        """irq_shutdown(): only a started line; depth++ (so a pending interrupt waits for the next startup),
        disabled and masked. IRQS_PENDING and the interrupt it holds stay."""
        if not desc.started:
            return
        desc.depth += 1
        desc.disabled = True
        desc.masked = True
        desc.disabled_at = self.host.now
        desc.started = False

    def irq_deactivate(self, desc: IrqDesc) -> None:
        """irq_domain_deactivate_irq → x86_vector_deactivate → clear_irq_vector: the slot is VECTOR_SHUTDOWN."""
        if self.vector_irq[desc.cpu].get(desc.vector) is desc:
            self.vector_irq[desc.cpu][desc.vector] = VECTOR_SHUTDOWN

    def free_irq(self, irq: int, dev_id: Any) -> str | None:
        """__free_irq: remove the action whose dev_id matches and return its name, or WARN and None. The last
        action clears IRQ_DISABLE_UNLAZY and shuts the line down; the irq threads' pending runs are waited for
        (__synchronize_irq, then kthread_stop runs a woken thread once more)."""
        desc = self.irq_to_desc(irq, "free_irq")
        for i, a in enumerate(desc.actions):
            if a.dev_id is dev_id or (a.dev_id == dev_id and not hasattr(dev_id, "__dict__")):
                break
        else:
            self.warn(f"{MANAGE}:1829 __free_irq", f"Trying to free already-free IRQ {desc.irq}")
            return None
        del desc.actions[i]
        if not desc.actions:
            desc.unlazy = False        # irq_settings_clr_disable_unlazy
            self.irq_shutdown(desc)
        self.synchronize_irq(desc, also=a)
        if a.thread is not None:
            self.host.sched.del_timer(a.thread)
        if not desc.actions:
            self.irq_deactivate(desc)
            if desc.refire is not None:
                self.host.sched.del_timer(desc.refire)
        return a.name

    def synchronize_irq(self, desc: IrqDesc, also: IrqAction | None = None) -> None:
        """__synchronize_irq: wait until no irq thread of the line is active — the model runs each woken thread
        now, in the order the actions are on the line (``also``: one just removed from it)."""
        for a in list(desc.actions) + ([also] if also is not None else []):
            if a.runthread:
                self.host.sched.del_timer(a.thread)
                self._irq_thread(desc, a)

    # ------------------------------------------------------------------ disable / enable
    def disable_irq(self, irq: int) -> None:
        """disable_irq(): nested (depth++), lazy unless IRQ_DISABLE_UNLAZY; then synchronize_irq() waits for
        the line's irq threads."""
        desc = self.irq_to_desc(irq, "disable_irq")
        self.__disable_irq(desc)
        self.synchronize_irq(desc)

    def disable_irq_nosync(self, irq: int) -> None:
        """disable_irq_nosync(): as disable_irq() without waiting for the irq threads."""
        self.__disable_irq(self.irq_to_desc(irq, "disable_irq_nosync"))

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
            self.warn(f"{MANAGE}:753 __enable_irq", f"Unbalanced enable for IRQ {desc.irq}")
        elif desc.depth == 1:
            self.irq_startup(desc, resend=True)
        else:
            desc.depth -= 1

    def asserting_devices(self, desc: IrqDesc) -> list:
        """Devices whose INTx holds this level line up (Status.Interrupt set, INTx not disabled)."""
        if not desc.level:
            return []
        return [d for d in self.host.devices.values()
                if d.gsi == desc.irq and d.intx_status_event is not None and not d.disintx]

    def check_irq_resend(self, desc: IrqDesc) -> int:
        """A level line is never resent ("resent by hardware when they are still active"): IRQS_PENDING is
        cleared and a held glitch is gone; an edge line's pending interrupt is retriggered (IRQS_REPLAY)."""
        if desc.level:
            desc.istate &= ~IRQS_PENDING
            ev, desc.pending_event = desc.pending_event, None
            if ev is not None:
                ev.settle(Outcome.DISABLED)  # a glitch: nothing holds the line any more
            return -errno.EINVAL
        if desc.istate & IRQS_REPLAY:
            return -errno.EBUSY
        if not (desc.istate & IRQS_PENDING):
            return 0
        desc.istate &= ~IRQS_PENDING
        desc.istate |= IRQS_REPLAY
        ev, desc.pending_event = desc.pending_event, None
        if ev is not None:
            ev.unsettle()
            ev.hop("check_irq_resend", "kernel/irq/resend.c", "genirq",
                   f"irq {desc.irq}: IRQS_PENDING → irq_chip_retrigger_hierarchy → apic_retrigger_irq")
            self.host.deliver_vector(desc.cpu, desc.vector, ev)
        return 0

    # ------------------------------------------------------------------ a level line that stays asserted
    def _unmasked(self, desc: IrqDesc, why: str) -> None:
        """The chip unmasked the line (unmask_irq): a level pin a device still asserts is sent to the CPU now
        (the device's held interrupt if it never got through, else a new one)."""
        if desc.level and not desc.masked:
            self._redeliver(desc, why)

    def _eoi(self, desc: IrqDesc) -> None:
        """The flow handler's EOI (``ioapic_ir_ack_level``) when the hard IRQ ends (``host_irq_ns`` after the interrupt
        was taken, plus the VM exit if it took its CPU out of a guest): if the
        line is unmasked and a device still asserts it, the IO-APIC sends it again then (one re-delivery armed
        at a time: an interrupt dispatched meanwhile does not add a second)."""
        if not desc.level:
            return
        host = self.host
        c = host.this_cpu
        if c is not None and host.cpus[c].at_eoi(lambda: self._eoi_now(desc)):
            return   # irqlab/cpu.py: the EOI is written when the hard IRQ ends (with the exit, if it took one); the
            # line may be unmasked by then (enable_irq meanwhile): _eoi_now looks at the mask at the EOI
        if desc.masked:
            return
        if not self.asserting_devices(desc):
            desc.redeliver_chain = 0
            return
        t = self._refire_timer(desc)
        if not t.pending:
            host.sched.mod_timer(t, host.now + host.timing.host_irq_ns)

    def _eoi_now(self, desc: IrqDesc) -> None:
        """The EOI, at the end of the hard IRQ: remote IRR clears; a device still asserting makes the pin send
        again now (its CPU takes it like anything else waiting there)."""
        if desc.masked or not desc.level:
            return
        if not self.asserting_devices(desc):
            desc.redeliver_chain = 0
            return
        if self.vector_irq[desc.cpu].get(desc.vector) is desc:
            self._redeliver(desc, None)

    def _refire_timer(self, desc: IrqDesc) -> Timer:
        if desc.refire is None:
            desc.refire = Timer(self._refire, (desc,), name=f"IO-APIC pin {desc.hwirq} (irq {desc.irq}) re-fires")
        return desc.refire

    def _refire(self, desc: IrqDesc) -> None:
        if desc.masked or self.vector_irq[desc.cpu].get(desc.vector) is not desc:
            return  # the mask holds it; the unmask re-delivers
        self._redeliver(desc, None)

    def _redeliver(self, desc: IrqDesc, unmasked_by: str | None) -> None:
        """The IO-APIC sends the vector of a still-asserted level pin: at the EOI (``unmasked_by`` None) or when
        ``unmasked_by`` (irq_startup, unmask_threaded_irq) unmasked the pin."""
        devs = self.asserting_devices(desc)
        if not devs:
            desc.redeliver_chain = 0
            return
        host = self.host
        # the endless-storm guard counts the re-deliveries of one run(until=None), or of one instant
        key = ("run", host.sched.quiet_runs) if host.sched.to_quiet else ("at", host.now)
        if desc.redeliver_key != key:
            desc.redeliver_key, desc.redeliver_chain = key, 0
        desc.redeliver_chain += 1
        if desc.redeliver_chain > REDELIVER_ENDLESS:
            desc.redeliver_chain = 0
            host.sched.mod_timer(self._refire_timer(desc), host.now)  # still due: the state stays whole
            raise RuntimeError(
                f"irq {desc.irq} is a level line that stays asserted ({devs[0].bdf}) and fired {REDELIVER_ENDLESS:,} "
                "times in a row with nothing lowering or disabling it: it would fire for ever (the kernel "
                "livelocks). Use run(until=...) to watch a bounded stretch.")
        held = devs[0].intx_status_event
        # held in the device while the line was masked: its first delivery; else a new hardware interrupt, the
        # IO-APIC sending the message again
        ev = held.claim() if held.outcome_is_pending() else None
        if ev is None:
            ev = host.new_event(f"irq {desc.irq} still asserted")
            ev.irq = desc.irq
            desc.redelivered += 1
        if unmasked_by is not None:
            ev.hop("unmask_irq", CHIP, "genirq", f"{unmasked_by}: irq {desc.irq} unmasked; the line is still asserted")
        ev.hop("IO-APIC sends again", HARDWARE, "device",
               f"pin {desc.hwirq} still asserted by {devs[0].bdf}" + (" after the EOI" if unmasked_by is None else "")
               + f": vector 0x{desc.vector:02x}")
        host.deliver_vector(desc.cpu, desc.vector, ev)

    # ------------------------------------------------------------------ dispatch
    def common_interrupt(self, cpu: int, vector: int, ev: IrqEvent) -> None:
        """x86 entry: ``vector_irq[vector]`` → ``desc->handle_irq(desc)``; an empty slot logs "No irq handler"
        (rate-limited) and EOIs; a VECTOR_SHUTDOWN slot is silently made VECTOR_UNUSED (reevaluate_vector)."""
        slot = self.vector_irq[cpu].get(vector)
        desc = slot if isinstance(slot, IrqDesc) else None
        if ev.journey is not None:
            ev.hop("common_interrupt", X86_IRQ, "cpu", f"CPU{cpu} vector 0x{vector:02x} → "
                   + (f"irq {desc.irq}" if desc else "VECTOR_SHUTDOWN" if slot is VECTOR_SHUTDOWN else "no descriptor"))
        if desc is None:
            if slot is VECTOR_SHUTDOWN:
                del self.vector_irq[cpu][vector]
            else:
                self.no_irq_handler(cpu, vector)
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

    def no_irq_handler(self, cpu: int, vector: int) -> None:
        """reevaluate_vector: ``pr_emerg_ratelimited("No irq handler for %d.%u\\n", cpu, vector)`` (and the
        ratelimit's own "%s: %d callbacks suppressed" line, printed first when a new interval starts)."""
        ok, missed = self.no_handler_rs(self.host.jiffies)
        if missed:
            self.host.printk("warn", f"reevaluate_vector: {missed} callbacks suppressed")
        if ok:
            self.host.printk("emerg", f"No irq handler for {cpu}.{vector}")

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
        if ev.journey is not None:
            ev.hop("handle_edge_irq", CHIP, "genirq", f"irq {desc.irq}")
        if not self._can_handle(desc):
            desc.masked = True  # mask_ack_irq()
            self._hold_pending(desc, ev, "disabled" if desc.actions else "no action")
            return
        self._kstat(desc, cpu, ev)
        self.handle_irq_event(desc, cpu, ev)

    def handle_fasteoi_irq(self, desc: IrqDesc, cpu: int, ev: IrqEvent) -> None:
        if ev.journey is not None:
            ev.hop("handle_fasteoi_irq", CHIP, "genirq", f"irq {desc.irq}")
        if not self._can_handle(desc):
            desc.masked = True  # mask_irq(), then EOI
            self._hold_pending(desc, ev, "disabled" if desc.actions else "no action")
            self._eoi(desc)     # cond_eoi_irq(): an enable_irq before it ends lets the IO-APIC send the pin again
            return
        self._kstat(desc, cpu, ev)
        if desc.istate & IRQS_ONESHOT:
            desc.masked = True  # mask_irq(): the line stays masked until its threads are done
        self.handle_irq_event(desc, cpu, ev)
        # cond_unmask_eoi_irq: unmask a ONESHOT line whose handlers woke no thread; the EOI in every case
        if desc.istate & IRQS_ONESHOT and not desc.disabled and desc.masked and not desc.threads_oneshot:
            desc.masked = False
        self._eoi(desc)
        if desc.istate & IRQS_PENDING:
            self.check_irq_resend(desc)

    def _kstat(self, desc: IrqDesc, cpu: int, ev: IrqEvent) -> None:
        before = desc.kstat[cpu]
        desc.kstat[cpu] = before + 1
        if ev.journey is not None:
            ev.change(f"kstat[{desc.irq}] CPU{cpu}", before, before + 1)

    def _call(self, fn: Handler, action: IrqAction, irq: int, ev: IrqEvent) -> tuple[int, str | None]:
        self.host.current = ev
        try:
            res = fn(irq, action.dev_id)
        finally:
            self.host.current = None
        return irqreturn(res)

    def handle_irq_event(self, desc: IrqDesc, cpu: int, ev: IrqEvent) -> int:
        """Call every action of the chain (retval |= res; a thread is woken for exactly IRQ_WAKE_THREAD), then
        note_interrupt(). The interrupt is handled if an action returned IRQ_HANDLED, waits for the verdict of
        the irq threads it woke if that is all they returned, else is unhandled."""
        desc.istate &= ~IRQS_PENDING
        tr = ev.journey is not None
        if tr:
            ev.hop("handle_irq_event", HANDLE, "genirq", f"irq {desc.irq}: {len(desc.actions)} action(s)")
        retval = IRQ_NONE
        bogus = None
        woken: list[IrqAction] = []
        for action in list(desc.actions):
            at = -1
            if tr:
                ev.hop("__handle_irq_event_percpu", HANDLE, "driver", f"action {action.name!r}")
                at = len(ev.journey.hops) - 1
            res, bad = self._call(action.handler, action, desc.irq, ev)
            if bad is not None and bogus is None:
                bogus = bad
            if res == IRQ_WAKE_THREAD:
                action.woke += 1
                if action.thread_fn is None:
                    self.warn_no_thread(desc.irq, action)
                else:
                    self.__irq_wake_thread(desc, action, ev)
                    woken.append(action)
            elif res & IRQ_HANDLED:
                action.handled += 1
            else:
                action.none += 1
            if at >= 0:
                h = ev.journey.hops[at]
                ret = bad if bad is not None else {
                    IRQ_HANDLED: "IRQ_HANDLED", IRQ_NONE: "IRQ_NONE", IRQ_WAKE_THREAD: "IRQ_WAKE_THREAD"}.get(
                    res, f"{res:#x}")
                ev.journey.hops[at] = replace(h, detail=f"action {action.name!r} returned {ret}")
            retval |= res
        if not self.noirqdebug:
            spurious.note_interrupt(self.host, desc, retval, ev, bogus=bogus)
        if not ev.done and not ev.carried:
            if retval & IRQ_HANDLED:
                ev.settle(Outcome.HANDLED_HOST)
            elif woken and retval == IRQ_WAKE_THREAD and ev.real:
                ev.carried = True  # the irq threads it woke give the verdict
                self._thread_waits[ev.id] = len(woken)
                for a in woken:
                    a.waiting.append(ev)
            else:
                ev.settle(Outcome.UNHANDLED)
        return retval

    # ------------------------------------------------------------------ irq threads
    def warn_no_thread(self, irq: int, action: IrqAction) -> None:
        """handle.c: a primary handler returned IRQ_WAKE_THREAD with no thread_fn (printed once per action)."""
        if action.warned:
            return
        action.warned = True
        self.host.printk("warn", f"IRQ {irq} device {action.name} returned IRQ_WAKE_THREAD "
                                 "but no thread function available.")

    def __irq_wake_thread(self, desc: IrqDesc, action: IrqAction, ev: IrqEvent) -> None:
        """Set IRQTF_RUNTHREAD (nothing to do if it is set: the pending run serves this interrupt too), mark the
        oneshot bit, count the thread active and wake it: its thread_fn runs ``irq_thread_ns`` later."""
        if action.runthread:
            ev.hop("__irq_wake_thread", HANDLE, "genirq", f"irq/{desc.irq}-{action.name} already woken")
            return
        action.runthread = True
        desc.threads_oneshot |= action.thread_mask
        desc.threads_active += 1
        self.host.sched.mod_timer(action.thread, self.host.now + self.host.timing.irq_thread_ns)
        ev.hop("__irq_wake_thread", HANDLE, "genirq", f"wake_up_process(irq/{desc.irq}-{action.name})")

    def _irq_thread(self, desc: IrqDesc, action: IrqAction) -> None:
        """irq_thread: IRQTF_RUNTHREAD cleared, irq_thread_fn (threads_handled++ only for IRQ_HANDLED, then
        irq_finalize_oneshot), wake_threads_waitq; then the verdict of the interrupts that woke it."""
        if not action.runthread:
            return
        action.runthread = False
        waiting, action.waiting = action.waiting, []
        ev = next((e for e in waiting if e.live), NO_EVENT)
        ret, bad = self._call(action.thread_fn, action, desc.irq, ev)
        if ev.journey is not None:
            r = bad or {IRQ_HANDLED: "IRQ_HANDLED", IRQ_NONE: "IRQ_NONE"}.get(ret, f"{ret:#x}")
            ev.hop("irq_thread_fn", MANAGE, "driver", f"irq/{desc.irq}-{action.name}: thread_fn returned {r}"
                   + (", threads_handled++" if ret == IRQ_HANDLED else ""))
        if ret == IRQ_HANDLED:
            desc.threads_handled += 1
            action.thread_handled += 1
        else:
            action.thread_none += 1
        self.irq_finalize_oneshot(desc, action)
        desc.threads_active -= 1
        for e in waiting:
            n = self._thread_waits.pop(e.id, 0) - 1
            if not e.live:
                continue
            if ret == IRQ_HANDLED:
                e.carried = False
                e.settle(Outcome.HANDLED_HOST)
            elif n > 0:
                self._thread_waits[e.id] = n
            else:
                e.carried = False
                e.settle(Outcome.UNHANDLED)

    def irq_finalize_oneshot(self, desc: IrqDesc, action: IrqAction) -> None:
        """A ONESHOT line stays masked until its threads are done: the last one unmasks it, unless disabled."""
        if not desc.istate & IRQS_ONESHOT or action.runthread:
            return
        desc.threads_oneshot &= ~action.thread_mask
        if not desc.threads_oneshot and not desc.disabled and desc.masked:
            desc.masked = False   # unmask_threaded_irq
            if desc.level:
                ev, desc.pending_event = desc.pending_event, None
                if ev is not None:
                    ev.settle(Outcome.DISABLED)  # a glitch at the masked level pin is gone when it is unmasked
            self._unmasked(desc, "unmask_threaded_irq")
