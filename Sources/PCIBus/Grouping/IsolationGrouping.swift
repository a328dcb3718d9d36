import KernelRules
/// IOMMU groups of a topology, formed exactly as Linux's `pci_device_group()` forms them
/// (`drivers/iommu/iommu.c`, IG-10..16): functions are probed in device-add order, each joins
/// the group found by the DMA-alias walk (IG-10), the ACS walk upstream (IG-11), same-bus DMA
/// aliases (IG-12) or multifunction siblings without ACS (IG-13), or gets the lowest free group
/// ID (IG-14, IG-02). Every membership records the rule and the facts that decided it. The
/// probe order is per IOMMU unit in registration order, device-add order within one
/// (`IOMMUUnitOrder`), so the group numbers are the kernel's (Linux 6.8 and later).
public struct IsolationGrouping: Sendable {
    public struct Configuration: Sendable {
        /// The platform; nil detects it from the host bridges.
        public var platform: IOMMUPlatformKind?
        public var acsPolicy: ACSEnablePolicy
        /// Where an explicit platform came from, for reports.
        public var platformOrigin: String
        /// The IOMMU units in registration order; nil infers them (`IOMMUUnitOrder.inferred`).
        public var units: IOMMUUnitOrder?

        public init(
            platform: IOMMUPlatformKind? = nil, acsPolicy: ACSEnablePolicy = .bootEnable,
            platformOrigin: String = "set explicitly", units: IOMMUUnitOrder? = nil
        ) {
            self.platform = platform
            self.acsPolicy = acsPolicy
            self.platformOrigin = platformOrigin
            self.units = units
        }
    }

    public let topology: PCITopology
    public let platform: IOMMUPlatformKind
    /// Why this platform: detected from which function, or overridden.
    public let platformReason: String
    /// What detection assumed and how to override it, when the platform is a guess.
    public let platformWarning: String?
    public let acsPolicy: ACSEnablePolicy
    /// The units whose registration order numbered the groups, and whether that order is a guess.
    public let unitOrder: IOMMUUnitOrder
    public private(set) var groups: [IsolationGroup] = []
    public private(set) var ungrouped: [UngroupedFunction] = []
    /// Set when the platform's groups cannot be derived from config space (PowerNV).
    public let unavailableReason: String?

    private var groupIndexByFunction: [Int?]
    let acs: ACSEvaluator
    let aliases: DMAAliases

    public init(topology: PCITopology, configuration: Configuration = Configuration()) {
        self.topology = topology
        if let platform = configuration.platform {
            self.platform = platform
            platformReason = configuration.platformOrigin
            platformWarning = nil
        } else {
            let detection = IOMMUPlatformDetection(topology)
            (platform, platformReason, platformWarning) = (detection.kind, detection.reason, detection.warning)
        }
        acsPolicy = configuration.acsPolicy
        unitOrder = configuration.units ?? IOMMUUnitOrder.inferred(for: topology, platform: platform)
        acs = ACSEvaluator(topology: topology, platform: platform, policy: configuration.acsPolicy)
        aliases = DMAAliases(topology: topology)
        groupIndexByFunction = Array(repeating: nil, count: topology.functions.count)
        guard platform.groupsFollowPCITopology else {
            unavailableReason =
                "on \(platform) the kernel's groups are the firmware's partitionable endpoints (IODA PEs), "
                + "not derived from ACS; they cannot be computed from config space"
            return
        }
        unavailableReason = nil
        for index in unitOrder.probeOrder(of: topology) {
            let function = topology.functions[index]
            if let reason = platform.outOfScopeReason(function, onRootBus: topology.isOnRootBus(index)) {
                ungrouped.append(UngroupedFunction(address: function.address, reason: reason))
                continue
            }
            let (existing, membership) = deviceGroup(index)
            if let existing {
                groups[existing].members.append(function.address)
                groups[existing].memberships[function.address] = membership
                groupIndexByFunction[index] = existing
            } else {
                groupIndexByFunction[index] = groups.count
                groups.append(
                    IsolationGroup(id: groups.count, members: [function.address], memberships: [function.address: membership]))
            }
        }
    }

