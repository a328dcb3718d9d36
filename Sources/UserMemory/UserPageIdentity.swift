import Glibc

/// Which page of memory a user address shows — what `page_to_pfn` tells the kernel and an
/// address alone does not: two shared mappings of one file page (a memfd mapped by the program
/// and again by the simulation, for `IOMMU_IOAS_MAP_FILE`) are one page. A shared file mapping's
/// page is its file page; any other page is its address (private memory belongs to one mapping).
/// Read from `/proc/self/maps`, for pin counting (`MD_CHECK_REFS`) and page comparisons
/// (`MD_CHECK_MAP`) across such aliases.
public enum UserPageIdentity: Hashable, Sendable {
    case address(UInt64)
    case file(device: String, inode: UInt64, offset: UInt64)

    /// One line of `/proc/self/maps`: `[start, end)`, shared or private, the file behind it.
    struct Mapping {
        let start: UInt64
        let end: UInt64
        let shared: Bool
        let offset: UInt64
        let device: String
        let inode: UInt64
    }

    /// This process's mappings now, by address.
    static func mappings() -> [Mapping] {
        guard let file = fopen("/proc/self/maps", "r") else { return [] }
        defer { fclose(file) }
        var result: [Mapping] = []
        var line = [CChar](repeating: 0, count: 4096)
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let fields = text.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 5 else { continue }
            let range = fields[0].split(separator: "-")
            guard range.count == 2, let start = UInt64(range[0], radix: 16), let end = UInt64(range[1], radix: 16),
                let offset = UInt64(fields[2], radix: 16), let inode = UInt64(fields[4])
            else { continue }
            result.append(Mapping(start: start, end: end, shared: fields[1].hasSuffix("s"), offset: offset, device: String(fields[3]), inode: inode))
        }
        return result
    }

    /// The identity of the page at `address` among `mappings`.
    static func of(_ address: UInt64, in mappings: [Mapping]) -> UserPageIdentity {
        let page = address & ~(hostPageSize - 1)
        guard let mapping = mappings.first(where: { $0.start <= page && page < $0.end }), mapping.shared, mapping.inode != 0 else {
            return .address(page)
        }
        return .file(device: mapping.device, inode: mapping.inode, offset: mapping.offset + (page - mapping.start))
    }

    /// The identity of each page at `addresses`, from one reading of the mappings.
    public static func of(_ addresses: [UInt64]) -> [UserPageIdentity] {
        let mappings = mappings()
        return addresses.map { of($0, in: mappings) }
    }

    /// Whether the pages at `first` and `second` are one page: the same address, or the same page
    /// of a file both map shared.
    public static func samePage(_ first: UInt64, _ second: UInt64) -> Bool {
        if first & ~(hostPageSize - 1) == second & ~(hostPageSize - 1) { return true }
        let mappings = mappings()
        return of(first, in: mappings) == of(second, in: mappings)
    }
}
