import Glibc
import SystemPackage

/// `open` / `ioctl` / `close` on `/dev/vfio` paths and fds, so a driver written against
/// `<linux/vfio.h>` runs unchanged: swap the three libc calls for these.
extension VFIOSystem {
    /// `open("/dev/vfio/vfio")` (a new container) or `open("/dev/vfio/<N>")` (VG-03): an fd, or
    /// -1 with `errno` set.
    public func open(_ path: String) -> Int32 {
        ioctlReturn(openResult(path))
    }

    public func openResult(_ path: String) -> Result<Int32, VFIOError> {
        do throws(VFIOError) {
            if path == "/dev/vfio/vfio" {
                return .success(try VFIOFileTable.shared.insert(.container(VFIOContainer(process: process))))
            }
            guard path.hasPrefix("/dev/vfio/"), let id = Int(path.dropFirst("/dev/vfio/".count)), id >= 0 else {
                throw VFIOError(.noSuchFileOrDirectory, rule: "VG-01", "open \(path): no such VFIO node")
            }
            let group = try openGroup(id)
            do throws(VFIOError) {
                return .success(try VFIOFileTable.shared.insert(.group(group)))
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
        switch VFIOFileTable.shared.file(fd) {
        case .container(let container): return container.ioctl(request: request, argument: argument)
        case .group(let group): return group.ioctl(request: request, argument: argument)
        case .device(let device):
            return ioctlReturn(.failure(VFIOError(
                .inappropriateIOCTLForDevice, rule: "VG-34", "\(device): device ioctl 0x\(String(request, radix: 16)) is not modelled")))
        case nil:
            return ioctlReturn(.failure(VFIOError(.badFileDescriptor, rule: "VG-10", "ioctl: fd \(fd) is not a VFIO file")))
        }
    }

    /// `close(fd)`: a group leaves its container (VG-13), a device fd drops its hold (VG-34).
    @discardableResult
    public func close(_ fd: Int32) -> Int32 {
        switch VFIOFileTable.shared.remove(fd) {
        case .group(let group):
            group.close()
        case .device(let device):
            device.close()
        case .container:
            break
        case nil:
            return ioctlReturn(.failure(VFIOError(.badFileDescriptor, rule: "VG-10", "close: fd \(fd) is not a VFIO file")))
        }
        return 0
    }
}
