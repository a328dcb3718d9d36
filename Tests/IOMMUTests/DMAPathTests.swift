import Foundation
import PCIBus
import Testing

@testable import IOMMU

/// The path a device's DMA takes through the core, as the README shows it: claim, attach a paging
/// domain, map, translate, fault into the log, detach, release.
@Suite("DMA through the core")
struct DMAPathTests {
    @Test("claim → attach → map → translate → fault → detach → release")
    func readmeFlow() throws {
        let iommu = try TestMachines.core()
        let nvme = TestMachines.address("5e:00.0")
        #expect(iommu.translate(from: nvme, iova: 0x20_0000, access: .read) == .fault(.notPresent), "DMA-FQ default domain, nothing mapped there")
        try iommu.claimGroup(27, owner: DMAOwner("my driver"))
        #expect(iommu.translate(from: nvme, iova: 0xfee0_0000, access: .write) == .fault(.blocked))
        let domain = try iommu.allocatePagingDomain()
        try iommu.attach(domain, toGroup: 27)
        #expect(try domain.map(iova: 0x20_0000, to: 0x7f00_0000_0000, size: 0x20_0000, access: .readWrite) == 0x20_0000)
        #expect(domain.pageTableBytes == 3 * 4104, "root, level 1 and the level-2 table holding the 2 MiB leaf")
        #expect(
            iommu.translate(from: nvme, iova: 0x20_0040, access: .write) == .mapped(address: 0x7f00_0000_0040, contiguous: 0x1F_FFC0))
        #expect(iommu.translate(from: nvme, iova: 0x50_0000, access: .read) == .fault(.notPresent))
        #expect(iommu.translate(from: nvme, iova: 1 << 50, access: .read) == .fault(.outsideAperture))
        let faults = iommu.faults.recent
        #expect(faults.map(\.reason) == [.notPresent, .blocked, .notPresent, .outsideAperture])
        #expect(faults.last?.requester == "5e:00.0" && faults.last?.domainID == domain.id)
        try iommu.detach(domain, fromGroup: 27)
        #expect(iommu.group(27)!.domain!.type == .blocked)
        try iommu.releaseGroup(27)
        #expect(iommu.group(27)!.domain == iommu.group(27)!.defaultDomain)
    }

    @Test("a bypassing IOMMU lets DMA outside its aperture through untranslated (why type1 refuses it, T1-44)")
    func bypass() throws {
        let iommu = try TestMachines.core(profile: .bypass)
        let nvme = TestMachines.address("5e:00.0")
        try iommu.claimGroup(27, owner: DMAOwner("owner"))
        #expect(iommu.translate(from: nvme, iova: 0x1000, access: .read) == .fault(.notPresent), "inside the aperture: translated")
        #expect(iommu.translate(from: nvme, iova: 0x1_0000_0000, access: .read) == .mapped(address: 0x1_0000_0000, contiguous: 0 &- 0x1_0000_0000))
    }

    @Test("the IOTLB merges a run as far as a transfer needs, extends it for a longer one, and keeps the last byte below 2^64")
    func iotlbRuns() throws {
        let iommu = try TestMachines.core(profile: .vtd())
        let nvme = TestMachines.address("5e:00.0")
        try iommu.claimGroup(27, owner: DMAOwner("owner"))
        let domain = try iommu.allocatePagingDomain()
        try iommu.attach(domain, toGroup: 27)
        // 16 pages, each mapped on its own, contiguous in host memory; then a page that is not.
        for page in 0..<16 as Range<UInt64> {
            try domain.map(iova: 0x10_0000 + page << 12, to: 0x7f00_0000_0000 + page << 12, size: 0x1000, access: .readWrite)
        }
        try domain.map(iova: 0x11_0000, to: 0x7e00_0000_0000, size: 0x1000, access: .readWrite)
        var path = iommu.dmaPath(from: nvme)
        #expect(path.translate(0x10_0000, access: .read, limit: 0x1000) == .mapped(address: 0x7f00_0000_0000, contiguous: 0x1000))
        #expect(path.translate(0x10_0000, access: .read, limit: 0x1000) == .mapped(address: 0x7f00_0000_0000, contiguous: 0x1000), "asked again, the same run")
        #expect(
            path.translate(0x10_0800, access: .read, limit: 0xF800) == .mapped(address: 0x7f00_0000_0800, contiguous: 0xF800),
            "the hit is extended to the longer transfer")
        #expect(
            path.translate(0x10_0000, access: .read, limit: 0x4_0000) == .mapped(address: 0x7f00_0000_0000, contiguous: 0x1_0000),
            "the run ends where host memory stops being contiguous")
        #expect(path.translate(0x10_0000, access: .read, limit: 0x4_0000) == .mapped(address: 0x7f00_0000_0000, contiguous: 0x1_0000))
        #expect(path.translate(0x11_0000, access: .write, limit: 0x2000) == .mapped(address: 0x7e00_0000_0000, contiguous: 0x1000))
        #expect(iommu.faults.counters.total == 0, "the walk past the end of a run records no fault")
    }

    @Test("DOM-04: buffers at 64 KiB strides stay in the IOTLB together, serve DMA until the unmap's sync, and are gone after it")
    func iotlbResidency() throws {
        let iommu = try TestMachines.core(profile: .vtd())
        let nvme = TestMachines.address("5e:00.0")
        try iommu.claimGroup(27, owner: DMAOwner("owner"))
        let domain = try iommu.allocatePagingDomain()
        try iommu.attach(domain, toGroup: 27)
        try domain.map(iova: 0x100_0000, to: 0x7f00_0000_0000, size: 0x4_0000, access: .readWrite)
        var path = iommu.dmaPath(from: nvme)
        let buffers = (0..<4 as Range<UInt64>).map { 0x100_0000 + $0 * 0x1_0000 }
        for iova in buffers { _ = path.translate(iova, access: .read, limit: 0x1_0000) }
        // Taken out of the page table but not yet synced: only the IOTLB still answers.
        var gather = IOTLBGather()
        #expect(domain.unmap(iova: 0x100_0000, size: 0x4_0000, gather: &gather) == 0x4_0000)
        for (index, iova) in buffers.enumerated() {
            #expect(
                path.translate(iova, access: .read, limit: 0x1_0000) == .mapped(address: 0x7f00_0000_0000 + UInt64(index) * 0x1_0000, contiguous: 0x1_0000),
                "buffer \(index) was evicted by another")
        }
        gather.sync()
        for iova in buffers { #expect(path.translate(iova, access: .read, limit: 0x1_0000) == .fault(.notPresent)) }
    }

    @Test("T1-14: an IOTLB hit on the last page below 2^64 leaves its last byte reachable")
    func iotlbTopPage() throws {
        let iommu = try TestMachines.core(profile: .bypass)
        let nvme = TestMachines.address("5e:00.0")
        try iommu.claimGroup(27, owner: DMAOwner("owner"))
        var path = iommu.dmaPath(from: nvme)
        for _ in 0..<2 {
            #expect(path.translate(.max, access: .write) == .mapped(address: .max, contiguous: 1))
            #expect(path.translate(0x1_0000_0000, access: .read) == .mapped(address: 0x1_0000_0000, contiguous: 0 &- 0x1_0000_0000))
        }
    }

    @Test("the fault log keeps the newest faults and counts every one, dropped included")
    func faultLogRing() {
        let log = FaultLog(capacity: 4)
        for index in 0..<10 as Range<UInt64> {
            log.record(requesterID: 0x5e00, iova: index << 12, access: .write, reason: index % 2 == 0 ? .notPresent : .writeDenied, domainID: 1)
        }
        #expect(log.recent.map(\.sequence) == [6, 7, 8, 9])
        #expect(log.counters == FaultLog.Counters(total: 10, dropped: 6, byReason: [.notPresent: 5, .writeDenied: 5]))
        #expect(log.recent.first?.description == "DMA write fault from 5e:00.0 at IOVA 0x6000: not-present (domain 1)")
    }

    @Test("DOM-05: geometry and page sizes are validated when a domain is made")
    func geometryValidation() throws {
        #expect(throws: IOMMUError.self) { try DomainGeometry(apertureStart: 0x2000, apertureEnd: 0x1000, forceAperture: true) }
        let empty = PlatformProfile(
            name: "empty", title: "no page sizes", geometry: .addressWidth(48), pageSizes: PageSizeBitmap(rawValue: 0), pageShift: 12,
            interruptRemapping: true, enforcesCacheCoherency: true, defaultDomainType: .dma, fixedDefaultDomain: false,
            supportsIdentity: true, supportsBlockedDomain: true, platformRegions: [], firmwareRegions: .direct)
        #expect(throws: IOMMUError.self) { try IOMMUDomain(type: .unmanaged, profile: empty) }
        #expect(PageSizeBitmap.x86Large.description == "4K|2M|1G")
        #expect(PlatformProfile.mock().geometry.description == "aperture [0x1000000, 0x7fffffff], force_aperture true")
    }
}

