import PCIBus
import Synchronization

/// The route one requester's DMA takes into the IOMMU: the device's group and whatever domain that
/// group is attached to now (`group->domain`, looked up per transaction by the hardware through
/// its context/device table). The path caches the domain and revalidates it with one atomic load
/// of the core's generation, so a DMA costs the domain's page-table walk and nothing more, yet an
/// attach, detach or ownership change is seen by the next transaction.
///
/// Like the hardware, the path keeps an `IOTLB`: 32 recent translations for reads and 32 for
/// writes, valid until the domain's next unmap (`iommu_iotlb_sync`) or a change of domain, so a
/// device that keeps using the same buffers pays for a page walk once per page, not once per
/// transfer. An entry is a run: the pages that continue a translation in host memory are merged
/// in as far as the transfer needs, and further when a longer transfer hits it, until a page that
/// does not continue it closes the run.
///
/// Translations are taken inside a transfer (`DMAQuiescence.beginTransfer()` … `endTransfer()`;
/// `translate` opens one of its own when called outside), so an unmap or a change of domain
/// returns only once the transfers that could still use what it removed — a translation, or a
/// page table the walk was in — have completed.
///
/// A value owned by the one device thread that issues the DMA; copy it to give another thread its
/// own (the copy takes an IOTLB of its own on that thread — an allocation, so a path that hops
/// threads, as an async task may, pays one per hop; copies used on one thread share one).
public struct DMAPath: Sendable {
    private typealias IOTLBEntry = IOTLB.Entry

    public let core: IOMMUCore
    public let address: PCIAddress
    /// The requester ID on the wire after aliasing (ALIAS-01..04); defaults to the function's own.
    public let requesterID: UInt16
    private var domain: IOMMUDomain? {
        didSet { unretainedDomain = domain.map(Unmanaged.passUnretained) }
    }
    private var generation: Int
    private var iotlb: IOTLB {
        didSet { unretainedIOTLB = Unmanaged.passUnretained(iotlb) }
    }
    // The hot path borrows these objects through these, without a retain/release per transaction;
    // `core`, `domain` and `iotlb` keep them alive.
    private let unretainedCore: Unmanaged<IOMMUCore>
    private var unretainedDomain: Unmanaged<IOMMUDomain>?
    private var unretainedIOTLB: Unmanaged<IOTLB>

    init(core: IOMMUCore, address: PCIAddress, requesterID: UInt16?) {
        self.core = core
        self.address = address
        self.requesterID = requesterID ?? address.requesterID
        unretainedCore = Unmanaged.passUnretained(core)
        (domain, generation) = core.currentDomain(of: address)
        unretainedDomain = domain.map(Unmanaged.passUnretained)
        iotlb = IOTLB(flushGeneration: Self.flushGeneration(of: domain))
        unretainedIOTLB = Unmanaged.passUnretained(iotlb)
    }

    private static func flushGeneration(of domain: IOMMUDomain?) -> UInt64 {
        domain.map { $0.flushGeneration.load(ordering: .sequentiallyConsistent) } ?? 0
    }

    /// The domain DMA from this requester lands in now (nil: the function is outside the IOMMU's
    /// reach and its DMA is untranslated).
    public mutating func currentDomain() -> IOMMUDomain? {
        revalidate()
        return domain
    }

    @inline(__always)
    private mutating func revalidate() {
        let current = unretainedCore._withUnsafeGuaranteedRef { $0.generation.load(ordering: .sequentiallyConsistent) }
        if current != generation { reload() }
    }

    /// The group's domain changed: take the new one, with an empty IOTLB.
    @inline(never)
    private mutating func reload() {
        (domain, generation) = core.currentDomain(of: address)
        replaceIOTLB()
    }

    /// An empty IOTLB for this copy of the path: the domain changed, or the copy is used on a
    /// thread other than the one its IOTLB belongs to.
    @inline(never)
    private mutating func replaceIOTLB() {
        iotlb = IOTLB(flushGeneration: Self.flushGeneration(of: domain))
    }

