import KernelRules
import Locking
import PCIBus
import SystemPackage

/// vfio-pci's interrupt state for one device (`vdev->irq_type`, the INTx context, the MSI/MSI-X
/// vector contexts, the ERR and REQ triggers) and its handlers: `vfio_intx_handler` and
/// `vfio_msihandler` signal the eventfds the driver registered. `VFIO_DEVICE_SET_IRQS` goes
/// through `set`, which mirrors `vfio_set_irqs_validate_and_prepare` and `vfio_pci_set_irqs_ioctl`
/// check for check; a failed call leaves the interrupts as they were.
final class VFIOPCIInterrupts: PCIInterruptSink, Sendable {
    enum Kind: Equatable { case none, intx, msi, msix }

    struct State {
        var kind = Kind.none
        var intxTrigger: EventFD?
        var intxMasked = false
        var intxUnmask: EventFD?
        /// The MSI/MSI-X triggers by vector (`vdev->ctx`), as long as the highest vector allocated.
        var vectors: [EventFD?] = []
        /// The vectors with an IRQ allocated (`pci_irq_vector(pdev, v) > 0`): `0..<nvec` at enable
        /// (`vfio_msi_enable`), more on demand with dynamic MSI-X (`vfio_msi_alloc_irq`, VPCI-183);
        /// freed only when the index is disabled.
        var allocated: Set<Int> = []
        var err: EventFD?
        var req: EventFD?
        /// Interrupts signalled to userspace, per kind (for reports).
        var delivered = 0
        /// `vdev->virq_disabled`: the user's INTx Disable in the virtual COMMAND register
        /// (VPCI-123); while set INTx is masked and never signalled. Cleared only at the last close.
        var virqDisabled = false
        /// `vdev->msi_qmax`: ⌈log2⌉ of the vectors the last MSI enable allocated; never reset
        /// (VPCI-186) — what MSI's Multiple Message Enable is clamped to (VPCI-132).
        var msiQmax = 0

        /// The state after an index is torn down: the triggers and device-wide state kept.
        func disabled() -> State {
            var next = State(err: err, req: req)
            next.virqDisabled = virqDisabled
            next.msiQmax = msiQmax
            return next
        }
    }

    let state: PThreadMutex<State>
    private let device: String
    /// Where the INTx handler masks the line (`pci_check_and_mask_intx`, VPCI-174).
    private let hardware: InterruptHardware?

    /// `msiQmax`: what `msi_qmax` was when the device was last closed (it outlives a close).
    init(device: String, msiQmax: Int = 0, hardware: InterruptHardware? = nil) {
        self.device = device
        self.hardware = hardware
        var initial = State()
        initial.msiQmax = msiQmax
        state = PThreadMutex(initial)
    }

    var msiQmax: Int { state.withLock { $0.msiQmax } }

    // MARK: Handlers (device → eventfd)

    func deliver(_ interrupt: PCIInterrupt) {
        state.withLock { state in
            switch interrupt {
            case .msix(let vector) where state.kind == .msix, .msi(let vector) where state.kind == .msi:
                guard vector < state.vectors.count, let trigger = state.vectors[vector] else { return }
                trigger.signal()
                state.delivered += 1
            case .intx where state.kind == .intx:
                // A virqfd unmask the driver signalled since the last interrupt takes effect first
                // (vfio_pci_intx_unmask_handler: not while virq_disabled).
                if state.intxMasked, let unmask = state.intxUnmask, unmask.read() != nil, !state.virqDisabled { state.intxMasked = false }
                guard !state.intxMasked else { return }
                state.intxMasked = true  // AUTOMASKED: until the driver unmasks
                // vfio_intx_handler (vfio_pci_intrs.c:237): a PCI 2.3 function is masked in the
                // device itself (pci_check_and_mask_intx), so it stops asserting (VPCI-174).
                hardware?.setINTxDisable(true)
                // vfio_send_intx_eventfd: nothing while the user holds INTx Disable.
                guard !state.virqDisabled else { return }
                state.intxTrigger?.signal()
                state.delivered += 1
            default:
                return
            }
        }
    }

    // MARK: VFIO_DEVICE_SET_IRQS

