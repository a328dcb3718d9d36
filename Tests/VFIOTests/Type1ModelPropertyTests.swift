import PCIBus
import SystemPackage
import Testing

@testable import VFIO

/// Model-based property test of `VFIOContainer` with the type1 backend: long seeded random
/// sequences of MAP_DMA, UNMAP_DMA, UNMAP_ALL, SET_IOMMU and group SET/UNSET_CONTAINER run
/// against a real container (groups 22 and 27 of `devices/default`, VT-d) and against a small
/// reference model written here from `kernel-semantics.md` §3.3–§3.7 and §4.4–§4.5. The model
/// shares no code with the production `IOVAList`, `DMAMappingTable` or `Type1IOMMU`: mappings are
/// a sorted array, the allowed-IOVA list is a constant pair of ranges, host memory is a list of
/// address ranges. After every operation the outcome (success, errno, unmapped size) must agree,
/// and so must the whole observable state (mappings, `dma_avail`, IOVA ranges, IOMMU type, locked
/// bytes, groups) — every `fullCheckInterval` operations, after every group operation, and at the end.
/// A mismatch stops the case and reports the seed, the operation index and the operation.
@Suite struct Type1ModelPropertyTests {
    static let seeds: [UInt64] = [0x0005_EED0_0001, 0x00C0_FFEE, 0xDEAD_BEEF_F00D, 42]
    /// 2 IOMMU types × 4 seeds × 25,000 = 200,000 operations per run.
    static let operationsPerCase = 25_000
    /// Full-state comparison interval in operations (always also after every group, SET_IOMMU and
    /// UNMAP_ALL operation, and at the end). The comparison is cheap, so it runs after every one.
    static let fullCheckInterval = 1
    /// Small, so that T1-18 (ENOSPC) is reached often.
    static let dmaEntryLimit: UInt32 = 48

    @Test(arguments: [VFIOExtension.type1, .type1v2], Type1ModelPropertyTests.seeds)
    func containerMatchesReferenceModel(type: VFIOExtension, seed: UInt64) throws {
        var run = try ModelRun(type: type, seed: seed, entryLimit: Self.dmaEntryLimit)
        run.run(operations: Self.operationsPerCase, fullCheckInterval: Self.fullCheckInterval)
        guard run.mismatch == nil else { return }
        // The generator must actually reach the interesting rules, or the comparison proves little.
        var expected: Set<String> = [
            "VG-10", "VG-13", "VG-22", "VG-24", "T1-13", "T1-14", "T1-15", "T1-16", "T1-17", "T1-18", "T1-19",
            "T1-20 EFAULT", "T1-20 mapped", "T1-32", "T1-32 overflow", "T1-33", "T1-33 nothing", "T1-38",
            "T1-60", "set IOMMU", "detach", "detach last", "attach", "attach to IOMMU",
            "edge: mapped up to the MSI window", "edge: mapped right after the MSI window", "edge: mapped up to 2^48 - 1",
        ]
        expected.formUnion(type == .type1v2 ? ["T1-32 bisect"] : ["T1-34 starts inside", "T1-34 more than asked"])
        let missing = expected.subtracting(run.ruleHits.keys)
        #expect(missing.isEmpty, "seed 0x\(String(seed, radix: 16)) \(type): the generator never reached \(missing.sorted()) (hits: \(run.ruleHits.sorted { $0.key < $1.key }))")
    }
}

// MARK: - Reference model

