import PCIBus
import Synchronization

/// A device fd from `VFIO_GROUP_GET_DEVICE_FD` (`struct vfio_device_file`): one open of a
/// function bound to vfio-pci. While open it keeps its group in the container (VG-13, VG-34).
public final class VFIODevice: Sendable, CustomStringConvertible {
    public let address: PCIAddress
    public let group: VFIOGroup
    public let container: VFIOContainer
    private let closed = Atomic<Bool>(false)

    init(address: PCIAddress, group: VFIOGroup, container: VFIOContainer) {
        self.address = address
        self.group = group
        self.container = container
    }

    public var description: String { "VFIO device \(address)" }

    /// `close(device fd)`; later calls do nothing.
    public func close() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        group.deviceClosed()
    }
}
