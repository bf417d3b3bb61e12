"""arch/x86/kernel/apic/vector.c at boot: ``nr_irqs``, how many interrupt descriptors x86-64 Linux 6.18 sizes for,
and so how wide the first column of /proc/interrupts is.

Models arch/x86/kernel/apic/vector.c ``arch_probe_nr_irqs``, kernel/irq/irqdesc.c ``early_irq_init`` and
arch/x86/include/asm/irq_vectors.h ``NR_IRQS``. Simplification: the boot value only; with CONFIG_SPARSE_IRQ
(x86-64 selects it) ``__irq_alloc_descs`` grows ``nr_irqs`` later (``irq_expand_nr_irqs``) when a driver allocates
a descriptor past it, which the model does not do.

The rule, for a machine whose IO-APICs end at GSI ``gsi_top - 1`` (``gsi_top`` = last GSI + 1, set as the MADT's
IO-APICs are registered, before ``early_irq_init`` runs)::

    nr_irqs = NR_IRQS                                    /* irq_vectors.h: 256 + max(64 * NR_CPUS, 32 * MAX_IO_APICS) */
    if (nr_irqs > NR_VECTORS * nr_cpu_ids) nr_irqs = NR_VECTORS * nr_cpu_ids;
    nr = (gsi_top + nr_legacy_irqs()) + 8 * nr_cpu_ids;
    nr += gsi_top <= NR_IRQS_LEGACY ? 8 * nr_cpu_ids : gsi_top * 16;     /* CONFIG_PCI_MSI */
    if (nr < nr_irqs) nr_irqs = nr;
    return legacy_pic->probe();                          /* "preallocated irqs": 16 with an 8259, 0 without */

``nr_legacy_irqs()`` is 16 (``NR_IRQS_LEGACY``) with the PC's 8259 and 0 with the null legacy PIC (hardware-reduced
ACPI, e.g. Firecracker). ``early_irq_init`` then prints ``"NR_IRQS: %d, nr_irqs: %d, preallocated irqs: %d"`` and
raises ``nr_irqs`` to the preallocated count if that is larger.
"""
from __future__ import annotations

__all__ = ["MAX_IO_APICS", "NR_CPUS_DEFAULT", "NR_IRQS_LEGACY", "NR_VECTORS", "arch_probe_nr_irqs",
           "boot_nr_irqs", "config_nr_irqs", "early_irq_init_line"]

#: arch/x86/include/asm/irq_vectors.h
NR_VECTORS = 256
NR_IRQS_LEGACY = 16
#: arch/x86/include/asm/apicdef.h, x86-64
MAX_IO_APICS = 128
#: arch/x86/Kconfig ``NR_CPUS_DEFAULT`` for SMP x86-64 without MAXSMP (MAXSMP kernels, as most distributions build,
#: have 8192; any value of at least ``nr_cpu_ids`` gives the same ``nr_irqs`` for the machines the model builds).
NR_CPUS_DEFAULT = 64


def _int(name: str, value: object, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be at least {low}, got {value}")
    return value


def config_nr_irqs(nr_cpus: int = NR_CPUS_DEFAULT, *, pci_msi: bool = True) -> int:
    """``NR_IRQS`` for CONFIG_NR_CPUS=``nr_cpus`` on x86-64 with CONFIG_X86_IO_APIC (and CONFIG_PCI_MSI)."""
    _int("nr_cpus", nr_cpus, 1)
    cpu_limit, ioapic_limit = 64 * nr_cpus, 32 * MAX_IO_APICS
    if pci_msi:
        return NR_VECTORS + max(cpu_limit, ioapic_limit)
    return NR_VECTORS + ioapic_limit


def arch_probe_nr_irqs(nr_cpu_ids: int, *, gsi_top: int, nr_legacy_irqs: int = NR_IRQS_LEGACY,
                       nr_cpus: int = NR_CPUS_DEFAULT, pci_msi: bool = True) -> tuple[int, int]:
    """``(nr_irqs, preallocated)`` as vector.c ``arch_probe_nr_irqs`` leaves them (before ``early_irq_init``'s fix-up).

    ``nr_legacy_irqs`` is the legacy PIC's count, 16 or 0; the probe's return (the preallocated descriptors) is the
    same number (``probe_8259A`` returns ``nr_legacy_irqs()``; the null PIC's probe returns 0).
    """
    _int("nr_cpu_ids", nr_cpu_ids, 1)
    _int("gsi_top", gsi_top, 0)
    if nr_legacy_irqs not in (0, NR_IRQS_LEGACY) or isinstance(nr_legacy_irqs, bool):
        raise ValueError(f"nr_legacy_irqs is {NR_IRQS_LEGACY} (an 8259) or 0 (the null legacy PIC), "
                         f"not {nr_legacy_irqs!r}")
    if _int("nr_cpus", nr_cpus, 1) < nr_cpu_ids:
        raise ValueError(f"nr_cpu_ids ({nr_cpu_ids}) cannot exceed CONFIG_NR_CPUS ({nr_cpus})")
    nr_irqs = config_nr_irqs(nr_cpus, pci_msi=pci_msi)
    if nr_irqs > NR_VECTORS * nr_cpu_ids:
        nr_irqs = NR_VECTORS * nr_cpu_ids
    nr = (gsi_top + nr_legacy_irqs) + 8 * nr_cpu_ids
    if pci_msi:  # "for MSI and HT dyn irq"
        nr += 8 * nr_cpu_ids if gsi_top <= NR_IRQS_LEGACY else gsi_top * 16
    if nr < nr_irqs:
        nr_irqs = nr
    return nr_irqs, nr_legacy_irqs


def boot_nr_irqs(nr_cpu_ids: int, *, gsi_top: int = 24, nr_legacy_irqs: int = NR_IRQS_LEGACY,
                 nr_cpus: int = NR_CPUS_DEFAULT, pci_msi: bool = True) -> int:
    """``nr_irqs`` after irqdesc.c ``early_irq_init``; the defaults are the model's host (one 24-pin IO-APIC, an 8259).

    ``early_irq_init`` keeps the probe's value unless the preallocated count is larger (``if (initcnt > nr_irqs)
    nr_irqs = initcnt;``); MAX_SPARSE_IRQS is INT_MAX, so its caps never apply here.
    """
    nr_irqs, initcnt = arch_probe_nr_irqs(nr_cpu_ids, gsi_top=gsi_top, nr_legacy_irqs=nr_legacy_irqs,
                                          nr_cpus=nr_cpus, pci_msi=pci_msi)
    return max(nr_irqs, initcnt)


def early_irq_init_line(nr_cpu_ids: int, *, gsi_top: int = 24, nr_legacy_irqs: int = NR_IRQS_LEGACY,
                        nr_cpus: int = NR_CPUS_DEFAULT) -> str:
    """The boot log line irqdesc.c ``early_irq_init`` prints (after ``arch_probe_nr_irqs``, before its fix-up)."""
    nr_irqs, initcnt = arch_probe_nr_irqs(nr_cpu_ids, gsi_top=gsi_top, nr_legacy_irqs=nr_legacy_irqs,
                                          nr_cpus=nr_cpus)
    return f"NR_IRQS: {config_nr_irqs(nr_cpus)}, nr_irqs: {nr_irqs}, preallocated irqs: {initcnt}"
