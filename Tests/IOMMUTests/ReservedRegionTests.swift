import PCIBus
import Testing

@testable import IOMMU

/// Reserved regions: the merge of RR-02/RR-03 and the sysfs text of SYS-02, byte for byte.
@Suite("Reserved regions (RR-01..05, SYS-02)")
struct ReservedRegionTests {
    static func region(_ start: UInt64, _ last: UInt64, _ type: ReservedRegionType) -> ReservedRegion {
        ReservedRegion(start: start, last: last, type: type)!
    }

    struct MergeCase: Sendable, CustomTestStringConvertible {
        let rule: String
        let inserted: [ReservedRegion]
        let expected: String
        var testDescription: String { rule }
    }

    static let mergeCases: [MergeCase] = [
        MergeCase(
            rule: "RR-03 sorted by start", inserted: [region(0x2000, 0x2fff, .msi), region(0x1000, 0x1fff, .reserved)],
            expected: "0x0000000000001000 0x0000000000001fff reserved\n0x0000000000002000 0x0000000000002fff msi\n"),
        MergeCase(
            rule: "RR-03 same type, adjacent: merged", inserted: [region(0x1000, 0x1fff, .direct), region(0x2000, 0x2fff, .direct)],
            expected: "0x0000000000001000 0x0000000000002fff direct\n"),
        MergeCase(
            rule: "RR-03 same type, overlapping: merged to the union",
            inserted: [region(0x1000, 0x3fff, .reserved), region(0x2000, 0x2fff, .reserved), region(0x3000, 0x4fff, .reserved)],
            expected: "0x0000000000001000 0x0000000000004fff reserved\n"),
        MergeCase(
            rule: "RR-03 same type with a gap: kept apart", inserted: [region(0x1000, 0x1fff, .msi), region(0x3000, 0x3fff, .msi)],
            expected: "0x0000000000001000 0x0000000000001fff msi\n0x0000000000003000 0x0000000000003fff msi\n"),
        MergeCase(
            rule: "RR-03 different types overlap and are never merged",
            inserted: [region(0x1000, 0x2fff, .direct), region(0x2000, 0x3fff, .reserved)],
            expected: "0x0000000000001000 0x0000000000002fff direct\n0x0000000000002000 0x0000000000003fff reserved\n"),
        MergeCase(
            rule: "RR-03 equal starts sort by ascending type",
            inserted: [region(0x1000, 0x1fff, .msi), region(0x1000, 0x1fff, .direct), region(0x1000, 0x1fff, .directRelaxable)],
            expected:
                "0x0000000000001000 0x0000000000001fff direct\n0x0000000000001000 0x0000000000001fff direct-relaxable\n0x0000000000001000 0x0000000000001fff msi\n"
        ),
        MergeCase(
            rule: "SYS-02 both MSI kinds print msi", inserted: [region(0x800_0000, 0x80f_ffff, .softwareMSI)],
            expected: "0x0000000008000000 0x00000000080fffff msi\n"),
        MergeCase(
            rule: "RR-03 identical regions of two devices collapse (the MSI window of every VT-d device)",
            inserted: [region(0xfee0_0000, 0xfeef_ffff, .msi), region(0xfee0_0000, 0xfeef_ffff, .msi)],
            expected: "0x00000000fee00000 0x00000000feefffff msi\n"),
        MergeCase(
            rule: "SYS-02 inclusive end at the top of the address space",
            inserted: [region(0xffff_ffff_ffff_f000, .max, .reserved)],
            expected: "0xfffffffffffff000 0xffffffffffffffff reserved\n"),
    ]

    @Test(arguments: mergeCases)
    func merge(_ row: MergeCase) {
        #expect(ReservedRegionList(row.inserted).sysfsText == row.expected)
    }

    @Test(
        "RR-01: enum iommu_resv_type in the kernel's order, its sysfs word (SYS-02) and its manifest name",
        arguments: [
            (ReservedRegionType.direct, 0, "direct", "direct"), (.directRelaxable, 1, "direct-relaxable", "direct-relaxable"),
            (.reserved, 2, "reserved", "reserved"), (.msi, 3, "msi", "msi"), (.softwareMSI, 4, "msi", "sw-msi"),
        ])
    func regionType(type: ReservedRegionType, kernelValue: Int, sysfs: String, manifest: String) {
        #expect(type.rawValue == kernelValue)
        #expect(ReservedRegionType.allCases[kernelValue] == type, "allCases follows the kernel's order")
        #expect(type.sysfsName == sysfs)
        #expect(ReservedRegionType(name: manifest) == type)
    }

