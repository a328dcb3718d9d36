import Testing

@testable import IOMMU

/// `PageTableArena`: page tables carved from 2 MiB huge-page chunks, returned to the system when
/// their chunk empties.
@Suite("Page-table arena: tables in huge-page chunks")
struct PageTableArenaTests {
    static let bytes = 4104

    @Test("tables come zeroed, 64-byte aligned, distinct, and a chunk holds 504 of them")
    func carving() {
        let arena = PageTableArena()
        let tables = (0..<600).map { _ in arena.allocate(bytes: Self.bytes) }
        #expect(Set(tables).count == 600)
        #expect(tables.allSatisfy { UInt(bitPattern: $0) % 64 == 0 })
        #expect(tables.allSatisfy { table in (0..<Self.bytes).allSatisfy { table.load(fromByteOffset: $0, as: UInt8.self) == 0 } })
        #expect(arena.chunkCount == 2, "504 slots of 4,160 bytes per 2 MiB chunk")
        for table in tables { table.storeBytes(of: 0xFFFF_FFFF_FFFF_FFFF, toByteOffset: Self.bytes - 8, as: UInt64.self) }
        tables.forEach(arena.deallocate)
        let again = arena.allocate(bytes: Self.bytes)
        #expect((0..<Self.bytes).allSatisfy { again.load(fromByteOffset: $0, as: UInt8.self) == 0 }, "a reused slot comes back zeroed")
        arena.deallocate(again)
    }

    @Test("an emptied chunk goes back to the system, keeping one empty chunk for the next table")
    func chunksReturn() {
        let arena = PageTableArena()
        let first = (0..<PageTableArena.slotsPerChunk).map { _ in arena.allocate(bytes: Self.bytes) }
        let second = (0..<PageTableArena.slotsPerChunk).map { _ in arena.allocate(bytes: Self.bytes) }
        let third = (0..<10).map { _ in arena.allocate(bytes: Self.bytes) }
        #expect(arena.chunkCount == 3)
        first.forEach(arena.deallocate)
        #expect(arena.chunkCount == 3, "one empty chunk is kept")
        second.forEach(arena.deallocate)
        #expect(arena.chunkCount == 2, "a second empty chunk returns the older one")
        third.forEach(arena.deallocate)
        #expect(arena.chunkCount == 1)
    }
}
