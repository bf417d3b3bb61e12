"""note_interrupt rules from kernel/irq/spurious.c."""
import pytest

import irqlab
from irqlab import IRQF_SHARED, IRQS_SPURIOUS_DISABLED
from irqlab.spurious import SPURIOUS_THRESHOLD, SPURIOUS_WINDOW

from helpers import handled, unhandled


def storm(host, irq, n, step_ns=2000):  # a hard IRQ takes Timing.host_irq_ns (1.5 µs) of its CPU
    for _ in range(n):
        host.raise_spurious(irq, at=host.now + step_ns)


@pytest.fixture
def quiet_host():
    h = irqlab.Host(ncpus=1, trace=False)
    h.alloc_irq(16, level=True)
    return h


def test_handled_before_first_unhandled_are_not_counted(quiet_host):
    h = quiet_host
    h.request_irq(16, handled, IRQF_SHARED, "ok", 1)
    storm(h, 16, 10)
    d = h.irq_to_desc(16)
    assert d.irq_count == 0 and d.irqs_unhandled == 0


def test_disables_at_the_100000th_counted_interrupt(quiet_host):
    h = quiet_host
    h.request_irq(16, unhandled, IRQF_SHARED, "deaf", 1)
    storm(h, 16, SPURIOUS_WINDOW - 1)
    d = h.irq_to_desc(16)
    assert not d.disabled and d.irq_count == SPURIOUS_WINDOW - 1
    storm(h, 16, 1)
    assert d.disabled and d.istate & IRQS_SPURIOUS_DISABLED and d.depth == 1
    log = h.dmesg()
    assert 'irq 16: nobody cared (try booting with the "irqpoll" option)' in log
    assert "Disabling IRQ #16" in log and "handlers:" in log
    assert d.irqs_unhandled == 0 and d.irq_count == 0
    assert h.spurious_disabled == [(h.now, 16)]
    # the next interrupt is refused and held pending; later ones dropped
    j = h.raise_spurious(16, at=h.now + 2000)
    assert j.outcome == "pending"
    h.ledger.check()


def test_exactly_99900_unhandled_does_not_disable(quiet_host):
    h = quiet_host
    state = {"n": 0}

    def mixed(irq, dev):
        state["n"] += 1
        # the first is unhandled (starts counting), then 99 handled among the rest
        return 1 if 2 <= state["n"] <= 101 else 0

    h.request_irq(16, mixed, IRQF_SHARED, "mixed", 1)
    storm(h, 16, SPURIOUS_WINDOW)
    d = h.irq_to_desc(16)
    assert not d.disabled  # 99,900 unhandled: not > 99,900
    assert SPURIOUS_THRESHOLD == 99_900


def test_ageing_resets_unhandled(quiet_host):
    h = quiet_host
    h.request_irq(16, unhandled, IRQF_SHARED, "deaf", 1)
    storm(h, 16, 5)
    d = h.irq_to_desc(16)
    assert d.irqs_unhandled == 5
    # time_after(jiffies, last_unhandled + HZ/10) is strict, in jiffies (4 ms at HZ=250):
    last = d.last_unhandled
    h.raise_spurious(16, at=(last + 25) * 4_000_000)  # exactly 25 jiffies later: not aged
    assert d.irqs_unhandled == 6
    h.raise_spurious(16, at=(last + 25 + 26) * 4_000_000)  # 26 jiffies after the last one: back to 1
    assert d.irqs_unhandled == 1


def test_poll_timer_polls_shared_disabled_lines_and_enables_nothing(quiet_host):
    h = quiet_host
    calls = []
    h.request_irq(16, lambda i, d: calls.append(h.now) or 0, IRQF_SHARED, "deaf", 1)
    storm(h, 16, SPURIOUS_WINDOW)
    d = h.irq_to_desc(16)
    assert d.disabled
    n = len(calls)
    h.run(until=h.now + 350_000_000)
    assert len(calls) - n >= 3  # every 100 ms
    assert d.disabled and d.depth == 1


def test_adding_a_shared_handler_re_enables(quiet_host):
    h = quiet_host
    h.request_irq(16, unhandled, IRQF_SHARED, "deaf", 1)
    storm(h, 16, SPURIOUS_WINDOW)
    d = h.irq_to_desc(16)
    assert d.disabled
    h.request_irq(16, handled, IRQF_SHARED, "fixed", 2)
    assert not d.disabled and d.depth == 0 and not d.istate & IRQS_SPURIOUS_DISABLED


