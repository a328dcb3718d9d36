import Foundation
import PCIBus
import Testing

/// A host tree for `--sysfs`, written by `SysfsTreeWriter` from `devices/switch-nonacs` (a real
/// sysfs layout under `root/sys`: `bus/pci/devices`, `class/iommu`, `kernel/iommu_groups`).
struct HostTree {
    let root: String
    var sys: String { root + "/sys" }
    var pci: String { root + "/sys/bus/pci" }

    /// `groups`: each function's kernel group (nil: no `iommu_group` links, no groups);
    /// `units`: the entries of `class/iommu`.
    init(groups: [PCIAddress: Int]?, units: [String]) throws {
        root = CLI.temporaryPath("host")
        let machine = try FixtureMachine.load(directory: CLI.packageRoot.path + "/devices/switch-nonacs")
        let topology = try machine.topology(options: .init(lookUpNames: false))
        try SysfsTreeWriter.write(topology, kernelGroups: groups ?? [:], drivers: machine.drivers, to: pci)
        let files = FileManager.default
        try files.createDirectory(atPath: sys + "/class/iommu", withIntermediateDirectories: true)
        for unit in units { try files.createDirectory(atPath: sys + "/class/iommu/\(unit)", withIntermediateDirectories: true) }
        try files.createDirectory(atPath: sys + "/kernel/iommu_groups", withIntermediateDirectories: true)
        for id in Set((groups ?? [:]).values) {
            try files.createDirectory(atPath: sys + "/kernel/iommu_groups/\(id)", withIntermediateDirectories: true)
            try "DMA\n".write(toFile: sys + "/kernel/iommu_groups/\(id)/type", atomically: true, encoding: .utf8)
            try "0x00000000fee00000 0x00000000feefffff msi\n".write(
                toFile: sys + "/kernel/iommu_groups/\(id)/reserved_regions", atomically: true, encoding: .utf8)
        }
    }

    /// The manifest's groups, renumbered by `offset` (the kernel numbers in its own probe order),
    /// with `merged` put into the first one's group.
    static func manifestGroups(offset: Int = 0, merging merged: [String] = []) throws -> [PCIAddress: Int] {
        let machine = try FixtureMachine.load(directory: CLI.packageRoot.path + "/devices/switch-nonacs")
        var groups: [PCIAddress: Int] = [:]
        for group in machine.expectedGroups { for address in group.devices { groups[address] = group.id + offset } }
        let addresses = merged.compactMap { PCIAddress(parsing: $0) }
        for address in addresses { groups[address] = groups[addresses[0]] }
        return groups
    }

    func remove() { try? FileManager.default.removeItem(atPath: root) }
}

@Suite("Host IOMMU off: every command says so first (issue 19 §1)")
struct HostIOMMUOffTests {
    /// The notice's items, each wrapped line joined back to one: an item starts at the margin
    /// ("IOMMU off: ") or two columns in; its continuations are indented further.
    static func noticeItems(_ stdout: String) -> [String] {
        var items: [String] = []
        for line in stdout.split(separator: "\n", omittingEmptySubsequences: false).prefix(while: { !$0.isEmpty }) {
            if line.hasPrefix("   "), !items.isEmpty {
                items[items.count - 1] += " " + line.drop { $0 == " " }
            } else {
                items.append(String(line))
            }
        }
        return items
    }

    static let commands: [[String]] = [["groups"], ["topology"], ["explain", "03:00.0"], ["report"], ["type", "9"]]

    @Test("no class/iommu units and no iommu_groups: the first line says IOMMU off with intel_iommu=on", arguments: commands)
    func textSaysSoFirst(command: [String]) throws {
        let tree = try HostTree(groups: nil, units: [])
        defer { tree.remove() }
        let result = try CLI.run(command + ["--sysfs", tree.sys])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = HostIOMMUOffTests.noticeItems(result.stdout)
        #expect(lines.first?.hasPrefix("IOMMU off: no IOMMU units in \(tree.sys)/class/iommu and no groups in \(tree.sys)/kernel/iommu_groups") == true, "\(result.stdout)")
        #expect(result.stdout.contains("intel_iommu=on"))
        #expect(result.stdout.contains("enable VT-d"))
        #expect(result.stdout.contains("what the kernel would form"))
    }

