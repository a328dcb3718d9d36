import Glibc
import IOMMU
import KernelRules
import Locking
import SystemPackage
import Testing

@testable import IOMMUFD
@testable import Syscalls
import UserMemory
import VFIO

/// One row of the selftest mock's conformance table (`iommufd.md` §8, IOMMUFD-800 and up, and the
/// §2/§5/§6 rules the mock exercises): a fresh `/dev/iommu` built with `CONFIG_IOMMUFD_TEST`,
/// `prepare` run (each step must succeed), then `operation`, whose outcome must be `expect`, then
/// the checks `then` — through the Swift API (`IOMMUFDContext`'s selftest methods,
/// `IOMMUFDTestAccess`) and again through `ioctl` with `struct iommu_test_cmd` and friends laid
/// out byte by byte in real memory.
struct MockRow: CustomTestStringConvertible, Sendable {
    let rule: String
    let name: String
    var prepare: [MockOp] = []
    let operation: MockOp
    let expect: FDOutcome
    var then: [(MockOp, FDOutcome)] = []
    var also: [String] = []
    /// Why the row runs on the raw ioctl only.
    var uapiOnly: String?
    /// `CONFIG_IOMMUFD_TEST`: off for the rows about a kernel without the mock.
    var selftest = true

    var paths: [APIPath] { uapiOnly != nil ? [.uapi] : APIPath.allCases }
    var rules: [String] { [rule] + also }
    var testDescription: String { "\(rule): \(name)" }
}

/// A user address: in the fixture's anonymous memory (2 MiB aligned), in its memfd's shared
/// mapping, or absolute.
enum MockAddress: Sendable {
    case anonymous(UInt64)
    case file(UInt64)
    case absolute(UInt64)
}

/// `MOCK_APERTURE_START`, `MOCK_PAGE_SIZE`, the host page.
let mockStart: UInt64 = 1 << 24
let mockPage: UInt64 = 2048
let mockHostPage: UInt64 = 4096

indirect enum MockOp: Sendable {
    case ioas
    case destroy(UInt32)
    /// IOAS_MAP readable and writable (or read-only); the IOVA mapped.
    case map(UInt32, MockAddress, length: UInt64, iova: UInt64? = nil, readOnly: Bool = false)
    case unmap(UInt32, iova: UInt64, length: UInt64)
    /// IOAS_MAP_FILE of the fixture's memfd from `start`; the IOVA mapped.
    case mapFile(UInt32, start: UInt64, length: UInt64, iova: UInt64? = nil, fd: Int32? = nil)
    /// OPTION HUGE_PAGES SET.
    case hugePages(UInt32, Bool)
    /// The IOAS's `out_iova_alignment`.
    case alignment(UInt32)
    /// IOAS_IOVA_RANGES: `start, last` of each range.
    case ranges(UInt32)
    /// MOCK_DOMAIN(_FLAGS): `stdev, hwpt, idev`.
    case mockDomain(UInt32, flags: UInt32 = 0)
    /// MOCK_DOMAIN_REPLACE: the HWPT attached.
    case replace(stdev: UInt32, pt: UInt32)
    case addReserved(UInt32, start: UInt64, length: UInt64)
    case checkMap(hwpt: UInt32, iova: UInt64, length: UInt64, MockAddress)
    case checkRefs(MockAddress, length: UInt64, refs: UInt32)
    case deviceCache(idev: UInt32, entry: UInt32, value: UInt32)
    case memoryLimit(UInt32)
    /// CREATE_ACCESS: the access becomes slot `accesses.count` (an fd on the UAPI path).
    case createAccess(UInt32, flags: UInt32)
    /// ACCESS_PAGES through slot `access`: the item's ID.
    case accessPages(access: Int, iova: UInt64, length: UInt64, flags: UInt32 = 0, check: MockAddress? = nil)
    case destroyAccessPages(access: Int, item: UInt32)
    /// ACCESS_RW: a read answers the first 8 bytes read; a write stores `0x5a…` bytes.
    case accessRW(access: Int, iova: UInt64, length: UInt64, write: Bool = false, flags: UInt32 = 0)
    case replaceAccess(access: Int, ioas: UInt32)
    case closeAccess(Int)
    /// HWPT_ALLOC on IOAS `pt` for `dev`, with `IOMMU_HWPT_DATA_SELFTEST` when `pageTable` is set.
    case hwptAlloc(dev: UInt32, pt: UInt32, flags: UInt32 = 0, pageTable: UInt32? = nil)
    case setDirtyTracking(UInt32, Bool)
    /// IOMMU_TEST_OP_DIRTY with these bits set: how many were.
    case markDirty(UInt32, iova: UInt64, length: UInt64, pageSize: UInt64, bits: [Int])
    /// HWPT_GET_DIRTY_BITMAP: the bits set.
    case readDirty(UInt32, iova: UInt64, length: UInt64, pageSize: UInt64, noClear: Bool = false)
    case pasidAttach(stdev: UInt32, pasid: UInt32, pt: UInt32)
    case pasidReplace(stdev: UInt32, pasid: UInt32, pt: UInt32)
    case pasidDetach(stdev: UInt32, pasid: UInt32)
    case pasidCheck(stdev: UInt32, pasid: UInt32, hwpt: UInt32)
    /// The 8 bytes at a host address.
    case hostWord(MockAddress)
    /// The object IDs in use.
    case objects
    /// A raw IOMMU_TEST_CMD (`size` bytes, op, id; the union's first two words): UAPI only.
    case rawTest(size: UInt32, op: UInt32, id: UInt32 = 0, reserved: UInt32 = 0, words: [UInt32] = [])
    /// `ioctl(iommufd, _IO(';', nr), arg)` with a zeroed 72-byte struct of `size`, or NULL: UAPI only.
    case rawNumber(UInt, size: UInt32, null: Bool = false)
    /// GET_HW_INFO of `dev` with a 16-byte buffer: `data_len, out_data_type, out_max_pasid_log2,
    /// out_capabilities, flags, test_reg`. UAPI only.
    case hwInfo(dev: UInt32, type: UInt32 = 0)
}

