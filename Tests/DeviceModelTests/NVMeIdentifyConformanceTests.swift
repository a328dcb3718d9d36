import SampleDrivers
import Testing

/// Identify (NVMe 1.4 §5.15): each CNS the controller answers and those it refuses, then the
/// fields of the controller (§5.15.2.2) and namespace (§5.15.2.1) structures a driver reads.
@Suite struct NVMeIdentifyConformanceTests {
    typealias Row = NVMeConformance
    static let buffer = NVMeConformance.buffer

    static func identify(cns: UInt32, nsid: UInt32 = 0) -> NVMeCommand { NVMeCommand(opcode: 0x06, namespace: nsid, prp1: buffer, cdw10: cns) }

    static let commands: [Row] = [
        Row(section: "5.15.2.2", behaviour: "CNS 01h: the Identify Controller structure", steps: [.run(identify(cns: 0x01), .success)]),
        Row(section: "5.15.2.1", behaviour: "CNS 00h, NSID 1: the Identify Namespace structure", steps: [.run(identify(cns: 0x00, nsid: 1), .success)]),
        Row(section: "5.15.2.1", behaviour: "CNS 00h, NSID 0: Invalid Namespace or Format", steps: [.run(identify(cns: 0x00), .invalidNamespace)]),
        Row(section: "5.15.2.1", behaviour: "CNS 00h, NSID 2 (past NN): Invalid Namespace or Format", steps: [.run(identify(cns: 0x00, nsid: 2), .invalidNamespace)]),
        Row(
            section: "5.15.2.1", behaviour: "CNS 00h, NSID FFFFFFFFh without Namespace Management: Invalid Namespace or Format",
            steps: [.run(identify(cns: 0x00, nsid: 0xffff_ffff), .invalidNamespace)]),
        Row(
            section: "5.15.2.3", behaviour: "CNS 02h, NSID 0: the active namespace list is NSID 1",
            steps: [
                .run(identify(cns: 0x02), .success),
                .act { host in
                    #expect(host.load(UInt32.self, at: NVMeHost.Layout.buffer) == 1)
                    let rest = host.bytes(NVMeHost.Layout.buffer + 4, 4092).allSatisfy { $0 == 0 }
                    #expect(rest, "no other NSID")
                },
            ]),
        Row(
            section: "5.15.2.3", behaviour: "CNS 02h, NSID 1: no active namespace above 1, an empty list",
            steps: [
                .run(identify(cns: 0x02, nsid: 1), .success),
                .act { host in
                    let empty = host.bytes(NVMeHost.Layout.buffer, 4096).allSatisfy { $0 == 0 }
                    #expect(empty)
                },
            ]),
        Row(section: "5.15.2.3", behaviour: "CNS 02h, NSID FFFFFFFEh: Invalid Namespace or Format", steps: [.run(identify(cns: 0x02, nsid: 0xffff_fffe), .invalidNamespace)]),
        Row(section: "5.15.2.3", behaviour: "CNS 02h, NSID FFFFFFFFh: Invalid Namespace or Format", steps: [.run(identify(cns: 0x02, nsid: 0xffff_ffff), .invalidNamespace)]),
        Row(
            section: "5.15.2.4", behaviour: "CNS 03h, NSID 1: EUI64, NGUID and UUID descriptors, the EUI64 and NGUID as Identify Namespace has them",
            steps: [
                .run(identify(cns: 0x00, nsid: 1), .success),
                .act { host in
                    let namespace = host.bytes(NVMeHost.Layout.buffer, 4096)
                    let descriptors = try host.identify(cns: 0x03, namespace: 1)
                    // NIDT, NIDL, 2 reserved, NID; a zero NIDT ends the list.
                    var found: [UInt8: [UInt8]] = [:]
                    var offset = 0
                    while offset + 4 <= descriptors.count, descriptors[offset] != 0 {
                        let length = Int(descriptors[offset + 1])
                        found[descriptors[offset]] = Array(descriptors[offset + 4..<offset + 4 + length])
                        offset += 4 + length
                    }
                    #expect(found[1] == Array(namespace[120..<128]), "EUI64")
                    #expect(found[2] == Array(namespace[104..<120]), "NGUID")
                    #expect(found[2]?.contains { $0 != 0 } == true)
                    let uuid = try #require(found[3])
                    #expect(uuid.count == 16 && uuid[6] >> 4 == 8 && uuid[8] >> 6 == 0b10, "an RFC 9562 version 8 UUID")
                },
            ]),
        Row(section: "5.15.2.4", behaviour: "CNS 03h, NSID 0: Invalid Namespace or Format", steps: [.run(identify(cns: 0x03), .invalidNamespace)]),
        Row(section: "5.15.2.4", behaviour: "CNS 03h, NSID 2: Invalid Namespace or Format", steps: [.run(identify(cns: 0x03, nsid: 2), .invalidNamespace)]),
        Row(
            section: "5.15", behaviour: "CNS 05h (I/O command set specific namespace, not in CAP.CSS): Invalid Field in Command",
            steps: [.run(identify(cns: 0x05, nsid: 1), .invalidField)]),
        Row(
            section: "5.15", behaviour: "CNS 06h (I/O command set specific controller, not in CAP.CSS): Invalid Field in Command",
            steps: [.run(identify(cns: 0x06), .invalidField)]),
        Row(section: "5.15", behaviour: "CNS 04h (NVM Set list): Invalid Field in Command", steps: [.run(identify(cns: 0x04), .invalidField)]),
        Row(section: "5.15", behaviour: "CNS 10h (allocated namespaces, no Namespace Management): Invalid Field in Command", steps: [.run(identify(cns: 0x10), .invalidField)]),
        Row(
            section: "5.15", behaviour: "the CNTID and NVMSETID fields do not turn CNS 01h into anything else",
            steps: [.run(NVMeCommand(opcode: 0x06, prp1: buffer, cdw10: 0x0007_0001, cdw11: 3), .success)]),
        Row(
            section: "4.3", behaviour: "an Identify buffer that starts mid-page spans PRP1 and PRP2",
            steps: [
                .run(NVMeCommand(opcode: 0x06, prp1: buffer + 2048, prp2: buffer + 4096, cdw10: 1), .success),
                .act { host in #expect(host.load(UInt16.self, at: NVMeHost.Layout.buffer + 2048) == 0x1234 && host.load(UInt32.self, at: NVMeHost.Layout.buffer + 2048 + 516) == 1) },
            ]),
        Row(section: "4.3", behaviour: "PRP1 not dword aligned: PRP Offset Invalid", steps: [.run(NVMeCommand(opcode: 0x06, prp1: buffer + 2, cdw10: 1), .prpOffsetInvalid)]),
        Row(
            section: "4.3", behaviour: "an Identify buffer the IOMMU does not map: Data Transfer Error",
            steps: [.run(NVMeCommand(opcode: 0x06, prp1: 0xdead_0000, cdw10: 1), .dataTransferError)]),
    ]

    @Test("Identify, per CNS", arguments: commands)
    func command(_ row: NVMeConformance) throws { try row.run() }

    /// A field of an Identify structure: its bytes as a little-endian integer, or ASCII.
    struct Field: Sendable, CustomTestStringConvertible {
        let section: String
        let name: String
        let offset: Int
        let width: Int
        let value: UInt64?
        var text: String? = nil
        var testDescription: String {
            "§\(section) \(name) (bytes \(offset)…\(offset + width - 1)) = " + (text.map { "\"\($0)\"" } ?? "0x" + String(value ?? 0, radix: 16))
        }

        init(_ section: String, _ name: String, _ offset: Int, _ width: Int, _ value: UInt64) {
            (self.section, self.name, self.offset, self.width, self.value) = (section, name, offset, width, value)
        }

        init(_ section: String, _ name: String, _ offset: Int, _ width: Int, text: String) {
            (self.section, self.name, self.offset, self.width, self.value, self.text) = (section, name, offset, width, nil, text)
        }

        func check(_ structure: [UInt8]) {
            let bytes = structure[offset..<offset + width]
            if let text {
                let padded = Array(text.utf8) + Array(repeating: UInt8(ascii: " "), count: width - text.utf8.count)
                #expect(Array(bytes) == padded, "\(testDescription): \"\(String(decoding: bytes, as: UTF8.self))\"")
            } else {
                let actual = bytes.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                #expect(actual == value, "\(testDescription): 0x\(String(actual, radix: 16))")
            }
        }
    }

    static let controllerFields: [Field] = [
        Field("5.15.2.2", "VID: the PCI vendor ID", 0, 2, 0x1234), Field("5.15.2.2", "SSVID: the PCI subsystem vendor ID", 2, 2, 0x1234),
        Field("5.15.2.2", "SN", 4, 20, text: "0000:5e:00.0"), Field("5.15.2.2", "MN", 24, 40, text: "VFIOKit NVMe controller"),
        Field("5.15.2.2", "FR", 64, 8, text: "1.0"), Field("5.15.2.2", "RAB: bursts of 2^6 commands", 72, 1, 6),
        Field("5.15.2.2", "IEEE OUI 00-00-5E, least significant byte first", 73, 3, 0x00_005e), Field("5.15.2.2", "CMIC: one port, one controller", 76, 1, 0),
        Field("5.15.2.2", "MDTS: 2^5 pages, 128 KiB", 77, 1, 5), Field("5.15.2.2", "CNTLID", 78, 2, 1),
        Field("5.15.2.2", "VER: 1.4.0, as the VS register", 80, 4, 0x0001_0400), Field("5.15.2.2", "OAES: no notices", 92, 4, 0),
        Field("5.15.2.2", "CNTRLTYPE: I/O controller", 111, 1, 1),
        Field("5.15.2.2", "OACS: no optional admin command — no Doorbell Buffer Config (bit 8)", 256, 2, 0),
        Field("5.15.2.2", "ACL: 4 Aborts (0's based)", 258, 1, 3), Field("5.15.2.2", "AERL: 4 Asynchronous Event Requests (0's based)", 259, 1, 3),
        Field("5.15.2.2", "FRMW: one firmware slot, read only", 260, 1, 0x03),
        Field("5.15.2.2", "LPA: extended Get Log Page data; SMART/Health not per namespace", 261, 1, 0x04),
        Field("5.15.2.2", "ELPE: 64 Error Information entries (0's based)", 262, 1, 63), Field("5.15.2.2", "NPSS: one power state", 263, 1, 0),
        Field("5.15.2.2", "WCTEMP: 343 K", 266, 2, 343), Field("5.15.2.2", "CCTEMP: 358 K", 268, 2, 358),
        Field("5.15.2.2", "TNVMCAP (low quadword): 16 MiB", 280, 8, 16 << 20), Field("5.15.2.2", "KAS: no Keep Alive", 320, 2, 0),
        Field("5.15.2.2", "SQES: 64-byte entries", 512, 1, 0x66), Field("5.15.2.2", "CQES: 16-byte entries", 513, 1, 0x44),
        Field("5.15.2.2", "NN: one namespace", 516, 4, 1),
        Field("5.15.2.2", "ONCS: Dataset Management, Write Zeroes, Save/Select", 520, 2, 0x1c), Field("5.15.2.2", "FUSES: none", 522, 2, 0),
        Field("5.15.2.2", "VWC: a volatile write cache, Flush to NSID FFFFFFFFh", 525, 1, 0x07), Field("5.15.2.2", "SGLS: no SGLs", 536, 4, 0),
        Field("5.15.2.2", "PSD0 MP: 9.00 W", 2048, 2, 900),
    ]

    static let namespaceFields: [Field] = [
        Field("5.15.2.1", "NSZE: 32768 blocks", 0, 8, 32768), Field("5.15.2.1", "NCAP", 8, 8, 32768), Field("5.15.2.1", "NUSE", 16, 8, 32768),
        Field("5.15.2.1", "NSFEAT", 24, 1, 0), Field("5.15.2.1", "NLBAF: one LBA format", 25, 1, 0), Field("5.15.2.1", "FLBAS: format 0", 26, 1, 0),
        Field("5.15.2.1", "DLFEAT: deallocated blocks read zeros, Write Zeroes may deallocate", 33, 1, 0x09),
        Field("5.15.2.1", "NVMCAP (low quadword): 16 MiB", 48, 8, 16 << 20),
        Field("5.15.2.1", "EUI64: 00-00-5E-EF-10 (RFC 7042 documentation) and the requester ID 5e:00.0", 120, 8, 0x005e_0010_ef5e_0000),
        Field("5.15.2.1", "LBAF0: LBADS 9 (512 bytes), no metadata", 128, 4, 9 << 16),
    ]

    static let controller = Result { try Self.structure(cns: 0x01) }
    static let namespace = Result { try Self.structure(cns: 0x00, namespace: 1) }

    static func structure(cns: UInt32, namespace: UInt32 = 0) throws -> [UInt8] {
        let host = try NVMeHost(ioQueue: false)
        defer { host.close() }
        return try host.identify(cns: cns, namespace: namespace)
    }

    @Test("Identify Controller fields", arguments: controllerFields)
    func controllerField(_ field: Field) throws { field.check(try Self.controller.get()) }

    @Test("Identify Namespace fields", arguments: namespaceFields)
    func namespaceField(_ field: Field) throws { field.check(try Self.namespace.get()) }

    @Test("§5.15.2.2 SUBNQN: the UUID form of an NVMe Qualified Name, NUL padded")
    func subsystemNQN() throws {
        let bytes = try Self.controller.get()[768..<1024]
        let text = String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        #expect(text.hasPrefix("nqn.2014-08.org.nvmexpress:uuid:") && text.count == 68, "\(text)")
        #expect(bytes.dropFirst(text.count).allSatisfy { $0 == 0 })
    }
}
