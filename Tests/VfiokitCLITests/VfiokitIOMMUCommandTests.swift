import Foundation
import Testing

/// End-to-end tests of what the IOMMU layer adds to `vfiokit`: default domain types and reserved
/// regions in `groups`, assignability of the firmware direct-mapped device, and `type` what-ifs.
@Suite("vfiokit IOMMU reports")
struct VfiokitIOMMUCommandTests {
    static func group(_ id: Int, in json: [String: Any]) throws -> [String: Any] {
        let groups = try #require(json["groups"] as? [[String: Any]])
        return try #require(groups.first { $0["id"] as? Int == id })
    }

    @Test("groups --json on default: SYS-01 type, SYS-02 reserved regions, RD-03 not assignable")
    func defaultGroups() throws {
        let result = try CLI.run(["groups", "--machine", "default", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let json = try result.json()
        #expect((json["iommu"] as? String)?.hasPrefix("vt-d-48") == true)
        let raid = try Self.group(23, in: json)
        #expect(raid["defaultDomainType"] as? String == "DMA-FQ")
        #expect(
            raid["reservedRegions"] as? [String] == [
                "0x000000007b000000 0x000000007b7fffff direct", "0x00000000fee00000 0x00000000feefffff msi",
            ])
        #expect(raid["assignable"] as? Bool == false)
        #expect((raid["viability"] as? String)?.contains("firmware requires a 1:1 mapping for 0000:3d:00.0") == true)
        let usb = try Self.group(3, in: json)
        #expect((usb["reservedRegions"] as? [String])?.first == "0x000000007b800000 0x000000007b9fffff direct-relaxable")
        let nvme = try Self.group(27, in: json)
        #expect(nvme["assignable"] as? Bool == true)
    }

    @Test("--iommu picks another profile: SMMUv3 groups boot on DMA with the SW_MSI window")
    func profileOverride() throws {
        let result = try CLI.run(["groups", "--machine", "default", "--iommu", "smmuv3", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let nvme = try Self.group(27, in: try result.json())
        #expect(nvme["defaultDomainType"] as? String == "DMA")
        #expect(nvme["reservedRegions"] as? [String] == ["0x0000000008000000 0x00000000080fffff msi"])
        let bad = try CLI.run(["groups", "--machine", "default", "--iommu", "nonesuch"])
        #expect(bad.status == 64)
        #expect(bad.stderr.contains("--iommu nonesuch: no such IOMMU profile"))
    }

    @Test("type: DT-05 refuses while nvme is bound, accepts after --unbind; DT-04 needs no unbind")
    func typeWhatIf() throws {
        let refused = try CLI.run(["type", "13", "identity", "--machine", "default"])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("EPERM") && refused.stderr.contains("DT-05"))
        let accepted = try CLI.run(["type", "13", "identity", "--unbind", "1c:00.0", "--machine", "default", "--json"])
        #expect(accepted.status == 0, "\(accepted.stderr)")
        let outcome = try accepted.json()
        #expect(outcome["before"] as? String == "DMA-FQ")
        #expect(outcome["after"] as? String == "identity")
        let inPlace = try CLI.run(["type", "13", "DMA-FQ", "--machine", "default", "--iommu", "smmuv3", "--json"])
        #expect(inPlace.status == 0)
        #expect(try inPlace.json()["after"] as? String == "DMA-FQ")
    }

    @Test("type --unbind: not a PCI address, a function of another group, or one the machine lacks is a usage error (64), nothing unbound (issue 19 §5, §8)",
        arguments: [("zz", "not a PCI address"), ("0000:5f:00.0", "it is in IOMMU group 28"), ("0000:7f:1f.7", "has no such function")])
    func typeUnbindOutsideTheGroup(_ address: String, _ reason: String) throws {
        let result = try CLI.run(["type", "13", "identity", "--unbind", address, "--machine", "default"])
        #expect(result.status == 64, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stderr.contains(reason), "\(result.stderr)")
        #expect(!result.stdout.contains("unbound"), "\(result.stdout)")
    }

    @Test("a -noir profile is named and labelled as such, so interrupt remapping shows in every report (issue 19 §8)",
        arguments: [("vt-d-48-noir", "vt-d-48-noir (Intel VT-d, 48-bit address width, NO interrupt remapping)"),
                    ("amd-vi-noir", "amd-vi-noir (AMD-Vi, 48-bit address width, NO interrupt remapping)"),
                    ("vt-d-48", "vt-d-48 (Intel VT-d, 48-bit address width, interrupt remapping)")])
    func interruptRemappingShown(_ profile: String, _ line: String) throws {
        let result = try CLI.run(["groups", "--machine", "default", "--iommu", profile])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("  IOMMU: \(line), default domain type"), "\(result.stdout.prefix(400))")
    }

    @Test("report prints each group's reserved_regions lines as sysfs does (SYS-02), VT-d's floppy region included")
    func reportRegions() throws {
        let result = try CLI.run(["report", "--machine", "default"])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let lpc = try #require(lines.firstIndex { $0.hasPrefix("  6: 0000:00:1f.0 0000:00:1f.4") })
        #expect(
            Array(lines[(lpc + 2)...(lpc + 4)]) == [
                "      reserved_regions:", "        0x0000000000000000 0x0000000000ffffff direct-relaxable",
                "        0x00000000fee00000 0x00000000feefffff msi",
            ])
    }

    @Test("DT-06: a manifest's passthrough default is the global default, not a request: the untrusted NVMe's group boots DMA")
    func passthroughWithUntrusted() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vfiokit-passthrough-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let original = CLI.packageRoot.appendingPathComponent("devices/default")
        try FileManager.default.copyItem(
            at: original.appendingPathComponent("lspci-xxxx.txt"), to: directory.appendingPathComponent("lspci-xxxx.txt"))
        var manifest = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: original.appendingPathComponent("manifest.json"))) as? [String: Any])
        manifest["iommu"] = ["profile": "vt-d-39", "defaultDomainType": "identity"]
        manifest["untrusted"] = ["0000:1a:00.0"]
        try JSONSerialization.data(withJSONObject: manifest).write(to: directory.appendingPathComponent("manifest.json"))
        let result = try CLI.run(["groups", "--machine", directory.path, "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let json = try result.json()
        #expect((json["iommu"] as? String)?.hasPrefix("vt-d-39") == true)
        #expect(try Self.group(14, in: json)["defaultDomainType"] as? String == "DMA")
        #expect(try Self.group(27, in: json)["defaultDomainType"] as? String == "identity")
    }

    @Test("explain says why the RAID controller cannot be assigned")
    func explainDirect() throws {
        let result = try CLI.run(["explain", "3d:00.0", "--machine", "default"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("RD-02"))
    }
}
