import CRCU
import Glibc
import Locking
import Synchronization

/// Read-copy-update for DMA: the guarantee a driver gets from `iommu_unmap` followed by
/// `iommu_iotlb_sync` (and from detaching a group), that once the call returns no DMA lands in
/// what it took away. Every transfer a device issues runs inside a read-side critical section
/// (`beginTransfer`/`endTransfer`, `rcu_read_lock`/`rcu_read_unlock`) on its thread's reader slot
/// (one sequence number, odd while a transfer is in flight); a control-path change that removes
/// translations or memory publishes its change, then `synchronize()` (`synchronize_rcu`) waits
/// until every transfer that was in flight has finished. Transfers that start later see the
/// change. Readers never wait, never share a cache line they write and, where the kernel has
/// membarrier(2), never fence: the writer fences every running reader for them (liburcu's
/// "memb" flavour), so a transfer's entry costs one plain store.
///
/// The DMA hot path caches in three places; each cache is valid only while one key is unchanged,
/// and each key is bumped by exactly the changes that could make the cache lie. This table is the
/// one statement of that contract (docs/architecture.md repeats it):
///
/// | cache (owner)                                    | key                               | bumped by                                                                 |
/// |--------------------------------------------------|-----------------------------------|---------------------------------------------------------------------------|
/// | `DMAPath.domain`: the requester's current domain | `IOMMUCore.generation`            | every `IOMMUCore.perform` (attach, detach, claim, release, bind, unbind, type change) |
/// | `IOTLB` entries: IOVA runs → host addresses      | `IOMMUDomain.flushGeneration`     | `IOTLBGather.sync` of an unmap that removed translations (`iommu_iotlb_sync`) |
/// | `DMAPort` runs and grants: IOVA → host pointer, host address → `HostMemory` | `DMAQuiescence.gracePeriod` | every `synchronize()`: an IOTLB sync, a core change, a release of process memory |
///
/// A transfer reads each key inside its read-side section, so a writer that publishes its change,
/// bumps the key and then calls `synchronize()` knows that every transfer still using the old
/// cache has finished when it returns, and every later transfer misses the cache.
public enum DMAQuiescence {
    /// How a transfer's entry is ordered before the translations it reads.
    public enum ReaderFence: String, Sendable {
        /// A plain store; `synchronize()` makes every running thread fence
        /// (MEMBARRIER_CMD_PRIVATE_EXPEDITED) before it looks at the readers.
        case membarrier
        /// A sequentially consistent store on every entry (a full fence each: kernels without
        /// membarrier, or where seccomp filters it).
        case sequentiallyConsistent = "sequentially-consistent"
    }

    /// Decided once, before the first reader slot exists: membarrier where the kernel has it,
    /// unless `VFIOKIT_DMA_READER_FENCE=sequentially-consistent` asks for the fallback (CI runs the
    /// stress suite both ways).
    public static let readerFence: ReaderFence = {
        if let requested = getenv("VFIOKIT_DMA_READER_FENCE"), String(cString: requested) == ReaderFence.sequentiallyConsistent.rawValue {
            return .sequentiallyConsistent
        }
        return vfiokit_rcu_membarrier_register() == 0 ? .membarrier : .sequentiallyConsistent
    }()

