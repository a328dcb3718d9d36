import KernelRules
import UserMemory
import IOMMU
import SystemPackage

/// `struct vfio_iommu` of `drivers/vfio/vfio_iommu_type1.c`: the type1 backend a container gets
/// from `VFIO_SET_IOMMU` — its domains and their groups, the allowed-IOVA list, the mappings, the
/// entry budget, the page-size bitmap, dirty tracking and invalidated vaddrs. Every operation
/// validates in the kernel's order before it changes anything; `VFIOContainer` serialises them.
struct Type1IOMMU: Sendable {
    /// `struct vfio_domain`: one IOMMU domain and the groups attached to it.
    struct Domain: Sendable {
        let domain: IOMMUDomain
        var groups: [Type1Group]
    }

    /// False for `VFIO_TYPE1_IOMMU` (legacy unmap, T1-34), true for `VFIO_TYPE1v2_IOMMU`.
    let v2: Bool
    /// The container this backend belongs to, for messages.
    let name: String
    let options: VFIOContainerOptions
    let process: ProcessMemory
    var domains: [Domain] = []
    var iovaList = IOVAList()
    var table = DMAMappingTable()
    /// `dma_avail`: entries MAP_DMA may still create (T1-01, T1-18).
    var dmaAvailable: UInt32
    /// `pgsize_bitmap` (T1-52); `PAGE_MASK` with no domain (T1-02).
    var pageSizes: UInt64 = pageMask
    var dirtyTracking = false
    /// IOVAs of mappings whose vaddr a VADDR unmap invalidated (`vaddr_invalid`, T1-35).
    var invalidVaddrs: Set<UInt64> = []

    /// Every power of two from `PAGE_SIZE` up.
    static var pageMask: UInt64 { ~(hostPageSize - 1) }

    /// `vfio_iommu_type1_open` (T1-02): type1 is v1, type1v2 (and the retired nesting ID) v2.
    init(type: VFIOExtension, name: String, options: VFIOContainerOptions, process: ProcessMemory) throws(VFIOError) {
        switch type {
        case .type1: v2 = false
        case .type1v2, .reservedNesting: v2 = true
        default: throw VFIOError(.invalidArgument, rule: .T1_02, "\(name): type1 cannot open IOMMU type \(type)")
        }
        self.name = name
        self.options = options
        self.process = process
        dmaAvailable = options.dmaEntryLimit
    }

    /// The smallest IOMMU page size: the alignment every MAP/UNMAP must keep (T1-16).
    var minimumPageSize: UInt64 { PageSizeBitmap(rawValue: pageSizes).minimumPageSize }

    /// `vfio_iommu_type1_check_extension` (T1-03, VG-21): `iommu` is nil before `VFIO_SET_IOMMU`.
    static func checkExtension(_ extensionID: VFIOExtension, of iommu: Type1IOMMU?) -> Int32 {
        switch extensionID {
        case .type1, .type1v2, .unmapAll: return 1
        // Needs an IOMMU; no emulated (mdev) groups exist in the simulation.
        case .updateVaddr: return iommu == nil ? 0 : 1
        case .dmaCacheCoherent:
            guard let iommu else { return 0 }
            return iommu.domains.allSatisfy { $0.domain.enforcesCacheCoherency } ? 1 : 0
        default: return 0
        }
    }

    /// `vfio_update_pgsize_bitmap` (T1-52): the AND of every domain's page sizes, never below
    /// `PAGE_SIZE`; `PAGE_MASK` with no domain.
    mutating func updatePageSizes() {
        guard !domains.isEmpty else {
            pageSizes = Self.pageMask
            return
        }
        var bitmap = domains.reduce(UInt64.max) { $0 & $1.domain.pageSizes.rawValue }
        if bitmap & (hostPageSize - 1) != 0 {
            bitmap &= Self.pageMask
            bitmap |= hostPageSize
        }
        pageSizes = bitmap
    }

    /// Whether any mapping overlaps `[first, last]` (`vfio_find_dma`).
    func hasMapping(_ first: UInt64, _ last: UInt64) -> Bool {
        table.overlapping(first: first, last: last) != nil
    }

    var groups: [Type1Group] { domains.flatMap(\.groups) }
}

/// `struct vfio_iommu_group`: an IOMMU group type1 attached, with the core that owns it.
struct Type1Group: Sendable {
    let core: IOMMUCore
    let id: Int
    /// The VFIO group object that joined the container.
    let key: ObjectIdentifier

    var reservedRegions: [ReservedRegion] { core.group(id)?.reservedRegions.regions ?? [] }
}
