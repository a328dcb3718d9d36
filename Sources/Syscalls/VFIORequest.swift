/// The ioctl request numbers: `_IO(VFIO_TYPE, VFIO_BASE + n)` with `VFIO_TYPE` `';'` and
/// `VFIO_BASE` 100; no size is encoded, `argsz` carries it (spec §3.1).
public enum VFIORequest {
    package static func io(_ n: UInt) -> UInt { (0x3B << 8) | (100 + n) }

    public static let getAPIVersion = io(0)
    public static let checkExtension = io(1)
    public static let setIOMMU = io(2)
    public static let groupGetStatus = io(3)
    public static let groupSetContainer = io(4)
    public static let groupUnsetContainer = io(5)
    public static let groupGetDeviceFD = io(6)
    public static let deviceGetInfo = io(7)
    public static let deviceGetRegionInfo = io(8)
    public static let deviceGetIRQInfo = io(9)
    public static let deviceSetIRQs = io(10)
    public static let deviceReset = io(11)
    /// Same numbers as the container's GET_INFO and MAP_DMA: the fd's kind tells them apart.
    public static let deviceGetPCIHotResetInfo = io(12)
    public static let devicePCIHotReset = io(13)
    public static let deviceIoeventfd = io(16)
    public static let deviceFeature = io(17)
    public static let iommuGetInfo = io(12)
    public static let iommuMapDMA = io(13)
    public static let iommuUnmapDMA = io(14)
    public static let iommuDirtyPages = io(17)
}
