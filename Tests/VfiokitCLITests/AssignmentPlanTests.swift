import Foundation
import Testing

/// Verdicts as commands (issue 19 §6): `explain` and `groups` with a selection print the exact
/// `driverctl set-override BDF vfio-pci` lines, the bridges that may stay bound, the
/// `vfio-pci.ids=` alternative and what blocks the group otherwise.
@Suite("explain and groups -s/-d/--group: the commands that assign a group")
struct AssignmentPlanTests {
    @Test("a NIC behind a downstream port without ACS: one driverctl line per function, the port stays bound and is blamed")
    func explainCommands() throws {
        let result = try CLI.run(["explain", "04:00.1", "--machine", "switch-nonacs"])
        #expect(result.status == 0, "\(result.stderr)")
        let text = result.stdout
        #expect(text.contains("To assign IOMMU group 6 to VFIO (every function in it goes together):"))
        #expect(text.contains("  driverctl set-override 0000:04:00.0 vfio-pci    # now tg3, which blocks the group until replaced"))
        #expect(text.contains("  driverctl set-override 0000:04:00.1 vfio-pci    # now tg3"))
        #expect(text.contains("  0000:02:09.0: a bridge: pcieport may stay bound (driver_managed_dma); bridges are not assigned"))
        #expect(!text.contains("driverctl set-override 0000:02:09.0"))
        #expect(text.contains("or, at boot: vfio-pci.ids=14e4:165f on the kernel command line"))
        #expect(text.contains("softdep tg3 pre: vfio-pci"))
        #expect(text.contains("acs: 0000:02:09.0 (Downstream Port) does not isolate what is below it"))
        let json = try CLI.run(["explain", "04:00.1", "--machine", "switch-nonacs", "--json"]).json()
        let plan = try #require(json["assignment"] as? [String: Any])
        #expect(plan["commands"] as? [String] == ["driverctl set-override 0000:04:00.0 vfio-pci", "driverctl set-override 0000:04:00.1 vfio-pci"])
        #expect((plan["bindings"] as? [[String: Any]])?.map { $0["action"] as? String } == ["keep", "bind-vfio-pci", "bind-vfio-pci"])
        #expect((plan["blockers"] as? [[String: Any]])?.map { $0["address"] as? String } == ["0000:02:09.0"])
    }

    @Test("a function already on vfio-pci needs no command")
    func alreadyBound() throws {
        let json = try CLI.run(["explain", "05:00.1", "--machine", "switch-nonacs", "--json"]).json()
        let plan = try #require(json["assignment"] as? [String: Any])
        #expect((plan["commands"] as? [String])?.isEmpty == true)
        #expect((plan["bindings"] as? [[String: Any]])?.first?["action"] as? String == "done")
        #expect(plan["idsAlternative"] as? String == "vfio-pci.ids=15b3:1017 on the kernel command line; it also takes 0000:05:00.0, which shares the ID")
    }

    @Test("an RMRR (direct reserved region) blocks the group whatever is bound; a multifunction device without ACS is blamed itself")
    func blockers() throws {
        let rmrr = try CLI.run(["explain", "3d:00.0", "--machine", "default"]).stdout
        #expect(rmrr.contains("rmrr: 0000:3d:00.0 has a firmware 1:1 mapping (RMRR / direct reserved region)"), "\(rmrr)")
        let multifunction = try CLI.run(["explain", "00:14.2", "--machine", "default", "--json"]).json()
        let blockers = try #require((multifunction["assignment"] as? [String: Any])?["blockers"] as? [[String: Any]])
        #expect(blockers.first?["kind"] as? String == "acs")
        #expect(blockers.first?["address"] as? String == "0000:00:14.0")
    }

    @Test("groups with a selection: only the groups holding it, each with its commands", arguments: [
        ["-s", "04:00.0"], ["-s", "4:0.1"], ["-d", "14e4:165f"], ["--group", "6"], ["-s", "0000:04:"],
    ])
    func selection(_ selection: [String]) throws {
        let result = try CLI.run(["groups", "--machine", "switch-nonacs"] + selection)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("IOMMU group 6    0000:04:00.0  Ethernet controller [0200]: "))
        #expect(!result.stdout.contains("IOMMU group 5 "))
        #expect(result.stdout.contains("    driverctl set-override 0000:04:00.0 vfio-pci"))
        let json = try CLI.run(["groups", "--machine", "switch-nonacs", "--json"] + selection).json()
        #expect((json["groups"] as? [[String: Any]])?.map { $0["id"] as? Int } == [6])
    }

    @Test("without a selection, groups prints no commands; a selection matching nothing is 65, a malformed one 64")
    func noSelection() throws {
        #expect(!(try CLI.run(["groups", "--machine", "switch-nonacs"]).stdout.contains("driverctl")))
        #expect(try CLI.run(["groups", "--machine", "switch-nonacs", "-s", "77:"]).status == 65)
        #expect(try CLI.run(["groups", "--machine", "switch-nonacs", "-s", "zz:"]).status == 64)
        #expect(try CLI.run(["groups", "--machine", "switch-nonacs", "-d", "14e4"]).status == 64)
    }

    @Test("IOMMU off: the plan says so first among the blockers")
    func iommuOff() throws {
        let tree = try HostTree(groups: nil, units: [])
        defer { tree.remove() }
        let json = try CLI.run(["explain", "04:00.0", "--sysfs", tree.sys, "--json"]).json()
        let blockers = try #require((json["assignment"] as? [String: Any])?["blockers"] as? [[String: Any]])
        #expect(blockers.first?["kind"] as? String == "iommu-off")
        #expect((blockers.first?["detail"] as? String)?.contains("intel_iommu=on") == true)
    }
}
