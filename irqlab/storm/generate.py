"""Storms: reproducible streams of interrupts over the sources a host knows.

A source is what the hardware can raise: a device's MSI/MSI-X vector, a device's INTx assertion, or a
glitch on a line that no device asserted. Not a kernel file: generators are the course's load.
Simplification: arrivals are Poisson within each phase (seeded numpy Generator), times in integer ns.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

__all__ = ["Source", "Storm", "LazyStorm", "sources", "poisson", "bursts", "on_off", "mix", "from_arrays"]


@dataclass(frozen=True)
class Source:
    """``kind`` "msi" (``bdf``, ``index``), "intx" (``bdf``) or "spurious" (``irq``)."""

    kind: str
    bdf: str | None = None
    index: int | None = None
    irq: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("msi", "intx", "spurious"):
            raise ValueError(f"source kind is 'msi', 'intx' or 'spurious', not {self.kind!r}")

    @property
    def label(self) -> str:
        if self.kind == "msi":
            return f"{self.bdf} msi[{self.index}]"
        if self.kind == "intx":
            return f"{self.bdf} intx"
        return f"glitch irq {self.irq}"

    def __str__(self) -> str:
        return self.label


def sources(host: Any) -> list[Source]:
    """Everything ``host`` can raise: enabled MSI/MSI-X vectors, INTx pins, glitches on lines with actions."""
    out: list[Source] = []
    for bdf, dev in host.devices.items():
        out += [Source("msi", bdf, v.index) for v in dev.vectors]
        if dev.intx_pin and dev.gsi is not None:
            out.append(Source("intx", bdf))
    for irq, desc in sorted(host.genirq.descs.items()):
        if desc.level and desc.actions:
            out.append(Source("spurious", irq=irq))
    return out


def _as_source(x: Any) -> Source:
    if isinstance(x, Source):
        return x
    if isinstance(x, tuple) and x:
        if x[0] == "msi" and len(x) == 3:
            return Source("msi", x[1], int(x[2]))
        if x[0] == "intx" and len(x) == 2:
            return Source("intx", x[1])
        if x[0] == "spurious" and len(x) == 2:
            return Source("spurious", irq=int(x[1]))
    raise TypeError(f"a source is an irqlab.storm.Source or ('msi', bdf, index) / ('intx', bdf) / "
                    f"('spurious', irq), not {x!r}")


class Storm:
    """Sorted int64 times (ns) and uint16 source ids into ``sources``."""

    def __init__(self, times: Any, source_ids: Any, sources: Sequence[Any], *, name: str = "storm"):
        times = np.asarray(times)
        ids = np.asarray(source_ids)
        if times.dtype.kind not in "iu":
            raise TypeError(f"storm times must be integer nanoseconds (int64), not {times.dtype}")
        if ids.dtype.kind not in "iu":
            raise TypeError(f"storm source ids must be integers, not {ids.dtype}")
        if times.ndim != 1 or ids.ndim != 1 or times.shape != ids.shape:
            raise ValueError(f"times and source ids must be 1-D arrays of the same length, got {times.shape} "
                             f"and {ids.shape}")
        srcs = tuple(_as_source(s) for s in sources)
        if not srcs and len(times):
            raise ValueError("a storm with events needs at least one source")
        if len(srcs) > 65535:
            raise ValueError("at most 65535 sources")
        if len(times):
            if times.min() < 0:
                raise ValueError(f"storm times must be >= 0 ns; event {int(np.argmin(times))} is at {times.min()}")
            bad = np.flatnonzero(np.diff(times) < 0)
            if bad.size:
                raise ValueError(f"storm times must be sorted; event {bad[0] + 1} ({times[bad[0] + 1]} ns) comes "
                                 f"before event {bad[0]} ({times[bad[0]]} ns): sort with np.argsort(kind='stable')")
            if ids.min() < 0 or ids.max() >= len(srcs):
                raise ValueError(f"source id {int(ids.max() if ids.max() >= len(srcs) else ids.min())} is not one "
                                 f"of the {len(srcs)} sources")
        self.times = times.astype(np.int64, copy=False)
        self.source_ids = ids.astype(np.uint16, copy=False)
        self.sources = srcs
        self.name = name

    def __len__(self) -> int:
        return int(self.times.shape[0])

    def __repr__(self) -> str:
        span = f"{self.times[0]:,}..{self.times[-1]:,} ns" if len(self) else "empty"
        return f"<Storm {self.name}: {len(self):,} events over {len(self.sources)} sources, {span}>"

    @property
    def t_end(self) -> int:
        return int(self.times[-1]) if len(self) else 0

    def chunks(self, chunk_events: int) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
        """(times, source_ids, offset) slices of at most ``chunk_events`` events."""
        for lo in range(0, len(self), chunk_events):
            yield self.times[lo:lo + chunk_events], self.source_ids[lo:lo + chunk_events], lo

    def counts(self) -> dict[str, int]:
        c = np.bincount(self.source_ids, minlength=len(self.sources))
        return {s.label: int(n) for s, n in zip(self.sources, c)}


def _pick_sources(host: Any, srcs: Any) -> list[Source]:
    """The sources of a generator: ``sources=``, or a list given first, or the host's device interrupts."""
    if isinstance(host, (list, tuple)):
        if srcs is not None:
            raise TypeError("give the sources once: as the first argument or as sources=")
        host, srcs = None, host
    if srcs is None:
        if host is None:
            raise ValueError("give a host or a list of sources")
        every = sources(host)
        srcs = [s for s in every if s.kind == "msi"] or [s for s in every if s.kind == "intx"]
        if not srcs:
            raise ValueError("this host has no device interrupt sources; pass sources=[...] (e.g. glitches)")
    return [_as_source(s) for s in srcs]


