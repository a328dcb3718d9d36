/// A fuzzer's input read front to back as little-endian fields. Past the end every read yields
/// zeros (and `bytes` an empty or short slice), so any prefix of a valid input is itself valid
/// and decoding never fails: structure comes from the reads, not from the bytes.
struct FuzzInput {
    private let data: UnsafeRawBufferPointer
    private var position = 0

    init(_ data: UnsafeRawBufferPointer) { self.data = data }

    /// True once every byte has been read.
    var isEmpty: Bool { position >= data.count }

    /// Bytes not read yet.
    var remaining: Int { max(0, data.count - position) }

    mutating func u8() -> UInt8 {
        guard position < data.count else { return 0 }
        defer { position += 1 }
        return data[position]
    }

    mutating func u16() -> UInt16 { UInt16(u8()) | UInt16(u8()) << 8 }
    mutating func u32() -> UInt32 { UInt32(u16()) | UInt32(u16()) << 16 }
    mutating func u64() -> UInt64 { UInt64(u32()) | UInt64(u32()) << 32 }

    mutating func bool() -> Bool { u8() & 1 != 0 }

    /// One of `choices`, picked by the next byte.
    mutating func pick<T>(_ choices: [T]) -> T { choices[Int(u8()) % choices.count] }

    /// Up to `count` bytes, fewer at the end of the input.
    mutating func bytes(_ count: Int) -> UnsafeRawBufferPointer {
        let taken = min(max(0, count), remaining)
        defer { position += taken }
        return UnsafeRawBufferPointer(rebasing: data[position..<position + taken])
    }
}
