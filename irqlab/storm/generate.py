"""Storms: reproducible streams of interrupts over the sources a host knows.

A source is what the hardware can raise: a device's MSI/MSI-X vector, a device's INTx assertion, or a
glitch on a line that no device asserted. Not a kernel file: generators are the course's load.
Simplification: arrivals are Poisson within each phase (seeded numpy Generator), times in integer ns.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

__all__ = ["Source", "Storm", "LazyStorm", "sources", "poisson", "bursts", "on_off", "mix", "from_arrays",
           "MAX_EVENTS", "MAX_TIME_NS"]

#: the most events a storm held in memory may be expected to have (rate × duration): generating one costs
#: about 32 bytes per event at its peak (4.3 GB here), running it 9 more; bigger storms stream (lazy=True)
MAX_EVENTS = 1 << 27
#: model time is int64 nanoseconds: every storm time is below 2**63
MAX_TIME_NS = (1 << 63) - 1
#: the most phases bursts() cuts a storm into, and the most slices a lazy storm has
MAX_PHASES = 1 << 24


def _ns(value: Any, what: str, *, positive: bool = False) -> int:
    """A time or duration argument in ns: an int (numpy ints too), or a float holding a whole number (1e9)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{what} is a number of nanoseconds (an int such as 1_000_000), not {type(value).__name__}")
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            raise ValueError(f"{what} must be a finite number of nanoseconds, got {value}")
        if value != int(value):
            raise ValueError(f"{what} is a whole number of nanoseconds, got {value}")
    v = int(value)
    if v < 0 or (positive and v == 0):
        raise ValueError(f"{what} must be {'> 0' if positive else '>= 0'} ns, got {v}")
    if v > MAX_TIME_NS:
        raise ValueError(f"{what} = {v:,} ns is beyond the model's int64 clock (2**63 - 1 ns)")
    return v


