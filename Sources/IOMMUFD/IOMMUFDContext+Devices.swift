import Locking
import SystemPackage
import IOMMU
import KernelRules
import PCIBus

/// The device API (`device.c`, §6.1) the VFIO device cdev and VFIO's group path on iommufd call,
/// and `IOMMU_HWPT_ALLOC` (§5.1).
extension IOMMUFDContext {
    /// `iommufd_device_bind` (IOMMUFD-600): `EINVAL` when the IOMMU cannot enforce cache
    /// coherency, `ENODEV` without a group, `EPERM` without interrupt isolation (unless
    /// `allowUnsafeInterrupts`), then the group's DMA ownership for this context (`EPERM` held
    /// elsewhere or by a kernel driver, `EBUSY`); the DEVICE object's ID. DMA is now blocked.
    public func bind(_ address: PCIAddress, core: IOMMUCore) throws(IOMMUFDError) -> UInt32 {
        let what = "\(self) bind \(address)"
        guard core.profile.enforcesCacheCoherency else {
            throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_600, "\(what): IOMMU \(core.profile.name) cannot enforce cache coherency (IOMMU_CAP_CACHE_COHERENCY)")
        }
        guard let device = core.device(address) else {
            throw IOMMUFDError(.operationNotSupportedByDevice, rule: .IOMMUFD_600, "\(what): the function has no IOMMU group")
        }
        guard core.profile.interruptRemapping || allowUnsafeInterrupts else {
            throw IOMMUFDError(
                .notPermitted, rule: .IOMMUFD_600,
                "\(what): IOMMU group \(device.groupID) has no isolated MSI (no interrupt remapping); set iommufd.allow_unsafe_interrupts to bind anyway")
        }
        return try state.withLock { (state) throws(IOMMUFDError) -> UInt32 in
            guard !state.fileClosed else { throw IOMMUFDError(.badFileDescriptor, rule: .IOMMUFD_116, "\(what): the iommufd is closed") }
            try lowerCall { () throws(IOMMUError) in try core.claimDevice(address, owner: owner) }
            let id = state.freeID()
            state.objects[id] = .device(BoundDevice(backend: .pci(address: address, core: core, groupID: device.groupID)))
            return id
        }
    }

    /// `iommufd_device_unbind` (IOMMUFD-601, -617): detached first, the DEVICE object goes and the
    /// group's DMA ownership is released; with the fd closed and the last device gone, the context
    /// releases its objects (IOMMUFD-115).
    public func unbind(_ id: UInt32) {
        state.withLock { state in
            Self.unbind(id, &state)
            if state.fileClosed, state.holders == 0 { Self.release(&state) }
        }
    }

    /// `iommufd_device_detach` then `iommufd_device_unbind` under the lock.
    static func unbind(_ id: UInt32, _ state: inout State) {
        detach(id, &state, destroyingAutomatic: true)
        guard case .device(let device) = state.objects[id] else { return }
        state.objects[id] = nil
        device.backend.release()
    }

    /// `iommufd_device_attach` / `_replace` (IOMMUFD-602..605, -621): to HWPT `ptID`, or to IOAS
    /// `ptID` through an auto domain; an attached device moves with its whole group (replace);
    /// the same HWPT again is a no-op. The HWPT ID attached.
    public func attach(device id: UInt32, to ptID: UInt32) throws(IOMMUFDError) -> UInt32 {
        try state.withLock { (state) throws(IOMMUFDError) -> UInt32 in
            let device = try state.device(id, rule: .IOMMUFD_602, "attach")
            return try Self.attach(device: id, device, to: ptID, &state, "\(self) attach \(device.name) to \(ptID)")
        }
    }

    /// `iommufd_device_change_pt` by `pt_id`'s type (IOMMUFD-602): an HWPT directly, an IOAS through
    /// an auto domain; `ENOENT` for no object, `EINVAL` for one nothing attaches to.
    static func attach(device id: UInt32, _ device: BoundDevice, to ptID: UInt32, _ state: inout State, _ what: String) throws(IOMMUFDError) -> UInt32 {
        switch state.objects[ptID] {
        case nil, .reserved:
            throw IOMMUFDError(.noSuchFileOrDirectory, rule: .IOMMUFD_602, "\(what): no object \(ptID)")
        case .hwptPaging:
            try attach(id, device, hwpt: ptID, &state, what)
            return ptID
        case .ioas:
            return try attachAutomatic(id, device, ioas: ptID, &state, what)
        case .some(let object):
            throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_602, "\(what): object \(ptID) is a \(object.typeName), which nothing attaches to")
        }
    }

    /// `iommufd_device_auto_get_domain` (IOMMUFD-604): an auto HWPT of the IOAS that takes the
    /// device (`EINVAL` means "try the next"), else a new one allocated, attached and added.
    private static func attachAutomatic(_ id: UInt32, _ device: BoundDevice, ioas: UInt32, _ state: inout State, _ what: String) throws(IOMMUFDError) -> UInt32 {
        let candidates = state.objects.keys.sorted().filter { key in
            if case .hwptPaging(let hwpt) = state.objects[key] { hwpt.ioas == ioas && hwpt.automatic } else { false }
        }
        for candidate in candidates {
            do throws(IOMMUFDError) {
                try attach(id, device, hwpt: candidate, &state, what)
                return candidate
            } catch where error.errno == .invalidArgument {
                continue
            }
        }
        let domain = try allocateDomain(for: device.backend, flags: [], dataType: 0, pageTable: 0)
        let hwptID = state.freeID()
        state.objects[hwptID] = .hwptPaging(HWPTPaging(ioas: ioas, domain: domain, automatic: true))
        do throws(IOMMUFDError) {
            try attach(id, device, hwpt: hwptID, &state, what)
            let space = try state.ioas(ioas, rule: .IOMMUFD_604, what)
            do throws(IOMMUFDError) {
                try space.addDomain(domain, hwpt: hwptID)
            } catch {
                detach(id, &state, destroyingAutomatic: false)
                throw error
            }
        } catch {
            state.objects[hwptID] = nil
            throw error
        }
        return hwptID
    }

    /// `iommufd_hw_pagetable_attach` (IOMMUFD-603), or replace when the device is attached
    /// (IOMMUFD-605).
    private static func attach(_ id: UInt32, _ device: BoundDevice, hwpt hwptID: UInt32, _ state: inout State, _ what: String) throws(IOMMUFDError) {
        guard case .hwptPaging(var hwpt) = state.objects[hwptID] else { return }
        if let current = device.hwpt {
            guard current != hwptID else { return }
            return try replace(device, from: current, to: hwptID, &state, what)
        }
        let groupMates = groupMates(of: device, &state)
        if let other = groupMates.compactMap(\.hwpt).first, other != hwptID {
            throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_603, "\(what): \(device.backend.groupDescription) is attached to HWPT \(other); a group shares one HWPT")
        }
        guard device.backend.owns(hwpt.domain) else {
            throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_603, "\(what): HWPT \(hwptID) is a domain of IOMMU \(hwpt.domain.ops), the device is behind \(device.backend.profile.name)")
        }
        try checkPASIDCompatible(hwpt, hwptID, device, what)
        let space = try state.ioas(hwpt.ioas, rule: .IOMMUFD_603, what)
        try space.reserveRegions(device.backend.reservedRegions, of: device.name)
        if !groupMates.contains(where: { $0.hwpt == hwptID }) {
            do throws(IOMMUFDError) {
                try device.backend.attach(hwpt)
            } catch {
                space.removeReservations(of: .device(device.name))
                throw error
            }
        }
        hwpt.devices.append(id)
        state.objects[hwptID] = .hwptPaging(hwpt)
        var attached = device
        attached.hwpt = hwptID
        state.objects[id] = .device(attached)
    }

    /// The other devices of `device`'s group bound to this context.
    private static func groupMates(of device: BoundDevice, _ state: inout State) -> [BoundDevice] {
        state.objects.values.compactMap { object in
            if case .device(let mate) = object, mate.backend.group == device.backend.group, mate.name != device.name { mate } else { nil }
        }
    }

    /// `iommufd_device_do_replace` (IOMMUFD-605): the group's reserved regions move to the new
    /// IOAS, the group switches domains, every device of the group moves; an auto HWPT left
    /// unused is destroyed.
    private static func replace(_ device: BoundDevice, from oldID: UInt32, to newID: UInt32, _ state: inout State, _ what: String) throws(IOMMUFDError) {
        guard case .hwptPaging(let old) = state.objects[oldID], case .hwptPaging(var new) = state.objects[newID] else { return }
        let members = state.objects.compactMap { (key, object) -> (UInt32, BoundDevice)? in
            if case .device(let mate) = object, mate.hwpt == oldID, mate.backend.group == device.backend.group { (key, mate) } else { nil }
        }
        let target = try state.ioas(new.ioas, rule: .IOMMUFD_605, what)
        let before = target.reserved
        do throws(IOMMUFDError) {
            for (_, member) in members {
                try target.reserveRegions(member.backend.reservedRegions, of: member.name)
            }
            try checkPASIDCompatible(new, newID, device, what)
            guard device.backend.owns(new.domain) else {
                throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_605, "\(what): HWPT \(newID) is a domain of IOMMU \(new.domain.ops), the device is behind \(device.backend.profile.name)")
            }
            try device.backend.replace(old, with: new)
        } catch {
            target.restore(reservations: before)
            throw error
        }
        // Both HWPTs on one IOAS: the members' regions stay, reserved for the new owner too.
        if old.ioas != new.ioas, case .ioas(let source) = state.objects[old.ioas] {
            for (_, member) in members { source.removeReservations(of: .device(member.name)) }
        }
        for (key, var member) in members {
            member.hwpt = newID
            state.objects[key] = .device(member)
            new.devices.append(key)
        }
        state.objects[newID] = .hwptPaging(new)
        var emptied = old
        emptied.devices.removeAll { key in members.contains { $0.0 == key } }
        if emptied.devices.isEmpty, emptied.automatic {
            Self.removeHWPT(oldID, emptied, &state)
        } else {
            state.objects[oldID] = .hwptPaging(emptied)
        }
    }

    /// `iommufd_device_detach` (IOMMUFD-606, -624): a device not attached is a silent success.
    public func detach(_ id: UInt32) {
        state.withLock { state in Self.detach(id, &state, destroyingAutomatic: true) }
    }

    static func detach(_ id: UInt32, _ state: inout State, destroyingAutomatic: Bool) {
        guard case .device(var device) = state.objects[id], let hwptID = device.hwpt, case .hwptPaging(var hwpt) = state.objects[hwptID] else { return }
        hwpt.devices.removeAll { $0 == id }
        if case .ioas(let space) = state.objects[hwpt.ioas] { space.removeReservations(of: .device(device.name)) }
        if !groupMates(of: device, &state).contains(where: { $0.hwpt == hwptID }) {
            // Back to the blocking domain: the group stays owned.
            device.backend.detach(hwpt.domain)
        }
        device.hwpt = nil
        state.objects[id] = .device(device)
        if hwpt.devices.isEmpty, hwpt.automatic, destroyingAutomatic {
            Self.removeHWPT(hwptID, hwpt, &state)
        } else {
            state.objects[hwptID] = .hwptPaging(hwpt)
        }
    }

    /// The HWPT a bound device is attached to.
    public func attachedHWPT(device id: UInt32) -> UInt32? {
        state.withLock { state in if case .device(let device) = state.objects[id] { device.hwpt } else { nil } }
    }

    /// `IOMMU_HWPT_ALLOC` of a paging HWPT (IOMMUFD-501, -502) on IOAS `ptID` for the IOMMU of
    /// device `deviceID`: not attached, already added to the IOAS (its aperture reserved, its
    /// areas mapped). In `iommufd_hwpt_alloc`'s order: the device (`ENOENT`), `pt_id` (`EINVAL`
    /// for none, or for an object nothing is allocated on; a paging HWPT asks for a nested HWPT,
    /// `EOPNOTSUPP`: nesting is not modelled), then `flags` and driver data. The machine's IOMMUs
    /// refuse any (`EOPNOTSUPP`: no dirty tracking, nesting parents, fault queues or PASID); the
    /// selftest's mock IOMMU takes NEST_PARENT, DIRTY_TRACKING and PASID and its
    /// `IOMMU_HWPT_DATA_SELFTEST` data (IOMMUFD-804), read through `userData` only when its turn
    /// comes. The HWPT's ID.
    public func allocateHWPT(
        device deviceID: UInt32, ioas ptID: UInt32, flags: UInt32 = 0, driverData: Bool = false, userData: HWPTUserData? = nil
    ) throws(IOMMUFDError) -> UInt32 {
        try state.withLock { (state) throws(IOMMUFDError) -> UInt32 in
            let device = try state.device(deviceID, rule: .IOMMUFD_501, "HWPT_ALLOC")
            guard let pt = state.objects[ptID], !pt.isReserved else {
                throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_501, "HWPT_ALLOC: pt_id \(ptID) names no object")
            }
            if case .hwptPaging = pt {
                // iommufd_hwpt_nested_alloc: no driver data or no domain_alloc_nested.
                throw IOMMUFDError(.notSupported, rule: .IOMMUFD_504, "HWPT_ALLOC: pt_id \(ptID) is a paging HWPT, which asks for a nested HWPT; the simulated IOMMUs do not nest")
            }
            guard case .ioas(let space) = pt else {
                throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_501, "HWPT_ALLOC: pt_id \(ptID) is a \(pt.typeName); a paging HWPT is allocated on an IOAS")
            }
            let hwpt: HWPTPaging
            switch device.backend {
            case .pci:
                guard flags == 0, !driverData, userData == nil else {
                    throw IOMMUFDError(
                        .notSupported, rule: .IOMMUFD_502,
                        "HWPT_ALLOC: flags 0x\(String(flags, radix: 16))\(driverData || userData != nil ? " with driver data" : ""): the simulated IOMMUs allocate plain paging domains only (no nesting, dirty tracking, fault queues or PASID)")
                }
                hwpt = HWPTPaging(ioas: ptID, domain: try Self.allocateDomain(for: device.backend, flags: [], dataType: 0, pageTable: 0), automatic: false)
            case .mock(let mock):
                hwpt = try Self.allocateMockHWPT(for: mock, ioas: ptID, flags: HWPTAllocFlags(rawValue: flags), userData: userData)
            }
            let id = state.freeID()
            try space.addDomain(hwpt.domain, hwpt: id, dirty: hwpt.dirty)
            state.objects[id] = .hwptPaging(hwpt)
            return id
        }
    }

    /// `iommufd_hwpt_paging_alloc`'s checks (IOMMUFD-502) and `mock_domain_alloc_paging_flags`
    /// with its user data (IOMMUFD-804). A valid `fault_id` names a fault queue, which the
    /// simulation has none of (`ENOENT`, IOMMUFD-501 step 6).
    private static func allocateMockHWPT(for mock: IOMMUFDMockDevice, ioas: UInt32, flags: HWPTAllocFlags, userData: HWPTUserData?) throws(IOMMUFDError) -> HWPTPaging {
        let what = "HWPT_ALLOC for \(mock)"
        let known: HWPTAllocFlags = [.nestParent, .dirtyTracking, .faultIDValid, .pasid]
        guard known.isSuperset(of: flags) else {
            throw IOMMUFDError(.notSupported, rule: .IOMMUFD_502, "\(what): unknown flags 0x\(String(flags.subtracting(known).rawValue, radix: 16))")
        }
        if flags.contains(.dirtyTracking), !mock.tracksDirty {
            throw IOMMUFDError(.notSupported, rule: .IOMMUFD_502, "\(what): DIRTY_TRACKING, but the device's IOMMU has no IOMMU_CAP_DIRTY_TRACKING (MOCK_FLAGS_DEVICE_NO_DIRTY)")
        }
        if flags.contains(.faultIDValid), flags.contains(.nestParent) {
            throw IOMMUFDError(.notSupported, rule: .IOMMUFD_502, "\(what): FAULT_ID_VALID with NEST_PARENT")
        }
        var pageTable: UInt32 = 0
        let driverFlags = flags.subtracting(.faultIDValid)
        try IOMMUFDMockIOMMU.checkAllocation(for: mock, flags: driverFlags, dataType: userData?.type ?? 0)
        if let userData {
            // iommu_copy_struct_from_user(&user_cfg, user_data, IOMMU_HWPT_DATA_SELFTEST, iotlb).
            guard userData.length >= 4 else {
                throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_804, "\(what): data_len \(userData.length) is shorter than struct iommu_hwpt_selftest's iotlb (4)")
            }
            let bytes = try userData.read()
            if bytes.count >= 8 { pageTable = bytes[4..<8].reversed().reduce(0) { $0 << 8 | UInt32($1) } }
        }
        let domain = try IOMMUFDMockIOMMU.allocateDomain(for: mock, pageTable: pageTable)
        if flags.contains(.faultIDValid) {
            throw IOMMUFDError(.noSuchFileOrDirectory, rule: .IOMMUFD_501, "\(what): FAULT_ID_VALID, but fault queues are not modelled: no fault object")
        }
        return HWPTPaging(
            ioas: ioas, domain: domain, automatic: false, nestParent: flags.contains(.nestParent),
            dirty: flags.contains(.dirtyTracking) ? IOMMUFDDirtyTracker() : nil, pasidCompatible: flags.contains(.pasid))
    }

    /// The domain an auto HWPT gets (`iommufd_hwpt_paging_alloc` with flags 0): the device's
    /// IOMMU's plain paging domain.
    static func allocateDomain(for backend: IOMMUFDDeviceBackend, flags: HWPTAllocFlags, dataType: UInt32, pageTable: UInt32) throws(IOMMUFDError) -> IOMMUDomain {
        switch backend {
        case .pci(_, let core, _): return try lowerCall { () throws(IOMMUError) in try core.allocatePagingDomain() }
        case .mock(let device):
            try IOMMUFDMockIOMMU.checkAllocation(for: device, flags: flags, dataType: dataType)
            return try IOMMUFDMockIOMMU.allocateDomain(for: device, pageTable: pageTable)
        }
    }

    /// The bound device behind `id` (`IOMMU_GET_HW_INFO`, IOMMUFD-630): its PCI address (nil on
    /// the mock bus) and the IOMMU profile it sits behind; `ENOENT` when `id` is no DEVICE.
    public func boundDevice(_ id: UInt32) throws(IOMMUFDError) -> (address: PCIAddress?, profile: PlatformProfile) {
        try state.withLock { (state) throws(IOMMUFDError) in
            let device = try state.device(id, rule: .IOMMUFD_630, "GET_HW_INFO")
            return (device.backend.address, device.backend.profile)
        }
    }

    /// The mock device behind DEVICE `id`, nil for a PCI function; `ENOENT` when `id` is no DEVICE.
    public func mockDevice(_ id: UInt32, rule: RuleID) throws(IOMMUFDError) -> IOMMUFDMockDevice? {
        try state.withLock { (state) throws(IOMMUFDError) in try state.device(id, rule: rule, "mock device lookup").backend.mockDevice }
    }
}

/// `struct iommu_user_data` of `IOMMU_HWPT_ALLOC`: its type and length, and how to copy it in
/// (`copy_struct_from_user`: `EFAULT`, `E2BIG`) when the driver reads it.
public struct HWPTUserData {
    public let type: UInt32
    public let length: UInt32
    public let read: () throws(IOMMUFDError) -> [UInt8]

    public init(type: UInt32, length: UInt32, read: @escaping () throws(IOMMUFDError) -> [UInt8]) {
        self.type = type
        self.length = length
        self.read = read
    }
}
