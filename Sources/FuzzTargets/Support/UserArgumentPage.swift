import Glibc

/// User memory for ioctl arguments, bounded by guard pages the way a real process's buffers are
/// bounded by what it allocated: an argument struct is placed so that it ends where its extent
/// ends — `argsz`, or the fixed header the kernel copies whatever `argsz` says — and the next
/// byte is unmapped. A facade that reads or writes user memory past what the kernel would touch
/// faults instead of silently using the harness's bytes.
///
/// Also the target of dirty-bitmap `data` pointers: a separate 256 MiB region
/// (`DIRTY_BITMAP_SIZE_MAX`, reserved, not committed) whose end is a guard page, so a bitmap of
/// `size` bytes placed at its end catches a write of more than `size` bytes.
final class UserArgumentPage: @unchecked Sendable {
    static let shared = UserArgumentPage()

    /// Bytes an argument may span.
    static let capacity = 64 << 10
    static let bitmapCapacity = 1 << 28
    private static let guardSize = 1 << 12

    private let argument: UnsafeMutableRawPointer
    private let bitmap: UnsafeMutableRawPointer
    private var bitmapTouched = false

    private init() {
        argument = Self.reserve(Self.capacity)
        bitmap = Self.reserve(Self.bitmapCapacity)
    }

    /// `bytes` placed to end at `max(bytes.count, extent)` bytes from the argument's start
    /// (extent capped at `capacity`), the rest of that span zero; returns the argument's address.
    func place(_ bytes: [UInt8], extent: Int) -> UInt {
        let span = min(Self.capacity, (max(bytes.count, extent) + 7) & ~7)
        let start = argument + (Self.capacity - span)
        start.initializeMemory(as: UInt8.self, repeating: 0, count: span)
        bytes.withUnsafeBytes { start.copyMemory(from: $0.baseAddress!, byteCount: min(bytes.count, span)) }
        return UInt(bitPattern: start)
    }

    /// A user pointer for a dirty bitmap of `size` bytes: its last byte is the region's last
    /// byte. Sizes beyond the region start at its start (the facade must refuse them).
    func bitmapData(size: UInt64) -> UInt64 {
        bitmapTouched = true
        let offset = size <= UInt64(Self.bitmapCapacity) ? Self.bitmapCapacity - Int(size) : 0
        return UInt64(UInt(bitPattern: bitmap + offset))
    }

    /// Gives back the pages bitmaps were written to, so RSS stays flat across inputs.
    func releaseBitmapPages() {
        guard bitmapTouched else { return }
        madvise(bitmap, Self.bitmapCapacity, MADV_DONTNEED)
        bitmapTouched = false
    }

    /// `size` bytes of read-write memory followed by an inaccessible guard page.
    private static func reserve(_ size: Int) -> UnsafeMutableRawPointer {
        guard let base = mmap(nil, size + guardSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0),
            base != MAP_FAILED, mprotect(base + size, guardSize, PROT_NONE) == 0
        else {
            fatalError("fuzz harness: cannot reserve \(size) bytes of user memory (errno \(errno))")
        }
        return base
    }
}
