import Foundation
import Testing

/// The embedded machines travel with the package (the `EmbeddedMachines` resources): `vfiokit`
/// and the samples find `--machine NAME` wherever they run from, not only inside the checkout.
@Suite("embedded machines outside the checkout")
struct EmbeddedMachineTests {
    /// Every machine folder of `devices/`.
    static let machines = ((try? FileManager.default.contentsOfDirectory(atPath: CLI.packageRoot.appendingPathComponent("devices").path)) ?? [])
        .filter { FileManager.default.fileExists(atPath: CLI.packageRoot.appendingPathComponent("devices/\($0)/manifest.json").path) }
        .sorted()

    @Test("the build ships every devices/ machine as a resource beside the executables")
    func bundled() throws {
        let bundle = CLI.buildDirectory.appendingPathComponent("VFIOKit_EmbeddedMachines.resources")
        #expect(Self.machines.count >= 6)
        for name in Self.machines {
            #expect(FileManager.default.fileExists(atPath: bundle.appendingPathComponent("\(name)/manifest.json").path), "\(name) missing from \(bundle.path)")
        }
    }

    @Test("--machine NAME loads from any working directory", arguments: ["vfiokit", "memcpy-driver"])
    func anyDirectory(_ program: String) throws {
        let elsewhere = URL(fileURLWithPath: NSTemporaryDirectory())
        let result = try CLI.run(program == "vfiokit" ? ["groups", "--machine", "default"] : ["--machine", "default"], program: program, in: elsewhere)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(!result.stdout.isEmpty)
    }

    @Test("an unknown name fails with ENOENT, exit 66, naming where it looked")
    func unknownName() throws {
        let result = try CLI.run(["groups", "--machine", "no-such-machine"])
        #expect(result.status == 66, "\(result.stderr)")
        #expect(result.stderr.contains("ENOENT") && result.stderr.contains("no-such-machine") && result.stderr.contains("looked in"))
    }

    @Test("a directory path loads a machine that is not embedded")
    func directoryPath() throws {
        let copy = URL(fileURLWithPath: CLI.temporaryPath("machine"))
        defer { try? FileManager.default.removeItem(at: copy) }
        try FileManager.default.copyItem(at: CLI.packageRoot.appendingPathComponent("devices/switch-nonacs"), to: copy)
        let result = try CLI.run(["groups", "--machine", copy.path])
        #expect(result.status == 0, "\(result.stderr)")
    }
}
