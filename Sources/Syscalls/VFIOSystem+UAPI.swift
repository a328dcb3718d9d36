import Glibc
import IOMMU
import KernelRules
import PCIBus
import SystemPackage
import UserMemory
import VFIO

/// `open` / `ioctl` / `close` on `/dev/vfio` paths and fds, so a driver written against
/// `<linux/vfio.h>` runs unchanged: swap the three libc calls for these.
extension VFIOSystem {
    /// `open("/dev/vfio/vfio")` (a new container) or `open("/dev/vfio/<N>")` (VG-03): an fd, or
    /// -1 with `errno` set.
    public func open(_ path: String) -> Int32 {
        syscallReturn(openResult(path), failure: -1)
    }

    public func openResult(_ path: String) -> Result<Int32, VFIOError> {
        do throws(VFIOError) {
            if path == "/dev/vfio/vfio" {
                return .success(try VFIOFileTable.shared.insert(.container(VFIOContainer(process: process))))
            }
            guard path.hasPrefix("/dev/vfio/"), let id = Int(path.dropFirst("/dev/vfio/".count)), id >= 0 else {
                throw VFIOError(.noSuchFileOrDirectory, rule: .VG_01, "open \(path): no such VFIO node")
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
        syscallReturn(ioctlResult(fd, request, argument), failure: -1)
    }

    /// `ioctl` with the `VFIOError` that explains a failure.
    public func ioctlResult(_ fd: Int32, _ request: UInt, _ argument: UInt) -> Result<Int32, VFIOError> {
        switch VFIOFileTable.shared.file(fd) {
        case .container(let container): container.ioctlResult(request: request, argument: argument)
        case .group(let group): group.ioctlResult(request: request, argument: argument)
        case .device(let device): device.ioctlResult(request: request, argument: argument)
        case nil: .failure(VFIOError(.badFileDescriptor, rule: .none, "ioctl: fd \(fd) is not a VFIO file"))
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

    private func regionIO(
        _ fd: Int32, _ offset: UInt64, _ count: Int, _ body: (VFIODevice, VFIORegionIndex, UInt64) throws(VFIOError) -> Int
    ) -> Int {
        let result = Result { () throws(VFIOError) -> Int in
            guard case .device(let device) = VFIOFileTable.shared.file(fd) else {
                throw VFIOError(.badFileDescriptor, rule: .none, "pread/pwrite: fd \(fd) is not a VFIO device")
            }
            guard count > 0 else { return 0 }  // VPCI-70: before the region is even looked at
            guard let region = VFIORegionIndex(rawValue: UInt32(truncatingIfNeeded: offset >> 40)) else {
                throw VFIOError(.invalidArgument, rule: .VPCI_71, "\(device): offset 0x\(String(offset, radix: 16)) is in no region")
            }
            return try body(device, region, offset & ((1 << 40) - 1))
        }
        return syscallReturn(result, failure: -1)
    }

    /// `mmap(NULL, length, PROT_READ | PROT_WRITE, shared ? MAP_SHARED : MAP_PRIVATE, device_fd, offset)`
    /// of a region (VPCI-100): the device memory behind a mappable BAR at the region offset, or
    /// nil with `errno` set — `EBADF` for a fd that is no device, `EINVAL` for a region that is
    /// not mappable, a private mapping, an offset off a page boundary (`mmap(2)` itself) or a
    /// range past the BAR. Register BARs are not mappable here: their accesses are trapped.
    public func mmap(_ fd: Int32, length: Int, offset: UInt64, shared: Bool = true) -> UnsafeMutableRawPointer? {
        let result = Result { () throws(VFIOError) -> UnsafeMutableRawPointer in
            guard case .device(let device) = VFIOFileTable.shared.file(fd) else {
                throw VFIOError(.badFileDescriptor, rule: .none, "mmap: fd \(fd) is not a VFIO device")
            }
            let within = offset & ((1 << 40) - 1)
            guard within % hostPageSize == 0, length > 0 else {
                throw VFIOError(.invalidArgument, rule: .none, "mmap \(device): offset 0x\(String(offset, radix: 16)) is not page-aligned or the length is 0")
            }
            guard let region = VFIORegionIndex(rawValue: UInt32(truncatingIfNeeded: offset >> 40)) else {
                throw VFIOError(.invalidArgument, rule: .VPCI_100, "mmap \(device): offset 0x\(String(offset, radix: 16)) is in no region")
            }
            guard shared else { throw VFIOError(.invalidArgument, rule: .VPCI_100, "mmap \(device) \(region): not MAP_SHARED") }
            let memory = try device.mapRegion(region)
            guard within <= UInt64(memory.count), UInt64(length) <= UInt64(memory.count) - within else {
                throw VFIOError(
                    .invalidArgument, rule: .VPCI_100, "mmap \(device) \(region): [0x\(String(within, radix: 16)) +\(length)] runs past the BAR's \(memory.count) bytes")
            }
            return memory.baseAddress! + Int(within)
        }
        return syscallReturn(result.map(Optional.some), failure: nil)
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
            return syscallReturn(.failure(VFIOError(.badFileDescriptor, rule: .none, "close: fd \(fd) is not a VFIO file")), failure: -1)
        }
        return 0
    }
}
