import Foundation
import SystemPackage
import Testing

@testable import PCIBus

/// Bad and unusual dump files: every failure names the file and line, carries an errno, and
/// never takes the process down; unusual but valid input loads.
@Suite("Dump loading: malformed input and edge cases")
struct DumpInputTests {
    static let header = "00:00.0 Host bridge: Intel Corporation Device 2020\n"
    static let rows = (0..<4).map { row in
        String(format: "%02x:", row * 16) + (0..<16).map { _ in " 00" }.joined()
    }.joined(separator: "\n")
    static let validFunction = header + "00: 86 80 20 20 06 00 10 00 04 00 00 06 00 00 00 00\n"
        + (1..<4).map { row in String(format: "%02x:", row * 16) + String(repeating: " 00", count: 16) }.joined(separator: "\n")
        + "\n\n"

    struct Case: CustomTestStringConvertible, Sendable {
        let what: String
        let contents: String
        let kind: PCIBusError.Kind
        let errno: Errno
        let line: Int?
        var testDescription: String { what }
    }

    static let cases: [Case] = [
        Case(what: "line too long (libpci's 253-character limit)", contents: "00:00.0 " + String(repeating: "x", count: 300) + "\n",
             kind: .lineTooLong, errno: .invalidArgument, line: 1),
        Case(what: "bad hex byte", contents: validFunction.replacingOccurrences(of: "00: 86 80 20", with: "00: 86 8g 20"),
             kind: .malformedHexRow, errno: .invalidArgument, line: 2),
        Case(what: "hex row split by stderr output",
             contents: validFunction.replacingOccurrences(of: "20: 00 00 00 00 00 00 00 00", with: "20: 00 00 pcilib: sysfs_read_vpd: read failed\n00 00 00 00 00 00"),
             kind: .malformedHexRow, errno: .invalidArgument, line: 4),
        Case(what: "unterminated last line", contents: String(validFunction.dropLast(2)),
             kind: .unterminatedLine, errno: .invalidArgument, line: 5),
        Case(what: "truncated function (fewer than 64 bytes)", contents: header + "00: 86 80 20 20\n\n",
             kind: .truncatedFunction, errno: .invalidArgument, line: 1),
        Case(what: "duplicate address", contents: validFunction + validFunction.replacingOccurrences(of: "00:00.0", with: "0000:00:00.0"),
             kind: .duplicateAddress, errno: .fileExists, line: 7),
        Case(what: "config space past 4096 bytes", contents: validFunction.dropLast(1) + "1000: 00 00\n\n",
             kind: .configSpaceTooLarge, errno: .invalidArgument, line: 6),
        Case(what: "no functions at all", contents: "just some text\n", kind: .noFunctions, errno: .noData, line: nil),
        Case(what: "impossible address in a header", contents: "00:20.0 bogus\n00: 00\n\n", kind: .malformedHexRow,
             errno: .invalidArgument, line: 1),
    ]

    static func write(_ contents: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("vfiokit-test-\(UUID().uuidString).txt").path
        try contents.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test(arguments: cases)
    func rejected(_ testCase: Case) throws {
        let path = try Self.write(testCase.contents)
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            _ = try PCITopology.load(.dump(path: path))
            Issue.record("\(testCase.what): loaded without error")
        } catch {
            #expect(error.kind == testCase.kind, "\(error)")
            #expect(error.errno == testCase.errno, "\(error)")
            if let line = testCase.line { #expect(error.message.hasPrefix("\(path):\(line):"), "\(error)") }
            #expect(error.message.contains(path))
        }
    }

    @Test("missing file: ENOENT naming the path")
    func missing() {
        #expect {
            try PCITopology.load(.dump(path: "/nonexistent/dump.txt"))
        } throws: { error in
            (error as? PCIBusError)?.kind == .fileNotFound && (error as? PCIBusError)?.errno == .noSuchFileOrDirectory
        }
    }

    @Test("unreadable sysfs: a clear error, not libpci's exit(1)")
    func unreadableSysfs() {
        #expect {
            try PCITopology.load(.host(sysfsPath: "/nonexistent-sysfs"))
        } throws: { error in
            guard let error = error as? PCIBusError else { return false }
            return error.kind == .hostUnreadable && error.message.contains("/nonexistent-sysfs/devices")
        }
    }

    @Test("-vvv text between functions is ignored; short -x dumps load without extended space")
    func mixedText() throws {
        let text = Self.validFunction.replacingOccurrences(
            of: "00:00.0 Host bridge: Intel Corporation Device 2020\n",
            with: "00:00.0 Host bridge: Intel Corporation Device 2020\n\tControl: I/O- Mem+\n\tCapabilities: <access denied>\n")
        let path = try Self.write(text)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let topology = try PCITopology.load(.dump(path: path))
        #expect(topology.functions.count == 1)
        #expect(topology.functions[0].config.count == 64)
        #expect(topology.functions[0].vendorID == 0x8086)
    }

    @Test("6- to 8-digit domains load (libpci reads only 4 or 5 digits; the loader renames them)", arguments: [6, 7, 8])
    func wideDomains(digits: Int) throws {
        let domain = String(repeating: "0", count: digits - 1) + "1"
        let wide = Self.validFunction.replacingOccurrences(of: "00:00.0 Host", with: "\(domain):00:00.0 Host")
        let path = try Self.write(Self.validFunction + wide)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let topology = try PCITopology.load(.dump(path: path))
        #expect(topology.functions.map(\.address.description) == ["0000:00:00.0", "0001:00:00.0"])
        #expect(topology.functions[1].vendorID == 0x8086)
    }

    @Test("a generated dump round-trips through libpci byte for byte")
    func roundTrip() throws {
        let functions = try SyntheticTopology.functions(count: 100)
        let path = try Self.write(DumpWriter.render(functions))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let topology = try PCITopology.load(.dump(path: path), options: .init(lookUpNames: false))
        #expect(topology.functions.map(\.address) == functions.map(\.address).sorted())
        for (loaded, written) in zip(topology.functions, functions.sorted { $0.address < $1.address }) {
            #expect(loaded.config.bytes == written.config)
        }
    }
}

