import Glibc

/// `<linux/iommufd.h>` and the VFIO device cdev structs of `<linux/vfio.h>` ≥ 6.6, laid out by
/// hand: the build machine's linux-libc-dev (6.1) has neither, so `Tests/CLinuxVFIO` cannot import
/// them. Offsets and sizes are the spec's (`iommufd.md` §2, §5, §6); `IOMMUFDConformanceLayoutTests`
/// compares them with the kernel's own header when `../shared/kernel` is there.
enum IOMMUFDStruct {
    /// A struct's fields: name, byte offset, width in bytes.
    struct Layout: Sendable {
        let name: String
        let size: Int
        let fields: [(name: String, offset: Int, width: Int)]

        func offset(_ field: String) -> Int { fields.first { $0.name == field }!.offset }
    }

    static let destroy = Layout(name: "iommu_destroy", size: 8, fields: [("size", 0, 4), ("id", 4, 4)])
    static let ioasAlloc = Layout(name: "iommu_ioas_alloc", size: 12, fields: [("size", 0, 4), ("flags", 4, 4), ("out_ioas_id", 8, 4)])
    static let iovaRanges = Layout(
        name: "iommu_ioas_iova_ranges", size: 32,
        fields: [("size", 0, 4), ("ioas_id", 4, 4), ("num_iovas", 8, 4), ("__reserved", 12, 4), ("allowed_iovas", 16, 8), ("out_iova_alignment", 24, 8)])
    static let allowIOVAs = Layout(
        name: "iommu_ioas_allow_iovas", size: 24,
        fields: [("size", 0, 4), ("ioas_id", 4, 4), ("num_iovas", 8, 4), ("__reserved", 12, 4), ("allowed_iovas", 16, 8)])
    static let map = Layout(
        name: "iommu_ioas_map", size: 40,
        fields: [("size", 0, 4), ("flags", 4, 4), ("ioas_id", 8, 4), ("__reserved", 12, 4), ("user_va", 16, 8), ("length", 24, 8), ("iova", 32, 8)])
    static let copy = Layout(
        name: "iommu_ioas_copy", size: 40,
        fields: [("size", 0, 4), ("flags", 4, 4), ("dst_ioas_id", 8, 4), ("src_ioas_id", 12, 4), ("length", 16, 8), ("dst_iova", 24, 8), ("src_iova", 32, 8)])
    static let unmap = Layout(name: "iommu_ioas_unmap", size: 24, fields: [("size", 0, 4), ("ioas_id", 4, 4), ("iova", 8, 8), ("length", 16, 8)])
    static let option = Layout(
        name: "iommu_option", size: 24,
        fields: [("size", 0, 4), ("option_id", 4, 4), ("op", 8, 2), ("__reserved", 10, 2), ("object_id", 12, 4), ("val64", 16, 8)])
    static let vfioIOAS = Layout(name: "iommu_vfio_ioas", size: 12, fields: [("size", 0, 4), ("ioas_id", 4, 4), ("op", 8, 2), ("__reserved", 10, 2)])
    static let hwptAlloc = Layout(
        name: "iommu_hwpt_alloc", size: 48,
        fields: [
            ("size", 0, 4), ("flags", 4, 4), ("dev_id", 8, 4), ("pt_id", 12, 4), ("out_hwpt_id", 16, 4), ("__reserved", 20, 4), ("data_type", 24, 4),
            ("data_len", 28, 4), ("data_uptr", 32, 8), ("fault_id", 40, 4), ("__reserved2", 44, 4),
        ])
    static let hwInfo = Layout(
        name: "iommu_hw_info", size: 40,
        fields: [
            ("size", 0, 4), ("flags", 4, 4), ("dev_id", 8, 4), ("data_len", 12, 4), ("data_uptr", 16, 8), ("out_data_type", 24, 4),
            ("out_max_pasid_log2", 28, 1), ("__reserved", 29, 3), ("out_capabilities", 32, 8),
        ])
    static let setDirtyTracking = Layout(
        name: "iommu_hwpt_set_dirty_tracking", size: 16, fields: [("size", 0, 4), ("flags", 4, 4), ("hwpt_id", 8, 4), ("__reserved", 12, 4)])
    static let invalidate = Layout(
        name: "iommu_hwpt_invalidate", size: 32,
        fields: [("size", 0, 4), ("hwpt_id", 4, 4), ("data_uptr", 8, 8), ("data_type", 16, 4), ("entry_len", 20, 4), ("entry_num", 24, 4), ("__reserved", 28, 4)])
    static let mapFile = Layout(
        name: "iommu_ioas_map_file", size: 40,
        fields: [("size", 0, 4), ("flags", 4, 4), ("ioas_id", 8, 4), ("fd", 12, 4), ("start", 16, 8), ("length", 24, 8), ("iova", 32, 8)])
    static let changeProcess = Layout(name: "iommu_ioas_change_process", size: 8, fields: [("size", 0, 4), ("__reserved", 4, 4)])
    static let bind = Layout(
        name: "vfio_device_bind_iommufd", size: 24, fields: [("argsz", 0, 4), ("flags", 4, 4), ("iommufd", 8, 4), ("out_devid", 12, 4), ("token_uuid_ptr", 16, 8)])
    static let attach = Layout(name: "vfio_device_attach_iommufd_pt", size: 16, fields: [("argsz", 0, 4), ("flags", 4, 4), ("pt_id", 8, 4), ("pasid", 12, 4)])
    static let detach = Layout(name: "vfio_device_detach_iommufd_pt", size: 12, fields: [("argsz", 0, 4), ("flags", 4, 4), ("pasid", 8, 4)])

