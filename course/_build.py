"""Generate the course notebooks (course/*.ipynb) and their worked solutions (course/solutions/*.ipynb).

    python course/_build.py

Both variants come from the same cells, so they never drift apart; exercises differ only in the answer
line. The notebooks are written without outputs.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
E = "https://elixir.bootlin.com/linux/v6.18/C/ident/"
KS = {"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
      "language_info": {"name": "python"}}


def L(fn: str) -> str:
    return f"[`{fn}`]({E}{fn})"


def md(s: str):
    return ("md", s.strip())


def code(s: str):
    return ("code", s.strip())


def exercise(key: str, question: str, solution: str):
    return ("ex", key, question.strip(), solution.strip())


SETUP = code("import irqlab\nfrom irqlab import scenarios, viz, check\nimport numpy as np")

NOTEBOOKS: dict[str, tuple[str, list]] = {}

NOTEBOOKS["00-index"] = ("Course map", [
    md("""
# irqlab — how a passed-through device's interrupts reach a KVM guest

**KVM is a subscriber, not an interceptor.** The host kernel's generic IRQ layer (genirq) answers *every*
physical interrupt and dispatches it through its descriptor table. Only a passed-through device's interrupts
reach the `vfio-pci` handler, which signals an **eventfd**; KVM's **irqfd** listens on that eventfd, looks the
GSI up in its routing table and injects a virtual interrupt into a vCPU's local APIC.

Like a switchboard: the operator (genirq) answers every call; only calls on the visitors' extension
(vfio-pci) reach the outside consultant (KVM).

| # | notebook | you will see |
|---|---|---|
| 1 | [The switchboard](01-switchboard.ipynb) | one interrupt end to end; KVM as subscriber |
| 2 | [Registration](02-registration.ipynb) | `request_irq`, shared lines, vfio-pci, `VFIO_DEVICE_SET_IRQS`, `KVM_IRQFD`, routing |
| 3 | [Dispatch](03-dispatch.ipynb) | vector → descriptor → flow handler → every action; `/proc/interrupts` |
| 4 | [eventfd and irqfd](04-eventfd-irqfd.ipynb) | the counter, the wait queue, coalescing work |
| 5 | [Injection](05-injection.ipynb) | routing, MSI bit by bit, IRR/ISR/PPR, kicks, exits, EOI |
| 6 | [Level-triggered INTx](06-level-intx.ipynb) | automask, resamplefd, unmask: the round trip |
| 7 | [Storms](07-storms.ipynb) | millions of interrupts; the ledger; "nobody cared" |
| 8 | [Posted interrupts](08-posted-interrupts.ipynb) | the bypass: what leaves the host's path |
| 9 | [Your own machine](09-your-machine.ipynb) | read a real `/proc/interrupts` |

Every kernel function links to its Linux 6.18 source on elixir; the [glossary](glossary.md) maps every
name used to its file. Exercises check themselves; worked solutions are in [solutions/](solutions/).

**Run it:** `make lab` on Debian (installs Graphviz and a venv, opens this page), or the Binder badge in the
README. `python -m irqlab doctor` checks your setup.
"""),
    SETUP,
    code("print(irqlab.__version__)\nprint(irqlab.scenarios.switchboard())"),
])

NOTEBOOKS["01-switchboard"] = ("The switchboard", [
    md("""
# 1. The switchboard: one interrupt, end to end

**Objectives.** See the whole path of a passed-through device's interrupt, and see that KVM only *subscribes*
to an eventfd: the host kernel handles every interrupt first.

The machine: a disk and a NIC driven by host drivers, and a GPU passed through to a 2-vCPU guest.
"""),
    SETUP,
    code("""
host = scenarios.switchboard()
gpu = host.raise_msi("0000:03:00.0", 0)   # the GPU writes its MSI message
host.run()                                # let the vCPU take it
viz.journey_diagram(host, gpu)            # the path, lit hop by hop
"""),
    md(f"""
