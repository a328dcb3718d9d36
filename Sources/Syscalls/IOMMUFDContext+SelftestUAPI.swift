import CMMIOTrap
import IOMMUFD
import KernelRules
import SystemPackage
import UserMemory
import VFIO

/// `IOMMU_TEST_CMD` with the raw `struct iommu_test_cmd` (`iommufd_test`, IOMMUFD-800, §8): the
/// command of a kernel built with `CONFIG_IOMMUFD_TEST` (present only in a context opened with
/// `selftest`). `{ size, op, id, __reserved, union { … } (48 bytes from 16), last }`; `__reserved`
/// is not checked, an unknown `op` is `EOPNOTSUPP`. The ops that change something answer with
/// the whole struct.
extension IOMMUFDContext {
    /// `enum IOMMU_TEST_OP_*` (IOMMUFD-801), from 1.
    enum TestOp: UInt32 {
        case addReserved = 1, mockDomain, checkMap, checkRefs, createAccess, destroyAccessPages, accessPages, accessRW
        case setTemporaryMemoryLimit, mockDomainReplace, accessReplaceIOAS, mockDomainFlags, dirty, checkIOTLB
        case triggerIOPF, checkDeviceCache, triggerVEvent, pasidAttach, pasidReplace, pasidDetach, pasidCheckHWPT
        case dmabufGet, dmabufRevoke
    }

    func testCommand(_ cmd: inout UAPIStruct, respond: (UAPIStruct) throws(VFIOError) -> Void) throws(VFIOError) -> Int32 {
        guard let op = TestOp(rawValue: cmd.u32(4)) else {
            throw VFIOError(.notSupported, rule: .IOMMUFD_800, "\(self) TEST_CMD: no op \(cmd.u32(4)) (1…23 exist)")
        }
        let id = cmd.u32(8)
        switch op {
        case .addReserved:
            try iommuCall { () throws(IOMMUFDError) in try addReserved(ioas: id, start: cmd.u64(16), length: cmd.u64(24)) }
        case .mockDomain, .mockDomainFlags:
            let flags = op == .mockDomainFlags ? cmd.u32(28) : 0
            let result = try iommuCall { () throws(IOMMUFDError) in try mockDomain(id, flags: flags) }
            cmd.set(result.stdev, at: 16)
            cmd.set(result.hwpt, at: 20)
            cmd.set(result.idev, at: 24)
            do throws(VFIOError) { try respond(cmd) } catch {
                try? destroy(result.stdev)
                throw error
            }
        case .mockDomainReplace:
            let pt = cmd.u32(16)
            cmd.set(try iommuCall { () throws(IOMMUFDError) in try mockDomainReplace(id, with: pt) }, at: 16)
            try respond(cmd)
        case .checkMap:
            try iommuCall { () throws(IOMMUFDError) in try checkMap(hwpt: id, iova: cmd.u64(16), length: cmd.u64(24), uptr: cmd.u64(32)) }
        case .checkRefs:
            try iommuCall { () throws(IOMMUFDError) in try checkRefs(uptr: cmd.u64(24), length: cmd.u64(16), refs: cmd.u32(32)) }
        case .checkDeviceCache:
            try iommuCall { () throws(IOMMUFDError) in try checkDeviceCache(idev: id, cacheID: cmd.u32(16), value: cmd.u32(20)) }
        case .setTemporaryMemoryLimit:
            try iommuCall { () throws(IOMMUFDError) in try setTemporaryMemoryLimit(cmd.u32(16)) }
        case .createAccess:
            try createAccess(&cmd, ioas: id, respond: respond)
        case .destroyAccessPages:
            let access = try testAccess(id, "DESTROY_ACCESS_PAGES")
            try iommuCall { () throws(IOMMUFDError) in try access.unpinPages(item: cmd.u32(16)) }
        case .accessPages:
            try accessPages(&cmd, fd: id, respond: respond)
        case .accessRW:
            try accessRW(cmd, fd: id)
        case .accessReplaceIOAS:
            let access = try testAccess(id, "ACCESS_REPLACE_IOAS")
            try iommuCall { () throws(IOMMUFDError) in try access.replaceIOAS(cmd.u32(16)) }
        case .dirty:
            try dirty(&cmd, hwpt: id, respond: respond)
        case .pasidAttach:
            try iommuCall { () throws(IOMMUFDError) in try pasidAttach(id, pasid: cmd.u32(16), to: cmd.u32(20)) }
            do throws(VFIOError) { try respond(cmd) } catch {
                try? pasidDetach(id, pasid: cmd.u32(16))
                throw error
            }
        case .pasidReplace:
            try iommuCall { () throws(IOMMUFDError) in try pasidReplace(id, pasid: cmd.u32(16), with: cmd.u32(20)) }
            try respond(cmd)
        case .pasidDetach:
            try iommuCall { () throws(IOMMUFDError) in try pasidDetach(id, pasid: cmd.u32(16)) }
        case .pasidCheckHWPT:
            try iommuCall { () throws(IOMMUFDError) in try pasidCheck(id, pasid: cmd.u32(16), hwpt: cmd.u32(20)) }
        case .checkIOTLB, .triggerIOPF, .triggerVEvent, .dmabufGet, .dmabufRevoke:
            throw VFIOError(
                .notSupported, rule: .IOMMUFD_819,
                "\(self) TEST_CMD op \(op.rawValue) (\(op)): nested HWPTs, fault queues, vIOMMUs and dma-bufs are not modelled by the simulation")
        }
        return 0
    }