    @Test("RR-01: an inverted region cannot be made")
    func invertedRegion() {
        #expect(ReservedRegion(start: 0x2000, last: 0x1fff, type: .direct) == nil)
    }

    @Test(
        "RR-04: VT-d RMRRs are direct-relaxable for USB and graphics, direct otherwise; AMD unity maps are direct",
        arguments: [
            ("vt-d-48", 0x0C0330 as UInt32, ReservedRegionType.directRelaxable), ("vt-d-48", 0x030000, .directRelaxable),
            ("vt-d-48", 0x010700, .direct), ("amd-vi", 0x0C0330, .direct), ("smmuv3", 0x030000, .direct),
        ])
    func firmwareRegionType(profile: String, classCode: UInt32, expected: ReservedRegionType) {
        let config = ConfigSpaceBuilder(vendor: 0x8086, device: 0x1234, classCode: classCode, size: 256)
        let function = PCIFunction(address: PCIAddress(parsing: "00:14.0")!, config: PCIConfigSpace(bytes: config.bytes))
        let regions = PlatformProfile.named(profile)!.reservedRegions(
            of: function, firmware: [FirmwareRegion(start: 0x7b80_0000, last: 0x7b9f_ffff)])
        #expect(regions.first == ReservedRegion(start: 0x7b80_0000, last: 0x7b9f_ffff, type: expected))
    }

    @Test(
        "RR-04: VT-d's floppy workaround gives ISA bridges (class >> 8 == 0x0601) 0–16 MiB direct-relaxable, after the RMRRs",
        arguments: [
            (PlatformProfile.vtd(), 0x060100 as UInt32, ["0x0000000000000000 0x0000000000ffffff direct-relaxable\n", "0x00000000fee00000 0x00000000feefffff msi\n"]),
            (.vtd(addressWidth: 39), 0x060180, ["0x0000000000000000 0x0000000000ffffff direct-relaxable\n", "0x00000000fee00000 0x00000000feefffff msi\n"]),
            (.vtd(floppyWorkaround: false), 0x060100, ["0x00000000fee00000 0x00000000feefffff msi\n"]),
            (.vtd(), 0x060400, ["0x00000000fee00000 0x00000000feefffff msi\n"]),
            (.amdVi(), 0x060100, ["0x00000000fee00000 0x00000000feefffff msi\n", "0x000000fd00000000 0x000000ffffffffff reserved\n"]),
        ])
    func floppyRegion(profile: PlatformProfile, classCode: UInt32, expected: [String]) {
        let config = ConfigSpaceBuilder(vendor: 0x8086, device: 0xa1c2, classCode: classCode, size: 256)
        let function = PCIFunction(address: PCIAddress(parsing: "00:1f.0")!, config: PCIConfigSpace(bytes: config.bytes))
        #expect(profile.reservedRegions(of: function, firmware: []).map(\.sysfsLine) == expected)
        let withRMRR = profile.reservedRegions(of: function, firmware: [FirmwareRegion(start: 0x7b80_0000, last: 0x7b9f_ffff)])
        #expect(withRMRR.first?.start == 0x7b80_0000, "intel_iommu_get_resv_regions lists RMRRs first")
    }

    @Test("RR-04: each profile's own regions")
    func platformRegions() {
        #expect(PlatformProfile.vtd().platformRegions.map(\.sysfsLine) == ["0x00000000fee00000 0x00000000feefffff msi\n"])
        #expect(
            PlatformProfile.amdVi().platformRegions.map(\.sysfsLine) == [
                "0x00000000fee00000 0x00000000feefffff msi\n", "0x000000fd00000000 0x000000ffffffffff reserved\n",
            ])
        #expect(PlatformProfile.smmuv3().platformRegions == [Self.region(0x800_0000, 0x80f_ffff, .softwareMSI)])
        #expect(PlatformProfile.mock().platformRegions.isEmpty && PlatformProfile.bypass.platformRegions.isEmpty)
    }
}
