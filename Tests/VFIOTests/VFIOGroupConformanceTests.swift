import Glibc
import KernelRules
import PCIBus
import SystemPackage
import Testing

@testable import IOMMU
@testable import VFIO
@testable import Syscalls
import UserMemory

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
            defer { _ = try? VFIOFileTable.shared.remove(fd) }
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

    /// The same path on another machine's `/dev/vfio`: its groups sit behind another IOMMU profile,
    /// as groups behind different IOMMUs do.
    func on(_ other: VFIOSystem) -> GroupCalls { GroupCalls(path: path, system: other) }

    /// Container calls on this path; `.memory(offset)` addresses are relative to `memory`.
    func container(_ container: VFIOContainer, memory: HostMemory? = nil) -> ContainerCalls {
        ContainerCalls(path: path, container: container, memoryBase: memory?.address ?? 0)
    }

    private func outcome(_ body: () throws(VFIOError) -> Void) -> Outcome {
        do throws(VFIOError) {
            try body()
            return .ok
        } catch {
            return .failure(error.errno)
        }
    }

    private func raw(_ result: Result<Int32, VFIOError>) -> Outcome { result.outcome }
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
    /// Why the row can only run on the facade (a raw fd, pointer or request number); nil: both paths.
    var uapiOnly: String?
    /// Further rules the row checks (a step of T1-50 decided by another rule).
    var also: [String] = []
    let run: @Sendable (GroupCalls) throws -> Outcome

    var testDescription: String { "\(rule): \(name)" }
}

private func opened(_ calls: GroupCalls, _ id: Int) throws -> VFIOGroup { try calls.open(id).get() }

private func joined(_ calls: GroupCalls, _ id: Int, iommu: Bool = true) throws -> (VFIOGroup, VFIOContainer) {
    let group = try opened(calls, id)
    let container = VFIOContainer(process: calls.system.process)
    try #require(calls.setContainer(group, container) == .ok)
    if iommu { try prepared(calls.container(container), .setIOMMU(3)) }
    return (group, container)
}

/// `devices/default` under `profile`: the same functions and groups behind another IOMMU.
private func machine(_ calls: GroupCalls, _ profile: PlatformProfile) throws -> GroupCalls {
    calls.on(try VFIOTestMachine.system(profile: profile))
}

/// Container calls that must succeed (a row's preparation).
private func prepared(_ calls: ContainerCalls, _ operations: Type1Op...) throws {
    for operation in operations {
        let (outcome, error) = calls.run(operation)
        if case .failure(let errno) = outcome { throw error ?? VFIOError(errno, rule: .none, "preparation \(operation) failed") }
    }
}

/// Group SET_CONTAINER whose failure must leave the container as it was; the group is free
/// again afterwards (VG-11 releases ownership).
private func join(_ calls: GroupCalls, _ group: VFIOGroup, _ container: VFIOContainer) -> Outcome {
    let (outcome, _) = expectUnchangedOnFailure(container, "\(group) SET_CONTAINER") { (calls.setContainer(group, container), nil) }
    if case .failure = outcome {
        #expect(calls.status(group) == VFIOGroupStatus.viable.rawValue, "the failed join released \(group)'s ownership")
    }
    return outcome
}

private func fields(_ calls: ContainerCalls, _ operation: Type1Op) -> [UInt64] {
    if case .fields(let fields) = calls.run(operation).0 { return fields }
    return []
}

private func value(_ calls: ContainerCalls, _ operation: Type1Op) -> UInt64? {
    if case .value(let value) = calls.run(operation).0 { return value }
    return nil
}

private let page: UInt64 = 0x1000
private let msiStart: UInt64 = 0xFEE0_0000
private let vtdRanges: [UInt64] = [0, 0xFEDF_FFFF, 0xFEF0_0000, (1 << 48) - 1]
private let rawFD = "a file descriptor: the Swift API takes the VFIOContainer itself"
private let rawPointer = "a user pointer: the Swift API takes values, so nothing can fault"
private let rawStruct = "a raw-struct field: the Swift API returns the flags, not the struct"

