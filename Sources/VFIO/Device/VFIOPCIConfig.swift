import PCIBus

/// What `vfio_pci_config.c` reaches outside itself while handling an access: vfio-pci's
/// interrupt state, its reset and power paths.
protocol VFIOPCIConfigHost: AnyObject {
    /// `vdev->irq_type == VFIO_PCI_MSI_IRQ_INDEX`.
    var msiActive: Bool { get }
    /// `vdev->msi_qmax`.
    var msiQmax: Int { get }
    /// `vdev->nointx`.
    var nointx: Bool { get }
    /// `vfio_basic_config_write`'s INTx emulation: the virtual INTx Disable bit after a write that
    /// touched COMMAND — `virq_disabled` follows it, masking or unmasking INTx (VPCI-123).
    func virtualINTxDisable(_ disabled: Bool)
    /// `pci_try_reset_function` for an Initiate FLR the user wrote (VPCI-135); its result ignored.
    func initiateFunctionReset()
    /// `vfio_lock_and_set_power_state` for a PMCSR write (VPCI-131).
    func setPowerState(_ state: Int)
    /// `vfio_pci_zap_and_down_write_memory_lock`: every BAR mapping of the device revoked (VPCI-103).
    func zapBARMappings()
}

/// vfio-pci's virtualised config space (`drivers/vfio/pci/vfio_pci_config.c`), built at every
/// first open (`vfio_config_init`, VPCI-14): `vconfig`, the function's config space as it was
/// then; a byte map naming the capability each byte belongs to (`pci_config_map`:
/// `vfio_cap_init`/`vfio_ecap_init` walk the chains, size each capability from
/// `pci_cap_length`/`pci_ext_cap_length`, hide those of length 0 by relinking `next`, VPCI-115);
/// the BARs the host assigned (`rbar`). Each access is cut into chunks that stay inside one
/// dword and one capability (VPCI-81) and each chunk goes through its capability's permission
/// table (`VFIOPCIPermissions`, VPCI-82): virtual bits come from vconfig, the rest from the
/// device; writes reach the device only where the table allows (VPCI-110–143).
struct VFIOPCIConfig {
    /// `PCI_CAP_ID_INVALID`: a byte no capability owns (raw access).
    static let unassigned: UInt8 = 0xff
    /// `PCI_CAP_ID_INVALID_VIRT`: a byte of pure emulation (only vfio-pci's IGD quirk makes these).
    static let unassignedVirtual: UInt8 = 0xfe

    /// `pdev->cfg_size`.
    let size: Int
    /// `vdev->vconfig`.
    private(set) var vconfig: [UInt8]
    /// `vdev->pci_config_map`.
    private(set) var map: [UInt8]
    /// `vdev->rbar`: BAR0–5 and the ROM BAR as the host assigned them, for `vfio_bar_restore`.
    let rbar: [UInt32]
    /// `vdev->bardirty`.
    private var barDirty = true
    /// `vdev->msi_perm`: built from the first MSI capability's Message Control.
    private var msiPermissions: VFIOPCIPermissions?
    /// `vdev->extended_caps`: set while sizing a PCI Express or PCI-X 2.0 capability.
    private var extendedCapabilities = false
    private let bars: [PCIBARResource?]
    /// `pdev->resource[PCI_ROM_RESOURCE]`, when assigned (start ≠ 0).
    private let rom: PCIBARResource?

    /// `vfio_config_init` for the function behind `backend`; `nointx` hides its INTx pin (VPCI-124).
    init(backend: any PCIDeviceBackend, nointx: Bool) {
        size = backend.configSpaceSize
        vconfig = Array(repeating: 0, count: size)
        map = Array(repeating: Self.unassigned, count: size)
        bars = (0..<6).map(backend.barResource)
        rom = backend.romResource.flatMap { $0.busAddress != 0 ? $0 : nil }
        rbar = (0..<6).map { backend.readConfig(0x10 + 4 * $0, width: 4) } + [backend.readConfig(0x30, width: 4)]
        for i in 0..<min(size, VFIOPCICapabilityMap.standardHeaderSize) { map[i] = UInt8(PCICapabilityID.basic) }
        fill(backend, 0, VFIOPCICapabilityMap.standardHeaderSize)
        // VPCI-124: no pin without INTx support, for nointx functions and where no IRQ is routed
        // (a function with a pin has one here).
        if nointx { vconfig[0x3d] = 0 }
        initCapabilities(backend)
        initExtendedCapabilities(backend)
    }

