import KernelRules
import IOMMU

/// One `struct vfio_dma`: a MAP_DMA entry. Never coalesced with its neighbours (T1-22).
public struct DMAMapping: Sendable, Equatable, CustomStringConvertible {
    public let iova: UInt64
    /// Bytes, at least one page; `iova + size - 1` does not wrap (T1-14).
    public let size: UInt64
    /// The user's address for the pages (`dma->vaddr`); a VADDR update (T1-60) changes it.
    public let vaddr: UInt64
    /// Where the IOMMU maps the IOVA to: the pages pinned at MAP_DMA time, which a VADDR update
    /// does not move.
    public let hostAddress: UInt64
    public let access: IOAccess

    public init(iova: UInt64, size: UInt64, vaddr: UInt64, hostAddress: UInt64? = nil, access: IOAccess) {
        precondition(size > 0 && iova <= UInt64.max - (size - 1), "a mapping is a non-empty range that does not wrap")
        self.iova = iova
        self.size = size
        self.vaddr = vaddr
        self.hostAddress = hostAddress ?? vaddr
        self.access = access
    }

    /// The same pages reachable from a new user address (T1-60).
    func withVaddr(_ vaddr: UInt64) -> DMAMapping {
        DMAMapping(iova: iova, size: size, vaddr: vaddr, hostAddress: hostAddress, access: access)
    }

    /// Inclusive last IOVA.
    public var last: UInt64 { iova + (size - 1) }

    public var description: String { "\(rangeText(iova, last)) → vaddr 0x\(String(vaddr, radix: 16)) \(access)" }
}

/// The container's mappings (`iommu->dma_list`, an rb-tree in the kernel), ordered by IOVA and
/// disjoint: a two-level sorted array (chunks of at most `chunkLimit` entries), so lookups are
/// two binary searches and an insert or removal moves at most one chunk of entries, at any scale
/// type1 allows (65,535 entries by default, T1-01).
public struct DMAMappingTable: Sendable {
    private var chunks: [[DMAMapping]] = []
    public private(set) var count = 0
    static let chunkLimit = 128

    public init() {}

    public var isEmpty: Bool { count == 0 }

    /// Bytes the table's arrays hold allocated: every chunk's capacity of entries with its array
    /// header, and the array of chunks. What a container spends per MAP_DMA entry beside its
    /// page tables.
    public var storageBytes: Int {
        let header = 32  // a Swift array's heap header: isa, refcount, count, capacity
        return header + chunks.capacity * MemoryLayout<[DMAMapping]>.stride
            + chunks.reduce(0) { $0 + header + $1.capacity * MemoryLayout<DMAMapping>.stride }
    }

    /// All mappings in IOVA order.
    public var mappings: [DMAMapping] { chunks.flatMap { $0 } }

    /// Position of the last mapping starting at or below `iova`.
    private func predecessor(of iova: UInt64) -> (chunk: Int, index: Int)? {
        var low = 0
        var high = chunks.count
        while low < high {
            let middle = (low + high) / 2
            if chunks[middle][0].iova <= iova { low = middle + 1 } else { high = middle }
        }
        guard low > 0 else { return nil }
        let chunk = chunks[low - 1]
        var lowIndex = 0
        var highIndex = chunk.count
        while lowIndex < highIndex {
            let middle = (lowIndex + highIndex) / 2
            if chunk[middle].iova <= iova { lowIndex = middle + 1 } else { highIndex = middle }
        }
        return (low - 1, lowIndex - 1)
    }

    /// `vfio_find_dma`: a mapping overlapping `[first, last]`, if any (the lowest one).
    public func overlapping(first: UInt64, last: UInt64) -> DMAMapping? {
        if let containing = mapping(containing: first) { return containing }
        guard let next = firstMapping(startingAtOrAfter: first), next.iova <= last else { return nil }
        return next
    }

    /// The mapping containing `iova`.
    public func mapping(containing iova: UInt64) -> DMAMapping? {
        guard let position = predecessor(of: iova) else { return nil }
        let mapping = chunks[position.chunk][position.index]
        return mapping.last >= iova ? mapping : nil
    }

    /// Adds a mapping that overlaps none (the caller checked with `overlapping`).
    public mutating func insert(_ mapping: DMAMapping) {
        precondition(overlapping(first: mapping.iova, last: mapping.last) == nil, "type1 never inserts an overlapping mapping")
        count += 1
        guard let position = predecessor(of: mapping.iova) else {
            if chunks.isEmpty { chunks.append([mapping]) } else { chunks[0].insert(mapping, at: 0) }
            splitIfFull(0)
            return
        }
        chunks[position.chunk].insert(mapping, at: position.index + 1)
        splitIfFull(position.chunk)
    }

    /// In ascending order, every mapping that starts inside `[first, last]` (what UNMAP_DMA and
    /// GET_BITMAP walk).
    public func mappings(startingIn first: UInt64, _ last: UInt64) -> [DMAMapping] {
        var found: [DMAMapping] = []
        var next = firstMapping(startingAtOrAfter: first)
        while let mapping = next, mapping.iova <= last {
            found.append(mapping)
            next = mapping.last == .max ? nil : firstMapping(startingAtOrAfter: mapping.last + 1)
        }
        return found
    }

    /// The lowest mapping starting at or after `iova`.
    public func firstMapping(startingAtOrAfter iova: UInt64) -> DMAMapping? {
        guard let position = predecessor(of: iova) else { return chunks.first?.first }
        let mapping = chunks[position.chunk][position.index]
        if mapping.iova == iova { return mapping }
        return self.position(after: position).map { chunks[$0.chunk][$0.index] }
    }

    /// Removes the mapping that starts at `iova`.
    @discardableResult
    public mutating func remove(at iova: UInt64) -> DMAMapping? {
        guard let position = predecessor(of: iova), chunks[position.chunk][position.index].iova == iova else { return nil }
        let mapping = chunks[position.chunk].remove(at: position.index)
        if chunks[position.chunk].isEmpty { chunks.remove(at: position.chunk) }
        count -= 1
        return mapping
    }

    private func position(after position: (chunk: Int, index: Int)) -> (chunk: Int, index: Int)? {
        if position.index + 1 < chunks[position.chunk].count { return (position.chunk, position.index + 1) }
        return position.chunk + 1 < chunks.count ? (position.chunk + 1, 0) : nil
    }

    /// Splits an overfull chunk into two halves, each copied to storage of exactly its size: a
    /// half that takes no more inserts (the lower one, when mappings are added in IOVA order)
    /// then costs its entries and nothing more, rather than the doubled capacity it grew to.
    private mutating func splitIfFull(_ chunk: Int) {
        guard chunks[chunk].count > Self.chunkLimit else { return }
        let lower = Array(chunks[chunk][..<(Self.chunkLimit / 2)])
        let upper = Array(chunks[chunk][(Self.chunkLimit / 2)...])
        chunks[chunk] = lower
        chunks.insert(upper, at: chunk + 1)
    }
}
