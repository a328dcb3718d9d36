import KernelRules
import IOMMU
import SystemPackage
import Testing

import PCIBus

@testable import VFIO
import UserMemory

/// Pinned host memory (T1-20, T1-91): what devices may reach, and the locked-memory accounting.
@Suite("Host memory and pinning (T1-20, T1-91)")
struct HostMemoryTests {
    @Test("huge-page memory is 2 MiB aligned and maps with 2 MiB IOMMU pages")
    func hugePages() throws {
        let setup = try VFIOTestMachine.setup(memory: 4 << 20, hugePages: true)
        #expect(setup.memory.address % HostMemory.hugePageSize == 0 && setup.memory.size == 4 << 20)
        try setup.container.map(vaddr: setup.memory.address, iova: 1 << 30, size: 4 << 20)
        let domain = try #require(setup.container.domains.first)
        #expect(domain.translate((1 << 30) + 0x1234, access: .read) == .mapped(address: setup.memory.address + 0x1234, contiguous: (2 << 20) - 0x1234))
        #expect(domain.pageTableBytes < 4 * 4096, "root, level-3 and level-2 tables: two 2 MiB leaves need no level-1 table")
    }

    @Test("T1-20: RLIMIT_MEMLOCK refusal carries the kernel's message; mappings are charged one by one (T1-91)")
    func memlockMessage() throws {
        let process = ProcessMemory(lockedMemoryLimit: 0x2000)
        let system = try VFIOTestMachine.system(process: process)
        let container = VFIOContainer(process: process)
        try system.openGroup(27).setContainer(container)
        try container.setIOMMU(.type1v2)
        let memory = try process.allocate(size: 0x4000)
        try container.map(vaddr: memory.address, iova: 0, size: 0x1000)
        try container.map(vaddr: memory.address, iova: 0x1000, size: 0x1000)
        #expect(process.lockedBytes == 0x2000, "the same page mapped twice is charged twice")
        let error = try #require(throws: VFIOError.self) { try container.map(vaddr: memory.address, iova: 0x2000, size: 0x1000) }
        #expect(error.errno == .noMemory && error.message.hasPrefix("vfio_pin_pages_remote: RLIMIT_MEMLOCK (8192) exceeded"))
        process.lockedMemoryLimit = nil
        try container.map(vaddr: memory.address, iova: 0x2000, size: 0x1000)
    }

    @Test("pinned memory cannot be released; unmapping unpins it")
    func releaseWhilePinned() throws {
        let setup = try VFIOTestMachine.setup()
        try setup.container.map(vaddr: setup.memory.address + 0x1000, iova: 0, size: 0x1000)
        let error = try #require(throws: MemoryError.self) { try setup.system.process.release(setup.memory) }
        #expect(error.errno == .resourceBusy)
        try setup.container.unmapAll()
        try setup.system.process.release(setup.memory)
        let again = try #require(throws: MemoryError.self) { try setup.system.process.release(setup.memory) }
        #expect(again.errno == .invalidArgument)
    }

    @Test("a mapping may span adjacent allocations but not a gap between them")
    func spanning() throws {
        let setup = try VFIOTestMachine.setup()
        let process = setup.system.process
        let second = try process.allocate(size: 0x1000)
        if second.address == setup.memory.address + setup.memory.size {
            try setup.container.map(vaddr: setup.memory.last - 0xFFF, iova: 0, size: 0x2000)
        } else {
            let error = try #require(throws: VFIOError.self) { try setup.container.map(vaddr: setup.memory.last - 0xFFF, iova: 0, size: 0x2000) }
            #expect(error.errno == .badAddress)
        }
    }

    @Test("absurd sizes fail cleanly", arguments: [0, UInt64.max, UInt64.max / 2, 1 << 62])
    func absurdSizes(size: UInt64) {
        #expect(throws: MemoryError.self) { try ProcessMemory().allocate(size: size) }
    }

    @Test("device DMA follows the container: mapped, then unmapped, then blocked after the group leaves")
    func dmaPathFollowsContainer() throws {
        let setup = try VFIOTestMachine.setup()
        let core = setup.system.core
        var path = core.dmaPath(from: PCIAddress(parsing: "0000:5e:00.0")!)
        try setup.container.map(vaddr: setup.memory.address, iova: 0x10_0000, size: 0x1000, access: .read)
        #expect(path.translate(0x10_0010, access: .read) == .mapped(address: setup.memory.address + 0x10, contiguous: 0xFF0))
        #expect(path.translate(0x10_0010, access: .write) == .fault(.writeDenied))
        try setup.container.unmap(iova: 0x10_0000, size: 0x1000)
        #expect(path.translate(0x10_0010, access: .read) == .fault(.notPresent))
        try setup.groups[0].unsetContainer()
        #expect(path.currentDomain() == core.group(27)?.defaultDomain, "back on the kernel's default domain")
        let faults = core.faults.recent
        #expect(faults.count == 2 && faults.allSatisfy { $0.requesterID == 0x5E00 })
    }
}
