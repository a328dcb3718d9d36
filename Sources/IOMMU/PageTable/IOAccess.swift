/// The direction of a DMA or the permissions of a mapping (`IOMMU_READ` / `IOMMU_WRITE`): a device
/// *reads* host memory for a transfer to the device and *writes* it for one from the device.
public struct IOAccess: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt8
    @inlinable
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    // Computed and inlinable, so a device model's hot path compares constants instead of calling
    // a lazy global's accessor.
    @inlinable public static var read: IOAccess { IOAccess(rawValue: 1) }
    @inlinable public static var write: IOAccess { IOAccess(rawValue: 2) }
    @inlinable public static var readWrite: IOAccess { IOAccess(rawValue: 3) }

    public var description: String {
        switch self {
        case .read: "read"
        case .write: "write"
        case .readWrite: "read-write"
        default: "none"
        }
    }
}

/// Why a translation failed, as an IOMMU fault record would say.
public enum IOFaultReason: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
    /// No mapping at this IOVA.
    case notPresent = "not-present"
    /// The mapping lacks `IOMMU_READ`.
    case readDenied = "read-denied"
    /// The mapping lacks `IOMMU_WRITE`.
    case writeDenied = "write-denied"
    /// The IOVA is outside the domain's aperture (or the page table's input range).
    case outsideAperture = "outside-aperture"
    /// The group is attached to a blocking domain: every DMA faults.
    case blocked = "blocked"

    public var description: String { rawValue }
}

/// The outcome of translating one IOVA: the output address and how many bytes from it are
/// contiguous (to the end of the leaf page), or a fault.
public enum IOTranslation: Sendable, Equatable {
    case mapped(address: UInt64, contiguous: UInt64)
    case fault(IOFaultReason)
}