Read the diagram top to bottom: the hardware raises a vector on a host CPU; {L('common_interrupt')} finds the
descriptor; {L('handle_edge_irq')} runs every action of the line — here only {L('vfio_msihandler')}, which calls
{L('eventfd_signal')}. KVM appears only now: its {L('irqfd_wakeup')} is a *waiter* on that eventfd. It looks up
the GSI's route, and {L('__apic_accept_irq')} sets the vector in the vCPU's IRR; a kick makes the vCPU exit and
take it at the next entry ({L('kvm_apic_ack_interrupt')}).
"""),
    code("print(gpu.text())"),
    md("Now a call for *finance*: the disk's interrupt. The operator answers it and puts it through to the host driver. KVM never hears it."),
    code("""
disk = host.raise_msi("0000:00:17.0", 0)
print(disk.text())
viz.journey_diagram(host, disk)
"""),
    md("Step through any interrupt of this machine yourself (▶ plays it):"),
    code("irqlab.widgets.journey_stepper(host)"),
    md("### Exercises"),
    exercise("01-first-kvm-function", "Which is the first KVM function on the GPU interrupt's path? (a string)",
             'answer = next(h.function for h in gpu.hops if h.file.startswith(("virt/kvm", "arch/x86/kvm")))'),
    exercise("01-disk-outcome", "What is the outcome of the disk's interrupt? (the label, e.g. 'injected')",
             "answer = disk.outcome"),
    md("""
**Recap.** genirq answers every interrupt; vfio-pci's handler is one action among others; the eventfd is the
hand-off; KVM's irqfd is a subscriber on it. Next: how those actions, eventfds and irqfds get registered.
"""),
])

NOTEBOOKS["02-registration"] = ("Registration", [
    md(f"""
# 2. Registration: who listens to which line

**Objectives.** Register handlers with {L('request_irq')} and see the kernel's sharing rules and errors; bind a
device to vfio-pci; wire eventfds with `VFIO_DEVICE_SET_IRQS`, irqfds with `KVM_IRQFD`, and routes with
`KVM_SET_GSI_ROUTING`; read the table the kernel builds.
"""),
    SETUP,
    code("""
from irqlab import IRQF_SHARED, IRQ_HANDLED, IRQ_NONE, KernelError
host = irqlab.Host(ncpus=2)
host.alloc_irq(16, level=True)              # an IO-APIC pin, like a PCI INTx line
def ehci(irq, dev_id):  return IRQ_NONE     # "not my device"
def snd(irq, dev_id):   return IRQ_HANDLED
host.request_irq(16, ehci, IRQF_SHARED, "ehci_hcd:usb1", "usb")
host.request_irq(16, snd, IRQF_SHARED, "snd_hda_intel", "audio")
print(host.proc_interrupts())
"""),
    md(f"""
Both actions hang on the same descriptor, in the order they came ({L('__setup_irq')} appends at the tail).
A line is shared only if *every* requester agrees: `IRQF_SHARED` on both, the same trigger type, ONESHOT
agreement. A driver that wants the line for itself gets `-EBUSY`, and the kernel logs the mismatch:
"""),
    code("""
try:
    host.request_irq(16, snd, 0, "greedy", "g")
except KernelError as e:
    print(e)
print(host.dmesg())
"""),
    exercise("02-busy-errno", "What errno did that return? (an int, or a name like 'EINVAL')", "answer = 'EBUSY'"),
    exercise("02-shared-no-dev-id", "And for IRQF_SHARED with dev_id=None? Try it, then answer.",
             "answer = 'EINVAL'"),
    md(f"""
### vfio-pci, eventfds and irqfds
Binding a device to vfio-pci frees its host driver's actions. QEMU then asks vfio how many interrupts the
device has (`VFIO_DEVICE_GET_IRQ_INFO`) and gives one eventfd per vector (`VFIO_DEVICE_SET_IRQS`): vfio
requests each vector's irq with {L('vfio_msihandler')} as the handler.
"""),
    code("""
