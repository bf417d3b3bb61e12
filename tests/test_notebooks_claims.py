"""What the notebooks' prose says about CPUs, checked against the model, so that a change of the model that makes
the prose false fails here (the numbers themselves are printed by the notebooks' cells, never typed in prose)."""
import pytest

from irqlab import check, scenarios, storm
from irqlab.storm import Source

DISK, NIC, GPU = check.DISK, check.NIC, check.GPU
KVM = check.KVM_FILES


def _device_cpus(h):
    """CPU -> the irqs whose vector is on it (device irqs with actions)."""
    out = {}
    for irq, d in h.genirq.descs.items():
        if d.actions:
            out.setdefault(d.cpu, []).append(irq)
    return out


@pytest.mark.parametrize("make", [scenarios.switchboard, scenarios.msix_nic, scenarios.posted_nic,
                                  lambda: scenarios.msix_nic(2, nvcpus=1), scenarios.shared_intx])
def test_tuned_scenarios_keep_device_vectors_off_the_vcpus_cpus(make):
    """Notebooks 1-5, 7, 9: no device vector lands on a CPU that runs a vCPU (the switchboard's vCPUs on CPUs 1
    and 2, its device vectors on CPUs 0 and 3)."""
    h = make()
    vcpu_cpus = {v.pcpu for vm in h.vms for v in vm.vcpus}
    assert vcpu_cpus and not vcpu_cpus & set(_device_cpus(h))
    if make is scenarios.switchboard:
        assert vcpu_cpus == {1, 2} and set(_device_cpus(h)) == {0, 3}


def test_untuned_switchboard_puts_host_vectors_under_vcpus():
    """Notebook 6's premise: as the vector allocator leaves it, some host drivers' vectors land on the vCPUs' CPUs
    (the GPU's does not: its cost to the guest is its kicks)."""
    h = scenarios.switchboard(tuned=False)
    vcpu_cpus = {v.pcpu for v in h.scenario.vm.vcpus}
    host_irqs = {v.irq for bdf in h.scenario.host_bdfs for v in h.pci_dev(bdf).vectors}
    under = {irq for irq in host_irqs if h.genirq.descs[irq].cpu in vcpu_cpus}
    assert under and {h.genirq.descs[i].cpu for i in under} == vcpu_cpus
    assert h.genirq.descs[h.pci_dev(GPU).vectors[0].irq].cpu not in vcpu_cpus


def test_notebook1_the_kick_is_a_reschedule_ipi_that_exits():
    h = scenarios.switchboard()
    j = h.raise_msi(GPU, 0)
    h.run()
    fns = j.functions()
    order = ["kvm_vcpu_kick", "native_smp_send_reschedule", "vmx_handle_exit_irqoff",
             "handle_external_interrupt_irqoff", "sysvec_reschedule_ipi", "handle_external_interrupt",
             "kvm_check_and_inject_events", "kvm_apic_ack_interrupt"]
    assert [fns.index(f) for f in order] == sorted(fns.index(f) for f in order)
    assert h.arch_counts["RES"] == [0, 1, 0, 0] and j.latency_ns == h.timing.host_irq_ns + h.timing.kick_ns
    disk = h.raise_msi(DISK, 0, at=h.now + 10_000)
    h.run()
    assert not [x for x in disk.hops if x.file.startswith(KVM)]


def test_notebook3_the_glitch_and_eths_interrupt_both_count_on_cpu0():
    h = scenarios.shared_intx()
    h.raise_intx("0000:00:19.0")
    g = h.raise_spurious(16, at=h.now + 10_000)
    h.run()
    assert g.outcome == "unhandled" and h.irq_to_desc(16).kstat == [2, 0]


def test_notebook5_apicv_takes_no_exit_and_without_it_two_per_interrupt():
    for apicv in (False, True):
        h = scenarios.msix_nic(2, apicv=apicv)
        for i in range(20):
            h.raise_msi("0000:01:00.0", i % 2, at=h.now + 3_000)
        h.run()
        v = h.scenario.vm.vcpus[0]
        if apicv:
            assert not sum(v.exits.values())
        else:
            assert v.exits["EXTERNAL_INTERRUPT"] == v.exits["EOI"] == sum(v.delivered.values())


