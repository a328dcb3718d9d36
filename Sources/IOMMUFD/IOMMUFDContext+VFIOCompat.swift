import Locking
import SystemPackage
import IOMMU
import KernelRules
import UserMemory

/// iommufd's VFIO container compatibility (`vfio_compat.c`, §7): `/dev/iommu` taking the type1
/// container ioctls against its compat IOAS, with iommufd's answers where they differ from
/// type1's (§9).
extension IOMMUFDContext {
    /// `VFIO_TYPE1_IOMMU` and `VFIO_TYPE1v2_IOMMU` as `VFIO_SET_IOMMU` names them.
    public enum CompatType: Sendable {
        case type1
        case type1v2
    }

    /// `IOMMU_VFIO_IOAS` GET (IOMMUFD-702): the compat IOAS, `ENODEV` when there is none.
    public func compatIOAS() throws(IOMMUFDError) -> UInt32 {
        try state.withLock { (state) throws(IOMMUFDError) in try Self.compatIOAS(state, "IOMMU_VFIO_IOAS GET", rule: .IOMMUFD_702) }
    }

    static func compatIOAS(_ state: State, _ what: String, rule: RuleID = .IOMMUFD_701) throws(IOMMUFDError) -> UInt32 {
        guard let id = state.compatIOAS, case .ioas = state.objects[id] else {
            throw IOMMUFDError(.operationNotSupportedByDevice, rule: rule, "\(what): the iommufd has no compat IOAS (no VFIO group joined it, no IOMMU_VFIO_IOAS SET)")
        }
        return id
    }

    /// `IOMMU_VFIO_IOAS` SET (IOMMUFD-702): `ENOENT` when `id` is no IOAS.
    public func setCompatIOAS(_ id: UInt32) throws(IOMMUFDError) {
        try state.withLock { (state) throws(IOMMUFDError) in
            _ = try state.ioas(id, rule: .IOMMUFD_702, "IOMMU_VFIO_IOAS SET")
            state.compatIOAS = id
        }
    }

    /// `IOMMU_VFIO_IOAS` CLEAR (IOMMUFD-702).
    public func clearCompatIOAS() { state.withLock { $0.compatIOAS = nil } }

    /// `iommufd_vfio_compat_ioas_create` (IOMMUFD-701, -730): the compat IOAS, created when
    /// missing — what `VFIO_GROUP_SET_CONTAINER` with an iommufd does.
    public func ensureCompatIOAS() -> UInt32 {
        state.withLock { state in
            if let id = state.compatIOAS, case .ioas = state.objects[id] { return id }
            let id = state.freeID()
            state.objects[id] = .ioas(IOAddressSpace())
            state.compatIOAS = id
            return id
        }
    }

    /// `vfio_iommufd_compat_attach_ioas` (IOMMUFD-730): a device opened through a VFIO group on
    /// this iommufd attaches to the compat IOAS (`ENODEV` without one) through an auto domain.
    public func attachToCompatIOAS(device id: UInt32) throws(IOMMUFDError) {
        let ioas = try state.withLock { (state) throws(IOMMUFDError) in try Self.compatIOAS(state, "GET_DEVICE_FD", rule: .IOMMUFD_730) }
        _ = try attach(device: id, to: ioas)
    }

    /// `VFIO_CHECK_EXTENSION` (IOMMUFD-703): 1 for TYPE1, TYPE1v2 and UNMAP_ALL even before any
    /// IOAS exists; DMA_CC_IOMMU needs the compat IOAS (`ENODEV`) and is 1 when every domain of it
    /// enforces coherency; anything else 0.
    public func compatCheckExtension(_ argument: UInt) throws(IOMMUFDError) -> Int32 {
        switch argument {
        case 1, 3, 9: return 1
        case 4:
            return try state.withLock { (state) throws(IOMMUFDError) -> Int32 in
                let id = try Self.compatIOAS(state, "CHECK_EXTENSION DMA_CC_IOMMU", rule: .IOMMUFD_703)
                let domains = state.objects.values.compactMap { object -> IOMMUDomain? in
                    if case .hwptPaging(let hwpt) = object, hwpt.ioas == id { hwpt.domain } else { nil }
                }
                return domains.allSatisfy(\.enforcesCacheCoherency) ? 1 : 0
            }
        default: return 0
        }
    }

