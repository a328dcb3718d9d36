import IOMMU
import KernelRules
import Locking
import PCIBus
import SystemPackage
import Testing

@testable import IOMMUFD
import UserMemory

/// Model-based property test of the IOAS (`io_pagetable`): long seeded random sequences of
/// IOMMU_IOAS_MAP (fixed and automatic), IOAS_COPY, IOAS_UNMAP (whole, partial, spanning, empty,
/// unmap-all) and IOAS_ALLOW_IOVAS, run against a real `/dev/iommu` and against a small reference
/// model written here from `iommufd.md` §2–§3 (`ioas.c`, `io_pagetable.c`). Two IOASes take part:
/// IOAS 1 with no domain (alignment 1, nothing reserved, nothing pinned) and IOAS 2 with the NVMe
/// of `devices/default` attached through an auto domain (VT-d: 4 KiB alignment, the MSI window and
/// everything past the 48-bit aperture reserved, pages pinned — so a bad user VA is EFAULT there
/// only). Each operation goes through the Swift API or, for about a third of them, the raw ioctl.
///
/// The model shares no code with `IOAddressSpace`: areas are a sorted array, automatic IOVAs come
/// from its own walk of the allowed spans and the holes of reservations and areas. After every
/// operation the outcome (IOVA, length, errno) must agree, and so must every IOAS's areas (IOVA,
/// length, user address) and allowed list; an IOAS 2 without areas must have nothing pinned. User
/// VAs lie wholly inside one allocation or wholly outside (a half-valid buffer is a table row:
/// the kernel pins by page, the simulation by `iopt_pages`).
@Suite struct IOMMUFDModelPropertyTests {
    static let seeds: [UInt64] = [0x10AA_5EED, 0x00C0_FFEE, 0xDEAD_BEEF_F00D, 42]
    /// 4 seeds × 10,000 = 40,000 operations per run.
    static let operationsPerCase = 10_000

    @Test(arguments: IOMMUFDModelPropertyTests.seeds)
    func ioasMatchesReferenceModel(seed: UInt64) throws {
        var run = try IOASModelRun(seed: seed)
        run.run(operations: Self.operationsPerCase)
        // The generator must reach the interesting rules, or the comparison proves little.
        let expected: Set<String> = [
            "210 EOVERFLOW", "210 EINVAL no R/W", "210 ENOENT", "211 EOVERFLOW", "211 EINVAL", "212 EINVAL length", "213 EINVAL iova", "213 EOVERFLOW",
            "213 EINVAL reserved", "213 EEXIST", "215 EFAULT", "map fixed", "map auto", "310 EINVAL", "310 EOVERFLOW", "312 ENOSPC",
            "222 EINVAL no R/W", "222 ENOENT", "223 EINVAL", "223 ENOENT", "214 EPERM", "copy", "copy pieces", "copy auto",
            "230 ENOENT", "230 EOVERFLOW", "230 EINVAL", "231 unmap all", "232 ENOENT partial", "233 partial progress", "234 ENOENT empty", "unmap",
            "unmap spanning", "203 EINVAL", "204 EADDRINUSE", "allow", "allow clear", "path: uapi", "path: swiftAPI",
        ]
        let missing = expected.subtracting(run.ruleHits.keys)
        #expect(
            run.mismatch != nil || missing.isEmpty,
            "seed 0x\(String(seed, radix: 16)): the generator never reached \(missing.sorted()) (hits: \(run.ruleHits.sorted { $0.key < $1.key }))")
        #expect(run.performed == Self.operationsPerCase || run.mismatch != nil, "seed 0x\(String(seed, radix: 16)): stopped after \(run.performed) operations")
    }
}

// MARK: - Reference model

/// An independent model of the IOASes of one context (iommufd.md §2.1–§2.4, §3).
private struct IOASModel {
    struct Area: Equatable, CustomStringConvertible {
        let iova: UInt64
        let length: UInt64
        /// The user address of the area's first byte.
        let host: UInt64
        /// The `iopt_pages` it maps (a MAP makes one, a COPY shares it).
        let pages: Int
        var last: UInt64 { iova + (length - 1) }
        var description: String { "[\(hexText(iova)), \(hexText(last))]←\(hexText(host))" }
    }

