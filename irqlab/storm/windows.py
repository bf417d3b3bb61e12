"""The greedy window chain, vectorized: the primitive behind the coalescing windows of vcpu.py.

Models the shape of kernel/workqueue.c's pending bit (irqfd->inject: ``vcpu.WorkChain``) and of a vCPU's
entry window (arch/x86/kvm/x86.c: a kick pending until the entry, the IRR/PIR filling meanwhile:
``vcpu.VcpuWindows``): a window opens with the first event, closes at its end, events inside it coalesce,
and the first event at or after the end opens the next; ``lines.VfioIntx`` too: a vfio INTx round trip, from
the trigger to the guest's EOI that unmasks, is one window while its line is up. Simplification: none — the result is exact for any input; only the cost
depends on the data (it grows with the number of windows, never with a Python step per event).

How: an event after a gap at least as long as a window always starts one (a run head). Inside a dense
run the chain is followed from *sync points* — the run heads and, in long runs, the first event of every
window-wide time cell, where any chain that leaves a cell without a start in the next one must land —
all at once, one search per round, stopping where walks merge. ``wex`` (per walk, the next sync point on
its path) comes from pointer doubling; the true chain is the walk from each head through the sync points it
reaches.
"""
from __future__ import annotations

import numpy as np

__all__ = ["chain_starts", "greedy_window_starts", "chain_starts_naive"]

_SMALL = 48  # below this many active chains, follow them with a plain Python loop
_LONG = 256  # runs up to this long are scanned position by position; longer ones get sync points
_PROBE = 3   # look this many events ahead before a binary search
HEAD, END = -2, -3


def greedy_window_starts(t: np.ndarray, delta: int) -> np.ndarray:
    """Boolean mask of window starts for sorted times ``t`` and windows ``[start, start + delta)``."""
    t = np.asarray(t, dtype=np.int64)
    if delta <= 0:
        return np.ones(t.shape[0], dtype=bool)
    return chain_starts(t, int(delta))


def _scan_runs(keys: np.ndarray, end_of, heads: np.ndarray, lens: np.ndarray, start: np.ndarray) -> None:
    """Window starts inside short dense runs: one step per position, all runs at once (longest first)."""
    order = np.argsort(-lens, kind="stable")
    h, ln = heads[order], lens[order]
    e = end_of(h)                 # the end of each run's current window
    active = np.searchsorted(-ln, -np.arange(1, int(ln[0])), side="left")  # runs longer than k, k = 1, 2, ...
    for k, a in enumerate(active.tolist(), 1):
        i = h[:a] + k
        st = keys[i] >= e[:a]
        start[i] = st
        if st.any():
            e[:a] = np.where(st, end_of(i), e[:a])


def _next(keys: np.ndarray, i: np.ndarray, e: np.ndarray, probe: bool) -> np.ndarray:
    """For each i, the first j > i with keys[j] >= e (len(keys) if none): a few steps, then bisection."""
    n = keys.shape[0]
    if not probe:
        return np.searchsorted(keys, e, side="left")
    j = i + 1
    act = np.arange(i.size)
    for _ in range(_PROBE):
        jj = j[act]
        go = jj < n
        go[go] = keys[jj[go]] < e[act[go]]
        act = act[go]
        if not act.size:
            return j
        j[act] += 1
    j[act] = np.searchsorted(keys, e[act], side="left")
    return j


