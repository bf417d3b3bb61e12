"""/proc/interrupts and /sys/kernel/irq as Linux 6.18 prints them (kernel/irq/proc.c show_interrupts,
arch/x86/kernel/irq.c arch_show_interrupts, kernel/irq/irqdesc.c *_show), checked against the course's sample, a real
6.18 capture and this machine's own files; and the parser, row by row on real captures from 2.4 to 6.18 (x86, ARM,
arm64, RISC-V, s390, Xen, Hyper-V, Apple AIC) in tests/data/proc_interrupts/captures."""
import json
import os
import platform
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import irqlab
from irqlab import procfs
from irqlab.procfs import ArchRow, IrqRow, parse_proc_interrupts, render_proc_interrupts

DATA = Path(__file__).parent / "data"
FIX = DATA / "proc_interrupts" / "synthetic"      # layouts made by hand (counts invented): not captures
CAPTURES = DATA / "proc_interrupts" / "captures"  # real files, each with NAME.json saying where it came from
REAL = (CAPTURES / "x86_64_6.18.44_firecracker_2cpu.txt").read_text()  # a real 6.18.44 guest, 2 CPUs, nr_irqs 424


def fixture(name):
    return (FIX / name).read_text()


def rows_of(parsed):
    """IrqRow/ArchRow back from a parsed 6.x file (the inverse of the renderer)."""
    rows = [IrqRow(int(r.irq), r.counts, r.chip, int(r.hwirq) if r.hwirq else None, r.flow, r.actions)
            for r in parsed.device_rows()]
    arch = [ArchRow(r.irq, r.counts if r.description else r.counts[0], r.description or None)
            for r in parsed.rows if r.is_arch]
    return rows, arch


def prec_of(text):
    return len(text) - len(text.lstrip(" ")) - 8


# ------------------------------------------------------------------------------------------- rendering
SAMPLE_ROWS = [
    IrqRow(0, [36, 0, 0, 0], "IR-IO-APIC", 2, "edge", ["timer"]),
    IrqRow(125, [0, 0, 0, 0], "IR-PCI-MSIX-0000:01:00.0", 1, "edge", ["vfio-msix[1](0000:01:00.0)"]),
    IrqRow(9, [0, 0, 0, 0], "IR-IO-APIC", 9, "fasteoi", ["acpi"]),
    IrqRow(16, [0, 0, 1207, 0], "IR-IO-APIC", 16, "fasteoi", ["ehci_hcd:usb1", "vfio-intx(0000:03:00.0)"]),
    IrqRow(124, [0, 0, 0, 48211], "IR-PCI-MSIX-0000:01:00.0", 0, "edge", ["vfio-msix[0](0000:01:00.0)"]),
    IrqRow(126, [5, 0, 0, 0], "IR-IO-APIC", 5, "edge", []),  # no action: 6.18 does not print it
]
SAMPLE_ARCH = [ArchRow("NMI", [0] * 4, "Non-maskable interrupts"),
               ArchRow("LOC", [1520336, 1498821, 1611093, 1447310], "Local timer interrupts"),
               ArchRow("ERR", 0), ArchRow("MIS", 0),
               ArchRow("PIN", [0, 0, 0, 12], "Posted-interrupt notification event"),
               ArchRow("NPI", [0] * 4, "Nested posted-interrupt event"),
               ArchRow("PIW", [0, 0, 3, 0], "Posted-interrupt wakeup event")]


def test_course_sample_exactly():
    text = render_proc_interrupts(SAMPLE_ROWS, online_cpus=[0, 1, 2, 3], nr_irqs=512, arch_rows=SAMPLE_ARCH)
    assert text == procfs.SAMPLE_6_18 == fixture("a_6.18_course_sample.txt")


def test_real_6_18_capture_round_trips_byte_for_byte():
    rows, arch = rows_of(parse_proc_interrupts(REAL))
    assert render_proc_interrupts(rows, online_cpus=[0, 1], nr_irqs=424, arch_rows=arch) == REAL


@pytest.mark.parametrize("name,ncpus,nr_irqs", [("d_6.18_kvm_host_8cpu.txt", 8, 2120),
                                                ("a_6.18_course_sample.txt", 4, 512)])
def test_6_18_fixtures_round_trip(name, ncpus, nr_irqs):
    text = fixture(name)
    rows, arch = rows_of(parse_proc_interrupts(text))
    assert render_proc_interrupts(rows, online_cpus=list(range(ncpus)), nr_irqs=nr_irqs, arch_rows=arch) == text


@pytest.mark.parametrize("nr_irqs,prec", [(1, 3), (999, 3), (1000, 4), (9999, 4), (10000, 5), (10**12, 10)])
def test_prec_rule(nr_irqs, prec):
    assert procfs.proc_prec(nr_irqs) == prec
    header = render_proc_interrupts([], online_cpus=[0], nr_irqs=nr_irqs, arch_rows=[]).splitlines()[0]
    assert header == " " * (prec + 8) + "CPU0       "