    struct Pages {
        /// The page-aligned user address of the first page.
        let uptr: UInt64
        let writable: Bool
    }

    struct Space {
        var areas: [Area] = []
        let reserved: [(first: UInt64, last: UInt64)]
        var allowed: [(first: UInt64, last: UInt64)] = []
        let alignment: UInt64
        /// A domain is attached: areas are pinned when mapped.
        let domain: Bool
    }

    enum Outcome: Equatable, CustomStringConvertible {
        case value(UInt64)
        case failed(Errno)
        var description: String {
            switch self {
            case .value(let value): "value \(hexText(value))"
            case .failed(let errno): errno.symbolicName
            }
        }
    }

    static let page: UInt64 = 0x1000
    static let hugePage: UInt64 = 2 << 20

    var spaces: [UInt32: Space]
    var pages: [Pages] = []
    /// Memory a domain can pin: the writable and the read-only allocation (inclusive bounds).
    let writable: (first: UInt64, last: UInt64)
    let readOnly: (first: UInt64, last: UInt64)

    init(writable: (UInt64, UInt64), readOnly: (UInt64, UInt64)) {
        self.writable = writable
        self.readOnly = readOnly
        spaces = [
            1: Space(reserved: [], alignment: 1, domain: false),
            2: Space(reserved: [(0xFEE0_0000, 0xFEEF_FFFF), (1 << 48, .max)], alignment: Self.page, domain: true),
        ]
    }

    private func overlaps(_ a: (first: UInt64, last: UInt64), _ first: UInt64, _ last: UInt64) -> Bool { a.first <= last && first <= a.last }

    /// The pages behind `[uptr, uptr + count)` can be pinned (`get_user_pages`, FOLL_WRITE when writable).
    private func pinnable(_ first: UInt64, _ last: UInt64, writable: Bool) -> Bool {
        (self.writable.first <= first && last <= self.writable.last) || (!writable && readOnly.first <= first && last <= readOnly.last)
    }

    // MARK: MAP

    mutating func map(ioas: UInt32, flags: UInt32, va: UInt64, length: UInt64, iova: UInt64) -> (Outcome, String) {
        let fixed = flags & 1 != 0, write = flags & 2 != 0, read = flags & 4 != 0
        // IOMMUFD-210: the iova field and the length against ULONG_MAX, then R/W, then the IOAS.
        if iova == .max || length == .max { return (.failed(.overflow), "210 EOVERFLOW") }
        if !write && !read { return (.failed(.invalidArgument), "210 EINVAL no R/W") }
        guard spaces[ioas] != nil else { return (.failed(.noSuchFileOrDirectory), "210 ENOENT") }
        // IOMMUFD-211: iopt_alloc_user_pages.
        if va.addingReportingOverflow(length).overflow { return (.failed(.overflow), "211 EOVERFLOW") }
        if length == 0 || length > .max - Self.page { return (.failed(.invalidArgument), "211 EINVAL") }
        let uptr = va & ~(Self.page - 1)
        pages.append(Pages(uptr: uptr, writable: write))
        let piece = Piece(pages: pages.count - 1, startByte: va - uptr, length: length)
        let result = insert(ioas: ioas, [piece], fixed: fixed ? iova : nil, write: write)
        if case .failed = result.0 { pages.removeLast() }
        return result
    }

    struct Piece {
        let pages: Int
        let startByte: UInt64
        let length: UInt64
    }

