/// Everything the bus layer can say about one machine: its topology, its groups and which
/// drivers are bound, loaded from this host, a dump or a `devices/` machine.
public struct BusSnapshot: Sendable {
    public enum Origin: Sendable {
        case host(sysfsPath: String?)
        case dump(path: String)
        case machine(FixtureMachine)
    }

    public let origin: Origin
    public let topology: PCITopology
    public let grouping: IsolationGrouping
    /// Driver bound to each function (absent = unbound), when `driversKnown`: derived from the
    /// topology's functions, never given separately.
    public let drivers: [PCIAddress: String]
    /// A host's sysfs and a machine's manifest say what is bound; a bare dump does not.
    public let driversKnown: Bool

    public static func load(
        _ origin: Origin, platform: IOMMUPlatformKind? = nil, acsPolicy: ACSEnablePolicy = .bootEnable,
        options: PCIEnumerator.Options = .init()
    ) throws(PCIBusError) -> BusSnapshot {
        let topology: PCITopology
        var chosenPlatform = platform
        var platformOrigin = "set explicitly"
        var units: IOMMUUnitOrder?
        switch origin {
        case .host(let sysfsPath):
            topology = try PCITopology.load(.host(sysfsPath: sysfsPath), options: options)
            units = IOMMUUnitOrder.host(sysfsPath: sysfsPath)
        case .dump(let path):
            topology = try PCITopology.load(.dump(path: path), options: options)
        case .machine(let machine):
            topology = try machine.topology(options: options)
            chosenPlatform = platform ?? machine.platform
            if platform == nil { platformOrigin = "from the machine's manifest" }
            units = machine.iommuUnits
        }
        let driversKnown: Bool
        switch origin {
        case .dump: driversKnown = false
        case .host, .machine: driversKnown = true
        }
        return BusSnapshot(
            origin: origin, topology: topology, driversKnown: driversKnown,
            configuration: .init(platform: chosenPlatform, acsPolicy: acsPolicy, platformOrigin: platformOrigin, units: units))
    }

    /// A snapshot of a topology built in memory (tests, generated machines), grouped with `configuration`.
    public init(
        origin: Origin, topology: PCITopology, driversKnown: Bool = true,
        configuration: IsolationGrouping.Configuration = .init()
    ) {
        self.origin = origin
        self.topology = topology
        self.grouping = IsolationGrouping(topology: topology, configuration: configuration)
        var drivers: [PCIAddress: String] = [:]
        for function in topology.functions { drivers[function.address] = function.driver }
        self.drivers = drivers
        self.driversKnown = driversKnown
    }

    /// The kernel's own groups, where the source has them (a live host with an IOMMU on).
    public var kernelGroups: [Int: [PCIAddress]]? {
        var groups: [Int: [PCIAddress]] = [:]
        for function in topology.functions {
            if let id = function.kernelIOMMUGroup { groups[id, default: []].append(function.address) }
        }
        return groups.isEmpty ? nil : groups
    }
}