def _rates(rate_hz: Any, n: int) -> np.ndarray:
    r = np.broadcast_to(np.asarray(rate_hz, dtype=float), (n,)).copy()
    if (r < 0).any() or not np.isfinite(r).all():
        raise ValueError("rates must be finite and >= 0 interrupts per second")
    return r


def _arrivals(rng: np.random.Generator, k: int, lo: int, hi: int, rates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """k Poisson arrivals in [lo, hi) (sorted uniform times, from normalised exponential spacings: no sort),
    each from a source drawn with probability proportional to its rate."""
    if k <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.uint16)
    gaps = rng.standard_exponential(k + 1)
    pos = np.cumsum(gaps)
    t = (pos[:k] * ((hi - lo) / pos[k])).astype(np.int64)
    np.minimum(t, hi - lo - 1, out=t)
    t += lo
    n = len(rates)
    if n == 1:
        sid = np.zeros(k, np.uint16)
    elif (rates == rates[0]).all():
        sid = rng.integers(0, n, size=k, dtype=np.uint16)
    else:
        sid = rng.choice(n, size=k, p=rates / rates.sum()).astype(np.uint16)
    return t, sid


def on_off(host: Any = None, *, phases: Iterable[tuple[int, Any]], sources: Any = None, seed: int = 0,
           start_ns: int = 0, name: str = "on/off") -> Storm:
    """Consecutive phases of (duration_ns, rate_hz per source); Poisson arrivals within each phase."""
    srcs = _pick_sources(host, sources)
    rng = np.random.default_rng(seed)
    times, ids, t0 = [], [], int(start_ns)
    for dur, rate in phases:
        dur = int(dur)
        if dur < 0:
            raise ValueError("phase durations must be >= 0 ns")
        r = _rates(rate, len(srcs))
        total = r.sum()
        if total > 0 and dur > 0:
            t, sid = _arrivals(rng, int(rng.poisson(total * dur / 1e9)), t0, t0 + dur, r)
            times.append(t)
            ids.append(sid)
        t0 += dur
    if times:
        return Storm(np.concatenate(times), np.concatenate(ids), srcs, name=name)
    return Storm(np.zeros(0, np.int64), np.zeros(0, np.uint16), srcs, name=name)


