import PCIBus
import SystemPackage

/// What the PCI core (`drivers/pci/pci.c`) saves of a function and writes back after a reset:
/// `pci_save_state` — the 16 dwords of the standard header, the PCI Express control registers
/// (`pci_save_pcie_state`: DEVCTL, LNKCTL, SLTCTL, RTCTL, DEVCTL2, LNKCTL2, SLTCTL2, each only
/// where the function implements it), PCI-X command (`pci_save_pcix_state`) and the AER masks and
/// severity (`pci_save_aer_state`, native AER assumed). Not kept, because no function model here
/// has them: LTR, L1SS, DPC, PTM, TPH, VC, ATS, PRI, PASID, Resizable BAR, SR-IOV (VPCI-231).
/// MSI and MSI-X are not config registers the core saves: `pci_restore_msi_state` reprograms
/// them from the core's own MSI descriptors — here, vfio-pci's interrupt state.
struct PCISavedState: Sendable, Equatable {
    var header: [UInt32]
    var express: [Int: UInt16] = [:]
    var pcixCommand: UInt16?
    var aer: [Int: UInt32] = [:]
}

/// The PCI core's operations on one function that vfio-pci relies on, done through config
/// accesses as the core does them (`pci_read_config_*`, `pci_write_config_*`).
enum PCICore {
    /// `pci_find_capability`: the standard capability `id` by walking the list (at most 48 steps).
    static func capability(_ backend: any PCIDeviceBackend, _ id: UInt16) -> Int? {
        guard backend.readConfig(PCIRegister.status, width: 2) & UInt32(PCIRegister.statusCapabilityList) != 0 else { return nil }
        var position = Int(backend.readConfig(PCIRegister.capabilityPointer, width: 1))
        for _ in 0..<48 {
            position &= ~3
            guard position >= 0x40, position < PCIRegister.legacySpaceSize else { return nil }
            let header = backend.readConfig(position, width: 2)
            if header & 0xff == 0xff { return nil }
            if header & 0xff == UInt32(id) { return position }
            position = Int(header >> 8)
        }
        return nil
    }

    /// `pci_find_ext_capability`: the extended capability `id`, or nil.
    static func extendedCapability(_ backend: any PCIDeviceBackend, _ id: UInt16) -> Int? {
        guard backend.configSpaceSize > PCIRegister.legacySpaceSize else { return nil }
        var position = PCIRegister.legacySpaceSize
        for _ in 0..<((backend.configSpaceSize - PCIRegister.legacySpaceSize) / 8) {
            let header = backend.readConfig(position, width: 4)
            if header == 0 || header == 0xffff_ffff { return nil }
            if header & 0xffff == UInt32(id) { return position }
            position = Int((header >> 20) & 0xffc)
            if position < PCIRegister.legacySpaceSize { return nil }
        }
        return nil
    }

    // MARK: Power state (pci_set_power_state)

    /// `pdev->current_state` as the function's PMCSR reports it: 0 (D0) … 3 (D3hot); D0 without
    /// a Power Management capability.
    static func powerState(_ backend: any PCIDeviceBackend) -> Int {
        guard let pm = capability(backend, PCICapabilityID.powerManagement) else { return 0 }
        return Int(backend.readConfig(pm + PCIPowerManagement.control, width: 2) & PCIPowerManagement.stateMask)
    }

    /// `pci_set_power_state`: D0 from anywhere (`pci_set_full_power_state`); a lower-power state
    /// only deeper than the current one (else `EINVAL`) and D1/D2 only where PMC advertises them
    /// (else `EIO`); no PM capability: `EIO` for a low-power state. The state the function then
    /// reports is the new `current_state` (a function that ignores the write stays where it was).
    @discardableResult
    static func setPowerState(_ backend: any PCIDeviceBackend, _ state: Int) -> Errno? {
        let current = powerState(backend)
        guard current != state else { return nil }
        guard let pm = capability(backend, PCICapabilityID.powerManagement) else { return state == 0 ? nil : .ioError }
        if state != 0 {
            guard current <= state else { return .invalidArgument }
            let pmc = backend.readConfig(pm + PCIPowerManagement.capabilities, width: 2)
            if (state == 1 && pmc & PCIPowerManagement.d1Support == 0) || (state == 2 && pmc & PCIPowerManagement.d2Support == 0) {
                return .ioError
            }
        }
        let pmcsr = backend.readConfig(pm + PCIPowerManagement.control, width: 2)
        backend.writeConfig(pm + PCIPowerManagement.control, width: 2, (pmcsr & ~PCIPowerManagement.stateMask) | UInt32(state))
        return nil
    }

