import ArgumentParser
import IOMMU
import KernelRules
import PCIBus
import VFIO

/// `vfiokit explain BDF`: the chain of reasons that put a function in its group.
struct ExplainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain", abstract: "Explain why a function is in its IOMMU group, rule by rule.")

    @Argument(help: "The function, as dddd:bb:dd.f or bb:dd.f.")
    var function: String

    @OptionGroup var source: SourceOptions

    func run() throws {
        guard let address = PCIAddress(parsing: function) else {
            throw ValidationError("\"\(function)\" is not a PCI address (dddd:bb:dd.f or bb:dd.f)")
        }
        let machine = try source.loadMachine()
        let snapshot = machine.snapshot
        guard snapshot.topology[address] != nil else {
            warn("error: ENODEV: \(address) is not present in \(snapshot.sourceLabel)")
            throw ExitCode(65)
        }
        let explanation = Explanation(machine, address)
        if source.json { return try printJSON(explanation) }
        print("\(address)  \(snapshot.summary(address).line)")
        snapshot.headerLines.forEach { print("  \($0)") }
        if let reason = explanation.notGrouped {
            print("  no IOMMU group: \(reason)")
            return
        }
        print("  IOMMU group \(explanation.group!) with \(explanation.groupMembers.joined(separator: ", "))")
        print("")
        print("Why:")
        for step in explanation.chain {
            print("  \(step.address) — \(step.rule): \(step.summary)")
            for detail in step.details { print("      \(detail)") }
        }
        print("")
        print("Upstream path (pci_acs_enabled for SV RR CR UF):")
        if explanation.upstream.isEmpty { print("  none: on a root bus (IG-15)") }
        for hop in explanation.upstream {
            print("  \(hop.bridge)  \(hop.enabled ? "isolated    " : "NOT isolated")  \(hop.rule): \(hop.detail)")
        }
        print("")
        explanation.peerToPeer.lines.forEach { print($0) }
        if let viability = explanation.viability { print(""); print("VFIO: \(viability)") }
    }
}

struct Explanation: Encodable {
    struct Step: Encodable {
        let address: String
        let rule: String
        let summary: String
        let joined: String?
        let details: [String]
    }
    struct Hop: Encodable {
        let bridge: String
        let enabled: Bool
        let rule: String
        let detail: String
    }
    let function: String
    let group: Int?
    let groupMembers: [String]
    let notGrouped: String?
    let chain: [Step]
    let upstream: [Hop]
    let ownACS: ACSVerdict?
    let peerToPeer: PeerToPeerExplanation
    let viability: String?
    let groupsReliable: Bool
    let warnings: [String]

    init(_ machine: LoadedMachine, _ address: PCIAddress) {
        let snapshot = machine.snapshot
        groupsReliable = snapshot.groupsReliable
        warnings = snapshot.warnings
        let grouping = snapshot.grouping
        function = address.description
        let group = grouping.group(of: address)
        self.group = group?.id
        groupMembers = group?.sortedMembers.map(\.description) ?? []
        notGrouped =
            grouping.unavailableReason
            ?? grouping.ungrouped.first { $0.address == address }?.reason
        // Follow "joined" links back to the function that founded the group.
        var chain: [Step] = []
        var current: PCIAddress? = address
        while let next = current, let membership = grouping.membership(of: next), chain.count < 64 {
            chain.append(
                Step(
                    address: next.description, rule: membership.rule.id, summary: membership.summary,
                    joined: membership.joined?.description, details: membership.details))
            current = membership.joined
        }
        self.chain = chain
        upstream = grouping.upstreamPath(of: address).map {
            Hop(bridge: $0.bridge.description, enabled: $0.verdict.enabled, rule: $0.verdict.rule.id, detail: $0.verdict.detail)
        }
        ownACS = grouping.acsVerdict(for: address)
        peerToPeer = PeerToPeerExplanation(grouping, address)
        viability = group.flatMap { machine.assignment(of: $0.id)?.explanation }
    }
}
