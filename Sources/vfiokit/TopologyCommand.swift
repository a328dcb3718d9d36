import ArgumentParser
import Foundation
import PCIBus

/// `vfiokit topology`: the bus tree, like `lspci -tv`, with each function's group.
struct TopologyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topology", abstract: "Show the PCI tree (like lspci -tv) with each function's IOMMU group.")

    @OptionGroup var source: SourceOptions

    @Flag(name: [.short, .long], help: "Print names whole and each function's driver (the default fits 132 columns).")
    var verbose = false

    func run() throws {
        let snapshot = try source.load()
        let host = source.hostState(of: snapshot)
        let reliability = GroupReliability(snapshot, host: host)
        let view = GroupView(snapshot, host: host)
        reliability.announce(json: source.json)
        if source.json { return try printJSON(TopologyNode.roots(of: snapshot, view: view, reliability: reliability)) }
        print("PCI topology of \(snapshot.sourceLabel)")
        snapshot.headerLines(kernelGroups: view.fromKernel).forEach { print("  \($0)") }
        print("  groups are \(view.fromKernel ? "the kernel's (iommu_group links)" : host?.enabled == false ? "computed (what the kernel would form)" : "computed")")
        printTree(of: snapshot, view: view, verbose: verbose)
    }
}

/// Prints the bus tree: one line per function with its slot, group and lspci-style name.
/// Compact by default: each line within 132 columns, names shortened with "…" (IDs kept);
/// `verbose`: names whole and the driver.
func printTree(of snapshot: BusSnapshot, view: GroupView, verbose: Bool = false) {
    for root in TopologyNode.roots(of: snapshot, view: view, reliability: GroupReliability(snapshot, host: nil)).buses {
        print("[\(root.bus)]")
        render(root.functions, prefix: "")
    }

    func render(_ functions: [TopologyNode.Function], prefix: String) {
        for (position, function) in functions.enumerated() {
            let last = position == functions.count - 1
            let group = function.group.map { "group \($0)" } ?? "no group"
            let name = function.summary.line
            let differs = function.kernelDifference == nil ? "" : "  (computed group \(function.computedGroup.map(String.init) ?? "none") differs)"
            let head = "\(prefix)\(last ? "└─" : "├─") \(function.slot)  [\(group)]  "
            if verbose {
                print(head + name + "  driver: \(function.summary.driver ?? "none")" + differs)
            } else {
                print(CompactLine.fit(prefix: head, name: name, suffix: differs))
            }
            // A bridge's bus range as lspci -t prints it: -[secondary-subordinate]-, or -[secondary]-.
            if let range = function.busRange {
                let childPrefix = prefix + (last ? "   " : "│  ")
                let domain = function.address.prefix(4)
                let numbers = range.secondary == range.subordinate
                    ? String(format: "%02x", range.secondary) : String(format: "%02x-%02x", range.secondary, range.subordinate)
                print("\(childPrefix)└─[\(domain):\(numbers)]\(function.secondaryBus == nil ? "  (no function behind it)" : "")")
                if let child = function.secondaryBus { render(child.functions, prefix: childPrefix + "   ") }
            }
        }
    }
}

/// The tree as values (and its JSON form): buses hold functions; bridges hold their bus.
struct TopologyNode: Encodable {
    struct Bus: Encodable {
        let bus: String
        let functions: [Function]
    }
    struct Function: Encodable {
        let address: String
        let slot: String
        /// The kernel's group on a host with groups, else the computed one.
        @Nullable var group: Int?
        @Nullable var computedGroup: Int?
        @Nullable var kernelDifference: String?
        let summary: FunctionSummary
        /// A bridge's bus numbers as `lspci -v` prints them (`Bus: primary=00, secondary=01,
        /// subordinate=02`); null for an endpoint.
        @Nullable var busRange: BusRange?
        @Nullable var secondaryBus: Bus?
    }
    struct BusRange: Encodable {
        let primary: Int
        let secondary: Int
        let subordinate: Int
    }
    let source: String
    let platform: String
    let buses: [Bus]
    let groupsFrom: String
    let groupsReliable: Bool
    let explanationsReliable: Bool
    @Nullable var groupsUnreliableReason: String?
    @Nullable var iommuEnabled: Bool?
    let warnings: [String]

    static func roots(of snapshot: BusSnapshot, view: GroupView, reliability: GroupReliability) -> TopologyNode {
        let topology = snapshot.topology
        var depth = 0
        func bus(_ key: PCIBusNode.Key) -> Bus {
            let node = topology.buses[key]!
            depth += 1
            defer { depth -= 1 }
            return Bus(
                bus: String(PCIAddress(domain: key.domain, bus: key.number, device: 0, function: 0).description.dropLast(5)),
                functions: node.functions.map { index in
                    let function = topology.functions[index]
                    let child = topology.secondaryBus(of: index).map(\.key)
                    return Function(
                        address: function.address.description,
                        slot: String(function.address.description.suffix(4)),
                        group: view.groupID(of: function.address),
                        computedGroup: snapshot.grouping.group(of: function.address)?.id,
                        kernelDifference: view.difference(of: function.address),
                        summary: snapshot.summary(function.address),
                        busRange: function.bridgeBuses.map {
                            BusRange(primary: Int($0.primary), secondary: Int($0.secondary), subordinate: Int($0.subordinate))
                        },
                        secondaryBus: child.flatMap { depth < 64 ? bus($0) : nil })
                })
        }
        return TopologyNode(
            source: snapshot.sourceLabel, platform: snapshot.grouping.platform.rawValue,
            buses: topology.rootBuses.map(bus), groupsFrom: view.fromKernel ? "kernel" : "computed",
            groupsReliable: reliability.reliable, explanationsReliable: reliability.explanationsReliable,
            groupsUnreliableReason: reliability.reason,
            iommuEnabled: reliability.host?.enabled, warnings: reliability.warnings)
    }
}

