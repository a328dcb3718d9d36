import SystemPackage

extension Errno {
    /// The `<errno.h>` macro name (`EINVAL`), as the kernel rules of the spec name errnos.
    public var symbolicName: String {
        switch self {
        case .noSuchFileOrDirectory: "ENOENT"
        case .isDirectory: "EISDIR"
        case .notDirectory: "ENOTDIR"
        case .permissionDenied: "EACCES"
        case .notPermitted: "EPERM"
        case .invalidArgument: "EINVAL"
        case .fileExists: "EEXIST"
        case .tooManySymbolicLinkLevels: "ELOOP"
        case .ioError: "EIO"
        case .noData: "ENODATA"
        case .fileTooLarge: "EFBIG"
        case .resourceBusy: "EBUSY"
        case .operationNotSupportedByDevice: "ENODEV"
        case .badFileDescriptor: "EBADF"
        case .noSpace: "ENOSPC"
        case .noMemory: "ENOMEM"
        case .badAddress: "EFAULT"
        case .overflow: "EOVERFLOW"
        case .notSupported: "EOPNOTSUPP"
        case .outOfRange: "ERANGE"
        case .resourceTemporarilyUnavailable: "EAGAIN"
        case .inappropriateIOCTLForDevice: "ENOTTY"
        case .noSuchProcess: "ESRCH"
        case .noSuchAddressOrDevice: "ENXIO"
        case .probeDefer: "EPROBE_DEFER"
        case .fileDescriptorInBadState: "EBADFD"
        default: "errno \(rawValue)"
        }
    }
}

extension Errno {
    /// `EPROBE_DEFER` (517): kernel-internal, returned by `iommu_device_use_default_domain` for a
    /// group without a default domain (OWN-01). Userspace never sees it; the model does.
    public static var probeDefer: Errno { Errno(rawValue: 517) }

    /// `EBADFD` (77): an open fd of the wrong kind (VG-12).
    public static var fileDescriptorInBadState: Errno { Errno(rawValue: 77) }
}
