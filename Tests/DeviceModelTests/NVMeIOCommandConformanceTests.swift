import DeviceModels
import SampleDrivers
import Testing

/// The NVM command set's I/O commands (NVMe 1.4 §6) on I/O queue 1: Flush (§6.8), Read (§6.9),
/// Write (§6.15), Write Zeroes (§6.17) and Dataset Management (§6.7), with what they leave on
/// the media and how each refuses a bad namespace, range or field.
@Suite struct NVMeIOCommandConformanceTests {
    typealias Row = NVMeConformance
    static let data = NVMeConformance.data
    static let buffer = NVMeConformance.buffer

    static func write(lba: UInt32, blocks: UInt32, nsid: UInt32 = 1) -> NVMeCommand {
        NVMeCommand(opcode: 0x01, namespace: nsid, prp1: data, prp2: data + 4096, cdw10: lba, cdw12: blocks - 1)
    }
    static func read(lba: UInt32, blocks: UInt32, nsid: UInt32 = 1) -> NVMeCommand {
        NVMeCommand(opcode: 0x02, namespace: nsid, prp1: data, prp2: data + 4096, cdw10: lba, cdw12: blocks - 1)
    }
    static func flush(nsid: UInt32) -> NVMeCommand { NVMeCommand(opcode: 0x00, namespace: nsid) }

    /// Fills the first 8 KiB of data with a pattern, writes it at LBA 100…115, and checks it is there.
    static let written = Row.Step.act { host in
        for i in 0..<8192 { host.region.bytes[NVMeHost.Layout.data + i] = UInt8(truncatingIfNeeded: i &* 7 &+ 1) }
        let status = try host.run(write(lba: 100, blocks: 16), io: true).status
        let landed = host.controller.mediaContents(lba: 100, blocks: 16) == host.bytes(NVMeHost.Layout.data, 8192)
        #expect(status == .success && landed, "the pattern's Write: \(status)")
    }

    /// Whether `blocks` blocks from `lba` read as zeros.
    static func zeroed(_ lba: UInt64, _ blocks: Int) -> Row.Step {
        .act { host in
            let zero = host.controller.mediaContents(lba: lba, blocks: blocks).allSatisfy { $0 == 0 }
            #expect(zero, "LBA \(lba) + \(blocks) blocks zero")
        }
    }

