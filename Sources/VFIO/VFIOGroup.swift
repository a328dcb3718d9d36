import IOMMU
import IOMMUFD
import KernelRules
import Locking
import PCIBus
import SystemPackage

/// `VFIO_GROUP_GET_STATUS` flags (VG-02).
public struct VFIOGroupStatus: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let viable = VFIOGroupStatus(rawValue: 1 << 0)
    public static let containerSet = VFIOGroupStatus(rawValue: 1 << 1)
}

/// An open `/dev/vfio/<N>` (`struct vfio_group`, `drivers/vfio/group.c`): joins a container
/// (claiming the IOMMU group's DMA ownership), reports viability, and opens the group's VFIO
/// devices (spec §4.2–§4.7). Opened through `VFIOSystem.openGroup`.
public final class VFIOGroup: Sendable, CustomStringConvertible {
    /// The IOMMU group number, as in `/dev/vfio/<N>`.
    public let id: Int
    package let core: IOMMUCore
    let state: PThreadMutex<State>
    let directory: VFIODeviceDirectory
    private let onRelease: @Sendable (VFIOGroup) -> Void

    /// What the group joined: a type1 container (`group->container`) or an iommufd
    /// (`group->iommufd`, IOMMUFD-730).
    public enum Joined: Sendable {
        case container(VFIOContainer)
        case iommufd(IOMMUFDContext)
    }

    struct State: Sendable {
        var joined: Joined?
        var container: VFIOContainer? { if case .container(let container) = joined { container } else { nil } }
        /// The devices with an fd open, how many, and — on an iommufd — their DEVICE object
        /// (`vfio_device->open_count`, VG-33, VG-34, IOMMUFD-730).
        var openFunctions: [PCIAddress: (function: VFIOPCIFunction, openCount: Int, iommufdDevice: UInt32?)] = [:]
        /// Open device fds (`container_users - 1`, VG-13, VG-34): the open counts summed.
        var openDevices: Int { openFunctions.values.reduce(0) { $0 + $1.openCount } }
        /// `close` ran while devices were open: the release waits for the last one (device fds
        /// hold a reference to the group file).
        var closePending = false
        /// The group fd is closed: every call fails with `EBADF`.
        var closed = false
    }

    init(id: Int, core: IOMMUCore, directory: VFIODeviceDirectory, onRelease: @escaping @Sendable (VFIOGroup) -> Void) {
        self.id = id
        self.core = core
        self.directory = directory
        self.onRelease = onRelease
        state = PThreadMutex(State())
    }

    public var description: String { "VFIO group \(id)" }

    var type1Group: Type1Group { Type1Group(core: core, id: id, key: ObjectIdentifier(self)) }

    /// The type1 container the group is in, if any.
    public var container: VFIOContainer? { state.withLock { $0.container } }

    /// The iommufd the group joined as its container, if any.
    public var iommufd: IOMMUFDContext? { state.withLock { if case .iommufd(let context) = $0.joined { context } else { nil } } }

    /// `VFIO_GROUP_GET_STATUS` (VG-05): in a container or on an iommufd, `containerSet | viable`;
    /// otherwise `viable` exactly when nobody holds the group's DMA (`owner_cnt == 0`).
    public var status: VFIOGroupStatus {
        state.withLock { state in
            if state.joined != nil { return [.containerSet, .viable] }
            return GroupViability.of(group: id, in: core) == .viable ? .viable : []
        }
    }

    /// `VFIO_GROUP_SET_CONTAINER` (VG-10, VG-11): claims the group's DMA ownership for the
    /// container (`EPERM` while a kernel driver or another owner holds it, `EINVAL` for a `direct`
    /// reserved region), then attaches it if the container has its IOMMU set.
    public func setContainer(_ container: VFIOContainer) throws(VFIOError) {
        try state.withLock { (state) throws(VFIOError) in
            try checkOpen(state, "SET_CONTAINER")
            try checkNotInContainer(state)
            try iommuCall { () throws(IOMMUError) in try core.claimGroup(id, owner: container.owner) }
            do throws(VFIOError) {
                try container.add(self)
            } catch {
                try? core.releaseGroup(id)
                throw error
            }
            state.joined = .container(container)
        }
    }

