import IOMMU
import IOMMUFD
import KernelRules
import SystemPackage
import UserMemory
import VFIO

/// The VFIO container ioctls `/dev/iommu` answers (`iommufd_vfio_ioctl`, IOMMUFD-700): with raw
/// `<linux/vfio.h>` structs, and iommufd's answers where they differ from type1's.
extension IOMMUFDContext {
    func vfioIoctl(request: UInt, argument: UInt) throws(VFIOError) -> Int32 {
        switch request {
        case VFIORequest.getAPIVersion:
            return vfioAPIVersion
        case VFIORequest.checkExtension:
            return try iommuCall { () throws(IOMMUFDError) in try compatCheckExtension(argument) }
        case VFIORequest.setIOMMU:
            try iommuCall { () throws(IOMMUFDError) in try compatSetIOMMU(argument) }
            return 0
        case VFIORequest.iommuGetInfo:
            try compatGetInfo(argument)
            return 0
        case VFIORequest.iommuMapDMA:
            try compatMap(argument)
            return 0
        case VFIORequest.iommuUnmapDMA:
            try compatUnmap(argument)
            return 0
        default:
            throw VFIOError(.inappropriateIOCTLForDevice, rule: .IOMMUFD_700, "\(self): iommufd's VFIO compatibility has no ioctl 0x\(String(request, radix: 16))")
        }
    }

    /// `iommufd_vfio_map_dma` (IOMMUFD-710): 32 bytes in; `EINVAL` for a short `argsz` or flags
    /// beyond READ|WRITE; nothing written back.
    private func compatMap(_ argument: UInt) throws(VFIOError) {
        let user = UserPointer(argument, rule: .IOMMUFD_710, object: self, ioctl: "MAP_DMA")
        let map = try user.copyIn(32)
        guard map.u32(0) >= 32, map.u32(4) & ~3 == 0 else {
            throw VFIOError(.invalidArgument, rule: .IOMMUFD_710, "\(self) MAP_DMA: argsz \(map.u32(0)) < 32 or flags 0x\(String(map.u32(4), radix: 16)) beyond READ|WRITE")
        }
        let access = IOAccess(rawValue: UInt8(map.u32(4)))  // VFIO_DMA_MAP_FLAG_READ = 1, WRITE = 2: IOAccess's bits
        try iommuCall { () throws(IOMMUFDError) in try compatMap(vaddr: map.u64(8), iova: map.u64(16), size: map.u64(24), access: access) }
    }

    /// `iommufd_vfio_unmap_dma` (IOMMUFD-712..716): 24 bytes in; `size` = bytes removed copied back
    /// even when the unmap failed part way; argument errors write nothing.
    private func compatUnmap(_ argument: UInt) throws(VFIOError) {
        let user = UserPointer(argument, rule: .IOMMUFD_712, object: self, ioctl: "UNMAP_DMA")
        var unmap = try user.copyIn(24)
        let flags = unmap.u32(4)
        guard unmap.u32(0) >= 24, flags & ~2 == 0 else {
            throw VFIOError(.invalidArgument, rule: .IOMMUFD_712, "\(self) UNMAP_DMA: argsz \(unmap.u32(0)) < 24 or flags 0x\(String(flags, radix: 16)) beyond UNMAP_ALL")
        }
        let (iova, size) = (unmap.u64(8), unmap.u64(16))
        let (unmapped, failure) = try iommuCall { () throws(IOMMUFDError) in try compatUnmap(iova: iova, size: size, all: flags & 2 != 0) }
        unmap.set(unmapped, at: 16)
        try user.citing(.IOMMUFD_712).copyOut(unmap)
        if let failure { throw VFIOError(failure) }
    }

    /// `iommufd_vfio_iommu_get_info` (IOMMUFD-720..723): 16 bytes in; DMA_AVAIL (`U32_MAX`) then
    /// IOVA_RANGE, each written only where it fits in `argsz`; `cap_offset` only when all fit;
    /// `argsz` always the total; `min(argsz, 24)` bytes of the header back.
    private func compatGetInfo(_ argument: UInt) throws(VFIOError) {
        let user = UserPointer(argument, rule: .IOMMUFD_720, object: self, ioctl: "GET_INFO")
        var info = try user.copyIn(16)
        let argsz = Int(info.u32(0))
        guard argsz >= 16 else { throw VFIOError(.invalidArgument, rule: .IOMMUFD_720, "\(self) GET_INFO: argsz \(argsz) < 16") }
        let (pageSizes, ranges) = try iommuCall { () throws(IOMMUFDError) in try compatInfo() }
        let headerSize = 24
        var available = UAPIStruct([])  // struct vfio_iommu_type1_info_dma_avail: header, u32 avail
        available.set(UInt16(3), at: 0)
        available.set(UInt16(1), at: 2)
        available.set(UInt32.max, at: 8)
        var iovaRange = UAPIStruct([])  // struct vfio_iommu_type1_info_cap_iova_range
        iovaRange.set(UInt16(1), at: 0)
        iovaRange.set(UInt16(1), at: 2)
        iovaRange.set(UInt32(ranges.count), at: 8)
        iovaRange.set(UInt32(0), at: 12)
        let capabilities = [available.prefix(12), iovaRange.prefix(16)]
        var offset = headerSize
        var previous: Int?
        for (index, capability) in capabilities.enumerated() {
            let room = argsz - offset
            let place = user.advanced(by: offset, rule: .IOMMUFD_723)
            if index == 1 {
                for (number, range) in ranges.enumerated() where room >= 16 + 16 * (number + 1) {
                    var entry = UAPIStruct([])
                    entry.set(range.start, at: 0)
                    entry.set(range.last, at: 8)
                    try place.advanced(by: 16 + 16 * number).copyOut(entry)
                }
            }
            let size = index == 0 ? 12 : 16 + 16 * ranges.count
            if room >= (index == 0 ? 12 : 16 + 16 * ranges.count) {
                try place.copyOut(index == 0 ? capability : capability.prefix(16))
            }
            if let previous, argsz >= offset {
                var next = UAPIStruct([])
                next.set(UInt32(offset), at: 0)
                try user.advanced(by: previous + 4, rule: .IOMMUFD_723).copyOut(next)
            }
            previous = offset
            offset += (size + 7) & ~7
        }
        info.set(UInt32(offset), at: 0)
        info.set(UInt32(3), at: 4)  // VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS
        info.set(pageSizes, at: 8)
        info.set(UInt32(argsz >= offset ? headerSize : 0), at: 16)
        info.set(UInt32(0), at: 20)
        try user.citing(.IOMMUFD_720).copyOut(info.prefix(min(argsz, headerSize)))
    }
}
