import Glibc
import IOMMU
import IOMMUFD
import KernelRules
import SystemPackage
import UserMemory
import VFIO

/// The device cdev's ioctls (`vfio_device_fops_unl_ioctl`, IOMMUFD-611): BIND first; before it
/// every other ioctl is `EINVAL`; ATTACH/DETACH_IOMMUFD_PT; then the device's own ioctls.
extension VFIODeviceCdev: IOCTLTarget {
    public func ioctlThrowing(request: UInt, argument: UInt) throws(VFIOError) -> Int32 {
        switch request {
        case IOMMUFDRequest.deviceBindIOMMUFD:
            try bind(argument)
        case IOMMUFDRequest.deviceAttachIOMMUFDPT:
            _ = try device("ATTACH_IOMMUFD_PT")
            try attach(argument)
        case IOMMUFDRequest.deviceDetachIOMMUFDPT:
            _ = try device("DETACH_IOMMUFD_PT")
            try detach(argument)
        default:
            return try device("ioctl 0x\(String(request, radix: 16))").ioctlThrowing(request: request, argument: argument)
        }
        return 0
    }

    /// `struct vfio_device_bind_iommufd { argsz, flags, s32 iommufd, out_devid, u64 token_uuid_ptr }`
    /// (IOMMUFD-612, -616): `argsz` at least 16; bytes past 24 must be zero (`E2BIG`); a negative
    /// fd or unknown flags `EINVAL`; a VF token `EINVAL` (no function here is an SR-IOV PF or VF);
    /// the fd `EBADF` when not open, `EBADFD` when not an iommufd.
    private func bind(_ argument: UInt) throws(VFIOError) {
        let user = UserPointer(argument, rule: .IOMMUFD_612, object: self, ioctl: "BIND_IOMMUFD")
        let argsz = Int(try user.copyIn(4).u32(0))
        guard argsz >= 16 else { throw VFIOError(.invalidArgument, rule: .IOMMUFD_612, "\(self) BIND_IOMMUFD: argsz \(argsz) < 16") }
        var arguments = try IOMMUFDContext.copyStruct(user, userSize: argsz, kernelSize: 24, what: "BIND_IOMMUFD")
        let (flags, fd) = (arguments.u32(4), Int32(bitPattern: arguments.u32(8)))
        guard fd >= 0, flags & ~1 == 0 else {
            throw VFIOError(.invalidArgument, rule: .IOMMUFD_612, "\(self) BIND_IOMMUFD: iommufd \(fd) negative or flags 0x\(String(flags, radix: 16)) beyond TOKEN")
        }
        let id = try bind { () throws(VFIOError) -> IOMMUFDContext in
            if flags & 1 != 0 {
                _ = try UserPointer(arguments.u64(16), rule: .IOMMUFD_616, object: self, ioctl: "BIND_IOMMUFD token").copyIn(16)
                throw VFIOError(.invalidArgument, rule: .IOMMUFD_616, "\(self) BIND_IOMMUFD: \(address) is neither an SR-IOV PF nor a VF, so it takes no VF token")
            }
            switch VFIOFileTable.shared.file(fd) {
            case .iommufd(let context): return context
            case nil where fcntl(fd, F_GETFD) < 0:
                throw VFIOError(.badFileDescriptor, rule: .IOMMUFD_116, "\(self) BIND_IOMMUFD: fd \(fd) is not open")
            default:
                throw VFIOError(.fileDescriptorInBadState, rule: .IOMMUFD_116, "\(self) BIND_IOMMUFD: fd \(fd) is not an iommufd")
            }
        }
        arguments.set(id, at: 12)
        do throws(VFIOError) {
            try user.advanced(by: 12, rule: .IOMMUFD_612).copyOut(Array(arguments.bytes[12..<16]))
        } catch {
            close()
            throw error
        }
    }

    /// `struct vfio_device_attach_iommufd_pt { argsz, flags, pt_id, pasid }` (IOMMUFD-620): 12 bytes
    /// in; `pt_id` written back with the HWPT attached (a fault there undoes the attach).
    private func attach(_ argument: UInt) throws(VFIOError) {
        let user = UserPointer(argument, rule: .IOMMUFD_620, object: self, ioctl: "ATTACH_IOMMUFD_PT")
        let arguments = try user.copyIn(12)
        guard arguments.u32(0) >= 12, arguments.u32(4) & ~1 == 0 else {
            throw VFIOError(.invalidArgument, rule: .IOMMUFD_620, "\(self) ATTACH_IOMMUFD_PT: argsz \(arguments.u32(0)) < 12 or flags 0x\(String(arguments.u32(4), radix: 16)) beyond ATTACH_PASID")
        }
        if arguments.u32(4) & 1 != 0 {
            guard arguments.u32(0) >= 16 else { throw VFIOError(.invalidArgument, rule: .IOMMUFD_620, "\(self) ATTACH_IOMMUFD_PT PASID: argsz \(arguments.u32(0)) < 16") }
            let pasid = try user.advanced(by: 12).copyIn(4).u32(0)
            throw VFIOError(.invalidArgument, rule: .IOMMUFD_623, "\(self) ATTACH_IOMMUFD_PT PASID \(pasid): the device has no PASID capability")
        }
        let hwpt = try attach(arguments.u32(8))
        var out = UAPIStruct([])
        out.set(hwpt, at: 0)
        do throws(VFIOError) {
            try user.advanced(by: 8, rule: .IOMMUFD_620).copyOut(out)
        } catch {
            try? detach()
            throw error
        }
    }

    /// `struct vfio_device_detach_iommufd_pt { argsz, flags, pasid }` (IOMMUFD-624): 8 bytes in;
    /// always 0 once the arguments are valid.
    private func detach(_ argument: UInt) throws(VFIOError) {
        let user = UserPointer(argument, rule: .IOMMUFD_624, object: self, ioctl: "DETACH_IOMMUFD_PT")
        let arguments = try user.copyIn(8)
        guard arguments.u32(0) >= 8, arguments.u32(4) & ~1 == 0 else {
            throw VFIOError(.invalidArgument, rule: .IOMMUFD_624, "\(self) DETACH_IOMMUFD_PT: argsz \(arguments.u32(0)) < 8 or flags 0x\(String(arguments.u32(4), radix: 16)) beyond DETACH_PASID")
        }
        if arguments.u32(4) & 1 != 0 {
            guard arguments.u32(0) >= 12 else { throw VFIOError(.invalidArgument, rule: .IOMMUFD_624, "\(self) DETACH_IOMMUFD_PT PASID: argsz \(arguments.u32(0)) < 12") }
            _ = try user.advanced(by: 8).copyIn(4)
            return  // no PASID is attached: a silent success
        }
        try self.detach()
    }
}
