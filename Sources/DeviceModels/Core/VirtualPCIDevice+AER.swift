import Locking
import PCIBus

extension VirtualPCIDevice {
    /// The function signals an uncorrectable error and the AER core runs its recovery for it
    /// (`pcie_do_recovery` in `drivers/pci/pcie/err.c`): the bound driver's `error_detected` with
    /// `pci_channel_io_normal` for a non-fatal error, `pci_channel_io_frozen` for a fatal one; the
    /// driver's answer is returned, `noAERDriver` when no driver is connected. Not modelled: the
    /// AER status registers, the root port's error message and, for a fatal error, the
    /// secondary bus reset that follows.
    @discardableResult
    public func reportUncorrectableError(fatal: Bool = false) -> PCIErrorRecoveryResult {
        guard let sink = interruptSink.withLock({ $0 }) else { return .noAERDriver }
        return sink.errorDetected(fatal ? .frozen : .normal)
    }
}
