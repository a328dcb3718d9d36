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

/// `../shared/spec/vfio-pci.md` §1, §2, §3, §5, §6.2–6.3 and §7.3 — open counting, GET_INFO,
/// GET_REGION_INFO, region I/O and mmap, GET_IRQ_INFO and SET_IRQS, hot reset INFO and ownership,
/// GET_DEVICE_FD name matching — one row per rule and case,
/// each through the Swift API and the raw UAPI (`VPCIRig`). Kernel lines cited are the 7.3 tree in
/// `../shared/kernel/drivers/vfio/pci/vfio_pci_core.c` (`core.c` below) and `vfio_pci_intrs.c`.
@Suite("VPCI device fd: open, GET_INFO, regions, region I/O and mmap, IRQs, hot reset (VPCI-03…260)")
struct VPCIDeviceFDTests {
    static let neighbour = PCIAddress(parsing: "0000:5f:00.1")!

    static let rows: [VPCIRow] = info + regions + subPage + io + irqs + intxAutomask + errReq + hotReset

    @Test("VPCI device fd rows", arguments: rows, VPCIPath.allCases)
    func row(_ row: VPCIRow, _ path: VPCIPath) throws { try row.run(path) }

    static let rw = UInt32(VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE)
    static let rwm = rw | UInt32(VFIO_REGION_INFO_FLAG_MMAP)

    // MARK: §1.4 GET_INFO

