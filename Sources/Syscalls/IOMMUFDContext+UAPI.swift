import IOMMU
import IOMMUFD
import KernelRules
import SystemPackage
import UserMemory
import VFIO

/// `/dev/iommu`'s ioctls with raw `<linux/iommufd.h>` structs (`iommufd_fops_ioctl`, IOMMUFD-102):
/// numbers below 0x80 go to the VFIO compatibility ioctls; the others are sized by their
/// struct's `size` field — too small `EINVAL`, non-zero bytes past what the kernel knows `E2BIG`,
/// a shorter struct zero-extended — and answered with `min(size, sizeof)` bytes.
extension IOMMUFDContext: IOCTLTarget {
    public func ioctlThrowing(request: UInt, argument: UInt) throws(VFIOError) -> Int32 {
        let nr = request & 0xff
        let table = IOMMUFDRequest.table(selftest: selftest)
        guard nr >= 0x80, Int(nr - 0x80) < table.count else { return try vfioIoctl(request: request, argument: argument) }
        let entry = table[Int(nr - 0x80)]
        let user = UserPointer(argument, rule: .IOMMUFD_102, object: self, ioctl: entry?.name ?? "ioctl 0x\(String(nr, radix: 16))")
        let userSize = Int(try user.copyIn(4).u32(0))
        guard let command = entry else {
            throw VFIOError(.inappropriateIOCTLForDevice, rule: .IOMMUFD_102, "\(self): ioctl number 0x\(String(nr, radix: 16)) is a hole in iommufd's table")
        }
        guard request == IOMMUFDRequest.io(nr) else {
            throw VFIOError(.inappropriateIOCTLForDevice, rule: .IOMMUFD_102, "\(self): ioctl 0x\(String(request, radix: 16)) is not \(command.name)'s number 0x\(String(IOMMUFDRequest.io(nr), radix: 16))")
        }
        guard userSize >= command.minimum else {
            throw VFIOError(.invalidArgument, rule: .IOMMUFD_102, "\(self) \(command.name): size \(userSize) < \(command.minimum)")
        }
        var cmd = try Self.copyStruct(user, userSize: userSize, kernelSize: command.size, what: command.name)
        let respond = { (cmd: UAPIStruct) throws(VFIOError) in try user.citing(.IOMMUFD_104).copyOut(cmd.prefix(min(userSize, command.size))) }
        switch request {
        case IOMMUFDRequest.destroy:
            try iommuCall { () throws(IOMMUFDError) in try destroy(cmd.u32(4)) }
        case IOMMUFDRequest.ioasAlloc:
            guard cmd.u32(4) == 0 else { throw unsupported("IOAS_ALLOC: flags 0x\(String(cmd.u32(4), radix: 16))", .IOMMUFD_200) }
            let id = allocateIOAS()
            cmd.set(id, at: 8)
            do throws(VFIOError) { try respond(cmd) } catch {
                try? destroy(id)
                throw error
            }
        case IOMMUFDRequest.ioasAllowIOVAs:
            try allowIOVAs(cmd)
        case IOMMUFDRequest.ioasCopy:
            try ioasCopy(&cmd)
            try respond(cmd)
        case IOMMUFDRequest.ioasIOVARanges:
            try iovaRanges(&cmd, respond: respond)
        case IOMMUFDRequest.ioasMap:
            try ioasMap(&cmd)
            try respond(cmd)
        case IOMMUFDRequest.ioasUnmap:
            let unmapped = try iommuCall { () throws(IOMMUFDError) in try unmap(ioas: cmd.u32(4), iova: cmd.u64(8), length: cmd.u64(16)) }
            cmd.set(unmapped, at: 16)
            try respond(cmd)
        case IOMMUFDRequest.option:
            try option(&cmd)
            // Only val64 goes back (IOMMUFD-240).
            try user.advanced(by: 16, rule: .IOMMUFD_240).copyOut(Array(cmd.prefix(24).bytes[16..<24]))
        case IOMMUFDRequest.vfioIOAS:
            try vfioIOAS(&cmd)
            try respond(cmd)
        case IOMMUFDRequest.hwptAlloc:
            try hwptAlloc(&cmd)
            try respond(cmd)
        case IOMMUFDRequest.getHWInfo:
            try hwInfo(&cmd)
            try respond(cmd)
        case IOMMUFDRequest.testCommand:
            return try testCommand(&cmd, respond: respond)
        case IOMMUFDRequest.ioasMapFile where selftest:
            try ioasMapFile(&cmd)
            try respond(cmd)
        case IOMMUFDRequest.viommuAlloc where selftest:
            try viommuAlloc(cmd)
        case IOMMUFDRequest.vdeviceAlloc where selftest:
            throw VFIOError(.noSuchFileOrDirectory, rule: .IOMMUFD_505, "\(self) VDEVICE_ALLOC: viommu_id \(cmd.u32(8)) names no vIOMMU (vIOMMUs are not modelled)")
        case IOMMUFDRequest.hwptSetDirtyTracking where selftest:
            try setDirtyTracking(cmd)
        case IOMMUFDRequest.hwptGetDirtyBitmap where selftest:
            try getDirtyBitmap(cmd)
        default:
            throw unsupported("\(command.name): not modelled by the simulation (no dirty tracking, nesting, vIOMMU, fault queues, file or dmabuf maps)", .IOMMUFD_105)
        }
        return 0
    }

