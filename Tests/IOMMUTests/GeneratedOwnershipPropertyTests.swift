import PCIBus
import Testing

@testable import IOMMU

/// The ownership invariants of `OwnershipPropertyTests` over generated machines (`RandomTopology`
/// under VT-d, AMD-Vi, SMMUv3, the bypassing IOMMU (no blocked domain: an empty paging domain
/// blocks) or the iommufd mock (a fixed blocked default domain), either ACS policy, a random
/// global default domain type, random untrusted devices and random initial drivers) instead of
/// `devices/default`, with its random calls mixed with calls aimed at groups of several functions
/// by three owners. After every call:
///  a. a group is never split between owners: the claims that succeeded and are still
///     outstanding come from one owner, who is the group's `owner`, and `owner_cnt` counts them
///     (OWN-04, OWN-06, OWN-07) — kept in a ledger from the calls' outcomes alone;
///  b. no user-owned group has a function bound to a DMA-API driver (OWN-08, VG-06), with the
///     other invariants of `OwnershipPropertyTests.checkInvariants`;
/// and a failed call changed nothing. A failure names the topology seed, which replays the
/// machine, its setup and the calls.
@Suite("Ownership properties over generated topologies (OWN-04..08, VG-06)")
struct GeneratedOwnershipPropertyTests {
    static let topologiesPerSeed = 60
    static let callsPerTopology = 250
    static let profiles: [PlatformProfile] = [.vtd(), .amdVi(), .smmuv3(), .bypass, .mock()]
    /// `iommu_def_domain_type` as the command line leaves it, or sets it (passthrough, strict, lazy).
    static let globalDefaults: [IOMMUDomainType?] = [nil, .identity, .dma, .dmaFQ]
    static let endpointDrivers: [String?] = [nil, nil, "vfio-pci", "nvme", "mlx5_core", "pci-stub"]

