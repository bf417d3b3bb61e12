"""ipywidgets apps: step one interrupt hop by hop, register and route interrupts, drive a storm.

Not a kernel file: each widget is a thin view over a plain function (``journey_steps``, ``board_apply``,
``storm_report``) that returns the same content, so notebooks and tests can use them headless.
Simplification: the stepper replays the interrupt on a copy of the host, so stepping never changes yours.
"""
from __future__ import annotations

import copy
import html
from dataclasses import dataclass, field
from typing import Any

from . import scenarios as _scenarios
from . import viz
from ._optional import require
from .errors import KernelError
from .trace import Hop, Journey

__all__ = ["Step", "journey_steps", "interrupt_sources", "journey_stepper", "BoardResult", "board_apply",
           "BOARD_ACTIONS", "registration_board", "StormReport", "storm_report", "storm_explorer"]


# ------------------------------------------------------------------------------------------- the stepper
@dataclass
class Step:
    index: int
    hop: Hop
    journey: Journey
    diagram: viz.Diagram
    changes: list = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.hop.url

    def html(self) -> str:
        h = self.hop
        fn = (f"<i>{html.escape(h.function)}</i> (hardware)" if h.hardware else
              f"<a href='{h.url}' target='_blank'><code>{html.escape(h.function)}()</code></a> in "
              f"<code>{html.escape(h.file)}</code>")
        return (f"<b>hop {self.index + 1} of {len(self.journey.hops)}</b> · {h.t_ns:,} ns · <b>{h.actor}</b><br>"
                f"{fn}<br>{html.escape(h.detail)}")

    def state_html(self) -> str:
        if not self.changes:
            return "<i>no state change recorded at this hop</i>"
        return "<br>".join(f"<code>{html.escape(str(k))}</code>: {html.escape(str(a))} → {html.escape(str(b))}"
                           for k, a, b in self.changes)


def interrupt_sources(host: Any) -> list[tuple[str, tuple]]:
    """(label, source) for everything the host can raise: MSI/MSI-X vectors, INTx pins, glitches."""
    out = []
    for bdf, dev in host.devices.items():
        for v in dev.vectors:
            out.append((f"{bdf} ({dev.name}) MSI{'-X' if dev.msix_enabled else ''} vector {v.index}", ("msi", bdf, v.index)))
        if dev.intx_pin and dev.gsi is not None and dev.driver is not None and (not dev.vectors):
            out.append((f"{bdf} ({dev.name}) INTx", ("intx", bdf)))
    for irq, d in sorted(host.genirq.descs.items()):
        if d.level and d.actions:
            out.append((f"glitch on irq {irq} (no device asserted it)", ("spurious", irq)))
    return out


def _raise(host: Any, source: tuple) -> Any:
    kind = source[0]
    if kind == "msi":
        return host.raise_msi(source[1], source[2])
    if kind == "intx":
        return host.raise_intx(source[1])
    if kind == "spurious":
        return host.raise_spurious(source[1])
    raise ValueError(f"unknown source {source!r}: use ('msi', bdf, index), ('intx', bdf) or ('spurious', irq)")


def journey_steps(host: Any, source: tuple) -> list[Step]:
    """Raise ``source`` on a copy of ``host``, run it to completion, and return one Step per hop."""
    h = copy.deepcopy(host)
    h.trace = True
    j = _raise(h, source)
    h.run(until=h.now + 10_000_000)  # 10 ms of model time: enough for every window and round trip here
    return [Step(i, hop, j, viz.journey_diagram(h, j, upto=i), list(hop.changes)) for i, hop in enumerate(j.hops)]


def _svg_or_text(d: viz.Diagram) -> str:
    """The diagram as inline SVG scaled to the widget's width (or its text form with the install hint)."""
    import re

    b = d._repr_mimebundle_()
    if "image/svg+xml" in b:
        svg = b["image/svg+xml"]
        svg = svg[svg.find("<svg"):]
        svg = re.sub(r'<svg width="[^"]*" height="[^"]*"', '<svg width="100%" style="max-width:1100px;height:auto"',
                     svg, count=1)
        return f"<div style='width:100%'>{svg}</div>"
    return b["text/html"]


