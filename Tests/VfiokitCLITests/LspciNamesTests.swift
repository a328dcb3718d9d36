import Foundation
import Testing

/// Names as `lspci -nn` prints them (issue 19 §4): for every real dump of `../shared/fixtures/real`
/// that both `lspci -F` and `vfiokit` read, each function's `summary.lspci` of
/// `vfiokit topology --dump F --json` is exactly the text `lspci -F F -nn` prints after its
/// address — libpci's names, `Device` for an ID pci.ids does not know, `(rev xx)`.
@Suite("lspci's names")
struct LspciNamesTests {
    static let lspci = ["/usr/bin/lspci", "/usr/sbin/lspci", "/bin/lspci"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// The hex dumps among the real fixtures (`*lspci*.txt`).
    static let dumps: [String] = {
        guard let walk = FileManager.default.enumerator(atPath: CLI.sharedFixtures) else { return [] }
        return walk.compactMap { $0 as? String }.filter { $0.contains("lspci") && $0.hasSuffix(".txt") }.sorted()
    }()

    @Test(
        "vfiokit topology names every function as lspci -F -nn does",
        .enabled(if: CLI.sharedAvailable, "../shared/fixtures/real is absent: the real dumps are not compared"),
        .enabled(if: lspci != nil, "lspci is not installed (apt-get install pciutils)"))
    func namesMatchLspci() throws {
        var compared = 0
        for dump in Self.dumps {
            let path = CLI.sharedFixtures + "/" + dump
            let expected = try Self.lspciLines(path)
            let result = try CLI.run(["topology", "--dump", path, "--json"])
            // Dumps vfiokit refuses (lspci -v text, not hex) are InputErrorTests' business.
            guard result.status == 0, !expected.isEmpty else { continue }
            var actual: [String: String] = [:]
            for bus in try result.json()["buses"] as? [[String: Any]] ?? [] { Self.collect(bus, into: &actual) }
            #expect(actual.count == expected.count && Self.differences(expected, actual).isEmpty, "\(dump): \(Self.differences(expected, actual))")
            compared += 1
        }
        #expect(compared >= 15, "only \(compared) dumps compared")
    }

    /// `lspci -F path -nn`: address (with the domain, which lspci leaves out when every function
    /// is in domain 0) → the rest of the line.
    static func lspciLines(_ path: String) throws -> [String: String] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: lspci!)
        process.arguments = ["-F", path, "-nn"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        var lines: [String: String] = [:]
        for line in output.split(separator: "\n") {
            guard let space = line.firstIndex(of: " ") else { continue }
            let address = String(line[..<space])
            lines[address.split(separator: ":").count == 3 ? address : "0000:" + address] = String(line[line.index(after: space)...])
        }
        return lines
    }

    /// Every function of `bus` and of the buses below its bridges (`secondaryBus`).
    static func collect(_ bus: [String: Any], into names: inout [String: String]) {
        for function in bus["functions"] as? [[String: Any]] ?? [] {
            if let summary = function["summary"] as? [String: Any], let address = summary["address"] as? String {
                names[address] = summary["lspci"] as? String
            }
            if let below = function["secondaryBus"] as? [String: Any] { collect(below, into: &names) }
        }
    }

    static func differences(_ expected: [String: String], _ actual: [String: String]) -> String {
        Set(expected.keys).union(actual.keys).sorted().compactMap { address in
            expected[address] == actual[address] ? nil : "\n  \(address): lspci \(expected[address] ?? "-") | vfiokit \(actual[address] ?? "-")"
        }.joined()
    }
}
