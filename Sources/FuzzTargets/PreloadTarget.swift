import Foundation
import Glibc
import Machine
import PCIBus
import Syscalls
import UserMemory
import VFIO

/// `preload`: what an unmodified program does to the simulation through the preload library's
/// entry points (`open`, `ioctl`, `mmap`, `munmap`, `dup`, `close`, `fork` onto the boundary),
/// on a machine pinning from the real address space (`ProcessMemory.wholeProcess`, as under
/// `vfiokit run`): BAR mappings of any region, offset, length, protection and placement;
/// loads and stores of every width into trapped register windows; MAP_DMA and UNMAP_DMA of
/// process memory the input has unmapped, protected or mapped over, and of BAR mappings; munmap
/// of pinned memory; descriptor copies and closes; forks whose child drives the device itself.
/// Everything stays inside an arena of pages the target owns. Every call must answer with a
/// value or -1 and an errno; a register access must never fault the process; a child must exit.
enum PreloadTarget {
    static let maximumOperations = 40
    static let arenaPages = 32
    static let page = Int(hostPageSize)

    final class Session {
        let machine: SimulatedMachine
        let arena: UnsafeMutableRawPointer
        var fds: [Int32] = []
        var container: Int32 = -1
        var device: Int32 = -1
        /// Register windows mapped: base, bytes the BAR has there.
        var windows: [(base: UnsafeMutableRawPointer, bytes: Int)] = []
        var sink: UInt64 = 0

        init(limit: UInt64?) {
            machine = DefaultMachine.make(process: ProcessMemory(lockedMemoryLimit: limit, addressSpace: .wholeProcess))
            guard let raw = mmap(nil, PreloadTarget.arenaPages * PreloadTarget.page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
                raw != MAP_FAILED
            else { fatalError("preload target: no arena") }
            arena = raw
        }

        var vfio: VFIOSystem { machine.vfio }

        /// Opens the memcpy engine: container, its group, type1v2, the device, memory decode on.
        func openDevice() {
            let address = DefaultMachine.address(of: "memcpy-engine")
            guard case .success(let group) = vfio.iommuGroup(of: address) else { return }
            container = vfio.open("/dev/vfio/vfio")
            let groupFD = vfio.open("/dev/vfio/\(group)")
            fds += [container, groupFD].filter { $0 >= 0 }
            var containerFD = container
            _ = withUnsafeMutableBytes(of: &containerFD) { vfio.ioctl(groupFD, VFIORequest.groupSetContainer, UInt(bitPattern: $0.baseAddress!)) }
            _ = vfio.ioctl(container, VFIORequest.setIOMMU, 3)
            device = address.description.withCString { vfio.ioctl(groupFD, VFIORequest.groupGetDeviceFD, UInt(bitPattern: $0)) }
            if device >= 0 { fds.append(device) }
            var command: UInt16 = 0x6
            _ = withUnsafeBytes(of: &command) { vfio.pwrite(device, $0, (7 << 40) + 4) }
        }

        func close() {
            for fd in fds { vfio.close(fd) }
            for window in windows { vfio.munmap(window.base, (window.bytes + PreloadTarget.page - 1) / PreloadTarget.page * PreloadTarget.page) }
            vfio.munmap(arena, PreloadTarget.arenaPages * PreloadTarget.page)
        }
    }

    static let run: FuzzEntryPoint = { data in
        var input = FuzzInput(data)
        let session = Session(limit: input.pick([nil, nil, 1 << 16] as [UInt64?]))
        defer { session.close() }
        session.openDevice()
        var count = 0
        while !input.isEmpty, count < maximumOperations {
            step(session, &input)
            count += 1
        }
    }

    private static func arenaAddress(_ session: Session, _ input: inout FuzzInput) -> UnsafeMutableRawPointer {
        session.arena + Int(input.u8()) % arenaPages * page
    }