def test_blanks_without_domain_none_and_unnamed_chips_no_flow_name():
    def line(row):
        return render_proc_interrupts([row], online_cpus=[0], nr_irqs=100, arch_rows=[]).splitlines()[1]
    assert line(IrqRow(7, [1], None, None, "edge", ["x"])) == "  7:          1     None    -edge      x"
    assert line(IrqRow(7, [1], "", 3, "edge", ["x"])) == "  7:          1        -   3-edge      x"
    assert line(IrqRow(7, [1], "IO-APIC", 3, None, ["x", "y"])) == "  7:          1  IO-APIC   3  x, y"


def test_offline_cpus_sorting_skipping_and_arch_rows():
    rows = [IrqRow(124, [0, 0, 1207, 48211], "IR-PCI-MSIX-0000:01:00.0", 0, "edge", ["vfio-msix[0](0000:01:00.0)"]),
            IrqRow(16, [0, 7, 0, 0], "IR-IO-APIC", 16, "fasteoi", ["vfio-intx(0000:03:00.0)"]),
            IrqRow(0, [36, 0, 0, 0], "IR-IO-APIC", 2, "edge", ["timer"]),
            IrqRow(27, [0, 0, 0, 0], "IR-IO-APIC", 1, "edge", [])]
    arch = [r for r in procfs.default_arch_rows(4, {"PIN": [0, 0, 9, 12]})
            if r.name in ("NMI", "LOC", "ERR", "MIS", "PIN")]
    text = render_proc_interrupts(rows, online_cpus=[0, 1, 3], nr_irqs=512, arch_rows=arch)
    assert text == fixture("e_6.18_cpu2_offline.txt")
    # counts may also be given one per online CPU
    rows[0].counts = [0, 0, 48211]
    assert render_proc_interrupts(rows, online_cpus=[0, 1, 3], nr_irqs=512, arch_rows=arch).splitlines()[3] \
        == text.splitlines()[3]


def test_default_arch_rows_order_and_texts():
    rows = procfs.default_arch_rows(2, {"ERR": [1, 2], "PIN": [3, 4]})
    assert [(r.name, r.text) for r in rows] == [
        ("NMI", "Non-maskable interrupts"), ("LOC", "Local timer interrupts"), ("SPU", "Spurious interrupts"),
        ("PMI", "Performance monitoring interrupts"), ("IWI", "IRQ work interrupts"),
        ("RTR", "APIC ICR read retries"), ("RES", "Rescheduling interrupts"), ("CAL", "Function call interrupts"),
        ("TLB", "TLB shootdowns"), ("TRM", "Thermal event interrupts"), ("THR", "Threshold APIC interrupts"),
        ("DFR", "Deferred Error APIC interrupts"), ("MCE", "Machine check exceptions"),
        ("MCP", "Machine check polls"), ("ERR", None), ("MIS", None),
        ("PIN", "Posted-interrupt notification event"), ("NPI", "Nested posted-interrupt event"),
        ("PIW", "Posted-interrupt wakeup event")]
    by = {r.name: r for r in rows}
    assert by["ERR"].counts == 3 and by["MIS"].counts == 0 and by["PIN"].counts == [3, 4] and by["NMI"].counts == [0, 0]
    text = render_proc_interrupts([], online_cpus=[0, 1], nr_irqs=10, arch_rows=rows)
    assert "ERR:          3\n" in text and "PIN:          3          4   Posted-interrupt notification event\n" in text
    with pytest.raises(ValueError, match="HYP"):
        procfs.default_arch_rows(2, {"HYP": [0, 0]})


def test_bad_python_input_says_what_to_fix():
    ok = {"online_cpus": [0, 1], "nr_irqs": 100, "arch_rows": []}
    with pytest.raises(ValueError, match="one per online CPU"):
        render_proc_interrupts([IrqRow(1, [1], "IO-APIC", 1, "edge", ["x"])], **ok)
    with pytest.raises(ValueError, match="nr_irqs"):
        render_proc_interrupts([IrqRow(100, [1, 2], "IO-APIC", 1, "edge", ["x"])], **ok)
    with pytest.raises(ValueError, match="negative"):
        render_proc_interrupts([IrqRow(1, [1, -2], "IO-APIC", 1, "edge", ["x"])], **ok)
    with pytest.raises(TypeError, match="ints"):
        render_proc_interrupts([IrqRow(1, [1, "2"], "IO-APIC", 1, "edge", ["x"])], **ok)
    with pytest.raises(TypeError, match="actions"):
        render_proc_interrupts([IrqRow(1, [1, 2], "IO-APIC", 1, "edge", "x")], **ok)
    with pytest.raises(ValueError, match="ascending"):
        render_proc_interrupts([], online_cpus=[1, 0], nr_irqs=100, arch_rows=[])
    with pytest.raises(ValueError, match="nr_irqs"):
        render_proc_interrupts([], online_cpus=[0], nr_irqs=0, arch_rows=[])
    with pytest.raises(ValueError, match="level"):
        procfs.render_sys_kernel_irq(IrqRow(1, [0], None, None, None, []), possible_cpus_counts=[0],
                                     type_="fasteoi", wakeup=False, name=None)


