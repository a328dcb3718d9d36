extension PCITopology {
    /// Functions of a live host whose config space stops short of 256 bytes: what sysfs lets a
    /// reader without `CAP_SYS_ADMIN` see (64 bytes, 128 for a CardBus bridge). Mirrors
    /// `pci_read_config` in `drivers/pci/pci-sysfs.c`. A dump's length is what was captured and
    /// never counts here.
    public var headerOnlyFunctions: [PCIAddress] {
        guard case .host = source else { return [] }
        return functions.filter { $0.config.count < PCIRegister.legacySpaceSize }.map(\.address)
    }

    /// One note for the whole host when config space was cut short, instead of a capability-chain
    /// complaint per function; nil when every function was read in full.
    public var configSpaceLimitNote: String? {
        let limited = headerOnlyFunctions
        guard !limited.isEmpty else { return nil }
        return "only the first 64 bytes of config space are readable without root: capabilities, ACS and groups "
            + "below are incomplete (\(limited.count) of \(functions.count) functions; run as root to read all of it)"
    }
}
