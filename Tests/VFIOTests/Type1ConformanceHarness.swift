import KernelRules
import Locking
import IOMMU
import SystemPackage
import Testing

@testable import VFIO
import Syscalls
import UserMemory

/// One type1 conformance row: a container set up as `config` says, `prepare` run (each must
/// succeed), then `operation`, whose outcome must be `expect`, then the follow-up checks `then` —
/// through the Swift API and again through the UAPI facade with raw structs.
struct Type1Row: CustomTestStringConvertible, Sendable {
    let rule: String
    let name: String
    var config = Type1Config()
    var prepare: [Type1Op] = []
    let operation: Type1Op
    let expect: Outcome
    /// Words the failure's message must contain (the object and the rule's reason).
    var messageContains: [String] = []
    /// Calls after the operation whose outcomes show its effect (or that it had none).
    var then: [Type1Check] = []
    /// Why the row can only run on the facade (a raw-struct field, a pointer, a request number the
    /// Swift API has no spelling for); nil: both paths.
    var uapiOnly: String?

    var paths: [APIPath] { uapiOnly == nil ? APIPath.allCases : [.uapi] }
    var testDescription: String { "\(rule): \(name)" }
}

/// A follow-up call and the outcome it must have.
struct Type1Check: Sendable {
    let operation: Type1Op
    let expect: Outcome

    init(_ operation: Type1Op, _ expect: Outcome) {
        self.operation = operation
        self.expect = expect
    }
}

struct Type1Config: Sendable {
    /// nil: groups joined but `VFIO_SET_IOMMU` not called.
    var type: VFIOExtension? = .type1v2
    var options = VFIOContainerOptions()
    var profile: PlatformProfile?
    var lockedMemoryLimit: UInt64?
    var readOnlyMemory = false
    /// The groups of `devices/default` that join before `type` is set.
    var groups = [27]
}

enum APIPath: String, CaseIterable, Sendable { case swiftAPI, uapi }

/// A user address: inside the row's host memory, or absolute.
enum UserAddress: Sendable {
    case memory(UInt64)
    case absolute(UInt64)
}

/// What `VFIO_IOMMU_GET_INFO` is asked for: one field of the Swift value (or the same field read
/// from the capability chain), or every field of the bytes a caller with `argsz` gets back.
enum InfoQuery: Sendable {
    case dmaAvailable
    case pageSizes
    /// `start, end` of each IOVA range.
    case iovaRanges
    /// The buffer (pre-filled with 0xAA) decoded as `decodeInfo` lays it out.
    case layout(argsz: UInt32)
}

/// Container state read directly, not through an ioctl: the same on both paths, so what differs
/// is the path the preparation took.
enum Type1Probe: Sendable {
    /// `mm->locked_vm` in bytes (T1-91).
    case lockedBytes
    /// Bytes mapped in each domain's page table, in domain order.
    case mappedBytesPerDomain
}

indirect enum Type1Op: Sendable {
    /// A preparation step whose failure is the point (it must leave no trace).
    case failing(Type1Op)
    case map(UInt32, UserAddress, iova: UInt64, size: UInt64)
    case unmap(UInt32, iova: UInt64, size: UInt64, bitmap: DirtyBitmapRequest? = nil)
    case dirty(UInt32, DirtyBitmapQuery? = nil)
    case apiVersion
    /// The whole `unsigned long` argument; the Swift API takes 32-bit IDs only.
    case checkExtension(UInt)
    case setIOMMU(UInt)
    case info(InfoQuery)
    /// A raw ioctl whose struct has only `argsz` (and zero flags) set.
    case rawArgsz(request: UInt, argsz: UInt32)
    case rawRequest(UInt)
    /// A raw ioctl whose argument is `address`, a pointer the facade must not trust.
    case rawPointer(request: UInt, address: UInt)
    case probe(Type1Probe)
    /// A DIRTY_PAGES GET_BITMAP or an UNMAP_DMA with GET_DIRTY_BITMAP whose outcome is the first
    /// `count` words of the user's bitmap, which the facade path pre-fills with `prefill`; the
    /// Swift API's returned words, zero-padded to `count`, on the other path (T1-82, T1-84).
    case bitmapWords(Type1Op, prefill: UInt64, count: Int)
}

