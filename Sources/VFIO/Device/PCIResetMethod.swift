import PCIBus
import SystemPackage

/// One reset method of the PCI core's `pci_reset_fn_methods` table (`drivers/pci/pci.c`), the
/// ones a simulated function can have, in the table's order (VPCI-232). Not modelled:
/// `device_specific` (`pci_dev_specific_reset`, quirk code for particular silicon), `acpi`
/// (`pci_dev_acpi_reset`, firmware `_RST`) and `cxl_bus` (a CXL port DVSEC) — see
/// `docs/deliberate-choices.md`; the slot half of `bus` (`pci_dev_reset_slot_function`) needs a
/// hotplug controller, which no simulated port has.
enum PCIResetMethod: String, Sendable, CaseIterable {
    /// `pcie_reset_flr`: PCI Express Device Capabilities FLR, no `PCI_DEV_FLAGS_NO_FLR_RESET`.
    case flr
    /// `pci_af_flr`: the Advanced Features capability with TP and FLR, no `NO_FLR_RESET`.
    case afFLR = "af_flr"
    /// `pci_pm_reset`: a PM capability whose PMCSR has No_Soft_Reset clear, no `NO_PM_RESET`.
    case pm
    /// `pci_reset_bus_function` → `pci_parent_bus_reset`: the function alone on a non-root bus,
    /// not a bridge, no `NO_BUS_RESET`; the parent bridge's Secondary Bus Reset.
    case bus
}

/// What `pci_parent_bus_reset` and the reset quirks need to know of a function's place in the
/// topology (`dev->bus`), which config space does not say.
struct PCIResetPlacement: Sendable {
    /// Alone on a non-root bus below a bridge, and not a bridge itself.
    var aloneBelowBridge: Bool
    /// On a root bus (`quirk_no_pm_reset` applies only off one).
    var onRootBus: Bool

    static let none = PCIResetPlacement(aloneBelowBridge: false, onRootBus: true)
}

extension PCICore {
    /// Advanced Features registers (`PCI_AF_*`): capabilities byte, control byte.
    private static let afCapabilities = 3, afControl = 4
    private static let afTransactionsPending: UInt32 = 0x01, afFLR: UInt32 = 0x02, afInitiateFLR: UInt32 = 0x01

    /// `pci_init_reset_methods`: each method of `pci_reset_fn_methods` probed in order, the ones
    /// whose probe succeeds kept (`dev->reset_methods[]`). The quirk flags come from
    /// `ResetQuirkTable` matched on the IDs the function reports.
    static func resetMethods(_ backend: any PCIDeviceBackend, placement: PCIResetPlacement) -> [PCIResetMethod] {
        let vendor = UInt16(truncatingIfNeeded: backend.readConfig(PCIRegister.vendorID, width: 2))
        let device = UInt16(truncatingIfNeeded: backend.readConfig(PCIRegister.deviceID, width: 2))
        let revision = UInt8(truncatingIfNeeded: backend.readConfig(PCIRegister.revision, width: 1))
        let classID = UInt16(truncatingIfNeeded: backend.readConfig(PCIRegister.revision, width: 4) >> 16)
        let quirks = ResetQuirkTable.flags(vendor: vendor, device: device, revision: revision, classID: classID, onRootBus: placement.onRootBus).flags
        var methods: [PCIResetMethod] = []
        if !quirks.contains(.noFLR), let express = capability(backend, PCICapabilityID.pciExpress),
            backend.readConfig(express + PCIExpressRegister.deviceCapabilities, width: 4) & PCIExpressRegister.deviceCapabilitiesFLR != 0
        {
            methods.append(.flr)
        }
        if !quirks.contains(.noFLR), let af = capability(backend, PCICapabilityID.advancedFeatures) {
            let bits = backend.readConfig(af + afCapabilities, width: 1)
            if bits & afTransactionsPending != 0 && bits & afFLR != 0 { methods.append(.afFLR) }
        }
        if !quirks.contains(.noPMReset), let pm = capability(backend, PCICapabilityID.powerManagement),
            backend.readConfig(pm + PCIPowerManagement.control, width: 2) & PCIPowerManagement.noSoftReset == 0
        {
            methods.append(.pm)
        }
        if !quirks.contains(.noBusReset), placement.aloneBelowBridge { methods.append(.bus) }
        return methods
    }

    /// `__pci_reset_function_locked`: the methods tried in order, the first that succeeds wins;
    /// `ENOTTY` when there are none (or every one answered `ENOTTY`); any other error stops the
    /// walk and is returned (VPCI-232). No save or restore around it: callers do that.
    static func reset(_ backend: any PCIDeviceBackend, methods: [PCIResetMethod]) -> Errno? {
        for method in methods {
            let result = reset(backend, method)
            if result != .inappropriateIOCTLForDevice { return result }
        }
        return .inappropriateIOCTLForDevice
    }

    /// One method, done as the PCI core does it: config writes the function acts on.
    private static func reset(_ backend: any PCIDeviceBackend, _ method: PCIResetMethod) -> Errno? {
        switch method {
        case .flr:
            // pcie_flr: Initiate FLR written into Device Control.
            guard let express = capability(backend, PCICapabilityID.pciExpress) else { return .inappropriateIOCTLForDevice }
            let control = backend.readConfig(express + PCIExpressRegister.deviceControl, width: 2)
            backend.writeConfig(express + PCIExpressRegister.deviceControl, width: 2, control | PCIExpressRegister.initiateFLR)
        case .afFLR:
            // pci_af_flr: Initiate FLR written into the AF control byte.
            guard let af = capability(backend, PCICapabilityID.advancedFeatures) else { return .inappropriateIOCTLForDevice }
            backend.writeConfig(af + afControl, width: 1, afInitiateFLR)
        case .pm:
            // pci_pm_reset: only from D0 (EINVAL otherwise); D3hot, then D0 — a function without
            // No_Soft_Reset comes back from D3hot reset.
            guard let pm = capability(backend, PCICapabilityID.powerManagement) else { return .inappropriateIOCTLForDevice }
            let control = backend.readConfig(pm + PCIPowerManagement.control, width: 2)
            guard control & PCIPowerManagement.stateMask == 0 else { return .invalidArgument }
            backend.writeConfig(pm + PCIPowerManagement.control, width: 2, (control & ~PCIPowerManagement.stateMask) | 3)
            let down = backend.readConfig(pm + PCIPowerManagement.control, width: 2)
            backend.writeConfig(pm + PCIPowerManagement.control, width: 2, down & ~PCIPowerManagement.stateMask)
        case .bus:
            // pci_bridge_secondary_bus_reset on the parent bridge: the function is alone below
            // it (the probe), so the pulse resets this function and nothing else.
            backend.resetFunction()
        }
        return nil
    }
}
