/// `struct iommu_iotlb_gather`: the domains a run of `IOMMUDomain.unmap(iova:size:gather:)` calls
/// took translations out of, flushed together by one `sync()` (`iommu_iotlb_sync`), so a
/// VFIO_IOMMU_UNMAP_DMA that removes a thousand mappings waits out in-flight DMA once, not a
/// thousand times. Until the sync, a device may still use what was removed; a gather that goes
/// away unsynced syncs itself.
public struct IOTLBGather: ~Copyable {
    // The usual single domain without an allocation; containers with several IOMMUs use `others`.
    private var first: IOMMUDomain?
    private var others: [IOMMUDomain] = []

    public init() {}

    /// Whether `sync()` has anything to flush.
    public var isEmpty: Bool { first == nil }

    mutating func add(_ domain: IOMMUDomain) {
        guard let first else { return self.first = domain }
        if first !== domain, !others.contains(where: { $0 === domain }) { others.append(domain) }
    }

    /// `iommu_iotlb_sync`: invalidates every gathered domain's IOTLBs, then returns once no DMA
    /// transfer that could still use a removed translation is in flight (`DMAQuiescence`), and
    /// frees the page tables the unmaps unlinked (`gather->freelist`).
    public mutating func sync() {
        Self.flush(first, others)
        first = nil
        others = []
    }

    deinit { Self.flush(first, others) }

    private static func flush(_ first: IOMMUDomain?, _ others: [IOMMUDomain]) {
        guard let first else { return }
        first.flushGeneration.wrappingAdd(1, ordering: .sequentiallyConsistent)
        for domain in others { domain.flushGeneration.wrappingAdd(1, ordering: .sequentiallyConsistent) }
        DMAQuiescence.synchronize()
        first.reclaimUnlinkedTables()
        for domain in others { domain.reclaimUnlinkedTables() }
    }
}
