import PCIBus
import Testing

/// The generator the isolation properties run on: reproducible, well formed, and covering every
/// shape the properties are about.
@Suite("RandomTopology: generated machines")
struct RandomTopologyTests {
    static let seeds: [UInt64] = (0..<200).map { 0x7090_0000 + $0 }

    @Test("a seed replays the same machine byte for byte; another seed gives another")
    func reproducible() {
        let first = RandomTopology(seed: 42).functions
        let again = RandomTopology(seed: 42).functions
        #expect(first.map(\.address) == again.map(\.address))
        #expect(first.map(\.config) == again.map(\.config))
        #expect(RandomTopology(seed: 43).functions.map(\.config) != first.map(\.config))
    }

    @Test("every bridge's bus range holds exactly what is below it; no bus is claimed twice")
    func wellFormed() {
        for seed in Self.seeds {
            let topology = RandomTopology(seed: seed).topology
            #expect(topology.linkIssues.isEmpty, "seed 0x\(String(seed, radix: 16)): \(topology.linkIssues)")
            #expect(topology.rootBuses.count == 1, "seed 0x\(String(seed, radix: 16)): only bus 00 is a root bus")
            for index in topology.functions.indices {
                var current = index
                while let bridge = topology.parentBridge(of: current) {
                    let buses = topology.functions[bridge].bridgeBuses!
                    let bus = topology.functions[index].address.bus
                    #expect(
                        (buses.secondary...buses.subordinate).contains(bus),
                        "seed 0x\(String(seed, radix: 16)): \(topology.functions[index].address) is outside \(topology.functions[bridge].address)'s bus range")
                    current = bridge
                }
            }
        }
    }

    /// The shapes the isolation properties need, each counted over the seeds.
    enum Shape: String, CaseIterable {
        case rootPortWithoutACS, multifunctionRootPort, downstreamPortWithoutACS, downstreamPortWithACS, nestedSwitch
        case upstreamPortWithDMAFunction, multifunctionEndpointWithACS, multifunctionEndpointWithoutACS
        case pcieToPCIBridgeWithDevices, intelRCiEP, otherRCiEP
    }

    @Test("over 200 seeds every shape appears")
    func coverage() {
        var counts: [Shape: Int] = [:]
        for seed in Self.seeds {
            let topology = RandomTopology(seed: seed).topology
            for (index, function) in topology.functions.enumerated() {
                for shape in Self.shapes(of: function, index, in: topology) { counts[shape, default: 0] += 1 }
            }
        }
        for shape in Shape.allCases { #expect(counts[shape, default: 0] > 0, "no \(shape.rawValue) in 200 machines") }
    }

    static func shapes(of function: PCIFunction, _ index: Int, in topology: PCITopology) -> [Shape] {
        let parentType = topology.parentBridge(of: index).flatMap { topology.functions[$0].pciePortType }
        switch function.pciePortType {
        case .rootPort:
            return (function.acs == nil ? [.rootPortWithoutACS] : []) + (function.isMultifunction ? [.multifunctionRootPort] : [])
        case .downstreamPort:
            return [function.acs == nil ? .downstreamPortWithoutACS : .downstreamPortWithACS]
        case .upstreamPort:
            return (parentType == .downstreamPort ? [.nestedSwitch] : []) + (function.isMultifunction ? [.upstreamPortWithDMAFunction] : [])
        case .endpoint where function.isMultifunction:
            return [function.acs == nil ? .multifunctionEndpointWithoutACS : .multifunctionEndpointWithACS]
        case .rootComplexEndpoint:
            return [function.vendorID == 0x8086 ? .intelRCiEP : .otherRCiEP]
        case nil where parentType == .pcieToPCIBridge:
            return [.pcieToPCIBridgeWithDevices]
        default:
            return []
        }
    }
}
