import UserMemory
import Glibc
import IOMMU
import KernelRules
import PCIBus
import SystemPackage
import VFIO

/// The group fd's ioctls with raw `<linux/vfio.h>` arguments (spec §4.3–§4.7).
extension VFIOGroup: IOCTLTarget {
    public func ioctlThrowing(request: UInt, argument: UInt) throws(VFIOError) -> Int32 {
        switch request {
        case VFIORequest.groupGetStatus:
            // struct vfio_group_status { argsz, flags }: 8 bytes in, 8 bytes back.
            let user = UserPointer(argument, rule: .VG_04, object: self, ioctl: "GET_STATUS")
            var status = try user.copyInHeader(minsz: 8)
            status.set(self.status.rawValue, at: 4)
            try user.copyOut(status)
            return 0
        case VFIORequest.groupSetContainer:
            // get_user(fd, (int __user *)arg)
            let fd = try UserPointer(argument, rule: .VG_10, object: self, ioctl: "SET_CONTAINER").copyIn(4).u32(0)
            switch try Self.container(fd: Int32(bitPattern: fd), for: self) {
            case .container(let container): try setContainer(container)
            case .iommufd(let context): try setContainer(context)
            }
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
            throw VFIOError(.inappropriateIOCTLForDevice, rule: .none, "\(self): no group ioctl 0x\(String(request, radix: 16))")
        }
    }

    /// VG-10, VG-12 in `vfio_group_ioctl_set_container`'s order: the fd must be open (`EBADF`),
    /// the group not yet in a container (`EINVAL`), the fd a VFIO container or an iommufd
    /// (IOMMUFD-730; else `EBADFD`).
    private static func container(fd: Int32, for group: VFIOGroup) throws(VFIOError) -> VFIOGroup.Joined {
        let file = VFIOFileTable.shared.file(fd)
        if file == nil, fcntl(fd, F_GETFD) < 0 {
            throw VFIOError(.badFileDescriptor, rule: .VG_10, "\(group) SET_CONTAINER: fd \(fd) is not open")
        }
        try group.requireNoContainer()
        switch file {
        case .container(let container): return .container(container)
        case .iommufd(let context): return .iommufd(context)
        default: throw VFIOError(.fileDescriptorInBadState, rule: .VG_12, "\(group) SET_CONTAINER: fd \(fd) is neither a VFIO container nor an iommufd")
        }
    }

    /// VG-30: `strndup_user(arg, PAGE_SIZE)` — a NUL within a page.
    private static func deviceName(_ argument: UInt, for group: VFIOGroup) throws(VFIOError) -> String {
        let name = try UserPointer(argument, rule: .VG_30, object: group, ioctl: "GET_DEVICE_FD").string(limit: Int(hostPageSize))
        return String(decoding: name, as: UTF8.self)
    }
}
