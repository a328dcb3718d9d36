import Glibc
import Locking
import PCIBus

/// An NVMe controller: NVMe Base Specification 1.4 over PCIe (class 0x010802), the subset an
/// unmodified NVMe driver's bring-up and I/O path use. The admin queue pair comes from
/// AQA/ASQ/ACQ when CC.EN goes 1 (§7.6.1); I/O queue pairs are created and deleted by admin
/// commands. Writing a submission queue's tail doorbell runs the commands from its head to the
/// new tail at once, each completion posted to the queue's completion queue with the phase tag
/// and completion dword 0 (§4.6), and the completion queue's MSI-X vector raised if it has
/// interrupts enabled. Data moves by PRP (§4.3): PRP1 (dword aligned, any offset), PRP2 as the
/// second page or as a PRP list whose last entry in each list page chains to the next. One
/// namespace (NSID 1) of 16 MiB in 512-byte blocks, non-volatile: it survives controller and
/// function resets.
///
/// Admin commands (§5): Delete I/O SQ (00h), Create I/O SQ (01h), Get Log Page (02h: Error
/// Information, SMART/Health, Firmware Slot), Delete I/O CQ (04h), Create I/O CQ (05h), Identify
/// (06h: CNS 00h namespace, 01h controller, 02h active namespace list, 03h namespace
/// identification descriptors), Abort (08h), Set Features (09h), Get Features (0Ah) and
/// Asynchronous Event Request (0Ch) — see `NVMeFeatures` and `NVMeAsyncEvents`. NVM I/O
/// commands (§6): Flush (00h, NSID 1 or FFFFFFFFh), Write (01h), Read (02h), Write Zeroes (08h)
/// and Dataset Management (09h, deallocate). Anything else: Invalid Command Opcode.
///
/// Up to 32 I/O queue pairs (Number of Queues may grant fewer) and 33 MSI-X vectors — the
/// admin queue's and one per I/O queue ID, so a driver giving each completion queue the vector
/// of its ID has one; the Samsung PM983 this function is in the `default` machine has the same.
///
/// Hostile programming cannot crash it: bad queue parameters and command fields fail the command
/// with the status a controller gives, doorbell writes for absent queues or past a queue's size
/// are ignored and reported as asynchronous events (Invalid Doorbell Register, Invalid Doorbell
/// Write Value), a DMA fault on data (or a PRP list) completes the command with Data Transfer
/// Error — a Write changes the media only after all its data arrived — and a fault fetching a
/// command or posting a completion sets CSTS.CFS, after which the controller does nothing until
/// CC.EN 1→0 resets it. As QEMU's `nvme_start_ctrl`, enabling with an unusable configuration
/// (CSS not NVM, MPS not 4 KiB, an admin queue under two entries) sets CSTS.CFS.
///
/// BAR0 registers (§3.1; little-endian; dword or qword accesses, narrower writes are dropped;
/// mappable by userspace, VPCI-60, every access trapped):
///
/// | offset         | name     | access | meaning |
/// |----------------|----------|--------|---------|
/// | 0x00           | CAP      | RO u64 | MQES 1023 (15:0, entries − 1), CQR 1 (16), TO 20 × 500 ms (31:24), DSTRD 0 (35:32), CSS NVM (37), MPSMIN = MPSMAX = 0 (4 KiB) |
/// | 0x08           | VS       | RO u32 | 0x00010400: NVMe 1.4 |
/// | 0x0c           | INTMS    | RW1S   | interrupt mask set, per vector (pin-based and MSI only) |
/// | 0x10           | INTMC    | RW1C   | interrupt mask clear; a vector masked while due fires when cleared |
/// | 0x14           | CC       | RW u32 | EN (0), CSS (6:4), MPS (10:7), AMS (13:11), SHN (15:14), IOSQES (19:16), IOCQES (23:20) |
/// | 0x1c           | CSTS     | RO u32 | RDY (0), CFS (1), SHST (3:2): shutdown completes at once |
/// | 0x24           | AQA      | RW u32 | ASQS (11:0), ACQS (27:16): admin queue entries − 1 |
/// | 0x28           | ASQ      | RW u64 | admin submission queue base (11:0 reserved) |
/// | 0x30           | ACQ      | RW u64 | admin completion queue base (11:0 reserved) |
/// | 0x1000 + 8y    | SQyTDBL  | WO u32 | submission queue y tail doorbell (y ≤ 32) |
/// | 0x1004 + 8y    | CQyHDBL  | WO u32 | completion queue y head doorbell |
/// | 0x2000, 0x3000 |          |        | MSI-X table (33 vectors) and pending bits |
public final class NVMeController: VirtualPCIDevice, @unchecked Sendable {
    public static let summary = "NVMe controller (NVMe 1.4: 32 I/O queue pairs, Identify, features, logs, AER, PRP lists, 16 MiB namespace, MSI-X)"
    public static let vendorID = ModelCatalog.vendorID
    public static let deviceID: UInt16 = 0x5603
    public static let blockSize = 512
    public static let namespaceBlocks: UInt64 = 32768
    /// CAP.MQES + 1: the most entries an I/O queue may have.
    public static let maxQueueEntries: UInt32 = 1024
    /// I/O queue identifiers run 1…32: what Number of Queues grants at most.
    public static let maxIOQueues = 32
    /// The admin queue's vector and one per I/O queue ID.
    public static let msixVectors = maxIOQueues + 1
    /// MDTS: at most 2^5 pages (128 KiB) per command.
    public static let maxTransferShift = 5
    static let pageSize = 4096
    static let pageMask = UInt64(pageSize - 1)
    static let maxTransfer = pageSize << maxTransferShift
    static let capabilities = UInt64(maxQueueEntries - 1) | 1 << 16 | 20 << 24 | 1 << 37
    static let version: UInt32 = 0x0001_0400

