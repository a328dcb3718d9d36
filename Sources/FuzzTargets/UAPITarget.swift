import KernelRules
import Syscalls
import SystemPackage
import VFIO

/// `uapi`: the `<linux/vfio.h>` facade (`VFIOSystem.open`/`ioctl`/`pread`/`pwrite`/`close`) of a
/// fresh default machine, driven by a sequence of operations: opens of `/dev/vfio` paths, closes,
/// ioctls with any request number, `argsz`, flags and fields — MAP_DMA and UNMAP_DMA with user
/// addresses in (or near, or far from) memory the process allocated, dirty bitmaps, SET_IRQS
/// with eventfds, hot resets with group fds — region reads and writes at any offset, and
/// allocations and releases of host memory. Arguments sit in guarded user memory
/// (`UserArgumentPage`), so touching more than the kernel would is a fault; some point at
/// memory the kernel's `copy_from_user` / `copy_to_user` fault on (a `PROT_NONE`, read-only or
/// never-mapped page, a struct cut short by one), which must come back as `EFAULT`, never a
/// crash. The first byte picks `RLIMIT_MEMLOCK`. The facade must answer every call with a value
/// or -1 and an errno, and `EFAULT` only where some user memory is hostile (or, for MAP_DMA, its
/// `vaddr` is not memory the process allocated, T1-20).
enum UAPITarget {
    static let maximumOperations = 48

    static let run: FuzzEntryPoint = { data in
        var input = FuzzInput(data)
        let session = UAPISession(lockedMemoryLimit: input.pick([nil, nil, 64 << 10, 1 << 20] as [UInt64?]))
        defer {
            session.close()
            UserArgumentPage.shared.releaseBitmapPages()
        }
        var count = 0
        while !input.isEmpty, count < maximumOperations {
            step(session, &input)
            count += 1
        }
    }

    private static func step(_ session: UAPISession, _ input: inout FuzzInput) {
        let vfio = session.vfio
        switch input.u8() % 8 {
        case 0:
            let groups = vfio.groupIDs
            switch input.u8() % 4 {
            case 0: session.opened(vfio.open("/dev/vfio/vfio"), as: .container)
            case 1: session.opened(vfio.open("/dev/vfio/\(groups.isEmpty ? 0 : input.pick(groups))"), as: .group)
            case 2: session.opened(vfio.open("/dev/vfio/\(input.u8())"), as: .group)
            default: session.opened(vfio.open(input.pick(["/dev/vfio/", "/dev/vfio/-1", "/dev/vfio/27x", "/dev/vfio//27", "/dev/null"])), as: .group)
            }
        case 1:
            expectReturn(vfio.close(session.fd(&input)))
        case 2, 3, 4:
            ioctl(session, &input)
        case 5:
            regionIO(session, &input)
        case 6:
            let size = input.pick([0x1000, 0x2000, 0x1_0000, 0x20_0000, 0x40_0000, 0x40_1000, 0, 1 << 62] as [UInt64])
            session.allocate(size: size, hugePages: input.bool(), writable: input.u8() % 4 != 0)
        default:
            if input.bool() { session.makeEventFD() } else { session.release(Int(input.u8() % 8)) }
        }
    }

    /// One ioctl on an fd the session holds (or any fd), with an argument built for the request.
    private static func ioctl(_ session: UAPISession, _ input: inout FuzzInput) {
        let fd = session.fd(&input)
        // VFIO_BASE + 0 … 18 (every request the facade knows, and gaps), or any number at all.
        let selector = input.u8() % 20
        let request = selector == 19 ? UInt(input.u32()) : VFIORequest.getAPIVersion + UInt(selector)
        let (argument, hostile) = UAPIArgument.build(request, on: session.kind(of: fd), session, &input)
        switch session.vfio.ioctlResult(fd, request, argument) {
        case .success(let result):
            expectReturn(result)
            if request == VFIORequest.groupGetDeviceFD { session.opened(result, as: .device) }
        case .failure(let error):
            // MAP_DMA's vaddr outside the process's memory is EFAULT too (T1-20), but no user copy.
            precondition(hostile || error.errno != .badAddress || error.rule == .T1_20, "a fault on user memory the kernel would have read and written: \(error)")
        }
    }

    /// `pread` or `pwrite` of a device fd: any region index, offset and length.
    private static func regionIO(_ session: UAPISession, _ input: inout FuzzInput) {
        let fd = session.fd(&input)
        let region = input.u8() % 8 == 0 ? UInt64(input.u32()) : UInt64(input.u8() % 10)
        let offset: UInt64 = input.bool() ? UInt64(input.u16()) : input.u64() & ((1 << 40) - 1)
        let count = Int(input.u16() % 0x2001)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 8)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        if input.bool() {
            expectTransfer(session.vfio.pread(fd, buffer, region << 40 | offset), of: count, "pread")
        } else {
            let data = input.bytes(count)
            buffer.copyMemory(from: data)
            expectTransfer(session.vfio.pwrite(fd, UnsafeRawBufferPointer(buffer), region << 40 | offset), of: count, "pwrite")
        }
    }

    /// A region transfer is -1, nothing for nothing (VPCI-70), or at least one byte and at most
    /// `count`: BAR, ROM and VGA transfers stop at the end of the BAR or window (VPCI-90, VPCI-96).
    private static func expectTransfer(_ result: Int, of count: Int, _ call: String) {
        precondition(result == -1 || (count == 0 ? result == 0 : (1...count).contains(result)), "\(call) returned \(result) for \(count) bytes")
    }

    /// The calling convention: a result of -1 (errno set) or a non-negative value.
    private static func expectReturn(_ result: Int32) {
        precondition(result >= -1, "a facade call returned \(result)")
    }
}
