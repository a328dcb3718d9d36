import SystemPackage
import IOMMU
import KernelRules
import UserMemory

/// `struct io_pagetable` of an IOAS object (`drivers/iommu/iommufd/io_pagetable.c`): the areas,
/// the reserved and allowed IOVA trees, the domains every area is mirrored into, and the IOVA
/// alignment they impose (§2, §3). Mutated only under its context's lock; every operation checks
/// in the kernel's order before it changes anything, and unwinds a failure part way. A reference,
/// as the kernel's is: updated in place, never copied.
final class IOAddressSpace: @unchecked Sendable {
    /// `area_itree`: by IOVA, disjoint.
    private(set) var areas = IntervalTable<IOPTArea>()
    private(set) var reserved: [IOVAReservation] = []
    /// `allowed_itree` (IOMMUFD-203..205); empty means everything is allowed.
    private(set) var allowed: [IOVARange] = []
    /// The HWPT_PAGING domains filled with every area, by HWPT ID (`iopt->domains`).
    private(set) var domains: [(hwpt: UInt32, domain: IOMMUDomain)] = []
    /// `disable_large_pages` (IOMMUFD-242, IOMMUFD-705).
    private(set) var largePagesDisabled = false
    /// `iopt->access_list`: the accesses attached (IOMMUFD-607), told of every unmap.
    private(set) var accesses: [IOMMUFDAccessObject] = []
    /// The dirty bits of the domains that track them, by HWPT ID: an unmap takes the IOPTEs, and
    /// their dirty bits, away (IOMMUFD-513).
    private(set) var dirtyTrackers: [UInt32: IOMMUFDDirtyTracker] = [:]

    /// `iova_alignment` (`iopt_calculate_iova_alignment`, IOMMUFD-300), recomputed whenever a
    /// domain comes or goes or large pages are switched.
    private(set) var alignment: UInt64 = 1

    private func recomputeAlignment() {
        alignment = Self.alignment(largePagesDisabled: largePagesDisabled, domains: domains.map(\.domain), accesses: accesses)
    }

    static func alignment(largePagesDisabled: Bool, domains: [IOMMUDomain], accesses: [IOMMUFDAccessObject] = []) -> UInt64 {
        let domainAlignment = domains.reduce(largePagesDisabled ? hostPageSize : 1) { max($0, $1.pageSizes.minimumPageSize) }
        return accesses.reduce(domainAlignment) { max($0, $1.iovaAlignment) }
    }

    /// The holes of `reserved_itree` over the whole IOVA space (IOMMUFD-201, -202, -722).
    var usableRanges: [IOVARange] { IOVARange.holes(of: reserved.map(\.range), from: 0, to: .max) }

    func area(intersecting first: UInt64, _ last: UInt64) -> IOPTArea? { areas.overlapping(first: first, last: last) }

    func reservation(intersecting first: UInt64, _ last: UInt64) -> IOVAReservation? {
        reserved.first { $0.range.intersects(first, last) }
    }

    /// The areas meeting `[first, last]`, lowest first.
    func areas(meeting first: UInt64, _ last: UInt64) -> [IOPTArea] {
        let head = areas.mapping(containing: first).flatMap { $0.iova < first ? $0 : nil }
        return (head.map { [$0] } ?? []) + areas.mappings(startingIn: first, last)
    }

    // MARK: Allowed and reserved ranges

    /// `iopt_set_allow_iova` (IOMMUFD-204): all or nothing; `EADDRINUSE` when an allowed range
    /// meets a reservation. Existing areas are not checked.
    func setAllowed(_ ranges: [IOVARange]) throws(IOMMUFDError) {
        for range in ranges {
            if let conflict = reservation(intersecting: range.start, range.last) {
                throw IOMMUFDError(.addressInUse, rule: .IOMMUFD_204, "ALLOW_IOVAS: \(range) meets the reserved range \(conflict.range)")
            }
        }
        allowed = ranges
    }

