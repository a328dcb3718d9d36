import Glibc
import Locking
import PCIBus

/// An NVMe controller: a faithful subset of NVMe 1.4 over PCIe (class 0x010802). The admin queue
/// pair comes from AQA/ASQ/ACQ when CC.EN goes 1; I/O queue pairs are created and deleted by
/// admin commands. Writing a submission queue's tail doorbell runs the commands from its head to
/// the new tail at once, each completion posted to the queue's completion queue with the phase
/// tag, and the completion queue's MSI-X vector raised if it has interrupts enabled. Data moves
/// by PRP: PRP1 (dword aligned, any offset), PRP2 as the second page or as a PRP list whose last
/// entry in each list page chains to the next. One namespace (NSID 1) of 16 MiB in 512-byte
/// blocks, non-volatile: it survives controller and function resets.
///
/// Admin commands: Delete I/O SQ (0x00), Create I/O SQ (0x01), Delete I/O CQ (0x04), Create I/O
/// CQ (0x05), Identify (0x06: CNS 0 namespace, 1 controller, 2 active namespace list). I/O
/// commands: Flush (0x00), Write (0x01), Read (0x02). Anything else: Invalid Command Opcode.
///
/// Hostile programming cannot crash it: doorbell writes for absent queues or past a queue's size
/// are ignored (there are no Asynchronous Event Requests to report them), bad queue parameters
/// fail the admin command, a DMA fault on data (or a PRP list) completes the command with Data
/// Transfer Error — a Write changes the media only after all its data arrived — and a fault
/// fetching a command or posting a completion sets CSTS.CFS, after which the controller does
/// nothing until CC.EN 1→0 resets it. As QEMU's `nvme_start_ctrl`, enabling with an unusable
/// configuration (CSS not NVM, MPS not 4 KiB, an admin queue under two entries) sets CSTS.CFS.
///
/// BAR0 registers (little-endian; dword or qword accesses, narrower writes are dropped):
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
/// | 0x1000 + 8y    | SQyTDBL  | WO u32 | submission queue y tail doorbell (y ≤ 16) |
/// | 0x1004 + 8y    | CQyHDBL  | WO u32 | completion queue y head doorbell |
/// | 0x2000, 0x3000 |          |        | MSI-X table (8 vectors) and pending bits |
public final class NVMeController: VirtualPCIDevice, @unchecked Sendable {
    public static let summary = "NVMe controller (NVMe 1.4 subset: admin and I/O queue pairs, PRP lists, 16 MiB namespace, MSI-X)"
    public static let vendorID = ModelCatalog.vendorID
    public static let deviceID: UInt16 = 0x5603
    public static let blockSize = 512
    public static let namespaceBlocks: UInt64 = 32768
    /// CAP.MQES + 1: the most entries an I/O queue may have.
    public static let maxQueueEntries: UInt32 = 1024
    /// I/O queue identifiers run 1…16.
    public static let maxIOQueues = 16
    public static let msixVectors = 8
    /// MDTS: at most 2^5 pages (128 KiB) per command.
    public static let maxTransferShift = 5
    static let pageSize = 4096
    static let pageMask = UInt64(pageSize - 1)
    static let maxTransfer = pageSize << maxTransferShift
    static let capabilities = UInt64(maxQueueEntries - 1) | 1 << 16 | 20 << 24 | 1 << 37

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

