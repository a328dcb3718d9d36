import IOMMU
import Foundation
import KernelRules
import Locking
import PCIBus
import SystemPackage
import Testing

@testable import VFIO
import Syscalls

/// A rule of spec §3–§4 the simulation cannot reach: why, and what can be asserted instead — that
/// the precondition of the rule's code path cannot be constructed.
struct NotApplicableRow: CustomTestStringConvertible, Sendable {
    let rule: String
    let reason: String
    /// What `check` establishes.
    let asserts: String
    let expect: Outcome
    let check: @Sendable () throws -> Outcome

    var testDescription: String { "\(rule): not applicable" }
}

/// Every group of `devices/default` that can be opened joins one container; after SET_IOMMU, how
/// many type1 attached to an IOMMU domain, how many joined, and `VFIO_UPDATE_VADDR` (1 only while
/// the container has no emulated group, T1-03).
@Sendable private func everyGroupIsIOMMUBacked() throws -> Outcome {
    let system = try VFIOTestMachine.system()
    let container = VFIOContainer(process: system.process)
    for id in system.groupIDs { try system.openGroup(id).setContainer(container) }
    try container.setIOMMU(.type1v2)
    let attached = container.state.withLock { $0.iommu?.groups.count ?? 0 }
    return .fields([UInt64(attached), UInt64(container.groups.count), UInt64(container.checkExtension(.updateVaddr))])
}

private let noEmulatedGroups =
    "every VFIO group is IOMMU-backed: the simulation has no mdev (VFIO_EMULATED_IOMMU) groups, so no emulated-group list, no pages pinned by an mdev vendor driver"

let notApplicableRows: [NotApplicableRow] = [
    NotApplicableRow(
        rule: "T1-12",
        reason: "64-bit host: the __u64 vaddr, iova and size always fit unsigned long, dma_addr_t and size_t, so the truncation check never fires",
        asserts: "UInt is 64 bits, and a MAP_DMA whose three fields all exceed 32 bits reaches the IOVA-list check (T1-19) with their full values",
        expect: .fields([64, UInt64(Errno.invalidArgument.rawValue), 1])
    ) {
        let fixture = try Type1Fixture(Type1Config())
        let (outcome, error) = fixture.calls(.uapi).run(.map(3, .absolute(1 << 40), iova: 1 << 60, size: 1 << 36))
        guard case .failure(let errno) = outcome else { return outcome }
        return .fields([UInt64(UInt.bitWidth), UInt64(errno.rawValue), error?.rule.id == "T1-19" ? 1 : 0])
    },
    NotApplicableRow(
        rule: "T1-36", reason: "\(noEmulatedGroups) to notify and retry",
        asserts: "every group the machine offers is attached to an IOMMU domain by type1, and UPDATE_VADDR is 1", expect: .fields([2, 2, 1]),
        check: everyGroupIsIOMMUBacked),
    NotApplicableRow(
        rule: "T1-55", reason: "\(noEmulatedGroups) to detach",
        asserts: "every group the machine offers is attached to an IOMMU domain by type1, and UPDATE_VADDR is 1", expect: .fields([2, 2, 1]),
        check: everyGroupIsIOMMUBacked),
    NotApplicableRow(
        rule: "VG-04",
        reason: "ENODEV needs the group's iommu_group gone (its devices removed); a simulated machine never loses a device, it only rebinds drivers",
        asserts: "with vfio-pci unbound from the group's only function while the group fd is open, the IOMMU group stays and GET_STATUS still answers",
        expect: .fields([1, 0, 1])
    ) {
        let system = try VFIOTestMachine.system()
        let group = try system.openGroup(27)
        try system.core.unbindDriver(from: PCIAddress(parsing: "0000:5e:00.0")!)
        var status: (UInt32, UInt32) = (8, 0)
        let result = withUnsafeMutableBytes(of: &status) { group.ioctl(request: VFIORequest.groupGetStatus, argument: UInt(bitPattern: $0.baseAddress!)) }
        return .fields([system.core.group(27) == nil ? 0 : 1, UInt64(bitPattern: Int64(result)), UInt64(status.1)])
    },
]

/// One line of the rule table: a row of a conformance table, or a not-applicable row.
private struct CoverageEntry {
    let rule: String
    let test: String
    let paths: String
}

private var coverage: [CoverageEntry] {
    let both = "Swift, UAPI"
    return type1Rows.map { CoverageEntry(rule: $0.rule, test: "`type1Rows`: \($0.name)", paths: $0.uapiOnly.map { "UAPI only: \($0)" } ?? both) }
        + groupRows.flatMap { row in
            ([row.rule] + row.also).map { CoverageEntry(rule: $0, test: "`groupRows`: \(row.name)", paths: row.uapiOnly.map { "UAPI only: \($0)" } ?? both) }
        }
        + iommufdRows.flatMap { row in
            // iommufd rows that also check a §4 rule (a group joining an iommufd, the device cdev).
            row.also.filter { $0.hasPrefix("VG-") }.map {
                CoverageEntry(rule: $0, test: "`iommufdRows` (\(row.rule)): \(row.name)", paths: row.uapiOnly.map { "UAPI only: \($0)" } ?? "Swift, UAPI")
            }
        }
        + notApplicableRows.map { CoverageEntry(rule: $0.rule, test: "not applicable: \($0.reason) — asserts \($0.asserts)", paths: "—") }
}

