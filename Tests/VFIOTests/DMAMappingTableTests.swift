import IOMMU
import PCIBus
import Testing

@testable import VFIO

/// The mapping table against a plain sorted array: same answers to every query after random
/// inserts and removals, across chunk splits and empty chunks.
@Suite("type1 mapping table (vfio_find_dma, T1-17, T1-22, T1-33)")
struct DMAMappingTableTests {
    @Test("matches a sorted-array model over 20,000 random operations", arguments: [1, 2, 3] as [UInt64])
    func model(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        var table = DMAMappingTable()
        var model: [DMAMapping] = []
        func modelOverlap(_ first: UInt64, _ last: UInt64) -> DMAMapping? { model.first { $0.iova <= last && first <= $0.last } }
        for _ in 0..<20_000 {
            let iova = UInt64(random.below(4096)) << 12
            let size = UInt64(1 + random.below(8)) << 12
            switch random.below(4) {
            case 0, 1:
                let mapping = DMAMapping(iova: iova, size: size, vaddr: iova + 0x7000_0000_0000, access: .readWrite)
                #expect(table.overlapping(first: mapping.iova, last: mapping.last) == modelOverlap(mapping.iova, mapping.last))
                if modelOverlap(mapping.iova, mapping.last) == nil {
                    table.insert(mapping)
                    model.append(mapping)
                    model.sort { $0.iova < $1.iova }
                }
            case 2:
                let removed = table.mappings(startingIn: iova, iova + size - 1)
                for mapping in removed { table.remove(at: mapping.iova) }
                let expected = model.filter { $0.iova >= iova && $0.iova <= iova + size - 1 }
                model.removeAll { $0.iova >= iova && $0.iova <= iova + size - 1 }
                #expect(removed == expected)
            default:
                #expect(table.mapping(containing: iova + 0x800) == model.first { $0.iova <= iova + 0x800 && iova + 0x800 <= $0.last })
                #expect(table.firstMapping(startingAtOrAfter: iova) == model.first { $0.iova >= iova })
            }
            #expect(table.count == model.count)
        }
        #expect(table.mappings == model)
    }

    @Test("T1-22: adjacent mappings stay separate entries")
    func noCoalescing() {
        var table = DMAMappingTable()
        table.insert(DMAMapping(iova: 0x1000, size: 0x1000, vaddr: 0x10000, access: .read))
        table.insert(DMAMapping(iova: 0x2000, size: 0x1000, vaddr: 0x11000, access: .read))
        #expect(table.count == 2)
        #expect(table.overlapping(first: 0x1800, last: 0x2800)?.iova == 0x1000)
        #expect(table.mapping(containing: 0x2fff)?.iova == 0x2000)
        #expect(table.overlapping(first: 0x3000, last: .max) == nil)
    }

    @Test("a mapping may end at the top of the address space (T1-14 keeps inclusive ends)")
    func topOfAddressSpace() {
        var table = DMAMappingTable()
        let top = DMAMapping(iova: 0xFFFF_FFFF_FFFF_F000, size: 0x1000, vaddr: 0x1000, access: .write)
        table.insert(top)
        #expect(top.last == .max)
        #expect(table.mapping(containing: .max) == top)
        #expect(table.mappings(startingIn: 0, .max) == [top])
        table.remove(at: top.iova)
        #expect(table.isEmpty)
    }
}
