import KernelRules
import SystemPackage
import Testing

@testable import IOMMU

/// `IOPageTable` against DOM-04: alignment, largest-page choice, bytes returned, EEXIST without
/// side effects, unmap stopping at holes, superpage splitting, permissions and memory use.
@Suite("I/O page table (DOM-04)")
struct IOPageTableTests {
    static func table(bits: Int = 48, pageShift: Int = 12, sizes: PageSizeBitmap = .x86Large) -> IOPageTable {
        try! IOPageTable(inputBits: bits, pageShift: pageShift, pageSizes: sizes)
    }

    struct MapCase: Sendable, CustomTestStringConvertible {
        let rule: String
        let iova: UInt64
        let address: UInt64
        let size: UInt64
        let errno: Errno?
        /// Expected leaf sizes, in mapping order, as translate reports them (contiguous bytes at each leaf start).
        let leaves: [UInt64]
        var testDescription: String { "\(rule): map 0x\(String(iova, radix: 16)) -> 0x\(String(address, radix: 16)) +0x\(String(size, radix: 16))" }
    }

    static let mapCases: [MapCase] = [
        MapCase(rule: "DOM-04 4K page", iova: 0x1000, address: 0x5000, size: 0x1000, errno: nil, leaves: [0x1000]),
        MapCase(rule: "DOM-04 2M superpage when iova, address and size allow", iova: 0x20_0000, address: 0x40_0000, size: 0x20_0000, errno: nil, leaves: [0x20_0000]),
        MapCase(rule: "DOM-04 1G superpage", iova: 0x4000_0000, address: 0x8000_0000, size: 0x4000_0000, errno: nil, leaves: [0x4000_0000]),
        MapCase(rule: "DOM-04 address misaligned for 2M: 4K pages", iova: 0x20_0000, address: 0x40_1000, size: 0x20_0000, errno: nil, leaves: Array(repeating: 0x1000, count: 512)),
        MapCase(rule: "DOM-04 mixed: 4K head, 2M, 4K tail", iova: 0x1F_F000, address: 0x3F_F000, size: 0x20_2000, errno: nil, leaves: [0x1000, 0x20_0000, 0x1000]),
        MapCase(rule: "DOM-04 iova misaligned", iova: 0x1800, address: 0x5000, size: 0x1000, errno: .invalidArgument, leaves: []),
        MapCase(rule: "DOM-04 address misaligned", iova: 0x1000, address: 0x5800, size: 0x1000, errno: .invalidArgument, leaves: []),
        MapCase(rule: "DOM-04 size misaligned", iova: 0x1000, address: 0x5000, size: 0x1800, errno: .invalidArgument, leaves: []),
        MapCase(rule: "DOM-04 past the 48-bit input range", iova: 0xFFFF_FFFF_F000, address: 0, size: 0x2000, errno: .outOfRange, leaves: []),
        MapCase(rule: "DOM-04 last page of the input range", iova: 0xFFFF_FFFF_F000, address: 0, size: 0x1000, errno: nil, leaves: [0x1000]),
    ]

    @Test(arguments: mapCases)
    func map(_ row: MapCase) {
        let table = Self.table()
        do {
            let mapped = try table.map(iova: row.iova, to: row.address, size: row.size, access: .readWrite)
            #expect(row.errno == nil)
            #expect(mapped == row.size)
            var iova = row.iova
            for leaf in row.leaves {
                let result = table.translate(iova, access: .readWrite)
                #expect(result == .mapped(address: row.address + (iova - row.iova), contiguous: leaf))
                iova += leaf
            }
            #expect(table.mappedBytes == row.size)
        } catch {
            #expect(error.errno == row.errno, "\(error)")
            #expect(table.mappedBytes == 0 && table.tableCount == 1, "a failed map leaves nothing behind")
        }
    }

    @Test("DOM-04: EEXIST on overlap, and the part mapped before the clash is rolled back")
    func overlapRollsBack() throws {
        let table = Self.table()
        try table.map(iova: 0x3000, to: 0x9000, size: 0x1000, access: .read)
        let tables = table.tableCount
        #expect(throws: IOMMUError.self) { try table.map(iova: 0x1000, to: 0x1000, size: 0x4000, access: .read) }
        #expect(table.translate(0x1000, access: .read) == .fault(.notPresent))
        #expect(table.translate(0x3000, access: .read) == .mapped(address: 0x9000, contiguous: 0x1000))
        #expect(table.mappedBytes == 0x1000 && table.tableCount == tables)
    }