    // MARK: vfio_config_init

    private func value(_ offset: Int, _ count: Int) -> UInt32 {
        (0..<count).reduce(UInt32(0)) { $0 | UInt32(vconfig[offset + $1]) << (8 * UInt32($1)) }
    }

    private mutating func store(_ offset: Int, _ count: Int, _ value: UInt32) {
        for i in 0..<count { vconfig[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(i))) }
    }

    /// `vfio_fill_vconfig_bytes`: the device's bytes in the largest aligned reads that fit.
    private mutating func fill(_ backend: any PCIDeviceBackend, _ offset: Int, _ length: Int) {
        var offset = offset
        var left = min(length, size - offset)
        while left > 0 {
            let width = left >= 4 && offset % 4 == 0 ? 4 : left >= 2 && offset % 2 == 0 ? 2 : 1
            store(offset, width, backend.readConfig(offset, width: width))
            offset += width
            left -= width
        }
    }

    /// `vfio_cap_init`: walks the standard chain from 0x34 (when STATUS has CAP_LIST, at most 48
    /// steps), maps each capability with a length, links past those without, and clears vconfig's
    /// CAP_LIST when none is left (VPCI-115).
    private mutating func initCapabilities(_ backend: any PCIDeviceBackend) {
        guard backend.readConfig(PCIRegister.status, width: 2) & UInt32(PCIRegister.statusCapabilityList) != 0 else { return }
        var position = Int(backend.readConfig(PCIRegister.capabilityPointer, width: 1))
        var previous = PCIRegister.capabilityPointer
        var loops = (PCIRegister.legacySpaceSize - VFIOPCICapabilityMap.standardHeaderSize) / 4
        var found = 0
        while position != 0 && loops > 0 {
            loops -= 1
            let id = UInt8(truncatingIfNeeded: backend.readConfig(position, width: 1))
            let next = UInt8(truncatingIfNeeded: backend.readConfig(position + 1, width: 1))
            var length = 0
            // ID 0 is a NULL capability, conflicting with the fake PCI_CAP_ID_BASIC: hidden.
            if id != 0 && UInt16(id) <= PCICapabilityID.max {
                length = VFIOPCICapabilityMap.standardLength[Int(id)]
                if length == 0xff { length = variableLength(backend, id, position) }
            }
            guard length > 0 else {
                vconfig[previous] = next
                position = Int(next)
                continue
            }
            for i in position..<min(position + length, size) { map[i] = id }
            fill(backend, position, length)
            if UInt16(id) == PCICapabilityID.powerManagement {
                // vfio_update_pm_vconfig_bytes: PME_Support, PME_Status and PME_En read 0.
                store(position + 2, 2, value(position + 2, 2) & ~PCIPowerManagement.pmeSupportMask)
                store(position + 4, 2, value(position + 4, 2) & ~(PCIPowerManagement.pmeEnable | PCIPowerManagement.pmeStatus))
            }
            previous = position + 1
            position = Int(next)
            found += 1
        }
        if found == 0 { store(PCIRegister.status, 2, value(PCIRegister.status, 2) & ~UInt32(PCIRegister.statusCapabilityList)) }
    }

    /// `vfio_cap_len`: the length of a variable-length standard capability (0: hidden).
    private mutating func variableLength(_ backend: any PCIDeviceBackend, _ id: UInt8, _ position: Int) -> Int {
        switch UInt16(id) {
        case PCICapabilityID.msi:
            // vfio_msi_cap_len: 10 bytes, +4 for 64-bit addresses, +10 for per-vector masking.
            let flags = UInt16(truncatingIfNeeded: backend.readConfig(position + PCIMSIRegister.flags, width: 2))
            let length = 10 + (flags & PCIMSIRegister.flags64Bit != 0 ? 4 : 0) + (flags & PCIMSIRegister.flagsMaskable != 0 ? 10 : 0)
            if msiPermissions == nil { msiPermissions = VFIOPCIPermissions.msi(length: length, flags: flags) }
            return length
        case PCICapabilityID.pcix:
            let command = backend.readConfig(position + 2, width: 2)
            guard (command >> 12) & 3 != 0 else { return 8 }
            if size > PCIRegister.legacySpaceSize { extendedCapabilities = backend.readConfig(PCIRegister.legacySpaceSize, width: 4) != 0 }
            return 24
        case PCICapabilityID.vendorSpecific:
            return Int(backend.readConfig(position + 2, width: 1))
        case PCICapabilityID.pciExpress:
            if size > PCIRegister.legacySpaceSize { extendedCapabilities = backend.readConfig(PCIRegister.legacySpaceSize, width: 4) != 0 }
            let flags = UInt16(truncatingIfNeeded: backend.readConfig(position + PCIExpressRegister.flags, width: 2))
            let rootComplexEndpoint = (flags >> 4) & 0xf == PCIExpressRegister.typeRootComplexEndpoint
            if flags & PCIExpressRegister.flagsVersion == 1 { return rootComplexEndpoint ? 0xc : PCIExpressRegister.endpointSizeV1 }
            return rootComplexEndpoint ? 0x2c : PCIExpressRegister.endpointSizeV2
        case PCICapabilityID.hyperTransport:
            return backend.readConfig(position + 3, width: 1) & 0xe0 != 0 ? 24 : 28
        case PCICapabilityID.sata:
            return backend.readConfig(position + 4, width: 1) & 0xf == 0xf ? 16 : 8
        default:
            return 0
        }
    }

    /// `vfio_ecap_init`: walks the extended chain from 0x100 when a PCI Express (or PCI-X 2.0)
    /// capability said there is one; a hidden capability is unlinked from the previous header,
    /// or — the first one — kept as a 4-byte placeholder reading id 0, version 0 with its next
    /// pointer; with none visible, dword 0x100 reads 0 (VPCI-115, VPCI-142).
    private mutating func initExtendedCapabilities(_ backend: any PCIDeviceBackend) {
        guard extendedCapabilities else { return }
        var position = PCIRegister.legacySpaceSize
        var previous: Int?
        var loops = (size - PCIRegister.legacySpaceSize) / 4
        var found = 0
        while loops > 0 && position >= PCIRegister.legacySpaceSize {
            loops -= 1
            let header = backend.readConfig(position, width: 4)
            let id = UInt16(truncatingIfNeeded: header)
            let next = Int((header >> 20) & 0xffc)
            var length = 0
            var hidden = false
            if id <= PCIExtendedCapabilityID.max {
                length = VFIOPCICapabilityMap.extendedLength[Int(id)]
                if length == 0xff { length = extendedLength(backend, id, position) }
            }
            if length == 0 {
                if let previous {
                    store(previous, 4, (value(previous, 4) & ~(0xffc << 20)) | UInt32(next) << 20)
                    position = next
                    continue
                }
                length = 4
                hidden = true
            }
            // The map holds one byte per id, as the kernel's does (ids above 0xff truncate).
            for i in position..<min(position + length, size) { map[i] = UInt8(truncatingIfNeeded: id) }
            fill(backend, position, length)
            if hidden {
                store(position, 4, value(position, 4) & (0xffc << 20))
            } else {
                found += 1
            }
            previous = position
            position = next
        }
        if found == 0 { store(PCIRegister.legacySpaceSize, 4, 0) }
    }

    /// `vfio_ext_cap_len`: the length of a variable-length extended capability (0: hidden).
    private func extendedLength(_ backend: any PCIDeviceBackend, _ id: UInt16, _ position: Int) -> Int {
        switch id {
        case PCIExtendedCapabilityID.vendorSpecific, PCIExtendedCapabilityID.designatedVendorSpecific:
            return Int((backend.readConfig(position + 4, width: 4) >> 20) & 0xfff)
        case PCIExtendedCapabilityID.vc, PCIExtendedCapabilityID.vc9, PCIExtendedCapabilityID.mfvc:
            // vfio_vc_cap_len
            let evcc = Int(backend.readConfig(position + 4, width: 4) & 7)
            let cap2 = backend.readConfig(position + 8, width: 4)
            let phases = cap2 & 0x8 != 0 ? 128 : cap2 & 0x4 != 0 ? 64 : cap2 & 0x2 != 0 ? 32 : 0
            var length = 0x10 + (1 + evcc) * 0x0c
            if phases > 0 { length = ((length + 15) & ~15) + phases * 4 / 8 }
            return length
        case PCIExtendedCapabilityID.acs:
            guard backend.readConfig(position + 4, width: 1) & 0x20 != 0 else { return 8 }
            let count = Int(backend.readConfig(position + 5, width: 1))
            let bits = count != 0 ? (count + 31) & ~31 : 256
            return 8 + bits / 8
        case PCIExtendedCapabilityID.resizableBAR:
            return 4 + Int((backend.readConfig(position + 8, width: 1) & 0xe0) >> 5) * 8
        case PCIExtendedCapabilityID.dpa:
            return 16 + Int(backend.readConfig(position + 4, width: 1) & 0x1f) + 1
        case PCIExtendedCapabilityID.tph:
            let cap = backend.readConfig(position + 4, width: 4)
            guard cap & 0x600 == 0x200 else { return 0xc }
            return 0xc + Int((cap & 0x07ff_0000) >> 16) * 2 + 2
        default:
            return 0
        }
    }

    // MARK: Chunks (vfio_pci_config_rw_single)

    /// The length of the chunk at `position` with `remaining` bytes left in the request: cut at
    /// the end of the dword and of the capability (`vfio_pci_cap_remaining_dword`), then the
    /// largest aligned 4, 2 or 1 (VPCI-81).
    func chunkLength(at position: Int, remaining: Int) -> Int {
        let id = map[position]
        var run = 1
        while (position + run) % 4 != 0 && map[position + run] == id { run += 1 }
        let count = min(remaining, run)
        return count >= 4 && position % 4 == 0 ? 4 : count >= 2 && position % 2 == 0 ? 2 : 1
    }

    /// `vfio_find_cap_start`: where the capability owning `position` starts (0 for the header).
    private func capabilityStart(_ position: Int) -> Int {
        let id = map[position]
        if id == UInt8(PCICapabilityID.basic) { return 0 }
        let base = position >= PCIRegister.legacySpaceSize ? PCIRegister.legacySpaceSize : VFIOPCICapabilityMap.standardHeaderSize
        var start = position
        while start - 1 >= base && map[start - 1] == id { start -= 1 }
        return start
    }

    /// The permission table and capability start for the chunk at `position`.
    private func permissions(at position: Int) -> (VFIOPCIPermissions, Int) {
        let id = map[position]
        switch id {
        case Self.unassigned: return (.unassigned, position)
        case Self.unassignedVirtual: return (VFIOPCIPermissions(reader: .raw, writer: .raw), position)
        default: break
        }
        if position >= PCIRegister.legacySpaceSize {
            return (VFIOPCIPermissions.extended(id), capabilityStart(position))
        }
        if UInt16(id) == PCICapabilityID.msi, let msiPermissions { return (msiPermissions, capabilityStart(position)) }
        return (VFIOPCIPermissions.standard(id), UInt16(id) > PCICapabilityID.basic ? capabilityStart(position) : 0)
    }

    /// One chunk read, as `perm->readfn` answers it.
    mutating func read(_ position: Int, count: Int, backend: any PCIDeviceBackend, host: some VFIOPCIConfigHost) -> UInt32 {
        let (perm, start) = permissions(at: position)
        let offset = position - start
        switch perm.reader {
        case .standard:
            return defaultRead(position, count, perm, offset, backend)
        case .basic:
            if Self.isBAR(offset) { barFixup() }
            return defaultRead(position, count, perm, offset, backend)
        case .msi:
            if offset <= PCIMSIRegister.flags && offset + count >= PCIMSIRegister.flags {
                // vfio_msi_config_read rewrites Multiple Message Capable — in the 16 bits at the
                // capability's start (its ID and next bytes), not at Message Control, so what the
                // user reads is unaffected (spec corrections, VPCI-132).
                let flags = (value(start, 2) & ~UInt32(PCIMSIRegister.flagsQueueMask)) | UInt32(host.msiQmax) << 1
                store(start, 2, flags)
            }
            return defaultRead(position, count, perm, offset, backend)
        case .direct:
            var result = backend.readConfig(position, width: count)
            if position >= PCIRegister.legacySpaceSize {
                if offset < 4 { result = value(position, count) }
            } else if position >= VFIOPCICapabilityMap.standardHeaderSize {
                if offset == 0 && count > 1 {
                    let header = min(PCIMSIRegister.flags, count)
                    let mask: UInt32 = header == 2 ? 0xffff : 0xff
                    result = (result & ~mask) | value(position, header)
                } else if offset == 1 {
                    result = (result & ~0xff) | value(position, 1)
                }
            }
            return result
        case .raw:
            return backend.readConfig(position, width: count)
        }
    }

    /// One chunk written, as `perm->writefn` handles it (nil: dropped).
    mutating func write(_ position: Int, count: Int, _ data: UInt32, backend: any PCIDeviceBackend, host: some VFIOPCIConfigHost) {
        let (perm, start) = permissions(at: position)
        let offset = position - start
        switch perm.writer {
        case nil:
            return
        case .standard:
            defaultWrite(position, count, perm, offset, data, backend)
        case .basic:
            basicWrite(position, count, perm, offset, data, backend, host)
        case .powerManagement:
            defaultWrite(position, count, perm, offset, data, backend)
            if offset == PCIPowerManagement.control { host.setPowerState(Int(data & PCIPowerManagement.stateMask)) }
        case .vpd:
            vpdWrite(position, count, perm, offset, data, start, backend)
        case .express:
            expressWrite(position, count, perm, offset, data, start, backend, host)
        case .advancedFeatures:
            defaultWrite(position, count, perm, offset, data, backend)
            let control = start + PCIAdvancedFeatures.control
            if UInt32(vconfig[control]) & PCIAdvancedFeatures.controlFLR != 0 {
                vconfig[control] &= ~UInt8(PCIAdvancedFeatures.controlFLR)
                let capability = UInt8(truncatingIfNeeded: backend.readConfig(start + PCIAdvancedFeatures.capabilities, width: 1))
                if capability & PCIAdvancedFeatures.capabilityFLR != 0 && capability & PCIAdvancedFeatures.capabilityTP != 0 {
                    host.initiateFunctionReset()
                }
            }
        case .msi:
            defaultWrite(position, count, perm, offset, data, backend)
            if offset <= PCIMSIRegister.flags && offset + count >= PCIMSIRegister.flags {
                // vfio_msi_config_write: Enable only while MSI runs (it is enabled through
                // SET_IRQS), Multiple Message Enable no more than msi_qmax; the result stored
                // virtually and written to the device (VPCI-132).
                var flags = UInt16(truncatingIfNeeded: value(start + PCIMSIRegister.flags, 2))
                if !host.msiActive { flags &= ~PCIMSIRegister.flagsEnable }
                if Int((flags & PCIMSIRegister.flagsQueueSize) >> 4) > host.msiQmax {
                    flags = (flags & ~PCIMSIRegister.flagsQueueSize) | UInt16(host.msiQmax) << 4
                }
                store(start + PCIMSIRegister.flags, 2, UInt32(flags))
                backend.writeConfig(start + PCIMSIRegister.flags, width: 2, UInt32(flags))
            }
        case .raw:
            backend.writeConfig(position, width: count, data)
        }
    }

    // MARK: Default handlers

    private static func allOnes(_ count: Int) -> UInt32 { count >= 4 ? .max : (1 << (8 * UInt32(count))) - 1 }

    /// `vfio_default_config_read` (VPCI-111): vconfig's bits where virtual, the device's elsewhere;
    /// the device is not read when every bit is virtual.
    private func defaultRead(_ position: Int, _ count: Int, _ perm: VFIOPCIPermissions, _ offset: Int, _ backend: any PCIDeviceBackend) -> UInt32 {
        let virtual = value(position, count)
        let virt = perm.mask(perm.virt, offset, count)
        guard virt != Self.allOnes(count) else { return virtual }
        return (backend.readConfig(position, width: count) & ~virt) | (virtual & virt)
    }

    /// `vfio_default_config_write` (VPCI-112): nothing writable — dropped; writable virtual bits
    /// to vconfig; writable physical bits by read-modify-write of the device's whole chunk.
    private mutating func defaultWrite(
        _ position: Int, _ count: Int, _ perm: VFIOPCIPermissions, _ offset: Int, _ data: UInt32, _ backend: any PCIDeviceBackend
    ) {
        let write = perm.mask(perm.write, offset, count)
        guard write != 0 else { return }
        let virt = perm.mask(perm.virt, offset, count)
        if write & virt != 0 {
            store(position, count, (value(position, count) & ~(write & virt)) | (data & write & virt))
        }
        if write & ~virt & Self.allOnes(count) != 0 {
            let physical = (backend.readConfig(position, width: count) & ~(write & ~virt)) | (data & write & ~virt)
            backend.writeConfig(position, width: count, physical)
        }
    }

    // MARK: The basic header

    /// `is_bar`: a BAR or the ROM BAR (offset = position in the header).
    private static func isBAR(_ offset: Int) -> Bool { (0x10..<0x28).contains(offset) || (0x30..<0x34).contains(offset) }

    /// `vfio_bar_fixup` (VPCI-121), when a BAR was written since the last fix-up: each BAR's
    /// virtual value masked to its size with its flag bits; an unassigned BAR reads 0; a 64-bit
    /// BAR's upper dword masked with the size's upper bits; the ROM BAR masked to its size and
    /// enable bit, or 0 without one.
    private mutating func barFixup() {
        guard barDirty else { return }
        var index = 0
        while index < 6 {
            let register = 0x10 + 4 * index
            guard let bar = bars[index], bar.busAddress != 0 else {
                store(register, 4, 0)  // unmapped by the host: unimplemented to the user
                index += 1
                continue
            }
            let mask = ~(bar.size - 1)
            var low = value(register, 4) & UInt32(truncatingIfNeeded: mask)
            low |= bar.kind == .io ? 0x1 : (bar.prefetchable ? 0x8 : 0) | (bar.kind == .memory64 ? 0x4 : 0)
            store(register, 4, low)
            if low & 0x4 != 0 && index < 5 {
                index += 1
                store(register + 4, 4, value(register + 4, 4) & UInt32(truncatingIfNeeded: mask >> 32))
            }
            index += 1
        }
        // The ROM BAR: assigned → sized to its length with the enable bit kept; none (and no shadow
        // ROM: no VGA function is modelled) → 0. REGION_INFO may still say size 0 for an invalid image.
        if let rom { store(0x30, 4, value(0x30, 4) & (UInt32(truncatingIfNeeded: ~(rom.size - 1)) | PCIExpansionROM.enable)) } else { store(0x30, 4, 0) }
        barDirty = false
    }

    /// `vfio_basic_config_write` (VPCI-122, VPCI-123).
    private mutating func basicWrite(
        _ position: Int, _ count: Int, _ perm: VFIOPCIPermissions, _ offset: Int, _ data: UInt32, _ backend: any PCIDeviceBackend,
        _ host: some VFIOPCIConfigHost
    ) {
        let newCommand = data & 0xffff
        if offset == PCIRegister.command {
            // A write leaving memory decode off revokes the BAR mappings first (VPCI-103).
            if newCommand & PCICommand.memory == 0 { host.zapBARMappings() }
            let physical = backend.readConfig(PCIRegister.command, width: 2)
            let virtual = value(PCIRegister.command, 2)
            // A function that shows decode off while vfio-pci believes it on went through a reset
            // vfio-pci did not see: its BARs are put back before decode is allowed.
            let memory = PCICommand.memory
            let io = PCICommand.io
            if (newCommand & memory != 0 && virtual & memory != 0 && physical & memory == 0)
                || (newCommand & io != 0 && virtual & io != 0 && physical & io == 0) || needBARRestore(backend)
            {
                barRestore(backend, nointx: host.nointx)
            }
        }
        defaultWrite(position, count, perm, offset, data, backend)
        if offset == PCIRegister.command {
            let decode = PCICommand.memory | PCICommand.io
            store(PCIRegister.command, 2, (value(PCIRegister.command, 2) & ~decode) | (newCommand & decode))
        }
        if offset >= PCIRegister.command && offset <= PCIRegister.command + 1 {
            host.virtualINTxDisable(value(PCIRegister.command, 2) & PCICommand.interruptDisable != 0)
        }
        if Self.isBAR(offset) { barDirty = true }
    }

    /// `vfio_need_bar_restore`: a non-zero BAR the host assigned that the device no longer holds.
    private func needBARRestore(_ backend: any PCIDeviceBackend) -> Bool {
        (0..<6).contains { rbar[$0] != 0 && backend.readConfig(0x10 + 4 * $0, width: 4) != rbar[$0] }
    }

    /// `vfio_bar_restore`: the host's BARs and ROM BAR written back; nointx functions get DisINTx
    /// set again.
    private func barRestore(_ backend: any PCIDeviceBackend, nointx: Bool) {
        for index in 0..<6 { backend.writeConfig(0x10 + 4 * index, width: 4, rbar[index]) }
        backend.writeConfig(0x30, width: 4, rbar[6])
        if nointx { PCICore.intx(backend, enable: false) }
    }

    /// Whether memory decode is on in the virtual COMMAND register (`__vfio_pci_memory_enabled`'s
    /// command half, VPCI-92).
    var memoryEnabled: Bool { value(PCIRegister.command, 2) & PCICommand.memory != 0 }

    // MARK: Capabilities with handlers

    /// `vfio_exp_config_write` (VPCI-134, VPCI-135): Initiate FLR always reads back 0 and, where
    /// DEVCAP advertises FLR, resets the function; a changed Max_Read_Request_Size is applied to
    /// the device no lower than its own Max_Payload_Size (`pcie_set_readrq`).
    private mutating func expressWrite(
        _ position: Int, _ count: Int, _ perm: VFIOPCIPermissions, _ offset: Int, _ data: UInt32, _ start: Int,
        _ backend: any PCIDeviceBackend, _ host: some VFIOPCIConfigHost
    ) {
        let control = start + PCIExpressRegister.deviceControl
        let readRequest = value(control, 2) & PCIExpressRegister.maxReadRequestMask
        defaultWrite(position, count, perm, offset, data, backend)
        if value(control, 2) & PCIExpressRegister.initiateFLR != 0 {
            store(control, 2, value(control, 2) & ~PCIExpressRegister.initiateFLR)
            let capabilities = backend.readConfig(start + PCIExpressRegister.deviceCapabilities, width: 4)
            if capabilities & PCIExpressRegister.deviceCapabilitiesFLR != 0 { host.initiateFunctionReset() }
        }
        let newReadRequest = value(control, 2) & PCIExpressRegister.maxReadRequestMask
        if newReadRequest != readRequest {
            let payload = 128 << ((backend.readConfig(control, width: 2) & PCIExpressRegister.maxPayloadMask) >> 5)
            let request = max(128 << (newReadRequest >> 12), payload)
            // pcie_set_readrq: 128 … 4096 bytes, else EINVAL and nothing written.
            if request <= 4096 {
                let field = UInt32(request.trailingZeroBitCount - 7) << 12
                let hardware = backend.readConfig(control, width: 2)
                backend.writeConfig(control, width: 2, (hardware & ~PCIExpressRegister.maxReadRequestMask) | field)
            }
        }
    }

    /// `vfio_vpd_config_write` (VPCI-136): a write reaching the address register's high byte
    /// starts a VPD access — F set: write the data register's 4 bytes; F clear: read 4 bytes into
    /// it — and F toggles in vconfig only when the access succeeded.
    private mutating func vpdWrite(
        _ position: Int, _ count: Int, _ perm: VFIOPCIPermissions, _ offset: Int, _ data: UInt32, _ start: Int,
        _ backend: any PCIDeviceBackend
    ) {
        defaultWrite(position, count, perm, offset, data, backend)
        guard offset <= PCIVPDRegister.address + 1, offset + count > PCIVPDRegister.address + 1 else { return }
        var address = UInt16(truncatingIfNeeded: value(start + PCIVPDRegister.address, 2))
        if address & PCIVPDRegister.addressFlag != 0 {
            guard PCIVPD.write(backend, capability: start, address: address & ~PCIVPDRegister.addressFlag, value(start + PCIVPDRegister.data, 4))
            else { return }
        } else {
            guard let word = PCIVPD.read(backend, capability: start, address: address) else { return }
            store(start + PCIVPDRegister.data, 4, word)
        }
        address ^= PCIVPDRegister.addressFlag
        store(start + PCIVPDRegister.address, 2, UInt32(address))
    }
}

