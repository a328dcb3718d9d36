import ArgumentParser
import Foundation
import IOMMU
import KernelRules
import PCIBus
import VFIO

/// `vfiokit groups`: each IOMMU group with its functions, drivers and VFIO viability.
struct GroupsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "groups", abstract: "List IOMMU groups: functions, classes, names, drivers, and whether VFIO can take each.")

    @Option(name: [.customShort("s"), .long], help: ArgumentHelp("Only groups holding these functions, as lspci -s.", valueName: "[[[[domain]:]bus]:][slot][.[func]]"))
    var slot: String?

    @Option(name: [.customShort("d"), .long], help: ArgumentHelp("Only groups holding functions with these IDs, as lspci -d.", valueName: "[vendor]:[device][:class]"))
    var id: String?

    @Option(name: .long, help: "Only this IOMMU group.")
    var group: Int?

    @Flag(name: [.customShort("v"), .long], help: "Every group with its type, reserved regions and the rule that put each function in it.")
    var verbose = false

    @OptionGroup var source: SourceOptions

    func validate() throws { _ = try FunctionSelection(slot: slot, id: id) }

    /// A selection was given: the groups shown carry the commands that assign them.
    var selecting: Bool { slot != nil || id != nil || group != nil }

    func run() throws {
        let machine = try source.loadMachine()
        let snapshot = machine.snapshot
        var report = GroupsReport(machine)
        if selecting {
            let selection = try FunctionSelection(slot: slot, id: id)
            let chosen = Set(snapshot.topology.functions.filter(selection.matches).map(\.address.description))
            report.select { candidate in
                (group.map { candidate.id == $0 } ?? true) && (slot == nil && id == nil || candidate.devices.contains(where: chosen.contains))
            }
            if report.groups.isEmpty {
                try reportError(errno: "ENODEV", "no IOMMU group in \(snapshot.sourceLabel) matches the selection", json: source.json)
                throw ExitCode(65)
            }
        }
        machine.reliability.announce(json: source.json)
        if source.json { return try printJSON(report) }
        print("IOMMU groups of \(snapshot.sourceLabel)")
        snapshot.headerLines(kernelGroups: machine.view.fromKernel).forEach { print("  \($0)") }
        print("  \(report.groupsFrom == "kernel" ? "groups are the kernel's (iommu_group links; /dev/vfio/N); computed groups explain them" : machine.host.map { _ in "groups are computed (what the kernel would form)" } ?? "groups are computed")")
        if let iommu = report.iommu { print("  IOMMU: \(iommu)") }
        if let reason = snapshot.grouping.unavailableReason {
            print("  groups not computed: \(reason)")
            return
        }
        if !verbose {
            print("")
            for group in report.groups {
                for function in group.functions { print(CompactLine.text(group: group, function: function, iommuEnabled: report.iommuEnabled)) }
                if selecting { group.plan.lines.forEach { print("  \($0)") } }
            }
            for function in report.ungrouped {
                print(CompactLine.fit(prefix: "no group         \(function.address)  ", name: snapshot.summary(function.address).line, suffix: "  \(function.reason)"))
            }
            return
        }
        for group in report.groups {
            print("")
            print("Group \(group.id)\(group.headingNote(groupsFrom: report.groupsFrom, iommuEnabled: report.iommuEnabled)): \(group.viability)")
            if let type = group.defaultDomainType {
                print("  type: \(type)  reserved_regions:\(group.reservedRegions.isEmpty ? " none" : "")")
                for line in group.reservedRegions { print("    \(line)") }
            }
            for function in group.functions {
                print("  \(function.summary.address)  \(function.summary.line)  driver: \(function.summary.driver ?? "-")")
                print("      \(function.rule): \(function.reason)")
                if let difference = function.kernelDifference { print("      differs from the computed grouping: \(difference)") }
            }
            if selecting { group.plan.lines.forEach { print("  \($0)") } }
        }
        for function in report.ungrouped {
            print("")
            print("No group: \(function.address): \(function.reason)")
        }
    }
}

