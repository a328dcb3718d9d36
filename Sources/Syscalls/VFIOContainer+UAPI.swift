import IOMMU
import KernelRules
import PCIBus
import SystemPackage
import VFIO

/// The container fd's ioctls with raw `<linux/vfio.h>` structs (spec §3.1, §4.6): same return
/// values, same errnos, same bytes written back.
extension VFIOContainer: IOCTLTarget {
    public func ioctlThrowing(request: UInt, argument: UInt) throws(VFIOError) -> Int32 {
        switch request {
        case VFIORequest.getAPIVersion:
            return apiVersion
        case VFIORequest.checkExtension:
            return checkExtension(argument: argument)
        case VFIORequest.setIOMMU:
            try setIOMMU(argument: argument)
            return 0
        default:
            guard let type = iommuType else {
                throw VFIOError(.invalidArgument, rule: .VG_23, "\(self) ioctl 0x\(String(request, radix: 16)): no IOMMU is set (VFIO_SET_IOMMU first)")
            }
            switch request {
            case VFIORequest.iommuGetInfo: return try uapiGetInfo(argument)
            case VFIORequest.iommuMapDMA: return try uapiMap(argument)
            case VFIORequest.iommuUnmapDMA: return try uapiUnmap(argument)
            case VFIORequest.iommuDirtyPages: return try uapiDirtyPages(argument, v2: type == .type1v2)
            default:
                throw VFIOError(.inappropriateIOCTLForDevice, rule: .T1_04, "\(self): type1 has no ioctl 0x\(String(request, radix: 16))")
            }
        }
    }

    /// T1-70..72: `struct vfio_iommu_type1_info`: its first 16 bytes in; the capability chain,
    /// when `argsz` has room for it, then the header out, as the kernel copies them.
    private func uapiGetInfo(_ argument: UInt) throws(VFIOError) -> Int32 {
        let user = UserPointer(argument, rule: .T1_70, object: self, ioctl: "GET_INFO")
        let argsz = try user.copyInHeader(minsz: 16).u32(0)
        let info = try info().encoded(argsz: argsz)
        let header = min(info.count, Type1Info.headerSize)
        try user.advanced(by: header, rule: .T1_72).copyOut(Array(info[header...]))
        try user.citing(.T1_72).copyOut(Array(info[..<header]))
        return 0
    }

    /// T1-10, T1-11: `struct vfio_iommu_type1_dma_map` (32 bytes); nothing is written back (T1-23).
    private func uapiMap(_ argument: UInt) throws(VFIOError) -> Int32 {
        let map = try UserPointer(argument, rule: .T1_10, object: self, ioctl: "MAP_DMA").copyInHeader(minsz: 32, argszRule: .T1_11)
        try self.map(DMAMapRequest(flags: DMAMapFlags(rawValue: map.u32(4)), vaddr: map.u64(8), iova: map.u64(16), size: map.u64(24)))
        return 0
    }

    /// T1-30..37: `struct vfio_iommu_type1_dma_unmap` (24 bytes), then — once the flags are valid
    /// and `argsz` covers it — its `struct vfio_bitmap`. Each removed mapping's dirty words go to
    /// `bitmap.data` before the mapping does (T1-84). The 24 bytes go back, with `size`, only on
    /// success (T1-37) — after the unmap, so when that copy faults the mappings are gone, as in
    /// the kernel.
    private func uapiUnmap(_ argument: UInt) throws(VFIOError) -> Int32 {
        let user = UserPointer(argument, rule: .T1_30, object: self, ioctl: "UNMAP_DMA")
        var unmap = try user.copyInHeader(minsz: 24)
        let argsz = unmap.u32(0)
        var request = DMAUnmapRequest(flags: DMAUnmapFlags(rawValue: unmap.u32(4)), iova: unmap.u64(8), size: unmap.u64(16))
        try request.flags.validate("\(self) UNMAP_DMA")
        var data: UserPointer?
        if request.flags.contains(.getDirtyBitmap), argsz >= 48 {
            (request.bitmap, data) = bitmap(try user.advanced(by: 24, rule: .T1_31).copyIn(24), at: 0, ioctl: "UNMAP_DMA", rule: .T1_84)
        }
        let result = try self.unmap(request) { (words) throws(VFIOError) in try Self.updateUserBitmap(data, words) }
        unmap.set(result.size, at: 16)
        try user.citing(.T1_37).copyOut(unmap)
        return 0
    }

    /// T1-80..83: `struct vfio_iommu_type1_dirty_bitmap` (8 bytes), and for GET_BITMAP its
    /// `struct vfio_iommu_type1_dirty_bitmap_get` (40 bytes); each mapping's words go to
    /// `bitmap.data` as `vfio_iova_dirty_bitmap` writes them (`updateUserBitmap`).
    private func uapiDirtyPages(_ argument: UInt, v2: Bool) throws(VFIOError) -> Int32 {
        guard v2 else { throw VFIOError(.permissionDenied, rule: .T1_80, "\(self) DIRTY_PAGES: dirty tracking needs a type1v2 container") }
        let user = UserPointer(argument, rule: .T1_80, object: self, ioctl: "DIRTY_PAGES")
        let dirty = try user.copyInHeader(minsz: 8)
        let argsz = dirty.u32(0)
        let flags = DirtyPagesFlags(rawValue: dirty.u32(4))
        var query: DirtyBitmapQuery?
        var data: UserPointer?
        if flags == .getBitmap {
            guard argsz - 8 >= 40 else {
                throw VFIOError(.invalidArgument, rule: .T1_82, "\(self) DIRTY_PAGES GET_BITMAP: argsz \(argsz) < 48")
            }
            let get = try user.advanced(by: 8, rule: .T1_82).copyIn(40)
            let (bitmap, bitmapData) = self.bitmap(get, at: 16, ioctl: "DIRTY_PAGES", rule: .T1_83)
            (query, data) = (DirtyBitmapQuery(iova: get.u64(0), size: get.u64(8), bitmap: bitmap), bitmapData)
        }
        _ = try dirtyPages(flags, query: query) { (words) throws(VFIOError) in try Self.updateUserBitmap(data, words) }
        return 0
    }

    /// `update_user_bitmap` (T1-82, T1-84): one mapping's words written at their offset in the
    /// user's bitmap — after reading the user's first word and OR-ing it in when the mapping's
    /// bits start inside it — and nothing else, so words outside every mapping keep the user's bits.
    private static func updateUserBitmap(_ data: UserPointer?, _ run: MappingDirtyWords) throws(VFIOError) {
        guard let data, !run.words.isEmpty else { return }
        let at = data.advanced(by: 8 * run.offset)
        let userWord = run.mergesFirstWord ? try at.copyIn(8).u64(0) : 0
        try at.copyOut(words: run.merged(withUserWord: userWord)[...])
    }

    /// The `struct vfio_bitmap { u64 pgsize, u64 size, u64 __user *data }` at `offset` of a copied-in
    /// struct, and `data` as a pointer whose faults cite `rule`.
    private func bitmap(_ copy: UAPIStruct, at offset: Int, ioctl: String, rule: RuleID) -> (DirtyBitmapRequest, UserPointer) {
        var request = DirtyBitmapRequest(pageSize: copy.u64(offset), size: copy.u64(offset + 8))
        let data = copy.u64(offset + 16)
        request.dataAccessible = UserPointer.accessOK(data, size: request.size)
        return (request, UserPointer(data, rule: rule, object: self, ioctl: "\(ioctl) dirty bitmap"))
    }
}
