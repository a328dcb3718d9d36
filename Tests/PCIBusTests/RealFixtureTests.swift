import Foundation
import SystemPackage
import Testing

@testable import PCIBus

/// Real-machine dumps from `../shared/fixtures/real` (never copied into the repo). The tests skip,
/// visibly, when that directory is not beside the checkout.
enum RealFixtures {
    static let root: String = {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return repo.deletingLastPathComponent().appendingPathComponent("shared/fixtures/real").path
    }()
    static let available = FileManager.default.fileExists(atPath: root + "/INDEX.md")
    static let skipNote: Comment = "../shared/fixtures/real is absent: real-fixture tests skipped"

    static func path(_ relative: String) -> String { root + "/" + relative }

    /// `IOMMU Group N: dddd:bb:dd.f ...` lines of a `*.groups.txt` file.
    static func kernelGroups(_ relative: String) throws -> [Int: [String]] {
        var groups: [Int: [String]] = [:]
        for line in try String(contentsOfFile: path(relative), encoding: .utf8).split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, let id = Int(parts[0].replacingOccurrences(of: "IOMMU Group ", with: "")) else { continue }
            groups[id] = parts[1].split(separator: " ").map(String.init).sorted()
        }
        return groups
    }

    static func files(in directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path(directory))) ?? []).sorted().map { directory + "/" + $0 }
    }
}

@Suite("Real fixtures against the kernel's own groups", .enabled(if: RealFixtures.available, RealFixtures.skipNote))
struct RealFixtureTests {
    @Test("gold MSI MS-7721 (AMD-Vi): same groups and same numbers as the kernel")
    func msiGoldExact() throws {
        let topology = try PCITopology.load(.dump(path: RealFixtures.path("gold/msi-ms7721-amd-fm2.lspci-nnvvvxxxx.txt")))
        let grouping = IsolationGrouping(topology: topology)
        #expect(grouping.platform == .amdVi)
        let computed = Dictionary(uniqueKeysWithValues: grouping.groups.map { ($0.id, $0.sortedMembers.map(\.description)) })
        #expect(computed == (try RealFixtures.kernelGroups("gold/msi-ms7721-amd-fm2.groups.txt")))
        #expect(grouping.ungrouped.map(\.address.description) == ["0000:00:00.0", "0000:00:00.2"])
        #expect(grouping.rule("00:14.5") == "IG-14")  // amd_sb quirk isolates 1022:7809
        #expect(grouping.rule("01:00.0") == "IG-11")  // root port 00:04.0 lacks ACS
    }

    /// The platform is detected, never passed in. The AYANEO dump reads vendor ffff everywhere
    /// (rebuilt from `lspci -v` text), so AMD-Vi is a guess from its IOMMU function (class 0806),
    /// made with a warning.
    @Test(
        "vvv-groups: the same sets as the kernel, on the detected platform",
        arguments: [
            ("vvv-groups/radxa-orion-o6-cix-p1.synth-from-vvv.lspci-xxxx.txt", "vvv-groups/radxa-orion-o6-cix-p1.groups.txt", IOMMUPlatformKind.armSMMUv3, false),
            ("vvv-groups/ayaneo-kun-amd-phoenix.synth-from-v.lspci-xxxx.txt", "vvv-groups/ayaneo-kun-amd-phoenix.groups.txt", .amdVi, true),
        ] as [(String, String, IOMMUPlatformKind, Bool)])
    func vvvSets(dump: String, groups: String, platform: IOMMUPlatformKind, guessed: Bool) throws {
        let topology = try PCITopology.load(.dump(path: RealFixtures.path(dump)))
        let grouping = IsolationGrouping(topology: topology)
        #expect(grouping.platform == platform)
        #expect((grouping.platformWarning != nil) == guessed, "\(grouping.platformWarning ?? "no warning")")
        let computed = Set(grouping.groups.map { $0.sortedMembers.map(\.description) })
        #expect(computed == Set(try RealFixtures.kernelGroups(groups).values))
    }

    @Test("Raptor Talos II (POWER9): detected as PowerNV and no ACS-style groups claimed")
    func powerNotMisreported() throws {
        let topology = try PCITopology.load(.dump(path: RealFixtures.path("gold/raptor-talos2-power9.lspci-vvxxx.txt")))
        let grouping = IsolationGrouping(topology: topology)
        #expect(grouping.platform == .powerNV)
        #expect(grouping.groups.isEmpty)
        #expect(grouping.unavailableReason != nil)
        #expect(Set(topology.functions.map(\.address.domain)).count == 10)
    }

    @Test("Every hex-only, sysfs-derived and pciutils dump loads (broken-ecaps only with loops allowed)")
    func everyDumpLoads() throws {
        let files = ["hex-only", "sysfs-derived", "pciutils-tests"].flatMap(RealFixtures.files)
        #expect(files.count > 50)
        for file in files where !file.hasSuffix("broken-ecaps") {
            // Raw logs with split rows are published with a *.cleaned.txt twin; the raw ones must fail with a line.
            do {
                let topology = try PCITopology.load(.dump(path: RealFixtures.path(file)), options: .init(lookUpNames: false))
                #expect(!topology.functions.isEmpty, "\(file)")
                _ = IsolationGrouping(topology: topology)
            } catch {
                let cleaned = file.replacingOccurrences(of: ".txt", with: ".cleaned.txt")
                #expect(files.contains(cleaned), "\(file): \(error)")
                #expect(error.message.contains(RealFixtures.path(file) + ":"), "error names file and line: \(error)")
            }
        }
    }

    @Test("pciutils broken-ecaps: the looping extended chain is an ELOOP error naming the device, or a reported issue")
    func brokenEcaps() throws {
        let path = RealFixtures.path("pciutils-tests/broken-ecaps")
        #expect(throws: PCIBusError.self) { try PCITopology.load(.dump(path: path)) }
        do {
            _ = try PCITopology.load(.dump(path: path))
        } catch {
            #expect(error.kind == .capabilityLoop)
            #expect(error.errno == .tooManySymbolicLinkLevels)
            #expect(error.message.contains("0000:00:00.0"))
        }
        let tolerant = try PCITopology.load(.dump(path: path), options: .init(allowCapabilityLoops: true))
        #expect(tolerant.capabilityIssues.contains { $0.issue.isLoop })
    }

    @Test("hwloc 32-bit PCI domain (10000:) keeps its 5-digit domain")
    func wideDomain() throws {
        let topology = try PCITopology.load(.dump(path: RealFixtures.path("sysfs-derived/hwloc-2pa-pcidomain32bits.lspci-x.txt")))
        #expect(topology.functions.contains { $0.address.domain == 0x10000 })
    }

    @Test("tree-asus-p6t6: two root buses, the LSI SAS behind a switch, 4 ACS-capable root ports")
    func asus() throws {
        let topology = try PCITopology.load(.dump(path: RealFixtures.path("pciutils-tests/tree-asus-p6t6")))
        #expect(topology.functions.count == 53)
        #expect(topology.functions.filter { $0.pciePortType == .rootPort && $0.acs != nil }.count == 4)
        let grouping = IsolationGrouping(topology: topology)
        #expect(grouping.platform == .intelVTd)
        #expect(grouping.groups.reduce(0) { $0 + $1.members.count } == topology.functions.count)
    }
}
