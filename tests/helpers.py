"""Small shared handlers for the tests."""
from irqlab import IRQ_HANDLED, IRQ_NONE


def handled(irq, dev_id):
    return IRQ_HANDLED


def unhandled(irq, dev_id):
    return IRQ_NONE
