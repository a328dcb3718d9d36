import CRCU
import KernelRules
import SystemPackage

/// A multi-level I/O page table, as the hardware walks it (Intel VT-d second-level tables,
/// `io-pgtable-arm` LPAE stage 1, AMD-Vi v1): 512 eight-byte entries per table, one table level per
/// 9 bits of IOVA above the page offset, leaf superpages at the upper levels when the page-size
/// bitmap allows them. Tables are allocated when the first entry below them is mapped and freed
/// when the last one is unmapped, so memory follows what is mapped, not the address space.
///
/// Output addresses are opaque 64-bit values (in the simulation, addresses of pinned host memory).
/// `map` and `unmap` must be serialised by the owner. `translate` may run beside them, as the
/// hardware's walk does, in a table built with `deferredTableFree`: every entry is read and
/// written whole (`READ_ONCE`/`WRITE_ONCE`), a table is filled before it is linked, and a table
/// unlinked by `unmap` goes on a freelist instead of being freed or reused, until the owner has
/// waited out the walks that may still be in it (`iommu_iotlb_sync` and
/// `iommu_put_pages_list(&gather->freelist)`; `takeFreelist()`, `recycle(_:)`).
public final class IOPageTable {
    /// The page below which nothing is mapped: 4 KiB, or 2 KiB for the iommufd selftest's mock.
    public let pageShift: Int
    public let levels: Int
    public let pageSizes: PageSizeBitmap
    /// IOVAs below `1 << inputBits` are translatable.
    public let inputBits: Int
    /// Tables linked in the tree or waiting on the freelist (the root included).
    public var tableCount: Int { books.pointee.tableCount }
    public var mappedBytes: UInt64 { books.pointee.mappedBytes }
    /// The most tables `map` may hold live (the root included): past it `map` fails with
    /// `ENOMEM`, as `iommu_map` does when it cannot allocate a table page. Splitting a superpage
    /// on unmap, which cannot fail, may go past it.
    public let tableLimit: Int
    /// 2^18 tables (1.08 GB with their counters): 512 GiB mapped with 4 KiB pages, all of a
    /// 48-bit space with 2 MiB pages — far beyond any test or sample, well below what would
    /// exhaust a host.
    public static let defaultTableLimit = 1 << 18

    private let root: UnsafeMutablePointer<UInt64>
    /// How many emptied tables are kept for reuse, so a map/unmap cycle does not allocate and
    /// clear 4 KiB per level; bounded, so memory still follows what is mapped.
    private static let spareTableLimit = 32
    /// Whether unlinked tables wait on a freelist (lock-free walks may be in them).
    public let deferredTableFree: Bool
    /// The table's mutable bookkeeping, out of line: `map` and `unmap` are serialised by the
    /// owner, so the per-access exclusivity checks Swift makes on a class's stored properties
    /// would only cost time on every map and unmap.
    private let books: UnsafeMutablePointer<Books>

    private struct Books {
        var tableCount = 1
        var mappedBytes: UInt64 = 0
        /// Emptied tables kept for reuse (already all zero), at most `spareTableLimit`.
        var spareTables: [UnsafeMutablePointer<UInt64>] = []
        /// Tables unlinked since the last `takeFreelist()`, counted in `tableCount` until recycled.
        var freelist: [UnsafeMutablePointer<UInt64>] = []
    }

    static let entriesPerTable = 512
    static let indexBits = 9
    /// One extra slot after the 512 entries counts the live ones, so empty tables can be freed.
    private static let tableBytes = (entriesPerTable + 1) * 8

    private static let valid: UInt64 = 1
    private static let leaf: UInt64 = 2
    private static let readable: UInt64 = 4
    private static let writable: UInt64 = 8
    private static let flagMask: UInt64 = 0xF

