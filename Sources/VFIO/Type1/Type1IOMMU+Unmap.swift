import IOMMU
import KernelRules
import SystemPackage

/// `struct vfio_bitmap` without its user pointer: the page size the bitmap counts in and the
/// bytes the user provides for it (T1-31).
public struct DirtyBitmapRequest: Sendable, Hashable {
    public var pageSize: UInt64
    public var size: UInt64
    /// `access_ok(bitmap.data, bitmap.size)`: only the UAPI facade has a pointer that can fail it.
    package var dataAccessible = true

    public init(pageSize: UInt64, size: UInt64) {
        self.pageSize = pageSize
        self.size = size
    }
}

/// `VFIO_IOMMU_UNMAP_DMA`: the fields of `struct vfio_iommu_type1_dma_unmap` after `argsz`.
public struct DMAUnmapRequest: Sendable, Hashable {
    public var flags: DMAUnmapFlags
    public var iova: UInt64
    public var size: UInt64
    /// Required with `getDirtyBitmap`.
    public var bitmap: DirtyBitmapRequest?

    public init(flags: DMAUnmapFlags = [], iova: UInt64, size: UInt64, bitmap: DirtyBitmapRequest? = nil) {
        self.flags = flags
        self.iova = iova
        self.size = size
        self.bitmap = bitmap
    }
}

/// What a successful UNMAP_DMA writes back: the bytes unmapped or invalidated (T1-37) and, with
/// `getDirtyBitmap`, the dirty bits of the removed mappings (bit `n` = page `n` of the range, T1-84).
public struct DMAUnmapResult: Sendable, Hashable {
    public let size: UInt64
    public let dirtyBitmap: [UInt64]
}

extension DMAUnmapFlags {
    /// T1-30: known bits only, and GET_DIRTY_BITMAP without ALL or VADDR — checked before the
    /// `struct vfio_bitmap` is copied in.
    package func validate(_ what: @autoclosure () -> String) throws(VFIOError) {
        guard isSubset(of: Self.known) else {
            throw VFIOError(.invalidArgument, rule: .T1_30, "\(what()): unknown flags 0x\(String(subtracting(Self.known).rawValue, radix: 16))")
        }
        if contains(.getDirtyBitmap), !isDisjoint(with: [.all, .vaddr]) {
            throw VFIOError(.invalidArgument, rule: .T1_30, "\(what()): GET_DIRTY_BITMAP cannot be combined with ALL or VADDR")
        }
    }
}

extension Type1IOMMU {
    /// `vfio_iommu_type1_unmap_dma` + `vfio_dma_do_unmap`: T1-30..38 in the kernel's order. With
    /// GET_DIRTY_BITMAP, `copyDirtyWords` gets each mapping's words just before the mapping is
    /// removed; when it throws, the removal stops there and the mappings removed before stay
    /// removed, as in the kernel (T1-37, T1-84).
    mutating func unmap(_ request: DMAUnmapRequest, copyDirtyWords: DirtyWordsCopy) throws(VFIOError) -> DMAUnmapResult {
        let flags = request.flags
        // Only failures pay for the message.
        var what: String { "\(name) UNMAP_DMA IOVA 0x\(String(request.iova, radix: 16)) size 0x\(String(request.size, radix: 16))" }
        try flags.validate(what)
        let wantsBitmap = flags.contains(.getDirtyBitmap)
        var bitmapPages: UInt64 = 0
        if wantsBitmap {
            guard let bitmap = request.bitmap else {
                throw VFIOError(.invalidArgument, rule: .T1_31, "\(what): GET_DIRTY_BITMAP without a struct vfio_bitmap")
            }
            bitmapPages = try Self.verifyBitmap(bitmap, rangeSize: request.size, what: what)
        }
        let pageSize = minimumPageSize
        guard request.iova & (pageSize - 1) == 0 else {
            throw VFIOError(.invalidArgument, rule: .T1_32, "\(what): IOVA not aligned to the minimum IOMMU page size 0x\(String(pageSize, radix: 16))")
        }
        let first = request.iova
        let last: UInt64
        if flags.contains(.all) {
            guard request.iova == 0, request.size == 0 else {
                throw VFIOError(.invalidArgument, rule: .T1_32, "\(what): UNMAP_ALL takes IOVA 0 and size 0")
            }
            last = .max
        } else {
            guard request.size != 0, request.size & (pageSize - 1) == 0 else {
                throw VFIOError(
                    .invalidArgument, rule: .T1_32,
                    "\(what): size must be a non-zero multiple of the minimum IOMMU page size 0x\(String(pageSize, radix: 16))")
            }
            guard request.iova <= .max - (request.size - 1) else {
                throw VFIOError(.overflow, rule: .T1_32, "\(what): the range wraps past 2^64")
            }
            last = request.iova + (request.size - 1)
        }
        if wantsBitmap {
            guard dirtyTracking, request.bitmap!.pageSize == pageSize else {
                throw VFIOError(
                    .invalidArgument, rule: .T1_32,
                    dirtyTracking
                        ? "\(what): bitmap page size 0x\(String(request.bitmap!.pageSize, radix: 16)) is not the minimum IOMMU page size 0x\(String(pageSize, radix: 16))"
                        : "\(what): dirty page tracking is not started")
            }
        }
        if v2, !flags.contains(.all) {
            if let head = table.mapping(containing: first), head.iova != first {
                throw VFIOError(.invalidArgument, rule: .T1_32, "\(what): would bisect the mapping \(head) (type1v2 unmaps whole mappings)")
            }
            if let tail = table.mapping(containing: last), tail.last != last {
                throw VFIOError(.invalidArgument, rule: .T1_32, "\(what): would bisect the mapping \(tail) (type1v2 unmaps whole mappings)")
            }
        }
        let targets = mappings(unmappedBy: first, last)
        if flags.contains(.vaddr) {
            return try invalidateVaddrs(of: targets, what: what)
        }
        var words = [UInt64](repeating: 0, count: Int((bitmapPages + 63) / 64))
        var unmapped: UInt64 = 0
        try remove(targets) { (mapping) throws(VFIOError) in
            if wantsBitmap {
                Self.markDirty(mapping, rangeStart: first, pageSize: pageSize, into: &words)
                try copyDirtyWords(Self.dirtyWords(of: mapping, rangeStart: first, pageSize: pageSize, bitmapWords: words.count))
            }
            unmapped += mapping.size
        }
        return DMAUnmapResult(size: unmapped, dirtyBitmap: words)
    }

