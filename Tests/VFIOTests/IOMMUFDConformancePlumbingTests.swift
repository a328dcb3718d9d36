import KernelRules
import SystemPackage

/// `iommufd.md` §1: the node, the ioctl dispatch and size protocol, the errno contract, object IDs,
/// DESTROY, close and the fd lookup VFIO's BIND does. IDs: IOAS 1 exists; the first device bound
/// is 2, its auto HWPT 3.
private typealias S = IOMMUFDStruct

/// Every command's `offsetofend(_last)` (IOMMUFD-103), 7.3 without `CONFIG_IOMMUFD_TEST`.
private let minimumSizes: [(name: String, request: UInt, minimum: Int)] = [
    ("DESTROY", S.destroyRequest, 8), ("IOAS_ALLOC", S.ioasAllocRequest, 12), ("IOAS_ALLOW_IOVAS", S.allowIOVAsRequest, 24),
    ("IOAS_COPY", S.copyRequest, 40), ("IOAS_IOVA_RANGES", S.iovaRangesRequest, 32), ("IOAS_MAP", S.mapRequest, 40),
    ("IOAS_UNMAP", S.unmapRequest, 24), ("OPTION", S.optionRequest, 24), ("VFIO_IOAS", S.vfioIOASRequest, 12), ("HWPT_ALLOC", S.hwptAllocRequest, 24),
    ("GET_HW_INFO", S.hwInfoRequest, 32), ("HWPT_SET_DIRTY_TRACKING", S.setDirtyTrackingRequest, 16),
    ("HWPT_GET_DIRTY_BITMAP", S.getDirtyBitmapRequest, 48), ("HWPT_INVALIDATE", S.invalidateRequest, 32),
    ("FAULT_QUEUE_ALLOC", S.faultQueueAllocRequest, 16), ("IOAS_MAP_FILE", S.mapFileRequest, 40), ("VIOMMU_ALLOC", S.viommuAllocRequest, 24),
    ("VDEVICE_ALLOC", S.vdeviceAllocRequest, 24), ("IOAS_CHANGE_PROCESS", S.changeProcessRequest, 8), ("VEVENTQ_ALLOC", S.veventqAllocRequest, 28),
    ("HW_QUEUE_ALLOC", S.hwQueueAllocRequest, 40), ("IOAS_NOIOMMU_GET_PA", S.noIOMMUGetPARequest, 40),
]

/// A zeroed struct of `length` bytes whose `size` says `size`.
private func sized(_ size: Int, length: Int? = nil) -> StructBytes {
    var bytes = StructBytes(length: length ?? max(size, 4))
    bytes.set(UInt64(size), at: 0, width: 4)
    return bytes
}

private let unknownFlag: UInt32 = 1 << 31

