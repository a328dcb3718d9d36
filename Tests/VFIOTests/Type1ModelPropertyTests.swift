import KernelRules
import Locking
import PCIBus
import SystemPackage
import Testing

@testable import IOMMU
@testable import VFIO
import UserMemory

/// Model-based property test of `VFIOContainer` with the type1 backend: long seeded random
/// sequences of MAP_DMA (with and without VADDR), UNMAP_DMA (with VADDR and ALL), SET_IOMMU and
/// group SET/UNSET_CONTAINER run against a real container and against a small reference model
/// written here from `kernel-semantics.md` §3.3–§3.9 and §4.4–§4.5. Four groups take part: 27
/// and 22 of `devices/default` under VT-d (48-bit aperture, MSI window, 4K|2M|1G), and the same
/// two under a second IOMMU (39-bit aperture, a reserved hole at 64 GiB, 4K|2M), so attach and
/// detach resize the allowed-IOVA list, cut reserved regions out of it, grow it back, share or
/// create domains, replay mappings into new domains and recompute the page-size bitmap. Each
/// operation goes through the Swift API or, for about a third of them, the UAPI facade with raw
/// structs.
///
/// The model shares no code with the production `IOVAList`, `DMAMappingTable` or `Type1IOMMU`:
/// mappings are a sorted array, the IOVA list an array of inclusive pairs updated the way
/// `vfio_iommu_aper_resize` / `_resv_exclude` / `_aper_expand` / `_resv_refresh` describe it. After
/// every operation the outcome (success, errno, unmapped size) must agree, and so must the whole
/// observable state: mappings (IOVA, size, vaddr, pinned pages), invalidated vaddrs, `dma_avail`,
/// IOVA ranges, page sizes, domains (ops, each mapping every byte), IOMMU type, locked bytes and
/// groups. A mismatch stops the case and reports the seed, the operation index and the operation.
@Suite struct Type1ModelPropertyTests {
    static let seeds: [UInt64] = [0x0005_EED0_0001, 0x00C0_FFEE, 0xDEAD_BEEF_F00D, 42]
    /// 2 IOMMU types × 4 seeds × 25,000 = 200,000 operations per run.
    static let operationsPerCase = 25_000
    /// Small, so that T1-18 (ENOSPC) is reached often.
    static let dmaEntryLimit: UInt32 = 48

    @Test(arguments: [VFIOExtension.type1, .type1v2], Type1ModelPropertyTests.seeds)
    func containerMatchesReferenceModel(type: VFIOExtension, seed: UInt64) throws {
        var run = try ModelRun(type: type, seed: seed, entryLimit: Self.dmaEntryLimit)
        run.run(operations: Self.operationsPerCase)
        guard run.mismatch == nil else { return }
        // The generator must actually reach the interesting rules, or the comparison proves little.
        var expected: Set<String> = [
            "VG-10", "VG-13", "VG-22", "VG-24", "T1-13", "T1-14", "T1-15", "T1-16", "T1-17", "T1-18", "T1-19",
            "T1-20 EFAULT", "T1-20 mapped", "T1-32", "T1-32 overflow", "T1-33", "T1-33 nothing", "T1-38",
            "T1-35", "T1-35 already invalid", "T1-35 ALL", "T1-60 no mapping", "T1-60 not exact or still valid", "T1-60 revalidated",
            "T1-61", "T1-41 aperture", "T1-41 reserved", "set IOMMU", "detach", "detach last", "detach frees a domain", "attach",
            "attach: new domain", "attach: new domain, mappings replayed", "attach: domain reused",
            "edge: mapped up to the MSI window", "edge: mapped right after the MSI window", "edge: mapped up to the aperture's end",
            "edge: mapped up to the reserved hole", "edge: mapped right after the reserved hole",
            "path: uapi", "path: swiftAPI",
        ]
        expected.formUnion(type == .type1v2 ? ["T1-32 bisect"] : ["T1-34 starts inside", "T1-34 more than asked"])
        let missing = expected.subtracting(run.ruleHits.keys)
        #expect(missing.isEmpty, "seed 0x\(String(seed, radix: 16)) \(type): the generator never reached \(missing.sorted()) (hits: \(run.ruleHits.sorted { $0.key < $1.key }))")
    }
}

// MARK: - Reference model

/// What the model knows of a group's IOMMU: the domain ops, aperture, reserved regions type1
/// cuts out (none here is `direct-relaxable`) and page sizes.
fileprivate struct ModelIOMMU {
    let ops: String
    let apertureStart: UInt64
    let apertureEnd: UInt64
    let reserved: [(first: UInt64, last: UInt64)]
    let pageSizes: UInt64

    static let msiWindow: (first: UInt64, last: UInt64) = (0xfee0_0000, 0xfeef_ffff)
    static let vtd = ModelIOMMU(ops: "vt-d-48", apertureStart: 0, apertureEnd: (1 << 48) - 1, reserved: [msiWindow], pageSizes: 0x4020_1000)
    /// The second IOMMU: 39-bit, MSI window and a reserved hole at [64 GiB, 64 GiB + 4 MiB), 4K|2M.
    static let hole: (first: UInt64, last: UInt64) = (0x10_0000_0000, 0x10_003f_ffff)
    static let narrow = ModelIOMMU(ops: "model-39", apertureStart: 0, apertureEnd: (1 << 39) - 1, reserved: [msiWindow, hole], pageSizes: 0x20_1000)

    /// The production profile with the same properties.
    var profile: PlatformProfile {
        .vtdVariant(
            name: ops, geometry: try! DomainGeometry(apertureStart: apertureStart, apertureEnd: apertureEnd, forceAperture: true),
            pageSizes: PageSizeBitmap(rawValue: pageSizes),
            regions: reserved.map { ReservedRegion(start: $0.first, last: $0.last, type: $0 == Self.msiWindow ? .msi : .reserved)! })
    }
}

