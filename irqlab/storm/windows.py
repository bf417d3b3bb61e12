"""The greedy window chain, vectorized: the primitive behind every coalescing window of the storm engine.

Models the shape of kernel/workqueue.c's pending bit and the vCPU's pending kick: a window opens with the
first event and closes ``delta`` ns later; events inside it coalesce; the next event at or after its end
opens the next. Simplification: none — this is exact; it loops over windows of dense runs, never events.
"""
from __future__ import annotations

import numpy as np

__all__ = ["greedy_window_starts", "greedy_window_starts_naive"]


def greedy_window_starts(t: np.ndarray, delta: int) -> np.ndarray:
    """Boolean mask of window starts for sorted times ``t`` and windows ``[start, start + delta)``.

    An event after a gap >= delta always starts a window; inside the dense runs between such gaps the
    chain is followed for all runs at once (one searchsorted per step), so the Python loop runs once per
    window of the longest dense run, never once per event.
    """
    n = t.shape[0]
    is_start = np.zeros(n, dtype=bool)
    if n == 0:
        return is_start
    is_start[0] = True
    if delta <= 0:
        is_start[:] = True
        return is_start
    if n > 1:
        np.greater_equal(np.diff(t), delta, out=is_start[1:])
    seg = np.flatnonzero(is_start)
    end = np.empty_like(seg)
    end[:-1] = seg[1:]
    end[-1] = n
    dense = end - seg > 1  # a run of one event is one window
    cur, end = seg[dense], end[dense]
    while cur.size:
        nxt = np.searchsorted(t, t[cur] + delta, side="left")
        keep = nxt < end
        cur, end = nxt[keep], end[keep]
        is_start[cur] = True
    return is_start


def greedy_window_starts_naive(t, delta: int) -> np.ndarray:
    """The same, one event at a time: the definition the fast version is tested against."""
    out = np.zeros(len(t), dtype=bool)
    end = None
    for i, x in enumerate(t):
        if end is None or x >= end:
            out[i] = True
            end = x + delta
    return out
