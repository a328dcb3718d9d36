import KernelRules
import Machine
import CLinuxVFIO
import DeviceModels
import Glibc
import PCIBus
import SampleDrivers
import SystemPackage
import Testing
import VFIO
import Syscalls
import UserMemory

/// Every ioctl that takes a user pointer, handed one that the kernel's `copy_from_user` /
/// `copy_to_user` fault on: a `PROT_NONE` page, a read-only page for an ioctl that writes back, a
/// struct (or its trailing array, or the dirty bitmap it points to) running into a `PROT_NONE`
/// page. The facade answers -1 with `EFAULT` and an error naming the object, the ioctl, the copy
/// and the address, and leaves the container, group and device as they were — except where the
/// kernel itself changes state before the copy that faults (UNMAP_DMA writes `size` back after
/// unmapping, T1-37). Before the facade copied through the kernel each of these was a SIGSEGV.
@Suite("UAPI user pointers that fault: EFAULT and nothing changed, never SIGSEGV")
struct UserPointerFaultTests {
    static let address = PCIAddress(parsing: "0000:5f:00.0")!

    /// The memcpy engine at 0000:5f:00.0 of the default machine opened through VFIO (type1v2),
    /// with one 4 KiB mapping, dirty tracking started, bus mastering on and MSI-X off, and a spare
    /// 4 KiB of host memory to map.
    final class Bench {
        let machine: SimulatedMachine
        let user: UserspaceDevice
        let region: DMARegion
        let spare: HostMemory
        let events: (EventFD, EventFD)

        init() throws {
            machine = try SimulatedMachine.load(machine: "default")
            user = try UserspaceDevice(UserPointerFaultTests.address, in: machine.vfio)
            region = try user.mapDMA(size: 0x1000)
            spare = try machine.process.allocate(size: 0x1000)
            _ = try user.container.dirtyPages(.start)
            try user.setBusMaster(true)
            events = (try EventFD(), try EventFD())
        }

        /// What a faulting ioctl must leave as it was: the mappings, the group's status, and the
        /// function's config space (bus master, MSI-X enable: a reset or SET_IRQS shows there).
        struct State: Equatable {
            let mappings: [DMAMapping]
            let status: VFIOGroupStatus
            let config: [UInt32]
        }

        var state: State {
            let function = machine.devices[UserPointerFaultTests.address]!
            return State(
                mappings: user.container.mappings, status: user.group.status,
                config: stride(from: 0, to: function.configSpaceSize, by: 4).map { function.readConfig($0, width: 4) })
        }

        func ioctl(_ object: Object, _ request: UInt, _ argument: UInt) -> Int32 {
            switch object {
            case .container: user.container.ioctl(request: request, argument: argument)
            case .group: user.group.ioctl(request: request, argument: argument)
            case .device: user.device.ioctl(request: request, argument: argument)
            }
        }

        func ioctlResult(_ object: Object, _ request: UInt, _ argument: UInt) -> Result<Int32, VFIOError> {
            switch object {
            case .container: user.container.ioctlResult(request: request, argument: argument)
            case .group: user.group.ioctlResult(request: request, argument: argument)
            case .device: user.device.ioctlResult(request: request, argument: argument)
            }
        }

        func description(of object: Object) -> String {
            switch object {
            case .container: user.container.description
            case .group: user.group.description
            case .device: user.device.description
            }
        }
    }

    enum Object: String, Sendable { case container, group, device }

    /// One ioctl with a valid argument: its bytes, given the bench and where a dirty bitmap's
    /// `data` points. `variant` tells arguments of the same ioctl apart.
    struct IOCTL: Sendable {
        let object: Object
        let name: String
        var variant = ""
        let request: UInt
        let argument: @Sendable (_ bench: Bench, _ bitmapData: UInt64) -> [UInt8]
    }

    /// Where the argument (or the bitmap it points to) lies.
    enum Placement: Sendable, CustomStringConvertible {
        /// The pointer is the first byte of a `PROT_NONE` page.
        case inaccessible
        /// At the start of a read-only page.
        case readOnly
        /// Only the first `readable` bytes precede a `PROT_NONE` page.
        case straddling(readable: Int)
        /// Readable and writable; the dirty bitmap's `data` is a `PROT_NONE` page.
        case bitmapInaccessible
        /// Readable and writable; the dirty bitmap's `data` is a read-only page.
        case bitmapReadOnly
        /// Readable and writable; the dirty bitmap's `data` is NULL, which `access_ok` passes.
        case bitmapNull

