"""irqlab.x86_vector: nr_irqs at boot (arch/x86/kernel/apic/vector.c arch_probe_nr_irqs, kernel/irq/irqdesc.c early_irq_init,
arch/x86/include/asm/irq_vectors.h NR_IRQS) and the width of /proc/interrupts' first column it sets
(kernel/irq/proc.c show_interrupts: prec)."""
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import irqlab
from irqlab import x86_vector as nr
from irqlab.procfs import parse_proc_interrupts, proc_prec

CAPTURES = Path(__file__).parent / "data" / "proc_interrupts" / "captures"


# Worked by hand from vector.c for the model's host (gsi_top 24, an 8259: nr_legacy_irqs() = 16), CONFIG_NR_CPUS=64:
#   NR_IRQS = 256 + max(64 * 64, 32 * 128) = 4352; clamp to 256 * n; nr = 24 + 16 + 8n + 24 * 16 = 424 + 8n.
@pytest.mark.parametrize("ncpus,want", [(1, 256),     # 256 * 1 < 432: the NR_VECTORS clamp wins
                                        (2, 440), (4, 456), (8, 488), (12, 520), (16, 552), (64, 936)])
def test_model_host_nr_irqs_follows_arch_probe_nr_irqs(ncpus, want):
    assert nr.boot_nr_irqs(ncpus) == want
    host = irqlab.Host(ncpus=ncpus)
    assert host.nr_irqs == want
    header = host.proc_interrupts().splitlines()[0]
    assert len(header) - len(header.lstrip(" ")) == 3 + 8       # prec 3: every host the model builds (<= 64 CPUs)


def test_a_12_cpu_host_keeps_a_3_wide_column():
    """The old default (256 + 64 * ncpus = 1024 for 12 CPUs) gave prec 4, wider than any real 12-CPU host."""
    lines = irqlab.Host(ncpus=12).proc_interrupts().splitlines()
    assert lines[0].startswith(" " * 11 + "CPU0") and not lines[0].startswith(" " * 12)
    assert [ln.index(":") for ln in lines[1:] if ln.split(":")[0].strip() in ("NMI", "ERR")] == [3, 3]


@pytest.mark.parametrize("kw,want", [
    (dict(nr_cpu_ids=2, gsi_top=24, nr_legacy_irqs=0, nr_cpus=256), (424, 0)),     # Firecracker (dmesg below)
    (dict(nr_cpu_ids=4, gsi_top=16), (16 + 16 + 32 + 32, 16)),                     # gsi_top <= 16: 8n for MSI
    (dict(nr_cpu_ids=4, gsi_top=0, nr_legacy_irqs=0), (0 + 0 + 32 + 32, 0)),       # no IO-APIC at all
    (dict(nr_cpu_ids=14, gsi_top=120), (120 + 16 + 112 + 1920, 16)),               # a laptop's 120-pin IO-APIC
    (dict(nr_cpu_ids=2, gsi_top=240, nr_cpus=2), (512, 16)),                        # 256 * 2 < 4096 + 256
    (dict(nr_cpu_ids=1152, gsi_top=72, nr_cpus=8192), (72 + 16 + 9216 + 1152, 16)),  # 10456: prec 5
    (dict(nr_cpu_ids=4, gsi_top=24, pci_msi=False), (24 + 16 + 32, 16)),
])
def test_arch_probe_nr_irqs_cases(kw, want):
    assert nr.arch_probe_nr_irqs(**kw) == want


def test_config_nr_irqs():
    assert nr.config_nr_irqs(64) == 256 + 4096 == nr.config_nr_irqs(1)     # 32 * MAX_IO_APICS wins below 64 CPUs
    assert nr.config_nr_irqs(256) == 16640 and nr.config_nr_irqs(8192) == 256 + 64 * 8192
    assert nr.config_nr_irqs(8192, pci_msi=False) == 256 + 32 * 128


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 4096), st.integers(0, 1024), st.sampled_from([0, 16]), st.integers(1, 8192),
       st.booleans())
def test_arch_probe_nr_irqs_is_min_of_the_three_bounds(ncpu, gsi_top, legacy, nr_cpus, msi):
    """The C reads as three clamps in a row; it is the least of NR_IRQS, NR_VECTORS * nr_cpu_ids and the estimate."""
    if nr_cpus < ncpu:
        with pytest.raises(ValueError, match="CONFIG_NR_CPUS"):
            nr.arch_probe_nr_irqs(ncpu, gsi_top=gsi_top, nr_legacy_irqs=legacy, nr_cpus=nr_cpus, pci_msi=msi)
        return
    estimate = gsi_top + legacy + 8 * ncpu + ((8 * ncpu if gsi_top <= 16 else 16 * gsi_top) if msi else 0)
    config = 256 + (max(64 * nr_cpus, 32 * 128) if msi else 32 * 128)
    got, prealloc = nr.arch_probe_nr_irqs(ncpu, gsi_top=gsi_top, nr_legacy_irqs=legacy, nr_cpus=nr_cpus, pci_msi=msi)
    assert got == min(config, 256 * ncpu, estimate) and prealloc == legacy
    assert nr.boot_nr_irqs(ncpu, gsi_top=gsi_top, nr_legacy_irqs=legacy, nr_cpus=nr_cpus, pci_msi=msi) == \
        max(got, legacy)


