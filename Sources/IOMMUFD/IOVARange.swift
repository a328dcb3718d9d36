/// `struct iommu_iova_range`: an inclusive IOVA range `[start, last]`, as iommufd's UAPI and its
/// interval trees (`reserved_itree`, `allowed_itree`, `area_itree`) hold them.
public struct IOVARange: Sendable, Hashable, CustomStringConvertible {
    public let start: UInt64
    public let last: UInt64

    public init(start: UInt64, last: UInt64) {
        self.start = start
        self.last = last
    }

    public func intersects(_ start: UInt64, _ last: UInt64) -> Bool { self.start <= last && start <= self.last }

    public var description: String { "[0x\(String(start, radix: 16)), 0x\(String(last, radix: 16))]" }

    /// The gaps `[from, to]` leaves between `used` (any order, may overlap): the hole iteration of
    /// `interval_tree_for_each_span`.
    static func holes(of used: [IOVARange], from: UInt64, to: UInt64) -> [IOVARange] {
        var holes: [IOVARange] = []
        var next = from
        var exhausted = false
        for range in used.sorted(by: { $0.start < $1.start }) where range.last >= from && range.start <= to {
            if range.start > next { holes.append(IOVARange(start: next, last: range.start - 1)) }
            if range.last >= to {
                exhausted = true
                break
            }
            next = max(next, range.last + 1)
        }
        if !exhausted, next <= to { holes.append(IOVARange(start: next, last: to)) }
        return holes
    }
}