    /// `iopt_map_pages` (IOMMUFD-212..215): the pieces back to back at a fixed or allocated IOVA.
    private mutating func insert(ioas: UInt32, _ pieces: [Piece], fixed: UInt64?, write: Bool) -> (Outcome, String) {
        let space = spaces[ioas]!
        let mask = space.alignment - 1
        let length = pieces.reduce(0) { $0 + $1.length }
        if length & mask != 0 || length == 0 { return (.failed(.invalidArgument), "212 EINVAL length") }
        let iova: UInt64
        var rule: String
        if let fixed {
            // IOMMUFD-213, in iopt_check_iova's order.
            if fixed & mask != 0 { return (.failed(.invalidArgument), "213 EINVAL iova") }
            if fixed.addingReportingOverflow(length - 1).overflow { return (.failed(.overflow), "213 EOVERFLOW") }
            let last = fixed + (length - 1)
            if space.reserved.contains(where: { overlaps($0, fixed, last) }) { return (.failed(.invalidArgument), "213 EINVAL reserved") }
            if space.areas.contains(where: { $0.iova <= last && fixed <= $0.last }) { return (.failed(.fileExists), "213 EEXIST") }
            iova = fixed
            rule = "map fixed"
        } else {
            let first = pieces[0]
            switch allocate(space, length: length, address: pages[first.pages].uptr + first.startByte) {
            case .failure(let failure): return (.failed(failure.errno), failure.rule)
            case .success(let value): iova = value
            }
            rule = "map auto"
        }
        // IOMMUFD-214 per piece, then IOMMUFD-215: pinning (the pages each piece needs) when a domain exists.
        for piece in pieces {
            if write, !pages[piece.pages].writable { return (.failed(.notPermitted), "214 EPERM") }
            if (piece.startByte % Self.page) & mask != 0 { return (.failed(.invalidArgument), "214 EINVAL offset") }
        }
        if space.domain {
            // Each piece in turn: its pages pinned (EFAULT), then iommu_map, which refuses an IOVA or
            // length off the domain's page size (EINVAL) — a COPY of areas with unaligned lengths
            // from an IOAS without domains meets that.
            var next = iova
            for piece in pieces {
                let uptr = pages[piece.pages].uptr
                let first = uptr + (piece.startByte & ~(Self.page - 1))
                let last = uptr + ((piece.startByte + piece.length + Self.page - 1) & ~(Self.page - 1)) - 1
                if !pinnable(first, last, writable: pages[piece.pages].writable) { return (.failed(.badAddress), "215 EFAULT") }
                if (next | piece.length) & mask != 0 { return (.failed(.invalidArgument), "215 EINVAL iommu_map") }
                next &+= piece.length
            }
        }
        var next = iova
        for piece in pieces {
            let area = Area(iova: next, length: piece.length, host: pages[piece.pages].uptr + piece.startByte, pages: piece.pages)
            spaces[ioas]!.areas.insert(area, at: spaces[ioas]!.areas.firstIndex { $0.iova > next } ?? spaces[ioas]!.areas.endIndex)
            next &+= piece.length
        }
        if pieces.count > 1 { rule += " pieces" }
        return (.value(iova), rule)
    }

    struct Failure: Error {
        let errno: Errno
        let rule: String
    }