/// A `/dev/iommu` with the selftest mock, 8 MiB of anonymous memory (2 MiB aligned) and a 64 KiB
/// memfd mapped shared, on a whole-process `ProcessMemory` as under `vfiokit run`.
final class MockFixture: @unchecked Sendable {
    let process = ProcessMemory(addressSpace: .wholeProcess)
    let context: IOMMUFDContext
    private let region: UnsafeMutableRawPointer
    static let regionSize = 8 << 20
    /// The 2 MiB-aligned start of the anonymous memory.
    let anonymous: UInt64
    let memfd: Int32
    let fileMemory: UInt64
    static let fileSize = 64 << 10
    var accesses: [IOMMUFDTestAccess] = []
    var accessFDs: [Int32] = []

    init(selftest: Bool = true) throws {
        context = IOMMUFDContext(process: process, selftest: selftest)
        guard let mapped = mmap(nil, Self.regionSize + (2 << 20), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), mapped != MAP_FAILED else {
            throw Errno(rawValue: errno)
        }
        region = mapped
        anonymous = (UInt64(UInt(bitPattern: mapped)) + (2 << 20) - 1) & ~((2 << 20) - 1)
        memset(UnsafeMutableRawPointer(bitPattern: UInt(anonymous))!, 0x11, Self.regionSize)
        memfd = mockMemfdCreate("iommufd-mock", 0)
        guard memfd >= 0, ftruncate(memfd, off_t(Self.fileSize)) == 0,
            let file = mmap(nil, Self.fileSize, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0), file != MAP_FAILED
        else { throw Errno(rawValue: errno) }
        fileMemory = UInt64(UInt(bitPattern: file))
    }

    func address(_ address: MockAddress) -> UInt64 {
        switch address {
        case .anonymous(let offset): anonymous + offset
        case .file(let offset): fileMemory + offset
        case .absolute(let value): value
        }
    }

    /// Closes the accesses, the context, the memory: no pin may remain.
    func close() {
        accesses.forEach { $0.close() }
        accessFDs.forEach { _ = try? VFIOFileTable.shared.remove($0) }
        context.close()
        munmap(region, Self.regionSize + (2 << 20))
        munmap(UnsafeMutableRawPointer(bitPattern: UInt(fileMemory)), Self.fileSize)
        Glibc.close(memfd)
    }
}

/// `int memfd_create(const char *name, unsigned int flags)`, not in the Glibc module.
@_silgen_name("memfd_create")
private func mockMemfdCreate(_ name: UnsafePointer<CChar>, _ flags: UInt32) -> Int32

/// A raw struct in `malloc`ed memory, fields little-endian at byte offsets.
struct RawStruct {
    var bytes: [UInt8]

    init(size: Int) { bytes = [UInt8](repeating: 0, count: size) }

