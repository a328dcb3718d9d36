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

    @Flag(name: [.short, .long], help: "Also print each step's facts and every peer-to-peer route, unwrapped.")
    var verbose = false

    func run() throws {
        // Compact: within 132 columns, long lines wrapped under their own indent; --verbose: as is.
        func print(_ line: String) {
            for part in verbose ? [line] : CompactLine.wrap(line) { Swift.print(part) }
        }
        guard let address = PCIAddress(parsing: function) else {
            throw ValidationError("\"\(function)\" is not a PCI address (dddd:bb:dd.f or bb:dd.f)")
        }
        let machine = try source.loadMachine()
        let snapshot = machine.snapshot
        guard snapshot.topology[address] != nil else {
            try reportError(errno: "ENODEV", "\(address) is not present in \(snapshot.sourceLabel)", json: source.json)
            throw ExitCode(65)
        }
        let explanation = Explanation(machine, address)
        machine.reliability.announce(json: source.json)
        if source.json { return try printJSON(explanation) }
        print("\(address)  \(snapshot.summary(address).line)")
        snapshot.headerLines(kernelGroups: machine.view.fromKernel).forEach { print("  \($0)") }
        guard let group = explanation.group else {
            // No group to show: the computed grouping gave none, or the kernel did not (its
            // iommu_group link is missing) while the computed one would.
            print("  no IOMMU group: \(explanation.notGrouped ?? "the kernel gave it none (no iommu_group link)")")
            if let difference = explanation.kernelDifference { print("  differs from the computed grouping: \(difference)") }
            return
        }
        let kind = explanation.groupsFrom == "kernel" ? " (the kernel's, /dev/vfio/\(group))" : explanation.iommuEnabled == false ? " (what the kernel would form)" : ""
        print("  IOMMU group \(group)\(kind) with \(explanation.groupMembers.joined(separator: ", "))")
        if let difference = explanation.kernelDifference { print("  differs from the computed grouping: \(difference)") }
        print("")
        print("Why:")
        for step in explanation.chain {
            print("  \(step.address) — \(step.rule): \(step.summary)")
            if verbose { for detail in step.details { print("      \(detail)") } }
        }
        print("")
        print("Upstream path (pci_acs_enabled for SV RR CR UF):")
        if explanation.upstream.isEmpty { print("  none: on a root bus (IG-15)") }
        for hop in explanation.upstream {
            print("  \(hop.bridge)  \(hop.enabled ? "isolated    " : "NOT isolated")  \(hop.rule): \(hop.detail)")
        }
        print("")
        // Compact: the summary; the routes, peer by peer, under --verbose.
        explanation.peerToPeer.lines.prefix(verbose ? .max : 2).forEach { print($0) }
        if let viability = explanation.viability { print(""); print("VFIO: \(viability)") }
        if let plan = explanation.assignment {
            print("")
            plan.lines.forEach { print($0) }
        }
    }
}

struct Explanation: Encodable {
    struct Step: Encodable {
        let address: String
        let rule: String
        let summary: String
        @Nullable var joined: String?
        let details: [String]
    }
    struct Hop: Encodable {
        let bridge: String
        let enabled: Bool
        let rule: String
        let detail: String
    }
    let function: String
    /// The kernel's group number (`/dev/vfio/N`) when `groupsFrom` is "kernel", else the computed one.
    @Nullable var group: Int?
    /// The computed group holding the function; the chain below explains it.
    @Nullable var computedGroup: Int?
    let groupsFrom: String
    @Nullable var kernelDifference: String?
    @Nullable var iommuEnabled: Bool?
    @Nullable var groupsUnreliableReason: String?
    let groupMembers: [String]
    @Nullable var notGrouped: String?
    let chain: [Step]
    let upstream: [Hop]
    @Nullable var ownACS: ACSVerdict?
    let peerToPeer: PeerToPeerExplanation
    @Nullable var viability: String?
    /// The commands that hand the function's group to VFIO and what blocks it otherwise.
    @Nullable var assignment: AssignmentPlan?
    let groupsReliable: Bool
    let explanationsReliable: Bool
    let warnings: [String]

    init(_ machine: LoadedMachine, _ address: PCIAddress) {
        let snapshot = machine.snapshot
        let reliability = machine.reliability
        groupsReliable = reliability.reliable
        explanationsReliable = reliability.explanationsReliable
        groupsUnreliableReason = reliability.reason
        warnings = reliability.warnings
        iommuEnabled = machine.host?.enabled
        let view = machine.view
        groupsFrom = view.fromKernel ? "kernel" : "computed"
        kernelDifference = view.difference(of: address)
        let grouping = snapshot.grouping
        function = address.description
        let group = grouping.group(of: address)
        computedGroup = group?.id
        let shown = view.groupID(of: address).flatMap(view.group)
        self.group = shown?.id
        assignment = shown.map { AssignmentPlan(machine, group: $0) }
        groupMembers = shown?.members.map(\.description) ?? []
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
        viability = group.flatMap { machine.assignment(of: $0.id)?.explanation }.map {
            machine.host?.enabled == false ? "IOMMU off, so not assignable; with it on: \($0)" : $0
        }
    }
}
