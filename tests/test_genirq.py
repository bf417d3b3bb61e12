"""genirq rules from kernel/irq/manage.c, chip.c, handle.c, resend.c."""
import errno

import pytest
from hypothesis import given, settings, strategies as st

import irqlab
from irqlab import (
    IRQ_NONE, IRQF_NO_AUTOEN, IRQF_ONESHOT, IRQF_PERCPU, IRQF_PROBE_SHARED, IRQF_SHARED,
    IRQF_TRIGGER_HIGH, IRQF_TRIGGER_LOW, IRQS_PENDING, IRQ_NOTCONNECTED, KernelError,
)
from irqlab.uapi import IRQF_COND_ONESHOT, IRQF_COND_SUSPEND, IRQF_NO_SUSPEND

from helpers import err, handled, unhandled


def test_request_irq_starts_the_line(host, line):
    assert line.depth == 1 and line.disabled
    assert host.request_irq(16, handled, 0, "a", None) == 0
    assert line.depth == 0 and not line.disabled and line.actions[0].flags & IRQF_COND_ONESHOT


def test_request_irq_errors(host, line):
    assert err(host.request_irq, IRQ_NOTCONNECTED, handled, 0, "x", None) == errno.ENOTCONN
    assert err(host.request_irq, 16, handled, IRQF_SHARED, "x", None) == errno.EINVAL     # shared needs dev_id
    assert err(host.request_irq, 16, handled, IRQF_SHARED | IRQF_NO_AUTOEN, "x", 1) == errno.EINVAL
    assert err(host.request_irq, 16, handled, IRQF_COND_SUSPEND, "x", 1) == errno.EINVAL
    assert err(host.request_irq, 16, handled, IRQF_SHARED | IRQF_COND_SUSPEND | IRQF_NO_SUSPEND, "x", 1) == errno.EINVAL
    assert err(host.request_irq, 99, handled, 0, "x", None) == errno.EINVAL               # no descriptor
    assert err(host.request_threaded_irq, 16, None, None, 0, "x", None) == errno.EINVAL   # neither handler
    # threaded with handler=NULL and !ONESHOT on a chip that is not oneshot-safe (IO-APIC)
    assert err(host.request_threaded_irq, 16, None, handled, 0, "x", None) == errno.EINVAL
    assert "Threaded irq requested with handler=NULL and !ONESHOT" in host.dmesg()
    assert not line.actions  # nothing half-changed
    with pytest.raises(TypeError):
        host.request_irq(16, handled, "0", "x", None)
    with pytest.raises(TypeError):
        host.request_irq(16, 42, 0, "x", None)


def test_threaded_oneshot_ok_on_msi_chip(host, msi_line):
    assert host.request_threaded_irq(msi_line.irq, None, handled, 0, "t", None) == 0


def test_shared_line_appends_at_tail_and_calls_every_action(host, line):
    calls = []
    for name in "abc":
        host.request_irq(16, lambda irq, d, n=name: calls.append(n) or IRQ_NONE, IRQF_SHARED, name, name)
    assert line.action_names() == ["a", "b", "c"]
    host.generic_handle_irq(16, cpu=2)
    assert calls == ["a", "b", "c"]
    assert line.kstat == [0, 0, 1, 0]


def test_share_needs_both_shared(host, line):
    host.request_irq(16, handled, 0, "excl", None)
    assert err(host.request_irq, 16, handled, IRQF_SHARED, "b", 1) == errno.EBUSY
    assert "Flags mismatch irq 16. 00200080 (b) vs. 00200000 (excl)" in host.dmesg()


def test_probe_shared_is_silent(host, line):
    host.request_irq(16, handled, 0, "excl", None)
    n = len(host.log)
    assert err(host.request_irq, 16, handled, IRQF_SHARED | IRQF_PROBE_SHARED, "b", 1) == errno.EBUSY
    assert len(host.log) == n


