import KernelRules
import IOMMU

/// One `struct vfio_dma`: a MAP_DMA entry. Never coalesced with its neighbours (T1-22).
public struct DMAMapping: Sendable, Equatable, CustomStringConvertible {
    public let iova: UInt64
    /// Bytes, at least one page; `iova + size - 1` does not wrap (T1-14).
    public let size: UInt64
    /// The user's address for the pages (`dma->vaddr`); a VADDR update (T1-60) changes it.
    public let vaddr: UInt64
    /// Where the IOMMU maps the IOVA to: the pages pinned at MAP_DMA time, which a VADDR update
    /// does not move.
    public let hostAddress: UInt64
    public let access: IOAccess

    public init(iova: UInt64, size: UInt64, vaddr: UInt64, hostAddress: UInt64? = nil, access: IOAccess) {
        precondition(size > 0 && iova <= UInt64.max - (size - 1), "a mapping is a non-empty range that does not wrap")
        self.iova = iova
        self.size = size
        self.vaddr = vaddr
        self.hostAddress = hostAddress ?? vaddr
        self.access = access
    }

    /// The same pages reachable from a new user address (T1-60).
    func withVaddr(_ vaddr: UInt64) -> DMAMapping {
        DMAMapping(iova: iova, size: size, vaddr: vaddr, hostAddress: hostAddress, access: access)
    }

    /// Inclusive last IOVA.
    public var last: UInt64 { iova + (size - 1) }

    public var description: String { "\(rangeText(iova, last)) → vaddr 0x\(String(vaddr, radix: 16)) \(access)" }
}

extension DMAMapping: IOVAInterval {}

/// The container's mappings (`iommu->dma_list`), ordered by IOVA and disjoint.
public typealias DMAMappingTable = IntervalTable<DMAMapping>