def test_counts_wrap_like_unsigned_int():
    text = render_proc_interrupts([IrqRow(1, [2**32 + 5], "IO-APIC", 1, "edge", ["x"])], online_cpus=[0],
                                  nr_irqs=16, arch_rows=[])
    assert parse_proc_interrupts(text).row(1).counts == [5]


# ----------------------------------------------------------------------------------------------- sysfs
def test_sysfs_attributes_match_real_6_18():
    real = json.loads((DATA / "sys_kernel_irq_24_6.18_firecracker.json").read_text())
    row = IrqRow(24, [1, 0], "IO-APIC", 5, "edge", ["ACPI:Ged"])
    mine = procfs.render_sys_kernel_irq(row, possible_cpus_counts=[1, 0], type_="edge", wakeup=False, name="edge")
    assert mine == real


def test_sysfs_empty_files_and_comma_join():
    row = IrqRow(16, [0, 2], None, None, None, [])
    s = procfs.render_sys_kernel_irq(row, possible_cpus_counts=[0, 2, 0, 0], type_="level", wakeup=True, name=None)
    assert s == {"per_cpu_count": "0,2,0,0\n", "chip_name": "", "hwirq": "", "type": "level\n",
                 "wakeup": "enabled\n", "name": "", "actions": ""}
    row = IrqRow(16, [0, 2], "", 0, "fasteoi", ["a", "b"])
    s = procfs.render_sys_kernel_irq(row, possible_cpus_counts=[0], type_="level", wakeup=False, name="fasteoi")
    assert (s["actions"], s["chip_name"], s["hwirq"]) == ("a,b\n", "", "0\n")


SYSFS_FILES = ("per_cpu_count", "chip_name", "hwirq", "type", "wakeup", "name", "actions")


def test_this_machines_sysfs_agrees_with_its_proc_interrupts():
    base = Path("/sys/kernel/irq")
    try:
        live = parse_proc_interrupts(Path("/proc/interrupts").read_text())
        dirs = [d for d in base.iterdir() if d.name.isdigit()]
    except OSError:
        pytest.skip("no /proc/interrupts or /sys/kernel/irq here")
    checked = 0
    for r in live.device_rows():
        d = base / r.irq
        if not d.is_dir() or r.hwirq is None or r.flow is None:
            continue
        files = {f: (d / f).read_text() for f in SYSFS_FILES}
        mine = procfs.render_sys_kernel_irq(
            IrqRow(int(r.irq), r.counts, r.chip, int(r.hwirq), r.flow, r.actions),
            possible_cpus_counts=[int(c) for c in files["per_cpu_count"].split(",")],
            type_=files["type"].strip(), wakeup=files["wakeup"] == "enabled\n", name=r.flow)
        assert {k: files[k] for k in mine} == mine
        checked += 1
    assert checked or not dirs


# --------------------------------------------------------------------------------------------- parsing
def test_parse_6_18_sample_and_helpers():
    p = parse_proc_interrupts(fixture("a_6.18_course_sample.txt"))
    assert p.cpus == ["CPU0", "CPU1", "CPU2", "CPU3"]
    r = p.row(124)
    assert (r.chip, r.hwirq, r.flow, r.actions, r.counts, r.total) == (
        "IR-PCI-MSIX-0000:01:00.0", "0", "edge", ["vfio-msix[0](0000:01:00.0)"], [0, 0, 0, 48211], 48211)
    assert [r.irq for r in p.vfio_rows()] == ["16", "124", "125"]
    assert p.row("16").actions == ["ehci_hcd:usb1", "vfio-intx(0000:03:00.0)"]
    assert p.posted_interrupt_counters() == {"PIN": [0, 0, 0, 12], "NPI": [0] * 4, "PIW": [0, 0, 3, 0]}
    assert p.busiest_cpu() == (3, "CPU3")
    assert p.row("ERR").counts == [0] and p.row("LOC").description == "Local timer interrupts"
    rec = p.to_records()
    assert rec[0]["CPU0"] == 36 and rec[0]["chip"] == "IR-IO-APIC" and rec[-1]["irq"] == "PIW"
    assert "<table>" in p._repr_html_() and "vfio-intx(0000:03:00.0)" in str(p)
    with pytest.raises(KeyError, match="no row '99'"):
        p.row(99)


def test_parse_6_0_layout():
    p = parse_proc_interrupts(fixture("b_6.0_ir_pci_msi_4cpu.txt"))
    r = p.row(123)
    assert (r.chip, r.hwirq, r.flow, r.counts) == ("IR-PCI-MSI", "524288", "edge", [0, 311203, 0, 0])
    assert p.row(125).hwirq == "1048576" and p.row(125).actions == ["nvme0q0"]
    assert p.row(7).actions == [] and p.row(7).counts == [0, 0, 1, 0]  # 6.0 printed a count without an action
    assert [r.irq for r in p.vfio_rows()] == ["16", "123", "124"]
    assert p.posted_interrupt_counters()["PIW"] == [0, 17, 0, 2]
    assert p.busiest_cpu() == (1, "CPU1")


