import Glibc
import SystemPackage
import Testing

@testable import VFIO

/// Group-fd calls through either API: the Swift methods, or the raw ioctls with `<linux/vfio.h>`
/// structs and fds (spec §4).
struct GroupCalls {
    let path: APIPath
    let system: VFIOSystem

    func open(_ id: Int) -> Result<VFIOGroup, Errno> {
        switch path {
        case .swiftAPI:
            do throws(VFIOError) { return .success(try system.openGroup(id)) } catch { return .failure(error.errno) }
        case .uapi:
            switch system.openResult("/dev/vfio/\(id)") {
            case .success(let fd):
                guard case .group(let group) = VFIOFileTable.shared.file(fd) else { return .failure(.badFileDescriptor) }
                return .success(group)
            case .failure(let error): return .failure(error.errno)
            }
        }
    }

    func status(_ group: VFIOGroup) -> UInt32 {
        switch path {
        case .swiftAPI: return group.status.rawValue
        case .uapi:
            var status: (UInt32, UInt32) = (8, 0xFFFF)
            let result = withUnsafeMutableBytes(of: &status) { group.ioctl(request: VFIORequest.groupGetStatus, argument: UInt(bitPattern: $0.baseAddress!)) }
            return result == 0 ? status.1 : .max
        }
    }

    func setContainer(_ group: VFIOGroup, _ container: VFIOContainer) -> Outcome {
        switch path {
        case .swiftAPI:
            return outcome { () throws(VFIOError) in try group.setContainer(container) }
        case .uapi:
            guard case .success(let fd) = VFIOFileTable.shared.insertForTest(container) else { return .failure(.badFileDescriptor) }
            defer { _ = VFIOFileTable.shared.remove(fd) }
            var value = fd
            return raw(withUnsafeMutableBytes(of: &value) { group.ioctlResult(request: VFIORequest.groupSetContainer, argument: UInt(bitPattern: $0.baseAddress!)) })
        }
    }

    func unsetContainer(_ group: VFIOGroup) -> Outcome {
        switch path {
        case .swiftAPI: return outcome { () throws(VFIOError) in try group.unsetContainer() }
        case .uapi: return raw(group.ioctlResult(request: VFIORequest.groupUnsetContainer, argument: 0))
        }
    }

    func openDevice(_ group: VFIOGroup, _ name: String) -> Outcome {
        switch path {
        case .swiftAPI:
            return outcome { () throws(VFIOError) in _ = try group.openDevice(name) }
        case .uapi:
            var bytes = Array(name.utf8) + [0]
            let result = bytes.withUnsafeMutableBytes { group.ioctlResult(request: VFIORequest.groupGetDeviceFD, argument: UInt(bitPattern: $0.baseAddress!)) }
            if case .success(let fd) = result { return .value(fd > 2 ? 0 : 1) }
            return raw(result)
        }
    }

    private func outcome(_ body: () throws(VFIOError) -> Void) -> Outcome {
        do throws(VFIOError) {
            try body()
            return .ok
        } catch {
            return .failure(error.errno)
        }
    }

    private func raw(_ result: Result<Int32, VFIOError>) -> Outcome {
        switch result {
        case .success(let value): .value(UInt64(value))
        case .failure(let error): .failure(error.errno)
        }
    }
}

extension VFIOFileTable {
    func insertForTest(_ container: VFIOContainer) -> Result<Int32, VFIOError> {
        do throws(VFIOError) { return .success(try insert(.container(container))) } catch { return .failure(error) }
    }
}

/// One group scenario: the steps run on a fresh `devices/default` and return the outcome checked.
struct GroupRow: CustomTestStringConvertible, Sendable {
    let rule: String
    let name: String
    var vfio: [String] = []
    let expect: Outcome
    let run: @Sendable (GroupCalls) throws -> Outcome

    var testDescription: String { "\(rule): \(name)" }
}

private func opened(_ calls: GroupCalls, _ id: Int) throws -> VFIOGroup { try calls.open(id).get() }

private func joined(_ calls: GroupCalls, _ id: Int, iommu: Bool = true) throws -> (VFIOGroup, VFIOContainer) {
    let group = try opened(calls, id)
    let container = VFIOContainer(process: calls.system.process)
    try #require(calls.setContainer(group, container) == .ok)
    if iommu { try container.setIOMMU(.type1v2) }
    return (group, container)
}

