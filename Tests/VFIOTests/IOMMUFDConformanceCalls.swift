import CLinuxVFIO
import DeviceModels
import Glibc
import IOMMU
import KernelRules
import Locking
import Machine
import PCIBus
import SystemPackage
import Testing

@testable import IOMMUFD
@testable import Syscalls
@testable import VFIO
import UserMemory

/// iommufd calls through one path: the Swift API, or `ioctl` on the `/dev/iommu` fd, the device
/// cdev fds and the group fds with raw structs in real memory.
final class FDCalls {
    let path: APIPath
    let fixture: IOMMUFDFixture
    /// Device cdevs by slot: the Swift object, or the fd.
    private var cdevs: [String: VFIODeviceCdev] = [:]
    private var cdevFDs: [String: Int32] = [:]
    private var groups: [Int: VFIOGroup] = [:]
    private var groupFDs: [Int: Int32] = [:]
    private var groupDevices: [VFIODevice] = []
    private var otherFDs: [Int32] = []
    private var iommufdOpen = true

    init(path: APIPath, fixture: IOMMUFDFixture) {
        self.path = path
        self.fixture = fixture
    }

    var system: VFIOSystem { fixture.system }
    var context: IOMMUFDContext { fixture.context }

    /// Closes what the row opened (devices first, so their groups and the context let go).
    func closeAll() {
        for cdev in cdevs.values { cdev.close() }
        for device in groupDevices { device.close() }
        for fd in cdevFDs.values { system.close(fd) }
        for fd in otherFDs { system.close(fd) }
        for group in groups.values { group.close() }
        for fd in groupFDs.values { system.close(fd) }
        if iommufdOpen { system.close(fixture.fd) }
    }

    /// `run`, checking that a failure left the context as it was (unless the kernel keeps
    /// partial progress there).
    func runChecked(_ operation: FDOp, _ what: String, keepsProgress: Bool) -> (FDOutcome, VFIOError?) {
        let before = fixture.snapshot
        let result = run(operation)
        if result.0.failed, !keepsProgress {
            let after = fixture.snapshot
            #expect(after == before, "\(what): a failed call changed the context\nbefore:\n\(before)\nafter:\n\(after)")
        }
        return result
    }

    /// The outcome, and the error behind a failure.
    func run(_ operation: FDOp) -> (FDOutcome, VFIOError?) {
        if case .failing(let inner) = operation { return run(inner) }
        if case .probe(let probe) = operation { return self.probe(probe) }
        switch path {
        case .swiftAPI: return attempt { try swift(operation) }
        case .uapi: return attempt { try uapi(operation) }
        }
    }

    private func attempt(_ body: () throws -> FDOutcome) -> (FDOutcome, VFIOError?) {
        do {
            return (try body(), nil)
        } catch let error as VFIOError {
            return (.failure(error.errno), error)
        } catch let error as IOMMUFDError {
            return (.failure(error.errno), VFIOError(error))
        } catch let written as WrittenFailure {
            return (.failureWriting(written.error.errno, written.fields), written.error)
        } catch {
            Issue.record("unexpected error \(error)")
            return (.failure(.ioError), nil)
        }
    }

    /// A failure whose call wrote fields back first.
    struct WrittenFailure: Error {
        let error: VFIOError
        let fields: [UInt64]
    }

    private func unsupported(_ operation: FDOp) -> FDOutcome {
        Issue.record("\(operation) has no Swift API spelling: such rows run on the raw ioctl only (uapiOnly)")
        return .failure(.ioError)
    }

    // MARK: Swift API

    private func access(_ flags: UInt32) -> IOAccess {
        var access: IOAccess = []
        if flags & IOMMUFDStruct.readable != 0 { access.insert(.read) }
        if flags & IOMMUFDStruct.writeable != 0 { access.insert(.write) }
        return access
    }

