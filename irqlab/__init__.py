"""irqlab: how Linux delivers the interrupts of a PCI device passed through to a KVM guest, as a running model.

KVM is a subscriber, not an interceptor: the host's genirq layer takes every physical interrupt and
dispatches it through its descriptor table; only a passed-through device's interrupts reach vfio-pci's
handler, which signals an eventfd; KVM's irqfd listens on that eventfd, looks the GSI up in its routing
table and injects a virtual interrupt into a vCPU's local APIC.

    >>> import irqlab
    >>> host = irqlab.scenarios.switchboard()
    >>> print(host.raise_msi("0000:03:00.0", 0))          # doctest: +SKIP
"""
from __future__ import annotations

from . import uapi
from .errors import KernelError
from .eventfd import Eventfd
from .host import Host
from .kvm import msi
from .kvm.irqchip import RoutingEntry, irqchip_route, msi_route
from .ledger import Outcome
from .timing import Timing
from .trace import Hop, Journey
from .uapi import *  # noqa: F401,F403  (the kernel's constants, with the kernel's values)

__version__ = "0.1.0"

__all__ = ["Host", "Eventfd", "KernelError", "Timing", "Journey", "Hop", "Outcome", "RoutingEntry",
           "msi_route", "irqchip_route", "msi", "scenarios", "storm", "procfs", "__version__"] + list(uapi.__all__)


def __getattr__(name: str):  # lazy submodules: scenarios, storm, procfs, viz, widgets, check
    import importlib

    if name in ("scenarios", "storm", "procfs", "viz", "widgets", "check", "genirq", "spurious", "vfio", "pci"):
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'irqlab' has no attribute {name!r}")
