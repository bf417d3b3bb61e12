"""Small shared handlers and helpers for the tests."""
import os
import time

import pytest

from irqlab import IRQ_HANDLED, IRQ_NONE, KernelError, msi, msi_route


def handled(irq, dev_id):
    return IRQ_HANDLED


def unhandled(irq, dev_id):
    return IRQ_NONE


def err(fn, *a, **k):
    """The errno of the KernelError that fn(*a, **k) must raise."""
    with pytest.raises(KernelError) as e:
        fn(*a, **k)
    return e.value.errno


def route(gsi, dest=0, vector=0x41, **kw):
    """A KVM MSI route for gsi, encoded as the device would write it."""
    m = msi.encode(dest_id=dest, vector=vector, **kw)
    return msi_route(gsi, m.address_lo, m.data, m.address_hi)


#: lines the fuzzers report at the end of the run (conftest.py prints them)
FUZZ_REPORT: list = []
#: make fuzz: how long the fuzzers hunt (0: the fixed-seed run of make test)
FUZZ_SECONDS = float(os.environ.get("IRQLAB_FUZZ_SECONDS", "0") or 0)


def fuzz_for(seconds, *given_tests):
    """Run hypothesis tests again and again, fresh random examples each time, for ``seconds``; returns how many
    runs (each of the tests' max_examples) passed."""
    end, runs = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        for test in given_tests:
            test()
            runs += 1
    return runs
