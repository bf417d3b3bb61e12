"""/proc/interrupts and /sys/kernel/irq/<n>/ exactly as Linux 6.18 prints them, and a parser for real ones.

Models kernel/irq/proc.c (``show_interrupts``), arch/x86/kernel/irq.c (``arch_show_interrupts``) and
kernel/irq/irqdesc.c (the sysfs attributes ``*_show``). It renders from plain rows, so it depends on no other
part of the model. Simplification: the caller hands over one consistent snapshot (the kernel reads each
counter while other CPUs keep counting), and the arch rows default to a bare-metal x86-64 KVM host's config.

The parser reads what every kernel since 2.4 printed on any arch (older x86/ARM ``show_interrupts``, the ARM,
arm64, RISC-V and s390 arch rows); its grammar and the rules it applies to ambiguous rows are written above
``FLOW_NAMES``. tests/data/proc_interrupts/captures holds the real files it is checked against.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "ARCH_TEXT",
    "KVM_HOST_ARCH_ROWS",
    "SAMPLE_6_18",
    "FLOW_NAMES",
    "ArchRow",
    "IrqRow",
    "ParsedRow",
    "ProcInterrupts",
    "default_arch_rows",
    "parse_proc_interrupts",
    "proc_prec",
    "read_proc_interrupts",
    "render_proc_interrupts",
    "render_sys_kernel_irq",
]

#: A 6.18 /proc/interrupts of a KVM host with a vfio-intx line and a vfio-msix NIC (the course's sample;
#: counts invented, some rows left out). The header's trailing spaces are the kernel's.
SAMPLE_6_18 = (
    '           CPU0       CPU1       CPU2       CPU3       \n'
    '  0:         36          0          0          0 IR-IO-APIC   2-edge      timer\n'
    '  9:          0          0          0          0 IR-IO-APIC   9-fasteoi   acpi\n'
    ' 16:          0          0       1207          0 IR-IO-APIC  16-fasteoi   ehci_hcd:usb1, vfio-intx(0000:03:00.0)\n'
    '124:          0          0          0      48211 IR-PCI-MSIX-0000:01:00.0   0-edge      vfio-msix[0](0000:01:00.0)\n'
    '125:          0          0          0          0 IR-PCI-MSIX-0000:01:00.0   1-edge      vfio-msix[1](0000:01:00.0)\n'
    'NMI:          0          0          0          0   Non-maskable interrupts\n'
    'LOC:    1520336    1498821    1611093    1447310   Local timer interrupts\n'
    'ERR:          0\n'
    'MIS:          0\n'
    'PIN:          0          0          0         12   Posted-interrupt notification event\n'
    'NPI:          0          0          0          0   Nested posted-interrupt event\n'
    'PIW:          0          0          3          0   Posted-interrupt wakeup event\n'
)

#: Every x86 row of arch_show_interrupts() in its order, with the kernel's text (None: ERR/MIS, one value).
ARCH_TEXT: dict[str, str | None] = {
    "NMI": "Non-maskable interrupts", "LOC": "Local timer interrupts", "SPU": "Spurious interrupts",
    "PMI": "Performance monitoring interrupts", "IWI": "IRQ work interrupts", "RTR": "APIC ICR read retries",
    "PLT": "Platform interrupts", "RES": "Rescheduling interrupts", "CAL": "Function call interrupts",
    "TLB": "TLB shootdowns", "TRM": "Thermal event interrupts", "THR": "Threshold APIC interrupts",
    "DFR": "Deferred Error APIC interrupts", "MCE": "Machine check exceptions", "MCP": "Machine check polls",
    "HYP": "Hypervisor callback interrupts", "HRE": "Hyper-V reenlightenment interrupts",
    "HVS": "Hyper-V stimer0 interrupts", "ERR": None, "MIS": None,
    "PIN": "Posted-interrupt notification event", "NPI": "Nested posted-interrupt event",
    "PIW": "Posted-interrupt wakeup event", "PMN": "Posted MSI notification event",
}
#: The rows a bare-metal KVM host prints: CONFIG_X86_MCE_AMD and CONFIG_KVM on; no platform-IPI callback (PLT),
#: not itself a Xen/Hyper-V guest (HYP/HRE/HVS), no CONFIG_X86_POSTED_MSI (PMN).
KVM_HOST_ARCH_ROWS = ("NMI", "LOC", "SPU", "PMI", "IWI", "RTR", "RES", "CAL", "TLB", "TRM", "THR", "DFR", "MCE",
                      "MCP", "ERR", "MIS", "PIN", "NPI", "PIW")
_U32 = 2 ** 32


@dataclass
class IrqRow:
    """One ``irq_desc`` as show_interrupts() reads it.

    ``counts``: one per online CPU, or indexed by CPU number (then longer than the highest online CPU).
    ``chip_name`` None: no chip ("None"); "": a chip without a name ("-"). ``hwirq`` None: no irq domain
    (blanks). ``flow_name`` is ``desc->name`` ("edge", "fasteoi"); None prints nothing.
    """

    irq: int
    counts: list[int]
    chip_name: str | None
    hwirq: int | None
    flow_name: str | None
    actions: list[str]


@dataclass
class ArchRow:
    """One row of arch_show_interrupts(): per-CPU ``counts`` and a ``text``, or one int (ERR, MIS) and no text."""

    name: str
    counts: list[int] | int
    text: str | None = None


def default_arch_rows(ncpus: int, counts: dict[str, list[int] | int] | None = None) -> list[ArchRow]:
    """The arch rows of a KVM host (``KVM_HOST_ARCH_ROWS``) with the kernel's texts; missing counts are zeros.

    ERR and MIS are single system-wide counters (``irq_err_count``, ``irq_mis_count``): a list is summed.
    """
    if not isinstance(ncpus, int) or isinstance(ncpus, bool) or ncpus < 1:
        raise ValueError(f"ncpus must be a positive int, not {ncpus!r}")
    counts = dict(counts or {})
    unknown = sorted(set(counts) - set(KVM_HOST_ARCH_ROWS))
    if unknown:
        raise ValueError(f"unknown arch rows {unknown}: use names from {KVM_HOST_ARCH_ROWS}")
    rows = []
    for name in KVM_HOST_ARCH_ROWS:
        c = counts.get(name, 0 if ARCH_TEXT[name] is None else [0] * ncpus)
        if ARCH_TEXT[name] is None:
            rows.append(ArchRow(name, sum(c) if isinstance(c, (list, tuple)) else c))
        else:
            rows.append(ArchRow(name, list(c), ARCH_TEXT[name]))
    return rows


def proc_prec(nr_irqs: int) -> int:
    """Width of the first column: ``for (prec = 3, j = 1000; prec < 10 && j <= nr_irqs; ++prec) j *= 10;``"""
    prec, j = 3, 1000
    while prec < 10 and j <= nr_irqs:
        prec, j = prec + 1, j * 10
    return prec


def _u32(what: str, c: object) -> int:
    if not isinstance(c, int) or isinstance(c, bool):
        raise TypeError(f"{what}: counts must be ints, not {type(c).__name__}")
    if c < 0:
        raise ValueError(f"{what}: count {c} is negative; kstat counters are unsigned")
    return c % _U32  # the kernel's counters are unsigned int and wrap


def _per_cpu(what: str, counts: object, online: list[int]) -> list[int]:
    """The counts of the online CPUs, in for_each_online_cpu() order."""
    if not isinstance(counts, (list, tuple)):
        raise TypeError(f"{what}: counts must be a list of ints, not {type(counts).__name__}")
    if len(counts) == len(online):
        return [_u32(what, c) for c in counts]
    if len(counts) > online[-1]:
        return [_u32(what, counts[cpu]) for cpu in online]
    raise ValueError(f"{what}: {len(counts)} counts for online CPUs {online}: give one per online CPU, "
                     f"or one per CPU number 0..{online[-1]}")


def render_proc_interrupts(rows: list[IrqRow], *, online_cpus: list[int], nr_irqs: int,
                           arch_rows: list[ArchRow]) -> str:
    """show_interrupts() for each descriptor with an action, by irq number, then arch_show_interrupts()."""
    if not isinstance(nr_irqs, int) or isinstance(nr_irqs, bool) or nr_irqs < 1:
        raise ValueError(f"nr_irqs must be a positive int, not {nr_irqs!r}")
    online = list(online_cpus)
    if not online or any(not isinstance(c, int) or c < 0 for c in online) or online != sorted(set(online)):
        raise ValueError(f"online_cpus must be distinct CPU numbers in ascending order, not {online_cpus!r}")
    prec = proc_prec(nr_irqs)
    out = [" " * (prec + 8) + "".join(f"CPU{c:<8d}" for c in online) + "\n"]
    for r in sorted(rows, key=lambda r: r.irq):
        if not isinstance(r, IrqRow):
            raise TypeError(f"rows must be IrqRow, not {type(r).__name__}")
        if not 0 <= r.irq < nr_irqs:
            raise ValueError(f"irq {r.irq} is outside 0..nr_irqs-1 ({nr_irqs - 1}); the kernel never prints it")
        if r.hwirq is not None and (not isinstance(r.hwirq, int) or r.hwirq < 0):
            raise ValueError(f"irq {r.irq}: hwirq must be a non-negative int or None, not {r.hwirq!r}")
        if not isinstance(r.actions, (list, tuple)) or not all(isinstance(a, str) for a in r.actions):
            raise TypeError(f"irq {r.irq}: actions must be a list of names (str), not {r.actions!r}")
        if not r.actions:  # 6.18: `if (!desc->action || irq_desc_is_chained(desc) || ...) return 0;`
            continue
        line = f"{r.irq:>{prec}d}:" + "".join(f" {c:>10d}" for c in _per_cpu(f"irq {r.irq}", r.counts, online))
        line += " " + f"{'None' if r.chip_name is None else (r.chip_name or '-'):>8s}"
        line += f" {r.hwirq:>{prec}d}" if r.hwirq is not None else " " * (prec + 1)
        if r.flow_name is not None:
            line += f"-{r.flow_name:<8s}"
        out.append(line + "  " + ", ".join(r.actions) + "\n")
    for a in arch_rows:
        if isinstance(a.counts, int):  # ERR, MIS: "%*s: %10u\n"
            out.append(f"{a.name:>{prec}s}: {_u32(a.name, a.counts):>10d}\n")
        else:  # "%*s: ", "%10u " per CPU, "  text\n"
            cells = "".join(f"{c:>10d} " for c in _per_cpu(a.name, a.counts, online))
            out.append(f"{a.name:>{prec}s}: {cells}  {a.text or ''}\n")
    return "".join(out)


def render_sys_kernel_irq(row: IrqRow, *, possible_cpus_counts: list[int], type_: str, wakeup: bool,
                          name: str | None) -> dict[str, str]:
    """The files of /sys/kernel/irq/<n>/ (irqdesc.c ``*_show``); an attribute the kernel leaves empty is ""."""
    if type_ not in ("level", "edge"):
        raise ValueError(f"type_ must be 'level' or 'edge', not {type_!r}")
    counts = [_u32(f"irq {row.irq}", c) for c in possible_cpus_counts]
    return {
        "per_cpu_count": ",".join(map(str, counts)) + "\n",          # for_each_possible_cpu: "%s%u"
        "chip_name": f"{row.chip_name}\n" if row.chip_name else "",   # only if chip && chip->name
        "hwirq": f"{row.hwirq}\n" if row.hwirq is not None else "",   # only if irq_data.domain
        "type": f"{type_}\n",
        "wakeup": ("enabled" if wakeup else "disabled") + "\n",      # str_enabled_disabled()
        "name": f"{name}\n" if name else "",                         # only if desc->name
        "actions": ",".join(row.actions) + "\n" if row.actions else "",  # "\n" only after some action
    }


# ---------------------------------------------------------------------------------------------- parsing
#
# The grammar of a row, from the printers that wrote them (kernel/irq/proc.c show_interrupts and each arch's
# arch_show_interrupts; older kernels' arch/*/kernel/irq.c show_interrupts):
#
#   row      := NAME ":" COUNT* REST             NAME is the irq number (a device row) or letters (an arch row)
#   COUNT    := decimal                          one per online CPU ("%10u"), or per present CPU on ARM <= 3.x
#   REST     := [CHIP] [HWIRQ] [TRIGGER] ["-" FLOW] ["  " ACTION (", " ACTION)*]     (device rows)
#             | DESCRIPTION                                                        (arch rows: "Local timer ...")
#
#   CHIP     "%8s" chip->name or irq_print_chip's text ("None": no chip, "-": a chip without a name); may hold a
#            space ("PCIe MSI", "SiFive PLIC", "RISC-V INTC"). Absent on ARM kernels of 2.6 before genirq.
#   HWIRQ    " %*lu" when the irq has a domain; blanks when it has none (6.18; older kernels printed nothing).
#   TRIGGER  " %-8s" "Level"/"Edge" on arches with CONFIG_GENERIC_IRQ_SHOW_LEVEL (ARM, arm64, RISC-V, ...).
#   FLOW     "-%-8s" desc->name, the flow handler's name ("edge", "fasteoi", Xen's "ioapic-level", "virq", ...).
#            Before x86 had irq domains (2.6.19 to 4.x) it is glued to the chip: "IO-APIC-edge"; 2.4 and
#            2.6.<=18 printed a type name of the same shape ("IO-APIC-level", "XT-PIC").
#
# Rules where a row alone is ambiguous (each applied in this order, the first that fits wins):
#   1. Counts are every leading decimal token, however many the header has CPU columns: a CPU that goes offline
#      or online between the header and a row changes that row's count (6.18 prints each row for the CPUs online
#      at that moment), and ARM kernels up to 3.x printed IPI and LOC rows for every present CPU.
#   2. CHIP HWIRQ then "-FLOW" or TRIGGER: the chip is the shortest prefix followed by a hwirq that is itself
#      followed by "-flow" (a flow name starts with a lower-case letter, so "exynos-eint  7-0020" is a chip and an
#      action) or by Level/Edge.  3. CHIP TRIGGER [-FLOW] with no hwirq.  4. CHIP then " -FLOW" (blanks for hwirq).
#   5. A one-word CHIP and a bare HWIRQ ("intel-gpio  139  ELAN06DA:00").
#   6. A glued "CHIP-FLOW" first word splits at the longest known flow name (FLOW_NAMES): "xen-pirq-ioapic-level"
#      is chip "xen-pirq", flow "ioapic-level"; "XT-PIC" does not split (no flow "PIC").
#   7. Otherwise the first word is the chip and the rest are actions ("GIC  s3c-pl330.0", "XT-PIC  PS/2 Mouse").
#   A file has no chip column at all (ARM 2.6: "%10u " then "  %s", the action) when its device rows are printed
#   in the kernel's fixed columns, none fits rules 2-6, and their text starts in one column while its first words
#   end in different ones: a chip is right-aligned ("%8s", "%14s"), an action left-aligned.

#: Flow-handler names (desc->name) the kernel sets with irq_set_chip_and_handler_name/__irq_set_handler: in 6.18,
#: x86 io_apic.c and lapic "edge", "fasteoi", irq-riscv-rpmi-sysmsi.c "simple", drivers/xen/events and
#: arch/x86/pci/xen.c "ioapic-edge", "ioapic-level", "msi", "msi-x", "event", "ipi", "virq"; earlier, "level" (the
#: 2.4/2.6 type name "IO-APIC-level") and "XT" (2.6.2x i8259 rows "XT-PIC-XT").
FLOW_NAMES = ("edge", "level", "fasteoi", "simple", "XT", "ioapic-edge", "ioapic-level", "msi", "msi-x", "event",
              "ipi", "virq")


@dataclass
class ParsedRow:
    """One row of a real /proc/interrupts: a device IRQ ("16") or an arch row ("NMI", "ERR", "IPI0", "EXT").

    ``counts``: every count the row prints, in column order ([value] for ERR/MIS); it may hold fewer or more values
    than the header has CPUs (see ``ProcInterrupts.cpus``). ``chip`` is None when the file has no chip column (ARM
    2.6); the string "None" is the kernel's own word for an irq without a chip. ``hwirq`` is the text of the hwirq
    column; ``trigger`` is "Level"/"Edge" on arches that print it; ``flow`` is desc->name. ``description`` is the raw
    text after the counts.
    """

    irq: str
    is_arch: bool
    counts: list[int]
    chip: str | None = None
    hwirq: str | None = None
    flow: str | None = None
    actions: list[str] = field(default_factory=list)
    description: str = ""
    trigger: str | None = None

    @property
    def total(self) -> int:
        return sum(self.counts)


_FLOW = r"[a-z][a-z0-9_]*(?:-[a-z0-9_]+)*"
_ACTIONS = r"(?: +(?P<actions>\S.*))?"
_ANCHORED = [re.compile(p) for p in (
    # 2. CHIP HWIRQ-FLOW  |  CHIP HWIRQ TRIGGER [-FLOW]
    rf"(?P<chip>\S.*?) +(?P<hwirq>\d+)(?:-(?P<flow>{_FLOW})| +(?P<trigger>Level|Edge)(?: *-(?P<flow2>{_FLOW}))?)"
    + _ACTIONS,
    # 3. CHIP TRIGGER [-FLOW] (no domain)
    rf"(?P<chip>\S.*?) +(?P<trigger>Level|Edge)(?: *-(?P<flow>{_FLOW}))?" + _ACTIONS,
    # 4. CHIP <blanks> -FLOW (no domain)
    rf"(?P<chip>\S.*?) +-(?P<flow>{_FLOW})" + _ACTIONS,
    # 5. CHIP HWIRQ (no flow name)
    r"(?P<chip>\S+) +(?P<hwirq>\d+)" + _ACTIONS,
)]
_ROW = re.compile(r"\s*([^\s:]+):(.*)")
_TOKEN = re.compile(r"\S+")


def _split_glued(word: str) -> tuple[str, str] | None:
    """Rule 6: "IO-APIC-edge" -> ("IO-APIC", "edge") at the longest known flow name, or None."""
    for flow in sorted(FLOW_NAMES, key=len, reverse=True):
        if word.endswith("-" + flow) and len(word) > len(flow) + 1:
            return word[:-len(flow) - 1], flow
    return None


def _actions(text: str | None) -> list[str]:
    return [a.strip() for a in (text or "").split(", ") if a.strip()]


def _anchored(rest: str) -> dict | None:
    for layout in _ANCHORED:
        m = layout.fullmatch(rest)
        if m:
            d = m.groupdict()
            return {"chip": d["chip"], "hwirq": d.get("hwirq"), "trigger": d.get("trigger"),
                    "flow": d.get("flow") or d.get("flow2"), "actions": _actions(d.get("actions"))}
    first, _, tail = rest.partition(" ")
    glued = _split_glued(first)
    if glued:
        return {"chip": glued[0], "hwirq": None, "trigger": None, "flow": glued[1], "actions": _actions(tail)}
    return None


@dataclass
class _Line:
    number: int
    name: str
    counts: list[int]
    rest: str               # the text after the counts, stripped
    rest_col: int           # the column where it starts (-1 if empty)
    aligned: bool           # every count ends where "%10u" per CPU after "NAME:" puts it


def _split_line(n: int, ln: str) -> _Line:
    m = _ROW.fullmatch(ln)
    if not m:
        raise ValueError(f"line {n} is not a /proc/interrupts row (expected '<irq>: <count per CPU> ...'): {ln!r}")
    name, colon = m.group(1), m.end(1)
    toks = list(_TOKEN.finditer(ln, colon + 1))
    k = 0
    while k < len(toks) and toks[k].group().isascii() and toks[k].group().isdigit():
        k += 1
    if k == 0:
        raise ValueError(f"line {n}: row {name!r} has no counts after '{name}:': {ln!r}")
    aligned = all(t.end() == colon + 1 + 11 * (i + 1) for i, t in enumerate(toks[:k]))
    rest_col = toks[k].start() if k < len(toks) else -1
    return _Line(n, name, [int(t.group()) for t in toks[:k]], ln[rest_col:].rstrip() if rest_col >= 0 else "",
                 rest_col, aligned)


def _has_chip_column(lines: list[_Line]) -> bool:
    """False only for a file laid out as ARM 2.6 printed it: counts, then the actions, no chip (see the rules)."""
    dev = [ln for ln in lines if ln.name.isdigit() and ln.rest]
    if len(dev) < 2 or not all(ln.aligned for ln in dev) or any(_anchored(ln.rest) for ln in dev):
        return True
    starts = {ln.rest_col for ln in dev}
    ends = {ln.rest_col + len(ln.rest.split()[0]) for ln in dev}
    return not (len(starts) == 1 and len(ends) > 1)


def _device_row(line: _Line, chip_column: bool) -> ParsedRow:
    row = ParsedRow(line.name, False, line.counts, description=line.rest)
    if not line.rest:
        return row
    if not chip_column:
        row.actions = _actions(line.rest)
        return row
    fields = _anchored(line.rest)
    if fields is None:
        first, _, tail = line.rest.partition(" ")
        fields = {"chip": first, "hwirq": None, "trigger": None, "flow": None, "actions": _actions(tail)}
    row.chip, row.hwirq, row.trigger, row.flow, row.actions = (
        fields["chip"], fields["hwirq"], fields["trigger"], fields["flow"], fields["actions"])
    return row


@dataclass
class ProcInterrupts:
    """A parsed /proc/interrupts: ``cpus`` ("CPU0"...) from the header and ``rows`` in file order.

    A row's ``counts`` line up with ``cpus`` when their lengths agree. A longer row printed CPUs the header does not
    name (present but offline CPUs on ARM <= 3.x, or a CPU that came online mid-read); a shorter one lost a CPU
    that went offline mid-read: which one, the file does not say.
    """

    cpus: list[str]
    rows: list[ParsedRow]

    def row(self, irq: str | int) -> ParsedRow:
        for r in self.rows:
            if r.irq == str(irq):
                return r
        raise KeyError(f"no row {str(irq)!r} in this /proc/interrupts (rows: {', '.join(r.irq for r in self.rows)})")

    def device_rows(self) -> list[ParsedRow]:
        return [r for r in self.rows if not r.is_arch]

    def vfio_rows(self) -> list[ParsedRow]:
        """Device rows with a vfio-pci action (``vfio-intx(...)``, ``vfio-msi[x][i](...)``)."""
        return [r for r in self.device_rows() if any(a.startswith("vfio-") for a in r.actions)]

    def posted_interrupt_counters(self) -> dict[str, list[int]]:
        """PIN, NPI and PIW per CPU, those present (kernels with CONFIG_KVM on x86)."""
        return {r.irq: r.counts for r in self.rows if r.irq in ("PIN", "NPI", "PIW")}

    def busiest_cpu(self) -> tuple[int, str]:
        """The header's CPU column that took the most device interrupts: (index, "CPUn"); the first one on a tie."""
        totals = [sum(r.counts[i] for r in self.device_rows() if i < len(r.counts)) for i in range(len(self.cpus))]
        i = max(range(len(totals)), key=lambda k: (totals[k], -k))
        return i, self.cpus[i]

    def to_records(self) -> list[dict]:
        """One dict per row (for ``pandas.DataFrame(...)``): irq, arch, total, a column per header CPU (None where
        the row has no count), ``extra_counts`` (counts beyond the header's CPUs), chip ... description."""
        return [{"irq": r.irq, "arch": r.is_arch, "total": r.total,
                 **{c: (r.counts[i] if i < len(r.counts) else None) for i, c in enumerate(self.cpus)},
                 "extra_counts": r.counts[len(self.cpus):], "chip": r.chip, "hwirq": r.hwirq,
                 "trigger": r.trigger, "flow": r.flow, "actions": ", ".join(r.actions),
                 "description": r.description} for r in self.rows]

    def _cells(self, r: ParsedRow) -> list[str]:
        flow = "-".join(x for x in (r.trigger, r.flow) if x)
        return [r.irq, f"{r.total:,}", r.chip or "", r.hwirq or "", flow,
                ", ".join(r.actions) if not r.is_arch else r.description]

    def __str__(self) -> str:
        lines = [f"{len(self.cpus)} CPUs, {len(self.device_rows())} device rows",
                 f"{'irq':>5} {'total':>14}  {'chip':<26} {'hwirq':>7} {'flow':<8} actions / description"]
        for r in self.rows:
            irq, total, chip, hw, flow, what = self._cells(r)
            lines.append(f"{irq:>5} {total:>14}  {chip:<26} {hw:>7} {flow:<8} {what}".rstrip())
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{h}</th>" for h in ("irq", "total", "chip", "hwirq", "flow", "actions / description"))
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in self._cells(r)) + "</tr>"
                       for r in self.rows)
        return f"<table><caption>{len(self.cpus)} CPUs</caption><tr>{head}</tr>{body}</table>"


