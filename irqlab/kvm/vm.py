"""A KVM VM and its vCPUs: routing, irqfds, MSI delivery to local APICs, kicks, entries and exits.

Models virt/kvm/kvm_main.c and virt/kvm/eventfd.c (``kvm_vm_ioctl`` for KVM_SET_GSI_ROUTING, KVM_IRQFD,
KVM_SIGNAL_MSI), arch/x86/kvm/lapic.c (``kvm_irq_delivery_to_apic[_fast]``, ``__apic_accept_irq``,
``kvm_lapic_set_eoi``, ``kvm_ioapic_send_eoi``), arch/x86/kvm/irq.c (``kvm_cpu_get_interrupt``,
``kvm_scan_ioapic_routes``), arch/x86/kvm/x86.c (``kvm_vcpu_kick``, ``vcpu_enter_guest``,
``kvm_check_and_inject_events``, ``vcpu_scan_ioapic``) and vmx (``vmx_deliver_interrupt``, ``vmx_inject_irq``,
the EOI-exit bitmap). Simplification: a vCPU takes interrupts at *entry instants*: the first interrupt accepted
opens a window (a kick and VM exit, a posted delivery, or a wake-up, by the vCPU's mode) and everything
deliverable at its end is taken then, in priority order — without APICv KVM injects one vector per entry and
takes the next after an interrupt-window exit, which the model neither waits for nor counts. The guest is a
Linux guest that EOIs a level-triggered IOAPIC pin's vector after its handler and any other vector as it
takes it.
"""
from __future__ import annotations

import errno
from collections import Counter
from typing import TYPE_CHECKING, Any, Iterable

from ..errors import KernelError
from ..eventfd import EPOLLIN, Eventfd
from ..ledger import Outcome
from ..cpu import RESCHEDULE_VECTOR
from ..uapi import (
    KVM_IOAPIC_NUM_PINS, KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQ_ROUTING_MSI, KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER,
    KVM_IRQCHIP_PIC_SLAVE, KVM_IRQFD_FLAG_DEASSIGN, KVM_IRQFD_FLAG_RESAMPLE, KVM_MSI_VALID_DEVID,
    POSTED_INTR_VECTOR, POSTED_INTR_WAKEUP_VECTOR,
)
from . import msi as _msi
from .irqchip import (
    KvmIoapic, KvmPic, RoutingEntry, RoutingTable, irqchip_route, kvm_msi_route_invalid, validate_routing,
)
from .irqfd import Irqfd, IrqfdResampler
from .lapic import KvmLapic
from .posted import PiDesc
from ..trace import HARDWARE

if TYPE_CHECKING:
    from ..kernel import Kernel

__all__ = ["Vm", "Vcpu", "default_routing"]

LAPIC_C = "arch/x86/kvm/lapic.c"
X86_C = "arch/x86/kvm/x86.c"
VMX_C = "arch/x86/kvm/vmx/vmx.c"
KVM_MAIN = "virt/kvm/kvm_main.c"
MODES = ("running", "halted")
RTC_GSI = 8  # ioapic.h: the RTC's pin, whose EOIs KVM always tracks


def _hop(token: Any, *a: Any) -> None:
    if token is not None and getattr(token, "journey", None) is not None:
        token.hop(*a)


def _due(token: Any, t: int) -> None:
    """Record when the vCPU is due to take the interrupt ``token`` (for its latency: IrqEvent.latency_ns)."""
    if token is not None and getattr(token, "real", False) and getattr(token, "outcome", None) is None:
        token.entry_due = t


def default_routing() -> list[RoutingEntry]:
    """kvm_setup_default_irq_routing(): GSIs 0-15 on the PIC and the IOAPIC, 16-23 on the IOAPIC."""
    out = []
    for gsi in range(24):
        if gsi < 16:
            out.append(irqchip_route(gsi, KVM_IRQCHIP_PIC_MASTER if gsi < 8 else KVM_IRQCHIP_PIC_SLAVE, gsi % 8))
        out.append(irqchip_route(gsi, KVM_IRQCHIP_IOAPIC, gsi))
    return out


