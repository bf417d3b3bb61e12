"""One record per hop of an interrupt: when, which kernel function in which file, who, and what changed.

Models what ``trace-cmd record -p function_graph`` would show for one interrupt (the kernel functions are
real and greppable in Linux 6.18). Simplification: one record per modelled function, not per real call,
and host-side hops of one interrupt share the instant it arrived (their cost is in ``Timing.host_irq_ns``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

__all__ = ["Hop", "Journey", "ELIXIR", "HARDWARE", "elixir_url"]

ELIXIR = "https://elixir.bootlin.com/linux/v6.18"
HARDWARE = "(hardware)"  # the ``file`` of a hop no kernel function performs

#: Actors, in the order of the path: who runs the hop.
ACTORS = ("device", "iommu", "cpu", "genirq", "driver", "vfio", "eventfd", "kvm", "lapic", "guest")


def elixir_url(file: str, function: str | None = None) -> str:
    """Link to the v6.18 source: the identifier search when a function is given, else the file."""
    if function:
        return f"{ELIXIR}/C/ident/{function}"
    return f"{ELIXIR}/source/{file}"


@dataclass(frozen=True)
class Hop:
    """One hop: ``t_ns`` model time, ``function`` and ``file`` of Linux 6.18, ``actor``, ``detail``.

    ``changes`` maps a piece of state to its (before, after) values, e.g. ``{"kstat[24] cpu1": (0, 1)}``.
    """

    t_ns: int
    function: str
    file: str
    actor: str
    detail: str = ""
    changes: tuple[tuple[str, Any, Any], ...] = ()

    @property
    def hardware(self) -> bool:
        """A step done by hardware (device, IO-APIC, IOMMU, CPU), not by a kernel function."""
        return self.file == HARDWARE

    @property
    def url(self) -> str:
        return "" if self.hardware else elixir_url(self.file, self.function)

    def __str__(self) -> str:
        ch = "; ".join(f"{k}: {a}→{b}" for k, a, b in self.changes)
        return (f"{self.t_ns:>12,} ns  {self.actor:<8} {self.function:<34} {self.file}"
                + (f"  — {self.detail}" if self.detail else "") + (f"  [{ch}]" if ch else ""))


@dataclass(eq=False)
class Journey:
    """The ordered hops of one interrupt, its outcome and its latency to the guest.

    A Journey may still grow after it is returned: work items and the vCPU run later in model time
    (``host.run()``); ``done`` tells whether its outcome is known. Hops may follow the outcome: a
    passed-through INTx is ``injected`` at its ack, then its way back (EOI, resample, unmask) is recorded;
    ``t_done`` is the time of the last hop so far, ``latency_ns`` stays the latency to the ack.
    """

    id: int
    source: str
    t_raise: int
    hops: list[Hop] = field(default_factory=list)
    outcome: str | None = None
    t_done: int | None = None
    latency_ns: int | None = None

    @property
    def done(self) -> bool:
        return self.outcome is not None

    def functions(self) -> list[str]:
        """The kernel functions of the path, in call order (hardware steps left out)."""
        return [h.function for h in self.hops if not h.hardware]

    def __iter__(self) -> Iterator[Hop]:
        return iter(self.hops)

    def __len__(self) -> int:
        return len(self.hops)

    def __getitem__(self, i: int) -> Hop:
        return self.hops[i]

    def text(self) -> str:
        head = f"interrupt #{self.id} from {self.source} at {self.t_raise:,} ns"
        tail = f"outcome: {self.outcome or 'in flight'}"
        if self.latency_ns is not None:
            tail += f", latency to guest {self.latency_ns:,} ns"
        return "\n".join([head, *(f"{i:>3}. {h}" for i, h in enumerate(self.hops, 1)), tail])

    __str__ = text

    def __repr__(self) -> str:
        return f"<Journey #{self.id} {self.source}: {len(self.hops)} hops, {self.outcome or 'in flight'}>"

    def _repr_html_(self) -> str:
        import html

        rows = "".join(
            f"<tr><td>{i}</td><td style='text-align:right'>{h.t_ns:,}</td><td>{html.escape(h.actor)}</td>"
            + (f"<td><i>{html.escape(h.function)}</i></td>" if h.hardware else
               f"<td><a href='{h.url}' target='_blank'><code>{html.escape(h.function)}</code></a></td>")
            + f"<td><code>{html.escape(h.file)}</code></td><td>{html.escape(h.detail)}</td></tr>"
            for i, h in enumerate(self.hops, 1))
        tail = html.escape(f"outcome: {self.outcome or 'in flight'}"
                           + (f", latency to guest {self.latency_ns:,} ns" if self.latency_ns is not None else ""))
        return (f"<b>{html.escape(self.source)}</b> at {self.t_raise:,} ns<table><tr><th>#</th><th>t (ns)</th>"
                f"<th>actor</th><th>function</th><th>file</th><th>detail</th></tr>{rows}</table><i>{tail}</i>")
