import UserMemory
import CMMIOTrap
import IOMMU
import KernelRules
import PCIBus
import SystemPackage
import VFIO

/// A `void __user *` an ioctl was handed — its `unsigned long arg`, or a pointer inside its struct —
/// reached only as the kernel reaches user memory: `access_ok`, then `copy_from_user` /
/// `copy_to_user` that come back with `EFAULT` where a signal would have been
/// (`vfiokit_user_copy`). A range that is not a user range, or is unmapped, `PROT_NONE`, or read-only for a
/// write, is `EFAULT` (a partial copy too) — never a `SIGSEGV`. Nothing dereferences one.
struct UserPointer {
    let address: UInt64
    /// The rule a fault cites.
    let rule: RuleID
    /// The container, group or device copying, and its ioctl: a fault's message names them.
    /// Unretained: a pointer lives only inside the ioctl of the object that made it, which holds
    /// the object (a retain and release per copy of the pointer were a measurable part of the
    /// system-call path).
    unowned(unsafe) let object: any AnyObject & CustomStringConvertible
    let ioctl: String

    init(_ address: UInt64, rule: RuleID, object: any AnyObject & CustomStringConvertible, ioctl: String) {
        self.address = address
        self.rule = rule
        self.object = object
        self.ioctl = ioctl
    }

    init(_ argument: UInt, rule: RuleID, object: any AnyObject & CustomStringConvertible, ioctl: String) {
        self.init(UInt64(argument), rule: rule, object: object, ioctl: ioctl)
    }

    /// "VFIO container 1 MAP_DMA", built only for a failure's message.
    var what: String { "\(object) \(ioctl)" }

    /// `arg + offset` (wrapping, as C's pointer arithmetic; `access_ok` then refuses it), its
    /// faults citing `rule`.
    func advanced(by offset: Int, rule: RuleID? = nil) -> UserPointer {
        UserPointer(address &+ UInt64(offset), rule: rule ?? self.rule, object: object, ioctl: ioctl)
    }

    /// The same pointer, its faults citing `rule`.
    func citing(_ rule: RuleID) -> UserPointer { advanced(by: 0, rule: rule) }

    /// `TASK_SIZE_MAX`: user addresses lie below it (x86-64 with 4-level paging: 2^47 − 4096;
    /// arm64 with 48-bit virtual addresses: 2^48).
    #if arch(arm64)
        static let addressLimit: UInt64 = 1 << 48
    #else
        static let addressLimit: UInt64 = (1 << 47) - 4096
    #endif

    /// `access_ok(address, size)`: a range that ends within the user address space (a range that
    /// wraps does not). Like the kernel's, it passes NULL: the copy then faults (`EFAULT`).
    static func accessOK(_ address: UInt64, size: UInt64) -> Bool {
        size <= addressLimit && address <= addressLimit - size
    }

    /// `copy_from_user(&local, ptr, count)`: all `count` bytes, or `EFAULT`.
    func copyIn(_ count: Int) throws(VFIOError) -> UAPIStruct {
        var copy = UAPIStruct(zeros: count)
        // Every byte is copied, or the copy faults and nothing is kept (the copy is dropped).
        try check("copy_from_user", count) { copy.fill { vfiokit_user_copy($0.baseAddress, UnsafeRawPointer(bitPattern: UInt(address)), count) } }
        return copy
    }

    /// Every VFIO ioctl's opening: `minsz` bytes copied in (`EFAULT`), then `argsz < minsz`
    /// refused with `EINVAL` citing `argszRule` (default: the pointer's rule).
    func copyInHeader(minsz: Int, argszRule: RuleID? = nil) throws(VFIOError) -> UAPIStruct {
        let header = try copyIn(minsz)
        guard header.u32(0) >= minsz else {
            throw VFIOError(.invalidArgument, rule: argszRule ?? rule, "\(what): argsz \(header.u32(0)) < \(minsz)")
        }
        return header
    }