let groupRows: [GroupRow] = [
    GroupRow(rule: "VG-01", name: "a group without a VFIO driver has no node", expect: .failure(.noSuchFileOrDirectory)) { calls in
        switch calls.open(13) { case .success: .ok; case .failure(let errno): .failure(errno) }
    },
    GroupRow(rule: "VG-03", name: "a closed group fd answers EBADF, and closing twice keeps the single opener", expect: .failure(.resourceBusy)) { calls in
        let first = try opened(calls, 27)
        first.close()
        #expect(calls.setContainer(first, VFIOContainer(process: calls.system.process)) == .failure(.badFileDescriptor))
        _ = try opened(calls, 27)
        first.close()
        switch calls.open(27) { case .success: return .ok; case .failure(let errno): return .failure(errno) }
    },
    GroupRow(rule: "VG-10", name: "SET_CONTAINER on a group in a container is EINVAL before the fd's kind is looked at", expect: .failure(.invalidArgument)) { calls in
        let (group, _) = try joined(calls, 27)
        return calls.setContainer(group, VFIOContainer(process: calls.system.process))
    },
    GroupRow(rule: "VG-03", name: "a group is opened once", expect: .failure(.resourceBusy)) { calls in
        _ = try opened(calls, 27)
        switch calls.open(27) { case .success: return .ok; case .failure(let errno): return .failure(errno) }
    },
    GroupRow(rule: "VG-03", name: "closing lets it open again", expect: .ok) { calls in
        try opened(calls, 27).close()
        _ = try opened(calls, 27)
        return .ok
    },
    GroupRow(rule: "VG-05", name: "a fresh vfio-pci group is viable", expect: .value(1)) { calls in .value(UInt64(calls.status(try opened(calls, 27)))) },
    GroupRow(rule: "VG-05", name: "in a container: CONTAINER_SET | VIABLE", expect: .value(3)) { calls in
        .value(UInt64(calls.status(try joined(calls, 27, iommu: false).0)))
    },
    GroupRow(rule: "VG-05", name: "a DMA-API driver in the group: not viable", vfio: ["0000:3b:00.0"], expect: .value(0)) { calls in
        .value(UInt64(calls.status(try opened(calls, 20))))
    },
    GroupRow(rule: "VG-10", name: "SET_CONTAINER twice", expect: .failure(.invalidArgument)) { calls in
        let (group, _) = try joined(calls, 27)
        return calls.setContainer(group, VFIOContainer(process: calls.system.process))
    },
    GroupRow(rule: "VG-11", name: "a non-viable group is refused with EPERM", vfio: ["0000:3b:00.0"], expect: .failure(.notPermitted)) { calls in
        calls.setContainer(try opened(calls, 20), VFIOContainer(process: calls.system.process))
    },
    GroupRow(rule: "VG-11", name: "a direct RMRR group is refused with EINVAL (RD-02)", vfio: ["0000:3d:00.0"], expect: .failure(.invalidArgument)) { calls in
        calls.setContainer(try opened(calls, 23), VFIOContainer(process: calls.system.process))
    },
    GroupRow(rule: "VG-11", name: "a relaxable RMRR group joins", vfio: ["0000:00:14.0", "0000:00:14.2"], expect: .ok) { calls in
        calls.setContainer(try opened(calls, 3), VFIOContainer(process: calls.system.process))
    },
    GroupRow(rule: "VG-11", name: "joining claims DMA ownership and blocks DMA", expect: .value(1)) { calls in
        _ = try joined(calls, 27, iommu: false)
        let group = try #require(calls.system.core.group(27))
        return .value(group.owner != nil && group.domain == group.blockingDomain ? 1 : 0)
    },
    GroupRow(rule: "VG-11", name: "a second group joins the IOMMU at once and shares its domain (T1-50)", expect: .value(1)) { calls in
        let (_, container) = try joined(calls, 27)
        #expect(calls.setContainer(try opened(calls, 22), container) == .ok)
        return .value(UInt64(container.domains.count))
    },
    GroupRow(rule: "VG-13", name: "UNSET_CONTAINER outside a container", expect: .failure(.invalidArgument)) { calls in
        calls.unsetContainer(try opened(calls, 27))
    },
    GroupRow(rule: "VG-13", name: "UNSET_CONTAINER with a device open", expect: .failure(.resourceBusy)) { calls in
        let (group, _) = try joined(calls, 27)
        #expect(calls.openDevice(group, "0000:5e:00.0") == .ok)
        return calls.unsetContainer(group)
    },
    GroupRow(rule: "VG-13", name: "the last group takes the IOMMU and ownership back", expect: .value(1)) { calls in
        let (group, container) = try joined(calls, 27)
        #expect(calls.unsetContainer(group) == .ok)
        let iommuGroup = try #require(calls.system.core.group(27))
        return .value(container.iommuType == nil && iommuGroup.owner == nil && calls.status(group) == 1 ? 1 : 0)
    },
    GroupRow(rule: "VG-13", name: "closing the group leaves the container", expect: .value(0)) { calls in
        let (group, container) = try joined(calls, 27)
        group.close()
        return .value(UInt64(container.groups.count))
    },
    GroupRow(rule: "VG-31", name: "GET_DEVICE_FD of a function not in the group", expect: .failure(.operationNotSupportedByDevice)) { calls in
        calls.openDevice(try joined(calls, 27).0, "0000:3c:00.1")
    },
    GroupRow(rule: "VG-31", name: "GET_DEVICE_FD of a group function not bound to VFIO", vfio: ["0000:1c:00.0"], expect: .failure(.operationNotSupportedByDevice)) { calls in
        let (group, _) = try joined(calls, 13)
        #expect(calls.openDevice(group, "0000:1c:00.0") == .ok)
        return calls.openDevice(group, "0000:19:10.0")
    },
    GroupRow(rule: "VG-33", name: "a vf_token for a function that is no VF", expect: .failure(.invalidArgument)) { calls in
        calls.openDevice(try joined(calls, 27).0, "0000:5e:00.0 vf_token=2ab74924-c335-45f4-9b16-8569e5b08258")
    },
    GroupRow(rule: "VG-32", name: "GET_DEVICE_FD outside a container", expect: .failure(.invalidArgument)) { calls in
        calls.openDevice(try opened(calls, 27), "0000:5e:00.0")
    },
    GroupRow(rule: "VG-32", name: "GET_DEVICE_FD before SET_IOMMU", expect: .failure(.invalidArgument)) { calls in
        calls.openDevice(try joined(calls, 27, iommu: false).0, "0000:5e:00.0")
    },
    GroupRow(rule: "VG-34", name: "the group path opens a device twice", expect: .ok) { calls in
        let (group, _) = try joined(calls, 27)
        #expect(calls.openDevice(group, "0000:5e:00.0") == .ok)
        return calls.openDevice(group, "0000:5e:00.0")
    },
]

