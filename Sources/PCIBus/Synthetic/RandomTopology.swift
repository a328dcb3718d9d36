/// Random machines for property tests, one per seed (the same seed always gives the same bytes,
/// so a failure replays from it). One PCI domain: an Intel host bridge; root ports, some of them
/// multifunction, with ACS or without; root-complex integrated endpoints, Intel ones (isolated by
/// the RCiEP quirk, ACS-31) and others; and below each root port nothing, an endpoint, a PCIe
/// switch whose downstream ports may lack ACS (switches nest, and an upstream port may carry a
/// second function without ACS), or a PCIe-to-PCI bridge with conventional devices. Endpoints
/// have one to four functions. An ACS capability advertises SV RR CR UF with a random control
/// register, so the policy (enabled at boot, ACS-22, or as dumped) changes the answer. No other
/// function is decided by a quirk (ACS-31, ALIAS-04).
public struct RandomTopology: Sendable {
    public let seed: UInt64
    /// In the order generated; `topology` sorts them by address.
    public let functions: [(address: PCIAddress, title: String, config: [UInt8])]

    public init(seed: UInt64) {
        var generator = Generator(random: SplitMix64(seed: seed))
        generator.machine()
        self.seed = seed
        functions = generator.functions
    }

    /// The functions linked into buses and bridges, as if read from a dump named after the seed.
    public var topology: PCITopology {
        PCITopology(
            functions: functions.map { PCIFunction(address: $0.address, config: PCIConfigSpace(bytes: $0.config)) },
            source: .dump(path: "<RandomTopology seed 0x\(String(seed, radix: 16))>"))
    }
}

/// The recursive part: every bridge takes the next free bus for its secondary and, once the
/// tree below it is generated, the last bus used as its subordinate.
private struct Generator {
    var random: SplitMix64
    var functions: [(address: PCIAddress, title: String, config: [UInt8])] = []
    var nextBus = 1
    /// Switches nest at most this deep below a root port.
    static let maxSwitchDepth = 2
    /// Bridges stop taking buses here, well inside the 256 a domain has.
    static let busBudget = 240

    mutating func chance(_ percent: Int) -> Bool { random.below(100) < percent }

    mutating func machine() {
        add(0, 0, 0, "Host bridge: Intel Corporation Device", ConfigSpaceBuilder(vendor: 0x8086, device: 0x2020, classCode: 0x060000, size: 256))
        var device: UInt8 = 1
        for _ in 0..<(1 + random.below(5)) {
            let count = chance(20) ? 2 : 1
            for function in 0..<UInt8(count) { rootPort(device: device, function: function, multifunction: count > 1) }
            device += 1
        }
        for slot in 0..<UInt8(random.below(3)) { endpoint(bus: 0, device: 0x10 + slot, type: .rootComplexEndpoint) }
    }

    /// A root port at `00:device.function` and whatever sits below it.
    mutating func rootPort(device: UInt8, function: UInt8, multifunction: Bool) {
        var port = ConfigSpaceBuilder(
            vendor: 0x8086, device: 0x2030, classCode: 0x060400, headerType: .bridge, multifunction: multifunction)
        port.addPCIExpress(.rootPort)
        addRandomACS(&port, percent: 70)
        bridge(port, at: (0, device, function), "PCI bridge: Intel Corporation Root Port") { generator, secondary in
            generator.link(bus: secondary, depth: 0)
        }
    }

    /// What a link below a root or downstream port leads to.
    mutating func link(bus: UInt8, depth: Int) {
        let room = nextBus < Self.busBudget
        switch random.below(100) {
        case 0..<10: return
        case 10..<50: endpoint(bus: bus, device: 0, type: .endpoint)
        case 50..<80 where room && depth < Self.maxSwitchDepth: pcieSwitch(bus: bus, depth: depth)
        case 80..<100 where room: pciBridge(bus: bus)
        default: endpoint(bus: bus, device: 0, type: .endpoint)
        }
    }

