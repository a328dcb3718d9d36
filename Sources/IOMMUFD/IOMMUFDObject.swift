import SystemPackage
import IOMMU
import PCIBus

/// What an iommufd object ID names (`enum iommufd_object_type`, IOMMUFD-110): the object types
/// the simulation implements.
enum IOMMUFDObject: Sendable {
    case ioas(IOAddressSpace)
    case hwptPaging(HWPTPaging)
    case device(BoundDevice)

    var typeName: String {
        switch self {
        case .ioas: "IOAS"
        case .hwptPaging: "HWPT_PAGING"
        case .device: "DEVICE"
        }
    }
}

/// `struct iommufd_hwpt_paging` (IOMMUFD-500): an IOMMU paging domain mirroring IOAS `ioas`,
/// allocated by `IOMMU_HWPT_ALLOC` or automatically at attach (IOMMUFD-604), and the devices
/// attached to it.
struct HWPTPaging: Sendable {
    let ioas: UInt32
    let domain: IOMMUDomain
    /// An auto domain: found again by later attaches, destroyed with its last device (IOMMUFD-606).
    let automatic: Bool
    var devices: [UInt32] = []
}

/// `struct iommufd_device` (IOMMUFD-600): a device bound to the context, which owns its group's
/// DMA, and the HWPT it is attached to.
struct BoundDevice: Sendable {
    let address: PCIAddress
    let core: IOMMUCore
    let groupID: Int
    var hwpt: UInt32?
}

/// `IOMMU_OPTION_RLIMIT_MODE` (IOMMUFD-241, -402): where pinned pages are charged.
public enum IOMMUFDAccountMode: Sendable {
    /// `IOPT_PAGES_ACCOUNT_USER`: the user's `locked_vm` (a `/dev/iommu` context's default).
    case user
    /// `IOPT_PAGES_ACCOUNT_MM`: the process's `locked_vm`, as VFIO's type1 charges.
    case mm
}