    /// A table covering `inputBits` of IOVA with pages of `1 << pageShift` bytes; `pageSizes` must
    /// contain the base page and may add the sizes of upper levels (superpages). At most
    /// `tableLimit` tables, the root included. With `deferredTableFree`, unlinked tables wait on a
    /// freelist (`takeFreelist()`, `recycle(_:)`), so `translate` may run beside `map` and `unmap`.
    public init(
        inputBits: Int, pageShift: Int = 12, pageSizes: PageSizeBitmap, tableLimit: Int = defaultTableLimit, deferredTableFree: Bool = false
    ) throws(IOMMUError) {
        guard tableLimit >= 1 else {
            throw IOMMUError(.invalidArgument, rule: .none, "page table: a limit of \(tableLimit) tables leaves no room for the root")
        }
        guard (11...16).contains(pageShift), (pageShift + 1...64).contains(inputBits) else {
            throw IOMMUError(.invalidArgument, rule: .none, "page table: \(inputBits)-bit input with 2^\(pageShift)-byte pages is not a table format")
        }
        let levels = (inputBits - pageShift + Self.indexBits - 1) / Self.indexBits
        let levelSizes = (0..<levels).map { UInt64(1) << UInt64(pageShift + Self.indexBits * $0) }
        let supported = PageSizeBitmap(rawValue: pageSizes.rawValue & levelSizes.reduce(0, |))
        guard pageSizes.contains(UInt64(1) << UInt64(pageShift)), supported == pageSizes else {
            throw IOMMUError(
                .invalidArgument, rule: .none,
                "page table: page sizes \(pageSizes) do not fit a \(levels)-level table of 2^\(pageShift)-byte pages (leaf sizes: \(PageSizeBitmap(sizes: levelSizes)))")
        }
        self.pageShift = pageShift
        self.levels = levels
        self.pageSizes = pageSizes
        self.inputBits = inputBits
        self.tableLimit = tableLimit
        self.deferredTableFree = deferredTableFree
        inputLimit = inputBits >= 64 ? .max : (1 << UInt64(inputBits)) - 1
        rootShift = UInt64(pageShift + Self.indexBits * (levels - 1))
        root = Self.allocateTable()
        books = .allocate(capacity: 1)
        books.initialize(to: Books())
    }

    deinit {
        free(root, level: 0)
        books.pointee.spareTables.forEach(Self.deallocateTable)
        books.pointee.freelist.forEach(Self.deallocateTable)
        books.deinitialize(count: 1)
        books.deallocate()
    }

    /// Bytes held by page tables (linked, on the freelist, and the few spares kept for reuse).
    public var tableMemoryBytes: Int { (tableCount + books.pointee.spareTables.count) * Self.tableBytes }

    /// One table's memory: 512 entries and the live-entry counter.
    public typealias TablePage = UnsafeMutablePointer<UInt64>

    /// Hands over the tables unlinked so far (to an IOTLB gather); they stay counted in
    /// `tableCount` until given to `recycle(_:)`.
    public func takeFreelist() -> [TablePage] {
        defer { books.pointee.freelist.removeAll() }
        return books.pointee.freelist
    }

    /// `iommu_put_pages_list`: tables taken with `takeFreelist()` become spares or are freed. Call
    /// it only once no walk that began before they were unlinked can still be in them.
    public func recycle(_ unlinked: [TablePage]) {
        books.pointee.tableCount -= unlinked.count
        unlinked.forEach(recycle)
    }


    @inline(__always) private func shift(_ level: Int) -> Int { pageShift + Self.indexBits * (levels - 1 - level) }

    @inline(__always) private static func index(_ iova: UInt64, _ shift: Int) -> Int { Int(truncatingIfNeeded: (iova >> UInt64(shift)) & 511) }

    @inline(__always) private static func table(_ entry: UInt64) -> UnsafeMutablePointer<UInt64> {
        UnsafeMutablePointer(bitPattern: UInt(entry & ~flagMask))!
    }

    /// The last translatable IOVA.
    private let inputLimit: UInt64
    /// The IOVA bit the root's index starts at.
    private let rootShift: UInt64