    /// A completion's Status Field (DW3 31:17): SC (7:0), SCT (10:8), DNR (14). Every error but
    /// Data Transfer Error sets Do Not Retry: resubmitting the same command fails the same way.
    struct Status: Equatable {
        let field: UInt16
        static let success = Status(field: 0)
        static let invalidOpcode = rejected(0, 0x01)
        static let invalidField = rejected(0, 0x02)
        static let dataTransferError = Status(field: 0x04)
        static let invalidNamespace = rejected(0, 0x0b)
        static let prpOffsetInvalid = rejected(0, 0x13)
        static let lbaOutOfRange = rejected(0, 0x80)
        static let completionQueueInvalid = rejected(1, 0x00)
        static let invalidQueueIdentifier = rejected(1, 0x01)
        static let invalidQueueSize = rejected(1, 0x02)
        static let invalidInterruptVector = rejected(1, 0x08)
        static let invalidQueueDeletion = rejected(1, 0x0c)
        private static func rejected(_ type: UInt16, _ code: UInt16) -> Status { Status(field: 1 << 14 | type << 8 | code) }
    }

    /// A 64-byte submission queue entry (NVMe 1.4 §4.2) as fetched.
    private struct Command {
        var raw = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        func dword(_ index: Int) -> UInt32 {
            withUnsafeBytes(of: raw) { UInt32(littleEndian: $0.load(fromByteOffset: 4 * index, as: UInt32.self)) }
        }
        var opcode: UInt8 { UInt8(truncatingIfNeeded: dword(0)) }
        /// FUSE (9:8) or PSDT (15:14) set: fused operations and SGLs, neither supported.
        var needsUnsupportedFeature: Bool { dword(0) & 0xc300 != 0 }
        var identifier: UInt16 { UInt16(dword(0) >> 16) }
        var namespace: UInt32 { dword(1) }
        var prp1: UInt64 { UInt64(dword(6)) | UInt64(dword(7)) << 32 }
        var prp2: UInt64 { UInt64(dword(8)) | UInt64(dword(9)) << 32 }
    }

    private struct SubmissionQueue {
        let base: UInt64
        let size: UInt32
        var head: UInt32 = 0
        var tail: UInt32 = 0
        let completionQueue: Int
    }

    private struct CompletionQueue {
        let base: UInt64
        let size: UInt32
        var head: UInt32 = 0
        var tail: UInt32 = 0
        var phase = true
        let interrupts: Bool
        let vector: Int
        var isFull: Bool { (tail + 1) % size == head }
    }

    private struct State {
        var configuration: UInt32 = 0
        var status: UInt32 = 0
        var adminQueueAttributes: UInt32 = 0
        var adminSubmissionQueue: UInt64 = 0
        var adminCompletionQueue: UInt64 = 0
        var interruptMask: UInt32 = 0
        var maskedPending: UInt32 = 0
        var submissionQueues = [SubmissionQueue?](repeating: nil, count: maxIOQueues + 1)
        var completionQueues = [CompletionQueue?](repeating: nil, count: maxIOQueues + 1)
        var port: DMAPort?
        /// The PRP entries of the command being executed (kept to reuse its storage).
        var pages: [UInt64] = []
    }

    private let state = PThreadMutex(State())
    // The namespace's media and the buffer a Write's data lands in before it reaches the media:
    // both touched only under `state`'s lock.
    private let media: UnsafeMutableRawBufferPointer
    private let staging: UnsafeMutableRawBufferPointer

    public init(address: PCIAddress, mmioBase: UInt64) {
        var builder = VirtualConfigBuilder(vendor: Self.vendorID, device: Self.deviceID, classCode: 0x010802, subsystemVendor: Self.vendorID, subsystem: Self.deviceID)
        builder.addBAR(0, PCIBARResource(kind: .memory64, size: 16 << 10, busAddress: mmioBase))
        builder.addPowerManagement()
        builder.addMSI(vectors: 8)
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
        let vectors: UInt32 = state.withLock { state in
            var vectors = write(&state, offset, UInt32(truncatingIfNeeded: value))
            if width == 8 { vectors |= write(&state, offset + 4, UInt32(truncatingIfNeeded: value >> 32)) }
            return vectors
        }
        signal(vectors)
    }

    public override func resetModel() { state.withLock { $0 = State() } }

