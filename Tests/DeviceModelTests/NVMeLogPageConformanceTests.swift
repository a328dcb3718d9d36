import SampleDrivers
import Testing

/// Get Log Page (NVMe 1.4 §5.14): Error Information (§5.14.1.1), SMART/Health Information
/// (§5.14.1.2) and Firmware Slot Information (§5.14.1.3) with what the controller did, and the
/// NUMD, LPO and NSID rules.
@Suite struct NVMeLogPageConformanceTests {
    typealias Row = NVMeConformance
    static let buffer = NVMeConformance.buffer
    static let data = NVMeConformance.data
    static let log = NVMeHost.Layout.buffer

    /// Get Log Page `lid`, `dwords` dwords from byte `offset`, into the buffer (two pages).
    static func getLog(_ lid: UInt32, dwords: UInt32, offset: UInt64 = 0, nsid: UInt32 = 0xffff_ffff) -> NVMeCommand {
        let numd = dwords - 1
        return NVMeCommand(
            opcode: 0x02, namespace: nsid, prp1: buffer, prp2: buffer + 4096, cdw10: numd << 16 | lid, cdw11: numd >> 16,
            cdw12: UInt32(truncatingIfNeeded: offset), cdw13: UInt32(truncatingIfNeeded: offset >> 32))
    }