    /// Walks the table for `iova`: the output address and the bytes left in its leaf, or why the
    /// walk faulted. Permissions are checked against `access`. Lock-free: each entry is loaded
    /// once, whole, so a walk beside `map`/`unmap` sees every entry either before or after.
    @inline(__always)
    public func translate(_ iova: UInt64, access: IOAccess) -> IOTranslation {
        guard iova <= inputLimit else { return .fault(.outsideAperture) }
        var table = root
        var levelShift = rootShift
        while true {
            let entry = vfiokit_rcu_dereference(table + Int(truncatingIfNeeded: (iova &>> levelShift) & 511))
            if entry & Self.valid == 0 { return .fault(.notPresent) }
            if entry & Self.leaf != 0 {
                if access.contains(.read), entry & Self.readable == 0 { return .fault(.readDenied) }
                if access.contains(.write), entry & Self.writable == 0 { return .fault(.writeDenied) }
                let pageMask = (1 &<< levelShift) &- 1
                let offset = iova & pageMask
                return .mapped(address: (entry & ~Self.flagMask) &+ offset, contiguous: pageMask &- offset &+ 1)
            }
            // A table entry never sits at the last level, so the walk ends within `levels` steps.
            table = UnsafeMutablePointer(bitPattern: UInt(entry & ~Self.flagMask)).unsafelyUnwrapped
            levelShift &-= UInt64(Self.indexBits)
        }
    }

    /// `iommu_map` (DOM-04): maps `[iova, iova + size)` to `[address, address + size)` with the
    /// largest pages that fit, and returns the bytes mapped. Fails with `EINVAL` when `iova`,
    /// `address` or `size` is not aligned to the smallest page or `access` is empty, `ERANGE` past
    /// the table's input range, `EEXIST` over an existing mapping, `ENOMEM` when the tables it
    /// needs would pass `tableLimit` (at once when even the fewest it could need would); a
    /// failure maps nothing.
    @discardableResult
    public func map(iova: UInt64, to address: UInt64, size: UInt64, access: IOAccess) throws(IOMMUError) -> UInt64 {
        let minimum = pageSizes.minimumPageSize
        guard (iova | address | size) & (minimum - 1) == 0 else {
            throw IOMMUError(
                .invalidArgument, rule: .DOM_04,
                "map: iova 0x\(String(iova, radix: 16)), address 0x\(String(address, radix: 16)) and size 0x\(String(size, radix: 16)) must be aligned to the minimum page size 0x\(String(minimum, radix: 16))")
        }
        guard !access.isEmpty else {
            throw IOMMUError(.invalidArgument, rule: .DOM_04, "map: a mapping needs read or write permission")
        }
        guard size > 0 else { return 0 }
        guard size - 1 <= inputLimit, iova <= inputLimit - (size - 1), address <= UInt64.max - (size - 1) else {
            throw IOMMUError(
                .outOfRange, rule: .DOM_04,
                "map: [0x\(String(iova, radix: 16)), +0x\(String(size, radix: 16))) exceeds the page table's \(inputBits)-bit input range")
        }
        let fewest = fewestTables(iova: iova, address: address, size: size)
        guard fewest <= tableLimit else {
            throw tablesExhausted(iova, size, "needs at least \(fewest) page tables, more than the limit of \(tableLimit)")
        }
        let flags = Self.valid | Self.leaf | (access.contains(.read) ? Self.readable : 0) | (access.contains(.write) ? Self.writable : 0)
        var mapped: UInt64 = 0
        while mapped < size {
            let page = pageSizes.largestPage(iova: iova + mapped, address: address + mapped, remaining: size - mapped)
            switch install(iova: iova + mapped, entry: (address + mapped) | flags, pageSize: page) {
            case .installed:
                mapped += page
                books.pointee.mappedBytes += page
            case .occupied:
                unmap(iova: iova, size: mapped)
                throw IOMMUError(
                    .fileExists, rule: .DOM_04,
                    "map: IOVA 0x\(String(iova + mapped, radix: 16)) is already mapped (unmap it first)")
            case .outOfTables:
                unmap(iova: iova, size: mapped)
                throw tablesExhausted(iova, size, "ran out of page tables at IOVA 0x\(String(iova + mapped, radix: 16)): all \(tableLimit) allowed are in use")
            }
        }
        return mapped
    }

