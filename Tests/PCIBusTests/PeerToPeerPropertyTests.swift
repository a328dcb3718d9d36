import PCIBus
import Testing

/// Peer-to-peer routes (`PeerToPeerRoute`) against the groups, over generated machines under both
/// ACS policies. A request turns to a peer at a switch downstream port that does not redirect it
/// (ACS-04/ACS-07 for `REQ_ACS_FLAGS`); the classic `pci_device_group` puts the requester in that
/// port's group (IG-11, EX-02), but it checks only each function's own upstream path, so the peers
/// below the switch's other downstream ports stay in other groups whenever the switch itself sits
/// on an isolated path — the gap the proposed rework closes (IG-20, `PCIE_SWITCH_DSP_NON_ISOLATED`).
@Suite("Peer-to-peer routes and groups over generated topologies (IG-11, IG-20, ACS-04, ACS-07)")
struct PeerToPeerPropertyTests {
    static let seeds: [UInt64] = (0..<150).map { 0x9292_0000 + $0 }

    struct Tally {
        var functions = 0
        var routes = 0
        /// Routes whose peers all share the requester's group (the switch's own path is not isolated).
        var contained = 0
        /// Routes whose peers are all in other groups (the classic algorithm's gap).
        var escaping = 0
    }

    @Test("routes are exactly the non-redirecting downstream ports on the way up; the requester shares each one's group", arguments: ACSEnablePolicy.allCases)
    func routesMatchGroups(policy: ACSEnablePolicy) {
        var tally = Tally()
        for seed in Self.seeds {
            let grouping = IsolationGrouping(
                topology: RandomTopology(seed: seed).topology, configuration: .init(platform: .intelVTd, acsPolicy: policy))
            for function in grouping.topology.functions {
                tally.functions += 1
                check(function.address, in: grouping, seed: seed, policy: policy, tally: &tally)
            }
        }
        #expect(tally.routes > 100 && tally.contained > 10 && tally.escaping > 10, "the generator exercises every case: \(tally)")
    }

    private func check(_ address: PCIAddress, in grouping: IsolationGrouping, seed: UInt64, policy: ACSEnablePolicy, tally: inout Tally) {
        let topology = grouping.topology
        let at = "seed 0x\(String(seed, radix: 16)) (\(policy)), \(address)"
        let routes = grouping.peerToPeerRoutes(from: address)
        // Completeness and soundness: one route per downstream port on the upstream path whose
        // REQ_ACS_FLAGS verdict fails, nearest first.
        let open = grouping.upstreamPath(of: address).filter { hop in
            topology[hop.bridge]?.pciePortType == .downstreamPort && !hop.verdict.enabled
        }
        #expect(routes.map(\.port) == open.map(\.bridge), "\(at): routes \(routes.map(\.port)) vs open ports \(open.map(\.bridge))")
        #expect(routes.map(\.verdict) == open.map(\.verdict), "\(at): the route carries the port's ACS verdict")
        let group = grouping.group(of: address)?.id
        for route in routes {
            tally.routes += 1
            let portIndex = topology.index(of: route.port)!
            #expect(topology.functions[topology.parentBridge(of: portIndex)!].address == route.upstreamPort, "\(at): \(route.port)'s switch")
            #expect(route.peers == Self.peers(of: portIndex, in: topology), "\(at): peers via \(route.port)")
            // IG-11 / EX-02: below a port without ACS, everything joins the port's group.
            #expect(group != nil && group == grouping.group(of: route.port)?.id, "\(at): not in the group of \(route.port), which lacks ACS")
            guard !route.peers.isEmpty else { continue }  // a switch with one downstream port
            let peerGroups = Set(route.peers.map { grouping.group(of: $0)?.id })
            let switchIsolated = Self.pathIsolated(from: route.upstreamPort, in: grouping)
            if switchIsolated {
                // IG-11 checks each function's own path: the peers keep their own groups (IG-20 would merge them).
                #expect(!peerGroups.contains(group), "\(at): a peer via \(route.port) shares the group although the switch's path is isolated")
                tally.escaping += 1
            } else {
                #expect(peerGroups == [group], "\(at): the switch's path is not isolated, so its peers must share the group (IG-11, ACS-10)")
                tally.contained += 1
            }
        }
    }

    /// Every function below the switch's other downstream ports, and those ports, in address order.
    static func peers(of port: Int, in topology: PCITopology) -> [PCIAddress] {
        let upstream = topology.parentBridge(of: port)!
        let siblings = topology.bus(of: port).functions.filter { $0 != port }
        return topology.functions.indices.filter { index in
            var current = index
            while current != upstream {
                if siblings.contains(current) { return true }
                guard let parent = topology.parentBridge(of: current) else { return false }
                current = parent
            }
            return false
        }.map { topology.functions[$0].address }.sorted()
    }

    /// `pci_acs_path_enabled(bridge, NULL, REQ_ACS_FLAGS)` (ACS-10) from public verdicts.
    static func pathIsolated(from bridge: PCIAddress, in grouping: IsolationGrouping) -> Bool {
        grouping.acsVerdict(for: bridge)!.enabled && grouping.upstreamPath(of: bridge).allSatisfy(\.verdict.enabled)
    }
}
