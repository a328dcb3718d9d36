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

/// `../shared/spec/vfio-pci.md` §2 (region capabilities, the expansion ROM), §3.3 (ROM reads) and
/// §5 (dynamic MSI-X, v6.5+) — one row per rule and case, each through the Swift API and the raw
/// UAPI (`VPCIRig`). Kernel lines cited are the 7.3 tree in `../shared/kernel`: `vfio_main.c`
/// (`vfio_get_region_info`), `drivers/vfio/pci/vfio_pci_core.c` (`core.c`), `vfio_pci_rdwr.c`,
/// `vfio_pci_intrs.c`; `pci_map_rom`/`pci_get_rom_size` (`drivers/pci/rom.c`) are not in that tree.
@Suite("VPCI region capabilities, expansion ROM, MSI vectors and dynamic MSI-X (VPCI-42, 51, 61, 95, 152, 181, 183)")
struct VPCIRegionROMAndMSIXTests {
    static let rows: [VPCIRow] = capabilities + rom + msix

    @Test("VPCI region capability, ROM and dynamic MSI-X rows", arguments: rows, VPCIPath.allCases)
    func row(_ row: VPCIRow, _ path: VPCIPath) throws { try row.run(path) }

    static let rw = UInt32(VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE)
    static let rwm = rw | UInt32(VFIO_REGION_INFO_FLAG_MMAP)
    static let caps = UInt32(VFIO_REGION_INFO_FLAG_CAPS)
    static let msixMappable: [UInt8] = [UInt8(VFIO_REGION_INFO_CAP_MSIX_MAPPABLE), 0, 1, 0, 0, 0, 0, 0]

    /// The standard image with its MSI-X table and PBA in BAR4, a 256-byte memory BAR at
    /// `address` (page-aligned: mmap-able; not: no MMAP), instead of BAR0.
    static func msixInSubPageBAR(at address: UInt64) -> @Sendable () -> VPCIImage {
        {
            var image = VPCIImage()
            image.bars[4] = PCIBARResource(kind: .memory32, size: 0x100, busAddress: address)
            image.set(0x20, 4, UInt32(address), writable: 0xffff_ff00)
            image.set(VPCIImage.msixAt + 4, 4, 0x0000_0004)  // table: BIR 4, offset 0
            image.set(VPCIImage.msixAt + 8, 4, 0x0000_0084)  // PBA: BIR 4, offset 0x80
            return image
        }
    }

    // MARK: §2.1 capabilities (VPCI-42, VPCI-61)