def _seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int >= 0 (the same seed gives the same storm), not {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return int(seed)


def _name(name: Any) -> str:
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, not {type(name).__name__}")
    return name


def _too_many(what: str, expected: float, hint: str) -> None:
    """Refuse, before anything is allocated, a storm expected to hold more than MAX_EVENTS events."""
    if expected > MAX_EVENTS:
        raise ValueError(f"{what} would hold about {expected:,.0f} interrupts (rate × duration); a storm held in "
                         f"memory is limited to {MAX_EVENTS:,} (about 32 bytes each to generate): {hint}")


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
        if self.kind in ("msi", "intx"):
            if not isinstance(self.bdf, str):
                raise TypeError(f"a {self.kind} source needs bdf, a str like '0000:01:00.0', not "
                                f"{type(self.bdf).__name__}")
            if self.irq is not None:
                raise ValueError(f"a {self.kind} source names its device (bdf), not an irq")
        if self.kind == "msi":
            if _index(self.index, "an msi source's index (the MSI/MSI-X vector)") > 2047:
                raise ValueError(f"an MSI/MSI-X vector index is 0..2047 (the MSI-X table size), got {self.index}")
        elif self.index is not None:
            raise ValueError(f"only an msi source has an index, not a {self.kind} source")
        if self.kind == "spurious":
            if _index(self.irq, "a spurious source's irq") >= 1 << 31:
                raise ValueError(f"an irq number is below 2**31 (IRQ_NOTCONNECTED), got {self.irq}")
            if self.bdf is not None:
                raise ValueError("a spurious source is a glitch on a line (irq), not a device's (bdf)")

    @property
    def label(self) -> str:
        if self.kind == "msi":
            return f"{self.bdf} msi[{self.index}]"
        if self.kind == "intx":
            return f"{self.bdf} intx"
        return f"glitch irq {self.irq}"

    def __str__(self) -> str:
        return self.label


def _index(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{what} must be an int, not {type(v).__name__}")
    if v < 0:
        raise ValueError(f"{what} must be >= 0, got {v}")
    return int(v)


def _check_host(host: Any) -> None:
    if not (hasattr(host, "genirq") and hasattr(host, "devices")):
        raise TypeError(f"expected an irqlab.Host (or a list of sources), not {type(host).__name__}")


def sources(host: Any) -> list[Source]:
    """Everything ``host`` can raise: enabled MSI/MSI-X vectors, INTx pins, glitches on lines with actions."""
    _check_host(host)
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
            return Source("msi", x[1], x[2])
        if x[0] == "intx" and len(x) == 2:
            return Source("intx", x[1])
        if x[0] == "spurious" and len(x) == 2:
            return Source("spurious", irq=x[1])
    raise TypeError(f"a source is an irqlab.storm.Source or ('msi', bdf, index) / ('intx', bdf) / "
                    f"('spurious', irq), not {x!r}")


class Storm:
    """Sorted int64 times (ns) and uint16 source ids into ``sources``."""

    def __init__(self, times: Any, source_ids: Any, sources: Sequence[Any], *, name: str = "storm"):
        name = _name(name)
        if isinstance(sources, (str, bytes)) or not isinstance(sources, Sequence) and not hasattr(sources, "__iter__"):
            raise TypeError(f"sources is a list of irqlab.storm.Source (or tuples), not {type(sources).__name__}")
        times = np.asarray(times)
        ids = np.asarray(source_ids)
        if times.size == 0 and times.dtype.kind not in "iub":   # [] is float64 to numpy: an empty storm
            times = times.astype(np.int64)
        if ids.size == 0 and ids.dtype.kind not in "iub":
            ids = ids.astype(np.int64)
        if times.dtype.kind == "O":  # Python ints beyond int64
            try:
                times = times.astype(np.int64)
            except (OverflowError, TypeError, ValueError):
                raise ValueError("storm times are int64 nanoseconds: every one must be an int in 0..2**63 - 1") \
                    from None
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
            if times.dtype.kind == "u" and times.max() > MAX_TIME_NS:
                i = int(np.argmax(times > MAX_TIME_NS))
                raise ValueError(f"storm times must be below 2**63 ns (int64 model time); event {i} is at "
                                 f"{int(times[i]):,}")
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

    def source_at(self, i: int) -> Source:
        """The source of the storm's i-th interrupt."""
        return self.sources[int(self.source_ids[i])]

    def counts(self) -> dict[str, int]:
        c = np.bincount(self.source_ids, minlength=len(self.sources))
        return {s.label: int(n) for s, n in zip(self.sources, c)}


def _pick_sources(host: Any, srcs: Any) -> list[Source]:
    """The sources of a generator: ``sources=``, or a list given first, or the host's device interrupts."""
    if isinstance(host, (list, tuple)):
        if srcs is not None:
            raise TypeError("give the sources once: as the first argument or as sources=")
        host, srcs = None, host
    if srcs is not None and (isinstance(srcs, (str, bytes, Source)) or not hasattr(srcs, "__iter__")):
        raise TypeError(f"sources is a list of irqlab.storm.Source (or tuples), not {type(srcs).__name__}")
    if srcs is None:
        if host is None:
            raise ValueError("give a host or a list of sources")
        every = sources(host)
        srcs = [s for s in every if s.kind == "msi"] or [s for s in every if s.kind == "intx"]
        if not srcs:
            raise ValueError("this host has no device interrupt sources; pass sources=[...] (e.g. glitches)")
    out = [_as_source(s) for s in srcs]
    if not out:
        raise ValueError("a storm needs at least one source")
    if len(out) > 65535:
        raise ValueError("at most 65535 sources")
    return out


def _rates(rate_hz: Any, n: int) -> np.ndarray:
    """A rate (interrupts per second) for every source: one number, or one per source."""
    def bad(x: Any) -> bool:
        return isinstance(x, (bool, np.bool_, str, bytes)) or not isinstance(x, (int, float, np.integer, np.floating))

    many = isinstance(rate_hz, (list, tuple, np.ndarray))
    items = list(np.asarray(rate_hz).ravel()) if isinstance(rate_hz, np.ndarray) else \
        list(rate_hz) if many else [rate_hz]
    if any(bad(x) for x in items):
        x = next(x for x in items if bad(x))
        raise TypeError(f"rate_hz is a number of interrupts per second (or one per source), not {type(x).__name__}")
    if many and len(items) != n:
        raise ValueError(f"rate_hz gives {len(items)} rates for {n} sources: give one number, or one per source")
    r = np.broadcast_to(np.asarray(items, dtype=float), (n,)).copy()
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
    seed, name, t0 = _seed(seed), _name(name), _ns(start_ns, "start_ns")
    if isinstance(phases, (str, bytes)) or not hasattr(phases, "__iter__"):
        raise TypeError(f"phases is a list of (duration_ns, rate_hz) pairs, not {type(phases).__name__}")
    plan, expected = [], 0.0
    for i, ph in enumerate(phases):
        if not isinstance(ph, (tuple, list)) or len(ph) != 2:
            raise TypeError(f"phase {i} must be a (duration_ns, rate_hz) pair, not {ph!r}")
        dur, r = _ns(ph[0], f"phase {i}'s duration_ns"), _rates(ph[1], len(srcs))
        plan.append((dur, r))
        expected += float(r.sum()) * dur / 1e9
        if t0 + sum(d for d, _ in plan) > MAX_TIME_NS:
            raise ValueError("start_ns plus the phases' durations go beyond the model's int64 clock (2**63 - 1 ns)")
    _too_many(f"{name}", expected, "stream it (poisson(..., lazy=True)), or lower the rate or the duration")
    rng = np.random.default_rng(seed)
    times, ids = [], []
    for dur, r in plan:
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
        srcs = [_as_source(x) for x in srcs]
        rates = _rates(rates, len(srcs))
        duration_ns, slice_ns = _ns(duration_ns, "duration_ns", positive=True), _ns(slice_ns, "slice_ns", positive=True)
        seed, start_ns = _seed(seed), _ns(start_ns, "start_ns")
        if start_ns + duration_ns > MAX_TIME_NS:
            raise ValueError(f"start_ns + duration_ns = {start_ns + duration_ns:,} ns goes beyond the model's int64 "
                             "clock (2**63 - 1 ns)")
        if -(-duration_ns // slice_ns) > MAX_PHASES:
            raise ValueError(f"duration_ns / slice_ns makes {-(-duration_ns // slice_ns):,} slices; at most "
                             f"{MAX_PHASES:,}: use a bigger slice_ns")
        per_slice = float(rates.sum()) * slice_ns / 1e9
        if per_slice > MAX_EVENTS:
            raise ValueError(f"each slice of {slice_ns:,} ns would hold about {per_slice:,.0f} interrupts; at most "
                             f"{MAX_EVENTS:,} are generated at once: use a smaller slice_ns (at most "
                             f"{int(MAX_EVENTS / rates.sum() * 1e9):,} ns at this rate)")
        self.sources = tuple(srcs)
        self.rates = rates
        self.duration_ns, self.seed, self.start_ns, self.slice_ns = int(duration_ns), seed, int(start_ns), int(slice_ns)
        nslices = -(-self.duration_ns // self.slice_ns)
        self._counts = np.random.default_rng([seed, 0]).poisson(rates.sum() * self.slice_ns / 1e9, size=nslices)
        last = self.duration_ns - (nslices - 1) * self.slice_ns
        if nslices:
            self._counts[-1] = np.random.default_rng([seed, 1]).poisson(rates.sum() * last / 1e9)
        self.name = f"lazy poisson {duration_ns:,} ns"
        self._ids_of: tuple = (-1, None)   # (slice, its source ids): source_at's last slice

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

    def source_at(self, i: int) -> Source:
        """The source of the storm's i-th interrupt (its slice drawn again: for the few an engine leaves held)."""
        k = int(np.searchsorted(np.cumsum(self._counts), i, side="right"))
        if self._ids_of[0] != k:   # the last slice drawn again is kept: the held ones are often in one slice
            self._ids_of = (k, self.slice(k)[1])
        return self.sources[int(self._ids_of[1][i - int(self._counts[:k].sum())])]

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
    if not isinstance(lazy, (bool, np.bool_)):
        raise TypeError(f"lazy is True or False, not {type(lazy).__name__}")
    srcs = _pick_sources(host, sources)
    duration_ns = _ns(duration_ns, "duration_ns", positive=bool(lazy))
    if lazy:
        return LazyStorm(srcs, _rates(rate_hz, len(srcs)), duration_ns, seed, start_ns, slice_ns)
    return on_off(phases=[(duration_ns, rate_hz)], sources=srcs, seed=seed, start_ns=start_ns,
                  name=f"poisson {duration_ns:,} ns")


def bursts(host: Any = None, *, rate_hz: Any, on_ns: int, off_ns: int, duration_ns: int, sources: Any = None,
           seed: int = 0, idle_rate_hz: Any = 0) -> Storm:
    """Bursts at ``rate_hz`` for ``on_ns``, then ``off_ns`` at ``idle_rate_hz``, until ``duration_ns``.

    ``off_ns=0`` is a steady storm at ``rate_hz``. Every period is drawn at once (no Python step per burst), so
    a storm of millions of short bursts takes as long as one of few long ones.
    """
    srcs = _pick_sources(host, sources)
    on_ns, off_ns = _ns(on_ns, "on_ns", positive=True), _ns(off_ns, "off_ns")
    duration_ns, seed = _ns(duration_ns, "duration_ns"), _seed(seed)
    on_r, off_r = _rates(rate_hz, len(srcs)), _rates(idle_rate_hz, len(srcs))
    name = f"bursts {on_ns:,}/{off_ns:,} ns"
    period = on_ns + off_ns
    if off_ns == 0:  # one long burst
        on_ns = period = max(duration_ns, 1)
    nper = -(-duration_ns // period)
    if 2 * nper > MAX_PHASES:
        raise ValueError(f"bursts: duration_ns / (on_ns + off_ns) makes {nper:,} periods; at most "
                         f"{MAX_PHASES // 2:,}: use longer bursts or a shorter duration")
    start = np.arange(nper, dtype=np.int64) * period
    on_d = np.minimum(on_ns, duration_ns - start)
    off_d = np.clip(duration_ns - start - on_ns, 0, off_ns)
    starts = np.stack([start, start + on_d], axis=1).ravel()
    durs = np.stack([on_d, off_d], axis=1).ravel()
    kind = np.tile(np.array([0, 1], dtype=np.int64), nper)
    _too_many(name, float((on_r.sum() * on_d.sum() + off_r.sum() * off_d.sum()) / 1e9),
              "lower the rates or the duration")
    rng = np.random.default_rng(seed)
    t, sid = _phase_arrivals(rng, starts, durs, kind, [on_r, off_r])
    return Storm(t, sid, srcs, name=name)


def _phase_arrivals(rng: np.random.Generator, starts: np.ndarray, durs: np.ndarray, kind: np.ndarray,
                    rates: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Poisson arrivals in each phase [starts[j], starts[j] + durs[j]) at the rates ``rates[kind[j]]``, all
    phases at once: each phase's k arrivals are its k + 1 normalised exponential spacings (as _arrivals)."""
    totals = np.array([r.sum() for r in rates])
    k = rng.poisson(totals[kind] * durs / 1e9)
    k[durs <= 0] = 0
    keep = k > 0
    k, starts, durs, kind = k[keep], starts[keep], durs[keep], kind[keep]
    if not k.size:
        return np.zeros(0, np.int64), np.zeros(0, np.uint16)
    c = np.cumsum(rng.standard_exponential(int(k.sum()) + k.size))
    last = np.cumsum(k + 1) - 1                      # each phase's normalising spacing
    base = np.concatenate([[0.0], c[last[:-1]]])
    seg = np.repeat(np.arange(k.size), k)
    pos = np.delete(c, last) - base[seg]
    t = (pos * (durs[seg] / (c[last] - base)[seg])).astype(np.int64)
    np.minimum(t, durs[seg] - 1, out=t)
    t += starts[seg]
    sid = np.zeros(t.size, np.uint16)
    n = len(rates[0])
    if n > 1:
        for which, r in enumerate(rates):
            m = kind[seg] == which
            cnt = int(m.sum())
            if not cnt:
                continue
            if (r == r[0]).all():
                sid[m] = rng.integers(0, n, size=cnt, dtype=np.uint16)
            else:
                sid[m] = rng.choice(n, size=cnt, p=r / r.sum()).astype(np.uint16)
    return t, sid


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
        if isinstance(s, LazyStorm):
            raise TypeError("mix() takes storms held in memory: materialize a lazy storm first (storm.materialize())")
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
