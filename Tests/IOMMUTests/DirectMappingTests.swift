import PCIBus
import Testing

@testable import IOMMU

/// RR-05 row by row: what a group's default domain identity-maps for its devices' `direct` and
/// `direct-relaxable` regions (`iommu_create_device_direct_mappings`), and which devices require
/// a 1:1 mapping. On `devices/default` (VT-d unless the row says otherwise): group 3 = USB with a
/// relaxable RMRR + thermal, 23 = RAID with a direct RMRR, 27 = NVMe.
@Suite("Direct mappings (RR-05)")
struct DirectMappingTests {
    struct Row: Sendable, CustomTestStringConvertible {
        let rule: String
        var profile: PlatformProfile? = nil
        var defaultDomainType: IOMMUDomainType? = nil
        var firmware: [String: [FirmwareRegion]] = [:]
        let group: Int
        /// Bytes the group's default domain maps.
        let mappedBytes: UInt64
        /// IOVAs that translate to themselves, and IOVAs with nothing mapped.
        var mapped: [UInt64] = []
        var absent: [UInt64] = []
        /// The group's devices with `require_direct` set (default: none).
        var requireDirect: [String] = []
        var testDescription: String { rule }
    }

    static func region(_ start: UInt64, _ last: UInt64, _ type: ReservedRegionType? = nil) -> [FirmwareRegion] {
        [FirmwareRegion(start: start, last: last, type: type)]
    }

    static let rows: [Row] = [
        Row(
            rule: "RR-05 a direct RMRR is identity-mapped in the DMA-FQ default domain and sets require_direct", group: 23,
            mappedBytes: 0x80_0000, mapped: [0x7b00_0000, 0x7b7f_f000], absent: [0x7b80_0000], requireDirect: ["3d:00.0"]),
        Row(
            rule: "RR-05 a direct-relaxable RMRR is mapped too but sets no require_direct", group: 3, mappedBytes: 0x20_0000,
            mapped: [0x7b80_0000, 0x7b9f_f000], absent: [0x7ba0_0000]),
        Row(
            rule: "RR-05 an identity default domain maps nothing; require_direct is set regardless of the type",
            defaultDomainType: .identity, group: 23, mappedBytes: 0, requireDirect: ["3d:00.0"]),
        Row(
            rule: "RR-05 the start rounds up to the minimum page (ALIGN), not down",
            firmware: ["5e:00.0": region(0x7b00_0800, 0x7b00_2fff)], group: 27, mappedBytes: 0x2000,
            mapped: [0x7b00_1000, 0x7b00_2000], absent: [0x7b00_0000, 0x7b00_3000], requireDirect: ["5e:00.0"]),
        Row(
            rule: "RR-05 the end (start + length) rounds up: a partial last page is mapped",
            firmware: ["5e:00.0": region(0x7b00_1000, 0x7b00_17ff)], group: 27, mappedBytes: 0x1000, mapped: [0x7b00_1000],
            absent: [0x7b00_2000], requireDirect: ["5e:00.0"]),
        Row(
            rule: "RR-05 a region inside one page with no page boundary maps nothing",
            firmware: ["5e:00.0": region(0x7b00_0100, 0x7b00_01ff)], group: 27, mappedBytes: 0, absent: [0x7b00_0000],
            requireDirect: ["5e:00.0"]),
        Row(
            rule: "RR-05 overlapping regions of two devices in a group are mapped once (mapped pages are skipped)",
            firmware: ["14.2": region(0x7b90_0000, 0x7bab_ffff, .directRelaxable)], group: 3, mappedBytes: 0x2c_0000,
            mapped: [0x7b80_0000, 0x7ba0_0000, 0x7bab_f000], absent: [0x7bac_0000]),
        Row(
            rule: "RR-05 VT-d's floppy region (0–16 MiB, direct-relaxable) is mapped for the ISA bridge's group (6)", group: 6,
            mappedBytes: 0x100_0000, mapped: [0, 0xff_f000], absent: [0x100_0000]),
        Row(rule: "RR-05 without CONFIG_INTEL_IOMMU_FLOPPY_WA the LPC group maps nothing", profile: .vtd(floppyWorkaround: false), group: 6, mappedBytes: 0),
        Row(
            rule: "RR-05 SMMUv3 (DMA default) types the RMR direct and maps it", profile: .smmuv3(), group: 3,
            mappedBytes: 0x20_0000, mapped: [0x7b80_0000], requireDirect: ["00:14.0"]),
        Row(
            rule: "RR-05 a bypassing IOMMU (identity default) maps nothing", profile: .bypass, group: 23, mappedBytes: 0,
            requireDirect: ["3d:00.0"]),
    ]

    @Test(arguments: rows)
    func directMappings(_ row: Row) throws {
        let core = try TestMachines.core(profile: row.profile, defaultDomainType: row.defaultDomainType, firmwareRegions: row.firmware)
        let group = try #require(core.group(row.group))
        let domain = try #require(group.defaultDomain)
        #expect(domain.mappedBytes == row.mappedBytes)
        for iova in row.mapped {
            guard case .mapped(let address, _) = domain.translate(iova, access: .readWrite) else {
                Issue.record("0x\(String(iova, radix: 16)) is not mapped in \(domain)")
                continue
            }
            #expect(address == iova, "0x\(String(iova, radix: 16)) is mapped to 0x\(String(address, radix: 16)), not to itself")
        }
        for iova in row.absent {
            #expect(domain.translate(iova, access: .read) == .fault(.notPresent), "0x\(String(iova, radix: 16)) is mapped")
        }
        let requireDirect = group.devices.filter { core.device($0)!.requireDirect }
        #expect(requireDirect == row.requireDirect.map(TestMachines.address))
    }
}