    /// The fewest tables, the root included, a map of `size` bytes from `iova` to `address` can
    /// leave the table with: no page can be larger than the relative alignment of `iova` and
    /// `address` allows, so every byte needs the table that holds leaves of that largest page.
    private func fewestTables(iova: UInt64, address: UInt64, size: UInt64) -> Int {
        let relative = iova ^ address
        var candidates = pageSizes.rawValue
        if relative != 0 { candidates &= (relative & (0 &- relative)) &* 2 &- 1 }
        candidates &= size >= (1 << 63) ? .max : (UInt64(1) << (64 - size.leadingZeroBitCount)) - 1
        let largest = UInt64(1) << (63 - candidates.leadingZeroBitCount)
        // Leaves of `largest` sit one level below tables spanning `largest << 9` bytes; none at the root.
        let spanShift = largest.trailingZeroBitCount + Self.indexBits
        guard spanShift < pageShift + Self.indexBits * levels, spanShift < 64 else { return 1 }
        let last = iova + (size - 1)
        let spanned = (last >> UInt64(spanShift)) - (iova >> UInt64(spanShift)) + 1
        return spanned >= UInt64(Int.max) ? .max : 1 + Int(spanned)
    }

    private func tablesExhausted(_ iova: UInt64, _ size: UInt64, _ what: String) -> IOMMUError {
        let bytes = tableLimit.multipliedReportingOverflow(by: Self.tableBytes)
        return IOMMUError(
            .noMemory, rule: .DOM_04,
            "map: [0x\(String(iova, radix: 16)), +0x\(String(size, radix: 16))) \(what)\(bytes.overflow ? "" : " (\(bytes.partialValue) bytes)"), as iommu_map fails with ENOMEM when it cannot allocate a table; nothing was mapped")
    }

    /// `iommu_unmap` (DOM-04): unmaps from `iova` until `size` bytes are gone or an unmapped IOVA
    /// is reached, and returns the bytes unmapped (0 when misaligned). A superpage only partly
    /// covered is split first, so exactly the requested range goes.
    @discardableResult
    public func unmap(iova: UInt64, size: UInt64) -> UInt64 {
        let minimum = pageSizes.minimumPageSize
        guard (iova | size) & (minimum - 1) == 0, size > 0, iova <= inputLimit else { return 0 }
        var unmapped: UInt64 = 0
        while unmapped < size, iova &+ unmapped >= iova, iova + unmapped <= inputLimit {
            let cleared = clear(table: root, level: 0, iova: iova + unmapped, remaining: size - unmapped)
            guard cleared > 0 else { break }
            unmapped += cleared
        }
        books.pointee.mappedBytes -= unmapped
        return unmapped
    }

    private enum Installation { case installed, occupied, outOfTables }

    /// Installs one leaf of `pageSize` bytes, allocating tables on the way — all of them or, when
    /// they would pass `tableLimit`, none. Occupied if anything is already mapped there.
    private func install(iova: UInt64, entry: UInt64, pageSize: UInt64) -> Installation {
        let targetLevel = levels - 1 - (pageSize.trailingZeroBitCount - pageShift) / Self.indexBits
        var table = root
        for level in 0..<targetLevel {
            let slot = table + Self.index(iova, shift(level))
            if slot.pointee == 0 {
                // Every level below an empty slot needs a new table.
                if tableCount + (targetLevel - level) > tableLimit { return .outOfTables }
                let child = takeTable()
                vfiokit_rcu_assign(slot, UInt64(UInt(bitPattern: child)) | Self.valid)
                table[Self.entriesPerTable] += 1
            } else if slot.pointee & Self.leaf != 0 {
                return .occupied
            }
            table = Self.table(slot.pointee)
        }
        let slot = table + Self.index(iova, shift(targetLevel))
        guard slot.pointee == 0 else { return .occupied }
        vfiokit_rcu_assign(slot, entry)
        table[Self.entriesPerTable] += 1
        return .installed
    }

