import CLinuxVFIO
import DeviceModels
import Foundation
import Glibc
import IOMMU
import KernelRules
import Machine
import PCIBus
import SampleDrivers
import Syscalls
import SystemPackage
import Testing
import VFIO

/// `../shared/spec/vfio-pci.md` §1.2–1.3: binding vfio-pci (`vfio_pci_probe`,
/// `vfio_pci_core_register_device`, VPCI-17) and the deferred bus reset at a last close
/// (`vfio_pci_dev_set_try_reset`, VPCI-22), through the Swift API and the raw UAPI (`VPCIRig`).
/// Binding is a sysfs write the UAPI facade does not intercept, so both paths bind with
/// `VFIOSystem.bindVFIOPCI`; what each path then checks is its own (`/dev/vfio/N` opened raw, or
/// `VFIOSystem.openGroup`).
@Suite("VPCI vfio-pci probe and the deferred bus reset at last close (VPCI-17, VPCI-22)")
struct VPCIProbeAndCloseResetTests {
    static let neighbour = PCIAddress(parsing: "0000:5f:00.1")!

    static let rows: [VPCIRow] = probe + closeReset

    @Test("VPCI probe and close-reset rows", arguments: rows, VPCIPath.allCases)
    func row(_ row: VPCIRow, _ path: VPCIPath) throws { try row.run(path) }

    static let pair: @Sendable () -> [(PCIAddress, VPCIImage)] = { [(neighbour, VPCIImage(device: 0x5679, multifunction: true))] }
    static let multifunction: @Sendable () -> VPCIImage = { VPCIImage(multifunction: true) }

    // MARK: VPCI-17

    static let probe: [VPCIRow] = [
        VPCIRow("VPCI-17", "the root port above the device (a bridge, header type 1): bound to pcieport EBUSY before any probe; unbound, vfio-pci's probe refuses it EINVAL and its group gets no /dev/vfio node") {
            rig in
            let bridge = try rig.rootPort()
            #expect(rig.bind(bridge) == EBUSY)
            try rig.system.core.unbindDriver(from: bridge)
            let refused = rig.bindResult(bridge)
            #expect(refused.errno == EINVAL && refused.rule == .VPCI_17)
            #expect(rig.system.core.device(bridge)?.driver == nil, "nothing bound")
            let group = try #require(rig.machine.groupID(of: bridge))
            #expect(rig.openGroupStatus(group) == ENOENT)
        },
        VPCIRow(
            "VPCI-17", "an endpoint (header type 0) unbound from vfio-pci binds again; bound, a second bind is EBUSY",
            image: multifunction, others: pair
        ) { rig in
            try rig.system.core.unbindDriver(from: neighbour)
            #expect(rig.bind(neighbour) == 0)
            #expect(rig.system.core.device(neighbour)?.driver == "vfio-pci")
            #expect(rig.bind(neighbour) == EBUSY)
        },
        VPCIRow(
            "VPCI-17", "a denylisted function (Intel QAT C62X 8086:37c8) is refused EINVAL by vfio_pci_probe",
            image: multifunction, others: { [(neighbour, VPCIImage(vendor: 0x8086, device: 0x37c8, multifunction: true))] }
        ) { rig in
            try rig.system.core.unbindDriver(from: neighbour)
            #expect(rig.bind(neighbour) == EINVAL)
            #expect(rig.system.core.device(neighbour)?.driver == nil)
        },
    ]

    // MARK: VPCI-22

    static let noFLR: @Sendable () -> VPCIImage = { VPCIImage(flr: false) }