    private func swift(_ operation: FDOp) throws -> FDOutcome {
        switch operation {
        case .allocIOAS(let flags):
            guard flags == 0 else { return unsupported(operation) }
            return .value(UInt64(context.allocateIOAS()))
        case .destroy(let id):
            try context.destroy(id)
            return .ok
        case .ranges(let id, let room, let reserved):
            let (ranges, alignment) = try context.iovaRanges(ioas: id)
            guard reserved == 0, ranges.count <= room else { return unsupported(operation) }
            return .fields([UInt64(ranges.count), alignment] + ranges.flatMap { [$0.start, $0.last] })
        case .allow(let id, let ranges, let reserved):
            guard reserved == 0 else { return unsupported(operation) }
            try context.allowIOVAs(ioas: id, ranges)
            return .ok
        case .map(let id, let flags, let address, let length, let iova, let reserved):
            guard flags & ~7 == 0, reserved == 0 else { return unsupported(operation) }
            let fixed = flags & IOMMUFDStruct.fixed != 0
            return .value(try context.map(ioas: id, userVA: fixture.address(address), length: length, iova: fixed ? iova : nil, access: access(flags)))
        case .copy(let destination, let source, let flags, let length, let destinationIOVA, let sourceIOVA):
            guard flags & ~7 == 0 else { return unsupported(operation) }
            let fixed = flags & IOMMUFDStruct.fixed != 0
            return .value(
                try context.copy(
                    from: source, sourceIOVA: sourceIOVA, to: destination, destinationIOVA: fixed ? destinationIOVA : nil, length: length,
                    access: access(flags)))
        case .unmap(let id, let iova, let length):
            return .value(try context.unmap(ioas: id, iova: iova, length: length))
        case .option(let option, let op, let object, let value, let reserved):
            guard reserved == 0, op <= 1 else { return unsupported(operation) }
            switch (option, op) {
            case (.rlimitMode, 1) where object == 0: return .value(context.accountMode == .mm ? 1 : 0)
            case (.rlimitMode, 0) where object == 0 && value <= 1:
                try context.setAccountMode(value == 1 ? .mm : .user)
                return .value(value)
            case (.hugePages, 1): return .value(try context.hugePages(ioas: object) ? 1 : 0)
            case (.hugePages, 0) where value <= 1:
                try context.setHugePages(ioas: object, value == 1)
                return .value(value)
            default: return unsupported(operation)
            }
        case .vfioIOAS(let op, let id, let reserved):
            guard reserved == 0 else { return unsupported(operation) }
            switch op {
            case 0: return .value(UInt64(try context.compatIOAS()))
            case 1: try context.setCompatIOAS(id)
            case 2: context.clearCompatIOAS()
            default: return unsupported(operation)
            }
            return .ok
        case .hwptAlloc(let device, let pt, let flags, let reserved, let dataType, let dataLength):
            guard reserved == 0, (dataType == 0) == (dataLength == 0) else { return unsupported(operation) }
            return .value(UInt64(try context.allocateHWPT(device: device, ioas: pt, flags: flags, driverData: dataType != 0)))
        case .hwInfo(let device, let flags, _, let reserved):
            guard flags == 0, reserved == 0 else { return unsupported(operation) }
            _ = try context.boundDevice(device)
            return .ok
        case .open(let slot, let address):
            cdevs[slot] = try system.openDeviceCdev(fixture.cdevNumber(address ?? slot))
            return .ok
        case .bind(let slot, let iommufd, let flags, let argsz, let tail):
            guard case .own = iommufd, flags == 0, argsz == 24, tail.isEmpty else { return unsupported(operation) }
            let context = context
            return .value(UInt64(try cdev(slot).bind { context }))
        case .attach(let slot, let pt, let flags, let argsz):
            guard flags == 0, argsz == 16 else { return unsupported(operation) }
            return .value(UInt64(try cdev(slot).attach(pt)))
        case .detach(let slot, let flags, let argsz):
            guard flags == 0, argsz == 12 else { return unsupported(operation) }
            try cdev(slot).detach()
            return .ok
        case .closeDevice(let slot):
            try cdev(slot).close()
            cdevs[slot] = nil
            return .ok
        case .deviceInfo(let slot):
            _ = try cdev(slot).device("VFIO_DEVICE_GET_INFO").info()
            return .ok
        case .openGroup(let id):
            groups[id] = try system.openGroup(id)
            return .ok
        case .joinGroup(let id):
            try group(id).setContainer(context)
            return .ok
        case .openGroupDevice(let id, let name):
            groupDevices.append(try group(id).openDevice(name))
            return .ok
        case .closeGroup(let id):
            try group(id).close()
            groups[id] = nil
            return .ok
        case .closeIOMMUFD:
            context.close()
            return .ok
        case .checkExtension(let argument):
            return .value(UInt64(try context.compatCheckExtension(argument)))
        case .setIOMMU(let argument):
            try context.compatSetIOMMU(argument)
            return .ok
        case .compatMap(let flags, let address, let iova, let size, let argsz):
            guard flags & ~3 == 0, argsz == 32 else { return unsupported(operation) }
            try context.compatMap(vaddr: fixture.address(address), iova: iova, size: size, access: IOAccess(rawValue: UInt8(flags)))
            return .ok
        case .compatUnmap(let flags, let iova, let size, let argsz):
            guard flags & ~2 == 0, argsz == 24 else { return unsupported(operation) }
            let (unmapped, failure) = try context.compatUnmap(iova: iova, size: size, all: flags & 2 != 0)
            if let failure {
                // What the user sees: `size` written back; the same value as before is no visible write.
                if unmapped == size { throw VFIOError(failure) }
                throw WrittenFailure(error: VFIOError(failure), fields: [unmapped])
            }
            return .value(unmapped)
        case .compatInfo(.pageSizes):
            return .value(try context.compatInfo().pageSizes)
        case .compatInfo(.ranges):
            return .fields(try context.compatInfo().ranges.flatMap { [$0.start, $0.last] })
        case .compatInfo(.layout), .compatInfo(.bytes), .raw, .rawPointer, .rawPlaced, .allowPlaced, .apiVersion, .failing, .probe:
            return unsupported(operation)
        }
    }

