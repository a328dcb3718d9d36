/// A bus: a domain and bus number, the bridge above it (`bus->self`, nil on a root bus) and its
/// functions in devfn order. Mirrors `struct pci_bus`.
public struct PCIBusNode: Sendable {
    public struct Key: Hashable, Sendable, Comparable {
        public let domain: UInt32
        public let number: UInt8
        public init(domain: UInt32, number: UInt8) {
            self.domain = domain
            self.number = number
        }
        public static func < (lhs: Key, rhs: Key) -> Bool { (lhs.domain, lhs.number) < (rhs.domain, rhs.number) }
    }
    public let key: Key
    /// Index of the bridge whose secondary bus this is; nil for a root bus.
    public internal(set) var bridge: Int?
    /// Indices of the functions on this bus, in devfn order.
    public internal(set) var functions: [Int] = []
    /// Buses below bridges on this bus, in the bridges' devfn order.
    public internal(set) var children: [Key] = []
    public var isRoot: Bool { bridge == nil }
}

/// Functions linked into buses and bridges, and the order the kernel adds them in.
///
/// Mirrors the PCI core's enumeration: root buses are those no bridge leads to; a bridge's
/// secondary bus number links it to the bus below (`pci_scan_bridge`). Functions are added
/// (`pci_bus_add_devices`) bus by bus: every function of a bus in devfn order, then the buses
/// below each of its bridges, recursively. IOMMU groups are formed in that order (IG-10..16).
public struct PCITopology: Sendable {
    public let source: PCIConfigSource
    /// Every function, in address order; indices into this array identify functions.
    public let functions: [PCIFunction]
    public let buses: [PCIBusNode.Key: PCIBusNode]
    /// Root buses in (domain, bus) order.
    public let rootBuses: [PCIBusNode.Key]
    /// Function indices in device-add order.
    public let addOrder: [Int]
    /// Things the linking noticed: a bridge whose secondary bus another bridge already claimed,
    /// bridges that loop back to their own ancestors.
    public let linkIssues: [String]
    public let capabilityIssues: [(address: PCIAddress, issue: CapabilityChainIssue, extended: Bool)]

    private let indexByAddress: [PCIAddress: Int]

    public init(_ enumeration: PCIEnumeration) {
        self.init(
            functions: enumeration.functions, source: enumeration.source, capabilityIssues: enumeration.capabilityIssues)
    }

    public init(
        functions unsorted: [PCIFunction], source: PCIConfigSource,
        capabilityIssues: [(address: PCIAddress, issue: CapabilityChainIssue, extended: Bool)] = []
    ) {
        let functions = unsorted.sorted { $0.address < $1.address }
        self.functions = functions
        self.source = source
        self.capabilityIssues = capabilityIssues
        var index: [PCIAddress: Int] = [:]
        index.reserveCapacity(functions.count)
        var buses: [PCIBusNode.Key: PCIBusNode] = [:]
        for (i, function) in functions.enumerated() {
            index[function.address] = i
            let key = PCIBusNode.Key(domain: function.address.domain, number: function.address.bus)
            buses[key, default: PCIBusNode(key: key)].functions.append(i)
        }
        var issues: [String] = []
        // Link each bridge to its secondary bus; the first bridge (address order) to claim a bus wins.
        for (i, function) in functions.enumerated() {
            guard let numbers = function.bridgeBuses else { continue }
            let key = PCIBusNode.Key(domain: function.address.domain, number: numbers.secondary)
            guard numbers.secondary != function.address.bus, numbers.secondary != 0 || function.address.bus != 0 else {
                continue  // unconfigured bridge (secondary 0) or one pointing at its own bus
            }
            guard var bus = buses[key] else { continue }  // empty secondary bus
            if let other = bus.bridge {
                issues.append(
                    "\(function.address) claims bus \(hex(numbers.secondary, width: 2)), already below \(functions[other].address)")
                continue
            }
            bus.bridge = i
            buses[key] = bus
        }
        // Break cycles (hostile dumps): a bus whose bridge chain returns to itself becomes a root.
        for key in buses.keys.sorted() {
            var seen: Set<PCIBusNode.Key> = [key]
            var current = key
            while let bridge = buses[current]?.bridge {
                let parent = PCIBusNode.Key(domain: functions[bridge].address.domain, number: functions[bridge].address.bus)
                if !seen.insert(parent).inserted {
                    issues.append("bus \(hex(key.number, width: 2)) loops back through bridge \(functions[bridge].address)")
                    buses[key]?.bridge = nil
                    break
                }
                current = parent
            }
        }
        for key in buses.keys.sorted() {
            guard let bridge = buses[key]?.bridge else { continue }
            let parent = PCIBusNode.Key(domain: functions[bridge].address.domain, number: functions[bridge].address.bus)
            buses[parent]?.children.append(key)
        }
        // Children in the order of their bridges' devfn (then bus number).
        let bridgeOf = buses.mapValues(\.bridge)
        for key in buses.keys {
            buses[key]?.children.sort { lhs, rhs in
                (functions[bridgeOf[lhs]!!].address, lhs) < (functions[bridgeOf[rhs]!!].address, rhs)
            }
        }
        let roots = buses.values.filter(\.isRoot).map(\.key).sorted()
        var order: [Int] = []
        order.reserveCapacity(functions.count)
        var stack = roots.reversed().map { $0 }
        while let key = stack.popLast() {
            guard let bus = buses[key] else { continue }
            order.append(contentsOf: bus.functions)
            stack.append(contentsOf: bus.children.reversed())
        }
        self.buses = buses
        self.rootBuses = roots
        self.addOrder = order
        self.linkIssues = issues
        self.indexByAddress = index
    }

    public func index(of address: PCIAddress) -> Int? { indexByAddress[address] }
    public subscript(address: PCIAddress) -> PCIFunction? { indexByAddress[address].map { functions[$0] } }

    /// The bus a function sits on.
    public func bus(of index: Int) -> PCIBusNode {
        let address = functions[index].address
        return buses[PCIBusNode.Key(domain: address.domain, number: address.bus)]!
    }

    /// The bridge directly above a function (`pdev->bus->self`), nil on a root bus.
    public func parentBridge(of index: Int) -> Int? { bus(of: index).bridge }

    /// The bus below a bridge (`pdev->subordinate`), if it holds any function.
    public func secondaryBus(of index: Int) -> PCIBusNode? {
        guard let numbers = functions[index].bridgeBuses else { return nil }
        let bus = buses[PCIBusNode.Key(domain: functions[index].address.domain, number: numbers.secondary)]
        return bus?.bridge == index ? bus : nil
    }

    /// `pci_is_root_bus(pdev->bus)`.
    public func isOnRootBus(_ index: Int) -> Bool { bus(of: index).isRoot }
}

extension PCITopology {
    /// Enumerates a source and links it: the usual way in.
    public static func load(_ source: PCIConfigSource, options: PCIEnumerator.Options = .init()) throws(PCIBusError)
        -> PCITopology
    {
        PCITopology(try PCIEnumerator.enumerate(source, options: options))
    }

    /// The same functions with `drivers` bound (absent: unbound), relinked: how a caller that
    /// builds a machine in memory says which drivers it has.
    public func binding(_ drivers: [PCIAddress: String]) -> PCITopology {
        let bound = functions.map { function -> PCIFunction in
            var function = function
            function.driver = drivers[function.address]
            return function
        }
        return PCITopology(functions: bound, source: source, capabilityIssues: capabilityIssues)
    }

}