def test_parse_3_x_layout_without_hwirq():
    p = parse_proc_interrupts(fixture("c_3.x_io_apic_edge_2cpu.txt"))
    assert (p.row(0).chip, p.row(0).hwirq, p.row(0).flow, p.row(0).actions) == ("IO-APIC", None, "edge", ["timer"])
    assert (p.row(40).chip, p.row(40).flow) == ("HPET_MSI", "edge")
    assert (p.row(44).chip, p.row(44).flow, p.row(44).counts) == ("PCI-MSI", "edge", [2371111, 0])
    assert p.row(16).actions == ["ehci_hcd:usb1", "uhci_hcd:usb3"]
    assert p.posted_interrupt_counters() == {} and p.vfio_rows() == []
    assert p.row("LOC").total == 9861413 + 9803420 and p.busiest_cpu() == (0, "CPU0")


def test_parse_8_cpu_kvm_host():
    p = parse_proc_interrupts(fixture("d_6.18_kvm_host_8cpu.txt"))
    assert len(p.cpus) == 8 and all(len(r.counts) == 8 for r in p.rows if r.irq not in ("ERR", "MIS"))
    assert p.row(16).actions == ["ehci_hcd:usb1", "vfio-intx(0000:05:00.0)"]
    assert [r.irq for r in p.vfio_rows()] == ["16", "140", "141", "142", "143"]
    assert p.row(140).counts[7] == 1482115 and p.busiest_cpu() == (7, "CPU7")
    assert p.posted_interrupt_counters()["PIN"] == [0, 0, 0, 0, 0, 0, 1204, 88213]
    assert "150" not in [r.irq for r in p.rows]  # allocated but never requested: not printed


def test_parse_offline_cpus_wide_counts_spaces_and_other_arches():
    p = parse_proc_interrupts(fixture("e_6.18_cpu2_offline.txt"))
    assert p.cpus == ["CPU0", "CPU1", "CPU3"] and p.row(124).counts == [0, 0, 48211]
    wide = ("           CPU0       CPU1       \n"
            " 45: 4294967295 1234567890   PCI-MSI-edge      ahci, something with spaces\n"
            " 46: 4294967295 4294967295 IR-PCI-MSI-0000:00:17.0   0-edge      ahci[0000:00:17.0]\n"
            "TAU:          1          2   PowerPC             Thermal Assist (cpu temp)\n"
            "ERR:          0\n")
    p = parse_proc_interrupts(wide)
    assert p.row(45).counts == [4294967295, 1234567890]
    assert p.row(45).actions == ["ahci", "something with spaces"]
    assert p.row(46).total == 2 * 4294967295 and p.row(46).chip == "IR-PCI-MSI-0000:00:17.0"
    assert p.row("TAU").description == "PowerPC             Thermal Assist (cpu temp)"
    arm = ("           CPU0       CPU1       \n"
           " 11:      84537      90001     GICv3  27 Level     arch_timer\n"
           " 47:       1234          0     GICv3  78 Edge      eth0\n"
           " 60:          0          0  xen-dyn     -event     xenbus\n"
           "IPI0:      3000       2999       Rescheduling interrupts\n"
           "Err:          0\n")
    p = parse_proc_interrupts(arm)
    assert (p.row(11).chip, p.row(11).hwirq, p.row(11).trigger, p.row(11).flow) == ("GICv3", "27", "Level", None)
    assert (p.row(60).chip, p.row(60).hwirq, p.row(60).flow, p.row(60).actions) == ("xen-dyn", None, "event",
                                                                                     ["xenbus"])
    assert p.row("IPI0").is_arch and p.row("Err").counts == [0]


def test_parse_errors_say_what_is_wrong():
    with pytest.raises(ValueError, match=r"line 1 .*header.*'hello world'"):
        parse_proc_interrupts("hello world\n 1: 2 3\n")
    with pytest.raises(ValueError, match="empty"):
        parse_proc_interrupts("\n  \n")
    with pytest.raises(ValueError, match=r"line 3 .*not a /proc/interrupts row.*'not a row'"):
        parse_proc_interrupts("  CPU0\n  1:   5   IO-APIC   1-edge  i8042\nnot a row\n")
    with pytest.raises(ValueError, match=r"line 2: row '1' has no counts after '1:'"):
        parse_proc_interrupts("  CPU0  CPU1\n  1:   IO-APIC   1-edge  i8042\n")
    with pytest.raises(ValueError, match="no rows"):
        parse_proc_interrupts("           CPU0       CPU1       \n")
    with pytest.raises(TypeError, match="bytes"):
        parse_proc_interrupts(b"CPU0")


def test_this_machine_parses_and_6_18_renders_it_byte_for_byte():
    try:
        text = Path("/proc/interrupts").read_text()
    except OSError:
        pytest.skip("no /proc/interrupts here")
    p = parse_proc_interrupts(text)
    assert procfs.read_proc_interrupts().cpus == p.cpus
    assert p.cpus and p.rows and len(p.to_records()) == len(p.rows) and str(p) and "<table>" in p._repr_html_()
    assert all(len(r.counts) == len(p.cpus) for r in p.device_rows())
    release = tuple(int(x) for x in re.findall(r"\d+", os.uname().release)[:2])
    if platform.machine() in ("x86_64", "i686") and release >= (6, 13):  # the 6.13+ show_interrupts layout
        rows, arch = rows_of(p)
        prec = prec_of(text)
        nr_irqs = max(10 ** (prec - 1) if prec > 3 else 1, *(r.irq + 1 for r in rows))  # gives the same prec
        again = render_proc_interrupts(rows, online_cpus=[int(c[3:]) for c in p.cpus], nr_irqs=nr_irqs,
                                       arch_rows=arch)
        assert again == text