    /// Where a DMA to `iova` lands; a fault is recorded in the core's `FaultLog` with this path's
    /// requester ID and the domain that refused it. `limit` bounds how far a mapped run is
    /// followed: pages that continue the same output run are merged into one answer (and one
    /// IOTLB entry) up to it, as a device streaming a buffer would see them.
    public mutating func translate(_ iova: UInt64, access: IOAccess, limit: UInt64 = 1) -> IOTranslation {
        let reader = DMAQuiescence.currentReader
        let began = DMAQuiescence.beginTransferUnlessInside(on: reader)
        defer { if began { DMAQuiescence.endTransfer() } }
        revalidate()
        if !unretainedIOTLB._withUnsafeGuaranteedRef({ $0.isOwned(by: reader) }) { replaceIOTLB() }
        // Borrowed as scalars: a closure capturing `self` would copy the path (and retain what it holds).
        let (domain, core, requesterID) = (unretainedDomain, unretainedCore, requesterID)
        return unretainedIOTLB._withUnsafeGuaranteedRef { iotlb in
            Self.translate(iova, access: access, limit: limit, in: domain, through: iotlb) { reason in
                Self.record(reason, iova: iova, access: access, in: domain!, core: core, requesterID: requesterID)
            }
        }
    }

    /// `translate` once the domain is current and `iotlb`, this thread's, is borrowed; `fault`
    /// records a fault.
    @inline(__always)
    private static func translate(
        _ iova: UInt64, access: IOAccess, limit: UInt64, in domain: Unmanaged<IOMMUDomain>?, through iotlb: IOTLB,
        fault: (IOFaultReason) -> Void
    ) -> IOTranslation {
        guard let domain else {
            return .mapped(address: iova, contiguous: iova == 0 ? .max : 0 &- iova)
        }
        // Read before the walk: an unmap that lands after it makes the entry stale, never valid.
        let flushGeneration = domain._withUnsafeGuaranteedRef { $0.flushGeneration.load(ordering: .sequentiallyConsistent) }
        if flushGeneration != iotlb.flushGeneration { iotlb.invalidate(at: flushGeneration) }
        let slot = IOTLB.slot(iova, access)
        let cached = iotlb.entries[slot]
        if iova >= cached.iova, iova <= cached.last {
            let offset = iova &- cached.iova
            if cached.bytes(from: iova) >= limit || cached.closed {
                return .mapped(address: cached.address &+ offset, contiguous: cached.bytes(from: iova))
            }
            // A longer transfer than the one that filled the entry: follow the run further.
            let entry = extend(cached, toCover: iova, limit, access: access, in: domain)
            iotlb.entries[slot] = entry
            return .mapped(address: entry.address &+ offset, contiguous: entry.bytes(from: iova))
        }
        let result = domain._withUnsafeGuaranteedRef { $0.walk(iova, access: access) }
        switch result {
        case .mapped(let address, let contiguous) where access == .read || access == .write:
            let last = contiguous == .max || contiguous - 1 > UInt64.max - iova ? UInt64.max : iova + (contiguous - 1)
            var entry = IOTLBEntry(iova: iova, last: last, address: address)
            guard contiguous < limit else {
                iotlb.entries[slot] = entry
                return result
            }
            entry = extend(entry, toCover: iova, limit, access: access, in: domain)
            iotlb.entries[slot] = entry
            return .mapped(address: address, contiguous: entry.bytes(from: iova))
        case .mapped:
            return result
        case .fault(let reason):
            fault(reason)
            return result
        }
    }

    /// A fault, into the core's `FaultLog` under this path's requester ID.
    @inline(never)
    private static func record(
        _ reason: IOFaultReason, iova: UInt64, access: IOAccess, in domain: Unmanaged<IOMMUDomain>, core: Unmanaged<IOMMUCore>, requesterID: UInt16
    ) {
        core._withUnsafeGuaranteedRef(\.faults).record(
            requesterID: requesterID, iova: iova, access: access, reason: reason, domainID: domain._withUnsafeGuaranteedRef(\.id))
    }

    /// `entry`'s run with the pages that continue it merged in (each checked for `access`), until
    /// it holds `length` bytes from `iova` or ends: a page that faults or lands elsewhere closes it.
    @inline(never)
    private static func extend(_ entry: IOTLBEntry, toCover iova: UInt64, _ length: UInt64, access: IOAccess, in domain: Unmanaged<IOMMUDomain>)
        -> IOTLBEntry
    {
        var entry = entry
        while entry.bytes(from: iova) < length {
            let next = entry.last &+ 1
            guard entry.last != .max,
                case .mapped(let address, let more) = domain._withUnsafeGuaranteedRef({ $0.walk(next, access: access) }),
                address == entry.address &+ (next &- entry.iova)
            else {
                entry.closed = true
                break
            }
            entry.last = more - 1 > UInt64.max - next ? .max : next + (more - 1)
        }
        return entry
    }
}

extension IOMMUCore {
    /// The DMA path of the function at `address`, issuing as `requesterID` when it is aliased.
    public func dmaPath(from address: PCIAddress, requesterID: UInt16? = nil) -> DMAPath {
        DMAPath(core: self, address: address, requesterID: requesterID)
    }
}
