import CLinuxVFIO
import DeviceModels
import Glibc
import Machine
import PCIBus
import SystemPackage
import Testing
import VFIO

/// `../shared/spec/vfio-pci.md` §1.2–1.3, §3.2 and §4.1–4.2 — first open, last close, the config
/// region's bounds and chunks, vconfig and the basic header's permissions — one row per rule and
/// case, each run through the Swift API and through the raw UAPI (`VPCIPath`).
@Suite("VPCI config space: open/close, chunks, basic header (VPCI-10…21, 80–82, 110–124)")
struct VPCIConfigHeaderTests {
    static let rows: [VPCIRow] = open + chunks + model + header + command

    @Test("VPCI config header rows", arguments: rows, VPCIPath.allCases)
    func row(_ row: VPCIRow, _ path: VPCIPath) throws { try row.run(path) }

    // MARK: §1.2, §1.3 first open and last close

    static let open: [VPCIRow] = [
        VPCIRow(
            "VPCI-10", "first open: bus master cleared, pci_enable_device turns decode on, INTx Disable cleared (0x0405 → 0x0003)",
            image: {
                var image = VPCIImage()
                image.set(4, 2, 0x0405, writable: 0x0547)
                return image
            }
        ) { rig in
            #expect(rig.hw(4, 2) == 0x0003, "bus master off, memory and I/O decode on, DisINTx clear")
            #expect(rig.cfg(4, 2) == 0x0003)
        },
        VPCIRow("VPCI-11", "every first open resets the function (reset_works): device RAM written while closed is zero again") { rig in
            rig.close()
            rig.model.barMemory(VPCIImage.ramBAR)![0] = 0x5a
            try rig.open()
            #expect(rig.model.barMemory(VPCIImage.ramBAR)![0] == 0)
            #expect(rig.deviceFlags() & UInt32(VFIO_DEVICE_FLAGS_RESET) != 0, "VPCI-31: RESET reflects reset_works")
        },
        VPCIRow("VPCI-12", "the state saved at open has bus master clear: after the last close COMMAND is decode only, again") { rig in
            rig.cfg(4, 2, write: 0x0007)
            #expect(rig.model.isBusMasterEnabled)
            rig.close()
            #expect(rig.hw(4, 2) == 0x0003)
            #expect(!rig.model.isBusMasterEnabled)
        },
        VPCIRow("VPCI-13", "PCI 2.3 function: the device's INTx Disable is cleared at open and kept virtual") { rig in
            #expect(rig.hw(4, 2) & 0x400 == 0)
            #expect(rig.cfg(4, 2) & 0x400 == 0)
        },
        VPCIRow(
            "VPCI-13", "nointx function (Intel 0x1572): INTx Disable held set in the device, the pin hidden, INTx count 0",
            image: { VPCIImage(vendor: 0x8086, device: 0x1572) }
        ) { rig in
            #expect(rig.hw(4, 2) & 0x400 != 0)
            #expect(rig.cfg(0x3d, 1) == 0, "VPCI-124")
            #expect(rig.irqCount(.intx) == 0, "VPCI-151: INTx count from the virtual pin")
        },
        VPCIRow("VPCI-14", "vconfig is rebuilt at every first open: a virtual Interrupt Line is gone after close and reopen") { rig in
            rig.cfg(0x3c, 1, write: 0x0b)
            #expect(rig.cfg(0x3c, 1) == 0x0b)
            rig.close()
            try rig.open()
            #expect(rig.cfg(0x3c, 1) == 0)
        },
        VPCIRow("VPCI-20", "last close: the saved state restored after a reset — cache line size back, bus master off, INTx masking cleared") { rig in
            rig.cfg(0x0c, 1, write: 0x40)
            rig.cfg(4, 2, write: 0x0407)
            #expect(rig.hw(0x0c, 1) == 0x40 && rig.hw(4, 2) & 0x400 != 0)
            rig.close()
            #expect(rig.hw(0x0c, 1) == 0)
            #expect(rig.hw(4, 2) == 0x0003)
            try rig.open()
            #expect(rig.cfg(4, 2) & 0x400 == 0, "virq_disabled was cleared at close")
        },
        VPCIRow("VPCI-21", "msi_qmax outlives close: MSI enabled with 2 vectors, closed, reopened — Multiple Message Enable 4 clamps to 2") { rig in
            let events = try (0..<2).map { _ in try EventFD() }
            #expect(rig.enable(.msi, events) == 0)
            #expect(rig.irq(VFIO_IRQ_SET_ACTION_TRIGGER, .msi, count: 0) == 0)
            rig.close()
            try rig.open()
            rig.cfg(VPCIImage.msiAt + 2, 1, write: 0x84 | 0x20)
            #expect(rig.cfg(VPCIImage.msiAt + 2, 1) & 0x70 == 0x10)
            #expect(rig.hw(VPCIImage.msiAt + 2, 2) & 0x70 == 0x10)
        },
    ]