def parse_proc_interrupts(text: str) -> ProcInterrupts:
    """Read a real /proc/interrupts (any kernel since 2.4, any arch, any CPU count) into rows.

    The grammar and the rules for ambiguous rows are in the comment above ``FLOW_NAMES``. ValueError names the
    first line that is not a header or a row.
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_proc_interrupts takes the file's text (str), not {type(text).__name__}")
    numbered = [(n, ln) for n, ln in enumerate(text.splitlines(), 1) if ln.strip()]
    if not numbered:
        raise ValueError("empty text: expected /proc/interrupts, a header of CPU0 CPU1 ... columns, then rows")
    (hn, header), body = numbered[0], numbered[1:]
    cpus = header.split()
    if not all(re.fullmatch(r"CPU\d+", c) for c in cpus):
        raise ValueError(f"line {hn} is not a /proc/interrupts header (expected 'CPU0 CPU1 ...'): {header!r}")
    if not body:
        raise ValueError(f"no rows after the header (line {hn}): expected lines like "
                         "' 16:   0   0 IR-IO-APIC  16-fasteoi   ehci_hcd:usb1'")
    lines = [_split_line(n, ln) for n, ln in body]
    chip_column = _has_chip_column(lines)
    return ProcInterrupts(cpus, [_device_row(ln, chip_column) if ln.name.isdigit()
                                 else ParsedRow(ln.name, True, ln.counts, description=ln.rest) for ln in lines])


def read_proc_interrupts(path: str | Path = "/proc/interrupts") -> ProcInterrupts:
    """Parse the running machine's /proc/interrupts (or a saved copy)."""
    return parse_proc_interrupts(Path(path).read_text())
