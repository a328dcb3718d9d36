import Foundation
import Testing

@testable import PCIBus

/// The project's own fixture machines under `devices/`: each one's groups must be exactly the
/// ones its manifest expects (same sets, same IDs), with the stated functions ungrouped.
@Suite("devices/ machines")
struct DeviceMachineTests {
    static let devicesDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("devices").path

    static let machines: [String] = ((try? FileManager.default.contentsOfDirectory(atPath: devicesDirectory)) ?? [])
        .filter { FileManager.default.fileExists(atPath: devicesDirectory + "/" + $0 + "/manifest.json") }.sorted()

    @Test("at least six machines, including default")
    func inventory() {
        #expect(Self.machines.count >= 6)
        #expect(Self.machines.contains("default"))
    }

    @Test("expected groups match exactly", arguments: machines)
    func expectedGroups(_ name: String) throws {
        let machine = try FixtureMachine.load(directory: Self.devicesDirectory + "/" + name)
        let snapshot = try BusSnapshot.load(.machine(machine))
        let computed = snapshot.grouping.groups.map { FixtureMachine.ExpectedGroup(id: $0.id, devices: $0.sortedMembers, reason: "") }
        #expect(computed.map(\.id) == machine.expectedGroups.map(\.id))
        for (got, want) in zip(computed, machine.expectedGroups) {
            #expect(got.devices == want.devices.sorted(), "group \(want.id): \(want.reason)")
        }
        #expect(snapshot.grouping.ungrouped.map(\.address) == machine.ungrouped)
        #expect(snapshot.grouping.platform == machine.platform)
    }

    /// The machines whose manifest states `expectedGroupsAsDumped`, with those groups' sorted devices.
    static let asDumped: [(String, [[String]])] = machines.compactMap { name in
        let path = devicesDirectory + "/" + name + "/manifest.json"
        guard let data = FileManager.default.contents(atPath: path), let manifest = try? JSONSerialization.jsonObject(with: data),
            let expected = (manifest as? [String: Any])?["expectedGroupsAsDumped"] as? [[String: Any]]
        else { return nil }
        return (name, expected.map { ($0["devices"] as? [String] ?? []).sorted() })
    }

    @Test("some machines state their groups as dumped")
    func asDumpedInventory() { #expect(!Self.asDumped.isEmpty) }

    @Test("ACS-22: groups with the registers as dumped (no boot-time enable) match expectedGroupsAsDumped", arguments: asDumped.map(\.0))
    func expectedGroupsAsDumped(_ name: String) throws {
        let directory = Self.devicesDirectory + "/" + name
        let expected = try #require(Self.asDumped.first { $0.0 == name }?.1)
        let machine = try FixtureMachine.load(directory: directory)
        let snapshot = try BusSnapshot.load(.machine(machine), acsPolicy: .asDumped)
        let computed = snapshot.grouping.groups.map { $0.sortedMembers.map(\.description) }
        #expect(computed == expected)
    }

    /// A manifest's `dmaAliases` (function → the other requester IDs its DMA carries, in walk
    /// order) must be exactly what `pci_for_each_dma_alias` gives; a machine without the key
    /// must have no aliased function at all.
    @Test("ALIAS-01..04: each manifest's dmaAliases are the aliases the library computes", arguments: machines)
    func dmaAliases(_ name: String) throws {
        let directory = Self.devicesDirectory + "/" + name
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory + "/manifest.json")))
        let expected = (manifest as? [String: Any])?["dmaAliases"] as? [String: [String]] ?? [:]
        let snapshot = try BusSnapshot.load(.machine(try FixtureMachine.load(directory: directory)))
        var computed: [String: [String]] = [:]
        for function in snapshot.topology.functions {
            let aliases = snapshot.grouping.dmaAliases(of: function.address)
            if !aliases.isEmpty { computed[function.address.description] = aliases.map(\.description) }
        }
        #expect(computed == expected)
    }

    @Test("manifests bind drivers only to functions that exist", arguments: machines)
    func driversExist(_ name: String) throws {
        let machine = try FixtureMachine.load(directory: Self.devicesDirectory + "/" + name)
        let topology = try machine.topology()
        for address in machine.drivers.keys { #expect(topology[address] != nil, "\(name): \(address)") }
    }

    /// `python3` on `PATH` (`render.py` needs it; the README's quick start installs it).
    static let python3Available = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").contains {
        FileManager.default.isExecutableFile(atPath: "\($0)/python3")
    }

    @Test(
        "rendered dumps are up to date with their descriptions (devices/render.py --check)",
        .enabled(
            if: python3Available,
            "python3 is not on PATH: devices/render.py --check skipped (install python3, as the README's quick start does)"))
    func renderedDumpsCurrent() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", Self.devicesDirectory + "/render.py", "--check"]
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
    }
}