    /// `iommufd_access_get(fd)`: the access file behind `fd` in this process, `EBADFD` for any
    /// other fd.
    private func testAccess(_ fd: UInt32, _ what: String) throws(VFIOError) -> IOMMUFDTestAccess {
        guard case .testAccess(let access) = VFIOFileTable.shared.file(Int32(bitPattern: fd)) else {
            throw VFIOError(.fileDescriptorInBadState, rule: .IOMMUFD_815, "\(self) \(what): fd \(Int32(bitPattern: fd)) is not an [iommufd_test_staccess] file")
        }
        return access
    }

    /// `CREATE_ACCESS { out_access_fd @16, flags @20 }` (IOMMUFD-814): the access, its fd written
    /// back; a failed answer closes both again.
    private func createAccess(_ cmd: inout UAPIStruct, ioas: UInt32, respond: (UAPIStruct) throws(VFIOError) -> Void) throws(VFIOError) {
        let flags = cmd.u32(20)
        let access = try iommuCall { () throws(IOMMUFDError) in try createAccess(ioas: ioas, flags: flags) }
        let fd: Int32
        do throws(VFIOError) {
            fd = try VFIOFileTable.shared.insert(.testAccess(access))
        } catch {
            access.close()
            throw VFIOError(.noMemory, rule: .IOMMUFD_814, "\(self) CREATE_ACCESS: \(error.message)")
        }
        cmd.set(UInt32(bitPattern: fd), at: 16)
        do throws(VFIOError) { try respond(cmd) } catch {
            _ = try? VFIOFileTable.shared.remove(fd)
            access.close()
            throw error
        }
    }

    /// `ACCESS_PAGES { flags @16, out_access_pages_id @20, iova @24, length @32, uptr @40 }`
    /// (IOMMUFD-815): the length and flag checks come before the fd lookup.
    private func accessPages(_ cmd: inout UAPIStruct, fd: UInt32, respond: (UAPIStruct) throws(VFIOError) -> Void) throws(VFIOError) {
        let (flags, iova, length, uptr) = (cmd.u32(16), cmd.u64(24), cmd.u64(32), cmd.u64(40))
        guard length <= IOMMUFDTestAccess.maximumLength else {
            throw VFIOError(.noMemory, rule: .IOMMUFD_815, "\(self) ACCESS_PAGES: length 0x\(String(length, radix: 16)) is over 16 MiB")
        }
        guard flags & ~(IOMMUFDTestAccess.pinWrite | IOMMUFDTestAccess.syzkaller) == 0 else {
            throw VFIOError(.notSupported, rule: .IOMMUFD_815, "\(self) ACCESS_PAGES: unknown flags 0x\(String(flags, radix: 16))")
        }
        let access = try testAccess(fd, "ACCESS_PAGES")
        let item = try iommuCall { () throws(IOMMUFDError) in try access.pinPages(iova: iova, length: length, flags: flags, uptr: uptr) }
        cmd.set(item, at: 20)
        do throws(VFIOError) { try respond(cmd) } catch {
            try? access.unpinPages(item: item)
            throw error
        }
    }

    /// `ACCESS_RW { iova @16, length @24, uptr @32, flags @40 }` (IOMMUFD-816): a write copies the
    /// user buffer in first (`EFAULT`), then into the pages behind the IOVAs; a read copies them
    /// out to it. Every copy stops with `EFAULT` where memory is gone.
    private func accessRW(_ cmd: UAPIStruct, fd: UInt32) throws(VFIOError) {
        let (iova, length, flags) = (cmd.u64(16), cmd.u64(24), cmd.u32(40))
        let known = IOMMUFDTestAccess.rwWrite | IOMMUFDTestAccess.rwSlowPath | IOMMUFDTestAccess.syzkaller
        guard length <= IOMMUFDTestAccess.maximumLength else {
            throw VFIOError(.noMemory, rule: .IOMMUFD_816, "\(self) ACCESS_RW: length 0x\(String(length, radix: 16)) is over 16 MiB")
        }
        guard flags & ~known == 0 else { throw VFIOError(.notSupported, rule: .IOMMUFD_816, "\(self) ACCESS_RW: unknown flags 0x\(String(flags, radix: 16))") }
        let access = try testAccess(fd, "ACCESS_RW")
        let user = UserPointer(cmd.u64(32), rule: .IOMMUFD_816, object: self, ioctl: "ACCESS_RW")
        let write = flags & IOMMUFDTestAccess.rwWrite != 0
        var data = write ? try user.copyIn(Int(length)).bytes : [UInt8](repeating: 0, count: Int(length))
        let segments = try iommuCall { () throws(IOMMUFDError) in try access.segments(iova: iova, length: length, write: write) }
        var offset = 0
        for segment in segments {
            let count = Int(segment.length)
            let failed = data.withUnsafeMutableBytes { buffer -> Int32 in
                let local = buffer.baseAddress! + offset
                let pages = UnsafeMutableRawPointer(bitPattern: UInt(segment.address))
                return write ? vfiokit_user_copy(pages, local, count) : vfiokit_user_copy(local, pages, count)
            }
            guard failed == 0 else {
                throw VFIOError(.badAddress, rule: .IOMMUFD_816, "\(self) ACCESS_RW: the pages at 0x\(String(segment.address, radix: 16)) behind the IOVAs are not mapped \(write ? "writable" : "readable")")
            }
            offset += count
        }
        if !write { try user.copyOut(data) }
    }
}
