import Locking
import PCIBus
import Synchronization
import SystemPackage

/// The device behind every fd of one VFIO device: `struct vfio_device` with vfio-pci's
/// `vfio_pci_core_device`. The group path may open a device several times (VG-34); the device is
/// opened once however many fds it has — the first open enables the function
/// (`vfio_pci_core_enable`, VPCI-10…14), the last close disables it (`vfio_pci_core_disable`,
/// VPCI-20) — and its interrupt configuration and virtualised config space belong to the device,
/// so every fd sees what any of them set up.
final class VFIOPCIFunction: Sendable, VFIOPCIConfigHost {
    let address: PCIAddress
    let backend: (any PCIDeviceBackend)?
    /// The machine's vfio-pci driver data this function registers in while open.
    let driverData: VFIOPCIDriverData
    let interrupts: VFIOPCIInterrupts
    let hardware: InterruptHardware?
    let config: PThreadMutex<VFIOPCIConfig?>
    /// `pdev->reset_methods`: what `pci_init_reset_methods` found, in `pci_reset_fn_methods` order.
    let resetMethods: [PCIResetMethod]
    /// `vdev->reset_works`: a function reset succeeded when the device was opened.
    let resetWorks: Bool
    /// `vdev->nointx`: a function in vfio-pci's broken-INTx list (VPCI-13).
    let nointx: Bool
    /// `vdev->pci_saved_state`: the state after enable and reset, loaded back at the last close.
    private let savedState: PCISavedState?
    /// `vdev->needs_pm_restore`: the function lacks No_Soft_Reset.
    private let needsPowerManagementRestore: Bool
    /// `vdev->pm_save`: the state saved on the way into D3hot.
    private let powerManagementSave = PThreadMutex<PCISavedState?>(nil)
    /// The BAR mappings `vfio_pci_zap_bars` revokes (VPCI-103).
    let barMappings = BARMappingZaps()
    /// `pdev->current_state` (0 = D0 … 3 = D3hot), cached for the BAR-access check (VPCI-92).
    private let currentPowerState = Atomic<Int>(0)
    /// Runtime power management and the user's low-power state (VPCI-253).
    let runtimePM = VFIOPCIRuntimePM()
    /// `vdev->ioeventfds_list` (VPCI-241).
    let ioeventfds = VFIOPCIIoeventfds()

    /// The first open: enables the function behind `address` (none when no device model stands
    /// behind it; every device call then fails with `ENODEV`). In `vfio_pci_core_enable`'s order:
    /// bus master off, `pci_enable_device`, `pci_try_reset_function` (`reset_works`), the state
    /// saved, INTx probed (`pci_2_3`, or `nointx`) and INTx Disable cleared in the device for a
    /// PCI 2.3 function, then `vfio_config_init` reads the virtual config space from the device.
    init(
        address: PCIAddress, backend: (any PCIDeviceBackend)?, driverData: VFIOPCIDriverData, placement: PCIResetPlacement = .none,
        multiMSI: Bool = true
    ) {
        self.address = address
        self.backend = backend
        self.driverData = driverData
        guard let backend else {
            interrupts = VFIOPCIInterrupts(device: "VFIO device \(address)")
            hardware = nil
            config = PThreadMutex(nil)
            resetMethods = []
            resetWorks = false
            nointx = false
            savedState = nil
            needsPowerManagementRestore = false
            return
        }
        PCICore.clearMaster(backend)
        PCICore.enableDevice(backend)
        let methods = PCICore.resetMethods(backend, placement: placement)
        resetMethods = methods
        resetWorks = Self.tryReset(backend, methods: methods) {} == nil
        savedState = PCICore.saveState(backend)
        let vendor = UInt16(truncatingIfNeeded: backend.readConfig(PCIRegister.vendorID, width: 2))
        let device = UInt16(truncatingIfNeeded: backend.readConfig(PCIRegister.deviceID, width: 2))
        nointx = PCICore.brokenINTx(vendor: vendor, device: device)
        var intxMaskable = false
        if nointx {
            PCICore.intx(backend, enable: false)
        } else {
            intxMaskable = PCICore.intxMaskSupported(backend)
        }
        let command = backend.readConfig(PCIRegister.command, width: 2)
        if intxMaskable && command & PCICommand.interruptDisable != 0 {
            backend.writeConfig(PCIRegister.command, width: 2, command & ~PCICommand.interruptDisable)
        }
        let virtual = VFIOPCIConfig(backend: backend, nointx: nointx)
        config = PThreadMutex(virtual)
        let hardware = InterruptHardware(
            backend: backend, interruptPin: virtual.vconfig[0x3d], intxMaskable: intxMaskable, nointx: nointx, multiMSI: multiMSI)
        self.hardware = hardware
        interrupts = VFIOPCIInterrupts(device: "VFIO device \(address)", msiQmax: driverData.msiQmax(of: backend), hardware: hardware)
        needsPowerManagementRestore = PCICore.needsPowerManagementRestore(backend)
        currentPowerState.store(PCICore.powerState(backend), ordering: .relaxed)
        backend.connectInterrupts(interrupts)
        driverData.bind(self, to: backend)
    }

