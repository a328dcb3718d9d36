/// An IOVA range an `IntervalTable` holds: `[iova, last]`, non-empty.
public protocol IOVAInterval: Sendable {
    var iova: UInt64 { get }
    var last: UInt64 { get }
}

/// Disjoint IOVA ranges ordered by IOVA — the kernel's interval trees of mappings: type1's
/// `iommu->dma_list`, iommufd's `area_itree` — as a two-level sorted array (chunks of at most
/// `chunkLimit` entries), so lookups are two binary searches and an insert or removal moves at
/// most one chunk of entries, at any scale (65,535 type1 entries by default, T1-01; no limit for
/// iommufd, IOMMUFD-217).
public struct IntervalTable<Entry: IOVAInterval>: Sendable {
    @usableFromInline var chunks: [[Entry]] = []
    @usableFromInline var entries = 0
    public var count: Int { entries }
    @usableFromInline static var chunkLimit: Int { 128 }

    @inlinable public init() {}

    @inlinable public var isEmpty: Bool { entries == 0 }

    /// Bytes the table's arrays hold allocated: every chunk's capacity of entries with its array
    /// header, and the array of chunks. What a container spends per MAP_DMA entry (an IOAS per
    /// area) beside its page tables.
    public var storageBytes: Int {
        let header = 32  // a Swift array's heap header: isa, refcount, count, capacity
        return header + chunks.capacity * MemoryLayout<[Entry]>.stride
            + chunks.reduce(0) { $0 + header + $1.capacity * MemoryLayout<Entry>.stride }
    }

    /// All entries in IOVA order.
    @inlinable public var mappings: [Entry] { chunks.flatMap { $0 } }

    /// Position of the last mapping starting at or below `iova`.
    @inlinable func predecessor(of iova: UInt64) -> (chunk: Int, index: Int)? {
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

    /// `vfio_find_dma` / `iopt_area_iter_first`: an entry overlapping `[first, last]`, if any (the lowest one).
    @inlinable public func overlapping(first: UInt64, last: UInt64) -> Entry? {
        if let containing = mapping(containing: first) { return containing }
        guard let next = firstMapping(startingAtOrAfter: first), next.iova <= last else { return nil }
        return next
    }

    /// The mapping containing `iova`.
    @inlinable public func mapping(containing iova: UInt64) -> Entry? {
        guard let position = predecessor(of: iova) else { return nil }
        let mapping = chunks[position.chunk][position.index]
        return mapping.last >= iova ? mapping : nil
    }

    /// Adds a mapping that overlaps none (the caller checked with `overlapping`).
    @inlinable public mutating func insert(_ mapping: Entry) {
        precondition(overlapping(first: mapping.iova, last: mapping.last) == nil, "an interval table never holds overlapping entries")
        entries += 1
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
    @inlinable public func mappings(startingIn first: UInt64, _ last: UInt64) -> [Entry] {
        var found: [Entry] = []
        var next = firstMapping(startingAtOrAfter: first)
        while let mapping = next, mapping.iova <= last {
            found.append(mapping)
            next = mapping.last == .max ? nil : firstMapping(startingAtOrAfter: mapping.last + 1)
        }
        return found
    }

    /// The lowest mapping starting at or after `iova`.
    @inlinable public func firstMapping(startingAtOrAfter iova: UInt64) -> Entry? {
        guard let position = predecessor(of: iova) else { return chunks.first?.first }
        let mapping = chunks[position.chunk][position.index]
        if mapping.iova == iova { return mapping }
        return self.position(after: position).map { chunks[$0.chunk][$0.index] }
    }

    /// Removes the mapping that starts at `iova`.
    @discardableResult
    @inlinable public mutating func remove(at iova: UInt64) -> Entry? {
        guard let position = predecessor(of: iova), chunks[position.chunk][position.index].iova == iova else { return nil }
        let mapping = chunks[position.chunk].remove(at: position.index)
        if chunks[position.chunk].isEmpty { chunks.remove(at: position.chunk) }
        entries -= 1
        return mapping
    }

    @inlinable func position(after position: (chunk: Int, index: Int)) -> (chunk: Int, index: Int)? {
        if position.index + 1 < chunks[position.chunk].count { return (position.chunk, position.index + 1) }
        return position.chunk + 1 < chunks.count ? (position.chunk + 1, 0) : nil
    }

    /// Splits an overfull chunk into two halves, each copied to storage of exactly its size: a
    /// half that takes no more inserts (the lower one, when mappings are added in IOVA order)
    /// then costs its entries and nothing more, rather than the doubled capacity it grew to.
    @inlinable mutating func splitIfFull(_ chunk: Int) {
        guard chunks[chunk].count > Self.chunkLimit else { return }
        let lower = Array(chunks[chunk][..<(Self.chunkLimit / 2)])
        let upper = Array(chunks[chunk][(Self.chunkLimit / 2)...])
        chunks[chunk] = lower
        chunks.insert(upper, at: chunk + 1)
    }
}
