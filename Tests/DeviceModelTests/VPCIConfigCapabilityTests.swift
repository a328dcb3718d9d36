import CLinuxVFIO
import DeviceModels
import Glibc
import Machine
import PCIBus
import SystemPackage
import Testing
import VFIO

/// `../shared/spec/vfio-pci.md` §4.1 (chain building) and §4.3–4.4 — the capability map, each
/// capability's permissions and handlers — one row per rule and case, each through the Swift API
/// and the raw UAPI.
@Suite("VPCI config space: capabilities (VPCI-115, 130–143)")
struct VPCIConfigCapabilityTests {
    static let rows: [VPCIRow] = chains + standard + express + extended

    @Test("VPCI capability rows", arguments: rows, VPCIPath.allCases)
    func row(_ row: VPCIRow, _ path: VPCIPath) throws { try row.run(path) }

    /// The capability offsets the user sees, walking `next` from 0x34.
    static func chain(_ rig: VPCIRig) -> [Int] {
        var offsets: [Int] = []
        var at = Int(rig.cfg(0x34, 1))
        while at != 0 && offsets.count < 48 {
            offsets.append(at)
            at = Int(rig.cfg(at + 1, 1))
        }
        return offsets
    }

    /// An image whose extended space holds `headers` (offset, id, next) after a PCI Express capability.
    static func withExtended(_ headers: [(Int, UInt16, Int)], _ edit: @escaping @Sendable (inout VPCIImage) -> Void = { _ in }) -> @Sendable () -> VPCIImage {
        {
            var image = VPCIImage()
            for (offset, id, next) in headers { image.extended(offset, id: id, next: next) }
            edit(&image)
            return image
        }
    }

    // MARK: VPCI-115 chains

    static let chains: [VPCIRow] = [
        VPCIRow(
            "VPCI-115", "hidden standard capabilities (EA, NULL id 0, unknown 0x20, SHPC) are linked past; the visible ones keep their place",
            image: {
                var image = VPCIImage()
                image.chainAfterExpress(0xc0)
                image.capability(0xc0, id: 0x14, next: 0xc8)  // Enhanced Allocation: hidden
                image.capability(0xc8, id: 0x00, next: 0xd0)  // NULL: hidden
                image.capability(0xd0, id: 0x09, next: 0xd8, body: [8])  // vendor specific, 8 bytes
                image.capability(0xd8, id: 0x20, next: 0xe0)  // unknown: hidden
                image.capability(0xe0, id: 0x0c, next: 0)  // SHPC: hidden
                return image
            }
        ) { rig in
            #expect(chain(rig) == [0x40, 0x50, 0x70, 0x80, 0xd0])
            #expect(rig.hw(VPCIImage.pcie + 1, 1) == 0xc0 && rig.hw(0xd1, 1) == 0xd8, "the device's own pointers unchanged")
        },
        VPCIRow(
            "VPCI-115", "no visible capability: STATUS.CAP_LIST reads clear and 0x34 reads 0; extended space is then raw",
            image: {
                var image = VPCIImage()
                image.bytes[0x34] = 0xc0
                image.capability(0xc0, id: 0x14, next: 0xc8)
                image.capability(0xc8, id: 0x0c, next: 0)
                image.extended(0x100, id: 0x01, next: 0)
                return image
            }
        ) { rig in
            #expect(rig.cfg(0x06, 2) & 0x10 == 0)
            #expect(rig.cfg(0x34, 1) == 0)
            #expect(rig.hw(0x06, 2) & 0x10 != 0)
            #expect(rig.cfg(0x100) == 0x0001_0001, "no PCI Express capability in the chain: no ecap walk")
        },
        VPCIRow(
            "VPCI-115", "extended chain: a hidden first ecap stays as a placeholder (id 0, version 0, its next); a hidden later one is unlinked",
            image: withExtended([(0x100, 0x1e, 0x140), (0x140, 0x01, 0x180), (0x180, 0x1f, 0x1c0), (0x1c0, 0x03, 0)])
        ) { rig in
            #expect(rig.cfg(0x100) == 0x140 << 20, "L1SS hidden at 0x100")
            #expect(rig.cfg(0x140) == 0x0001_0001 | 0x1c0 << 20, "AER now points past the hidden PTM")
            #expect(rig.cfg(0x1c0) == 0x0001_0003)
            #expect(rig.cfg(0x180) == rig.hw(0x180), "the unlinked PTM's bytes are raw")
            #expect(rig.hw(0x140) == 0x0001_0001 | 0x180 << 20)
        },
        VPCIRow(
            "VPCI-115", "no visible extended capability: dword 0x100 reads 0",
            image: withExtended([(0x100, 0x1e, 0x140), (0x140, 0x1f, 0)])
        ) { rig in
            #expect(rig.cfg(0x100) == 0)
            #expect(rig.hw(0x100) != 0)
        },
    ]

