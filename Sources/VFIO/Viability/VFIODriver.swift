import IOMMU

extension KernelDriver {
    /// True for vfio-pci and its variant drivers: the functions `VFIO_GROUP_GET_DEVICE_FD` can open
    /// and whose presence makes a VFIO group exist (VG-01).
    public static func isVFIO(_ name: String) -> Bool {
        name == "vfio-pci" || name.hasSuffix("vfio_pci") || name.hasSuffix("vfio-pci")
    }
}
