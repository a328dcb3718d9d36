import Glibc
import Locking

/// Where page tables live (`iommu_alloc_pages`): 2 MiB chunks, aligned to 2 MiB and advised for
/// transparent huge pages, each carved into 64-byte-aligned table slots. The kernel's tables are
/// physical pages the IOMMU reaches without a TLB; here the walk goes through the CPU's TLB, and
/// a million 4 KiB mappings spread over 2,000 malloc'd 4 KiB pages miss it on every walk (more so
/// in a VM, where each miss walks two page tables). Chunks keep a large table's walk inside a few
/// huge pages. Shared by every page table of the process, behind one lock (tables are taken and
/// given back on map and unmap paths only, mostly through each table's spares); a chunk with no
/// table left is returned to the system, keeping at most one empty chunk for the next table.
/// Where `mmap` fails, tables come from the allocator instead.
final class PageTableArena: Sendable {
    static let shared = PageTableArena()

    static let chunkBytes = 2 << 20
    /// A table's 4,104 bytes rounded up to the 64-byte alignment.
    static let slotBytes = 4160
    static let slotsPerChunk = chunkBytes / slotBytes

    private struct Chunk {
        /// Free slot indexes, the lowest taken last-in first-out.
        var free: [Int]
        var live = 0
    }

    private struct State {
        var chunks: [UInt: Chunk] = [:]
        /// Chunks with a free slot.
        var partial: Set<UInt> = []
        var empty: UInt?
    }

    private let state = PThreadMutex(State())

    /// Chunks mapped now (empty ones kept for reuse included).
    var chunkCount: Int { state.withLock { $0.chunks.count } }

    /// A zeroed table of `bytes` (at most `slotBytes`) bytes.
    func allocate(bytes: Int) -> UnsafeMutableRawPointer {
        let slot = state.withLock { state -> UnsafeMutableRawPointer? in
            guard let base = state.partial.first ?? Self.newChunk(&state) else { return nil }
            let index = state.chunks[base]!.free.removeLast()
            state.chunks[base]!.live += 1
            if state.chunks[base]!.free.isEmpty { state.partial.remove(base) }
            if state.empty == base { state.empty = nil }
            return UnsafeMutableRawPointer(bitPattern: base + UInt(index * Self.slotBytes))
        }
        guard let slot else {
            let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            raw.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
            return raw
        }
        slot.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        return slot
    }

    /// Gives back a table `allocate(bytes:)` returned.
    func deallocate(_ table: UnsafeMutableRawPointer) {
        let base = UInt(bitPattern: table) & ~UInt(Self.chunkBytes - 1)
        let release = state.withLock { state -> Release in
            guard state.chunks[base] != nil else { return .toAllocator }
            state.chunks[base]!.free.append(Int(UInt(bitPattern: table) - base) / Self.slotBytes)
            state.chunks[base]!.live -= 1
            state.partial.insert(base)
            guard state.chunks[base]!.live == 0 else { return .nothing }
            // Keep one empty chunk for the next table; return an older one to the system.
            defer { state.empty = base }
            guard let older = state.empty, older != base else { return .nothing }
            state.chunks[older] = nil
            state.partial.remove(older)
            return .chunk(older)
        }
        switch release {
        case .toAllocator: table.deallocate()
        case .chunk(let older): munmap(UnsafeMutableRawPointer(bitPattern: older), Self.chunkBytes)
        case .nothing: break
        }
    }

    private enum Release {
        /// The table came from the allocator (no chunk could be mapped).
        case toAllocator
        /// An empty chunk to unmap.
        case chunk(UInt)
        case nothing
    }

    /// Maps a 2 MiB-aligned chunk (4 MiB mapped, the ends trimmed) and advises huge pages; nil
    /// when the system refuses the mapping.
    private static func newChunk(_ state: inout State) -> UInt? {
        let mapped = mmap(nil, 2 * chunkBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let mapped, mapped != MAP_FAILED else { return nil }
        let start = UInt(bitPattern: mapped)
        let base = (start + UInt(chunkBytes - 1)) & ~UInt(chunkBytes - 1)
        if base > start { munmap(mapped, Int(base - start)) }
        let tail = Int(start + UInt(2 * chunkBytes) - base) - chunkBytes
        if tail > 0 { munmap(UnsafeMutableRawPointer(bitPattern: base + UInt(chunkBytes)), tail) }
        _ = madvise(UnsafeMutableRawPointer(bitPattern: base), chunkBytes, MADV_HUGEPAGE)
        state.chunks[base] = Chunk(free: Array((0..<slotsPerChunk).reversed()))
        state.partial.insert(base)
        return base
    }
}