def test_host_proc_interrupts_and_sysfs():
    host = irqlab.scenarios.shared_intx()
    host.raise_intx("0000:00:19.0")
    text = host.proc_interrupts()
    lines = text.splitlines()
    assert lines[0] == " " * 11 + "CPU0       CPU1       "
    assert lines[1] == " 16:          1          0 IR-IO-APIC  16-fasteoi   eth0, vfio-intx(0000:04:00.0)"
    assert "PIN:" in text and "ERR:          0" in text and "HRE:" not in text
    s = host.sys_kernel_irq(16)
    assert s["actions"] == "eth0,vfio-intx(0000:04:00.0)\n" and s["type"] == "level\n" and s["name"] == "fasteoi\n"
    assert parse_proc_interrupts(text).row(16).actions == ["eth0", "vfio-intx(0000:04:00.0)"]


# ------------------------------------------------------------------------------------ render -> parse
names = st.from_regex(r"[a-z][a-z0-9:_()\[\].-]{0,18}", fullmatch=True)
irq_rows = st.lists(st.tuples(st.integers(0, 5000),
                              st.sampled_from(["IR-IO-APIC", "IO-APIC", "IR-PCI-MSIX-0000:01:00.0", "DMAR-MSI",
                                               None, ""]),
                              st.one_of(st.none(), st.integers(0, 2**20)),
                              st.sampled_from(["edge", "fasteoi", None]),
                              st.lists(names, max_size=3)),
                    max_size=10, unique_by=lambda t: t[0])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 11), min_size=1, max_size=8, unique=True), irq_rows,
       st.lists(st.integers(0, 2**32 - 1), min_size=12, max_size=12), st.integers(0, 10**6))
def test_render_parse_round_trip(online, specs, pool, extra):
    online = sorted(online)
    rows = [IrqRow(irq, [pool[(irq + k) % 12] for k in range(12)], chip, hw, flow, acts)
            for irq, chip, hw, flow, acts in specs]
    nr_irqs = max([r.irq for r in rows], default=0) + 1 + extra
    text = render_proc_interrupts(rows, online_cpus=online, nr_irqs=nr_irqs,
                                  arch_rows=procfs.default_arch_rows(12))
    p = parse_proc_interrupts(text)
    assert p.cpus == [f"CPU{c}" for c in online]
    assert [r.irq for r in p.device_rows()] == [str(r.irq) for r in sorted(rows, key=lambda r: r.irq) if r.actions]
    for r in rows:
        if not r.actions:
            continue
        got = p.row(r.irq)
        want_chip = "None" if r.chip_name is None else (r.chip_name or "-")
        assert (got.counts, got.chip, got.hwirq, got.flow, got.actions) == (
            [r.counts[c] for c in online], want_chip, None if r.hwirq is None else str(r.hwirq), r.flow_name,
            r.actions)
    assert p.row("ERR").counts == [0] and len(p.row("PIW").counts) == len(online)


# ------------------------------------------------------------------------------------------ real captures
CAPTURE_NAMES = sorted(p.stem for p in CAPTURES.glob("*.txt"))


def capture(name):
    return (CAPTURES / f"{name}.txt").read_text(encoding="utf-8")


def capture_meta(name):
    return json.loads((CAPTURES / f"{name}.json").read_text(encoding="utf-8"))


def expected_rows(name):
    """NAME.rows: one JSON array per row, in file order: [irq, counts, chip, hwirq, trigger, flow, actions] for a
    device row, [name, counts, description] for an arch row (reviewed against the kernel's printf of that era)."""
    return [json.loads(ln) for ln in (CAPTURES / f"{name}.rows").read_text(encoding="utf-8").splitlines()]


def test_at_least_ten_captures_each_with_its_source():
    assert len(CAPTURE_NAMES) >= 10
    arches = set()
    for name in CAPTURE_NAMES:
        meta = capture_meta(name)
        for key in ("source", "where", "kernel", "kernel_known_from", "arch", "machine", "cpus", "transform",
                    "exercises"):
            assert meta.get(key) not in (None, "", []), f"{name}.json lacks {key}"
        assert meta["source"].startswith(("https://github.com/", "https://lore.kernel.org/", "this machine's"))
        assert meta["cpus"] == len(parse_proc_interrupts(capture(name)).cpus), name
        assert (CAPTURES / f"{name}.rows").exists(), name
        arches.add(meta["arch"].split()[0])
    assert {"i386", "x86_64", "arm", "arm64", "riscv64", "s390x"} <= arches
    assert not (set(p.stem for p in CAPTURES.glob("*.json")) - set(CAPTURE_NAMES))  # no orphan sidecars


