import Foundation
import KernelRules
import PCIBus
import SystemPackage
import Testing

@testable import IOMMU

/// The IOMMU keys of `manifest.json` (devices/README.md), each loaded the way `vfiokit --machine`
/// loads a machine (`IOMMUConfiguration.of`, `IOMMUCore.load`) from a copy of `devices/default`
/// whose manifest sets it: `iommu.profile`, `iommu.defaultDomainType`, `iommu.floppyWorkaround`,
/// `untrusted` and a region's `type`; then the values each key refuses. Groups used: 3 = USB
/// (relaxable RMRR) + thermal, 6 = LPC + SMBus, 14 = NVMe 1a:00.0, 23 = RAID (direct RMRR),
/// 27 = NVMe 5e:00.0.
@Suite("Manifest IOMMU keys")
struct ManifestKeyTests {
    struct Row: Sendable, CustomTestStringConvertible {
        let rule: String
        /// Members of a JSON object, set over the manifest's own.
        let keys: String
        var profile: String? = nil
        /// The core's global default (`iommu_def_domain_type`).
        var defaultDomainType: IOMMUDomainType? = nil
        /// Group → sysfs `type`, without the newline.
        var types: [Int: String] = [:]
        /// Group → sysfs `reserved_regions` lines, without newlines.
        var regions: [Int: [String]] = [:]
        /// Every device of the machine with `require_direct`, when the row says.
        var requireDirect: [String]? = nil
        var untrusted: [String]? = nil
        /// A manifest the loader refuses: errno, rule and a piece of the message.
        var refused: (errno: Errno, rule: String, says: String)? = nil
        var testDescription: String { rule }
    }

    static let msi = "0x00000000fee00000 0x00000000feefffff msi"

