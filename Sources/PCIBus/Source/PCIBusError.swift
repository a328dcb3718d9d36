import SystemPackage

/// The bus layer's error: a Linux errno, what went wrong and where (file and line, or device and
/// capability). Every failure of enumeration and dump loading surfaces as one of these.
public struct PCIBusError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Kind: Sendable, Equatable {
        case fileNotFound
        case fileUnreadable
        /// A FIFO, device, directory or socket given where a file was expected.
        case notRegularFile
        case lineTooLong
        case unterminatedLine
        case malformedHexRow
        /// libpci's dump reader refused a file for a reason the line scanner did not pinpoint.
        case dumpRejected
        case configSpaceTooLarge
        case truncatedFunction
        case duplicateAddress
        case noFunctions
        case invalidManifest
        case capabilityLoop
        case hostUnreadable
        case libpci
        /// A generated topology was asked for a count it cannot have (`SyntheticTopology`).
        case invalidCount
    }

    public let kind: Kind
    public let errno: Errno
    public let message: String

    public init(_ kind: Kind, _ errno: Errno, _ message: String) {
        self.kind = kind
        self.errno = errno
        self.message = message
    }

    public var description: String { "\(errno.symbolicName): \(message)" }
}

extension Errno {
    /// The `<errno.h>` macro name (`EINVAL`), as the kernel rules of the spec name errnos.
    public var symbolicName: String {
        switch self {
        case .noSuchFileOrDirectory: "ENOENT"
        case .isDirectory: "EISDIR"
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