        var description: String {
            switch self {
            case .inaccessible: "argument in a PROT_NONE page"
            case .readOnly: "argument in a read-only page"
            case .straddling(let readable): "argument running into a PROT_NONE page after \(readable) bytes"
            case .bitmapInaccessible: "bitmap data in a PROT_NONE page"
            case .bitmapReadOnly: "bitmap data in a read-only page"
            case .bitmapNull: "bitmap data NULL"
            }
        }
    }

    /// The copy that faults: from or to the argument at a byte offset, or to the dirty bitmap.
    enum Copy: Sendable {
        case fromUser(at: Int)
        case toUser(at: Int)
        case toBitmap
    }

    enum Outcome: Sendable {
        /// `EFAULT` from `Copy`, nothing changed.
        case fault(Copy)
        /// `EFAULT` from `Copy` after the kernel's own state change: the mapping is gone (T1-37).
        case faultAfterUnmap(Copy)
        /// Nothing is written back, so a read-only argument works.
        case success
    }

    struct Row: Sendable, CustomTestStringConvertible {
        let ioctl: IOCTL
        let placement: Placement
        let rule: String
        let outcome: Outcome

        var testDescription: String { "\(rule): \(ioctl.object.rawValue) \(ioctl.name)\(ioctl.variant), \(placement)" }
    }

    @Test("EFAULT with the ioctl, copy and address named, state unchanged", arguments: rows)
    func fault(_ row: Row) throws {
        let bench = try Bench()
        defer { bench.user.close() }
        let pages = try UserPages()
        defer { pages.release() }
        let bitmapData: UInt64 =
            switch row.placement {
            case .bitmapInaccessible: UInt64(UInt(bitPattern: pages.inaccessible))
            case .bitmapNull: 0
            default: UInt64(UInt(bitPattern: pages.bitmap))
            }
        let bytes = row.ioctl.argument(bench, bitmapData)
        let argument: UInt
        switch row.placement {
        case .inaccessible:
            argument = UInt(bitPattern: pages.inaccessible)
        case .readOnly:
            argument = pages.place(bytes)
            try pages.protect(pages.argument, PROT_READ)
        case .straddling(let readable):
            argument = pages.straddle(bytes, readable: readable)
        case .bitmapInaccessible, .bitmapNull:
            argument = pages.place(bytes)
        case .bitmapReadOnly:
            argument = pages.place(bytes)
            try pages.protect(pages.bitmap, PROT_READ)
        }
        let before = bench.state
        let result = bench.ioctl(row.ioctl.object, row.ioctl.request, argument)
        let error = errno
        let copy: Copy
        switch row.outcome {
        case .success:
            #expect(result >= 0)
            if row.ioctl.request == VFIORequest.groupGetDeviceFD { bench.machine.vfio.close(result) }
            return
        case .fault(let faulting):
            copy = faulting
            #expect(bench.state == before, "a faulting copy changes nothing")
        case .faultAfterUnmap(let faulting):
            copy = faulting
            #expect(bench.state.mappings.isEmpty, "T1-37: the kernel unmaps before it copies size back")
        }
        #expect(result == -1 && error == EFAULT, "returned \(result), errno \(error)")

        let explained = bench.ioctlResult(row.ioctl.object, row.ioctl.request, argument)
        guard case .failure(let failure) = explained else {
            Issue.record("the second call succeeded")
            return
        }
        #expect(failure.errno == .badAddress && failure.rule.id == row.rule, "\(failure)")
        #expect(failure.message.hasPrefix("\(bench.description(of: row.ioctl.object)) \(row.ioctl.name)"), "\(failure)")
        let (direction, address): (String, UInt64) =
            switch copy {
            case .fromUser(let offset): ("copy_from_user", UInt64(argument) + UInt64(offset))
            case .toUser(let offset): ("copy_to_user", UInt64(argument) + UInt64(offset))
            case .toBitmap: ("copy_to_user", bitmapData)
            }
        #expect(failure.message.contains(direction) && failure.message.contains("0x\(String(address, radix: 16))"), "\(failure)")
    }
}