    // MARK: Resets (§6)

    /// `pci_try_reset_function` (VPCI-230): no reset method — `ENOTTY`; else
    /// `pci_dev_save_and_disable`, `__pci_reset_function_locked` over `methods` (VPCI-232),
    /// `pci_dev_restore` (VPCI-231), `restoreInterrupts` standing for `pci_restore_msi_state`.
    @discardableResult
    static func tryReset(_ backend: any PCIDeviceBackend, methods: [PCIResetMethod], restoreInterrupts: () -> Void) -> Errno? {
        guard !methods.isEmpty else { return .inappropriateIOCTLForDevice }
        let saved = PCICore.saveAndDisable(backend)
        let result = PCICore.reset(backend, methods: methods)
        PCICore.restoreState(backend, saved, restoreInterrupts: restoreInterrupts)
        return result
    }

    /// `pci_try_reset_function` on this device (`VFIO_DEVICE_RESET`, an intercepted FLR): config
    /// space — COMMAND with bus master and decode, the BARs — and the MSI/MSI-X programming come
    /// back as they were; vconfig and vfio-pci's interrupt state are untouched (VPCI-201).
    @discardableResult
    func tryReset() -> Errno? {
        guard let backend else { return .operationNotSupportedByDevice }
        let result = Self.tryReset(backend, methods: resetMethods) { restoreInterrupts() }
        refreshPowerState()
        return result
    }

    /// `pci_restore_msi_state`: MSI or MSI-X reprogrammed from what vfio-pci enabled.
    func restoreInterrupts() {
        guard let hardware else { return }
        hardware.restore(interrupts.state.withLock { $0 })
    }

    /// Re-reads `pdev->current_state` after the PCI core changed it (a reset, a bus reset).
    func refreshPowerState() {
        guard let backend else { return }
        currentPowerState.store(PCICore.powerState(backend), ordering: .relaxed)
    }

    /// `pdev->current_state`.
    var powerState: Int { currentPowerState.load(ordering: .relaxed) }

    /// `vfio_pci_set_power_state` (with `vfio_lock_and_set_power_state`'s zap for D3hot): a function without No_Soft_Reset has its state saved on the
    /// way into D3hot and restored on its return to D0; then `pci_set_power_state` (VPCI-131).
    func setPowerState(_ state: Int) {
        guard let backend else { return }
        // vfio_lock_and_set_power_state: the BAR mappings zapped on the way to D3hot (VPCI-103).
        if state >= 3 { barMappings.zapAll() }
        let current = PCICore.powerState(backend)
        var saved: PCISavedState?
        var needsRestore = false
        if needsPowerManagementRestore {
            if current < 3 && state >= 3 { saved = PCICore.saveState(backend) }
            if current >= 3 && state <= 0 { needsRestore = true }
        }
        if PCICore.setPowerState(backend, state) == nil {
            if let saved, PCICore.powerState(backend) >= 3 {
                powerManagementSave.withLock { $0 = saved }
            } else if needsRestore, let saved = powerManagementSave.withLock({ state in defer { state = nil }; return state }) {
                PCICore.restoreState(backend, saved) { restoreInterrupts() }
            }
        }
        refreshPowerState()
    }

    // MARK: VFIOPCIConfigHost

    var msiActive: Bool { interrupts.kind == .msi }
    var msiQmax: Int { interrupts.msiQmax }