def test_noirqdebug_never_disables():
    h = irqlab.Host(ncpus=1, trace=False, noirqdebug=True)
    h.alloc_irq(16, level=True)
    h.request_irq(16, unhandled, IRQF_SHARED, "deaf", 1)
    storm(h, 16, SPURIOUS_WINDOW + 5)
    assert not h.irq_to_desc(16).disabled


def test_irqfixup_misrouted_poll_credits_other_line():
    h = irqlab.Host(ncpus=1, trace=False, irqfixup=1)
    h.alloc_irq(16, level=True)
    h.alloc_irq(17, level=True)
    h.request_irq(16, unhandled, IRQF_SHARED, "deaf", 1)
    h.request_irq(17, handled, IRQF_SHARED, "other", 2)
    h.raise_spurious(16)
    assert h.irq_to_desc(16).irqs_unhandled == 0  # misrouted_irq found a taker: unhandled -= 1


def test_run_without_limit_returns_despite_the_periodic_poller(quiet_host):
    h = quiet_host
    h.request_irq(16, unhandled, IRQF_SHARED, "deaf", 1)
    storm(h, 16, SPURIOUS_WINDOW + 3)
    t = h.now
    h.run()  # the poll timer re-arms for ever; run() drains work and stops
    assert h.now == t and h.genirq.poll_timer.pending


# ------------------------------------------------------------------ threaded handlers (SPURIOUS_DEFERRED)
from irqlab import IRQ_HANDLED, IRQ_NONE, IRQ_WAKE_THREAD, IRQF_ONESHOT, scenarios  # noqa: E402
from irqlab.spurious import SPURIOUS_DEFERRED, handler_line  # noqa: E402


def _glitches(h, irq, n, step_ns):
    for _ in range(n):
        h.raise_spurious(irq, at=h.now + step_ns)


def test_a_thread_that_never_handles_is_disabled_one_interrupt_later(quiet_host):
    """kernel/irq/spurious.c note_interrupt: an interrupt that only woke a thread (action_ret ==
    IRQ_WAKE_THREAD) is judged at the next one, from whether threads_handled moved (SPURIOUS_DEFERRED); the
    first is not counted at all. So a thread that returns IRQ_NONE has its line disabled at the 100,001st
    interrupt, where a hard handler returning IRQ_NONE is disabled at the 100,000th."""
    h = quiet_host
    h.request_threaded_irq(16, None, lambda i, d: IRQ_NONE, IRQF_SHARED | IRQF_ONESHOT, "slow", 1)
    d = h.irq_to_desc(16)
    step = 10_000  # more than irq_thread_ns: each thread has run before the next interrupt
    _glitches(h, 16, 1, step)
    assert d.threads_handled_last == SPURIOUS_DEFERRED and d.irq_count == 0
    _glitches(h, 16, SPURIOUS_WINDOW - 1, step)
    assert not d.disabled and d.irq_count == SPURIOUS_WINDOW - 1
    _glitches(h, 16, 1, step)
    assert d.disabled and h.spurious_disabled == [(h.now, 16)] and sum(d.kstat) == SPURIOUS_WINDOW + 1
    lines = [x[2] for x in h.log]
    assert lines[0] == 'irq 16: nobody cared (try booting with the "irqpoll" option)'
    assert lines[2].endswith(" threaded [<" + lines[2].split(" threaded [<")[1]) and \
        lines[2].split("] ", 1)[1].startswith("irq_default_primary_handler threaded [<")
    assert lines[3] == "Disabling IRQ #16"
    h.run()
    h.ledger.check()
    assert h.ledger.as_dict() == {"unhandled": SPURIOUS_WINDOW + 1}


def test_a_thread_that_handles_keeps_its_line(quiet_host):
    """note_interrupt: threads_handled moved since the last interrupt → IRQ_HANDLED (threads_handled_last
    keeps SPURIOUS_DEFERRED set for the next one)."""
    h = quiet_host
    h.request_threaded_irq(16, None, lambda i, d: IRQ_HANDLED, IRQF_SHARED | IRQF_ONESHOT, "ok", 1)
    _glitches(h, 16, 20, 10_000)
    h.run()
    d = h.irq_to_desc(16)
    assert d.irqs_unhandled == 0 and d.threads_handled == 20
    assert d.threads_handled_last == SPURIOUS_DEFERRED | 19  # the verdict on the 19th, taken at the 20th