    private func unsupported(_ message: String, _ rule: RuleID) -> VFIOError {
        VFIOError(.notSupported, rule: rule, "\(self) \(message)")
    }

    /// `copy_struct_from_user` (IOMMUFD-102 step 5): `E2BIG` when bytes past `kernelSize` are not
    /// zero, `EFAULT` when any byte read faults; a short struct comes back zero-extended.
    static func copyStruct(_ user: UserPointer, userSize: Int, kernelSize: Int, what: String) throws(VFIOError) -> UAPIStruct {
        if userSize > kernelSize {
            var offset = kernelSize
            while offset < userSize {
                let chunk = min(4096, userSize - offset)
                let tail = try user.advanced(by: offset).copyIn(chunk)
                if tail.bytes.contains(where: { $0 != 0 }) {
                    throw VFIOError(.argListTooLong, rule: .IOMMUFD_102, "\(user.object) \(what): size \(userSize) with non-zero bytes past the \(kernelSize) this kernel knows")
                }
                offset += chunk
            }
        }
        return try user.copyIn(min(userSize, kernelSize)).prefix(kernelSize)
    }

    /// `struct iommu_ioas_allow_iovas { size, ioas_id, num_iovas, __reserved, allowed_iovas }`
    /// (IOMMUFD-203): the ranges copied in one at a time, as `iommufd_ioas_load_iovas`.
    private func allowIOVAs(_ cmd: UAPIStruct) throws(VFIOError) {
        guard cmd.u32(12) == 0 else { throw unsupported("IOAS_ALLOW_IOVAS: __reserved is not 0", .IOMMUFD_203) }
        let ioas = cmd.u32(4)
        _ = try iommuCall { () throws(IOMMUFDError) in try iovaRanges(ioas: ioas) }
        let ranges = UserPointer(cmd.u64(16), rule: .IOMMUFD_203, object: self, ioctl: "IOAS_ALLOW_IOVAS")
        var list: [IOVARange] = []
        for index in 0..<Int(cmd.u32(8)) {
            let entry = try ranges.advanced(by: 16 * index).copyIn(16)
            list.append(IOVARange(start: entry.u64(0), last: entry.u64(8)))
            // iommufd_ioas_load_iovas checks each entry as it copies it: EINVAL before a later fault.
            try iommuCall { () throws(IOMMUFDError) in try Self.checkAllowedIOVA(list, at: index) }
        }
        try iommuCall { () throws(IOMMUFDError) in try allowIOVAs(ioas: ioas, list) }
    }

    /// The access of `IOMMU_IOAS_MAP_*` flags, `EOPNOTSUPP` for unknown ones.
    private func mapAccess(_ flags: UInt32, _ what: String, rule: RuleID) throws(VFIOError) -> IOAccess {
        let known = IOMMUFDRequest.mapFixedIOVA | IOMMUFDRequest.mapWriteable | IOMMUFDRequest.mapReadable
        guard flags & ~known == 0 else { throw unsupported("\(what): unknown flags 0x\(String(flags & ~known, radix: 16))", rule) }
        var access: IOAccess = []
        if flags & IOMMUFDRequest.mapReadable != 0 { access.insert(.read) }
        if flags & IOMMUFDRequest.mapWriteable != 0 { access.insert(.write) }
        return access
    }

