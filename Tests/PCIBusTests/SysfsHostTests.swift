import Foundation
import Testing

@testable import PCIBus

/// A host read through libpci's sysfs method from a tree written by `SysfsTreeWriter`: the
/// kernel's groups (`iommu_group` links) against the computed ones, the bound drivers (`driver`
/// links, also read without libpci's `PCI_FILL_DRIVER`), and an unprivileged 64-byte read.
@Suite("Host through sysfs: kernel groups, drivers, unprivileged reads")
struct SysfsHostTests {
    /// `devices/default` as a host tree: its manifest's expected groups become the kernel's.
    static func writeDefault(editing edit: (inout [PCIAddress: Int]) -> Void = { _ in }, configBytes: Int? = nil) throws
        -> String
    {
        let machine = try FixtureMachine.load(directory: DeviceMachineTests.devicesDirectory + "/default")
        var groups: [PCIAddress: Int] = [:]
        for group in machine.expectedGroups { for address in group.devices { groups[address] = group.id + 100 } }
        edit(&groups)
        let topology = try machine.topology(options: .init(lookUpNames: false))
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("vfiokit-sysfs-\(UUID().uuidString)").path
        let functions = topology.functions.map {
            SysfsTreeWriter.Function(
                address: $0.address, config: Array($0.config.bytes.prefix(configBytes ?? $0.config.count)),
                driver: machine.drivers[$0.address], iommuGroup: groups[$0.address])
        }
        try SysfsTreeWriter.write(functions, to: root)
        return root
    }

    static let nic = PCIAddress(parsing: "0000:1b:00.1")!

    @Test("kernel groups that match the computed ones (compared as sets; the kernel's numbers differ)")
    func matching() throws {
        let root = try Self.writeDefault()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let snapshot = try BusSnapshot.load(.host(sysfsPath: root), options: .init(lookUpNames: false))
        let comparison = KernelGroupComparison(snapshot)
        #expect(comparison.matches, "\(comparison.mismatches)")
        #expect(comparison.summary == "all 28 kernel groups match the computed ones")
        #expect(snapshot.grouping.platform == .intelVTd)
        #expect(snapshot.warnings.isEmpty, "\(snapshot.warnings)")
    }

    @Test("kernel groups that differ: both sides of the difference are named")
    func mismatching() throws {
        // The kernel puts the X710's function 1 with function 0 (as it would without ACS-07's corollary).
        let root = try Self.writeDefault { $0[Self.nic] = $0[PCIAddress(parsing: "0000:1b:00.0")!] }
        defer { try? FileManager.default.removeItem(atPath: root) }
        let snapshot = try BusSnapshot.load(.host(sysfsPath: root), options: .init(lookUpNames: false))
        let comparison = KernelGroupComparison(snapshot)
        #expect(comparison.available && !comparison.matches)
        #expect(comparison.mismatches.contains("kernel group 115 {0000:1b:00.0 0000:1b:00.1} has no computed equal"))
        #expect(comparison.mismatches.contains("computed group 15 {0000:1b:00.0} has no kernel equal"))
        #expect(comparison.mismatches.contains("computed group 16 {0000:1b:00.1} has no kernel equal"))
        #expect(comparison.summary.hasPrefix("3 differences"))
    }

    @Test("bound drivers: libpci's PCI_FILL_DRIVER and the sysfs driver-link fallback agree on every function")
    func drivers() throws {
        let root = try Self.writeDefault()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let snapshot = try BusSnapshot.load(.host(sysfsPath: root), options: .init(lookUpNames: false))
        #expect(snapshot.drivers[PCIAddress(parsing: "0000:1a:00.0")!] == "nvme")
        #expect(snapshot.drivers[PCIAddress(parsing: "0000:00:00.0")!] == nil)
        for function in snapshot.topology.functions {
            #expect(SysfsDriverLink.driver(of: function.address, sysfsRoot: root) == function.driver, "\(function.address)")
        }
    }

    @Test("an unprivileged read (64 bytes of config): one note, no per-device capability errors, groups unreliable")
    func unprivileged() throws {
        let root = try Self.writeDefault(configBytes: 64)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let snapshot = try BusSnapshot.load(.host(sysfsPath: root), options: .init(lookUpNames: false))
        #expect(snapshot.topology.functions.allSatisfy { $0.config.count == 64 })
        #expect(snapshot.topology.capabilityIssues.isEmpty)
        #expect(!snapshot.groupsReliable)
        #expect(snapshot.warnings.count == 1)
        #expect(snapshot.warnings.first?.hasPrefix("only the first 64 bytes of config space are readable without root") == true)
    }

    @Test("a short dump (lspci -x, 64 bytes) is what was captured, not an unprivileged read")
    func dumpsAreNotLimited() throws {
        let topology = Make.topology([("00:00.0", ConfigSpaceBuilder(vendor: 0x8086, device: 0x2020, classCode: 0x060000, size: 64))])
        #expect(topology.headerOnlyFunctions.isEmpty)
        #expect(topology.configSpaceLimitNote == nil)
    }
}

/// `BusSnapshot.warnings`: what every command prints on stderr and puts in its JSON.
@Suite("Snapshot warnings")
struct SnapshotWarningTests {
    @Test("a bridge claiming a bus another bridge already leads to is a warning, not an error")
    func bridgeProblem() {
        let topology = Make.topology([
            ("00:01.0", Make.rootPort(secondary: 1)), ("00:02.0", Make.rootPort(secondary: 1)), ("01:00.0", Make.endpoint()),
        ])
        let snapshot = BusSnapshot(origin: .dump(path: "<test>"), topology: topology)
        #expect(snapshot.warnings == ["0000:00:02.0 claims bus 01, already below 0000:00:01.0"])
        #expect(snapshot.groupsReliable)
    }

    @Test("a guessed platform is a warning; an explicit one is not")
    func platformGuess() {
        let topology = Make.topology([
            ("00:00.0", ConfigSpaceBuilder(vendor: 0xffff, device: 0xffff, classCode: 0x060000, size: 256)),
            ("00:00.2", ConfigSpaceBuilder(vendor: 0xffff, device: 0xffff, classCode: 0x080600, size: 256)),
        ])
        let guessed = BusSnapshot(origin: .dump(path: "<test>"), topology: topology)
        #expect(guessed.warnings.count == 1)
        #expect(guessed.warnings.first?.contains("assumed amd-vi") == true)
        let chosen = BusSnapshot(
            origin: .dump(path: "<test>"), topology: topology, configuration: .init(platform: .amdVi))
        #expect(chosen.warnings.isEmpty)
    }
}