/// The capability lengths of `vfio_pci_config.c` and the header size.
enum VFIOPCICapabilityMap {
    /// `PCI_STD_HEADER_SIZEOF`.
    static let standardHeaderSize = 64

    /// `pci_cap_length[]`, by standard id 0…`PCI_CAP_ID_MAX`: 0 hides the capability, 0xff is
    /// variable (`vfio_cap_len`).
    static let standardLength: [Int] = [
        64,  // 0x00 PCI_CAP_ID_BASIC: the header
        8,  // 0x01 PM
        12,  // 0x02 AGP
        8,  // 0x03 VPD
        0,  // 0x04 Slot ID (bridges)
        0xff,  // 0x05 MSI: 10, 14, 20 or 24
        0,  // 0x06 CompactPCI hot swap
        0xff,  // 0x07 PCI-X: 8 or 24
        0xff,  // 0x08 HyperTransport
        0xff,  // 0x09 vendor specific
        0,  // 0x0a debug port
        0,  // 0x0b CompactPCI central resource control
        0,  // 0x0c SHPC
        0,  // 0x0d bridge subsystem ID
        0,  // 0x0e AGP 8x
        0,  // 0x0f secure device
        0xff,  // 0x10 PCI Express
        12,  // 0x11 MSI-X
        0xff,  // 0x12 SATA
        6,  // 0x13 Advanced Features
        0,  // 0x14 Enhanced Allocation (not in the table: 0)
    ]

