import KernelRules
import Locking
import Synchronization
import SystemPackage

/// One `struct iommu_domain`: a type, the geometry and page sizes of the IOMMU that allocated it,
/// and for paging types a real `IOPageTable`. Devices of a group attached to it DMA through
/// `translate`. Thread-safe: map and unmap serialise on the domain's lock; translations take no
/// lock, as the hardware's walk takes none — they run inside a DMA transfer
/// (`DMAQuiescence`), and page tables that an unmap unlinks are freed only by the IOTLB sync that
/// follows it, once the transfers that could still be walking them have completed.
public final class IOMMUDomain: Sendable, Identifiable, CustomStringConvertible {
    private static let nextID = Atomic<Int>(1)

    /// Unique in the process, for logs and fault records.
    public let id: Int
    /// The profile whose IOMMU allocated this domain: `domain->owner`, compared by DOM-01 and
    /// by type1 domain reuse.
    public let ops: String
    public let geometry: DomainGeometry
    public let pageSizes: PageSizeBitmap
    /// `enforce_cache_coherency` support (type1 only reuses domains that agree, T1-51).
    public let enforcesCacheCoherency: Bool
    /// Bumped by every IOTLB sync after an unmap that removed something (`IOTLBGather.sync`): a
    /// `DMAPath`'s cached translations taken before the bump are stale.
    let flushGeneration = Atomic<UInt64>(0)
    /// The type; it only ever changes from `DMA` to `DMA-FQ` (DT-04), which translate alike.
    private let currentType: PThreadMutex<IOMMUDomainType>
    /// Identity (passthrough) rather than blocked, for a domain without a page table.
    private let passesThrough: Bool
    /// Walked without a lock by `walk` (through `walker`, which `table` keeps alive, so a walk
    /// touches no reference count); changed only under `tableLock`, with deferred table frees.
    private nonisolated(unsafe) let table: IOPageTable?
    private nonisolated(unsafe) let walker: Unmanaged<IOPageTable>?
    private let tableLock = PThreadMutex(())

    /// A domain of `type` for the IOMMU described by `profile`. Paging types get a page table
    /// covering the aperture; geometry and page sizes are validated (DOM-05).
    public init(type: IOMMUDomainType, profile: PlatformProfile) throws(IOMMUError) {
        guard !profile.pageSizes.isEmpty else {
            throw IOMMUError(.invalidArgument, rule: .DOM_05, "\(profile.name): empty page-size bitmap")
        }
        var table: IOPageTable?
        if type.isPaging {
            table = try IOPageTable(
                inputBits: max(profile.geometry.addressBits, profile.pageShift + 1), pageShift: profile.pageShift,
                pageSizes: profile.pageSizes, deferredTableFree: true)
        }
        id = Self.nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        ops = profile.name
        geometry = profile.geometry
        pageSizes = profile.pageSizes
        enforcesCacheCoherency = profile.enforcesCacheCoherency
        currentType = PThreadMutex(type)
        passesThrough = type == .identity
        self.table = table
        walker = table.map(Unmanaged.passUnretained)
    }

    public var type: IOMMUDomainType { currentType.withLock { $0 } }

    /// DT-04: a `DMA` default domain becomes `DMA-FQ` in place (`iommu_dma_init_fq`).
    func convertToFlushQueue() {
        currentType.withLock { if $0 == .dma { $0 = .dmaFQ } }
    }

    /// `iommu_map` (DOM-04) into this domain's page table. `EINVAL` for a domain without one. A
    /// failed map unlinks what it had linked; the tables it had added wait for an IOTLB sync
    /// (`gatherUnlinkedTables(into:)`), since a device may have walked into them meanwhile.
    @discardableResult
    public func map(iova: UInt64, to address: UInt64, size: UInt64, access: IOAccess) throws(IOMMUError) -> UInt64 {
        guard let table else {
            throw IOMMUError(.invalidArgument, rule: .DOM_04, "map: domain \(id) is \(type), not a paging domain")
        }
        return try tableLock.withLock { (_) throws(IOMMUError) -> UInt64 in
            try table.map(iova: iova, to: address, size: size, access: access)
        }
    }

