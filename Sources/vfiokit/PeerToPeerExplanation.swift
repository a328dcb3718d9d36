import KernelRules
import PCIBus

/// The peer-to-peer part of `vfiokit explain`: the switch downstream ports on a function's way up
/// that do not redirect its requests (`PeerToPeerRoute`), the peers whose BARs it reaches there
/// untranslated, and which of them sit outside its IOMMU group — DMA the group does not contain,
/// because the classic `pci_device_group` checks only each function's own upstream path (IG-11)
/// where the proposed rework would group the whole switch (IG-20).
struct PeerToPeerExplanation: Encodable {
    struct Peer: Encodable {
        let address: String
        let group: Int?
    }

    struct Route: Encodable {
        /// The downstream port that lets the request through.
        let port: String
        /// The switch's upstream port, whose internal bus turns the request to the peer.
        let upstreamPort: String
        /// The port's ACS verdict for SV RR CR UF: the rule and why it fails.
        let rule: String
        let detail: String
        let peers: [Peer]
        /// Peers outside the function's group.
        let peersInOtherGroups: [String]
    }

    let routes: [Route]
    /// One sentence: none and why, or how many routes and whether the group contains them.
    let summary: String

    init(_ grouping: IsolationGrouping, _ address: PCIAddress) {
        let group = grouping.group(of: address)?.id
        routes = grouping.peerToPeerRoutes(from: address).map { route in
            let peers = route.peers.map { Peer(address: $0.description, group: grouping.group(of: $0)?.id) }
            return Route(
                port: route.port.description, upstreamPort: route.upstreamPort.description, rule: route.verdict.rule.id,
                detail: route.verdict.detail, peers: peers,
                peersInOtherGroups: peers.filter { $0.group == nil || $0.group != group }.map(\.address))
        }
        let outside = Set(routes.flatMap(\.peersInOtherGroups))
        if routes.isEmpty {
            let ports = grouping.upstreamPath(of: address).map(\.bridge).filter { grouping.topology[$0]?.pciePortType == .downstreamPort }
            summary =
                ports.isEmpty
                ? "none: no switch downstream port on the way up, so every request reaches the IOMMU"
                : "none: every switch downstream port on the way up (\(ports.map(\.description).joined(separator: ", "))) redirects peer requests upstream (ACS SV RR CR UF enabled, ACS-04), so every request reaches the IOMMU"
        } else if routes.allSatisfy(\.peers.isEmpty) {
            summary = "\(routes.count) route(s), but no peer behind them: no switch on the way up has another downstream port"
        } else if outside.isEmpty {
            summary = "\(routes.count) route(s); every peer reached is in this group (IG-11), so the group contains them"
        } else {
            summary =
                "\(routes.count) route(s); \(outside.count) peer(s) outside this group are reached untranslated: the classic grouping "
                + "checks only each function's own upstream path (IG-11); the proposed rework groups the whole switch (IG-20)"
        }
    }

    /// The text section.
    var lines: [String] {
        var lines = ["Peer-to-peer (requests a switch turns to a peer before the IOMMU sees them):", "  \(summary)"]
        for route in routes {
            lines.append("  via \(route.port), which does not redirect (\(route.rule): \(route.detail)), inside switch \(route.upstreamPort):")
            let peers = route.peers.map { "\($0.address) [\($0.group.map { "group \($0)" } ?? "no group")]" }
            lines.append("    peers " + (peers.isEmpty ? "none (the switch has no other downstream port)" : peers.joined(separator: ", ")))
            if !route.peersInOtherGroups.isEmpty {
                lines.append("    outside this group: \(route.peersInOtherGroups.joined(separator: ", "))")
            }
        }
        return lines
    }
}
