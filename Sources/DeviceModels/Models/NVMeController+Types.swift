extension NVMeController {
    /// A completion's Status Field (NVMe 1.4 §4.6.1, DW3 31:17): SC (7:0), SCT (10:8), DNR (14).
    /// Every error but Data Transfer Error sets Do Not Retry: resubmitting the same command fails
    /// the same way. Codes from §4.6.1.2.1 (generic, SCT 0) and §4.6.1.2.2 (command specific, SCT 1).
    struct Status: Equatable {
        let field: UInt16
        static let success = Status(field: 0)
        static let invalidOpcode = rejected(0, 0x01)
        static let invalidField = rejected(0, 0x02)
        static let dataTransferError = Status(field: 0x04)
        static let commandAbortRequested = Status(field: 0x07)
        static let invalidNamespace = rejected(0, 0x0b)
        static let commandSequenceError = rejected(0, 0x0c)
        static let prpOffsetInvalid = rejected(0, 0x13)
        static let lbaOutOfRange = rejected(0, 0x80)
        static let completionQueueInvalid = rejected(1, 0x00)
        static let invalidQueueIdentifier = rejected(1, 0x01)
        static let invalidQueueSize = rejected(1, 0x02)
        static let asyncEventRequestLimitExceeded = rejected(1, 0x05)
        static let invalidInterruptVector = rejected(1, 0x08)
        static let invalidLogPage = rejected(1, 0x09)
        static let invalidQueueDeletion = rejected(1, 0x0c)
        static let featureNotSaveable = rejected(1, 0x0d)
        static let featureNotNamespaceSpecific = rejected(1, 0x0f)
        private static func rejected(_ type: UInt16, _ code: UInt16) -> Status { Status(field: 1 << 14 | type << 8 | code) }

        var isSuccess: Bool { field & 0x7ff == 0 }
    }

    /// What a command completes with: its status and completion dword 0, the command-specific
    /// result (NVMe 1.4 §4.6: Set/Get Features values, the Abort outcome, an asynchronous event).
    struct Completion: Equatable {
        var status: Status
        var result: UInt32 = 0

        init(_ status: Status, result: UInt32 = 0) {
            self.status = status
            self.result = result
        }
    }

    /// A 64-byte submission queue entry (NVMe 1.4 §4.2) as fetched.
    struct Command {
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
        /// CDW10–11 as one quadword: the starting LBA of the NVM commands that take one.
        var startingLBA: UInt64 { UInt64(dword(10)) | UInt64(dword(11)) << 32 }
    }

    struct SubmissionQueue {
        let base: UInt64
        let size: UInt32
        var head: UInt32 = 0
        var tail: UInt32 = 0
        let completionQueue: Int
    }

    struct CompletionQueue {
        let base: UInt64
        let size: UInt32
        var head: UInt32 = 0
        var tail: UInt32 = 0
        var phase = true
        let interrupts: Bool
        let vector: Int
        var isFull: Bool { (tail + 1) % size == head }
    }

    /// A command in `State.abortRequests`: its submission queue and command identifier.
    static func abortKey(queue: Int, identifier: UInt16) -> UInt32 { UInt32(queue) << 16 | UInt32(identifier) }

    /// Everything CC.EN 1→0 (a controller reset, NVMe 1.4 §7.3.2) returns to its initial value,
    /// less CC, the admin queue registers and `health`; a function-level reset all but `health`.
    struct State {
        var configuration: UInt32 = 0
        var status: UInt32 = 0
        var adminQueueAttributes: UInt32 = 0
        var adminSubmissionQueue: UInt64 = 0
        var adminCompletionQueue: UInt64 = 0
        var interruptMask: UInt32 = 0
        var maskedPending: UInt32 = 0
        var submissionQueues = [SubmissionQueue?](repeating: nil, count: NVMeController.maxIOQueues + 1)
        var completionQueues = [CompletionQueue?](repeating: nil, count: NVMeController.maxIOQueues + 1)
        var features = NVMeFeatures()
        /// Whether an I/O queue was created since the last reset: Number of Queues is then fixed.
        var createdIOQueues = false
        var events = NVMeAsyncEvents()
        /// Commands an Abort named that are still in their submission queue (`abortKey`): they
        /// complete with Command Abort Requested when fetched.
        var abortRequests: Set<UInt32> = []
        var port: DMAPort?
        /// The PRP entries of the command being executed (kept to reuse its storage).
        var pages: [UInt64] = []
        /// What the SMART/Health and Error Information logs report: it outlives every reset.
        var health = NVMeHealth()
    }
}
