"""ipywidgets apps: step one interrupt hop by hop, register and route interrupts, drive a storm.

Not a kernel file: each widget is a thin view over a plain function (``journey_steps``, ``board_apply``,
``storm_report``) that returns the same content, so notebooks and tests can use them headless. Every button
and field handler catches what goes wrong and shows it in the widget's message line, once, leaving the host
usable. Simplification: the stepper replays the interrupt on a copy of the host, so stepping never changes yours.
"""
from __future__ import annotations

import copy
import html
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from . import scenarios as _scenarios
from . import viz
from ._optional import require
from .errors import KernelError
from .trace import Change, Hop, Journey, format_value

__all__ = ["Step", "journey_steps", "interrupt_sources", "default_source", "journey_stepper", "BoardResult",
           "board_apply", "BOARD_ACTIONS", "registration_board", "StormReport", "storm_report", "storm_explorer",
           "EXPLORER_SCENARIOS", "SCENARIO_NOTES", "explorer_controls", "svg_html", "tail_text"]

#: what fits beside or under a widget's controls in one JupyterLab screen at 1400x1000 (CSS px): the notebook
#: shows about 880 px of height and 964 px of output width
STEPPER_DIAGRAM_PX, STEPPER_DIAGRAM_H = 640, 760
BOARD_DIAGRAM_H = 680
MIN_SCALE = 0.77  # viz's 11 pt text stays >= 11 px (11.3) down to this scale, with a margin for rounding


def _error_text(e: BaseException) -> str:
    """One line for a message area: the kernel's errno and detail, or what to fix."""
    if isinstance(e, KernelError):
        return f"-{e.errname}: {e.detail}"
    if isinstance(e, (ValueError, TypeError)):
        return f"bad input: {e}"
    return f"{type(e).__name__}: {e}"


