import Foundation
import KernelRules
import PCIBus
import SystemPackage
import Testing

@testable import IOMMU

/// Rules of spec §1.4–§1.9 that are history or that the model has no object for, each with the
/// reason and a check that the behaviour standing in for it holds (README, "Notes"). A row whose
/// check fails means the model grew what the reason says it lacks, or lost what replaced the rule.
@Suite("Rules not applicable to the model (SYS-03, RR-02, RD-01, RD-05, RD-06, DT-02)")
struct NotApplicableRuleTests {
    struct Row: Sendable, CustomTestStringConvertible {
        let rule: String
        let reason: String
        /// Throws or records an issue when the behaviour that stands in for the rule does not hold.
        let holds: @Sendable () throws -> Void
        var testDescription: String { rule }
    }

    static let rows: [Row] = [
        Row(
            rule: "SYS-03",
            reason:
                "a group has a `name` file only once iommu_group_set_name named it; pci_device_group never names PCI groups (vfio-noiommu's groups, which are named, are out of scope), so no group of the model has a name",
            holds: {
                for group in try TestMachines.core().groups {
                    #expect(!Mirror(reflecting: group).children.contains { $0.label == "name" }, "group \(group.id) has a name")
                }
            }),
        Row(
            rule: "RR-02 (stop at the first device that has no IOMMU)",
            reason:
                "every member of a group the core builds is behind the IOMMU (dev_has_iommu); functions outside its scope (AMD-Vi's root complex and IOMMU function) are ungrouped and join no group, and non-API (VFIO-only) groups are not modelled",
            holds: {
                let snapshot = try TestMachines.snapshot("amd-southbridge")
                let core = try #require(try IOMMUCore.load(snapshot))
                let members = Set(core.groups.flatMap(\.devices))
                #expect(!snapshot.grouping.ungrouped.isEmpty)
                #expect(Set(core.snapshot.devices.keys) == members, "every group member, and only they, are IOMMU devices")
                for function in snapshot.grouping.ungrouped {
                    #expect(core.device(function.address) == nil && !members.contains(function.address))
                }
            }),
        Row(
            rule: "RD-01",
            reason:
                "history: a48ce36e2786 (v6.6) moved the refusal of blocking domains for RESV_DIRECT devices into the core; the model follows the core's rule, RD-02",
            holds: {
                let core = try raidUnbound()
                do throws(IOMMUError) {
                    try core.claimGroup(23, owner: DMAOwner("VFIO container"))
                    Issue.record("the RAID controller's group was claimed")
                } catch {
                    #expect(error.errno == .invalidArgument && error.rule.id == "RD-02", "\(error)")
                }
            }),
        Row(
            rule: "RD-05",
            reason:
                "the model has no device release (iommu_release_device, hot removal): devices stay in their group for the machine's life, so no release domain is ever attached; the paths back from a user domain (DOM-02 detach, OWN-07 release) put a require_direct device on its default domain, never a blocking one",
            holds: {
                let core = try raidUnbound()
                let paging = try core.allocatePagingDomain()
                try core.attach(paging, toGroup: 23)
                try core.detach(paging, fromGroup: 23)
                let group = try #require(core.group(23))
                #expect(group.domain === group.defaultDomain && group.domain?.type == .dmaFQ)
            }),
        Row(
            rule: "RD-06",
            reason:
                "history: before v6.6 the Intel driver refused an UNMANAGED domain for a device with a non-relaxable RMRR (EPERM); d3aedf94f480 removed that check and the model follows the newer tree (RD-04)",
            holds: {
                let core = try raidUnbound()
                try core.attach(core.allocatePagingDomain(), toGroup: 23)
                #expect(core.group(23)?.domain?.type == .unmanaged)
            }),
        Row(
            rule: "DT-02",
            reason:
                "every group gets a default domain when the core is built, or the machine fails to load with the error that prevented it, so no group lacks one for iommu_group_store_type to refuse",
            holds: {
                let machines = try FileManager.default.contentsOfDirectory(atPath: TestMachines.devicesDirectory).filter {
                    FileManager.default.fileExists(atPath: TestMachines.devicesDirectory + "/" + $0 + "/manifest.json")
                }
                #expect(machines.count >= 10)
                for name in machines {
                    guard let core = try IOMMUCore.load(TestMachines.snapshot(name)) else { continue }
                    for group in core.groups { #expect(group.defaultDomain != nil, "\(name) group \(group.id)") }
                }
            }),
    ]

    /// `devices/default` with the RAID controller (group 23, a direct RMRR) unbound from smartpqi.
    static func raidUnbound() throws -> IOMMUCore {
        let core = try TestMachines.core()
        try core.unbindDriver(from: TestMachines.address("3d:00.0"))
        return core
    }

    @Test(arguments: rows)
    func notApplicable(_ row: Row) throws {
        #expect(row.reason.count > 80, "the reason says why, and what stands in for the rule")
        try row.holds()
    }
}
