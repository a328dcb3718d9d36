import IOMMU
import IOMMUFD
import Machine
import PCIBus
import UserMemory
import VFIO

/// iommufd against type1 on `devices/default` (0000:5e:00.0, group 27): `ioas-map-unmap-64k`, ns
/// per IOAS_MAP+IOAS_UNMAP of a 4 KiB area beside 64K areas in an IOAS the device is attached to
/// (through its auto domain), over type1v2's MAP_DMA+UNMAP_DMA pair beside 64K mappings, measured
/// in the same run, interleaved.
struct IOMMUFDBenchmark {
    let repetitions: Int
    static let page: UInt64 = 0x1000
    static let base: UInt64 = 1 << 32
    static let mappings = 1 << 16
    static let pairs = 1 << 15

    func run() throws -> [BenchResult] {
        let iommufd = try IOASSide()
        defer { iommufd.close() }
        let type1 = try Type1Side()
        // Interleaved, best of the repetitions: both sides see the same host noise and caches.
        var ioasBest = Double.infinity
        var type1Best = Double.infinity
        for _ in 0..<max(repetitions, 3) {
            ioasBest = min(ioasBest, try iommufd.pairs())
            type1Best = min(type1Best, try type1.pairs())
        }
        return [
            .against(
                "ioas-map-unmap-64k", ioasBest, "ns", baseline: type1Best,
                note: "IOAS_MAP+IOAS_UNMAP (fixed IOVA) of a 4 KiB area with 64K areas present, a device attached through an auto domain; baseline: type1v2 MAP_DMA+UNMAP_DMA beside 64K mappings, measured interleaved; target ratio <= 1.2"),
        ]
    }

    /// Alternates below and above the mapped block, so lookups cross the whole table.
    private static func iova(_ pair: UInt64) -> UInt64 {
        pair & 1 == 0 ? base + UInt64(mappings) * page + (pair & 63) * page : base - (1 + pair & 63) * page
    }

    /// An IOAS with 64K areas and 0000:5e:00.0 attached through its auto domain.
    private struct IOASSide {
        let context: IOMMUFDContext
        let ioas: UInt32
        let device: UInt32
        let vaddr: UInt64

        init() throws {
            let system = try SimulatedMachine.load(machine: "default").vfio
            context = IOMMUFDContext(process: system.process)
            ioas = context.allocateIOAS()
            device = try context.bind(PCIAddress(parsing: "0000:5e:00.0")!, core: system.core)
            _ = try context.attach(device: device, to: ioas)
            let memory = try system.process.allocate(size: UInt64(IOMMUFDBenchmark.mappings + 1) * page)
            for index in 0..<UInt64(IOMMUFDBenchmark.mappings) {
                _ = try context.map(ioas: ioas, userVA: memory.address + index * page, length: page, iova: base + index * page, access: .readWrite)
            }
            vaddr = memory.address + UInt64(IOMMUFDBenchmark.mappings) * page
        }

        /// ns per IOAS_MAP+IOAS_UNMAP pair.
        func pairs() throws -> Double {
            var unmapped: UInt64 = 0
            let milliseconds = try Stopwatch.medianMilliseconds(repetitions: 1) {
                for pair in 0..<UInt64(IOMMUFDBenchmark.pairs) {
                    _ = try context.map(ioas: ioas, userVA: vaddr, length: page, iova: IOMMUFDBenchmark.iova(pair), access: .readWrite)
                    unmapped &+= try context.unmap(ioas: ioas, iova: IOMMUFDBenchmark.iova(pair), length: page)
                }
            }
            guard unmapped != 0 else { throw BenchmarkError("IOAS_UNMAP unmapped nothing") }
            return milliseconds * 1e6 / Double(IOMMUFDBenchmark.pairs)
        }

        func close() {
            context.unbind(device)
            context.close()
        }
    }

    /// A type1v2 container on group 27 with 64K mappings.
    private struct Type1Side {
        let container: VFIOContainer
        let vaddr: UInt64

        init() throws {
            let system = try SimulatedMachine.load(machine: "default").vfio
            container = VFIOContainer(process: system.process, options: VFIOContainerOptions(dmaEntryLimit: UInt32(IOMMUFDBenchmark.mappings + 16)))
            try system.openGroup(27).setContainer(container)
            try container.setIOMMU(.type1v2)
            let memory = try system.process.allocate(size: UInt64(IOMMUFDBenchmark.mappings + 1) * page)
            for index in 0..<UInt64(IOMMUFDBenchmark.mappings) {
                try container.map(vaddr: memory.address + index * page, iova: base + index * page, size: page)
            }
            vaddr = memory.address + UInt64(IOMMUFDBenchmark.mappings) * page
        }

        /// ns per MAP_DMA+UNMAP_DMA pair.
        func pairs() throws -> Double {
            var unmapped: UInt64 = 0
            let milliseconds = try Stopwatch.medianMilliseconds(repetitions: 1) {
                for pair in 0..<UInt64(IOMMUFDBenchmark.pairs) {
                    try container.map(vaddr: vaddr, iova: IOMMUFDBenchmark.iova(pair), size: page)
                    unmapped &+= try container.unmap(iova: IOMMUFDBenchmark.iova(pair), size: page)
                }
            }
            guard unmapped != 0 else { throw BenchmarkError("UNMAP_DMA unmapped nothing") }
            return milliseconds * 1e6 / Double(IOMMUFDBenchmark.pairs)
        }
    }
}