/// The IOMMU core over the real AMD machine whose kernel groups the bus layer reproduces.
@Suite(
    "IOMMU core on real fixtures",
    .enabled(
        if: FileManager.default.fileExists(atPath: RealAMDFixture.path),
        "../shared/fixtures/real is absent: real-fixture tests skipped"))
struct RealFixtureIOMMUTests {
    @Test("AMD-Vi on the MSI MS-7721: every group gets the MSI window and the HyperTransport hole; viability unknown from a dump")
    func amdGroups() throws {
        let snapshot = try BusSnapshot.load(.dump(path: RealAMDFixture.path))
        let core = try #require(try IOMMUCore.load(snapshot))
        #expect(core.profile.name == "amd-vi")
        #expect(core.groups.count == 10)
        for group in core.groups {
            #expect(group.sysfsType == "DMA-FQ\n")
            #expect(
                group.reservedRegions.sysfsText
                    == "0x00000000fee00000 0x00000000feefffff msi\n0x000000fd00000000 0x000000ffffffffff reserved\n")
            #expect(!core.driversKnown, "a dump carries no drivers")
        }
        #expect(core.device(PCIAddress(parsing: "00:00.2")!) == nil, "the IOMMU function itself has no group")
    }
}

enum RealAMDFixture {
    static let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent(
            "shared/fixtures/real/gold/msi-ms7721-amd-fm2.lspci-nnvvvxxxx.txt"
        ).path
}
