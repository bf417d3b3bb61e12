"""Generate the course notebooks (course/*.ipynb), their worked solutions (course/solutions/*.ipynb) and the
glossary (course/glossary.md).

    python course/_build.py

Both variants come from the same cells, so they never drift apart; an exercise differs only in its answer
line (``answer = ...  # your answer`` in the course, the worked answer in the solution). The notebooks are
written without outputs, with cell ids "0", "1", ... (what nbstripout writes).
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
E = "https://elixir.bootlin.com/linux/v6.18/C/ident/"
BINDER = "https://mybinder.org/v2/gh/irqlab/irqlab/HEAD?urlpath=lab/tree/course/"
KS = {"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
      "language_info": {"name": "python"}}

#: every kernel identifier a notebook links (filled by L while the notebooks are defined)
LINKED: set[str] = set()


def L(fn: str) -> str:
    """A kernel function (or macro, ioctl, struct) linked to its Linux 6.18 source on elixir."""
    LINKED.add(fn)
    return f"[`{fn}`]({E}{fn})"


def md(s: str):
    return ("md", s.strip())


def code(s: str):
    return ("code", s.strip())


def exercise(key: str, question: str, solution: str):
    """An exercise: its question (markdown), and the solution's answer line(s)."""
    return ("ex", key, question.strip(), solution.strip())


SETUP = code("""
import irqlab
from irqlab import scenarios, viz, widgets, check
import numpy as np
""")

ORDER = ["00-index", "01-switchboard", "02-registration", "03-dispatch", "04-eventfd-irqfd", "05-injection",
         "06-level-intx", "07-storms", "08-posted-interrupts", "09-your-machine"]
TITLES = {"00-index": "Course map", "01-switchboard": "The switchboard", "02-registration": "Registration",
          "03-dispatch": "Dispatch", "04-eventfd-irqfd": "eventfd and irqfd", "05-injection": "Injection",
          "06-level-intx": "Level-triggered INTx", "07-storms": "Storms", "08-posted-interrupts": "Posted interrupts",
          "09-your-machine": "Your own machine"}


def nav(stem: str) -> tuple:
    i = ORDER.index(stem)
    parts = []
    if i > 1:
        parts.append(f"← [{TITLES[ORDER[i - 1]]}]({ORDER[i - 1]}.ipynb)")
    parts.append("[course map](00-index.ipynb)")
    if i + 1 < len(ORDER):
        parts.append(f"[{TITLES[ORDER[i + 1]]}]({ORDER[i + 1]}.ipynb) →")
    return md(" · ".join(parts))


NOTEBOOKS: dict[str, list] = {}

# ================================================================================================ 00
NOTEBOOKS["00-index"] = [
    md(f"""
# irqlab — how a passed-through device's interrupts reach a KVM guest

**KVM is a subscriber, not an interceptor.** The host kernel's generic IRQ layer (genirq) takes *every*
physical interrupt and dispatches it through its descriptor table. Only a passed-through device's interrupts
reach `vfio-pci`'s handler, which signals an **eventfd**. KVM's **irqfd** listens on that eventfd, looks the
GSI up in its routing table and injects a virtual interrupt into a vCPU's local APIC.

Picture a company switchboard: the **operator** (genirq) answers every call and puts it through to an
extension — finance (the disk driver), sales (the NIC driver) or the **visitors' extension** (vfio-pci).
The **outside consultant** (KVM) only hears the calls that ring on the visitors' extension.

| switchboard | Linux 6.18 |
|---|---|
| a call comes in | the device's MSI write or INTx line raises a vector on a host CPU ({L('common_interrupt')}) |
| the operator's directory | the per-CPU `vector_irq[]` table and the {L('irq_desc')} of each line |
| the operator rings the extensions | the flow handler ({L('handle_edge_irq')} / {L('handle_fasteoi_irq')}) calls every `irqaction` |
| the visitors' extension | vfio-pci's action: {L('vfio_msihandler')} or {L('vfio_intx_handler')} |
| the message slip left for the consultant | {L('eventfd_signal')} on the eventfd QEMU gave to vfio |
| the consultant who subscribed to those slips | KVM's irqfd: {L('irqfd_wakeup')} is a waiter on that eventfd |
| the consultant's desk | the vCPU's local APIC: IRR, ISR, PPR |

## The course

| # | notebook | you will see | |
|---|---|---|---|
| 1 | [The switchboard](01-switchboard.ipynb) | one interrupt end to end; KVM as a subscriber | [Binder]({BINDER}01-switchboard.ipynb) |
| 2 | [Registration](02-registration.ipynb) | {L('request_irq')} and shared lines, vfio-pci, {L('VFIO_DEVICE_SET_IRQS')}, {L('KVM_IRQFD')}, routing | [Binder]({BINDER}02-registration.ipynb) |
| 3 | [Dispatch](03-dispatch.ipynb) | vector → descriptor → flow handler → every action; `/proc/interrupts`; disabled lines | [Binder]({BINDER}03-dispatch.ipynb) |
| 4 | [eventfd and irqfd](04-eventfd-irqfd.ipynb) | the counter, its limits, the wait queue, coalescing work | [Binder]({BINDER}04-eventfd-irqfd.ipynb) |
| 5 | [Injection](05-injection.ipynb) | routing, MSI bit by bit, IRR/ISR/PPR, kicks, VM exits, EOI | [Binder]({BINDER}05-injection.ipynb) |
| 6 | [Level-triggered INTx](06-level-intx.ipynb) | automask, resamplefd, unmask: the round trip and its cost | [Binder]({BINDER}06-level-intx.ipynb) |
| 7 | [Storms](07-storms.ipynb) | a million interrupts; coalescing; the ledger; "nobody cared" | [Binder]({BINDER}07-storms.ipynb) |
| 8 | [Posted interrupts](08-posted-interrupts.ipynb) | the bypass: what leaves the host's path | [Binder]({BINDER}08-posted-interrupts.ipynb) |
| 9 | [Your own machine](09-your-machine.ipynb) | read a real `/proc/interrupts` | [Binder]({BINDER}09-your-machine.ipynb) |

**Run it.** On Debian, `make lab` installs what is missing (Graphviz, a venv with irqlab) and opens this page in
JupyterLab; `make test` runs every test. Or launch any notebook on Binder (links above; the first launch
after a new commit builds the image, which takes a few minutes). `python -m irqlab doctor` checks your setup.

**How to read the notebooks.** Every kernel function is a link to its Linux 6.18 source on elixir; the
[glossary](glossary.md) lists them all with their files. A *journey* is one interrupt's path, one row per
kernel function it went through. Diagrams are drawn from the model's live state: the lit path is the
interrupt's, the numbers are its hop order. Exercises end in `check.ex(...)`: put your answer in place of
the `...`, run the cell, and read the ✓ or the hint. Worked solutions are in [solutions/](solutions/).

**What the model simplifies.** Time is integer nanoseconds and host-side handling of one interrupt
happens at the instant it arrives (its cost appears in the latency); there is no locking and one IOMMU; the
guest's programming of its MSI and IOAPIC entries is done by the scenarios directly. Everything else is
the kernel's rule, named as the kernel names it.
"""),
    SETUP,
    md("The machine of notebook 1, drawn from the model: who can hear which interrupt."),
    code("""
host = scenarios.switchboard()
print(host.scenario.description)
viz.host_diagram(host)
"""),
]

# ================================================================================================ 01
NOTEBOOKS["01-switchboard"] = [
    md("""
# 1. The switchboard: one interrupt, end to end

A GPU passed through to a VM raises one interrupt. The first cell follows it from the device to the guest;
read the diagram top to bottom.
"""),
    code("""
import irqlab
from irqlab import scenarios, viz, widgets, check

host = scenarios.switchboard()            # a disk and a NIC on host drivers; a GPU passed through to vm1
gpu = host.raise_msi("0000:03:00.0", 0)   # the GPU writes its MSI message
host.run()                                # run the model until the vCPU has taken it
display(viz.journey_diagram(host, gpu))   # the path, lit; the small numbers are the hop order
gpu                                       # the same path as a table: each function links to its source
"""),
    md(f"""
**Objectives.** See the whole path of a passed-through device's interrupt; see that the host kernel handles
*every* interrupt first and that KVM only *subscribes* to an eventfd; step through any interrupt yourself.

**Reading the path.** The GPU's message arrives as a vector on a host CPU. {L('common_interrupt')} looks the
vector up in that CPU's `vector_irq[]` and finds irq 29's descriptor; its flow handler {L('handle_edge_irq')}
counts it (`kstat`, the number `/proc/interrupts` shows) and {L('handle_irq_event')} calls every action of the
line — here one, vfio-pci's {L('vfio_msihandler')}, which calls {L('eventfd_signal')}. That is where the host's
part ends. KVM appears only now: its {L('irqfd_wakeup')} is a *waiter* on that eventfd's wait queue. It
consumes the count, finds the GSI's MSI route, and {L('kvm_irq_delivery_to_apic_fast')} →
{L('__apic_accept_irq')} sets the vector in vCPU 0's IRR. Without APICv a kick ({L('kvm_vcpu_kick')}) forces a
VM exit; at the next VM entry the vCPU takes the interrupt ({L('kvm_apic_ack_interrupt')}).

**The model.** Host-side hops happen at the instant the interrupt arrives (their cost is added to the latency);
the vCPU's exit and entry take model time, which is why `host.run()` was needed.
"""),
    md("Now a call for *finance*: the disk's interrupt. The operator answers it and puts it through to the host's `ahci` driver."),
    code("""
disk = host.raise_msi("0000:00:17.0", 0)
host.run()                                # until its CPU is out of the hard IRQ (and its vCPU back in the guest)
display(viz.journey_diagram(host, disk))
disk
"""),
    md("Side by side: who heard each call."),
    code("""
for j in (gpu, disk):
    in_kvm = [h.function for h in j.hops if h.file.startswith(("virt/kvm", "arch/x86/kvm"))]
    print(f"{j.source:<22} {len(j.hops):>2} hops  outcome {j.outcome:<13} KVM functions: {in_kvm or 'none'}")
print()
print(host.proc_interrupts().split("NMI:")[0])   # the device rows of /proc/interrupts (arch rows start at NMI)
"""),
    md("""
The operator's log counts both calls: irq 24 (the disk) and irq 29 (the GPU, action `vfio-msi[0](0000:03:00.0)`)
each show one interrupt. The GPU's interrupt was a host interrupt first — counted, dispatched, handled by an
action — and only then a message for KVM. KVM never heard the disk's at all: it subscribed to one eventfd,
not to the interrupt controller.

### Step through it yourself
Pick any interrupt this machine can raise and step its journey hop by hop (▶ plays it); the diagram lights
each hop and the panel shows the state it changed. The stepper works on a copy of `host`.
"""),
    code("widgets.journey_stepper(host)"),
    md("### Exercises"),
    exercise("01-first-kvm-function",
             "Which is the first KVM function on the GPU interrupt's path — the one KVM hung on the eventfd? (a string)",
             'answer = next(h.function for h in gpu.hops if h.file.startswith(("virt/kvm", "arch/x86/kvm")))'),
    exercise("01-nic-irq",
             'Raise the NIC\'s queue 2: `nic = host.raise_msi("0000:02:00.0", 2)`. On which Linux irq number does it land?',
             'nic = host.raise_msi("0000:02:00.0", 2)\n'
             'rows = irqlab.procfs.parse_proc_interrupts(host.proc_interrupts()).device_rows()\n'
             'answer = int(next(r.irq for r in rows if "enp2s0-TxRx-2" in r.actions))'),
    exercise("01-nic-reaches-kvm", "Does any KVM function run for the NIC's interrupt? (True or False)",
             'answer = any(h.file.startswith(("virt/kvm", "arch/x86/kvm")) for h in nic.hops)'),
    md("""
### Recap
- genirq answers **every** interrupt: vector → descriptor → flow handler → every action of the line.
- vfio-pci's handler is one action among others; for a passed-through device it signals an eventfd.
- The eventfd is the hand-off. KVM's irqfd is a subscriber on it: it never sees the other devices' interrupts.
- KVM then routes the GSI to a vCPU's local APIC and the vCPU takes it at its next VM entry.

Next: how those actions, eventfds, irqfds and routes get registered.
"""),
    nav("01-switchboard"),
]

