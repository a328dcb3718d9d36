import CLinuxVFIO
import Foundation
import Glibc
import SystemPackage
import Testing
import VFIO

/// A VPCI rule the simulation cannot reach: why, and what can be asserted instead, through both
/// paths (`check` runs on a `VPCIRig` like a row).
struct VPCINotApplicableRow: Sendable, CustomTestStringConvertible {
    let rule: String
    let reason: String
    /// What `check` establishes.
    let asserts: String
    let check: @Sendable (VPCIRig) throws -> Void

    var testDescription: String { "\(rule): not applicable" }
}

private let noSRIOV =
    "the simulated machines have no SR-IOV: no PF enables VFs (no sriov_configure, no pci_iov), so there is no VF to open and no PF token to match"

private let vpciNotApplicableRows: [VPCINotApplicableRow] = [
    VPCINotApplicableRow(
        rule: "VPCI-96",
        reason: "no VGA function is modelled (no class 0x0300xx device, no CONFIG_VFIO_PCI_VGA, no VGA arbiter), so has_vga is always false and the legacy windows cannot be reached",
        asserts: "the VGA region (index 8) answers EINVAL to pread and pwrite, the !has_vga first step"
    ) { rig in
        #expect(rig.read(.vga, 0xa0000, 4) == .failure(.invalidArgument))
        #expect(rig.write(.vga, 0xa0000, [0, 0, 0, 0]) == EINVAL)
    },
    VPCINotApplicableRow(
        rule: "VPCI-125", reason: "\(noSRIOV); every function's Vendor and Device IDs come from its own config space",
        asserts: "the function has no SR-IOV extended capability (extended space empty) and the IDs read are the device's own, not 0xffff"
    ) { rig in
        #expect(rig.cfg(0x100) == 0)
        #expect(rig.cfg(0) == 0x5678_1234 && rig.hw(0) == 0x5678_1234)
    },
    VPCINotApplicableRow(
        rule: "VPCI-173",
        reason: "its failures need a function whose pin is wired to no IRQ (pdev->irq 0 / IRQ_NOTCONNECTED: since v6.15 the pin then reads 0, the INTx count is 0 and SET_IRQS stops at VPCI-160 step 4 before vfio_intx_enable), an allocation failure, or an exclusive non-PCI-2.3 line another driver shares (request_irq EBUSY); the simulation has no IRQ lines, only per-function INTx",
        asserts: "a function with no interrupt pin reports INTx count 0 and an INTx enable is EINVAL at validation; with a pin INTx enables (the initial masked = virq_disabled is VPCI-123's row)"
    ) { rig in
        #expect(rig.irqCount(.intx) == 1)
        #expect(rig.enable(.intx, [try EventFD()]) == 0)
        rig.close()
        let pinless = try VPCIRig(rig.path, VPCIImage(pin: 0))
        defer { pinless.close() }
        #expect(pinless.irqCount(.intx) == 0)
        #expect(pinless.enable(.intx, [try EventFD()]) == EINVAL)
    },
    VPCINotApplicableRow(
        rule: "VPCI-261", reason: noSRIOV,
        asserts: "the function has no SR-IOV extended capability, and its fd opened with the plain name (no vf_token) answers GET_INFO"
    ) { rig in
        #expect(rig.cfg(0x100) == 0)
        #expect(rig.deviceInfo().errno == 0)
    },
    VPCINotApplicableRow(
        rule: "VPCI-262", reason: "\(noSRIOV); VFIO_DEVICE_FEATURE_PCI_VF_TOKEN only exists on a PF with sriov enabled",
        asserts: "the function has no SR-IOV extended capability"
    ) { rig in
        #expect(rig.cfg(0x100) == 0)
    },
    VPCINotApplicableRow(
        rule: "VPCI-263", reason: "\(noSRIOV); the PF's users count of open VFs stays 0",
        asserts: "the function has no SR-IOV extended capability, and the last close is not refused (no VF holds it)"
    ) { rig in
        #expect(rig.cfg(0x100) == 0)
        rig.close()
        try rig.open()
        #expect(rig.deviceInfo().errno == 0)
    },
]

/// VPCI rules the device fd does not follow yet, or that have no row yet: the rule, and what is
/// missing (the measured difference, with the 7.3 source line that decides). This list must only
/// shrink: a rule leaves it with a row or a not-applicable row.
let vpciNotYetImplemented: [(rule: String, missing: String)] = [
    ("VPCI-04", "no row: none of vfio_pci_core_enable's failing steps has a counterpart a simulated function can hit — runtime-PM resume, pci_enable_device (pci_enable_resources is not in ../shared/kernel), pci_try_reset_function's -EAGAIN with the device lock held elsewhere (the simulation has no device lock), vfio_config_init's -ENOMEM; so GET_DEVICE_FD never fails after the match"),
    ("VPCI-91", "no row: 7.3 requests and iomaps every BAR eagerly at open (core.c:548 vfio_pci_core_map_bars, not at first access as the spec says) and keeps soft failures in barmap for BAR I/O and mmap to return — EBUSY (region request conflict), ENOMEM (iomap), ENODEV (non_mappable_bars); the simulated machines have no iomem resource tree with another claimant of a BAR's range and no non_mappable_bars quirk, so none can be provoked"),
]

