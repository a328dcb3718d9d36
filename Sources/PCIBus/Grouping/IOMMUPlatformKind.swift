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
        if function.classID == 0x0806 {
            return "the AMD IOMMU's own function (class 0806) is not behind the IOMMU"
        }
        if onRootBus, function.address.devfn == 0, function.classID == 0x0600 {
            return "the root complex (host bridge at 00.0) is outside the AMD IOMMU's scope (IVRS)"
        }
        return nil
    }

    /// Guesses the platform from the host bridges: Intel or AMD host bridge / AMD IOMMU function
    /// on a root bus, IBM PHBs; otherwise (no x86 host bridge) an ARM SMMUv3 system.
    public static func detect(in topology: PCITopology) -> (kind: IOMMUPlatformKind, reason: String) {
        let rootFunctions = topology.rootBuses.flatMap { topology.buses[$0]?.functions ?? [] }.map {
            topology.functions[$0]
        }
        if let iommu = rootFunctions.first(where: { $0.classID == 0x0806 && $0.vendorID == 0x1022 }) {
            return (.amdVi, "AMD IOMMU function \(iommu.address) (\(iommu.vendorDeviceText))")
        }
        for bridge in rootFunctions where bridge.classID == 0x0600 {
            switch bridge.vendorID {
            case 0x8086: return (.intelVTd, "Intel host bridge \(bridge.address) (\(bridge.vendorDeviceText))")
            case 0x1022, 0x1002: return (.amdVi, "AMD host bridge \(bridge.address) (\(bridge.vendorDeviceText))")
            default: continue
            }
        }
        if let phb = rootFunctions.first(where: { $0.vendorID == 0x1014 && $0.classID == 0x0604 }) {
            return (.powerNV, "IBM POWER host bridge (PHB) \(phb.address) (\(phb.vendorDeviceText))")
        }
        return (.armSMMUv3, "no Intel/AMD host bridge or IBM PHB on a root bus: assuming an ARM SMMUv3 system")
    }
}
