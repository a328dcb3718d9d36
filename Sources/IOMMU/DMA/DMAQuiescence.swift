import Glibc
import Locking
import Synchronization

/// Read-copy-update for DMA: the guarantee a driver gets from `iommu_unmap` followed by
/// `iommu_iotlb_sync` (and from detaching a group), that once the call returns no DMA lands in
/// what it took away. Every transfer a device issues runs inside a read-side critical section of
/// its path's reader (`rcu_read_lock`/`rcu_read_unlock`: one sequence number, odd while a
/// transfer is in flight); a control-path change that removes translations or memory publishes
/// its change, then `synchronize()` (`synchronize_rcu`) waits until every transfer that was in
/// flight has finished. Transfers that start later see the change. Readers never wait, and never
/// share a cache line they write.
public enum DMAQuiescence {
    /// Every reader slot ever handed out, newest first, as an immortal list a waiter walks
    /// without a lock (free slots are quiescent, so waiting skips them).
    private static let slots = Atomic<Unmanaged<DMAReaderSlot>?>(nil)
    /// Slots returned by readers that went away; pushes onto `slots` also happen under it.
    private static let free = PThreadMutex<[DMAReaderSlot]>([])

    /// Waits until every DMA transfer in flight when it was called has completed. The caller
    /// must have published its change with a sequentially consistent store (the domain's flush
    /// generation, the core's generation, the process's release generation) and must hold no lock
    /// a transfer takes.
    public static func synchronize() {
        var next = slots.load(ordering: .sequentiallyConsistent)
        while let node = next {
            let slot = node._withUnsafeGuaranteedRef { $0 }
            let seen = slot.sequence.load(ordering: .sequentiallyConsistent)
            if seen & 1 == 1 {
                var spins = 0
                while slot.sequence.load(ordering: .acquiring) == seen {
                    spins += 1
                    if spins > 64 { sched_yield() }
                }
            }
            next = slot.next
        }
    }

    static func acquireSlot() -> DMAReaderSlot {
        free.withLock { free in
            if let slot = free.popLast() { return slot }
            // Immortal: a waiter may be reading any slot at any time.
            let slot = DMAReaderSlot(next: slots.load(ordering: .relaxed))
            slots.store(Unmanaged.passRetained(slot), ordering: .releasing)
            return slot
        }
    }

    static func returnSlot(_ slot: DMAReaderSlot) {
        free.withLock { $0.append(slot) }
    }
}

/// One reader's sequence number: odd while a transfer is in flight. Only its reader writes it.
final class DMAReaderSlot: Sendable {
    let sequence = Atomic<UInt64>(0)
    /// The slot handed out before this one.
    let next: Unmanaged<DMAReaderSlot>?
    // Keeps two readers' sequence numbers off the same cache line.
    private let padding = (0 as UInt64, 0 as UInt64, 0 as UInt64, 0 as UInt64, 0 as UInt64, 0 as UInt64)

    init(next: Unmanaged<DMAReaderSlot>?) { self.next = next }
}

/// A `DMAPath`'s claim on a reader slot, returned when the last copy of the path goes away.
final class DMAReader: Sendable {
    let slot = DMAQuiescence.acquireSlot()

    deinit { DMAQuiescence.returnSlot(slot) }

    /// `rcu_read_lock`: the transfer that follows is waited for by `synchronize()`.
    @inline(__always)
    func enter() {
        let sequence = slot.sequence.load(ordering: .relaxed)
        slot.sequence.store(sequence | 1, ordering: .sequentiallyConsistent)
    }

    /// `rcu_read_unlock` (sections do not nest).
    @inline(__always)
    func exit() {
        let sequence = slot.sequence.load(ordering: .relaxed)
        slot.sequence.store((sequence | 1) &+ 1, ordering: .releasing)
    }
}
