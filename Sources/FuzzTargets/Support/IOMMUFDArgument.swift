import Glibc
import Syscalls
import VFIO

/// The argument of one fuzzed iommufd ioctl (`<linux/iommufd.h>`) or device-cdev ioctl: the struct
/// laid out for its number with `size` exact, short, long, zero or raw, object IDs small or raw,
/// flags known or raw, IOVAs, lengths and user addresses from the session; the arrays and buffers
/// a struct points at (allowed IOVA ranges, the IOVA_RANGES output, GET_HW_INFO data, a VF token)
/// in the guarded bitmap region, or hostile. Placed as `UAPIPlacement` says.
enum IOMMUFDArgument {
    static func build(
        _ request: UInt, on kind: UAPISession.FileKind?, _ session: UAPISession, _ input: inout FuzzInput
    ) -> (argument: UInt, hostile: Bool) {
        let cdevRequests = [IOMMUFDRequest.deviceBindIOMMUFD, IOMMUFDRequest.deviceAttachIOMMUFDPT, IOMMUFDRequest.deviceDetachIOMMUFDPT]
        if request & 0xff < 0x80, !cdevRequests.contains(request) {
            // Below iommufd's numbers: VFIO's ioctls (a container's on an iommufd).
            return UAPIArgument.build(request, on: kind, session, &input)
        }
        let placement = UAPIPlacement(&input)
        if let pointer = placement.pointer { return (pointer, true) }
        var fields = UAPIFields()
        var hostile = false
        func size(_ exact: UInt32) -> UInt32 { UAPIArgument.argsz(exact, &input) }
        func id() -> UInt32 { input.u8() % 8 == 0 ? input.u32() : UInt32(input.u8() % 8) }
        func flags(_ known: [UInt32]) -> UInt32 { input.u8() % 8 == 0 ? input.u32() : input.pick(known) }
        func buffer(_ bytes: Int) -> UInt64 {
            switch input.u8() % 8 {
            case 0:
                hostile = true
                return input.pick([0, 0x1000, UInt64(UserArgumentPage.shared.inaccessible)])
            default: return UserArgumentPage.shared.bitmapData(size: UInt64(bytes))
            }
        }
        switch request & 0xff {
        case 0x80:  // DESTROY { size, id }
            fields.header(argsz: size(8), flags: id(), minimum: 8)
        case 0x81:  // IOAS_ALLOC { size, flags, out_ioas_id }
            fields.header(argsz: size(12), flags: flags([0, 0, 1]), minimum: 12)
        case 0x82:  // IOAS_ALLOW_IOVAS { size, ioas_id, num_iovas, __reserved, allowed_iovas }
            fields.header(argsz: size(24), flags: id(), minimum: 24)
            let count = input.u8() % 8 == 0 ? input.u32() : UInt32(input.u8() % 4)
            fields.u32(count, at: 8)
            fields.u32(input.u8() % 16 == 0 ? 1 : 0, at: 12)
            let ranges = buffer(16 * Int(min(count, 16)))
            if !hostile, let pointer = UnsafeMutableRawPointer(bitPattern: UInt(ranges)) {
                for index in 0..<Int(min(count, 16)) {
                    let start = session.iova(&input)
                    pointer.storeBytes(of: start.littleEndian, toByteOffset: 16 * index, as: UInt64.self)
                    pointer.storeBytes(of: (start &+ session.size(&input) &- 1).littleEndian, toByteOffset: 16 * index + 8, as: UInt64.self)
                }
                // More ranges than were written run into the guard page: the copy faults.
                hostile = count > 16
            }
            fields.u64(ranges, at: 16)
        case 0x83:  // IOAS_COPY { size, flags, dst_ioas_id, src_ioas_id, length, dst_iova, src_iova }
            fields.header(argsz: size(40), flags: flags([7, 6, 5, 4, 1, 0]), minimum: 40)
            fields.u32(id(), at: 8)
            fields.u32(id(), at: 12)
            fields.u64(session.size(&input), at: 16)
            fields.u64(session.iova(&input), at: 24)
            fields.u64(session.iova(&input), at: 32)
        case 0x84:  // IOAS_IOVA_RANGES { size, ioas_id, num_iovas, __reserved, allowed_iovas, out_iova_alignment }
            fields.header(argsz: size(32), flags: id(), minimum: 32)
            let room = input.u8() % 8 == 0 ? input.u32() : UInt32(input.u8() % 4)
            fields.u32(room, at: 8)
            fields.u64(buffer(16 * Int(min(room, 64))), at: 16)
            hostile = hostile || room > 64
        case 0x85:  // IOAS_MAP { size, flags, ioas_id, __reserved, user_va, length, iova }
            fields.header(argsz: size(40), flags: flags([7, 6, 5, 4, 3, 2, 1, 0]), minimum: 40)
            fields.u32(id(), at: 8)
            fields.u32(input.u8() % 16 == 0 ? 1 : 0, at: 12)
            fields.u64(session.userAddress(&input), at: 16)
            fields.u64(session.size(&input), at: 24)
            fields.u64(session.iova(&input), at: 32)
        case 0x86:  // IOAS_UNMAP { size, ioas_id, iova, length }
            fields.header(argsz: size(24), flags: id(), minimum: 24)
            let all = input.u8() % 4 == 0
            fields.u64(all ? 0 : session.iova(&input), at: 8)
            fields.u64(all ? .max : session.size(&input), at: 16)
        case 0x87:  // OPTION { size, option_id, u16 op, u16 __reserved, object_id, val64 }
            fields.header(argsz: size(24), flags: input.u8() % 8 == 0 ? input.u32() : UInt32(input.u8() % 3), minimum: 24)
            fields.u32(input.u8() % 8 == 0 ? input.u32() : UInt32(input.u8() % 3), at: 8)
            fields.u32(id(), at: 12)
            fields.u64(input.u8() % 8 == 0 ? input.u64() : UInt64(input.u8() % 3), at: 16)
        case 0x88:  // VFIO_IOAS { size, ioas_id, u16 op, u16 __reserved }
            fields.header(argsz: size(12), flags: id(), minimum: 12)
            fields.u32(input.u8() % 8 == 0 ? input.u32() : UInt32(input.u8() % 4), at: 8)
        case 0x89:  // HWPT_ALLOC { size, flags, dev_id, pt_id, out_hwpt_id, __reserved, data_type, data_len, data_uptr, fault_id, __reserved2 }
            fields.header(argsz: size(48), flags: flags([0, 0, 1, 2, 4, 8]), minimum: 24)
            fields.u32(id(), at: 8)
            fields.u32(id(), at: 12)
            if input.u8() % 8 == 0 {
                fields.u32(input.u32(), at: 24)
                fields.u32(input.u32(), at: 28)
            }
        case 0x8a:  // GET_HW_INFO { size, flags, dev_id, data_len, data_uptr, u32 type, u8 pasid, u8 __reserved[3], capabilities }
            fields.header(argsz: size(40), flags: flags([0, 0, 1]), minimum: 32)
            fields.u32(id(), at: 8)
            let length = input.u8() % 8 == 0 ? UInt32(input.u16()) : input.pick([0, 8, 24, 64] as [UInt32])
            fields.u32(length, at: 12)
            fields.u64(buffer(Int(length)), at: 16)
            fields.u32(input.u8() % 8 == 0 ? input.u32() : 0, at: 24)
        default:
            break
        }
        if request == IOMMUFDRequest.deviceBindIOMMUFD {
            // { argsz, flags, s32 iommufd, out_devid, u64 token_uuid_ptr }
            fields.header(argsz: size(24), flags: flags([0, 0, 1]), minimum: 16)
            fields.u32(UInt32(bitPattern: session.fd(&input)), at: 8)
            fields.u64(buffer(16), at: 16)
        } else if request == IOMMUFDRequest.deviceAttachIOMMUFDPT {
            // { argsz, flags, pt_id, pasid }
            fields.header(argsz: size(16), flags: flags([0, 0, 1]), minimum: 12)
            fields.u32(id(), at: 8)
        } else if request == IOMMUFDRequest.deviceDetachIOMMUFDPT {
            // { argsz, flags, pasid }
            fields.header(argsz: size(12), flags: flags([0, 0, 1]), minimum: 8)
        } else if fields.bytes.isEmpty {
            // A command the simulation does not model, or a hole: raw bytes.
            fields.bytes = Array(input.bytes(Int(input.u8() % 64)))
            fields.minimum = fields.bytes.count
            // Its size field is whatever the bytes say: the struct may run into the guard page.
            hostile = true
        }
        // A size past the argument region reads (non-zero checks) into the guard page.
        hostile = hostile || Int(fields.argsz) > UserArgumentPage.capacity
        return (UserArgumentPage.shared.place(fields.bytes, extent: fields.extent, access: placement.access), placement.hostile || hostile)
    }
}
