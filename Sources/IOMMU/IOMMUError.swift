import PCIBus
import SystemPackage

/// The IOMMU layer's error: the errno the kernel returns for the same call, what failed, on which
/// object, and the rule of `kernel-semantics.md` that decides it. A failed call changes nothing.
public struct IOMMUError: Error, Sendable, CustomStringConvertible, Equatable {
    public let errno: Errno
    /// The spec rule that produces this errno (`OWN-04`, `DOM-04`, ...).
    public let rule: String
    public let message: String

    public init(_ errno: Errno, rule: String, _ message: String) {
        self.errno = errno
        self.rule = rule
        self.message = message
    }

    public var description: String { "\(errno.symbolicName): \(message) (\(rule))" }
}
