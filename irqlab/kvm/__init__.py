"""KVM's half of the path: GSI routing, irqfd, x86 MSI, the virtual local APIC, posted interrupts."""
