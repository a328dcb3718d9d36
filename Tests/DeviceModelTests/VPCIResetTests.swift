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
            "VPCI-200", "RESET without reset_works (no FLR, No_Soft_Reset set, a neighbour on the bus so no bus reset) is EINVAL, and GET_INFO has no RESET flag",
            image: { VPCIImage(flr: false, multifunction: true) },
            others: { [(neighbour, VPCIImage(device: 0x5679, multifunction: true))] }
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
            "VPCI-230",
            "Initiate FLR on a function whose DEVCAP claims FLR but that has no reset method (8086:1502, quirk_no_flr; a neighbour rules out the bus): pci_try_reset_function is ENOTTY, nothing happens",
            image: {
                var image = VPCIImage(vendor: 0x8086, device: 0x1502, flr: false, multifunction: true)
                image.set(VPCIImage.pcie + 4, 4, 0x1000_0002)
                return image
            },
            others: { [(neighbour, VPCIImage(device: 0x5679, multifunction: true))] }
        ) { rig in
            rig.cfg(4, 2, write: 0x0007)
            rig.model.barMemory(VPCIImage.ramBAR)![0] = 0x5a
            rig.cfg(VPCIImage.pcie + 8, 2, write: 0x8000 | rig.cfg(VPCIImage.pcie + 8, 2))
            #expect(rig.model.barMemory(VPCIImage.ramBAR)![0] == 0x5a)
            #expect(rig.hw(4, 2) == 0x0007)
            #expect(rig.reset() == EINVAL, "VPCI-200: reset_works is false")
        },
    ] + methods

    /// VPCI-232: each reset method the PCI core probes (`pci_reset_fn_methods`), found from config
    /// space and topology, gives `reset_works` and does the reset; the first that succeeds wins.
    static let methods: [VPCIRow] = [
        VPCIRow("VPCI-232", "flr (pcie_reset_flr): DEVCAP FLR gives reset_works; RESET writes Initiate FLR and the device's RAM is cleared") { rig in
            try expectResetByMethod(rig)
        },
        VPCIRow(
            "VPCI-232", "af_flr (pci_af_flr): no DEVCAP FLR, an AF capability with TP and FLR, a neighbour on the bus: RESET does an AF FLR",
            image: {
                var image = VPCIImage(flr: false, multifunction: true)
                image.chainAfterExpress(0xc0)
                image.capability(0xc0, id: 0x13, next: 0, body: [0x06, 0x03])
                image.set(0xc4, 1, 0, writable: 0x01)
                return image
            },
            others: { [(neighbour, VPCIImage(device: 0x5679, multifunction: true))] }
        ) { rig in
            try expectResetByMethod(rig)
        },
        VPCIRow(
            "VPCI-232", "pm (pci_pm_reset): no FLR, PMCSR No_Soft_Reset clear, a neighbour on the bus: RESET goes D3hot and back to D0, which resets it",
            image: { noSoftResetClear(VPCIImage(flr: false, multifunction: true)) },
            others: { [(neighbour, VPCIImage(device: 0x5679, multifunction: true))] }
        ) { rig in
            try expectResetByMethod(rig)
            #expect(rig.hw(VPCIImage.pm + 4, 2) & 0x3 == 0, "back in D0")
        },
        VPCIRow(
            "VPCI-232", "bus (pci_parent_bus_reset): no FLR, No_Soft_Reset set, alone below its root port: RESET pulses the bridge's secondary bus reset",
            image: { VPCIImage(flr: false) }
        ) { rig in
            try expectResetByMethod(rig)
        },
        VPCIRow(
            "VPCI-232", "no pm method under quirk_no_pm_reset (ATI VGA off the root bus, 1002:*, class 0300): No_Soft_Reset clear but RESET is EINVAL",
            image: {
                var image = noSoftResetClear(VPCIImage(vendor: 0x1002, device: 0x1234, flr: false, multifunction: true))
                image.set(0x08, 4, 0x0300_0000)
                return image
            },
            others: { [(neighbour, VPCIImage(device: 0x5679, multifunction: true))] }
        ) { rig in
            #expect(rig.deviceFlags() & UInt32(VFIO_DEVICE_FLAGS_RESET) == 0)
            #expect(rig.reset() == EINVAL)
        },
        VPCIRow(
            "VPCI-232",
            "order: flr before pm, and the first method answering 0 wins — DEVCAP claims FLR the device ignores, PM could reset it: RESET succeeds, the RAM survives",
            image: {
                var image = noSoftResetClear(VPCIImage(flr: false, multifunction: true))
                image.set(VPCIImage.pcie + 4, 4, 0x1000_0002)
                return image
            },
            others: { [(neighbour, VPCIImage(device: 0x5679, multifunction: true))] }
        ) { rig in
            #expect(rig.deviceFlags() & UInt32(VFIO_DEVICE_FLAGS_RESET) != 0)
            rig.model.barMemory(VPCIImage.ramBAR)![8] = 0x77
            #expect(rig.reset() == 0)
            #expect(rig.model.barMemory(VPCIImage.ramBAR)![8] == 0x77, "pcie_flr answered 0, so pci_pm_reset never ran")
        },
    ]

    /// PMCSR with No_Soft_Reset clear (D0, state bits and PME Enable writable, PME Status RW1C).
    static func noSoftResetClear(_ image: VPCIImage) -> VPCIImage {
        var image = image
        image.set(VPCIImage.pm + 4, 4, 0, writable: 0x0000_0103, rw1c: 0x8000)
        return image
    }

    /// RESET is offered and works: the device's RAM is cleared, COMMAND (bus master and decode)
    /// comes back as it was.
    static func expectResetByMethod(_ rig: VPCIRig) throws {
        #expect(rig.deviceFlags() & UInt32(VFIO_DEVICE_FLAGS_RESET) != 0)
        rig.cfg(4, 2, write: 0x0007)
        rig.model.barMemory(VPCIImage.ramBAR)![8] = 0x77
        #expect(rig.reset() == 0, "\(String(describing: rig.lastError))")
        #expect(rig.model.barMemory(VPCIImage.ramBAR)![8] == 0, "the method reset the device")
        #expect(rig.hw(4, 2) == 0x0007)
    }

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
