import IOMMU
import Syscalls
import Machine
import UserMemory
import DeviceModels
import PCIBus
import VFIO

/// One input's process in the `uapi` target: a fresh default machine, the fds it opened through
/// the facade (with what each was opened as), its eventfds and the host memory it allocated.
/// `close` closes every facade fd it still holds, so the process-wide fd table ends each input
/// as it began. Also the source of structured values: fds, user addresses, IOVAs and sizes.
final class UAPISession {
    enum FileKind { case container, group, device, eventFD, iommufd, cdev }

    let machine: SimulatedMachine
    private(set) var files: [(fd: Int32, kind: FileKind)] = []
    private var eventFDs: [EventFD] = []
    private(set) var memory: [HostMemory] = []
    static let maximumAllocations = 8

    init(lockedMemoryLimit: UInt64?) {
        machine = DefaultMachine.make(process: ProcessMemory(lockedMemoryLimit: lockedMemoryLimit))
    }

    var vfio: VFIOSystem { machine.vfio }

    /// The functions of the groups under `/dev/vfio`, in group order: the names GET_DEVICE_FD
    /// may be asked for.
    var vfioFunctions: [PCIAddress] { vfio.groupIDs.flatMap { vfio.core.group($0)?.devices ?? [] } }

    /// Records an fd the facade handed out.
    func opened(_ fd: Int32, as kind: FileKind) {
        if fd >= 0 { files.append((fd, kind)) }
    }

    /// A new eventfd, for SET_IRQS to reference.
    func makeEventFD() {
        guard let eventFD = try? EventFD() else { return }
        eventFDs.append(eventFD)
        files.append((eventFD.fd, .eventFD))
    }

    /// The kind of an fd this session opened (nil: not one of its own).
    func kind(of fd: Int32) -> FileKind? { files.last { $0.fd == fd }?.kind }

    /// `allocate` through the process, as a driver's `mmap`.
    func allocate(size: UInt64, hugePages: Bool, writable: Bool) {
        guard memory.count < Self.maximumAllocations,
            let allocation = try? vfio.process.allocate(size: size, hugePages: hugePages, writable: writable)
        else { return }
        memory.append(allocation)
    }

    /// `munmap` of an allocation (refused while DMA mappings pin it).
    func release(_ index: Int) {
        guard memory.indices.contains(index), (try? vfio.process.release(memory[index])) != nil else { return }
        memory.remove(at: index)
    }

    /// Closes every facade fd still open, newest first, and drops the eventfds.
    func close() {
        for (fd, kind) in files.reversed() where kind != .eventFD { vfio.close(fd) }
        files.removeAll()
        eventFDs.removeAll()
    }

    // MARK: Values

    /// An fd: one this session holds, -1, a small number (stdin, libFuzzer's files), or raw.
    func fd(_ input: inout FuzzInput) -> Int32 {
        switch input.u8() % 6 {
        case 0, 1, 2: files.isEmpty ? -1 : input.pick(files).fd
        case 3: -1
        case 4: Int32(input.u8() % 64)
        default: Int32(bitPattern: input.u32())
        }
    }

    /// A user address for MAP_DMA's `vaddr`: inside, at the end of or past an allocation, null,
    /// the top of user space, wrapping, or raw.
    func userAddress(_ input: inout FuzzInput) -> UInt64 {
        switch input.u8() % 6 {
        case 0, 1, 2:
            guard !memory.isEmpty else { return 0 }
            let allocation = input.pick(memory)
            switch input.u8() % 4 {
            case 0: return allocation.address
            case 1: return allocation.address &+ 0x1000
            case 2: return allocation.address &+ allocation.size
            default: return allocation.address &+ UInt64(input.u32() % UInt32(truncatingIfNeeded: allocation.size + 0x2000))
            }
        case 3: return input.pick([0, 0x1000, 0x7fff_ffff_f000, UInt64.max &- 0xfff])
        default: return input.u64()
        }
    }

    /// An IOVA: aligned and interesting (MSI window, the aperture's end, wrapping) or raw.
    func iova(_ input: inout FuzzInput) -> UInt64 {
        switch input.u8() % 4 {
        case 0, 1: input.pick([0, 0x1000, 0x10_0000, 0x4000_0000, 0xfee0_0000, 0xfef0_0000, (1 << 48) - 0x1000, 1 << 48, UInt64.max &- 0xfff])
        case 2: input.u64() & ~0xfff
        default: input.u64()
        }
    }

    /// A mapping size: page multiples, huge, zero, unaligned, raw.
    func size(_ input: inout FuzzInput) -> UInt64 {
        switch input.u8() % 4 {
        case 0, 1: input.pick([0x1000, 0x2000, 0x1_0000, 0x20_0000, 0x40_0000, 0, 0x1001, 1 << 48, UInt64.max])
        case 2: input.u64() & ~0xfff
        default: input.u64()
        }
    }
}
