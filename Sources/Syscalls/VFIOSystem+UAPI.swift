import Glibc
import IOMMU
import IOMMUFD
import KernelRules
import PCIBus
import SystemPackage
import UserMemory
import VFIO

/// `open` / `ioctl` / `close` on `/dev/vfio` and `/dev/iommu` paths and fds, so a driver written against
/// `<linux/vfio.h>` runs unchanged: swap the three libc calls for these.
extension VFIOSystem {
    /// Where the device cdevs are (`/dev/vfio/devices/vfioN`).
    static let cdevDirectory = "/dev/vfio/devices/"

    /// `open("/dev/vfio/vfio")` (a new container), `open("/dev/vfio/<N>")` (VG-03),
    /// `open("/dev/iommu")` (a new iommufd, IOMMUFD-100) or `open("/dev/vfio/devices/vfio<N>")`
    /// (an unbound device cdev, IOMMUFD-610): an fd, or -1 with `errno` set.
    public func open(_ path: String, flags: Int32 = O_RDWR | O_CLOEXEC) -> Int32 {
        syscallReturn(openResult(path, flags: flags), failure: -1)
    }

    /// `open` with the `VFIOError` that explains a failure; the descriptor is close-on-exec when
    /// `flags` has `O_CLOEXEC`.
    public func openResult(_ path: String, flags: Int32 = O_RDWR | O_CLOEXEC) -> Result<Int32, VFIOError> {
        let closeOnExec = flags & O_CLOEXEC != 0
        do throws(VFIOError) {
            if path == "/dev/vfio/vfio" {
                return .success(try VFIOFileTable.shared.insert(.container(VFIOContainer(process: process, options: containerOptions)), closeOnExec: closeOnExec))
            }
            if path == "/dev/iommu" {
                let context = IOMMUFDContext(process: process, selftest: iommufdSelftest)
                do throws(VFIOError) {
                    return .success(try VFIOFileTable.shared.insert(.iommufd(context), closeOnExec: closeOnExec))
                } catch {
                    context.close()
                    throw error
                }
            }
            if path.hasPrefix(Self.cdevDirectory) {
                guard let number = Int(path.dropFirst(Self.cdevDirectory.count + 4)), path.dropFirst(Self.cdevDirectory.count).hasPrefix("vfio"), number >= 0 else {
                    throw VFIOError(.noSuchFileOrDirectory, rule: .IOMMUFD_610, "open \(path): no such VFIO device cdev")
                }
                return .success(try VFIOFileTable.shared.insert(.cdev(openDeviceCdev(number)), closeOnExec: closeOnExec))
            }
            guard path.hasPrefix("/dev/vfio/"), let id = Int(path.dropFirst("/dev/vfio/".count)), id >= 0 else {
                throw VFIOError(.noSuchFileOrDirectory, rule: .VG_01, "open \(path): no such VFIO node")
            }
            let group = try openGroup(id)
            do throws(VFIOError) {
                return .success(try VFIOFileTable.shared.insert(.group(group), closeOnExec: closeOnExec))
            } catch {
                group.close()
                throw error
            }
        } catch {
            return .failure(error)
        }
    }

    /// `ioctl(fd, request, argument)` on a container, group or device fd.
    public func ioctl(_ fd: Int32, _ request: UInt, _ argument: UInt) -> Int32 {
        do {
            return try ioctlThrowing(fd, request, argument)
        } catch {
            return syscallFailure(error, -1)
        }
    }

    /// `ioctl` with the `VFIOError` that explains a failure.
    public func ioctlResult(_ fd: Int32, _ request: UInt, _ argument: UInt) -> Result<Int32, VFIOError> {
        Result { () throws(VFIOError) in try ioctlThrowing(fd, request, argument) }
    }

