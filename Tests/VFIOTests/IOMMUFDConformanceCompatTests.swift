import IOMMU
import KernelRules
import SystemPackage

/// `iommufd.md` §7 (VFIO container compatibility on `/dev/iommu`) and §9 (where it and native
/// iommufd differ from type1). IOAS 1 is made the compat IOAS with IOMMU_VFIO_IOAS SET where a
/// row needs one; VFIO_DMA_MAP_FLAG_READ|WRITE = 3, VFIO_DMA_UNMAP_FLAG_ALL = 2.
private let page = FD.page
private let nvme = FD.nvme
private let compat: [FDOp] = [.vfioIOAS(op: 1, id: 1)]
private let v1 = compat + [FDOp.setIOMMU(1)]
private let v2 = compat + [FDOp.setIOMMU(3)]
private let attached = FD.attached(nvme)
private let pageMask: UInt64 = ~(page - 1)
private let vtdPageSizes: UInt64 = 0x4020_1000
private let untouched: UInt64 = 0xAAAA_AAAA

private func dmaMap(_ iova: UInt64, _ size: UInt64 = page, at offset: UInt64 = 0, flags: UInt32 = 3) -> FDOp {
    .compatMap(flags: flags, .memory(offset), iova: iova, size: size)
}

private func dmaUnmap(_ iova: UInt64, _ size: UInt64, flags: UInt32 = 0) -> FDOp { .compatUnmap(flags: flags, iova: iova, size: size) }

/// `decodeInfo`'s list for a whole GET_INFO answer: the header, DMA_AVAIL at 24 (its 4 bytes of
/// padding untouched), IOVA_RANGE at 40 (IOMMUFD-722).
private func infoLayout(pageSizes: UInt64, ranges: [(UInt64, UInt64)]) -> FDOutcome {
    let total = UInt64(24 + 16 + 16 + 16 * ranges.count)
    return .fields([total, 3, pageSizes, 24, 0, 3, 1, 40, UInt64(UInt32.max), untouched, 1, 1, 0, UInt64(ranges.count), 0] + ranges.flatMap { [$0.0, $0.1] })
}

