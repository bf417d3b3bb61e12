"""Storm generators and their validation."""
import numpy as np
import pytest

from irqlab import scenarios, storm
from irqlab.storm import Source, Storm


def test_sources_of_a_host():
    h = scenarios.shared_intx()
    labels = [s.label for s in storm.sources(h)]
    assert "0000:04:00.0 intx" in labels and "glitch irq 16" in labels


def test_poisson_is_reproducible_sorted_and_near_the_rate():
    h = scenarios.msix_nic(4)
    a = storm.poisson(h, rate_hz=100_000, duration_ns=100_000_000, seed=7)
    b = storm.poisson(h, rate_hz=100_000, duration_ns=100_000_000, seed=7)
    assert (a.times == b.times).all() and (a.source_ids == b.source_ids).all()
    assert a.times.dtype == np.int64 and (np.diff(a.times) >= 0).all()
    assert abs(len(a) - 40_000) < 1_000 and len(a.sources) == 4


def test_bursts_and_mix():
    h = scenarios.msix_nic(2)
    s = storm.bursts(h, rate_hz=1_000_000, on_ns=100_000, off_ns=900_000, duration_ns=10_000_000, seed=1)
    phase = (s.times % 1_000_000) < 100_000
    assert phase.all() and len(s) > 500
    g = storm.poisson([Source("spurious", irq=16)], rate_hz=1_000, duration_ns=10_000_000, seed=2)
    m = storm.mix([s, g])
    assert len(m) == len(s) + len(g) and len(m.sources) == 3 and (np.diff(m.times) >= 0).all()
    assert (m.times == storm.mix(s, g).times).all()
    per = m.counts()
    assert per["glitch irq 16"] == len(g)


def test_on_off_phases_and_a_rate_per_source():
    h = scenarios.msix_nic(2)
    s = storm.on_off(h, phases=[(1_000_000, [1_000_000, 0]), (1_000_000, 0), (1_000_000, [0, 2_000_000])], seed=3)
    first, second = s.times < 1_000_000, s.times >= 2_000_000
    assert (s.source_ids[first] == 0).all() and (s.source_ids[second] == 1).all()
    assert not ((s.times >= 1_000_000) & (s.times < 2_000_000)).any()


@pytest.mark.parametrize("times,ids,srcs,exc,msg", [
    ([2, 1], [0, 0], [("intx", "0000:01:00.0")], ValueError, "sorted"),
    ([-1, 1], [0, 0], [("intx", "0000:01:00.0")], ValueError, ">= 0"),
    ([1, 2], [0, 5], [("intx", "0000:01:00.0")], ValueError, "source id"),
    ([1.0, 2.0], [0, 0], [("intx", "0000:01:00.0")], TypeError, "integer"),
    ([1, 2], [0], [("intx", "0000:01:00.0")], ValueError, "same length"),
    ([1], [0], ["eth0"], TypeError, "source"),
])
def test_bad_storms_say_what_to_fix(times, ids, srcs, exc, msg):
    with pytest.raises(exc, match=msg):
        Storm(np.array(times), np.array(ids), srcs)


def test_run_rejects_bad_arguments():
    h = scenarios.msix_nic(1)
    s = storm.poisson(h, rate_hz=1000, duration_ns=1_000_000)
    with pytest.raises(ValueError, match="engine"):
        storm.run(h, s, engine="fast")
    with pytest.raises(TypeError):
        storm.run(h, [1, 2, 3])
    bad = storm.from_arrays([5], [0], [Source("msi", "0000:09:00.0", 0)])
    for engine in ("vector", "reference"):
        with pytest.raises(ValueError, match="no device"):
            storm.run(h, bad, engine)
    with pytest.raises(ValueError, match="no enabled MSI"):
        storm.run(h, storm.from_arrays([5], [0], [Source("msi", "0000:01:00.0", 7)]))
    with pytest.raises(ValueError, match="no irq 99"):
        storm.run(h, storm.from_arrays([5], [0], [Source("spurious", irq=99)]))
    with pytest.raises(ValueError, match="chunk_events"):
        storm.run(h, s, chunk_events=0)
    h.run(until=10**9)
    with pytest.raises(ValueError, match="before the host's clock"):
        storm.run(h, s)