    /// The mappings the removal loop of `vfio_dma_do_unmap` visits: those starting in
    /// `[first, last]`, lowest first — except that v1 stops at once when the range starts inside a
    /// mapping (T1-34), and a v1 range covering a mapping's first IOVA takes the whole mapping.
    private func mappings(unmappedBy first: UInt64, _ last: UInt64) -> [DMAMapping] {
        if !v2, let head = table.mapping(containing: first), head.iova < first { return [] }
        return table.mappings(startingIn: first, last)
    }

    /// T1-35: mark every mapping's vaddr invalid; one already invalid fails the whole call.
    private mutating func invalidateVaddrs(of targets: [DMAMapping], what: String) throws(VFIOError) -> DMAUnmapResult {
        if let stale = targets.first(where: { invalidVaddrs.contains($0.iova) }) {
            throw VFIOError(.invalidArgument, rule: .T1_35, "\(what) VADDR: the vaddr of \(stale) is already invalid")
        }
        for mapping in targets { invalidVaddrs.insert(mapping.iova) }
        return DMAUnmapResult(size: targets.reduce(0) { $0 + $1.size }, dirtyBitmap: [])
    }

    /// `verify_bitmap_size` (T1-31): the pages `rangeSize` spans at the bitmap's page size, which
    /// the user's bitmap must hold (`ALIGN(npages, 64) / 8` bytes, at most `DIRTY_BITMAP_SIZE_MAX`).
    static func verifyBitmap(_ bitmap: DirtyBitmapRequest, rangeSize: UInt64, what: String) throws(VFIOError) -> UInt64 {
        guard bitmap.dataAccessible else {
            throw VFIOError(.invalidArgument, rule: .T1_31, "\(what): the bitmap's data pointer fails access_ok for \(bitmap.size) bytes")
        }
        guard bitmap.pageSize != 0 else { throw VFIOError(.invalidArgument, rule: .T1_31, "\(what): bitmap page size 0") }
        let pages = rangeSize >> UInt64(bitmap.pageSize.trailingZeroBitCount)
        guard pages != 0, bitmap.size != 0, bitmap.size <= dirtyBitmapSizeMax else {
            throw VFIOError(
                .invalidArgument, rule: .T1_31,
                "\(what): bitmap of \(bitmap.size) bytes for \(pages) pages (needs 1 … \(dirtyBitmapSizeMax) bytes and at least one page)")
        }
        // `ALIGN(npages, 64) / 8` wraps in the kernel for absurd page counts; a later page-size check refuses them.
        let needed = (pages &+ 63) / 64 &* 8
        guard bitmap.size >= needed else {
            throw VFIOError(.invalidArgument, rule: .T1_31, "\(what): bitmap of \(bitmap.size) bytes cannot hold \(pages) pages (\(needed) bytes needed)")
        }
        return pages
    }

    /// T1-83/T1-84: with IOMMU-backed groups every page of a mapping counts as dirty; its bits go
    /// to `(mapping.iova - rangeStart) / pageSize` onwards, clipped to the bitmap. Returns the
    /// words they fall in.
    @discardableResult
    static func markDirty(_ mapping: DMAMapping, rangeStart: UInt64, pageSize: UInt64, into words: inout [UInt64]) -> Range<Int> {
        let shift = UInt64(pageSize.trailingZeroBitCount)
        let firstBit = (max(mapping.iova, rangeStart) - rangeStart) >> shift
        let bitCount = UInt64(words.count) * 64
        let end = min(firstBit + (mapping.size >> shift), bitCount)
        var bit = firstBit
        while bit < end {
            if bit % 64 == 0, end - bit >= 64 {
                words[Int(bit / 64)] = .max
                bit += 64
            } else {
                words[Int(bit / 64)] |= 1 << (bit % 64)
                bit += 1
            }
        }
        return firstBit < end ? Int(firstBit / 64)..<Int((end + 63) / 64) : 0..<0
    }
}
