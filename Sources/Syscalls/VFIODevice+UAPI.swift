import Glibc
import IOMMU
import IOMMUFD
import KernelRules
import PCIBus
import SystemPackage
import VFIO

/// The device fd's ioctls with raw `<linux/vfio.h>` structs (`vfio_pci_core_ioctl`).
extension VFIODevice: IOCTLTarget {
    public func ioctlThrowing(request: UInt, argument: UInt) throws(VFIOError) -> Int32 {
        try runtimeResumed { () throws(VFIOError) in try dispatch(request: request, argument: argument) }
    }

    /// VPCI-01 (5)-(7): FEATURE to the core, the rest to `vfio_pci_core_ioctl`, ENOTTY otherwise.
    private func dispatch(request: UInt, argument: UInt) throws(VFIOError) -> Int32 {
        switch request {
        case IOMMUFDRequest.deviceBindIOMMUFD:
            try bindOnGroupFD(argument)
        case VFIORequest.deviceFeature:
            try feature(argument)
        case VFIORequest.deviceIoeventfd:
            // struct vfio_device_ioeventfd { argsz, flags, u64 offset, u64 data, s32 fd, u32 reserved }
            let (_, argsz, arguments) = try header(argument, minimum: 28, "IOEVENTFD", rule: .VPCI_240)
            try ioeventfd(offset: arguments.u64(8), data: arguments.u64(16), flags: arguments.u32(4), fd: Int32(bitPattern: arguments.u32(24)), argsz: argsz)
        case VFIORequest.deviceGetInfo:
            // struct vfio_device_info { argsz, flags, num_regions, num_irqs, cap_offset, pad }: 16
            // bytes in; min(argsz, 24) back (cap_offset and pad from a zeroed struct). VPCI-33:
            // with capabilities, an argsz below 24 + their size is raised to it and nothing more
            // is written; else the chain goes at offset 24 and cap_offset is 24.
            var (user, argsz, info) = try header(argument, minimum: 16, "GET_INFO", rule: .VPCI_30)
            let (device, capabilities) = try infoWithCapabilities()
            info.set(device.flags.rawValue, at: 4)
            info.set(device.regionCount, at: 8)
            info.set(device.irqCount, at: 12)
            info.set(UInt32(0), at: 16)
            info.set(UInt32(0), at: 20)
            if !capabilities.isEmpty {
                var chain: [UInt8] = []
                for (i, capability) in capabilities.enumerated() {
                    let next = i + 1 < capabilities.count ? UInt32(24 + chain.count + 8 + capability.body.count) : 0
                    chain += capability.bytes(next: next)
                }
                if Int(argsz) < 24 + chain.count {
                    info.set(UInt32(24 + chain.count), at: 0)
                } else {
                    try user.advanced(by: 24, rule: .VPCI_33).copyOut(chain)
                    info.set(UInt32(24), at: 16)
                }
            }
            try user.copyOut(info.prefix(Int(min(argsz, 24))))
        case VFIORequest.deviceGetRegionInfo:
            // struct vfio_region_info { argsz, flags, index, cap_offset, u64 size, u64 offset }
            var (user, argsz, info) = try header(argument, minimum: 32, "GET_REGION_INFO", rule: .VPCI_40)
            let region = try regionInfo(info.u32(8))
            info.set(region.flags.rawValue, at: 4)
            // VPCI-41: cap_offset is written only when the region has capabilities; without them
            // the caller's value goes back as it came (vfio_main.c:1336 copies all 32 bytes in,
            // :1343-1356 sets cap_offset only when caps.size, :1359 copies the 32 bytes out).
            info.set(region.size, at: 16)
            info.set(region.offset, at: 24)
            if !region.capabilities.isEmpty {
                // VPCI-42 (vfio_main.c:1343-1356): too small for the chain → argsz := what it needs,
                // cap_offset 0, nothing else written past the struct; else the chain at offset 32
                // (copied before the header) and cap_offset 32. FLAGS_CAPS either way.
                let chain = VFIORegionCapability.chain(region.capabilities, at: 32)
                if UInt64(argsz) < UInt64(32 + chain.count) {
                    info.set(UInt32(32 + chain.count), at: 0)
                    info.set(UInt32(0), at: 12)
                } else {
                    try user.advanced(by: 32, rule: .VPCI_42).copyOut(chain)
                    info.set(UInt32(32), at: 12)
                }
            }
            try user.copyOut(info)
        case VFIORequest.deviceGetIRQInfo:
            // struct vfio_irq_info { argsz, flags, index, count }
            var (user, _, info) = try header(argument, minimum: 16, "GET_IRQ_INFO", rule: .VPCI_150)
            let irq = try irqInfo(info.u32(8))
            info.set(irq.flags.rawValue, at: 4)
            info.set(irq.count, at: 12)
            try user.copyOut(info)
        case VFIORequest.deviceSetIRQs:
            // A positive result (fewer MSI vectors than asked, VPCI-181) is the ioctl's return value.
            return Int32(clamping: try setIRQs(try Self.irqSet(argument, device: self)))
        case VFIORequest.deviceReset:
            try reset()
        case VFIORequest.deviceGetPCIHotResetInfo:
            return try hotResetInfo(argument)
        case VFIORequest.devicePCIHotReset:
            try hotReset(argument)
        default:
            throw VFIOError(.inappropriateIOCTLForDevice, rule: .VPCI_01, "\(self): no device ioctl 0x\(String(request, radix: 16))")
        }
        return 0
    }

