/// What the PCI driver core does with a bound driver's DMA: drivers with `driver_managed_dma`
/// skip `iommu_device_use_default_domain` (`pci_dma_configure`, OWN-01) and leave the group
/// claimable; every other driver takes `owner_cnt` and makes the group non-viable (VG-06).
public enum KernelDriver {
    /// Drivers the spec lists as setting `driver_managed_dma` (VG-06): vfio-pci and its variant
    /// drivers, pci-stub, the PCIe port driver, and the non-PCI VFIO drivers.
    static let managedDMA: Set<String> = [
        "vfio-pci", "pci-stub", "pcieport", "vfio-platform", "vfio-amba", "vfio-fsl-mc", "vfio-cdx",
    ]

    /// True when binding `name` leaves the group's DMA ownership unclaimed.
    public static func managesDMA(_ name: String) -> Bool {
        // vfio-pci variant drivers (mlx5_vfio_pci, hisi_acc_vfio_pci, ...) all set the flag.
        managedDMA.contains(name) || name.hasSuffix("vfio_pci") || name.hasSuffix("vfio-pci")
    }
}