/// One function per line, as ls-iommu prints them, in at most 132 columns:
/// `IOMMU group N  BDF  class [cccc]: vendor device [vvvv:dddd] (rev xx)  driver  verdict`.
enum CompactLine {
    static let width = 132

    static func text(group: GroupsReport.Group, function: GroupsReport.Group.Member, iommuEnabled: Bool?) -> String {
        let prefix = "IOMMU group \(String(group.id).padding(toLength: 3, withPad: " ", startingAt: 0))  \(function.summary.address)  "
        var verdict = group.verdict.word
        if group.verdict == .notViable, let driver = function.summary.driver, !KernelDriver.managesDMA(driver) { verdict += " (its driver)" }
        if function.kernelDifference != nil { verdict += " (computed: \(function.computedGroup.map(String.init) ?? "none"))" }
        return fit(prefix: prefix, name: function.summary.line, suffix: "  \(function.summary.driver ?? "-")  \(verdict)")
    }

    /// Where " [vvvv:dddd]" begins in an lspci line (the last such bracket: a device name may hold
    /// brackets of its own, and a virtual mark follows the IDs).
    static func idStart(_ name: String) -> Int? {
        let characters = Array(name)
        guard characters.count >= 12 else { return nil }
        for start in stride(from: characters.count - 12, through: 0, by: -1) where characters[start] == " " && characters[start + 1] == "[" {
            let ids = characters[(start + 2)..<(start + 12)]
            if ids[ids.startIndex + 4] == ":" && ids.last == "]" && ids.dropLast().enumerated().allSatisfy({ $0.offset == 4 || $0.element.isHexDigit }) {
                return start
            }
        }
        return nil
    }

    /// `line` broken at spaces into lines of at most `width` columns, each continuation indented
    /// four columns past the line's own indent (a word longer than the room stays whole).
    static func wrap(_ line: String) -> [String] {
        guard line.count > width else { return [line] }
        let leading = String(line.prefix { $0 == " " })
        let words = line.dropFirst(leading.count).split(separator: " ", omittingEmptySubsequences: false)
        return fill(leading, words, indent: leading + "    ")
    }

    /// `words` laid after `head`, one space apart, a new line starting with `indent` whenever the
    /// next word would pass `width` (a word longer than the room stays whole).
    static func fill(_ head: String, _ words: [Substring], indent: String, width: Int = width) -> [String] {
        var lines: [String] = []
        var current = head
        var empty = true
        for word in words {
            if !empty && current.count + 1 + word.count > width {
                lines.append(current)
                current = indent + word
            } else {
                current += (empty ? "" : " ") + word
            }
            empty = false
        }
        lines.append(current)
        return lines
    }

    /// `prefix + name + suffix`, the name's words shortened with "…" (its IDs and revision kept)
    /// so that the line fits `width`.
    static func fit(prefix: String, name: String, suffix: String) -> String {
        let room = width - prefix.count - suffix.count
        guard name.count > room else { return prefix + name + suffix }
        // Keep " [vvvv:dddd]" and " (rev xx)": cut the words before them.
        let idStart = Self.idStart(name) ?? name.count
        let tail = String(name.suffix(name.count - idStart))
        let head = String(name.prefix(idStart))
        let keep = max(room - tail.count - 1, 8)
        return prefix + String(head.prefix(keep)) + "…" + tail + suffix
    }
}

/// The JSON contract of `vfiokit groups --json`: `{"groups": [{"id": 0, "devices": [...], ...}]}`.
struct GroupsReport: Encodable {
    struct Group: Encodable {
        struct Member: Encodable {
            let summary: FunctionSummary
            let rule: String
            let reason: String
            @Nullable var joined: String?
            let details: [String]
            /// The function's group in the computed grouping (nil: it has none).
            @Nullable var computedGroup: Int?
            /// Where the kernel's group and the computed one disagree about this function.
            @Nullable var kernelDifference: String?

