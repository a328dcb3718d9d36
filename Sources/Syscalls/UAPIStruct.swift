import IOMMU
import KernelRules
import PCIBus
import VFIO

/// The kernel's own copy of a UAPI struct (the `struct vfio_… info;` on its stack): the bytes
/// `copy_from_user` brought in, read and written as little-endian fields at byte offsets, and
/// handed back to `copy_to_user`. Nothing here touches user memory.
struct UAPIStruct {
    private(set) var bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func u8(_ offset: Int) -> UInt8 { bytes[offset] }
    func u32(_ offset: Int) -> UInt32 { field(offset) }
    func u64(_ offset: Int) -> UInt64 { field(offset) }

    /// Stores `value` little-endian at `offset`, growing the struct with zeros to reach it (the
    /// kernel's zero-initialised tail past what it copied in).
    mutating func set<Value: FixedWidthInteger>(_ value: Value, at offset: Int) {
        let size = Value.bitWidth / 8
        if bytes.count < offset + size { bytes += [UInt8](repeating: 0, count: offset + size - bytes.count) }
        for index in 0..<size { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * index)) }
    }

    /// The first `count` bytes (`minsz`), zero-extended.
    func prefix(_ count: Int) -> UAPIStruct {
        UAPIStruct(Array(bytes.prefix(count)) + [UInt8](repeating: 0, count: max(0, count - bytes.count)))
    }

    private func field<Value: FixedWidthInteger>(_ offset: Int) -> Value {
        precondition(offset >= 0 && offset + Value.bitWidth / 8 <= bytes.count, "UAPI field at \(offset) past the struct's \(bytes.count) bytes")
        return Value(littleEndian: bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: Value.self) })
    }
}