    /// `struct iommu_ioas_map { size, flags, ioas_id, __reserved, user_va, length, iova }` (IOMMUFD-210).
    private func ioasMap(_ cmd: inout UAPIStruct) throws(VFIOError) {
        let flags = cmd.u32(4)
        let access = try mapAccess(flags, "IOAS_MAP", rule: .IOMMUFD_210)
        guard cmd.u32(12) == 0 else { throw unsupported("IOAS_MAP: __reserved is not 0", .IOMMUFD_210) }
        let fixed = flags & IOMMUFDRequest.mapFixedIOVA != 0
        let requested = cmd.u64(32)
        if !fixed, requested == .max { throw VFIOError(.overflow, rule: .IOMMUFD_210, "\(self) IOAS_MAP: iova is ULONG_MAX") }
        let (userVA, length, ioas) = (cmd.u64(16), cmd.u64(24), cmd.u32(8))
        let iova = try iommuCall { () throws(IOMMUFDError) in
            try map(ioas: ioas, userVA: userVA, length: length, iova: fixed ? requested : nil, access: access)
        }
        cmd.set(iova, at: 32)
    }

    /// `struct iommu_ioas_map_file { size, flags, ioas_id, s32 fd, start, length, iova }`
    /// (IOMMUFD-220): the IOVA is checked against ULONG_MAX even when not fixed.
    private func ioasMapFile(_ cmd: inout UAPIStruct) throws(VFIOError) {
        let flags = cmd.u32(4)
        let access = try mapAccess(flags, "IOAS_MAP_FILE", rule: .IOMMUFD_220)
        let fixed = flags & IOMMUFDRequest.mapFixedIOVA != 0
        let requested = cmd.u64(32)
        if requested == .max { throw VFIOError(.overflow, rule: .IOMMUFD_220, "\(self) IOAS_MAP_FILE: iova is ULONG_MAX") }
        let (ioas, fd, start, length) = (cmd.u32(8), Int32(bitPattern: cmd.u32(12)), cmd.u64(16), cmd.u64(24))
        let iova = try iommuCall { () throws(IOMMUFDError) in
            try mapFile(ioas: ioas, fd: fd, start: start, length: length, iova: fixed ? requested : nil, access: access)
        }
        cmd.set(iova, at: 32)
    }

    /// `struct iommu_viommu_alloc { size, flags, type, dev_id, hwpt_id, … }` (IOMMUFD-505), with the
    /// selftest mock: `EOPNOTSUPP` for flags or type DEFAULT, `ENOENT` for no device, then
    /// `EOPNOTSUPP` — vIOMMU objects are not modelled.
    private func viommuAlloc(_ cmd: UAPIStruct) throws(VFIOError) {
        guard cmd.u32(4) == 0, cmd.u32(8) != 0 else { throw unsupported("VIOMMU_ALLOC: flags 0x\(String(cmd.u32(4), radix: 16)) or type DEFAULT", .IOMMUFD_505) }
        let device = cmd.u32(12)
        _ = try iommuCall { () throws(IOMMUFDError) in try boundDevice(device) }
        throw unsupported("VIOMMU_ALLOC for device \(device): vIOMMU, vDEVICE, vEVENTQ and HW queue objects are not modelled", .IOMMUFD_505)
    }

    /// `struct iommu_ioas_copy { size, flags, dst_ioas_id, src_ioas_id, length, dst_iova, src_iova }`
    /// (IOMMUFD-222).
    private func ioasCopy(_ cmd: inout UAPIStruct) throws(VFIOError) {
        let flags = cmd.u32(4)
        let access = try mapAccess(flags, "IOAS_COPY", rule: .IOMMUFD_222)
        let fixed = flags & IOMMUFDRequest.mapFixedIOVA != 0
        let requested = cmd.u64(24)
        if !fixed, requested == .max { throw VFIOError(.overflow, rule: .IOMMUFD_222, "\(self) IOAS_COPY: dst_iova is ULONG_MAX") }
        let (destination, source, length, sourceIOVA) = (cmd.u32(8), cmd.u32(12), cmd.u64(16), cmd.u64(32))
        let iova = try iommuCall { () throws(IOMMUFDError) in
            try copy(from: source, sourceIOVA: sourceIOVA, to: destination, destinationIOVA: fixed ? requested : nil, length: length, access: access)
        }
        cmd.set(iova, at: 24)
    }

