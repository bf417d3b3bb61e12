"""The greedy window chain, vectorized: the primitive behind every coalescing window of the storm engine.

Models the shape of kernel/workqueue.c's pending bit and the vCPU's pending kick: a window opens with the
first event and closes ``delta`` ns later; events inside it coalesce; the next event at or after its end
opens the next. Simplification: none — this is exact; it loops over windows of dense runs, never events.
"""
from __future__ import annotations

import numpy as np

__all__ = ["greedy_window_starts", "greedy_window_starts_naive"]


def greedy_window_starts(t: np.ndarray, delta: int, block: int = 2048) -> np.ndarray:
    """Boolean mask of window starts for sorted times ``t`` and windows ``[start, start + delta)``.

    An event after a gap >= delta always starts a window. Dense runs between such gaps are cut into blocks
    of ``block`` events; the chain of windows is followed in every block at once from the block's first
    event (one searchsorted per step for all blocks), then the blocks are stitched in order: the true chain
    enters each block where the previous one's exits and is walked until it joins the block's own chain
    (on random times within a few windows). The Python loop runs once per window of a block and a few
    times per block, never once per event.
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
    seg_end = np.empty_like(seg)
    seg_end[:-1] = seg[1:]
    seg_end[-1] = n
    dense = seg_end - seg > 2  # in a run of two, the second event is inside the first window: nothing to find
    seg, seg_end = seg[dense], seg_end[dense]
    if not seg.size:
        return is_start
    nblk = (seg_end - seg + block - 1) // block
    run_of_block = np.repeat(np.arange(seg.size), nblk)
    first_blk = np.cumsum(nblk) - nblk
    k = np.arange(run_of_block.size) - first_blk[run_of_block]
    b_start = seg[run_of_block] + k * block
    b_end = np.minimum(b_start + block, seg_end[run_of_block])
    guess = np.zeros(n + 1, dtype=bool)
    guess[b_start] = True
    exit_ = np.empty_like(b_start)
    cur, idx = b_start.copy(), np.arange(b_start.size)
    while cur.size:  # follow all blocks' chains at once
        nxt = np.searchsorted(t, t[cur] + delta, side="left")
        inside = nxt < b_end[idx]
        out = ~inside
        exit_[idx[out]] = nxt[out]
        cur, idx = nxt[inside], idx[inside]
        guess[cur] = True
    is_start |= guess[:n]
    multi = np.flatnonzero(nblk > 1)
    if not multi.size:
        return is_start
    clear = np.zeros(n + 1, dtype=np.int32)  # +1/-1 marks of ranges whose guessed starts are wrong
    walked: list[int] = []
    for r in multi.tolist():
        lo = int(first_blk[r])
        e = int(exit_[lo])
        for i in range(lo + 1, lo + int(nblk[r])):
            bs, end = int(b_start[i]), int(b_end[i])
            while e < end and not guess[e]:  # walk the true chain until it joins this block's chain
                walked.append(e)
                e = int(np.searchsorted(t, t[e] + delta, side="left"))
            if e > bs:
                clear[bs] += 1
                clear[min(e, end)] -= 1
            if e < end:
                e = int(exit_[i])
    is_start &= ~(np.cumsum(clear[:n]) > 0)
    if walked:
        is_start[walked] = True
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
