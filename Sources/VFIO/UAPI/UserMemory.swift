import Glibc
import SystemPackage

/// An ioctl's `unsigned long arg` used as a user pointer: `copy_from_user` / `copy_to_user` of
/// little-endian UAPI fields at byte offsets. A null pointer, or one outside the user address
/// space, faults (`EFAULT`), as the kernel's copy would.
struct UserMemory {
    let base: UnsafeMutableRawPointer

    /// `TASK_SIZE_MAX`: user addresses lie below it (x86-64 with 4-level paging: 2^47 − 4096;
    /// arm64 with 48-bit virtual addresses: 2^48).
    #if arch(arm64)
        static let addressLimit: UInt64 = 1 << 48
    #else
        static let addressLimit: UInt64 = (1 << 47) - 4096
    #endif

    init(_ argument: UInt, rule: String, what: String) throws(VFIOError) {
        guard UInt64(argument) < Self.addressLimit, let base = UnsafeMutableRawPointer(bitPattern: argument) else {
            throw VFIOError(
                .badAddress, rule: rule, "\(what): copy_from_user from 0x\(String(argument, radix: 16)), which is not a user address")
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

    /// `access_ok(data, size)`: a non-null range that ends within the user address space (a
    /// range that wraps does not).
    static func accessible(_ data: UInt64, size: UInt64) -> Bool { data != 0 && data < addressLimit && size <= addressLimit - data }
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
