/// Class codes (base class and subclass, `pci_dev->class >> 8`) from `include/linux/pci_ids.h`
/// that grouping and the IOMMU profiles test for.
public enum PCIClass {
    /// `PCI_CLASS_BRIDGE_HOST`.
    public static let hostBridge: UInt16 = 0x0600
    /// `PCI_CLASS_BRIDGE_ISA`: the floppy workaround's region (RR-04) and x86 platform detection.
    public static let isaBridge: UInt16 = 0x0601
    /// `PCI_CLASS_SYSTEM_IOMMU`.
    public static let iommu: UInt16 = 0x0806
}
