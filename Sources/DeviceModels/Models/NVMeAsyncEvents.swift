/// An asynchronous event (NVMe 1.4 §5.2, Figures 144–148): its type, information and the log
/// page that clears it, as completion dword 0 of an Asynchronous Event Request reports them.
struct NVMeAsyncEvent: Equatable {
    static let errorStatus: UInt8 = 0
    static let smartHealthStatus: UInt8 = 1

    /// A doorbell written for a queue that does not exist (Figure 146, info 00h).
    static let invalidDoorbellRegister = NVMeAsyncEvent(type: errorStatus, information: 0x00, log: 0x01)
    /// A doorbell value past the queue's size, or a head past what was posted (info 01h).
    static let invalidDoorbellWriteValue = NVMeAsyncEvent(type: errorStatus, information: 0x01, log: 0x01)
    /// A temperature at or past a Temperature Threshold (Figure 147, info 01h).
    static let temperatureThreshold = NVMeAsyncEvent(type: smartHealthStatus, information: 0x01, log: 0x02)

    let type: UInt8
    let information: UInt8
    let log: UInt8

    /// Completion dword 0: type (2:0), information (15:8), log page identifier (23:16).
    var result: UInt32 { UInt32(type) | UInt32(information) << 8 | UInt32(log) << 16 }
}

/// Asynchronous Event Requests and the events they wait for (NVMe 1.4 §5.2). Up to AERL + 1
/// requests stay outstanding, completing only when an event comes; one more is Asynchronous
/// Event Request Limit Exceeded. An event waits for a request, and once one reported an event,
/// further events of its type wait until the host reads the event's log page without RAE.
/// Events queue once each — a repeated event while the same one waits is the same report — so
/// however a driver hammers invalid doorbells, the queue stays a few entries long.
struct NVMeAsyncEvents {
    static let limit = Int(NVMeController.Identity.asyncEventRequestLimit) + 1

    /// Command identifiers of the outstanding requests, oldest first.
    private(set) var outstanding: [UInt16] = []
    /// Events not yet reported, oldest first.
    private(set) var pending: [NVMeAsyncEvent] = []
    /// Event types reported and not yet cleared, one bit each.
    private(set) var masked: UInt8 = 0

    /// Holds a request; false when AERL + 1 are already outstanding.
    mutating func hold(_ identifier: UInt16) -> Bool {
        guard outstanding.count < Self.limit else { return false }
        outstanding.append(identifier)
        return true
    }

    /// Stops holding request `identifier`, for an Abort; whether it was held.
    mutating func release(_ identifier: UInt16) -> Bool {
        guard let index = outstanding.firstIndex(of: identifier) else { return false }
        outstanding.remove(at: index)
        return true
    }

    mutating func raise(_ event: NVMeAsyncEvent) {
        if !pending.contains(event) { pending.append(event) }
    }

    mutating func clear(type: UInt8) { masked &= ~(1 << type) }

    /// The next event to report and the request it completes, masking its type; nil when no
    /// request is outstanding or every pending event's type is masked.
    mutating func next() -> (identifier: UInt16, event: NVMeAsyncEvent)? {
        guard !outstanding.isEmpty, let index = pending.firstIndex(where: { masked & 1 << $0.type == 0 }) else { return nil }
        let event = pending.remove(at: index)
        masked |= 1 << event.type
        return (outstanding.removeFirst(), event)
    }
}

extension NVMeController {
    /// Asynchronous Event Request (NVMe 1.4 §5.2): held without completion until an event is
    /// due; past AERL + 1 outstanding, Asynchronous Event Request Limit Exceeded at once.
    func asynchronousEventRequest(_ state: inout State, _ command: Command) -> Completion? {
        state.events.hold(command.identifier) ? nil : Completion(.asyncEventRequestLimitExceeded)
    }

    /// Posts the events that outstanding requests can report to the admin completion queue while
    /// it has room; the vectors due.
    func deliverEvents(_ state: inout State) -> UInt64 {
        guard state.status & (ControllerStatus.ready | ControllerStatus.fatal) == ControllerStatus.ready else { return 0 }
        var vectors: UInt64 = 0
        while let queue = state.completionQueues[0], !queue.isFull, let (identifier, event) = state.events.next() {
            guard post(&state, Completion(.success, result: event.result), identifier: identifier, from: 0, to: 0, ErrorContext()) else { break }
            if queue.interrupts { vectors |= 1 << UInt64(queue.vector) }
        }
        return vectors
    }

    /// Abort (§5.1): CDW10 SQID (15:0) and CID (31:16). An outstanding Asynchronous Event
    /// Request with that CID completes with Command Abort Requested; a command still waiting in
    /// its submission queue (behind a full completion queue) completes so when fetched. DW0 bit 0
    /// is 0 when the command was aborted, 1 when it was not — it had completed, or never existed.
    func abort(_ state: inout State, _ command: Command) -> Completion {
        let qid = Int(command.dword(10) & 0xffff)
        let identifier = UInt16(command.dword(10) >> 16)
        guard qid <= Self.maxIOQueues, let queue = state.submissionQueues[qid] else { return Completion(.success, result: 1) }
        // The request's completion and the Abort's own both need a slot in the admin queue.
        if qid == 0, let admin = state.completionQueues[0], (admin.tail + 2) % admin.size != admin.head, state.events.release(identifier) {
            let aborted = post(&state, Completion(.commandAbortRequested), identifier: identifier, from: 0, to: 0, ErrorContext())
            return Completion(.success, result: aborted ? 0 : 1)
        }
        var slot = queue.head
        while slot != queue.tail {
            var dword0: UInt32 = 0
            do throws(DMAFault) {
                dword0 = try state.port!.load(UInt32.self, from: queue.base &+ UInt64(slot) * 64)
            } catch {
                break
            }
            if UInt16(dword0 >> 16) == identifier {
                state.abortRequests.insert(Self.abortKey(queue: qid, identifier: identifier))
                return Completion(.success, result: 0)
            }
            slot = (slot + 1) % queue.size
        }
        return Completion(.success, result: 1)
    }
}