    static let capabilities: [VPCIRow] = [
        VPCIRow("VPCI-42", "argsz 32 on the MSI-X BAR: FLAGS_CAPS set, argsz grown to 40 (32 + the 8-byte MSIX_MAPPABLE header), cap_offset 0, nothing written past the struct") { rig in
            let info = rig.regionInfoWithCaps(0, argsz: 32, room: 16)
            #expect(info.errno == 0)
            #expect(info.flags == rwm | caps && info.size == 0x4000)
            switch rig.path {
            case .swiftAPI: #expect(info.capabilities == [.msixMappable])
            case .uapi:
                #expect((info.argsz, info.capOffset) == (40, 0))
                #expect(info.trailing.allSatisfy { $0 == 0xa5 }, "no capability copied")
            }
        },
        VPCIRow("VPCI-42", "argsz 40: the chain at offset 32 — MSIX_MAPPABLE id 3, version 1, next 0 — cap_offset 32, argsz left as given") { rig in
            let info = rig.regionInfoWithCaps(0, argsz: 40, room: 16)
            #expect(info.errno == 0 && info.flags == rwm | caps)
            switch rig.path {
            case .swiftAPI: #expect(info.capabilities == [.msixMappable])
            case .uapi:
                #expect((info.argsz, info.capOffset) == (40, 32))
                #expect(Array(info.trailing.prefix(8)) == msixMappable)
                #expect(info.trailing.dropFirst(8).allSatisfy { $0 == 0xa5 }, "only the 8-byte capability is written")
            }
        },
        VPCIRow("VPCI-42", "argsz 39, one short: grown to 40 again; a region without caps (BAR2, config) keeps argsz and cap_offset as given") { rig in
            let short = rig.regionInfoWithCaps(0, argsz: 39, room: 16)
            #expect(short.errno == 0 && short.flags & caps != 0)
            if rig.path == .uapi { #expect((short.argsz, short.capOffset) == (40, 0)) }
            for index: UInt32 in [2, 7] {
                let plain = rig.regionInfoWithCaps(index, argsz: 48, room: 16)
                #expect(plain.errno == 0 && plain.flags & caps == 0 && plain.capabilities.isEmpty, "region \(index)")
                if rig.path == .uapi { #expect((plain.argsz, plain.capOffset) == (48, 0xa5a5_a5a5), "region \(index)") }
            }
        },
        VPCIRow("VPCI-61", "the MSI-X BAR is mmap-able like any BAR and carries MSIX_MAPPABLE; its table page maps") { rig in
            let info = rig.regionInfoWithCaps(0, argsz: 40, room: 8)
            #expect(info.flags & rwm == rwm)
            #expect(info.capabilities == [.msixMappable] || rig.path == .uapi && Array(info.trailing.prefix(8)) == msixMappable)
            #expect(rig.mmapStatus(0, offset: 0x2000, length: 0x1000) == 0)
        },
        VPCIRow("VPCI-61", "MSI-X table in a page-aligned sub-page BAR: MMAP and MSIX_MAPPABLE there, none on BAR0", image: msixInSubPageBAR(at: 0xd000_8000)) { rig in
            let bar4 = rig.regionInfoWithCaps(4, argsz: 40, room: 8)
            #expect(bar4.errno == 0 && bar4.size == 0x100 && bar4.flags == rwm | caps)
            let bar0 = rig.regionInfoWithCaps(0, argsz: 40, room: 8)
            #expect(bar0.flags == rwm && bar0.capabilities.isEmpty)
        },
        VPCIRow("VPCI-61", "MSI-X table in a sub-page BAR off a page boundary: no MMAP, so no MSIX_MAPPABLE and no CAPS", image: msixInSubPageBAR(at: 0xd000_8100)) { rig in
            let bar4 = rig.regionInfoWithCaps(4, argsz: 40, room: 8)
            #expect(bar4.errno == 0 && bar4.flags == rw && bar4.capabilities.isEmpty)
            if rig.path == .uapi { #expect(bar4.capOffset == 0xa5a5_a5a5, "no caps: cap_offset echoed") }
        },
    ]

    // MARK: §2.2 / §3.3 the expansion ROM (VPCI-51, VPCI-95)

    /// A 2 KiB legacy image (`OptionROMImage.legacy`) in a ROM BAR of `size` bytes; the bytes
    /// after the image are `tail` (erased flash reads 0xFF; a ROM may hold anything there).
    static func withROM(size: UInt64 = 0x4000, image: [UInt8]? = nil, tail: UInt8 = 0x5a) -> @Sendable () -> VPCIImage {
        {
            var function = VPCIImage()
            let bytes = image ?? OptionROMImage.legacy(vendor: 0x1234, device: 0x5678, classCode: 0xff0000)
            let address: UInt32 = 0xd010_0000
            function.set(0x30, 4, address, writable: UInt32(truncatingIfNeeded: ~(size - 1)) | 1)
            function.rom = (PCIBARResource(kind: .memory32, size: size, busAddress: UInt64(address)), bytes + Array(repeating: tail, count: Int(size) - bytes.count))
            return function
        }
    }

    static let romImage = OptionROMImage.legacy(vendor: 0x1234, device: 0x5678, classCode: 0xff0000)
    static let read = UInt32(VFIO_REGION_INFO_FLAG_READ)

    static let rom: [VPCIRow] = [
        VPCIRow("VPCI-51", "an assigned ROM BAR with a valid image: READ only, size the BAR's 16 KiB (not the 2 KiB image); the ROM BAR is left disabled in the device", image: withROM()) { rig in
            let info = rig.regionInfo(6)
            #expect(info.errno == 0 && info.flags == read && info.size == 0x4000)
            #expect(rig.hw(0x30) & 1 == 0, "pci_unmap_rom disabled the ROM BAR again")
        },
        VPCIRow("VPCI-51", "probed with memory decode on: with the user's COMMAND.MEMORY off GET_REGION_INFO still reports the ROM, and the device's COMMAND is as the user left it", image: withROM()) { rig in
            rig.cfg(4, 2, write: 0x0000)
            let info = rig.regionInfo(6)
            #expect(info.errno == 0 && info.flags == read && info.size == 0x4000)
            #expect(rig.hw(4, 2) & 0x2 == 0)
        },
        VPCIRow("VPCI-51", "a ROM BAR without a valid image (no 0xAA55 header): size 0, flags 0", image: withROM(image: [0x12, 0x34], tail: 0)) { rig in
            let info = rig.regionInfo(6)
            #expect(info.errno == 0 && info.flags == 0 && info.size == 0)
        },
        VPCIRow("VPCI-51", "the virtual ROM BAR sizes to the BAR (vfio_bar_fixup): all ones written reads back ~(16 KiB - 1) | enable; the device's ROM BAR is untouched", image: withROM()) { rig in
            rig.cfg(0x30, 4, write: 0xffff_ffff)
            #expect(rig.cfg(0x30) == 0xffff_c001)
            #expect(rig.hw(0x30) == 0xd010_0000)
        },
        VPCIRow("VPCI-95", "ROM read: the image's bytes (0x55AA header, \"PCIR\" at 0x1c), with the ROM BAR enabled for the read only", image: withROM()) { rig in
            #expect(rig.read(.rom, 0, 4) == .success(Array(romImage.prefix(4))))
            #expect(rig.read(.rom, 0x1c, 4) == .success(Array("PCIR".utf8)))
            #expect(rig.read(.rom, 0, 0x800) == .success(romImage))
            #expect(rig.hw(0x30) & 1 == 0)
        },
        VPCIRow("VPCI-95", "bytes from the image's end (pci_get_rom_size: 2 KiB) to the BAR's end read 0xFF, whatever the device holds there", image: withROM()) { rig in
            #expect(rig.read(.rom, 0x7fc, 8) == .success(Array(romImage.suffix(4)) + [0xff, 0xff, 0xff, 0xff]))
            #expect(rig.read(.rom, 0x3ff0, 16) == .success(Array(repeating: 0xff, count: 16)))
            rig.model.writeConfig(0x30, width: 4, 0xd010_0001)
            #expect(rig.model.readROM(offset: 0x800, width: 1) == 0x5a, "the device itself has 0x5a past the image")
        },
        VPCIRow("VPCI-95", "region bounds: a read running past the BAR's end is cut short; at the end EINVAL; a write EINVAL (VPCI-71)", image: withROM()) { rig in
            #expect(rig.transfer(.rom, 0x3ffc, 8) == 4)
            #expect(rig.transfer(.rom, 0x4000, 4) == -Int(EINVAL))
            #expect(rig.transfer(.rom, 0, 4, write: true) == -Int(EINVAL))
        },
        VPCIRow("VPCI-95", "memory decode off: pci_map_rom finds no image (the device does not answer), so the read is ENOMEM", image: withROM()) { rig in
            rig.cfg(4, 2, write: 0x0000)
            #expect(rig.transfer(.rom, 0, 4) == -Int(ENOMEM))
            rig.cfg(4, 2, write: 0x0002)
            #expect(rig.transfer(.rom, 0, 4) == 4)
        },
        VPCIRow("VPCI-95", "no ROM BAR (and no shadow ROM): a ROM read is EINVAL") { rig in
            #expect(rig.transfer(.rom, 0, 4) == -Int(EINVAL))
        },
    ]

    // MARK: §5 dynamic MSI-X (VPCI-152, VPCI-183)

    /// The standard image without its MSI-X capability (MSI's next pointer skips to PCI Express).
    static let noMSIX: @Sendable () -> VPCIImage = {
        var image = VPCIImage()
        image.bytes[VPCIImage.msiAt + 1] = UInt8(VPCIImage.pcie)
        image.msix = nil
        return image
    }

    static let trigger = UInt32(VFIO_IRQ_SET_ACTION_TRIGGER)

    static let msix: [VPCIRow] = [
        VPCIRow("VPCI-152", "GET_IRQ_INFO flags: INTx 0x7, MSI 0x9, MSI-X 0x1 (has_dyn_msix: no NORESIZE), ERR 0x9, REQ 0x9") { rig in
            #expect(VFIOIRQIndex.allCases.map { rig.irqFlags($0) } == [0x7, 0x9, 0x1, 0x9, 0x9])
        },
        VPCIRow("VPCI-152", "a function without MSI-X has no dynamic MSI-X: MSI-X flags 0x9 (NORESIZE), count 0", image: noMSIX) { rig in
            #expect(rig.irqFlags(.msix) == 0x9 && rig.irqCount(.msix) == 0)
        },
        VPCIRow("VPCI-183", "MSI-X enabled with vector 0 grows while enabled: a trigger for vector 3 allocates it (pci_msix_alloc_irq_at), the device's interrupt on 3 reaches it, vector 0 keeps its own") { rig in
            let events = try (0..<2).map { _ in try EventFD() }
            #expect(rig.enable(.msix, [events[0]]) == 0)
            #expect(rig.irqSet(trigger, .msix, start: 3, count: 1, .eventFD([events[1].fd])) == 0)
            #expect(rig.hw(VPCIImage.msixAt + 2, 2) & 0x8000 != 0, "MSI-X stayed enabled")
            #expect(rig.model.raiseInterrupt(vector: 3) == .msix(vector: 3))
            #expect(rig.model.raiseInterrupt(vector: 0) == .msix(vector: 0))
            #expect(events.map { $0.read() } == [1, 1])
        },
        VPCIRow("VPCI-183", "vectors 1…2 are not allocated by growing 3: a loopback trigger skips them; they are allocated when given a trigger") { rig in
            let events = try (0..<3).map { _ in try EventFD() }
            #expect(rig.enable(.msix, [events[0]]) == 0)
            #expect(rig.irqSet(trigger, .msix, start: 3, count: 1, .eventFD([events[1].fd])) == 0)
            #expect(rig.irq(VFIO_IRQ_SET_ACTION_TRIGGER, .msix, count: 4) == 0)
            #expect(events.map { $0.read() } == [1, 1, nil])
            #expect(rig.irqSet(trigger, .msix, start: 1, count: 2, .eventFD([events[2].fd, -1])) == 0)
            #expect(rig.model.raiseInterrupt(vector: 1) == .msix(vector: 1))
            #expect(events[2].read() == 1)
        },
        VPCIRow("VPCI-183", "MSI never grows (NORESIZE): with 1 vector enabled a trigger for vector 1 is EINVAL, vector 0 untouched; fd -1 there needs no IRQ and is 0") { rig in
            let events = try (0..<2).map { _ in try EventFD() }
            #expect(rig.enable(.msi, [events[0]]) == 0)
            #expect(rig.irqSet(trigger, .msi, start: 1, count: 1, .eventFD([events[1].fd])) == EINVAL)
            if rig.path == .swiftAPI {
                do throws(VFIOError) {
                    try rig.device!.device.setIRQs(VFIOIRQSet(action: .actionTrigger, index: .msi, start: 1, count: 1, data: .eventFD([events[1].fd])))
                    Issue.record("MSI grew")
                } catch { #expect(error.rule == .VPCI_183, "\(error)") }
            }
            #expect(rig.irqSet(trigger, .msi, start: 1, count: 1, .eventFD([-1])) == 0)
            #expect(rig.model.raiseInterrupt(vector: 0) == .msi(vector: 0))
            #expect(events.map { $0.read() } == [1, nil])
        },
        VPCIRow("VPCI-181", "x86 without interrupt remapping (vt-d-noir: no multi-MSI domain): an MSI enable of 4 vectors returns 1, the number available, with nothing enabled; 1 vector then enables (0)", profileName: "vt-d-noir") {
            rig in
            let events = try (0..<4).map { _ in try EventFD() }
            #expect(rig.enableRaw(.msi, events) == 1)
            #expect(rig.hw(VPCIImage.msiAt + 2, 2) & 0x1 == 0, "MSI Enable clear")
            #expect(rig.irq(VFIO_IRQ_SET_ACTION_TRIGGER, .msi, count: 1) == EINVAL, "MSI is not the active index")
            #expect(rig.enableRaw(.msi, [events[0]]) == 0)
            #expect(rig.model.raiseInterrupt(vector: 0) == .msi(vector: 0))
            #expect(events[0].read() == 1)
        },
        VPCIRow("VPCI-181", "the same machine's MSI-X needs no multi-MSI: 4 MSI-X vectors enable (0)", profileName: "vt-d-noir") { rig in
            let events = try (0..<4).map { _ in try EventFD() }
            #expect(rig.enableRaw(.msix, events) == 0)
        },
        VPCIRow("VPCI-181", "with interrupt remapping (the default machine's VT-d) all 4 MSI vectors are allocated: 0, msi_qmax 2 (Multiple Message Enable 4)") { rig in
            let events = try (0..<4).map { _ in try EventFD() }
            #expect(rig.enableRaw(.msi, events) == 0)
            #expect(rig.hw(VPCIImage.msiAt + 2, 2) & 0x71 == 0x21)
        },
        VPCIRow("VPCI-183", "growth stops at the count GET_IRQ_INFO reports (VPCI-160): vector 4 of 4 is EINVAL before any vector changes") { rig in
            let events = try (0..<2).map { _ in try EventFD() }
            #expect(rig.enable(.msix, [events[0]]) == 0)
            #expect(rig.irqSet(trigger, .msix, start: 3, count: 2, .eventFD([events[1].fd, events[1].fd])) == EINVAL)
            #expect(rig.model.raiseInterrupt(vector: 0) == .msix(vector: 0))
            #expect(events.map { $0.read() } == [1, nil])
        },
    ]
}

extension VPCIRig {
    /// `SET_IRQS` `DATA_EVENTFD | ACTION_TRIGGER` on vectors 0… of `index`: what the call
    /// returns — 0, the positive number of vectors available (VPCI-181), or minus the errno.
    func enableRaw(_ index: VFIOIRQIndex, _ events: [EventFD]) -> Int {
        let fds = events.map(\.fd)
        switch path {
        case .swiftAPI:
            do throws(VFIOError) {
                return try device!.device.setIRQs(VFIOIRQSet(action: .actionTrigger, index: index, count: UInt32(fds.count), data: .eventFD(fds)))
            } catch { return -Int(error.errno.rawValue) }
        case .uapi:
            var buffer = [UInt8](repeating: 0, count: 20 + 4 * fds.count)
            buffer.withUnsafeMutableBytes { raw in
                let flags = UInt32(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER)
                for (i, word) in [UInt32(raw.count), flags, index.rawValue, 0, UInt32(fds.count)].enumerated() {
                    raw.storeBytes(of: word, toByteOffset: 4 * i, as: UInt32.self)
                }
                for (i, fd) in fds.enumerated() { raw.storeBytes(of: fd, toByteOffset: 20 + 4 * i, as: Int32.self) }
            }
            let result = buffer.withUnsafeMutableBytes { system.ioctl(fds_(), clinuxvfio_device_set_irqs(), UInt(bitPattern: $0.baseAddress)) }
            return result < 0 ? -Int(Glibc.errno) : Int(result)
        }
    }

    private func fds_() -> Int32 { fds!.device }

    /// `VFIO_DEVICE_GET_IRQ_INFO`'s flags for `index` (0 on failure).
    func irqFlags(_ index: VFIOIRQIndex) -> UInt32 {
        switch path {
        case .swiftAPI: return (try? device!.device.irqInfo(index.rawValue).flags.rawValue) ?? 0
        case .uapi:
            var info = vfio_irq_info()
            (info.argsz, info.index) = (16, index.rawValue)
            let result = withUnsafeMutablePointer(to: &info) { system.ioctl(fds!.device, clinuxvfio_device_get_irq_info(), UInt(bitPattern: $0)) }
            return result == 0 ? info.flags : 0
        }
    }

    /// `VFIO_DEVICE_GET_REGION_INFO` for `index` with `argsz` in a buffer of 32 + `room` bytes
    /// filled with 0xa5: errno, the header as written back (argsz, flags, cap_offset, size) and
    /// the bytes past the struct; the Swift API's capabilities.
    func regionInfoWithCaps(_ index: UInt32, argsz: UInt32, room: Int)
        -> (errno: Int32, argsz: UInt32, flags: UInt32, capOffset: UInt32, size: UInt64, trailing: [UInt8], capabilities: [VFIORegionCapability])
    {
        switch path {
        case .swiftAPI:
            do throws(VFIOError) {
                let info = try device!.device.regionInfo(index)
                return (0, argsz, info.flags.rawValue, 0, info.size, [], info.capabilities)
            } catch { return (error.errno.rawValue, 0, 0, 0, 0, [], []) }
        case .uapi:
            var buffer = [UInt8](repeating: 0xa5, count: 32 + room)
            buffer.withUnsafeMutableBytes { raw in
                raw.storeBytes(of: argsz, toByteOffset: 0, as: UInt32.self)
                raw.storeBytes(of: index, toByteOffset: 8, as: UInt32.self)
            }
            let result = buffer.withUnsafeMutableBytes { system.ioctl(fds!.device, clinuxvfio_device_get_region_info(), UInt(bitPattern: $0.baseAddress)) }
            let word = { (at: Int) in buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: at, as: UInt32.self) } }
            let size = buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 16, as: UInt64.self) }
            return (result < 0 ? Glibc.errno : 0, word(0), word(4), word(12), size, Array(buffer[32...]), [])
        }
    }
}
