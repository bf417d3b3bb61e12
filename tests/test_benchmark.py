"""The benchmark runs and prints its figures (the figures themselves are checked by people, not tests)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_quick_prints_figures():
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "storm.py"), "--quick", "--slice", "2000"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    for needle in ("M events/s", "vector/reference", "vector/bare", "bytes per event", "peak RSS",
                   "streamed (heavy coalescing):"):
        assert needle in r.stdout
    for storm in ("heavy coalescing", "little coalescing", "shared CPUs"):   # each figure names its storm
        assert f"peak memory ({storm}):" in r.stdout and f"\n{storm} " in r.stdout
