import IOMMU
import KernelRules
import Locking
import SystemPackage
import UserMemory

/// The `[iommufd_test_staccess]` file `IOMMU_TEST_OP_CREATE_ACCESS` returns (IOMMUFD-814): the
/// selftest driver's `struct selftest_access` around an `iommufd_access` of `context`. The
/// access ops name it by its fd, whichever iommufd they are issued on; closing it
/// (`iommufd_test_staccess_release`) drops its pins and destroys the access, which until then
/// keeps the context alive (`iommufd_ctx_get`).
public final class IOMMUFDTestAccess: Sendable, CustomStringConvertible {
    public let context: IOMMUFDContext
    let object: IOMMUFDAccessObject

    init(context: IOMMUFDContext, object: IOMMUFDAccessObject) {
        self.context = context
        self.object = object
    }

    /// The ACCESS object's ID in the context.
    public var id: UInt32 { object.id }

    public var description: String { "access \(object.id) of \(context)" }

    /// `MOCK_FLAGS_ACCESS_WRITE`, `MOCK_FLAGS_ACCESS_SYZ` (pin flags) and `MOCK_ACCESS_RW_WRITE`,
    /// `MOCK_ACCESS_RW_SLOW_PATH` (read/write flags).
    public static let pinWrite: UInt32 = 1 << 0
    public static let syzkaller: UInt32 = 1 << 16
    public static let rwWrite: UInt32 = 1 << 0
    public static let rwSlowPath: UInt32 = 1 << 2
    /// What the test ops take at once (`SZ_16M`: "Prevent syzkaller from triggering a WARN_ON").
    public static let maximumLength: UInt64 = 16 << 20

    /// `IOMMU_TEST_OP_ACCESS_PAGES` after the fd lookup (IOMMUFD-815, -607): `ENOMEM` past 16 MiB,
    /// `EOPNOTSUPP` for unknown flags or an access created without NEEDS_PIN_PAGES, then
    /// `iommufd_access_pin_pages` — `EINVAL` for length 0, `EOVERFLOW` when the range wraps, `ENOENT`
    /// without an IOAS or at a hole, `EINVAL` where an area's pages are not page aligned, `EPERM`
    /// for a write pin of a read-only area, the pin's `EFAULT`/`ENOMEM` — and, when `uptr` is not
    /// 0, `iommufd_test_check_pages`: each pinned page must be the page behind `uptr` (`EFAULT`
    /// where the process has none, `EBADE` for another). The item's ID.
    public func pinPages(iova: UInt64, length: UInt64, flags: UInt32, uptr: UInt64) throws(IOMMUFDError) -> UInt32 {
        guard length <= Self.maximumLength else { throw IOMMUFDError(.noMemory, rule: .IOMMUFD_815, "ACCESS_PAGES \(self): length \(hex(length)) is over 16 MiB") }
        guard flags & ~(Self.pinWrite | Self.syzkaller) == 0 else {
            throw IOMMUFDError(.notSupported, rule: .IOMMUFD_815, "ACCESS_PAGES \(self): unknown flags 0x\(String(flags & ~(Self.pinWrite | Self.syzkaller), radix: 16))")
        }
        return try context.state.withLock { (state) throws(IOMMUFDError) -> UInt32 in
            guard object.needsPinPages else {
                throw IOMMUFDError(.notSupported, rule: .IOMMUFD_815, "ACCESS_PAGES \(self): created without MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES, its ops cannot pin")
            }
            let (pinned, pages) = try pin(iova: iova, length: length, write: flags & Self.pinWrite != 0, state)
            if uptr != 0 {
                do throws(IOMMUFDError) {
                    try check(pages, against: uptr &- (iova & (hostPageSize - 1)))
                } catch {
                    pinned.forEach { $0.unpin() }
                    throw error
                }
            }
            let item = IOMMUFDAccessObject.Item(id: object.nextItemID, iova: iova, length: length, pinned: pinned)
            object.nextItemID &+= 1
            object.items.append(item)
            return item.id
        }
    }

    /// `iommufd_access_pin_pages`: the pages objects pinned (one pin each area's pages) and the
    /// host address of every `PAGE_SIZE` page of the range, in order.
    private func pin(iova: UInt64, length: UInt64, write: Bool, _ state: IOMMUFDContext.State) throws(IOMMUFDError) -> ([IOPTPages], [UInt64]) {
        let what = "ACCESS_PAGES \(self) \(hex(iova)) + \(hex(length))"
        let (ioas, areas) = try contiguousAreas(iova: iova, length: length, state, rule: .IOMMUFD_607, what)
        _ = ioas
        var pinned: [IOPTPages] = []
        var pages: [UInt64] = []
        let last = iova + (length - 1)
        for (index, area) in areas.enumerated() {
            let from = max(iova, area.iova), to = min(last, area.last)
            let startByte = area.startByte + (from - area.iova)
            let endByte = area.startByte + (area.last - area.iova)
            let aligned = startByte % hostPageSize == 0 && (index == areas.count - 1 || endByte % hostPageSize == hostPageSize - 1)
            var failure: IOMMUFDError?
            if !aligned {
                failure = IOMMUFDError(.invalidArgument, rule: .IOMMUFD_607, "\(what): the area \(IOVARange(start: area.iova, last: area.last)) does not start and end on page boundaries there")
            } else if !area.access.contains(write ? .write : .read) {
                failure = IOMMUFDError(.notPermitted, rule: .IOMMUFD_607, "\(what): the area \(IOVARange(start: area.iova, last: area.last)) is not \(write ? "writable" : "readable")")
            } else {
                do throws(IOMMUFDError) {
                    try area.pages.pin()
                    pinned.append(area.pages)
                    let first = (area.pages.uptr + startByte) & ~(hostPageSize - 1)
                    let end = area.pages.uptr + area.startByte + (to - area.iova)
                    pages += stride(from: first, through: end, by: Int(hostPageSize)).map { $0 }
                } catch {
                    failure = error
                }
            }
            if let failure {
                pinned.forEach { $0.unpin() }
                throw failure
            }
        }
        return (pinned, pages)
    }

    /// The areas covering `[iova, iova + length)` without a hole, lowest first, of the access's
    /// IOAS: `EINVAL` for length 0, `EOVERFLOW` when the range wraps, `ENOENT` without an IOAS or
    /// at a hole.
    private func contiguousAreas(iova: UInt64, length: UInt64, _ state: IOMMUFDContext.State, rule: RuleID, _ what: String) throws(IOMMUFDError) -> (IOAddressSpace, [IOPTArea]) {
        guard length != 0 else { throw IOMMUFDError(.invalidArgument, rule: rule, "\(what): length 0") }
        guard iova <= .max - (length - 1) else { throw IOMMUFDError(.overflow, rule: rule, "\(what): wraps past 2^64") }
        guard let id = object.ioas, case .ioas(let ioas) = state.objects[id] else {
            throw IOMMUFDError(.noSuchFileOrDirectory, rule: rule, "\(what): the access is attached to no IOAS")
        }
        let last = iova + (length - 1)
        var next = iova
        var covering: [IOPTArea] = []
        for area in ioas.areas(meeting: iova, last) {
            guard area.iova <= next else { break }
            covering.append(area)
            if area.last >= last { return (ioas, covering) }
            next = area.last + 1
        }
        throw IOMMUFDError(.noSuchFileOrDirectory, rule: rule, "\(what): IOVA \(hex(next)) is not mapped")
    }

    /// `iommufd_test_check_pages`: page `k` of `pages` is the page behind `uptr + k * PAGE_SIZE`.
    private func check(_ pages: [UInt64], against uptr: UInt64) throws(IOMMUFDError) {
        var differing: [(index: Int, page: UInt64, user: UInt64)] = []
        for (index, page) in pages.enumerated() {
            let user = (uptr &+ UInt64(index) &* hostPageSize) & ~(hostPageSize - 1)
            try lowerCall { () throws(MemoryError) in try context.process.touch(vaddr: user, size: hostPageSize, rule: .IOMMUFD_815) }
            if user != page { differing.append((index, page, user)) }
        }
        guard !differing.isEmpty else { return }
        let identities = UserPageIdentity.of(differing.flatMap { [$0.page, $0.user] })
        for (index, entry) in differing.enumerated() where identities[2 * index] != identities[2 * index + 1] {
            throw IOMMUFDError(
                Errno(rawValue: 52), rule: .IOMMUFD_815,
                "ACCESS_PAGES \(self): pinned page \(entry.index) is at \(hex(entry.page)), the user page at \(hex(entry.user)) is another (EBADE)")
        }
    }

    /// `IOMMU_TEST_OP_DESTROY_ACCESS_PAGES` after the fd lookup (IOMMUFD-815): item `itemID` and its
    /// pins go; `ENOENT` when there is no such item (an unmap may have dropped it already).
    public func unpinPages(item itemID: UInt32) throws(IOMMUFDError) {
        try context.state.withLock { (_) throws(IOMMUFDError) in
            guard let index = object.items.firstIndex(where: { $0.id == itemID }) else {
                throw IOMMUFDError(.noSuchFileOrDirectory, rule: .IOMMUFD_815, "DESTROY_ACCESS_PAGES \(self): no item \(itemID) (an unmap over its range drops it)")
            }
            object.items.remove(at: index).pinned.forEach { $0.unpin() }
        }
    }

    /// `iommufd_access_rw`'s walk after the flag and length checks (IOMMUFD-816): the process
    /// addresses behind `[iova, iova + length)`, in order, to copy to or from. `EINVAL` for length
    /// 0, `EOVERFLOW` when the range wraps, `ENOENT` without an IOAS or at a hole, `EPERM` for a
    /// write to an area (or pages) mapped without write, or a read of one without read.
    public func segments(iova: UInt64, length: UInt64, write: Bool) throws(IOMMUFDError) -> [(address: UInt64, length: UInt64)] {
        try context.state.withLock { (state) throws(IOMMUFDError) in
            let what = "ACCESS_RW \(self) \(hex(iova)) + \(hex(length))"
            let (_, areas) = try contiguousAreas(iova: iova, length: length, state, rule: .IOMMUFD_816, what)
            let last = iova + (length - 1)
            var segments: [(address: UInt64, length: UInt64)] = []
            for area in areas {
                guard area.access.contains(write ? .write : .read), !write || area.pages.writable else {
                    throw IOMMUFDError(.notPermitted, rule: .IOMMUFD_816, "\(what): the area \(IOVARange(start: area.iova, last: area.last)) is not \(write ? "writable" : "readable")")
                }
                let from = max(iova, area.iova), to = min(last, area.last)
                segments.append((area.hostAddress + (from - area.iova), to - from + 1))
            }
            return segments
        }
    }

    /// `IOMMU_TEST_OP_ACCESS_REPLACE_IOAS` after the fd lookup (IOMMUFD-814, -607): the access
    /// moves to IOAS `id` — its items dropped by its own unmap op — `ENOENT` when it has no IOAS or
    /// `id` is none, `EADDRINUSE` when the new IOAS has areas its alignment refuses; the same IOAS
    /// again changes nothing.
    public func replaceIOAS(_ id: UInt32) throws(IOMMUFDError) {
        try context.state.withLock { (state) throws(IOMMUFDError) in
            guard let current = object.ioas else {
                throw IOMMUFDError(.noSuchFileOrDirectory, rule: .IOMMUFD_814, "ACCESS_REPLACE_IOAS \(self): the access is attached to no IOAS")
            }
            let target = try state.ioas(id, rule: .IOMMUFD_814, "ACCESS_REPLACE_IOAS \(self)")
            guard current != id else { return }
            try target.addAccess(object)
            object.unmap(first: 0, last: .max)
            if case .ioas(let old) = state.objects[current] { old.removeAccess(object) }
            object.ioas = id
        }
    }

    /// `close()` of the access fd (`iommufd_test_staccess_release`): every item's pins dropped, the
    /// access detached and destroyed; the context, if its fd is closed and nothing else holds it,
    /// releases its objects (IOMMUFD-115). A second call changes nothing.
    public func close() {
        context.state.withLock { state in
            guard case .access(let object) = state.objects[object.id], object === self.object else { return }
            object.unmap(first: 0, last: .max)
            if let id = object.ioas, case .ioas(let ioas) = state.objects[id] { ioas.removeAccess(object) }
            object.ioas = nil
            state.objects[object.id] = nil
            if state.fileClosed, state.holders == 0 { IOMMUFDContext.release(&state) }
        }
    }
}

extension IOMMUFDContext {
    /// `MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES`.
    public static let accessNeedsPinPages: UInt32 = 1 << 0

    /// `IOMMU_TEST_OP_CREATE_ACCESS` (IOMMUFD-814, -607): `EOPNOTSUPP` for flags other than
    /// NEEDS_PIN_PAGES; an ACCESS object (an ID of the context) attached to IOAS `ioas` — `ENOENT`
    /// for no IOAS, `EADDRINUSE` when its areas are not aligned to the `PAGE_SIZE` a pinning access
    /// needs. Nothing stays on failure.
    public func createAccess(ioas: UInt32, flags: UInt32) throws(IOMMUFDError) -> IOMMUFDTestAccess {
        try requireSelftest("CREATE_ACCESS")
        guard flags & ~Self.accessNeedsPinPages == 0 else {
            throw IOMMUFDError(.notSupported, rule: .IOMMUFD_814, "CREATE_ACCESS: unknown flags 0x\(String(flags & ~Self.accessNeedsPinPages, radix: 16))")
        }
        return try state.withLock { (state) throws(IOMMUFDError) -> IOMMUFDTestAccess in
            let object = IOMMUFDAccessObject(id: state.freeID(), needsPinPages: flags & Self.accessNeedsPinPages != 0)
            let space = try state.ioas(ioas, rule: .IOMMUFD_814, "CREATE_ACCESS")
            try space.addAccess(object)
            object.ioas = ioas
            state.objects[object.id] = .access(object)
            return IOMMUFDTestAccess(context: self, object: object)
        }
    }
}
