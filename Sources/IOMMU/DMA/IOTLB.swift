import Synchronization

/// A requester's IOTLB, as the hardware keeps one: 32 recent translations for reads and 32 for
/// writes, set-indexed by 4 KiB page number (folded with the 64 KiB-block number, so buffers at
/// 64 KiB strides do not all land in two sets), valid while the domain's flush generation is the
/// one they were taken at (`iommu_iotlb_sync` bumps it).
///
/// Used by one thread at a time: the thread whose DMA reader slot claimed it (`owner`). A
/// `DMAPath` copied to another thread sees a different reader there and takes an IOTLB of its
/// own, so a lookup or a fill needs neither a lock nor a uniqueness check.
final class IOTLB: @unchecked Sendable {
    /// One cached translation: `[iova, last]` maps to `address…` for the access it was taken for;
    /// `closed` once the page after `last` is known not to continue the run.
    struct Entry {
        var iova: UInt64 = 1
        var last: UInt64 = 0
        var address: UInt64 = 0
        var closed = false

        /// Bytes of the run from `iova` on (`UInt64.max` for all 2^64).
        @inline(__always)
        func bytes(from iova: UInt64) -> UInt64 {
            let beyond = last &- iova
            return beyond == .max ? .max : beyond &+ 1
        }
    }

    static let ways = 32
    let entries: UnsafeMutablePointer<Entry>
    /// The domain flush generation the entries were taken at.
    var flushGeneration: UInt64
    /// The DMA reader slot of the thread using it (0 until a thread claims it).
    private let owner = Atomic<UInt>(0)

    init(flushGeneration: UInt64) {
        self.flushGeneration = flushGeneration
        entries = .allocate(capacity: 2 * Self.ways)
        entries.initialize(repeating: Entry(), count: 2 * Self.ways)
    }

    deinit { entries.deallocate() }

    /// Whether `reader`'s thread may use it: it claimed it, or claims it now.
    @inline(__always)
    func isOwned(by reader: UnsafeMutableRawPointer) -> Bool {
        let reader = UInt(bitPattern: reader)
        let current = owner.load(ordering: .relaxed)
        return current == reader || (current == 0 && owner.compareExchange(expected: 0, desired: reader, ordering: .relaxed).exchanged)
    }

    /// The set `iova` maps to for `access`.
    @inline(__always)
    static func slot(_ iova: UInt64, _ access: IOAccess) -> Int {
        let page = iova >> 12
        return Int(truncatingIfNeeded: (page ^ page >> 4) & UInt64(ways - 1)) &+ (access == .write ? ways : 0)
    }

    /// Drops every entry, as `iommu_iotlb_sync` does; what is filled next is taken at `flushGeneration`.
    func invalidate(at flushGeneration: UInt64) {
        entries.update(repeating: Entry(), count: 2 * Self.ways)
        self.flushGeneration = flushGeneration
    }
}