extension PlatformProfile {
    /// VT-d (48-bit) with one thing changed; the name, which is the domain's ops (T1-50 step 11),
    /// stays `vt-d-48` unless given.
    static func vtdVariant(
        name: String = "vt-d-48", geometry: DomainGeometry = .addressWidth(48), pageSizes: PageSizeBitmap = .x86Large,
        enforcesCacheCoherency: Bool = true, regions: [ReservedRegion] = [x86MSIWindow]
    ) -> PlatformProfile {
        PlatformProfile(
            name: name, title: "VT-d variant \(name)", geometry: geometry, pageSizes: pageSizes, pageShift: 12, interruptRemapping: true,
            enforcesCacheCoherency: enforcesCacheCoherency, defaultDomainType: .dmaFQ, fixedDefaultDomain: false, supportsIdentity: true,
            supportsBlockedDomain: true, platformRegions: regions, firmwareRegions: .intelRMRR)
    }

    /// VT-d whose domains do not block no-snoop: same ops, other `enforce_cache_coherency`.
    static let vtdNoSnoop = vtdVariant(enforcesCacheCoherency: false)
    /// VT-d reporting one more reserved region, [4 GiB, 4 GiB + 256 MiB).
    static let vtdHole = vtdVariant(regions: [x86MSIWindow, ReservedRegion(start: 1 << 32, last: (1 << 32) + (1 << 28) - 1, type: .reserved)!])
    /// A 4 KiB-only IOMMU: mappings other domains hold in superpages need a table per 2 MiB here.
    static let fourKiBOnly = vtdVariant(name: "vt-d-4k", pageSizes: PageSizeBitmap(sizes: [PageSizeBitmap.kib4]))
    /// An IOMMU whose reserved region covers its whole 32-bit aperture.
    static let walled = vtdVariant(
        name: "walled", geometry: .addressWidth(32), regions: [ReservedRegion(start: 0, last: 0xFFFF_FFFF, type: .reserved)!])
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