            func encode(to encoder: any Encoder) throws {
                try summary.encode(to: encoder)
                var container = encoder.container(keyedBy: Keys.self)
                try container.encode(rule, forKey: .rule)
                try container.encode(reason, forKey: .reason)
                try container.encode(joined, forKey: .joined)
                try container.encode(details, forKey: .details)
                try container.encode(computedGroup, forKey: .computedGroup)
                try container.encode(kernelDifference, forKey: .kernelDifference)
            }
            enum Keys: String, CodingKey { case rule, reason, joined, details, computedGroup, kernelDifference }
        }
        /// The kernel's group number (`/dev/vfio/N`) when `groupsFrom` is "kernel", else the computed one.
        let id: Int
        /// The computed group with the same members; nil when the kernel's group has no computed equal.
        @Nullable var computedId: Int?
        let devices: [String]
        @Nullable var viable: Bool?
        /// Viable and no device requires a 1:1 mapping (RD-03); nil when unknown.
        @Nullable var assignable: Bool?
        let viability: String
        /// sysfs `type` (SYS-01), without the newline.
        @Nullable var defaultDomainType: String?
        /// sysfs `reserved_regions` lines (SYS-02), without newlines.
        let reservedRegions: [String]
        let functions: [Member]
        /// The commands that hand the group to VFIO, and what blocks it otherwise.
        let plan: AssignmentPlan
        /// `viability` as an enum for scripts.
        let verdict: Verdict

        enum Verdict: String, Encodable {
            case viable, notViable = "not-viable", notAssignable = "not-assignable", unknown, iommuOff = "iommu-off"

            /// The word the compact listing prints.
            var word: String {
                switch self {
                case .viable: "viable"
                case .notViable: "not viable"
                case .notAssignable: "not assignable (RMRR)"
                case .unknown: "viability unknown"
                case .iommuOff: "IOMMU off"
                }
            }
        }

        /// What follows "Group N" in text: the computed group a kernel group matches, or that the
        /// group exists only as a computation.
        func headingNote(groupsFrom: String, iommuEnabled: Bool?) -> String {
            if groupsFrom == "kernel" { return computedId.map { $0 == id ? "" : " (computed group \($0))" } ?? " (no computed equal)" }
            return iommuEnabled == false ? " [would be]" : ""
        }
    }

    let source: String
    let platform: String
    let platformReason: String
    @Nullable var iommu: String?
    let acs: String
    let groupsComputed: Bool
    /// "kernel" on a host whose IOMMU formed groups, else "computed".
    let groupsFrom: String
    /// Whether the host's IOMMU is on; nil for a dump or a machine.
    @Nullable var iommuEnabled: Bool?
    /// Why `groupsReliable` is false; nil when it is true.
    @Nullable var groupsUnreliableReason: String?
    @Nullable var unavailableReason: String?
    private(set) var groups: [Group]
    private(set) var ungrouped: [UngroupedFunction]

    /// Keeps only the groups `keep` accepts (and no ungrouped functions).
    mutating func select(_ keep: (Group) -> Bool) {
        groups = groups.filter(keep)
        ungrouped = []
    }
    /// False when the groups rest on incomplete config space (an unprivileged host read).
    let groupsReliable: Bool
    /// False when the computed explanation (rules, ACS, the computed groups) rests on incomplete
    /// config space; the kernel's groups stay reliable.
    let explanationsReliable: Bool
    let warnings: [String]

