import UserMemory
import KernelRules
import IOMMU
import SystemPackage

/// `VFIO_IOMMU_MAP_DMA`: the fields of `struct vfio_iommu_type1_dma_map` after `argsz`.
public struct DMAMapRequest: Sendable, Hashable {
    public var flags: DMAMapFlags
    public var vaddr: UInt64
    public var iova: UInt64
    public var size: UInt64

    public init(flags: DMAMapFlags, vaddr: UInt64, iova: UInt64, size: UInt64) {
        self.flags = flags
        self.vaddr = vaddr
        self.iova = iova
        self.size = size
    }
}

extension Type1IOMMU {
    /// `vfio_dma_do_map`: T1-11 (flags), T1-13..23 in the kernel's order; the VADDR update of
    /// T1-60 shares the path up to the overlap lookup.
    mutating func map(_ request: DMAMapRequest) throws(VFIOError) {
        let (iova, vaddr, size) = (request.iova, request.vaddr, request.size)
        guard request.flags.isSubset(of: DMAMapFlags.known) else {
            throw VFIOError(
                .invalidArgument, rule: .T1_11, "\(name) MAP_DMA: unknown flags 0x\(String(request.flags.subtracting(DMAMapFlags.known).rawValue, radix: 16))")
        }
        guard size > 0 else { throw VFIOError(.invalidArgument, rule: .T1_13, "\(name) MAP_DMA at IOVA 0x\(String(iova, radix: 16)): size 0") }
        guard iova <= .max - (size - 1), vaddr <= .max - (size - 1) else {
            throw VFIOError(
                .overflow, rule: .T1_14,
                "\(name) MAP_DMA: \(size) bytes from \(iova <= .max - (size - 1) ? "vaddr 0x\(String(vaddr, radix: 16))" : "IOVA 0x\(String(iova, radix: 16))") wrap past 2^64")
        }
        let last = iova + (size - 1)
        let access = request.flags.access
        let updatesVaddr = request.flags.contains(.vaddr)
        guard access.isEmpty == updatesVaddr else {
            throw VFIOError(
                .invalidArgument, rule: .T1_15,
                updatesVaddr
                    ? "\(name) MAP_DMA \(rangeText(iova, last)): a VADDR update takes neither READ nor WRITE"
                    : "\(name) MAP_DMA \(rangeText(iova, last)): neither READ nor WRITE requested")
        }
        let pageSize = minimumPageSize
        guard (size | iova | vaddr) & (pageSize - 1) == 0 else {
            throw VFIOError(
                .invalidArgument, rule: .T1_16,
                "\(name) MAP_DMA IOVA 0x\(String(iova, radix: 16)) vaddr 0x\(String(vaddr, radix: 16)) size 0x\(String(size, radix: 16)): not aligned to the minimum IOMMU page size 0x\(String(pageSize, radix: 16))")
        }
        let existing = table.overlapping(first: iova, last: last)
        if updatesVaddr {
            return try updateVaddr(existing, request)
        }
        if let existing {
            throw VFIOError(.fileExists, rule: .T1_17, "\(name) MAP_DMA \(rangeText(iova, last)): overlaps the mapping \(existing)")
        }
        guard dmaAvailable > 0 else {
            throw VFIOError(
                .noSpace, rule: .T1_18,
                "\(name) MAP_DMA \(rangeText(iova, last)): all \(options.dmaEntryLimit) DMA entries are in use (dma_entry_limit)")
        }
        guard iovaList.allows(first: iova, last: last) else {
            throw VFIOError(
                .invalidArgument, rule: .T1_19, "\(name) MAP_DMA \(rangeText(iova, last)): not inside one range of the allowed IOVA list \(iovaList)")
        }
        let mapping = DMAMapping(iova: iova, size: size, vaddr: vaddr, access: access)
        try pinAndMap(mapping)
        table.insert(mapping)
        dmaAvailable -= 1
    }

    /// T1-17 / T1-60: MAP_DMA with `VADDR` re-validates exactly one invalidated mapping.
    private mutating func updateVaddr(_ existing: DMAMapping?, _ request: DMAMapRequest) throws(VFIOError) {
        let range = rangeText(request.iova, request.iova + (request.size - 1))
        guard let existing else {
            throw VFIOError(.noSuchFileOrDirectory, rule: .T1_60, "\(name) MAP_DMA VADDR \(range): no mapping there")
        }
        guard invalidVaddrs.contains(existing.iova), existing.iova == request.iova, existing.size == request.size else {
            throw VFIOError(
                .invalidArgument, rule: .T1_60,
                invalidVaddrs.contains(existing.iova)
                    ? "\(name) MAP_DMA VADDR \(range): must match the mapping \(existing) exactly"
                    : "\(name) MAP_DMA VADDR \(range): the vaddr of \(existing) is still valid; invalidate it with UNMAP_DMA VADDR first")
        }
        _ = table.remove(at: existing.iova)
        table.insert(existing.withVaddr(request.vaddr))
        invalidVaddrs.remove(existing.iova)
    }

    /// `vfio_pin_map_dma`: pin the user pages, then map them into every domain; any failure
    /// unwinds what was done (T1-20).
    mutating func pinAndMap(_ mapping: DMAMapping) throws(VFIOError) {
        try iommuCall { () throws(MemoryError) in try process.pin(vaddr: mapping.hostAddress, size: mapping.size, access: mapping.access) }
        var mapped: [IOMMUDomain] = []
        for entry in domains {
            do {
                try entry.domain.map(iova: mapping.iova, to: mapping.hostAddress, size: mapping.size, access: mapping.access)
                mapped.append(entry.domain)
            } catch {
                // One IOTLB sync for the domains that mapped it and for the page tables the
                // failing domain linked and unlinked again.
                var gather = IOTLBGather()
                for domain in mapped { _ = domain.unmap(iova: mapping.iova, size: mapping.size, gather: &gather) }
                entry.domain.gatherUnlinkedTables(into: &gather)
                gather.sync()
                process.unpin(vaddr: mapping.hostAddress, size: mapping.size)
                throw VFIOError(error)
            }
        }
    }

    /// `vfio_remove_dma` for each of `mappings` in turn — `before` runs first for each and stops
    /// the removal by throwing — with one IOTLB sync for all that were removed, whichever way it
    /// returns. Each leaves the table and every domain and gives its entry back to `dma_avail`;
    /// its pages are unpinned only after the sync (`vfio_sync_unpin`), so the process cannot
    /// release memory a device may still reach through an IOTLB or a walk in flight.
    mutating func remove(_ mappings: [DMAMapping], before: (DMAMapping) throws(VFIOError) -> Void = { _ in }) throws(VFIOError) {
        var gather = IOTLBGather()
        var removed: [DMAMapping] = []
        defer {
            gather.sync()
            for mapping in removed { process.unpin(vaddr: mapping.hostAddress, size: mapping.size) }
        }
        for mapping in mappings {
            try before(mapping)
            _ = table.remove(at: mapping.iova)
            for entry in domains { _ = entry.domain.unmap(iova: mapping.iova, size: mapping.size, gather: &gather) }
            invalidVaddrs.remove(mapping.iova)
            dmaAvailable += 1
            removed.append(mapping)
        }
    }
}