/// An independent model of one type1 container (spec §3.3–§3.9, §4.4–§4.5).
fileprivate struct Type1ReferenceModel {
    typealias Range = (first: UInt64, last: UInt64)

    struct Mapping: Equatable, CustomStringConvertible {
        let iova: UInt64
        let size: UInt64
        var vaddr: UInt64
        /// The pages pinned at MAP_DMA time; a VADDR update does not move them (T1-60).
        let host: UInt64
        var vaddrInvalid = false
        var last: UInt64 { iova + (size - 1) }
        var description: String { "[\(hex(iova)), \(hex(last))]←\(hex(vaddr))\(host != vaddr ? " (pages at \(hex(host)))" : "")\(vaddrInvalid ? " invalid" : "")" }
    }

    /// Host memory the process allocated (inclusive bounds).
    struct MemoryRegion {
        let first: UInt64
        let last: UInt64
        let writable: Bool
    }

    enum Outcome: Equatable, CustomStringConvertible {
        case done
        case unmapped(UInt64)
        case failed(Errno)

        var description: String {
            switch self {
            case .done: "success"
            case .unmapped(let size): "success, unmapped \(hex(size))"
            case .failed(let errno): errno.symbolicName
            }
        }
    }

    /// The host page size: every IOMMU here has 4 KiB as its smallest page (T1-16, T1-32, T1-52).
    static let pageSize: UInt64 = 0x1000
    static let pageMask: UInt64 = ~(pageSize - 1)

    let v2: Bool
    let entryLimit: UInt32
    /// Sorted by address.
    let memory: [MemoryRegion]
    /// Each group's IOMMU, by name.
    let iommus: [String: ModelIOMMU]
    /// Sorted by IOVA, disjoint, never coalesced (T1-22).
    private(set) var mappings: [Mapping] = []
    /// `dma_avail` (T1-01, T1-18).
    private(set) var dmaAvail: UInt32
    /// `VFIO_SET_IOMMU` done and not released since (VG-13, VG-22).
    private(set) var iommuSet = false
    /// Groups in the container, in join order.
    private(set) var groups: [String] = []
    /// type1's domains in creation order: ops and the groups attached to each (T1-50 step 11).
    private(set) var domains: [(ops: String, groups: [String])] = []
    /// The allowed-IOVA list (T1-40..43), inclusive ranges, sorted.
    private(set) var iovaList: [Range] = []
    /// `pgsize_bitmap` (T1-52).
    private(set) var pageSizes: UInt64 = pageMask

    init(v2: Bool, entryLimit: UInt32, memory: [MemoryRegion], iommus: [String: ModelIOMMU]) {
        self.v2 = v2
        self.entryLimit = entryLimit
        self.memory = memory.sorted { $0.first < $1.first }
        self.iommus = iommus
        dmaAvail = entryLimit
    }

    /// T1-91: every pinned mapping is charged in full.
    var lockedBytes: UInt64 { mappings.reduce(0) { $0 + $1.size } }
    var invalidIOVAs: Set<UInt64> { Set(mappings.filter(\.vaddrInvalid).map(\.iova)) }

    private func overlaps(_ first: UInt64, _ last: UInt64) -> [Mapping] { mappings.filter { $0.iova <= last && first <= $0.last } }

    // MARK: MAP_DMA

    /// `VFIO_IOMMU_MAP_DMA` (T1-13..T1-20 in the spec's order, VG-24 before any of them; T1-60
    /// with VADDR). Returns the outcome and the rule that decided it.
    mutating func map(flags: DMAMapFlags, vaddr: UInt64, iova: UInt64, size: UInt64) -> (Outcome, String) {
        guard iommuSet else { return (.failed(.invalidArgument), "VG-24") }
        guard size != 0 else { return (.failed(.invalidArgument), "T1-13") }
        // T1-14: the inclusive ends `iova + size - 1` and `vaddr + size - 1` must not wrap.
        if iova.addingReportingOverflow(size - 1).overflow || vaddr.addingReportingOverflow(size - 1).overflow {
            return (.failed(.overflow), "T1-14")
        }
        // T1-15: a normal map needs READ or WRITE; a VADDR update takes neither.
        let updatesVaddr = flags.contains(.vaddr)
        let protection = flags.intersection([.read, .write])
        if protection.isEmpty != updatesVaddr { return (.failed(.invalidArgument), "T1-15") }
        // T1-16: size, iova and vaddr aligned to the smallest page of the bitmap.
        let minimum = pageSizes & (0 &- pageSizes)
        if (size | iova | vaddr) & (minimum - 1) != 0 { return (.failed(.invalidArgument), "T1-16") }
        let last = iova + (size - 1)
        let overlapping = overlaps(iova, last)
        if updatesVaddr {
            // T1-60: exactly one invalidated mapping of exactly this range takes the new vaddr.
            guard let target = overlapping.first else { return (.failed(.noSuchFileOrDirectory), "T1-60 no mapping") }
            guard overlapping.count == 1, target.vaddrInvalid, target.iova == iova, target.size == size else {
                return (.failed(.invalidArgument), "T1-60 not exact or still valid")
            }
            let index = mappings.firstIndex { $0.iova == iova }!
            mappings[index].vaddr = vaddr
            mappings[index].vaddrInvalid = false
            return (.done, "T1-60 revalidated")
        }
        if !overlapping.isEmpty { return (.failed(.fileExists), "T1-17") }
        if dmaAvail == 0 { return (.failed(.noSpace), "T1-18") }
        // T1-19: inside ONE allowed range.
        if !iovaList.isEmpty, !iovaList.contains(where: { $0.first <= iova && last <= $0.last }) {
            return (.failed(.invalidArgument), "T1-19")
        }
        // T1-20: every byte of the vaddr range is memory the process allocated, writable when the
        // device may write it; otherwise pinning fails with EFAULT and nothing is created.
        if !hostMemoryCovers(vaddr: vaddr, size: size, write: protection.contains(.write)) {
            return (.failed(.badAddress), "T1-20 EFAULT")
        }
        let index = mappings.firstIndex { $0.iova > iova } ?? mappings.count
        mappings.insert(Mapping(iova: iova, size: size, vaddr: vaddr, host: vaddr), at: index)
        dmaAvail -= 1
        return (.done, "T1-20 mapped")
    }

    private func hostMemoryCovers(vaddr: UInt64, size: UInt64, write: Bool) -> Bool {
        let last = vaddr + (size - 1)
        var next = vaddr
        while true {
            guard let region = memory.first(where: { $0.first <= next && next <= $0.last }) else { return false }
            if write, !region.writable { return false }
            if region.last >= last { return true }
            next = region.last + 1
        }
    }

    // MARK: UNMAP_DMA

    /// `VFIO_IOMMU_UNMAP_DMA` with flags ALL and VADDR (T1-32..T1-35, T1-38).
    mutating func unmap(flags: DMAUnmapFlags, iova: UInt64, size: UInt64) -> (Outcome, String) {
        guard iommuSet else { return (.failed(.invalidArgument), "VG-24") }
        let minimum = pageSizes & (0 &- pageSizes)
        // T1-32 step 3, then step 4.
        guard iova & (minimum - 1) == 0 else { return (.failed(.invalidArgument), "T1-32") }
        let all = flags.contains(.all)
        let last: UInt64
        if all {
            guard iova == 0, size == 0 else { return (.failed(.invalidArgument), "T1-32") }
            last = .max
        } else {
            guard size != 0, size & (minimum - 1) == 0 else { return (.failed(.invalidArgument), "T1-32") }
            let (end, wraps) = iova.addingReportingOverflow(size - 1)
            if wraps { return (.failed(.overflow), "T1-32 overflow") }
            last = end
        }
        let startsInside = mappings.contains { $0.iova < iova && iova <= $0.last }
        if v2, !all, startsInside || mappings.contains(where: { $0.iova <= last && last < $0.last }) {
            // T1-32 step 6: no bisection of a mapping at either end.
            return (.failed(.invalidArgument), "T1-32 bisect")
        }
        // T1-33 / T1-34: the mappings that START in the range, whole — none in v1 when the range
        // starts inside a mapping.
        let targets = !v2 && startsInside ? [] : mappings.filter { iova <= $0.iova && $0.iova <= last }
        let total = targets.reduce(0) { $0 + $1.size }
        if flags.contains(.vaddr) {
            // T1-35: all or nothing.
            if targets.contains(where: \.vaddrInvalid) { return (.failed(.invalidArgument), "T1-35 already invalid") }
            for index in mappings.indices where targets.contains(where: { $0.iova == mappings[index].iova }) { mappings[index].vaddrInvalid = true }
            return (.unmapped(total), all ? "T1-35 ALL" : "T1-35")
        }
        mappings.removeAll { target in targets.contains { $0.iova == target.iova } }
        dmaAvail += UInt32(targets.count)
        if all { return (.unmapped(total), "T1-38") }
        if !v2, startsInside { return (.unmapped(0), "T1-34 starts inside") }
        return (.unmapped(total), total == 0 ? "T1-33 nothing" : total > size ? "T1-34 more than asked" : "T1-33")
    }

    // MARK: SET_IOMMU, attach, detach

    /// `VFIO_SET_IOMMU` (VG-22, T1-02): needs a group and no IOMMU yet; a fresh type1 instance
    /// attaches every group newest first — `group_list` is built with `list_add` — (T1-50), none of
    /// which can fail without mappings.
    mutating func setIOMMU() -> (Outcome, String) {
        guard !groups.isEmpty, !iommuSet else { return (.failed(.invalidArgument), "VG-22") }
        iommuSet = true
        dmaAvail = entryLimit
        iovaList = []
        domains = []
        pageSizes = Self.pageMask
        for group in groups.reversed() { _ = attachType1(group) }
        return (.done, "set IOMMU")
    }

    /// `VFIO_GROUP_SET_CONTAINER` (VG-10, VG-11): with an IOMMU set, type1 attaches the group at
    /// once (T1-50); a failure leaves the group out.
    mutating func attach(group: String) -> (Outcome, String) {
        guard !groups.contains(group) else { return (.failed(.invalidArgument), "VG-10") }
        guard iommuSet else {
            groups.append(group)
            return (.done, "attach")
        }
        let (outcome, rule) = attachType1(group)
        if outcome == .done { groups.append(group) }
        return (outcome, rule)
    }

    /// `vfio_iommu_type1_attach_group` (T1-50) for an IOMMU-backed group.
    private mutating func attachType1(_ group: String) -> (Outcome, String) {
        let iommu = iommus[group]!
        // Step 1 (T1-61).
        if mappings.contains(where: \.vaddrInvalid) { return (.failed(.resourceBusy), "T1-61") }
        // Step 6 (T1-41): the new aperture may not strand a mapping.
        if let head = iovaList.first, let tail = iovaList.last {
            let (start, end) = (iommu.apertureStart, iommu.apertureEnd)
            let disjoint = start > tail.last || end < head.first
            let below = start > head.first && !overlaps(head.first, start - 1).isEmpty
            let above = end < tail.last && !overlaps(end + 1, tail.last).isEmpty
            if disjoint || below || above { return (.failed(.invalidArgument), "T1-41 aperture") }
        }
        // Step 7 (T1-41): nor may a reserved region cover one.
        if iommu.reserved.contains(where: { !overlaps($0.first, $0.last).isEmpty }) { return (.failed(.invalidArgument), "T1-41 reserved") }
        // Step 8 (T1-40).
        guard let list = Self.excluding(iommu.reserved, from: Self.resized(iovaList, iommu.apertureStart, iommu.apertureEnd)) else {
            return (.failed(.invalidArgument), "T1-40")
        }
        iovaList = list
        // Step 11: a domain of the same ops takes the group (every IOMMU here agrees with itself
        // on cache coherency); step 12: otherwise a new domain, into which the mappings are
        // replayed, and the page sizes are recomputed (T1-52).
        if let index = domains.firstIndex(where: { $0.ops == iommu.ops }) {
            domains[index].groups.append(group)
            return (.done, "attach: domain reused")
        }
        domains.append((iommu.ops, [group]))
        updatePageSizes()
        return (.done, mappings.isEmpty ? "attach: new domain" : "attach: new domain, mappings replayed")
    }

    /// `VFIO_GROUP_UNSET_CONTAINER` (VG-13, T1-56, T1-43): an emptied domain goes — the last one
    /// takes every mapping —, the list's outer ends grow to the remaining apertures, and the list
    /// is rebuilt without the remaining groups' reserved regions (kept as it was if that fails).
    mutating func detach(group: String) -> (Outcome, String) {
        guard let position = groups.firstIndex(of: group) else { return (.failed(.invalidArgument), "VG-13") }
        groups.remove(at: position)
        guard iommuSet else { return (.done, "detach") }
        var rule = "detach"
        let before = iovaList
        var list = iovaList
        let index = domains.firstIndex { $0.groups.contains(group) }!
        domains[index].groups.removeAll { $0 == group }
        if domains[index].groups.isEmpty {
            if domains.count == 1 {
                mappings.removeAll()
                dmaAvail = entryLimit
            }
            domains.remove(at: index)
            let remaining = domains.map { iommus[$0.groups[0]]! }
            if !list.isEmpty {
                list[0].first = remaining.map(\.apertureStart).max() ?? 0
                list[list.count - 1].last = remaining.map(\.apertureEnd).min() ?? .max
            }
            updatePageSizes()
            rule = "detach frees a domain"
        }
        if let head = list.first, let tail = list.last {
            let regions = domains.flatMap(\.groups).flatMap { iommus[$0]!.reserved }
            iovaList = Self.excluding(regions, from: [(head.first, tail.last)]) ?? before
        }
        if groups.isEmpty {
            iommuSet = false
            return (.done, "detach last")
        }
        return (.done, rule)
    }

    /// T1-52: the AND of the domains' page sizes with sub-page sizes folded into PAGE_SIZE.
    private mutating func updatePageSizes() {
        var bitmap = domains.reduce(Self.pageMask) { $0 & iommus[$1.groups[0]]!.pageSizes }
        if bitmap & (Self.pageSize - 1) != 0 { bitmap = bitmap & Self.pageMask | Self.pageSize }
        pageSizes = bitmap
    }

    /// `vfio_iommu_aper_resize` (T1-40 step 1): an empty list becomes the aperture; otherwise a
    /// range survives when it ends above `start` and begins below `end` — so a range touching
    /// the aperture only at its last (first) address is dropped, as the kernel's loops do — and
    /// is clipped to the aperture.
    static func resized(_ list: [Range], _ start: UInt64, _ end: UInt64) -> [Range] {
        guard !list.isEmpty else { return [(start, end)] }
        return list.compactMap { $0.last > start && $0.first < end ? (max($0.first, start), min($0.last, end)) : nil }
    }

    /// `vfio_iommu_resv_exclude` (T1-40 step 2): the list minus the regions; nil when nothing is left.
    static func excluding(_ regions: [Range], from list: [Range]) -> [Range]? {
        var result = list
        for region in regions {
            result = result.flatMap { range -> [Range] in
                guard region.first <= range.last, range.first <= region.last else { return [range] }
                var pieces: [Range] = []
                if range.first < region.first { pieces.append((range.first, region.first - 1)) }
                if region.last < range.last { pieces.append((region.last + 1, range.last)) }
                return pieces
            }
        }
        return result.isEmpty ? nil : result
    }
}