from irqlab import (Eventfd, VFIO_PCI_MSIX_IRQ_INDEX, VFIO_IRQ_SET_DATA_EVENTFD, VFIO_IRQ_SET_ACTION_TRIGGER,
                    msi_route, msi)
host.add_pci_device("0000:01:00.0", name="nic", msix=4)
host.bind_host_driver("0000:01:00.0", "enp1s0")
print(host.proc_interrupts().splitlines()[2])
vdev = host.vfio_pci_bind("0000:01:00.0")     # the host driver lets go
print(vdev.get_irq_info(VFIO_PCI_MSIX_IRQ_INDEX))
efds = [Eventfd(name=f"q{i}") for i in range(2)]
vdev.set_irqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_MSIX_IRQ_INDEX, 0, 2, efds)
print(host.proc_interrupts())
"""),
    md(f"""
KVM joins last: {L('kvm_irqfd')} makes the irqfd a waiter on each eventfd (an exclusive, priority one — a
second irqfd on the same eventfd gets `-EBUSY`), and `KVM_SET_GSI_ROUTING` says where each GSI goes.
"""),
    code("""
vm = host.create_vm(nvcpus=2)
routes = [msi_route(24 + i, msi.encode(dest_id=i, vector=0x41 + i).address_lo,
                    msi.encode(dest_id=i, vector=0x41 + i).data) for i in range(2)]
vm.kvm_set_gsi_routing(routes)
for i, e in enumerate(efds):
    vm.kvm_irqfd(e, 24 + i)
print(host.sys_kernel_irq(vdev.dev.vectors[0].irq))
viz.host_diagram(host)
"""),
    md("Try it yourself: the board calls the same functions and shows the kernel's errors as it reports them."),
    code("irqlab.widgets.registration_board(host)"),
    md("**Recap.** Registration builds the switchboard: actions on descriptors, eventfds behind vfio's actions, irqfds on the eventfds, routes behind the irqfds."),
])

NOTEBOOKS["03-dispatch"] = ("Dispatch", [
    md(f"""
# 3. Dispatch: vector → descriptor → flow handler → every action

**Objectives.** Follow {L('common_interrupt')} to the descriptor and its flow handler ({L('handle_edge_irq')},
{L('handle_fasteoi_irq')}), see {L('handle_irq_event')} call every action of a shared line, read
`/proc/interrupts` column by column, and watch a disabled line hold an interrupt pending and replay it.
"""),
    SETUP,
    code("""
host = scenarios.shared_intx()          # eth0 and a passed-through card share IRQ 16
j = host.raise_intx("0000:00:19.0")     # eth0's own interrupt
print(j.text())
"""),
    code("viz.journey_diagram(host, j)   # both actions of IRQ 16 are lit: the operator rings every extension on the line"),
    md("Both actions ran: eth0 claimed it, vfio-pci's handler checked its device's status bit and said `IRQ_NONE`. Now a glitch nobody asserted:"),
    code("""
g = host.raise_spurious(16, at=host.now + 1000)
print(g.outcome, host.irq_to_desc(16).irqs_unhandled)
print(host.proc_interrupts())
"""),
    md(f"""
Reading a row: the irq number; one column per online CPU with the count {L('kstat_incr_irqs_this_cpu')} kept
there; the chip (`IR-IO-APIC`); the hwirq (the pin) and the flow handler's name; then the actions, joined by
`", "`. In `/sys/kernel/irq/16/actions` the same names are joined by `","` with no space.
"""),
    code("host.sys_kernel_irq(16)"),
    exercise("03-unhandled-after-three", "On a fresh line whose only handler returns IRQ_NONE, three glitches 1 µs apart: what is irqs_unhandled?",
             "answer = 3"),
    md(f"""
### A disabled line
{L('disable_irq')} is lazy: it only marks the line disabled. The next interrupt reaches the flow handler, which
masks the line and sets `IRQS_PENDING`; {L('enable_irq')} replays it through {L('check_irq_resend')}.
"""),
    code("""