def test_trigger_recorded_by_first_share_caught_from_third(host, line):
    # manage.c __setup_irq: the 2nd requester fixes the recorded type; a mismatch is caught from the 3rd on.
    host.request_irq(16, handled, IRQF_SHARED | IRQF_TRIGGER_LOW, "a", 1)
    host.request_irq(16, handled, IRQF_SHARED | IRQF_TRIGGER_HIGH, "b", 2)  # accepted, records HIGH
    assert line.trigger_type == IRQF_TRIGGER_HIGH and line.default_trigger_set
    assert err(host.request_irq, 16, handled, IRQF_SHARED | IRQF_TRIGGER_LOW, "c", 3) == errno.EBUSY
    host.request_irq(16, handled, IRQF_SHARED | IRQF_TRIGGER_HIGH, "d", 4)
    assert line.action_names() == ["a", "b", "d"]


def test_oneshot_agreement_and_cond_oneshot(host, line):
    host.request_threaded_irq(16, handled, handled, IRQF_SHARED | IRQF_ONESHOT, "a", 1)
    host.request_irq(16, handled, IRQF_SHARED, "b", 2)  # request_irq adds IRQF_COND_ONESHOT: inherits ONESHOT
    assert line.actions[1].flags & IRQF_ONESHOT
    assert err(host.request_threaded_irq, 16, handled, None, IRQF_SHARED, "c", 3) == errno.EBUSY


def test_percpu_must_agree(host, line):
    host.request_irq(16, handled, IRQF_SHARED, "a", 1)
    assert err(host.request_irq, 16, handled, IRQF_SHARED | IRQF_PERCPU, "b", 2) == errno.EBUSY


def test_no_autoen_leaves_depth_one(host, msi_line):
    host.request_irq(msi_line.irq, handled, IRQF_NO_AUTOEN, "x", None)
    assert msi_line.depth == 1
    host.enable_irq(msi_line.irq)
    assert msi_line.depth == 0


def test_free_irq_returns_name_and_warns_on_unknown(host, line):
    host.request_irq(16, handled, IRQF_SHARED, "a", "A")
    host.request_irq(16, handled, IRQF_SHARED, "b", "B")
    assert host.free_irq(16, "A") == "a" and line.action_names() == ["b"]
    assert host.free_irq(16, "nope") is None
    assert "Trying to free already-free IRQ 16" in host.dmesg()
    assert host.free_irq(16, "B") == "b"
    assert line.depth == 1 and line.masked and not line.actions  # shut down


def test_disable_enable_depth_and_unbalanced(host, msi_line):
    irq = msi_line.irq
    host.request_irq(irq, handled, 0, "x", None)
    host.disable_irq(irq)
    host.disable_irq(irq)
    assert msi_line.depth == 2 and msi_line.disabled and not msi_line.masked  # lazy
    host.enable_irq(irq)
    assert msi_line.depth == 1 and msi_line.disabled
    host.enable_irq(irq)
    assert msi_line.depth == 0 and not msi_line.disabled
    host.enable_irq(irq)
    assert "Unbalanced enable for IRQ" in host.dmesg() and msi_line.depth == 0


def test_edge_disabled_pending_then_replayed_on_enable(host, msi_line):
    irq = msi_line.irq
    host.request_irq(irq, handled, 0, "x", None)
    host.disable_irq(irq)
    j = host.generic_handle_irq(irq, cpu=1)
    assert j.outcome == "pending" and msi_line.istate & IRQS_PENDING and msi_line.masked
    assert msi_line.kstat == [0, 0, 0, 0]  # not counted: kstat++ is after the gate
    j2 = host.generic_handle_irq(irq, cpu=1)
    assert j2.outcome == "disabled"
    host.enable_irq(irq)  # check_irq_resend → retrigger
    assert j.outcome == "handled_host" and "check_irq_resend" in j.functions()
    assert sum(msi_line.kstat) == 1
    host.ledger.check()


def test_level_line_is_not_resent(host, line):
    host.request_irq(16, unhandled, IRQF_SHARED, "x", 1)
    host.disable_irq(16)
    j = host.raise_spurious(16)
    assert j.outcome == "pending"
    host.enable_irq(16)
    assert j.outcome == "disabled" and not (line.istate & IRQS_PENDING)
    assert sum(line.kstat) == 0
    host.ledger.check()