    mutating func set(_ value: UInt64, at offset: Int, width: Int) {
        for index in 0..<width { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * index)) }
    }

    func get(_ offset: Int, width: Int) -> UInt64 {
        (0..<width).reduce(UInt64(0)) { $0 | UInt64(bytes[offset + $1]) << (8 * $1) }
    }

    /// `ioctl(fd, request, &struct)` on `target`, the struct read back after.
    mutating func ioctl(_ target: some IOCTLTarget, _ request: UInt) -> Result<Int32, VFIOError> {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 8), alignment: 8)
        defer { buffer.deallocate() }
        bytes.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        let result = target.ioctlResult(request: request, argument: UInt(bitPattern: buffer))
        bytes = Array(UnsafeRawBufferPointer(start: buffer, count: bytes.count))
        return result
    }
}

/// Runs mock ops on one path.
struct MockCalls {
    let path: APIPath
    let fixture: MockFixture
    var context: IOMMUFDContext { fixture.context }

    static let testRequest = IOMMUFDStruct.io(0xa0)

    func run(_ op: MockOp) -> (FDOutcome, IOMMUFDError?) {
        do {
            return (try (path == .swiftAPI ? swift(op) : uapi(op)), nil)
        } catch let error as IOMMUFDError {
            return (.failure(error.errno), error)
        } catch let error as VFIOError {
            return (.failure(error.errno), IOMMUFDError(error.errno, rule: error.rule, error.message))
        } catch {
            return (.failure(.ioError), IOMMUFDError(.ioError, rule: .none, "\(error)"))
        }
    }

    // MARK: Swift API

    private func swift(_ op: MockOp) throws -> FDOutcome {
        switch op {
        case .ioas: return .value(UInt64(context.allocateIOAS()))
        case .destroy(let id): try context.destroy(id)
        case .map(let ioas, let address, let length, let iova, let readOnly):
            return .value(try context.map(ioas: ioas, userVA: fixture.address(address), length: length, iova: iova, access: readOnly ? .read : [.read, .write]))
        case .unmap(let ioas, let iova, let length): return .value(try context.unmap(ioas: ioas, iova: iova, length: length))
        case .mapFile(let ioas, let start, let length, let iova, let fd):
            return .value(try context.mapFile(ioas: ioas, fd: fd ?? fixture.memfd, start: start, length: length, iova: iova, access: [.read, .write]))
        case .hugePages(let ioas, let on): try context.setHugePages(ioas: ioas, on)
        case .alignment(let ioas): return .value(try context.iovaRanges(ioas: ioas).alignment)
        case .ranges(let ioas): return .fields(try context.iovaRanges(ioas: ioas).ranges.flatMap { [$0.start, $0.last] })
        case .mockDomain(let pt, let flags):
            let result = try context.mockDomain(pt, flags: flags)
            return .fields([UInt64(result.stdev), UInt64(result.hwpt), UInt64(result.idev)])
        case .replace(let stdev, let pt): return .value(UInt64(try context.mockDomainReplace(stdev, with: pt)))
        case .addReserved(let ioas, let start, let length): try context.addReserved(ioas: ioas, start: start, length: length)
        case .checkMap(let hwpt, let iova, let length, let address):
            try context.checkMap(hwpt: hwpt, iova: iova, length: length, uptr: fixture.address(address))
        case .checkRefs(let address, let length, let refs): try context.checkRefs(uptr: fixture.address(address), length: length, refs: refs)
        case .deviceCache(let idev, let entry, let value): try context.checkDeviceCache(idev: idev, cacheID: entry, value: value)
        case .memoryLimit(let limit): try context.setTemporaryMemoryLimit(limit)
        case .createAccess(let ioas, let flags): fixture.accesses.append(try context.createAccess(ioas: ioas, flags: flags))
        case .accessPages(let slot, let iova, let length, let flags, let check):
            return .value(UInt64(try fixture.accesses[slot].pinPages(iova: iova, length: length, flags: flags, uptr: check.map(fixture.address) ?? 0)))
        case .destroyAccessPages(let slot, let item): try fixture.accesses[slot].unpinPages(item: item)
        case .accessRW(let slot, let iova, let length, let write, _):
            let segments = try fixture.accesses[slot].segments(iova: iova, length: length, write: write)
            var read: [UInt8] = []
            for segment in segments {
                let memory = UnsafeMutableRawPointer(bitPattern: UInt(segment.address))!
                if write { memset(memory, 0x5a, Int(segment.length)) } else { read += Array(UnsafeRawBufferPointer(start: memory, count: Int(segment.length))) }
            }
            return write ? .ok : .value(Self.word(read))
        case .replaceAccess(let slot, let ioas): try fixture.accesses[slot].replaceIOAS(ioas)
        case .closeAccess(let slot): fixture.accesses[slot].close()
        case .hwptAlloc(let dev, let pt, let flags, let pageTable):
            let data = pageTable.map { table -> HWPTUserData in
                HWPTUserData(type: 0xdead, length: 8) { () throws(IOMMUFDError) -> [UInt8] in [0xef, 0xbe, 0xad, 0x0b] + withUnsafeBytes(of: table.littleEndian, Array.init) }
            }
            return .value(UInt64(try context.allocateHWPT(device: dev, ioas: pt, flags: flags, userData: data)))
        case .setDirtyTracking(let hwpt, let on): try context.setDirtyTracking(hwpt: hwpt, enabled: on)
        case .markDirty(let hwpt, let iova, let length, let pageSize, let bits):
            return .value(
                try context.markDirty(hwpt: hwpt, iova: iova, length: length, pageSize: pageSize, bitmap: 1) { count in
                    var bytes = [UInt8](repeating: 0, count: Int((count + 7) / 8))
                    for bit in bits where bit < Int(count) { bytes[bit / 8] |= 1 << UInt8(bit % 8) }
                    return bytes
                })
        case .readDirty(let hwpt, let iova, let length, let pageSize, let noClear):
            return .fields(try context.readDirty(hwpt: hwpt, iova: iova, length: length, pageSize: pageSize, clear: !noClear).sorted())
        case .pasidAttach(let stdev, let pasid, let pt): try context.pasidAttach(stdev, pasid: pasid, to: pt)
        case .pasidReplace(let stdev, let pasid, let pt): try context.pasidReplace(stdev, pasid: pasid, with: pt)
        case .pasidDetach(let stdev, let pasid): try context.pasidDetach(stdev, pasid: pasid)
        case .pasidCheck(let stdev, let pasid, let hwpt): try context.pasidCheck(stdev, pasid: pasid, hwpt: hwpt)
        case .hostWord(let address): return .value(UnsafeRawPointer(bitPattern: UInt(fixture.address(address)))!.loadUnaligned(as: UInt64.self))
        case .objects: return .fields(context.objectIDs.map(UInt64.init))
        case .rawTest, .rawNumber, .hwInfo: Issue.record("\(op) runs on the UAPI path only")
        }
        return .ok
    }

