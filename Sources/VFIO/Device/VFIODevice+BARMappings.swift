import Locking

extension VFIODevice {
    /// Registers how to revoke one mapping of this device's BARs (`vfio_pci_zap_bars`, VPCI-103):
    /// `zap` runs whenever vfio-pci zaps them. Returns the token for `removeBARMapping`.
    package func addBARMapping(zap: @escaping @Sendable () -> Void) -> UInt64 { function.barMappings.add(zap) }

    /// Forgets a mapping registered with `addBARMapping` (its munmap).
    package func removeBARMapping(_ token: UInt64) { function.barMappings.remove(token) }

    /// How many times vfio-pci has zapped this device's BAR mappings since it was opened
    /// (VPCI-103): a driver holding a mapping of device RAM (`mapRegion`) must stop using it and
    /// wait for memory decode to be on again, as a mapping through the fd would fault.
    public var barMappingZaps: Int { function.barMappings.count }

    /// `__vfio_pci_memory_enabled` (VPCI-92, VPCI-102): the function below D3hot and memory decode
    /// on in the virtual COMMAND register — whether a zapped mapping may fault back in.
    public var memoryDecodeEnabled: Bool { function.powerState < 3 && config.withLock { $0?.memoryEnabled ?? false } }
}
