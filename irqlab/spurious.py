"""Spurious-interrupt detection: the 100,000-interrupt window that disables a line nobody handles.

Models kernel/irq/spurious.c: ``note_interrupt`` (with ``SPURIOUS_DEFERRED``: the verdict on an interrupt that
only woke irq threads is taken at the next interrupt, from whether ``threads_handled`` moved), ``bad_action_ret``,
``report_bad_irq`` / ``__report_bad_irq``, ``try_misrouted_irq``, ``misrouted_irq``, ``try_one_irq`` and the
``poll_spurious_irqs`` timer (every HZ/10). Simplification: the "nobody cared" report prints no stack dump, and
``%p`` prints a stable stand-in for the hashed pointer.
"""
from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Any

from .uapi import (
    IRQ_HANDLED, IRQ_NONE, IRQ_WAKE_THREAD, IRQF_IRQPOLL, IRQF_PERCPU, IRQF_SHARED, IRQS_PENDING,
    IRQS_POLL_INPROGRESS, IRQS_SPURIOUS_DISABLED, __IRQF_TIMER,
)
from .event import NO_EVENT
from .sched import HZ, NSEC_PER_JIFFY, Timer

if TYPE_CHECKING:
    from .event import IrqEvent
    from .genirq import IrqDesc
    from .kernel import Kernel

__all__ = ["note_interrupt", "SPURIOUS_WINDOW", "SPURIOUS_THRESHOLD", "AGEING_JIFFIES",
           "POLL_SPURIOUS_IRQ_INTERVAL", "SPURIOUS_DEFERRED", "REPORT_BAD_IRQ_COUNT", "handler_line",
           "nobody_cared_lines", "poll_spurious_irqs", "try_one_irq"]

SPURIOUS_WINDOW = 100_000     # "if (likely(desc->irq_count < 100000)) return;"
SPURIOUS_THRESHOLD = 99_900   # "if (unlikely(desc->irqs_unhandled > 99900))"
AGEING_JIFFIES = HZ // 10     # "time_after(jiffies, desc->last_unhandled + HZ/10)"
POLL_SPURIOUS_IRQ_INTERVAL = HZ // 10
SPURIOUS_DEFERRED = 0x80000000
REPORT_BAD_IRQ_COUNT = 100    # report_bad_irq: "static int count = 100;"
FILE = "kernel/irq/spurious.c"


def _bad_action_ret(ret: int) -> bool:
    """bad_action_ret: ``unsigned int r = action_ret; r > (IRQ_HANDLED | IRQ_WAKE_THREAD)``."""
    return (ret & 0xFFFFFFFF) > (IRQ_HANDLED | IRQ_WAKE_THREAD)


def _ptr(name: str, sym: str) -> str:
    """``%p``: the kernel prints a hashed pointer; the model a stable stand-in of the same width."""
    return f"{zlib.crc32(f'{name}/{sym}'.encode()):016x}"


def _sym(fn: Any, default: str) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or default


def handler_line(action) -> str:
    """``pr_err("[<%p>] %ps", handler, handler)``, then ``pr_cont(" threaded [<%p>] %ps", ...)`` for an action
    with a thread function: one line per action of the "nobody cared" report."""
    sym = _sym(action.handler, action.name)
    line = f"[<{_ptr(action.name, sym)}>] {sym}"
    if action.thread_fn is not None:
        tsym = _sym(action.thread_fn, action.name)
        line += f" threaded [<{_ptr(action.name + '/thread', tsym)}>] {tsym}"
    return line


def nobody_cared_lines(desc: "IrqDesc", action_ret: int, shown: str | None = None) -> list[tuple[str, str]]:
    """__report_bad_irq's lines as (level, text): the verdict, "handlers:" and one line per action. ``shown``:
    the repr of a return that was no irqreturn_t (printed in place of ``%x``)."""
    if shown is not None or _bad_action_ret(action_ret):
        what = f"{action_ret & 0xFFFFFFFF:x}" if shown is None else shown
        lines = [("err", f"irq event {desc.irq}: bogus return value {what}")]
    else:
        lines = [("err", f'irq {desc.irq}: nobody cared (try booting with the "irqpoll" option)')]
    lines.append(("err", "handlers:"))
    lines += [("err", handler_line(a)) for a in desc.actions]
    return lines


def __report_bad_irq(host: "Kernel", desc: "IrqDesc", action_ret: int, shown: str | None = None) -> None:
    for level, text in nobody_cared_lines(desc, action_ret, shown):
        host.printk(level, text)