def test_per_event_views_of_a_streamed_storm_say_to_materialize_it():
    """A streamed result keeps no per-event arrays: rate(), per_source() and latency_percentiles() refuse
    (rather than answer empty) and say what to do; the materialized storm answers."""
    lz = storm.poisson(scenarios.posted_nic(2, trace=False), rate_hz=300_000, duration_ns=3_000_000, seed=4,
                       lazy=True)
    r = storm.run(scenarios.posted_nic(2, trace=False), lz, progress=False)
    assert r.streamed and sum(r.ledger.values()) == len(lz) and "latency" not in r.summary()
    for call in (lambda: r.rate(1_000_000), r.per_source, r.latency_percentiles):
        with pytest.raises(ValueError, match=r"streamed storm \(lazy=True\).*materialize"):
            call()
    m = storm.run(scenarios.posted_nic(2, trace=False), lz.materialize(), progress=False)
    _, per = m.rate(1_000_000)
    assert sum(int(c.sum()) for c in per.values()) == len(lz) == sum(sum(v.values()) for v in m.per_source().values())
    assert m.latency_percentiles()[50] > 0

def test_a_lazy_storm_is_the_same_however_it_is_consumed():
    h = scenarios.posted_nic(2, trace=False)
    lz = storm.poisson(h, rate_hz=300_000, duration_ns=30_000_000, seed=4, lazy=True, slice_ns=3_000_000)
    whole = lz.materialize()
    assert len(lz) == len(whole) and (np.diff(whole.times) >= 0).all()
    parts = list(lz.chunks(1000))
    assert np.array_equal(np.concatenate([p[0] for p in parts]), whole.times)
    assert [p[2] for p in parts] == list(np.cumsum([0] + [len(p[0]) for p in parts[:-1]]))
    # the source of one interrupt, found again without the whole storm (what the engine leaves held names it)
    edges = np.cumsum(lz._counts)[:-1]   # the first and last interrupt of each slice
    for i in sorted({0, len(lz) - 1, *edges.tolist(), *(edges - 1).tolist()}):
        assert lz.source_at(i) == whole.source_at(i) == whole.sources[int(whole.source_ids[i])], i


# ------------------------------------------------------------------------------------------ issue 11: storm input
GLITCH = [Source("spurious", irq=16)]


