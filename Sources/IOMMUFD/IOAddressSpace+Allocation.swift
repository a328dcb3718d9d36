import SystemPackage
import IOMMU
import KernelRules
import UserMemory

extension IOAddressSpace {
    /// THP's `HPAGE_SIZE`: the most an automatic IOVA is aligned to (IOMMUFD-310).
    static let maximumAutomaticAlignment: UInt64 = 2 << 20

    /// `iopt_alloc_iova` (IOMMUFD-310..312): the lowest IOVA inside an allowed span (all of
    /// `[PAGE_SIZE, ULONG_MAX - PAGE_SIZE]` when none is set), outside every reservation and area,
    /// aligned to the length's power of two — no more than `address`'s own alignment and 2 MiB —
    /// keeping `address`'s offset in its page. `EOVERFLOW` for a length of 0 or ≥ 2^63, `EINVAL`
    /// when that alignment is below the IOAS's, `ENOSPC` when nothing fits.
    func allocateIOVA(length: UInt64, address: UInt64) throws(IOMMUFDError) -> UInt64 {
        guard length != 0, length < UInt64.max / 2 else {
            throw IOMMUFDError(.overflow, rule: .IOMMUFD_310, "allocate IOVA: length \(hex(length)) is 0 or too large to align")
        }
        // roundup_pow_of_two(length): below 2^63, so the shift is at most 63.
        var align = UInt64(1) << (64 - (length - 1).leadingZeroBitCount)
        if address != 0 { align = min(align, UInt64(1) << address.trailingZeroBitCount) }
        align = min(align, Self.maximumAutomaticAlignment)
        guard align >= alignment else {
            throw IOMMUFDError(
                .invalidArgument, rule: .IOMMUFD_310,
                "allocate IOVA for \(hex(length)) bytes at \(hex(address)): their alignment \(hex(align)) is below the IOAS's \(hex(alignment))")
        }
        let pageOffset = address % hostPageSize
        let bounds = IOVARange(start: hostPageSize, last: .max - hostPageSize)
        let spans = allowed.isEmpty ? [bounds] : Self.spans(of: allowed).compactMap { span -> IOVARange? in
            let start = max(span.start, bounds.start), last = min(span.last, bounds.last)
            return start <= last ? IOVARange(start: start, last: last) : nil
        }
        for span in spans where Self.fits(span, length, align, pageOffset) != nil {
            if let start = firstFit(in: span, length, align, pageOffset) { return start }
        }
        throw IOMMUFDError(.noSpace, rule: .IOMMUFD_312, "allocate IOVA: no free range of \(hex(length)) bytes aligned to \(hex(align))")
    }

    /// The used spans of `allowed_itree` as `interval_tree_span_iter` walks them: the ranges in
    /// ascending order, with touching ones (`last + 1 == start`) joined into one span.
    private static func spans(of ranges: [IOVARange]) -> [IOVARange] {
        var spans: [IOVARange] = []
        for range in ranges.sorted(by: { $0.start < $1.start }) {
            if let previous = spans.last, previous.last == .max || range.start <= previous.last + 1 {
                spans[spans.count - 1] = IOVARange(start: previous.start, last: max(previous.last, range.last))
            } else {
                spans.append(range)
            }
        }
        return spans
    }

    /// The holes of reservations and areas inside `span`, lowest first (the double-span walk of
    /// `reserved_itree` and `area_itree`): the first where `fits` finds room.
    private func firstFit(in span: IOVARange, _ length: UInt64, _ align: UInt64, _ pageOffset: UInt64) -> UInt64? {
        var cursor = span.start
        while true {
            // Past whatever covers the cursor.
            let covering = [areas.mapping(containing: cursor)?.last].compactMap { $0 } + reserved.filter { $0.range.start <= cursor && cursor <= $0.range.last }.map(\.range.last)
            if let end = covering.max() {
                guard end < span.last else { return nil }
                cursor = end + 1
                continue
            }
            let nextStart = [areas.firstMapping(startingAtOrAfter: cursor)?.iova].compactMap { $0 } + reserved.map(\.range.start).filter { $0 > cursor }
            let holeLast = min(span.last, (nextStart.min() ?? .max) &- 1)
            if let start = Self.fits(IOVARange(start: cursor, last: holeLast), length, align, pageOffset) { return start }
            guard holeLast < span.last else { return nil }
            cursor = holeLast + 1
        }
    }

    /// `__alloc_iova_check_range`: `range.start` aligned up (without wrapping) with the page
    /// offset OR'ed in, if `length` bytes from there end inside `range`.
    private static func fits(_ range: IOVARange, _ length: UInt64, _ align: UInt64, _ pageOffset: UInt64) -> UInt64? {
        guard range.start <= .max - (align - 1) else { return nil }
        let start = ((range.start + (align - 1)) & ~(align - 1)) | pageOffset
        guard start < range.last, range.last - start >= length - 1 else { return nil }
        return start
    }
}