def test_notebook7_the_kick_exits_an_ipi_after_the_inject_work():
    """07's row-by-row reading: CPU0 leaves hard IRQ at host_irq_ns; the IRR is set after irqfd_work_ns, the exit
    comes ipi_ns later."""
    h = scenarios.shared_intx()
    v0 = h.scenario.vm.vcpus[0]
    h.raise_intx("0000:04:00.0")
    seen = []
    while (t := h.sched.next_due()) is not None:
        h.run(until=t)
        seen.append((h.now, bool(v0.lapic.irr), sum(v0.exits.values())))
    tm = h.timing
    assert (tm.host_irq_ns, False, 0) in seen
    assert (tm.irqfd_work_ns, True, 0) in seen and (tm.irqfd_work_ns + tm.ipi_ns, True, 1) in seen


def test_notebook9_pin_stays_zero_when_no_host_interrupt_lands_under_a_vcpu():
    h = scenarios.posted_nic(2, trace=False)
    storm.run(h, storm.poisson(h, rate_hz=200_000, duration_ns=20_000_000, seed=3), progress=False)
    assert sum(h.arch_counts["PIN"]) == 0


# ------------------------------------------------------------------------------------ notebook 6's storm

def _move_host_irqs(h):
    housekeeping = ",".join(str(c.id) for c in h.cpus if not c.vcpus)
    for bdf in h.scenario.host_bdfs:
        for v in h.pci_dev(bdf).vectors:
            h.write_proc_irq(v.irq, "smp_affinity_list", housekeeping)
    return h


@pytest.fixture(scope="module")
def machines():
    s = check._cpus_storm()
    makes = {
        "untuned": lambda: scenarios.switchboard(trace=False, tuned=False),
        "moved": lambda: _move_host_irqs(scenarios.switchboard(trace=False, tuned=False)),
        "moved+apicv": lambda: _move_host_irqs(scenarios.switchboard(trace=False, tuned=False, apicv=True)),
        "moved+posted": lambda: _move_host_irqs(scenarios.switchboard(trace=False, tuned=False, posted=True)),
        "untuned+posted": lambda: scenarios.switchboard(trace=False, tuned=False, posted=True),
    }
    out = {}
    for name, make in makes.items():
        h = make()
        out[name] = (h, storm.run(h, s, progress=False))
    return s, out


def test_notebook6_storm_rows(machines):
    s, m = machines
    c = {n: r.cpus() for n, (_, r) in m.items()}
    v = {n: r.vcpus() for n, (_, r) in m.items()}
    ext = lambda n, i: v[n][(1, i)]["exits"].get("EXTERNAL_INTERRUPT", 0)  # noqa: E731
    # untuned: host interrupts cost both guests hard IRQ and exits
    assert all(c["untuned"][cpu]["hardirq_ns"] > 0 and c["untuned"][cpu]["exit_ns"] > 0 for cpu in (1, 2))
    # moved: only the GPU's kicks remain, on CPU1: one RES and one exit each; vcpu1 takes no exit
    assert c["moved"][1]["hardirq_ns"] == c["moved"][2]["hardirq_ns"] == 0 and ext("moved", 1) == 0
    assert ext("moved", 0) == c["moved"][1]["RES"] > 0 and c["moved"][2]["exit_ns"] == 0
    # APICv: the notification is handled in guest mode: no exit, no count
    assert ext("moved+apicv", 0) == 0 and c["moved+apicv"][1]["RES"] == c["moved+apicv"][1]["PIN"] == 0
    assert c["moved+apicv"][1]["exit_ns"] == 0
    # posted: the host no longer takes the GPU's interrupts
    h, _ = m["moved+posted"]
    assert sum(h.irq_to_desc(h.pci_dev(GPU).vectors[0].irq).kstat) == 0 and ext("moved+posted", 0) == 0
    # posting does not save a guest from the host's own interrupts; PIN counts notifications that find CPU1 in
    # hard IRQ, and no kick is a RES IPI any more
    assert c["untuned+posted"][1]["hardirq_ns"] == c["untuned"][1]["hardirq_ns"]
    assert c["untuned+posted"][1]["PIN"] > 0 and c["untuned+posted"][1]["RES"] == 0


