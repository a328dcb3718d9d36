import PCIBus
import SystemPackage
import Testing

@testable import VFIO

/// Attach and detach across IOMMUs (spec §3.5–§3.7): groups of different machines' cores in one
/// container give type1 domains of different ops, as mixed IOMMUs do.
@Suite("Type1 attach and detach (T1-40..56)")
struct Type1AttachTests {
    /// `/dev/vfio` of `devices/default` under `profile`, and an open group `id`.
    private func group(_ id: Int = 27, profile: PlatformProfile? = nil) throws -> (VFIOSystem, VFIOGroup) {
        let system = try VFIOTestMachine.system(profile: profile)
        return (system, try system.openGroup(id))
    }

    @Test("T1-41: a group whose aperture would strand a mapping is refused, nothing changes")
    func apertureConflict() throws {
        let setup = try VFIOTestMachine.setup()
        try setup.container.map(vaddr: setup.memory.address, iova: 1 << 40, size: 0x1000)
        let infoBefore = try setup.container.info()
        let (_, narrow) = try group(22, profile: .vtd(addressWidth: 39))
        let error = try #require(throws: VFIOError.self) { try narrow.setContainer(setup.container) }
        #expect(error.errno == .invalidArgument && error.rule == "T1-41")
        #expect(try setup.container.info() == infoBefore)
        #expect(narrow.status == .viable, "the failed join released the group's ownership (VG-11)")
        #expect(narrow.core.group(22)?.owner == nil)
    }

    @Test("T1-41: a reserved region over an existing mapping is refused")
    func reservedConflict() throws {
        let setup = try VFIOTestMachine.setup()
        try setup.container.map(vaddr: setup.memory.address, iova: 0x800_0000, size: 0x1000)
        let (_, smmu) = try group(22, profile: .smmuv3())
        let error = try #require(throws: VFIOError.self) { try smmu.setContainer(setup.container) }
        #expect(error.errno == .invalidArgument && error.rule == "T1-41" && error.message.contains("0x8000000"))
        #expect(setup.container.domains.count == 1)
    }

    @Test("T1-40/T1-43: the IOVA list narrows on attach and grows back on detach")
    func apertureResizeAndExpand() throws {
        let setup = try VFIOTestMachine.setup(profile: .vtd(addressWidth: 39))
        let (_, wide) = try group(22, profile: .vtd(addressWidth: 48))
        try wide.setContainer(setup.container)
        let msi = [IOVAList.Range(0, 0xFEDF_FFFF), IOVAList.Range(0xFEF0_0000, (1 << 39) - 1)]
        #expect(try setup.container.info().iovaRanges == msi)
        #expect(setup.container.domains.count == 2, "vt-d-39 and vt-d-48 are different IOMMU ops")
        try setup.groups[0].unsetContainer()
        #expect(try setup.container.info().iovaRanges == [IOVAList.Range(0, 0xFEDF_FFFF), IOVAList.Range(0xFEF0_0000, (1 << 48) - 1)])
    }

    @Test("T1-50 step 12: existing mappings are replayed into a new domain, which then translates them")
    func replayIntoNewDomain() throws {
        let setup = try VFIOTestMachine.setup()
        try setup.container.map(vaddr: setup.memory.address, iova: 0x10_0000, size: 0x4000)
        let (_, smmu) = try group(22, profile: .smmuv3())
        try smmu.setContainer(setup.container)
        let domains = setup.container.domains
        try #require(domains.count == 2)
        #expect(domains[1].translate(0x10_2000, access: .write) == .mapped(address: setup.memory.address + 0x2000, contiguous: 0x1000))
        try setup.container.unmap(iova: 0x10_0000, size: 0x4000)
        #expect(domains.allSatisfy { $0.mappedBytes == 0 }, "UNMAP_DMA unmaps every domain")
    }