    /// `vfio_set_irqs_validate_and_prepare` then `vfio_pci_set_irqs_ioctl`. `counts` are the
    /// counts `VFIO_DEVICE_GET_IRQ_INFO` reports per index.
    /// Returns 0, or — an MSI/MSI-X enable that got fewer vectors than `start + count` — the
    /// positive number available, nothing enabled (VPCI-181).
    @discardableResult
    func set(_ request: VFIOIRQSet, counts: [UInt32], hardware: InterruptHardware) throws(VFIOError) -> Int {
        var what: String { "\(device) SET_IRQS index \(request.index)" }
        let rule = RuleID.VPCI_160
        _ = try validateHeader(flags: request.flags, index: request.index, start: request.start, count: request.count, counts: counts)
        guard request.flags.intersection(VFIOIRQSetFlags.dataTypes) == request.data.flag else {
            throw VFIOError(.invalidArgument, rule: rule, "\(what): the data is not of the type the flags name")
        }
        if let entries = request.data.entries, entries < Int(request.count) {
            throw VFIOError(.invalidArgument, rule: rule, "\(what): data holds \(entries) entries, fewer than count \(request.count)")
        }
        let index = VFIOIRQIndex(rawValue: request.index)!
        let action = request.flags.intersection(VFIOIRQSetFlags.actions)
        return try state.withLock { (state) throws(VFIOError) -> Int in
            var next = state
            switch (index, action) {
            case (.intx, .actionMask), (.intx, .actionUnmask):
                try Self.intxMask(&next, request, unmask: action == .actionUnmask, what: what)
            case (.intx, .actionTrigger):
                try Self.intxTrigger(&next, request, hardware: hardware, what: what)
            case (.msi, .actionTrigger), (.msix, .actionTrigger):
                do throws(VFIOError) {
                    let available = try Self.msiTrigger(&next, request, kind: index == .msi ? .msi : .msix, hardware: hardware, what: what)
                    if available > 0 { return available }  // fewer vectors than asked: nothing changed
                } catch {
                    // VPCI-184: on an index that was already active a failure is not rolled back —
                    // vfio_msi_set_block leaves start…the failing vector without a trigger and the
                    // index on (vfio_pci_intrs.c:540-548, :701-703). An index this call enabled is
                    // disabled again (vfio_msi_disable, :709-711): `next` is then dropped.
                    if state.kind == next.kind {
                        hardware.apply(from: state, to: next)
                        state = next
                    }
                    throw error
                }
            case (.err, .actionTrigger):
                try Self.singleTrigger(&next.err, request, what: what)
            case (.req, .actionTrigger):
                try Self.singleTrigger(&next.req, request, what: what)
            default:
                throw VFIOError(
                    .inappropriateIOCTLForDevice, rule: .VPCI_161,
                    "\(what): no handler for \(index) with action flags 0x\(String(action.rawValue, radix: 16)) (vfio-pci cannot mask MSI/MSI-X)")
            }
            hardware.apply(from: state, to: next)
            state = next
            return 0
        }
    }

    /// The header checks of `vfio_set_irqs_validate_and_prepare`, in its order: a known index,
    /// `start + count` not overflowing, only known flags; vectors within the index's count (what
    /// GET_IRQ_INFO reports); exactly one data type. Returns the size of one data entry (NONE 0,
    /// BOOL 1, EVENTFD 4): the UAPI copies the `count` entries in only after this passed, so
    /// `count` is bounded before it sizes a copy from user memory, as for `memdup_user`.
    func validateHeader(flags: VFIOIRQSetFlags, index: UInt32, start: UInt32, count: UInt32, counts: [UInt32]) throws(VFIOError) -> Int {
        var what: String { "\(device) SET_IRQS index \(index)" }
        let rule = RuleID.VPCI_160
        let known = VFIOIRQSetFlags.dataTypes.union(.actions)
        guard index < UInt32(counts.count), count < UInt32.max - start, flags.isSubset(of: known) else {
            throw VFIOError(.invalidArgument, rule: rule, "\(what): bad index, flags 0x\(String(flags.rawValue, radix: 16)) or start+count overflow")
        }
        let available = counts[Int(index)]
        guard start < available, start + count <= available else {
            throw VFIOError(.invalidArgument, rule: rule, "\(what): vectors \(start)..<\(start + count) outside the \(available) the device has")
        }
        switch flags.intersection(VFIOIRQSetFlags.dataTypes) {
        case .dataNone: return 0
        case .dataBool: return 1
        case .dataEventFD: return 4
        default: throw VFIOError(.invalidArgument, rule: rule, "\(what): exactly one data type (NONE, BOOL or EVENTFD) is required")
        }
    }

    /// Tears everything down at the last close (`vfio_pci_core_disable`: the active index off,
    /// `virq_disabled` cleared; `msi_qmax` kept).
    func disableAll(hardware: InterruptHardware) {
        state.withLock { state in
            var next = State()
            next.msiQmax = state.msiQmax
            hardware.apply(from: state, to: next)
            state = next
        }
    }