    /// `pci_ext_cap_length[]`, by extended id 0…`PCI_EXT_CAP_ID_MAX` (0x31 in 7.3).
    static let extendedLength: [Int] = {
        var lengths = Array(repeating: 0, count: Int(PCIExtendedCapabilityID.max) + 1)
        lengths[0x01] = 0x2c  // AER up to PCI_ERR_ROOT_COMMAND
        lengths[0x02] = 0xff  // VC
        lengths[0x03] = 12  // DSN
        lengths[0x04] = 0x10  // power budgeting
        lengths[0x08] = 0xff  // MFVC
        lengths[0x09] = 0xff  // VC9
        lengths[0x0b] = 0xff  // vendor specific
        lengths[0x0d] = 0xff  // ACS
        lengths[0x0e] = 8  // ARI
        lengths[0x0f] = 8  // ATS
        lengths[0x10] = 0x40  // SR-IOV
        lengths[0x12] = 40  // multicast (endpoint)
        lengths[0x13] = 16  // PRI
        lengths[0x15] = 0xff  // resizable BAR
        lengths[0x16] = 0xff  // DPA
        lengths[0x17] = 0xff  // TPH
        lengths[0x18] = 8  // LTR
        lengths[0x23] = 0xff  // DVSEC
        return lengths
    }()
}