    @Test("60 machines × 250 calls per seed: one owner per group, no DMA-API driver under a user owner", arguments: [0x0a11_0001, 0x0a11_0002] as [UInt64])
    func randomSequences(seed: UInt64) throws {
        var seeds = SplitMix64(seed: seed)
        var outcomes = (succeeded: 0, failed: 0, claimsRefused: 0, sharedClaims: 0)
        for _ in 0..<Self.topologiesPerSeed {
            let topologySeed = seeds.next()
            var random = SplitMix64(seed: ~topologySeed)
            let core = try Self.core(topologySeed, &random)
            let addresses = core.snapshot.devices.keys.sorted().map(\.description)
            let groups = core.groups.map { (id: $0.id, members: $0.devices.map(\.description)) }
            let shared = groups.filter { $0.members.count > 1 }
            var context = CoreOp.Context()
            context.owners.append(DMAOwner("owner 2"))
            var ledger = ClaimLedger()
            for call in 0..<Self.callsPerTopology {
                let op =
                    random.below(2) == 0 || shared.isEmpty
                    ? OwnershipPropertyTests.randomOp(&random, addresses: addresses, groups: groups.map(\.id))
                    : Self.ownershipOp(&random, in: shared[random.below(shared.count)])
                let at = "topology seed 0x\(String(topologySeed, radix: 16)), call \(call): \(op)"
                if try OwnershipPropertyTests.step(op, on: core, context: &context, at: at) {
                    outcomes.succeeded += 1
                    ledger.record(op, groupOf: { core.device(CoreOp.address($0))!.groupID })
                    if case .claimDevice(let address, _) = op, ledger.claims[core.device(CoreOp.address(address))!.groupID]!.count > 1 {
                        outcomes.sharedClaims += 1
                    }
                } else {
                    outcomes.failed += 1
                    if case .claimDevice = op { outcomes.claimsRefused += 1 }
                }
                ledger.check(core.snapshot, owners: context.owners, at: at)
            }
        }
        #expect(
            outcomes.succeeded > 3000 && outcomes.failed > 3000 && outcomes.claimsRefused > 1000 && outcomes.sharedClaims > 100,
            "the calls exercise both outcomes, refused claims and claims shared by one owner: \(outcomes)")
    }

    /// The machine of `seed` with a profile, an ACS policy, a global default type, untrusted
    /// devices (one in eight, none under the mock, whose fixed blocked default refuses them) and
    /// initial drivers drawn from `random`: PCIe ports bound to pcieport, other functions to a
    /// random driver or none.
    static func core(_ seed: UInt64, _ random: inout SplitMix64) throws -> IOMMUCore {
        let topology = RandomTopology(seed: seed).topology
        var drivers: [PCIAddress: String] = [:]
        for function in topology.functions {
            switch function.pciePortType {
            case .rootPort, .upstreamPort, .downstreamPort: drivers[function.address] = "pcieport"
            default: drivers[function.address] = endpointDrivers[random.below(endpointDrivers.count)]
            }
        }
        let policy = ACSEnablePolicy.allCases[random.below(ACSEnablePolicy.allCases.count)]
        let profile = profiles[random.below(profiles.count)]
        let untrusted = profile.fixedDefaultDomain ? [] : topology.functions.map(\.address).filter { _ in random.below(8) == 0 }
        let snapshot = BusSnapshot(
            origin: .dump(path: "<RandomTopology seed 0x\(String(seed, radix: 16))>"), topology: topology.binding(drivers),
            configuration: .init(platform: profile.name == "amd-vi" ? .amdVi : .intelVTd, acsPolicy: policy))
        let configuration = IOMMUConfiguration(
            profile: profile, untrusted: Set(untrusted), defaultDomainType: globalDefaults[random.below(globalDefaults.count)])
        return try IOMMUCore(snapshot: snapshot, configuration: configuration)
    }

    /// A call aimed at one group of several functions: claims and releases of it and of its
    /// devices by three owners, and binds of vfio-pci or DMA-API drivers to its devices.
    static func ownershipOp(_ random: inout SplitMix64, in group: (id: Int, members: [String])) -> CoreOp {
        let address = group.members[random.below(group.members.count)]
        let owner = random.below(3)
        switch random.below(8) {
        case 0, 1, 2: return .claimDevice(address, owner: owner)
        case 3: return .releaseDevice(address)
        case 4: return .claimGroup(group.id, owner: owner)
        case 5: return .releaseGroup(group.id)
        case 6: return .bind(["vfio-pci", "nvme", "mlx5_core"][random.below(3)], address)
        default: return .unbind(address)
        }
    }
}

/// The claims that succeeded and are still outstanding, per group, by owner index: a model of
/// `owner` and `owner_cnt` (OWN-04..07) kept from the calls' outcomes alone, so a claim the core
/// wrongly accepted shows up as a second owner or a count that does not match.
struct ClaimLedger {
    private(set) var claims: [Int: [Int]] = [:]

    /// Records a call that succeeded.
    mutating func record(_ op: CoreOp, groupOf: (String) -> Int) {
        switch op {
        case .claimGroup(let id, let owner): claims[id, default: []].append(owner)
        case .releaseGroup(let id): claims[id] = []
        case .claimDevice(let address, let owner): claims[groupOf(address), default: []].append(owner)
        // OWN-07: the kernel does not track which device claimed; one claim goes.
        case .releaseDevice(let address): claims[groupOf(address)]?.removeLast()
        default: break
        }
    }

    func check(_ state: IOMMUCore.State, owners: [DMAOwner], at: String) {
        for group in state.groups.values {
            let outstanding = claims[group.id] ?? []
            #expect(Set(outstanding).count <= 1, "\(at): group \(group.id) is claimed by owners \(Set(outstanding).sorted()) at once")
            if let first = outstanding.first {
                #expect(
                    group.owner == owners[first] && group.ownerCount == outstanding.count,
                    "\(at): group \(group.id) has owner \(group.owner?.description ?? "none") owner_cnt \(group.ownerCount), the ledger \(outstanding.count) claim(s) by owner \(first)")
            } else {
                #expect(group.owner == nil, "\(at): group \(group.id) is owned by \(group.owner!) with no claim outstanding")
            }
        }
    }
}