    /// `iommu_unmap` (DOM-04): bytes unmapped (0 for a domain without a page table). When it
    /// returns, the IOTLBs are flushed and every DMA transfer that could still have used the
    /// removed translations has completed (`iommu_iotlb_sync`, `DMAQuiescence`).
    @discardableResult
    public func unmap(iova: UInt64, size: UInt64) -> UInt64 {
        var gather = IOTLBGather()
        let unmapped = unmap(iova: iova, size: size, gather: &gather)
        gather.sync()
        return unmapped
    }

    /// `iommu_unmap_fast`: takes the translations out of the page table and adds this domain,
    /// with the page tables the unmap unlinked, to `gather`; DMA may keep using them (through
    /// IOTLBs and walks in flight) until `gather.sync()`, which frees the tables.
    public func unmap(iova: UInt64, size: UInt64, gather: inout IOTLBGather) -> UInt64 {
        guard let table else { return 0 }
        let (unmapped, unlinked) = tableLock.withLock { _ in (table.unmap(iova: iova, size: size), table.takeFreelist()) }
        if unmapped > 0 || !unlinked.isEmpty { gather.add(self, invalidates: unmapped > 0, unlinked: unlinked) }
        return unmapped
    }

    /// Adds to `gather` the page tables a failed `map` linked and unlinked again (a walk may have
    /// entered them meanwhile), so its `sync()` frees them; until then they count against the
    /// table limit. Sync it holding no lock a DMA transfer takes.
    public func gatherUnlinkedTables(into gather: inout IOTLBGather) {
        guard let table else { return }
        let unlinked = tableLock.withLock { _ in table.takeFreelist() }
        if !unlinked.isEmpty { gather.add(self, invalidates: false, unlinked: unlinked) }
    }

    /// After an IOTLB sync's grace period: the tables it gathered from this domain become spares
    /// or are freed (`iommu_put_pages_list`), no walk being left in them.
    func recycle(_ unlinked: [IOPageTable.TablePage]) {
        guard let table else { return }
        tableLock.withLock { _ in table.recycle(unlinked) }
    }

    /// IOTLB flushes that invalidated translations (`iommu_iotlb_sync` calls with something gathered).
    public var iotlbFlushes: UInt64 { flushGeneration.load(ordering: .relaxed) }

    /// What a DMA to `iova` reaches: blocked domains fault everything, identity domains pass the
    /// address through, paging domains fault outside a forced aperture, let DMA outside an
    /// unforced one bypass translation, and walk the page table inside it. Runs as a DMA transfer
    /// of its own unless the calling thread is in one.
    public func translate(_ iova: UInt64, access: IOAccess) -> IOTranslation {
        let began = DMAQuiescence.beginTransferUnlessInside()
        defer { if began { DMAQuiescence.endTransfer() } }
        return walk(iova, access: access)
    }

    /// `translate` for a caller inside a DMA transfer: no lock, no allocation.
    @inline(__always)
    func walk(_ iova: UInt64, access: IOAccess) -> IOTranslation {
        guard let walker else {
            return passesThrough ? .mapped(address: iova, contiguous: iova == 0 ? .max : 0 &- iova) : .fault(.blocked)
        }
        guard geometry.contains(iova) else {
            return geometry.forceAperture ? .fault(.outsideAperture) : .mapped(address: iova, contiguous: Self.bypassRun(iova, geometry))
        }
        return walker._withUnsafeGuaranteedRef { $0.translate(iova, access: access) }
    }

    /// Bytes from `iova` to the aperture (or the end of the address space) for untranslated DMA.
    private static func bypassRun(_ iova: UInt64, _ geometry: DomainGeometry) -> UInt64 {
        iova < geometry.apertureStart ? geometry.apertureStart - iova : (iova == 0 ? .max : 0 &- iova)
    }

    /// Bytes mapped in the page table.
    public var mappedBytes: UInt64 { table.map { table in tableLock.withLock { _ in table.mappedBytes } } ?? 0 }

    /// Bytes of page-table memory.
    public var pageTableBytes: Int { table.map { table in tableLock.withLock { _ in table.tableMemoryBytes } } ?? 0 }

    public var description: String { "domain \(id) (\(type), \(ops))" }
}

extension IOMMUDomain: Equatable {
    /// Domains are kernel objects: equal only to themselves.
    public static func == (lhs: IOMMUDomain, rhs: IOMMUDomain) -> Bool { lhs === rhs }
}