@pytest.mark.parametrize("name", CAPTURE_NAMES)
def test_capture_is_in_the_kernels_columns(name):
    """Every device row was printed "%*d:" then one "%10u" per CPU ("%3d: " then "%10u " before 2.6.3x: the same
    columns): the copy must still have each count ending where the kernel put it, and the header's CPU names 11 apart.
    A copying slip (a lost or added space or digit) shows here."""
    lines = [ln for ln in capture(name).splitlines() if ln.strip()]
    starts = [m.start() for m in re.finditer(r"CPU\d+", lines[0])]
    assert all(b - a == 11 for a, b in zip(starts, starts[1:]))
    colons = set()
    for ln in lines[1:]:
        head, _, _ = ln.partition(":")
        if not head.strip().isdigit():
            continue
        colon = len(head)
        colons.add(colon)
        for i, m in enumerate(re.finditer(r"\S+", ln[colon + 1:])):
            if not m.group().isdigit():
                break
            assert colon + 1 + m.end() == colon + 1 + 11 * (i + 1), (name, ln)
    assert len(colons) == 1


@pytest.mark.parametrize("name", CAPTURE_NAMES)
def test_capture_rows_parse_to(name):
    """Row by row: irq, every count, chip, hwirq, Level/Edge, flow name and actions (NAME.rows)."""
    p = parse_proc_interrupts(capture(name))
    want = expected_rows(name)
    assert len(p.rows) == len(want)
    for r, w in zip(p.rows, want):
        if len(w) == 3:
            assert (r.is_arch, r.irq, r.counts, r.description) == (True, *w), w
        else:
            assert (r.is_arch, r.irq, r.counts, r.chip, r.hwirq, r.trigger, r.flow, r.actions) == (False, *w), w
    text = capture(name)
    assert [r.irq for r in p.rows] == [ln.split(":")[0].strip() for ln in text.splitlines()[1:] if ln.strip()]


@pytest.mark.parametrize("name", CAPTURE_NAMES)
def test_capture_fields_account_for_every_character(name):
    """Independent of NAME.rows: the counts read at the kernel's fixed columns equal the parsed counts, and the
    parsed chip, hwirq, trigger, flow and actions put back together give the row's text after the counts."""
    p = parse_proc_interrupts(capture(name))
    lines = [ln for ln in capture(name).splitlines()[1:] if ln.strip()]
    for r, ln in zip(p.rows, lines):
        colon = ln.index(":")
        if not r.is_arch:
            cols = [ln[colon + 1 + 11 * i: colon + 1 + 11 * (i + 1)] for i in range(len(r.counts))]
            assert [int(c) for c in cols] == r.counts, ln
            flow = (f"{r.hwirq}-{r.flow}" if r.hwirq and r.flow and not r.trigger else
                    " ".join(x for x in (r.hwirq, r.trigger, f"-{r.flow}" if r.flow else None) if x))
            if r.chip and r.flow and not (r.hwirq or r.trigger) and f"{r.chip}-{r.flow}" in ln:
                rebuilt = f"{r.chip}-{r.flow} {', '.join(r.actions)}"         # glued: "IO-APIC-edge"
            else:
                rebuilt = " ".join(x for x in (r.chip, flow, ", ".join(r.actions)) if x)
            rest = ln[colon + 1:].split(None, len(r.counts))[-1] if len(ln[colon + 1:].split()) > len(r.counts) else ""
            assert rebuilt.split() == rest.split(), (ln, rebuilt)
        else:
            assert r.description.split() == ln[colon + 1:].split()[len(r.counts):], ln


def test_apple_aic_chip_with_a_space():
    """drivers/pci/controller/pcie-apple.c names its MSI chip "PCIe MSI": the chip is the words before the hwirq
    that is followed by Level/Edge, not the first word (issue 11: "PCIe MSI 526336 Edge  bcm4377" read as "PCIe")."""
    p = parse_proc_interrupts(capture("arm64_apple_aic2_asahi_8cpu"))
    r = p.row(104)
    assert (r.chip, r.hwirq, r.trigger, r.flow, r.actions) == ("PCIe MSI", "526336", "Edge", None, ["bcm4377"])
    assert r.counts == [39, 7, 52, 6, 25, 18, 43, 28]
    assert (p.row(97).chip, p.row(97).hwirq, p.row(97).actions) == ("PCIe", "12", ["Link up"])
    assert (p.row(100).chip, p.row(100).actions) == ("PCIe MSI", ["PCIe PME", "aerdrv"])
    assert p.row(101).chip == "AIC2" and p.row(101).hwirq == "66296"


