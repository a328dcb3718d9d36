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
            state.objects[id] = .device(BoundDevice(address: address, core: core, groupID: device.groupID))
            return id
        }
    }

    /// `iommufd_device_unbind` (IOMMUFD-601, -617): detached first, the DEVICE object goes and the
    /// group's DMA ownership is released; with the fd closed and the last device gone, the context
    /// releases its objects (IOMMUFD-115).
    public func unbind(_ id: UInt32) {
        detach(id)
        state.withLock { state in
            guard case .device(let device) = state.objects[id] else { return }
            state.objects[id] = nil
            try? device.core.releaseDevice(device.address)
            if state.fileClosed, state.boundDevices == 0 { Self.release(&state) }
        }
    }

    /// `iommufd_device_attach` / `_replace` (IOMMUFD-602..605, -621): to HWPT `ptID`, or to IOAS
    /// `ptID` through an auto domain; an attached device moves with its whole group (replace);
    /// the same HWPT again is a no-op. The HWPT ID attached.
    public func attach(device id: UInt32, to ptID: UInt32) throws(IOMMUFDError) -> UInt32 {
        try state.withLock { (state) throws(IOMMUFDError) -> UInt32 in
            let device = try state.device(id, rule: .IOMMUFD_602, "attach")
            let what = "\(self) attach \(device.address) to \(ptID)"
            switch state.objects[ptID] {
            case nil:
                throw IOMMUFDError(.noSuchFileOrDirectory, rule: .IOMMUFD_602, "\(what): no object \(ptID)")
            case .hwptPaging:
                try attach(id, device, hwpt: ptID, &state, what)
                return ptID
            case .ioas:
                return try attachAutomatic(id, device, ioas: ptID, &state, what)
            case .device:
                throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_602, "\(what): object \(ptID) is a DEVICE, which nothing attaches to")
            }
        }
    }

    /// `iommufd_device_auto_get_domain` (IOMMUFD-604): an auto HWPT of the IOAS that takes the
    /// device (`EINVAL` means "try the next"), else a new one allocated, attached and added.
    private func attachAutomatic(_ id: UInt32, _ device: BoundDevice, ioas: UInt32, _ state: inout State, _ what: String) throws(IOMMUFDError) -> UInt32 {
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
        let domain = try lowerCall { () throws(IOMMUError) in try device.core.allocatePagingDomain() }
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
    private func attach(_ id: UInt32, _ device: BoundDevice, hwpt hwptID: UInt32, _ state: inout State, _ what: String) throws(IOMMUFDError) {
        guard case .hwptPaging(var hwpt) = state.objects[hwptID] else { return }
        if let current = device.hwpt {
            guard current != hwptID else { return }
            return try replace(device, from: current, to: hwptID, &state, what)
        }
        let groupMates = groupMates(of: device, &state)
        if let other = groupMates.compactMap(\.hwpt).first, other != hwptID {
            throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_603, "\(what): IOMMU group \(device.groupID) is attached to HWPT \(other); a group shares one HWPT")
        }
        guard hwpt.domain.ops == device.core.profile.name else {
            throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_603, "\(what): HWPT \(hwptID) is a domain of IOMMU \(hwpt.domain.ops), the device is behind \(device.core.profile.name)")
        }
        let space = try state.ioas(hwpt.ioas, rule: .IOMMUFD_603, what)
        let regions = device.core.device(device.address)?.reservedRegions ?? []
        try space.reserveRegions(regions, of: device.address.description)
        if !groupMates.contains(where: { $0.hwpt == hwptID }) {
            do throws(IOMMUError) {
                try device.core.attach(hwpt.domain, toGroup: device.groupID)
            } catch {
                space.removeReservations(of: .device(device.address.description))
                throw IOMMUFDError(error)
            }
        }
        hwpt.devices.append(id)
        state.objects[hwptID] = .hwptPaging(hwpt)
        var attached = device
        attached.hwpt = hwptID
        state.objects[id] = .device(attached)
    }

    /// The other devices of `device`'s group bound to this context.
    private func groupMates(of device: BoundDevice, _ state: inout State) -> [BoundDevice] {
        state.objects.values.compactMap { object in
            if case .device(let mate) = object, mate.groupID == device.groupID, mate.core === device.core, mate.address != device.address { mate } else { nil }
        }
    }

    /// `iommufd_device_do_replace` (IOMMUFD-605): the group's reserved regions move to the new
    /// IOAS, the group switches domains, every device of the group moves; an auto HWPT left
    /// unused is destroyed.
    private func replace(_ device: BoundDevice, from oldID: UInt32, to newID: UInt32, _ state: inout State, _ what: String) throws(IOMMUFDError) {
        guard case .hwptPaging(let old) = state.objects[oldID], case .hwptPaging(var new) = state.objects[newID] else { return }
        let members = state.objects.compactMap { (key, object) -> (UInt32, BoundDevice)? in
            if case .device(let mate) = object, mate.hwpt == oldID, mate.groupID == device.groupID { (key, mate) } else { nil }
        }
        let target = try state.ioas(new.ioas, rule: .IOMMUFD_605, what)
        let before = target.reserved
        do throws(IOMMUFDError) {
            for (_, member) in members {
                try target.reserveRegions(device.core.device(member.address)?.reservedRegions ?? [], of: member.address.description)
            }
            do throws(IOMMUError) {
                try device.core.detach(old.domain, fromGroup: device.groupID)
                do throws(IOMMUError) {
                    try device.core.attach(new.domain, toGroup: device.groupID)
                } catch {
                    try? device.core.attach(old.domain, toGroup: device.groupID)
                    throw error
                }
            } catch {
                throw IOMMUFDError(error)
            }
        } catch {
            target.restore(reservations: before)
            throw error
        }
        // Both HWPTs on one IOAS: the members' regions stay, reserved for the new owner too.
        if old.ioas != new.ioas, case .ioas(let source) = state.objects[old.ioas] {
            for (_, member) in members { source.removeReservations(of: .device(member.address.description)) }
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
        state.withLock { state in detach(id, &state, destroyingAutomatic: true) }
    }

    private func detach(_ id: UInt32, _ state: inout State, destroyingAutomatic: Bool) {
        guard case .device(var device) = state.objects[id], let hwptID = device.hwpt, case .hwptPaging(var hwpt) = state.objects[hwptID] else { return }
        hwpt.devices.removeAll { $0 == id }
        if case .ioas(let space) = state.objects[hwpt.ioas] { space.removeReservations(of: .device(device.address.description)) }
        if !groupMates(of: device, &state).contains(where: { $0.hwpt == hwptID }) {
            // Back to the blocking domain: the group stays owned.
            try? device.core.detach(hwpt.domain, fromGroup: device.groupID)
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
    /// `EOPNOTSUPP`: the simulated IOMMUs do not nest), then `flags` and driver data, which the
    /// simulated IOMMUs refuse (`EOPNOTSUPP`: no dirty tracking, nesting parents, fault queues or
    /// PASID). The HWPT's ID.
    public func allocateHWPT(device deviceID: UInt32, ioas ptID: UInt32, flags: UInt32 = 0, driverData: Bool = false) throws(IOMMUFDError) -> UInt32 {
        try state.withLock { (state) throws(IOMMUFDError) -> UInt32 in
            let device = try state.device(deviceID, rule: .IOMMUFD_501, "HWPT_ALLOC")
            guard let pt = state.objects[ptID] else {
                throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_501, "HWPT_ALLOC: pt_id \(ptID) names no object")
            }
            if case .hwptPaging = pt {
                // iommufd_hwpt_nested_alloc: no driver data or no domain_alloc_nested.
                throw IOMMUFDError(.notSupported, rule: .IOMMUFD_504, "HWPT_ALLOC: pt_id \(ptID) is a paging HWPT, which asks for a nested HWPT; the simulated IOMMUs do not nest")
            }
            guard case .ioas(let space) = pt else {
                throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_501, "HWPT_ALLOC: pt_id \(ptID) is a \(pt.typeName); a paging HWPT is allocated on an IOAS")
            }
            guard flags == 0, !driverData else {
                throw IOMMUFDError(
                    .notSupported, rule: .IOMMUFD_502,
                    "HWPT_ALLOC: flags 0x\(String(flags, radix: 16))\(driverData ? " with driver data" : ""): the simulated IOMMUs allocate plain paging domains only (no nesting, dirty tracking, fault queues or PASID)")
            }
            let domain = try lowerCall { () throws(IOMMUError) in try device.core.allocatePagingDomain() }
            let id = state.freeID()
            try space.addDomain(domain, hwpt: id)
            state.objects[id] = .hwptPaging(HWPTPaging(ioas: ptID, domain: domain, automatic: false))
            return id
        }
    }

    /// The bound device behind `id` (`IOMMU_GET_HW_INFO`, IOMMUFD-630): its address and the IOMMU
    /// profile it sits behind; `ENOENT` when `id` is no DEVICE.
    public func boundDevice(_ id: UInt32) throws(IOMMUFDError) -> (address: PCIAddress, profile: PlatformProfile) {
        try state.withLock { (state) throws(IOMMUFDError) in
            let device = try state.device(id, rule: .IOMMUFD_630, "GET_HW_INFO")
            return (device.address, device.core.profile)
        }
    }
}
