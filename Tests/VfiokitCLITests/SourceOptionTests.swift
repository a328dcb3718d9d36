import Foundation
import PCIBus
import Testing

/// The options every command shares: `--acs` (ACS-22) and `--platform`, end to end.
@Suite("vfiokit: --acs and --platform")
struct SourceOptionTests {
    static func groups(_ arguments: [String]) throws -> [[String]] {
        let result = try CLI.run(["groups", "--json"] + arguments)
        #expect(result.status == 0, "\(result.stderr)")
        return (try result.json()["groups"] as? [[String: Any]] ?? []).map { $0["devices"] as? [String] ?? [] }
    }

    @Test("ACS-22: --acs as-dumped skips the boot-time enable: 00:1c.4's dumped control 0 no longer isolates the I210")
    func acsAsDumped() throws {
        let boot = try Self.groups(["--machine", "default"])
        let asDumped = try Self.groups(["--machine", "default", "--acs", "as-dumped"])
        #expect(boot.contains(["0000:00:1c.4"]) && boot.contains(["0000:03:00.0"]))
        #expect(asDumped.contains(["0000:00:1c.4", "0000:03:00.0"]))
        let json = try CLI.run(["groups", "--machine", "default", "--acs", "as-dumped", "--json"]).json()
        #expect(json["acs"] as? String == "as-dumped")
        let text = try CLI.run(["topology", "--machine", "default", "--acs", "as-dumped"])
        #expect(text.stdout.contains("ACS as dumped"))
    }

    /// A dump whose host bridge reads vendor ffff beside an IOMMU function (class 0806), as a
    /// dump rebuilt from text reads: AMD-Vi is a guess, with a warning saying how to override it.
    static func unreadableHostBridgeDump() throws -> String {
        let functions = [
            (PCIAddress(bus: 0, device: 0, function: 0), "Host bridge", ConfigSpaceBuilder(vendor: 0xffff, device: 0xffff, classCode: 0x060000, size: 256)),
            (PCIAddress(bus: 0, device: 0, function: 2), "IOMMU", ConfigSpaceBuilder(vendor: 0xffff, device: 0xffff, classCode: 0x080600, size: 256)),
            (PCIAddress(bus: 0, device: 8, function: 0), "Non-Essential Instrumentation", ConfigSpaceBuilder(vendor: 0xffff, device: 0xffff, classCode: 0x130000, size: 256)),
        ].map { (address: $0.0, title: $0.1, config: $0.2.bytes) }
        return try CLI.writeTemporary(DumpWriter.render(functions))
    }

    @Test("--dump - reads the dump from standard input, labelled so, the same groups as the file (issue 19, inputs)")
    func dumpFromStandardInput() throws {
        let dump = CLI.packageRoot.appendingPathComponent("devices/default/lspci-xxxx.txt").path
        let vfiokit = CLI.buildDirectory.appendingPathComponent("vfiokit").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: vfiokit)
        process.arguments = ["groups", "--dump", "-", "--json"]
        process.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: dump))
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let stdout = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let piped = CLI.Result(status: process.terminationStatus, stdout: stdout, stderr: "")
        let direct = try CLI.run(["groups", "--dump", dump, "--json"])
        #expect(piped.status == 0, "\(piped.stderr)")
        let pipedGroups = try piped.json()["groups"] as? [[String: Any]]
        let directGroups = try direct.json()["groups"] as? [[String: Any]]
        #expect(pipedGroups?.count == directGroups?.count && (pipedGroups?.count ?? 0) > 10)
        #expect(try piped.json()["source"] as? String == "dump from standard input")
    }

    @Test("--platform: a guessed platform warns and names the override; --platform sets it and silences the guess")
    func platform() throws {
        let path = try Self.unreadableHostBridgeDump()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let guessed = try CLI.run(["groups", "--dump", path])
        #expect(guessed.status == 0, "\(guessed.stderr)")
        #expect(guessed.stderr.contains("warning: host bridge 0000:00:00.0 reads vendor ffff (unreadable): assumed amd-vi"))
        #expect(guessed.stderr.contains("--platform"))
        #expect(guessed.stdout.contains("no group         0000:00:00.2  "))
        let json = try CLI.run(["groups", "--dump", path, "--json"]).json()
        #expect(json["platform"] as? String == "amd-vi")
        #expect((json["warnings"] as? [String])?.count == 1)
        let chosen = try CLI.run(["groups", "--dump", path, "--platform", "vt-d", "--json"])
        #expect(chosen.status == 0)
        #expect(try chosen.json()["platform"] as? String == "vt-d")
        #expect((try chosen.json()["warnings"] as? [String])?.isEmpty == true)
        // Under VT-d nothing is out of scope: the IOMMU function joins its conventional sibling (IG-13, ACS-02).
        let chosenGroups = (try chosen.json()["groups"] as? [[String: Any]] ?? []).map { $0["devices"] as? [String] ?? [] }
        #expect(chosenGroups == [["0000:00:00.0", "0000:00:00.2"], ["0000:00:08.0"]])
        let bad = try CLI.run(["groups", "--dump", path, "--platform", "sparc"])
        #expect(bad.status == 64)
        #expect(bad.stderr.contains("sparc"))
    }
}
