import PCIBus
import Syscalls
import VFIO
/// The `unsigned long arg` of one fuzzed ioctl. Integer arguments (CHECK_EXTENSION, SET_IOMMU)
/// are extension numbers or raw; struct arguments are laid out as `<linux/vfio.h>` lays them out
/// for the request (and, where one number serves two requests, for the fd's kind), each field
/// drawn from the input — `argsz` exact, short, zero, long or raw; flags from the known bits or
/// raw; fds, user addresses, IOVAs and sizes from the session's selectors; trailing arrays of
/// eventfds, bools or group fds — then placed in guarded user memory. Sometimes the pointer is
/// hostile: null, a `PROT_NONE` page, an address never mapped, the kernel half, the struct on a
/// read-only page or cut short by a `PROT_NONE` page; so is a dirty bitmap's `data` sometimes.
/// Requests that take no argument get a raw value the facade must not touch.
enum UAPIArgument {
    private static let base = VFIORequest.getAPIVersion

    /// The argument, and whether any user memory it leads to is hostile: with none, the facade
    /// has no reason to fault.
    static func build(_ request: UInt, on kind: UAPISession.FileKind?, _ session: UAPISession, _ input: inout FuzzInput) -> (argument: UInt, hostile: Bool) {
        guard request >= base, request < base + 19 else { return (UInt(truncatingIfNeeded: input.u64()), false) }
        let number = request - base
        switch number {
        case 1, 2:  // CHECK_EXTENSION, SET_IOMMU: an extension ID.
            return (input.u8() % 4 == 0 ? UInt(input.u32()) : UInt(input.u8() % 12), false)
        case 0, 5, 11, 15:  // no argument
            return (UInt(truncatingIfNeeded: input.u64()), false)
        case 16, 18:  // DEVICE_IOEVENTFD, DEVICE_BIND_IOMMUFD: a struct read from any address, so a fault is due
            return (UInt(truncatingIfNeeded: input.u64()), true)
        default:
            break
        }
        let placement = UAPIPlacement(&input)
        if let pointer = placement.pointer { return (pointer, true) }
        var fields = UAPIFields()
        switch number {
        case 3:  // GROUP_GET_STATUS: { argsz, flags }
            fields.header(argsz: argsz(8, &input), flags: input.u32(), minimum: 8)
        case 4:  // GROUP_SET_CONTAINER: int32 container fd
            fields.u32(UInt32(bitPattern: session.fd(&input)), at: 0)
            fields.minimum = 4
        case 6:  // GROUP_GET_DEVICE_FD: a NUL-terminated name
            deviceName(&fields, session, &input)
        case 7:  // DEVICE_GET_INFO: { argsz, flags, num_regions, num_irqs }
            fields.header(argsz: argsz(16, &input), flags: input.u32(), minimum: 16)
        case 8:  // DEVICE_GET_REGION_INFO: { argsz, flags, index, cap_offset, size, offset }
            fields.header(argsz: argsz(32, &input), flags: input.u32(), minimum: 32)
            fields.u32(input.u8() % 8 == 0 ? input.u32() : UInt32(input.u8() % 10), at: 8)
        case 9:  // DEVICE_GET_IRQ_INFO: { argsz, flags, index, count }
            fields.header(argsz: argsz(16, &input), flags: input.u32(), minimum: 16)
            fields.u32(input.u8() % 8 == 0 ? input.u32() : UInt32(input.u8() % 6), at: 8)
        case 10:
            irqSet(&fields, session, &input)
        case 12 where kind == .device || (kind == nil && input.bool()):
            // DEVICE_GET_PCI_HOT_RESET_INFO: { argsz, flags, count, devices[] of 8 bytes }
            fields.header(argsz: argsz(12 + 8 * UInt32(input.u8() % 8), &input), flags: input.u32(), minimum: 12)
        case 12:  // IOMMU_GET_INFO: { argsz, flags, iova_pgsizes, cap_offset, pad } + capabilities
            fields.header(argsz: argsz(input.pick([16, 24, 128, 4096]), &input), flags: input.u32(), minimum: 16)
        case 13 where kind == .device || (kind == nil && input.bool()):
            hotReset(&fields, session, &input)
        case 13:  // IOMMU_MAP_DMA: { argsz, flags, vaddr, iova, size }
            fields.header(argsz: argsz(32, &input), flags: input.u8() % 8 == 0 ? input.u32() : input.pick([3, 1, 2, 0, 4, 7]), minimum: 32)
            fields.u64(session.userAddress(&input), at: 8)
            fields.u64(session.iova(&input), at: 16)
            fields.u64(session.size(&input), at: 24)
        case 14:  // IOMMU_UNMAP_DMA: { argsz, flags, iova, size } + struct vfio_bitmap
            let withBitmap = input.bool()
            fields.header(
                argsz: argsz(withBitmap ? 48 : 24, &input), flags: input.u8() % 8 == 0 ? input.u32() : input.pick([0, 1, 2, 4, 3, 6]),
                minimum: 24)
            fields.u64(session.iova(&input), at: 8)
            fields.u64(session.size(&input), at: 16)
            if withBitmap { bitmap(&fields, at: 24, &input) }
        default:  // 17, IOMMU_DIRTY_PAGES: { argsz, flags } + { iova, size, struct vfio_bitmap }
            let withBitmap = input.bool()
            fields.header(
                argsz: argsz(withBitmap ? 48 : 8, &input), flags: input.u8() % 8 == 0 ? input.u32() : input.pick([1, 2, 4, 0, 3]),
                minimum: 8)
            if withBitmap {
                fields.u64(session.iova(&input), at: 8)
                fields.u64(session.size(&input), at: 16)
                bitmap(&fields, at: 24, &input)
            }
        }
        return (UserArgumentPage.shared.place(fields.bytes, extent: fields.extent, access: placement.access), placement.hostile || fields.hostileBitmap)
    }