    init(_ machine: LoadedMachine) {
        let snapshot = machine.snapshot
        let reliability = machine.reliability
        groupsReliable = reliability.reliable
        explanationsReliable = reliability.explanationsReliable
        groupsUnreliableReason = reliability.reason
        warnings = reliability.warnings
        iommuEnabled = machine.host?.enabled
        groupsFrom = machine.view.fromKernel ? "kernel" : "computed"
        source = snapshot.sourceLabel
        let hostOff = machine.host?.enabled == false
        iommu = machine.iommu.map {
            (hostOff ? "off; were it on: " : "") + "\($0.profile.name) (\($0.profile.title)), default domain type \($0.defaultDomainType)"
        }
        platform = snapshot.grouping.platform.rawValue
        platformReason = snapshot.grouping.platformReason
        acs = snapshot.grouping.acsPolicy.rawValue
        groupsComputed = snapshot.grouping.unavailableReason == nil
        unavailableReason = snapshot.grouping.unavailableReason
        ungrouped = snapshot.grouping.ungrouped
        let view = machine.view
        groups = view.groups.map { shown in
            let computed = shown.computedID.flatMap { id in snapshot.grouping.groups.first { $0.id == id } }
            let assignment = computed.flatMap { machine.assignment(of: $0.id) }
            let viable: Bool?
            let viability: String
            if let assignment {
                viable = if case .unknown = assignment.viability { nil } else { assignment.viability.isViable }
                viability = assignment.explanation
            } else if machine.iommu == nil {
                viable = nil
                viability = "viability unknown: the platform has no IOMMU model"
            } else {
                // A kernel group the computed grouping does not have: judge its drivers directly (VG-06).
                let blockers = shown.members.compactMap { address in
                    snapshot.drivers[address].flatMap { KernelDriver.managesDMA($0) ? nil : "\(address) is bound to \($0), which uses the kernel DMA API" }
                }
                viable = blockers.isEmpty
                viability =
                    blockers.isEmpty
                    ? "viable: every function is unbound or bound to a driver with driver_managed_dma (VG-06)"
                    : "not viable: \(blockers.joined(separator: "; ")) (VG-06)"
            }
            let iommuGroup = computed.flatMap { machine.iommu?.group($0.id) }
            let kernelFiles = machine.view.fromKernel ? machine.host.map { KernelGroupFiles(host: $0, group: shown.id) } : nil
            // With the IOMMU off the group does not exist: nothing is viable or assignable, and the
            // verdict is what it would be.
            return Group(
                id: shown.id, computedId: shown.computedID, devices: shown.members.map(\.description),
                viable: hostOff ? nil : viable,
                assignable: hostOff ? false : assignment?.isAssignable ?? (viable == false ? false : nil),
                viability: hostOff ? "IOMMU off, so not assignable; with it on: \(viability)" : viability,
                defaultDomainType: kernelFiles?.type ?? iommuGroup.map { String($0.sysfsType.dropLast()) },
                reservedRegions: kernelFiles?.reservedRegions
                    ?? iommuGroup?.reservedRegions.regions.map { String($0.sysfsLine.dropLast()) } ?? [],
                functions: shown.members.map { address in
                    let membership = snapshot.grouping.membership(of: address)
                    return Group.Member(
                        summary: snapshot.summary(address), rule: membership?.rule.id ?? "-",
                        reason: membership?.summary ?? "the computed grouping gives it no group",
                        joined: membership?.joined?.description, details: membership?.details ?? [],
                        computedGroup: snapshot.grouping.group(of: address)?.id,
                        kernelDifference: view.difference(of: address))
                },
                plan: AssignmentPlan(machine, group: shown),
                verdict: hostOff
                    ? .iommuOff
                    : viable == nil ? .unknown : viable == false ? .notViable : assignment?.isAssignable == false ? .notAssignable : .viable)
        }
    }
}

/// A kernel group's own sysfs files (`/sys/kernel/iommu_groups/N/type`, `reserved_regions`,
/// SYS-01/02), read as they are: on a live host they, not the simulation, say what the group has.
struct KernelGroupFiles {
    @Nullable var type: String?
    @Nullable var reservedRegions: [String]?

    init(host: HostIOMMUState, group: Int) {
        let directory = HostSysfsLayout(sysfs: host.sysfs).path("kernel/iommu_groups/\(group)")
        func read(_ name: String) -> String? { try? String(contentsOfFile: "\(directory)/\(name)", encoding: .utf8) }
        type = read("type").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.flatMap { $0.isEmpty ? nil : $0 }
        reservedRegions = read("reserved_regions").map { $0.split(separator: "\n").map(String.init) }
    }
}