enum Outcome: Equatable, Sendable, CustomStringConvertible {
    case value(UInt64)
    case fields([UInt64])
    case failure(Errno)

    static let ok = Outcome.value(0)

    var description: String {
        switch self {
        case .value(let value): "value \(value)"
        case .fields(let fields): "fields [\(fields.map { "0x" + String($0, radix: 16) }.joined(separator: ", "))]"
        case .failure(let errno): errno.symbolicName
        }
    }
}

/// What a failed call must leave as it was: everything type1 keeps (spec §7.1) and what it pins.
struct Type1State: Equatable, CustomStringConvertible {
    let mappings: [DMAMapping]
    let lockedBytes: UInt64
    let iommuType: VFIOExtension?
    let dmaAvailable: UInt32?
    let iovaRanges: [IOVAList.Range]
    let pageSizes: UInt64?
    let dirtyTracking: Bool?
    let invalidVaddrs: Set<UInt64>
    let domains: [ObjectIdentifier]
    let mappedBytesPerDomain: [UInt64]
    let groups: [ObjectIdentifier]

    init(_ container: VFIOContainer) {
        let iommu = container.state.withLock { $0.iommu }
        mappings = container.mappings
        lockedBytes = container.process.lockedBytes
        iommuType = container.iommuType
        dmaAvailable = iommu?.dmaAvailable
        iovaRanges = iommu?.iovaList.ranges ?? []
        pageSizes = iommu?.pageSizes
        dirtyTracking = iommu?.dirtyTracking
        invalidVaddrs = iommu?.invalidVaddrs ?? []
        domains = container.domains.map(ObjectIdentifier.init)
        mappedBytesPerDomain = container.domains.map(\.mappedBytes)
        groups = container.groups.map(ObjectIdentifier.init)
    }

    var description: String {
        "mappings \(mappings.count), locked \(lockedBytes), dma_avail \(dmaAvailable.map(String.init) ?? "-"), IOVA \(iovaRanges), "
            + "pgsizes \(pageSizes.map { String($0, radix: 16) } ?? "-"), dirty \(dirtyTracking.map(String.init) ?? "-"), "
            + "invalid vaddrs \(invalidVaddrs.sorted()), domains \(domains.count) mapping \(mappedBytesPerDomain), groups \(groups.count)"
    }
}

/// Runs `body` and, when it fails, checks that the container is as it was (errors change nothing).
func expectUnchangedOnFailure(
    _ container: VFIOContainer, _ what: String, sourceLocation: SourceLocation = #_sourceLocation, _ body: () -> (Outcome, VFIOError?)
) -> (Outcome, VFIOError?) {
    let before = Type1State(container)
    let result = body()
    if case .failure = result.0 {
        let after = Type1State(container)
        #expect(after == before, "\(what): a failed call changed the container\nbefore: \(before)\nafter:  \(after)", sourceLocation: sourceLocation)
    }
    return result
}

/// Container calls through one path: the Swift API, or `ioctl` with the raw structs.
struct ContainerCalls {
    let path: APIPath
    let container: VFIOContainer
    /// Where `.memory(offset)` points.
    let memoryBase: UInt64

    func address(_ address: UserAddress) -> UInt64 {
        switch address {
        case .memory(let offset): memoryBase &+ offset
        case .absolute(let value): value
        }
    }

    /// The outcome, and the error behind a failure.
    func run(_ operation: Type1Op) -> (Outcome, VFIOError?) {
        if case .failing(let inner) = operation { return run(inner) }
        if case .probe(let probe) = operation { return (Self.probe(probe, container), nil) }
        switch path {
        case .swiftAPI: return runSwift(operation)
        case .uapi: return runUAPI(operation)
        }
    }

    private static func probe(_ probe: Type1Probe, _ container: VFIOContainer) -> Outcome {
        switch probe {
        case .lockedBytes: .value(container.process.lockedBytes)
        case .mappedBytesPerDomain: .fields(container.domains.map(\.mappedBytes))
        }
    }