let plumbingRows: [IOMMUFDRow] =
    [
        // §1.1 the node
        IOMMUFDRow(
            rule: "IOMMUFD-100", name: "every open is a new context with an empty table: its first object is ID 1", config: IOMMUFDConfig(ioas: 0),
            operation: .allocIOAS(), expect: .value(1), then: [FDCheck(.probe(.objects), .fields([1]))]),
        IOMMUFDRow(rule: "IOMMUFD-100", name: "/dev/iommu starts with RLIMIT_MODE 0 (not MM)", operation: FD.option(.rlimitMode, get: 0), expect: .value(0)),
        IOMMUFDRow(
            rule: "IOMMUFD-100", name: "/dev/iommu starts without a compat IOAS", operation: .vfioIOAS(op: 0), expect: .failure(.operationNotSupportedByDevice),
            also: ["IOMMUFD-701"]),
        IOMMUFDRow(
            rule: "IOMMUFD-101", name: "VFIO_GET_API_VERSION (nr 0x64, below 0x80) reaches the VFIO compat layer", operation: .apiVersion, expect: .value(0),
            also: ["IOMMUFD-704"], uapiOnly: FD.noRequest),
        IOMMUFDRow(
            rule: "IOMMUFD-101", name: "IOMMU_IOAS_ALLOC is _IO(';', 0x81): no size or direction in the number",
            operation: .raw(S.io(0x81), StructBytes(S.ioasAlloc), read: [8]), expect: .fields([2]), uapiOnly: FD.noRequest),

        // IOMMUFD-102: dispatch, in order
        IOMMUFDRow(
            rule: "IOMMUFD-102", name: "step 2: DESTROY with a NULL argument is EFAULT", operation: .rawPointer(S.destroyRequest, 0),
            expect: .failure(.badAddress), uapiOnly: FD.noPointer),
        IOMMUFDRow(
            rule: "IOMMUFD-102", name: "step 2 before 3: NULL with a malformed number is EFAULT (get_user comes first)",
            operation: .rawPointer(S.iowr(0x81, 12), 0), expect: .failure(.badAddress), uapiOnly: FD.noPointer),
        IOMMUFDRow(
            rule: "IOMMUFD-102", name: "step 1: _IO(';', 0x7f), below IOMMUFD_CMD_BASE, goes to VFIO compat: ENOTTY",
            operation: .raw(S.io(0x7f), StructBytes(S.destroy)), expect: .failure(.inappropriateIOCTLForDevice), uapiOnly: FD.noRequest),
        IOMMUFDRow(
            rule: "IOMMUFD-102", name: "step 3: _IOWR(';', 0x81, 12) is not IOAS_ALLOC's number: ENOTTY",
            operation: .raw(S.iowr(0x81, 12), StructBytes(S.ioasAlloc)), expect: .failure(.inappropriateIOCTLForDevice),
            then: [FDCheck(.probe(.objects), .fields([1]))], uapiOnly: FD.noRequest),
        IOMMUFDRow(
            rule: "IOMMUFD-102", name: "step 1: 0x96, past the table (no test command built in), is ENOTTY",
            operation: .raw(S.io(0x96), StructBytes(S.destroy)), expect: .failure(.inappropriateIOCTLForDevice), uapiOnly: FD.noRequest),
        IOMMUFDRow(
            rule: "IOMMUFD-102", name: "step 4: size below the minimum is EINVAL before anything else is read",
            operation: .raw(S.destroyRequest, StructBytes(S.destroy, size: 7, ["id": 1])), expect: .failure(.invalidArgument),
            then: [FDCheck(.probe(.objects), .fields([1]))], uapiOnly: FD.notForSwift),
        IOMMUFDRow(
            rule: "IOMMUFD-102", name: "step 5: a non-zero byte past the kernel's struct is E2BIG",
            operation: .raw(S.destroyRequest, StructBytes(S.destroy, size: 16, tail: [0, 0, 0, 0, 0, 0, 0, 1], ["id": 1])), expect: .failure(.argListTooLong),
            then: [FDCheck(.probe(.objects), .fields([1]))], uapiOnly: FD.notForSwift),
        IOMMUFDRow(
            rule: "IOMMUFD-102", name: "step 5: E2BIG comes before the command's own checks (a missing IOAS)",
            operation: .raw(S.unmapRequest, StructBytes(S.unmap, size: 32, tail: [1], ["ioas_id": 9])), expect: .failure(.argListTooLong),
            uapiOnly: FD.notForSwift),
        IOMMUFDRow(
            rule: "IOMMUFD-102", name: "step 5: a longer struct with a zero tail is the struct itself",
            operation: .raw(S.destroyRequest, StructBytes(S.destroy, size: 4096, ["id": 1])), expect: .value(0),
            then: [FDCheck(.probe(.objects), .fields([]))], uapiOnly: FD.notForSwift),
        IOMMUFDRow(
            rule: "IOMMUFD-102", name: "step 5: the copy faults when the struct runs into an unmapped page",
            operation: .rawPlaced(S.destroyRequest, StructBytes(S.destroy, ["id": 1]), .beforeGuard(visible: 4)), expect: .failure(.badAddress),
            then: [FDCheck(.probe(.objects), .fields([1]))], uapiOnly: FD.noPointer),
        IOMMUFDRow(
            rule: "IOMMUFD-102", name: "step 5: the zero check of the tail faults in an unmapped page",
            operation: .rawPlaced(S.destroyRequest, StructBytes(S.destroy, size: 16, ["id": 1]), .beforeGuard(visible: 8)), expect: .failure(.badAddress),
            then: [FDCheck(.probe(.objects), .fields([1]))], uapiOnly: FD.noPointer),
    ]
    // IOMMUFD-103: each command's minimum, one byte short
    + minimumSizes.map { command in
        IOMMUFDRow(
            rule: "IOMMUFD-103", name: "\(command.name): size \(command.minimum - 1), one short of offsetofend(_last), is EINVAL",
            operation: .raw(command.request, sized(command.minimum - 1, length: 64)), expect: .failure(.invalidArgument), uapiOnly: FD.notForSwift)
    }
    + [
        IOMMUFDRow(
            rule: "IOMMUFD-103", name: "HWPT_ALLOC at its minimum (24 of 48 bytes): zero-extended, allocated, out_hwpt_id written inside the 24",
            prepare: FD.bound(FD.nvme), operation: .raw(S.hwptAllocRequest, StructBytes(S.hwptAlloc, size: 24, length: 24, ["dev_id": 2, "pt_id": 1]), read: [16]),
            expect: .fields([3]), also: ["IOMMUFD-104"], uapiOnly: FD.notForSwift),
        IOMMUFDRow(
            rule: "IOMMUFD-103", name: "GET_HW_INFO at its minimum (32 of 40): answered, out_capabilities past the 32 not written",
            prepare: FD.bound(FD.nvme), operation: .raw(S.hwInfoRequest, StructBytes(S.hwInfo, size: 32, length: 32, ["dev_id": 2]), read: [12, 24]),
            expect: .fields([0, 0]), also: ["IOMMUFD-104"], uapiOnly: FD.notForSwift),
        IOMMUFDRow(
            rule: "IOMMUFD-103", name: "ALLOW_IOVAS at exactly 24 bytes with no ranges succeeds",
            operation: .raw(S.allowIOVAsRequest, StructBytes(S.allowIOVAs, ["ioas_id": 1])), expect: .value(0), uapiOnly: FD.notForSwift),

        // IOMMUFD-104: responses
        IOMMUFDRow(
            rule: "IOMMUFD-104", name: "a 16-byte IOAS_ALLOC (zero tail) gets 12 bytes back, the tail stays",
            operation: .raw(S.ioasAllocRequest, StructBytes(S.ioasAlloc, size: 16), read: [8, 12]), expect: .fields([2, 0]), uapiOnly: FD.notForSwift),
        IOMMUFDRow(
            rule: "IOMMUFD-104", name: "IOAS_ALLOC in a read-only page: the response faults (EFAULT), the IOAS goes again and its ID is free",
            operation: .rawPlaced(S.ioasAllocRequest, StructBytes(S.ioasAlloc), .readOnly), expect: .failure(.badAddress),
            then: [FDCheck(.probe(.objects), .fields([1])), FDCheck(.allocIOAS(), .value(2))], also: ["IOMMUFD-200", "IOMMUFD-111"], uapiOnly: FD.noPointer),
        IOMMUFDRow(
            rule: "IOMMUFD-104", name: "a failed MAP writes nothing back (iova unchanged)", prepare: [FD.map(0x10000)],
            operation: FD.map(0x10000), expect: .failure(.fileExists)),

        // IOMMUFD-105: unknown flags and non-zero __reserved are EOPNOTSUPP
        IOMMUFDRow(rule: "IOMMUFD-105", name: "IOAS_ALLOC flags", operation: .allocIOAS(flags: 1), expect: .failure(.notSupported), also: ["IOMMUFD-200"], uapiOnly: FD.notForSwift),
        IOMMUFDRow(
            rule: "IOMMUFD-105", name: "IOAS_IOVA_RANGES __reserved", operation: .ranges(1, reserved: 1), expect: .failure(.notSupported), also: ["IOMMUFD-201"],
            uapiOnly: FD.notForSwift),
        IOMMUFDRow(
            rule: "IOMMUFD-105", name: "IOAS_ALLOW_IOVAS __reserved", operation: .allow(1, [], reserved: 1), expect: .failure(.notSupported), also: ["IOMMUFD-203"],
            uapiOnly: FD.notForSwift),
        IOMMUFDRow(
            rule: "IOMMUFD-105", name: "IOAS_MAP unknown flag", operation: FD.map(0x10000, flags: FD.fixedRW | 8), expect: .failure(.notSupported),
            also: ["IOMMUFD-210"], uapiOnly: FD.notForSwift),
        IOMMUFDRow(
            rule: "IOMMUFD-105", name: "IOAS_MAP __reserved", operation: .map(1, flags: FD.fixedRW, .memory(0), length: FD.page, iova: 0x10000, reserved: 1),
            expect: .failure(.notSupported), also: ["IOMMUFD-210"], uapiOnly: FD.notForSwift),
        IOMMUFDRow(
            rule: "IOMMUFD-105", name: "IOAS_COPY unknown flag", prepare: [FD.map(0x10000)],
            operation: .copy(dst: 1, src: 1, flags: FD.fixedRW | unknownFlag, length: FD.page, dstIOVA: 0x20000, srcIOVA: 0x10000), expect: .failure(.notSupported),
            also: ["IOMMUFD-222"], uapiOnly: FD.notForSwift),
        IOMMUFDRow(
            rule: "IOMMUFD-105", name: "OPTION __reserved", operation: .option(.hugePages, op: 1, object: 1, reserved: 1), expect: .failure(.notSupported),
            also: ["IOMMUFD-240"], uapiOnly: FD.notForSwift),
        IOMMUFDRow(
            rule: "IOMMUFD-105", name: "OPTION with an option ID the kernel does not know: a known field, an unsupported value",
            operation: .option(.unknown, op: 1, object: 1), expect: .failure(.notSupported), also: ["IOMMUFD-240"], uapiOnly: FD.noSwiftSpelling),
        IOMMUFDRow(
            rule: "IOMMUFD-105", name: "VFIO_IOAS __reserved", operation: .vfioIOAS(op: 0, reserved: 1), expect: .failure(.notSupported), also: ["IOMMUFD-702"],
            uapiOnly: FD.notForSwift),
        IOMMUFDRow(
            rule: "IOMMUFD-105", name: "HWPT_ALLOC __reserved", prepare: FD.bound(FD.nvme), operation: .hwptAlloc(dev: 2, pt: 1, reserved: 1),
            expect: .failure(.notSupported), also: ["IOMMUFD-501"], uapiOnly: FD.notForSwift),
        IOMMUFDRow(
            rule: "IOMMUFD-105", name: "HWPT_ALLOC unknown flag", prepare: FD.bound(FD.nvme), operation: .hwptAlloc(dev: 2, pt: 1, flags: unknownFlag),
            expect: .failure(.notSupported), also: ["IOMMUFD-502"]),
        IOMMUFDRow(
            rule: "IOMMUFD-105", name: "GET_HW_INFO unknown flag", prepare: FD.bound(FD.nvme), operation: .hwInfo(dev: 2, flags: 2), expect: .failure(.notSupported),
            also: ["IOMMUFD-630"], uapiOnly: FD.notForSwift),
        IOMMUFDRow(
            rule: "IOMMUFD-105", name: "GET_HW_INFO __reserved", prepare: FD.bound(FD.nvme), operation: .hwInfo(dev: 2, reserved: 1),
            expect: .failure(.notSupported), also: ["IOMMUFD-630"], uapiOnly: FD.notForSwift),

        // §1.2 objects and IDs
        IOMMUFDRow(
            rule: "IOMMUFD-110", name: "IOAS, DEVICE and HWPT share one ID space", prepare: FD.bound(FD.nvme), operation: .attach(FD.nvme, 1), expect: .value(3),
            then: [FDCheck(.probe(.objects), .fields([1, 2, 3])), FDCheck(.allocIOAS(), .value(4))]),
        IOMMUFDRow(
            rule: "IOMMUFD-111", name: "the lowest free ID is reused", config: IOMMUFDConfig(ioas: 3), prepare: [.destroy(2)], operation: .allocIOAS(),
            expect: .value(2), then: [FDCheck(.allocIOAS(), .value(4))]),
        IOMMUFDRow(
            rule: "IOMMUFD-111", name: "a failed command consumes no ID", prepare: FD.bound(FD.nvme) + [.failing(.hwptAlloc(dev: 2, pt: 9))],
            operation: .allocIOAS(), expect: .value(3)),
        IOMMUFDRow(
            rule: "IOMMUFD-111", name: "an auto HWPT destroyed at detach frees its ID", prepare: FD.attached(FD.nvme) + [.detach(FD.nvme)],
            operation: .allocIOAS(), expect: .value(3)),
        IOMMUFDRow(
            rule: "IOMMUFD-112", name: "an HWPT ID as ioas_id is ENOENT", prepare: FD.attached(FD.nvme), operation: FD.map(0x10000, ioas: 3),
            expect: .failure(.noSuchFileOrDirectory)),
        IOMMUFDRow(
            rule: "IOMMUFD-112", name: "a DEVICE ID as ioas_id is ENOENT", prepare: FD.bound(FD.nvme), operation: .ranges(2),
            expect: .failure(.noSuchFileOrDirectory)),
        IOMMUFDRow(rule: "IOMMUFD-112", name: "a missing ID is ENOENT", operation: FD.unmap(0, FD.page, ioas: 7), expect: .failure(.noSuchFileOrDirectory)),
        IOMMUFDRow(
            rule: "IOMMUFD-112", name: "exception: HWPT_ALLOC turns a failed pt_id lookup into EINVAL", prepare: FD.bound(FD.nvme),
            operation: .hwptAlloc(dev: 2, pt: 9), expect: .failure(.invalidArgument), also: ["IOMMUFD-501"]),
        IOMMUFDRow(rule: "IOMMUFD-113", name: "DESTROY of ID 0 is ENOENT", operation: .destroy(0), expect: .failure(.noSuchFileOrDirectory)),
        IOMMUFDRow(rule: "IOMMUFD-113", name: "DESTROY of a free ID is ENOENT", operation: .destroy(5), expect: .failure(.noSuchFileOrDirectory)),
        IOMMUFDRow(
            rule: "IOMMUFD-113", name: "DESTROY of an unused IOAS removes it, with its areas and pins", prepare: [FD.map(0x10000)], operation: .destroy(1),
            expect: .ok, then: [FDCheck(.probe(.objects), .fields([])), FDCheck(FD.unmap(0x10000, FD.page), .failure(.noSuchFileOrDirectory))]),
        IOMMUFDRow(
            rule: "IOMMUFD-113", name: "DESTROY of the compat IOAS clears it: compat ioctls are ENODEV again", prepare: [.vfioIOAS(op: 1, id: 1)],
            operation: .destroy(1), expect: .ok,
            then: [
                FDCheck(.vfioIOAS(op: 0), .failure(.operationNotSupportedByDevice)), FDCheck(.checkExtension(4), .failure(.operationNotSupportedByDevice)),
            ], also: ["IOMMUFD-701"]),
        IOMMUFDRow(
            rule: "IOMMUFD-114", name: "an IOAS with an auto HWPT (a device attached) is EBUSY", prepare: FD.attached(FD.nvme), operation: .destroy(1),
            expect: .failure(.resourceBusy)),
        IOMMUFDRow(
            rule: "IOMMUFD-114", name: "an IOAS with a manual HWPT is EBUSY", prepare: FD.bound(FD.nvme) + [.hwptAlloc(dev: 2, pt: 1)], operation: .destroy(1),
            expect: .failure(.resourceBusy), also: ["IOMMUFD-500"]),
        IOMMUFDRow(
            rule: "IOMMUFD-114", name: "an HWPT with a device attached is EBUSY", prepare: FD.bound(FD.nvme) + [.hwptAlloc(dev: 2, pt: 1), .attach(FD.nvme, 3)],
            operation: .destroy(3), expect: .failure(.resourceBusy), also: ["IOMMUFD-506"]),
        IOMMUFDRow(
            rule: "IOMMUFD-114", name: "a DEVICE is always EBUSY: only unbind removes it", prepare: FD.bound(FD.nvme), operation: .destroy(2),
            expect: .failure(.resourceBusy), then: [FDCheck(.closeDevice(FD.nvme), .ok), FDCheck(.probe(.objects), .fields([1]))], also: ["IOMMUFD-601"]),
        IOMMUFDRow(
            rule: "IOMMUFD-114", name: "a manual HWPT survives its last detach and is destroyed explicitly",
            prepare: FD.bound(FD.nvme) + [.hwptAlloc(dev: 2, pt: 1), .attach(FD.nvme, 3), .detach(FD.nvme)], operation: .destroy(3), expect: .ok,
            then: [FDCheck(.probe(.objects), .fields([1, 2])), FDCheck(.destroy(1), .ok)], also: ["IOMMUFD-606"]),
        IOMMUFDRow(
            rule: "IOMMUFD-115", name: "close with no device bound destroys every object and returns the pins",
            prepare: FD.attached(FD.nvme) + [FD.map(0x10000), .closeDevice(FD.nvme)], operation: .closeIOMMUFD, expect: .ok,
            then: [FDCheck(.probe(.objects), .fields([])), FDCheck(.probe(.lockedBytes), .value(0))]),
        IOMMUFDRow(
            rule: "IOMMUFD-115", name: "a bound device keeps the context after its fd is closed; unbinding the last one releases it",
            prepare: FD.attached(FD.nvme) + [FD.map(0x10000)], operation: .closeIOMMUFD, expect: .ok,
            then: [
                FDCheck(.probe(.objects), .fields([1, 2, 3])), FDCheck(.probe(.lockedBytes), .value(FD.page)), FDCheck(.detach(FD.nvme), .ok),
                FDCheck(.attach(FD.nvme, 1), .value(3)), FDCheck(.closeDevice(FD.nvme), .ok), FDCheck(.probe(.objects), .fields([])),
                FDCheck(.probe(.lockedBytes), .value(0)),
            ], also: ["IOMMUFD-617"]),
        IOMMUFDRow(
            rule: "IOMMUFD-116", name: "BIND with an fd that is not open is EBADF", prepare: [.open(FD.nvme)], operation: .bind(FD.nvme, iommufd: .notOpen),
            expect: .failure(.badFileDescriptor), also: ["IOMMUFD-612"], uapiOnly: FD.noFD),
        IOMMUFDRow(
            rule: "IOMMUFD-116", name: "BIND with an open fd that is no iommufd (a VFIO container) is EBADFD", prepare: [.open(FD.nvme)],
            operation: .bind(FD.nvme, iommufd: .container), expect: .failure(.fileDescriptorInBadState), also: ["IOMMUFD-612"], uapiOnly: FD.noFD),
        IOMMUFDRow(
            rule: "IOMMUFD-116", name: "BIND to an iommufd whose fd was closed (no device held it) is EBADF", prepare: [.open(FD.nvme), .closeIOMMUFD],
            operation: .bind(FD.nvme), expect: .failure(.badFileDescriptor),
            swiftOnly: "the raw path would pass the closed fd's number, which a test running in parallel may have reused"),
    ]
