import KernelRules
import Machine
import DeviceModels
import IOMMU
import PCIBus
import SampleDrivers
import SystemPackage
import Testing
import VFIO

/// One device, several fds (VG-33, VG-34): the group path opens a device again and again, the
/// device is enabled by the first open and disabled by the last close, and its interrupts and
/// config space are the device's, not the fd's. And a bus reset restores every open device on
/// the bus, not only the caller's (`pci_reset_bus` saves and restores them all).
@Suite("Device fds: open count (VG-33, VG-34) and bus reset of every open device")
struct DeviceOpenCountTests {
    static let engine = PCIAddress(parsing: "0000:5f:00.0")!

    @Test("VG-34: a second fd shares the device — no second reset, the first fd's interrupts and bus master stay; the last close disables it")
    func secondFDSharesTheDevice() throws {
        let machine = try SimulatedMachine.load(machine: "default")
        let first = try UserspaceDevice(Self.engine, in: machine.vfio)
        let model = try #require(machine.devices[Self.engine])
        let event = try EventFD()
        try first.device.enableInterrupts(.msix, eventFDs: [event.fd])
        try first.setBusMaster(true)

        let second = try first.group.openDevice(Self.engine.description)
        #expect(model.isBusMasterEnabled, "opening again did not reset the function (VG-33: only the first open enables it)")
        #expect(try second.readConfig(UInt16.self, at: 4) & 0x4 != 0)
        try second.triggerInterrupts(.msix)
        #expect(event.read() == 1, "the second fd sees the vectors the first one set up")

        first.device.close()
        #expect(model.isBusMasterEnabled, "closing one fd leaves the device to the other")
        try second.triggerInterrupts(.msix)
        #expect(event.read() == 1)

        second.close()
        #expect(!model.isBusMasterEnabled, "the last close disables the device")
        let third = try first.group.openDevice(Self.engine.description)
        expectErrno(.invalidArgument, mentioning: "is not enabled") { () throws(VFIOError) in try third.triggerInterrupts(.msix) }
        third.close()
        first.close()
    }

    @Test("PCI hot reset restores every open device on the bus: the other function's decode and MSI-X come back as vfio-pci set them")
    func hotResetRestoresEveryOpenDevice() throws {
        let base = try BusSnapshot.load(.machine(try FixtureMachine.load(directory: try FixtureMachine.locate("default"))))
        let addresses = [Self.engine, PCIAddress(parsing: "0000:5f:00.1")!]
        let machine = try SimulatedMachine(base: base, requests: addresses.map { .init(address: $0, model: "memcpy-engine") })
        let engines = try addresses.map { try #require(machine.devices[$0]) }
        let caller = try UserspaceDevice(addresses[0], in: machine.vfio)
        defer { caller.close() }
        let groupID = try #require(machine.core.device(addresses[1])?.groupID)
        let otherGroup = groupID == caller.group.id ? caller.group : try machine.vfio.openGroup(groupID)
        if otherGroup !== caller.group { try otherGroup.setContainer(caller.container) }
        let other = try otherGroup.openDevice(addresses[1].description)
        defer { other.close() }
        let event = try EventFD()
        try other.enableInterrupts(.msix, eventFDs: [event.fd])
        try other.writeConfig(try other.readConfig(UInt16.self, at: 4) | 0x4, at: 4)
        #expect(Self.msixEnabled(engines[1]) && engines[1].readConfig(4, width: 2) & 0x2 != 0)

        try caller.device.hotReset(groups: [caller.group, otherGroup])
        #expect(engines[1].readConfig(4, width: 2) & 0x2 != 0, "memory decode restored on the other function")
        #expect(Self.msixEnabled(engines[1]), "its MSI-X programming restored")
        // VPCI-233: pci_reset_bus restores COMMAND as it was, bus master included.
        #expect(engines[1].readConfig(4, width: 2) & 0x4 != 0, "bus master restored with the rest of COMMAND")
    }

    @Test("VPCI-222: a group fd proves ownership by identity alone — the other group need not be in a container")
    func hotResetTakesGroupFDsByIdentity() throws {
        let base = try BusSnapshot.load(.machine(try FixtureMachine.load(directory: try FixtureMachine.locate("default"))))
        let addresses = [Self.engine, PCIAddress(parsing: "0000:5f:00.1")!]
        let machine = try SimulatedMachine(base: base, requests: addresses.map { .init(address: $0, model: "memcpy-engine") })
        let caller = try UserspaceDevice(addresses[0], in: machine.vfio)
        defer { caller.close() }
        let otherID = try #require(machine.groupID(of: addresses[1]))
        try #require(otherID != caller.group.id, "the two functions must be in different groups for this row")
        let other = try machine.vfio.openGroup(otherID)
        defer { other.close() }
        #expect(other.container == nil)
        let refused = try #require(throws: VFIOError.self) { try caller.device.hotReset(groups: [caller.group]) }
        #expect(refused.errno == .invalidArgument && refused.rule == .VPCI_222, "\(refused)")
        try caller.device.hotReset(groups: [caller.group, other])
    }

    /// MSI-X Message Control's enable bit, found by walking the capability list.
    static func msixEnabled(_ function: VirtualPCIDevice) -> Bool {
        var offset = Int(function.readConfig(0x34, width: 1))
        for _ in 0..<48 where offset != 0 {
            if function.readConfig(offset, width: 1) == 0x11 { return function.readConfig(offset + 2, width: 2) & 0x8000 != 0 }
            offset = Int(function.readConfig(offset + 1, width: 1))
        }
        return false
    }
}