/// One line of the VPCI rule table: a row, a not-applicable row, or a rule not yet implemented.
private struct VPCICoverageEntry {
    let rule: String
    let test: String
    let paths: String
}

private var vpciTables: [(name: String, rows: [VPCIRow])] {
    [
        ("VPCIConfigHeaderTests", VPCIConfigHeaderTests.rows), ("VPCIConfigCapabilityTests", VPCIConfigCapabilityTests.rows),
        ("VPCIResetTests", VPCIResetTests.rows), ("VPCIDeviceFDTests", VPCIDeviceFDTests.rows),
        ("VPCIFeatureIoeventfdTests", VPCIFeatureIoeventfdTests.rows),
        ("VPCIRegionROMAndMSIXTests", VPCIRegionROMAndMSIXTests.rows), ("VPCIProbeAndCloseResetTests", VPCIProbeAndCloseResetTests.rows),
        ("VPCIBARZapTests", VPCIBARZapTests.rows),
    ]
}

private var vpciCoverage: [VPCICoverageEntry] {
    let rows = vpciTables.flatMap { table in
        table.rows.map { VPCICoverageEntry(rule: $0.rule, test: "`\(table.name)`: \($0.name)", paths: "Swift, UAPI") }
    }
    let reads = DeviceUAPITests.regionReads.map {
        VPCICoverageEntry(rule: $0.rule, test: "`DeviceUAPITests.regionReads`: \($0.what)", paths: "UAPI only: pread at a raw file offset")
    }
    let faults = UserPointerFaultTests.rows.filter { $0.rule.hasPrefix("VPCI-") }.map {
        VPCICoverageEntry(rule: $0.rule, test: "`UserPointerFaultTests.rows`: \($0.testDescription)", paths: "UAPI only: a user pointer that faults")
    }
    let notApplicable = vpciNotApplicableRows.map {
        VPCICoverageEntry(rule: $0.rule, test: "not applicable: \($0.reason) — asserts \($0.asserts)", paths: "Swift, UAPI")
    }
    let notYet = vpciNotYetImplemented.map { VPCICoverageEntry(rule: $0.rule, test: "not yet: \($0.missing)", paths: "—") }
    return rows + reads + faults + notApplicable + notYet
}

/// The VPCI rule IDs of `vfio-pci.md`, in the spec's order (its `* **VPCI-NN**` items).
private func vpciRuleIDs(_ spec: String) -> [String] {
    spec.split(separator: "\n").compactMap { line in
        guard line.hasPrefix("* **VPCI-"), let close = line.dropFirst(4).firstIndex(of: "*") else { return nil }
        return String(line[line.index(line.startIndex, offsetBy: 4)..<close])
    }
}

private func percent(_ part: Int, _ whole: Int) -> String { String(format: "%.1f", 100 * Double(part) / Double(max(whole, 1))) }

/// Rules with a row; rules with a row or a not-applicable row.
private func vpciCounts(_ ids: [String]) -> (rows: Int, applicable: Int) {
    let entries = Dictionary(grouping: vpciCoverage, by: \.rule)
    let rows = ids.filter { id in entries[id]?.contains { !$0.test.hasPrefix("not ") } == true }.count
    let notApplicable = ids.filter { id in entries[id]?.contains { $0.test.hasPrefix("not applicable") } == true }.count
    return (rows, rows + notApplicable)
}

private func renderVPCITable(_ ids: [String]) -> String {
    let entries = Dictionary(grouping: vpciCoverage, by: \.rule)
    let (rows, withNA) = vpciCounts(ids)
    var lines = [
        "# vfio-pci device fd conformance: rule → test",
        "",
        "Generated from the tables `VPCIConfigHeaderTests.rows`, `VPCIConfigCapabilityTests.rows`, `VPCIResetTests.rows`,",
        "`VPCIDeviceFDTests.rows`, `VPCIFeatureIoeventfdTests.rows`, `VPCIRegionROMAndMSIXTests.rows`, `VPCIProbeAndCloseResetTests.rows`,",
        "`VPCIBARZapTests.rows`",
        "(`Tests/DeviceModelTests/VPCI*Tests.swift`), `DeviceUAPITests.regionReads`, the VPCI rows of",
        "`UserPointerFaultTests.rows`, and the not-applicable and not-yet lists of",
        "`Tests/DeviceModelTests/VPCIConformanceCoverageTests.swift` by `VPCIConformanceCoverageTests`, which fails when a rule of",
        "`vfio-pci.md` (VPCI-01…263) has no row, no not-applicable row and no not-yet entry, or when this file differs from the",
        "tables. Regenerate: `VFIOKIT_WRITE_CONFORMANCE_DOC=1 swift test --filter VPCIConformanceCoverageTests`.",
        "",
        "Paths: *Swift* is `VFIODevice` (`UserspaceDevice`), *UAPI* `ioctl`/`pread`/`pwrite`/`mmap` on the device fd through",
        "`VFIOSystem` with `<linux/vfio.h>`'s structs. The device fd follows Linux 7.3 (`../shared/kernel`) except where a",
        "*not yet* line says otherwise — dynamic MSI-X included (v6.5+: no NORESIZE on MSI-X, SET_IRQS grows an enabled",
        "MSI-X); *not yet* lines name what is missing or differs.",
        "",
        "Rules with a row: \(rows) of \(ids.count) (\(percent(rows, ids.count))%); with a row or a not-applicable row: \(withNA) of \(ids.count) (\(percent(withNA, ids.count))%); not yet: \(ids.count - withNA).",
        "",
        "| Rule | Test | Paths |",
        "|---|---|---|",
    ]
    for id in ids {
        for entry in entries[id] ?? [] {
            lines.append("| \(id) | \(entry.test.replacingOccurrences(of: "|", with: "\\|")) | \(entry.paths.replacingOccurrences(of: "|", with: "\\|")) |")
        }
    }
    return lines.joined(separator: "\n") + "\n"
}