    // MARK: §4.3 standard capabilities

    static let standard: [VPCIRow] = [
        VPCIRow("VPCI-130", "PM: PME_Support reads 0; PME_En and PME_Status are virtual and not writable; the write's read-modify-write clears the device's PME_Status") { rig in
            let pm = VPCIImage.pm
            #expect(rig.hw(pm + 2, 2) == 0xfe03)
            #expect(rig.cfg(pm + 2, 2) == 0x0603)
            rig.model.reportConfigStatus(pm + 4, width: 2, 0x8000)
            #expect(rig.cfg(pm + 4, 2) == 0x0008, "PME_Status virtual: 0")
            rig.cfg(pm + 4, 2, write: 0x0100)
            #expect(rig.cfg(pm + 4, 2) == 0x0008, "PME_En stays 0")
            #expect(rig.hw(pm + 4, 2) == 0x0008, "PME_En never reaches the device; the read-modify-write writes PME_Status back, clearing it")
        },
        VPCIRow("VPCI-131", "PM: PMCSR state 3 puts the function in D3hot (BAR access EIO, VPCI-92); state 0 brings it back") { rig in
            let pmcsr = VPCIImage.pm + 4
            rig.cfg(pmcsr, 2, write: 0x0003)
            #expect(rig.hw(pmcsr, 2) & 3 == 3)
            #expect(rig.cfg(pmcsr, 2) & 3 == 3, "the state bits read the device")
            #expect(rig.barStatus(0) == EIO)
            rig.cfg(pmcsr, 2, write: 0x0000)
            #expect(rig.hw(pmcsr, 2) & 3 == 0)
            #expect(rig.barStatus(0) == 0)
        },
        VPCIRow("VPCI-131", "PM: a write not starting at PMCSR changes no power state") { rig in
            rig.cfg(VPCIImage.pm + 5, 1, write: 0x00)
            rig.cfg(VPCIImage.pm + 4, 1, write: 0x02)
            #expect(rig.hw(VPCIImage.pm + 4, 2) & 3 == 2, "D2 (PMC advertises it)")
            rig.cfg(VPCIImage.pm + 4, 1, write: 0x01)
            #expect(rig.hw(VPCIImage.pm + 4, 2) & 3 == 2, "D2 to D1 is not a valid transition (pci_set_power_state EINVAL, ignored)")
        },
        VPCIRow("VPCI-132", "MSI: Message Control's low byte is virtual — Multiple Message Capable reads what the device had at open, not msi_qmax") { rig in
            #expect(rig.cfg(VPCIImage.msiAt + 2, 2) == 0x0084)
        },
        VPCIRow("VPCI-132", "MSI: Enable written while MSI is not the active index reads back 0; the flags reach the device") { rig in
            rig.cfg(VPCIImage.msiAt + 2, 1, write: 0x81)
            #expect(rig.cfg(VPCIImage.msiAt + 2, 2) == 0x0080)
            #expect(rig.hw(VPCIImage.msiAt + 2, 2) == 0x0084, "written to the device, whose MMC and 64-bit bits are read-only")
        },
        VPCIRow("VPCI-132", "MSI: enabled through SET_IRQS, the virtual Enable still reads what the user wrote (0x84, not 0x85) until the user writes it") { rig in
            let event = try EventFD()
            #expect(rig.enable(.msi, [event]) == 0)
            #expect(rig.cfg(VPCIImage.msiAt + 2, 1) == 0x84)
            #expect(rig.hw(VPCIImage.msiAt + 2, 1) & 1 == 1)
            rig.cfg(VPCIImage.msiAt + 2, 1, write: 0x85)
            #expect(rig.cfg(VPCIImage.msiAt + 2, 1) == 0x85)
            #expect(rig.hw(VPCIImage.msiAt + 2, 2) == 0x0085)
        },
        VPCIRow("VPCI-132", "MSI: Multiple Message Enable is clamped to msi_qmax — 0 before any enable, 1 after enabling 2 vectors") { rig in
            let flags = VPCIImage.msiAt + 2
            rig.cfg(flags, 1, write: 0xa4)
            #expect(rig.cfg(flags, 1) & 0x70 == 0)
            let events = try (0..<2).map { _ in try EventFD() }
            #expect(rig.enable(.msi, events) == 0)
            rig.cfg(flags, 1, write: 0xa5)
            #expect(rig.cfg(flags, 1) == 0x95)
            #expect(rig.hw(flags, 2) & 0x71 == 0x11)
        },
        VPCIRow("VPCI-132", "MSI (source): a write that merely reaches Message Control's start — ID and next — still writes the flags back to the device") { rig in
            let flags = VPCIImage.msiAt + 2
            rig.model.writeConfig(flags, width: 2, 0x0001)  // MSI Enable set behind vfio-pci's back
            #expect(rig.hw(flags, 2) & 1 == 1)
            rig.cfg(VPCIImage.msiAt, 2, write: 0xffff)
            #expect(rig.hw(flags, 2) == 0x0084, "vfio_msi_config_write: offset + count >= PCI_MSI_FLAGS")
            #expect(rig.cfg(VPCIImage.msiAt, 2) == 0x7005, "ID and next untouched")
        },
        VPCIRow("VPCI-132", "MSI: address and data are virtual, never written to the device") { rig in
            rig.cfg(VPCIImage.msiAt + 4, 4, write: 0xfee0_0000)
            rig.cfg(VPCIImage.msiAt + 12, 2, write: 0x4041)
            #expect(rig.cfg(VPCIImage.msiAt + 4) == 0xfee0_0000 && rig.cfg(VPCIImage.msiAt + 12, 2) == 0x4041)
            #expect(rig.hw(VPCIImage.msiAt + 4) == 0 && rig.hw(VPCIImage.msiAt + 12, 2) == 0)
        },
        VPCIRow("VPCI-133", "MSI-X: enabled and disabled only through SET_IRQS; Message Control reads the device") { rig in
            let control = VPCIImage.msixAt + 2
            rig.cfg(control, 2, write: 0xc000)
            #expect(rig.hw(control, 2) & 0xc000 == 0)
            let event = try EventFD()
            #expect(rig.enable(.msix, [event]) == 0)
            #expect(rig.cfg(control, 2) & 0x8000 != 0)
            rig.cfg(control, 2, write: 0)
            #expect(rig.hw(control, 2) & 0x8000 != 0)
        },
        VPCIRow(
            "VPCI-136", "VPD: address and data are virtual; a read request the device completes fills the data and toggles F",
            image: vpdImage(flagReadsAs: 1)
        ) { rig in
            rig.cfg(0xc4, 4, write: 0)
            rig.cfg(0xc2, 2, write: 0x0010)
            #expect(rig.cfg(0xc4) == 0x1234_5678)
            #expect(rig.cfg(0xc2, 2) == 0x8010, "F toggled: done")
            #expect(rig.hw(0xc2, 2) == 0x8010, "the device got the address")
        },
        VPCIRow(
            "VPCI-136", "VPD: a write request the device never completes leaves F as written (no toggle) and the data virtual",
            image: vpdImage(flagReadsAs: 1)
        ) { rig in
            rig.cfg(0xc4, 4, write: 0xdead_beef)
            rig.cfg(0xc2, 2, write: 0x8020)
            #expect(rig.cfg(0xc2, 2) == 0x8020)
            #expect(rig.cfg(0xc4) == 0xdead_beef)
        },
        VPCIRow(
            "VPCI-136", "VPD: a read request the device never completes leaves F clear",
            image: vpdImage(flagReadsAs: 0)
        ) { rig in
            rig.cfg(0xc2, 2, write: 0x0010)
            #expect(rig.cfg(0xc2, 2) == 0x0010)
            #expect(rig.cfg(0xc4) == 0x1234_5678, "the data register still holds what vconfig had at open")
        },
        VPCIRow(
            "VPCI-137", "vendor-specific: writes go raw to the device, ID and next bytes included; reads of ID and next come from vconfig",
            image: {
                var image = VPCIImage()
                image.chainAfterExpress(0xc0)
                image.capability(0xc0, id: 0x09, next: 0, body: [8])
                image.set(0xc0, 4, image.value(0xc0, 4), writable: 0xffff_ffff)
                image.set(0xc4, 4, 0, writable: 0xffff_ffff)
                return image
            }
        ) { rig in
            rig.cfg(0xc0, 4, write: 0x1122_3344)
            rig.cfg(0xc4, 4, write: 0x5566_7788)
            #expect(rig.hw(0xc0) == 0x1122_3344 && rig.hw(0xc4) == 0x5566_7788)
            #expect(rig.cfg(0xc0) == 0x1122_0009, "ID and next from vconfig, the rest from the device")
            #expect(rig.cfg(0xc4) == 0x5566_7788)
        },
        VPCIRow(
            "VPCI-130", "AGP and PCI-X (v0): AGP read-only (12 bytes); PCI-X command to the device, 8 bytes",
            image: {
                var image = VPCIImage()
                image.chainAfterExpress(0xc0)
                image.capability(0xc0, id: 0x02, next: 0xd0)  // AGP
                image.set(0xc4, 4, 0, writable: 0xffff_ffff)
                image.capability(0xd0, id: 0x07, next: 0)  // PCI-X, version 0
                image.set(0xd2, 2, 0, writable: 0x0fff)
                image.set(0xd4, 4, 0, writable: 0xffff_ffff)
                image.set(0xd8, 4, 0, writable: 0xffff_ffff)
                return image
            }
        ) { rig in
            rig.cfg(0xc4, 4, write: 0xffff_ffff)
            #expect(rig.hw(0xc4) == 0, "AGP: direct, read-only")
            rig.cfg(0xd2, 2, write: 0x0003)
            #expect(rig.hw(0xd2, 2) == 0x0003, "PCI-X command")
            rig.cfg(0xd4, 4, write: 0xffff_ffff)
            #expect(rig.hw(0xd4) == 0, "PCI-X status read-only")
            rig.cfg(0xd8, 4, write: 0x1234)
            #expect(rig.hw(0xd8) == 0x1234, "past a v0 capability's 8 bytes: unassigned, raw")
        },
        VPCIRow(
            "VPCI-135", "Advanced Features FLR (TP and FLR): a saved-and-restored reset; the bit reads 0; COMMAND as before",
            image: afImage(capability: 0x03)
        ) { rig in
            rig.cfg(4, 2, write: 0x0007)
            rig.model.barMemory(VPCIImage.ramBAR)![0] = 0x5a
            rig.cfg(0xc4, 1, write: 0x01)
            #expect(rig.model.barMemory(VPCIImage.ramBAR)![0] == 0, "the function was reset")
            #expect(rig.cfg(0xc4, 1) == 0)
            #expect(rig.hw(4, 2) == 0x0007 && rig.cfg(4, 2) == 0x0007)
        },
        VPCIRow(
            "VPCI-135", "Advanced Features without TP: Initiate FLR does nothing but read back 0",
            image: afImage(capability: 0x02)
        ) { rig in
            rig.model.barMemory(VPCIImage.ramBAR)![0] = 0x5a
            rig.cfg(0xc4, 1, write: 0x01)
            #expect(rig.model.barMemory(VPCIImage.ramBAR)![0] == 0x5a)
            #expect(rig.cfg(0xc4, 1) == 0)
        },
    ]