/// The T1 and VG rule IDs of spec §3 and §4, in the spec's order.
private func specRuleIDs(_ spec: String) -> [String] {
    guard let start = spec.range(of: "\n## 3."), let end = spec.range(of: "\n## 5.") else { return [] }
    return spec[start.upperBound..<end.lowerBound].split(separator: "\n").compactMap { line in
        guard line.hasPrefix("* **"), let close = line.dropFirst(4).firstIndex(of: "*") else { return nil }
        let id = String(line[line.index(line.startIndex, offsetBy: 4)..<close])
        return id.hasPrefix("T1-") || id.hasPrefix("VG-") ? id : nil
    }
}

private func renderTable(_ ids: [String]) -> String {
    let entries = Dictionary(grouping: coverage, by: \.rule)
    var lines = [
        "# Type1 and VFIO group conformance: rule → test",
        "",
        "Generated from the tables `type1Rows` (`Tests/VFIOTests/Type1ConformanceTests.swift`), `groupRows`",
        "(`Tests/VFIOTests/VFIOGroupConformanceTests.swift`), the `iommufdRows` that also check a VG rule",
        "(`Tests/VFIOTests/IOMMUFDConformance*.swift`; iommufd's own rules are in `docs/iommufd-conformance.md`) and",
        "`notApplicableRows` (`Tests/VFIOTests/ConformanceCoverageTests.swift`) by `ConformanceCoverageTests`, which fails when a",
        "rule of `kernel-semantics.md` §3–§4 has no row or when this file differs from the tables. Regenerate:",
        "`VFIOKIT_WRITE_CONFORMANCE_DOC=1 swift test --filter ConformanceCoverageTests`.",
        "",
        "Paths: *Swift* is the `VFIOContainer` / `VFIOGroup` API, *UAPI* the `ioctl` facade with raw",
        "`<linux/vfio.h>` structs; a row that can only run on the facade says why. The model-based property",
        "test (`Type1ModelPropertyTests`) checks MAP/UNMAP/attach/detach sequences on top of these rows.",
        "",
        "| Rule | Test | Paths |",
        "|---|---|---|",
    ]
    for id in ids {
        for entry in entries[id] ?? [] {
            lines.append("| \(id) | \(escaped(entry.test)) | \(escaped(entry.paths)) |")
        }
    }
    return lines.joined(separator: "\n") + "\n"
}

private func escaped(_ text: String) -> String { text.replacingOccurrences(of: "|", with: "\\|") }

@Suite("Rule coverage: spec §3–§4 → tests, docs/type1-conformance.md")
struct ConformanceCoverageTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let specPath = repository.deletingLastPathComponent().appendingPathComponent("shared/spec/kernel-semantics.md").path
    static let docPath = repository.appendingPathComponent("docs/type1-conformance.md").path

    @Test(arguments: notApplicableRows)
    func notApplicable(_ row: NotApplicableRow) throws {
        #expect(try row.check() == row.expect, "\(row.rule): \(row.asserts)")
    }

    @Test(
        "every T1/VG rule has a row or a not-applicable row, and docs/type1-conformance.md is their table",
        .enabled(if: FileManager.default.fileExists(atPath: specPath), "../shared/spec is absent: the rule table cannot be checked"))
    func ruleTable() throws {
        let spec = try String(contentsOfFile: Self.specPath, encoding: .utf8)
        let ids = specRuleIDs(spec)
        #expect(ids.count > 70, "the spec's §3–§4 rules were not found in \(Self.specPath)")
        let covered = Set(coverage.map(\.rule))
        let missing = ids.filter { !covered.contains($0) }
        #expect(missing.isEmpty, "rules without a row or a not-applicable row: \(missing)")
        let unknown = covered.subtracting(ids)
        #expect(unknown.isEmpty, "rows cite rules §3–§4 do not define: \(unknown.sorted())")
        try Self.checkGeneratedDoc(renderTable(ids), at: Self.docPath, regeneratedBy: "ConformanceCoverageTests")
    }

    /// A generated rule → test document: rewritten with `VFIOKIT_WRITE_CONFORMANCE_DOC=1`, else
    /// the committed file must equal `rendered`.
    static func checkGeneratedDoc(_ rendered: String, at path: String, regeneratedBy suite: String) throws {
        if ProcessInfo.processInfo.environment["VFIOKIT_WRITE_CONFORMANCE_DOC"] == "1" {
            try rendered.write(toFile: path, atomically: true, encoding: .utf8)
        }
        let committed = try? String(contentsOfFile: path, encoding: .utf8)
        #expect(
            committed == rendered,
            "\(URL(fileURLWithPath: path).lastPathComponent) differs from the tables: VFIOKIT_WRITE_CONFORMANCE_DOC=1 swift test --filter \(suite)")
    }
}
