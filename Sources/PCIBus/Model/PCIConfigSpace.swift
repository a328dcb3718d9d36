/// The raw configuration space of one function, as far as the source could read it.
///
/// Reads beyond what was captured return all-ones, as a read of absent config space does on real
/// hardware and as libpci returns for bytes a dump does not contain.
public struct PCIConfigSpace: Sendable, Equatable {
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) { self.bytes = bytes }

    public var count: Int { bytes.count }

    /// True when the extended (PCIe) space beyond 256 bytes was captured.
    public var hasExtendedSpace: Bool { bytes.count > PCIRegister.legacySpaceSize }

    public func u8(_ offset: Int) -> UInt8 {
        offset >= 0 && offset < bytes.count ? bytes[offset] : 0xff
    }

    public func u16(_ offset: Int) -> UInt16 {
        UInt16(u8(offset)) | UInt16(u8(offset + 1)) << 8
    }

    public func u32(_ offset: Int) -> UInt32 {
        UInt32(u16(offset)) | UInt32(u16(offset + 2)) << 16
    }
}
