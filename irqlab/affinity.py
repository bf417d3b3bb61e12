"""IRQ affinity: cpumasks as /proc/irq/<n>/ prints and parses them, irq_set_affinity, and the files themselves.

Models kernel/irq/proc.c (``show_irq_affinity``, ``write_irq_affinity``, ``irq_spurious_proc_show``), kernel/irq/
manage.c (``irq_can_set_affinity_usr``, ``irq_set_affinity`` → ``irq_do_set_affinity``), arch/x86/kernel/apic/
vector.c (``apic_set_affinity`` → ``assign_vector_locked``: no move when the current CPU is in the new mask, else
``irq_matrix_alloc`` takes the CPU of the mask with the most free vectors; the effective affinity is that one CPU),
lib/bitmap-str.c (``bitmap_parse``, ``bitmap_parselist``) and lib/vsprintf.c (``%*pb``, ``%*pbl``).
Simplification: every CPU is online; a move is done at once — the old vector is released when what already waits
for it on the old CPU has been taken (the kernel keeps it until the first interrupt arrives on the new one,
``move_in_progress``, and queues a second move meanwhile: ``irq_set_affinity_pending``).
"""
from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any, Iterable

from .errors import KernelError
from .uapi import IRQF_PERCPU

if TYPE_CHECKING:
    from .kernel import Kernel

__all__ = ["cpumask_parse", "cpulist_parse", "cpumask_print", "cpulist_print", "to_cpumask",
           "irq_set_affinity", "proc_irq_files", "write_irq_affinity", "PROC_IRQ_FILES"]

IRQF_NOBALANCING = 0x00000800  # include/linux/interrupt.h
PROC_IRQ_FILES = ("smp_affinity", "smp_affinity_list", "affinity_hint", "effective_affinity",
                  "effective_affinity_list", "spurious")


def _einval(what: str) -> KernelError:
    return KernelError(errno.EINVAL, what)


def cpumask_parse(text: str, nbits: int) -> set[int]:
    """lib/bitmap-str.c bitmap_parse: hex digits, 32 bits per comma-separated group (the last group the lowest),
    up to the newline; -EINVAL for a character that is not a hex digit, -EOVERFLOW for a group of more than 8
    digits, more groups than ``nbits`` needs, or a bit set at ``nbits`` or above."""
    end = text.find("\n")
    s = text if end < 0 else text[:end]
    chunks = (nbits + 31) // 32
    mask = 0
    i = len(s) - 1
    chunk = 0
    while True:
        while i >= 0 and (s[i].isspace() or s[i] == ","):  # bitmap_find_region_reverse
            i -= 1
        if i < 0:
            break
        if chunk == chunks:
            raise KernelError(errno.EOVERFLOW, f"cpumask {text!r}: more 32-bit groups than {nbits} CPUs need")
        val, n = 0, 0
        while True:  # bitmap_get_x32_reverse
            c = s[i]
            if c not in "0123456789abcdefABCDEF":
                raise _einval(f"cpumask {text!r}: {c!r} is not a hex digit")
            val |= int(c, 16) << (4 * n)
            n += 1
            i -= 1
            if i < 0 or s[i].isspace() or s[i] == ",":
                break
            if n == 8:  # a ninth hex digit overflows; any other character is passed over (as the kernel does)
                if s[i] in "0123456789abcdefABCDEF":
                    raise KernelError(errno.EOVERFLOW, f"cpumask {text!r}: a group of more than 8 hex digits")
                i -= 1
                break
        mask |= val << (32 * chunk)
        chunk += 1
    if mask >> nbits:
        raise KernelError(errno.EOVERFLOW, f"cpumask {text!r}: a CPU at {nbits} or above (nr_cpu_ids is {nbits})")
    return {b for b in range(nbits) if mask >> b & 1}


def _getnum(s: str, i: int, lastbit: int) -> tuple[int, int]:
    """bitmap_getnum: a decimal number (or N, the last bit); -EINVAL without digits, -EOVERFLOW past u32."""
    if i < len(s) and s[i] == "N":
        return lastbit, i + 1
    j = i
    while j < len(s) and s[j].isdigit():
        j += 1
    if j == i:
        raise _einval(f"cpulist {s!r}: a number is expected at position {i}")
    n = int(s[i:j])
    if n >= 1 << 32:
        raise KernelError(errno.EOVERFLOW, f"cpulist {s!r}: {s[i:j]} does not fit in 32 bits")
    return n, j


