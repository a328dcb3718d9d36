import IOMMU
import KernelRules
import PCIBus
import SystemPackage

/// What an `iommufd_device` is bound to (`idev->dev`): a PCI function of the machine behind its
/// IOMMU core (the VFIO cdev and group paths), or a device on the selftest's mock bus behind the
/// mock IOMMU (`IOMMU_TEST_OP_MOCK_DOMAIN`). The device API (§6.1) runs the same steps for both;
/// this is where they differ — which IOMMU driver owns a domain, the group, reserved regions,
/// and what attaching a domain does in the driver.
enum IOMMUFDDeviceBackend: Sendable {
    case pci(address: PCIAddress, core: IOMMUCore, groupID: Int)
    case mock(IOMMUFDMockDevice)

    /// An IOMMU group, across cores and the mock bus.
    enum GroupKey: Hashable {
        case pci(ObjectIdentifier, Int)
        case mock(Int)
    }

    var group: GroupKey {
        switch self {
        case .pci(_, let core, let groupID): .pci(ObjectIdentifier(core), groupID)
        case .mock(let device): .mock(device.number)
        }
    }

    /// The device's name (`dev_name`), which also owns its reservations in an IOAS.
    var name: String {
        switch self {
        case .pci(let address, _, _): address.description
        case .mock(let device): device.description
        }
    }

    var groupDescription: String {
        switch self {
        case .pci(_, _, let groupID): "IOMMU group \(groupID)"
        case .mock(let device): "the mock IOMMU group of \(device)"
        }
    }

    /// The PCI address, nil on the mock bus.
    var address: PCIAddress? {
        if case .pci(let address, _, _) = self { address } else { nil }
    }

    var mockDevice: IOMMUFDMockDevice? {
        if case .mock(let device) = self { device } else { nil }
    }

    /// The IOMMU driver's profile (`dev_iommu_ops`).
    var profile: PlatformProfile {
        switch self {
        case .pci(_, let core, _): core.profile
        case .mock: IOMMUFDMockIOMMU.profile
        }
    }

    /// `domain->owner == dev_iommu_ops(dev)`: whether this device's IOMMU driver allocated it.
    func owns(_ domain: IOMMUDomain) -> Bool {
        switch self {
        case .pci(_, let core, _): domain.ops == core.profile.name
        case .mock: IOMMUFDMockIOMMU.owns(domain)
        }
    }

    /// `ops->get_resv_regions`: none on the mock bus.
    var reservedRegions: [ReservedRegion] {
        switch self {
        case .pci(let address, let core, _): core.device(address)?.reservedRegions ?? []
        case .mock: []
        }
    }

    /// The group goes to `hwpt`'s domain (`iommu_attach_group`, the driver's `attach_dev`).
    func attach(_ hwpt: HWPTPaging) throws(IOMMUFDError) {
        switch self {
        case .pci(_, let core, let groupID):
            try lowerCall { () throws(IOMMUError) in try core.attach(hwpt.domain, toGroup: groupID) }
        case .mock(let device):
            try device.attach(hwpt.domain, tracksDirty: hwpt.dirty != nil)
        }
    }

    /// The group moves from `old`'s domain to `new`'s (`iommu_group_replace_domain`): on failure it
    /// stays on `old`'s.
    func replace(_ old: HWPTPaging, with new: HWPTPaging) throws(IOMMUFDError) {
        switch self {
        case .pci(_, let core, let groupID):
            do throws(IOMMUError) {
                try core.detach(old.domain, fromGroup: groupID)
                do throws(IOMMUError) {
                    try core.attach(new.domain, toGroup: groupID)
                } catch {
                    try? core.attach(old.domain, toGroup: groupID)
                    throw error
                }
            } catch {
                throw IOMMUFDError(error)
            }
        case .mock(let device):
            try device.attach(new.domain, tracksDirty: new.dirty != nil)
        }
    }

    /// The group leaves `domain` for its blocking domain; never fails.
    func detach(_ domain: IOMMUDomain) {
        switch self {
        case .pci(_, let core, let groupID): try? core.detach(domain, fromGroup: groupID)
        case .mock(let device): device.block()
        }
    }

    /// `iommu_device_release_dma_owner` (a mock device's group has no other user).
    func release() {
        if case .pci(let address, let core, _) = self { try? core.releaseDevice(address) }
    }
}
