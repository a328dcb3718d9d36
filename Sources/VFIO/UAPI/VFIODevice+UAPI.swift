import Glibc
import PCIBus

/// The device fd's ioctls with raw `<linux/vfio.h>` structs (`vfio_pci_core_ioctl`).
extension VFIODevice {
    /// `ioctl(device_fd, request, argument)`: the result, or -1 with `errno` set.
    public func ioctl(request: UInt, argument: UInt) -> Int32 {
        ioctlReturn(ioctlResult(request: request, argument: argument))
    }

    /// `ioctl` with the `VFIOError` that explains a failure.
    public func ioctlResult(request: UInt, argument: UInt) -> Result<Int32, VFIOError> {
        Result { () throws(VFIOError) in try handle(request: request, argument: argument) }
    }

    private func handle(request: UInt, argument: UInt) throws(VFIOError) -> Int32 {
        switch request {
        case VFIORequest.deviceGetInfo:
            // struct vfio_device_info { argsz, flags, num_regions, num_irqs, cap_offset, pad }
            let user = try header(argument, minimum: 16, "GET_INFO", rule: "vfio_pci_ioctl_get_info")
            let info = try info()
            user.store(info.flags.rawValue, at: 4)
            user.store(info.regionCount, at: 8)
            user.store(info.irqCount, at: 12)
        case VFIORequest.deviceGetRegionInfo:
            // struct vfio_region_info { argsz, flags, index, cap_offset, u64 size, u64 offset }
            let user = try header(argument, minimum: 32, "GET_REGION_INFO", rule: "vfio_pci_ioctl_get_region_info")
            let info = try regionInfo(user.u32(8))
            user.store(info.flags.rawValue, at: 4)
            user.store(UInt32(0), at: 12)
            user.store(info.size, at: 16)
            user.store(info.offset, at: 24)
        case VFIORequest.deviceGetIRQInfo:
            // struct vfio_irq_info { argsz, flags, index, count }
            let user = try header(argument, minimum: 16, "GET_IRQ_INFO", rule: "vfio_pci_ioctl_get_irq_info")
            let info = try irqInfo(user.u32(8))
            user.store(info.flags.rawValue, at: 4)
            user.store(info.count, at: 12)
        case VFIORequest.deviceSetIRQs:
            try setIRQs(try Self.irqSet(argument, device: self))
        case VFIORequest.deviceReset:
            try reset()
        case VFIORequest.deviceGetPCIHotResetInfo:
            return try hotResetInfo(argument)
        case VFIORequest.devicePCIHotReset:
            try hotReset(argument)
        default:
            throw VFIOError(.inappropriateIOCTLForDevice, rule: "vfio_pci_core_ioctl", "\(self): no device ioctl 0x\(String(request, radix: 16))")
        }
        return 0
    }

    private func header(_ argument: UInt, minimum: UInt32, _ what: String, rule: String) throws(VFIOError) -> UserMemory {
        let user = try UserMemory(argument, rule: rule, what: "\(self) \(what)")
        guard user.u32(0) >= minimum else {
            throw VFIOError(.invalidArgument, rule: rule, "\(self) \(what): argsz \(user.u32(0)) < \(minimum)")
        }
        return user
    }