def test_a_hard_handled_interrupt_clears_the_deferral(quiet_host):
    """note_interrupt: a thread woken but a primary handler returned IRQ_HANDLED as well → the deferred
    detection bit is cleared."""
    h = quiet_host
    h.request_threaded_irq(16, None, lambda i, d: IRQ_NONE, IRQF_SHARED | IRQF_ONESHOT, "t", 1)
    h.request_irq(16, lambda i, d: IRQ_HANDLED if h.now > 15_000 else IRQ_NONE, IRQF_SHARED, "hard", 2)
    d = h.irq_to_desc(16)
    _glitches(h, 16, 1, 10_000)
    assert d.threads_handled_last == SPURIOUS_DEFERRED
    _glitches(h, 16, 1, 10_000)
    assert d.threads_handled_last == 0


def test_nobody_cared_marks_threaded_actions(host):
    """kernel/irq/spurious.c __report_bad_irq: ``pr_err("[<%p>] %ps", ...)`` then, for an action with a
    thread_fn, ``pr_cont(" threaded [<%p>] %ps", action->thread_fn, action->thread_fn)``."""
    host.alloc_irq(16, level=True)

    def my_thread(i, d):
        return IRQ_NONE

    host.request_threaded_irq(16, None, my_thread, IRQF_SHARED | IRQF_ONESHOT, "t", 1)
    host.request_irq(16, unhandled, IRQF_SHARED, "hard", 2)
    a, b = host.irq_to_desc(16).actions
    la, lb = handler_line(a), handler_line(b)
    assert la.startswith("[<") and "] irq_default_primary_handler threaded [<" in la
    assert la.endswith(">] test_nobody_cared_marks_threaded_actions.<locals>.my_thread")
    assert " threaded " not in lb and lb.endswith(">] unhandled") and len(lb.split(">]")[0]) == 18


# ------------------------------------------------------------------ the poller and try_one_irq
def test_the_poller_skips_irq_0():
    """kernel/irq/spurious.c poll_spurious_irqs: ``for_each_irq_desc(i, desc) { if (!i) continue; ...``."""
    h = irqlab.Host(ncpus=1, trace=False)
    h.alloc_irq(0, level=False)
    h.alloc_irq(16, level=True)
    calls = []
    h.request_irq(0, lambda i, d: calls.append(i) or IRQ_NONE, IRQF_SHARED, "timer0", 1)
    h.request_irq(16, lambda i, d: calls.append(i) or IRQ_NONE, IRQF_SHARED, "deaf", 1)
    for irq in (0, 16):
        d = h.irq_to_desc(irq)
        d.istate |= IRQS_SPURIOUS_DISABLED
        h.genirq.disable_irq(irq)
    from irqlab.spurious import _arm_poll_timer
    _arm_poll_timer(h)
    h.run(until=250_000_000)
    assert calls and set(calls) == {16}


def test_try_one_irq_counts_only_exactly_irq_handled():
    """kernel/irq/spurious.c try_one_irq: ``if (handle_irq_event(desc) == IRQ_HANDLED) ret = true``: a line
    whose handlers returned IRQ_HANDLED | IRQ_WAKE_THREAD does not count for misrouted_irq."""
    for other_ret, credited in ((IRQ_HANDLED, True), (IRQ_HANDLED | IRQ_WAKE_THREAD, False)):
        h = irqlab.Host(ncpus=1, trace=False, irqfixup=1)
        h.alloc_irq(16, level=True)
        h.alloc_irq(17, level=True)
        h.request_irq(16, unhandled, IRQF_SHARED, "deaf", 1)
        h.request_threaded_irq(17, lambda i, d, r=other_ret: r, lambda i, d: IRQ_HANDLED,
                               IRQF_SHARED | IRQF_ONESHOT, "other", 2)
        h.raise_spurious(16)
        assert h.irq_to_desc(16).irqs_unhandled == (0 if credited else 1)


# ------------------------------------------------------------------ a level line that stays asserted
ODD = "0000:05:00.0"


