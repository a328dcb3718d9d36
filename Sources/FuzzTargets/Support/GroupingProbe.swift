import PCIBus

/// Groups a topology every way the command can — each platform and ACS policy, plus the detected
/// platform — and asks every per-function question a report asks, so hostile config space reaches
/// the ACS, alias, peer-to-peer and reset logic. Checks the one invariant grouping promises: every
/// function in the IOMMU's scope is in exactly one group.
enum GroupingProbe {
    static func run(_ topology: PCITopology) {
        var configurations = [IsolationGrouping.Configuration()]
        for platform in IOMMUPlatformKind.allCases {
            for policy in ACSEnablePolicy.allCases {
                configurations.append(.init(platform: platform, acsPolicy: policy))
            }
        }
        for configuration in configurations {
            let grouping = IsolationGrouping(topology: topology, configuration: configuration)
            check(grouping)
            for function in topology.functions {
                let address = function.address
                _ = grouping.membership(of: address)
                _ = grouping.acsVerdict(for: address)
                _ = grouping.upstreamPath(of: address)
                _ = grouping.requesterID(of: address)
                _ = grouping.peerToPeerRoutes(from: address)
            }
        }
        let snapshot = BusSnapshot(origin: .dump(path: "fuzz"), topology: topology, driversKnown: false)
        for function in topology.functions { _ = snapshot.resetMethods(of: function.address) }
    }

    /// IG-02: groups partition the functions the IOMMU covers.
    private static func check(_ grouping: IsolationGrouping) {
        guard grouping.unavailableReason == nil else { return }
        var seen = Set<PCIAddress>()
        for group in grouping.groups {
            for member in group.members {
                precondition(seen.insert(member).inserted, "\(member) is in two groups")
            }
        }
        let ungrouped = Set(grouping.ungrouped.map(\.address))
        for function in grouping.topology.functions {
            precondition(
                seen.contains(function.address) != ungrouped.contains(function.address),
                "\(function.address) must be in exactly one group or out of the IOMMU's scope")
        }
    }
}
