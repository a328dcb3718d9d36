import PCIBus

/// One `struct iommu_group` (IG-01): its devices in probe order, the default, current and blocking
/// domains, and DMA ownership (`owner`, `owner_cnt`, OWN-01..09).
public struct IOMMUGroup: Sendable, Equatable, Identifiable {
    public let id: Int
    /// Devices in the order they were added (probe order).
    public let devices: [PCIAddress]
    /// The domain the kernel's DMA API uses (`default_domain`); shown by sysfs `type` (SYS-01).
    public internal(set) var defaultDomain: IOMMUDomain?
    /// The domain the devices are attached to now (`group->domain`).
    public internal(set) var domain: IOMMUDomain?
    /// Allocated on the first DMA-ownership claim (OWN-05).
    public internal(set) var blockingDomain: IOMMUDomain?
    /// The user owner (VFIO, iommufd), or nil while only kernel drivers hold the group.
    public internal(set) var owner: DMAOwner?
    /// Kernel drivers using the default domain plus user claims (`owner_cnt`).
    public internal(set) var ownerCount: Int = 0
    /// Non-zero while a PCI reset is in progress (`recovery_cnt`, OWN-09).
    public internal(set) var recoveryCount: Int = 0
    /// Every device's reserved regions merged (RR-02, RR-03).
    public let reservedRegions: ReservedRegionList

    /// `/sys/kernel/iommu_groups/N/type` (SYS-01): the default domain's type, not the current one's.
    public var sysfsType: String { (defaultDomain?.type.sysfsName ?? "unknown") + "\n" }

    /// `iommu_group_dma_owner_claimed` (OWN-03): what VFIO's "not viable" means.
    public var isDMAOwnerClaimed: Bool { ownerCount != 0 }
}

/// A device the IOMMU covers, as the core sees it (`dev->iommu`, the bound driver).
public struct IOMMUDevice: Sendable, Equatable {
    public let address: PCIAddress
    public let groupID: Int
    /// The regions its driver reports (`ops->get_resv_regions`), unmerged.
    public let reservedRegions: [ReservedRegion]
    /// Any `direct` region: the device may never sit on a blocking domain (RR-05, RD-02).
    public let requireDirect: Bool
    /// `pdev->untrusted` (external-facing port): forces a strict `DMA` default domain (DT-06).
    public let untrusted: Bool
    public internal(set) var driver: String?
}
