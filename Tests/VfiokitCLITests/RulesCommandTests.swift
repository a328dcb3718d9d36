import Foundation
import Testing

/// `vfiokit rules [ID]`: every rule a report can cite has a summary in the project's words and the
/// kernel function it mirrors (issue 19, "Compact by default").
@Suite("vfiokit rules says what a cited rule means (issue 19)")
struct RulesCommandTests {
    /// The rule IDs the operator-facing modules cite, read from their sources now, so that a new
    /// citation without a summary fails here: `.IG_13` constants and "IG-13" in code (comment lines
    /// are skipped, they never reach a report). RuleSummaries.swift itself is left out.
    static func citedRuleIDs() throws -> Set<String> {
        let roots = ["Sources/PCIBus", "Sources/IOMMU", "Sources/Machine", "Sources/VFIO/Viability", "Sources/vfiokit"]
        let pattern = /\.([A-Z]+)_([0-9]+)\b|\b([A-Z]{2,})-([0-9]{2,})\b/
        var ids: Set<String> = []
        for root in roots {
            let directory = CLI.packageRoot.appendingPathComponent(root).path
            guard let files = FileManager.default.enumerator(atPath: directory) else { continue }
            for case let file as String in files where file.hasSuffix(".swift") && !file.hasSuffix("RuleSummaries.swift") {
                let text = try String(contentsOfFile: directory + "/" + file, encoding: .utf8)
                for line in text.split(separator: "\n") where !line.drop(while: { $0 == " " }).hasPrefix("//") {
                    for match in line.matches(of: pattern) {
                        if let letters = match.1, let digits = match.2 { ids.insert("\(letters)-\(digits)") }
                        if let letters = match.3, let digits = match.4 { ids.insert("\(letters)-\(digits)") }
                    }
                }
            }
        }
        return ids
    }

    static func listed() throws -> [[String: Any]] {
        let result = try CLI.run(["rules", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        return try result.json()["rules"] as? [[String: Any]] ?? []
    }

    @Test("every rule ID PCIBus, IOMMU, Machine, VFIO/Viability and vfiokit cite has a summary")
    func everyCitedRuleHasASummary() throws {
        let cited = try Self.citedRuleIDs()
        #expect(cited.contains("IG-13") && cited.contains("VG-06") && cited.contains("OWN-01") && cited.count >= 40, "\(cited.sorted())")
        let summarised = Set(try Self.listed().compactMap { $0["id"] as? String })
        #expect(cited.subtracting(summarised).isEmpty, "cited without a summary: \(cited.subtracting(summarised).sorted())")
    }

    @Test("vfiokit rules IG-13: its ID and title, the summary in at most three lines, the function it mirrors")
    func oneRule() throws {
        let result = try CLI.run(["rules", "IG-13"])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "IG-13  group formation, step 4: functions of one device without ACS share a group")
        #expect(lines.last == "  mirrors get_pci_function_alias_group() in drivers/iommu/iommu.c")
        #expect(lines.joined(separator: " ").contains("fails the ACS test joins the group of any other function in the same slot"))
        #expect(lines.allSatisfy { $0.count <= 132 })
        // Forgiving on case and on the Swift constant's underscore.
        #expect(try CLI.run(["rules", "ig_13"]).stdout == result.stdout)
    }

    @Test("every summary fits 132 columns in one to three lines")
    func everySummaryFits() throws {
        for rule in try Self.listed() {
            let id = try #require(rule["id"] as? String)
            let lines = try CLI.run(["rules", id]).stdout.split(separator: "\n")
            let summaryLines = lines.dropFirst().filter { !$0.hasPrefix("  mirrors ") && !$0.hasPrefix("          ") }
            #expect((1...3).contains(summaryLines.count), "\(id): \(lines)")
            #expect(lines.allSatisfy { $0.count <= 132 }, "\(id): \(lines)")
        }
    }

    @Test("the listing: a header and one line per rule, IG-13 among them, within 132 columns")
    func listing() throws {
        let result = try CLI.run(["rules"])
        #expect(result.status == 0)
        let lines = result.stdout.split(separator: "\n")
        let count = try Self.listed().count
        #expect(lines.first == "Rules the reports cite (\(count)); vfiokit rules ID says what one means:")
        #expect(lines.count == count + 1)
        #expect(lines.contains("  IG-13     group formation, step 4: functions of one device without ACS share a group"))
        #expect(lines.allSatisfy { $0.count <= 132 })
    }

    @Test("an unknown rule exits 65 with the error shape; a malformed ID is a usage error (64)")
    func unknown() throws {
        let missing = try CLI.run(["rules", "XX-99"])
        #expect(missing.status == 65)
        #expect(missing.stdout.isEmpty)
        #expect(missing.stderr == "error: ENOENT: XX-99: no such rule; vfiokit rules lists those the reports cite\n")
        let uncited = try CLI.run(["rules", "VPCI-100", "--json"])
        #expect(uncited.status == 65)
        let error = try #require(uncited.json()["error"] as? [String: Any])
        #expect(error["errno"] as? String == "ENOENT")
        #expect((error["message"] as? String)?.hasPrefix("VPCI-100: a rule of the spec that no report cites") == true)
        #expect(error["rule"] is NSNull)
        let malformed = try CLI.run(["rules", "IG13"])
        #expect(malformed.status == 64)
        #expect(malformed.stderr.contains("IG13: not a rule ID"))
    }

    @Test("JSON: one rule is {id, title, summary, function, file}; the listing is {rules: [...]} of the same")
    func json() throws {
        let one = try CLI.run(["rules", "VG-06", "--json"]).json()
        #expect(Set(one.keys) == ["id", "title", "summary", "function", "file"])
        #expect(one["id"] as? String == "VG-06")
        #expect((one["file"] as? String)?.contains("drivers/vfio/group.c") == true)
        let all = try Self.listed()
        #expect(all.allSatisfy { Set($0.keys) == ["id", "title", "summary", "function", "file"] && ($0["summary"] as? String)?.isEmpty == false })
        #expect(Set(all.compactMap { $0["id"] as? String }).count == all.count)
    }
}
