import Foundation
import Testing

@testable import PCIBus

/// Group numbers as Linux 6.8 and later assigns them: devices probed per IOMMU unit in the order
/// the units register (`iommu_device_register` → `bus_iommu_probe`), device-add order within a
/// unit (`IOMMUUnitOrder`).
@Suite("Grouping: group numbers follow the IOMMU units' registration order")
struct IOMMUUnitOrderGroupingTests {
    static let devices = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("devices").path

    static func snapshot(_ name: String) throws -> BusSnapshot {
        try BusSnapshot.load(.machine(try FixtureMachine.load(directory: devices + "/" + name)), options: .init(lookUpNames: false))
    }

    static func id(_ snapshot: BusSnapshot, _ address: String) -> Int? {
        PCIAddress(parsing: address).flatMap { snapshot.grouping.group(of: $0)?.id }
    }

    @Test("VT-d: an Intel iGPU at 00:02.0 has its own DRHD, registered first, so it is group 0 ahead of 00:00.0", arguments: ["intel-pch-laptop", "intel-pch-desktop"])
    func integratedGraphicsFirst(_ name: String) throws {
        let snapshot = try Self.snapshot(name)
        #expect(Self.id(snapshot, "0000:00:02.0") == 0)
        #expect(Self.id(snapshot, "0000:00:00.0") == 1)
        #expect(snapshot.grouping.unitOrder.units.map(\.name) == ["gfx", "include-all"])
        // One PCI root: the inferred order is the whole truth.
        #expect(snapshot.grouping.unitOrder.guess == nil)
    }

    @Test("an 00:02.0 that is not Intel graphics (a root port on switch-nonacs, AMD's root port) keeps bus order")
    func noGraphicsUnit() throws {
        for name in ["switch-nonacs", "amd-southbridge"] {
            let snapshot = try Self.snapshot(name)
            #expect(!snapshot.grouping.unitOrder.units.contains { $0.name == "gfx" }, "\(name)")
            let ids = snapshot.grouping.groups.map(\.id)
            #expect(ids == Array(0..<ids.count))
        }
        let switchBoard = try Self.snapshot("switch-nonacs")
        #expect(Self.id(switchBoard, "0000:00:00.0") == 0)
    }

    @Test("several PCI roots without a stated order: numbered in bus order and said to be a guess")
    func severalRootsAreAGuess() throws {
        let snapshot = try Self.snapshot("default")
        let guess = try #require(snapshot.grouping.unitOrder.guess)
        #expect(guess.hasPrefix("group numbers: a guess (the DMAR order of the 4 PCI roots"))
        #expect(Self.id(snapshot, "0000:00:00.0") == 0)
    }

    @Test("a manifest's iommuUnits set the order: the unit of root 5d registered first gets group 0")
    func manifestOrder() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vfiokit-units-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.devices + "/default/manifest.json"))
        var manifest = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        manifest["iommuUnits"] = [["name": "dmar3", "roots": ["0000:5d"]], ["name": "dmar0", "includeAll": true]]
        let dump = try #require(manifest["dump"] as? String)
        try FileManager.default.copyItem(atPath: Self.devices + "/default/" + dump, toPath: directory + "/" + dump)
        try JSONSerialization.data(withJSONObject: manifest).write(to: URL(fileURLWithPath: directory + "/manifest.json"))
        let machine = try FixtureMachine.load(directory: directory)
        let stated = try BusSnapshot.load(.machine(machine), options: .init(lookUpNames: false))
        let inferred = try Self.snapshot("default")
        #expect(stated.grouping.unitOrder.guess == nil)
        #expect(stated.grouping.unitOrder.origin == "the machine's manifest")
        // The same groups, numbered differently: root 5d's come first.
        #expect(Set(stated.grouping.groups.map { $0.sortedMembers }) == Set(inferred.grouping.groups.map { $0.sortedMembers }))
        let first = try #require(stated.grouping.groups.first)
        #expect(first.sortedMembers.allSatisfy { $0.bus >= 0x5d })
        let rootFive = stated.grouping.groups.filter { $0.sortedMembers.allSatisfy { $0.bus >= 0x5d } }.map(\.id)
        #expect(rootFive == Array(0..<rootFive.count))
        #expect(Self.id(stated, "0000:00:00.0") == rootFive.count)
    }

    @Test("a host's /sys/class/iommu units set the order (VT-d: the INCLUDE_PCI_ALL unit, the largest, registers last)")
    func hostOrder() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("vfiokit-host-units-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let machine = try FixtureMachine.load(directory: Self.devices + "/switch-nonacs")
        let topology = try machine.topology(options: .init(lookUpNames: false))
        try SysfsTreeWriter.write(topology, kernelGroups: [:], drivers: machine.drivers, to: root + "/sys/bus/pci")
        // dmar0: the port at 00:03.0 and everything below it; dmar1: the rest.
        let port = try #require(PCIAddress(parsing: "0000:00:03.0"))
        let range = try #require(topology.functions.first { $0.address == port }?.bridgeBuses)
        let below = topology.functions.filter { $0.address == port || (range.secondary...range.subordinate).contains($0.address.bus) }.map(\.address)
        #expect(below.count > 1 && below.count < topology.functions.count / 2)
        for function in topology.functions {
            let unit = below.contains(function.address) ? "dmar0" : "dmar1"
            try FileManager.default.createDirectory(
                atPath: root + "/sys/class/iommu/\(unit)/devices/\(function.address)", withIntermediateDirectories: true)
        }
        let snapshot = try BusSnapshot.load(.host(sysfsPath: root + "/sys/bus/pci"), platform: .intelVTd, options: .init(lookUpNames: false))
        #expect(snapshot.grouping.unitOrder.units.map(\.name) == ["dmar0", "dmar1"])
        #expect(snapshot.grouping.group(of: port)?.id == 0)
        #expect(Self.id(snapshot, "0000:00:00.0") == Set(below.compactMap { snapshot.grouping.group(of: $0)?.id }).count)
    }
}