    @Test("JSON: groupsReliable false with the reason, iommuEnabled false, nothing assignable", arguments: [["groups"], ["topology"], ["explain", "03:00.0"], ["report"]])
    func json(command: [String]) throws {
        let tree = try HostTree(groups: nil, units: [])
        defer { tree.remove() }
        let result = try CLI.run(command + ["--sysfs", tree.sys, "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("warning: IOMMU off"))
        let json = try result.json()
        #expect(json["groupsReliable"] as? Bool == false)
        #expect(json["iommuEnabled"] as? Bool == false)
        #expect((json["groupsUnreliableReason"] as? String)?.hasPrefix("IOMMU off: ") == true)
        #expect((json["warnings"] as? [String])?.first?.hasPrefix("IOMMU off: ") == true)
        for group in json["groups"] as? [[String: Any]] ?? [] {
            #expect(group["assignable"] as? Bool == false)
            #expect((group["viability"] as? String)?.hasPrefix("IOMMU off, so not assignable") == true)
        }
    }

    @Test("groups but no IOMMU units in class/iommu count as off too; units and groups are on")
    func unitsWithoutGroups() throws {
        let off = try HostTree(groups: try HostTree.manifestGroups(), units: [])
        defer { off.remove() }
        let offJSON = try CLI.run(["groups", "--sysfs", off.sys, "--json"]).json()
        #expect(offJSON["iommuEnabled"] as? Bool == false)
        #expect((offJSON["groupsUnreliableReason"] as? String)?.contains("no IOMMU units in") == true)
        let on = try HostTree(groups: try HostTree.manifestGroups(), units: ["dmar0", "dmar1"])
        defer { on.remove() }
        let result = try CLI.run(["groups", "--sysfs", on.sys])
        #expect(!result.stdout.contains("IOMMU off"))
        let onJSON = try CLI.run(["groups", "--sysfs", on.sys, "--json"]).json()
        #expect(onJSON["iommuEnabled"] as? Bool == true)
        #expect(onJSON["groupsReliable"] as? Bool == true)
        #expect(onJSON["groupsUnreliableReason"] is NSNull)
    }

    @Test("a dump or a machine has no host IOMMU to be off: iommuEnabled null, no notice")
    func notAHost() throws {
        let result = try CLI.run(["groups", "--machine", "switch-nonacs"])
        #expect(!result.stdout.contains("IOMMU off"))
        let json = try CLI.run(["groups", "--machine", "switch-nonacs", "--json"]).json()
        #expect(json["iommuEnabled"] is NSNull)
        #expect(json["groupsFrom"] as? String == "computed")
    }
}

@Suite("Live host: the kernel's iommu_group links are the truth (issue 19 §2)")
struct KernelGroupsTruthTests {
    @Test("--sysfs /sys and --sysfs /sys/bus/pci read the same host")
    func bothRoots() throws {
        let tree = try HostTree(groups: try HostTree.manifestGroups(), units: ["dmar0"])
        defer { tree.remove() }
        let fromSys = try CLI.run(["groups", "--sysfs", tree.sys, "--json"])
        let fromPCI = try CLI.run(["groups", "--sysfs", tree.pci, "--json"])
        #expect(fromSys.status == 0, "\(fromSys.stderr)")
        #expect(fromPCI.status == 0, "\(fromPCI.stderr)")
        let a = try fromSys.json(), b = try fromPCI.json()
        #expect((a["groups"] as? [Any])?.count == 13)
        #expect(a["groupsFrom"] as? String == "kernel")
        #expect(b["groupsFrom"] as? String == "kernel")
        #expect((a["groups"] as? [[String: Any]])?.map { $0["id"] as? Int } == (b["groups"] as? [[String: Any]])?.map { $0["id"] as? Int })
    }

    @Test("group numbers are the kernel's (/dev/vfio/N), not the computed ones; type and reserved regions from the group's sysfs files")
    func kernelNumbers() throws {
        let tree = try HostTree(groups: try HostTree.manifestGroups(offset: 100), units: ["dmar0"])
        defer { tree.remove() }
        let json = try CLI.run(["groups", "--sysfs", tree.sys, "--json"]).json()
        let groups = try #require(json["groups"] as? [[String: Any]])
        #expect(groups.map { $0["id"] as? Int } == (100...112).map { $0 })
        #expect(groups.map { $0["computedId"] as? Int } == (0...12).map { $0 })
        #expect(groups.allSatisfy { $0["defaultDomainType"] as? String == "DMA" })
        let text = try CLI.run(["groups", "--sysfs", tree.sys, "--verbose"]).stdout
        #expect(text.contains("groups are the kernel's (iommu_group links; /dev/vfio/N)"))
        #expect(text.contains("Group 109 (computed group 9): not viable: 0000:03:00.0 is bound to nvme"))
        let explain = try CLI.run(["explain", "03:00.0", "--sysfs", tree.sys])
        #expect(explain.stdout.contains("IOMMU group 109 (the kernel's, /dev/vfio/109) with 0000:03:00.0"), "\(explain.stdout)")
        let topology = try CLI.run(["topology", "--sysfs", tree.sys]).stdout
        #expect(topology.contains("00.0  [group 109]"))
        let report = try CLI.run(["report", "--sysfs", tree.sys, "--json"]).json()
        let functions = try #require(report["functions"] as? [[String: Any]])
        #expect(functions.first { $0["address"] as? String == "0000:03:00.0" }?["group"] as? Int == 109)
    }

    @Test("where the kernel's group differs from the computed one, every command says so per device")
    func differences() throws {
        let tree = try HostTree(groups: try HostTree.manifestGroups(merging: ["0000:05:00.0", "0000:05:00.1"]), units: ["dmar0"])
        defer { tree.remove() }
        let compact = try CLI.run(["groups", "--sysfs", tree.sys]).stdout
        #expect(compact.contains("0000:05:00.1  Ethernet controller [0200]: "))
        #expect(compact.contains("  vfio-pci  not viable (computed: 11)"), "\(compact)")
        let text = try CLI.run(["groups", "--sysfs", tree.sys, "--verbose"]).stdout
        #expect(text.contains("Group 10 (no computed equal): not viable: 0000:05:00.0 is bound to mlx5_core"), "\(text)")
        #expect(
            text.contains(
                "differs from the computed grouping: kernel group 10 {0000:05:00.0 0000:05:00.1} differs from the computed group 11 {0000:05:00.1}"))
        let json = try CLI.run(["groups", "--sysfs", tree.sys, "--json"]).json()
        let group = try #require((json["groups"] as? [[String: Any]])?.first { $0["id"] as? Int == 10 })
        #expect(group["devices"] as? [String] == ["0000:05:00.0", "0000:05:00.1"])
        #expect(group["computedId"] is NSNull)
        let members = try #require(group["functions"] as? [[String: Any]])
        #expect(members.map { $0["computedGroup"] as? Int } == [10, 11])
        #expect(members.allSatisfy { $0["kernelDifference"] is String })
        let explain = try CLI.run(["explain", "05:00.1", "--sysfs", tree.sys])
        #expect(explain.stdout.contains("IOMMU group 10 (the kernel's, /dev/vfio/10) with 0000:05:00.0, 0000:05:00.1"), "\(explain.stdout)")
        #expect(explain.stdout.contains("differs from the computed grouping: kernel group 10"))
        let topology = try CLI.run(["topology", "--sysfs", tree.sys]).stdout
        #expect(topology.contains("[group 10]") && topology.contains("(computed group 11 differs)"))
    }
}

@Suite("Live host: a function the kernel gave no group")
struct KernelGroupMissingTests {
    @Test("explain says the kernel gave it none and what the computed grouping would do, instead of failing")
    func noKernelGroup() throws {
        var groups = try HostTree.manifestGroups()
        groups[PCIAddress(parsing: "0000:03:00.0")!] = nil
        let tree = try HostTree(groups: groups, units: ["dmar0"])
        defer { tree.remove() }
        let result = try CLI.run(["explain", "03:00.0", "--sysfs", tree.sys])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("  no IOMMU group: the kernel gave it none (no iommu_group link)"), "\(result.stdout)")
        #expect(result.stdout.contains("the kernel gave 0000:03:00.0 no group; computed group 9 {0000:03:00.0} would hold it"))
        let json = try CLI.run(["explain", "03:00.0", "--sysfs", tree.sys, "--json"]).json()
        #expect(json["group"] is NSNull)
        #expect(json["computedGroup"] as? Int == 9)
    }
}

