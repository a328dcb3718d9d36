import KernelRules
import PCIBus
import SystemPackage

/// DMA ownership (OWN-01..08): kernel drivers through use/unuse of the default domain, users
/// (VFIO, iommufd) through claim/release of the group or of single devices.
extension IOMMUCore {
    /// `iommu_group_claim_dma_owner` (OWN-04, OWN-05, RD-03): the VFIO group path.
    public func claimGroup(_ id: Int, owner: DMAOwner) throws(IOMMUError) {
        try perform { (state) throws(IOMMUError) in
            let group = try state.group(id)
            guard group.ownerCount == 0 else {
                throw IOMMUError(.notPermitted, rule: .OWN_04, "claim group \(id) for \(owner): \(state.holders(of: group))")
            }
            try state.takeOwnership(groupID: id, owner: owner)
        }
    }

    /// `iommu_group_release_dma_owner` (OWN-07): drops every claim and re-attaches the default domain.
    public func releaseGroup(_ id: Int) throws(IOMMUError) {
        try perform { (state) throws(IOMMUError) in
            let group = try state.group(id)
            guard group.owner != nil else {
                throw IOMMUError(.invalidArgument, rule: .OWN_07, "release group \(id): no user owns its DMA")
            }
            state.releaseOwnership(groupID: id)
        }
    }

    /// `iommu_device_claim_dma_owner` (OWN-06): the iommufd / VFIO cdev path; devices of one group
    /// bound to the same owner share the claim.
    public func claimDevice(_ address: PCIAddress, owner: DMAOwner) throws(IOMMUError) {
        try perform { (state) throws(IOMMUError) in
            let id = try state.device(address).groupID
            let group = state.groups[id]!
            if group.ownerCount != 0 {
                guard group.owner == owner else {
                    throw IOMMUError(.notPermitted, rule: .OWN_06, "claim \(address) for \(owner): \(state.holders(of: group))")
                }
                state.groups[id]!.ownerCount += 1
                return
            }
            try state.takeOwnership(groupID: id, owner: owner)
        }
    }

    /// `iommu_device_release_dma_owner` (OWN-07): the last claim releases the group.
    public func releaseDevice(_ address: PCIAddress) throws(IOMMUError) {
        try perform { (state) throws(IOMMUError) in
            let id = try state.device(address).groupID
            let group = state.groups[id]!
            guard group.owner != nil else {
                throw IOMMUError(.invalidArgument, rule: .OWN_07, "release \(address): no user owns group \(id)'s DMA")
            }
            if group.ownerCount > 1 {
                state.groups[id]!.ownerCount -= 1
            } else {
                state.releaseOwnership(groupID: id)
            }
        }
    }
}

extension IOMMUCore.State {
    /// `__iommu_take_dma_ownership` (OWN-05): the blocking domain is allocated on first use and
    /// attached to every device (RD-02 can refuse), then `owner_cnt` becomes 1.
    mutating func takeOwnership(groupID id: Int, owner: DMAOwner) throws(IOMMUError) {
        let group = groups[id]!
        if let current = group.domain, current != group.defaultDomain {
            throw IOMMUError(
                .resourceBusy, rule: .OWN_05, "claim group \(id) for \(owner): the group is attached to \(current), not its default domain")
        }
        let blocking: IOMMUDomain
        if let existing = group.blockingDomain { blocking = existing } else { blocking = try allocateBlockingDomain() }
        groups[id]!.blockingDomain = blocking
        do {
            try setDomain(blocking, groupID: id)
        } catch {
            groups[id]!.blockingDomain = group.blockingDomain
            throw error
        }
        groups[id]!.owner = owner
        groups[id]!.ownerCount += 1
    }

    /// The driver's static blocked domain, or an empty paging domain where it has none (OWN-05).
    private func allocateBlockingDomain() throws(IOMMUError) -> IOMMUDomain {
        try IOMMUDomain(type: profile.supportsBlockedDomain ? .blocked : .unmanaged, profile: profile)
    }

    mutating func releaseOwnership(groupID id: Int) {
        groups[id]!.owner = nil
        groups[id]!.ownerCount = 0
        // Must-succeed path: cannot throw with `internalMustSucceed`.
        try! setDomain(groups[id]!.defaultDomain!, groupID: id, internalMustSucceed: true)
    }

    /// Who holds a group, for EPERM/EBUSY messages.
    func holders(of group: IOMMUGroup) -> String {
        if let owner = group.owner { return "DMA ownership is claimed by \(owner) (owner_cnt \(group.ownerCount))" }
        let drivers = group.devices.compactMap { address in
            devices[address]?.driver.flatMap { KernelDriver.managesDMA($0) ? nil : "\(address) is bound to \($0)" }
        }
        return drivers.joined(separator: ", ") + " (kernel DMA API user, owner_cnt \(group.ownerCount))"
    }
}
