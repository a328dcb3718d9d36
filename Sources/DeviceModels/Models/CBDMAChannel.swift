import IOMMU

/// One I/OAT DMA channel, the hardware side of the kernel's `struct ioatdma_chan`: its registers
/// (BAR0 + 0x80, `CBDMA.ChannelRegister`) and the engine that executes descriptor chains.
///
/// Writing CHAINADDR points the channel at a chain and restarts its count; writing DMACOUNT (a
/// free-running 16-bit count) has it execute the descriptors counted beyond those it completed,
/// there and then, each fetched from the previous one's `next` — the kernel's ring, or the
/// selftests' single descriptor linked to itself. A descriptor copies `size` bytes (at most
/// `CBDMA.maxTransferSize`) or, marked null, nothing; then CHANSTS holds its address, a
/// `compl_write` descriptor has that CHANSTS value written to CHANCMP (state ACTIVE while more are
/// counted, DONE after the last), and an `int_en` descriptor signals the interrupt. When all are
/// done the channel is DONE.
///
/// Errors are logged in CHANERR. A descriptor that cannot be fetched or is invalid, or a
/// completion that cannot be written, halts the channel on that descriptor (CDAR); a source or
/// destination fault (`ChannelError.data`) halts it too when CHANCTRL's ANY_ERR_ABORT_EN is set,
/// else the channel goes on with the next descriptor. A halt writes the completion (state HALTED)
/// under ERR_COMPLETION_EN and signals the interrupt under ERR_INT_EN. A channel halted by an
/// error does nothing more until CHANERR is cleared (then DMACOUNT retries the descriptor it
/// stopped at) or it is reset. Signalling needs CHANCTRL's INT_REARM, which it clears.
struct CBDMAChannel {
    typealias Register = CBDMA.ChannelRegister

    /// What one register write made the channel do, for the device to pass on.
    struct Outcome {
        /// The errors detected (the device logs them in CHANERR_INT).
        var errors = CBDMA.ChannelError()
        /// Whether the channel signalled its interrupt (while it runs: whether one is due).
        var interrupt = false

        mutating func merge(_ other: Outcome) {
            errors.formUnion(other.errors)
            interrupt = interrupt || other.interrupt
        }
    }

    private var control = CBDMA.ChannelControl()
    private var dmaCount: UInt16 = 0
    private var state = CBDMA.ChannelState.halted
    /// CHANSTS bits 63:6: the last descriptor completed.
    private var completedDescriptor: UInt64 = 0
    private var chainAddress: UInt64 = 0
    private var completionAddress: UInt64 = 0
    private var currentDescriptor: UInt64 = 0
    private var error = CBDMA.ChannelError()
    private var errorMask: UInt32 = 0
    /// The channel's ATTNSTATUS bit: it signalled and was not rearmed since.
    private(set) var attention = false
    /// Descriptors completed since CHAINADDR was written; DMACOUNT minus this is the work pending.
    private var completedCount: UInt16 = 0
    /// Where the next descriptor is fetched from.
    private var next: UInt64 = 0
    /// Whether `next` is still CHAINADDR: no descriptor of the chain fetched yet.
    private var atChainStart = true
    /// Descriptor fetches and completions go through one port, data through the other, so each
    /// keeps its own cached runs (a self-linked descriptor and its buffers never evict each other).
    private var fetchPort: DMAPort?
    private var dataPort: DMAPort?

    /// CHANSTS as read and as written to CHANCMP.
    private func status(_ state: CBDMA.ChannelState) -> UInt64 { completedDescriptor & ~0x3f | state.rawValue }

    /// The register at `offset` in the channel's block (0 where none is).
    func read(_ offset: UInt64) -> UInt64 {
        switch offset {
        case Register.control: UInt64(control.rawValue)
        case Register.dmaCount: UInt64(dmaCount)
        case Register.status: status(state)
        case Register.chainAddress: chainAddress
        case Register.completionAddress: completionAddress
        case Register.currentDescriptor: currentDescriptor
        case Register.error: UInt64(error.rawValue)
        case Register.errorMask: UInt64(errorMask)
        default: 0
        }
    }

    /// Writes the bytes `lanes` selects of the register at `offset` with `data`; a DMACOUNT or
    /// RESUME runs the engine, its DMA through ports made by `port` on first use.
    mutating func write(_ offset: UInt64, _ data: UInt64, lanes: UInt64, port: () -> DMAPort) -> Outcome {
        func merged(_ old: UInt64) -> UInt64 { old & ~lanes | data & lanes }
        switch offset {
        case Register.control:
            control = CBDMA.ChannelControl(rawValue: UInt16(truncatingIfNeeded: merged(UInt64(control.rawValue)))).intersection(.writable)
            if data & lanes & UInt64(CBDMA.ChannelControl.interruptRearm.rawValue) != 0 { attention = false }
        case Register.command:
            return command(UInt8(truncatingIfNeeded: data & lanes), port: port)
        case Register.dmaCount:
            dmaCount = UInt16(truncatingIfNeeded: merged(UInt64(dmaCount)))
            if runnable { return run(port: port) }
        case Register.chainAddress:
            chainAddress = merged(chainAddress)
            next = chainAddress
            atChainStart = true
            completedCount = 0
        case Register.completionAddress:
            completionAddress = merged(completionAddress)
        case Register.error:
            error.subtract(CBDMA.ChannelError(rawValue: UInt32(truncatingIfNeeded: data & lanes)))
        case Register.errorMask:
            errorMask = UInt32(truncatingIfNeeded: merged(UInt64(errorMask)))
        default:
            break
        }
        return Outcome()
    }