def journey_stepper(host: Any = None, scenario: str = "switchboard") -> Any:
    """Choose an interrupt source, then step its journey: next, back, play; the diagram lights each hop."""
    w = require("ipywidgets", extra="course", what="irqlab.widgets.journey_stepper")

    host = host if host is not None else _scenarios.SCENARIOS[scenario]()
    srcs = interrupt_sources(host)
    if not srcs:
        raise ValueError("this host has no interrupt source to step through")
    source = w.Dropdown(options=srcs, value=srcs[0][1], description="interrupt", layout=w.Layout(width="560px"))
    back, nxt = w.Button(description="◀ back"), w.Button(description="next ▶")
    play = w.Play(interval=900, min=0, max=1, step=1, description="play")
    step = w.IntSlider(min=0, max=1, description="hop", continuous_update=True)
    w.jslink((play, "value"), (step, "value"))
    hop_html, state_html, diagram = w.HTML(), w.HTML(), w.HTML()
    box = w.VBox([source, w.HBox([back, nxt, play, step]), hop_html, state_html, diagram])
    box.source, box.next_button, box.back_button, box.play, box.step = source, nxt, back, play, step
    box.hop_html, box.state_html, box.diagram = hop_html, state_html, diagram
    box.steps = []

    def show(*_: Any) -> None:
        if not box.steps:
            return
        s = box.steps[step.value]
        hop_html.value = s.html()
        state_html.value = s.state_html()
        diagram.value = _svg_or_text(s.diagram)

    def load(*_: Any) -> None:
        box.steps = journey_steps(host, source.value)
        n = len(box.steps)
        step.max = play.max = n - 1
        step.value = 0
        show()

    nxt.on_click(lambda b: setattr(step, "value", min(step.value + 1, step.max)))
    back.on_click(lambda b: setattr(step, "value", max(step.value - 1, 0)))
    step.observe(show, "value")
    source.observe(load, "value")
    load()
    return box


# ------------------------------------------------------------------------------------- the registration board
BOARD_ACTIONS = ("request_irq", "free_irq", "vfio_pci_bind", "set_irqs", "kvm_irqfd", "set_route", "raise_msi",
                 "raise_intx")


@dataclass
class BoardResult:
    ok: bool
    message: str
    dmesg_lines: list
    proc_interrupts: str


def _toy_handler(irq: int, dev_id: Any) -> int:
    from .uapi import IRQ_HANDLED

    return IRQ_HANDLED


def board_apply(host: Any, action: str, **kw: Any) -> BoardResult:
    """Do one registration step on ``host``; kernel errors come back as the kernel reports them."""
    from .eventfd import Eventfd
    from .kvm import msi as _msi
    from .kvm.irqchip import msi_route
    from .uapi import IRQF_SHARED, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_DATA_EVENTFD, VFIO_PCI_MSIX_IRQ_INDEX

    if action not in BOARD_ACTIONS:
        raise ValueError(f"action is one of {BOARD_ACTIONS}, not {action!r}")
    log0 = len(host.log)
    board = host.__dict__.setdefault("_board", {"eventfds": {}})
    try:
        if action == "request_irq":
            irq = int(kw["irq"])
            if irq not in host.genirq.descs:
                host.alloc_irq(irq, level=irq < 24)
            flags = IRQF_SHARED if kw.get("shared", True) else 0
            host.request_irq(irq, _toy_handler, flags, kw.get("name", "toy"), kw.get("name", "toy"))
            msg = f"request_irq({irq}, handler, {'IRQF_SHARED' if flags else '0'}, {kw.get('name', 'toy')!r}) = 0"
        elif action == "free_irq":
            name = host.free_irq(int(kw["irq"]), kw.get("name", "toy"))
            msg = f"free_irq({kw['irq']}) returned {name!r}"
        elif action == "vfio_pci_bind":
            host.vfio_pci_bind(kw["bdf"])
            msg = f"{kw['bdf']} bound to vfio-pci"
        elif action == "set_irqs":
            v = host.pci_dev(kw["bdf"]).driver
            n = int(kw.get("count", 1))
            efds = [Eventfd(name=f"{kw['bdf']}-msix{i}") for i in range(n)]
            r = v.set_irqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_MSIX_IRQ_INDEX, 0, n, efds)
            for i, e in enumerate(efds):
                board["eventfds"][(kw["bdf"], i)] = e
            msg = f"VFIO_DEVICE_SET_IRQS(MSI-X, 0, {n}, eventfds) = {r}"
        elif action == "kvm_irqfd":
            vm = host.vms[int(kw.get("vm", 1)) - 1] if host.vms else host.create_vm(nvcpus=2)
            e = board["eventfds"][(kw["bdf"], int(kw.get("index", 0)))]
            vm.kvm_irqfd(e, int(kw["gsi"]))
            msg = f"KVM_IRQFD(vm{vm.id}, {e.name}, gsi {kw['gsi']}) = 0"
        elif action == "set_route":
            vm = host.vms[int(kw.get("vm", 1)) - 1]
            m = _msi.encode(dest_id=int(kw.get("dest", 0)), vector=int(kw["vector"]))
            keep = [r for r in vm.routing.all() if r.gsi != int(kw["gsi"])]
            vm.kvm_set_gsi_routing(keep + [msi_route(int(kw["gsi"]), m.address_lo, m.data)])
            msg = f"KVM_SET_GSI_ROUTING: gsi {kw['gsi']} → MSI dest {kw.get('dest', 0)} vector 0x{int(kw['vector']):02x}"
        elif action == "raise_msi":
            j = host.raise_msi(kw["bdf"], int(kw.get("index", 0)))
            host.run(until=host.now + 1_000_000)
            msg = f"raised {j.source}: {j.outcome}"
        else:
            j = host.raise_intx(kw["bdf"])
            host.run(until=host.now + 1_000_000)
            msg = f"raised {j.source}: {j.outcome}"
        ok = True
    except KernelError as e:
        ok, msg = False, f"error: -{e.errname} {e.detail}"
    except (KeyError, IndexError) as e:
        ok, msg = False, f"missing input: {e}"
    except (ValueError, TypeError) as e:
        ok, msg = False, f"bad input: {e}"
    lines = [t for _, _, t in host.log[log0:]]
    return BoardResult(ok, msg, lines, host.proc_interrupts())


