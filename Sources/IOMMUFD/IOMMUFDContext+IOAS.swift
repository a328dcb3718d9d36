import Locking
import SystemPackage
import Glibc
import IOMMU
import KernelRules
import UserMemory

/// The IOAS commands (`ioas.c`, §2) on Swift values; the UAPI boundary decodes the structs,
/// checks `flags` and `__reserved` (`EOPNOTSUPP`) and calls these.
extension IOMMUFDContext {
    /// `IOMMU_IOAS_ALLOC` (IOMMUFD-200): an empty IOAS, alignment 1, no domains; its ID.
    public func allocateIOAS() -> UInt32 {
        state.withLock { state in
            let id = state.freeID()
            state.objects[id] = .ioas(IOAddressSpace())
            return id
        }
    }

    /// Runs `body` on IOAS `id` under the context's lock; `ENOENT` when `id` names no IOAS, citing
    /// `rule`.
    func withIOAS<Result>(
        _ id: UInt32, rule: RuleID, _ what: String, _ body: (IOAddressSpace, inout State) throws(IOMMUFDError) -> Result
    ) throws(IOMMUFDError) -> Result {
        try state.withLock { (state) throws(IOMMUFDError) -> Result in
            try body(state.ioas(id, rule: rule, what), &state)
        }
    }

    /// `IOMMU_IOAS_IOVA_RANGES` (IOMMUFD-201, -202): the holes of the reserved ranges — the
    /// allowed list is not reflected — and the IOVA alignment.
    public func iovaRanges(ioas id: UInt32) throws(IOMMUFDError) -> (ranges: [IOVARange], alignment: UInt64) {
        try withIOAS(id, rule: .IOMMUFD_201, "IOVA_RANGES") { ioas, _ in (ioas.usableRanges, ioas.alignment) }
    }

    /// `IOMMU_IOAS_ALLOW_IOVAS` (IOMMUFD-203, -204): `EINVAL` for a range with `start >= last`
    /// or overlapping an earlier one, `EADDRINUSE` over a reservation; an empty list allows all.
    public func allowIOVAs(ioas id: UInt32, _ ranges: [IOVARange]) throws(IOMMUFDError) {
        try withIOAS(id, rule: .IOMMUFD_203, "ALLOW_IOVAS") { (ioas, _) throws(IOMMUFDError) in
            for index in ranges.indices { try Self.checkAllowedIOVA(ranges, at: index) }
            try ioas.setAllowed(ranges)
        }
    }

