/// A group's reserved regions as `iommu_get_group_resv_regions` builds them (RR-02): sorted by
/// start, regions of the same type merged when they overlap or touch, regions of different types
/// never merged (so the list may hold overlapping regions of different types).
public struct ReservedRegionList: Sendable, Equatable {
    public private(set) var regions: [ReservedRegion] = []

    public init() {}

    public init(_ regions: some Sequence<ReservedRegion>) {
        for region in regions { insert(region) }
    }

    /// `iommu_insert_resv_region` (RR-03): insert sorted by start (ties: before the first region
    /// whose type is `>=` the new one's), then merge same-type regions that overlap or are
    /// adjacent (`next.start <= top.last + 1`).
    public mutating func insert(_ new: ReservedRegion) {
        let position =
            regions.firstIndex { $0.start > new.start || ($0.start == new.start && $0.type >= new.type) }
            ?? regions.endIndex
        regions.insert(new, at: position)

        var merged: [ReservedRegion] = []
        merged.reserveCapacity(regions.count)
        var topIndex: Int?
        for region in regions {
            guard region.type == new.type else {
                merged.append(region)
                continue
            }
            // `top_end + 1` wraps at 2^64 - 1 in the kernel too: a region ending there absorbs nothing.
            if let index = topIndex, region.start <= merged[index].last &+ 1 {
                let top = merged[index]
                merged[index] = ReservedRegion(start: top.start, last: max(top.last, region.last), type: new.type)!
            } else {
                merged.append(region)
                topIndex = merged.count - 1
            }
        }
        regions = merged
    }

    /// The file `/sys/kernel/iommu_groups/N/reserved_regions`, byte for byte (SYS-02).
    public var sysfsText: String { regions.map(\.sysfsLine).joined() }
}
