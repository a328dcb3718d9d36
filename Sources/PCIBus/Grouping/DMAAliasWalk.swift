/// One step of `pci_for_each_dma_alias`: a device and the requester ID it presents for the
/// original function's DMA.
struct DMAAliasVisit: Sendable, Equatable {
    let device: Int
    let requesterID: UInt16
    /// Why this requester ID appears (own ID, alias quirk, bridge takeover).
    let reason: String
}

/// DMA aliasing of `drivers/pci/search.c` and `drivers/pci/pci.c` (ALIAS-01..03).
struct DMAAliases: Sendable {
    let topology: PCITopology
    let quirks: [DMAAliasQuirks]

    init(topology: PCITopology) {
        self.topology = topology
        quirks = topology.functions.indices.map { DMAAliasQuirks($0, in: topology) }
    }

    /// `pci_for_each_dma_alias(pdev, ...)` (ALIAS-01): every (device, requester ID) pair in walk
    /// order; the caller stops where its callback would return non-zero.
    func visits(from index: Int) -> [DMAAliasVisit] {
        let function = topology.functions[index]
        var visits = [DMAAliasVisit(device: index, requesterID: function.address.requesterID, reason: "its own requester ID")]
        for devfn in quirks[index].aliasDevfns {
            let alias = function.address.sibling(devfn: devfn)
            visits.append(
                DMAAliasVisit(
                    device: index, requesterID: alias.requesterID,
                    reason: "alias \(alias.shortDescription) (\(quirks[index].quirk ?? "dma_alias_mask"))"))
        }
        var current = index
        var hops = 0
        while let bridge = topology.parentBridge(of: current), hops <= topology.functions.count {
            hops += 1
            current = bridge
            let tmp = topology.functions[bridge]
            if quirks[bridge].bridgeTranslationRoot { break }
            let secondaryRID = PCIAddress(
                domain: tmp.address.domain, bus: tmp.bridgeBuses?.secondary ?? 0, device: 0, function: 0
            ).requesterID
            if tmp.isPCIe {
                switch tmp.pciePortType {
                case .rootPort, .upstreamPort, .downstreamPort:
                    continue  // PCIe ports forward requester IDs unchanged
                case .pcieToPCIBridge:
                    if quirks[bridge].pciBridgeNoAlias { continue }
                    visits.append(
                        DMAAliasVisit(
                            device: bridge, requesterID: secondaryRID,
                            reason: "PCIe-to-PCI bridge \(tmp.address) takes over requester IDs as (secondary bus, 00.0)"))
                case .pciToPCIeBridge:
                    visits.append(
                        DMAAliasVisit(
                            device: bridge, requesterID: tmp.address.requesterID,
                            reason: "PCI-to-PCIe bridge \(tmp.address) takes over requester IDs with its own"))
                default:
                    continue
                }
            } else if quirks[bridge].pcieBridgeAlias {
                visits.append(
                    DMAAliasVisit(
                        device: bridge, requesterID: secondaryRID,
                        reason: "conventional bridge \(tmp.address) aliases as (secondary bus, 00.0) (\(quirks[bridge].quirk ?? ""))"))
            } else {
                visits.append(
                    DMAAliasVisit(
                        device: bridge, requesterID: tmp.address.requesterID,
                        reason: "conventional PCI bridge \(tmp.address) takes over requester IDs with its own"))
            }
        }
        return visits
    }

    /// `pci_devs_are_dma_aliases(d1, d2)` (ALIAS-02), for two functions on the same bus.
    func areAliases(_ first: Int, _ second: Int) -> Bool {
        quirks[first].aliasDevfns.contains(topology.functions[second].address.devfn)
            || quirks[second].aliasDevfns.contains(topology.functions[first].address.devfn)
    }
}
