"""Diagrams from the state: clusters, counts, the lit journey drawn as it was at each hop, legible sizes, every
node inside its cluster, determinism, and the no-dot fallback."""
import re

import pytest

from irqlab import IRQF_SHARED, scenarios, viz
from irqlab.trace import Target

DISK, NIC, GPU = "0000:00:17.0", "0000:02:00.0", "0000:03:00.0"
needs_dot = pytest.mark.skipif(not viz.has_dot(), reason="dot not installed")


@pytest.fixture
def sb():
    h = scenarios.switchboard()
    j = h.raise_msi(GPU, 0)
    h.run()
    return h, j


def test_clusters_show_the_subscriber_shape(sb):
    h, _ = sb
    d = viz.host_diagram(h)
    for c in ("cluster_hw", "cluster_genirq", "cluster_vfio", "cluster_kvm", "cluster_guest"):
        assert c in d.dot
    t = d.text()
    assert "action vfio-msi[0](0000:03:00.0)" in t and "vm1 irqfd gsi 24" in t
    # KVM hangs off the eventfd, never off the interrupt: the only edge into the irqfd comes from the eventfd
    assert "eventfd 0000:03:00.0-msi0 -> vm1 irqfd gsi 24" in t
    assert not re.search(r"irq \d+.* -> vm1 irqfd", t)
    assert "irq 29 action vfio-msi[0](0000:03:00.0) -> vfio-pci 0000:03:00.0" in t


def test_the_descriptor_table_reads_like_proc_interrupts(sb):
    h, _ = sb
    t = viz.host_diagram(h).text()
    assert "IR-PCI-MSI-0000:03:00.0" in t and "IR-PCI-MSIX-0000:02:00.0" in t
    assert "irq 29: 0-edge, CPU3 0x22, kstat 1, action vfio-msi[0](0000:03:00.0) (1 / 0 handled/none)" in t
    assert "irq 25: 0-edge" in t and "delivered 1" in t and "signal ×1" in t


def test_registration_changes_the_picture():
    h = scenarios.switchboard()
    before = viz.host_diagram(h).dot
    h.alloc_irq(20, level=True)
    h.request_irq(20, lambda i, d: 1, IRQF_SHARED, "newcomer", 1)
    after = viz.host_diagram(h).dot
    assert "newcomer" not in before and "newcomer" in after


def test_journey_lights_its_hops_in_order(sb):
    h, j = sb
    d = viz.journey_diagram(h, j)
    where = viz.hop_nodes(h, viz._build(h, j.hops[-1].state, True), j)
    assert where[0] == f"dev:{GPU}" and where[2] == "genirq:i29" and where[4] == "genirq:a29_0"
    assert where[j.functions().index("vfio_msihandler") + 1] == f"vfio:{GPU}"
    assert where[-1] == "vcpu:1:0" and None not in where
    assert d.dot.count("penwidth=2.5") >= 6 and viz.DIM in d.dot
    first = where.index("vcpu:1:0") + 1  # hop numbers from 1: the vCPU's run, shortened "13–20"
    run = f"{first}–{len(where)}"
    early = viz.journey_diagram(h, j, upto=4)
    assert run in d.dot and run not in early.dot and all(w == "vcpu:1:0" for w in where[first - 1:])


def test_each_hop_is_drawn_from_the_state_then(sb):
    """At hop 1 the irq's kstat, the eventfd's signals and the vCPU's deliveries are what they were then."""
    h, j = sb
    first, last = viz.journey_diagram(h, j, upto=0).text(), viz.journey_diagram(h, j).text()
    assert "kstat 0" in first and "signal ×0" in first and "delivered 0 · exits 0" in first
    assert "kstat 1" in last and "signal ×1" in last and "delivered 1 · exits 2" in last
    k = j.functions().index("eventfd_signal_mask") + 1  # hop index (the first hop is the device's)
    assert "count 1" in viz.journey_diagram(h, j, upto=k).text()
    assert j.hops[k].state[Target("eventfd", f"{GPU}-msi0", "count")] == 1


def test_focus_keeps_the_path_and_its_line(sb):
    h, j = sb
    t = viz.journey_diagram(h, j, focus=True).text()
    assert "irq 29" in t and "enp2s0" not in t and "ahci" not in t and "vm1 vcpu1" in t
    hi = scenarios.shared_intx()
    ji = hi.raise_intx("0000:04:00.0")
    hi.run()
    ti = viz.journey_diagram(hi, ji, focus=True).text()
    assert "eth0" in ti and "0000:00:19.0" in ti  # the other device on the shared line, and its action


def test_deterministic(sb):
    h, j = sb
    assert viz.journey_diagram(h, j).dot == viz.journey_diagram(h, j).dot