    /// `iopt_alloc_iova` (IOMMUFD-310..312).
    private func allocate(_ space: Space, length: UInt64, address: UInt64) -> Result<UInt64, Failure> {
        if length == 0 || length >= UInt64.max / 2 { return .failure(Failure(errno: .overflow, rule: "310 EOVERFLOW")) }
        var align: UInt64 = 1
        while align < length { align <<= 1 }
        if address != 0 { align = min(align, UInt64(1) << UInt64(address.trailingZeroBitCount)) }
        align = min(align, Self.hugePage)
        if align < space.alignment { return .failure(Failure(errno: .invalidArgument, rule: "310 EINVAL")) }
        let offset = address % Self.page
        let bounds: (first: UInt64, last: UInt64) = (Self.page, .max - Self.page)
        // The allowed spans: the ranges in order, touching ones joined, clipped to the bounds.
        var spans: [(first: UInt64, last: UInt64)] = []
        for range in space.allowed.sorted(by: { $0.first < $1.first }) {
            if let previous = spans.last, previous.last == .max || range.first <= previous.last + 1 {
                spans[spans.count - 1].last = max(previous.last, range.last)
            } else {
                spans.append(range)
            }
        }
        if space.allowed.isEmpty { spans = [bounds] }
        let used = (space.reserved + space.areas.map { ($0.iova, $0.last) }).sorted { $0.0 < $1.0 }
        for span in spans {
            let first = max(span.first, bounds.first), last = min(span.last, bounds.last)
            guard first <= last, Self.fit(first, last, length, align, offset) != nil else { continue }
            // The holes of reservations and areas inside the span, lowest first.
            var cursor = first
            var index = 0
            while cursor <= last {
                while index < used.count, used[index].1 < cursor { index += 1 }
                if index < used.count, used[index].0 <= cursor {
                    guard used[index].1 < last else { break }
                    cursor = used[index].1 + 1
                    continue
                }
                let holeLast = index < used.count ? min(last, used[index].0 - 1) : last
                if let start = Self.fit(cursor, holeLast, length, align, offset) { return .success(start) }
                guard holeLast < last else { break }
                cursor = holeLast + 1
            }
        }
        return .failure(Failure(errno: .noSpace, rule: "312 ENOSPC"))
    }

    /// `__alloc_iova_check_range`.
    private static func fit(_ first: UInt64, _ last: UInt64, _ length: UInt64, _ align: UInt64, _ offset: UInt64) -> UInt64? {
        guard !first.addingReportingOverflow(align - 1).overflow else { return nil }
        let start = ((first + align - 1) & ~(align - 1)) | offset
        guard start < last, last - start >= length - 1 else { return nil }
        return start
    }

    // MARK: COPY

    mutating func copy(dst: UInt32, src: UInt32, flags: UInt32, length: UInt64, dstIOVA: UInt64, srcIOVA: UInt64) -> (Outcome, String) {
        let fixed = flags & 1 != 0, write = flags & 2 != 0, read = flags & 4 != 0
        // IOMMUFD-222.
        if length == .max || srcIOVA == .max || dstIOVA == .max { return (.failed(.overflow), "222 EOVERFLOW") }
        if !write && !read { return (.failed(.invalidArgument), "222 EINVAL no R/W") }
        guard let source = spaces[src] else { return (.failed(.noSuchFileOrDirectory), "222 ENOENT") }
        // IOMMUFD-223: iopt_get_pages.
        if length == 0 { return (.failed(.invalidArgument), "223 EINVAL") }
        if srcIOVA.addingReportingOverflow(length - 1).overflow { return (.failed(.overflow), "223 EOVERFLOW") }
        let last = srcIOVA + (length - 1)
        var pieces: [Piece] = []
        var next = srcIOVA
        for area in source.areas where area.last >= srcIOVA && area.iova <= last {
            guard area.iova <= next else { break }
            let end = min(area.last, last)
            let uptr = pages[area.pages].uptr
            pieces.append(Piece(pages: area.pages, startByte: area.host - uptr + (next - area.iova), length: end - next + 1))
            if end == last { break }
            next = end + 1
        }
        guard pieces.reduce(0, { $0 + $1.length }) == length else { return (.failed(.noSuchFileOrDirectory), "223 ENOENT") }
        guard spaces[dst] != nil else { return (.failed(.noSuchFileOrDirectory), "222 ENOENT") }
        let (outcome, rule) = insert(ioas: dst, pieces, fixed: fixed ? dstIOVA : nil, write: write)
        if case .failed = outcome { return (outcome, rule) }
        return (outcome, pieces.count > 1 ? "copy pieces" : fixed ? "copy" : "copy auto")
    }

    // MARK: UNMAP

