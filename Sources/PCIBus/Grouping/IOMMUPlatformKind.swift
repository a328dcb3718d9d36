/// The IOMMU family a machine has, as far as group formation cares: which functions the IOMMU
/// covers, whether ACPI describes an AMD IOMMU (the `IVRS` table the AMD southbridge ACS quirk
/// checks), and whether groups follow PCI topology at all.
public enum IOMMUPlatformKind: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
    /// Intel VT-d: every PCI function is in a DMAR unit's scope.
    case intelVTd = "vt-d"
    /// AMD-Vi: the root complex (00:00.0) and the IOMMU's own function (class 0806) are outside
    /// the IOMMU's scope and get no group.
    case amdVi = "amd-vi"
    /// ARM SMMUv3: PCI functions behind the root complexes are grouped with `pci_device_group`.
    case armSMMUv3 = "smmuv3"
    /// IBM POWER (PowerNV): groups are the firmware's partitionable endpoints (IODA PEs), not
    /// derived from ACS; they cannot be computed from config space.
    case powerNV = "powernv"

    public var description: String { rawValue }

    /// True when `pci_device_group` (IG-10..16) forms the groups.
    public var groupsFollowPCITopology: Bool { self != .powerNV }

    /// ACPI `IVRS` present: the condition of `pci_quirk_amd_sb_acs` (ACS-31).
    public var hasIVRSTable: Bool { self == .amdVi }

    /// Whether the IOMMU covers a function; nil when it does, else why not.
    func outOfScopeReason(_ function: PCIFunction, onRootBus: Bool) -> String? {
        guard self == .amdVi else { return nil }
        if function.classID == PCIClass.iommu {
            return "the AMD IOMMU's own function (class 0806) is not behind the IOMMU"
        }
        if onRootBus, function.address.devfn == 0, function.classID == PCIClass.hostBridge {
            return "the root complex (host bridge at 00.0) is outside the AMD IOMMU's scope (IVRS)"
        }
        return nil
    }
}