    /// `iommufd_ioas_load_iovas`'s check of entry `index` as it is copied in (IOMMUFD-203): `EINVAL`
    /// for `start >= last` or an overlap with an earlier entry. The UAPI checks each entry right
    /// after copying it, so a bad entry is `EINVAL` even when a later one cannot be read.
    public static func checkAllowedIOVA(_ ranges: [IOVARange], at index: Int) throws(IOMMUFDError) {
        let range = ranges[index]
        guard range.start < range.last else {
            throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_203, "ALLOW_IOVAS: range \(index) \(range) is empty or inverted (start must be below last)")
        }
        if let earlier = ranges[..<index].first(where: { $0.intersects(range.start, range.last) }) {
            throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_203, "ALLOW_IOVAS: range \(index) \(range) overlaps \(earlier)")
        }
    }

    /// `IOMMU_IOAS_MAP` (IOMMUFD-210..217) after its flags: `EOVERFLOW` for an IOVA or length of
    /// 2^64-1, `EINVAL` without read or write, `ENOENT` for no IOAS, then the user pages and the
    /// area; `iova` nil allocates one. The IOVA mapped.
    public func map(ioas id: UInt32, userVA: UInt64, length: UInt64, iova: UInt64?, access: IOAccess) throws(IOMMUFDError) -> UInt64 {
        guard (iova ?? 0) != .max, length != .max else {
            throw IOMMUFDError(.overflow, rule: .IOMMUFD_210, "IOAS_MAP: IOVA or length is ULONG_MAX")
        }
        guard !access.isEmpty else { throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_210, "IOAS_MAP: neither READABLE nor WRITEABLE") }
        return try withIOAS(id, rule: .IOMMUFD_210, "IOAS_MAP") { (ioas, _) throws(IOMMUFDError) in
            let pages = try IOPTPages(userVA: userVA, length: length, writable: access.contains(.write), process: process)
            return try ioas.map(CollectionOfOne(IOPTArea.Piece(pages: pages, startByte: userVA - pages.uptr, length: length)), iova: iova, access: access)
        }
    }

    /// `IOMMU_IOAS_COPY` (IOMMUFD-222..224) after its flags: the pages behind
    /// `[sourceIOVA, +length)` of IOAS `source`, shared — not pinned or charged again — into
    /// IOAS `destination` at `destinationIOVA` (nil: allocated). The destination IOVA.
    public func copy(
        from source: UInt32, sourceIOVA: UInt64, to destination: UInt32, destinationIOVA: UInt64?, length: UInt64, access: IOAccess
    ) throws(IOMMUFDError) -> UInt64 {
        guard length != .max, sourceIOVA != .max, (destinationIOVA ?? 0) != .max else {
            throw IOMMUFDError(.overflow, rule: .IOMMUFD_222, "IOAS_COPY: an IOVA or the length is ULONG_MAX")
        }
        guard !access.isEmpty else { throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_222, "IOAS_COPY: neither READABLE nor WRITEABLE") }
        return try state.withLock { (state) throws(IOMMUFDError) -> UInt64 in
            let pieces = try state.ioas(source, rule: .IOMMUFD_222, "IOAS_COPY source").pieces(from: sourceIOVA, length: length)
            return try state.ioas(destination, rule: .IOMMUFD_222, "IOAS_COPY destination").map(pieces, iova: destinationIOVA, access: access)
        }
    }

    /// `IOMMU_IOAS_UNMAP` (IOMMUFD-230..235): `ENOENT` for no IOAS (first of all); IOVA 0 with
    /// length 2^64-1 removes every area; otherwise `EOVERFLOW` at 2^64-1, `EINVAL` for length 0,
    /// `EOVERFLOW` when the range wraps, whole areas inside it removed — `ENOENT` for one partly
    /// inside (those before it stay removed) or for none at all. The bytes removed.
    public func unmap(ioas id: UInt32, iova: UInt64, length: UInt64) throws(IOMMUFDError) -> UInt64 {
        try withIOAS(id, rule: .IOMMUFD_230, "IOAS_UNMAP") { (ioas, _) throws(IOMMUFDError) in
            if iova == 0, length == .max { return ioas.unmapAll() }
            // iommufd_ioas_unmap's own check; VFIO compat's UNMAP_DMA has none (IOMMUFD-712).
            guard iova != .max, length != .max else { throw IOMMUFDError(.overflow, rule: .IOMMUFD_230, "IOAS_UNMAP: IOVA or length is ULONG_MAX") }
            let (unmapped, error) = try Self.unmapRange(ioas, iova: iova, length: length, rule: .IOMMUFD_230)
            if let error { throw error }
            guard unmapped > 0 else {
                throw IOMMUFDError(.noSuchFileOrDirectory, rule: .IOMMUFD_234, "IOAS_UNMAP \(hex(iova)) length \(hex(length)): nothing is mapped there")
            }
            return unmapped
        }
    }

    /// `iopt_unmap_iova`: the argument checks (`EINVAL` for length 0, `EOVERFLOW` when the range
    /// wraps), then the range walk; the bytes removed and the error that stopped the walk.
    static func unmapRange(_ ioas: IOAddressSpace, iova: UInt64, length: UInt64, rule: RuleID) throws(IOMMUFDError) -> (UInt64, IOMMUFDError?) {
        guard length != 0 else { throw IOMMUFDError(.invalidArgument, rule: rule, "unmap \(hex(iova)): length 0") }
        guard iova <= .max - (length - 1) else { throw IOMMUFDError(.overflow, rule: rule, "unmap \(hex(iova)) + \(hex(length)): wraps past 2^64") }
        let result = ioas.unmap(first: iova, last: iova + (length - 1))
        return (result.unmapped, result.error)
    }

    /// `IOMMU_OPTION_HUGE_PAGES` GET (IOMMUFD-242): large pages in use.
    public func hugePages(ioas id: UInt32) throws(IOMMUFDError) -> Bool {
        try withIOAS(id, rule: .IOMMUFD_240, "OPTION HUGE_PAGES") { ioas, _ in !ioas.largePagesDisabled }
    }

    /// `IOMMU_OPTION_HUGE_PAGES` SET (IOMMUFD-242).
    public func setHugePages(ioas id: UInt32, _ enabled: Bool) throws(IOMMUFDError) {
        try withIOAS(id, rule: .IOMMUFD_240, "OPTION HUGE_PAGES") { (ioas, _) throws(IOMMUFDError) in
            if enabled { ioas.enableLargePages() } else { try ioas.disableLargePages() }
        }
    }

    /// `IOMMU_OPTION_RLIMIT_MODE` GET (IOMMUFD-241).
    public var accountMode: IOMMUFDAccountMode { state.withLock { $0.accountMode } }

    /// `IOMMU_OPTION_RLIMIT_MODE` SET (IOMMUFD-241): `EPERM` without `CAP_SYS_RESOURCE` (the
    /// process runs as root), `EBUSY` once any object exists.
    public func setAccountMode(_ mode: IOMMUFDAccountMode) throws(IOMMUFDError) {
        try setAccountMode(value: mode == .mm ? 1 : 0)
    }

    /// `IOMMU_OPTION_RLIMIT_MODE` SET with the UAPI's `val64`, checked in
    /// `iommufd_option_rlimit_mode`'s order: `EPERM`, then `EBUSY` once any object exists, and only
    /// then `EINVAL` for a value other than 0 (USER) or 1 (MM).
    public func setAccountMode(value: UInt64) throws(IOMMUFDError) {
        guard geteuid() == 0 else {
            throw IOMMUFDError(.notPermitted, rule: .IOMMUFD_241, "OPTION RLIMIT_MODE SET: needs CAP_SYS_RESOURCE")
        }
        try state.withLock { (state) throws(IOMMUFDError) in
            guard state.objects.isEmpty else {
                throw IOMMUFDError(.resourceBusy, rule: .IOMMUFD_241, "OPTION RLIMIT_MODE SET: the context already has objects \(state.objects.keys.sorted())")
            }
            switch value {
            case 0: state.accountMode = .user
            case 1: state.accountMode = .mm
            default: throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_241, "OPTION RLIMIT_MODE SET \(value): 0 (user) or 1 (mm)")
            }
        }
    }
}

