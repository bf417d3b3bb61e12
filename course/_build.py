"""Assemble the course notebooks (course/*.ipynb), their worked solutions (course/solutions/*.ipynb) and the
glossary (course/glossary.md) from the notebook sources in course/src/.

    python course/_build.py           # write them
    python course/_build.py --check   # exit 1 and name the files that differ from a fresh build

Each notebook has one text source, ``course/src/NN-name.md``, in MyST Markdown as jupytext reads and writes it
(open it in JupyterLab with "Open With → Jupytext Notebook", or edit it as text). A source is the worked
solution: every exercise cell (tagged ``exercise``) holds the answer lines and ends with ``check.ex(...)``.
The course notebook replaces the answer lines with ``answer = ...  # your answer``; the solution keeps them,
says it is the worked copy at its top, and reaches the files of course/ one folder up. Notebooks are written
without outputs, with cell ids "0", "1", ... (what nbstripout writes), so ``nbstripout --verify`` agrees.

The glossary's function table is generated from the journeys of the model's scenarios plus every kernel
identifier the sources link on elixir, so it follows the model and the prose.
"""
from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SRC = HERE / "src"
SOLUTIONS = HERE / "solutions"
FIGURES = HERE / "figures"
ELIXIR_IDENT = "https://elixir.bootlin.com/linux/v6.18/C/ident/"
KS = {"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
      "language_info": {"name": "python"}}
PLACEHOLDER = "answer = ...  # your answer"
EXERCISE_TAG = "exercise"
CHECK_CALL = re.compile(r"^check\.(ex|q)\(")
IDENT_LINK = re.compile(re.escape(ELIXIR_IDENT) + r"([A-Za-z_][A-Za-z0-9_]*)\)")


def stems() -> list[str]:
    """The notebooks, in course order (their sources' names sort that way)."""
    return sorted(p.stem for p in SRC.glob("[0-9][0-9]-*.md"))


def read_source(stem: str) -> nbformat.NotebookNode:
    return jupytext.read(SRC / f"{stem}.md", fmt="md:myst")


def course_answer(source: str, where: str) -> str:
    """An exercise cell of the course: the placeholder, then the source's check call (its last lines)."""
    lines = source.rstrip("\n").split("\n")
    first = next((i for i, ln in enumerate(lines) if CHECK_CALL.match(ln)), None)
    if first is None:
        raise SystemExit(f"{where}: an exercise cell must end with check.ex(...)")
    return "\n".join([PLACEHOLDER, *lines[first:]])


def solution_links(text: str) -> str:
    """A solution sits in course/solutions/: the course's other files are one folder up."""
    text = re.sub(r"\]\(solutions/", "](", text)
    text = re.sub(r"\]\((glossary\.md|figures/|\.\./)", r"](../\1", text)
    return text


def banner(stem: str) -> str:
    return (f"> **Worked solutions.** Every exercise of this notebook is answered here; the course notebook is "
            f"[../{stem}.ipynb](../{stem}.ipynb).\n\n")


def assemble(stem: str, variant: str) -> nbformat.NotebookNode:
    """The course (``variant="course"``) or solution notebook of ``stem``."""
    src = read_source(stem)
    nb = new_notebook(metadata=dict(KS))
    for i, cell in enumerate(src.cells):
        where = f"course/src/{stem}.md cell {i}"
        text = cell.source
        if cell.cell_type == "markdown":
            if variant == "solution":
                text = (banner(stem) if i == 0 else "") + solution_links(text)
            nb.cells.append(new_markdown_cell(text))
            continue
        if cell.cell_type != "code":
            raise SystemExit(f"{where}: only markdown and code cells are allowed, not {cell.cell_type}")
        tags = list(cell.metadata.get("tags", []))
        if EXERCISE_TAG in tags and variant == "course":
            text = course_answer(text, where)
        new = new_code_cell(text)
        if tags:
            new.metadata["tags"] = tags
        nb.cells.append(new)
    for i, cell in enumerate(nb.cells):
        cell["id"] = str(i)
    nbformat.validate(nb)
    return nb


def linked_identifiers() -> set[str]:
    """Every kernel identifier a source links on elixir."""
    return {m.group(1) for stem in stems() for m in IDENT_LINK.finditer((SRC / f"{stem}.md").read_text())}


