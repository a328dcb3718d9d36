import PCIBus

/// What vfio-pci programs in the device when interrupts change (`pci_alloc_irq_vectors`,
/// `pci_intx`, `pci_msix_mask`): the MSI and MSI-X capabilities found in the function's config
/// space, and the INTx pin.
struct InterruptHardware {
    let backend: PCIDeviceBackend
    let interruptPin: UInt8
    let msi: (offset: Int, vectors: Int)?
    let msix: (offset: Int, tableBAR: Int, tableOffset: UInt64, size: Int)?

    init(backend: PCIDeviceBackend) {
        self.backend = backend
        let bytes = (0..<backend.configSpaceSize).map { UInt8(truncatingIfNeeded: backend.readConfig($0, width: 1)) }
        let function = PCIFunction(address: backend.address, config: PCIConfigSpace(bytes: bytes))
        interruptPin = bytes.count > 0x3d ? bytes[0x3d] : 0
        msi = function.capabilities.first(PCICapabilityID.msi).map { ($0.offset, function.msiVectors ?? 1) }
        msix = function.capabilities.first(PCICapabilityID.msix).map { capability in
            let table = backend.readConfig(capability.offset + 4, width: 4)
            return (capability.offset, Int(table & 7), UInt64(table & ~7), function.msixTableSize ?? 1)
        }
    }

    /// The MSI-X table's bytes in BAR `bar` (`msix_offset` … `+ msix_size`), which vfio-pci keeps
    /// from userspace: reads of it are all ones, writes to it are dropped (`vfio_pci_core_do_io_rw`).
    func msixTable(in bar: Int) -> Range<UInt64>? {
        guard let msix, msix.tableBAR == bar else { return nil }
        return msix.tableOffset..<msix.tableOffset + UInt64(msix.size) * 16
    }

    /// `VFIO_DEVICE_GET_IRQ_INFO` counts per index (`vfio_pci_get_irq_count`): INTx 1 with a pin,
    /// MSI and MSI-X from their capabilities, ERR and REQ 1 on every device (7.3 dropped ERR's
    /// PCIe check, VPCI-150, VPCI-151).
    var counts: [UInt32] {
        [interruptPin != 0 ? 1 : 0, UInt32(msi?.vectors ?? 0), UInt32(msix?.size ?? 0), 1, 1]
    }

    /// Programs the function for a change of interrupt state.
    func apply(from old: VFIOPCIInterrupts.State, to new: VFIOPCIInterrupts.State) {
        guard old.kind != new.kind || old.vectors.count != new.vectors.count else { return }
        switch old.kind {
        case .intx: setCommandBit(PCICommand.interruptDisable, on: true)
        case .msi: if let msi { updateConfig(msi.offset + 2) { $0 & ~0x71 } }
        case .msix:
            if let msix {
                for vector in 0..<min(old.vectors.count, msix.size) { backend.writeBAR(msix.tableBAR, offset: msix.tableOffset + UInt64(vector) * 16 + 12, width: 4, 1) }
                updateConfig(msix.offset + 2) { $0 & ~0x8000 }
            }
        case .none: break
        }
        switch new.kind {
        case .intx: setCommandBit(PCICommand.interruptDisable, on: false)
        case .msi:
            if let msi {
                let enabled = max(1, new.vectors.count).nextPowerOfTwoLog2
                updateConfig(msi.offset + 2) { ($0 & ~0x70) | UInt32(enabled) << 4 | 1 }
            }
        case .msix:
            if let msix {
                updateConfig(msix.offset + 2) { $0 | 0x8000 }
                for vector in 0..<min(new.vectors.count, msix.size) { backend.writeBAR(msix.tableBAR, offset: msix.tableOffset + UInt64(vector) * 16 + 12, width: 4, 0) }
            }
        case .none: break
        }
    }

    private func setCommandBit(_ bit: UInt32, on: Bool) {
        updateConfig(PCIRegister.command) { on ? $0 | bit : $0 & ~bit }
    }

    private func updateConfig(_ offset: Int, _ change: (UInt32) -> UInt32) {
        backend.writeConfig(offset, width: 2, change(backend.readConfig(offset, width: 2)))
    }
}

extension Int {
    /// ⌈log2(self)⌉ for self ≥ 1: the MSI Multiple Message Enable encoding of a vector count.
    var nextPowerOfTwoLog2: Int { self <= 1 ? 0 : Int.bitWidth - (self - 1).leadingZeroBitCount }
}
