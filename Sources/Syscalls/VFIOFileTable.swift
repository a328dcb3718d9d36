import Glibc
import IOMMU
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
}

/// The process's table of simulated VFIO fds. Each entry holds a real descriptor (of
/// `/dev/null`), so its number is unique in the process and never collides with an eventfd or
/// file the driver opens itself.
final class VFIOFileTable: Sendable {
    static let shared = VFIOFileTable()
    private let files = PThreadMutex<[Int32: VFIOFile]>([:])

    func insert(_ file: VFIOFile) throws(VFIOError) -> Int32 {
        let fd = Glibc.open("/dev/null", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw VFIOError(Errno(rawValue: Glibc.errno), rule: .none, "no file descriptor left for a VFIO file")
        }
        files.withLock { $0[fd] = file }
        return fd
    }

    func file(_ fd: Int32) -> VFIOFile? { files.withLock { $0[fd] } }

    /// Removes the entry and closes its descriptor; nil when `fd` is not a VFIO file.
    func remove(_ fd: Int32) -> VFIOFile? {
        guard let file = files.withLock({ $0.removeValue(forKey: fd) }) else { return nil }
        Glibc.close(fd)
        return file
    }
}