    static func word(_ bytes: [UInt8]) -> UInt64 { bytes.prefix(8).enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * $1.offset) } }

    // MARK: UAPI

    /// `struct iommu_test_cmd` (72 bytes) with `op` and `id`, the union filled by `fill`.
    private func test(_ op: UInt32, id: UInt32 = 0, _ fill: (inout RawStruct) -> Void) throws -> RawStruct {
        var cmd = RawStruct(size: 72)
        cmd.set(72, at: 0, width: 4)
        cmd.set(UInt64(op), at: 4, width: 4)
        cmd.set(UInt64(id), at: 8, width: 4)
        fill(&cmd)
        _ = try cmd.ioctl(context, Self.testRequest).get()
        return cmd
    }

    private func raw(_ request: UInt, size: Int, _ fill: (inout RawStruct) -> Void) throws -> RawStruct {
        var cmd = RawStruct(size: size)
        cmd.set(UInt64(size), at: 0, width: 4)
        fill(&cmd)
        _ = try cmd.ioctl(context, request).get()
        return cmd
    }

    private func accessFD(_ slot: Int) -> UInt32 { UInt32(bitPattern: fixture.accessFDs[slot]) }

    private func uapi(_ op: MockOp) throws -> FDOutcome {
        switch op {
        case .ioas: return .value(try raw(IOMMUFDStruct.ioasAllocRequest, size: 12) { _ in }.get(8, width: 4))
        case .destroy(let id): _ = try raw(IOMMUFDStruct.destroyRequest, size: 8) { $0.set(UInt64(id), at: 4, width: 4) }
        case .map(let ioas, let address, let length, let iova, let readOnly):
            let cmd = try raw(IOMMUFDStruct.mapRequest, size: 40) {
                $0.set(UInt64((iova != nil ? 1 : 0) | (readOnly ? 0 : 2) | 4), at: 4, width: 4)
                $0.set(UInt64(ioas), at: 8, width: 4)
                $0.set(fixture.address(address), at: 16, width: 8)
                $0.set(length, at: 24, width: 8)
                $0.set(iova ?? 0, at: 32, width: 8)
            }
            return .value(cmd.get(32, width: 8))
        case .unmap(let ioas, let iova, let length):
            let cmd = try raw(IOMMUFDStruct.unmapRequest, size: 24) {
                $0.set(UInt64(ioas), at: 4, width: 4)
                $0.set(iova, at: 8, width: 8)
                $0.set(length, at: 16, width: 8)
            }
            return .value(cmd.get(16, width: 8))
        case .mapFile(let ioas, let start, let length, let iova, let fd):
            let cmd = try raw(IOMMUFDStruct.mapFileRequest, size: 40) {
                $0.set(UInt64((iova != nil ? 1 : 0) | 6), at: 4, width: 4)
                $0.set(UInt64(ioas), at: 8, width: 4)
                $0.set(UInt64(UInt32(bitPattern: fd ?? fixture.memfd)), at: 12, width: 4)
                $0.set(start, at: 16, width: 8)
                $0.set(length, at: 24, width: 8)
                $0.set(iova ?? 0, at: 32, width: 8)
            }
            return .value(cmd.get(32, width: 8))
        case .hugePages(let ioas, let on):
            _ = try raw(IOMMUFDStruct.optionRequest, size: 24) {
                $0.set(1, at: 4, width: 4)
                $0.set(UInt64(ioas), at: 12, width: 4)
                $0.set(on ? 1 : 0, at: 16, width: 8)
            }
        case .alignment(let ioas):
            let entries = UnsafeMutableRawPointer.allocate(byteCount: 16 * 8, alignment: 8)
            defer { entries.deallocate() }
            let cmd = try raw(IOMMUFDStruct.iovaRangesRequest, size: 32) {
                $0.set(UInt64(ioas), at: 4, width: 4)
                $0.set(8, at: 8, width: 4)
                $0.set(UInt64(UInt(bitPattern: entries)), at: 16, width: 8)
            }
            return .value(cmd.get(24, width: 8))
        case .ranges(let ioas):
            let entries = UnsafeMutableRawPointer.allocate(byteCount: 16 * 8, alignment: 8)
            defer { entries.deallocate() }
            let cmd = try raw(IOMMUFDStruct.iovaRangesRequest, size: 32) {
                $0.set(UInt64(ioas), at: 4, width: 4)
                $0.set(8, at: 8, width: 4)
                $0.set(UInt64(UInt(bitPattern: entries)), at: 16, width: 8)
            }
            return .fields((0..<Int(cmd.get(8, width: 4)) * 2).map { entries.load(fromByteOffset: 8 * $0, as: UInt64.self) })
        case .mockDomain(let pt, let flags):
            let cmd = try test(flags == 0 ? 2 : 12, id: pt) { $0.set(UInt64(flags), at: 28, width: 4) }
            return .fields([cmd.get(16, width: 4), cmd.get(20, width: 4), cmd.get(24, width: 4)])
        case .replace(let stdev, let pt): return .value(try test(10, id: stdev) { $0.set(UInt64(pt), at: 16, width: 4) }.get(16, width: 4))
        case .addReserved(let ioas, let start, let length):
            _ = try test(1, id: ioas) {
                $0.set(start, at: 16, width: 8)
                $0.set(length, at: 24, width: 8)
            }
        case .checkMap(let hwpt, let iova, let length, let address):
            _ = try test(3, id: hwpt) {
                $0.set(iova, at: 16, width: 8)
                $0.set(length, at: 24, width: 8)
                $0.set(fixture.address(address), at: 32, width: 8)
            }
        case .checkRefs(let address, let length, let refs):
            _ = try test(4) {
                $0.set(length, at: 16, width: 8)
                $0.set(fixture.address(address), at: 24, width: 8)
                $0.set(UInt64(refs), at: 32, width: 4)
            }
        case .deviceCache(let idev, let entry, let value):
            _ = try test(16, id: idev) {
                $0.set(UInt64(entry), at: 16, width: 4)
                $0.set(UInt64(value), at: 20, width: 4)
            }
        case .memoryLimit(let limit): _ = try test(9) { $0.set(UInt64(limit), at: 16, width: 4) }
        case .createAccess(let ioas, let flags):
            let cmd = try test(5, id: ioas) { $0.set(UInt64(flags), at: 20, width: 4) }
            fixture.accessFDs.append(Int32(bitPattern: UInt32(cmd.get(16, width: 4))))
        case .accessPages(let slot, let iova, let length, let flags, let check):
            let cmd = try test(7, id: accessFD(slot)) {
                $0.set(UInt64(flags), at: 16, width: 4)
                $0.set(iova, at: 24, width: 8)
                $0.set(length, at: 32, width: 8)
                $0.set(check.map(fixture.address) ?? 0, at: 40, width: 8)
            }
            return .value(cmd.get(20, width: 4))
        case .destroyAccessPages(let slot, let item): _ = try test(6, id: accessFD(slot)) { $0.set(UInt64(item), at: 16, width: 4) }
        case .accessRW(let slot, let iova, let length, let write, let flags):
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: Int(max(length, 8)), alignment: 8)
            defer { buffer.deallocate() }
            memset(buffer, write ? 0x5a : 0, Int(max(length, 8)))
            _ = try test(8, id: accessFD(slot)) {
                $0.set(iova, at: 16, width: 8)
                $0.set(length, at: 24, width: 8)
                $0.set(UInt64(UInt(bitPattern: buffer)), at: 32, width: 8)
                $0.set(UInt64(flags | (write ? 1 : 0)), at: 40, width: 4)
            }
            return write ? .ok : .value(Self.word(Array(UnsafeRawBufferPointer(start: buffer, count: Int(length)))))
        case .replaceAccess(let slot, let ioas): _ = try test(11, id: accessFD(slot)) { $0.set(UInt64(ioas), at: 16, width: 4) }
        case .closeAccess(let slot):
            if case .testAccess(let access) = try VFIOFileTable.shared.remove(fixture.accessFDs[slot]) { access.close() }
        case .hwptAlloc(let dev, let pt, let flags, let pageTable):
            let data = UnsafeMutableRawPointer.allocate(byteCount: 8, alignment: 8)
            defer { data.deallocate() }
            data.storeBytes(of: UInt32(0xbadbeef), as: UInt32.self)
            data.storeBytes(of: pageTable ?? 0, toByteOffset: 4, as: UInt32.self)
            let cmd = try raw(IOMMUFDStruct.hwptAllocRequest, size: 48) {
                $0.set(UInt64(flags), at: 4, width: 4)
                $0.set(UInt64(dev), at: 8, width: 4)
                $0.set(UInt64(pt), at: 12, width: 4)
                if pageTable != nil {
                    $0.set(0xdead, at: 24, width: 4)
                    $0.set(8, at: 28, width: 4)
                    $0.set(UInt64(UInt(bitPattern: data)), at: 32, width: 8)
                }
            }
            return .value(cmd.get(16, width: 4))
        case .setDirtyTracking(let hwpt, let on):
            _ = try raw(IOMMUFDStruct.setDirtyTrackingRequest, size: 16) {
                $0.set(on ? 1 : 0, at: 4, width: 4)
                $0.set(UInt64(hwpt), at: 8, width: 4)
            }
        case .markDirty(let hwpt, let iova, let length, let pageSize, let bits):
            var bitmap = [UInt8](repeating: 0, count: Int(max(length / max(pageSize, 1), 8) / 8 + 8))
            for bit in bits { bitmap[bit / 8] |= 1 << UInt8(bit % 8) }
            let cmd = try bitmap.withUnsafeBytes { bytes in
                try test(13, id: hwpt) {
                    $0.set(iova, at: 24, width: 8)
                    $0.set(length, at: 32, width: 8)
                    $0.set(pageSize, at: 40, width: 8)
                    $0.set(UInt64(UInt(bitPattern: bytes.baseAddress!)), at: 48, width: 8)
                }
            }
            return .value(cmd.get(56, width: 8))
        case .readDirty(let hwpt, let iova, let length, let pageSize, let noClear):
            // Unaligned on purpose (`bitmap + 0xff1` in the selftest): bits are bytes' bits.
            let count = Int(length / max(pageSize, 1)) / 8 + 16
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: count + 8, alignment: 8)
            defer { buffer.deallocate() }
            memset(buffer, 0, count + 8)
            _ = try raw(IOMMUFDStruct.getDirtyBitmapRequest, size: 48) {
                $0.set(UInt64(hwpt), at: 4, width: 4)
                $0.set(noClear ? 1 : 0, at: 8, width: 4)
                $0.set(iova, at: 16, width: 8)
                $0.set(length, at: 24, width: 8)
                $0.set(pageSize, at: 32, width: 8)
                $0.set(UInt64(UInt(bitPattern: buffer + 1)), at: 40, width: 8)
            }
            let bytes = Array(UnsafeRawBufferPointer(start: buffer + 1, count: count))
            return .fields((0..<(count * 8)).filter { bytes[$0 / 8] & (1 << UInt8($0 % 8)) != 0 }.map(UInt64.init))
        case .pasidAttach(let stdev, let pasid, let pt):
            _ = try test(18, id: stdev) {
                $0.set(UInt64(pasid), at: 16, width: 4)
                $0.set(UInt64(pt), at: 20, width: 4)
            }
        case .pasidReplace(let stdev, let pasid, let pt):
            _ = try test(19, id: stdev) {
                $0.set(UInt64(pasid), at: 16, width: 4)
                $0.set(UInt64(pt), at: 20, width: 4)
            }
        case .pasidDetach(let stdev, let pasid): _ = try test(20, id: stdev) { $0.set(UInt64(pasid), at: 16, width: 4) }
        case .pasidCheck(let stdev, let pasid, let hwpt):
            _ = try test(21, id: stdev) {
                $0.set(UInt64(pasid), at: 16, width: 4)
                $0.set(UInt64(hwpt), at: 20, width: 4)
            }
        case .hostWord(let address): return .value(UnsafeRawPointer(bitPattern: UInt(fixture.address(address)))!.loadUnaligned(as: UInt64.self))
        case .objects: return .fields(context.objectIDs.map(UInt64.init))
        case .rawNumber(let nr, let size, let null):
            if null { return .value(UInt64(try context.ioctlResult(request: IOMMUFDStruct.io(nr), argument: 0).get())) }
            var cmd = RawStruct(size: 72)
            cmd.set(UInt64(size), at: 0, width: 4)
            return .value(UInt64(try cmd.ioctl(context, IOMMUFDStruct.io(nr)).get()))
        case .rawTest(let size, let op, let id, let reserved, let words):
            var cmd = RawStruct(size: max(Int(size), 72))
            cmd.set(UInt64(size), at: 0, width: 4)
            cmd.set(UInt64(op), at: 4, width: 4)
            cmd.set(UInt64(id), at: 8, width: 4)
            cmd.set(UInt64(reserved), at: 12, width: 4)
            for (index, word) in words.enumerated() { cmd.set(UInt64(word), at: 16 + 4 * index, width: 4) }
            return .value(UInt64(try cmd.ioctl(context, Self.testRequest).get()))
        case .hwInfo(let dev, let type):
            let data = UnsafeMutableRawPointer.allocate(byteCount: 16, alignment: 8)
            defer { data.deallocate() }
            memset(data, 0xaa, 16)
            let cmd = try raw(IOMMUFDStruct.hwInfoRequest, size: 40) {
                $0.set(type != 0 ? 1 : 0, at: 4, width: 4)
                $0.set(UInt64(dev), at: 8, width: 4)
                $0.set(16, at: 12, width: 4)
                $0.set(UInt64(UInt(bitPattern: data)), at: 16, width: 8)
                $0.set(UInt64(type), at: 24, width: 4)
            }
            let info = Array(UnsafeRawBufferPointer(start: data, count: 16))
            return .fields([
                cmd.get(12, width: 4), cmd.get(24, width: 4), cmd.get(28, width: 1), cmd.get(32, width: 8), Self.word(Array(info[0..<4])),
                Self.word(Array(info[4..<8])), info[8..<16].allSatisfy { $0 == 0 } ? 1 : 0,
            ])
        }
        return .ok
    }
}

