"""Storm benchmark, in one run: the vector engine's events/s end to end (every result computed), its ratio to
the one-by-one reference replay (timed on a slice, per event) and to a bare numpy pass over the same arrays
(one gather + one bincount), the peak memory per event of a one-chunk run, and the peak RSS of a streamed
100-million-event run.

    python benchmarks/storm.py            # 10-million-event storms, a 100-million-event streamed run
    python benchmarks/storm.py --quick    # 1 million and 5 million (a smoke run)

The three storms: "heavy coalescing" is a 4-queue MSI-X NIC passed through (vfio-pci, irqfd fast path) to a
2-vCPU guest whose vCPUs are halted, at 2.5 M interrupts/s per queue: each queue's CPU takes at most one per
1.5 µs hard IRQ (the rest merge in its local APIC), and ~25 of those that reach a vCPU coalesce in each 5 µs
wake-up window. "Little coalescing" is the same NIC with VT-d posting to running vCPUs at 250 k/s per queue: a
200 ns posted-delivery window rarely holds two. "Shared CPUs" is scenarios.switchboard(tuned=False): a disk and a
4-queue NIC on host drivers and a GPU passed through to a 2-vCPU guest whose running vCPUs share CPUs with them, at
100 k/s per source: host interrupts land under the vCPUs (external-interrupt exits), the GPU's kicks are
reschedule IPIs, and each CPU's busy periods are computed one arrival at a time (a fifth of the events).
Every figure is printed with the storm it was measured on. The hosts are untuned (``tuned=False``): device
vectors where the vector allocator puts them, on the vCPUs' CPUs too.
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from irqlab import scenarios, storm  # noqa: E402

CASES = [   # (short name, description, host, rate per source, share of the storm size)
    ("heavy coalescing", "msix_nic(4) via vfio + irqfd fast path, halted vCPUs, 2.5 M/s per queue (APIC and IRR "
     "coalescing)", lambda: scenarios.msix_nic(4, trace=False, tuned=False, vcpu_mode="halted"), 2_500_000, 1),
    ("little coalescing", "posted_nic(4), VT-d posting to running vCPUs, 250 k/s per queue",
     lambda: scenarios.posted_nic(4, trace=False, tuned=False), 250_000, 1),
    ("shared CPUs", "switchboard(tuned=False): disk + 4-queue NIC on host drivers, GPU passed through, 2 running vCPUs "
     "on their CPUs, 100 k/s per source (exits, RES kicks)", lambda: scenarios.switchboard(tuned=False), 100_000, 5),
]
STREAMED = "heavy coalescing"   # the storm of the streamed run


def bare_numpy(ids: np.ndarray, nsrc: int) -> float:
    """One gather plus one bincount over the same arrays: the floor any engine pays."""
    table = np.arange(nsrc, dtype=np.int64) * 3
    best = 1e9
    for _ in range(3):
        t0 = time.perf_counter()
        np.bincount(table[ids], minlength=3 * nsrc)
        best = min(best, time.perf_counter() - t0)
    return best


def vmhwm_mb() -> float:
    """This process's peak RSS (VmHWM), in MB."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def streamed(n: int) -> int:
    """A lazy storm of ``n`` events through the vector engine, chunk by chunk; prints its own peak RSS."""
    _, _, make, rate, _ = next(c for c in CASES if c[0] == STREAMED)
    host = make()
    nsrc = len(storm.poisson(host, rate_hz=rate, duration_ns=1, seed=1).sources)
    s = storm.poisson(host, rate_hz=rate, duration_ns=int(n / (rate * nsrc) * 1e9), seed=1, lazy=True,
                      slice_ns=100_000_000)
    t0 = time.perf_counter()
    r = storm.run(host, s, "vector", progress=False)
    el = time.perf_counter() - t0
    print(f"  streamed ({STREAMED}): {len(r):,} events in {el:.1f} s ({len(r) / el / 1e6:.2f} M events/s, "
          f"generation included); ledger {r.ledger}; peak RSS {vmhwm_mb():,.0f} MB")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 million events per storm, 5 million streamed")
    ap.add_argument("--slice", type=int, default=20_000, help="events replayed by the reference engine")
    ap.add_argument("--stream", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.stream:
        return streamed(args.stream)
    n = 1_000_000 if args.quick else 10_000_000
    print(f"irqlab storm benchmark: {n:,} events per storm, numpy {np.__version__}, chunks of "
          f"{storm.DEFAULT_CHUNK:,} events")
    table = []
    for name, desc, make, rate, share in CASES:
        host = make()
        ns = n // share
        nsrc = len(storm.poisson(host, rate_hz=rate, duration_ns=1, seed=1).sources)
        s = storm.poisson(host, rate_hz=rate, duration_ns=int(ns / (rate * nsrc) * 1e9), seed=1)
        t0 = time.perf_counter()
        r = storm.run(host, s, "vector", progress=False)
        vec_s = time.perf_counter() - t0
        eps = len(s) / vec_s
        # the reference on a slice of the same storm, per event (and the vector engine agrees on it)
        part = storm.from_arrays(s.times[:args.slice], s.source_ids[:args.slice], s.sources)
        t0 = time.perf_counter()
        ref = storm.run(make(), part, "reference", progress=False)
        ref_per_event = (time.perf_counter() - t0) / max(len(part), 1)
        same = storm.run(make(), part, "vector", progress=False).equals(ref)
        bare = bare_numpy(s.source_ids, len(s.sources))
        # peak memory of a run of exactly one chunk (the storm's own arrays are not counted)
        m = min(len(s), storm.DEFAULT_CHUNK // share)   # (tracemalloc's own records of a slow storm's objects: less)
        one = storm.from_arrays(s.times[:m].copy(), s.source_ids[:m].copy(), s.sources)
        h1 = make()
        tracemalloc.start()
        storm.run(h1, one, "vector", progress=False)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"\n{name}: {desc}")
        print(f"  ledger: {r.ledger}")
        print(f"  vector engine: {len(s):,} events in {vec_s:.2f} s = {eps / 1e6:.2f} M events/s end to end")
        print(f"  reference replay: {1 / ref_per_event:,.0f} events/s on {len(part):,} events "
              f"(identical results: {same}); vector/reference = {ref_per_event * eps:,.0f}x")
        print(f"  bare numpy pass (one gather + one bincount): {bare * 1e3:.0f} ms = {len(s) / bare / 1e6:.0f} M "
              f"events/s; vector/bare = {vec_s / bare:.1f}x the time")
        print(f"  peak memory ({name}): {peak / m:.0f} bytes per event (a {m:,}-event chunk, tracemalloc)")
        table.append((name, len(s), eps, ref_per_event * eps, peak / m, same))
    print("\nstorm               events        M events/s   vector/reference   bytes/event (one chunk)   identical")
    for name, ne, eps, ratio, bpe, same in table:
        print(f"{name:<19} {ne:>12,}  {eps / 1e6:>10.2f}   {ratio:>14,.0f}x   {bpe:>20.0f}        {same}")
    print(f"\npeak RSS of this process (all {len(CASES)} storms above): {vmhwm_mb():,.0f} MB")
    big = 5_000_000 if args.quick else 100_000_000
    print(f"\nstreamed run of {big:,} events of the {STREAMED} storm (storm.poisson(lazy=True), engine chunks of "
          f"{storm.DEFAULT_CHUNK:,}), in a fresh process:", flush=True)
    subprocess.run([sys.executable, __file__, "--stream", str(big)], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
