import IOMMU
import IOMMUFD
import KernelRules
import Locking
import PCIBus
import SystemPackage

/// An open `/dev/vfio/devices/vfioN` (`struct vfio_device_file` of the device cdev,
/// `drivers/vfio/device_cdev.c`, §6.2–6.3 of the iommufd spec): unbound until
/// `VFIO_DEVICE_BIND_IOMMUFD`, when it opens the device, claims its group's DMA for the iommufd
/// and blocks the group path; `ATTACH`/`DETACH_IOMMUFD_PT` then move its DMA between HW page
/// tables. Every other device ioctl needs the bind (`EINVAL`, IOMMUFD-611). Opened through
/// `VFIOSystem.openDeviceCdev`.
public final class VFIODeviceCdev: Sendable, CustomStringConvertible {
    public let address: PCIAddress
    /// The `vfioN` number of its node.
    public let number: Int
    private let system: VFIOSystem
    private let state = PThreadMutex<Bound?>(nil)

    private struct Bound: Sendable {
        let device: VFIODevice
        let context: IOMMUFDContext
        let id: UInt32
    }

    init(address: PCIAddress, number: Int, system: VFIOSystem) {
        self.address = address
        self.number = number
        self.system = system
    }

    public var description: String { "VFIO device cdev vfio\(number) (\(address))" }

    /// `VFIO_DEVICE_BIND_IOMMUFD` after its argument checks (IOMMUFD-612 steps 6–12, -614):
    /// `EBUSY` while the device's VFIO group is open, `EINVAL` when this fd is bound already,
    /// then `context` resolves the iommufd (its token and fd checks: steps 8–9), `EINVAL` while
    /// another cdev fd has the device, then the iommufd bind (IOMMUFD-600) and the device's
    /// enable. The DEVICE object's ID (`out_devid`); DMA stays blocked until attach.
    public func bind(_ context: () throws(VFIOError) -> IOMMUFDContext) throws(VFIOError) -> UInt32 {
        try state.withLock { (bound) throws(VFIOError) -> UInt32 in
            let what = "\(self) BIND_IOMMUFD"
            try system.checkGroupClosed(address, what)
            guard bound == nil else {
                throw VFIOError(.invalidArgument, rule: .IOMMUFD_612, "\(what): already bound to \(bound!.context)")
            }
            let context = try context()
            try system.claimForCdev(address, what)
            do throws(VFIOError) {
                let id = try iommuCall { () throws(IOMMUFDError) in try context.bind(address, core: system.core) }
                let function = VFIOPCIFunction(
                    address: address, backend: system.devices.backends[address], driverData: system.devices.driverData,
                    placement: system.devices.resetPlacement(of: address), multiMSI: system.core.profile.msiDomainSupportsMultiMSI)
                let device = VFIODevice(
                    function: function, group: nil, container: nil, core: system.core, directory: system.devices, iommufd: context
                ) {
                    [system, address] function in
                    context.detach(id)
                    function.disable()
                    VFIOPCIDevSet.tryReset(afterClosing: address, directory: system.devices, core: system.core)
                    context.unbind(id)
                    system.releaseFromCdev(address)
                }
                bound = Bound(device: device, context: context, id: id)
                return id
            } catch {
                system.releaseFromCdev(address)
                throw error
            }
        }
    }

    /// `VFIO_DEVICE_BIND_IOMMUFD` with an iommufd the caller holds.
    public func bind(to context: IOMMUFDContext) throws(VFIOError) -> UInt32 { try bind { context } }

    /// The opened device, for every device ioctl but the cdev's own; `EINVAL` before the bind
    /// (IOMMUFD-611, `get_info_without_bind_fails`).
    public func device(_ operation: String) throws(VFIOError) -> VFIODevice {
        guard let bound = state.withLock({ $0 }) else {
            throw VFIOError(.invalidArgument, rule: .IOMMUFD_611, "\(self) \(operation): not bound to an iommufd (VFIO_DEVICE_BIND_IOMMUFD first)")
        }
        return bound.device
    }

    /// `VFIO_DEVICE_ATTACH_IOMMUFD_PT` (IOMMUFD-620..622): to HWPT or IOAS `ptID` — replacing the
    /// current attachment without a detach — the HWPT ID now attached.
    public func attach(_ ptID: UInt32) throws(VFIOError) -> UInt32 {
        let bound = try bound("ATTACH_IOMMUFD_PT")
        return try iommuCall { () throws(IOMMUFDError) in try bound.context.attach(device: bound.id, to: ptID) }
    }

    /// `VFIO_DEVICE_DETACH_IOMMUFD_PT` (IOMMUFD-624): always succeeds; DMA is blocked again.
    public func detach() throws(VFIOError) {
        let bound = try bound("DETACH_IOMMUFD_PT")
        bound.context.detach(bound.id)
    }

    /// The DEVICE object's ID in its iommufd, once bound.
    public var deviceID: UInt32? { state.withLock { $0?.id } }

    private func bound(_ operation: String) throws(VFIOError) -> Bound {
        _ = try device(operation)
        return state.withLock { $0! }
    }

    /// `close(fd)` (IOMMUFD-617), and the unwind of a bind whose `out_devid` could not be written
    /// back: a bound device detaches, is disabled, unbinds (its group's DMA released) and the group
    /// path opens again.
    public func close() {
        let bound = state.withLock { bound -> Bound? in
            defer { bound = nil }
            return bound
        }
        bound?.device.close()
    }
}