    mutating func unmap(ioas: UInt32, iova: UInt64, length: UInt64) -> (Outcome, String) {
        guard var space = spaces[ioas] else { return (.failed(.noSuchFileOrDirectory), "230 ENOENT") }
        if iova == 0, length == .max {
            let total = space.areas.reduce(0) { $0 + $1.length }
            spaces[ioas]!.areas = []
            return (.value(total), "231 unmap all")
        }
        if iova == .max || length == .max { return (.failed(.overflow), "230 EOVERFLOW") }
        if length == 0 { return (.failed(.invalidArgument), "230 EINVAL") }
        if iova.addingReportingOverflow(length - 1).overflow { return (.failed(.overflow), "230 EOVERFLOW") }
        let last = iova + (length - 1)
        var unmapped: UInt64 = 0
        var count = 0
        for area in space.areas where area.iova <= last && iova <= area.last {
            guard area.iova >= iova, area.last <= last else {
                spaces[ioas] = space
                return (.failed(.noSuchFileOrDirectory), unmapped > 0 ? "233 partial progress" : "232 ENOENT partial")
            }
            space.areas.removeAll { $0.iova == area.iova }
            unmapped += area.length
            count += 1
        }
        spaces[ioas] = space
        if unmapped == 0 { return (.failed(.noSuchFileOrDirectory), "234 ENOENT empty") }
        return (.value(unmapped), count > 1 ? "unmap spanning" : "unmap")
    }

    // MARK: ALLOW_IOVAS

    mutating func allow(ioas: UInt32, _ ranges: [(first: UInt64, last: UInt64)]) -> (Outcome, String) {
        guard let space = spaces[ioas] else { return (.failed(.noSuchFileOrDirectory), "203 ENOENT") }
        for (index, range) in ranges.enumerated() {
            if range.first >= range.last { return (.failed(.invalidArgument), "203 EINVAL") }
            if ranges[..<index].contains(where: { overlaps($0, range.first, range.last) }) { return (.failed(.invalidArgument), "203 EINVAL") }
        }
        if ranges.contains(where: { range in space.reserved.contains { overlaps($0, range.first, range.last) } }) {
            return (.failed(.addressInUse), "204 EADDRINUSE")
        }
        spaces[ioas]!.allowed = ranges
        return (.value(0), ranges.isEmpty ? "allow clear" : "allow")
    }
}

// MARK: - Operations and their generator

private enum IOASOperation: CustomStringConvertible {
    case map(ioas: UInt32, flags: UInt32, va: UInt64, length: UInt64, iova: UInt64)
    case copy(dst: UInt32, src: UInt32, flags: UInt32, length: UInt64, dstIOVA: UInt64, srcIOVA: UInt64)
    case unmap(ioas: UInt32, iova: UInt64, length: UInt64)
    case allow(ioas: UInt32, [(first: UInt64, last: UInt64)])

    var description: String {
        switch self {
        case let .map(ioas, flags, va, length, iova): "MAP ioas \(ioas) flags \(flags) va \(hexText(va)) length \(hexText(length)) iova \(hexText(iova))"
        case let .copy(dst, src, flags, length, dstIOVA, srcIOVA):
            "COPY \(src):\(hexText(srcIOVA)) → \(dst):\(hexText(dstIOVA)) flags \(flags) length \(hexText(length))"
        case let .unmap(ioas, iova, length): "UNMAP ioas \(ioas) iova \(hexText(iova)) length \(hexText(length))"
        case let .allow(ioas, ranges): "ALLOW_IOVAS ioas \(ioas) \(ranges.map { "[\(hexText($0.first)), \(hexText($0.last))]" })"
        }
    }

    var fdOp: FDOp {
        switch self {
        case let .map(ioas, flags, va, length, iova): .map(ioas, flags: flags, .absolute(va), length: length, iova: iova)
        case let .copy(dst, src, flags, length, dstIOVA, srcIOVA): .copy(dst: dst, src: src, flags: flags, length: length, dstIOVA: dstIOVA, srcIOVA: srcIOVA)
        case let .unmap(ioas, iova, length): .unmap(ioas, iova: iova, length: length)
        case let .allow(ioas, ranges): .allow(ioas, ranges.map { IOVARange(start: $0.first, last: $0.last) })
        }
    }
}