def registration_board(host: Any = None) -> Any:
    """Request/free IRQs, bind to vfio-pci, SET_IRQS, assign irqfds, set routes; watch the kernel's tables."""
    w = require("ipywidgets", extra="course", what="irqlab.widgets.registration_board")

    host = host if host is not None else _scenarios.switchboard()
    action = w.Dropdown(options=BOARD_ACTIONS, value="request_irq", description="call")
    irq = w.IntText(value=16, description="irq")
    name = w.Text(value="toy", description="name")
    shared = w.Checkbox(value=True, description="IRQF_SHARED")
    bdf = w.Dropdown(options=list(host.devices), description="device")
    count = w.IntText(value=1, description="count / index")
    gsi = w.IntText(value=25, description="gsi")
    vector = w.IntText(value=0x51, description="vector")
    dest = w.IntText(value=0, description="dest APIC")
    apply = w.Button(description="apply", button_style="primary")
    message, proc, diagram = w.HTML(), w.HTML(), w.HTML()
    box = w.VBox([w.HBox([action, apply]), w.HBox([irq, name, shared]), w.HBox([bdf, count]),
                  w.HBox([gsi, vector, dest]), message, diagram, proc])
    box.action, box.apply_button, box.message, box.proc, box.diagram = action, apply, message, proc, diagram
    box.fields = dict(irq=irq, name=name, shared=shared, bdf=bdf, count=count, gsi=gsi, vector=vector, dest=dest)
    box.host = host

    def refresh(r: BoardResult | None = None) -> None:
        if r is not None:
            color = "green" if r.ok else "#c00"
            dm = "".join(f"<br><code>{html.escape(x)}</code>" for x in r.dmesg_lines)
            message.value = f"<span style='color:{color}'>{html.escape(r.message)}</span>{dm}"
        proc.value = f"<b>/proc/interrupts</b><pre>{html.escape(host.proc_interrupts())}</pre>"
        diagram.value = _svg_or_text(viz.host_diagram(host))

    def on_apply(_: Any) -> None:
        a = action.value
        kw = dict(irq=irq.value, name=name.value, shared=shared.value, bdf=bdf.value, count=count.value,
                  index=count.value, gsi=gsi.value, vector=vector.value, dest=dest.value)
        refresh(board_apply(host, a, **kw))

    apply.on_click(on_apply)
    refresh()
    return box


# ------------------------------------------------------------------------------------------ the storm explorer
@dataclass
class StormReport:
    result: Any
    ledger_text: str
    proc_text: str
    figure: Any

    def png(self, dpi: int = 90) -> bytes:
        """The figure as PNG bytes (what the explorer shows)."""
        import io

        buf = io.BytesIO()
        self.figure.savefig(buf, format="png", dpi=dpi)
        return buf.getvalue()