    /// `VFIO_GROUP_SET_CONTAINER` with an iommufd (IOMMUFD-730, VG-12): the iommufd's compat IOAS
    /// is created when missing; no DMA ownership is claimed until a device is opened.
    public func setContainer(_ context: IOMMUFDContext) throws(VFIOError) {
        try state.withLock { (state) throws(VFIOError) in
            try checkOpen(state, "SET_CONTAINER")
            try checkNotInContainer(state)
            _ = context.ensureCompatIOAS()
            state.joined = .iommufd(context)
        }
    }

    /// `VFIO_GROUP_UNSET_CONTAINER` (VG-13): `EBUSY` while a device fd is open; detaches (T1-56),
    /// releases DMA ownership (OWN-07) and, for the last group, the container's IOMMU.
    public func unsetContainer() throws(VFIOError) {
        try state.withLock { (state) throws(VFIOError) in
            try checkOpen(state, "UNSET_CONTAINER")
            guard state.joined != nil else {
                throw VFIOError(.invalidArgument, rule: .VG_13, "\(self) UNSET_CONTAINER: not in a container")
            }
            guard state.openDevices == 0 else {
                throw VFIOError(.resourceBusy, rule: .VG_13, "\(self) UNSET_CONTAINER: \(state.openDevices) device fd(s) still open")
            }
            leaveContainer(&state)
        }
    }

    private func leaveContainer(_ state: inout State) {
        if let container = state.container {
            container.remove(self)
            // VFIO owns the group while it is in a container, so the release cannot fail.
            try? core.releaseGroup(id)
        }
        state.joined = nil
    }

    /// The group's functions a VFIO driver is bound to: the devices this group can open (VG-01).
    public var deviceAddresses: [PCIAddress] {
        guard let group = core.group(id) else { return [] }
        return group.devices.filter { core.device($0)?.driver.map(KernelDriver.isVFIO) == true }
    }

    /// `VFIO_GROUP_GET_DEVICE_FD` (VG-31..34): `name` is the device's address, optionally followed
    /// by ` vf_token=<uuid>`; the group must be in a container with its IOMMU set.
    public func openDevice(_ name: String) throws(VFIOError) -> VFIODevice {
        try state.withLock { (state) throws(VFIOError) -> VFIODevice in
            try checkOpen(state, "GET_DEVICE_FD")
            let address = try matchDevice(name)
            guard let joined = state.joined else {
                throw VFIOError(.invalidArgument, rule: .VG_32, "\(self) GET_DEVICE_FD \(address): the group is not in a container")
            }
            if case .container(let container) = joined, container.iommuType == nil {
                throw VFIOError(.invalidArgument, rule: .VG_32, "\(self) GET_DEVICE_FD \(address): \(container) has no IOMMU set")
            }
            // VG-33: the first open enables the device — on an iommufd, binds it and attaches it
            // to the compat IOAS first (IOMMUFD-730); VG-34: later ones share it.
            if let open = state.openFunctions[address] {
                state.openFunctions[address]!.openCount = open.openCount + 1
            } else {
                var iommufdDevice: UInt32?
                if case .iommufd(let context) = joined {
                    let id = try iommuCall { () throws(IOMMUFDError) in try context.bind(address, core: core) }
                    do throws(VFIOError) {
                        try iommuCall { () throws(IOMMUFDError) in try context.attachToCompatIOAS(device: id) }
                    } catch {
                        context.unbind(id)
                        throw error
                    }
                    iommufdDevice = id
                }
                let function = VFIOPCIFunction(
                    address: address, backend: directory.backends[address], driverData: directory.driverData,
                    placement: directory.resetPlacement(of: address), multiMSI: core.profile.msiDomainSupportsMultiMSI)
                state.openFunctions[address] = (function, 1, iommufdDevice)
            }
            return VFIODevice(
                function: state.openFunctions[address]!.function, group: self, container: state.container, core: core, directory: directory
            ) { [self] function in deviceClosed(function) }
        }
    }