    /// Whether PMCSR lacks No_Soft_Reset (`vdev->needs_pm_restore`): a D3hot→D0 transition
    /// resets such a function, so vfio-pci saves its state on the way down.
    static func needsPowerManagementRestore(_ backend: any PCIDeviceBackend) -> Bool {
        guard let pm = capability(backend, PCICapabilityID.powerManagement) else { return false }
        return backend.readConfig(pm + PCIPowerManagement.control, width: 2) & PCIPowerManagement.noSoftReset == 0
    }

    // MARK: Save and restore

    /// `pcie_capability_reg_implemented`: which PCI Express registers exist for the function's
    /// port type and capability version.
    private static func expressRegisters(_ backend: any PCIDeviceBackend, _ express: Int) -> [Int] {
        let flags = UInt16(truncatingIfNeeded: backend.readConfig(express + PCIExpressRegister.flags, width: 2))
        let type = (flags >> 4) & 0xf
        let version = flags & PCIExpressRegister.flagsVersion
        let hasLink = [
            PCIExpressRegister.typeEndpoint, PCIExpressRegister.typeLegacyEndpoint, PCIExpressRegister.typeRootPort,
            PCIExpressRegister.typeUpstream, PCIExpressRegister.typeDownstream, PCIExpressRegister.typePCIBridge,
            PCIExpressRegister.typePCIeBridge,
        ].contains(type)
        let downstream = [PCIExpressRegister.typeRootPort, PCIExpressRegister.typeDownstream, PCIExpressRegister.typePCIeBridge].contains(type)
        let hasSlot = downstream && flags & PCIExpressRegister.flagsSlot != 0
        let hasRoot = type == PCIExpressRegister.typeRootPort || type == PCIExpressRegister.typeRootComplexEventCollector
        var registers = [PCIExpressRegister.deviceControl]
        if hasLink { registers.append(PCIExpressRegister.linkControl) }
        if hasSlot { registers.append(PCIExpressRegister.slotControl) }
        if hasRoot { registers.append(PCIExpressRegister.rootControl) }
        if version > 1 { registers.append(PCIExpressRegister.deviceControl2) }
        if version > 1 && hasLink { registers.append(PCIExpressRegister.linkControl2) }
        if version > 1 && hasSlot { registers.append(PCIExpressRegister.slotControl2) }
        return registers
    }

    /// AER registers `pci_save_aer_state` keeps: uncorrectable mask and severity, correctable mask,
    /// capabilities and control.
    private static let aerSaved = [0x08, 0x0c, 0x14, 0x18]

    /// `pci_save_state`.
    static func saveState(_ backend: any PCIDeviceBackend) -> PCISavedState {
        var saved = PCISavedState(header: (0..<16).map { backend.readConfig($0 * 4, width: 4) })
        if let express = capability(backend, PCICapabilityID.pciExpress) {
            for register in expressRegisters(backend, express) {
                saved.express[register] = UInt16(truncatingIfNeeded: backend.readConfig(express + register, width: 2))
            }
        }
        if let pcix = capability(backend, PCICapabilityID.pcix) {
            saved.pcixCommand = UInt16(truncatingIfNeeded: backend.readConfig(pcix + 2, width: 2))
        }
        if capability(backend, PCICapabilityID.pciExpress) != nil, let aer = extendedCapability(backend, PCIExtendedCapabilityID.aer) {
            for register in aerSaved { saved.aer[register] = backend.readConfig(aer + register, width: 4) }
        }
        return saved
    }

