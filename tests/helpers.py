"""Small shared handlers and helpers for the tests."""
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
