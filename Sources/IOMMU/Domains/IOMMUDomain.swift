import Locking
import Synchronization
import SystemPackage

/// One `struct iommu_domain`: a type, the geometry and page sizes of the IOMMU that allocated it,
/// and for paging types a real `IOPageTable`. Devices of a group attached to it DMA through
/// `translate`. Thread-safe: map, unmap and translate serialise on the domain's own lock.
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
    private let state: PThreadMutex<State>

    private struct State {
        var type: IOMMUDomainType
        let table: IOPageTable?
    }

    /// A domain of `type` for the IOMMU described by `profile`. Paging types get a page table
    /// covering the aperture; geometry and page sizes are validated (DOM-05).
    public init(type: IOMMUDomainType, profile: PlatformProfile) throws(IOMMUError) {
        guard !profile.pageSizes.isEmpty else {
            throw IOMMUError(.invalidArgument, rule: "DOM-05", "\(profile.name): empty page-size bitmap")
        }
        var table: IOPageTable?
        if type.isPaging {
            table = try IOPageTable(
                inputBits: max(profile.geometry.addressBits, profile.pageShift + 1), pageShift: profile.pageShift,
                pageSizes: profile.pageSizes)
        }
        id = Self.nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        ops = profile.name
        geometry = profile.geometry
        pageSizes = profile.pageSizes
        enforcesCacheCoherency = profile.enforcesCacheCoherency
        state = PThreadMutex(State(type: type, table: table))
    }

    public var type: IOMMUDomainType { state.withLock { $0.type } }

    /// DT-04: a `DMA` default domain becomes `DMA-FQ` in place (`iommu_dma_init_fq`).
    func convertToFlushQueue() {
        state.withLock { if $0.type == .dma { $0.type = .dmaFQ } }
    }

    /// `iommu_map` (DOM-04) into this domain's page table. `EINVAL` for a domain without one.
    @discardableResult
    public func map(iova: UInt64, to address: UInt64, size: UInt64, access: IOAccess) throws(IOMMUError) -> UInt64 {
        try state.withLock { (state) throws(IOMMUError) -> UInt64 in
            guard let table = state.table else {
                throw IOMMUError(.invalidArgument, rule: "DOM-04", "map: domain \(id) is \(state.type), not a paging domain")
            }
            return try table.map(iova: iova, to: address, size: size, access: access)
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

    /// `iommu_unmap_fast`: takes the translations out of the page table and adds this domain to
    /// `gather`; DMA may keep using them (through IOTLBs) until `gather.sync()`.
    public func unmap(iova: UInt64, size: UInt64, gather: inout IOTLBGather) -> UInt64 {
        let unmapped = state.withLock { $0.table?.unmap(iova: iova, size: size) ?? 0 }
        if unmapped > 0 { gather.add(self) }
        return unmapped
    }

    /// IOTLB flushes that invalidated translations (`iommu_iotlb_sync` calls with something gathered).
    public var iotlbFlushes: UInt64 { flushGeneration.load(ordering: .relaxed) }

    /// What a DMA to `iova` reaches: blocked domains fault everything, identity domains pass the
    /// address through, paging domains fault outside a forced aperture, let DMA outside an
    /// unforced one bypass translation, and walk the page table inside it.
    public func translate(_ iova: UInt64, access: IOAccess) -> IOTranslation {
        state.withLock { state in
            switch state.type {
            case .blocked: return .fault(.blocked)
            case .identity: return .mapped(address: iova, contiguous: iova == 0 ? .max : 0 &- iova)
            case .unmanaged, .dma, .dmaFQ:
                guard geometry.contains(iova) else {
                    return geometry.forceAperture
                        ? .fault(.outsideAperture) : .mapped(address: iova, contiguous: Self.bypassRun(iova, geometry))
                }
                return state.table!.translate(iova, access: access)
            }
        }
    }

    /// Bytes from `iova` to the aperture (or the end of the address space) for untranslated DMA.
    private static func bypassRun(_ iova: UInt64, _ geometry: DomainGeometry) -> UInt64 {
        iova < geometry.apertureStart ? geometry.apertureStart - iova : (iova == 0 ? .max : 0 &- iova)
    }

    /// Bytes mapped in the page table.
    public var mappedBytes: UInt64 { state.withLock { $0.table?.mappedBytes ?? 0 } }

    /// Bytes of page-table memory.
    public var pageTableBytes: Int { state.withLock { $0.table?.tableMemoryBytes ?? 0 } }

    public var description: String { "domain \(id) (\(type), \(ops))" }
}

extension IOMMUDomain: Equatable {
    /// Domains are kernel objects: equal only to themselves.
    public static func == (lhs: IOMMUDomain, rhs: IOMMUDomain) -> Bool { lhs === rhs }
}
