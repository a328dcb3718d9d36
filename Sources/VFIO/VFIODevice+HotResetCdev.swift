import IOMMU
import IOMMUFD
import KernelRules
import PCIBus
import SystemPackage

/// What `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO` reports of one function to a device cdev (v6.6+):
/// the `devid` half of `struct vfio_pci_dependent_device`'s union.
public enum VFIOHotResetDevID: Sendable, Equatable {
    /// Bound to the caller's iommufd: its DEVICE ID.
    case bound(UInt32)
    /// `VFIO_PCI_DEVID_OWNED` (0): not bound, but its group's DMA belongs to the caller's iommufd.
    case owned
    /// `VFIO_PCI_DEVID_NOT_OWNED` (-1): anyone else's, or not a device of the dev_set.
    case notOwned

    /// `VFIO_PCI_HOT_RESET_FLAG_DEV_ID`: the entries hold device IDs, not group IDs.
    public static let flagDevID: UInt32 = 1 << 0
    /// `VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED`: every entry is bound to or owned by the caller's iommufd.
    public static let flagDevIDOwned: UInt32 = 1 << 1

    /// The `__u32 devid` the UAPI writes.
    public var rawValue: UInt32 {
        switch self {
        case .bound(let id): id
        case .owned: 0
        case .notOwned: 0xffff_ffff
        }
    }
}

/// Hot reset from a device cdev (`vfio_device_cdev_opened`, VPCI-210, -212, -220, -222):
/// ownership is proved by the iommufd the cdev is bound to, not by group fds.
extension VFIODevice {
    /// Whether this fd came from a device cdev (`vfio_device_cdev_opened`): its hot reset takes
    /// an empty fd array and its INFO reports device IDs.
    public var isCdevOpened: Bool { group == nil && iommufd != nil }

    /// `vfio_pci_fill_devs` with `VFIO_PCI_HOT_RESET_FLAG_DEV_ID` (VPCI-212): each function in
    /// scope as `vfio_iommufd_get_dev_id` sees it from the caller's iommufd; a function that is
    /// not a vfio-pci device of the dev_set is NOT_OWNED. `ENODEV` without a bus reset (VPCI-213).
    public func hotResetDevIDs() throws(VFIOError) -> [(address: PCIAddress, devid: VFIOHotResetDevID)] {
        function.runtimeGet()  // the ioctl's vfio_device_pm_runtime_get (VPCI-253)
        defer { function.runtimePut() }
        let scope = try hotResetScope("GET_PCI_HOT_RESET_INFO")
        return scope.map { address in (address, devID(of: address)) }
    }

    /// `VFIO_DEVICE_PCI_HOT_RESET` with a zero-length fd array from a device cdev: every member
    /// of the dev_set must be bound to this cdev's iommufd, or unbound with its group owned by
    /// it (`vfio_iommufd_get_dev_id` > 0 or `-ENOENT`), else `EINVAL` (VPCI-222); then the bus
    /// reset of `hotReset(groups:)` (VPCI-221, -223, -233). `EINVAL` on a group-path fd, which
    /// proves ownership with group fds instead (VPCI-220 step 3).
    public func hotResetOwnedDevSet() throws(VFIOError) {
        guard let iommufd, group == nil else {
            throw VFIOError(
                .invalidArgument, rule: .VPCI_220,
                "\(self) PCI_HOT_RESET: an empty group fd array is only for a device opened through its cdev; pass the affected groups' fds")
        }
        try hotReset { (address, groupID) throws(VFIOError) in
            guard iommufd.ownership(of: address, groupID: groupID, core: core) != .notOwned else {
                throw VFIOError(
                    .invalidArgument, rule: .VPCI_222,
                    "\(self) PCI_HOT_RESET: \(address) is neither bound to \(iommufd) nor in an IOMMU group (\(groupID)) it owns")
            }
        }
    }

    /// One entry's `devid`.
    private func devID(of address: PCIAddress) -> VFIOHotResetDevID {
        // vfio_find_device_in_devset: only vfio-pci functions are in the dev_set.
        guard let iommufd, let device = core.device(address), device.driver.map(KernelDriver.isVFIO) == true,
            directory.backends[address] != nil
        else { return .notOwned }
        switch iommufd.ownership(of: address, groupID: device.groupID, core: core) {
        case .bound(let id): return .bound(id)
        case .groupOwned: return .owned
        case .notOwned: return .notOwned
        }
    }
}