q = host.alloc_irq(None, chip_name="IR-PCI-MSIX-0000:09:00.0", hwirq=0, oneshot_safe=True)
host.request_irq(q.irq, lambda irq, d: irqlab.IRQ_HANDLED, 0, "demo-q0", None)
host.disable_irq(q.irq)
held = host.generic_handle_irq(q.irq, cpu=1)
print(held.outcome, hex(q.istate), q.kstat)
host.enable_irq(q.irq)
print(held.outcome, held.functions()[-4:], q.kstat)
"""),
    exercise("03-disabled-edge-outcome", "What outcome does an interrupt get on a disabled edge line, before enable_irq?",
             "answer = 'pending'"),
    md("**Recap.** One vector, one descriptor, one flow handler, every action; kstat counts only what passes the gate."),
])

NOTEBOOKS["04-eventfd-irqfd"] = ("eventfd and irqfd", [
    md(f"""
# 4. eventfd and irqfd: the hand-off

**Objectives.** Use the eventfd counter (normal and `EFD_SEMAPHORE`), its limits and poll bits; see the wait
queue that KVM's irqfd joins; see why {L('irqfd_wakeup')} consumes the count, and how {L('irqfd_inject')} work
coalesces while it is pending.
"""),
    SETUP,
    code("""
from irqlab import Eventfd, EFD_SEMAPHORE, EFD_NONBLOCK, KernelError
e = Eventfd()
e.write(3); e.write(4)
print("read:", e.read(), "then count", e.count)
s = Eventfd(2, EFD_SEMAPHORE | EFD_NONBLOCK)
print(s.read(), s.read())
try:
    s.read()
except KernelError as err:
    print(err)
print("poll bits of an empty eventfd:", hex(Eventfd().poll()))
"""),
    exercise("04-semaphore-reads", "How many reads succeed on Eventfd(3, EFD_SEMAPHORE | EFD_NONBLOCK)?", "answer = 3"),
    md(f"""
The kernel side is {L('eventfd_signal')}: +1 and a wake-up. Its waiters are wait-queue entries with a custom
function. KVM's irqfd registers as the *exclusive priority* waiter, consumes the count in
{L('eventfd_ctx_do_read')} and injects; it stops the wake-up, so nobody else is woken.
"""),
    code("""
host = scenarios.switchboard()
efd = host.scenario.eventfds[0]
print("waiters:", [w.name for w in efd.waiters])
j = host.raise_msi("0000:03:00.0", 0)
print("count after the interrupt:", efd.count, "| signals so far:", efd.signals)
"""),
    code("viz.journey_diagram(host, j)   # the eventfd is the hand-off: vfio writes, the irqfd reads"),
    exercise("04-count-after-irqfd", "What is the eventfd's count right after the GPU interrupt?", "answer = efd.count"),
    md(f"""
### The work path and its coalescing
An MSI route cached on the irqfd takes the fast path. Anything else (an IOAPIC pin, a broadcast, several
entries on a GSI) goes through the {L('irqfd_inject')} work item; while it is pending, {L('queue_work_on')}
returns false: later signals *coalesce*.
"""),
    code("""
vm = host.scenario.vm
vm.ioapic.write_redirtbl(10, vector=0x33, trigger_level=False)
e2 = Eventfd(name="legacy")
vm.kvm_irqfd(e2, 10)                    # GSI 10 routes to the PIC and the IOAPIC: the work path
for _ in range(5):
    e2.signal()
irqfd = vm.irqfds[-1]
print("queued:", irqfd.work_path, "coalesced:", irqfd.coalesced)
host.run()
print("delivered to vcpu0:", vm.vcpus[0].delivered[0x33])
"""),
    md("**Recap.** The eventfd decouples vfio from KVM; the irqfd is a subscriber that drains it; coalescing happens where work is already pending."),
])

NOTEBOOKS["05-injection"] = ("Injection", [
    md("""
# 5. Injection: routing, MSI bit by bit, the local APIC

**Objectives.** Decode an x86 MSI message field by field; follow a route to a vCPU; watch IRR, ISR, TPR and
PPR in the virtual local APIC; count kicks, VM exits and EOIs.
"""),
    SETUP,
    code("""
