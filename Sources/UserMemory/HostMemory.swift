import KernelRules
import Glibc
import SystemPackage

/// Anonymous, page-aligned process memory a userspace driver hands to devices — what a VFIO
/// selftest gets from `mmap(MAP_ANONYMOUS)`. With `hugePages` the range is 2 MiB aligned and
/// advised for transparent huge pages, so the IOMMU can map it with 2 MiB leaves. Allocated and
/// owned by a `ProcessMemory`, which keeps it alive while any of it is pinned for DMA.
public final class HostMemory: @unchecked Sendable, CustomStringConvertible {
    /// Transparent-huge-page size on x86-64 and arm64 with 4 KiB base pages.
    public static let hugePageSize: UInt64 = 2 << 20

    /// The user virtual address of the first byte (`vaddr` in MAP_DMA).
    public let address: UInt64
    public let size: UInt64
    /// The alignment and granule of the range: the host page size, or `hugePageSize`.
    public let pageSize: UInt64
    /// False for read-only memory: pinning it for device writes fails (`get_user_pages` with
    /// `FOLL_WRITE`, T1-20).
    public let isWritable: Bool
    private let mapping: UnsafeMutableRawPointer
    private let mappingLength: Int

    init(size: UInt64, hugePages: Bool, writable: Bool) throws(MemoryError) {
        let granule = hugePages ? Self.hugePageSize : hostPageSize
        guard size > 0, size <= UInt64(Int.max) - 2 * granule else {
            throw MemoryError(.invalidArgument, rule: .none, "host memory of \(size) bytes: the size must be 1 … 2^63 bytes")
        }
        let rounded = (size + granule - 1) & ~(granule - 1)
        // Over-allocate by one granule and trim, so a huge-page range starts 2 MiB aligned.
        let length = Int(rounded + (hugePages ? granule : 0))
        let protection = PROT_READ | (writable ? PROT_WRITE : 0)
        guard let raw = mmap(nil, length, protection, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0), raw != MAP_FAILED else {
            throw MemoryError(Errno(rawValue: Glibc.errno), rule: .none, "mmap of \(rounded) bytes of host memory failed")
        }
        let base = UInt64(UInt(bitPattern: raw))
        let aligned = (base + granule - 1) & ~(granule - 1)
        if hugePages {
            let head = Int(aligned - base)
            if head > 0 { munmap(raw, head) }
            let tail = length - head - Int(rounded)
            if tail > 0 { munmap(raw + head + Int(rounded), tail) }
            _ = madvise(raw + head, Int(rounded), MADV_HUGEPAGE)
        }
        mapping = raw + Int(aligned - base)
        mappingLength = Int(rounded)
        address = aligned
        self.size = rounded
        pageSize = granule
        isWritable = writable
    }

    deinit { munmap(mapping, mappingLength) }

    /// The memory, for the driver to fill and check.
    public var pointer: UnsafeMutableRawPointer { mapping }

    /// The inclusive last address.
    public var last: UInt64 { address + (size - 1) }

    public var description: String {
        "host memory \(rangeText(address, last)) (\(size) bytes, \(pageSize == Self.hugePageSize ? "2 MiB" : "4 KiB") pages\(isWritable ? "" : ", read-only"))"
    }
}

/// `PAGE_SIZE` of this host.
public let hostPageSize = UInt64(sysconf(Int32(_SC_PAGESIZE)))