extension IOMMUFDContext {
    /// `IOMMU_IOAS_MAP_FILE` (IOMMUFD-220) after its flags, in a context with the selftest mock
    /// (`EOPNOTSUPP` otherwise, as before): `EOVERFLOW` for an IOVA or length of 2^64-1, `EINVAL`
    /// without read or write, `ENOENT` for no IOAS, `EINVAL` for length 0, `EOVERFLOW` when
    /// `start + length` wraps, `EBADF` for an fd that is not open; then the pages are mapped as
    /// IOAS_MAP maps a user range, pinned — only shmem and hugetlbfs pages inside the file
    /// (`EINVAL`) — when a domain needs them. `iova` nil allocates one. The IOVA mapped.
    public func mapFile(ioas id: UInt32, fd: Int32, start: UInt64, length: UInt64, iova: UInt64?, access: IOAccess) throws(IOMMUFDError) -> UInt64 {
        guard selftest else {
            throw IOMMUFDError(.notSupported, rule: .IOMMUFD_220, "\(self) IOAS_MAP_FILE: file maps are modelled with the selftest mock only (vfiokit run --iommufd-test)")
        }
        guard (iova ?? 0) != .max, length != .max else {
            throw IOMMUFDError(.overflow, rule: .IOMMUFD_220, "IOAS_MAP_FILE: IOVA or length is ULONG_MAX")
        }
        guard !access.isEmpty else { throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_220, "IOAS_MAP_FILE: neither READABLE nor WRITEABLE") }
        return try withIOAS(id, rule: .IOMMUFD_220, "IOAS_MAP_FILE") { (ioas, _) throws(IOMMUFDError) in
            guard length != 0 else { throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_220, "IOAS_MAP_FILE: length 0") }
            guard start <= .max - (length - 1) else {
                throw IOMMUFDError(.overflow, rule: .IOMMUFD_220, "IOAS_MAP_FILE: start \(hex(start)) + length \(hex(length)) wraps past 2^64")
            }
            guard length <= .max - hostPageSize else {
                throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_220, "IOAS_MAP_FILE: length \(hex(length)) is past SIZE_MAX - PAGE_SIZE")
            }
            let file = try IOPTFilePages(fd: fd, start: start, length: length, writable: access.contains(.write))
            let pages = IOPTPages(file: file, writable: access.contains(.write), process: process)
            return try ioas.map(CollectionOfOne(IOPTArea.Piece(pages: pages, startByte: start % hostPageSize, length: length)), iova: iova, access: access)
        }
    }
}
