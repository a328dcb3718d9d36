import Glibc
import KernelRules
import Locking
import SystemPackage
import Testing

@testable import IOMMUFD
@testable import Syscalls
@testable import VFIO
import UserMemory

/// The iommufd rules the simulation does not model, why, and what is asserted instead: mostly
/// that the command answers `EOPNOTSUPP` (a command number the kernel knows, a feature these
/// IOMMUs lack) or `ENOTTY` (the selftest command, absent without `CONFIG_IOMMUFD_TEST`). The
/// selftest mock's own rules (§8) have rows in `iommufdSelftestMockRows`.
private typealias S = IOMMUFDStruct

/// A raw iommufd command on a fresh `/dev/iommu` with IOAS 1 and the NVMe bound (ID 2, cdev kept
/// open by the fixture): its errno, 0 on success.
@Sendable private func commandErrno(_ request: UInt, _ bytes: StructBytes) throws -> Outcome {
    let fixture = try IOMMUFDFixture(IOMMUFDConfig())
    let calls = FDCalls(path: .uapi, fixture: fixture)
    defer { calls.closeAll() }
    for step in FD.bound(FD.nvme) {
        guard !calls.run(step).0.failed else { return .failure(.ioError) }
    }
    switch calls.run(.raw(request, bytes)).0 {
    case .failure(let errno): return .value(UInt64(errno.rawValue))
    default: return .value(0)
    }
}

private func errnoValue(_ errno: Errno) -> Outcome { .value(UInt64(errno.rawValue)) }

private let notModelled = "not modelled by the simulation"
@Sendable private func testCommand() throws -> Outcome {
    try commandErrno(S.testRequest, StructBytes(bytes: [72, 0, 0, 0] + [UInt8](repeating: 0, count: 68)))
}

let iommufdNotApplicableRows: [NotApplicableRow] =
    [
        NotApplicableRow(
            rule: "IOMMUFD-221", reason: "dmabuf MAP_FILE is \(notModelled): no exporter of dma-bufs", asserts: "IOAS_MAP_FILE is EOPNOTSUPP",
            expect: errnoValue(.notSupported)
        ) { try commandErrno(S.mapFileRequest, StructBytes(S.mapFile, ["flags": 6, "ioas_id": 1, "length": 0x1000])) },
        NotApplicableRow(
            rule: "IOMMUFD-225", reason: "IOMMU_IOAS_CHANGE_PROCESS is \(notModelled): one simulated process owns every pin",
            asserts: "IOAS_CHANGE_PROCESS is EOPNOTSUPP", expect: errnoValue(.notSupported)
        ) { try commandErrno(S.changeProcessRequest, StructBytes(S.changeProcess)) },
        NotApplicableRow(
            rule: "IOMMUFD-402", reason: "accounting keeps one counter, the process's locked bytes: per-UID USER accounting vs MM (VmLck) and CAP_IPC_LOCK's NONE are \(notModelled)",
            asserts: "a MAP with a domain charges the same bytes whether RLIMIT_MODE is USER or MM",
            expect: .fields([0x1000, 0x1000])
        ) {
            var charged: [UInt64] = []
            for mode in [UInt64(0), 1] {
                let fixture = try IOMMUFDFixture(IOMMUFDConfig(ioas: 0))
                let calls = FDCalls(path: .uapi, fixture: fixture)
                defer { calls.closeAll() }
                for step in [FD.option(.rlimitMode, set: mode), .allocIOAS()] + FD.attached(FD.nvme) + [FD.map(0x10000)] {
                    guard !calls.run(step).0.failed else { return .failure(.ioError) }
                }
                charged.append(fixture.process.lockedBytes)
            }
            return .fields(charged)
        },
        NotApplicableRow(
            rule: "IOMMUFD-505", reason: "vIOMMU, vDEVICE, vEVENTQ and HW queue objects are \(notModelled)", asserts: "IOMMU_VIOMMU_ALLOC is EOPNOTSUPP",
            expect: errnoValue(.notSupported)
        ) { try commandErrno(S.viommuAllocRequest, StructBytes(length: 40).withSize(40)) },
        NotApplicableRow(
            rule: "IOMMUFD-507", reason: "fault queues (IOPF/PRI) are \(notModelled)", asserts: "IOMMU_FAULT_QUEUE_ALLOC is EOPNOTSUPP",
            expect: errnoValue(.notSupported)
        ) { try commandErrno(S.faultQueueAllocRequest, StructBytes(length: 16).withSize(16)) },
        NotApplicableRow(
            rule: "IOMMUFD-508", reason: "nested HWPTs and their cache invalidation are \(notModelled)", asserts: "IOMMU_HWPT_INVALIDATE is EOPNOTSUPP",
            expect: errnoValue(.notSupported)
        ) { try commandErrno(S.invalidateRequest, StructBytes(S.invalidate, ["hwpt_id": 1])) },
    ]
    + [
        NotApplicableRow(
            rule: "IOMMUFD-707", reason: "no-IOMMU groups are \(notModelled) (CONFIG_VFIO_NOIOMMU off): no group joins in no-IOMMU mode",
            asserts: "CHECK_EXTENSION(NOIOMMU) is 0 and SET_IOMMU(NOIOMMU) is EINVAL", expect: .fields([0, UInt64(Errno.invalidArgument.rawValue)])
        ) {
            let fixture = try IOMMUFDFixture(IOMMUFDConfig())
            defer { fixture.system.close(fixture.fd) }
            let extensionValue = fixture.system.ioctl(fixture.fd, VFIORequest.checkExtension, 8)
            let set = fixture.system.ioctlResult(fixture.fd, VFIORequest.setIOMMU, 8)
            guard case .failure(let error) = set else { return .fields([UInt64(extensionValue), 0]) }
            return .fields([UInt64(extensionValue), UInt64(error.errno.rawValue)])
        },
    ]
    + [
        NotApplicableRow(
            rule: "IOMMUFD-830",
            reason: "an index of the errnos the kernel's iommufd selftest asserts, each under its own rule: the mock's rules (§8) have rows in `iommufdSelftestMockRows`, and the selftest binary itself runs under `vfiokit run --iommufd-test` in `VfiokitCLITests` (IOMMUFDSelftestTests)",
            asserts: "a kernel without CONFIG_IOMMUFD_TEST has no IOMMU_TEST_CMD: 0xa0 on /dev/iommu is ENOTTY", expect: errnoValue(.inappropriateIOCTLForDevice),
            check: testCommand),
    ]

extension StructBytes {
    /// The struct with its first `u32` (size) set.
    func withSize(_ size: UInt32) -> StructBytes {
        var copy = self
        copy.set(UInt64(size), at: 0, width: 4)
        return copy
    }
}

@Suite("IOMMUFD rules not modelled: what is asserted instead")
struct IOMMUFDNotApplicableTests {
    @Test(arguments: iommufdNotApplicableRows)
    func notApplicable(_ row: NotApplicableRow) throws {
        #expect(try row.check() == row.expect, "\(row.rule): \(row.asserts)")
    }
}