    /// The ioctl on the file `fd` names, or the error: `EBADF` for no VFIO file.
    private func ioctlThrowing(_ fd: Int32, _ request: UInt, _ argument: UInt) throws(VFIOError) -> Int32 {
        switch VFIOFileTable.shared.file(fd) {
        case .container(let container): return try container.ioctlThrowing(request: request, argument: argument)
        case .group(let group): return try group.ioctlThrowing(request: request, argument: argument)
        case .device(let device): return try device.ioctlThrowing(request: request, argument: argument)
        case .iommufd(let context): return try context.ioctlThrowing(request: request, argument: argument)
        case .cdev(let cdev): return try cdev.ioctlThrowing(request: request, argument: argument)
        case .testAccess(let access):
            throw VFIOError(.inappropriateIOCTLForDevice, rule: .IOMMUFD_814, "ioctl: fd \(fd) is \(access), an [iommufd_test_staccess] file without ioctls")
        case nil: throw VFIOError(.badFileDescriptor, rule: .none, "ioctl: fd \(fd) is not a VFIO file")
        }
    }

    /// `pread(device_fd, buffer, count, offset)`: the region is `offset >> 40`
    /// (`VFIO_PCI_INDEX_TO_OFFSET`); the bytes read — fewer than `count` where a BAR ends — or -1
    /// with `errno` set.
    public func pread(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, _ offset: UInt64) -> Int {
        regionIO(fd, offset, buffer.count) { (device, region, at) throws(VFIOError) in try device.read(region, offset: at, into: buffer) }
    }

    /// `pwrite(device_fd, buffer, count, offset)`, as `pread`.
    public func pwrite(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, _ offset: UInt64) -> Int {
        regionIO(fd, offset, buffer.count) { (device, region, at) throws(VFIOError) in try device.write(region, offset: at, from: buffer) }
    }

    func regionIO(
        _ fd: Int32, _ offset: UInt64, _ count: Int, _ body: (VFIODevice, VFIORegionIndex, UInt64) throws(VFIOError) -> Int
    ) -> Int {
        let result = Result { () throws(VFIOError) -> Int in
            guard let file = VFIOFileTable.shared.file(fd) else {
                throw VFIOError(.badFileDescriptor, rule: .none, "pread/pwrite: fd \(fd) is not a VFIO device")
            }
            let device = try file.device("pread/pwrite", fd: fd)
            guard count > 0 else { return 0 }  // VPCI-70: before the region is even looked at
            guard let region = VFIORegionIndex(rawValue: UInt32(truncatingIfNeeded: offset >> 40)) else {
                throw VFIOError(.invalidArgument, rule: .VPCI_71, "\(device): offset 0x\(String(offset, radix: 16)) is in no region")
            }
            return try body(device, region, offset & ((1 << 40) - 1))
        }
        return syscallReturn(result, failure: -1)
    }

    /// `close(fd)`: the descriptor goes; with the last descriptor of its open file, a group
    /// leaves its container (VG-13) and a device drops its hold (VG-34).
    @discardableResult
    public func close(_ fd: Int32) -> Int32 { syscallReturn(closeResult(fd), failure: -1) }

    /// `close` with the `VFIOError` that explains a failure; `closeDescriptor: false` when the
    /// kernel already closed the descriptor (`dup2` over it).
    public func closeResult(_ fd: Int32, closeDescriptor: Bool = true) -> Result<Int32, VFIOError> {
        Result { () throws(VFIOError) in
            switch try VFIOFileTable.shared.remove(fd, closeDescriptor: closeDescriptor) {
            case .group(let group): group.close()
            case .device(let device): device.close()
            case .iommufd(let context): context.close()
            case .cdev(let cdev): cdev.close()
            case .testAccess(let access): access.close()
            case .container, nil: break
            }
            return 0
        }
    }
}

/// The process's VFIO descriptors, for the code that interposes on a program's own system calls
/// (`vfiokit run`): which descriptors are VFIO files, and copies the kernel made of them.
public enum VFIODescriptors {
    /// Calls `body(fd, true)` when a descriptor starts referring to a VFIO file and
    /// `body(fd, false)` when it stops.
    public static func observe(_ body: @escaping @Sendable (Int32, Bool) -> Void) { VFIOFileTable.shared.observe(body) }

    /// `newfd`, a real copy of `fd` (`dup`, `dup2`, `dup3`, `fcntl(F_DUPFD*)`), now refers to
    /// `fd`'s open file; false when `fd` is no VFIO file.
    @discardableResult
    public static func duplicate(_ fd: Int32, as newfd: Int32) -> Bool { VFIOFileTable.shared.duplicate(fd, as: newfd) }
}
