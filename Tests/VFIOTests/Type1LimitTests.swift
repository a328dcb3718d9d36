import KernelRules
import Locking
import IOMMU
import PCIBus
import SystemPackage
import Testing

@testable import IOMMU
@testable import VFIO
import UserMemory

/// The type1 container at its limits, on `devices/default` group 27 (0000:5e:00.0): the entry
/// limit at its default, the locked-memory limit, ranges that end at or wrap past 2^64, absurd
/// sizes, and a million entries. The small cases of the same rules are rows of
/// `Type1ConformanceTests` (T1-14, T1-18, T1-20) and `VST-10` in `SelftestDeviceTests`.
@Suite("Type1 limits (T1-01, T1-14, T1-18, T1-20, T1-32, T1-38)")
struct Type1LimitTests {
    static let page: UInt64 = 0x1000
    static let device = PCIAddress(parsing: "0000:5e:00.0")!

    /// What a failed call must leave as it was.
    struct Observed: Equatable {
        let info: Type1Info
        let mappings: Int
        let lockedBytes: UInt64
        let mappedBytes: UInt64

        init(_ setup: VFIOTestMachine.Setup) throws {
            info = try setup.container.info()
            mappings = setup.container.state.withLock { $0.iommu!.table.count }
            lockedBytes = setup.system.process.lockedBytes
            mappedBytes = setup.container.domains.reduce(0) { $0 + $1.mappedBytes }
        }
    }