    /// VPCI-01 step 1 and VPCI-05 on a fd from `VFIO_GROUP_GET_DEVICE_FD`: BIND_IOMMUFD runs
    /// `vfio_df_ioctl_bind_iommufd`'s argument checks (argsz read, `argsz < 16`, `E2BIG` for
    /// non-zero bytes past the 24-byte struct, a negative iommufd or an unknown flag), then is
    /// `EINVAL`: only a cdev fd binds (`df->group`, `device_cdev.c`).
    private func bindOnGroupFD(_ argument: UInt) throws(VFIOError) {
        let user = UserPointer(argument, rule: .VPCI_05, object: self, ioctl: "BIND_IOMMUFD")
        let argsz = Int(try user.copyIn(4).u32(0))
        guard argsz >= 16 else { throw VFIOError(.invalidArgument, rule: .VPCI_05, "\(self) BIND_IOMMUFD: argsz \(argsz) < 16") }
        let arguments = try IOMMUFDContext.copyStruct(user, userSize: argsz, kernelSize: 24, what: "BIND_IOMMUFD")
        guard Int32(bitPattern: arguments.u32(8)) >= 0, arguments.u32(4) & ~1 == 0 else {
            throw VFIOError(.invalidArgument, rule: .VPCI_05, "\(self) BIND_IOMMUFD: iommufd negative or flags 0x\(String(arguments.u32(4), radix: 16)) beyond TOKEN")
        }
        throw VFIOError(.invalidArgument, rule: .VPCI_05, "\(self) BIND_IOMMUFD: the fd came from VFIO_GROUP_GET_DEVICE_FD; only a device cdev fd binds to an iommufd")
    }

    /// `struct vfio_device_feature { argsz, flags, u8 data[] }` (`vfio_ioctl_device_feature`): 8
    /// bytes in, `argsz < 8` EINVAL (VPCI-250); the payload is read from `data` only when the
    /// feature's checks have passed.
    private func feature(_ argument: UInt) throws(VFIOError) {
        let (user, argsz, header) = try header(argument, minimum: 8, "DEVICE_FEATURE", rule: .VPCI_250)
        let payload = user.advanced(by: 8, rule: .VPCI_252)
        let reply = try feature(flags: header.u32(4), argsz: argsz) { count throws(VFIOError) in try payload.copyIn(count).bytes }
        if !reply.isEmpty { try payload.copyOut(reply) }
    }

    /// The kernel's opening of each device ioctl: `minsz` bytes copied in, `argsz < minsz` refused.
    private func header(_ argument: UInt, minimum: Int, _ ioctl: String, rule: RuleID) throws(VFIOError) -> (UserPointer, UInt32, UAPIStruct) {
        let user = UserPointer(argument, rule: rule, object: self, ioctl: ioctl)
        let copy = try user.copyInHeader(minsz: minimum)
        return (user, copy.u32(0), copy)
    }

    /// `struct vfio_irq_set { argsz, flags, index, start, count, u8 data[] }` (`vfio_pci_ioctl_set_irqs`):
    /// the 20-byte header is copied in and validated first (`vfio_set_irqs_validate_and_prepare`),
    /// so the data the flags name is copied in (`memdup_user`) only for a `count` the device has
    /// vectors for, and only once `argsz` covers it.
    private static func irqSet(_ argument: UInt, device: VFIODevice) throws(VFIOError) -> VFIOIRQSet {
        let rule = RuleID.VPCI_160
        let user = UserPointer(argument, rule: rule, object: device, ioctl: "SET_IRQS")
        let header = try user.copyInHeader(minsz: 20, argszRule: rule)
        let argsz = header.u32(0)
        let flags = VFIOIRQSetFlags(rawValue: header.u32(4))
        let (index, start, count) = (header.u32(8), header.u32(12), header.u32(16))
        let entrySize = try device.validateIRQSetHeader(flags: flags, index: index, start: start, count: count)
        if UInt64(argsz - 20) < UInt64(count) * UInt64(entrySize) {
            throw VFIOError(.invalidArgument, rule: rule, "\(device) SET_IRQS: argsz \(argsz) holds fewer than \(count) data entries")
        }
        let entries = try user.advanced(by: 20).copyIn(Int(count) * entrySize)
        let data: VFIOIRQData
        switch entrySize {
        case 1: data = .bool((0..<Int(count)).map { entries.u8($0) != 0 })
        case 4: data = .eventFD((0..<Int(count)).map { Int32(bitPattern: entries.u32(4 * $0)) })
        default: data = .none
        }
        return VFIOIRQSet(flags: flags, index: index, start: start, count: count, data: data)
    }

