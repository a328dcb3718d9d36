import ArgumentParser
import PCIBus

/// `vfiokit topology`: the bus tree, like `lspci -tv`, with each function's group.
struct TopologyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topology", abstract: "Show the PCI tree (like lspci -tv) with each function's IOMMU group.")

    @OptionGroup var source: SourceOptions

    func run() throws {
        let snapshot = try source.load()
        if source.json { return try printJSON(TopologyNode.roots(of: snapshot)) }
        print("PCI topology of \(snapshot.sourceLabel)")
        snapshot.headerLines.forEach { print("  \($0)") }
        printTree(of: snapshot)
    }
}

/// Prints the bus tree: one line per function with its slot, group and lspci-style name.
func printTree(of snapshot: BusSnapshot) {
    for root in TopologyNode.roots(of: snapshot).buses {
        print("[\(root.bus)]")
        render(root.functions, prefix: "")
    }

    func render(_ functions: [TopologyNode.Function], prefix: String) {
        for (position, function) in functions.enumerated() {
            let last = position == functions.count - 1
            let group = function.group.map { "group \($0)" } ?? "no group"
            let name = function.summary.line
            print("\(prefix)\(last ? "└─" : "├─") \(function.slot)  [\(group)]  \(name)")
            if let child = function.secondaryBus {
                let childPrefix = prefix + (last ? "   " : "│  ")
                print("\(childPrefix)└─[\(child.bus)]")
                render(child.functions, prefix: childPrefix + "   ")
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
        let group: Int?
        let summary: FunctionSummary
        let secondaryBus: Bus?
    }
    let source: String
    let platform: String
    let buses: [Bus]
    let groupsReliable: Bool
    let warnings: [String]

    static func roots(of snapshot: BusSnapshot) -> TopologyNode {
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
                        group: snapshot.grouping.group(of: function.address)?.id,
                        summary: snapshot.summary(function.address),
                        secondaryBus: child.flatMap { depth < 64 ? bus($0) : nil })
                })
        }
        return TopologyNode(
            source: snapshot.sourceLabel, platform: snapshot.grouping.platform.rawValue,
            buses: topology.rootBuses.map(bus), groupsReliable: snapshot.groupsReliable, warnings: snapshot.warnings)
    }
}