    // MARK: §3.2 bounds and chunks

    static let chunks: [VPCIRow] = [
        VPCIRow("VPCI-80", "an access past cfg_size is EFAULT with nothing transferred; the last dword reads") { rig in
            #expect(rig.read(.config, 4095, 2) == .failure(.badAddress))
            #expect(rig.read(.config, 4096, 1) == .failure(.badAddress))
            #expect(rig.write(.config, 4094, [0, 0, 0, 0]) == EFAULT)
            #expect(rig.cfg(4092) == 0)
        },
        VPCIRow(
            "VPCI-81", "a dword write over a 32-bit MSI capability's end: 2 bytes of virtual data, then 2 raw bytes to the device",
            image: {
                var image = VPCIImage()
                image.set(VPCIImage.msiAt + 2, 2, 0x0004, writable: 0x0071)  // 32-bit, 4 vectors: 10 bytes
                image.set(VPCIImage.msiAt + 8, 4, 0, writable: 0xffff_ffff)
                return image
            }
        ) { rig in
            let at = VPCIImage.msiAt + 8
            rig.cfg(at, 4, write: 0xaabb_ccdd)
            #expect(rig.hw(at, 2) == 0, "MSI data is virtual")
            #expect(rig.hw(at + 2, 2) == 0xaabb, "the byte after the capability is unassigned: raw")
            #expect(rig.cfg(at, 4) == 0xaabb_ccdd)
        },
        VPCIRow("VPCI-81", "a 3-byte write at 0x3c: Interrupt Line and Pin as one word chunk, Min_Gnt as a byte; each by its permissions") { rig in
            #expect(rig.write(.config, 0x3c, [0x0b, 0x07, 0x55]) == 0)
            #expect(rig.cfg(0x3c, 4) & 0xff_ffff == 0x00_010b)
            #expect(rig.hw(0x3c, 4) & 0xff_ffff == 0x00_0100)
        },
        VPCIRow("VPCI-82", "an 8-byte read across the header's BIST and BAR0 returns both chunks as their permissions say") { rig in
            guard case .success(let bytes) = rig.read(.config, 0x0c, 8) else {
                Issue.record("read failed")
                return
            }
            #expect(Array(bytes[4..<8]) == [0x00, 0x00, 0x00, 0xd0], "BAR0 reads the host's address before any write")
        },
    ]

    // MARK: §4.1 model

