import Foundation
import PCIBus
import Testing

/// `vfiokit report --sysfs DIR` on a host tree with kernel groups (`iommu_group` links), written
/// by `SysfsTreeWriter` from `devices/switch-nonacs`: the report says whether the kernel's groups
/// match the computed ones and, if not, which differ.
@Suite("vfiokit report: computed vs kernel groups (--sysfs)")
struct SysfsReportTests {
    /// Writes the machine as a host whose kernel groups are the manifest's, with `merged` forced
    /// into one kernel group, and each config space cut to `configBytes` when given.
    static func writeHost(merging merged: [String] = [], configBytes: Int? = nil, kernelGroups: Bool = true) throws -> String {
        let machine = try FixtureMachine.load(directory: CLI.packageRoot.path + "/devices/switch-nonacs")
        var groups: [PCIAddress: Int] = [:]
        for group in machine.expectedGroups { for address in group.devices { groups[address] = group.id } }
        let mergedAddresses = merged.compactMap { PCIAddress(parsing: $0) }
        for address in mergedAddresses { groups[address] = groups[mergedAddresses[0]] }
        let loaded = try machine.topology(options: .init(lookUpNames: false))
        let topology = PCITopology(
            functions: loaded.functions.map {
                PCIFunction(address: $0.address, config: PCIConfigSpace(bytes: Array($0.config.bytes.prefix(configBytes ?? 4096))))
            }, source: loaded.source)
        let root = CLI.temporaryPath("sysfs")
        try SysfsTreeWriter.write(topology, kernelGroups: kernelGroups ? groups : [:], drivers: machine.drivers, to: root)
        // A host with kernel groups has its IOMMU units registered (`class/iommu`), else it is off.
        try FileManager.default.createDirectory(atPath: root + "/class/iommu/dmar0", withIntermediateDirectories: true)
        return root
    }

    @Test("kernel groups equal to the computed ones: the report says they all match")
    func matching() throws {
        let root = try Self.writeHost()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let text = try CLI.run(["report", "--sysfs", root])
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdout.contains("Isolation report for host sysfs \(root)"))
        #expect(text.stdout.contains("kernel groups: all 13 kernel groups match the computed ones"))
        #expect(!text.stdout.contains("Computed vs kernel groups differ"))
        let json = try CLI.run(["report", "--sysfs", root, "--json"]).json()
        let comparison = try #require(json["kernelComparison"] as? [String: Any])
        #expect(comparison["available"] as? Bool == true)
        #expect((comparison["mismatches"] as? [String])?.isEmpty == true)
    }

    @Test("kernel groups that differ: the report names each group without an equal")
    func mismatching() throws {
        let root = try Self.writeHost(merging: ["0000:05:00.0", "0000:05:00.1"])
        defer { try? FileManager.default.removeItem(atPath: root) }
        let text = try CLI.run(["report", "--sysfs", root])
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdout.contains("kernel groups: 3 differences"))
        #expect(text.stdout.contains("Computed vs kernel groups differ:"))
        #expect(text.stdout.contains("kernel group 10 {0000:05:00.0 0000:05:00.1} has no computed equal"))
        #expect(text.stdout.contains("computed group 11 {0000:05:00.1} has no kernel equal"))
        let json = try CLI.run(["report", "--sysfs", root, "--json"]).json()
        let comparison = try #require(json["kernelComparison"] as? [String: Any])
        #expect((comparison["mismatches"] as? [String])?.count == 3)
    }

    @Test("an unprivileged read (64 bytes of config): one note on stderr; the kernel's groups stay reliable, the computed explanation is marked incomplete")
    func unprivileged() throws {
        let root = try Self.writeHost(configBytes: 64)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let text = try CLI.run(["groups", "--sysfs", root])
        #expect(text.status == 0, "\(text.stderr)")
        let warnings = text.stderr.split(separator: "\n").filter { $0.hasPrefix("warning: ") }
        #expect(warnings.count == 1, "\(text.stderr)")
        #expect(warnings.first?.contains("only the first 64 bytes of config space are readable without root") == true)
        #expect(!text.stderr.contains("capability"))
        // The groups are the kernel's (the iommu_group links anyone can read): reliable; only the
        // computed explanation is incomplete (issue 19 §2).
        #expect(text.stdout.contains("computed explanation: INCOMPLETE"))
        #expect(!text.stdout.contains("groups: UNRELIABLE"))
        for command in ["topology", "groups", "report", "explain"] {
            let json = try CLI.run([command] + (command == "explain" ? ["03:00.0"] : []) + ["--sysfs", root, "--json"]).json()
            #expect(json["groupsReliable"] as? Bool == true, "\(command)")
            #expect(json["explanationsReliable"] as? Bool == false, "\(command)")
            #expect((json["warnings"] as? [String])?.count == 1, "\(command)")
        }
        // Without kernel groups the computed ones are all there is, and they are unreliable.
        let bare = try Self.writeHost(configBytes: 64, kernelGroups: false)
        defer { try? FileManager.default.removeItem(atPath: bare) }
        let json = try CLI.run(["groups", "--sysfs", bare, "--json"]).json()
        #expect(json["groupsReliable"] as? Bool == false)
        #expect((json["groupsUnreliableReason"] as? String)?.contains("only the first 64 bytes") == true)
    }
}
