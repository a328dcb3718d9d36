import KernelRules
import IOMMU
import SystemPackage

/// The type1 container's allowed-IOVA list (`iommu->iova_list` of `struct vfio_iommu`): sorted,
/// disjoint, inclusive ranges a mapping must fit inside one of (T1-19). Empty means no IOMMU-backed
/// group yet, so no restriction. Each operation mirrors the function of
/// `drivers/vfio/vfio_iommu_type1.c` it is named after, edge cases included.
public struct IOVAList: Sendable, Equatable, CustomStringConvertible {
    /// One `struct vfio_iova`: `[start, end]`, both inclusive.
    public struct Range: Sendable, Equatable, Hashable, CustomStringConvertible {
        public var start: UInt64
        public var end: UInt64

        public init(_ start: UInt64, _ end: UInt64) {
            self.start = start
            self.end = end
        }

        public var description: String { rangeText(start, end) }
    }

    public private(set) var ranges: [Range]

    public init(_ ranges: [Range] = []) { self.ranges = ranges }

    public var isEmpty: Bool { ranges.isEmpty }

    /// `vfio_iommu_iova_dma_valid` (T1-19): `[first, last]` lies inside one range, or the list is empty.
    public func allows(first: UInt64, last: UInt64) -> Bool {
        ranges.isEmpty || ranges.contains { first >= $0.start && last <= $0.end }
    }

    /// `vfio_iommu_aper_resize` (T1-40 step 1): an empty list becomes the aperture; otherwise the
    /// list is trimmed to it — with the kernel's edges: a range whose end equals the new start,
    /// or whose start equals the new end, is dropped.
    public mutating func resizeAperture(start: UInt64, end: UInt64) {
        guard !ranges.isEmpty else {
            ranges = [Range(start, end)]
            return
        }
        while let range = ranges.first, start >= range.start {
            if start < range.end {
                ranges[0].start = start
                break
            }
            ranges.removeFirst()
        }
        var kept: [Range] = []
        for var range in ranges {
            if end > range.end {
                kept.append(range)
            } else if end > range.start, end <= range.end {
                range.end = end
                kept.append(range)
            }
        }
        ranges = kept
    }

    /// `vfio_iommu_resv_exclude` (T1-40 step 2): cuts every region except `direct-relaxable` out of
    /// the list, splitting ranges. Fails with `EINVAL` when nothing is left; the list is unchanged then.
    public mutating func excludeReserved(_ regions: [ReservedRegion]) throws(VFIOError) {
        var result = ranges
        for region in regions where region.type != .directRelaxable {
            var next: [Range] = []
            for range in result {
                guard region.start <= range.end, region.last >= range.start else {
                    next.append(range)
                    continue
                }
                if region.start > range.start { next.append(Range(range.start, region.start - 1)) }
                if region.last < range.end { next.append(Range(region.last + 1, range.end)) }
            }
            result = next
        }
        guard !result.isEmpty else {
            throw VFIOError(
                .invalidArgument, rule: .T1_40,
                "no usable IOVA left: the reserved regions \(regions.filter { $0.type != .directRelaxable }.map(\.description).joined(separator: ", ")) cover \(self)")
        }
        ranges = result
    }

    /// `vfio_iommu_aper_expand` (T1-43): after a domain goes away, the first range starts and the
    /// last ends at the intersection of the remaining domains' apertures (`[0, 2^64-1]` if none).
    public mutating func expandAperture(remaining geometries: [DomainGeometry]) {
        guard !ranges.isEmpty else { return }
        ranges[0].start = geometries.map(\.apertureStart).max() ?? 0
        ranges[ranges.count - 1].end = geometries.map(\.apertureEnd).min() ?? .max
    }

    /// `vfio_iommu_resv_refresh` (T1-43): the list rebuilt from its outer bounds minus the reserved
    /// regions of every remaining group; `nil` (keep the old list) when that leaves nothing.
    public func refreshed(reserved regions: [ReservedRegion]) -> IOVAList? {
        guard let first = ranges.first, let last = ranges.last else { return nil }
        var rebuilt = IOVAList([Range(first.start, last.end)])
        do { try rebuilt.excludeReserved(regions) } catch { return nil }
        return rebuilt
    }

    /// `vfio_iommu_aper_conflict` (T1-41): would the aperture `[start, end]` strand an existing
    /// mapping? `hasMapping(first, last)` answers whether any mapping overlaps a range.
    public func apertureConflicts(start: UInt64, end: UInt64, hasMapping: (UInt64, UInt64) -> Bool) -> Bool {
        guard let first = ranges.first, let last = ranges.last else { return false }
        if start > last.end || end < first.start { return true }
        if start > first.start, hasMapping(first.start, start - 1) { return true }
        if end < last.end, hasMapping(end + 1, last.end) { return true }
        return false
    }

    /// `vfio_iommu_resv_conflict` (T1-41): does a reserved region (other than `direct-relaxable`)
    /// overlap an existing mapping?
    public static func reservedConflicts(_ regions: [ReservedRegion], hasMapping: (UInt64, UInt64) -> Bool) -> ReservedRegion? {
        regions.first { $0.type != .directRelaxable && hasMapping($0.start, $0.last) }
    }

    public var description: String { ranges.isEmpty ? "[] (unrestricted)" : ranges.map(\.description).joined(separator: " ") }
}