# ================================================================================================ 02
NOTEBOOKS["02-registration"] = [
    md(f"""
# 2. Registration: who listens to which line

**Objectives.** Register handlers with {L('request_irq')} and learn the kernel's rules for sharing a line
(`IRQF_SHARED`, trigger and ONESHOT agreement, `dev_id`) and its errors; remove one with {L('free_irq')}; bind a
device to vfio-pci and wire its interrupts to eventfds with {L('VFIO_DEVICE_SET_IRQS')}; subscribe KVM with
{L('KVM_IRQFD')} and route GSIs with {L('KVM_SET_GSI_ROUTING')}; read the table the kernel builds in
`/proc/interrupts` and `/sys/kernel/irq/<n>/`.

**The model.** Calls fail the way the kernel fails: `irqlab.KernelError` carries the kernel's errno, and the
kernel log (`host.dmesg()`) gets the kernel's messages. Where the kernel takes a file descriptor, the model
takes the `Eventfd` object.
"""),
    SETUP,
    md(f"""
## Two drivers on one line
A PCI INTx line (IO-APIC pin 16, level-triggered) with two drivers, each giving its own `dev_id` — the cookie
that identifies its action to {L('free_irq')} and is passed back to its handler.
"""),
    code("""
from irqlab import IRQF_SHARED, IRQF_ONESHOT, IRQF_TRIGGER_RISING, IRQ_HANDLED, IRQ_NONE, KernelError

host = irqlab.Host(ncpus=2)
host.alloc_irq(16, level=True)              # IO-APIC pin 16: a level-triggered PCI INTx line
def ehci(irq, dev_id): return IRQ_NONE      # "not my device this time"
def snd(irq, dev_id):  return IRQ_HANDLED   # "mine, handled"
host.request_irq(16, ehci, IRQF_SHARED, "ehci_hcd:usb1", "usb")
host.request_irq(16, snd,  IRQF_SHARED, "snd_hda_intel", "audio")
for a in host.irq_to_desc(16).actions:
    print(f"action {a.name!r:<16} dev_id={a.dev_id!r:<8} flags=0x{a.flags:08x}")
print(host.proc_interrupts().split("NMI:")[0])
"""),
    md(f"""
Both actions hang on irq 16's descriptor in the order they came ({L('__setup_irq')} appends at the tail). The
flags read `0x00200080`: `IRQF_SHARED` (0x80) plus `IRQF_COND_ONESHOT` (0x200000), which 6.18's
{L('request_irq')} adds to every call.

## The sharing rules
{L('__setup_irq')} accepts a second action on a line only if **both** have `IRQF_SHARED`, the trigger types
agree, ONESHOT agrees (a new `IRQF_COND_ONESHOT` may inherit it) and `IRQF_PERCPU` agrees. Otherwise it logs
*Flags mismatch* and returns `-EBUSY`. Three drivers try their luck:
"""),
    code("""
def attempt(what, call):
    try:
        call()
        print(f"{what:<52} 0 (accepted)")
    except KernelError as e:
        print(f"{what:<52} -{e.errname}")

attempt("request_irq(16, ..., 0)   (exclusive)", lambda: host.request_irq(16, snd, 0, "greedy", "g"))
attempt("request_irq(16, ..., IRQF_SHARED | IRQF_TRIGGER_RISING)",
        lambda: host.request_irq(16, snd, IRQF_SHARED | IRQF_TRIGGER_RISING, "edgy", "e"))
attempt("request_threaded_irq(16, NULL, fn, IRQF_SHARED | IRQF_ONESHOT)",
        lambda: host.request_threaded_irq(16, None, snd, IRQF_SHARED | IRQF_ONESHOT, "threaded", "t"))
print(host.dmesg())
"""),
    md("""
Each line of the log is the kernel's `pr_err("Flags mismatch irq %d. %08x (%s) vs. %08x (%s)")`: the new
action's flags and name, then those of the first action on the line. (Why the trigger check caught the rising
edge here: an x86 IO-APIC line records its trigger type at the first *shared* add, so the check bites from the
third requester on — derived from reading `__setup_irq`.)
"""),
    exercise("02-shared-no-dev-id",
             "Try `host.request_irq(16, snd, IRQF_SHARED, \"anon\", None)`: what errno does a shared request without "
             "a `dev_id` get? (a number, or a name like `'EBUSY'`)",
             'try:\n    host.request_irq(16, snd, IRQF_SHARED, "anon", None)\n    answer = 0\n'
             'except KernelError as e:\n    answer = e.errname'),
    exercise("02-oneshot-other-order",
             "The ONESHOT request failed because the line's first action had no `IRQF_ONESHOT`. Now the other "
             "order, on a fresh line: first `request_threaded_irq(17, None, snd, IRQF_SHARED | IRQF_ONESHOT, ...)`, "
             "then a plain `request_irq(17, snd, IRQF_SHARED, ...)`. What does the second call return: 0, or "
             "which errno?",
             'h2 = irqlab.Host(ncpus=2)\nh2.alloc_irq(17, level=True)\n'
             'h2.request_threaded_irq(17, None, snd, IRQF_SHARED | IRQF_ONESHOT, "threaded", "t")\n'
             'try:\n    answer = h2.request_irq(17, snd, IRQF_SHARED, "plain", "p")\n'
             'except KernelError as e:\n    answer = e.errname'),
    md(f"""
## free_irq and dev_id
{L('free_irq')} removes the action whose `dev_id` matches and returns its name; with a `dev_id` nobody registered
it warns *Trying to free already-free IRQ* and returns `None`. Removing the last action shuts the line down.
"""),
    code("""
print(repr(host.free_irq(16, "audio")), "|", repr(host.free_irq(16, "nobody")))
print(host.dmesg().splitlines()[-1])
print([a.name for a in host.irq_to_desc(16).actions])
"""),
    md(f"""
## Binding a device to vfio-pci
A NIC with 4 MSI-X vectors starts on a host driver. Binding it to vfio-pci releases the host driver's
actions; vfio-pci requests nothing until userspace asks. QEMU first asks what the device has
({L('VFIO_DEVICE_GET_IRQ_INFO')}):
"""),
    code("""
from irqlab import (Eventfd, VFIO_PCI_INTX_IRQ_INDEX, VFIO_PCI_MSI_IRQ_INDEX, VFIO_PCI_MSIX_IRQ_INDEX,
                    VFIO_IRQ_SET_DATA_EVENTFD, VFIO_IRQ_SET_ACTION_TRIGGER, msi_route, msi)
host.add_pci_device("0000:01:00.0", name="nic", msix=4)
host.bind_host_driver("0000:01:00.0", "enp1s0")
nic_rows = lambda: [ln for ln in host.proc_interrupts().splitlines() if "0000:01:00.0" in ln]
print("on its host driver:", *nic_rows(), sep="\\n  ")
vdev = host.vfio_pci_bind("0000:01:00.0")          # the host driver lets go
print("bound to vfio-pci:", nic_rows())

FLAG = {irqlab.VFIO_IRQ_INFO_EVENTFD: "EVENTFD", irqlab.VFIO_IRQ_INFO_MASKABLE: "MASKABLE",
        irqlab.VFIO_IRQ_INFO_AUTOMASKED: "AUTOMASKED", irqlab.VFIO_IRQ_INFO_NORESIZE: "NORESIZE"}
for index, label in [(VFIO_PCI_INTX_IRQ_INDEX, "INTx"), (VFIO_PCI_MSI_IRQ_INDEX, "MSI"), (VFIO_PCI_MSIX_IRQ_INDEX, "MSI-X")]:
    info = vdev.get_irq_info(index)
    print(f"VFIO_DEVICE_GET_IRQ_INFO {label:<6} count {info.count}  flags {'|'.join(n for b, n in FLAG.items() if info.flags & b) or 0}")
"""),
    md("""
INTx is `MASKABLE|AUTOMASKED` (vfio masks it itself in its handler — notebook 6); MSI-X has no `NORESIZE`
because this device supports dynamic MSI-X allocation. Now QEMU gives one eventfd per vector with
`VFIO_DEVICE_SET_IRQS` (`DATA_EVENTFD | ACTION_TRIGGER`): vfio-pci allocates the vectors and, for each, calls
`request_irq(irq, vfio_msihandler, 0, "vfio-msix[i](BDF)", trigger)` — an **exclusive** action.
"""),
    code("""
efds = [Eventfd(name=f"q{i}") for i in range(2)]
vdev.set_irqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_MSIX_IRQ_INDEX, 0, 2, efds)
print(host.proc_interrupts().split("NMI:")[0])
"""),
    exercise("02-msix-rows",
             "Give vector 3 an eventfd too: `vdev.set_irqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, "
             "VFIO_PCI_MSIX_IRQ_INDEX, 3, 1, [Eventfd(name=\"q3\")])`. How many `vfio-msix` rows does "
             "`/proc/interrupts` show now?",
             'vdev.set_irqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_MSIX_IRQ_INDEX, 3, 1, '
             '[Eventfd(name="q3")])\n'
             'answer = host.proc_interrupts().count("vfio-msix[")'),
    md(f"""
## KVM subscribes: routes and irqfds
KVM joins last, and only through the eventfds. `KVM_SET_GSI_ROUTING` replaces the VM's whole routing table
(here: GSI 24 and 25 → MSI messages naming vCPU 0 and 1); {L('kvm_irqfd')} (`KVM_IRQFD`) makes an irqfd for a
GSI and hangs it on an eventfd's wait queue as its exclusive, priority waiter.
"""),
    code("""
vm = host.create_vm(nvcpus=2)
messages = [msi.encode(dest_id=i, vector=0x41 + i) for i in range(2)]
vm.kvm_set_gsi_routing([msi_route(24 + i, m.address_lo, m.data) for i, m in enumerate(messages)])
for i, e in enumerate(efds):
    vm.kvm_irqfd(e, 24 + i)
for e in efds:
    print(e.name, "waiters:", [w.name for w in e.waiters])
viz.host_diagram(host)
"""),
    exercise("02-irqfd-second-vm",
             "A second VM tries to subscribe to the same eventfd: `vm2 = host.create_vm(nvcpus=1)`, then "
             "`vm2.kvm_irqfd(efds[0], 24)`. What errno does it get?",
             'vm2 = host.create_vm(nvcpus=1)\ntry:\n    answer = vm2.kvm_irqfd(efds[0], 24)\n'
             'except KernelError as e:\n    answer = e.errname'),
    md(f"""
## The table the kernel builds
`/proc/interrupts` ({L('show_interrupts')}) shows one row per line with an action: per-CPU counts, the chip, the
hwirq and flow handler, and the actions joined by `", "`. The same descriptor in `/sys/kernel/irq/<n>/`:
"""),
    code("""
irq = vdev.dev.vectors[0].irq
for name, value in host.sys_kernel_irq(irq).items():
    print(f"/sys/kernel/irq/{irq}/{name:<14} {value!r}")
"""),
    md("""
## Your turn: the registration board
The board calls the same functions (`request_irq`, `free_irq`, `vfio_pci_bind`, `set_irqs`, `kvm_irqfd`, ...) on
this host and shows the kernel's answer — an errno and the log line when the kernel refuses. Try an exclusive
request on a vfio line, or a second irqfd on an eventfd.
"""),
    code("widgets.registration_board(host)"),
    md("""
### Recap
- `request_irq` hangs an `irqaction` on a descriptor; a line is shared only if every requester agrees
  (`IRQF_SHARED`, trigger, ONESHOT, PERCPU) — else `-EBUSY` and *Flags mismatch* in the log.
- `dev_id` identifies an action: a shared request without one is `-EINVAL`; `free_irq` removes by it.
- Binding to vfio-pci releases the host driver; `VFIO_DEVICE_SET_IRQS` makes vfio request each vector with
  an eventfd behind it.
- `KVM_SET_GSI_ROUTING` says where each GSI goes; `KVM_IRQFD` subscribes an irqfd to an eventfd — one per
  eventfd, across all VMs.
"""),
    nav("02-registration"),
]

