import IOMMU

extension PlatformProfile {
    /// Whether the platform's PCI/MSI parent domain supports more than one MSI vector per function
    /// (`MSI_FLAG_MULTI_PCI_MSI`, checked by `msi_capability_init`, `drivers/pci/msi/msi.c:406`).
    /// On x86 only the interrupt-remapping domains (VT-d, AMD-Vi) have it — the plain vector domain
    /// does not (`arch/x86/kernel/apic/msi.c`, not in `../shared/kernel`) — so without interrupt
    /// remapping `pci_alloc_irq_vectors(pdev, 1, nvec, PCI_IRQ_MSI)` gets 1 vector (VPCI-181). The
    /// GICv3 ITS behind an SMMUv3 has it.
    var msiDomainSupportsMultiMSI: Bool { interruptRemapping || name.hasPrefix("smmuv3") }
}
