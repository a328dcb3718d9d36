import KernelRules
import SystemPackage
import VFIO

/// A userspace driver for the loopback NIC model (`DeviceModels.LoopbackNIC`), in the shape of
/// the selftests' use of an igb NIC as a DMA engine: internal loopback on, and a copy is a frame
/// sent from the source buffer that comes back into the destination buffer. `memcpy_start`
/// posts one RX descriptor (the destination) and one TX descriptor (the source, EOP) per copy,
/// so at most 1024 bytes — one RX buffer, as igb's driver — and ring size − 1 copies per start;
/// frames are at least 60 bytes. `memcpy_wait` checks DD on every descriptor of the batch and
/// the received lengths; a halted device is reported with its error and faulting IOVA, then
/// reset so it stays usable (`mix_and_match`). `send_msi` loops back a 60-byte frame with RS,
/// whose TX write-back is the one interrupt cause the driver unmasks (MSI-X vector 0).
public final class LoopbackNICDriver: VFIOPCIDriver {
    public static let name = "loopback-nic"
    public static let vendorID: UInt16 = 0x1234
    public static let deviceID: UInt16 = 0x5602

    enum Register {
        static let control: UInt64 = 0x00
        static let status: UInt64 = 0x04
        static let error: UInt64 = 0x08
        static let errorAddress: UInt64 = 0x10
        static let interruptMask: UInt64 = 0x1c
        static let reset: UInt64 = 0x20
        static let rxBufferSize: UInt64 = 0x24
        static let txBase: UInt64 = 0x100
        static let txSize: UInt64 = 0x108
        static let txTail: UInt64 = 0x118
        static let rxBase: UInt64 = 0x200
        static let rxSize: UInt64 = 0x208
        static let rxTail: UInt64 = 0x218
    }

    static let errors = [
        "none", "bad TX ring", "bad RX ring", "TX descriptor read fault", "TX buffer read fault", "TX write-back fault",
        "frame length outside 60…9018 bytes", "RX descriptor read fault", "RX buffer write fault", "RX write-back fault",
    ]

    /// CTRL enable | loopback; IMS TXDW; TX command EOP and RS; status DD and RX EOP.
    private static let enableWithLoopback: UInt32 = 0b11
    private static let txWrittenCause: UInt32 = 1
    private static let endOfPacket: UInt8 = 1
    private static let reportStatus: UInt8 = 2
    private static let done: UInt8 = 1
    private static let rxEndOfPacket: UInt8 = 2

    private static let ringEntries: UInt32 = 64
    private static let minimumFrame: UInt64 = 60
    private static let rxBufferBytes: UInt32 = 2048
    // The driver's own DMA region: the two rings, then send_msi's frame and its RX buffer.
    private static let txRingOffset = 0
    private static let rxRingOffset = 0x400
    private static let msiFrameOffset: UInt64 = 0x1000
    private static let msiBufferOffset: UInt64 = 0x1800

    public let device: UserspaceDevice
    public let interrupt: EventFD
    public let maxMemcpySize: UInt64 = 1024
    public let maxMemcpyCount = UInt64(ringEntries - 1)
    private var region: DMARegion?
    /// The next slot in both rings: every frame takes one TX and one RX descriptor, so their
    /// tails move together.
    private var tail: UInt32 = 0
    /// The batch the last `memcpyStart` posted.
    private var pending: (first: UInt32, count: UInt32, size: UInt64)?

    public init(_ device: UserspaceDevice) throws(VFIOError) {
        self.device = device
        interrupt = try EventFD()
    }

    public func initialize() throws(VFIOError) {
        let region = try device.mapDMA(size: 8192)
        self.region = region
        try device.setBusMaster(true)
        try device.device.enableInterrupts(.msix, eventFDs: [interrupt.fd])
        try write32(Register.reset, 1)
        try device.device.writeRegister(region.iova + UInt64(Self.txRingOffset), bar: 0, offset: Register.txBase)
        try write32(Register.txSize, Self.ringEntries)
        try device.device.writeRegister(region.iova + UInt64(Self.rxRingOffset), bar: 0, offset: Register.rxBase)
        try write32(Register.rxSize, Self.ringEntries)
        try write32(Register.rxBufferSize, Self.rxBufferBytes)
        try write32(Register.interruptMask, Self.txWrittenCause)
        try write32(Register.control, Self.enableWithLoopback)
        tail = 0
        pending = nil
    }