    static let rows: [Row] = [
        Row(
            section: "5.14.1.1", behaviour: "Error Information: a failed admin command is the newest entry — count, SQID, CID, status with phase, location, NSID",
            ioQueue: false,
            steps: [
                .run(NVMeCommand(opcode: 0x7f, namespace: 9), .invalidOpcode), .run(getLog(0x01, dwords: 1024), .success),
                .act { host in
                    #expect(host.load(UInt64.self, at: log) == 1, "Error Count")
                    #expect(host.load(UInt16.self, at: log + 8) == 0 && host.load(UInt16.self, at: log + 10) == 0x100, "SQID, CID")
                    #expect(host.load(UInt16.self, at: log + 12) == (0x4001 << 1 | 1), "Status Field: DNR, Invalid Command Opcode; phase tag 1")
                    #expect(host.load(UInt16.self, at: log + 14) == 0, "Parameter Error Location: byte 0, the opcode")
                    #expect(host.load(UInt32.self, at: log + 24) == 9, "Namespace")
                    let rest = host.bytes(log + 64, 4096 - 64).allSatisfy { $0 == 0 }
                    #expect(rest, "one entry, the rest zero")
                },
            ]),
        Row(
            section: "5.14.1.1", behaviour: "Error Information: newest first; an I/O command out of range records its SQID, LBA and the SLBA's location (byte 40)",
            steps: [
                .run(NVMeCommand(opcode: 0x06, namespace: 5, prp1: buffer), .invalidNamespace),
                .run(NVMeCommand(opcode: 0x02, namespace: 1, prp1: data, cdw10: 40000), .lbaOutOfRange, io: true),
                .run(getLog(0x01, dwords: 32), .success),
                .act { host in
                    #expect(host.load(UInt64.self, at: log) == 2 && host.load(UInt64.self, at: log + 64) == 1, "Error Counts, newest first")
                    #expect(host.load(UInt16.self, at: log + 8) == 1 && host.load(UInt16.self, at: log + 14) == 40 && host.load(UInt64.self, at: log + 16) == 40000)
                    #expect(host.load(UInt16.self, at: log + 64 + 14) == 4 && host.load(UInt32.self, at: log + 64 + 24) == 5, "Invalid Namespace: byte 4, NSID 5")
                },
            ]),
        Row(
            section: "5.14.1.2", behaviour: "SMART/Health: temperature, spare, data units and commands of the I/O done, a power cycle, the error count",
            steps: [
                .run(NVMeCommand(opcode: 0x01, namespace: 1, prp1: data, prp2: data + 4096, cdw12: 15), .success, io: true),
                .run(NVMeCommand(opcode: 0x02, namespace: 1, prp1: data, cdw12: 7), .success, io: true),
                .run(NVMeCommand(opcode: 0x02, namespace: 1, prp1: data, cdw10: 8, cdw12: 1), .success, io: true),
                .run(NVMeCommand(opcode: 0x7f), .invalidOpcode),
                .run(getLog(0x02, dwords: 128), .success),
                .act { host in
                    #expect(host.bytes(log, 6) == [0, 0x36, 0x01, 100, 10, 0], "critical warning, 310 K, spare 100 %, threshold 10 %, 0 % used")
                    #expect(host.load(UInt64.self, at: log + 32) == 1 && host.load(UInt64.self, at: log + 48) == 1, "data units read and written: 10 and 16 blocks, rounded up to thousands")
                    #expect(host.load(UInt64.self, at: log + 64) == 2 && host.load(UInt64.self, at: log + 80) == 1, "host read and write commands")
                    #expect(host.load(UInt64.self, at: log + 112) == 1, "power cycles")
                    #expect(host.load(UInt64.self, at: log + 176) == 1, "error information log entries")
                    #expect(host.load(UInt16.self, at: log + 200) == 310, "temperature sensor 1")
                },
            ]),
        Row(section: "5.14.1.2", behaviour: "SMART/Health with NSID 0: the controller-wide log", steps: [.run(getLog(0x02, dwords: 128, nsid: 0), .success)]),
        Row(
            section: "5.14.1.2", behaviour: "SMART/Health with NSID 1 (LPA bit 0 clear, not per namespace): Invalid Field in Command",
            steps: [.run(getLog(0x02, dwords: 128, nsid: 1), .invalidField)]),
        Row(
            section: "5.14.1.3", behaviour: "Firmware Slot Information: slot 1 active, its revision in FRS1",
            steps: [
                .run(getLog(0x03, dwords: 128), .success),
                .act { host in
                    #expect(host.bytes(log, 8) == [1, 0, 0, 0, 0, 0, 0, 0], "AFI")
                    #expect(host.bytes(log + 8, 8) == Array("1.0     ".utf8), "FRS1")
                    let empty = host.bytes(log + 16, 496).allSatisfy { $0 == 0 }
                    #expect(empty, "FRS2-7 empty")
                },
            ]),
        Row(
            section: "5.14", behaviour: "a transfer longer than the log is zero-filled past its end; LPO (dword aligned) reads from inside the log",
            steps: [
                .act { host in UnsafeMutableRawBufferPointer(rebasing: host.region.bytes[log..<log + 8192]).initializeMemory(as: UInt8.self, repeating: 0xee) },
                .run(getLog(0x02, dwords: 1024, offset: 0), .success),
                .act { host in
                    let zeros = host.bytes(log + 512, 4096 - 512).allSatisfy { $0 == 0 }
                    #expect(zeros, "4 KiB asked, 512 bytes of log, zeros after")
                },
                .run(getLog(0x03, dwords: 2, offset: 8), .success),
                .act { host in #expect(host.bytes(log, 8) == Array("1.0     ".utf8), "FRS1 at offset 8") },
            ]),
        Row(section: "5.14", behaviour: "LPO not dword aligned: Invalid Field in Command", steps: [.run(getLog(0x02, dwords: 1, offset: 2), .invalidField)]),
        Row(section: "5.14", behaviour: "LPO past the log's end: Invalid Field in Command", steps: [.run(getLog(0x03, dwords: 1, offset: 512), .invalidField)]),
        Row(
            section: "5.14", behaviour: "NUMD past MDTS (128 KiB + 4 bytes; NUMDU 1; NUMDU FFFFh): Invalid Field in Command",
            steps: [.run(getLog(0x01, dwords: 32769), .invalidField), .run(getLog(0x01, dwords: 0x10001), .invalidField), .run(getLog(0x01, dwords: .max), .invalidField)]),
        Row(section: "5.14", behaviour: "LID 04h (Changed Namespace List, OAES bit 8 clear): Invalid Log Page", steps: [.run(getLog(0x04, dwords: 1024), .invalidLogPage)]),
        Row(section: "5.14", behaviour: "LID 05h (Commands Supported and Effects, LPA bit 1 clear): Invalid Log Page", steps: [.run(getLog(0x05, dwords: 1024), .invalidLogPage)]),
        Row(section: "5.14", behaviour: "LID 00h (reserved) and C0h (vendor specific): Invalid Log Page", steps: [.run(getLog(0x00, dwords: 1), .invalidLogPage), .run(getLog(0xc0, dwords: 1), .invalidLogPage)]),
        Row(section: "5.14", behaviour: "a log buffer the IOMMU does not map: Data Transfer Error", steps: [.run(NVMeCommand(opcode: 0x02, prp1: 0xdead_0000, cdw10: 127 << 16 | 0x02), .dataTransferError)]),
    ]

    @Test("Get Log Page, per log", arguments: rows)
    func logPage(_ row: NVMeConformance) throws { try row.run() }
}
