import Foundation
import PCIBus
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Bad input through the command: every malformed dump exits 65 (EX_DATAERR) with a message
/// naming the file and line; files that are not regular files are refused without being read.
/// None of these needs `../shared`.
@Suite("vfiokit: bad dumps and hostile files")
struct InputErrorTests {
    static let header = "00:00.0 Host bridge: Intel Corporation Device 2020\n"
    static let validFunction =
        header + "00: 86 80 20 20 06 00 10 00 04 00 00 06 00 00 00 00\n"
        + (1..<4).map { String(format: "%02x:", $0 * 16) + String(repeating: " 00", count: 16) }.joined(separator: "\n") + "\n\n"

    struct Case: CustomTestStringConvertible, Sendable {
        let what: String
        let contents: String
        let line: Int
        let message: String
        var errno = "EINVAL"
        var testDescription: String { what }
    }

    static let cases: [Case] = [
        Case(what: "line too long", contents: "00:00.0 " + String(repeating: "x", count: 300) + "\n", line: 1,
             message: "longer than libpci's 253-character limit"),
        Case(what: "split hex row", contents: validFunction.replacingOccurrences(of: "20: 00 00 00 00", with: "20: 00 00 pcilib: sysfs_read_vpd: read failed\n00 00"),
             line: 4, message: "malformed hex row"),
        Case(what: "bad hex", contents: validFunction.replacingOccurrences(of: "00: 86 80", with: "00: 86 8x"), line: 2,
             message: "malformed hex row"),
        Case(what: "truncated function", contents: header + "00: 86 80 20 20\n\n", line: 1, message: "has only 4 bytes of config space"),
        Case(what: "duplicate address", contents: validFunction + validFunction, line: 7, message: "duplicate function 0000:00:00.0 (first at line 1)",
             errno: "EEXIST"),
        Case(what: "unterminated last line", contents: String(validFunction.dropLast(2)), line: 5, message: "has no newline"),
        Case(what: "a NUL byte (libpci: line too long or unterminated)",
             contents: validFunction.replacingOccurrences(of: "Host bridge", with: "Host\u{0} bridge"), line: 1,
             message: "NUL byte at column 13"),
    ]

    @Test("a malformed dump: exit 65 and a message naming file and line", arguments: cases)
    func malformed(_ testCase: Case) throws {
        let path = try CLI.writeTemporary(testCase.contents)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try CLI.run(["groups", "--dump", path])
        #expect(result.status == 65, "\(result.stderr)")
        #expect(result.stderr.contains("error: \(testCase.errno): \(path):\(testCase.line): "), "\(result.stderr)")
        #expect(result.stderr.contains(testCase.message), "\(result.stderr)")
    }

    @Test(
        "not a regular file: refused before it is read, exit 65 like other invalid input",
        arguments: [("/dev/zero", "is a character device"), ("/tmp", "is a directory")])
    func notAFile(path: String, message: String) throws {
        let result = try CLI.run(["groups", "--dump", path])
        #expect(result.status == 65, "\(result.stderr)")
        #expect(result.stderr.contains("\(path): \(message)"), "\(result.stderr)")
    }

    @Test("a FIFO with no writer: refused at once instead of blocking in open")
    func fifo() throws {
        let path = CLI.temporaryPath("fifo")
        #expect(mkfifo(path, 0o600) == 0)
        defer { unlink(path) }
        let result = try CLI.run(["groups", "--dump", path])
        #expect(result.status == 65, "\(result.stderr)")
        #expect(result.stderr.contains("\(path): is a FIFO"), "\(result.stderr)")
    }

    /// A function whose standard capability chain points back to itself, rendered as a dump.
    static func capabilityLoopDump() throws -> String {
        var config = ConfigSpaceBuilder(vendor: 0x8086, device: 0x1234, classCode: 0x020000, size: 256)
        _ = config.addCapability(PCICapabilityID.powerManagement, body: [0, 0, 0, 0, 0, 0])
        config.write8(0x41, 0x40)
        return try CLI.writeTemporary(DumpWriter.render([(PCIAddress(bus: 0, device: 3, function: 0), "Ethernet controller: loop", config.bytes)]))
    }

    @Test("a capability loop: ELOOP naming device and capability; --allow-capability-loops makes it a JSON warning")
    func capabilityLoop() throws {
        let path = try Self.capabilityLoopDump()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let strict = try CLI.run(["groups", "--dump", path])
        #expect(strict.status == 65)
        #expect(strict.stderr.contains("error: ELOOP: 0000:00:03.0 (\(path)): capability 0x01 at 0x040 points back to 0x040"))
        let tolerant = try CLI.run(["groups", "--dump", path, "--allow-capability-loops"])
        #expect(tolerant.status == 0, "\(tolerant.stderr)")
        #expect(tolerant.stderr.contains("warning: 0000:00:03.0: capability 0x01 at 0x040 points back to 0x040: the chain loops"))
        for command in ["topology", "groups", "report"] {
            let json = try CLI.run([command, "--dump", path, "--allow-capability-loops", "--json"]).json()
            #expect((json["warnings"] as? [String])?.contains { $0.contains("the chain loops") } == true, "\(command)")
        }
        let explain = try CLI.run(["explain", "00:03.0", "--dump", path, "--allow-capability-loops", "--json"]).json()
        #expect((explain["warnings"] as? [String])?.count == 1)
    }
}
