import Foundation
import IOMMU
import Machine
import PCIBus
import UserMemory
import VFIO

/// The figures behind the limit tests: `container-1m-bytes` (resident bytes per MAP_DMA entry with
/// a million one-page entries in one type1v2 container on `devices/default` group 27 — mapping
/// table, page tables and allocator overhead — against the 48 bytes of one `DMAMapping` and one
/// leaf entry), `container-1m-map` (ns per MAP_DMA while filling it, against the domain's own map
/// of the same pages), `core-10k` (ms to generate, link, group and give an IOMMU core to 10,000
/// functions in memory, against generating, linking and grouping alone) and `core-10k-bytes`
/// (resident bytes per function while building that machine, against the 4 KiB of config space
/// each carries). Memory is the growth of the resident set, so it means something only when
/// nothing was freed before (`bench` runs this suite first): malloc keeps freed memory and reuses it.
struct LimitsBenchmark {
    let repetitions: Int
    static let entries: UInt64 = 1_000_000
    static let page: UInt64 = 0x1000
    static let base: UInt64 = 1 << 32

    func run() throws -> [BenchResult] {
        // Memory first, each kept alive while the next grows, so no figure reuses freed heap.
        let (container, bytesPerEntry, mapNanoseconds) = try filledContainer()
        let (machine, bytesPerFunction) = try topologyMemory()
        withExtendedLifetime(container) {}
        let rawNanoseconds = try domainMapNanoseconds(profile: machine.profile)
        let (core, grouping) = try topologyMilliseconds()
        return [
            .against(
                "container-1m-bytes", bytesPerEntry, "B", baseline: 48,
                note: "resident-set growth per entry filling one container with 1M one-page MAP_DMA entries (mapping table, page tables, malloc overhead); baseline: a 40-byte DMAMapping and an 8-byte leaf entry"),
            .against(
                "container-1m-map", mapNanoseconds, "ns", baseline: rawNanoseconds,
                note: "ns per MAP_DMA while filling a container to 1M entries (checks, pinning, mapping table, page table); baseline: the domain's own map of the same pages"),
            .against(
                "core-10k", core, "ms", baseline: grouping,
                note: "generate 10,000 functions, link, group and build the IOMMU core (a DMA-FQ domain per group), in memory; baseline: the same without the core"),
            .against(
                "core-10k-bytes", bytesPerFunction, "B", baseline: 4096,
                note: "resident-set growth per function while building the 10k machine (config space, topology, groups, core, domains); baseline: its 4 KiB of config space"),
        ]
    }

    /// The resident set (`/proc/self/statm`, second field, in pages).
    static var residentBytes: Int {
        let statm = (try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8)) ?? ""
        let pages = statm.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// A type1v2 container on `devices/default` group 27 filled with a million one-page entries
    /// (IOVAs in order, host pages cycling through 16 MiB): resident bytes and ns per entry.
    private func filledContainer() throws -> (VFIOContainer, bytesPerEntry: Double, mapNanoseconds: Double) {
        let system = try SimulatedMachine.load(machine: "default").vfio
        let container = VFIOContainer(process: system.process, options: VFIOContainerOptions(dmaEntryLimit: UInt32(Self.entries)))
        try system.openGroup(27).setContainer(container)
        try container.setIOMMU(.type1v2)
        let memory = try system.process.allocate(size: 4096 * Self.page)
        let before = Self.residentBytes
        let start = ContinuousClock.now
        for index in 0..<Self.entries {
            try container.map(vaddr: memory.address + index % 4096 * Self.page, iova: Self.base + index * Self.page, size: Self.page)
        }
        let map = Self.nanoseconds(since: start) / Double(Self.entries)
        return (container, Double(Self.residentBytes - before) / Double(Self.entries), map)
    }

    /// ns per `IOMMUDomain.map` of the same pattern of pages, straight into a domain.
    private func domainMapNanoseconds(profile: PlatformProfile) throws -> Double {
        let domain = try IOMMUDomain(type: .unmanaged, profile: profile)
        let start = ContinuousClock.now
        for index in 0..<Self.entries {
            try domain.map(iova: Self.base + index * Self.page, to: (1 << 40) + index % 4096 * Self.page, size: Self.page, access: .readWrite)
        }
        return Self.nanoseconds(since: start) / Double(Self.entries)
    }

    /// The 10,000-function machine in memory: generated, linked, grouped, with its IOMMU core.
    private static func tenThousandFunctions() throws -> IOMMUCore {
        let snapshot = BusSnapshot(origin: .dump(path: "<synthetic>"), topology: link(try SyntheticTopology.functions(count: 10_000)))
        let iommu = try IOMMUCore(snapshot: snapshot, configuration: IOMMUConfiguration(profile: .vtd()))
        guard iommu.groups.count == snapshot.grouping.groups.count else { throw BenchmarkError("a group without a domain") }
        return iommu
    }

    private func topologyMemory() throws -> (IOMMUCore, bytesPerFunction: Double) {
        let before = Self.residentBytes
        let machine = try Self.tenThousandFunctions()
        return (machine, Double(Self.residentBytes - before) / 10_000)
    }

    private func topologyMilliseconds() throws -> (core: Double, grouping: Double) {
        let core = try Stopwatch.medianMilliseconds(repetitions: repetitions) { _ = try Self.tenThousandFunctions() }
        let grouping = try Stopwatch.medianMilliseconds(repetitions: repetitions) {
            let topology = Self.link(try SyntheticTopology.functions(count: 10_000))
            guard !IsolationGrouping(topology: topology).groups.isEmpty else { throw BenchmarkError("no groups") }
        }
        return (core, grouping)
    }

    private static func link(_ functions: [(address: PCIAddress, title: String, config: [UInt8])]) -> PCITopology {
        PCITopology(
            functions: functions.map { PCIFunction(address: $0.address, config: PCIConfigSpace(bytes: $0.config)) },
            source: .dump(path: "<synthetic>"))
    }

    private static func nanoseconds(since start: ContinuousClock.Instant) -> Double {
        Stopwatch.seconds(since: start) * 1e9
    }
}
