"""/proc/interrupts and /sys/kernel/irq as Linux 6.18 prints them (kernel/irq/proc.c, arch/x86/kernel/irq.c,
kernel/irq/irqdesc.c; kernel-facts §3), checked against real 6.18 captures, and the parser."""
import json
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

import irqlab
from irqlab import procfs
from irqlab.procfs import ArchRow, IrqRow, parse_proc_interrupts, render_proc_interrupts

DATA = Path(__file__).parent / "data"
REAL = (DATA / "proc_interrupts_6.18_firecracker.txt").read_text()  # a real 6.18.44 guest, 2 CPUs, nr_irqs 424


def rows_of(parsed):
    rows = [IrqRow(int(r.irq), r.counts, r.chip, int(r.hwirq) if r.hwirq else None, r.flow, r.actions)
            for r in parsed.device_rows()]
    arch = [ArchRow(r.irq, r.counts if r.description else r.counts[0], r.description or None)
            for r in parsed.rows if r.is_arch]
    return rows, arch


def test_real_6_18_capture_round_trips_byte_for_byte():
    p = parse_proc_interrupts(REAL)
    rows, arch = rows_of(p)
    assert render_proc_interrupts(rows, online_cpus=[0, 1], nr_irqs=424, arch_rows=arch) == REAL


KF_SAMPLE = procfs.SAMPLE_6_18


def test_kernel_facts_sample_exactly():
    rows = [IrqRow(0, [36, 0, 0, 0], "IR-IO-APIC", 2, "edge", ["timer"]),
            IrqRow(9, [0, 0, 0, 0], "IR-IO-APIC", 9, "fasteoi", ["acpi"]),
            IrqRow(16, [0, 0, 1207, 0], "IR-IO-APIC", 16, "fasteoi", ["ehci_hcd:usb1", "vfio-intx(0000:03:00.0)"]),
            IrqRow(124, [0, 0, 0, 48211], "IR-PCI-MSIX-0000:01:00.0", 0, "edge", ["vfio-msix[0](0000:01:00.0)"]),
            IrqRow(125, [0, 0, 0, 0], "IR-PCI-MSIX-0000:01:00.0", 1, "edge", ["vfio-msix[1](0000:01:00.0)"]),
            IrqRow(126, [5, 0, 0, 0], "IR-IO-APIC", 5, "edge", [])]  # no action: not printed
    arch = [ArchRow("NMI", [0] * 4, "Non-maskable interrupts"),
            ArchRow("LOC", [1520336, 1498821, 1611093, 1447310], "Local timer interrupts"),
            ArchRow("ERR", 0), ArchRow("MIS", 0),
            ArchRow("PIN", [0, 0, 0, 12], "Posted-interrupt notification event"),
            ArchRow("NPI", [0] * 4, "Nested posted-interrupt event"),
            ArchRow("PIW", [0, 0, 3, 0], "Posted-interrupt wakeup event")]
    assert render_proc_interrupts(rows, online_cpus=[0, 1, 2, 3], nr_irqs=512, arch_rows=arch) == KF_SAMPLE


@pytest.mark.parametrize("nr_irqs,prec", [(1, 3), (999, 3), (1000, 4), (9999, 4), (10000, 5), (10**12, 10)])
def test_prec_rule(nr_irqs, prec):
    assert procfs.proc_prec(nr_irqs) == prec


def test_no_domain_prints_blanks_and_chipless_rows():
    row = IrqRow(7, [1], None, None, "edge", ["x"])
    line = render_proc_interrupts([row], online_cpus=[0], nr_irqs=100, arch_rows=[]).splitlines()[1]
    assert line == "  7:          1     None    -edge      x"
    row = IrqRow(7, [1], "", 3, "edge", ["x"])
    assert "       -   3-edge" in render_proc_interrupts([row], online_cpus=[0], nr_irqs=100, arch_rows=[])


def test_sysfs_attributes_match_real_6_18():
    real = json.loads((DATA / "sys_kernel_irq_24_6.18_firecracker.json").read_text())
    row = IrqRow(24, [1, 0], "IO-APIC", 5, "edge", ["ACPI:Ged"])
    mine = procfs.render_sys_kernel_irq(row, possible_cpus_counts=[1, 0], type_="edge", wakeup=False, name="edge")
    assert mine == real


def test_sysfs_empty_actions_and_comma_join():
    row = IrqRow(16, [0, 2], "IR-IO-APIC", 16, "fasteoi", [])
    s = procfs.render_sys_kernel_irq(row, possible_cpus_counts=[0, 2], type_="level", wakeup=False, name="fasteoi")
    assert s["actions"] == "" and s["type"] == "level\n" and s["per_cpu_count"] == "0,2\n"
    row.actions = ["a", "b"]
    assert procfs.render_sys_kernel_irq(row, possible_cpus_counts=[0], type_="level", wakeup=True,
                                        name=None)["actions"] == "a,b\n"