    // §3.5–§3.7: attach and detach across IOMMUs (groups of `devices/default` under other profiles)
    GroupRow(rule: "T1-40", name: "attach narrows the IOVA list to the new aperture", expect: .fields([0, msiStart - 1, 0xFEF0_0000, (1 << 39) - 1])) { calls in
        let (_, container) = try joined(calls, 27)
        let narrow = try machine(calls, .vtd(addressWidth: 39))
        #expect(join(narrow, try opened(narrow, 22), container) == .ok)
        return calls.container(container).run(.info(.iovaRanges)).0
    },
    GroupRow(rule: "T1-40", name: "reserved regions covering the aperture: EINVAL, nothing changes", expect: .failure(.invalidArgument), also: ["T1-50"]) { calls in
        let (_, container) = try joined(calls, 27)
        let walled = try machine(calls, .walled)
        return join(walled, try opened(walled, 22), container)
    },
    GroupRow(rule: "T1-41", name: "an aperture that would strand a mapping: EINVAL, nothing changes", expect: .failure(.invalidArgument), also: ["T1-50"]) { calls in
        let (_, container) = try joined(calls, 27)
        let memory = try calls.system.process.allocate(size: 1 << 16)
        try prepared(calls.container(container, memory: memory), .map(3, .memory(0), iova: 1 << 40, size: page))
        let narrow = try machine(calls, .vtd(addressWidth: 39))
        return join(narrow, try opened(narrow, 22), container)
    },
    GroupRow(rule: "T1-41", name: "a reserved region over a mapping: EINVAL, nothing changes", expect: .failure(.invalidArgument), also: ["T1-50"]) { calls in
        let (_, container) = try joined(calls, 27)
        let memory = try calls.system.process.allocate(size: 1 << 16)
        try prepared(calls.container(container, memory: memory), .map(3, .memory(0), iova: 0x800_0000, size: page))
        let smmu = try machine(calls, .smmuv3())
        return join(smmu, try opened(smmu, 22), container)
    },
    GroupRow(
        rule: "T1-42", name: "the SW_MSI window is cut out of the IOVA list (its MSI cookie is not modelled, README)",
        expect: .fields([0, 0x7FF_FFFF, 0x810_0000, (1 << 48) - 1])
    ) { calls in
        let smmu = try machine(calls, .smmuv3())
        return smmu.container(try joined(smmu, 27).1).run(.info(.iovaRanges)).0
    },
    GroupRow(rule: "T1-43", name: "detach grows the list back to the remaining aperture", expect: .fields(vtdRanges)) { calls in
        let (_, container) = try joined(calls, 27)
        let narrow = try machine(calls, .vtd(addressWidth: 39))
        let group = try opened(narrow, 22)
        #expect(join(narrow, group, container) == .ok)
        #expect(narrow.unsetContainer(group) == .ok)
        return calls.container(container).run(.info(.iovaRanges)).0
    },
    GroupRow(rule: "T1-43", name: "detaching a group that shares the domain releases its reserved regions", expect: .fields([1] + vtdRanges)) { calls in
        let (_, container) = try joined(calls, 27)
        let holed = try machine(calls, .vtdHole)
        let group = try opened(holed, 22)
        #expect(join(holed, group, container) == .ok)
        let withHole: [UInt64] = [0, msiStart - 1, 0xFEF0_0000, (1 << 32) - 1, (1 << 32) + (1 << 28), (1 << 48) - 1]
        #expect(fields(calls.container(container), .info(.iovaRanges)) == withHole)
        #expect(holed.unsetContainer(group) == .ok)
        return .fields([UInt64(container.domains.count)] + fields(calls.container(container), .info(.iovaRanges)))
    },
    GroupRow(rule: "T1-50", name: "step 11: same ops and coherency share a domain; page sizes unchanged", expect: .fields([1, 0x4020_1000])) { calls in
        let (_, container) = try joined(calls, 27)
        #expect(join(calls, try opened(calls, 22), container) == .ok)
        return .fields([UInt64(container.domains.count), value(calls.container(container), .info(.pageSizes)) ?? 0])
    },
    GroupRow(rule: "T1-50", name: "step 11: same ops, other enforce_cache_coherency: a domain of its own", expect: .fields([2, 0])) { calls in
        let (_, container) = try joined(calls, 27)
        let noSnoop = try machine(calls, .vtdNoSnoop)
        #expect(join(noSnoop, try opened(noSnoop, 22), container) == .ok)
        #expect(container.domains.map(\.ops) == ["vt-d-48", "vt-d-48"])
        return .fields([UInt64(container.domains.count), value(calls.container(container), .checkExtension(4)) ?? 9])
    },
    GroupRow(rule: "T1-50", name: "step 12: existing mappings are replayed into a new domain", expect: .fields([0x4000, 0x4000])) { calls in
        let (_, container) = try joined(calls, 27)
        let memory = try calls.system.process.allocate(size: 1 << 16)
        try prepared(calls.container(container, memory: memory), .map(3, .memory(0), iova: 0x10_0000, size: 0x4000))
        let smmu = try machine(calls, .smmuv3())
        #expect(join(smmu, try opened(smmu, 22), container) == .ok)
        #expect(container.domains.last?.translate(0x10_2000, access: .write) == .mapped(address: memory.address + 0x2000, contiguous: 0x1000))
        return calls.container(container).run(.probe(.mappedBytesPerDomain)).0
    },
    GroupRow(rule: "T1-50", name: "step 12: a replay that fails (ENOMEM: page tables) undoes the attach", expect: .failure(.noMemory), also: ["T1-52"]) { calls in
        // 513 GiB the VT-d domain holds in superpages need more than the 2^18 page tables a
        // 4 KiB-only domain may have (one per 2 MiB), so replaying it fails.
        let (_, container) = try joined(calls, 27)
        let size: UInt64 = 513 << 30
        let memory = try calls.system.process.allocate(size: size + (1 << 30))
        let iova = (UInt64(1) << 40) | (memory.address & ((1 << 30) - 1))
        try prepared(calls.container(container, memory: memory), .map(3, .memory(0), iova: iova, size: size))
        let small = try machine(calls, .fourKiBOnly)
        let outcome = join(small, try opened(small, 22), container)
        #expect(container.domains.map(\.mappedBytes) == [size], "the old domain still maps everything, the new one is gone")
        try prepared(calls.container(container), .unmap(0, iova: iova, size: size))
        try calls.system.process.release(memory)
        return outcome
    },
    GroupRow(rule: "T1-51", name: "DMA_CC is 0 while a domain does not enforce coherency, 1 once it leaves", expect: .fields([0, 1])) { calls in
        let (_, container) = try joined(calls, 27)
        let smmu = try machine(calls, .smmuv3())
        let group = try opened(smmu, 22)
        #expect(join(smmu, group, container) == .ok)
        let during = value(calls.container(container), .checkExtension(4)) ?? 9
        #expect(smmu.unsetContainer(group) == .ok)
        return .fields([during, value(calls.container(container), .checkExtension(4)) ?? 9])
    },
    GroupRow(rule: "T1-52", name: "the bitmap is the AND of the domains, never below PAGE_SIZE, recomputed on detach", expect: .fields([0x10_1000, 0x1000, 0x10_1000])) { calls in
        let huge = try machine(calls, .mock(hugeIOVA: true))
        let (_, container) = try joined(huge, 27)
        let before = value(calls.container(container), .info(.pageSizes)) ?? 0
        let mock = try machine(calls, .mock())
        let group = try opened(mock, 22)
        #expect(join(mock, group, container) == .ok)
        let during = value(calls.container(container), .info(.pageSizes)) ?? 0
        #expect(mock.unsetContainer(group) == .ok)
        return .fields([before, during, value(calls.container(container), .info(.pageSizes)) ?? 0])
    },
    GroupRow(rule: "T1-52", name: "project policy: an IOMMU sharing no page size is refused, nothing changes", expect: .failure(.invalidArgument)) { calls in
        let (_, container) = try joined(calls, 27)
        let mock = try machine(calls, .mock(hugeIOVA: true))
        return join(mock, try opened(mock, 22), container)
    },
    GroupRow(rule: "T1-53", name: "a non-viable group never reaches type1", vfio: ["0000:3b:00.0"], expect: .failure(.notPermitted)) { calls in
        let (_, container) = try joined(calls, 27)
        let group = try opened(calls, 20)
        let (outcome, _) = expectUnchangedOnFailure(container, "group 20 SET_CONTAINER") { (calls.setContainer(group, container), nil) }
        return outcome
    },
    GroupRow(rule: "T1-56", name: "detaching one of two groups keeps the mappings pinned", expect: .value(0x8000)) { calls in
        let (_, container) = try joined(calls, 27)
        let other = try opened(calls, 22)
        #expect(join(calls, other, container) == .ok)
        let memory = try calls.system.process.allocate(size: 1 << 16)
        try prepared(calls.container(container, memory: memory), .map(3, .memory(0), iova: 0, size: 0x8000))
        #expect(calls.unsetContainer(other) == .ok)
        return calls.container(container).run(.probe(.lockedBytes)).0
    },
    GroupRow(rule: "T1-56", name: "the last group takes every mapping; a new IOMMU has every entry", expect: .fields([0, 65535])) { calls in
        let (group, container) = try joined(calls, 27)
        let memory = try calls.system.process.allocate(size: 1 << 16)
        try prepared(calls.container(container, memory: memory), .map(3, .memory(0), iova: 0, size: 0x8000), .map(3, .memory(0), iova: 1 << 30, size: page))
        #expect(calls.unsetContainer(group) == .ok)
        #expect(container.iommuType == nil && container.mappings.isEmpty)
        let locked = calls.system.process.lockedBytes
        #expect(calls.setContainer(group, container) == .ok)
        try prepared(calls.container(container), .setIOMMU(3))
        return .fields([locked, value(calls.container(container), .info(.dmaAvailable)) ?? 0])
    },
    GroupRow(rule: "T1-61", name: "a group cannot join while a vaddr is invalid (EBUSY); it can once re-validated", expect: .failure(.resourceBusy), also: ["T1-50"]) { calls in
        let (_, container) = try joined(calls, 27)
        let memory = try calls.system.process.allocate(size: 1 << 16)
        let type1 = calls.container(container, memory: memory)
        try prepared(type1, .map(3, .memory(0), iova: 0, size: page), .unmap(4, iova: 0, size: page))
        let other = try opened(calls, 22)
        let outcome = join(calls, other, container)
        try prepared(type1, .map(4, .memory(page), iova: 0, size: page))
        #expect(join(calls, other, container) == .ok)
        #expect(container.domains[0].translate(0, access: .read) == .mapped(address: memory.address, contiguous: page), "T1-60: the IOMMU keeps the pinned pages")
        return outcome
    },
    GroupRow(rule: "T1-90", name: "SET_IOMMU after groups of two apertures joined: the list reflects both", expect: .fields([0, msiStart - 1, 0xFEF0_0000, (1 << 39) - 1])) { calls in
        let (_, container) = try joined(calls, 27, iommu: false)
        let narrow = try machine(calls, .vtd(addressWidth: 39))
        #expect(narrow.setContainer(try opened(narrow, 22), container) == .ok)
        try prepared(calls.container(container), .setIOMMU(3))
        return calls.container(container).run(.info(.iovaRanges)).0
    },
    GroupRow(rule: "VG-22", name: "SET_IOMMU failing on the second group detaches the first again", expect: .failure(.notPermitted)) { calls in
        let (first, container) = try joined(calls, 27, iommu: false)
        let noIR = try machine(calls, .vtd(interruptRemapping: false))
        #expect(noIR.setContainer(try opened(noIR, 22), container) == .ok)
        let (outcome, _) = expectUnchangedOnFailure(container, "SET_IOMMU") { calls.container(container).run(.setIOMMU(3)) }
        let group = try #require(calls.system.core.group(first.id))
        #expect(group.domain == group.blockingDomain, "the first group is back on its blocking domain")
        return outcome
    },
    GroupRow(
        rule: "VG-22", name: "groups attach newest first (group_list is list_add'ed): when the oldest and the newest would both fail, SET_IOMMU reports the newest's EPERM, not the oldest's EINVAL",
        expect: .failure(.notPermitted), also: ["T1-50"]
    ) { calls in
        let (first, container) = try joined(calls, 27, iommu: false)
        let walled = try machine(calls, .walled)
        #expect(walled.setContainer(try opened(walled, 22), container) == .ok)
        let noIR = try machine(calls, .vtd(interruptRemapping: false))
        #expect(noIR.setContainer(try opened(noIR, 22), container) == .ok)
        let (outcome, error) = expectUnchangedOnFailure(container, "SET_IOMMU") { calls.container(container).run(.setIOMMU(3)) }
        if calls.path == .swiftAPI { #expect(error?.rule == .T1_50 || error?.message.contains("interrupt remapping") == true, "\(String(describing: error))") }
        let group = try #require(calls.system.core.group(first.id))
        #expect(group.domain == group.blockingDomain, "the first group was never attached, or was detached again")
        return outcome
    },

    // §4.1–§4.7, raw structs and more
    GroupRow(rule: "VG-02", name: "GET_STATUS flags: VIABLE is bit 0, CONTAINER_SET bit 1", expect: .value(3)) { calls in
        .value(UInt64(calls.status(try joined(calls, 27).0)))
    },
    GroupRow(rule: "VG-02", name: "an unknown group ioctl", expect: .failure(.inappropriateIOCTLForDevice), uapiOnly: "a request number: the Swift API has a method per call") { calls in
        let group = try opened(calls, 27)
        return group.ioctlResult(request: VFIORequest.io(40), argument: 0).outcome
    },
    GroupRow(rule: "VG-04", name: "GET_STATUS with argsz below 8", expect: .failure(.invalidArgument), uapiOnly: rawStruct) { calls in
        let group = try opened(calls, 27)
        var status: (UInt32, UInt32) = (7, 0)
        return withUnsafeMutableBytes(of: &status) { group.ioctlResult(request: VFIORequest.groupGetStatus, argument: UInt(bitPattern: $0.baseAddress!)) }.outcome
    },
    GroupRow(rule: "VG-04", name: "GET_STATUS whose struct cannot be copied in", expect: .failure(.badAddress), uapiOnly: rawPointer) { calls in
        try opened(calls, 27).ioctlResult(request: VFIORequest.groupGetStatus, argument: 8).outcome
    },
    GroupRow(rule: "VG-06", name: "a pcieport bridge in the group keeps it viable", vfio: ["0000:1c:00.0"], expect: .value(1)) { calls in
        .value(UInt64(calls.status(try opened(calls, 13))))
    },
    GroupRow(rule: "VG-06", name: "pci-stub keeps it viable", vfio: ["0000:3b:00.0"], expect: .value(1)) { calls in
        let audio = PCIAddress(parsing: "0000:3b:00.1")!
        try calls.system.core.unbindDriver(from: audio)
        try calls.system.core.bind(driver: "pci-stub", to: audio)
        return .value(UInt64(calls.status(try opened(calls, 20))))
    },
    GroupRow(rule: "VG-06", name: "an unbound function keeps it viable", vfio: ["0000:3b:00.0"], expect: .value(1)) { calls in
        try calls.system.core.unbindDriver(from: PCIAddress(parsing: "0000:3b:00.1")!)
        return .value(UInt64(calls.status(try opened(calls, 20))))
    },
    GroupRow(rule: "VG-07", name: "binding a DMA-API driver in a group VFIO claimed fails with EBUSY", vfio: ["0000:1c:00.0"], expect: .failure(.resourceBusy)) { calls in
        _ = try joined(calls, 13)
        let bridge = PCIAddress(parsing: "0000:19:10.0")!
        try calls.system.core.unbindDriver(from: bridge)
        do throws(IOMMUError) {
            try calls.system.core.bind(driver: "e1000", to: bridge)
            return .ok
        } catch {
            #expect(calls.system.core.device(bridge)?.driver == nil, "the device stays unbound")
            return .failure(error.errno)
        }
    },
    GroupRow(rule: "VG-10", name: "SET_CONTAINER with an fd that is not open", expect: .failure(.badFileDescriptor), uapiOnly: rawFD) { calls in
        let group = try opened(calls, 27)
        var closedFD: Int32 = 1_000_000
        return withUnsafeMutableBytes(of: &closedFD) { group.ioctlResult(request: VFIORequest.groupSetContainer, argument: UInt(bitPattern: $0.baseAddress!)) }.outcome
    },
    GroupRow(rule: "VG-10", name: "SET_CONTAINER whose fd cannot be read", expect: .failure(.badAddress), uapiOnly: rawPointer) { calls in
        try opened(calls, 27).ioctlResult(request: VFIORequest.groupSetContainer, argument: 8).outcome
    },
    GroupRow(rule: "VG-12", name: "SET_CONTAINER with an fd of another kind (a group)", expect: .failure(.fileDescriptorInBadState), uapiOnly: rawFD) { calls in
        let group = try opened(calls, 27)
        var other = calls.system.open("/dev/vfio/22")
        defer { calls.system.close(other) }
        return withUnsafeMutableBytes(of: &other) { group.ioctlResult(request: VFIORequest.groupSetContainer, argument: UInt(bitPattern: $0.baseAddress!)) }.outcome
    },
    GroupRow(rule: "VG-30", name: "a device name not NUL-terminated within a page", expect: .failure(.invalidArgument), uapiOnly: rawPointer) { calls in
        let (group, _) = try joined(calls, 27)
        var name = [UInt8](repeating: 0x41, count: Int(hostPageSize) + 16)
        return name.withUnsafeMutableBytes { group.ioctlResult(request: VFIORequest.groupGetDeviceFD, argument: UInt(bitPattern: $0.baseAddress!)) }.outcome
    },
    GroupRow(rule: "VG-30", name: "a device name that cannot be read", expect: .failure(.badAddress), uapiOnly: rawPointer) { calls in
        try joined(calls, 27).0.ioctlResult(request: VFIORequest.groupGetDeviceFD, argument: 8).outcome
    },
]

@Suite("VFIO group conformance (spec §4)")
struct VFIOGroupConformanceTests {
    /// Each row on each path it runs on (a raw-pointer row runs through the UAPI only).
    static let cases = groupRows.flatMap { row in APIPath.allCases.filter { row.uapiOnly == nil || $0 == .uapi }.map { (row, $0) } }

    @Test(arguments: cases)
    func row(_ row: GroupRow, path: APIPath) throws {
        let system = try VFIOTestMachine.system(vfio: row.vfio)
        let outcome = try row.run(GroupCalls(path: path, system: system))
        #expect(outcome == row.expect, "\(row.rule) \(row.name) via \(path)")
    }
}

extension Result where Success == Int32, Failure == VFIOError {
    /// An ioctl's result as a row outcome.
    var outcome: Outcome {
        switch self {
        case .success(let value): .value(UInt64(value))
        case .failure(let error): .failure(error.errno)
        }
    }
}
