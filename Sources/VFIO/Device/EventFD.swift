import KernelRules
import Glibc
import SystemPackage

/// A Linux `eventfd`: the counter interrupts are signalled on. A driver creates one per vector and
/// hands its fd to `VFIO_DEVICE_SET_IRQS`; the device side keeps its own reference (as
/// `eventfd_ctx_fdget` does), so the driver may close its fd while the vector stays wired.
public final class EventFD: Sendable {
    public let fd: Int32

    /// `eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)`.
    public init() throws(VFIOError) {
        let fd = systemEventFD(0, O_NONBLOCK | O_CLOEXEC)  // EFD_NONBLOCK and EFD_CLOEXEC are these bits
        guard fd >= 0 else { throw VFIOError(Errno(rawValue: Glibc.errno), rule: .none, "eventfd() failed") }
        self.fd = fd
    }

    /// Takes a reference to the eventfd behind the caller's `fd` (`eventfd_ctx_fdget`): `EBADF`
    /// for a closed fd, `EINVAL` for a file that is not an eventfd.
    init(referencing fd: Int32, rule: RuleID, what: @autoclosure () -> String) throws(VFIOError) {
        guard fd >= 0, fcntl(fd, F_GETFD) >= 0 else {
            throw VFIOError(.badFileDescriptor, rule: rule, "\(what()): fd \(fd) is not open")
        }
        guard Self.isEventFD(fd) else { throw VFIOError(.invalidArgument, rule: rule, "\(what()): fd \(fd) is not an eventfd") }
        let copy = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        guard copy >= 0 else { throw VFIOError(Errno(rawValue: Glibc.errno), rule: rule, "\(what()): dup of fd \(fd) failed") }
        self.fd = copy
    }

    deinit { Glibc.close(fd) }

    /// `eventfd_signal`: adds 1 to the counter.
    public func signal() {
        var one: UInt64 = 1
        _ = Glibc.write(fd, &one, 8)
    }

    /// Reads and resets the counter: nil when it is 0 (`EAGAIN` on the non-blocking fd).
    public func read() -> UInt64? {
        var value: UInt64 = 0
        return Glibc.read(fd, &value, 8) == 8 ? value : nil
    }

    /// `/proc/self/fd/N` of an eventfd links to `anon_inode:[eventfd]`.
    private static func isEventFD(_ fd: Int32) -> Bool {
        var buffer = [CChar](repeating: 0, count: 64)
        let count = readlink("/proc/self/fd/\(fd)", &buffer, buffer.count - 1)
        guard count > 0 else { return false }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self) == "anon_inode:[eventfd]"
    }
}

/// `int eventfd(unsigned int initval, int flags)` from glibc's `<sys/eventfd.h>`, which the Glibc
/// module does not import.
@_silgen_name("eventfd")
private func systemEventFD(_ initialValue: UInt32, _ flags: Int32) -> Int32
