"""One truth, two engines: for random scenarios, timings, vCPU modes, storms and chunk sizes, the vector
engine and the one-by-one replay return identical results, and the ledger adds up."""
from hypothesis import HealthCheck, given, settings, strategies as st

from irqlab import Timing, scenarios, storm
from irqlab.storm import Source

timings = st.builds(Timing, host_irq_ns=st.integers(0, 3000), vmexit_ns=st.integers(1, 2000),
                    ipi_ns=st.integers(0, 1000), vcpu_wakeup_ns=st.integers(1, 20_000),
                    posted_delivery_ns=st.integers(1, 500), iommu_post_ns=st.integers(0, 500))


def build(kind, timing, queues, mode):
    if kind == "msix":
        return scenarios.msix_nic(queues, timing=timing, trace=False, vcpu_mode=mode)
    if kind == "apicv":
        return scenarios.msix_nic(queues, timing=timing, trace=False, apicv=True, vcpu_mode=mode)
    if kind == "posted":
        return scenarios.posted_nic(queues, timing=timing, trace=False, vcpu_mode=mode)
    if kind == "switchboard":
        return scenarios.switchboard(timing=timing, trace=False)
    h = scenarios.shared_intx(timing=timing, trace=False)
    return h


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["msix", "apicv", "posted", "switchboard", "shared"]), timings, st.integers(1, 4),
       st.sampled_from(["running", "halted"]), st.integers(0, 2**31), st.sampled_from([1_000, 100_000, 2_000_000]),
       st.integers(1, 3_000), st.sampled_from([1, 7, 64, 1_000_000]))
def test_vector_equals_reference(kind, timing, queues, mode, seed, rate, n, chunk):
    h1, h2 = build(kind, timing, queues, mode), build(kind, timing, queues, mode)
    if kind == "shared":
        srcs = [Source("spurious", irq=16), Source("intx", "0000:00:19.0")]
    else:
        srcs = [s for s in storm.sources(h1) if s.kind == "msi"]
    dur = max(1, int(n / (rate * len(srcs)) * 1e9))
    s = storm.poisson(h1, rate_hz=rate, duration_ns=dur, sources=srcs, seed=seed)
    a = storm.run(h1, s, "vector", chunk_events=chunk)
    b = storm.run(h2, s, "reference")
    assert a.equals(b), a.diff(b)
    assert sum(a.ledger.values()) == len(s)
    assert h1.proc_interrupts() == h2.proc_interrupts()
    h1.ledger.check()
    h2.ledger.check()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 12), st.integers(1, 10), st.booleans(), st.sampled_from(["running", "halted"]),
       st.integers(0, 2**31), st.sampled_from([13, 1_000_000]))
def test_many_vcpus_and_queues(queues, nvcpus, posted, mode, seed, chunk):
    make = lambda: scenarios.msix_nic(queues, trace=False, nvcpus=nvcpus, posted=posted, vcpu_mode=mode)
    h1, h2 = make(), make()
    s = storm.poisson(h1, rate_hz=200_000, duration_ns=2_000_000, seed=seed)
    a = storm.run(h1, s, "vector", chunk_events=chunk)
    b = storm.run(h2, s, "reference")
    assert a.equals(b), a.diff(b)