    public enum Register {
        public static let capabilities: UInt64 = 0x00
        public static let version: UInt64 = 0x08
        public static let interruptMaskSet: UInt64 = 0x0c
        public static let interruptMaskClear: UInt64 = 0x10
        public static let configuration: UInt64 = 0x14
        public static let status: UInt64 = 0x1c
        public static let adminQueueAttributes: UInt64 = 0x24
        public static let adminSubmissionQueue: UInt64 = 0x28
        public static let adminCompletionQueue: UInt64 = 0x30
        public static let doorbells: UInt64 = 0x1000
    }

    /// CSTS bits.
    enum ControllerStatus {
        static let ready: UInt32 = 1 << 0
        static let fatal: UInt32 = 1 << 1
        static let shutdownComplete: UInt32 = 2 << 2
    }

    let state = PThreadMutex(State())
    // The namespace's media and the buffer a transfer is staged in (a Write's data before it
    // reaches the media, an Identify or log page before it goes out): both touched only under
    // `state`'s lock.
    let media: UnsafeMutableRawBufferPointer
    let staging: UnsafeMutableRawBufferPointer
    /// When the controller was powered on: the SMART/Health log's power-on hours count from it.
    let poweredOn = ContinuousClock.now

    public init(address: PCIAddress, mmioBase: UInt64) {
        var builder = VirtualConfigBuilder(vendor: Self.vendorID, device: Self.deviceID, classCode: 0x010802, subsystemVendor: Self.vendorID, subsystem: Self.deviceID)
        builder.addBAR(0, PCIBARResource(kind: .memory64, size: 16 << 10, busAddress: mmioBase))
        builder.addPowerManagement()
        builder.addMSI(vectors: 32)
        builder.addMSIX(tableSize: Self.msixVectors, tableBAR: 0, tableOffset: 0x2000, pbaBAR: 0, pbaOffset: 0x3000)
        builder.addPCIExpress(.endpoint, flr: true)
        let bytes = Int(Self.namespaceBlocks) * Self.blockSize
        // calloc: the kernel hands out zero pages as they are first touched.
        media = UnsafeMutableRawBufferPointer(start: calloc(bytes, 1)!, count: bytes)
        staging = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.maxTransfer, alignment: Self.pageSize)
        super.init(address: address, modelName: "NVMe controller", layout: builder.build())
    }

    deinit {
        free(media.baseAddress)
        staging.deallocate()
    }

    /// What the media holds at `lba` (empty outside the namespace), for tests and demos to check.
    public func mediaContents(lba: UInt64, blocks: Int) -> [UInt8] {
        guard blocks >= 0, lba <= Self.namespaceBlocks, UInt64(blocks) <= Self.namespaceBlocks - lba else { return [] }
        let start = Int(lba) * Self.blockSize
        return state.withLock { _ in Array(media[start..<start + blocks * Self.blockSize]) }
    }

    // MARK: Registers

    public override func mmioRead(_ bar: Int, offset: UInt64, width: Int) -> UInt64 {
        guard bar == 0 else { return allOnes(width) }
        let aligned = offset & ~3
        let value = state.withLock { state in UInt64(dword(state, aligned)) | UInt64(dword(state, aligned + 4)) << 32 }
        return value >> (8 * (offset & 3)) & allOnes(width)
    }

    public override func mmioWrite(_ bar: Int, offset: UInt64, width: Int, _ value: UInt64) {
        guard bar == 0, width == 4 || width == 8, offset % 4 == 0 else { return }
        let vectors: UInt64 = state.withLock { state in
            var vectors = write(&state, offset, UInt32(truncatingIfNeeded: value))
            if width == 8 { vectors |= write(&state, offset + 4, UInt32(truncatingIfNeeded: value >> 32)) }
            return vectors | deliverEvents(&state)
        }
        signal(vectors)
    }

    /// Function-level reset: power-on state, less the media and the health history.
    public override func resetModel() {
        state.withLock { state in
            let health = state.health
            state = State()
            state.health = health
        }
    }

    private func dword(_ state: State, _ offset: UInt64) -> UInt32 {
        switch offset {
        case Register.capabilities: UInt32(truncatingIfNeeded: Self.capabilities)
        case Register.capabilities + 4: UInt32(truncatingIfNeeded: Self.capabilities >> 32)
        case Register.version: Self.version
        case Register.interruptMaskSet, Register.interruptMaskClear: state.interruptMask
        case Register.configuration: state.configuration
        case Register.status: state.status
        case Register.adminQueueAttributes: state.adminQueueAttributes
        case Register.adminSubmissionQueue: UInt32(truncatingIfNeeded: state.adminSubmissionQueue)
        case Register.adminSubmissionQueue + 4: UInt32(truncatingIfNeeded: state.adminSubmissionQueue >> 32)
        case Register.adminCompletionQueue: UInt32(truncatingIfNeeded: state.adminCompletionQueue)
        case Register.adminCompletionQueue + 4: UInt32(truncatingIfNeeded: state.adminCompletionQueue >> 32)
        default: 0
        }
    }

    /// A dword register write; returns the interrupt vectors now due.
    private func write(_ state: inout State, _ offset: UInt64, _ value: UInt32) -> UInt64 {
        let doorbells = Register.doorbells..<Register.doorbells + 8 * UInt64(Self.maxIOQueues + 1)
        switch offset {
        case Register.interruptMaskSet: state.interruptMask |= value
        case Register.interruptMaskClear:
            state.interruptMask &= ~value
            let released = state.maskedPending & value
            state.maskedPending &= ~value
            return UInt64(released)
        case Register.configuration: configure(&state, value)
        case Register.adminQueueAttributes: state.adminQueueAttributes = value & 0x0fff_0fff
        case Register.adminSubmissionQueue: state.adminSubmissionQueue = state.adminSubmissionQueue & ~0xffff_ffff | UInt64(value & ~0xfff)
        case Register.adminSubmissionQueue + 4: state.adminSubmissionQueue = state.adminSubmissionQueue & 0xffff_ffff | UInt64(value) << 32
        case Register.adminCompletionQueue: state.adminCompletionQueue = state.adminCompletionQueue & ~0xffff_ffff | UInt64(value & ~0xfff)
        case Register.adminCompletionQueue + 4: state.adminCompletionQueue = state.adminCompletionQueue & 0xffff_ffff | UInt64(value) << 32
        case doorbells: return ring(&state, doorbell: Int((offset - Register.doorbells) / 4), value)
        default: break
        }
        return 0
    }

    /// CC (§3.1.5): EN 0→1 brings the admin queues up from AQA/ASQ/ACQ, EN 1→0 is a controller
    /// reset (§7.3.2: every queue, feature and outstanding event request gone, CSTS cleared;
    /// AQA, ASQ, ACQ, the media and the health history stay).
    private func configure(_ state: inout State, _ value: UInt32) {
        let wasEnabled = state.configuration & 1 != 0
        state.configuration = value & 0x00ff_fff1
        switch (wasEnabled, value & 1 != 0) {
        case (false, true): enable(&state)
        case (true, false):
            state = State(
                configuration: state.configuration, adminQueueAttributes: state.adminQueueAttributes,
                adminSubmissionQueue: state.adminSubmissionQueue, adminCompletionQueue: state.adminCompletionQueue, port: state.port,
                health: state.health)
        default: break
        }
        if value & 0xc000 != 0 {
            state.status |= ControllerStatus.shutdownComplete
        } else {
            state.status &= ~ControllerStatus.shutdownComplete
        }
    }

    private func enable(_ state: inout State) {
        let commandSet = state.configuration >> 4 & 7
        let memoryPageSize = state.configuration >> 7 & 0xf
        let submissionEntries = state.adminQueueAttributes & 0xfff + 1
        let completionEntries = state.adminQueueAttributes >> 16 & 0xfff + 1
        guard commandSet == 0, memoryPageSize == 0, submissionEntries >= 2, completionEntries >= 2 else {
            state.status |= ControllerStatus.fatal
            return
        }
        state.submissionQueues[0] = SubmissionQueue(base: state.adminSubmissionQueue, size: submissionEntries, completionQueue: 0)
        state.completionQueues[0] = CompletionQueue(base: state.adminCompletionQueue, size: completionEntries, interrupts: true, vector: 0)
        state.status = ControllerStatus.ready
    }

    /// A doorbell write (§3.1.24–25, stride 4, CAP.DSTRD 0): even doorbells are submission queue
    /// tails, odd ones completion queue heads. The doorbell of an absent queue is an Invalid
    /// Doorbell Register event; a value past the queue's size or a head past what was posted an
    /// Invalid Doorbell Write Value event (§5.2, Figure 146); either way the write is ignored.
    private func ring(_ state: inout State, doorbell: Int, _ value: UInt32) -> UInt64 {
        let qid = doorbell / 2
        guard state.status & (ControllerStatus.ready | ControllerStatus.fatal) == ControllerStatus.ready else { return 0 }
        if doorbell % 2 == 0 {
            guard let queue = state.submissionQueues[qid] else { return raise(&state, .invalidDoorbellRegister) }
            guard value < queue.size else { return raise(&state, .invalidDoorbellWriteValue) }
            state.submissionQueues[qid]!.tail = value
            return run(&state, qid)
        }
        guard let queue = state.completionQueues[qid] else { return raise(&state, .invalidDoorbellRegister) }
        guard value < queue.size, (value + queue.size - queue.head) % queue.size <= (queue.tail + queue.size - queue.head) % queue.size else {
            return raise(&state, .invalidDoorbellWriteValue)
        }
        state.completionQueues[qid]!.head = value
        // Room again: submission queues that stopped on a full completion queue go on.
        var vectors: UInt64 = 0
        for sq in state.submissionQueues.indices where state.submissionQueues[sq]?.completionQueue == qid {
            vectors |= run(&state, sq)
        }
        return vectors
    }

    /// Queues an event for an Asynchronous Event Request; none is due before `deliverEvents`.
    private func raise(_ state: inout State, _ event: NVMeAsyncEvent) -> UInt64 {
        state.events.raise(event)
        return 0
    }

    /// Sends `vectors`: MSI-X masks per vector itself; pin-based and MSI interrupts obey INTMS
    /// (vectors 0–31), a masked vector firing when INTMC clears it.
    private func signal(_ vectors: UInt64) {
        guard vectors != 0 else { return }
        let msixEnabled = msix.map { readConfig($0.offset + 2, width: 2) & 0x8000 != 0 } ?? false
        let unmasked =
            msixEnabled
            ? vectors
            : state.withLock { state in
                let masked = vectors & UInt64(state.interruptMask)
                state.maskedPending |= UInt32(truncatingIfNeeded: masked)
                return vectors & ~masked
            }
        for vector in 0..<64 where unmasked >> UInt64(vector) & 1 != 0 { raiseInterrupt(vector: vector) }
    }

    // MARK: Queues

    /// Executes submission queue `qid` from head to tail while its completion queue has room;
    /// returns the vectors of the completion queues posted to with interrupts enabled. An admin
    /// command that completes later (an Asynchronous Event Request) posts nothing now.
    private func run(_ state: inout State, _ qid: Int) -> UInt64 {
        if state.port == nil { state.port = dmaPort() }
        var vectors: UInt64 = 0
        while state.status & ControllerStatus.fatal == 0, var queue = state.submissionQueues[qid], queue.head != queue.tail {
            guard let completions = state.completionQueues[queue.completionQueue], !completions.isFull else { break }
            var command = Command()
            do throws(DMAFault) {
                let address = queue.base &+ UInt64(queue.head) * 64
                try withUnsafeMutableBytes(of: &command.raw) { (bytes) throws(DMAFault) in try state.port!.read(from: address, into: bytes) }
            } catch {
                state.status |= ControllerStatus.fatal
                break
            }
            queue.head = (queue.head + 1) % queue.size
            state.submissionQueues[qid] = queue
            let completion: Completion?
            if !state.abortRequests.isEmpty, state.abortRequests.remove(Self.abortKey(queue: qid, identifier: command.identifier)) != nil {
                completion = Completion(.commandAbortRequested)
            } else {
                completion = qid == 0 ? executeAdmin(&state, command) : executeIO(&state, command)
            }
            guard let completion else { continue }
            let lba = qid != 0 && [0x01, 0x02, 0x08].contains(command.opcode) ? command.startingLBA : 0
            let context = ErrorContext(opcode: command.opcode, namespace: command.namespace, lba: lba)
            guard post(&state, completion, identifier: command.identifier, from: qid, to: queue.completionQueue, context) else { break }
            if completions.interrupts { vectors |= 1 << UInt64(completions.vector) }
        }
        return vectors
    }

    /// What the Error Information log records of a failed command besides its queue and status.
    struct ErrorContext {
        var opcode: UInt8 = 0
        var namespace: UInt32 = 0
        var lba: UInt64 = 0
    }

    /// Writes a 16-byte completion entry (§4.6: DW0 the result, DW2 SQ head and SQ ID, DW3
    /// command ID, phase tag and status) at the queue's tail and advances it, inverting the phase
    /// tag on wrap; a failed command also goes into the Error Information log. A fault here
    /// cannot be reported in any queue: CSTS.CFS.
    func post(_ state: inout State, _ completion: Completion, identifier: UInt16, from qid: Int, to cqid: Int, _ context: ErrorContext) -> Bool {
        var queue = state.completionQueues[cqid]!
        let head = state.submissionQueues[qid]?.head ?? 0
        let dw3 = UInt64(identifier) | UInt64(queue.phase ? 1 : 0) << 16 | UInt64(completion.status.field) << 17
        let entry = (UInt64(completion.result).littleEndian, (UInt64(head) | UInt64(qid) << 16 | dw3 << 32).littleEndian)
        do throws(DMAFault) {
            try withUnsafeBytes(of: entry) { (bytes) throws(DMAFault) in
                try state.port!.write(to: queue.base &+ UInt64(queue.tail) * 16, from: bytes)
            }
        } catch {
            state.status |= ControllerStatus.fatal
            return false
        }
        if !completion.status.isSuccess {
            state.health.recordError(
                queue: UInt16(qid), identifier: identifier, status: completion.status, phase: queue.phase, context: context, isAdmin: qid == 0)
        }
        queue.tail += 1
        if queue.tail == queue.size {
            queue.tail = 0
            queue.phase.toggle()
        }
        state.completionQueues[cqid] = queue
        return true
    }

    // MARK: Commands

    /// The admin command set (§5, Figure 139). Nil: the command completes later.
    private func executeAdmin(_ state: inout State, _ command: Command) -> Completion? {
        guard !command.needsUnsupportedFeature else { return Completion(.invalidField) }
        switch command.opcode {
        case 0x00: return Completion(deleteSubmissionQueue(&state, command))
        case 0x01: return Completion(createSubmissionQueue(&state, command))
        case 0x02: return Completion(getLogPage(&state, command))
        case 0x04: return Completion(deleteCompletionQueue(&state, command))
        case 0x05: return Completion(createCompletionQueue(&state, command))
        case 0x06: return Completion(identify(&state, command))
        case 0x08: return abort(&state, command)
        case 0x09: return setFeatures(&state, command)
        case 0x0a: return getFeatures(&state, command)
        case 0x0c: return asynchronousEventRequest(&state, command)
        default: return Completion(.invalidOpcode)
        }
    }

    /// The NVM command set's I/O commands (§6, Figure 346).
    private func executeIO(_ state: inout State, _ command: Command) -> Completion {
        guard !command.needsUnsupportedFeature else { return Completion(.invalidField) }
        switch command.opcode {
        case 0x00: return Completion(flush(command))
        case 0x01, 0x02: return Completion(readWrite(&state, command))
        case 0x08: return Completion(writeZeroes(&state, command))
        case 0x09: return Completion(datasetManagement(&state, command))
        default: return Completion(.invalidOpcode)
        }
    }
}
