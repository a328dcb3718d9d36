extension NVMeController {
    /// Create I/O Completion Queue (NVMe 1.4 §5.3): CDW10 QID (15:0) and QSIZE (31:16, entries
    /// − 1), CDW11 PC (0), IEN (1), IV (31:16); checked in QEMU's order. A QID past the count
    /// Number of Queues granted is an Invalid Queue Identifier; CC.IOCQES must name 16-byte entries.
    func createCompletionQueue(_ state: inout State, _ command: Command) -> Status {
        let qid = Int(command.dword(10) & 0xffff)
        let entries = command.dword(10) >> 16 + 1
        let flags = command.dword(11)
        guard (1...state.features.completionQueues).contains(qid), state.completionQueues[qid] == nil else { return .invalidQueueIdentifier }
        guard entries >= 2, entries <= Self.maxQueueEntries else { return .invalidQueueSize }
        guard command.prp1 & Self.pageMask == 0 else { return .prpOffsetInvalid }
        guard flags >> 16 < Self.msixVectors else { return .invalidInterruptVector }
        // CAP.CQR: only physically contiguous queues.
        guard flags & 1 != 0, state.configuration >> 20 & 0xf == 4 else { return .invalidField }
        state.completionQueues[qid] = CompletionQueue(base: command.prp1, size: entries, interrupts: flags & 2 != 0, vector: Int(flags >> 16))
        state.createdIOQueues = true
        return .success
    }

    /// Create I/O Submission Queue (§5.4): CDW10 as for a completion queue, CDW11 PC (0) and
    /// CQID (31:16). CC.IOSQES must name 64-byte entries.
    func createSubmissionQueue(_ state: inout State, _ command: Command) -> Status {
        let qid = Int(command.dword(10) & 0xffff)
        let entries = command.dword(10) >> 16 + 1
        let flags = command.dword(11)
        let cqid = Int(flags >> 16)
        guard (1...state.features.submissionQueues).contains(qid), state.submissionQueues[qid] == nil else { return .invalidQueueIdentifier }
        guard (1...Self.maxIOQueues).contains(cqid), state.completionQueues[cqid] != nil else { return .completionQueueInvalid }
        guard entries >= 2, entries <= Self.maxQueueEntries else { return .invalidQueueSize }
        guard command.prp1 & Self.pageMask == 0 else { return .prpOffsetInvalid }
        guard flags & 1 != 0, state.configuration >> 16 & 0xf == 6 else { return .invalidField }
        state.submissionQueues[qid] = SubmissionQueue(base: command.prp1, size: entries, completionQueue: cqid)
        state.createdIOQueues = true
        return .success
    }

    /// Delete I/O Submission Queue (§5.6); aborts requested for its commands go with it.
    func deleteSubmissionQueue(_ state: inout State, _ command: Command) -> Status {
        let qid = Int(command.dword(10) & 0xffff)
        guard (1...Self.maxIOQueues).contains(qid), state.submissionQueues[qid] != nil else { return .invalidQueueIdentifier }
        state.submissionQueues[qid] = nil
        state.abortRequests = state.abortRequests.filter { $0 >> 16 != qid }
        return .success
    }

    /// Delete I/O Completion Queue (§5.5): Invalid Queue Deletion while a submission queue still
    /// posts to it.
    func deleteCompletionQueue(_ state: inout State, _ command: Command) -> Status {
        let qid = Int(command.dword(10) & 0xffff)
        guard (1...Self.maxIOQueues).contains(qid), state.completionQueues[qid] != nil else { return .invalidQueueIdentifier }
        guard !state.submissionQueues.contains(where: { $0?.completionQueue == qid }) else { return .invalidQueueDeletion }
        state.completionQueues[qid] = nil
        return .success
    }
}