    static let model: [VPCIRow] = [
        VPCIRow("VPCI-110", "vconfig holds what the device had at open: the virtual INTx Disable ignores a later change in the device") { rig in
            rig.model.writeConfig(4, width: 2, rig.hw(4, 2) | 0x400)
            #expect(rig.cfg(4, 2) == 0x0003)
        },
        VPCIRow("VPCI-111", "a read merges virtual and physical bits: COMMAND's decode bits come from the device") { rig in
            rig.model.writeConfig(4, width: 2, 0x0002)
            #expect(rig.cfg(4, 2) == 0x0002)
        },
        VPCIRow("VPCI-112", "writes: no writable bit — dropped; writable physical — device; writable virtual — vconfig only") { rig in
            rig.cfg(0x08, 4, write: 0xffff_ffff)
            #expect(rig.hw(0x08) == 0xff00_0001 && rig.cfg(0x08) == 0xff00_0001, "revision and class are read-only")
            rig.cfg(0x0c, 1, write: 0x40)
            #expect(rig.hw(0x0c, 1) == 0x40)
            rig.cfg(0x3c, 1, write: 0x0b)
            #expect(rig.hw(0x3c, 1) == 0 && rig.cfg(0x3c, 1) == 0x0b)
        },
        VPCIRow(
            "VPCI-113", "a direct capability (MSI-X): Message Control reads the device, writes are dropped; next from vconfig",
            image: {
                var image = VPCIImage()
                image.bytes[VPCIImage.msixAt + 1] = 0x7c
                image.capability(0x7c, id: 0x04, next: UInt8(VPCIImage.pcie))  // Slot ID: hidden
                return image
            }
        ) { rig in
            let control = VPCIImage.msixAt + 2
            rig.model.writeConfig(control, width: 2, 0x4000 | rig.hw(control, 2))
            #expect(rig.cfg(control, 2) == rig.hw(control, 2))
            rig.cfg(control, 2, write: 0x8000)
            #expect(rig.hw(control, 2) & 0x8000 == 0, "VPCI-133: MSI-X Enable only through SET_IRQS")
            #expect(rig.cfg(VPCIImage.msixAt, 2) == 0x8011, "ID from the device, next past the hidden Slot ID")
            #expect(rig.hw(VPCIImage.msixAt + 1, 1) == 0x7c)
        },
        VPCIRow(
            "VPCI-114", "unassigned bytes are raw both ways: the gap after MSI, a hidden capability's body, extended space without ecaps",
            image: {
                var image = VPCIImage()
                image.set(0x5e, 2, 0, writable: 0xffff)
                image.bytes[VPCIImage.pcie + 1] = 0xc0
                image.capability(0xc0, id: 0x0c, next: 0)  // SHPC: hidden
                image.set(0xc4, 4, 0, writable: 0xffff_ffff)
                image.set(0x200, 4, 0, writable: 0xffff_ffff)
                return image
            }
        ) { rig in
            rig.cfg(0x5e, 2, write: 0x1234)
            #expect(rig.hw(0x5e, 2) == 0x1234 && rig.cfg(0x5e, 2) == 0x1234)
            rig.cfg(0xc4, 4, write: 0x5555_aaaa)
            #expect(rig.hw(0xc4) == 0x5555_aaaa)
            #expect(rig.cfg(0xc0, 2) == 0x000c, "the hidden capability's header reads raw too")
            rig.cfg(0x200, 4, write: 0xcafe_f00d)
            #expect(rig.hw(0x200) == 0xcafe_f00d)
        },
    ]

    // MARK: §4.2 basic header (VPCI-120 rows, one per field)

    /// A field of VPCI-120's table: `value` written, then what the user and the device read.
    static func field(
        _ name: String, _ offset: Int, _ width: Int, write value: UInt32, user: UInt32, device: UInt32,
        image: @escaping @Sendable () -> VPCIImage = { VPCIImage() }, prepare: @escaping @Sendable (VPCIRig) -> Void = { _ in }
    ) -> VPCIRow {
        VPCIRow("VPCI-120", "\(name) (0x\(String(offset, radix: 16))): write 0x\(String(value, radix: 16))", image: image) { rig in
            prepare(rig)
            rig.cfg(offset, width, write: value)
            #expect(rig.cfg(offset, width) == user, "user view")
            #expect(rig.hw(offset, width) == device, "device")
        }
    }