    @Test("T1-52: a 2 KiB IOMMU still gives a PAGE_SIZE minimum; the bitmap is the AND of the domains")
    func pageSizeBitmap() throws {
        let huge = try VFIOTestMachine.setup(profile: .mock(hugeIOVA: true))
        #expect(try huge.container.info().pageSizes == hostPageSize | 1 << 20, "2K|1M: the sub-page bit becomes PAGE_SIZE")
        let (_, mock) = try group(22, profile: .mock())
        try mock.setContainer(huge.container)
        #expect(try huge.container.info().pageSizes == hostPageSize, "2K|1M AND 2K, then PAGE_SIZE")
        try mock.unsetContainer()
        #expect(try huge.container.info().pageSizes == hostPageSize | 1 << 20, "recomputed when the domain goes (T1-56)")
    }

    @Test("T1-52 (project policy): IOMMUs without a common page size cannot share a container")
    func disjointPageSizes() throws {
        let vtd = try VFIOTestMachine.setup()
        let (_, mock) = try group(22, profile: .mock(hugeIOVA: true))
        let error = try #require(throws: VFIOError.self) { try mock.setContainer(vtd.container) }
        #expect(error.errno == .invalidArgument && error.rule == "T1-52")
        #expect(try vtd.container.info().pageSizes == PageSizeBitmap.x86Large.rawValue)
        #expect(vtd.container.domains.count == 1)
    }

    @Test("T1-56: detaching one of two groups keeps the mappings; the last takes them all")
    func detachKeepsThenDrops() throws {
        let setup = try VFIOTestMachine.setup(groups: [27, 22])
        try setup.container.map(vaddr: setup.memory.address, iova: 0, size: 0x8000)
        #expect(setup.container.domains.count == 1)
        try setup.groups[1].unsetContainer()
        #expect(setup.container.mappings.count == 1)
        #expect(setup.system.process.lockedBytes == 0x8000)
        try setup.groups[0].unsetContainer()
        #expect(setup.container.mappings.isEmpty && setup.container.iommuType == nil)
        #expect(setup.system.process.lockedBytes == 0)
        try setup.system.process.release(setup.memory)
    }

    @Test("T1-61: a group cannot join while a vaddr is invalid")
    func attachWhileVaddrInvalid() throws {
        let setup = try VFIOTestMachine.setup()
        try setup.container.map(vaddr: setup.memory.address, iova: 0, size: 0x1000)
        _ = try setup.container.unmap(DMAUnmapRequest(flags: .vaddr, iova: 0, size: 0x1000))
        let other = try setup.system.openGroup(22)
        let error = try #require(throws: VFIOError.self) { try other.setContainer(setup.container) }
        #expect(error.errno == .resourceBusy && error.rule == "T1-61")
        try setup.container.map(DMAMapRequest(flags: .vaddr, vaddr: setup.memory.address + 0x1000, iova: 0, size: 0x1000))
        try other.setContainer(setup.container)
        #expect(setup.container.mappings.first?.hostAddress == setup.memory.address, "T1-60: the IOMMU keeps the pinned pages")
    }

    @Test("VG-22: SET_IOMMU that fails on the second group detaches the first again")
    func setIOMMURollsBack() throws {
        let system = try VFIOTestMachine.system()
        let container = VFIOContainer(process: system.process)
        try system.openGroup(27).setContainer(container)
        let (_, noIR) = try group(22, profile: .vtd(interruptRemapping: false))
        try noIR.setContainer(container)
        let error = try #require(throws: VFIOError.self) { try container.setIOMMU(.type1v2) }
        #expect(error.errno == .notPermitted)
        #expect(error.message.contains("No interrupt remapping support.  Use the module param \"allow_unsafe_interrupts\""))
        #expect(container.iommuType == nil && container.domains.isEmpty)
        let blocked = try #require(system.core.group(27))
        #expect(blocked.domain == blocked.blockingDomain, "the first group is back on its blocking domain")
    }
}

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
