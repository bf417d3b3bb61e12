import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import pytest
from hypothesis import settings

# `make test` and CI draw the same examples every run, so a failure reproduces and the storm coverage check
# cannot flake; IRQLAB_STORM_EXAMPLES=N (N > 1) hunts with fresh random draws, N times as many, and
# IRQLAB_FUZZ_SECONDS=N (make fuzz) hunts with fresh draws for N seconds (tests/helpers.py fuzz_for).
settings.register_profile("irqlab", derandomize=float(os.environ.get("IRQLAB_STORM_EXAMPLES", "1")) <= 1
                          and not float(os.environ.get("IRQLAB_FUZZ_SECONDS", "0") or 0) > 0)
settings.load_profile("irqlab")

import irqlab


@pytest.fixture
def host():
    return irqlab.Host(ncpus=4)


@pytest.fixture
def vm(host):
    """A VM with the full in-kernel irqchip (PIC, IOAPIC, default routing) and two vCPUs."""
    return host.create_vm(nvcpus=2, irqchip="full")


@pytest.fixture
def line(host):
    """An IO-APIC level line (GSI 16) with no actions yet."""
    return host.alloc_irq(16, level=True)


@pytest.fixture
def msi_line(host):
    return host.alloc_irq(None, chip_name="IR-PCI-MSIX-0000:01:00.0", hwirq=0, level=False, oneshot_safe=True)


def pytest_terminal_summary(terminalreporter):
    """The fuzzers' summaries (how many sequences and storms ran clean), even under -q."""
    from helpers import FUZZ_REPORT

    for line in FUZZ_REPORT:
        terminalreporter.write_line(line)
