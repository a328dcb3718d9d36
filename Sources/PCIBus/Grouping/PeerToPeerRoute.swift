/// A place on a function's way to the IOMMU where its requests can turn to a peer instead: a
/// switch downstream port that does not redirect peer-to-peer requests upstream (ACS P2P Request
/// Redirect and friends, `REQ_ACS_FLAGS`), so the switch routes a request aimed at a sibling's
/// BAR straight there, untranslated. This is the DMA the IOMMU never sees — what groups exist to
/// contain, and what the classic grouping misses when only the ingress port lacks ACS.
public struct PeerToPeerRoute: Sendable, Equatable {
    /// The downstream port the request enters without being redirected.
    public let port: PCIAddress
    /// Its ACS verdict (why it does not redirect).
    public let verdict: ACSVerdict
    /// The switch's upstream port, whose internal bus routes the request.
    public let upstreamPort: PCIAddress
    /// Functions below the switch's other downstream ports: the request reaches their BARs.
    public let peers: [PCIAddress]
}

extension IsolationGrouping {
    /// The requester ID a function's DMA carries when it reaches the IOMMU (ALIAS-01): the last
    /// bridge on the way up that takes requester IDs over, else the function's own.
    public func requesterID(of address: PCIAddress) -> UInt16? {
        guard let index = topology.index(of: address) else { return nil }
        let bridgeTakeover = aliases.visits(from: index).last { $0.device != index }
        return bridgeTakeover?.requesterID ?? address.requesterID
    }

    /// Every switch on the way up from `address` whose downstream port lets a request turn to a
    /// peer, nearest first. Empty when each downstream port on the path redirects upstream.
    public func peerToPeerRoutes(from address: PCIAddress) -> [PeerToPeerRoute] {
        guard var current = topology.index(of: address) else { return [] }
        var routes: [PeerToPeerRoute] = []
        var hops = 0
        while let port = topology.parentBridge(of: current), hops <= topology.functions.count {
            hops += 1
            defer { current = port }
            guard topology.functions[port].pciePortType == .downstreamPort, let upstream = topology.parentBridge(of: port) else {
                continue
            }
            let verdict = acs.enabled(port)
            guard !verdict.enabled else { continue }
            let siblings = topology.bus(of: port).functions.filter { $0 != port }
            let peers = siblings.flatMap { below($0) }.map { topology.functions[$0].address }
            routes.append(
                PeerToPeerRoute(
                    port: topology.functions[port].address, verdict: verdict, upstreamPort: topology.functions[upstream].address,
                    peers: peers.sorted()))
        }
        return routes
    }

    /// A function and everything below it, if it is a bridge.
    private func below(_ index: Int) -> [Int] {
        var result = [index]
        var stack = topology.secondaryBus(of: index).map { [$0] } ?? []
        var seen = Set<PCIBusNode.Key>()
        while let bus = stack.popLast(), seen.insert(bus.key).inserted {
            for function in bus.functions {
                result.append(function)
                if let next = topology.secondaryBus(of: function) { stack.append(next) }
            }
        }
        return result
    }
}
