import Glibc
import IOMMU
import KernelRules
import SystemPackage
import Testing
import UserMemory

/// `ProcessMemory.wholeProcess()`: type1's pinning (`vfio_pin_pages_remote`, T1-20) on the real
/// address space of this process, as `vfiokit run` gives an unmodified program.
@Suite("Whole-process pinning (T1-20, VST-11)")
struct WholeProcessMemoryTests {
    static func mapping(_ size: Int, _ protection: Int32) throws -> UnsafeMutableRawPointer {
        let raw = try #require(mmap(nil, size, protection, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
        try #require(raw != MAP_FAILED)
        return raw
    }

    static func address(_ pointer: UnsafeMutableRawPointer) -> UInt64 { UInt64(UInt(bitPattern: pointer)) }

    @Test("T1-20: any readable mapping pins for device reads; writes need a writable one; PROT_NONE and unmapped are EFAULT; each pin is charged")
    func pinning() throws {
        let memory = ProcessMemory(addressSpace: .wholeProcess)
        let writable = try Self.mapping(8192, PROT_READ | PROT_WRITE)
        let readOnly = try Self.mapping(4096, PROT_READ)
        let none = try Self.mapping(4096, PROT_NONE)
        defer { [writable, readOnly, none].forEach { _ = munmap($0, 4096) } }
        try memory.pin(vaddr: Self.address(writable), size: 8192, access: .readWrite)
        try memory.pin(vaddr: Self.address(readOnly), size: 4096, access: .read)
        #expect(memory.lockedBytes == 12288)
        for (start, access) in [(readOnly, IOAccess.readWrite), (none, .read)] {
            #expect(throws: MemoryError.self) { try memory.pin(vaddr: Self.address(start), size: 4096, access: access) }
        }
        #expect(memory.lockedBytes == 12288, "a refused pin charges nothing")
        let grant = try #require(memory.grant(containing: Self.address(writable) + 100))
        #expect(grant.start == Self.address(writable) && grant.end == Self.address(writable) + 8192)
        memory.unpin(vaddr: Self.address(writable), size: 8192)
        memory.unpin(vaddr: Self.address(readOnly), size: 4096)
        #expect(memory.lockedBytes == 0 && memory.grant(containing: Self.address(writable)) == nil)
    }

    @Test("VST-11: a device mapping pins as VM_PFNMAP, uncharged; DMA reaches it only where it is device RAM")
    func deviceMappings() throws {
        let memory = ProcessMemory(lockedMemoryLimit: 0, addressSpace: .wholeProcess)
        let registers = try Self.mapping(4096, PROT_NONE)
        let ram = try Self.mapping(4096, PROT_READ | PROT_WRITE)
        defer { [registers, ram].forEach { _ = munmap($0, 4096) } }
        memory.addDeviceMapping(start: Self.address(registers), length: 4096, directlyAccessible: false)
        memory.addDeviceMapping(start: Self.address(ram), length: 4096, directlyAccessible: true)
        try memory.pin(vaddr: Self.address(registers), size: 4096, access: .readWrite)
        try memory.pin(vaddr: Self.address(ram), size: 4096, access: .readWrite)
        #expect(memory.lockedBytes == 0, "PFNMAP pages are not charged, even with RLIMIT_MEMLOCK 0")
        #expect(memory.grant(containing: Self.address(registers)) == nil, "registers are never touched directly")
        #expect(memory.grant(containing: Self.address(ram)) != nil)
    }

    @Test("munmap of pinned pages keeps them until the last unpin; the rest of the range goes at once")
    func unmapWhilePinned() throws {
        let memory = ProcessMemory(addressSpace: .wholeProcess)
        let region = try Self.mapping(3 * 4096, PROT_READ | PROT_WRITE)
        let start = Self.address(region)
        try memory.pin(vaddr: start + 4096, size: 4096, access: .readWrite)
        let pieces = memory.unmapping(start: start, length: 3 * 4096)
        #expect(pieces.map(\.start) == [start, start + 8192] && pieces.map(\.end) == [start + 4096, start + 3 * 4096])
        for piece in pieces { munmap(UnsafeMutableRawPointer(bitPattern: UInt(piece.start)), Int(piece.end - piece.start)) }
        (region + 4096).storeBytes(of: 0xab, as: UInt8.self)  // still mapped: a device may still write it
        #expect(memory.grant(containing: start + 4096) != nil)
        memory.unpin(vaddr: start + 4096, size: 4096)
        #expect(isMapped(start + 4096) == false, "released with its last pin")
    }
}

/// Whether a byte at `address` can be read (mincore: ENOMEM for an unmapped page).
private func isMapped(_ address: UInt64) -> Bool {
    var vector: UInt8 = 0
    return mincore(UnsafeMutableRawPointer(bitPattern: UInt(address & ~4095)), 4096, &vector) == 0
}