    /// Clears the leaf that maps `iova` at or below `table` (splitting a superpage that extends
    /// past `remaining` or starts before `iova`); returns its size, 0 when nothing is mapped.
    private func clear(table: UnsafeMutablePointer<UInt64>, level: Int, iova: UInt64, remaining: UInt64) -> UInt64 {
        let levelShift = shift(level)
        let slot = table + Self.index(iova, levelShift)
        let entry = slot.pointee
        guard entry & Self.valid != 0 else { return 0 }
        if entry & Self.leaf != 0 {
            let pageSize = UInt64(1) << UInt64(levelShift)
            if iova & (pageSize - 1) == 0, remaining >= pageSize {
                vfiokit_rcu_assign(slot, 0)
                table[Self.entriesPerTable] -= 1
                return pageSize
            }
            split(slot: slot, level: level)
        }
        let child = Self.table(slot.pointee)
        let cleared = clear(table: child, level: level + 1, iova: iova, remaining: remaining)
        if child[Self.entriesPerTable] == 0 {
            vfiokit_rcu_assign(slot, 0)
            releaseTable(child)
            table[Self.entriesPerTable] -= 1
        }
        return cleared
    }

    /// Replaces a superpage leaf with a table of 512 next-level leaves covering the same range
    /// with the same permissions (`arm_lpae_split_blk_unmap`).
    private func split(slot: UnsafeMutablePointer<UInt64>, level: Int) {
        let entry = slot.pointee
        let childSize = UInt64(1) << UInt64(shift(level + 1))
        let child = takeTable()
        let base = entry & ~Self.flagMask
        let flags = entry & Self.flagMask
        for index in 0..<Self.entriesPerTable { child[index] = (base + UInt64(index) * childSize) | flags }
        child[Self.entriesPerTable] = UInt64(Self.entriesPerTable)
        vfiokit_rcu_assign(slot, UInt64(UInt(bitPattern: child)) | Self.valid)
    }

    private func free(_ table: UnsafeMutablePointer<UInt64>, level: Int) {
        if level < levels - 1 {
            for index in 0..<Self.entriesPerTable {
                let entry = table[index]
                if entry & Self.valid != 0, entry & Self.leaf == 0 { free(Self.table(entry), level: level + 1) }
            }
        }
        Self.deallocateTable(table)
    }

    /// A zeroed table: a spare if there is one, else a new allocation.
    private func takeTable() -> UnsafeMutablePointer<UInt64> {
        books.pointee.tableCount += 1
        return books.pointee.spareTables.popLast() ?? Self.allocateTable()
    }

    /// Retires an empty (all-zero), unlinked table: to the freelist when walks may still be in it.
    private func releaseTable(_ table: UnsafeMutablePointer<UInt64>) {
        if deferredTableFree { return books.pointee.freelist.append(table) }
        books.pointee.tableCount -= 1
        recycle(table)
    }

    /// Keeps a retired table as a spare, or frees it when there are enough.
    private func recycle(_ table: UnsafeMutablePointer<UInt64>) {
        if books.pointee.spareTables.count < Self.spareTableLimit {
            books.pointee.spareTables.append(table)
        } else {
            Self.deallocateTable(table)
        }
    }

    private static func allocateTable() -> UnsafeMutablePointer<UInt64> {
        PageTableArena.shared.allocate(bytes: tableBytes).bindMemory(to: UInt64.self, capacity: entriesPerTable + 1)
    }

    private static func deallocateTable(_ table: UnsafeMutablePointer<UInt64>) {
        PageTableArena.shared.deallocate(UnsafeMutableRawPointer(table))
    }
}