    /// A PCIe switch: its upstream port at `bus:00.0` (sometimes with a DMA function at 00.1,
    /// without ACS), one to four downstream ports on its internal bus, each with a link below.
    mutating func pcieSwitch(bus: UInt8, depth: Int) {
        let dmaFunction = chance(10)
        var upstream = ConfigSpaceBuilder(
            vendor: 0x10b5, device: 0x8796, classCode: 0x060400, headerType: .bridge, multifunction: dmaFunction)
        upstream.addPCIExpress(.upstreamPort)
        if dmaFunction {
            var dma = ConfigSpaceBuilder(vendor: 0x10b5, device: 0x87d0, classCode: 0x088000, multifunction: true)
            dma.addPCIExpress(.endpoint)
            add(bus, 0, 1, "System peripheral: PLX Technology DMA engine", dma)
        }
        bridge(upstream, at: (bus, 0, 0), "PCI bridge: PLX Technology Switch Upstream Port") { generator, switchBus in
            for slot in 0..<UInt8(1 + generator.random.below(4)) {
                var downstream = ConfigSpaceBuilder(vendor: 0x10b5, device: 0x8796, classCode: 0x060400, headerType: .bridge)
                downstream.addPCIExpress(.downstreamPort)
                generator.addRandomACS(&downstream, percent: 60)
                generator.bridge(downstream, at: (switchBus, slot, 0), "PCI bridge: PLX Technology Switch Downstream Port") { generator, secondary in
                    generator.link(bus: secondary, depth: depth + 1)
                }
            }
        }
    }

    /// A PCIe-to-PCI bridge at `bus:00.0` with one to three conventional devices behind it.
    mutating func pciBridge(bus: UInt8) {
        var bridgeConfig = ConfigSpaceBuilder(vendor: 0x104c, device: 0x8240, classCode: 0x060400, headerType: .bridge)
        bridgeConfig.addPCIExpress(.pcieToPCIBridge)
        bridge(bridgeConfig, at: (bus, 0, 0), "PCI bridge: Texas Instruments XIO2001 PCI Express-to-PCI Bridge") { generator, secondary in
            for slot in 0..<UInt8(1 + generator.random.below(3)) {
                let count = generator.chance(25) ? 2 : 1
                for function in 0..<UInt8(count) {
                    let device = ConfigSpaceBuilder(
                        vendor: 0x10ec, device: 0x8169, classCode: 0x020000, multifunction: count > 1, size: 256)
                    generator.add(secondary, 1 + slot, function, "Ethernet controller: Realtek conventional PCI NIC", device)
                }
            }
        }
    }

    /// One to four functions at `bus:device`; on the root bus RCiEPs, Intel or not.
    mutating func endpoint(bus: UInt8, device: UInt8, type: PCIePortType) {
        let count = chance(60) ? 1 : 2 + random.below(3)
        let intel = type == .rootComplexEndpoint && chance(50)
        for function in 0..<UInt8(count) {
            var config = ConfigSpaceBuilder(
                vendor: intel ? 0x8086 : 0x15b3, device: intel ? 0x2021 : 0x1017, classCode: 0x020000,
                multifunction: count > 1)
            config.addPCIExpress(type, flr: true)
            addRandomACS(&config, percent: 50)
            add(bus, device, function, intel ? "System peripheral: Intel Corporation RCiEP" : "Ethernet controller: Mellanox", config)
        }
    }

    /// A bridge at `location`: `below` fills its secondary bus; the bus numbers are written after.
    mutating func bridge(
        _ config: ConfigSpaceBuilder, at location: (bus: UInt8, device: UInt8, function: UInt8), _ title: String,
        below: (inout Generator, UInt8) -> Void
    ) {
        let secondary = UInt8(nextBus)
        nextBus += 1
        let slot = functions.count
        add(location.bus, location.device, location.function, title, config)
        below(&self, secondary)
        var finished = config
        finished.setBuses(primary: location.bus, secondary: secondary, subordinate: UInt8(nextBus - 1))
        functions[slot].config = finished.bytes
    }

    /// With `percent` probability an ACS capability advertising SV RR CR UF, its control all of
    /// them, none, or a random mix.
    mutating func addRandomACS(_ config: inout ConfigSpaceBuilder, percent: Int) {
        guard chance(percent) else { return }
        let control: ACSFlags
        switch random.below(4) {
        case 0, 1: control = .requiredForIsolation
        case 2: control = []
        default: control = ACSFlags(rawValue: UInt16(truncatingIfNeeded: random.next())).intersection(.requiredForIsolation)
        }
        config.addACS(capability: .requiredForIsolation, control: control)
    }

    mutating func add(_ bus: UInt8, _ device: UInt8, _ function: UInt8, _ title: String, _ config: ConfigSpaceBuilder) {
        functions.append((PCIAddress(domain: 0, bus: bus, device: device, function: function), title, config.bytes))
    }
}
