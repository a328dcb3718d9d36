import PCIBus

/// The route one requester's DMA takes into the IOMMU: the device's group and whatever domain that
/// group is attached to now (`group->domain`, looked up per transaction by the hardware through
/// its context/device table). The path caches the domain and revalidates it with one atomic load
/// of the core's generation, so a DMA costs the domain's page-table walk and nothing more, yet an
/// attach, detach or ownership change is seen by the next transaction.
///
/// A value owned by the one device thread that issues the DMA; copy it to give another thread its own.
public struct DMAPath: Sendable {
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

    init(core: IOMMUCore, address: PCIAddress, requesterID: UInt16?) {
        self.core = core
        self.address = address
        self.requesterID = requesterID ?? address.requesterID
        unretainedCore = Unmanaged.passUnretained(core)
        (domain, generation) = core.currentDomain(of: address)
        unretainedDomain = domain.map(Unmanaged.passUnretained)
    }

    /// The domain DMA from this requester lands in now (nil: the function is outside the IOMMU's
    /// reach and its DMA is untranslated).
    public mutating func currentDomain() -> IOMMUDomain? {
        revalidate()
        return domain
    }

    private mutating func revalidate() {
        let current = unretainedCore._withUnsafeGuaranteedRef { $0.generation.load(ordering: .acquiring) }
        if current != generation {
            (domain, generation) = core.currentDomain(of: address)
        }
    }

    /// Where a DMA to `iova` lands; a fault is recorded in the core's `FaultLog` with this path's
    /// requester ID and the domain that refused it.
    public mutating func translate(_ iova: UInt64, access: IOAccess) -> IOTranslation {
        revalidate()
        guard let domain = unretainedDomain else {
            return .mapped(address: iova, contiguous: iova == 0 ? .max : 0 &- iova)
        }
        let result = domain._withUnsafeGuaranteedRef { $0.translate(iova, access: access) }
        if case .fault(let reason) = result {
            unretainedCore._withUnsafeGuaranteedRef(\.faults).record(requesterID: requesterID, iova: iova, access: access, reason: reason, domainID: domain._withUnsafeGuaranteedRef(\.id))
        }
        return result
    }
}

extension IOMMUCore {
    /// The DMA path of the function at `address`, issuing as `requesterID` when it is aliased.
    public func dmaPath(from address: PCIAddress, requesterID: UInt16? = nil) -> DMAPath {
        DMAPath(core: self, address: address, requesterID: requesterID)
    }
}