    /// Every layout, for the header comparison.
    static let all = [
        destroy, ioasAlloc, iovaRanges, allowIOVAs, map, copy, unmap, option, vfioIOAS, hwptAlloc, hwInfo, setDirtyTracking, invalidate, mapFile,
        changeProcess, bind, attach, detach,
    ]

    /// `_IO(';', nr)`: iommufd's numbers carry no size or direction (IOMMUFD-101).
    static func io(_ nr: UInt) -> UInt { 0x3B00 | nr }
    /// `_IOWR(';', nr, size)`: a number with direction and size bits, which iommufd does not use.
    static func iowr(_ nr: UInt, _ size: UInt) -> UInt { (3 << 30) | (size << 16) | 0x3B00 | nr }

    static let destroyRequest = io(0x80)
    static let ioasAllocRequest = io(0x81)
    static let allowIOVAsRequest = io(0x82)
    static let copyRequest = io(0x83)
    static let iovaRangesRequest = io(0x84)
    static let mapRequest = io(0x85)
    static let unmapRequest = io(0x86)
    static let optionRequest = io(0x87)
    static let vfioIOASRequest = io(0x88)
    static let hwptAllocRequest = io(0x89)
    static let hwInfoRequest = io(0x8a)
    static let setDirtyTrackingRequest = io(0x8b)
    static let getDirtyBitmapRequest = io(0x8c)
    static let invalidateRequest = io(0x8d)
    static let faultQueueAllocRequest = io(0x8e)
    static let mapFileRequest = io(0x8f)
    static let viommuAllocRequest = io(0x90)
    static let vdeviceAllocRequest = io(0x91)
    static let changeProcessRequest = io(0x92)
    static let veventqAllocRequest = io(0x93)
    static let hwQueueAllocRequest = io(0x94)
    static let noIOMMUGetPARequest = io(0x95)
    /// `IOMMU_TEST_CMD` (`IOMMUFD_CMD_BASE + 32`, only with `CONFIG_IOMMUFD_TEST`).
    static let testRequest = io(0xa0)

    /// `VFIO_DEVICE_BIND_IOMMUFD`, `_ATTACH_IOMMUFD_PT`, `_DETACH_IOMMUFD_PT`: `_IO(';', 100 + 18…20)`.
    static let bindRequest = io(100 + 18)
    static let attachRequest = io(100 + 19)
    static let detachRequest = io(100 + 20)

    /// `IOMMU_IOAS_MAP_*` flags.
    static let fixed: UInt32 = 1, writeable: UInt32 = 2, readable: UInt32 = 4
}

/// The bytes of one struct as userspace fills it: little-endian fields at their offsets,
/// `length` bytes long (the declared `size` may say otherwise: the point of the plumbing rows).
struct StructBytes: Sendable, Equatable {
    var bytes: [UInt8]

    init(length: Int) { bytes = [UInt8](repeating: 0, count: length) }

    /// `layout` with `values` by field name, `size`/`argsz` = `size` (default: the layout's),
    /// `length` bytes (default: max of both), `tail` written after the layout's own bytes.
    init(_ layout: IOMMUFDStruct.Layout, size: Int? = nil, length: Int? = nil, tail: [UInt8] = [], _ values: [String: UInt64] = [:]) {
        let declared = size ?? layout.size
        self.init(length: length ?? max(declared, layout.size + tail.count))
        set(UInt64(declared), at: 0, width: 4)
        for (name, value) in values {
            guard let field = layout.fields.first(where: { $0.name == name }) else { preconditionFailure("\(layout.name) has no field \(name)") }
            set(value, at: field.offset, width: field.width)
        }
        for (index, byte) in tail.enumerated() where layout.size + index < bytes.count { bytes[layout.size + index] = byte }
    }

    mutating func set(_ value: UInt64, at offset: Int, width: Int) {
        for index in 0..<width where offset + index < bytes.count { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * index)) }
    }

    func get(_ offset: Int, _ width: Int) -> UInt64 {
        (0..<width).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64(offset + $1 < bytes.count ? bytes[offset + $1] : 0) }
    }
}