    /// `struct iommu_ioas_iova_ranges { size, ioas_id, num_iovas, __reserved, allowed_iovas,
    /// out_iova_alignment }` (IOMMUFD-201): the entries that fit written, then the struct with the
    /// full count and alignment — and `EMSGSIZE` after it when they did not all fit.
    private func iovaRanges(_ cmd: inout UAPIStruct, respond: (UAPIStruct) throws(VFIOError) -> Void) throws(VFIOError) {
        guard cmd.u32(12) == 0 else { throw unsupported("IOAS_IOVA_RANGES: __reserved is not 0", .IOMMUFD_201) }
        let ioas = cmd.u32(4)
        let (ranges, alignment) = try iommuCall { () throws(IOMMUFDError) in try iovaRanges(ioas: ioas) }
        let room = Int(cmd.u32(8))
        let out = UserPointer(cmd.u64(16), rule: .IOMMUFD_201, object: self, ioctl: "IOAS_IOVA_RANGES")
        for (index, range) in ranges.enumerated() where index < room {
            var entry = UAPIStruct([])
            entry.set(range.start, at: 0)
            entry.set(range.last, at: 8)
            try out.advanced(by: 16 * index).copyOut(entry)
        }
        cmd.set(UInt32(ranges.count), at: 8)
        cmd.set(alignment, at: 24)
        try respond(cmd)
        if ranges.count > room {
            throw VFIOError(.messageTooLong, rule: .IOMMUFD_201, "\(self) IOAS_IOVA_RANGES: \(ranges.count) ranges, room for \(room); num_iovas now says how many")
        }
    }

    /// `struct iommu_option { size, option_id, u16 op, u16 __reserved, object_id, val64 }`
    /// (IOMMUFD-240..242).
    private func option(_ cmd: inout UAPIStruct) throws(VFIOError) {
        let (optionID, op, reserved, object, value) = (cmd.u32(4), UInt16(truncatingIfNeeded: cmd.u32(8)), cmd.u32(8) >> 16, cmd.u32(12), cmd.u64(16))
        guard reserved == 0 else { throw unsupported("OPTION: __reserved is not 0", .IOMMUFD_240) }
        switch optionID {
        case 0:  // IOMMU_OPTION_RLIMIT_MODE
            guard object == 0 else { throw unsupported("OPTION RLIMIT_MODE: object_id \(object) (the option is context-wide)", .IOMMUFD_241) }
            switch op {
            case 1: cmd.set(UInt64(accountMode == .mm ? 1 : 0), at: 16)
            case 0:
                try iommuCall { () throws(IOMMUFDError) in try setAccountMode(value: value) }
            default: throw unsupported("OPTION RLIMIT_MODE: op \(op)", .IOMMUFD_241)
            }
        case 1:  // IOMMU_OPTION_HUGE_PAGES
            let enabled = try iommuCall { () throws(IOMMUFDError) in try hugePages(ioas: object) }
            switch op {
            case 1: cmd.set(UInt64(enabled ? 1 : 0), at: 16)
            case 0:
                guard value <= 1 else { throw VFIOError(.invalidArgument, rule: .IOMMUFD_242, "\(self) OPTION HUGE_PAGES SET \(value): 0 or 1") }
                try iommuCall { () throws(IOMMUFDError) in try setHugePages(ioas: object, value == 1) }
            default: throw unsupported("OPTION HUGE_PAGES: op \(op)", .IOMMUFD_242)
            }
        default:
            throw unsupported("OPTION: no option \(optionID)", .IOMMUFD_240)
        }
    }

    /// `struct iommu_vfio_ioas { size, ioas_id, u16 op, u16 __reserved }` (IOMMUFD-702).
    private func vfioIOAS(_ cmd: inout UAPIStruct) throws(VFIOError) {
        guard cmd.u32(8) >> 16 == 0 else { throw unsupported("VFIO_IOAS: __reserved is not 0", .IOMMUFD_702) }
        switch cmd.u32(8) & 0xffff {
        case 0: cmd.set(try iommuCall { () throws(IOMMUFDError) in try compatIOAS() }, at: 4)
        case 1:
            let id = cmd.u32(4)
            try iommuCall { () throws(IOMMUFDError) in try setCompatIOAS(id) }
        case 2: clearCompatIOAS()
        default: throw unsupported("VFIO_IOAS: op \(cmd.u32(8) & 0xffff)", .IOMMUFD_702)
        }
    }

