import Glibc
import SystemPackage

/// The group fd's ioctls with raw `<linux/vfio.h>` arguments (spec §4.3–§4.7).
extension VFIOGroup {
    /// `ioctl(group_fd, request, argument)`: the result, or -1 with `errno` set.
    public func ioctl(request: UInt, argument: UInt) -> Int32 {
        ioctlReturn(ioctlResult(request: request, argument: argument))
    }

    /// `ioctl` with the `VFIOError` that explains a failure.
    public func ioctlResult(request: UInt, argument: UInt) -> Result<Int32, VFIOError> {
        Result { () throws(VFIOError) in try handle(request: request, argument: argument) }
    }

    private func handle(request: UInt, argument: UInt) throws(VFIOError) -> Int32 {
        switch request {
        case VFIORequest.groupGetStatus:
            let user = try UserMemory(argument, rule: "VG-04", what: "\(self) GET_STATUS")
            guard user.u32(0) >= 8 else { throw VFIOError(.invalidArgument, rule: "VG-04", "\(self) GET_STATUS: argsz \(user.u32(0)) < 8") }
            user.store(status.rawValue, at: 4)
            return 0
        case VFIORequest.groupSetContainer:
            let user = try UserMemory(argument, rule: "VG-10", what: "\(self) SET_CONTAINER")
            try setContainer(Self.container(fd: Int32(bitPattern: user.u32(0)), for: self))
            return 0
        case VFIORequest.groupUnsetContainer:
            try unsetContainer()
            return 0
        case VFIORequest.groupGetDeviceFD:
            let name = try Self.deviceName(argument, for: self)
            let device = try openDevice(name)
            do throws(VFIOError) {
                return try VFIOFileTable.shared.insert(.device(device))
            } catch {
                device.close()
                throw error
            }
        default:
            throw VFIOError(.inappropriateIOCTLForDevice, rule: "VG-02", "\(self): no group ioctl 0x\(String(request, radix: 16))")
        }
    }

    /// VG-10, VG-12 in `vfio_group_ioctl_set_container`'s order: the fd must be open (`EBADF`),
    /// the group not yet in a container (`EINVAL`), the fd a VFIO container (`EBADFD`).
    private static func container(fd: Int32, for group: VFIOGroup) throws(VFIOError) -> VFIOContainer {
        let file = VFIOFileTable.shared.file(fd)
        if file == nil, fcntl(fd, F_GETFD) < 0 {
            throw VFIOError(.badFileDescriptor, rule: "VG-10", "\(group) SET_CONTAINER: fd \(fd) is not open")
        }
        try group.state.withLock { (state) throws(VFIOError) in try group.checkNotInContainer(state) }
        guard case .container(let container) = file else {
            throw VFIOError(.fileDescriptorInBadState, rule: "VG-12", "\(group) SET_CONTAINER: fd \(fd) is not a VFIO container")
        }
        return container
    }

    /// VG-30: `strndup_user(arg, PAGE_SIZE)` — a NUL within a page.
    private static func deviceName(_ argument: UInt, for group: VFIOGroup) throws(VFIOError) -> String {
        let user = try UserMemory(argument, rule: "VG-30", what: "\(group) GET_DEVICE_FD")
        let limit = Int(hostPageSize)
        let bytes = user.base.assumingMemoryBound(to: UInt8.self)
        var length = 0
        while length < limit, bytes[length] != 0 { length += 1 }
        guard length < limit else {
            throw VFIOError(.invalidArgument, rule: "VG-30", "\(group) GET_DEVICE_FD: the device name is not NUL-terminated within \(limit) bytes")
        }
        return String(decoding: UnsafeBufferPointer(start: bytes, count: length), as: UTF8.self)
    }
}
