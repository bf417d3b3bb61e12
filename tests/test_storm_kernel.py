"""The kernel's numbers hold in bulk: note_interrupt's window in the storm engine against a one-by-one
note_interrupt written from spurious.c, and the exact event that disables a screaming line."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from irqlab import scenarios, storm
from irqlab.ledger import Outcome
from irqlab.storm import Source


def naive_note_interrupt(handled, jiffies):
    """spurious.c's note_interrupt, one call at a time; returns the index of the disabling interrupt."""
    count = unhandled = last = 0
    for i, (h, j) in enumerate(zip(handled, jiffies)):
        if not h:
            unhandled = 1 if j > last + 25 else unhandled + 1
            last = j
        if not unhandled:
            continue
        count += 1
        if count < 100_000:
            continue
        count = 0
        if unhandled > 99_900:
            return i
        unhandled = 0
    return None


def glitch_host():
    return scenarios.shared_intx(trace=False)


def run_vector(times, handled_mask):
    h = glitch_host()
    srcs = [Source("spurious", irq=16), Source("intx", "0000:00:19.0")]
    s = storm.from_arrays(np.asarray(times, np.int64), np.where(handled_mask, 1, 0).astype(np.uint16), srcs)
    return h, storm.run(h, s, "vector")


def test_screaming_line_disabled_at_the_100000th_interrupt():
    times = np.arange(200_000, dtype=np.int64) * 500  # 2 M/s of glitches, nobody claims them
    h, r = run_vector(times, np.zeros(times.size, bool))
    assert (r.outcome[:100_000] == Outcome.UNHANDLED).all()
    assert r.outcome[100_000] == Outcome.PENDING  # the first one after the disable is held
    assert h.spurious_disabled == [(int(times[99_999]), 16)]
    assert "Disabling IRQ #16" in h.dmesg() and h.irq_to_desc(16).kstat[h.irq_to_desc(16).cpu] == 100_000


def test_ninety_nine_thousand_nine_hundred_unhandled_do_not_disable():
    times = np.arange(100_000, dtype=np.int64) * 500
    handled = np.zeros(100_000, bool)
    handled[1:101] = True  # 100 handled inside the window: 99,900 unhandled, not > 99,900
    h, r = run_vector(times, handled)
    assert not h.spurious_disabled and naive_note_interrupt(handled, times // 4_000_000) is None
    handled[100] = False  # 99,901 unhandled
    h, r = run_vector(times, handled)
    assert h.spurious_disabled == [(int(times[-1]), 16)]


def test_ageing_keeps_an_odd_glitch_from_counting_up():
    # one glitch every 104 ms (26 jiffies): irqs_unhandled keeps going back to 1
    times = np.arange(100_500, dtype=np.int64) * 104_000_000
    h, r = run_vector(times, np.zeros(times.size, bool))
    assert not h.spurious_disabled


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31), st.floats(0.0, 0.004), st.sampled_from([1_000, 40_000, 120_000_000]),
       st.integers(150_000, 260_000))
def test_bulk_window_matches_one_by_one(seed, p_handled, mean_gap_ns, n):
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(mean_gap_ns, n).astype(np.int64)
    times = np.cumsum(gaps)
    handled = rng.random(n) < p_handled
    h, r = run_vector(times, handled)
    want = naive_note_interrupt(handled.tolist(), (times // 4_000_000).tolist())
    got = h.spurious_disabled[0][1] if h.spurious_disabled else None
    assert (want is None) == (got is None)
    if want is not None:
        assert h.spurious_disabled[0][0] == int(times[want])
        assert (r.outcome[:want + 1] != Outcome.DISABLED).all()


def test_unsupported_configurations_name_the_feature():
    h = scenarios.shared_intx()
    s = storm.poisson(h, rate_hz=1000, duration_ns=10_000_000, sources=[Source("intx", "0000:04:00.0")])
    with pytest.raises(storm.Unsupported, match="vfio INTx round trip"):
        storm.run(h, s, "vector")
    assert sum(storm.run(h, s, "reference").ledger.values()) == len(s)  # the reference covers it