class LazyStorm:
    """A steady Poisson storm generated slice by slice (``slice_ns`` of model time each), never held whole.

    Each slice draws from its own seeded generator, so the storm is the same however it is consumed.
    """

    lazy = True

    def __init__(self, srcs: list[Source], rates: np.ndarray, duration_ns: int, seed: int, start_ns: int,
                 slice_ns: int):
        self.sources = tuple(srcs)
        self.rates = rates
        self.duration_ns, self.seed, self.start_ns, self.slice_ns = int(duration_ns), seed, int(start_ns), int(slice_ns)
        nslices = -(-self.duration_ns // self.slice_ns)
        self._counts = np.random.default_rng([seed, 0]).poisson(rates.sum() * self.slice_ns / 1e9, size=nslices)
        last = self.duration_ns - (nslices - 1) * self.slice_ns
        if nslices:
            self._counts[-1] = np.random.default_rng([seed, 1]).poisson(rates.sum() * last / 1e9)
        self.name = f"lazy poisson {duration_ns:,} ns"

    def __len__(self) -> int:
        return int(self._counts.sum())

    def __repr__(self) -> str:
        return f"<LazyStorm {self.name}: {len(self):,} events over {len(self.sources)} sources>"

    @property
    def t_end(self) -> int:
        return self.start_ns + self.duration_ns

    def slice(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, 2, i])
        lo = self.start_ns + i * self.slice_ns
        hi = min(lo + self.slice_ns, self.start_ns + self.duration_ns)
        return _arrivals(rng, int(self._counts[i]), lo, hi, self.rates)

    def chunks(self, chunk_events: int):
        """(times, source_ids, offset): whole slices, never more than needed in memory at once."""
        off = 0
        for i in range(len(self._counts)):
            t, ids = self.slice(i)
            for lo in range(0, len(t), chunk_events):
                yield t[lo:lo + chunk_events], ids[lo:lo + chunk_events], off
                off += len(t[lo:lo + chunk_events])

    def materialize(self) -> Storm:
        parts = [self.slice(i) for i in range(len(self._counts))]
        return Storm(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), self.sources,
                     name=self.name)


def poisson(host: Any = None, *, rate_hz: Any, duration_ns: int, sources: Any = None, seed: int = 0,
            start_ns: int = 0, lazy: bool = False, slice_ns: int = 100_000_000) -> Storm:
    """A steady storm: each source fires at ``rate_hz`` (a number, or one per source) for ``duration_ns``.

    ``lazy=True`` returns a LazyStorm generated ``slice_ns`` at a time, for storms too big to hold.
    """
    if lazy:
        srcs = _pick_sources(host, sources)
        if duration_ns <= 0 or slice_ns <= 0:
            raise ValueError("duration_ns and slice_ns must be > 0")
        return LazyStorm(srcs, _rates(rate_hz, len(srcs)), duration_ns, seed, start_ns, slice_ns)
    return on_off(host, phases=[(duration_ns, rate_hz)], sources=sources, seed=seed, start_ns=start_ns,
                  name=f"poisson {duration_ns:,} ns")


def bursts(host: Any = None, *, rate_hz: Any, on_ns: int, off_ns: int, duration_ns: int, sources: Any = None,
           seed: int = 0, idle_rate_hz: Any = 0) -> Storm:
    """Bursts at ``rate_hz`` for ``on_ns``, then ``off_ns`` at ``idle_rate_hz``, until ``duration_ns``."""
    if on_ns <= 0 or off_ns < 0:
        raise ValueError("on_ns must be > 0 and off_ns >= 0")
    phases, t = [], 0
    while t < duration_ns:
        a = min(on_ns, duration_ns - t)
        phases.append((a, rate_hz))
        t += a
        b = min(off_ns, duration_ns - t)
        if b > 0:
            phases.append((b, idle_rate_hz))
        t += b
    s = on_off(host, phases=phases, sources=sources, seed=seed)
    s.name = f"bursts {on_ns:,}/{off_ns:,} ns"
    return s


def mix(*storms: Any) -> Storm:
    """Merge storms — ``mix([a, b])`` or ``mix(a, b)`` — their sources united; simultaneous events keep
    the order of the arguments."""
    if len(storms) == 1 and isinstance(storms[0], (list, tuple)):
        storms = tuple(storms[0])
    if not storms:
        raise ValueError("mix() needs at least one storm")
    srcs: list[Source] = []
    index: dict[Source, int] = {}
    parts_t, parts_i = [], []
    for s in storms:
        if not isinstance(s, Storm):
            raise TypeError(f"mix() takes Storm objects, not {type(s).__name__}")
        remap = np.array([index.setdefault(x, len(index)) for x in s.sources] or [0], dtype=np.uint16)
        for x in s.sources:
            if x not in srcs:
                srcs.append(x)
        parts_t.append(s.times)
        parts_i.append(remap[s.source_ids] if len(s) else s.source_ids)
    t = np.concatenate(parts_t)
    order = np.argsort(t, kind="stable")
    return Storm(t[order], np.concatenate(parts_i)[order], srcs, name="mix")


def from_arrays(times: Any, source_ids: Any, sources: Sequence[Any]) -> Storm:
    """A storm from your own arrays: sorted int times (ns), and for each an index into ``sources``."""
    return Storm(times, source_ids, sources, name="arrays")
