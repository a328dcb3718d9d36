import Locking
import PCIBus

extension VFIOPCIInterrupts {
    /// `vfio_pci_core_aer_err_detected` (`drivers/vfio/pci/vfio_pci_core.c`, VPCI-191): the ERR
    /// trigger, if the user set one, is signalled; the answer is always "can recover", whatever the
    /// channel state.
    func errorDetected(_ state: PCIChannelState) -> PCIErrorRecoveryResult {
        self.state.withLock { state in state.err?.signal() }
        return .canRecover
    }

    /// `vfio_pci_core_request` (VPCI-191): the REQ trigger, if set, is signalled; whether it was.
    func request() -> Bool {
        state.withLock { state in
            guard let req = state.req else { return false }
            req.signal()
            return true
        }
    }
}

extension VFIOSystem {
    /// One round of the wait in `vfio_unregister_group_dev` (`drivers/vfio/vfio_main.c`) when the
    /// function at `address` is unbound from vfio-pci while a user holds it open: the driver's
    /// `request` callback (`vfio_pci_core_request`) signals the user's REQ trigger, asking it to
    /// release the device; the kernel then waits for the last close and asks again every 10
    /// seconds. Returns whether the device is open (the unbind must keep waiting); nil when no
    /// vfio-pci function is at `address`. Without a REQ trigger nothing is signalled (VPCI-191).
    public func requestRelease(_ address: PCIAddress) -> (open: Bool, signalled: Bool)? {
        guard let backend = devices.backends[address] else { return nil }
        guard let function = devices.driverData.openFunction(backend) else { return (false, false) }
        return (true, function.interrupts.request())
    }
}