    /// `vfio_basic_config_write`'s INTx emulation (VPCI-123): the virtual INTx Disable bit after a
    /// write touching COMMAND. Set while `virq_disabled` is clear: `virq_disabled` set and INTx
    /// masked (`__vfio_pci_intx_mask`); clear while set: `virq_disabled` cleared and INTx
    /// unmasked (`vfio_pci_intx_unmask_handler`). With INTx not the active index only the
    /// device's INTx Disable follows the virtual bit (PCI 2.3 functions).
    func setVirtualINTxDisable(_ disabled: Bool, hardware: InterruptHardware) {
        state.withLock { state in
            if disabled && !state.virqDisabled {
                state.virqDisabled = true
                guard state.kind == .intx else { return hardware.setINTxDisable(true) }
                if !state.intxMasked {
                    hardware.setINTxDisable(true)
                    state.intxMasked = true
                }
            } else if !disabled && state.virqDisabled {
                state.virqDisabled = false
                guard state.kind == .intx else { return hardware.setINTxDisable(false) }
                if state.intxMasked {
                    hardware.setINTxDisable(false)
                    state.intxMasked = false
                }
            }
        }
    }

    var kind: Kind { state.withLock { $0.kind } }

    // MARK: Per-index handlers

    private static func eventFD(_ fd: Int32, rule: RuleID, what: String) throws(VFIOError) -> EventFD {
        try EventFD(referencing: fd, rule: rule, what: what)
    }

    /// `vfio_pci_set_intx_mask` / `_unmask`.
    private static func intxMask(_ state: inout State, _ request: VFIOIRQSet, unmask: Bool, what: String) throws(VFIOError) {
        guard state.kind == .intx, request.start == 0, request.count == 1 else {
            throw VFIOError(.invalidArgument, rule: .VPCI_172, "\(what): INTx is not enabled, or start/count is not 0/1")
        }
        switch request.data {
        case .none:
            // vfio_pci_intx_unmask_handler does nothing while virq_disabled (VPCI-123).
            if !unmask || !state.virqDisabled { state.intxMasked = !unmask }
        case .bool(let values):
            if values[0] && (!unmask || !state.virqDisabled) { state.intxMasked = !unmask }
        case .eventFD(let fds):
            guard unmask else {
                throw VFIOError(.inappropriateIOCTLForDevice, rule: .VPCI_172, "\(what): masking INTx through an eventfd is not implemented by vfio-pci")
            }
            state.intxUnmask = fds[0] >= 0 ? try eventFD(fds[0], rule: .VPCI_172, what: what) : nil
        }
    }

    /// `vfio_pci_set_intx_trigger`.
    private static func intxTrigger(_ state: inout State, _ request: VFIOIRQSet, hardware: InterruptHardware, what: String) throws(VFIOError) {
        if state.kind == .intx, request.count == 0, request.data == .none {
            state = state.disabled()
            return
        }
        guard state.kind == .intx || state.kind == .none, request.start == 0, request.count == 1 else {
            throw VFIOError(.invalidArgument, rule: .VPCI_170, "\(what): another interrupt type is enabled, or start/count is not 0/1")
        }
        switch request.data {
        case .eventFD(let fds):
            let trigger = fds[0] >= 0 ? try eventFD(fds[0], rule: .VPCI_170, what: what) : nil
            if state.kind == .none {
                guard hardware.interruptPin != 0 else {
                    throw VFIOError(.operationNotSupportedByDevice, rule: .VPCI_173, "\(what): the device has no INTx pin")
                }
                state.kind = .intx
                state.intxMasked = state.virqDisabled  // vfio_intx_enable: masked = virq_disabled
            }
            state.intxTrigger = trigger
        case .none, .bool:
            guard state.kind == .intx else {
                throw VFIOError(.invalidArgument, rule: .VPCI_170, "\(what): INTx is not enabled")
            }
            if case .bool(let values) = request.data, !values[0] { return }
            if !state.virqDisabled { state.intxTrigger?.signal() }  // vfio_send_intx_eventfd
        }
    }

