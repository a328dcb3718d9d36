import SystemPackage

/// The container fd's ioctls with raw `<linux/vfio.h>` structs (spec §3.1, §4.6): same return
/// values, same errnos, same bytes written back.
extension VFIOContainer {
    /// `ioctl(container_fd, request, argument)`: the result, or -1 with `errno` set.
    public func ioctl(request: UInt, argument: UInt) -> Int32 {
        ioctlReturn(ioctlResult(request: request, argument: argument))
    }

    /// `ioctl` with the `VFIOError` that explains a failure.
    public func ioctlResult(request: UInt, argument: UInt) -> Result<Int32, VFIOError> {
        Result { () throws(VFIOError) in try handle(request: request, argument: argument) }
    }

    private func handle(request: UInt, argument: UInt) throws(VFIOError) -> Int32 {
        switch request {
        case VFIORequest.getAPIVersion:
            return apiVersion
        case VFIORequest.checkExtension:
            return checkExtension(VFIOExtension(rawValue: UInt32(truncatingIfNeeded: argument)))
        case VFIORequest.setIOMMU:
            try setIOMMU(VFIOExtension(rawValue: UInt32(truncatingIfNeeded: argument)))
            return 0
        default:
            guard let type = iommuType else {
                throw VFIOError(.invalidArgument, rule: "VG-23", "\(self) ioctl 0x\(String(request, radix: 16)): no IOMMU is set (VFIO_SET_IOMMU first)")
            }
            switch request {
            case VFIORequest.iommuGetInfo: return try uapiGetInfo(argument)
            case VFIORequest.iommuMapDMA: return try uapiMap(argument)
            case VFIORequest.iommuUnmapDMA: return try uapiUnmap(argument)
            case VFIORequest.iommuDirtyPages: return try uapiDirtyPages(argument, v2: type == .type1v2)
            default:
                throw VFIOError(.inappropriateIOCTLForDevice, rule: "T1-04", "\(self): type1 has no ioctl 0x\(String(request, radix: 16))")
            }
        }
    }

    /// T1-70..72: `struct vfio_iommu_type1_info` and its capability chain.
    private func uapiGetInfo(_ argument: UInt) throws(VFIOError) -> Int32 {
        let user = try UserMemory(argument, rule: "T1-70", what: "\(self) GET_INFO")
        let argsz = user.u32(0)
        guard argsz >= 16 else { throw VFIOError(.invalidArgument, rule: "T1-70", "\(self) GET_INFO: argsz \(argsz) < 16") }
        user.store(try info().encoded(argsz: argsz), at: 0)
        return 0
    }

    /// T1-10, T1-11: `struct vfio_iommu_type1_dma_map` (32 bytes).
    private func uapiMap(_ argument: UInt) throws(VFIOError) -> Int32 {
        let user = try UserMemory(argument, rule: "T1-10", what: "\(self) MAP_DMA")
        let argsz = user.u32(0)
        guard argsz >= 32 else { throw VFIOError(.invalidArgument, rule: "T1-11", "\(self) MAP_DMA: argsz \(argsz) < 32") }
        try map(DMAMapRequest(flags: DMAMapFlags(rawValue: user.u32(4)), vaddr: user.u64(8), iova: user.u64(16), size: user.u64(24)))
        return 0
    }

    /// T1-30..37: `struct vfio_iommu_type1_dma_unmap` (+ `struct vfio_bitmap`); `size` is written
    /// back only on success.
    private func uapiUnmap(_ argument: UInt) throws(VFIOError) -> Int32 {
        let user = try UserMemory(argument, rule: "T1-30", what: "\(self) UNMAP_DMA")
        let argsz = user.u32(0)
        guard argsz >= 24 else { throw VFIOError(.invalidArgument, rule: "T1-30", "\(self) UNMAP_DMA: argsz \(argsz) < 24") }
        var request = DMAUnmapRequest(flags: DMAUnmapFlags(rawValue: user.u32(4)), iova: user.u64(8), size: user.u64(16))
        var data: UInt64 = 0
        if request.flags.contains(.getDirtyBitmap), argsz >= 48 {
            var bitmap = DirtyBitmapRequest(pageSize: user.u64(24), size: user.u64(32))
            data = user.u64(40)
            bitmap.dataAccessible = UserMemory.accessible(data, size: bitmap.size)
            request.bitmap = bitmap
        }
        let result = try unmap(request)
        UserMemory.storeBitmap(result.dirtyBitmap, to: data)
        user.store(result.size, at: 16)
        return 0
    }

    /// T1-80..82: `struct vfio_iommu_type1_dirty_bitmap` (+ `_get`).
    private func uapiDirtyPages(_ argument: UInt, v2: Bool) throws(VFIOError) -> Int32 {
        guard v2 else { throw VFIOError(.permissionDenied, rule: "T1-80", "\(self) DIRTY_PAGES: dirty tracking needs a type1v2 container") }
        let user = try UserMemory(argument, rule: "T1-80", what: "\(self) DIRTY_PAGES")
        let argsz = user.u32(0)
        guard argsz >= 8 else { throw VFIOError(.invalidArgument, rule: "T1-80", "\(self) DIRTY_PAGES: argsz \(argsz) < 8") }
        let flags = DirtyPagesFlags(rawValue: user.u32(4))
        var query: DirtyBitmapQuery?
        var data: UInt64 = 0
        if flags == .getBitmap {
            guard argsz - 8 >= 40 else {
                throw VFIOError(.invalidArgument, rule: "T1-82", "\(self) DIRTY_PAGES GET_BITMAP: argsz \(argsz) < 48")
            }
            var bitmap = DirtyBitmapRequest(pageSize: user.u64(24), size: user.u64(32))
            data = user.u64(40)
            bitmap.dataAccessible = UserMemory.accessible(data, size: bitmap.size)
            query = DirtyBitmapQuery(iova: user.u64(8), size: user.u64(16), bitmap: bitmap)
        }
        UserMemory.storeBitmap(try dirtyPages(flags, query: query), to: data)
        return 0
    }
}
