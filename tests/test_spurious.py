"""note_interrupt rules from kernel/irq/spurious.c (kernel-facts §2)."""
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