def note_interrupt(host: "Kernel", desc: "IrqDesc", action_ret: int, ev: "IrqEvent", bogus: str | None = None) -> None:
    """Account one dispatched interrupt; disable the line at > 99,900 unhandled out of 100,000.

    ``bogus``: the repr of a handler's return that was no irqreturn_t at all (None, a str...): reported as a
    bogus return value."""
    gi = host.genirq
    if desc.istate & IRQS_POLL_INPROGRESS:
        return
    if bogus is not None or _bad_action_ret(action_ret):
        if gi.bad_irq_reports < REPORT_BAD_IRQ_COUNT:   # report_bad_irq
            gi.bad_irq_reports += 1
            __report_bad_irq(host, desc, action_ret, bogus)
        return
    before = desc.irqs_unhandled
    if action_ret & IRQ_WAKE_THREAD:
        if action_ret == IRQ_WAKE_THREAD:
            if not desc.threads_handled_last & SPURIOUS_DEFERRED:
                desc.threads_handled_last |= SPURIOUS_DEFERRED
                ev.hop("note_interrupt", FILE, "genirq", f"irq {desc.irq}: a thread was woken: the verdict "
                       "waits for the next interrupt (SPURIOUS_DEFERRED)")
                return
            handled = (desc.threads_handled & 0xFFFFFFFF) | SPURIOUS_DEFERRED
            if handled != desc.threads_handled_last:
                action_ret = IRQ_HANDLED
                desc.threads_handled_last = handled
            else:
                action_ret = IRQ_NONE
            ev.hop("note_interrupt", FILE, "genirq", f"irq {desc.irq}: the threads woken by the last interrupt "
                   + ("handled it" if action_ret == IRQ_HANDLED else "handled nothing: counted IRQ_NONE"))
        else:
            desc.threads_handled_last &= ~SPURIOUS_DEFERRED
    if action_ret == IRQ_NONE:
        if host.jiffies > desc.last_unhandled + AGEING_JIFFIES:
            desc.irqs_unhandled = 1
        else:
            desc.irqs_unhandled += 1
        desc.last_unhandled = host.jiffies
    if try_misrouted_irq(host, desc, action_ret):
        ok = misrouted_irq(host, desc.irq)
        if action_ret == IRQ_NONE:
            desc.irqs_unhandled -= ok
    if not desc.irqs_unhandled:
        return
    desc.irq_count += 1
    if desc.irq_count < SPURIOUS_WINDOW:
        if before != desc.irqs_unhandled and ev.journey is not None:
            ev.hop("note_interrupt", FILE, "genirq", f"irq {desc.irq}: count {desc.irq_count}, "
                   f"unhandled {desc.irqs_unhandled}")
        return
    desc.irq_count = 0
    if desc.irqs_unhandled > SPURIOUS_THRESHOLD:
        __report_bad_irq(host, desc, action_ret)
        host.printk("emerg", f"Disabling IRQ #{desc.irq}")
        ev.hop("note_interrupt", FILE, "genirq",
               f"irq {desc.irq}: {desc.irqs_unhandled} of 100000 unhandled: nobody cared, Disabling IRQ #{desc.irq}")
        desc.istate |= IRQS_SPURIOUS_DISABLED
        desc.depth += 1
        gi.irq_disable(desc)
        host.spurious_disabled.append((host.now, desc.irq))
        _arm_poll_timer(host)
    desc.irqs_unhandled = 0


def try_misrouted_irq(host: "Kernel", desc: "IrqDesc", action_ret: int) -> bool:
    fixup = host.genirq.irqfixup
    if not fixup:
        return False
    if action_ret == IRQ_NONE:
        return True
    if fixup < 2:
        return False
    if desc.irq == 0:
        return True
    return bool(desc.actions and desc.actions[0].flags & IRQF_IRQPOLL)


def misrouted_irq(host: "Kernel", irq: int) -> int:
    """Poll every other line (not irq 0) once; 1 if one of them handled something."""
    ok = 0
    for other in sorted(host.genirq.descs):
        if other == irq or other == 0:
            continue
        if try_one_irq(host, host.genirq.descs[other], False):
            ok = 1
    return ok


def try_one_irq(host: "Kernel", desc: "IrqDesc", force: bool) -> bool:
    """Run a line's handlers from the poller: not per-CPU lines; disabled ones only if forced; only if the first
    action is IRQF_SHARED and not a timer. True if a run of the chain returned exactly IRQ_HANDLED."""
    if desc.actions and desc.actions[0].flags & IRQF_PERCPU:   # irq_settings_is_per_cpu
        return False
    if desc.disabled and not force:
        return False
    if not desc.actions or not (desc.actions[0].flags & IRQF_SHARED) or desc.actions[0].flags & __IRQF_TIMER:
        return False
    ev = desc.pending_event
    desc.pending_event = None
    if ev is not None:
        ev.unsettle()  # the poller dispatches the pending interrupt
    else:
        devs = host.genirq.asserting_devices(desc)
        ev = (devs[0].intx_status_event.claim() if devs else None) or NO_EVENT
    ev.hop("try_one_irq", FILE, "genirq", f"poll_spurious_irqs: irq {desc.irq} polled")
    desc.istate |= IRQS_POLL_INPROGRESS
    handled = False
    while True:
        if host.genirq.handle_irq_event(desc, desc.cpu, ev) == IRQ_HANDLED:
            handled = True
        if not (desc.istate & IRQS_PENDING and desc.actions):
            break
    desc.istate &= ~IRQS_POLL_INPROGRESS
    return handled


def _arm_poll_timer(host: "Kernel") -> None:
    gi = host.genirq
    if gi.poll_timer is None:
        gi.poll_timer = Timer(poll_spurious_irqs, (host,), name="poll_spurious_irqs", periodic=True)
    host.sched.mod_timer(gi.poll_timer, (host.jiffies + POLL_SPURIOUS_IRQ_INTERVAL) * NSEC_PER_JIFFY)


def poll_spurious_irqs(host: "Kernel") -> None:
    """Every HZ/10: try_one_irq(desc, force) on each spurious-disabled line but irq 0. It re-enables nothing."""
    gi = host.genirq
    for irq in sorted(gi.descs):
        if not irq:
            continue
        desc = gi.descs.get(irq)
        if desc is not None and desc.istate & IRQS_SPURIOUS_DISABLED:
            try_one_irq(host, desc, True)
    host.sched.mod_timer(gi.poll_timer, (host.jiffies + POLL_SPURIOUS_IRQ_INTERVAL) * NSEC_PER_JIFFY)