    @Test("DOM-04: unmap returns bytes unmapped and stops at the first hole")
    func unmapStopsAtHole() throws {
        let table = Self.table()
        try table.map(iova: 0x10000, to: 0x10000, size: 0x2000, access: .readWrite)
        try table.map(iova: 0x13000, to: 0x13000, size: 0x1000, access: .readWrite)
        #expect(table.unmap(iova: 0x10000, size: 0x4000) == 0x2000)
        #expect(table.translate(0x13000, access: .read) == .mapped(address: 0x13000, contiguous: 0x1000))
        #expect(table.unmap(iova: 0x13800, size: 0x800) == 0, "misaligned unmap unmaps nothing")
        #expect(table.unmap(iova: 0x13000, size: 0x1000) == 0x1000)
        #expect(table.tableCount == 1, "empty tables are freed")
    }

    @Test("unmapping part of a superpage splits it and leaves the rest mapped")
    func splitSuperpage() throws {
        let table = Self.table()
        try table.map(iova: 0x20_0000, to: 0x80_0000, size: 0x20_0000, access: .readWrite)
        #expect(table.unmap(iova: 0x21_0000, size: 0x1000) == 0x1000)
        #expect(table.translate(0x21_0000, access: .read) == .fault(.notPresent))
        #expect(table.translate(0x21_1000, access: .read) == .mapped(address: 0x81_1000, contiguous: 0x1000))
        #expect(table.translate(0x20_0000, access: .write) == .mapped(address: 0x80_0000, contiguous: 0x1000))
        #expect(table.mappedBytes == 0x20_0000 - 0x1000)
    }

    @Test("permissions: read-only and write-only mappings fault the other direction")
    func permissions() throws {
        let table = Self.table()
        try table.map(iova: 0x1000, to: 0x1000, size: 0x1000, access: .read)
        try table.map(iova: 0x2000, to: 0x2000, size: 0x1000, access: .write)
        #expect(table.translate(0x1000, access: .write) == .fault(.writeDenied))
        #expect(table.translate(0x2000, access: .read) == .fault(.readDenied))
        #expect(table.translate(0x1234, access: .read) == .mapped(address: 0x1234, contiguous: 0xDCC))
        #expect(throws: IOMMUError.self) { try table.map(iova: 0x3000, to: 0x3000, size: 0x1000, access: []) }
    }

    @Test("levels follow the input size: 39 bits → 3, 48 → 4; the mock's 2 KiB pages")
    func formats() throws {
        #expect(Self.table(bits: 39).levels == 3)
        #expect(Self.table(bits: 48).levels == 4)
        let mock = Self.table(bits: 31, pageShift: 11, sizes: PageSizeBitmap(sizes: [2048, 1 << 20]))
        try mock.map(iova: 1 << 24, to: 0x800, size: 0x800, access: .read)
        #expect(mock.translate((1 << 24) + 0x10, access: .read) == .mapped(address: 0x810, contiguous: 0x7F0))
        try mock.map(iova: 1 << 25, to: 1 << 21, size: 1 << 20, access: .read)
        #expect(mock.translate(1 << 25, access: .read) == .mapped(address: 1 << 21, contiguous: 1 << 20))
        #expect(throws: IOMMUError.self) { try IOPageTable(inputBits: 48, pageSizes: PageSizeBitmap(sizes: [1 << 13])) }
    }

    @Test("memory follows what is mapped: 4096 scattered pages cost leaf tables, not address space")
    func memoryFollowsMappings() throws {
        let table = Self.table()
        for page in 0..<4096 as Range<UInt64> { try table.map(iova: page << 30 | 0x1000, to: page << 12, size: 0x1000, access: .read) }
        #expect(table.tableCount == 1 + 8 + 4096 + 4096)  // root, level 1 per 512 GiB, level 2 and leaf per GiB
        for page in 0..<4096 as Range<UInt64> { #expect(table.unmap(iova: page << 30 | 0x1000, size: 0x1000) == 0x1000) }
        #expect(table.tableCount == 1 && table.mappedBytes == 0)
    }
}