    // MARK: Queries

    public func group(of address: PCIAddress) -> IsolationGroup? {
        topology.index(of: address).flatMap { groupIndexByFunction[$0] }.map { groups[$0] }
    }

    public func membership(of address: PCIAddress) -> GroupMembership? { group(of: address)?.memberships[address] }

    /// `pci_acs_enabled(pdev, REQ_ACS_FLAGS)` with its reason, for reports.
    public func acsVerdict(for address: PCIAddress) -> ACSVerdict? { topology.index(of: address).map(acs.enabled) }

    /// The requester IDs other than its own that a function's DMA reaches the IOMMU with, in walk
    /// order, as addresses: its `dma_alias_mask` quirk aliases, then each bridge that takes the
    /// requester ID over on the way up (`pci_for_each_dma_alias`, ALIAS-01). Empty when none.
    public func dmaAliases(of address: PCIAddress) -> [PCIAddress] {
        guard let index = topology.index(of: address) else { return [] }
        var seen: Set<PCIAddress> = [address]
        return aliases.visits(from: index).compactMap { visit in
            let alias = PCIAddress(
                domain: address.domain, bus: UInt8(visit.requesterID >> 8), device: UInt8(visit.requesterID >> 3 & 0x1f),
                function: UInt8(visit.requesterID & 7))
            return seen.insert(alias).inserted ? alias : nil
        }
    }

    /// The bridges from a function's parent up to the root bus, each with its ACS verdict.
    public func upstreamPath(of address: PCIAddress) -> [(bridge: PCIAddress, verdict: ACSVerdict)] {
        guard var current = topology.index(of: address) else { return [] }
        var path: [(PCIAddress, ACSVerdict)] = []
        while let parent = topology.parentBridge(of: current), path.count <= topology.functions.count {
            path.append((topology.functions[parent].address, acs.enabled(parent)))
            current = parent
        }
        return path
    }

    // MARK: pci_device_group

    private func name(_ index: Int) -> String { topology.functions[index].address.description }