def test_this_machines_boot_log():
    """The Firecracker guest's own log: IOAPIC[0] GSI 0-23 (gsi_top 24), nr_cpu_ids 2, NR_CPUS 256, no 8259."""
    log = (CAPTURES / "x86_64_6.18.44_firecracker_2cpu.dmesg").read_text()
    gsi_end = int(re.search(r"IOAPIC\[0\]: .* GSI 0-(\d+)", log).group(1))
    ncpu = int(re.search(r"nr_cpu_ids:(\d+)", log).group(1))
    nr_cpus = int(re.search(r"NR_CPUS:(\d+)", log).group(1))
    line = re.search(r"NR_IRQS: \d+, nr_irqs: \d+, preallocated irqs: \d+", log).group(0)
    prealloc = int(line.rsplit(" ", 1)[1])
    assert nr.early_irq_init_line(ncpu, gsi_top=gsi_end + 1, nr_legacy_irqs=prealloc, nr_cpus=nr_cpus) == line
    with pytest.raises(AssertionError):   # with an 8259 the same machine would have had 440
        assert nr.early_irq_init_line(ncpu, gsi_top=gsi_end + 1, nr_cpus=nr_cpus) == line


def _first_column(text):
    """prec as printed: the colon's column in the device rows ("%*d:"), the same in every row of a real file."""
    (col,) = {ln.index(":") for ln in text.splitlines()[1:] if ln.split(":")[0].strip().isdigit()}
    return col


@pytest.mark.parametrize("name", sorted(p.stem for p in CAPTURES.glob("*.json")
                                        if "nr_irqs" in json.loads(p.read_text())))
def test_real_captures_column_width_follows_the_formula(name):
    """x86-64 6.x captures whose machine can be told from the file: the first column is as wide as prec(nr_irqs)."""
    meta = json.loads((CAPTURES / f"{name}.json").read_text())
    text = (CAPTURES / f"{name}.txt").read_text()
    width = _first_column(text)
    header = text.splitlines()[0]
    assert len(header) - len(header.lstrip(" ")) == width + 8                        # "%*s" prec + 8
    info = meta["nr_irqs"]
    if info["kind"] == "exact":
        got = nr.boot_nr_irqs(info["nr_cpu_ids"], gsi_top=info["gsi_top"], nr_legacy_irqs=info["nr_legacy_irqs"],
                              nr_cpus=info.get("dmesg_nr_cpus", nr.NR_CPUS_DEFAULT))
        if "dmesg_nr_irqs" in info:
            assert got == info["dmesg_nr_irqs"]
        assert proc_prec(got) == width
        assert len(parse_proc_interrupts(text).cpus) == info["nr_cpu_ids"]
        first_dynamic = min(int(r.irq) for r in parse_proc_interrupts(text).device_rows()
                            if "IO-APIC" not in r.chip and not (r.chip == "xen-pirq" and r.hwirq))
        assert first_dynamic >= info["gsi_top"]        # arch_dynirq_lower_bound: dynamic irqs start at gsi_top
    else:
        # gsi_top is at least the highest IO-APIC GSI + 1; nr_cpu_ids at least the header's CPUs: every machine in
        # that range (up to 240 pins, 32 possible CPUs) gets the width the capture shows.
        widths = {proc_prec(nr.boot_nr_irqs(n, gsi_top=g, nr_legacy_irqs=info["nr_legacy_irqs"]))
                  for g in range(info["gsi_top_at_least"], 241) for n in range(info["nr_cpu_ids"], 33)}
        assert widths == {width}
        top_gsi = max(int(r.irq) for r in parse_proc_interrupts(text).device_rows() if r.chip == "IR-IO-APIC")
        assert top_gsi + 1 == info["gsi_top_at_least"]


def test_bad_input_says_what_to_fix():
    with pytest.raises(TypeError, match="nr_cpu_ids must be an int"):
        nr.boot_nr_irqs(2.0)
    with pytest.raises(ValueError, match="nr_cpu_ids must be at least 1"):
        nr.boot_nr_irqs(0)
    with pytest.raises(ValueError, match="gsi_top must be at least 0"):
        nr.arch_probe_nr_irqs(2, gsi_top=-1)
    with pytest.raises(ValueError, match="nr_legacy_irqs is 16"):
        nr.arch_probe_nr_irqs(2, gsi_top=24, nr_legacy_irqs=8)
    with pytest.raises(ValueError, match="cannot exceed CONFIG_NR_CPUS"):
        nr.boot_nr_irqs(65)
    with pytest.raises(TypeError, match="nr_cpus must be an int"):
        nr.config_nr_irqs("64")