@Suite("IOMMUFD selftest mock (iommufd.md §8): IOMMU_TEST_CMD rows")
struct IOMMUFDSelftestMockTests {
    static let cases = iommufdSelftestMockRows.flatMap { row in row.paths.map { (row, $0) } }

    @Test(arguments: cases)
    func row(_ row: MockRow, path: APIPath) throws {
        let fixture = try MockFixture(selftest: row.selftest)
        defer { fixture.close() }
        let calls = MockCalls(path: path, fixture: fixture)
        let what = "\(row.rule) \(row.name) via \(path)"
        for (index, step) in row.prepare.enumerated() {
            let (outcome, error) = calls.run(step)
            if case .failure = outcome {
                Issue.record("\(what): preparation step \(index) (\(step)) failed: \(error.map { "\($0)" } ?? "")")
                return
            }
        }
        let (outcome, error) = calls.run(row.operation)
        #expect(outcome == row.expect, "\(what)\(error.map { " — \($0)" } ?? "")")
        if let error, case .failure = row.expect {
            #expect(!error.rule.id.isEmpty && !error.message.isEmpty, "\(what): the error names no rule or object: \(error)")
        }
        for (index, (check, expected)) in row.then.enumerated() {
            let (after, error) = calls.run(check)
            #expect(after == expected, "\(what): check \(index) (\(check))\(error.map { " — \($0)" } ?? "")")
        }
    }

