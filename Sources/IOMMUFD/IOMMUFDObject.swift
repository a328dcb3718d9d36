import SystemPackage
import IOMMU
import PCIBus

/// What an iommufd object ID names (`enum iommufd_object_type`, IOMMUFD-110): the object types
/// the simulation implements.
enum IOMMUFDObject: Sendable {
    case ioas(IOAddressSpace)
    case hwptPaging(HWPTPaging)
    case device(BoundDevice)
    /// `IOMMUFD_OBJ_SELFTEST` (only with the test command, IOMMUFD-811).
    case selftest(IOMMUFDSelftestObject)
    /// `IOMMUFD_OBJ_ACCESS` (IOMMUFD-607, -814).
    case access(IOMMUFDAccessObject)
    /// An ID reserved by a command still running (`iommufd_object_alloc` before finalize):
    /// lookups do not find it, the next allocation skips it.
    case reserved

    var isReserved: Bool { if case .reserved = self { true } else { false } }

    var typeName: String {
        switch self {
        case .ioas: "IOAS"
        case .hwptPaging: "HWPT_PAGING"
        case .device: "DEVICE"
        case .selftest: "SELFTEST"
        case .access: "ACCESS"
        case .reserved: "object being created"
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
    /// `IOMMU_HWPT_ALLOC_NEST_PARENT`.
    var nestParent = false
    /// `domain->dirty_ops`: allocated with `IOMMU_HWPT_ALLOC_DIRTY_TRACKING` (IOMMUFD-510).
    var dirty: IOMMUFDDirtyTracker?
    /// `hwpt->pasid_compat`: allocated with `IOMMU_HWPT_ALLOC_PASID`, usable at a PASID.
    var pasidCompatible = false
    var devices: [UInt32] = []

    init(ioas: UInt32, domain: IOMMUDomain, automatic: Bool, nestParent: Bool = false, dirty: IOMMUFDDirtyTracker? = nil, pasidCompatible: Bool = false) {
        self.ioas = ioas
        self.domain = domain
        self.automatic = automatic
        self.nestParent = nestParent
        self.dirty = dirty
        self.pasidCompatible = pasidCompatible
    }
}

/// `struct iommufd_device` (IOMMUFD-600): a device bound to the context, which owns its group's
/// DMA, and the HWPT it is attached to.
struct BoundDevice: Sendable {
    let backend: IOMMUFDDeviceBackend
    var hwpt: UInt32?
    /// The HWPT attached at each PASID (`igroup->pasid_attach` but `IOMMU_NO_PASID`); only mock
    /// devices attach PASIDs in the simulation.
    var pasids: [UInt32: UInt32] = [:]

    var name: String { backend.name }
}

/// `IOMMU_OPTION_RLIMIT_MODE` (IOMMUFD-241, -402): where pinned pages are charged.
public enum IOMMUFDAccountMode: Sendable {
    /// `IOPT_PAGES_ACCOUNT_USER`: the user's `locked_vm` (a `/dev/iommu` context's default).
    case user
    /// `IOPT_PAGES_ACCOUNT_MM`: the process's `locked_vm`, as VFIO's type1 charges.
    case mm
}
