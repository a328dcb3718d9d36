import IOMMU
import PCIBus
import Testing

@testable import VFIO

/// VG-05, VG-06, OWN-03: one computation of viability (`GroupViability.of`) behind GET_STATUS and
/// every report, on `devices/default`.
@Suite struct GroupViabilityTests {
    static func address(_ text: String) -> PCIAddress { PCIAddress(parsing: text)! }

    @Test("OWN-03 / VG-06: viability follows owner_cnt; default has viable and non-viable groups")
    func viability() throws {
        let core = try VFIOTestMachine.core()
        #expect(GroupViability.of(group: 27, in: core) == .viable)
        #expect(
            GroupViability.of(group: 13, in: core)
                == .notViable(blockers: [.init(address: Self.address("0000:1c:00.0"), driver: "nvme")], owner: nil))
        try core.claimGroup(27, owner: DMAOwner("container 1"))
        #expect(GroupViability.of(group: 27, in: core) == .notViable(blockers: [], owner: "container 1"))
        #expect(core.assignment(of: 23)?.isAssignable == false)
        #expect(core.assignment(of: 23)?.explanation.contains("RD-02") == true)
    }

    @Test("A group the machine does not have has no viability (not \"viable\")")
    func missingGroup() throws {
        let core = try VFIOTestMachine.core()
        let missing = (core.groups.map(\.id).max() ?? 0) + 1
        #expect(GroupViability.of(group: missing, in: core) == nil)
        #expect(core.assignment(of: missing) == nil)
    }

    @Test("VG-05: GET_STATUS says viable exactly when GroupViability does")
    func statusMatchesViability() throws {
        let system = try VFIOTestMachine.system(vfio: ["0000:1c:00.0"])
        for id in system.groupIDs {
            let group = try system.openGroup(id)
            defer { group.close() }
            #expect(group.status.contains(.viable) == (GroupViability.of(group: id, in: system.core) == .viable), "group \(id)")
        }
    }
}
