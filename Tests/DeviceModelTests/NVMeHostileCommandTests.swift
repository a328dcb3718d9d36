import DeviceModels
import PCIBus
import SampleDrivers
import Testing

/// Every failure path answers with a status: seeded runs of commands with every opcode the
/// controller knows (and some it does not), random fields, NSIDs, lengths and offsets, and PRPs
/// into the data area, off it or unaligned. Queues are only ever created inside the data area
/// and I/O queue pair 1 is never deleted, so the controller has no reason to fail: each command
/// but an Asynchronous Event Request completes once with its CID, the controller stays ready,
/// and the requests that completed are at most those posted.
@Suite struct NVMeHostileCommandTests {
    static let adminOpcodes: [UInt8] = [0x00, 0x01, 0x02, 0x04, 0x05, 0x06, 0x08, 0x09, 0x0a, 0x0c, 0x10, 0x18, 0x7c, 0x80, 0xff]
    static let ioOpcodes: [UInt8] = [0x00, 0x01, 0x02, 0x04, 0x05, 0x08, 0x09, 0x0c, 0x7f, 0xff]

    /// A dword that is often a small or boundary value, sometimes anything.
    static func field(_ random: inout SplitMix64) -> UInt32 {
        switch random.below(6) {
        case 0: 0
        case 1: UInt32(random.below(40))
        case 2: [0xffff, 0xffff_ffff, 0x8000_0000, 0x7fff, 32767, 32768, 1 << 16][random.below(7)]
        case 3: UInt32(random.below(8)) << 16 | UInt32(random.below(40))
        default: UInt32(truncatingIfNeeded: random.next())
        }
    }

    /// A PRP: in the data area (often page aligned), unmapped, unaligned, or anything.
    static func address(_ host: NVMeHost, _ random: inout SplitMix64) -> UInt64 {
        switch random.below(5) {
        case 0, 1: host.iova(NVMeHost.Layout.data + 4096 * random.below(15))
        case 2: host.iova(NVMeHost.Layout.data + random.below(0xffff))
        case 3: 0xdead_0000 + UInt64(random.below(8)) * 4
        default: random.next()
        }
    }

    @Test("hostile commands all complete with a status, and the controller stays ready", arguments: [UInt64(1), 2, 3])
    func hostileCommands(seed: UInt64) throws {
        let host = try NVMeHost()
        defer { host.close() }
        var random = SplitMix64(seed: seed)
        for i in 0..<64 { host.region.bytes[NVMeHost.Layout.data + 64 * i] = UInt8(truncatingIfNeeded: random.next()) }
        // Command identifiers awaiting their completion, per queue (admin, I/O), and the
        // outstanding Asynchronous Event Requests.
        var awaited: [Bool: Set<UInt16>] = [false: [], true: []]
        var requests: Set<UInt16> = []
        var requestsCompleted = 0
        for _ in 0..<1500 {
            let onIO = random.below(2) == 0
            let opcode = onIO ? Self.ioOpcodes[random.below(Self.ioOpcodes.count)] : Self.adminOpcodes[random.below(Self.adminOpcodes.count)]
            var command = NVMeCommand(
                opcode: opcode, namespace: [0, 1, 1, 1, 1, 2, 0xffff_ffff][random.below(7)], prp1: Self.address(host, &random),
                prp2: Self.address(host, &random), cdw10: Self.field(&random), cdw11: Self.field(&random), cdw12: Self.field(&random),
                cdw13: Self.field(&random), cdw14: Self.field(&random), cdw15: Self.field(&random))
            if !onIO {
                switch opcode {
                case 0x00, 0x04: command.cdw10 = UInt32(2 + random.below(40))  // never I/O queue pair 1
                case 0x01, 0x05: command.prp1 = host.iova(NVMeHost.Layout.data + 4096 * random.below(16))  // queues in the data area
                default: break
                }
            }
            let flags = random.below(8) == 0 ? UInt32(random.below(4)) << 14 | UInt32(random.below(4)) << 8 : 0
            let identifier = onIO ? try host.submit(command, on: &host.io, flags: flags) : try host.submit(command, on: &host.admin, flags: flags)
            if !onIO, opcode == 0x0c, flags == 0 { requests.insert(identifier) } else { awaited[onIO]!.insert(identifier) }
            for queue in [true, false] {
                while let reaped = queue ? try host.reap(&host.io) : try host.reap(&host.admin) {
                    if !queue, requests.remove(reaped.identifier) != nil {
                        requestsCompleted += 1
                    } else {
                        #expect(awaited[queue]!.remove(reaped.identifier) != nil, "seed \(seed): \(reaped) twice, or never submitted")
                    }
                }
            }
            let status = try host.read32(0x1c)
            try #require(status == 1, "seed \(seed): CSTS 0x\(String(status, radix: 16)) after opcode \(opcode)")
        }
        let neverCompleted = awaited.values.map(\.count).reduce(0, +)
        #expect(neverCompleted == 0, "seed \(seed): \(neverCompleted) commands never completed")
        #expect(requests.count <= 4, "seed \(seed): \(requests.count) requests outstanding, AERL + 1 is 4")
        #expect(requestsCompleted > 0, "seed \(seed): no Asynchronous Event Request ever completed")
    }
}