@Suite("Capability walks are bounded")
struct CapabilityWalkTests {
    static func config(_ edit: (inout ConfigSpaceBuilder) -> Void) -> PCIConfigSpace {
        var builder = ConfigSpaceBuilder(vendor: 0x8086, device: 0x1234, classCode: 0x020000)
        edit(&builder)
        return PCIConfigSpace(bytes: builder.bytes)
    }

    @Test("a standard chain that points back to itself is a loop")
    func standardLoop() {
        let config = Self.config { builder in
            builder.addCapability(PCICapabilityID.powerManagement, body: [0, 0, 0, 0, 0, 0])
            builder.write8(0x41, 0x40)
        }
        let list = PCICapabilityList.standard(in: config, headerType: .normal)
        #expect(list.capabilities.count == 1)
        #expect(list.issue == .loop(capability: 1, at: 0x40, pointsBackTo: 0x40))
    }

    @Test("a standard pointer into the header is broken, not followed")
    func standardOutOfRange() {
        let config = Self.config { builder in
            builder.addCapability(PCICapabilityID.powerManagement, body: [0, 0, 0, 0, 0, 0])
            builder.write8(0x41, 0x10)
        }
        #expect(PCICapabilityList.standard(in: config, headerType: .normal).issue == .pointerOutOfRange(capability: 1, at: 0x40, next: 0x10))
    }

    @Test("an extended chain pointing below 0x100 is broken; one revisiting an offset loops")
    func extended() {
        var config = Self.config { builder in
            builder.addExtendedCapability(PCIExtendedCapabilityID.aer, body: [0, 0, 0, 0])
            builder.write32(0x100, 0x0001 | 1 << 16 | 0x0f0 << 20)
        }
        #expect(PCICapabilityList.extended(in: config).issue == .pointerOutOfRange(capability: 1, at: 0x100, next: 0xf0))
        config = Self.config { builder in
            builder.addExtendedCapability(PCIExtendedCapabilityID.aer, body: [0, 0, 0, 0])
            builder.write32(0x100, 0x0001 | 1 << 16 | 0x100 << 20)
        }
        #expect(PCICapabilityList.extended(in: config).issue?.isLoop == true)
    }

    @Test("no capability list without PCI_STATUS_CAP_LIST, even with a pointer")
    func statusBit() {
        let config = Self.config { $0.write8(PCIRegister.capabilityPointer, 0x40) }
        #expect(PCICapabilityList.standard(in: config, headerType: .normal).capabilities.isEmpty)
    }

    @Test("decoded fields: PCIe type, ACS, FLR, bridge buses, multifunction")
    func decoded() {
        var builder = ConfigSpaceBuilder(vendor: 0x8086, device: 0x2030, classCode: 0x060400, headerType: .bridge, multifunction: true)
        builder.addPCIExpress(.downstreamPort, flr: true)
        builder.addACS(capability: .requiredForIsolation, control: [.requestRedirect])
        builder.setBuses(primary: 1, secondary: 2, subordinate: 5)
        let function = PCIFunction(address: PCIAddress(parsing: "01:00.0")!, config: PCIConfigSpace(bytes: builder.bytes))
        #expect(function.pciePortType == .downstreamPort)
        #expect(function.acs?.capability == .requiredForIsolation)
        #expect(function.acs?.control == [.requestRedirect])
        #expect(function.hasPCIeFLR)
        #expect(function.bridgeBuses == .init(primary: 1, secondary: 2, subordinate: 5))
        #expect(function.isMultifunction)
    }
}

@Suite("PCI addresses")
struct PCIAddressTests {
    @Test(arguments: [
        ("00:1c.0", "0000:00:1c.0"), ("0000:02:00.1", "0000:02:00.1"), ("10000:00:00.0", "10000:00:00.0"),
        ("ffffffff:ff:1f.7", "ffffffff:ff:1f.7"),
    ])
    func parses(text: String, canonical: String) {
        #expect(PCIAddress(parsing: text)?.description == canonical)
    }

    @Test(arguments: ["", "00:20.0", "00:1c.8", "0:00:00.0", "000000000:00:00.0", "zz:00.0", "00:00"])
    func rejects(text: String) {
        #expect(PCIAddress(parsing: text) == nil)
    }
}