    static let closeReset: [VPCIRow] = [
        VPCIRow("VPCI-22", "a function without FLR, alone in its set: its last close resets the bus (needs_reset) — device RAM written while open is zero after, config restored", image: noFLR) {
            rig in
            rig.model.barMemory(VPCIImage.ramBAR)![8] = 0x77
            rig.close()
            #expect(rig.model.barMemory(VPCIImage.ramBAR)![8] == 0)
            #expect(rig.hw(0x18) == VPCIImage().value(0x18, 4), "BAR2 restored after the bus reset")
        },
        VPCIRow("VPCI-22", "a function with FLR: the function reset at close clears needs_reset, so no bus reset — a vfio-pci neighbour never opened keeps its RAM", image: multifunction, others: pair) {
            rig in
            let other = try #require(rig.machine.devices[neighbour])
            other.barMemory(VPCIImage.ramBAR)![8] = 0x66
            rig.close()
            #expect(other.barMemory(VPCIImage.ramBAR)![8] == 0x66)
            #expect(rig.model.barMemory(VPCIImage.ramBAR)![8] == 0, "its own FLR")
        },
        VPCIRow(
            "VPCI-22", "deferred: closed while a neighbour of its set is open, no reset; the neighbour's last close (FLR, no needs_reset of its own) resets the bus for it",
            image: { VPCIImage(flr: false, multifunction: true) }, others: pair
        ) { rig in
            let closeNeighbour = try rig.openNeighbour(neighbour)
            rig.model.barMemory(VPCIImage.ramBAR)![8] = 0x77
            rig.close()
            #expect(rig.model.barMemory(VPCIImage.ramBAR)![8] == 0x77, "the set's open count was 2")
            closeNeighbour()
            #expect(rig.model.barMemory(VPCIImage.ramBAR)![8] == 0, "the bus reset at the neighbour's close")
        },
        VPCIRow(
            "VPCI-22", "a function of the set not bound to vfio-pci makes it unresettable: no reset at close",
            image: { VPCIImage(flr: false, multifunction: true) }, others: pair
        ) { rig in
            try rig.system.core.unbindDriver(from: neighbour)
            rig.model.barMemory(VPCIImage.ramBAR)![8] = 0x77
            rig.close()
            #expect(rig.model.barMemory(VPCIImage.ramBAR)![8] == 0x77)
        },
    ]
}

extension VPCIRig {
    /// The root port above the rig's function.
    func rootPort() throws -> PCIAddress {
        let topology = try #require(system.devices.topology)
        let index = try #require(topology.index(of: VPCIRig.address))
        return topology.functions[try #require(topology.parentBridge(of: index))].address
    }

    /// `bindVFIOPCI` (sysfs `bind` with driver_override vfio-pci): 0 or the errno.
    func bind(_ address: PCIAddress) -> Int32 { bindResult(address).errno }

    /// `bindVFIOPCI`: 0 or the errno, and the rule a refusal names.
    func bindResult(_ address: PCIAddress) -> (errno: Int32, rule: RuleID?) {
        do throws(VFIOError) {
            try system.bindVFIOPCI(address)
            return (0, nil)
        } catch { return (error.errno.rawValue, error.rule) }
    }

    /// Opening `/dev/vfio/<group>`: 0 (closed again) or the errno.
    func openGroupStatus(_ group: Int) -> Int32 {
        switch path {
        case .swiftAPI:
            do throws(VFIOError) {
                try system.openGroup(group).close()
                return 0
            } catch { return error.errno.rawValue }
        case .uapi:
            let fd = system.open("/dev/vfio/\(group)")
            guard fd >= 0 else { return Glibc.errno }
            _ = system.close(fd)
            return 0
        }
    }

    /// Opens `address` (in the rig's group) through the rig's group and path; returns its close.
    func openNeighbour(_ address: PCIAddress) throws -> () -> Void {
        switch path {
        case .swiftAPI:
            let other = try device!.group.openDevice(address.description)
            return { other.close() }
        case .uapi:
            let fd = address.description.withCString { system.ioctl(fds!.group, clinuxvfio_group_get_device_fd(), UInt(bitPattern: $0)) }
            try #require(fd >= 0)
            return { [system] in _ = system.close(fd) }
        }
    }
}