    private func runSwift(_ operation: Type1Op) -> (Outcome, VFIOError?) {
        do throws(VFIOError) {
            switch operation {
            case .map(let flags, let vaddr, let iova, let size):
                try container.map(DMAMapRequest(flags: DMAMapFlags(rawValue: flags), vaddr: address(vaddr), iova: iova, size: size))
                return (.ok, nil)
            case .unmap(let flags, let iova, let size, let bitmap):
                let result = try container.unmap(DMAUnmapRequest(flags: DMAUnmapFlags(rawValue: flags), iova: iova, size: size, bitmap: bitmap))
                return (.value(flags & 1 != 0 ? UInt64(result.dirtyBitmap.map(\.nonzeroBitCount).reduce(0, +)) : result.size), nil)
            case .dirty(let flags, let query):
                let words = try container.dirtyPages(DirtyPagesFlags(rawValue: flags), query: query)
                return (.value(UInt64(words.map(\.nonzeroBitCount).reduce(0, +))), nil)
            case .bitmapWords(.dirty(let flags, let query), _, let count):
                let words = try container.dirtyPages(DirtyPagesFlags(rawValue: flags), query: query)
                return (.fields(Array((words + Array(repeating: 0, count: count)).prefix(count))), nil)
            case .bitmapWords(.unmap(let flags, let iova, let size, let bitmap), _, let count):
                let words = try container.unmap(DMAUnmapRequest(flags: DMAUnmapFlags(rawValue: flags), iova: iova, size: size, bitmap: bitmap)).dirtyBitmap
                return (.fields(Array((words + Array(repeating: 0, count: count)).prefix(count))), nil)
            case .apiVersion:
                return (.value(UInt64(container.apiVersion)), nil)
            case .checkExtension(let id):
                guard let id = swiftID(id) else { return (.failure(.invalidArgument), nil) }
                return (.value(UInt64(container.checkExtension(id))), nil)
            case .setIOMMU(let id):
                guard let id = swiftID(id) else { return (.failure(.invalidArgument), nil) }
                try container.setIOMMU(id)
                return (.ok, nil)
            case .info(let query):
                let info = try container.info()
                switch query {
                case .dmaAvailable: return (.value(UInt64(info.dmaAvailable)), nil)
                case .pageSizes: return (.value(info.pageSizes), nil)
                case .iovaRanges: return (.fields(info.iovaRanges.flatMap { [$0.start, $0.end] }), nil)
                case .layout(let argsz):
                    // What the kernel copies back, laid over the caller's buffer.
                    var buffer = [UInt8](repeating: 0xAA, count: Self.infoBufferSize)
                    for (index, byte) in info.encoded(argsz: argsz).enumerated() { buffer[index] = byte }
                    return (.fields(decodeInfo(buffer, argsz: argsz)), nil)
                }
            case .rawArgsz, .rawRequest, .rawPointer, .failing, .probe, .bitmapWords:
                Issue.record("raw-struct rows run on the facade only")
                return (.failure(.invalidArgument), nil)
            }
        } catch {
            return (.failure(error.errno), error)
        }
    }

    private func swiftID(_ id: UInt) -> VFIOExtension? {
        guard let narrow = UInt32(exactly: id) else {
            Issue.record("extension 0x\(String(id, radix: 16)) has no VFIOExtension: such rows run on the facade only")
            return nil
        }
        return VFIOExtension(rawValue: narrow)
    }

    static let infoBufferSize = 512