def test_xen_on_arm_rows_without_hwirq():
    """No irq domain: " %*s" blanks for the hwirq, then GENERIC_IRQ_SHOW_LEVEL's " %-8s" and desc->name (issue 11:
    "xen-dyn  Edge  -event  xenbus")."""
    p = parse_proc_interrupts(capture("arm_xen_dom0_keystone_gicv2_1cpu"))
    assert (p.row(21).chip, p.row(21).hwirq, p.row(21).trigger, p.row(21).flow, p.row(21).actions) == (
        "xen-dyn", None, "Edge", "event", ["xenbus"])
    assert (p.row(115).flow, p.row(115).actions, p.row(115).counts) == ("virq", ["hvc_console"], [87])
    assert (p.row(25).chip, p.row(25).hwirq, p.row(25).trigger, p.row(25).actions) == ("GIC-0", "318", "Edge", [])
    q = parse_proc_interrupts(capture("arm64_xen_dom0_versal_gicv3_its_2cpu"))
    assert (q.row(42).chip, q.row(42).trigger, q.row(42).flow, q.row(42).actions) == (
        "xen-dyn-lateeoi", "Edge", "event", ["evtchn:xenstored"])
    assert (q.row(37).chip, q.row(37).hwirq, q.row(37).trigger) == ("ITS-MSI", "524288", "Edge")


def test_rows_with_more_counts_than_the_header_has_cpus():
    """ARM 3.0 printed the header for online CPUs but IPI and LOC rows for every present CPU: a phone with three
    cores offline has a 1-CPU header and 4-count rows. Every count is kept; the device rows' text is not a count."""
    p = parse_proc_interrupts(capture("arm_3.0.39_exynos4412_mx2_1of4cpu"))
    assert p.cpus == ["CPU0"]
    assert p.row("IPI1").counts == [154119, 81428, 70899, 205252]
    assert p.row("LOC").counts == [860939, 105545, 102266, 208525] and p.row("LOC").total == 1277275
    assert p.row("IPI3").description == "Single function call interrupts"
    assert (p.row(123).counts, p.row(123).chip, p.row(123).actions) == ([82831], "GIC", ["s3c2440-i2c.1"])
    assert (p.row(353).chip, p.row(353).hwirq, p.row(353).flow, p.row(353).actions) == (
        "exynos-eint", None, None, ["7-0020"])                 # "7-0020" is an i2c client name, not hwirq-flow
    rec = {d["irq"]: d for d in p.to_records()}
    assert rec["LOC"]["CPU0"] == 860939 and rec["LOC"]["extra_counts"] == [105545, 102266, 208525]
    assert rec["123"]["extra_counts"] == [] and p.busiest_cpu() == (0, "CPU0")
    # and a CPU that went offline between the header and a row: fewer counts than CPUs
    q = parse_proc_interrupts("           CPU0       CPU1       CPU2       \n"
                              " 16:          3          9 IR-IO-APIC  16-fasteoi   ehci_hcd:usb1\n")
    assert q.row(16).counts == [3, 9] and q.to_records()[0]["CPU2"] is None and q.busiest_cpu() == (1, "CPU1")


def test_header_with_an_offline_cpu():
    p = parse_proc_interrupts(capture("arm64_6.13plus_tegra264_gicv3_cpu1_offline"))
    assert p.cpus == ["CPU0", "CPU2", "CPU3", "CPU4", "CPU5", "CPU6", "CPU7"]
    assert p.row(25).counts == [186, 66, 52, 64, 58, 67, 62] and p.busiest_cpu() == (0, "CPU0")
    full = parse_proc_interrupts(capture("arm64_6.13plus_tegra264_gicv3_8cpu"))
    assert len(full.cpus) == 8 and full.row(25).hwirq == "547" and full.row(25).trigger == "Level"


def test_no_chip_column_on_arm_2_6():
    """arch/arm/kernel/irq.c before genirq: "%3d: ", "%10u " then "  %s" -- the action, no chip. Told apart from a
    chip column by alignment: the text starts in one column but its first words end in several (a chip is
    right-aligned). The XT-PIC file, all one chip, keeps its chip."""
    p = parse_proc_interrupts(capture("arm_2.6_sep4020_nochip_1cpu"))
    assert all(r.chip is None for r in p.device_rows())
    assert p.row(27).actions == ["sep4020 Timer Tick"] and p.row(1).actions == ["4020KEY"]
    x = parse_proc_interrupts(capture("i386_2.4.21-rc6_xtpic_1cpu"))
    assert {r.chip for r in x.device_rows()} == {"XT-PIC"} and x.row(12).actions == ["PS/2 Mouse"]
    # whitespace collapsed by a paste: no alignment to go by, so the first word is the chip
    pasted = parse_proc_interrupts("CPU0\n1: 0 4020KEY\n27: 18210 sep4020 Timer Tick\n")
    assert (pasted.row(27).chip, pasted.row(27).actions) == ("sep4020", ["Timer Tick"])