# ================================================================================================ glossary
EXTRA = {  # names the notebooks link that no journey hop shows, with their Linux 6.18 files
    "request_irq": "include/linux/interrupt.h", "request_threaded_irq": "kernel/irq/manage.c",
    "__setup_irq": "kernel/irq/manage.c", "free_irq": "kernel/irq/manage.c", "disable_irq": "kernel/irq/manage.c",
    "enable_irq": "kernel/irq/manage.c", "kstat_incr_irqs_this_cpu": "kernel/irq/internals.h",
    "irq_can_handle_actions": "kernel/irq/chip.c", "check_irq_resend": "kernel/irq/resend.c",
    "note_interrupt": "kernel/irq/spurious.c", "poll_spurious_irqs": "kernel/irq/spurious.c",
    "show_interrupts": "kernel/irq/proc.c", "arch_show_interrupts": "arch/x86/kernel/irq.c",
    "queue_work_on": "kernel/workqueue.c", "schedule_work": "include/linux/workqueue.h",
    "eventfd_write": "fs/eventfd.c", "eventfd_poll": "fs/eventfd.c",
    "add_wait_queue_priority_exclusive": "kernel/sched/wait.c",
    "kvm_irqfd": "virt/kvm/eventfd.c", "irqfd_inject": "virt/kvm/eventfd.c",
    "irqfd_resampler_ack": "virt/kvm/eventfd.c", "kvm_pi_update_irte": "arch/x86/kvm/irq.c",
    "kvm_msi_to_lapic_irq": "arch/x86/kvm/irq.c", "kvm_arch_set_irq_inatomic": "arch/x86/kvm/irq.c",
    "pci_check_and_mask_intx": "drivers/pci/irq.c", "pci_check_and_unmask_intx": "drivers/pci/irq.c",
    "vfio_intx_handler": "drivers/vfio/pci/vfio_pci_intrs.c", "vfio_msihandler": "drivers/vfio/pci/vfio_pci_intrs.c",
    "kvm_ioapic_update_eoi": "arch/x86/kvm/ioapic.c", "apic_set_eoi": "arch/x86/kvm/lapic.c",
    "apic_has_interrupt_for_ppr": "arch/x86/kvm/lapic.c", "pi_wakeup_handler": "arch/x86/kvm/vmx/posted_intr.c",
    "VFIO_DEVICE_SET_IRQS": "include/uapi/linux/vfio.h", "KVM_IRQFD": "include/uapi/linux/kvm.h",
    "KVM_SET_GSI_ROUTING": "include/uapi/linux/kvm.h", "KVM_IRQFD_FLAG_RESAMPLE": "include/uapi/linux/kvm.h",
    "VFIO_DEVICE_GET_IRQ_INFO": "include/uapi/linux/vfio.h", "irq_desc": "include/linux/irqdesc.h",
    "__irq_wake_thread": "kernel/irq/handle.c", "warn_no_thread": "kernel/irq/handle.c",
    "irq_default_primary_handler": "kernel/irq/manage.c", "irq_finalize_oneshot": "kernel/irq/manage.c",
    "irq_thread_fn": "kernel/irq/manage.c", "disable_irq_nosync": "kernel/irq/manage.c",
    "irq_shutdown": "kernel/irq/chip.c", "irq_chip_ack_parent": "kernel/irq/chip.c",
    "msi_create_device_irq_domain": "kernel/irq/msi.c", "apic_ack_irq": "arch/x86/kernel/apic/vector.c",
    "ioapic_ir_chip": "arch/x86/kernel/apic/io_apic.c", "ioapic_ir_ack_level": "arch/x86/kernel/apic/io_apic.c",
    "eventfd_release": "fs/eventfd.c", "kvm_irqfd_assign": "virt/kvm/eventfd.c",
    "kvm_notify_acked_irq": "virt/kvm/eventfd.c", "kvm_check_and_inject_events": "arch/x86/kvm/x86.c",
    "kvm_cpu_get_interrupt": "arch/x86/kvm/irq.c", "kvm_ioapic_scan_entry": "arch/x86/kvm/ioapic.c",
    "kvm_ioapic_update_eoi_one": "arch/x86/kvm/ioapic.c",
    "vfio_msi_set_vector_signal": "drivers/vfio/pci/vfio_pci_intrs.c",
    "vfio_pci_intx_unmask_handler": "drivers/vfio/pci/vfio_pci_intrs.c",
    "vfio_send_intx_eventfd": "drivers/vfio/pci/vfio_pci_intrs.c", "virqfd_wakeup": "drivers/vfio/virqfd.c",
    "try_one_irq": "kernel/irq/spurious.c",
    "EXIT_REASON_EXTERNAL_INTERRUPT": "arch/x86/include/uapi/asm/vmx.h",
    "PIN_BASED_EXT_INTR_MASK": "arch/x86/include/asm/vmx.h", "VM_EXIT_ACK_INTR_ON_EXIT": "arch/x86/include/asm/vmx.h",
    "POSTED_INTR_VECTOR": "arch/x86/include/asm/irq_vectors.h",
    "RESCHEDULE_VECTOR": "arch/x86/include/asm/irq_vectors.h", "__kvm_vcpu_kick": "virt/kvm/kvm_main.c",
    "assign_vector_locked": "arch/x86/kernel/apic/vector.c", "fred_entry_from_kvm": "arch/x86/include/asm/fred.h",
    "irq_matrix_alloc": "kernel/irq/matrix.c", "irq_set_affinity": "kernel/irq/manage.c",
    "kvm_arch_pmi_in_guest": "arch/x86/include/asm/kvm_host.h", "kvm_arch_vcpu_should_kick": "arch/x86/kvm/x86.c",
    "sysvec_kvm_posted_intr_ipi": "arch/x86/kernel/irq.c", "vcpu_enter_guest": "arch/x86/kvm/x86.c",
    "write_irq_affinity": "kernel/irq/proc.c",
}