    private func runUAPI(_ operation: Type1Op) -> (Outcome, VFIOError?) {
        var operation = operation
        var prefill: UInt64 = 0
        var wordCount: Int?
        if case .bitmapWords(let inner, let fill, let count) = operation { (operation, prefill, wordCount) = (inner, fill, count) }
        var buffer = [UInt8](repeating: 0, count: Self.infoBufferSize)
        let bitmapWords = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: 64)
        bitmapWords.initialize(repeating: prefill)
        defer { bitmapWords.deallocate() }
        func put<T: FixedWidthInteger>(_ value: T, _ offset: Int) {
            withUnsafeBytes(of: value.littleEndian) { for (index, byte) in $0.enumerated() { buffer[offset + index] = byte } }
        }
        let bitmapData = UInt64(UInt(bitPattern: bitmapWords.baseAddress!))
        var request: UInt
        var scalar: UInt?
        switch operation {
        case .map(let flags, let vaddr, let iova, let size):
            request = VFIORequest.iommuMapDMA
            put(UInt32(32), 0); put(flags, 4); put(address(vaddr), 8); put(iova, 16); put(size, 24)
        case .unmap(let flags, let iova, let size, let bitmap):
            request = VFIORequest.iommuUnmapDMA
            put(UInt32(bitmap == nil ? 24 : 48), 0); put(flags, 4); put(iova, 8); put(size, 16)
            if let bitmap { put(bitmap.pageSize, 24); put(bitmap.size, 32); put(bitmapData, 40) }
        case .dirty(let flags, let query):
            request = VFIORequest.iommuDirtyPages
            put(UInt32(query == nil ? 8 : 48), 0); put(flags, 4)
            if let query { put(query.iova, 8); put(query.size, 16); put(query.bitmap.pageSize, 24); put(query.bitmap.size, 32); put(bitmapData, 40) }
        case .apiVersion:
            request = VFIORequest.getAPIVersion
            scalar = 0
        case .checkExtension(let id):
            request = VFIORequest.checkExtension
            scalar = id
        case .setIOMMU(let id):
            request = VFIORequest.setIOMMU
            scalar = id
        case .info(let query):
            request = VFIORequest.iommuGetInfo
            if case .layout(let argsz) = query {
                buffer = [UInt8](repeating: 0xAA, count: Self.infoBufferSize)
                put(argsz, 0)
            } else {
                put(UInt32(Self.infoBufferSize), 0)
            }
        case .rawArgsz(let raw, let argsz):
            request = raw
            put(argsz, 0)
        case .rawRequest(let raw):
            request = raw
        case .rawPointer(let raw, let address):
            request = raw
            scalar = address
        case .failing, .probe, .bitmapWords:
            return (.failure(.invalidArgument), nil)
        }
        let before = buffer
        let result = buffer.withUnsafeMutableBytes { bytes in
            container.ioctlResult(request: request, argument: scalar ?? UInt(bitPattern: bytes.baseAddress!))
        }
        switch result {
        case .failure(let error):
            // T1-23 / T1-37: a failed call writes nothing back.
            #expect(buffer == before, "a failed ioctl changed the user's struct")
            return (.failure(error.errno), error)
        case .success(let value):
            if let wordCount { return (.fields(Array(bitmapWords.prefix(wordCount))), nil) }
            switch operation {
            case .map:
                #expect(buffer == before, "T1-23: MAP_DMA writes nothing back")
                return (.value(UInt64(value)), nil)
            case .unmap(let flags, _, _, _):
                return (.value(flags & 1 != 0 ? UInt64(bitmapWords.map(\.nonzeroBitCount).reduce(0, +)) : le(buffer, 16, 8)), nil)
            case .dirty:
                return (.value(UInt64(bitmapWords.map(\.nonzeroBitCount).reduce(0, +))), nil)
            case .info(let query):
                return (Self.infoOutcome(query, buffer), nil)
            default:
                return (.value(UInt64(value)), nil)
            }
        }
    }

    /// A GET_INFO answer read back from the user's buffer.
    private static func infoOutcome(_ query: InfoQuery, _ buffer: [UInt8]) -> Outcome {
        let argsz = UInt32(le(buffer, 0, 4))
        switch query {
        case .layout(let asked): return .fields(decodeInfo(buffer, argsz: asked))
        case .pageSizes: return .value(le(buffer, 8, 8))
        case .dmaAvailable:
            guard let cap = capabilities(buffer, argsz: argsz).first(where: { $0.id == 3 }) else {
                Issue.record("T1-71: GET_INFO's chain has no DMA_AVAIL capability: \(decodeInfo(buffer, argsz: argsz))")
                return .fields([])
            }
            return .value(le(buffer, cap.offset + 8, 4))
        case .iovaRanges:
            guard let cap = capabilities(buffer, argsz: argsz).first(where: { $0.id == 1 }) else { return .fields([]) }
            let count = Int(le(buffer, cap.offset + 8, 4))
            return .fields((0..<count).flatMap { [le(buffer, cap.offset + 16 + 16 * $0, 8), le(buffer, cap.offset + 24 + 16 * $0, 8)] })
        }
    }
}