    public func remove() throws(VFIOError) {
        try write32(Register.control, 0)
        try device.device.disableInterrupts(.msix)
        try device.setBusMaster(false)
        if let region { try device.unmapDMA(region) }
        region = nil
    }

    public func memcpyStart(source: UInt64, destination: UInt64, size: UInt64, count: UInt64) throws(VFIOError) {
        guard (Self.minimumFrame...maxMemcpySize).contains(size), (1...maxMemcpyCount).contains(count) else {
            throw VFIOError(
                .invalidArgument, rule: .VST_06,
                "\(Self.name): memcpy of \(size) bytes × \(count): frames are \(Self.minimumFrame)…\(maxMemcpySize) bytes, "
                    + "1…\(maxMemcpyCount) per start")
        }
        pending = (tail, UInt32(count), size)
        try send(source: source, destination: destination, size: size, count: UInt32(count), reportStatus: false)
    }

    public func memcpyWait() throws(VFIOError) -> String? {
        guard let region, let batch = pending else {
            throw VFIOError(.invalidArgument, rule: .VST_06, "\(Self.name): no memcpy started")
        }
        pending = nil
        if try read32(Register.status) != 0 {
            let code = Int(try read32(Register.error))
            let address = try device.device.readRegister(UInt64.self, bar: 0, offset: Register.errorAddress)
            let reason = code < Self.errors.count ? Self.errors[code] : "error \(code)"
            return try restart("device halted: \(reason) at IOVA 0x\(String(address, radix: 16))")
        }
        for i in 0..<batch.count {
            let slot = Int((batch.first + i) % Self.ringEntries) * 16
            let txStatus = region.bytes.load(fromByteOffset: Self.txRingOffset + slot + 11, as: UInt8.self)
            let rxLength = UInt16(littleEndian: region.bytes.load(fromByteOffset: Self.rxRingOffset + slot + 8, as: UInt16.self))
            let rxStatus = region.bytes.load(fromByteOffset: Self.rxRingOffset + slot + 10, as: UInt8.self)
            let received = rxStatus & Self.done != 0 && rxStatus & Self.rxEndOfPacket != 0 && UInt64(rxLength) == batch.size
            guard txStatus & Self.done != 0, received else {
                return try restart(
                    "copy \(i) of \(batch.count) not completed (TX status 0x\(String(txStatus, radix: 16)), "
                        + "RX status 0x\(String(rxStatus, radix: 16)), \(rxLength) bytes received)")
            }
        }
        return nil
    }

    public func sendMSI() throws(VFIOError) {
        let region = try initialized(region)
        try send(
            source: region.iova + Self.msiFrameOffset, destination: region.iova + Self.msiBufferOffset, size: Self.minimumFrame, count: 1,
            reportStatus: true)
    }

    /// Posts `count` RX descriptors for `destination`, then `count` one-descriptor frames from
    /// `source`, and rings both doorbells (RX first, so every frame finds its buffer).
    private func send(source: UInt64, destination: UInt64, size: UInt64, count: UInt32, reportStatus: Bool) throws(VFIOError) {
        let region = try initialized(region)
        let command = Self.endOfPacket | (reportStatus ? Self.reportStatus : 0)
        for i in 0..<count {
            let slot = Int((tail + i) % Self.ringEntries) * 16
            store(region, Self.rxRingOffset + slot, destination, 0)
            store(region, Self.txRingOffset + slot, source, size | UInt64(command) << 16)
        }
        tail = (tail + count) % Self.ringEntries
        try write32(Register.rxTail, tail)
        try write32(Register.txTail, tail)
    }

    /// Resets a device that stopped (the selftests' driver does so after an error) and returns `reason`.
    private func restart(_ reason: String) throws(VFIOError) -> String {
        try write32(Register.reset, 1)
        tail = 0
        return reason
    }

    private func store(_ region: DMARegion, _ offset: Int, _ first: UInt64, _ second: UInt64) {
        region.bytes.storeBytes(of: first.littleEndian, toByteOffset: offset, as: UInt64.self)
        region.bytes.storeBytes(of: second.littleEndian, toByteOffset: offset + 8, as: UInt64.self)
    }

}