def test_no_action_and_no_vector(host, line):
    j = host.generic_handle_irq(16)  # descriptor without action: refused, pending
    assert j.outcome == "pending"
    # a vector nobody allocated on this CPU
    ev = host.new_event("stray")
    host.deliver_vector(3, 0x99, ev)
    assert ev.outcome.label == "no_handler" and host.log[-1][1:] == ("emerg", "No irq handler for 3.153")


def test_journey_names_real_functions(host, msi_line):
    host.request_irq(msi_line.irq, handled, 0, "x", None)
    j = host.raise_spurious(msi_line.irq)
    assert j.hops[0].hardware  # the pin fires: hardware, not a kernel function
    assert j.functions() == ["common_interrupt", "handle_edge_irq", "handle_irq_event", "__handle_irq_event_percpu"]
    assert j.outcome == "handled_host"
    assert all(h.url.startswith("https://elixir.bootlin.com/linux/v6.18/") for h in j if not h.hardware)


def test_affinity_moves_vector(host, msi_line):
    host.request_irq(msi_line.irq, handled, 0, "x", None)
    host.irq_set_affinity(msi_line.irq, 3)
    host.raise_spurious(msi_line.irq)
    assert msi_line.kstat[3] == 1
    with pytest.raises(KernelError):
        host.irq_set_affinity(msi_line.irq, 9)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["req", "free", "dis", "en", "fire_h", "fire_n"]), max_size=40))
def test_ledger_and_depth_invariants(ops):
    host = irqlab.Host(ncpus=2)
    host.alloc_irq(16, level=True)
    ids = []
    for i, op in enumerate(ops):
        try:
            if op == "req":
                host.request_irq(16, handled if i % 2 else unhandled, IRQF_SHARED, f"a{i}", i)
                ids.append(i)
            elif op == "free" and ids:
                host.free_irq(16, ids.pop(0))
            elif op == "dis":
                host.disable_irq(16)
            elif op == "en":
                host.enable_irq(16)
            elif op.startswith("fire"):
                host.raise_spurious(16)
        except KernelError:
            pass
        d = host.irq_to_desc(16)
        assert d.depth >= 0 and (d.depth > 0) == d.disabled or not d.actions
        host.ledger.check()


# ------------------------------------------------------------------ irq threads (kernel/irq/handle.c, manage.c)
from irqlab import IRQ_HANDLED, IRQ_WAKE_THREAD  # noqa: E402
from irqlab.genirq import BITS_PER_LONG, VECTOR_SHUTDOWN  # noqa: E402


def _threaded(host, irq, primary, thread_ret, flags=IRQF_SHARED | IRQF_ONESHOT, name="t", dev=1):
    calls = []

    def thread_fn(i, d):
        calls.append(host.now)
        return thread_ret

    host.request_threaded_irq(irq, primary, thread_fn, flags, name, dev)
    return calls


def test_a_thread_is_woken_only_for_exactly_irq_wake_thread(host, line):
    """kernel/irq/handle.c __handle_irq_event_percpu: ``switch (res) { case IRQ_WAKE_THREAD: ... }`` — a
    primary handler returning IRQ_HANDLED | IRQ_WAKE_THREAD wakes nothing."""
    calls = _threaded(host, 16, lambda i, d: IRQ_HANDLED | IRQ_WAKE_THREAD, IRQ_HANDLED)
    j = host.raise_spurious(16)
    host.run()
    assert calls == [] and j.outcome == "handled_host"
    host.free_irq(16, 1)
    calls = _threaded(host, 16, lambda i, d: IRQ_WAKE_THREAD, IRQ_HANDLED)
    j = host.raise_spurious(16, at=host.now + 1000)
    assert calls == [] and j.outcome is None          # not inline: the thread runs later
    host.run()
    assert calls == [host.now] and calls[0] == j.t_raise + host.timing.irq_thread_ns
    assert j.outcome == "handled_host" and "__irq_wake_thread" in j.functions()


