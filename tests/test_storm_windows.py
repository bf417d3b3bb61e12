"""The greedy window chain (the pending-bit / pending-kick window) against its one-by-one definition."""
import numpy as np
from hypothesis import given, settings, strategies as st

from irqlab.storm.windows import greedy_window_starts, greedy_window_starts_naive


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 50), max_size=200), st.integers(0, 60), st.integers(0, 1000),
       st.sampled_from([2, 3, 5, 16, 2048]))
def test_matches_the_definition(gaps, delta, t0, block):
    t = t0 + np.cumsum(np.array(gaps, dtype=np.int64))
    assert (greedy_window_starts(t, delta, block=block) == greedy_window_starts_naive(t, delta)).all()


def test_long_dense_run_and_periodic_times():
    t = np.arange(0, 1_000_000, 3, dtype=np.int64)  # perfectly periodic: chains never merge
    for delta in (1, 3, 4, 7, 10, 31, 1000):
        for block in (3, 16, 2048):
            assert (greedy_window_starts(t, delta, block=block) == greedy_window_starts_naive(t, delta)).all()


def test_edges():
    assert greedy_window_starts(np.zeros(0, np.int64), 5).shape == (0,)
    assert greedy_window_starts(np.array([7], np.int64), 5).tolist() == [True]
    # half-open windows: an event exactly at start + delta opens the next one
    assert greedy_window_starts(np.array([0, 4, 5, 9, 10], np.int64), 5).tolist() == [True, False, True, False, True]
