import IOMMU
import KernelRules
import SystemPackage

/// `iommufd.md` §6: the device API through the VFIO device cdev (`/dev/vfio/devices/vfioN`: BIND,
/// ATTACH/DETACH_IOMMUFD_PT), the group path's exclusion, GET_HW_INFO, and DMA from a device
/// model through the attached domain. IOAS 1 (and 2 with `two`) exists; the first device bound is
/// the next ID, its auto HWPT the one after.
private let page = FD.page
private let nvme = FD.nvme, nic = FD.nic
private let two = IOMMUFDConfig(ioas: 2)
/// `devices/default` with both functions of group 3 (USB 00:14.0, thermal 00:14.2) on vfio-pci.
private let group3 = IOMMUFDConfig(vfio: [FD.usb, FD.thermal])
private let models = IOMMUFDConfig(models: true)
/// The memcpy engine bound (2) and attached (3) with 2 MiB of memory mapped at IOVA 0x100000.
private let engine = FD.attached(FD.engine) + [FD.map(0x100000, 2 << 20)]
private let cdevFlagsOnly = "the cdev ioctl's flags / argsz: VFIODeviceCdev's Swift API takes the values"

let deviceRows: [IOMMUFDRow] = [
    // §6.1 the device API
    IOMMUFDRow(
        rule: "IOMMUFD-600", name: "bind: a DEVICE object, DMA owned by the context and blocked", prepare: [.open(nvme)], operation: .bind(nvme), expect: .value(2),
        then: [FDCheck(.probe(.objects), .fields([1, 2])), FDCheck(.probe(.hwpt(nvme)), .value(0)), FDCheck(.probe(.openGroup(27)), .failure(.resourceBusy))],
        also: ["IOMMUFD-615"]),
    IOMMUFDRow(
        rule: "IOMMUFD-600", name: "an IOMMU without IOMMU_CAP_CACHE_COHERENCY (SMMUv3 profile) is EINVAL", config: IOMMUFDConfig(profile: .smmuv3()),
        prepare: [.open(nvme)], operation: .bind(nvme), expect: .failure(.invalidArgument)),
    IOMMUFDRow(
        rule: "IOMMUFD-600", name: "no interrupt remapping (no isolated MSI) is EPERM", config: IOMMUFDConfig(profile: .vtd(interruptRemapping: false)),
        prepare: [.open(nvme)], operation: .bind(nvme), expect: .failure(.notPermitted)),
    IOMMUFDRow(
        rule: "IOMMUFD-600", name: "a group with a kernel driver bound in it (00:14.2) cannot be claimed: EPERM", config: IOMMUFDConfig(vfio: [FD.usb]),
        prepare: [.open(FD.usb)], operation: .bind(FD.usb), expect: .failure(.notPermitted)),
    IOMMUFDRow(
        rule: "IOMMUFD-600", name: "several devices of one group bind to the same context", config: group3, prepare: FD.bound(FD.usb) + [.open(FD.thermal)],
        operation: .bind(FD.thermal), expect: .value(3)),
    IOMMUFDRow(
        rule: "IOMMUFD-601", name: "unbind (close) gives the group's DMA back: the group opens again", prepare: FD.bound(nvme), operation: .closeDevice(nvme),
        expect: .ok, then: [FDCheck(.probe(.objects), .fields([1])), FDCheck(.probe(.openGroup(27)), .ok)], also: ["IOMMUFD-617"]),
    IOMMUFDRow(
        rule: "IOMMUFD-602", name: "attach to an IOAS: the auto HWPT's ID is written back", prepare: FD.bound(nvme), operation: .attach(nvme, 1), expect: .value(3),
        then: [FDCheck(.probe(.hwpt(nvme)), .value(3))], also: ["IOMMUFD-621"]),
    IOMMUFDRow(rule: "IOMMUFD-602", name: "an unknown pt_id is ENOENT", prepare: FD.bound(nvme), operation: .attach(nvme, 9), expect: .failure(.noSuchFileOrDirectory)),
    IOMMUFDRow(
        rule: "IOMMUFD-602", name: "a DEVICE as pt_id is EINVAL", prepare: FD.bound(nvme), operation: .attach(nvme, 2), expect: .failure(.invalidArgument),
        also: ["IOMMUFD-621"]),
    IOMMUFDRow(
        rule: "IOMMUFD-603", name: "a group shares one HWPT: its second device cannot attach elsewhere (EINVAL)", config: group3,
        prepare: FD.attached(FD.usb) + FD.bound(FD.thermal) + [.hwptAlloc(dev: 4, pt: 1)], operation: .attach(FD.thermal, 5), expect: .failure(.invalidArgument),
        then: [FDCheck(.attach(FD.thermal, 1), .value(3)), FDCheck(.attach(FD.thermal, 3), .value(3))], also: ["IOMMUFD-604"]),
    IOMMUFDRow(
        rule: "IOMMUFD-603", name: "the device's reserved regions against the IOAS: EADDRINUSE, nothing attached", prepare: FD.bound(nvme) + [FD.map(FD.msiFirst)],
        operation: .attach(nvme, 1), expect: .failure(.addressInUse), then: [FDCheck(.probe(.hwpt(nvme)), .value(0))], also: ["IOMMUFD-304"]),
    IOMMUFDRow(
        rule: "IOMMUFD-604", name: "devices behind one IOMMU share the IOAS's auto HWPT", prepare: FD.bound(nvme) + FD.bound(nic) + [.attach(nvme, 1)],
        operation: .attach(nic, 1), expect: .value(4), then: [FDCheck(.probe(.objects), .fields([1, 2, 3, 4]))]),
    IOMMUFDRow(
        rule: "IOMMUFD-604", name: "a manual HWPT is never picked automatically", prepare: FD.bound(nvme) + [.hwptAlloc(dev: 2, pt: 1)], operation: .attach(nvme, 1),
        expect: .value(4)),
    IOMMUFDRow(
        rule: "IOMMUFD-605", name: "replace: attach to another IOAS without detaching; the old auto HWPT is destroyed", config: two,
        prepare: FD.attached(nvme, to: 1), operation: .attach(nvme, 2), expect: .value(5),
        then: [
            FDCheck(.destroy(4), .failure(.noSuchFileOrDirectory)), FDCheck(.probe(.objects), .fields([1, 2, 3, 5])), FDCheck(.ranges(1), FD.allRanges),
            FDCheck(.ranges(2), FD.vtdRanges),
        ], also: ["IOMMUFD-621", "IOMMUFD-622"]),
    IOMMUFDRow(
        rule: "IOMMUFD-605", name: "replacing with the same HWPT is a no-op", prepare: FD.attached(nvme), operation: .attach(nvme, 3), expect: .value(3),
        then: [FDCheck(.attach(nvme, 1), .value(3)), FDCheck(.probe(.objects), .fields([1, 2, 3]))], also: ["IOMMUFD-622"]),
    IOMMUFDRow(
        rule: "IOMMUFD-605", name: "replace onto a manual HWPT keeps it after the device leaves", config: two,
        prepare: FD.attached(nvme, to: 1) + [.hwptAlloc(dev: 3, pt: 2)], operation: .attach(nvme, 5), expect: .value(5),
        then: [FDCheck(.destroy(4), .failure(.noSuchFileOrDirectory)), FDCheck(.detach(nvme), .ok), FDCheck(.probe(.objects), .fields([1, 2, 3, 5]))]),
    IOMMUFDRow(
        rule: "IOMMUFD-605", name: "replace whose regions meet an area of the new IOAS: EADDRINUSE, the old attachment stays", config: two,
        prepare: FD.attached(nvme, to: 1) + [FD.map(FD.msiFirst, ioas: 2)], operation: .attach(nvme, 2), expect: .failure(.addressInUse),
        then: [FDCheck(.probe(.hwpt(nvme)), .value(4)), FDCheck(.ranges(1), FD.vtdRanges), FDCheck(.ranges(2), FD.allRanges)]),
    IOMMUFDRow(
        rule: "IOMMUFD-606", name: "detach twice: both succeed; the auto HWPT goes with its last device", prepare: FD.attached(nvme), operation: .detach(nvme),
        expect: .ok, then: [FDCheck(.detach(nvme), .ok), FDCheck(.probe(.objects), .fields([1, 2])), FDCheck(.ranges(1), FD.allRanges)], also: ["IOMMUFD-624"]),
    IOMMUFDRow(
        rule: "IOMMUFD-606", name: "an auto HWPT stays while another device uses it", prepare: FD.attached(nvme) + FD.bound(nic) + [.attach(nic, 1)],
        operation: .detach(nvme), expect: .ok, then: [FDCheck(.probe(.objects), .fields([1, 2, 3, 4])), FDCheck(.destroy(3), .failure(.resourceBusy))]),
    IOMMUFDRow(rule: "IOMMUFD-606", name: "detach of a bound, never attached device is a silent success", prepare: FD.bound(nvme), operation: .detach(nvme), expect: .ok),

    // §6.2 the cdev and BIND
    IOMMUFDRow(rule: "IOMMUFD-610", name: "a node that does not exist", operation: .open("vfio99"), expect: .failure(.noSuchFileOrDirectory)),
    IOMMUFDRow(
        rule: "IOMMUFD-610", name: "several opens of one cdev succeed, each unbound", prepare: [.open(nvme)], operation: .open("second", of: nvme), expect: .ok,
        then: [FDCheck(.deviceInfo("second"), .failure(.invalidArgument))], also: ["VG-35"]),
    IOMMUFDRow(
        rule: "IOMMUFD-611", name: "an unbound cdev: VFIO_DEVICE_GET_INFO is EINVAL", prepare: [.open(nvme)], operation: .deviceInfo(nvme),
        expect: .failure(.invalidArgument), also: ["VG-35"]),
    IOMMUFDRow(
        rule: "IOMMUFD-611", name: "an unbound cdev: ATTACH_IOMMUFD_PT is EINVAL", prepare: [.open(nvme)], operation: .attach(nvme, 1),
        expect: .failure(.invalidArgument), also: ["VG-35"]),
    IOMMUFDRow(
        rule: "IOMMUFD-611", name: "an unbound cdev: DETACH_IOMMUFD_PT is EINVAL", prepare: [.open(nvme)], operation: .detach(nvme), expect: .failure(.invalidArgument)),
    IOMMUFDRow(
        rule: "IOMMUFD-611", name: "once bound the device's own ioctls work", config: models, prepare: FD.bound(FD.engine), operation: .deviceInfo(FD.engine),
        expect: .ok),
    IOMMUFDRow(
        rule: "IOMMUFD-612", name: "argsz 15 is EINVAL", prepare: [.open(nvme)], operation: .bind(nvme, argsz: 15), expect: .failure(.invalidArgument),
        uapiOnly: cdevFlagsOnly),
    IOMMUFDRow(
        rule: "IOMMUFD-612", name: "argsz 16 (no token pointer) binds", prepare: [.open(nvme)], operation: .bind(nvme, argsz: 16), expect: .value(2),
        uapiOnly: cdevFlagsOnly),
    IOMMUFDRow(
        rule: "IOMMUFD-612", name: "a non-zero byte past the 24-byte struct is E2BIG", prepare: [.open(nvme)], operation: .bind(nvme, argsz: 32, tail: [0, 1]),
        expect: .failure(.argListTooLong), uapiOnly: cdevFlagsOnly),
    IOMMUFDRow(
        rule: "IOMMUFD-612", name: "a zero tail past 24 bytes binds", prepare: [.open(nvme)], operation: .bind(nvme, argsz: 32, tail: [0, 0]), expect: .value(2),
        uapiOnly: cdevFlagsOnly),
    IOMMUFDRow(
        rule: "IOMMUFD-612", name: "a negative iommufd is EINVAL", prepare: [.open(nvme)], operation: .bind(nvme, iommufd: .number(-2)),
        expect: .failure(.invalidArgument), uapiOnly: FD.noFD),
    IOMMUFDRow(
        rule: "IOMMUFD-612", name: "an unknown flag is EINVAL", prepare: [.open(nvme)], operation: .bind(nvme, flags: 2), expect: .failure(.invalidArgument),
        uapiOnly: cdevFlagsOnly),
    IOMMUFDRow(
        rule: "IOMMUFD-612", name: "the group fd open: EBUSY", prepare: [.openGroup(27), .open(nvme)], operation: .bind(nvme), expect: .failure(.resourceBusy),
        then: [FDCheck(.closeGroup(27), .ok), FDCheck(.bind(nvme), .value(2))], also: ["IOMMUFD-615"]),
    IOMMUFDRow(
        rule: "IOMMUFD-612", name: "binding the same fd twice is EINVAL", prepare: FD.bound(nvme), operation: .bind(nvme), expect: .failure(.invalidArgument),
        also: ["VG-35"]),
    IOMMUFDRow(
        rule: "IOMMUFD-612", name: "step 4 before step 9: a negative fd with a bad flag is EINVAL, not EBADF", prepare: [.open(nvme)],
        operation: .bind(nvme, iommufd: .notOpen, flags: 2), expect: .failure(.invalidArgument), uapiOnly: FD.noFD),
    IOMMUFDRow(
        rule: "IOMMUFD-613", name: "the newest protocol, not v6.6–v6.16's: bytes past 16 are read, so a non-zero byte at 24 is E2BIG (older kernels ignored it)",
        prepare: [.open(nvme)], operation: .bind(nvme, argsz: 25, tail: [1]), expect: .failure(.argListTooLong), uapiOnly: cdevFlagsOnly),
    IOMMUFDRow(
        rule: "IOMMUFD-614", name: "a second cdev fd cannot bind while the first is bound", prepare: FD.bound(nvme) + [.open("second", of: nvme)],
        operation: .bind("second"), expect: .failure(.invalidArgument), then: [FDCheck(.closeDevice(nvme), .ok), FDCheck(.bind("second"), .value(2))]),
    IOMMUFDRow(
        rule: "IOMMUFD-614",
        name: "a device open through its group cannot be cdev-bound even with the group fd closed: the device fd holds the group file (group.c), so EBUSY",
        prepare: [.openGroup(27), .joinGroup(27), .openGroupDevice(27, nvme), .closeGroup(27), .open(nvme)], operation: .bind(nvme),
        expect: .failure(.resourceBusy), also: ["IOMMUFD-612", "IOMMUFD-730"]),
    IOMMUFDRow(
        rule: "IOMMUFD-615", name: "while the cdev is bound the group cannot be opened (EBUSY)", prepare: FD.bound(nvme), operation: .openGroup(27),
        expect: .failure(.resourceBusy), also: ["VG-35"]),
    IOMMUFDRow(
        rule: "IOMMUFD-616", name: "a VF token for a function that is neither an SR-IOV PF nor a VF is EINVAL", prepare: [.open(nvme)], operation: .bind(nvme, flags: 1),
        expect: .failure(.invalidArgument), uapiOnly: cdevFlagsOnly),
    IOMMUFDRow(
        rule: "IOMMUFD-617", name: "closing a bound, attached cdev: detached, auto HWPT gone, pins returned, group free",
        prepare: FD.attached(nvme) + [FD.map(0x10000)], operation: .closeDevice(nvme), expect: .ok,
        then: [
            FDCheck(.probe(.objects), .fields([1])), FDCheck(.probe(.lockedBytes), .value(0)), FDCheck(.probe(.areas(1)), .fields([0x10000, page])),
            FDCheck(.probe(.openGroup(27)), .ok),
        ]),

    // §6.3 ATTACH / DETACH
    IOMMUFDRow(
        rule: "IOMMUFD-620", name: "argsz 11 is EINVAL", prepare: FD.bound(nvme), operation: .attach(nvme, 1, argsz: 11), expect: .failure(.invalidArgument),
        uapiOnly: cdevFlagsOnly),
    IOMMUFDRow(
        rule: "IOMMUFD-620", name: "argsz 12 (no pasid) attaches", prepare: FD.bound(nvme), operation: .attach(nvme, 1, argsz: 12), expect: .value(3),
        uapiOnly: cdevFlagsOnly),
    IOMMUFDRow(
        rule: "IOMMUFD-620", name: "an unknown flag is EINVAL", prepare: FD.bound(nvme), operation: .attach(nvme, 1, flags: 2), expect: .failure(.invalidArgument),
        uapiOnly: cdevFlagsOnly),
    IOMMUFDRow(
        rule: "IOMMUFD-620", name: "ATTACH_PASID with argsz 12 is EINVAL", prepare: FD.bound(nvme), operation: .attach(nvme, 1, flags: 1, argsz: 12),
        expect: .failure(.invalidArgument), uapiOnly: cdevFlagsOnly),
    IOMMUFDRow(
        rule: "IOMMUFD-621", name: "pt_id UINT32_MAX is ENOENT (attach_invalid_pt_fails)", prepare: FD.bound(nvme), operation: .attach(nvme, .max),
        expect: .failure(.noSuchFileOrDirectory)),
    IOMMUFDRow(
        rule: "IOMMUFD-621", name: "attach to a manual HWPT: its own ID back", prepare: FD.bound(nvme) + [.hwptAlloc(dev: 2, pt: 1)], operation: .attach(nvme, 3),
        expect: .value(3), then: [FDCheck(.ranges(1), FD.vtdRanges)]),
    IOMMUFDRow(
        rule: "IOMMUFD-623", name: "ATTACH_PASID: the function has no PASID capability (EINVAL)", prepare: FD.bound(nvme), operation: .attach(nvme, 1, flags: 1),
        expect: .failure(.invalidArgument), uapiOnly: cdevFlagsOnly),
    IOMMUFDRow(
        rule: "IOMMUFD-624", name: "argsz 7 is EINVAL", prepare: FD.attached(nvme), operation: .detach(nvme, argsz: 7), expect: .failure(.invalidArgument),
        uapiOnly: cdevFlagsOnly),
    IOMMUFDRow(
        rule: "IOMMUFD-624", name: "an unknown flag is EINVAL", prepare: FD.attached(nvme), operation: .detach(nvme, flags: 2), expect: .failure(.invalidArgument),
        uapiOnly: cdevFlagsOnly),
    IOMMUFDRow(
        rule: "IOMMUFD-624", name: "DETACH_PASID with argsz 8 is EINVAL", prepare: FD.attached(nvme), operation: .detach(nvme, flags: 1, argsz: 8),
        expect: .failure(.invalidArgument), uapiOnly: cdevFlagsOnly),
    IOMMUFDRow(
        rule: "IOMMUFD-624", name: "DETACH_PASID of a PASID never attached is a silent success; the device stays attached",
        prepare: FD.attached(nvme), operation: .detach(nvme, flags: 1), expect: .ok, then: [FDCheck(.probe(.hwpt(nvme)), .value(3))], uapiOnly: cdevFlagsOnly),
    IOMMUFDRow(
        rule: "IOMMUFD-625", name: "the state machine: bind, attach, attach elsewhere, detach, detach, attach, close", config: two,
        prepare: [.open(nvme), .bind(nvme), .attach(nvme, 1), .attach(nvme, 2), .detach(nvme), .detach(nvme)], operation: .attach(nvme, 1), expect: .value(4),
        then: [FDCheck(.closeDevice(nvme), .ok), FDCheck(.probe(.objects), .fields([1, 2])), FDCheck(.open(nvme), .ok), FDCheck(.bind(nvme), .value(3))],
        also: ["VG-35"]),

    // DMA from the memcpy engine model through the attached domain
    IOMMUFDRow(
        rule: "IOMMUFD-622", name: "DMA follows the attached domain: the engine's store lands in the mapped memory", config: models, prepare: engine,
        operation: .probe(.dmaStore(FD.engine, iova: 0x100000 + 0x40, value: 0x1234_5678)), expect: .ok,
        then: [FDCheck(.probe(.hostWord(.memory(0x40))), .value(0x1234_5678)), FDCheck(.probe(.dmaStore(FD.engine, iova: 0x10000, value: 1)), .dmaFault)]),
    IOMMUFDRow(
        rule: "IOMMUFD-622", name: "bound but not attached: DMA is blocked", config: models, prepare: FD.bound(FD.engine) + [FD.map(0x100000, 2 << 20)],
        operation: .probe(.dmaStore(FD.engine, iova: 0x100000, value: 7)), expect: .dmaFault, then: [FDCheck(.probe(.hostWord(.memory(0))), .value(0))],
        also: ["IOMMUFD-600"]),
    IOMMUFDRow(
        rule: "IOMMUFD-622", name: "after DETACH, DMA is blocked again", config: models, prepare: engine + [.detach(FD.engine)],
        operation: .probe(.dmaStore(FD.engine, iova: 0x100000, value: 7)), expect: .dmaFault, also: ["IOMMUFD-606", "IOMMUFD-624"]),
    IOMMUFDRow(
        rule: "IOMMUFD-622", name: "after UNMAP, the IOVA faults", config: models, prepare: engine + [FD.unmap(0x100000, 2 << 20)],
        operation: .probe(.dmaStore(FD.engine, iova: 0x100000, value: 7)), expect: .dmaFault, also: ["IOMMUFD-231"]),
    IOMMUFDRow(
        rule: "IOMMUFD-622", name: "after replace, DMA follows the new IOAS's mapping", config: IOMMUFDConfig(models: true, ioas: 2),
        prepare: engine + [FD.map(0x100000, page, ioas: 2, at: 0x8000), .attach(FD.engine, 2)],
        operation: .probe(.dmaStore(FD.engine, iova: 0x100000, value: 0xfeed)), expect: .ok,
        then: [FDCheck(.probe(.hostWord(.memory(0x8000))), .value(0xfeed)), FDCheck(.probe(.hostWord(.memory(0))), .value(0))], also: ["IOMMUFD-605"]),
    IOMMUFDRow(
        rule: "IOMMUFD-622", name: "a COPY into another IOAS maps the same pages there", config: IOMMUFDConfig(models: true, ioas: 2),
        prepare: FD.attached(FD.engine, to: 2) + [FD.map(0x100000, page, at: 0x3000),
            .copy(dst: 2, src: 1, flags: FD.fixedRW, length: page, dstIOVA: 0x700000, srcIOVA: 0x100000)],
        operation: .probe(.dmaStore(FD.engine, iova: 0x700008, value: 0xc0fe)), expect: .ok, then: [FDCheck(.probe(.hostWord(.memory(0x3008))), .value(0xc0fe))],
        also: ["IOMMUFD-224"]),
    IOMMUFDRow(
        rule: "IOMMUFD-622", name: "a READABLE-only area refuses device writes", config: models,
        prepare: FD.attached(FD.engine) + [FD.map(0x100000, page, flags: FD.fixedRead)], operation: .probe(.dmaStore(FD.engine, iova: 0x100000, value: 1)),
        expect: .dmaFault, also: ["IOMMUFD-210"]),

    // §6.4 GET_HW_INFO
    IOMMUFDRow(rule: "IOMMUFD-630", name: "a missing device is ENOENT", operation: .hwInfo(dev: 9), expect: .failure(.noSuchFileOrDirectory)),
    IOMMUFDRow(rule: "IOMMUFD-630", name: "an IOAS ID is ENOENT", operation: .hwInfo(dev: 1), expect: .failure(.noSuchFileOrDirectory)),
    IOMMUFDRow(
        rule: "IOMMUFD-630", name: "data_len 0: only type and length come back", prepare: FD.bound(nvme), operation: .hwInfo(dev: 2), expect: .fields([0, 0, 0, 0, 0]),
        uapiOnly: FD.protocolOnly),
    IOMMUFDRow(
        rule: "IOMMUFD-630", name: "a 16-byte buffer is zero-filled, data_len says the kernel's length (0: no driver data)", prepare: FD.bound(nvme),
        operation: .hwInfo(dev: 2, dataLength: 16), expect: .fields([0, 0, 0, 0, 16]), uapiOnly: FD.protocolOnly),
    IOMMUFDRow(
        rule: "IOMMUFD-630", name: "INPUT_TYPE asking for a type the IOMMU does not report is EOPNOTSUPP", prepare: FD.bound(nvme),
        operation: .raw(IOMMUFDStruct.hwInfoRequest, StructBytes(IOMMUFDStruct.hwInfo, ["flags": 1, "dev_id": 2, "out_data_type": 1])),
        expect: .failure(.notSupported), uapiOnly: FD.notForSwift),
    IOMMUFDRow(
        rule: "IOMMUFD-630", name: "INPUT_TYPE with type DEFAULT (0) answers", prepare: FD.bound(nvme), operation: .hwInfo(dev: 2, flags: 1),
        expect: .fields([0, 0, 0, 0, 0]), uapiOnly: FD.notForSwift),
    IOMMUFDRow(
        rule: "IOMMUFD-631", name: "no dirty tracking, no PASID: out_capabilities 0, out_max_pasid_log2 0", prepare: FD.attached(nvme),
        operation: .hwInfo(dev: 2, dataLength: 8), expect: .fields([0, 0, 0, 0, 8]), uapiOnly: FD.protocolOnly),
]
