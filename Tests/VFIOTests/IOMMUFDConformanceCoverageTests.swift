import Foundation
import Testing

/// One line of the iommufd rule table: a row (or a rule a row also checks), or a not-applicable row.
private struct IOMMUFDCoverageEntry {
    let rule: String
    let test: String
    let paths: String
}

private var iommufdCoverage: [IOMMUFDCoverageEntry] {
    let rows = iommufdRows.flatMap { row in
        row.rules.filter { $0.hasPrefix("IOMMUFD-") }.map { rule in
            let paths = row.uapiOnly.map { "UAPI only: \($0)" } ?? row.swiftOnly.map { "Swift only: \($0)" } ?? "Swift, UAPI"
            return IOMMUFDCoverageEntry(rule: rule, test: "`iommufdRows`\(rule == row.rule ? "" : " (also)"): \(row.name)", paths: paths)
        }
    }
    let mockRows = iommufdSelftestMockRows.flatMap { row in
        row.rules.filter { $0.hasPrefix("IOMMUFD-") }.map { rule in
            let paths = row.uapiOnly.map { "UAPI only: \($0)" } ?? "Swift, UAPI"
            let kernel = row.selftest ? "" : " (without CONFIG_IOMMUFD_TEST)"
            return IOMMUFDCoverageEntry(rule: rule, test: "`iommufdSelftestMockRows`\(rule == row.rule ? "" : " (also)"): \(row.name)\(kernel)", paths: paths)
        }
    }
    let notApplicable = iommufdNotApplicableRows.map {
        IOMMUFDCoverageEntry(rule: $0.rule, test: "not applicable: \($0.reason) — asserts \($0.asserts)", paths: "—")
    }
    return rows + mockRows + notApplicable
}

/// The IOMMUFD-1xx… rule IDs of `iommufd.md`, in the spec's order (its `* **IOMMUFD-NNN**` items).
private func iommufdRuleIDs(_ spec: String) -> [String] {
    spec.split(separator: "\n").compactMap { line in
        guard line.hasPrefix("* **IOMMUFD-"), let close = line.dropFirst(4).firstIndex(of: "*") else { return nil }
        let id = String(line[line.index(line.startIndex, offsetBy: 4)..<close])
        guard let number = Int(id.dropFirst("IOMMUFD-".count)), number >= 100 else { return nil }
        return id
    }
}

private func renderIOMMUFDTable(_ ids: [String]) -> String {
    let entries = Dictionary(grouping: iommufdCoverage, by: \.rule)
    let rows = ids.filter { id in entries[id]?.contains { !$0.test.hasPrefix("not applicable") } == true }.count
    var lines = [
        "# iommufd conformance: rule → test",
        "",
        "Generated from the tables `iommufdRows` (`Tests/VFIOTests/IOMMUFDConformance*.swift`: plumbing, IOAS, IOVA, device,",
        "compat and the GET_INFO sweep), `iommufdSelftestMockRows` (`IOMMUFDSelftestMock*.swift`: the selftest mock of §8 in a",
        "context built with `CONFIG_IOMMUFD_TEST`) and `iommufdNotApplicableRows` (`IOMMUFDConformanceNotApplicable.swift`) by",
        "`IOMMUFDConformanceCoverageTests`, which fails when a rule of `iommufd.md` (IOMMUFD-100 and up) has neither a row",
        "nor a not-applicable row, or when this file differs from the tables. Regenerate:",
        "`VFIOKIT_WRITE_CONFORMANCE_DOC=1 swift test --filter IOMMUFDConformanceCoverageTests`.",
        "",
        "Paths: *Swift* is `IOMMUFDContext` with `VFIODeviceCdev` and `VFIOGroup`, *UAPI* `ioctl` on a `/dev/iommu` fd,",
        "the device cdev and the group fd with the structs laid out byte by byte in real memory (`<linux/iommufd.h>` is",
        "not in this machine's linux-libc-dev); a row that runs on one path says why. Rows marked *(also)* check the rule",
        "as a further step of another rule's case. The model-based property test (`IOMMUFDModelPropertyTests`) checks",
        "random MAP/COPY/UNMAP sequences on top of these rows.",
        "",
        "Rules with a row: \(rows) of \(ids.count) (\(String(format: "%.1f", 100 * Double(rows) / Double(ids.count)))%); the others are not applicable.",
        "",
        "| Rule | Test | Paths |",
        "|---|---|---|",
    ]
    for id in ids {
        for entry in entries[id] ?? [] { lines.append("| \(id) | \(entry.test.replacingOccurrences(of: "|", with: "\\|")) | \(entry.paths.replacingOccurrences(of: "|", with: "\\|")) |") }
    }
    return lines.joined(separator: "\n") + "\n"
}

@Suite("Rule coverage: iommufd.md → tests, docs/iommufd-conformance.md")
struct IOMMUFDConformanceCoverageTests {
    static let specPath = ConformanceCoverageTests.repository.deletingLastPathComponent().appendingPathComponent("shared/spec/iommufd.md").path
    static let docPath = ConformanceCoverageTests.repository.appendingPathComponent("docs/iommufd-conformance.md").path

    @Test(
        "every IOMMUFD rule has a row or a not-applicable row, and docs/iommufd-conformance.md is their table",
        .enabled(if: FileManager.default.fileExists(atPath: specPath), "../shared/spec is absent: the rule table cannot be checked"))
    func ruleTable() throws {
        let spec = try String(contentsOfFile: Self.specPath, encoding: .utf8)
        let ids = iommufdRuleIDs(spec)
        #expect(ids.count > 120, "the spec's IOMMUFD rules were not found in \(Self.specPath)")
        let covered = Set(iommufdCoverage.map(\.rule))
        let missing = ids.filter { !covered.contains($0) }
        #expect(missing.isEmpty, "IOMMUFD rules without a row or a not-applicable row: \(missing)")
        let unknown = covered.subtracting(ids)
        #expect(unknown.isEmpty, "rows cite IOMMUFD rules iommufd.md does not define: \(unknown.sorted())")
        let notApplicable = Set(iommufdNotApplicableRows.map(\.rule))
        let both = Set(iommufdRows.flatMap(\.rules) + iommufdSelftestMockRows.flatMap(\.rules)).intersection(notApplicable)
        #expect(both.isEmpty, "rules with rows and a not-applicable row: \(both.sorted())")
        try ConformanceCoverageTests.checkGeneratedDoc(renderIOMMUFDTable(ids), at: Self.docPath, regeneratedBy: "IOMMUFDConformanceCoverageTests")
    }

    @Test("every row cites a spec rule and every not-applicable row says why")
    func rowsCiteRules() {
        for row in iommufdRows {
            #expect(row.rule.hasPrefix("IOMMUFD-") && !row.name.isEmpty, "\(row.rule): \(row.name)")
            #expect(row.uapiOnly == nil || row.swiftOnly == nil, "\(row.rule) \(row.name): one path only, not none")
        }
        for row in iommufdSelftestMockRows { #expect(row.rule.hasPrefix("IOMMUFD-") && !row.name.isEmpty, "\(row.rule): \(row.name)") }
        for row in iommufdNotApplicableRows { #expect(!row.reason.isEmpty && !row.asserts.isEmpty, "\(row.rule)") }
    }
}