def storm_report(scenario: str = "msix_nic", *, rate_hz: float = 200_000, duration_ns: int = 50_000_000,
                 burstiness: float = 0.0, posted: bool = False, irqfd_work_ns: int = 4_000,
                 guest_handler_ns: int = 2_000, vcpu_mode: str = "running", seed: int = 0,
                 queues: int = 4, plot: bool = True) -> StormReport:
    """Build the scenario with these timings, run a storm with the vector engine, and report it.

    ``burstiness`` in [0, 1): 0 is a steady Poisson storm; above 0 the same mean rate arrives in bursts
    that fill only ``1 - burstiness`` of the time. The irqfd work delay acts on routes that take the work
    path and the guest handler time on level-triggered vectors; the NIC's MSI-X takes the fast path.
    """
    from . import storm as _storm
    from .timing import Timing

    if not 0 <= burstiness < 1:
        raise ValueError("burstiness is in [0, 1)")
    timing = Timing(irqfd_work_ns=int(irqfd_work_ns), guest_handler_ns=int(guest_handler_ns))
    if scenario not in ("msix_nic", "posted_nic"):
        raise ValueError("the storm explorer drives 'msix_nic' or 'posted_nic'")
    host = _scenarios.msix_nic(queues, timing=timing, trace=False, posted=posted or scenario == "posted_nic",
                               vcpu_mode=vcpu_mode)
    if burstiness > 0:
        period = 1_000_000
        on = max(1, int(period * (1 - burstiness)))
        s = _storm.bursts(host, rate_hz=rate_hz / (1 - burstiness), on_ns=on, off_ns=period - on,
                          duration_ns=int(duration_ns), seed=seed)
    else:
        s = _storm.poisson(host, rate_hz=rate_hz, duration_ns=int(duration_ns), seed=seed)
    r = _storm.run(host, s, "vector")
    fig = _plot(r, duration_ns) if plot else None
    return StormReport(r, r.ledger_table(), r.proc_interrupts(), fig)


def _plot(r: Any, duration_ns: int) -> Any:
    Figure = require("matplotlib.figure", extra="course", what="irqlab.widgets.storm_report(plot=True)").Figure

    fig = Figure(figsize=(12, 3.2))
    ax = fig.subplots(1, 3)
    bins, rates = r.rate(max(1, int(duration_ns) // 100))
    for label, c in sorted(rates.items()):
        ax[0].plot(bins / 1e6, c, label=label)
    ax[0].set(xlabel="time (ms)", ylabel="interrupts per bin", title="rate over time, by outcome")
    ax[0].legend(fontsize=7)
    lat = r.latency_ns[r.latency_ns >= 0]
    if lat.size:
        ax[1].hist(lat / 1000, bins=60)
    ax[1].set(xlabel="latency to guest (µs)", title="latency distribution")
    led = r.ledger
    ax[2].barh(list(led), list(led.values()))
    ax[2].set(title="where each interrupt ended (the ledger)")
    fig.tight_layout()
    return fig


def storm_explorer(scenario: str = "msix_nic") -> Any:
    """Sliders and toggles that rerun the vector engine when you press Run (never while dragging)."""
    w = require("ipywidgets", extra="course", what="irqlab.widgets.storm_explorer")

    rate = w.FloatLogSlider(value=2e5, base=10, min=3, max=6.5, description="rate/queue (Hz)", continuous_update=False)
    burst = w.FloatSlider(value=0.0, min=0, max=0.95, step=0.05, description="burstiness", continuous_update=False)
    dur = w.IntSlider(value=50, min=1, max=500, description="duration (ms)", continuous_update=False)
    posted = w.Checkbox(value=scenario == "posted_nic", description="posted interrupts (VT-d)")
    halted = w.Checkbox(value=False, description="vCPUs halted (idle guest)")
    work = w.IntSlider(value=4000, min=0, max=50_000, step=500, description="irqfd work (ns)", continuous_update=False)
    ghandler = w.IntSlider(value=2000, min=0, max=50_000, step=500, description="guest handler (ns)",
                           continuous_update=False)
    run = w.Button(description="Run", button_style="primary")
    ledger, proc, plot = w.HTML(), w.HTML(), w.Image(format="png", layout=w.Layout(max_width="1100px"))
    box = w.VBox([w.HBox([rate, burst, dur]), w.HBox([posted, halted]), w.HBox([work, ghandler, run]), ledger, plot,
                  proc])
    box.rate, box.burstiness, box.duration, box.posted, box.halted = rate, burst, dur, posted, halted
    box.irqfd_work, box.guest_handler, box.run_button, box.ledger, box.proc, box.plot = work, ghandler, run, ledger, proc, plot
    box.report = None

    def go(_: Any = None) -> None:
        rep = storm_report(scenario, rate_hz=rate.value, duration_ns=dur.value * 1_000_000, burstiness=burst.value,
                           posted=posted.value, irqfd_work_ns=work.value, guest_handler_ns=ghandler.value,
                           vcpu_mode="halted" if halted.value else "running")
        box.report = rep
        r = rep.result
        ledger.value = f"<pre>{html.escape(r.summary())}</pre>"
        proc.value = f"<b>/proc/interrupts after the storm</b><pre>{html.escape(rep.proc_text)}</pre>"
        plot.value = rep.png()

    run.on_click(go)
    go()
    return box
