import Glibc
import IOMMU
import IOMMUFD
import KernelRules
import Locking
import PCIBus
import SystemPackage
import VFIO

/// What a facade fd refers to.
enum VFIOFile: Sendable {
    case container(VFIOContainer)
    case group(VFIOGroup)
    case device(VFIODevice)
    /// `/dev/iommu`.
    case iommufd(IOMMUFDContext)
    /// `/dev/vfio/devices/vfioN`.
    case cdev(VFIODeviceCdev)
    /// The selftest's `[iommufd_test_staccess]` file (`IOMMU_TEST_OP_CREATE_ACCESS`, IOMMUFD-814).
    case testAccess(IOMMUFDTestAccess)

    /// The open device behind a device fd or a bound cdev, for `pread`/`pwrite`/`mmap`: `EINVAL`
    /// for an unbound cdev (IOMMUFD-611), `ENODEV` for a container, group or iommufd (no such file
    /// operation).
    func device(_ operation: String, fd: Int32) throws(VFIOError) -> VFIODevice {
        switch self {
        case .device(let device): return device
        case .cdev(let cdev): return try cdev.device(operation)
        case .container, .group, .iommufd:
            throw VFIOError(.operationNotSupportedByDevice, rule: .none, "\(operation): fd \(fd) is a VFIO container, group or iommufd, which has no \(operation)")
        case .testAccess:
            throw VFIOError(.operationNotSupportedByDevice, rule: .none, "\(operation): fd \(fd) is an [iommufd_test_staccess] file, which has no \(operation)")
        }
    }
}

/// The process's table of simulated VFIO fds. Each entry holds a real descriptor (of
/// `/dev/null`), so its number is unique in the process and never collides with an eventfd or
/// file the driver opens itself. Descriptors `dup`ed from one share its open file (`struct file`),
/// which is released — a group leaving its container, a device dropping its hold — when the last
/// of them is closed, as `fput` does.
final class VFIOFileTable: Sendable {
    static let shared = VFIOFileTable()

    /// One `struct file`: the object and how many descriptors refer to it.
    private final class OpenFile: @unchecked Sendable {
        let file: VFIOFile
        var descriptors = 1  // guarded by the table's lock
        init(_ file: VFIOFile) { self.file = file }
    }

    /// Indexed by descriptor (descriptors are small and dense, as the kernel allocates them).
    private let files = PThreadMutex<[OpenFile?]>([])
    /// Told of every descriptor that starts or stops referring to a VFIO file (the preload
    /// library's quick lookup), outside the table's lock.
    private let observer = PThreadMutex<Observer?>(nil)

    /// The observer, in a struct: a bare closure kept in the generic mutex came back through an
    /// `inout` access rewrapped in a reabstraction thunk each time, so every notification nested
    /// it one thunk deeper, until a long-running program's next open overflowed the stack.
    private struct Observer {
        let body: @Sendable (Int32, Bool) -> Void
    }

    func observe(_ body: @escaping @Sendable (Int32, Bool) -> Void) { observer.withLock { $0 = Observer(body: body) } }

    private func notify(_ fd: Int32, _ isVFIO: Bool) { observer.withLock { $0 }?.body(fd, isVFIO) }

    /// A new descriptor for a new open file; close-on-exec unless `closeOnExec` is false.
    func insert(_ file: VFIOFile, closeOnExec: Bool = true) throws(VFIOError) -> Int32 {
        let fd = Glibc.open("/dev/null", O_RDONLY | (closeOnExec ? O_CLOEXEC : 0))
        guard fd >= 0 else {
            throw VFIOError(Errno(rawValue: Glibc.errno), rule: .none, "no file descriptor left for a VFIO file")
        }
        files.withLock { $0.store(OpenFile(file), at: fd) }
        notify(fd, true)
        return fd
    }

    func file(_ fd: Int32) -> VFIOFile? {
        // Read in place under the lock: only the file is retained, not its entry.
        files.withLock { files in fd >= 0 && Int(fd) < files.count ? files[Int(fd)]?.file : nil }
    }

    /// `newfd` (already a real copy of `fd`: `dup`, `dup2`, `fcntl(F_DUPFD)`) now refers to the
    /// open file of `fd`; false when `fd` is no VFIO file.
    func duplicate(_ fd: Int32, as newfd: Int32) -> Bool {
        guard fd != newfd else { return files.withLock { $0.entry(fd) != nil } }
        let added = files.withLock { files -> Bool in
            guard let open = files.entry(fd) else { return false }
            open.descriptors += 1
            files.store(open, at: newfd)
            return true
        }
        if added { notify(newfd, true) }
        return added
    }

    /// Drops the descriptor (closing it unless `closeDescriptor` is false: the kernel already
    /// did); the file when this was its last descriptor, else nil. Throws `EBADF` when `fd`
    /// is no VFIO file.
    func remove(_ fd: Int32, closeDescriptor: Bool = true) throws(VFIOError) -> VFIOFile? {
        let entry = files.withLock { files -> (OpenFile, Bool)? in
            guard let open = files.entry(fd) else { return nil }
            files[Int(fd)] = nil
            open.descriptors -= 1
            return (open, open.descriptors == 0)
        }
        guard let (open, last) = entry else {
            throw VFIOError(.badFileDescriptor, rule: .none, "close: fd \(fd) is not a VFIO file")
        }
        notify(fd, false)
        if closeDescriptor { Glibc.close(fd) }
        return last ? open.file : nil
    }
}

extension Array {
    /// The open file at descriptor `fd`, if any.
    fileprivate func entry<File>(_ fd: Int32) -> File? where Element == File? { fd >= 0 && Int(fd) < count ? self[Int(fd)] : nil }

    /// Puts `file` at descriptor `fd` (≥ 0: a real descriptor), growing the table as needed.
    fileprivate mutating func store<File>(_ file: File, at fd: Int32) where Element == File? {
        if Int(fd) >= count { append(contentsOf: repeatElement(nil, count: Int(fd) + 1 - count)) }
        self[Int(fd)] = file
    }
}