@Suite("Rule coverage: vfio-pci.md → tests, docs/vpci-conformance.md")
struct VPCIConformanceCoverageTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let specPath = repository.deletingLastPathComponent().appendingPathComponent("shared/spec/vfio-pci.md").path
    static let docPath = repository.appendingPathComponent("docs/vpci-conformance.md").path

    @Test("VPCI not-applicable rows", arguments: vpciNotApplicableRows, VPCIPath.allCases)
    func notApplicable(_ row: VPCINotApplicableRow, _ path: VPCIPath) throws {
        let rig = try VPCIRig(path)
        defer { rig.close() }
        try row.check(rig)
    }

    @Test(
        "every VPCI rule has a row, a not-applicable row or a not-yet entry, and docs/vpci-conformance.md is their table",
        .enabled(if: FileManager.default.fileExists(atPath: specPath), "../shared/spec is absent: the rule table cannot be checked"))
    func ruleTable() throws {
        let spec = try String(contentsOfFile: Self.specPath, encoding: .utf8)
        let ids = vpciRuleIDs(spec)
        #expect(ids.count >= 119, "the spec's VPCI rules were not found in \(Self.specPath)")
        let covered = Set(vpciCoverage.map(\.rule))
        let missing = ids.filter { !covered.contains($0) }
        #expect(missing.isEmpty, "VPCI rules with no row, no not-applicable row and no not-yet entry: \(missing)")
        let unknown = covered.subtracting(ids)
        #expect(unknown.isEmpty, "rows cite VPCI rules vfio-pci.md does not define: \(unknown.sorted())")
        // A rule is in exactly one state: a row, not applicable, or not yet.
        let withRows = Set(vpciCoverage.filter { !$0.test.hasPrefix("not ") }.map(\.rule))
        let notApplicable = Set(vpciNotApplicableRows.map(\.rule))
        let notYet = vpciNotYetImplemented.map(\.rule)
        #expect(Set(notYet).count == notYet.count, "a rule is listed twice as not yet")
        // The not-yet list only shrinks: lower this ceiling whenever a rule leaves it.
        #expect(notYet.count <= 2, "\(notYet.count) rules not yet implemented: more than the 2 of the last landing")
        #expect(withRows.intersection(notApplicable).isEmpty, "rules with rows and a not-applicable row: \(withRows.intersection(notApplicable).sorted())")
        #expect(withRows.intersection(notYet).isEmpty, "rules with rows still listed as not yet: \(withRows.intersection(notYet).sorted())")
        #expect(notApplicable.intersection(notYet).isEmpty, "rules both not applicable and not yet: \(notApplicable.intersection(notYet).sorted())")
        let (rows, withNA) = vpciCounts(ids)
        print("VPCI coverage: rows \(rows)/\(ids.count) (\(percent(rows, ids.count))%), rows + not applicable \(withNA)/\(ids.count) (\(percent(withNA, ids.count))%), not yet \(notYet.count)")
        let rendered = renderVPCITable(ids)
        if ProcessInfo.processInfo.environment["VFIOKIT_WRITE_CONFORMANCE_DOC"] == "1" {
            try rendered.write(toFile: Self.docPath, atomically: true, encoding: .utf8)
        }
        let committed = try? String(contentsOfFile: Self.docPath, encoding: .utf8)
        #expect(committed == rendered, "docs/vpci-conformance.md differs from the tables: VFIOKIT_WRITE_CONFORMANCE_DOC=1 swift test --filter VPCIConformanceCoverageTests")
    }

    @Test("every row cites a VPCI rule and says what it checks; every not-yet entry says what is missing")
    func rowsCiteRules() {
        for table in vpciTables {
            for row in table.rows { #expect(row.rule.hasPrefix("VPCI-") && !row.name.isEmpty, "\(table.name): \(row.rule) \(row.name)") }
        }
        for row in vpciNotApplicableRows { #expect(!row.reason.isEmpty && !row.asserts.isEmpty, "\(row.rule)") }
        for entry in vpciNotYetImplemented { #expect(entry.rule.hasPrefix("VPCI-") && entry.missing.count > 20, "\(entry.rule)") }
    }
}
