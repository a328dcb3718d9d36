import PCIBus

/// A function's config space as hardware implements it: every byte with a write mask saying
/// which bits software may change (read-write), and a write-1-to-clear mask for status bits
/// (`PCI_STATUS` error bits, a capability's status). Everything else is read-only. Power-on
/// values are kept so a function-level reset can restore them.
public struct VirtualConfigSpace: Sendable, Equatable {
    public private(set) var bytes: [UInt8]
    public let powerOn: [UInt8]
    /// Bits software may write (read-write).
    public let writable: [UInt8]
    /// Bits a write of 1 clears (RW1C).
    public let writeOneToClear: [UInt8]

    public init(bytes: [UInt8], writable: [UInt8], writeOneToClear: [UInt8]) {
        precondition(bytes.count == writable.count && bytes.count == writeOneToClear.count, "config masks must cover config space")
        self.bytes = bytes
        self.powerOn = bytes
        self.writable = writable
        self.writeOneToClear = writeOneToClear
    }

    public var count: Int { bytes.count }

    /// Little-endian read of 1, 2 or 4 bytes; bytes past the end read as 0xff (no function there).
    public func read(_ offset: Int, width: Int) -> UInt32 {
        var value: UInt32 = 0
        for i in 0..<width {
            let byte = offset + i < bytes.count && offset + i >= 0 ? bytes[offset + i] : 0xff
            value |= UInt32(byte) << (8 * UInt32(i))
        }
        return value
    }

    /// Applies a write through the masks: read-write bits take the new value, RW1C bits written
    /// as 1 clear, read-only bits keep theirs. Out-of-range bytes are dropped.
    public mutating func write(_ offset: Int, width: Int, _ value: UInt32) {
        for i in 0..<width where offset + i >= 0 && offset + i < bytes.count {
            let index = offset + i
            let new = UInt8(truncatingIfNeeded: value >> (8 * UInt32(i)))
            var byte = (bytes[index] & ~writable[index]) | (new & writable[index])
            byte &= ~(new & writeOneToClear[index])
            bytes[index] = byte
        }
    }

    /// Sets bits the device itself changes (status, a capability's state), bypassing the masks.
    public mutating func deviceSet(_ offset: Int, width: Int, _ value: UInt32) {
        for i in 0..<width where offset + i < bytes.count {
            bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(i)))
        }
    }

    /// Back to power-on values (function-level reset).
    public mutating func reset() { bytes = powerOn }
}