# ================================================================================================ 03
NOTEBOOKS["03-dispatch"] = [
    md(f"""
# 3. Dispatch: vector → descriptor → flow handler → every action

**Objectives.** Follow {L('common_interrupt')} from a vector to its descriptor and flow handler
({L('handle_edge_irq')} for MSI and edge lines, {L('handle_fasteoi_irq')} for level lines); see
{L('handle_irq_event')} call **every** action of a shared line and {L('note_interrupt')} count the interrupts
nobody claimed; read `/proc/interrupts` column by column; watch a disabled line hold an interrupt
(`IRQS_PENDING`) and replay it.

**The model.** The machine: `eth0` (host driver) and a passed-through card (`vfio-intx`) share IO-APIC pin 16.
"""),
    SETUP,
    md("## The operator's directory\nEach CPU has a `vector_irq[]` table: vector → descriptor. This is all `common_interrupt` needs."),
    code("""
host = scenarios.shared_intx()
for cpu, table in enumerate(host.genirq.vector_irq):
    for vector, desc in sorted(table.items()):
        print(f"CPU{cpu} vector 0x{vector:02x} → irq {desc.irq}: flow handler {desc.name!r}, actions {desc.action_names()}")
"""),
    md("## A shared line: every action is called"),
    code("""
j = host.raise_intx("0000:00:19.0")     # eth0's own interrupt
display(viz.journey_diagram(host, j))
j
"""),
    md(f"""
{L('handle_fasteoi_irq')} (a level line) counts the interrupt in `kstat`, then {L('handle_irq_event')} →
{L('__handle_irq_event_percpu')} calls **both** actions, in order: eth0 claims it (`IRQ_HANDLED`); vfio-pci's
{L('vfio_intx_handler')} reads its card's status bit, finds it clear and says `IRQ_NONE` — not its call. The
line counts as handled if any action returned `IRQ_HANDLED`.

Now a glitch: the line fires and no device asserted it. Every action says `IRQ_NONE`, and
{L('note_interrupt')} starts counting.
"""),
    code("""
g = host.raise_spurious(16, at=host.now + 1000)
d = host.irq_to_desc(16)
print(g.outcome, "| irqs_unhandled", d.irqs_unhandled, "| irq_count", d.irq_count)
"""),
    exercise("03-unhandled-after-three",
             "On a fresh line whose only handler returns `IRQ_NONE`, three glitches arrive 1 µs apart. What is "
             "`irqs_unhandled` then? (Try it: `h = irqlab.Host()`, `h.alloc_irq(17, level=True)`, "
             "`h.request_irq(17, lambda i, d: irqlab.IRQ_NONE, irqlab.IRQF_SHARED, \"deaf\", 1)`, "
             "`h.raise_spurious(17, at=...)`.)",
             'h = irqlab.Host()\nh.alloc_irq(17, level=True)\n'
             'h.request_irq(17, lambda i, d: irqlab.IRQ_NONE, irqlab.IRQF_SHARED, "deaf", 1)\n'
             'for t in (1_000, 2_000, 3_000):\n    h.raise_spurious(17, at=t)\n'
             'answer = h.irq_to_desc(17).irqs_unhandled'),
    exercise("03-unhandled-aged", "Same fresh line, but the three glitches arrive **200 ms** apart. What is `irqs_unhandled`?",
             'h = irqlab.Host()\nh.alloc_irq(17, level=True)\n'
             'h.request_irq(17, lambda i, d: irqlab.IRQ_NONE, irqlab.IRQF_SHARED, "deaf", 1)\n'
             'for t in (200_000_000, 400_000_000, 600_000_000):\n    h.raise_spurious(17, at=t)\n'
             'answer = h.irq_to_desc(17).irqs_unhandled'),
    md(f"""
## Reading /proc/interrupts
Row by row ({L('show_interrupts')}, then {L('arch_show_interrupts')} for the rows with letters):
"""),
    code("""
text = host.proc_interrupts()
print(text)
row = irqlab.procfs.parse_proc_interrupts(text).row(16)
print("irq", row.irq, "| per-CPU counts", row.counts, "| chip", row.chip, "| hwirq", row.hwirq,
      "| flow", row.flow, "| actions", row.actions)
"""),
    md(f"""
- **`16:`** the Linux irq number. **Two count columns**, one per online CPU: what
  {L('kstat_incr_irqs_this_cpu')} counted on that CPU — eth0's interrupt and the glitch, both on CPU0 where the
  line's vector lives. Only interrupts that passed the flow handler's gate are counted (see below).
- **`IR-IO-APIC`** the chip (interrupt-remapped IO-APIC); **`16-fasteoi`** the hwirq (the pin) and the flow
  handler's name; then the actions, joined by `", "`.
- The rows with letters are per-CPU architecture counters: `LOC` local timer, `RES` rescheduling IPIs, ...,
  and `PIN`/`NPI`/`PIW`, the posted-interrupt vectors (notebook 8).

`/sys/kernel/irq/16/` has the same descriptor as files; note `actions` joined by `","` with no space:
"""),
    code("host.sys_kernel_irq(16)"),
    md(f"""
## A disabled edge line: IRQS_PENDING and replay
{L('disable_irq')} is *lazy*: it only marks the line disabled (`depth` 1). The next interrupt still reaches the
flow handler, which finds the line disabled ({L('irq_can_handle_actions')}), masks it, sets `IRQS_PENDING`
and returns — **without counting it**. {L('enable_irq')} then replays it through {L('check_irq_resend')}: on x86 a
self-IPI on the line's vector.
"""),
    code("""
q = host.alloc_irq(None, chip_name="IR-PCI-MSIX-0000:09:00.0", hwirq=0, oneshot_safe=True)   # an MSI-X line
host.request_irq(q.irq, lambda irq, dev_id: irqlab.IRQ_HANDLED, 0, "demo-q0", None)
host.disable_irq(q.irq)
held = host.generic_handle_irq(q.irq, cpu=1)
print(f"while disabled: outcome {held.outcome}, istate 0x{q.istate:x} (IRQS_PENDING = 0x{irqlab.IRQS_PENDING:x}), "
      f"depth {q.depth}, kstat {q.kstat}")
host.enable_irq(q.irq)
print(f"after enable_irq: outcome {held.outcome}, kstat {q.kstat}")
held
"""),
    exercise("03-edge-replays",
             "Two interrupts arrive while an edge line is disabled. After `enable_irq`, how many times does its "
             "handler run? (Try it with a handler that counts its calls.)",
             'calls = []\nr = host.alloc_irq(None, chip_name="IR-PCI-MSIX-0000:0a:00.0", hwirq=0, oneshot_safe=True)\n'
             'host.request_irq(r.irq, lambda irq, dev_id: calls.append(irq) or irqlab.IRQ_HANDLED, 0, "count-me", None)\n'
             'host.disable_irq(r.irq)\n'
             'host.generic_handle_irq(r.irq, cpu=1)\nhost.generic_handle_irq(r.irq, cpu=1, at=host.now + 1_000)\n'
             'host.enable_irq(r.irq)\nhost.run()\nanswer = len(calls)'),
    md(f"""
## A disabled level line
A level line works differently: the device keeps its line asserted until it is serviced, so there is
nothing to resend — {L('check_irq_resend')} clears `IRQS_PENDING` for a level line and returns.
"""),
    code("""
h = scenarios.shared_intx()
h.disable_irq(16)
lvl = h.raise_intx("0000:00:19.0")      # eth0 asserts while its line is disabled
print("while disabled:", lvl.outcome)
h.enable_irq(16)
h.run()
lvl
"""),
    exercise("03-level-replay",
             "In that journey, which function — right after the flow handler refused — lets the still-asserted "
             "line fire again? (a function name)",
             'fns = lvl.functions()\nanswer = fns[fns.index("irq_can_handle_actions") + 1]'),
    md("""
### Recap
- `common_interrupt`: vector → `vector_irq[]` → descriptor → its flow handler (edge or fasteoi).
- The flow handler's gate refuses a disabled line (masked, `IRQS_PENDING`, **not counted**); otherwise kstat++
  and every action runs; `note_interrupt` tracks the ones nobody claimed.
- An edge line's held interrupt is replayed by `check_irq_resend` — once, however many arrived; a level line
  is never resent: unmasking it lets the asserted line fire again.
"""),
    nav("03-dispatch"),
]

