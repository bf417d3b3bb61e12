"""Diagrams from live state: clusters, counts, the lit journey, determinism, and the no-dot fallback."""
import re

import pytest

from irqlab import IRQF_SHARED, scenarios, viz


@pytest.fixture
def sb():
    h = scenarios.switchboard()
    j = h.raise_msi("0000:03:00.0", 0)
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


def test_counts_after_a_run(sb):
    h, _ = sb
    t = viz.host_diagram(h).text()
    assert "kstat 1" in t and "(1 handled / 0 none)" in t and "delivered 1" in t


def test_registration_changes_the_picture():
    h = scenarios.switchboard()
    before = viz.host_diagram(h).dot
    h.alloc_irq(20, level=True)
    h.request_irq(20, lambda i, d: 1, IRQF_SHARED, "newcomer", 1)
    after = viz.host_diagram(h).dot
    assert "newcomer" not in before and "action newcomer" in after


def test_journey_lights_its_hops_in_order(sb):
    h, j = sb
    d = viz.journey_diagram(h, j)
    lit = re.findall(r'xlabel="([\d,]+)"', d.dot)
    steps = sorted(int(x) for s in lit for x in s.split(","))
    assert steps[0] == 1 and steps == sorted(set(steps))
    assert d.dot.count('penwidth=2.5') >= 8  # nodes and edges of the path
    assert "#b0b0b0" in d.dot  # the rest is dimmed
    early = viz.journey_diagram(h, j, upto=4)
    assert 'xlabel="1"' in early.dot and "vm1 irqfd" in early.text() and "irqfd gsi 24  <" not in early.text()


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
    bundle = viz.journey_diagram(h, j)._repr_mimebundle_()
    assert "image/svg+xml" in bundle


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
        assert "vfio-pci 0000:04:00.0" in viz.journey_diagram(h, j).text()


def test_shared_intx_edges_count_each_device_not_the_line():
    """Two devices on one INTx line: kstat counts the line, each device edge only what that device asserted."""
    h = scenarios.shared_intx(trace=False)
    first, second = sorted(h.devices)
    for bdf in (first, second, first):
        h.raise_intx(bdf)
        h.run()
    t = viz.host_diagram(h).text()
    assert "kstat 3" in t
    assert f"{first} -> irq 16: 16-fasteoi  (INTx: 2)" in t and f"{second} -> irq 16: 16-fasteoi  (INTx: 1)" in t
