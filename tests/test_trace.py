"""What each hop changed, observed (irqlab.trace.observe + event.StateRecorder): structured targets, recorded at
the hop that makes them, the state after every hop, no cross-talk between interrupts, and nothing observed
while tracing is off (storms, the reference replay)."""
import pytest

from irqlab import event, scenarios, storm
from irqlab.trace import Change, Target, diff_states, observe

GPU = "0000:03:00.0"
CARD = "0000:04:00.0"


def _hop(j, fn, nth=0):
    return [h for h in j.hops if h.function == fn][nth]


def _changed(h):
    return {c.target: (c.before, c.after) for c in h.changes}


def test_each_hop_carries_the_state_it_changed_as_structured_targets():
    h = scenarios.switchboard()
    j = h.raise_msi(GPU, 0)
    h.run()
    assert _changed(_hop(j, "handle_edge_irq"))[Target("irq", 29, "kstat CPU3")] == (0, 1)
    sig, read = _changed(_hop(j, "eventfd_signal_mask")), _changed(_hop(j, "eventfd_ctx_do_read"))
    assert sig[Target("eventfd", f"{GPU}-msi0", "count")] == (0, 1)
    assert read[Target("eventfd", f"{GPU}-msi0", "count")] == (1, 0)
    ack = _changed(j.hops[-1])
    assert ack[Target("vcpu", (1, 0), "IRR")] == (frozenset({0x41}), frozenset())
    assert all(isinstance(c, Change) and isinstance(c.target, Target) for hop in j.hops for c in hop.changes)
    # every kernel-state change of the journey is on some hop: none falls between them
    first, last = j.hops[0], j.hops[-1]
    assert last.state == observe(h)
    assert str(_hop(j, "handle_edge_irq")).endswith("[irq 29 kstat CPU3: 0 → 1]")


def test_state_after_each_hop_is_the_state_then_not_the_final_one():
    h = scenarios.switchboard()
    h.raise_msi(GPU, 0)   # one earlier interrupt: kstat 1 before the journey we follow
    h.run()
    j = h.raise_msi(GPU, 0)
    h.run()
    kst = Target("irq", 29, "kstat CPU3")
    sig = Target("eventfd", f"{GPU}-msi0", "signals")
    delivered = Target("vcpu", (1, 0), "delivered")
    assert j.hops[0].state[kst] == 1 and j.hops[0].state[sig] == 1 and j.hops[0].state[delivered] == 1
    k = [i for i, x in enumerate(j.hops) if x.function == "handle_edge_irq"][0]
    assert j.hops[k - 1].state[kst] == 1 and j.hops[k].state[kst] == 2
    assert j.hops[-1].state[delivered] == 2


#: (target, before, after) -> the kernel function whose hop makes that change, on the INTx round trip
INTX_TRIP = {
    (Target("pci", CARD, "Status.Interrupt"), False, True): "INTx assert",
    (Target("irq", 16, "kstat CPU0"), 0, 1): "handle_fasteoi_irq",
    (Target("pci", CARD, "Command.INTx_Disable"), False, True): "vfio_intx_handler",
    (Target("vfio", CARD, "INTx masked"), False, True): "vfio_intx_handler",
    (Target("eventfd", f"{CARD}-intx", "count"), 0, 1): "eventfd_signal_mask",
    (Target("eventfd", f"{CARD}-intx", "count"), 1, 0): "eventfd_ctx_do_read",
    (Target("irqfd", (1, 16), "inject work"), "idle", "pending"): "schedule_work",
    (Target("irqfd", (1, 16), "inject work"), "pending", "idle"): "irqfd_inject",
    (Target("ioapic", (1, 16), "IRR"), False, True): "kvm_ioapic_set_irq",
    (Target("vcpu", (1, 0), "IRR"), frozenset(), frozenset({0x32})): "kvm_lapic_set_irr",
    (Target("vcpu", (1, 0), "VM exits"), 0, 1): "handle_external_interrupt",  # the kick's RES: ++irq_exits
    (Target("ioapic", (1, 16), "remote IRR"), False, True): "ioapic_service",
    (Target("vcpu", (1, 0), "ISR"), frozenset(), frozenset({0x32})): "kvm_apic_ack_interrupt",
    (Target("pci", CARD, "Status.Interrupt"), True, False): "guest driver services the device",
    (Target("vcpu", (1, 0), "ISR"), frozenset({0x32}), frozenset()): "apic_set_eoi",
    (Target("ioapic", (1, 16), "IRR"), True, False): "kvm_set_irq",
    (Target("eventfd", f"{CARD}-resample", "count"), 0, 1): "eventfd_signal_mask",
    (Target("eventfd", f"{CARD}-resample", "count"), 1, 0): "eventfd_ctx_do_read",
    (Target("pci", CARD, "Command.INTx_Disable"), True, False): "pci_check_and_unmask_intx",
    (Target("vfio", CARD, "INTx masked"), True, False): "pci_check_and_unmask_intx",
    (Target("ioapic", (1, 16), "remote IRR"), True, False): "kvm_ioapic_update_eoi_one",
}


