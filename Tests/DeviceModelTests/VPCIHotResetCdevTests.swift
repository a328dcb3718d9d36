import DeviceModels
import Glibc
import IOMMU
import Machine
import PCIBus
import Testing
import VFIO

/// `../shared/spec/vfio-pci.md` §6.2–6.3 from a device cdev (v6.6+): GET_PCI_HOT_RESET_INFO
/// reports device IDs under `DEV_ID | DEV_ID_OWNED` (`vfio_pci_fill_devs`,
/// `vfio_iommufd_get_dev_id`), and PCI_HOT_RESET takes an empty fd array, ownership proved by the
/// cdev's iommufd (`vfio_pci_ioctl_pci_hot_reset`, `vfio_pci_dev_set_hot_reset`). Each row closes
/// the rig's group first (a bound cdev excludes the group path) and runs through the Swift API
/// and the raw UAPI; part of `VPCIFeatureIoeventfdTests.rows`.
enum VPCIHotResetCdevRows {
    static let neighbour = PCIAddress(parsing: "0000:5f:00.1")!
    static let devIDFlags = VFIOHotResetDevID.flagDevID | VFIOHotResetDevID.flagDevIDOwned

    static let rows: [VPCIRow] = [
        VPCIRow("VPCI-210", "cdev INFO: flags DEV_ID | DEV_ID_OWNED, one entry whose devid is the DEVICE ID the bind returned") { rig in
            rig.close()
            let cdev = try rig.openCdev()
            defer { cdev.close() }
            #expect(cdev.bind() == 0)
            let info = try cdev.hotResetInfo(room: 2)
            #expect(info.errno == 0)
            if rig.path == .uapi { #expect(info.flags == devIDFlags && info.count == 1) }
            let id = try #require(cdev.deviceID)
            #expect(info.entries.map(\.0) == [VPCIRig.address] && info.entries.map(\.1) == [id])
        },
        VPCIRow(
            "VPCI-212", "cdev INFO: an unbound function whose group the iommufd owns is VFIO_PCI_DEVID_OWNED (0); a second bound one its own DEVICE ID",
            image: { VPCIImage(multifunction: true) }, others: { [(neighbour, VPCIImage(device: 0x5679, multifunction: true))] }
        ) { rig in
            try #require(rig.machine.groupID(of: neighbour) == rig.machine.groupID(of: VPCIRig.address), "both functions share a group here")
            rig.close()
            let cdev = try rig.openCdev()
            defer { cdev.close() }
            #expect(cdev.bind() == 0)
            var info = try cdev.hotResetInfo(room: 2)
            #expect(info.errno == 0 && info.entries.map(\.0) == [VPCIRig.address, neighbour])
            let id = try #require(cdev.deviceID)
            #expect(info.entries.map(\.1) == [id, 0])
            if rig.path == .uapi { #expect(info.flags == devIDFlags) }
            let other = try rig.openCdev(neighbour)
            defer { other.close() }
            #expect(other.bind(sharing: cdev) == 0)
            info = try cdev.hotResetInfo(room: 2)
            let otherID = try #require(other.deviceID)
            #expect(info.entries.map(\.1) == [id, otherID])
        },
        VPCIRow(
            "VPCI-212", "cdev INFO: a function in scope that is no vfio-pci device (driver unbound) is VFIO_PCI_DEVID_NOT_OWNED, which clears DEV_ID_OWNED",
            image: { VPCIImage(multifunction: true) }, others: { [(neighbour, VPCIImage(device: 0x5679, multifunction: true))] }
        ) { rig in
            rig.close()
            try rig.system.core.unbindDriver(from: neighbour)
            let cdev = try rig.openCdev()
            defer { cdev.close() }
            #expect(cdev.bind() == 0)
            let info = try cdev.hotResetInfo(room: 2)
            let id = try #require(cdev.deviceID)
            #expect(info.errno == 0 && info.entries.map(\.1) == [id, 0xffff_ffff])
            if rig.path == .uapi { #expect(info.flags == VFIOHotResetDevID.flagDevID) }
        },
        VPCIRow("VPCI-211", "cdev INFO with no room: ENOSPC, the header's flags 0 (DEV_ID is set only on success) and the count needed") { rig in
            rig.close()
            let cdev = try rig.openCdev()
            defer { cdev.close() }
            #expect(cdev.bind() == 0)
            let info = try cdev.hotResetInfo(room: 0)
            switch rig.path {
            case .swiftAPI: #expect(info.errno == 0 && info.entries.count == 1, "the Swift API returns the whole list")
            case .uapi: #expect(info.errno == ENOSPC && info.flags == 0 && info.count == 1)
            }
        },
        VPCIRow("VPCI-220", "cdev PCI_HOT_RESET with a non-empty fd array is EINVAL (step 3) and resets nothing") { rig in
            rig.close()
            let cdev = try rig.openCdev()
            defer { cdev.close() }
            #expect(cdev.bind() == 0)
            rig.model.barMemory(VPCIImage.ramBAR)![0] = 0x22
            #expect(cdev.hotReset(count: 1) == EINVAL)
            #expect(rig.model.barMemory(VPCIImage.ramBAR)![0] == 0x22)
        },
        VPCIRow("VPCI-222", "cdev PCI_HOT_RESET with an empty array: the function bound to the iommufd is owned, so the bus is reset (device RAM cleared, COMMAND restored)") { rig in
            rig.close()
            let cdev = try rig.openCdev()
            defer { cdev.close() }
            #expect(cdev.bind() == 0)
            let command = rig.model.readConfig(4, width: 2)
            rig.model.barMemory(VPCIImage.ramBAR)![0] = 0x22
            #expect(cdev.hotReset() == 0)
            #expect(rig.model.barMemory(VPCIImage.ramBAR)![0] == 0)
            #expect(rig.model.readConfig(4, width: 2) == command)
        },
        VPCIRow(
            "VPCI-222", "cdev PCI_HOT_RESET: an unbound neighbour whose group the iommufd owns counts as owned — both functions are reset",
            image: { VPCIImage(multifunction: true) }, others: { [(neighbour, VPCIImage(device: 0x5679, multifunction: true))] }
        ) { rig in
            try #require(rig.machine.groupID(of: neighbour) == rig.machine.groupID(of: VPCIRig.address), "both functions share a group here")
            rig.close()
            let cdev = try rig.openCdev()
            defer { cdev.close() }
            #expect(cdev.bind() == 0)
            let other = try #require(rig.machine.devices[neighbour])
            other.barMemory(VPCIImage.ramBAR)![0] = 0x11
            #expect(cdev.hotReset() == 0)
            #expect(other.barMemory(VPCIImage.ramBAR)![0] == 0)
        },
        VPCIRow(
            "VPCI-221", "cdev PCI_HOT_RESET: a function in scope that is no vfio-pci device makes the dev_set unresettable — EINVAL, nothing reset",
            image: { VPCIImage(multifunction: true) }, others: { [(neighbour, VPCIImage(device: 0x5679, multifunction: true))] }
        ) { rig in
            rig.close()
            try rig.system.core.unbindDriver(from: neighbour)
            let cdev = try rig.openCdev()
            defer { cdev.close() }
            #expect(cdev.bind() == 0)
            rig.model.barMemory(VPCIImage.ramBAR)![0] = 0x22
            #expect(cdev.hotReset() == EINVAL)
            #expect(rig.model.barMemory(VPCIImage.ramBAR)![0] == 0x22)
        },
    ]
}
