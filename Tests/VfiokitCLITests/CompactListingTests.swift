import Foundation
import Testing

/// `groups` lists one function per line by default, as ls-iommu does, within 132 columns; the
/// rule chains, types and reserved regions come with --verbose (issue 19 §7).
@Suite("groups: one line per function by default, details under --verbose")
struct CompactListingTests {
    @Test("every line fits 132 columns and carries group, address, lspci's name, driver and verdict", arguments: ["default", "switch-nonacs", "amd-southbridge"])
    func compact(machine: String) throws {
        let result = try CLI.run(["groups", "--machine", machine])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n").dropFirst()  // the title names the machine's path
        #expect(lines.allSatisfy { $0.count <= 132 }, "\(lines.filter { $0.count > 132 })")
        #expect(!result.stdout.contains("IG-1"), "rule IDs belong to --verbose")
        let json = try CLI.run(["groups", "--machine", machine, "--json"]).json()
        let functions = (json["groups"] as? [[String: Any]] ?? []).reduce(0) { $0 + (($1["devices"] as? [Any])?.count ?? 0) }
        #expect(lines.filter { $0.hasPrefix("IOMMU group ") }.count == functions)
    }

    @Test("the line of an NVMe below a downstream port: its name cut to fit, IDs, revision, driver and verdict kept")
    func exactLine() throws {
        let text = try CLI.run(["groups", "--machine", "switch-nonacs"]).stdout
        #expect(
            text.contains(
                "IOMMU group 9    0000:03:00.0  Non-Volatile memory controller [0108]: Intel Cor… [8086:0953] (rev 01)  nvme  not viable (its driver)\n"),
            "\(text)")
        #expect(text.contains("IOMMU group 11   0000:05:00.1  "))
        #expect(text.contains("  vfio-pci  viable\n"))
        #expect(text.contains("  pcieport  viable\n"))
    }

    @Test("--verbose: the rule that put each function in its group, the type and reserved regions")
    func verbose() throws {
        let text = try CLI.run(["groups", "--machine", "switch-nonacs", "--verbose"]).stdout
        #expect(text.contains("Group 6: not viable"))
        #expect(text.contains("      IG-11: the upstream path is not ACS-isolated"))
        #expect(text.contains("  type: DMA-FQ  reserved_regions:"))
    }

    @Test("JSON: each group's verdict as an enum beside the prose")
    func verdictEnum() throws {
        let json = try CLI.run(["groups", "--machine", "default", "--json"]).json()
        let groups = try #require(json["groups"] as? [[String: Any]])
        let verdicts = Set(groups.compactMap { $0["verdict"] as? String })
        #expect(verdicts.isSubset(of: ["viable", "not-viable", "not-assignable", "unknown", "iommu-off"]))
        #expect(groups.first { ($0["devices"] as? [String]) == ["0000:3d:00.0"] }?["verdict"] as? String == "not-viable")
        #expect(groups.first { ($0["devices"] as? [String]) == ["0000:00:00.0"] }?["verdict"] as? String == "viable")
        let dump = try CLI.run(["groups", "--machine", "default", "--json"]).json()
        #expect((dump["groups"] as? [[String: Any]])?.allSatisfy { $0["verdict"] != nil } == true)
    }
}

/// Computed group numbers as Linux 6.8+ assigns them (issue 19): the output says when the
/// IOMMU units' order behind them is a guess, and not when the machine carries it.
@Suite("groups: the numbering's source")
struct GroupNumberingTests {
    @Test("several PCI roots and no stated unit order: a header line and a JSON warning say the numbers are a guess")
    func guessSaid() throws {
        let text = try CLI.run(["groups", "--machine", "default"]).stdout
        #expect(text.contains("\n  group numbers: a guess (the DMAR order of the 4 PCI roots is not in the dump; bus order assumed)\n"), "\(text)")
        let json = try CLI.run(["topology", "--machine", "default", "--json"]).json()
        #expect((json["warnings"] as? [String])?.contains { $0.hasPrefix("group numbers: a guess") } == true)
    }

    @Test("one PCI root: nothing to guess, and the Intel iGPU is group 0")
    func iGPUFirst() throws {
        let result = try CLI.run(["groups", "--machine", "intel-pch-laptop"])
        #expect(!result.stdout.contains("a guess"))
        let first = result.stdout.split(separator: "\n").first { $0.hasPrefix("IOMMU group ") }
        #expect(first?.hasPrefix("IOMMU group 0    0000:00:02.0  VGA compatible controller [0300]: Intel") == true, "\(first ?? "")")
    }
}

/// `topology` and `explain` compact by default, details under --verbose (issue 19 §7).
@Suite("topology and explain: compact by default, details under --verbose")
struct CompactTopologyExplainTests {
    /// The widest line but the first, which names the machine's directory (as long as the checkout's path).
    static func widest(_ text: String) -> Int { text.split(separator: "\n").dropFirst().map(\.count).max() ?? 0 }

