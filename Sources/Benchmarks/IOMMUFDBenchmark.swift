import IOMMU
import IOMMUFD
import Machine
import PCIBus
import UserMemory
import VFIO

/// iommufd against type1 on `devices/default` (0000:5e:00.0, group 27): `ioas-map-unmap-64k`, ns
/// per IOAS_MAP+IOAS_UNMAP of a 4 KiB area beside 64K areas in an IOAS the device is attached to
/// (through its auto domain), over type1v2's MAP_DMA+UNMAP_DMA pair beside 64K mappings, measured
/// in the same run.
struct IOMMUFDBenchmark {
    let repetitions: Int
    static let page: UInt64 = 0x1000
    static let base: UInt64 = 1 << 32
    static let mappings = 1 << 16
    static let pairs = 1 << 15

    func run() throws -> [BenchResult] {
        let iommufd = try ioasPairNanoseconds()
        let type1 = try type1PairNanoseconds()
        return [
            .against(
                "ioas-map-unmap-64k", iommufd, "ns", baseline: type1,
                note: "IOAS_MAP+IOAS_UNMAP (fixed IOVA) of a 4 KiB area with 64K areas present, a device attached through an auto domain; baseline: type1v2 MAP_DMA+UNMAP_DMA beside 64K mappings; target ratio <= 1.2"),
        ]
    }

    /// Alternates below and above the mapped block, so lookups cross the whole table.
    private static func iova(_ pair: UInt64) -> UInt64 {
        pair & 1 == 0 ? base + UInt64(mappings) * page + (pair & 63) * page : base - (1 + pair & 63) * page
    }

    private func ioasPairNanoseconds() throws -> Double {
        let system = try SimulatedMachine.load(machine: "default").vfio
        let context = IOMMUFDContext(process: system.process)
        defer { context.close() }
        let ioas = context.allocateIOAS()
        let device = try context.bind(PCIAddress(parsing: "0000:5e:00.0")!, core: system.core)
        defer { context.unbind(device) }
        _ = try context.attach(device: device, to: ioas)
        let memory = try system.process.allocate(size: UInt64(Self.mappings + 1) * Self.page)
        for index in 0..<UInt64(Self.mappings) {
            _ = try context.map(ioas: ioas, userVA: memory.address + index * Self.page, length: Self.page, iova: Self.base + index * Self.page, access: .readWrite)
        }
        let vaddr = memory.address + UInt64(Self.mappings) * Self.page
        var unmapped: UInt64 = 0
        let milliseconds = try Stopwatch.medianMilliseconds(repetitions: repetitions) {
            for pair in 0..<UInt64(Self.pairs) {
                _ = try context.map(ioas: ioas, userVA: vaddr, length: Self.page, iova: Self.iova(pair), access: .readWrite)
                unmapped &+= try context.unmap(ioas: ioas, iova: Self.iova(pair), length: Self.page)
            }
        }
        guard unmapped != 0 else { throw BenchmarkError("IOAS_UNMAP unmapped nothing") }
        return milliseconds * 1e6 / Double(Self.pairs)
    }

    private func type1PairNanoseconds() throws -> Double {
        let system = try SimulatedMachine.load(machine: "default").vfio
        let container = VFIOContainer(process: system.process, options: VFIOContainerOptions(dmaEntryLimit: UInt32(Self.mappings + 16)))
        try system.openGroup(27).setContainer(container)
        try container.setIOMMU(.type1v2)
        let memory = try system.process.allocate(size: UInt64(Self.mappings + 1) * Self.page)
        for index in 0..<UInt64(Self.mappings) {
            try container.map(vaddr: memory.address + index * Self.page, iova: Self.base + index * Self.page, size: Self.page)
        }
        let vaddr = memory.address + UInt64(Self.mappings) * Self.page
        var unmapped: UInt64 = 0
        let milliseconds = try Stopwatch.medianMilliseconds(repetitions: repetitions) {
            for pair in 0..<UInt64(Self.pairs) {
                try container.map(vaddr: vaddr, iova: Self.iova(pair), size: Self.page)
                unmapped &+= try container.unmap(iova: Self.iova(pair), size: Self.page)
            }
        }
        guard unmapped != 0 else { throw BenchmarkError("UNMAP_DMA unmapped nothing") }
        return milliseconds * 1e6 / Double(Self.pairs)
    }
}
