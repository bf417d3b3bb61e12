"""The greedy window chain (the pending-bit / pending-kick window) against its one-by-one definition."""
import numpy as np
from hypothesis import given, settings, strategies as st

from irqlab.storm.windows import chain_starts, chain_starts_naive, greedy_window_starts


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 50), max_size=300), st.integers(0, 60), st.integers(0, 1000))
def test_matches_the_definition(gaps, delta, t0):
    t = t0 + np.cumsum(np.array(gaps, dtype=np.int64))
    if delta == 0:
        assert greedy_window_starts(t, delta).all()  # a zero-length window holds nothing
    else:
        assert (greedy_window_starts(t, delta) == chain_starts_naive(t, delta)).all()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 2)), max_size=300), st.integers(1, 40))
def test_a_monotone_window_end_function(steps, delta):
    """Windows whose end depends on the opener (the doubled-scale keys of mixed vCPU streams)."""
    t = np.cumsum(np.array([s for s, _ in steps], dtype=np.int64))
    ends = np.maximum.accumulate(t + delta + np.array([e for _, e in steps], dtype=np.int64)) if steps else t
    assert (chain_starts(t, ends) == chain_starts_naive(t, ends)).all()


def test_long_dense_runs_random_and_periodic():
    rng = np.random.default_rng(0)
    for w in (0.7, 3, 25, 300):  # events per window
        t = np.cumsum(rng.exponential(100.0, 200_000)).astype(np.int64)
        d = int(100 * w)
        assert (greedy_window_starts(t, d) == chain_starts_naive(t, d)).all(), w
    t = np.arange(0, 600_000, 3, dtype=np.int64)  # perfectly periodic: walks never merge
    for d in (1, 3, 4, 7, 10, 31, 1000):
        assert (greedy_window_starts(t, d) == chain_starts_naive(t, d)).all(), d


def test_edges():
    assert greedy_window_starts(np.zeros(0, np.int64), 5).shape == (0,)
    assert greedy_window_starts(np.array([7], np.int64), 5).tolist() == [True]
    # half-open windows: an event exactly at start + delta opens the next one
    assert greedy_window_starts(np.array([0, 4, 5, 9, 10], np.int64), 5).tolist() == [True, False, True, False, True]
    # simultaneous events share a window
    assert greedy_window_starts(np.array([3, 3, 3, 8, 8], np.int64), 5).tolist() == [True, False, False, True, False]