/// Random operations biased to the edges: overlaps and adjacency with existing areas, the MSI
/// window and aperture of IOAS 2, the top of the 64-bit space, unaligned values, user VAs with
/// sub-page offsets, in read-only memory or nowhere, allowed lists that leave little room.
private struct IOASGenerator {
    static let page = IOASModel.page
    var rng: SplitMix64
    let memory: (first: UInt64, size: UInt64)
    let readOnly: (first: UInt64, size: UInt64)

    mutating func chance(_ percent: Int) -> Bool { rng.below(100) < percent }
    mutating func pick<T>(_ values: [T]) -> T { values[rng.below(values.count)] }
    mutating func pages(_ count: Int) -> UInt64 { UInt64(rng.below(count)) * Self.page }

    mutating func next(_ model: IOASModel) -> IOASOperation {
        switch rng.below(100) {
        case 0..<40: return map(model)
        case 40..<55: return copy(model)
        case 55..<92: return unmap(model)
        default: return allow(model)
        }
    }

    mutating func ioas() -> UInt32 { chance(3) ? 3 : (chance(50) ? 1 : 2) }

    static let edges: [UInt64] = [
        0, page, 0xFEE0_0000 - page, 0xFEE0_0000, 0xFEEF_F000, 0xFEF0_0000, (1 << 48) - page, 1 << 48, .max - 0xfff, .max - 0x1fff, .max,
    ]

    mutating func iova(_ model: IOASModel, _ ioas: UInt32) -> UInt64 {
        let areas = model.spaces[ioas]?.areas ?? []
        var value: UInt64
        switch rng.below(100) {
        case 0..<45: value = 0x10_0000 + pages(96)
        case 45..<70:
            guard let area = areas.isEmpty ? nil : pick(areas) else { return 0x10_0000 + pages(96) }
            value = pick([area.iova, area.last &+ 1, area.iova &- Self.page, area.iova &+ pages(4), area.last &+ 1 &- Self.page])
        case 70..<82: value = pick(Self.edges)
        case 82..<90: value = 0xFEE0_0000 - 8 * Self.page + pages(16)
        default: value = rng.next() & ~(Self.page - 1)
        }
        if chance(8) { value &+= pick([1, 0x10, 0x800]) }
        return value
    }

    mutating func length() -> UInt64 {
        switch rng.below(100) {
        case 0..<3: return 0
        case 3..<4: return .max
        case 4..<5: return 1 << 63
        case 5..<80: return pages(8) + Self.page
        case 80..<92: return pages(64) + Self.page
        default: return pages(4) + pick([0x800, 0x10, 1])
        }
    }

    /// A user VA wholly inside one allocation (or, rarely, wholly outside any).
    mutating func va(length: UInt64) -> UInt64 {
        let offset: UInt64 = chance(10) ? pick([0x10, 0x800, 0x400]) : 0
        let choice = rng.below(100)
        if choice < 90 {
            let region = choice < 80 ? memory : readOnly
            // A page of margin at the end, so a sub-page offset never runs out of the allocation.
            if length < region.size - Self.page {
                return region.first + UInt64(rng.below(Int((region.size - Self.page - length) / Self.page) + 1)) * Self.page + offset
            }
        }
        return choice < 95 ? 0x1000 + pages(16) : .max - pages(4) - 0xfff
    }

    mutating func flags() -> UInt32 {
        let access: UInt32
        switch rng.below(100) {
        case 0..<72: access = 6
        case 72..<86: access = 4
        case 86..<96: access = 2
        default: access = 0
        }
        return access | (chance(65) ? 1 : 0)
    }

    mutating func map(_ model: IOASModel) -> IOASOperation {
        let ioas = ioas()
        let flags = flags()
        let length = length()
        // A non-FIXED map's iova field stays 0: the Swift API takes no IOVA then (its EOVERFLOW is a table row).
        return .map(ioas: ioas, flags: flags, va: va(length: length), length: length, iova: flags & 1 != 0 ? iova(model, ioas) : 0)
    }