let compatRows: [IOMMUFDRow] = [
    // §7.1 entry points, compat IOAS, SET_IOMMU, CHECK_EXTENSION
    IOMMUFDRow(rule: "IOMMUFD-700", name: "VFIO_GET_API_VERSION is 0", operation: .apiVersion, expect: .value(0), uapiOnly: FD.noSwiftSpelling),
    IOMMUFDRow(
        rule: "IOMMUFD-700", name: "VFIO_IOMMU_DIRTY_PAGES is ENOTTY", prepare: v2, operation: .raw(VFIORequestNumbers.dirtyPages, StructBytes(length: 48)),
        expect: .failure(.inappropriateIOCTLForDevice), uapiOnly: FD.noRequest),
    IOMMUFDRow(
        rule: "IOMMUFD-700", name: "an unknown VFIO number (VFIO_BASE + 50) is ENOTTY", operation: .raw(IOMMUFDStruct.io(100 + 50), StructBytes(length: 8)),
        expect: .failure(.inappropriateIOCTLForDevice), uapiOnly: FD.noRequest),
    IOMMUFDRow(
        rule: "IOMMUFD-700", name: "a group ioctl (VFIO_GROUP_GET_STATUS) on /dev/iommu is ENOTTY",
        operation: .raw(VFIORequestNumbers.groupGetStatus, StructBytes(IOMMUFDStruct.destroy)), expect: .failure(.inappropriateIOCTLForDevice), uapiOnly: FD.noRequest),
    IOMMUFDRow(
        rule: "IOMMUFD-701", name: "without a compat IOAS, MAP_DMA is ENODEV", operation: dmaMap(0x10000), expect: .failure(.operationNotSupportedByDevice),
        also: ["IOMMUFD-731"]),
    IOMMUFDRow(
        rule: "IOMMUFD-701", name: "IOMMU_VFIO_IOAS SET makes one", prepare: compat, operation: dmaMap(0x10000), expect: .ok,
        then: [FDCheck(.probe(.areas(1)), .fields([0x10000, page]))], also: ["IOMMUFD-731"]),
    IOMMUFDRow(
        rule: "IOMMUFD-701", name: "CLEAR drops it: ENODEV again", prepare: compat + [.vfioIOAS(op: 2)], operation: dmaMap(0x10000),
        expect: .failure(.operationNotSupportedByDevice)),
    IOMMUFDRow(rule: "IOMMUFD-702", name: "GET without one is ENODEV", operation: .vfioIOAS(op: 0), expect: .failure(.operationNotSupportedByDevice)),
    IOMMUFDRow(rule: "IOMMUFD-702", name: "GET after SET names it", config: IOMMUFDConfig(ioas: 2), prepare: [.vfioIOAS(op: 1, id: 2)], operation: .vfioIOAS(op: 0), expect: .value(2)),
    IOMMUFDRow(rule: "IOMMUFD-702", name: "SET of a missing ID is ENOENT", operation: .vfioIOAS(op: 1, id: 5), expect: .failure(.noSuchFileOrDirectory)),
    IOMMUFDRow(
        rule: "IOMMUFD-702", name: "SET of a DEVICE is ENOENT", prepare: FD.bound(nvme), operation: .vfioIOAS(op: 1, id: 2), expect: .failure(.noSuchFileOrDirectory)),
    IOMMUFDRow(rule: "IOMMUFD-702", name: "SET of an HWPT is ENOENT", prepare: attached, operation: .vfioIOAS(op: 1, id: 3), expect: .failure(.noSuchFileOrDirectory)),
    IOMMUFDRow(rule: "IOMMUFD-702", name: "CLEAR always succeeds", operation: .vfioIOAS(op: 2), expect: .ok),
    IOMMUFDRow(rule: "IOMMUFD-702", name: "an unknown op is EOPNOTSUPP", operation: .vfioIOAS(op: 3), expect: .failure(.notSupported), uapiOnly: FD.noSwiftSpelling),
    IOMMUFDRow(rule: "IOMMUFD-703", name: "TYPE1 is 1 before any IOAS exists", config: IOMMUFDConfig(ioas: 0), operation: .checkExtension(1), expect: .value(1)),
    IOMMUFDRow(rule: "IOMMUFD-703", name: "TYPE1v2 is 1", config: IOMMUFDConfig(ioas: 0), operation: .checkExtension(3), expect: .value(1)),
    IOMMUFDRow(rule: "IOMMUFD-703", name: "UNMAP_ALL is 1", config: IOMMUFDConfig(ioas: 0), operation: .checkExtension(9), expect: .value(1)),
    IOMMUFDRow(rule: "IOMMUFD-703", name: "NOIOMMU is 0 (CONFIG_VFIO_NOIOMMU off)", operation: .checkExtension(8), expect: .value(0)),
    IOMMUFDRow(
        rule: "IOMMUFD-703", name: "DMA_CC_IOMMU without a compat IOAS is ENODEV, as the ioctl's error", operation: .checkExtension(4),
        expect: .failure(.operationNotSupportedByDevice)),
    IOMMUFDRow(rule: "IOMMUFD-703", name: "DMA_CC_IOMMU with a compat IOAS and no HWPT is 1", prepare: compat, operation: .checkExtension(4), expect: .value(1)),
    IOMMUFDRow(rule: "IOMMUFD-703", name: "the retired nesting ID is 0", operation: .checkExtension(6), expect: .value(0)),
    IOMMUFDRow(rule: "IOMMUFD-703", name: "UPDATE_VADDR is 0", prepare: v2, operation: .checkExtension(10), expect: .value(0)),
    IOMMUFDRow(rule: "IOMMUFD-703", name: "SPAPR is 0", operation: .checkExtension(2), expect: .value(0)),
    IOMMUFDRow(rule: "IOMMUFD-703", name: "an ID beyond 32 bits is 0, not its low half", operation: .checkExtension(0x1_0000_0003), expect: .value(0)),
    IOMMUFDRow(rule: "IOMMUFD-704", name: "GET_API_VERSION needs no IOAS", config: IOMMUFDConfig(ioas: 0), operation: .apiVersion, expect: .value(0), uapiOnly: FD.noSwiftSpelling),
    IOMMUFDRow(rule: "IOMMUFD-705", name: "SET_IOMMU(NOIOMMU) is EINVAL", prepare: compat, operation: .setIOMMU(8), expect: .failure(.invalidArgument)),
    IOMMUFDRow(
        rule: "IOMMUFD-705", name: "an unsupported type is EINVAL before the IOAS lookup (no compat IOAS)", operation: .setIOMMU(7), expect: .failure(.invalidArgument)),
    IOMMUFDRow(
        rule: "IOMMUFD-705", name: "TYPE1v2 without a compat IOAS is ENODEV", operation: .setIOMMU(3), expect: .failure(.operationNotSupportedByDevice),
        also: ["IOMMUFD-731"]),
    IOMMUFDRow(
        rule: "IOMMUFD-705", name: "TYPE1 disables huge pages of the compat IOAS", prepare: compat, operation: .setIOMMU(1), expect: .ok,
        then: [FDCheck(FD.option(.hugePages, get: 1), .value(0))]),
    IOMMUFDRow(
        rule: "IOMMUFD-705", name: "TYPE1v2 leaves them on", prepare: compat, operation: .setIOMMU(3), expect: .ok,
        then: [FDCheck(FD.option(.hugePages, get: 1), .value(1))]),
    IOMMUFDRow(rule: "IOMMUFD-705", name: "it can be repeated", prepare: v2, operation: .setIOMMU(3), expect: .ok, then: [FDCheck(.setIOMMU(1), .ok)]),
    IOMMUFDRow(
        rule: "IOMMUFD-705", name: "TYPE1v2 after TYPE1 does not re-enable huge pages", prepare: v1, operation: .setIOMMU(3), expect: .ok,
        then: [FDCheck(FD.option(.hugePages, get: 1), .value(0))]),
    IOMMUFDRow(
        rule: "IOMMUFD-705", name: "TYPE1 once a domain holds mappings is EINVAL", prepare: attached + compat + [dmaMap(0x10000)], operation: .setIOMMU(1),
        expect: .failure(.invalidArgument), also: ["IOMMUFD-242"]),
    IOMMUFDRow(
        rule: "IOMMUFD-706", name: "TYPE1: PAGE_SIZE alignment even without a domain", prepare: v1, operation: .ranges(1), expect: .fields([1, page, 0, FD.max]),
        also: ["IOMMUFD-903"]),
    IOMMUFDRow(
        rule: "IOMMUFD-706", name: "HUGE_PAGES 0 under TYPE1v2 behaves as v1: a sub-range unmap cuts",
        prepare: v2 + [FD.option(.hugePages, set: 0, object: 1), dmaMap(0x10000, 4 * page)], operation: dmaUnmap(0x11000, page), expect: .value(page),
        then: [FDCheck(.probe(.areas(1)), .fields([0x10000, page, 0x12000, 2 * page]))]),

    // §7.2 MAP_DMA, UNMAP_DMA
    IOMMUFDRow(
        rule: "IOMMUFD-710", name: "argsz 31 is EINVAL", prepare: v2, operation: .compatMap(flags: 3, .memory(0), iova: 0x10000, size: page, argsz: 31),
        expect: .failure(.invalidArgument), uapiOnly: FD.notForSwift),
    IOMMUFDRow(rule: "IOMMUFD-710", name: "VFIO_DMA_MAP_FLAG_VADDR is EINVAL", prepare: v2, operation: dmaMap(0x10000, flags: 4), expect: .failure(.invalidArgument), uapiOnly: FD.notForSwift),
    IOMMUFDRow(
        rule: "IOMMUFD-710", name: "flag 1<<31 is EINVAL, before the compat IOAS is looked up", operation: dmaMap(0x10000, flags: 1 << 31),
        expect: .failure(.invalidArgument), uapiOnly: FD.notForSwift),
    IOMMUFDRow(rule: "IOMMUFD-710", name: "size 0 is EINVAL", prepare: v2, operation: dmaMap(0x10000, 0), expect: .failure(.invalidArgument)),
    IOMMUFDRow(
        rule: "IOMMUFD-710", name: "vaddr + size wraps: EOVERFLOW", prepare: v2, operation: .compatMap(flags: 3, .absolute(FD.max - 0xfff), iova: 0x10000, size: 0x2000),
        expect: .failure(.overflow)),
    IOMMUFDRow(rule: "IOMMUFD-710", name: "iova + size - 1 wraps: EOVERFLOW", prepare: v2, operation: dmaMap(FD.max - 0xfff, 0x2000), expect: .failure(.overflow)),
    IOMMUFDRow(rule: "IOMMUFD-710", name: "an unaligned IOVA under TYPE1 is EINVAL", prepare: v1, operation: dmaMap(0x10800), expect: .failure(.invalidArgument)),
    IOMMUFDRow(rule: "IOMMUFD-710", name: "an overlap is EEXIST", prepare: v2 + [dmaMap(0x10000, 2 * page)], operation: dmaMap(0x11000), expect: .failure(.fileExists)),
    IOMMUFDRow(
        rule: "IOMMUFD-710", name: "the MSI window of an attached device is EINVAL", prepare: attached + v2, operation: dmaMap(FD.msiFirst), expect: .failure(.invalidArgument)),
    IOMMUFDRow(
        rule: "IOMMUFD-710", name: "a successful MAP_DMA writes nothing back and pins with a domain", prepare: attached + v2, operation: dmaMap(0x10000, 2 * page),
        expect: .ok, then: [FDCheck(.probe(.lockedBytes), .value(2 * page))], also: ["IOMMUFD-902"]),
    IOMMUFDRow(
        rule: "IOMMUFD-711", name: "flags 0 (neither READ nor WRITE) is not rejected", prepare: v2, operation: dmaMap(0x10000, flags: 0), expect: .ok,
        then: [FDCheck(.probe(.areas(1)), .fields([0x10000, page]))], also: ["IOMMUFD-901"]),
    IOMMUFDRow(
        rule: "IOMMUFD-711", name: "no SET_IOMMU needed once a compat IOAS exists", prepare: compat, operation: dmaMap(0x10000), expect: .ok, also: ["IOMMUFD-731"]),
    IOMMUFDRow(
        rule: "IOMMUFD-711", name: "no dma_avail limit: 66,000 mappings", prepare: v2 + (0..<66_000).map { dmaMap(0x1_0000_0000 + UInt64($0) * page) },
        operation: dmaMap(0x10000), expect: .ok, then: [FDCheck(dmaUnmap(0, 0, flags: 2), .value(66_001 * page))]),
    IOMMUFDRow(
        rule: "IOMMUFD-712", name: "argsz 23 is EINVAL", prepare: v2, operation: .compatUnmap(flags: 0, iova: 0, size: page, argsz: 23), expect: .failure(.invalidArgument),
        uapiOnly: FD.notForSwift),
    IOMMUFDRow(
        rule: "IOMMUFD-712", name: "GET_DIRTY_BITMAP is EINVAL", prepare: v2, operation: dmaUnmap(0x10000, page, flags: 1), expect: .failure(.invalidArgument),
        uapiOnly: FD.notForSwift),
    IOMMUFDRow(
        rule: "IOMMUFD-712", name: "VADDR is EINVAL", prepare: v2, operation: dmaUnmap(0x10000, page, flags: 4), expect: .failure(.invalidArgument), uapiOnly: FD.notForSwift),
    IOMMUFDRow(rule: "IOMMUFD-712", name: "without a compat IOAS: ENODEV", operation: dmaUnmap(0x10000, page), expect: .failure(.operationNotSupportedByDevice)),
    IOMMUFDRow(
        rule: "IOMMUFD-712", name: "ALL with an IOVA is EINVAL, nothing written back", prepare: v2 + [dmaMap(0x10000)], operation: dmaUnmap(page, 0, flags: 2),
        expect: .failure(.invalidArgument), then: [FDCheck(.probe(.areas(1)), .fields([0x10000, page]))]),
    IOMMUFDRow(rule: "IOMMUFD-712", name: "size 0 is EINVAL (size 0 written back)", prepare: v2, operation: dmaUnmap(0x10000, 0), expect: .failure(.invalidArgument)),
    IOMMUFDRow(
        rule: "IOMMUFD-712", name: "iova + size - 1 wraps: EOVERFLOW with size 0 written back", prepare: v2, operation: dmaUnmap(FD.max - 0xfff, 0x2000),
        expect: .failureWriting(.overflow, [0])),
    IOMMUFDRow(
        rule: "IOMMUFD-712", name: "no ULONG_MAX check in compat: iova 0, size 2^64-1 unmaps [0, 2^64-2]",
        prepare: v2 + [dmaMap(0x10000), dmaMap(0x40000, 2 * page, at: page)], operation: dmaUnmap(0, FD.max), expect: .value(3 * page),
        then: [FDCheck(.probe(.areas(1)), .fields([]))]),
    IOMMUFDRow(
        rule: "IOMMUFD-712", name: "no ULONG_MAX check in compat: iova 2^64-1, size 1 is an empty range (0)", prepare: v2, operation: dmaUnmap(FD.max, 1),
        expect: .value(0), also: ["IOMMUFD-715"]),
    IOMMUFDRow(
        rule: "IOMMUFD-713", name: "v1: an exact sub-range is cut out", prepare: v1 + [dmaMap(0x10000, 4 * page)], operation: dmaUnmap(0x11000, page), expect: .value(page),
        then: [FDCheck(.probe(.areas(1)), .fields([0x10000, page, 0x12000, 2 * page]))], also: ["IOMMUFD-714"]),
    IOMMUFDRow(
        rule: "IOMMUFD-713", name: "v1 from IOVA 0: one cut", prepare: v1 + [dmaMap(0, 4 * page)], operation: dmaUnmap(0, page), expect: .value(page),
        then: [FDCheck(.probe(.areas(1)), .fields([page, 3 * page]))]),
    IOMMUFDRow(
        rule: "IOMMUFD-713", name: "v1: cuts at an area's own ends change nothing", prepare: v1 + [dmaMap(0x10000, 4 * page)], operation: dmaUnmap(0x10000, 4 * page),
        expect: .value(4 * page)),
    IOMMUFDRow(
        rule: "IOMMUFD-713", name: "v1: a cut that is not page aligned is EINVAL, nothing written back", prepare: v1 + [dmaMap(0x10000, 4 * page)],
        operation: dmaUnmap(0x10800, page), expect: .failure(.invalidArgument), then: [FDCheck(.probe(.areas(1)), .fields([0x10000, 4 * page]))]),
    IOMMUFDRow(
        rule: "IOMMUFD-713", name: "v1: a cut at the area's first IOVA is a no-op, so [A+1, A+4P-1] cuts nothing and is ENOENT, size 0",
        prepare: v1 + [dmaMap(0x10000, 4 * page)], operation: dmaUnmap(0x10001, 4 * page - 1), expect: .failureWriting(.noSuchFileOrDirectory, [0]),
        then: [FDCheck(.probe(.areas(1)), .fields([0x10000, 4 * page]))]),
    IOMMUFDRow(
        rule: "IOMMUFD-713", name: "v1: cuts made before a later failing cut stay", prepare: v1 + [dmaMap(0x10000, 4 * page)], operation: dmaUnmap(0x10800, 0x2800),
        expect: .failure(.invalidArgument), then: [FDCheck(.probe(.areas(1)), .fields([0x10000, 3 * page, 0x13000, page]))], keepsProgress: true),
    IOMMUFDRow(
        rule: "IOMMUFD-714", name: "v2: a range bisecting an area is ENOENT, size = bytes removed before it",
        prepare: v2 + [dmaMap(0x10000), dmaMap(0x20000, 2 * page, at: page)], operation: dmaUnmap(0x10000, 0x11000),
        expect: .failureWriting(.noSuchFileOrDirectory, [page]), then: [FDCheck(.probe(.areas(1)), .fields([0x20000, 2 * page]))], keepsProgress: true),
    IOMMUFDRow(
        rule: "IOMMUFD-714", name: "v2: a sub-range is ENOENT with size 0", prepare: v2 + [dmaMap(0x10000, 4 * page)], operation: dmaUnmap(0x11000, page),
        expect: .failureWriting(.noSuchFileOrDirectory, [0])),
    IOMMUFDRow(rule: "IOMMUFD-715", name: "an empty range is 0 with size 0 (newest)", prepare: v2 + [dmaMap(0x10000)], operation: dmaUnmap(0x20000, page), expect: .value(0)),
    IOMMUFDRow(
        rule: "IOMMUFD-716", name: "UNMAP ALL removes every area, size = total", prepare: attached + v2 + [dmaMap(0x10000), dmaMap(FD.top48 - page, at: page)],
        operation: dmaUnmap(0, 0, flags: 2), expect: .value(2 * page), then: [FDCheck(.probe(.lockedBytes), .value(0))]),
    IOMMUFDRow(rule: "IOMMUFD-716", name: "UNMAP ALL of an empty IOAS is 0", prepare: v2, operation: dmaUnmap(0, 0, flags: 2), expect: .value(0)),

    // §7.3 GET_INFO
    IOMMUFDRow(rule: "IOMMUFD-720", name: "argsz 15 is EINVAL", prepare: v2, operation: .compatInfo(.layout(argsz: 15)), expect: .failure(.invalidArgument), uapiOnly: FD.notForSwift),
    IOMMUFDRow(rule: "IOMMUFD-720", name: "without a compat IOAS: ENODEV", operation: .compatInfo(.pageSizes), expect: .failure(.operationNotSupportedByDevice)),
    IOMMUFDRow(
        rule: "IOMMUFD-720", name: "a 16-byte caller: argsz grown, PGSIZES|CAPS, page sizes; cap_offset and pad not written", prepare: v2,
        operation: .compatInfo(.layout(argsz: 16)), expect: .fields([72, 3, pageMask, untouched, untouched]), uapiOnly: FD.protocolOnly),
    IOMMUFDRow(rule: "IOMMUFD-721", name: "no domain: PAGE_MASK", prepare: v2, operation: .compatInfo(.pageSizes), expect: .value(pageMask)),
    IOMMUFDRow(rule: "IOMMUFD-721", name: "a VT-d domain: its page sizes", prepare: attached + v2, operation: .compatInfo(.pageSizes), expect: .value(vtdPageSizes)),
    IOMMUFDRow(rule: "IOMMUFD-721", name: "TYPE1 without a domain: still PAGE_MASK", prepare: v1, operation: .compatInfo(.pageSizes), expect: .value(pageMask)),
    IOMMUFDRow(
        rule: "IOMMUFD-722", name: "the chain: DMA_AVAIL (U32_MAX) at 24, IOVA_RANGE at 40; 72 bytes for one range", prepare: v2,
        operation: .compatInfo(.layout(argsz: 512)), expect: infoLayout(pageSizes: pageMask, ranges: [(0, FD.max)]), also: ["IOMMUFD-723"], uapiOnly: FD.protocolOnly),
    IOMMUFDRow(
        rule: "IOMMUFD-722", name: "with a VT-d device: two ranges around the MSI window, 88 bytes", prepare: attached + v2,
        operation: .compatInfo(.layout(argsz: 512)), expect: infoLayout(pageSizes: vtdPageSizes, ranges: [(0, FD.msiFirst - 1), (FD.msiLast + 1, FD.top48 - 1)]),
        uapiOnly: FD.protocolOnly),
    IOMMUFDRow(
        rule: "IOMMUFD-722", name: "the IOVA ranges are the reserved tree's holes, the allowed list ignored", prepare: attached + v2 + [.allow(1, [FD.range(0x10000, 0x1ffff)])],
        operation: .compatInfo(.ranges), expect: .fields([0, FD.msiFirst - 1, FD.msiLast + 1, FD.top48 - 1])),
    IOMMUFDRow(
        rule: "IOMMUFD-723", name: "one byte short of the chain: argsz set to the total, cap_offset 0", prepare: v2, operation: .compatInfo(.layout(argsz: 71)),
        expect: .fields([72, 3, pageMask, 0, 0]), uapiOnly: FD.protocolOnly),

    // §7.4 the group path
    IOMMUFDRow(
        rule: "IOMMUFD-730", name: "SET_CONTAINER with an iommufd creates the compat IOAS, a visible object", prepare: [.openGroup(27)], operation: .joinGroup(27),
        expect: .ok, then: [FDCheck(.vfioIOAS(op: 0), .value(2)), FDCheck(.probe(.objects), .fields([1, 2]))], also: ["VG-12", "IOMMUFD-701", "IOMMUFD-904"]),
    IOMMUFDRow(
        rule: "IOMMUFD-730", name: "an existing compat IOAS is used, not replaced", prepare: compat + [.openGroup(27)], operation: .joinGroup(27), expect: .ok,
        then: [FDCheck(.vfioIOAS(op: 0), .value(1)), FDCheck(.probe(.objects), .fields([1]))], also: ["VG-12"]),
    IOMMUFDRow(
        rule: "IOMMUFD-730", name: "GET_DEVICE_FD binds the device and attaches it to the compat IOAS through an auto domain",
        prepare: [.openGroup(27), .joinGroup(27)], operation: .openGroupDevice(27, nvme), expect: .ok,
        then: [FDCheck(.probe(.objects), .fields([1, 2, 3, 4])), FDCheck(.probe(.hwpt(nvme)), .value(4)), FDCheck(.ranges(2), FD.vtdRanges)], also: ["VG-12"]),
    IOMMUFDRow(
        rule: "IOMMUFD-730", name: "GET_DEVICE_FD with the compat IOAS cleared is ENODEV", prepare: [.openGroup(27), .joinGroup(27), .vfioIOAS(op: 2)],
        operation: .openGroupDevice(27, nvme), expect: .failure(.operationNotSupportedByDevice)),
    IOMMUFDRow(
        rule: "IOMMUFD-731", name: "a bare /dev/iommu with IOMMU_VFIO_IOAS SET: SET_IOMMU, MAP_DMA and GET_INFO work without a group", prepare: v2 + [dmaMap(0x10000)],
        operation: .compatInfo(.ranges), expect: .fields([0, FD.max])),

    // §9 where it differs from type1
    IOMMUFDRow(
        rule: "IOMMUFD-900", name: "three personalities: an empty unmap is ENOENT natively and 0 through compat", prepare: compat, operation: FD.unmap(0x10000, page),
        expect: .failure(.noSuchFileOrDirectory), then: [FDCheck(dmaUnmap(0x10000, page), .value(0))], also: ["IOMMUFD-901"]),
    IOMMUFDRow(
        rule: "IOMMUFD-901", name: "an unknown flag: EOPNOTSUPP natively, EINVAL through compat", prepare: compat, operation: FD.map(0x10000, flags: FD.fixedRW | 8),
        expect: .failure(.notSupported), then: [FDCheck(dmaMap(0x10000, flags: 8), .failure(.invalidArgument))], uapiOnly: FD.notForSwift),
    IOMMUFDRow(
        rule: "IOMMUFD-901", name: "a bisected mapping: ENOENT natively, ENOENT with size through compat v2", prepare: v2 + [FD.map(0x10000, 2 * page)],
        operation: FD.unmap(0x10000, page), expect: .failure(.noSuchFileOrDirectory), then: [FDCheck(dmaUnmap(0x10000, page), .failureWriting(.noSuchFileOrDirectory, [0]))]),
    IOMMUFDRow(
        rule: "IOMMUFD-902", name: "pins are charged per map when a domain exists, and returned with the last area", prepare: attached + v2 + [dmaMap(0x10000), FD.map(0x20000)],
        operation: dmaUnmap(0, 0, flags: 2), expect: .value(2 * page), then: [FDCheck(.probe(.lockedBytes), .value(0))]),
    IOMMUFDRow(
        rule: "IOMMUFD-903", name: "granularity: 2 KiB maps under TYPE1v2 without a domain (alignment 1), not under TYPE1", prepare: v2,
        operation: dmaMap(0x10000, 0x800), expect: .ok, then: [FDCheck(.setIOMMU(1), .failure(.addressInUse))]),
    IOMMUFDRow(
        rule: "IOMMUFD-904", name: "IDs: devices, auto HWPTs and the group path's compat IOAS share the native ID space", prepare: [.openGroup(27), .joinGroup(27)],
        operation: .openGroupDevice(27, nvme), expect: .ok, then: [FDCheck(.allocIOAS(), .value(5)), FDCheck(.destroy(4), .failure(.resourceBusy))]),
]

/// VFIO request numbers of `<linux/vfio.h>` the tables send to `/dev/iommu`.
enum VFIORequestNumbers {
    static let dirtyPages = IOMMUFDStruct.io(100 + 17)
    static let groupGetStatus = IOMMUFDStruct.io(100 + 3)
}