extension UserPointerFaultTests {
    @Test("T1-84, T1-37: UNMAP_DMA copies each mapping's dirty bits just before removing it, so a bitmap that faults part-way leaves the mappings before the fault removed")
    func bitmapFaultingPartWay() throws {
        let bench = try Bench()
        defer { bench.user.close() }
        let pages = try UserPages()
        defer { pages.release() }
        let container = bench.user.container
        let memory = try bench.machine.process.allocate(size: 0x8_0000)
        try container.map(vaddr: memory.address, iova: 0x8000_0000, size: 0x4_0000)
        try container.map(vaddr: memory.address + 0x4_0000, iova: 0x8004_0000, size: 0x4_0000)
        // 64 pages a mapping, one bitmap word each: the first word is writable, the second is not.
        let data = pages.inaccessible - 8
        var unmap = Self.unmap(argsz: 48, flags: VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, iova: 0x8000_0000)
        unmap.size = 0x8_0000
        let argument = pages.place(Self.bytes(unmap) + Self.bytes(vfio_bitmap(pgsize: 0x1000, size: 16, data: data.assumingMemoryBound(to: UInt64.self))))
        let result = container.ioctl(request: VFIORequest.iommuUnmapDMA, argument: argument)
        #expect(result == -1 && errno == EFAULT)
        let iovas = container.mappings.map(\.iova)
        #expect(!iovas.contains(0x8000_0000) && iovas.contains(0x8004_0000))
        #expect(data.load(as: UInt64.self) == .max, "the first mapping's 64 dirty pages")
        #expect(pages.argument.load(fromByteOffset: 16, as: UInt64.self) == 0x8_0000, "size is not written back on failure")
    }
}


// MARK: The table

