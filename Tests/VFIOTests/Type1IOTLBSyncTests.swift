import UserMemory
import Dispatch
import Foundation
import PCIBus
import SystemPackage
import Testing

@testable import IOMMU
@testable import VFIO

/// When UNMAP_DMA flushes the IOTLB. The kernel's `vfio_unmap_unpin` gathers and syncs once per
/// `vfio_dma`; the simulation batches the whole call into one gather (`iommu_iotlb_gather`,
/// `iommu_iotlb_sync`), so an unmap of many mappings waits out in-flight DMA once, and unpins the
/// removed pages only after that sync (`vfio_sync_unpin`); a call that removed nothing flushes
/// nothing.
@Suite("Type1 IOTLB sync per UNMAP_DMA (T1-33, T1-38, T1-56, DOM-04)")
struct Type1IOTLBSyncTests {
    static let page: UInt64 = 0x1000

    /// Group 27 in a type1v2 container with `pages` 4 KiB mappings from IOVA 4 GiB, one per page.
    static func setup(mappingPages pages: UInt64) throws -> VFIOTestMachine.Setup {
        let setup = try VFIOTestMachine.setup(memory: pages * page)
        for index in 0..<pages {
            try setup.container.map(vaddr: setup.memory.address + index * page, iova: (1 << 32) + index * page, size: page)
        }
        return setup
    }

    @Test("T1-33: an UNMAP_DMA over 64 mappings flushes the domain once; T1-38: so does UNMAP_ALL; an unmap of nothing, never")
    func oneSyncPerCall() throws {
        let setup = try Self.setup(mappingPages: 128)
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
        let setup = try Self.setup(mappingPages: 16)
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

    @Test("T1-33: an UNMAP_DMA unpins its pages only after its IOTLB sync: until the transfers in flight end, the memory cannot be released")
    func unpinAfterSync() throws {
        let setup = try Self.setup(mappingPages: 1)
        let inside = DispatchSemaphore(value: 0)
        let leave = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            DMAQuiescence.beginTransfer()  // a device's transfer in flight
            inside.signal()
            leave.wait()
            DMAQuiescence.endTransfer()
        }
        inside.wait()
        let unmapped = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            _ = try? setup.container.unmap(iova: 1 << 32, size: Self.page)
            unmapped.signal()
        }
        #expect(unmapped.wait(timeout: .now() + .milliseconds(50)) == .timedOut, "the unmap waits in its sync")
        let released = DispatchSemaphore(value: 0)
        let releaseErrno = LockedErrno()
        Thread.detachNewThread {
            releaseErrno.set(errnoOf { () throws(MemoryError) in try setup.system.process.release(setup.memory) })
            released.signal()
        }
        let answered = released.wait(timeout: .now() + .seconds(2)) == .success
        #expect(answered && releaseErrno.value == .resourceBusy, "still pinned while the sync waits")
        leave.signal()
        unmapped.wait()
        if !answered { released.wait() }
        #expect(setup.container.mappings.isEmpty)
    }
}

/// An errno set on one thread and read on another.
private final class LockedErrno: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Errno?

    func set(_ value: Errno?) { lock.withLock { stored = value } }
    var value: Errno? { lock.withLock { stored } }
}