def test_host_proc_interrupts_and_sysfs():
    host = irqlab.scenarios.shared_intx()
    host.raise_intx("0000:00:19.0")
    text = host.proc_interrupts()
    lines = text.splitlines()
    assert lines[0] == " " * 11 + "CPU0       CPU1       "
    assert lines[1] == " 16:          1          0 IR-IO-APIC  16-fasteoi   eth0, vfio-intx(0000:04:00.0)"
    assert "PIN:" in text and "ERR:          0" in text
    s = host.sys_kernel_irq(16)
    assert s["actions"] == "eth0,vfio-intx(0000:04:00.0)\n" and s["type"] == "level\n" and s["name"] == "fasteoi\n"
    assert parse_proc_interrupts(text).row(16).actions == ["eth0", "vfio-intx(0000:04:00.0)"]


OLD_60 = """\
            CPU0       CPU1       
   0:         44          0   IO-APIC   2-edge      timer
 123:          0     311203  IR-PCI-MSI 524288-edge      vfio-msix[0](0000:01:00.0)
 NMI:          0          0   Non-maskable interrupts
 ERR:          0
"""
OLD_3X = """\
           CPU0       CPU1       
  0:        127          0   IO-APIC-edge      timer
  8:          1          0   IO-APIC-edge      rtc0
 44:    2371111          0   PCI-MSI-edge      eth0
 45:         17      93102   PCI-MSI-edge      ahci, something with spaces
NMI:          0          0   Non-maskable interrupts
LOC:    9861413    9803420   Local timer interrupts
ERR:          0
MIS:          0
"""
ARM = """\
           CPU0       CPU1       
 11:      84537      90001     GICv3  27 Level     arch_timer
 47:       1234          0     GICv3  78 Edge      eth0
IPI0:      3000       2999       Rescheduling interrupts
Err:          0
"""


def test_parse_older_and_other_layouts():
    p = parse_proc_interrupts(OLD_60)
    r = p.row(123)
    assert (r.chip, r.hwirq, r.flow, r.counts) == ("IR-PCI-MSI", "524288", "edge", [0, 311203])
    assert p.vfio_rows() == [r]
    p = parse_proc_interrupts(OLD_3X)
    assert (p.row(0).chip, p.row(0).flow, p.row(0).actions) == ("IO-APIC", "edge", ["timer"])
    assert p.row(45).actions == ["ahci", "something with spaces"]
    assert p.row("ERR").counts == [0] and p.row("LOC").total == 9861413 + 9803420
    assert p.busiest_cpu() == (0, "CPU0")
    p = parse_proc_interrupts(ARM)
    assert (p.row(11).chip, p.row(11).hwirq, p.row(11).flow) == ("GICv3", "27", "Level")
    assert p.row("IPI0").is_arch


def test_parse_errors_say_what_is_wrong():
    with pytest.raises(ValueError, match="header"):
        parse_proc_interrupts("hello world\n 1: 2 3\n")
    with pytest.raises(ValueError, match="empty"):
        parse_proc_interrupts("")
    with pytest.raises(ValueError, match="line 2"):
        parse_proc_interrupts("  CPU0\nnot a row\n")
    with pytest.raises(TypeError):
        parse_proc_interrupts(b"CPU0")


def test_this_machine_parses():
    try:
        text = Path("/proc/interrupts").read_text()
    except OSError:
        pytest.skip("no /proc/interrupts here")
    p = parse_proc_interrupts(text)
    assert p.cpus and p.rows and p.to_records()
    assert "<table>" in p._repr_html_() and str(p)


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789:_()[]-.", min_size=1, max_size=20)


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 6), st.lists(st.tuples(st.integers(0, 2000), st.sampled_from(["IR-IO-APIC", "IO-APIC",
       "IR-PCI-MSIX-0000:01:00.0"]), st.integers(0, 300), st.sampled_from(["edge", "fasteoi"]),
       st.lists(names, min_size=1, max_size=3)), max_size=8, unique_by=lambda t: t[0]),
       st.integers(0, 2**32 - 1), st.integers(1, 20000))
def test_render_parse_round_trip(ncpus, specs, big, nr_irqs):
    rows = [IrqRow(i, [(big + k * i) % 2**32 for k in range(ncpus)], chip, hw, flow, acts)
            for i, chip, hw, flow, acts in specs]
    text = render_proc_interrupts(rows, online_cpus=list(range(ncpus)), nr_irqs=nr_irqs,
                                  arch_rows=procfs.default_arch_rows(ncpus))
    p = parse_proc_interrupts(text)
    assert len(p.cpus) == ncpus
    for r in rows:
        got = p.row(r.irq)
        assert (got.counts, got.chip, got.hwirq, got.flow, got.actions) == (r.counts, r.chip_name, str(r.hwirq),
                                                                            r.flow_name, r.actions)