m = irqlab.msi.decode(0xFEE02000, 0x4061)
for name, bits, value, meaning in m.fields():
    print(f"{name:<18} {bits:>6}  {value:>6}  {meaning}")
"""),
    exercise("05-vector", "Which vector does data 0x4061 carry? (an int)", "answer = 0x61"),
    exercise("05-dest", "Which destination APIC ID does address 0xFEE02000 name?", "answer = 2"),
    md(f"""
The route for a GSI holds such a message; {L('kvm_irq_delivery_to_apic_fast')} finds the vCPU, and
{L('__apic_accept_irq')} sets the IRR bit. The vCPU takes it at its next entry: the highest IRR vector whose
class is above the PPR moves to the ISR.
"""),
    code("""
from irqlab.kvm.lapic import KvmLapic
apic = KvmLapic()
apic.set_tpr(0x30)
for v in (0x51, 0x45, 0x25):
    apic.apic_accept_irq(v)
print("IRR", [hex(v) for v in sorted(apic.irr)], "PPR", hex(apic.ppr))
print("acked", hex(apic.kvm_get_apic_interrupt()), "-> ISR", [hex(v) for v in sorted(apic.isr)], "PPR", hex(apic.ppr))
print("next deliverable:", apic.kvm_apic_has_interrupt())
print("EOI clears the highest ISR bit:", hex(apic.apic_set_eoi()), "PPR", hex(apic.ppr))
"""),
    exercise("05-ppr", "TPR 0x30, and 0x51 has just been acknowledged: what is the PPR? (an int)", "answer = 0x50"),
    md("Routes in a running machine: each irqfd's GSI, its MSI route, and the vCPU it names."),
    code("""
nic = scenarios.msix_nic(4)
j = nic.raise_msi("0000:01:00.0", 3)
nic.run()
viz.journey_diagram(nic, j)
"""),
    md("### Kicks, entries and exits: the same storm with and without APICv"),
    code("""
for apicv in (False, True):
    h = scenarios.msix_nic(2, apicv=apicv)
    for i in range(200):
        h.raise_msi("0000:01:00.0", i % 2, at=h.now + 3_000)
    h.run()
    v = h.scenario.vm.vcpus[0]
    print(f"APICv={apicv}: delivered {sum(v.delivered.values())}, entries {v.entries}, exits {dict(v.exits)}")
"""),
    md("**Recap.** Routing turns a GSI into an MSI; the APIC decides when the guest sees it; without APICv every interrupt costs a kick exit and an EOI exit."),
])

NOTEBOOKS["06-level-intx"] = ("Level-triggered INTx", [
    md(f"""
# 6. Level-triggered INTx: the round trip

**Objectives.** Follow a shared INTx line through vfio's automask ({L('pci_check_and_mask_intx')}), KVM's
resampling irqfd, the guest's EOI, {L('irqfd_resampler_ack')}, and vfio's unmask ({L('pci_check_and_unmask_intx')});
see what it costs and what happens to interrupts that arrive meanwhile.
"""),
    SETUP,
    code("""
host = scenarios.shared_intx()
j = host.raise_intx("0000:04:00.0")
host.run()
print(j.text())
"""),
    md("While the device is masked (INTx Disable set), a second assertion only sets the status bit again:"),
    code("""
host = scenarios.shared_intx()
first = host.raise_intx("0000:04:00.0")
second = host.raise_intx("0000:04:00.0", at=host.now + 500)
host.run()
print(first.outcome, "|", second.outcome)
vdev = host.scenario.vdev
print("masked now?", vdev.intx_masked, "| resamplefd count", host.scenario.resamplefd.count)
"""),
    exercise("06-masked-outcome", "What outcome does the second assertion get?", "answer = second.outcome"),
    md("The round trip, timed: from the assertion to the unmask."),
    code("""
