import KernelRules
import PCIBus
import SystemPackage

/// Default domains: `iommu_setup_default_domain` at probe and on a write to
/// `/sys/kernel/iommu_groups/N/type` (`iommu_group_store_type`, DT-01..09), with the direct
/// mappings of RR-05.
extension IOMMUCore {
    /// A write to the group's sysfs `type` file. `capable` stands for holding both
    /// `CAP_SYS_ADMIN` and `CAP_SYS_RAWIO`. Returns the group's new `type` text.
    @discardableResult
    public func writeDefaultDomainType(group id: Int, _ text: String, capable: Bool = true) throws(IOMMUError) -> String {
        try perform { (state) throws(IOMMUError) -> String in
            try state.storeType(groupID: id, text, capable: capable)
            return state.groups[id]!.sysfsType
        }
    }
}

extension IOMMUCore.State {
    /// `iommu_group_store_type`, checks in the kernel's order.
    mutating func storeType(groupID id: Int, _ text: String, capable: Bool) throws(IOMMUError) {
        guard capable else {  // DT-01
            throw IOMMUError(.permissionDenied, rule: .DT_01, "group \(id) type: needs CAP_SYS_ADMIN and CAP_SYS_RAWIO")
        }
        guard let group = groups[id], let current = group.defaultDomain else {  // DT-02
            throw IOMMUError(.invalidArgument, rule: .DT_02, "group \(id) type: the group has no default domain")
        }
        // DT-03: sysfs_streq, so one trailing newline is accepted.
        let word = text.hasSuffix("\n") ? String(text.dropLast()) : text
        let requested: IOMMUDomainType?
        switch word {
        case "identity": requested = .identity
        case "DMA": requested = .dma
        case "DMA-FQ": requested = .dmaFQ
        case "auto": requested = nil
        default:
            throw IOMMUError(
                .invalidArgument, rule: .DT_03, "group \(id) type: \"\(word)\" is not one of identity, DMA, DMA-FQ, auto")
        }
        // DT-04: a flush queue comes up without tearing the domain down.
        if requested == .dmaFQ, current.type == .dma {
            current.convertToFlushQueue()
            return
        }
        guard !group.devices.isEmpty, group.ownerCount == 0 else {  // DT-05
            throw IOMMUError(
                .notPermitted, rule: .DT_05,
                "group \(id) type: the group's DMA is in use (\(holders(of: group))); unbind its drivers first")
        }
        try setUpDefaultDomain(groupID: id, requested: requested)
    }

    /// `iommu_setup_default_domain` (DT-06..09, RR-05): picks the type, reuses a default domain of
    /// that type (DT-07), else allocates one, identity-maps its devices' direct regions and moves
    /// the group onto it. `requested` nil is the kernel's 0: at probe (`bus_iommu_probe`) and for `auto`.
    mutating func setUpDefaultDomain(groupID id: Int, requested: IOMMUDomainType?) throws(IOMMUError) {
        let group = groups[id]!
        let (type, fallbackWarning) = allocationType(try defaultDomainType(for: group, requested: requested))
        if let fallbackWarning { warnCore(fallbackWarning) }
        if let current = group.defaultDomain, current.type == type { return }  // DT-07
        if type == .identity, !profile.supportsIdentity {  // DT-08
            throw IOMMUError(.notSupported, rule: .DT_08, "group \(id) type: \(profile.title) has no identity domain")
        }
        let domain = try IOMMUDomain(type: type, profile: profile)
        if type.isDMAAPI {
            for address in group.devices { try createDirectMappings(for: devices[address]!, in: domain) }
        }
        groups[id]!.defaultDomain = domain
        groups[id]!.domain = domain
    }
}
