/// `IOMMU_DOMAIN_*`: what a domain does with DMA.
public enum IOMMUDomainType: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
    /// Every DMA faults (`IOMMU_DOMAIN_BLOCKED`).
    case blocked
    /// DMA addresses are host addresses (`IOMMU_DOMAIN_IDENTITY`, passthrough).
    case identity
    /// A paging domain a user (VFIO, iommufd) maps itself (`IOMMU_DOMAIN_UNMANAGED`).
    case unmanaged
    /// A paging domain the kernel's DMA API manages, strict invalidation (`IOMMU_DOMAIN_DMA`).
    case dma = "DMA"
    /// As `dma` with a flush queue: lazy invalidation (`IOMMU_DOMAIN_DMA_FQ`).
    case dmaFQ = "DMA-FQ"

    /// The word `/sys/kernel/iommu_groups/N/type` prints (SYS-01).
    public var sysfsName: String { rawValue }

    /// Domains with an I/O page table.
    public var isPaging: Bool { self == .unmanaged || self == .dma || self == .dmaFQ }

    /// Domains the kernel DMA API owns (RR-05 identity-maps firmware regions in these).
    public var isDMAAPI: Bool { self == .dma || self == .dmaFQ }

    /// The word the kernel log uses for the type. The corresponding C function is
    /// `iommu_domain_type_str` (`drivers/iommu/iommu.c`): both DMA kinds are "Translated".
    public var logName: String {
        switch self {
        case .blocked: "Blocked"
        case .identity: "Passthrough"
        case .unmanaged: "Unmanaged"
        case .dma, .dmaFQ: "Translated"
        }
    }

    /// The `IOMMU_DOMAIN_*` value (`include/linux/iommu.h`), which `%u` prints: blocked 0,
    /// unmanaged `PAGING` 1, DMA `PAGING|DMA_API` 3, identity `PT` 4, DMA-FQ `PAGING|DMA_API|DMA_FQ` 11.
    public var kernelValue: UInt32 {
        switch self {
        case .blocked: 0
        case .unmanaged: 1
        case .dma: 3
        case .identity: 4
        case .dmaFQ: 11
        }
    }

    public var description: String { rawValue }
}
