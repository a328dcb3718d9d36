import VFIO

/// The selftests' `iova_allocator` (VST-04): hands out size-aligned IOVAs of power-of-two sizes
/// from the container's IOVA ranges, in order.
public struct IOVAAllocator: Sendable {
    private var ranges: [ClosedRange<UInt64>]
    private var index = 0
    private var next: UInt64

    public init(ranges: [ClosedRange<UInt64>]) {
        self.ranges = ranges
        next = ranges.first?.lowerBound ?? 0
    }

    /// A `size`-aligned IOVA for `size` bytes (a power of two); nil when the ranges are used up.
    public mutating func allocate(_ size: UInt64) -> UInt64? {
        precondition(size > 0 && size.nonzeroBitCount == 1, "IOVA allocations are powers of two")
        while index < ranges.count {
            let range = ranges[index]
            let aligned = max(next, range.lowerBound).alignedUp(to: size)
            if let aligned, aligned >= range.lowerBound, size - 1 <= range.upperBound &- aligned, aligned <= range.upperBound {
                next = aligned &+ size
                if next == 0 || next > range.upperBound { index += 1 }
                return aligned
            }
            index += 1
            if index < ranges.count { next = ranges[index].lowerBound }
        }
        return nil
    }
}

extension UInt64 {
    /// Rounded up to a multiple of `alignment` (a power of two); nil on overflow.
    func alignedUp(to alignment: UInt64) -> UInt64? {
        let (sum, overflow) = addingReportingOverflow(alignment - 1)
        return overflow ? nil : sum & ~(alignment - 1)
    }
}
