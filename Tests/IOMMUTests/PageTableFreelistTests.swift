import Dispatch
import Foundation
import KernelRules
import SystemPackage
import Testing

@testable import IOMMU

/// Page tables that devices walk without a lock: what an unmap unlinks is freed only after the
/// IOTLB sync's grace period (`iommu_iotlb_gather.freelist`, `iommu_put_pages_list`), so a walk in
/// flight never lands in a table that was freed or reused for other IOVAs (DOM-04).
@Suite("Page-table freelist: unlinked tables outlive the walks that may be in them (DOM-04)")
struct PageTableFreelistTests {
    static let page: UInt64 = 0x1000
    static let table = 4104

    @Test("DOM-04: an unmap's unlinked tables wait on the freelist — not reused, counted against the limit — until reclaimed")
    func freelistHoldsUnlinkedTables() throws {
        let table = try IOPageTable(inputBits: 48, pageSizes: .x86Large, tableLimit: 6, deferredTableFree: true)
        try table.map(iova: 1 << 30, to: 0x1000_0000, size: Self.page, access: .read)
        #expect(table.tableCount == 4, "root, the 512 GiB table, the 1 GiB table and the leaf table")
        #expect(table.unmap(iova: 1 << 30, size: Self.page) == Self.page)
        #expect(table.translate(1 << 30, access: .read) == .fault(.notPresent), "unlinked at once")
        #expect(table.tableCount == 4, "but not freed: a walk may still be in them")
        let error = try #require(throws: IOMMUError.self) {
            try table.map(iova: 2 << 30, to: 0x2000_0000, size: Self.page, access: .read)
        }
        #expect(error.errno == .noMemory, "three new tables would pass the limit of six while three wait")
        #expect(table.tableCount == 4 && table.mappedBytes == 0)
        let unlinked = table.takeFreelist()
        #expect(unlinked.count == 3 && table.tableCount == 4, "handed over, still counted")
        table.recycle(unlinked)
        #expect(table.tableCount == 1 && table.takeFreelist().isEmpty)
        try table.map(iova: 2 << 30, to: 0x2000_0000, size: Self.page, access: .read)
        #expect(table.tableCount == 4 && table.translate(2 << 30, access: .read) == .mapped(address: 0x2000_0000, contiguous: Self.page))
    }

    @Test("a table built without deferral frees what it unlinks at once")
    func immediateFreeWithoutDeferral() throws {
        let table = try IOPageTable(inputBits: 48, pageSizes: .x86Large)
        try table.map(iova: 1 << 30, to: 0x1000_0000, size: Self.page, access: .read)
        table.unmap(iova: 1 << 30, size: Self.page)
        #expect(table.tableCount == 1 && table.takeFreelist().isEmpty)
    }

    /// 40 leaf tables (one page every 2 MiB) under one 1 GiB table: 43 tables with the root.
    private func domainWithFortyLeafTables() throws -> IOMMUDomain {
        let domain = try IOMMUDomain(type: .unmanaged, profile: .vtd())
        for index in 0..<UInt64(40) {
            try domain.map(iova: (1 << 30) + index << 21, to: 0x1000_0000 + index * Self.page, size: Self.page, access: .readWrite)
        }
        #expect(domain.pageTableBytes == 43 * Self.table)
        return domain
    }

    /// Unmaps the forty pages with one IOTLB sync, as UNMAP_DMA of forty mappings does.
    private static func unmapAll(_ domain: IOMMUDomain) -> UInt64 {
        var gather = IOTLBGather()
        let unmapped = (0..<UInt64(40)).reduce(0) { $0 + domain.unmap(iova: (1 << 30) + $1 << 21, size: page, gather: &gather) }
        gather.sync()
        return unmapped
    }

    @Test("DOM-04: a domain's unmap returns once the transfers in flight end, and only then frees the tables it unlinked")
    func unmapWaitsForWalksInFlight() throws {
        let domain = try domainWithFortyLeafTables()
        let inside = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let readerDone = DispatchSemaphore(value: 0)
        let sawUnlink = LockedFlag()
        Thread.detachNewThread {
            DMAQuiescence.beginTransfer()
            inside.signal()
            release.wait()
            // Still inside the transfer that began before the unmap: the walk sees the unlink.
            sawUnlink.set(domain.translate(1 << 30, access: .read) == .fault(.notPresent))
            DMAQuiescence.endTransfer()
            readerDone.signal()
        }
        inside.wait()
        let unmapped = LockedFlag()
        let unmapperDone = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            unmapped.set(Self.unmapAll(domain) == 40 * Self.page)
            unmapperDone.signal()
        }
        #expect(unmapperDone.wait(timeout: .now() + .milliseconds(100)) == .timedOut, "the unmap waits for the transfer in flight")
        #expect(domain.mappedBytes == 0, "the translations are already gone")
        #expect(domain.pageTableBytes == 43 * Self.table, "the 42 unlinked tables are all still held")
        release.signal()
        readerDone.wait()
        unmapperDone.wait()
        #expect(unmapped.value && sawUnlink.value)
        #expect(domain.pageTableBytes == 33 * Self.table, "after the grace period: the root and 32 spares; the other 10 freed")
    }

    @Test("DOM-04: a sync frees only the tables its own gather took, not those another unmap unlinked meanwhile")
    func syncFreesOnlyItsGather() throws {
        let domain = try domainWithFortyLeafTables()
        try domain.map(iova: 8 << 30, to: 0x2000_0000, size: Self.page, access: .read)  // two more tables: 1 GiB and leaf
        #expect(domain.pageTableBytes == 45 * Self.table)
        var first = IOTLBGather()
        #expect(domain.unmap(iova: 8 << 30, size: Self.page, gather: &first) == Self.page)
        var second = IOTLBGather()
        let unmapped = (0..<UInt64(40)).reduce(0) { $0 + domain.unmap(iova: (1 << 30) + $1 << 21, size: Self.page, gather: &second) }
        #expect(unmapped == 40 * Self.page)
        first.sync()
        #expect(domain.pageTableBytes == 45 * Self.table, "the first sync recycled its two tables as spares; the 42 of the second wait for theirs")
        second.sync()
        #expect(domain.pageTableBytes == 33 * Self.table, "the root and 32 spares; the rest freed")
    }

    @Test("a domain's unmap with no transfer in flight frees its unlinked tables before it returns")
    func unmapWithoutReadersFreesAtOnce() throws {
        let domain = try domainWithFortyLeafTables()
        #expect(Self.unmapAll(domain) == 40 * Self.page)
        #expect(domain.pageTableBytes == 33 * Self.table)
    }
}

/// A Bool set on one thread and read on another.
private final class LockedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var stored = false

    func set(_ value: Bool) { lock.withLock { stored = value } }
    var value: Bool { lock.withLock { stored } }
}
