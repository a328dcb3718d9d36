import IOMMU
import KernelRules
import PCIBus
import VFIO

/// The kernel's own copy of a UAPI struct (the `struct vfio_… info;` on its stack): the bytes
/// `copy_from_user` brought in, read and written as little-endian fields at byte offsets, and
/// handed back to `copy_to_user`. Nothing here touches user memory.
///
/// Like the kernel's, the copy of a fixed-size struct lives on the stack: up to
/// `inlineCapacity` bytes (every MAP/UNMAP/region/IRQ header) are held inline, without a heap
/// allocation per ioctl; a longer one (a capability chain, a variable array) goes to the heap.
struct UAPIStruct {
    static let inlineCapacity = 64
    /// Eight words: the inline storage.
    private typealias InlineBytes = (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)

    private var inline: InlineBytes = (0, 0, 0, 0, 0, 0, 0, 0)
    /// The bytes when there are more than `inlineCapacity`; empty otherwise.
    private var heap: [UInt8] = []
    /// The struct's length in bytes.
    private(set) var count: Int

    init(_ bytes: [UInt8]) {
        count = bytes.count
        if count > Self.inlineCapacity {
            heap = bytes
        } else {
            Swift.withUnsafeMutableBytes(of: &inline) { $0.copyBytes(from: bytes) }
        }
    }

    /// `count` zero bytes: the kernel's struct before `copy_from_user` fills it.
    init(zeros count: Int) {
        self.count = count
        if count > Self.inlineCapacity { heap = [UInt8](repeating: 0, count: count) }
    }

    /// Writes the struct's bytes in place with `body` (a `copy_from_user` into the kernel's
    /// copy); `body`'s answer (non-zero: it faulted, and the copy is to be dropped).
    mutating func fill(_ body: (UnsafeMutableRawBufferPointer) -> Int32) -> Int32 {
        var status: Int32 = 0
        withUnsafeMutableBytes { status = body($0) }
        return status
    }

    /// The bytes, as an array (allocates for an inline struct).
    var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// The struct's bytes, in place.
    func withUnsafeBytes<Result>(_ body: (UnsafeRawBufferPointer) -> Result) -> Result {
        if count > Self.inlineCapacity { return heap.withUnsafeBytes(body) }
        return Swift.withUnsafeBytes(of: inline) { body(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
    }

    func u8(_ offset: Int) -> UInt8 { field(offset) }
    func u32(_ offset: Int) -> UInt32 { field(offset) }
    func u64(_ offset: Int) -> UInt64 { field(offset) }

    /// Stores `value` little-endian at `offset`, growing the struct with zeros to reach it (the
    /// kernel's zero-initialised tail past what it copied in).
    mutating func set<Value: FixedWidthInteger>(_ value: Value, at offset: Int) {
        let size = Value.bitWidth / 8
        grow(to: offset + size)
        withUnsafeMutableBytes { $0.storeBytes(of: value.littleEndian, toByteOffset: offset, as: Value.self) }
    }

    /// The first `count` bytes (`minsz`), zero-extended.
    func prefix(_ count: Int) -> UAPIStruct {
        var copy = self
        if count < copy.count { copy.shrink(to: count) } else { copy.grow(to: count) }
        return copy
    }

    private func field<Value: FixedWidthInteger>(_ offset: Int) -> Value {
        let size = Value.bitWidth / 8
        precondition(offset >= 0 && offset + size <= count, "UAPI field at \(offset) past the struct's \(count) bytes")
        if count > Self.inlineCapacity {
            return heap.withUnsafeBytes { Value(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: Value.self)) }
        }
        // From the inline words in place (no copy of the storage): the word holding the field's
        // first byte, and the next one when the field crosses into it.
        let shift = (offset & 7) * 8
        var raw = inlineWord(offset >> 3) >> UInt64(shift)
        if shift != 0, (offset & 7) + size > 8 { raw |= inlineWord((offset >> 3) + 1) << UInt64(64 - shift) }
        return Value(truncatingIfNeeded: raw)
    }

    /// Inline word `index` as a little-endian number.
    private func inlineWord(_ index: Int) -> UInt64 {
        switch index {
        case 0: UInt64(littleEndian: inline.0)
        case 1: UInt64(littleEndian: inline.1)
        case 2: UInt64(littleEndian: inline.2)
        case 3: UInt64(littleEndian: inline.3)
        case 4: UInt64(littleEndian: inline.4)
        case 5: UInt64(littleEndian: inline.5)
        case 6: UInt64(littleEndian: inline.6)
        default: UInt64(littleEndian: inline.7)
        }
    }

    private mutating func withUnsafeMutableBytes(_ body: (UnsafeMutableRawBufferPointer) -> Void) {
        if count > Self.inlineCapacity { heap.withUnsafeMutableBytes(body) } else { Swift.withUnsafeMutableBytes(of: &inline) { body(UnsafeMutableRawBufferPointer(rebasing: $0[..<count])) } }
    }

    /// Zero bytes up to `newCount`, moving to the heap past `inlineCapacity`.
    private mutating func grow(to newCount: Int) {
        guard newCount > count else { return }
        if newCount > Self.inlineCapacity {
            if count <= Self.inlineCapacity { heap = bytes }
            heap += repeatElement(0, count: newCount - count)
        }
        count = newCount
    }

    /// The first `newCount` bytes; the inline bytes past them zeroed, as if never written.
    private mutating func shrink(to newCount: Int) {
        if count > Self.inlineCapacity {
            heap.removeLast(count - newCount)
            if newCount <= Self.inlineCapacity {
                let kept = heap
                heap = []
                inline = (0, 0, 0, 0, 0, 0, 0, 0)
                Swift.withUnsafeMutableBytes(of: &inline) { $0.copyBytes(from: kept) }
            }
        } else {
            Swift.withUnsafeMutableBytes(of: &inline) { raw in
                for index in newCount..<count { raw[index] = 0 }
            }
        }
        count = newCount
    }
}