t = host.timing
trip = t.irqfd_work_ns + t.kick_ns + t.guest_handler_ns + t.resample_ns
print(f"work {t.irqfd_work_ns} + kick {t.kick_ns} + guest handler {t.guest_handler_ns} + resample {t.resample_ns} = {trip} ns")
print(f"so at most ~{1e9 / trip:,.0f} INTx interrupts/s reach this guest")
viz.host_diagram(host)
"""),
    md("**Recap.** Level-triggered INTx needs the guest's EOI to travel back (resamplefd → virqfd → unmask) before the next interrupt: one in flight at a time."),
])

NOTEBOOKS["07-storms"] = ("Storms", [
    md(f"""
# 7. Storms: millions of interrupts, and "nobody cared"

**Objectives.** Push a million interrupts through the model with the vectorized storm engine; check it
against the one-by-one replay; read the ledger (every interrupt ends in exactly one outcome); reproduce the
kernel's {L('note_interrupt')} disabling a screaming line.
"""),
    SETUP,
    code("""
from irqlab import storm
host = scenarios.msix_nic(4, trace=False)
s = storm.poisson(host, rate_hz=250_000, duration_ns=1_000_000_000, seed=1)
r = storm.run(host, s, engine="vector")
print(r.summary())
"""),
    md("The same storm, one interrupt at a time through the object model (on a slice), must give the same numbers:"),
    code("""
part = storm.from_arrays(s.times[:5000], s.source_ids[:5000], s.sources)
a = storm.run(scenarios.msix_nic(4, trace=False), part, "vector")
b = storm.run(scenarios.msix_nic(4, trace=False), part, "reference")
print("identical:", a.equals(b), "| vector", f"{a.elapsed_s*1e3:.1f} ms", "| reference", f"{b.elapsed_s*1e3:.1f} ms")
"""),
    md(f"""
### A screaming line
A level line that fires with nobody claiming it: after the first unhandled interrupt, {L('note_interrupt')}
counts; at the 100,000th counted one, more than 99,900 unhandled means "nobody cared", and the line is
disabled. {L('poll_spurious_irqs')} then polls it every 100 ms, but never re-enables it.
"""),
    code("""
from irqlab.storm import Source
h = scenarios.shared_intx(trace=False)
glitches = storm.poisson(sources=[Source("spurious", irq=16)], rate_hz=1_000_000, duration_ns=300_000_000, seed=2)
r = storm.run(h, glitches)
print(r.ledger_table())
print(h.dmesg())
"""),
    code("viz.host_diagram(h)   # IRQ 16 now reads DISABLED (nobody cared); its actions' counts show the polls"),
    exercise("07-disable-index", "In a storm of back-to-back glitches (nothing handled), at which event index is the line disabled? (0-based)",
             "answer = 99_999"),
    md("Explore: rates, bursts, posting, vCPUs halted; the engine reruns when you press Run."),
    code("irqlab.widgets.storm_explorer()"),
    md("**Recap.** Coalescing happens at the irqfd, in the IRR and in the PIR; the ledger always adds up; a line nobody claims is shut down by the kernel itself."),
])

NOTEBOOKS["08-posted-interrupts"] = ("Posted interrupts", [
    md("""
# 8. Posted interrupts: the bypass

**Objectives.** With APICv and VT-d posting, a device's MSI is written by the IOMMU straight into the vCPU's
posted-interrupt descriptor: no host handler, no `/proc/interrupts` count, no eventfd, no VM exit. See what
disappears and compare exits and latency under the same storm.
"""),
    SETUP,
    code("""
host = scenarios.posted_nic(2)
j = host.raise_msi("0000:01:00.0", 0)
host.run()
print(j.text())
viz.journey_diagram(host, j)
"""),
    md(f"Only a route to a single vCPU with Fixed/Lowest delivery is postable ({L('kvm_pi_update_irte')}). Now the same storm through both machines:"),
    code("""