    /// `struct vfio_pci_hot_reset_info { argsz, flags, count, struct vfio_pci_dependent_device
    /// { u32 group_id; u16 segment; u8 bus; u8 devfn; } devices[] }`: the devices go back, then the
    /// header, as the kernel copies them; `ENOSPC` with the header alone (`count` the number
    /// needed) when the array is too small — `EFAULT` instead when that copy faults. As in
    /// `vfio_pci_ioctl_get_pci_hot_reset_info`, the functions are counted and the room checked
    /// before they are filled in, so a short buffer is `ENOSPC` even where the fill would be
    /// `EPERM` (a function without an IOMMU group, VPCI-212).
    private func hotResetInfo(_ argument: UInt) throws(VFIOError) -> Int32 {
        let rule = RuleID.VPCI_210
        var (user, argsz, info) = try header(argument, minimum: 12, "GET_PCI_HOT_RESET_INFO", rule: rule)
        let count = try hotResetScope("GET_PCI_HOT_RESET_INFO").count
        let room = (argsz - 12) / 8
        info.set(UInt32(0), at: 4)
        info.set(UInt32(count), at: 8)
        guard count <= room else {
            try user.copyOut(info)
            throw VFIOError(.noSpace, rule: .VPCI_211, "\(self) GET_PCI_HOT_RESET_INFO: \(count) affected devices, room for \(room)")
        }
        // A device cdev gets device IDs and DEV_ID | DEV_ID_OWNED, the latter cleared by any
        // NOT_OWNED entry (VPCI-212); the group path gets group IDs and flags 0.
        let devices: [(address: PCIAddress, id: UInt32)]
        if isCdevOpened {
            let entries = try hotResetDevIDs()
            devices = entries.map { ($0.address, $0.devid.rawValue) }
            let owned = !entries.contains { $0.devid == .notOwned }
            info.set(VFIOHotResetDevID.flagDevID | (owned ? VFIOHotResetDevID.flagDevIDOwned : 0), at: 4)
        } else {
            devices = try hotResetInfo().map { ($0.address, UInt32($0.groupID)) }
        }
        var array = UAPIStruct([])
        for (i, device) in devices.enumerated() {
            array.set(device.id, at: 8 * i)
            array.set(UInt16(truncatingIfNeeded: device.address.domain), at: 8 * i + 4)
            array.set(device.address.bus, at: 8 * i + 6)
            array.set(device.address.devfn, at: 8 * i + 7)
        }
        try user.advanced(by: 12).copyOut(array)
        try user.copyOut(info)
        return 0
    }

    /// `struct vfio_pci_hot_reset { argsz, flags, count, s32 group_fds[] }`: the header, then
    /// (`vfio_pci_ioctl_pci_hot_reset_groups`) `count` group fds — or, from a device cdev, none:
    /// its iommufd proves ownership (`vfio_pci_dev_set_hot_reset` with the cdev's `iommufd_ctx`).
    private func hotReset(_ argument: UInt) throws(VFIOError) {
        let rule = RuleID.VPCI_220
        // vfio_pci_ioctl_pci_hot_reset: argsz is checked against the 12-byte header only; the fd
        // array is bounded by the devices a reset reaches, never by argsz.
        let (user, _, header) = try header(argument, minimum: 12, "PCI_HOT_RESET", rule: rule)
        guard header.u32(4) == 0 else { throw VFIOError(.invalidArgument, rule: rule, "\(self) PCI_HOT_RESET: flags must be 0") }
        let count = header.u32(8)
        // A zero-length array is for a device cdev, and a device cdev takes nothing else.
        guard (count > 0) != isCdevOpened else {
            throw VFIOError(
                .invalidArgument, rule: rule,
                isCdevOpened
                    ? "\(self) PCI_HOT_RESET: \(count) group fds from a device opened through its cdev, which proves ownership by its iommufd (count must be 0)"
                    : "\(self) PCI_HOT_RESET: no group fds (an empty array is for cdev-opened devices)")
        }
        let reached = try hotResetScope("PCI_HOT_RESET").count
        if isCdevOpened { return try hotResetOwnedDevSet() }
        guard count <= reached else {
            throw VFIOError(.invalidArgument, rule: rule, "\(self) PCI_HOT_RESET: \(count) group fds for \(reached) devices the reset reaches")
        }
        let fds = try user.advanced(by: 12, rule: rule).copyIn(4 * Int(count))
        var groups: [VFIOGroup] = []
        for i in 0..<Int(count) {
            let fd = Int32(bitPattern: fds.u32(4 * i))
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