    /// After every row's fixture is closed nothing of its memory stays pinned (the selftest's
    /// teardown, `teardown_iommufd`).
    @Test("closing the iommufd drops every pin (the selftest's teardown check)", arguments: APIPath.allCases)
    func teardown(_ path: APIPath) throws {
        let fixture = try MockFixture()
        let calls = MockCalls(path: path, fixture: fixture)
        for step: MockOp in [.ioas, .mockDomain(1), .map(1, .anonymous(0), length: 16 * mockHostPage, iova: mockStart), .mapFile(1, start: 0, length: 4 * mockHostPage)] {
            #expect(calls.run(step).0 != .failure(.ioError), "\(step)")
        }
        #expect(calls.run(.checkRefs(.anonymous(0), length: 16 * mockHostPage, refs: 1)).0 == .ok)
        #expect(calls.run(.checkRefs(.file(0), length: 4 * mockHostPage, refs: 1)).0 == .ok)
        fixture.context.close()
        let other = IOMMUFDContext(process: fixture.process, selftest: true)
        #expect(throws: Never.self) { try other.checkRefs(uptr: fixture.anonymous, length: 16 * mockHostPage, refs: 0) }
        #expect(throws: Never.self) { try other.checkRefs(uptr: fixture.fileMemory, length: 4 * mockHostPage, refs: 0) }
        other.close()
        fixture.close()
    }
}

