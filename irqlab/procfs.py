"""/proc/interrupts and /sys/kernel/irq/<n>/ exactly as Linux 6.18 prints them, and a parser for real ones.

Models kernel/irq/proc.c (``show_interrupts``), arch/x86/kernel/irq.c (``arch_show_interrupts``) and
kernel/irq/irqdesc.c (the sysfs attributes). Renders from plain rows so any host can use it.
Simplification: the arch rows are those of a Debian x86-64 KVM host (CONFIG_X86_MCE_AMD, CONFIG_HYPERV,
CONFIG_KVM on; no platform-IPI, hypervisor-callback or posted-MSI rows).
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SAMPLE_6_18", "IrqRow", "ArchRow", "ARCH_TEXT", "default_arch_rows", "render_proc_interrupts", "proc_prec",
           "render_sys_kernel_irq", "ProcInterrupts", "ParsedRow", "parse_proc_interrupts",
           "read_proc_interrupts"]

#: A 6.18 /proc/interrupts of a KVM host with a vfio-intx line and a vfio-msix NIC (the layout of kernel-facts.md §3;
#: counts invented; some rows left out). Trailing spaces of the header are the kernel's.
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

#: x86 arch rows in arch_show_interrupts() order, with the kernel's texts (v6.18).
ARCH_TEXT: dict[str, str | None] = {
    "NMI": "Non-maskable interrupts", "LOC": "Local timer interrupts", "SPU": "Spurious interrupts",
    "PMI": "Performance monitoring interrupts", "IWI": "IRQ work interrupts", "RTR": "APIC ICR read retries",
    "RES": "Rescheduling interrupts", "CAL": "Function call interrupts", "TLB": "TLB shootdowns",
    "TRM": "Thermal event interrupts", "THR": "Threshold APIC interrupts",
    "DFR": "Deferred Error APIC interrupts", "MCE": "Machine check exceptions", "MCP": "Machine check polls",
    "HRE": "Hyper-V reenlightenment interrupts", "HVS": "Hyper-V stimer0 interrupts",
    "ERR": None, "MIS": None,  # a single value, no text
    "PIN": "Posted-interrupt notification event", "NPI": "Nested posted-interrupt event",
    "PIW": "Posted-interrupt wakeup event",
}
#: Other rows a real machine may print (the parser knows their texts too).
EXTRA_ARCH_TEXT = {"PLT": "Platform interrupts", "HYP": "Hypervisor callback interrupts",
                   "PMN": "Posted MSI notification event"}


@dataclass
class IrqRow:
    """One descriptor as show_interrupts() sees it. ``chip_name`` None → "None" (no chip), "" → "-"."""

    irq: int
    counts: list[int]
    chip_name: str | None
    hwirq: int | None
    flow_name: str | None
    actions: list[str]


@dataclass
class ArchRow:
    name: str
    counts: list[int] | int
    text: str | None = None


def default_arch_rows(ncpus: int, counts: dict[str, list[int] | int] | None = None) -> list[ArchRow]:
    counts = counts or {}
    rows = []
    for name, text in ARCH_TEXT.items():
        if text is None:
            c = counts.get(name, 0)
            rows.append(ArchRow(name, sum(c) if isinstance(c, list) else int(c)))
        else:
            rows.append(ArchRow(name, list(counts.get(name, [0] * ncpus)), text))
    return rows


def proc_prec(nr_irqs: int) -> int:
    """The width of the first column: ``for (prec = 3, j = 1000; prec < 10 && j <= nr_irqs; ++prec) j *= 10;``"""
    prec, j = 3, 1000
    while prec < 10 and j <= nr_irqs:
        prec += 1
        j *= 10
    return prec


def render_proc_interrupts(rows: list[IrqRow], *, online_cpus: list[int], nr_irqs: int,
                           arch_rows: list[ArchRow]) -> str:
    """show_interrupts() for every descriptor with an action, then arch_show_interrupts()."""
    prec = proc_prec(nr_irqs)
    out = [" " * (prec + 8) + "".join(f"CPU{c:<8d}" for c in online_cpus) + "\n"]
    for r in sorted(rows, key=lambda r: r.irq):
        if not r.actions:
            continue
        line = f"{r.irq:>{prec}d}:" + "".join(f" {r.counts[c]:>10d}" for c in online_cpus) + " "
        chip = "None" if r.chip_name is None else (r.chip_name or "-")
        line += f"{chip:>8s}"
        line += f" {r.hwirq:>{prec}d}" if r.hwirq is not None else " " + " " * prec
        if r.flow_name:
            line += f"-{r.flow_name:<8s}"
        line += "  " + ", ".join(r.actions)
        out.append(line + "\n")
    for a in arch_rows:
        if isinstance(a.counts, int):
            out.append(f"{a.name:>{prec}s}: {a.counts:>10d}\n")
        else:
            out.append(f"{a.name:>{prec}s}:" + "".join(f" {a.counts[c]:>10d}" for c in online_cpus)
                       + f"   {a.text}\n")
    return "".join(out)


def render_sys_kernel_irq(row: IrqRow, *, possible_cpus_counts: list[int], type_: str, wakeup: bool,
                          name: str | None) -> dict[str, str]:
    """The attribute files of /sys/kernel/irq/<n>/ (kernel/irq/irqdesc.c); empty files are ""."""
    if type_ not in ("level", "edge"):
        raise ValueError("type_ is 'level' or 'edge'")
    return {
        "per_cpu_count": ",".join(str(c) for c in possible_cpus_counts) + "\n",
        "chip_name": f"{row.chip_name}\n" if row.chip_name else "",
        "hwirq": f"{row.hwirq}\n" if row.hwirq is not None else "",
        "type": f"{type_}\n",
        "wakeup": ("enabled" if wakeup else "disabled") + "\n",
        "name": f"{name}\n" if name else "",
        "actions": ",".join(row.actions) + "\n" if row.actions else "",
    }


# ---------------------------------------------------------------------------------------------- parsing
@dataclass
class ParsedRow:
    """One row of a real /proc/interrupts: a device IRQ ("16") or an arch row ("NMI", "PIN")."""

    irq: str
    is_arch: bool
    counts: list[int]
    chip: str | None = None
    hwirq: str | None = None
    flow: str | None = None
    actions: list[str] = field(default_factory=list)
    description: str = ""

    @property
    def total(self) -> int:
        return sum(self.counts)


_FLOWS = r"(?:edge|fasteoi|level|simple|percpu|percpu_devid|eoi|fasteoi_ack|edge_ack|nested|untracked|[a-z_]+)"
_ROW_6X = re.compile(r"^(?P<chip>\S+)\s+(?P<hwirq>\d+)-(?P<flow>\S+)(?:\s+(?P<actions>.*))?$")
_ROW_NOHW = re.compile(r"^(?P<chip>\S+)\s+-(?P<flow>\S+)(?:\s+(?P<actions>.*))?$")
_ROW_LEVEL = re.compile(r"^(?P<chip>\S+)\s+(?P<hwirq>\d+)\s+(?P<flow>Level|Edge)(?:\s+(?P<actions>.*))?$")
_ROW_OLD = re.compile(rf"^(?P<chip>\S+?)-(?P<flow>{_FLOWS})(?:\s+(?P<actions>.*))?$")


def _split_actions(s: str | None) -> list[str]:
    return [a.strip() for a in s.split(", ")] if s and s.strip() else []


@dataclass
class ProcInterrupts:
    """A parsed /proc/interrupts: ``cpus`` ("CPU0"...) and ``rows`` in file order."""

    cpus: list[str]
    rows: list[ParsedRow]

    def row(self, irq: str | int) -> ParsedRow:
        key = str(irq)
        for r in self.rows:
            if r.irq == key:
                return r
        raise KeyError(f"no row {key!r} in this /proc/interrupts")

    def device_rows(self) -> list[ParsedRow]:
        return [r for r in self.rows if not r.is_arch]

    def vfio_rows(self) -> list[ParsedRow]:
        return [r for r in self.device_rows() if any(a.startswith("vfio-") for a in r.actions)]

    def posted_interrupt_counters(self) -> dict[str, list[int]]:
        return {r.irq: r.counts for r in self.rows if r.irq in ("PIN", "NPI", "PIW", "PMN")}

    def busiest_cpu(self) -> tuple[int, str]:
        """The CPU that took the most device interrupts (index, "CPUn")."""
        totals = [0] * len(self.cpus)
        for r in self.device_rows():
            for i, c in enumerate(r.counts[:len(totals)]):
                totals[i] += c
        i = max(range(len(totals)), key=lambda k: (totals[k], -k))
        return i, self.cpus[i]

    def to_records(self) -> list[dict]:
        return [{"irq": r.irq, "arch": r.is_arch, "total": r.total, **{c: n for c, n in zip(self.cpus, r.counts)},
                 "chip": r.chip, "hwirq": r.hwirq, "flow": r.flow, "actions": ", ".join(r.actions),
                 "description": r.description} for r in self.rows]

    def __str__(self) -> str:
        head = f"{'irq':>5} {'total':>12}  {'chip':<28} {'hwirq':>7} {'flow':<8} actions / description"
        lines = [head]
        for r in self.rows:
            what = ", ".join(r.actions) if not r.is_arch else r.description
            lines.append(f"{r.irq:>5} {r.total:>12,}  {(r.chip or ''):<28} {(r.hwirq or ''):>7} "
                         f"{(r.flow or ''):<8} {what}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        cols = ["irq", "total", *self.cpus, "chip", "hwirq", "flow", "actions / description"]
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in
                             [r.irq, f"{r.total:,}", *(f"{c:,}" for c in r.counts)]
                             + ([""] * (len(self.cpus) - len(r.counts)))
                             + [r.chip or "", r.hwirq or "", r.flow or "",
                                ", ".join(r.actions) if not r.is_arch else r.description]) + "</tr>"
            for r in self.rows)
        return ("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "</tr>" + body + "</table>")


def parse_proc_interrupts(text: str) -> ProcInterrupts:
    """Read a real /proc/interrupts (any kernel, any CPU count) into rows; ValueError if it is not one."""
    if not isinstance(text, str):
        raise TypeError(f"parse_proc_interrupts takes the file's text (str), not {type(text).__name__}")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise ValueError("empty text: expected /proc/interrupts, starting with a header of CPU0 CPU1 ... columns")
    cpus = lines[0].split()
    if not cpus or not all(re.fullmatch(r"CPU\d+", c) for c in cpus):
        raise ValueError(f"line 1 is not a /proc/interrupts header (expected 'CPU0 CPU1 ...'): {lines[0]!r}")
    n = len(cpus)
    rows: list[ParsedRow] = []
    for lineno, ln in enumerate(lines[1:], 2):
        m = re.match(r"^\s*([^\s:]+):(.*)$", ln)
        if not m:
            raise ValueError(f"line {lineno} is not a /proc/interrupts row ('<irq>: counts ...'): {ln!r}")
        irq, rest = m.group(1), m.group(2)
        toks = rest.split()
        counts: list[int] = []
        while toks and len(counts) < n and toks[0].isdigit():
            counts.append(int(toks.pop(0)))
        if not counts:
            raise ValueError(f"line {lineno}: row {irq!r} has no counts: {ln!r}")
        tail = " ".join(toks)
        if not irq.isdigit():
            rows.append(ParsedRow(irq, True, counts, description=tail))
            continue
        # the remainder keeps its own spacing for action names that contain spaces
        remainder = rest.split(None, len(counts))[-1].strip() if len(rest.split()) > len(counts) else ""
        row = ParsedRow(irq, False, counts, description=remainder)
        for pat in (_ROW_6X, _ROW_LEVEL, _ROW_NOHW, _ROW_OLD):
            mm = pat.match(remainder)
            if mm:
                d = mm.groupdict()
                row.chip, row.flow = d.get("chip"), d.get("flow")
                row.hwirq = d.get("hwirq")
                row.actions = _split_actions(d.get("actions"))
                break
        else:
            parts = remainder.split(None, 1)
            row.chip = parts[0] if parts else None
            row.actions = _split_actions(parts[1] if len(parts) > 1 else None)
        rows.append(row)
    if not rows:
        raise ValueError("no rows after the header: expected lines like ' 16:   0   0  IO-APIC  16-fasteoi  ehci'")
    return ProcInterrupts(cpus, rows)


def read_proc_interrupts(path: str | Path = "/proc/interrupts") -> ProcInterrupts:
    """Parse the running machine's /proc/interrupts (or another file)."""
    return parse_proc_interrupts(Path(path).read_text())