def test_notebook6_per_source_costs():
    """A host device under a vCPU: at most host_irq_ns + vmexit_ns of guest time per interrupt (less when an
    interrupt shares an exit: fewer exits than interrupts); elsewhere: nothing; the GPU: one kick exit each."""
    s = check._cpus_storm()
    for k, src in enumerate(s.sources):
        h = scenarios.switchboard(trace=False, tuned=False)
        t = h.timing
        sel = s.source_ids == k
        alone = storm.from_arrays(s.times[sel], s.source_ids[sel] * 0, [src])
        r = storm.run(h, alone, progress=False)
        lost = sum(x["hardirq_ns"] + x["exit_ns"] for cpu, x in r.cpus().items() if h.cpus[cpu].vcpus)
        exits = sum(v["exits"].get("EXTERNAL_INTERRUPT", 0) for v in r.vcpus().values())
        cpu = h.genirq.descs[h.pci_dev(src.bdf).vectors[src.index].irq].cpu
        if src.bdf == GPU:
            assert not h.cpus[cpu].vcpus and exits == sum(r.vcpus()[(1, 0)]["delivered"].values())
            assert lost == exits * t.vmexit_ns
        elif h.cpus[cpu].vcpus:
            assert t.vmexit_ns * len(r) < lost <= (t.host_irq_ns + t.vmexit_ns) * len(r) and 0 < exits <= len(r)
        else:
            assert lost == 0 and exits == 0


def test_notebook6_kvm_work_per_interrupt():
    """The thesis table: a host device's interrupt runs at most the exit's five KVM functions (none of them a
    lookup), none on a CPU without a vCPU; a passed-through one runs the irqfd, the route, the LAPIC and the kick;
    posted, none."""
    exit_fns = {"vmx_handle_exit_irqoff", "handle_external_interrupt_irqoff", "kvm_before_interrupt",
                "kvm_after_interrupt", "handle_external_interrupt"}

    def kvm(make, bdf, cpu=None):
        h = make()
        if cpu is not None:
            h.write_proc_irq(h.pci_dev(bdf).vectors[0].irq, "smp_affinity_list", str(cpu))
        j = h.raise_msi(bdf, 0)
        h.run()
        return [x.function for x in j.hops if x.file.startswith(KVM)]

    assert kvm(scenarios.switchboard, DISK) == []
    assert set(kvm(scenarios.switchboard, DISK, 1)) == exit_fns
    for fns in (kvm(scenarios.switchboard, GPU), kvm(scenarios.switchboard, GPU, 1),
                kvm(lambda: scenarios.switchboard(apicv=True), GPU)):
        assert {"irqfd_wakeup", "kvm_irq_delivery_to_apic_fast", "__apic_accept_irq"} <= set(fns)
        assert {"kvm_vcpu_kick", "kvm_vcpu_trigger_posted_interrupt"} & set(fns)
    assert kvm(lambda: scenarios.switchboard(posted=True), GPU) == []


def test_notebook3_a_level_line_enabled_during_its_refused_interrupt_fires_at_the_eoi():
    """03's disabled level line: the flow handler refuses eth0's interrupt (mask_irq, then cond_eoi_irq); enable_irq
    unmasks the pin at once, the pin's remote IRR holds the re-send until that EOI — host_irq_ns later — and the
    still-asserted line fires then. The defect: the refused path gave no EOI, so the interrupt stayed pending."""
    h = scenarios.shared_intx()
    h.disable_irq(16)
    lvl = h.raise_intx("0000:00:19.0")
    h.enable_irq(16)
    h.run()
    fns = lvl.functions()
    assert lvl.outcome == "handled_host" and h.irq_to_desc(16).kstat == [1, 0]
    assert fns[fns.index("irq_can_handle_actions") + 1] == "unmask_irq"
    assert lvl.hops[-1].t_ns == h.timing.host_irq_ns