HANDWRITTEN = """
## Concepts

| term | what it is | where (Linux 6.18) |
|---|---|---|
| `struct irq_desc` | one per Linux irq: flow handler, action chain, `depth`, `istate`, per-CPU `kstat`, spurious counters | `include/linux/irqdesc.h` |
| `struct irqaction` | one handler on a line: `handler`, `dev_id`, `flags`, `name`, `thread_fn` | `include/linux/interrupt.h` |
| `vector_irq[]` | per-CPU table vector → `irq_desc`, read by `common_interrupt` | `arch/x86/include/asm/hw_irq.h`, `arch/x86/kernel/irq.c` |
| flow handler | how a line is acknowledged and its actions run: `handle_edge_irq` (MSI, edge pins: `irq_ack` before the actions), `handle_fasteoi_irq` (level IO-APIC pins: `irq_eoi` after them) | `kernel/irq/chip.c` |
| `struct irq_chip` | a line's hardware operations (`irq_ack`, `irq_mask`, `irq_unmask`, `irq_eoi`, ...) that the flow handler calls | `include/linux/irq.h` |
| irq domain, hwirq | a domain maps a source's own interrupt number (its *hwirq*: an IO-APIC pin, an MSI-X index) to a Linux irq; x86 stacks them: a device's MSI domain → interrupt remapping → the vector domain | `kernel/irq/irqdomain.c`, `kernel/irq/msi.c` |
| `IR-PCI-MSIX-<BDF>` | the chip column of a device's own MSI-X domain under interrupt remapping (`$(PREFIX)$(CHIPNAME)-$(DEVNAME)`); its hwirq is the MSI-X index | `kernel/irq/msi.c` (`msi_create_device_irq_domain`) |
| threaded handler | `request_threaded_irq`: a primary handler in hard-IRQ context and a `thread_fn` run by the kthread `irq/<n>-<name>` when the primary returns `IRQ_WAKE_THREAD` | `kernel/irq/manage.c`, `kernel/irq/handle.c` |
| `SPURIOUS_DEFERRED` | `note_interrupt`'s mark for a woken thread: the interrupt is judged at the next one, by whether `threads_handled` moved | `kernel/irq/spurious.c` |
| execution contexts | *hard IRQ* (interrupts off, no sleeping), *wait-queue callback* (inside the waker, under the wait-queue lock), *kworker* (a work item, may sleep), the *vCPU thread* (KVM_RUN, exits and entries), the *guest* | notebook 1 |
| `IRQF_SHARED`, `IRQF_ONESHOT`, `IRQF_COND_ONESHOT`, `IRQF_TRIGGER_*` | request flags that decide whether a line can be shared | `include/linux/interrupt.h` |
| `IRQ_NONE` / `IRQ_HANDLED` | a handler's answer: "not my device" / "mine" | `include/linux/irqreturn.h` |
| `IRQS_PENDING`, `IRQS_REPLAY`, `IRQS_SPURIOUS_DISABLED` | descriptor state bits: held while disabled, being replayed, disabled by `note_interrupt` | `kernel/irq/internals.h` |
| *nobody cared* | `note_interrupt`'s verdict on a line whose handlers return `IRQ_NONE`: > 99,900 of 100,000; the line is disabled and from then on only the poller (`poll_spurious_irqs`, every 100 ms) runs its handlers | `kernel/irq/spurious.c` |
| stuck INTx | a level line a device holds up with no driver claiming it: it fires again after every EOI until `note_interrupt` disables it | `kernel/irq/chip.c`, `kernel/irq/spurious.c` |
| `genirq:` | the prefix (`pr_fmt`) of every message of kernel/irq/manage.c, e.g. `genirq: Flags mismatch irq 16. ...` | `kernel/irq/manage.c` |
| `No irq handler for <cpu>.<vector>` | a vector that arrives with no descriptor behind it; printed with `pr_emerg_ratelimited` (at most 10 per 5 s) | `arch/x86/kernel/irq.c` |
| GSI | Global System Interrupt: the number KVM routes (IOAPIC pins 0–23, MSI routes from 24 up in QEMU) | `virt/kvm/irqchip.c` |
| INTx | a PCI function's legacy level-triggered interrupt pin (INTA#–INTD#), often shared | `drivers/pci/` |
| INTx Disable / Status.Interrupt | PCI 2.3 Command bit 10 and Status bit 3: mask one device's INTx, see if it asserts | `include/uapi/linux/pci_regs.h` |
| MSI / MSI-X | message-signalled interrupts: the device writes `data` to `address`; one vector per message | `drivers/pci/msi/` |
| IRTE | interrupt remapping table entry of the IOMMU: remapped (to a host vector) or posted (to a vCPU) | `drivers/iommu/intel/irq_remapping.c` |
| eventfd | a 64-bit counter with a wait queue; vfio signals it, KVM's irqfd consumes it | `fs/eventfd.c` |
| irqfd | KVM's subscriber on an eventfd: injects a GSI when signalled (`struct kvm_kernel_irqfd`) | `include/linux/kvm_irqfd.h`, `virt/kvm/eventfd.c` |
| `EPOLLHUP` (eventfd) | the last close of the file (`eventfd_release`) wakes the waiters with it: an irqfd or virqfd detaches; vfio and KVM keep their own references to the context | `fs/eventfd.c` |
| resamplefd | the eventfd KVM signals when the guest EOIs a level interrupt (`irqfd_resampler_ack`, in the EOI exit), so vfio can unmask | `virt/kvm/eventfd.c` |
| virqfd | vfio's subscriber on the unmask eventfd: `virqfd_wakeup` unmasks at once; only a re-send of a still-asserting device goes through its work item | `drivers/vfio/virqfd.c` |
| GSI routing table | per VM: GSI → PIC/IOAPIC pin(s) or one MSI message, set by `KVM_SET_GSI_ROUTING` | `virt/kvm/irqchip.c` |
| local APIC: IRR, ISR, TMR, TPR, PPR | requested, in-service and trigger-mode vectors; task and processor priority | `arch/x86/kvm/lapic.c` |
| remote IRR | an IOAPIC level pin's "delivered, not yet EOI'd" bit | `arch/x86/kvm/ioapic.c` |
| VM exit / kick | the vCPU leaves guest mode; a kick is the IPI that forces it (`kvm_vcpu_kick`): a reschedule IPI to the vCPU's CPU, none if the vCPU is not in guest mode | `virt/kvm/kvm_main.c` |
| external-interrupt exiting | a VMX control KVM always sets (`PIN_BASED_EXT_INTR_MASK`): a physical interrupt that arrives in guest mode exits; the vector comes with the exit (`VM_EXIT_ACK_INTR_ON_EXIT`) and `handle_external_interrupt_irqoff` calls the host's IDT entry for it; `irq_exits` counts these exits | `arch/x86/kvm/vmx/vmx.c`, `arch/x86/kvm/vmx/vmx.h` |
| `RES` | the rescheduling IPI's row in `/proc/interrupts` (`sysvec_reschedule_ipi`, vector 0xfd); KVM's kicks are counted there | `arch/x86/kernel/smp.c`, `arch/x86/kernel/irq.c` |
| `/proc/irq/N/smp_affinity`, `smp_affinity_list` | the CPUs an irq may be sent to, as a hex mask or a list; writing it calls `irq_set_affinity` | `kernel/irq/proc.c` |
| `effective_affinity`, `effective_affinity_list` | the CPU the irq's vector is on now (x86 targets one CPU) | `kernel/irq/proc.c`, `arch/x86/kernel/apic/vector.c` |
| `irqaffinity=` | boot parameter: the default affinity of every irq (e.g. the CPUs that run no vCPU) | `kernel/irq/irqdesc.c` |
| interrupt window | without APICv KVM injects one interrupt per VM entry (`kvm_check_and_inject_events` → `kvm_cpu_get_interrupt`) and asks for an exit as soon as the guest can take the next | `arch/x86/kvm/x86.c` |
| EOI-exit bitmap | with APICv, the vectors whose EOI still exits to KVM: those of IOAPIC pins that are level-triggered, have an ack notifier or are the RTC's | `arch/x86/kvm/ioapic.c` (`kvm_ioapic_scan_entry`) |
| APICv | hardware-virtualized APIC: virtual IRR/ISR, virtual-interrupt delivery, posted interrupts | `arch/x86/kvm/vmx/vmx.c` |
| posted-interrupt descriptor (PIR, ON, SN, NV, NDST) | per vCPU: pending vectors plus notification control (`struct pi_desc`) | `arch/x86/include/asm/posted_intr.h` |
| PIN / NPI / PIW | the posted-interrupt notification, nested and wakeup vectors' rows in `/proc/interrupts` | `arch/x86/kernel/irq.c` |
| irqbypass | pairs vfio's producer and KVM's consumer on the same eventfd to set up posting | `virt/lib/irqbypass.c` |

## ioctls

| ioctl | what it does | where |
|---|---|---|
| `VFIO_DEVICE_GET_IRQ_INFO` | how many interrupts of a kind (INTx, MSI, MSI-X, ERR, REQ) and their flags | `include/uapi/linux/vfio.h`, `drivers/vfio/pci/vfio_pci_core.c` |
| `VFIO_DEVICE_SET_IRQS` | trigger/mask/unmask eventfds per interrupt | `include/uapi/linux/vfio.h`, `drivers/vfio/pci/vfio_pci_intrs.c` |
| `KVM_IRQFD` | subscribe an irqfd to an eventfd for a GSI (optionally resampling) | `include/uapi/linux/kvm.h`, `virt/kvm/eventfd.c` |
| `KVM_SET_GSI_ROUTING` | replace the VM's GSI routing table | `include/uapi/linux/kvm.h`, `virt/kvm/irqchip.c` |
| `KVM_SIGNAL_MSI` | inject one MSI message without a GSI | `include/uapi/linux/kvm.h`, `virt/kvm/irqchip.c` |
"""