@pytest.mark.parametrize("call,exc,msg", [
    # wrong types and unclear messages
    (lambda: storm.poisson(GLITCH, rate_hz=1000, duration_ns="1000"), TypeError, "duration_ns is a number of nanoseconds"),
    (lambda: storm.poisson(GLITCH, rate_hz="1000", duration_ns=1000), TypeError, "rate_hz is a number"),
    (lambda: storm.poisson(GLITCH, rate_hz=[1, 2], duration_ns=1000), ValueError, "2 rates for 1 sources"),
    (lambda: storm.poisson(GLITCH, rate_hz=1000, duration_ns=True), TypeError, "not bool"),
    (lambda: storm.poisson(GLITCH, rate_hz=1000, duration_ns=1.5), ValueError, "whole number"),
    (lambda: storm.poisson(GLITCH, rate_hz=1000, duration_ns=-1), ValueError, ">= 0"),
    (lambda: storm.poisson(GLITCH, rate_hz=1000, duration_ns=1000, seed=-1), ValueError, "seed"),
    (lambda: storm.poisson(GLITCH, rate_hz=1000, duration_ns=1000, seed=1.0), TypeError, "seed"),
    (lambda: storm.poisson(GLITCH, rate_hz=1000, duration_ns=1000, lazy="yes"), TypeError, "lazy"),
    (lambda: storm.poisson(5, rate_hz=1000, duration_ns=1000), TypeError, "irqlab.Host"),
    (lambda: storm.poisson(sources="glitch", rate_hz=1000, duration_ns=1000), TypeError, "list of"),
    (lambda: storm.poisson([], rate_hz=1000, duration_ns=1000), ValueError, "at least one source"),
    (lambda: storm.poisson([("msi", "0000:01:00.0", 1.5)], rate_hz=1, duration_ns=1), TypeError, "index"),
    (lambda: storm.poisson([("spurious", -1)], rate_hz=1, duration_ns=1), ValueError, ">= 0"),
    (lambda: Source("msi", "0000:01:00.0"), TypeError, "index"),
    (lambda: Source("intx", None), TypeError, "bdf"),
    (lambda: Source("spurious", irq=True), TypeError, "irq"),
    # OverflowError / MemoryError before: say how many events, up front
    (lambda: storm.poisson(GLITCH, rate_hz=1000, duration_ns=float("inf")), ValueError, "finite"),
    (lambda: storm.poisson(GLITCH, rate_hz=1e15, duration_ns=1e9), ValueError,
     r"about 1,000,000,000,000,000 interrupts.*134,217,728"),
    (lambda: storm.poisson(GLITCH, rate_hz=1e15, duration_ns=1e9, lazy=True), ValueError, "smaller slice_ns"),
    (lambda: storm.poisson(GLITCH, rate_hz=1, duration_ns=1e18, lazy=True, slice_ns=1), ValueError, "slices"),
    (lambda: storm.poisson(GLITCH, rate_hz=1, duration_ns=10, start_ns=2**63 - 5), ValueError, "int64"),
    (lambda: storm.poisson(GLITCH, rate_hz=1, duration_ns=1_000_000, start_ns=2**63 - 500_000, lazy=True),
     ValueError, "int64 clock"),
    # silent nonsense and hangs before
    (lambda: storm.bursts(GLITCH, rate_hz=1e6, on_ns=1000, off_ns=float("nan"), duration_ns=10**6), ValueError,
     "off_ns must be a finite"),
    (lambda: storm.bursts(GLITCH, rate_hz=1e6, on_ns=1000, off_ns=1000, duration_ns=float("inf")), ValueError,
     "duration_ns must be a finite"),
    (lambda: storm.bursts(GLITCH, rate_hz=1e3, on_ns=1, off_ns=1, duration_ns=1e9), ValueError, "periods"),
    (lambda: storm.bursts(GLITCH, rate_hz=1e3, on_ns=0, off_ns=1, duration_ns=10), ValueError, "on_ns must be > 0"),
    (lambda: storm.from_arrays(np.array([2**63], dtype=np.uint64), [0], GLITCH), ValueError, "below 2\\*\\*63"),
    (lambda: storm.from_arrays([2**64], [0], GLITCH), ValueError, "2\\*\\*63"),
    (lambda: storm.mix(storm.poisson(GLITCH, rate_hz=1, duration_ns=10, lazy=True)), TypeError, "materialize"),
    (lambda: storm.on_off(GLITCH, phases=[(10, 1, 2)]), TypeError, "pair"),
    (lambda: storm.on_off(GLITCH, phases=5), TypeError, "phases"),
])
def test_generators_refuse_bad_input_saying_what_to_fix(call, exc, msg):
    """issue 11: every generator refuses up front with TypeError/ValueError — never OverflowError, MemoryError,
    a silent empty or wrapped storm, or a loop that never returns."""
    with pytest.raises(exc, match=msg):
        call()


def test_empty_arrays_make_an_empty_storm():
    """from_arrays([], [], srcs): numpy calls [] float64; an empty storm is still a storm."""
    s = storm.from_arrays([], [], GLITCH)
    assert len(s) == 0 and s.times.dtype == np.int64 and len(storm.from_arrays([], [], [])) == 0