extension UserPointerFaultTests {
    /// A value's bytes as C lays them out.
    static func bytes<T>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value) { Array($0) } }

    static let containerGetInfo = IOCTL(object: .container, name: "GET_INFO", request: clinuxvfio_iommu_get_info()) { _, _ in
        var info = vfio_iommu_type1_info()
        info.argsz = UInt32(MemoryLayout<vfio_iommu_type1_info>.size)
        return bytes(info)
    }
    /// `argsz` with room for the capability chain: the header and the chain go back in one copy.
    static let containerGetInfoWithCaps = IOCTL(object: .container, name: "GET_INFO", variant: " with room for the capabilities", request: clinuxvfio_iommu_get_info()) { _, _ in
        var info = vfio_iommu_type1_info()
        info.argsz = 4096
        return bytes(info)
    }
    static let mapDMA = IOCTL(object: .container, name: "MAP_DMA", request: clinuxvfio_iommu_map_dma()) { bench, _ in
        bytes(
            vfio_iommu_type1_dma_map(
                argsz: 32, flags: UInt32(VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE), vaddr: bench.spare.address, iova: 0x4000_0000, size: 0x1000))
    }
    static func unmap(argsz: UInt32, flags: Int32, iova: UInt64) -> vfio_iommu_type1_dma_unmap {
        var unmap = vfio_iommu_type1_dma_unmap()
        (unmap.argsz, unmap.flags, unmap.iova, unmap.size) = (argsz, UInt32(flags), iova, 0x1000)
        return unmap
    }
    static func dirtyBitmap(argsz: UInt32, flags: Int32) -> vfio_iommu_type1_dirty_bitmap {
        var dirty = vfio_iommu_type1_dirty_bitmap()
        (dirty.argsz, dirty.flags) = (argsz, UInt32(flags))
        return dirty
    }

    static let unmapDMA = IOCTL(object: .container, name: "UNMAP_DMA", request: clinuxvfio_iommu_unmap_dma()) { bench, _ in
        bytes(unmap(argsz: 24, flags: 0, iova: bench.region.iova))
    }
    static let unmapDMABitmap = IOCTL(object: .container, name: "UNMAP_DMA", variant: " GET_DIRTY_BITMAP", request: clinuxvfio_iommu_unmap_dma()) { bench, data in
        bytes(unmap(argsz: 48, flags: VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, iova: bench.region.iova))
            + bytes(vfio_bitmap(pgsize: 0x1000, size: 8, data: UnsafeMutablePointer(bitPattern: UInt(data))))
    }
    static let dirtyPagesStart = IOCTL(object: .container, name: "DIRTY_PAGES", variant: " START", request: clinuxvfio_iommu_dirty_pages()) { _, _ in
        bytes(dirtyBitmap(argsz: 8, flags: VFIO_IOMMU_DIRTY_PAGES_FLAG_START))
    }
    static let dirtyPagesGetBitmap = IOCTL(object: .container, name: "DIRTY_PAGES", variant: " GET_BITMAP", request: clinuxvfio_iommu_dirty_pages()) { bench, data in
        bytes(dirtyBitmap(argsz: 48, flags: VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP))
            + bytes(
                vfio_iommu_type1_dirty_bitmap_get(
                    iova: bench.region.iova, size: 0x1000, bitmap: vfio_bitmap(pgsize: 0x1000, size: 8, data: UnsafeMutablePointer(bitPattern: UInt(data)))))
    }
    static let groupGetStatus = IOCTL(object: .group, name: "GET_STATUS", request: clinuxvfio_group_get_status()) { _, _ in
        bytes(vfio_group_status(argsz: 8, flags: 0))
    }
    static let setContainer = IOCTL(object: .group, name: "SET_CONTAINER", request: clinuxvfio_group_set_container()) { _, _ in
        bytes(Int32(-1))
    }
    static let getDeviceFD = IOCTL(object: .group, name: "GET_DEVICE_FD", request: clinuxvfio_group_get_device_fd()) { _, _ in
        Array("0000:5f:00.0".utf8) + [0]
    }
    static let deviceGetInfo = IOCTL(object: .device, name: "GET_INFO", request: clinuxvfio_device_get_info()) { _, _ in
        var info = vfio_device_info()
        info.argsz = UInt32(MemoryLayout<vfio_device_info>.size)
        return bytes(info)
    }
    static let regionInfo = IOCTL(object: .device, name: "GET_REGION_INFO", request: clinuxvfio_device_get_region_info()) { _, _ in
        var info = vfio_region_info()
        (info.argsz, info.index) = (UInt32(MemoryLayout<vfio_region_info>.size), UInt32(VFIO_PCI_BAR0_REGION_INDEX))
        return bytes(info)
    }
    static let irqInfo = IOCTL(object: .device, name: "GET_IRQ_INFO", request: clinuxvfio_device_get_irq_info()) { _, _ in
        var info = vfio_irq_info()
        (info.argsz, info.index) = (16, UInt32(VFIO_PCI_MSIX_IRQ_INDEX))
        return bytes(info)
    }
    /// MSI-X on with two eventfds: `struct vfio_irq_set` and `s32 data[2]`.
    static let setIRQs = IOCTL(object: .device, name: "SET_IRQS", request: clinuxvfio_device_set_irqs()) { bench, _ in
        var set = vfio_irq_set()
        (set.argsz, set.flags, set.index, set.start, set.count) =
            (28, UInt32(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER), UInt32(VFIO_PCI_MSIX_IRQ_INDEX), 0, 2)
        return bytes(set) + bytes(bench.events.0.fd) + bytes(bench.events.1.fd)
    }
    /// Room for the one affected function: `struct vfio_pci_hot_reset_info` and `devices[1]`.
    static let hotResetInfo = IOCTL(object: .device, name: "GET_PCI_HOT_RESET_INFO", request: clinuxvfio_device_get_pci_hot_reset_info()) { _, _ in
        var info = vfio_pci_hot_reset_info()
        info.argsz = 12 + 8
        return bytes(info) + bytes(vfio_pci_dependent_device())
    }
    /// No room for the affected function: ENOSPC, with the header (count) still copied back.
    static let hotResetInfoTooSmall = IOCTL(object: .device, name: "GET_PCI_HOT_RESET_INFO", variant: " without room (ENOSPC)", request: clinuxvfio_device_get_pci_hot_reset_info()) { _, _ in
        var info = vfio_pci_hot_reset_info()
        info.argsz = 12
        return bytes(info)
    }
    /// `struct vfio_pci_hot_reset` with one group fd (never read: the copies fault first).
    static let hotReset = IOCTL(object: .device, name: "PCI_HOT_RESET", request: clinuxvfio_device_pci_hot_reset()) { _, _ in
        var reset = vfio_pci_hot_reset()
        (reset.argsz, reset.count) = (16, 1)
        return bytes(reset) + bytes(Int32(-1))
    }

    /// The faults of the first copy every struct argument has: the pointer at a `PROT_NONE` page,
    /// and the fixed part (`minsz` bytes) running into one halfway.
    static func copyInFaults(_ ioctl: IOCTL, minsz: Int, rule: String) -> [Row] {
        [
            Row(ioctl: ioctl, placement: .inaccessible, rule: rule, outcome: .fault(.fromUser(at: 0))),
            Row(ioctl: ioctl, placement: .straddling(readable: minsz / 2), rule: rule, outcome: .fault(.fromUser(at: 0))),
        ]
    }

    /// A read-only page for an ioctl that writes its struct back: the copy back faults.
    static func readOnlyFault(_ ioctl: IOCTL, rule: String) -> Row {
        Row(ioctl: ioctl, placement: .readOnly, rule: rule, outcome: .fault(.toUser(at: 0)))
    }

    static let rows: [Row] =
        copyInFaults(containerGetInfo, minsz: 16, rule: "T1-70") + copyInFaults(mapDMA, minsz: 32, rule: "T1-10")
        + copyInFaults(unmapDMA, minsz: 24, rule: "T1-30") + copyInFaults(dirtyPagesStart, minsz: 8, rule: "T1-80")
        + copyInFaults(groupGetStatus, minsz: 8, rule: "VG-04") + copyInFaults(setContainer, minsz: 4, rule: "VG-10")
        + copyInFaults(deviceGetInfo, minsz: 16, rule: "VPCI-30")
        + copyInFaults(regionInfo, minsz: 32, rule: "VPCI-40")
        + copyInFaults(irqInfo, minsz: 16, rule: "VPCI-150") + copyInFaults(setIRQs, minsz: 20, rule: "VPCI-160")
        + copyInFaults(hotResetInfo, minsz: 12, rule: "VPCI-210")
        + copyInFaults(hotReset, minsz: 12, rule: "VPCI-220")
        + [
            readOnlyFault(containerGetInfo, rule: "T1-72"), readOnlyFault(groupGetStatus, rule: "VG-04"),
            readOnlyFault(deviceGetInfo, rule: "VPCI-30"), readOnlyFault(regionInfo, rule: "VPCI-40"),
            readOnlyFault(irqInfo, rule: "VPCI-150"),
            // devices[] goes back first, then the header.
            Row(ioctl: hotResetInfo, placement: .readOnly, rule: "VPCI-210", outcome: .fault(.toUser(at: 12))),
            // ENOSPC copies the header back first; that copy faulting makes it EFAULT.
            readOnlyFault(hotResetInfoTooSmall, rule: "VPCI-210"),
            // The kernel unmaps, then copies `size` back.
            Row(ioctl: unmapDMA, placement: .readOnly, rule: "T1-37", outcome: .faultAfterUnmap(.toUser(at: 0))),
            // The header is readable; the capability chain after it, copied back first, runs into the PROT_NONE page.
            Row(ioctl: containerGetInfoWithCaps, placement: .straddling(readable: 24), rule: "T1-72", outcome: .fault(.toUser(at: 24))),
            // The trailing parts: struct vfio_bitmap, dirty_bitmap_get, the eventfds, the group fds, devices[].
            Row(ioctl: unmapDMABitmap, placement: .straddling(readable: 24), rule: "T1-31", outcome: .fault(.fromUser(at: 24))),
            Row(ioctl: dirtyPagesGetBitmap, placement: .straddling(readable: 8), rule: "T1-82", outcome: .fault(.fromUser(at: 8))),
            Row(ioctl: setIRQs, placement: .straddling(readable: 20), rule: "VPCI-160", outcome: .fault(.fromUser(at: 20))),
            Row(ioctl: hotReset, placement: .straddling(readable: 12), rule: "VPCI-220", outcome: .fault(.fromUser(at: 12))),
            Row(ioctl: hotResetInfo, placement: .straddling(readable: 12), rule: "VPCI-210", outcome: .fault(.toUser(at: 12))),
            // The dirty bitmap the struct points to; the mapping stays (the kernel copies its bits before removing it).
            Row(ioctl: unmapDMABitmap, placement: .bitmapInaccessible, rule: "T1-84", outcome: .fault(.toBitmap)),
            Row(ioctl: unmapDMABitmap, placement: .bitmapReadOnly, rule: "T1-84", outcome: .fault(.toBitmap)),
            Row(ioctl: dirtyPagesGetBitmap, placement: .bitmapInaccessible, rule: "T1-83", outcome: .fault(.toBitmap)),
            Row(ioctl: dirtyPagesGetBitmap, placement: .bitmapReadOnly, rule: "T1-83", outcome: .fault(.toBitmap)),
            // access_ok passes NULL on x86 and arm64: the copy to it faults.
            Row(ioctl: unmapDMABitmap, placement: .bitmapNull, rule: "T1-84", outcome: .fault(.toBitmap)),
            Row(ioctl: dirtyPagesGetBitmap, placement: .bitmapNull, rule: "T1-83", outcome: .fault(.toBitmap)),
            // strndup_user: the name in a PROT_NONE page, or no NUL before one.
            Row(ioctl: getDeviceFD, placement: .inaccessible, rule: "VG-30", outcome: .fault(.fromUser(at: 0))),
            Row(ioctl: getDeviceFD, placement: .straddling(readable: 12), rule: "VG-30", outcome: .fault(.fromUser(at: 12))),
            // Nothing written back: a read-only argument works.
            Row(ioctl: mapDMA, placement: .readOnly, rule: "T1-23", outcome: .success),
            Row(ioctl: dirtyPagesGetBitmap, placement: .readOnly, rule: "T1-82", outcome: .success),
            Row(ioctl: getDeviceFD, placement: .readOnly, rule: "VG-30", outcome: .success),
            Row(ioctl: setIRQs, placement: .readOnly, rule: "VPCI-160", outcome: .success),
        ]
}