def chain_starts(keys: np.ndarray, ends) -> np.ndarray:
    """Window starts of the greedy chain over sorted ``keys``.

    A window opened by event ``i`` closes at ``ends[i]`` (an int64 array, non-decreasing, ``> keys[i]``, or
    one int ``d`` for ``keys[i] + d``); the first event whose key is ``>= ends[i]`` opens the next. The time
    cells of the sync points are as wide as the shortest window.
    """
    keys = np.asarray(keys, dtype=np.int64)
    n = keys.shape[0]
    start = np.zeros(n, dtype=bool)
    if n == 0:
        return start
    scalar = np.ndim(ends) == 0
    if scalar:
        d = int(ends)

        def end_of(i: np.ndarray) -> np.ndarray:
            return keys[i] + d
    else:
        ends = np.asarray(ends, dtype=np.int64)
        if n >= 4 * _RUNS_MIN:
            by_runs = _chain_by_runs(keys, ends)
            if by_runs is not None:
                return by_runs

        def end_of(i: np.ndarray) -> np.ndarray:
            return ends[i]
    start[0] = True
    if n == 1:
        return start
    # run heads: nothing opened earlier reaches them
    if scalar:
        np.greater_equal(keys[1:], keys[:-1] + d, out=start[1:])
    else:
        np.greater_equal(keys[1:], ends[:-1], out=start[1:])
    heads = np.flatnonzero(start)
    lens = np.empty_like(heads)
    lens[:-1] = heads[1:] - heads[:-1]
    lens[-1] = n - heads[-1]
    # runs of one or two events are done (the second is inside the first's window); short runs are walked
    # from their head; long runs get sync points
    short = np.flatnonzero((lens >= 3) & (lens <= _LONG))
    if short.size:
        _scan_runs(keys, end_of, heads[short], lens[short], start)
    longr = np.flatnonzero(lens > _LONG)
    if not longr.size:
        return start
    cell = max(d if scalar else int((ends - keys).min()), 1)
    dheads, dlens = heads[longr], lens[longr]
    extra = []
    if longr.size <= 256:  # few long runs: slices
        for h, ln in zip(dheads.tolist(), dlens.tolist()):
            c = keys[h:h + ln] // cell
            extra.append(h + 1 + np.flatnonzero(c[1:] != c[:-1]))
    else:
        first = np.cumsum(dlens) - dlens
        idx = np.arange(int(dlens.sum())) + np.repeat(dheads - first, dlens)
        c = keys[idx] // cell
        cf = np.empty(idx.size, dtype=bool)
        cf[0] = False
        np.not_equal(c[1:], c[:-1], out=cf[1:])
        cf[first] = False  # the heads are in already
        extra = [idx[cf]]
        del idx, c, cf
    src = np.sort(np.concatenate([dheads] + extra))
    # forest discovery: walk from every sync point at once until each walk meets a node already seen, a run
    # head (a start anyway: nothing before it reaches it) or the end. walk_stop[w]: the node id where walk w
    # stopped (-1 for a head or the end).
    probe = d <= 3 * (int(keys[-1] - keys[0]) // n + 1) if scalar else False
    itype = np.int32 if n < 2**31 - 3 else np.int64
    # cid: event index -> forest node id; HEAD for the other run heads, END past the last event
    cid = np.full(n + 1, -1, dtype=itype)
    cid[heads] = HEAD
    cid[n] = END
    nsrc = src.size
    cid[src] = np.arange(nsrc, dtype=itype)
    nodes, pars, walks = [src], [], [np.arange(nsrc, dtype=itype)]
    walk_stop = np.full(nsrc, -1, dtype=np.int64)
    nnodes = nsrc
    front, fwalk = src, walks[0]
    while front.size:
        nx = _next(keys, front, end_of(front), probe)
        seen = cid[nx]                    # a node id, or -1 (new), HEAD or END
        go = seen == -1
        stopped = ~go
        walk_stop[fwalk[stopped]] = np.maximum(seen[stopped], -1)
        nxg, fw = nx[go], fwalk[go]
        nx = nxg
        if nx.size > 1:  # a sorted frontier maps to a sorted one: repeats merge into the first
            dup = np.zeros(nx.size, dtype=bool)
            np.equal(nx[1:], nx[:-1], out=dup[1:])
            if dup.any():
                nid = np.arange(nnodes, nnodes + nx.size) - np.cumsum(dup)
                walk_stop[fw[dup]] = nid[dup]
                nx, fw = nx[~dup], fw[~dup]
        cid[nx] = np.arange(nnodes, nnodes + nx.size, dtype=itype)
        seen[go] = cid[nxg]
        pars.append(seen)
        nnodes += nx.size
        nodes.append(nx)
        walks.append(fw)
        front, fwalk = nx, fw
    node_ev = np.concatenate(nodes)
    walk_of = np.concatenate(walks)
    par = np.concatenate(pars).astype(np.int64)  # each node's next node (ids follow the walking order)
    par[par < -1] = -1                           # a run head or the end: the walk is over
    del pars, nodes, walks
    is_sync = np.zeros(nnodes, dtype=bool)
    is_sync[:nsrc] = True
    # wex of a walk: the next sync point after its source (-1: a head or the end comes first). A walk that
    # stopped on another walk's node takes that walk's answer.
    unk = -2
    stop_sync = (walk_stop < 0) | is_sync[np.maximum(walk_stop, 0)]
    wex = np.where(stop_sync, walk_stop, unk)
    jump = np.where(stop_sync, 0, walk_of[np.maximum(walk_stop, 0)]).astype(np.int64)
    todo = np.flatnonzero(~stop_sync)
    while todo.size:
        j = jump[todo]
        done = wex[j] != unk
        wex[todo[done]] = wex[j[done]]
        todo = todo[~done]
        jump[todo] = jump[jump[todo]]
    del jump
    # the true sync points: from each dense head along wex (sync point -> the next), as far as it goes
    true_sync = [np.arange(nsrc)[start[src]]]  # the dense heads' node ids
    cur = wex[true_sync[0]]
    cur = cur[cur >= 0]
    while cur.size > _SMALL:
        true_sync.append(cur)
        cur = wex[cur]
        cur = cur[cur >= 0]
    if cur.size:
        exl = wex.tolist()
        tail = []
        for c in cur.tolist():
            while c >= 0:
                tail.append(c)
                c = exl[c]
        true_sync.append(np.array(tail, dtype=np.int64))
    resets = np.concatenate(true_sync)
    # every node on the walk from a true sync point to the next one is a window start
    marked = [resets]
    cur = par[resets]
    cur = cur[cur >= 0]
    cur = cur[~is_sync[cur]]
    while cur.size:
        marked.append(cur)
        cur = par[cur]
        cur = cur[cur >= 0]
        cur = cur[~is_sync[cur]]
    start[node_ev[np.concatenate(marked)]] = True
    return start


_RUNS_MIN = 32   # events per run of one window end, on average, for the chain to be followed run by run


def _chain_by_runs(keys: np.ndarray, ends: np.ndarray) -> np.ndarray | None:
    """chain_starts when many events share their window's end (a vCPU's entry that waits for the end of its CPU's
    busy period): the events of one run of equal ends send the chain to the same next window start, the first
    event at or after that end, so the chain is followed from run to run — one step per window, at most one per
    run. None when the runs are too short for that to pay (fewer than _RUNS_MIN events each on average)."""
    n = keys.shape[0]
    probe = min(n, 64 * _RUNS_MIN)   # a look at the head first: most streams are not like that at all
    if int(np.count_nonzero(ends[1:probe] != ends[:probe - 1])) * _RUNS_MIN > probe:
        return None
    b = np.flatnonzero(ends[1:] != ends[:-1])
    if (b.size + 1) * _RUNS_MIN > n:
        return None
    rs = np.empty(b.size + 1, np.int64)   # each run's first event
    rs[0] = 0
    np.add(b, 1, out=rs[1:])
    nxt = np.searchsorted(keys, ends[rs], side="left")   # the next start after a window of that run's end
    run_of = (np.searchsorted(rs, nxt, side="right") - 1).tolist()   # ... and the run that start is in
    nxl = nxt.tolist()
    st = [0]
    r = 0
    while nxl[r] < n:
        st.append(nxl[r])
        r = run_of[r]
    start = np.zeros(n, dtype=bool)
    start[st] = True
    return start


def chain_starts_naive(keys, ends) -> np.ndarray:
    """The same, one event at a time: the definition the fast version is tested against."""
    keys = np.asarray(keys, dtype=np.int64)
    e = (keys + int(ends)) if np.ndim(ends) == 0 else np.asarray(ends, dtype=np.int64)
    out = np.zeros(keys.shape[0], dtype=bool)
    end = None
    for i, x in enumerate(keys.tolist()):
        if end is None or x >= end:
            out[i] = True
            end = int(e[i])
    return out