class Vcpu:
    """A vCPU: its local APIC, PI descriptor, mode (running in guest mode, or halted), exits."""

    def __init__(self, vm: "Vm", idx: int, pcpu: int, mode: str):
        self.vm = vm
        self.id = idx
        self.apic_id = idx
        self.lapic = KvmLapic(apic_id=idx)
        self.pcpu = pcpu
        self.pi = PiDesc(ndst=pcpu)
        self._mode = mode
        self.mode = mode
        self.irr_tokens: dict[int, Any] = {}
        self.pir_tokens: dict[int, Any] = {}
        self.entry_timer: Any = None
        self.exits: Counter[str] = Counter()
        self.entries = 0
        self.wakeups = 0
        self.delivered: Counter[int] = Counter()
        self.coalesced: Counter[int] = Counter()
        self.exiting = False            # vcpu->mode == EXITING_GUEST_MODE: a kick's reschedule IPI is on its way
        self.window_due: int | None = None  # the nominal end of the delivery window open now (kick, notification,
        #                                     wake-up), or None
        vm.host.cpus[pcpu].before_change()
        vm.host.cpus[pcpu].vcpus.append(self)

    def __repr__(self) -> str:
        return f"<vcpu{self.id} of vm{self.vm.id} on CPU{self.pcpu} {self.mode} IRR={sorted(self.lapic.irr)}>"

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, m: str) -> None:
        if not isinstance(m, str) or m not in MODES:
            raise ValueError(f"vCPU mode is 'running' or 'halted', not {m!r}")
        if hasattr(self, "window_due"):
            self.cpu.before_change()
        self._mode = m
        self.pi.nv = POSTED_INTR_WAKEUP_VECTOR if m == "halted" else POSTED_INTR_VECTOR

    # its host CPU ---------------------------------------------------------------------------------------
    @property
    def cpu(self) -> Any:
        """The host CPU its thread runs on (``irqlab.cpu.Cpu``)."""
        return self.vm.host.cpus[self.pcpu]

    @property
    def cpu_bound(self) -> bool:
        """This vCPU is the one its CPU runs (``Cpu.curr``): it takes part in its CPU's time (exits for host
        interrupts, reschedule IPIs, entries when the CPU leaves hard-IRQ context). Any other vCPU pinned to the
        same CPU keeps the CPU-less delivery windows (the model does not schedule two vCPU threads)."""
        return self.cpu.curr is self

    @property
    def in_guest_mode(self) -> bool:
        """``vcpu->mode == IN_GUEST_MODE``: running, its CPU not in hard-IRQ context, no kick on its way."""
        if self._mode != "running":
            return False
        if not self.cpu_bound:
            return True
        return not self.cpu.busy and not self.exiting

    def sched_setaffinity(self, cpus: Any) -> int:
        """sched_setaffinity(2) on the vCPU thread: ``cpus`` is a CPU number or an iterable of them (the cpumask).
        CPUs past the last are ignored as the kernel ignores bits past nr_cpu_ids; no online CPU left: -EINVAL.
        The thread stays where it is if its CPU is in the mask, else it moves to the mask's first CPU (the kernel's
        cpumask_any_and_distribute spreads successive moves; the model takes the lowest). A vCPU in guest mode is
        taken out by the move (the migration's reschedule IPI: RES and an EXTERNAL_INTERRUPT exit) and re-enters
        on its new CPU. Returns 0."""
        host = self.vm.host
        if isinstance(cpus, bool):
            raise TypeError("cpus must be a CPU number or an iterable of CPU numbers, not a bool")
        if hasattr(cpus, "__index__"):
            cpus = [cpus]
        elif isinstance(cpus, (str, bytes)) or not hasattr(cpus, "__iter__"):
            raise TypeError(f"cpus must be a CPU number or an iterable of CPU numbers, not {type(cpus).__name__}")
        mask = []
        for c in cpus:
            if isinstance(c, bool) or not hasattr(c, "__index__"):
                raise TypeError(f"cpus must hold CPU numbers (ints), not {type(c).__name__}")
            if int(c) < 0:
                raise ValueError(f"a CPU number is >= 0, not {int(c)}")
            mask.append(int(c))
        online = sorted({c for c in mask if c < host.ncpus})
        if not online:
            raise KernelError(errno.EINVAL, f"sched_setaffinity(vcpu{self.id}): no online CPU in {sorted(set(mask))} "
                              f"(CPUs 0..{host.ncpus - 1})")
        if self.pcpu in online:
            return 0
        self.migrate(online[0])
        return 0

    def migrate(self, dest: int) -> None:
        old, new = self.cpu, self.vm.host.cpus[dest]
        old.before_change()
        new.before_change()
        was_in_guest = self._mode == "running" and self.cpu_bound and not old.busy
        if old.exited is self:
            old.exited = None
        if was_in_guest:  # migration_cpu_stop: the stopper's wake-up sends the old CPU a reschedule IPI
            self.vm.host.arch_count("RES", old.id)
            self.exits["EXTERNAL_INTERRUPT"] += 1
        old.vcpus.remove(self)
        self.pcpu = dest
        self.pi.ndst = dest
        new.vcpus.append(self)
        self.exiting = False
        if self._mode == "running" and self.cpu_bound and (was_in_guest or self.window_due is not None):
            if not new.when_free(self.cpu_reenter):
                self.cpu_reenter()

    @property
    def vmexits(self) -> int:
        return sum(self.exits.values())

    @property
    def delivery_ns(self) -> int:
        """How long from the first accept to the entry that delivers it (the window)."""
        t = self.vm.host.timing
        if self._mode == "halted":
            return t.vcpu_wakeup_ns
        return t.posted_delivery_ns if self.vm.apicv else t.kick_ns

    def identity(self) -> _msi.ApicIdentity:
        return self.vm.apic_identities()[self.id]

    # accepting --------------------------------------------------------------------------------------
    def apic_accept_irq(self, vector: int, trigger_level: bool, token: Any, mode: str = "fixed") -> int:
        """__apic_accept_irq for Fixed/Lowest (``mode``): Lowest raises apic_arb_prio; the TMR takes the trigger
        mode; then vmx_deliver_interrupt (APICv posts; otherwise set IRR and kick). An illegal vector (0-15) is
        dropped as the SDM says, with or without APICv."""
        vector, mode, trigger_level = self.lapic.check_accept(vector, mode, trigger_level)
        if mode not in ("fixed", "lowest"):
            raise ValueError(f"Vcpu.apic_accept_irq takes Fixed/Lowest interrupts, not {mode!r} (use KvmLapic's)")
        if self.lapic.illegal(vector):
            if token is not None:  # the SDM's rule, which KVM's __apic_accept_irq does not check
                token.hop("illegal vector", HARDWARE, "lapic", f"vcpu{self.id}: vector {vector} < 16 is not "
                          "delivered (SDM: ESR Receive Illegal Vector; KVM itself does not check)")
                token.settle(Outcome.NO_ROUTE)
            return 0
        if token is not None:
            token.hop("kvm_apic_set_irq", LAPIC_C, "lapic", f"vcpu{self.id}")
            token.hop("__apic_accept_irq", LAPIC_C, "lapic", f"vcpu{self.id}: vector 0x{vector:02x} "
                      f"{'level' if trigger_level else 'edge'}" + (", lowest priority" if mode == "lowest" else ""))
            token.hop("vmx_deliver_interrupt", "arch/x86/kvm/vmx/vmx.c", "kvm",
                      "APICv: post it" if self.vm.apicv else "no APICv: set IRR, request an event, kick")
        if not self.vm.apicv:
            if token is not None:
                token.mark()  # the IRR bit is kvm_lapic_set_irr's change (its hop comes after)
            self.lapic.apic_accept_irq(vector, delivery_mode=mode, trigger_level=trigger_level)
            new = not self.lapic.last_accept_coalesced
            self._irr_set(vector, token, new)
            self.kvm_vcpu_kick(token)
            if new:
                _due(token, self._due())
            return 1
        if mode == "lowest":
            self.lapic.apic_arb_prio += 1
        if trigger_level:  # the TMR is set before the interrupt is posted
            self.lapic.tmr.add(vector)
        else:
            self.lapic.tmr.discard(vector)
        return self.post_interrupt(vector, token, iommu=False)

    def _irr_set(self, vector: int, token: Any, new: bool, hw: bool = False) -> None:
        """The IRR bit is set (``new``) or was set already: the interrupt waits there, or merges (coalesced_irr)."""
        fn, file = ("vIRR", HARDWARE) if hw else ("kvm_lapic_set_irr", "arch/x86/kvm/lapic.h")
        if not new:
            self.coalesced[vector] += 1
            if token is not None:
                token.hop(fn, file, "lapic", f"vcpu{self.id}: IRR[0x{vector:02x}] already set: coalesced")
                token.settle(Outcome.COALESCED_IRR)
            return
        self.irr_tokens[vector] = token
        if token is not None:
            token.hop(fn, file, "lapic", f"vcpu{self.id}: IRR[0x{vector:02x}] set")
            token.change(f"vcpu{self.id} IRR", "", f"0x{vector:02x}")
            token.carried = True

    def _due(self) -> int:
        """When an interrupt accepted now is due to be taken: the open window's end, or now (it waits for the
        vCPU to re-enter when its CPU leaves hard-IRQ context)."""
        return self.window_due if self.window_due is not None else self.vm.host.now

    def post_interrupt(self, vector: int, token: Any, *, iommu: bool) -> int:
        """__vmx_deliver_posted_interrupt (APICv) or the IOMMU writing a posted IRTE's PIR bit. Neither touches
        the TMR (__apic_accept_irq set it before posting; the IOMMU never does). A VT-d posted vector 0-15 is
        refused where it reaches the LAPIC, as the SDM says (nothing in KVM or VT-d checks it). A running vCPU in
        guest mode processes the notification at once; one whose CPU is in hard-IRQ context (it exited) finds
        the vector in its PIR when it re-enters — the IOMMU's notification arrives in the host then (PIN)."""
        if iommu and self.lapic.illegal(vector):
            if token is not None:
                token.hop("illegal vector", HARDWARE, "lapic", f"vcpu{self.id}: posted vector {vector} < 16 is not "
                          "delivered (SDM: ESR Receive Illegal Vector; neither VT-d nor KVM checks it)")
                token.settle(Outcome.NO_ROUTE)
            return 0
        outside = self._mode == "running" and self.cpu_bound and self.cpu.busy
        if self._mode == "running" and not outside:
            # In guest mode the notification is processed at once: PIR is synced into the virtual IRR.
            if token is not None:
                if not iommu:
                    token.hop("__vmx_deliver_posted_interrupt", "arch/x86/kvm/vmx/common.h", "kvm",
                              f"vcpu{self.id}: set PIR[0x{vector:02x}] and ON")
                    token.hop("kvm_vcpu_trigger_posted_interrupt", "arch/x86/kvm/vmx/common.h", "kvm",
                              f"vcpu{self.id} in guest mode: notification IPI 0xf2 to CPU{self.pcpu}")
                token.hop("posted-interrupt processing", HARDWARE, "lapic",
                          f"vcpu{self.id} in guest mode: the CPU moves PIR into the virtual IRR, no VM exit")
            new = self.lapic.kvm_apic_update_irr(vector)
            if not iommu:
                self.lapic.last_accept_coalesced = not new
            self._irr_set(vector, token, new, hw=True)
            self._request_entry(None)
            if new:
                _due(token, self._due())
            return 1
        pir_was_set = self.pi.pi_test_and_set_pir(vector)
        if not iommu:
            self.lapic.last_accept_coalesced = pir_was_set
        if pir_was_set:
            self.coalesced[vector] += 1
            if token is not None:
                token.hop("pi_test_and_set_pir", "arch/x86/include/asm/posted_intr.h", "lapic",
                          f"vcpu{self.id}: PIR[0x{vector:02x}] already set")
                token.settle(Outcome.COALESCED_PIR)
            return 1
        self.pir_tokens[vector] = token
        if token is not None:
            token.carried = True
            token.hop("pi_test_and_set_pir", "arch/x86/include/asm/posted_intr.h", "lapic",
                      f"vcpu{self.id} {'blocked' if not outside else 'outside guest mode'}: PIR[0x{vector:02x}] set")
        if not self.pi.pi_test_and_set_on():
            if outside:
                if iommu:  # VT-d notifies NDST with NV whatever vcpu->mode is: it lands in the host, in hard IRQ
                    _hop(token, "IOMMU: notification", HARDWARE, "iommu", f"ON was clear: POSTED_INTR_VECTOR 0xf2 to "
                         f"CPU{self.pcpu}, which is in hard-IRQ context: a host interrupt, not posted processing")
                    self.cpu.send_ipi(POSTED_INTR_VECTOR, token)
                else:
                    _hop(token, "kvm_vcpu_trigger_posted_interrupt", "arch/x86/kvm/vmx/common.h", "kvm",
                         f"vcpu{self.id} is not IN_GUEST_MODE (CPU{self.pcpu} is in hard-IRQ context): no IPI; "
                         "kvm_vcpu_wake_up finds it runnable; vcpu_enter_guest syncs the PIR when it re-enters")
            elif iommu:  # the notification goes to the wakeup vector: pi_wakeup_handler on the host CPU
                _hop(token, "IOMMU: notification", HARDWARE, "iommu", f"ON was clear: POSTED_INTR_WAKEUP_VECTOR "
                     f"0xf1 to CPU{self.pcpu}")
                self.cpu.send_ipi(POSTED_INTR_WAKEUP_VECTOR, token, self._pi_wakeup_handler)
                self._request_entry(token)
            else:
                self._request_entry(token)
        _due(token, self._due())
        return 1

    def _pi_wakeup_handler(self, token: Any) -> None:
        _hop(token, "pi_wakeup_handler", "arch/x86/kvm/vmx/posted_intr.c", "kvm",
             f"CPU{self.pcpu}: wake vcpu{self.id} (its PI descriptor's ON is set)")

    def kvm_vcpu_kick(self, token: Any) -> None:
        """__kvm_vcpu_kick (virt/kvm/kvm_main.c): kvm_vcpu_wake_up for a halted vCPU; for a running one,
        kvm_arch_vcpu_should_kick (IN_GUEST_MODE → EXITING_GUEST_MODE) and then smp_send_reschedule to its CPU.
        A vCPU whose CPU is in hard-IRQ context is OUTSIDE_GUEST_MODE (the interrupt's exit took it out): no IPI,
        vcpu_enter_guest injects it when it re-enters; one EXITING already has a reschedule IPI on its way."""
        if self._mode != "running" or self.vm.apicv or not self.cpu_bound:
            self._request_entry(token)
            return
        host = self.vm.host
        cpu = self.cpu
        if cpu.busy:
            _hop(token, "kvm_vcpu_kick", KVM_MAIN, "kvm", f"vcpu{self.id} is OUTSIDE_GUEST_MODE: CPU{cpu.id} is in "
                 "hard-IRQ context (the exit took it out): no IPI; injected when it re-enters")
            return
        if self.exiting:
            _hop(token, "kvm_vcpu_kick", KVM_MAIN, "kvm", f"vcpu{self.id} is EXITING_GUEST_MODE already: a "
                 "reschedule IPI is on its way (kvm_arch_vcpu_should_kick's cmpxchg fails)")
            return
        t = host.timing
        self.exiting = True
        self.window_due = host.now + t.ipi_ns + t.vmexit_ns
        _hop(token, "kvm_vcpu_kick", KVM_MAIN, "kvm", f"vcpu{self.id}: kvm_vcpu_wake_up (not blocked), "
             f"kvm_arch_vcpu_should_kick: IN_GUEST_MODE → EXITING_GUEST_MODE; it runs on CPU{cpu.id}")
        _hop(token, "native_smp_send_reschedule", "arch/x86/kernel/apic/ipi.c", "lapic",
             f"smp_send_reschedule(CPU{cpu.id}): RESCHEDULE_VECTOR 0xfd, arrives in {t.ipi_ns:,} ns")
        host.sched.call_at(host.now + t.ipi_ns, cpu.send_ipi, RESCHEDULE_VECTOR, token, name=f"IPI 0xfd to CPU{cpu.id}")

    def vm_exit_external_interrupt(self, vector: int, ev: Any) -> None:
        """A vector arrives while this vCPU is in VMX non-root mode on its CPU: EXIT_REASON_EXTERNAL_INTERRUPT with
        "acknowledge interrupt on exit"; vcpu_enter_guest sets OUTSIDE_GUEST_MODE and vmx_handle_exit_irqoff →
        handle_external_interrupt_irqoff calls the host's IDT entry for the vector between kvm_before_interrupt and
        kvm_after_interrupt (what comes next is the host's own handling of the vector, not KVM's)."""
        self.exiting = False
        _hop(ev, "VM exit", HARDWARE, "lapic" if vector >= 0xF0 else "cpu", f"CPU{self.pcpu} was running vcpu{self.id} of vm{self.vm.id} in guest "
             f"mode: EXIT_REASON_EXTERNAL_INTERRUPT, vector 0x{vector:02x} acknowledged on exit")
        _hop(ev, "vmx_handle_exit_irqoff", VMX_C, "kvm", f"vcpu{self.id}: vcpu->mode = OUTSIDE_GUEST_MODE; exit "
             "reason EXTERNAL_INTERRUPT")
        _hop(ev, "handle_external_interrupt_irqoff", VMX_C, "kvm", f"vector 0x{vector:02x}: call the host IDT entry "
             "for it — KVM does not look at which device it is")
        _hop(ev, "kvm_before_interrupt", "arch/x86/kvm/x86.h", "kvm", f"vcpu{self.id}: handling_intr_from_guest = "
             "KVM_HANDLING_IRQ")

    def handle_external_interrupt(self, ev: Any) -> None:
        """vmx.c handle_external_interrupt, once the host has handled the vector: ``++vcpu->stat.irq_exits``."""
        _hop(ev, "handle_external_interrupt", VMX_C, "kvm", f"vcpu{self.id}: ++irq_exits; it re-enters the guest "
             "once its CPU has handled what is pending (vcpu_enter_guest)")
        self.exits["EXTERNAL_INTERRUPT"] += 1

    def cpu_reenter(self) -> None:
        """Its CPU left hard-IRQ context after taking this vCPU out of guest mode: vcpu_enter_guest enters again,
        with whatever became deliverable meanwhile."""
        self.vcpu_enter_guest()

    def _request_entry(self, token: Any) -> None:
        if self.window_due is not None:
            return  # a kick / wake-up is already on its way
        host = self.vm.host
        if token is not None:
            token.mark()  # the kick's (or wake-up's) hop comes after what it counts
        if self._mode == "halted":
            self.wakeups += 1
            what = "kvm_vcpu_wake_up"
        elif self.vm.apicv:
            what = "posted-interrupt notification (no exit)"
        else:
            self.exits["EXTERNAL_INTERRUPT"] += 1
            what = "kvm_vcpu_kick → VM exit"
        if token is not None:
            token.hop("kvm_vcpu_kick" if self._mode == "running" else "kvm_vcpu_wake_up", X86_C, "kvm",
                      f"vcpu{self.id}: {what}; entry in {self.delivery_ns:,} ns")
        self.window_due = host.now + self.delivery_ns
        self.entry_timer = host.sched.call_at(self.window_due, self._window_end, name=f"vcpu{self.id} entry")

    def _window_end(self) -> None:
        """The window's end: the vCPU enters now, or when its CPU leaves hard-IRQ context (a vCPU takes
        interrupts only in guest mode)."""
        if self.window_due is None:
            return  # a re-entry after an exit took them already
        if self.cpu_bound and self.cpu.when_free(self._window_end):
            return
        self.vcpu_enter_guest()

    # entering the guest -----------------------------------------------------------------------------
    def vcpu_enter_guest(self) -> None:
        """The entry: vmx_sync_pir_to_irr (the PIR into the IRR, TMR untouched), then every deliverable vector."""
        self.entries += 1
        self.exiting = False
        self.window_due = None
        if self.entry_timer is not None:   # the window it closes: its entry timer (if any) is done
            self.vm.host.sched.del_timer(self.entry_timer)
            self.entry_timer = None
        if self.pi.pir:
            for v in sorted(self.pi.pir):
                tok = self.pir_tokens.pop(v, None)
                if tok is not None:
                    tok.hop("vmx_sync_pir_to_irr", "arch/x86/kvm/vmx/vmx.c", "kvm", f"vcpu{self.id} entry: PIR → IRR")
                self._irr_set(v, tok, self.lapic.kvm_apic_update_irr(v))
            self.pi.pir.clear()
            self.pi.on = False
        self._deliver_pending()
        if self._mode == "halted":
            self.exits["HLT"] += 1  # the guest halts again once it has handled them

    def _deliver_pending(self) -> None:
        """Every deliverable vector, highest first, at this instant. Without APICv this is
        kvm_check_and_inject_events → kvm_cpu_get_interrupt → vmx_inject_irq, one vector per entry: KVM asks for
        an interrupt window (an INTERRUPT_WINDOW exit) for the next. The model takes them all at this entry
        and counts no interrupt-window exit (its simplification, docs/model-time.md). With APICv the CPU's
        virtual-interrupt delivery takes them one after another, no exit. The guest EOIs a vector of a
        level-triggered IOAPIC pin after its handler (handle_fasteoi_irq), any other as it takes it."""
        host = self.vm.host
        while True:
            v = self.lapic.kvm_apic_has_interrupt()
            if v < 0:
                return
            tok = self.irr_tokens.pop(v, None)
            if tok is not None and not self.vm.apicv:  # the calls that find it come before the ack
                tok.hop("kvm_check_and_inject_events", X86_C, "lapic", f"vcpu{self.id} entry: an interrupt "
                        "is injectable and the guest takes interrupts")
                tok.hop("kvm_cpu_get_interrupt", "arch/x86/kvm/irq.c", "lapic",
                        f"no ExtINT; kvm_apic_has_interrupt: vector 0x{v:02x}, class above PPR")
            if tok is not None:
                tok.mark()  # the ack (IRR → ISR) is the next hop's
            self.lapic.kvm_apic_ack_interrupt(v)
            self.delivered[v] += 1
            late = self.vm.guest_level_vector(v)
            if tok is not None:
                kind = "level" if v in self.lapic.tmr else "edge"
                if self.vm.apicv:  # virtual-interrupt delivery: the CPU acknowledges it, not KVM
                    tok.hop("virtual-interrupt delivery", HARDWARE, "guest",
                            f"vcpu{self.id} takes vector 0x{v:02x}: vIRR → vISR ({kind}), no VM exit")
                else:
                    tok.hop("kvm_apic_ack_interrupt", LAPIC_C, "guest",
                            f"vector 0x{v:02x} IRR → ISR ({kind}); vmx_inject_irq puts it in VM_ENTRY_INTR_INFO: "
                            "injected at this entry")
                tok.settle(Outcome.POSTED if getattr(tok, "via_iommu", False) else Outcome.INJECTED, t_ack=host.now)
            if late:
                host.sched.call_at(host.now + host.timing.guest_handler_ns, self._guest_eoi_due, v, tok,
                                   name=f"vcpu{self.id} EOI 0x{v:02x}")
            else:
                self.kvm_lapic_set_eoi()

    def kvm_lapic_set_eoi(self) -> int:
        """The guest writes EOI: apic_set_eoi, then kvm_ioapic_send_eoi if the vector is one KVM must see.
        Without APICv every EOI write exits (APIC access or x2APIC MSR write); with APICv only a vector in
        the EOI-exit bitmap (vmx_load_eoi_exitmap: ioapic_handled_vectors) exits, EXIT_REASON_EOI_INDUCED."""
        v = self.lapic.apic_set_eoi()
        if v < 0:
            return v
        handled = self.kvm_ioapic_handles_vector(v)
        if handled or not self.vm.apicv:
            self.exits["EOI"] += 1
        if handled:
            self.kvm_ioapic_send_eoi(v, self.lapic.last_eoi_level)
        return v

    def kvm_ioapic_send_eoi(self, vector: int, trigger_level: bool) -> None:
        """lapic.c kvm_ioapic_send_eoi: with the full irqchip, kvm_ioapic_update_eoi with the vector's TMR bit as
        the trigger mode (ack notifiers run for edge EOIs too); with a split one KVM exits to the VMM
        (KVM_EXIT_IOAPIC_EOI, not modelled: the VMM's IOAPIC is not part of the model)."""
        if self.vm.ioapic is not None:
            self.vm.ioapic.kvm_ioapic_update_eoi(vector, trigger_level)

    def ioapic_handled_vectors(self) -> set[int]:
        """vcpu_scan_ioapic: the vectors whose EOI KVM must see, from the IOAPIC pins (kvm_ioapic_scan_entry:
        level-triggered pins, pins with an ack notifier, and the RTC's pin 8) or, with a split irqchip, from the
        level MSI routes of GSIs 0-23 (kvm_scan_ioapic_routes), whose destination matches this vCPU
        (kvm_scan_ioapic_irq). With APICv it is also the EOI-exit bitmap. Simplification: computed when asked;
        KVM recomputes it at the entry after a change (KVM_REQ_SCAN_IOAPIC) and keeps a vector still pending
        from the old routing (highest_stale_pending_ioapic_eoi)."""
        return {v for v in range(256) if self.kvm_ioapic_handles_vector(v)}

    def kvm_ioapic_handles_vector(self, vector: int) -> bool:
        """Whether ``vector`` is in ioapic_handled_vectors (see there): only the pins or routes with it count."""
        vm, me = self.vm, None
        if vm.ioapic is not None:
            for pin in vm.ioapic.pins_with_vector(vector):
                e = vm.ioapic.redirtbl[pin]
                if not (e.trigger_level or pin == RTC_GSI or vm.kvm_irq_has_notifier(KVM_IRQCHIP_IOAPIC, pin)):
                    continue
                me = me or self.identity()
                m = _msi.encode(dest_id=e.dest_id, vector=e.vector, dest_mode_logical=e.dest_mode_logical)
                if _msi.kvm_apic_match_dest(m, me):
                    return True
        elif vm.irqchip_split:
            for gsi in range(KVM_IOAPIC_NUM_PINS):  # nr_reserved_ioapic_pins: a VMM's 24-pin IOAPIC
                for e in vm.routing.entries(gsi):
                    if e.type != KVM_IRQ_ROUTING_MSI or e.data & 0xFF != vector:
                        continue
                    m = _msi.decode(e.address_lo, e.data, e.address_hi, x2apic_32bit_ids=vm.x2apic_32bit_ids)
                    me = me or self.identity()
                    if m.trigger_level and _msi.kvm_apic_match_dest(m, me):
                        return True
        return False

    def _guest_eoi_due(self, vector: int, tok: Any = None) -> None:
        """The guest's handler is done: it writes EOI now, or — its CPU in hard-IRQ context, the vCPU out of guest
        mode — as soon as it is back in the guest."""
        if self.cpu_bound and self.cpu.when_free(lambda: self._guest_eoi_due(vector, tok)):
            return
        prev, host = self.vm.host.this_cpu, self.vm.host
        host.this_cpu = self.pcpu  # the EOI exit runs in the vCPU thread on its CPU (virqfd's work is queued there)
        try:
            self._guest_eoi(vector, tok)
        finally:
            host.this_cpu = prev

    def _guest_eoi(self, vector: int, tok: Any = None) -> None:
        """The guest's level handler is done: it services the device, then writes EOI — an EOI exit (the
        vector's TMR bit is set; with APICv it is in the EOI-exit bitmap). KVM finishes in that exit, at this
        instant: apic_set_eoi → kvm_ioapic_send_eoi → kvm_ioapic_update_eoi, whose ack notifiers run the
        resampler (de-assert, signal the resamplefd: vfio's virqfd_wakeup unmasks the device right there)
        before each pin's remote IRR is cleared. ``tok``: the interrupt the guest took; its journey records
        this way back (its outcome and latency stay those of the ack)."""
        vm = self.vm
        echo = tok.echo() if tok is not None and getattr(tok, "journey", None) is not None else None
        vm.guest_service(vector, echo)
        isr = sorted(self.lapic.isr)
        if echo is not None and isr:  # the exit comes before the EOI it carries (max(isr): what apic_set_eoi clears)
            if vm.apicv:
                echo.hop("handle_apic_eoi_induced", "arch/x86/kvm/vmx/vmx.c", "kvm", f"vcpu{self.id}: EOI-induced "
                         f"exit: vector 0x{max(isr):02x} is in the EOI-exit bitmap (the CPU cleared vISR)")
            else:
                echo.hop("kvm_lapic_reg_write", LAPIC_C, "kvm", f"vcpu{self.id}: the guest's write to APIC_EOI "
                         "traps: EOI exit")
            echo.mark()  # the EOI's changes are the next hop's
        v = self.lapic.apic_set_eoi()
        handled = v >= 0 and self.kvm_ioapic_handles_vector(v)  # as kvm_lapic_set_eoi counts and forwards it
        if handled or not vm.apicv:
            self.exits["EOI"] += 1
        if echo is not None:
            if vm.apicv:
                echo.hop("kvm_apic_set_eoi_accelerated", LAPIC_C, "lapic", f"vcpu{self.id}: vector 0x{v:02x}")
            else:
                echo.hop("apic_set_eoi", LAPIC_C, "lapic", f"vcpu{self.id}: ISR[0x{v:02x}] cleared")
            echo.change(f"vcpu{self.id} ISR", " ".join(f"0x{x:02x}" for x in isr),
                        " ".join(f"0x{x:02x}" for x in sorted(self.lapic.isr)))
            if vm.ioapic is not None:
                echo.hop("kvm_ioapic_send_eoi", LAPIC_C, "lapic", f"TMR[0x{v:02x}] set: level, "
                         "kvm_ioapic_update_eoi")
        if vm.ioapic is not None and handled:
            io = vm.ioapic
            pins = [p for p, e in enumerate(io.redirtbl) if e.vector == vector]
            was = {p: io.redirtbl[p].remote_irr for p in pins}
            if echo is not None:
                echo.hop("kvm_ioapic_update_eoi", "arch/x86/kvm/ioapic.c", "kvm",
                         f"vector 0x{vector:02x}: IOAPIC pin(s) {', '.join(map(str, pins)) or 'none'}")
            vm.eoi_echo = echo
            try:
                io.kvm_ioapic_update_eoi(vector, self.lapic.last_eoi_level)
            finally:
                vm.eoi_echo = None
            if echo is not None:
                for p in pins:
                    if was[p] and not io.redirtbl[p].remote_irr:
                        echo.hop("kvm_ioapic_update_eoi_one", "arch/x86/kvm/ioapic.c", "kvm",
                                 f"pin {p}: after its ack notifiers, remote IRR cleared")
                        echo.change(f"IOAPIC pin {p} remote IRR", 1, 0)
        self._deliver_pending()  # a lower vector blocked by this one's PPR is taken now

    def set_tpr(self, tpr: int) -> None:
        """The guest writes its TPR (checked first: an int 0..255); a vector it unblocks is taken now."""
        self.lapic.set_tpr(tpr)
        self._deliver_pending()


