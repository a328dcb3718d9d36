import IOMMU
import PCIBus

/// vfio-pci's reset domain (`struct vfio_device_set`, registered at probe, VPCI-17): the vfio-pci
/// functions one bus reset reaches — here every function below the parent bridge, the scope
/// `VFIO_DEVICE_PCI_HOT_RESET` resets too (`VFIODeviceDirectory.hotResetScope`).
enum VFIOPCIDevSet {
    /// `vfio_pci_dev_set_try_reset`, at the end of a device's last close (VPCI-22): a bus reset
    /// (`pci_reset_bus`: every function saved and disabled, reset, restored) only if (a) no other
    /// device of the set is open, (b) some device of the set has `needs_reset` (a last close
    /// without a function reset: no FLR), (c) the set is resettable — a bus reset exists (not a
    /// root bus) and every function it reaches is a vfio-pci device — and (d) the runtime-PM get
    /// succeeds (always, here). Success clears `needs_reset` on every device of the set. Any
    /// unmet condition: nothing happens, silently.
    static func tryReset(afterClosing closed: PCIAddress, directory: VFIODeviceDirectory, core: IOMMUCore) {
        guard let scope = directory.hotResetScope(of: closed) else { return }
        let members = scope.compactMap { address -> (any PCIDeviceBackend)? in
            guard core.device(address)?.driver.map(KernelDriver.isVFIO) == true else { return nil }
            return directory.backends[address]
        }
        let driverData = directory.driverData
        // vfio_pci_dev_set_needs_reset: the set's open count ≤ 1 (the closing device's own — it is
        // already closed here), then any needs_reset.
        guard members.allSatisfy({ driverData.openFunction($0) == nil }), members.contains(where: driverData.needsReset) else { return }
        // vfio_pci_dev_set_resettable: every function the reset reaches is in the set.
        guard members.count == scope.count else { return }
        let saved = members.map { PCICore.saveAndDisable($0) }
        for backend in members { backend.resetFunction() }
        for (backend, state) in zip(members, saved) { PCICore.restoreState(backend, state) }
        for backend in members { driverData.setNeedsReset(false, for: backend) }
    }
}
