"""genirq rules from kernel/irq/manage.c, chip.c, handle.c, resend.c (kernel-facts §1)."""
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
    # kernel-facts §1.4: the 2nd requester fixes the recorded type; a mismatch is caught from the 3rd on.
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
    assert ev.outcome.label == "no_handler" and "No irq handler for vector" in host.dmesg()


def test_handler_must_return_irqreturn(host, line):
    host.request_irq(16, lambda i, d: None, IRQF_SHARED, "bad", 1)
    with pytest.raises(TypeError, match="IRQ_NONE or IRQ_HANDLED"):
        host.generic_handle_irq(16)


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