    @Test("topology fits 132 columns, names shortened with their IDs kept; --verbose prints them whole with the driver", arguments: ["default", "switch-nonacs"])
    func topology(machine: String) throws {
        let text = try CLI.run(["topology", "--machine", machine]).stdout
        #expect(Self.widest(text) <= 132, "\(text)")
        let verbose = try CLI.run(["topology", "--machine", machine, "--verbose"]).stdout
        #expect(Self.widest(verbose) > 132)
        #expect(verbose.contains("  driver: "))
        // Every function is still there, with its IDs.
        let ids = { (text: String) in text.split(separator: "\n").filter { $0.contains("[group ") || $0.contains("[no group]") }.map { line in
            String(line.suffix(from: line.range(of: "]  ")!.upperBound)).split(separator: "[").count } }
        #expect(ids(text).count == ids(verbose).count)
    }

    @Test(
        "the IOMMU-off notice fits 132 columns, each item wrapped under its own head, words all kept",
        arguments: [["groups"], ["topology"], ["explain", "03:00.0"], ["report"], ["type", "9"]])
    func iommuOffNotice(command: [String]) throws {
        let tree = try HostTree(groups: nil, units: [])
        defer { tree.remove() }
        // An Intel chipset under an AMD CPU: the longest notice, with its "which IOMMU:" line.
        try FileManager.default.createDirectory(atPath: tree.root + "/proc", withIntermediateDirectories: true)
        try "processor\t: 0\nvendor_id\t: AuthenticAMD\n".write(toFile: tree.root + "/proc/cpuinfo", atomically: true, encoding: .utf8)
        let text = try CLI.run(command + ["--sysfs", tree.sys]).stdout
        let notice = text.split(separator: "\n", omittingEmptySubsequences: false).prefix { !$0.isEmpty }
        // Only a word longer than the room (the tree's temporary path) may pass the width.
        #expect(notice.filter { !$0.contains(tree.sys) }.allSatisfy { $0.count <= 132 }, "\(notice)")
        let which = try #require(notice.firstIndex { $0.hasPrefix("  which IOMMU: ") })
        #expect(notice[which].count > 100)
        #expect(notice[which + 1].hasPrefix(String(repeating: " ", count: 15)) && notice[which + 1].dropFirst(15).first != " ")
        let items = HostIOMMUOffTests.noticeItems(text)
        #expect(items.contains { $0.hasPrefix("  which IOMMU: the host bridge is Intel (8086) but the CPU is AuthenticAMD") && $0.contains("-device intel-iommu") })
        #expect(items.contains("  to enable it: add intel_iommu=on to the kernel command line (needed unless the kernel was built with CONFIG_INTEL_IOMMU_DEFAULT_ON), then reboot"))
        #expect(items.last == "  The groups shown are what the kernel would form with the IOMMU on, not groups that exist.")
    }

    @Test("topology's compact default keeps the long name's IDs: NVMe Datacenter SSD shortened, [8086:0a54] kept")
    func idsKept() throws {
        let text = try CLI.run(["topology", "--machine", "default"]).stdout
        let line = try #require(text.split(separator: "\n").first { $0.contains("[8086:0a54]") })
        #expect(line.contains("…"))
        let verbose = try CLI.run(["topology", "--machine", "default", "-v"]).stdout
        #expect(verbose.contains("Intel Corporation NVMe Datacenter SSD [3DNAND, Beta Rock Controller] [8086:0a54]  driver: nvme"))
    }

    @Test("explain fits 132 columns (long lines wrapped, nothing cut) without the per-step facts and per-route peers; --verbose has them")
    func explain() throws {
        let text = try CLI.run(["explain", "1c:00.0", "--machine", "default"]).stdout
        #expect(Self.widest(text) <= 132, "\(text)")
        #expect(!text.contains("      ACS-10: "))
        // A wrapped line keeps its indent; its continuation goes four columns further.
        #expect(text.contains("\n  1 route(s); 5 peer(s) outside this group"))
        #expect(text.contains("\n      path (IG-11); the proposed rework"))
        #expect(!text.contains("outside this group: 0000:19:08.0"))
        #expect(text.contains("driverctl set-override 0000:1c:00.0 vfio-pci"))
        // Wrapped, not cut: the words of the vfio-pci.ids line are all there.
        #expect(text.split(separator: "\n").joined(separator: " ").replacingOccurrences(of: "  +", with: " ", options: .regularExpression)
            .contains("softdep nvme pre: vfio-pci in /etc/modprobe.d"))
        let verbose = try CLI.run(["explain", "1c:00.0", "--machine", "default", "--verbose"]).stdout
        #expect(verbose.contains("      ACS-10: the path from 0000:19:10.0 to the root is not isolated"))
        #expect(verbose.contains("    outside this group: 0000:19:08.0"))
        #expect(Self.widest(verbose) > 132)
    }
}