    /// Whether `blocks` blocks from `lba` still hold the pattern `written` put there.
    static func kept(_ lba: UInt64, _ blocks: Int) -> Row.Step {
        .act { host in
            let offset = Int(lba - 100) * 512
            let pattern = host.controller.mediaContents(lba: lba, blocks: blocks) == (offset..<offset + blocks * 512).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 1) }
            #expect(pattern, "LBA \(lba) + \(blocks) blocks keep the pattern")
        }
    }

    /// Dataset Management ranges in the buffer: (blocks, starting LBA) each.
    static func ranges(_ ranges: [(UInt32, UInt64)]) -> Row.Step {
        .act { host in
            for (n, (blocks, lba)) in ranges.enumerated() {
                host.store(UInt32(0), at: NVMeHost.Layout.buffer + 16 * n)
                host.store(blocks, at: NVMeHost.Layout.buffer + 16 * n + 4)
                host.store(lba, at: NVMeHost.Layout.buffer + 16 * n + 8)
            }
        }
    }
    static func deallocate(ranges: UInt32, attributes: UInt32 = 1 << 2, nsid: UInt32 = 1) -> NVMeCommand {
        NVMeCommand(opcode: 0x09, namespace: nsid, prp1: buffer, cdw10: ranges - 1, cdw11: attributes)
    }

    static let rows: [Row] = [
        Row(
            section: "6.15", behaviour: "Write then Read (§6.9) of 16 blocks: the data comes back",
            steps: [
                written, .act { host in UnsafeMutableRawBufferPointer(rebasing: host.region.bytes[NVMeHost.Layout.data..<NVMeHost.Layout.data + 8192]).initializeMemory(as: UInt8.self, repeating: 0) },
                .run(read(lba: 100, blocks: 16), .success, io: true), kept(100, 16),
                .act { host in
                    let same = host.bytes(NVMeHost.Layout.data, 8192) == host.controller.mediaContents(lba: 100, blocks: 16)
                    #expect(same, "the Read brought back what is on the media")
                },
            ]),
        Row(section: "6.15", behaviour: "Write to NSID 2: Invalid Namespace or Format", steps: [.run(write(lba: 0, blocks: 1, nsid: 2), .invalidNamespace, io: true)]),
        Row(
            section: "6.15", behaviour: "Write past the namespace's end: LBA Out of Range, nothing written",
            steps: [.run(write(lba: 32760, blocks: 16), .lbaOutOfRange, io: true), zeroed(32760, 8)]),
        Row(
            section: "6.9", behaviour: "Read of 257 blocks, past MDTS: Invalid Field in Command",
            steps: [.run(NVMeCommand(opcode: 0x02, namespace: 1, prp1: data, cdw12: 256), .invalidField, io: true)]),
        Row(section: "6.9", behaviour: "Read from NSID FFFFFFFFh: Invalid Namespace or Format", steps: [.run(read(lba: 0, blocks: 1, nsid: 0xffff_ffff), .invalidNamespace, io: true)]),
        Row(
            section: "4.2", behaviour: "Read with PSDT set (SGLs, SGLS 0): Invalid Field in Command",
            steps: [
                .act { host in
                    let identifier = try host.submit(read(lba: 0, blocks: 1), on: &host.io, flags: 0x4000)
                    let reaped = try #require(try host.reap(&host.io))
                    #expect(reaped.identifier == identifier && reaped.status == .invalidField, "\(reaped)")
                }
            ]),
        Row(section: "6.8", behaviour: "Flush of namespace 1", steps: [written, .run(flush(nsid: 1), .success, io: true), kept(100, 16)]),
        Row(section: "6.8", behaviour: "Flush of NSID FFFFFFFFh, every namespace (VWC bits 2:1 = 11b)", steps: [.run(flush(nsid: 0xffff_ffff), .success, io: true)]),
        Row(section: "6.8", behaviour: "Flush of NSID 0: Invalid Namespace or Format", steps: [.run(flush(nsid: 0), .invalidNamespace, io: true)]),
        Row(section: "6.8", behaviour: "Flush of NSID 2: Invalid Namespace or Format", steps: [.run(flush(nsid: 2), .invalidNamespace, io: true)]),
        Row(
            section: "6.17", behaviour: "Write Zeroes of 4 blocks inside written data: those read as zeros, their neighbours keep theirs",
            steps: [written, .run(NVMeCommand(opcode: 0x08, namespace: 1, cdw10: 104, cdw12: 3), .success, io: true), kept(100, 4), zeroed(104, 4), kept(108, 8)]),
        Row(
            section: "6.17", behaviour: "Write Zeroes with DEAC (deallocate): the blocks read as zeros (DLFEAT)",
            steps: [written, .run(NVMeCommand(opcode: 0x08, namespace: 1, cdw10: 100, cdw12: 1 << 25 | 15), .success, io: true), zeroed(100, 16)]),
        Row(
            section: "6.17", behaviour: "Write Zeroes of 65536 blocks from LBA 0 runs past the namespace: LBA Out of Range (MDTS does not bound it), nothing zeroed",
            steps: [written, .run(NVMeCommand(opcode: 0x08, namespace: 1, cdw10: 0, cdw12: 0xffff), .lbaOutOfRange, io: true), kept(100, 16)]),
        Row(
            section: "6.17", behaviour: "Write Zeroes of 32768 blocks (16 MiB, past MDTS): the whole namespace in one command",
            steps: [written, .run(NVMeCommand(opcode: 0x08, namespace: 1, cdw12: 0x7fff), .success, io: true), zeroed(0, 32768)]),
        Row(section: "6.17", behaviour: "Write Zeroes to NSID 2: Invalid Namespace or Format", steps: [.run(NVMeCommand(opcode: 0x08, namespace: 2), .invalidNamespace, io: true)]),
        Row(
            section: "6.7", behaviour: "Dataset Management, AD: two ranges deallocated read as zeros, the blocks between keep their data",
            steps: [written, ranges([(2, 100), (4, 110)]), .run(deallocate(ranges: 2), .success, io: true), zeroed(100, 2), kept(102, 8), zeroed(110, 4), kept(114, 2)]),
        Row(
            section: "6.7", behaviour: "Dataset Management, AD, a range past the namespace: LBA Out of Range, no range deallocated",
            steps: [written, ranges([(2, 100), (16, 32760)]), .run(deallocate(ranges: 2), .lbaOutOfRange, io: true), kept(100, 16)]),
        Row(
            section: "6.7", behaviour: "Dataset Management with only IDR/IDW hints (no AD): success, the data stays",
            steps: [written, ranges([(16, 100)]), .run(deallocate(ranges: 1, attributes: 0b11), .success, io: true), kept(100, 16)]),
        Row(
            section: "6.7", behaviour: "Dataset Management, 256 ranges (NR FFh), of zero length but the last",
            steps: [written, ranges(Array(repeating: (0, 0), count: 255) + [(1, 115)]), .run(deallocate(ranges: 256), .success, io: true), kept(100, 15), zeroed(115, 1)]),
        Row(section: "6.7", behaviour: "Dataset Management on NSID FFFFFFFFh: Invalid Namespace or Format", steps: [.run(deallocate(ranges: 1, nsid: 0xffff_ffff), .invalidNamespace, io: true)]),
        Row(
            section: "6.7", behaviour: "Dataset Management ranges the IOMMU does not map: Data Transfer Error",
            steps: [.run(NVMeCommand(opcode: 0x09, namespace: 1, prp1: 0xdead_0000, cdw11: 1 << 2), .dataTransferError, io: true)]),
        Row(section: "6", behaviour: "Compare (05h, ONCS bit 0 clear): Invalid Command Opcode", steps: [.run(NVMeCommand(opcode: 0x05, namespace: 1, prp1: data), .invalidOpcode, io: true)]),
        Row(section: "6", behaviour: "Write Uncorrectable (04h, ONCS bit 1 clear): Invalid Command Opcode", steps: [.run(NVMeCommand(opcode: 0x04, namespace: 1), .invalidOpcode, io: true)]),
        Row(section: "6", behaviour: "Verify (0Ch, ONCS bit 7 clear): Invalid Command Opcode", steps: [.run(NVMeCommand(opcode: 0x0c, namespace: 1), .invalidOpcode, io: true)]),
        Row(section: "6", behaviour: "Reservation Register (0Dh, ONCS bit 5 clear): Invalid Command Opcode", steps: [.run(NVMeCommand(opcode: 0x0d, namespace: 1), .invalidOpcode, io: true)]),
    ]

    @Test("NVM I/O commands", arguments: rows)
    func ioCommand(_ row: NVMeConformance) throws { try row.run() }
}