def test_bursts_without_a_pause_is_a_steady_storm_and_short_bursts_are_fast():
    """bursts(on_ns=1, off_ns=0) never returned (one Python phase per ns); now every period is drawn at once."""
    s = storm.bursts(GLITCH, rate_hz=1e6, on_ns=1, off_ns=0, duration_ns=1e9, seed=3)
    assert abs(len(s) - 1_000_000) < 5_000 and s.times.max() < 10**9 and (np.diff(s.times) >= 0).all()
    b = storm.bursts(GLITCH + [Source("spurious", irq=17)], rate_hz=[2e6, 0], on_ns=300, off_ns=700,
                     duration_ns=10**9, idle_rate_hz=[0, 1e6], seed=2)
    on = (b.times % 1000) < 300
    assert (b.source_ids[on] == 0).all() and (b.source_ids[~on] == 1).all() and (np.diff(b.times) >= 0).all()
    assert abs(on.sum() - 600_000) < 5_000 and abs((~on).sum() - 700_000) < 5_000


def test_float_nanoseconds_that_are_whole_numbers_are_accepted():
    a = storm.poisson(GLITCH, rate_hz=1e6, duration_ns=1e6, seed=1)
    b = storm.poisson(GLITCH, rate_hz=1_000_000, duration_ns=1_000_000, seed=1)
    assert (a.times == b.times).all()


def test_rate_with_a_bin_longer_than_the_storm_is_one_bin():
    """result.rate(10**30) raised OverflowError: a bin longer than the storm holds all of it."""
    h = scenarios.msix_nic(1, trace=False)
    r = storm.run(h, storm.poisson(h, rate_hz=100_000, duration_ns=1_000_000, seed=1), progress=False)
    starts, per = r.rate(10**30)
    assert list(starts) == [int(r.times[0])] and sum(int(c.sum()) for c in per.values()) == len(r)
    with pytest.raises(TypeError, match="bin_ns"):
        r.rate(1e6)
    with pytest.raises(ValueError, match="bin_ns"):
        r.rate(0)
    with pytest.raises(ValueError, match="0..100"):
        r.latency_percentiles([50, 101])
    with pytest.raises(TypeError, match="StormResult"):
        r.diff(None)


def test_run_refuses_a_host_that_is_not_one():
    """storm.run(None, s) raised AttributeError."""
    s = storm.poisson(GLITCH, rate_hz=1000, duration_ns=1_000_000)
    for bad in (None, "host", scenarios):
        with pytest.raises(TypeError, match="irqlab.Host"):
            storm.run(bad, s)
    h = scenarios.shared_intx(trace=False)
    with pytest.raises(TypeError, match="chunk_events"):
        storm.run(h, s, chunk_events=2.0)
    with pytest.raises(TypeError, match="progress"):
        storm.run(h, s, progress="yes")
    with pytest.raises(ValueError, match="engine"):
        storm.run(h, s, engine=None)


@pytest.mark.parametrize("engine", ["vector", "reference"])
def test_a_lazy_storm_near_the_end_of_int64_time(engine):
    """A lazy storm whose times passed 2**63 ns wrapped in the vector engine (the replay refused): the generator
    refuses it now; near 2**62 the vector engine says Unsupported, the replay runs it; below, both agree."""
    def make(start):
        h = scenarios.shared_intx(trace=False)
        h.run(until=start)
        return h, storm.poisson(h, rate_hz=1e6, duration_ns=10**6, start_ns=start, lazy=True, slice_ns=10**5)

    h, lz = make(2**62 - 2_000_000)
    r = storm.run(h, lz, engine, progress=False)
    ref = storm.run(make(2**62 - 2_000_000)[0], lz.materialize(), "reference", progress=False)
    assert r.ledger == ref.ledger and r.counters == ref.counters and r.t_end == ref.t_end
    h, lz = make(2**62 + 5)
    if engine == "vector":
        with pytest.raises(storm.Unsupported, match="2\\*\\*62"):
            storm.run(h, lz, engine, progress=False)
    else:
        assert sum(storm.run(h, lz, engine, progress=False).ledger.values()) == len(lz)
