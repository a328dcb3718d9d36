import KernelRules
import IOMMU
import PCIBus
import SystemPackage
import Testing
import UserMemory

@testable import VFIO

/// Bad input through the bitmap paths must fail with an errno, never trap.
@Suite("Type1 hostile bitmaps (T1-31, T1-82)")
struct Type1HostileBitmapTests {
    @Test("a 1-byte page size over the whole address space is EINVAL, not an overflow trap")
    func hugePageCount() throws {
        let setup = try VFIOTestMachine.setup()
        _ = try setup.container.dirtyPages(.start)
        let bitmap = DirtyBitmapRequest(pageSize: 1, size: 8)
        let unmap = try #require(throws: VFIOError.self) {
            _ = try setup.container.unmap(DMAUnmapRequest(flags: .getDirtyBitmap, iova: 0, size: .max, bitmap: bitmap))
        }
        #expect(unmap.errno == .invalidArgument)
        let get = try #require(throws: VFIOError.self) {
            _ = try setup.container.dirtyPages(.getBitmap, query: DirtyBitmapQuery(iova: 0, size: .max, bitmap: bitmap))
        }
        #expect(get.errno == .invalidArgument)
    }

    @Test("T1-82: size 0 is EINVAL before the wrap check")
    func sizeZeroFirst() throws {
        let setup = try VFIOTestMachine.setup()
        _ = try setup.container.dirtyPages(.start)
        let error = try #require(throws: VFIOError.self) {
            _ = try setup.container.dirtyPages(.getBitmap, query: DirtyBitmapQuery(iova: 0x1000, size: 0, bitmap: DirtyBitmapRequest(pageSize: 0x1000, size: 8)))
        }
        #expect(error.errno == .invalidArgument)
    }

    @Test("DOM-02/OWN-09: leaving a container during a PCI reset still detaches (must-succeed path)")
    func detachDuringReset() throws {
        let setup = try VFIOTestMachine.setup()
        try setup.container.map(vaddr: setup.memory.address, iova: 0, size: 0x1000)
        try setup.system.core.prepareReset(of: PCIAddress(parsing: "0000:5e:00.0")!)
        try setup.groups[0].unsetContainer()
        #expect(setup.system.process.lockedBytes == 0 && setup.container.iommuType == nil)
    }
}