    /// The device at `address` if an fd of this group has it open.
    func openFunction(at address: PCIAddress) -> VFIOPCIFunction? {
        state.withLock { $0.openFunctions[address]?.function }
    }

    /// VG-31: vfio-pci's `match` — the exact device name, optionally with a VF token, which no
    /// function here needs (`EINVAL` when one is given anyway).
    private func matchDevice(_ name: String) throws(VFIOError) -> PCIAddress {
        let parts = name.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = deviceAddresses.first(where: { $0.description == parts[0] }) else {
            throw VFIOError(
                .operationNotSupportedByDevice, rule: .VG_31,
                "\(self) GET_DEVICE_FD \"\(name)\": no device of the group is bound to a VFIO driver under that name (have: \(deviceAddresses.map(\.description).joined(separator: ", ")))")
        }
        if parts.count > 1 {
            throw VFIOError(
                .invalidArgument, rule: .VPCI_261, "\(self) GET_DEVICE_FD \"\(name)\": \(address) is neither an SR-IOV PF nor a VF, so it takes no vf_token")
        }
        return address
    }

    /// A device fd closed (`container_users--`); the device's last one disables it.
    func deviceClosed(_ function: VFIOPCIFunction) {
        state.withLock { state in
            let openCount = state.openFunctions[function.address]!.openCount - 1
            if openCount == 0 {
                let iommufdDevice = state.openFunctions[function.address]!.iommufdDevice
                state.openFunctions[function.address] = nil
                function.disable()
                VFIOPCIDevSet.tryReset(afterClosing: function.address, directory: directory, core: core)
                if let iommufdDevice, case .iommufd(let context) = state.joined { context.unbind(iommufdDevice) }
            } else {
                state.openFunctions[function.address]!.openCount = openCount
            }
            if state.openDevices == 0, state.closePending { release(&state) }
        }
    }

    /// `close(group fd)`: leaves the container implicitly (VG-13) — once every device fd of the
    /// group is closed too — and lets the group be opened again. Later calls do nothing.
    public func close() {
        state.withLock { state in
            guard !state.closed, !state.closePending else { return }
            if state.openDevices > 0 {
                state.closePending = true
            } else {
                release(&state)
            }
        }
    }

    private func release(_ state: inout State) {
        leaveContainer(&state)
        state.closePending = false
        state.closed = true
        onRelease(self)
    }

    /// A closed group fd answers `EBADF`, as the kernel's fd table would.
    private func checkOpen(_ state: State, _ operation: String) throws(VFIOError) {
        guard !state.closed, !state.closePending else {
            throw VFIOError(.badFileDescriptor, rule: .none, "\(self) \(operation): the group fd is closed")
        }
    }

    /// VG-10: `EINVAL` when the group is already in a container (checked before the fd's kind).
    /// VG-10's second check, for `SET_CONTAINER` on the boundary: `EINVAL` while in a container.
    package func requireNoContainer() throws(VFIOError) {
        try state.withLock { (state) throws(VFIOError) in try checkNotInContainer(state) }
    }

    func checkNotInContainer(_ state: State) throws(VFIOError) {
        switch state.joined {
        case .container(let current): throw VFIOError(.invalidArgument, rule: .VG_10, "\(self) SET_CONTAINER: already in \(current)")
        case .iommufd(let current): throw VFIOError(.invalidArgument, rule: .VG_10, "\(self) SET_CONTAINER: already on \(current)")
        case nil: break
        }
    }
}