@Suite("VFIO group conformance (spec §4)")
struct VFIOGroupConformanceTests {
    @Test(arguments: groupRows, APIPath.allCases)
    func row(_ row: GroupRow, path: APIPath) throws {
        let system = try VFIOTestMachine.system(vfio: row.vfio)
        let outcome = try row.run(GroupCalls(path: path, system: system))
        #expect(outcome == row.expect, "\(row.rule) \(row.name) via \(path)")
    }

    @Test("VG-04: GET_STATUS with argsz below 8; VG-02: an unknown group ioctl")
    func rawGroupStructs() throws {
        let group = try VFIOTestMachine.system().openGroup(27)
        var status: (UInt32, UInt32) = (7, 0)
        let short = withUnsafeMutableBytes(of: &status) { group.ioctlResult(request: VFIORequest.groupGetStatus, argument: UInt(bitPattern: $0.baseAddress!)) }
        #expect(try #require(short.failureErrno) == .invalidArgument)
        #expect(try #require(group.ioctlResult(request: VFIORequest.groupGetStatus, argument: 0).failureErrno) == .badAddress)
        #expect(try #require(group.ioctlResult(request: VFIORequest.io(40), argument: 0).failureErrno) == .inappropriateIOCTLForDevice)
    }

    @Test("VG-10/VG-12: SET_CONTAINER with a closed fd is EBADF, with a group fd EBADFD")
    func setContainerFDs() throws {
        let system = try VFIOTestMachine.system()
        let groupFD = system.open("/dev/vfio/27")
        let otherFD = system.open("/dev/vfio/22")
        #expect(groupFD >= 0 && otherFD >= 0)
        var closedFD: Int32 = 1_000_000
        let closed = withUnsafeMutableBytes(of: &closedFD) { system.ioctl(groupFD, VFIORequest.groupSetContainer, UInt(bitPattern: $0.baseAddress!)) }
        #expect(closed == -1 && errno == Errno.badFileDescriptor.rawValue)
        var wrongKind = otherFD
        let wrong = withUnsafeMutableBytes(of: &wrongKind) { system.ioctl(groupFD, VFIORequest.groupSetContainer, UInt(bitPattern: $0.baseAddress!)) }
        #expect(wrong == -1 && errno == Errno.fileDescriptorInBadState.rawValue)
        #expect(system.close(groupFD) == 0 && system.close(otherFD) == 0)
        #expect(system.close(groupFD) == -1 && errno == Errno.badFileDescriptor.rawValue)
    }

    @Test("VG-30: a device name not NUL-terminated within a page")
    func unterminatedDeviceName() throws {
        let system = try VFIOTestMachine.system()
        let group = try system.openGroup(27)
        let container = VFIOContainer(process: system.process)
        try group.setContainer(container)
        try container.setIOMMU(.type1v2)
        var name = [UInt8](repeating: 0x41, count: Int(hostPageSize) + 16)
        let result = name.withUnsafeMutableBytes { group.ioctlResult(request: VFIORequest.groupGetDeviceFD, argument: UInt(bitPattern: $0.baseAddress!)) }
        #expect(try #require(result.failureErrno) == .invalidArgument)
    }
}

extension Result where Failure == VFIOError {
    var failureErrno: Errno? {
        if case .failure(let error) = self { return error.errno }
        return nil
    }
}