/// Little-endian field of `size` bytes at `offset`.
func le(_ bytes: [UInt8], _ offset: Int, _ size: Int) -> UInt64 {
    bytes[offset..<offset + size].reversed().reduce(0) { $0 << 8 | UInt64($1) }
}

/// The capability headers of a GET_INFO answer: `cap_offset`, then each `next`, while they stay
/// inside `argsz` (at most 8, so a corrupt chain cannot loop).
func capabilities(_ buffer: [UInt8], argsz: UInt32) -> [(id: UInt64, offset: Int)] {
    var found: [(id: UInt64, offset: Int)] = []
    var offset = Int(le(buffer, 16, 4))
    while offset != 0, offset + 8 <= min(Int(argsz), buffer.count), found.count < 8 {
        found.append((le(buffer, offset, 2), offset))
        offset = Int(le(buffer, offset + 4, 4))
    }
    return found
}

/// `struct vfio_iommu_type1_info` and its chain as a flat list: `argsz, flags, iova_pgsizes,
/// cap_offset, pad`, then per capability `id, version, next` and its fields — MIGRATION: `flags,
/// pgsize_bitmap, max_dirty_bitmap_size`; DMA_AVAIL: `avail`, its padding; IOVA_RANGE: `nr_iovas,
/// reserved`, then `start, end` per range.
func decodeInfo(_ buffer: [UInt8], argsz: UInt32) -> [UInt64] {
    var fields = [le(buffer, 0, 4), le(buffer, 4, 4), le(buffer, 8, 8), le(buffer, 16, 4), le(buffer, 20, 4)]
    for cap in capabilities(buffer, argsz: argsz) {
        let at = cap.offset
        fields += [cap.id, le(buffer, at + 2, 2), le(buffer, at + 4, 4)]
        switch cap.id {
        case 2: fields += [le(buffer, at + 8, 4), le(buffer, at + 16, 8), le(buffer, at + 24, 8)]
        case 3: fields += [le(buffer, at + 8, 4), le(buffer, at + 12, 4)]
        case 1:
            let count = Int(le(buffer, at + 8, 4))
            fields += [UInt64(count), le(buffer, at + 12, 4)]
            for index in 0..<min(count, 16) { fields += [le(buffer, at + 16 + 16 * index, 8), le(buffer, at + 24 + 16 * index, 8)] }
        default: break
        }
    }
    return fields
}

/// A live container for one row: the groups of `config` joined, its IOMMU set, 1 MiB of memory.
struct Type1Fixture {
    let setup: VFIOTestMachine.Setup

    init(_ config: Type1Config) throws {
        let process = ProcessMemory(lockedMemoryLimit: config.lockedMemoryLimit)
        let system = try VFIOTestMachine.system(profile: config.profile, process: process)
        let container = VFIOContainer(process: process, options: config.options)
        var groups: [VFIOGroup] = []
        for id in config.groups {
            let group = try system.openGroup(id)
            try group.setContainer(container)
            groups.append(group)
        }
        if let type = config.type { try container.setIOMMU(type) }
        let memory = try process.allocate(size: 1 << 20, writable: !config.readOnlyMemory)
        setup = VFIOTestMachine.Setup(system: system, container: container, groups: groups, memory: memory)
    }

    var container: VFIOContainer { setup.container }

    func calls(_ path: APIPath) -> ContainerCalls { ContainerCalls(path: path, container: container, memoryBase: setup.memory.address) }
}