    @Test("T1-18: at the default dma_entry_limit of 65,535 the next MAP_DMA is ENOSPC and changes nothing; UNMAP_ALL gives every entry back (T1-38)")
    func entryLimit() throws {
        let setup = try VFIOTestMachine.setup(memory: 16 * Self.page)
        let limit = UInt64(VFIOContainerOptions().dmaEntryLimit)
        #expect(limit == 65535)
        for index in 0..<limit {
            try setup.container.map(vaddr: setup.memory.address + index % 16 * Self.page, iova: (1 << 32) + index * Self.page, size: Self.page)
        }
        let full = try Observed(setup)
        #expect(full.info.dmaAvailable == 0 && full.mappings == 65535)
        let error = try #require(throws: VFIOError.self) {
            try setup.container.map(vaddr: setup.memory.address, iova: 1 << 40, size: Self.page)
        }
        #expect(error.errno == .noSpace && error.rule.id == "T1-18" && error.message.contains("all 65535 DMA entries are in use"))
        #expect(try Observed(setup) == full)
        #expect(try setup.container.unmap(iova: 1 << 32, size: Self.page) == Self.page)
        try setup.container.map(vaddr: setup.memory.address, iova: 1 << 40, size: Self.page)
        #expect(try setup.container.unmapAll() == limit * Self.page)
        #expect(try setup.container.info().dmaAvailable == 65535)
        #expect(setup.system.process.lockedBytes == 0 && setup.container.domains[0].mappedBytes == 0)
    }

    @Test("T1-20: a pin past RLIMIT_MEMLOCK is ENOMEM with the kernel's message, refused whole, and changes nothing")
    func lockedMemoryLimit() throws {
        let setup = try VFIOTestMachine.setup(memory: 64 * Self.page)
        setup.system.process.lockedMemoryLimit = 8 * Self.page
        try setup.container.map(vaddr: setup.memory.address, iova: 0, size: 6 * Self.page)
        let before = try Observed(setup)
        let error = try #require(throws: VFIOError.self) {
            try setup.container.map(vaddr: setup.memory.address, iova: 1 << 30, size: 3 * Self.page)
        }
        #expect(error.errno == .noMemory && error.message.hasPrefix("vfio_pin_pages_remote: RLIMIT_MEMLOCK (32768) exceeded"))
        #expect(try Observed(setup) == before, "no entry, no pin, nothing in the page table")
        try setup.container.map(vaddr: setup.memory.address, iova: 1 << 30, size: 2 * Self.page)
        #expect(setup.system.process.lockedBytes == 8 * Self.page, "exactly at the limit is allowed")
        setup.system.process.lockedMemoryLimit = Self.page
        let below = try #require(throws: VFIOError.self) { try setup.container.map(vaddr: setup.memory.address, iova: 1 << 31, size: Self.page) }
        #expect(below.errno == .noMemory, "a limit lowered below what is locked refuses new pins only")
        #expect(try setup.container.unmapAll() == 8 * Self.page && setup.system.process.lockedBytes == 0)
        try setup.container.map(vaddr: setup.memory.address, iova: 1 << 31, size: Self.page)
    }

    @Test("T1-14, T1-32: with a 64-bit aperture the last page below 2^64 maps, takes DMA and unmaps; a range one page longer wraps: EOVERFLOW")
    func lastPage() throws {
        let setup = try VFIOTestMachine.setup(profile: .fullWidth)
        #expect(try setup.container.info().iovaRanges.map { $0.start...$0.end } == [0...UInt64.max])
        let top = UInt64.max - (Self.page - 1)
        try setup.container.map(vaddr: setup.memory.address, iova: top, size: Self.page)
        #expect(
            setup.system.core.translate(from: Self.device, iova: .max, access: .write)
                == .mapped(address: setup.memory.address + Self.page - 1, contiguous: 1))
        let before = try Observed(setup)
        expectOverflow { () throws(VFIOError) in try setup.container.map(vaddr: setup.memory.address, iova: top, size: 2 * Self.page) }
        expectOverflow { () throws(VFIOError) in _ = try setup.container.unmap(iova: top, size: 2 * Self.page) }
        expectOverflow { () throws(VFIOError) in try setup.container.map(vaddr: setup.memory.address, iova: 2 * Self.page, size: top) }
        #expect(try Observed(setup) == before)
        #expect(try setup.container.unmap(iova: top - Self.page, size: 2 * Self.page) == Self.page, "a range ending at 2^64 - 1")
        #expect(setup.system.core.translate(from: Self.device, iova: .max, access: .read) == .fault(.notPresent))
    }

    @Test("T1-32, T1-33, T1-38: UNMAP_DMA of 2^64 - 4096 bytes takes every whole mapping in it; MAP_DMA of that size fails cleanly")
    func almostEverything() throws {
        let setup = try VFIOTestMachine.setup(profile: .fullWidth)
        let size = UInt64.max - (Self.page - 1)  // 2^64 - 4096
        for iova in [0, 1 << 40, size] as [UInt64] {
            try setup.container.map(vaddr: setup.memory.address, iova: iova, size: Self.page)
        }
        let before = try Observed(setup)
        // vaddr + size wraps (T1-14); an address that does not wrap is no process memory (T1-20 EFAULT).
        expectOverflow { () throws(VFIOError) in try setup.container.map(vaddr: setup.memory.address, iova: Self.page, size: size) }
        let unbacked = try #require(throws: VFIOError.self) { try setup.container.map(vaddr: Self.page, iova: Self.page, size: size) }
        #expect(unbacked.errno == .fileExists, "the existing mappings inside the range are found first (T1-17): \(unbacked)")
        #expect(try Observed(setup) == before)
        #expect(try setup.container.unmap(iova: 0, size: size) == 2 * Self.page, "[0, 2^64 - 4097]: the top page stays")
        let empty = try VFIOTestMachine.setup(profile: .fullWidth)
        let pinFails = try #require(throws: VFIOError.self) { try empty.container.map(vaddr: Self.page, iova: Self.page, size: size) }
        #expect(pinFails.errno == .badAddress && pinFails.rule.id == "T1-20", "\(pinFails)")
        #expect(try setup.container.unmap(iova: Self.page, size: size) == Self.page, "[4096, 2^64 - 1]: the top page goes")
        #expect(try setup.container.info().dmaAvailable == 65535 && setup.system.process.lockedBytes == 0)
        try setup.container.map(vaddr: setup.memory.address, iova: size, size: Self.page)
        #expect(try setup.container.unmapAll() == Self.page)
    }

    @Test("an absurd MAP_DMA (64 TiB at 4 KiB granularity) is ENOMEM from the page table, not an exhausted host; nothing stays pinned")
    func absurdSize() throws {
        let setup = try VFIOTestMachine.setup()
        let huge: UInt64 = 1 << 46
        let memory: HostMemory
        do throws(MemoryError) {
            memory = try setup.system.process.allocate(size: huge)
        } catch {
            // A host that refuses the 64 TiB reservation fails as cleanly, one step earlier.
            #expect(error.errno == .noMemory, "\(error)")
            return
        }
        let before = try Observed(setup)
        // IOVA and vaddr differ in bit 12, so only 4 KiB pages fit: 2^25 leaf tables.
        let error = try #require(throws: VFIOError.self) {
            try setup.container.map(vaddr: memory.address, iova: huge + Self.page, size: huge)
        }
        #expect(error.errno == .noMemory && error.message.contains("page tables"), "\(error)")
        #expect(try Observed(setup) == before)
        try setup.system.process.release(memory)
    }

    @Test("1,000,000 one-page entries in one container: all reachable, ENOSPC past the raised limit, ≤ 48 bytes of mapping table and ≤ 8.1 bytes of page table per entry")
    func millionEntries() throws {
        let count: UInt64 = 1_000_000
        let setup = try VFIOTestMachine.setup(options: VFIOContainerOptions(dmaEntryLimit: UInt32(count)), memory: 4096 * Self.page)
        let base: UInt64 = 1 << 32
        for index in 0..<count {
            try setup.container.map(vaddr: setup.memory.address + index % 4096 * Self.page, iova: base + index * Self.page, size: Self.page)
        }
        #expect(try setup.container.info().dmaAvailable == 0)
        #expect(throws: VFIOError.self) { try setup.container.map(vaddr: setup.memory.address, iova: 1 << 40, size: Self.page) }
        var random = SplitMix64(seed: 0x1_000_000)
        for _ in 0..<1000 {
            let index = UInt64(random.below(Int(count)))
            let expected = setup.memory.address + index % 4096 * Self.page + 0x18
            #expect(setup.system.core.translate(from: Self.device, iova: base + index * Self.page + 0x18, access: .read).address == expected)
        }
        let tableBytes = setup.container.state.withLock { $0.iommu!.table.storageBytes }
        let pageTableBytes = setup.container.domains[0].pageTableBytes
        #expect(Double(tableBytes) / Double(count) <= 48, "mapping table: \(tableBytes) bytes for \(count) entries")
        #expect(Double(pageTableBytes) / Double(count) <= 8.1, "page tables: \(pageTableBytes) bytes for \(count) pages")
        #expect(try setup.container.unmapAll() == count * Self.page)
        #expect(setup.container.domains[0].pageTableBytes <= 33 * 4104, "the root and at most 32 spare tables remain")
    }

    private func expectOverflow(sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws(VFIOError) -> Void) {
        #expect(errnoOf(body) == .overflow, sourceLocation: sourceLocation)
    }
}

extension PlatformProfile {
    /// VT-d's page sizes over the whole 64-bit IOVA space, with no reserved region: the IOVA list
    /// is [0, 2^64 - 1], so the page below 2^64 can be mapped.
    static let fullWidth = PlatformProfile(
        name: "full-64", title: "64-bit aperture without reserved regions", geometry: .addressWidth(64), pageSizes: .x86Large,
        pageShift: 12, interruptRemapping: true, enforcesCacheCoherency: true, defaultDomainType: .dma, fixedDefaultDomain: false,
        supportsIdentity: true, supportsBlockedDomain: true, platformRegions: [], firmwareRegions: .intelRMRR)
}

extension IOTranslation {
    /// The host address of a successful translation.
    var address: UInt64? {
        if case .mapped(let address, _) = self { return address }
        return nil
    }
}