@Suite("check and the IOMMU-off notice name one IOMMU on one machine (issue 19, check)")
struct HostIOMMUKindTests {
    /// The remedy lines of `check --root` (its iommu item's → lines) and of `groups --sysfs`
    /// (the notice's "to enable it:" lines) on one tree.
    static func remedies(_ tree: HostTree) throws -> (check: [String], groups: [String], vendor: Any?) {
        let groups = try CLI.run(["groups", "--sysfs", tree.sys])
        let checkJSON = try CLI.run(["check", "--root", tree.root, "--json"]).json()
        let iommu = (checkJSON["items"] as? [[String: Any]])?.first { $0["item"] as? String == "iommu" }
        let notice = HostIOMMUOffTests.noticeItems(groups.stdout).compactMap { line -> String? in
            if line.hasPrefix("  which IOMMU:") { return String(line.dropFirst(2)) }
            guard let range = line.range(of: "  to enable it: ") else { return nil }
            return String(line[range.upperBound...])
        }
        return (iommu?["remedy"] as? [String] ?? [], notice, checkJSON["vendor"])
    }

    /// switch-nonacs has an Intel host bridge (8086:2020); the CPU in proc/cpuinfo varies.
    @Test(
        "IOMMU off: check's remedy is the notice's remedy, from the host bridge and the CPU together",
        arguments: [
            ("GenuineIntel", ["intel_iommu=on"], ["AMD-Vi"], "intel"),
            // An Intel chipset under an AMD CPU: a virtual machine; both ways, with why.
            ("AuthenticAMD", ["intel_iommu=on", "AMD-Vi", "the host bridge is Intel (8086) but the CPU is AuthenticAMD"], [], nil),
            (nil, ["intel_iommu=on"], ["AMD-Vi"], "intel"),
        ] as [(String?, [String], [String], String?)])
    func sameRemedy(cpu: String?, present: [String], absent: [String], vendor: String?) throws {
        let tree = try HostTree(groups: nil, units: [])
        defer { tree.remove() }
        if let cpu {
            try FileManager.default.createDirectory(atPath: tree.root + "/proc", withIntermediateDirectories: true)
            try "processor\t: 0\nvendor_id\t: \(cpu)\n".write(toFile: tree.root + "/proc/cpuinfo", atomically: true, encoding: .utf8)
        }
        let (check, groups, checkVendor) = try Self.remedies(tree)
        #expect(!check.isEmpty)
        #expect(check == groups, "check: \(check)\ngroups: \(groups)")
        for text in present { #expect(check.contains { $0.contains(text) }, "\(text) in \(check)") }
        for text in absent { #expect(!check.contains { $0.contains(text) }, "\(text) not in \(check)") }
        #expect(checkVendor as? String == vendor)
    }
}
