import CLinuxVFIO
import DeviceModels
import Glibc
import Machine
import KernelRules
import PCIBus
import SystemPackage
import Testing
import VFIO

/// `../shared/spec/vfio-pci.md` §6 — `VFIO_DEVICE_RESET`, hot reset and the PCI core's
/// save-and-restore around a reset (`pci_try_reset_function`, `pci_reset_bus`) — one row per rule
/// and case, each through the Swift API and the raw UAPI.
@Suite("VPCI resets: VFIO_DEVICE_RESET, hot reset, PCI core save/restore (VPCI-200…233)")
struct VPCIResetTests {
    static let neighbour = PCIAddress(parsing: "0000:5f:00.1")!

    static let rows: [VPCIRow] = ioctl + core + bus

    @Test("VPCI reset rows", arguments: rows, VPCIPath.allCases)
    func row(_ row: VPCIRow, _ path: VPCIPath) throws { try row.run(path) }

    static let ioctl: [VPCIRow] = [
        VPCIRow(
            "VPCI-200", "RESET without reset_works (no FLR) is EINVAL, and GET_INFO has no RESET flag",
            image: { VPCIImage(flr: false) }
        ) { rig in
            #expect(rig.deviceFlags() & UInt32(VFIO_DEVICE_FLAGS_RESET) == 0)
            #expect(rig.reset() == EINVAL)
            if rig.path == .swiftAPI { #expect(rig.lastError?.rule == .VPCI_200, "\(String(describing: rig.lastError))") }
        },
        VPCIRow("VPCI-201", "COMMAND with bus master and decode comes back: 0x0007 stays 0x0007 (not 0x0403); the device still does DMA") { rig in
            rig.cfg(4, 2, write: 0x0007)
            #expect(rig.reset() == 0)
            #expect(rig.hw(4, 2) == 0x0007)
            #expect(rig.cfg(4, 2) == 0x0007)
            #expect(rig.model.isBusMasterEnabled)
            #expect(rig.barStatus(0) == 0)
        },
        VPCIRow("VPCI-201", "the device's own state is reset (device RAM zero); the BARs hold the host's addresses") { rig in
            rig.model.barMemory(VPCIImage.ramBAR)![8] = 0x77
            #expect(rig.reset() == 0)
            #expect(rig.model.barMemory(VPCIImage.ramBAR)![8] == 0)
            #expect(rig.hw(0x10) == 0xd000_0000 && rig.hw(0x18) == 0x0000_000c && rig.hw(0x1c) == 0x38)
        },
        VPCIRow("VPCI-201", "MSI-X comes back programmed: enabled, vector unmasked, the device's interrupt reaches the eventfd after the reset") { rig in
            let event = try EventFD()
            #expect(rig.enable(.msix, [event]) == 0)
            #expect(rig.reset() == 0)
            #expect(rig.hw(VPCIImage.msixAt + 2, 2) & 0xc000 == 0x8000)
            #expect(rig.model.raiseInterrupt(vector: 0) == .msix(vector: 0))
            #expect(event.read() == 1)
        },
        VPCIRow("VPCI-201", "MSI comes back programmed: Enable and Multiple Message Enable as vfio-pci set them") { rig in
            let events = try (0..<2).map { _ in try EventFD() }
            #expect(rig.enable(.msi, events) == 0)
            #expect(rig.reset() == 0)
            #expect(rig.hw(VPCIImage.msiAt + 2, 2) & 0x71 == 0x11)
            #expect(rig.model.raiseInterrupt(vector: 1) == .msi(vector: 1))
            #expect(events[1].read() == 1)
        },
        VPCIRow("VPCI-201", "vconfig and INTx masking are untouched: Interrupt Line, the virtual INTx Disable and a sized BAR read as before") { rig in
            rig.cfg(0x3c, 1, write: 0x0b)
            rig.cfg(4, 2, write: 0x0403)
            rig.cfg(0x10, 4, write: 0xffff_ffff)
            #expect(rig.reset() == 0)
            #expect(rig.cfg(0x3c, 1) == 0x0b)
            #expect(rig.cfg(4, 2) == 0x0403)
            #expect(rig.hw(4, 2) & 0x400 != 0, "the device's INTx Disable came back with COMMAND")
            #expect(rig.cfg(0x10) == 0xffff_c000)
        },
    ]

    static let core: [VPCIRow] = [
        VPCIRow("VPCI-231", "pci_save_state/pci_restore_state: cache line size and the PCI Express control registers survive the reset") { rig in
            rig.cfg(0x0c, 1, write: 0x40)
            rig.cfg(VPCIImage.pcie + 0x28, 2, write: 0x0010)
            rig.cfg(VPCIImage.pcie + 8, 2, write: 0x2030)
            #expect(rig.reset() == 0)
            #expect(rig.hw(0x0c, 1) == 0x40)
            #expect(rig.hw(VPCIImage.pcie + 0x28, 2) == 0x0010)
            #expect(rig.hw(VPCIImage.pcie + 8, 2) == 0x2030)
        },
        VPCIRow(
            "VPCI-230", "Initiate FLR on a function whose DEVCAP claims FLR but that has no reset method: pci_try_reset_function is ENOTTY, nothing happens",
            image: {
                var image = VPCIImage(flr: false)
                image.set(VPCIImage.pcie + 4, 4, 0x1000_0002)
                return image
            }
        ) { rig in
            rig.cfg(4, 2, write: 0x0007)
            rig.model.barMemory(VPCIImage.ramBAR)![0] = 0x5a
            rig.cfg(VPCIImage.pcie + 8, 2, write: 0x8000 | rig.cfg(VPCIImage.pcie + 8, 2))
            #expect(rig.model.barMemory(VPCIImage.ramBAR)![0] == 0x5a)
            #expect(rig.hw(4, 2) == 0x0007)
            #expect(rig.reset() == EINVAL, "VPCI-200: reset_works is false")
        },
        VPCIRow("VPCI-232", "the one reset method modelled is FLR (pcie_flr): RESET works exactly when DEVCAP has FLR") { rig in
            #expect(rig.deviceFlags() & UInt32(VFIO_DEVICE_FLAGS_RESET) != 0)
            #expect(rig.reset() == 0)
        },
    ]

    static let bus: [VPCIRow] = [
        VPCIRow(
            "VPCI-233", "pci_reset_bus saves, resets and restores every function on the bus, open or not: both come back as they were",
            image: { VPCIImage(multifunction: true) },
            others: { [(neighbour, VPCIImage(device: 0x5679, multifunction: true))] }
        ) { rig in
            let other = try #require(rig.machine.devices[neighbour])
            other.writeConfig(4, width: 2, 0x0006)
            other.barMemory(VPCIImage.ramBAR)![0] = 0x11
            rig.cfg(4, 2, write: 0x0007)
            rig.model.barMemory(VPCIImage.ramBAR)![0] = 0x22
            #expect(try rig.hotReset(others: [neighbour]) == 0, "\(String(describing: rig.lastError))")
            #expect(other.readConfig(4, width: 2) == 0x0006, "the function no one opened: restored too")
            #expect(other.barMemory(VPCIImage.ramBAR)![0] == 0, "and reset")
            #expect(rig.hw(4, 2) == 0x0007 && rig.model.isBusMasterEnabled)
            #expect(rig.model.barMemory(VPCIImage.ramBAR)![0] == 0)
        },
        VPCIRow(
            "VPCI-223", "an open VFIO member keeps vconfig and its interrupt set-up through a hot reset; its MSI-X is reprogrammed",
            image: { VPCIImage(multifunction: true) },
            others: { [(neighbour, VPCIImage(device: 0x5679, multifunction: true))] }
        ) { rig in
            let event = try EventFD()
            #expect(rig.enable(.msix, [event]) == 0)
            rig.cfg(0x3c, 1, write: 0x0b)
            #expect(try rig.hotReset(others: [neighbour]) == 0, "\(String(describing: rig.lastError))")
            #expect(rig.cfg(0x3c, 1) == 0x0b)
            #expect(rig.model.raiseInterrupt(vector: 0) == .msix(vector: 0))
            #expect(event.read() == 1)
        },
    ]
}
