"""The greedy window chain, vectorized: the primitive behind every coalescing window of the storm engine.

Models the shape of kernel/workqueue.c's pending bit and the vCPU's pending kick: a window opens with the
first event and closes ``delta`` ns later; events inside it coalesce; the next event at or after its end
opens the next. Simplification: none — this is exact; it loops over windows of dense runs, never events.
"""
from __future__ import annotations

import numpy as np

__all__ = ["greedy_window_starts", "greedy_window_starts_naive"]


def greedy_window_starts(t: np.ndarray, delta: int, block: int = 16384) -> np.ndarray:
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
    later = np.flatnonzero(k > 0)
    if not later.size:
        return is_start
    # 1. every later block, entered where its predecessor's chain exits, walks (all at once) to a join
    assumed = exit_[later - 1]
    e = assumed.copy()
    end = b_end[later]
    walk_blk, walk_node = [], []
    act = np.flatnonzero((e < end) & ~guess[np.minimum(e, n)])
    while act.size:
        walk_blk.append(act)
        walk_node.append(e[act])
        e[act] = np.searchsorted(t, t[e[act]] + delta, side="left")
        act = act[(e[act] < end[act]) & ~guess[np.minimum(e[act], n)]]
    joined = e < end
    join_at = np.where(joined, e, end)
    out_at = np.where(joined, exit_[later], e)  # where the true chain leaves the block
    # 2. in order, check each block was entered where its predecessor really exits; re-walk the others
    valid = np.ones(later.size, dtype=bool)
    extra: list[int] = []
    prev_exit = None
    for i, b in enumerate(later.tolist()):
        if k[b] == 1:
            prev_exit = int(exit_[b - 1])  # the first block of a run is exact
        x = prev_exit
        if x == int(assumed[i]):
            prev_exit = int(out_at[i])
            continue
        valid[i] = False
        be = int(end[i])
        while x < be and not guess[x]:
            extra.append(x)
            x = int(np.searchsorted(t, t[x] + delta, side="left"))
        if x < be:
            join_at[i] = x
            prev_exit = int(exit_[b])
        else:
            join_at[i] = be
            prev_exit = x
    # 3. guessed starts before each block's join are wrong; walked nodes are right
    clear = np.zeros(n + 1, dtype=np.int32)
    np.add.at(clear, b_start[later], 1)
    np.add.at(clear, join_at, -1)
    is_start &= ~(np.cumsum(clear[:n]) > 0)
    if walk_node:
        wb = np.concatenate(walk_blk)
        wn = np.concatenate(walk_node)
        is_start[wn[valid[wb]]] = True
    if extra:
        is_start[extra] = True
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