def test_intx_round_trip_records_each_change_at_the_hop_that_makes_it():
    """The defect: DisINTx, the key change for INTx, was never recorded; 14 of 18 hops said "no state change".
    Now every change of the round trip is on the hop of the kernel function that makes it."""
    h = scenarios.shared_intx()
    j = h.raise_intx(CARD)
    h.run()
    at = {(c.target, c.before, c.after): hop.function for hop in j.hops for c in hop.changes}
    for change, fn in INTX_TRIP.items():
        assert at.get(change) == fn, (change, at.get(change), fn)


def test_two_interrupts_in_flight_keep_their_own_changes():
    """The NIC's hops run while the GPU's interrupt waits for its vCPU entry: neither gets the other's state."""
    h = scenarios.switchboard()
    gpu = h.raise_msi(GPU, 0)
    nic = h.raise_msi("0000:02:00.0", 1)
    h.run()
    nic_targets = {c.target for hop in nic.hops for c in hop.changes}
    assert Target("irq", 26, "kstat CPU0") in nic_targets
    assert not any(t.ident == 29 or t.kind in ("eventfd", "vcpu") for t in nic_targets)
    ack = gpu.hops[-1]
    assert {c.target.kind for c in ack.changes} == {"vcpu"}


def test_calls_between_raise_and_run_are_nobody_s_hop():
    h = scenarios.switchboard()
    j = h.raise_msi(GPU, 0)
    h.disable_irq(26)  # the student's own call while the GPU's interrupt waits for the vCPU entry
    h.run()
    assert not any(c.target.ident == 26 for hop in j.hops for c in hop.changes)


def test_observe_reads_only():
    h = scenarios.shared_intx()
    h.raise_intx(CARD)
    before = (h.proc_interrupts(), h.dmesg(), h.now)
    a, b = observe(h), observe(h)
    assert a == b and (h.proc_interrupts(), h.dmesg(), h.now) == before
    assert diff_states(a, b) == ()


@pytest.mark.parametrize("engine", ["vector", "reference"])
def test_storms_take_no_snapshot(monkeypatch, engine):
    """Snapshots only while journeys are traced: a storm (trace off in both engines) never observes."""
    calls = []
    real = event.observe
    monkeypatch.setattr(event, "observe", lambda k: calls.append(1) or real(k))
    h = scenarios.msix_nic(trace=True)
    h.raise_msi("0000:01:00.0", 0)
    h.run()
    n = len(calls)
    assert n > 0
    s = storm.poisson(h, rate_hz=200_000, duration_ns=2_000_000, seed=1, start_ns=h.now)
    storm.run(h, s, engine, progress=False)
    assert len(calls) == n


def test_a_journey_table_reads_left_to_right_in_jupyterlab():
    """JupyterLab right-aligns rendered table cells; the journey's HTML aligns its text columns left and its two
    number columns right, and every hop is a row."""
    from irqlab import scenarios

    h = scenarios.switchboard()
    j = h.raise_msi("0000:03:00.0", 0)
    h.run()
    html = j._repr_html_()
    assert "class='irqlab-journey'" in html and html.count("<tr>") == len(j.hops) + 1
    # inline, since JupyterLab's own rule for rendered table cells outranks a class selector (the defect: a <style>
    # block that the screenshots showed had no effect)
    assert html.count("<td style='text-align: left'>") == 4 * len(j.hops)
    assert html.count("<td style='text-align: right'>") == 2 * len(j.hops) and "<style>" not in html


def test_the_ipi_rows_are_observed_from_zero():
    """RES, PIN and PIW are always in the observed state (the CPU model counts them), so a kick's first reschedule
    IPI reads "CPU1 RES: 0 → 1", not "None → 1"; other arch rows appear only once non-zero."""
    h = scenarios.switchboard()
    j = h.raise_msi(GPU, 0)
    h.run()
    res = [c for hop in j.hops for c in hop.changes if c.target == Target("cpu", 1, "RES")]
    assert [(c.before, c.after) for c in res] == [(0, 1)] and str(res[0]) == "CPU1 RES: 0 → 1"
    assert j.hops[0].state[Target("cpu", 2, "PIN")] == 0 and Target("cpu", 0, "LOC") not in j.hops[0].state