    private func dword(_ state: State, _ offset: UInt64) -> UInt32 {
        switch offset {
        case Register.capabilities: UInt32(truncatingIfNeeded: Self.capabilities)
        case Register.capabilities + 4: UInt32(truncatingIfNeeded: Self.capabilities >> 32)
        case Register.version: 0x0001_0400
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
    private func write(_ state: inout State, _ offset: UInt64, _ value: UInt32) -> UInt32 {
        let doorbells = Register.doorbells..<Register.doorbells + 8 * UInt64(Self.maxIOQueues + 1)
        switch offset {
        case Register.interruptMaskSet: state.interruptMask |= value
        case Register.interruptMaskClear:
            state.interruptMask &= ~value
            let released = state.maskedPending & value
            state.maskedPending &= ~value
            return released
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

    /// CC: EN 0→1 brings the admin queues up from AQA/ASQ/ACQ, EN 1→0 is a controller reset
    /// (every queue gone, CSTS cleared; AQA, ASQ, ACQ and the media stay).
    private func configure(_ state: inout State, _ value: UInt32) {
        let wasEnabled = state.configuration & 1 != 0
        state.configuration = value & 0x00ff_fff1
        switch (wasEnabled, value & 1 != 0) {
        case (false, true): enable(&state)
        case (true, false):
            state = State(
                configuration: state.configuration, adminQueueAttributes: state.adminQueueAttributes,
                adminSubmissionQueue: state.adminSubmissionQueue, adminCompletionQueue: state.adminCompletionQueue, port: state.port)
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

    /// A doorbell write (stride 4, CAP.DSTRD 0): even doorbells are submission queue tails, odd
    /// ones completion queue heads. A value past the queue's size, a head past what was posted,
    /// or a doorbell of an absent queue is an invalid doorbell write, and ignored.
    private func ring(_ state: inout State, doorbell: Int, _ value: UInt32) -> UInt32 {
        let qid = doorbell / 2
        guard state.status & (ControllerStatus.ready | ControllerStatus.fatal) == ControllerStatus.ready else { return 0 }
        if doorbell % 2 == 0 {
            guard let queue = state.submissionQueues[qid], value < queue.size else { return 0 }
            state.submissionQueues[qid]!.tail = value
            return run(&state, qid)
        }
        guard let queue = state.completionQueues[qid], value < queue.size,
            (value + queue.size - queue.head) % queue.size <= (queue.tail + queue.size - queue.head) % queue.size
        else { return 0 }
        state.completionQueues[qid]!.head = value
        // Room again: submission queues that stopped on a full completion queue go on.
        var vectors: UInt32 = 0
        for sq in state.submissionQueues.indices where state.submissionQueues[sq]?.completionQueue == qid {
            vectors |= run(&state, sq)
        }
        return vectors
    }

    /// Sends `vectors`: MSI-X masks per vector itself; pin-based and MSI interrupts obey INTMS,
    /// a masked vector firing when INTMC clears it.
    private func signal(_ vectors: UInt32) {
        guard vectors != 0 else { return }
        let msixEnabled = msix.map { readConfig($0.offset + 2, width: 2) & 0x8000 != 0 } ?? false
        let unmasked =
            msixEnabled
            ? vectors
            : state.withLock { state in
                state.maskedPending |= vectors & state.interruptMask
                return vectors & ~state.interruptMask
            }
        for vector in 0..<32 where unmasked >> vector & 1 != 0 { raiseInterrupt(vector: vector) }
    }

    // MARK: Queues

    /// Executes submission queue `qid` from head to tail while its completion queue has room;
    /// returns the vectors of the completion queues posted to with interrupts enabled.
    private func run(_ state: inout State, _ qid: Int) -> UInt32 {
        if state.port == nil { state.port = dmaPort() }
        var vectors: UInt32 = 0
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
            let status = qid == 0 ? executeAdmin(&state, command) : executeIO(&state, command)
            guard post(&state, status, for: command, from: qid, head: queue.head, to: queue.completionQueue) else { break }
            if completions.interrupts { vectors |= 1 << completions.vector }
        }
        return vectors
    }

    /// Writes a 16-byte completion entry (NVMe 1.4 §4.6) at the queue's tail and advances it,
    /// inverting the phase tag on wrap. A fault here cannot be reported in any queue: CSTS.CFS.
    private func post(_ state: inout State, _ status: Status, for command: Command, from qid: Int, head: UInt32, to cqid: Int) -> Bool {
        var queue = state.completionQueues[cqid]!
        let dw3 = UInt64(command.identifier) | UInt64(queue.phase ? 1 : 0) << 16 | UInt64(status.field) << 17
        let entry = (UInt64(0), (UInt64(head) | UInt64(qid) << 16 | dw3 << 32).littleEndian)
        do throws(DMAFault) {
            try withUnsafeBytes(of: entry) { (bytes) throws(DMAFault) in
                try state.port!.write(to: queue.base &+ UInt64(queue.tail) * 16, from: bytes)
            }
        } catch {
            state.status |= ControllerStatus.fatal
            return false
        }
        queue.tail += 1
        if queue.tail == queue.size {
            queue.tail = 0
            queue.phase.toggle()
        }
        state.completionQueues[cqid] = queue
        return true
    }

    // MARK: Admin commands

    private func executeAdmin(_ state: inout State, _ command: Command) -> Status {
        guard !command.needsUnsupportedFeature else { return .invalidField }
        switch command.opcode {
        case 0x00: return deleteSubmissionQueue(&state, command)
        case 0x01: return createSubmissionQueue(&state, command)
        case 0x04: return deleteCompletionQueue(&state, command)
        case 0x05: return createCompletionQueue(&state, command)
        case 0x06: return identify(&state, command)
        default: return .invalidOpcode
        }
    }

    /// Create I/O Completion Queue: CDW10 QID (15:0) and QSIZE (31:16, entries − 1), CDW11 PC (0),
    /// IEN (1), IV (31:16); checked in QEMU's order. CC.IOCQES must name 16-byte entries.
    private func createCompletionQueue(_ state: inout State, _ command: Command) -> Status {
        let qid = Int(command.dword(10) & 0xffff)
        let entries = command.dword(10) >> 16 + 1
        let flags = command.dword(11)
        guard (1...Self.maxIOQueues).contains(qid), state.completionQueues[qid] == nil else { return .invalidQueueIdentifier }
        guard entries >= 2, entries <= Self.maxQueueEntries else { return .invalidQueueSize }
        guard command.prp1 & Self.pageMask == 0 else { return .prpOffsetInvalid }
        guard flags >> 16 < Self.msixVectors else { return .invalidInterruptVector }
        // CAP.CQR: only physically contiguous queues.
        guard flags & 1 != 0, state.configuration >> 20 & 0xf == 4 else { return .invalidField }
        state.completionQueues[qid] = CompletionQueue(base: command.prp1, size: entries, interrupts: flags & 2 != 0, vector: Int(flags >> 16))
        return .success
    }

    /// Create I/O Submission Queue: CDW10 as for a completion queue, CDW11 PC (0) and CQID
    /// (31:16). CC.IOSQES must name 64-byte entries.
    private func createSubmissionQueue(_ state: inout State, _ command: Command) -> Status {
        let qid = Int(command.dword(10) & 0xffff)
        let entries = command.dword(10) >> 16 + 1
        let flags = command.dword(11)
        let cqid = Int(flags >> 16)
        guard (1...Self.maxIOQueues).contains(qid), state.submissionQueues[qid] == nil else { return .invalidQueueIdentifier }
        guard (1...Self.maxIOQueues).contains(cqid), state.completionQueues[cqid] != nil else { return .completionQueueInvalid }
        guard entries >= 2, entries <= Self.maxQueueEntries else { return .invalidQueueSize }
        guard command.prp1 & Self.pageMask == 0 else { return .prpOffsetInvalid }
        guard flags & 1 != 0, state.configuration >> 16 & 0xf == 6 else { return .invalidField }
        state.submissionQueues[qid] = SubmissionQueue(base: command.prp1, size: entries, completionQueue: cqid)
        return .success
    }

    private func deleteSubmissionQueue(_ state: inout State, _ command: Command) -> Status {
        let qid = Int(command.dword(10) & 0xffff)
        guard (1...Self.maxIOQueues).contains(qid), state.submissionQueues[qid] != nil else { return .invalidQueueIdentifier }
        state.submissionQueues[qid] = nil
        return .success
    }

    /// Fails with Invalid Queue Deletion while a submission queue still posts to it.
    private func deleteCompletionQueue(_ state: inout State, _ command: Command) -> Status {
        let qid = Int(command.dword(10) & 0xffff)
        guard (1...Self.maxIOQueues).contains(qid), state.completionQueues[qid] != nil else { return .invalidQueueIdentifier }
        guard !state.submissionQueues.contains(where: { $0?.completionQueue == qid }) else { return .invalidQueueDeletion }
        state.completionQueues[qid] = nil
        return .success
    }

    /// Identify (CDW10 CNS): a 4 KiB data structure to PRP1/PRP2.
    private func identify(_ state: inout State, _ command: Command) -> Status {
        let page = UnsafeMutableRawBufferPointer(rebasing: staging[0..<Self.pageSize])
        page.initializeMemory(as: UInt8.self, repeating: 0)
        switch command.dword(10) & 0xff {
        case 0:
            guard command.namespace == 1 else { return .invalidNamespace }
            for offset in [0, 8, 16] { page.storeBytes(of: Self.namespaceBlocks.littleEndian, toByteOffset: offset, as: UInt64.self) }  // NSZE, NCAP, NUSE
            page.storeBytes(of: UInt32(9 << 16).littleEndian, toByteOffset: 128, as: UInt32.self)  // LBA format 0: 2^9-byte blocks, no metadata
        case 1:
            page.storeBytes(of: Self.vendorID.littleEndian, toByteOffset: 0, as: UInt16.self)  // VID
            page.storeBytes(of: Self.vendorID.littleEndian, toByteOffset: 2, as: UInt16.self)  // SSVID
            for (offset, length, text) in [(4, 20, address.description), (24, 40, "VFIOKit NVMe controller"), (64, 8, "1.0")] {
                let padded = Array(text.utf8.prefix(length)) + Array(repeating: UInt8(ascii: " "), count: max(0, length - text.utf8.count))
                UnsafeMutableRawBufferPointer(rebasing: page[offset..<offset + length]).copyBytes(from: padded)  // SN, MN, FR
            }
            page[77] = UInt8(Self.maxTransferShift)  // MDTS
            page.storeBytes(of: UInt32(0x0001_0400).littleEndian, toByteOffset: 80, as: UInt32.self)  // VER
            page[111] = 1  // CNTRLTYPE: I/O controller
            page[512] = 0x66  // SQES: 64-byte entries, required and maximum
            page[513] = 0x44  // CQES: 16-byte entries
            page.storeBytes(of: UInt32(1).littleEndian, toByteOffset: 516, as: UInt32.self)  // NN
        case 2:
            guard command.namespace < 0xffff_fffe else { return .invalidNamespace }
            if command.namespace == 0 { page.storeBytes(of: UInt32(1).littleEndian, as: UInt32.self) }
        default:
            return .invalidField
        }
        return transfer(&state, command, page, toHost: true)
    }

    // MARK: I/O commands

    /// Read and Write: CDW10–11 SLBA, CDW12 NLB (15:0, blocks − 1). Checked as QEMU's `nvme_rw`:
    /// namespace, MDTS (Invalid Field), then the LBA range.
    private func executeIO(_ state: inout State, _ command: Command) -> Status {
        guard !command.needsUnsupportedFeature else { return .invalidField }
        guard command.opcode <= 0x02 else { return .invalidOpcode }
        guard command.namespace == 1 else { return .invalidNamespace }
        // Flush: there is no volatile write cache, everything written is on the media.
        guard command.opcode != 0x00 else { return .success }
        let first = UInt64(command.dword(10)) | UInt64(command.dword(11)) << 32
        let blocks = UInt64(command.dword(12) & 0xffff) + 1
        let length = Int(blocks) * Self.blockSize
        guard length <= Self.maxTransfer else { return .invalidField }
        guard first < Self.namespaceBlocks, blocks <= Self.namespaceBlocks - first else { return .lbaOutOfRange }
        let start = Int(first) * Self.blockSize
        let extent = UnsafeMutableRawBufferPointer(rebasing: media[start..<start + length])
        if command.opcode == 0x02 { return transfer(&state, command, extent, toHost: true) }
        let staged = UnsafeMutableRawBufferPointer(rebasing: staging[0..<length])
        let status = transfer(&state, command, staged, toHost: false)
        if status == .success { extent.copyMemory(from: UnsafeRawBufferPointer(staged)) }
        return status
    }

    /// Moves `buffer` to (`toHost`) or from the host memory the command's PRPs describe. A fault
    /// is a Data Transfer Error; what moved before it stays moved.
    private func transfer(_ state: inout State, _ command: Command, _ buffer: UnsafeMutableRawBufferPointer, toHost: Bool) -> Status {
        let status = collectPages(&state, command, length: buffer.count)
        guard status == .success else { return status }
        var done = 0
        do throws(DMAFault) {
            for page in state.pages {
                let count = min(buffer.count - done, Self.pageSize - Int(page & Self.pageMask))
                let chunk = UnsafeMutableRawBufferPointer(rebasing: buffer[done..<done + count])
                if toHost {
                    try state.port!.write(to: page, from: UnsafeRawBufferPointer(chunk))
                } else {
                    try state.port!.read(from: page, into: chunk)
                }
                done += count
            }
        } catch {
            return .dataTransferError
        }
        return .success
    }

    /// The PRP entries of a `length`-byte transfer (NVMe 1.4 §4.3) into `state.pages`: PRP1,
    /// dword aligned, covers up to the end of its page; one more page is PRP2 itself, more than
    /// that a PRP list at PRP2 (qword aligned) whose entries are pages, the last entry of each
    /// list page pointing to the next list page when more entries are needed. Every page but the
    /// first is page aligned, or PRP Offset Invalid.
    private func collectPages(_ state: inout State, _ command: Command, length: Int) -> Status {
        state.pages.removeAll(keepingCapacity: true)
        guard command.prp1 & 3 == 0 else { return .prpOffsetInvalid }
        state.pages.append(command.prp1)
        var remaining = length - min(length, Self.pageSize - Int(command.prp1 & Self.pageMask))
        guard remaining > Self.pageSize else {
            guard remaining > 0 else { return .success }
            guard command.prp2 & Self.pageMask == 0 else { return .prpOffsetInvalid }
            state.pages.append(command.prp2)
            return .success
        }
        var entry = command.prp2
        guard entry & 7 == 0 else { return .prpOffsetInvalid }
        do throws(DMAFault) {
            while remaining > 0 {
                let value = try state.port!.load(UInt64.self, from: entry)
                guard value & Self.pageMask == 0 else { return .prpOffsetInvalid }
                if entry & Self.pageMask == Self.pageMask - 7, remaining > Self.pageSize {
                    entry = value
                    continue
                }
                state.pages.append(value)
                remaining -= min(remaining, Self.pageSize)
                entry &+= 8
            }
        } catch {
            return .dataTransferError
        }
        return .success
    }
}
