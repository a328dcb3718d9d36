import UserMemory
import IOMMU
import Machine
import PCIBus
import VFIO

/// The VFIO layer's figures on `devices/default` (group 27, 0000:5e:00.0, type1v2):
/// `dma-map-unmap-64k` (ns per MAP_DMA+UNMAP_DMA pair of a 4 KiB entry beside 64K mappings,
/// against the IOMMU layer's own map+unmap of the page in the same domain), `dma-map-scaling` (that
/// pair at 64K mappings over 1K), and `container-translate-64k` (a device's DMA path through the
/// container's domain over a bare `IOPageTable` walk of the same 64K mappings).
struct ContainerBenchmark {
    let repetitions: Int
    static let page: UInt64 = 0x1000
    static let base: UInt64 = 1 << 32

    func run() throws -> [BenchResult] {
        let (small, _) = try mapUnmapNanoseconds(mappings: 1 << 10)
        let (large, raw) = try mapUnmapNanoseconds(mappings: 1 << 16)
        let (path, walk) = try translateNanoseconds(pages: 1 << 16)
        return [
            .against(
                "dma-map-unmap-64k", large, "ns", baseline: raw,
                note: "MAP_DMA+UNMAP_DMA of a 4 KiB entry with 64K mappings present (checks, pinning, mapping table, page table); baseline: the domain's own map+unmap of that page; target <= 1000 ns"),
            .scaling(
                "dma-map-scaling", large: large, small: small, unit: "ns",
                note: "ns per MAP+UNMAP pair at 64K mappings / at 1K (baseline, ns); target <= 2"),
            .against(
                "container-translate-64k", path, "ns", baseline: walk,
                note: "random translations from 0000:5e:00.0's DMA path (in a transfer: domain check, IOTLB, walk) over 64K pages the container mapped; baseline: the IOMMU layer's bare IOPageTable.translate over the same mappings; target ratio <= 1.2"),
        ]
    }

    /// A type1v2 container on group 27 with `pages` 4 KiB mappings of one host buffer.
    private func container(pages: Int) throws -> (VFIOSystem, VFIOContainer, HostMemory) {
        let system = try SimulatedMachine.load(machine: "default").vfio
        let container = VFIOContainer(process: system.process, options: VFIOContainerOptions(dmaEntryLimit: UInt32(pages + 16)))
        try system.openGroup(27).setContainer(container)
        try container.setIOMMU(.type1v2)
        let memory = try system.process.allocate(size: UInt64(pages + 1) * Self.page)
        for index in 0..<UInt64(pages) {
            try container.map(vaddr: memory.address + index * Self.page, iova: Self.base + index * Self.page, size: Self.page)
        }
        return (system, container, memory)
    }

    private func mapUnmapNanoseconds(mappings: Int) throws -> (pair: Double, raw: Double) {
        let (_, container, memory) = try container(pages: mappings)
        let pairs = 1 << 15
        let vaddr = memory.address + UInt64(mappings) * Self.page
        let top = Self.base + UInt64(mappings) * Self.page
        // Alternate below and above the mapped block so lookups cross the whole table.
        func iova(_ pair: UInt64) -> UInt64 { pair & 1 == 0 ? top + (pair & 63) * Self.page : Self.base - (1 + pair & 63) * Self.page }
        var unmapped: UInt64 = 0
        let milliseconds = try Stopwatch.medianMilliseconds(repetitions: repetitions) {
            for pair in 0..<UInt64(pairs) {
                try container.map(vaddr: vaddr, iova: iova(pair), size: Self.page)
                unmapped &+= try container.unmap(iova: iova(pair), size: Self.page)
            }
        }
        guard unmapped != 0 else { throw BenchmarkError("UNMAP_DMA unmapped nothing") }
        let domain = container.domains[0]
        var rawUnmapped: UInt64 = 0
        let rawMilliseconds = try Stopwatch.medianMilliseconds(repetitions: repetitions) {
            for pair in 0..<UInt64(pairs) {
                try domain.map(iova: iova(pair), to: vaddr, size: Self.page, access: .readWrite)
                rawUnmapped &+= domain.unmap(iova: iova(pair), size: Self.page)
            }
        }
        guard rawUnmapped != 0 else { throw BenchmarkError("the domain's unmap unmapped nothing") }
        return (milliseconds * 1e6 / Double(pairs), rawMilliseconds * 1e6 / Double(pairs))
    }

    private func translateNanoseconds(pages: Int) throws -> (path: Double, walk: Double) {
        let (system, container, memory) = try container(pages: pages)
        let domain = container.domains[0]
        // The same mappings in a bare table of the domain's format: the walk alone.
        let bare = try IOPageTable(inputBits: domain.geometry.addressBits, pageSizes: domain.pageSizes)
        for index in 0..<UInt64(pages) {
            try bare.map(iova: Self.base + index * Self.page, to: memory.address + index * Self.page, size: Self.page, access: .readWrite)
        }
        var generator = SplitMix64(seed: 64)
        let iovas = (0..<(1 << 21)).map { _ in Self.base + UInt64(generator.below(pages)) * Self.page | 0x40 }
        let path = system.core.dmaPath(from: PCIAddress(parsing: "0000:5e:00.0")!)
        // Sums kept in locals, assigned once per run: a captured variable would cost an
        // exclusivity check per access.
        var walked: UInt64 = 0
        let viaWalk = Stopwatch.medianMilliseconds(repetitions: repetitions) {
            var sum: UInt64 = 0
            for iova in iovas {
                if case .mapped(let address, _) = bare.translate(iova, access: .read) { sum &+= address }
            }
            walked &+= sum
        }
        var translated: UInt64 = 0
        let viaPath = Stopwatch.medianMilliseconds(repetitions: repetitions) {
            // The device thread's own copy, as a device model holds it, inside one transfer.
            var path = path
            var sum: UInt64 = 0
            DMAQuiescence.beginTransfer()
            for iova in iovas {
                if case .mapped(let address, _) = path.translate(iova, access: .read) { sum &+= address }
            }
            DMAQuiescence.endTransfer()
            translated &+= sum
        }
        guard walked != 0, translated == walked else {
            throw BenchmarkError("the DMA path and the bare walk disagree (checksums 0x\(String(translated, radix: 16)), 0x\(String(walked, radix: 16)))")
        }
        return (viaPath * 1e6 / Double(iovas.count), viaWalk * 1e6 / Double(iovas.count))
    }
}
