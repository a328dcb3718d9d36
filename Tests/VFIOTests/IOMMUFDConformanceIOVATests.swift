import IOMMU
import KernelRules
import SystemPackage

/// `iommufd.md` §3 (alignment, domains and reservations, automatic IOVAs), §4 (pinning and
/// accounting) and §5.1 (HWPT_ALLOC, DESTROY of an HWPT). IOAS 1 exists; the NVMe bound is 2,
/// its auto HWPT 3.
private let page = FD.page
private let msiFirst = FD.msiFirst, msiLast = FD.msiLast
private let device = FD.bound(FD.nvme)
private let attached = FD.attached(FD.nvme)
/// A manual HWPT (3) on IOAS 1 for the bound NVMe (2).
private let manual = device + [FDOp.hwptAlloc(dev: 2, pt: 1)]

let iovaRows: [IOMMUFDRow] = [
    // §3.1 alignment, domains, reservations
    IOMMUFDRow(rule: "IOMMUFD-300", name: "no domain: alignment 1", operation: .ranges(1), expect: FD.allRanges),
    IOMMUFDRow(rule: "IOMMUFD-300", name: "a VT-d domain: its smallest page, 4 KiB", prepare: manual, operation: .ranges(1), expect: .fields([1, page, 0, FD.top48 - 1])),
    IOMMUFDRow(
        rule: "IOMMUFD-300", name: "large pages disabled: PAGE_SIZE even with no domain", prepare: [FD.option(.hugePages, set: 0, object: 1)], operation: .ranges(1),
        expect: .fields([1, page, 0, FD.max])),
    IOMMUFDRow(
        rule: "IOMMUFD-301", name: "raising the alignment over an unaligned IOVA is EADDRINUSE, and nothing changes", prepare: device + [FD.map(0x10800)],
        operation: .attach(FD.nvme, 1), expect: .failure(.addressInUse), then: [FDCheck(.probe(.objects), .fields([1, 2])), FDCheck(.ranges(1), FD.allRanges)]),
    IOMMUFDRow(
        rule: "IOMMUFD-301", name: "raising the alignment over an unaligned length", prepare: device + [FD.map(0x10000, 0x800)], operation: .attach(FD.nvme, 1),
        expect: .failure(.addressInUse)),
    IOMMUFDRow(
        rule: "IOMMUFD-301", name: "raising the alignment over an unaligned user-VA offset", prepare: device + [FD.map(0x10000, at: 0x800)],
        operation: .hwptAlloc(dev: 2, pt: 1), expect: .failure(.addressInUse), also: ["IOMMUFD-302"]),
    IOMMUFDRow(
        rule: "IOMMUFD-301", name: "lowering it never fails: the domain goes, the area stays", prepare: attached + [FD.map(0x10000)], operation: .detach(FD.nvme),
        expect: .ok, then: [FDCheck(.ranges(1), FD.allRanges), FDCheck(.probe(.areas(1)), .fields([0x10000, page]))]),
    IOMMUFDRow(
        rule: "IOMMUFD-302", name: "HWPT_ALLOC adds its domain at once: the aperture is reserved (no device regions: nothing attached)", prepare: device,
        operation: .hwptAlloc(dev: 2, pt: 1), expect: .value(3), then: [FDCheck(.ranges(1), .fields([1, page, 0, FD.top48 - 1])), FDCheck(.probe(.hwpt(FD.nvme)), .value(0))],
        also: ["IOMMUFD-500"]),
    IOMMUFDRow(
        rule: "IOMMUFD-302", name: "an area outside the aperture makes the domain's addition EADDRINUSE", prepare: device + [FD.map(FD.top48)],
        operation: .hwptAlloc(dev: 2, pt: 1), expect: .failure(.addressInUse), then: [FDCheck(.probe(.objects), .fields([1, 2]))]),
    IOMMUFDRow(
        rule: "IOMMUFD-302", name: "an allowed range outside the aperture too", prepare: device + [.allow(1, [FD.range(FD.top48, FD.top48 + 0xffff)])],
        operation: .hwptAlloc(dev: 2, pt: 1), expect: .failure(.addressInUse)),
    IOMMUFDRow(
        rule: "IOMMUFD-302", name: "existing areas are pinned and mapped into the new domain", prepare: device + [FD.map(0x10000, 2 * page)],
        operation: .hwptAlloc(dev: 2, pt: 1), expect: .value(3), then: [FDCheck(.probe(.lockedBytes), .value(2 * page))], also: ["IOMMUFD-400"]),
    IOMMUFDRow(
        rule: "IOMMUFD-303", name: "a device region over an existing area: the attach is EADDRINUSE", prepare: device + [FD.map(msiFirst)],
        operation: .attach(FD.nvme, 1), expect: .failure(.addressInUse), also: ["IOMMUFD-304"]),
    IOMMUFDRow(
        rule: "IOMMUFD-304", name: "the device's MSI window is reserved only while it is attached", prepare: manual, operation: .attach(FD.nvme, 3), expect: .value(3),
        then: [FDCheck(.ranges(1), FD.vtdRanges), FDCheck(.detach(FD.nvme), .ok), FDCheck(.ranges(1), .fields([1, page, 0, FD.top48 - 1]))], also: ["IOMMUFD-606"]),
    IOMMUFDRow(
        rule: "IOMMUFD-304", name: "a relaxable RMRR (the USB controller's) is not reserved", config: IOMMUFDConfig(vfio: [FD.usb, FD.thermal]),
        prepare: FD.attached(FD.usb), operation: .ranges(1), expect: FD.vtdRanges),
    IOMMUFDRow(
        rule: "IOMMUFD-305", name: "the last domain removed: areas stay, pins and charge go, alignment back to 1", prepare: manual + [FD.map(0x10000, 2 * page)],
        operation: .destroy(3), expect: .ok,
        then: [FDCheck(.probe(.lockedBytes), .value(0)), FDCheck(.probe(.areas(1)), .fields([0x10000, 2 * page])), FDCheck(.ranges(1), FD.allRanges)],
        also: ["IOMMUFD-404", "IOMMUFD-506"]),
    IOMMUFDRow(
        rule: "IOMMUFD-305", name: "one of two domains removed: the pages stay pinned for the other", prepare: manual + [.attach(FD.nvme, 1), FD.map(0x10000)],
        operation: .destroy(3), expect: .ok,
        then: [FDCheck(.probe(.lockedBytes), .value(page)), FDCheck(.detach(FD.nvme), .ok), FDCheck(.probe(.lockedBytes), .value(0))]),
    IOMMUFDRow(
        rule: "IOMMUFD-306", name: "a mock-like aperture [2^24, 2^31-1]: below it is reserved (EINVAL), the ranges say so",
        config: IOMMUFDConfig(profile: .mock()), prepare: FD.attached(FD.nvme), operation: FD.map(page), expect: .failure(.invalidArgument),
        then: [FDCheck(FD.map(1 << 24), .value(1 << 24))]),
    IOMMUFDRow(
        rule: "IOMMUFD-306", name: "an area below the mock-like aperture makes the attach EADDRINUSE", config: IOMMUFDConfig(profile: .mock()),
        prepare: device + [FD.map(page)], operation: .attach(FD.nvme, 1), expect: .failure(.addressInUse)),

    // §3.2 automatic IOVAs
    IOMMUFDRow(rule: "IOMMUFD-310", name: "length 2^63 is EOVERFLOW", operation: FD.auto(1 << 63), expect: .failure(.overflow)),
    IOMMUFDRow(
        rule: "IOMMUFD-310", name: "a user VA aligned below the IOAS alignment is EINVAL (2 KiB offset on 4 KiB hardware)", prepare: attached,
        operation: FD.auto(page, at: 0x800), expect: .failure(.invalidArgument)),
    IOMMUFDRow(
        rule: "IOMMUFD-310", name: "alignment follows the length's power of two", prepare: [FD.map(0x1000)], operation: FD.auto(0x3000),
        expect: .value(0x4000), also: ["IOMMUFD-313"]),
    IOMMUFDRow(rule: "IOMMUFD-310", name: "…capped by the user VA's own alignment", operation: FD.auto(0x10000, at: 0x2000), expect: .value(0x2000)),
    IOMMUFDRow(rule: "IOMMUFD-310", name: "…and by HPAGE_SIZE (2 MiB)", operation: FD.auto(4 << 20), expect: .value(2 << 20)),
    IOMMUFDRow(rule: "IOMMUFD-311", name: "IOVA 0 is never returned", operation: FD.auto(), expect: .value(page)),
    IOMMUFDRow(rule: "IOMMUFD-311", name: "the lowest fitting hole", prepare: [FD.map(0x1000), FD.map(0x3000, at: page)], operation: FD.auto(), expect: .value(0x2000)),
    IOMMUFDRow(rule: "IOMMUFD-311", name: "the user VA's offset in its page is kept", operation: FD.auto(page, at: 0x10), expect: .value(0x1010)),
    IOMMUFDRow(
        rule: "IOMMUFD-311", name: "an allowed [0, 0xfff] is clipped away (IOVA 0 never)", prepare: [.allow(1, [FD.range(0, 0xfff)])], operation: FD.auto(),
        expect: .failure(.noSpace), also: ["IOMMUFD-312"]),
    IOMMUFDRow(
        rule: "IOMMUFD-311", name: "the last page is never returned", prepare: [.allow(1, [FD.range(FD.max - 0xfff, FD.max)])], operation: FD.auto(),
        expect: .failure(.noSpace)),
    IOMMUFDRow(
        rule: "IOMMUFD-311", name: "the page before it is", prepare: [.allow(1, [FD.range(FD.max - 0x1fff, FD.max)])], operation: FD.auto(),
        expect: .value(FD.max - 0x1fff)),
    IOMMUFDRow(
        rule: "IOMMUFD-311", name: "reservations are skipped: below a mock-like aperture [2^24, 2^31-1] nothing is handed out",
        config: IOMMUFDConfig(profile: .mock()), prepare: attached, operation: FD.auto(), expect: .value(1 << 24)),
    IOMMUFDRow(
        rule: "IOMMUFD-311", name: "an allowed span right after the MSI window: its first page", prepare: attached + [.allow(1, [FD.range(msiLast + 1, msiLast + 0x10000)])],
        operation: FD.auto(), expect: .value(msiLast + 1)),
    IOMMUFDRow(
        rule: "IOMMUFD-312", name: "no hole fits: ENOSPC", prepare: [.allow(1, [FD.range(0x10000, 0x1ffff)])], operation: FD.auto(0x20000),
        expect: .failure(.noSpace), then: [FDCheck(FD.map(0x40000, 0x20000), .value(0x40000))], also: ["IOMMUFD-217"]),
    IOMMUFDRow(
        rule: "IOMMUFD-313", name: "lowest address aligned to min(roundup_pow_of_two(length), VA alignment, 2 MiB) outside areas",
        prepare: [FD.map(0x4000), FD.map(0x9000, at: page)], operation: FD.auto(0x3000, at: 0x4000), expect: .value(0xc000)),

    // §4 pinning and accounting
    IOMMUFDRow(
        rule: "IOMMUFD-400", name: "pinned once however many domains map it", prepare: manual + [.attach(FD.nvme, 1)], operation: FD.map(0x10000, 2 * page),
        expect: .value(0x10000), then: [FDCheck(.probe(.lockedBytes), .value(2 * page))]),
    IOMMUFDRow(
        rule: "IOMMUFD-403", name: "pin first, then charge: a charge over the limit unpins and maps nothing", config: IOMMUFDConfig(lockedMemoryLimit: page),
        prepare: attached + [FD.map(0x10000)], operation: FD.map(0x20000, at: page), expect: .failure(.noMemory),
        then: [FDCheck(.probe(.lockedBytes), .value(page)), FDCheck(.probe(.areas(1)), .fields([0x10000, page]))]),
    IOMMUFDRow(
        rule: "IOMMUFD-404", name: "the charge is returned when the area goes", prepare: attached + [FD.map(0x10000, 2 * page)], operation: FD.unmap(0x10000, 2 * page),
        expect: .value(2 * page), then: [FDCheck(.probe(.lockedBytes), .value(0))], also: ["IOMMUFD-405"]),
    IOMMUFDRow(
        rule: "IOMMUFD-405", name: "charged on the first pin: adding a domain to an IOAS with areas", prepare: device + [FD.map(0x10000, 3 * page)],
        operation: .attach(FD.nvme, 1), expect: .value(3), then: [FDCheck(.probe(.lockedBytes), .value(3 * page))]),

    // §5.1 HWPT_ALLOC and DESTROY
    IOMMUFDRow(
        rule: "IOMMUFD-500", name: "a manual HWPT is not attached and holds its IOAS", prepare: device, operation: .hwptAlloc(dev: 2, pt: 1), expect: .value(3),
        then: [FDCheck(.probe(.hwpt(FD.nvme)), .value(0)), FDCheck(.destroy(1), .failure(.resourceBusy))]),
    IOMMUFDRow(
        rule: "IOMMUFD-501", name: "data_type NONE with a data_len is EINVAL", prepare: device, operation: .hwptAlloc(dev: 2, pt: 1, dataLength: 8),
        expect: .failure(.invalidArgument), uapiOnly: FD.notForSwift),
    IOMMUFDRow(
        rule: "IOMMUFD-501", name: "a data_type without data_len is EINVAL", prepare: device, operation: .hwptAlloc(dev: 2, pt: 1, dataType: 1),
        expect: .failure(.invalidArgument), uapiOnly: FD.notForSwift),
    IOMMUFDRow(
        rule: "IOMMUFD-501", name: "the data check comes before the device lookup", operation: .hwptAlloc(dev: 9, pt: 1, dataLength: 8),
        expect: .failure(.invalidArgument), uapiOnly: FD.notForSwift),
    IOMMUFDRow(rule: "IOMMUFD-501", name: "a missing device is ENOENT", operation: .hwptAlloc(dev: 9, pt: 1), expect: .failure(.noSuchFileOrDirectory)),
    IOMMUFDRow(rule: "IOMMUFD-501", name: "an IOAS as dev_id is ENOENT", operation: .hwptAlloc(dev: 1, pt: 1), expect: .failure(.noSuchFileOrDirectory)),
    IOMMUFDRow(rule: "IOMMUFD-501", name: "a missing pt_id is EINVAL, not ENOENT", prepare: device, operation: .hwptAlloc(dev: 2, pt: 9), expect: .failure(.invalidArgument)),
    IOMMUFDRow(rule: "IOMMUFD-501", name: "a DEVICE as pt_id is EINVAL", prepare: device, operation: .hwptAlloc(dev: 2, pt: 2), expect: .failure(.invalidArgument)),
    IOMMUFDRow(
        rule: "IOMMUFD-501", name: "a paging HWPT as pt_id asks for a nested HWPT: without driver data EOPNOTSUPP", prepare: manual,
        operation: .hwptAlloc(dev: 2, pt: 3), expect: .failure(.notSupported), also: ["IOMMUFD-504"]),
    IOMMUFDRow(
        rule: "IOMMUFD-501", name: "pt_id is looked up before the flags are checked: a missing one with flags is EINVAL", prepare: device,
        operation: .hwptAlloc(dev: 2, pt: 9, flags: 1), expect: .failure(.invalidArgument), also: ["IOMMUFD-502"]),
    IOMMUFDRow(
        rule: "IOMMUFD-502", name: "DIRTY_TRACKING: the simulated IOMMUs have no dirty tracking (EOPNOTSUPP, as for an incapable device)", prepare: device,
        operation: .hwptAlloc(dev: 2, pt: 1, flags: 2), expect: .failure(.notSupported), also: ["IOMMUFD-510"]),
    IOMMUFDRow(
        rule: "IOMMUFD-502", name: "FAULT_ID_VALID with NEST_PARENT is EOPNOTSUPP", prepare: device, operation: .hwptAlloc(dev: 2, pt: 1, flags: 5),
        expect: .failure(.notSupported)),
    IOMMUFDRow(
        rule: "IOMMUFD-502", name: "driver data for a paging domain: the simulated IOMMUs take none (EOPNOTSUPP)", prepare: device,
        operation: .hwptAlloc(dev: 2, pt: 1, dataType: 1, dataLength: 8), expect: .failure(.notSupported)),
    IOMMUFDRow(
        rule: "IOMMUFD-503", name: "bind refuses a non-coherent IOMMU, so every HWPT enforces coherency: DMA_CC_IOMMU is 1",
        prepare: manual + [.vfioIOAS(op: 1, id: 1)], operation: .checkExtension(4), expect: .value(1), also: ["IOMMUFD-703"]),
    IOMMUFDRow(
        rule: "IOMMUFD-506", name: "DESTROY of an unattached HWPT succeeds and removes its domain", prepare: manual + [FD.map(0x10000)], operation: .destroy(3),
        expect: .ok, then: [FDCheck(.probe(.objects), .fields([1, 2])), FDCheck(.ranges(1), FD.allRanges), FDCheck(.destroy(1), .ok)]),
    IOMMUFDRow(
        rule: "IOMMUFD-506", name: "DESTROY of an auto HWPT in use is EBUSY", prepare: attached, operation: .destroy(3), expect: .failure(.resourceBusy),
        also: ["IOMMUFD-114"]),
]
