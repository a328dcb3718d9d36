import IOMMU
import Locking
import PCIBus

/// A memcpy DMA engine in the spirit of Intel I/OAT (CBDMA) and DSA: one channel with a
/// descriptor ring in host memory, a doorbell, a completion record the engine writes back, and
/// an interrupt on completion (MSI-X vector 0, else MSI, else INTx). A fault halts the channel
/// with an error code and the faulting address; the completion record says so too (when it can
/// be written) and no interrupt is raised. BAR2 is 64 KiB of on-device memory, mappable by
/// userspace and reachable by peers — the target of the peer-to-peer demo.
///
/// BAR0 registers (little-endian):
///
/// | offset | name           | access | meaning |
/// |--------|----------------|--------|---------|
/// | 0x00   | CAP            | RO u32 | bits 0–7: log2 max transfer (16: 64 KiB); 8–23: max repeat (4095) |
/// | 0x08   | RING_BASE      | RW u64 | IOVA of the descriptor ring |
/// | 0x10   | RING_SIZE      | RW u32 | descriptors in the ring (power of two, ≤ 4096) |
/// | 0x14   | CTRL           | RW u32 | bit 0: channel enable |
/// | 0x18   | TAIL           | RW u32 | doorbell: descriptors submitted (free-running, at most RING_SIZE ahead of HEAD) |
/// | 0x1c   | HEAD           | RO u32 | descriptors completed (free-running) |
/// | 0x20   | STATUS         | RO u32 | 0 idle, 1 halted on error |
/// | 0x24   | ERROR          | RO u32 | why it halted (`MemcpyEngine.Error`) |
/// | 0x28   | COMPLETION     | RW u64 | IOVA of the 16-byte completion record |
/// | 0x30   | ERROR_ADDRESS  | RO u64 | the IOVA that faulted |
/// | 0x38   | BYTES          | RO u64 | bytes copied since reset |
/// | 0x40   | RESET          | WO u32 | write 1: clear the halt, HEAD = TAIL = 0 |
///
/// A descriptor is 32 bytes: `u32 flags` (bit 0: interrupt on completion), `u32 size`,
/// `u64 source`, `u64 destination`, `u32 repeat` (copies of the same buffers; 0 counts as 1),
/// `u32 reserved`. The completion record is `u32 status` (1 success, 2 error), `u32 error`,
/// `u64 head`.
public final class MemcpyEngine: VirtualPCIDevice, @unchecked Sendable {
    public static let summary = "memcpy DMA engine (I/OAT/DSA-style descriptor ring, completion record, MSI-X)"
    public static let vendorID = ModelCatalog.vendorID
    public static let deviceID: UInt16 = 0x5601
    public static let maxTransferShift = 16
    public static let maxRepeat = 4095
    public static let maxRingSize = 4096
    public static let descriptorSize: UInt64 = 32

    /// Why the channel halted (register ERROR and the completion record's error field).
    public enum Error: UInt32, Sendable {
        case none = 0
        case descriptorRead = 1
        case sourceRead = 2
        case destinationWrite = 3
        case invalidDescriptor = 4
        case completionWrite = 5
        case ringConfiguration = 6
    }

    public enum Register {
        public static let capability: UInt64 = 0x00
        public static let ringBase: UInt64 = 0x08
        public static let ringSize: UInt64 = 0x10
        public static let control: UInt64 = 0x14
        public static let tail: UInt64 = 0x18
        public static let head: UInt64 = 0x1c
        public static let status: UInt64 = 0x20
        public static let error: UInt64 = 0x24
        public static let completion: UInt64 = 0x28
        public static let errorAddress: UInt64 = 0x30
        public static let bytes: UInt64 = 0x38
        public static let reset: UInt64 = 0x40
    }

    private struct Channel {
        var ringBase: UInt64 = 0
        var ringSize: UInt32 = 0
        var enabled = false
        var tail: UInt32 = 0
        var head: UInt32 = 0
        var halted = false
        var error = Error.none
        var completion: UInt64 = 0
        var errorAddress: UInt64 = 0
        var bytes: UInt64 = 0
        var port: DMAPort?
    }

    private let channel = PThreadMutex(Channel())

    public init(address: PCIAddress, mmioBase: UInt64) {
        var builder = VirtualConfigBuilder(vendor: Self.vendorID, device: Self.deviceID, classCode: 0x088000, subsystemVendor: Self.vendorID, subsystem: Self.deviceID)
        builder.addBAR(0, PCIBARResource(kind: .memory64, size: 16 << 10, busAddress: mmioBase))
        builder.addBAR(2, PCIBARResource(kind: .memory64, size: 64 << 10, prefetchable: true, busAddress: mmioBase + (1 << 20), mappable: true))
        builder.addPowerManagement()
        builder.addMSI(vectors: 1)
        builder.addMSIX(tableSize: 2, tableBAR: 0, tableOffset: 0x2000, pbaBAR: 0, pbaOffset: 0x3000)
        builder.addPCIExpress(.endpoint, flr: true)
        super.init(address: address, modelName: "memcpy engine", layout: builder.build())
    }

    public override func mmioRead(_ bar: Int, offset: UInt64, width: Int) -> UInt64 {
        guard bar == 0 else { return allOnes(width) }
        let value: UInt64 = channel.withLock { channel in
            switch offset {
            case Register.capability: UInt64(Self.maxTransferShift) | UInt64(Self.maxRepeat) << 8
            case Register.ringBase: channel.ringBase
            case Register.ringSize: UInt64(channel.ringSize)
            case Register.control: channel.enabled ? 1 : 0
            case Register.tail: UInt64(channel.tail)
            case Register.head: UInt64(channel.head)
            case Register.status: channel.halted ? 1 : 0
            case Register.error: UInt64(channel.error.rawValue)
            case Register.completion: channel.completion
            case Register.errorAddress: channel.errorAddress
            case Register.bytes: channel.bytes
            default: 0
            }
        }
        return value & allOnes(width)
    }

