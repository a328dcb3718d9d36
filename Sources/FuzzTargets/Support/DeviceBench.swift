import Machine
import UserMemory
import DeviceModels
import Glibc
import IOMMU
import PCIBus
import VFIO

/// One device model of a fresh default machine, bound to vfio-pci and opened as a userspace driver
/// opens it — its group in a type1v2 container, the device fd, bus mastering on, MSI-X wired to an
/// eventfd — with DMA
/// buffers mapped at fixed IOVAs and one allocation never mapped at all. The device-model targets
/// drive it; at the end `verify` checks what the IOMMU promises: the device never wrote the
/// unmapped allocation, a buffer mapped read-only, or a buffer after it was unmapped.
final class DeviceBench {
    /// A DMA buffer: host memory, where the device sees it, and what the device may do there.
    struct Buffer {
        let memory: HostMemory
        let iova: UInt64
        let access: IOAccess
        var mapped = true
        /// The contents the device must leave alone: set while the buffer is read-only to the
        /// device or unmapped; the harness's own writes update it.
        var expected: [UInt8]?

        var bytes: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: memory.pointer, count: Int(memory.size)) }
    }

    /// The buffers every bench maps: two read-write buffers adjacent in IOVA but not in host
    /// memory, one the device may only read, one it may only write, a 2 MiB huge-page buffer (one
    /// 2 MiB leaf) and the last page below the 48-bit aperture's end.
    static let layout: [(iova: UInt64, size: UInt64, access: IOAccess, hugePages: Bool)] = [
        (0x10_0000, 64 << 10, .readWrite, false),
        (0x11_0000, 64 << 10, .readWrite, false),
        (0x20_0000, 16 << 10, .read, false),
        (0x30_0000, 16 << 10, .write, false),
        (0x4000_0000, 2 << 20, .readWrite, true),
        ((1 << 48) - 0x1000, 0x1000, .readWrite, false),
    ]
    static let canarySize: UInt64 = 64 << 10
    static let canaryByte: UInt8 = 0xa5

    let machine: SimulatedMachine
    let model: VirtualPCIDevice
    let group: VFIOGroup
    let container: VFIOContainer
    let device: VFIODevice
    let interrupt: EventFD
    private(set) var buffers: [Buffer] = []
    private let canary: HostMemory

    /// Opens the default machine's `model` (a `ModelCatalog` name). Set-up failures are the
    /// harness's own and stop the run.
    init(model name: String) {
        let address = DefaultMachine.address(of: name)
        // Bound to vfio-pci even where the manifest binds a kernel driver (the CBDMA's ioatdma).
        machine = DefaultMachine.make(binding: [address])
        model = machine.devices[address]!
        do {
            group = try machine.vfio.openGroup(machine.groupID(of: address)!)
            container = VFIOContainer(process: machine.process)
            try group.setContainer(container)
            try container.setIOMMU(.type1v2)
            device = try group.openDevice(address.description)
            for (iova, size, access, hugePages) in Self.layout {
                let memory = try machine.process.allocate(size: size, hugePages: hugePages)
                try container.map(vaddr: memory.address, iova: iova, size: memory.size, access: access)
                buffers.append(Buffer(memory: memory, iova: iova, access: access))
            }
            canary = try machine.process.allocate(size: Self.canarySize)
            interrupt = try EventFD()
            try device.enableInterrupts(.msix, eventFDs: [interrupt.fd])
            try setBusMaster(true)
        } catch {
            fatalError("fuzz harness: cannot open \(name) at \(address): \(error)")
        }
        Self.canaryPattern.withUnsafeBytes { canary.pointer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        for index in buffers.indices where !buffers[index].access.contains(.write) {
            buffers[index].expected = Array(buffers[index].bytes)
        }
    }

    deinit {
        device.close()
        group.close()
    }

    // MARK: Driver actions

    /// A register access of `width` bytes at `offset` in BAR `bar`, as `pwrite` on the device fd.
    func writeRegister(bar: Int, offset: UInt64, width: Int, _ value: UInt64) {
        withUnsafeBytes(of: value.littleEndian) { bytes in
            _ = try? device.write(.bar(bar), offset: offset, from: UnsafeRawBufferPointer(rebasing: bytes[0..<width]))
        }
    }

    /// A register read, as `pread` on the device fd (nil when the access fails).
    @discardableResult
    func readRegister(bar: Int, offset: UInt64, width: Int) -> UInt64? {
        var value: UInt64 = 0
        let ok = withUnsafeMutableBytes(of: &value) { bytes in
            (try? device.read(.bar(bar), offset: offset, into: UnsafeMutableRawBufferPointer(rebasing: bytes[0..<width]))) != nil
        }
        return ok ? UInt64(littleEndian: value) : nil
    }

    /// The driver writes `bytes` into buffer `index` at `offset` (clipped to the buffer).
    func store(_ bytes: UnsafeRawBufferPointer, in index: Int, at offset: Int) {
        let buffer = buffers[index]
        guard offset < buffer.bytes.count else { return }
        let count = min(bytes.count, buffer.bytes.count - offset)
        guard count > 0 else { return }
        UnsafeMutableRawBufferPointer(rebasing: buffer.bytes[offset..<offset + count])
            .copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[0..<count]))
        buffers[index].expected?.replaceSubrange(offset..<offset + count, with: bytes[0..<count])
    }

    /// A little-endian value into buffer `index` at `offset`.
    func store<T: FixedWidthInteger>(_ value: T, in index: Int, at offset: Int) {
        withUnsafeBytes(of: value.littleEndian) { store($0, in: index, at: offset) }
    }

    /// UNMAP_DMA of buffer `index`: from now on the device must not change it.
    func unmap(_ index: Int) {
        guard buffers[index].mapped else { return }
        do throws(VFIOError) {
            _ = try container.unmap(iova: buffers[index].iova, size: buffers[index].memory.size)
        } catch {
            fatalError("fuzz harness: unmapping buffer \(index): \(error)")
        }
        buffers[index].mapped = false
        buffers[index].expected = Array(buffers[index].bytes)
    }

    /// MAP_DMA of buffer `index` again, with its access.
    func remap(_ index: Int) {
        let buffer = buffers[index]
        guard !buffer.mapped else { return }
        do throws(VFIOError) {
            try container.map(vaddr: buffer.memory.address, iova: buffer.iova, size: buffer.memory.size, access: buffer.access)
        } catch {
            fatalError("fuzz harness: remapping buffer \(index): \(error)")
        }
        buffers[index].mapped = true
        if buffer.access.contains(.write) { buffers[index].expected = nil }
    }

    /// `PCI_COMMAND_MASTER` on or off through the device fd's config region.
    func setBusMaster(_ on: Bool) throws(VFIOError) {
        let command = try device.readConfig(UInt16.self, at: PCIRegister.command)
        try device.writeConfig(on ? command | 0x4 : command & ~0x4, at: PCIRegister.command)
    }

    // MARK: Invariants

    /// Traps when the device changed memory it had no mapping to write.
    func verify() {
        if let changed = firstDifference(UnsafeRawBufferPointer(start: canary.pointer, count: Int(Self.canarySize)), Self.canaryPattern) {
            fatalError("DMA wrote host memory that was never mapped: \(canary) byte \(changed)")
        }
        for (index, buffer) in buffers.enumerated() {
            guard let expected = buffer.expected else { continue }
            if let changed = firstDifference(UnsafeRawBufferPointer(buffer.bytes), expected) {
                let why = buffer.mapped ? "mapped without IOMMU_WRITE" : "after UNMAP_DMA returned"
                fatalError("DMA wrote buffer \(index) (IOVA 0x\(String(buffer.iova, radix: 16))) \(why), byte \(changed)")
            }
        }
    }

    private static let canaryPattern = [UInt8](repeating: canaryByte, count: Int(canarySize))

    /// The first offset where `memory` and `expected` (same length) differ; `memcmp` first, as
    /// the buffers are large and almost always equal.
    private func firstDifference(_ memory: UnsafeRawBufferPointer, _ expected: [UInt8]) -> Int? {
        expected.withUnsafeBytes { expected in
            guard memcmp(memory.baseAddress!, expected.baseAddress!, expected.count) != 0 else { return nil }
            return expected.indices.first { memory[$0] != expected[$0] }
        }
    }
}
