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


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 3)), min_size=1, max_size=40), st.integers(1, 60),
       st.integers(0, 2**32), st.integers(1, 3000))
def test_window_ends_shared_by_long_runs(runs, delta, seed, n):
    """Many events share their window's end (a halted vCPU's entry waits for the end of its CPU's busy period):
    the chain is followed run by run of equal ends, against the definition — ends reached exactly by a key,
    runs of one event among long ones, a run whose end lies beyond every key."""
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.integers(0, 5, n)).astype(np.int64)
    cut = np.sort(rng.integers(0, n, len(runs)))
    ends = t + delta
    for (shift, how), c in zip(runs, cut.tolist()):   # one end for a stretch of events
        e = min(c + 1 + shift * 8, n)
        top = int(ends[e - 1]) + (0 if how == 0 else shift)
        if how == 2 and e < n:
            top = max(top, int(t[e]))          # exactly a later key
        ends[c:e] = top
    ends = np.maximum.accumulate(ends)
    assert (chain_starts(t, ends) == chain_starts_naive(t, ends)).all()
    few = np.maximum.accumulate(np.repeat(t[::97] + delta + 500, 97)[:n])   # long runs: the run-by-run path
    few = np.maximum(few, t + 1)
    assert (chain_starts(t, few) == chain_starts_naive(t, few)).all()
