import IOMMU
import PCIBus
import SystemPackage

/// The VFIO layer's error: the errno the kernel's ioctl returns for the same call, the rule of
/// `kernel-semantics.md` §3–§4 that decides it (`T1-17`, `VG-10`), and a message naming the
/// container, group or range. A failed call changes nothing.
public struct VFIOError: Error, Sendable, CustomStringConvertible, Equatable {
    public let errno: Errno
    public let rule: String
    public let message: String

    public init(_ errno: Errno, rule: String, _ message: String) {
        self.errno = errno
        self.rule = rule
        self.message = message
    }

    /// An IOMMU-layer failure surfacing through VFIO keeps its errno and rule.
    public init(_ error: IOMMUError) {
        self.init(error.errno, rule: error.rule, error.message)
    }

    public var description: String { "\(errno.symbolicName): \(message) (\(rule))" }
}

/// `[0x1000, 0x1fff]`, as the messages write ranges (inclusive).
func rangeText(_ first: UInt64, _ last: UInt64) -> String {
    "[0x\(String(first, radix: 16)), 0x\(String(last, radix: 16))]"
}

/// Runs an IOMMU-layer call, surfacing its failure as a `VFIOError` with the same errno and rule.
func iommuCall<Result>(_ body: () throws(IOMMUError) -> Result) throws(VFIOError) -> Result {
    do {
        return try body()
    } catch {
        throw VFIOError(error)
    }
}