class Vm:
    """A VM. ``host.create_vm(nvcpus=2, irqchip="full")``; irqchip is "full", "split" or None."""

    def __init__(self, host: "Kernel", *, nvcpus: int = 1, irqchip: str | None = "full", apicv: bool | None = None,
                 x2apic_32bit_ids: bool = False, pcpus: Iterable[int] | None = None, vcpu_mode: str = "running"):
        # every argument is checked before anything is built (TypeError/ValueError say what to fix)
        if isinstance(nvcpus, bool) or not isinstance(nvcpus, int) or not 1 <= nvcpus <= 64:
            raise ValueError(f"nvcpus must be an int between 1 and 64, got {nvcpus!r}")
        if not (irqchip is None or isinstance(irqchip, str)) or irqchip not in ("full", "split", None):
            raise ValueError("irqchip must be 'full' (KVM_CREATE_IRQCHIP), 'split' (KVM_CAP_SPLIT_IRQCHIP) or None")
        apicv = host.enable_apicv if apicv is None else _msi._flag(apicv, "apicv")
        if apicv and not host.enable_apicv:
            raise ValueError("apicv=True needs a host created with apicv=True (kvm_intel.enable_apicv)")
        x2apic_32bit_ids = _msi._flag(x2apic_32bit_ids, "x2apic_32bit_ids")
        if not isinstance(vcpu_mode, str) or vcpu_mode not in MODES:
            raise ValueError(f"vcpu_mode is 'running' or 'halted', not {vcpu_mode!r}")
        if pcpus is None:
            pcpus = [(i + 1) % host.ncpus for i in range(nvcpus)]
        elif isinstance(pcpus, (str, bytes)) or not hasattr(pcpus, "__iter__"):
            raise TypeError(f"pcpus must be a list of {nvcpus} host CPU numbers, not {type(pcpus).__name__}")
        pcpus = [_msi._int(p, "pcpus[i]", 0, host.ncpus - 1) for p in pcpus]
        if len(pcpus) != nvcpus:
            raise ValueError(f"pcpus must name {nvcpus} host CPUs in 0..{host.ncpus - 1}, got {len(pcpus)}")
        self.id = len(host.vms) + 1
        self.host = host
        self.irqchip = irqchip
        self.apicv = apicv
        self.x2apic_32bit_ids = x2apic_32bit_ids
        self.vcpus = [Vcpu(self, i, pcpus[i], vcpu_mode) for i in range(nvcpus)]
        self.ioapic = KvmIoapic(self) if irqchip == "full" else None
        self.pic = KvmPic() if irqchip == "full" else None
        self.routing = RoutingTable(default_routing() if irqchip == "full" else [])
        self.irqfds: list[Irqfd] = []
        self.resamplers: dict[int, IrqfdResampler] = {}
        self.signal_msi_calls = 0
        self.eoi_echo: Any = None  # the way back of the interrupt whose EOI exit is running (traced), if any

    def __repr__(self) -> str:
        return f"<Vm {self.id}: {len(self.vcpus)} vCPUs, irqchip={self.irqchip}, {len(self.irqfds)} irqfds>"

    @property
    def irqchip_in_kernel(self) -> bool:
        return self.irqchip is not None

    @property
    def irqchip_split(self) -> bool:
        return self.irqchip == "split"

    @property
    def vmexits(self) -> int:
        return sum(v.vmexits for v in self.vcpus)

    def apic_identities(self) -> list[_msi.ApicIdentity]:
        return [_msi.ApicIdentity(v.apic_id, ldr=1 << v.apic_id if v.apic_id < 8 else 0) for v in self.vcpus]

    # KVM_SET_GSI_ROUTING ----------------------------------------------------------------------------
    def kvm_set_gsi_routing(self, entries: Iterable[RoutingEntry], flags: int = 0) -> int:
        """Replace the whole routing table, then let every irqfd pick up its GSI's new route. Every entry is
        checked first (kvm_set_irq_routing builds the new table before it swaps it in): an error changes nothing."""
        if isinstance(entries, (str, bytes, RoutingEntry)) or not hasattr(entries, "__iter__"):
            raise TypeError("entries must be a list of routing entries (irqlab.msi_route()/irqchip_route())")
        entries = list(entries)
        flags = _msi._u32(flags, "KVM_SET_GSI_ROUTING flags")
        self.routing = validate_routing(self, entries, flags)
        for irqfd in self.irqfds:  # kvm_irq_routing_update → irqfd_update (+ IRTE update)
            irqfd.irqfd_update()
            self.host.irqbypass.kvm_pi_update_irte(irqfd)
        return 0

    # KVM_IRQFD --------------------------------------------------------------------------------------
    def kvm_irqfd(self, fd: Any, gsi: int, flags: int = 0, resamplefd: Any = None) -> int:
        """KVM_IRQFD (struct kvm_irqfd: u32 fd, gsi, flags, resamplefd): ``gsi`` and ``flags`` are u32s (any GSI
        is accepted: one without a route injects nothing); the kernel's errors as KernelError."""
        gsi, flags = _msi._u32(gsi, "kvm_irqfd gsi"), _msi._u32(flags, "kvm_irqfd flags")
        if flags & ~(KVM_IRQFD_FLAG_DEASSIGN | KVM_IRQFD_FLAG_RESAMPLE):
            raise KernelError(errno.EINVAL, f"KVM_IRQFD: unknown flags 0x{flags:x}")
        if flags & KVM_IRQFD_FLAG_DEASSIGN:
            return self.kvm_irqfd_deassign(fd, gsi)
        resample = bool(flags & KVM_IRQFD_FLAG_RESAMPLE)
        if not (self.irqchip == "full" if resample else self.irqchip_in_kernel):
            raise KernelError(errno.EINVAL, "KVM_IRQFD: " + ("KVM_IRQFD_FLAG_RESAMPLE needs the full in-kernel "
                              "irqchip" if resample else "needs an in-kernel irqchip"))
        efd = self._eventfd(fd, "KVM_IRQFD fd")
        rfd = self._eventfd(resamplefd, "KVM_IRQFD resamplefd") if resample else None
        irqfd = Irqfd(self, efd, gsi, rfd)
        efd.add_wait_queue_priority_exclusive(irqfd.wait)  # -EBUSY: the eventfd already has an irqfd
        if resample:
            res = self.resamplers.get(gsi)
            if res is None:
                res = self.resamplers[gsi] = IrqfdResampler(self, gsi)
            res.irqfds.append(irqfd)
            irqfd.resampler = res
        irqfd.irqfd_update()
        self.irqfds.append(irqfd)
        if efd.poll() & EPOLLIN:
            self.host.sched.schedule_work(irqfd.inject, self.host.timing.irqfd_work_ns)
        if self.host.enable_apicv:
            self.host.irqbypass.irq_bypass_register_consumer(irqfd)
        return 0

    @staticmethod
    def _eventfd(fd: Any, what: str) -> Eventfd:
        if isinstance(fd, Eventfd):
            if fd.closed:
                raise KernelError(errno.EBADF, f"{what}: the eventfd is closed")
            return fd
        if fd is None or (isinstance(fd, int) and not isinstance(fd, bool)):
            raise KernelError(errno.EBADF, f"{what}: {fd!r} is not an open eventfd (pass the Eventfd object)")
        raise KernelError(errno.EINVAL, f"{what}: {type(fd).__name__} is not an eventfd")

    def kvm_irqfd_deassign(self, fd: Any, gsi: int) -> int:
        """Deactivate every irqfd on (eventfd, gsi); returns 0 even when nothing matched."""
        gsi = _msi._u32(gsi, "kvm_irqfd gsi")
        if not isinstance(fd, Eventfd) or fd.closed:  # eventfd_ctx_fdget(args->fd)
            raise KernelError(errno.EBADF, f"KVM_IRQFD deassign: {fd!r} is not an open eventfd")
        for irqfd in [i for i in self.irqfds if i.eventfd is fd and i.gsi == gsi]:
            self._irqfd_shutdown(irqfd)
        return 0

    def _irqfd_shutdown(self, irqfd: Irqfd) -> None:
        if irqfd not in self.irqfds:
            return
        self.irqfds.remove(irqfd)
        irqfd.eventfd.eventfd_ctx_remove_wait_queue(irqfd.wait)
        self.host.irqbypass.irq_bypass_unregister_consumer(irqfd)
        self.host.sched.flush_work(irqfd.inject)
        res = irqfd.resampler
        if res is not None:
            res.irqfds.remove(irqfd)
            if not res.irqfds:
                self.kvm_set_irq(1, res.gsi, 0, None)
                del self.resamplers[res.gsi]

    # injection --------------------------------------------------------------------------------------
    def kvm_set_irq(self, irq_source_id: int, gsi: int, level: int, token: Any) -> int:
        """Call every routing entry of the GSI; < 0 ignored, 0 coalesced, > 0 the number of CPUs. The source is
        a bit of the pins' irq_states (0..63: BITS_PER_LONG), the GSI a u32, the level 0 or 1 (checked first)."""
        if type(irq_source_id) is not int or type(gsi) is not int or type(level) is not int or \
                not (0 <= irq_source_id < 64 and 0 <= gsi <= 0xFFFFFFFF and level in (0, 1)):
            if not isinstance(level, bool):
                _msi._int(level, "level", 0, 1)
            _msi._int(irq_source_id, "irq_source_id", 0, 63), _msi._u32(gsi, "gsi")
            irq_source_id, gsi, level = int(irq_source_id), int(gsi), int(level)
        entries = self.routing.entries(gsi)
        if token is not None:
            token.hop("kvm_set_irq", "virt/kvm/irqchip.c", "kvm", f"gsi {gsi} level {level}: {len(entries)} route(s)")
            token.carried = False
        ret = -1
        coalesced = False
        for e in entries:
            tok = token if (token is not None and not token.done and not token.carried) else None
            if e.type == KVM_IRQ_ROUTING_MSI:
                r = self.kvm_set_msi(e, level, tok)
            elif e.irqchip == KVM_IRQCHIP_IOAPIC:
                r = self.ioapic.set_irq(e.pin, irq_source_id, level, tok) if self.ioapic else -1
                coalesced |= r == 0
            else:
                r = self.pic.set_irq(e.pin + (8 if e.irqchip == KVM_IRQCHIP_PIC_SLAVE else 0), irq_source_id,
                                     level) if self.pic else -1
            if r < 0:  # "if (r < 0) continue;": a refusal adds nothing to the others' result
                continue
            ret = r + (0 if ret < 0 else ret)
        if token is not None and not token.done and not token.carried:
            token.settle(Outcome.COALESCED_IOAPIC if coalesced else Outcome.NO_ROUTE)
        return ret

    def kvm_set_msi(self, e: RoutingEntry, level: int, token: Any) -> int:
        if kvm_msi_route_invalid(self, e):
            return -errno.EINVAL
        if not level:
            return -1
        msg = _msi.decode(e.address_lo, e.data, e.address_hi, x2apic_32bit_ids=self.x2apic_32bit_ids)
        return self.kvm_irq_delivery_to_apic(msg, token)

    def kvm_arch_set_irq_inatomic(self, e: RoutingEntry, token: Any) -> int:
        """The irqfd fast path for an MSI route; -EWOULDBLOCK sends the irqfd to its work item."""
        msg = _msi.decode(e.address_lo, e.data, e.address_hi, x2apic_32bit_ids=self.x2apic_32bit_ids)
        dests = _msi.fast_destinations(msg, self.apic_identities())
        if dests is None:
            return -errno.EWOULDBLOCK
        if token is not None:
            token.hop("kvm_arch_set_irq_inatomic", "arch/x86/kvm/irq.c", "kvm", "MSI route: try the fast path")
            token.hop("kvm_irq_delivery_to_apic_fast", LAPIC_C, "kvm",
                      f"MSI dest {msg.dest_id} vector 0x{msg.vector:02x}")
        r = self._deliver(msg, dests, True, token)
        if token is not None and not token.done and not token.carried:
            token.settle(Outcome.NO_ROUTE)
        return max(r, 0)

    def kvm_irq_delivery_to_apic(self, msg: Any, token: Any) -> int:
        """The APIC map's fast path, else a loop over every vCPU: the number of accepts; -1 only when the
        loop found no destination (the fast path reports 0 for a destination nobody has)."""
        if token is not None:
            token.hop("kvm_irq_delivery_to_apic", LAPIC_C, "kvm", f"dest {msg.dest_id} vector 0x{msg.vector:02x}")
        dests, fast = _msi.delivery_destinations(msg, self.apic_identities())
        return self._deliver(msg, dests, fast, token)

    def _deliver(self, msg: Any, dests: list[int], fast: bool, token: Any) -> int:
        if not dests:
            if token is not None:
                token.hop("kvm_irq_delivery_to_apic_fast" if fast else "kvm_irq_delivery_to_apic", LAPIC_C, "kvm",
                          "no destination vCPU: dropped" + (" (reports 0)" if fast else " (reports -1)"))
                token.settle(Outcome.NO_ROUTE)
            return 0 if fast else -1
        r = 0
        mode = msg.kvm_mode
        for n, i in enumerate(dests):
            vcpu = self.vcpus[i]
            tok = token if n == 0 else None
            if mode in ("fixed", "lowest"):
                r += vcpu.apic_accept_irq(msg.vector, msg.trigger_level, tok, mode)
                continue
            # SMI, RemRd, NMI, INIT, SIPI bypass IRR/ISR; ExtINT is ignored (only LVT0 may deliver it)
            a = vcpu.lapic.apic_accept_irq(msg.vector, delivery_mode=mode)
            r += a
            if tok is not None:
                tok.hop("__apic_accept_irq", LAPIC_C, "lapic", f"vcpu{vcpu.id}: APIC_DM_{mode.upper()}" +
                        ("" if a else ": ignored"))
                if a:
                    tok.settle(Outcome.INJECTED, t_ack=self.host.now)
                else:
                    tok.settle(Outcome.NO_ROUTE)
        return r

    def kvm_signal_msi(self, address_lo: int, address_hi: int, data: int, flags: int = 0, devid: int = 0) -> int:
        """KVM_SIGNAL_MSI: > 0 on delivery, 0 if dropped (e.g. a physical ID no vCPU has: the fast path reports
        0); -1 (EPERM) only when the loop over every vCPU (a broadcast, no APIC map) finds no destination."""
        e = RoutingEntry(0, KVM_IRQ_ROUTING_MSI, flags, address_lo=address_lo, address_hi=address_hi, data=data,
                         devid=devid)  # struct kvm_msi: u32 fields (TypeError/ValueError before anything)
        if not self.irqchip_in_kernel:
            raise KernelError(errno.EINVAL, "KVM_SIGNAL_MSI: no in-kernel irqchip (KVM_CREATE_IRQCHIP first)")
        if flags & ~KVM_MSI_VALID_DEVID:
            raise KernelError(errno.EINVAL, "KVM_SIGNAL_MSI: flags other than KVM_MSI_VALID_DEVID")
        self.signal_msi_calls += 1
        r = self.kvm_set_msi(e, 1, None)
        if r == -errno.EINVAL:
            raise KernelError(errno.EINVAL, "KVM_SIGNAL_MSI: address_hi bits 7:0 must be 0 with 32-bit x2APIC IDs")
        if r < 0:
            raise KernelError(errno.EPERM, "KVM_SIGNAL_MSI: no destination vCPU (the ioctl returns -1)")
        return r

    def kvm_irq_has_notifier(self, irqchip: int, pin: int) -> bool:
        """virt/kvm/irqchip.c kvm_irq_has_notifier: an ack notifier (a resampler) on the pin's GSI."""
        return self.routing.chip_pin(irqchip, pin) in self.resamplers

    def kvm_notify_acked_irq(self, irqchip: int, pin: int) -> None:
        """Ack notifiers of the pin's GSI (kvm_irq_map_chip_pin: the GSI routed to it last): its resampler."""
        gsi = self.routing.chip_pin(irqchip, pin)
        res = self.resamplers.get(gsi)
        echo = self.eoi_echo
        if echo is not None:
            echo.hop("kvm_ioapic_update_eoi_one", "arch/x86/kvm/ioapic.c", "kvm", f"pin {pin}: ack notifiers "
                     "first (remote IRR is cleared after them)")
            echo.hop("kvm_notify_acked_irq", "virt/kvm/eventfd.c", "kvm", f"chip {irqchip} pin {pin} → GSI {gsi}: "
                     + ("its resampler" if res is not None else "no ack notifier"))
        if res is not None:
            res.irqfd_resampler_ack(echo)

    def kvm_notify_irqfd_resampler(self, irqchip: int, pin: int) -> bool:
        """virt/kvm/eventfd.c: signal the resamplefds of the pin's GSI, if it has a resampler (no de-assert)."""
        res = self.resamplers.get(self.routing.chip_pin(irqchip, pin))
        if res is None:
            return False
        res.irqfd_resampler_notify()
        return True

    def postable_vcpu(self, e: RoutingEntry) -> Vcpu | None:
        """kvm_irq_is_postable + kvm_intr_is_single_vcpu: a Fixed/Lowest MSI with exactly one destination,
        by the APIC map (a lowest-priority pick counts as one) or else by counting the vCPUs that match."""
        msg = _msi.decode(e.address_lo, e.data, e.address_hi, x2apic_32bit_ids=self.x2apic_32bit_ids)
        if msg.kvm_mode not in ("fixed", "lowest"):
            return None
        apics = self.apic_identities()
        fast = _msi.fast_destinations(msg, apics)
        if fast is not None and len(fast) == 1:  # kvm_intr_is_single_vcpu_fast
            return self.vcpus[fast[0]]
        dests = [i for i, a in enumerate(apics) if _msi.kvm_apic_match_dest(msg, a)]
        return self.vcpus[dests[0]] if len(dests) == 1 else None

    # the guest --------------------------------------------------------------------------------------
    def guest_level_vector(self, vector: int) -> bool:
        """The guest's flow for a vector (the model's guest is Linux): a vector it programmed on a
        level-triggered IO-APIC pin runs handle_fasteoi_irq (EOI after the handler), any other handle_edge_irq
        (EOI as it takes it) — whatever the LAPIC's TMR says. With a split irqchip the IOAPIC is the VMM's, and
        its level pins reach KVM as level MSI routes on GSIs 0-23 (what kvm_scan_ioapic_routes reads)."""
        if self.ioapic is not None:
            rt = self.ioapic.redirtbl
            return any(rt[p].trigger_level for p in self.ioapic.pins_with_vector(vector))
        if self.irqchip_split:
            return any(e.type == KVM_IRQ_ROUTING_MSI and e.data & 0xFF == vector and e.data & (1 << 15)
                       for gsi in range(KVM_IOAPIC_NUM_PINS) for e in self.routing.entries(gsi))
        return False

    def guest_service(self, vector: int, token: Any = None) -> None:
        """The guest driver behind a level vector reads and clears its passed-through device's Status bit (MMIO
        through the BAR, no exit). An interrupt that bit held and that was never sent to the guest — held
        behind INTx Disable, or pending at a disabled host line — ends here: the guest serviced it with the
        one it is handling (``masked``: INTx Disable held it), or it went with the disabled line
        (``disabled``). ``token``: the way back of the interrupt the guest took (traced), or None."""
        if self.ioapic is None:
            return
        pins = set(self.ioapic.pins_for_vector(vector))
        for irqfd in self.irqfds:
            if irqfd.resampler is None:
                continue
            if not any(e.type == KVM_IRQ_ROUTING_IRQCHIP and e.irqchip == KVM_IRQCHIP_IOAPIC and e.pin in pins
                       for e in self.routing.entries(irqfd.gsi)):
                continue
            # the device(s) whose vfio INTx trigger is this irqfd's eventfd (the same eventfd may also be an
            # MSI vector's trigger: SET_IRQS takes any eventfd)
            for dev in self.host.devices.values():
                if getattr(dev.driver, "intx_trigger", None) is irqfd.eventfd:
                    self._service(dev, token)

    def _service(self, dev: Any, token: Any) -> None:
        """The guest driver reads and clears one device's Status bit (see guest_service)."""
        ev = dev.take_intx()
        if ev is None:
            return
        if token is not None:
            token.hop("guest driver services the device", HARDWARE, "guest", f"{dev.bdf}: reads and clears "
                      "Status.Interrupt (MMIO through the BAR, no exit)")
            token.change(f"{dev.bdf} Status.Interrupt", 1, 0)
        if ev.live and not ev.passed_on:
            ev.hop("guest driver services the device", HARDWARE, "guest", f"{dev.bdf}: Status cleared before "
                   "this interrupt was sent: serviced with the one the guest is handling")
            ev.settle(Outcome.MASKED if dev.disintx else Outcome.DISABLED)
