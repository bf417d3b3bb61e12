"""Storm benchmark: events/s of the vector engine end to end, the ratio to the one-by-one reference replay
(timed on a slice), the ratio to a bare numpy pass over the same arrays, and peak memory per event.

    python benchmarks/storm.py            # 10-million-event storms
    python benchmarks/storm.py --quick    # 1-million-event storms (a smoke run)
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from irqlab import scenarios, storm  # noqa: E402

CASES = [
    ("heavy coalescing: 4-queue NIC, VT-d posting to halted vCPUs (PIR coalescing)",
     lambda: scenarios.posted_nic(4, trace=False, vcpu_mode="halted"), 2_500_000),
    ("little coalescing: 4-queue NIC, posting to running vCPUs",
     lambda: scenarios.posted_nic(4, trace=False), 250_000),
    ("kick exits: 4-queue NIC through vfio and irqfd, no APICv",
     lambda: scenarios.msix_nic(4, trace=False), 250_000),
]


def bare_numpy(times: np.ndarray, ids: np.ndarray, nsrc: int) -> float:
    """One gather plus one bincount over the same arrays: the floor any engine pays."""
    table = np.arange(nsrc, dtype=np.int64) * 3
    t0 = time.perf_counter()
    g = table[ids]
    np.bincount(g, minlength=3 * nsrc)
    return time.perf_counter() - t0


def _vm_hwm_mb() -> float:
    """This process's own peak RSS (VmHWM). ru_maxrss would include the parent's peak: Linux carries it
    across fork and exec."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def streamed(n: int) -> int:
    """A lazy storm of ``n`` events through the vector engine in chunks; prints its own peak RSS."""
    host = scenarios.posted_nic(4, trace=False)
    rate = 2_500_000
    s = storm.poisson(host, rate_hz=rate, duration_ns=int(n / (rate * 4) * 1e9), seed=1, lazy=True,
                      slice_ns=50_000_000)
    t0 = time.perf_counter()
    r = storm.run(host, s, "vector", chunk_events=1_000_000)
    el = time.perf_counter() - t0
    rss = _vm_hwm_mb()
    print(f"  streamed: {len(r):,} events in {el:.1f} s ({len(r) / el / 1e6:.2f} M events/s), "
          f"ledger {r.ledger}; peak RSS {rss:.0f} MB")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="1 million events instead of 10 million")
    ap.add_argument("--slice", type=int, default=20_000, help="events replayed by the reference engine")
    ap.add_argument("--stream", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.stream:
        return streamed(args.stream)
    n = 1_000_000 if args.quick else 10_000_000
    print(f"irqlab storm benchmark: {n:,} events per storm, numpy {np.__version__}")
    for name, make, rate in CASES:
        host = make()
        dur = int(n / (rate * 4) * 1e9)
        s = storm.poisson(host, rate_hz=rate, duration_ns=dur, seed=1)
        t0 = time.perf_counter()
        r = storm.run(host, s, "vector")
        vec_s = time.perf_counter() - t0
        # the reference on a slice of the same storm, per event
        part = storm.from_arrays(s.times[:args.slice], s.source_ids[:args.slice], s.sources)
        ref_host = make()
        t0 = time.perf_counter()
        storm.run(ref_host, part, "reference")
        ref_per_event = (time.perf_counter() - t0) / max(len(part), 1)
        bare = bare_numpy(s.times, s.source_ids, len(s.sources))
        # peak memory of one run on a 1M-event chunk
        one = storm.from_arrays(s.times[:1_000_000], s.source_ids[:1_000_000], s.sources)
        tracemalloc.start()
        storm.run(make(), one, "vector")
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        eps = len(s) / vec_s
        print(f"\n{name}")
        print(f"  ledger: {r.ledger}")
        print(f"  vector engine: {len(s):,} events in {vec_s:.2f} s = {eps / 1e6:.2f} M events/s")
        print(f"  reference replay: {1 / ref_per_event:,.0f} events/s on {len(part):,} events; "
              f"vector/reference = {ref_per_event * eps:,.0f}x")
        print(f"  bare numpy pass (gather + bincount): {bare:.3f} s; vector/bare = {vec_s / bare:.1f}x slower")
        print(f"  peak memory: {peak / len(one):.0f} bytes per event (1M-event run, tracemalloc)")
    print(f"\npeak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    big = 5_000_000 if args.quick else 100_000_000
    print(f"\nstreamed run of {big:,} events (lazy storm, 1M-event chunks, in a fresh process):")
    import subprocess

    subprocess.run([sys.executable, __file__, "--stream", str(big)], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
