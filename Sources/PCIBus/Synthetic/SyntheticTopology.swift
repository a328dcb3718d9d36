import SystemPackage
/// Generates large, realistic topologies for benchmarks and property tests: per domain, a host
/// bridge and root ports with ACS, each leading to a PCIe switch whose downstream ports (every
/// fourth one without ACS) each hold a four-function endpoint without ACS.
public enum SyntheticTopology {
    /// The most functions a generated topology may have: each carries 4 KiB of config space, so
    /// this is about 4 GB, more than any benchmark needs and less than would exhaust a host.
    public static let maxCount = 1_000_000

    /// Exactly `count` functions (the last switch is cut short), in address order; `EINVAL` for a
    /// count below 0 or above `maxCount`.
    public static func functions(count: Int) throws(PCIBusError) -> [(address: PCIAddress, title: String, config: [UInt8])] {
        guard (0...maxCount).contains(count) else {
            throw PCIBusError(
                .invalidCount, .invalidArgument,
                "a synthetic topology of \(count) functions: the count must be 0 … \(maxCount) (4 KiB of config space each)")
        }
        var result: [(PCIAddress, String, [UInt8])] = []
        result.reserveCapacity(count)
        var domain: UInt32 = 0
        let isolated: ACSFlags = .requiredForIsolation
        func add(_ address: PCIAddress, _ title: String, _ builder: ConfigSpaceBuilder) {
            if result.count < count { result.append((address, title, builder.bytes)) }
        }
        while result.count < count {
            add(
                PCIAddress(domain: domain, bus: 0, device: 0, function: 0), "Host bridge: Intel Corporation Device",
                ConfigSpaceBuilder(vendor: 0x8086, device: 0x2020, classCode: 0x060000, size: 256))
            var nextBus = 1
            for port in 1...8 where result.count < count {
                let rootBus = UInt8(nextBus)
                var rootPort = ConfigSpaceBuilder(vendor: 0x8086, device: 0x2030, classCode: 0x060400, headerType: .bridge)
                rootPort.addPCIExpress(.rootPort)
                rootPort.addACS(capability: isolated, control: [])
                let subordinate = UInt8(nextBus + 17)
                rootPort.setBuses(primary: 0, secondary: rootBus, subordinate: subordinate)
                add(PCIAddress(domain: domain, bus: 0, device: UInt8(port), function: 0), "PCI bridge: Root Port", rootPort)
                var upstream = ConfigSpaceBuilder(vendor: 0x10b5, device: 0x8796, classCode: 0x060400, headerType: .bridge)
                upstream.addPCIExpress(.upstreamPort)
                upstream.setBuses(primary: rootBus, secondary: rootBus + 1, subordinate: subordinate)
                add(PCIAddress(domain: domain, bus: rootBus, device: 0, function: 0), "PCI bridge: Switch Upstream Port", upstream)
                for slot in 0..<16 where result.count < count {
                    let endpointBus = rootBus + 2 + UInt8(slot)
                    var downstream = ConfigSpaceBuilder(
                        vendor: 0x10b5, device: 0x8796, classCode: 0x060400, headerType: .bridge)
                    downstream.addPCIExpress(.downstreamPort)
                    if slot % 4 != 3 { downstream.addACS(capability: isolated, control: []) }
                    downstream.setBuses(primary: rootBus + 1, secondary: endpointBus, subordinate: endpointBus)
                    add(
                        PCIAddress(domain: domain, bus: rootBus + 1, device: UInt8(slot), function: 0),
                        "PCI bridge: Switch Downstream Port", downstream)
                    for function in 0..<4 {
                        var endpoint = ConfigSpaceBuilder(
                            vendor: 0x15b3, device: 0x1017, classCode: 0x020000, multifunction: true)
                        endpoint.addPCIExpress(.endpoint, flr: true)
                        add(
                            PCIAddress(domain: domain, bus: endpointBus, device: 0, function: UInt8(function)),
                            "Ethernet controller: Mellanox", endpoint)
                    }
                }
                nextBus += 18
            }
            domain += 1
        }
        return result
    }
}
