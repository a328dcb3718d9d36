import Synchronization

/// The `owner` cookie of `iommu_group_claim_dma_owner` / `iommu_device_claim_dma_owner`: an
/// opaque identity (a VFIO container, an iommufd context). Two claims share a group only with the
/// same cookie (OWN-06).
public struct DMAOwner: Sendable, Hashable, CustomStringConvertible {
    private static let nextID = Atomic<Int>(1)

    public let id: Int
    /// What the owner is, for messages ("VFIO container 3").
    public let name: String

    /// A new, unique owner.
    public init(_ name: String) {
        id = Self.nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        self.name = name
    }

    public var description: String { name }
}
