"""The outcome ledger: every interrupt raised ends in exactly one outcome, and the counts add up.

Not a kernel structure: it is the course's bookkeeping over the places where the kernel consumes,
drops or merges an interrupt (each outcome names the function where that happens). Simplification:
an interrupt merged into another one (coalesced) ends there; the one it merged into carries on.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

__all__ = ["Outcome", "OUTCOME_TEXT", "OUTCOME_WHERE", "Ledger"]


class Outcome(IntEnum):
    IN_FLIGHT = 0
    HANDLED_HOST = 1
    UNHANDLED = 2
    NO_HANDLER = 3
    DISABLED = 4
    PENDING = 5
    MASKED = 6
    USERSPACE = 7
    NO_TRIGGER = 8
    COALESCED_IRQFD = 9
    NO_ROUTE = 10
    COALESCED_IOAPIC = 11
    COALESCED_IRR = 12
    COALESCED_PIR = 13
    INJECTED = 14
    POSTED = 15
    CLOSED_EVENTFD = 16
    COALESCED_APIC = 17

    @property
    def label(self) -> str:
        return self.name.lower()


OUTCOME_TEXT = {
    Outcome.IN_FLIGHT: "still in flight",
    Outcome.HANDLED_HOST: "handled by a host driver",
    Outcome.UNHANDLED: "unhandled: every action returned IRQ_NONE",
    Outcome.NO_HANDLER: "no irq handler for the vector (no action on the line)",
    Outcome.DISABLED: "dropped: the line was disabled and masked",
    Outcome.PENDING: "left pending (IRQS_PENDING) on a disabled line",
    Outcome.MASKED: "absorbed by a masked INTx line (DisINTx set, status already pending)",
    Outcome.USERSPACE: "signalled to an eventfd no kernel subscriber consumes (left for userspace)",
    Outcome.NO_TRIGGER: "claimed by vfio with no trigger eventfd set",
    Outcome.COALESCED_IRQFD: "coalesced at the irqfd: inject work already pending",
    Outcome.NO_ROUTE: "dropped: the GSI has no route or the message no destination",
    Outcome.COALESCED_IOAPIC: "coalesced at the IOAPIC pin (remote IRR set)",
    Outcome.COALESCED_IRR: "coalesced in the vCPU's IRR (vector already pending)",
    Outcome.COALESCED_PIR: "coalesced in the posted-interrupt descriptor's PIR",
    Outcome.INJECTED: "injected: acknowledged by the guest",
    Outcome.POSTED: "posted: acknowledged by the guest without the host's handler",
    Outcome.CLOSED_EVENTFD: "signalled to an eventfd userspace has closed: counted on the context vfio still "
                            "holds, read by nobody",
    Outcome.COALESCED_APIC: "merged in a host CPU's local APIC: its vector was already waiting in the IRR while "
                            "the CPU was in hard-IRQ context",
}

OUTCOME_WHERE = {
    Outcome.HANDLED_HOST: ("handle_irq_event_percpu", "kernel/irq/handle.c"),
    Outcome.UNHANDLED: ("note_interrupt", "kernel/irq/spurious.c"),
    Outcome.NO_HANDLER: ("common_interrupt", "arch/x86/kernel/irq.c"),
    Outcome.DISABLED: ("handle_edge_irq", "kernel/irq/chip.c"),
    Outcome.PENDING: ("irq_can_handle_actions", "kernel/irq/chip.c"),
    Outcome.MASKED: ("pci_check_and_mask_intx", "drivers/pci/irq.c"),
    Outcome.USERSPACE: ("eventfd_signal_mask", "fs/eventfd.c"),
    Outcome.NO_TRIGGER: ("vfio_intx_handler", "drivers/vfio/pci/vfio_pci_intrs.c"),
    Outcome.COALESCED_IRQFD: ("queue_work_on", "kernel/workqueue.c"),
    Outcome.NO_ROUTE: ("kvm_set_irq", "virt/kvm/irqchip.c"),
    Outcome.COALESCED_IOAPIC: ("ioapic_set_irq", "arch/x86/kvm/ioapic.c"),
    Outcome.COALESCED_IRR: ("__apic_accept_irq", "arch/x86/kvm/lapic.c"),
    Outcome.COALESCED_PIR: ("pi_test_and_set_pir", "arch/x86/include/asm/posted_intr.h"),
    Outcome.INJECTED: ("kvm_apic_ack_interrupt", "arch/x86/kvm/lapic.c"),
    Outcome.POSTED: ("kvm_apic_ack_interrupt", "arch/x86/kvm/lapic.c"),
    Outcome.CLOSED_EVENTFD: ("eventfd_signal_mask", "fs/eventfd.c"),
    Outcome.COALESCED_APIC: ("local APIC: IRR", "(hardware)"),
}

N_OUTCOMES = len(Outcome)


@dataclass
class Ledger:
    """Counts of outcomes; ``raised == sum(counts)`` always (IN_FLIGHT included)."""

    raised: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * N_OUTCOMES

    def raise_one(self) -> None:
        self.raised += 1
        self.counts[Outcome.IN_FLIGHT] += 1

    def settle(self, outcome: Outcome) -> None:
        if outcome == Outcome.IN_FLIGHT:
            raise ValueError("cannot settle an interrupt as IN_FLIGHT")
        self.counts[Outcome.IN_FLIGHT] -= 1
        self.counts[outcome] += 1

    def unsettle(self, outcome: Outcome) -> None:
        """An interrupt left PENDING is replayed: it is in flight again."""
        self.counts[outcome] -= 1
        self.counts[Outcome.IN_FLIGHT] += 1

    def as_dict(self, nonzero: bool = True) -> dict[str, int]:
        return {o.label: c for o, c in zip(Outcome, self.counts) if c or not nonzero}

    def check(self) -> None:
        if sum(self.counts) != self.raised or min(self.counts) < 0:
            raise AssertionError(f"ledger does not add up: raised {self.raised}, outcomes {self.as_dict()}")

    def __str__(self) -> str:
        w = max(len(o.label) for o in Outcome)
        lines = [f"{o.label:<{w}}  {c:>12,}   {OUTCOME_TEXT[o]}" for o, c in zip(Outcome, self.counts) if c]
        lines.append(f"{'total':<{w}}  {sum(self.counts):>12,}   = raised {self.raised:,}")
        return "\n".join(lines)
