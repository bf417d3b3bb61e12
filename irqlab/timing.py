"""Every latency the model uses, in integer nanoseconds, with where each default comes from.

Sources: Landau, Ben-Yehuda and Gordon, "SplitX", WIOV 2011, Table 1 (a VM exit + entry ≈2,000 cycles);
the kvm-unit-tests ``vmexit`` figures quoted in Linux commit b7ffc44d5b2e (an exit to QEMU ≈6,200–6,900
cycles). Figures marked *illustrative* have no published source and are round numbers of the right order. Simplification: one fixed cost per step, no jitter, a 3 GHz CPU.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

__all__ = ["Timing", "CPU_GHZ", "cycles_to_ns"]

CPU_GHZ = 3.0


def cycles_to_ns(cycles: float, ghz: float = CPU_GHZ) -> int:
    return int(round(cycles / ghz))


@dataclass(frozen=True)
class Timing:
    """Latencies (ns) of each step of the path. All must be non-negative integers.

    - ``host_irq_ns``: host hard-IRQ entry, flow handler, vfio handler, eventfd_signal and the irqfd fast
      path. No published figure; 1–3 µs is the usual order; we use 1.5 µs (illustrative).
    - ``irqfd_work_ns``: from schedule_work(&irqfd->inject) to irqfd_inject running in a kworker
      (illustrative, 4 µs).
    - ``vmexit_ns``: one VM exit + entry, 2,000 cycles at 3 GHz (SplitX, WIOV 2011, Table 1).
    - ``ipi_ns``: a physical IPI (the kick or the posted-interrupt notification) (illustrative, 0.5 µs).
    - ``vcpu_wakeup_ns``: waking a halted vCPU thread and entering the guest (illustrative, 5 µs).
    - ``posted_delivery_ns``: posted-interrupt processing and virtual-interrupt delivery in guest mode,
      no exit (illustrative, 0.2 µs).
    - ``guest_handler_ns``: the guest's handler before it writes EOI for a level-triggered vector
      (edge vectors are EOI'd when acknowledged, as Linux's handle_edge_irq acks first) (illustrative, 2 µs).
    - ``resample_ns``: the one deferred step of a resample: from virqfd_wakeup's schedule_work(&virqfd->inject)
      to virqfd_inject running vfio's re-send (vfio_send_intx_eventfd) in a kworker, when the unmask found
      the device still asserting (illustrative, 3 µs). The rest of the way back is synchronous in the guest's
      EOI exit, at the EOI's instant: kvm_ioapic_update_eoi, the resampler, the resamplefd's virqfd_wakeup,
      vfio_pci_intx_unmask_handler (the unmask itself) and the clearing of remote IRR.
    - ``exit_to_userspace_ns``: an exit to the VMM (split irqchip EOI), ≈6,500 cycles (kvm-unit-tests
      vmexit "exit to QEMU", commit b7ffc44d5b2e).
    - ``iommu_post_ns``: the IOMMU writing the PIR and sending the notification for a VT-d posted IRTE
      (illustrative, 0.3 µs).
    - ``irq_thread_ns``: from ``__irq_wake_thread`` (wake_up_process of the SCHED_FIFO ``irq/<n>-<name>``
      kthread) to its ``thread_fn`` running (illustrative, 5 µs). An IRQF_ONESHOT line stays masked meanwhile.
    - ``work_ns``: the CPU time of one work item run by a kworker (irqfd_inject, virqfd_inject) on the CPU that
      queued it (illustrative, 1 µs): counted in that CPU's time split, not scheduled (docs/model-time.md).
    """

    host_irq_ns: int = 1_500
    irqfd_work_ns: int = 4_000
    vmexit_ns: int = cycles_to_ns(2_000)
    ipi_ns: int = 500
    vcpu_wakeup_ns: int = 5_000
    posted_delivery_ns: int = 200
    guest_handler_ns: int = 2_000
    resample_ns: int = 3_000
    exit_to_userspace_ns: int = cycles_to_ns(6_500)
    iommu_post_ns: int = 300
    irq_thread_ns: int = 5_000
    work_ns: int = 1_000

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"Timing.{f.name} must be an int number of ns, got {type(v).__name__}")
            if v < 0:
                raise ValueError(f"Timing.{f.name} must be >= 0 ns, got {v}")

    @property
    def kick_ns(self) -> int:
        """A running vCPU without APICv: kick IPI, VM exit, injection at the next entry."""
        return self.ipi_ns + self.vmexit_ns

    def replace(self, **changes: int) -> "Timing":
        return replace(self, **changes)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)
