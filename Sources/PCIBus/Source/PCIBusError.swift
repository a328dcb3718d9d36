import KernelRules
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