def cpulist_parse(text: str, nbits: int) -> set[int]:
    """lib/bitmap-str.c bitmap_parselist: comma-separated ``N``, ``A-B``, ``A-B:used/group``, ``all`` and ``N`` for the
    last CPU; -EINVAL for a malformed region or group (start > end, group 0, used > group), -ERANGE for a CPU at
    ``nbits`` or above, -EOVERFLOW for a number past 32 bits."""
    end = text.find("\n")
    s = text if end < 0 else text[:end]
    lastbit = nbits - 1
    mask: set[int] = set()
    i = 0

    def end_of_region(k: int) -> bool:
        return k >= len(s) or s[k].isspace() or s[k] == ","

    while True:
        while i < len(s) and (s[i].isspace() or s[i] == ","):   # bitmap_find_region
            i += 1
        if i >= len(s):
            return mask
        if s[i:i + 3].lower() == "all":
            start, stop, i = 0, lastbit, i + 3
        else:
            start, i = _getnum(s, i, lastbit)
            stop = start
            if not end_of_region(i):
                if s[i] != "-":
                    raise _einval(f"cpulist {text!r}: {s[i]!r} where '-', ',' or the end was expected")
                stop, i = _getnum(s, i + 1, lastbit)
        off, group = stop + 1, stop + 1
        if not end_of_region(i):
            if s[i] != ":":
                raise _einval(f"cpulist {text!r}: {s[i]!r} where ':', ',' or the end was expected")
            off, i = _getnum(s, i + 1, lastbit)
            if i >= len(s) or s[i] != "/":
                raise _einval(f"cpulist {text!r}: a '/' is expected after the used count")
            group, i = _getnum(s, i + 1, lastbit)   # what follows is parsed as the next region
        if start > stop or group == 0 or off > group:   # bitmap_check_region
            raise _einval(f"cpulist {text!r}: region {start}-{stop}:{off}/{group} is malformed")
        if stop >= nbits:
            raise KernelError(errno.ERANGE, f"cpulist {text!r}: CPU {stop} is not below nr_cpu_ids ({nbits})")
        b = start
        while b <= stop:   # bitmap_set_region
            mask.update(range(b, min(stop + 1, b + off)))
            b += group