    private func deviceGroup(_ index: Int) -> (Int?, GroupMembership) {
        // IG-10: the DMA-alias walk stops at the first visited device that already has a group.
        let visits = aliases.visits(from: index)
        for visit in visits {
            if let group = groupIndexByFunction[visit.device] {
                return (
                    group,
                    GroupMembership(
                        rule: .IG_10, joined: topology.functions[visit.device].address,
                        summary: "its DMA reaches the IOMMU as \(name(visit.device))'s requester ID, so it joins that group",
                        details: visits.prefix { $0 != visit }.map { "ALIAS-01: \($0.reason)" } + ["ALIAS-01: \(visit.reason)"])
                )
            }
        }
        var pdev = visits.last!.device
        var details = visits.count > 1 ? visits.dropFirst().map { "ALIAS-01: \($0.reason)" } : []

        // IG-11: walk up while the bridge's path to the root is not fully ACS-isolated.
        var bus = topology.bus(of: pdev)
        var hops = 0
        if bus.isRoot { details.append("IG-15: on a root bus, so no upstream ACS walk") }
        while let bridge = bus.bridge, hops <= topology.functions.count {
            hops += 1
            guard let failure = acs.firstPathFailure(from: bridge) else {
                details.append("ACS-10: every bridge from \(name(bridge)) up to the root bus provides ACS SV RR CR UF")
                break
            }
            let why = "ACS-10: the path from \(name(bridge)) to the root is not isolated: \(name(failure.index)) — \(failure.verdict.detail) (\(failure.verdict.rule))"
            pdev = bridge
            if let group = groupIndexByFunction[bridge] {
                return (
                    group,
                    GroupMembership(
                        rule: .IG_11, joined: topology.functions[bridge].address,
                        summary: "the upstream path is not ACS-isolated, so it shares a group with bridge \(name(bridge))",
                        details: details + [why]))
            }
            details.append(why + "; \(name(bridge)) has no group, so the walk continues")
            bus = topology.bus(of: bridge)
        }

        // IG-12 / IG-13: same-bus DMA aliases, then multifunction siblings without ACS.
        var visited = Set<UInt8>()
        if let found = aliasGroup(pdev, &visited, path: []) ?? functionAliasGroup(pdev, &visited, path: []) {
            let first = found.path.first!
            let rule = first.relation == .alias ? RuleID.IG_12 : .IG_13
            let summary =
                first.relation == .alias
                ? "it is a DMA alias of \(name(first.index)) on the same bus, whose group it joins"
                : "it is a multifunction sibling of \(name(first.index)) and neither provides ACS, so they share a group"
            return (
                found.group,
                GroupMembership(
                    rule: rule, joined: topology.functions[found.path.last!.index].address, summary: summary,
                    details: details + found.path.map(\.fact)))
        }

        // IG-14: a new group.
        let function = topology.functions[pdev]
        if function.isMultifunction {
            let verdict = acs.enabled(pdev)
            details.append(
                verdict.enabled
                    ? "IG-13: multifunction, but it provides ACS (\(verdict.rule): \(verdict.detail)), so siblings are not pulled in"
                    : "IG-13: multifunction without ACS (\(verdict.rule): \(verdict.detail)); no sibling without ACS has a group yet")
        }
        return (
            nil,
            GroupMembership(rule: .IG_14, joined: nil, summary: "no existing group reaches it, so it gets a new group", details: details))
    }

    private enum Relation { case alias, function }
    private typealias Hop = (relation: Relation, index: Int, fact: String)

    /// `get_pci_alias_group` (IG-12).
    private func aliasGroup(_ pdev: Int, _ visited: inout Set<UInt8>, path: [Hop]) -> (group: Int, path: [Hop])? {
        guard visited.insert(topology.functions[pdev].address.devfn).inserted else { return nil }
        // The kernel returns pdev's own group here; at the top of the recursion pdev never has one
        // (steps IG-10/IG-11 would have returned it), so only functions reached by a hop count.
        if let group = groupIndexByFunction[pdev], !path.isEmpty { return (group, path) }
        for other in topology.bus(of: pdev).functions where other != pdev && aliases.areAliases(pdev, other) {
            let hop: Hop = (.alias, other, "ALIAS-02: \(name(pdev)) and \(name(other)) are DMA aliases (\(aliases.quirks[pdev].quirk ?? aliases.quirks[other].quirk ?? "dma_alias_mask"))")
            if let found = aliasGroup(other, &visited, path: path + [hop]) ?? functionAliasGroup(other, &visited, path: path + [hop]) {
                return found
            }
        }
        return nil
    }

    /// `get_pci_function_alias_group` (IG-13).
    private func functionAliasGroup(_ pdev: Int, _ visited: inout Set<UInt8>, path: [Hop]) -> (group: Int, path: [Hop])? {
        let function = topology.functions[pdev]
        let own = acs.enabled(pdev)
        guard function.isMultifunction, !own.enabled else { return nil }
        for other in topology.bus(of: pdev).functions where other != pdev {
            let sibling = topology.functions[other]
            guard sibling.address.device == function.address.device else { continue }
            let theirs = acs.enabled(other)
            if theirs.enabled { continue }
            let hop: Hop = (
                .function, other,
                "IG-13: \(name(pdev)) lacks ACS (\(own.rule): \(own.detail)); sibling \(name(other)) lacks ACS too (\(theirs.rule): \(theirs.detail))"
            )
            if let found = aliasGroup(other, &visited, path: path + [hop]) { return found }
        }
        return nil
    }
}
