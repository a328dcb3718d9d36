import Glibc

/// User memory for ioctl arguments, bounded by guard pages the way a real process's buffers are
/// bounded by what it allocated: an argument struct is placed so that it ends where its extent
/// ends — `argsz`, or the fixed header the kernel copies whatever `argsz` says — and the next
/// byte is inaccessible. A facade that reads or writes user memory past what the kernel would
/// touch gets `EFAULT` where the kernel would have succeeded.
///
/// Hostile placements too, as a driver with a bug would hand the kernel: an argument on a
/// read-only page, one cut short by the guard page, a pointer at the guard page itself.
///
/// Also the target of dirty-bitmap `data` pointers: a separate 256 MiB region
/// (`DIRTY_BITMAP_SIZE_MAX`, reserved, not committed) whose end is a guard page, so a bitmap of
/// `size` bytes placed at its end catches a write of more than `size` bytes; and a read-only
/// region for a bitmap the kernel cannot write.
final class UserArgumentPage: @unchecked Sendable {
    static let shared = UserArgumentPage()

    /// Bytes an argument may span.
    static let capacity = 64 << 10
    static let bitmapCapacity = 1 << 28
    static let readOnlyBitmapCapacity = 64 << 10
    private static let guardSize = 1 << 12
    private static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    /// How an argument lies in user memory.
    enum Access {
        case readWrite
        /// On read-only pages: a copy back faults.
        case readOnly
        /// Its last `by` bytes (of the span the kernel reads) on the guard page.
        case truncated(by: Int)
    }

    private let argument: UnsafeMutableRawPointer
    private let bitmap: UnsafeMutableRawPointer
    private let readOnlyBitmap: UnsafeMutableRawPointer
    private var bitmapTouched = false
    /// Where the last argument's read-only pages begin, to make writable again.
    private var readOnlyFrom: UnsafeMutableRawPointer?

    private init() {
        argument = Self.reserve(Self.capacity)
        bitmap = Self.reserve(Self.bitmapCapacity)
        readOnlyBitmap = Self.reserve(Self.readOnlyBitmapCapacity)
        Self.protect(readOnlyBitmap, Self.readOnlyBitmapCapacity, PROT_READ)
    }

    /// The argument region's guard page: a `PROT_NONE` user address.
    var inaccessible: UInt { UInt(bitPattern: argument + Self.capacity) }

    /// `bytes` placed to end at `max(bytes.count, extent)` bytes from the argument's start
    /// (extent capped at `capacity`), the rest of that span zero, laid out as `access` says;
    /// returns the argument's address.
    func place(_ bytes: [UInt8], extent: Int, access: Access = .readWrite) -> UInt {
        if let start = readOnlyFrom {
            Self.protect(start, argument + Self.capacity - start, PROT_READ | PROT_WRITE)
            readOnlyFrom = nil
        }
        var span = min(Self.capacity, (max(bytes.count, extent) + 7) & ~7)
        if case .truncated(let cut) = access { span = max(0, span - cut) }
        let start = argument + (Self.capacity - span)
        start.initializeMemory(as: UInt8.self, repeating: 0, count: span)
        bytes.withUnsafeBytes { start.copyMemory(from: $0.baseAddress!, byteCount: min(bytes.count, span)) }
        if case .readOnly = access {
            let page = argument + (Self.capacity - span) / Self.pageSize * Self.pageSize
            Self.protect(page, argument + Self.capacity - page, PROT_READ)
            readOnlyFrom = page
        }
        return UInt(bitPattern: start)
    }

    /// A user pointer for a dirty bitmap of `size` bytes: its last byte is the region's last
    /// byte. Sizes beyond the region start at its start (the facade must refuse them).
    func bitmapData(size: UInt64) -> UInt64 {
        bitmapTouched = true
        let offset = size <= UInt64(Self.bitmapCapacity) ? Self.bitmapCapacity - Int(size) : 0
        return UInt64(UInt(bitPattern: bitmap + offset))
    }

    /// A dirty bitmap the process cannot write: a read-only page, or the bitmap region's guard page.
    func unwritableBitmapData(readOnly: Bool) -> UInt64 {
        UInt64(UInt(bitPattern: readOnly ? readOnlyBitmap : bitmap + Self.bitmapCapacity))
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
            base != MAP_FAILED
        else {
            fatalError("fuzz harness: cannot reserve \(size) bytes of user memory (errno \(errno))")
        }
        protect(base + size, guardSize, PROT_NONE)
        return base
    }

    private static func protect(_ start: UnsafeMutableRawPointer, _ size: Int, _ protection: Int32) {
        guard mprotect(start, size, protection) == 0 else { fatalError("fuzz harness: mprotect failed (errno \(errno))") }
    }
}
