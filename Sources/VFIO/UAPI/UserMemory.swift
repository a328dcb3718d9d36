import Glibc
import SystemPackage

/// An ioctl's `unsigned long arg` used as a user pointer: `copy_from_user` / `copy_to_user` of
/// little-endian UAPI fields at byte offsets. A null pointer faults (`EFAULT`), as an unmapped
/// one would in the kernel.
struct UserMemory {
    let base: UnsafeMutableRawPointer

    init(_ argument: UInt, rule: String, what: String) throws(VFIOError) {
        guard let base = UnsafeMutableRawPointer(bitPattern: argument) else {
            throw VFIOError(.badAddress, rule: rule, "\(what): copy_from_user from a null pointer")
        }
        self.base = base
    }

    func u32(_ offset: Int) -> UInt32 { UInt32(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
    func u64(_ offset: Int) -> UInt64 { UInt64(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) }
    func store(_ value: UInt32, at offset: Int) { base.storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt32.self) }
    func store(_ value: UInt64, at offset: Int) { base.storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt64.self) }
    func store(_ bytes: [UInt8], at offset: Int) { bytes.withUnsafeBytes { (base + offset).copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }

    /// `copy_to_user` of a dirty bitmap's words to the user's `bitmap.data`.
    static func storeBitmap(_ words: [UInt64], to data: UInt64) {
        guard !words.isEmpty, let pointer = UnsafeMutableRawPointer(bitPattern: UInt(data)) else { return }
        for (index, word) in words.enumerated() { pointer.storeBytes(of: word.littleEndian, toByteOffset: index * 8, as: UInt64.self) }
    }

    /// `access_ok(data, size)`: a non-null user range that does not wrap.
    static func accessible(_ data: UInt64, size: UInt64) -> Bool { data != 0 && data <= .max - size }
}

/// The ioctl calling convention: a non-negative result, or -1 with `errno` set.
func ioctlReturn(_ result: Result<Int32, VFIOError>) -> Int32 {
    switch result {
    case .success(let value): return value
    case .failure(let error):
        Glibc.errno = error.errno.rawValue
        return -1
    }
}