    private mutating func command(_ command: UInt8, port: () -> DMAPort) -> Outcome {
        if command & CBDMA.ChannelCommand.reset != 0 {
            self = CBDMAChannel()
            return Outcome()
        }
        if command & CBDMA.ChannelCommand.suspend != 0, state != .halted { state = .suspended }
        if command & CBDMA.ChannelCommand.resume != 0, state == .suspended {
            state = .done
            return run(port: port)
        }
        return Outcome()
    }

    /// Whether a DMACOUNT write starts the engine: not while suspended (unless a new chain was
    /// written since) nor while halted on an error CHANERR still holds.
    private var runnable: Bool {
        switch state {
        case .suspended: atChainStart
        case .halted: error.isEmpty
        case .active, .done: true
        }
    }

    /// Executes the descriptors counted and not yet completed, or up to the one that halts it.
    private mutating func run(port: () -> DMAPort) -> Outcome {
        if fetchPort == nil {
            fetchPort = port()
            dataPort = port()
        }
        var outcome = Outcome()
        while completedCount != dmaCount {
            state = .active
            currentDescriptor = next
            guard let descriptor = fetch(&outcome) else { break }
            if descriptor.operation != CBDMADescriptor.copyOperation {
                halt(.descriptorControl, &outcome)
                break
            }
            guard descriptor.size > 0, UInt64(descriptor.size) <= CBDMA.maxTransferSize else {
                halt(.transferSize, &outcome)
                break
            }
            if !descriptor.isNull, let failure = transfer(descriptor) {
                guard failure.isSubset(of: .data), !control.contains(.anyErrorAbort) else {
                    halt(failure, &outcome)
                    break
                }
                log(failure, &outcome)
            }
            completedCount &+= 1
            completedDescriptor = currentDescriptor
            next = descriptor.next
            if descriptor.writesCompletion, !writeCompletion(completedCount == dmaCount ? .done : .active) {
                halt(.completionAddress, &outcome)
                break
            }
            outcome.interrupt = outcome.interrupt || descriptor.interruptOnCompletion
        }
        if state == .active { state = .done }
        // Signalling takes INT_REARM, which only software sets again.
        outcome.interrupt = outcome.interrupt && control.contains(.interruptRearm)
        if outcome.interrupt {
            control.remove(.interruptRearm)
            attention = true
        }
        return outcome
    }

    /// The descriptor at `next`, or nil with the channel halted: CHAINADDR's value error for the
    /// chain's first, `next`'s alignment or address error for the others.
    private mutating func fetch(_ outcome: inout Outcome) -> CBDMADescriptor? {
        guard next % CBDMADescriptor.size == 0 else {
            halt(atChainStart ? .chainAddressValue : .nextDescriptorAlignment, &outcome)
            return nil
        }
        var raw: CBDMADescriptor.Raw = (0, 0, 0, 0, 0, 0, 0, 0)
        do throws(DMAFault) {
            try withUnsafeMutableBytes(of: &raw) { (bytes) throws(DMAFault) in try fetchPort!.read(from: next, into: bytes) }
        } catch {
            halt(atChainStart ? .chainAddressValue : .nextAddress, &outcome)
            return nil
        }
        atChainStart = false
        return CBDMADescriptor(raw)
    }

    /// Copies the descriptor's data; the error a fault is logged as, nil when all arrived.
    private mutating func transfer(_ descriptor: CBDMADescriptor) -> CBDMA.ChannelError? {
        do throws(DMAFault) {
            try dataPort!.copy(from: descriptor.source, to: descriptor.destination, count: UInt64(descriptor.size))
            return nil
        } catch {
            return error.access == .read ? .readData : .writeData
        }
    }

    /// Writes CHANSTS, with `state`, to CHANCMP (8 bytes, 8-byte aligned); false if it cannot.
    private mutating func writeCompletion(_ state: CBDMA.ChannelState) -> Bool {
        guard completionAddress % 8 == 0 else { return false }
        do throws(DMAFault) {
            try fetchPort!.store(status(state), to: completionAddress)
            return true
        } catch {
            return false
        }
    }

    private mutating func log(_ error: CBDMA.ChannelError, _ outcome: inout Outcome) {
        self.error.formUnion(error)
        outcome.errors.formUnion(error)
        if control.contains(.errorInterrupt), error.rawValue & ~errorMask != 0 { outcome.interrupt = true }
    }

    private mutating func halt(_ error: CBDMA.ChannelError, _ outcome: inout Outcome) {
        log(error, &outcome)
        state = .halted
        if control.contains(.errorCompletion), error != .completionAddress, !writeCompletion(.halted) {
            log(.completionAddress, &outcome)
        }
    }
}
