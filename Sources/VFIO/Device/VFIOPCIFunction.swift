import Locking
import PCIBus

/// The device behind every fd of one VFIO device: `struct vfio_device` with vfio-pci's
/// `vfio_pci_core_device`. The group path may open a device several times (VG-34); the device is
/// opened once however many fds it has — the first open enables the function
/// (`vfio_pci_core_enable`: a function reset when `reset_works`, decode on, bus master off, its
/// interrupts routed to vfio-pci's handlers), the last close disables it (`vfio_pci_core_disable`:
/// interrupts off, the function reset, bus master off) — and its interrupt configuration and
/// virtualised config space belong to the device, so every fd sees what any of them set up.
final class VFIOPCIFunction: Sendable {
    let address: PCIAddress
    let backend: (any PCIDeviceBackend)?
    let interrupts: VFIOPCIInterrupts
    let hardware: InterruptHardware?
    let config: PThreadMutex<VFIOPCIConfig?>
    /// `vdev->reset_works`: a function reset succeeded when the device was opened.
    let resetWorks: Bool

    /// The first open: enables the function behind `address` (none when no device model stands
    /// behind it; every device call then fails with `ENODEV`).
    init(address: PCIAddress, backend: (any PCIDeviceBackend)?) {
        self.address = address
        self.backend = backend
        interrupts = VFIOPCIInterrupts(device: "VFIO device \(address)")
        guard let backend else {
            hardware = nil
            config = PThreadMutex(nil)
            resetWorks = false
            return
        }
        resetWorks = backend.supportsFunctionReset
        if resetWorks { backend.resetFunction() }
        let hardware = InterruptHardware(backend: backend)
        self.hardware = hardware
        config = PThreadMutex(VFIOPCIConfig(backend: backend, hardware: hardware))
        // pci_enable_device: decode the BARs the function has; bus mastering stays off.
        let command = backend.readConfig(PCIRegister.command, width: 2)
        backend.writeConfig(PCIRegister.command, width: 2, (command | Self.decodeBits(backend) | PCICommand.interruptDisable) & ~PCICommand.busMaster)
        backend.connectInterrupts(interrupts)
    }

    /// `VFIO_DEVICE_RESET`'s function-level reset: interrupts stay configured, the function comes
    /// back with decode on and bus master off.
    func reset() {
        guard let backend else { return }
        backend.resetFunction()
        restoreAfterReset()
    }

    /// After a reset the PCI core restores the saved state (`pci_restore_state`): decode and the
    /// interrupt programming vfio-pci had set up, but not bus mastering.
    func restoreAfterReset() {
        guard let backend, let hardware else { return }
        backend.writeConfig(PCIRegister.command, width: 2, Self.decodeBits(backend) | PCICommand.interruptDisable)
        hardware.apply(from: VFIOPCIInterrupts.State(), to: interrupts.state.withLock { $0 })
    }

    /// The last close (`vfio_pci_core_disable`): interrupts off, the function reset, bus master off.
    func disable() {
        guard let backend, let hardware else { return }
        interrupts.disableAll(hardware: hardware)
        backend.connectInterrupts(nil)
        if resetWorks { backend.resetFunction() }
        backend.writeConfig(PCIRegister.command, width: 2, backend.readConfig(PCIRegister.command, width: 2) & ~PCICommand.busMaster)
    }

    /// `PCI_COMMAND_IO` / `PCI_COMMAND_MEMORY` for the kinds of BAR the function has.
    private static func decodeBits(_ backend: any PCIDeviceBackend) -> UInt32 {
        (0..<6).compactMap(backend.barResource).reduce(0) { $0 | ($1.kind == .io ? PCICommand.io : PCICommand.memory) }
    }
}
