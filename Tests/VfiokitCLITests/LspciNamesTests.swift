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
    /// `lspci -F path arguments…`'s standard output.
    static func lspciOutput(_ path: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: lspci!)
        process.arguments = ["-F", path] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return output
    }

    static func lspciLines(_ path: String) throws -> [String: String] {
        let output = try lspciOutput(path, ["-nn"])
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

/// The rest of lspci's view (issue 19 §4): bridges' bus ranges as `lspci -v`/`-t` print them,
/// class names without the ID (it is `classID`'s), and a machine's virtual devices named by
/// their IDs as lspci names them, marked virtual.
@Suite("lspci's tree and marks")
struct LspciTreeTests {
    /// `lspci -F path -v`: each bridge's `Bus: primary=PP, secondary=SS, subordinate=UU`.
    static func lspciBusRanges(_ path: String) throws -> [String: [Int]] {
        let output = try LspciNamesTests.lspciOutput(path, ["-v", "-D"])
        var ranges: [String: [Int]] = [:]
        var current: String?
        for line in output.split(separator: "\n") {
            if !line.hasPrefix("\t") { current = line.split(separator: " ").first.map(String.init) }
            guard let current, let bus = line.range(of: "\tBus: primary=") else { continue }
            let fields = line[bus.lowerBound...].split(separator: ",").prefix(3).compactMap { $0.split(separator: "=").last.flatMap { Int($0, radix: 16) } }
            ranges[current] = fields
        }
        return ranges
    }

    /// Every function's `busRange` in topology JSON, as [primary, secondary, subordinate].
    static func busRanges(_ bus: [String: Any], into ranges: inout [String: [Int]]) {
        for function in bus["functions"] as? [[String: Any]] ?? [] {
            if let range = function["busRange"] as? [String: Any], let address = function["address"] as? String {
                ranges[address] = ["primary", "secondary", "subordinate"].compactMap { range[$0] as? Int }
            }
            if let below = function["secondaryBus"] as? [String: Any] { busRanges(below, into: &ranges) }
        }
    }

    static func functions(_ json: [String: Any]) -> [String: [String: Any]] {
        var all: [String: [String: Any]] = [:]
        func walk(_ bus: [String: Any]) {
            for function in bus["functions"] as? [[String: Any]] ?? [] {
                if let address = function["address"] as? String { all[address] = function }
                if let below = function["secondaryBus"] as? [String: Any] { walk(below) }
            }
        }
        for bus in json["buses"] as? [[String: Any]] ?? [] { walk(bus) }
        return all
    }

    @Test("bus ranges on bridges: topology's tree and JSON as lspci -t and -v, on the default machine's dump")
    func defaultMachineRanges() throws {
        let text = try CLI.run(["topology", "--machine", "default"]).stdout
        // 1c.0 leads to buses 01-02 (a PCIe-to-PCI bridge below it), 1c.4 to 03 alone: lspci -t's -[01-02]- and -[03]-.
        #expect(text.contains("│  └─[0000:01-02]\n"), "\(text)")
        #expect(text.contains("│  └─[0000:03]\n"))
        let json = try CLI.run(["topology", "--machine", "default", "--json"]).json()
        var ranges: [String: [Int]] = [:]
        for bus in json["buses"] as? [[String: Any]] ?? [] { Self.busRanges(bus, into: &ranges) }
        #expect(ranges["0000:00:1c.0"] == [0, 1, 2])
        #expect(ranges["0000:00:1c.4"] == [0, 3, 3])
        #expect(Self.functions(json)["0000:00:00.0"]?["busRange"] is NSNull)
        if LspciNamesTests.lspci != nil {
            let expected = try Self.lspciBusRanges(CLI.packageRoot.path + "/devices/default/lspci-xxxx.txt")
            // The machine's virtual devices are endpoints, so every bridge is the dump's.
            #expect(ranges == expected)
        }
    }

    @Test(
        "bus ranges on bridges as lspci -v prints them, on every real dump",
        .enabled(if: CLI.sharedAvailable, "../shared/fixtures/real is absent: the real dumps are not compared"),
        .enabled(if: LspciNamesTests.lspci != nil, "lspci is not installed (apt-get install pciutils)"))
    func realDumpRanges() throws {
        var compared = 0
        for dump in LspciNamesTests.dumps {
            let path = CLI.sharedFixtures + "/" + dump
            let result = try CLI.run(["topology", "--dump", path, "--json"])
            guard result.status == 0 else { continue }
            var actual: [String: [Int]] = [:]
            for bus in try result.json()["buses"] as? [[String: Any]] ?? [] { Self.busRanges(bus, into: &actual) }
            let expected = try Self.lspciBusRanges(path)
            #expect(actual == expected, "\(dump)")
            compared += expected.isEmpty ? 0 : 1
        }
        #expect(compared >= 10, "only \(compared) dumps with bridges compared")
    }

    @Test("a class libpci knows only by its base class: className without the ID, the ID in classID, lspci's text unchanged")
    func classNameWithoutID() throws {
        // A virtio balloon as a QEMU guest shows it: class ffff00 (lspci: "Unassigned class [ffff]").
        var bytes = [UInt8](repeating: 0, count: 256)
        bytes[0...3] = [0xf4, 0x1a, 0x45, 0x10]
        bytes[8...11] = [0x01, 0x00, 0xff, 0xff]
        var dump = "00:01.0 Unassigned class [ffff]: Red Hat, Inc. Virtio 1.0 memory balloon (rev 01)\n"
        for row in stride(from: 0, to: 256, by: 16) {
            dump += String(format: "%02x:", row) + bytes[row..<row + 16].map { String(format: " %02x", $0) }.joined() + "\n"
        }
        let path = try CLI.writeTemporary(dump + "\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let json = try CLI.run(["topology", "--dump", path, "--json"]).json()
        let summary = Self.functions(json)["0000:00:01.0"]?["summary"] as? [String: Any]
        #expect(summary?["className"] as? String == "Unassigned class")
        #expect(summary?["classID"] as? String == "ffff")
        #expect(summary?["lspci"] as? String == "Unassigned class [ffff]: Red Hat, Inc. Virtio 1.0 memory balloon [1af4:1045] (rev 01)")
    }

    @Test("a machine's virtual devices: named by their IDs as lspci would, marked virtual with their model in text and JSON")
    func virtualDevicesMarked() throws {
        let json = try CLI.run(["topology", "--machine", "default", "--json"]).json()
        let functions = Self.functions(json)
        let cbdma = functions["0000:00:04.0"]?["summary"] as? [String: Any]
        #expect(cbdma?["virtual"] as? Bool == true)
        #expect((cbdma?["virtualModel"] as? String)?.contains("CBDMA") == true)
        // The config space says 8086:2021, class 0880: lspci's name for it, not the model's.
        #expect(cbdma?["className"] as? String == "System peripheral")
        #expect((cbdma?["lspci"] as? String)?.hasPrefix("System peripheral [0880]: Intel Corporation ") == true, "\(cbdma ?? [:])")
        let bridge = functions["0000:00:1c.0"]?["summary"] as? [String: Any]
        #expect(bridge?["virtual"] as? Bool == false)
        #expect(bridge?["virtualModel"] is NSNull)
        let text = try CLI.run(["topology", "--machine", "default"]).stdout
        let line = text.split(separator: "\n").first { $0.contains(" 04.0 ") && $0.contains("[0880]") }
        #expect(line?.contains("[virtual: ") == true, "\(line ?? "")")
        let groups = try CLI.run(["groups", "--machine", "default"]).stdout
        #expect(groups.split(separator: "\n").contains { $0.contains("0000:00:04.0") && $0.contains("virtual") }, "\(groups)")
    }
}
