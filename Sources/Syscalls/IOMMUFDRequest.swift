/// iommufd's ioctl numbers (IOMMUFD-101): `_IO(';', 0x80 + n)`, no size or direction encoded —
/// the struct's first `__u32 size` carries it — and the VFIO device cdev's three (`VFIO_BASE`
/// + 18…20).
public enum IOMMUFDRequest {
    static func io(_ nr: UInt) -> UInt { (0x3B << 8) | nr }

    public static let destroy = io(0x80)
    public static let ioasAlloc = io(0x81)
    public static let ioasAllowIOVAs = io(0x82)
    public static let ioasCopy = io(0x83)
    public static let ioasIOVARanges = io(0x84)
    public static let ioasMap = io(0x85)
    public static let ioasUnmap = io(0x86)
    public static let option = io(0x87)
    public static let vfioIOAS = io(0x88)
    public static let hwptAlloc = io(0x89)
    public static let getHWInfo = io(0x8a)
    public static let ioasMapFile = io(0x8f)
    public static let viommuAlloc = io(0x90)
    public static let vdeviceAlloc = io(0x91)
    public static let hwptSetDirtyTracking = io(0x8b)
    public static let hwptGetDirtyBitmap = io(0x8c)
    /// `IOMMU_TEST_CMD` (`IOMMUFD_CMD_BASE + 32`, IOMMUFD-800): only in a kernel with
    /// `CONFIG_IOMMUFD_TEST`.
    public static let testCommand = io(0xa0)

    public static let deviceBindIOMMUFD = VFIORequest.io(18)
    public static let deviceAttachIOMMUFDPT = VFIORequest.io(19)
    public static let deviceDetachIOMMUFDPT = VFIORequest.io(20)

    /// `IOMMU_IOAS_MAP_*` flags.
    public static let mapFixedIOVA: UInt32 = 1 << 0
    public static let mapWriteable: UInt32 = 1 << 1
    public static let mapReadable: UInt32 = 1 << 2

    /// One entry of `iommufd_ioctl_ops` (IOMMUFD-103): its number, the smallest `size` it takes
    /// (`offsetofend` of its last mandatory field) and its struct's size in this kernel.
    struct Command {
        let name: String
        let minimum: Int
        let size: Int
    }

    /// The table by `nr - 0x80`, 7.3 without `CONFIG_IOMMUFD_TEST`: 0x80…0x95.
    static let commands: [Command] = [
        Command(name: "DESTROY", minimum: 8, size: 8),
        Command(name: "IOAS_ALLOC", minimum: 12, size: 12),
        Command(name: "IOAS_ALLOW_IOVAS", minimum: 24, size: 24),
        Command(name: "IOAS_COPY", minimum: 40, size: 40),
        Command(name: "IOAS_IOVA_RANGES", minimum: 32, size: 32),
        Command(name: "IOAS_MAP", minimum: 40, size: 40),
        Command(name: "IOAS_UNMAP", minimum: 24, size: 24),
        Command(name: "OPTION", minimum: 24, size: 24),
        Command(name: "VFIO_IOAS", minimum: 12, size: 12),
        Command(name: "HWPT_ALLOC", minimum: 24, size: 48),
        Command(name: "GET_HW_INFO", minimum: 32, size: 40),
        Command(name: "HWPT_SET_DIRTY_TRACKING", minimum: 16, size: 16),
        Command(name: "HWPT_GET_DIRTY_BITMAP", minimum: 48, size: 48),
        Command(name: "HWPT_INVALIDATE", minimum: 32, size: 32),
        Command(name: "FAULT_QUEUE_ALLOC", minimum: 16, size: 16),
        Command(name: "IOAS_MAP_FILE", minimum: 40, size: 40),
        Command(name: "VIOMMU_ALLOC", minimum: 24, size: 40),
        Command(name: "VDEVICE_ALLOC", minimum: 24, size: 24),
        Command(name: "IOAS_CHANGE_PROCESS", minimum: 8, size: 8),
        Command(name: "VEVENTQ_ALLOC", minimum: 28, size: 32),
        Command(name: "HW_QUEUE_ALLOC", minimum: 40, size: 40),
        Command(name: "IOAS_NOIOMMU_GET_PA", minimum: 40, size: 40),
    ]

    /// `IOMMU_TEST_CMD`'s entry (IOMMUFD-103 as corrected): `offsetofend(last)` 68, sizeof 72.
    static let test = Command(name: "TEST_CMD", minimum: 68, size: 72)

    /// The table by `nr - 0x80` in this kernel: without `CONFIG_IOMMUFD_TEST` 0x80…0x95; with it
    /// up to 0xa0, 0x96…0x9f being holes (nil: `ENOTTY` once the size is read, IOMMUFD-102 step 3).
    static func table(selftest: Bool) -> [Command?] {
        guard selftest else { return commands }
        return commands + [Command?](repeating: nil, count: 0x20 - commands.count) + [test]
    }
}
