/// IOMMUFD-720..723, byte by byte: VFIO_IOMMU_GET_INFO on `/dev/iommu` into a buffer of 0xAA for
/// every `argsz` from 16 to 8 past the total, without and with a VT-d device attached. The expected
/// bytes are built here from `vfio_compat.c`'s fill loop: the header's first `min(argsz, 24)`
/// bytes; DMA_AVAIL (12 bytes) at 24 when it fits whole; IOVA_RANGE's entries each when it fits,
/// its header when all do; DMA_AVAIL's `next` patched when `argsz` reaches IOVA_RANGE's offset;
/// `cap_offset` 24 only when everything fits; `argsz` the total always; nothing past `argsz`.
private func expectedInfo(argsz: Int, pageSizes: UInt64, ranges: [(UInt64, UInt64)]) -> FDOutcome {
    var buffer = StructBytes(bytes: [UInt8](repeating: 0xAA, count: 128))
    let rangeCap = 16 + 16 * ranges.count
    let total = 24 + 16 + rangeCap
    var header = StructBytes(length: 24)
    header.set(UInt64(total), at: 0, width: 4)
    header.set(3, at: 4, width: 4)  // VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS
    header.set(pageSizes, at: 8, width: 8)
    header.set(argsz >= total ? 24 : 0, at: 16, width: 4)
    for index in 0..<min(argsz, 24) { buffer.bytes[index] = header.bytes[index] }
    if argsz - 24 >= 12 {  // struct vfio_iommu_type1_info_dma_avail
        buffer.set(3, at: 24, width: 2)
        buffer.set(1, at: 26, width: 2)
        buffer.set(0, at: 28, width: 4)
        buffer.set(UInt64(UInt32.max), at: 32, width: 4)
    }
    let room = argsz - 40
    for (index, range) in ranges.enumerated() where room >= 16 + 16 * (index + 1) {
        buffer.set(range.0, at: 56 + 16 * index, width: 8)
        buffer.set(range.1, at: 64 + 16 * index, width: 8)
    }
    if room >= rangeCap {  // struct vfio_iommu_type1_info_cap_iova_range's header
        buffer.set(1, at: 40, width: 2)
        buffer.set(1, at: 42, width: 2)
        buffer.set(0, at: 44, width: 4)
        buffer.set(UInt64(ranges.count), at: 48, width: 4)
        buffer.set(0, at: 52, width: 4)
    }
    if argsz >= 40 { buffer.set(40, at: 28, width: 4) }
    return .fields((0..<16).map { buffer.get(8 * $0, 8) })
}

private let compat: [FDOp] = [.vfioIOAS(op: 1, id: 1), .setIOMMU(3)]
private let bare = (pageSizes: ~(FD.page - 1), ranges: [(UInt64(0), FD.max)])
private let vtd = (pageSizes: UInt64(0x4020_1000), ranges: [(UInt64(0), FD.msiFirst - 1), (FD.msiLast + 1, FD.top48 - 1)])

let compatInfoSweepRows: [IOMMUFDRow] =
    (16...80).map { argsz in
        IOMMUFDRow(
            rule: "IOMMUFD-723", name: "argsz \(argsz), no domain (total 72): 0xAA kept wherever nothing fits", prepare: compat,
            operation: .compatInfo(.bytes(argsz: UInt32(argsz))), expect: expectedInfo(argsz: argsz, pageSizes: bare.pageSizes, ranges: bare.ranges),
            also: ["IOMMUFD-720", "IOMMUFD-722"], uapiOnly: FD.protocolOnly)
    }
    + (16...96).map { argsz in
        IOMMUFDRow(
            rule: "IOMMUFD-723", name: "argsz \(argsz), a VT-d device attached (total 88)", prepare: FD.attached(FD.nvme) + compat,
            operation: .compatInfo(.bytes(argsz: UInt32(argsz))), expect: expectedInfo(argsz: argsz, pageSizes: vtd.pageSizes, ranges: vtd.ranges),
            also: ["IOMMUFD-721", "IOMMUFD-722"], uapiOnly: FD.protocolOnly)
    }