# ================================================================================================ 04
NOTEBOOKS["04-eventfd-irqfd"] = [
    md(f"""
# 4. eventfd and irqfd: the hand-off

**Objectives.** Use the eventfd counter (normal and `EFD_SEMAPHORE`), its limits and its poll bits; see the wait
queue KVM's irqfd joins and why {L('irqfd_wakeup')} consumes the count; see {L('irqfd_inject')} work coalesce
while it is pending.

**The model.** A call that would block in the kernel (an empty read or a full write, without `EFD_NONBLOCK`)
raises a `KernelError` saying it would block, since nothing else runs while the model waits.
"""),
    SETUP,
    md(f"## The counter\nAn eventfd is a 64-bit counter. `write(n)` adds; `read()` returns the count and resets it to 0 ({L('eventfd_ctx_do_read')}); with `EFD_SEMAPHORE` each read returns 1 and subtracts 1."),
    code("""
from irqlab import Eventfd, EFD_SEMAPHORE, EFD_NONBLOCK, KernelError
e = Eventfd()
e.write(3); e.write(4)
print("read:", e.read(), "| count after:", e.count)
s = Eventfd(2, EFD_SEMAPHORE | EFD_NONBLOCK)
print("semaphore reads:", s.read(), s.read())
try:
    s.read()
except KernelError as err:
    print(err)
"""),
    exercise("04-semaphore-reads", "How many reads succeed on `Eventfd(3, EFD_SEMAPHORE | EFD_NONBLOCK)`?",
             'sem, answer = Eventfd(3, EFD_SEMAPHORE | EFD_NONBLOCK), 0\nwhile True:\n    try:\n'
             '        sem.read()\n        answer += 1\n    except KernelError:\n        break'),
    md(f"""
## Limits and poll bits
The count stays at most `0xfffffffffffffffe` for writers: {L('eventfd_write')} proceeds only if
`ULLONG_MAX - count > value`. {L('eventfd_poll')} reports `EPOLLIN` when there is a count to read, `EPOLLOUT`
when a write of 1 would fit, and `EPOLLERR` when the count is `ULLONG_MAX` — which only the kernel's
{L('eventfd_signal')} can reach: it saturates instead of failing.
"""),
    code("""
from irqlab.eventfd import EPOLLIN, EPOLLOUT, EPOLLERR, ULLONG_MAX
def bits(mask):
    return "|".join(n for n, b in [("EPOLLIN", EPOLLIN), ("EPOLLOUT", EPOLLOUT), ("EPOLLERR", EPOLLERR)] if mask & b) or "0"
f = Eventfd(0, EFD_NONBLOCK)
print(f"count {f.count:#018x}  poll {bits(f.poll())}")
f.write(5)
print(f"count {f.count:#018x}  poll {bits(f.poll())}")
f.write(ULLONG_MAX - 1 - 5)
print(f"count {f.count:#018x}  poll {bits(f.poll())}   (full for writers)")
try:
    f.write(0xffffffffffffffff)
except KernelError as err:
    print(err)
"""),
    exercise("04-write-past-max", "That eventfd is full (`0xfffffffffffffffe`). What errno does `f.write(1)` get?",
             'try:\n    answer = f.write(1)\nexcept KernelError as err:\n    answer = err.errname'),
    exercise("04-saturated-poll",
             "Now the kernel signals it once more: `f.signal()` (that is `eventfd_signal`). What does `f.poll()` "
             "return? (an int: the sum of the EPOLL bits)",
             'f.signal()\nanswer = f.poll()'),
    md(f"""
## The wait queue: KVM's irqfd is a subscriber
Kernel subscribers of an eventfd are wait-queue entries with their own wake function. {L('kvm_irqfd')} (the {L('KVM_IRQFD')} ioctl) adds
the irqfd with {L('add_wait_queue_priority_exclusive')}: it is woken first, and because it is exclusive and
returns 1, the wake-up stops there. Here a userspace poller (say QEMU's main loop) waits on the same
eventfd — and is never woken:
"""),
    code("""
from irqlab.eventfd import WaitQueueEntry
host = scenarios.switchboard()
efd = host.scenario.eventfds[0]
woken = []
efd.add_wait_queue(WaitQueueEntry(lambda e, mask, token: woken.append(mask) or 0, name="QEMU main loop (poll)"))
for w in efd.waiters:
    print(f"waiter {w.name!r:<26} priority={w.priority} exclusive={w.exclusive}")
"""),
    exercise("04-count-after-irqfd",
             "Predict: after one GPU interrupt, what is `efd.count`? (run the next cell to see)",
             "answer = 0   # irqfd_wakeup drains the count before it injects"),
    code("""
j = host.raise_msi("0000:03:00.0", 0)
print("signals:", efd.signals, "| count now:", efd.count, "| poller woken:", woken)
display(viz.journey_diagram(host, j))
for h in j.hops:
    if h.actor in ("vfio", "eventfd") or h.function == "irqfd_wakeup":
        print(h)
"""),
    md(f"""
{L('vfio_msihandler')} calls {L('eventfd_signal')} (count 0 → 1); the wake-up runs {L('irqfd_wakeup')}, which
reads the count back to 0 with {L('eventfd_ctx_do_read')} *before* it injects — and, being the exclusive
waiter, ends the wake-up there: the poller was never woken. Draining keeps the eventfd honest: once the
interrupt is delivered, `poll` no longer reports `EPOLLIN`, so nothing later mistakes it for a new one — not a
userspace poller, and not a new `KVM_IRQFD` on this eventfd, which queues an injection at once if it finds a
count.
(Older kernels, around 3.x, injected without consuming.)

## The work path, and where it coalesces
An MSI route cached on the irqfd is injected right inside {L('irqfd_wakeup')} (the fast path,
{L('kvm_arch_set_irq_inatomic')}). Anything else — an IOAPIC pin, a broadcast, a GSI with several entries —
takes the work item: {L('schedule_work')} queues {L('irqfd_inject')}, and while it is pending,
{L('queue_work_on')} returns false: later signals **coalesce** into the one pending injection.
"""),
    exercise("04-work-coalesced",
             "Predict: an irqfd on GSI 10 (PIC + IOAPIC, so the work path) is signalled 5 times before its work "
             "runs. How many times is vector 0x33 delivered to vCPU 0? (run the next cell to see)",
             "answer = 1   # the 4 later signals find the work pending: queue_work_on() returns false"),
    code("""
vm = host.scenario.vm
vm.ioapic.write_redirtbl(10, vector=0x33, trigger_level=False)
legacy = Eventfd(name="legacy")
vm.kvm_irqfd(legacy, 10)                # GSI 10 has two routes (PIC and IOAPIC): never the fast path
for _ in range(5):
    legacy.signal()
irqfd = vm.irqfds[-1]
print("work queued:", irqfd.work_path, "| coalesced:", irqfd.coalesced)
host.run()
print("vector 0x33 delivered to vcpu0:", vm.vcpus[0].delivered[0x33], "time(s)")
"""),
    md("""
### Recap
- The eventfd counter: write adds, read drains (or decrements, with `EFD_SEMAPHORE`); writers stop at
  `0xfffffffffffffffe` (`EAGAIN`), `eventfd_signal` saturates at `ULLONG_MAX` (`EPOLLERR`).
- The eventfd decouples vfio-pci from KVM: vfio signals, the irqfd — an exclusive, priority waiter — drains
  the count and injects. Nobody else is woken.
- On the work path, signals that arrive while `irqfd_inject` is pending coalesce into one injection.
"""),
    nav("04-eventfd-irqfd"),
]