def _stuck_host(**kw):
    """scenarios.shared_intx (eth0 on a host driver and a vfio card share GSI 16) plus a device on GSI 16 that
    no driver claims: its INTx stays asserted."""
    h = scenarios.shared_intx(trace=False, **kw)
    h.add_pci_device(ODD, name="odd", intx_pin=1, gsi=16)
    return h


def test_a_stuck_intx_fires_after_every_eoi_until_nobody_cared():
    """kernel/irq/chip.c handle_fasteoi_irq EOIs the line at the end; kernel/irq/resend.c: level interrupts
    "are resent by hardware when they are still active" — the IO-APIC sends the vector again after each EOI
    (``host_irq_ns`` after the interrupt), each time a new hardware interrupt. note_interrupt disables the line
    at the 100,000th; the next one masks it and waits; the poller then runs the handlers every HZ/10."""
    h = _stuck_host()
    j = h.raise_intx(ODD)
    d = h.irq_to_desc(16)
    assert j.outcome == "unhandled" and h.cpus[d.cpu].job_end == 1_500   # the EOI: when the hard IRQ ends
    h.run(until=4_500)
    d = h.irq_to_desc(16)
    assert sum(d.kstat) == 4 and d.redelivered == 3 and h.ledger.raised == 4
    h.run()
    H = h.timing.host_irq_ns
    assert h.spurious_disabled == [(99_999 * H, 16)]
    assert sum(d.kstat) == SPURIOUS_WINDOW and d.redelivered == SPURIOUS_WINDOW   # the last one is held
    assert h.ledger.as_dict() == {"unhandled": SPURIOUS_WINDOW, "pending": 1}
    assert d.masked and d.disabled and d.pending_event.source == "irq 16 still asserted"
    assert [x[2] for x in h.log][-1] == "Disabling IRQ #16" and h.log[-1][0] == 99_999 * H
    poll = h.genirq.poll_timer.expires_ns
    assert poll == (99_999 * H // 4_000_000 + 25) * 4_000_000
    eth0 = d.actions[0]
    h.run(until=poll)
    assert h.ledger.as_dict() == {"unhandled": SPURIOUS_WINDOW + 1} and eth0.none == SPURIOUS_WINDOW + 1
    # eth0 raises while the line is disabled: it waits in its Status bit for the next poll (HZ/10 later)
    h.raise_intx("0000:00:19.0", at=poll + 1_000)
    k = h.last_event
    assert k.outcome.label == "pending"
    h.run(until=poll + 100_000_000)
    assert k.outcome.label == "handled_host" and sum(d.kstat) == SPURIOUS_WINDOW
    h.ledger.check()


def test_a_stuck_line_fires_at_most_once_per_eoi():
    """One message in service per pin (the IO-APIC's Remote IRR, set until the EOI at the end of the hard IRQ):
    eth0 asserting at 700 ns waits at the pin; the EOI at 1,500 ns sends the pin again, carrying eth0's
    interrupt (not a new one), and the next EOI finds only the stuck device: one re-delivery."""
    h = _stuck_host()
    h.raise_intx(ODD)
    h.raise_intx("0000:00:19.0", at=700)
    e = h.last_event
    assert e.outcome.label == "pending"
    h.run(until=3_000)
    d = h.irq_to_desc(16)
    assert sum(d.kstat) == 3 and d.redelivered == 1   # ODD at 0, eth0's at 1500, a re-fire at 3000
    assert e.outcome.label == "handled_host"


def test_run_refuses_a_line_that_would_fire_for_ever(monkeypatch):
    """With noirqdebug nothing disables a stuck line: the kernel livelocks; run() to quiet refuses it (after
    REDELIVER_ENDLESS re-deliveries in a row) and run(until=...) watches a bounded stretch."""
    from irqlab import genirq

    monkeypatch.setattr(genirq, "REDELIVER_ENDLESS", 500)
    h = _stuck_host()
    h.genirq.noirqdebug = True
    h.raise_intx(ODD)
    h.run(until=1_500_000)
    assert h.irq_to_desc(16).redelivered == 1_000
    with pytest.raises(RuntimeError, match="irq 16 is a level line that stays asserted"):
        h.run()
    assert h.genirq.descs[16].refire.pending  # still firing: the state is whole
    h.ledger.check()
