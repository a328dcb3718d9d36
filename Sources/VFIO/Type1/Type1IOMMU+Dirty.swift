import IOMMU
import KernelRules
import SystemPackage

/// `struct vfio_iommu_type1_dirty_bitmap_get` without its user pointer.
public struct DirtyBitmapQuery: Sendable, Hashable {
    public var iova: UInt64
    public var size: UInt64
    public var bitmap: DirtyBitmapRequest

    public init(iova: UInt64, size: UInt64, bitmap: DirtyBitmapRequest) {
        self.iova = iova
        self.size = size
        self.bitmap = bitmap
    }
}

extension Type1IOMMU {
    /// `vfio_iommu_type1_dirty_pages` (T1-80..83): START and STOP toggle tracking (idempotent);
    /// GET_BITMAP returns the dirty bits of `[iova, iova + size)` (bit `n` = page `n`) and hands
    /// each mapping's words to `copyDirtyWords` in IOVA order (`vfio_iova_dirty_bitmap`).
    mutating func dirtyPages(_ flags: DirtyPagesFlags, query: DirtyBitmapQuery?, copyDirtyWords: DirtyWordsCopy = { _ in }) throws(VFIOError)
        -> [UInt64]
    {
        let what = "\(name) DIRTY_PAGES"
        guard v2 else { throw VFIOError(.permissionDenied, rule: .T1_80, "\(what): dirty tracking needs a type1v2 container") }
        guard flags.isSubset(of: DirtyPagesFlags.known) else {
            throw VFIOError(.invalidArgument, rule: .T1_80, "\(what): unknown flags 0x\(String(flags.subtracting(DirtyPagesFlags.known).rawValue, radix: 16))")
        }
        guard flags.rawValue.nonzeroBitCount == 1 else {
            throw VFIOError(.invalidArgument, rule: .T1_80, "\(what): exactly one of START, STOP, GET_BITMAP (flags 0x\(String(flags.rawValue, radix: 16)))")
        }
        switch flags {
        case .start:
            dirtyTracking = true
            return []
        case .stop:
            dirtyTracking = false
            return []
        default:
            guard let query else { throw VFIOError(.invalidArgument, rule: .T1_82, "\(what) GET_BITMAP: no struct vfio_iommu_type1_dirty_bitmap_get") }
            return try dirtyBitmap(
                query, what: "\(what) GET_BITMAP IOVA 0x\(String(query.iova, radix: 16)) size 0x\(String(query.size, radix: 16))",
                copyDirtyWords: copyDirtyWords)
        }
    }

    /// T1-82 in order, then T1-83: every page of every mapping in the range is dirty. Only the
    /// mappings' own words reach the user (`update_user_bitmap`, `MappingDirtyWords`).
    private func dirtyBitmap(_ query: DirtyBitmapQuery, what: String, copyDirtyWords: DirtyWordsCopy) throws(VFIOError) -> [UInt64] {
        guard query.size != 0 else { throw VFIOError(.invalidArgument, rule: .T1_82, "\(what): size 0") }
        let (last, wrapped) = query.iova.addingReportingOverflow(query.size - 1)
        if wrapped { throw VFIOError(.overflow, rule: .T1_82, "\(what): the range wraps past 2^64") }
        let pages = try Self.verifyBitmap(query.bitmap, rangeSize: query.size, what: what)
        let pageSize = minimumPageSize
        guard query.bitmap.pageSize == pageSize else {
            throw VFIOError(
                .invalidArgument, rule: .T1_82,
                "\(what): bitmap page size 0x\(String(query.bitmap.pageSize, radix: 16)) is not the minimum IOMMU page size 0x\(String(pageSize, radix: 16))")
        }
        guard (query.iova | query.size) & (pageSize - 1) == 0 else {
            throw VFIOError(.invalidArgument, rule: .T1_82, "\(what): not aligned to the minimum IOMMU page size 0x\(String(pageSize, radix: 16))")
        }
        guard dirtyTracking else { throw VFIOError(.invalidArgument, rule: .T1_82, "\(what): dirty page tracking is not started") }
        if let head = table.mapping(containing: query.iova), head.iova != query.iova {
            throw VFIOError(.invalidArgument, rule: .T1_82, "\(what): the range bisects the mapping \(head)")
        }
        if let tail = table.mapping(containing: last), tail.last != last {
            throw VFIOError(.invalidArgument, rule: .T1_82, "\(what): the range bisects the mapping \(tail)")
        }
        var words = [UInt64](repeating: 0, count: Int((pages + 63) / 64))
        for mapping in table.mappings(startingIn: query.iova, last) {
            Self.markDirty(mapping, rangeStart: query.iova, pageSize: pageSize, into: &words)
            try copyDirtyWords(Self.dirtyWords(of: mapping, rangeStart: query.iova, pageSize: pageSize, bitmapWords: words.count))
        }
        return words
    }
}