# ================================================================================================ 05
NOTEBOOKS["05-injection"] = [
    md(f"""
# 5. Injection: routing, MSI bit by bit, the local APIC

**Objectives.** Decode an x86 MSI message field by field; follow a GSI's route to a vCPU; watch IRR, ISR, TPR and
PPR in the virtual local APIC; count kicks, VM exits and EOIs with and without APICv.

**The model.** One KVM local APIC per vCPU, with the kernel's rules ({L('__apic_accept_irq')},
{L('apic_has_interrupt_for_ppr')}, {L('apic_set_eoi')}); a vCPU is either running or halted for a whole run.
"""),
    SETUP,
    md(f"## An MSI message, bit by bit\nA device interrupts by writing `data` to `address` (Intel SDM, MSI format). KVM decodes a route's message with {L('kvm_msi_to_lapic_irq')}:"),
    code("""
m = irqlab.msi.decode(0xFEE01000, 0x4042)
for name, bits, value, meaning in m.fields():
    print(f"{name:<18} {bits:>6}  {value:>6}  {meaning}")
"""),
    exercise("05-dest-vector", "Which destination APIC ID and which vector does address `0xFEE03000`, data `0x40B1` carry? "
             "(a pair: `(dest, vector)`)",
             "m2 = irqlab.msi.decode(0xFEE03000, 0x40B1)\nanswer = (m2.dest_id, m2.vector)"),
    exercise("05-dest-mode", "Is the destination of address `0xFEE0300C` physical or logical? (`'physical'` or `'logical'`)",
             "answer = 'logical' if irqlab.msi.decode(0xFEE0300C, 0x40B1).dest_mode_logical else 'physical'"),
    md("""
## Routing: GSI → message → vCPU
A 4-queue NIC passed through to a 2-vCPU guest. Each queue's eventfd has an irqfd on a GSI (24–27); each GSI's
route is an MSI message the guest programmed. The routing table also holds the default PIC/IOAPIC routes of
GSIs 0–23.
"""),
    code("""
nic = scenarios.msix_nic(4)
vm = nic.scenario.vm
for e in vm.routing.all():
    if e.gsi >= 24:
        m = irqlab.msi.decode(e.address_lo, e.data)
        print(f"{e}   → APIC ID {m.dest_id}, vector 0x{m.vector:02x}, {m.delivery_mode_name}")
"""),
    exercise("05-queue3-vcpu", "Which vCPU (its index) takes queue 3's interrupt?",
             'j3 = nic.raise_msi("0000:01:00.0", 3)\nnic.run()\n'
             'answer = next(v.id for v in vm.vcpus if sum(v.delivered.values()))'),
    code("""
j = nic.raise_msi("0000:01:00.0", 1)
nic.run()
display(viz.journey_diagram(nic, j))
j
"""),
    md(f"""
{L('irqfd_wakeup')} takes the fast path: {L('kvm_arch_set_irq_inatomic')} → {L('kvm_irq_delivery_to_apic_fast')}
finds the one vCPU whose APIC ID matches, {L('__apic_accept_irq')} sets the vector in its IRR. Without APICv,
{L('vmx_deliver_interrupt')} then kicks the vCPU ({L('kvm_vcpu_kick')}): an IPI that forces a VM exit, so the
vCPU re-enters with the interrupt injected.

## Inside the local APIC: IRR, ISR, TPR, PPR
Vectors wait in the IRR (requested); acknowledging one moves it to the ISR (in service). Priority goes by
*class* = `vector >> 4`. PPR = TPR if TPR's class ≥ the in-service class, else the in-service vector's class;
a vector is deliverable only if its class is above PPR's.
"""),
    code("""
from irqlab.kvm.lapic import KvmLapic
apic = KvmLapic()
apic.set_tpr(0x30)
for v in (0x51, 0x45, 0x25):
    apic.apic_accept_irq(v)
show = lambda s: [hex(v) for v in sorted(s)]
print("IRR", show(apic.irr), "| TPR 0x30 | PPR", hex(apic.ppr))
print("ack", hex(apic.kvm_cpu_get_interrupt()), "→ ISR", show(apic.isr), "PPR", hex(apic.ppr))
print("next deliverable:", apic.kvm_apic_has_interrupt(), " (0x45's class 4 is not above PPR's class 5)")
print("EOI clears the highest ISR bit:", hex(apic.apic_set_eoi()), "→ PPR", hex(apic.ppr))
print("next deliverable:", hex(apic.kvm_apic_has_interrupt()), " (0x25's class 2 is below TPR: it waits)")
"""),
    exercise("05-ppr",
             "TPR 0x60; vectors 0x51 and 0x75 are accepted; the vCPU acknowledges the highest deliverable one. "
             "What is the PPR then? (an int)",
             "a = KvmLapic()\na.set_tpr(0x60)\nfor v in (0x51, 0x75):\n    a.apic_accept_irq(v)\n"
             "a.kvm_cpu_get_interrupt()\nanswer = a.ppr"),
    md("The APIC page as the guest sees it: ISR (offset 0x100), TMR (0x180) and IRR (0x200) are 8 registers of 32 bits each, 0x10 apart; vector v is bit `v % 32` of register `v // 32`."),
    code("""
apic.apic_accept_irq(0x41)
NAMES = {0x100: "ISR", 0x180: "TMR", 0x200: "IRR"}
for offset, value in apic.regs():
    if value:
        base, k = offset & ~0x70, (offset & 0x70) >> 4
        vectors = [hex(32 * k + b) for b in range(32) if value >> b & 1]
        print(f"{NAMES.get(base, hex(base))}[{k}] at 0x{offset:03x} = 0x{value:08x}  → vectors {vectors}")
"""),
    md("## Kicks, entries and VM exits\n200 interrupts, alternating between the two queues of a 2-vCPU guest, 3 µs apart; the same with APICv."),
    exercise("05-exits-per-interrupt",
             "Predict: without APICv, how many VM exits does each interrupt cost vCPU 0? (run the next cell to see)",
             "answer = 2   # the kick's EXTERNAL_INTERRUPT exit, and the exit of the guest's EOI write"),
    code("""
for apicv in (False, True):
    h = scenarios.msix_nic(2, apicv=apicv)
    for i in range(200):
        h.raise_msi("0000:01:00.0", i % 2, at=h.now + 3_000)
    h.run()
    v = h.scenario.vm.vcpus[0]
    print(f"APICv={apicv!s:<5}: vcpu0 took {sum(v.delivered.values())} interrupts in {v.entries} entries; exits {dict(v.exits)}")
"""),
    md(f"""
Without APICv, each interrupt costs an `EXTERNAL_INTERRUPT` exit (the kick's IPI lands while the vCPU runs the
guest) and an `EOI` exit (the guest's EOI write to the emulated APIC traps; {L('apic_set_eoi')} runs in KVM).
With APICv, {L('vmx_deliver_interrupt')} posts the vector to the vCPU's posted-interrupt descriptor and sends
the notification vector: the CPU moves it into the virtual IRR **in guest mode**, and virtual-interrupt
delivery handles the edge EOI without an exit.

### Recap
- A route turns a GSI into an MSI message; its destination field names an APIC ID, its data a vector.
- The LAPIC queues in IRR, serves from ISR, and lets through only classes above PPR; EOI clears the highest ISR bit.
- Without APICv every interrupt costs a kick exit and an EOI exit; with APICv, none for edge interrupts.
"""),
    nav("05-injection"),
]