    static func vpdImage(flagReadsAs flag: UInt32) -> @Sendable () -> VPCIImage {
        {
            var image = VPCIImage()
            image.chainAfterExpress(0xc0)
            image.capability(0xc0, id: 0x03, next: 0)
            image.set(0xc2, 2, flag << 15, writable: 0x7fff)  // F fixed: a device that completes reads, never writes
            image.set(0xc4, 4, 0x1234_5678)
            return image
        }
    }

    static func afImage(capability: UInt8) -> @Sendable () -> VPCIImage {
        {
            var image = VPCIImage(flr: false)
            image.flr = true  // a reset method exists (AF FLR); DEVCAP has no FLR
            image.chainAfterExpress(0xc0)
            image.capability(0xc0, id: 0x13, next: 0, body: [0x06, capability])
            image.set(0xc4, 1, 0, writable: 0x01)
            return image
        }
    }

    // MARK: §4.3 PCI Express

    static let express: [VPCIRow] = [
        VPCIRow("VPCI-134", "DEVCTL: Phantom Functions not writable, Max_Payload_Size virtual, error-reporting enables and Relaxed Ordering to the device") { rig in
            let control = VPCIImage.pcie + 8
            rig.cfg(control, 2, write: 0x0200 | 0x00a0 | 0x2000)
            #expect(rig.hw(control, 2) == 0x2020, "MPS and phantom kept, enables and RO cleared in the device")
            #expect(rig.cfg(control, 2) == 0x20a0, "MPS reads what the user wrote")
            rig.cfg(control, 2, write: 0x201f)
            #expect(rig.hw(control, 2) == 0x203f)
        },
        VPCIRow("VPCI-134", "DEVCTL: a changed Max_Read_Request_Size goes to the device, no lower than its Max_Payload_Size (pcie_set_readrq)") { rig in
            let control = VPCIImage.pcie + 8
            rig.cfg(control, 2, write: 0x003f)
            #expect(rig.cfg(control, 2) & 0x7000 == 0)
            #expect(rig.hw(control, 2) & 0x7000 == 0x1000, "128 raised to the device's MPS of 256")
            rig.cfg(control, 2, write: 0x503f)
            #expect(rig.hw(control, 2) & 0x7000 == 0x5000)
            rig.cfg(control, 2, write: 0x703f)
            #expect(rig.hw(control, 2) & 0x7000 == 0x5000, "a reserved encoding (16 KiB) is refused by pcie_set_readrq")
            #expect(rig.cfg(control, 2) & 0x7000 == 0x7000)
        },
        VPCIRow("VPCI-134", "DEVCTL2 is writable except ARI Forwarding; LNKCTL, DEVCAP and the rest read-only") { rig in
            rig.cfg(VPCIImage.pcie + 0x28, 2, write: 0xffff)
            #expect(rig.hw(VPCIImage.pcie + 0x28, 2) == 0xffdf)
            rig.cfg(VPCIImage.pcie + 0x10, 2, write: 0)
            #expect(rig.hw(VPCIImage.pcie + 0x10, 2) == 0x0040)
            rig.cfg(VPCIImage.pcie + 0x04, 4, write: 0)
            #expect(rig.cfg(VPCIImage.pcie + 0x04) == 0x1000_0002)
        },
        VPCIRow("VPCI-134", "DEVSTA: a 2-byte write is dropped; a 4-byte write at DEVCTL writes DEVSTA back and clears its RW1C bits (source)") { rig in
            let status = VPCIImage.pcie + 0x0a
            rig.model.reportConfigStatus(status, width: 2, 0x0004)
            rig.cfg(status, 2, write: 0x000f)
            #expect(rig.hw(status, 2) == 0x0004)
            rig.cfg(VPCIImage.pcie + 8, 4, write: rig.cfg(VPCIImage.pcie + 8, 2))
            #expect(rig.hw(status, 2) == 0)
        },
        VPCIRow(
            "VPCI-130", "PCI Express v2 endpoint: 0x34 bytes exposed; the byte after is unassigned and raw",
            image: {
                var image = VPCIImage()
                image.set(VPCIImage.pcie + 0x30, 4, 0, writable: 0xffff_ffff)
                image.set(VPCIImage.pcie + 0x34, 4, 0, writable: 0xffff_ffff)
                return image
            }
        ) { rig in
            rig.cfg(VPCIImage.pcie + 0x30, 4, write: 0xffff_ffff)
            rig.cfg(VPCIImage.pcie + 0x34, 4, write: 0xffff_ffff)
            #expect(rig.hw(VPCIImage.pcie + 0x30) == 0)
            #expect(rig.hw(VPCIImage.pcie + 0x34) == 0xffff_ffff)
        },
        VPCIRow(
            "VPCI-130", "PCI Express v2 root-complex integrated endpoint: 0x2c bytes, the rest unassigned",
            image: {
                var image = VPCIImage()
                image.set(VPCIImage.pcie + 2, 2, 0x0092)  // v2, RC integrated endpoint
                image.set(VPCIImage.pcie + 0x2c, 4, 0, writable: 0xffff_ffff)
                return image
            }
        ) { rig in
            rig.cfg(VPCIImage.pcie + 0x2c, 4, write: 0x1234)
            #expect(rig.hw(VPCIImage.pcie + 0x2c) == 0x1234)
        },
        VPCIRow(
            "VPCI-135", "Initiate FLR with DEVCAP FLR: a saved-and-restored reset — device state reset, COMMAND 0x0007 kept, BARs still decode; FLR reads 0"
        ) { rig in
            rig.cfg(4, 2, write: 0x0007)
            rig.model.barMemory(VPCIImage.ramBAR)![0] = 0x5a
            rig.cfg(VPCIImage.pcie + 8, 2, write: 0x8000 | rig.cfg(VPCIImage.pcie + 8, 2))
            #expect(rig.model.barMemory(VPCIImage.ramBAR)![0] == 0, "reset")
            #expect(rig.hw(4, 2) == 0x0007 && rig.model.isBusMasterEnabled)
            #expect(rig.cfg(VPCIImage.pcie + 8, 2) & 0x8000 == 0)
            #expect(rig.barStatus(0) == 0)
        },
        VPCIRow(
            "VPCI-135", "Initiate FLR without DEVCAP FLR does nothing but read back 0",
            image: { VPCIImage(flr: false) }
        ) { rig in
            rig.model.barMemory(VPCIImage.ramBAR)![0] = 0x5a
            rig.cfg(VPCIImage.pcie + 8, 2, write: 0x8000)
            #expect(rig.model.barMemory(VPCIImage.ramBAR)![0] == 0x5a)
            #expect(rig.cfg(VPCIImage.pcie + 8, 2) & 0x8000 == 0)
        },
    ]

