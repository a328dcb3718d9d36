import Synchronization
/// `struct iommu_iotlb_gather`: the domains a run of `IOMMUDomain.unmap(iova:size:gather:)` calls
/// took translations out of, and the page tables those unmaps unlinked (`gather->freelist`),
/// flushed together by one `sync()` (`iommu_iotlb_sync`). The kernel's type1 syncs once per
/// `vfio_dma`; the simulation's type1 gathers a whole VFIO_IOMMU_UNMAP_DMA, so one that removes a
/// thousand mappings waits out in-flight DMA once, not a thousand times. Until the sync, a device
/// may still use what was removed and walk the tables that held it; after it, the tables are freed
/// (`iommu_put_pages_list`). A gather that goes away unsynced syncs itself.
public struct IOTLBGather: ~Copyable {
    /// One domain's part: whether its IOTLBs must be invalidated, and the tables it unlinked.
    struct Part {
        let domain: IOMMUDomain
        var invalidates: Bool
        var unlinked: [IOPageTable.TablePage]
    }

    // The usual single domain without an allocation; containers with several IOMMUs use `others`.
    private var first: Part?
    private var others: [Part] = []

    public init() {}

    /// Whether `sync()` has anything to flush.
    public var isEmpty: Bool { first == nil }

    /// Adds `domain`: its IOTLBs are invalidated at the sync when `invalidates` (its unmap removed
    /// translations), and `unlinked`, tables taken off its page table, are freed after it.
    mutating func add(_ domain: IOMMUDomain, invalidates: Bool, unlinked: [IOPageTable.TablePage]) {
        guard first != nil else { return first = Part(domain: domain, invalidates: invalidates, unlinked: unlinked) }
        if first!.domain === domain { return first!.merge(invalidates, unlinked) }
        if let index = others.firstIndex(where: { $0.domain === domain }) { return others[index].merge(invalidates, unlinked) }
        others.append(Part(domain: domain, invalidates: invalidates, unlinked: unlinked))
    }

    /// `iommu_iotlb_sync`: invalidates the IOTLBs of every gathered domain whose translations were
    /// removed, returns once no DMA transfer that could still use a removed translation or walk an
    /// unlinked table is in flight (`DMAQuiescence`), then frees those tables.
    public mutating func sync() {
        Self.flush(first, others)
        first = nil
        others = []
    }

    deinit { Self.flush(first, others) }

    private static func flush(_ first: Part?, _ others: [Part]) {
        guard let first else { return }
        // `first`, then `others`, without building an array on every sync.
        func each(_ body: (Part) -> Void) {
            body(first)
            others.forEach(body)
        }
        each { if $0.invalidates { $0.domain.flushGeneration.wrappingAdd(1, ordering: .sequentiallyConsistent) } }
        DMAQuiescence.synchronize()
        each { if !$0.unlinked.isEmpty { $0.domain.recycle($0.unlinked) } }
    }
}

extension IOTLBGather.Part {
    fileprivate mutating func merge(_ invalidates: Bool, _ unlinked: [IOPageTable.TablePage]) {
        self.invalidates = self.invalidates || invalidates
        self.unlinked += unlinked
    }
}