def test_wake_thread_without_a_thread_function_warns_once(host, msi_line):
    """kernel/irq/handle.c warn_no_thread: printk(KERN_WARNING "IRQ %d device %s returned IRQ_WAKE_THREAD but
    no thread function available.") once per action (IRQTF_WARNED); the interrupt handled nothing."""
    host.request_irq(msi_line.irq, lambda i, d: IRQ_WAKE_THREAD, 0, "lazy", None)
    j1 = host.raise_spurious(msi_line.irq)
    j2 = host.raise_spurious(msi_line.irq, at=host.now + 2000)  # after the first one's hard IRQ (host_irq_ns)
    want = f"IRQ {msi_line.irq} device lazy returned IRQ_WAKE_THREAD but no thread function available."
    assert [x[1:] for x in host.log] == [("warn", want)]
    assert j1.outcome == j2.outcome == "unhandled" and msi_line.actions[0].woke == 2
    host.ledger.check()


def test_irq_thread_fn_counts_threads_handled_only_for_irq_handled(host, line):
    """kernel/irq/manage.c irq_thread_fn: ``if (ret == IRQ_HANDLED) atomic_inc(&desc->threads_handled)``."""
    rets = iter([IRQ_HANDLED, IRQ_NONE, IRQ_HANDLED | IRQ_WAKE_THREAD, IRQ_HANDLED])
    host.request_threaded_irq(16, None, lambda i, d: next(rets), IRQF_SHARED | IRQF_ONESHOT, "t", 1)
    outcomes = []
    for k in range(4):
        j = host.raise_spurious(16, at=k * 100_000)
        host.run(until=k * 100_000 + 50_000)
        outcomes.append(j.outcome)
    a = line.actions[0]
    assert line.threads_handled == 2 and (a.thread_handled, a.thread_none) == (2, 2)
    assert outcomes == ["handled_host", "unhandled", "unhandled", "handled_host"]  # the thread's verdict


def test_a_woken_thread_serves_the_interrupts_that_find_it_woken(host, msi_line):
    """kernel/irq/handle.c __irq_wake_thread: "If the RUNTHREAD bit is already set, nothing to do": one run
    of the thread for every interrupt until it runs; an MSI chip is IRQCHIP_ONESHOT_SAFE (no mask)."""
    calls = _threaded(host, msi_line.irq, None, IRQ_HANDLED, flags=0)
    js = [host.raise_spurious(msi_line.irq, at=t) for t in (0, 1000, 2000)]
    assert not msi_line.masked and [j.outcome for j in js] == [None] * 3
    host.run()
    assert calls == [host.timing.irq_thread_ns] and [j.outcome for j in js] == ["handled_host"] * 3
    assert msi_line.actions[0].woke == 3 and msi_line.threads_active == 0
    host.ledger.check()


def test_oneshot_keeps_a_level_line_masked_until_its_thread_is_done(host, line):
    """kernel/irq/chip.c handle_fasteoi_irq masks an IRQS_ONESHOT line before the handlers;
    cond_unmask_eoi_irq leaves it masked while threads_oneshot is set; manage.c irq_finalize_oneshot unmasks
    it when the thread is done. A glitch at the masked level pin is held, and gone at the unmask."""
    _threaded(host, 16, None, IRQ_NONE)
    j = host.raise_spurious(16)
    assert line.masked and line.threads_oneshot == line.actions[0].thread_mask == 1
    k = host.raise_spurious(16, at=1000)
    assert k.outcome == "pending" and sum(line.kstat) == 1
    host.run()
    assert not line.masked and line.threads_oneshot == 0
    assert j.outcome == "unhandled" and k.outcome == "disabled"
    host.ledger.check()


def test_a_device_held_by_the_oneshot_mask_is_serviced_by_the_thread(host):
    """irq_finalize_oneshot after a thread that cleared the device: nothing is asserted at the unmask, so
    nothing fires again (a threaded INTx driver, pci.HostDriver(threaded=True))."""
    host.add_pci_device("0000:00:19.0", intx_pin=1, gsi=16)
    host.bind_host_driver("0000:00:19.0", "eth0", use_msi=False, threaded=True)
    j = host.raise_intx("0000:00:19.0")
    desc = host.irq_to_desc(16)
    assert desc.masked and j.outcome is None
    host.run()
    assert j.outcome == "handled_host" and not desc.masked and desc.redelivered == 0
    assert desc.actions[0].handler.__name__ == "irq_default_primary_handler"
    host.ledger.check()


