import SystemPackage

/// Which layer an error comes from: each layer declares one (`VFIOLayer`, `IOMMULayer`, …) and
/// names its error `SimulationError<ItsLayer>`.
public protocol ErrorLayer: Sendable {}

/// The one shape of every layer's error: the errno the kernel returns for the same call, the spec
/// rule that decides it, a message naming the object, and the lower-layer error it wraps. A failed
/// call changes nothing.
public struct SimulationError<Layer: ErrorLayer>: Error, Sendable, CustomStringConvertible {
    public let errno: Errno
    public let rule: RuleID
    public let message: String
    /// The lower layer's error this one carries up unchanged (a `PCIBusError`, an `IOMMUError`, …).
    public let cause: (any Error & Sendable)?

    public init(_ errno: Errno, rule: RuleID, _ message: String, cause: (any Error & Sendable)? = nil) {
        self.errno = errno
        self.rule = rule
        self.message = message
        self.cause = cause
    }

    /// A lower layer's error surfacing here: same errno, rule and message, the original kept as `cause`.
    public init<Lower: ErrorLayer>(_ lower: SimulationError<Lower>) {
        self.init(lower.errno, rule: lower.rule, lower.message, cause: lower)
    }

    /// The first error of type `E` down the chain of causes (this one included).
    public func cause<E: Error>(as type: E.Type) -> E? {
        var current: (any Error)? = self
        while let error = current {
            if let match = error as? E { return match }
            current = (error as? any CausedError)?.underlyingError
        }
        return nil
    }

    public var description: String {
        "\(errno.symbolicName): \(message)" + (rule == .none ? "" : " (\(rule))")
    }
}

/// An error that may wrap another (what `cause(as:)` walks).
protocol CausedError { var underlyingError: (any Error)? { get } }
extension SimulationError: CausedError { var underlyingError: (any Error)? { cause } }

extension SimulationError: Equatable {
    /// Errors are equal when they say the same thing: errno, rule, message and an equal cause.
    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.errno == rhs.errno && lhs.rule == rhs.rule && lhs.message == rhs.message
            && lhs.cause.map { String(reflecting: $0) } == rhs.cause.map { String(reflecting: $0) }
    }
}