    static let rows: [Row] = [
        Row(
            rule: "DT-06 iommu.profile vt-d-39, a passthrough default and an untrusted NVMe: its group boots DMA, the others identity",
            keys: #""iommu": {"profile": "vt-d-39", "defaultDomainType": "identity"}, "untrusted": ["0000:1a:00.0"]"#,
            profile: "vt-d-39", defaultDomainType: .identity, types: [14: "DMA", 27: "identity", 23: "identity", 6: "identity"],
            untrusted: ["1a:00.0"]),
        Row(
            rule: "DT-06 iommu.defaultDomainType DMA (iommu.strict=1): every group boots strict DMA", keys: #""iommu": {"defaultDomainType": "DMA"}"#,
            profile: "vt-d-48", defaultDomainType: .dma, types: [27: "DMA", 23: "DMA", 6: "DMA"]),
        Row(
            rule: "DT-09 iommu.profile mock with a passthrough default: the fixed blocked default domain wins",
            keys: #""iommu": {"profile": "mock", "defaultDomainType": "identity"}"#, profile: "mock", defaultDomainType: .identity,
            types: [0: "blocked", 27: "blocked"], regions: [27: []], requireDirect: ["00:14.0", "3d:00.0"]),
        Row(
            rule: "DT-09 iommu.profile mock with a strict default: still blocked", keys: #""iommu": {"profile": "mock", "defaultDomainType": "DMA"}"#,
            profile: "mock", defaultDomainType: .dma, types: [27: "blocked"]),
        Row(
            rule: "RR-04 iommu.profile amd-vi: unity maps are direct, the HyperTransport hole is on every group",
            keys: #""iommu": {"profile": "amd-vi"}"#, profile: "amd-vi", defaultDomainType: .dmaFQ,
            types: [27: "DMA-FQ"], regions: [27: [msi, "0x000000fd00000000 0x000000ffffffffff reserved"]],
            requireDirect: ["00:14.0", "3d:00.0"]),
        Row(
            rule: "SYS-01 iommu.profile smmuv3-40: arm64's DMA default and the SW_MSI window", keys: #""iommu": {"profile": "smmuv3-40"}"#,
            profile: "smmuv3-40", defaultDomainType: .dma, types: [27: "DMA"], regions: [27: ["0x0000000008000000 0x00000000080fffff msi"]]),
        Row(
            rule: "DT-06 iommu.profile bypass (identity default) with an untrusted NVMe: its group boots DMA",
            keys: #""iommu": {"profile": "bypass"}, "untrusted": ["0000:5e:00.0"]"#, profile: "bypass", defaultDomainType: .identity,
            types: [27: "DMA", 14: "identity"], untrusted: ["5e:00.0"]),
        Row(
            rule: "RR-01 a region's type direct-relaxable: the RAID controller no longer requires a 1:1 mapping",
            keys: #""reservedRegions": {"0000:3d:00.0": [{"start": "0x7b000000", "end": "0x7b7fffff", "type": "direct-relaxable"}]}"#,
            regions: [23: ["0x000000007b000000 0x000000007b7fffff direct-relaxable", msi], 3: [msi]], requireDirect: []),
        Row(
            rule: "RR-01 a region's type direct on a USB controller overrides VT-d's relaxable rule",
            keys: #""reservedRegions": {"0000:00:14.0": [{"start": "0x7b800000", "end": "0x7b9fffff", "type": "direct"}]}"#,
            regions: [3: ["0x000000007b800000 0x000000007b9fffff direct", msi]], requireDirect: ["00:14.0"]),
        Row(
            rule: "RR-03 types reserved, sw-msi and msi: adjacent regions of different types stay apart, both MSI kinds print msi",
            keys: #"""
                "reservedRegions": {"0000:5e:00.0": [{"start": "0x1000", "end": "0x1fff", "type": "reserved"},
                    {"start": "0x2000", "end": "0x2fff", "type": "sw-msi"}, {"start": "0x3000", "end": "0x3fff", "type": "msi"}]}
                """#,
            regions: [
                27: [
                    "0x0000000000001000 0x0000000000001fff reserved", "0x0000000000002000 0x0000000000002fff msi",
                    "0x0000000000003000 0x0000000000003fff msi", msi,
                ]
            ],
            requireDirect: []),
        Row(
            rule: "RR-04 iommu.floppyWorkaround false: the ISA bridge's group has only the MSI window",
            keys: #""iommu": {"floppyWorkaround": false}"#, regions: [6: [msi]]),
        Row(
            rule: "no rule: an unknown profile is refused", keys: #""iommu": {"profile": "vt-d-57"}"#,
            refused: (.invalidArgument, "", "unknown IOMMU profile \"vt-d-57\"")),
        Row(
            rule: "no rule: blocked is no default domain type", keys: #""iommu": {"defaultDomainType": "blocked"}"#,
            refused: (.invalidArgument, "", "iommu.defaultDomainType \"blocked\" is not identity, DMA or DMA-FQ")),
        Row(
            rule: "no rule: an unknown region type is refused",
            keys: #""reservedRegions": {"0000:3d:00.0": [{"start": "0x1000", "end": "0x1fff", "type": "rmrr"}]}"#,
            refused: (.invalidArgument, "", "unknown type \"rmrr\"")),
        Row(
            rule: "no rule: a region whose end is below its start is refused",
            keys: #""reservedRegions": {"0000:3d:00.0": [{"start": "0x2000", "end": "0x1fff"}]}"#,
            refused: (.invalidArgument, "", "is not a range")),
        Row(
            rule: "no rule: an untrusted entry that is no PCI address is refused", keys: #""untrusted": ["thunderbolt0"]"#,
            refused: (.invalidArgument, "", "untrusted: \"thunderbolt0\" is not a PCI address")),
        Row(
            rule: "no rule: iommu.floppyWorkaround outside VT-d is refused", keys: #""iommu": {"profile": "amd-vi", "floppyWorkaround": true}"#,
            refused: (.invalidArgument, "", "CONFIG_INTEL_IOMMU_FLOPPY_WA")),
        Row(
            rule: "DT-06 an untrusted device under the mock's fixed blocked default: the kernel refuses to probe it",
            keys: #""iommu": {"profile": "mock"}, "untrusted": ["0000:5e:00.0"]"#,
            refused: (.invalidArgument, "DT-06", "0000:5e:00.0 is untrusted and needs a strict DMA domain")),
    ]

    @Test(arguments: rows)
    func manifestKey(_ row: Row) throws {
        let directory = try TestMachines.variant(keys: row.keys)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let snapshot = try BusSnapshot.load(.machine(FixtureMachine.load(directory: directory)))
        let loaded: IOMMUCore?
        do {
            loaded = try IOMMUCore.load(snapshot)
            #expect(row.refused == nil, "loaded; expected \(row.refused.map { "\($0.errno.symbolicName) (\($0.rule))" } ?? "")")
        } catch {
            let refused = try #require(row.refused, "refused: \(error)")
            #expect(error.errno == refused.errno && error.rule.id == refused.rule, "\(error)")
            #expect(error.message.contains(refused.says), "\(error.message)")
            return
        }
        let core = try #require(loaded)
        if let profile = row.profile { #expect(core.profile.name == profile) }
        if let type = row.defaultDomainType { #expect(core.defaultDomainType == type) }
        for (id, type) in row.types { #expect(core.group(id)?.sysfsType == type + "\n", "group \(id)") }
        for (id, lines) in row.regions {
            #expect(core.group(id)?.reservedRegions.sysfsText == lines.map { $0 + "\n" }.joined(), "group \(id)")
        }
        let devices = core.snapshot.devices.values
        if let requireDirect = row.requireDirect {
            #expect(devices.filter(\.requireDirect).map(\.address).sorted() == requireDirect.map(TestMachines.address))
        }
        if let untrusted = row.untrusted {
            #expect(devices.filter(\.untrusted).map(\.address).sorted() == untrusted.map(TestMachines.address))
        }
    }
}