/// An independent model of one type1 container (spec §3.3–§3.7, §4.4–§4.5).
fileprivate struct Type1ReferenceModel {
    struct Mapping: Equatable, CustomStringConvertible {
        let iova: UInt64
        let size: UInt64
        let vaddr: UInt64
        var last: UInt64 { iova + (size - 1) }
        var description: String { "[\(hex(iova)), \(hex(last))]←\(hex(vaddr))" }
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

    /// The minimum IOMMU page size on VT-d (and the host page size): T1-16, T1-32.
    static let pageSize: UInt64 = 0x1000
    static let msiFirst: UInt64 = 0xfee0_0000
    static let msiLast: UInt64 = 0xfeef_ffff
    static let apertureLast: UInt64 = (1 << 48) - 1
    /// T1-40: the VT-d aperture `[0, 2^48-1]` minus the MSI window, for groups 22 and 27 alike,
    /// so attaching or detaching one of them while the other stays never changes it (T1-43).
    static let groupIOVARanges: [(first: UInt64, last: UInt64)] = [(0, msiFirst - 1), (msiLast + 1, apertureLast)]

    let v2: Bool
    let entryLimit: UInt32
    /// Sorted by address.
    let memory: [MemoryRegion]
    /// Sorted by IOVA, disjoint, never coalesced (T1-22).
    private(set) var mappings: [Mapping] = []
    /// `dma_avail` (T1-01, T1-18).
    private(set) var dmaAvail: UInt32
    /// `VFIO_SET_IOMMU` done and not released since (VG-13, VG-22).
    private(set) var iommuSet: Bool
    /// Group IDs in the container.
    private(set) var groups: Set<Int>

    init(v2: Bool, entryLimit: UInt32, memory: [MemoryRegion], groups: Set<Int>, iommuSet: Bool) {
        self.v2 = v2
        self.entryLimit = entryLimit
        self.memory = memory.sorted { $0.first < $1.first }
        self.groups = groups
        self.iommuSet = iommuSet
        dmaAvail = entryLimit
    }

    /// The allowed-IOVA list GET_INFO reports (T1-71); empty without an IOMMU.
    var allowedRanges: [(first: UInt64, last: UInt64)] { iommuSet && !groups.isEmpty ? Self.groupIOVARanges : [] }

    /// T1-91: every pinned mapping is charged in full.
    var lockedBytes: UInt64 { mappings.reduce(0) { $0 + $1.size } }

    /// `VFIO_IOMMU_MAP_DMA` (T1-13..T1-20 in the spec's order, VG-24 before any of them).
    /// Returns the outcome and the rule that decided it.
    mutating func map(flags: DMAMapFlags, vaddr: UInt64, iova: UInt64, size: UInt64) -> (Outcome, String) {
        guard iommuSet else { return (.failed(.invalidArgument), "VG-24") }
        // T1-13
        guard size != 0 else { return (.failed(.invalidArgument), "T1-13") }
        // T1-14: the inclusive ends `iova + size - 1` and `vaddr + size - 1` must not wrap.
        if iova.addingReportingOverflow(size - 1).overflow || vaddr.addingReportingOverflow(size - 1).overflow {
            return (.failed(.overflow), "T1-14")
        }
        // T1-15: a normal map needs READ or WRITE; a VADDR update takes neither.
        let updatesVaddr = flags.contains(.vaddr)
        let protection = flags.intersection([.read, .write])
        if protection.isEmpty != updatesVaddr { return (.failed(.invalidArgument), "T1-15") }
        // T1-16: size, iova and vaddr aligned to the minimum page size.
        if (size | iova | vaddr) % Self.pageSize != 0 { return (.failed(.invalidArgument), "T1-16") }
        let last = iova + (size - 1)
        // T1-17: any overlap with an existing mapping.
        let overlaps = mappings.contains { $0.iova <= last && iova <= $0.last }
        if updatesVaddr {
            // T1-17 / T1-60: no mapping there → ENOENT; a mapping whose vaddr is still valid (this
            // test never invalidates one) → EINVAL.
            return (.failed(overlaps ? .invalidArgument : .noSuchFileOrDirectory), "T1-60")
        }
        if overlaps { return (.failed(.fileExists), "T1-17") }
        // T1-18: out of entries.
        if dmaAvail == 0 { return (.failed(.noSpace), "T1-18") }
        // T1-19: inside ONE allowed range (an empty list allows everything).
        let ranges = allowedRanges
        if !ranges.isEmpty, !ranges.contains(where: { $0.first <= iova && last <= $0.last }) {
            return (.failed(.invalidArgument), "T1-19")
        }
        // T1-20: every byte of the vaddr range is memory the process allocated, writable when the
        // device may write it; otherwise pinning fails with EFAULT and nothing is created.
        if !hostMemoryCovers(vaddr: vaddr, size: size, write: protection.contains(.write)) {
            return (.failed(.badAddress), "T1-20 EFAULT")
        }
        let index = mappings.firstIndex { $0.iova > iova } ?? mappings.count
        mappings.insert(Mapping(iova: iova, size: size, vaddr: vaddr), at: index)
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

    /// `VFIO_IOMMU_UNMAP_DMA` without flags (T1-32..T1-34).
    mutating func unmap(iova: UInt64, size: UInt64) -> (Outcome, String) {
        guard iommuSet else { return (.failed(.invalidArgument), "VG-24") }
        // T1-32 step 3, then step 4 (size 0 / unaligned, then overflow).
        guard iova % Self.pageSize == 0 else { return (.failed(.invalidArgument), "T1-32") }
        guard size != 0, size % Self.pageSize == 0 else { return (.failed(.invalidArgument), "T1-32") }
        let (last, wraps) = iova.addingReportingOverflow(size - 1)
        if wraps { return (.failed(.overflow), "T1-32 overflow") }
        let startsInside = mappings.contains { $0.iova < iova && iova <= $0.last }
        if v2 {
            // T1-32 step 6: no bisection of a mapping at either end.
            if startsInside || mappings.contains(where: { $0.iova <= last && last < $0.last }) {
                return (.failed(.invalidArgument), "T1-32 bisect")
            }
        } else if startsInside {
            // T1-34: v1 stops at the first mapping that starts before `iova`: nothing unmapped.
            return (.unmapped(0), "T1-34 starts inside")
        }
        // T1-33 / T1-34: every mapping that STARTS in the range goes, whole.
        let removed = mappings.filter { iova <= $0.iova && $0.iova <= last }
        mappings.removeAll { iova <= $0.iova && $0.iova <= last }
        dmaAvail += UInt32(removed.count)
        let total = removed.reduce(0) { $0 + $1.size }
        let rule = total == 0 ? "T1-33 nothing" : total > size ? "T1-34 more than asked" : "T1-33"
        return (.unmapped(total), rule)
    }

    /// `VFIO_IOMMU_UNMAP_DMA` with `VFIO_DMA_UNMAP_FLAG_ALL` (T1-32, T1-38).
    mutating func unmapAll(iova: UInt64, size: UInt64) -> (Outcome, String) {
        guard iommuSet else { return (.failed(.invalidArgument), "VG-24") }
        guard iova % Self.pageSize == 0 else { return (.failed(.invalidArgument), "T1-32") }
        guard iova == 0, size == 0 else { return (.failed(.invalidArgument), "T1-32") }
        let total = lockedBytes
        mappings.removeAll()
        dmaAvail = entryLimit
        return (.unmapped(total), "T1-38")
    }

    /// `VFIO_SET_IOMMU` (VG-22, T1-02): needs a group and no IOMMU yet; a fresh type1 instance
    /// with a full entry budget attaches every group (T1-50).
    mutating func setIOMMU() -> (Outcome, String) {
        guard !groups.isEmpty, !iommuSet else { return (.failed(.invalidArgument), "VG-22") }
        iommuSet = true
        dmaAvail = entryLimit
        return (.done, "set IOMMU")
    }

    /// `VFIO_GROUP_UNSET_CONTAINER` (VG-13, T1-56): the last group takes every mapping and the
    /// IOMMU with it.
    mutating func detach(group: Int) -> (Outcome, String) {
        guard groups.contains(group) else { return (.failed(.invalidArgument), "VG-13") }
        groups.remove(group)
        guard groups.isEmpty else { return (.done, "detach") }
        mappings.removeAll()
        dmaAvail = entryLimit
        iommuSet = false
        return (.done, "detach last")
    }

    /// `VFIO_GROUP_SET_CONTAINER` (VG-10, VG-11): with an IOMMU set the group is attached at once
    /// (T1-50); same aperture and reserved regions, so the IOVA list and mappings are unchanged.
    mutating func attach(group: Int) -> (Outcome, String) {
        guard !groups.contains(group) else { return (.failed(.invalidArgument), "VG-10") }
        groups.insert(group)
        return (.done, iommuSet ? "attach to IOMMU" : "attach")
    }
}

// MARK: - Operations and generator

fileprivate enum Type1ModelOperation: CustomStringConvertible {
    case map(flags: DMAMapFlags, vaddr: UInt64, iova: UInt64, size: UInt64)
    case unmap(iova: UInt64, size: UInt64)
    case unmapAll(iova: UInt64, size: UInt64)
    case setIOMMU
    case detach(group: Int)
    case attach(group: Int)

    var description: String {
        switch self {
        case let .map(flags, vaddr, iova, size):
            let names = [(DMAMapFlags.read, "READ"), (.write, "WRITE"), (.vaddr, "VADDR")].filter { flags.contains($0.0) }.map(\.1)
            return "MAP_DMA flags=[\(names.joined(separator: "|"))] vaddr=\(hex(vaddr)) iova=\(hex(iova)) size=\(hex(size))"
        case let .unmap(iova, size): return "UNMAP_DMA iova=\(hex(iova)) size=\(hex(size))"
        case let .unmapAll(iova, size): return "UNMAP_DMA flags=ALL iova=\(hex(iova)) size=\(hex(size))"
        case .setIOMMU: return "SET_IOMMU"
        case .detach(let group): return "group \(group) UNSET_CONTAINER"
        case .attach(let group): return "group \(group) SET_CONTAINER"
        }
    }
}

/// Random operations biased towards the edges that matter: overlaps and adjacency with existing
/// mappings, the MSI window edges, the top of the 48-bit aperture, the top of the 64-bit space,
/// unaligned values, vaddrs straddling or outside host memory.
fileprivate struct Type1OperationGenerator {
    static let page = Type1ReferenceModel.pageSize
    var rng: SplitMix64
    let groupIDs: [Int]
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
        if model.groups.isEmpty, chance(40) { return .attach(group: pick(groupIDs)) }
        if !model.iommuSet, !model.groups.isEmpty, chance(30) { return .setIOMMU }
        if filling { return chance(3) ? unmap(model) : map(model) }
        switch rng.below(1000) {
        case 0..<4: return .setIOMMU
        case 4..<11: return .detach(group: pick(groupIDs))
        case 11..<16: return .attach(group: pick(groupIDs))
        case 16..<26: return .unmapAll(iova: chance(80) ? 0 : pick([Self.page, 1, 0]), size: chance(80) ? 0 : pick([Self.page, 1, 0]))
        case 26..<400: return unmap(model)
        default: return map(model)
        }
    }

    // MARK: IOVAs and sizes

    /// Centres of the dense clusters where mappings collide.
    static let clusterCentres: [UInt64] = [
        0, 0x10_0000, Type1ReferenceModel.msiFirst, Type1ReferenceModel.msiLast + 1, Type1ReferenceModel.apertureLast + 1, 0,
        0x4000_0000, 0x1_0000_0000,
    ]
    static let edges: [UInt64] = [
        0, page, Type1ReferenceModel.msiFirst - page, Type1ReferenceModel.msiFirst, Type1ReferenceModel.msiLast,
        Type1ReferenceModel.msiLast + 1, Type1ReferenceModel.msiLast + 1 - page, Type1ReferenceModel.apertureLast,
        Type1ReferenceModel.apertureLast + 1 - page, Type1ReferenceModel.apertureLast + 1, UInt64.max, UInt64.max - (page - 1),
        UInt64.max - (2 * page - 1), 1 << 63,
    ]

    mutating func iova(_ model: Type1ReferenceModel) -> UInt64 {
        var value: UInt64
        switch rng.below(100) {
        case 0..<45:
            // ±32 pages (sometimes ±256) around a cluster centre; index 5 stands for the top of the
            // 64-bit space (the last pages before 2^64).
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
            // Up to an edge: the MSI window, the aperture top, or exactly 2^64 - 1 (valid, T1-14) or one page past it.
            let target = pick([Type1ReferenceModel.msiFirst, Type1ReferenceModel.msiLast + 1, Type1ReferenceModel.apertureLast + 1, 0, 0])
            let size = target &- iova
            return chance(20) ? size &+ Self.page : size
        case 83..<90: return 1 << UInt64(12 + rng.below(52))
        case 90..<95: return UInt64.max - pages(4)
        default: return pages(8) + 1 + UInt64(rng.below(Int(Self.page - 1)))
        }
    }

    mutating func vaddr(size: UInt64) -> UInt64 {
        let sizePages = Int(min(size / Self.page, 1 << 30))
        var value: UInt64
        switch rng.below(100) {
        case 0..<74:
            // Inside the pool; the last few positions straddle its end.
            let slots = max(Int(pool.size / Self.page) - sizePages, 0) + 3
            value = pool.first + pages(slots)
        case 74..<82:
            let slots = max(Int(readOnly.size / Self.page) - sizePages, 0) + 2
            value = readOnly.first + pages(slots)
        case 82..<87: value = pool.first &- pages(4) &- Self.page
        case 87..<92: value = pick([0, Self.page, 1 << 40, rng.next() & ~(Self.page - 1)])
        case 92..<96: value = UInt64.max &- pages(8) &- (Self.page - 1)
        default: value = pool.first + pages(64) + 1 + UInt64(rng.below(Int(Self.page - 1)))
        }
        return value
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

    mutating func unmap(_ model: Type1ReferenceModel) -> Type1ModelOperation {
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
            return .unmap(iova: start, size: end &- start)
        }
        let iova = iova(model)
        return .unmap(iova: iova, size: size(from: iova))
    }
}

// MARK: - Runner

/// One seeded run: a real container and the model, driven by the same operations.
fileprivate struct ModelRun {
    let type: VFIOExtension
    let seed: UInt64
    let setup: VFIOTestMachine.Setup
    let readOnly: HostMemory
    var model: Type1ReferenceModel
    var generator: Type1OperationGenerator
    /// How often each deciding rule was hit (coverage of the generator).
    var ruleHits: [String: Int] = [:]
    var mismatch: String?
    /// The last operations, for the failure message.
    private var recent: [Type1ModelOperation] = []

    init(type: VFIOExtension, seed: UInt64, entryLimit: UInt32) throws {
        self.type = type
        self.seed = seed
        setup = try VFIOTestMachine.setup(
            groups: [22, 27], type: type, options: VFIOContainerOptions(dmaEntryLimit: entryLimit), memory: 4 << 20)
        readOnly = try setup.system.process.allocate(size: 64 << 10, writable: false)
        let memory = [
            Type1ReferenceModel.MemoryRegion(first: setup.memory.address, last: setup.memory.last, writable: true),
            Type1ReferenceModel.MemoryRegion(first: readOnly.address, last: readOnly.last, writable: false),
        ]
        model = Type1ReferenceModel(
            v2: type == .type1v2, entryLimit: entryLimit, memory: memory, groups: Set(setup.groups.map(\.id)), iommuSet: true)
        generator = Type1OperationGenerator(
            rng: SplitMix64(seed: seed), groupIDs: setup.groups.map(\.id), pool: (setup.memory.address, setup.memory.size),
            readOnly: (readOnly.address, readOnly.size))
    }

    var container: VFIOContainer { setup.container }

    mutating func run(operations: Int, fullCheckInterval: Int) {
        if let difference = stateDifference() {
            fail(index: -1, operation: nil, "initial state differs: \(difference)")
            return
        }
        for index in 0..<operations {
            let operation = generator.next(model)
            recent.append(operation)
            if recent.count > 8 { recent.removeFirst() }
            let (expected, rule) = Self.apply(operation, to: &model)
            ruleHits[rule, default: 0] += 1
            if case let .map(_, _, iova, size) = operation, expected == .done {
                // T1-19 at the edges of the two allowed ranges.
                if iova + (size - 1) == Type1ReferenceModel.msiFirst - 1 { ruleHits["edge: mapped up to the MSI window", default: 0] += 1 }
                if iova == Type1ReferenceModel.msiLast + 1 { ruleHits["edge: mapped right after the MSI window", default: 0] += 1 }
                if iova + (size - 1) == Type1ReferenceModel.apertureLast { ruleHits["edge: mapped up to 2^48 - 1", default: 0] += 1 }
            }
            let (actual, error) = perform(operation)
            if actual != expected {
                fail(
                    index: index, operation: operation,
                    "model (\(rule)) expects \(expected), container gave \(actual)\(error.map { " — \($0)" } ?? "")")
                return
            }
            let structural: Bool
            switch operation {
            case .map, .unmap: structural = false
            default: structural = true
            }
            if structural || index % fullCheckInterval == 0 || index == operations - 1, let difference = stateDifference() {
                fail(index: index, operation: operation, "state differs after the operation: \(difference)")
                return
            }
        }
    }

    private static func apply(_ operation: Type1ModelOperation, to model: inout Type1ReferenceModel) -> (Type1ReferenceModel.Outcome, String) {
        switch operation {
        case let .map(flags, vaddr, iova, size): model.map(flags: flags, vaddr: vaddr, iova: iova, size: size)
        case let .unmap(iova, size): model.unmap(iova: iova, size: size)
        case let .unmapAll(iova, size): model.unmapAll(iova: iova, size: size)
        case .setIOMMU: model.setIOMMU()
        case .detach(let group): model.detach(group: group)
        case .attach(let group): model.attach(group: group)
        }
    }

    private func group(_ id: Int) -> VFIOGroup { setup.groups.first { $0.id == id }! }

    private func perform(_ operation: Type1ModelOperation) -> (Type1ReferenceModel.Outcome, VFIOError?) {
        do throws(VFIOError) {
            switch operation {
            case let .map(flags, vaddr, iova, size):
                try container.map(DMAMapRequest(flags: flags, vaddr: vaddr, iova: iova, size: size))
                return (.done, nil)
            case let .unmap(iova, size):
                return (.unmapped(try container.unmap(DMAUnmapRequest(iova: iova, size: size)).size), nil)
            case let .unmapAll(iova, size):
                return (.unmapped(try container.unmap(DMAUnmapRequest(flags: .all, iova: iova, size: size)).size), nil)
            case .setIOMMU:
                try container.setIOMMU(type)
                return (.done, nil)
            case .detach(let id):
                try group(id).unsetContainer()
                return (.done, nil)
            case .attach(let id):
                try group(id).setContainer(container)
                return (.done, nil)
            }
        } catch {
            return (.failed(error.errno), error)
        }
    }

    /// The first difference between the container's observable state and the model's, if any.
    private func stateDifference() -> String? {
        let actual = container.mappings.map { Type1ReferenceModel.Mapping(iova: $0.iova, size: $0.size, vaddr: $0.vaddr) }
        if actual != model.mappings {
            let index = zip(actual, model.mappings).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(actual.count, model.mappings.count)
            return "mappings: container has \(actual.count), model \(model.mappings.count); first difference at #\(index): "
                + "container \(index < actual.count ? actual[index].description : "none") vs model \(index < model.mappings.count ? model.mappings[index].description : "none")"
        }
        let expectedType: VFIOExtension? = model.iommuSet ? type : nil
        if container.iommuType != expectedType {
            return "iommuType: container \(container.iommuType.map(\.description) ?? "nil") vs model \(expectedType.map(\.description) ?? "nil")"
        }
        do throws(VFIOError) {
            let info = try container.info()
            guard model.iommuSet else { return "GET_INFO succeeded without an IOMMU (VG-24 expects EINVAL)" }
            if info.dmaAvailable != model.dmaAvail { return "dma_avail: container \(info.dmaAvailable) vs model \(model.dmaAvail)" }
            let ranges = info.iovaRanges.map { "[\(hex($0.start)), \(hex($0.end))]" }
            let expectedRanges = model.allowedRanges.map { "[\(hex($0.first)), \(hex($0.last))]" }
            if ranges != expectedRanges { return "IOVA ranges: container \(ranges) vs model \(expectedRanges)" }
        } catch {
            if model.iommuSet { return "GET_INFO failed with an IOMMU set: \(error)" }
            if error.errno != .invalidArgument { return "GET_INFO without an IOMMU: \(error.errno.symbolicName), expected EINVAL (VG-24)" }
        }
        if setup.system.process.lockedBytes != model.lockedBytes {
            return "locked bytes: process \(hex(setup.system.process.lockedBytes)) vs model \(hex(model.lockedBytes))"
        }
        let groups = Set(container.groups.map(\.id))
        if groups != model.groups { return "groups: container \(groups.sorted()) vs model \(model.groups.sorted())" }
        return nil
    }

    private mutating func fail(index: Int, operation: Type1ModelOperation?, _ what: String) {
        let message = """
            type1 model mismatch — seed 0x\(String(seed, radix: 16)) (\(type)), operation #\(index): \(operation.map(\.description) ?? "(setup)")
            \(what)
            last operations: \(recent.map(\.description).joined(separator: "; "))
            """
        mismatch = message
        Issue.record(Comment(rawValue: message))
    }
}

fileprivate func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }
