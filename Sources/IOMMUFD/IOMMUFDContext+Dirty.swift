import IOMMU
import KernelRules
import Locking
import SystemPackage

/// Dirty tracking on HWPT_PAGINGs (§5.2, `hw_pagetable.c`, `io_pagetable.c`) and the selftest's
/// `IOMMU_TEST_OP_DIRTY` (IOMMUFD-818). Only the mock IOMMU's domains allocated with
/// `IOMMU_HWPT_ALLOC_DIRTY_TRACKING` have dirty ops; the machine's IOMMUs have none. A dirty bit
/// belongs to a leaf IOPTE: marking any IOVA of a 1 MiB leaf dirties all of it, and reading it
/// reports every bitmap page the leaf covers.
extension IOMMUFDContext {
    /// `IOMMU_HWPT_SET_DIRTY_TRACKING` after its flags (IOMMUFD-511): `ENOENT` when `hwpt` is no
    /// paging HWPT, `EOPNOTSUPP` when its domain has no dirty ops. Enabling clears the dirty bits
    /// first (a clean snapshot).
    public func setDirtyTracking(hwpt id: UInt32, enabled: Bool) throws(IOMMUFDError) {
        try state.withLock { (state) throws(IOMMUFDError) in
            let hwpt = try state.hwptPaging(id, rule: .IOMMUFD_511, "HWPT_SET_DIRTY_TRACKING")
            guard let dirty = hwpt.dirty else {
                throw IOMMUFDError(.notSupported, rule: .IOMMUFD_511, "HWPT_SET_DIRTY_TRACKING \(id): \(hwpt.domain) has no dirty tracking (allocate it with IOMMU_HWPT_ALLOC_DIRTY_TRACKING on a mock device)")
            }
            if enabled { dirty.dirty.removeAll() }
            dirty.enabled = enabled
        }
    }

    /// `IOMMU_HWPT_GET_DIRTY_BITMAP` after its flags (IOMMUFD-512..514): the bits to set, as
    /// indexes of `pageSize` units from `iova`, of every dirty leaf meeting `[iova, iova + length)`
    /// — cleared unless `clear` is false (`NO_CLEAR`). `ENOENT` for no paging HWPT, `EOVERFLOW` when
    /// the range wraps, `EINVAL` for a range not aligned to the IOAS's alignment or to `pageSize`
    /// (or a `pageSize` of 0), `EOPNOTSUPP` without dirty ops. Holes are no error.
    public func readDirty(hwpt id: UInt32, iova: UInt64, length: UInt64, pageSize: UInt64, clear: Bool) throws(IOMMUFDError) -> [UInt64] {
        try state.withLock { (state) throws(IOMMUFDError) -> [UInt64] in
            let what = "HWPT_GET_DIRTY_BITMAP \(id)"
            let hwpt = try state.hwptPaging(id, rule: .IOMMUFD_512, what)
            let ioas = try state.ioas(hwpt.ioas, rule: .IOMMUFD_512, what)
            let (sum, wrapped) = iova.addingReportingOverflow(length &- 1)
            guard !wrapped else { throw IOMMUFDError(.overflow, rule: .IOMMUFD_512, "\(what): iova \(hex(iova)) + length \(hex(length)) wraps") }
            let last = sum
            let alignment = ioas.alignment
            guard (iova | (last &+ 1)) & (alignment - 1) == 0 else {
                throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_512, "\(what): [\(hex(iova)), \(hex(last))] is not aligned to the IOAS's \(hex(alignment))")
            }
            guard pageSize != 0, (iova | (last &+ 1)) & (pageSize &- 1) == 0 else {
                throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_512, "\(what): page_size \(hex(pageSize)) is 0 or does not divide the range")
            }
            guard let dirty = hwpt.dirty else {
                throw IOMMUFDError(.notSupported, rule: .IOMMUFD_512, "\(what): \(hwpt.domain) has no dirty tracking (no read_and_clear_dirty)")
            }
            var bits: [UInt64] = []
            for leaf in dirty.dirty.sorted() {
                guard let size = Self.leafSize(at: leaf, in: ioas, hwpt.domain), leaf <= last, leaf &+ (size - 1) >= iova else { continue }
                let from = max(leaf, iova), to = min(leaf + (size - 1), last)
                bits += Array((from - iova) / pageSize...(to - iova) / pageSize)
                if clear { dirty.dirty.remove(leaf) }
            }
            return bits
        }
    }

    /// `IOMMU_TEST_OP_DIRTY` (IOMMUFD-818): marks dirty the leaf under `iova + i * pageSize` for
    /// every bit `i` set in the bitmap `readBitmap` copies in (its first `count` bits, bit `i` in
    /// byte `i / 8`), and answers how many bits were set. `EINVAL` for a
    /// `pageSize` or length of 0, a range not aligned to `pageSize`, or no bitmap; `EOVERFLOW` past
    /// 2^27 bits; `ENOENT`/`EINVAL` when `hwpt` is no mock paging HWPT; `EINVAL` when tracking is off.
    public func markDirty(
        hwpt id: UInt32, iova: UInt64, length: UInt64, pageSize: UInt64, bitmap: UInt64, readBitmap: (_ count: UInt64) throws(IOMMUFDError) -> [UInt8]
    ) throws(IOMMUFDError) -> UInt64 {
        try requireSelftest("DIRTY")
        guard pageSize != 0, length != 0, iova % pageSize == 0, length % pageSize == 0, bitmap != 0 else {
            throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_818, "DIRTY HWPT \(id): page_size \(hex(pageSize)), iova \(hex(iova)), length \(hex(length)) and the bitmap must be non-zero and aligned")
        }
        let count = length / pageSize
        guard count <= (16 << 20) * 8 else { throw IOMMUFDError(.overflow, rule: .IOMMUFD_818, "DIRTY HWPT \(id): \(count) bits, past SZ_16M * 8") }
        return try state.withLock { (state) throws(IOMMUFDError) -> UInt64 in
            let hwpt = try Self.mockHWPT(id, state, "DIRTY")
            guard let dirty = hwpt.dirty, dirty.enabled else {
                throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_818, "DIRTY HWPT \(id): dirty tracking is not enabled on it")
            }
            let ioas = try state.ioas(hwpt.ioas, rule: .IOMMUFD_818, "DIRTY")
            var marked: UInt64 = 0
            for (byteIndex, byte) in try readBitmap(count).enumerated() where byte != 0 {
                for bit in 0..<8 where byte & (1 << bit) != 0 {
                    let index = UInt64(byteIndex * 8 + bit)
                    guard index < count else { break }
                    if let leaf = Self.leaf(at: iova &+ index &* pageSize, in: ioas, hwpt.domain) { dirty.dirty.insert(leaf) }
                    marked += 1
                }
            }
            return marked
        }
    }

    /// The first IOVA of the leaf IOPTE mapping `iova` in `domain` (nil: nothing mapped there).
    static func leaf(at iova: UInt64, in ioas: IOAddressSpace, _ domain: IOMMUDomain) -> UInt64? {
        guard let size = leafSize(containing: iova, in: ioas, domain) else { return nil }
        return iova & ~(size - 1)
    }

    /// The size of the leaf starting at `leaf`, nil when none starts there any more.
    private static func leafSize(at leaf: UInt64, in ioas: IOAddressSpace, _ domain: IOMMUDomain) -> UInt64? {
        guard let size = leafSize(containing: leaf, in: ioas, domain), leaf & (size - 1) == 0 else { return nil }
        return size
    }

    /// The page `IOMMUDomain.map` of `iova`'s area used at `iova`: it maps each area in one call,
    /// taking at every step the largest page that both the IOVA and the address are aligned to
    /// and that fits — so the leaf is the largest page size whose naturally aligned block around
    /// `iova` lies in the area with its address aligned alike.
    private static func leafSize(containing iova: UInt64, in ioas: IOAddressSpace, _ domain: IOMMUDomain) -> UInt64? {
        guard let area = ioas.area(intersecting: iova, iova) else { return nil }
        for size in domain.pageSizes.sizes.reversed() {
            let block = iova & ~(size - 1)
            if block >= area.iova, block &+ (size - 1) <= area.last, (area.hostAddress + (block - area.iova)) & (size - 1) == 0 { return size }
        }
        return nil
    }
}
