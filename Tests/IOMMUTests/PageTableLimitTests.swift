import KernelRules
import PCIBus
import SystemPackage
import Testing

@testable import IOMMU

/// `IOPageTable` at its limits: the top page of a 64-bit input range, and the table budget that
/// turns an absurd map into `ENOMEM` (DOM-04) instead of an exhausted host. The memory a million
/// mappings cost is measured in `Type1LimitTests`.
@Suite("Page table limits (DOM-04, DOM-05)")
struct PageTableLimitTests {
    static let page: UInt64 = 0x1000

    @Test("a 64-bit table maps, translates and unmaps the last page below 2^64 and frees its tables")
    func lastPage() throws {
        let table = try IOPageTable(inputBits: 64, pageSizes: .x86Large)
        #expect(table.levels == 6)
        let top = UInt64.max - (Self.page - 1)
        try table.map(iova: top, to: 0x7f00_0000_0000, size: Self.page, access: .read)
        #expect(table.translate(.max, access: .read) == .mapped(address: 0x7f00_0000_0fff, contiguous: 1))
        #expect(table.translate(.max, access: .write) == .fault(.writeDenied))
        #expect(table.unmap(iova: top, size: Self.page) == Self.page)
        #expect(table.tableCount == 1 && table.mappedBytes == 0)
    }

    struct Absurd: Sendable, CustomTestStringConvertible {
        let inputBits: Int
        let iova: UInt64
        let address: UInt64
        let size: UInt64
        let testDescription: String
    }

    @Test(
        "an absurd map is ENOMEM at once and maps nothing",
        arguments: [
            Absurd(inputBits: 64, iova: 0x1000, address: 0x1000, size: UInt64.max - 0xFFF, testDescription: "2^64 - 4096 bytes identity-mapped with 1 GiB pages: 2^25 tables"),
            Absurd(inputBits: 48, iova: 0, address: 0x1000, size: 1 << 47, testDescription: "128 TiB that only 4 KiB pages fit: 2^26 tables"),
            Absurd(inputBits: 48, iova: 0, address: 1 << 21, size: 1 << 48, testDescription: "all 256 TiB as 2 MiB pages: 2^18 leaf tables and the root, one past the limit"),
        ])
    func absurdMap(_ absurd: Absurd) throws {
        let table = try IOPageTable(inputBits: absurd.inputBits, pageSizes: .x86Large)
        let clock = ContinuousClock()
        let start = clock.now
        let error = try #require(throws: IOMMUError.self) {
            try table.map(iova: absurd.iova, to: absurd.address, size: absurd.size, access: .readWrite)
        }
        #expect(clock.now - start < .seconds(1), "refused before allocating anything")
        #expect(error.errno == .noMemory && error.rule.id == "DOM-04" && error.message.contains("more than the limit of 262144"), "\(error)")
        #expect(table.tableCount == 1 && table.mappedBytes == 0)
        #expect(table.translate(absurd.iova, access: .read) == .fault(.notPresent))
    }

    @Test("IOMMUDomain.map of an absurd range: the same ENOMEM through the domain")
    func absurdDomainMap() throws {
        let domain = try IOMMUDomain(type: .unmanaged, profile: .vtd())
        let error = try #require(throws: IOMMUError.self) { try domain.map(iova: 0x1000, to: 0x2000, size: 1 << 47, access: .readWrite) }
        #expect(error.errno == .noMemory)
        #expect(domain.mappedBytes == 0 && domain.pageTableBytes == 4104)
    }

    @Test("past a small table limit a map is ENOMEM and unwinds what it mapped; maps that need no new table still work")
    func runtimeLimit() throws {
        // Root, level 1, level 2 and one leaf table: the first 4 KiB page takes the whole budget but one.
        let table = try IOPageTable(inputBits: 48, pageSizes: .x86Large, tableLimit: 5)
        try table.map(iova: 0x20_0000 - Self.page, to: 0x4000_0000, size: Self.page, access: .readWrite)
        #expect(table.tableCount == 4)
        // Two pages across a 2 MiB boundary: the second needs another leaf table (5), fine.
        try table.map(iova: 0x20_0000 - 2 * Self.page, to: 0x5000_0000, size: Self.page, access: .readWrite)
        try table.map(iova: 0x20_0000, to: 0x6000_0000, size: Self.page, access: .readWrite)
        #expect(table.tableCount == 5)
        let mapped = table.mappedBytes
        // Starts in an existing leaf table, runs into a third one it may not allocate.
        let error = try #require(throws: IOMMUError.self) {
            try table.map(iova: 0x40_0000 - Self.page, to: 0x7000_0000, size: 2 * Self.page, access: .readWrite)
        }
        #expect(error.errno == .noMemory && error.message.contains("ran out of page tables at IOVA 0x400000"), "\(error)")
        #expect(table.mappedBytes == mapped && table.tableCount == 5)
        #expect(table.translate(0x40_0000 - Self.page, access: .read) == .fault(.notPresent), "the first page was unwound")
        // A 2 MiB leaf sits in the existing level-2 table: no new table, no refusal.
        try table.map(iova: 0x60_0000, to: 0x8000_0000, size: 0x20_0000, access: .readWrite)
        #expect(table.translate(0x60_0040, access: .write) == .mapped(address: 0x8000_0040, contiguous: 0x20_0000 - 0x40))
    }

    @Test("a table limit that leaves no room for the root is EINVAL")
    func noRoom() {
        #expect(throws: IOMMUError.self) { try IOPageTable(inputBits: 48, pageSizes: .x86Large, tableLimit: 0) }
    }
}