from irqlab import storm
rows = []
for name, make in [("vfio + irqfd, no APICv", lambda: scenarios.msix_nic(2, trace=False)),
                   ("APICv, not posted", lambda: scenarios.msix_nic(2, trace=False, apicv=True)),
                   ("APICv + VT-d posting", lambda: scenarios.posted_nic(2, trace=False))]:
    h = make()
    s = storm.poisson(h, rate_hz=200_000, duration_ns=200_000_000, seed=3)
    r = storm.run(h, s)
    p = r.latency_percentiles((50, 99))
    kstat = sum(sum(d.kstat) for d in h.genirq.descs.values())
    rows.append((name, r.vmexits(), kstat, p[50], p[99]))
print(f"{'':<26}{'VM exits':>10}{'host kstat':>12}{'p50 ns':>9}{'p99 ns':>9}")
for row in rows:
    print(f"{row[0]:<26}{row[1]:>10,}{row[2]:>12,}{row[3]:>9,}{row[4]:>9,}")
"""),
    exercise("08-posted-exits", "How many VM exits does a posted storm cause on running vCPUs?", "answer = 0"),
    md("""
With halted vCPUs the notification goes to the wakeup vector instead: the host counts it in the `PIW` row.
`PIN` counts notifications that land while the CPU is in host mode; the model's running vCPUs are always in
guest mode, so it stays 0 here.
"""),
    code("""
h = scenarios.posted_nic(2, vcpu_mode="halted", trace=False)
storm.run(h, storm.poisson(h, rate_hz=50_000, duration_ns=20_000_000, seed=4))
print("\\n".join(l for l in h.proc_interrupts().splitlines() if l.strip().startswith(("PIN", "NPI", "PIW"))))
"""),
    md("**Recap.** Posting removes the host handler, the eventfd hop and the exits — and with them the host's view: the vfio-msix row stops counting."),
])

NOTEBOOKS["09-your-machine"] = ("Your own machine", [
    md(f"""
# 9. Your own machine

**Objectives.** Read a real `/proc/interrupts` — this machine's, or one you paste — and find the vfio lines,
the posted-interrupt counters and the busiest CPU. The format is {L('show_interrupts')} and
{L('arch_show_interrupts')}.
"""),
    SETUP,
    code("""
from irqlab.procfs import parse_proc_interrupts, read_proc_interrupts
SAMPLE = irqlab.procfs.SAMPLE_6_18   # a 6.18 KVM host's file (print it to see it)
try:
    mine = read_proc_interrupts()
    print(f"this machine: {len(mine.cpus)} CPUs, {len(mine.device_rows())} device rows; busiest: {mine.busiest_cpu()[1]}")
except OSError:
    mine = None
    print("no /proc/interrupts here (not Linux): using the sample")
p = parse_proc_interrupts(SAMPLE)
p
"""),
    code("""
print("vfio rows:", [(r.irq, r.actions) for r in p.vfio_rows()])
print("posted-interrupt counters:", p.posted_interrupt_counters())
print("busiest CPU:", p.busiest_cpu())
"""),
    exercise("09-vfio-rows", "How many rows of the sample belong to vfio (a vfio-intx or vfio-msix action)?",
             "answer = len(p.vfio_rows())"),
    md("The sample's machine, rebuilt in the model: a shared INTx line with a vfio-intx action, and an MSI-X NIC passed through."),
    code("""
host = scenarios.shared_intx()
host.add_pci_device("0000:01:00.0", name="nic", msix=2)
scenarios.passthrough_msix(host, host.scenario.vm, "0000:01:00.0", 2, first_gsi=30)
print(host.proc_interrupts())
viz.host_diagram(host)
"""),
    md("Paste your own (a host running VMs is the interesting case) and run the same three lines."),
    code("""