// MARK: - Operations and generator

fileprivate enum Type1ModelOperation: CustomStringConvertible {
    case map(flags: DMAMapFlags, vaddr: UInt64, iova: UInt64, size: UInt64)
    case unmap(flags: DMAUnmapFlags, iova: UInt64, size: UInt64)
    case setIOMMU
    case detach(group: String)
    case attach(group: String)

    var description: String {
        switch self {
        case let .map(flags, vaddr, iova, size):
            let names = [(DMAMapFlags.read, "READ"), (.write, "WRITE"), (.vaddr, "VADDR")].filter { flags.contains($0.0) }.map(\.1)
            return "MAP_DMA flags=[\(names.joined(separator: "|"))] vaddr=\(hex(vaddr)) iova=\(hex(iova)) size=\(hex(size))"
        case let .unmap(flags, iova, size):
            let names = [(DMAUnmapFlags.all, "ALL"), (.vaddr, "VADDR")].filter { flags.contains($0.0) }.map(\.1)
            return "UNMAP_DMA flags=[\(names.joined(separator: "|"))] iova=\(hex(iova)) size=\(hex(size))"
        case .setIOMMU: return "SET_IOMMU"
        case .detach(let group): return "group \(group) UNSET_CONTAINER"
        case .attach(let group): return "group \(group) SET_CONTAINER"
        }
    }
}

