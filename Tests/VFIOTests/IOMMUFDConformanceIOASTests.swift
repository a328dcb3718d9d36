import KernelRules
import SystemPackage

/// `iommufd.md` §2: IOAS_ALLOC, IOVA_RANGES, ALLOW_IOVAS, MAP, COPY, UNMAP, OPTION. IOAS 1 (and 2
/// where `ioas: 2`) exists; a bound device is the next ID, its auto HWPT the one after.
private let page = FD.page
private let msiFirst = FD.msiFirst, msiLast = FD.msiLast
private let device = FD.bound(FD.nvme)
private let attached = FD.attached(FD.nvme)
private let two = IOMMUFDConfig(ioas: 2)

let ioasRows: [IOMMUFDRow] = [
    // §2.1 ALLOC, IOVA_RANGES, ALLOW_IOVAS
    IOMMUFDRow(
        rule: "IOMMUFD-200", name: "a new IOAS: no areas, one range [0, 2^64-1], alignment 1, huge pages on", operation: .allocIOAS(), expect: .value(2),
        then: [FDCheck(.ranges(2), FD.allRanges), FDCheck(.probe(.areas(2)), .fields([])), FDCheck(FD.option(.hugePages, get: 2), .value(1))]),
    IOMMUFDRow(rule: "IOMMUFD-201", name: "a missing IOAS is ENOENT", operation: .ranges(4), expect: .failure(.noSuchFileOrDirectory)),
    IOMMUFDRow(
        rule: "IOMMUFD-201", name: "num_iovas 0: EMSGSIZE, with the count and alignment already written",
        operation: .ranges(1, room: 0), expect: .failureWriting(.messageTooLong, [1, 1]), uapiOnly: FD.protocolOnly),
    IOMMUFDRow(
        rule: "IOMMUFD-201", name: "room for 1 of 2 ranges: EMSGSIZE, the first range written, nothing past it", prepare: attached,
        operation: .ranges(1, room: 1), expect: .failureWriting(.messageTooLong, [2, page, 0, msiFirst - 1]), uapiOnly: FD.protocolOnly),
    IOMMUFDRow(
        rule: "IOMMUFD-201", name: "retrying with the count returned succeeds; more room than ranges is fine", prepare: attached,
        operation: .ranges(1, room: 2), expect: FD.vtdRanges, then: [FDCheck(.ranges(1, room: 5), FD.vtdRanges)]),
    IOMMUFDRow(rule: "IOMMUFD-202", name: "a fresh IOAS: [0, 2^64-1], alignment 1", operation: .ranges(1), expect: FD.allRanges),
    IOMMUFDRow(
        rule: "IOMMUFD-202", name: "the allowed list is not reflected", prepare: [.allow(1, [FD.range(0x10000, 0x1ffff)])], operation: .ranges(1),
        expect: FD.allRanges),
    IOMMUFDRow(
        rule: "IOMMUFD-202", name: "a VT-d domain and device: the aperture and the MSI window reserved, 4 KiB alignment", prepare: attached,
        operation: .ranges(1), expect: FD.vtdRanges, also: ["IOMMUFD-302", "IOMMUFD-304"]),
    IOMMUFDRow(
        rule: "IOMMUFD-202", name: "the domain gone (auto HWPT destroyed at detach): its reservations and alignment go", prepare: attached,
        operation: .detach(FD.nvme), expect: .ok, then: [FDCheck(.ranges(1), FD.allRanges)], also: ["IOMMUFD-305"]),
    IOMMUFDRow(
        rule: "IOMMUFD-202", name: "a manual HWPT destroyed: its aperture goes", prepare: device + [.hwptAlloc(dev: 2, pt: 1)], operation: .destroy(3),
        expect: .ok, then: [FDCheck(.ranges(1), FD.allRanges)], also: ["IOMMUFD-506"]),
    IOMMUFDRow(rule: "IOMMUFD-203", name: "a missing IOAS is ENOENT", operation: .allow(3, [FD.range(0x1000, 0x1fff)]), expect: .failure(.noSuchFileOrDirectory)),
    IOMMUFDRow(
        rule: "IOMMUFD-203", name: "start == last: a one-byte range cannot be allowed", operation: .allow(1, [FD.range(0x1000, 0x1000)]),
        expect: .failure(.invalidArgument)),
    IOMMUFDRow(rule: "IOMMUFD-203", name: "start > last", operation: .allow(1, [FD.range(0x2000, 0x1000)]), expect: .failure(.invalidArgument)),
    IOMMUFDRow(
        rule: "IOMMUFD-203", name: "an entry overlapping an earlier one", operation: .allow(1, [FD.range(0x10000, 0x1ffff), FD.range(0x1f000, 0x2ffff)]),
        expect: .failure(.invalidArgument)),
    IOMMUFDRow(
        rule: "IOMMUFD-203", name: "touching entries are fine", operation: .allow(1, [FD.range(0x10000, 0x1ffff), FD.range(0x20000, 0x2ffff)]), expect: .ok),
    IOMMUFDRow(
        rule: "IOMMUFD-203", name: "the array cannot be read: EFAULT",
        operation: .raw(IOMMUFDStruct.allowIOVAsRequest, StructBytes(IOMMUFDStruct.allowIOVAs, ["ioas_id": 1, "num_iovas": 1, "allowed_iovas": 8])),
        expect: .failure(.badAddress), uapiOnly: FD.noPointer),
    IOMMUFDRow(
        rule: "IOMMUFD-203", name: "entries are checked as they are copied: a bad first entry is EINVAL even when the second cannot be read",
        operation: .allowPlaced(1, [FD.range(0x5000, 0x5000), FD.range(0x10000, 0x1ffff)], readable: 1), expect: .failure(.invalidArgument),
        uapiOnly: FD.noPointer),
    IOMMUFDRow(
        rule: "IOMMUFD-204", name: "an allowed range over the MSI window is EADDRINUSE", prepare: attached,
        operation: .allow(1, [FD.range(0x1000, FD.top48 - 1)]), expect: .failure(.addressInUse)),
    IOMMUFDRow(
        rule: "IOMMUFD-204", name: "all or nothing: the old list stays when a later entry conflicts",
        prepare: attached + [.allow(1, [FD.range(0x100000, 0x1fffff)])],
        operation: .allow(1, [FD.range(0x200000, 0x2fffff), FD.range(msiFirst, msiLast)]), expect: .failure(.addressInUse),
        then: [FDCheck(FD.auto(), .value(0x100000))]),
    IOMMUFDRow(
        rule: "IOMMUFD-204", name: "existing areas outside the new list stay", prepare: [FD.map(0x10000)], operation: .allow(1, [FD.range(0x100000, 0x1fffff)]),
        expect: .ok, then: [FDCheck(.probe(.areas(1)), .fields([0x10000, page]))]),
    IOMMUFDRow(
        rule: "IOMMUFD-204", name: "num_iovas 0 clears the list: everything allowed again", prepare: [.allow(1, [FD.range(0x100000, 0x1fffff)])],
        operation: .allow(1, []), expect: .ok, then: [FDCheck(FD.auto(), .value(page))]),
    IOMMUFDRow(
        rule: "IOMMUFD-205", name: "automatic IOVAs come from the allowed spans", prepare: [.allow(1, [FD.range(0x4000_0000, 0x7fff_ffff)])],
        operation: FD.auto(), expect: .value(0x4000_0000)),
    IOMMUFDRow(
        rule: "IOMMUFD-205", name: "adjacent allowed ranges are one span for automatic allocation",
        prepare: [.allow(1, [FD.range(0x100000, 0x17ffff), FD.range(0x180000, 0x1fffff)])], operation: FD.auto(0x100000, at: 0x100000),
        expect: .value(0x100000), also: ["IOMMUFD-311"]),
    IOMMUFDRow(
        rule: "IOMMUFD-205", name: "a device whose MSI window is allowed cannot attach (its reservation would meet the list)",
        prepare: device + [.allow(1, [FD.range(0xfe00_0000, 0xfeff_ffff)])], operation: .attach(FD.nvme, 1), expect: .failure(.addressInUse),
        then: [FDCheck(.probe(.objects), .fields([1, 2]))], also: ["IOMMUFD-303", "IOMMUFD-304"]),
    IOMMUFDRow(
        rule: "IOMMUFD-205", name: "FIXED maps are not held to the allowed list", prepare: [.allow(1, [FD.range(0x4000_0000, 0x7fff_ffff)])],
        operation: FD.map(0x10000), expect: .value(0x10000)),

    // §2.2 MAP
    IOMMUFDRow(rule: "IOMMUFD-210", name: "a fixed IOVA is written back", operation: FD.map(0x10000), expect: .value(0x10000)),
    IOMMUFDRow(rule: "IOMMUFD-210", name: "an automatic IOVA is written back", operation: FD.auto(), expect: .value(page)),
    IOMMUFDRow(rule: "IOMMUFD-210", name: "iova 2^64-1 is EOVERFLOW", operation: FD.map(FD.max), expect: .failure(.overflow)),
    IOMMUFDRow(
        rule: "IOMMUFD-210", name: "iova 2^64-1 is EOVERFLOW without FIXED_IOVA too", operation: .map(1, flags: FD.rw, .memory(0), length: page, iova: FD.max),
        expect: .failure(.overflow), uapiOnly: "the iova field of a non-FIXED map: the Swift API takes no IOVA then"),
    IOMMUFDRow(rule: "IOMMUFD-210", name: "length 2^64-1 is EOVERFLOW", operation: FD.map(0x10000, FD.max), expect: .failure(.overflow)),
    IOMMUFDRow(rule: "IOMMUFD-210", name: "neither READABLE nor WRITEABLE", operation: FD.map(0x10000, flags: IOMMUFDStruct.fixed), expect: .failure(.invalidArgument)),
    IOMMUFDRow(
        rule: "IOMMUFD-210", name: "EOVERFLOW comes before the R/W check", operation: FD.map(FD.max, flags: IOMMUFDStruct.fixed), expect: .failure(.overflow)),
    IOMMUFDRow(
        rule: "IOMMUFD-210", name: "the R/W check comes before the IOAS lookup", operation: FD.map(0x10000, ioas: 9, flags: IOMMUFDStruct.fixed),
        expect: .failure(.invalidArgument)),
    IOMMUFDRow(rule: "IOMMUFD-210", name: "a missing IOAS is ENOENT", operation: FD.map(0x10000, ioas: 9), expect: .failure(.noSuchFileOrDirectory)),
    IOMMUFDRow(rule: "IOMMUFD-210", name: "READABLE alone maps", operation: FD.map(0x10000, flags: FD.fixedRead), expect: .value(0x10000)),
    IOMMUFDRow(
        rule: "IOMMUFD-211", name: "user_va + length wraps: EOVERFLOW", operation: .map(1, flags: FD.fixedRW, .absolute(FD.max - 0xfff), length: 0x2000, iova: 0x10000),
        expect: .failure(.overflow)),
    IOMMUFDRow(rule: "IOMMUFD-211", name: "length 0 is EINVAL", operation: FD.map(0x10000, 0), expect: .failure(.invalidArgument)),
    IOMMUFDRow(
        rule: "IOMMUFD-211", name: "length past SIZE_MAX - PAGE_SIZE is EINVAL", operation: .map(1, flags: FD.fixedRW, .absolute(0), length: FD.max - 0xffe, iova: 0),
        expect: .failure(.invalidArgument)),
    IOMMUFDRow(
        rule: "IOMMUFD-212", name: "with a 4 KiB domain a 2 KiB length is EINVAL", prepare: attached, operation: FD.map(0x10000, 0x800),
        expect: .failure(.invalidArgument)),
    IOMMUFDRow(rule: "IOMMUFD-212", name: "without a domain (alignment 1) a 2 KiB length maps", operation: FD.map(0x10000, 0x800), expect: .value(0x10000)),
    IOMMUFDRow(
        rule: "IOMMUFD-212", name: "an automatic 2 KiB map with a domain is EINVAL too", prepare: attached, operation: FD.auto(0x800), expect: .failure(.invalidArgument)),
    IOMMUFDRow(rule: "IOMMUFD-213", name: "an IOVA off the 4 KiB alignment", prepare: attached, operation: FD.map(0x10800), expect: .failure(.invalidArgument)),
    IOMMUFDRow(rule: "IOMMUFD-213", name: "iova + length - 1 wraps: EOVERFLOW", operation: FD.map(FD.max - 0xfff, 0x2000), expect: .failure(.overflow)),
    IOMMUFDRow(rule: "IOMMUFD-213", name: "the last page of the 64-bit space maps without a domain", operation: FD.map(FD.max - 0xfff), expect: .value(FD.max - 0xfff)),
    IOMMUFDRow(rule: "IOMMUFD-213", name: "inside the reserved MSI window", prepare: attached, operation: FD.map(msiFirst), expect: .failure(.invalidArgument)),
    IOMMUFDRow(rule: "IOMMUFD-213", name: "across the MSI window's start", prepare: attached, operation: FD.map(msiFirst - page, 2 * page), expect: .failure(.invalidArgument)),
    IOMMUFDRow(rule: "IOMMUFD-213", name: "past the 48-bit aperture", prepare: attached, operation: FD.map(FD.top48), expect: .failure(.invalidArgument)),
    IOMMUFDRow(rule: "IOMMUFD-213", name: "right below the MSI window", prepare: attached, operation: FD.map(msiFirst - page), expect: .value(msiFirst - page)),
    IOMMUFDRow(rule: "IOMMUFD-213", name: "right after the MSI window", prepare: attached, operation: FD.map(msiLast + 1), expect: .value(msiLast + 1)),
    IOMMUFDRow(rule: "IOMMUFD-213", name: "the same range again: EEXIST", prepare: [FD.map(0x10000, 4 * page)], operation: FD.map(0x10000, 4 * page), expect: .failure(.fileExists)),
    IOMMUFDRow(rule: "IOMMUFD-213", name: "inside an area", prepare: [FD.map(0x10000, 4 * page)], operation: FD.map(0x11000, page), expect: .failure(.fileExists)),
    IOMMUFDRow(rule: "IOMMUFD-213", name: "covering an area", prepare: [FD.map(0x11000)], operation: FD.map(0x10000, 4 * page), expect: .failure(.fileExists)),
    IOMMUFDRow(
        rule: "IOMMUFD-213", name: "straddling an area's start", prepare: [FD.map(0x10000, 2 * page)], operation: FD.map(0xF000, 2 * page), expect: .failure(.fileExists)),
    IOMMUFDRow(
        rule: "IOMMUFD-213", name: "straddling an area's end", prepare: [FD.map(0x10000, 2 * page)], operation: FD.map(0x11000, 2 * page), expect: .failure(.fileExists)),
    IOMMUFDRow(rule: "IOMMUFD-213", name: "touching below is fine", prepare: [FD.map(0x10000)], operation: FD.map(0xF000), expect: .value(0xF000)),
    IOMMUFDRow(rule: "IOMMUFD-213", name: "touching above is fine", prepare: [FD.map(0x10000)], operation: FD.map(0x11000), expect: .value(0x11000)),
    IOMMUFDRow(
        rule: "IOMMUFD-213", name: "alignment is checked before overlap", prepare: attached + [FD.map(0x10000)], operation: FD.map(0x10800),
        expect: .failure(.invalidArgument)),
    IOMMUFDRow(
        rule: "IOMMUFD-214", name: "a WRITEABLE copy of read-only pages is EPERM", prepare: [FD.map(0x10000, flags: FD.fixedRead)],
        operation: .copy(dst: 1, src: 1, flags: FD.fixedRW, length: page, dstIOVA: 0x20000, srcIOVA: 0x10000), expect: .failure(.notPermitted),
        also: ["IOMMUFD-224"]),
    IOMMUFDRow(
        rule: "IOMMUFD-214", name: "a READABLE copy of read-only pages maps", prepare: [FD.map(0x10000, flags: FD.fixedRead)],
        operation: .copy(dst: 1, src: 1, flags: FD.fixedRead, length: page, dstIOVA: 0x20000, srcIOVA: 0x10000), expect: .value(0x20000)),
    IOMMUFDRow(
        rule: "IOMMUFD-214", name: "with 4 KiB alignment the user VA's offset in its page must be 0", prepare: attached,
        operation: FD.map(0x10000, at: 0x800), expect: .failure(.invalidArgument)),
    IOMMUFDRow(rule: "IOMMUFD-214", name: "with alignment 1 any offset maps", operation: FD.map(0x10000, at: 0x800), expect: .value(0x10000)),
    IOMMUFDRow(
        rule: "IOMMUFD-215", name: "no domain: nothing is pinned, so a VA that is no memory maps", operation: .map(1, flags: FD.fixedRW, .absolute(0x1000), length: page, iova: 0x10000),
        expect: .value(0x10000), then: [FDCheck(.probe(.lockedBytes), .value(0))], also: ["IOMMUFD-400"]),
    IOMMUFDRow(
        rule: "IOMMUFD-215", name: "with a domain a VA that is no memory is EFAULT and leaves no area", prepare: attached,
        operation: .map(1, flags: FD.fixedRW, .absolute(0x1000), length: page, iova: 0x10000), expect: .failure(.badAddress),
        then: [FDCheck(.probe(.areas(1)), .fields([]))], also: ["IOMMUFD-401"]),
    IOMMUFDRow(
        rule: "IOMMUFD-215", name: "a half-valid buffer is EFAULT", prepare: attached, operation: FD.map(0x10000, 0x2000, at: (2 << 20) - page),
        expect: .failure(.badAddress), also: ["IOMMUFD-401"]),
    IOMMUFDRow(
        rule: "IOMMUFD-215", name: "WRITEABLE over read-only memory with a domain is EFAULT", prepare: attached,
        operation: .map(1, flags: FD.fixedRW, .readOnly(0), length: page, iova: 0x10000), expect: .failure(.badAddress), also: ["IOMMUFD-401"]),
    IOMMUFDRow(
        rule: "IOMMUFD-215", name: "READABLE over read-only memory with a domain maps", prepare: attached,
        operation: .map(1, flags: FD.fixedRead, .readOnly(0), length: page, iova: 0x10000), expect: .value(0x10000)),
    IOMMUFDRow(
        rule: "IOMMUFD-215", name: "past RLIMIT_MEMLOCK with a domain: ENOMEM, nothing mapped or charged", config: IOMMUFDConfig(lockedMemoryLimit: 2 * page),
        prepare: attached, operation: FD.map(0x10000, 3 * page), expect: .failure(.noMemory),
        then: [FDCheck(.probe(.lockedBytes), .value(0)), FDCheck(FD.map(0x10000, 2 * page), .value(0x10000))], also: ["IOMMUFD-403"]),
    IOMMUFDRow(
        rule: "IOMMUFD-215", name: "a bad VA surfaces when a domain is added: the attach is EFAULT and changes nothing",
        prepare: device + [.map(1, flags: FD.fixedRW, .absolute(0x1000), length: page, iova: 0x10000)], operation: .attach(FD.nvme, 1),
        expect: .failure(.badAddress), then: [FDCheck(.probe(.objects), .fields([1, 2])), FDCheck(.ranges(1), FD.allRanges)], also: ["IOMMUFD-302"]),
    IOMMUFDRow(
        rule: "IOMMUFD-216", name: "two MAPs of the same VA: two areas, pinned and charged twice", prepare: attached + [FD.map(0x10000)],
        operation: FD.map(0x20000), expect: .value(0x20000),
        then: [FDCheck(.probe(.areas(1)), .fields([0x10000, page, 0x20000, page])), FDCheck(.probe(.lockedBytes), .value(2 * page))], also: ["IOMMUFD-404"]),
    IOMMUFDRow(
        rule: "IOMMUFD-216", name: "adjacent areas never merge: each unmaps alone", prepare: [FD.map(0x10000), FD.map(0x11000, at: page)],
        operation: FD.unmap(0x10000, page), expect: .value(page), then: [FDCheck(.probe(.areas(1)), .fields([0x11000, page]))]),
    IOMMUFDRow(
        rule: "IOMMUFD-217", name: "no mapping limit: 66,000 areas (type1 stops at 65,535)",
        prepare: (0..<66_000).map { FD.map(0x1_0000_0000 + UInt64($0) * page) }, operation: FD.auto(), expect: .value(page),
        then: [FDCheck(FD.unmap(0x1_0000_0000, 66_000 * page), .value(66_000 * page))]),

    // §2.3 COPY
    IOMMUFDRow(
        rule: "IOMMUFD-222", name: "a fixed destination is written back", config: two, prepare: [FD.map(0x10000)],
        operation: .copy(dst: 2, src: 1, flags: FD.fixedRW, length: page, dstIOVA: 0x40000, srcIOVA: 0x10000), expect: .value(0x40000),
        then: [FDCheck(.probe(.areas(2)), .fields([0x40000, page]))]),
    IOMMUFDRow(
        rule: "IOMMUFD-222", name: "an automatic destination is written back", config: two, prepare: [FD.map(0x10000)],
        operation: .copy(dst: 2, src: 1, flags: FD.rw, length: page, srcIOVA: 0x10000), expect: .value(page)),
    IOMMUFDRow(
        rule: "IOMMUFD-222", name: "source and destination may be the same IOAS", prepare: [FD.map(0x10000)],
        operation: .copy(dst: 1, src: 1, flags: FD.fixedRW, length: page, dstIOVA: 0x20000, srcIOVA: 0x10000), expect: .value(0x20000)),
    IOMMUFDRow(
        rule: "IOMMUFD-222", name: "length 2^64-1 is EOVERFLOW", operation: .copy(dst: 1, src: 1, flags: FD.fixedRW, length: FD.max, dstIOVA: 0, srcIOVA: 0),
        expect: .failure(.overflow)),
    IOMMUFDRow(
        rule: "IOMMUFD-222", name: "src_iova 2^64-1 is EOVERFLOW", operation: .copy(dst: 1, src: 1, flags: FD.fixedRW, length: page, dstIOVA: 0, srcIOVA: FD.max),
        expect: .failure(.overflow)),
    IOMMUFDRow(
        rule: "IOMMUFD-222", name: "dst_iova 2^64-1 is EOVERFLOW", operation: .copy(dst: 1, src: 1, flags: FD.fixedRW, length: page, dstIOVA: FD.max, srcIOVA: 0),
        expect: .failure(.overflow)),
    IOMMUFDRow(
        rule: "IOMMUFD-222", name: "neither READABLE nor WRITEABLE", prepare: [FD.map(0x10000)],
        operation: .copy(dst: 1, src: 1, flags: IOMMUFDStruct.fixed, length: page, dstIOVA: 0x20000, srcIOVA: 0x10000), expect: .failure(.invalidArgument)),
    IOMMUFDRow(
        rule: "IOMMUFD-222", name: "a missing source IOAS", operation: .copy(dst: 1, src: 7, flags: FD.rw, length: page, srcIOVA: 0x10000),
        expect: .failure(.noSuchFileOrDirectory)),
    IOMMUFDRow(
        rule: "IOMMUFD-222", name: "a missing destination IOAS", prepare: [FD.map(0x10000)],
        operation: .copy(dst: 7, src: 1, flags: FD.rw, length: page, srcIOVA: 0x10000), expect: .failure(.noSuchFileOrDirectory)),
    IOMMUFDRow(
        rule: "IOMMUFD-222", name: "the destination follows MAP's rules: EEXIST", prepare: [FD.map(0x10000), FD.map(0x20000, at: page)],
        operation: .copy(dst: 1, src: 1, flags: FD.fixedRW, length: page, dstIOVA: 0x20000, srcIOVA: 0x10000), expect: .failure(.fileExists)),
    IOMMUFDRow(
        rule: "IOMMUFD-223", name: "length 0 is EINVAL", prepare: [FD.map(0x10000)], operation: .copy(dst: 1, src: 1, flags: FD.rw, length: 0, srcIOVA: 0x10000),
        expect: .failure(.invalidArgument)),
    IOMMUFDRow(
        rule: "IOMMUFD-223", name: "src_iova + length - 1 wraps: EOVERFLOW", operation: .copy(dst: 1, src: 1, flags: FD.rw, length: 0x2000, srcIOVA: FD.max - 0xfff),
        expect: .failure(.overflow)),
    IOMMUFDRow(
        rule: "IOMMUFD-223", name: "nothing mapped at the source is ENOENT", operation: .copy(dst: 1, src: 1, flags: FD.rw, length: page, srcIOVA: 0x10000),
        expect: .failure(.noSuchFileOrDirectory)),
    IOMMUFDRow(
        rule: "IOMMUFD-223", name: "a source running past its area is ENOENT", prepare: [FD.map(0x10000)],
        operation: .copy(dst: 1, src: 1, flags: FD.rw, length: 2 * page, srcIOVA: 0x10000), expect: .failure(.noSuchFileOrDirectory)),
    IOMMUFDRow(
        rule: "IOMMUFD-223", name: "a hole between two source areas is ENOENT", prepare: [FD.map(0x10000), FD.map(0x12000, at: page)],
        operation: .copy(dst: 1, src: 1, flags: FD.rw, length: 3 * page, srcIOVA: 0x10000), expect: .failure(.noSuchFileOrDirectory)),
    IOMMUFDRow(
        rule: "IOMMUFD-223", name: "a sub-range of an area copies", config: two, prepare: [FD.map(0x10000, 4 * page)],
        operation: .copy(dst: 2, src: 1, flags: FD.fixedRW, length: 2 * page, dstIOVA: 0x40000, srcIOVA: 0x11000), expect: .value(0x40000),
        then: [FDCheck(.probe(.areas(2)), .fields([0x40000, 2 * page]))]),
    IOMMUFDRow(
        rule: "IOMMUFD-223", name: "one COPY over two touching source areas makes one destination area per piece", config: two,
        prepare: [FD.map(0x10000, 2 * page), FD.map(0x12000, 2 * page, at: 0x10000)],
        operation: .copy(dst: 2, src: 1, flags: FD.fixedRW, length: 3 * page, dstIOVA: 0x40000, srcIOVA: 0x11000), expect: .value(0x40000),
        then: [FDCheck(.probe(.areas(2)), .fields([0x40000, page, 0x41000, 2 * page]))]),
    IOMMUFDRow(
        rule: "IOMMUFD-223", name: "two 2 KiB areas of an alignment-1 IOAS copied into a 4 KiB domain: the total is aligned, the pieces not: iommu_map's EINVAL",
        config: two, prepare: FD.attached(FD.nvme, to: 2) + [FD.map(0x10000, 0x800), FD.map(0x10800, 0x800, at: page)],
        operation: .copy(dst: 2, src: 1, flags: FD.fixedRW, length: page, dstIOVA: 0x40000, srcIOVA: 0x10000), expect: .failure(.invalidArgument),
        then: [FDCheck(.probe(.areas(2)), .fields([])), FDCheck(.probe(.lockedBytes), .value(0))], also: ["IOMMUFD-215"]),
    IOMMUFDRow(
        rule: "IOMMUFD-400", name: "pages are pinned by page index: a COPY of the valid half of a half-valid MAP into a domain pins that half only",
        config: two, prepare: FD.attached(FD.nvme, to: 2) + [FD.map(0x10000, 2 * page, at: (2 << 20) - page)],
        operation: .copy(dst: 2, src: 1, flags: FD.fixedRW, length: page, dstIOVA: 0x40000, srcIOVA: 0x10000), expect: .value(0x40000),
        then: [FDCheck(.probe(.lockedBytes), .value(page))], also: ["IOMMUFD-223"],
        knownIssue: "IOPTPages pins its whole span on first use (Sources/IOMMUFD/IOPTPages.swift) where the kernel pins the page indexes an area needs (pages.c), so this COPY is EFAULT here"),
    IOMMUFDRow(
        rule: "IOMMUFD-224", name: "the copy survives unmapping the source", config: two,
        prepare: [FD.map(0x10000), .copy(dst: 2, src: 1, flags: FD.fixedRW, length: page, dstIOVA: 0x40000, srcIOVA: 0x10000)],
        operation: FD.unmap(0x10000, page), expect: .value(page), then: [FDCheck(.probe(.areas(2)), .fields([0x40000, page]))]),
    IOMMUFDRow(
        rule: "IOMMUFD-224", name: "COPY shares the pages: nothing pinned or charged again", prepare: attached + [FD.map(0x10000, 2 * page)],
        operation: .copy(dst: 1, src: 1, flags: FD.fixedRW, length: 2 * page, dstIOVA: 0x40000, srcIOVA: 0x10000), expect: .value(0x40000),
        then: [FDCheck(.probe(.lockedBytes), .value(2 * page)), FDCheck(FD.unmap(0x10000, 2 * page), .value(2 * page)), FDCheck(.probe(.lockedBytes), .value(2 * page))],
        also: ["IOMMUFD-400", "IOMMUFD-404"]),

    // §2.4 UNMAP
    IOMMUFDRow(
        rule: "IOMMUFD-230", name: "the IOAS is looked up first: a missing one with length 0 is ENOENT", operation: FD.unmap(0, 0, ioas: 9),
        expect: .failure(.noSuchFileOrDirectory)),
    IOMMUFDRow(rule: "IOMMUFD-230", name: "iova 2^64-1 is EOVERFLOW", operation: FD.unmap(FD.max, 1), expect: .failure(.overflow)),
    IOMMUFDRow(rule: "IOMMUFD-230", name: "length 2^64-1 at a non-zero IOVA is EOVERFLOW", operation: FD.unmap(1, FD.max), expect: .failure(.overflow)),
    IOMMUFDRow(rule: "IOMMUFD-230", name: "length 0 is EINVAL", operation: FD.unmap(0x10000, 0), expect: .failure(.invalidArgument)),
    IOMMUFDRow(rule: "IOMMUFD-230", name: "iova + length - 1 wraps: EOVERFLOW", operation: FD.unmap(FD.max - 0xfff, 0x2000), expect: .failure(.overflow)),
    IOMMUFDRow(rule: "IOMMUFD-231", name: "unmap-all of an empty IOAS succeeds with length 0", operation: FD.unmap(0, FD.max), expect: .value(0)),
    IOMMUFDRow(
        rule: "IOMMUFD-231", name: "unmap-all (iova 0, length 2^64-1) removes every area", prepare: attached + [FD.map(0x10000), FD.map(FD.top48 - page, at: page)],
        operation: FD.unmap(0, FD.max), expect: .value(2 * page),
        then: [FDCheck(.probe(.areas(1)), .fields([])), FDCheck(.probe(.lockedBytes), .value(0))], also: ["IOMMUFD-404"]),
    IOMMUFDRow(
        rule: "IOMMUFD-232", name: "a range starting inside an area is ENOENT (no split)", prepare: [FD.map(0x10000, 2 * page)],
        operation: FD.unmap(0x11000, page), expect: .failure(.noSuchFileOrDirectory)),
    IOMMUFDRow(
        rule: "IOMMUFD-232", name: "a range ending inside an area is ENOENT", prepare: [FD.map(0x10000, 2 * page)], operation: FD.unmap(0x10000, page),
        expect: .failure(.noSuchFileOrDirectory)),
    IOMMUFDRow(
        rule: "IOMMUFD-232", name: "no alignment check: an unaligned range covering whole areas succeeds", prepare: attached + [FD.map(0x10000)],
        operation: FD.unmap(0xfff0, 0x1020), expect: .value(page)),
    IOMMUFDRow(
        rule: "IOMMUFD-232", name: "holes between the areas are fine", prepare: [FD.map(0x10000), FD.map(0x13000, 2 * page, at: page)],
        operation: FD.unmap(0x10000, 5 * page), expect: .value(3 * page), also: ["IOMMUFD-235"]),
    IOMMUFDRow(
        rule: "IOMMUFD-233", name: "areas removed before the failing one stay removed; nothing is written back",
        prepare: [FD.map(0x10000), FD.map(0x20000, 2 * page, at: page)], operation: FD.unmap(0x10000, 0x11000), expect: .failure(.noSuchFileOrDirectory),
        then: [FDCheck(.probe(.areas(1)), .fields([0x20000, 2 * page]))], keepsProgress: true),
    IOMMUFDRow(rule: "IOMMUFD-234", name: "an empty range is ENOENT", operation: FD.unmap(0x10000, page), expect: .failure(.noSuchFileOrDirectory)),
    IOMMUFDRow(
        rule: "IOMMUFD-234", name: "a range between two areas is ENOENT", prepare: [FD.map(0x10000), FD.map(0x20000, at: page)],
        operation: FD.unmap(0x11000, 0xf000), expect: .failure(.noSuchFileOrDirectory)),
    IOMMUFDRow(
        rule: "IOMMUFD-235", name: "length is what was removed, not what was asked", prepare: [FD.map(0x10000)], operation: FD.unmap(0, 0x100000),
        expect: .value(page)),

    // §2.5 OPTION
    IOMMUFDRow(rule: "IOMMUFD-240", name: "HUGE_PAGES GET of object 0 is ENOENT", operation: FD.option(.hugePages, get: 0), expect: .failure(.noSuchFileOrDirectory)),
    IOMMUFDRow(rule: "IOMMUFD-240", name: "HUGE_PAGES SET of object 0 is ENOENT", operation: FD.option(.hugePages, set: 1, object: 0), expect: .failure(.noSuchFileOrDirectory)),
    IOMMUFDRow(
        rule: "IOMMUFD-240", name: "the IOAS lookup comes before the op check", operation: .option(.hugePages, op: 7, object: 0),
        expect: .failure(.noSuchFileOrDirectory), uapiOnly: FD.noSwiftSpelling),
    IOMMUFDRow(
        rule: "IOMMUFD-241", name: "RLIMIT_MODE with an object_id is EOPNOTSUPP", operation: .option(.rlimitMode, op: 1, object: 1), expect: .failure(.notSupported),
        uapiOnly: FD.noSwiftSpelling),
    IOMMUFDRow(rule: "IOMMUFD-241", name: "RLIMIT_MODE GET is 0 on /dev/iommu", operation: FD.option(.rlimitMode, get: 0), expect: .value(0)),
    IOMMUFDRow(
        rule: "IOMMUFD-241", name: "RLIMIT_MODE SET 1 on an empty context, then GET is 1", config: IOMMUFDConfig(ioas: 0),
        operation: FD.option(.rlimitMode, set: 1), expect: .value(1), then: [FDCheck(FD.option(.rlimitMode, get: 0), .value(1))]),
    IOMMUFDRow(
        rule: "IOMMUFD-241", name: "RLIMIT_MODE SET with any object in the context is EBUSY", operation: FD.option(.rlimitMode, set: 1), expect: .failure(.resourceBusy)),
    IOMMUFDRow(
        rule: "IOMMUFD-241", name: "RLIMIT_MODE SET 2 on an empty context is EINVAL", config: IOMMUFDConfig(ioas: 0), operation: FD.option(.rlimitMode, set: 2),
        expect: .failure(.invalidArgument), uapiOnly: FD.noSwiftSpelling),
    IOMMUFDRow(
        rule: "IOMMUFD-241", name: "RLIMIT_MODE SET 2 with objects: EBUSY comes before the value check", operation: FD.option(.rlimitMode, set: 2),
        expect: .failure(.resourceBusy), uapiOnly: FD.noSwiftSpelling),
    IOMMUFDRow(
        rule: "IOMMUFD-241", name: "RLIMIT_MODE with another op is EOPNOTSUPP", operation: .option(.rlimitMode, op: 2), expect: .failure(.notSupported),
        uapiOnly: FD.noSwiftSpelling),
    IOMMUFDRow(rule: "IOMMUFD-242", name: "HUGE_PAGES GET is 1 by default", operation: FD.option(.hugePages, get: 1), expect: .value(1)),
    IOMMUFDRow(
        rule: "IOMMUFD-242", name: "SET 0 disables them: GET 0, alignment PAGE_SIZE without a domain", operation: FD.option(.hugePages, set: 0, object: 1),
        expect: .value(0), then: [FDCheck(FD.option(.hugePages, get: 1), .value(0)), FDCheck(.ranges(1), .fields([1, page, 0, FD.max]))], also: ["IOMMUFD-300"]),
    IOMMUFDRow(
        rule: "IOMMUFD-242", name: "SET 0 twice is fine", prepare: [FD.option(.hugePages, set: 0, object: 1)], operation: FD.option(.hugePages, set: 0, object: 1),
        expect: .value(0)),
    IOMMUFDRow(
        rule: "IOMMUFD-242", name: "SET 1 re-enables them", prepare: [FD.option(.hugePages, set: 0, object: 1)], operation: FD.option(.hugePages, set: 1, object: 1),
        expect: .value(1), then: [FDCheck(FD.option(.hugePages, get: 1), .value(1)), FDCheck(.ranges(1), FD.allRanges)]),
    IOMMUFDRow(
        rule: "IOMMUFD-242", name: "SET 0 with a domain and an area is EINVAL", prepare: attached + [FD.map(0x10000)], operation: FD.option(.hugePages, set: 0, object: 1),
        expect: .failure(.invalidArgument)),
    IOMMUFDRow(
        rule: "IOMMUFD-242", name: "SET 0 with a domain but no area succeeds", prepare: attached, operation: FD.option(.hugePages, set: 0, object: 1),
        expect: .value(0)),
    IOMMUFDRow(
        rule: "IOMMUFD-242", name: "SET 0 over an area that is not page aligned is EADDRINUSE", prepare: [FD.map(0x10800)],
        operation: FD.option(.hugePages, set: 0, object: 1), expect: .failure(.addressInUse), then: [FDCheck(FD.option(.hugePages, get: 1), .value(1))],
        also: ["IOMMUFD-301"]),
    IOMMUFDRow(
        rule: "IOMMUFD-242", name: "SET 2 is EINVAL", operation: FD.option(.hugePages, set: 2, object: 1), expect: .failure(.invalidArgument),
        uapiOnly: FD.noSwiftSpelling),
    IOMMUFDRow(
        rule: "IOMMUFD-242", name: "another op is EOPNOTSUPP", operation: .option(.hugePages, op: 2, object: 1), expect: .failure(.notSupported),
        uapiOnly: FD.noSwiftSpelling),
]