# ================================================================================================ 06
NOTEBOOKS["06-level-intx"] = [
    md(f"""
# 6. Level-triggered INTx: the round trip

**Objectives.** Follow a passed-through device's INTx through vfio's automask ({L('vfio_intx_handler')},
{L('pci_check_and_mask_intx')}), KVM's resampling irqfd, the guest's EOI, {L('irqfd_resampler_ack')} and vfio's
unmask ({L('pci_check_and_unmask_intx')}); see what the round trip costs and what happens to interrupts that
arrive meanwhile.

**The model.** `eth0` and a passed-through card share IO-APIC pin 16. The card supports PCI 2.3 INTx masking
(Command bit 10, *INTx Disable*), so vfio can mask the card without masking the shared line. QEMU gave vfio
two eventfds (trigger, and an unmask eventfd) and KVM an irqfd with {L('KVM_IRQFD_FLAG_RESAMPLE')}.
"""),
    SETUP,
    code("""
host = scenarios.shared_intx()
card = host.pci_dev("0000:04:00.0")
j = host.raise_intx("0000:04:00.0")
host.run()
display(viz.journey_diagram(host, j))
j
"""),
    md(f"""
The card asserts INTA#; genirq calls both actions of line 16. eth0 says `IRQ_NONE`; {L('vfio_intx_handler')}
finds the card's Status.Interrupt bit set and {L('pci_check_and_mask_intx')} sets INTx Disable in the same
config access — the card's line drops, the shared line can serve eth0 again — and signals the trigger eventfd.
The irqfd is a *resample* irqfd: it always takes the work path; {L('irqfd_inject')} raises GSI 16 as a level
and the guest's IOAPIC pin sets its *remote IRR*.

## The way back, step by step
The guest's driver services the card (clears its status) and writes EOI. KVM's {L('kvm_ioapic_update_eoi')}
runs the resampler's ack notifier {L('irqfd_resampler_ack')}: de-assert GSI 16 and signal the resamplefd —
vfio's unmask eventfd, on which vfio's virqfd waits to call {L('pci_check_and_unmask_intx')}. Run the model
one event at a time and watch each bit:
"""),
    code("""
host = scenarios.shared_intx()
card, vm = host.pci_dev("0000:04:00.0"), host.scenario.vm
v0 = vm.vcpus[0]

def state():
    pin = vm.ioapic.redirtbl[16]
    return (f"{host.now:>7,} ns | card Status.INT {int(card.intx_status_event is not None)} DisINTx {int(card.disintx)} | "
            f"IOAPIC remote IRR {int(pin.remote_irr)} | vCPU IRR {[hex(v) for v in sorted(v0.lapic.irr)]} "
            f"ISR {[hex(v) for v in sorted(v0.lapic.isr)]} | exits {sum(v0.exits.values())}")

host.raise_intx("0000:04:00.0")
print(state())
while (t := host.sched.next_due()) is not None:
    host.run(until=t)
    print(state())
"""),
    md("""
Read it row by row: masked at 0 ns; 4 µs later the inject work raises the pin (remote IRR) and sets the IRR,
with a kick exit; the vCPU takes the vector into its ISR at its next entry; the guest handler clears the card's
status and writes EOI (an exit); the resample unmasks the card and clears remote IRR. Only then can the card's
next interrupt reach the host.
"""),
    exercise("06-masked-outcome",
             "Predict: the card asserts again 500 ns after its first interrupt, while vfio still has it masked. "
             "What outcome does that second assertion get? (run the next cell to see)",
             "answer = 'masked'   # Status.Interrupt is already set while INTx Disable holds the line down"),
    code("""
host = scenarios.shared_intx()
first = host.raise_intx("0000:04:00.0")
second = host.raise_intx("0000:04:00.0", at=host.now + 500)
host.run()
print(first.outcome, "|", second.outcome)
second
"""),
    exercise("06-masked-ns",
             "With a slower resample, `scenarios.shared_intx(timing=irqlab.Timing(resample_ns=10_000))`, how many "
             "ns does the card stay masked (DisINTx set) after one interrupt?",
             'h = scenarios.shared_intx(timing=irqlab.Timing(resample_ns=10_000))\nc = h.pci_dev("0000:04:00.0")\n'
             'h.raise_intx("0000:04:00.0")\nwhile c.disintx:\n    h.run(until=h.sched.next_due())\n'
             'answer = h.now'),
    md("""
## What it costs
One interrupt in flight at a time: the card can be served at most once per round trip. Offer it more and the
rest merge in its status bit (`masked`). The storm engine vectorizes the whole round trip (automask, EOI,
resample, unmask, re-signal); each storm below also replays one interrupt at a time through the model
(`engine="reference"`), and the two must agree exactly:
"""),
    code("""
import matplotlib.pyplot as plt
from irqlab import storm
from irqlab.storm import Source

t = irqlab.Timing()
trip = t.irqfd_work_ns + t.kick_ns + t.guest_handler_ns + t.resample_ns
offered, served = [], []
for rate in (10_000, 40_000, 100_000, 250_000):
    s = storm.poisson(sources=[Source("intx", bdf="0000:04:00.0")], rate_hz=rate, duration_ns=50_000_000, seed=5)
    r = storm.run(scenarios.shared_intx(trace=False), s, engine="vector", progress=False)
    assert r.equals(storm.run(scenarios.shared_intx(trace=False), s, engine="reference", progress=False))
    offered.append(rate); served.append(r.ledger.get("injected", 0) / 0.05)
    print(f"offered {rate:>7,}/s → injected {served[-1]:>9,.0f}/s  ledger {r.ledger}  p99 {r.latency_percentiles((99,))[99]:,} ns")
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(offered, offered, ":", c="lightgray", label="offered")
ax.plot(offered, served, "o-", label="injected into the guest")
ax.axhline(1e9 / trip, ls="--", c="gray", label=f"1 / round trip ({trip:,} ns)")
ax.set(xlabel="interrupts offered per second", ylabel="per second", xscale="log", ylim=(0, 1.3e5),
       title="INTx: one in flight at a time")
ax.legend(); plt.show()
"""),
    md("""
## A card without INTx masking
A device without PCI 2.3 INTx Disable cannot be masked on its own: vfio-pci must disable the whole line, so it
requests it **exclusively** (no `IRQF_SHARED`).
"""),
    exercise("06-non-pci23",
             "Build the same machine with such a card: `scenarios.shared_intx(pci_2_3=False)`. What errno does "
             "vfio-pci's request of line 16 get?",
             'try:\n    scenarios.shared_intx(pci_2_3=False)\n    answer = 0\nexcept irqlab.KernelError as e:\n'
             '    answer = e.errname'),
    md("Step through the INTx journey yourself:"),
    code('widgets.journey_stepper(scenario="shared_intx")'),
    md("""
### Recap
- vfio-pci automasks a passed-through INTx in its handler (INTx Disable), so the shared line keeps working.
- The unmask comes back from the guest: EOI → `kvm_ioapic_update_eoi` → resampler → resamplefd → vfio's virqfd
  → `pci_check_and_unmask_intx` (which re-sends if the card still asserts).
- One interrupt in flight at a time: the round trip caps the rate; assertions meanwhile merge (`masked`).
- Without INTx masking, vfio needs the line for itself: sharing fails with `-EBUSY`.
"""),
    nav("06-level-intx"),
]

# ================================================================================================ 07
NOTEBOOKS["07-storms"] = [
    md(f"""
# 7. Storms: a million interrupts, and "nobody cared"

**Objectives.** Push a million interrupts through the model with the vectorized storm engine and check it
against the one-by-one replay; see where interrupts coalesce at each stage; read the ledger (every interrupt
ends in exactly one outcome); reproduce {L('note_interrupt')} disabling a screaming line, to the exact event.

**The model.** `irqlab.storm.run(host, storm)` computes with numpy what the object model does one interrupt at
a time; `engine="reference"` replays the storm through the model itself. Both must agree exactly.
"""),
    SETUP,
    code("""
from irqlab import storm
from irqlab.storm import Source
host = scenarios.msix_nic(4, trace=False)
s = storm.poisson(host, rate_hz=250_000, duration_ns=1_000_000_000, seed=1)   # 4 queues x 250k/s x 1 s
r = storm.run(host, s, engine="vector")
print(r.summary())
"""),
    md("The same storm, one interrupt at a time through the object model, on its first 5,000 events — the two engines must agree on every event's outcome and latency, every counter and `/proc/interrupts`:"),
    code("""
part = storm.from_arrays(s.times[:5000], s.source_ids[:5000], s.sources)
a = storm.run(scenarios.msix_nic(4, trace=False), part, engine="vector")
b = storm.run(scenarios.msix_nic(4, trace=False), part, engine="reference")
print("identical:", a.equals(b), f"| vector {a.elapsed_s * 1e3:.1f} ms | reference {b.elapsed_s * 1e3:.1f} ms")
"""),
    md(f"""
## Coalescing, stage by stage
An interrupt that arrives while an equal one is still waiting merges into it. Where that happens depends on
the path: at the irqfd (its inject work already pending: {L('queue_work_on')} returns false), in the vCPU's
IRR (the vector's bit already set), or in the posted-interrupt descriptor's PIR. Three machines, the same
kind of storm:
"""),
    code("""
def work_path_nic():
    h = scenarios.msix_nic(1, trace=False)                  # queue 0's GSI 24 re-routed to IOAPIC pin 10:
    vm = h.scenario.vm                                      # not an MSI route, so irqfd_inject's work path
    vm.ioapic.write_redirtbl(10, vector=0x41, trigger_level=False)
    vm.kvm_set_gsi_routing([irqlab.irqchip_route(24, irqlab.KVM_IRQCHIP_IOAPIC, 10)])
    return h

machines = [("irqfd work path (reference)", work_path_nic, 300_000, "reference"),
            ("MSI fast path, no APICv", lambda: scenarios.msix_nic(1, trace=False), 300_000, "vector"),
            ("posted, vCPU halted", lambda: scenarios.posted_nic(1, trace=False, vcpu_mode="halted"), 300_000, "vector")]
for name, make, rate, engine in machines:
    h = make()
    res = storm.run(h, storm.poisson(h, rate_hz=rate, duration_ns=20_000_000, seed=2), engine=engine)
    print(f"{name:<30} {res.ledger}")
"""),
    md(f"""
The ledger of each adds up to the number of interrupts raised: nothing is lost, every interrupt is either
delivered (`injected`, `posted`) or names the place it merged.

## A screaming line
A level line that fires with nobody claiming it. {L("note_interrupt")} counts, starting at the first unhandled
interrupt; at the 100,000th counted one, if more than 99,900 were unhandled, the kernel prints *nobody cared*,
lists the handlers, and disables the line. {L("poll_spurious_irqs")} then polls it every 100 ms — and never
re-enables it.

The storm: 50 ms of eth0's own interrupts on line 16 (all handled), then glitches at 1 MHz. CPU0 cannot take a
million a second: each hard interrupt holds it for `Timing.host_irq_ns` (1.5 µs), and a glitch that arrives
meanwhile is gone (the IO-APIC sends nothing while the last message is not EOI'd: *remote IRR*) — the ledger's
`coalesced_apic`. note_interrupt counts only what CPU0 took.
"""),
    code("""
h = scenarios.shared_intx(trace=False)
eth0 = storm.poisson(sources=[Source("intx", bdf="0000:00:19.0")], rate_hz=10_000, duration_ns=50_000_000, seed=1)
glitches = storm.poisson(sources=[Source("spurious", irq=16)], rate_hz=1_000_000, duration_ns=400_000_000,
                         seed=2, start_ns=50_000_000)
glitchy = storm.mix(eth0, glitches)
r = storm.run(h, glitchy)
print(r.ledger_table())
print(h.dmesg())
"""),
    code("""
t_off, irq = h.spurious_disabled[0]
i = int(np.searchsorted(glitchy.times, t_off))
first_glitch = int(np.argmax(glitchy.source_ids == glitchy.sources.index(Source("spurious", irq=16))))
print(f"line {irq} disabled at {t_off:,} ns, by event #{i:,} — the 100,000th counted since the first glitch (#{first_glitch:,})")
labels = [o.label for o in irqlab.Outcome]
for k in range(i - 1, i + 3):
    print(f"  event #{k:,}  t={glitchy.times[k]:,} ns  {glitchy.sources[glitchy.source_ids[k]]}: {labels[r.outcome[k]]}")
"""),
    md("""
The event that closes the window is the one that disables the line (lazily: it only marks it). The next one
finds it disabled: the flow handler masks the line and holds that interrupt (`IRQS_PENDING`); the poller later
runs the handlers for it, so it ends `unhandled` too. After that, arrivals are `disabled`: dropped at the
masked line, never counted in `/proc/interrupts` — except that after each poll the next arrival is held again
(the one still `pending` when the storm ends).
"""),
    code("""
import matplotlib.pyplot as plt
bins, per_outcome = r.rate(2_000_000)
COLORS = {"handled_host": "tab:green", "unhandled": "tab:orange", "pending": "tab:gray", "disabled": "tab:red"}
fig, ax = plt.subplots(figsize=(8, 3))
for label, counts in per_outcome.items():
    ax.plot(bins / 1e6, counts, label=label, c=COLORS.get(label))
ax.axvline(t_off / 1e6, ls="--", c="gray")
ax.set_yscale("symlog", linthresh=10)
ax.set_ylim(0, 5_000)
ax.set(xlabel="time (ms)", ylabel="interrupts per 2 ms", title="line 16: handled, then unhandled, then disabled")
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1)); fig.tight_layout(); plt.show()
viz.host_diagram(h)
"""),
    exercise("07-disable-index",
             "A storm of glitches only (no eth0 traffic): `storm.poisson(sources=[Source(\"spurious\", irq=16)], "
             "rate_hz=1_000_000, duration_ns=300_000_000, seed=7)` on a fresh `scenarios.shared_intx(trace=False)`. "
             "At which event index is the line disabled? (reason it out, or run it)",
             'h7 = scenarios.shared_intx(trace=False)\n'
             's7 = storm.poisson(sources=[Source("spurious", irq=16)], rate_hz=1_000_000, duration_ns=300_000_000, seed=7)\n'
             'storm.run(h7, s7)\nanswer = int(np.searchsorted(s7.times, h7.spurious_disabled[0][0]))'),
    exercise("07-slow-glitches",
             "Glitches at 5 per second for 60 s on line 16: how many times does the kernel print *nobody cared*?",
             'h8 = scenarios.shared_intx(trace=False)\n'
             'storm.run(h8, storm.poisson(sources=[Source("spurious", irq=16)], rate_hz=5, duration_ns=60_000_000_000, seed=3))\n'
             'answer = h8.dmesg().count("nobody cared")'),
    exercise("07-storm-kstat",
             "After that glitches-only storm, what total does `/proc/interrupts` show for irq 16 (all CPUs)? "
             "(reason it out from the window; then run that storm and look)",
             "answer = sum(h7.irq_to_desc(16).kstat)"),
    md("## Explore\nRates, bursts, posting, halted vCPUs, the irqfd work delay: press **Run** to rerun the vector engine."),
    code("widgets.storm_explorer()"),
    md("""
### Recap
- The vector engine and the one-by-one replay agree exactly; a million interrupts take a fraction of a second.
- Coalescing happens where the kernel coalesces: a pending irqfd work item, a set IRR bit, a set PIR bit.
- The ledger always adds up to the number raised.
- `note_interrupt`: counting starts at the first unhandled interrupt; at 100,000 counted with more than 99,900
  unhandled, the line is disabled and only polled from then on.
"""),
    nav("07-storms"),
]

