import KernelRules
import Locking
import PCIBus
import SystemPackage

/// vfio-pci's runtime power management of one open device (VPCI-253): the runtime-PM usage count
/// of `pdev->dev`, `vdev->pm_runtime_engaged`, `vdev->pm_wake_eventfd_ctx` and
/// `vdev->pm_intx_masked` (`drivers/vfio/pci/vfio_pci_core.c`).
///
/// Entry zaps the BAR mappings (`BARMappingZaps`); while engaged a mapped access is `SIGBUS`
/// (trapped register windows and zapped device RAM alike), whatever memory decode says.
///
/// The open device holds one usage reference (`vfio_pci_core_enable`'s
/// `pm_runtime_resume_and_get`); every device ioctl and region access holds another while it runs
/// (`vfio_device_pm_runtime_get`, `vfio_pci_rw`). `LOW_POWER_ENTRY` drops the open reference
/// (`pm_runtime_put_noidle`), so when the call that entered returns the count reaches 0 and the
/// function runtime-suspends: to D0 first (`vfio_pci_core_runtime_suspend`), INTx masked if it was
/// live, then the PCI core saves its state and puts it in D3hot (`pci_pm_runtime_suspend`). The
/// next ioctl or access resumes it (D0, state restored, `pci_pm_runtime_resume`); a resume with a
/// wakeup eventfd signals it and ends low power (`vfio_pci_core_runtime_resume`), else the
/// function suspends again when that call returns. `LOW_POWER_EXIT` takes the reference back
/// (`pm_runtime_get_noresume`). No autosuspend delay and no D3cold are modelled: the function
/// suspends as soon as it is idle, to D3hot.
final class VFIOPCIRuntimePM: Sendable {
    struct State {
        /// `pm_runtime_engaged`.
        var engaged = false
        /// `pm_wake_eventfd_ctx`.
        var wakeup: EventFD?
        /// The runtime-PM usage count: 1 for the open device.
        var usage = 1
        /// The function is runtime-suspended (D3hot, its state saved in `saved`).
        var suspended = false
        /// `pm_intx_masked`: INTx was masked on the way down and is unmasked on the way up.
        var intxMasked = false
        var saved: PCISavedState?
    }

    let state = PThreadMutex(State())
}

extension VFIOPCIFunction {
    /// `pm_runtime_resume_and_get`: a runtime-suspended function resumes first.
    func runtimeGet() {
        guard backend != nil else { return }
        runtimePM.state.withLock { state in
            if state.suspended { resume(&state) }
            state.usage += 1
        }
    }

    /// `pm_runtime_put`: the function suspends when nothing holds it any more.
    func runtimePut() {
        guard backend != nil else { return }
        runtimePM.state.withLock { state in
            state.usage -= 1
            if state.usage == 0 && !state.suspended { suspend(&state) }
        }
    }

    /// `vfio_pci_runtime_pm_entry`: `EINVAL` when the user already holds low power (`wakeup`
    /// released, nothing changed); else engaged with `wakeup`, and the open reference dropped
    /// without suspending (the caller's own reference keeps it up until its call returns).
    func lowPowerEntry(wakeup: EventFD?, what: @autoclosure () -> String) throws(VFIOError) {
        // vfio_pci_zap_and_down_write_memory_lock: the BAR mappings go first, even when the entry
        // then fails; they fault back in only once low power is left (vfio_pci_mmap_huge_fault).
        barMappings.zapAll()
        try runtimePM.state.withLock { (state) throws(VFIOError) in
            guard !state.engaged else {
                throw VFIOError(.invalidArgument, rule: .VPCI_253, "\(what()): low power is already engaged (LOW_POWER_EXIT first)")
            }
            state.engaged = true
            state.wakeup = wakeup
            state.usage -= 1
        }
    }

    /// `vfio_pci_runtime_pm_exit`: nothing when not engaged; else the reference taken back and the
    /// wakeup eventfd released (the function is up: the calling ioctl resumed it).
    func lowPowerExit() {
        runtimePM.state.withLock { Self.exitLowPower(&$0) }
    }

    /// The last close (`vfio_pci_core_disable`): low power left and the function resumed
    /// (`vfio_pci_runtime_pm_exit`, `pm_runtime_resume`) before it is disabled.
    func leaveLowPowerForClose() {
        guard backend != nil else { return }
        runtimePM.state.withLock { state in
            Self.exitLowPower(&state)
            if state.suspended { resume(&state) }
        }
    }

    private static func exitLowPower(_ state: inout VFIOPCIRuntimePM.State) {
        guard state.engaged else { return }
        state.engaged = false
        state.usage += 1
        state.wakeup = nil
    }

    /// `vfio_pci_core_runtime_suspend` then `pci_pm_runtime_suspend`.
    private func suspend(_ state: inout VFIOPCIRuntimePM.State) {
        guard let backend else { return }
        setPowerState(0)
        // vfio_pci_intx_mask: only a live, unmasked INTx is masked (and later unmasked).
        if interrupts.state.withLock({ $0.kind == .intx && !$0.intxMasked }), let hardware {
            state.intxMasked = (try? interrupts.set(VFIOIRQSet(action: .actionMask, index: .intx, count: 1), counts: hardware.counts, hardware: hardware)) != nil
        } else {
            state.intxMasked = false
        }
        state.saved = PCICore.saveState(backend)
        PCICore.setPowerState(backend, 3)
        refreshPowerState()
        state.suspended = true
    }

    /// `pci_pm_runtime_resume` (D0, the saved state restored) then `vfio_pci_core_runtime_resume`.
    private func resume(_ state: inout VFIOPCIRuntimePM.State) {
        guard let backend else { return }
        PCICore.setPowerState(backend, 0)
        if let saved = state.saved { PCICore.restoreState(backend, saved) { restoreInterrupts() } }
        state.saved = nil
        refreshPowerState()
        state.suspended = false
        if let wakeup = state.wakeup {
            wakeup.signal()
            Self.exitLowPower(&state)
        }
        if state.intxMasked, let hardware {
            _ = try? interrupts.set(VFIOIRQSet(action: .actionUnmask, index: .intx, count: 1), counts: hardware.counts, hardware: hardware)
        }
        state.intxMasked = false
    }
}

extension VFIODevice {
    /// `body` with the function resumed and held (`vfio_device_pm_runtime_get`/`_put` around a
    /// device ioctl in `vfio_device_fops_unl_ioctl`, `pm_runtime_resume_and_get` in `vfio_pci_rw`).
    package func runtimeResumed<T>(_ body: () throws(VFIOError) -> T) throws(VFIOError) -> T {
        function.runtimeGet()
        defer { function.runtimePut() }
        return try body()
    }
}