/// Random operations biased towards the edges that matter: overlaps and adjacency with existing
/// mappings, the edges of the allowed ranges of both IOMMUs, the top of the 64-bit space,
/// unaligned values, vaddrs straddling or outside host memory, invalidated mappings.
fileprivate struct Type1OperationGenerator {
    static let page = Type1ReferenceModel.pageSize
    static let msiFirst = ModelIOMMU.msiWindow.first
    static let msiLast = ModelIOMMU.msiWindow.last
    static let apertureLast = ModelIOMMU.vtd.apertureEnd
    static let narrowLast = ModelIOMMU.narrow.apertureEnd
    static let hole = ModelIOMMU.hole
    var rng: SplitMix64
    let groupNames: [String]
    /// Writable host memory (the main pool) and a small read-only region.
    let pool: (first: UInt64, size: UInt64)
    let readOnly: (first: UInt64, size: UInt64)

    mutating func chance(_ percent: Int) -> Bool { rng.below(100) < percent }
    mutating func pages(_ count: Int) -> UInt64 { UInt64(rng.below(count)) * Self.page }
    mutating func pick<T>(_ values: [T]) -> T { values[rng.below(values.count)] }

    /// The current phase and the operations left in it.
    var filling = false
    var phaseLeft = 0

    mutating func next(_ model: Type1ReferenceModel) -> Type1ModelOperation {
        // Phases of a few hundred operations: one in three fills the table up to `dma_entry_limit`
        // (T1-18) with few unmaps and no group changes; the others mix everything.
        if phaseLeft == 0 {
            filling = rng.below(3) == 0
            phaseLeft = 200 + rng.below(400)
        }
        phaseLeft -= 1
        // Bring a released container back to life quickly, so MAP/UNMAP mostly run with an IOMMU.
        if model.groups.isEmpty, chance(40) { return .attach(group: pick(groupNames)) }
        if !model.iommuSet, !model.groups.isEmpty, chance(30) { return .setIOMMU }
        if filling { return chance(3) ? unmap(model) : map(model) }
        switch rng.below(1000) {
        case 0..<4: return .setIOMMU
        case 4..<20: return .detach(group: pick(groupNames))
        case 20..<40: return .attach(group: pick(groupNames))
        case 40..<50:
            let flags: DMAUnmapFlags = chance(30) ? [.all, .vaddr] : .all
            return .unmap(flags: flags, iova: chance(80) ? 0 : pick([Self.page, 1, 0]), size: chance(80) ? 0 : pick([Self.page, 1, 0]))
        case 50..<74: return revalidate(model) ?? map(model)
        case 60..<400: return unmap(model)
        default: return map(model)
        }
    }

    // MARK: IOVAs and sizes

    /// Centres of the dense clusters where mappings collide; index 5 stands for the top of the
    /// 64-bit space.
    static let clusterCentres: [UInt64] = [
        0, 0x10_0000, msiFirst, msiLast + 1, apertureLast + 1, 0, 0x4000_0000, 0x1_0000_0000, narrowLast + 1, hole.first, hole.last + 1,
    ]
    static let edges: [UInt64] = [
        0, page, msiFirst - page, msiFirst, msiLast, msiLast + 1, msiLast + 1 - page, apertureLast, apertureLast + 1 - page, apertureLast + 1,
        narrowLast + 1 - page, narrowLast + 1, hole.first - page, hole.first, hole.last + 1, UInt64.max, UInt64.max - (page - 1),
        UInt64.max - (2 * page - 1), 1 << 63,
    ]

    mutating func iova(_ model: Type1ReferenceModel) -> UInt64 {
        var value: UInt64
        switch rng.below(100) {
        case 0..<45:
            // ±32 pages (sometimes ±256) around a cluster centre.
            let radius: UInt64 = chance(25) ? 256 : 32
            let index = rng.below(Self.clusterCentres.count)
            let centre = index == 5 ? 0 &- radius * Self.page : Self.clusterCentres[index]
            let low = centre < radius * Self.page && index != 5 ? 0 : centre &- radius * Self.page
            value = low &+ pages(Int(2 * radius))
        case 45..<72:
            guard let mapping = model.mappings.isEmpty ? nil : pick(model.mappings) else { return iova(model) }
            switch rng.below(5) {
            case 0: value = mapping.iova
            case 1: value = mapping.last &+ 1
            case 2: value = mapping.iova &- pages(4) &- Self.page
            case 3: value = mapping.iova &+ pages(Int(min(mapping.size / Self.page, 1 << 20)))
            default: value = mapping.last &+ 1 &- Self.page
            }
        case 72..<82: value = pick(Self.edges)
        case 82..<90: value = (rng.next() >> UInt64(rng.below(64))) & ~(Self.page - 1)
        default: value = rng.next()
        }
        if chance(6) { value &+= 1 + UInt64(rng.below(Int(Self.page - 1))) }
        return value
    }

    mutating func size(from iova: UInt64) -> UInt64 {
        switch rng.below(100) {
        case 0..<3: return 0
        case 3..<65: return pages(8) + Self.page
        case 65..<77: return pages(64) + Self.page
        case 77..<83:
            // Up to an edge, or exactly 2^64 - 1 (valid, T1-14), or one page past it.
            let target = pick([Self.msiFirst, Self.msiLast + 1, Self.apertureLast + 1, Self.narrowLast + 1, Self.hole.first, 0, 0])
            let size = target &- iova
            return chance(20) ? size &+ Self.page : size
        case 83..<90: return 1 << UInt64(12 + rng.below(52))
        case 90..<95: return UInt64.max - pages(4)
        default: return pages(8) + 1 + UInt64(rng.below(Int(Self.page - 1)))
        }
    }

    mutating func vaddr(size: UInt64) -> UInt64 {
        let sizePages = Int(min(size / Self.page, 1 << 30))
        switch rng.below(100) {
        case 0..<74:
            // Inside the pool; the last few positions straddle its end.
            let slots = max(Int(pool.size / Self.page) - sizePages, 0) + 3
            return pool.first + pages(slots)
        case 74..<82:
            let slots = max(Int(readOnly.size / Self.page) - sizePages, 0) + 2
            return readOnly.first + pages(slots)
        case 82..<87: return pool.first &- pages(4) &- Self.page
        case 87..<92: return pick([0, Self.page, 1 << 40, rng.next() & ~(Self.page - 1)])
        case 92..<96: return UInt64.max &- pages(8) &- (Self.page - 1)
        default: return pool.first + pages(64) + 1 + UInt64(rng.below(Int(Self.page - 1)))
        }
    }

    mutating func map(_ model: Type1ReferenceModel) -> Type1ModelOperation {
        let iova = iova(model)
        let size = size(from: iova)
        let vaddr = vaddr(size: size)
        let flags: DMAMapFlags
        switch rng.below(100) {
        case 0..<84: flags = [.read, .write]
        case 84..<90: flags = [.read]
        case 90..<95: flags = [.write]
        case 95..<97: flags = []
        case 97..<99: flags = [.vaddr]
        default: flags = [.read, .vaddr]
        }
        return .map(flags: flags, vaddr: vaddr, iova: iova, size: size)
    }

    /// MAP_DMA VADDR for an invalidated mapping: mostly its exact range at a new vaddr (T1-60),
    /// sometimes a page short or one that is still valid.
    mutating func revalidate(_ model: Type1ReferenceModel) -> Type1ModelOperation? {
        let invalid = model.mappings.filter(\.vaddrInvalid)
        guard let target = invalid.isEmpty ? (model.mappings.isEmpty || chance(70) ? nil : pick(model.mappings)) : pick(invalid) else { return nil }
        let size = chance(90) ? target.size : target.size &- Self.page
        return .map(flags: .vaddr, vaddr: vaddr(size: size), iova: target.iova, size: size)
    }

    mutating func unmap(_ model: Type1ReferenceModel) -> Type1ModelOperation {
        let flags: DMAUnmapFlags = chance(8) ? .vaddr : []
        if !model.mappings.isEmpty, chance(50) {
            // From a mapping's start (or a little before / inside it) to the end of it or of one of
            // the next few, give or take a page: whole mappings, spans with holes, and bisections.
            let first = rng.below(model.mappings.count)
            let lastIndex = min(first + rng.below(4), model.mappings.count - 1)
            var start = model.mappings[first].iova
            var end = model.mappings[lastIndex].last &+ 1
            switch rng.below(10) {
            case 0: start &-= Self.page
            case 1: start &+= pages(Int(min(model.mappings[first].size / Self.page, 1 << 20)))
            case 2: end &-= Self.page
            case 3: end &+= pages(3)
            default: break
            }
            return .unmap(flags: flags, iova: start, size: end &- start)
        }
        let iova = iova(model)
        return .unmap(flags: flags, iova: iova, size: size(from: iova))
    }
}

