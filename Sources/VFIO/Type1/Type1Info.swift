import IOMMU

/// What `VFIO_IOMMU_GET_INFO` reports (T1-70, T1-71), as a Swift value and as the exact UAPI
/// bytes of `struct vfio_iommu_type1_info` with its capability chain (T1-72, T1-73).
public struct Type1Info: Sendable, Equatable {
    /// `iova_pgsizes`: the container's page-size bitmap (T1-52).
    public let pageSizes: UInt64
    /// The allowed-IOVA list (`IOVA_RANGE` capability; omitted from the bytes when empty).
    public let iovaRanges: [IOVAList.Range]
    /// `DMA_AVAIL`: entries MAP_DMA may still create.
    public let dmaAvailable: UInt32
    /// `MIGRATION` capability: only the smallest page size, and `DIRTY_BITMAP_SIZE_MAX`.
    public var migrationPageSize: UInt64 { PageSizeBitmap(rawValue: pageSizes).minimumPageSize }
    public var maxDirtyBitmapSize: UInt64 { dirtyBitmapSizeMax }

    /// `sizeof(struct vfio_iommu_type1_info)`.
    public static let headerSize = 24
    static let infoFlagPageSizes: UInt32 = 1 << 0
    static let infoFlagCaps: UInt32 = 1 << 1

    /// The capabilities in chain order MIGRATION (2) → DMA_AVAIL (3) → IOVA_RANGE (1), each padded
    /// to a multiple of 8 bytes, `next` counted from the start of the info struct.
    var capabilityChain: [UInt8] {
        var chain = UInt8Buffer()
        chain.capability(id: 2, at: Self.headerSize) { body in
            body.u32(0)
            body.u32(0)  // pad before the aligned u64
            body.u64(migrationPageSize)
            body.u64(maxDirtyBitmapSize)
        }
        chain.capability(id: 3, at: Self.headerSize) { body in body.u32(dmaAvailable) }
        if !iovaRanges.isEmpty {
            chain.capability(id: 1, at: Self.headerSize) { body in
                body.u32(UInt32(iovaRanges.count))
                body.u32(0)
                for range in iovaRanges {
                    body.u64(range.start)
                    body.u64(range.end)
                }
            }
        }
        return chain.bytes
    }

    /// The bytes the kernel copies back for a caller's `argsz` (T1-72): the header always
    /// (`min(argsz, 24)` of it reaches the caller); the chain only when `argsz` holds it, else
    /// `argsz` grows to the size needed and `cap_offset` stays 0.
    public func encoded(argsz: UInt32) -> [UInt8] {
        let chain = capabilityChain
        let needed = UInt32(Self.headerSize + chain.count)
        let fits = argsz >= needed
        var header = UInt8Buffer()
        header.u32(fits ? argsz : needed)
        header.u32(Self.infoFlagPageSizes | Self.infoFlagCaps)
        header.u64(pageSizes)
        header.u32(fits ? UInt32(Self.headerSize) : 0)
        header.u32(0)
        let copied = Array(header.bytes.prefix(Int(min(argsz, UInt32(Self.headerSize)))))
        return fits ? copied + chain : copied
    }
}

/// Little-endian byte assembly for UAPI structs and `vfio_info_cap_header` chains.
struct UInt8Buffer {
    var bytes: [UInt8] = []
    /// Offset of the last capability's `next` field, to link the following one.
    private var lastNext: Int?

    mutating func u32(_ value: UInt32) { withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u64(_ value: UInt64) { withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u16(_ value: UInt16) { withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) } }

    /// `vfio_info_cap_add`: a version-1 header, the body, padding to 8 bytes, linked from the previous one.
    mutating func capability(id: UInt16, at base: Int, body: (inout UInt8Buffer) -> Void) {
        let start = bytes.count
        if let lastNext { patch32(at: lastNext, UInt32(base + start)) }
        u16(id)
        u16(1)
        lastNext = bytes.count
        u32(0)
        body(&self)
        while bytes.count % 8 != 0 { bytes.append(0) }
    }

    private mutating func patch32(at offset: Int, _ value: UInt32) {
        withUnsafeBytes(of: value.littleEndian) { for (index, byte) in $0.enumerated() { bytes[offset + index] = byte } }
    }
}
