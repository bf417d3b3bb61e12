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