// MARK: - Runner

/// One seeded run: a real container and the model, driven by the same operations.
fileprivate struct ModelRun {
    let type: VFIOExtension
    let seed: UInt64
    let container: VFIOContainer
    let process: ProcessMemory
    /// The four groups by name; `systems` holds the `/dev/vfio` each was opened from.
    let groups: [String: VFIOGroup]
    let systems: [String: VFIOSystem]
    var model: Type1ReferenceModel
    var generator: Type1OperationGenerator
    /// How often each deciding rule was hit (coverage of the generator).
    var ruleHits: [String: Int] = [:]
    var mismatch: String?
    /// The last operations, for the failure message.
    private var recent: [String] = []

    init(type: VFIOExtension, seed: UInt64, entryLimit: UInt32) throws {
        self.type = type
        self.seed = seed
        let vtd = try VFIOTestMachine.system()
        let narrow = try VFIOTestMachine.system(profile: ModelIOMMU.narrow.profile)
        process = vtd.process
        container = VFIOContainer(process: process, options: VFIOContainerOptions(dmaEntryLimit: entryLimit))
        let systems = ["A27": vtd, "A22": vtd, "B27": narrow, "B22": narrow]
        var groups: [String: VFIOGroup] = [:]
        for (name, system) in systems { groups[name] = try system.openGroup(Int(name.dropFirst())!) }
        self.systems = systems
        self.groups = groups
        let pool = try process.allocate(size: 4 << 20)
        let readOnly = try process.allocate(size: 64 << 10, writable: false)
        let memory = [
            Type1ReferenceModel.MemoryRegion(first: pool.address, last: pool.last, writable: true),
            Type1ReferenceModel.MemoryRegion(first: readOnly.address, last: readOnly.last, writable: false),
        ]
        model = Type1ReferenceModel(
            v2: type == .type1v2, entryLimit: entryLimit, memory: memory,
            iommus: ["A27": .vtd, "A22": .vtd, "B27": .narrow, "B22": .narrow])
        generator = Type1OperationGenerator(
            rng: SplitMix64(seed: seed), groupNames: groups.keys.sorted(), pool: (pool.address, pool.size), readOnly: (readOnly.address, readOnly.size))
    }

    mutating func run(operations: Int) {
        // The container starts with the VT-d groups joined and its IOMMU set; the others come and go.
        for operation in [Type1ModelOperation.attach(group: "A27"), .attach(group: "A22"), .setIOMMU] {
            guard step(operation, path: .swiftAPI, index: -1) else { return }
        }
        var paths = SplitMix64(seed: ~seed)
        for index in 0..<operations {
            let operation = generator.next(model)
            guard step(operation, path: paths.below(3) == 0 ? .uapi : .swiftAPI, index: index) else { return }
        }
    }

    /// Applies one operation to both; false after a mismatch.
    private mutating func step(_ operation: Type1ModelOperation, path: APIPath, index: Int) -> Bool {
        recent.append("\(operation) via \(path)")
        if recent.count > 8 { recent.removeFirst() }
        let (expected, rule) = Self.apply(operation, to: &model)
        ruleHits[rule, default: 0] += 1
        ruleHits["path: \(path)", default: 0] += 1
        if case let .map(flags, _, iova, size) = operation, expected == .done, !flags.contains(.vaddr) { countEdges(iova, iova + (size - 1)) }
        let (actual, error) = perform(operation, path: path)
        if actual != expected {
            fail(index: index, operation: operation, "model (\(rule)) expects \(expected), container gave \(actual)\(error.map { " — \($0)" } ?? "")")
            return false
        }
        if let difference = stateDifference() {
            fail(index: index, operation: operation, "state differs after the operation: \(difference)")
            return false
        }
        return true
    }

    /// T1-19 at the edges of the allowed ranges of both IOMMUs.
    private mutating func countEdges(_ first: UInt64, _ last: UInt64) {
        let edges: [(Bool, String)] = [
            (last == ModelIOMMU.msiWindow.first - 1, "edge: mapped up to the MSI window"),
            (first == ModelIOMMU.msiWindow.last + 1, "edge: mapped right after the MSI window"),
            (last == model.iovaList.last?.last, "edge: mapped up to the aperture's end"),
            (last == ModelIOMMU.hole.first - 1, "edge: mapped up to the reserved hole"),
            (first == ModelIOMMU.hole.last + 1, "edge: mapped right after the reserved hole"),
        ]
        for (hit, name) in edges where hit { ruleHits[name, default: 0] += 1 }
    }

    private static func apply(_ operation: Type1ModelOperation, to model: inout Type1ReferenceModel) -> (Type1ReferenceModel.Outcome, String) {
        switch operation {
        case let .map(flags, vaddr, iova, size): model.map(flags: flags, vaddr: vaddr, iova: iova, size: size)
        case let .unmap(flags, iova, size): model.unmap(flags: flags, iova: iova, size: size)
        case .setIOMMU: model.setIOMMU()
        case .detach(let group): model.detach(group: group)
        case .attach(let group): model.attach(group: group)
        }
    }

    /// The operation on the container through `path`: the Swift API or raw structs.
    private func perform(_ operation: Type1ModelOperation, path: APIPath) -> (Type1ReferenceModel.Outcome, VFIOError?) {
        let type1 = ContainerCalls(path: path, container: container, memoryBase: 0)
        let result: (Outcome, VFIOError?)
        switch operation {
        case let .map(flags, vaddr, iova, size): result = type1.run(.map(flags.rawValue, .absolute(vaddr), iova: iova, size: size))
        case let .unmap(flags, iova, size):
            let (outcome, error) = type1.run(.unmap(flags.rawValue, iova: iova, size: size))
            if case .value(let size) = outcome { return (.unmapped(size), nil) }
            result = (outcome, error)
        case .setIOMMU: result = type1.run(.setIOMMU(UInt(type.rawValue)))
        case .detach(let name): result = (GroupCalls(path: path, system: systems[name]!).unsetContainer(groups[name]!), nil)
        case .attach(let name): result = (GroupCalls(path: path, system: systems[name]!).setContainer(groups[name]!, container), nil)
        }
        switch result.0 {
        case .failure(let errno): return (.failed(errno), result.1)
        default: return (.done, nil)
        }
    }

    private func name(of group: VFIOGroup) -> String { groups.first { $0.value === group }!.key }

    /// The first difference between the container's observable state and the model's, if any.
    private func stateDifference() -> String? {
        let invalid = container.state.withLock { $0.iommu?.invalidVaddrs ?? [] }
        let actual = container.mappings.map { mapping in
            Type1ReferenceModel.Mapping(
                iova: mapping.iova, size: mapping.size, vaddr: mapping.vaddr, host: mapping.hostAddress, vaddrInvalid: invalid.contains(mapping.iova))
        }
        if actual != model.mappings {
            let index = zip(actual, model.mappings).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(actual.count, model.mappings.count)
            return "mappings: container has \(actual.count), model \(model.mappings.count); first difference at #\(index): "
                + "container \(index < actual.count ? actual[index].description : "none") vs model \(index < model.mappings.count ? model.mappings[index].description : "none")"
        }
        if invalid != model.invalidIOVAs { return "invalid vaddrs: container \(invalid.sorted().map(hex)) vs model \(model.invalidIOVAs.sorted().map(hex))" }
        let expectedType: VFIOExtension? = model.iommuSet ? type : nil
        if container.iommuType != expectedType {
            return "iommuType: container \(container.iommuType.map(\.description) ?? "nil") vs model \(expectedType.map(\.description) ?? "nil")"
        }
        let groups = container.groups.map(name(of:))
        if groups != model.groups { return "groups: container \(groups) vs model \(model.groups)" }
        let domains = container.domains
        let ops = domains.map(\.ops)
        if ops != model.domains.map(\.ops) { return "domains: container \(ops) vs model \(model.domains.map(\.ops))" }
        if let stale = domains.first(where: { $0.mappedBytes != model.lockedBytes }) {
            return "\(stale) maps \(hex(stale.mappedBytes)) bytes, the mappings \(hex(model.lockedBytes)) (replay or unmap missed a domain)"
        }
        do throws(VFIOError) {
            let info = try container.info()
            guard model.iommuSet else { return "GET_INFO succeeded without an IOMMU (VG-24 expects EINVAL)" }
            if info.dmaAvailable != model.dmaAvail { return "dma_avail: container \(info.dmaAvailable) vs model \(model.dmaAvail)" }
            if info.pageSizes != model.pageSizes { return "page sizes: container \(hex(info.pageSizes)) vs model \(hex(model.pageSizes))" }
            let ranges = info.iovaRanges.map { "[\(hex($0.start)), \(hex($0.end))]" }
            let expectedRanges = model.iovaList.map { "[\(hex($0.first)), \(hex($0.last))]" }
            if ranges != expectedRanges { return "IOVA ranges: container \(ranges) vs model \(expectedRanges)" }
        } catch {
            if model.iommuSet { return "GET_INFO failed with an IOMMU set: \(error)" }
            if error.errno != .invalidArgument { return "GET_INFO without an IOMMU: \(error.errno.symbolicName), expected EINVAL (VG-24)" }
        }
        if process.lockedBytes != model.lockedBytes {
            return "locked bytes: process \(hex(process.lockedBytes)) vs model \(hex(model.lockedBytes))"
        }
        return nil
    }

    private mutating func fail(index: Int, operation: Type1ModelOperation, _ what: String) {
        let message = """
            type1 model mismatch — seed 0x\(String(seed, radix: 16)) (\(type)), operation #\(index): \(operation)
            \(what)
            last operations: \(recent.joined(separator: "; "))
            """
        mismatch = message
        Issue.record(Comment(rawValue: message))
    }
}

fileprivate func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }
