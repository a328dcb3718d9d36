import PCIBus
import SystemPackage

/// The device-model layer's error: an errno, the rule or object that decided it, and a message
/// naming the machine, address or model.
public struct DeviceModelError: Error, Sendable, CustomStringConvertible, Equatable {
    public let errno: Errno
    public let rule: String
    public let message: String

    public init(_ errno: Errno, rule: String, _ message: String) {
        self.errno = errno
        self.rule = rule
        self.message = message
    }

    public var description: String { "\(errno.symbolicName): \(message) (\(rule))" }
}
