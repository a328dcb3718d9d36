extension BusSnapshot {
    /// The reset methods the kernel would find for a function, in `pci_reset_fn_methods` order
    /// and as far as config space tells (`drivers/pci/pci.c`, probed by `pci_init_reset_methods`):
    /// - `flr`: `pcie_reset_flr`, PCIe Device Capabilities FLR, unless `quirk_no_flr`;
    /// - `af_flr`: `pci_af_flr`, the Advanced Features capability with TP and FLR, unless `quirk_no_flr`;
    /// - `pm`: `pci_pm_reset`, a PM capability without No_Soft_Reset, unless `quirk_no_pm_reset`;
    /// - `bus`: `pci_parent_bus_reset`, a secondary bus reset of the parent bridge, for a function
    ///   alone on a non-root bus that is not itself a bridge (`dev->subordinate`), unless
    ///   `quirk_no_bus_reset`.
    /// Device-specific, ACPI `_RST` and CXL methods need firmware or device knowledge a snapshot lacks.
    /// As in `pci_parent_bus_reset`, only the function's own `NO_BUS_RESET` counts; the parent
    /// bridge's flag (checked by `pci_bus_resettable` for a hot reset of the whole bus) does not.
    public func resetMethods(of address: PCIAddress) -> [String] {
        guard let index = topology.index(of: address) else { return [] }
        let function = topology.functions[index]
        let quirks = resetQuirks(of: address).flags
        var methods: [String] = []
        if function.hasPCIeFLR, !quirks.contains(.noFLR) { methods.append("flr") }
        if function.hasAdvancedFeaturesFLR, !quirks.contains(.noFLR) { methods.append("af_flr") }
        if let pm = function.capabilities.first(PCICapabilityID.powerManagement),
            function.config.u16(pm.offset + 4) & 0x8 == 0,  // PCI_PM_CTRL_NO_SOFT_RESET
            !quirks.contains(.noPMReset)
        {
            methods.append("pm")
        }
        if topology.parentBridge(of: index) != nil, !function.isBridge, !quirks.contains(.noBusReset),
            topology.bus(of: index).functions.count == 1
        {
            methods.append("bus")
        }
        return methods
    }

    /// The reset quirks of `drivers/pci/quirks.c` that apply to a function, and their names.
    public func resetQuirks(of address: PCIAddress) -> (flags: ResetQuirkFlags, quirks: [String]) {
        guard let index = topology.index(of: address) else { return ([], []) }
        return ResetQuirkTable.flags(for: topology.functions[index], onRootBus: topology.isOnRootBus(index))
    }
}