    static let info: [VPCIRow] = [
        VPCIRow("VPCI-260", "GET_DEVICE_FD name matching: the exact name opens; a longer name without a space or a shorter one matches nothing (ENODEV); any option after a space is EINVAL on a function that is no PF or VF") {
            rig in
            let uuid = "2ab74924-c335-45f4-9b16-8569e5b08258"
            let name = VPCIRig.address.description
            #expect(rig.openByName(name) == 0)
            #expect(rig.openByName(name + "x") == ENODEV)
            #expect(rig.openByName(String(name.dropLast())) == ENODEV)
            for option in ["vf_token=\(uuid)", "vf_token=short", "other=1"] { #expect(rig.openByName("\(name) \(option)") == EINVAL, "\(option)") }
        },
        VPCIRow("VPCI-03", "group path (the cdev refusal is the iommufd work's): a second GET_DEVICE_FD shares the open device — no second open_device (no reset, COMMAND kept); closing it has no device-level effect") {
            rig in
            rig.cfg(4, 2, write: 0x0007)
            rig.model.barMemory(VPCIImage.ramBAR)![8] = 0x77
            let command = try rig.openSecondFD { read in try read(4) }
            #expect(command == 0x0007)
            #expect(rig.model.barMemory(VPCIImage.ramBAR)![8] == 0x77, "no reset at the second open")
            #expect(rig.hw(4, 2) == 0x0007 && rig.model.isBusMasterEnabled, "closing the second fd left the device as it was")
            #expect(rig.barStatus(0) == 0 && rig.cfg(4, 2) == 0x0007)
        },
        VPCIRow("VPCI-31", "GET_INFO: flags PCI | RESET (FLR), 9 regions, 5 IRQ indexes; no CAPS without capabilities") { rig in
            let info = rig.deviceInfo()
            #expect(info.errno == 0)
            #expect(info.flags == UInt32(VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET))
            #expect((info.regions, info.irqs) == (UInt32(VFIO_PCI_NUM_REGIONS), UInt32(VFIO_PCI_NUM_IRQS)))
        },
        VPCIRow(
            "VPCI-31", "GET_INFO without reset_works (no FLR, No_Soft_Reset set, a neighbour rules out a bus reset): flags PCI only",
            image: { VPCIImage(flr: false, multifunction: true) },
            others: { [(neighbour, VPCIImage(device: 0x5679, multifunction: true))] }
        ) { rig in
            let info = rig.deviceInfo()
            #expect(info.errno == 0 && info.flags == UInt32(VFIO_DEVICE_FLAGS_PCI))
        },
    ]

    // MARK: §2 GET_REGION_INFO

    /// VPCI-50's table for the standard image: (index, size, flags), or the errno.
    static let regionTable: [(UInt32, UInt64, UInt32, Int32)] = [
        (0, 0x4000, rwm | UInt32(VFIO_REGION_INFO_FLAG_CAPS), 0), (1, 0, 0, 0), (2, 0x10000, rwm, 0), (3, 0, 0, 0), (4, 0x20, rw, 0), (5, 0, 0, 0),
        (6, 0, 0, 0), (7, 4096, rw, 0), (8, 0, 0, EINVAL), (9, 0, 0, EINVAL),
    ]

    static let regions: [VPCIRow] = [
        VPCIRow(
            "VPCI-50",
            "per index: BAR0 16 KiB and BAR2 64 KiB READ|WRITE|MMAP (BAR0, the MSI-X BAR, with CAPS: VPCI-42), BAR4 I/O 32 bytes READ|WRITE, BAR1/3 (upper half)/5 and ROM size 0 flags 0, config 4 KiB READ|WRITE, 8 and 9 EINVAL"
        ) { rig in
            for (index, size, flags, errno) in regionTable {
                let info = rig.regionInfo(index)
                #expect(info.errno == errno, "region \(index)")
                guard errno == 0 else { continue }
                #expect((info.size, info.flags) == (size, flags), "region \(index)")
            }
        },
        VPCIRow("VPCI-41", "only argsz and index are inputs: flags, size and offset are overwritten; cap_offset echoed without caps") { rig in
            for index: UInt32 in [2, 5, 7] {
                let info = rig.regionInfo(index, seed: 0xdead_beef)
                #expect(info.errno == 0)
                #expect(info.flags == regionTable[Int(index)].2 && info.size == regionTable[Int(index)].1, "region \(index)")
                #expect(info.offset == UInt64(index) << 40, "region \(index)")
                #expect(info.capOffset == 0xdead_beef, "region \(index): no caps, the caller's cap_offset comes back")
            }
        },
        VPCIRow("VPCI-43", "offset = index << 40 for every valid index, zero-size BARs and the ROM too") { rig in
            for index: UInt32 in 0...7 {
                let info = rig.regionInfo(index)
                #expect(info.errno == 0 && info.offset == UInt64(index) << 40, "region \(index)")
            }
        },
        VPCIRow("VPCI-52", "no VGA (class 0xff0000): index 8 is EINVAL, not size 0") { rig in
            #expect(rig.regionInfo(8).errno == EINVAL)
        },
        VPCIRow("VPCI-53", "plain vfio-pci: no SPARSE_MMAP — BAR2 and config space have no CAPS flag") { rig in
            for index: UInt32 in [2, 7] { #expect(rig.regionInfo(index).flags & UInt32(VFIO_REGION_INFO_FLAG_CAPS) == 0, "region \(index)") }
        },
        VPCIRow("VPCI-60", "MMAP: memory BARs of a page or more (registers too), never the I/O BAR; a memory BAR maps, the I/O BAR's mmap is EINVAL") {
            rig in
            #expect(rig.regionInfo(0).flags & UInt32(VFIO_REGION_INFO_FLAG_MMAP) != 0)
            #expect(rig.regionInfo(2).flags & UInt32(VFIO_REGION_INFO_FLAG_MMAP) != 0)
            #expect(rig.regionInfo(4).flags & UInt32(VFIO_REGION_INFO_FLAG_MMAP) == 0)
            #expect(rig.mmapStatus(2, length: 0x10000) == 0)
            #expect(rig.mmapStatus(4, length: 0x1000) == EINVAL)
        },
    ]

    /// The standard image with BAR4 a 256-byte memory BAR at `address` instead of I/O ports.
    static func subPageBAR(at address: UInt64) -> @Sendable () -> VPCIImage {
        {
            var image = VPCIImage()
            image.bars[4] = PCIBARResource(kind: .memory32, size: 0x100, busAddress: address)
            image.set(0x20, 4, UInt32(address), writable: 0xffff_ff00)
            return image
        }
    }

    static let subPage: [VPCIRow] = [
        VPCIRow("VPCI-60", "a sub-page memory BAR starting on a page boundary gets MMAP (the rest of its page reserved)", image: subPageBAR(at: 0xd000_8000)) {
            rig in
            let info = rig.regionInfo(4)
            #expect(info.errno == 0 && info.size == 0x100 && info.flags == rwm)
        },
        VPCIRow("VPCI-60", "a sub-page memory BAR off a page boundary: no MMAP, and its mmap is EINVAL", image: subPageBAR(at: 0xd000_8100)) { rig in
            let info = rig.regionInfo(4)
            #expect(info.errno == 0 && info.size == 0x100 && info.flags == rw)
            #expect(rig.mmapStatus(4, length: 0x1000) == EINVAL)
        },
        VPCIRow(
            "VPCI-54", "an assigned-but-unset BAR (resource size, start 0) still reports its length; pread and pwrite on it are EINVAL (VPCI-90)",
            image: subPageBAR(at: 0)
        ) { rig in
            let info = rig.regionInfo(4)
            #expect(info.errno == 0 && info.size == 0x100)
            #expect(rig.transfer(.bar(4), 0, 4) == -Int(EINVAL))
            #expect(rig.transfer(.bar(4), 0, 4, write: true) == -Int(EINVAL))
        },
        VPCIRow("VPCI-101", "a mapping of a page-aligned sub-page BAR may cover the whole page past the BAR's end, no further", image: subPageBAR(at: 0xd000_8000)) {
            rig in
            #expect(rig.mmapStatus(4, length: 0x1000) == 0)
            #expect(rig.mmapStatus(4, length: 0x2000) == EINVAL)
        },
    ]

    // MARK: §3 region I/O and mmap

    static let io: [VPCIRow] = [
        VPCIRow("VPCI-72", "a successful pread/pwrite returns the byte count: config and BAR2, 1 to 8 bytes") { rig in
            for count in [1, 2, 4, 8] {
                #expect(rig.transfer(.config, 0, count) == count, "config \(count)")
                #expect(rig.transfer(.bar(2), 0x100, count) == count, "BAR2 \(count)")
                #expect(rig.transfer(.bar(2), 0x100, count, write: true) == count, "BAR2 write \(count)")
            }
        },
        VPCIRow(
            "VPCI-94", "each step is the widest of 8/4/2/1 bytes aligned and inside the request, stopping at the MSI-X table; values little-endian",
            image: {
                var image = VPCIImage()
                image.recordsAccesses = true
                return image
            }
        ) { rig in
            let device = try #require(rig.model as? AccessRecordingDevice)
            device.clearAccesses()
            #expect(rig.read(.bar(0), 0x101, 15) == .success((0x01...0x0f).map { UInt8($0) }))
            #expect(device.accesses.map { [$0.offset, UInt64($0.width)] } == [[0x101, 1], [0x102, 2], [0x104, 4], [0x108, 8]])
            device.clearAccesses()
            #expect(rig.write(.bar(0), 0x10, [1, 2, 3]) == 0)
            #expect(device.accesses.map { [$0.offset, UInt64($0.width)] } == [[0x10, 2], [0x12, 1]] && device.accesses.allSatisfy(\.write))
            device.clearAccesses()
            #expect(rig.read(.bar(0), 0x1ffc, 8) == .success([0xfc, 0xfd, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff]))
            #expect(device.accesses.map { [$0.offset, UInt64($0.width)] } == [[0x1ffc, 4]], "the table's bytes never reach the device")
        },
        VPCIRow("VPCI-93", "the MSI-X table range reads all ones and drops writes, both counted as done; the PBA reads the device") { rig in
            #expect(rig.read(.bar(0), 0x2000, 4) == .success([0xff, 0xff, 0xff, 0xff]))
            #expect(rig.write(.bar(0), 0x2000, [1, 2, 3, 4]) == 0)
            #expect(rig.read(.bar(0), 0x2000, 4) == .success([0xff, 0xff, 0xff, 0xff]))
            #expect(rig.read(.bar(0), 0x3000, 4) == .success([0, 0, 0, 0]))
        },
        VPCIRow("VPCI-100", "mmap order: index past 8 EINVAL, MAP_PRIVATE EINVAL, ROM/config/VGA EINVAL, past the page-aligned BAR EINVAL") { rig in
            #expect(rig.mmapStatus(9, length: 0x1000) == EINVAL)
            #expect(rig.mmapStatus(2, length: 0x1000, shared: false) == EINVAL)
            for index: UInt32 in [6, 7, 8] { #expect(rig.mmapStatus(index, length: 0x1000) == EINVAL, "region \(index)") }
            #expect(rig.mmapStatus(2, length: 0x11000) == EINVAL)
            #expect(rig.mmapStatus(2, offset: 0x10000, length: 0x1000) == EINVAL)
            #expect(rig.mmapStatus(2, offset: 0xf000, length: 0x1000) == 0)
        },
        VPCIRow("VPCI-104", "the MSI-X table page of BAR0 may be mmapped: no check in mmap") { rig in
            #expect(rig.mmapStatus(0, offset: 0x2000, length: 0x1000) == 0)
        },
    ]

    // MARK: §5 GET_IRQ_INFO, SET_IRQS

    static let irqs: [VPCIRow] = [
        VPCIRow("VPCI-151", "counts: INTx 1 (pin), MSI 4 (Multiple Message Capable), MSI-X 4 (QSIZE + 1), ERR 1, REQ 1") { rig in
            #expect(VFIOIRQIndex.allCases.map { rig.irqCount($0) } == [1, 4, 4, 1, 1])
        },
        VPCIRow("VPCI-151", "no interrupt pin: INTx count 0 (v6.15+: the virtual pin)", image: { VPCIImage(pin: 0) }) { rig in
            #expect(rig.irqCount(.intx) == 0)
        },
        VPCIRow("VPCI-161", "MASK/UNMASK on MSI, MSI-X, ERR and REQ are ENOTTY; an ACTION of no bit or two bits is ENOTTY") { rig in
            for index: VFIOIRQIndex in [.msi, .msix, .err, .req] {
                #expect(rig.irq(VFIO_IRQ_SET_ACTION_MASK, index) == ENOTTY, "\(index) MASK")
                #expect(rig.irq(VFIO_IRQ_SET_ACTION_UNMASK, index) == ENOTTY, "\(index) UNMASK")
            }
            #expect(rig.irq(0, .intx) == ENOTTY)
            #expect(rig.irq(VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_ACTION_UNMASK, .intx) == ENOTTY)
        },
        VPCIRow("VPCI-162", "one of INTx/MSI/MSI-X at a time: with MSI-X on, INTx and MSI enable are EINVAL; ERR and REQ still take a trigger") {
            rig in
            let events = try (0..<4).map { _ in try EventFD() }
            #expect(rig.enable(.msix, [events[0]]) == 0)
            #expect(rig.enable(.intx, [events[1]]) == EINVAL)
            #expect(rig.enable(.msi, [events[1]]) == EINVAL)
            #expect(rig.enable(.err, [events[2]]) == 0)
            #expect(rig.enable(.req, [events[3]]) == 0)
        },
        VPCIRow("VPCI-170", "INTx TRIGGER: enable with an eventfd, loopback DATA_NONE signals it, count-0 DATA_NONE disables; a second disable EINVAL") { rig in
            let event = try EventFD()
            #expect(rig.enable(.intx, [event]) == 0)
            #expect(rig.irq(VFIO_IRQ_SET_ACTION_TRIGGER, .intx) == 0)
            #expect(event.read() == 1)
            #expect(rig.irq(VFIO_IRQ_SET_ACTION_TRIGGER, .intx, count: 0) == 0)
            #expect(rig.irq(VFIO_IRQ_SET_ACTION_TRIGGER, .intx, count: 0) == EINVAL)
        },
        VPCIRow("VPCI-172", "INTx MASK/UNMASK need INTx active (EINVAL before); with INTx on both work") { rig in
            #expect(rig.irq(VFIO_IRQ_SET_ACTION_MASK, .intx) == EINVAL)
            #expect(rig.irq(VFIO_IRQ_SET_ACTION_UNMASK, .intx) == EINVAL)
            let event = try EventFD()
            #expect(rig.enable(.intx, [event]) == 0)
            #expect(rig.irq(VFIO_IRQ_SET_ACTION_MASK, .intx) == 0)
            #expect(rig.irq(VFIO_IRQ_SET_ACTION_UNMASK, .intx) == 0)
        },
        VPCIRow("VPCI-180", "MSI-X disable: count 0 DATA_NONE releases every vector; the index can be enabled again; a disable of MSI then is EINVAL") {
            rig in
            let events = try (0..<2).map { _ in try EventFD() }
            #expect(rig.enable(.msix, events) == 0)
            #expect(rig.irq(VFIO_IRQ_SET_ACTION_TRIGGER, .msix, count: 0) == 0)
            #expect(rig.hw(VPCIImage.msixAt + 2, 2) & 0x8000 == 0)
            #expect(rig.enable(.msix, events) == 0)
            #expect(rig.irq(VFIO_IRQ_SET_ACTION_TRIGGER, .msi, count: 0) == EINVAL)
        },
        VPCIRow("VPCI-182", "MSI-X per vector: the device's interrupt on vector 1 reaches the second eventfd only") { rig in
            let events = try (0..<2).map { _ in try EventFD() }
            #expect(rig.enable(.msix, events) == 0)
            #expect(rig.model.raiseInterrupt(vector: 1) == .msix(vector: 1))
            #expect(events[0].read() == nil)
            #expect(events[1].read() == 1)
        },
        VPCIRow("VPCI-184", "a failing SET_IRQS on active MSI-X: vectors from start through the failing one end with no trigger, later ones keep theirs, MSI-X stays on") {
            rig in
            let events = try (0..<4).map { _ in try EventFD() }
            #expect(rig.enable(.msix, Array(events.prefix(3))) == 0)
            #expect(rig.irqSet(trigger, .msix, count: 2, .eventFD([events[3].fd, 9999])) == EBADF)
            for vector in 0..<3 { _ = rig.model.raiseInterrupt(vector: vector) }
            #expect(events.map { $0.read() } == [nil, nil, 1, nil])
            #expect(rig.hw(VPCIImage.msixAt + 2, 2) & 0x8000 != 0)
        },
        VPCIRow("VPCI-186", "msi_qmax is kept at MSI disable: enabled with 2 vectors and disabled, Multiple Message Enable 2 written clamps to 1; GET_IRQ_INFO still says 4") {
            rig in
            let events = try (0..<2).map { _ in try EventFD() }
            #expect(rig.enable(.msi, events) == 0)
            #expect(rig.irq(VFIO_IRQ_SET_ACTION_TRIGGER, .msi, count: 0) == 0)
            rig.cfg(VPCIImage.msiAt + 2, 1, write: 0xa4)
            #expect(rig.cfg(VPCIImage.msiAt + 2, 1) & 0x70 == 0x10)
            #expect(rig.irqCount(.msi) == 4)
        },
        VPCIRow("VPCI-187", "MSI-X and MSI enabled set the device's INTx Disable, disabled clear it; the virtual bit 10 stays as the user left it") { rig in
            let event = try EventFD()
            for index: VFIOIRQIndex in [.msix, .msi] {
                #expect(rig.enable(index, [event]) == 0, "\(index)")
                #expect(rig.hw(4, 2) & 0x400 != 0, "\(index) on: DisINTx in the device")
                #expect(rig.cfg(4, 2) & 0x400 == 0, "\(index) on: the virtual bit")
                #expect(rig.irq(VFIO_IRQ_SET_ACTION_TRIGGER, index, count: 0) == 0, "\(index)")
                #expect(rig.hw(4, 2) & 0x400 == 0, "\(index) off")
            }
        },
        VPCIRow("VPCI-185", "DATA_NONE TRIGGER on an inactive MSI index is EINVAL; on an active one signals every vector in range") { rig in
            #expect(rig.irq(VFIO_IRQ_SET_ACTION_TRIGGER, .msi) == EINVAL)
            let events = try (0..<2).map { _ in try EventFD() }
            #expect(rig.enable(.msi, events) == 0)
            #expect(rig.irq(VFIO_IRQ_SET_ACTION_TRIGGER, .msi, count: 2) == 0)
            #expect(events.map { $0.read() } == [1, 1])
        },
    ]

    static let intxAutomask: [VPCIRow] = [
        VPCIRow("VPCI-174", "automask: the device's INTx masks the line in the device (PCI 2.3 INTx Disable) and signals once; UNMASK lets the next one through") { rig in
            let event = try EventFD()
            #expect(rig.enable(.intx, [event]) == 0)
            #expect(rig.model.raiseInterrupt() == .intx)
            #expect(event.read() == 1)
            #expect(rig.hw(4, 2) & 0x400 != 0)
            #expect(rig.cfg(4, 2) & 0x400 == 0, "the virtual INTx Disable is the user's")
            #expect(rig.model.raiseInterrupt() == nil)
            #expect(event.read() == nil)
            #expect(rig.irq(VFIO_IRQ_SET_ACTION_UNMASK, .intx) == 0)
            #expect(rig.hw(4, 2) & 0x400 == 0)
            #expect(rig.model.raiseInterrupt() == .intx)
            #expect(event.read() == 1)
        },
        VPCIRow("VPCI-172", "INTx MASK sets the device's INTx Disable (PCI 2.3), UNMASK clears it; a masked line delivers nothing") { rig in
            let event = try EventFD()
            #expect(rig.enable(.intx, [event]) == 0)
            #expect(rig.irq(VFIO_IRQ_SET_ACTION_MASK, .intx) == 0)
            #expect(rig.hw(4, 2) & 0x400 != 0)
            #expect(rig.model.raiseInterrupt() == nil)
            #expect(rig.irq(VFIO_IRQ_SET_ACTION_UNMASK, .intx) == 0)
            #expect(rig.hw(4, 2) & 0x400 == 0)
            #expect(rig.model.raiseInterrupt() == .intx)
            #expect(event.read() == 1)
        },
        VPCIRow("VPCI-171", "INTx disable releases the trigger: a loopback DATA_NONE is then EINVAL, nothing reaches the eventfd, and MSI can be enabled") { rig in
            let event = try EventFD()
            #expect(rig.enable(.intx, [event]) == 0)
            #expect(rig.irq(VFIO_IRQ_SET_ACTION_TRIGGER, .intx, count: 0) == 0)
            #expect(rig.irq(VFIO_IRQ_SET_ACTION_TRIGGER, .intx) == EINVAL)
            #expect(event.read() == nil)
            #expect(rig.enable(.msi, [try EventFD()]) == 0)
        },
    ]

    // MARK: §5.5 ERR and REQ (vfio_pci_intrs.c vfio_pci_set_ctx_trigger_single)

    static let trigger = UInt32(VFIO_IRQ_SET_ACTION_TRIGGER)

    static let errReq: [VPCIRow] = [VFIOIRQIndex.err, .req].flatMap { index in
        [
            VPCIRow("VPCI-190", "\(index) without a trigger: start 1 or count 2 EINVAL; NONE count 1 or 0 EINVAL; BOOL 0 and EVENTFD with count 0 EINVAL; BOOL 1 and fd -1 are 0; fd -2 EINVAL (source over the spec table: vfio_pci_intrs.c:800)") { rig in
                let event = try EventFD()
                #expect(rig.irqSet(trigger, index, start: 1, count: 1, .eventFD([event.fd])) == EINVAL)
                #expect(rig.irqSet(trigger, index, count: 2, .eventFD([event.fd, event.fd])) == EINVAL)
                #expect(rig.irqSet(trigger, index, count: 1, .none) == EINVAL)
                #expect(rig.irqSet(trigger, index, count: 0, .none) == EINVAL)
                #expect(rig.irqSet(trigger, index, count: 0, .bool([])) == EINVAL)
                #expect(rig.irqSet(trigger, index, count: 0, .eventFD([])) == EINVAL)
                #expect(rig.irqSet(trigger, index, count: 1, .bool([true])) == 0)
                #expect(rig.irqSet(trigger, index, count: 1, .eventFD([-1])) == 0)
                #expect(rig.irqSet(trigger, index, count: 1, .eventFD([-2])) == EINVAL)
                #expect(event.read() == nil)
            },
            VPCIRow("VPCI-190", "\(index) with a trigger: NONE count 1 and BOOL true signal, BOOL false does not; NONE count 0 releases it; fd -1 releases it") { rig in
                let event = try EventFD()
                #expect(rig.irqSet(trigger, index, count: 1, .eventFD([event.fd])) == 0)
                #expect(rig.irqSet(trigger, index, count: 1, .none) == 0)
                #expect(event.read() == 1)
                #expect(rig.irqSet(trigger, index, count: 1, .bool([false])) == 0)
                #expect(event.read() == nil)
                #expect(rig.irqSet(trigger, index, count: 1, .bool([true])) == 0)
                #expect(event.read() == 1)
                #expect(rig.irqSet(trigger, index, count: 0, .none) == 0)
                #expect(rig.irqSet(trigger, index, count: 1, .none) == EINVAL, "released")
                #expect(rig.irqSet(trigger, index, count: 1, .eventFD([event.fd])) == 0)
                #expect(rig.irqSet(trigger, index, count: 1, .eventFD([-1])) == 0)
                #expect(rig.irqSet(trigger, index, count: 1, .none) == EINVAL, "released by fd -1")
            },
            VPCIRow("VPCI-192", "an \(index) trigger survives VFIO_DEVICE_RESET and a hot reset") { rig in
                let event = try EventFD()
                #expect(rig.irqSet(trigger, index, count: 1, .eventFD([event.fd])) == 0)
                #expect(rig.reset() == 0)
                #expect(rig.irqSet(trigger, index, count: 1, .none) == 0)
                #expect(event.read() == 1)
                #expect(try rig.hotReset() == 0)
                #expect(rig.irqSet(trigger, index, count: 1, .none) == 0)
                #expect(event.read() == 1)
            },
        ]
    }

    // MARK: §6.2 hot reset INFO

    /// The default machine grouped as an AMD-Vi host.
    static let amdBase: BusSnapshot = try! BusSnapshot.load(.machine(FixtureMachine.load(directory: FixtureMachine.locate("default"))), platform: .amdVi)

    /// A function the AMD IOMMU does not cover (class 0806, the IOMMU's own), so it gets no group.
    static func ungroupedIOMMUFunction() -> VPCIImage {
        var image = VPCIImage(device: 0x5679, multifunction: true)
        image.set(0x08, 4, 0x0806_0000)
        return image
    }

    static let hotReset: [VPCIRow] = [
        VPCIRow("VPCI-212", "INFO lists the one function below the root port: segment 0, bus 0x5f, devfn 0, its group") { rig in
            let info = try rig.hotResetInfo(room: 2)
            #expect(info.errno == 0)
            let group = try #require(rig.machine.groupID(of: VPCIRig.address))
            #expect(info.entries.map { $0.0 } == [VPCIRig.address] && info.entries.map { $0.1 } == [group])
        },
        VPCIRow(
            "VPCI-213", "slot scope: with a second function below the root port, INFO lists both, in bus order, with their groups",
            image: { VPCIImage(multifunction: true) },
            others: { [(neighbour, VPCIImage(device: 0x5679, multifunction: true))] }
        ) { rig in
            let info = try rig.hotResetInfo(room: 4)
            #expect(info.errno == 0)
            #expect(info.entries.map { $0.0 } == [VPCIRig.address, neighbour])
            let groups = try [VPCIRig.address, neighbour].map { try #require(rig.machine.groupID(of: $0)) }
            #expect(info.entries.map { $0.1 } == groups)
        },
        VPCIRow(
            "VPCI-221", "a function in scope that is not a vfio-pci device (its driver unbound) makes the hot reset EINVAL; the device is not reset",
            image: { VPCIImage(multifunction: true) },
            others: { [(neighbour, VPCIImage(device: 0x5679, multifunction: true))] }
        ) { rig in
            try rig.system.core.unbindDriver(from: neighbour)
            rig.model.barMemory(VPCIImage.ramBAR)![0] = 0x22
            let status = try rig.hotReset(others: [neighbour])
            #expect(status == EINVAL)
            if rig.path == .swiftAPI { #expect(rig.lastError?.rule == .VPCI_221, "\(String(describing: rig.lastError))") }
            #expect(rig.model.barMemory(VPCIImage.ramBAR)![0] == 0x22)
        },
        VPCIRow("VPCI-222", "group path: the device's own group fd proves ownership — the hot reset is 0") { rig in
            let status = try rig.hotReset()
            #expect(status == 0)
        },
        VPCIRow(
            "VPCI-212", "INFO with room when a function in scope has no IOMMU group (AMD-Vi: the IOMMU's own function, class 0806): EPERM",
            image: { VPCIImage(multifunction: true) }, others: { [(neighbour, ungroupedIOMMUFunction())] }, base: { amdBase },
            profileName: "amd-vi"
        ) { rig in
            #expect(rig.machine.groupID(of: neighbour) == nil, "the neighbour must have no group for this row to mean anything")
            let info = try rig.hotResetInfo(room: 2)
            #expect(info.errno == EPERM)
        },
        VPCIRow(
            "VPCI-211",
            "INFO with no room when a function in scope has no IOMMU group: ENOSPC with the count needed — the room check comes before the fill's EPERM (vfio_pci_ioctl_get_pci_hot_reset_info)",
            image: { VPCIImage(multifunction: true) }, others: { [(neighbour, ungroupedIOMMUFunction())] }, base: { amdBase },
            profileName: "amd-vi"
        ) { rig in
            let info = try rig.hotResetInfo(room: 0)
            switch rig.path {
            case .swiftAPI: #expect(info.errno == EPERM, "the Swift API has no room to check: the fill's EPERM")
            case .uapi:
                #expect(info.errno == ENOSPC)
                #expect((info.argsz, info.flags, info.count) == (12, 0, 2))
            }
        },
        VPCIRow("VPCI-211", "INFO with no room: ENOSPC, the header with argsz as given, flags 0 and the count needed; the array untouched") { rig in
            let info = try rig.hotResetInfo(room: 0)
            switch rig.path {
            case .swiftAPI: #expect(info.errno == 0 && info.entries.count == 1, "the Swift API returns the whole list")
            case .uapi:
                #expect(info.errno == ENOSPC)
                #expect((info.argsz, info.flags, info.count) == (12, 0, 1))
            }
        },
    ]
}

/// A function whose register BARs log every access the device sees (offset and width) and read
/// back the low byte of each byte's offset, so a multi-byte access shows its byte order.
final class AccessRecordingDevice: VirtualPCIDevice, @unchecked Sendable {
    private let lock = NSLock()
    private var log: [(bar: Int, offset: UInt64, width: Int, write: Bool)] = []

    var accesses: [(bar: Int, offset: UInt64, width: Int, write: Bool)] { lock.withLock { log } }
    func clearAccesses() { lock.withLock { log.removeAll() } }

    override func mmioRead(_ bar: Int, offset: UInt64, width: Int) -> UInt64 {
        lock.withLock { log.append((bar, offset, width, false)) }
        return (0..<UInt64(width)).reduce(0) { $0 | ((offset + $1) & 0xff) << (8 * $1) }
    }

    override func mmioWrite(_ bar: Int, offset: UInt64, width: Int, _ value: UInt64) {
        lock.withLock { log.append((bar, offset, width, true)) }
    }
}

extension VPCIRig {
    private func errno(_ body: () throws(VFIOError) -> Void) -> Int32 {
        do throws(VFIOError) {
            try body()
            return 0
        } catch { return error.errno.rawValue }
    }

    private func call<T>(_ request: UInt, _ argument: inout T) -> Int32 {
        let result = withUnsafeMutablePointer(to: &argument) { system.ioctl(fds!.device, request, UInt(bitPattern: $0)) }
        return result < 0 ? Glibc.errno : 0
    }

    /// `VFIO_DEVICE_SET_IRQS` with `flags` (an action) and `data`: 0 or the errno.
    func irqSet(_ action: UInt32, _ index: VFIOIRQIndex, start: UInt32 = 0, count: UInt32, _ data: VFIOIRQData) -> Int32 {
        switch path {
        case .swiftAPI:
            let request = VFIOIRQSet(action: VFIOIRQSetFlags(rawValue: action), index: index, start: start, count: count, data: data)
            return errno { () throws(VFIOError) in try device!.device.setIRQs(request) }
        case .uapi:
            let payload: [UInt8]
            let dataFlag: UInt32
            switch data {
            case .none: (payload, dataFlag) = ([], UInt32(VFIO_IRQ_SET_DATA_NONE))
            case .bool(let values): (payload, dataFlag) = (values.map { $0 ? 1 : 0 }, UInt32(VFIO_IRQ_SET_DATA_BOOL))
            case .eventFD(let fds):
                (payload, dataFlag) = (fds.flatMap { fd in withUnsafeBytes(of: fd.littleEndian) { Array($0) } }, UInt32(VFIO_IRQ_SET_DATA_EVENTFD))
            }
            var buffer = [UInt8](repeating: 0, count: 20 + payload.count)
            buffer.withUnsafeMutableBytes { raw in
                for (i, word) in [UInt32(raw.count), dataFlag | action, index.rawValue, start, count].enumerated() {
                    raw.storeBytes(of: word, toByteOffset: 4 * i, as: UInt32.self)
                }
                for (i, byte) in payload.enumerated() { raw[20 + i] = byte }
            }
            let result = buffer.withUnsafeMutableBytes { system.ioctl(fds!.device, clinuxvfio_device_set_irqs(), UInt(bitPattern: $0.baseAddress)) }
            return result < 0 ? Glibc.errno : 0
        }
    }

    /// `VFIO_GROUP_GET_DEVICE_FD` with `name` on the rig's group: 0 (the fd closed again) or the errno.
    func openByName(_ name: String) -> Int32 {
        switch path {
        case .swiftAPI:
            do throws(VFIOError) {
                try device!.group.openDevice(name).close()
                return 0
            } catch { return error.errno.rawValue }
        case .uapi:
            let fd = name.withCString { system.ioctl(fds!.group, clinuxvfio_group_get_device_fd(), UInt(bitPattern: $0)) }
            guard fd >= 0 else { return Glibc.errno }
            _ = system.close(fd)
            return 0
        }
    }

    /// Opens the device a second time through its group, runs `body` with a 2-byte config read
    /// on that fd, then closes it.
    func openSecondFD(_ body: ((Int) throws -> UInt16) throws -> UInt16) throws -> UInt16 {
        switch path {
        case .swiftAPI:
            let second = try device!.group.openDevice(VPCIRig.address.description)
            defer { second.close() }
            return try body { offset in try second.readConfig(UInt16.self, at: offset) }
        case .uapi:
            let second = VPCIRig.address.description.withCString { system.ioctl(fds!.group, clinuxvfio_group_get_device_fd(), UInt(bitPattern: $0)) }
            try #require(second >= 0 && second != fds!.device)
            defer { _ = system.close(second) }
            return try body { offset in
                var word: UInt16 = 0
                let done = withUnsafeMutableBytes(of: &word) { system.pread(second, $0, UInt64(VFIO_PCI_CONFIG_REGION_INDEX) << 40 | UInt64(offset)) }
                try #require(done == 2)
                return word
            }
        }
    }

    /// `VFIO_DEVICE_GET_INFO`: errno, flags, regions, IRQ indexes.
    func deviceInfo() -> (errno: Int32, flags: UInt32, regions: UInt32, irqs: UInt32) {
        switch path {
        case .swiftAPI:
            do throws(VFIOError) {
                let info = try device!.device.info()
                return (0, info.flags.rawValue, info.regionCount, info.irqCount)
            } catch { return (error.errno.rawValue, 0, 0, 0) }
        case .uapi:
            var info = vfio_device_info()
            info.argsz = UInt32(MemoryLayout<vfio_device_info>.size)
            let status = call(clinuxvfio_device_get_info(), &info)
            return (status, info.flags, info.num_regions, info.num_irqs)
        }
    }

    /// `VFIO_DEVICE_GET_REGION_INFO` for `index`; on the UAPI path flags, size, offset and
    /// cap_offset go in as `seed` (the Swift API has no such inputs: `seed` comes back as cap_offset).
    func regionInfo(_ index: UInt32, seed: UInt32 = 0) -> (errno: Int32, flags: UInt32, size: UInt64, offset: UInt64, capOffset: UInt32) {
        switch path {
        case .swiftAPI:
            do throws(VFIOError) {
                let info = try device!.device.regionInfo(index)
                return (0, info.flags.rawValue, info.size, info.offset, seed)
            } catch { return (error.errno.rawValue, 0, 0, 0, seed) }
        case .uapi:
            var info = vfio_region_info()
            (info.argsz, info.index, info.flags, info.cap_offset) = (32, index, seed, seed)
            (info.size, info.offset) = (UInt64(seed), UInt64(seed))
            let status = call(clinuxvfio_device_get_region_info(), &info)
            return (status, info.flags, info.size, info.offset, info.cap_offset)
        }
    }

    /// The byte count a pread (or pwrite) of `count` bytes returns, or minus the errno.
    func transfer(_ index: VFIORegionIndex, _ offset: Int, _ count: Int, write: Bool = false) -> Int {
        var bytes = [UInt8](repeating: 0, count: count)
        return bytes.withUnsafeMutableBytes { buffer in
            switch path {
            case .swiftAPI:
                do throws(VFIOError) {
                    return write
                        ? try device!.device.write(index, offset: UInt64(offset), from: UnsafeRawBufferPointer(buffer))
                        : try device!.device.read(index, offset: UInt64(offset), into: buffer)
                } catch { return -Int(error.errno.rawValue) }
            case .uapi:
                let position = UInt64(index.rawValue) << 40 | UInt64(offset)
                let done = write ? system.pwrite(fds!.device, UnsafeRawBufferPointer(buffer), position) : system.pread(fds!.device, buffer, position)
                return done < 0 ? -Int(Glibc.errno) : done
            }
        }
    }

    /// mmap of `length` bytes of region `index` at `offset`: 0 or the errno (the mapping is undone).
    func mmapStatus(_ index: UInt32, offset: UInt64 = 0, length: UInt64, shared: Bool = true) -> Int32 {
        switch path {
        case .swiftAPI:
            return errno { () throws(VFIOError) in _ = try device!.device.mmapTarget(index, offset: offset, length: length, shared: shared) }
        case .uapi:
            let flags = shared ? MAP_SHARED : MAP_PRIVATE
            guard let mapped = system.mmap(nil, Int(length), PROT_READ | PROT_WRITE, flags, fds!.device, Int64(UInt64(index) << 40 | offset)) else {
                return Glibc.errno
            }
            _ = system.munmap(mapped, Int(length))
            return 0
        }
    }

    /// `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO` with room for `room` entries: errno, the header as
    /// written back and the entries (address, group); the Swift API returns the list.
    func hotResetInfo(room: Int) throws -> (errno: Int32, argsz: UInt32, flags: UInt32, count: UInt32, entries: [(PCIAddress, Int)]) {
        switch path {
        case .swiftAPI:
            do throws(VFIOError) {
                let list = try device!.device.hotResetInfo()
                return (0, 0, 0, UInt32(list.count), list.map { ($0.address, $0.groupID) })
            } catch { return (error.errno.rawValue, 0, 0, 0, []) }
        case .uapi:
            var buffer = [UInt8](repeating: 0xa5, count: 12 + 8 * room)
            buffer.withUnsafeMutableBytes { raw in
                raw.storeBytes(of: UInt32(raw.count), toByteOffset: 0, as: UInt32.self)
                raw.storeBytes(of: UInt32(0xffff_ffff), toByteOffset: 4, as: UInt32.self)
                raw.storeBytes(of: UInt32(0), toByteOffset: 8, as: UInt32.self)
            }
            let result = buffer.withUnsafeMutableBytes { system.ioctl(fds!.device, clinuxvfio_device_get_pci_hot_reset_info(), UInt(bitPattern: $0.baseAddress)) }
            let status = result < 0 ? Glibc.errno : 0
            let word = { (at: Int) in buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: at, as: UInt32.self) } }
            let count = word(8)
            var entries: [(PCIAddress, Int)] = []
            if status == 0 {
                for i in 0..<Int(count) {
                    let base = 12 + 8 * i
                    let segment = UInt16(truncatingIfNeeded: word(base + 4))
                    let address = try #require(
                        PCIAddress(parsing: String(format: "%04x:%02x:%02x.%x", segment, buffer[base + 6], buffer[base + 7] >> 3, buffer[base + 7] & 7)))
                    entries.append((address, Int(word(base))))
                }
            }
            if status == ENOSPC {
                #expect(buffer[12...].allSatisfy { $0 == 0xa5 }, "VPCI-211: the array is not touched")
            }
            return (status, word(0), word(4), count, entries)
        }
    }
}