def _guard(show: Callable[[str], None]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Wrap a widget callback: anything it raises is shown with ``show`` (once) instead of escaping to the
    Log Console, so one bad value never leaves the widget (or the host) broken."""
    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(*a: Any, **k: Any) -> Any:
            try:
                return fn(*a, **k)
            except Exception as e:  # a widget callback has nobody above it to catch: show it here
                show(_error_text(e))
                return None
        run.__name__ = getattr(fn, "__name__", "callback")
        return run
    return wrap


def svg_html(d: viz.Diagram, max_width_px: int | None = None, max_height_px: int | None = None) -> str:
    """The diagram as inline SVG at its natural size (1 pt = 4/3 px), shrunk to fit ``max_width_px`` x
    ``max_height_px`` (and its box) but never below MIN_SCALE, so its 11 pt text stays >= 11 px (a diagram
    too big for that scrolls in its box instead); never stretched. The text form when ``dot`` is missing."""
    b = d._repr_mimebundle_()
    if "image/svg+xml" not in b:
        return b["text/html"]
    svg = b["image/svg+xml"]
    svg = svg[svg.find("<svg"):]
    m = re.match(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"', svg)
    if not m:
        return f"<div>{svg}</div>"
    w, h = float(m.group(1)) * 4 / 3, float(m.group(2)) * 4 / 3
    scale = min(1.0, (max_width_px or w) / w, (max_height_px or h) / h)
    scale = max(scale, MIN_SCALE)
    svg = svg.replace(m.group(0), f'<svg width="{w * scale:.0f}" height="{h * scale:.0f}" '
                      f'style="max-width:100%;height:auto;min-width:{w * MIN_SCALE:.0f}px;display:block"', 1)
    return f"<div style='overflow:auto'>{svg}</div>"


# ------------------------------------------------------------------------------------------- the stepper
NO_CHANGE = "no state changed here: this hop looks something up or passes the interrupt on"


@dataclass
class Step:
    """One hop of a journey, with the host copy it ran on (to draw it as it was after this hop)."""

    index: int
    hop: Hop
    journey: Journey
    host: Any = field(repr=False, default=None)
    _diagram: viz.Diagram | None = field(default=None, repr=False)

    @property
    def changes(self) -> list[Change]:
        """What this hop changed in kernel state (the counts the model keeps for the diagrams left out)."""
        return [c for c in self.hop.changes if not c.target.statistic]

    @property
    def counters(self) -> list[Change]:
        return [c for c in self.hop.changes if c.target.statistic]

    @property
    def diagram(self) -> viz.Diagram:
        """The journey lit up to this hop, with every number as it was right after it."""
        if self._diagram is None:
            self._diagram = viz.journey_diagram(self.host, self.journey, upto=self.index, focus=True)
        return self._diagram

    @property
    def url(self) -> str:
        return self.hop.url

    def text(self) -> str:
        h = self.hop
        lines = [f"hop {self.index + 1} of {len(self.journey.hops)} · {h.t_ns:,} ns · {h.actor}: {h.function}"
                 + ("" if h.hardware else f" ({h.file})"), f"  {h.detail}"]
        lines += [f"  changes {c}" for c in self.changes] or [f"  changes {NO_CHANGE}"]
        return "\n".join(lines)

    def html(self) -> str:
        h = self.hop
        fn = (f"<i>{html.escape(h.function)}</i> (hardware)" if h.hardware else
              f"<a href='{h.url}' target='_blank'><code>{html.escape(h.function)}()</code></a><br>"
              f"<code>{html.escape(h.file)}</code>")
        return (f"<b>hop {self.index + 1} of {len(self.journey.hops)}</b> · {h.t_ns:,} ns · <b>{h.actor}</b><br>"
                f"{fn}<br>{html.escape(h.detail)}")

    def state_html(self) -> str:
        rows = [f"<code>{html.escape(str(c.target))}</code>: {html.escape(format_value(c.before))} → "
                f"<b>{html.escape(format_value(c.after))}</b>" for c in self.changes]
        out = "<b>what this hop changed</b><br>" + ("<br>".join(rows) if rows else f"<i>{NO_CHANGE}</i>")
        if self.counters:
            out += ("<br><span style='color:#666'>counts: " + "; ".join(
                f"{html.escape(str(c.target))} {html.escape(format_value(c.before))} → "
                f"{html.escape(format_value(c.after))}" for c in self.counters) + "</span>")
        return out


def interrupt_sources(host: Any) -> list[tuple[str, tuple]]:
    """(label, source) for everything the host can raise: MSI/MSI-X vectors, INTx pins, glitches — the
    passed-through (vfio-pci) devices first, since the course follows them."""
    vfio, other = [], []
    for bdf, dev in host.devices.items():
        is_vfio = type(dev.driver).__name__ == "VfioPciDevice"
        out = vfio if is_vfio else other
        drv = "vfio-pci" if is_vfio else getattr(dev.driver, "name", "no driver")
        for v in dev.vectors:
            out.append((f"{bdf} {dev.name} ({drv}) MSI{'-X' if dev.msix_enabled else ''} vector {v.index}",
                        ("msi", bdf, v.index)))
        if dev.intx_pin and dev.gsi is not None and dev.driver is not None and not dev.vectors:
            out.append((f"{bdf} {dev.name} ({drv}) INTx", ("intx", bdf)))
    glitches = [(f"glitch on irq {irq} (no device asserted it)", ("spurious", irq))
                for irq, d in sorted(host.genirq.descs.items()) if d.level and d.actions]
    return vfio + other + glitches


def default_source(host: Any) -> tuple:
    """The interrupt a stepper opens on: the device the scenario passed through, else the first vfio one."""
    srcs = interrupt_sources(host)
    if not srcs:
        raise ValueError("this host has no interrupt source to step through")
    guest = getattr(getattr(host, "scenario", None), "guest_bdf", None)
    return next((s for _, s in srcs if guest is not None and s[1] == guest), srcs[0][1])


def _raise(host: Any, source: tuple) -> Any:
    kind = source[0] if isinstance(source, tuple) and source else None
    if kind == "msi" and len(source) == 3:
        return host.raise_msi(source[1], source[2])
    if kind == "intx" and len(source) == 2:
        return host.raise_intx(source[1])
    if kind == "spurious" and len(source) == 2:
        return host.raise_spurious(source[1])
    raise ValueError(f"unknown source {source!r}: use ('msi', bdf, index), ('intx', bdf) or ('spurious', irq)")


def journey_steps(host: Any, source: tuple | None = None) -> list[Step]:
    """Raise ``source`` (default: ``default_source(host)``) on a copy of ``host``, follow it to its end, and
    return one Step per hop; each Step draws the journey as it was right after its hop."""
    source = default_source(host) if source is None else source
    h = copy.deepcopy(host)
    h.trace = True
    j = _raise(h, source)
    h.run(until=h.now + 10_000_000)  # 10 ms of model time: every window and round trip here ends before
    return [Step(i, hop, j, h) for i, hop in enumerate(j.hops)]


def journey_stepper(host: Any = None, scenario: str = "switchboard", source: tuple | None = None) -> Any:
    """Choose an interrupt (it opens on the passed-through device's), then step its journey: back, next, play;
    the diagram lights each hop and shows the state as it was then; the panel says what the hop changed."""
    w = require("ipywidgets", extra="course", what="irqlab.widgets.journey_stepper")

    host = host if host is not None else _scenarios.SCENARIOS[scenario]()
    srcs = interrupt_sources(host)
    first = default_source(host) if source is None else source
    src = w.Dropdown(options=srcs, value=first, description="interrupt", style={"description_width": "initial"},
                     layout=w.Layout(width="100%", max_width="520px"))
    back, nxt = (w.Button(description=d, layout=w.Layout(width="86px")) for d in ("◀ back", "next ▶"))
    play = w.Play(interval=900, min=0, max=1, step=1, description="play")
    step = w.IntSlider(min=0, max=1, description="hop", continuous_update=True, style={"description_width": "initial"},
                       layout=w.Layout(width="220px"))
    w.jslink((play, "value"), (step, "value"))
    hop_html, state_html = w.HTML(), w.HTML()
    diagram = w.HTML(layout=w.Layout(flex="1 1 auto", max_width=f"{STEPPER_DIAGRAM_PX}px", overflow="auto"))
    side = w.VBox([hop_html, state_html], layout=w.Layout(flex="0 1 320px", min_width="240px"))
    box = w.VBox([w.HBox([src, back, nxt, play, step], layout=w.Layout(flex_flow="row wrap", align_items="center")),
                  w.HBox([diagram, side], layout=w.Layout(align_items="flex-start"))])
    box.source, box.next_button, box.back_button, box.play, box.step = src, nxt, back, play, step
    box.hop_html, box.state_html, box.diagram = hop_html, state_html, diagram
    box.steps = []

    def say(text: str) -> None:
        hop_html.value = f"<span style='color:#c00'>{html.escape(text)}</span>"

    @_guard(say)
    def show(*_: Any) -> None:
        if not box.steps:
            return
        s = box.steps[max(0, min(step.value, len(box.steps) - 1))]
        hop_html.value = s.html()
        state_html.value = s.state_html()
        diagram.value = svg_html(s.diagram, STEPPER_DIAGRAM_PX, STEPPER_DIAGRAM_H)

    @_guard(say)
    def load(*_: Any) -> None:
        box.steps = []
        box.steps = journey_steps(host, src.value)
        n = len(box.steps)
        step.value = 0
        step.max = play.max = max(n - 1, 0)
        show()

    nxt.on_click(_guard(say)(lambda b: setattr(step, "value", min(step.value + 1, step.max))))
    back.on_click(_guard(say)(lambda b: setattr(step, "value", max(step.value - 1, 0))))
    step.observe(show, "value")
    src.observe(load, "value")
    load()
    return box


# ------------------------------------------------------------------------------------- the registration board
BOARD_ACTIONS = ("request_irq", "free_irq", "vfio_pci_bind", "set_irqs", "kvm_irqfd", "set_route", "raise_msi",
                 "raise_intx")
IOAPIC_PINS = 24  # the IO-APIC's GSIs: the board gives such a line a descriptor on first use


@dataclass
class BoardResult:
    ok: bool
    message: str          # the call and what it returned (the errno when the kernel refused)
    dmesg_lines: list     # what the kernel logged meanwhile (each line once: not repeated in ``message``)
    proc_interrupts: str


def _toy_handler(irq: int, dev_id: Any) -> int:
    from .uapi import IRQ_HANDLED

    return IRQ_HANDLED


def _int(value: Any, what: str) -> int:
    """An int from a field: 29, "29", "0x1d" (hex as the student typed it)."""
    if isinstance(value, bool):
        raise TypeError(f"{what} must be a number, not {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip(), 0)
        except ValueError:
            raise ValueError(f"{what} must be a number like 81 or 0x51, not {value!r}") from None
    raise TypeError(f"{what} must be a number, not {type(value).__name__}")


def _vfio(host: Any, bdf: str) -> Any:
    dev = host.pci_dev(bdf)
    drv = dev.driver
    if type(drv).__name__ != "VfioPciDevice":
        bound = f"bound to {drv.name}" if drv is not None else "not bound to any driver"
        raise ValueError(f"{bdf} is {bound}, not vfio-pci, so it has no VFIO device fd: run vfio_pci_bind first")
    return drv


def _vm(host: Any, kw: dict) -> Any:
    n = _int(kw.get("vm", 1), "vm")
    if not host.vms:
        raise ValueError("this host has no VM yet: create one with host.create_vm()")
    if not 1 <= n <= len(host.vms):
        raise ValueError(f"vm is 1..{len(host.vms)} on this host, not {n}")
    return host.vms[n - 1]


def board_apply(host: Any, action: str, **kw: Any) -> BoardResult:
    """Do one registration step on ``host`` as the board does; the kernel's refusals come back as the kernel
    reports them (errno, and its log line once), bad input as what to fix. Never raises for a kernel error or
    a bad field value; the host stays usable whatever was asked."""
    from .eventfd import Eventfd
    from .kvm import msi as _msi
    from .kvm.irqchip import msi_route
    from .uapi import (IRQF_SHARED, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_DATA_EVENTFD, VFIO_PCI_MSI_IRQ_INDEX,
                       VFIO_PCI_MSIX_IRQ_INDEX)

    if action not in BOARD_ACTIONS:
        raise ValueError(f"action is one of {BOARD_ACTIONS}, not {action!r}")
    log0 = len(host.log)
    call = action
    try:
        if action == "request_irq":
            irq = _int(kw.get("irq"), "irq")
            name = str(kw.get("name") or "toy")
            flags = IRQF_SHARED if kw.get("shared", True) else 0
            call = f"request_irq({irq}, handler, {'IRQF_SHARED' if flags else '0'}, {name!r}, {name!r})"
            if 0 <= irq < IOAPIC_PINS and irq not in host.genirq.descs:
                host.alloc_irq(irq, level=irq >= 16)  # the GSI is mapped on first use (acpi_register_gsi)
            host.request_irq(irq, _toy_handler, flags, name, name)  # no descriptor: -EINVAL, as the kernel
            msg = f"{call} = 0"
        elif action == "free_irq":
            irq = _int(kw.get("irq"), "irq")
            name = str(kw.get("name") or "toy")
            call = f"free_irq({irq}, {name!r})"
            got = host.free_irq(irq, name)
            msg = f"{call} returned {got!r}"
        elif action == "vfio_pci_bind":
            bdf = kw.get("bdf")
            call = f"bind {bdf} to vfio-pci"
            host.vfio_pci_bind(bdf)
            msg = f"{bdf} bound to vfio-pci"
        elif action == "set_irqs":
            bdf = kw.get("bdf")
            vdev = _vfio(host, bdf)
            n = _int(kw.get("count", 1), "count")
            if not 1 <= n <= 2048:
                raise ValueError(f"count is how many vectors get an eventfd: 1..2048, not {n}")
            msix = bool(vdev.dev.msix_cap)
            index = VFIO_PCI_MSIX_IRQ_INDEX if msix else VFIO_PCI_MSI_IRQ_INDEX
            kind = "MSI-X" if msix else "MSI"
            call = f"VFIO_DEVICE_SET_IRQS({bdf}, {kind}, start 0, count {n}, eventfds)"
            efds = [Eventfd(name=f"{bdf}-{kind.lower().replace('-', '')}{i}") for i in range(n)]
            r = vdev.set_irqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, index, 0, n, efds)
            msg = f"{call} = {r}"
        elif action == "kvm_irqfd":
            bdf = kw.get("bdf")
            vdev = _vfio(host, bdf)
            index = _int(kw.get("index", 0), "vector index")
            gsi = _int(kw.get("gsi"), "gsi")
            vm = _vm(host, kw)
            e = vdev.msi_triggers.get(index)  # whoever made it: the board, a notebook cell, a scenario
            if e is None:
                have = sorted(vdev.msi_triggers)
                raise ValueError(f"{bdf} has no eventfd on vector {index} (vectors with one: {have or 'none'}): "
                                 "give it one with set_irqs first")
            call = f"KVM_IRQFD(vm{vm.id}, eventfd {e.name}, gsi {gsi})"
            vm.kvm_irqfd(e, gsi)
            msg = f"{call} = 0"
        elif action == "set_route":
            vm = _vm(host, kw)
            gsi = _int(kw.get("gsi"), "gsi")
            vraw, draw = kw.get("vector"), kw.get("dest", 0)
            vector, dest = _int(vraw, "vector"), _int(draw, "dest APIC id")
            m = _msi.encode(dest_id=dest, vector=vector)
            keep = [r for r in vm.routing.all() if r.gsi != gsi]
            call = f"KVM_SET_GSI_ROUTING(vm{vm.id}): gsi {gsi} → MSI dest {draw} vector {vraw}"
            vm.kvm_set_gsi_routing(keep + [msi_route(gsi, m.address_lo, m.data)])
            msg = f"{call} = 0"
        elif action == "raise_msi":
            bdf = kw.get("bdf")
            index = _int(kw.get("index", 0), "vector index")
            call = f"{bdf} sends MSI vector {index}"
            j = host.raise_msi(bdf, index)
            host.run(until=host.now + 1_000_000)
            msg = f"{call}: {j.outcome}"
        else:
            bdf = kw.get("bdf")
            call = f"{bdf} asserts INTx"
            j = host.raise_intx(bdf)
            host.run(until=host.now + 1_000_000)
            msg = f"{call}: {j.outcome}"
        ok = True
    except KernelError as e:
        ok = False
        logged = any(e.detail in t or t in e.detail for _, _, t in host.log[log0:])
        msg = f"{call} = -{e.errname}" + ("" if logged else f" ({e.detail})")
    except (ValueError, TypeError, KeyError, IndexError) as e:
        ok, msg = False, f"bad input: {e}"
    lines = [t for _, _, t in host.log[log0:]]
    try:
        proc = host.proc_interrupts()
    except Exception as e:  # never let the table's rendering take the board down with it
        proc, ok, msg = "", False, f"{msg}; /proc/interrupts: {_error_text(e)}"
    return BoardResult(ok, msg, lines, proc)


def registration_board(host: Any = None) -> Any:
    """Request/free IRQs, bind to vfio-pci, SET_IRQS, assign irqfds, set routes, raise; watch the kernel's
    tables. Numbers may be typed in decimal or hex (0x51); what you typed is what the message echoes."""
    w = require("ipywidgets", extra="course", what="irqlab.widgets.registration_board")

    host = host if host is not None else _scenarios.switchboard()
    lw = {"description_width": "initial"}
    action = w.Dropdown(options=BOARD_ACTIONS, value="request_irq", description="call", style=lw,
                        layout=w.Layout(width="230px"))
    irq = w.Text(value="16", description="irq", style=lw, layout=w.Layout(width="120px"))
    name = w.Text(value="toy", description="name", style=lw, layout=w.Layout(width="200px"))
    shared = w.Checkbox(value=True, description="IRQF_SHARED", indent=False, layout=w.Layout(width="140px"))
    bdf = w.Dropdown(options=list(host.devices), description="device", style=lw, layout=w.Layout(width="250px"))
    count = w.Text(value="1", description="count / vector index", style=lw, layout=w.Layout(width="200px"))
    vm = w.Text(value="1", description="vm", style=lw, layout=w.Layout(width="90px"))
    gsi = w.Text(value="25", description="gsi", style=lw, layout=w.Layout(width="110px"))
    vector = w.Text(value="0x51", description="vector", style=lw, layout=w.Layout(width="130px"))
    dest = w.Text(value="0", description="dest APIC id", style=lw, layout=w.Layout(width="150px"))
    apply = w.Button(description="apply", button_style="primary")
    message, proc, diagram, dmesg = w.HTML(), w.HTML(), w.HTML(), w.HTML()
    tabs = w.Tab(children=[diagram, proc, dmesg])
    for i, t in enumerate(("diagram", "/proc/interrupts", "kernel log")):
        tabs.set_title(i, t)
    row = lambda *c: w.HBox(list(c), layout=w.Layout(flex_flow="row wrap", align_items="center"))  # noqa: E731
    box = w.VBox([row(action, bdf, apply), row(irq, name, shared, count), row(vm, gsi, vector, dest), message, tabs])
    box.action, box.apply_button, box.message, box.proc, box.diagram, box.dmesg = (action, apply, message, proc,
                                                                                   diagram, dmesg)
    box.tabs = tabs
    box.fields = dict(irq=irq, name=name, shared=shared, bdf=bdf, count=count, vm=vm, gsi=gsi, vector=vector, dest=dest)
    box.host = host
    box.result = None

    def say(text: str) -> None:
        message.value = f"<span style='color:#c00'>{html.escape(text)}</span>"

    @_guard(say)
    def refresh(r: BoardResult | None = None) -> None:
        if r is not None:
            color = "green" if r.ok else "#c00"
            dm = "".join(f"<br><code>dmesg: {html.escape(x)}</code>" for x in r.dmesg_lines)
            message.value = f"<span style='color:{color}'>{html.escape(r.message)}</span>{dm}"
        devs = list(host.devices)
        if list(bdf.options) != devs:  # a notebook cell may have added a device meanwhile
            bdf.options = devs
        proc.value = f"<pre>{html.escape(host.proc_interrupts())}</pre>"
        dmesg.value = f"<pre>{html.escape(host.dmesg() or '(empty)')}</pre>"
        diagram.value = svg_html(viz.host_diagram(host, title=""), None, BOARD_DIAGRAM_H)  # the tab names it

    @_guard(say)
    def on_apply(_: Any) -> None:
        kw = dict(irq=irq.value, name=name.value, shared=shared.value, bdf=bdf.value, count=count.value,
                  index=count.value, gsi=gsi.value, vector=vector.value, dest=dest.value, vm=vm.value)
        box.result = board_apply(host, action.value, **kw)
        refresh(box.result)

    apply.on_click(on_apply)
    refresh()
    return box


# ------------------------------------------------------------------------------------------ the storm explorer
#: scenario -> (label, the controls that act on it). A control is offered only where it changes the result.
EXPLORER_SCENARIOS = {
    "nic_and_intx": ("NIC (MSI-X) + INTx card on one vCPU",
                     ("rate_hz", "intx_rate_hz", "burstiness", "duration_ms", "queues", "halted", "vmexit_ns",
                      "vcpu_wakeup_ns", "irqfd_work_ns", "guest_handler_ns")),
    "msix_nic": ("MSI-X NIC (irqfd fast path)",
                 ("rate_hz", "burstiness", "duration_ms", "queues", "halted", "vmexit_ns", "vcpu_wakeup_ns")),
    "posted_nic": ("MSI-X NIC with VT-d posting",
                   ("rate_hz", "burstiness", "duration_ms", "queues", "halted", "vcpu_wakeup_ns")),
    "shared_intx": ("INTx card on a shared line",
                    ("rate_hz", "burstiness", "duration_ms", "halted", "vmexit_ns", "vcpu_wakeup_ns",
                     "irqfd_work_ns", "guest_handler_ns")),
}
#: the INTx card's vector in "nic_and_intx": the guest put its pin in a higher priority class (6) than the NIC's
#: MSI-X vectors (0x41.., class 4), so while its handler runs (ISR 0x62, PPR 0x60) they wait in the IRR
CARD_VECTOR = 0x62
#: one line under the scenario picker: what to look for
SCENARIO_NOTES = {
    "nic_and_intx": "The card's INTx vector (0x62) is a priority class above the NIC's (0x41, 0x42): while the "
                    "guest's handler for it runs, until its EOI, the NIC's interrupts wait in the IRR (PPR). "
                    "Move the guest handler and watch the tail.",
    "msix_nic": "Each queue's vector goes to one vCPU through the irqfd fast path; a kick opens an injection window "
                "and vectors that arrive in it are taken at the same entry.",
    "posted_nic": "The IOMMU posts each vector into a vCPU's PIR: no host interrupt, no exit while it runs; a halted "
                  "vCPU is woken.",
    "shared_intx": "One INTx in flight at a time: vfio masks the card (DisINTx) until the guest's EOI resamples "
                   "and unmasks it; assertions meanwhile merge (masked).",
}
#: timings that act only with the vCPU running (the kick and VM exit) or only halted (the wake-up)
_RUNNING_ONLY, _HALTED_ONLY = {"vmexit_ns"}, {"vcpu_wakeup_ns"}


def explorer_controls(scenario: str, halted: bool = False) -> tuple[str, ...]:
    """The controls the explorer offers for ``scenario``: only those that act on it."""
    if scenario not in EXPLORER_SCENARIOS:
        raise ValueError(f"scenario is one of {list(EXPLORER_SCENARIOS)}, not {scenario!r}")
    skip = _RUNNING_ONLY if halted else _HALTED_ONLY
    return tuple(c for c in EXPLORER_SCENARIOS[scenario][1] if c not in skip)


@dataclass
class StormReport:
    result: Any
    ledger_text: str
    proc_text: str
    figure: Any
    percentiles: dict
    note: str          # what the numbers leave out, said plainly

    def png(self, dpi: int = 90) -> bytes:
        """The figure as PNG bytes (what the explorer shows); a report made with ``plot=False`` has none."""
        import io

        if self.figure is None:
            raise ValueError("this report was made with plot=False: it has no figure; call storm_report(...) "
                             "with plot=True (the default) to get one")

        buf = io.BytesIO()
        self.figure.savefig(buf, format="png", dpi=dpi)
        return buf.getvalue()


MODEL_NOTE = ("What the model leaves out: every step has a fixed cost — no jitter, no cache misses, no other work "
              "on the host CPUs, no time queued behind another interrupt's host handler. So a delivered interrupt's "
              "latency varies only where the model makes it wait: in the IRR while a higher-priority vector is in "
              "service in the guest (its handler blocks lower classes until its EOI), or inside a vCPU's injection "
              "window that an earlier interrupt opened (it waits less than the one that opened it). Real hosts "
              "have longer tails.")


def tail_text(r: Any, pct: dict) -> str:
    """The latency tail in words: the percentiles, the range, and why they are what they are here."""
    lat = r.latency_ns[r.latency_ns >= 0]
    if not lat.size:
        return "no interrupt reached the guest"
    out = " · ".join(f"p{q:g} {v:,} ns" for q, v in pct.items() if q != 100)
    out += f" · min {int(lat.min()):,} ns · max {int(lat.max()):,} ns"
    top = float((lat == lat.max()).mean())
    if lat.min() == lat.max():
        out += (". Every delivered interrupt took the same time: nothing made one wait behind another here "
                "(the others merged while it was in flight)")
    elif pct[50] == int(lat.max()):
        out += (f". {top:.0%} of them took the longest path ({int(lat.max()):,} ns: they opened a vCPU's injection "
                f"window); the others arrived while a window was open and waited less")
    return out


def _nic_and_intx(timing: Any, queues: int, vcpu_mode: str) -> Any:
    """scenarios.shared_intx with the card's pin on CARD_VECTOR and an MSI-X NIC passed through to the same
    single vCPU (notebook 8's storm explorer, with the guest's vectors ordered so that one can block the other)."""
    host = _scenarios.shared_intx(timing=timing, trace=False)
    vm = host.scenario.vm
    vm.ioapic.write_redirtbl(16, vector=CARD_VECTOR, dest_id=0, trigger_level=True)
    host.add_pci_device("0000:01:00.0", name="nic", msix=queues)
    _scenarios.passthrough_msix(host, vm, "0000:01:00.0", queues, first_gsi=30)
    for vc in vm.vcpus:
        vc.mode = vcpu_mode
    return host


def storm_report(scenario: str = "nic_and_intx", *, rate_hz: float = 100_000, intx_rate_hz: float = 20_000,
                 duration_ns: int = 20_000_000, burstiness: float = 0.0, posted: bool = False, queues: int = 2,
                 vcpu_mode: str = "running", seed: int = 0, plot: bool = True, **timing: int) -> StormReport:
    """Build ``scenario`` with these timings, run a storm on it, and report it.

    ``scenario``: "nic_and_intx" (an MSI-X NIC's ``queues`` vectors at ``rate_hz`` each and the INTx card at
    ``intx_rate_hz``, all on one vCPU, the card's vector in a higher priority class), "msix_nic" (``queues``
    MSI-X vectors at ``rate_hz`` each), "posted_nic" (the same with VT-d posting) or "shared_intx" (the
    passed-through INTx card at ``rate_hz``). ``burstiness`` in [0, 1): 0 is a steady Poisson storm; above 0
    the same mean rate arrives in bursts that fill ``1 - burstiness`` of the time. ``timing``: any
    ``irqlab.Timing`` field in ns (``vmexit_ns``, ``irqfd_work_ns``, ``guest_handler_ns``...);
    ``explorer_controls`` tells which act on the scenario. The vector engine runs it, or, where it raises
    ``irqlab.storm.Unsupported`` (an INTx vector and other interrupts on one vCPU), the one-by-one replay.
    """
    from dataclasses import fields

    import numpy as np

    from . import storm as _storm
    from .timing import Timing

    if scenario not in EXPLORER_SCENARIOS:
        raise ValueError(f"scenario is one of {list(EXPLORER_SCENARIOS)}, not {scenario!r}")
    if not 0 <= burstiness < 1:
        raise ValueError("burstiness is in [0, 1)")
    if not rate_hz > 0 or not intx_rate_hz > 0:
        raise ValueError("rate_hz and intx_rate_hz must be > 0")
    if isinstance(queues, bool) or not isinstance(queues, int) or not 1 <= queues <= 8:
        raise ValueError("queues is 1..8")
    if isinstance(duration_ns, bool) or not isinstance(duration_ns, (int, np.integer)) or duration_ns <= 0:
        raise ValueError("duration_ns must be a positive int")
    if vcpu_mode not in ("running", "halted"):
        raise ValueError("vcpu_mode is 'running' or 'halted'")
    known = {f.name for f in fields(Timing)}
    bad = set(timing) - known
    if bad:
        raise ValueError(f"unknown timing {sorted(bad)}: use fields of irqlab.Timing ({sorted(known)})")
    t = Timing(**{k: int(v) for k, v in timing.items()})
    rates: Any = rate_hz
    if scenario == "shared_intx":
        host = _scenarios.shared_intx(timing=t, trace=False)
        for vc in host.scenario.vm.vcpus:
            vc.mode = vcpu_mode
        sources = [_storm.Source("intx", bdf=host.scenario.guest_bdf)]
    elif scenario == "nic_and_intx":
        host = _nic_and_intx(t, int(queues), vcpu_mode)
        sources = [_storm.Source("intx", bdf="0000:04:00.0")] + [_storm.Source("msi", bdf="0000:01:00.0", index=i)
                                                                 for i in range(int(queues))]
        rates = [intx_rate_hz] + [rate_hz] * int(queues)
    else:
        host = _scenarios.msix_nic(int(queues), timing=t, trace=False, posted=posted or scenario == "posted_nic",
                                   vcpu_mode=vcpu_mode)
        sources = None
    kw = dict(sources=sources) if sources else {}
    if burstiness > 0:
        period = 1_000_000
        on = max(1, int(period * (1 - burstiness)))
        up = [x / (1 - burstiness) for x in rates] if isinstance(rates, list) else rates / (1 - burstiness)
        s = _storm.bursts(host, rate_hz=up, on_ns=on, off_ns=period - on, duration_ns=int(duration_ns), seed=seed, **kw)
    else:
        s = _storm.poisson(host, rate_hz=rates, duration_ns=int(duration_ns), seed=seed, **kw)
    try:  # never a tqdm bar (progress=False): it would make widgets from a button's callback
        r = _storm.run(host, s, "vector", progress=False)
    except _storm.Unsupported:
        r = _storm.run(host, s, "reference", progress=False)
    pct = r.latency_percentiles((50, 90, 99, 99.9, 100))
    fig = _plot(r, int(duration_ns), pct) if plot else None
    return StormReport(r, r.ledger_table(), r.proc_interrupts(), fig, pct, MODEL_NOTE)


def _plot(r: Any, duration_ns: int, pct: dict) -> Any:
    matplotlib = require("matplotlib", extra="course", what="irqlab.widgets.storm_report(plot=True)")
    Figure = require("matplotlib.figure", extra="course", what="irqlab.widgets.storm_report(plot=True)").Figure

    with matplotlib.rc_context({"font.size": 11}):
        fig = Figure(figsize=(10.5, 3.6), layout="constrained")
        ax = fig.subplots(1, 3, width_ratios=[1.1, 1.1, 1])
        bins, rates = r.rate(max(1, int(duration_ns) // 100))
        for label, c in sorted(rates.items()):
            ax[0].plot(bins / 1e6, c, label=label)
        ax[0].set(xlabel="time (ms)", ylabel="interrupts per bin", title="rate, by outcome")
        if rates:
            ax[0].legend(fontsize=10)
        lat = r.latency_ns[r.latency_ns >= 0]
        if lat.size:
            ax[1].hist(lat / 1000, bins=60, color="tab:blue")
            ax[1].set_yscale("log")
            for q, c in ((50, "tab:green"), (99, "tab:orange"), (99.9, "tab:red")):
                ax[1].axvline(pct[q] / 1000, color=c, ls="--", label=f"p{q:g} {pct[q] / 1000:,.2f} µs")
            ax[1].legend(fontsize=10)
        ax[1].set(xlabel="latency to the guest (µs)", ylabel="interrupts (log)", title="latency to the guest")
        led = r.ledger
        ax[2].barh(list(led), list(led.values()))
        ax[2].set(title="where they ended", xlabel="interrupts")
    return fig


_CONTROL_LABELS = {"rate_hz": "rate per queue (Hz)", "intx_rate_hz": "INTx card rate (Hz)", "burstiness": "burstiness",
                   "duration_ms": "duration (ms)",
                   "queues": "queues", "halted": "vCPUs halted (idle guest)", "vmexit_ns": "VM exit + entry (ns)",
                   "vcpu_wakeup_ns": "vCPU wake-up (ns)", "irqfd_work_ns": "irqfd work delay (ns)",
                   "guest_handler_ns": "guest handler before EOI (ns)"}


def storm_explorer(scenario: str = "nic_and_intx") -> Any:
    """Pick a scenario; only the controls that act on it are shown; press Run to rerun the vector engine
    (never while dragging). Shows the ledger, the latency tail and what the model leaves out."""
    w = require("ipywidgets", extra="course", what="irqlab.widgets.storm_explorer")

    from .timing import Timing

    if scenario not in EXPLORER_SCENARIOS:
        raise ValueError(f"scenario is one of {list(EXPLORER_SCENARIOS)}, not {scenario!r}")
    T = Timing()
    st = {"description_width": "initial"}
    lay = lambda: w.Layout(width="330px", margin="2px 12px 2px 0")  # noqa: E731  (one each: display is per control)
    ctl: dict[str, Any] = {
        "rate_hz": w.FloatLogSlider(value=1e5, base=10, min=3, max=6.3, description=_CONTROL_LABELS["rate_hz"],
                                    continuous_update=False, style=st, layout=lay(), readout_format=".3s"),
        "intx_rate_hz": w.FloatLogSlider(value=2e4, base=10, min=3, max=6, description=_CONTROL_LABELS["intx_rate_hz"],
                                         continuous_update=False, style=st, layout=lay(), readout_format=".3s"),
        "burstiness": w.FloatSlider(value=0.0, min=0, max=0.95, step=0.05, description="burstiness",
                                    continuous_update=False, style=st, layout=lay()),
        "duration_ms": w.IntSlider(value=20, min=1, max=100, description="duration (ms)", continuous_update=False,
                                   style=st, layout=lay()),
        "queues": w.IntSlider(value=2, min=1, max=8, description="queues", continuous_update=False, style=st,
                              layout=lay()),
        "halted": w.Checkbox(value=False, description=_CONTROL_LABELS["halted"], indent=False, layout=lay()),
    }
    for k in ("vmexit_ns", "vcpu_wakeup_ns", "irqfd_work_ns", "guest_handler_ns"):
        ctl[k] = w.IntSlider(value=getattr(T, k), min=0, max=50_000, step=100, description=_CONTROL_LABELS[k],
                             continuous_update=False, style=st, layout=lay())
    pick = w.Dropdown(options=[(label, k) for k, (label, _) in EXPLORER_SCENARIOS.items()], value=scenario,
                      description="scenario", style=st, layout=w.Layout(width="420px"))
    run = w.Button(description="Run", button_style="primary")
    status, ledger, proc, note = w.HTML(), w.HTML(), w.HTML(), w.HTML()
    plot = w.Image(format="png", layout=w.Layout(max_width="100%", height="auto"))
    grid = w.Box(list(ctl.values()), layout=w.Layout(display="flex", flex_flow="row wrap"))
    box = w.VBox([w.HBox([pick, run, status], layout=w.Layout(align_items="center")), note, grid, ledger, plot, proc])
    box.scenario, box.controls, box.run_button, box.status = pick, ctl, run, status
    box.ledger, box.proc, box.plot = ledger, proc, plot
    box.rate, box.burstiness, box.duration = ctl["rate_hz"], ctl["burstiness"], ctl["duration_ms"]
    box.halted = ctl["halted"]
    box.irqfd_work, box.guest_handler = ctl["irqfd_work_ns"], ctl["guest_handler_ns"]
    ctl["guest_handler_ns"].value = 10_000  # long enough to see the NIC's vectors wait behind the card's
    box.report = None

    def say(text: str) -> None:
        status.value = f"<span style='color:#c00'>{html.escape(text)}</span>"

    @_guard(say)
    def arrange(*_: Any) -> None:
        offered = explorer_controls(pick.value, ctl["halted"].value)
        for k, c in ctl.items():
            c.layout.display = "" if k in offered else "none"
        ctl["rate_hz"].description = "rate (Hz)" if pick.value == "shared_intx" else _CONTROL_LABELS["rate_hz"]
        note.value = f"<i>{html.escape(SCENARIO_NOTES[pick.value])}</i>"

    @_guard(say)
    def go(_: Any = None) -> None:
        run.disabled = True
        status.value = "<i>running…</i>"
        try:
            offered = explorer_controls(pick.value, ctl["halted"].value)
            timing = {k: ctl[k].value for k in offered if k.endswith("_ns")}
            t0 = time.perf_counter()
            rep = storm_report(pick.value, rate_hz=ctl["rate_hz"].value, intx_rate_hz=ctl["intx_rate_hz"].value,
                               duration_ns=ctl["duration_ms"].value * 1_000_000,
                               burstiness=ctl["burstiness"].value, queues=ctl["queues"].value,
                               vcpu_mode="halted" if ctl["halted"].value else "running", **timing)
            box.report = rep
            r = rep.result
            summary = "\n".join(x for x in r.summary().splitlines() if not x.startswith("latency to the guest"))
            if r.engine == "reference":
                summary += ("\n(replayed one interrupt at a time: the vector engine refuses an INTx vector and other "
                            "interrupts on one vCPU, irqlab.storm.Unsupported)")
            ledger.value = (f"<pre>{html.escape(summary)}</pre><b>latency to the guest</b>: "
                            f"{html.escape(tail_text(r, rep.percentiles))}"
                            f"<br><span style='color:#555'>{html.escape(rep.note)}</span>")
            proc.value = f"<b>/proc/interrupts after the storm</b><pre>{html.escape(rep.proc_text)}</pre>"
            plot.value = rep.png()
            status.value = f"done in {time.perf_counter() - t0:.2f} s"
        finally:
            run.disabled = False

    pick.observe(arrange, "value")
    ctl["halted"].observe(arrange, "value")
    run.on_click(go)
    arrange()
    go()
    return box