    /// Every header byte writable in the device, so only vfio-pci's permissions decide.
    static let writableHeader: @Sendable () -> VPCIImage = {
        var image = VPCIImage()
        for offset in [0x00, 0x08, 0x0c, 0x28, 0x2c, 0x34, 0x38, 0x3c] where offset != 0x10 {
            let current = image.value(offset, 4)
            image.set(offset, 4, current, writable: 0xffff_ffff)
        }
        return image
    }

    static let header: [VPCIRow] = [
        field("vendor and device ID read-only", 0x00, 4, write: 0, user: 0x5678_1234, device: 0x5678_1234, image: writableHeader),
        field("revision and class read-only", 0x08, 4, write: 0, user: 0xff00_0001, device: 0xff00_0001, image: writableHeader),
        field("cache line size to the device", 0x0c, 1, write: 0x10, user: 0x10, device: 0x10, image: writableHeader),
        field("latency timer to the device", 0x0d, 1, write: 0x20, user: 0x20, device: 0x20, image: writableHeader),
        field("header type read-only", 0x0e, 1, write: 0x81, user: 0x00, device: 0x00, image: writableHeader),
        field("BIST to the device", 0x0f, 1, write: 0x40, user: 0x40, device: 0x40, image: writableHeader),
        field("CardBus CIS read-only", 0x28, 4, write: 0x1234, user: 0, device: 0, image: writableHeader),
        field("subsystem IDs read-only", 0x2c, 4, write: 0, user: 0x1100_1af4, device: 0x1100_1af4, image: writableHeader),
        field("capabilities pointer read-only", 0x34, 1, write: 0, user: 0x40, device: 0x40, image: writableHeader),
        field("reserved 0x35 read-only", 0x35, 1, write: 0xff, user: 0, device: 0, image: writableHeader),
        field("reserved 0x38 read-only", 0x38, 4, write: 0xffff_ffff, user: 0, device: 0, image: writableHeader),
        field("Interrupt Line virtual", 0x3c, 1, write: 0x0b, user: 0x0b, device: 0, image: writableHeader),
        field("Interrupt Pin read-only", 0x3d, 1, write: 0x04, user: 0x01, device: 0x01, image: writableHeader),
        field("Min_Gnt and Max_Lat read-only", 0x3e, 2, write: 0xffff, user: 0, device: 0, image: writableHeader),
        field(
            "STATUS: a 2-byte write is dropped, its RW1C bits stay set", 0x06, 2, write: 0xf900, user: 0x8010, device: 0x8010,
            prepare: { $0.model.reportConfigStatus(0x06, width: 2, 0x8000) }),
        VPCIRow("VPCI-120", "STATUS: a 4-byte write at COMMAND writes the device's STATUS back, clearing its set RW1C bits (source)") { rig in
            rig.model.reportConfigStatus(0x06, width: 2, 0x8000)
            rig.cfg(4, 4, write: 0x0000_0003)
            #expect(rig.hw(0x06, 2) == 0x0010)
            #expect(rig.cfg(0x06, 2) == 0x0010)
        },
        VPCIRow("VPCI-121", "BAR sizing: all ones read back size and flags; unimplemented BARs and the ROM read 0; the device's BARs untouched") { rig in
            #expect(rig.cfg(0x10) == 0xd000_0000, "before any write: the host's address")
            for register in stride(from: 0x10, through: 0x30, by: 4) where register < 0x28 || register == 0x30 {
                rig.cfg(register, 4, write: 0xffff_ffff)
            }
            #expect(rig.cfg(0x10) == 0xffff_c000)
            #expect(rig.cfg(0x14) == 0)
            #expect(rig.cfg(0x18) == 0xffff_000c && rig.cfg(0x1c) == 0xffff_ffff, "64-bit prefetchable")
            #expect(rig.cfg(0x20) == 0xffff_ffe1, "I/O")
            #expect(rig.cfg(0x24) == 0 && rig.cfg(0x30) == 0)
            #expect(rig.hw(0x10) == 0xd000_0000 && rig.hw(0x18) == 0x0000_000c && rig.hw(0x1c) == 0x38)
        },
        VPCIRow("VPCI-121", "BAR writes land in vconfig masked to the BAR's size") { rig in
            rig.cfg(0x10, 4, write: 0x1234_5678)
            #expect(rig.cfg(0x10) == 0x1234_4000)
            rig.cfg(0x20, 4, write: 0x0000_1237)
            #expect(rig.cfg(0x20) == 0x0000_1221)
        },
    ]

