import PCIBus

/// The route one requester's DMA takes into the IOMMU: the device's group and whatever domain that
/// group is attached to now (`group->domain`, looked up per transaction by the hardware through
/// its context/device table). The path caches the domain and revalidates it with one atomic load
/// of the core's generation, so a DMA costs the domain's page-table walk and nothing more, yet an
/// attach, detach or ownership change is seen by the next transaction.
///
/// Like the hardware, the path keeps an IOTLB: 32 recent translations (merged runs) for reads and 32 for
/// writes (direct-mapped by 4 KiB page number), valid until the domain's next unmap
/// (`iommu_iotlb_sync`) or a change of domain, so a device that keeps using the same buffers
/// pays for a page walk once per page, not once per transfer.
///
/// Every transfer runs between `beginTransfer()` and `endTransfer()`, so an unmap or a change of
/// domain returns only once the transfers that could still use what it removed have completed
/// (`DMAQuiescence`).
///
/// A value owned by the one device thread that issues the DMA; copy it to give another thread its
/// own (a copy takes its own reader slot at its first transfer).
public struct DMAPath: Sendable {
    /// One cached translation: `[iova, end)` maps to `address…` for the access it was taken for.
    private struct IOTLBEntry: Sendable {
        var iova: UInt64 = 1
        var end: UInt64 = 0
        var address: UInt64 = 0
    }

    public let core: IOMMUCore
    public let address: PCIAddress
    /// The requester ID on the wire after aliasing (ALIAS-01..04); defaults to the function's own.
    public let requesterID: UInt16
    private var domain: IOMMUDomain? {
        didSet { unretainedDomain = domain.map(Unmanaged.passUnretained) }
    }
    private var generation: Int
    // The hot path borrows both objects through these, without a retain/release per transaction;
    // `core` and `domain` keep them alive.
    private let unretainedCore: Unmanaged<IOMMUCore>
    private var unretainedDomain: Unmanaged<IOMMUDomain>?
    // Reads in the first half, writes in the second; copying the path copies it on first write.
    private var iotlb = Self.emptyIOTLB
    /// The domain's flush generation the IOTLB's entries were taken at.
    private var iotlbGeneration: UInt64 = 0
    private static let iotlbWays = 32
    /// This path's read-side slot, taken at the first transfer.
    private var reader: DMAReader?
    private static let emptyIOTLB = [IOTLBEntry](repeating: IOTLBEntry(), count: 2 * iotlbWays)

    init(core: IOMMUCore, address: PCIAddress, requesterID: UInt16?) {
        self.core = core
        self.address = address
        self.requesterID = requesterID ?? address.requesterID
        unretainedCore = Unmanaged.passUnretained(core)
        (domain, generation) = core.currentDomain(of: address)
        unretainedDomain = domain.map(Unmanaged.passUnretained)
    }

    /// Opens a transfer (`rcu_read_lock`): translations and the memory accesses made with them
    /// until `endTransfer()` are waited for by any unmap or domain change that starts meanwhile.
    @inline(__always)
    public mutating func beginTransfer() {
        if reader == nil || !isKnownUniquelyReferenced(&reader) { reader = DMAReader() }
        reader.unsafelyUnwrapped.enter()
    }

    /// Closes the transfer `beginTransfer()` opened (transfers do not nest).
    @inline(__always)
    public mutating func endTransfer() {
        reader.unsafelyUnwrapped.exit()
    }

    /// The domain DMA from this requester lands in now (nil: the function is outside the IOMMU's
    /// reach and its DMA is untranslated).
    public mutating func currentDomain() -> IOMMUDomain? {
        revalidate()
        return domain
    }

    private mutating func revalidate() {
        let current = unretainedCore._withUnsafeGuaranteedRef { $0.generation.load(ordering: .sequentiallyConsistent) }
        if current != generation {
            (domain, generation) = core.currentDomain(of: address)
            iotlb = Self.emptyIOTLB
            iotlbGeneration = domain.map { $0.flushGeneration.load(ordering: .sequentiallyConsistent) } ?? 0
        }
    }

    /// Where a DMA to `iova` lands; a fault is recorded in the core's `FaultLog` with this path's
    /// requester ID and the domain that refused it. `limit` bounds how far a mapped run is
    /// followed: pages that continue the same output run are merged into one answer (and one
    /// IOTLB entry) up to it, as a device streaming a buffer would see them.
    public mutating func translate(_ iova: UInt64, access: IOAccess, limit: UInt64 = 1) -> IOTranslation {
        revalidate()
        guard let domain = unretainedDomain else {
            return .mapped(address: iova, contiguous: iova == 0 ? .max : 0 &- iova)
        }
        // Read before the walk: an unmap that lands after it makes the entry stale, never valid.
        let flushGeneration = domain._withUnsafeGuaranteedRef { $0.flushGeneration.load(ordering: .sequentiallyConsistent) }
        if flushGeneration != iotlbGeneration {
            // An unmap since: invalidate everything, as iommu_iotlb_sync does.
            iotlb.withUnsafeMutableBufferPointer { $0.update(repeating: IOTLBEntry()) }
            iotlbGeneration = flushGeneration
        }
        let slot = Int(truncatingIfNeeded: (iova >> 12) & UInt64(Self.iotlbWays - 1)) + (access == .write ? Self.iotlbWays : 0)
        let cached = iotlb.withUnsafeBufferPointer { $0[slot] }
        if iova >= cached.iova, iova < cached.end {
            return .mapped(address: cached.address &+ (iova &- cached.iova), contiguous: cached.end &- iova)
        }
        let result = domain._withUnsafeGuaranteedRef { $0.translate(iova, access: access) }
        switch result {
        case .mapped(let address, var contiguous) where access == .read || access == .write:
            // Merge the pages that continue this run (each checked for `access`).
            while contiguous < limit, contiguous <= UInt64.max - iova,
                case .mapped(let next, let more) = domain._withUnsafeGuaranteedRef({ $0.translate(iova &+ contiguous, access: access) }),
                next == address &+ contiguous
            {
                contiguous = more > UInt64.max - contiguous ? .max : contiguous + more
            }
            let entry = IOTLBEntry(iova: iova, end: contiguous > UInt64.max - iova ? .max : iova + contiguous, address: address)
            iotlb.withUnsafeMutableBufferPointer { $0[slot] = entry }
            return .mapped(address: address, contiguous: contiguous)
        case .mapped:
            return result
        case .fault(let reason):
            unretainedCore._withUnsafeGuaranteedRef(\.faults).record(requesterID: requesterID, iova: iova, access: access, reason: reason, domainID: domain._withUnsafeGuaranteedRef(\.id))
            return result
        }
    }
}

extension IOMMUCore {
    /// The DMA path of the function at `address`, issuing as `requesterID` when it is aliased.
    public func dmaPath(from address: PCIAddress, requesterID: UInt16? = nil) -> DMAPath {
        DMAPath(core: self, address: address, requesterID: requesterID)
    }
}