    func virtualINTxDisable(_ disabled: Bool) {
        guard let hardware else { return }
        interrupts.setVirtualINTxDisable(disabled, hardware: hardware)
    }

    /// VPCI-135: the BAR mappings would be zapped here (register BARs trap every access and check
    /// decode then, so there is nothing to zap), then `pci_try_reset_function`, result ignored.
    func initiateFunctionReset() {
        barMappings.zapAll()
        tryReset()
    }

    /// `vfio_pci_zap_and_down_write_memory_lock` for a COMMAND write clearing memory decode
    /// (VPCI-103).
    func zapBARMappings() { barMappings.zapAll() }

    // MARK: Last close

    /// The last close (`vfio_pci_core_disable`, VPCI-20): D0, bus master off, interrupts torn
    /// down (`virq_disabled` cleared), then the state saved at open loaded, COMMAND written as
    /// INTx Disable alone, the function reset when `reset_works` (`__pci_reset_function_locked`,
    /// no save/restore around it) and the saved state restored; `pci_disable_device` leaves bus
    /// master off (decode stays as restored).
    func disable() {
        guard let backend, let hardware else { return }
        leaveLowPowerForClose()
        ioeventfds.removeAll()
        setPowerState(0)
        PCICore.clearMaster(backend)
        interrupts.disableAll(hardware: hardware)
        driverData.unbind(self, from: backend, msiQmax: interrupts.msiQmax)
        backend.connectInterrupts(nil)
        // vdev->needs_reset = true, cleared when the function reset below is done (VPCI-22).
        var needsReset = true
        if let savedState {
            backend.writeConfig(PCIRegister.command, width: 2, PCICommand.interruptDisable)
            if resetWorks, PCICore.reset(backend, methods: resetMethods) == nil { needsReset = false }
            PCICore.restoreState(backend, savedState)
        }
        PCICore.clearMaster(backend)
        driverData.setNeedsReset(needsReset, for: backend)
    }
}

/// The vfio-pci driver data of each function of one machine (`dev_get_drvdata(&pdev->dev)`): the
/// open `vfio_pci_core_device` a bus reset restores as vfio-pci set it up (VPCI-223), and what
/// outlives a close (`msi_qmax`, VPCI-21, VPCI-186). One per `VFIODeviceDirectory`, keyed by the
/// function's backend, which the directory holds for as long as the driver data lives; an open
/// function is held until its last close unbinds it.
public final class VFIOPCIDriverData: Sendable {
    private struct Entry {
        var function: VFIOPCIFunction?
        var msiQmax = 0
        /// `vdev->needs_reset`: set at each last close whose function reset did not happen,
        /// cleared by a bus reset of its dev_set (VPCI-22); false while never opened.
        var needsReset = false
    }

    private let entries = PThreadMutex<[ObjectIdentifier: Entry]>([:])

    public init() {}

    private func key(_ backend: any PCIDeviceBackend) -> ObjectIdentifier { ObjectIdentifier(backend as AnyObject) }

    func bind(_ function: VFIOPCIFunction, to backend: any PCIDeviceBackend) {
        entries.withLock { $0[key(backend), default: Entry()].function = function }
    }

    func unbind(_ function: VFIOPCIFunction, from backend: any PCIDeviceBackend, msiQmax: Int) {
        entries.withLock { entries in
            if entries[key(backend)]?.function === function { entries[key(backend)]?.function = nil }
            entries[key(backend), default: Entry()].msiQmax = msiQmax
        }
    }

    /// The open device driving `backend`, if any.
    func openFunction(_ backend: any PCIDeviceBackend) -> VFIOPCIFunction? {
        entries.withLock { $0[key(backend)]?.function }
    }

    func needsReset(_ backend: any PCIDeviceBackend) -> Bool {
        entries.withLock { $0[key(backend)]?.needsReset ?? false }
    }

    func setNeedsReset(_ needsReset: Bool, for backend: any PCIDeviceBackend) {
        entries.withLock { $0[key(backend), default: Entry()].needsReset = needsReset }
    }

    func msiQmax(of backend: any PCIDeviceBackend) -> Int {
        entries.withLock { $0[key(backend)]?.msiQmax ?? 0 }
    }
}
