import PCIBus
import Testing

@testable import IOMMU

/// `/sys/kernel/iommu_groups/N/` of `devices/default` row by row: `type` (SYS-01), the
/// `reserved_regions` file merged from every device of the group (RR-02, SYS-02) and the
/// `devices/` links in the order devices joined (SYS-04, IG-03). VT-d unless the row says otherwise.
@Suite("Group sysfs files (SYS-01, SYS-02, SYS-04, RR-02)")
struct GroupSysfsTests {
    struct Row: Sendable, CustomTestStringConvertible {
        let rule: String
        var profile: PlatformProfile? = nil
        let group: Int
        var type: String? = nil
        var reservedRegions: String? = nil
        var devices: [String]? = nil
        var testDescription: String { rule }
    }

    static let msi = "0x00000000fee00000 0x00000000feefffff msi\n"

    static let rows: [Row] = [
        Row(
            rule: "RR-02 USB + thermal: the USB RMRR, and both devices' MSI windows merged into one line", group: 3,
            reservedRegions: "0x000000007b800000 0x000000007b9fffff direct-relaxable\n" + msi),
        Row(
            rule: "RR-02 LPC + SMBus: the ISA bridge's floppy region, then the shared MSI window", group: 6,
            reservedRegions: "0x0000000000000000 0x0000000000ffffff direct-relaxable\n" + msi),
        Row(rule: "RR-02 a group of a switch port and an NVMe: one MSI line", group: 13, reservedRegions: msi),
        Row(
            rule: "RR-02 AMD-Vi: the unity map typed direct, the MSI window and the HyperTransport hole", profile: .amdVi(), group: 3,
            reservedRegions: "0x000000007b800000 0x000000007b9fffff direct\n" + msi + "0x000000fd00000000 0x000000ffffffffff reserved\n"),
        Row(rule: "RR-02 the mock adds no platform regions: only the firmware's RMRR", profile: .mock(), group: 23, reservedRegions: "0x000000007b000000 0x000000007b7fffff direct\n"),
        Row(rule: "SYS-04 devices/ lists both PCH functions in the order they joined", group: 3, devices: ["0000:00:14.0", "0000:00:14.2"]),
        Row(rule: "SYS-04 the bridge, then the conventional NIC that aliases to it", group: 7, devices: ["0000:01:00.0", "0000:02:04.0"]),
        Row(rule: "SYS-04 the downstream port, then the SSD below it", group: 13, devices: ["0000:19:10.0", "0000:1c:00.0"]),
        Row(rule: "SYS-01 type reads the default domain's type", group: 27, type: "DMA-FQ\n"),
        Row(rule: "SYS-01 the mock's fixed blocked default reads blocked", profile: .mock(), group: 27, type: "blocked\n"),
    ]

    @Test(arguments: rows)
    func groupFiles(_ row: Row) throws {
        let core = try TestMachines.core(profile: row.profile)
        let group = try #require(core.group(row.group))
        if let type = row.type { #expect(group.sysfsType == type) }
        if let text = row.reservedRegions { #expect(group.reservedRegions.sysfsText == text) }
        if let devices = row.devices { #expect(group.devices.map(\.description) == devices) }
    }
}