pasted = SAMPLE      # replace with the text of your /proc/interrupts
q = parse_proc_interrupts(pasted)
print(len(q.vfio_rows()), "vfio rows;", "busiest", q.busiest_cpu()[1])
"""),
    md("**Recap.** Every vfio row is a host action that hands interrupts to a VMM; PIN/PIW show posting at work."),
])


EXTRA = {  # names the notebooks use that no journey hop shows
    "request_irq": "kernel/irq/manage.c", "request_threaded_irq": "kernel/irq/manage.c",
    "__setup_irq": "kernel/irq/manage.c", "free_irq": "kernel/irq/manage.c", "disable_irq": "kernel/irq/manage.c",
    "enable_irq": "kernel/irq/manage.c", "kstat_incr_irqs_this_cpu": "kernel/irq/internals.h",
    "note_interrupt": "kernel/irq/spurious.c", "poll_spurious_irqs": "kernel/irq/spurious.c",
    "show_interrupts": "kernel/irq/proc.c", "arch_show_interrupts": "arch/x86/kernel/irq.c",
    "queue_work_on": "kernel/workqueue.c", "kvm_irqfd": "virt/kvm/eventfd.c",
    "irqfd_resampler_ack": "virt/kvm/eventfd.c", "kvm_pi_update_irte": "arch/x86/kvm/irq.c",
    "pci_check_and_mask_intx": "drivers/pci/pci.c", "pci_check_and_unmask_intx": "drivers/pci/pci.c",
    "vfio_intx_handler": "drivers/vfio/pci/vfio_pci_intrs.c", "kvm_ioapic_update_eoi": "arch/x86/kvm/ioapic.c",
    "kvm_get_apic_interrupt": "arch/x86/kvm/lapic.c", "apic_set_eoi": "arch/x86/kvm/lapic.c",
}


def glossary() -> str:
    """Every kernel function the scenarios' journeys show, plus the names the notebooks use, with files."""
    import sys

    sys.path.insert(0, str(HERE.parent))
    from irqlab import scenarios

    names: dict[str, str] = dict(EXTRA)
    sources = [(scenarios.switchboard, "msi", "0000:03:00.0"), (scenarios.switchboard, "msi", "0000:00:17.0"),
               (scenarios.shared_intx, "intx", "0000:04:00.0"), (scenarios.shared_intx, "intx", "0000:00:19.0"),
               (scenarios.posted_nic, "msi", "0000:01:00.0"), (lambda: scenarios.posted_nic(vcpu_mode="halted"), "msi",
                                                              "0000:01:00.0"),
               (lambda: scenarios.msix_nic(apicv=True), "msi", "0000:01:00.0")]
    for make, kind, bdf in sources:
        h = make()
        j = h.raise_msi(bdf, 0) if kind == "msi" else h.raise_intx(bdf)
        h.run(until=h.now + 10_000_000)
        for hop in j.hops:
            if not hop.hardware:
                names.setdefault(hop.function, hop.file)
    rows = "\n".join(f"| [`{fn}`]({E}{fn}) | `{f}` |" for fn, f in sorted(names.items(), key=lambda x: x[0].lstrip("_")))
    return ("# Glossary\n\nEvery kernel function the course names, with the Linux 6.18 file it lives in (the links "
            "search elixir for the identifier). Generated by `course/_build.py` from the journeys of the "
            "scenarios, so it follows the model.\n\n| function | file |\n|---|---|\n" + rows + "\n")


def build() -> None:
    (HERE / "glossary.md").write_text(glossary())
    (HERE / "solutions").mkdir(exist_ok=True)
    for stem, (title, cells) in NOTEBOOKS.items():
        for variant in ("course", "solution"):
            nb = new_notebook(metadata=dict(KS))
            for c in cells:
                if c[0] == "md":
                    nb.cells.append(new_markdown_cell(c[1]))
                elif c[0] == "code":
                    nb.cells.append(new_code_cell(c[1]))
                else:
                    _, key, q, sol = c
                    nb.cells.append(new_markdown_cell(f"**Exercise `{key}`.** {q}"))
                    line = sol if variant == "solution" else "answer = ...  # your answer"
                    nb.cells.append(new_code_cell(f"{line}\ncheck.ex({key!r}, answer);"))
            out = HERE / (f"{stem}.ipynb" if variant == "course" else f"solutions/{stem}.ipynb")
            for i, cell in enumerate(nb.cells):
                cell["id"] = str(i)  # what nbstripout writes, so --verify agrees
            nbformat.write(nb, out)


if __name__ == "__main__":
    build()