    /// `struct vfio_irq_set { argsz, flags, index, start, count, u8 data[] }`: the header is
    /// validated first (`vfio_set_irqs_validate_and_prepare`), so the data the flags name is
    /// copied in (`memdup_user`) only for a `count` the device has vectors for, and only once
    /// `argsz` covers it.
    private static func irqSet(_ argument: UInt, device: VFIODevice) throws(VFIOError) -> VFIOIRQSet {
        let rule = "vfio_set_irqs_validate_and_prepare"
        let user = try UserMemory(argument, rule: rule, what: "\(device) SET_IRQS")
        let argsz = user.u32(0)
        let flags = VFIOIRQSetFlags(rawValue: user.u32(4))
        let (index, start, count) = (user.u32(8), user.u32(12), user.u32(16))
        guard argsz >= 20 else { throw VFIOError(.invalidArgument, rule: rule, "\(device) SET_IRQS: argsz \(argsz) < 20") }
        let (_, hardware) = try device.requireBackend("SET_IRQS")
        let entrySize = try device.interrupts.validateHeader(flags: flags, index: index, start: start, count: count, counts: hardware.counts)
        if UInt64(argsz - 20) < UInt64(count) * UInt64(entrySize) {
            throw VFIOError(.invalidArgument, rule: rule, "\(device) SET_IRQS: argsz \(argsz) holds fewer than \(count) data entries")
        }
        let data: VFIOIRQData
        switch entrySize {
        case 1: data = .bool((0..<Int(count)).map { user.base.load(fromByteOffset: 20 + $0, as: UInt8.self) != 0 })
        case 4: data = .eventFD((0..<Int(count)).map { Int32(bitPattern: user.u32(20 + 4 * $0)) })
        default: data = .none
        }
        return VFIOIRQSet(flags: flags, index: index, start: start, count: count, data: data)
    }

    /// `struct vfio_pci_hot_reset_info { argsz, flags, count, struct vfio_pci_dependent_device
    /// { u32 group_id; u16 segment; u8 bus; u8 devfn; } devices[] }`: `ENOSPC` with the needed
    /// count written back when the array is too small.
    private func hotResetInfo(_ argument: UInt) throws(VFIOError) -> Int32 {
        let user = try header(argument, minimum: 12, "GET_PCI_HOT_RESET_INFO", rule: "vfio_pci_ioctl_get_pci_hot_reset_info")
        user.store(UInt32(0), at: 4)
        let devices = try hotResetInfo()
        let room = (user.u32(0) - 12) / 8
        user.store(UInt32(devices.count), at: 8)
        guard devices.count <= room else {
            throw VFIOError(
                .noSpace, rule: "vfio_pci_ioctl_get_pci_hot_reset_info",
                "\(self) GET_PCI_HOT_RESET_INFO: \(devices.count) affected devices, room for \(room)")
        }
        for (i, device) in devices.enumerated() {
            user.store(UInt32(device.groupID), at: 12 + 8 * i)
            user.base.storeBytes(of: UInt16(truncatingIfNeeded: device.address.domain).littleEndian, toByteOffset: 16 + 8 * i, as: UInt16.self)
            user.base.storeBytes(of: device.address.bus, toByteOffset: 18 + 8 * i, as: UInt8.self)
            user.base.storeBytes(of: device.address.devfn, toByteOffset: 19 + 8 * i, as: UInt8.self)
        }
        return 0
    }

    /// `struct vfio_pci_hot_reset { argsz, flags, count, s32 group_fds[] }`.
    private func hotReset(_ argument: UInt) throws(VFIOError) {
        let rule = "vfio_pci_ioctl_pci_hot_reset"
        let user = try header(argument, minimum: 12, "PCI_HOT_RESET", rule: rule)
        guard user.u32(4) == 0 else { throw VFIOError(.invalidArgument, rule: rule, "\(self) PCI_HOT_RESET: flags must be 0") }
        let affected = try hotResetInfo()
        let count = user.u32(8)
        guard count > 0, count <= affected.count, UInt64(user.u32(0)) >= 12 + 4 * UInt64(count) else {
            throw VFIOError(.invalidArgument, rule: rule, "\(self) PCI_HOT_RESET: \(count) group fds for \(affected.count) affected devices")
        }
        var groups: [VFIOGroup] = []
        for i in 0..<Int(count) {
            let fd = Int32(bitPattern: user.u32(12 + 4 * i))
            switch VFIOFileTable.shared.file(fd) {
            case .group(let group): groups.append(group)
            case nil where fcntl(fd, F_GETFD) < 0:
                throw VFIOError(.badFileDescriptor, rule: rule, "\(self) PCI_HOT_RESET: fd \(fd) is not open")
            default:
                throw VFIOError(.invalidArgument, rule: rule, "\(self) PCI_HOT_RESET: fd \(fd) is not a VFIO group")
            }
        }
        try hotReset(groups: groups)
    }
}
