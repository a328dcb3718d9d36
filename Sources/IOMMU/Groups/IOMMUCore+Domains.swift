import KernelRules
import PCIBus
import SystemPackage

/// Domain attach core (DOM-01..03, RD-02, OWN-09): `__iommu_group_set_domain`,
/// `iommu_attach_group`, `iommu_detach_group`, `iommu_attach_device`.
extension IOMMUCore {
    /// `iommu_paging_domain_alloc`: an empty `unmanaged` domain of this IOMMU, for a user to map.
    public func allocatePagingDomain() throws(IOMMUError) -> IOMMUDomain {
        try IOMMUDomain(type: .unmanaged, profile: profile)
    }

    /// `iommu_attach_group` (DOM-01).
    public func attach(_ domain: IOMMUDomain, toGroup id: Int) throws(IOMMUError) {
        try perform { (state) throws(IOMMUError) in try state.attach(domain, groupID: id) }
    }

    /// `iommu_detach_group` (DOM-02): back to the blocking domain if owned, else the default domain.
    public func detach(_ domain: IOMMUDomain, fromGroup id: Int) throws(IOMMUError) {
        try perform { (state) throws(IOMMUError) in try state.detach(domain, groupID: id) }
    }

    /// `iommu_attach_device` (DOM-03): only for a group of exactly one device.
    public func attach(_ domain: IOMMUDomain, toDevice address: PCIAddress) throws(IOMMUError) {
        try perform { (state) throws(IOMMUError) in
            let device = try state.device(address)
            let count = try state.group(device.groupID).devices.count
            guard count == 1 else {
                throw IOMMUError(
                    .invalidArgument, rule: .DOM_03,
                    "attach device \(address): group \(device.groupID) has \(count) devices; attach the group instead")
            }
            try state.attach(domain, groupID: device.groupID)
        }
    }

    /// `pci_dev_reset_iommu_prepare` (OWN-09): domain changes of the group fail with `EBUSY` until
    /// `finishReset`.
    public func prepareReset(of address: PCIAddress) throws(IOMMUError) {
        try perform { (state) throws(IOMMUError) in
            let id = try state.device(address).groupID
            state.groups[id]!.recoveryCount += 1
        }
    }

    /// `pci_dev_reset_iommu_done` (OWN-09).
    public func finishReset(of address: PCIAddress) throws(IOMMUError) {
        try perform { (state) throws(IOMMUError) in
            let id = try state.device(address).groupID
            guard state.groups[id]!.recoveryCount > 0 else {
                throw IOMMUError(.invalidArgument, rule: .OWN_09, "group \(id): no reset in progress")
            }
            state.groups[id]!.recoveryCount -= 1
        }
    }
}

extension IOMMUCore.State {
    mutating func attach(_ domain: IOMMUDomain, groupID id: Int) throws(IOMMUError) {
        let group = try group(id)
        if let current = group.domain, current != group.defaultDomain, current != group.blockingDomain {
            throw IOMMUError(
                .resourceBusy, rule: .DOM_01, "attach \(domain) to group \(id): the group is already attached to \(current)")
        }
        guard domain.ops == profile.name else {
            throw IOMMUError(
                .invalidArgument, rule: .DOM_01,
                "attach \(domain) to group \(id): the domain belongs to IOMMU \(domain.ops), the group to \(profile.name)")
        }
        try setDomain(domain, groupID: id)
    }

    mutating func detach(_ domain: IOMMUDomain, groupID id: Int) throws(IOMMUError) {
        let group = try group(id)
        guard group.domain == domain else {
            throw IOMMUError(
                .invalidArgument, rule: .DOM_02, "detach \(domain) from group \(id): the group is attached to \(group.domain.map { "\($0)" } ?? "nothing")")
        }
        // `__iommu_group_set_core_domain` cannot fail: no OWN-09 or RD-02 refusal on the way back.
        try setDomain(group.owner != nil ? group.blockingDomain! : group.defaultDomain!, groupID: id, internalMustSucceed: true)
    }

    /// `__iommu_group_set_domain`: every device must accept the domain (RD-02) before any switches.
    /// `internalMustSucceed` is the core's own must-succeed path: no OWN-09 or RD-02 refusal.
    mutating func setDomain(_ domain: IOMMUDomain, groupID id: Int, internalMustSucceed: Bool = false) throws(IOMMUError) {
        let group = try group(id)
        guard group.recoveryCount == 0 || internalMustSucceed else {
            throw IOMMUError(.resourceBusy, rule: .OWN_09, "group \(id): a PCI reset is in progress; domain changes wait for it")
        }
        // The must-succeed path (release back to the default domain) skips the checks, as the
        // kernel's IOMMU_SET_DOMAIN_MUST_SUCCEED does.
        for address in group.devices where devices[address]!.requireDirect && !internalMustSucceed {
            // RD-02: a device with a `direct` region may never sit on a blocking domain.
            if domain.type == .blocked || domain == group.blockingDomain {
                warn(
                    address,
                    "Firmware has requested this device have a 1:1 IOMMU mapping, rejecting configuring the device without a 1:1 mapping. Contact your platform vendor.")
                throw IOMMUError(
                    .invalidArgument, rule: .RD_02,
                    "group \(id): \(address) has a direct reserved region (firmware requires a 1:1 mapping), so it cannot be attached to the blocking \(domain)")
            }
        }
        groups[id]!.domain = domain
    }
}