    private static func step(_ session: Session, _ input: inout FuzzInput) {
        let vfio = session.vfio
        switch input.u8() % 9 {
        case 0, 1:
            // mmap of any region, offset and length; placed anywhere or fixed into the arena.
            let region = UInt64(input.pick([0, 0, 2, 2, 1, 7, 9, UInt8(input.u8())]))
            let offset = Int64(bitPattern: region << 40 | UInt64(input.pick([0, 0, page, 1, 0x2000, 0x3000])))
            let length = input.pick([page, page, 2 * page, 0x4000, 0x10000, 0, 1 << 40])
            let fixed = input.bool()
            let protection = input.pick([PROT_READ | PROT_WRITE, PROT_READ, PROT_NONE])
            let fd = input.u8() % 8 == 0 ? input.pick(session.fds + [-1, 0]) : session.device
            // A fixed mapping stays inside the arena: past it lies memory the target does not own.
            let firstPage = Int(input.u8()) % arenaPages
            let address = fixed && length > 0 && length <= (arenaPages - firstPage) * page ? session.arena + firstPage * page : nil
            let flags = input.pick([MAP_SHARED, MAP_SHARED, MAP_PRIVATE, 0x3]) | (address != nil ? MAP_FIXED : 0)
            if let mapped = vfio.mmap(address, length, protection, flags, fd, offset) {
                precondition(address == nil || mapped == address, "a fixed mapping landed elsewhere")
                if region == 0, protection & PROT_WRITE != 0, address == nil { session.windows.append((mapped, min(length, 0x1000))) }
            } else {
                precondition(errno > 0, "mmap failed without an errno")
            }
        case 2, 3:
            // A load or store of any width inside a register window (memory decode on).
            guard !session.windows.isEmpty else { return }
            let window = session.windows[Int(input.u8()) % session.windows.count]
            let width = input.pick([1, 2, 4, 8])
            let offset = Int(input.u16()) % max(1, window.bytes - width + 1) & ~(width - 1)
            var command: UInt16 = 0
            _ = withUnsafeMutableBytes(of: &command) { vfio.pread(session.device, $0, (7 << 40) + 4) }
            guard command & 0x2 != 0 else { return }  // a real access would be SIGBUS (VPCI-102): the program's own bug
            let at = window.base + offset
            if input.bool() {
                switch width {
                case 1: at.storeBytes(of: input.u8(), as: UInt8.self)
                case 2: at.storeBytes(of: input.u16(), as: UInt16.self)
                case 4: at.storeBytes(of: input.u32(), as: UInt32.self)
                default: at.storeBytes(of: input.u64(), as: UInt64.self)
                }
            } else {
                switch width {
                case 1: session.sink &+= UInt64(at.load(as: UInt8.self))
                case 2: session.sink &+= UInt64(at.load(as: UInt16.self))
                case 4: session.sink &+= UInt64(at.load(as: UInt32.self))
                default: session.sink &+= at.load(as: UInt64.self)
                }
            }
        case 4:
            // munmap inside the arena (pinned pages stay) or of a window, then the arena page back.
            let address = arenaAddress(session, &input)
            let pages = 1 + Int(input.u8()) % 4
            let length = min(pages * page, session.arena + arenaPages * page - address)
            precondition(vfio.munmap(address, length) == 0 || errno == EINVAL)
            _ = mmap(address, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0)
        case 5:
            // MAP_DMA / UNMAP_DMA of arena memory (or a window), with any flags.
            let vaddr = input.u8() % 6 == 0 && !session.windows.isEmpty ? session.windows[0].base : arenaAddress(session, &input)
            var map = (argsz: UInt32(32), flags: UInt32(input.pick([3, 1, 2, 0])), vaddr: UInt64(UInt(bitPattern: vaddr)), iova: UInt64(input.u8()) << 12, size: UInt64(page * (1 + Int(input.u8()) % 3)))
            let request = input.bool() ? VFIORequest.iommuMapDMA : VFIORequest.iommuUnmapDMA
            if request == VFIORequest.iommuUnmapDMA { (map.vaddr, map.iova) = (map.iova, map.size) }  // {argsz, flags, iova, size}
            let result = withUnsafeMutableBytes(of: &map) { vfio.ioctl(session.container, request, UInt(bitPattern: $0.baseAddress!)) }
            precondition(result >= -1)
        case 6:
            mprotect(arenaAddress(session, &input), page, input.pick([PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE]))
        case 7:
            // dup, then close either copy.
            guard let fd = session.fds.randomElementPicked(&input) else { return }
            let copy = fcntl(fd, F_DUPFD_CLOEXEC, 0)
            guard copy >= 0 else { return }
            VFIODescriptors.duplicate(fd, as: copy)
            let closing = input.bool() ? fd : copy
            precondition(vfio.close(closing) == 0, "close of a copy failed")
            session.fds = session.fds.filter { $0 != closing } + (closing == fd ? [copy] : [])
            if closing == session.device { session.device = copy }
            if closing == session.container { session.container = copy }
        default:
            // fork: the child drives the device on its own copy and exits; the parent waits. Only
            // in a single-threaded process (libFuzzer's): a fork while another thread holds a lock
            // leaves the child that lock forever, in any program — the corpus replay runs inside
            // the parallel test runner.
            guard input.u8() % 4 == 0, Self.isSingleThreaded() else { return }
            let child = fork()
            if child == 0 {
                var info = [UInt32](repeating: 0, count: 6)
                info[0] = 24
                let answered = info.withUnsafeMutableBytes { vfio.ioctl(session.device, VFIORequest.deviceGetInfo, UInt(bitPattern: $0.baseAddress!)) }
                _exit(answered >= -1 ? 0 : 1)
            }
            var status: Int32 = 0
            precondition(child > 0 && waitpid(child, &status, 0) == child && status & 0x7f == 0, "a forked child did not exit normally")
        }
    }
}

extension PreloadTarget {
    /// `Threads: 1` in `/proc/self/status`.
    static func isSingleThreaded() -> Bool {
        guard let file = fopen("/proc/self/status", "r") else { return false }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 256)
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if text.hasPrefix("Threads:") { return text.dropFirst(8).trimmingCharacters(in: .whitespacesAndNewlines) == "1" }
        }
        return false
    }
}

extension Array where Element == Int32 {
    fileprivate func randomElementPicked(_ input: inout FuzzInput) -> Int32? { isEmpty ? nil : self[Int(input.u8()) % count] }
}