    /// `VFIO_SET_IOMMU` (IOMMUFD-705): `EINVAL` for a type other than TYPE1/TYPE1v2, `ENODEV`
    /// without a compat IOAS; TYPE1 disables large pages (`EINVAL` once domains hold mappings) so
    /// v1 unmaps can cut areas. It may be repeated.
    public func compatSetIOMMU(_ argument: UInt) throws(IOMMUFDError) {
        guard argument == 1 || argument == 3 else {
            throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_705, "SET_IOMMU \(argument): iommufd's compat container takes only TYPE1 (1) and TYPE1v2 (3)")
        }
        let id = try state.withLock { (state) throws(IOMMUFDError) in try Self.compatIOAS(state, "SET_IOMMU", rule: .IOMMUFD_705) }
        if argument == 1 {
            try withIOAS(id, rule: .IOMMUFD_705, "SET_IOMMU") { (ioas, _) throws(IOMMUFDError) in try ioas.disableLargePages() }
        }
    }

    /// `VFIO_IOMMU_MAP_DMA` (IOMMUFD-710, -711) after its flags: a fixed-IOVA map of the compat
    /// IOAS — no READ|WRITE requirement, no entry limit.
    public func compatMap(vaddr: UInt64, iova: UInt64, size: UInt64, access: IOAccess) throws(IOMMUFDError) {
        let id = try state.withLock { (state) throws(IOMMUFDError) in try Self.compatIOAS(state, "MAP_DMA", rule: .IOMMUFD_710) }
        try withIOAS(id, rule: .IOMMUFD_710, "MAP_DMA") { (ioas, _) throws(IOMMUFDError) in
            let pages = try IOPTPages(userVA: vaddr, length: size, writable: access.contains(.write), process: process)
            _ = try ioas.map(CollectionOfOne(IOPTArea.Piece(pages: pages, startByte: vaddr - pages.uptr, length: size)), iova: iova, access: access)
        }
    }

    /// `VFIO_IOMMU_UNMAP_DMA` (IOMMUFD-712..716) after its flags: everything with `all` (`EINVAL`
    /// unless IOVA and size are 0), else — with large pages disabled, after cutting the areas at
    /// the range's ends — the areas inside `[iova, iova + size)`. The bytes removed, and the error
    /// that stopped it: the user gets `size` back either way; an empty range is 0, not `ENOENT`.
    public func compatUnmap(iova: UInt64, size: UInt64, all: Bool) throws(IOMMUFDError) -> (unmapped: UInt64, error: IOMMUFDError?) {
        let id = try state.withLock { (state) throws(IOMMUFDError) in try Self.compatIOAS(state, "UNMAP_DMA", rule: .IOMMUFD_712) }
        return try withIOAS(id, rule: .IOMMUFD_712, "UNMAP_DMA") { (ioas, _) throws(IOMMUFDError) in
            if all {
                guard iova == 0, size == 0 else {
                    throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_712, "UNMAP_DMA ALL: IOVA \(hex(iova)) and size \(hex(size)) must be 0")
                }
                return (ioas.unmapAll(), nil)
            }
            if ioas.largePagesDisabled {
                try ioas.cut(at: iova == 0 ? [iova &+ size &- 1] : [iova &+ size &- 1, iova - 1])
            }
            do throws(IOMMUFDError) {
                return try Self.unmapRange(ioas, iova: iova, length: size, rule: .IOMMUFD_712)
            } catch {
                return (0, error)
            }
        }
    }

    /// `VFIO_IOMMU_GET_INFO` (IOMMUFD-720..722): the page sizes — the AND of the compat IOAS's
    /// domains, sub-page sizes folded into `PAGE_SIZE`, at least the IOVA alignment — and the
    /// usable IOVA ranges (`ENODEV` without the compat IOAS).
    public func compatInfo() throws(IOMMUFDError) -> (pageSizes: UInt64, ranges: [IOVARange]) {
        try state.withLock { (state) throws(IOMMUFDError) in
            let id = try Self.compatIOAS(state, "GET_INFO", rule: .IOMMUFD_720)
            let ioas = try state.ioas(id, rule: .IOMMUFD_720, "GET_INFO")
            var bitmap = ioas.domains.reduce(UInt64.max) { $0 & $1.domain.pageSizes.rawValue }
            if bitmap & (hostPageSize - 1) != 0 {
                bitmap &= ~(hostPageSize - 1)
                bitmap |= hostPageSize
            }
            return (max(bitmap, ioas.alignment), ioas.usableRanges)
        }
    }
}
