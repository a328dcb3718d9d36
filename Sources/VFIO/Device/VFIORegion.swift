/// vfio-pci's region indexes (`VFIO_PCI_*_REGION_INDEX`): six BARs, the expansion ROM, config
/// space and the VGA range — `VFIO_PCI_NUM_REGIONS` of them.
public enum VFIORegionIndex: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    case bar0 = 0, bar1, bar2, bar3, bar4, bar5
    case rom = 6
    case config = 7
    case vga = 8

    /// `VFIO_PCI_INDEX_TO_OFFSET`: where the region starts in the device fd (index << 40).
    public var fileOffset: UInt64 { UInt64(rawValue) << 40 }

    public static func bar(_ index: Int) -> VFIORegionIndex { VFIORegionIndex(rawValue: UInt32(index))! }

    public var barNumber: Int? { rawValue < 6 ? Int(rawValue) : nil }

    public var description: String {
        switch self {
        case .rom: "ROM"
        case .config: "config space"
        case .vga: "VGA"
        default: "BAR\(rawValue)"
        }
    }
}

/// `struct vfio_region_info.flags` (`VFIO_REGION_INFO_FLAG_*`).
public struct VFIORegionFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let read = VFIORegionFlags(rawValue: 1 << 0)
    public static let write = VFIORegionFlags(rawValue: 1 << 1)
    public static let mmap = VFIORegionFlags(rawValue: 1 << 2)
    public static let caps = VFIORegionFlags(rawValue: 1 << 3)
}

/// `VFIO_DEVICE_GET_REGION_INFO`'s answer.
public struct VFIORegionInfo: Sendable, Equatable {
    public let index: VFIORegionIndex
    /// With `caps` whenever `capabilities` is not empty (`vfio_get_region_info`, VPCI-42).
    public let flags: VFIORegionFlags
    public let size: UInt64
    /// The capability chain (VPCI-42): MSIX_MAPPABLE on an mmap-able MSI-X BAR.
    public internal(set) var capabilities: [VFIORegionCapability] = []
    public var offset: UInt64 { index.fileOffset }
}

/// `struct vfio_device_info.flags` (`VFIO_DEVICE_FLAGS_*`).
public struct VFIODeviceFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let reset = VFIODeviceFlags(rawValue: 1 << 0)
    public static let pci = VFIODeviceFlags(rawValue: 1 << 1)
}

/// `VFIO_DEVICE_GET_INFO`'s answer.
public struct VFIODeviceInfo: Sendable, Equatable {
    public let flags: VFIODeviceFlags
    public let regionCount: UInt32
    public let irqCount: UInt32
}

/// What a BAR mapping of the device fd is backed by (`vfio_pci_core_mmap`).
public enum VFIORegionMapping {
    /// Device RAM: map `file` at `offset` (shared, so every mapping and the device see the same
    /// bytes); `memory` is the device's own view of the whole BAR.
    case memory(file: Int32, offset: UInt64, memory: UnsafeMutableRawBufferPointer)
    /// Registers: every access of the mapping is one access of BAR `bar`, trapped.
    case registers(bar: Int)
}
