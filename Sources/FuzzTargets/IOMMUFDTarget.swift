import IOMMU
import KernelRules
import Syscalls
import UserMemory
import SystemPackage
import VFIO

/// `iommufd`: `/dev/iommu`, the VFIO device cdevs and iommufd's VFIO compatibility on a fresh
/// default machine, driven by a sequence of operations — opens of `/dev/iommu`,
/// `/dev/vfio/devices/vfioN`, groups and containers; closes; iommufd commands with any number,
/// `size`, flags, IDs, IOVAs and user addresses (`IOMMUFDArgument`); the VFIO container ioctls on
/// an iommufd; BIND/ATTACH/DETACH and device ioctls on a cdev; groups joining an iommufd and
/// opening devices through it; allocations and releases of host memory. Every call must answer
/// with a value or -1 and an errno, `EFAULT` only where some user memory is hostile or a pin
/// refuses the user address (T1-20, IOMMUFD-401). When the input ends and every fd is closed,
/// nothing may stay claimed or pinned: every group's DMA ownership is released and the
/// process's locked memory is back to zero.
enum IOMMUFDTarget {
    static let maximumOperations = 48

    static let run: FuzzEntryPoint = { data in
        var input = FuzzInput(data)
        let session = UAPISession(lockedMemoryLimit: input.pick([nil, nil, 64 << 10, 1 << 20] as [UInt64?]))
        defer { UserArgumentPage.shared.releaseBitmapPages() }
        var count = 0
        while !input.isEmpty, count < maximumOperations {
            step(session, &input)
            count += 1
        }
        session.close()
        for group in session.vfio.core.groups {
            precondition(group.owner == nil, "group \(group.id) still claimed by \(group.owner!) after every fd was closed")
        }
        precondition(session.vfio.process.lockedBytes == 0, "\(session.vfio.process.lockedBytes) bytes still pinned after every fd was closed")
    }

    private static func step(_ session: UAPISession, _ input: inout FuzzInput) {
        let vfio = session.vfio
        switch input.u8() % 10 {
        case 0:
            switch input.u8() % 5 {
            case 0, 1: session.opened(vfio.open("/dev/iommu"), as: .iommufd)
            case 2: session.opened(vfio.open("/dev/vfio/devices/vfio\(input.u8() % 4)"), as: .cdev)
            case 3: session.opened(vfio.open("/dev/vfio/\(vfio.groupIDs.isEmpty ? 0 : input.pick(vfio.groupIDs))"), as: .group)
            default: session.opened(vfio.open("/dev/vfio/vfio"), as: .container)
            }
        case 1:
            expectReturn(vfio.close(session.fd(&input)))
        case 2, 3, 4:
            // An iommufd command, a hole in the table, a number past it, or a wrong type byte.
            let nr = UInt(input.u8() % 8 == 0 ? input.u8() : 0x80 + input.u8() % 0x18)
            let request = input.u8() % 16 == 0 ? (UInt(input.u8()) << 8 | nr) : IOMMUFDRequest.ioasAlloc & ~0xff | nr
            let fd = session.fd(&input)
            let (argument, hostile) = IOMMUFDArgument.build(request, on: shape(of: fd, session), session, &input)
            check(vfio.ioctlResult(fd, request, argument), hostile: hostile)
        case 5:
            // The VFIO container ioctls, as an iommufd's compatibility takes them.
            let fd = session.fd(&input)
            let request = VFIORequest.getAPIVersion + UInt(input.pick([0, 1, 2, 12, 13, 14, 17] as [UInt]))
            let (argument, hostile) = UAPIArgument.build(request, on: shape(of: fd, session), session, &input)
            check(vfio.ioctlResult(fd, request, argument), hostile: hostile)
        case 6, 7:
            // The device cdev's own ioctls, or a device ioctl on it.
            let fd = session.fd(&input)
            if input.bool() {
                let request = input.pick([IOMMUFDRequest.deviceBindIOMMUFD, IOMMUFDRequest.deviceAttachIOMMUFDPT, IOMMUFDRequest.deviceDetachIOMMUFDPT])
                let (argument, hostile) = IOMMUFDArgument.build(request, on: shape(of: fd, session), session, &input)
                check(vfio.ioctlResult(fd, request, argument), hostile: hostile)
            } else {
                let request = VFIORequest.getAPIVersion + UInt(7 + input.u8() % 7)
                let (argument, hostile) = UAPIArgument.build(request, on: shape(of: fd, session), session, &input)
                check(vfio.ioctlResult(fd, request, argument), hostile: hostile)
            }
        case 8:
            // A group joins a container or an iommufd, or opens a device through it.
            let request = input.bool() ? VFIORequest.groupSetContainer : VFIORequest.groupGetDeviceFD
            let (argument, hostile) = UAPIArgument.build(request, on: .group, session, &input)
            let result = vfio.ioctlResult(session.fd(&input), request, argument)
            check(result, hostile: hostile)
            if request == VFIORequest.groupGetDeviceFD, case .success(let fd) = result { session.opened(fd, as: .device) }
        default:
            if input.bool() {
                let size = input.pick([0x1000, 0x2000, 0x1_0000, 0x20_0000, 0] as [UInt64])
                session.allocate(size: size, hugePages: input.u8() % 8 == 0, writable: input.u8() % 4 != 0)
            } else {
                session.release(Int(input.u8() % 8))
            }
        }
    }

    /// The kind of file whose structs an ioctl on `fd` is built for: a cdev takes the device's,
    /// an iommufd the container's below 0x80.
    private static func shape(of fd: Int32, _ session: UAPISession) -> UAPISession.FileKind? {
        switch session.kind(of: fd) {
        case .cdev: .device
        case .iommufd: .container
        case let kind: kind
        }
    }

    /// A value or -1 and an errno; `EFAULT` only for hostile memory or a refused pin.
    private static func check(_ result: Result<Int32, VFIOError>, hostile: Bool) {
        switch result {
        case .success(let value): expectReturn(value)
        case .failure(let error):
            precondition(
                hostile || error.errno != .badAddress || error.rule == .T1_20 || error.rule == .IOMMUFD_401,
                "a fault on user memory the kernel would have read and written: \(error)")
        }
    }

    private static func expectReturn(_ result: Int32) {
        precondition(result >= -1, "a facade call returned \(result)")
    }
}
