import IOMMU
import Locking
import PCIBus

/// What VFIO's hot reset asks an iommufd about the devices a bus reset reaches
/// (`vfio_iommufd_get_dev_id`, `drivers/vfio/iommufd.c`; VPCI-212, VPCI-222).
extension IOMMUFDContext {
    /// How this iommufd relates to the PCI function `address` in `core`.
    public enum Ownership: Sendable, Equatable {
        /// Bound here: the DEVICE object's ID (`vfio_iommufd_device_id`).
        case bound(UInt32)
        /// Not bound here, but a device of its IOMMU group is (`iommufd_ctx_has_group`): the
        /// group's DMA belongs to this iommufd, so nobody else can own the function (`-ENOENT`).
        case groupOwned
        /// Neither (`-ENODEV`): the function is someone else's.
        case notOwned
    }

    /// `vfio_iommufd_get_dev_id(vdev, ictx)`: the function's DEVICE ID when bound to this
    /// context, else whether a device of its group `groupID` is.
    public func ownership(of address: PCIAddress, groupID: Int?, core: IOMMUCore) -> Ownership {
        state.withLock { state in
            var groupOwned = false
            for (id, object) in state.objects {
                guard case .device(let device) = object, case .pci(let bound, let boundCore, let boundGroup) = device.backend,
                    boundCore === core
                else { continue }
                if bound == address { return .bound(id) }
                if boundGroup == groupID { groupOwned = true }
            }
            return groupOwned ? .groupOwned : .notOwned
        }
    }
}
