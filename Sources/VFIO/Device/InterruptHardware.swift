import PCIBus

/// What vfio-pci programs in the device when interrupts change (`pci_alloc_irq_vectors`,
/// `pci_intx`, `pci_msix_mask`): the MSI and MSI-X capabilities found in the function's config
/// space, and the INTx pin as vfio-pci's virtual config space shows it (VPCI-124, VPCI-151).
struct InterruptHardware {
    let backend: PCIDeviceBackend
    let interruptPin: UInt8
    /// `vdev->pci_2_3`: INTx Disable works, so INTx masking follows it in the device.
    let intxMaskable: Bool
    /// `vdev->nointx`: INTx Disable is held set whenever MSI/MSI-X is off.
    let nointx: Bool
    let msi: (offset: Int, vectors: Int)?
    let msix: (offset: Int, tableBAR: Int, tableOffset: UInt64, size: Int)?
    /// The MSI domain allocates several MSI vectors to one function (`MSI_FLAG_MULTI_PCI_MSI`,
    /// `PlatformProfile.msiDomainSupportsMultiMSI`); without it an MSI enable gets one (VPCI-181).
    let multiMSI: Bool

    /// `vdev->has_dyn_msix` (`pci_msix_can_alloc_dyn`, VPCI-10 step 10): the function has an MSI-X
    /// capability and its MSI domain allocates MSI-X vectors after enable. The simulated machines'
    /// MSI domains do, as x86's vector and interrupt-remapping domains do (MSI_FLAG_PCI_MSIX_ALLOC_DYN
    /// in their supported flags, since v6.2): so `VFIO_DEVICE_GET_IRQ_INFO` drops NORESIZE for
    /// MSI-X and SET_IRQS grows it (VPCI-152, VPCI-183).
    var dynamicMSIX: Bool { msix != nil }

    init(backend: PCIDeviceBackend, interruptPin: UInt8? = nil, intxMaskable: Bool = true, nointx: Bool = false, multiMSI: Bool = true) {
        self.backend = backend
        self.multiMSI = multiMSI
        let bytes = (0..<backend.configSpaceSize).map { UInt8(truncatingIfNeeded: backend.readConfig($0, width: 1)) }
        let function = PCIFunction(address: backend.address, config: PCIConfigSpace(bytes: bytes))
        self.interruptPin = interruptPin ?? (bytes.count > 0x3d ? bytes[0x3d] : 0)
        self.intxMaskable = intxMaskable
        self.nointx = nointx
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

    /// Programs the function for a change of interrupt state. Leaving MSI/MSI-X clears INTx
    /// Disable (`pci_msi_shutdown`'s `pci_intx_for_msi(dev, 1)`; a nointx function gets it set
    /// again); entering MSI/MSI-X sets it (`pci_intx_for_msi(dev, 0)`); entering INTx sets it to
    /// the initial mask state on a PCI 2.3 function (`vfio_intx_enable`: `pci_intx(pdev,
    /// !masked)`). MSI-X table accesses run with memory decode on
    /// (`vfio_pci_memory_lock_and_enable`).
    func apply(from old: VFIOPCIInterrupts.State, to new: VFIOPCIInterrupts.State) {
        if old.kind == .intx, new.kind == .intx, old.intxMasked != new.intxMasked {
            // MASK/UNMASK (__vfio_pci_intx_mask, vfio_pci_intx_unmask_handler: vfio_pci_intrs.c
            // :121/:135 pci_intx(pdev, 0), :192 pci_check_and_unmask_intx) on a PCI 2.3 function.
            setINTxDisable(new.intxMasked)
        }
        if old.kind == .msix, new.kind == .msix {
            // Dynamic MSI-X growth (pci_msix_alloc_irq_at): the new vectors' entries unmasked, MSI-X stays on.
            if let msix {
                withMemoryDecode { for vector in new.allocated.subtracting(old.allocated) where vector < msix.size { unmaskEntry(vector, msix) } }
            }
            return
        }
        guard old.kind != new.kind else { return }
        switch old.kind {
        case .intx: break  // vfio_intx_disable leaves INTx Disable as it is
        case .msi:
            if let msi { updateConfig(msi.offset + 2) { $0 & ~0x71 } }
            if new.kind != .msi { leaveMessageSignalled() }
        case .msix:
            if let msix {
                withMemoryDecode {
                    for vector in old.allocated where vector < msix.size { backend.writeBAR(msix.tableBAR, offset: msix.tableOffset + UInt64(vector) * 16 + 12, width: 4, 1) }
                }
                updateConfig(msix.offset + 2) { $0 & ~0x8000 }
            }
            if new.kind != .msix { leaveMessageSignalled() }
        case .none: break
        }
        switch new.kind {
        case .intx:
            if intxMaskable { setCommandBit(PCICommand.interruptDisable, on: new.intxMasked) }
        case .msi:
            if let msi {
                setCommandBit(PCICommand.interruptDisable, on: true)
                let enabled = max(1, new.allocated.count).nextPowerOfTwoLog2
                updateConfig(msi.offset + 2) { ($0 & ~0x70) | UInt32(enabled) << 4 | 1 }
            }
        case .msix:
            if let msix {
                setCommandBit(PCICommand.interruptDisable, on: true)
                updateConfig(msix.offset + 2) { $0 | 0x8000 }
                withMemoryDecode {
                    for vector in new.allocated.sorted() where vector < msix.size { unmaskEntry(vector, msix) }
                }
            }
        case .none: break
        }
    }

    /// `pci_restore_msi_state` after a reset (VPCI-231): MSI or MSI-X programmed again as vfio-pci
    /// had it; INTx state comes back with COMMAND, so nothing for it.
    func restore(_ state: VFIOPCIInterrupts.State) {
        guard state.kind == .msi || state.kind == .msix else { return }
        apply(from: VFIOPCIInterrupts.State(), to: state)
    }

    /// `pci_intx_for_msi(dev, 1)`, then vfio_msi_disable's `pci_intx(pdev, 0)` for nointx.
    private func leaveMessageSignalled() {
        setCommandBit(PCICommand.interruptDisable, on: nointx)
    }

    /// Clears the Vector Control mask bit of MSI-X table entry `vector`.
    private func unmaskEntry(_ vector: Int, _ msix: (offset: Int, tableBAR: Int, tableOffset: UInt64, size: Int)) {
        backend.writeBAR(msix.tableBAR, offset: msix.tableOffset + UInt64(vector) * 16 + 12, width: 4, 0)
    }

    /// `vfio_pci_memory_lock_and_enable` / `_unlock_and_restore`: memory decode on around `body`.
    private func withMemoryDecode(_ body: () -> Void) {
        let command = backend.readConfig(PCIRegister.command, width: 2)
        if command & PCICommand.memory == 0 { backend.writeConfig(PCIRegister.command, width: 2, command | PCICommand.memory) }
        body()
        if command & PCICommand.memory == 0 { backend.writeConfig(PCIRegister.command, width: 2, command) }
    }

    /// `pci_intx` on INTx Disable (only a PCI 2.3 function has a working one).
    func setINTxDisable(_ disabled: Bool) {
        if intxMaskable { setCommandBit(PCICommand.interruptDisable, on: disabled) }
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