def test_svg_renders_with_labels(sb):
    if not viz.has_dot():
        pytest.skip("dot not installed")
    h, j = sb
    svg = viz.journey_diagram(h, j).svg()
    assert svg.lstrip().startswith("<?xml") or "<svg" in svg
    assert "irqfd gsi 24" in svg and "genirq" in svg
    assert "image/svg+xml" in viz.journey_diagram(h, j)._repr_mimebundle_()


def _machines():
    sb = scenarios.switchboard()
    j = sb.raise_msi(GPU, 0)
    sb.run()
    si = scenarios.shared_intx()
    ji = si.raise_intx("0000:04:00.0")
    si.run()
    pn = scenarios.posted_nic()
    jp = pn.raise_msi("0000:01:00.0", 1)
    pn.run()
    p2 = scenarios.posted_nic(2)  # notebook 08's
    j2 = p2.raise_msi("0000:01:00.0", 0)
    p2.run()
    nine = scenarios.shared_intx()
    nine.add_pci_device("0000:01:00.0", name="nic", msix=2)
    scenarios.passthrough_msix(nine, nine.scenario.vm, "0000:01:00.0", 2, first_gsi=30)
    return {"switchboard": viz.host_diagram(sb), "switchboard journey": viz.journey_diagram(sb, j),
            "shared_intx journey": viz.journey_diagram(si, ji), "msix_nic": viz.host_diagram(scenarios.msix_nic()),
            "posted_nic journey": viz.journey_diagram(pn, jp), "notebook 09 machine": viz.host_diagram(nine),
            "notebook 08 journey": viz.journey_diagram(p2, j2),
            "stepper switchboard": viz.journey_diagram(sb, j, upto=3, focus=True),
            "stepper shared_intx": viz.journey_diagram(si, ji, upto=5, focus=True),
            "stepper posted_nic": viz.journey_diagram(pn, jp, upto=2, focus=True),
            **_cpu_machines()}


def _cpu_machines():
    """Notebook 6's CPU diagrams: the tuned switchboard, the disk's journey under vcpu0, the GPU's kick, the GPU
    on vcpu0's own CPU, the untuned host, and the untuned posted host after a few interrupts."""
    sb = scenarios.switchboard()
    out = {"cpus switchboard": viz.cpu_diagram(sb)}
    sb.write_proc_irq(24, "smp_affinity_list", "1")
    d = sb.raise_msi(DISK, 0)
    sb.run()
    out["cpus disk under vcpu0"] = viz.cpu_diagram(sb, d)
    g = sb.raise_msi(GPU, 0, at=sb.now + 10_000)
    sb.run()
    out["cpus gpu kick"] = viz.cpu_diagram(sb, g)
    sb.write_proc_irq(29, "smp_affinity_list", "1")
    g1 = sb.raise_msi(GPU, 0, at=sb.now + 10_000)
    sb.run()
    out["cpus gpu same cpu"] = viz.cpu_diagram(sb, g1)
    out["cpus untuned"] = viz.cpu_diagram(scenarios.switchboard(tuned=False))
    po = scenarios.switchboard(tuned=False, posted=True)
    for k, bdf in enumerate((DISK, GPU, NIC)):
        po.raise_msi(bdf, 0, at=(k + 1) * 10_000)
    po.run()
    out["cpus untuned posted"] = viz.cpu_diagram(po)
    return out