    private func cdev(_ slot: String) throws -> VFIODeviceCdev {
        guard let cdev = cdevs[slot] else { throw VFIOError(.badFileDescriptor, rule: .none, "no cdev \(slot) open") }
        return cdev
    }

    private func group(_ id: Int) throws -> VFIOGroup {
        guard let group = groups[id] else { throw VFIOError(.badFileDescriptor, rule: .none, "group \(id) not open") }
        return group
    }

    // MARK: Raw ioctl

    /// `request` on `fd` with `bytes` in real memory followed by 64 bytes of 0xAA that nothing may
    /// touch (IOMMUFD-104: a response is at most `size` bytes): the result and the bytes after.
    private func exchange(_ fd: Int32, _ request: UInt, _ bytes: StructBytes) -> (Result<Int32, VFIOError>, StructBytes) {
        let trailer = 64
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.bytes.count + trailer, alignment: 8)
        defer { buffer.deallocate() }
        buffer.copyBytes(from: bytes.bytes + [UInt8](repeating: 0xAA, count: trailer))
        let result = system.ioctlResult(fd, request, UInt(bitPattern: buffer.baseAddress!))
        let after = StructBytes(bytes: Array(buffer.prefix(bytes.bytes.count)))
        #expect(buffer.suffix(trailer).allSatisfy { $0 == 0xAA }, "ioctl 0x\(String(request, radix: 16)): bytes written past the \(bytes.bytes.count)-byte struct")
        return (result, after)
    }

    /// `exchange`, where a failure writes nothing back (IOMMUFD-104: commands respond only on
    /// success).
    private func call(_ fd: Int32, _ request: UInt, _ bytes: StructBytes) throws -> (Int32, StructBytes) {
        let (result, after) = exchange(fd, request, bytes)
        switch result {
        case .success(let value): return (value, after)
        case .failure(let error):
            #expect(after == bytes, "IOMMUFD-104: a failed ioctl 0x\(String(request, radix: 16)) (\(error.errno.symbolicName)) changed the user's struct")
            throw error
        }
    }

    /// `count` bytes of real memory filled with 0xAA, for arrays the kernel reads or writes.
    private final class Scratch {
        let buffer: UnsafeMutableRawBufferPointer
        init(_ count: Int) {
            buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, 8), alignment: 8)
            buffer.initializeMemory(as: UInt8.self, repeating: 0xAA)
        }
        deinit { buffer.deallocate() }
        var address: UInt64 { UInt64(UInt(bitPattern: buffer.baseAddress!)) }
        func put(_ value: UInt64, at offset: Int) { buffer.storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt64.self) }
        func get(_ offset: Int) -> UInt64 { UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) }
    }

    private var iommufd: Int32 { fixture.fd }

    private func uapi(_ operation: FDOp) throws -> FDOutcome {
        typealias S = IOMMUFDStruct
        switch operation {
        case .allocIOAS(let flags):
            let (_, out) = try call(iommufd, S.ioasAllocRequest, StructBytes(S.ioasAlloc, ["flags": UInt64(flags)]))
            return .value(out.get(8, 4))
        case .destroy(let id):
            _ = try call(iommufd, S.destroyRequest, StructBytes(S.destroy, ["id": UInt64(id)]))
            return .ok
        case .ranges(let id, let room, let reserved):
            let array = Scratch(16 * Int(room) + 16)
            let input = StructBytes(
                S.iovaRanges, ["ioas_id": UInt64(id), "num_iovas": UInt64(room), "__reserved": UInt64(reserved), "allowed_iovas": array.address])
            func answer(_ out: StructBytes) -> [UInt64] {
                let count = Int(out.get(8, 4))
                let written = min(count, Int(room))
                // IOMMUFD-201: entries up to the room given, nothing past it.
                #expect((16 * written..<16 * Int(room) + 16).allSatisfy { array.buffer[$0] == 0xAA }, "IOVA_RANGES wrote past its \(written) entries")
                return [UInt64(count), out.get(24, 8)] + (0..<written).flatMap { [array.get(16 * $0), array.get(16 * $0 + 8)] }
            }
            let (result, out) = exchange(iommufd, S.iovaRangesRequest, input)
            switch result {
            case .success: return .fields(answer(out))
            case .failure(let error) where error.errno == .messageTooLong: throw WrittenFailure(error: error, fields: answer(out))
            case .failure(let error):
                #expect(out == input, "IOMMUFD-104: a failed IOVA_RANGES changed the user's struct")
                #expect(array.buffer.allSatisfy { $0 == 0xAA }, "a failed IOVA_RANGES wrote entries")
                throw error
            }
        case .allow(let id, let ranges, let reserved):
            let array = Scratch(16 * ranges.count)
            for (index, range) in ranges.enumerated() {
                array.put(range.start, at: 16 * index)
                array.put(range.last, at: 16 * index + 8)
            }
            let input = StructBytes(
                S.allowIOVAs, ["ioas_id": UInt64(id), "num_iovas": UInt64(ranges.count), "__reserved": UInt64(reserved), "allowed_iovas": array.address])
            _ = try call(iommufd, S.allowIOVAsRequest, input)
            return .ok
        case .allowPlaced(let id, let ranges, let readable):
            return .value(UInt64(try allowPlaced(id, ranges, readable: readable)))
        case .map(let id, let flags, let address, let length, let iova, let reserved):
            let input = StructBytes(
                S.map,
                [
                    "flags": UInt64(flags), "ioas_id": UInt64(id), "__reserved": UInt64(reserved), "user_va": fixture.address(address), "length": length,
                    "iova": iova,
                ])
            let (_, out) = try call(iommufd, S.mapRequest, input)
            return .value(out.get(32, 8))
        case .copy(let destination, let source, let flags, let length, let destinationIOVA, let sourceIOVA):
            let input = StructBytes(
                S.copy,
                [
                    "flags": UInt64(flags), "dst_ioas_id": UInt64(destination), "src_ioas_id": UInt64(source), "length": length,
                    "dst_iova": destinationIOVA, "src_iova": sourceIOVA,
                ])
            let (_, out) = try call(iommufd, S.copyRequest, input)
            return .value(out.get(24, 8))
        case .unmap(let id, let iova, let length):
            let (_, out) = try call(iommufd, S.unmapRequest, StructBytes(S.unmap, ["ioas_id": UInt64(id), "iova": iova, "length": length]))
            return .value(out.get(16, 8))
        case .option(let option, let op, let object, let value, let reserved):
            let input = StructBytes(
                S.option, ["option_id": UInt64(option.rawValue), "op": UInt64(op), "__reserved": UInt64(reserved), "object_id": UInt64(object), "val64": value])
            let (_, out) = try call(iommufd, S.optionRequest, input)
            #expect(out.bytes.prefix(16) == input.bytes.prefix(16), "IOMMUFD-240: OPTION writes back val64 only")
            return .value(out.get(16, 8))
        case .vfioIOAS(let op, let id, let reserved):
            let (_, out) = try call(iommufd, S.vfioIOASRequest, StructBytes(S.vfioIOAS, ["ioas_id": UInt64(id), "op": UInt64(op), "__reserved": UInt64(reserved)]))
            return op == 0 ? .value(out.get(4, 4)) : .ok
        case .hwptAlloc(let device, let pt, let flags, let reserved, let dataType, let dataLength):
            let data = Scratch(Int(dataLength))
            let input = StructBytes(
                S.hwptAlloc,
                [
                    "flags": UInt64(flags), "dev_id": UInt64(device), "pt_id": UInt64(pt), "__reserved": UInt64(reserved), "data_type": UInt64(dataType),
                    "data_len": UInt64(dataLength), "data_uptr": dataLength == 0 ? 0 : data.address,
                ])
            let (_, out) = try call(iommufd, S.hwptAllocRequest, input)
            return .value(out.get(16, 4))
        case .hwInfo(let device, let flags, let dataLength, let reserved):
            let data = Scratch(Int(dataLength))
            let input = StructBytes(
                S.hwInfo,
                ["flags": UInt64(flags), "dev_id": UInt64(device), "data_len": UInt64(dataLength), "data_uptr": data.address, "__reserved": UInt64(reserved)])
            let (_, out) = try call(iommufd, S.hwInfoRequest, input)
            let zeroed = (0..<Int(dataLength)).filter { data.buffer[$0] == 0 }.count
            return .fields([out.get(12, 4), out.get(24, 4), out.get(28, 1), out.get(32, 8), UInt64(zeroed)])
        case .raw(let request, let bytes, let read):
            let (value, out) = try call(iommufd, request, bytes)
            return read.isEmpty ? .value(UInt64(value)) : .fields(read.map { out.get($0, 4) })
        case .rawPointer(let request, let pointer):
            return .value(UInt64(try system.ioctlResult(iommufd, request, pointer).get()))
        case .rawPlaced(let request, let bytes, let placement):
            return .value(UInt64(try placed(request, bytes, placement)))
        case .open(let slot, let address):
            cdevFDs[slot] = try system.openResult("/dev/vfio/devices/vfio\(fixture.cdevNumber(address ?? slot))").get()
            return .ok
        case .bind(let slot, let iommufd, let flags, let argsz, let tail):
            let token = Scratch(16)
            let number: Int32
            switch iommufd {
            case .own: number = fixture.fd
            case .notOpen: number = 1_000_000
            case .number(let value): number = value
            case .container:
                number = try system.openResult("/dev/vfio/vfio").get()
                otherFDs.append(number)
            }
            let input = StructBytes(
                S.bind, size: Int(argsz), tail: tail,
                ["flags": UInt64(flags), "iommufd": UInt64(UInt32(bitPattern: number)), "token_uuid_ptr": flags & 1 != 0 ? token.address : 0])
            let (_, out) = try call(try cdevFD(slot), S.bindRequest, input)
            #expect(out.bytes.prefix(12) == input.bytes.prefix(12), "IOMMUFD-612: BIND writes back out_devid only")
            return .value(out.get(12, 4))
        case .attach(let slot, let pt, let flags, let argsz):
            let (_, out) = try call(try cdevFD(slot), S.attachRequest, StructBytes(S.attach, size: Int(argsz), ["flags": UInt64(flags), "pt_id": UInt64(pt)]))
            return .value(out.get(8, 4))
        case .detach(let slot, let flags, let argsz):
            _ = try call(try cdevFD(slot), S.detachRequest, StructBytes(S.detach, size: Int(argsz), ["flags": UInt64(flags)]))
            return .ok
        case .closeDevice(let slot):
            _ = try system.closeResult(try cdevFD(slot)).get()
            cdevFDs[slot] = nil
            return .ok
        case .deviceInfo(let slot):
            var info = StructBytes(length: 24)  // struct vfio_device_info
            info.set(24, at: 0, width: 4)
            _ = try call(try cdevFD(slot), VFIORequest.deviceGetInfo, info)
            return .ok
        case .openGroup(let id):
            groupFDs[id] = try system.openResult("/dev/vfio/\(id)").get()
            return .ok
        case .joinGroup(let id):
            var value = StructBytes(length: 4)
            value.set(UInt64(UInt32(bitPattern: fixture.fd)), at: 0, width: 4)
            _ = try call(try groupFD(id), VFIORequest.groupSetContainer, value)
            return .ok
        case .openGroupDevice(let id, let name):
            let (fd, _) = try call(try groupFD(id), VFIORequest.groupGetDeviceFD, StructBytes(bytes: Array(name.utf8) + [0]))
            otherFDs.append(fd)
            return .ok
        case .closeGroup(let id):
            _ = try system.closeResult(try groupFD(id)).get()
            groupFDs[id] = nil
            return .ok
        case .closeIOMMUFD:
            _ = try system.closeResult(fixture.fd).get()
            iommufdOpen = false
            return .ok
        case .apiVersion:
            return .value(UInt64(try system.ioctlResult(iommufd, VFIORequest.getAPIVersion, 0).get()))
        case .checkExtension(let argument):
            return .value(UInt64(try system.ioctlResult(iommufd, VFIORequest.checkExtension, argument).get()))
        case .setIOMMU(let argument):
            return .value(UInt64(try system.ioctlResult(iommufd, VFIORequest.setIOMMU, argument).get()))
        case .compatMap(let flags, let address, let iova, let size, let argsz):
            var map = vfio_iommu_type1_dma_map()
            map.argsz = argsz
            map.flags = flags
            map.vaddr = fixture.address(address)
            map.iova = iova
            map.size = size
            let input = StructBytes(of: map)
            let (_, out) = try call(iommufd, clinuxvfio_iommu_map_dma(), input)
            #expect(out == input, "IOMMUFD-710: MAP_DMA writes nothing back")
            return .ok
        case .compatUnmap(let flags, let iova, let size, let argsz):
            var unmap = vfio_iommu_type1_dma_unmap()
            unmap.argsz = argsz
            unmap.flags = flags
            unmap.iova = iova
            unmap.size = size
            let input = StructBytes(of: unmap)
            let (result, out) = exchange(iommufd, clinuxvfio_iommu_unmap_dma(), input)
            #expect(out.bytes.prefix(16) == input.bytes.prefix(16), "IOMMUFD-712: UNMAP_DMA writes back size only")
            switch result {
            case .success: return .value(out.get(16, 8))
            case .failure(let error) where out != input: throw WrittenFailure(error: error, fields: [out.get(16, 8)])
            case .failure(let error): throw error
            }
        case .compatInfo(let query):
            return try info(query)
        case .failing, .probe:
            return .failure(.ioError)
        }
    }

    /// VFIO_IOMMU_GET_INFO into a 512-byte buffer of 0xAA (real memory).
    private func info(_ query: FDInfoQuery) throws -> FDOutcome {
        let size = 512
        var buffer = StructBytes(bytes: [UInt8](repeating: 0xAA, count: size))
        let argsz: UInt32
        switch query {
        case .layout(let asked), .bytes(let asked): argsz = asked
        case .pageSizes, .ranges: argsz = UInt32(size)
        }
        buffer.set(UInt64(argsz), at: 0, width: 4)
        let (_, out) = try call(iommufd, clinuxvfio_iommu_get_info(), buffer)
        #expect(out.bytes[Int(min(argsz, UInt32(size)))...].allSatisfy { $0 == 0xAA }, "IOMMUFD-723: GET_INFO wrote past argsz \(argsz)")
        switch query {
        case .layout(let asked): return .fields(decodeInfo(out.bytes, argsz: asked))
        case .bytes: return .fields((0..<16).map { out.get(8 * $0, 8) })
        case .pageSizes: return .value(out.get(8, 8))
        case .ranges:
            guard let cap = capabilities(out.bytes, argsz: argsz).first(where: { $0.id == 1 }) else { return .fields([]) }
            let count = Int(out.get(cap.offset + 8, 4))
            return .fields((0..<count).flatMap { [out.get(cap.offset + 16 + 16 * $0, 8), out.get(cap.offset + 24 + 16 * $0, 8)] })
        }
    }

    /// A raw ioctl whose struct lies right before a `PROT_NONE` page or in a read-only page.
    private func placed(_ request: UInt, _ bytes: StructBytes, _ placement: FDPlacement) throws -> Int32 {
        let page = Int(hostPageSize)
        guard let raw = mmap(nil, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), raw != MAP_FAILED else {
            throw VFIOError(.noMemory, rule: .none, "mmap failed")
        }
        defer { munmap(raw, 2 * page) }
        let start: Int
        switch placement {
        case .beforeGuard(let visible):
            start = page - visible
            mprotect(raw + page, page, PROT_NONE)
        case .readOnly:
            start = 0
        }
        for (index, byte) in bytes.bytes.prefix(2 * page - start).enumerated() where start + index < page {
            raw.storeBytes(of: byte, toByteOffset: start + index, as: UInt8.self)
        }
        if case .readOnly = placement { mprotect(raw, 2 * page, PROT_READ) }
        return try system.ioctlResult(iommufd, request, UInt(bitPattern: raw + start)).get()
    }

    /// ALLOW_IOVAS with the range array ending `readable` entries into a readable page, the rest in a
    /// `PROT_NONE` page after it.
    private func allowPlaced(_ id: UInt32, _ ranges: [IOVARange], readable: Int) throws -> Int32 {
        let page = Int(hostPageSize)
        guard let raw = mmap(nil, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), raw != MAP_FAILED else {
            throw VFIOError(.noMemory, rule: .none, "mmap failed")
        }
        defer { munmap(raw, 2 * page) }
        let start = page - 16 * readable
        for (index, range) in ranges.prefix(readable).enumerated() {
            raw.storeBytes(of: range.start.littleEndian, toByteOffset: start + 16 * index, as: UInt64.self)
            raw.storeBytes(of: range.last.littleEndian, toByteOffset: start + 16 * index + 8, as: UInt64.self)
        }
        mprotect(raw + page, page, PROT_NONE)
        let input = StructBytes(
            IOMMUFDStruct.allowIOVAs, ["ioas_id": UInt64(id), "num_iovas": UInt64(ranges.count), "allowed_iovas": UInt64(UInt(bitPattern: raw + start))])
        return try call(iommufd, IOMMUFDStruct.allowIOVAsRequest, input).0
    }

    private func cdevFD(_ slot: String) throws -> Int32 {
        guard let fd = cdevFDs[slot] else { throw VFIOError(.badFileDescriptor, rule: .none, "no cdev \(slot) open") }
        return fd
    }

    private func groupFD(_ id: Int) throws -> Int32 {
        guard let fd = groupFDs[id] else { throw VFIOError(.badFileDescriptor, rule: .none, "group \(id) not open") }
        return fd
    }

    // MARK: Probes

    private func probe(_ probe: FDProbe) -> (FDOutcome, VFIOError?) {
        switch probe {
        case .areas(let id):
            let areas = context.state.withLock { state -> [UInt64] in
                guard case .ioas(let ioas) = state.objects[id] else { return [] }
                return ioas.areas.mappings.flatMap { [$0.iova, $0.length] }
            }
            return (.fields(areas), nil)
        case .objects:
            return (.fields(context.objectIDs.map(UInt64.init)), nil)
        case .lockedBytes:
            return (.value(fixture.process.lockedBytes), nil)
        case .hwpt(let address):
            let hwpt = context.state.withLock { state in
                state.objects.values.lazy.compactMap { object -> UInt32? in
                    if case .device(let device) = object, device.name == address { device.hwpt ?? 0 } else { nil }
                }.first
            }
            return (.value(UInt64(hwpt ?? 0)), nil)
        case .dmaStore(let address, let iova, let value):
            guard let model = fixture.machine?.devices[PCIAddress(parsing: address)!] else {
                Issue.record("no device model at \(address): the row needs config.models")
                return (.failure(.operationNotSupportedByDevice), nil)
            }
            let command = model.readConfig(0x04, width: 2)
            model.writeConfig(0x04, width: 2, command | 0x4)  // Bus Master Enable
            var port = model.dmaPort()
            do throws(DMAFault) {
                try port.store(value, to: iova)
                return (.ok, nil)
            } catch {
                return (.dmaFault, nil)
            }
        case .hostWord(let address):
            return (.value(UnsafeRawPointer(bitPattern: UInt(fixture.address(address)))!.loadUnaligned(as: UInt64.self)), nil)
        case .openGroup(let id):
            switch system.openResult("/dev/vfio/\(id)") {
            case .success(let fd):
                system.close(fd)
                return (.ok, nil)
            case .failure(let error): return (.failure(error.errno), error)
            }
        }
    }
}

extension StructBytes {
    init(bytes: [UInt8]) {
        self.init(length: bytes.count)
        self.bytes = bytes
    }

    /// A C struct's bytes (`<linux/vfio.h>` from `CLinuxVFIO`).
    init<T>(of value: T) {
        var copy = value
        self.init(bytes: withUnsafeBytes(of: &copy) { Array($0) })
    }
}
