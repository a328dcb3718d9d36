import IOMMUFD
import KernelRules
import UserMemory
import IOMMU
import Locking
import PCIBus
import SystemPackage
import Synchronization

/// `/dev/vfio` of one machine (VG-01): a group node `/dev/vfio/<N>` for every IOMMU group with a
/// function bound to a VFIO driver, opened one holder at a time (VG-03); containers are opened
/// with `VFIOContainer(process:)`, or `open("/dev/vfio/vfio")` on the UAPI facade.
public final class VFIOSystem: Sendable {
    package let core: IOMMUCore
    /// The simulated process: containers opened through the facade pin from it.
    public let process: ProcessMemory
    /// The functions behind the devices and the topology hot resets follow.
    public let devices: VFIODeviceDirectory
    /// Open group nodes and cdev-bound devices, which exclude each other (VG-03, IOMMUFD-615).
    let exclusion = PThreadMutex(Exclusion())
    private let selftestBuilt = Atomic<Bool>(false)
    private let unsafeInterrupts = Atomic<Bool>(false)

    /// `vfio_iommu_type1.allow_unsafe_interrupts` (T1-01, T1-50): containers opened from now on
    /// (`/dev/vfio/vfio`, `containerOptions`) attach groups whose platform has no interrupt
    /// remapping. Off by default, as the module parameter is.
    public var type1AllowUnsafeInterrupts: Bool {
        get { unsafeInterrupts.load(ordering: .relaxed) }
        set { unsafeInterrupts.store(newValue, ordering: .relaxed) }
    }

    /// The type1 module parameters a new container gets.
    public var containerOptions: VFIOContainerOptions { VFIOContainerOptions(allowUnsafeInterrupts: type1AllowUnsafeInterrupts) }

    /// `CONFIG_IOMMUFD_TEST`: every `/dev/iommu` opened from now on has the selftest mock
    /// (`IOMMU_TEST_CMD`, iommufd.md §8) — `vfiokit run --iommufd-test`. Off by default, as in a
    /// production kernel, where the test command is `ENOTTY`.
    public var iommufdSelftest: Bool {
        get { selftestBuilt.load(ordering: .relaxed) }
        set { selftestBuilt.store(newValue, ordering: .relaxed) }
    }

    struct Exclusion: Sendable {
        var openGroups: Set<Int> = []
        var cdevBound: Set<PCIAddress> = []
    }

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
        let members = core.group(id)?.devices ?? []
        return try exclusion.withLock { (state) throws(VFIOError) -> VFIOGroup in
            if let bound = members.first(where: state.cdevBound.contains) {
                throw VFIOError(.resourceBusy, rule: .IOMMUFD_615, "open /dev/vfio/\(id): \(bound) is bound to an iommufd through its device cdev")
            }
            guard state.openGroups.insert(id).inserted else {
                throw VFIOError(.resourceBusy, rule: .VG_03, "open /dev/vfio/\(id): the group is already open")
            }
            return VFIOGroup(id: id, core: core, directory: devices) { [weak self] group in
                _ = self?.exclusion.withLock { $0.openGroups.remove(group.id) }
            }
        }
    }
}

/// The device cdevs (`/dev/vfio/devices/vfioN`, IOMMUFD-610) and their exclusion with the group
/// path (IOMMUFD-612 step 6, -615).
extension VFIOSystem {
    /// The functions with a cdev, in `vfioN` order: every function bound to a VFIO driver, by
    /// address.
    public var cdevAddresses: [PCIAddress] {
        core.snapshot.devices.values.filter { $0.driver.map(KernelDriver.isVFIO) == true }.map(\.address).sorted()
    }

    /// `open("/dev/vfio/devices/vfioN")` (IOMMUFD-610): an unbound device file; `ENOENT` when
    /// there is no such node.
    public func openDeviceCdev(_ number: Int) throws(VFIOError) -> VFIODeviceCdev {
        let addresses = cdevAddresses
        guard addresses.indices.contains(number) else {
            throw VFIOError(.noSuchFileOrDirectory, rule: .IOMMUFD_610, "open /dev/vfio/devices/vfio\(number): no such device (have vfio0…vfio\(addresses.count - 1))")
        }
        return VFIODeviceCdev(address: addresses[number], number: number, system: self)
    }

    /// `vfio_device_block_group` (IOMMUFD-612 step 6): `EBUSY` while `address`'s VFIO group is open.
    func checkGroupClosed(_ address: PCIAddress, _ what: String) throws(VFIOError) {
        let groupID = core.device(address)?.groupID
        try exclusion.withLock { (state) throws(VFIOError) in
            if let groupID, state.openGroups.contains(groupID) {
                throw VFIOError(.resourceBusy, rule: .IOMMUFD_612, "\(what): VFIO group \(groupID) is open; the group path and the cdev exclude each other")
            }
        }
    }

    /// A cdev binds `address`: `EINVAL` while another cdev fd has it bound (`open_count`,
    /// IOMMUFD-614).
    func claimForCdev(_ address: PCIAddress, _ what: String) throws(VFIOError) {
        try exclusion.withLock { (state) throws(VFIOError) in
            guard state.cdevBound.insert(address).inserted else {
                throw VFIOError(.invalidArgument, rule: .IOMMUFD_614, "\(what): \(address) is already bound through another cdev fd")
            }
        }
    }

    func releaseFromCdev(_ address: PCIAddress) { _ = exclusion.withLock { $0.cdevBound.remove(address) } }
}