    /// `vfio_pci_set_msi_trigger`: 0, or the positive number of vectors available when an
    /// enable got fewer than it asked for (`state` then unchanged).
    private static func msiTrigger(_ state: inout State, _ request: VFIOIRQSet, kind: Kind, hardware: InterruptHardware, what: String)
        throws(VFIOError) -> Int
    {
        if state.kind == kind, request.count == 0, request.data == .none {
            state = state.disabled()
            return 0
        }
        guard state.kind == kind || state.kind == .none else {
            throw VFIOError(.invalidArgument, rule: .VPCI_180, "\(what): another interrupt type is enabled")
        }
        let start = Int(request.start)
        let end = start + Int(request.count)
        switch request.data {
        case .eventFD(let fds):
            if state.kind == .none {
                // vfio_msi_enable: pci_alloc_irq_vectors(1, nvec) for nvec = start + count; fewer
                // available (MSI without a multi-MSI domain: 1, msi.c:406) → those freed again and
                // their number returned, nothing enabled (VPCI-181).
                let available = kind == .msi && !hardware.multiMSI ? 1 : end
                if available < end { return available }
                state.kind = kind
                state.allocated = Set(0..<end)
                state.vectors = Array(repeating: nil, count: end)
                // vfio_msi_enable: msi_qmax = fls(nvec * 2 - 1) - 1.
                if kind == .msi { state.msiQmax = end.nextPowerOfTwoLog2 }
            }
            // vfio_msi_set_block: vector by vector (vfio_msi_set_vector_signal).
            for (offset, fd) in fds.prefix(Int(request.count)).enumerated() {
                let vector = start + offset
                if vector < state.vectors.count { state.vectors[vector] = nil }  // the old trigger released first; the IRQ stays
                guard fd >= 0 else { continue }
                do throws(VFIOError) {
                    try allocate(&state, vector, kind: kind, hardware: hardware, what: what)
                    state.vectors[vector] = try eventFD(fd, rule: .VPCI_182, what: "\(what) vector \(vector)")
                } catch {
                    // vfio_msi_set_block's unwind: every vector from start through this one released.
                    for earlier in start..<vector where earlier < state.vectors.count { state.vectors[earlier] = nil }
                    throw error
                }
            }
        case .none, .bool:
            guard state.kind == kind else {
                throw VFIOError(.invalidArgument, rule: .VPCI_185, "\(what): \(kind) is not enabled")
            }
            // Vectors past those enabled have no context: skipped, as the kernel skips them.
            for vector in start..<end where vector < state.vectors.count {
                if case .bool(let values) = request.data, !values[vector - start] { continue }
                state.vectors[vector]?.signal()
            }
        }
        return 0
    }

    /// `vfio_msi_alloc_irq` (VPCI-183): a vector with an IRQ already is used as it is; past the
    /// allocated ones MSI — and MSI-X without dynamic allocation — has no IRQ (`pci_irq_vector`
    /// -EINVAL: `EINVAL`), while MSI-X with `has_dyn_msix` allocates that vector now
    /// (`pci_msix_alloc_irq_at`), unmasked in the table by `apply`; it stays allocated until the
    /// index is disabled, even if this call fails later.
    private static func allocate(_ state: inout State, _ vector: Int, kind: Kind, hardware: InterruptHardware, what: String) throws(VFIOError) {
        guard !state.allocated.contains(vector) else { return }
        guard kind == .msix, hardware.dynamicMSIX else {
            throw VFIOError(
                .invalidArgument, rule: .VPCI_183,
                "\(what) vector \(vector): no IRQ allocated (\(state.allocated.count) were at enable) and \(kind == .msi ? "MSI never grows" : "the function has no dynamic MSI-X")")
        }
        state.allocated.insert(vector)
        if vector >= state.vectors.count { state.vectors += Array(repeating: nil, count: vector + 1 - state.vectors.count) }
    }

    /// `vfio_pci_set_ctx_trigger_single` (ERR and REQ).
    private static func singleTrigger(_ trigger: inout EventFD?, _ request: VFIOIRQSet, what: String) throws(VFIOError) {
        let rule = RuleID.VPCI_190
        guard request.start == 0, request.count <= 1 else {
            throw VFIOError(.invalidArgument, rule: rule, "\(what): start must be 0 and count at most 1")
        }
        switch request.data {
        case .none:
            guard let current = trigger else { throw VFIOError(.invalidArgument, rule: rule, "\(what): no trigger registered") }
            if request.count == 1 { current.signal() } else { trigger = nil }
        case .bool(let values):
            guard request.count == 1 else { throw VFIOError(.invalidArgument, rule: rule, "\(what): count 0 with BOOL data") }
            if values[0] { trigger?.signal() }
        case .eventFD(let fds):
            guard request.count == 1 else { throw VFIOError(.invalidArgument, rule: rule, "\(what): count 0 with EVENTFD data") }
            if fds[0] == -1 {
                trigger = nil
            } else if fds[0] >= 0 {
                trigger = try eventFD(fds[0], rule: rule, what: what)
            } else {
                // Neither -1 (unregister) nor an fd: the handler falls through to -EINVAL.
                throw VFIOError(.invalidArgument, rule: rule, "\(what): eventfd \(fds[0]) is neither -1 nor a descriptor")
            }
        }
    }
}
