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
            throw IOMMUError(.permissionDenied, rule: "DT-01", "group \(id) type: needs CAP_SYS_ADMIN and CAP_SYS_RAWIO")
        }
        guard let group = groups[id], let current = group.defaultDomain else {  // DT-02
            throw IOMMUError(.invalidArgument, rule: "DT-02", "group \(id) type: the group has no default domain")
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
                .invalidArgument, rule: "DT-03", "group \(id) type: \"\(word)\" is not one of identity, DMA, DMA-FQ, auto")
        }
        // DT-04: a flush queue comes up without tearing the domain down.
        if requested == .dmaFQ, current.type == .dma {
            current.convertToFlushQueue()
            return
        }
        guard !group.devices.isEmpty, group.ownerCount == 0 else {  // DT-05
            throw IOMMUError(
                .notPermitted, rule: "DT-05",
                "group \(id) type: the group's DMA is in use (\(holders(of: group))); unbind its drivers first")
        }
        try setUpDefaultDomain(groupID: id, requested: requested)
    }

    /// `iommu_setup_default_domain` (DT-06..09, RR-05): picks the type, reuses a default domain of
    /// that type (DT-07), else allocates one, identity-maps its devices' direct regions and moves
    /// the group onto it.
    mutating func setUpDefaultDomain(groupID id: Int, requested: IOMMUDomainType?) throws(IOMMUError) {
        let group = groups[id]!
        let type = try defaultDomainType(for: group, requested: requested)
        if let current = group.defaultDomain, current.type == type { return }  // DT-07
        if type == .identity, !profile.supportsIdentity {  // DT-08
            throw IOMMUError(.notSupported, rule: "DT-08", "group \(id) type: \(profile.title) has no identity domain")
        }
        let domain = try IOMMUDomain(type: type, profile: profile)
        if type.isDMAAPI {
            for address in group.devices { try createDirectMappings(for: devices[address]!, in: domain) }
        }
        groups[id]!.defaultDomain = domain
        groups[id]!.domain = domain
    }

    /// `iommu_get_default_domain_type` (DT-06, DT-09): a fixed driver default wins; an untrusted
    /// device forces `DMA`; an explicit request must agree with what devices force.
    private mutating func defaultDomainType(for group: IOMMUGroup, requested: IOMMUDomainType?) throws(IOMMUError) -> IOMMUDomainType {
        if profile.fixedDefaultDomain {
            if let requested, requested != profile.defaultDomainType {
                throw IOMMUError(
                    .invalidArgument, rule: "DT-09",
                    "group \(group.id) type: \(profile.title) has a fixed \(profile.defaultDomainType) default domain")
            }
            return profile.defaultDomainType
        }
        guard let untrusted = group.devices.first(where: { devices[$0]!.untrusted }) else {
            return requested ?? profile.defaultDomainType
        }
        if let requested, requested != .dma {
            warn(untrusted, "Device cannot be in \(requested) domain - it is forcing DMA")
            throw IOMMUError(
                .invalidArgument, rule: "DT-06",
                "group \(group.id) type: \(untrusted) is untrusted and forces a strict DMA domain, not \(requested)")
        }
        return .dma
    }

    /// `iommu_create_device_direct_mappings` (RR-05): identity-maps the device's `direct` and
    /// `direct-relaxable` regions, rounded out to the minimum page, skipping what is mapped.
    private func createDirectMappings(for device: IOMMUDevice, in domain: IOMMUDomain) throws(IOMMUError) {
        let page = domain.pageSizes.minimumPageSize
        for region in device.reservedRegions where region.type == .direct || region.type == .directRelaxable {
            let start = region.start & ~(page - 1)
            let end = region.last | (page - 1)
            var iova = start
            var run: UInt64?
            while true {
                if case .fault(.notPresent) = domain.translate(iova, access: []) {
                    run = run ?? iova
                } else if let first = run {
                    try domain.map(iova: first, to: first, size: iova - first, access: .readWrite)
                    run = nil
                }
                if end - iova < page { break }
                iova += page
            }
            if let first = run { try domain.map(iova: first, to: first, size: end - first + 1, access: .readWrite) }
        }
    }
}
