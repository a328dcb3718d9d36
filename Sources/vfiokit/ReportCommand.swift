import ArgumentParser
import Foundation
import IOMMU
import KernelRules
import PCIBus

/// `vfiokit report`: groups, ACS of every port on each upstream path, reset methods, and the
/// computed groups against the kernel's where sysfs has them.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Full isolation report: groups, ACS per port, reset capability, computed vs kernel groups.")

    @OptionGroup var source: SourceOptions

    func run() throws {
        let machine = try source.loadMachine()
        let snapshot = machine.snapshot
        let report = IsolationReport(machine)
        machine.reliability.announce(json: source.json)
        if source.json { return try printJSON(report) }
        print("Isolation report for \(snapshot.sourceLabel)")
        snapshot.headerLines(kernelGroups: machine.view.fromKernel).forEach { print("  \($0)") }
        if let iommu = report.iommu { print("  IOMMU: \(iommu)") }
        print(
            "  \(report.functions.count) functions, \(report.groups.count) groups, \(report.groups.filter { $0.viable == true }.count) viable for VFIO, \(report.groups.filter { $0.assignable == true }.count) assignable"
        )
        print("  kernel groups: \(report.kernelComparison.summary)")
        print("")
        print("Topology:")
        printTree(of: snapshot, view: machine.view)
        print("")
        print("Groups:")
        for group in report.groups {
            print("  \(group.id): \(group.devices.joined(separator: " "))\(group.defaultDomainType.map { "  [type \($0)]" } ?? "")")
            print("      \(group.viability)")
            // The sysfs file's lines as they are (SYS-02), indented as a block.
            if !group.reservedRegions.isEmpty { print("      reserved_regions:") }
            for line in group.reservedRegions { print("        \(line)") }
        }
        for function in report.ungrouped { print("  -: \(function.address) (\(function.reason))") }
        print("")
        print("Ports and bridges (ACS capability / control as captured → as judged):")
        for port in report.ports {
            print(
                "  \(port.address)  \(port.type.padding(toLength: 24, withPad: " ", startingAt: 0)) "
                    + "cap: \(port.acsCapability ?? "no ACS")  ctrl: \(port.acsControl ?? "-")  → \(port.isolated ? "isolated" : "NOT isolated") (\(port.rule))"
            )
        }
        print("")
        print("Reset methods:")
        for function in report.functions {
            let quirks = function.resetQuirks.isEmpty ? "" : "  (\(function.resetQuirks.joined(separator: ", ")))"
            print("  \(function.address)  \(function.resetMethods.isEmpty ? "none" : function.resetMethods.joined(separator: " "))\(quirks)")
        }
        if !report.kernelComparison.mismatches.isEmpty {
            print("")
            print("Computed vs kernel groups differ:")
            for mismatch in report.kernelComparison.mismatches { print("  \(mismatch)") }
        }
    }
}

struct IsolationReport: Encodable {
    struct Port: Encodable {
        let address: String
        let type: String
        @Nullable var acsCapability: String?
        @Nullable var acsControl: String?
        let isolated: Bool
        let rule: String
        let detail: String
    }
    struct Function: Encodable {
        let address: String
        @Nullable var group: Int?
        let resetMethods: [String]
        /// The reset quirks of `drivers/pci/quirks.c` that apply (`quirk_no_flr`, ...).
        let resetQuirks: [String]
        let upstreamPorts: [String]
    }
    let source: String
    let platform: String
    @Nullable var iommu: String?
    let groups: [GroupsReport.Group]
    let ungrouped: [UngroupedFunction]
    let ports: [Port]
    let functions: [Function]
    let kernelComparison: KernelGroupComparison
    let groupsFrom: String
    let groupsReliable: Bool
    let explanationsReliable: Bool
    @Nullable var groupsUnreliableReason: String?
    @Nullable var iommuEnabled: Bool?
    let warnings: [String]

    init(_ machine: LoadedMachine) {
        let snapshot = machine.snapshot
        let grouping = snapshot.grouping
        let groupsReport = GroupsReport(machine)
        source = snapshot.sourceLabel
        iommu = groupsReport.iommu
        platform = grouping.platform.rawValue
        groups = groupsReport.groups
        ungrouped = grouping.ungrouped
        ports = snapshot.topology.functions.filter(\.isBridge).map { function in
            let verdict = grouping.acsVerdict(for: function.address)!
            return Port(
                address: function.address.description,
                type: function.pciePortType?.description ?? "PCI bridge",
                acsCapability: function.acs.map { $0.capability.description },
                acsControl: function.acs.map { $0.control.description },
                isolated: verdict.enabled, rule: verdict.rule.id, detail: verdict.detail)
        }
        functions = snapshot.topology.functions.map { function in
            Function(
                address: function.address.description, group: machine.view.groupID(of: function.address),
                resetMethods: snapshot.resetMethods(of: function.address),
                resetQuirks: snapshot.resetQuirks(of: function.address).quirks,
                upstreamPorts: grouping.upstreamPath(of: function.address).map(\.bridge.description))
        }
        kernelComparison = KernelGroupComparison(snapshot)
        groupsFrom = groupsReport.groupsFrom
        groupsReliable = groupsReport.groupsReliable
        explanationsReliable = groupsReport.explanationsReliable
        groupsUnreliableReason = groupsReport.groupsUnreliableReason
        iommuEnabled = groupsReport.iommuEnabled
        warnings = groupsReport.warnings
    }
}