    mutating func copy(_ model: IOASModel) -> IOASOperation {
        let src = ioas()
        let areas = model.spaces[src]?.areas ?? []
        var srcIOVA: UInt64, length: UInt64
        if let area = areas.isEmpty || chance(10) ? nil : pick(areas) {
            // A whole area, a part of it, or from it across the next ones (holes or not).
            srcIOVA = chance(60) ? area.iova : area.iova &+ pages(Int(max(area.length / Self.page, 1)))
            let index = areas.firstIndex { $0.iova == area.iova }!
            let end = areas[min(index + rng.below(3), areas.count - 1)].last &+ 1
            length = chance(75) ? end &- srcIOVA : pages(4) + Self.page
            if chance(5) { length = pick([0, .max]) }
        } else {
            srcIOVA = iova(model, src)
            length = self.length()
        }
        let dst = ioas()
        let flags = flags()
        return .copy(dst: dst, src: src, flags: flags, length: length, dstIOVA: flags & 1 != 0 ? iova(model, dst) : 0, srcIOVA: srcIOVA)
    }

    mutating func unmap(_ model: IOASModel) -> IOASOperation {
        let ioas = ioas()
        let areas = model.spaces[ioas]?.areas ?? []
        if chance(4) { return .unmap(ioas: ioas, iova: 0, length: .max) }
        if !areas.isEmpty, chance(65) {
            let first = rng.below(areas.count)
            let lastIndex = min(first + rng.below(4), areas.count - 1)
            var start = areas[first].iova
            var end = areas[lastIndex].last &+ 1
            switch rng.below(10) {
            case 0: start &-= Self.page
            case 1: start &+= pick([Self.page, 1])
            case 2: end &-= Self.page
            case 3: end &+= pages(3)
            case 4: start &-= 0x10
            default: break
            }
            return .unmap(ioas: ioas, iova: start, length: end &- start)
        }
        return .unmap(ioas: ioas, iova: iova(model, ioas), length: length())
    }

    mutating func allow(_ model: IOASModel) -> IOASOperation {
        let ioas = ioas()
        if chance(25) { return .allow(ioas: ioas, []) }
        var ranges: [(first: UInt64, last: UInt64)] = []
        var start: UInt64 = chance(15) ? 0xFEE0_0000 - 16 * Self.page : 0x10_0000 + pages(64)
        for _ in 0..<(1 + rng.below(3)) {
            let size = pages(chance(30) ? 1024 : 64) + Self.page
            ranges.append((start, start &+ size &- 1))
            start = start &+ size &+ (chance(40) ? 0 : pages(16))
            if chance(5) { ranges.append(ranges.last!) }
        }
        if chance(3) { ranges.append((0x20_0000, 0x20_0000)) }
        return .allow(ioas: ioas, ranges)
    }
}

// MARK: - Runner

/// One seeded run: a real context and the model, driven by the same operations.
private struct IOASModelRun {
    let seed: UInt64
    let fixture: IOMMUFDFixture
    let calls: [APIPath: FDCalls]
    var model: IOASModel
    var generator: IOASGenerator
    var ruleHits: [String: Int] = [:]
    var mismatch: String?
    var performed = 0
    private var recent: [String] = []

    init(seed: UInt64) throws {
        self.seed = seed
        fixture = try IOMMUFDFixture(IOMMUFDConfig(ioas: 2))
        let swift = FDCalls(path: .swiftAPI, fixture: fixture)
        calls = [.swiftAPI: swift, .uapi: FDCalls(path: .uapi, fixture: fixture)]
        // The NVMe (ID 3) attached to IOAS 2 through an auto domain (HWPT 4).
        for step in FD.bound(FD.nvme) + [.attach(FD.nvme, 2)] {
            let (outcome, error) = swift.run(step)
            if outcome.failed { throw error ?? VFIOErrorForTest.setup }
        }
        let memory = fixture.memory, readOnly = fixture.readOnly
        model = IOASModel(writable: (memory.address, memory.last), readOnly: (readOnly.address, readOnly.last))
        generator = IOASGenerator(rng: SplitMix64(seed: seed), memory: (memory.address, memory.size), readOnly: (readOnly.address, readOnly.size))
    }