@Suite("IOMMUFD selftest mock through the VFIO facade: VFIOSystem.iommufdSelftest")
struct IOMMUFDSelftestFacadeTests {
    /// `SET_TEMP_MEMORY_LIMIT(65536)` on `fd`: 0 or the errno.
    private func memoryLimit(_ system: VFIOSystem, _ fd: Int32) -> Int32 {
        var cmd = RawStruct(size: 72)
        cmd.set(72, at: 0, width: 4)
        cmd.set(9, at: 4, width: 4)
        cmd.set(65536, at: 16, width: 4)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 72, alignment: 8)
        defer { buffer.deallocate() }
        cmd.bytes.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: 72) }
        switch system.ioctlResult(fd, MockCalls.testRequest, UInt(bitPattern: buffer)) {
        case .success: return 0
        case .failure(let error): return error.errno.rawValue
        }
    }

    @Test("IOMMUFD-800: off by default (ENOTTY); switched on, /dev/iommu opened afterwards has the mock, and its access fds close through the facade")
    func facade() throws {
        let system = try VFIOTestMachine.system(process: ProcessMemory(addressSpace: .wholeProcess))
        let plain = system.open("/dev/iommu")
        #expect(memoryLimit(system, plain) == Errno.inappropriateIOCTLForDevice.rawValue)
        system.iommufdSelftest = true
        let mock = system.open("/dev/iommu")
        #expect(memoryLimit(system, mock) == 0)
        #expect(memoryLimit(system, plain) == Errno.inappropriateIOCTLForDevice.rawValue, "a context keeps the kernel it was opened in")
        guard case .iommufd(let context) = VFIOFileTable.shared.file(mock) else { Issue.record("not an iommufd"); return }
        let ioas = context.allocateIOAS()
        var create = RawStruct(size: 72)
        create.set(72, at: 0, width: 4)
        create.set(5, at: 4, width: 4)
        create.set(UInt64(ioas), at: 8, width: 4)
        #expect(throws: Never.self) { _ = try create.ioctl(context, MockCalls.testRequest).get() }
        let accessFD = Int32(bitPattern: UInt32(create.get(16, width: 4)))
        #expect(context.objectIDs == [1, 2])
        #expect(system.ioctlResult(accessFD, MockCalls.testRequest, 0).failureErrno == .inappropriateIOCTLForDevice, "an access file has no ioctls")
        #expect(system.close(accessFD) == 0)
        #expect(context.objectIDs == [1], "closing the access fd destroys the access")
        #expect(system.close(mock) == 0 && system.close(plain) == 0)
    }
}

extension Result where Failure == VFIOError {
    fileprivate var failureErrno: Errno? { if case .failure(let error) = self { error.errno } else { nil } }
}