@needs_dot
def test_legible_at_100_percent():
    """Every text is 11 pt; a static diagram is at most 720 pt wide (JupyterLab shows an SVG image at its
    natural width in a 964 px output at 1400x1000) and dot never had to shrink it below 75% to get there, so
    its text is >= 11 px; a stepper's diagram, shown at most 640 px wide beside its text, keeps >= 11 px too
    and is short enough for the controls above it (the browser test measures the rendered pixels)."""
    for name, d in _machines().items():
        sizes = {float(x) for x in re.findall(r"(?:fontsize|POINT-SIZE)=\"?([\d.]+)", d.dot)}
        assert sizes and min(sizes) >= 11, (name, sizes)
        svg = d.svg()
        w, h = (float(x) for x in re.search(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"', svg).groups())
        m = re.search(r'class="graph" transform="scale\(([\d.]+)', svg)
        scale = float(m.group(1)) if m else 1.0
        shown = min(1.0, 640 / (w * 4 / 3)) if name.startswith("stepper") else 1.0
        assert w <= 720 and 11 * 4 / 3 * scale * shown >= 11, (name, w, scale)
        if name.startswith("stepper"):
            assert h * 4 / 3 * shown <= 820, (name, w, h)


def _boxes(svg: str, dot: str):
    """Each node's bounding box (from its text and outline) and the cluster each node is declared in."""
    cluster_of, cur = {}, None
    for line in dot.splitlines():
        m = re.match(r"\s*subgraph cluster_(\w+)", line)
        if m:
            cur = m.group(1)
        elif line.strip() == "}":
            cur = None
        else:
            m = re.match(r"\s*(n\d+) \[", line)
            if m and cur:
                cluster_of[m.group(1)] = cur
    def bbox(chunk):  # the outline: polygons, paths, ellipses (an xlabel's hop numbers may sit outside)
        pts = [(float(x), float(y)) for x, y in re.findall(r"(-?[\d.]+),(-?[\d.]+)", " ".join(
            re.findall(r'(?:points|d)="([^"]+)"', chunk)))]
        for cx, cy, rx, ry in re.findall(r'<ellipse[^>]* cx="(-?[\d.]+)" cy="(-?[\d.]+)" rx="([\d.]+)" ry="([\d.]+)"',
                                         chunk):
            pts += [(float(cx) - float(rx), float(cy) - float(ry)), (float(cx) + float(rx), float(cy) + float(ry))]
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        return min(xs), min(ys), max(xs), max(ys)
    clusters = {m.group(1): bbox(m.group(2)) for m in re.finditer(
        r'class="cluster">\s*<title>cluster_(\w+)</title>(.*?)</g>', svg, re.S)}
    nodes = {m.group(1): bbox(m.group(2)) for m in re.finditer(
        r'class="node">\s*<title>(n\d+)</title>(.*?)</g>', svg, re.S)}
    return cluster_of, clusters, nodes


@needs_dot
def test_every_node_inside_its_cluster():
    """The defect: vcpu0 drawn below the guest box (newrank let nodes leave their clusters)."""
    for name, d in _machines().items():
        cluster_of, clusters, nodes = _boxes(d.svg(), d.dot)
        assert nodes and clusters
        for n, (x0, y0, x1, y1) in nodes.items():
            c = clusters[cluster_of[n]]
            assert c[0] - 1 <= x0 and x1 <= c[2] + 1 and c[1] - 1 <= y0 and y1 <= c[3] + 1, (name, n, cluster_of[n])


def test_without_dot_it_still_displays(sb, monkeypatch):
    h, j = sb
    monkeypatch.setattr(viz.shutil, "which", lambda name: None)
    bundle = viz.host_diagram(h, journey=j)._repr_mimebundle_()
    assert "image/svg+xml" not in bundle
    assert "sudo apt-get install graphviz" in bundle["text/plain"] and "python -m irqlab doctor" in bundle["text/plain"]
    assert "vm1 irqfd gsi 24" in bundle["text/html"]


def test_broken_dot_falls_back_too(sb, monkeypatch):
    h, j = sb

    def boom(self):
        raise RuntimeError("ExecutableNotFound")

    monkeypatch.setattr(viz.Diagram, "svg", boom)
    monkeypatch.setattr(viz.shutil, "which", lambda name: "/usr/bin/dot")
    assert "text/html" in viz.host_diagram(h)._repr_mimebundle_()


@pytest.mark.parametrize("make", [scenarios.shared_intx, scenarios.msix_nic, scenarios.posted_nic])
def test_every_scenario_draws(make):
    h = make()
    d = viz.host_diagram(h)
    assert d.dot.startswith("digraph") and d.text()
    if make is scenarios.posted_nic:
        assert "VT-d posted" in d.dot
    if make is scenarios.shared_intx:
        j = h.raise_intx("0000:04:00.0")
        h.run()
        t = viz.journey_diagram(h, j).text()
        assert "vfio-pci 0000:04:00.0" in t and "Status.Interrupt" in t and "remote IRR" in t


def test_shared_intx_edges_count_each_device_not_the_line():
    """Two devices on one INTx line: kstat counts the line, each device edge only what that device asserted."""
    h = scenarios.shared_intx(trace=False)
    first, second = sorted(h.devices)
    for bdf in (first, second, first):
        h.raise_intx(bdf)
        h.run()
    t = viz.host_diagram(h).text()
    assert "irq 16: 16-fasteoi, CPU0 0x21, kstat 3" in t
    assert f"{first} eth0 -> irq descriptors (/proc/interrupts)  (INTx 2 → irq 16)" in t
    assert f"{second} legacy-card -> irq descriptors (/proc/interrupts)  (INTx 1 → irq 16)" in t


def test_cpu_diagram_shows_which_cpu_is_which():
    """Each CPU: its state, the vCPU it runs (or none), the vectors that land on it with this CPU's count, its
    RES/PIN/PIW; a passed-through vector's way to its vCPU says which IPI it needs."""
    h = scenarios.switchboard()
    t = viz.cpu_diagram(h).text()
    assert "[CPU0 · idle]" in t and "[CPU1 · guest]" in t and "vm1/vcpu0 | in guest mode | irq_exits 0" in t
    assert "no vCPU | host work only" in t and "0x22 29 vfio-msi[0] 0" in t and "RES 0 · PIN 0 · PIW 0" in t
    assert "CPU3 irq 29 -> vm1/vcpu0  (irqfd → vcpu0 (kick: RES IPI))" in t
    assert "0000:00:17.0 ahci -> CPU3 irq 24" in t and "vm1/vcpu1 -> CPU2  (VM exit → host IDT)" in t
    h.write_proc_irq(29, "smp_affinity_list", "1")
    assert "CPU1 irq 29 -> vm1/vcpu0  (irqfd → vcpu0 (same CPU: no IPI))" in viz.cpu_diagram(h).text()
    a = scenarios.switchboard(apicv=True)
    assert "(irqfd → vcpu0 (notification IPI))" in viz.cpu_diagram(a).text()
    p = scenarios.switchboard(posted=True)
    assert "0000:03:00.0 gpu -> vm1/vcpu0  (MSI 0: VT-d posted)" in viz.cpu_diagram(p).text()


def test_cpu_diagram_lights_an_exit_on_the_vcpu_and_the_handler_on_the_cpu():
    """The disk under vcpu0: the MSI write at the disk, the exit's hops (and what the host's IDT runs inside it
    before and after the handler) on vcpu0, common_interrupt to the driver on CPU1's row of irq 24; the GPU's kick:
    the handler chain on CPU3's row, the LAPIC, the kick and the RES exit on vcpu0."""
    h = scenarios.switchboard()
    h.write_proc_irq(24, "smp_affinity_list", "1")
    d = h.raise_msi(DISK, 0)
    h.run()
    where = dict(zip(d.functions() and [x.function for x in d.hops], viz.cpu_hop_nodes(h, d)))
    assert where["MSI write"] == f"dev:{DISK}" and where["common_interrupt"] == "cpu1:r24"
    assert all(where[f] == "vcpu:1:0" for f in ("VM exit", "vmx_handle_exit_irqoff", "kvm_before_interrupt",
                                                 "handle_external_interrupt"))
    assert where["__handle_irq_event_percpu"] == "cpu1:r24"
    assert "<2,3,4,5,10,11>" in viz.cpu_diagram(h, d).text()
    g = h.raise_msi(GPU, 0, at=h.now + 10_000)
    h.run()
    nodes = viz.cpu_hop_nodes(h, g)
    fn = [x.function for x in g.hops]
    assert nodes[fn.index("irqfd_wakeup")] == "cpu3:r29" and nodes[fn.index("sysvec_reschedule_ipi")] == "vcpu:1:0"
    assert nodes[fn.index("native_smp_send_reschedule")] == "vcpu:1:0" and nodes[-1] == "vcpu:1:0"
    assert None not in nodes


def test_host_diagram_puts_an_exit_on_the_vcpu_not_on_the_line():
    """The defect: an exit's hops were drawn at the interrupt's irq row (VM exit) or nowhere (KVM's exit functions
    of a host device's interrupt, which has no irqfd): for the disk under vcpu0 and for the GPU's RES kick, every
    hop of the exit is on the vCPU that exited, and the host's handler between them on the irq's row."""
    h = scenarios.switchboard()
    h.write_proc_irq(24, "smp_affinity_list", "1")
    d = h.raise_msi(DISK, 0)
    h.run()
    where = dict(zip([x.function for x in d.hops], viz.hop_nodes(h, viz._build(h, d.hops[-1].state, True), d)))
    for f in ("VM exit", "vmx_handle_exit_irqoff", "handle_external_interrupt_irqoff", "kvm_before_interrupt",
              "kvm_after_interrupt", "handle_external_interrupt"):
        assert where[f] == "vcpu:1:0", f
    assert where["common_interrupt"] == "genirq:i24" and where["__handle_irq_event_percpu"] == "genirq:a24_0"
    h = scenarios.switchboard()
    j = h.raise_msi(GPU, 0)
    h.run()
    where = viz.hop_nodes(h, viz._build(h, j.hops[-1].state, True), j)
    fn = [x.function for x in j.hops]
    for f in ("native_smp_send_reschedule", "VM exit", "vmx_handle_exit_irqoff", "handle_external_interrupt_irqoff",
              "kvm_before_interrupt", "sysvec_reschedule_ipi", "kvm_after_interrupt", "handle_external_interrupt"):
        assert where[fn.index(f)] == "vcpu:1:0", f
    assert viz.exit_cpus(j) == {i: 1 for i in range(fn.index("VM exit"), fn.index("handle_external_interrupt") + 1)}