    mutating func run(operations: Int) {
        defer { calls[.swiftAPI]!.closeAll() }
        var paths = SplitMix64(seed: ~seed)
        for index in 0..<operations {
            let operation = generator.next(model)
            let path: APIPath = paths.below(3) == 0 ? .uapi : .swiftAPI
            guard step(operation, path: path, index: index) else { return }
            performed += 1
        }
    }

    private mutating func step(_ operation: IOASOperation, path: APIPath, index: Int) -> Bool {
        recent.append("\(operation) via \(path)")
        if recent.count > 8 { recent.removeFirst() }
        let (expected, rule) = Self.apply(operation, to: &model)
        ruleHits[rule, default: 0] += 1
        ruleHits["path: \(path)", default: 0] += 1
        let (outcome, error) = calls[path]!.run(operation.fdOp)
        let actual: IOASModel.Outcome
        switch outcome {
        case .value(let value): actual = .value(value)
        case .failure(let errno): actual = .failed(errno)
        default: actual = .failed(.ioError)
        }
        if actual != expected {
            fail(index, operation, "model (\(rule)) expects \(expected), the context gave \(actual)\(error.map { " — \($0)" } ?? "")")
            return false
        }
        if let difference = stateDifference() {
            fail(index, operation, "state differs after the operation: \(difference)")
            return false
        }
        return true
    }

    private static func apply(_ operation: IOASOperation, to model: inout IOASModel) -> (IOASModel.Outcome, String) {
        switch operation {
        case let .map(ioas, flags, va, length, iova): model.map(ioas: ioas, flags: flags, va: va, length: length, iova: iova)
        case let .copy(dst, src, flags, length, dstIOVA, srcIOVA): model.copy(dst: dst, src: src, flags: flags, length: length, dstIOVA: dstIOVA, srcIOVA: srcIOVA)
        case let .unmap(ioas, iova, length): model.unmap(ioas: ioas, iova: iova, length: length)
        case let .allow(ioas, ranges): model.allow(ioas: ioas, ranges)
        }
    }

    /// The first difference between the context's IOASes and the model's, if any.
    private func stateDifference() -> String? {
        for id: UInt32 in [1, 2] {
            let (areas, allowed) = fixture.context.state.withLock { state -> ([IOASModel.Area], [IOVARange]) in
                guard case .ioas(let ioas) = state.objects[id] else { return ([], []) }
                return (ioas.areas.mappings.map { IOASModel.Area(iova: $0.iova, length: $0.length, host: $0.hostAddress, pages: 0) }, ioas.allowed)
            }
            let expected = model.spaces[id]!.areas.map { IOASModel.Area(iova: $0.iova, length: $0.length, host: $0.host, pages: 0) }
            if areas != expected {
                let index = zip(areas, expected).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(areas.count, expected.count)
                return "IOAS \(id) areas: context has \(areas.count), model \(expected.count); first difference at #\(index): "
                    + "context \(index < areas.count ? areas[index].description : "none") vs model \(index < expected.count ? expected[index].description : "none")"
            }
            let modelAllowed = model.spaces[id]!.allowed.map { IOVARange(start: $0.first, last: $0.last) }
            if allowed != modelAllowed { return "IOAS \(id) allowed: context \(allowed) vs model \(modelAllowed)" }
        }
        if model.spaces[2]!.areas.isEmpty, fixture.process.lockedBytes != 0 {
            return "IOAS 2 has no areas but \(hexText(fixture.process.lockedBytes)) bytes stay pinned"
        }
        return nil
    }

    private mutating func fail(_ index: Int, _ operation: IOASOperation, _ what: String) {
        let message = """
            IOAS model mismatch — seed 0x\(String(seed, radix: 16)), operation #\(index): \(operation)
            \(what)
            last operations: \(recent.joined(separator: "; "))
            """
        mismatch = message
        Issue.record(Comment(rawValue: message))
    }
}

private enum VFIOErrorForTest: Error { case setup }
