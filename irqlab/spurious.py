"""Spurious-interrupt detection: the 100,000-interrupt window that disables a line nobody handles.

Models kernel/irq/spurious.c: ``note_interrupt``, ``__report_bad_irq``, ``try_misrouted_irq``,
``misrouted_irq``, ``try_one_irq`` and the ``poll_spurious_irqs`` timer (every HZ/10). Simplification:
the "nobody cared" report prints the handler names instead of a stack dump and symbol addresses.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .uapi import (
    IRQ_HANDLED, IRQ_NONE, IRQ_WAKE_THREAD, IRQF_IRQPOLL, IRQF_SHARED, IRQS_PENDING, IRQS_POLL_INPROGRESS,
    IRQS_SPURIOUS_DISABLED, __IRQF_TIMER,
)
from .event import NO_EVENT
from .sched import HZ, NSEC_PER_JIFFY, Timer

if TYPE_CHECKING:
    from .event import IrqEvent
    from .genirq import IrqDesc
    from .kernel import Kernel

__all__ = ["note_interrupt", "SPURIOUS_WINDOW", "SPURIOUS_THRESHOLD", "AGEING_JIFFIES",
           "POLL_SPURIOUS_IRQ_INTERVAL"]

SPURIOUS_WINDOW = 100_000     # "if (likely(desc->irq_count < 100000)) return;"
SPURIOUS_THRESHOLD = 99_900   # "if (unlikely(desc->irqs_unhandled > 99900))"
AGEING_JIFFIES = HZ // 10     # "time_after(jiffies, desc->last_unhandled + HZ/10)"
POLL_SPURIOUS_IRQ_INTERVAL = HZ // 10
FILE = "kernel/irq/spurious.c"


def _bad_action_ret(ret: int) -> bool:
    return ret > (IRQ_HANDLED | IRQ_WAKE_THREAD)


def handler_line(action) -> str:
    """``"[<%p>] %ps"``: the kernel hashes %p; the model prints a stable stand-in derived from the name."""
    import zlib

    sym = getattr(action.handler, "__qualname__", action.name)
    return f"[<{zlib.crc32(f'{action.name}/{sym}'.encode()):016x}>] {sym}"


def __report_bad_irq(host: "Kernel", desc: "IrqDesc", action_ret: int) -> None:
    if _bad_action_ret(action_ret):
        host.printk("err", f"irq event {desc.irq}: bogus return value {action_ret:x}")
    else:
        host.printk("err", f'irq {desc.irq}: nobody cared (try booting with the "irqpoll" option)')
    host.printk("err", "handlers:")
    for a in desc.actions:
        host.printk("err", handler_line(a))


def note_interrupt(host: "Kernel", desc: "IrqDesc", action_ret: int, ev: "IrqEvent") -> None:
    """Account one dispatched interrupt; disable the line at > 99,900 unhandled out of 100,000."""
    gi = host.genirq
    if desc.istate & IRQS_POLL_INPROGRESS:
        return
    if _bad_action_ret(action_ret):
        if gi.bad_irq_reports < 100:
            gi.bad_irq_reports += 1
            __report_bad_irq(host, desc, action_ret)
        return
    before = (desc.irq_count, desc.irqs_unhandled)
    if action_ret != IRQ_HANDLED and not (action_ret & IRQ_HANDLED):
        # IRQ_WAKE_THREAD alone is judged later in the kernel; the model's threads run inline and count
        # as handled, so only IRQ_NONE reaches here.
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
        if before[1] != desc.irqs_unhandled:
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
    """Run a line's handlers from the poller: only shared, non-timer lines; disabled ones only if forced."""
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
        ret = host.genirq.handle_irq_event(desc, desc.cpu, ev)
        handled |= bool(ret & IRQ_HANDLED)
        if not (desc.istate & IRQS_PENDING and desc.actions):
            break
    desc.istate &= ~IRQS_POLL_INPROGRESS
    return handled


def _arm_poll_timer(host: "Kernel") -> None:
    gi = host.genirq
    if gi.poll_timer is None:
        gi.poll_timer = Timer(lambda: poll_spurious_irqs(host), name="poll_spurious_irqs", periodic=True)
    host.sched.mod_timer(gi.poll_timer, (host.jiffies + POLL_SPURIOUS_IRQ_INTERVAL) * NSEC_PER_JIFFY)


def poll_spurious_irqs(host: "Kernel") -> None:
    """Every HZ/10: try_one_irq(desc, force) on each spurious-disabled line. It re-enables nothing."""
    gi = host.genirq
    for irq in sorted(gi.descs):
        desc = gi.descs[irq]
        if desc.istate & IRQS_SPURIOUS_DISABLED:
            try_one_irq(host, desc, True)
    host.sched.mod_timer(gi.poll_timer, (host.jiffies + POLL_SPURIOUS_IRQ_INTERVAL) * NSEC_PER_JIFFY)
