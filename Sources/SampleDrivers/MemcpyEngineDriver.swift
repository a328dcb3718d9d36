import KernelRules
import SystemPackage
import VFIO

/// A userspace driver for the memcpy engine model (`DeviceModels.MemcpyEngine`), in the shape of
/// the selftests' I/OAT driver: one descriptor per `memcpy_start` whose repeat count carries the
/// copy count, a completion record the engine writes back, MSI-X vector 0 on completion.
/// `memcpy_wait` reads the record; a halted channel is reported with its error and faulting
/// IOVA, then reset so the device stays usable (`mix_and_match`).
public final class MemcpyEngineDriver: VFIOPCIDriver {
    public static let name = "memcpy-engine"
    public static let vendorID: UInt16 = 0x1234
    public static let deviceID: UInt16 = 0x5601

    enum Register {
        static let capability: UInt64 = 0x00
        static let ringBase: UInt64 = 0x08
        static let ringSize: UInt64 = 0x10
        static let control: UInt64 = 0x14
        static let tail: UInt64 = 0x18
        static let head: UInt64 = 0x1c
        static let status: UInt64 = 0x20
        static let error: UInt64 = 0x24
        static let completion: UInt64 = 0x28
        static let errorAddress: UInt64 = 0x30
        static let reset: UInt64 = 0x40
    }

    static let errors = ["none", "descriptor read fault", "source read fault", "destination write fault", "invalid descriptor",
        "completion write fault", "bad ring configuration"]

    public let device: UserspaceDevice
    public let interrupt: EventFD
    public private(set) var maxMemcpySize: UInt64 = 0
    public private(set) var maxMemcpyCount: UInt64 = 0
    private var region: DMARegion?
    private var tail: UInt32 = 0
    private static let ringEntries: UInt32 = 16
    private static let completionOffset = 4096

    public init(_ device: UserspaceDevice) throws(VFIOError) {
        self.device = device
        interrupt = try EventFD()
    }

    public func initialize() throws(VFIOError) {
        let region = try device.mapDMA(size: 8192)
        self.region = region
        let capability = try read32(Register.capability)
        maxMemcpySize = 1 << UInt64(capability & 0xff)
        maxMemcpyCount = UInt64(capability >> 8 & 0xffff)
        try device.setBusMaster(true)
        try device.device.enableInterrupts(.msix, eventFDs: [interrupt.fd])
        try write32(Register.reset, 1)
        try device.device.writeRegister(region.iova, bar: 0, offset: Register.ringBase)
        try write32(Register.ringSize, Self.ringEntries)
        try device.device.writeRegister(region.iova + UInt64(Self.completionOffset), bar: 0, offset: Register.completion)
        try write32(Register.control, 1)
        tail = 0
    }

    public func remove() throws(VFIOError) {
        try write32(Register.control, 0)
        try device.device.disableInterrupts(.msix)
        try device.setBusMaster(false)
        if let region { try device.unmapDMA(region) }
        region = nil
    }

    public func memcpyStart(source: UInt64, destination: UInt64, size: UInt64, count: UInt64) throws(VFIOError) {
        try submit(source: source, destination: destination, size: size, count: count, interrupt: false)
    }

    public func memcpyWait() throws(VFIOError) -> String? {
        let region = try initialized(region)
        let status = region.bytes.load(fromByteOffset: Self.completionOffset, as: UInt32.self)
        if status == 1, try read32(Register.status) == 0 { return nil }
        let code = Int(try read32(Register.error))
        let address = try device.device.readRegister(UInt64.self, bar: 0, offset: Register.errorAddress)
        let reason = "channel halted: \(code < Self.errors.count ? Self.errors[code] : "error \(code)") at IOVA 0x\(String(address, radix: 16))"
        try write32(Register.reset, 1)  // the selftests' driver resets the channel after an error
        tail = 0
        return reason
    }

    public func sendMSI() throws(VFIOError) {
        let region = try initialized(region)
        // An 8-byte copy inside the driver's own region with "interrupt on completion".
        try submit(source: region.iova + 4096 + 64, destination: region.iova + 4096 + 128, size: 8, count: 1, interrupt: true)
    }

    private func submit(source: UInt64, destination: UInt64, size: UInt64, count: UInt64, interrupt: Bool) throws(VFIOError) {
        let region = try initialized(region)
        let slot = Int(tail % Self.ringEntries) * 32
        let words: [UInt64] = [
            (interrupt ? 1 : 0) | UInt64(UInt32(truncatingIfNeeded: size)) << 32, source, destination, UInt64(UInt32(truncatingIfNeeded: count)),
        ]
        for (i, word) in words.enumerated() { region.bytes.storeBytes(of: word.littleEndian, toByteOffset: slot + 8 * i, as: UInt64.self) }
        region.bytes.storeBytes(of: UInt32(0), toByteOffset: Self.completionOffset, as: UInt32.self)
        tail &+= 1
        try write32(Register.tail, tail)
    }

}