    /// Every reader slot ever handed out, newest first, as an immortal list a waiter walks
    /// without a lock (free slots are quiescent, so waiting skips them).
    private static let slots = Atomic<Unmanaged<DMAReaderSlot>?>(nil)
    /// Slots returned by threads that exited; pushes onto `slots` also happen under it.
    private static let free = PThreadMutex<[DMAReaderSlot]>([])
    /// Threads holding a slot: with none but the caller's, no transfer can be in flight.
    private static let heldSlots = Atomic<Int>(0)
    /// Returns a thread's slot when the thread exits.
    private static let threadExit: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { pointer in
            if let pointer { DMAQuiescence.returnSlot(pointer) }
        }
        return key
    }()

    /// `rcu_read_lock`: translations and the memory accesses made with them until
    /// `endTransfer()` are waited for by any unmap or domain change that starts meanwhile. A
    /// transfer runs no code of its caller, so its sections never nest; code that may be called
    /// inside one or outside uses `beginTransferUnlessInside()`.
    @inlinable @inline(__always)
    public static func beginTransfer() {
        let reader = vfiokit_rcu_reader_get() ?? registerThread()
        Unmanaged<DMAReaderSlot>.fromOpaque(reader)._withUnsafeGuaranteedRef { $0.enter() }
    }

    /// `beginTransfer()` for code that may run inside a transfer or outside one (a translation
    /// asked for directly): begins one unless the calling thread is in one already, and says
    /// whether it did — end it with `endTransfer()` exactly then.
    @inlinable @inline(__always)
    public static func beginTransferUnlessInside() -> Bool {
        beginTransferUnlessInside(on: currentReader)
    }

    /// The calling thread's reader slot (given on its first use): an identity no other live
    /// thread shares.
    @inlinable @inline(__always)
    public static var currentReader: UnsafeMutableRawPointer { vfiokit_rcu_reader_get() ?? registerThread() }

    /// `beginTransferUnlessInside()` with the calling thread's `currentReader` at hand.
    @inlinable @inline(__always)
    public static func beginTransferUnlessInside(on reader: UnsafeMutableRawPointer) -> Bool {
        Unmanaged<DMAReaderSlot>.fromOpaque(reader)._withUnsafeGuaranteedRef { slot in
            guard !slot.isInside else { return false }
            slot.enter()
            return true
        }
    }

    /// `rcu_read_unlock`: closes the section `beginTransfer()` opened on this thread.
    @inlinable @inline(__always)
    public static func endTransfer() {
        Unmanaged<DMAReaderSlot>.fromOpaque(vfiokit_rcu_reader_get().unsafelyUnwrapped)._withUnsafeGuaranteedRef { $0.exit() }
    }

    /// The grace periods begun so far. A device may reuse what it resolved in an earlier transfer
    /// (a translation, a grant) only while this is unchanged: read it inside the transfer.
    @inlinable @inline(__always)
    public static var gracePeriod: UInt64 { UInt64(vfiokit_rcu_grace_period()) }

    /// Begins a grace period and waits until every DMA transfer in flight when it was called has
    /// completed. The caller must have published its change — with a sequentially consistent
    /// store (the domain's flush generation, the core's generation) or under a lock a transfer's
    /// slow path takes (the process's allocations) — must hold no lock a transfer takes, and must
    /// not be inside a transfer itself.
    public static func synchronize() {
        vfiokit_rcu_begin_grace_period()
        // A thread that takes its first slot after this load sees the change (its registration
        // is a sequentially consistent read-modify-write, after the caller's publication).
        let own = vfiokit_rcu_reader_get() == nil ? 0 : 1
        guard heldSlots.load(ordering: .sequentiallyConsistent) > own else { return }
        if readerFence == .membarrier {
            // Every running reader fences: an entry it made before is visible below, and its
            // loads after see the change. A thread not running has fenced in the context switch.
            let result = vfiokit_rcu_membarrier()
            precondition(result == 0, "membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) failed after registration: errno \(-result)")
        }
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

    /// Gives the calling thread a slot, for its first transfer.
    @usableFromInline @inline(never)
    static func registerThread() -> UnsafeMutableRawPointer {
        let fence = readerFence
        let slot = free.withLock { free in
            if let slot = free.popLast() { return slot }
            // Immortal: a waiter may be reading any slot at any time.
            let slot = DMAReaderSlot(next: slots.load(ordering: .relaxed), fence: fence)
            slots.store(Unmanaged.passRetained(slot), ordering: .releasing)
            return slot
        }
        heldSlots.wrappingAdd(1, ordering: .sequentiallyConsistent)
        let pointer = Unmanaged.passUnretained(slot).toOpaque()
        vfiokit_rcu_reader_set(pointer)
        pthread_setspecific(threadExit, pointer)
        return pointer
    }

    private static func returnSlot(_ pointer: UnsafeMutableRawPointer) {
        let slot = Unmanaged<DMAReaderSlot>.fromOpaque(pointer).takeUnretainedValue()
        free.withLock { $0.append(slot) }
        heldSlots.wrappingSubtract(1, ordering: .sequentiallyConsistent)
    }
}

/// One thread's sequence number: odd while a transfer is in flight. Only its thread writes it.
@usableFromInline
final class DMAReaderSlot: Sendable {
    @usableFromInline let sequence = Atomic<UInt64>(0)
    @usableFromInline let fencedByMembarrier: Bool
    /// The slot handed out before this one.
    let next: Unmanaged<DMAReaderSlot>?
    // Keeps two readers' sequence numbers off the same cache line.
    private let padding = (0 as UInt64, 0 as UInt64, 0 as UInt64, 0 as UInt64, 0 as UInt64, 0 as UInt64)

    init(next: Unmanaged<DMAReaderSlot>?, fence: DMAQuiescence.ReaderFence) {
        self.next = next
        fencedByMembarrier = fence == .membarrier
    }

    /// Whether this slot's thread is inside a transfer (read by that thread only).
    @inlinable var isInside: Bool { sequence.load(ordering: .relaxed) & 1 == 1 }

    @inlinable @inline(__always)
    func enter() {
        let sequence = sequence.load(ordering: .relaxed)
        if fencedByMembarrier {
            self.sequence.store(sequence | 1, ordering: .relaxed)
            // The translations below are read after the entry, as far as the compiler goes;
            // `synchronize()`'s membarrier orders them on the CPU.
            vfiokit_rcu_compiler_barrier()
        } else {
            self.sequence.store(sequence | 1, ordering: .sequentiallyConsistent)
        }
    }

    @inlinable @inline(__always)
    func exit() {
        let sequence = sequence.load(ordering: .relaxed)
        self.sequence.store((sequence | 1) &+ 1, ordering: .releasing)
    }
}
