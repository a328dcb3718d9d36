import ArgumentParser
import IOMMU
import KernelRules
import PCIBus
import VFIO

/// `vfiokit groups`: each IOMMU group with its functions, drivers and VFIO viability.
struct GroupsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "groups", abstract: "List IOMMU groups: functions, classes, names, drivers, and whether VFIO can take each.")

    @OptionGroup var source: SourceOptions

    func run() throws {
        let machine = try source.loadMachine()
        let snapshot = machine.snapshot
        let report = GroupsReport(machine)
        if source.json { return try printJSON(report) }
        print("IOMMU groups of \(snapshot.sourceLabel)")
        snapshot.headerLines.forEach { print("  \($0)") }
        if let iommu = report.iommu { print("  IOMMU: \(iommu)") }
        if let reason = snapshot.grouping.unavailableReason {
            print("  groups not computed: \(reason)")
            return
        }
        for group in report.groups {
            print("")
            print("Group \(group.id): \(group.viability)")
            if let type = group.defaultDomainType {
                print("  type: \(type)  reserved_regions:\(group.reservedRegions.isEmpty ? " none" : "")")
                for line in group.reservedRegions { print("    \(line)") }
            }
            for function in group.functions {
                print("  \(function.summary.address)  \(function.summary.line)  driver: \(function.summary.driver ?? "-")")
                print("      \(function.rule): \(function.reason)")
            }
        }
        for function in report.ungrouped {
            print("")
            print("No group: \(function.address): \(function.reason)")
        }
    }
}

/// The JSON contract of `vfiokit groups --json`: `{"groups": [{"id": 0, "devices": [...], ...}]}`.
struct GroupsReport: Encodable {
    struct Group: Encodable {
        struct Member: Encodable {
            let summary: FunctionSummary
            let rule: String
            let reason: String
            let joined: String?
            let details: [String]

            func encode(to encoder: any Encoder) throws {
                try summary.encode(to: encoder)
                var container = encoder.container(keyedBy: Keys.self)
                try container.encode(rule, forKey: .rule)
                try container.encode(reason, forKey: .reason)
                try container.encode(joined, forKey: .joined)
                try container.encode(details, forKey: .details)
            }
            enum Keys: String, CodingKey { case rule, reason, joined, details }
        }
        let id: Int
        let devices: [String]
        let viable: Bool?
        /// Viable and no device requires a 1:1 mapping (RD-03); nil when unknown.
        let assignable: Bool?
        let viability: String
        /// sysfs `type` (SYS-01), without the newline.
        let defaultDomainType: String?
        /// sysfs `reserved_regions` lines (SYS-02), without newlines.
        let reservedRegions: [String]
        let functions: [Member]
    }

    let source: String
    let platform: String
    let platformReason: String
    let iommu: String?
    let acs: String
    let groupsComputed: Bool
    let unavailableReason: String?
    let groups: [Group]
    let ungrouped: [UngroupedFunction]
    /// False when the groups rest on incomplete config space (an unprivileged host read).
    let groupsReliable: Bool
    let warnings: [String]

    init(_ machine: LoadedMachine) {
        let snapshot = machine.snapshot
        groupsReliable = snapshot.groupsReliable
        warnings = snapshot.warnings
        source = snapshot.sourceLabel
        iommu = machine.iommu.map { "\($0.profile.name) (\($0.profile.title)), default domain type \($0.defaultDomainType)" }
        platform = snapshot.grouping.platform.rawValue
        platformReason = snapshot.grouping.platformReason
        acs = snapshot.grouping.acsPolicy.rawValue
        groupsComputed = snapshot.grouping.unavailableReason == nil
        unavailableReason = snapshot.grouping.unavailableReason
        ungrouped = snapshot.grouping.ungrouped
        groups = snapshot.grouping.groups.map { group in
            let assignment = machine.assignment(of: group.id)
            let viable: Bool? =
                if case .unknown = assignment?.viability { nil } else { assignment?.viability.isViable }
            let iommuGroup = machine.iommu?.group(group.id)
            return Group(
                id: group.id, devices: group.sortedMembers.map(\.description), viable: viable,
                assignable: assignment?.isAssignable,
                viability: assignment?.explanation ?? "viability unknown: the platform has no IOMMU model",
                defaultDomainType: iommuGroup.map { String($0.sysfsType.dropLast()) },
                reservedRegions: iommuGroup?.reservedRegions.regions.map { String($0.sysfsLine.dropLast()) } ?? [],
                functions: group.sortedMembers.map { address in
                    let membership = group.memberships[address]!
                    return Group.Member(
                        summary: snapshot.summary(address), rule: membership.rule.id, reason: membership.summary,
                        joined: membership.joined?.description, details: membership.details)
                })
        }
    }
}