    /// `iopt_reserve_iova` (IOMMUFD-303): `EADDRINUSE` over an area or an allowed range.
    func reserve(_ range: IOVARange, owner: IOVAReservation.Owner, rule: RuleID) throws(IOMMUFDError) {
        if let area = area(intersecting: range.start, range.last) {
            throw IOMMUFDError(.addressInUse, rule: rule, "reserve \(range): the mapped area \(IOVARange(start: area.iova, last: area.last)) is there")
        }
        if let inside = allowed.first(where: { $0.intersects(range.start, range.last) }) {
            throw IOMMUFDError(.addressInUse, rule: rule, "reserve \(range): the allowed range \(inside) is there")
        }
        reserved.append(IOVAReservation(range: range, owner: owner))
    }

    func removeReservations(of owner: IOVAReservation.Owner) { reserved.removeAll { $0.owner == owner } }

    /// Puts back the reservations an unwound operation started from.
    func restore(reservations: [IOVAReservation]) { reserved = reservations }

    /// `iopt_table_enforce_dev_resv_regions` (IOMMUFD-304): every region of the device but
    /// `direct-relaxable`, all or none.
    func reserveRegions(_ regions: [ReservedRegion], of device: String) throws(IOMMUFDError) {
        let before = reserved
        for region in regions where region.type != .directRelaxable {
            do throws(IOMMUFDError) {
                try reserve(IOVARange(start: region.start, last: region.last), owner: .device(device), rule: .IOMMUFD_304)
            } catch {
                reserved = before
                throw error
            }
        }
    }

    // MARK: Alignment

    /// `iopt_check_iova_alignment` (IOMMUFD-301): every area's IOVA, length and page offset.
    func checkAlignment(_ alignment: UInt64, rule: RuleID, _ what: String) throws(IOMMUFDError) {
        let mask = alignment - 1
        if let area = areas.mappings.first(where: { ($0.iova | $0.length | $0.pageOffset) & mask != 0 }) {
            throw IOMMUFDError(
                .addressInUse, rule: rule, "\(what): the area \(IOVARange(start: area.iova, last: area.last)) is not aligned to \(hex(alignment))")
        }
    }