def test_free_irq_runs_a_woken_thread_before_it_returns(host, msi_line):
    """kernel/irq/manage.c __free_irq: __synchronize_irq waits for threads_active == 0, and
    irq_wait_for_interrupt runs a woken thread one last time at kthread_stop."""
    calls = _threaded(host, msi_line.irq, None, IRQ_HANDLED, flags=0, dev=None)
    j = host.raise_spurious(msi_line.irq, at=100)
    host.free_irq(msi_line.irq, None)
    assert calls == [100] and j.outcome == "handled_host" and msi_line.threads_active == 0
    host.run()
    assert calls == [100]


def test_disable_irq_waits_for_the_thread_but_nosync_does_not(host, msi_line):
    """kernel/irq/manage.c: disable_irq = __disable_irq_nosync + synchronize_irq (threads too)."""
    calls = _threaded(host, msi_line.irq, None, IRQ_HANDLED, flags=0, dev=None)
    host.raise_spurious(msi_line.irq)
    host.genirq.disable_irq_nosync(msi_line.irq)
    assert calls == []
    host.enable_irq(msi_line.irq)
    host.disable_irq(msi_line.irq)
    assert calls == [0]


def test_oneshot_is_dropped_on_a_oneshot_safe_chip(host, msi_line):
    """kernel/irq/manage.c __setup_irq: ``if (desc->irq_data.chip->flags & IRQCHIP_ONESHOT_SAFE)
    new->flags &= ~IRQF_ONESHOT`` (PCI-MSI): no IRQS_ONESHOT, no thread_mask, no masking."""
    host.request_threaded_irq(msi_line.irq, None, handled, IRQF_ONESHOT, "t", None)
    a = msi_line.actions[0]
    assert not a.flags & IRQF_ONESHOT and a.thread_mask == 0 and not msi_line.istate & 0x20


def test_oneshot_thread_masks_and_the_64th_sharer(host, line):
    """kernel/irq/manage.c __setup_irq: each ONESHOT action gets the first zero bit of the others' masks;
    with BITS_PER_LONG of them the next one is -EBUSY."""
    for i in range(BITS_PER_LONG):
        host.request_threaded_irq(16, None, handled, IRQF_SHARED | IRQF_ONESHOT, f"t{i}", i)
    assert [a.thread_mask for a in line.actions] == [1 << i for i in range(BITS_PER_LONG)]
    assert err(host.request_threaded_irq, 16, None, handled, IRQF_SHARED | IRQF_ONESHOT, "x", 99) == errno.EBUSY
    host.free_irq(16, 5)
    host.request_threaded_irq(16, None, handled, IRQF_SHARED | IRQF_ONESHOT, "again", 5)
    assert line.actions[-1].thread_mask == 1 << 5


# ------------------------------------------------------------------ lifecycle (chip.c irq_shutdown, manage.c)
def test_free_of_the_last_action_keeps_pending_and_the_next_request_replays_it(host, msi_line):
    """kernel/irq/chip.c irq_shutdown: ``desc->depth++`` and istate left alone (IRQS_PENDING stays);
    manage.c __setup_irq's irq_startup(desc, IRQ_RESEND, ...) → check_irq_resend replays it."""
    irq = msi_line.irq
    host.request_irq(irq, handled, 0, "a", None)
    host.disable_irq(irq)
    j = host.raise_spurious(irq)
    assert j.outcome == "pending" and msi_line.istate & IRQS_PENDING and msi_line.depth == 1
    host.free_irq(irq, None)
    assert msi_line.depth == 2 and msi_line.istate & IRQS_PENDING and msi_line.pending_event is not None
    assert host.genirq.vector_irq[msi_line.cpu][msi_line.vector] is VECTOR_SHUTDOWN
    host.request_irq(irq, handled, 0, "b", None)
    host.run()  # the replay waits in the CPU's IRR until the first interrupt's hard IRQ ends
    assert msi_line.depth == 0 and j.outcome == "handled_host" and "check_irq_resend" in j.functions()
    assert msi_line.actions[0].handled == 1 and not msi_line.istate & IRQS_PENDING
    host.ledger.check()


