import PCIBus
import SystemPackage
import Testing

@testable import IOMMU

/// Machines of 10,000 functions (`SyntheticTopology`: per domain a host bridge and eight root
/// ports, each with a 16-port switch whose every fourth downstream port lacks ACS, each port
/// holding a four-function endpoint without ACS) through grouping and the IOMMU core, and counts
/// the generator refuses.
@Suite("Large topologies (IG-10..14, OWN-01)")
struct LargeTopologyTests {
    @Test("10,000 functions: 3,669 groups and an IOMMU core with a DMA-FQ domain each, in under 20 s of debug build and one root table per group")
    func tenThousandFunctions() throws {
        let clock = ContinuousClock()
        let start = clock.now
        let functions = try SyntheticTopology.functions(count: 10_000)
        let topology = PCITopology(
            functions: functions.map { PCIFunction(address: $0.address, config: PCIConfigSpace(bytes: $0.config)) },
            source: .dump(path: "<synthetic 10000>"))
        let snapshot = BusSnapshot(origin: .dump(path: "<synthetic 10000>"), topology: topology)
        let core = try IOMMUCore(snapshot: snapshot, configuration: IOMMUConfiguration(profile: .vtd()))
        let elapsed = clock.now - start
        // Per full domain: 1 + 8 × (root port, upstream port, 12 × (port, endpoint), 4 × port with endpoint) = 241 groups
        // for 657 functions; 15 full domains and 145 functions of a 16th (54 groups).
        #expect(snapshot.grouping.groups.count == 15 * 241 + 54)
        #expect(snapshot.grouping.groups.reduce(0) { $0 + $1.members.count } == 10_000 && snapshot.grouping.ungrouped.isEmpty)
        let groups = core.groups
        #expect(groups.count == 3669)
        #expect(groups.allSatisfy { $0.defaultDomain?.type == .dmaFQ && $0.domain == $0.defaultDomain && $0.ownerCount == 0 })
        let pageTableBytes = groups.reduce(0) { $0 + $1.defaultDomain!.pageTableBytes }
        #expect(pageTableBytes == 3669 * 4104, "one 4,104-byte root table per default domain, nothing mapped")
        // Measured at about 0.6 s in a debug build on 2 cores; the margin is for slow machines, not for a quadratic step.
        #expect(elapsed < .seconds(20), "generate, group and build the core: \(elapsed)")
    }

    @Test("a negative or absurd function count is EINVAL, not a crash", arguments: [-1, SyntheticTopology.maxCount + 1, Int.max])
    func absurdCount(count: Int) {
        let error = #expect(throws: PCIBusError.self) { try SyntheticTopology.functions(count: count) }
        #expect(error?.errno == .invalidArgument && error?.kind == .invalidCount)
    }

    @Test("a count of 0 is an empty machine")
    func noFunctions() throws {
        #expect(try SyntheticTopology.functions(count: 0).isEmpty)
    }
}