    /// `iopt_disable_large_pages` (IOMMUFD-242): `EINVAL` with domains and areas; `EADDRINUSE`
    /// when an area is not page aligned.
    func disableLargePages() throws(IOMMUFDError) {
        guard !largePagesDisabled else { return }
        guard domains.isEmpty || areas.isEmpty else {
            throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_242, "huge pages: cannot be disabled while domains hold mappings")
        }
        let newAlignment = Self.alignment(largePagesDisabled: true, domains: domains.map(\.domain), accesses: accesses)
        if newAlignment != alignment { try checkAlignment(newAlignment, rule: .IOMMUFD_242, "disable huge pages") }
        largePagesDisabled = true
        recomputeAlignment()
    }

    func enableLargePages() {
        largePagesDisabled = false
        recomputeAlignment()
    }

    // MARK: Domains

    /// `iopt_table_add_domain` (IOMMUFD-302): the alignment, the aperture reserved outside, every
    /// area pinned and mapped — or nothing changed.
    func addDomain(_ domain: IOMMUDomain, hwpt: UInt32, dirty: IOMMUFDDirtyTracker? = nil) throws(IOMMUFDError) {
        let newAlignment = max(domain.pageSizes.minimumPageSize, alignment)
        guard newAlignment <= hostPageSize else {
            throw IOMMUFDError(
                .invalidArgument, rule: .IOMMUFD_302, "add \(domain): its smallest page \(hex(newAlignment)) is larger than the CPU page")
        }
        if newAlignment != alignment { try checkAlignment(newAlignment, rule: .IOMMUFD_302, "add \(domain)") }
        let before = reserved
        let geometry = domain.geometry
        do throws(IOMMUFDError) {
            if geometry.apertureStart != 0 {
                try reserve(IOVARange(start: 0, last: geometry.apertureStart - 1), owner: .domain(hwpt), rule: .IOMMUFD_302)
            }
            if geometry.apertureEnd != .max {
                try reserve(IOVARange(start: geometry.apertureEnd + 1, last: .max), owner: .domain(hwpt), rule: .IOMMUFD_302)
            }
            var filled: [IOPTArea] = []
            do throws(IOMMUFDError) {
                for area in areas.mappings {
                    try fill(area, into: domain, pin: domains.isEmpty)
                    filled.append(area)
                }
            } catch {
                var gather = IOTLBGather()
                for area in filled { _ = domain.unmap(iova: area.iova, size: area.length, gather: &gather) }
                domain.gatherUnlinkedTables(into: &gather)
                gather.sync()
                if domains.isEmpty { for area in filled { area.pages.unpin() } }
                throw error
            }
        } catch {
            reserved = before
            throw error
        }
        domains.append((hwpt, domain))
        if let dirty { dirtyTrackers[hwpt] = dirty }
        recomputeAlignment()
    }

    /// Pins (when `pin`) and maps one area into `domain`; a failure undoes its pin.
    private func fill(_ area: IOPTArea, into domain: IOMMUDomain, pin: Bool) throws(IOMMUFDError) {
        if pin { try area.pages.pin() }
        do {
            try domain.map(iova: area.iova, to: area.hostAddress, size: area.length, access: area.access)
        } catch {
            if pin { area.pages.unpin() }
            throw IOMMUFDError(error)
        }
    }

    /// `iopt_table_remove_domain` (IOMMUFD-305): unmaps every area from it, drops its
    /// reservations; the last domain unpins. Never fails.
    func removeDomain(hwpt: UInt32) {
        guard let index = domains.firstIndex(where: { $0.hwpt == hwpt }) else { return }
        let domain = domains.remove(at: index).domain
        let all = areas.mappings
        var gather = IOTLBGather()
        for area in all { _ = domain.unmap(iova: area.iova, size: area.length, gather: &gather) }
        gather.sync()
        if domains.isEmpty { for area in all { area.pages.unpin() } }
        removeReservations(of: .domain(hwpt))
        dirtyTrackers[hwpt] = nil
        recomputeAlignment()
    }

    // MARK: Accesses

    /// `iopt_add_access` (IOMMUFD-607, -301): the access's alignment joins the IOAS's; `EADDRINUSE`
    /// when an area is not aligned to what that raises it to.
    func addAccess(_ access: IOMMUFDAccessObject) throws(IOMMUFDError) {
        let newAlignment = Self.alignment(largePagesDisabled: largePagesDisabled, domains: domains.map(\.domain), accesses: accesses + [access])
        if newAlignment > alignment { try checkAlignment(newAlignment, rule: .IOMMUFD_301, "attach access \(access.id)") }
        accesses.append(access)
        recomputeAlignment()
    }

    /// `iopt_remove_access`.
    func removeAccess(_ access: IOMMUFDAccessObject) {
        accesses.removeAll { $0 === access }
        recomputeAlignment()
    }

    // MARK: Areas

    /// `iopt_map_pages` (IOMMUFD-212..215): the total length's alignment, the IOVA — allocated
    /// (nil, guided by the first piece's address) or checked — one area per piece inserted back
    /// to back, then each filled into every domain; the IOVA used. Nothing stays on failure.
    func map(_ pieces: some Collection<IOPTArea.Piece>, iova requested: UInt64?, access: IOAccess) throws(IOMMUFDError) -> UInt64 {
        let alignment = alignment
        let length = pieces.reduce(0) { $0 + $1.length }
        guard length != 0, length & (alignment - 1) == 0 else {
            throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_212, "map: length \(hex(length)) is 0 or not a multiple of the IOVA alignment \(hex(alignment))")
        }
        let iova: UInt64
        if let requested {
            try checkFixed(requested, length: length)
            iova = requested
        } else {
            let first = pieces.first!
            iova = try allocateIOVA(length: length, address: first.pages.uptr + first.startByte)
        }
        // `iopt_insert_area` for each piece, back to back: every check before anything is filled.
        var next = iova
        for piece in pieces {
            if access.contains(.write), !piece.pages.writable {
                throw IOMMUFDError(.notPermitted, rule: .IOMMUFD_214, "map \(IOVARange(start: next, last: next + (piece.length - 1))) writable: the source pages were mapped read-only")
            }
            let pageOffset = piece.startByte % hostPageSize
            guard pageOffset & (alignment - 1) == 0 else {
                throw IOMMUFDError(
                    .invalidArgument, rule: .IOMMUFD_214,
                    "map: user address offset \(hex(pageOffset)) in its page is not aligned to the IOVA alignment \(hex(alignment))")
            }
            next &+= piece.length
        }
        next = iova
        var filled: UInt64 = 0
        for piece in pieces {
            let area = IOPTArea(iova: next, length: piece.length, pages: piece.pages, startByte: piece.startByte, access: access)
            do throws(IOMMUFDError) {
                try fillDomains(area)
            } catch {
                unfill(pieces, from: iova, bytes: filled, access: access)
                throw error
            }
            next &+= piece.length
            filled += piece.length
        }
        next = iova
        for piece in pieces {
            areas.insert(IOPTArea(iova: next, length: piece.length, pages: piece.pages, startByte: piece.startByte, access: access))
            next &+= piece.length
        }
        return iova
    }

    /// Undoes `fillDomains` for the first `bytes` of `pieces` mapped from `iova`.
    private func unfill(_ pieces: some Collection<IOPTArea.Piece>, from iova: UInt64, bytes: UInt64, access: IOAccess) {
        var next = iova
        var undone: [IOPTArea] = []
        for piece in pieces where next - iova < bytes {
            undone.append(IOPTArea(iova: next, length: piece.length, pages: piece.pages, startByte: piece.startByte, access: access))
            next &+= piece.length
        }
        removeFromDomains(undone)
    }

    /// `iopt_check_iova` (IOMMUFD-213).
    func checkFixed(_ iova: UInt64, length: UInt64) throws(IOMMUFDError) {
        var range: String { "IOVA \(hex(iova)) length \(hex(length))" }
        guard iova & (alignment - 1) == 0 else {
            throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_213, "map \(range): IOVA not aligned to \(hex(alignment))")
        }
        guard iova <= .max - (length - 1) else { throw IOMMUFDError(.overflow, rule: .IOMMUFD_213, "map \(range): wraps past 2^64") }
        let last = iova + (length - 1)
        if let conflict = reservation(intersecting: iova, last) {
            throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_213, "map \(range): meets the reserved range \(conflict.range)")
        }
        if let existing = area(intersecting: iova, last) {
            throw IOMMUFDError(.fileExists, rule: .IOMMUFD_213, "map \(range): overlaps the area \(IOVARange(start: existing.iova, last: existing.last))")
        }
    }

    /// `iopt_fill_domains_pages`: pins and maps the area into every domain, or nothing.
    private func fillDomains(_ area: IOPTArea) throws(IOMMUFDError) {
        guard !domains.isEmpty else { return }
        try area.pages.pin()
        for (index, (_, domain)) in domains.enumerated() {
            do {
                try domain.map(iova: area.iova, to: area.hostAddress, size: area.length, access: area.access)
            } catch {
                var gather = IOTLBGather()
                for (_, done) in domains[..<index] { _ = done.unmap(iova: area.iova, size: area.length, gather: &gather) }
                domain.gatherUnlinkedTables(into: &gather)
                gather.sync()
                area.pages.unpin()
                throw IOMMUFDError(error)
            }
        }
    }

    /// `iopt_unmap_iova_range` (IOMMUFD-232, -233): whole areas inside `[first, last]` in IOVA
    /// order; one that sticks out is `ENOENT`, those removed before it stay removed. The bytes
    /// removed, and the error that stopped it.
    func unmap(first: UInt64, last: UInt64) -> (unmapped: UInt64, error: IOMMUFDError?) {
        guard let head = areas.mapping(containing: first) ?? areas.firstMapping(startingAtOrAfter: first), head.iova <= last else { return (0, nil) }
        // One area exactly inside the range (the common UNMAP): nothing to collect.
        if head.iova >= first, head.last == last {
            remove(CollectionOfOne(head))
            return (head.length, nil)
        }
        var unmapped: UInt64 = 0
        var removed: [IOPTArea] = []
        var failure: IOMMUFDError?
        var next: IOPTArea? = head
        while let area = next, area.iova <= last {
            next = area.last >= last ? nil : areas.firstMapping(startingAtOrAfter: area.last + 1)
            guard area.iova >= first, area.last <= last else {
                failure = IOMMUFDError(
                    .noSuchFileOrDirectory, rule: .IOMMUFD_232,
                    "unmap \(IOVARange(start: first, last: last)): the area \(IOVARange(start: area.iova, last: area.last)) is only partly inside (iommufd does not split areas)")
                break
            }
            removed.append(area)
            unmapped += area.length
        }
        remove(removed)
        return (unmapped, failure)
    }

    /// `iopt_unmap_all` (IOMMUFD-231): every area; the bytes removed.
    func unmapAll() -> UInt64 {
        let all = areas.mappings
        remove(all)
        return all.reduce(0) { $0 + $1.length }
    }

    /// Takes `removed` out of the IOAS and every domain with one IOTLB sync, then unpins — after
    /// the accesses pinning pages of them have been told to let go (`iommufd_access_notify_unmap`).
    private func remove(_ removed: some Collection<IOPTArea>) {
        guard !removed.isEmpty else { return }
        if !accesses.isEmpty {
            for area in removed {
                for access in accesses { access.unmap(first: area.iova, last: area.last) }
            }
        }
        for area in removed { areas.remove(at: area.iova) }
        if !dirtyTrackers.isEmpty {
            for tracker in dirtyTrackers.values where !tracker.dirty.isEmpty {
                tracker.dirty = tracker.dirty.filter { leaf in !removed.contains { $0.iova <= leaf && leaf <= $0.last } }
            }
        }
        removeFromDomains(removed)
    }

    private func removeFromDomains(_ removed: some Collection<IOPTArea>) {
        var gather = IOTLBGather()
        for area in removed { for (_, domain) in domains { _ = domain.unmap(iova: area.iova, size: area.length, gather: &gather) } }
        gather.sync()
        if !domains.isEmpty { for area in removed { area.pages.unpin() } }
    }

    /// `iopt_get_pages` (IOMMUFD-223): the pieces of the areas covering `[first, first+length)`
    /// contiguously, `ENOENT` at a hole.
    func pieces(from first: UInt64, length: UInt64) throws(IOMMUFDError) -> [IOPTArea.Piece] {
        guard length != 0 else { throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_223, "copy: length 0") }
        guard first <= .max - (length - 1) else { throw IOMMUFDError(.overflow, rule: .IOMMUFD_223, "copy: source \(hex(first)) + \(hex(length)) wraps") }
        let last = first + (length - 1)
        var next = first
        var pieces: [IOPTArea.Piece] = []
        for area in areas(meeting: first, last) {
            guard area.iova <= next else { break }
            let end = min(area.last, last)
            let slice = area.slice(from: next, to: end)
            pieces.append(IOPTArea.Piece(pages: slice.pages, startByte: slice.startByte, length: slice.length))
            if end == last { return pieces }
            next = end + 1
        }
        throw IOMMUFDError(.noSuchFileOrDirectory, rule: .IOMMUFD_223, "copy: source IOVA \(hex(next)) is not mapped")
    }

    /// `iopt_area_split` at each of `points` (IOMMUFD-713): the area holding a point is cut so its
    /// left part ends there; `EINVAL` when the cut would not be aligned. Cuts made before a
    /// failure stay.
    func cut(at points: [UInt64]) throws(IOMMUFDError) {
        for point in points {
            // iopt_area_split: a cut at the area's first or last IOVA changes nothing.
            guard let area = areas.mapping(containing: point), point != area.iova, point != area.last else { continue }
            // The new start and its byte in the pages (`iopt_area_start_byte`) must both be aligned.
            guard (point + 1) & (alignment - 1) == 0, (area.startByte + (point + 1 - area.iova)) & (alignment - 1) == 0 else {
                throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_713, "unmap: cannot split the area \(IOVARange(start: area.iova, last: area.last)) after \(hex(point)): not aligned to \(hex(alignment))")
            }
            let left = area.slice(from: area.iova, to: point)
            let right = area.slice(from: point + 1, to: area.last)
            // The split pieces share the pages; each holds a pin of its own while domains exist.
            if !domains.isEmpty { try right.pages.pin() }
            areas.remove(at: area.iova)
            areas.insert(left)
            areas.insert(right)
        }
    }
}