    public override func mmioWrite(_ bar: Int, offset: UInt64, width: Int, _ value: UInt64) {
        guard bar == 0 else { return }
        var interrupt = false
        channel.withLock { channel in
            switch offset {
            case Register.ringBase: channel.ringBase = width == 8 ? value : (channel.ringBase & ~0xffff_ffff) | value
            case Register.ringBase + 4: channel.ringBase = (channel.ringBase & 0xffff_ffff) | value << 32
            case Register.ringSize: channel.ringSize = UInt32(truncatingIfNeeded: value)
            case Register.control: channel.enabled = value & 1 != 0
            case Register.completion: channel.completion = width == 8 ? value : (channel.completion & ~0xffff_ffff) | value
            case Register.completion + 4: channel.completion = (channel.completion & 0xffff_ffff) | value << 32
            case Register.reset where value & 1 != 0:
                // Restart: the halt and error clear, the ring starts over; configuration stays.
                channel.halted = false
                channel.error = .none
                channel.errorAddress = 0
                channel.head = 0
                channel.tail = 0
            case Register.tail:
                channel.tail = UInt32(truncatingIfNeeded: value)
                interrupt = run(&channel)
            default: break
            }
        }
        if interrupt { raiseInterrupt(vector: 0) }
    }

    public override func resetModel() { channel.withLock { $0 = Channel() } }

    /// Processes descriptors from HEAD to TAIL; returns whether a completion interrupt is due.
    private func run(_ channel: inout Channel) -> Bool {
        guard channel.enabled, !channel.halted, channel.head != channel.tail else { return false }
        // Before any check that can halt: a halt writes the completion record, which is DMA too.
        if channel.port == nil { channel.port = dmaPort() }
        // A ring of 1…4096 descriptors (a power of two) holding no more than it has slots: a TAIL
        // further ahead would have the engine go round the ring again and again, up to 2^32 times.
        guard channel.ringSize > 0, channel.ringSize <= Self.maxRingSize, channel.ringSize.nonzeroBitCount == 1,
            channel.tail &- channel.head <= channel.ringSize
        else {
            halt(&channel, .ringConfiguration, at: channel.ringBase)
            return false
        }
        var interrupt = false
        while channel.head != channel.tail {
            let slot = UInt64(channel.head % channel.ringSize)
            let address = channel.ringBase &+ slot * Self.descriptorSize
            guard let descriptor = readDescriptor(&channel, at: address) else { return false }
            guard descriptor.size > 0, descriptor.size <= 1 << Self.maxTransferShift, descriptor.repeat <= Self.maxRepeat else {
                halt(&channel, .invalidDescriptor, at: address)
                return false
            }
            for _ in 0..<max(1, descriptor.repeat) {
                do throws(DMAFault) {
                    try channel.port!.copy(from: descriptor.source, to: descriptor.destination, count: UInt64(descriptor.size))
                    channel.bytes &+= UInt64(descriptor.size)
                } catch {
                    channel.bytes &+= error.bytesCompleted
                    halt(&channel, error.access == .read ? .sourceRead : .destinationWrite, at: error.iova)
                    return false
                }
            }
            channel.head &+= 1
            guard writeCompletion(&channel, status: 1) else { return false }
            interrupt = interrupt || descriptor.flags & 1 != 0
        }
        return interrupt
    }

    private struct Descriptor {
        var flags: UInt32
        var size: UInt32
        var source: UInt64
        var destination: UInt64
        var `repeat`: UInt32
    }

    private func readDescriptor(_ channel: inout Channel, at address: UInt64) -> Descriptor? {
        var raw = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        do throws(DMAFault) {
            try withUnsafeMutableBytes(of: &raw) { (bytes) throws(DMAFault) in try channel.port!.read(from: address, into: bytes) }
        } catch {
            halt(&channel, .descriptorRead, at: error.iova)
            return nil
        }
        let first = UInt64(littleEndian: raw.0)
        return Descriptor(
            flags: UInt32(truncatingIfNeeded: first), size: UInt32(truncatingIfNeeded: first >> 32), source: UInt64(littleEndian: raw.1),
            destination: UInt64(littleEndian: raw.2), repeat: UInt32(truncatingIfNeeded: UInt64(littleEndian: raw.3)))
    }

    /// Writes the completion record, if one is set; a fault there halts the channel.
    private func writeCompletion(_ channel: inout Channel, status: UInt32) -> Bool {
        guard channel.completion != 0 else { return true }
        let record = (UInt64(status) | UInt64(channel.error.rawValue) << 32, UInt64(channel.head))
        do throws(DMAFault) {
            try withUnsafeBytes(of: (record.0.littleEndian, record.1.littleEndian)) { (bytes) throws(DMAFault) in
                try channel.port!.write(to: channel.completion, from: bytes)
            }
            return true
        } catch {
            if status == 1 { halt(&channel, .completionWrite, at: error.iova) }
            return false
        }
    }

    private func halt(_ channel: inout Channel, _ error: Error, at address: UInt64) {
        channel.halted = true
        channel.error = error
        channel.errorAddress = address
        if error != .completionWrite { _ = writeCompletion(&channel, status: 2) }
    }
}