    /// `pci_restore_state`: the PCI Express control registers, AER (status cleared, masks back),
    /// the header — dwords 10–15, then the BARs (4–9), then 0–3 with COMMAND last, each written
    /// only where it differs from what the function reads (`pci_restore_config_space`) — PCI-X
    /// command, then MSI/MSI-X from the core's descriptors (`restoreInterrupts`).
    static func restoreState(_ backend: any PCIDeviceBackend, _ saved: PCISavedState, restoreInterrupts: () -> Void = {}) {
        if let express = capability(backend, PCICapabilityID.pciExpress) {
            for register in expressRegisters(backend, express) {
                if let value = saved.express[register] { backend.writeConfig(express + register, width: 2, UInt32(value)) }
            }
            if let aer = extendedCapability(backend, PCIExtendedCapabilityID.aer) {
                // pci_aer_clear_status: write the status registers back to clear their RW1C bits.
                for status in [0x04, 0x10] { backend.writeConfig(aer + status, width: 4, backend.readConfig(aer + status, width: 4)) }
                for (register, value) in saved.aer { backend.writeConfig(aer + register, width: 4, value) }
            }
        }
        for range in [10...15, 4...9, 0...3] {
            for index in range.reversed() where backend.readConfig(index * 4, width: 4) != saved.header[index] {
                backend.writeConfig(index * 4, width: 4, saved.header[index])
            }
        }
        if let command = saved.pcixCommand, let pcix = capability(backend, PCICapabilityID.pcix) {
            backend.writeConfig(pcix + 2, width: 2, UInt32(command))
        }
        restoreInterrupts()
    }

    /// `pci_dev_save_and_disable` (VPCI-231): the function to D0, its state saved, then COMMAND
    /// written as INTx Disable alone — decode, bus mastering and with it MSI/MSI-X off.
    static func saveAndDisable(_ backend: any PCIDeviceBackend) -> PCISavedState {
        setPowerState(backend, 0)
        let saved = saveState(backend)
        backend.writeConfig(PCIRegister.command, width: 2, PCICommand.interruptDisable)
        return saved
    }

    /// `pci_enable_device` (`do_pci_enable_device`): D0, decode on for the kinds of BAR the function
    /// has (`pci_enable_resources`), and, for a function with an INTx pin and no MSI/MSI-X on,
    /// INTx Disable cleared.
    static func enableDevice(_ backend: any PCIDeviceBackend) {
        setPowerState(backend, 0)
        let command = backend.readConfig(PCIRegister.command, width: 2)
        let decode = (0..<6).compactMap(backend.barResource).reduce(UInt32(0)) { $0 | ($1.kind == .io ? PCICommand.io : PCICommand.memory) }
        if command | decode != command { backend.writeConfig(PCIRegister.command, width: 2, command | decode) }
        if backend.readConfig(0x3d, width: 1) != 0 {
            let command = backend.readConfig(PCIRegister.command, width: 2)
            if command & PCICommand.interruptDisable != 0 {
                backend.writeConfig(PCIRegister.command, width: 2, command & ~PCICommand.interruptDisable)
            }
        }
    }

    /// `pci_clear_master`.
    static func clearMaster(_ backend: any PCIDeviceBackend) {
        let command = backend.readConfig(PCIRegister.command, width: 2)
        if command & PCICommand.busMaster != 0 { backend.writeConfig(PCIRegister.command, width: 2, command & ~PCICommand.busMaster) }
    }

    /// `pci_intx`: INTx Disable cleared (`enable`) or set, written only when it changes.
    static func intx(_ backend: any PCIDeviceBackend, enable: Bool) {
        let command = backend.readConfig(PCIRegister.command, width: 2)
        let new = enable ? command & ~PCICommand.interruptDisable : command | PCICommand.interruptDisable
        if new != command { backend.writeConfig(PCIRegister.command, width: 2, new) }
    }

    /// `pci_intx_mask_broken` inverted (`pci_intx_mask_supported`, vfio's `pci_2_3`): INTx Disable
    /// toggles when written — PCI 2.3 and later — tested by writing it and writing COMMAND back.
    static func intxMaskSupported(_ backend: any PCIDeviceBackend) -> Bool {
        let original = backend.readConfig(PCIRegister.command, width: 2)
        let toggle = original ^ PCICommand.interruptDisable
        backend.writeConfig(PCIRegister.command, width: 2, toggle)
        let readBack = backend.readConfig(PCIRegister.command, width: 2)
        backend.writeConfig(PCIRegister.command, width: 2, original)
        return readBack == toggle
    }

    /// `vfio_pci_nointx`: Intel functions whose INTx masking is broken — i40e (XL710/X710/XXV710)
    /// and X550 — which vfio-pci runs with INTx hidden and DisINTx held set (VPCI-13).
    static func brokenINTx(vendor: UInt16, device: UInt16) -> Bool {
        guard vendor == 0x8086 else { return false }
        switch device {
        case 0x1572, 0x1574, 0x1580...0x1581, 0x1583...0x158b, 0x37d0...0x37d2, 0x1563: return true
        default: return false
        }
    }
}
