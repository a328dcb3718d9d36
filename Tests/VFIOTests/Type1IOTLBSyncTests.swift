import PCIBus
import Testing

@testable import IOMMU
@testable import VFIO

/// When UNMAP_DMA flushes the IOTLB: `vfio_unmap_unpin` gathers the unmaps of the whole call and
/// syncs once (`iommu_iotlb_gather`, `iommu_iotlb_sync`), so an unmap of many mappings waits out
/// in-flight DMA once; a call that removed nothing flushes nothing.
@Suite("Type1 IOTLB sync per UNMAP_DMA (T1-31, T1-38, T1-56, DOM-04)")
struct Type1IOTLBSyncTests {
    static let page: UInt64 = 0x1000

    @Test("T1-31: an UNMAP_DMA over 64 mappings flushes the domain once; T1-38: so does UNMAP_ALL; an unmap of nothing, never")
    func oneSyncPerCall() throws {
        let setup = try VFIOTestMachine.setup(memory: 128 * Self.page)
        for index in 0..<128 as Range<UInt64> {
            try setup.container.map(vaddr: setup.memory.address + index * Self.page, iova: (1 << 32) + index * Self.page, size: Self.page)
        }
        let domain = setup.container.domains[0]
        let before = domain.iotlbFlushes
        #expect(try setup.container.unmap(iova: 1 << 32, size: 64 * Self.page) == 64 * Self.page)
        #expect(domain.iotlbFlushes == before + 1)
        #expect(try setup.container.unmap(iova: 1 << 40, size: Self.page) == 0)
        #expect(domain.iotlbFlushes == before + 1, "nothing removed, nothing to flush")
        #expect(try setup.container.unmapAll() == 64 * Self.page)
        #expect(domain.iotlbFlushes == before + 2)
    }

    @Test("T1-56: the last group's detach takes every mapping out with one flush")
    func detachSyncsOnce() throws {
        let setup = try VFIOTestMachine.setup(memory: 16 * Self.page)
        for index in 0..<16 as Range<UInt64> {
            try setup.container.map(vaddr: setup.memory.address + index * Self.page, iova: (1 << 32) + index * Self.page, size: Self.page)
        }
        let domain = setup.container.domains[0]
        let before = domain.iotlbFlushes
        try setup.groups[0].unsetContainer()
        #expect(domain.iotlbFlushes == before + 1)
        #expect(domain.mappedBytes == 0)
    }

    @Test("DOM-04: a gather over several unmaps syncs once, and one dropped unsynced syncs itself")
    func gatherSyncs() throws {
        let domain = try IOMMUDomain(type: .unmanaged, profile: .vtd())
        for index in 0..<4 as Range<UInt64> {
            try domain.map(iova: index * Self.page, to: 0x7f00_0000_0000 + index * Self.page, size: Self.page, access: .readWrite)
        }
        do {
            var gather = IOTLBGather()
            #expect(domain.unmap(iova: 0, size: Self.page, gather: &gather) == Self.page)
            #expect(domain.unmap(iova: Self.page, size: Self.page, gather: &gather) == Self.page)
            #expect(!gather.isEmpty && domain.iotlbFlushes == 0)
            gather.sync()
            #expect(gather.isEmpty && domain.iotlbFlushes == 1)
        }
        do {
            var gather = IOTLBGather()
            #expect(domain.unmap(iova: 2 * Self.page, size: 2 * Self.page, gather: &gather) == 2 * Self.page)
        }
        #expect(domain.iotlbFlushes == 2)
    }
}
