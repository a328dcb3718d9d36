import IOMMUFD
import KernelRules
import SystemPackage
import VFIO

/// Dirty tracking with the raw structs (§5.2), in a kernel with `CONFIG_IOMMUFD_TEST`, whose mock
/// IOMMU is the only one with dirty ops; without it these commands stay `EOPNOTSUPP` (the
/// machine's IOMMUs track nothing). And the selftest's `IOMMU_TEST_OP_DIRTY`.
extension IOMMUFDContext {
    /// `struct iommu_hwpt_set_dirty_tracking { size, flags, hwpt_id, __reserved }` (IOMMUFD-511):
    /// `EOPNOTSUPP` for flags other than ENABLE; `__reserved` is not checked.
    func setDirtyTracking(_ cmd: UAPIStruct) throws(VFIOError) {
        let flags = cmd.u32(4)
        guard flags & ~1 == 0 else {
            throw VFIOError(.notSupported, rule: .IOMMUFD_511, "\(self) HWPT_SET_DIRTY_TRACKING: unknown flags 0x\(String(flags & ~1, radix: 16))")
        }
        try iommuCall { () throws(IOMMUFDError) in try setDirtyTracking(hwpt: cmd.u32(8), enabled: flags & 1 != 0) }
    }

    /// `struct iommu_hwpt_get_dirty_bitmap { size, hwpt_id, flags, __reserved, iova, length,
    /// page_size, data }` (IOMMUFD-512, -513): the dirty pages' bits are set in the user's `u64`
    /// array at `data` — only set, never cleared — read, changed and written back byte by byte.
    func getDirtyBitmap(_ cmd: UAPIStruct) throws(VFIOError) {
        let flags = cmd.u32(8)
        guard flags & ~1 == 0, cmd.u32(12) == 0 else {
            throw VFIOError(.notSupported, rule: .IOMMUFD_512, "\(self) HWPT_GET_DIRTY_BITMAP: unknown flags 0x\(String(flags & ~1, radix: 16)) or __reserved not 0")
        }
        let bits = try iommuCall { () throws(IOMMUFDError) in
            try readDirty(hwpt: cmd.u32(4), iova: cmd.u64(16), length: cmd.u64(24), pageSize: cmd.u64(32), clear: flags & 1 == 0)
        }
        // Runs of neighbouring bytes, each read, changed and written back once: only the bytes
        // holding dirty bits are touched, however far apart they lie.
        let data = UserPointer(cmd.u64(40), rule: .IOMMUFD_513, object: self, ioctl: "HWPT_GET_DIRTY_BITMAP")
        var run: (first: UInt64, bits: [UInt64]) = (0, [])
        for bit in bits.sorted() + [.max] {
            if !run.bits.isEmpty, bit == .max || bit / 8 > run.bits.last! / 8 + 1 {
                let at = data.advanced(by: Int(truncatingIfNeeded: run.first))
                var bytes = try at.copyIn(Int(run.bits.last! / 8 - run.first) + 1).bytes
                for set in run.bits { bytes[Int(set / 8 - run.first)] |= 1 << UInt8(set % 8) }
                try at.copyOut(bytes)
                run = (0, [])
            }
            guard bit != .max else { break }
            if run.bits.isEmpty { run.first = bit / 8 }
            run.bits.append(bit)
        }
    }

    /// `DIRTY { flags @16, iova @24, length @32, page_size @40, uptr @48, out_nr_dirty @56 }`
    /// (IOMMUFD-818): the user bitmap read once its bounds are checked (`EFAULT`).
    func dirty(_ cmd: inout UAPIStruct, hwpt: UInt32, respond: (UAPIStruct) throws(VFIOError) -> Void) throws(VFIOError) {
        let (iova, length, pageSize, uptr) = (cmd.u64(24), cmd.u64(32), cmd.u64(40), cmd.u64(48))
        let bitmap = UserPointer(uptr, rule: .IOMMUFD_818, object: self, ioctl: "TEST_CMD DIRTY")
        let count = try iommuCall { () throws(IOMMUFDError) in
            try markDirty(hwpt: hwpt, iova: iova, length: length, pageSize: pageSize, bitmap: uptr) { (bits) throws(IOMMUFDError) -> [UInt8] in
                do throws(VFIOError) {
                    return try bitmap.copyIn(Int((bits + 7) / 8)).bytes
                } catch {
                    throw IOMMUFDError(error)
                }
            }
        }
        cmd.set(count, at: 56)
        try respond(cmd)
    }
}
