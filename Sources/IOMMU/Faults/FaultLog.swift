import Locking
import PCIBus

/// One DMA fault as an IOMMU's fault-recording registers report it: who (requester ID, after
/// aliasing), where (IOVA), what (access), why, and in which domain.
public struct IOMMUFault: Sendable, Equatable, Codable, CustomStringConvertible {
    /// Position in the stream of every fault the log has seen, from 0.
    public let sequence: UInt64
    public let requesterID: UInt16
    public let iova: UInt64
    public let access: String
    public let reason: IOFaultReason
    public let domainID: Int?

    public init(sequence: UInt64 = 0, requesterID: UInt16, iova: UInt64, access: IOAccess, reason: IOFaultReason, domainID: Int?) {
        self.sequence = sequence
        self.requesterID = requesterID
        self.iova = iova
        self.access = access.description
        self.reason = reason
        self.domainID = domainID
    }

    /// `BB:DD.F` of the requester ID.
    public var requester: String {
        let bus = String(requesterID >> 8, radix: 16)
        let device = String((requesterID >> 3) & 0x1F, radix: 16)
        return "\(bus.count < 2 ? "0" + bus : bus):\(device.count < 2 ? "0" + device : device).\(requesterID & 7)"
    }

    public var description: String {
        "DMA \(access) fault from \(requester) at IOVA 0x\(String(iova, radix: 16)): \(reason)"
            + (domainID.map { " (domain \($0))" } ?? "")
    }
}

/// A bounded ring of the most recent faults plus counters of every fault seen, so a storm of
/// faults costs fixed memory and nothing goes uncounted: `total == recent.count + dropped`.
public final class FaultLog: Sendable {
    public struct Counters: Sendable, Equatable, Codable {
        public var total: UInt64 = 0
        /// Faults pushed out of the ring by newer ones.
        public var dropped: UInt64 = 0
        public var byReason: [IOFaultReason: UInt64] = [:]
    }

    public let capacity: Int
    private let state: PThreadMutex<State>

    private struct State {
        var ring: [IOMMUFault] = []
        var next = 0
        var counters = Counters()
    }

    public init(capacity: Int = 256) {
        self.capacity = max(1, capacity)
        state = PThreadMutex(State())
    }

    /// Records a fault and returns it with its sequence number.
    @discardableResult
    public func record(requesterID: UInt16, iova: UInt64, access: IOAccess, reason: IOFaultReason, domainID: Int?) -> IOMMUFault {
        state.withLock { state in
            let fault = IOMMUFault(
                sequence: state.counters.total, requesterID: requesterID, iova: iova, access: access, reason: reason, domainID: domainID)
            if state.ring.count < capacity {
                state.ring.append(fault)
            } else {
                state.ring[state.next] = fault
                state.counters.dropped += 1
            }
            state.next = (state.next + 1) % capacity
            state.counters.total += 1
            state.counters.byReason[reason, default: 0] += 1
            return fault
        }
    }

    /// The faults still in the ring, oldest first.
    public var recent: [IOMMUFault] {
        state.withLock { state in
            state.ring.count < capacity ? state.ring : Array(state.ring[state.next...] + state.ring[..<state.next])
        }
    }

    public var counters: Counters { state.withLock { $0.counters } }
}