def test_glued_chip_and_flow_split_at_a_known_flow_name():
    p = parse_proc_interrupts(capture("x86_64_3.x_xen_pvhvm_8cpu"))
    assert (p.row(23).chip, p.row(23).flow) == ("xen-pirq", "ioapic-level")   # not ("xen-pirq-ioapic", "level")
    assert (p.row(64).chip, p.row(64).flow) == ("xen-percpu", "virq")
    assert (p.row(114).chip, p.row(114).flow, p.row(114).counts[0]) == ("xen-dyn", "event", 749775929)
    assert p.row(65).counts[0] == 4011288744 and p.row("RES").counts[6] == 4269631923
    q = parse_proc_interrupts(capture("x86_64_6.x_xen_hvm_on_qemu_2cpu"))
    assert (q.row(9).chip, q.row(9).hwirq, q.row(9).flow) == ("xen-pirq", "9", "ioapic-level")   # same desc->name
    assert (q.row(38).chip, q.row(38).hwirq, q.row(38).flow) == ("xen-pirq", None, "msi-x")
    old = parse_proc_interrupts(capture("i386_2.6.5_xtpic_ioapic_1cpu"))
    assert [(old.row(i).chip, old.row(i).flow) for i in (0, 1, 9)] == [
        ("XT-PIC", None), ("IO-APIC", "edge"), ("IO-APIC", "level")]
    assert old.row("MIS").counts == [6] and old.row("LOC").counts == [69486209]
    assert procfs._split_glued("XT-PIC-XT") == ("XT-PIC", "XT") and procfs._split_glued("exynos-eint") is None


def test_other_arches_and_hypervisors():
    s = parse_proc_interrupts(capture("s390x_16cpu"))
    assert [r.irq for r in s.rows[:4]] == ["EXT", "I/O", "AIO", "3"] and s.row("I/O").counts[9] == 909
    assert (s.row(3).chip, s.row(3).hwirq, s.row(3).actions) == ("PCI-MSI", None, ["mlx5_async@pci:0002:00:00.0"])
    assert s.row("CLK").description == "[EXT] Clock Comparator" and len(s.device_rows()) == 22
    h = parse_proc_interrupts(capture("x86_64_hyperv_guest_2cpu"))
    assert [r.irq for r in h.device_rows()] == ["8", "9"] and h.row("HVS").counts == [1065446, 1097106]
    r = parse_proc_interrupts(capture("riscv64_6.1-rc2_rzfive_plic_1cpu")).row(1)
    assert (r.chip, r.hwirq, r.trigger, r.actions) == ("SiFive PLIC", "412", "Level", ["1004b800.serial:rx err"])
    a = parse_proc_interrupts(capture("riscv64_6.8-rc6_aia_qemu_16cpu_nobody_cared"))
    assert (a.row(11).chip, a.row(11).hwirq, a.row(11).trigger, a.row(11).flow) == (
        "APLIC-MSI-d000000.aplic", "8", "Level", "fasteoi")
    assert a.row(11).total == 100001 and a.row(12).total == 100000          # note_interrupt's 100,000 window
    t = parse_proc_interrupts(capture("x86_64_6.2-6.12_thinkpad_l16g2_14cpu"))
    assert (t.row(151).chip, t.row(151).hwirq, t.row(151).flow, t.row(151).actions) == (
        "intel-gpio", "139", None, ["ELAN06DA:00"])
    assert (t.row(170).chip, t.row(170).hwirq, t.row(170).actions) == ("IR-PCI-MSIX-0000:04:00.0", "10", ["nvme0q10"])
    assert t.posted_interrupt_counters()["PIN"][:2] == [3374, 4884] and t.busiest_cpu() == (10, "CPU10")


def test_flow_names_are_the_kernels():
    """FLOW_NAMES are names the kernel passes as desc->name; each appears in some capture or in the 6.18 tree."""
    seen = set()
    for name in CAPTURE_NAMES:
        seen |= {r.flow for r in parse_proc_interrupts(capture(name)).device_rows() if r.flow}
    assert seen <= set(procfs.FLOW_NAMES)
    assert {"edge", "fasteoi", "level", "ioapic-edge", "ioapic-level", "msi", "msi-x", "event", "ipi", "virq"} <= seen


def test_model_output_reparses_to_the_model_counts():
    """host.proc_interrupts() parsed back gives every descriptor's kstat and every arch counter the model keeps."""
    host = irqlab.scenarios.shared_intx()
    host.add_pci_device("0000:01:00.0", name="nic", msix=2)
    irqlab.scenarios.passthrough_msix(host, host.scenario.vm, "0000:01:00.0", 2, first_gsi=30)
    for i in range(3):  # 2 µs apart: a hard IRQ holds its CPU for host_irq_ns (1.5 µs)
        host.raise_intx("0000:00:19.0", at=2000 * i)
    host.generic_handle_irq(16, cpu=1)
    text = host.proc_interrupts()
    p = parse_proc_interrupts(text)
    shown = {str(i): d for i, d in host.genirq.descs.items() if d.actions}
    assert [r.irq for r in p.device_rows()] == sorted(shown, key=int)
    for r in p.device_rows():
        d = shown[r.irq]
        assert r.counts == list(d.kstat) and r.chip == d.chip_name and r.flow == d.name
        assert r.hwirq == (str(d.hwirq) if d.hwirq is not None else None) and r.actions == d.action_names()
    assert sum(p.row(16).counts) == 4
    for name, counts in host.arch_counts.items():
        assert p.row(name).counts == ([sum(counts)] if name in ("ERR", "MIS") else counts)
    assert len(text) - len(text.lstrip(" ")) == procfs.proc_prec(host.nr_irqs) + 8