/// VPD through the function's own VPD registers (`pci_read_vpd`/`pci_write_vpd`,
/// `drivers/pci/vpd.c`, which `../kernel` does not carry): write the address, poll F, move the
/// data. The kernel polls for up to 125 ms; a device model answers at once or never, so a few
/// polls stand for it. The VPD size check (`pci_vpd_size`) is not modelled.
enum PCIVPD {
    private static let polls = 4

    static func read(_ backend: any PCIDeviceBackend, capability: Int, address: UInt16) -> UInt32? {
        backend.writeConfig(capability + PCIVPDRegister.address, width: 2, UInt32(address & ~3))
        for _ in 0..<polls where backend.readConfig(capability + PCIVPDRegister.address, width: 2) & UInt32(PCIVPDRegister.addressFlag) != 0 {
            return backend.readConfig(capability + PCIVPDRegister.data, width: 4)
        }
        return nil
    }

    static func write(_ backend: any PCIDeviceBackend, capability: Int, address: UInt16, _ data: UInt32) -> Bool {
        guard address & 3 == 0 else { return false }
        backend.writeConfig(capability + PCIVPDRegister.data, width: 4, data)
        backend.writeConfig(capability + PCIVPDRegister.address, width: 2, UInt32(address | PCIVPDRegister.addressFlag))
        for _ in 0..<polls where backend.readConfig(capability + PCIVPDRegister.address, width: 2) & UInt32(PCIVPDRegister.addressFlag) == 0 {
            return true
        }
        return false
    }
}
