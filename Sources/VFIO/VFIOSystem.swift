import KernelRules
import UserMemory
import IOMMU
import Locking
import SystemPackage

/// `/dev/vfio` of one machine (VG-01): a group node `/dev/vfio/<N>` for every IOMMU group with a
/// function bound to a VFIO driver, opened one holder at a time (VG-03); containers are opened
/// with `VFIOContainer(process:)`, or `open("/dev/vfio/vfio")` on the UAPI facade.
public final class VFIOSystem: Sendable {
    package let core: IOMMUCore
    /// The simulated process: containers opened through the facade pin from it.
    public let process: ProcessMemory
    /// The functions behind the devices and the topology hot resets follow.
    public let devices: VFIODeviceDirectory
    private let openGroups = PThreadMutex<Set<Int>>([])

    public init(core: IOMMUCore, process: ProcessMemory = ProcessMemory(), devices: VFIODeviceDirectory = VFIODeviceDirectory()) {
        self.core = core
        self.process = process
        self.devices = devices
    }

    /// The group numbers under `/dev/vfio`: groups with a function bound to a VFIO driver.
    public var groupIDs: [Int] {
        core.groups.filter { group in group.devices.contains { core.device($0)?.driver.map(KernelDriver.isVFIO) == true } }.map(\.id)
    }

    /// `open("/dev/vfio/<id>")` (VG-01, VG-03): `ENOENT` when there is no such node (no function
    /// of the group is bound to a VFIO driver), `EBUSY` while the group is already open.
    public func openGroup(_ id: Int) throws(VFIOError) -> VFIOGroup {
        guard groupIDs.contains(id) else {
            let why = core.group(id) == nil ? "there is no IOMMU group \(id)" : "no function of IOMMU group \(id) is bound to vfio-pci"
            throw VFIOError(.noSuchFileOrDirectory, rule: .VG_01, "open /dev/vfio/\(id): \(why)")
        }
        return try openGroups.withLock { (open) throws(VFIOError) -> VFIOGroup in
            guard open.insert(id).inserted else {
                throw VFIOError(.resourceBusy, rule: .VG_03, "open /dev/vfio/\(id): the group is already open")
            }
            return VFIOGroup(id: id, core: core, directory: devices) { [weak self] group in
                _ = self?.openGroups.withLock { $0.remove(group.id) }
            }
        }
    }
}
