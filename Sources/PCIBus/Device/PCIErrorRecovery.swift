/// `pci_channel_state_t` (`include/linux/pci.h`): what the AER core tells a driver about the link
/// when it reports an error (`report_error_detected` in `drivers/pci/pcie/err.c`).
public enum PCIChannelState: Sendable, Equatable {
    /// `pci_channel_io_normal`: a non-fatal uncorrectable error; the link still works.
    case normal
    /// `pci_channel_io_frozen`: a fatal error; I/O is blocked until the link is reset.
    case frozen
    /// `pci_channel_io_perm_failure`: the device is gone.
    case permanentFailure
}

/// `pci_ers_result_t`: a driver's answer to `error_detected`.
public enum PCIErrorRecoveryResult: Sendable, Equatable {
    /// `PCI_ERS_RESULT_NONE`.
    case none
    /// `PCI_ERS_RESULT_CAN_RECOVER`.
    case canRecover
    /// `PCI_ERS_RESULT_NEED_RESET`.
    case needReset
    /// `PCI_ERS_RESULT_DISCONNECT`.
    case disconnect
    /// `PCI_ERS_RESULT_RECOVERED`.
    case recovered
    /// `PCI_ERS_RESULT_NO_AER_DRIVER`: no driver, or one without `err_handler`.
    case noAERDriver
}