def test_shutdown_of_a_line_that_never_started_leaves_depth(host, msi_line):
    """chip.c irq_shutdown acts only on a started line (irqd_is_started): IRQF_NO_AUTOEN keeps depth 1."""
    host.request_irq(msi_line.irq, handled, IRQF_NO_AUTOEN, "x", None)
    host.free_irq(msi_line.irq, None)
    assert msi_line.depth == 1


def test_the_last_free_clears_disable_unlazy(host, line):
    """kernel/irq/manage.c __free_irq: ``irq_settings_clr_disable_unlazy(desc)`` with the last action."""
    line.unlazy = True
    host.request_irq(16, handled, IRQF_SHARED, "a", 1)
    host.request_irq(16, handled, IRQF_SHARED, "b", 2)
    host.free_irq(16, 1)
    assert line.unlazy
    host.free_irq(16, 2)
    assert not line.unlazy


def test_a_shut_down_vector_is_silent_once(host, msi_line):
    """arch/x86/kernel/irq.c reevaluate_vector: a VECTOR_SHUTDOWN slot is made VECTOR_UNUSED without a word;
    only a VECTOR_UNUSED slot logs "No irq handler for %d.%u"."""
    host.request_irq(msi_line.irq, handled, 0, "x", None)
    host.free_irq(msi_line.irq, None)
    cpu, vec = msi_line.cpu, msi_line.vector
    for _ in range(2):
        host.run(until=host.now + 2000)  # one at a time: a CPU in hard IRQ would merge the second
        ev = host.new_event("late")
        host.deliver_vector(cpu, vec, ev)
        assert ev.outcome.label == "no_handler"
    assert [x[2] for x in host.log] == [f"No irq handler for {cpu}.{vec}"]


def test_no_irq_handler_is_rate_limited_like_pr_emerg_ratelimited(host):
    """arch/x86/kernel/irq.c: pr_emerg_ratelimited("No irq handler for %d.%u\\n"); include/linux/printk.h
    printk_ratelimited with DEFAULT_RATELIMIT_INTERVAL (5 * HZ) and BURST (10); lib/ratelimit.c
    ___ratelimit prints "%s: %d callbacks suppressed" (func = reevaluate_vector) when the next interval
    starts, i.e. at the first call with jiffies > begin + 5 * HZ."""
    jiffy = 4_000_000
    for k in range(25):  # 25 in the first jiffy, each after the one before has left hard-IRQ context
        host.run(until=host.now + 2000)
        ev = host.new_event("stray")
        host.deliver_vector(0, 0x99, ev)
    assert len(host.log) == 10
    host.run(until=(1250 * jiffy))                  # jiffies == begin + interval: still the same interval
    host.deliver_vector(0, 0x99, host.new_event("stray"))
    assert len(host.log) == 10
    host.run(until=(1251 * jiffy))                  # time_is_before_jiffies(begin + interval)
    host.deliver_vector(1, 0x98, host.new_event("stray"))
    assert host.log[-2:] == [(1251 * jiffy, "warn", "reevaluate_vector: 16 callbacks suppressed"),
                             (1251 * jiffy, "emerg", "No irq handler for 1.152")]
    assert host.ledger.as_dict() == {"no_handler": 27}


def test_manage_c_messages_carry_the_genirq_prefix(host, line):
    """kernel/irq/manage.c: ``#define pr_fmt(fmt) "genirq: " fmt``; WARN() prints its message as is."""
    host.request_irq(16, handled, 0, "excl", None)
    err(host.request_irq, 16, handled, IRQF_SHARED, "b", 1)
    assert host.log[-1][1:] == ("err", "genirq: Flags mismatch irq 16. 00200080 (b) vs. 00200000 (excl)")
    host.free_irq(16, "nope")
    assert [x[2] for x in host.log[-3:]] == ["------------[ cut here ]------------",
                                             "Trying to free already-free IRQ 16",
                                             "WARNING: at kernel/irq/manage.c:1829 __free_irq"]


@pytest.mark.parametrize("ret,shown,outcome", [
    (None, "None", "unhandled"), ("x", "'x'", "unhandled"), (-1, "ffffffff", "handled_host"),
    (4, "4", "unhandled"), (2.5, "2.5", "unhandled")])
