/// A domain's `pgsize_bitmap` (DOM-05): bit n set means the IOMMU can map a 2^n-byte page.
public struct PageSizeBitmap: Sendable, Equatable, Hashable, CustomStringConvertible {
    public let rawValue: UInt64

    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public init(sizes: [UInt64]) { rawValue = sizes.reduce(0) { $0 | $1 } }

    public static let kib4: UInt64 = 1 << 12
    public static let mib2: UInt64 = 1 << 21
    public static let gib1: UInt64 = 1 << 30

    /// 4 KiB | 2 MiB | 1 GiB: VT-d second-level, SMMUv3 with a 4 KiB granule.
    public static let x86Large = PageSizeBitmap(sizes: [kib4, mib2, gib1])

    public var isEmpty: Bool { rawValue == 0 }

    /// The smallest page (`1 << __ffs(pgsize_bitmap)`), or 0 for an empty bitmap.
    public var minimumPageSize: UInt64 { rawValue & (0 &- rawValue) }

    public var sizes: [UInt64] { (0..<64).map { UInt64(1) << $0 }.filter { rawValue & $0 != 0 } }

    public func contains(_ size: UInt64) -> Bool { size.nonzeroBitCount == 1 && rawValue & size != 0 }

    /// `iommu_pgsize`: the largest supported page that fits the alignment of `iova | address` and
    /// does not exceed `remaining`.
    public func largestPage(iova: UInt64, address: UInt64, remaining: UInt64) -> UInt64 {
        var candidates = rawValue
        let alignment = iova | address
        if alignment != 0 { candidates &= (alignment & (0 &- alignment)) &* 2 &- 1 }
        candidates &= remaining >= (1 << 63) ? .max : (UInt64(1) << (64 - remaining.leadingZeroBitCount)) - 1
        guard candidates != 0 else { return 0 }
        return UInt64(1) << (63 - candidates.leadingZeroBitCount)
    }

    /// `4K|2M|1G`, as people write page sizes.
    public var description: String {
        sizes.map { size -> String in
            let units: [(UInt64, String)] = [(1 << 60, "E"), (1 << 50, "P"), (1 << 40, "T"), (1 << 30, "G"), (1 << 20, "M"), (1 << 10, "K")]
            for (unit, name) in units where size >= unit && size % unit == 0 { return "\(size / unit)\(name)" }
            return "\(size)"
        }.joined(separator: "|")
    }
}