    // MARK: §4.4 extended capabilities

    static let extended: [VPCIRow] = [
        VPCIRow(
            "VPCI-141", "AER: the header is virtual and read-only; status, mask and severity take only the listed bits; ECRC enables",
            image: withExtended([(0x100, 0x01, 0)]) { image in
                for register in [0x104, 0x108, 0x10c, 0x110, 0x114, 0x118, 0x11c] { image.set(register, 4, 0, writable: 0xffff_ffff) }
                image.set(0x100, 4, image.value(0x100, 4), writable: 0xffff_ffff)
            }
        ) { rig in
            rig.cfg(0x100, 4, write: 0)
            #expect(rig.hw(0x100) == 0x0001_0001 && rig.cfg(0x100) == 0x0001_0001)
            for register in [0x104, 0x108, 0x10c, 0x110, 0x114, 0x118, 0x11c] { rig.cfg(register, 4, write: 0xffff_ffff) }
            #expect(rig.hw(0x108) == 0x03ff_f031 && rig.hw(0x10c) == 0x03ff_f031)
            #expect(rig.hw(0x114) == 0x0000_f1c1)
            #expect(rig.hw(0x118) == 0x0000_0140)
            #expect(rig.hw(0x11c) == 0, "header log: read-only")
        },
        VPCIRow(
            "VPCI-140", "Power Budgeting: the byte at PCI_PWR_DATA (+8) is writable, the Data Select byte (+4) is not (source over spec)",
            image: withExtended([(0x100, 0x04, 0)]) { image in
                image.set(0x104, 4, 0, writable: 0xffff_ffff)
                image.set(0x108, 4, 0, writable: 0xffff_ffff)
            }
        ) { rig in
            rig.cfg(0x104, 1, write: 0x05)
            rig.cfg(0x108, 4, write: 0xffff_ffff)
            #expect(rig.hw(0x104) == 0)
            #expect(rig.hw(0x108) == 0xff)
        },
        VPCIRow(
            "VPCI-140", "DSN, ACS (8 bytes), ARI and SR-IOV are read-only; bytes after ACS's 8 are unassigned",
            image: withExtended([(0x100, 0x03, 0x110), (0x110, 0x0d, 0x120), (0x120, 0x0e, 0x130), (0x130, 0x10, 0)]) { image in
                for register in [0x104, 0x114, 0x118, 0x124, 0x138] { image.set(register, 4, 0, writable: 0xffff_ffff) }
            }
        ) { rig in
            for register in [0x104, 0x114, 0x118, 0x124, 0x138] { rig.cfg(register, 4, write: 0xffff_ffff) }
            #expect(rig.hw(0x104) == 0 && rig.hw(0x114) == 0 && rig.hw(0x124) == 0 && rig.hw(0x138) == 0)
            #expect(rig.hw(0x118) == 0xffff_ffff, "ACS without egress control is 8 bytes")
        },
        VPCIRow(
            "VPCI-142", "a first ecap with an id past PCI_EXT_CAP_ID_MAX: placeholder reads id 0, version 0 and its next; writes dropped",
            image: withExtended([(0x100, 0x40, 0x140), (0x140, 0x03, 0)]) { image in
                image.set(0x100, 4, image.value(0x100, 4), writable: 0xffff_ffff)
            }
        ) { rig in
            #expect(rig.cfg(0x100) == 0x140 << 20)
            rig.cfg(0x100, 4, write: 0)
            #expect(rig.hw(0x100) == 0x0001_0040 | 0x140 << 20)
        },
        VPCIRow(
            "VPCI-143", "VSEC and DVSEC: sized from their headers and written raw, headers included; header reads from vconfig",
            image: withExtended([(0x100, 0x0b, 0x140), (0x140, 0x23, 0)]) { image in
                image.set(0x104, 4, 0x010 << 20, writable: 0x000f_ffff)  // VSEC length 16
                image.set(0x108, 4, 0, writable: 0xffff_ffff)
                image.set(0x144, 4, 0x00c << 20, writable: 0x000f_ffff)  // DVSEC length 12
                image.set(0x148, 4, 0, writable: 0xffff_ffff)
                image.set(0x140, 4, image.value(0x140, 4), writable: 0xffff_ffff)
            }
        ) { rig in
            rig.cfg(0x108, 4, write: 0x1111_2222)
            rig.cfg(0x148, 4, write: 0x3333_4444)
            #expect(rig.hw(0x108) == 0x1111_2222 && rig.hw(0x148) == 0x3333_4444)
            rig.cfg(0x140, 4, write: 0)
            #expect(rig.hw(0x140) == 0, "the header written raw too")
            #expect(rig.cfg(0x140) == 0x0001_0023, "but read from vconfig")
        },
    ]
}