    /// `copy_to_user(ptr, &local, count)` of every byte, or `EFAULT`.
    func copyOut(_ bytes: [UInt8]) throws(VFIOError) {
        try check("copy_to_user", bytes.count) { bytes.withUnsafeBytes { vfiokit_user_copy(UnsafeMutableRawPointer(bitPattern: UInt(address)), $0.baseAddress, $0.count) } }
    }

    func copyOut(_ value: UAPIStruct) throws(VFIOError) {
        try check("copy_to_user", value.count) { value.withUnsafeBytes { vfiokit_user_copy(UnsafeMutableRawPointer(bitPattern: UInt(address)), $0.baseAddress, $0.count) } }
    }

    /// `copy_to_user(ptr, bytes, count)` of a kernel buffer.
    func copyOut(raw bytes: UnsafeRawBufferPointer) throws(VFIOError) {
        try check("copy_to_user", bytes.count) { vfiokit_user_copy(UnsafeMutableRawPointer(bitPattern: UInt(address)), bytes.baseAddress, bytes.count) }
    }

    /// `copy_from_user(buffer, ptr, count)` filling a kernel buffer.
    func copyIn(raw buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) {
        try check("copy_from_user", buffer.count) { vfiokit_user_copy(buffer.baseAddress, UnsafeRawPointer(bitPattern: UInt(address)), buffer.count) }
    }

    /// `copy_to_user` of 64-bit words, little-endian (a dirty bitmap).
    func copyOut(words: ArraySlice<UInt64>) throws(VFIOError) {
        let littleEndian = words.map(\.littleEndian)
        try check("copy_to_user", littleEndian.count * 8) {
            littleEndian.withUnsafeBytes { vfiokit_user_copy(UnsafeMutableRawPointer(bitPattern: UInt(address)), $0.baseAddress, $0.count) }
        }
    }

    /// `strndup_user(ptr, limit)` (`strnlen_user`, then `memdup_user`): the bytes before the first
    /// NUL among the first `limit`; `EINVAL` when there is none, `EFAULT` when the memory stops
    /// being readable before it. The string is measured a byte at a time (`vfiokit_user_strnlen`),
    /// never reading past its NUL, so nothing beyond the caller's string is touched.
    func string(limit: Int) throws(VFIOError) -> [UInt8] {
        var copy: String { "\(what): copy_from_user (strnlen_user) of the string at 0x\(String(address, radix: 16))" }
        guard Self.accessOK(address, size: 1) else { throw VFIOError(.badAddress, rule: rule, "\(copy): not a user address (access_ok)") }
        var faulted = 0
        let length = vfiokit_user_strnlen(UInt(address), limit, &faulted)
        guard length >= 0 else {
            let at = address &+ UInt64(faulted)
            throw VFIOError(.badAddress, rule: rule, "\(copy) faulted at 0x\(String(at, radix: 16)), before a NUL")
        }
        guard length < limit else {
            throw VFIOError(.invalidArgument, rule: rule, "\(what): the string at 0x\(String(address, radix: 16)) has no NUL within \(limit) bytes")
        }
        return try copyIn(length).bytes
    }

    /// `access_ok` for `count` bytes, then `transfer` (a `vfiokit_user_copy`: 0, or -EFAULT when
    /// either side faulted — the copy may have stopped part way).
    private func check(_ call: String, _ count: Int, _ transfer: () -> Int32) throws(VFIOError) {
        guard count > 0 else { return }
        var copy: String { "\(what): \(call) of \(count) bytes at 0x\(String(address, radix: 16))" }
        guard Self.accessOK(address, size: UInt64(count)) else {
            throw VFIOError(.badAddress, rule: rule, "\(copy): not a user address range (access_ok)")
        }
        guard transfer() == 0 else { throw VFIOError(.badAddress, rule: rule, "\(copy) faulted") }
    }
}