# ================================================================================================ 08
NOTEBOOKS["08-posted-interrupts"] = [
    md(f"""
# 8. Posted interrupts: the bypass

**Objectives.** With APICv and VT-d posting, the IOMMU writes a passed-through device's interrupt straight into
the vCPU's posted-interrupt descriptor: no host handler, no `/proc/interrupts` count, no eventfd, no VM exit.
See what disappears, and compare exits and latency under the same storm.

**The model.** When vfio-pci registers its irq-bypass *producer* (the trigger eventfd) and KVM its *consumer*
(the irqfd on the same eventfd), {L('kvm_pi_update_irte')} rewrites the IRTE as *posted* — if the route is an MSI
to a single vCPU with Fixed or Lowest-priority delivery.
"""),
    SETUP,
    code("""
host = scenarios.posted_nic(2)
j = host.raise_msi("0000:01:00.0", 0)
host.run()
display(viz.journey_diagram(host, j))
j
"""),
    md("## What disappears\nThe same interrupt on the same NIC with APICv but no posting, and the functions that are gone:"),
    code("""
plain = scenarios.msix_nic(2, apicv=True)
pj = plain.raise_msi("0000:01:00.0", 0)
plain.run()
gone = [f for f in pj.functions() if f not in j.functions()]
print(len(pj.hops), "hops without posting,", len(j.hops), "with; gone:")
for f in gone:
    print("  ", f)
"""),
    md(f"""
Gone: {L('common_interrupt')} and the flow handler, vfio-pci's {L('vfio_msihandler')}, {L('eventfd_signal')},
KVM's {L('irqfd_wakeup')} — the whole host path. The operator never hears this call: the IOMMU puts it straight
through to the consultant's desk. And so the host's counters stop counting:
"""),
    code("""
from irqlab import storm
results = {}
for name, make in [("vfio + irqfd, no APICv", lambda: scenarios.msix_nic(2, trace=False)),
                   ("APICv, not posted", lambda: scenarios.msix_nic(2, trace=False, apicv=True)),
                   ("APICv + VT-d posting", lambda: scenarios.posted_nic(2, trace=False))]:
    h = make()
    r = storm.run(h, storm.poisson(h, rate_hz=200_000, duration_ns=200_000_000, seed=3))
    kstat = sum(sum(d.kstat) for d in h.genirq.descs.values())
    results[name] = (h, r)
    p = r.latency_percentiles((50, 99))
    print(f"{name:<24} VM exits {r.vmexits():>8,}  host kstat {kstat:>7,}  latency p50 {p[50]:>5,} ns  p99 {p[99]:>5,} ns")
print()
for name in ("APICv, not posted", "APICv + VT-d posting"):
    rows = results[name][1].proc_interrupts().split("NMI:")[0].splitlines()
    print(f"{name}, /proc/interrupts after the storm:", *rows[1:3], sep="\\n  ")
"""),
    exercise("08-not-postable",
             "Posting needs a route to a single vCPU. On a fresh `scenarios.posted_nic(2)`, re-route GSI 24 to a "
             "broadcast: `m = irqlab.msi.encode(dest_id=0xFF, vector=0x41)`, then `vm.kvm_set_gsi_routing([e for e "
             "in vm.routing.all() if e.gsi != 24] + [irqlab.msi_route(24, m.address_lo, m.data)])`. Raise queue 0 and "
             "run: what is the interrupt's outcome? (look at its journey too)",
             'hb = scenarios.posted_nic(2)\nvm = hb.scenario.vm\nm = irqlab.msi.encode(dest_id=0xFF, vector=0x41)\n'
             'vm.kvm_set_gsi_routing([e for e in vm.routing.all() if e.gsi != 24] + [irqlab.msi_route(24, m.address_lo, m.data)])\n'
             'jb = hb.raise_msi("0000:01:00.0", 0)\nhb.run()\nanswer = jb.outcome'),
    exercise("08-posted-vfio-row",
             "Under posting, what total does the `vfio-msix[0](0000:01:00.0)` row of `/proc/interrupts` show after "
             "the storm?",
             'p8 = irqlab.procfs.parse_proc_interrupts(results["APICv + VT-d posting"][1].proc_interrupts())\n'
             'answer = next(row.total for row in p8.vfio_rows() if "vfio-msix[0](0000:01:00.0)" in row.actions)'),
    md(f"""
## Halted vCPUs and the PIN/PIW rows
A running vCPU takes the notification in guest mode: invisible to the host. A *halted* vCPU's descriptor has its
notification vector switched to the wakeup vector (0xF1); the host handles that one —
{L('pi_wakeup_handler')} wakes the vCPU — and counts it. `PIN` counts notifications (0xF2) that land while the
CPU is in host mode; the model's running vCPUs are always in guest mode, so it stays 0 here.
"""),
    code("""
hh = scenarios.posted_nic(2, vcpu_mode="halted", trace=False)
rh = storm.run(hh, storm.poisson(hh, rate_hz=50_000, duration_ns=20_000_000, seed=4))
print(rh.ledger)
print("\\n".join(l for l in hh.proc_interrupts().splitlines() if l.split(":")[0].strip() in ("PIN", "NPI", "PIW")))
"""),
    exercise("08-halted-row",
             "Which arch row of `/proc/interrupts` counts the wake-ups of halted vCPUs under posting? (its three-letter name)",
             'counters = irqlab.procfs.parse_proc_interrupts(hh.proc_interrupts()).posted_interrupt_counters()\n'
             'answer = next(name for name, counts in counters.items() if sum(counts))'),
    md("Step through a posted interrupt hop by hop (pick any of the NIC's four queues):"),
    code('widgets.journey_stepper(scenario="posted_nic")'),
    md("""
### Recap
- Posting needs APICv, an IOMMU with posting, and a route to a single vCPU (Fixed or Lowest priority).
- The IOMMU sets the PIR bit and notifies: no host interrupt, no vfio handler, no eventfd, no irqfd, no exit.
- The host's view goes with it: the vfio-msix rows stop counting; only `PIW` (wake-ups of halted vCPUs) and
  `PIN` (notifications taken in host mode) show posting at work.
"""),
    nav("08-posted-interrupts"),
]

