import KernelRules
import IOMMU
import PCIBus
import SystemPackage
import Testing

@testable import VFIO
import UserMemory

/// The VFIO flow of docs/library.md, step for step, with the values its comments claim.
@Suite("The VFIO flow, step by step (docs/library.md)")
struct VFIOFlowTests {
    @Test("open, join, set IOMMU, map, translate, refuse the MSI window, open a device, unmap, leave")
    func flow() throws {
        let iommu = try VFIOTestMachine.core()
        let vfio = VFIOSystem(core: iommu)
        let container = VFIOContainer(process: vfio.process)
        let group = try vfio.openGroup(27)
        #expect(group.status == .viable)
        try group.setContainer(container)
        try container.setIOMMU(.type1v2)
        let buffer = try vfio.process.allocate(size: 2 << 20, hugePages: true)
        try container.map(vaddr: buffer.address, iova: 0x4000_0000, size: 2 << 20, access: .readWrite)
        let info = try container.info()
        #expect(info.pageSizes == PageSizeBitmap.x86Large.rawValue && info.dmaAvailable == 65534)
        #expect(info.iovaRanges == [IOVAList.Range(0, 0xFEDF_FFFF), IOVAList.Range(0xFEF0_0000, 0xFFFF_FFFF_FFFF)])
        var dma = iommu.dmaPath(from: PCIAddress(parsing: "5e:00.0")!)
        guard case .mapped(let address, _) = dma.translate(0x4000_0040, access: .write) else {
            Issue.record("the mapped IOVA faulted")
            return
        }
        #expect(address == buffer.address + 0x40)
        let refused = try #require(throws: VFIOError.self) { try container.map(vaddr: buffer.address, iova: 0xFEE0_0000, size: 0x1000) }
        #expect(refused.errno == .invalidArgument && refused.rule.id == "T1-19")
        let device = try group.openDevice("0000:5e:00.0")
        device.close()
        #expect(try container.unmap(iova: 0x4000_0000, size: 2 << 20) == 2 << 20)
        try group.unsetContainer()
        #expect(container.iommuType == nil && iommu.group(27)?.owner == nil)
    }
}
