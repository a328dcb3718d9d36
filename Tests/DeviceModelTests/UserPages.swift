import Glibc

/// User memory a test hands the UAPI facade, laid out to fault where it chooses: an argument page,
/// a `PROT_NONE` page after it, and a page for a dirty bitmap's `data`. `mmap`ed per test and
/// `munmap`ed by `release`.
final class UserPages {
    static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    private let base: UnsafeMutableRawPointer
    /// The argument page; the `PROT_NONE` page starts where it ends.
    var argument: UnsafeMutableRawPointer { base }
    var inaccessible: UnsafeMutableRawPointer { base + Self.pageSize }
    var bitmap: UnsafeMutableRawPointer { base + 2 * Self.pageSize }

    init() throws {
        guard let base = mmap(nil, 3 * Self.pageSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), base != MAP_FAILED else {
            throw PagesError(call: "mmap")
        }
        self.base = base
        try protect(inaccessible, PROT_NONE)
    }

    /// `bytes` at the start of the argument page; its address.
    func place(_ bytes: [UInt8]) -> UInt {
        bytes.withUnsafeBytes { argument.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return UInt(bitPattern: argument)
    }

    /// The first `readable` of `bytes` placed to end where the `PROT_NONE` page starts; the
    /// argument's address.
    func straddle(_ bytes: [UInt8], readable: Int) -> UInt {
        let start = inaccessible - readable
        bytes.prefix(readable).withUnsafeBytes { start.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return UInt(bitPattern: start)
    }

    func protect(_ page: UnsafeMutableRawPointer, _ protection: Int32) throws {
        guard mprotect(page, Self.pageSize, protection) == 0 else { throw PagesError(call: "mprotect") }
    }

    func release() { munmap(base, 3 * Self.pageSize) }

    struct PagesError: Error, CustomStringConvertible {
        let call: String
        let errno = Glibc.errno
        var description: String { "\(call) failed: errno \(errno)" }
    }
}
