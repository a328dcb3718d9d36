import PCIBus
import Testing

@testable import IOMMU

/// Random bind/unbind/claim/release/attach/detach/type-change/reset sequences on `devices/default`.
/// After every call: no group has a kernel DMA-API driver and a user owner at once; no device
/// that requires a 1:1 mapping sits on a blocking domain; `owner_cnt` counts exactly the kernel
/// drivers of an unowned group; and a failed call left the state exactly as it was.
@Suite("IOMMU core properties")
struct OwnershipPropertyTests {
    static let drivers = ["vfio-pci", "nvme", "pcieport", "e1000e", "pci-stub", "xhci_hcd", "snd_hda_intel"]
    static let types = ["identity", "DMA", "DMA-FQ", "auto", "blocked"]

    @Test("invariants hold over 200 seeded sequences of 250 calls", arguments: [0x5eed_0001, 0x5eed_0002] as [UInt64])
    func randomSequences(seed: UInt64) throws {
        var random = SplitMix64(seed: seed)
        var failures = 0
        var successes = 0
        for _ in 0..<100 {
            let core = try TestMachines.core(untrusted: ["1a:00.0"])
            let addresses = Array(core.snapshot.devices.keys).sorted().map(\.description)
            let groupIDs = core.groups.map(\.id)
            var context = CoreOp.Context()
            for _ in 0..<250 {
                let op = Self.randomOp(&random, addresses: addresses, groups: groupIDs)
                if try Self.step(op, on: core, context: &context, at: "seed 0x\(String(seed, radix: 16)): \(op)") {
                    successes += 1
                } else {
                    failures += 1
                }
            }
        }
        #expect(successes > 1000 && failures > 1000, "the generator exercises both outcomes")
    }

    @Test("a state copy captures its domains: an in-place type switch (DT-04) or a map makes copies differ")
    func copiesCaptureDomainContents() throws {
        let core = try TestMachines.core(profile: .smmuv3())
        let before = core.snapshot
        try core.writeDefaultDomainType(group: 13, "DMA-FQ")
        #expect(core.group(13)!.defaultDomain === before.groups[13]!.defaultDomain, "the same domain object, switched in place")
        #expect(core.snapshot != before)
        let switched = core.snapshot
        try core.group(27)!.defaultDomain!.map(iova: 0x10_0000, to: 0x10_0000, size: 0x1000, access: .read)
        #expect(core.snapshot != switched)
    }

    static func randomOp(_ random: inout SplitMix64, addresses: [String], groups: [Int]) -> CoreOp {
        let address = addresses[random.below(addresses.count)]
        let group = groups[random.below(groups.count)]
        switch random.below(12) {
        case 0, 1: return .bind(drivers[random.below(drivers.count)], address)
        case 2, 3: return .unbind(address)
        case 4: return .claimGroup(group, owner: random.below(2))
        case 5: return .releaseGroup(group)
        case 6: return .claimDevice(address, owner: random.below(2))
        case 7: return .releaseDevice(address)
        case 8: return .attachPaging(group)
        case 9: return .detachCurrent(group)
        case 10: return .setType(group, types[random.below(types.count)], capable: random.below(8) != 0)
        default: return random.below(2) == 0 ? .prepareReset(address) : .finishReset(address)
        }
    }

    /// Applies `op`; a failure must leave the state as it was. Then checks the invariants. `at`
    /// says where in which run, for failure messages. Returns whether the call succeeded.
    static func step(_ op: CoreOp, on core: IOMMUCore, context: inout CoreOp.Context, at: String) throws -> Bool {
        let before = core.snapshot
        var succeeded = true
        do {
            try op.apply(to: core, context: &context)
        } catch {
            succeeded = false
            #expect(core.snapshot == before, "\(at) failed with \(error) but changed the state")
        }
        try checkInvariants(core.snapshot, after: at)
        return succeeded
    }

    static func checkInvariants(_ state: IOMMUCore.State, after op: String) throws {
        for group in state.groups.values {
            let kernelDrivers = group.devices.filter { address in
                state.devices[address]!.driver.map { !KernelDriver.managesDMA($0) } ?? false
            }
            if group.owner != nil {
                #expect(kernelDrivers.isEmpty, "after \(op): group \(group.id) has a user owner and kernel DMA-API drivers \(kernelDrivers)")
            } else {
                #expect(group.ownerCount == kernelDrivers.count, "after \(op): group \(group.id) owner_cnt \(group.ownerCount) vs \(kernelDrivers.count) kernel drivers")
            }
            let domain = try #require(group.domain, "after \(op): group \(group.id) has no domain")
            for address in group.devices where state.devices[address]!.requireDirect {
                #expect(
                    domain.type != .blocked && domain != group.blockingDomain,
                    "after \(op): \(address) requires a 1:1 mapping but group \(group.id) is on a blocking domain")
            }
        }
    }
}
