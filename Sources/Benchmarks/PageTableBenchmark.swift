import Foundation
import IOMMU
import PCIBus

/// The IOMMU layer's figures: `translate-64k` (ns per random translation over 64K mapped 4 KiB
/// pages, against a `Dictionary` page lookup in the same run), `translate-scaling` (1M mappings
/// over 1K), `map-unmap-4k` / `map-unmap-2m` (ns per map+unmap pair, against `Dictionary`
/// insert+remove), `pt-bytes-per-page` (page-table bytes per 4 KiB page at 1M mappings, against
/// the 8-byte leaf entry every radix table needs).
struct PageTableBenchmark {
    let repetitions: Int
    static let lookups = 1 << 21

    func run() throws -> [BenchResult] {
        let small = try translateNanoseconds(pages: 1 << 10)
        let medium = try translateNanoseconds(pages: 1 << 16)
        let (large, bytesPerPage) = try translateAndMemory(pages: 1 << 20)
        let dictionary = dictionaryLookupNanoseconds(pages: 1 << 16)
        let map4k = try mapUnmapNanoseconds(size: 1 << 12, pairs: 1 << 17)
        let map2m = try mapUnmapNanoseconds(size: 1 << 21, pairs: 1 << 15)
        let dictionaryPair = dictionaryInsertRemoveNanoseconds(pairs: 1 << 17)
        return [
            .against(
                "translate-64k", medium, "ns", baseline: dictionary,
                note: "random translations over 64K mapped 4 KiB pages (4-level table); baseline: Dictionary<page, address> lookup of the same pages; target <= 60 ns"),
            .scaling(
                "translate-scaling", large: large, small: small, unit: "ns",
                note: String(format: "ns per translation at 1M mappings (%.1f) / at 1K (baseline, ns); target <= 3", large)),
            .against(
                "map-unmap-4k", map4k, "ns", baseline: dictionaryPair,
                note: "map+unmap of one 4 KiB page beside 64K mapped pages; baseline: Dictionary insert+remove"),
            .against(
                "map-unmap-2m", map2m, "ns", baseline: dictionaryPair,
                note: "map+unmap of one 2 MiB superpage (a single level-2 leaf); baseline: Dictionary insert+remove"),
            .against(
                "pt-bytes-per-page", bytesPerPage, "B", baseline: 8,
                note: "page-table bytes per mapped 4 KiB page at 1M mappings; baseline: one 8-byte leaf entry; target <= 16"),
        ]
    }

    /// A table with `pages` scattered 4 KiB mappings (no superpages) at IOVAs from 1 GiB up.
    private func populatedTable(pages: Int) throws -> IOPageTable {
        let table = try IOPageTable(inputBits: 48, pageSizes: .x86Large)
        for page in 0..<UInt64(pages) {
            try table.map(iova: (1 << 30) + page << 12, to: (page &* 0x9E37_79B9 & 0xFF_FFFF) << 12, size: 1 << 12, access: .readWrite)
        }
        return table
    }

    private func randomIOVAs(pages: Int) -> [UInt64] {
        var generator = SplitMix64(seed: UInt64(pages))
        return (0..<Self.lookups).map { _ in (1 << 30) + (generator.next() % UInt64(pages)) << 12 | 0x18 }
    }

    private func translateNanoseconds(pages: Int) throws -> Double {
        try translateAndMemory(pages: pages).0
    }

    private func translateAndMemory(pages: Int) throws -> (Double, Double) {
        let table = try populatedTable(pages: pages)
        let iovas = randomIOVAs(pages: pages)
        var checksum: UInt64 = 0
        let milliseconds = Stopwatch.medianMilliseconds(repetitions: repetitions) {
            for iova in iovas {
                if case .mapped(let address, _) = table.translate(iova, access: .read) { checksum &+= address }
            }
        }
        precondition(checksum != 0)
        return (milliseconds * 1e6 / Double(iovas.count), Double(table.tableMemoryBytes) / Double(pages))
    }

    private func dictionaryLookupNanoseconds(pages: Int) -> Double {
        var pagesByNumber: [UInt64: UInt64] = [:]
        for page in 0..<UInt64(pages) { pagesByNumber[(1 << 18) + page] = (page &* 0x9E37_79B9 & 0xFF_FFFF) << 12 }
        let iovas = randomIOVAs(pages: pages)
        var checksum: UInt64 = 0
        let milliseconds = Stopwatch.medianMilliseconds(repetitions: repetitions) {
            for iova in iovas {
                if let address = pagesByNumber[iova >> 12] { checksum &+= address | iova & 0xFFF }
            }
        }
        precondition(checksum != 0)
        return milliseconds * 1e6 / Double(iovas.count)
    }

    private func mapUnmapNanoseconds(size: UInt64, pairs: Int) throws -> Double {
        let table = try populatedTable(pages: 1 << 16)
        let base: UInt64 = (1 << 30) + (1 << 28)  // just past the mapped pages: upper tables exist
        var failures = 0
        let milliseconds = try Stopwatch.medianMilliseconds(repetitions: repetitions) {
            for pair in 0..<UInt64(pairs) {
                let iova = base + (pair & 1023) * size
                try table.map(iova: iova, to: iova, size: size, access: .readWrite)
                if table.unmap(iova: iova, size: size) != size { failures += 1 }
            }
        }
        precondition(failures == 0)
        return milliseconds * 1e6 / Double(pairs)
    }

    private func dictionaryInsertRemoveNanoseconds(pairs: Int) -> Double {
        var pagesByNumber: [UInt64: UInt64] = [:]
        for page in 0..<UInt64(1 << 16) { pagesByNumber[page] = page }
        var removed = 0
        let milliseconds = Stopwatch.medianMilliseconds(repetitions: repetitions) {
            for pair in 0..<UInt64(pairs) {
                let key = (1 << 28) + (pair & 1023)
                pagesByNumber[key] = pair
                if pagesByNumber.removeValue(forKey: key) != nil { removed += 1 }
            }
        }
        precondition(removed > 0)
        return milliseconds * 1e6 / Double(pairs)
    }
}
