import SystemPackage
import Testing

@testable import VFIO

/// One type1 conformance row: a container set up as `config` says, `prepare` run (each must
/// succeed), then `operation`, whose outcome must be `expect` — through the Swift API and again
/// through the UAPI facade with raw structs.
struct Type1Row: CustomTestStringConvertible, Sendable {
    let rule: String
    let name: String
    var config = Type1Config()
    var prepare: [Type1Op] = []
    let operation: Type1Op
    let expect: Outcome
    /// Rows about raw-struct fields (`argsz`) only exist on the facade.
    var paths: [APIPath] = APIPath.allCases

    var testDescription: String { "\(rule): \(name)" }
}

struct Type1Config: Sendable {
    /// nil: groups joined but `VFIO_SET_IOMMU` not called.
    var type: VFIOExtension? = .type1v2
    var options = VFIOContainerOptions()
    var profile: PlatformProfile?
    var lockedMemoryLimit: UInt64?
    var readOnlyMemory = false
}

enum APIPath: String, CaseIterable, Sendable { case swiftAPI, uapi }

/// A user address: inside the row's host memory, or absolute.
enum UserAddress: Sendable {
    case memory(UInt64)
    case absolute(UInt64)
}

indirect enum Type1Op: Sendable {
    /// A preparation step whose failure is the point (it must leave no trace).
    case failing(Type1Op)
    case map(UInt32, UserAddress, iova: UInt64, size: UInt64)
    case unmap(UInt32, iova: UInt64, size: UInt64, bitmap: DirtyBitmapRequest? = nil)
    case dirty(UInt32, DirtyBitmapQuery? = nil)
    case checkExtension(UInt32)
    case setIOMMU(UInt32)
    /// `VFIO_IOMMU_GET_INFO`; the outcome is `dma_avail`.
    case info(argsz: UInt32 = 128)
    /// A raw ioctl whose struct has only `argsz` (and zero flags) set.
    case rawArgsz(request: UInt, argsz: UInt32)
    case rawRequest(UInt)
}

enum Outcome: Equatable, Sendable, CustomStringConvertible {
    case value(UInt64)
    case failure(Errno)

    static let ok = Outcome.value(0)

    var description: String {
        switch self {
        case .value(let value): "value \(value)"
        case .failure(let errno): errno.symbolicName
        }
    }
}

/// A live container for one row.
struct Type1Fixture {
    let setup: VFIOTestMachine.Setup

    init(_ config: Type1Config) throws {
        let process = ProcessMemory(lockedMemoryLimit: config.lockedMemoryLimit)
        let system = try VFIOTestMachine.system(profile: config.profile, process: process)
        let container = VFIOContainer(process: process, options: config.options)
        let group = try system.openGroup(27)
        try group.setContainer(container)
        if let type = config.type { try container.setIOMMU(type) }
        let memory = try process.allocate(size: 1 << 20, writable: !config.readOnlyMemory)
        setup = VFIOTestMachine.Setup(system: system, container: container, groups: [group], memory: memory)
    }

    var container: VFIOContainer { setup.container }

    func address(_ address: UserAddress) -> UInt64 {
        switch address {
        case .memory(let offset): setup.memory.address &+ offset
        case .absolute(let value): value
        }
    }

    func run(_ operation: Type1Op, via path: APIPath) -> Outcome {
        if case .failing(let inner) = operation { return run(inner, via: path) }
        switch path {
        case .swiftAPI: return runSwift(operation)
        case .uapi: return runUAPI(operation)
        }
    }

    private func runSwift(_ operation: Type1Op) -> Outcome {
        do throws(VFIOError) {
            switch operation {
            case .map(let flags, let vaddr, let iova, let size):
                try container.map(DMAMapRequest(flags: DMAMapFlags(rawValue: flags), vaddr: address(vaddr), iova: iova, size: size))
                return .ok
            case .unmap(let flags, let iova, let size, let bitmap):
                let result = try container.unmap(DMAUnmapRequest(flags: DMAUnmapFlags(rawValue: flags), iova: iova, size: size, bitmap: bitmap))
                return .value(flags & 1 != 0 ? UInt64(result.dirtyBitmap.map(\.nonzeroBitCount).reduce(0, +)) : result.size)
            case .dirty(let flags, let query):
                let words = try container.dirtyPages(DirtyPagesFlags(rawValue: flags), query: query)
                return .value(UInt64(words.map(\.nonzeroBitCount).reduce(0, +)))
            case .checkExtension(let id):
                return .value(UInt64(container.checkExtension(VFIOExtension(rawValue: id))))
            case .setIOMMU(let id):
                try container.setIOMMU(VFIOExtension(rawValue: id))
                return .ok
            case .info:
                return .value(UInt64(try container.info().dmaAvailable))
            case .rawArgsz, .rawRequest, .failing:
                Issue.record("raw-struct rows run on the facade only")
                return .failure(.invalidArgument)
            }
        } catch {
            return .failure(error.errno)
        }
    }

    private func runUAPI(_ operation: Type1Op) -> Outcome {
        var buffer = [UInt8](repeating: 0, count: 256)
        let bitmapWords = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: 64)
        bitmapWords.initialize(repeating: 0)
        defer { bitmapWords.deallocate() }
        func put<T: FixedWidthInteger>(_ value: T, _ offset: Int) {
            withUnsafeBytes(of: value.littleEndian) { for (index, byte) in $0.enumerated() { buffer[offset + index] = byte } }
        }
        func u64(_ offset: Int) -> UInt64 { buffer[offset..<offset + 8].reversed().reduce(0) { $0 << 8 | UInt64($1) } }
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
        case .checkExtension(let id):
            request = VFIORequest.checkExtension
            scalar = UInt(id)
        case .setIOMMU(let id):
            request = VFIORequest.setIOMMU
            scalar = UInt(id)
        case .info(let argsz):
            request = VFIORequest.iommuGetInfo
            put(argsz, 0)
        case .rawArgsz(let raw, let argsz):
            request = raw
            put(argsz, 0)
        case .rawRequest(let raw):
            request = raw
        case .failing:
            return .failure(.invalidArgument)
        }
        let before = buffer
        let result = buffer.withUnsafeMutableBytes { bytes in
            container.ioctlResult(request: request, argument: scalar ?? UInt(bitPattern: bytes.baseAddress!))
        }
        switch result {
        case .failure(let error):
            // T1-23 / T1-37: a failed call writes nothing back.
            #expect(buffer == before, "a failed ioctl changed the user's struct")
            return .failure(error.errno)
        case .success(let value):
            switch operation {
            case .map:
                #expect(buffer == before, "T1-23: MAP_DMA writes nothing back")
                return .value(UInt64(value))
            case .unmap(let flags, _, _, _):
                return .value(flags & 1 != 0 ? UInt64(bitmapWords.map(\.nonzeroBitCount).reduce(0, +)) : u64(16))
            case .dirty:
                return .value(UInt64(bitmapWords.map(\.nonzeroBitCount).reduce(0, +)))
            case .info:
                // dma_avail is the u32 of the second capability (offset 56 + 8 with argsz >= 104).
                return .value(UInt64(buffer[64]) | UInt64(buffer[65]) << 8 | UInt64(buffer[66]) << 16 | UInt64(buffer[67]) << 24)
            default:
                return .value(UInt64(value))
            }
        }
    }
}