    /// `struct iommu_hwpt_alloc { size, flags, dev_id, pt_id, out_hwpt_id, __reserved, data_type,
    /// data_len, data_uptr, fault_id, __reserved2 }` (IOMMUFD-501, -502): a paging HWPT; the
    /// machine's IOMMUs take no flags and no driver data, the selftest's mock reads its
    /// `struct iommu_hwpt_selftest` (`copy_struct_from_user`: `EFAULT`, `E2BIG`) when it gets there.
    private func hwptAlloc(_ cmd: inout UAPIStruct) throws(VFIOError) {
        guard cmd.u32(20) == 0 else { throw unsupported("HWPT_ALLOC: __reserved is not 0", .IOMMUFD_501) }
        let (flags, dataType, dataLength) = (cmd.u32(4), cmd.u32(24), cmd.u32(28))
        guard (dataType == 0) == (dataLength == 0) else {
            throw VFIOError(.invalidArgument, rule: .IOMMUFD_501, "\(self) HWPT_ALLOC: data_type \(dataType) with data_len \(dataLength)")
        }
        let (device, pt) = (cmd.u32(8), cmd.u32(12))
        let data = UserPointer(cmd.u64(32), rule: .IOMMUFD_804, object: self, ioctl: "HWPT_ALLOC data")
        let userData = dataLength == 0 || !selftest ? nil : HWPTUserData(type: dataType, length: dataLength) { () throws(IOMMUFDError) -> [UInt8] in
            do throws(VFIOError) {
                return try Self.copyStruct(data, userSize: Int(dataLength), kernelSize: 8, what: "HWPT_ALLOC data").bytes
            } catch {
                throw IOMMUFDError(error.errno, rule: error.rule, error.message)
            }
        }
        cmd.set(
            try iommuCall { () throws(IOMMUFDError) in
                try allocateHWPT(device: device, ioas: pt, flags: flags, driverData: dataType != 0 && userData == nil, userData: userData)
            }, at: 16)
    }

    /// `struct iommu_hw_info` (IOMMUFD-630..632): the machine's IOMMUs report no driver data
    /// (`IOMMU_HW_INFO_TYPE_NONE`, `data_len` 0, the caller's buffer zeroed) and no capabilities;
    /// a mock device reports `struct iommu_test_hw_info` (`IOMMU_HW_INFO_TYPE_SELFTEST`), its dirty
    /// tracking, no ATS and its PASID width.
    private func hwInfo(_ cmd: inout UAPIStruct) throws(VFIOError) {
        let flags = cmd.u32(4)
        guard flags & ~1 == 0 else { throw unsupported("GET_HW_INFO: unknown flags 0x\(String(flags & ~1, radix: 16))", .IOMMUFD_630) }
        guard cmd.u32(28) >> 8 == 0 else { throw unsupported("GET_HW_INFO: __reserved is not 0", .IOMMUFD_630) }
        let requestedType = flags & 1 != 0 ? cmd.u32(24) : 0
        let id = cmd.u32(8)
        _ = try iommuCall { () throws(IOMMUFDError) in try boundDevice(id) }
        let mock = try iommuCall { () throws(IOMMUFDError) in try mockDevice(id, rule: .IOMMUFD_632) }
        var info: [UInt8] = []
        var (type, capabilities, pasidLog2): (UInt32, UInt64, UInt8) = (0, 0, 0)
        if let mock {
            // mock_domain_hw_info: DEFAULT or SELFTEST; struct iommu_test_hw_info { flags 0, test_reg }.
            guard requestedType == 0 || requestedType == Self.hwInfoTypeSelftest else {
                throw unsupported("GET_HW_INFO \(mock): data type 0x\(String(requestedType, radix: 16)) is not the mock's (SELFTEST 0xfeedbeef)", .IOMMUFD_632)
            }
            var data = UAPIStruct([UInt8](repeating: 0, count: 8))
            data.set(Self.hwInfoSelftestRegister, at: 4)
            info = data.bytes
            type = Self.hwInfoTypeSelftest
            capabilities = (mock.tracksDirty ? 1 : 0) | 1 << 3  // DIRTY_TRACKING, PCI_ATS_NOT_SUPPORTED
            pasidLog2 = mock.maxPASIDLog2
        } else if requestedType != 0 {
            throw unsupported("GET_HW_INFO: data type \(requestedType) is not the device's IOMMU's (it reports none)", .IOMMUFD_630)
        }
        let length = Int(cmd.u32(12))
        let data = UserPointer(cmd.u64(16), rule: .IOMMUFD_630, object: self, ioctl: "GET_HW_INFO")
        let copied = min(length, info.count)
        if copied > 0 { try data.copyOut(Array(info[..<copied])) }
        for offset in stride(from: copied, to: length, by: 4096) {
            try data.advanced(by: offset).copyOut([UInt8](repeating: 0, count: min(4096, length - offset)))
        }
        cmd.set(UInt32(info.count), at: 12)
        cmd.set(type, at: 24)
        cmd.set(UInt32(pasidLog2), at: 28)
        cmd.set(capabilities, at: 32)
    }

    /// `IOMMU_HW_INFO_TYPE_SELFTEST` and `IOMMU_HW_INFO_SELFTEST_REGVAL`.
    static let hwInfoTypeSelftest: UInt32 = 0xfeed_beef
    static let hwInfoSelftestRegister: UInt32 = 0xdead_beef
}
