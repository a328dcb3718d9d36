/// A capability in `VFIO_DEVICE_GET_REGION_INFO`'s chain (`struct vfio_info_cap_header` and its
/// body). Plain vfio-pci has one: MSIX_MAPPABLE on the MSI-X BAR when it is mmap-able
/// (`vfio_pci_ioctl_get_region_info` → `msix_mmappable_cap`, VPCI-42, VPCI-61); SPARSE_MMAP and
/// TYPE belong to variant drivers and device-specific regions (VPCI-53).
public enum VFIORegionCapability: Sendable, Equatable {
    /// `VFIO_REGION_INFO_CAP_MSIX_MAPPABLE` (id 3, version 1): the MSI-X table's page may be
    /// mapped like the rest of the BAR; a bare header.
    case msixMappable

    /// `struct vfio_info_cap_header.id`.
    public var id: UInt16 {
        switch self {
        case .msixMappable: 3
        }
    }

    public var version: UInt16 { 1 }

    /// The body after the 8-byte header.
    var body: [UInt8] { [] }

    /// The chain as `vfio_info_cap_add` builds it — each capability's size rounded up to 8 bytes,
    /// zero-filled, `next` the following capability's offset (0 at the end) — then shifted
    /// (`vfio_info_cap_shift`) so the offsets count from the start of the user's struct, where the
    /// chain lands at `base` (32 for `vfio_region_info`).
    public static func chain(_ capabilities: [VFIORegionCapability], at base: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        for (i, capability) in capabilities.enumerated() {
            let size = (8 + capability.body.count + 7) & ~7
            let next = i + 1 < capabilities.count ? UInt32(base + bytes.count + size) : 0
            var entry = [UInt8](repeating: 0, count: size)
            (entry[0], entry[1]) = (UInt8(capability.id & 0xff), UInt8(capability.id >> 8))
            (entry[2], entry[3]) = (UInt8(capability.version & 0xff), UInt8(capability.version >> 8))
            for b in 0..<4 { entry[4 + b] = UInt8(truncatingIfNeeded: next >> (8 * UInt32(b))) }
            entry.replaceSubrange(8..<8 + capability.body.count, with: capability.body)
            bytes += entry
        }
        return bytes
    }
}