def cpumask_print(cpus: Iterable[int], nbits: int) -> str:
    """lib/vsprintf.c bitmap_string (``%*pb``): 32-bit groups in hex, the highest first, comma-separated; the first
    group as wide as its bits need, the others 8 digits."""
    mask = 0
    for c in cpus:
        mask |= 1 << c
    out = []
    chunksz = nbits % 32 or 32
    i = ((nbits + 31) // 32) * 32 - 32
    while i >= 0:
        val = (mask >> i) & ((1 << chunksz) - 1)
        out.append(f"{val:0{(chunksz + 3) // 4}x}")
        chunksz = 32
        i -= 32
    return ",".join(out)


def cpulist_print(cpus: Iterable[int]) -> str:
    """lib/vsprintf.c bitmap_list_string (``%*pbl``): ranges ``a-b`` and single CPUs, comma-separated."""
    out, run = [], []
    for c in sorted(set(cpus)):
        if run and c == run[-1] + 1:
            run.append(c)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [c]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def to_cpumask(cpus: Any, what: str = "cpus") -> set[int]:
    """A Python cpumask: one CPU number or an iterable of them (checked: ints >= 0)."""
    if isinstance(cpus, bool):
        raise TypeError(f"{what} must be a CPU number or an iterable of CPU numbers, not a bool")
    if hasattr(cpus, "__index__"):
        cpus = [cpus]
    elif isinstance(cpus, (str, bytes)) or not hasattr(cpus, "__iter__"):
        raise TypeError(f"{what} must be a CPU number or an iterable of CPU numbers, not {type(cpus).__name__} "
                        "(a string goes to host.write_proc_irq)")
    out = set()
    for c in cpus:
        if isinstance(c, bool) or not hasattr(c, "__index__"):
            raise TypeError(f"{what} must hold CPU numbers (ints), not {type(c).__name__}")
        if int(c) < 0:
            raise ValueError(f"a CPU number is >= 0, not {int(c)}")
        out.add(int(c))
    return out


def _can_set_affinity_usr(desc: Any) -> bool:
    """irq_can_set_affinity_usr: a chip with irq_set_affinity, not IRQD_PER_CPU / IRQD_NO_BALANCING (set by the
    first action's IRQF_PERCPU / IRQF_NOBALANCING), not managed (the model has no managed interrupts)."""
    if desc.chip_name is None:
        return False
    if desc.actions and desc.actions[0].flags & (IRQF_PERCPU | IRQF_NOBALANCING):
        return False
    return True


def irq_set_affinity(host: "Kernel", irq: Any, cpus: Any) -> int:
    """kernel/irq/manage.c irq_set_affinity(irq, cpumask): -EINVAL when no CPU of the mask is online or the chip
    cannot move it; the vector stays where it is if its CPU is in the mask (assign_vector_locked), else it moves
    to the mask's CPU with the most free vectors (-ENOSPC if none has one). The affinity becomes the mask; the
    effective affinity is the vector's CPU. Every check comes before any change."""
    gi = host.genirq
    desc = gi.irq_to_desc(irq, "irq_set_affinity")
    mask = to_cpumask(cpus)
    online = {c for c in mask if c < host.ncpus}
    if desc.chip_name is None:
        raise _einval(f"irq_set_affinity({desc.irq}): the chip has no irq_set_affinity")
    if not online:
        raise _einval(f"irq_set_affinity({desc.irq}): no online CPU in {sorted(mask)} (CPUs 0..{host.ncpus - 1})")
    if desc.cpu not in online:
        gi.move_vector(desc, online)
    desc.affinity = frozenset(online)
    return 0


def proc_irq_files(host: "Kernel", irq: Any) -> dict[str, str]:
    """The files of /proc/irq/<irq>/ that the model keeps, as the kernel prints them (with their newline)."""
    desc = host.genirq.irq_to_desc(irq, "/proc/irq")
    n = host.ncpus
    aff = desc.affinity if desc.affinity is not None else range(n)
    eff = [desc.cpu]
    return {
        "smp_affinity": cpumask_print(aff, n) + "\n",
        "smp_affinity_list": cpulist_print(aff) + "\n",
        "affinity_hint": cpumask_print((), n) + "\n",
        "effective_affinity": cpumask_print(eff, n) + "\n",
        "effective_affinity_list": cpulist_print(eff) + "\n",
        "spurious": f"count {desc.irq_count}\nunhandled {desc.irqs_unhandled}\n"
                    f"last_unhandled {desc.last_unhandled * 4} ms\n",
    }


def write_irq_affinity(host: "Kernel", irq: Any, name: str, text: Any) -> int:
    """kernel/irq/proc.c write_irq_affinity: -EPERM if the irq's affinity cannot be set from user space, the mask
    parsed (smp_affinity: hex; smp_affinity_list: a CPU list), -EINVAL for a mask with no online CPU (x86 has no
    irq_select_affinity_usr), then irq_set_affinity. Returns the bytes written. Nothing changes on an error."""
    if not isinstance(name, str):
        raise TypeError(f"the file is a str (one of {PROC_IRQ_FILES}), not {type(name).__name__}")
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    if not isinstance(text, str):
        raise TypeError(f"what is written is a str (e.g. '4' or '2-3'), not {type(text).__name__}")
    desc = host.genirq.irq_to_desc(irq, f"/proc/irq/{irq}/{name}")
    if name not in PROC_IRQ_FILES:
        raise ValueError(f"/proc/irq/{desc.irq}/ has no file {name!r} in the model (it has {', '.join(PROC_IRQ_FILES)})")
    if name not in ("smp_affinity", "smp_affinity_list"):
        raise KernelError(errno.EIO, f"/proc/irq/{desc.irq}/{name} is read-only (no proc_write)")
    if not _can_set_affinity_usr(desc):
        raise KernelError(errno.EPERM, f"/proc/irq/{desc.irq}/{name}: irq_can_set_affinity_usr() is false "
                          "(IRQF_PERCPU or IRQF_NOBALANCING, or no chip)")
    n = host.ncpus
    mask = cpulist_parse(text, n) if name == "smp_affinity_list" else cpumask_parse(text, n)
    if not mask:
        raise _einval(f"/proc/irq/{desc.irq}/{name}: {text!r} has no online CPU (write_irq_affinity keeps at least one)")
    irq_set_affinity(host, desc.irq, mask)
    return len(text.encode())