def glossary() -> str:
    """Every kernel function the scenarios' journeys show, plus the names the sources link, with files."""
    sys.path.insert(0, str(ROOT))
    from irqlab import scenarios

    names: dict[str, str] = {}
    sources = [(scenarios.switchboard, "msi", "0000:03:00.0"), (scenarios.switchboard, "msi", "0000:00:17.0"),
               (scenarios.shared_intx, "intx", "0000:04:00.0"), (scenarios.shared_intx, "intx", "0000:00:19.0"),
               (scenarios.posted_nic, "msi", "0000:01:00.0"),
               (lambda: scenarios.posted_nic(vcpu_mode="halted"), "msi", "0000:01:00.0"),
               (lambda: scenarios.msix_nic(apicv=True), "msi", "0000:01:00.0")]
    for make, kind, bdf in sources:
        h = make()
        j = h.raise_msi(bdf, 0) if kind == "msi" else h.raise_intx(bdf)
        h.run(until=h.now + 10_000_000)
        for hop in j.hops:
            if not hop.hardware:
                names.setdefault(hop.function, hop.file)
    for fn, f in EXTRA.items():
        names.setdefault(fn, f)
    missing = sorted(linked_identifiers() - set(names))
    if missing:
        raise SystemExit(f"the notebooks link {missing} but the glossary has no file for them: add them to EXTRA")
    rows = "\n".join(f"| [`{fn}`]({ELIXIR_IDENT}{fn}) | `{f}` |"
                     for fn, f in sorted(names.items(), key=lambda x: x[0].lstrip("_").lower()))
    return ("# Glossary\n\nEvery kernel function the course names, with the Linux 6.18 file it lives in (each link "
            "searches elixir for the identifier), then the concepts and ioctls. The function table is generated by "
            "`course/_build.py` from the journeys of the scenarios plus the names the notebooks link, so it follows "
            "the model.\n\n## Functions\n\n| function | file |\n|---|---|\n" + rows + "\n" + HANDWRITTEN)