# ================================================================================================ 09
NOTEBOOKS["09-your-machine"] = [
    md(f"""
# 9. Your own machine

**Objectives.** Read a real `/proc/interrupts` — this machine's, or one you paste — and find the vfio lines, the
posted-interrupt counters and the busiest CPU. The format is {L('show_interrupts')} (device rows) and
{L('arch_show_interrupts')} (the rows with letters), as Linux 6.18 prints them.
"""),
    SETUP,
    code("""
from irqlab.procfs import parse_proc_interrupts, read_proc_interrupts
try:
    mine = read_proc_interrupts()          # this machine's /proc/interrupts
    print(f"this machine: {len(mine.cpus)} CPUs, {len(mine.device_rows())} device rows, "
          f"{len(mine.vfio_rows())} vfio rows; busiest CPU: {mine.busiest_cpu()[1]}")
except OSError:
    mine = None
    print("no /proc/interrupts here (not Linux): the sample below still works")
"""),
    code("""
import matplotlib.pyplot as plt
if mine is not None:
    top = sorted(mine.device_rows(), key=lambda r: -r.total)[:8]
    fig, ax = plt.subplots(figsize=(7, 2.8))
    ax.barh([f"{r.irq}: {', '.join(r.actions)[:30]}" for r in top][::-1], [r.total for r in top][::-1])
    ax.set(title="this machine's busiest interrupt lines", xlabel="interrupts since boot"); plt.show()
"""),
    md("A 6.18 KVM host with a passed-through INTx card and an MSI-X NIC (counts invented; some rows left out):"),
    code("""
SAMPLE = irqlab.procfs.SAMPLE_6_18
print(SAMPLE)
p = parse_proc_interrupts(SAMPLE)
p
"""),
    code("""
print("vfio rows:", [(r.irq, r.actions) for r in p.vfio_rows()])
print("posted-interrupt counters:", p.posted_interrupt_counters())
print("busiest CPU:", p.busiest_cpu())
"""),
    exercise("09-vfio-rows", "How many rows of the sample belong to vfio (a `vfio-intx` or `vfio-msix` action)?",
             "answer = len(p.vfio_rows())"),
    exercise("09-pin-total", "How many posted-interrupt notifications did the sample's host take in host mode, all CPUs together?",
             'answer = sum(p.posted_interrupt_counters()["PIN"])'),
    exercise("09-busiest-cpu", "Which CPU took the most device interrupts in the sample?",
             "answer = p.busiest_cpu()[1]"),
    md("The sample's machine, rebuilt in the model: a shared INTx line with a vfio-intx action, and an MSI-X NIC passed through."),
    code("""
host = scenarios.shared_intx()
host.add_pci_device("0000:01:00.0", name="nic", msix=2)
scenarios.passthrough_msix(host, host.scenario.vm, "0000:01:00.0", 2, first_gsi=30)
print(host.proc_interrupts().split("NMI:")[0])
viz.host_diagram(host)
"""),
    md("Paste your own (a host running VMs with passed-through devices is the interesting case) and run the same lines:"),
    code("""
pasted = SAMPLE      # replace with the text of your /proc/interrupts, in triple quotes
q = parse_proc_interrupts(pasted)
print(len(q.vfio_rows()), "vfio rows;", "posted-interrupt counters", q.posted_interrupt_counters(), "; busiest", q.busiest_cpu()[1])
"""),
    md("""
### Recap
- Every `vfio-intx(...)` / `vfio-msix[i](...)` row is a host action that hands its interrupts to a VMM through
  an eventfd; its counts are the interrupts the host took for the guest.
- Under posted interrupts those rows stay still; `PIN` and `PIW` show posting at work.
- The busiest CPU is found from the device rows, not the timer and IPI rows.

That is the whole path: the operator answers every call, and the consultant hears only the visitors' extension.
"""),
    nav("09-your-machine"),
]


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
}

HANDWRITTEN = """
## Concepts

| term | what it is | where (Linux 6.18) |
|---|---|---|
| `struct irq_desc` | one per Linux irq: flow handler, action chain, `depth`, `istate`, per-CPU `kstat`, spurious counters | `include/linux/irqdesc.h` |
| `struct irqaction` | one handler on a line: `handler`, `dev_id`, `flags`, `name`, `thread_fn` | `include/linux/interrupt.h` |
| `vector_irq[]` | per-CPU table vector → `irq_desc`, read by `common_interrupt` | `arch/x86/include/asm/hw_irq.h`, `arch/x86/kernel/irq.c` |
| flow handler | how a line is acknowledged and its actions run: `handle_edge_irq` (MSI, edge pins), `handle_fasteoi_irq` (level IO-APIC pins) | `kernel/irq/chip.c` |
| `IRQF_SHARED`, `IRQF_ONESHOT`, `IRQF_COND_ONESHOT`, `IRQF_TRIGGER_*` | request flags that decide whether a line can be shared | `include/linux/interrupt.h` |
| `IRQ_NONE` / `IRQ_HANDLED` | a handler's answer: "not my device" / "mine" | `include/linux/irqreturn.h` |
| `IRQS_PENDING`, `IRQS_REPLAY`, `IRQS_SPURIOUS_DISABLED` | descriptor state bits: held while disabled, being replayed, disabled by `note_interrupt` | `kernel/irq/internals.h` |
| *nobody cared* | `note_interrupt`'s verdict on a line whose handlers return `IRQ_NONE`: > 99,900 of 100,000 | `kernel/irq/spurious.c` |
| GSI | Global System Interrupt: the number KVM routes (IOAPIC pins 0–23, MSI routes from 24 up in QEMU) | `virt/kvm/irqchip.c` |
| INTx | a PCI function's legacy level-triggered interrupt pin (INTA#–INTD#), often shared | `drivers/pci/` |
| INTx Disable / Status.Interrupt | PCI 2.3 Command bit 10 and Status bit 3: mask one device's INTx, see if it asserts | `include/uapi/linux/pci_regs.h` |
| MSI / MSI-X | message-signalled interrupts: the device writes `data` to `address`; one vector per message | `drivers/pci/msi/` |
| IRTE | interrupt remapping table entry of the IOMMU: remapped (to a host vector) or posted (to a vCPU) | `drivers/iommu/intel/irq_remapping.c` |
| eventfd | a 64-bit counter with a wait queue; vfio signals it, KVM's irqfd consumes it | `fs/eventfd.c` |
| irqfd | KVM's subscriber on an eventfd: injects a GSI when signalled (`struct kvm_kernel_irqfd`) | `include/linux/kvm_irqfd.h`, `virt/kvm/eventfd.c` |
| resamplefd | the eventfd KVM signals when the guest EOIs a level interrupt, so vfio can unmask | `virt/kvm/eventfd.c` |
| virqfd | vfio's subscriber on the unmask eventfd | `drivers/vfio/virqfd.c` |
| GSI routing table | per VM: GSI → PIC/IOAPIC pin(s) or one MSI message, set by `KVM_SET_GSI_ROUTING` | `virt/kvm/irqchip.c` |
| local APIC: IRR, ISR, TMR, TPR, PPR | requested, in-service and trigger-mode vectors; task and processor priority | `arch/x86/kvm/lapic.c` |
| remote IRR | an IOAPIC level pin's "delivered, not yet EOI'd" bit | `arch/x86/kvm/ioapic.c` |
| VM exit / kick | the vCPU leaves guest mode; a kick is the IPI that forces it (`kvm_vcpu_kick`) | `arch/x86/kvm/x86.c` |
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
    """Every kernel function the scenarios' journeys show, plus the names the notebooks link, with files."""
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
    missing = sorted(LINKED - set(names))
    if missing:
        raise SystemExit(f"the notebooks link {missing} but the glossary has no file for them: add them to EXTRA")
    rows = "\n".join(f"| [`{fn}`]({E}{fn}) | `{f}` |" for fn, f in sorted(names.items(), key=lambda x: x[0].lstrip("_").lower()))
    return ("# Glossary\n\nEvery kernel function the course names, with the Linux 6.18 file it lives in (each link "
            "searches elixir for the identifier), then the concepts and ioctls. The function table is generated by "
            "`course/_build.py` from the journeys of the scenarios plus the names the notebooks link, so it follows "
            "the model.\n\n## Functions\n\n| function | file |\n|---|---|\n" + rows + "\n" + HANDWRITTEN)


def _fix_links(text: str, variant: str) -> str:
    """Solutions live one folder down: the glossary and the solutions folder are reached differently."""
    if variant == "solution":
        text = text.replace("(glossary.md)", "(../glossary.md)").replace("(solutions/)", "(./)")
    return text


def build() -> None:
    (HERE / "solutions").mkdir(exist_ok=True)
    for stem in ORDER:
        cells = NOTEBOOKS[stem]
        for variant in ("course", "solution"):
            nb = new_notebook(metadata=dict(KS))
            for c in cells:
                if c[0] == "md":
                    nb.cells.append(new_markdown_cell(_fix_links(c[1], variant)))
                elif c[0] == "code":
                    nb.cells.append(new_code_cell(c[1]))
                else:
                    _, key, question, solution = c
                    nb.cells.append(new_markdown_cell(f"**Exercise `{key}`.** {question}"))
                    line = solution if variant == "solution" else "answer = ...  # your answer"
                    nb.cells.append(new_code_cell(f"{line}\ncheck.ex({key!r}, answer);"))
            for i, cell in enumerate(nb.cells):
                cell["id"] = str(i)  # what nbstripout writes, so `nbstripout --verify` agrees
            out = HERE / (f"{stem}.ipynb" if variant == "course" else f"solutions/{stem}.ipynb")
            nbformat.validate(nb)
            nbformat.write(nb, out)
    (HERE / "glossary.md").write_text(glossary())


if __name__ == "__main__":
    build()
