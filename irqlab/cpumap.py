"""Which CPU is which: per host CPU, the vCPU it runs, the host irqs whose vector lands on it, its IPI rows and its
time — the data a CPU diagram draws, and the same as a text table.

Models nothing new: it reads irqlab/cpu.py (each CPU's state and time), the genirq descriptors' effective affinity
(the CPU their vector is on, kernel/irq/proc.c ``effective_affinity``) and the arch rows of arch_show_interrupts
(RES, PIN, PIW). Simplification: a passed-through device's irq is recognised by its vfio action's name.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .cpu import TIME_PARTS

if TYPE_CHECKING:
    from .kernel import Kernel

__all__ = ["cpu_map", "cpu_table"]


def _vcpu_name(v: Any) -> str:
    return f"vm{v.vm.id}/vcpu{v.id}"


def cpu_map(host: "Kernel") -> list[dict]:
    """One dict per CPU: ``cpu``, ``state`` ("idle", "guest", "hardirq"), ``vcpu`` (the vCPU it runs: vm, vcpu,
    mode, in_guest_mode, irq_exits, exits) or None, ``other_vcpus`` (pinned here, not run by the model), ``irqs``
    (each host irq whose vector is on this CPU: irq, vector, actions, passthrough, count here), ``irr`` (vectors
    waiting), ``RES``/``PIN``/``PIW``, ``time`` (ns: hardirq, exit, guest, idle, work) and the CPU's counters."""
    out = []
    by_cpu: dict[int, list] = {c.id: [] for c in host.cpus}
    for irq, d in sorted(host.genirq.descs.items()):
        if not d.actions:
            continue
        names = d.action_names()
        by_cpu[d.cpu].append({"irq": irq, "vector": d.vector, "actions": names,
                              "passthrough": any(n.startswith("vfio") for n in names), "count": d.kstat[d.cpu]})
    for c in host.cpus:
        v = c.curr
        vc = None
        if v is not None:
            vc = {"vm": v.vm.id, "vcpu": v.id, "name": _vcpu_name(v), "mode": v.mode,
                  "in_guest_mode": v.in_guest_mode, "irq_exits": v.exits["EXTERNAL_INTERRUPT"], "exits": dict(v.exits)}
        out.append({"cpu": c.id, "state": c.state, "vcpu": vc,
                    "other_vcpus": [_vcpu_name(x) for x in c.vcpus if x is not v],
                    "irqs": by_cpu[c.id], "irr": sorted(c.irr),
                    **{row: host.arch_counts[row][c.id] for row in ("RES", "PIN", "PIW")},
                    "time": c.time_split(), "taken": c.taken, "waited": c.waited, "merged": c.merged,
                    "busy_periods": c.busy_periods, "exits": c.exits, "work_runs": c.work_runs})
    return out


def _pct(part: int, total: int) -> str:
    return f"{100 * part / total:5.1f}%" if total else "    -"


def cpu_table(host: "Kernel") -> str:
    """The CPU map as text: one line per CPU, then the host irqs that land on each."""
    rows = cpu_map(host)
    lines = [f"{'CPU':<5}{'state':<8}{'runs':<22}{'RES':>8}{'PIN':>8}{'PIW':>8}  "
             + "".join(f"{p:>8}" for p in TIME_PARTS) + f"{'work':>8}"]
    for r in rows:
        v = r["vcpu"]
        runs = f"{v['name']} {v['mode']}" if v else "-"
        if r["other_vcpus"]:
            runs += " +" + ",".join(r["other_vcpus"])
        t = r["time"]
        total = sum(t[p] for p in TIME_PARTS)
        lines.append(f"CPU{r['cpu']:<2}{r['state']:<8}{runs:<22}{r['RES']:>8,}{r['PIN']:>8,}{r['PIW']:>8,}  "
                     + "".join(f"{_pct(t[p], total):>8}" for p in TIME_PARTS) + f"{_pct(t['work'], total):>8}")
    lines.append("")
    for r in rows:
        here = ", ".join(f"0x{i['vector']:02x} irq {i['irq']} {'/'.join(i['actions'])}"
                         + (" (passed through)" if i["passthrough"] else "") for i in r["irqs"])
        lines.append(f"CPU{r['cpu']}: {here or 'no host irq'}")
    return "\n".join(lines)