# ================================================================================================ figures
def _figure_stamp(dot_source: str) -> str:
    return f"<!-- rendered by course/_build.py from sha256:{hashlib.sha256(dot_source.encode()).hexdigest()} -->"


def figure(dot: Path) -> str:
    """The SVG of a figure's DOT source: kept as it is while it matches the source (so a rebuild does not depend
    on the Graphviz version), rendered again with ``dot`` when the source changed."""
    src = dot.read_text(encoding="utf-8")
    stamp = _figure_stamp(src)
    svg = dot.with_suffix(".svg")
    if svg.exists() and stamp in svg.read_text(encoding="utf-8"):
        return svg.read_text(encoding="utf-8")
    exe = shutil.which("dot")
    if exe is None:
        raise SystemExit(f"{dot.relative_to(ROOT)} changed: install Graphviz (apt-get install graphviz) to render it")
    out = subprocess.run([exe, "-Tsvg", str(dot)], capture_output=True, text=True, check=True).stdout
    head, sep, rest = out.partition("<svg")
    return head + stamp + "\n" + sep + rest


# ================================================================================================ build
def _text(nb: nbformat.NotebookNode) -> str:
    s = nbformat.writes(nb)
    return s if s.endswith("\n") else s + "\n"


def outputs() -> dict[Path, str]:
    """Every file the build writes, with its text."""
    files: dict[Path, str] = {}
    for stem in stems():
        files[HERE / f"{stem}.ipynb"] = _text(assemble(stem, "course"))
        files[SOLUTIONS / f"{stem}.ipynb"] = _text(assemble(stem, "solution"))
    files[HERE / "glossary.md"] = glossary()
    for dot in sorted(FIGURES.glob("*.dot")):
        files[dot.with_suffix(".svg")] = figure(dot)
    return files


def stale() -> list[str]:
    """The built files that differ from what a build would write now (or are missing, or left over)."""
    want = outputs()
    diff = [str(p.relative_to(ROOT)) for p, text in want.items()
            if not p.exists() or p.read_text(encoding="utf-8") != text]
    built = set(want)
    extra = [p for p in [*HERE.glob("[0-9][0-9]-*.ipynb"), *SOLUTIONS.glob("*.ipynb")] if p not in built]
    return diff + [f"{p.relative_to(ROOT)} (no source in course/src/)" for p in extra]


def build() -> None:
    SOLUTIONS.mkdir(exist_ok=True)
    for path, text in outputs().items():
        path.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        bad = stale()
        if bad:
            print("out of date (run python course/_build.py):", *bad, sep="\n  ")
            raise SystemExit(1)
        print("course/ is up to date with course/src/")
    elif sys.argv[1:]:
        raise SystemExit("usage: python course/_build.py [--check]")
    else:
        build()
