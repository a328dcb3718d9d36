import IOMMU
import KernelRules
import PCIBus

/// `VFIO_CHECK_EXTENSION` / `VFIO_SET_IOMMU` identifiers of `<linux/vfio.h>` (spec §3.1).
public struct VFIOExtension: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let type1 = VFIOExtension(rawValue: 1)
    public static let spaprTCE = VFIOExtension(rawValue: 2)
    public static let type1v2 = VFIOExtension(rawValue: 3)
    public static let dmaCacheCoherent = VFIOExtension(rawValue: 4)
    public static let eeh = VFIOExtension(rawValue: 5)
    /// `__VFIO_RESERVED_TYPE1_NESTING_IOMMU`, once `VFIO_TYPE1_NESTING_IOMMU`.
    public static let reservedNesting = VFIOExtension(rawValue: 6)
    public static let spaprTCEv2 = VFIOExtension(rawValue: 7)
    public static let noIOMMU = VFIOExtension(rawValue: 8)
    public static let unmapAll = VFIOExtension(rawValue: 9)
    public static let updateVaddr = VFIOExtension(rawValue: 10)

    public var description: String {
        let names: [UInt32: String] = [
            1: "VFIO_TYPE1_IOMMU", 2: "VFIO_SPAPR_TCE_IOMMU", 3: "VFIO_TYPE1v2_IOMMU", 4: "VFIO_DMA_CC_IOMMU", 5: "VFIO_EEH",
            6: "__VFIO_RESERVED_TYPE1_NESTING_IOMMU", 7: "VFIO_SPAPR_TCE_v2_IOMMU", 8: "VFIO_NOIOMMU_IOMMU",
            9: "VFIO_UNMAP_ALL", 10: "VFIO_UPDATE_VADDR",
        ]
        return names[rawValue] ?? "extension \(rawValue)"
    }
}

/// `vfio_iommu_type1_dma_map.flags`. Unknown bits are kept so the checks can refuse them (T1-11).
public struct DMAMapFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `VFIO_DMA_MAP_FLAG_READ`: the device may read the memory.
    public static let read = DMAMapFlags(rawValue: 1 << 0)
    /// `VFIO_DMA_MAP_FLAG_WRITE`: the device may write it.
    public static let write = DMAMapFlags(rawValue: 1 << 1)
    /// `VFIO_DMA_MAP_FLAG_VADDR`: re-validate an invalidated mapping at a new vaddr (T1-60).
    public static let vaddr = DMAMapFlags(rawValue: 1 << 2)
    package static let known: DMAMapFlags = [.read, .write, .vaddr]

    /// READ and WRITE for the device-side permission `access`.
    public init(access: IOAccess) {
        self = []
        if access.contains(.read) { insert(.read) }
        if access.contains(.write) { insert(.write) }
    }

    /// The device-side permission the flags grant.
    public var access: IOAccess {
        var access: IOAccess = []
        if contains(.read) { access.insert(.read) }
        if contains(.write) { access.insert(.write) }
        return access
    }
}

/// `vfio_iommu_type1_dma_unmap.flags` (T1-30).
public struct DMAUnmapFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let getDirtyBitmap = DMAUnmapFlags(rawValue: 1 << 0)
    public static let all = DMAUnmapFlags(rawValue: 1 << 1)
    public static let vaddr = DMAUnmapFlags(rawValue: 1 << 2)
    package static let known: DMAUnmapFlags = [.getDirtyBitmap, .all, .vaddr]
}

/// `vfio_iommu_type1_dirty_bitmap.flags` (T1-80).
public struct DirtyPagesFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let start = DirtyPagesFlags(rawValue: 1 << 0)
    public static let stop = DirtyPagesFlags(rawValue: 1 << 1)
    public static let getBitmap = DirtyPagesFlags(rawValue: 1 << 2)
    package static let known: DirtyPagesFlags = [.start, .stop, .getBitmap]
}

/// `VFIO_API_VERSION`.
public let vfioAPIVersion: Int32 = 0

/// `DIRTY_BITMAP_SIZE_MAX`: `ALIGN(INT_MAX, 64) / 8` bytes = 2^28, enough for 2^31 pages (T1-71).
public let dirtyBitmapSizeMax: UInt64 = 1 << 28
