"""Widgets, driven from Python: set values, click buttons, assert on what they show."""
import pytest

from irqlab import scenarios, widgets

pytest.importorskip("ipywidgets")


def test_journey_steps_plain_function():
    h = scenarios.switchboard()
    steps = widgets.journey_steps(h, ("msi", "0000:03:00.0", 0))
    fns = [s.hop.function for s in steps]
    assert "vfio_msihandler" in fns and "irqfd_wakeup" in fns and fns[-1] == "kvm_apic_ack_interrupt"
    assert sum(h.irq_to_desc(29).kstat) == 0  # the stepper works on a copy
    s = steps[fns.index("handle_edge_irq")]
    assert "kstat[29] CPU3" in s.state_html() and "elixir.bootlin.com/linux/v6.18" in s.html()
    assert 'xlabel="' in s.diagram.dot
    sig = steps[fns.index("eventfd_signal_mask")]
    read = steps[fns.index("eventfd_ctx_do_read")]
    assert "count</code>: 0 → 1" in sig.state_html() and "count</code>: 1 → 0" in read.state_html()


def test_stepper_next_back_and_source_change():
    h = scenarios.switchboard()
    b = widgets.journey_stepper(h)
    gpu = next(v for label, v in b.source.options if v == ("msi", "0000:03:00.0", 0))
    b.source.value = gpu
    assert b.step.value == 0 and b.step.max == len(b.steps) - 1
    for _ in range(4):
        b.next_button.click()
    assert b.step.value == 4 and "__handle_irq_event_percpu" in b.hop_html.value
    b.back_button.click()
    assert b.step.value == 3 and "handle_irq_event" in b.hop_html.value
    b.step.value = b.step.max
    assert "kvm_apic_ack_interrupt" in b.hop_html.value and ("<svg" in b.diagram.value or "<pre>" in b.diagram.value)


def test_board_shows_kernel_errors_as_the_kernel_reports_them():
    h = scenarios.switchboard()
    r = widgets.board_apply(h, "request_irq", irq=29, name="intruder", shared=True)
    assert not r.ok and "EBUSY" in r.message and any("Flags mismatch irq 29" in x for x in r.dmesg_lines)
    r = widgets.board_apply(h, "request_irq", irq=20, name="newcomer", shared=True)
    assert r.ok and "newcomer" in r.proc_interrupts


def test_board_widget_flow_to_an_injected_interrupt():
    h = scenarios.switchboard()
    h.add_pci_device("0000:05:00.0", name="nic2", msix=2)
    b = widgets.registration_board(h)
    f = b.fields
    f["bdf"].options = list(h.devices)

    def do(action, **kw):
        b.action.value = action
        for k, v in kw.items():
            f[k].value = v
        b.apply_button.click()
        return b.message.value

    assert "bound to vfio-pci" in do("vfio_pci_bind", bdf="0000:05:00.0")
    assert "= 0" in do("set_irqs", bdf="0000:05:00.0", count=1)
    assert "KVM_IRQFD" in do("kvm_irqfd", bdf="0000:05:00.0", count=0, gsi=30)
    assert "KVM_SET_GSI_ROUTING" in do("set_route", gsi=30, vector=0x61, dest=1)
    assert "injected" in do("raise_msi", bdf="0000:05:00.0", count=0)
    assert "vfio-msix[0](0000:05:00.0)" in b.proc.value
    assert "error" in do("kvm_irqfd", bdf="0000:05:00.0", count=0, gsi=31)  # EBUSY: eventfd already has an irqfd


def test_storm_report_and_explorer():
    rep = widgets.storm_report(rate_hz=100_000, duration_ns=20_000_000, plot=False)
    assert sum(rep.result.ledger.values()) == len(rep.result) and "injected" in rep.ledger_text
    e = widgets.storm_explorer()
    first = e.report.result.ledger
    e.posted.value = True
    assert e.report.result.ledger == first  # no rerun until Run is pressed
    e.run_button.click()
    assert "posted" in e.report.result.ledger and "posted" in e.ledger.value
    assert "IR-PCI-MSIX" in e.proc.value
    with pytest.raises(ValueError):
        widgets.storm_report(burstiness=1.0)