def test_a_handler_that_returns_no_irqreturn(host, line, ret, shown, outcome):
    """kernel/irq/spurious.c bad_action_ret reads the return as ``unsigned int``: anything above
    IRQ_HANDLED | IRQ_WAKE_THREAD is "irq event %d: bogus return value %x", then "handlers:" and the list;
    note_interrupt counts nothing. A Python value that is no int at all (None, a str) is reported the same
    way with its repr and handled nothing. The dispatch completes: kstat counted, one outcome, no error."""
    host.request_irq(16, lambda i, d: ret, IRQF_SHARED, "bad", 1)
    j = host.raise_spurious(16)
    assert j.outcome == outcome and sum(line.kstat) == 1
    assert host.log[0][2] == f"irq event 16: bogus return value {shown}" and host.log[1][2] == "handlers:"
    assert line.irqs_unhandled == 0 and line.irq_count == 0
    host.ledger.check()


def test_a_true_return_is_irq_handled(host, line):
    """C converts ``true`` to 1: a handler returning True returned IRQ_HANDLED."""
    host.request_irq(16, lambda i, d: True, IRQF_SHARED, "bool", 1)
    assert host.raise_spurious(16).outcome == "handled_host" and not host.log


def test_bogus_reports_stop_after_100(host, line):
    """kernel/irq/spurious.c report_bad_irq: ``static int count = 100``, for every line together."""
    host.request_irq(16, lambda i, d: 7, IRQF_SHARED, "bad", 1)
    for _ in range(105):
        host.raise_spurious(16, at=host.now + 2000)
    assert sum("bogus return value" in x[2] for x in host.log) == 100


def test_irq_set_affinity_without_a_free_vector_is_enospc(host, msi_line):
    """arch/x86/kernel/apic/vector.c: irq_matrix_alloc fails with -ENOSPC when the CPU has no vector left."""
    host.request_irq(msi_line.irq, handled, 0, "x", None)
    gi = host.genirq
    gi._used_vectors[2] |= set(range(0x21, 0xEB))
    assert err(host.irq_set_affinity, msi_line.irq, 2) == errno.ENOSPC
    assert msi_line.cpu != 2 and gi.vector_irq[msi_line.cpu][msi_line.vector] is msi_line
    with pytest.raises(TypeError):
        host.irq_set_affinity(msi_line.irq, 1.0)


@pytest.mark.parametrize("kw,exc", [(dict(irq=16.0), TypeError), (dict(irq=True), TypeError),
                                    (dict(irq=-1), ValueError), (dict(irq=30, cpu=99), ValueError),
                                    (dict(irq=30, cpu=-1), ValueError), (dict(irq=30, cpu="0"), TypeError)])
def test_alloc_irq_refuses_bad_input_before_any_change(host, kw, exc):
    irq = kw.pop("irq")
    with pytest.raises(exc):
        host.alloc_irq(irq, **kw)
    assert host.genirq.descs == {} and all(not u for u in host.genirq._used_vectors)


def test_an_irq_past_nr_irqs_grows_it_as_sparse_irq_does():
    """kernel/irq/irqdesc.c __irq_alloc_descs: ``if (start + cnt > nr_irqs) irq_expand_nr_irqs(start + cnt)``
    (CONFIG_SPARSE_IRQ: up to MAX_SPARSE_IRQS = INT_MAX)."""
    h = irqlab.Host(ncpus=1, nr_irqs=16)
    h.alloc_irq(16, level=True)
    assert h.nr_irqs == 17
    assert h.proc_interrupts().splitlines()[0].startswith(" " * 11 + "CPU0")


def test_a_level_line_started_while_a_device_asserts_it_fires(host):
    """kernel/irq/chip.c irq_startup → irq_enable → unmask_irq: an IO-APIC level pin still asserted is sent
    to the CPU at once (the interrupt the device raised while the line was shut down)."""
    host.add_pci_device("0000:00:19.0", intx_pin=1, gsi=16)
    j = host.raise_intx("0000:00:19.0")
    assert j.outcome == "pending"
    host.bind_host_driver("0000:00:19.0", "eth0", use_msi=False)
    assert j.outcome == "handled_host" and "unmask_irq" in j.functions()
    host.ledger.check()