    // MARK: COMMAND and INTx Disable

    static let command: [VPCIRow] = [
        VPCIRow("VPCI-122", "the virtual MEMORY bit gates BAR access (VPCI-92): COMMAND 0 makes BAR0 EIO, MEMORY back makes it work") { rig in
            rig.cfg(4, 2, write: 0)
            #expect(rig.barStatus(0) == EIO)
            rig.model.writeConfig(4, width: 2, 0x0002)  // the device decodes, vconfig says off
            #expect(rig.barStatus(0) == EIO)
            rig.cfg(4, 2, write: 0x0002)
            #expect(rig.barStatus(0) == 0)
            #expect(rig.barStatus(4) == 0, "I/O BARs are never checked")
        },
        VPCIRow("VPCI-122", "a COMMAND write restores the host's BARs when the device lost them (vfio_bar_restore)") { rig in
            rig.model.writeConfig(0x10, width: 4, 0)
            rig.cfg(4, 2, write: 0x0003)
            #expect(rig.hw(0x10) == 0xd000_0000)
            #expect(rig.hw(0x18) == 0x0000_000c && rig.hw(0x1c) == 0x38)
        },
        VPCIRow("VPCI-123", "INTx Disable is virtual: set, it reads back set and the device's bit follows (INTx not active); cleared, both clear") { rig in
            rig.cfg(4, 2, write: 0x0403)
            #expect(rig.cfg(4, 2) == 0x0403)
            #expect(rig.hw(4, 2) & 0x400 != 0)
            rig.cfg(4, 2, write: 0x0003)
            #expect(rig.cfg(4, 2) == 0x0003)
            #expect(rig.hw(4, 2) & 0x400 == 0)
        },
        VPCIRow("VPCI-123", "while virq_disabled INTx is masked: no signal from the device or a loopback trigger, UNMASK has no effect") { rig in
            let event = try EventFD()
            #expect(rig.enable(.intx, [event]) == 0)
            #expect(rig.model.raiseInterrupt() == .intx)
            #expect(event.read() == 1)
            #expect(rig.irq(VFIO_IRQ_SET_ACTION_UNMASK, .intx) == 0)
            rig.cfg(5, 1, write: 0x04)
            #expect(rig.hw(4, 2) & 0x400 != 0, "masked in the device (PCI 2.3)")
            #expect(rig.model.raiseInterrupt() == nil)
            #expect(rig.irq(VFIO_IRQ_SET_ACTION_TRIGGER, .intx) == 0)
            #expect(rig.irq(VFIO_IRQ_SET_ACTION_UNMASK, .intx) == 0)
            #expect(event.read() == nil)
            rig.cfg(5, 1, write: 0x00)
            #expect(rig.model.raiseInterrupt() == .intx)
            #expect(event.read() == 1)
        },
        VPCIRow("VPCI-123", "INTx enabled while virq_disabled starts masked (vfio_intx_enable: masked = virq_disabled)") { rig in
            rig.cfg(4, 2, write: 0x0403)
            let event = try EventFD()
            #expect(rig.enable(.intx, [event]) == 0)
            #expect(rig.model.raiseInterrupt() == nil)
            rig.cfg(4, 2, write: 0x0003)
            #expect(rig.model.raiseInterrupt() == .intx)
            #expect(event.read() == 1)
        },
        VPCIRow("VPCI-124", "the Interrupt Pin reads the device's pin at open; INTx count 1") { rig in
            #expect(rig.cfg(0x3d, 1) == 1)
            #expect(rig.irqCount(.intx) == 1)
        },
    ]
}
