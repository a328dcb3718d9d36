import PCIBus

/// A mapped expansion ROM (`pci_map_rom` / `pci_unmap_rom`, `drivers/pci/rom.c` — not in
/// `../shared/kernel`): what vfio-pci's region 6 reads through (VPCI-51, VPCI-95).
struct PCIROMMapping {
    let backend: any PCIDeviceBackend
    /// `pci_resource_len(pdev, PCI_ROM_RESOURCE)`.
    let length: UInt64
    /// `pci_get_rom_size`: the bytes the ROM's images fill (the `*size` `pci_map_rom` returns).
    let imageSize: UInt64
    /// `IORESOURCE_ROM_ENABLE`: the ROM BAR was enabled before the map, so the unmap leaves it so.
    private let wasEnabled: Bool

    /// `pci_map_rom`: nil when the ROM BAR is not assigned (resource start 0); else the ROM BAR
    /// enabled at its resource address (`pci_enable_rom`) unless it already was, and the images
    /// measured — none valid (the device did not answer, e.g. memory decode off, or no 0xAA55
    /// header) → the ROM BAR disabled again (`pci_disable_rom`) and nil.
    static func map(_ backend: any PCIDeviceBackend) -> PCIROMMapping? {
        guard let resource = backend.romResource, resource.busAddress != 0 else { return nil }
        let register = PCIExpansionROM.register
        let current = backend.readConfig(register, width: 4)
        let wasEnabled = current & PCIExpansionROM.enable != 0
        if !wasEnabled {
            let address = UInt32(truncatingIfNeeded: resource.busAddress) & PCIExpansionROM.addressMask
            backend.writeConfig(register, width: 4, current & ~PCIExpansionROM.addressMask | address | PCIExpansionROM.enable)
        }
        let size = PCIExpansionROM.imageSize(length: resource.size) { UInt8(truncatingIfNeeded: backend.readROM(offset: $0, width: 1)) }
        let mapping = PCIROMMapping(backend: backend, length: resource.size, imageSize: size, wasEnabled: wasEnabled)
        guard size > 0 else {
            mapping.unmap()
            return nil
        }
        return mapping
    }

    /// `pci_unmap_rom`: the ROM BAR disabled again unless it was enabled before the map.
    func unmap() {
        guard !wasEnabled else { return }
        let register = PCIExpansionROM.register
        backend.writeConfig(register, width: 4, backend.readConfig(register, width: 4) & ~PCIExpansionROM.enable)
    }

    /// `vfio_pci_memory_lock_and_enable` / `_unlock_and_restore` around `body`: memory decode on
    /// in the device for its duration, as GET_REGION_INFO has it while it probes the ROM.
    static func withMemoryDecode<T>(_ backend: any PCIDeviceBackend, _ body: () -> T) -> T {
        let command = backend.readConfig(PCIRegister.command, width: 2)
        if command & PCICommand.memory == 0 { backend.writeConfig(PCIRegister.command, width: 2, command | PCICommand.memory) }
        defer { if command & PCICommand.memory == 0 { backend.writeConfig(PCIRegister.command, width: 2, command) } }
        return body()
    }
}