    /// `argsz`: the struct's size most often, else zero, one short, a little long, or raw.
    static func argsz(_ exact: UInt32, _ input: inout FuzzInput) -> UInt32 {
        switch input.u8() % 8 {
        case 0, 1, 2, 3: exact
        case 4: 0
        case 5: exact &- 1
        case 6: exact &+ UInt32(input.u8())
        default: input.u32()
        }
    }

    /// A device name: a function of a `/dev/vfio` group (with or without a `vf_token`), raw
    /// bytes, or a page with no NUL in it.
    private static func deviceName(_ fields: inout UAPIFields, _ session: UAPISession, _ input: inout FuzzInput) {
        var name: [UInt8]
        switch input.u8() % 4 {
        case 0, 1:
            let address = input.pick(session.vfioFunctions)
            name = Array((address.description + input.pick(["", "", " vf_token=00000000-0000-0000-0000-000000000000", " "])).utf8) + [0]
        case 2:
            name = Array(input.bytes(Int(input.u8()))) + [0]
        default:
            name = [UInt8](repeating: UInt8(ascii: "a"), count: 4096)
        }
        fields.bytes = name
        fields.minimum = name.count
    }

    /// DEVICE_SET_IRQS: `{ argsz, flags, index, start, count, u8 data[] }` with one data type and
    /// one action (or raw flags), and `count` eventfds or bools after the header.
    private static func irqSet(_ fields: inout UAPIFields, _ session: UAPISession, _ input: inout FuzzInput) {
        let dataType = input.pick([1, 2, 4] as [UInt32])
        let flags = input.u8() % 8 == 0 ? input.u32() : dataType | input.pick([8, 16, 32] as [UInt32])
        let count = input.u8() % 8 == 0 ? input.u32() : input.pick([0, 1, 1, 2, 3, 8, 2048] as [UInt32])
        let entrySize: UInt32 = flags & 7 == 4 ? 4 : flags & 7 == 2 ? 1 : 0
        fields.header(argsz: argsz(20 &+ count &* entrySize, &input), flags: flags, minimum: 20)
        fields.u32(input.u8() % 8 == 0 ? input.u32() : UInt32(input.u8() % 6), at: 8)
        fields.u32(input.u8() % 8 == 0 ? input.u32() : UInt32(input.u8() % 3), at: 12)
        fields.u32(count, at: 16)
        for entry in 0..<min(Int(count), 64) {
            if entrySize == 4 {
                fields.u32(UInt32(bitPattern: session.fd(&input)), at: 20 + 4 * entry)
            } else {
                fields.u8(input.u8() & 1, at: 20 + entry)
            }
        }
    }

    /// DEVICE_PCI_HOT_RESET: `{ argsz, flags, count, s32 group_fds[] }`.
    private static func hotReset(_ fields: inout UAPIFields, _ session: UAPISession, _ input: inout FuzzInput) {
        let count = input.u8() % 8 == 0 ? input.u32() : UInt32(input.u8() % 5)
        fields.header(argsz: argsz(12 &+ 4 &* count, &input), flags: input.u8() % 8 == 0 ? input.u32() : 0, minimum: 12)
        fields.u32(count, at: 8)
        for entry in 0..<min(Int(count), 8) {
            fields.u32(UInt32(bitPattern: session.fd(&input)), at: 12 + 4 * entry)
        }
    }

    /// `struct vfio_bitmap { u64 pgsize, u64 size, u64 __user *data }`: `data` points at `size`
    /// bytes that end at a guard page, or is null, or wraps, or points where the process cannot
    /// write (a `PROT_NONE` or read-only page, an address never mapped).
    private static func bitmap(_ fields: inout UAPIFields, at offset: Int, _ input: inout FuzzInput) {
        let pageSize = input.u8() % 8 == 0 ? input.u64() : input.pick([0x1000, 0x1000, 0x20_0000, 0] as [UInt64])
        let size = input.u8() % 8 == 0 ? input.u64() : input.pick([8, 8, 1, 0, 64, 4096, 1 << 28, (1 << 28) + 8] as [UInt64])
        fields.u64(pageSize, at: offset)
        fields.u64(size, at: offset + 8)
        let choice = input.u8() % 16
        let data: UInt64
        switch choice {
        case 0, 8: data = 0
        case 1, 9: data = UInt64.max &- UInt64(input.u8())
        case 2: data = UserArgumentPage.shared.unwritableBitmapData(readOnly: false)
        case 3: data = UserArgumentPage.shared.unwritableBitmapData(readOnly: true)
        case 4: data = 0x1000
        default: data = UserArgumentPage.shared.bitmapData(size: size)
        }
        // NULL passes access_ok, as in the kernel, and then faults like the unwritable pages.
        fields.hostileBitmap = data == 0 || (2...4).contains(choice)
        fields.u64(data, at: offset + 16)
    }
}
